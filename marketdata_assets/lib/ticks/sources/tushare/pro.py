"""Tushare Pro client: A-share 1-minute bars (`stk_mins`) and daily bars (`daily`) as normalized frames.

The vendor's formats and quirks (shared/docs/vendor-formats.md) handled here:

- Every call is `POST` JSON `{api_name, token, params, fields}`. The current SDK posts to
  `/dataapi/{api_name}` (`path_style="dataapi"`, the default); the legacy SDK posts to the root
  (`path_style="root"`). The answer is `{request_id, code, msg, data:{fields, items, has_more,
  count}}`: column names once, rows as arrays.
- Errors come with HTTP 200 and a non-zero `code`; the message decides what they mean
  (`classify_error`):
  * 40203 "抱歉，您每分钟最多访问该接口200次…" (per minute): wait until the next window of the
    limit and retry (no Retry-After exists). The window is `limit_window_s` (60 s; tests shorten
    it) aligned on the wall clock: all tasks of the client pause until then. Note the message
    also contains "权限" (in "权限的具体详情访问"), so limits are recognised before permissions.
  * 40203 "…每小时最多访问…" / "…每天最多访问…" (per hour / per day): `TushareLimitReached`
    (a shared `SourceBanned`, `until` = the next hour / China midnight): that API is stopped for
    this client, no retry; later calls of it fail at once without a request.
  * 40203 "抱歉，您没有访问该接口的权限…" / "…没有权限访问该接口…" (or any other 40203 text), and
    code 2002: `TusharePermissionError` (a `SourcePermissionError`), that API stopped, no retry.
  * 40101 (bad token): `TushareTokenError` (a `SourcePermissionError`): the whole client stops.
  * any other non-zero code (bad parameters…): `SourceRequestError` for that instrument.
  * HTTP 429 / 5xx / timeouts: the shared policy retries them and raises `lib.http.ApiError` when
    retries run out (the shared convention); HTTP 401/403 → `SourcePermissionError`; another
    HTTP status → `SourceRequestError`.
- `daily`: trade_date "YYYYMMDD", `vol` in lots (手, ×100 → shares), `amount` in thousands of yuan
  (×1000 → yuan). Rows newest first.
- `stk_mins` (freq "1min"): trade_time "YYYY-MM-DD HH:MM:SS" in China time WITHOUT zone (converted
  Asia/Shanghai → UTC; China has had no DST since 1991), `vol` in shares, `amount` in yuan, rows
  NEWEST first, at most 8000 rows per call, 241 bars a day: 09:30 (the opening call auction),
  09:31–11:30 and 13:01–15:00. 14:58 and 14:59 have zero volume (the closing call auction runs
  14:57–15:00 and matches at 15:00): they are kept.

Bar time. Tushare labels a minute bar with its END (the Chinese convention: "09:31" covers
09:30–09:31, which is why the last bar is 15:00 and the auction-only minutes are 14:58/14:59).
The normalized frame's `ts` is the bar OPEN, so `ts = trade_time − 1 minute` in UTC (e.g.
"2025-06-05 09:31:00" → 2025-06-05 01:30:00 UTC; the 09:30 auction bar → 01:29 UTC; the 15:00
close → 06:59 UTC). `bar_label="start"` switches the shift off if a source labels by open.

Paging. A request covers `window_days` calendar days (30: at most 22 trading days × 241 rows
< 8000). A window whose answer is full (`row_limit` rows, or `has_more`) is paged BACKWARD: the
rows are newest first, so the next request ends one second before the oldest row received
(`end_date` is inclusive); one instrument has one row per trade_time, so nothing is lost or
repeated. Rows are deduplicated on trade_time anyway (counted) and sorted oldest first.

Rows with nulls are dropped and counted (`quality[instrument]`: `null_rows` all values null,
`partial_rows` some null); a non-numeric value, an unparsable time, a missing field or a row of
another instrument is a `TushareResponseError` (a shared `SourceDataError`) naming the
instrument and day (or window). A body that is not JSON (a proxy fault) is retried with backoff,
then the same error. Per-instrument errors leave other instruments alone.

Daily frame (not the minute-bar contract; see `DAILY_SCHEMA`): `day` Date (the trade date, China
calendar), `venue`, `instrument`, `open`, `high`, `low`, `close`, `pre_close`, `volume` (shares),
`amount` (yuan).

Interfaces: `minute_bars(instrument, first_day, last_day)` (China trade days, inclusive),
`bars_1m(instrument, start, end)` (the shared `VenueClient` form: bars opening in [start, end)),
`daily_bars(...)`, `call(api_name, params, fields)` for any other API, pure parsers
`parse_stk_mins` / `parse_daily` / `classify_error` for captured answers, `metadata()`.

The token is passed in by the caller (`token_from_env()` reads `TUSHARE_TOKEN`). It only travels in
request bodies: it is never logged, never in repr, and every message built here is scrubbed of it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal

import polars as pl

from marketdata_assets.lib.errors import scrub
from marketdata_assets.lib.http import ApiClient, ApiError, RetryPolicy, backoff_delay
from marketdata_assets.lib.ticks.frames import BARS_SCHEMA, DAILY_BARS_SCHEMA, UTC_US
from marketdata_assets.lib.ticks.instruments import a_share_code, a_share_venue
from marketdata_assets.lib.http import (
    SourceBanned,
    SourceDataError,
    SourceError,
    SourcePermissionError,
    SourceRequestError,
)
from marketdata_assets.lib.ticks.frames import as_utc

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------------------------

PROVIDER = "Tushare Pro"
DEFAULT_BASE_URL = "http://api.waditu.com"  # the current SDK: {base}/dataapi/{api_name}
LEGACY_BASE_URL = "http://api.tushare.pro"  # the legacy SDK: POST {base}/
TOKEN_ENV = "TUSHARE_TOKEN"
CHINA_TZ = "Asia/Shanghai"
STK_MINS_ROW_LIMIT = 8000
DAILY_ROW_LIMIT = 6000
BARS_PER_DAY = 241
STK_MINS_FIELDS = ("ts_code", "trade_time", "open", "close", "high", "low", "vol", "amount")
DAILY_FIELDS = ("ts_code", "trade_date", "open", "high", "low", "close", "pre_close", "change",
                "pct_chg", "vol", "amount")
LOTS_TO_SHARES = 100.0  # daily `vol` is in lots (手)
THOUSANDS_TO_YUAN = 1000.0  # daily `amount` is in thousands of yuan

CODE_OK = 0
CODE_BAD_TOKEN = 40101
CODE_LIMIT_OR_PERMISSION = 40203
CODE_PERMISSION = 2002

# The normalized daily bar with the trade date (`day`) where it has the timestamp (`ts`).
DAILY_SCHEMA: dict[str, pl.DataType] = {"day": pl.Date, **{name: dtype for name, dtype in DAILY_BARS_SCHEMA.items()
                                                           if name != "ts"}}

ErrorKind = Literal["ok", "rate_minute", "rate_hour", "rate_day", "permission", "token", "other"]


# --------------------------------------------------------------------------------------------
# Errors of this provider
# --------------------------------------------------------------------------------------------

class TushareLimitReached(SourceBanned):
    """A per-hour or per-day quota of an API is used up (or per-minute limits never clear): stop
    calling that API in this run."""

    def __init__(self, api_name: str, period: str, message: str, *, until: datetime | None = None):
        self.api_name, self.period, self.message = api_name, period, message
        super().__init__(PROVIDER, f"40203: {message}", until=until, request=api_name)
        self.args = (f"{PROVIDER}: the {period} quota of {api_name!r} is used up (40203: {message}); not "
                     f"retried: rerun after the {period} window resets"
                     + (f" (about {until.isoformat()})" if until else "") + " or raise the account's quota",)


class TusharePermissionError(SourcePermissionError):
    """The token's account has no permission for an API (40203 permission message, or code 2002)."""

    def __init__(self, api_name: str, code: Any, message: str):
        self.api_name, self.code, self.message = api_name, code, message
        super().__init__(PROVIDER, 200, f"code {code}: {message}", request=api_name)
        self.args = (f"{PROVIDER}: no permission for {api_name!r} (code {code}: {message}); not retried: "
                     + "the account needs the API's points or a separate grant",)


class TushareTokenError(SourcePermissionError):
    """The token was refused (40101) or is missing."""

    def __init__(self, detail: str):
        super().__init__(PROVIDER, 200, detail)
        self.args = (f"{PROVIDER}: {detail}; set {TOKEN_ENV} to the token from https://tushare.pro/user/token "
                     + "(its value is never printed)",)


class TushareResponseError(SourceDataError):
    """A response for one instrument/window that is not what Tushare documents."""

    def __init__(self, instrument: str | None, day: Any, detail: str, *, request: str | None = None):
        super().__init__(instrument, day, detail, source=PROVIDER, request=request)


def token_from_env(environ: Mapping[str, str] | None = None) -> str:
    """The token from `TUSHARE_TOKEN`; a clear error naming the variable (never a value) when unset."""
    environ = os.environ if environ is None else environ
    token = (environ.get(TOKEN_ENV) or "").strip()
    if not token:
        raise TushareTokenError(f"{TOKEN_ENV} is not set")
    return token


# --------------------------------------------------------------------------------------------
# Naming
# --------------------------------------------------------------------------------------------

def venue_of(ts_code: str) -> str:
    """"600000.SH" → "SSE", "000001.SZ" → "SZSE", "830799.BJ" → "BSE" (lib.ticks.instruments)."""
    return a_share_venue(ts_code)


def normalize_ts_code(ts_code: str) -> str:
    """Any common A-share spelling ("sh600000", "600000.XSHG", "600000") → Tushare's "600000.SH"."""
    return a_share_code(ts_code)


# --------------------------------------------------------------------------------------------
# Response parsing (pure functions: usable on captured responses)
# --------------------------------------------------------------------------------------------

def classify_error(code: Any, msg: str) -> ErrorKind:
    """What a Tushare `code`/`msg` pair means. 40203 is both a rate limit and a permission refusal;
    the rate-limit message ("…最多访问该接口N次，权限的具体详情访问…") also contains "权限", so
    limits are checked first."""
    try:
        code = int(code)
    except (TypeError, ValueError):
        return "other"
    if code == CODE_OK:
        return "ok"
    if code == CODE_BAD_TOKEN:
        return "token"
    if code == CODE_PERMISSION:
        return "permission"
    text = msg or ""
    lower = text.lower()
    if code == CODE_LIMIT_OR_PERMISSION:
        if "每分钟" in text or "per minute" in lower or "/min" in lower:
            return "rate_minute"
        if "每小时" in text or "per hour" in lower:
            return "rate_hour"
        if "每天" in text or "每日" in text or "per day" in lower or "daily" in lower:
            return "rate_day"
        # "没有访问该接口的权限", "没有权限访问该接口", "无权限", English variants, or anything else
        # with 40203: a refusal that waiting does not cure.
        return "permission"
    return "other"


def _load(response: Mapping | str | bytes) -> Mapping:
    if isinstance(response, (str, bytes, bytearray)):
        response = json.loads(response)
    if not isinstance(response, Mapping):
        raise ValueError(f"expected a JSON object, got {type(response).__name__}")  # noqa: TRY004 - a bad body
    return response


def raise_for_code(response: Mapping, api_name: str, *, instrument: str | None = None, day: Any = None) -> None:
    """Raise the error a non-zero `code` stands for (see `classify_error`). Per-minute limits raise
    `TushareRateLimited` (the client waits and retries it; a parser caller sees it as an error)."""
    code, msg = response.get("code"), str(response.get("msg") or "")
    kind = classify_error(code, msg)
    if kind == "ok":
        return
    if kind == "rate_minute":
        raise TushareRateLimited(api_name, msg)
    if kind == "rate_hour":
        raise TushareLimitReached(api_name, "hourly", msg, until=_next_china_boundary("hour"))
    if kind == "rate_day":
        raise TushareLimitReached(api_name, "daily", msg, until=_next_china_boundary("day"))
    if kind == "permission":
        raise TusharePermissionError(api_name, code, msg)
    if kind == "token":
        raise TushareTokenError(f"the token was refused (code {code}: {msg})")
    raise SourceRequestError(PROVIDER, instrument, 200, code, msg or "(no message)",
                               request=f"{api_name} {day}" if day else api_name)


def _next_china_boundary(unit: str) -> datetime:
    """The next full hour / China midnight, as an aware UTC datetime (when a quota resets)."""
    from zoneinfo import ZoneInfo

    now = datetime.now(ZoneInfo(CHINA_TZ))
    if unit == "hour":
        nxt = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    else:
        nxt = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), tzinfo=now.tzinfo)
    return as_utc(nxt)


class TushareRateLimited(RuntimeError):
    """A per-minute limit (40203). Internal to the client, which waits for the next window."""

    def __init__(self, api_name: str, message: str):
        self.api_name, self.message = api_name, message
        super().__init__(f"{PROVIDER} {api_name}: per-minute limit (40203: {message})")


@dataclass
class Table:
    """`data` of a Tushare answer: columns by name, rows newest first as sent."""

    fields: list[str]
    items: list[list[Any]]
    has_more: bool
    count: Any


def response_table(response: Mapping | str | bytes, api_name: str, *, instrument: str | None = None,
                   day: Any = None, required: Sequence[str] = ()) -> Table:
    """Check `code` and the shape of `data`, return it. Errors name the instrument/day given."""
    try:
        response = _load(response)
    except ValueError as error:
        raise TushareResponseError(instrument, day, f"{api_name}: the body is not a JSON object ({error})") from None
    raise_for_code(response, api_name, instrument=instrument, day=day)
    data = response.get("data")
    if data is None:
        # code 0 without data: nothing to return (seen for empty results of some APIs)
        return Table(list(required), [], False, 0)
    if not isinstance(data, Mapping):
        raise TushareResponseError(instrument, day, f"{api_name}: `data` is not an object")
    fields, items = data.get("fields"), data.get("items")
    if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
        raise TushareResponseError(instrument, day, f"{api_name}: `data.fields` is missing or not a list of names")
    if items is None:
        items = []
    if not isinstance(items, list):
        raise TushareResponseError(instrument, day, f"{api_name}: `data.items` is not a list")
    missing = [name for name in required if name not in fields]
    if missing:
        raise TushareResponseError(instrument, day, f"{api_name}: the response has no field "
                                                    f"{', '.join(repr(m) for m in missing)} (fields: {fields})")
    for n, row in enumerate(items):
        if not isinstance(row, list) or len(row) != len(fields):
            raise TushareResponseError(instrument, day, f"{api_name}: row {n} has {len(row) if isinstance(row, list) else '?'} "
                                                        f"values for {len(fields)} fields")
    return Table(list(fields), items, bool(data.get("has_more")), data.get("count"))


def _number(value: Any, field_name: str, row_label: str, instrument: str | None, day: Any) -> float | None:
    """A float from a JSON value; None for null/NaN; SourceDataError for anything non-numeric."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise TushareResponseError(instrument, day, f"non-numeric {field_name} {value!r} at {row_label}")
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise TushareResponseError(instrument, day, f"non-numeric {field_name} {value!r} at {row_label}") from None
    else:
        raise TushareResponseError(instrument, day, f"non-numeric {field_name} {value!r} at {row_label}")
    if math.isnan(number):
        return None
    if math.isinf(number):
        raise TushareResponseError(instrument, day, f"infinite {field_name} at {row_label}")
    return number


_TIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y%m%d %H:%M:%S", "%Y%m%d%H%M%S")


def parse_china_time(text: Any) -> datetime:
    """"2025-06-05 09:31:00" (China time, no zone) → naive datetime. ValueError if unparsable."""
    if not isinstance(text, str):
        raise ValueError(f"trade_time {text!r} is not a string")  # noqa: TRY004 - bad data, like a bad format
    value = text.strip()
    for fmt in _TIME_FORMATS:
        try:
            return datetime.strptime(value, fmt)
        except ValueError:
            continue
    raise ValueError(f"trade_time {text!r} is not 'YYYY-MM-DD HH:MM:SS'")


def _day_of(text: Any) -> Any:
    try:
        return parse_china_time(text).date()
    except ValueError:
        return text


@dataclass
class ParsedMinutes:
    frame: pl.DataFrame  # the bar contract, oldest first
    null_rows: int = 0  # every value null: dropped
    partial_rows: int = 0  # some values null: dropped
    duplicates: int = 0  # same instrument and trade_time twice: the first kept
    oldest: datetime | None = None  # oldest trade_time received (China time, naive), for paging
    received: int = 0  # rows in the answer(s)


def parse_stk_mins(response: Mapping | str | bytes | Table, *, instrument: str | None = None, day: Any = None,
                   bar_label: Literal["end", "start"] = "end") -> ParsedMinutes:
    """A `stk_mins` answer → normalized 1-minute bars (see the module docstring for units and time).

    `instrument`, when given, must be the only ts_code in the rows (else SourceDataError).
    """
    required = ("trade_time", "open", "high", "low", "close", "vol", "amount")
    table = response if isinstance(response, Table) else response_table(
        response, "stk_mins", instrument=instrument, day=day, required=required)
    missing = [name for name in required if name not in table.fields]
    if missing:
        raise TushareResponseError(instrument, day, f"stk_mins: the response has no field {missing} (fields: {table.fields})")
    index = {name: table.fields.index(name) for name in table.fields}
    code_at = index.get("ts_code")
    times: list[datetime] = []
    codes: list[str] = []
    values: dict[str, list[float | None]] = {k: [] for k in ("open", "high", "low", "close", "vol", "amount")}
    result = ParsedMinutes(frame=pl.DataFrame(schema=BARS_SCHEMA), received=len(table.items))
    seen: set[tuple[str, datetime]] = set()
    for row in table.items:
        label = row[index["trade_time"]]
        row_day = _day_of(label)
        try:
            when = parse_china_time(label)
        except ValueError as error:
            raise TushareResponseError(instrument, row_day, f"stk_mins: {error}") from None
        code = row[code_at] if code_at is not None else instrument
        if not isinstance(code, str) or not code:
            raise TushareResponseError(instrument, row_day, f"stk_mins: row at {label} has no ts_code")
        code = code.strip().upper()
        if instrument is not None and code != instrument:
            raise TushareResponseError(instrument, row_day, f"stk_mins: a row of {code} in the answer for {instrument}")
        if result.oldest is None or when < result.oldest:
            result.oldest = when
        numbers = {k: _number(row[index[k]], k, f"{code} {label}", instrument or code, row_day) for k in values}
        nulls = sum(v is None for v in numbers.values())
        if nulls == len(numbers):
            result.null_rows += 1
            continue
        if nulls:
            result.partial_rows += 1
            continue
        key = (code, when)
        if key in seen:
            result.duplicates += 1
            continue
        seen.add(key)
        times.append(when)
        codes.append(code)
        for k, v in numbers.items():
            values[k].append(v)
    if not times:
        return result
    try:
        venues = [venue_of(c) for c in codes]
    except ValueError as error:
        raise TushareResponseError(instrument, day, f"stk_mins: {error}") from None
    shift = timedelta(minutes=1) if bar_label == "end" else timedelta(0)
    frame = pl.DataFrame({
        "ts": pl.Series(times, dtype=pl.Datetime("us")),
        "venue": venues, "instrument": codes,
        "open": values["open"], "high": values["high"], "low": values["low"], "close": values["close"],
        "volume": values["vol"], "amount": values["amount"],
    }, schema_overrides={k: pl.Float64 for k in ("open", "high", "low", "close", "volume", "amount")})
    frame = frame.with_columns(
        (pl.col("ts").dt.replace_time_zone(CHINA_TZ).dt.convert_time_zone("UTC") - shift).cast(UTC_US),
        pl.lit(None, dtype=pl.Int64).alias("trades"),
    ).select(list(BARS_SCHEMA)).sort(["instrument", "ts"])
    result.frame = frame
    return result


@dataclass
class ParsedDaily:
    frame: pl.DataFrame  # DAILY_SCHEMA, oldest first
    null_rows: int = 0
    partial_rows: int = 0
    duplicates: int = 0
    oldest: date | None = None
    received: int = 0


def parse_daily(response: Mapping | str | bytes | Table, *, instrument: str | None = None,
                day: Any = None) -> ParsedDaily:
    """A `daily` answer → `DAILY_SCHEMA` (lots → shares ×100, thousands of yuan → yuan ×1000).
    Several ts_codes in one answer are fine (daily accepts a comma-separated ts_code list)."""
    required = ("ts_code", "trade_date", "open", "high", "low", "close", "vol", "amount")
    table = response if isinstance(response, Table) else response_table(
        response, "daily", instrument=instrument, day=day, required=required)
    missing = [name for name in required if name not in table.fields]
    if missing:
        raise TushareResponseError(instrument, day, f"daily: the response has no field {missing} (fields: {table.fields})")
    index = {name: table.fields.index(name) for name in table.fields}
    numeric = ["open", "high", "low", "close", "vol", "amount"] + (["pre_close"] if "pre_close" in index else [])
    result = ParsedDaily(frame=pl.DataFrame(schema=DAILY_SCHEMA), received=len(table.items))
    rows: dict[str, list] = {k: [] for k in ["day", "instrument", *numeric]}
    seen: set[tuple[str, date]] = set()
    for row in table.items:
        label, code = row[index["trade_date"]], row[index["ts_code"]]
        try:
            trade_day = datetime.strptime(str(label).strip(), "%Y%m%d").date()
        except ValueError:
            raise TushareResponseError(instrument, label, f"daily: trade_date {label!r} is not YYYYMMDD") from None
        if not isinstance(code, str) or not code:
            raise TushareResponseError(instrument, trade_day, "daily: a row has no ts_code")
        code = code.strip().upper()
        if instrument is not None and code not in instrument.split(","):
            raise TushareResponseError(instrument, trade_day, f"daily: a row of {code} in the answer for {instrument}")
        if result.oldest is None or trade_day < result.oldest:
            result.oldest = trade_day
        numbers = {k: _number(row[index[k]], k, f"{code} {label}", code, trade_day) for k in numeric}
        core = [numbers[k] for k in ("open", "high", "low", "close", "vol", "amount")]
        if all(v is None for v in core):
            result.null_rows += 1
            continue
        if any(v is None for v in core):
            result.partial_rows += 1
            continue
        if (code, trade_day) in seen:
            result.duplicates += 1
            continue
        seen.add((code, trade_day))
        rows["day"].append(trade_day)
        rows["instrument"].append(code)
        for k in numeric:
            rows[k].append(numbers[k])
    if not rows["day"]:
        return result
    try:
        venues = [venue_of(c) for c in rows["instrument"]]
    except ValueError as error:
        raise TushareResponseError(instrument, day, f"daily: {error}") from None
    frame = pl.DataFrame({
        "day": pl.Series(rows["day"], dtype=pl.Date), "venue": venues, "instrument": rows["instrument"],
        **{k: pl.Series(rows[k], dtype=pl.Float64) for k in numeric},
    })
    if "pre_close" not in frame.columns:
        frame = frame.with_columns(pl.lit(None, dtype=pl.Float64).alias("pre_close"))
    # ×100 / ×1000 in binary floating point leaves noise (1279950.983 × 1000 = 1279950983.0000002):
    # round back to the precision the vendor sends (2 decimals of lots, 3 of thousands of yuan).
    frame = frame.with_columns(
        (pl.col("vol") * LOTS_TO_SHARES).round(4).alias("volume"),
        (pl.col("amount") * THOUSANDS_TO_YUAN).round(3).alias("amount"),
    ).select(list(DAILY_SCHEMA)).sort(["instrument", "day"])
    result.frame = frame
    return result


# --------------------------------------------------------------------------------------------
# Windows
# --------------------------------------------------------------------------------------------

def day_windows(start: date, end: date, days: int) -> list[tuple[date, date]]:
    """[start, end] (inclusive) cut into inclusive windows of at most `days` calendar days."""
    if end < start:
        return []
    if days < 1:
        raise ValueError("window days must be >= 1")
    windows, cursor = [], start
    while cursor <= end:
        last = min(end, cursor + timedelta(days=days - 1))
        windows.append((cursor, last))
        cursor = last + timedelta(days=1)
    return windows


def _as_date(value: date | datetime | str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value).strip()
    return datetime.strptime(text, "%Y%m%d").date() if text.isdigit() else date.fromisoformat(text)


# --------------------------------------------------------------------------------------------
# The client
# --------------------------------------------------------------------------------------------

class TushareClient(ApiClient):
    """Async Tushare Pro client on the shared HTTP policy (`ApiClient`).

    `async with TushareClient(base_url, token) as ts: frame = await ts.minute_bars("600000.SH",
    date(2025, 6, 2), date(2025, 6, 6))`.

    The shared policy paces requests (`requests_per_minute`, 200 by default: Tushare's usual
    per-API limit), bounds requests in flight (`max_concurrency`), retries 5xx/timeouts with
    backoff and handles HTTP 429s. On top of it this client handles Tushare's HTTP-200 errors
    (module docstring): per-minute limits pause every task of the client until the next
    `limit_window_s` window (at most `max_limit_waits` times for one call, then
    `TushareLimitReached`); quota, permission and token errors stop the API (or the whole client
    for the token) and later calls fail at once with the same error, without a request.
    """

    api_name = PROVIDER
    name = "TUSHARE"  # the provider; each bar's `venue` is its exchange (SSE / SZSE / BSE)

    def __init__(self, base_url: str = DEFAULT_BASE_URL, token: str = "", *,
                 path_style: Literal["dataapi", "root"] = "dataapi",
                 requests_per_minute: float = 200, max_concurrency: int = 4, timeout_s: float = 30.0,
                 retry: RetryPolicy | None = None, limit_window_s: float = 60.0, max_limit_waits: int = 5,
                 window_days: int = 30, row_limit: int = STK_MINS_ROW_LIMIT, daily_row_limit: int = DAILY_ROW_LIMIT,
                 bar_label: Literal["end", "start"] = "end", rng=None):
        if path_style not in ("dataapi", "root"):
            raise ValueError(f"path_style must be 'dataapi' or 'root', got {path_style!r}")
        if not token or not str(token).strip():
            raise TushareTokenError("no token given")
        super().__init__(base_url, requests_per_minute=requests_per_minute, max_concurrency=max_concurrency,
                         timeout_s=timeout_s, retry=retry, rng=rng,
                         headers={"Content-Type": "application/json", "User-Agent": "marketdata-assets"})
        self.__token = str(token).strip()
        self.path_style = path_style
        self.limit_window_s = float(limit_window_s)
        self.max_limit_waits = int(max_limit_waits)
        self.window_days = int(window_days)
        self.row_limit = int(row_limit)
        self.daily_row_limit = int(daily_row_limit)
        self.bar_label = bar_label
        self.quality: dict[str, Counter] = {}
        self.limit_waits = 0  # per-minute limit answers waited out
        self._pause_until = 0.0  # wall clock: nobody sends before
        # Tasks wait HERE, not on ApiClient's semaphore, so that one that gets a slot while a
        # per-minute pause is on sees the pause before sending (the base semaphore never queues).
        self._gate = asyncio.Semaphore(max(1, max_concurrency))
        self._stopped: dict[str | None, SourceError] = {}  # api_name (None = all) -> the error

    @classmethod
    def from_env(cls, base_url: str = DEFAULT_BASE_URL, environ: Mapping[str, str] | None = None,
                 **kwargs) -> TushareClient:
        """A client with the token from `TUSHARE_TOKEN` (`TushareTokenError` naming it when unset)."""
        return cls(base_url, token_from_env(environ), **kwargs)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(base_url={self.base_url!r}, path_style={self.path_style!r}, "
                f"token='***', requests_per_minute={self.bucket.rate * 60:g})")

    __str__ = __repr__

    def _scrub(self, text: str) -> str:
        return scrub(text, self.__token)

    def path_for(self, api_name: str) -> str:
        return f"/dataapi/{api_name}" if self.path_style == "dataapi" else "/"

    # ---- one call ----------------------------------------------------------------------------

    async def _wait_for_window(self) -> None:
        while True:
            delay = self._pause_until - time.time()
            if delay <= 0:
                return
            await asyncio.sleep(delay)

    def _next_window(self) -> float:
        window = self.limit_window_s
        now = time.time()
        # the next wall-clock boundary of the limit's window, plus a little slack for clock skew
        return (math.floor(now / window) + 1) * window + min(0.5, window * 0.02)

    async def call(self, api_name: str, params: Mapping[str, Any] | None = None,
                   fields: Sequence[str] | str = "", *, instrument: str | None = None, day: Any = None,
                   required: Sequence[str] = ()) -> Table:
        """One Tushare API call → its `data` table. Raises the errors of the module docstring;
        messages name `instrument`/`day` and never contain the token."""
        payload = {"api_name": api_name, "token": self.__token, "params": dict(params or {}),
                   "fields": fields if isinstance(fields, str) else ",".join(fields)}
        path = self.path_for(api_name)
        limit_waits = bad_bodies = 0
        while True:
            try:
                async with self._gate:
                    stopped = self._stopped.get(None) or self._stopped.get(api_name)
                    if stopped is not None:  # quota, permission or token: fail without a request
                        raise stopped
                    await self._wait_for_window()
                    response = await self.request("POST", path, json=payload)
            except ApiError as error:  # retries ran out (5xx, HTTP 429, timeouts): the shared convention
                raise ApiError(error.api, error.method, error.path, error.status,
                               self._scrub(error.detail)) from None
            if response.status_code in (401, 403):
                raise SourcePermissionError(PROVIDER, response.status_code,
                                              self._scrub(response.text[:200]), request=api_name)
            if response.status_code != 200:
                raise SourceRequestError(PROVIDER, instrument, response.status_code, None,
                                           self._scrub(response.text[:200]), request=f"POST {path}")
            try:
                body = response.json()
                if not isinstance(body, dict):
                    raise ValueError(f"a JSON {type(body).__name__}, not an object")  # noqa: TRY004
            except ValueError as error:
                bad_bodies += 1
                if bad_bodies > self.retry.max_retries:
                    raise TushareResponseError(instrument, day, self._scrub(
                        f"{api_name}: the body is not valid JSON after {bad_bodies} attempts ({error}); "
                        f"starts with {response.text[:80]!r}")) from None
                self.stats.retries += 1
                await asyncio.sleep(backoff_delay(bad_bodies - 1, self.retry.backoff_base_s,
                                                  self.retry.backoff_max_s, self.rng))
                continue
            try:
                return response_table(body, api_name, instrument=instrument, day=day, required=required)
            except TushareRateLimited as limited:
                limit_waits += 1
                self.stats.rate_limited += 1
                if limit_waits > self.max_limit_waits:
                    error = TushareLimitReached(api_name, "per-minute", self._scrub(limited.message))
                    error.args = (f"{error} (still limited after {self.max_limit_waits} windows of "
                                  + f"{self.limit_window_s:g} s)",)
                    raise error from None
                until = self._next_window()
                self._pause_until = max(self._pause_until, until)
                self.limit_waits += 1
                self.stats.retries += 1
                log.info("%s %s: per-minute limit (%s); every request waits %.1f s for the next window",
                         PROVIDER, api_name, self._scrub(limited.message), until - time.time())
            except (TushareLimitReached, TusharePermissionError) as error:
                self._stopped[api_name] = error
                log.error("%s", error)
                raise
            except TushareTokenError as error:
                self._stopped[None] = error
                log.error("%s", error)
                raise

    def _count(self, instrument: str, **counts: int) -> None:
        counter = self.quality.setdefault(instrument, Counter())
        for key, value in counts.items():
            if value:
                counter[key] += value

    # ---- minute bars ---------------------------------------------------------------------------

    async def minute_bars(self, instrument: str, start: date | str, end: date | str | None = None) -> pl.DataFrame:
        """1-minute bars of `instrument` (e.g. "600000.SH") for the China trade days start..end
        (inclusive; `end` defaults to `start`), as the normalized bar frame, oldest first."""
        code = normalize_ts_code(instrument)
        first, last = _as_date(start), _as_date(end if end is not None else start)
        frames = []
        for window_start, window_end in day_windows(first, last, self.window_days):
            frames.append(await self._minutes_window(code, window_start, window_end))
        frame = pl.concat(frames) if frames else pl.DataFrame(schema=BARS_SCHEMA)
        before = frame.height
        frame = frame.unique(subset=["instrument", "ts"], keep="first", maintain_order=True).sort("ts")
        self._count(code, duplicates=before - frame.height)
        return frame

    async def bars_1m(self, instrument: str, start: datetime, end: datetime) -> pl.DataFrame:
        """`VenueClient` form: the bars OPENING in [start, end) (aware datetimes, naive = UTC)."""
        from zoneinfo import ZoneInfo

        lo, hi = as_utc(start), as_utc(end)
        if hi <= lo:
            return pl.DataFrame(schema=BARS_SCHEMA)
        china = ZoneInfo(CHINA_TZ)
        # a bar opening at t is labelled t + 1 minute by Tushare: cover the China days of both
        first = lo.astimezone(china).date()
        last = (hi + timedelta(minutes=1)).astimezone(china).date()
        frame = await self.minute_bars(instrument, first, last)
        return frame.filter((pl.col("ts") >= lo) & (pl.col("ts") < hi))

    async def _minutes_window(self, code: str, first: date, last: date) -> pl.DataFrame:
        """All bars of [first 00:00:00, last 23:59:59] China time, paging backward on full answers."""
        start_text = f"{first.isoformat()} 00:00:00"
        end_time = datetime.combine(last, datetime.min.time()) + timedelta(days=1, seconds=-1)
        lower = datetime.combine(first, datetime.min.time())
        label = first if first == last else f"{first.isoformat()}..{last.isoformat()}"
        frames: list[pl.DataFrame] = []
        while True:
            params = {"ts_code": code, "freq": "1min", "start_date": start_text,
                      "end_date": end_time.strftime("%Y-%m-%d %H:%M:%S")}
            table = await self.call("stk_mins", params, STK_MINS_FIELDS, instrument=code, day=label,
                                    required=("trade_time", "open", "high", "low", "close", "vol", "amount"))
            parsed = parse_stk_mins(table, instrument=code, day=label, bar_label=self.bar_label)
            self._count(code, requests=1, rows=parsed.received, null_rows=parsed.null_rows,
                        partial_rows=parsed.partial_rows, duplicates=parsed.duplicates)
            if parsed.null_rows or parsed.partial_rows:
                log.warning("%s %s %s: dropped %d all-null and %d partially null rows", PROVIDER, code, label,
                            parsed.null_rows, parsed.partial_rows)
            frames.append(parsed.frame)
            full = parsed.received >= self.row_limit or table.has_more
            if not full or parsed.oldest is None:
                break
            next_end = parsed.oldest - timedelta(seconds=1)
            if next_end < lower or next_end >= end_time:
                break
            end_time = next_end
        return pl.concat(frames) if frames else pl.DataFrame(schema=BARS_SCHEMA)

    # ---- daily bars ----------------------------------------------------------------------------

    async def daily_bars(self, instrument: str, start: date | str, end: date | str | None = None) -> pl.DataFrame:
        """Daily bars (`DAILY_SCHEMA`: `day` Date, volume in shares, amount in yuan) of the trade
        days start..end (inclusive), oldest first."""
        code = normalize_ts_code(instrument)
        first, last = _as_date(start), _as_date(end if end is not None else start)
        frames, end_day = [], last
        label = first if first == last else f"{first.isoformat()}..{last.isoformat()}"
        while end_day >= first:
            params = {"ts_code": code, "start_date": first.strftime("%Y%m%d"), "end_date": end_day.strftime("%Y%m%d")}
            table = await self.call("daily", params, DAILY_FIELDS, instrument=code, day=label,
                                    required=("ts_code", "trade_date", "open", "high", "low", "close", "vol", "amount"))
            parsed = parse_daily(table, instrument=code, day=label)
            self._count(code, daily_requests=1, daily_rows=parsed.received, null_rows=parsed.null_rows,
                        partial_rows=parsed.partial_rows, duplicates=parsed.duplicates)
            frames.append(parsed.frame)
            if not (parsed.received >= self.daily_row_limit or table.has_more) or parsed.oldest is None:
                break
            end_day = parsed.oldest - timedelta(days=1)
        frame = pl.concat(frames) if frames else pl.DataFrame(schema=DAILY_SCHEMA)
        return frame.unique(subset=["instrument", "day"], keep="first", maintain_order=True).sort("day")

    # ---- metadata ------------------------------------------------------------------------------

    def metadata(self) -> dict[str, Any]:
        """Request counters and data-quality counts, for materialization metadata."""
        totals: Counter = Counter()
        for counter in self.quality.values():
            totals.update(counter)
        return {**self.stats.as_metadata(), "limit_waits": self.limit_waits,
                "dropped_null_rows": totals.get("null_rows", 0), "dropped_partial_rows": totals.get("partial_rows", 0),
                "duplicate_rows": totals.get("duplicates", 0)}
