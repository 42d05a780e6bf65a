"""Bad vendor JSON bodies, one table (issue 15): every body is served over real HTTP (a scripted
server on loopback) to the source's own client as the answer to the request it makes, so the
shared client's decoding and error table run as they do against the vendor.

An expected outcome is either a specific error (its type, a fragment of its message, and the
instrument named in it) or a documented, counted acceptance: the rows kept, and the rows dropped,
counted by reason in the client's figures (the figures are the ingest report's `sources`, the
asset's `source_figures` metadata; the last test runs one case through the engine to show it).
Bodies whose good rows sit beside a bad one assert both.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from marketdata_assets.core.http import (
    SourceDataError,
    SourceNotFound,
    SourcePermissionError,
    SourceRequestError,
)
from marketdata_assets.sources.binance import BinanceClient
from marketdata_assets.sources.deribit import DeribitClient
from marketdata_assets.sources.okx import OkxClient
from marketdata_assets.sources.tushare import (
    TushareClient,
    TusharePermissionError,
    TushareResponseError,
)
from marketdata_assets.sources.yahoo import YahooChartClient, YahooInstrumentNotFound
from tests.support.scripted_server import Reply, ScriptedServer
from tests.support.ticks_common import FAST, run

DAY = date(2025, 1, 15)
T0 = datetime(2025, 1, 15, 12, tzinfo=UTC)  # the window asked of the crypto venues: 12:00-13:00
T1 = T0 + timedelta(hours=1)
MS = int(T0.timestamp() * 1000)  # 1736942400000
SEC = MS // 1000
MINUTE = 60_000
INSTRUMENT = {
    "binance": "BTCUSDT",
    "okx": "BTC-USDT",
    "deribit": "BTC-PERPETUAL",
    "tushare": "600000.SH",
    "yahoo": "VOD.L",
}


def dumps(value: Any) -> bytes:
    return json.dumps(value).encode()


# ---- bodies -----------------------------------------------------------------------------------


def agg(a=100, p="94350.01", q="0.5", t=MS + 1_000, m=True, **extra) -> dict:
    return {"a": a, "p": p, "q": q, "f": a * 2, "l": a * 2, "T": t, "m": m, "M": True, **extra}


def kline(t=MS, o="94350.0", h="94400.0", lo="94300.0", c="94380.0", v="12.5", close=None, n=300) -> list:
    return [
        t,
        o,
        h,
        lo,
        c,
        v,
        t + MINUTE - 1 if close is None else close,
        "1179375.0",
        n,
        "6.1",
        "575000.0",
        "0",
    ]


def okx(data: Any, code: str = "0", msg: str = "") -> dict:
    return {"code": code, "msg": msg, "data": data}


def okx_trade(
    trade_id="242720720", px="94350.1", sz="0.01", ts=MS + 1_000, side="sell", inst="BTC-USDT"
) -> dict:
    return {
        "instId": inst,
        "side": side,
        "sz": sz,
        "px": px,
        "source": "0",
        "tradeId": trade_id,
        "ts": ts if isinstance(ts, str) else str(ts),
    }


def candle(t=MS, o="94350.0", h="94400.0", lo="94300.0", c="94380.0", vol="12.5", confirm="1") -> list:
    return [str(t), o, h, lo, c, vol, "1179375.0", "1179375.0", confirm]


def rpc(result: Any = None, **extra) -> dict:
    body = {
        "jsonrpc": "2.0",
        "id": 7,
        "usIn": MS * 1000,
        "usOut": MS * 1000 + 900,
        "usDiff": 900,
        "testnet": False,
    }
    if result is not None:
        body["result"] = result
    return {**body, **extra}


def deribit_trade(
    seq=1001,
    trade_id="320450001",
    price=94350.5,
    amount=100.0,
    ts=MS + 1_000,
    direction="buy",
    inst="BTC-PERPETUAL",
) -> dict:
    return {
        "trade_seq": seq,
        "trade_id": trade_id,
        "timestamp": ts,
        "tick_direction": 0,
        "price": price,
        "mark_price": 94351.2,
        "iv": None,
        "instrument_name": inst,
        "index_price": 94360.1,
        "direction": direction,
        "amount": amount,
    }


def chart(ticks=(MS, MS + MINUTE), status="ok", **override) -> dict:
    n = len(ticks)
    arrays = {
        "ticks": list(ticks),
        "open": [94350.0] * n,
        "high": [94400.0] * n,
        "low": [94300.0] * n,
        "close": [94380.0] * n,
        "volume": [12.5] * n,
        "cost": [1179375.0] * n,
    }
    arrays.update(override)
    return rpc({"status": status, **arrays})


STK_FIELDS = ["ts_code", "trade_time", "open", "close", "high", "low", "vol", "amount"]


def stk(*rows, fields=STK_FIELDS, code=0, msg="") -> dict:
    return {
        "request_id": "r1",
        "code": code,
        "msg": msg,
        "data": {"fields": fields, "items": [list(r) for r in rows], "has_more": False, "count": len(rows)},
    }


def minute(
    label="2025-01-15 09:31:00",
    o=10.01,
    c=10.02,
    h=10.03,
    lo=10.0,
    vol=120000.0,
    amount=1201200.0,
    code="600000.SH",
) -> list:
    return [code, label, o, c, h, lo, vol, amount]


DAILY_FIELDS = [
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
]


def daily_row(code="600000.SH", day="20250115", vol=523412.5, **prices) -> list:
    p = {"open": 10.0, "high": 10.2, "low": 9.9, "close": 10.1, "pre_close": 10.0, **prices}
    return [code, day, p["open"], p["high"], p["low"], p["close"], p["pre_close"], 0.1, 1.0, vol, 528647.3]


YAHOO_T0 = int(datetime(2025, 1, 15, 8, tzinfo=UTC).timestamp())  # 08:00 London


def yahoo(ts=(YAHOO_T0, YAHOO_T0 + 60, YAHOO_T0 + 120), meta=None, drop_meta=(), **quote) -> dict:
    n = len(ts)
    columns = {
        "open": [71.0] * n,
        "high": [71.30000305175781] * n,
        "low": [70.9000015258789] * n,
        "close": [71.19999694824219] * n,
        "volume": [1500] * n,
    }
    columns.update(quote)
    base = {
        "currency": "GBp",
        "symbol": "VOD.L",
        "exchangeName": "LSE",
        "instrumentType": "EQUITY",
        "gmtoffset": 0,
        "exchangeTimezoneName": "Europe/London",
        "dataGranularity": "1m",
        **(meta or {}),
    }
    for key in drop_meta:
        base.pop(key)
    return {
        "chart": {
            "result": [{"meta": base, "timestamp": list(ts), "indicators": {"quote": [columns]}}],
            "error": None,
        }
    }


# ---- the table ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    source: str  # binance | okx | deribit | tushare | yahoo
    endpoint: str  # the client method's answer: aggTrades | klines | history-trades | ...
    body: bytes
    error: type | None = None  # expected: this error, with `words` in its message ...
    words: str = ""
    rows: int | None = None  # ... or accepted: this many rows kept
    counted: dict = field(default_factory=dict)  # and these figures (drops by reason)
    status: int = 200
    content_type: str = "application/json"
    instrument: str = ""  # default: INSTRUMENT[source]
    then: bytes | None = None  # the answer to the next request (after a "try again" answer)

    @property
    def asked(self) -> str:
        """The instrument the case asks for."""
        return self.instrument or INSTRUMENT[self.source]


def err(source, endpoint, body, error, words, **kw) -> Case:
    return Case(
        source, endpoint, body if isinstance(body, bytes) else dumps(body), error=error, words=words, **kw
    )


def ok(source, endpoint, body, rows, counted=None, **kw) -> Case:
    return Case(
        source,
        endpoint,
        body if isinstance(body, bytes) else dumps(body),
        rows=rows,
        counted=counted or {},
        **kw,
    )


HTML = b"<html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1></body></html>"
BAD = "malformed JSON body"

CASES = {
    # ---- Binance aggTrades ------------------------------------------------------------------
    "binance-html-page-with-200": err(
        "binance", "aggTrades", HTML, SourceDataError, BAD, content_type="text/html"
    ),
    "binance-empty-body": err("binance", "aggTrades", b"", SourceDataError, BAD),
    "binance-truncated-json": err("binance", "aggTrades", dumps([agg()])[:40], SourceDataError, BAD),
    "binance-json-null": err(
        "binance", "aggTrades", None, SourceDataError, "expected a JSON array, got NoneType"
    ),
    "binance-object-not-array": err(
        "binance", "aggTrades", agg(), SourceDataError, "expected a JSON array, got dict"
    ),
    "binance-error-envelope-200": err(
        "binance", "aggTrades", {"code": -1121, "msg": "Invalid symbol."}, SourceNotFound, "Invalid symbol."
    ),
    "binance-missing-field": err(
        "binance",
        "aggTrades",
        [{k: v for k, v in agg().items() if k != "p"}],
        SourceDataError,
        "lacks field 'p'",
    ),
    "binance-price-not-numeric": err(
        "binance", "aggTrades", [agg(p="94,350.01")], SourceDataError, "'94,350.01', not a number"
    ),
    "binance-negative-price": err(
        "binance",
        "aggTrades",
        [agg(p="-94350.01")],
        SourceDataError,
        "aggTrade #0 (a=100) p is '-94350.01', not positive",
    ),
    "binance-zero-quantity": err(
        "binance",
        "aggTrades",
        [agg(), agg(a=101, q="0.00000000")],
        SourceDataError,
        "aggTrade #1 (a=101) q is '0.00000000', not positive",
    ),
    "binance-nan-price": err(
        "binance", "aggTrades", [agg(p="NaN")], SourceDataError, "'NaN', not a finite number"
    ),
    "binance-infinity-literal": err(
        "binance",
        "aggTrades",
        b'[{"a": 1, "p": Infinity, "q": "1", "T": 1736942401000, "m": true, "M": true}]',
        SourceDataError,
        "inf, not a finite number",
    ),
    "binance-huge-id": err(
        "binance",
        "aggTrades",
        [agg(a=10**20)],
        SourceDataError,
        "100000000000000000000, out of the 64-bit integer range",
    ),
    "binance-huge-price": err(
        "binance", "aggTrades", [agg(p="1e400")], SourceDataError, "not a finite number"
    ),
    "binance-time-in-seconds": err(
        "binance",
        "aggTrades",
        [agg(t=SEC + 1)],
        SourceDataError,
        "T is 1736942401: neither epoch milliseconds nor microseconds",
    ),
    "binance-buyer-maker-not-bool": err(
        "binance", "aggTrades", [agg(m="true")], SourceDataError, "m is 'true', not true/false"
    ),
    "binance-klines-body-for-trades": err(
        "binance", "aggTrades", [kline()], SourceDataError, "aggTrade #0 is list"
    ),
    "binance-same-id-different-trade": err(
        "binance",
        "aggTrades",
        [agg(), agg(p="94351.00")],
        SourceDataError,
        "trade id 100 comes 2 times with different values",
    ),
    "binance-time-in-microseconds": ok("binance", "aggTrades", [agg(t=MS * 1000 + 1_000_123)], 1),
    "binance-unsorted-rows": ok(
        "binance", "aggTrades", [agg(a=102, t=MS + 3_000), agg(a=101, t=MS + 2_000)], 2
    ),
    "binance-same-trade-twice": ok(
        "binance", "aggTrades", [agg(), agg(), agg(a=101)], 2, {"dropped_duplicates": 1}
    ),
    "binance-row-of-the-day-before": ok(
        "binance", "aggTrades", [agg(a=99, t=MS - 86_400_000), agg()], 1, {"dropped_outside_window": 1}
    ),
    "binance-epoch-zero-row": ok(
        "binance", "aggTrades", [agg(a=99, t=0), agg()], 1, {"dropped_implausible_time": 1}
    ),
    # ---- Binance klines ----------------------------------------------------------------------
    "binance-1h-kline-for-1m": err(
        "binance",
        "klines",
        [kline(close=MS + 3_600_000 - 1)],
        SourceDataError,
        "spans 3600 s (close time - open time), not 60 s",
    ),
    "binance-kline-11-elements": err(
        "binance", "klines", [kline()[:11]], SourceDataError, "not a 12-element array"
    ),
    "binance-kline-high-below-low": err(
        "binance", "klines", [kline(h="94200.0")], SourceDataError, "is not a bar: open 94350.0, high 94200.0"
    ),
    "binance-kline-zero-open": err(
        "binance", "klines", [kline(o="0")], SourceDataError, "kline #0 open is '0', not positive"
    ),
    "binance-kline-negative-volume": err(
        "binance",
        "klines",
        [kline(v="-12.5")],
        SourceDataError,
        "kline #0 volume is '-12.5', not a number >= 0",
    ),
    "binance-kline-mid-minute": err(
        "binance",
        "klines",
        [kline(t=MS + 30_000)],
        SourceDataError,
        "opens at 2025-01-15T12:00:30+00:00, not on a minute",
    ),
    "binance-kline-seconds": err(
        "binance",
        "klines",
        [kline(t=SEC, close=SEC + 59)],
        SourceDataError,
        "open time is 1736942400: neither epoch milliseconds",
    ),
    "binance-kline-trades-not-integer": err(
        "binance", "klines", [kline(n="many")], SourceDataError, "number of trades is 'many', not an integer"
    ),
    "binance-kline-error-envelope-200": err(
        "binance",
        "klines",
        {"code": -1120, "msg": "Invalid interval."},
        SourceRequestError,
        "Invalid interval.",
    ),
    "binance-kline-same-minute-different-bar": err(
        "binance",
        "klines",
        [kline(), kline(c="94390.0")],
        SourceDataError,
        "comes 2 times with different values",
    ),
    "binance-kline-same-bar-twice": ok(
        "binance", "klines", [kline(), kline(), kline(t=MS + MINUTE)], 2, {"dropped_duplicates": 1}
    ),
    "binance-kline-microseconds": ok(
        "binance", "klines", [kline(t=MS * 1000, close=MS * 1000 + 59_999_999)], 1
    ),
    # ---- OKX history-trades ------------------------------------------------------------------
    "okx-error-envelope-200": err(
        "okx",
        "history-trades",
        okx([], "51001", "Instrument ID doesn't exist"),
        SourceNotFound,
        "Instrument ID doesn't exist",
    ),
    "okx-html-page-with-200": err(
        "okx", "history-trades", HTML, SourceDataError, BAD, content_type="text/html"
    ),
    "okx-json-null": err(
        "okx", "history-trades", None, SourceDataError, "expected the {code, msg, data} envelope"
    ),
    "okx-no-data-key": err(
        "okx", "history-trades", {"code": "0", "msg": ""}, SourceDataError, "envelope lacks field 'data'"
    ),
    "okx-data-not-array": err(
        "okx", "history-trades", okx({"trades": []}), SourceDataError, "envelope data is dict, not an array"
    ),
    "okx-other-instrument": err(
        "okx",
        "history-trades",
        okx([okx_trade(inst="ETH-USDT")]),
        SourceDataError,
        "is for 'ETH-USDT', not BTC-USDT",
    ),
    "okx-side-upper-case": err(
        "okx", "history-trades", okx([okx_trade(side="BUY")]), SourceDataError, "side is 'BUY', not buy/sell"
    ),
    "okx-empty-price": err(
        "okx", "history-trades", okx([okx_trade(px="")]), SourceDataError, "px is '', not a number"
    ),
    "okx-zero-size": err(
        "okx", "history-trades", okx([okx_trade(sz="0")]), SourceDataError, "sz is '0', not positive"
    ),
    "okx-ts-in-seconds": err(
        "okx",
        "history-trades",
        okx([okx_trade(ts=SEC + 1)]),
        SourceDataError,
        "neither epoch milliseconds nor microseconds",
    ),
    "okx-ts-fractional": err(
        "okx",
        "history-trades",
        okx([okx_trade(ts="1736942401000.5")]),
        SourceDataError,
        "'1736942401000.5', not an integer",
    ),
    "okx-trade-id-a-number": err(
        "okx",
        "history-trades",
        okx([{**okx_trade(), "tradeId": 242720720}]),
        SourceDataError,
        "trade #0 tradeId is 242720720, not a string",
    ),
    "okx-same-trade-twice": ok(
        "okx",
        "history-trades",
        okx([okx_trade(), okx_trade(), okx_trade("242720719")]),
        2,
        {"dropped_duplicates": 1},
    ),
    "okx-row-after-the-window": ok(
        "okx",
        "history-trades",
        okx([okx_trade("242720721", ts=MS + 3_600_000 + 5), okx_trade()]),
        1,
        {"dropped_outside_window": 1},
    ),
    "okx-page-past-the-window-start": ok(
        "okx",
        "history-trades",
        okx([okx_trade(), okx_trade("242720719", ts=MS - 5)]),
        1,
        {"dropped_past_window_edge": 1},
    ),
    "okx-epoch-zero-row": ok(
        "okx",
        "history-trades",
        okx([okx_trade(), okx_trade("242720719", ts=0)]),
        1,
        {"dropped_implausible_time": 1},
    ),
    # ---- OKX candles ---------------------------------------------------------------------------
    "okx-unconfirmed-candle-beside-confirmed": ok(
        "okx", "candles", okx([candle(MS + MINUTE, confirm="0"), candle(MS)]), 1, {"dropped_unconfirmed": 1}
    ),
    "okx-candle-confirm-garbage": err(
        "okx", "candles", okx([candle(confirm="yes")]), SourceDataError, "confirm is 'yes'"
    ),
    "okx-candle-short-row": err(
        "okx",
        "candles",
        okx([candle()[:6]]),
        SourceDataError,
        "is not a [ts, o, h, l, c, vol, volCcy, volCcyQuote, confirm] array",
    ),
    "okx-candle-mid-minute": err(
        "okx", "candles", okx([candle(MS + 1_234)]), SourceDataError, "not on a minute"
    ),
    "okx-candle-low-above-open": err(
        "okx", "candles", okx([candle(lo="94360.0")]), SourceDataError, "is not a bar"
    ),
    "okx-candle-negative-volume": err(
        "okx", "candles", okx([candle(vol="-1")]), SourceDataError, "vol is '-1', not a number >= 0"
    ),
    "okx-candle-busy-code-then-ok": ok(
        "okx",
        "candles",
        okx([], "50026", "System error, please try again later."),
        1,
        {"retries": 1},
        then=dumps(okx([candle(MS)])),
    ),
    # ---- Deribit -------------------------------------------------------------------------------
    "deribit-error-envelope-200": err(
        "deribit",
        "trades",
        rpc(error={"code": 10020, "message": "invalid_instrument"}),
        SourceNotFound,
        "invalid_instrument",
    ),
    "deribit-other-rpc-error-200": err(
        "deribit",
        "trades",
        rpc(error={"code": 11050, "message": "bad_request", "data": {"reason": "x", "param": "count"}}),
        SourceRequestError,
        "bad_request (reason=x, param=count)",
    ),
    "deribit-no-result": err(
        "deribit", "trades", rpc(), SourceDataError, "JSON-RPC response lacks field 'result'"
    ),
    "deribit-trades-not-array": err(
        "deribit",
        "trades",
        rpc({"trades": {}, "has_more": False}),
        SourceDataError,
        "result.trades is dict, not an array",
    ),
    "deribit-has-more-a-string": err(
        "deribit",
        "trades",
        rpc({"trades": [], "has_more": "false"}),
        SourceDataError,
        "result.has_more is 'false', not true/false",
    ),
    "deribit-trade-id-a-number": err(
        "deribit",
        "trades",
        rpc({"trades": [deribit_trade(trade_id=320450001)], "has_more": False}),
        SourceDataError,
        "trade #0 trade_id is 320450001, not a string",
    ),
    "deribit-direction-garbage": err(
        "deribit",
        "trades",
        rpc({"trades": [deribit_trade(direction="long")], "has_more": False}),
        SourceDataError,
        "direction is 'long', not buy/sell",
    ),
    "deribit-zero-amount": err(
        "deribit",
        "trades",
        rpc({"trades": [deribit_trade(amount=0)], "has_more": False}),
        SourceDataError,
        "amount is 0, not positive",
    ),
    "deribit-timestamp-seconds": err(
        "deribit",
        "trades",
        rpc({"trades": [deribit_trade(ts=SEC)], "has_more": False}),
        SourceDataError,
        "neither epoch milliseconds nor microseconds",
    ),
    "deribit-other-instrument": err(
        "deribit",
        "trades",
        rpc({"trades": [deribit_trade(inst="ETH-PERPETUAL")], "has_more": False}),
        SourceDataError,
        "is for 'ETH-PERPETUAL', not BTC-PERPETUAL",
    ),
    "deribit-same-trade-twice": ok(
        "deribit",
        "trades",
        rpc({"trades": [deribit_trade(), deribit_trade()], "has_more": False}),
        1,
        {"dropped_duplicates": 1},
    ),
    "deribit-epoch-zero-row": ok(
        "deribit",
        "trades",
        rpc(
            {
                "trades": [deribit_trade(seq=1000, trade_id="320450000", ts=0), deribit_trade()],
                "has_more": False,
            }
        ),
        1,
        {"dropped_implausible_time": 1},
    ),
    "deribit-chart-status-error": err(
        "deribit", "chart", chart(status="error"), SourceDataError, "chart status is 'error'"
    ),
    "deribit-chart-lengths-differ": err(
        "deribit", "chart", chart(close=[94380.0]), SourceDataError, "chart arrays differ in length"
    ),
    "deribit-chart-null-close": err(
        "deribit",
        "chart",
        chart(close=[94380.0, None]),
        SourceDataError,
        "chart close[1] is None, not a number",
    ),
    "deribit-chart-ticks-seconds": err(
        "deribit", "chart", chart(ticks=(SEC, SEC + 60)), SourceDataError, "neither epoch milliseconds"
    ),
    "deribit-chart-no-data": ok(
        "deribit",
        "chart",
        rpc(
            {
                "status": "no_data",
                "ticks": [],
                "open": [],
                "high": [],
                "low": [],
                "close": [],
                "volume": [],
                "cost": [],
            }
        ),
        0,
    ),
    # ---- Tushare stk_mins / daily ------------------------------------------------------------
    "tushare-permission-code": err(
        "tushare",
        "stk_mins",
        stk(code=40203, msg="抱歉，您没有访问该接口的权限"),
        TusharePermissionError,
        "no permission for 'stk_mins'",
    ),
    "tushare-parameter-code": err(
        "tushare", "stk_mins", stk(code=-2001, msg="参数错误"), SourceRequestError, "参数错误"
    ),
    "tushare-code-0-data-null": err(
        "tushare",
        "stk_mins",
        {"request_id": "r", "code": 0, "msg": "", "data": None},
        TushareResponseError,
        "code 0 but `data` is null",
    ),
    "tushare-html-page-with-200": err(
        "tushare", "stk_mins", HTML, TushareResponseError, f"{BAD} (HTTP 200", content_type="text/html"
    ),
    "tushare-empty-body": err("tushare", "stk_mins", b"", TushareResponseError, "after 4 attempts"),
    "tushare-array-not-object": err(
        "tushare", "stk_mins", [minute()], TushareResponseError, "the answer is a JSON list, not an object"
    ),
    "tushare-field-missing": err(
        "tushare",
        "stk_mins",
        stk(minute()[:6], fields=STK_FIELDS[:6]),
        TushareResponseError,
        "no field 'vol'",
    ),
    "tushare-row-too-short": err(
        "tushare", "stk_mins", stk(minute()[:7]), TushareResponseError, "row 0 has 7 values for 8 fields"
    ),
    "tushare-price-not-numeric": err(
        "tushare", "stk_mins", stk(minute(o="10,01")), TushareResponseError, "non-numeric open '10,01'"
    ),
    "tushare-negative-price": err(
        "tushare",
        "stk_mins",
        stk(minute(lo=-10.0)),
        TushareResponseError,
        "low is -10.0 at 600000.SH 2025-01-15 09:31:00, not a positive price",
    ),
    "tushare-infinite-amount": err(
        "tushare",
        "stk_mins",
        b'{"code": 0, "msg": "", "data": {"fields": ["ts_code", '
        b'"trade_time", "open", "close", "high", "low", "vol", '
        b'"amount"], "items": [["600000.SH", "2025-01-15 09:31:00",'
        b" 10.0, 10.0, 10.0, 10.0, 1.0, Infinity]]}}",
        TushareResponseError,
        "infinite amount",
    ),
    "tushare-time-with-slashes": err(
        "tushare",
        "stk_mins",
        stk(minute("2025/01/15 09:31")),
        TushareResponseError,
        "is not 'YYYY-MM-DD HH:MM:SS'",
    ),
    "tushare-row-of-another-code": err(
        "tushare",
        "stk_mins",
        stk(minute(code="000001.SZ")),
        TushareResponseError,
        "a row of 000001.SZ in the answer for 600000.SH",
    ),
    "tushare-null-row-beside-good": ok(
        "tushare",
        "stk_mins",
        stk(minute("2025-01-15 09:32:00", None, None, None, None, None, None), minute()),
        1,
        {"dropped_null_rows": 1},
    ),
    "tushare-same-row-twice": ok("tushare", "stk_mins", stk(minute(), minute()), 1, {"duplicate_rows": 1}),
    "tushare-row-of-another-day": ok(
        "tushare", "stk_mins", stk(minute(), minute("2025-01-14 14:59:00")), 1, {"dropped_outside_window": 1}
    ),
    "tushare-daily-negative-volume": err(
        "tushare",
        "daily",
        stk(daily_row(vol=-1.0), fields=DAILY_FIELDS),
        TushareResponseError,
        "vol is -1.0 at 600000.SH 20250115, negative",
    ),
    "tushare-daily-iso-date": err(
        "tushare",
        "daily",
        stk(daily_row(day="2025-01-15"), fields=DAILY_FIELDS),
        TushareResponseError,
        "trade_date '2025-01-15' is not YYYYMMDD",
    ),
    "tushare-daily-null-row-beside-good": ok(
        "tushare",
        "daily",
        stk(
            daily_row(),
            daily_row("000001.SZ", open=None, high=None, low=None, close=None, vol=None),
            fields=DAILY_FIELDS,
        ),
        1,
        {"dropped_partial_rows": 1},
    ),
    # ---- Yahoo chart ---------------------------------------------------------------------------
    "yahoo-chart-error-200": err(
        "yahoo",
        "chart",
        {
            "chart": {
                "result": None,
                "error": {"code": "Not Found", "description": "No data found, symbol may be delisted"},
            }
        },
        YahooInstrumentNotFound,
        "No data found, symbol may be delisted",
    ),
    "yahoo-html-page-with-200": err(
        "yahoo", "chart", HTML, SourceDataError, f"{BAD} (HTTP 200", content_type="text/html"
    ),
    "yahoo-truncated-json": err("yahoo", "chart", dumps(yahoo())[:100], SourceDataError, "after 4 attempts"),
    "yahoo-json-null": err("yahoo", "chart", None, SourceDataError, "the body is not a JSON object"),
    "yahoo-empty-result": err(
        "yahoo",
        "chart",
        {"chart": {"result": [], "error": None}},
        SourceDataError,
        "chart.result is missing or empty",
    ),
    "yahoo-london-without-currency": err(
        "yahoo",
        "chart",
        yahoo(drop_meta=("currency",)),
        SourceDataError,
        "no meta.currency: on London Yahoo quotes prices in a major or a minor unit",
    ),
    "yahoo-daily-bars-for-1m": err(
        "yahoo",
        "chart",
        yahoo(meta={"dataGranularity": "1d"}),
        SourceDataError,
        "meta.dataGranularity is '1d' where '1m' bars were asked for",
    ),
    "yahoo-timestamps-in-ms": err(
        "yahoo", "chart", yahoo(ts=(YAHOO_T0 * 1000,)), SourceDataError, "not epoch seconds"
    ),
    "yahoo-quote-length-mismatch": err(
        "yahoo",
        "chart",
        yahoo(close=[71.2, 71.3]),
        SourceDataError,
        "indicators.quote[0].close has 2 values for 3 timestamps",
    ),
    "yahoo-close-a-string": err(
        "yahoo", "chart", yahoo(close=[71.2, "71.3", 71.4]), SourceDataError, "non-numeric close '71.3'"
    ),
    "yahoo-negative-volume": err(
        "yahoo",
        "chart",
        yahoo(volume=[1500, -3, 1500]),
        SourceDataError,
        "volume -3 at 2025-01-15T08:01:00+00:00, negative",
    ),
    "yahoo-infinite-close": err(
        "yahoo",
        "chart",
        dumps(yahoo()).replace(b"71.19999694824219", b"Infinity", 1),
        SourceDataError,
        "infinite close",
    ),
    "yahoo-null-minute-beside-good": ok(
        "yahoo",
        "chart",
        yahoo(
            open=[71.0, None, 71.0],
            high=[71.3, None, 71.3],
            low=[70.9, None, 70.9],
            close=[71.2, None, 71.2],
            volume=[1500, None, 1500],
        ),
        2,
        {"dropped_null_minutes": 1},
    ),
    "yahoo-same-minute-twice": ok(
        "yahoo", "chart", yahoo(ts=(YAHOO_T0, YAHOO_T0, YAHOO_T0 + 60)), 2, {"dropped_duplicates": 1}
    ),
    "yahoo-minute-of-the-next-day": ok(
        "yahoo",
        "chart",
        yahoo(ts=(YAHOO_T0, YAHOO_T0 + 60, YAHOO_T0 + 86_400)),
        2,
        {"dropped_outside_window": 1},
    ),
    "yahoo-us-symbol-without-currency": ok(
        "yahoo",
        "chart",
        yahoo(meta={"symbol": "AAPL", "exchangeName": "NMS"}, drop_meta=("currency",)),
        3,
        {"answers_without_currency": 1},
        instrument="AAPL",
    ),
}


# ---- running a case ---------------------------------------------------------------------------

EMPTY = {
    "binance": b"[]",
    "okx": dumps(okx([])),
    "deribit": dumps(rpc({"trades": [], "has_more": False})),
    "tushare": dumps(stk()),
    "yahoo": dumps(yahoo(ts=())),
}
RETRIED = {"tushare", "yahoo"}  # a body that is not JSON is asked again (1 + 3 retries) before it fails


def make_client(source: str, url: str):
    options = {"retry": FAST, "requests_per_minute": 60_000}
    if source == "binance":
        return BinanceClient(url, **options)
    if source == "okx":
        return OkxClient(url, **options)
    if source == "deribit":
        return DeribitClient(url, **options)
    if source == "tushare":
        return TushareClient(url, "token-for-tests", **options)
    return YahooChartClient(url, clock=lambda: T1.timestamp() + 86_400, **options)


async def fetch(api, case: Case):
    instrument = case.asked
    if case.source == "tushare":
        if case.endpoint == "daily":
            return await api.daily([instrument, "000001.SZ"], DAY, DAY)
        return await api.minute_bars(instrument, DAY)
    if case.source == "yahoo":
        start = datetime(DAY.year, DAY.month, DAY.day, tzinfo=UTC)
        return (await api.fetch_bars(instrument, start, start + timedelta(days=1))).frame
    if case.endpoint in ("klines", "candles", "chart"):
        return await api.bars_1m(instrument, T0, T1)
    return await api.trades(instrument, T0, T1)


@pytest.fixture(scope="module")
def server():
    with ScriptedServer() as srv:
        yield srv


@pytest.mark.parametrize("name", list(CASES))
def test_a_bad_vendor_body(server, name):
    case = CASES[name]
    server.replies.clear()
    server.requests.clear()
    reply = Reply(case.status, case.body, {"Content-Type": case.content_type})
    server.replies.extend([reply] * (4 if case.source in RETRIED else 1))
    if case.then is not None:
        server.replies.append(Reply(200, case.then))
    server.replies.extend([Reply(200, EMPTY[case.source])] * 3)

    async def go():
        async with make_client(case.source, server.url) as api:
            try:
                return await fetch(api, case), api.figures()
            except Exception as error:  # noqa: BLE001 - the outcome under test
                return error, api.figures()

    outcome, figures = run(go())
    if case.error is not None:
        assert isinstance(outcome, case.error), f"{name}: {outcome!r}"
        message = str(outcome)
        assert case.words in message, message
        if not isinstance(
            outcome, SourcePermissionError
        ):  # refused for the whole API: the engine names the slice
            assert case.asked in message, f"the error does not name the instrument: {message}"
        return
    assert not isinstance(outcome, Exception), f"{name}: {outcome!r}"
    assert outcome.height == case.rows, outcome
    assert set(outcome["instrument"]) <= {case.asked}
    key = "trade_id" if "trade_id" in outcome.columns else "ts"
    assert outcome["ts"].is_sorted() and outcome[key].is_unique().all()
    for key, value in case.counted.items():
        assert figures[key] == value, (key, figures)
    dropped = {k: v for k, v in figures.items() if k.startswith("dropped_") or k == "duplicate_rows"}
    assert sum(dropped.values()) == sum(v for k, v in case.counted.items() if k in dropped), dropped


def test_the_corpus_covers_every_source_and_outcome():
    by_source: dict[str, int] = {}
    for case in CASES.values():
        by_source[case.source] = by_source.get(case.source, 0) + 1
    assert len(CASES) >= 25 and set(by_source) == set(INSTRUMENT) and min(by_source.values()) >= 10
    assert sum(c.error is None for c in CASES.values()) >= 15  # counted acceptances beside the errors


def test_the_drops_reach_the_ingest_report(clickhouse):
    """An OKX day with an unconfirmed candle beside confirmed ones, through the engine: the slice
    is written with the confirmed bars, the unconfirmed one is in the report's source figures."""
    from marketdata_assets.datasets.slices import SliceKey
    from marketdata_assets.ingest.engine import Engine
    from marketdata_assets.sources.venues import venue_feed
    from marketdata_assets.stores.clickhouse import tables as ct

    with clickhouse.get_client() as ch:
        ct.ensure_tables(ch, clickhouse.database)
    with ScriptedServer() as srv:
        srv.replies.extend(
            [Reply(200, dumps(okx([candle(MS + MINUTE, confirm="0"), candle(MS)]))), Reply(200, EMPTY["okx"])]
        )
        feed = venue_feed(
            "OKX",
            lambda: OkxClient(srv.url, retry=FAST),
            [SliceKey("bars_1m", "OKX", "BTC-USDT", DAY)],
            workers=1,
            attempts=1,
        )
        report = Engine(clickhouse.get_client, clickhouse.database, "drops").run([[feed]])
    (outcome,) = report.outcomes.values()
    assert outcome.status == "ok" and outcome.rows == 1
    assert report.sources["OKX"]["dropped_unconfirmed"] == 1
    assert (
        report.sources["OKX"]["dropped_past_window_edge"]
        == 0
        == report.sources["OKX"]["dropped_outside_window"]
    )
    # ... and the slice's own ingest_log row and metadata say so: "successful" never hides a drop
    assert outcome.dropped == {"unconfirmed": 1}
    assert logged(clickhouse, "drops") == [("BTC-USDT", "ok", 1, {"unconfirmed": 1}, [])]
    metadata = report.metadata("bars_1m")
    assert metadata["rows_dropped"] == 1 and metadata["dropped_by_reason"] == {"unconfirmed": 1}
    assert "1 unconfirmed" in metadata["slices"]


def logged(clickhouse, run_id: str) -> list[tuple]:
    with clickhouse.get_client() as ch:
        return [
            tuple(r)
            for r in ch.query(
                "SELECT instrument, outcome, rows, dropped, conversions FROM "
                f"`{clickhouse.database}`.ingest_log WHERE run_id = {{run:String}} ORDER BY instrument",
                parameters={"run": run_id},
            ).result_rows
        ]


def test_unit_conversions_are_recorded_per_slice(clickhouse):
    """Deribit's inverse perpetual trades in USD amounts: the quantity stored is coin (amount /
    price), and the slice's ingest_log row and metadata name that conversion; a linear
    instrument's slice names none."""
    from marketdata_assets.datasets.slices import SliceKey
    from marketdata_assets.ingest.engine import Engine
    from marketdata_assets.sources.deribit.units import INVERSE_CONVERSION
    from marketdata_assets.sources.venues import venue_feed
    from marketdata_assets.stores.clickhouse import tables as ct

    with clickhouse.get_client() as ch:
        ct.ensure_tables(ch, clickhouse.database)
    inverse, linear = "BTC-PERPETUAL", "BTC_USDC-PERPETUAL"
    with ScriptedServer() as srv:
        for instrument in (inverse, linear):
            srv.replies.append(
                Reply(
                    200,
                    dumps(rpc({"trades": [deribit_trade(amount=100.0, inst=instrument)], "has_more": False})),
                )
            )
        keys = [SliceKey("trades", "DERIBIT", instrument, DAY) for instrument in (inverse, linear)]
        feed = venue_feed("DERIBIT", lambda: DeribitClient(srv.url, retry=FAST), keys, workers=1, attempts=1)
        report = Engine(clickhouse.get_client, clickhouse.database, "units").run([[feed]])
    assert logged(clickhouse, "units") == [
        (inverse, "ok", 1, {}, [INVERSE_CONVERSION]),
        (linear, "ok", 1, {}, []),
    ]
    assert INVERSE_CONVERSION in report.metadata("trades")["conversions"]


def test_parsers_name_their_conversions():
    """Yahoo pence -> pounds, Tushare lots -> shares and thousands of yuan -> yuan, OKX contracts ->
    coin: each parser notes what it did to the numbers on the running fetch."""
    from marketdata_assets.datasets.wire import FetchNotes, noting
    from marketdata_assets.sources.okx.rest import parse_history_trades
    from marketdata_assets.sources.tushare import parse_daily
    from marketdata_assets.sources.yahoo import parse_chart
    from tests.support.reference import known

    with noting(FetchNotes()) as notes:
        parse_chart(dumps(yahoo()), "VOD.L")
        parse_daily(dumps(stk(daily_row(), fields=DAILY_FIELDS)), instrument="600000.SH")
        parse_history_trades(
            okx([okx_trade(inst="BTC-USDT-SWAP")]), "BTC-USDT-SWAP", reference=known("OKX", "BTC-USDT-SWAP")
        )
        parse_history_trades(okx([okx_trade()]), "BTC-USDT")
    assert notes.conversions == {
        "VOD.L": {"prices GBp -> GBP (/100)": None},
        "600000.SH": {"volume lots -> shares (x100)": None, "amount thousand CNY -> CNY (x1000)": None},
        "BTC-USDT-SWAP": {"size contracts -> base (x ctVal x ctMult 0.01)": None},
    }
