"""Binance's book rules (DepthSync) and stream planning, on hand-made events; the replay's protocol
answers (acks, errors, the control-message limit) over a real WebSocket."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets

from marketdata_assets.core.http import Backoff
from marketdata_assets.sources.binance.stream import (
    DepthSync,
    classify,
    plan_connections,
    subscribe_messages,
)
from tests.support.live import replays


def test_snapshot_then_diffs_follow_binance_rules():
    sync = DepthSync("BTCUSDT")
    assert sync.on_event(95, 99, [["1.0", "5"]], []) == "buffered"
    assert sync.on_event(100, 103, [["1.0", "6"]], [["2.0", "1"]]) == "buffered"
    assert sync.on_event(104, 104, [], [["2.0", "0"]]) == "buffered"
    assert sync.on_snapshot(90, [["1.0", "4"]], []) == "stale"  # older than the first buffered event: another
    assert sync.on_snapshot(101, [["1.0", "4"], ["0.9", "1"]], [["2.0", "3"]]) == "synced"
    # u <= 101 dropped; 100..103 straddles 102 and applies; then 104
    assert sync.book.update_id == 104 and sync.book.bids == {"1.0": "6", "0.9": "1"} and sync.book.asks == {}
    assert sync.on_event(100, 104, [["1.0", "9"]], []) == "old"  # a repeat (an overlapping connection)
    assert sync.on_event(105, 106, [["0.9", "0"]], []) == "applied"
    assert sync.on_event(108, 110, [], []) == "gap" and sync.last_gap == (107, 108) and sync.needs_snapshot
    assert sync.on_event(111, 112, [], []) == "buffered"  # one gap until the next snapshot
    assert sync.on_snapshot(109, [["1.0", "1"]], []) == "synced" and sync.book.update_id == 112


def test_a_gap_inside_the_buffer_is_found_at_the_snapshot():
    sync = DepthSync("BTCUSDT")
    for first, last in ((10, 12), (13, 15), (17, 18), (19, 19)):
        sync.on_event(first, last, [], [])
    assert sync.on_snapshot(11, [], []) == "gap" and sync.last_gap == (16, 17)
    assert sync.buffer[0][:2] == (17, 18) and sync.on_snapshot(17, [], []) == "synced"
    assert sync.book.update_id == 19


def test_streams_are_planned_within_the_limits():
    streams = [f"i{k}@trade" for k in range(2500)] + ["i0@trade"]
    plans = plan_connections(streams)
    assert [len(p) for p in plans] == [1024, 1024, 452] and [s for p in plans for s in p] == streams[:2500]
    messages = subscribe_messages(streams[:250], 7)
    assert [i for i, _ in messages] == [7, 8, 9]
    assert [len(json.loads(t)["params"]) for _, t in messages] == [100, 100, 50]


def test_backoff_doubles_to_its_cap_with_jitter():
    backoff = Backoff(1.0, 32.0)
    delays = [backoff.next_delay() for _ in range(8)]
    for n, delay in enumerate(delays, start=1):
        assert min(2 ** (n - 1), 32) / 2 <= delay <= min(2 ** (n - 1), 32)
    backoff.reset()
    assert backoff.next_delay() <= 1.0


def test_replay_acks_refuses_and_drops_a_connection_over_the_control_limit():
    stack, _, ws = replays()
    with stack:
        ws.add_fault(kind="subscribe_error", after=1)  # the second SUBSCRIBE is refused

        async def talk():
            async with websockets.connect(f"{ws.url}/stream", proxy=None) as conn:
                answers = []
                for k, params in enumerate((["btcusdt@trade"], ["ethusdt@trade"], ["nosuch@trade"]), start=1):
                    await conn.send(json.dumps({"method": "SUBSCRIBE", "params": params, "id": k}))
                    while True:  # data frames of the subscribed stream come in between
                        frame = classify(json.loads(await conn.recv()))
                        if frame.kind != "event":
                            answers.append(frame)
                            break
                await conn.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 4}))
                for k in range(5, 12):  # over 5 control messages in a second
                    await conn.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": k}))
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    while True:
                        await conn.recv()
                return answers, closed.value.rcvd

        answers, close = asyncio.run(talk())
    assert [(a.kind, a.request_id) for a in answers] == [("ack", 1), ("error", 2), ("error", 3)]
    assert answers[1].code == "2" and json.loads(answers[1].error)["msg"].startswith("Invalid request")
    assert "nosuch@trade" in answers[2].error  # the venue's whole error object is kept
    assert close.code == 1008 and ws.counts["limit_closes"] == 1


def test_a_trade_event_reads_the_same_from_the_frame_or_its_json():
    """One reading of the event: a frame decoded as `TradeEvent` from its bytes (the collector's hot path,
    `decode` then `read_trades`) and the same event's decoded JSON (a frame of other types, `trade_event`)
    give the same trade or the same error, for each field set to each odd value (or missing); an error
    names the trade, the field and the value."""
    import json

    import orjson

    from marketdata_assets.sources.binance.records import TradeEvent
    from marketdata_assets.sources.binance.stream import BinanceSpotStream, trade_event

    base = {
        "e": "trade",
        "E": 1795588288431,
        "s": "BTCUSDT",
        "t": 12345,
        "p": "95096.07",
        "q": "1.66280",
        "T": 1795588288431,
        "m": False,
        "M": True,
    }
    odd = [None, True, False, 0, -1, 1, 1.5, "1", "0", "-1", "nan", "inf", "1e3", "5.", " 2", "abc", 2**63]
    odd += [2**64, 1795588288431, 1795588288431000, 17955882884, "1795588288431", [], {}, "<missing>"]

    def from_json(data):
        try:
            return trade_event(data, "BTCUSDT", "BINANCE")
        except Exception as error:  # noqa: BLE001  (the error is the outcome compared)
            return type(error).__name__, str(error)

    stream = BinanceSpotStream()
    stream.decode(json.dumps({"stream": "btcusdt@trade", "data": base}))  # the stream seen: typed from now

    def collected(text):
        bad = []
        frame = stream.decode(text)
        trades = stream.read_trades([frame], [0], bad)
        return (type(bad[0][1]).__name__, str(bad[0][1])) if bad else trades, frame.data.__class__

    compared, typed, refused = 0, 0, 0
    for key in ("t", "p", "q", "T", "m", "E"):
        for value in odd:
            data = {k: v for k, v in base.items() if not (k == key and value == "<missing>")}
            if value != "<missing>":
                data[key] = value
            text = json.dumps({"stream": "btcusdt@trade", "data": data}, separators=(",", ":"))
            got, kind = collected(text)
            expected = from_json(orjson.loads(text)["data"])  # as the collector decodes JSON
            if (
                key == "m" and value == 2**64
            ):  # past 64 bits orjson reads a float, msgspec an int: both refused
                assert got[0] == expected[0] == "SourceDataError" and " m is 18446744073709551616" in got[1]
            else:
                assert got == expected, (key, value)
            if isinstance(got, tuple):
                refused += 1
                assert f" {key} " in got[1] or "lacks field" in got[1] and repr(key) in got[1], (key, got)
            compared, typed = compared + 1, typed + (kind is TradeEvent)
    assert compared > 130 and typed > 20 and refused > 40
    assert from_json(base)[0].quantity == 1.6628 and from_json(base)[0].ts_us == base["T"] * 1000
    assert from_json({**base, "E": True})[0].event_ms == base["T"]  # a flag is no event time
    assert from_json({**base, "p": "-1"}) == (
        "SourceDataError",
        "BINANCE BTCUSDT: trade 12345 p is '-1', not positive",
    )


def test_a_restarted_replay_never_sends_a_trade_id_again(tmp_path):
    """The stream plays the tape faster than its clock: a replay started again within the hour began at
    the tape's "now", behind what the first one sent, and sent those ids again with new times (the
    hourly load then refused the hour). With `trade_ids_file` (make run's) it goes on after them."""
    from marketdata_assets.replay.crypto import ReplayConfig
    from marketdata_assets.replay.crypto.binance_ws import BinanceWsReplay, WsConfig

    config = WsConfig(trade_ids_file=tmp_path / "ids.json")
    replay = ReplayConfig(seed=5, instruments={"BINANCE": ["BTCUSDT", "ETHUSDT"]})
    first = BinanceWsReplay(config, replay=replay)
    sent = [t[0] for t in first.instruments["BTCUSDT"].tape_trades(500)]
    first.save_trade_ids()
    eth_before = BinanceWsReplay(WsConfig(), replay=replay).instruments["ETHUSDT"].tape_trades(1)[0][0]
    again = BinanceWsReplay(config, replay=replay)
    assert [t[0] for t in again.instruments["BTCUSDT"].tape_trades(3)] == [
        sent[-1] + 1,
        sent[-1] + 2,
        sent[-1] + 3,
    ]
    without = BinanceWsReplay(WsConfig(), replay=replay)  # as before: from the trade of now
    assert without.instruments["BTCUSDT"].tape_trades(1)[0][0] <= sent[-1]  # it would send those ids again
    # ETH (nothing sent) starts from the trade of now, as without the file (the clock moves on between them)
    assert (
        eth_before
        <= again.instruments["ETHUSDT"].tape_trades(1)[0][0]
        <= without.instruments["ETHUSDT"].tape_trades(1)[0][0]
    )


def test_a_waiting_book_keeps_its_events_levels_as_text_and_reads_those_the_snapshot_leaves():
    """A decoded `depthUpdate` holds its sides as text (`msgspec.Raw`): a book waiting for its snapshot
    buffers them unread, and reads only the events the snapshot leaves, into the book the documented rules
    make; a side spelled otherwise (numbers, not text) is read as plain JSON, for the book to judge."""
    import msgspec

    from marketdata_assets.sources.binance.records import DepthFrame

    decode = msgspec.json.Decoder(DepthFrame).decode

    def event(first: int, last: int, bids: str, asks: str = "[]"):
        return decode(
            '{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1,"s":"BTCUSDT",'
            f'"U":{first},"u":{last},"b":{bids},"a":{asks}}}}}'
        ).data

    sync = DepthSync("BTCUSDT")
    assert sync.on_frame(event(95, 99, '[["1.0","5"]]')) == "buffered"
    assert sync.on_frame(event(100, 103, '[["1.0","6"]]', '[["2.0","1"]]')) == "buffered"
    assert all(type(b) is msgspec.Raw and type(a) is msgspec.Raw for _, _, b, a in sync.buffer)
    assert sync.on_snapshot(101, [["1.0", "4"], ["0.9", "1"]], [["2.0", "3"]]) == "synced"
    assert (
        sync.book.update_id == 103
        and sync.book.bids == {"1.0": "6", "0.9": "1"}
        and sync.book.asks == {"2.0": "1"}
    )
    assert sync.on_frame(event(104, 104, "[[0.9, 2]]", '[["2.0","0"]]')) == "applied"  # numbers: plain JSON
    assert sync.book.asks == {} and sync.book.bids[0.9] == 2
    with pytest.raises(ValueError, match="length 1"):  # a level that is no pair: malformed, as any spelling
        sync.on_frame(event(105, 105, '[["0.8"]]'))
    assert sync.book.update_id == 104
