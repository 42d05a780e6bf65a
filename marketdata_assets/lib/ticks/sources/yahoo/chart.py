"""Yahoo Finance chart v8 client: 1-minute bars as normalized frames.

The vendor's formats and quirks (shared/docs/vendor-formats.md) handled here:

- `GET /v8/finance/chart/{symbol}?interval=1m&period1=&period2=&includePrePost=false` → `chart.result[0]`
  with `meta`, `timestamp[]` (epoch SECONDS, the bar OPEN) and `indicators.quote[0].{open, high,
  low, close, volume}[]` parallel to `timestamp`. `meta.range` may be absent; nothing here needs it.
- No trades in the window → no `timestamp` key (and `quote:[{}]`): an empty frame, not an error.
- Nulls: a minute where every value is null is dropped (counted as `null_minutes`); a row where
  only some values are null is dropped too and counted as `partial_rows` (a bar without its
  close or volume cannot be trusted). Counts are in `quality[symbol]` and `ChartData`.
- float32 noise: Yahoo stores prices as float32, so 101.2 arrives as 101.19999694824219. A price
  is snapped to the shortest decimal (at most 6 places) that has the same float32 value — only
  when the value IS exactly a float32 (so a genuine float64 like 0.1 or 123.4567891 is kept as
  sent). 101.19999694824219 → 101.2; 71.23999786376953 → 71.24.
- Minor currency units: `meta.currency` "GBp"/"GBX" (pence) → prices /100, currency "GBP";
  "ZAc" (South African cents) → /100 "ZAR"; "ILA" (Israeli agorot) → /100 "ILS"; "KWF" (Kuwaiti
  fils) → /1000 "KWD". Volume is unchanged. The normalized currency is in `ChartData.currency`
  and `instruments[symbol]` (the bar frame has no currency column).
- Errors: `{"chart":{"result":null,"error":{"code":"Not Found","description":"No data found,
  symbol may be delisted"}}}` with HTTP 404 → `YahooSymbolNotFound` (a `SourceRequestError` for
  that symbol, not retried); "Bad Request" 400 and "Unprocessable Entity" 422 → `YahooRequestError`
  (same family). A 429's body is PLAIN TEXT ("Too Many Requests" / "Edge: Too Many Requests"): it
  is never parsed; the shared policy (`ApiClient`) waits and retries it and raises `ApiError` when
  retries run out. 401/403 → `SourcePermissionError`. A 200 whose body is not JSON (a proxy
  fault) is retried with backoff, then `SourceDataError`; a result without the quote arrays, or
  a non-numeric value → `SourceDataError` naming the symbol and day.
- Windows: 1-minute data come at most 7 days per request (`max_days_per_request`) and only for the
  last ~30 days (`max_days_back`): a longer window is cut into chunks; a window reaching further
  back is clipped (logged, counted as `clipped_windows`) and one entirely older raises
  `SourceDataError` without a request.
- Real Yahoo answers 429 to clients without a browser-like User-Agent: one is sent by default.

Normalized frame (lib.ticks.frames.BARS_SCHEMA): `ts` = the bar open (UTC, whole minutes; a live
last bar stamped mid-minute is floored, and dropped if that minute is already there), `venue` =
`meta.exchangeName` as Yahoo writes it ("LSE", "NMS", "NYQ", "GER", …; "YAHOO" if absent),
`instrument` = the symbol as Yahoo writes it ("VOD.L", "AAPL"), prices in major units, `volume` in
shares. `amount` is an ESTIMATE — Yahoo sends no turnover and the contract requires the column:
volume × typical price (high + low + close) / 3, in the normalized currency. `trades` is null.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import struct
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import polars as pl

from marketdata_assets.lib.http import ApiClient, RetryPolicy, backoff_delay
from marketdata_assets.lib.ticks.frames import BARS_SCHEMA, UTC_US
from marketdata_assets.lib.http import SourceDataError, SourcePermissionError, SourceRequestError
from marketdata_assets.lib.ticks.frames import as_utc

log = logging.getLogger(__name__)

PROVIDER = "Yahoo Finance"
DEFAULT_BASE_URL = "https://query2.finance.yahoo.com"
CHART_PATH = "/v8/finance/chart/"
DEFAULT_USER_AGENT = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
                      "Chrome/124.0 Safari/537.36")
UTC = timezone.utc
QUOTE_FIELDS = ("open", "high", "low", "close", "volume")
PRICE_FIELDS = ("open", "high", "low", "close")
MAX_DENOISE_DECIMALS = 6

# Yahoo's minor-unit currency codes → (ISO currency, units per major unit)
MINOR_UNITS: dict[str, tuple[str, int]] = {
    "GBp": ("GBP", 100),
    "GBX": ("GBP", 100),
    "ZAc": ("ZAR", 100),
    "ZAC": ("ZAR", 100),
    "ILA": ("ILS", 100),
    "KWF": ("KWD", 1000),
}


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------

class YahooRequestError(SourceRequestError):
    """Yahoo rejected the request for one symbol (400 Bad Request, 422, another 4xx). Not retried."""

    def __init__(self, symbol: str, status: int, code: Any, description: str, *, request: str | None = None):
        self.symbol, self.description = symbol, description
        super().__init__(PROVIDER, symbol, status, code, description, request=request)


class YahooSymbolNotFound(YahooRequestError):
    """404 "Not Found": "No data found, symbol may be delisted". Not retried; other symbols go on."""


# --------------------------------------------------------------------------------------------
# Units and float32 noise
# --------------------------------------------------------------------------------------------

def _float32(x: float) -> float:
    return struct.unpack("<f", struct.pack("<f", x))[0]


def denoise_float32(x: float) -> tuple[float, int | None]:
    """(value, decimals): the shortest decimal with <= 6 places that float32 stores as `x`, when
    `x` is exactly a float32 value; else (x, None) unchanged."""
    if not math.isfinite(x) or abs(x) >= 3.0e38:
        return x, None
    f = _float32(x)
    if f != x:
        return x, None  # not a float32 value: a genuine float64, keep it
    for decimals in range(MAX_DENOISE_DECIMALS + 1):
        candidate = round(x, decimals)
        if _float32(candidate) == f:
            return candidate, decimals
    return x, None


def normalize_currency(currency: str | None) -> tuple[str | None, int]:
    """("GBP", 100) for "GBp"; (currency, 1) for a major-unit currency."""
    if currency in MINOR_UNITS:
        return MINOR_UNITS[currency]
    return currency, 1


# --------------------------------------------------------------------------------------------
# Parsing (pure: usable on captured responses)
# --------------------------------------------------------------------------------------------

@dataclass
class ChartData:
    symbol: str
    frame: pl.DataFrame  # BARS_SCHEMA, oldest first, prices in major units
    currency: str | None = None  # normalized: "GBP" for "GBp"
    quote_currency: str | None = None  # as Yahoo sent it
    price_divisor: int = 1
    exchange: str = "YAHOO"
    timezone: str | None = None  # meta.exchangeTimezoneName
    gmtoffset: int | None = None
    meta: dict = field(default_factory=dict)
    null_minutes: int = 0
    partial_rows: int = 0
    off_minute: int = 0  # timestamps not on a minute boundary (floored)
    duplicates: int = 0
    outside: int = 0  # rows outside the requested window (dropped)
    denoised: int = 0  # prices snapped from float32 noise
    requests: int = 0

    def counts(self) -> dict[str, int]:
        return {"null_minutes": self.null_minutes, "partial_rows": self.partial_rows,
                "off_minute": self.off_minute, "duplicates": self.duplicates, "outside": self.outside,
                "denoised": self.denoised}


def _load(payload: Mapping | str | bytes) -> Mapping:
    if isinstance(payload, (str, bytes, bytearray)):
        payload = json.loads(payload)
    if not isinstance(payload, Mapping):
        raise ValueError(f"expected a JSON object, got {type(payload).__name__}")  # noqa: TRY004 - a bad body
    return payload


def chart_error(payload: Any) -> tuple[str, str] | None:
    """(code, description) of `chart.error`, if the payload carries one."""
    if not isinstance(payload, Mapping):
        return None
    chart = payload.get("chart")
    error = chart.get("error") if isinstance(chart, Mapping) else None
    if isinstance(payload.get("finance"), Mapping):  # other Yahoo endpoints' envelope
        error = error or payload["finance"].get("error")
    if isinstance(error, Mapping):
        return str(error.get("code") or "error"), str(error.get("description") or "")
    return None


def _day_label(epoch: int | None) -> Any:
    return datetime.fromtimestamp(epoch, UTC).date() if epoch is not None else None


def parse_chart(payload: Mapping | str | bytes, symbol: str | None = None, *, start: int | None = None,
                end: int | None = None, status: int = 200) -> ChartData:
    """A chart v8 answer → `ChartData` (normalized frame + currency + drop counts).

    `start`/`end` (epoch seconds) keep bars with start <= ts < end. Raises `YahooSymbolNotFound` /
    `YahooRequestError` for an error payload, `SourceDataError` for a malformed one.
    """
    try:
        payload = _load(payload)
    except ValueError as error:
        raise SourceDataError(symbol, _day_label(start), f"the body is not a JSON object ({error})",
                                source=PROVIDER) from None
    error = chart_error(payload)
    if error is not None:
        code, description = error
        cls = YahooSymbolNotFound if (status == 404 or code == "Not Found") else YahooRequestError
        raise cls(symbol or "?", status, code, description)
    chart = payload.get("chart")
    results = chart.get("result") if isinstance(chart, Mapping) else None
    if not isinstance(results, list) or not results or not isinstance(results[0], Mapping):
        raise SourceDataError(symbol, _day_label(start), "chart.result is missing or empty", source=PROVIDER)
    result = results[0]
    meta = result.get("meta") if isinstance(result.get("meta"), Mapping) else {}
    sym = symbol or str(meta.get("symbol") or "")
    if not sym:
        raise SourceDataError(None, _day_label(start), "no symbol given and none in meta", source=PROVIDER)
    quote_currency = meta.get("currency")
    currency, divisor = normalize_currency(quote_currency)
    exchange = str(meta.get("exchangeName") or meta.get("fullExchangeName") or "YAHOO")
    data = ChartData(symbol=sym, frame=pl.DataFrame(schema=BARS_SCHEMA), currency=currency,
                     quote_currency=quote_currency, price_divisor=divisor, exchange=exchange,
                     timezone=meta.get("exchangeTimezoneName"), gmtoffset=meta.get("gmtoffset"), meta=dict(meta))
    timestamps = result.get("timestamp")
    if timestamps is None:
        return data  # no trades in the window
    if not isinstance(timestamps, list):
        raise SourceDataError(sym, _day_label(start), "`timestamp` is not a list", source=PROVIDER)
    if not timestamps:
        return data
    indicators = result.get("indicators")
    quotes = indicators.get("quote") if isinstance(indicators, Mapping) else None
    if not isinstance(quotes, list) or not quotes or not isinstance(quotes[0], Mapping):
        raise SourceDataError(sym, _day_label(start), "indicators.quote[0] is missing", source=PROVIDER)
    quote_block = quotes[0]
    columns: dict[str, list] = {}
    for name in QUOTE_FIELDS:
        values = quote_block.get(name)
        if not isinstance(values, list):
            raise SourceDataError(sym, _day_label(start), f"indicators.quote[0] has no {name!r} list "
                                                             f"(has {sorted(quote_block)})", source=PROVIDER)
        if len(values) != len(timestamps):
            raise SourceDataError(sym, _day_label(start), f"indicators.quote[0].{name} has {len(values)} values "
                                                             f"for {len(timestamps)} timestamps", source=PROVIDER)
        columns[name] = values

    ts_out: list[int] = []
    prices: dict[str, list[float]] = {k: [] for k in PRICE_FIELDS}
    volumes: list[float] = []
    seen: set[int] = set()
    for i, raw_ts in enumerate(timestamps):
        if isinstance(raw_ts, bool) or not isinstance(raw_ts, (int, float)) or not math.isfinite(raw_ts):
            raise SourceDataError(sym, _day_label(start), f"timestamp[{i}] is {raw_ts!r}, not epoch seconds",
                                    source=PROVIDER)
        epoch = int(raw_ts)
        day = _day_label(epoch)
        row = {}
        for name in QUOTE_FIELDS:
            value = columns[name][i]
            if value is None:
                row[name] = None
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise SourceDataError(sym, day, f"non-numeric {name} {value!r} at "
                                                  f"{datetime.fromtimestamp(epoch, UTC).isoformat()}", source=PROVIDER)
            row[name] = None if (isinstance(value, float) and math.isnan(value)) else float(value)
            if row[name] is not None and math.isinf(row[name]):
                raise SourceDataError(sym, day, f"infinite {name} at {epoch}", source=PROVIDER)
        nulls = sum(v is None for v in row.values())
        if nulls == len(QUOTE_FIELDS):
            data.null_minutes += 1
            continue
        if nulls:
            data.partial_rows += 1
            continue
        minute = epoch - epoch % 60
        if minute != epoch:
            data.off_minute += 1
        if (start is not None and minute < start) or (end is not None and minute >= end):
            data.outside += 1
            continue
        if minute in seen:
            data.duplicates += 1
            continue
        seen.add(minute)
        ts_out.append(minute)
        for name in PRICE_FIELDS:
            value, decimals = denoise_float32(row[name])
            if decimals is not None:
                data.denoised += value != row[name]
            if divisor != 1:
                value = value / divisor
                if decimals is not None:  # exact decimal shift, no binary noise left over
                    value = round(value, decimals + round(math.log10(divisor)))
            prices[name].append(value)
        volumes.append(row["volume"])
    if not ts_out:
        return data
    frame = pl.DataFrame({
        "ts": pl.Series(ts_out, dtype=pl.Int64) * 1_000_000,
        "open": pl.Series(prices["open"], dtype=pl.Float64), "high": pl.Series(prices["high"], dtype=pl.Float64),
        "low": pl.Series(prices["low"], dtype=pl.Float64), "close": pl.Series(prices["close"], dtype=pl.Float64),
        "volume": pl.Series(volumes, dtype=pl.Float64),
    })
    frame = frame.with_columns(
        pl.col("ts").cast(UTC_US),
        pl.lit(exchange, dtype=pl.Utf8).alias("venue"),
        pl.lit(sym, dtype=pl.Utf8).alias("instrument"),
        (pl.col("volume") * (pl.col("high") + pl.col("low") + pl.col("close")) / 3).round(6).alias("amount"),
        pl.lit(None, dtype=pl.Int64).alias("trades"),
    ).select(list(BARS_SCHEMA)).sort("ts")
    data.frame = frame
    return data


def merge_chart_data(parts: list[ChartData], symbol: str) -> ChartData:
    """Chunks of one symbol → one ChartData (bars deduplicated on ts, counts summed)."""
    if not parts:
        return ChartData(symbol=symbol, frame=pl.DataFrame(schema=BARS_SCHEMA))
    first = parts[0]
    currencies = {p.quote_currency for p in parts if p.quote_currency}
    if len(currencies) > 1:
        raise SourceDataError(symbol, None, f"the quote currency changed between requests: {sorted(currencies)}",
                                source=PROVIDER)
    frame = pl.concat([p.frame for p in parts], how="vertical")
    before = frame.height
    frame = frame.unique(subset=["ts"], keep="first", maintain_order=True).sort("ts")
    merged = ChartData(symbol=symbol, frame=frame, currency=first.currency, quote_currency=first.quote_currency,
                       price_divisor=first.price_divisor, exchange=first.exchange, timezone=first.timezone,
                       gmtoffset=parts[-1].gmtoffset, meta=parts[-1].meta)
    for name in ("null_minutes", "partial_rows", "off_minute", "duplicates", "outside", "denoised", "requests"):
        setattr(merged, name, sum(getattr(p, name) for p in parts))
    merged.duplicates += before - frame.height
    return merged


# --------------------------------------------------------------------------------------------
# The client
# --------------------------------------------------------------------------------------------

class YahooChartClient(ApiClient):
    """Async chart v8 client on the shared HTTP policy (`ApiClient`: 2000 requests/minute by
    default, `max_concurrency` in flight, 429 (plain text) / 5xx / timeouts retried with backoff).

    `async with YahooChartClient(base_url) as yahoo: frame = await yahoo.minute_bars("VOD.L",
    date(2025, 6, 2), date(2025, 6, 6))`.
    """

    api_name = PROVIDER
    name = "YAHOO"  # the provider; each bar's `venue` is meta.exchangeName

    def __init__(self, base_url: str = DEFAULT_BASE_URL, *, requests_per_minute: float = 2000,
                 max_concurrency: int = 8, timeout_s: float = 30.0, retry: RetryPolicy | None = None,
                 max_days_per_request: float = 7.0, max_days_back: float | None = 30.0,
                 clock: Callable[[], float] = time.time, user_agent: str = DEFAULT_USER_AGENT,
                 include_pre_post: bool = False, rng=None):
        super().__init__(base_url, requests_per_minute=requests_per_minute, max_concurrency=max_concurrency,
                         timeout_s=timeout_s, retry=retry, rng=rng,
                         headers={"User-Agent": user_agent, "Accept": "application/json"})
        self.max_days_per_request = float(max_days_per_request)
        self.max_days_back = max_days_back
        self.clock = clock
        self.include_pre_post = include_pre_post
        self.quality: dict[str, Counter] = {}
        self.instruments: dict[str, dict[str, Any]] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r})"

    # ---- one request ---------------------------------------------------------------------------

    def chart_path(self, symbol: str) -> str:
        return CHART_PATH + quote(symbol, safe="=")  # "^FTSE" → "%5EFTSE"; "EURUSD=X" kept

    async def chart(self, symbol: str, period1: int, period2: int) -> ChartData:
        """One request for [period1, period2) (epoch seconds, at most `max_days_per_request`)."""
        path = self.chart_path(symbol)
        params = {"interval": "1m", "period1": str(int(period1)), "period2": str(int(period2)),
                  "includePrePost": "true" if self.include_pre_post else "false"}
        request = f"GET {path}?period1={params['period1']}&period2={params['period2']}"
        day = _day_label(period1)
        bad_bodies = 0
        while True:
            response = await self.request("GET", path, params=params)  # 429/5xx: retried, then ApiError
            status = response.status_code
            if status in (401, 403):
                raise SourcePermissionError(PROVIDER, status, response.text[:200].strip(), request=request)
            if status != 200:
                error = None
                try:
                    error = chart_error(response.json())
                except ValueError:
                    pass
                code, description = error or (None, response.text[:200].strip())
                cls = YahooSymbolNotFound if status == 404 else YahooRequestError
                raise cls(symbol, status, code, description, request=request)
            try:
                payload = response.json()
                if not isinstance(payload, dict):
                    raise ValueError(f"a JSON {type(payload).__name__}, not an object")  # noqa: TRY004
            except ValueError as error:
                bad_bodies += 1
                if bad_bodies > self.retry.max_retries:
                    raise SourceDataError(symbol, day, f"the body is not valid JSON after {bad_bodies} attempts "
                                                         f"({error}); starts with {response.text[:80]!r}",
                                            source=PROVIDER, request=request) from None
                self.stats.retries += 1
                await asyncio.sleep(backoff_delay(bad_bodies - 1, self.retry.backoff_base_s,
                                                  self.retry.backoff_max_s, self.rng))
                continue
            data = parse_chart(payload, symbol, start=int(period1), end=int(period2), status=status)
            data.requests = 1
            return data

    # ---- windows -------------------------------------------------------------------------------

    def windows(self, start: datetime, end: datetime, symbol: str = "", *,
                needed_from: datetime | None = None) -> list[tuple[int, int]]:
        """[start, end) → request windows (epoch seconds) of at most `max_days_per_request`,
        clipped to Yahoo's 1-minute horizon (`max_days_back`, with 10 minutes of slack). The
        clipping is logged and counted when it cuts data from `needed_from` on (default `start`;
        `minute_bars` pads its window and passes the first requested day)."""
        lo, hi = math.floor(as_utc(start).timestamp()), math.ceil(as_utc(end).timestamp())
        now = self.clock()
        hi = min(hi, int(now) + 60)
        if self.max_days_back is not None:
            horizon = int(now - self.max_days_back * 86400 + 600)
            if hi <= horizon:
                raise SourceDataError(symbol or None, as_utc(needed_from or start).date(),
                                        f"Yahoo keeps 1-minute bars for the last {self.max_days_back:g} days only; "
                                        f"the window ends {as_utc(end).isoformat()}, before "
                                        f"{datetime.fromtimestamp(horizon, UTC).isoformat()}", source=PROVIDER)
            if lo < horizon and as_utc(needed_from or start).timestamp() < horizon:
                log.warning("%s %s: 1-minute bars exist for the last %g days only: window start %s clipped to %s",
                            PROVIDER, symbol, self.max_days_back, datetime.fromtimestamp(lo, UTC).isoformat(),
                            datetime.fromtimestamp(horizon, UTC).isoformat())
                self._count(symbol, clipped_windows=1)
            lo = max(lo, horizon)
        step = int(self.max_days_per_request * 86400)
        out, cursor = [], lo
        while cursor < hi:
            out.append((cursor, min(hi, cursor + step)))
            cursor += step
        return out

    def _count(self, symbol: str, **counts: int) -> None:
        counter = self.quality.setdefault(symbol, Counter())
        for key, value in counts.items():
            if value:
                counter[key] += value

    async def fetch_bars(self, symbol: str, start: datetime, end: datetime, *,
                         needed_from: datetime | None = None) -> ChartData:
        """Bars opening in [start, end) (aware datetimes, naive = UTC), chunked and merged, with
        the currency, exchange and drop counts."""
        windows = self.windows(start, end, symbol, needed_from=needed_from)
        parts = [await self.chart(symbol, p1, p2) for p1, p2 in windows]
        data = merge_chart_data(parts, symbol)
        self._count(symbol, requests=data.requests, **data.counts())
        if data.null_minutes or data.partial_rows:
            log.info("%s %s: dropped %d null minutes and %d partially null rows", PROVIDER, symbol,
                     data.null_minutes, data.partial_rows)
        if parts:
            self.instruments[symbol] = {"currency": data.currency, "quote_currency": data.quote_currency,
                                        "price_divisor": data.price_divisor, "venue": data.exchange,
                                        "timezone": data.timezone}
        return data

    async def bars_1m(self, symbol: str, start: datetime, end: datetime) -> pl.DataFrame:
        """`VenueClient` form: the bars opening in [start, end)."""
        return (await self.fetch_bars(symbol, start, end)).frame

    async def minute_bars(self, symbol: str, first_day: date, last_day: date | None = None) -> pl.DataFrame:
        """The bars of the exchange's trading days first_day..last_day (inclusive, in the
        exchange's own calendar: `meta.exchangeTimezoneName`), oldest first."""
        last_day = last_day or first_day
        # every zone is within UTC-12..UTC+14: one UTC day of padding each side covers the local days
        start = datetime.combine(first_day - timedelta(days=1), datetime.min.time(), tzinfo=UTC)
        end = datetime.combine(last_day + timedelta(days=2), datetime.min.time(), tzinfo=UTC)
        data = await self.fetch_bars(symbol, start, end,
                                     needed_from=datetime.combine(first_day, datetime.min.time(), tzinfo=UTC))
        tz_name = data.timezone or "UTC"
        try:
            ZoneInfo(tz_name)
        except (ZoneInfoNotFoundError, ValueError):
            raise SourceDataError(symbol, first_day, f"unknown exchangeTimezoneName {tz_name!r}",
                                    source=PROVIDER) from None
        local_day = pl.col("ts").dt.convert_time_zone(tz_name).dt.date()
        return data.frame.filter(local_day.is_between(first_day, last_day))

    def metadata(self) -> dict[str, Any]:
        """Request counters and data-quality counts, for materialization metadata."""
        totals: Counter = Counter()
        for counter in self.quality.values():
            totals.update(counter)
        return {**self.stats.as_metadata(), "dropped_null_minutes": totals.get("null_minutes", 0),
                "dropped_partial_rows": totals.get("partial_rows", 0), "denoised_prices": totals.get("denoised", 0),
                "clipped_windows": totals.get("clipped_windows", 0)}
