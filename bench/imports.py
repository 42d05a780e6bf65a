"""What every process pays before its first row: the cold import of the code location (each run's
step processes are forked from a server that imported it) and of the `marketdata` command.

`python -m bench imports [--rounds N] [--tree DIR ...]`: each tree's imports in fresh interpreters,
interleaved round by round (tree A, tree B, A, B, ...) so load on the machine hits both alike; the
median wall time and CPU time of each (the CPU time is the steadier figure on a shared machine).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PROBE = """
import json, time
t0 = time.perf_counter(); c0 = time.process_time()
import importlib; importlib.import_module({module!r})
print(json.dumps({{"wall": time.perf_counter() - t0, "cpu": time.process_time() - c0}}))
"""
MODULES = {"code location": "marketdata_assets.definitions"}


def cli_module(tree: Path) -> str:
    apps = tree / "marketdata_assets" / "apps"
    return (
        "marketdata_assets.apps.cli"
        if (apps / "cli.py").exists() or (apps / "cli").is_dir()
        else "marketdata_assets.cli"
    )


def measure(tree: Path, module: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module)],
        cwd=tree,
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench imports")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--tree", action="append", type=Path, help="a checkout (default: this one)")
    args = parser.parse_args(argv if argv is not None else sys.argv[2:])
    trees = [t.resolve() for t in (args.tree or [REPO])]
    samples: dict[tuple[str, str], list[dict]] = {}
    for _ in range(args.rounds):
        for tree in trees:
            for what, module in {**MODULES, "marketdata command": cli_module(tree)}.items():
                samples.setdefault((str(tree), what), []).append(measure(tree, module))
    print(f"cold imports, median of {args.rounds} fresh interpreters per tree, interleaved:")
    for (tree, what), runs in samples.items():
        wall = statistics.median(r["wall"] for r in runs)
        cpu = statistics.median(r["cpu"] for r in runs)
        print(f"  {tree}: {what:18} wall {wall * 1000:7.0f} ms   cpu {cpu * 1000:7.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
