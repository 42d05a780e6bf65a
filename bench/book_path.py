"""`bench book_path`: the collector's book path at a universe against cryptofeed's, on the same diffs.

Each of `--books` books (2,000: the universe run's) gets `--per-book` Binance depthUpdate events a round
(a book-second: 5 at the universe run's steady state), 10 levels a side over ~400 prices a side
(bench/book_path_peer.py `diffs`), then its top `--depth` levels are read (the collector's once-a-second
top-N). Ours: each event decoded (`DepthEvent`), its levels read and deferred (`OrderBook.defer`), the
top read (`OrderBook.top`), with the collector's GC settings (`streaming_gc`). The peer: cryptofeed
2.4.1's `_book` (two Decimals a level into order_book's C `SortedDict`) in its own venv. CPU µs a diff of
the last `--measured` rounds of each run (the first rounds warm the sides up to ~400 levels); runs
interleaved, ours first. Why: at 2,000 books the book is the collector's largest cost in its steady
state, and it is bound by memory (each settle touches sides that left the caches since the last second:
docs/live-capture.md, "Session 43").

Results: bench/results/book_path.json. Run: `scripts/with-env .venv/bin/python -m bench book_path
[--runs 3] [--no-peer]`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import msgspec

from bench.book_path_peer import diffs, snapshot
from bench.peer_venv import ensure_peer_python
from marketdata_assets.core import settings
from marketdata_assets.datasets.order_book import OrderBook
from marketdata_assets.ingest.live.collect.collector import streaming_gc
from marketdata_assets.sources.binance.records import DepthEvent, levels

RESULTS = Path(__file__).parent / "results" / "book_path.json"


def ours(books: int, per_book: int, rounds: int, measured: int, depth: int) -> dict:
    """Our book path over `diffs(...)`: CPU µs a diff of each of the last `measured` rounds."""
    decoder = msgspec.json.Decoder(DepthEvent)
    kept = [OrderBook() for _ in range(books)]
    for book in kept:
        book.reset(0, snapshot(-1), snapshot(1))
    data = diffs(books, per_book, rounds)
    results = []
    for at, texts_of in enumerate(data):
        c0 = time.process_time()
        for book, texts in zip(kept, texts_of, strict=True):
            for text in texts:
                event = decoder.decode(text)
                book.defer(event.u, levels(event.b), levels(event.a))
            book.top(depth)
        if at >= rounds - measured:
            results.append((time.process_time() - c0) / (books * per_book) * 1e6)
    top = kept[0].top(depth)
    return {"us_a_diff": [round(r, 2) for r in results], "levels": len(kept[0].bids), "top": top}


def peer(python: Path, books: int, per_book: int, rounds: int, measured: int, depth: int) -> dict:
    script = Path(__file__).parent / "book_path_peer.py"
    argv = [str(python), str(script), *(str(n) for n in (books, per_book, rounds, measured, depth))]
    done = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=600)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench book_path")
    parser.add_argument("--books", type=int, default=2000)
    parser.add_argument("--per-book", type=int, default=5, help="diffs a book a round (a book-second)")
    parser.add_argument("--rounds", type=int, default=40, help="rounds a run, the last --measured measured")
    parser.add_argument("--measured", type=int, default=5)
    parser.add_argument("--depth", type=int, default=20, help="levels a side read a round (the top-N)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-peer", action="store_true", help="ours alone (no peer venv needed)")
    args = parser.parse_args(argv)
    shape = (args.books, args.per_book, args.rounds, args.measured, args.depth)
    python = None if args.no_peer else ensure_peer_python(settings.state_dir() / "bench-peer-venv")
    runs: dict[str, list[dict]] = {"ours": [], "cryptofeed": []}
    streaming_gc()  # the collector's GC settings, for this process's runs of ours
    for _ in range(args.runs):
        runs["ours"].append(ours(*shape))
        if python is not None:
            runs["cryptofeed"].append(peer(python, *shape))
    medians = {
        name: statistics.median(us for run in done for us in run["us_a_diff"])
        for name, done in runs.items()
        if done
    }
    for run in runs["ours"]:
        del run["top"]
    result = {
        "shape": dict(zip(("books", "per_book", "rounds", "measured", "depth"), shape, strict=True)),
        "median_us_a_diff": medians,
        "runs": runs,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    print(
        f"book path, {args.books:,} books, {args.per_book} diffs a book-second of 10 levels a side, "
        f"top {args.depth} read each second: "
        + ", ".join(f"{name} {us:.2f} µs a diff" for name, us in medians.items())
        + f" (load {result['load_average']})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
