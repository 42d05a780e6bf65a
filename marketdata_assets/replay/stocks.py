"""A local replay of Tushare Pro and Yahoo Finance chart v8 on one port: real formats, quirks, faults.

Answers like the vendors:

Tushare Pro — `POST /dataapi/{api_name}` (current SDK) and `POST /` (legacy SDK, `api_name` in the
body), JSON `{api_name, token, params, fields}` → `{request_id, code, msg, data:{fields, items,
has_more, count}}`, errors with HTTP 200 and a non-zero `code`:

- `stk_mins` (freq "1min", ts_code, start_date/end_date "YYYY-MM-DD HH:MM:SS" inclusive): rows
  NEWEST first, at most `stk_mins_row_limit` (8000) rows (the newest ones; `has_more` stays false
  unless `has_more` is configured: clients must count rows), trade_time in China time without a
  zone, END-labelled: 09:30 (the opening call auction, or folded into 09:31 with
  `tushare_auction_bar=False`: 240 bars), 09:31–11:30, 13:01–15:00 = 241 bars, 14:58 and 14:59 with
  zero volume (the closing call auction matches at 15:00); `vol` in shares, `amount` in yuan.
- `daily` (ts_code, possibly comma-separated; trade_date or start_date/end_date "YYYYMMDD"):
  newest first, `vol` in lots (手), `amount` in thousands of yuan, at most `daily_row_limit` rows.
  Its values are the day's minute bars aggregated (so they agree with `stk_mins`).
- `fields` (comma-separated) selects and orders the columns, as the real API does.
- Tokens: any non-empty token, or only `tushare_tokens` when set; others get 40101 "您的token不对，
  请确认。". Limits per (token, api_name): `tushare_minute_limit` calls per `limit_window_s`
  window aligned on the wall clock → 40203 "抱歉，您每分钟最多访问该接口N次，权限的具体详情访问：…";
  `tushare_hour_limit` / `tushare_day_limit` calls since start (or the last counter reset) → the
  "每小时" / "每天" variants. Refused calls do not count.

Yahoo chart v8 — `GET /v8/finance/chart/{symbol}?interval=1m&period1=&period2=` (or `range=1d|5d|7d`):

- `chart.result[0]` = `meta` (currency as Yahoo writes it: "GBp" pence for `.L`, "ZAc" for `.JO`,
  "ILA" for `.TA`; exchangeName, exchangeTimezoneName, gmtoffset, tradingPeriods, currentTradingPeriod;
  `range` only when `range=` was asked), `timestamp[]` in epoch SECONDS (bar open, regular session
  only), `indicators.quote[0].{open,high,low,close,volume}` with float32 noise in prices
  (101.2 → 101.19999694824219), whole null minutes and partially null rows. No bars in the window
  → no `timestamp` key and `quote:[{}]`.
- Windows of more than 8 days → 422 "Only 8 days worth of 1m granularity data…"; starting before
  `yahoo_days_back` (30) days → 422 "…within the last 30 days"; period1 > period2 → 400
  "Bad Request"; another interval → 400.
- Errors as `{"chart":{"result":null,"error":{code, description}}}`.

Data are deterministic per (seed, symbol, day): weekdays are trading days (minus `holidays`),
prices are random walks around a slow per-symbol reference. The ground truth is available in
process (`ashare_minutes`, `ashare_daily`, `yahoo_minutes`) and at `GET /_replay/truth`.

Faults (`Fault`, targeted at symbols and/or an API, every Nth matching request, at most N times),
set by config, `server.add_fault(...)` or `POST /_replay/faults`: `latency`, `http_error` (5xx),
`malformed_json` (a 200 with a cut body), `missing_field`, `non_numeric`, `tushare_error` (any
code/msg), `tushare_permission` (40203 "抱歉，您没有访问该接口的权限…"), `bad_token` (40101),
`too_many_requests` (Yahoo 429 with a PLAIN TEXT body "Too Many Requests" / "Edge: Too Many
Requests"), `not_found` (Yahoo 404 "No data found, symbol may be delisted"), `bad_request` (Yahoo 400).

Control endpoints (no auth): `GET /_replay/state`, `POST /_replay/faults` (`{"add": [fault...],
"clear": true, "config": {field: value}, "reset_counters": true}`), `GET /_replay/truth?
provider=tushare|tushare_daily|yahoo&symbol=&day=YYYY-MM-DD`, `GET /_replay/requests`.

In-process: `with StocksReplayServer(StocksReplayConfig(...)) as server: server.base_url`.
CLI: `python -m marketdata_assets.replay.stocks --port 8766 --seed 7` (see `--help`).

Over 500 lines: one replay server for Tushare and Yahoo (they share the fault list, the
deterministic market and the calendar); splitting it per vendor is a listed follow-up.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import random
import re
import struct
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit
from zoneinfo import ZoneInfo

from marketdata_assets.replay import (
    BackgroundServer,
    FaultList,
    Reply,
    cli_parser,
    config_from_cli,
    json_reply,
    serve_until_terminated,
)

UTC = timezone.utc
CHINA = ZoneInfo("Asia/Shanghai")
TUSHARE_DOC = "https://tushare.pro/document/1?doc_id=108"
STK_MINS_FIELDS = ["ts_code", "trade_time", "open", "close", "high", "low", "vol", "amount"]
DAILY_FIELDS = ["ts_code", "trade_date", "open", "high", "low", "close", "pre_close", "change", "pct_chg",
                "vol", "amount"]
TS_CODE = re.compile(r"^\d{6}\.(SH|SZ|BJ)$")


def tushare_minute_limit_message(limit: int) -> str:
    return f"抱歉，您每分钟最多访问该接口{limit}次，权限的具体详情访问：{TUSHARE_DOC}。"


def tushare_hour_limit_message(limit: int) -> str:
    return f"抱歉，您每小时最多访问该接口{limit}次，权限的具体详情访问：{TUSHARE_DOC}。"


def tushare_day_limit_message(limit: int) -> str:
    return f"抱歉，您每天最多访问该接口{limit}次，权限的具体详情访问：{TUSHARE_DOC}。"


TUSHARE_PERMISSION_MESSAGE = f"抱歉，您没有访问该接口的权限，权限的具体详情访问：{TUSHARE_DOC}。"
TUSHARE_BAD_TOKEN_MESSAGE = "您的token不对，请确认。"
YAHOO_DELISTED = "No data found, symbol may be delisted"


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------

@dataclass
class Fault:
    """One injected fault. Matches requests by provider ("tushare" / "yahoo", None = both), API
    (Tushare api_name or "chart"), and symbols (None = all); fires on every `every`-th matching
    request, at most `times` times (None = unlimited)."""

    kind: str
    symbols: list[str] | None = None
    provider: str | None = None
    api: str | None = None
    every: int = 1
    times: int | None = None
    status: int = 503  # http_error
    seconds: float = 0.0  # latency
    field: str = "close"  # missing_field / non_numeric (Yahoo: a quote field, or "meta.<key>")
    value: Any = "abc"  # non_numeric
    code: int = 40203  # tushare_error
    message: str = ""  # tushare_error / bad_request
    body: str = "Too Many Requests"  # too_many_requests ("Edge: Too Many Requests" is the other one)
    seen: int = 0
    fired: int = 0

    KINDS = ("latency", "http_error", "malformed_json", "missing_field", "non_numeric", "tushare_error",
             "tushare_permission", "bad_token", "too_many_requests", "not_found", "bad_request", "null_data")

    def __post_init__(self):
        if self.kind not in self.KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; one of {', '.join(self.KINDS)}")
        if self.symbols is not None:
            self.symbols = [s.upper() for s in self.symbols]

    def matches(self, provider: str, api: str, symbols: Iterable[str]) -> bool:
        if self.provider and self.provider != provider:
            return False
        if self.api and self.api != api:
            return False
        return self.symbols is None or any(s.upper() in self.symbols for s in symbols)

    def public(self) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items()}


@dataclass
class StocksReplayConfig:
    seed: int = 7
    latency_s: float = 0.0
    # Tushare
    tushare_tokens: list[str] | None = None  # None: any non-empty token is accepted
    tushare_minute_limit: int | None = None
    tushare_hour_limit: int | None = None
    tushare_day_limit: int | None = None
    limit_window_s: float = 60.0
    stk_mins_row_limit: int = 8000
    daily_row_limit: int = 6000
    has_more: bool = False  # set data.has_more on truncated answers (the real API does not, reliably)
    tushare_auction_bar: bool = True  # 09:30 auction bar (241 bars) or folded into 09:31 (240)
    # Yahoo
    yahoo_null_minute_rate: float = 0.02
    yahoo_partial_rate: float = 0.01
    yahoo_max_window_days: float = 8.0
    yahoo_days_back: float | None = 30.0
    now: float | None = None  # epoch seconds of "now" for Yahoo's horizon and range=; None = the clock
    holidays: list[str] = field(default_factory=list)  # YYYY-MM-DD without sessions anywhere
    faults: list[Fault] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: dict) -> StocksReplayConfig:
        data = dict(data)
        faults = [f if isinstance(f, Fault) else Fault(**f) for f in data.pop("faults", [])]
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown config fields: {sorted(unknown)}")
        return cls(**data, faults=faults)


# --------------------------------------------------------------------------------------------
# Deterministic market data
# --------------------------------------------------------------------------------------------

def _rng(*parts: Any) -> random.Random:
    return random.Random("|".join(str(p) for p in parts))  # str seeds hash with SHA-512: stable


def is_session_day(day: date, holidays: tuple[str, ...] = ()) -> bool:
    return day.weekday() < 5 and day.isoformat() not in holidays


def reference_price(seed: int, symbol: str, day: date, lo: float, hi: float) -> float:
    """A slowly moving per-symbol level, a pure function of the day (no chain through history)."""
    base = lo * (hi / lo) ** _rng(seed, symbol, "base").random()
    phase = _rng(seed, symbol, "phase").random() * 2 * math.pi
    x = day.toordinal()
    return base * math.exp(0.12 * math.sin(x / 29.0 + phase) + 0.04 * math.sin(x / 6.3 + 2 * phase)
                           + 0.01 * _rng(seed, symbol, day, "ref").gauss(0, 1))


def _r2(x: float) -> float:
    return round(x + 0.0, 2)


def _cn_labels(auction_bar: bool) -> list[str]:
    labels = ["09:30"] if auction_bar else []
    for start, end in (((9, 31), (11, 30)), ((13, 1), (15, 0))):
        t = datetime(2000, 1, 1, *start)
        stop = datetime(2000, 1, 1, *end)
        while t <= stop:
            labels.append(t.strftime("%H:%M"))
            t += timedelta(minutes=1)
    return labels


@lru_cache(maxsize=4096)
def ashare_minutes(seed: int, ts_code: str, day: date, auction_bar: bool = True,
                   holidays: tuple[str, ...] = ()) -> tuple[tuple, ...]:
    """The day's `stk_mins` rows, OLDEST first, in the API's field order (STK_MINS_FIELDS):
    (ts_code, "YYYY-MM-DD HH:MM:SS", open, close, high, low, vol shares, amount yuan)."""
    if not is_session_day(day, holidays):
        return ()
    rng = _rng(seed, "cn", ts_code, day)
    ref = reference_price(seed, ts_code, day, 3.0, 180.0)
    auction = max(0.05, _r2(ref * (1 + rng.gauss(0, 0.006))))
    auction_vol = float(100 * max(1, int(rng.lognormvariate(7.2, 0.6))))
    rows: list[tuple] = []
    last = auction
    stamp = day.isoformat()

    def bar(label: str, o: float, c: float, h: float, lo: float, vol: float) -> None:
        vwap = (o + h + lo + c) / 4
        amount = round(vol * vwap, 2) if vol else 0.0
        rows.append((ts_code, f"{stamp} {label}:00", o, c, h, lo, float(vol), amount))

    if auction_bar:
        bar("09:30", auction, auction, auction, auction, auction_vol)
    for label in _cn_labels(False):
        if label in ("14:58", "14:59"):  # the closing call auction is collecting orders: no trades
            bar(label, last, last, last, last, 0.0)
            continue
        if label == "15:00":
            close = max(0.01, _r2(last * (1 + rng.gauss(0, 0.0008))))
            vol = float(100 * max(1, int(rng.lognormvariate(6.8, 0.5))))
            bar(label, close, close, close, close, vol)
            last = close
            continue
        o = last
        c = max(0.01, _r2(o * (1 + rng.gauss(0, 0.0012))))
        h = _r2(max(o, c) * (1 + abs(rng.gauss(0, 0.0006))))
        lo = max(0.01, _r2(min(o, c) * (1 - abs(rng.gauss(0, 0.0006)))))
        vol = 100 * max(0, int(rng.lognormvariate(5.0, 0.9)))
        if rng.random() < 0.05:
            vol += rng.randint(1, 99)  # odd lots exist on the sell side
        if label == "09:31" and not auction_bar:
            vol += auction_vol
        bar(label, o, c, h, lo, float(vol))
        last = c
    return tuple(rows)


def _previous_session(day: date, holidays: tuple[str, ...]) -> date:
    d = day - timedelta(days=1)
    while not is_session_day(d, holidays):
        d -= timedelta(days=1)
    return d


@lru_cache(maxsize=4096)
def ashare_daily(seed: int, ts_code: str, day: date, auction_bar: bool = True,
                 holidays: tuple[str, ...] = ()) -> tuple | None:
    """The day's `daily` row in DAILY_FIELDS order (vol in lots, amount in thousands of yuan),
    aggregated from the minute bars; None on a non-session day."""
    bars = ashare_minutes(seed, ts_code, day, auction_bar, holidays)
    if not bars:
        return None
    prev = ashare_minutes(seed, ts_code, _previous_session(day, holidays), auction_bar, holidays)
    o, c = bars[0][2], bars[-1][3]
    h, lo = max(b[4] for b in bars), min(b[5] for b in bars)
    vol = sum(b[6] for b in bars)
    amount = sum(b[7] for b in bars)
    pre_close = prev[-1][3]
    change = _r2(c - pre_close)
    return (ts_code, day.strftime("%Y%m%d"), o, h, lo, c, pre_close, change,
            round(change / pre_close * 100, 4), round(vol / 100, 2), round(amount / 1000, 3))


@dataclass(frozen=True)
class Exchange:
    code: str  # meta.exchangeName
    full_name: str  # meta.fullExchangeName
    currency: str  # as Yahoo writes it
    timezone: str  # meta.exchangeTimezoneName
    open: tuple[int, int]
    close: tuple[int, int]
    price_lo: float
    price_hi: float


YAHOO_EXCHANGES: dict[str, Exchange] = {
    "": Exchange("NMS", "NasdaqGS", "USD", "America/New_York", (9, 30), (16, 0), 20, 400),
    "L": Exchange("LSE", "LSE", "GBp", "Europe/London", (8, 0), (16, 30), 50, 3000),
    "JO": Exchange("JNB", "Johannesburg", "ZAc", "Africa/Johannesburg", (9, 0), (17, 0), 1000, 50000),
    "TA": Exchange("TLV", "Tel Aviv", "ILA", "Asia/Jerusalem", (9, 59), (17, 14), 500, 20000),
    "DE": Exchange("GER", "XETRA", "EUR", "Europe/Berlin", (9, 0), (17, 30), 10, 500),
}


def yahoo_exchange(symbol: str) -> Exchange:
    suffix = symbol.rsplit(".", 1)[1].upper() if "." in symbol else ""
    return YAHOO_EXCHANGES.get(suffix, YAHOO_EXCHANGES[""])


def float32(x: float | None) -> float | None:
    """What Yahoo sends: the value stored as float32 and printed as float64 (101.2 → 101.19999694824219)."""
    return None if x is None else struct.unpack("<f", struct.pack("<f", x))[0]


@lru_cache(maxsize=4096)
def yahoo_minutes(seed: int, symbol: str, day: date, null_rate: float = 0.02, partial_rate: float = 0.01,
                  holidays: tuple[str, ...] = ()) -> tuple[tuple, ...]:
    """The day's regular-session 1-minute rows, oldest first: (epoch_s, open, high, low, close,
    volume, kind, missing_field) with CLEAN prices in the quote currency (pence for GBp);
    kind "ok" | "empty" (every value null) | "partial" (`missing_field` null)."""
    if not is_session_day(day, holidays):
        return ()
    ex = yahoo_exchange(symbol)
    tz = ZoneInfo(ex.timezone)
    rng = _rng(seed, "yahoo", symbol, day)
    t = datetime(day.year, day.month, day.day, *ex.open, tzinfo=tz)
    end = datetime(day.year, day.month, day.day, *ex.close, tzinfo=tz)
    last = _r2(reference_price(seed, symbol, day, ex.price_lo, ex.price_hi))
    rows = []
    first = True
    while t < end:
        o = last
        c = max(0.01, _r2(o * (1 + rng.gauss(0, 0.0009))))
        h = _r2(max(o, c) * (1 + abs(rng.gauss(0, 0.0004))))
        lo = max(0.01, _r2(min(o, c) * (1 - abs(rng.gauss(0, 0.0004)))))
        vol = 0 if first and rng.random() < 0.5 else int(rng.lognormvariate(8.0, 1.0))
        draw = rng.random()
        missing = rng.choice(["open", "high", "low", "close", "volume"])
        kind = "empty" if draw < null_rate else "partial" if draw < null_rate + partial_rate else "ok"
        rows.append((int(t.timestamp()), o, h, lo, c, vol, kind, missing if kind == "partial" else None))
        last = c
        first = False
        t = (t.astimezone(UTC) + timedelta(minutes=1)).astimezone(tz)
    return tuple(rows)


# --------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------

def _vendor_json(status: int, payload: Any) -> Reply:
    """JSON as both vendors send it: UTF-8 (Tushare's messages are Chinese), charset in the type."""
    return json_reply(status, payload, content_type="application/json;charset=utf-8", ensure_ascii=False)


def _parse_cn_time(text: str, end: bool) -> datetime | None:
    text = (text or "").strip()
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y%m%d %H:%M:%S", "%Y%m%d%H%M%S"):
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            pass
    for fmt in ("%Y-%m-%d", "%Y%m%d"):
        try:
            d = datetime.strptime(text, fmt)
            return d + timedelta(days=1, seconds=-1) if end else d
        except ValueError:
            pass
    return None


class StocksReplayServer(FaultList, BackgroundServer):
    """The replay server; a context manager serving in a background thread (`base_url`)."""

    thread_name = "stocks-replay"

    def __init__(self, config: StocksReplayConfig | None = None, *, host: str = "127.0.0.1", port: int = 0):
        self.config = config or StocksReplayConfig()
        self.lock = threading.RLock()
        self.minute_counts: dict[tuple[str, str, int], int] = {}
        self.total_counts: dict[tuple[str, str], int] = {}
        self.log: deque[dict] = deque(maxlen=100_000)
        self._local = threading.local()  # the request path being handled, for the log
        # verbose lines give the path only: Tushare tokens travel in bodies and are never printed
        self.listen(host, port, self.handle, name="stocks-replay", methods=("GET", "POST", "HEAD"), log_query=False)

    # ---- ground truth and control ----------------------------------------------------------

    @property
    def _holidays(self) -> tuple[str, ...]:
        return tuple(sorted(self.config.holidays))

    def tushare_minutes(self, ts_code: str, day: date) -> list[tuple]:
        """The day's stk_mins rows, oldest first (STK_MINS_FIELDS order)."""
        return list(ashare_minutes(self.config.seed, ts_code.upper(), day, self.config.tushare_auction_bar,
                                   self._holidays))

    def tushare_daily(self, ts_code: str, day: date) -> tuple | None:
        return ashare_daily(self.config.seed, ts_code.upper(), day, self.config.tushare_auction_bar, self._holidays)

    def yahoo_rows(self, symbol: str, day: date) -> list[tuple]:
        """The day's rows in the exchange's local calendar, oldest first (see `yahoo_minutes`)."""
        return list(yahoo_minutes(self.config.seed, symbol, day, self.config.yahoo_null_minute_rate,
                                  self.config.yahoo_partial_rate, self._holidays))

    def add_fault(self, kind: str, **kwargs) -> Fault:
        return self.keep_fault(Fault(kind, **kwargs))

    def configure(self, **changes) -> StocksReplayConfig:
        with self.lock:
            for key, value in changes.items():
                if key == "faults" or not hasattr(self.config, key):
                    raise TypeError(f"unknown config field {key!r}")
                setattr(self.config, key, value)
            return self.config

    def reset_counters(self) -> None:
        with self.lock:
            self.minute_counts.clear()
            self.total_counts.clear()
            self.log.clear()
            for fault in self.config.faults:
                fault.seen = fault.fired = 0

    def requests_for(self, provider: str | None = None, symbol: str | None = None) -> list[dict]:
        with self.lock:
            return [e for e in self.log if (provider is None or e["provider"] == provider)
                    and (symbol is None or symbol.upper() in e["symbols"])]

    def state(self) -> dict:
        with self.lock:
            config = {k: v for k, v in dataclasses.asdict(self.config).items() if k not in ("faults", "tushare_tokens")}
            return {"config": config, "faults": [f.public() for f in self.config.faults],
                    "requests": len(self.log), "tushare_calls": {f"{k[1]}": v for k, v in self.total_counts.items()}}

    def now(self) -> float:
        return self.config.now if self.config.now is not None else time.time()

    # ---- faults --------------------------------------------------------------------------------

    def _faults_for(self, provider: str, api: str, symbols: list[str]) -> tuple[float, Fault | None]:
        """(extra latency, the first firing non-latency fault) for a request; counts matches."""
        latency, chosen = 0.0, None
        with self.lock:
            for fault in self.config.faults:
                if not fault.matches(provider, api, symbols):
                    continue
                fault.seen += 1
                if fault.seen % max(1, fault.every) != 0 or (fault.times is not None and fault.fired >= fault.times):
                    continue
                if fault.kind == "latency":
                    fault.fired += 1
                    latency += fault.seconds
                elif chosen is None:
                    fault.fired += 1
                    chosen = fault
        return latency, chosen

    def _record(self, provider: str, api: str, symbols: list[str], status: int, code: Any = None,
                fault: str | None = None) -> None:
        with self.lock:
            self.log.append({"t": time.monotonic(), "wall": time.time(), "provider": provider, "api": api,
                             "path": getattr(self._local, "path", None),
                             "symbols": [s.upper() for s in symbols], "status": status, "code": code, "fault": fault})

    # ---- dispatch --------------------------------------------------------------------------

    def handle(self, method: str, target: str, headers, body: bytes) -> Reply:
        parts = urlsplit(target)
        path = parts.path
        self._local.path = path
        if path.startswith("/_replay/"):
            return self._control(method, path.rstrip("/"), parts.query, body)
        if path.startswith("/v8/finance/chart/") and method in ("GET", "HEAD"):
            return self._yahoo(unquote(path[len("/v8/finance/chart/"):]), parts.query)
        if method == "POST" and (path.rstrip("/") in ("", "/dataapi") or path.startswith("/dataapi/")):
            api = path[len("/dataapi/"):].strip("/") if path.startswith("/dataapi/") else None
            return self._tushare(api, body)
        return Reply(404, b'{"detail":"Not Found"}', {"Content-Type": "application/json"})

    # ---- Tushare -------------------------------------------------------------------------------

    def _ts_reply(self, code: int, msg: str, data: Any = None) -> Reply:
        payload = {"request_id": uuid.UUID(int=random.getrandbits(128)).hex, "code": code, "msg": msg, "data": data}
        return _vendor_json(200, payload)

    def _tushare(self, path_api: str | None, body: bytes) -> Reply:
        try:
            request = json.loads(body or b"{}")
            if not isinstance(request, dict):
                raise ValueError("not an object")  # noqa: TRY004 - answered like any bad body
        except ValueError:
            self._record("tushare", path_api or "?", [], 200, -2001)
            return self._ts_reply(-2001, "请求参数格式错误，请使用JSON格式")
        api = path_api or str(request.get("api_name") or "")
        token = str(request.get("token") or "")
        params = request.get("params") or {}
        if not isinstance(params, dict):
            params = {}
        symbols = [s.strip().upper() for s in str(params.get("ts_code") or "").split(",") if s.strip()]
        config = self.config
        latency, fault = self._faults_for("tushare", api, symbols)
        if config.latency_s + latency:
            time.sleep(config.latency_s + latency)
        if not token or (config.tushare_tokens is not None and token not in config.tushare_tokens) or (
                fault and fault.kind == "bad_token"):
            self._record("tushare", api, symbols, 200, 40101, fault and fault.kind)
            return self._ts_reply(40101, TUSHARE_BAD_TOKEN_MESSAGE)
        if fault and fault.kind == "http_error":
            self._record("tushare", api, symbols, fault.status, None, fault.kind)
            return Reply(fault.status, f"<html><body><h1>{fault.status} Server Error</h1></body></html>".encode(),
                         {"Content-Type": "text/html"})
        if fault and fault.kind == "tushare_permission":
            self._record("tushare", api, symbols, 200, 40203, fault.kind)
            return self._ts_reply(40203, TUSHARE_PERMISSION_MESSAGE)
        if fault and fault.kind == "tushare_error":
            self._record("tushare", api, symbols, 200, fault.code, fault.kind)
            return self._ts_reply(fault.code, fault.message or TUSHARE_PERMISSION_MESSAGE)
        if api not in ("stk_mins", "daily"):
            self._record("tushare", api, symbols, 200, -2001)
            return self._ts_reply(-2001, f"接口名称 {api!r} 不存在，请确认。")
        refusal = self._count_call(token, api)
        if refusal:
            self._record("tushare", api, symbols, 200, 40203, "rate_limit")
            return self._ts_reply(40203, refusal)
        result = self._stk_mins(params) if api == "stk_mins" else self._daily(params)
        if isinstance(result, str):
            self._record("tushare", api, symbols, 200, -2001)
            return self._ts_reply(-2001, result)
        fields, items, has_more = result
        wanted = request.get("fields") or ""
        if isinstance(wanted, str):
            wanted = [f.strip() for f in wanted.split(",") if f.strip()]
        if wanted:
            keep = [f for f in wanted if f in fields]
            index = [fields.index(f) for f in keep]
            fields, items = keep, [[row[i] for i in index] for row in items]
        if fault and fault.kind == "missing_field" and fault.field in fields:
            i = fields.index(fault.field)
            fields = fields[:i] + fields[i + 1:]
            items = [row[:i] + row[i + 1:] for row in items]
        if fault and fault.kind == "non_numeric" and fault.field in fields and items:
            items[len(items) // 2][fields.index(fault.field)] = fault.value
        data = {"fields": fields, "items": items, "has_more": has_more, "count": -1}
        reply = self._ts_reply(0, "", None if fault and fault.kind == "null_data" else data)
        if fault and fault.kind == "malformed_json":
            reply.body = reply.body[:max(1, len(reply.body) // 2)]
        self._record("tushare", api, symbols, 200, 0, fault and fault.kind)
        return reply

    def _count_call(self, token: str, api: str) -> str | None:
        """Count an accepted call against the limits; the refusal message if a limit is reached."""
        config = self.config
        with self.lock:
            total_key = (token, api)
            total = self.total_counts.get(total_key, 0)
            if config.tushare_day_limit is not None and total >= config.tushare_day_limit:
                return tushare_day_limit_message(config.tushare_day_limit)
            if config.tushare_hour_limit is not None and total >= config.tushare_hour_limit:
                return tushare_hour_limit_message(config.tushare_hour_limit)
            window = int(time.time() // config.limit_window_s)
            minute_key = (token, api, window)
            in_window = self.minute_counts.get(minute_key, 0)
            if config.tushare_minute_limit is not None and in_window >= config.tushare_minute_limit:
                return tushare_minute_limit_message(config.tushare_minute_limit)
            self.minute_counts = {k: v for k, v in self.minute_counts.items() if k[2] >= window - 1}
            self.minute_counts[minute_key] = in_window + 1
            self.total_counts[total_key] = total + 1
        return None

    def _stk_mins(self, params: dict) -> tuple[list[str], list[list], bool] | str:
        code = str(params.get("ts_code") or "").strip().upper()
        if not TS_CODE.match(code):
            return "必填参数ts_code格式错误或缺失（单个代码，如 600000.SH）"
        if str(params.get("freq") or "1min") != "1min":
            return f"freq {params.get('freq')!r} 不受本回放支持（仅 1min）"
        end = _parse_cn_time(str(params.get("end_date") or ""), end=True) or datetime.now(CHINA).replace(tzinfo=None)
        start = _parse_cn_time(str(params.get("start_date") or ""), end=False) or (end - timedelta(days=30))
        rows: list[list] = []
        day = end.date()
        while day >= start.date():
            for row in reversed(self.tushare_minutes(code, day)):
                when = datetime.strptime(row[1], "%Y-%m-%d %H:%M:%S")
                if start <= when <= end:
                    rows.append(list(row))
            if len(rows) > self.config.stk_mins_row_limit:
                break
            day -= timedelta(days=1)
        truncated = len(rows) > self.config.stk_mins_row_limit
        rows = rows[:self.config.stk_mins_row_limit]
        return list(STK_MINS_FIELDS), rows, truncated and self.config.has_more

    def _daily(self, params: dict) -> tuple[list[str], list[list], bool] | str:
        codes = [c.strip().upper() for c in str(params.get("ts_code") or "").split(",") if c.strip()]
        if not codes or not all(TS_CODE.match(c) for c in codes):
            return "必填参数ts_code格式错误或缺失（如 600000.SH 或 600000.SH,000001.SZ）"
        try:
            if params.get("trade_date"):
                start = end = datetime.strptime(str(params["trade_date"]), "%Y%m%d").date()
            else:
                end = (datetime.strptime(str(params["end_date"]), "%Y%m%d").date() if params.get("end_date")
                       else datetime.now(CHINA).date())
                start = (datetime.strptime(str(params["start_date"]), "%Y%m%d").date() if params.get("start_date")
                         else end - timedelta(days=365))
        except ValueError:
            return "日期参数格式错误，请使用 YYYYMMDD"
        rows: list[list] = []
        day = end
        while day >= start and len(rows) <= self.config.daily_row_limit:
            for code in codes:
                row = self.tushare_daily(code, day)
                if row:
                    rows.append(list(row))
            day -= timedelta(days=1)
        truncated = len(rows) > self.config.daily_row_limit
        return list(DAILY_FIELDS), rows[:self.config.daily_row_limit], truncated and self.config.has_more

    # ---- Yahoo ---------------------------------------------------------------------------------

    def _yahoo_error(self, status: int, code: str, description: str) -> Reply:
        return _vendor_json(status, {"chart": {"result": None, "error": {"code": code, "description": description}}})

    def _yahoo(self, symbol: str, query: str) -> Reply:
        args = dict(parse_qsl(query, keep_blank_values=True))
        symbols = [symbol.upper()]
        config = self.config
        latency, fault = self._faults_for("yahoo", "chart", symbols)
        if config.latency_s + latency:
            time.sleep(config.latency_s + latency)
        kind = fault.kind if fault else None
        if kind == "too_many_requests":
            self._record("yahoo", "chart", symbols, 429, None, kind)
            return Reply(429, fault.body.encode(), {"Content-Type": "text/plain;charset=utf-8"})
        if kind == "http_error":
            self._record("yahoo", "chart", symbols, fault.status, None, kind)
            return Reply(fault.status, b"<html><body><b>Http/1.1 Service Unavailable</b></body></html>",
                         {"Content-Type": "text/html"})
        if kind == "not_found":
            self._record("yahoo", "chart", symbols, 404, None, kind)
            return self._yahoo_error(404, "Not Found", YAHOO_DELISTED)
        if kind == "bad_request":
            self._record("yahoo", "chart", symbols, 400, None, kind)
            return self._yahoo_error(400, "Bad Request", fault.message or "Invalid input - bad request")
        reply = self._chart(symbol, args, fault)
        self._record("yahoo", "chart", symbols, reply.status, None, kind)
        return reply

    def _chart(self, symbol: str, args: dict, fault: Fault | None) -> Reply:
        config = self.config
        interval = args.get("interval", "1d")
        if interval != "1m":
            return self._yahoo_error(400, "Bad Request", f"Invalid input - interval={interval} is not supported "
                                                          "by this replay. Valid intervals: [1m]")
        now = int(self.now())
        requested_range = args.get("range")
        try:
            if "period1" in args or "period2" in args:
                period1 = int(args.get("period1") or 0)
                period2 = int(args.get("period2") or now)
                requested_range = None
            else:
                requested_range = requested_range or "1d"
                days = {"1d": 1, "5d": 5, "7d": 7}.get(requested_range)
                if days is None:
                    return self._yahoo_error(400, "Bad Request", f"Invalid input - range={requested_range} is not "
                                                                  "supported for 1m. Valid ranges: [1d, 5d, 7d]")
                period2, period1 = now, now - days * 86400
        except ValueError:
            return self._yahoo_error(400, "Bad Request", "Invalid input - period1 and period2 must be integers")
        if period1 > period2:
            return self._yahoo_error(400, "Bad Request", f"Invalid input - start date cannot be after end date. "
                                                          f"startDate = {period1}, endDate = {period2}")
        if period2 - period1 > config.yahoo_max_window_days * 86400:
            return self._yahoo_error(422, "Unprocessable Entity",
                                     f"1m data not available for startTime={period1} and endTime={period2}. Only "
                                     f"{config.yahoo_max_window_days:g} days worth of 1m granularity data are "
                                     "allowed to be fetched per request.")
        if config.yahoo_days_back is not None and period1 < now - config.yahoo_days_back * 86400:
            return self._yahoo_error(422, "Unprocessable Entity",
                                     f"1m data not available for startTime={period1} and endTime={period2}. The "
                                     f"requested range must be within the last {config.yahoo_days_back:g} days.")
        period2 = min(period2, now)
        ex = yahoo_exchange(symbol)
        tz = ZoneInfo(ex.timezone)
        rows, periods = [], []
        day = datetime.fromtimestamp(period1, tz).date()
        last_day = datetime.fromtimestamp(max(period1, period2 - 1), tz).date()
        while day <= last_day:
            day_rows = self.yahoo_rows(symbol, day)
            if day_rows:
                opens = datetime(day.year, day.month, day.day, *ex.open, tzinfo=tz)
                closes = datetime(day.year, day.month, day.day, *ex.close, tzinfo=tz)
                periods.append([{"timezone": opens.tzname(), "start": int(opens.timestamp()),
                                 "end": int(closes.timestamp()), "gmtoffset": int(opens.utcoffset().total_seconds())}])
            rows.extend(r for r in day_rows if period1 <= r[0] < period2)
            day += timedelta(days=1)
        payload = self._chart_payload(symbol, ex, tz, rows, periods, requested_range, now)
        if fault and fault.kind in ("missing_field", "non_numeric"):
            result = payload["chart"]["result"][0]
            quote = result["indicators"]["quote"][0]
            if fault.kind == "missing_field":
                if fault.field.startswith("meta."):
                    result["meta"].pop(fault.field[5:], None)
                elif fault.field == "timestamp":
                    result.pop("timestamp", None)
                else:
                    quote.pop(fault.field, None)
            elif quote.get(fault.field):
                quote[fault.field][len(quote[fault.field]) // 2] = fault.value
        reply = _vendor_json(200, payload)
        if fault and fault.kind == "malformed_json":
            reply.body = reply.body[:max(1, len(reply.body) // 2)]
        return reply

    def _chart_payload(self, symbol: str, ex: Exchange, tz: ZoneInfo, rows: list[tuple], periods: list,
                       requested_range: str | None, now: int) -> dict:
        now_local = datetime.fromtimestamp(now, tz)
        last_close = next((float32(r[4]) for r in reversed(rows) if r[4] is not None and r[6] == "ok"), None)
        meta: dict[str, Any] = {
            "currency": ex.currency, "symbol": symbol, "exchangeName": ex.code, "fullExchangeName": ex.full_name,
            "instrumentType": "EQUITY", "firstTradeDate": 567585000, "regularMarketTime": now,
            "hasPrePostMarketData": True, "gmtoffset": int(now_local.utcoffset().total_seconds()),
            "timezone": now_local.tzname(), "exchangeTimezoneName": ex.timezone,
            "regularMarketPrice": last_close, "chartPreviousClose": float32(rows[0][1]) if rows else None,
            "scale": 3, "priceHint": 2,
            "currentTradingPeriod": {
                name: {"timezone": now_local.tzname(), "start": now - 3600, "end": now, "gmtoffset":
                       int(now_local.utcoffset().total_seconds())} for name in ("pre", "regular", "post")},
            "tradingPeriods": periods, "dataGranularity": "1m",
            "validRanges": ["1d", "5d", "1mo", "3mo", "6mo", "1y", "2y", "5y", "10y", "ytd", "max"],
        }
        if requested_range:
            meta["range"] = requested_range
        result: dict[str, Any] = {"meta": meta}
        if rows:
            quote: dict[str, list] = {"volume": [], "close": [], "open": [], "high": [], "low": []}
            for ts, o, h, lo, c, vol, kind, missing in rows:
                values = {"open": float32(o), "high": float32(h), "low": float32(lo), "close": float32(c), "volume": vol}
                if kind == "empty":
                    values = dict.fromkeys(values)
                elif kind == "partial":
                    values[missing] = None
                for key, column in quote.items():
                    column.append(values[key])
            result["timestamp"] = [r[0] for r in rows]
            result["indicators"] = {"quote": [quote]}
        else:
            result["indicators"] = {"quote": [{}]}
        return {"chart": {"result": [result], "error": None}}

    # ---- control -------------------------------------------------------------------------------

    def _control(self, method: str, path: str, query: str, body: bytes) -> Reply:
        def reply(status: int, payload: Any) -> Reply:
            return json_reply(status, payload, ensure_ascii=False)

        try:
            payload = json.loads(body or b"{}")
        except ValueError:
            return reply(400, {"detail": "JSON body expected"})
        if path == "/_replay/state":
            return reply(200, self.state())
        if path == "/_replay/requests":
            with self.lock:
                return reply(200, list(self.log))
        if path == "/_replay/faults" and method == "POST":
            try:
                if payload.get("clear"):
                    self.clear_faults()
                if payload.get("config"):
                    self.configure(**payload["config"])
                for spec in payload.get("add", []):
                    self.add_fault(**spec)
                if payload.get("reset_counters"):
                    self.reset_counters()
            except (TypeError, ValueError) as error:
                return reply(400, {"detail": str(error)})
            return reply(200, self.state())
        if path == "/_replay/truth":
            args = dict(parse_qsl(query))
            try:
                day = date.fromisoformat(args.get("day", ""))
            except ValueError:
                return reply(400, {"detail": "day=YYYY-MM-DD required"})
            symbol = args.get("symbol", "")
            provider = args.get("provider", "tushare")
            if provider == "tushare":
                return reply(200, {"fields": STK_MINS_FIELDS, "items": self.tushare_minutes(symbol, day)})
            if provider == "tushare_daily":
                row = self.tushare_daily(symbol, day)
                return reply(200, {"fields": DAILY_FIELDS, "items": [row] if row else []})
            if provider == "yahoo":
                return reply(200, {"fields": ["timestamp", "open", "high", "low", "close", "volume", "kind",
                                              "missing"], "items": self.yahoo_rows(symbol, day)})
            return reply(400, {"detail": "provider= tushare | tushare_daily | yahoo"})
        return reply(404, {"detail": "Not found."})


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------

def build_arg_parser() -> argparse.ArgumentParser:
    p = cli_parser("marketdata_assets.replay.stocks", "Replay of Tushare Pro and Yahoo Finance chart v8 (formats, "
                   "quirks, faults).", port=8766, config="StocksReplayConfig fields (faults too)")
    p.add_argument("--seed", type=int)
    p.add_argument("--latency", type=float, dest="latency_s")
    p.add_argument("--tushare-token", action="append", dest="tushare_tokens",
                   help="accepted token (repeatable); default: any non-empty token")
    p.add_argument("--tushare-minute-limit", type=int)
    p.add_argument("--tushare-hour-limit", type=int)
    p.add_argument("--tushare-day-limit", type=int)
    p.add_argument("--limit-window", type=float, dest="limit_window_s", help="seconds of the per-minute window (60)")
    p.add_argument("--stk-mins-row-limit", type=int)
    p.add_argument("--no-auction-bar", action="store_true", help="fold the 09:30 auction into 09:31 (240 bars)")
    p.add_argument("--yahoo-days-back", type=float)
    p.add_argument("--fault", action="append", default=[], help='a Fault as JSON, e.g. \'{"kind":"not_found",'
                                                                '"symbols":["DEAD.L"]}\' (repeatable)')
    p.add_argument("--verbose", action="store_true", help="print each request line (never a token) to stderr")
    return p


def config_from_args(args: argparse.Namespace) -> StocksReplayConfig:
    config = config_from_cli(args, StocksReplayConfig.from_dict, (
        "seed", "latency_s", "tushare_tokens", "tushare_minute_limit", "tushare_hour_limit", "tushare_day_limit",
        "limit_window_s", "stk_mins_row_limit", "yahoo_days_back"))
    if args.no_auction_bar:
        config.tushare_auction_bar = False
    config.faults.extend(Fault(**json.loads(spec)) for spec in args.fault)
    return config


def main(argv: Iterable[str] | None = None) -> int:
    args = build_arg_parser().parse_args(list(argv) if argv is not None else None)
    server = StocksReplayServer(config_from_args(args), host=args.host, port=args.port)
    server.verbose = args.verbose
    print(f"stocks replay (Tushare Pro + Yahoo chart v8) on {server.base_url}: seed {server.config.seed}, "
          f"{len(server.config.faults)} faults", flush=True)

    return serve_until_terminated(server.httpd)


if __name__ == "__main__":
    raise SystemExit(main())
