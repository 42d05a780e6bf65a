"""The normalized records of the live datasets: what one parse of a venue's stream frame gives, already
in the units the tables store (sizes in base units, amounts in quote units), so the JetStream messages,
the latest-state cache and the hourly loads hold one value for one fact. A venue's stream module
(sources/<venue>/stream.py) builds them. A trade is a `Trade` (its message a JSON array of them, decoded
typed by the store: the bounds the table holds are declared on its fields); the other datasets' message
payload is the record's fields with venue, instrument, `ts_ms` (the event time) and `recv_ns`. Numbers the
venue sent and we did not change may be `orjson.Fragment`s of its text (written as the venue spelled them);
everything else is a float, an int, a string or null.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable
from typing import Annotated, Any, NamedTuple

import msgspec
import numpy as np
import polars as pl

from marketdata_assets.datasets.frames import NULLABLE, TRADES_SCHEMA, Int64

US_LOW, US_HIGH = -2_208_988_800_000_000, 10_413_792_000_000_000  # 1900-01-01, 2300-01-01: the tables' years
Text = Annotated[str, msgspec.Meta(min_length=1)]


class Trade(msgspec.Struct, gc=False):
    """A trade as every sink stores it: the object of a trade in a message, a row of `trades_live`."""

    venue: Text  # BINANCE, OKX, DERIBIT, ...
    instrument: Text  # the venue's name of it
    trade_id: Text  # the venue's id of the trade (Binance t / a, OKX tradeId, Deribit trade_id)
    price: float  # quote currency per base unit
    quantity: float  # base units (OKX contracts x ctVal; Deribit inverse: USD / price)
    amount: float  # quote units (price x quantity; Deribit inverse: the USD traded)
    side: str  # the taker's side: buy | sell
    seq: Int64 | None  # the venue's per-instrument sequence (quality/continuity.py), None if it has none
    ts_us: Annotated[int, msgspec.Meta(ge=US_LOW, lt=US_HIGH)]  # the trade's time, epoch microseconds
    event_ms: int  # the venue's event time of the frame that carried it (0: the trade's time), epoch ms
    recv_ns: Int64  # our receive time, epoch ns (int64 ns: 1677-2262)


# the `Trade` field of each `trades` column (TRADES_SCHEMA's order; `ts`: its `ts_us`)
TRADE_FIELDS = tuple("ts_us" if name == "ts" else name for name in TRADES_SCHEMA)
# a `Trade`'s values as a `trades` row: two copies of a trade (two connections, a reconnect) have the same
# values and differ in their receive times only
trade_values = operator.attrgetter(*TRADE_FIELDS)


def trades_frame(trades: list[Trade]) -> pl.DataFrame:
    """`Trade`s as rows of the `trades` dataset (TRADES_SCHEMA): the frame holds the values the records
    carry, field for field (the REST pages' frames, the hourly loads'). Each column is read off the
    records at once (no row tuples: a page's thousand of them cost as much as the columns)."""
    n = len(trades)
    return pl.DataFrame([build(name, map(read, trades), n) for name, read, build in _COLUMNS])


def _texts(name: str, values: Iterable, n: int) -> pl.Series:
    """A text column; one value repeated (venue, instrument) made from one."""
    values = list(values)
    if n and values.count(values[0]) == n:
        return pl.Series(name, values[:1], pl.Utf8).new_from_index(0, n)
    return pl.Series(name, values, pl.Utf8)


def _numbers(dtype: pl.DataType, nullable: bool):
    """A column of numbers read through numpy; a nullable one with a null among them as a list (numpy
    would read a null as NaN, or refuse it)."""

    def numbers(name: str, values: Iterable, n: int) -> pl.Series:
        if nullable:
            values = list(values)
            if None in values:
                return pl.Series(name, values, dtype)
        return pl.Series(name, np.fromiter(values, kind, n))

    kind = {pl.Float64: np.float64, pl.Int64: np.int64}[dtype]
    return numbers


def _times(name: str, values: Iterable, n: int) -> pl.Series:
    return pl.Series(name, np.fromiter(values, np.int64, n)).cast(TRADES_SCHEMA[name])  # epoch µs


def _builder(name: str, dtype: pl.DataType):
    """How a `trades` column is made of its values."""
    if name == "ts":
        return _times
    return _texts if dtype == pl.Utf8 else _numbers(dtype, name in NULLABLE["trades"])


# (column, how a `Trade` holds its value, how the values become the column), built once
_COLUMNS = tuple(
    (name, operator.attrgetter(field), _builder(name, dtype))
    for (name, dtype), field in zip(TRADES_SCHEMA.items(), TRADE_FIELDS, strict=True)
)


class Ticker(NamedTuple):
    bid: Any  # best bid price (null: an empty side)
    bid_size: Any  # base units at the best bid
    ask: Any  # best ask price
    ask_size: Any  # base units at the best ask
    last: Any = None  # last trade price, where the venue's ticker has it
    mark_price: Any = None  # where the ticker carries it (Deribit)
    index_price: Any = None
    funding_rate: Any = None  # the current rate, where the ticker carries it (Deribit perpetuals)


class AggregateTrade(NamedTuple):
    """One aggregate trade (the fills of one taker order at one price), as the `agg_trades` dataset stores it
    (the archives' convention: datasets/frames.py AGG_TRADES_SPEC)."""

    ts_us: int  # the trade time, epoch microseconds: the row's ts
    trade_id: str  # the aggregate trade id (Binance `a`)
    price: Any  # quote per base
    quantity: Any  # base units
    amount: Any  # quote units (price x quantity)
    side: str  # the taker's side: buy | sell
    seq: int  # the aggregate trade id as a number (the id sequence the continuity check reads)
    first_trade_id: int | None  # the first individual trade it aggregates (Binance `f`; in the message only)
    last_trade_id: int | None  # the last one (Binance `l`; in the message only: the table has no column)


class Bar(NamedTuple):
    open_ms: int  # the bar's open time, epoch ms (a closed 1-minute bar)
    open: Any
    high: Any
    low: Any
    close: Any
    volume: Any  # base units
    amount: Any  # quote units
    trades: int | None  # trades in the bar, where the venue counts them


class Liquidation(NamedTuple):
    liquidation_id: str  # the venue's id, or a key made of what identifies it where it gives none
    side: str  # the liquidation order's side: buy | sell (sell: a long was closed)
    price: Any  # what it filled at, quote per base (Binance: the fills' average `ap`; OKX bkPx)
    quantity: Any  # base units
    amount: Any  # quote units
    order_price: Any = (
        None  # the liquidation order's own price (Binance `p`); null where the venue sends none
    )


class OpenInterest(NamedTuple):
    contracts: Any  # open contracts
    contract_size: Any  # what one contract is worth, in `size_unit`
    size_unit: str  # base | quote
    base: Any  # the open interest in base units
    quote: Any  # ... and in quote units


class MarkPrice(NamedTuple):
    mark_price: Any
    index_price: Any  # null where the venue's mark stream has none (OKX)


class Funding(NamedTuple):
    funding_rate: Any  # the running period's current (predicted) rate; null if the venue left it out
    next_funding_ms: int | None  # the settlement it is for, epoch ms (null: continuous funding, or not sent)
    funding_rate_8h: Any = (
        None  # the rate over 8 hours, where the venue sends it beside (Deribit `funding_8h`)
    )
