"""The compiled noted levels (`datasets/_noted.pyx`, noted by Binance's compiled `defer_sides`) against the
original's dicts (`records.defer_sides_py`, `OrderBook.defer`): over random diff sequences (prices repeated
and spelled alike, zeros in several spellings, removals of absent levels, sizes the scanner reads that are
no number, sides it does not read, the bound of noted prices crossed, reads between diffs) both books raise
the same errors at the same diffs and read the same: levels and their order, top, update id."""

from __future__ import annotations

import importlib
import random

import msgspec
import pytest

from marketdata_assets.core import compiled
from marketdata_assets.datasets import order_book
from marketdata_assets.datasets.order_book import OrderBook
from marketdata_assets.sources.binance.records import defer_sides_py

PRICES = ["1", "1.0", "01", "2", "2.5", "3", "10", "10.00", "4.25", "7", "8.125", "9"]
SIZES = ["1", "0", "0.00000000", "0.0", "00", "0.", ".0", "1.5", "5.", ".5", "12", "3.25000000", "0.001"]
ODD_SIZES = ["1.2.3", ".", "1e-400"]  # the scanner reads the first two (no numbers); the third it does not


def _modules():
    try:
        return (
            importlib.import_module("marketdata_assets.sources.binance._fast"),
            importlib.import_module("marketdata_assets.datasets._noted"),
        )
    except ImportError:
        if compiled.mode() == "0":
            pytest.skip("MARKETDATA_COMPILED=0 and the compiled book notes are not built")
        raise


def _side(rng: random.Random, odd: float):
    """A side of a diff: its JSON text as sent (mostly), at times spaced or a list (the original reads it)."""
    levels = [
        [rng.choice(PRICES), rng.choice(ODD_SIZES) if rng.random() < odd else rng.choice(SIZES)]
        for _ in range(rng.randint(0, 8))
    ]
    text = msgspec.json.encode(levels)
    roll = rng.random()
    if roll < 0.05:
        return levels  # already read (the original's path)
    if roll < 0.1:
        return msgspec.Raw(text.replace(b",", b", "))  # a spelling the scanner leaves to the original
    return msgspec.Raw(text)


def _outcome(step):
    try:
        return "ok", step()
    except (ValueError, TypeError) as error:
        return type(error).__name__, str(error)


def _read(book: OrderBook, how: int):
    """One read of the book: its sides (keys in order), its top, or its levels as numbers."""
    if how == 0:
        return list(book.bids.items()), list(book.asks.items())
    if how == 1:
        return book.top(3)
    return book.levels()


def _run(defer, seed: int, odd: float) -> list:
    """What a book shows over one random sequence of diffs and reads, step by step."""
    rng = random.Random(seed)
    book = OrderBook()
    book.reset(1, [["1", "1"], ["2", "2"]], [["9", "1"], ["10", "3"]])
    shown = []
    for update_id in range(2, rng.randint(3, 60)):
        bids, asks = _side(rng, odd), _side(rng, odd)
        shown.append(_outcome(lambda: defer(book, update_id, bids, asks)))  # noqa: B023 (called at once)
        shown.append(book.update_id)
        if rng.random() < 0.25:
            how = rng.randrange(3)
            shown.append(_outcome(lambda: _read(book, how)))  # noqa: B023
    shown.append(_outcome(lambda: _read(book, 0)))
    shown.append((book._order, _outcome(lambda: book.top(20))))
    return shown


def test_the_same_book_over_random_diffs():
    fast, _ = _modules()
    for seed in range(600):
        odd = 0.0 if seed % 3 else 0.03  # a third of the sequences with sizes that are no number
        assert _run(fast.defer_sides, seed, odd) == _run(defer_sides_py, seed, odd), seed


def test_the_same_book_across_the_bound_of_noted_prices(monkeypatch):
    """A low bound of noted prices, crossed by many diffs: taken in (or refused) at the same diffs."""
    fast, _ = _modules()
    monkeypatch.setattr(order_book, "NOTED_LIMIT", 7)
    monkeypatch.setattr(fast, "NOTED_LIMIT", 7)
    for seed in range(300):
        odd = 0.0 if seed % 2 else 0.02
        assert _run(fast.defer_sides, seed, odd) == _run(defer_sides_py, seed, odd), seed


def test_the_notes_kept_as_the_original_dicts():
    """The notes themselves: each price once, where it first came, with its latest size; growing past the
    first room; read back as the original's dicts (`sides`) for the original to go on noting into."""
    fast, noted = _modules()
    rng = random.Random(11)
    prices = [f"{95000 + k / 100:.2f}" for k in range(300)] + ["1", "1.0"]
    levels = [[rng.choice(prices), f"{rng.randint(0, 9)}.{rng.randint(0, 99999):05d}"] for _ in range(2000)]
    compiled_book, original = OrderBook(), OrderBook()
    for k in range(0, len(levels), 40):
        bids, asks = levels[k : k + 20], levels[k + 20 : k + 40]
        fast.defer_sides(
            compiled_book, k, msgspec.Raw(msgspec.json.encode(bids)), msgspec.Raw(msgspec.json.encode(asks))
        )
        defer_sides_py(
            original, k, msgspec.Raw(msgspec.json.encode(bids)), msgspec.Raw(msgspec.json.encode(asks))
        )
    notes = compiled_book._noted
    assert notes.__class__ is noted.NotedLevels and len(notes.bids) == len(original._noted[0]) > 200
    assert [list(side.items()) for side in notes.sides()] == [list(side.items()) for side in original._noted]
    compiled_book.defer(99_999, [["1", "2"]], [])  # the original's reading: the notes become its dicts
    original.defer(99_999, [["1", "2"]], [])
    assert compiled_book._noted.__class__ is tuple and compiled_book._noted == original._noted
    assert (compiled_book.bids, compiled_book.asks) == (original.bids, original.asks)


def test_the_original_dicts_taken_over_by_the_next_compiled_diff():
    """A diff the original read (its dicts) and then one the compiled reader reads: the dicts become compiled
    notes again when they hold text only (the same levels in the same order), and stay dicts otherwise; the
    book reads the same either way."""
    fast, noted = _modules()
    diff = (msgspec.Raw(b'[["3","1"],["1","0"]]'), msgspec.Raw(b'[["4","2"]]'))
    for first, taken in (
        ([["2", "5"], ["3", "7"]], True),
        ([[2, "5"]], False),
        ([["2", "\u0665"]], False),
    ):  # text, a number, non-ASCII text
        compiled_book, original = OrderBook(), OrderBook()
        for book, defer in ((compiled_book, fast.defer_sides), (original, defer_sides_py)):
            book.reset(1, [["1", "1"], ["9", "1"]], [["5", "1"]])
            book.defer(2, first, [["6", "1"]])  # the original's reading (a list): its dicts
            defer(book, 3, *diff)
        assert (compiled_book._noted.__class__ is noted.NotedLevels) is taken
        if taken:
            assert [list(side.items()) for side in compiled_book._noted.sides()] == [
                list(side.items()) for side in original._noted
            ]
        assert (compiled_book.bids, compiled_book.asks, compiled_book.update_id) == (
            original.bids,
            original.asks,
            original.update_id,
        )
