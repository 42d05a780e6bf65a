"""Binance's compiled frame reader (`_fast.BinanceFrames`, sources/_reader.pyx) against the usual way (each
frame decoded, its diff given to `DepthSync.on_frame` and its times noted as `Books.on_book` notes them):
over random depth diff sequences on several books (in sync, ahead of a gap, old, before the snapshot,
spelled otherwise, levels that are no plain decimals, an instrument with no book, sizes that are no number
refused when the book takes its notes in), the books read the same after every step, with the same update
ids, buffers, noted times and refusals."""

from __future__ import annotations

import importlib
import json
import random

import pytest

from marketdata_assets.core import compiled
from marketdata_assets.sources.binance.stream import BinanceSpotStream, DepthSync
from marketdata_assets.sources.stream import BOOKS, MALFORMED, TRADES

INSTRUMENTS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
PRICES = ["100.0", "100.5", "101", "99.25", "102.10", "98"]
SIZES = ["1", "0", "0.00000000", "2.5", "0.001", "7"]


def _fast():
    try:
        return importlib.import_module("marketdata_assets.sources.binance._fast")
    except ImportError:
        if compiled.mode() == "0":
            pytest.skip("MARKETDATA_COMPILED=0 and Binance's compiled reader is not built")
        raise


def _diff(rng: random.Random, instrument: str, first: int, last: int) -> str:
    def side():
        size = lambda: "1.2.3" if rng.random() < 0.01 else rng.choice(SIZES)
        return [[rng.choice(PRICES), size()] for _ in range(rng.randrange(0, 6))]

    event = {"e": "depthUpdate", "E": 1_700_000_000_000 + last, "s": instrument, "U": first, "u": last}
    text = json.dumps(
        {"stream": f"{instrument.lower()}@depth@100ms", "data": {**event, "b": side(), "a": side()}},
        separators=(",", ":"),
    )
    roll = rng.random()
    if roll < 0.03:
        return text.replace(":", ": ", 1)  # the decoder reads it
    if roll < 0.06:
        return text.replace('"b":[["', '"b":[[" ', 1)  # levels the scanner does not read
    return text


def _books():
    return {name: DepthSync(name) for name in INSTRUMENTS[:-1]}  # the last: no book (unsubscribed)


def _usual(books, times, frame, recv_ns) -> None:
    sync = books.get(frame.instrument)
    if sync is not None and sync.on_frame(frame.data) in ("snapshot", "applied"):
        times[frame.instrument] = (recv_ns, frame.data.E)


def _state(books, times, refused):
    out = {"times": dict(times), "refused": list(refused)}
    for name, sync in books.items():
        noted = sync.book._noted
        if noted is not None:
            noted = tuple(list(s.items()) for s in (noted if noted.__class__ is tuple else noted.sides()))
        out[name] = (sync.book.update_id, sync.needs_snapshot, len(sync.buffer), noted)
    return out


def test_depth_diffs_handed_on_as_the_usual_way_keeps_them():
    fast, rng = _fast(), random.Random(3)
    stream = BinanceSpotStream((TRADES, BOOKS))
    for name in INSTRUMENTS:
        stream._stream_of(f"{name.lower()}@depth@100ms")
    reader = fast.BinanceFrames(stream.typed_frames, DepthSync)
    paths = [(_books(), {}, []), (_books(), {}, [])]  # the usual way, the reader's
    next_id = dict.fromkeys(INSTRUMENTS, 10)
    held = 0
    for step in range(3000):
        name = rng.choice(INSTRUMENTS)
        if rng.random() < 0.04:  # a snapshot (REST) continuing the diffs
            body = {"lastUpdateId": next_id[name] - 1, "bids": [["100.0", "3"]], "asks": [["101", "4"]]}
            for books, _, _ in paths:
                if name in books:
                    books[name].on_snapshot_body(body)
            continue
        first = next_id[name] + (rng.choice([1, 5]) if rng.random() < 0.03 else 0)  # gaps
        first -= rng.choice([0, 3]) if rng.random() < 0.05 else 0  # old or overlapping
        last = first + rng.randrange(0, 4)
        next_id[name] = max(next_id[name], last + 1)
        text, recv_ns = _diff(rng, name, first, last), 1_700_000_000_000_000_000 + step
        books, times, refused = paths[0]
        try:
            _usual(books, times, stream.decode(text), recv_ns)
        except MALFORMED as error:
            refused.append((step, type(error).__name__, str(error)))
        books, times, refused = paths[1]
        typed = reader.read(text, recv_ns)
        try:
            if typed is None:
                _usual(books, times, stream.decode(text), recv_ns)
            else:
                held += 1
                frame = reader.hand_book(typed, books, times, recv_ns)
                if frame is not None:
                    _usual(books, times, frame, recv_ns)
        except MALFORMED as error:
            refused.append((step, type(error).__name__, str(error)))
        if step % 7 == 0:  # a read settles the books: what the notes held is taken in
            for books, _, refused in paths:
                for sync in books.values():
                    try:
                        sync.book.top(5)
                    except ValueError as error:
                        refused.append((step, "read", str(error)))
        assert _state(*paths[0]) == _state(*paths[1]), step
    assert 2000 < held < 3000
    assert paths[0][2] and paths[0][1]  # refusals and noted times came up


def test_a_stream_is_known_by_its_name_once_it_is_subscribed_and_never_before():
    """The reader finds a frame's stream from its name's bytes (`FrameReader.known`, remembering only
    names found): a stream not yet in the protocol's table is not read, and is read once it is there;
    names of every length, sharing prefixes, past the table's growth, each find their own entry."""
    fast = _fast()
    stream = BinanceSpotStream((TRADES, BOOKS))
    reader = fast.BinanceFrames(stream.typed_frames, DepthSync)
    names = [f"{'x' * (k % 7)}c{k}usdt" for k in range(500)] + ["c1usdt"[:k] for k in range(1, 6)]

    def frame(name: str, trade_id: int) -> str:
        data = {"e": "trade", "E": 1_700_000_000_001, "s": name.upper(), "t": trade_id, "p": "1.5"}
        data |= {"q": "2", "T": 1_700_000_000_000, "m": True, "M": True}
        return json.dumps({"stream": f"{name}@trade", "data": data}, separators=(",", ":"))

    assert [reader.read(frame(n, 1), 5) for n in names[:250]] == [None] * 250  # nothing subscribed yet
    for name in names[:250]:
        stream._stream_of(f"{name}@trade")
    for round_ in range(2):  # found, then remembered
        for k, name in enumerate(names):
            typed = reader.read(frame(name, k), 5)
            if k < 250:
                assert typed is stream.typed_frames[f"{name}@trade"], (round_, name)
                assert typed[1] == name.upper()
            else:
                assert typed is None, (round_, name)
        for name in names[250:]:  # subscribed later: read from now on
            stream._stream_of(f"{name}@trade")
        names_read = [reader.read(frame(n, 1), 5) for n in names[250:]]
        assert names_read == [stream.typed_frames[f"{n}@trade"] for n in names[250:]]
        names = names[:250] + [f"zz{n}" for n in names[250:]]  # and again: fresh names unknown at first
    reader.read(frame(names[0], 7), 5)
    assert reader.kind == 1  # TRADE_READ: read as a trade, not only found
