"""Every listed A-share code from Tushare's `stock_basic` (`--symbols ALL`), against the stocks replay
over real HTTP: only list_status L (never the delisted or suspended code), all three exchanges, a
full answer asked again per exchange, the error table of the other calls, one request per Beijing
day (the day's file), and the replay's bars agreeing with its listing."""

from __future__ import annotations

import asyncio
import json
from datetime import date, timedelta

import pytest

from marketdata_assets.core.http import RetryPolicy
from marketdata_assets.replay import a_share_listing
from marketdata_assets.replay.stock_market import Fault, StocksReplayConfig
from marketdata_assets.replay.stocks import StocksReplayServer
from marketdata_assets.replay.tushare import tushare_day_limit_message
from marketdata_assets.sources.config import load_sources_config
from marketdata_assets.sources.tushare import (
    Table,
    TushareClient,
    TushareLimitReached,
    TusharePermissionError,
    TushareResponseError,
    listed_today,
    parse_stock_basic,
)
from marketdata_assets.sources.tushare.listing import cache_path

FAST = RetryPolicy(max_retries=2, backoff_base_s=0.01, backoff_max_s=0.05)
TOKEN = "tok-listing-SECRET"
DAY = date(2025, 6, 5)  # a Thursday


def client(server: StocksReplayServer, **kwargs) -> TushareClient:
    return TushareClient(server.base_url, TOKEN, requests_per_minute=60_000, retry=FAST, **kwargs)


def listed(server: StocksReplayServer, status: str = "L", **kwargs):
    async def ask():
        async with client(server, **kwargs) as ts:
            return await ts.listed_instruments(status)

    return asyncio.run(ask())


def stock_basic_calls(server: StocksReplayServer) -> list[dict]:
    return [e for e in server.requests_for("tushare") if e["api"] == "stock_basic"]


def truth(server: StocksReplayServer, status: str = "L") -> list[str]:
    at = a_share_listing.FIELDS.index("list_status")
    return [row[0] for row in server.tushare.listing() if row[at] == status]


def test_stock_basic_lists_every_listed_code_on_three_exchanges_and_never_a_delisted_or_suspended_one():
    with StocksReplayServer(StocksReplayConfig(tushare_listed=400)) as server:
        instruments, dropped = listed(server)
        delisted, _ = listed(server, "D")
        suspended, _ = listed(server, "P")
    codes = [i.code for i in instruments]
    assert (
        len(codes) == 400
        and codes == sorted(codes) == truth(server)
        and dropped == {"other_status": 0, "repeated": 0}
    )
    assert {i.exchange for i in instruments} == {"SSE", "SZSE", "BSE"}
    assert {c[-2:] for c in codes} == {"SH", "SZ", "BJ"}
    assert set(load_sources_config().a_shares) <= set(codes)  # the shipped universe is listed
    assert a_share_listing.DELISTED not in codes and a_share_listing.SUSPENDED not in codes
    assert [i.code for i in delisted] == [a_share_listing.DELISTED] and delisted[0].delist_date == "20140605"
    assert [i.code for i in suspended] == [a_share_listing.SUSPENDED]
    ping_an = next(i for i in instruments if i.code == "000001.SZ")
    assert (ping_an.name, ping_an.market, ping_an.list_date) == ("平安银行", "主板", "19910403")


def test_a_full_answer_is_asked_again_one_exchange_at_a_time():
    with StocksReplayServer(StocksReplayConfig(tushare_listed=400, stock_basic_row_limit=250)) as server:
        instruments, _ = listed(server, listing_row_limit=250)
        calls = stock_basic_calls(server)
        assert [i.code for i in instruments] == truth(server)  # nothing lost to the cut answer
        assert len(calls) == 4  # the whole market (full), then SSE, SZSE, BSE
        server.configure(stock_basic_row_limit=100)
        with pytest.raises(
            TushareResponseError, match=r"stock_basic: SSE alone fills a whole answer \(100 rows\)"
        ):
            listed(server, listing_row_limit=100)


def test_stock_basic_errors_are_the_error_table_of_the_other_calls():
    with StocksReplayServer() as server:
        server.add_fault("tushare_permission", api="stock_basic", times=1)
        with pytest.raises(TusharePermissionError, match="no permission for 'stock_basic'"):
            listed(server)
        server.add_fault(
            "tushare_error", api="stock_basic", code=40203, message=tushare_day_limit_message(50), times=1
        )
        with pytest.raises(TushareLimitReached, match="daily quota of 'stock_basic'"):
            listed(server)
        assert len(listed(server)[0]) == 5000  # the default universe: the market's size


def test_parse_stock_basic_keeps_the_asked_status_once_per_code_and_names_a_bad_code():
    fields = ["ts_code", "name", "list_status", "list_date"]
    table = Table(
        fields,
        [
            ["600000.SH", "浦发银行", "L", "19991110"],
            ["600087.SH", "退市长油", "D", "19970611"],
            ["600000.SH", "浦发银行", "L", "19991110"],
            ["000001.SZ", "平安银行", "L", "19910403"],
        ],
        False,
        None,
    )
    instruments, dropped = parse_stock_basic(table)
    assert [i.code for i in instruments] == ["000001.SZ", "600000.SH"]
    assert dropped == {"other_status": 1, "repeated": 1}
    with pytest.raises(TushareResponseError, match="'60000X'"):
        parse_stock_basic(Table(fields, [["60000X", "?", "L", "20000101"]], False, None))
    with pytest.raises(TushareResponseError, match="no field"):
        parse_stock_basic(Table(["ts_code"], [["600000.SH"]], False, None))


def test_the_listing_is_asked_once_per_beijing_day_and_kept_in_the_days_file(tmp_path):
    with StocksReplayServer(StocksReplayConfig(tushare_listed=300)) as server:

        def make():
            return client(server)

        first = asyncio.run(listed_today(make, tmp_path, today=DAY))
        again = asyncio.run(listed_today(make, tmp_path, today=DAY))
        assert (first.cached, again.cached, len(stock_basic_calls(server))) == (False, True, 1)
        assert again.codes == first.codes == truth(server)
        path = cache_path(tmp_path, DAY)
        assert (
            path.name == "tushare_stock_basic_L_2025-06-05.json"
            and json.loads(path.read_bytes())["count"] == 300
        )
        assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temp file left behind

        tomorrow = asyncio.run(listed_today(make, tmp_path, today=DAY + timedelta(days=1)))
        assert not tomorrow.cached and len(stock_basic_calls(server)) == 2
        path.write_bytes(path.read_bytes()[:100])  # a cut file: asked again, and replaced
        repaired = asyncio.run(listed_today(make, tmp_path, today=DAY))
        assert not repaired.cached and repaired.codes == first.codes and len(stock_basic_calls(server)) == 3
        assert asyncio.run(listed_today(make, tmp_path, today=DAY)).cached

        for n in range(2, 12):  # only the newest days are kept
            asyncio.run(listed_today(make, tmp_path, today=DAY + timedelta(days=n)))
        assert len(list(tmp_path.glob("tushare_stock_basic_L_*.json"))) == 7


def test_the_replays_bars_agree_with_its_listing():
    with StocksReplayServer(StocksReplayConfig(tushare_listed=200)) as server:
        instruments, _ = listed(server)
        young = max(instruments, key=lambda i: i.list_date)
        listed_on = date(int(young.list_date[:4]), int(young.list_date[4:6]), int(young.list_date[6:]))

        async def bars(code: str, day: date):
            async with client(server) as ts:
                return (await ts.minute_bars(code, day)).height, (await ts.daily([code], day, day)).height

        assert asyncio.run(bars(instruments[0].code, DAY)) == (241, 1)
        assert asyncio.run(bars(a_share_listing.DELISTED, DAY)) == (0, 0)  # delisted in 2014
        assert asyncio.run(bars(a_share_listing.DELISTED, date(2014, 6, 4))) == (241, 1)  # its last day
        assert asyncio.run(bars(a_share_listing.SUSPENDED, DAY)) == (0, 0)
        before = listed_on - timedelta(days=3 if listed_on.weekday() == 0 else 1)
        assert (
            asyncio.run(bars(young.code, before))[0] == 0
            and asyncio.run(bars(young.code, listed_on))[0] == 241
        )
        outside = next(
            c for c in ("600010.SH", "600011.SH", "600015.SH") if c not in {i.code for i in instruments}
        )
        assert asyncio.run(bars(outside, DAY)) == (
            241,
            1,
        )  # a code outside the listing trades as it always did


def test_a_fault_on_stock_basic_targets_only_it():
    fault = Fault("tushare_permission", api="stock_basic")
    with StocksReplayServer(StocksReplayConfig(faults=[fault])) as server:

        async def minutes():
            async with client(server) as ts:
                return (await ts.minute_bars("600000.SH", DAY)).height

        assert asyncio.run(minutes()) == 241
        with pytest.raises(TusharePermissionError):
            listed(server)
