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

import difflib
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Annotated

import msgspec
import polars as pl

Int64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]  # an integer that fits the tables' Int64

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

BARS_SCHEMA: dict[str, pl.DataType] = {
    **_OHLC,
    "volume": pl.Float64,
    "amount": pl.Float64,
    "trades": pl.Int64,
}

DAILY_BARS_SCHEMA: dict[str, pl.DataType] = {
    **_OHLC,
    "pre_close": pl.Float64,
    "volume": pl.Float64,
    "amount": pl.Float64,
}

# The rest of the crypto data model (docs/crypto-datasets.md has the venues' formats).
# Ticker snapshots: the top of the book and the day's activity as the venue reports them at `ts`.
TICKERS_SCHEMA: dict[str, pl.DataType] = {
    "ts": UTC_US,
    "venue": pl.Utf8,
    "instrument": pl.Utf8,
    "last": pl.Float64,
    "bid": pl.Float64,
    "bid_size": pl.Float64,
    "ask": pl.Float64,
    "ask_size": pl.Float64,
    "volume_24h": pl.Float64,  # base units
    "amount_24h": pl.Float64,  # quote units
    "mark_price": pl.Float64,
    "index_price": pl.Float64,
    "funding_rate": pl.Float64,
}
# Funding settlements of perpetuals: `rate` is what was settled at `ts` for the period of
# `interval_hours` that ends there (Binance fundingRate, OKX realizedRate, Deribit interest_1h);
# `rate_8h` the rate quoted over 8 hours (Deribit's interest_8h, else rate * 8 / interval_hours).
FUNDING_SCHEMA: dict[str, pl.DataType] = {
    "ts": UTC_US,
    "venue": pl.Utf8,
    "instrument": pl.Utf8,
    "rate": pl.Float64,
    "interval_hours": pl.Float64,
    "rate_8h": pl.Float64,
    "mark_price": pl.Float64,
    "index_price": pl.Float64,
}
# Open interest at `ts`: `contracts` of `contract_size` each (in `size_unit`: "base" or "quote"
# units a contract is worth), and the same as base units and as quote value.
OPEN_INTEREST_SCHEMA: dict[str, pl.DataType] = {
    "ts": UTC_US,
    "venue": pl.Utf8,
    "instrument": pl.Utf8,
    "contracts": pl.Float64,
    "contract_size": pl.Float64,
    "size_unit": pl.Utf8,
    "base": pl.Float64,
    "quote": pl.Float64,
}
# Forced liquidations: `side` is the liquidation order's side (sell: a long was closed); `price` what it
# filled at (Binance: the fills' average `ap`, the order's price while nothing filled; OKX bkPx; Deribit
# the trade's), `order_price` the liquidation order's own price where the venue sends it apart (Binance
# `p`, and the archives' `price`; null elsewhere), quote per base as `price`.
LIQUIDATIONS_SCHEMA: dict[str, pl.DataType] = {
    "ts": UTC_US,
    "venue": pl.Utf8,
    "instrument": pl.Utf8,
    "liquidation_id": pl.Utf8,
    "side": pl.Utf8,
    "price": pl.Float64,
    "quantity": pl.Float64,
    "amount": pl.Float64,
    "order_price": pl.Float64,
}
# Mark, index and funding-rate samples as a contract's live stream reports them at `ts` (Binance
# USD-M markPrice, OKX mark-price and funding-rate, Deribit ticker): NOT settlements (`funding`):
# `funding_rate` is the running period's current/predicted rate, `next_funding_time` the settlement
# it is for (null where the venue funds continuously: Deribit), `funding_rate_8h` the rate over 8 hours
# where the venue sends it beside the current one (Deribit's ticker `funding_8h`, as `funding.rate_8h` is
# its `interest_8h`). Each column null where the sample does not carry it (OKX sends mark and funding apart).
MARK_FUNDING_SCHEMA: dict[str, pl.DataType] = {
    "ts": UTC_US,
    "venue": pl.Utf8,
    "instrument": pl.Utf8,
    "mark_price": pl.Float64,
    "index_price": pl.Float64,
    "funding_rate": pl.Float64,
    "next_funding_time": UTC_US,
    "funding_rate_8h": pl.Float64,
}
# Mark and index price 1-minute bars (prices only; `ts` = bar open).
PRICE_BARS_SCHEMA: dict[str, pl.DataType] = dict(_OHLC)
# One option chain snapshot: `instrument` names the chain (DERIBIT BTC-OPTIONS: every BTC option),
# `option` each option in it; prices as the venue quotes them (Deribit: in the base coin), IVs in %.
OPTION_CHAIN_SCHEMA: dict[str, pl.DataType] = {
    "ts": UTC_US,
    "venue": pl.Utf8,
    "instrument": pl.Utf8,
    "option": pl.Utf8,
    "expiry": UTC_US,
    "strike": pl.Float64,
    "option_type": pl.Utf8,
    "underlying_price": pl.Float64,
    "underlying_index": pl.Utf8,
    "mark_price": pl.Float64,
    "mark_iv": pl.Float64,
    "bid_iv": pl.Float64,
    "ask_iv": pl.Float64,
    "bid_price": pl.Float64,
    "ask_price": pl.Float64,
    "open_interest": pl.Float64,
    "volume_24h": pl.Float64,
}
# Factors (ingest.factors): one row per factor of an instrument-day, `ts` = the day's 00:00 UTC.
FACTORS_SCHEMA: dict[str, pl.DataType] = {
    "ts": UTC_US,
    "venue": pl.Utf8,
    "instrument": pl.Utf8,
    "factor": pl.Utf8,
    "value": pl.Float64,
}

# Columns that may be null; every other column must be fully populated.
NULLABLE: dict[str, frozenset[str]] = {
    "trades": frozenset({"seq"}),
    "books": frozenset({"update_id"}),
    "bars_1m": frozenset({"trades"}),
    "daily_bars": frozenset({"pre_close"}),
    "tickers": frozenset(
        {
            "last",
            "bid",
            "bid_size",
            "ask",
            "ask_size",
            "volume_24h",
            "amount_24h",
            "mark_price",
            "index_price",
            "funding_rate",
        }
    ),  # volume_24h: a live best bid/ask has none
    "mark_funding": frozenset(
        {"mark_price", "index_price", "funding_rate", "next_funding_time", "funding_rate_8h"}
    ),
    "funding": frozenset({"mark_price", "index_price"}),
    "open_interest": frozenset({"quote"}),  # OKX pushes before `oiUsd` was added carry no quote amount
    "liquidations": frozenset({"order_price"}),
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
    "trades": {"side": TRADE_SIDES},
    "agg_trades": {"side": TRADE_SIDES},
    "books": {"side": BOOK_SIDES},
    "liquidations": {"side": TRADE_SIDES},
    "open_interest": {"size_unit": SIZE_UNITS},
    "option_chain": {"option_type": OPTION_TYPES},
}


# --------------------------------------------------------------------------------------------
# Datasets: the frame each is written as and its ClickHouse table (one declaration each)
# --------------------------------------------------------------------------------------------

TS = "DateTime64(6, 'UTC')"
LC = "LowCardinality(String)"
FLOAT = "Float64 CODEC(ZSTD(1))"


@dataclass(frozen=True)
class Stamping:
    """How a bar dataset's time column is stamped and its prices adjusted (every bar frame the read API
    returns states it, read/conventions.py)."""

    interval: timedelta | None  # the bar's length (None: a calendar month)
    label: str = "start"  # start: the bar's first instant | end: its last | day: the trading day, 00:00
    tz: str = "UTC"  # the zone the store keeps the time column in
    adjustment: str = "none"  # none: prices as traded | qfq: forward-adjusted (latest as traded)


MINUTE = Stamping(timedelta(minutes=1))


@dataclass(frozen=True)
class Dataset:
    """A dataset: its name, the normalized frame it is written as, and its ClickHouse table."""

    name: str  # trades | books | bars_1m | daily_bars | agg_trades | klines_<interval> | ...
    code: str  # its key in loads.dataset / ingest_log.dataset (the store's first names)
    table: str
    schema: dict  # the Polars frame contract (datasets.frames)
    columns: tuple  # (name, ClickHouse type + codec) for the frame columns, in order
    order_by: tuple
    nullable: frozenset
    key: str | None = None  # the column no two rows of a slice share (None: snapshots append)
    contracts: frozenset | None = None  # the contract types it exists for (core.contracts); None: all
    bars: Stamping | None = None  # a bar dataset: how its `ts` is stamped (None: events and snapshots)
    # The sources whose loads are more faithful than the venues' own APIs and streams, the most faithful
    # first: a load never replaces an active one of a source ranked above it unless asked (`replace`);
    # every source not named ranks below them, alike (the last load of those wins). Source names, as
    # sources.registry declares them (datasets import no source).
    fidelity: tuple[str, ...] = ()

    def rank(self, source: str) -> int:
        """How faithful a load of `source` is: 0 for the first of `fidelity`, len(fidelity) for any other."""
        return self.fidelity.index(source) if source in self.fidelity else len(self.fidelity)

    def outranks(self, source: str, other: str) -> bool:
        """Whether a load of `source` is more faithful than one of `other` (it is kept over it)."""
        return self.rank(source) < self.rank(other)

    @property
    def view(self) -> str:
        return f"{self.table}_v"

    @property
    def range_view(self) -> str:
        return f"{self.table}_range"

    @property
    def column_names(self) -> tuple:
        return tuple(name for name, _ in self.columns)


# Fidelity (Dataset.fidelity): a verified archive of data.binance.vision (its published SHA-256 checked)
# over a dump file dropped in the landing (the same files, unverified) over the venues' REST APIs and
# live streams (Binance's REST trades are aggregate trades: docs/ticks.md, "Fidelity").
_ARCHIVE = "BINANCE_ARCHIVE"
_FILES_FIRST = (_ARCHIVE, "BINANCE_DUMPS")
BOOKS_SPEC = Dataset(
    name="books",
    code="books",
    table="book_snapshots",
    schema=BOOKS_SCHEMA,
    nullable=NULLABLE["books"],
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
_OHLC_COLUMNS = (
    ("venue", LC),
    ("instrument", LC),
    ("open", FLOAT),
    ("high", FLOAT),
    ("low", FLOAT),
    ("close", FLOAT),
)
BARS_SPEC = Dataset(
    name="bars_1m",
    code="bars",
    table="bars_1m",
    schema=BARS_SCHEMA,
    nullable=NULLABLE["bars_1m"],
    columns=(
        ("ts", f"{TS} CODEC(DoubleDelta, ZSTD(1))"),  # the regular 1-minute grid
        *_OHLC_COLUMNS,
        ("volume", FLOAT),
        ("amount", FLOAT),
        ("trades", "Nullable(Int64) CODEC(ZSTD(1))"),
    ),
    order_by=("venue", "instrument", "ts"),
    key="ts",
    bars=MINUTE,
    fidelity=_FILES_FIRST,
)
DAILY_SPEC = Dataset(
    name="daily_bars",
    code="daily",
    table="daily_bars",
    schema=DAILY_BARS_SCHEMA,
    nullable=NULLABLE["daily_bars"],
    columns=(
        ("ts", f"{TS} CODEC(Delta, ZSTD(1))"),
        *_OHLC_COLUMNS,
        ("pre_close", "Nullable(Float64) CODEC(ZSTD(1))"),
        ("volume", FLOAT),
        ("amount", FLOAT),
    ),
    order_by=("venue", "instrument", "ts"),
    key="ts",
    bars=Stamping(timedelta(days=1), label="day"),  # ts = the trade date's 00:00 UTC
)
# data.binance.vision's daily kline files of the intervals other than 1m, a table each (`klines_1h`, ...:
# `bars_1d_v` is already the daily bars made from trades); its aggregate trades: AGG_TRADES_SPEC.
KLINE_INTERVALS = ("1s", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d")
_UNIT = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
KLINE_SPECS = {
    interval: replace(
        BARS_SPEC,
        name=f"klines_{interval}",
        code=f"klines_{interval}",
        table=f"klines_{interval}",
        fidelity=(_ARCHIVE,),
        bars=Stamping(timedelta(**{_UNIT[interval[-1]]: int(interval[:-1])})),
    )
    for interval in KLINE_INTERVALS
}


def _columns(schema: dict, types: dict) -> tuple:
    """(name, ClickHouse type) of every frame column: `types` by name, else by the Polars type."""
    by_dtype = {
        pl.Float64: FLOAT,
        pl.Utf8: LC,
        pl.Int64: "Int64 CODEC(ZSTD(1))",
        UTC_US: f"{TS} CODEC(Delta, ZSTD(1))",
    }
    return tuple((name, types.get(name) or by_dtype[dtype]) for name, dtype in schema.items())


def _nullable(columns: tuple, nullable: frozenset) -> tuple:
    """The columns, a nullable one's type Nullable (one `types` gave as Nullable kept as given)."""
    return tuple(
        (
            name,
            f"Nullable({ctype.split(' CODEC')[0]}) CODEC(ZSTD(1))"
            if name in nullable and not ctype.startswith("Nullable(")
            else ctype,
        )
        for name, ctype in columns
    )


def _declare(
    name: str,
    code: str,
    table: str,
    schema: dict,
    *,
    nullable: str | None = None,
    order_by: tuple,
    key: str | None,
    contracts: tuple | None = None,
    types: dict | None = None,
    bars: Stamping | None = None,
) -> Dataset:
    """A dataset whose ClickHouse columns follow from its frame schema (`types` overrides)."""
    null = NULLABLE[nullable or name]
    return Dataset(
        name=name,
        code=code,
        table=table,
        schema=schema,
        nullable=null,
        columns=_nullable(_columns(schema, types or {}), null),
        order_by=order_by,
        key=key,
        contracts=frozenset(contracts) if contracts else None,
        bars=bars,
    )


# the trades table's columns follow from TRADES_SCHEMA (by dtype; `types`: the two that differ)
TRADES_SPEC = replace(
    _declare(
        "trades",
        "trades",
        "trades",
        TRADES_SCHEMA,
        order_by=("venue", "instrument", "ts", "trade_id"),
        key="trade_id",
        types={"trade_id": "String CODEC(ZSTD(1))", "seq": "Nullable(Int64) CODEC(Delta, ZSTD(1))"},
    ),
    fidelity=_FILES_FIRST,
)
# data.binance.vision archives (sources.binance_vision.archives): aggregate trades apart from the
# individual ones (`seq` is the aggregate id).
AGG_TRADES_SPEC = replace(
    TRADES_SPEC, name="agg_trades", code="agg_trades", table="agg_trades", fidelity=(_ARCHIVE,)
)
DERIVATIVES = ("perpetual", "future")
TICKERS_SPEC = _declare(
    "tickers", "tickers", "tickers", TICKERS_SCHEMA, order_by=("venue", "instrument", "ts"), key=None
)
FUNDING_SPEC = _declare(
    "funding",
    "funding",
    "funding_rates",
    FUNDING_SCHEMA,
    order_by=("venue", "instrument", "ts"),
    key="ts",
    contracts=("perpetual",),
)
OPEN_INTEREST_SPEC = _declare(
    "open_interest",
    "open_interest",
    "open_interest",
    OPEN_INTEREST_SCHEMA,
    order_by=("venue", "instrument", "ts"),
    key="ts",
    contracts=DERIVATIVES,
)
LIQUIDATIONS_SPEC = replace(
    _declare(
        "liquidations",
        "liquidations",
        "liquidations",
        LIQUIDATIONS_SCHEMA,
        order_by=("venue", "instrument", "ts", "liquidation_id"),
        key="liquidation_id",
        contracts=DERIVATIVES,
        types={"liquidation_id": "String CODEC(ZSTD(1))"},
    ),
    fidelity=(_ARCHIVE,),
)  # liquidationSnapshot files over the live forceOrder snapshots
MARK_BARS_SPEC = _declare(
    "mark_bars_1m",
    "mark_bars",
    "mark_bars_1m",
    PRICE_BARS_SCHEMA,
    nullable="price_bars",
    order_by=("venue", "instrument", "ts"),
    key="ts",
    contracts=DERIVATIVES,
    types={"ts": f"{TS} CODEC(DoubleDelta, ZSTD(1))"},
    bars=MINUTE,
)
INDEX_BARS_SPEC = replace(MARK_BARS_SPEC, name="index_bars_1m", code="index_bars", table="index_bars_1m")
MARK_FUNDING_SPEC = _declare(
    "mark_funding",
    "mark_funding",
    "mark_funding",
    MARK_FUNDING_SCHEMA,
    order_by=("venue", "instrument", "ts"),
    key="ts",
    contracts=DERIVATIVES,
)
OPTION_CHAIN_SPEC = _declare(
    "option_chain",
    "option_chain",
    "option_chain",
    OPTION_CHAIN_SCHEMA,
    order_by=("venue", "instrument", "ts", "option"),
    key=None,
)
FACTORS_SPEC = _declare(
    "factors",
    "factors",
    "factors",
    FACTORS_SCHEMA,
    order_by=("venue", "instrument", "ts", "factor"),
    key="factor",
)
DATASETS = {
    spec.name: spec
    for spec in (
        TRADES_SPEC,
        BOOKS_SPEC,
        BARS_SPEC,
        DAILY_SPEC,
        AGG_TRADES_SPEC,
        *KLINE_SPECS.values(),
        TICKERS_SPEC,
        FUNDING_SPEC,
        OPEN_INTEREST_SPEC,
        LIQUIDATIONS_SPEC,
        MARK_BARS_SPEC,
        INDEX_BARS_SPEC,
        OPTION_CHAIN_SPEC,
        FACTORS_SPEC,
        MARK_FUNDING_SPEC,
    )
}


def spec_for(dataset: str) -> Dataset:
    """The declaration of a dataset (`DATASETS`: trades, books, bars_1m, funding, ...)."""
    if dataset not in DATASETS:
        close = difflib.get_close_matches(str(dataset), sorted(DATASETS), n=3, cutoff=0.6)
        hint = f" (closest: {', '.join(close)})" if close else ""
        raise ValueError(f"unknown dataset {dataset!r}{hint}: expected one of {sorted(DATASETS)}")
    return DATASETS[dataset]


def empty_trades() -> pl.DataFrame:
    return pl.DataFrame(schema=TRADES_SCHEMA)


def as_schema(frame: pl.DataFrame, schema: dict) -> pl.DataFrame:
    """`frame` as `schema`'s columns, in its order and types; a column the frame lacks is null (a nullable
    column its maker has nothing for, as the writer stores it)."""
    return frame.select(
        pl.col(name).cast(dtype) if name in frame.columns else pl.lit(None, dtype).alias(name)
        for name, dtype in schema.items()
    )


# --------------------------------------------------------------------------------------------
# Time: every frame holds UTC microseconds; intervals are half-open [start, end)
# --------------------------------------------------------------------------------------------

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


EPOCH_US_FROM = 100_000_000_000_000  # an epoch from 1e14 on is in microseconds (in ms: the year 5138)


def epoch_to_us(value: int) -> int:
    """Epoch milliseconds (13 digits today) or microseconds (16 digits) → microseconds, by magnitude
    (`EPOCH_US_FROM`). Binance answers in microseconds when asked (X-MBX-TIME-UNIT) and its dumps switch
    per row."""
    if value >= EPOCH_US_FROM:
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
