"""Binance's compiled readings (`_fast.pyx`) against their pure-Python originals: `typed_event` gives the
same frame (or the same None) for every spelling of a combined-stream frame, documented or odd, and
`events_to_trades` the same trades (or the same None) for trade events at every edge of their rules."""

from __future__ import annotations

import importlib
import itertools
import random

import msgspec
import pytest

from marketdata_assets.core import compiled
from marketdata_assets.sources.binance.combined import typed_event_py
from marketdata_assets.sources.binance.records import TradeEvent, events_to_trades_py
from marketdata_assets.sources.binance.stream import BinanceSpotStream
from marketdata_assets.sources.stream import BOOKS, TRADES


def _fast():
    try:
        return importlib.import_module("marketdata_assets.sources.binance._fast")
    except ImportError:
        if compiled.mode() == "0":
            pytest.skip("MARKETDATA_COMPILED=0 and Binance's compiled readings are not built")
        raise


# Binance's documented trade event (Websocket Market Streams, "Trade Streams"), in its combined-stream frame
DOCUMENTED = (
    '{"stream":"bnbbtc@trade","data":{"e":"trade","E":1672515782136,"s":"BNBBTC","t":12345,'
    '"p":"0.001","q":"100","T":1672515782136,"m":true,"M":true}}'
)
TEXTS = [
    DOCUMENTED,
    DOCUMENTED.replace('"m":true', '"m":"yes"'),
    DOCUMENTED.replace('"p":"0.001"', '"p":0.001'),
    DOCUMENTED.replace('"p":"0.001"', '"p":"-1"'),
    DOCUMENTED.replace('"t":12345,', ""),
    DOCUMENTED.replace('"stream":"bnbbtc@trade","data"', '"stream":"bnbbtc@trade","stream":"x@trade","data"'),
    DOCUMENTED.replace('"bnbbtc@trade"', '"ethbtc@trade"'),  # a stream not subscribed
    DOCUMENTED.replace('{"stream":', '{ "stream":'),
    DOCUMENTED[:40],
    '{"stream":"bnbbtc@trade',
    '{"stream":"',
    '{"stream"',
    "",
    '{"result":null,"id":1}',
    '{"stream":"bnbbtc@depth@100ms","data":{"e":"depthUpdate","E":1,"s":"BNBBTC","U":1,"u":2,"b":[],"a":[]}}',
    '{"stream":"bnbbtc@depth@100ms","data":{"e":"depthUpdate","E":1,"s":"BNBBTC","U":"1","u":2,"b":[],"a":[]}}',
    DOCUMENTED.replace("BNBBTC", "BNB€BTC"),
]


def test_typed_event_the_same_frame_or_none():
    fast = _fast().typed_event
    stream = BinanceSpotStream((TRADES, BOOKS))
    for name in ("bnbbtc@trade", "bnbbtc@depth@100ms"):
        stream._stream_of(name)  # what a subscription makes known
    read = 0
    for text in TEXTS:
        expected = typed_event_py(text, stream.typed_frames)
        assert fast(text, stream.typed_frames) == expected, text
        read += expected is not None
    # the documented frame, its `m` of another type (judged later) and its price as a number (read lax), a
    # non-ASCII symbol, the documented depth diff; the rest (a text update id in the strict depth record,
    # a stream decoded other than its name says, a negative price, a field missing, ...) read as any JSON
    assert read == 5


def _trade_text(rng, fields: dict) -> str:
    """A combined trade frame of `fields` (name -> its JSON text), in a random order."""
    items = list(fields.items())
    rng.shuffle(items)
    return '{"stream":"bnbbtc@trade","data":{' + ",".join(f'"{k}":{v}' for k, v in items) + "}}"


DECIMALS = [
    '"0.001"',
    '"100"',
    '"0"',
    '"0.0"',
    '"00.5"',
    '"0.50"',
    '".5"',
    '"5."',
    '"1e5"',
    '"-1"',
    '" 1"',
    '"1.2.3"',
    '"1' + "0" * 39 + '"',
    '"1' + "0" * 40 + '"',
    '"95000.1000000000000000001"',
    "0.001",
    '""',
    '"9007199254740993"',
    '"0.1000000000000000055511151231257827"',
    '"1\\u0030"',
]
INTEGERS = [
    "12345",
    "0",
    "-0",
    "-5",
    "012",
    "1.0",
    "1e3",
    "999999999999999999",
    "1000000000000000000",
    '"7"',
    "9223372036854775807",
    "-9223372036854775808",
    "null",
    "true",
]
OTHERS = [
    '"trade"',
    '"BNBBTC"',
    '"BNB€BTC"',
    '"a\\"b"',
    "true",
    "false",
    "88",
    "[1]",
    '{"x":1}',
    "1.5",
    "null",
]


def test_typed_event_reads_trade_frames_as_the_decoder_does():
    """The trade frames the compiled reading takes itself (no space, one-letter keys, plain values) and
    those it hands to the decoder: every field in every order and spelling, documented or odd (an older
    frame's buyer and seller order ids `b` and `a`, a missing or odd event time, prices at a float's
    limits), the same frame or the same None either way."""
    fast, rng = _fast().typed_event, random.Random(5)
    stream = BinanceSpotStream((TRADES, BOOKS))
    stream._stream_of("bnbbtc@trade")
    base = {
        "e": '"trade"',
        "E": "1672515782136",
        "s": '"BNBBTC"',
        "t": "12345",
        "p": '"0.001"',
        "q": '"100"',
        "T": "1672515782136",
        "m": "true",
        "M": "true",
    }
    texts = [_trade_text(rng, base) for _ in range(20)]
    texts += [_trade_text(rng, {**base, "b": "88", "a": "50"}) for _ in range(5)]  # before 2025: order ids
    for key, values in (
        ("p", DECIMALS),
        ("q", DECIMALS),
        ("t", INTEGERS),
        ("T", INTEGERS),
        ("E", INTEGERS),
        ("m", ["true", "false", '"yes"', "1", "null"]),
        ("e", OTHERS),
        ("s", OTHERS),
        ("M", OTHERS),
    ):
        texts += [_trade_text(rng, {**base, key: value}) for value in values]
        texts += [_trade_text(rng, {k: v for k, v in base.items() if k != key})]  # the field missing
    texts += [
        _trade_text(rng, {**base, "trade": "1"}),
        _trade_text(rng, base).replace(":", ": ", 1),
        _trade_text(rng, base) + " ",
        _trade_text(rng, base)[:-1],
        _trade_text(rng, base).replace("}}", '},"x":1}'),
    ]
    texts += [_trade_text(rng, base).replace('"t":', '"t":1,"t":', 1)]  # a key twice
    for _ in range(3000):  # prices and sizes of every length, read to the same float
        digits = "".join(rng.choice("0123456789") for _ in range(rng.randrange(1, 30)))
        point = rng.randrange(len(digits) + 1)
        texts.append(
            _trade_text(rng, {**base, "p": f'"{digits[:point]}.{digits[point:]}"', "q": f'"{digits}"'})
        )
    taken = 0
    for text in texts:
        expected = typed_event_py(text, stream.typed_frames)
        got = fast(text, stream.typed_frames)
        assert got == expected and repr(got) == repr(expected), text
        taken += expected is not None
    assert 2000 < taken < len(texts)


def _depth_text(rng, fields: dict) -> str:
    items = list(fields.items())
    rng.shuffle(items)
    return '{"stream":"bnbbtc@depth@100ms","data":{' + ",".join(f'"{k}":{v}' for k, v in items) + "}}"


SIDE_TEXTS = [
    '[["0.0024","10"]]',
    "[]",
    '[["0.0024","10"],["0.0025","0"]]',
    '[["1","2","3"]]',
    '[["1",2]]',
    '[ ["1","2"]]',
    '[["1","2"],]',
    '[["1","2"]',
    '[["1","\\u0032"]]',
    '{"1":"2"}',
    "[[]]",
    '[["[","]"]]',
    '[["",""]]',
    "null",
    '"x"',
    "1",
]


def test_typed_event_reads_depth_frames_as_the_decoder_does():
    """Depth diff frames (Binance's documented `depthUpdate` and every field's odd spellings) give the same
    frame, sides kept as their text, or the same None, whether the compiled reading takes them or not."""
    fast, rng = _fast().typed_event, random.Random(6)
    stream = BinanceSpotStream((TRADES, BOOKS))
    stream._stream_of("bnbbtc@depth@100ms")
    base = {
        "e": '"depthUpdate"',
        "E": "1672515782136",
        "s": '"BNBBTC"',
        "U": "157",
        "u": "160",
        "b": '[["0.0024","10"]]',
        "a": '[["0.0026","100"]]',
    }
    texts = [_depth_text(rng, base) for _ in range(20)]
    for key, values in (
        ("b", SIDE_TEXTS),
        ("a", SIDE_TEXTS),
        ("U", INTEGERS),
        ("u", INTEGERS),
        ("E", INTEGERS),
        ("e", OTHERS),
        ("s", OTHERS),
    ):
        texts += [_depth_text(rng, {**base, key: value}) for value in values]
        texts += [_depth_text(rng, {k: v for k, v in base.items() if k != key})]
    texts += [
        _depth_text(rng, {**base, "T": "1", "x": '"y"'}),
        _depth_text(rng, {**base, "pu": "156"}),
        _depth_text(rng, base).replace('"U":', '"U":1,"U":', 1),
        _depth_text(rng, base) + " ",
    ]
    taken = 0
    for text in texts:
        expected = typed_event_py(text, stream.typed_frames)
        got = fast(text, stream.typed_frames)
        assert got == expected, text
        if expected is not None:
            assert (bytes(got.data.b), bytes(got.data.a)) == (
                bytes(expected.data.b),
                bytes(expected.data.a),
            ), text
        taken += expected is not None
    assert 20 < taken < len(texts)


# Binance's documented diff event ("Diff. Depth Stream"), in its combined-stream frame
DOCUMENTED_DEPTH = (
    '{"stream":"bnbbtc@depth","data":{"e":"depthUpdate","E":1672515782136,"s":"BNBBTC","U":157,"u":160,'
    '"b":[["0.0024","10"]],"a":[["0.0026","100"]]}}'
)


def test_typed_event_reads_the_documented_frames_itself():
    """The documented trade and depth diff frames never reach their decoders: the compiled reading takes
    them."""

    def refuse(text):
        raise AssertionError("decoded by msgspec")

    typed = {
        "bnbbtc@trade": (refuse, "BNBBTC", TRADES, "bnbbtc@trade", BinanceSpotStream.TYPED["trade"].type),
        "bnbbtc@depth": (refuse, "BNBBTC", BOOKS, "bnbbtc@depth", BinanceSpotStream.TYPED["depth"].type),
    }
    frame = _fast().typed_event(DOCUMENTED, typed)
    assert frame.data == TradeEvent(t=12345, p=0.001, q=100.0, T=1672515782136, m=True, E=1672515782136)
    assert (frame.channel, frame.dataset, frame.instrument) == ("bnbbtc@trade", TRADES, "BNBBTC")
    frame = _fast().typed_event(DOCUMENTED_DEPTH, typed)
    assert (frame.data.U, frame.data.u, bytes(frame.data.b), bytes(frame.data.a)) == (
        157,
        160,
        b'[["0.0024","10"]]',
        b'[["0.0026","100"]]',
    )


def test_events_to_trades_the_same_at_every_edge():
    fast = _fast().events_to_trades
    times = [0, 1, 99_999_999_999, 100_000_000_000, 1_672_515_782_136, 99_999_999_999_999, 10**14, 10**17 - 1]
    event_times = [None, 1_672_515_782_136, -(2**63), 2**63, 2**63 - 1, "1672515782136", 1.5, True]
    makers = [True, False, "true", 1, None]
    events = [
        TradeEvent(t=k, p=0.001 * (k + 1), q=100.0, T=t, m=m, E=e)
        for k, (t, e, m) in enumerate(itertools.product(times, event_times, makers))
    ]
    ids = [0, 9, 10, 99, 10**17, 2**63 - 1, 2**63, -1, True]  # ids written as text at every edge
    events += [TradeEvent(t=t, p=1.0, q=2.0, T=1_672_515_782_136, m=False, E=None) for t in ids]
    recvs = list(range(len(events)))
    got = fast("BINANCE", ["BNBBTC"], events, recvs)
    assert [record.trade_id for record in got[-len(ids) :]] == [str(t) for t in ids]
    assert got == events_to_trades_py("BINANCE", ["BNBBTC"], events, recvs)
    names = [f"I{k}" for k in range(len(events))]
    assert fast("BINANCE", names, events, recvs) == events_to_trades_py("BINANCE", names, events, recvs)
    assert 0 < sum(record is not None for record in got) < len(got)
    with pytest.raises(AttributeError):  # decoded JSON, not the record: the caller reads it frame by frame
        fast("BINANCE", ["BNBBTC"], [msgspec.json.decode(DOCUMENTED)["data"]], [0])


SIDES = [
    b'[["95000.10","1.50000"],["94999.00","0.00000000"]]',  # documented: price and quantity as text
    b"[]",
    b'[["1","2"]]',
    b'[["1","2"],["1","3"]]',  # one price twice: the last wins
    b'[ ["1","2"]]',  # a space: read as any JSON
    b'[["1","2","3"]]',  # three items: the book refuses it
    b'[["1",2]]',  # a number for text
    b'[["1e5","2"]]',
    b'[["","2"]]',
    b'[["-1","2"]]',
    b'[["1","2"],]',
    b'[["1","2"]',
    b'[["1","\\u0032"]]',  # an escape
    b'{"1":"2"}',
    b"[[]]",
    b"",
]


def _book_after(defer, sides):
    from marketdata_assets.datasets.order_book import OrderBook

    book = OrderBook()
    book.reset(1, [["95000.10", "1"]], [["95001.00", "1"]])
    outcome = None
    try:
        for k, (bids, asks) in enumerate(sides):
            defer(book, 2 + k, bids, asks)
    except Exception as error:  # noqa: BLE001  (the same refusal either way is the point)
        outcome = (type(error).__name__, str(error))
    noted = book._noted
    if noted is not None:  # the original's dicts, or the compiled notes (`_noted.NotedLevels`) as those dicts
        noted = tuple(list(side.items()) for side in (noted if noted.__class__ is tuple else noted.sides()))
    try:
        read = (book.bids, book.asks)
    except ValueError as error:
        read = ("ValueError", str(error))
    return outcome, noted, book.update_id, read


def test_defer_sides_the_same_book_for_every_spelling():
    from marketdata_assets.sources.binance.records import defer_sides_py

    fast = _fast().defer_sides
    raw = [msgspec.Raw(side) for side in SIDES]
    pairs = list(itertools.product(raw, raw)) + [(raw[0], [["1", "2"]]), ([["3", "4"]], raw[0])]
    straight = 0
    for bids, asks in pairs:
        assert _book_after(fast, [(bids, asks)]) == _book_after(defer_sides_py, [(bids, asks)]), (bids, asks)
    for k in range(len(raw)):  # sequences: what one diff noted, the next one finds
        seq = [(raw[k], raw[(k + 3) % len(raw)]), (raw[(k + 1) % len(raw)], raw[k])]
        expected = _book_after(defer_sides_py, seq)
        assert _book_after(fast, seq) == expected
        straight += expected[0] is None
    assert 0 < straight < len(raw)  # some sequences refused, others taken in


def test_defer_sides_takes_a_full_note_in_as_the_original_does():
    """Past the book's bound of noted prices (NOTED_LIMIT) the levels are taken in at once, either way."""
    from marketdata_assets.datasets.order_book import NOTED_LIMIT
    from marketdata_assets.sources.binance.records import defer_sides_py

    half = NOTED_LIMIT // 2 + 1
    bids = msgspec.Raw(("[" + ",".join(f'["{k}.5","1.0"]' for k in range(half)) + "]").encode())
    asks = msgspec.Raw(("[" + ",".join(f'["{k + half}.5","0.0"]' for k in range(half)) + "]").encode())
    fast, slow = _book_after(_fast().defer_sides, [(bids, asks)]), _book_after(defer_sides_py, [(bids, asks)])
    assert fast == slow and fast[1] is None and len(fast[3][0]) == half + 1  # taken in: nothing left noted
