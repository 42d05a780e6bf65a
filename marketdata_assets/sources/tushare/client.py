"""Tushare Pro client: A-share 1-minute bars (`stk_mins`) and daily bars (`daily`) on the shared
`ApiClient`, which classifies Tushare's HTTP-200 error codes with `ERRORS` (errors.py).

Every call is `POST {api_name, token, params, fields}` to `/dataapi/{api_name}` (the current SDK)
or to the root (the legacy SDK, `path_style="root"`). The api_name is the call's endpoint: a
quota or permission error stops that API for the client, a refused token stops the client. Tushare
sends no Retry-After: a per-minute limit pauses every request of the client until the next
`limit_window_s` window on the wall clock, at most `max_limit_waits` times for one call.

`listed_instruments(list_status)` asks `stock_basic` for every code of a listing status (listing.py
keeps the answer per Beijing day); a full answer (6000 rows) is asked again one exchange at a time.

Paging: answers are newest first and capped (`stk_mins` 8000 rows, `daily` 6000). A full answer
is paged BACKWARD: `stk_mins` asks again up to one second before its oldest row; `daily` (many
codes at once) drops the rows of its oldest date, which may be cut, and asks again up to that date.

The token only travels in request bodies: never in a message, repr or log (`core.errors.scrub`).
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal

import httpx
import polars as pl

from marketdata_assets.core.errors import scrub
from marketdata_assets.core.http import ApiClient, ApiError, Limits, Page, SourceError
from marketdata_assets.datasets.frames import BARS_SCHEMA, DAILY_BARS_SCHEMA
from marketdata_assets.datasets.instruments import Instrument
from marketdata_assets.datasets.wire import count_quality
from marketdata_assets.sources.tushare.errors import (
    ERRORS,
    PROVIDER,
    TOKEN_ENV,
    TushareLimitReached,
    TushareResponseError,
    TushareTokenError,
    answer_error,
    error_fields,
)
from marketdata_assets.sources.tushare.listing import (
    EXCHANGES,
    STOCK_BASIC_FIELDS,
    STOCK_BASIC_REQUIRED,
    STOCK_BASIC_ROW_LIMIT,
    ListedInstrument,
    instrument_of,
    parse_stock_basic,
)
from marketdata_assets.sources.tushare.parse import (
    normalize_ts_code,
    parse_daily,
    parse_stk_mins,
    response_table,
    without_day,
)
from marketdata_assets.sources.tushare.records import (
    DAILY_FIELDS,
    DAILY_REQUIRED,
    DAILY_ROW_LIMIT,
    STK_MINS_FIELDS,
    STK_MINS_REQUIRED,
    STK_MINS_ROW_LIMIT,
    Table,
)

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "http://api.waditu.com"  # the current SDK: {base}/dataapi/{api_name}
LEGACY_BASE_URL = "http://api.tushare.pro"  # the legacy SDK: POST {base}/
# 200 calls a minute is Tushare's usual per-API limit.
LIMITS = Limits(requests_per_minute=200, max_concurrency=4)


def token_from_env(environ: Mapping[str, str] | None = None) -> str:
    """The token from `TUSHARE_TOKEN`; a clear error naming the variable (never a value) when unset."""
    environ = os.environ if environ is None else environ
    token = (environ.get(TOKEN_ENV) or "").strip()
    if not token:
        raise TushareTokenError(f"{TOKEN_ENV} is not set")
    return token


@dataclass(frozen=True)
class TusharePage(Page):
    """Where an answer came from, with the API it was asked of."""

    api: str = ""

    def error(self, detail: str) -> TushareResponseError:
        return TushareResponseError(self.instrument, self.day, detail, request=self.request)


def _label(first: date, last: date) -> date | str:
    return first if first == last else f"{first.isoformat()}..{last.isoformat()}"


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


def as_date(value: date | datetime | str) -> date:
    """A date from a date, a datetime, "YYYY-MM-DD" or "YYYYMMDD"."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value).strip()
    return datetime.strptime(text, "%Y%m%d").date() if text.isdigit() else date.fromisoformat(text)


class TushareClient(ApiClient):
    """Async Tushare Pro client. `async with TushareClient(base_url, token) as ts: frame = await
    ts.minute_bars("600000.SH", date(2025, 6, 2), date(2025, 6, 6))`.

    `minute_bars(code, first_day, last_day)`, `daily(codes, first, last)`, `listed_instruments()`
    (stock_basic), `query(api_name, params, fields)` for any other API, `figures()` for materialization
    metadata; `quality[code]` counts rows received, dropped (nulls) and repeated per instrument.
    """

    api_name = PROVIDER
    name = "TUSHARE"  # the provider; each bar's `venue` is its exchange (SSE / SZSE / BSE)
    ERRORS = ERRORS
    LIMITS = LIMITS
    bad_body = "retry"  # a body cut by a proxy: asked again with backoff

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        token: str = "",
        *,
        path_style: Literal["dataapi", "root"] = "dataapi",
        limit_window_s: float = 60.0,
        max_limit_waits: int = 5,
        window_days: int = 30,
        row_limit: int = STK_MINS_ROW_LIMIT,
        daily_row_limit: int = DAILY_ROW_LIMIT,
        listing_row_limit: int = STOCK_BASIC_ROW_LIMIT,
        bar_label: Literal["end", "start"] = "end",
        **http: Any,  # ApiClient's: requests_per_minute, max_concurrency, timeout_s, retry, rng
    ):
        if path_style not in ("dataapi", "root"):
            raise ValueError(f"path_style must be 'dataapi' or 'root', got {path_style!r}")
        if not token or not str(token).strip():
            raise TushareTokenError("no token given")
        super().__init__(
            base_url, headers={"Content-Type": "application/json", "User-Agent": "marketdata-assets"}, **http
        )
        self.__token = str(token).strip()
        self.path_style = path_style
        self.limit_window_s = float(limit_window_s)
        self.max_limit_waits = int(max_limit_waits)
        self.window_days = int(window_days)
        self.row_limit = int(row_limit)
        self.daily_row_limit = int(daily_row_limit)
        self.listing_row_limit = int(listing_row_limit)
        self.bar_label = bar_label
        self.quality: dict[str, Counter] = {}
        self.limit_waits = 0  # per-minute limit answers waited out

    @classmethod
    def from_env(
        cls, base_url: str = DEFAULT_BASE_URL, environ: Mapping[str, str] | None = None, **kwargs
    ) -> TushareClient:
        """A client with the token from `TUSHARE_TOKEN` (`TushareTokenError` naming it when unset)."""
        return cls(base_url, token_from_env(environ), **kwargs)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(base_url={self.base_url!r}, path_style={self.path_style!r}, "
            f"token='***', requests_per_minute={self.bucket.rate * 60:g})"
        )

    __str__ = __repr__

    def path_for(self, api_name: str) -> str:
        return f"/dataapi/{api_name}" if self.path_style == "dataapi" else "/"

    def _scrubbed(self, error: BaseException) -> BaseException:
        """The error with the token removed from its message and text attributes (in place)."""
        error.args = tuple(scrub(arg, self.__token) if isinstance(arg, str) else arg for arg in error.args)
        for name in ("detail", "message"):
            value = getattr(error, name, None)
            if isinstance(value, str):
                setattr(error, name, scrub(value, self.__token))
        return error

    # ---- what Tushare's answers mean (the rest is `ERRORS`) ----------------------------------

    def error_fields(self, payload: Any) -> tuple[Any, str] | None:
        return error_fields(payload)

    def make_error(self, category, *, status, code, message, page):
        if status < 400 and category != "data" and isinstance(page, TusharePage):  # a Tushare error code
            error = answer_error(
                category, page.api, code, message, instrument=page.instrument, request=page.request
            )
        else:  # an HTTP error (401/403 from a proxy, 404, other 4xx)
            error = super().make_error(category, status=status, code=code, message=message, page=page)
        error = self._scrubbed(error)
        if category in ("quota", "permission", "unauthorized", "banned"):
            log.error("%s", error)
        return error

    def rate_limit_wait(
        self, response: httpx.Response, attempt: int, *, page: Page, message: str, waits: int
    ) -> float:
        """A per-minute limit answer: every request of the client waits for the next window of
        the limit (wall clock, a little slack for clock skew); this call gives up after
        `max_limit_waits` windows. An HTTP 429 (a proxy): Retry-After, else backoff."""
        if response.status_code != 200 or not isinstance(page, TusharePage):
            return super().rate_limit_wait(response, attempt, page=page, message=message, waits=waits)
        if waits >= self.max_limit_waits or attempt >= self.retry.max_retries:
            error = TushareLimitReached(page.api, "per-minute", message)
            error.args = (f"{error} (still limited after {waits} windows of {self.limit_window_s:g} s)",)
            raise self._scrubbed(error)
        self.limit_waits += 1
        window = self.limit_window_s
        until = (math.floor(time.time() / window) + 1) * window + min(0.5, window * 0.02)
        self.pause_until = max(self.pause_until, until)
        wait = max(0.0, until - time.time())
        log.info(
            "%s %s: per-minute limit (%s); every request waits %.1f s for the next window",
            PROVIDER,
            page.api,
            scrub(message, self.__token),
            wait,
        )
        return wait

    def exhausted(self, category, **details):
        return self._scrubbed(super().exhausted(category, **details))

    # ---- one call ----------------------------------------------------------------------------

    async def query(
        self,
        api_name: str,
        params: Mapping[str, Any] | None = None,
        fields: Sequence[str] | str = "",
        *,
        instrument: str | None = None,
        day: Any = None,
        required: Sequence[str] = (),
    ) -> Table:
        """One Tushare API call → its `data` table (`code` 0 with `data: null`: an empty table).
        Raises the error the answer stands for (`ERRORS`); messages name `instrument`/`day` and
        never contain the token."""
        params = dict(params or {})
        body = {
            "api_name": api_name,
            "token": self.__token,
            "params": params,
            "fields": fields if isinstance(fields, str) else ",".join(fields),
        }
        described = "&".join(f"{key}={value}" for key, value in params.items())
        page = TusharePage(
            PROVIDER, instrument, day, f"{api_name}?{described}" if described else api_name, api=api_name
        )
        try:
            answer = await self.call("POST", self.path_for(api_name), page=page, endpoint=api_name, json=body)
        except (SourceError, ApiError) as error:
            self._scrubbed(error)
            raise
        return response_table(answer, api_name, instrument=instrument, day=day, required=required)

    def _count(self, instrument: str, **counts: int) -> None:
        count_quality(self.quality, instrument, counts)

    # ---- minute bars ---------------------------------------------------------------------------

    async def minute_bars(
        self, code: str, first_day: date | str, last_day: date | str | None = None
    ) -> pl.DataFrame:
        """1-minute bars of `code` (e.g. "600000.SH") on the China trade days first..last
        (inclusive; `last_day` defaults to `first_day`), as the normalized bar frame, oldest first."""
        code = normalize_ts_code(code)
        first, last = as_date(first_day), as_date(last_day if last_day is not None else first_day)
        frames = [
            await self._minutes_window(code, start, end)
            for start, end in day_windows(first, last, self.window_days)
        ]
        frame = pl.concat(frames) if frames else pl.DataFrame(schema=BARS_SCHEMA)
        before = frame.height
        frame = frame.unique(subset=["instrument", "ts"], keep="first", maintain_order=True).sort("ts")
        self._count(code, duplicates=before - frame.height)
        return frame

    async def _minutes_window(self, code: str, first: date, last: date) -> pl.DataFrame:
        """All bars of [first 00:00:00, last 23:59:59] China time, paging backward on full answers
        (one row per trade_time, so ending one second before the oldest row loses nothing)."""
        start_text = f"{first.isoformat()} 00:00:00"
        end_time = datetime.combine(last, datetime.min.time()) + timedelta(days=1, seconds=-1)
        lower = datetime.combine(first, datetime.min.time())
        label = _label(first, last)
        frames: list[pl.DataFrame] = []
        while True:
            params = {
                "ts_code": code,
                "freq": "1min",
                "start_date": start_text,
                "end_date": end_time.strftime("%Y-%m-%d %H:%M:%S"),
            }
            table = await self.query(
                "stk_mins", params, STK_MINS_FIELDS, instrument=code, day=label, required=STK_MINS_REQUIRED
            )
            parsed = parse_stk_mins(
                table, instrument=code, day=label, bar_label=self.bar_label, window=(first, last)
            )
            self._count(
                code,
                requests=1,
                rows=parsed.received,
                null_rows=parsed.null_rows,
                partial_rows=parsed.partial_rows,
                duplicates=parsed.duplicates,
                outside=parsed.outside,
            )
            if parsed.null_rows or parsed.partial_rows:
                log.warning(
                    "%s %s %s: dropped %d all-null and %d partially null rows",
                    PROVIDER,
                    code,
                    label,
                    parsed.null_rows,
                    parsed.partial_rows,
                )
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

    async def daily(self, codes: Sequence[str], first: date | str, last: date | str) -> pl.DataFrame:
        """Daily bars of `codes` on the trade days first..last (inclusive) from ONE `daily` request
        for all codes (paged backward when the answer is full), in `DAILY_BARS_SCHEMA`: ts = 00:00
        UTC of the trade date, volume in shares, amount in yuan; by instrument, oldest first."""
        wanted = list(dict.fromkeys(normalize_ts_code(code) for code in codes))
        if not wanted:
            return pl.DataFrame(schema=DAILY_BARS_SCHEMA)
        first, last = as_date(first), as_date(last)
        joined, label = ",".join(wanted), _label(first, last)
        frames: list[pl.DataFrame] = []
        end = last
        while end >= first:
            params = {"ts_code": joined, "start_date": f"{first:%Y%m%d}", "end_date": f"{end:%Y%m%d}"}
            table = await self.query(
                "daily", params, DAILY_FIELDS, instrument=joined, day=label, required=DAILY_REQUIRED
            )
            parsed = parse_daily(table, instrument=joined, day=label, window=(first, last))
            cut = None  # a full answer's oldest date, which may be cut: asked again, whole, next
            if (parsed.received >= self.daily_row_limit or table.has_more) and parsed.oldest is not None:
                cut = parsed.oldest
                if cut >= end:
                    raise TushareResponseError(
                        joined,
                        end,
                        f"daily: one trade date fills a whole answer "
                        f"({parsed.received} rows): ask fewer codes at once",
                    )
                parsed = parse_daily(
                    without_day(table, cut), instrument=joined, day=label, window=(first, last)
                )
            for code, counts in parsed.counts.items():
                self._count(
                    code,
                    daily_rows=counts["rows"],
                    null_rows=counts["null_rows"],
                    partial_rows=counts["partial_rows"],
                    duplicates=counts["duplicates"],
                    outside=counts["outside"],
                )
            if parsed.null_rows or parsed.partial_rows:
                log.warning(
                    "%s daily %s: dropped %d all-null and %d partially null rows",
                    PROVIDER,
                    label,
                    parsed.null_rows,
                    parsed.partial_rows,
                )
            frames.append(parsed.frame)
            if cut is None:
                break
            end = cut
        frame = pl.concat(frames) if frames else pl.DataFrame(schema=DAILY_BARS_SCHEMA)
        first_seen = pl.struct("instrument", "ts").is_first_distinct()
        for code, repeated in frame.filter(~first_seen).group_by("instrument").len().iter_rows():
            self._count(code, duplicates=repeated)
        return frame.filter(first_seen).sort(["instrument", "ts"])

    # ---- the listing ----------------------------------------------------------------------------

    async def listed_instruments(
        self, list_status: str = "L"
    ) -> tuple[list[ListedInstrument], dict[str, int]]:
        """Every instrument `stock_basic` lists with `list_status` (L: listed), by code, and the rows
        dropped (another status, repeated). One request; a full answer may be cut, so it is asked
        again one exchange at a time (SSE, SZSE, BSE); an exchange that alone fills an answer is a
        `TushareResponseError` (the listing would be incomplete)."""
        table = await self._listing(list_status)
        if len(table.items) < self.listing_row_limit and not table.has_more:
            return parse_stock_basic(table, list_status)
        found: dict[str, ListedInstrument] = {}
        dropped: Counter = Counter()
        for exchange in EXCHANGES:
            part = await self._listing(list_status, exchange)
            if len(part.items) >= self.listing_row_limit or part.has_more:
                raise TushareResponseError(
                    None,
                    None,
                    f"stock_basic: {exchange} alone fills a whole answer "
                    f"({len(part.items)} rows): the listing would be cut",
                )
            instruments, counts = parse_stock_basic(part, list_status)
            dropped.update(counts)
            for instrument in instruments:
                dropped["repeated"] += instrument.code in found
                found.setdefault(instrument.code, instrument)
        return [found[code] for code in sorted(found)], dict(dropped)

    async def listing(self, statuses: Sequence[str] = ("L", "D", "P")) -> list[Instrument]:
        """The A-share master: every code `stock_basic` lists as listed (L), delisted (D, with its
        delist_date) or suspended (P), as the master's Instruments (a request per status)."""
        out = []
        for status in statuses:
            rows, _ = await self.listed_instruments(status)
            out += [instrument_of(row) for row in rows]
        return out

    async def _listing(self, list_status: str, exchange: str = "") -> Table:
        params = {"list_status": list_status, **({"exchange": exchange} if exchange else {})}
        return await self.query(
            "stock_basic",
            params,
            STOCK_BASIC_FIELDS,
            instrument=exchange or None,
            required=STOCK_BASIC_REQUIRED,
        )

    # ---- figures -------------------------------------------------------------------------------

    def figures(self) -> dict[str, Any]:
        """Request counters, per-minute limit waits and dropped/repeated rows, for metadata."""
        totals: Counter = Counter()
        for counter in self.quality.values():
            totals.update(counter)
        return {
            **super().figures(),
            "limit_waits": self.limit_waits,
            "dropped_null_rows": totals.get("null_rows", 0),
            "dropped_partial_rows": totals.get("partial_rows", 0),
            "duplicate_rows": totals.get("duplicates", 0),
            "dropped_outside_window": totals.get("outside", 0),
        }
