"""bench/live_consumer.py end to end, small: a stream of this test's own filled on the stack's
nats-server, drained by the real consumer into an embedded ClickHouse of a scratch directory; every
trade stored once and the figures reported (none judged: a loaded machine is slower)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_live_consumer_bench_drains_every_trade_once(tmp_path):
    results = tmp_path / "live_consumer.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "live_consumer",
            "--trades",
            "3000",
            "--rounds",
            "1",
            "--prefix",
            f"t{uuid.uuid4().hex[:10]}",
            "--results",
            str(results),
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-2000:]
    (round_,) = json.loads(results.read_text())["rounds"]
    assert round_["trades"] == round_["stored"] == 3000
    assert round_["batches"] >= 3 and round_["trades_per_s"] > 0 and round_["cpu_us_per_trade"] > 0
