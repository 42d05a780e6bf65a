"""OKX's and Deribit's stream rules without a socket: the checksum's spelling, the chained
sequence rules (no-change updates, sequence resets, repeats, one gap until the next snapshot) and
how frames are read (pong, errors, Deribit's test_request answered), bad frames counted."""

from __future__ import annotations

import asyncio
import json
import zlib

import pytest

from marketdata_assets.ingest.live.collect.collector import CollectorConfig, LiveCollector
from marketdata_assets.sources.deribit.stream import DeribitStream
from marketdata_assets.sources.okx.stream import OkxBookSync, OkxStream, checksum
from marketdata_assets.sources.stream import ChainedBookSync
from marketdata_assets.stores.landing import LandingWriter
from marketdata_assets.stores.landing.reader import read_lines


def test_okx_checksum_interleaves_the_raw_strings_and_is_signed():
    bids = [("3366.1", "7"), ("3366", "6")]
    asks = [("3366.8", "9"), ("3368", "8"), ("3372", "8")]
    text = "3366.1:7:3366.8:9:3366:6:3368:8:3372:8"  # the longer side continues alone
    expected = zlib.crc32(text.encode())
    expected = expected - (1 << 32) if expected >= 1 << 31 else expected
    assert checksum(bids, asks) == expected
    assert checksum([("1.10", "2")], []) != checksum([("1.1", "2")], [])  # strings as sent, not numbers
    assert any(checksum([(str(p), "1")], []) < 0 for p in range(50))  # signed 32-bit


def okx_books(action: str, prev: int, seq: int, bids=(), asks=(), check: int = 0) -> dict:
    data = {
        "bids": [[*b, "0", "1"] for b in bids],
        "asks": [[*a, "0", "1"] for a in asks],
        "prevSeqId": prev,
        "seqId": seq,
        "checksum": check,
    }
    return {"arg": {"channel": "books", "instId": "BTC-USDT"}, "action": action, "data": [data]}


def test_okx_book_checksum_is_checked_unless_zero():
    sync = OkxBookSync("BTC-USDT")
    good = checksum([("100.5", "1")], [("101", "2")])
    assert sync.on_frame(okx_books("snapshot", -1, 10, [("100.5", "1")], [("101", "2")], good)) == "snapshot"
    assert sync.on_frame(okx_books("update", 10, 11, [("100.5", "3")], check=12345)) == "mismatch"
    assert sync.needs_snapshot and sync.gap_details()["expected_checksum"] == 12345
    # deprecated (always 0 since June 2026): not checked
    assert sync.on_frame(okx_books("snapshot", -1, 12, [("100.5", "1")], [("101", "2")], 0)) == "snapshot"


def test_chained_rules_no_change_reset_repeat_and_one_gap():
    sync = ChainedBookSync("X")
    assert sync.on_update(1, 2, [], []) == "buffered"  # nothing before the snapshot
    assert sync.on_snapshot(10, [("1", "1")], [("2", "1")]) == "snapshot"
    assert sync.on_update(10, 10, [], []) == "applied"  # no change: seqId = prevSeqId
    assert sync.on_update(10, 3, [("1", "0")], []) == "applied"  # a sequence reset: still continuous
    assert sync.book.update_id == 3 and sync.book.bids == {}
    assert sync.on_update(2, 3, [], []) == "old"  # a repeat from an overlapping connection
    assert sync.on_update(5, 6, [], []) == "gap"
    assert sync.gap_details() == {"expected_prev": 3, "got_prev": 5, "got": 6}
    assert sync.on_update(6, 7, [], []) == "buffered"  # one gap until the next snapshot
    assert sync.on_snapshot(20, [], []) == "snapshot" and not sync.needs_snapshot
    assert sync.on_snapshot(20, [], []) == "old"


def test_frames_are_read_by_shape():
    okx = OkxStream()
    assert okx.decode("pong").kind == "control"
    error = okx.decode(
        json.dumps({"id": "7", "event": "error", "code": "60018", "msg": "nope", "connId": "a"})
    )
    assert (error.kind, error.request_id, error.code) == ("error", 7, "60018")
    assert json.loads(error.error) == {
        "id": "7",
        "event": "error",
        "code": "60018",
        "msg": "nope",
        "connId": "a",
    }
    refused = deribit_error = DeribitStream().decode(
        json.dumps(
            {
                "jsonrpc": "2.0",
                "id": 8,
                "error": {
                    "code": -32602,
                    "message": "Invalid params",
                    "data": {"reason": "wrong format", "param": "channels"},
                },
            }
        )
    )
    assert (refused.kind, refused.code, json.loads(deribit_error.error)["data"]["param"]) == (
        "error",
        "-32602",
        "channels",
    )
    event = okx.decode(json.dumps({"arg": {"channel": "trades", "instId": "BTC-USDT"}, "data": []}))
    assert (event.channel, event.dataset, event.instrument) == ("BTC-USDT@trades", "trades", "BTC-USDT")
    notice = okx.decode(
        json.dumps(
            {
                "event": "notice",
                "code": "64008",
                "msg": "The connection will soon be closed for a service upgrade. Please reconnect.",
                "connId": "a4d3ae55",
            }
        )
    )
    assert (notice.kind, notice.error.split(":")[0]) == ("notice", "64008")  # the collector rolls over on it
    assert okx.decode(json.dumps({"event": "notice", "code": "99999", "msg": "?"})).kind == "control"
    deribit = DeribitStream()
    beat = deribit.decode(
        json.dumps({"jsonrpc": "2.0", "method": "heartbeat", "params": {"type": "test_request"}})
    )
    assert beat.kind == "control" and json.loads(beat.reply)["method"] == "public/test"
    plain = deribit.decode(
        json.dumps({"jsonrpc": "2.0", "method": "heartbeat", "params": {"type": "heartbeat"}})
    )
    assert plain.reply is None
    note = deribit.decode(
        json.dumps(
            {
                "jsonrpc": "2.0",
                "method": "subscription",
                "params": {"channel": "book.BTC_USDC-PERPETUAL.100ms", "data": {}},
            }
        )
    )
    assert (note.dataset, note.instrument) == ("books", "BTC_USDC-PERPETUAL")
    trades = deribit.decode(
        json.dumps(
            {
                "jsonrpc": "2.0",
                "method": "subscription",
                "params": {
                    "channel": "trades.BTC-PERPETUAL.100ms",
                    "data": [
                        {
                            "trade_id": "81",
                            "trade_seq": 30,
                            "timestamp": 1590484512188,
                            "price": 8950.0,
                            "amount": 10.0,
                            "direction": "sell",
                        }
                    ],
                },
            }
        )
    )
    ((dataset, instrument, msg_id, payload, event_ms),) = deribit.messages(trades, 9)
    assert (dataset, instrument, msg_id) == ("trades", "BTC-PERPETUAL", "DERIBIT.BTC-PERPETUAL.81")
    assert json.loads(payload)["side"] == "sell" and event_ms == 1590484512188
    assert (json.loads(payload)["quantity"], json.loads(payload)["amount"]) == (
        10.0 / 8950.0,
        10.0,
    )  # inverse: USD


def test_bad_frames_are_counted_by_reason_and_never_stop_the_collector(tmp_path):
    """Through the collector's processing (real landing files, no socket): each bad frame counted
    with its reason, landed raw, and the good frame after them still handled."""

    async def scenario():
        writer = LandingWriter(tmp_path, "OKX")
        collector = LiveCollector(OkxStream(), CollectorConfig(["BTC-USDT"], "ws://unused"), writer)
        books = {"arg": {"channel": "books", "instId": "BTC-USDT"}, "action": "update"}
        frames = [
            '{"arg": {"channel": "books"',
            json.dumps({**books, "data": [{"seqId": "x"}]}),
            json.dumps({"arg": {"channel": "opt-summary", "instId": "BTC-USDT"}, "data": []}),
            json.dumps({**books, "arg": {"channel": "books", "instId": "DOGE-USDT"}, "data": []}),
            json.dumps([1, 2]),
            json.dumps(
                {
                    "arg": {"channel": "trades", "instId": "BTC-USDT"},
                    "data": [
                        {
                            "instId": "BTC-USDT",
                            "tradeId": "1",
                            "px": "1",
                            "sz": "1",
                            "side": "buy",
                            "ts": "1630048897897",
                        }
                    ],
                }
            ),
        ]
        await collector.processing.process([("frame", "c1", k, text) for k, text in enumerate(frames)])
        collector.publisher.seal_trades()  # the trade frames read (at the latest `trade_batch_s` after)
        writer.close()
        return collector.stats

    stats = asyncio.run(scenario())
    assert stats.bad_frames == {
        "not_json": 1,
        "malformed_books": 1,
        "unknown_stream": 1,
        "unknown_instrument": 1,
        "unknown_shape": 1,
    }
    assert stats.trades == 1 and stats.frames == 6


def test_okx_books_without_sequence_ids_are_kept_by_their_checksum_alone():
    """The older `books` push carries `checksum` but no `seqId`/`prevSeqId`: applied and checked by CRC32."""
    sync = OkxBookSync("BTC-USDT")

    def push(action, bids, asks, check, ts):
        data = {
            "asks": [[*a, "0", "1"] for a in asks],
            "bids": [[*b, "0", "1"] for b in bids],
            "ts": str(ts),
            "checksum": check,
        }
        return {"arg": {"channel": "books", "instId": "BTC-USDT"}, "action": action, "data": [data]}

    bids, asks = [("8476.98", "415")], [("8476.99", "3")]
    assert sync.on_frame(push("snapshot", bids, asks, checksum(bids, asks), 1597026383085)) == "snapshot"
    after = checksum([("8476.98", "414")], asks)
    assert sync.on_frame(push("update", [("8476.98", "414")], [], after, 1597026383185)) == "applied"
    assert sync.book.update_id == 1597026383185 and sync.book.top(1)[0] == [("8476.98", "414")]
    assert sync.on_frame(push("update", [("8476.97", "2")], [], 12345, 1597026383285)) == "mismatch"
    assert sync.needs_snapshot and sync.on_frame(push("update", [], [], 0, 1597026383385)) == "buffered"


def test_okx_funding_rate_fields_the_venue_leaves_out_are_null_and_counted():
    okx = OkxStream(datasets=("funding",))
    full = {
        "instType": "SWAP",
        "instId": "BTC-USD-SWAP",
        "fundingRate": "0.0001875391284828",
        "fundingTime": "1700726400000",
        "method": "current_period",
        "nextFundingRate": "",
        "nextFundingTime": "1700755200000",
        "ts": "1700724675402",
    }
    frame = okx.decode(
        json.dumps(
            {
                "arg": {"channel": "funding-rate", "instId": "BTC-USD-SWAP"},
                "data": [
                    full,
                    {k: v for k, v in full.items() if k not in ("fundingRate", "nextFundingTime")},
                ],
            }
        )
    )
    first, second = (
        json.loads(m.payload) for m in okx.messages(frame, 1)
    )  # the rate for the settlement at fundingTime
    assert (first["funding_rate"], first["next_funding_ms"]) == (0.0001875391284828, 1700726400000)
    assert (second["funding_rate"], second["next_funding_ms"]) == (None, 1700726400000)
    bare = {k: v for k, v in full.items() if k not in ("fundingTime", "nextFundingTime", "nextFundingRate")}
    (third,) = okx.messages(
        okx.decode(
            json.dumps({"arg": {"channel": "funding-rate", "instId": "BTC-USD-SWAP"}, "data": [bare]})
        ),
        1,
    )
    assert json.loads(third.payload)["next_funding_ms"] is None  # optional fields optional
    assert okx.warnings == {"funding_rate_missing": 1}  # the collector's stats show this dict


def test_deribit_grouped_book_channels_are_read_as_whole_books():
    deribit = DeribitStream()
    note = deribit.decode(
        json.dumps(
            {
                "jsonrpc": "2.0",
                "method": "subscription",
                "params": {
                    "channel": "book.BTC-PERPETUAL.none.10.100ms",
                    "data": {
                        "timestamp": 1554375447971,
                        "instrument_name": "BTC-PERPETUAL",
                        "change_id": 297217,
                        "bids": [[5042.34, 30], [5041.94, 20]],
                        "asks": [[5042.64, 40], [5043.3, 40]],
                    },
                },
            }
        )
    )
    assert (note.dataset, note.instrument) == ("books", "BTC-PERPETUAL")
    sync = deribit.new_book("BTC-PERPETUAL")
    assert sync.on_frame(note.data) == "snapshot" and sync.book.top(1) == (
        [("5042.34", "30")],
        [("5042.64", "40")],
    )
    later = {**note.data, "change_id": 297218, "bids": [[5042.5, 10]], "asks": [[5043.3, 40]]}
    assert sync.on_frame(later) == "applied" and sync.book.top(5) == ([("5042.5", "10")], [("5043.3", "40")])
    assert (
        sync.on_frame(note.data) == "old"
    )  # an older whole book (an overlapping connection) changes nothing


def test_a_refused_request_is_sent_again_after_a_growing_jittered_backoff(tmp_path):
    """Each refusal of the same request (a rate limit: Deribit 10028) waits about twice as long as the
    one before, up to the cap; counted by code with the venue's whole error object; an ack resets it."""
    from marketdata_assets.ingest.live.collect.connection import Connection, Pacer

    async def scenario():
        config = CollectorConfig(["BTC-PERPETUAL"], "ws://unused", backoff_base_s=1.0, backoff_cap_s=8.0)
        collector = LiveCollector(DeribitStream(), config, LandingWriter(tmp_path, "DERIBIT"))
        conn = Connection(
            "c1", "ws://unused", [], [], collector.queue, collector.stats, stale_s=5, pacer=Pacer(5)
        )
        collector.connections["c1"] = conn
        text = (
            '{"jsonrpc":"2.0","id":1,"method":"public/subscribe",'
            '"params":{"channels":["trades.BTC-PERPETUAL.100ms"]}}'
        )
        request_id, waits = 1, []
        for _ in range(5):
            conn.requests[request_id] = collector.protocol.with_id(text, request_id)
            error = json.dumps(
                {"jsonrpc": "2.0", "id": request_id, "error": {"code": 10028, "message": "too_many_requests"}}
            )
            collector.processing._on_frame("c1", 0, collector.protocol.decode(error))
            waits.append(collector.stats.retry_wait_s)
            request_id = max(collector.conns.requests.refused_ids)
        collector.processing._on_frame(
            "c1", 0, collector.protocol.decode(json.dumps({"jsonrpc": "2.0", "id": request_id, "result": []}))
        )
        collector.writer.close()
        return collector, waits

    collector, waits = asyncio.run(scenario())
    for k, wait in enumerate(waits):  # base x 2^k, drawn between half and all of it, capped at 8 s
        assert min(8.0, 2**k) / 2 <= wait <= min(8.0, 2**k), waits
    assert collector.stats.errors_by_code == {"10028": 5} and collector.stats.refused_retries == 5
    assert json.loads(collector.stats.last_errors["10028"]) == {"code": 10028, "message": "too_many_requests"}
    assert (
        collector.conns.requests.refusals == {}
    )  # acknowledged: the next refusal starts from the base again


def test_deribit_numbers_are_kept_as_the_venue_wrote_them():
    deribit = DeribitStream(datasets=("tickers", "mark_price"))
    text = (
        '{"jsonrpc":"2.0","method":"subscription","params":{"channel":"ticker.BTC-PERPETUAL.100ms","data":'
        '{"timestamp":1623060194301,"instrument_name":"BTC-PERPETUAL","best_bid_price":0.00000255,'
        '"best_bid_amount":1000.0,"best_ask_price":0.0000026,"best_ask_amount":10,"last_price":0.00000255,'
        '"mark_price":0.0000025512,"index_price":0.00000255,"open_interest":1.5}}}'
    )
    ticker, mark = (m.payload for m in deribit.messages(deribit.decode(text), 1))
    assert (
        b'"bid":0.00000255,' in ticker and b'"ask":0.0000026,' in ticker
    )  # as the venue wrote them, not 2.55e-06
    assert json.loads(ticker)["bid_size"] == 1000.0 / 0.00000255  # an inverse contract's USD amount in BTC
    assert b'"mark_price":0.0000025512,"index_price":0.00000255' in mark


def test_a_depth_level_whose_size_is_no_number_is_a_counted_malformed_book_not_a_dead_processor(tmp_path):
    """A size no Decimal reads ("abc") raised decimal's InvalidOperation, which no handler took: the
    processor task died with it. It is now a ValueError naming the size, counted as `malformed_books`,
    and the frames after it are still handled; a zero spelled in other digits ("٠") removes its level.
    Binance's books take their levels in when read (`OrderBook.defer`): a bad size is counted at that
    read, the other levels are in; a level that is no [price, size] pair is counted with its frame."""
    from marketdata_assets.datasets.order_book import OrderBook
    from tests.support.live import BinanceSpotCollector

    book = OrderBook()
    book.reset(1, [["1", "1"], ["2", "1"]], [])
    book.apply(2, [["1", "٠"]], [])  # Arabic-Indic zero: isdigit() says digits, the level is still zero
    assert book.bids == {"2": "1"}
    with pytest.raises(ValueError, match="'abc' is not a number"):
        book.apply(3, [["2", "abc"], ["3", "1"]], [])
    assert book.bids == {"2": "1", "3": "1"}

    def depth(first: int, bids: list) -> str:
        return json.dumps(
            {
                "stream": "btcusdt@depth@100ms",
                "data": {
                    "e": "depthUpdate",
                    "E": 1,
                    "s": "BTCUSDT",
                    "U": first,
                    "u": first,
                    "b": bids,
                    "a": [],
                },
            }
        )

    async def scenario():
        writer = LandingWriter(tmp_path, "BINANCE")
        collector = BinanceSpotCollector(
            CollectorConfig(["BTCUSDT"], "ws://unused", "http://127.0.0.1:9"), writer
        )
        collector.books.by_instrument["BTCUSDT"].on_snapshot(10, [["1", "1"], ["3", "1"]], [["2", "1"]])
        collector.conns.conn_streams["c1"] = collector.streams()  # the connection carrying its channels
        frames = [
            depth(11, [["1", "abc"], ["0.5", "2"]]),
            depth(12, [["1.5", "²"]]),
            depth(13, [["3", "1", "x"]]),
            json.dumps(
                {
                    "stream": "btcusdt@trade",
                    "data": {
                        "e": "trade",
                        "E": 1,
                        "s": "BTCUSDT",
                        "t": 5,
                        "p": "1",
                        "q": "1",
                        "T": 1672515782136,
                        "m": True,
                    },
                }
            ),
        ]
        await collector.processing.process([("frame", "c1", k, text) for k, text in enumerate(frames)])
        collector.publisher.seal_trades()
        in_frames = dict(collector.stats.bad_frames)
        read = collector.books.book_snapshot("BTCUSDT")
        rebuilding = collector.books.by_instrument[
            "BTCUSDT"
        ].needs_snapshot and collector.books.snapshotting == {"BTCUSDT"}
        await _cancel(collector.books.snapshot_tasks)
        writer.close()
        return collector.stats, in_frames, read, rebuilding

    stats, in_frames, read, rebuilding = asyncio.run(scenario())
    assert in_frames == {"malformed_books": 1}  # the level of three items, with its frame
    assert stats.bad_frames == {"malformed_books": 2}  # and the sizes that are no numbers, at the read
    assert read is None and rebuilding and stats.gaps == 1  # the book is rebuilt from a fresh snapshot
    lines = [
        json.loads(line)
        for path in sorted((tmp_path / "BINANCE" / "btcusdt@depth@100ms").glob("*.zst"))
        for line in read_lines(path)
    ]
    markers = [(line["m"], line["x"]) for line in lines if "m" in line]
    assert [(kind, x["cause"]) for kind, x in markers] == [("gap", "malformed")]
    assert markers[0][1]["error"] == "book level size 'abc' is not a number (and 1 more)"
    assert stats.trades == 1 and stats.frames == 4


async def _cancel(tasks) -> None:
    for task in list(tasks):
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def test_a_deferred_book_reads_as_the_updates_applied_in_order_make_it():
    """`OrderBook.defer` notes levels (last one per price wins) and takes them in at the next read:
    over random diffs of few prices (each moved many times, set to zero in several spellings, removed
    when absent) and reads at random points, both books read the same, levels and update id; a book
    nobody reads takes its levels in once it has noted `NOTED_LIMIT` prices."""
    import random

    from marketdata_assets.datasets import order_book
    from marketdata_assets.datasets.order_book import OrderBook

    rng = random.Random(7)
    sizes = ["0", "0.00000000", "0.0", "1.5", "0.001", "12", "3.25000000"]
    for case in range(300):
        eager, deferred = OrderBook(), OrderBook()
        snapshot = [[str(p), "1"] for p in range(1, 6)], [[str(p), "1"] for p in range(6, 11)]
        eager.reset(1, *snapshot)
        deferred.reset(1, *snapshot)
        for update_id in range(2, rng.randint(3, 40)):
            bids = [[str(rng.randint(1, 8)), rng.choice(sizes)] for _ in range(rng.randint(0, 6))]
            asks = [[str(rng.randint(4, 12)), rng.choice(sizes)] for _ in range(rng.randint(0, 6))]
            eager.apply(update_id, bids, asks)
            deferred.defer(update_id, bids, asks)
            if rng.random() < 0.2:
                assert (deferred.bids, deferred.asks) == (eager.bids, eager.asks), case
        assert deferred.top(3) == eager.top(3) and deferred.levels() == eager.levels(), case
        assert deferred.update_id == eager.update_id
    unread = OrderBook()
    unread.reset(1, [], [])
    for k in range(order_book.NOTED_LIMIT + 1):
        unread.defer(k + 2, [[str(k), "1"]], [])
    assert unread._noted is None and len(unread._bids) == order_book.NOTED_LIMIT + 1
    for k in range(order_book.NOTED_LIMIT):  # a size that is no number among them: raised there, the id kept
        unread.defer(k + 10_000, [[f"{k}.5", "abc" if k == 7 else "1"]], [])
    with pytest.raises(ValueError, match="'abc' is not a number"):
        unread.defer(20_000, [["0.25", "1"]], [])
    assert (
        unread.update_id == order_book.NOTED_LIMIT + 10_000 - 1
        and "0.25" in unread.bids
        and "7.5" not in unread.bids
    )


def test_binance_depth_events_take_the_same_way_through_on_frame_as_through_on_event():
    """`DepthSync.on_frame`'s short way for a declared `DepthEvent` answers and keeps the book as
    `on_event` does, over random update-id ranges (repeats, overlaps, gaps, a snapshot between)."""
    import random

    from marketdata_assets.sources.binance.records import DepthEvent
    from marketdata_assets.sources.binance.stream import DepthSync

    rng = random.Random(3)
    for _ in range(200):
        short, plain, last = DepthSync("BTCUSDT"), DepthSync("BTCUSDT"), 100
        for sync in (short, plain):
            sync.on_snapshot(last, [["1", "1"]], [["2", "1"]])
        for _ in range(30):
            first = last + rng.choice([-3, -1, 0, 1, 1, 1, 2, 5])
            end = first + rng.randint(0, 4)
            bids = [[str(rng.randint(1, 5)), rng.choice(["0", "1.5", "2"])]]
            event = DepthEvent("depthUpdate", 1, "BTCUSDT", first, end, bids, [])
            assert short.on_frame(event) == plain.on_event(first, end, bids, [])
            last = max(last, end)
            if short.needs_snapshot and rng.random() < 0.5:
                for sync in (short, plain):
                    sync.on_snapshot(last, [["1", "1"]], [["2", "1"]])
            assert (short.book.update_id, short.book.bids, short.needs_snapshot) == (
                plain.book.update_id,
                plain.book.bids,
                plain.needs_snapshot,
            )
