"""Yahoo Finance chart v8 answers read into 1-minute bars of stocks as normalized `BARS_SCHEMA` frames
(pure: usable on captured answers). The answer's shape, what `parse_chart` undoes (float32 noise, minor
units, null minutes, mid-minute stamps) and what it refuses: docs/ticks.md, "Yahoo chart v8". What every
bar keeps (`BAR_RULES`) is checked on the page's columns; an error answer is read by `ERRORS`.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

import msgspec
import numpy as np
import polars as pl

from marketdata_assets.core.http import (
    ErrorCategory,
    ErrorTable,
    Page,
    SourceDataError,
    SourceError,
    SourcePermissionError,
    SourceRequestError,
)
from marketdata_assets.datasets.declared import check_at, objects
from marketdata_assets.datasets.frames import BARS_SCHEMA, UTC_US
from marketdata_assets.datasets.wire import note_conversion
from marketdata_assets.sources.yahoo.records import BAR_RULES, QUOTE_FIELDS, ChartData, ChartMeta
from marketdata_assets.sources.yahoo.units import (
    EXACT_BELOW,
    known_currency,
    major_unit,
    major_units,
    minor_unit_market,
    normalize_currency,
)

PROVIDER = "Yahoo Finance"
PRICE_FIELDS = ("open", "high", "low", "close")
EPOCH_SECONDS = (100_000_000, 10_000_000_000)  # 1973 .. 2286: milliseconds would be far above


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class YahooRequestError(SourceRequestError):
    """Yahoo rejected the request for one instrument (400 Bad Request, 422, another 4xx). Not retried."""

    def __init__(
        self, instrument: str, status: int, code: Any, description: str, *, request: str | None = None
    ):
        self.instrument, self.description = instrument, description
        super().__init__(PROVIDER, instrument, status, code, description, request=request)


class YahooInstrumentNotFound(YahooRequestError):
    """404 "Not Found": "No data found, instrument may be delisted". Not retried; other instruments go on."""


# What Yahoo's error answers mean: `chart.error` (or `finance.error`) `{code, description}` with the
# status, or a plain-text/HTML body classified by its status alone (a 429 "Too Many Requests").
ERRORS = ErrorTable(
    exact={
        "Not Found": "not_found",
        "Bad Request": "rejected",
        "Unprocessable Entity": "rejected",
        "Unauthorized": "permission",
        "Forbidden": "permission",
    },
    status={
        400: "rejected",
        401: "permission",
        403: "permission",
        404: "not_found",
        422: "rejected",
        429: "rate_limited",
    },
)


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


def yahoo_error(
    category: ErrorCategory,
    *,
    status: int,
    code: Any,
    message: str,
    instrument: str,
    request: str | None = None,
) -> SourceError:
    """The exception an error answer about `instrument` stands for (`category` from `ERRORS`)."""
    if category in ("permission", "unauthorized"):
        detail = f"{instrument}: code {code}: {message}" if code is not None else f"{instrument}: {message}"
        return SourcePermissionError(PROVIDER, status, detail, request=request)
    cls = YahooInstrumentNotFound if category == "not_found" else YahooRequestError
    return cls(instrument, status, code, message, request=request)


# --------------------------------------------------------------------------------------------
# Parsing (pure: usable on captured responses)
# --------------------------------------------------------------------------------------------


def _load(payload: Mapping | str | bytes) -> Mapping:
    if isinstance(payload, (str, bytes, bytearray)):
        payload = json.loads(payload)
    if not isinstance(payload, Mapping):
        raise ValueError(f"expected a JSON object, got {type(payload).__name__}")  # noqa: TRY004 - a bad body
    return payload


def day_label(epoch: int | None) -> date | None:
    return datetime.fromtimestamp(epoch, UTC).date() if epoch is not None else None


def parse_chart(
    payload: Mapping | str | bytes,
    instrument: str | None = None,
    *,
    start: int | None = None,
    end: int | None = None,
    status: int = 200,
    request: str | None = None,
    interval: str = "1m",
) -> ChartData:
    """A chart v8 answer (decoded, or the body as sent) → `ChartData` (normalized frame + currency
    + drop counts).

    `start`/`end` (epoch seconds) keep bars with start <= ts < end. An error payload raises what
    `ERRORS` makes of it with `status` (`YahooInstrumentNotFound`, `YahooRequestError`, ...), a malformed
    one `SourceDataError`; both name the instrument and `request` (the request it answered) when given.
    So is an answer whose unit is unknown (no `meta.currency` on a minor-unit market) or whose
    `meta.dataGranularity` is not `interval`.
    """
    page = Page(PROVIDER, instrument, day_label(start), request)
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
        raise yahoo_error(
            ERRORS.classify(status, code, description),
            status=status,
            code=code,
            message=description,
            instrument=page.instrument or "?",
            request=page.request,
        )
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
        raise page.error(
            f"meta.dataGranularity is {meta.dataGranularity!r} where {interval!r} bars were asked "
            f"for: not {interval} bars"
        )
    quote_currency, no_currency = meta.currency, 0
    if not known_currency(quote_currency):
        market = minor_unit_market(inst, meta.exchangeName)
        if market is not None:
            said = "no meta.currency" if quote_currency in (None, "") else f"meta.currency {quote_currency!r}"
            raise page.error(
                f"{said}: on {market} Yahoo quotes prices in a major or a minor unit (GBp pence vs "
                "GBP pounds), so the unit of these bars is unknown; not stored with a guessed unit"
            )
        quote_currency, no_currency = None, 1  # the prices are as sent: no minor unit here
    currency, divisor = normalize_currency(quote_currency)
    if divisor != 1:
        note_conversion(inst, f"prices {quote_currency} -> {currency} (/{divisor})")
    data = ChartData(
        instrument=inst,
        frame=pl.DataFrame(schema=BARS_SCHEMA),
        currency=currency,
        quote_currency=quote_currency,
        price_divisor=divisor,
        exchange=str(meta.exchangeName or meta.fullExchangeName or "YAHOO"),
        timezone=meta.exchangeTimezoneName,
        gmtoffset=meta.gmtoffset,
        meta=raw,
        no_currency=no_currency,
    )
    return data, page


def _bars_into(
    data: ChartData, result: Mapping, timestamps: list, start: int | None, end: int | None, page: Page
) -> None:
    """The bars into `data`: `BAR_RULES` checked on the page's columns (a breach told on the page of
    its bar's day), then null, partly null, off-window and repeated minutes dropped and counted."""
    cols = _bar_columns(timestamps, _quote_columns(result, len(timestamps), page))
    check_at(
        cols,
        BAR_RULES,
        "timestamp[{i}]",
        lambda i, bar: (
            dataclasses.replace(page, day=day_label(int(bar["epoch"]))) if bar["seconds"] else page
        ),
    )
    epoch, minute = pl.col("epoch"), pl.col("minute")
    bars = pl.DataFrame({"epoch": cols["epoch"], **{name: cols[f"{name} value"] for name in QUOTE_FIELDS}})
    bars = bars.with_columns(
        pl.col(QUOTE_FIELDS).fill_nan(None),
        minute=epoch - epoch % 60,
        day=pl.from_epoch("epoch", "s").dt.date(),
    )
    nulls = pl.sum_horizontal(pl.col(QUOTE_FIELDS).is_null())
    inside = (minute >= start if start is not None else pl.lit(True)) & (
        minute < end if end is not None else True
    )
    bars = bars.with_columns(
        off=(nulls == 0) & (minute != epoch),
        dropped=(
            pl.when(nulls == len(QUOTE_FIELDS))
            .then(pl.lit("null_rows"))
            .when(nulls > 0)
            .then(pl.lit("partial_rows"))
            .when(~inside)
            .then(pl.lit("outside_window"))
            .when(~pl.struct(minute, nulls == 0).is_first_distinct())
            .then(pl.lit("duplicates"))
        ),
    )
    data.off_minute += bars["off"].sum()
    for (reason, day), rows in Counter(
        bars.filter(pl.col("dropped").is_not_null()).select("dropped", "day").iter_rows()
    ).items():
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
    cols = {
        "timestamp": objects(timestamps),
        "seconds": seconds,
        "epoch": np.fromiter((int(t) if ok else 0 for t, ok in zip(timestamps, seconds)), np.int64, n),
    }
    for name in QUOTE_FIELDS:
        cols[name] = objects(values[name])
        cols[f"{name} number"], cols[f"{name} value"] = _numbers(values[name])
    return cols


def _is_seconds(value: Any) -> bool:
    return (
        not isinstance(value, bool)
        and isinstance(value, (int, float))
        and EPOCH_SECONDS[0] <= value < EPOCH_SECONDS[1]
    )


def _numbers(values: list) -> tuple[np.ndarray, np.ndarray]:
    """(number or null, the double) of each value."""
    n = len(values)
    if set(map(type, values)) <= {float, int, type(None)}:
        try:
            return np.ones(n, bool), np.array(values, np.float64)
        except OverflowError:
            pass
    numeric = np.fromiter(
        (v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in values), bool, n
    )
    return numeric, np.fromiter(
        (_double(v) if ok and v is not None else math.nan for v, ok in zip(values, numeric)), np.float64, n
    )


def _double(value: float) -> float:
    try:
        return float(value)
    except OverflowError:
        return math.inf


# The row drops `_bars_into` counts: ChartData's name of each.
_COUNTED = {
    "null_rows": "null_minutes",
    "partial_rows": "partial_rows",
    "outside_window": "outside",
    "duplicates": "duplicates",
}


def _in_major_units(data: ChartData, kept: pl.DataFrame) -> pl.DataFrame:
    """The kept bars' prices snapped from float32 noise and in the major unit: on the columns
    (`major_units`) where that is exact, one by one (`major_unit`) elsewhere."""
    prices = kept.select(PRICE_FIELDS).to_numpy()
    with np.errstate(over="ignore", invalid="ignore"):
        major, snapped = major_units(prices, data.price_divisor)
    for i, j in zip(*np.nonzero(~((prices > 0) & (prices < EXACT_BELOW))), strict=True):
        major[i, j], snapped[i, j] = major_unit(float(prices[i, j]), data.price_divisor)
    data.denoised += int(snapped.sum())
    return kept.with_columns(pl.Series(name, major[:, i]) for i, name in enumerate(PRICE_FIELDS))


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


def _bars_frame(bars: pl.DataFrame, exchange: str, instrument: str) -> pl.DataFrame:
    """Bars (`minute` in epoch seconds, the prices in the major unit, volume) in `BARS_SCHEMA`, oldest
    first."""
    return (
        bars.with_columns(
            (pl.col("minute") * 1_000_000).cast(UTC_US).alias("ts"),
            pl.lit(exchange, dtype=pl.Utf8).alias("venue"),
            pl.lit(instrument, dtype=pl.Utf8).alias("instrument"),
            (pl.col("volume") * (pl.col("high") + pl.col("low") + pl.col("close")) / 3)
            .round(6)
            .alias("amount"),
            pl.lit(None, dtype=pl.Int64).alias("trades"),
        )
        .select(list(BARS_SCHEMA))
        .sort("ts")
    )


def merge_chart_data(parts: list[ChartData], instrument: str) -> ChartData:
    """Chunks of one instrument → one ChartData (bars deduplicated on ts, counts summed)."""
    if not parts:
        return ChartData(instrument=instrument, frame=pl.DataFrame(schema=BARS_SCHEMA))
    first = parts[0]
    currencies = {p.quote_currency for p in parts if p.quote_currency}
    if len(currencies) > 1:
        raise SourceDataError(
            instrument,
            None,
            f"the quote currency changed between requests: {sorted(currencies)}",
            source=PROVIDER,
        )
    everything = pl.concat([p.frame for p in parts], how="vertical")
    before = everything.height
    frame = everything.unique(subset=["ts"], keep="first", maintain_order=True).sort("ts")
    merged = ChartData(
        instrument=instrument,
        frame=frame,
        currency=first.currency,
        quote_currency=first.quote_currency,
        price_divisor=first.price_divisor,
        exchange=first.exchange,
        timezone=first.timezone,
        gmtoffset=parts[-1].gmtoffset,
        meta=parts[-1].meta,
    )
    for name in (
        "null_minutes",
        "partial_rows",
        "off_minute",
        "duplicates",
        "outside",
        "denoised",
        "no_currency",
        "requests",
    ):
        setattr(merged, name, sum(getattr(p, name) for p in parts))
    for part in parts:
        merged.dropped_on.update(part.dropped_on)
    merged.duplicates += before - frame.height
    if before > frame.height:  # overlapping chunks: the repeats, by day
        repeats = Counter(everything["ts"].dt.date().to_list())
        repeats.subtract(Counter(frame["ts"].dt.date().to_list()))
        merged.dropped_on.update({("duplicates", day): n for day, n in repeats.items() if n})
    return merged


__all__ = [
    "ERRORS",
    "PROVIDER",
    "YahooInstrumentNotFound",
    "YahooRequestError",
    "chart_error",
    "merge_chart_data",
    "parse_chart",
    "yahoo_error",
]
