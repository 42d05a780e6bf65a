"""bench/live_capture.py end to end in its short mode: the frame sender, the bare clients (websockets,
picows), the real collector against the stack's nats-server (a stream and subject prefix of this test's
own), the consumer into an embedded ClickHouse of a scratch directory, the RSS samples; the report carries
every figure the bench promises. No figure is judged here (a loaded machine misses the targets:
exit status 1 is allowed), only that each part ran and counted what went through."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_live_capture_bench_runs_end_to_end(tmp_path):
    results = tmp_path / "live_capture.json"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "live_capture",
            "--short",
            "--prefix",
            f"t{uuid.uuid4().hex[:10]}",
            "--results",
            str(results),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode in (0, 1), done.stderr[-3000:]
    report = json.loads(results.read_text())
    t = report["throughput"]
    for role in ("bare", "picows", "wsclient", "collector"):
        assert t[f"{role}_frames_per_s"] > 0 and t[f"{role}_frames_per_cpu_s"] > 0
        assert t[f"{role}_cpu_us_per_frame"] > 0
    assert t["ratio_per_cpu_s"] > 0 and t["ratio_picows_per_cpu_s"] > 0
    # the picows client counted the sender's frames for its whole window (1 s in --short), its clock looked at
    # every 1,000 frames: it ended on its deadline, not on a lost connection
    picows = t["samples"]["picows"][0]
    assert picows["frames"] >= 1000 and picows["frames"] % 1000 == 0 and picows["wall_s"] >= 1.0
    assert picows["cpu_s"] > 0
    collector = t["samples"]["collector"][0]
    # stopped while publishing at full speed: the stop must end (nats-py swallowed the publisher's cancel,
    # and the stop waited forever, before collector._cancel_until_done)
    assert not collector["shutdown_hung"], collector["stuck_tasks"]
    assert collector["frames"] > 0 and collector["trades"] > 0 and collector["landed_bytes"] > 0
    assert (
        collector["total_published"] + collector["unpublished"] + collector["publish_dropped"]
        >= collector["total_trades"] - collector["duplicates"]
    )
    s = report["steady"]
    assert s["collector"]["trades"] > 0
    assert (
        s["consumer"]["inserted"] >= s["collector"]["published"] > 0
    )  # every published trade reached ClickHouse
    latency = s["latency"]
    assert latency["invisible_batches"] == 0
    for part in ("queryable", "insert_returned", "received_by_collector"):
        assert latency[part]["rows"] == latency["rows"] > 0
        assert 0 < latency[part]["p50_ms"] <= latency[part]["p99_ms"] <= latency[part]["max_ms"]
    rss = s["rss"]
    assert rss["samples"] >= 2 and 0 < rss["start_mb"] <= rss["max_mb"] and rss["end_mb"] <= rss["max_mb"]
    assert "slope_mb_per_min" in rss
    for line in (
        "ceiling: bare websockets client",
        "ceiling: bare picows client",
        "collector: WS->landing->NATS",
        "exchange time -> queryable",
        "collector RSS",
    ):
        assert line in done.stdout


def test_the_sender_feeds_every_channel_as_a_real_feed_does():
    """Trades and depth diffs each go round every instrument: every channel delivers and every book syncs
    (before, instrument `n % 8` took both turns, so 2 instruments got only diffs and 6 only trades)."""
    import re
    from collections import Counter

    from bench.live_sender import Market

    instruments = [f"I{k}" for k in range(8)]
    market = Market(instruments, depth_share=0.25)
    counts = Counter(
        re.findall(r'"stream":"(i\d)@(trade|depth)', market.render(instruments, 3200).decode("latin-1"))
    )
    assert counts == {
        (name.lower(), kind): 300 if kind == "trade" else 100
        for name in instruments
        for kind in ("trade", "depth")
    }


def test_the_landing_check_counts_every_overflow_marker_from_the_control_channel(tmp_path):
    """Every `overflow` marker lands in the control channel, a connection's channels at most one a second:
    the bench counts the drops from the former (it read one trade channel: 12,053 of 926,313 dropped)."""
    import time as clock

    from bench.live_capture_roles import VENUE, landing_gaps
    from marketdata_assets.stores.landing import CONTROL_CHANNEL, LandingWriter

    writer, now = LandingWriter(tmp_path, VENUE), clock.time_ns()
    for k, dropped in enumerate((5, 7, 11)):
        writer.marker(CONTROL_CHANNEL, "c1", "overflow", now + k, dropped=dropped, cause="lag")
    writer.marker("btcusdt@trade", "c1", "overflow", now, dropped=5, cause="lag")  # its once-a-second copy
    writer.marker("btcusdt@trade", "c1", "disconnect", now + 9, reason="stop", overflow_dropped=3)
    writer.marker("ethusdt@trade", "c1", "disconnect", now + 9, reason="stop", overflow_dropped=3)  # the same
    writer.close()
    said = landing_gaps(tmp_path, ["BTCUSDT", "ETHUSDT"])
    assert (said["overflow_records"], said["overflow_recorded_frames"]) == (4, 26)
