"""bench/book_path.py's own side, small: the book it measures is the one the diffs make (a Decimal model
of the same events), so the bench times real work; the peer's side needs its venv (not run here)."""

from __future__ import annotations

import json
from decimal import Decimal

from bench.book_path import ours
from bench.book_path_peer import diffs, snapshot


def test_book_path_times_the_book_the_diffs_make():
    books, per_book, rounds, depth = 3, 4, 6, 5
    result = ours(books, per_book, rounds, measured=2, depth=depth)
    assert len(result["us_a_diff"]) == 2 and all(us > 0 for us in result["us_a_diff"])
    model = {"b": dict(snapshot(-1)), "a": dict(snapshot(1))}
    for texts_of in diffs(books, per_book, rounds):
        for text in texts_of[0]:
            event = json.loads(text)
            for key in ("b", "a"):
                for price, size in event[key]:
                    if Decimal(size) == 0:
                        model[key].pop(price, None)
                    else:
                        model[key][price] = size
    bids = sorted(model["b"].items(), key=lambda level: -Decimal(level[0]))[:depth]
    asks = sorted(model["a"].items(), key=lambda level: Decimal(level[0]))[:depth]
    assert result["top"] == (bids, asks)
    assert result["levels"] == len(model["b"]) > 20
