"""Tushare Pro client against the stocks replay server over real HTTP on loopback: units, time
zones, newest-first paging, the batch `daily` call, HTTP-200 error codes told apart by message
(the declared error table), and the token's secrecy."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import polars as pl
import pytest

from marketdata_assets.core.http import (
    ApiError,
    RetryPolicy,
    SourceBanned,
    SourceDataError,
    SourcePermissionError,
    SourceRequestError,
)
from marketdata_assets.datasets.frames import BARS_SCHEMA, DAILY_BARS_SCHEMA
from marketdata_assets.replay.stock_market import StocksReplayConfig
from marketdata_assets.replay.stocks import StocksReplayServer
from marketdata_assets.replay.tushare import (
    TUSHARE_BAD_TOKEN_MESSAGE,
    TUSHARE_PERMISSION_MESSAGE,
    tushare_day_limit_message,
    tushare_hour_limit_message,
    tushare_minute_limit_message,
)
from marketdata_assets.sources.tushare import (
    ERRORS,
    TushareClient,
    TushareLimitReached,
    TusharePermissionError,
    TushareResponseError,
    TushareTokenError,
    error_fields,
    normalize_ts_code,
    parse_daily,
    parse_stk_mins,
    response_table,
    token_from_env,
    venue_of,
)

FAST = RetryPolicy(max_retries=3, backoff_base_s=0.01, backoff_max_s=0.05)
CHINA = ZoneInfo("Asia/Shanghai")
TOKEN = "tok-3f9a1c-SECRET-never-print"
WEEK = [
    date(2025, 6, 9) + timedelta(days=i) for i in range(5)
]  # Mon..Fri (06-02 was the Dragon Boat holiday: the replay follows the exchange calendar)


def run(coro):
    return asyncio.run(coro)


def client(server: StocksReplayServer, token: str = TOKEN, **kwargs) -> TushareClient:
    options = {"requests_per_minute": 60_000, "max_concurrency": 4, "retry": FAST}
    options.update(kwargs)
    return TushareClient(server.base_url, token, **options)


def expected_minutes(server: StocksReplayServer, code: str, days) -> list[tuple]:
    """Server truth → (ts UTC of the bar OPEN, open, high, low, close, volume, amount)."""
    out = []
    for day in days:
        for _, label, o, c, h, lo, vol, amount in server.tushare.minutes(code, day):
            end = datetime.strptime(label, "%Y-%m-%d %H:%M:%S").replace(tzinfo=CHINA)
            out.append(((end - timedelta(minutes=1)).astimezone(UTC), o, h, lo, c, vol, amount))
    return out


def as_rows(frame: pl.DataFrame) -> list[tuple]:
    return frame.select("ts", "open", "high", "low", "close", "volume", "amount").rows()


# --------------------------------------------------------------------------------------------
# Parsing captured-format answers
# --------------------------------------------------------------------------------------------

STK_MINS_ANSWER = {
    "request_id": "c2a0b1d4e5f6",
    "code": 0,
    "msg": "",
    "data": {
        "fields": ["ts_code", "trade_time", "open", "close", "high", "low", "vol", "amount"],
        "items": [  # newest first, as the API sends them
            ["600000.SH", "2023-08-25 15:00:00", 7.14, 7.14, 7.14, 7.14, 608700.0, 4346118.0],
            ["600000.SH", "2023-08-25 14:59:00", 7.13, 7.13, 7.13, 7.13, 0.0, 0.0],
            ["600000.SH", "2023-08-25 14:58:00", 7.13, 7.13, 7.13, 7.13, 0.0, 0.0],
            ["600000.SH", "2023-08-25 14:57:00", 7.13, 7.13, 7.14, 7.13, 126900.0, 905578.0],
            ["600000.SH", "2023-08-25 13:01:00", None, None, None, None, None, None],
            ["600000.SH", "2023-08-25 11:30:00", 7.12, 7.12, 7.13, 7.12, 33000.0, None],
            ["600000.SH", "2023-08-25 09:31:00", 7.11, 7.12, 7.12, 7.10, 413500.0, 2941029.0],
            ["600000.SH", "2023-08-25 09:30:00", 7.11, 7.11, 7.11, 7.11, 288300.0, 2049813.0],
        ],
        "has_more": False,
        "count": -1,
    },
}


def test_stk_mins_units_beijing_to_utc_bar_open_and_oldest_first():
    parsed = parse_stk_mins(STK_MINS_ANSWER, instrument="600000.SH")
    frame = parsed.frame
    assert frame.schema == pl.Schema(BARS_SCHEMA)
    # trade_time is the bar END in China time: ts = label - 1 minute, in UTC (UTC+8, no DST)
    assert frame["ts"].to_list() == [
        datetime(2023, 8, 25, 1, 29, tzinfo=UTC),  # 09:30 auction bar
        datetime(2023, 8, 25, 1, 30, tzinfo=UTC),  # 09:31
        datetime(2023, 8, 25, 6, 56, tzinfo=UTC),  # 14:57
        datetime(2023, 8, 25, 6, 57, tzinfo=UTC),  # 14:58, zero volume, kept
        datetime(2023, 8, 25, 6, 58, tzinfo=UTC),  # 14:59, zero volume, kept
        datetime(2023, 8, 25, 6, 59, tzinfo=UTC),  # 15:00 closing auction
    ]
    first = frame.row(1, named=True)
    assert (first["open"], first["high"], first["low"], first["close"]) == (7.11, 7.12, 7.10, 7.12)
    assert first["volume"] == 413500.0 and first["amount"] == 2941029.0  # shares, yuan: as sent
    assert frame.filter(pl.col("volume") == 0).height == 2
    assert set(frame["venue"]) == {"SSE"} and set(frame["instrument"]) == {"600000.SH"}
    assert frame["trades"].null_count() == frame.height
    assert (parsed.null_rows, parsed.partial_rows, parsed.received) == (1, 1, 8)
    assert parsed.oldest == datetime(2023, 8, 25, 9, 30)


def test_stk_mins_start_label_option_keeps_the_label():
    frame = parse_stk_mins(STK_MINS_ANSWER, bar_label="start").frame
    assert frame["ts"][0] == datetime(2023, 8, 25, 1, 30, tzinfo=UTC)


def test_stk_mins_fields_in_any_order_and_without_ts_code():
    answer = {
        "code": 0,
        "msg": "",
        "data": {
            "fields": ["amount", "vol", "low", "high", "close", "open", "trade_time"],
            "items": [[1000.5, 100.0, 9.9, 10.1, 10.0, 10.05, "2025-06-05 10:00:00"]],
        },
    }
    frame = parse_stk_mins(answer, instrument="000001.SZ").frame
    assert frame.row(0, named=True) == {
        "ts": datetime(2025, 6, 5, 1, 59, tzinfo=UTC),
        "venue": "SZSE",
        "instrument": "000001.SZ",
        "open": 10.05,
        "high": 10.1,
        "low": 9.9,
        "close": 10.0,
        "volume": 100.0,
        "amount": 1000.5,
        "trades": None,
    }


@pytest.mark.parametrize(
    "bad, what",
    [
        ({"fields": ["ts_code", "trade_time", "open", "close", "high", "low", "vol"], "items": []}, "amount"),
        (
            {
                "fields": ["ts_code", "trade_time", "open", "close", "high", "low", "vol", "amount"],
                "items": [["600000.SH", "2025-06-05 10:00:00", "7.1x", 7.1, 7.1, 7.1, 100.0, 710.0]],
            },
            "non-numeric open",
        ),
        (
            {
                "fields": ["ts_code", "trade_time", "open", "close", "high", "low", "vol", "amount"],
                "items": [["600000.SH", "05/06/2025 10:00", 7.1, 7.1, 7.1, 7.1, 100.0, 710.0]],
            },
            "trade_time",
        ),
        (
            {
                "fields": ["ts_code", "trade_time", "open", "close", "high", "low", "vol", "amount"],
                "items": [["600036.SH", "2025-06-05 10:00:00", 7.1, 7.1, 7.1, 7.1, 100.0, 710.0]],
            },
            "600036.SH",
        ),
    ],
)
def test_stk_mins_malformed_answers_name_the_instrument(bad, what):
    with pytest.raises(SourceDataError) as error:
        parse_stk_mins({"code": 0, "msg": "", "data": bad}, instrument="600000.SH")
    assert (
        what in str(error.value) and "600000.SH" in str(error.value) and error.value.instrument == "600000.SH"
    )


def test_daily_lots_to_shares_and_thousands_to_yuan():
    answer = {
        "request_id": "x",
        "code": 0,
        "msg": "",
        "data": {
            "fields": [
                "ts_code",
                "trade_date",
                "open",
                "high",
                "low",
                "close",
                "pre_close",
                "change",
                "pct_chg",
                "vol",
                "amount",
            ],
            "items": [
                ["000001.SZ", "20180718", 8.75, 8.85, 8.69, 8.70, 8.72, -0.02, -0.23, 525152.77, 460697.377],
                ["000001.SZ", "20180717", 8.74, 8.75, 8.66, 8.72, 8.73, -0.01, -0.11, 375356.33, 326396.994],
            ],
            "has_more": False,
            "count": -1,
        },
    }
    parsed = parse_daily(answer, instrument="000001.SZ")
    frame = parsed.frame
    assert frame.schema == pl.Schema(DAILY_BARS_SCHEMA)
    # ts = 00:00 UTC of the trade date, oldest first
    assert frame["ts"].to_list() == [datetime(2018, 7, 17, tzinfo=UTC), datetime(2018, 7, 18, tzinfo=UTC)]
    last = frame.row(1, named=True)
    assert last["volume"] == 52515277.0  # 525152.77 lots × 100 shares
    assert last["amount"] == 460697377.0  # 460697.377 thousand yuan × 1000, no binary noise
    assert (last["venue"], last["pre_close"], last["close"]) == ("SZSE", 8.72, 8.70)
    assert parsed.oldest == date(2018, 7, 17) and parsed.counts["000001.SZ"]["rows"] == 2


def test_daily_nulls_and_repeats_are_counted_per_instrument():
    fields = ["ts_code", "trade_date", "open", "high", "low", "close", "pre_close", "vol", "amount"]
    answer = {
        "code": 0,
        "msg": "",
        "data": {
            "fields": fields,
            "items": [
                ["600000.SH", "20250603", 7.1, 7.2, 7.0, 7.1, 7.0, 100.0, 71.0],
                ["600000.SH", "20250603", 7.1, 7.2, 7.0, 7.1, 7.0, 100.0, 71.0],  # repeated
                ["000001.SZ", "20250603", None, None, None, None, None, None, None],  # all null
                ["000001.SZ", "20250602", 10.0, 10.1, 9.9, None, 9.9, 50.0, 50.0],  # partly null
                ["000001.SZ", "20250530", 10.0, 10.1, 9.9, 10.0, None, 50.0, 50.0],  # pre_close may be null
            ],
        },
    }
    parsed = parse_daily(answer, instrument="600000.SH,000001.SZ")
    assert parsed.frame.select("instrument", "ts").rows() == [
        ("000001.SZ", datetime(2025, 5, 30, tzinfo=UTC)),
        ("600000.SH", datetime(2025, 6, 3, tzinfo=UTC)),
    ]
    assert (parsed.null_rows, parsed.partial_rows, parsed.duplicates, parsed.received) == (1, 1, 1, 5)
    assert parsed.counts["600000.SH"] == {"rows": 2, "duplicates": 1}
    assert parsed.counts["000001.SZ"] == {"rows": 3, "null_rows": 1, "partial_rows": 1}
    assert parsed.frame["pre_close"].to_list() == [None, 7.0]
    with pytest.raises(TushareResponseError, match="a row of 000001.SZ in the answer for 600000.SH"):
        parse_daily(answer, instrument="600000.SH")


def test_code_zero_with_null_data_is_an_error_and_only_empty_items_are_an_empty_table():
    with pytest.raises(
        TushareResponseError, match="600000.SH 2025-06-05: stk_mins: code 0 but `data` is null"
    ):
        parse_stk_mins({"code": 0, "msg": "", "data": None}, instrument="600000.SH", day="2025-06-05")
    with pytest.raises(TushareResponseError, match="code 0 but `data` is null"):
        parse_daily({"code": "0", "msg": "", "data": None})
    empty = {
        "code": 0,
        "msg": "",
        "data": {
            "fields": ["ts_code", "trade_time", "open", "close", "high", "low", "vol", "amount"],
            "items": [],
            "has_more": False,
        },
    }
    parsed = parse_stk_mins(empty, instrument="600000.SH")
    assert parsed.frame.schema == pl.Schema(BARS_SCHEMA) and parsed.frame.height == 0 and parsed.received == 0
    with pytest.raises(TushareResponseError, match="no `code`"):
        response_table({"msg": "", "data": None}, "daily", instrument="600000.SH")


DOC = "权限的具体详情访问：https://tushare.pro/document/1?doc_id=108。"


@pytest.mark.parametrize(
    "code, msg, kind",
    [
        (
            40203,
            "抱歉，您每分钟最多访问该接口200次，" + DOC,
            "rate_limited",
        ),  # also says 权限: a limit, not a refusal
        (40203, "Sorry, you can call this API at most 200 times per minute", "rate_limited"),
        (40203, "抱歉，您每小时最多访问该接口1次，" + DOC, "quota"),
        (40203, "抱歉，您每天最多访问该接口2次，" + DOC, "quota"),
        (40203, "抱歉，您每日最多访问该接口2次，" + DOC, "quota"),
        (40203, "at most 10 calls per hour", "quota"),
        (40203, "at most 10 calls per day", "quota"),
        (40203, "抱歉，您没有访问该接口的权限，" + DOC, "permission"),
        (40203, "抱歉，您没有权限访问该接口，" + DOC, "permission"),
        (40203, "", "permission"),
        (40101, "您的token不对，请确认。", "unauthorized"),
        (2002, "权限不足", "permission"),
        ("2002", "您没有该接口的访问权限", "permission"),
        (-2001, "参数错误", "rejected"),
        (-1, "", "rejected"),
    ],
)
def test_error_table_tells_codes_apart_by_message(code, msg, kind):
    found = error_fields({"request_id": "r", "code": code, "msg": msg, "data": None})
    assert found == (code, msg)
    assert ERRORS.classify(200, *found) == kind


@pytest.mark.parametrize(
    "payload",
    [{"code": 0, "msg": "", "data": None}, {"code": "0", "msg": ""}, {"data": None}, [1, 2], "text"],
)
def test_good_answers_have_no_error_fields(payload):
    assert error_fields(payload) is None


@pytest.mark.parametrize(
    "code, msg, error_type, what",
    [
        (40203, tushare_minute_limit_message(200), TushareLimitReached, "per-minute quota of 'stk_mins'"),
        (40203, tushare_hour_limit_message(1), TushareLimitReached, "hourly quota of 'stk_mins'"),
        (40203, tushare_day_limit_message(2), TushareLimitReached, "daily quota of 'stk_mins'"),
        (40203, TUSHARE_PERMISSION_MESSAGE, TusharePermissionError, "no permission for 'stk_mins'"),
        (2002, "权限不足", TusharePermissionError, "code 2002"),
        (40101, TUSHARE_BAD_TOKEN_MESSAGE, TushareTokenError, "TUSHARE_TOKEN"),
        (-2001, "参数错误", SourceRequestError, "参数错误"),
    ],
)
def test_error_answers_raise_what_they_stand_for_for_a_parser_caller(code, msg, error_type, what):
    with pytest.raises(error_type) as error:
        parse_stk_mins({"code": code, "msg": msg, "data": None}, instrument="600000.SH")
    assert what in str(error.value) and type(error.value) is error_type
    if "quota" in what and "per-minute" not in what:
        assert error.value.until is not None and error.value.until > datetime.now(UTC)
        hours = (error.value.until - datetime.now(UTC)).total_seconds() / 3600
        assert hours <= (1 if "hourly" in what else 24)


def test_venues_and_token_from_env():
    assert [venue_of(c) for c in ("600000.SH", "000001.SZ", "830799.BJ")] == ["SSE", "SZSE", "BSE"]
    assert normalize_ts_code("sh600000") == "600000.SH" and normalize_ts_code("000001.XSHE") == "000001.SZ"
    with pytest.raises(ValueError):
        venue_of("AAPL")
    assert token_from_env({"TUSHARE_TOKEN": " abc "}) == "abc"
    from_env = TushareClient.from_env("http://127.0.0.1:9", {"TUSHARE_TOKEN": "abc"})
    assert "abc" not in repr(from_env)
    run(from_env.aclose())
    with pytest.raises(TushareTokenError) as error:
        token_from_env({})
    assert "TUSHARE_TOKEN" in str(error.value)


# --------------------------------------------------------------------------------------------
# Against the replay server
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path_style", ["dataapi", "root"])
def test_minute_bars_equal_the_servers_ground_truth(path_style):
    with StocksReplayServer() as server:

        async def go():
            async with client(server, path_style=path_style) as ts:
                return (
                    await ts.minute_bars("600000.SH", WEEK[0], WEEK[-1]),
                    await ts.minute_bars("000001.SZ", WEEK[2]),
                )

        sh, sz = run(go())
        paths = {(e["api"], e["path"]) for e in server.requests_for("tushare")}
    assert paths == {("stk_mins", "/dataapi/stk_mins" if path_style == "dataapi" else "/")}
    assert sh.height == 5 * 241 and sz.height == 241
    assert as_rows(sh) == expected_minutes(server, "600000.SH", WEEK)
    assert as_rows(sz) == expected_minutes(server, "000001.SZ", [WEEK[2]])
    assert set(sz["venue"]) == {"SZSE"} and sh.schema == pl.Schema(BARS_SCHEMA)
    day = sh.filter(pl.col("ts").dt.convert_time_zone("Asia/Shanghai").dt.date() == WEEK[0])
    local = day["ts"].dt.convert_time_zone("Asia/Shanghai").dt.strftime("%H:%M").to_list()
    assert local[0] == "09:29" and local[1] == "09:30" and local[-1] == "14:59"  # bar opens
    assert "11:30" not in local and "12:59" not in local and local.count("13:00") == 1
    zero = day.filter(pl.col("volume") == 0)["ts"].dt.convert_time_zone("Asia/Shanghai").dt.strftime("%H:%M")
    assert zero.to_list() == ["14:57", "14:58"]  # the bars Tushare labels 14:58 and 14:59


@pytest.mark.parametrize(
    "server_limit, client_limit, window_days, days",
    [
        (8000, 8000, 60, (date(2025, 3, 3), date(2025, 5, 30))),  # 44 trading days in a window: > 8000 rows
        (1000, 1000, 30, (date(2025, 6, 9), date(2025, 6, 20))),  # pages that cut days in the middle
    ],
)
def test_newest_first_paging_loses_and_repeats_nothing(server_limit, client_limit, window_days, days):
    with StocksReplayServer(StocksReplayConfig(stk_mins_row_limit=server_limit)) as server:

        async def go():
            async with client(server, row_limit=client_limit, window_days=window_days) as ts:
                frame = await ts.minute_bars("600519.SH", *days)
                return frame, ts.quality["600519.SH"]

        frame, quality = run(go())
        requests = len(server.requests_for("tushare", "600519.SH"))
    all_days = [days[0] + timedelta(days=i) for i in range((days[1] - days[0]).days + 1)]
    truth = expected_minutes(server, "600519.SH", all_days)
    assert len(truth) > server_limit
    assert as_rows(frame) == truth
    assert frame["ts"].is_unique().all() and frame["ts"].is_sorted()
    windows = math.ceil(len(all_days) / window_days)
    assert requests > windows  # at least one window was paged
    assert quality["duplicates"] == 0 and quality["rows"] == len(truth)


def test_daily_units_against_truth_and_minutes():
    with StocksReplayServer() as server:

        async def go():
            async with client(server) as ts:
                return (
                    await ts.daily(["600000.SH"], WEEK[0], WEEK[-1]),
                    await ts.minute_bars("600000.SH", WEEK[1]),
                )

        daily, minutes = run(go())
    assert daily.schema == pl.Schema(DAILY_BARS_SCHEMA)
    assert daily["ts"].to_list() == [datetime(d.year, d.month, d.day, tzinfo=UTC) for d in WEEK]
    row = daily.row(1, named=True)
    truth = server.tushare.daily("600000.SH", WEEK[1])
    assert row["volume"] == round(truth[9] * 100, 4) == minutes["volume"].sum()  # lots → shares
    assert row["amount"] == round(truth[10] * 1000, 3)  # thousands of yuan → yuan
    assert abs(row["amount"] - minutes["amount"].sum()) <= 0.5  # the API rounds to whole yuan
    assert (row["open"], row["close"]) == (minutes["open"][0], minutes["close"][-1])
    assert daily["pre_close"][1] == daily["close"][0]


SIX = ["600000.SH", "000001.SZ", "600036.SH", "601398.SH", "600519.SH", "830799.BJ"]


def expected_daily(server: StocksReplayServer, codes, days) -> list[tuple]:
    """Server truth → (instrument, ts, open, high, low, close, pre_close, volume in shares, amount in
    yuan)."""
    out = []
    for code in sorted(codes):
        for day in days:
            row = server.tushare.daily(code, day)
            if row:
                _, _, o, h, lo, c, pre, _, _, vol, amount = row
                out.append(
                    (
                        code,
                        datetime(day.year, day.month, day.day, tzinfo=UTC),
                        o,
                        h,
                        lo,
                        c,
                        pre,
                        round(vol * 100, 4),
                        round(amount * 1000, 3),
                    )
                )
    return out


def daily_rows(frame: pl.DataFrame) -> list[tuple]:
    return frame.select(
        "instrument", "ts", "open", "high", "low", "close", "pre_close", "volume", "amount"
    ).rows()


def test_daily_asks_once_for_every_code():
    with StocksReplayServer() as server:

        async def go():
            async with client(server) as ts:
                frame = await ts.daily(["sh600000", *SIX[1:], "600000.SH"], WEEK[0], WEEK[-1])
                return frame, ts.quality, ts.figures()

        frame, quality, figures = run(go())
        log = server.requests_for("tushare")
    assert [(e["api"], e["symbols"]) for e in log] == [
        ("daily", SIX)
    ]  # one request, codes normalized, once each
    assert daily_rows(frame) == expected_daily(server, SIX, WEEK)
    assert frame.height == 30 and frame.schema == pl.Schema(DAILY_BARS_SCHEMA)
    assert set(zip(frame["instrument"], frame["venue"])) == {(c, venue_of(c)) for c in SIX}
    assert all(quality[c]["daily_rows"] == 5 for c in SIX)
    assert figures["requests"] == 1 and figures["duplicate_rows"] == 0 and figures["limit_waits"] == 0


def test_daily_pages_backward_through_a_date_cut_in_the_middle():
    # 3 codes x 10 trade days = 30 rows, 7 a page: pages end inside a date, which is asked again whole
    codes, days = ["600000.SH", "000001.SZ", "830799.BJ"], (date(2025, 6, 9), date(2025, 6, 20))
    with StocksReplayServer(StocksReplayConfig(daily_row_limit=7)) as server:

        async def go():
            async with client(server, daily_row_limit=7) as ts:
                return await ts.daily(codes, *days), ts.quality, ts.figures()

        frame, quality, figures = run(go())
        log = server.requests_for("tushare")
    all_days = [days[0] + timedelta(days=i) for i in range((days[1] - days[0]).days + 1)]
    truth = expected_daily(server, codes, all_days)
    assert len(truth) == 30
    assert daily_rows(frame) == truth  # nothing lost, nothing repeated
    assert len(log) >= 30 // 7 + 1 and all(e["symbols"] == codes for e in log)
    assert figures["duplicate_rows"] == 0 and sum(quality[c]["daily_rows"] for c in codes) == 30


def test_daily_refuses_a_date_that_fills_a_whole_answer():
    with StocksReplayServer(StocksReplayConfig(daily_row_limit=2)) as server:

        async def go():
            async with client(server, daily_row_limit=2) as ts:
                await ts.daily(["600000.SH", "000001.SZ", "830799.BJ"], WEEK[0], WEEK[1])

        with pytest.raises(TushareResponseError) as error:
            run(go())
    assert "one trade date fills a whole answer" in str(error.value) and "ask fewer codes" in str(error.value)
    assert error.value.instrument == "600000.SH,000001.SZ,830799.BJ" and error.value.day == WEEK[1]


def test_daily_drops_null_rows_and_counts_them_per_instrument():
    with StocksReplayServer() as server:
        server.add_fault("non_numeric", api="daily", field="close", value=None, times=1)

        async def go():
            async with client(server) as ts:
                return await ts.daily(SIX[:3], WEEK[0], WEEK[-1]), ts.quality, ts.figures()

        frame, quality, figures = run(go())
    truth = expected_daily(server, SIX[:3], WEEK)
    assert frame.height == len(truth) - 1 and set(daily_rows(frame)) < set(truth)
    (dropped,) = set(truth) - set(daily_rows(frame))
    assert quality[dropped[0]]["partial_rows"] == 1
    assert sum(q["partial_rows"] for q in quality.values()) == 1 == figures["dropped_partial_rows"]


def test_per_minute_limit_waits_for_the_next_window_then_succeeds():
    window = 1.0
    config = StocksReplayConfig(tushare_minute_limit=3, limit_window_s=window)
    with StocksReplayServer(config) as server:

        async def go():
            sends: list[float] = []  # wall clock of each request put on the wire
            told: list[float] = []  # wall clock at which the client handled each limit answer
            async with client(server, limit_window_s=window) as ts:
                wire, handle = ts.http.request, ts.rate_limit_wait

                def on_the_wire(*args, **kwargs):  # called in the same loop step as the pause gate
                    sends.append(time.time())
                    return wire(*args, **kwargs)

                def handled(*args, **kwargs):
                    told.append(time.time())
                    return handle(*args, **kwargs)

                ts.http.request, ts.rate_limit_wait = on_the_wire, handled
                started = time.monotonic()
                frames = await asyncio.gather(*(ts.daily(["600000.SH"], d, d) for d in WEEK + WEEK[:3]))
                return frames, time.monotonic() - started, ts.stats, ts.limit_waits, sends, told

        frames, elapsed, stats, waits, sends, told = run(go())
        log = server.requests_for("tushare")
    assert [f["ts"].dt.date().to_list() for f in frames] == [[d] for d in WEEK + WEEK[:3]]
    refused = [e for e in log if e["code"] == 40203]
    accepted = [e for e in log if e["code"] == 0]
    assert len(accepted) == 8 and refused and stats.rate_limited == len(refused) == waits == len(told)
    assert elapsed >= window  # 8 calls at 3 per window need three windows
    for at in told:  # once told, nobody puts a request on the wire before the next window
        boundary = (math.floor(at / window) + 1) * window
        assert all(sent >= boundary for sent in sends if sent > at)
    per_window: dict[int, int] = {}
    for entry in accepted:
        per_window[int(entry["wall"] // window)] = per_window.get(int(entry["wall"] // window), 0) + 1
    assert max(per_window.values()) <= 3


def test_per_minute_limit_that_never_clears_gives_up_clearly():
    with StocksReplayServer(StocksReplayConfig(tushare_minute_limit=0, limit_window_s=0.2)) as server:

        async def go():
            async with client(server, limit_window_s=0.2, max_limit_waits=2) as ts:
                await ts.minute_bars("600000.SH", WEEK[0])

        with pytest.raises(TushareLimitReached) as error:
            run(go())
    assert "per-minute" in str(error.value) and "每分钟" in str(error.value)
    assert len(server.requests_for("tushare")) == 3


def test_daily_quota_stops_that_api_without_retrying():
    config = StocksReplayConfig(tushare_day_limit=2)
    with StocksReplayServer(config) as server:

        async def go():
            async with client(server) as ts:
                await ts.minute_bars("600000.SH", WEEK[0])
                await ts.minute_bars("600000.SH", WEEK[1])
                errors = []
                for day in WEEK[2:4]:
                    try:
                        await ts.minute_bars("600000.SH", day)
                    except SourceBanned as error:
                        errors.append(error)
                daily = await ts.daily(["600000.SH"], WEEK[0], WEEK[0])  # another API: its own quota
                return errors, daily

        errors, daily = run(go())
        stk = [e for e in server.requests_for("tushare") if e["api"] == "stk_mins"]
    assert len(errors) == 2 and all(isinstance(e, TushareLimitReached) for e in errors)
    assert "daily quota of 'stk_mins'" in str(errors[0]) and tushare_day_limit_message(2) in str(errors[0])
    assert errors[0].until is not None
    assert len(stk) == 3  # the 4th call failed without a request
    assert daily.height == 1


def test_permission_40203_is_not_a_rate_limit_and_is_not_retried():
    with StocksReplayServer() as server:
        server.add_fault("tushare_permission", api="stk_mins")

        async def go():
            async with client(server) as ts:
                with pytest.raises(SourcePermissionError) as first:
                    await ts.minute_bars("600000.SH", WEEK[0])
                with pytest.raises(TusharePermissionError):
                    await ts.minute_bars("000001.SZ", WEEK[0])
                return first.value, await ts.daily(["600000.SH"], WEEK[0], WEEK[0]), ts.stats

        error, daily, stats = run(go())
    assert isinstance(error, TusharePermissionError) and "没有访问该接口的权限" in str(error)
    assert "stk_mins" in str(error) and stats.rate_limited == 0
    assert len([e for e in server.requests_for("tushare") if e["api"] == "stk_mins"]) == 1
    assert daily.height == 1


def test_code_2002_is_a_permission_error_and_other_codes_are_request_errors():
    with StocksReplayServer() as server:
        server.add_fault("tushare_error", api="daily", code=2002, message="您没有该接口的访问权限")
        server.add_fault(
            "tushare_error", api="stk_mins", symbols=["000001.SZ"], code=-2001, message="参数错误"
        )

        async def go():
            async with client(server) as ts:
                with pytest.raises(TusharePermissionError):
                    await ts.daily(["600000.SH"], WEEK[0], WEEK[0])
                with pytest.raises(SourceRequestError) as other:
                    await ts.minute_bars("000001.SZ", WEEK[0])
                return other.value, await ts.minute_bars("600000.SH", WEEK[0])

        other, ok = run(go())
    assert other.instrument == "000001.SZ" and "参数错误" in str(other) and ok.height == 241


@pytest.mark.parametrize(
    "code, msg, error_type, stops",
    [
        (40203, tushare_hour_limit_message(1), TushareLimitReached, "api"),
        (40203, tushare_day_limit_message(2), TushareLimitReached, "api"),
        (40203, TUSHARE_PERMISSION_MESSAGE, TusharePermissionError, "api"),
        (2002, "您没有该接口的访问权限", TusharePermissionError, "api"),
        (40101, TUSHARE_BAD_TOKEN_MESSAGE, TushareTokenError, "client"),
        (-2001, "参数错误", SourceRequestError, None),
    ],
)
def test_each_error_answer_stops_what_it_should(code, msg, error_type, stops):
    """A real Tushare error body, once, on stk_mins: the error it stands for, and what it stops
    (quota/permission: that API; token: the client; anything else: only that call)."""
    with StocksReplayServer() as server:
        server.add_fault("tushare_error", api="stk_mins", code=code, message=msg, times=1)

        async def go():
            async with client(server) as ts:
                with pytest.raises(error_type) as first:
                    await ts.minute_bars("600000.SH", WEEK[0])
                outcomes = []
                for fetch in (
                    lambda: ts.minute_bars("000001.SZ", WEEK[0]),
                    lambda: ts.daily(["600000.SH"], WEEK[0], WEEK[0]),
                ):
                    try:
                        outcomes.append((await fetch()).height)
                    except (SourceBanned, SourcePermissionError) as error:
                        outcomes.append(error)
                return first.value, outcomes, ts.stats

        error, (again, other_api), stats = run(go())
        log = server.requests_for("tushare")
    assert type(error) is error_type and msg in str(error) and stats.retries == stats.rate_limited == 0
    if stops is None:
        assert error.instrument == "600000.SH" and "stk_mins" in error.request
        assert (again, other_api) == (241, 1) and len(log) == 3
    elif stops == "api":
        assert again is error and other_api == 1  # refused without a request; daily is another API
        assert [e["api"] for e in log] == ["stk_mins", "daily"]
    else:
        assert again is error and other_api is error and len(log) == 1


def test_one_per_minute_answer_waits_one_window_then_succeeds():
    window = 0.3
    with StocksReplayServer() as server:
        server.add_fault(
            "tushare_error", api="stk_mins", code=40203, message=tushare_minute_limit_message(200), times=1
        )

        async def go():
            async with client(server, limit_window_s=window) as ts:
                return await ts.minute_bars("600000.SH", WEEK[0]), ts.figures(), ts.pause_until

        frame, figures, pause_until = run(go())
        log = server.requests_for("tushare")
    assert frame.height == 241 and [e["code"] for e in log] == [40203, 0]
    assert figures["limit_waits"] == 1 and figures["rate_limited_429"] == 1 and figures["retries"] == 1
    # the pause ends on a window boundary (wall clock) after the refusal, plus a little slack
    slack = window * 0.02
    boundary = (math.floor(log[0]["wall"] / window) + 1) * window
    assert boundary + slack - 1e-6 <= pause_until <= boundary + window + slack + 1e-6
    assert abs((pause_until - slack) / window - round((pause_until - slack) / window)) < 1e-6
    assert log[1]["wall"] >= pause_until  # the retry went in the next window


def test_http_429_is_backed_off_not_a_window_pause():
    with StocksReplayServer() as server:
        server.add_fault("http_error", api="daily", status=429, times=2)

        async def go():
            async with client(server, limit_window_s=60) as ts:
                started = time.monotonic()
                frame = await ts.daily(["600000.SH"], WEEK[0], WEEK[0])
                return frame, time.monotonic() - started, ts.figures()

        frame, elapsed, figures = run(go())
    assert frame.height == 1 and elapsed < 5  # no 60 s window wait
    assert figures["rate_limited_429"] == 2 and figures["limit_waits"] == 0 and figures["retries"] == 2


def test_figures_count_requests_waits_and_dropped_rows():
    with StocksReplayServer() as server:
        server.add_fault("non_numeric", api="stk_mins", field="vol", value=None, times=1)

        async def go():
            async with client(server) as ts:
                await ts.minute_bars("600000.SH", WEEK[0])
                await ts.daily(["600000.SH", "000001.SZ"], WEEK[0], WEEK[1])
                return ts.figures(), ts.quality

        figures, quality = run(go())
    assert {
        k: figures[k]
        for k in (
            "requests",
            "retries",
            "limit_waits",
            "dropped_null_rows",
            "dropped_partial_rows",
            "duplicate_rows",
        )
    } == {
        "requests": 2,
        "retries": 0,
        "limit_waits": 0,
        "dropped_null_rows": 0,
        "dropped_partial_rows": 1,
        "duplicate_rows": 0,
    }
    assert figures["latency_p50_ms"] is not None
    assert quality["600000.SH"]["rows"] == 241 and quality["600000.SH"]["partial_rows"] == 1
    assert quality["000001.SZ"]["daily_rows"] == 2


def test_bad_token_stops_the_client_and_the_token_never_shows(caplog):
    caplog.set_level(logging.DEBUG)
    config = StocksReplayConfig(tushare_tokens=["the-right-token"])
    with StocksReplayServer(config) as server:

        async def go():
            async with client(server) as ts:
                with pytest.raises(TushareTokenError) as first:
                    await ts.minute_bars("600000.SH", WEEK[0])
                with pytest.raises(TushareTokenError) as second:
                    await ts.daily(["600000.SH"], WEEK[0], WEEK[0])
                return first.value, second.value, repr(ts), str(ts)

        first, second, representation, text = run(go())
    assert (
        isinstance(first, SourcePermissionError) and "40101" in str(first) and "TUSHARE_TOKEN" in str(first)
    )
    assert len(server.requests_for("tushare")) == 1
    for shown in (str(first), repr(first), str(second), representation, text, caplog.text):
        assert TOKEN not in shown
    assert "token='***'" in representation


def test_token_never_in_logs_or_errors_across_faults(caplog):
    caplog.set_level(logging.DEBUG)  # httpx/httpcore debug logging included
    with StocksReplayServer(StocksReplayConfig()) as server:
        # the per-minute limit answer once (Tushare's own words), then a 503, two damaged bodies
        server.add_fault(
            "tushare_error",
            symbols=["600000.SH"],
            code=40203,
            message=tushare_minute_limit_message(2),
            times=1,
        )
        server.add_fault("http_error", symbols=["600036.SH"], status=503)
        server.add_fault("malformed_json", symbols=["601398.SH"])
        server.add_fault("non_numeric", symbols=["000001.SZ"], field="vol", value="1,000")

        async def go():
            errors = []
            async with client(server, limit_window_s=0.3) as ts:
                for code in ("600000.SH", "600036.SH", "601398.SH", "000001.SZ"):
                    try:
                        await ts.minute_bars(code, WEEK[0])
                    except Exception as error:  # noqa: BLE001
                        errors.append(error)
                return errors, ts.stats

        errors, stats = run(go())
    # the limit answer is waited out and retried; 503 -> ApiError; the damaged bodies -> TushareResponseError
    assert [type(e).__name__ for e in errors] == ["ApiError", "TushareResponseError", "TushareResponseError"]
    assert stats.rate_limited >= 1 and stats.server_errors >= 1
    assert "HTTP Request: POST" in caplog.text  # httpx did log every request
    for shown in [caplog.text] + [str(e) for e in errors] + [repr(e) for e in errors]:
        assert TOKEN not in shown


def test_per_symbol_isolation_with_parallel_workers():
    """Seed 003: symbols processed in parallel under a --workers semaphore; one symbol's failure
    doesn't affect the others ("Successful: 3/6")."""
    symbols = ["600000.SH", "000001.SZ", "600036.SH", "601398.SH", "600519.SH", "830799.BJ"]
    with StocksReplayServer() as server:
        server.add_fault("non_numeric", symbols=["000001.SZ"], field="close", value="--")
        server.add_fault("missing_field", symbols=["600036.SH"], field="amount")
        server.add_fault("malformed_json", symbols=["601398.SH"])
        server.add_fault("http_error", symbols=["600519.SH"], status=502, times=2)  # recovers
        server.add_fault("http_error", symbols=["830799.BJ"], status=500)  # never recovers

        async def go():
            workers = asyncio.Semaphore(3)
            async with client(server) as ts:

                async def one(code):
                    async with workers:
                        try:
                            return code, await ts.minute_bars(code, WEEK[0], WEEK[1])
                        except (SourceDataError, ApiError) as error:
                            return code, error

                return dict(await asyncio.gather(*(one(c) for c in symbols)))

        results = run(go())
    ok = {c for c, r in results.items() if isinstance(r, pl.DataFrame)}
    assert ok == {"600000.SH", "600519.SH"}
    assert f"Successful: {len(ok)}/{len(symbols)}" == "Successful: 2/6"
    assert as_rows(results["600519.SH"]) == expected_minutes(server, "600519.SH", WEEK[:2])
    assert "'--'" in str(results["000001.SZ"]) and results["000001.SZ"].instrument == "000001.SZ"
    assert "'amount'" in str(results["600036.SH"]) and "600036.SH" in str(results["600036.SH"])
    assert "malformed JSON body" in str(results["601398.SH"]) and "after 4 attempts" in str(
        results["601398.SH"]
    )
    assert results["601398.SH"].instrument == "601398.SH"
    assert isinstance(results["830799.BJ"], ApiError) and results["830799.BJ"].status == 500


def test_the_replays_serve_no_bars_on_their_exchanges_holidays():
    """As the vendors do: no Tushare bars on a Shanghai/Shenzhen holiday (the Dragon Boat Monday 2025-06-02),
    no Yahoo bars on a New York one (Thanksgiving 2025-11-27) while London trades; the next session has them
    (New York's until its early close), and a daily row's pre_close is the last session's close."""
    from marketdata_assets.replay.tushare import DAILY_FIELDS, ashare_daily, ashare_minutes
    from marketdata_assets.replay.yahoo import yahoo_minutes

    holiday, after = date(2025, 6, 2), date(2025, 6, 3)
    assert ashare_minutes(7, "600000.SH", holiday) == () and ashare_minutes(7, "000001.SZ", holiday) == ()
    assert len(ashare_minutes(7, "600000.SH", after)) == 241
    friday = ashare_minutes(7, "600000.SH", date(2025, 5, 30))
    assert (
        ashare_daily(7, "600000.SH", after)[DAILY_FIELDS.index("pre_close")] == friday[-1][3]
    )  # the last close
    assert (
        yahoo_minutes(7, "AAPL", date(2025, 11, 27)) == ()
        and len(yahoo_minutes(7, "AAPL", date(2025, 11, 28))) == 210  # the day after: closed at 13:00
        and len(yahoo_minutes(7, "AAPL", date(2025, 11, 26))) == 390  # a full session, 9:30-16:00
    )
    assert len(yahoo_minutes(7, "VOD.L", date(2025, 11, 27))) == 510  # London: 8:00-16:30
