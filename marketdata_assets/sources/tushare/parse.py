"""Tushare Pro answers read into the normalized frames: `stk_mins` / `daily` (pure functions: usable on
captured answers). An answer is `{request_id, code, msg, data: {fields, items, has_more, count}}`; an
error answer raises what it stands for (errors.py).

Tushare sends JSON numbers: a page whose columns (the items turned by `fields`) are exactly the declared
types (records.py) is converted in C and its rules checked on its columns; any other page is read row by
row, which reads numbers sent as text as it always did and words the first thing wrong. Rows with nulls
are dropped and counted, repeated rows are counted, rows of a day outside the asked window (`window`) are
dropped and counted; a price that is not positive or a negative volume/amount, and anything else
unexpected, is a `TushareResponseError` naming the instrument and day.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Literal

import polars as pl

from marketdata_assets.core.naming import a_share_code, a_share_venue
from marketdata_assets.datasets.frames import BARS_SCHEMA, DAILY_BARS_SCHEMA, UTC_US
from marketdata_assets.datasets.wire import note_conversion, nulls_in
from marketdata_assets.sources.tushare.errors import (
    CHINA_TZ,
    ERRORS,
    TushareResponseError,
    answer_error,
    error_fields,
)
from marketdata_assets.sources.tushare.records import (
    DAILY_COLUMNS,
    DAILY_REQUIRED,
    LOTS_TO_SHARES,
    STK_MINS_COLUMNS,
    STK_MINS_REQUIRED,
    THOUSANDS_TO_YUAN,
    Table,
    declared_columns,
)

# --------------------------------------------------------------------------------------------
# Naming
# --------------------------------------------------------------------------------------------

def venue_of(ts_code: str) -> str:
    """"600000.SH" → "SSE", "000001.SZ" → "SZSE", "830799.BJ" → "BSE" (core.naming)."""
    return a_share_venue(ts_code)


def normalize_ts_code(ts_code: str) -> str:
    """Any common A-share spelling ("sh600000", "600000.XSHG", "600000") → Tushare's "600000.SH"."""
    return a_share_code(ts_code)


# --------------------------------------------------------------------------------------------
# The `data` table of an answer
# --------------------------------------------------------------------------------------------

def response_table(answer: Mapping | str | bytes, api_name: str, *, instrument: str | None = None,
                   day: Any = None, required: Sequence[str] = ()) -> Table:
    """The `data` of an answer, its shape checked. An error answer raises what it stands for
    (`answer_error`); `code` 0 with `data: null` is an empty table. Errors name instrument/day."""
    if isinstance(answer, (str, bytes, bytearray)):
        try:
            answer = json.loads(answer)
        except ValueError as error:
            raise TushareResponseError(instrument, day, f"{api_name}: the body is not valid JSON ({error})") from None
    if not isinstance(answer, Mapping):
        raise TushareResponseError(instrument, day, f"{api_name}: the answer is a JSON {type(answer).__name__}, "
                                                    "not an object")
    found = error_fields(answer)
    if found is not None:
        code, message = found
        raise answer_error(ERRORS.classify(200, code, message), api_name, code, message, instrument=instrument,
                           request=f"{api_name} {day}" if day else api_name)
    if answer.get("code") is None:
        raise TushareResponseError(instrument, day, f"{api_name}: the answer has no `code` (keys: {sorted(answer)})")
    data = answer.get("data")
    if data is None:  # not an empty result (that is `items: []`): an answer that says nothing
        raise TushareResponseError(instrument, day, f"{api_name}: code 0 but `data` is null: no answer for it "
                                                    "(an empty result has data.items = []); nothing is stored")
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
            size = len(row) if isinstance(row, list) else "?"
            raise TushareResponseError(instrument, day, f"{api_name}: row {n} has {size} values for "
                                                        f"{len(fields)} fields")
    return Table(list(fields), items, bool(data.get("has_more")), data.get("count"))


def _table(answer: Mapping | str | bytes | Table, api_name: str, instrument: str | None, day: Any,
           required: Sequence[str]) -> Table:
    table = answer if isinstance(answer, Table) else response_table(
        answer, api_name, instrument=instrument, day=day, required=required)
    missing = [name for name in required if name not in table.fields]
    if missing:
        raise TushareResponseError(instrument, day, f"{api_name}: the response has no field {missing} "
                                                    f"(fields: {table.fields})")
    return table


def _venues(codes: list[str], allowed: set[str] | None) -> dict[str, str] | None:
    """{code: venue} of the page's codes, or None unless each is written as Tushare writes it
    ("600000.SH"), is one of `allowed` (None: any) and of a known venue."""
    distinct = set(codes)
    if not all(code and code == code.strip().upper() and (allowed is None or code in allowed) for code in distinct):
        return None
    try:
        return {code: venue_of(code) for code in distinct}
    except ValueError:
        return None


_NUMBERS = ("open", "high", "low", "close", "vol", "amount")  # a row without one of them is dropped
MINUTE_FORMAT, DATE_FORMAT = "%Y-%m-%d %H:%M:%S", "%Y%m%d"  # trade_time, trade_date


def _page(codes: list[str], labels: list[str], columns: Any, numbers: Sequence[str], when: pl.DataType,
          label_format: str, window: tuple[date, date] | None) -> pl.DataFrame | None:
    """The page as columns: instrument, label, `numbers` (NaN read as null), `when` (the label read) and
    `dropped`, why a row is dropped (null_rows, partial_rows, outside, duplicates: the first row of an
    instrument and time is kept); None if a row breaks a rule: a label written as `label_format`,
    finite numbers, a complete row's prices positive and its vol and amount not negative."""
    page = pl.DataFrame({"instrument": codes, "label": labels, **{name: getattr(columns, name) for name in numbers}},
                        schema={"instrument": pl.Utf8, "label": pl.Utf8, **dict.fromkeys(numbers, pl.Float64)})
    page = page.with_columns(pl.col(numbers).fill_nan(None), when=pl.col("label").str.strptime(
        when, label_format, strict=False))
    complete = pl.all_horizontal(pl.col(_NUMBERS).is_not_null())
    prices = [name for name in numbers if name not in ("vol", "amount")]
    if not page.select((pl.col("when").dt.strftime(label_format) == pl.col("label")).fill_null(False).all()
                       & ~pl.any_horizontal(pl.col(numbers).is_infinite().any())
                       & (~complete | (pl.min_horizontal(prices) > 0) & (pl.min_horizontal("vol", "amount") >= 0))
                       .all()).item():
        return None
    nulls, day = pl.sum_horizontal(pl.col(_NUMBERS).is_null()), pl.col("when").cast(pl.Date)
    inside = day.is_between(*window) if window is not None else pl.lit(True)
    return page.with_columns(dropped=pl.when(nulls == len(_NUMBERS)).then(pl.lit("null_rows"))
                             .when(nulls > 0).then(pl.lit("partial_rows")).when(~inside).then(pl.lit("outside"))
                             .when(~pl.struct("instrument", "when", nulls == 0).is_first_distinct())
                             .then(pl.lit("duplicates")))


# --------------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------------

def _number(value: Any, field_name: str, row_label: str, instrument: str | None, day: Any) -> float | None:
    """A float from a JSON value; None for null/NaN; TushareResponseError for anything non-numeric."""
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


def _plausible(numbers: dict[str, float], row_label: str, instrument: str | None, day: Any) -> None:
    """Unadjusted prices are positive, volumes and amounts not negative."""
    for name, value in numbers.items():
        if name in ("open", "high", "low", "close", "pre_close") and value is not None and value <= 0:
            raise TushareResponseError(instrument, day, f"{name} is {value} at {row_label}, not a positive price")
        if name in ("vol", "amount") and value is not None and value < 0:
            raise TushareResponseError(instrument, day, f"{name} is {value} at {row_label}, negative")


def _outside(day: date, window: tuple[date, date] | None) -> bool:
    return window is not None and not window[0] <= day <= window[1]


_TIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y%m%d %H:%M:%S", "%Y%m%d%H%M%S")


def parse_china_time(text: Any) -> datetime:
    """"2025-06-05 09:31:00" (China time, no zone) → naive datetime. ValueError if unparsable."""
    if not isinstance(text, str):
        raise ValueError(f"trade_time {text!r} is not a string")  # noqa: TRY004 - bad data, like a bad format
    value = text.strip()
    if len(value) == 19 and value[4] == "-" and value[10] == " ":  # the usual form: the fast parser
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass
    for fmt in _TIME_FORMATS:
        try:
            return datetime.strptime(value, fmt)
        except ValueError:
            continue
    raise ValueError(f"trade_time {text!r} is not 'YYYY-MM-DD HH:MM:SS'")


def parse_trade_date(text: Any) -> date:
    """"20250605" → date. ValueError if it is not YYYYMMDD."""
    return datetime.strptime(str(text).strip(), "%Y%m%d").date()


def _day_label(text: Any) -> Any:
    """The day of a trade_time for error messages (the text itself when it does not parse)."""
    try:
        return datetime.strptime(str(text).strip()[:10], "%Y-%m-%d").date()
    except ValueError:
        return text


# --------------------------------------------------------------------------------------------
# stk_mins
# --------------------------------------------------------------------------------------------

@dataclass
class ParsedMinutes:
    frame: pl.DataFrame  # the bar contract, oldest first
    null_rows: int = 0  # every value null: dropped
    partial_rows: int = 0  # some values null: dropped
    duplicates: int = 0  # same instrument and trade_time twice: the first kept
    oldest: datetime | None = None  # oldest trade_time received (China time, naive), for paging
    received: int = 0  # rows in the answer
    outside: int = 0  # rows of a China day outside `window`: dropped


def parse_stk_mins(answer: Mapping | str | bytes | Table, *, instrument: str | None = None, day: Any = None,
                   bar_label: Literal["end", "start"] = "end",
                   window: tuple[date, date] | None = None) -> ParsedMinutes:
    """A `stk_mins` answer → normalized 1-minute bars, oldest first (`ts` = bar open in UTC; with
    `bar_label="start"` the label is taken as the open). `instrument`, when given, must be the
    only ts_code in the rows; `window` (first, last China day), when given, drops and counts rows
    of other days (`outside`)."""
    table = _table(answer, "stk_mins", instrument, day, STK_MINS_REQUIRED)
    parsed = _minutes_by_column(declared_columns(STK_MINS_COLUMNS, table), instrument, bar_label, window)
    return _minutes_by_row(table, instrument, day, bar_label, window) if parsed is None else parsed


def _minutes_by_column(columns: Any, instrument: str | None, bar_label: Literal["end", "start"],
                       window: tuple[date, date] | None) -> ParsedMinutes | None:
    """The page's bars from its columns (`STK_MINS_COLUMNS`), or None if `_page` does not take them or a
    ts_code is not `instrument` (`_venues`; no ts_code column: `instrument` is the code, None without one)."""
    if columns is None or (columns.ts_code is None and instrument is None):
        return None
    codes = columns.ts_code if columns.ts_code is not None else [instrument] * len(columns.trade_time)
    venues = _venues(codes, None if instrument is None else {instrument})
    page = None if venues is None else _page(codes, columns.trade_time, columns, _NUMBERS, pl.Datetime("us"),
                                              MINUTE_FORMAT, window)
    if page is None:
        return None
    result = ParsedMinutes(frame=pl.DataFrame(schema=BARS_SCHEMA), received=page.height, oldest=page["when"].min(),
                           **Counter(page["dropped"].drop_nulls().to_list()))
    kept = page.filter(pl.col("dropped").is_null())
    if kept.height:
        result.frame = _minutes_frame(kept.select("when", "instrument", *_NUMBERS, venue=pl.col("instrument")
                                                  .replace_strict(venues, return_dtype=pl.Utf8)), bar_label)
    return result


def _minutes_frame(bars: pl.DataFrame, bar_label: Literal["end", "start"]) -> pl.DataFrame:
    """Bars (`when` the label, China time; venue, instrument, `_NUMBERS`) in `BARS_SCHEMA`, by instrument
    and time."""
    shift = timedelta(minutes=1) if bar_label == "end" else timedelta(0)
    return bars.with_columns(
        (pl.col("when").dt.replace_time_zone(CHINA_TZ).dt.convert_time_zone("UTC") - shift).cast(UTC_US).alias("ts"),
        pl.col("vol").alias("volume"), pl.lit(None, dtype=pl.Int64).alias("trades"),
    ).select(list(BARS_SCHEMA)).sort(["instrument", "ts"])


def _minutes_by_row(table: Table, instrument: str | None, day: Any, bar_label: Literal["end", "start"],
                    window: tuple[date, date] | None) -> ParsedMinutes:
    """`parse_stk_mins` row by row: what the columns do not take, read (numbers sent as text) or
    worded (the first thing wrong) as it always was."""
    index = {name: table.fields.index(name) for name in table.fields}
    code_at = index.get("ts_code")
    times: list[datetime] = []
    codes: list[str] = []
    values: dict[str, list[float | None]] = {k: [] for k in _NUMBERS}
    result = ParsedMinutes(frame=pl.DataFrame(schema=BARS_SCHEMA), received=len(table.items))
    seen: set[tuple[str, datetime]] = set()
    for row in table.items:
        label = row[index["trade_time"]]
        try:
            when = parse_china_time(label)
        except ValueError as error:
            raise TushareResponseError(instrument, _day_label(label), f"stk_mins: {error}") from None
        row_day = when.date()
        code = row[code_at] if code_at is not None else instrument
        if not isinstance(code, str) or not code:
            raise TushareResponseError(instrument, row_day, f"stk_mins: row at {label} has no ts_code")
        code = code.strip().upper()
        if instrument is not None and code != instrument:
            raise TushareResponseError(instrument, row_day, f"stk_mins: a row of {code} in the answer for {instrument}")
        if result.oldest is None or when < result.oldest:
            result.oldest = when
        numbers = {k: _number(row[index[k]], k, f"{code} {label}", instrument or code, row_day) for k in values}
        if dropped := nulls_in(list(numbers.values())):
            setattr(result, dropped, getattr(result, dropped) + 1)
            continue
        _plausible(numbers, f"{code} {label}", instrument or code, row_day)
        if _outside(row_day, window):
            result.outside += 1
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
    result.frame = _minutes_frame(pl.DataFrame(
        {"when": pl.Series(times, dtype=pl.Datetime("us")), "venue": venues, "instrument": codes, **values},
        schema_overrides=dict.fromkeys(_NUMBERS, pl.Float64)), bar_label)
    return result


# --------------------------------------------------------------------------------------------
# daily
# --------------------------------------------------------------------------------------------

@dataclass
class ParsedDaily:
    frame: pl.DataFrame  # DAILY_BARS_SCHEMA, by instrument, oldest first
    null_rows: int = 0
    partial_rows: int = 0
    duplicates: int = 0
    oldest: date | None = None  # oldest trade_date received, for paging
    received: int = 0
    outside: int = 0  # rows of a trade date outside `window`: dropped
    # per ts_code: rows, null_rows, partial_rows, duplicates, outside
    counts: dict[str, Counter] = field(default_factory=dict)


def parse_daily(answer: Mapping | str | bytes | Table, *, instrument: str | None = None,
                day: Any = None, window: tuple[date, date] | None = None) -> ParsedDaily:
    """A `daily` answer → `DAILY_BARS_SCHEMA` (ts = 00:00 UTC of the trade date; lots → shares
    ×100, thousands of yuan → yuan ×1000). `instrument` may be a comma-separated ts_code list (as
    `daily` accepts it): every row must be of one of them."""
    table = _table(answer, "daily", instrument, day, DAILY_REQUIRED)
    parsed = _daily_by_column(declared_columns(DAILY_COLUMNS, table), instrument, window)
    return _daily_by_row(table, instrument, day, window) if parsed is None else parsed


def _daily_by_column(columns: Any, instrument: str | None, window: tuple[date, date] | None) -> ParsedDaily | None:
    """The page's bars from its columns (`DAILY_COLUMNS`), or None if `_page` does not take them or a
    ts_code is not one of `instrument`'s (`_venues`)."""
    allowed = None if instrument is None else set(instrument.split(","))
    venues = None if columns is None else _venues(columns.ts_code, allowed)
    numbers = (*_NUMBERS, "pre_close") if venues is not None and columns.pre_close is not None else _NUMBERS
    page = None if venues is None else _page(columns.ts_code, columns.trade_date, columns, numbers, pl.Date,
                                              DATE_FORMAT, window)
    if page is None:
        return None
    result = ParsedDaily(frame=pl.DataFrame(schema=DAILY_BARS_SCHEMA), received=page.height,
                         oldest=page["when"].min(), counts={code: Counter(rows=rows)
                                                            for code, rows in Counter(columns.ts_code).items()})
    for code, reason in page.filter(pl.col("dropped").is_not_null()).select("instrument", "dropped").iter_rows():
        result.counts[code][reason] += 1
        setattr(result, reason, getattr(result, reason) + 1)
    kept = page.filter(pl.col("dropped").is_null())
    if kept.height:
        result.frame = _daily_frame(kept.select(
            "instrument", *numbers, day="when", venue=pl.col("instrument").replace_strict(venues, return_dtype=pl.Utf8)))
    return result


def _daily_frame(bars: pl.DataFrame) -> pl.DataFrame:
    """Bars (day, venue, instrument, `_NUMBERS`, pre_close if sent) in `DAILY_BARS_SCHEMA`: volume in shares,
    amount in yuan; by instrument and day."""
    if "pre_close" not in bars.columns:
        bars = bars.with_columns(pl.lit(None, dtype=pl.Float64).alias("pre_close"))
    for code in bars["instrument"].unique(maintain_order=True):
        note_conversion(code, f"volume lots -> shares (x{LOTS_TO_SHARES:g})")
        note_conversion(code, f"amount thousand CNY -> CNY (x{THOUSANDS_TO_YUAN:g})")
    # ×100 / ×1000 in binary floating point leaves noise (1279950.983 × 1000 = 1279950983.0000002):
    # round back to the precision the vendor sends (2 decimals of lots, 3 of thousands of yuan).
    return bars.with_columns(
        pl.col("day").cast(pl.Datetime("us")).dt.replace_time_zone("UTC").alias("ts"),
        (pl.col("vol") * LOTS_TO_SHARES).round(4).alias("volume"),
        (pl.col("amount") * THOUSANDS_TO_YUAN).round(3).alias("amount"),
    ).select(list(DAILY_BARS_SCHEMA)).sort(["instrument", "ts"])


def _daily_by_row(table: Table, instrument: str | None, day: Any, window: tuple[date, date] | None) -> ParsedDaily:
    """`parse_daily` row by row: what the columns do not take, read (numbers sent as text) or worded
    (the first thing wrong) as it always was."""
    index = {name: table.fields.index(name) for name in table.fields}
    numeric = [*_NUMBERS] + (["pre_close"] if "pre_close" in index else [])
    allowed = set(instrument.split(",")) if instrument is not None else None
    result = ParsedDaily(frame=pl.DataFrame(schema=DAILY_BARS_SCHEMA), received=len(table.items))
    rows: dict[str, list] = {k: [] for k in ["day", "instrument", *numeric]}
    seen: set[tuple[str, date]] = set()
    for row in table.items:
        label, code = row[index["trade_date"]], row[index["ts_code"]]
        try:
            trade_day = parse_trade_date(label)
        except ValueError:
            raise TushareResponseError(instrument, label, f"daily: trade_date {label!r} is not YYYYMMDD") from None
        if not isinstance(code, str) or not code:
            raise TushareResponseError(instrument, trade_day, "daily: a row has no ts_code")
        code = code.strip().upper()
        if allowed is not None and code not in allowed:
            raise TushareResponseError(instrument, trade_day, f"daily: a row of {code} in the answer for {instrument}")
        if result.oldest is None or trade_day < result.oldest:
            result.oldest = trade_day
        counts = result.counts.setdefault(code, Counter())
        counts["rows"] += 1
        numbers = {k: _number(row[index[k]], k, f"{code} {label}", code, trade_day) for k in numeric}
        core = [numbers[k] for k in _NUMBERS]
        if dropped := nulls_in(core):
            setattr(result, dropped, getattr(result, dropped) + 1)
            counts[dropped] += 1
            continue
        _plausible(numbers, f"{code} {label}", code, trade_day)
        if _outside(trade_day, window):
            result.outside += 1
            counts["outside"] += 1
            continue
        if (code, trade_day) in seen:
            result.duplicates += 1
            counts["duplicates"] += 1
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
    result.frame = _daily_frame(pl.DataFrame({
        "day": pl.Series(rows["day"], dtype=pl.Date), "venue": venues, "instrument": rows["instrument"],
        **{k: pl.Series(rows[k], dtype=pl.Float64) for k in numeric},
    }))
    return result


def without_day(table: Table, day: date) -> Table:
    """The table without its rows of trade date `day` (a full `daily` page may end inside it)."""
    at = table.fields.index("trade_date")
    items = [row for row in table.items if parse_trade_date(row[at]) != day]
    return Table(table.fields, items, table.has_more, table.count)
