"""bench/live_floor.py end to end, small: the three ways of publishing on the stack's nats-server, the
acknowledged one into a stream of this test's own that must then hold every message once; the figures
reported (none judged: a loaded machine is slower)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_live_floor_bench_publishes_every_message_once_and_reports_the_budget(tmp_path):
    results = tmp_path / "live_floor.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "live_floor",
            "--messages",
            "3000",
            "--rounds",
            "1",
            "--ceiling-us",
            "6.0",
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
    report = json.loads(results.read_text())
    (round_,) = report["rounds"]
    assert round_["messages"] == round_["stored"] == 3000
    assert 0 < round_["plain_cpu_us"] and 0 < round_["with_id_cpu_us"] and 0 < round_["acked_cpu_us"]
    assert (report["budget_cpu_us_per_frame"], report["left_after_receive_us"]) == (12.0, 6.0)
    assert report["median_acked_cpu_us"] == round_["acked_cpu_us"]
    assert "an acknowledged publish alone" in done.stdout
