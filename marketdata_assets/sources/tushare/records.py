"""The declared wire of Tushare's answers: `Table` (`data`: column names once, rows as arrays in that order,
newest first); a row of each API declared once (`StkMinsRow`, `DailyRow`: field, unit, meaning) and as columns
(`declared_columns`: a page of exactly the declared JSON types is converted in C); fields, row limits,
units."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

STK_MINS_ROW_LIMIT = 8000
DAILY_ROW_LIMIT = 6000
STK_MINS_FIELDS = ("ts_code", "trade_time", "open", "close", "high", "low", "vol", "amount")
STK_MINS_REQUIRED = ("trade_time", "open", "high", "low", "close", "vol", "amount")
DAILY_FIELDS = (
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
)
DAILY_REQUIRED = ("ts_code", "trade_date", "open", "high", "low", "close", "vol", "amount")
LOTS_TO_SHARES = 100.0  # daily `vol` is in lots (手)
THOUSANDS_TO_YUAN = 1000.0  # daily `amount` is in thousands of yuan


@dataclass
class Table:
    """`data` of a Tushare answer: columns by name, rows newest first as sent."""

    fields: list[str]
    items: list[list[Any]]
    has_more: bool
    count: Any


# --------------------------------------------------------------------------------------------
# A row of `items`, by field name (the fields read; the others are ignored)
# --------------------------------------------------------------------------------------------


class StkMinsRow(msgspec.Struct):
    """One row of `stk_mins` (freq=1min): a bar labelled with its END. The day runs 09:30 (the opening
    auction) … 15:00, with zero-volume 14:58/14:59 while the closing auction collects orders."""

    trade_time: (
        str  # "2025-06-05 09:31:00", China time (no zone, no DST): the bar's END: ts = label - 1 min, UTC
    )
    open: float | None  # yuan, unadjusted: positive (null: the row is dropped, counted)
    close: float | None
    high: float | None
    low: float | None
    vol: float | None  # shares
    amount: float | None  # yuan
    ts_code: str = ""  # "600000.SH" (not in `fields`: the instrument asked for)


class DailyRow(msgspec.Struct):
    """One row of `daily`: an instrument's trade date (change, pct_chg unread)."""

    ts_code: str  # "600000.SH": one of the codes asked for
    trade_date: str  # "20250605", YYYYMMDD: ts = 00:00 UTC of that date
    open: float | None  # yuan, unadjusted: positive (null: the row is dropped, counted)
    high: float | None
    low: float | None
    close: float | None
    vol: float | None  # LOTS (手, 100 shares): volume = vol × 100
    amount: float | None  # THOUSANDS of yuan: amount × 1000
    pre_close: float | None = None  # the previous close, yuan (not in `fields`, or null: unknown)


def _columns_of(row: type) -> type:
    """`row`'s fields as columns: a list of its type each (a field with a default: None when the
    answer's `fields` lack it)."""
    return msgspec.defstruct(
        f"{row.__name__}Columns",
        [
            (f.name, list[f.type]) if f.required else (f.name, list[f.type] | None, None)
            for f in msgspec.structs.fields(row)
        ],
    )


STK_MINS_COLUMNS, DAILY_COLUMNS = _columns_of(StkMinsRow), _columns_of(DailyRow)


def declared_columns(columns: type, table: Table) -> Any:
    """The table's items turned into columns by `fields`, as `columns`; None if a value is not of its
    declared JSON type (the row readers then read it as they always did, or say what is wrong)."""
    width = len(table.fields)
    if len(set(table.fields)) != width or not all(
        type(row) is list and len(row) == width for row in table.items
    ):
        return None
    by_name = dict(zip(table.fields, list(zip(*table.items)) or [()] * width, strict=True))
    try:
        return msgspec.convert(by_name, columns, strict=True)
    except msgspec.ValidationError:
        return None
