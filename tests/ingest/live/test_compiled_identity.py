"""Nothing changes but speed: the collector's whole path (tests/support/collector_path.py: bench
live_capture's Binance frames with a sequence gap and its REST resync, a frame that is no JSON, an object
over two lines, a trade that is refused, a ping, a message in two frames, an unknown stream, the hour
turning) run with the compiled parts and with the pure-Python originals gives the same landing records,
the same JetStream messages (ids and payloads), the same replies on the socket and the same counts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def run_path(compiled: str) -> dict:
    env = {**os.environ, "MARKETDATA_COMPILED": compiled, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "tests.support.collector_path"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(done.stdout)


def test_compiled_and_pure_python_collect_the_same():
    fast, pure = run_path("1"), run_path("0")
    assert fast["compiled"] and not pure["compiled"]  # each ran what it was asked to
    assert fast["landing"] == pure["landing"]
    assert fast["messages"] == pure["messages"]
    assert fast["sent"] == pure["sent"] and fast["counts"] == pure["counts"]
    # what the faults made, so the comparison covers them
    records = [record for lines in fast["landing"].values() for record in lines]
    assert Counter(record.get("m") for record in records if "m" in record) == {"gap": 1, "resync": 1}
    assert sum("d" in record for record in records) >= 3  # no JSON, two lines, a message in two frames
    hours = {name.split("/")[-1][:14] for name in fast["landing"]}
    assert len(hours) == 2  # the hour turned mid-stream
    counts = fast["counts"]
    assert counts["bad_frames"] == {"not_json": 1, "unknown_instrument": 1, "malformed_trades": 1}
    assert counts["acks"] == 1 and counts["gaps"] == counts["snapshots"] == 1
    assert counts["trades"] == sum(len(json.loads(payload)) for _, _, payload in fast["messages"]) > 4000
    assert fast["sent"] == [[0x8A, 0]]  # the ping's pong
