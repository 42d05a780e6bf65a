"""The live path beside busy neighbours: `bench live_capture`'s steady run (the bench's frame sender,
the real collector, the stack's nats-server, the consumer into an embedded ClickHouse) at a modest
rate while two processes spin in pure Python at our priority on the machine's cores. The lag from
exchange time to queryable stays bounded, and every frame the collector dropped (its lag bound is
20 ms here, so a starved moment sheds frames instead of queueing them) is on record: the overflow
markers count them all, and the trade ids they held are `gap` ranges covering exactly the holes in
what landed (what `live_trade_id_refill` fetches: tests/ingest/live/test_recovery.py, the burst faults)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
BOUND_MS = 5_000  # generous: a quiet machine's p99 is ~0.5 s, the bench's busy runs 1-4 s at 10k frames/s


def test_beside_busy_neighbours_the_lag_is_bounded_and_every_dropped_frame_recorded(tmp_path):
    results = tmp_path / "busy.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "live_capture",
            "--skip",
            "throughput",
            "--busy",
            "2",
            "--rate",
            "3000",
            "--duration-s",
            "3",
            "--rss-every-s",
            "1",
            "--max-lag-s",
            "0.02",
            "--prefix",
            f"t{uuid.uuid4().hex[:10]}",
            "--results",
            str(results),
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode in (0, 1), done.stderr[-3000:]  # 1: the quiet machine's p99 < 1 s target missed
    s = json.loads(results.read_text())["steady"]
    c, landing = s["collector"], s["collector"]["landing"]
    print(
        f"busy: p99 {s['latency']['queryable']['p99_ms']} ms, dropped {c['total_overflow_frames']}, "
        f"load {s['load_average_during']}"
    )
    assert s["busy"] == 2 and s["frames_sent"] >= landing["trade_ids_spanned"] > 0
    assert s["consumer_caught_up"] and s["latency"]["invisible_batches"] == 0
    assert s["latency"]["queryable"]["p99_ms"] < BOUND_MS
    assert landing["overflow_recorded_frames"] == c["total_overflow_frames"]  # every dropped frame on record
    assert landing["holes_in_gap_ranges"] == landing["trade_id_holes"]  # ... and every trade id it held
    assert landing["landed_ids_in_gap_ranges"] == 0
    assert landing["trade_ids_landed"] + landing["trade_id_holes"] == landing["trade_ids_spanned"]
