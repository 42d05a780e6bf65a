"""Normalized tick frames (Polars): the one contract every venue adapter produces and every writer reads.

- trades: ``ts`` Datetime("us", "UTC"), ``venue``, ``instrument``, ``trade_id`` Utf8, ``price``,
  ``quantity``, ``amount`` (quote value) Float64, ``side`` Utf8 ("buy" | "sell", the taker's side),
  ``seq`` Int64 (nullable: a venue sequence number when there is one).
- book snapshots: ``ts``, ``venue``, ``instrument``, ``side`` ("bid" | "ask"), ``level`` Int32
  (0 = best), ``price``, ``quantity`` Float64, ``update_id`` Int64 (nullable).
- 1-minute bars: ``ts`` (bar open, UTC), ``venue``, ``instrument``, ``open``, ``high``, ``low``,
  ``close``, ``volume``, ``amount`` Float64, ``trades`` Int64 (nullable).
- daily bars (a vendor's own daily bars, e.g. Tushare ``daily``): ``ts`` = 00:00 UTC of the
  trading day (the exchange's date), ``venue``, ``instrument``, ``open``, ``high``, ``low``,
  ``close``, ``pre_close`` (nullable), ``volume``, ``amount`` Float64.

``venue`` / ``instrument`` follow core.naming (e.g. BINANCE / BTCUSDT, SSE / 600000.SH).
Only the columns listed in ``NULLABLE`` may hold nulls.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta, timezone
from typing import Any, ClassVar

import polars as pl

from marketdata_assets.core import plausibility
from marketdata_assets.core.http import Page, SourceDataError, bound

UTC_US = pl.Datetime("us", "UTC")

TRADES_SCHEMA: dict[str, pl.DataType] = {
    "ts": UTC_US,
    "venue": pl.Utf8,
    "instrument": pl.Utf8,
    "trade_id": pl.Utf8,
    "price": pl.Float64,
    "quantity": pl.Float64,
    "amount": pl.Float64,
    "side": pl.Utf8,
    "seq": pl.Int64,
}

BOOKS_SCHEMA: dict[str, pl.DataType] = {
    "ts": UTC_US,
    "venue": pl.Utf8,
    "instrument": pl.Utf8,
    "side": pl.Utf8,
    "level": pl.Int32,
    "price": pl.Float64,
    "quantity": pl.Float64,
    "update_id": pl.Int64,
}

# What every bar starts with (1-minute and daily alike).
_OHLC: dict[str, pl.DataType] = {
    "ts": UTC_US,
    "venue": pl.Utf8,
    "instrument": pl.Utf8,
    "open": pl.Float64,
    "high": pl.Float64,
    "low": pl.Float64,
    "close": pl.Float64,
}

BARS_SCHEMA: dict[str, pl.DataType] = {**_OHLC, "volume": pl.Float64, "amount": pl.Float64, "trades": pl.Int64}

DAILY_BARS_SCHEMA: dict[str, pl.DataType] = {**_OHLC, "pre_close": pl.Float64, "volume": pl.Float64,
                                             "amount": pl.Float64}

# The rest of seed 002's data model (docs/crypto-datasets.md has the venues' formats).
# Ticker snapshots: the top of the book and the day's activity as the venue reports them at `ts`.
TICKERS_SCHEMA: dict[str, pl.DataType] = {
    "ts": UTC_US, "venue": pl.Utf8, "instrument": pl.Utf8,
    "last": pl.Float64, "bid": pl.Float64, "bid_size": pl.Float64, "ask": pl.Float64, "ask_size": pl.Float64,
    "volume_24h": pl.Float64,       # base units
    "amount_24h": pl.Float64,       # quote units
    "mark_price": pl.Float64, "index_price": pl.Float64, "funding_rate": pl.Float64,
}
# Funding settlements of perpetuals: `rate` is what was settled at `ts` for the period of
# `interval_hours` that ends there (Binance fundingRate, OKX realizedRate, Deribit interest_1h);
# `rate_8h` the rate quoted over 8 hours (Deribit's interest_8h, else rate * 8 / interval_hours).
FUNDING_SCHEMA: dict[str, pl.DataType] = {
    "ts": UTC_US, "venue": pl.Utf8, "instrument": pl.Utf8,
    "rate": pl.Float64, "interval_hours": pl.Float64, "rate_8h": pl.Float64,
    "mark_price": pl.Float64, "index_price": pl.Float64,
}
# Open interest at `ts`: `contracts` of `contract_size` each (in `size_unit`: "base" or "quote"
# units a contract is worth), and the same as base units and as quote value.
OPEN_INTEREST_SCHEMA: dict[str, pl.DataType] = {
    "ts": UTC_US, "venue": pl.Utf8, "instrument": pl.Utf8,
    "contracts": pl.Float64, "contract_size": pl.Float64, "size_unit": pl.Utf8,
    "base": pl.Float64, "quote": pl.Float64,
}
# Forced liquidations: `side` is the liquidation order's side (sell: a long was closed).
LIQUIDATIONS_SCHEMA: dict[str, pl.DataType] = {
    "ts": UTC_US, "venue": pl.Utf8, "instrument": pl.Utf8, "liquidation_id": pl.Utf8,
    "side": pl.Utf8, "price": pl.Float64, "quantity": pl.Float64, "amount": pl.Float64,
}
# Mark and index price 1-minute bars (prices only; `ts` = bar open).
PRICE_BARS_SCHEMA: dict[str, pl.DataType] = dict(_OHLC)
# One option chain snapshot: `instrument` names the chain (DERIBIT BTC-OPTIONS: every BTC option),
# `option` each option in it; prices as the venue quotes them (Deribit: in the base coin), IVs in %.
OPTION_CHAIN_SCHEMA: dict[str, pl.DataType] = {
    "ts": UTC_US, "venue": pl.Utf8, "instrument": pl.Utf8, "option": pl.Utf8,
    "expiry": UTC_US, "strike": pl.Float64, "option_type": pl.Utf8,
    "underlying_price": pl.Float64, "underlying_index": pl.Utf8,
    "mark_price": pl.Float64, "mark_iv": pl.Float64, "bid_iv": pl.Float64, "ask_iv": pl.Float64,
    "bid_price": pl.Float64, "ask_price": pl.Float64, "open_interest": pl.Float64, "volume_24h": pl.Float64,
}
# Factors (ingest.factors): one row per factor of an instrument-day, `ts` = the day's 00:00 UTC.
FACTORS_SCHEMA: dict[str, pl.DataType] = {
    "ts": UTC_US, "venue": pl.Utf8, "instrument": pl.Utf8, "factor": pl.Utf8, "value": pl.Float64,
}

# Columns that may be null; every other column must be fully populated.
NULLABLE: dict[str, frozenset[str]] = {
    "trades": frozenset({"seq"}),
    "books": frozenset({"update_id"}),
    "bars_1m": frozenset({"trades"}),
    "daily_bars": frozenset({"pre_close"}),
    "tickers": frozenset({"last", "bid", "bid_size", "ask", "ask_size", "amount_24h", "mark_price",
                          "index_price", "funding_rate"}),
    "funding": frozenset({"mark_price", "index_price"}),
    "open_interest": frozenset(),
    "liquidations": frozenset(),
    "price_bars": frozenset(),
    "option_chain": frozenset({"bid_iv", "ask_iv", "bid_price", "ask_price", "volume_24h"}),
    "factors": frozenset({"value"}),
}

TRADE_SIDES = ("buy", "sell")
BOOK_SIDES = ("bid", "ask")
OPTION_TYPES = ("call", "put")
SIZE_UNITS = ("base", "quote")
# Columns holding one of a few words (stores.clickhouse.writer checks them): dataset -> column -> words.
WORDS: dict[str, dict[str, tuple[str, ...]]] = {
    "trades": {"side": TRADE_SIDES}, "agg_trades": {"side": TRADE_SIDES}, "books": {"side": BOOK_SIDES},
    "liquidations": {"side": TRADE_SIDES}, "open_interest": {"size_unit": SIZE_UNITS},
    "option_chain": {"option_type": OPTION_TYPES},
}


# --------------------------------------------------------------------------------------------
# Datasets: the frame each is written as and its ClickHouse table (one declaration each)
# --------------------------------------------------------------------------------------------

TS = "DateTime64(6, 'UTC')"
LC = "LowCardinality(String)"
FLOAT = "Float64 CODEC(ZSTD(1))"


@dataclass(frozen=True)
class Dataset:
    """A dataset: its name, the normalized frame it is written as, and its ClickHouse table."""

    name: str                      # trades | books | bars_1m | daily_bars | agg_trades | klines_<interval>
    code: str                      # its key in loads.dataset / ingest_log.dataset (the store's first names)
    table: str
    schema: dict                   # the Polars frame contract (datasets.frames)
    columns: tuple                 # (name, ClickHouse type + codec) for the frame columns, in order
    order_by: tuple
    nullable: frozenset
    key: str | None = None         # the column no two rows of a slice share (None: snapshots append)
    contracts: frozenset | None = None  # the contract kinds it exists for (core.contracts); None: all

    @property
    def view(self) -> str:
        return f"{self.table}_v"

    @property
    def range_view(self) -> str:
        return f"{self.table}_range"

    @property
    def column_names(self) -> tuple:
        return tuple(name for name, _ in self.columns)


TRADES = Dataset(
    name="trades", code="trades", table="trades", schema=TRADES_SCHEMA, nullable=NULLABLE["trades"],
    columns=(
        ("ts", f"{TS} CODEC(Delta, ZSTD(1))"),
        ("venue", LC),
        ("instrument", LC),
        ("trade_id", "String CODEC(ZSTD(1))"),
        ("price", FLOAT),
        ("quantity", FLOAT),
        ("amount", FLOAT),
        ("side", LC),
        ("seq", "Nullable(Int64) CODEC(Delta, ZSTD(1))"),
    ),
    order_by=("venue", "instrument", "ts", "trade_id"),
    key="trade_id",
)
BOOKS = Dataset(
    name="books", code="books", table="book_snapshots", schema=BOOKS_SCHEMA, nullable=NULLABLE["books"],
    columns=(
        ("ts", f"{TS} CODEC(Delta, ZSTD(1))"),
        ("venue", LC),
        ("instrument", LC),
        ("side", LC),
        ("level", "Int32 CODEC(ZSTD(1))"),
        ("price", FLOAT),
        ("quantity", FLOAT),
        ("update_id", "Nullable(Int64) CODEC(Delta, ZSTD(1))"),
    ),
    order_by=("venue", "instrument", "ts", "side", "level"),
)
_OHLC_COLUMNS = (("venue", LC), ("instrument", LC), ("open", FLOAT), ("high", FLOAT), ("low", FLOAT), ("close", FLOAT))
BARS = Dataset(
    name="bars_1m", code="bars", table="bars_1m", schema=BARS_SCHEMA, nullable=NULLABLE["bars_1m"],
    columns=(
        ("ts", f"{TS} CODEC(DoubleDelta, ZSTD(1))"),  # the regular 1-minute grid
        *_OHLC_COLUMNS,
        ("volume", FLOAT),
        ("amount", FLOAT),
        ("trades", "Nullable(Int64) CODEC(ZSTD(1))"),
    ),
    order_by=("venue", "instrument", "ts"),
    key="ts",
)
DAILY = Dataset(
    name="daily_bars", code="daily", table="daily_bars", schema=DAILY_BARS_SCHEMA, nullable=NULLABLE["daily_bars"],
    columns=(
        ("ts", f"{TS} CODEC(Delta, ZSTD(1))"),
        *_OHLC_COLUMNS,
        ("pre_close", "Nullable(Float64) CODEC(ZSTD(1))"),
        ("volume", FLOAT),
        ("amount", FLOAT),
    ),
    order_by=("venue", "instrument", "ts"),
    key="ts",
)
# data.binance.vision archives (sources.binance.archives): aggregate trades apart from the
# individual ones (`seq` is the aggregate id), and the daily files' kline intervals other than 1m, a
# table each (`klines_1h`, ...: `bars_1d_v` is already the daily bars made from trades).
AGG_TRADES = replace(TRADES, name="agg_trades", code="agg_trades", table="agg_trades")
KLINE_INTERVALS = ("1s", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d")
KLINES = {interval: replace(BARS, name=f"klines_{interval}", code=f"klines_{interval}", table=f"klines_{interval}")
          for interval in KLINE_INTERVALS}

def _columns(schema: dict, types: dict) -> tuple:
    """(name, ClickHouse type) of every frame column: `types` by name, else by the Polars type."""
    by_dtype = {pl.Float64: FLOAT, pl.Utf8: LC, pl.Int64: "Int64 CODEC(ZSTD(1))",
                UTC_US: f"{TS} CODEC(Delta, ZSTD(1))"}
    return tuple((name, types.get(name) or by_dtype[dtype]) for name, dtype in schema.items())


def _nullable(columns: tuple, nullable: frozenset) -> tuple:
    return tuple((name, f"Nullable({ctype.split(' CODEC')[0]}) CODEC(ZSTD(1))" if name in nullable else ctype)
                 for name, ctype in columns)


def _declare(name: str, code: str, table: str, schema: dict, *, nullable: str | None = None, order_by: tuple,
             key: str | None, contracts: tuple | None = None, types: dict | None = None) -> Dataset:
    """A dataset whose ClickHouse columns follow from its frame schema (`types` overrides)."""
    null = NULLABLE[nullable or name]
    return Dataset(name=name, code=code, table=table, schema=schema, nullable=null,
                   columns=_nullable(_columns(schema, types or {}), null), order_by=order_by, key=key,
                   contracts=frozenset(contracts) if contracts else None)


DERIVATIVES = ("perpetual", "future")
TICKERS = _declare("tickers", "tickers", "tickers", TICKERS_SCHEMA, order_by=("venue", "instrument", "ts"),
                   key=None)
FUNDING = _declare("funding", "funding", "funding_rates", FUNDING_SCHEMA,
                   order_by=("venue", "instrument", "ts"), key="ts", contracts=("perpetual",))
OPEN_INTEREST = _declare("open_interest", "open_interest", "open_interest", OPEN_INTEREST_SCHEMA,
                         order_by=("venue", "instrument", "ts"), key="ts", contracts=DERIVATIVES)
LIQUIDATIONS = _declare("liquidations", "liquidations", "liquidations", LIQUIDATIONS_SCHEMA,
                        order_by=("venue", "instrument", "ts", "liquidation_id"), key="liquidation_id",
                        contracts=DERIVATIVES, types={"liquidation_id": "String CODEC(ZSTD(1))"})
MARK_BARS = _declare("mark_bars_1m", "mark_bars", "mark_bars_1m", PRICE_BARS_SCHEMA, nullable="price_bars",
                     order_by=("venue", "instrument", "ts"), key="ts", contracts=DERIVATIVES,
                     types={"ts": f"{TS} CODEC(DoubleDelta, ZSTD(1))"})
INDEX_BARS = replace(MARK_BARS, name="index_bars_1m", code="index_bars", table="index_bars_1m")
OPTION_CHAIN = _declare("option_chain", "option_chain", "option_chain", OPTION_CHAIN_SCHEMA,
                        order_by=("venue", "instrument", "ts", "option"), key=None)
FACTORS = _declare("factors", "factors", "factors", FACTORS_SCHEMA,
                   order_by=("venue", "instrument", "ts", "factor"), key="factor")
DATASETS = {spec.name: spec for spec in (TRADES, BOOKS, BARS, DAILY, AGG_TRADES, *KLINES.values(),
                                         TICKERS, FUNDING, OPEN_INTEREST, LIQUIDATIONS, MARK_BARS,
                                         INDEX_BARS, OPTION_CHAIN, FACTORS)}


def spec_for(dataset: str) -> Dataset:
    """The declaration of a dataset (`DATASETS`: trades, books, bars_1m, funding, ...)."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}: expected one of {sorted(DATASETS)}")
    return DATASETS[dataset]


def empty_trades() -> pl.DataFrame:
    return pl.DataFrame(schema=TRADES_SCHEMA)


def empty_books() -> pl.DataFrame:
    return pl.DataFrame(schema=BOOKS_SCHEMA)


def empty_bars() -> pl.DataFrame:
    return pl.DataFrame(schema=BARS_SCHEMA)


def empty_daily_bars() -> pl.DataFrame:
    return pl.DataFrame(schema=DAILY_BARS_SCHEMA)


# --------------------------------------------------------------------------------------------
# Time: every frame holds UTC microseconds; intervals are half-open [start, end)
# --------------------------------------------------------------------------------------------

UTC = timezone.utc
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def as_utc(value: datetime) -> datetime:
    """Aware datetimes converted to UTC; naive ones taken as UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def to_us(value: datetime) -> int:
    """Epoch microseconds of a datetime (naive = UTC)."""
    delta = as_utc(value) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def floor_ms(value: datetime) -> int:
    return to_us(value) // 1000


def ceil_ms(value: datetime) -> int:
    return -(-to_us(value) // 1000)


def from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def epoch_to_us(value: int) -> int:
    """Epoch milliseconds (13 digits today) or microseconds (16 digits) → microseconds, by magnitude.
    Binance answers in microseconds when asked (X-MBX-TIME-UNIT) and its dumps switch per row."""
    if value >= 100_000_000_000_000:  # >= 1e14: microseconds (ms would be the year 5138)
        return value
    return value * 1000


# Epoch milliseconds or microseconds of 1973-03-03 .. 5138: below is seconds (or garbage), above nanoseconds.
EPOCH_MS_OR_US = (100_000_000_000, 100_000_000_000_000_000)


def day_of(value: datetime | None) -> date | None:
    return as_utc(value).date() if value is not None else None


def day_window(day: date) -> tuple[datetime, datetime]:
    """[00:00, next 00:00) UTC of a day."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + timedelta(days=1)


# --------------------------------------------------------------------------------------------
# Reading wire values: a clear SourceDataError naming the source, instrument, day and request
# --------------------------------------------------------------------------------------------

def number(value: Any, what: str, page: Page) -> float:
    """A finite float from a vendor string ("0.01633102") or JSON number; a clear error otherwise."""
    if isinstance(value, bool) or value is None:
        raise page.error(f"{what} is {value!r}, not a number")
    try:
        result = float(value)
    except (TypeError, ValueError):
        raise page.error(f"{what} is {value!r}, not a number") from None
    if not math.isfinite(result):
        raise page.error(f"{what} is {value!r}, not a finite number")
    return result


def integer(value: Any, what: str, page: Page) -> int:
    """An Int64 from a JSON integer, an integral float or a digit string; a clear error otherwise."""
    if isinstance(value, bool) or value is None:
        raise page.error(f"{what} is {value!r}, not an integer")
    if isinstance(value, int):
        result = value
    elif (isinstance(value, str) and value.strip().lstrip("-").isdigit()) or (
            isinstance(value, float) and value.is_integer()):
        result = int(value)
    else:
        raise page.error(f"{what} is {value!r}, not an integer")
    if not -(2**63) <= result < 2**63:
        raise page.error(f"{what} is {str(value)[:40]}, out of the 64-bit integer range")
    return result


def epoch_us(value: Any, what: str, page: Page) -> int:
    """Epoch milliseconds or microseconds (`epoch_to_us`) → microseconds; seconds, nanoseconds or a
    negative time is a clear error (seconds read as milliseconds would be stored in 1970). 0 is
    epoch zero, a placeholder stamp: kept as 1970-01-01 for the plausibility rule to drop and count
    (`drop_implausible`), so one such row does not fail its page."""
    raw = integer(value, what, page)
    if raw == 0:
        return 0
    if not EPOCH_MS_OR_US[0] <= raw < EPOCH_MS_OR_US[1]:
        raise page.error(f"{what} is {raw}: neither epoch milliseconds nor microseconds (seconds? nanoseconds?)")
    return epoch_to_us(raw)


def field(record: Any, key: str, what: str, page: Page) -> Any:
    if not isinstance(record, dict):
        raise page.error(f"{what} is {type(record).__name__} {str(record)[:80]!r}, not an object")
    try:
        return record[key]
    except KeyError:
        raise page.error(f"{what} lacks field {key!r} (has {sorted(record)[:12]})") from None


def positive(price: float, what: str, page: Page, name: str = "price") -> float:
    if price <= 0:
        raise page.error(f"{what} {name} is {price}, not positive")
    return price


def not_negative(value: float, what: str, page: Page) -> float:
    if value < 0:
        raise page.error(f"{what} is {value}, negative")
    return value


def check_bar(what: str, page: Page, ts_us: int, o: float, h: float, lo: float, c: float, volume: float,
              minute: bool = True) -> None:
    """A bar that can be true: opens on a minute (`minute`), positive prices, low <= open/close <=
    high, volume >= 0; a clear error naming the bar otherwise."""
    if minute and ts_us % 60_000_000:
        raise page.error(f"{what} opens at {from_us(ts_us).isoformat()}, not on a minute: not a 1-minute bar")
    for name, price in (("open", o), ("high", h), ("low", lo), ("close", c)):
        positive(price, what, page, name)
    if not lo <= min(o, c) <= max(o, c) <= h:
        raise page.error(f"{what} is not a bar: open {o}, high {h}, low {lo}, close {c}")
    not_negative(volume, f"{what} volume", page)


# --------------------------------------------------------------------------------------------
# Building frames from parsed records
# --------------------------------------------------------------------------------------------

class Columns:
    """Accumulates parsed records (`add` takes the `fields` in order, `ts` in epoch microseconds);
    `frame(venue, instrument)` builds the normalized frame of `schema`. A record is kept as one
    tuple (one append per record: this is the parsers' hot loop) and transposed once at the end."""

    fields: ClassVar[tuple[str, ...]] = ()
    schema: ClassVar[dict[str, pl.DataType]] = {}

    def __init__(self):
        self._rows: list[tuple] = []

    def add(self, *values) -> None:
        self._rows.append(values)

    def __len__(self) -> int:
        return len(self._rows)

    def frame(self, venue: str, instrument: str) -> pl.DataFrame:
        n = len(self._rows)
        columns = list(zip(*self._rows)) if n else [() for _ in self.fields]
        data = {name: pl.Series(values, dtype=pl.Int64 if self.schema[name] == UTC_US else self.schema[name])
                for name, values in zip(self.fields, columns, strict=True)}
        data["venue"] = pl.Series([venue] * n, dtype=pl.Utf8)
        data["instrument"] = pl.Series([instrument] * n, dtype=pl.Utf8)
        for name in self.fields:  # times are added as epoch microseconds
            if self.schema[name] == UTC_US:
                data[name] = data[name].cast(UTC_US)
        return pl.DataFrame([data[name] for name in self.schema], schema=self.schema)


class TradeColumns(Columns):
    """add(ts_us, trade_id, price, quantity, amount, side, seq)."""

    fields = ("ts", "trade_id", "price", "quantity", "amount", "side", "seq")
    schema = TRADES_SCHEMA


class BarColumns(Columns):
    """add(ts_us, open, high, low, close, volume, amount, trades)."""

    fields = ("ts", "open", "high", "low", "close", "volume", "amount", "trades")
    schema = BARS_SCHEMA


def columns_of(dataset: str) -> Columns:
    """Columns for any dataset: `add` takes its schema's columns but venue and instrument, in order
    (funding: ts_us, rate, interval_hours, rate_8h, mark_price, index_price); time columns (`ts`,
    `expiry`) as epoch microseconds."""
    spec = spec_for(dataset)

    class Of(Columns):
        fields = tuple(name for name in spec.schema if name not in ("venue", "instrument"))
        schema = spec.schema

    return Of()


# --------------------------------------------------------------------------------------------
# What a fetch did to its rows: each dropped row counted with its reason, each unit conversion
# named. The counts reach the source client's `dropped_<reason>` figures (`IngestReport.sources`)
# and, through `noting()`, the fetch's slices (ingest_log `dropped` / `conversions`, metadata).
# --------------------------------------------------------------------------------------------

DROP_REASONS: dict[str, str] = {
    "null_rows": "every value null (a minute without trades)",
    "partial_rows": "some values null",
    "unconfirmed": 'a bar still forming (OKX confirm "0"): stored once it is final',
    "duplicates": "a trade id or bar time sent again with the same values (pages that overlap), or a line "
                  "repeated in a dump file",
    "not_filled": "a liquidation order that filled nothing (a Binance liquidationSnapshot line with "
                  "accumulated_fill_quantity 0)",
    "outside_window": "stamped outside the window the request asked for",
    "past_window_edge": "beyond the window's edge in the paging direction (paging by id, or newest first, "
                        "cannot stop exactly there): the neighbouring slice's rows",
    "other_instrument": "a record of another instrument answered alongside (OKX liquidations are asked "
                        "by instrument family)",
    "implausible_time": "stamped after now + the tolerance or before the venue's earliest plausible day "
                        "(core/plausibility.py: an epoch-zero 1970 stamp, a year typo)",
}


@dataclass
class FetchNotes:
    """One fetch's drops (instrument -> reason -> rows; by (instrument, UTC day) where the parser
    knows the dropped row's day) and unit conversions (instrument -> descriptions), collected while
    the engine runs it inside `noting()`."""

    dropped: dict[str, Counter] = dataclasses.field(default_factory=dict)
    dropped_on: dict[tuple[str, date], Counter] = dataclasses.field(default_factory=dict)
    conversions: dict[str, dict[str, None]] = dataclasses.field(default_factory=dict)  # an ordered set

    def drop(self, instrument: str, reason: str, rows: int = 1, day: date | None = None) -> None:
        if reason not in DROP_REASONS:
            raise ValueError(f"{reason!r} is not a documented drop reason ({sorted(DROP_REASONS)})")
        if rows:
            counter = self.dropped_on.setdefault((instrument, day), Counter()) if day else \
                self.dropped.setdefault(instrument, Counter())
            counter[reason] += rows

    def convert(self, instrument: str, description: str) -> None:
        self.conversions.setdefault(instrument, {})[description] = None


_fetch_notes: contextvars.ContextVar[FetchNotes | None] = contextvars.ContextVar("fetch_notes", default=None)


def noting(notes: FetchNotes) -> contextlib.AbstractContextManager[FetchNotes]:
    """Record the drops and conversions of the parsing done inside the block (in this task) on `notes`."""
    return bound(_fetch_notes, notes)


def note_dropped(instrument: str, reason: str, rows: int = 1, day: date | None = None) -> None:
    """Count `rows` of `instrument` dropped for `reason` on the running fetch (if any), on the
    slice of `day` when the parser knows it."""
    if (notes := _fetch_notes.get()) is not None:
        notes.drop(instrument, reason, rows, day)


def note_conversion(instrument: str, description: str) -> None:
    """Record a unit conversion applied to `instrument`'s rows on the running fetch (if any), e.g.
    "price GBp -> GBP (/100)"; recorded per slice so a user can see what was done to the numbers."""
    if (notes := _fetch_notes.get()) is not None:
        notes.convert(instrument, description)


# The Tushare and Yahoo clients' own names of the rows they drop -> DROP_REASONS.
_QUALITY_DROPS = {"null_rows": "null_rows", "null_minutes": "null_rows", "partial_rows": "partial_rows",
                  "duplicates": "duplicates", "outside": "outside_window"}


def count_quality(quality: dict[str, Counter], instrument: str, counts: dict[str, int], *,
                  note: bool = True) -> None:
    """Add `counts` to a client's per-instrument quality counters; the dropped rows among them are
    noted on the running fetch too (`note=False`: the parser noted them by day itself)."""
    counter = quality.setdefault(instrument, Counter())
    for key, value in counts.items():
        if value:
            counter[key] += value
            if note and key in _QUALITY_DROPS:
                note_dropped(instrument, _QUALITY_DROPS[key], value)


class _Tally(Counter):
    """An instrument's drop counter: every increment is also noted on the running fetch."""

    def __init__(self, instrument: str):
        super().__init__()
        self.instrument = instrument

    def __setitem__(self, reason, value) -> None:
        delta = value - self.get(reason, 0)
        super().__setitem__(reason, value)
        if delta > 0:
            note_dropped(self.instrument, reason, delta)


class DropCounts:
    """Rows a source's parsers dropped, per instrument and reason (`DROP_REASONS`); `figures()` gives
    the totals as `dropped_<reason>` for the client's figures. Counts go to the running fetch's
    notes too (`noting`)."""

    def __init__(self):
        self.by_instrument: dict[str, Counter] = {}

    def of(self, instrument: str) -> Counter:
        return self.by_instrument.setdefault(instrument, _Tally(instrument))

    def totals(self) -> Counter:
        total: Counter = Counter()
        for counter in self.by_instrument.values():
            total.update(counter)
        return total

    def figures(self) -> dict[str, int]:
        totals = self.totals()
        return {f"dropped_{reason}": totals.get(reason, 0) for reason in DROP_REASONS}


def nulls_in(values) -> str | None:
    """Why a parsed record with missing values is dropped (counted by the parser): "null_rows"
    when every value is null, "partial_rows" when some are, None when none are."""
    nulls = sum(v is None for v in values)
    if not nulls:
        return None
    return "null_rows" if nulls == len(values) else "partial_rows"


def book_levels(levels: Any, side: str, page: Page, *, what: str, shape: str, price: str, size: str,
                base=None) -> list[tuple[float, float]]:
    """One side of a book answer, `[[price, size, ...], ...]`, as (price, base quantity) pairs;
    `base(price, size)` converts a venue's size (contracts, USD) into base units. `what`, `shape`,
    `price` and `size` are the venue's own words, for the error messages."""
    if not isinstance(levels, list):
        raise page.error(f"{what} {side} is {type(levels).__name__}, not an array")
    out = []
    for i, level in enumerate(levels):
        if not isinstance(level, list) or len(level) < 2:
            raise page.error(f"{what} {side}[{i}] is not a {shape}: {str(level)[:80]}")
        px = positive(number(level[0], f"{side}[{i}] {price}", page), f"{side}[{i}]", page)
        quantity = number(level[1], f"{side}[{i}] {size}", page)
        out.append((px, base(px, quantity) if base is not None else quantity))
    return out


def book_frame(venue: str, instrument: str, ts_us: int, update_id: int | None,
               bids: list[tuple[float, float]], asks: list[tuple[float, float]]) -> pl.DataFrame:
    rows = [("bid", i, p, q) for i, (p, q) in enumerate(bids)] + [("ask", i, p, q) for i, (p, q) in enumerate(asks)]
    n = len(rows)
    return pl.DataFrame({
        "ts": pl.Series([ts_us] * n, dtype=pl.Int64).cast(UTC_US),
        "venue": pl.Series([venue] * n, dtype=pl.Utf8),
        "instrument": pl.Series([instrument] * n, dtype=pl.Utf8),
        "side": pl.Series([r[0] for r in rows], dtype=pl.Utf8),
        "level": pl.Series([r[1] for r in rows], dtype=pl.Int32),
        "price": pl.Series([r[2] for r in rows], dtype=pl.Float64),
        "quantity": pl.Series([r[3] for r in rows], dtype=pl.Float64),
        "update_id": pl.Series([update_id] * n, dtype=pl.Int64),
    }, schema=BOOKS_SCHEMA)


def drop_implausible(frame: pl.DataFrame, drops: Counter | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(plausible rows, implausible rows with their `reason`) of a frame with `ts` and `venue`: the
    rows core.plausibility rejects are counted as `implausible_time`, on `drops` (one instrument's
    counter) or, without one, per instrument on the running fetch."""
    kept, rejected = plausibility.split(frame)
    if rejected.height:
        if drops is not None:
            drops["implausible_time"] += rejected.height
        else:
            for instrument, rows in rejected.group_by("instrument").len().iter_rows():
                note_dropped(instrument, "implausible_time", rows)
    return kept, rejected


def _window(frames: Sequence[pl.DataFrame], schema: dict, start: datetime | None, end: datetime | None,
            drops: Counter | None, paged: str | None) -> pl.DataFrame:
    """The pages as one frame, rows of implausible times dropped and counted (`implausible_time`,
    before any window: a 1970 stamp is not a neighbouring slice's row), then rows outside [start,
    end): `past_window_edge` on the side the pages ran towards (`paged` "forward": after `end`;
    "backward": before `start`), `outside_window` for every other one."""
    frame = pl.concat(list(frames), how="vertical") if frames else pl.DataFrame(schema=schema)
    frame, _ = drop_implausible(frame, drops)
    before = after = 0
    if start is not None:
        early = pl.col("ts") < as_utc(start)
        before = frame.select(early.sum()).item() if frame.height else 0
        frame = frame.filter(~early) if before else frame
    if end is not None:
        late = pl.col("ts") >= as_utc(end)
        after = frame.select(late.sum()).item() if frame.height else 0
        frame = frame.filter(~late) if after else frame
    if drops is not None:
        edge = {"forward": after, "backward": before}.get(paged or "", 0)
        for reason, count in (("past_window_edge", edge), ("outside_window", before + after - edge)):
            if count:
                drops[reason] += count
    return frame


def _once(frame: pl.DataFrame, key: str, what: str, start: datetime | None, drops: Counter | None) -> pl.DataFrame:
    """Each `key` once: a row sent again with the same values is dropped and counted (`duplicates`);
    one key with different values is a SourceDataError naming it."""
    if frame.height == 0 or frame[key].is_unique().all():
        return frame
    distinct = frame.unique(maintain_order=True)
    if distinct[key].n_unique() != distinct.height:
        repeated = distinct.filter(pl.col(key).is_duplicated())
        value = repeated[key][0]
        rows = repeated.filter(pl.col(key) == value).drop("venue", "instrument").rows(named=True)
        value = value.isoformat() if isinstance(value, datetime) else value
        raise SourceDataError(frame["instrument"][0], day_of(start) or day_of(frame["ts"][0]),
                              f"{what} {value} comes {len(rows)} times with different values: "
                              f"{str(rows)[:300]}", source=frame["venue"][0])
    if drops is not None:
        drops["duplicates"] += frame.height - distinct.height
    return distinct


def finish_trades(frames: Sequence[pl.DataFrame], start: datetime | None = None,
                  end: datetime | None = None, drops: Counter | None = None, paged: str | None = None) -> pl.DataFrame:
    """Concatenate pages, keep [start, end), each trade id once, order by (ts, seq); `drops` counts
    what is dropped, by reason (`_window`, `_once`: one id with different values is an error)."""
    frame = _once(_window(frames, TRADES_SCHEMA, start, end, drops, paged), "trade_id", "trade id", start, drops)
    return frame.sort(["ts", "seq"], nulls_last=True, maintain_order=True)


def finish(dataset: str, frames: Sequence[pl.DataFrame], start: datetime | None = None,
           end: datetime | None = None, drops: Counter | None = None,
           paged: str | None = None) -> pl.DataFrame:
    """Any dataset's pages as one frame: [start, end) kept, each `key` once (the same row twice
    counted as a duplicate, one key with different values an error), ordered by the table's order."""
    spec = spec_for(dataset)
    frame = _window(frames, spec.schema, start, end, drops, paged)
    if spec.key:
        frame = _once(frame, spec.key, spec.key, start, drops)
    return frame.sort([c for c in spec.order_by if c not in ("venue", "instrument")], maintain_order=True)


def finish_bars(frames: Sequence[pl.DataFrame], start: datetime | None = None,
                end: datetime | None = None, drops: Counter | None = None, paged: str | None = None) -> pl.DataFrame:
    """Concatenate pages, keep [start, end), one bar per ts (the same bar twice counted, two
    different bars of one minute an error), oldest first."""
    frame = _once(_window(frames, BARS_SCHEMA, start, end, drops, paged), "ts", "the bar of", start, drops)
    return frame.sort("ts", maintain_order=True)
