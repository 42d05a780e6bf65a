"""Daily factors of an instrument (the ``factors`` dataset), computed inside ClickHouse from the stored ticks.

A registry: ``INPUTS`` are named SQL SELECTs over the read views of the slice's datasets (``{trades}``,
``{bars_1m}``, ... stand for the dataset's active rows of the day), ``FACTORS`` are one ClickHouse
aggregate expression each over one input. :func:`compute_factors` runs ONE query: per input one
``SELECT ... GROUP BY instrument`` holding all of that input's factor expressions, the inputs joined by
``UNION ALL``; only the values come back (one row per instrument and factor). A factor whose input has
no rows for the slice, or whose value is not finite (NaN, inf), is NULL. Identifiers are checked
(core.identifiers.sql_identifier); venue, instruments and times travel as bind parameters.
Adding a factor: one :class:`Factor` in ``FACTORS`` (and a test); docs/factors.md.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import polars as pl

from marketdata_assets.core.identifiers import clickhouse_database, sql_identifier
from marketdata_assets.datasets.frames import DATASETS, FACTORS_SCHEMA, spec_for

TS_PARAM = "DateTime64(6, 'UTC')"
_PLACEHOLDER = re.compile(r"\{([a-z][a-z0-9_]*)\}")  # {dataset}; bind parameters are {name:Type}


@dataclass(frozen=True)
class Input:
    """Rows a factor aggregates: a SELECT whose ``{dataset}`` placeholders are that dataset's active rows of
    the slice. It must return an ``instrument`` column (its rows are grouped by it) and, with window
    functions, partition by instrument (the same SQL serves several instruments at once)."""

    name: str
    sql: str
    description: str = ""

    @property
    def datasets(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(_PLACEHOLDER.findall(self.sql)))


@dataclass(frozen=True)
class Factor:
    """One value per instrument-day: ``expression`` is ONE ClickHouse aggregate expression over ``input``."""

    name: str
    description: str
    input: str
    expression: str
    unit: str


INPUTS: dict[str, Input] = {
    i.name: i
    for i in (
        # trade_order: the project's order of trades (wire.finish_trades: ts, then seq) as one Int128;
        # argMin / argMax over the tuple (ts, seq) are ~8x slower (docs/factors.md). Trades without seq tie
        # within a µs.
        Input(
            "trades",
            "SELECT instrument, ts, trade_id, seq, price, quantity, amount, side, "
            "bitShiftLeft(toInt128(toUnixTimestamp64Micro(ts)), 64) + ifNull(seq, 0) AS trade_order "
            "FROM {trades}",
            "the day's trades; trade_order orders them by (ts, seq)",
        ),
        Input(
            "minute_returns",
            "SELECT instrument, ts, close, log(close / lagInFrame(toNullable(close)) OVER ("
            "PARTITION BY instrument ORDER BY ts ASC ROWS BETWEEN 1 PRECEDING AND CURRENT ROW)) AS "
            "log_return FROM {bars_1m}",
            "1-minute bar closes and the log return from the previous bar (NULL for the day's first)",
        ),
        Input(
            "top_of_book",
            "SELECT instrument, ts, anyIf(price, side = 'bid') AS bid, "
            "anyIf(quantity, side = 'bid') AS bid_size, anyIf(price, side = 'ask') AS ask, "
            "anyIf(quantity, side = 'ask') AS ask_size FROM {books} "
            "WHERE level = 0 GROUP BY instrument, ts "
            "HAVING countIf(side = 'bid') > 0 AND countIf(side = 'ask') > 0",
            "per snapshot ts the best bid and ask (level 0) and their sizes; one-sided snapshots left out",
        ),
        Input(
            "funding",
            "SELECT instrument, ts, rate, interval_hours FROM {funding}",
            "the day's funding settlements",
        ),
        Input(
            "mark_index",
            "SELECT m.instrument AS instrument, m.ts AS ts, m.close AS mark, i.close AS index_price "
            "FROM {mark_bars_1m} AS m INNER JOIN {index_bars_1m} AS i "
            "ON m.instrument = i.instrument AND m.ts = i.ts",
            "mark and index 1-minute closes of the minutes that have both",
        ),
    )
}

FACTORS: tuple[Factor, ...] = (
    Factor(
        "return",
        "last / first trade price - 1 (first and last by ts, then seq)",
        "trades",
        "argMax(price, trade_order) / argMin(price, trade_order) - 1",
        "ratio",
    ),
    Factor(
        "vwap",
        "volume-weighted average trade price: sum(price * quantity) / sum(quantity)",
        "trades",
        "sum(price * quantity) / sum(quantity)",
        "quote per base",
    ),
    Factor(
        "realized_vol",
        "sqrt of the sum of squared log returns between consecutive 1-minute bar closes",
        "minute_returns",
        "sqrt(sum(log_return * log_return))",
        "ratio (daily)",
    ),
    Factor("volume", "traded quantity", "trades", "sum(quantity)", "base"),
    Factor("notional", "traded quote value", "trades", "sum(amount)", "quote"),
    Factor("trade_count", "number of trades", "trades", "count()", "trades"),
    Factor(
        "buy_sell_imbalance",
        "(taker buy - taker sell) / (buy + sell) base volume",
        "trades",
        "(sumIf(quantity, side = 'buy') - sumIf(quantity, side = 'sell')) "
        "/ (sumIf(quantity, side = 'buy') + sumIf(quantity, side = 'sell'))",
        "ratio",
    ),
    Factor(
        "avg_spread_bps",
        "mean over snapshots of (ask - bid) / mid * 1e4, mid = (ask + bid) / 2",
        "top_of_book",
        "avg((ask - bid) / ((ask + bid) / 2) * 1e4)",
        "bps",
    ),
    Factor(
        "depth_imbalance",
        "mean over snapshots of (bid_size - ask_size) / (bid_size + ask_size), level 0",
        "top_of_book",
        "avg((bid_size - ask_size) / (bid_size + ask_size))",
        "ratio",
    ),
    Factor(
        "funding_annualized",
        "mean over the day's settlements of rate / interval_hours * 24 * 365",
        "funding",
        "avg(rate / interval_hours * 24 * 365)",
        "per year",
    ),
    Factor(
        "basis_annualized",
        "mean over minutes of mark / index - 1, as an 8-hour premium annualized (* 3 * 365)",
        "mark_index",
        "avg(mark / index_price - 1) * 3 * 365",
        "per year",
    ),
)


def _check(factors: Sequence[Factor], inputs: dict[str, Input]) -> None:
    names = [f.name for f in factors]
    if len(set(names)) != len(names):
        raise ValueError(f"factor names repeat: {sorted(n for n in set(names) if names.count(n) > 1)}")
    for factor in factors:
        sql_identifier(factor.name, "factor name")
        if factor.input not in inputs:
            raise ValueError(
                f"factor {factor.name!r} reads the unknown input {factor.input!r}: one of {sorted(inputs)}"
            )
    for item in inputs.values():
        unknown = [d for d in item.datasets if d not in DATASETS]
        if not item.datasets or unknown:
            raise ValueError(
                f"input {item.name!r} must read datasets as {{dataset}} placeholders; unknown: {unknown}"
            )


def _source(database: str, dataset: str, many: bool) -> str:
    """The dataset's active rows of the slice: its range view (one instrument) or its read view filtered
    to ``{instruments:Array(String)}`` (several)."""
    spec = spec_for(dataset)
    if many:
        return (
            f"(SELECT * FROM {clickhouse_database(database)}.`{spec.view}` WHERE venue = {{venue:String}} "
            f"AND instrument IN {{instruments:Array(String)}} AND ts >= {{start:{TS_PARAM}}} "
            f"AND ts < {{end:{TS_PARAM}}})"
        )
    return (
        f"{clickhouse_database(database)}.`{spec.range_view}`(venue = {{venue:String}}, "
        f"instrument = {{instrument:String}}, start = {{start:{TS_PARAM}}}, end = {{end:{TS_PARAM}}})"
    )


def factors_sql(
    database: str,
    factors: Sequence[Factor] = FACTORS,
    inputs: dict[str, Input] | None = None,
    *,
    many: bool = False,
) -> str:
    """The one query of :func:`compute_factors` (``many``: of :func:`compute_factors_many`): rows
    (instrument, factor, value), bind parameters venue, instrument (or instruments), start, end."""
    inputs = INPUTS if inputs is None else inputs
    _check(factors, inputs)
    if not factors:
        raise ValueError("no factors to compute")
    parts = []
    for name, item in inputs.items():
        mine = [f for f in factors if f.input == name]
        if not mine:
            continue
        rows = _PLACEHOLDER.sub(lambda m: _source(database, m.group(1), many), item.sql)
        names = ", ".join(f"'{f.name}'" for f in mine)
        values = ",\n        ".join(f"CAST(({f.expression}) AS Nullable(Float64))" for f in mine)
        parts.append(
            f"SELECT instrument, [{names}] AS factors,\n       [{values}] AS values\n"
            f"FROM ({rows})\nGROUP BY instrument"
        )
    union = "\nUNION ALL\n".join(parts)
    return (
        f"SELECT instrument, factor, if(isFinite(value), value, NULL) AS value FROM (\n{union}\n) "
        "ARRAY JOIN factors AS factor, values AS value"
    )


def _day_start(day: date | str) -> datetime:
    if isinstance(day, datetime):
        raise TypeError(f"day must be a date, not a datetime ({day!r})")
    day = date.fromisoformat(day) if isinstance(day, str) else day
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _run(
    client,
    sql: str,
    params: dict,
    venue: str,
    instruments: Iterable[str],
    start: datetime,
    factors: Sequence[Factor],
) -> pl.DataFrame:
    found = {(r[0], r[1]): r[2] for r in client.query(sql, parameters=params).result_rows}
    rows = [(start, venue, i, f.name, found.get((i, f.name))) for i in instruments for f in factors]
    return pl.DataFrame(rows, schema=FACTORS_SCHEMA, orient="row")


def compute_factors(
    client,
    database: str,
    venue: str,
    instrument: str,
    day: date | str,
    factors: Sequence[Factor] = FACTORS,
    inputs: dict[str, Input] | None = None,
) -> pl.DataFrame:
    """Every factor of one instrument-day (FACTORS_SCHEMA, one row per factor in registry order; ts = the
    day's 00:00 UTC), from the active rows of the day's range views, in one query."""
    start = _day_start(day)
    if not factors:
        return pl.DataFrame(schema=FACTORS_SCHEMA)
    params = {"venue": venue, "instrument": instrument, "start": start, "end": start + timedelta(days=1)}
    sql = factors_sql(database, factors, inputs)
    return _run(client, sql, params, venue, [instrument], start, factors)


def compute_factors_many(
    client,
    database: str,
    venue: str,
    instruments: Sequence[str],
    day: date | str,
    factors: Sequence[Factor] = FACTORS,
    inputs: dict[str, Input] | None = None,
) -> pl.DataFrame:
    """:func:`compute_factors` for several instruments of a venue in one query (GROUP BY instrument over the
    datasets' read views); rows by instrument (in the given order), then factor."""
    start = _day_start(day)
    instruments = list(dict.fromkeys(instruments))
    if not instruments or not factors:
        return pl.DataFrame(schema=FACTORS_SCHEMA)
    params = {"venue": venue, "instruments": instruments, "start": start, "end": start + timedelta(days=1)}
    sql = factors_sql(database, factors, inputs, many=True)
    return _run(client, sql, params, venue, instruments, start, factors)
