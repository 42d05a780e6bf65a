"""How long `scripts/stack up SERVICE` takes: a first start (a new state directory) and a restart (`down`,
then `up` on the data it left), per server, wall seconds of the whole command.

Old vs new: `--tree DIR` runs another checkout's scripts/stack.py in the same rounds, alternating which goes
first, each on a state directory and free port of its own. Prints the median and range per server and
path; no target (the servers' own start-up is most of it). Run:
`scripts/with-env .venv/bin/python -m bench stack_start [--tree /path/to/old/checkout] [--rounds 5]
[--services mongodb postgres ...]`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SETTINGS = {  # service -> the settings that put it on a port
    "postgres": ("DAGSTER_PG_PORT", "TIMESCALE_PORT"),
    "mongodb": ("MONGODB_URI",),
    "pglite": ("STACK_PGLITE_PORT",),
    "clickhouse": ("STACK_CLICKHOUSE_PORT",),
    "nats": ("NATS_URL",),
    "redis": ("REDIS_URL",),
}
URLS = {
    "MONGODB_URI": "mongodb://127.0.0.1:{}",
    "NATS_URL": "nats://127.0.0.1:{}",
    "REDIS_URL": "redis://127.0.0.1:{}/0",
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stack(tree: Path, state: Path, env: dict, *args: str) -> float:
    began = time.monotonic()
    result = subprocess.run(
        [sys.executable, str(tree / "scripts" / "stack.py"), *args],
        env={**os.environ, **env, "MARKETDATA_STATE_DIR": str(state)},
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"{tree}: stack {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return time.monotonic() - began


def one_round(tree: Path, service: str) -> tuple[float, float]:
    """(first start, restart) seconds of one service on a new state directory."""
    state = Path(tempfile.mkdtemp(prefix="bench-stack-"))
    state.chmod(0o755)  # Postgres runs as `postgres`
    port = _free_port()
    env = {name: URLS.get(name, "{}").format(port) for name in SETTINGS[service]}
    env |= {"CLICKHOUSE_DSN": ""} if service == "clickhouse" else {}
    try:
        first = _stack(tree, state, env, "up", service)
        _stack(tree, state, env, "down", service)
        restart = _stack(tree, state, env, "up", service)
        _stack(tree, state, env, "down", service)
        return first, restart
    finally:
        shutil.rmtree(state, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench stack_start")
    parser.add_argument(
        "--tree", type=Path, action="append", default=[], help="another checkout, same rounds"
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--services", nargs="*", default=list(SETTINGS), choices=list(SETTINGS))
    args = parser.parse_args(argv)
    trees = {"this tree": REPO, **{str(tree): tree.resolve() for tree in args.tree}}
    times: dict[tuple[str, str, str], list[float]] = {}
    for round_no in range(args.rounds):
        order = list(trees) if round_no % 2 == 0 else list(reversed(trees))
        for service in args.services:
            for name in order:
                first, restart = one_round(trees[name], service)
                times.setdefault((service, name, "first start"), []).append(first)
                times.setdefault((service, name, "restart"), []).append(restart)
        print(f"round {round_no + 1}/{args.rounds} done, load {os.getloadavg()[0]:.2f}", flush=True)
    print(f"{'service':<11} {'tree':<28} {'path':<12} median s  [min - max]")
    for (service, name, path), seconds in times.items():
        print(
            f"{service:<11} {name[-28:]:<28} {path:<12} {statistics.median(seconds):8.2f}  "
            f"[{min(seconds):.2f} - {max(seconds):.2f}]"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
