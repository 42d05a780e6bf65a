"""Binance spot client: exact vendor bodies, paging against the replay's ground truth, limits, faults."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from marketdata_assets.core.http import (
    SourceBanned,
    SourceDataError,
    SourcePermissionError,
    SourceRequestError,
    WeightGate,
)
from marketdata_assets.datasets.frames import BARS_SCHEMA, BOOKS_SCHEMA, TRADES_SCHEMA
from marketdata_assets.replay.crypto import CryptoReplayServer, ReplayConfig
from marketdata_assets.sources.binance import (
    BinanceClient,
    ban_until,
    parse_agg_trades,
    parse_depth,
    parse_klines,
    parse_trades,
)
from marketdata_assets.sources.interface import VenueClient
from marketdata_assets.sources.venues import venue_client
from tests.support.ticks_common import DAY, END, FAST, START, UTC, crypto_replay, run


def client(server: CryptoReplayServer, **kwargs) -> BinanceClient:
    kwargs = {"retry": FAST, "requests_per_minute": 60_000, **kwargs}
    return BinanceClient(server.base_url, **kwargs)


server, _clean = crypto_replay(ReplayConfig(seed=11, trades_per_day=2500))


# ---- parsers on the vendor's exact bodies ---------------------------------------------------


def test_agg_trades_body_strings_ms_and_buyer_maker_means_taker_sell():
    body = [
        {
            "a": 26129,
            "p": "0.01633102",
            "q": "4.70443515",
            "f": 27781,
            "l": 27781,
            "T": 1498793709153,
            "m": True,
            "M": True,
        },
        {
            "a": 26130,
            "p": "0.01633200",
            "q": "1.00000000",
            "f": 27782,
            "l": 27783,
            "T": 1498793709153,
            "m": False,
            "M": True,
        },
    ]
    frame = parse_agg_trades(body, "ETHBTC")
    assert frame.schema == pl.Schema(TRADES_SCHEMA)
    row = frame.row(0, named=True)
    assert row["ts"] == datetime(2017, 6, 30, 3, 35, 9, 153000, tzinfo=UTC)
    assert (row["trade_id"], row["seq"], row["side"], row["venue"]) == ("26129", 26129, "sell", "BINANCE")
    assert row["price"] == 0.01633102 and row["quantity"] == 4.70443515
    assert row["amount"] == pytest.approx(0.01633102 * 4.70443515)
    assert frame["side"].to_list() == ["sell", "buy"]


def test_microsecond_timestamps_are_recognized_per_value():
    body = [
        {
            "a": 1,
            "p": "94350.01000000",
            "q": "0.00017000",
            "f": 1,
            "l": 1,
            "T": 1736899200008913,
            "m": False,
            "M": True,
        },
        {
            "a": 2,
            "p": "94350.01000000",
            "q": "0.00017000",
            "f": 2,
            "l": 2,
            "T": 1736899200009,
            "m": True,
            "M": True,
        },
    ]
    ts = parse_agg_trades(body, "BTCUSDT")["ts"].to_list()
    assert ts == [
        datetime(2025, 1, 15, 0, 0, 0, 8913, tzinfo=UTC),
        datetime(2025, 1, 15, 0, 0, 0, 9000, tzinfo=UTC),
    ]


def test_trades_body_uses_quote_qty():
    body = [
        {
            "id": 28457,
            "price": "4.00000100",
            "qty": "12.00000000",
            "quoteQty": "48.000012",
            "time": 1499865549590,
            "isBuyerMaker": True,
            "isBestMatch": True,
        }
    ]
    row = parse_trades(body, "BNBBTC").row(0, named=True)
    assert (row["trade_id"], row["amount"], row["side"], row["quantity"]) == (
        "28457",
        48.000012,
        "sell",
        12.0,
    )


def test_klines_twelve_element_mixed_arrays():
    body = [
        [
            1499040000000,
            "0.01634790",
            "0.80000000",
            "0.01575800",
            "0.01577100",
            "148976.11427815",
            1499040059999,
            "2434.19055334",
            308,
            "1756.87402397",
            "28.46694368",
            "0",
        ]
    ]
    frame = parse_klines(body, "ETHBTC")
    assert frame.schema == pl.Schema(BARS_SCHEMA)
    assert frame.row(0) == (
        datetime(2017, 7, 3, tzinfo=UTC),
        "BINANCE",
        "ETHBTC",
        0.0163479,
        0.8,
        0.015758,
        0.015771,
        148976.11427815,
        2434.19055334,
        308,
    )
    with pytest.raises(SourceDataError, match="12-element"):
        parse_klines([body[0][:11]], "ETHBTC")
    # the documented example closes a week later (1499644799999): not a 1-minute kline
    with pytest.raises(SourceDataError, match=r"kline #0 \(2017-07-03 00:00\) spans 604800 s .* not 60 s"):
        parse_klines([[*body[0][:6], 1499644799999, *body[0][7:]]], "ETHBTC")
    micro = [
        [1499040000000000, *body[0][1:6], 1499040059999999, *body[0][7:]]
    ]  # X-MBX-TIME-UNIT: MICROSECOND
    assert parse_klines(micro, "ETHBTC").row(0) == frame.row(0)


def test_depth_has_no_timestamp_so_ts_is_the_receive_time():
    received = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
    body = {
        "lastUpdateId": 1027024,
        "bids": [["4.00000000", "431.00000000"], ["3.99000000", "1.00000000"]],
        "asks": [["4.00000200", "12.00000000"]],
    }
    frame = parse_depth(body, "BNBBTC", received)
    assert frame.schema == pl.Schema(BOOKS_SCHEMA)
    assert frame.rows() == [
        (received, "BINANCE", "BNBBTC", "bid", 0, 4.0, 431.0, 1027024),
        (received, "BINANCE", "BNBBTC", "bid", 1, 3.99, 1.0, 1027024),
        (received, "BINANCE", "BNBBTC", "ask", 0, 4.000002, 12.0, 1027024),
    ]


@pytest.mark.parametrize(
    "record, message",
    [
        ({"a": 1, "q": "1", "f": 1, "l": 1, "T": 1498793709153, "m": True, "M": True}, "lacks field 'p'"),
        (
            {"a": 1, "p": "6O123.45", "q": "1", "f": 1, "l": 1, "T": 1498793709153, "m": True, "M": True},
            "not a number",
        ),
        (
            {"a": 1, "p": "NaN", "q": "1", "f": 1, "l": 1, "T": 1498793709153, "m": True, "M": True},
            "not a finite",
        ),
        (
            {"a": 1, "p": "1", "q": "1", "f": 1, "l": 1, "T": 1498793709153, "m": "true", "M": True},
            "not true/false",
        ),
    ],
)
def test_bad_records_raise_data_errors_naming_the_instrument(record, message):
    with pytest.raises(SourceDataError, match=message) as error:
        parse_agg_trades([record], "BTCUSDT")
    assert error.value.instrument == "BTCUSDT" and "BTCUSDT" in str(error.value)


def test_ban_message_gives_the_end_of_the_ban():
    until = ban_until("Way too much request weight used; IP banned until 1660090423228. Please use WebSocket")
    assert until == datetime.fromtimestamp(1660090423.228, UTC)


def test_weight_gate_waits_for_the_next_window_on_a_fake_clock():
    now = [120.5]
    slept = []

    async def fake_sleep(seconds):
        slept.append(seconds)
        now[0] += seconds

    async def go():
        gate = WeightGate(100, window_s=60, headroom=0.9, clock=lambda: now[0])
        original, asyncio.sleep = asyncio.sleep, fake_sleep
        try:
            for _ in range(10):
                await gate.acquire(10)  # 90 fits, the 10th waits for 180 s
            gate.note(85)  # another process on the same IP used weight
            await gate.acquire(10)
        finally:
            asyncio.sleep = original

    run(go())
    assert len(slept) == 2 and now[0] >= 240.0
    assert slept[0] == pytest.approx(180 - 120.5 + 1.0)


# ---- real HTTP against the replay -------------------------------------------------------------


def test_client_satisfies_the_provider_protocol(server):
    async def go():
        async with venue_client("binance", server.base_url) as venue:
            return isinstance(venue, VenueClient), venue.name

    assert run(go()) == (True, "BINANCE")


def test_a_day_of_trades_pages_without_loss_or_duplicates(server):
    async def go():
        async with client(server, page_limit=200) as api:
            return await api.trades("BTCUSDT", START, END), api.stats

    trades, stats = run(go())
    truth = server.truth_trades("BINANCE", "BTCUSDT", DAY)
    assert_frame_equal(trades, truth, check_exact=True)
    assert trades["trade_id"].n_unique() == trades.height == 2500
    paths = [r["query"] for r in server.requests("BINANCE", "BTCUSDT", "trades")]
    assert any("fromId" in q for q in paths) and any("startTime" in q for q in paths)
    for q in paths:  # windows of at most an hour
        if "startTime" in q:
            assert int(q["endTime"]) - int(q["startTime"]) < 3_600_000
    assert stats.rate_limited == 0


def test_microsecond_time_unit_header(server):
    async def go():
        async with client(server, time_unit="MICROSECOND") as api:
            return await api.trades("ETHUSDT", START + timedelta(hours=5), START + timedelta(hours=11))

    trades = run(go())
    truth = server.truth_trades("BINANCE", "ETHUSDT", DAY, time_unit="us").filter(
        pl.col("ts").is_between(START + timedelta(hours=5), START + timedelta(hours=11), closed="left")
    )
    assert_frame_equal(trades, truth, check_exact=True)
    assert (trades["ts"].dt.microsecond() % 1000 != 0).any()  # sub-millisecond digits survived


def test_bars_and_book_snapshot(server):
    async def go():
        async with client(server, page_limit=500) as api:
            before = datetime.now(UTC)
            book = await api.book_snapshot("BTCUSDT", depth=20)
            after = datetime.now(UTC)
            return await api.bars_1m("BTCUSDT", START, END), book, before, after

    bars, book, before, after = run(go())
    assert_frame_equal(bars, server.truth_bars("BINANCE", "BTCUSDT", DAY), check_exact=True)
    assert bars.height == 1440 and bars["trades"].null_count() == 0
    truth = server.last_book("BINANCE", "BTCUSDT").filter(pl.col("level") < 20)
    assert_frame_equal(book.drop("ts"), truth.drop("ts"), check_exact=True)
    assert book.height == 40 and before <= book["ts"][0] <= after  # receive time


def test_weight_header_slows_the_client_before_the_limit():
    config = ReplayConfig(seed=3, trades_per_day=2000, binance_weight_limit=40, weight_window_s=1.0)
    with CryptoReplayServer(config) as srv:
        time.sleep(1.0 - time.time() % 1.0 + 0.01)  # start with a fresh window: 9 requests fit, 12 do not

        async def go():
            async with client(srv, weight_limit=40, weight_window_s=1.0, weight_headroom=0.9) as api:
                return await api.trades("BTCUSDT", START, START + timedelta(hours=12)), api.stats

        trades, stats = run(go())
        # 12 hours = at least 12 requests of weight 4: more than the 36 allowed in one window
        assert stats.rate_limited == 0 and stats.weight_waits >= 1 and stats.weight_wait_s > 0
        assert stats.as_metadata()["max_used_weight_1m"] <= 40
        truth = srv.truth_trades("BINANCE", "BTCUSDT", DAY).filter(pl.col("ts") < START + timedelta(hours=12))
        assert_frame_equal(trades, truth, check_exact=True)


def test_past_the_weight_limit_the_venue_answers_429_with_retry_after_and_the_client_waits():
    config = ReplayConfig(seed=3, trades_per_day=500, binance_weight_limit=20, weight_window_s=1.0)
    with CryptoReplayServer(config) as srv:

        async def go():
            async with client(srv, weight_limit=100_000) as api:  # no local gate: the venue says stop
                return await api.trades("BTCUSDT", START, START + timedelta(hours=8)), api.stats

        trades, stats = run(go())
        assert stats.rate_limited >= 1
        statuses = [r["status"] for r in srv.requests("BINANCE")]
        assert 429 in statuses and statuses[-1] == 200
        assert (
            trades.height
            == srv.truth_trades("BINANCE", "BTCUSDT", DAY)
            .filter(pl.col("ts") < START + timedelta(hours=8))
            .height
        )


def test_429_with_retry_after_is_waited_then_retried(server):
    server.add_fault(kind="rate_limit", venue="BINANCE", instrument="SOLUSDT", times=2, retry_after="0.3")

    async def go():
        async with client(server) as api:
            return await api.bars_1m("SOLUSDT", START, START + timedelta(hours=2)), api.stats

    started = time.monotonic()
    bars, stats = run(go())
    assert time.monotonic() - started >= 0.6
    assert bars.height == 120 and stats.rate_limited == 2


def test_ban_stops_the_provider_at_once(server):
    server.add_fault(kind="ban", instrument="ETHUSDT", retry_after="600")

    async def go():
        async with client(server, page_limit=100) as api:
            results = await asyncio.gather(
                api.trades("ETHUSDT", START, END), api.trades("BTCUSDT", START, END), return_exceptions=True
            )
            sent = len(server.requests("BINANCE"))
            with pytest.raises(SourceBanned):
                await api.bars_1m("SOLUSDT", START, END)
            return results, sent, len(server.requests("BINANCE")), api.stats

    server.reset()
    (eth, btc), sent, after, stats = run(go())
    assert isinstance(eth, SourceBanned) and isinstance(btc, SourceBanned)
    assert "banned" in str(eth) and eth.until is not None and eth.until > datetime.now(UTC)
    assert "/api/v3/aggTrades" in str(eth)
    assert len(server.requests("BINANCE", "ETHUSDT")) == 1 and stats.retries == 0
    assert after == sent  # nothing more was sent


def test_5xx_is_retried(server):
    server.add_fault(
        kind="server_error", venue="BINANCE", instrument="SOLUSDT", endpoint="book", times=2, status=502
    )

    async def go():
        async with client(server) as api:
            return await api.book_snapshot("SOLUSDT", 5), api.stats

    book, stats = run(go())
    assert book.height == 10 and stats.server_errors == 2 and stats.retries == 2


def test_waf_html_403_is_a_clear_permission_error(server):
    server.add_fault(kind="waf", instrument="SOLUSDT", times=1)

    async def go():
        async with client(server) as api:
            await api.trades("SOLUSDT", START, START + timedelta(hours=1))

    with pytest.raises(SourcePermissionError, match="WAF") as error:
        run(go())
    assert error.value.status == 403


def test_unknown_symbol_is_a_request_error(server):
    async def go():
        async with client(server) as api:
            await api.trades("NOPEUSDT", START, START + timedelta(hours=1))

    with pytest.raises(SourceRequestError, match="Invalid symbol") as error:
        run(go())
    assert error.value.code == -1121 and error.value.instrument == "NOPEUSDT"


@pytest.mark.parametrize(
    "kind, message",
    [
        ("malformed_json", "malformed JSON"),
        ("missing_field", "lacks field 'p'"),
        ("bad_number", "not a number"),
    ],
)
def test_a_damaged_page_fails_only_its_instrument(server, kind, message):
    server.add_fault(kind=kind, venue="BINANCE", instrument="ETHUSDT", endpoint="trades", after=1, times=1)
    window = (START + timedelta(hours=6), START + timedelta(hours=9))

    async def go():
        async with client(server) as api:
            return await asyncio.gather(
                api.trades("ETHUSDT", *window), api.trades("BTCUSDT", *window), return_exceptions=True
            )

    eth, btc = run(go())
    assert isinstance(eth, SourceDataError), eth
    assert message in str(eth) and eth.instrument == "ETHUSDT" and eth.day == DAY
    assert "/api/v3/aggTrades?symbol=ETHUSDT" in str(eth)
    truth = server.truth_trades("BINANCE", "BTCUSDT", DAY).filter(
        pl.col("ts").is_between(*window, closed="left")
    )
    assert_frame_equal(btc, truth, check_exact=True)


def test_frames_are_empty_but_typed_for_an_empty_window(server):
    async def go():
        async with client(server) as api:
            return await api.trades(
                "BTCUSDT", END + timedelta(days=30000), END + timedelta(days=30000, hours=1)
            )

    frame = run(go())
    assert frame.height == 0 and frame.schema == pl.Schema(TRADES_SCHEMA)


# ---- the replay's control endpoint and CLI -------------------------------------------------------


def test_faults_can_be_set_over_http_and_truth_read_back(server):
    import httpx

    with httpx.Client(base_url=server.base_url) as http:
        state = http.post(
            "/_replay/faults",
            json={
                "faults": [
                    {
                        "kind": "rate_limit",
                        "venue": "BINANCE",
                        "instrument": "ETHUSDT",
                        "times": 1,
                        "retry_after": "0.1",
                    }
                ],
                "replace": True,
            },
        ).json()
        assert [f["kind"] for f in state["faults"]] == ["rate_limit"]
        limited = http.get("/api/v3/klines", params={"symbol": "ETHUSDT", "interval": "1m", "limit": 2})
        assert limited.status_code == 429 and limited.headers["Retry-After"] == "0.1"
        assert limited.json()["code"] == -1003 and "X-MBX-USED-WEIGHT-1M" in limited.headers
        assert (
            http.get("/api/v3/klines", params={"symbol": "ETHUSDT", "interval": "1m", "limit": 2}).status_code
            == 200
        )
        truth = http.get(
            "/_replay/truth", params={"venue": "BINANCE", "instrument": "BTCUSDT", "day": DAY.isoformat()}
        ).json()
        assert (
            truth["count"] == 2500
            and truth["trade_ids"] == server.truth_trades("BINANCE", "BTCUSDT", DAY)["trade_id"].to_list()
        )
        assert http.delete("/_replay/faults").json()["faults"] == []


def test_the_replay_runs_as_a_cli():
    import subprocess
    import sys

    import httpx

    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "marketdata_assets.replay.crypto",
            "--port",
            "0",
            "--seed",
            "2",
            "--trades-per-day",
            "100",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        url = line.split(" on ")[1].split(" ")[0]
        body = httpx.get(
            f"{url}/api/v2/public/get_last_trades_by_instrument_and_time",
            params={
                "instrument_name": "BTC-PERPETUAL",
                "start_timestamp": 1736899200000,
                "end_timestamp": 1736985599999,
                "count": 1000,
                "sorting": "asc",
            },
            timeout=10,
        ).json()
        assert body["jsonrpc"] == "2.0" and len(body["result"]["trades"]) == 100
        assert body["result"]["has_more"] is False and {"usIn", "usOut", "usDiff", "testnet"} <= set(body)
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_no_request_leaves_after_a_ban_even_from_tasks_already_waiting_for_a_slot(server):
    """Eight fetches queue behind one slot; the first answer is a 418: the other seven never send
    (the refusal is checked at send time, after the slot is granted)."""
    server.add_fault(kind="ban", venue="BINANCE", retry_after="600")
    symbols = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT", "ADAUSDT", "DOGEUSDT", "TRXUSDT"]

    async def go():
        async with client(server, max_concurrency=1) as api:
            return await asyncio.gather(
                *(api.bars_1m(s, START, START + timedelta(hours=1)) for s in symbols), return_exceptions=True
            ), api.stats

    server.reset()
    results, stats = run(go())
    assert all(isinstance(r, SourceBanned) for r in results)
    assert len(server.requests("BINANCE")) == 1 and stats.requests == 1
