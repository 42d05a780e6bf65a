"""Yahoo Finance chart v8: 1-minute bars of stocks as normalized `BARS_SCHEMA` frames. The answer's
shape, what `parse_chart` undoes (float32 noise, minor units, null minutes, mid-minute stamps) and what
it refuses: docs/ticks.md, "Yahoo chart v8". What every bar keeps is declared once (`BAR_RULES`) and
checked on the page's columns. `YahooChartClient` asks through the shared `ApiClient.call` (`ERRORS`)
in windows of at most 7 days within the ~30 days Yahoo keeps 1-minute bars for.

Over 500 lines: everything about one source in one module (the chart parser, its units and
exchange table + the client).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import struct
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any
from urllib.parse import quote

import msgspec
import numpy as np
import polars as pl

from marketdata_assets.core.http import (
    ApiClient,
    ErrorCategory,
    ErrorTable,
    Limits,
    Page,
    RetryPolicy,
    SourceDataError,
    SourceError,
    SourcePermissionError,
    SourceRequestError,
    describe_request,
)
from marketdata_assets.datasets.declared import Rule, check_at, objects
from marketdata_assets.datasets.frames import BARS_SCHEMA, UTC_US, as_utc
from marketdata_assets.datasets.wire import count_quality, note_conversion, note_dropped

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
EXACT_BELOW = 1e9  # prices the columns snap and divide exactly as `_major_unit` does (`_major_units`)

# Yahoo's minor-unit currency codes → (ISO currency, units per major unit)
MINOR_UNITS: dict[str, tuple[str, int]] = {
    "GBp": ("GBP", 100),
    "GBX": ("GBP", 100),
    "ZAc": ("ZAR", 100),
    "ZAC": ("ZAR", 100),
    "ILA": ("ILS", 100),
    "KWF": ("KWD", 1000),
}
# Where Yahoo quotes (some) instruments in a minor unit: the unit of a bar there depends on
# `meta.currency`, so an answer without a currency it knows is not read (symbol suffix, exchangeName).
MINOR_UNIT_SUFFIXES = {".L": "London", ".IL": "London", ".JO": "Johannesburg", ".TA": "Tel Aviv", ".KW": "Kuwait"}
MINOR_UNIT_EXCHANGES = {"LSE": "London", "IOB": "London", "JNB": "Johannesburg", "TLV": "Tel Aviv", "KUW": "Kuwait"}
EPOCH_SECONDS = (100_000_000, 10_000_000_000)  # 1973 .. 2286: milliseconds would be far above


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------

class YahooRequestError(SourceRequestError):
    """Yahoo rejected the request for one instrument (400 Bad Request, 422, another 4xx). Not retried."""

    def __init__(self, instrument: str, status: int, code: Any, description: str, *, request: str | None = None):
        self.instrument, self.description = instrument, description
        super().__init__(PROVIDER, instrument, status, code, description, request=request)


class YahooInstrumentNotFound(YahooRequestError):
    """404 "Not Found": "No data found, instrument may be delisted". Not retried; other instruments go on."""


# What Yahoo's error answers mean: `chart.error` (or `finance.error`) `{code, description}` with the
# status, or a plain-text/HTML body classified by its status alone (a 429 "Too Many Requests").
ERRORS = ErrorTable(
    exact={"Not Found": "not_found", "Bad Request": "rejected", "Unprocessable Entity": "rejected",
           "Unauthorized": "permission", "Forbidden": "permission"},
    status={400: "rejected", 401: "permission", 403: "permission", 404: "not_found", 422: "rejected",
            429: "rate_limited"},
)
LIMITS = Limits(requests_per_minute=2000, max_concurrency=8)


def chart_error(payload: Any) -> tuple[str, str] | None:
    """(code, description) of `chart.error` (or `finance.error`), None for an answer without one."""
    if not isinstance(payload, Mapping):
        return None
    chart = payload.get("chart")
    error = chart.get("error") if isinstance(chart, Mapping) else None
    if isinstance(payload.get("finance"), Mapping):  # the envelope of Yahoo's other endpoints (401/403)
        error = error or payload["finance"].get("error")
    if isinstance(error, Mapping):
        return str(error.get("code") or "error"), str(error.get("description") or "")
    return None


def yahoo_error(category: ErrorCategory, *, status: int, code: Any, message: str, instrument: str,
                request: str | None = None) -> SourceError:
    """The exception an error answer about `instrument` stands for (`category` from `ERRORS`)."""
    if category in ("permission", "unauthorized"):
        detail = f"{instrument}: code {code}: {message}" if code is not None else f"{instrument}: {message}"
        return SourcePermissionError(PROVIDER, status, detail, request=request)
    cls = YahooInstrumentNotFound if category == "not_found" else YahooRequestError
    return cls(instrument, status, code, message, request=request)


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
# What `chart.result[0]` holds (the fields read; the rest are ignored)
# --------------------------------------------------------------------------------------------

class ChartMeta(msgspec.Struct):
    """`meta`: the fields read, as sent (`Any`: what a value of another type means is said where it is
    read; the whole `meta` is kept in `ChartData.meta`)."""

    symbol: Any = None                # "VOD.L": the instrument, when none was given
    exchangeName: Any = None          # "LSE", "NMS": the bars' venue
    fullExchangeName: Any = None      # "LSE", "NasdaqGS": the venue without an exchangeName
    currency: Any = None              # the prices' unit: ISO 4217 ("USD") or a minor unit (`MINOR_UNITS`: "GBp" pence)
    dataGranularity: Any = None       # "1m": must be the interval asked for (absent: not said)
    exchangeTimezoneName: Any = None  # "Europe/London": ChartData.timezone
    gmtoffset: Any = None             # seconds east of UTC at the answer's time: ChartData.gmtoffset


# --------------------------------------------------------------------------------------------
# Parsing (pure: usable on captured responses)
# --------------------------------------------------------------------------------------------

@dataclass
class ChartData:
    instrument: str
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
    no_currency: int = 0  # answers without meta.currency where the unit does not depend on it
    requests: int = 0
    dropped_on: Counter = field(default_factory=Counter)  # (DROP_REASONS reason, UTC day) -> rows dropped

    def counts(self) -> dict[str, int]:
        return {"null_minutes": self.null_minutes, "partial_rows": self.partial_rows,
                "off_minute": self.off_minute, "duplicates": self.duplicates, "outside": self.outside,
                "denoised": self.denoised, "no_currency": self.no_currency}


def _load(payload: Mapping | str | bytes) -> Mapping:
    if isinstance(payload, (str, bytes, bytearray)):
        payload = json.loads(payload)
    if not isinstance(payload, Mapping):
        raise ValueError(f"expected a JSON object, got {type(payload).__name__}")  # noqa: TRY004 - a bad body
    return payload


def _day_label(epoch: int | None) -> date | None:
    return datetime.fromtimestamp(epoch, UTC).date() if epoch is not None else None


def minor_unit_market(instrument: str, exchange: Any) -> str | None:
    """The market's name where Yahoo may quote `instrument` in a minor unit (pence, cents, agorot,
    fils), None elsewhere."""
    suffix = instrument[instrument.rfind("."):].upper() if "." in instrument else ""
    return MINOR_UNIT_SUFFIXES.get(suffix) or MINOR_UNIT_EXCHANGES.get(str(exchange or "").upper())


def known_currency(currency: Any) -> bool:
    """A currency code the units can be read from: a minor-unit code, or an ISO 4217 code."""
    return isinstance(currency, str) and (currency in MINOR_UNITS or (len(currency) == 3 and currency.isalpha()
                                                                       and currency.isupper()))


def parse_chart(payload: Mapping | str | bytes, instrument: str | None = None, *, start: int | None = None,
                end: int | None = None, status: int = 200, request: str | None = None,
                interval: str = "1m") -> ChartData:
    """A chart v8 answer (decoded, or the body as sent) → `ChartData` (normalized frame + currency
    + drop counts).

    `start`/`end` (epoch seconds) keep bars with start <= ts < end. An error payload raises what
    `ERRORS` makes of it with `status` (`YahooInstrumentNotFound`, `YahooRequestError`, ...), a malformed
    one `SourceDataError`; both name the instrument and `request` (the request it answered) when given.
    So is an answer whose unit is unknown (no `meta.currency` on a minor-unit market) or whose
    `meta.dataGranularity` is not `interval`.
    """
    page = Page(PROVIDER, instrument, _day_label(start), request)
    result = _chart_result(payload, page, status)
    data, page = _chart_data(result, page, interval)
    timestamps = result.get("timestamp")
    if timestamps is None:
        return data  # no trades in the window
    if not isinstance(timestamps, list):
        raise page.error("`timestamp` is not a list")
    if timestamps:
        _bars_into(data, result, timestamps, start, end, page)
    return data


def _chart_result(payload: Mapping | str | bytes, page: Page, status: int) -> Mapping:
    """chart.result[0], the error answers raised."""
    try:
        payload = _load(payload)
    except ValueError as error:
        raise page.error(f"the body is not a JSON object ({error})") from None
    error = chart_error(payload)
    if error is not None:
        code, description = error
        raise yahoo_error(ERRORS.classify(status, code, description), status=status, code=code,
                          message=description, instrument=page.instrument or "?", request=page.request)
    chart = payload.get("chart")
    results = chart.get("result") if isinstance(chart, Mapping) else None
    if not isinstance(results, list) or not results or not isinstance(results[0], Mapping):
        raise page.error("chart.result is missing or empty")
    return results[0]


def _chart_data(result: Mapping, page: Page, interval: str) -> tuple[ChartData, Page]:
    """An empty `ChartData` with the answer's exchange and price unit (a minor unit is divided out), and
    the page naming its instrument."""
    raw = dict(result["meta"]) if isinstance(result.get("meta"), Mapping) else {}
    meta = msgspec.convert(raw, ChartMeta)
    inst = page.instrument or str(meta.symbol or "")
    if not inst:
        raise page.error("no instrument given and none in meta")
    page = dataclasses.replace(page, instrument=inst)
    if meta.dataGranularity is not None and meta.dataGranularity != interval:
        raise page.error(f"meta.dataGranularity is {meta.dataGranularity!r} where {interval!r} bars were asked "
                         f"for: not {interval} bars")
    quote_currency, no_currency = meta.currency, 0
    if not known_currency(quote_currency):
        market = minor_unit_market(inst, meta.exchangeName)
        if market is not None:
            said = "no meta.currency" if quote_currency in (None, "") else f"meta.currency {quote_currency!r}"
            raise page.error(f"{said}: on {market} Yahoo quotes prices in a major or a minor unit (GBp pence vs "
                             "GBP pounds), so the unit of these bars is unknown; not stored with a guessed unit")
        quote_currency, no_currency = None, 1  # the prices are as sent: no minor unit here
    currency, divisor = normalize_currency(quote_currency)
    if divisor != 1:
        note_conversion(inst, f"prices {quote_currency} -> {currency} (/{divisor})")
    data = ChartData(instrument=inst, frame=pl.DataFrame(schema=BARS_SCHEMA), currency=currency,
                     quote_currency=quote_currency, price_divisor=divisor,
                     exchange=str(meta.exchangeName or meta.fullExchangeName or "YAHOO"),
                     timezone=meta.exchangeTimezoneName, gmtoffset=meta.gmtoffset, meta=raw, no_currency=no_currency)
    return data, page


def _bars_into(data: ChartData, result: Mapping, timestamps: list, start: int | None, end: int | None,
               page: Page) -> None:
    """The bars into `data`: `BAR_RULES` checked on the page's columns (a breach told on the page of
    its bar's day), then null, partly null, off-window and repeated minutes dropped and counted."""
    cols = _bar_columns(timestamps, _quote_columns(result, len(timestamps), page))
    check_at(cols, BAR_RULES, "timestamp[{i}]", lambda i, bar: dataclasses.replace(
        page, day=_day_label(int(bar["epoch"]))) if bar["seconds"] else page)
    epoch, minute = pl.col("epoch"), pl.col("minute")
    bars = pl.DataFrame({"epoch": cols["epoch"], **{name: cols[f"{name} value"] for name in QUOTE_FIELDS}})
    bars = bars.with_columns(pl.col(QUOTE_FIELDS).fill_nan(None), minute=epoch - epoch % 60,
                             day=pl.from_epoch("epoch", "s").dt.date())
    nulls = pl.sum_horizontal(pl.col(QUOTE_FIELDS).is_null())
    inside = (minute >= start if start is not None else pl.lit(True)) & (minute < end if end is not None else True)
    bars = bars.with_columns(off=(nulls == 0) & (minute != epoch), dropped=(
        pl.when(nulls == len(QUOTE_FIELDS)).then(pl.lit("null_rows")).when(nulls > 0).then(pl.lit("partial_rows"))
        .when(~inside).then(pl.lit("outside_window"))
        .when(~pl.struct(minute, nulls == 0).is_first_distinct()).then(pl.lit("duplicates"))))
    data.off_minute += bars["off"].sum()
    for (reason, day), rows in Counter(bars.filter(pl.col("dropped").is_not_null()).select("dropped", "day")
                                       .iter_rows()).items():
        data.dropped_on[(reason, day)] += rows
        setattr(data, _COUNTED[reason], getattr(data, _COUNTED[reason]) + rows)
    kept = bars.filter(pl.col("dropped").is_null())
    if kept.height:
        data.frame = _bars_frame(_in_major_units(data, kept), data.exchange, data.instrument)


def _bar_columns(timestamps: list, values: dict[str, list]) -> dict[str, np.ndarray]:
    """The page's columns as sent, and what `BAR_RULES` read: "seconds" (the timestamp is epoch
    seconds), "epoch" (it, whole; 0 where it is not), "<field> number" (a number or null), "<field>
    value" (the double; NaN for null; inf for an int too large for one)."""
    n = len(timestamps)
    seconds = np.fromiter(map(_is_seconds, timestamps), bool, n)
    cols = {"timestamp": objects(timestamps), "seconds": seconds,
            "epoch": np.fromiter((int(t) if ok else 0 for t, ok in zip(timestamps, seconds)), np.int64, n)}
    for name in QUOTE_FIELDS:
        cols[name] = objects(values[name])
        cols[f"{name} number"], cols[f"{name} value"] = _numbers(values[name])
    return cols


def _is_seconds(value: Any) -> bool:
    return (not isinstance(value, bool) and isinstance(value, (int, float))
            and EPOCH_SECONDS[0] <= value < EPOCH_SECONDS[1])


def _numbers(values: list) -> tuple[np.ndarray, np.ndarray]:
    """(number or null, the double) of each value."""
    n = len(values)
    if set(map(type, values)) <= {float, int, type(None)}:
        try:
            return np.ones(n, bool), np.array(values, np.float64)
        except OverflowError:
            pass
    numeric = np.fromiter((v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in values),
                          bool, n)
    return numeric, np.fromiter((_double(v) if ok and v is not None else math.nan for v, ok in zip(values, numeric)),
                                np.float64, n)


def _double(value: float) -> float:
    try:
        return float(value)
    except OverflowError:
        return math.inf


def _not_seconds(what: str, bar: dict) -> str:
    value = bar["timestamp"]
    if isinstance(value, int) and not isinstance(value, bool):
        math.isfinite(value)  # an int too large for a double raises OverflowError, as the row reader did
    return f"{what} is {value!r}, not epoch seconds"


def _at(bar: dict) -> str:
    return datetime.fromtimestamp(int(bar["epoch"]), UTC).isoformat()


def _infinite(name: str) -> Callable[[str, dict], str]:
    def says(what: str, bar: dict) -> str:
        float(bar[name])  # an int too large for a double raises OverflowError, as the row reader did
        return f"infinite {name} at {bar['epoch']}"
    return says


def _value_rules(name: str) -> tuple[Rule, Rule]:
    """A bar's `name`: a number (or null: a minute without trades), not infinite (NaN is null)."""
    return (Rule(name, lambda c: c[f"{name} number"],
                 lambda what, bar: f"non-numeric {name} {bar[name]!r} at {_at(bar)}"),
            Rule(name, lambda c: ~np.isinf(c[f"{name} value"]), _infinite(name)))


# What every bar keeps, in the order a breach is told: its timestamp epoch seconds, numbers (or null)
# that are not infinite, a volume not negative.
BAR_RULES = (Rule("timestamp", lambda c: c["seconds"], _not_seconds),
             *(rule for name in QUOTE_FIELDS for rule in _value_rules(name)),
             Rule("volume", lambda c: ~(c["volume value"] < 0),
                  lambda what, bar: f"volume {bar['volume value']:g} at {_at(bar)}, negative"))


# The row drops `_bars_into` counts: ChartData's name of each.
_COUNTED = {"null_rows": "null_minutes", "partial_rows": "partial_rows", "outside_window": "outside",
            "duplicates": "duplicates"}


def _in_major_units(data: ChartData, kept: pl.DataFrame) -> pl.DataFrame:
    """The kept bars' prices snapped from float32 noise and in the major unit: on the columns
    (`_major_units`) where that is exact, one by one (`_major_unit`) elsewhere."""
    prices = kept.select(PRICE_FIELDS).to_numpy()
    with np.errstate(over="ignore", invalid="ignore"):
        major, snapped = _major_units(prices, data.price_divisor)
    for i, j in zip(*np.nonzero(~((prices > 0) & (prices < EXACT_BELOW))), strict=True):
        major[i, j], snapped[i, j] = _major_unit(float(prices[i, j]), data.price_divisor)
    data.denoised += int(snapped.sum())
    return kept.with_columns(pl.Series(name, major[:, i]) for i, name in enumerate(PRICE_FIELDS))


def _major_units(prices: np.ndarray, divisor: int) -> tuple[np.ndarray, np.ndarray]:
    """`_major_unit` of finite prices below `EXACT_BELOW`: (the prices in the major unit, snapped or
    not), the same doubles. A float32 value has 24 significant bits, so price × 10**d (d <= 6) and
    its rounding `whole` are exact, whole / 10**d is the double round(price, d) gives, and
    round(that / divisor, d + log10(divisor)) is whole / 10**(d + log10(divisor)) while whole < 2**50.
    (numpy, not Polars: Polars divides by a constant as a product with its inverse, a different double.)"""
    f32, shift = prices.astype(np.float32), round(math.log10(divisor))
    left = f32.astype(np.float64) == prices  # float32 values, not snapped yet
    major, clean = prices / divisor, prices.copy()
    for decimals in range(MAX_DENOISE_DECIMALS + 1):
        whole = np.rint(prices * 10.0**decimals)
        candidate = whole / 10.0**decimals
        fits = left & (candidate.astype(np.float32) == f32)
        clean[fits], major[fits] = candidate[fits], whole[fits] / 10.0 ** (decimals + shift)
        left &= ~fits
    return major, clean != prices


def _quote_columns(result: Mapping, rows: int, page: Page) -> dict[str, list]:
    """indicators.quote[0]'s lists, one per QUOTE_FIELDS name, each as long as `timestamp`."""
    indicators = result.get("indicators")
    quotes = indicators.get("quote") if isinstance(indicators, Mapping) else None
    if not isinstance(quotes, list) or not quotes or not isinstance(quotes[0], Mapping):
        raise page.error("indicators.quote[0] is missing")
    quote_block = quotes[0]
    columns: dict[str, list] = {}
    for name in QUOTE_FIELDS:
        values = quote_block.get(name)
        if not isinstance(values, list):
            raise page.error(f"indicators.quote[0] has no {name!r} list (has {sorted(quote_block)})")
        if len(values) != rows:
            raise page.error(f"indicators.quote[0].{name} has {len(values)} values for {rows} timestamps")
        columns[name] = values
    return columns


def _major_unit(price: float, divisor: int) -> tuple[float, bool]:
    """`price` snapped from float32 noise and divided into the major unit; True if it was snapped."""
    value, decimals = denoise_float32(price)
    snapped = value != price
    if divisor != 1:
        value = value / divisor
        if decimals is not None:  # exact decimal shift, no binary noise left over
            value = round(value, decimals + round(math.log10(divisor)))
    return value, snapped


def _bars_frame(bars: pl.DataFrame, exchange: str, instrument: str) -> pl.DataFrame:
    """Bars (`minute` in epoch seconds, the prices in the major unit, volume) in `BARS_SCHEMA`, oldest first."""
    return bars.with_columns(
        (pl.col("minute") * 1_000_000).cast(UTC_US).alias("ts"),
        pl.lit(exchange, dtype=pl.Utf8).alias("venue"),
        pl.lit(instrument, dtype=pl.Utf8).alias("instrument"),
        (pl.col("volume") * (pl.col("high") + pl.col("low") + pl.col("close")) / 3).round(6).alias("amount"),
        pl.lit(None, dtype=pl.Int64).alias("trades"),
    ).select(list(BARS_SCHEMA)).sort("ts")


def merge_chart_data(parts: list[ChartData], instrument: str) -> ChartData:
    """Chunks of one instrument → one ChartData (bars deduplicated on ts, counts summed)."""
    if not parts:
        return ChartData(instrument=instrument, frame=pl.DataFrame(schema=BARS_SCHEMA))
    first = parts[0]
    currencies = {p.quote_currency for p in parts if p.quote_currency}
    if len(currencies) > 1:
        raise SourceDataError(instrument, None, f"the quote currency changed between requests: {sorted(currencies)}",
                              source=PROVIDER)
    everything = pl.concat([p.frame for p in parts], how="vertical")
    before = everything.height
    frame = everything.unique(subset=["ts"], keep="first", maintain_order=True).sort("ts")
    merged = ChartData(instrument=instrument, frame=frame, currency=first.currency, quote_currency=first.quote_currency,
                       price_divisor=first.price_divisor, exchange=first.exchange, timezone=first.timezone,
                       gmtoffset=parts[-1].gmtoffset, meta=parts[-1].meta)
    for name in ("null_minutes", "partial_rows", "off_minute", "duplicates", "outside", "denoised", "no_currency",
                 "requests"):
        setattr(merged, name, sum(getattr(p, name) for p in parts))
    for part in parts:
        merged.dropped_on.update(part.dropped_on)
    merged.duplicates += before - frame.height
    if before > frame.height:  # overlapping chunks: the repeats, by day
        repeats = Counter(everything["ts"].dt.date().to_list())
        repeats.subtract(Counter(frame["ts"].dt.date().to_list()))
        merged.dropped_on.update({("duplicates", day): n for day, n in repeats.items() if n})
    return merged


# --------------------------------------------------------------------------------------------
# The client
# --------------------------------------------------------------------------------------------

class YahooChartClient(ApiClient):
    """Chart v8 client on the shared policy (`ERRORS`, `LIMITS`; a body that is not JSON is retried).

    `async with YahooChartClient(base_url) as yahoo: data = await yahoo.fetch_bars("VOD.L", start, end)`.
    """

    api_name = PROVIDER
    ERRORS = ERRORS
    LIMITS = LIMITS
    bad_body = "retry"  # a 200 cut short by a proxy: asked again, then a SourceDataError

    def __init__(self, base_url: str = DEFAULT_BASE_URL, *, requests_per_minute: float | None = None,
                 max_concurrency: int | None = None, timeout_s: float = 30.0, retry: RetryPolicy | None = None,
                 max_days_per_request: float = 7.0, max_days_back: float | None = 30.0,
                 clock: Callable[[], float] = time.time, user_agent: str = DEFAULT_USER_AGENT, rng=None):
        # Yahoo answers 429 to clients without a browser-like User-Agent.
        super().__init__(base_url, requests_per_minute=requests_per_minute, max_concurrency=max_concurrency,
                         timeout_s=timeout_s, retry=retry, rng=rng,
                         headers={"User-Agent": user_agent, "Accept": "application/json"})
        self.max_days_per_request = float(max_days_per_request)
        self.max_days_back = max_days_back
        self.clock = clock
        self.quality: dict[str, Counter] = {}  # instrument -> drop counts, requests, clipped windows

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r})"

    # ---- what Yahoo's answers mean -------------------------------------------------------------

    def error_fields(self, payload: Any) -> tuple[Any, str] | None:
        return chart_error(payload)

    def make_error(self, category: ErrorCategory, *, status: int, code: Any, message: str, page: Page) -> SourceError:
        if category in ("banned", "quota", "data"):
            return super().make_error(category, status=status, code=code, message=message, page=page)
        return yahoo_error(category, status=status, code=code, message=message, instrument=page.instrument or "?",
                           request=page.request)

    # ---- one request ---------------------------------------------------------------------------

    async def chart(self, instrument: str, period1: int, period2: int) -> ChartData:
        """One request for [period1, period2) (epoch seconds, at most `max_days_per_request`)."""
        path = CHART_PATH + quote(instrument, safe="=")  # "^FTSE" → "%5EFTSE"; "EURUSD=X" kept
        params = {"interval": "1m", "period1": str(int(period1)), "period2": str(int(period2)),
                  "includePrePost": "false"}
        page = Page(PROVIDER, instrument, _day_label(period1), describe_request("GET", path, params))
        # endpoint "chart": a 401/403 stops every instrument's requests, not only this path's
        payload = await self.call("GET", path, page=page, endpoint="chart", params=params)
        data = parse_chart(payload, instrument, start=int(period1), end=int(period2), request=page.request)
        data.requests = 1
        return data

    # ---- windows -------------------------------------------------------------------------------

    def windows(self, start: datetime, end: datetime, instrument: str = "") -> list[tuple[int, int]]:
        """[start, end) → request windows (epoch seconds) of at most `max_days_per_request`,
        clipped to Yahoo's 1-minute horizon (`max_days_back`, with 10 minutes of slack; the
        clipping is logged and counted as `clipped_windows`)."""
        lo, hi = math.floor(as_utc(start).timestamp()), math.ceil(as_utc(end).timestamp())
        now = self.clock()
        hi = min(hi, int(now) + 60)
        if self.max_days_back is not None:
            horizon = int(now - self.max_days_back * 86400 + 600)
            if hi <= horizon:
                raise SourceDataError(instrument or None, as_utc(start).date(),
                                      f"Yahoo keeps 1-minute bars for the last {self.max_days_back:g} days only; "
                                      f"the window ends {as_utc(end).isoformat()}, before "
                                      f"{datetime.fromtimestamp(horizon, UTC).isoformat()}", source=PROVIDER)
            if lo < horizon:
                log.warning("%s %s: 1-minute bars exist for the last %g days only: window start %s clipped to %s",
                            PROVIDER, instrument, self.max_days_back, datetime.fromtimestamp(lo, UTC).isoformat(),
                            datetime.fromtimestamp(horizon, UTC).isoformat())
                self._count(instrument, clipped_windows=1)
                lo = horizon
        step = int(self.max_days_per_request * 86400)
        out, cursor = [], lo
        while cursor < hi:
            out.append((cursor, min(hi, cursor + step)))
            cursor += step
        return out

    def _count(self, instrument: str, **counts: int) -> None:
        count_quality(self.quality, instrument, counts)

    async def fetch_bars(self, instrument: str, start: datetime, end: datetime) -> ChartData:
        """Bars opening in [start, end) (aware datetimes, naive = UTC), chunked and merged, with
        the currency, exchange and drop counts."""
        parts = [await self.chart(instrument, p1, p2) for p1, p2 in self.windows(start, end, instrument)]
        data = merge_chart_data(parts, instrument)
        count_quality(self.quality, instrument, {"requests": data.requests, **data.counts()}, note=False)
        for (reason, day), rows in data.dropped_on.items():
            note_dropped(instrument, reason, rows, day)
        if data.null_minutes or data.partial_rows:
            log.info("%s %s: dropped %d null minutes and %d partially null rows", PROVIDER, instrument,
                     data.null_minutes, data.partial_rows)
        return data

    def figures(self) -> dict[str, Any]:
        """Request counters and data-quality counts, for materialization metadata."""
        totals: Counter = Counter()
        for counter in self.quality.values():
            totals.update(counter)
        return {**super().figures(), "dropped_null_minutes": totals.get("null_minutes", 0),
                "dropped_partial_rows": totals.get("partial_rows", 0),
                "dropped_duplicates": totals.get("duplicates", 0), "dropped_outside_window": totals.get("outside", 0),
                "denoised_prices": totals.get("denoised", 0), "floored_off_minute": totals.get("off_minute", 0),
                "answers_without_currency": totals.get("no_currency", 0),
                "clipped_windows": totals.get("clipped_windows", 0)}


__all__ = ["ERRORS", "LIMITS", "PROVIDER", "ChartData", "YahooChartClient", "YahooInstrumentNotFound",
           "YahooRequestError", "chart_error", "denoise_float32", "merge_chart_data", "normalize_currency",
           "parse_chart", "yahoo_error"]
