"""Tushare Pro answers read into the normalized frames: `stk_mins` / `daily` (pure functions: usable on
captured answers). An answer is `{request_id, code, msg, data: {fields, items, has_more, count}}`; an
error answer raises what it stands for (errors.py).

Tushare sends JSON numbers: a page whose columns (the items turned by `fields`) are exactly the declared
types (records.py) is converted in C; any other page is read value by value (numbers sent as text, another
time format), its rules checked on its columns and the first row that breaks one told. Either way one path
drops and counts rows with nulls, repeated rows and rows of a day outside the asked window (`window`); a
price that is not positive or a negative volume/amount, and anything else unexpected, is a
`TushareResponseError` naming the instrument and day.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from types import SimpleNamespace
from typing import Any, Literal, NamedTuple

import numpy as np
import polars as pl

from marketdata_assets.core.naming import a_share_code, a_share_venue
from marketdata_assets.datasets.declared import Rule, check_at, each
from marketdata_assets.datasets.frames import BARS_SCHEMA, DAILY_BARS_SCHEMA, UTC_US
from marketdata_assets.datasets.wire import note_conversion
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
    """ "600000.SH" → "SSE", "000001.SZ" → "SZSE", "830799.BJ" → "BSE" (core.naming)."""
    return a_share_venue(ts_code)


def normalize_ts_code(ts_code: str) -> str:
    """Any common A-share spelling ("sh600000", "600000.XSHG", "600000") → Tushare's "600000.SH"."""
    return a_share_code(ts_code)


# --------------------------------------------------------------------------------------------
# The `data` table of an answer
# --------------------------------------------------------------------------------------------


def response_table(
    answer: Mapping | str | bytes,
    api_name: str,
    *,
    instrument: str | None = None,
    day: Any = None,
    required: Sequence[str] = (),
) -> Table:
    """The `data` of an answer, its shape checked. An error answer raises what it stands for
    (`answer_error`); `code` 0 with `data: null` is an empty table. Errors name instrument/day."""
    if isinstance(answer, (str, bytes, bytearray)):
        try:
            answer = json.loads(answer)
        except ValueError as error:
            raise TushareResponseError(
                instrument, day, f"{api_name}: the body is not valid JSON ({error})"
            ) from None
    if not isinstance(answer, Mapping):
        raise TushareResponseError(
            instrument, day, f"{api_name}: the answer is a JSON {type(answer).__name__}, not an object"
        )
    found = error_fields(answer)
    if found is not None:
        code, message = found
        raise answer_error(
            ERRORS.classify(200, code, message),
            api_name,
            code,
            message,
            instrument=instrument,
            request=f"{api_name} {day}" if day else api_name,
        )
    if answer.get("code") is None:
        raise TushareResponseError(
            instrument, day, f"{api_name}: the answer has no `code` (keys: {sorted(answer)})"
        )
    data = answer.get("data")
    if data is None:  # not an empty result (that is `items: []`): an answer that says nothing
        raise TushareResponseError(
            instrument,
            day,
            f"{api_name}: code 0 but `data` is null: no answer for it "
            "(an empty result has data.items = []); nothing is stored",
        )
    if not isinstance(data, Mapping):
        raise TushareResponseError(instrument, day, f"{api_name}: `data` is not an object")
    fields, items = data.get("fields"), data.get("items")
    if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
        raise TushareResponseError(
            instrument, day, f"{api_name}: `data.fields` is missing or not a list of names"
        )
    if items is None:
        items = []
    if not isinstance(items, list):
        raise TushareResponseError(instrument, day, f"{api_name}: `data.items` is not a list")
    missing = [name for name in required if name not in fields]
    if missing:
        raise TushareResponseError(
            instrument,
            day,
            f"{api_name}: the response has no field {', '.join(repr(m) for m in missing)} (fields: {fields})",
        )
    for n, row in enumerate(items):
        if not isinstance(row, list) or len(row) != len(fields):
            size = len(row) if isinstance(row, list) else "?"
            raise TushareResponseError(
                instrument, day, f"{api_name}: row {n} has {size} values for {len(fields)} fields"
            )
    return Table(list(fields), items, bool(data.get("has_more")), data.get("count"))


def _table(
    answer: Mapping | str | bytes | Table,
    api_name: str,
    instrument: str | None,
    day: Any,
    required: Sequence[str],
) -> Table:
    table = (
        answer
        if isinstance(answer, Table)
        else response_table(answer, api_name, instrument=instrument, day=day, required=required)
    )
    missing = [name for name in required if name not in table.fields]
    if missing:
        raise TushareResponseError(
            instrument, day, f"{api_name}: the response has no field {missing} (fields: {table.fields})"
        )
    return table


_NUMBERS = ("open", "high", "low", "close", "vol", "amount")  # a row without one of them is dropped
MINUTE_FORMAT, DATE_FORMAT = "%Y-%m-%d %H:%M:%S", "%Y%m%d"  # trade_time, trade_date


def _page(
    codes: list[str],
    labels: list[str],
    columns: Any,
    numbers: Sequence[str],
    when: pl.DataType,
    label_format: str,
    window: tuple[date, date] | None,
) -> pl.DataFrame | None:
    """The page as columns: instrument, label, `numbers` (NaN read as null), `when` (the label read) and
    `dropped`, why a row is dropped (null_rows, partial_rows, outside, duplicates: the first row of an
    instrument and time is kept); None if a row breaks a rule: a label written as `label_format`,
    finite numbers, a complete row's prices positive and its vol and amount not negative."""
    page = pl.DataFrame(
        {"instrument": codes, "label": labels, **{name: getattr(columns, name) for name in numbers}},
        schema={"instrument": pl.Utf8, "label": pl.Utf8, **dict.fromkeys(numbers, pl.Float64)},
    )
    page = page.with_columns(
        pl.col(numbers).fill_nan(None), when=pl.col("label").str.strptime(when, label_format, strict=False)
    )
    complete = pl.all_horizontal(pl.col(_NUMBERS).is_not_null())
    prices = [name for name in numbers if name not in ("vol", "amount")]
    if not page.select(
        (pl.col("when").dt.strftime(label_format) == pl.col("label")).fill_null(False).all()
        & ~pl.any_horizontal(pl.col(numbers).is_infinite().any())
        & (~complete | (pl.min_horizontal(prices) > 0) & (pl.min_horizontal("vol", "amount") >= 0)).all()
    ).item():
        return None
    nulls, day = pl.sum_horizontal(pl.col(_NUMBERS).is_null()), pl.col("when").cast(pl.Date)
    inside = day.is_between(*window) if window is not None else pl.lit(True)
    return page.with_columns(
        dropped=pl.when(nulls == len(_NUMBERS))
        .then(pl.lit("null_rows"))
        .when(nulls > 0)
        .then(pl.lit("partial_rows"))
        .when(~inside)
        .then(pl.lit("outside"))
        .when(~pl.struct("instrument", "when", nulls == 0).is_first_distinct())
        .then(pl.lit("duplicates"))
    )


_TIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y%m%d %H:%M:%S", "%Y%m%d%H%M%S")


def parse_china_time(text: Any) -> datetime:
    """ "2025-06-05 09:31:00" (China time, no zone) → naive datetime. ValueError if unparsable."""
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
    """ "20250605" → date. ValueError if it is not YYYYMMDD."""
    return datetime.strptime(str(text).strip(), "%Y%m%d").date()


def _day_label(text: Any) -> Any:
    """The day of a trade_time for error messages (the text itself when it does not parse)."""
    try:
        return datetime.strptime(str(text).strip()[:10], "%Y-%m-%d").date()
    except ValueError:
        return text


# --------------------------------------------------------------------------------------------
# A page's rows: in C where they are of their declared types, else read value by value
# --------------------------------------------------------------------------------------------


class _Api(NamedTuple):
    """How one API's rows are read (`MINUTES`, `DAILY`)."""

    name: str  # the API, the first word of its errors
    columns: type  # its declared columns (records.py)
    label: str  # the row's time field, written as `label_format` and read as `when`
    label_format: str
    when: pl.DataType
    read_label: Callable[[Any], date]  # the label as a datetime / date (ValueError: it is none)
    label_error: Callable[[Any, str], tuple[Any, str]]  # (a label not read, why) -> (the error's day, words)
    no_code: str  # a row without a ts_code (over {label})


MINUTES = _Api(
    "stk_mins",
    STK_MINS_COLUMNS,
    "trade_time",
    MINUTE_FORMAT,
    pl.Datetime("us"),
    parse_china_time,
    lambda label, why: (_day_label(label), f"stk_mins: {why}"),
    "stk_mins: row at {label} has no ts_code",
)
DAILY = _Api(
    "daily",
    DAILY_COLUMNS,
    "trade_date",
    DATE_FORMAT,
    pl.Date,
    parse_trade_date,
    lambda label, why: (label, f"daily: trade_date {label!r} is not YYYYMMDD"),
    "daily: a row has no ts_code",
)


class _At(NamedTuple):
    """Where a row's error is told: the instrument and day its TushareResponseError names."""

    instrument: str | None
    day: Any

    def error(self, detail: str) -> TushareResponseError:
        return TushareResponseError(self.instrument, self.day, detail)


def _rows(
    api: _Api,
    table: Table,
    instrument: str | None,
    day: Any,
    allowed: set[str] | None,
    window: tuple[date, date] | None,
) -> pl.DataFrame:
    """The page's rows as `_page` takes them: its declared columns, converted in C, where every code is
    written as Tushare writes it ("600000.SH") and one of `allowed` (None: any) and `_page` takes them;
    else the rows read value by value (`_read`), which raises the first thing wrong."""
    columns = declared_columns(api.columns, table)
    codes = (
        None
        if columns is None
        else columns.ts_code
        if columns.ts_code is not None
        else (None if instrument is None else [instrument] * len(table.items))
    )
    if codes is not None and all(
        code and code == code.strip().upper() and (allowed is None or code in allowed) for code in set(codes)
    ):
        page = _page(
            codes, getattr(columns, api.label), columns, _numbers(table), api.when, api.label_format, window
        )
        if page is not None:
            return page
    columns = _read(api, table, instrument, day, allowed)
    return _page(
        columns.ts_code,
        getattr(columns, api.label),
        columns,
        _numbers(table),
        api.when,
        api.label_format,
        window,
    )


def _numbers(table: Table) -> tuple[str, ...]:
    """The number fields a row is read with: `_NUMBERS`, and `pre_close` where the answer sends it."""
    return (*_NUMBERS, "pre_close") if "pre_close" in table.fields else _NUMBERS


def _read(
    api: _Api, table: Table, instrument: str | None, day: Any, allowed: set[str] | None
) -> SimpleNamespace:
    """The page's rows read value by value (numbers sent as text, a label in another format, a code
    written otherwise), as `_page` takes them; the first row (by position) with something wrong is a
    TushareResponseError telling the first thing wrong in it (`_rules`' order)."""
    at: dict[str, int] = {}
    for k, name in enumerate(table.fields):
        at.setdefault(name, k)
    sent = {name: [row[k] for row in table.items] for name, k in at.items()}
    labels, numbers = sent[api.label], _numbers(table)
    read = [_label(api.read_label, label) for label in labels]
    codes = sent.get("ts_code", [instrument] * len(labels))
    cols: dict[str, Any] = {
        "label": labels,
        "when": [w for w, _ in read],
        "why": [y for _, y in read],
        "code": [c.strip().upper() if isinstance(c, str) and c else None for c in codes],
    }
    for (
        name
    ) in numbers:  # each number: read (None: null), `!` what is wrong with it, `~` as sent, `#` as floats
        values = [_number(value) for value in sent[name]]
        cols[name], cols[f"{name}!"], cols[f"{name}~"] = (
            [v for v, _ in values],
            [p for _, p in values],
            sent[name],
        )
        cols[f"{name}#"] = np.array([math.nan if v is None else v for v, _ in values], np.float64)
    cols["complete"] = ~np.isnan(np.array([cols[f"{name}#"] for name in _NUMBERS])).any(0)
    check_at(
        cols,
        _rules(api, numbers, instrument, allowed),
        lambda i, r: f"{r['code']} {r['label']}",
        lambda i, r: _at(api, r, instrument, allowed),
    )
    return SimpleNamespace(
        ts_code=cols["code"],
        **{api.label: [w.strftime(api.label_format) for w in cols["when"]]},
        **{name: cols[name] for name in numbers},
    )


def _label(read: Callable[[Any], date], label: Any) -> tuple[date | None, str | None]:
    """(the label read, None) or (None, why it is not one)."""
    try:
        return read(label), None
    except ValueError as error:
        return None, str(error)


def _number(value: Any) -> tuple[float | None, str | None]:
    """A JSON value as a float (None: null or NaN), and what is wrong with it: "non-numeric", "infinite"."""
    if value is None:
        return None, None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None, "non-numeric"
    try:
        number = float(value.strip()) if isinstance(value, str) else float(value)
    except ValueError:
        return None, "non-numeric"
    if math.isnan(number):
        return None, None
    return (None, "infinite") if math.isinf(number) else (number, None)


def _rules(
    api: _Api, numbers: Sequence[str], instrument: str | None, allowed: set[str] | None
) -> tuple[Rule, ...]:
    """What each row keeps, in the order its first breach is told: a label that reads, a ts_code, one of
    `allowed`, every number readable and finite, and when none is null, prices positive and vol and amount
    not negative."""

    def read(name: str) -> Rule:
        return each(
            f"{name}!",
            lambda p: p is None,
            lambda what, r: (
                f"non-numeric {name} {r[f'{name}~']!r} at {what}"
                if r[f"{name}!"] == "non-numeric"
                else f"infinite {name} at {what}"
            ),
        )

    def plausible(name: str) -> Rule:
        if name in ("vol", "amount"):
            return Rule(
                name,
                lambda c: ~c["complete"] | ~(c[f"{name}#"] < 0),
                f"{name} is {{value}} at {{what}}, negative",
            )
        return Rule(
            name,
            lambda c: ~c["complete"] | ~(c[f"{name}#"] <= 0),
            f"{name} is {{value}} at {{what}}, not a positive price",
        )

    return (
        each("why", lambda why: why is None, lambda what, r: api.label_error(r["label"], r["why"])[1]),
        each("code", lambda code: code is not None, lambda what, r: api.no_code.format(label=r["label"])),
        each(
            "code",
            lambda code: allowed is None or code in allowed,
            lambda what, r: f"{api.name}: a row of {r['code']} in the answer for {instrument}",
        ),
        *map(read, numbers),
        *map(plausible, numbers),
    )


def _at(api: _Api, row: dict, instrument: str | None, allowed: set[str] | None) -> _At:
    """Where a row's first breach (`_rules`) is told: a label not read on its own day (`api.label_error`),
    a code missing or not asked for on the instrument asked, a number on the row's own code."""
    if row["why"] is not None:
        return _At(instrument, api.label_error(row["label"], row["why"])[0])
    when = row["when"].date() if isinstance(row["when"], datetime) else row["when"]
    if row["code"] is None or (allowed is not None and row["code"] not in allowed):
        return _At(instrument, when)
    return _At(row["code"], when)


def _venues(api: _Api, kept: pl.DataFrame, instrument: str | None, day: Any) -> pl.Expr:
    """The venue of each kept row's code; a code of no known venue is a TushareResponseError."""
    try:
        venues = {code: venue_of(code) for code in kept["instrument"].unique(maintain_order=True)}
    except ValueError as error:
        raise TushareResponseError(instrument, day, f"{api.name}: {error}") from None
    return pl.col("instrument").replace_strict(venues, return_dtype=pl.Utf8)


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


def parse_stk_mins(
    answer: Mapping | str | bytes | Table,
    *,
    instrument: str | None = None,
    day: Any = None,
    bar_label: Literal["end", "start"] = "end",
    window: tuple[date, date] | None = None,
) -> ParsedMinutes:
    """A `stk_mins` answer → normalized 1-minute bars, oldest first (`ts` = bar open in UTC; with
    `bar_label="start"` the label is taken as the open). `instrument`, when given, must be the
    only ts_code in the rows; `window` (first, last China day), when given, drops and counts rows
    of other days (`outside`)."""
    table = _table(answer, "stk_mins", instrument, day, STK_MINS_REQUIRED)
    page = _rows(MINUTES, table, instrument, day, None if instrument is None else {instrument}, window)
    result = ParsedMinutes(
        frame=pl.DataFrame(schema=BARS_SCHEMA),
        received=page.height,
        oldest=page["when"].min(),
        **Counter(page["dropped"].drop_nulls().to_list()),
    )
    kept = page.filter(pl.col("dropped").is_null())
    if kept.height:
        result.frame = _minutes_frame(
            kept.select("when", "instrument", *_NUMBERS, venue=_venues(MINUTES, kept, instrument, day)),
            bar_label,
        )
    return result


def _minutes_frame(bars: pl.DataFrame, bar_label: Literal["end", "start"]) -> pl.DataFrame:
    """Bars (`when` the label, China time; venue, instrument, `_NUMBERS`) in `BARS_SCHEMA`, by instrument
    and time."""
    shift = timedelta(minutes=1) if bar_label == "end" else timedelta(0)
    return (
        bars.with_columns(
            (pl.col("when").dt.replace_time_zone(CHINA_TZ).dt.convert_time_zone("UTC") - shift)
            .cast(UTC_US)
            .alias("ts"),
            pl.col("vol").alias("volume"),
            pl.lit(None, dtype=pl.Int64).alias("trades"),
        )
        .select(list(BARS_SCHEMA))
        .sort(["instrument", "ts"])
    )


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


def parse_daily(
    answer: Mapping | str | bytes | Table,
    *,
    instrument: str | None = None,
    day: Any = None,
    window: tuple[date, date] | None = None,
) -> ParsedDaily:
    """A `daily` answer → `DAILY_BARS_SCHEMA` (ts = 00:00 UTC of the trade date; lots → shares
    ×100, thousands of yuan → yuan ×1000). `instrument` may be a comma-separated ts_code list (as
    `daily` accepts it): every row must be of one of them."""
    table = _table(answer, "daily", instrument, day, DAILY_REQUIRED)
    page = _rows(
        DAILY, table, instrument, day, None if instrument is None else set(instrument.split(",")), window
    )
    result = ParsedDaily(
        frame=pl.DataFrame(schema=DAILY_BARS_SCHEMA),
        received=page.height,
        oldest=page["when"].min(),
        counts={code: Counter(rows=rows) for code, rows in Counter(page["instrument"]).items()},
    )
    for code, reason in (
        page.filter(pl.col("dropped").is_not_null()).select("instrument", "dropped").iter_rows()
    ):
        result.counts[code][reason] += 1
        setattr(result, reason, getattr(result, reason) + 1)
    kept = page.filter(pl.col("dropped").is_null())
    if kept.height:
        result.frame = _daily_frame(
            kept.select(
                "instrument", *_numbers(table), day="when", venue=_venues(DAILY, kept, instrument, day)
            )
        )
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
    return (
        bars.with_columns(
            pl.col("day").cast(pl.Datetime("us")).dt.replace_time_zone("UTC").alias("ts"),
            (pl.col("vol") * LOTS_TO_SHARES).round(4).alias("volume"),
            (pl.col("amount") * THOUSANDS_TO_YUAN).round(3).alias("amount"),
        )
        .select(list(DAILY_BARS_SCHEMA))
        .sort(["instrument", "ts"])
    )


def without_day(table: Table, day: date) -> Table:
    """The table without its rows of trade date `day` (a full `daily` page may end inside it)."""
    at = table.fields.index("trade_date")
    items = [row for row in table.items if parse_trade_date(row[at]) != day]
    return Table(table.fields, items, table.has_more, table.count)
