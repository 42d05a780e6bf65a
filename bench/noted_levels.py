"""`bench noted_levels`: what a Binance depth diff costs the collector's book path, instructions and time.

Binance depthUpdate events (bench/book_path_peer.py's: 10 levels a side over ~400 prices a side, their
update ids chained) go through `DepthSync.on_frame` (`defer_sides`, the book's noted levels), the book's
top 20 read every 10 diffs (the settle a read makes), under the collector's GC settings (`streaming_gc`).
Instructions: callgrind over a feed of 2,000 and one of 4,000 diffs (the same 4,000 events decoded in
both): (I(4000) - I(2000)) / 2000 is a diff's share, whatever the machine's load. Time: the best of
`--rounds` feeds of all the diffs, µs a diff.
Results: bench/results/noted_levels.json. Run: `.venv/bin/python -m bench noted_levels [--rounds 7]`
(`MARKETDATA_COMPILED=0`: the pure-Python originals); `--feed N`: one feed, what callgrind runs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import deque
from itertools import starmap
from pathlib import Path

import msgspec

from bench.book_path_peer import diffs, snapshot
from marketdata_assets.ingest.live.collect.collector import streaming_gc

RESULTS = Path(__file__).parent / "results" / "noted_levels.json"
EVENTS, READ_EVERY, DEPTH = 4000, 10, 20  # events decoded a run; a top-`DEPTH` read every `READ_EVERY` diffs


def events() -> list:
    """`EVENTS` decoded `DepthEvent`s of one book, update ids chained (U = the previous u + 1)."""
    from marketdata_assets.sources.binance.records import DepthEvent

    decoder = msgspec.json.Decoder(DepthEvent)
    texts = [text for per_book in diffs(1, EVENTS, 1)[0] for text in per_book]
    chained = (text.replace('"U":1,"u":1', f'"U":{k + 1},"u":{k + 1}') for k, text in enumerate(texts))
    return [decoder.decode(text) for text in chained]


def feed(decoded: list, count: int):
    """The first `count` events through a synced `DepthSync`, its top read every `READ_EVERY`; the book."""
    from marketdata_assets.sources.binance.stream import DepthSync

    sync = DepthSync("BTCUSDT")
    sync.on_snapshot(0, snapshot(-1), snapshot(1))
    for k in range(count):
        if sync.on_frame(decoded[k]) != "applied":
            raise RuntimeError(f"event {k} not applied")
        if k % READ_EVERY == READ_EVERY - 1:
            sync.book.top(DEPTH)
    return sync.book


def instructions(count: int) -> int:
    """Instructions callgrind counts in a process's feed of `count` diffs (not its start, nor its exit)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
        argv += ["--collect-atstart=no", "--toggle-collect=starmap_next"]  # the feed alone (`main`)
        argv += [sys.executable, "-m", "bench.noted_levels", "--feed", str(count)]
        # the same hashes run to run, and no BLAS threads spinning (both would vary the count)
        env = {**os.environ, "PYTHONHASHSEED": "0", "OPENBLAS_NUM_THREADS": "1"}
        subprocess.run(argv, check=True, capture_output=True, timeout=1200, env=env)
        totals = re.search(r"^(?:summary|totals): (\d+)", out.read_text(), re.MULTILINE)
    if totals is None:
        raise RuntimeError("callgrind wrote no totals")
    return int(totals.group(1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench noted_levels")
    parser.add_argument("--rounds", type=int, default=7, help="timed feeds (the best one counts)")
    parser.add_argument("--feed", type=int, help="one feed of this many diffs, nothing measured")
    parser.add_argument("--no-callgrind", action="store_true")
    args = parser.parse_args(argv)
    decoded = events()
    streaming_gc()  # the collector's GC settings (the events decoded above left out of every collection)
    if args.feed is not None:  # called by itertools' starmap: callgrind counts in there only (`instructions`)
        deque(starmap(feed, [(decoded, args.feed)]), maxlen=0)
        return 0
    best = min(_timed(decoded) for _ in range(args.rounds))
    result = {"compiled": os.environ.get("MARKETDATA_COMPILED", "auto"), "us_a_diff": round(best * 1e6, 3)}
    if not args.no_callgrind:
        low, high = instructions(EVENTS // 2), instructions(EVENTS)
        result["instructions_a_diff"] = round((high - low) / (EVENTS - EVENTS // 2))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    print(json.dumps(result))
    return 0


def _timed(decoded: list) -> float:
    start = time.perf_counter()
    feed(decoded, len(decoded))
    return (time.perf_counter() - start) / len(decoded)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
