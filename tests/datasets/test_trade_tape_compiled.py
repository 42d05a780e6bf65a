"""The compiled trade tape (`datasets/_tape.pyx`, filled by Binance's compiled reader `BinanceFrames`) against
its original (`trade_tape.TradeTape_py`, which reads the decoded frames at the seal). Over Binance trade
frames in every spelling and at every edge of their rules (some read by the compiled reader, the others
decoded and read at the seal: odd spellings, frames the rules refuse) and over OKX's documented trade frames
(every one decoded), both tapes read the same records and refusals and write the same messages (payload
bytes and ids) for every range, with the same first and last sequences, first channel and lags."""

from __future__ import annotations

import importlib
import random

import pytest

from marketdata_assets.core import compiled
from marketdata_assets.datasets.trade_tape import TradeTape_py
from marketdata_assets.ingest.live.stats import LAG_BUCKETS_S
from marketdata_assets.sources.binance.stream import BinanceSpotStream, DepthSync
from marketdata_assets.sources.okx.stream import OkxStream
from marketdata_assets.sources.stream import BOOKS, TRADES
from tests.support.reference import documented

STREAM = "bnbbtc@trade"
TIMES = ["0", "1", "99999999999", "100000000000", "1672515782136", "99999999999999", "100000000000000"]
EVENT_TIMES = [None, "1672515782136", "-5", "0", "999999999999999999", "1.5", '"1"', "null"]
# numbers at each edge of msgspec's float layouts (123.0, 1.25, 0.0001, 1e-5, 1e16, 1.5e16) and of the
# digits the compiled reading writes itself (15 significant ones) or leaves to msgspec (16 or more)
EDGES = [
    "10000000000000000",
    "1000000000000000",
    "9999999999999999",
    "15000000000000000",
    "0.0001",
    "0.00001",
    "0.000012",
    "123456789012345",
    "1234567890123456",
    "12345678.90123456",
    "0.1",
    "100",
    "100.00000000",
    "0.00000001",
    "5",
    "1.5",
    "0.000000000000000000001",
    "123456789012345678901",
]
IDS = ["0", "9", "10", "12345", "100000000000000000", "999999999999999999", "9223372036854775807", "-1"]


def _modules():
    try:
        return (
            importlib.import_module("marketdata_assets.datasets._tape"),
            importlib.import_module("marketdata_assets.sources.binance._fast"),
        )
    except ImportError:
        if compiled.mode() == "0":
            pytest.skip("MARKETDATA_COMPILED=0 and the compiled trade tape is not built")
        raise


def _decimal(rng: random.Random) -> str:
    """A price or size as Binance writes it, of 1 to 17 digits, from 1e-8 to 1e12 (amounts in every form
    msgspec writes a float: 1e-16, 0.00001, 12.5, 1e16, 1.5e20)."""
    digits = str(rng.randrange(1, 10 ** rng.randrange(1, 18)))
    point = rng.randrange(-8, len(digits) + 1)
    if point <= 0:
        return "0." + "0" * -point + digits
    return digits[:point] + ("." + digits[point:] if point < len(digits) else "")


def _trade_text(rng: random.Random, k: int) -> str:
    fields = {
        "e": '"trade"',
        "E": rng.choice(EVENT_TIMES) if rng.random() < 0.3 else str(1_672_515_782_136 + k),
        "s": '"BNBBTC"',
        "t": rng.choice(IDS) if rng.random() < 0.1 else str(1000 + k),
        "p": f'"{rng.choice(EDGES) if rng.random() < 0.1 else _decimal(rng)}"',
        "q": f'"{rng.choice(EDGES) if rng.random() < 0.1 else _decimal(rng)}"',
        "T": rng.choice(TIMES) if rng.random() < 0.2 else str(1_672_515_782_136_000 + k),
        "m": rng.choice(["true", "false"]) if rng.random() < 0.95 else '"yes"',
        "M": "true",
    }
    if fields["E"] is None:
        del fields["E"]
    items = list(fields.items())
    rng.shuffle(items)
    text = f'{{"stream":"{STREAM}","data":{{' + ",".join(f'"{k}":{v}' for k, v in items) + "}}"
    return text.replace(":", ": ", 1) if rng.random() < 0.05 else text  # a spelling the decoder reads


def _filled(fast, stream, texts: list[str]):
    """Both tapes over `texts`: the compiled one as the collector's compiled loops fill it (the reader
    first, the frame decoded when it does not read it), the original with every frame decoded."""
    reader = fast.BinanceFrames(stream.typed_frames, DepthSync)
    tapes = (
        TradeTape_py(stream.venue, "BNBBTC", "c1", 7, stream.read_trades),
        _modules()[0].TradeTape(stream.venue, "BNBBTC", "c1", 7, stream.read_trades),
    )
    for k, text in enumerate(texts):
        recv_ns = 1_672_515_782_136_000_000 + 1_000_003 * k
        tapes[0].add(stream.decode(text), recv_ns)
        typed = reader.read(text, recv_ns)
        if typed is not None:
            tapes[1].take(reader.trades, typed[3])
        else:
            tapes[1].add(stream.decode(text), recv_ns)
    return tapes


def _same(tapes, rng: random.Random) -> int:
    """Both tapes read and written alike; how many records."""
    bads = ([], [])
    counts = [tape.read(bad) for tape, bad in zip(tapes, bads, strict=True)]
    assert counts[0] == counts[1]
    assert [(f, str(e)) for f, e in bads[0]] == [(f, str(e)) for f, e in bads[1]]
    for name in ("first_seq", "last_seq", "first_channel", "first_recv", "conn_id", "tick"):
        assert getattr(tapes[0], name) == getattr(tapes[1], name), name
    assert len(tapes[0]) == len(tapes[1])
    buckets = ([0] * (len(LAG_BUCKETS_S) + 1), [0] * (len(LAG_BUCKETS_S) + 1))
    sums = [tape.lags(b, LAG_BUCKETS_S) for tape, b in zip(tapes, buckets, strict=True)]
    assert sums[0] == sums[1] and buckets[0] == buckets[1]
    n = counts[0]
    ranges = [(0, n), (n - 1, n), (0, 1)] + [tuple(sorted(rng.sample(range(n + 1), 2))) for _ in range(20)]
    for start, stop in ranges:
        assert tapes[0].batch(start, stop) == tapes[1].batch(start, stop), (start, stop)
    with pytest.raises(IndexError):
        tapes[1].batch(0, n + 1)
    return n


def test_binance_trades_read_and_written_as_the_original_does():
    _, fast = _modules()
    stream, rng = BinanceSpotStream((TRADES, BOOKS)), random.Random(11)
    stream._stream_of(STREAM)
    texts = [_trade_text(rng, k) for k in range(4000)]
    n = _same(_filled(fast, stream, texts), rng)
    assert 3000 < n < 4000  # most read, some refused (their rules)
    reader = fast.BinanceFrames(stream.typed_frames, DepthSync)
    read = sum(reader.read(text, 0) is not None for text in texts)
    assert 2500 < read < n  # most by the compiled reader, the others decoded and read at the seal


def test_documented_binance_and_okx_frames_on_both_tapes():
    _, fast = _modules()
    stream = BinanceSpotStream((TRADES, BOOKS))
    stream._stream_of(STREAM)
    binance = (
        '{"stream":"bnbbtc@trade","data":{"e":"trade","E":1672515782136,"s":"BNBBTC","t":12345,'
        '"p":"0.001","q":"100","T":1672515782136,"m":true,"M":true}}'
    )
    assert _same(_filled(fast, stream, [binance] * 3), random.Random(1)) == 3
    okx = documented(OkxStream())
    frame = (
        '{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","tradeId":"130639474",'
        '"px":"42219.9","sz":"0.12060306","side":"buy","ts":"1630048897897","count":"3"}]}'
    )
    tapes = (
        TradeTape_py(okx.venue, "BTC-USDT", "c1", 0, okx.read_trades),
        _modules()[0].TradeTape(okx.venue, "BTC-USDT", "c1", 0, okx.read_trades),
    )
    for k in range(4):
        for tape in tapes:
            tape.add(okx.decode(frame.replace("130639474", str(130639474 + k))), k)
    assert _same(tapes, random.Random(2)) == 4


def test_an_empty_tape_and_a_take_with_nothing_read():
    tape, fast = _modules()
    stream = BinanceSpotStream((TRADES, BOOKS))
    empty = tape.TradeTape(stream.venue, "BNBBTC", "c1", 0, stream.read_trades)
    assert empty.read([]) == 0 and empty.first_seq is None and empty.last_seq is None
    assert empty.lags([0] * 13, LAG_BUCKETS_S) == 0.0
    with pytest.raises(IndexError):
        empty.batch(0, 1)
    with pytest.raises(RuntimeError, match="no trade read"):
        empty.take(fast.BinanceFrames(stream.typed_frames, DepthSync).trades, STREAM)
