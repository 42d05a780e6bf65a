"""The live datasets' declarations and messages without a socket: which channels a venue subscribes
for which datasets (OKX's per instrument type and its business endpoint), an unknown dataset refused,
a kline published only once closed, a Deribit ticker's datasets as enabled, ids per dataset, and
USD-M's `pu` chaining (a first event continuing the snapshot by `pu`, a broken `pu` one gap)."""

from __future__ import annotations

import json

import pytest

from marketdata_assets.datasets.trade_tape import trade_batch
from marketdata_assets.sources.binance.futures_stream import BinanceUsdmStream, UsdmDepthSync
from marketdata_assets.sources.binance.records import TradeEvent
from marketdata_assets.sources.binance.stream import BinanceSpotStream
from marketdata_assets.sources.deribit.stream import DeribitStream
from marketdata_assets.sources.okx.stream import OkxStream
from marketdata_assets.sources.stream import (
    DEFAULT_DATASETS,
    LIVE_DATASETS,
    plan_connections,
    read_trade_frames,
)
from tests.support.reference import documented


def test_datasets_are_declared_and_unknown_ones_refused():
    for protocol in (BinanceSpotStream(), BinanceUsdmStream(), OkxStream(), DeribitStream()):
        assert protocol.datasets == DEFAULT_DATASETS
    with pytest.raises(ValueError, match="liquidations"):
        DeribitStream(datasets=["trades", "liquidations"])
    assert BinanceSpotStream(["trades", "bars_1m"]).channels(["BTCUSDT"], 100) == [
        "btcusdt@trade",
        "btcusdt@kline_1m",
    ]
    assert BinanceUsdmStream(["funding"]).channels(["BTCUSDT"], 100) == ["btcusdt@markPrice@1s"]


def test_okx_channels_follow_instrument_types_and_candles_get_the_business_endpoint():
    okx = documented(
        OkxStream([d for d in LIVE_DATASETS if d != "agg_trades"])
    )  # every live dataset but Binance spot's own
    channels = okx.channels(["BTC-USDT", "BTC-USDT-SWAP"], 100)
    assert "BTC-USDT@funding-rate" not in channels and "BTC-USDT@mark-price" not in channels  # spot
    assert {"BTC-USDT-SWAP@funding-rate", "BTC-USDT-SWAP@open-interest", "SWAP@liquidation-orders"} <= set(
        channels
    )
    plans = plan_connections(channels, 480, okx.endpoint)
    assert [okx.endpoint(p[0]) for p in plans] == ["", "business"]
    assert plans[1] == ["BTC-USDT@candle1m", "BTC-USDT-SWAP@candle1m"]
    assert (
        okx.endpoint_url("wss://ws.okx.com:8443/ws/v5/public", "business")
        == "wss://ws.okx.com:8443/ws/v5/business"
    )
    ((_, text),) = okx.subscribe_messages(["SWAP@liquidation-orders"], 1)
    assert json.loads(text)["args"] == [{"channel": "liquidation-orders", "instType": "SWAP"}]


def test_a_kline_is_published_once_closed_with_its_open_time_as_id():
    spot = BinanceSpotStream(["trades", "bars_1m"])
    bar = {
        "t": 60_000,
        "T": 119_999,
        "o": "1",
        "h": "2",
        "l": "0.5",
        "c": "1.5",
        "v": "3",
        "q": "4",
        "n": 7,
        "V": "1",
        "x": False,
    }

    def frame(closed: bool):
        return spot.decode(
            json.dumps(
                {
                    "stream": "btcusdt@kline_1m",
                    "data": {"e": "kline", "E": 120_001, "s": "BTCUSDT", "k": {**bar, "x": closed}},
                }
            )
        )

    assert spot.messages(frame(False), 5) == []
    (message,) = spot.messages(frame(True), 5)
    assert (message.dataset, message.msg_id, message.event_ms) == (
        "bars_1m",
        "bars_1m.BINANCE.BTCUSDT.60000",
        120_001,
    )
    assert (
        b'"close":1.5,' in message.payload and b'"volume":3,' in message.payload
    )  # the venue's "1.5", a number


def test_a_deribit_ticker_feeds_the_enabled_datasets_perpetuals_funding_only():
    deribit = documented(DeribitStream(datasets=["tickers", "mark_price", "funding", "open_interest"]))
    ticker = {
        "timestamp": 1623060194301,
        "best_bid_price": 1.0,
        "best_bid_amount": 2.0,
        "best_ask_price": 1.5,
        "best_ask_amount": 3.0,
        "mark_price": 1.2,
        "index_price": 1.1,
        "open_interest": 50.0,
    }

    def messages(instrument: str, **extra):
        frame = deribit.decode(
            json.dumps(
                {
                    "jsonrpc": "2.0",
                    "method": "subscription",
                    "params": {"channel": f"ticker.{instrument}.100ms", "data": {**ticker, **extra}},
                }
            )
        )
        return deribit.messages(frame, 1)

    perpetual = messages("BTC-PERPETUAL", current_funding=0.0001, funding_8h=0.0002)
    assert [m.msg_id for m in perpetual] == [
        f"{d}.DERIBIT.BTC-PERPETUAL.1623060194301"
        for d in ("tickers", "mark_price", "funding", "open_interest")
    ]
    assert [m.dataset for m in messages("BTC-27DEC24")] == [
        "tickers",
        "mark_price",
        "open_interest",
    ]  # documented: 10 USD


def test_usdm_events_chain_by_pu_only():
    sync = UsdmDepthSync("BTCUSDT")
    assert sync.on_event(99, 105, 97, [["1", "1"]], []) == "buffered"
    assert sync.on_snapshot(100, [["1", "2"]], [["2", "1"]]) == "synced"  # U <= 100 <= u: the first one
    assert sync.on_event(108, 110, 105, [], []) == "applied"  # U jumps: pu names the last u, fine
    assert sync.on_event(111, 112, 109, [], []) == "gap"  # pu names an event never seen
    assert sync.gap_details() == {"expected_prev": 110, "got_prev": 109, "got_first": 111}
    fresh = UsdmDepthSync("ETHUSDT")
    fresh.on_snapshot(200, [], [])
    assert fresh.on_event(203, 204, 200, [], []) == "applied"  # the first event continues the snapshot by pu


# Binance USD-M, "How to manage a local order book correctly" (developers.binance.com, derivatives/
# usds-margined-futures/websocket-market-streams): 4. drop any event where u is < lastUpdateId in the
# snapshot; 5. the first processed event should have U <= lastUpdateId AND u >= lastUpdateId; 6. each new
# event's pu should be equal to the previous event's u, otherwise initialize the process from step 3.
@pytest.mark.parametrize(
    "events, last_update_id, outcomes",
    [
        # u == lastUpdateId: not dropped (u < lastUpdateId is), it is the first processed event
        ([(150, 160, 149)], 160, ["applied"]),
        # u < lastUpdateId dropped; the next straddles it (U <= 160 <= u) and is the first
        ([(140, 150, 139), (151, 165, 150)], 160, ["old", "applied"]),
        # every buffered event starts after the snapshot and none names it in pu: too old a snapshot
        ([(170, 175, 169)], 160, "stale"),
        # the first processed event, then one whose pu is not its u: a gap, the process starts again
        ([(155, 162, 154), (163, 170, 161)], 160, ["applied", "gap"]),
    ],
)
def test_usdm_book_sync_follows_the_documented_rule(events, last_update_id, outcomes):
    buffered = UsdmDepthSync("BTCUSDT")  # the events arrived before the snapshot
    for event in events:
        assert buffered.on_event(*event, [], []) == "buffered"
    synced = buffered.on_snapshot(last_update_id, [["1", "1"]], [["2", "1"]])
    if outcomes == "stale":
        assert synced == "stale" and buffered.needs_snapshot
        return
    assert synced == ("gap" if "gap" in outcomes else "synced")
    live = UsdmDepthSync("BTCUSDT")  # the same events arriving after it, one outcome each
    live.on_snapshot(last_update_id, [["1", "1"]], [["2", "1"]])
    assert [live.on_event(*event, [], []) for event in events] == outcomes


def test_a_buffered_message_costs_its_own_size_not_the_json_encoders_buffer():
    """The publish buffer holds up to 200,000 records: each must cost its own size. orjson's bytes keep
    its 4 KB working buffer (4,097 B for a 223-byte trade: a full buffer was ~850 MB); a trade batch
    (`trade_batch`, what the buffer holds of trades) is joined at its size, other messages copied
    (`json_bytes`)."""
    import time
    import tracemalloc

    protocol = BinanceSpotStream(datasets=("trades",))
    now = int(time.time() * 1000)
    texts = [
        json.dumps(
            {
                "stream": "btcusdt@trade",
                "data": {
                    "e": "trade",
                    "E": now + i,
                    "s": "BTCUSDT",
                    "t": i,
                    "p": "40000.12",
                    "q": "0.0123",
                    "T": now + i,
                    "m": bool(i % 2),
                    "M": True,
                },
            }
        )
        for i in range(2000)
    ]
    frames = [protocol.decode(text) for text in texts]
    tracemalloc.start()
    try:
        kept = [
            trade_batch("BINANCE", "BTCUSDT", protocol.read_trades([frame], [time.time_ns()], []))[1]
            for frame in frames
        ]
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(kept) == 2000
    assert held / len(kept) < 2 * max(len(p) for p in kept) + 100, f"{held / len(kept):.0f} B a payload"


def test_binance_usdm_all_market_streams_give_every_symbols_messages():
    """`!markPrice@arr@1s`: an array of markPriceUpdate events (USD-M "Mark Price Stream for All market");
    `!forceOrder@arr`: one symbol's forceOrder a push ("All Market Liquidation Order Streams"); a delivery
    contract's markPriceUpdate has "" funding (no funding message)."""
    um = BinanceUsdmStream(datasets=("liquidations", "mark_price", "funding"))
    assert um.channels(["BTCUSDT", "ETHUSDT"], 100)[-1] == "!forceOrder@arr"  # one channel for every symbol
    marks = [
        {
            "e": "markPriceUpdate",
            "E": 1562305380000,
            "s": "BTCUSDT",
            "p": "11185.87786614",
            "i": "11784.62659091",
            "P": "11784.25641265",
            "r": "0.00030000",
            "T": 1562306400000,
        },
        {
            "e": "markPriceUpdate",
            "E": 1562305380000,
            "s": "BTCUSDT_250328",
            "p": "11190.1",
            "i": "11784.6",
            "P": "11784.2",
            "r": "",
            "T": "",
        },
    ]
    frame = um.decode(json.dumps({"stream": "!markPrice@arr@1s", "data": marks}))
    got = [(m.dataset, m.instrument) for m in um.messages(frame, 1)]
    assert got == [("mark_price", "BTCUSDT"), ("funding", "BTCUSDT"), ("mark_price", "BTCUSDT_250328")]
    order = {
        "e": "forceOrder",
        "E": 1568014460893,
        "o": {
            "s": "BTCUSDT",
            "S": "SELL",
            "o": "LIMIT",
            "f": "IOC",
            "q": "0.014",
            "p": "9910",
            "ap": "9910",
            "X": "FILLED",
            "l": "0.014",
            "z": "0.014",
            "T": 1568014460893,
        },
    }
    (liquidation,) = um.messages(um.decode(json.dumps({"stream": "!forceOrder@arr", "data": order})), 1)
    assert (liquidation.dataset, liquidation.instrument, liquidation.msg_id) == (
        "liquidations",
        "BTCUSDT",
        "liquidations.BINANCE_UM.BTCUSDT.1568014460893.SELL",
    )


def test_deribit_trades_stay_on_the_channel_the_hourly_load_reads_whatever_the_book_speed():
    deribit = DeribitStream(datasets=("trades", "books"))
    assert deribit.channels(["BTC-PERPETUAL"], 0) == ["trades.BTC-PERPETUAL.100ms", "book.BTC-PERPETUAL.raw"]
    assert deribit.trade_channel_format.format("BTC-PERPETUAL") == "trades.BTC-PERPETUAL.100ms"


def test_binance_trade_frames_read_at_once_are_the_records_trades_reads_one_by_one():
    """`BinanceSpotStream.read_trades` (the collector's hot path, no `Trade` between) against
    `read_trade_frames` (each frame through `trades`, as the hourly loads read the landing): the same
    records and the same frames refused, over events of the documented types, other spellings, and
    numbers at and past their edges."""
    import random

    protocol, rng = BinanceSpotStream(datasets=("trades",)), random.Random(7)
    numbers = ["1", "0.00000255", "94574.68", "0", "-1", "NaN", "1e400", "abc", "", "5.", "1_000", 5, None]
    texts = []
    for k in range(600):
        data = {
            "e": "trade",
            "E": 1672515782136 + k,
            "s": "BTCUSDT",
            "t": rng.choice([k, 2**63, str(k), -1]) if k % 17 == 0 else k,
            "p": rng.choice(numbers) if k % 9 == 0 else "40000.5",
            "q": rng.choice(numbers) if k % 10 == 0 else "0.01",
            "T": rng.choice([1672515782136, 1672515782136000, "x"]) if k % 7 == 0 else 1672515782000 + k,
            "m": rng.choice([True, False, "true", 1]) if k % 11 == 0 else bool(k % 2),
            "M": True,
        }
        if k % 23 == 0:
            del data[rng.choice(["E", "m", "p"])]
        texts.append(
            json.dumps({"stream": "btcusdt@trade", "data": data}, separators=(",", ":"))
        )  # as Binance sends
    frames, recvs = [protocol.decode(text) for text in texts], list(range(10**18, 10**18 + len(texts)))
    records, at_once, one_by_one, start, straight = [], [], [], 0, 0
    while start < len(frames):  # batches of 1 to 12 frames: some all of the documented types, some not
        end = start + rng.randint(1, 12)
        batch = protocol.read_trades(frames[start:end], recvs[start:end], at_once)
        assert batch == read_trade_frames(protocol, frames[start:end], recvs[start:end], one_by_one)
        straight += all(f.data.__class__ is TradeEvent for f in frames[start:end])
        records, start = records + batch, end
    assert [(frames.index(f), str(e)) for f, e in at_once] == [
        (frames.index(f), str(e)) for f, e in one_by_one
    ]
    assert 200 < len(records) < 500 and len(at_once) == 600 - len(records) and straight > 10  # both kinds
    # (a frame whose price or size is no positive number is not decoded as a `TradeEvent`: 16 batches here)
    assert {r.side for r in records} == {"buy", "sell"} and all(
        r.amount == r.price * r.quantity for r in records
    )
