"""A big read through the local stack's ClickHouse engine server: its memory and its speed against the
engine's own Arrow export of the same rows.

A server (stores/clickhouse/local_server.py, on a scratch data directory; BENCH_SERVER_OLD names another
copy of the module to run instead, for old vs new in one session) serves `SELECT ... FROM numbers(N)`
(BENCH_SERVER_ROWS, 50 million; an id, a float and a short string a row) to clickhouse-connect's
streaming Arrow read (`query_arrow_stream`, every batch consumed and dropped) and Native read
(`raw_stream`). The server's resident memory is sampled every 20 ms: idle before, the peak (VmHWM) and
after. The native side is the engine's own Arrow export of the same SELECT in this process (chDB's
`FORMAT ArrowStream` blocks as it makes them, each decoded into Arrow batches, consumed alike). Rounds
interleave (BENCH_SERVER_ROUNDS, 3). Results: bench/results/server_read.json.
Run: `scripts/with-env .venv/bin/python -m bench server_read`.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import chdb
import clickhouse_connect
import httpx
import pyarrow as pa

from marketdata_assets.core import settings

ROWS = int(os.environ.get("BENCH_SERVER_ROWS", "50000000"))
ROUNDS = int(os.environ.get("BENCH_SERVER_ROUNDS", "3"))
RESULTS = Path(__file__).resolve().parent / "results" / "server_read.json"
SQL = (
    "SELECT number AS id, toFloat64(number) / 7 AS price, toString(number % 1000) AS tag FROM "
    f"numbers({ROWS})"
)


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def start_server(data_dir: Path, port: int) -> subprocess.Popen:
    module = os.environ.get("BENCH_SERVER_OLD")
    cmd = (
        [sys.executable, module]
        if module
        else [sys.executable, "-m", "marketdata_assets.stores.clickhouse.local_server"]
    )
    server = subprocess.Popen(
        [*cmd, "--data-dir", str(data_dir), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ping", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.2)
    server.kill()
    raise RuntimeError("the server did not start")


def sampled(pid: int, fn) -> tuple[float, float, int]:
    """(seconds, the server's highest sampled RSS in MB, rows) of one read."""
    peak, done = [0.0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], rss_mb(pid))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    rows = fn()
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    return seconds, peak[0], rows


def main() -> int:
    scratch = Path(tempfile.mkdtemp(prefix="bench-server-read-"))
    port = 58000 + os.getpid() % 1000
    server = start_server(scratch / "clickhouse", port)
    login = {"username": settings.get("CLICKHOUSE_USER"), "password": settings.get("CLICKHOUSE_PASSWORD")}
    client = clickhouse_connect.get_client(dsn=f"http://127.0.0.1:{port}", compress=False, **login)
    engine = chdb.connect(":memory:")

    def through_arrow() -> int:
        with client.query_arrow_stream(SQL) as stream:
            return sum(batch.num_rows for batch in stream)

    def through_native() -> int:
        with client.raw_stream(SQL, fmt="Native") as stream:
            return sum(len(chunk) for chunk in stream) and ROWS

    def native_export() -> int:  # the engine's ArrowStream blocks, each decoded into Arrow batches
        stream, rows = engine.send_query(SQL + " FORMAT ArrowStream", "TabSeparated"), 0
        while (block := stream.fetch()) is not None:
            rows += sum(batch.num_rows for batch in pa.ipc.open_stream(pa.py_buffer(block.bytes())))
        return rows

    try:
        idle = rss_mb(server.pid)
        samples: dict[str, list] = {"server_arrow": [], "server_native_format": [], "engine_arrow_export": []}
        cases = [
            ("server_arrow", through_arrow),
            ("server_native_format", through_native),
            ("engine_arrow_export", native_export),
        ]
        for round_ in range(ROUNDS):
            for name, fn in cases if round_ % 2 == 0 else cases[::-1]:
                seconds, peak, rows = sampled(server.pid, fn)
                samples[name].append(
                    {
                        "seconds": round(seconds, 2),
                        "server_peak_rss_mb": round(peak),
                        "server_rss_after_mb": round(rss_mb(server.pid)),
                        "rows": rows,
                    }
                )
                print(name, samples[name][-1], flush=True)
        high_water = rss_mb(server.pid, "VmHWM")
    finally:
        client.close()
        server.terminate()
        server.wait(30)
        shutil.rmtree(scratch, ignore_errors=True)
    median = {k: statistics.median(s["seconds"] for s in v) for k, v in samples.items()}
    report = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "rows": ROWS,
        "rounds": ROUNDS,
        "server": os.environ.get("BENCH_SERVER_OLD") or "marketdata_assets.stores.clickhouse.local_server",
        "load_average": os.getloadavg(),
        "server_idle_rss_mb": round(idle),
        "server_high_water_mb": round(high_water),
        "rise_over_idle_mb": round(high_water - idle),
        "median_seconds": median,
        "arrow_ratio": round(median["engine_arrow_export"] / median["server_arrow"], 3),
        "samples": samples,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"{ROWS:,} rows; server idle {idle:.0f} MB, high water {high_water:.0f} MB "
        f"(+{high_water - idle:.0f}); medians {median}; engine export / server Arrow read = "
        f"{report['arrow_ratio']}; load {report['load_average']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
