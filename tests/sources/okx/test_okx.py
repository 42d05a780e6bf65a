"""OKX v5 client: string envelopes, newest-first paging by tradeId, 50011 limits, error shapes."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import Counter
from datetime import datetime, timedelta

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from marketdata_assets.core.http import (
    Page,
    SourceDataError,
    SourceNotFound,
    SourcePermissionError,
    SourceRequestError,
)
from marketdata_assets.datasets.frames import BARS_SCHEMA, BOOKS_SCHEMA, TRADES_SCHEMA
from marketdata_assets.datasets.normalized import trades_frame
from marketdata_assets.datasets.wire import BarColumns, columns_of
from marketdata_assets.replay.crypto import ReplayConfig
from marketdata_assets.sources.okx import OkxClient
from marketdata_assets.sources.okx.records import to_trades
from marketdata_assets.sources.okx.rest import (
    candle,
    liquidation_detail,
    open_interest,
    parse_books,
    parse_candles,
    parse_history_trades,
    parse_liquidations,
    parse_open_interest_history,
)
from marketdata_assets.sources.okx.units import ContractSizer
from marketdata_assets.sources.venues import venue_client
from tests.support.reference import known
from tests.support.scripted_server import Reply, ScriptedServer
from tests.support.ticks_common import DAY, END, FAST, START, UTC, crypto_replay, run


def client(base_url: str, **kwargs) -> OkxClient:
    return OkxClient(base_url, **{"retry": FAST, "requests_per_minute": 60_000, **kwargs})


# bursts: many trades share a millisecond, one run of 250 is longer than a page of 100
server, _clean = crypto_replay(ReplayConfig(seed=5, trades_per_day=2000, burst_share=0.3, burst_run=250))


# ---- parsers on the vendor's exact bodies ---------------------------------------------------


def test_history_trades_everything_is_a_string():
    body = {
        "code": "0",
        "msg": "",
        "data": [
            {
                "instId": "BTC-USDT",
                "side": "sell",
                "sz": "0.00001",
                "px": "29963.2",
                "source": "0",
                "tradeId": "242720720",
                "ts": "1654161646974",
            },
            {
                "instId": "BTC-USDT",
                "side": "buy",
                "sz": "0.5",
                "px": "29963.3",
                "tradeId": "242720719",
                "ts": "1654161646974",
            },
        ],
    }
    frame = parse_history_trades(body, "BTC-USDT")
    assert frame.schema == pl.Schema(TRADES_SCHEMA)
    assert frame.row(0, named=True) == dict.fromkeys(TRADES_SCHEMA) | {  # a column not named: null
        "ts": datetime(2022, 6, 2, 9, 20, 46, 974000, tzinfo=UTC),
        "venue": "OKX",
        "instrument": "BTC-USDT",
        "trade_id": "242720720",
        "price": 29963.2,
        "quantity": 0.00001,
        "amount": 29963.2 * 0.00001,
        "side": "sell",
        "seq": 242720720,
    }
    assert frame["side"].to_list() == ["sell", "buy"]  # OKX's side already is the taker's


def test_swap_sizes_are_contracts():
    body = {
        "code": "0",
        "msg": "",
        "data": [
            {
                "instId": "BTC-USDT-SWAP",
                "side": "buy",
                "sz": "3",
                "px": "60000",
                "tradeId": "1",
                "ts": "1654161646974",
            }
        ],
    }
    row = parse_history_trades(body, "BTC-USDT-SWAP", reference=known("OKX", "BTC-USDT-SWAP")).row(
        0, named=True
    )
    assert row["quantity"] == pytest.approx(0.03) and row["amount"] == pytest.approx(1800.0)
    inverse = parse_history_trades(
        {**body, "data": [{**body["data"][0], "instId": "BTC-USD-SWAP"}]},
        "BTC-USD-SWAP",
        reference=known("OKX", "BTC-USD-SWAP"),
    )
    assert inverse["amount"][0] == 300.0 and inverse["quantity"][0] == pytest.approx(0.005)
    with pytest.raises(SourceDataError, match="contract value"):
        parse_history_trades(
            {**body, "data": [{**body["data"][0], "instId": "XYZ-USDT-SWAP"}]}, "XYZ-USDT-SWAP"
        )


def test_books_levels_are_px_sz_zero_orders():
    body = {
        "code": "0",
        "msg": "",
        "data": [
            {
                "asks": [["41006.8", "0.60038921", "0", "1"]],
                "bids": [["41006.3", "0.30178218", "0", "2"], ["41006.1", "0.1", "0", "5"]],
                "ts": "1629966436396",
            }
        ],
    }
    frame = parse_books(body, "BTC-USDT")
    assert frame.schema == pl.Schema(BOOKS_SCHEMA)
    ts = datetime(2021, 8, 26, 8, 27, 16, 396000, tzinfo=UTC)
    assert frame.rows() == [
        (ts, "OKX", "BTC-USDT", "bid", 0, 41006.3, 0.30178218, None),
        (ts, "OKX", "BTC-USDT", "bid", 1, 41006.1, 0.1, None),
        (ts, "OKX", "BTC-USDT", "ask", 0, 41006.8, 0.60038921, None),
    ]
    body["data"][0]["seqId"] = 3082552170
    assert parse_books(body, "BTC-USDT")["update_id"].unique().to_list() == [3082552170]


def test_candles_nine_strings_and_unconfirmed_bars_dropped_and_counted():
    # the documented example's shape; its times (1597026383085, not on a minute) moved to minute opens
    body = {
        "code": "0",
        "msg": "",
        "data": [
            [
                "1597026420000",
                "3.721",
                "3.743",
                "3.677",
                "3.708",
                "8422410",
                "22698348.04828491",
                "22698348.04828491",
                "0",
            ],
            [
                "1597026360000",
                "3.731",
                "3.799",
                "3.494",
                "3.72",
                "24912403",
                "67632347.24399722",
                "67632347.24399722",
                "1",
            ],
        ],
    }
    drops = Counter()
    frame = parse_candles(body, "ETH-USDT", drops=drops)
    assert frame.schema == pl.Schema(BARS_SCHEMA)
    assert frame.rows() == [
        (
            datetime(2020, 8, 10, 2, 26, tzinfo=UTC),
            "OKX",
            "ETH-USDT",
            3.731,
            3.799,
            3.494,
            3.72,
            24912403.0,
            67632347.24399722,
            None,
        )
    ]
    assert drops == {"unconfirmed": 1}
    body["data"][1][0] = "1597026383085"  # the documented example's own time: not a minute's open
    with pytest.raises(SourceDataError, match="candle 2020-08-10 02:26:23 opens at .* not on a minute"):
        parse_candles(body, "ETH-USDT")


def test_error_envelope_in_a_page_is_a_data_error():
    with pytest.raises(SourceDataError, match="envelope code '51001'"):
        parse_history_trades({"code": "51001", "msg": "Instrument ID doesn't exist", "data": []}, "BTC-USDT")


def _page(data: list) -> dict:
    return {"code": "0", "msg": "", "data": data}


@pytest.mark.parametrize("instrument", ["BTC-USDT", "BTC-USDT-SWAP", "BTC-USD-SWAP"])
def test_a_page_read_on_its_columns_is_the_page_read_record_by_record(instrument):
    """A page is read on its columns (the declared records, the rules, the contract sizing) into the
    rows the record readers make of it one by one (the stream's readers, and the page's when a record
    breaks a rule): spot, linear and inverse."""
    ref = known("OKX", instrument) if instrument.endswith("SWAP") else None
    sizer, ctx = ContractSizer(instrument, ref), Page("OKX", instrument)
    trades = [
        {
            "instId": instrument,
            "tradeId": str(9 - k),
            "px": px,
            "sz": sz,
            "side": side,
            "ts": str(1654161646974 - k),
        }
        for k, (px, sz, side) in enumerate([("29963.2", "0.00001", "sell"), ("0.0000255", "3", "buy")])
    ]
    expected = trades_frame(
        [to_trades([record], instrument, sizer, ctx, f"trade #{k}")[0] for k, record in enumerate(trades)]
    )
    assert_frame_equal(parse_history_trades(_page(trades), instrument, reference=ref), expected)
    rows = [
        ["1597026420000", "3.721", "3.743", "3.677", "3.708", "8422410", "2269834.04", "22698348.1", "0"],
        ["1597026360000", "3.731", "3.799", "3.494", "3.72", "24912403", "6763234.7", "67632347.3", "1"],
    ]
    bars = BarColumns()
    for k, row in enumerate(rows):
        bar = candle(row, sizer, f"candle #{k}", ctx)
        if bar is not None:
            bars.add(*bar, None)
    assert_frame_equal(parse_candles(_page(rows), instrument, reference=ref), bars.frame("OKX", instrument))
    if instrument == "BTC-USDT":
        return
    interest = [["1597026360000", "12345.6", "123.456", "11600000.5"], ["1597026060000", "0", "0", "0"]]
    expected = columns_of("open_interest")
    for row in interest:
        expected.add(*open_interest(*row, sizer, ctx))
    assert_frame_equal(
        parse_open_interest_history(_page(interest), instrument, reference=ref),
        expected.frame("OKX", instrument),
    )
    details = [
        {
            "side": side,
            "posSide": "long",
            "bkPx": "94000.5",
            "sz": sz,
            "bkLoss": "0",
            "ccy": "",
            "ts": "1597026360123",
        }
        for side, sz in [("sell", "3"), ("buy", "1"), ("sell", "3")]
    ]
    expected = columns_of("liquidations")
    for k, detail in enumerate(details):
        ts, key, *values = liquidation_detail(detail, sizer, ctx)
        expected.add(ts, f"{key}#1" if k == 2 else key, *values, None)  # OKX sends no order price
    assert_frame_equal(
        parse_liquidations(_page([{"instId": instrument, "details": details}]), instrument, reference=ref),
        expected.frame("OKX", instrument),
    )


@pytest.mark.parametrize("ts", ["1654161646974.0", "1.654161646974e12"])
def test_an_integer_written_as_a_number_with_a_point_is_refused(ts):
    """OKX's integers are digit text, read as such: msgspec's lax int would take these, `integer`
    refuses them."""
    body = _page(
        [{"instId": "BTC-USDT", "side": "buy", "sz": "0.5", "px": "29963.3", "tradeId": "1", "ts": ts}]
    )
    with pytest.raises(SourceDataError, match=re.escape(f"trade 1 ts is '{ts}', not an integer")):
        parse_history_trades(body, "BTC-USDT")
    with pytest.raises(SourceDataError, match=re.escape(f"candle #0 ts is '{ts}', not an integer")):
        parse_candles(_page([[ts, "1", "1", "1", "1", "1", "1", "1", "1"]]), "BTC-USDT")


def test_a_trade_id_past_64_bits_is_refused_naming_the_trade_and_the_largest_is_its_seq():
    """seq is the tradeId as a number (the ids are paged by): one past Int64 is a data error, not the
    numbers' own overflow."""

    def page(trade_id: str) -> str:
        trade = {"instId": "BTC-USDT", "side": "buy", "sz": "0.5", "px": "1", "tradeId": trade_id}
        return _page([{**trade, "ts": "1654161646974"}])

    largest = str(2**63 - 1)
    assert parse_history_trades(page(largest), "BTC-USDT")["seq"].to_list() == [2**63 - 1]
    for past in (str(2**63), "9999999999999999999", "1" + "0" * 30):
        with pytest.raises(
            SourceDataError, match=re.escape(f"trade {past} tradeId is '{past}', past the 64")
        ):
            parse_history_trades(page(past), "BTC-USDT")


BOOK_BODY = json.dumps(
    {
        "code": "0",
        "msg": "",
        "data": [
            {
                "asks": [["41006.8", "0.6", "0", "1"]],
                "bids": [["41006.3", "0.3", "0", "2"]],
                "ts": "1629966436396",
            }
        ],
    }
).encode()


# ---- error shapes over HTTP ------------------------------------------------------------------


def test_401_without_data_key_is_a_permission_error():
    with ScriptedServer() as scripted:
        scripted.replies.append(Reply(401, b'{"msg":"Invalid OK-ACCESS-KEY","code":"50111"}'))

        async def go():
            async with client(scripted.url) as api:
                await api.book_snapshot("BTC-USDT", 5)

        with pytest.raises(SourcePermissionError, match="50111.*Invalid OK-ACCESS-KEY") as error:
            run(go())
        assert error.value.status == 401 and len(scripted.requests) == 1


def test_a_permission_error_stops_the_endpoint_without_another_request():
    with ScriptedServer() as scripted:
        scripted.replies.append(Reply(401, b'{"msg":"Invalid OK-ACCESS-KEY","code":"50111"}'))
        scripted.replies.append(Reply(200, BOOK_BODY))

        async def go():
            async with client(scripted.url) as api:
                errors = []
                for _ in range(2):
                    with pytest.raises(SourcePermissionError) as error:
                        await api.book_snapshot("BTC-USDT", 5)
                    errors.append(error.value)
                return errors

        first, second = run(go())
        assert second is first and len(scripted.requests) == 1


def test_unknown_path_has_a_numeric_code(server):
    async def go():
        async with client(server.base_url) as api:
            await api._get(
                "/api/v5/market/no-such-thing", {"instId": "BTC-USDT"}, instrument="BTC-USDT", day=None
            )

    with pytest.raises(SourceRequestError, match="unknown path") as error:
        run(go())
    assert error.value.status == 404 and error.value.code == 404


def test_unknown_instrument_is_a_request_error(server):
    async def go():
        async with client(server.base_url) as api:
            await api.trades("NOPE-USDT", START, END)

    with pytest.raises(SourceRequestError, match="51001") as error:
        run(go())
    assert error.value.instrument == "NOPE-USDT"
    assert (
        isinstance(error.value, SourceNotFound) and error.value.code == "51001" and error.value.status == 200
    )
    assert "history-trades?instId=NOPE-USDT" in str(error.value)
    assert len(server.requests("OKX", "NOPE-USDT")) == 1  # not retried


def test_other_codes_are_rejected_requests_not_retried(server):
    server.add_fault(kind="vendor_error", venue="OKX", instrument="BTC-USDT", endpoint="book", times=1)
    before = len(server.requests("OKX", "BTC-USDT", "book"))

    async def go():
        async with client(server.base_url) as api:
            await api.book_snapshot("BTC-USDT", 5)

    with pytest.raises(SourceRequestError, match="code 51000: Parameter instId error") as error:
        run(go())
    assert not isinstance(error.value, SourceNotFound) and error.value.code == "51000"
    assert error.value.status == 200 and len(server.requests("OKX", "BTC-USDT", "book")) == before + 1


def test_http_200_busy_code_is_retried():
    with ScriptedServer() as scripted:
        scripted.replies.append(
            Reply(200, b'{"code":"50013","msg":"Systems are busy. Please try again later.","data":[]}')
        )
        scripted.replies.append(Reply(200, BOOK_BODY))

        async def go():
            async with client(scripted.url) as api:
                return await api.book_snapshot("BTC-USDT", 5), api.stats

        book, stats = run(go())
    assert book.height == 2 and stats.retries == 1 and stats.rate_limited == 0 and len(scripted.requests) == 2


def test_http_200_rate_limit_code_honours_retry_after():
    with ScriptedServer() as scripted:
        scripted.replies.append(
            Reply(
                200,
                b'{"msg":"Too Many Requests","code":"50011"}',
                {"Content-Type": "application/json", "Retry-After": "0.3"},
            )
        )
        scripted.replies.append(Reply(200, BOOK_BODY))

        async def go():
            async with client(scripted.url) as api:
                started = time.monotonic()
                book = await api.book_snapshot("BTC-USDT", 5)
                return book, api.stats, time.monotonic() - started

        book, stats, elapsed = run(go())
    assert book.height == 2 and stats.rate_limited == 1 and stats.retries == 1 and elapsed >= 0.3


# ---- paging and data against the replay's ground truth ---------------------------------------


@pytest.mark.parametrize("instrument", ["BTC-USDT", "BTC-USDT-SWAP"])
def test_a_day_of_trades_pages_by_trade_id_without_loss_or_duplicates(server, instrument):
    async def go():
        async with venue_client("OKX", server.base_url, retry=FAST, requests_per_minute=60_000) as api:
            return await api.trades(instrument, START, END)

    trades = run(go())
    assert_frame_equal(trades, server.truth_trades("OKX", instrument, DAY), check_exact=True)
    assert trades.height == 2000 and trades["trade_id"].n_unique() == 2000
    queries = [r["query"] for r in server.requests("OKX", instrument, "trades")]
    assert queries[0]["type"] == "2" and queries[0]["after"] == str(int(END.timestamp() * 1000))
    assert all(q["type"] == "1" for q in queries[1:]) and len(queries) >= 20


def test_bars_and_book(server):
    async def go():
        async with client(server.base_url) as api:
            return (
                await api.bars_1m("ETH-USDT", START, START + timedelta(hours=5)),
                await api.book_snapshot("ETH-USDT", 25),
            )

    bars, book = run(go())
    truth = server.truth_bars("OKX", "ETH-USDT", DAY).filter(pl.col("ts") < START + timedelta(hours=5))
    assert_frame_equal(bars, truth, check_exact=True)
    assert bars.height == 300 and bars["trades"].null_count() == 300
    assert_frame_equal(book, server.last_book("OKX", "ETH-USDT"), check_exact=True)


@pytest.mark.parametrize("status", [429, 200])
def test_50011_is_retried_whether_http_429_or_200(server, status):
    server.add_fault(
        kind="rate_limit", venue="OKX", instrument="ETH-USDT", status=status, times=2, retry_after=None
    )

    async def go():
        async with client(server.base_url) as api:
            return await api.book_snapshot("ETH-USDT", 5), api.stats

    book, stats = run(go())
    assert book.height == 10 and stats.rate_limited == 2


def test_5xx_is_retried(server):
    server.add_fault(kind="server_error", venue="OKX", times=1)

    async def go():
        async with client(server.base_url) as api:
            return await api.book_snapshot("BTC-USDT", 1), api.stats

    book, stats = run(go())
    assert book.height == 2 and stats.server_errors == 1


@pytest.mark.parametrize(
    "kind, message",
    [
        ("malformed_json", "malformed JSON"),
        ("missing_field", "lacks field 'px'"),
        ("bad_number", "not a number"),
    ],
)
def test_a_damaged_page_fails_only_its_instrument(server, kind, message):
    server.add_fault(kind=kind, venue="OKX", instrument="ETH-USDT", endpoint="trades", after=2, times=1)
    window = (START + timedelta(hours=10), START + timedelta(hours=20))

    async def go():
        async with client(server.base_url) as api:
            return await asyncio.gather(
                api.trades("ETH-USDT", *window), api.trades("BTC-USDT", *window), return_exceptions=True
            )

    eth, btc = run(go())
    assert isinstance(eth, SourceDataError), eth
    assert message in str(eth) and eth.instrument == "ETH-USDT" and eth.day == DAY
    assert "history-trades?instId=ETH-USDT&type=1" in str(eth)
    truth = server.truth_trades("OKX", "BTC-USDT", DAY).filter(
        pl.col("ts").is_between(*window, closed="left")
    )
    assert_frame_equal(btc, truth, check_exact=True)
