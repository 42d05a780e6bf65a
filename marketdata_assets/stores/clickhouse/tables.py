"""ClickHouse tables for normalized ticks: DDL, read views, and the load pointer that makes re-writes
exact without ``ALTER TABLE ... DELETE``, with the reads and the compaction: one module because they
share their SQL.

Tables, views and compaction: docs/datasets.md, "The tables, views and compaction"; the design and its
measurements: docs/ticks.md, "The load pointer".
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import polars as pl

from marketdata_assets.core.identifiers import clickhouse_database, sql_identifier
from marketdata_assets.datasets.frames import DATASETS, LC, TS, Dataset, spec_for
from marketdata_assets.stores.clickhouse import cluster, history, migrations
from marketdata_assets.stores.clickhouse.load_ids import LOAD_IDS, load_ids_ddl

LOADS = "loads"
DAILY_AGG = "trades_1d_agg"
DAILY_MV = "trades_1d_mv"
INGEST_LOG = "ingest_log"
OUTCOMES = ("ok", "failed", "skipped")
INGEST_LOG_COLUMNS = (
    "run_id",
    "source",
    "dataset",
    "venue",
    "instrument",
    "day",
    "rows",
    "requests",
    "retries",
    "rate_limited",
    "latency_p50_ms",
    "latency_p95_ms",
    "outcome",
    "error",
    "load_id",
    "started_at",
    "finished_at",
    "dropped",
    "conversions",
)
# Columns added after the first release: added to an existing ingest_log by ensure_tables.
INGEST_LOG_ADDED = {"dropped": "Map(LowCardinality(String), UInt64)", "conversions": "Array(String)"}
# Columns made nullable after their table's first release: (table, column) of a store created before
# gets its column modified once (ensure_tables; a small table's mutation). tickers.volume_24h: a live
# best bid/ask (ingest/live/hourly/dataset_rows.py) carries no 24h volume; open_interest.quote: OKX's
# pushes from before it added `oiUsd` carry no USD amount.
NULLABLE_SINCE = (("tickers", "volume_24h"), ("open_interest", "quote"))
# Dataset columns added after their table's first release (nullable: the rows of before hold null), added
# to a store created before by ensure_tables (migrations.add_columns). liquidations.order_price: the
# liquidation order's own price (Binance forceOrder `p`, liquidationSnapshot `price`);
# mark_funding.funding_rate_8h: the 8-hour rate beside the current one (Deribit ticker `funding_8h`).
ADDED_SINCE = (("liquidations", "order_price"), ("mark_funding", "funding_rate_8h"))
# Columns renamed after the first release, by a rebuild (a sorting-key column cannot be renamed):
# migrations.rename_columns, from ensure_tables.
RENAMED = (
    migrations.Rename(
        LOADS, {"kind": "dataset"}, ("dataset", "venue", "instrument", "day"), version="load_id"
    ),
    migrations.Rename(
        INGEST_LOG,
        {"provider": "source", "kind": "dataset"},
        (*INGEST_LOG_COLUMNS[:6], "outcome", "load_id", "started_at", "finished_at"),  # run, slice, attempt
    ),
)


def active_loads_sql(database: str, dataset: str, where: str = "") -> str:
    """``SELECT load_id FROM loads FINAL WHERE dataset = '<code>' [AND where]``: the pointer lookup."""
    spec = spec_for(dataset)
    extra = f" AND {where}" if where else ""
    return (
        f"SELECT load_id FROM {clickhouse_database(database)}.{LOADS} FINAL WHERE dataset = "
        f"'{spec.code}'{extra}"
    )


def monthly_table_ddl(
    database: str, table: str, columns: Iterable[tuple[str, str]], engine: str, order_by: str
) -> str:
    """``CREATE TABLE IF NOT EXISTS`` of `columns` ((name, type) pairs) in `engine`, a partition a month of
    ``ts`` (a dataset's table, and live.TRADES_LIVE); `table` as the SQL names it (quoted or not)."""
    cols = ",\n    ".join(f"`{name}` {ctype}" for name, ctype in columns)
    return (
        f"CREATE TABLE IF NOT EXISTS {clickhouse_database(database)}.{table} (\n    {cols}\n"
        f") ENGINE = {engine}\nPARTITION BY toYYYYMM(ts)\nORDER BY ({order_by})"
    )


def _table_ddl(database: str, spec: Dataset) -> str:
    return monthly_table_ddl(
        database,
        f"`{spec.table}`",
        [*spec.columns, ("day", "Date CODEC(Delta, ZSTD(1))"), ("load_id", "UInt64 CODEC(Delta, ZSTD(1))")],
        "MergeTree",
        ", ".join(spec.order_by),
    )


def _view_ddl(database: str, spec: Dataset) -> list[str]:
    db = clickhouse_database(database)
    cols = ", ".join(f"`{c}`" for c in spec.column_names)
    whole = (
        f"CREATE OR REPLACE VIEW {db}.`{spec.view}` AS\nSELECT {cols}\nFROM {db}.`{spec.table}`\n"
        f"WHERE load_id IN ({active_loads_sql(database, spec.name)})"
    )
    in_range = (
        "venue = {venue:String} AND instrument = {instrument:String} "
        "AND day >= toDate({start:DateTime64(6, 'UTC')}) AND day <= toDate({end:DateTime64(6, 'UTC')})"
    )
    ranged = (
        f"CREATE OR REPLACE VIEW {db}.`{spec.range_view}` AS\nSELECT {cols}\nFROM {db}.`{spec.table}`\n"
        "WHERE venue = {venue:String} AND instrument = {instrument:String}\n"
        "  AND ts >= {start:DateTime64(6, 'UTC')} AND ts < {end:DateTime64(6, 'UTC')}\n"
        f"  AND load_id IN ({active_loads_sql(database, spec.name, in_range)})"
    )
    return [whole, ranged]


def _daily_ddl(database: str) -> list[str]:
    db = clickhouse_database(database)
    agg = f"""CREATE TABLE IF NOT EXISTS {db}.{DAILY_AGG} (
    `venue` {LC},
    `instrument` {LC},
    `day` Date,
    `load_id` UInt64,
    `open` AggregateFunction(argMin, Float64, {TS}),
    `high` SimpleAggregateFunction(max, Float64),
    `low` SimpleAggregateFunction(min, Float64),
    `close` AggregateFunction(argMax, Float64, {TS}),
    `volume` SimpleAggregateFunction(sum, Float64),
    `amount` SimpleAggregateFunction(sum, Float64),
    `trades` SimpleAggregateFunction(sum, UInt64),
    `first_ts` SimpleAggregateFunction(min, {TS}),
    `last_ts` SimpleAggregateFunction(max, {TS})
) ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (venue, instrument, day, load_id)"""
    mv = f"""CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{DAILY_MV} TO {db}.{DAILY_AGG} AS
SELECT venue, instrument, day, load_id,
       argMinState(price, ts) AS open, max(price) AS high, min(price) AS low, argMaxState(price, ts) AS close,
       sum(quantity) AS volume, sum(amount) AS amount, count() AS trades, min(ts) AS first_ts, \
max(ts) AS last_ts
FROM {db}.trades
GROUP BY venue, instrument, day, load_id"""
    select = (
        "SELECT day, venue, instrument, argMinMerge(open) AS open, max(high) AS high, min(low) AS low,\n"
        "       argMaxMerge(close) AS close, sum(volume) AS volume, sum(amount) AS amount,\n"
        "       toInt64(sum(trades)) AS trades, min(first_ts) AS first_ts, max(last_ts) AS last_ts\n"
        f"FROM {db}.{DAILY_AGG}\n"
    )
    whole = (
        f"CREATE OR REPLACE VIEW {db}.bars_1d_v AS\n{select}"
        f"WHERE load_id IN ({active_loads_sql(database, 'trades')})\nGROUP BY day, venue, instrument"
    )
    in_range = (
        "venue = {venue:String} AND instrument = {instrument:String} "
        "AND day >= {first_day:Date} AND day <= {last_day:Date}"
    )
    ranged = (
        f"CREATE OR REPLACE VIEW {db}.bars_1d_range AS\n{select}"
        f"WHERE {in_range}\n  AND load_id IN ({active_loads_sql(database, 'trades', in_range)})\n"
        "GROUP BY day, venue, instrument"
    )
    return [agg, mv, whole, ranged]


def _loads_ddl(database: str, table: str = LOADS, exists_ok: bool = True) -> str:
    return f"""CREATE TABLE {"IF NOT EXISTS " if exists_ok else ""}{clickhouse_database(database)}.`{table}` (
    `dataset` {LC},
    `venue` {LC},
    `instrument` {LC},
    `day` Date,
    `load_id` UInt64,
    `rows` UInt64,
    `run_id` String,
    `loaded_at` DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree(load_id)
ORDER BY (dataset, venue, instrument, day)"""


def _ingest_log_ddl(database: str, table: str = INGEST_LOG, exists_ok: bool = True) -> str:
    return f"""CREATE TABLE {"IF NOT EXISTS " if exists_ok else ""}{clickhouse_database(database)}.`{table}` (
    `run_id` String,
    `source` {LC},
    `dataset` {LC} DEFAULT '',
    `venue` {LC},
    `instrument` {LC},
    `day` Date,
    `rows` UInt64 DEFAULT 0,
    `requests` UInt32 DEFAULT 0,
    `retries` UInt32 DEFAULT 0,
    `rate_limited` UInt32 DEFAULT 0,
    `latency_p50_ms` Float64 DEFAULT 0,
    `latency_p95_ms` Float64 DEFAULT 0,
    `outcome` Enum8('ok' = 1, 'failed' = 2, 'skipped' = 3),
    `error` String DEFAULT '',
    `load_id` UInt64 DEFAULT 0,
    `started_at` DateTime64(3, 'UTC'),
    `finished_at` DateTime64(3, 'UTC'),
    `dropped` Map(LowCardinality(String), UInt64),
    `conversions` Array(String)
) ENGINE = MergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (source, instrument, day, finished_at)"""


_CREATE: dict[str, Callable[..., str]] = {LOADS: _loads_ddl, INGEST_LOG: _ingest_log_ddl}


def ddl_statements(database: str) -> list[str]:
    """Every statement of :func:`ensure_tables`, in order (tables, then views)."""
    db = clickhouse_database(database)
    statements = [_table_ddl(database, spec) for spec in DATASETS.values()]
    statements += [_loads_ddl(database), _ingest_log_ddl(database), load_ids_ddl(database)]
    daily = _daily_ddl(database)
    statements += daily[:2]
    for spec in DATASETS.values():
        statements += _view_ddl(database, spec)
    statements += daily[2:]
    statements.append(f"""CREATE OR REPLACE VIEW {db}.active_loads AS
SELECT dataset, venue, instrument, day, load_id, rows, run_id, loaded_at FROM {db}.{LOADS} FINAL""")
    return statements


def ensure_tables(client, database: str, wait_s: float = 600.0) -> list[str]:
    """Create the database, tables and views if missing (idempotent). Returns the object names.
    A store of a previous version gets its renamed columns first (:data:`RENAMED`; a process that finds
    another one migrating waits for it up to ``wait_s``). In cluster mode (``CLICKHOUSE_CLUSTER``) the
    statements are their cluster form (stores.clickhouse.cluster) and a cluster store is born with the
    current schema: no renames, added columns or history backfill to catch up on."""
    create_database = f"CREATE DATABASE IF NOT EXISTS {clickhouse_database(database)}"
    if name := cluster.configured():
        for statement in cluster.on_cluster(
            [create_database, *ddl_statements(database), *history.history_ddl(database)], name
        ):
            client.command(statement)
        return _object_names()
    fingerprint = schema_fingerprint(database)
    if _is_current(
        client, database, fingerprint
    ):  # one query, not ~85 statements: every run ensures its store
        return _object_names()
    client.command(create_database)
    statements = ddl_statements(database)

    def create_all() -> None:
        for statement in statements:
            client.command(statement)

    for rename in RENAMED:  # before the views: they name the new columns
        migrations.rename_columns(
            client,
            database,
            rename,
            lambda name, table=rename.table: _CREATE[table](database, name, exists_ok=False),
            after_swap=create_all,
            wait_s=wait_s,
        )
    migrations.add_columns(client, database, added_columns())  # before the views: they name them
    create_all()
    for column, ctype in INGEST_LOG_ADDED.items():  # a metadata-only ALTER, not a mutation
        client.command(
            f"ALTER TABLE {clickhouse_database(database)}.{INGEST_LOG} ADD COLUMN IF NOT EXISTS `{column}` "
            f"{ctype}"
        )
    _make_nullable(client, database)
    history.ensure_history(client, database)  # after ingest_log's added columns: its backfill reads them
    _mark_current(client, database, fingerprint)
    return _object_names()


ENSURED = "schema_ensured"  # the fingerprint of the schema a full `ensure_tables` left, and when


def schema_fingerprint(database: str) -> str:
    """What `ensure_tables` makes of `database`, hashed: its statements and the migrations it runs (a change
    to any of them is a new fingerprint, so the next call does the whole work again)."""
    declared = [
        *ddl_statements(database),
        *history.history_ddl(database),
        repr(RENAMED),
        repr(added_columns()),
        repr(sorted(INGEST_LOG_ADDED.items())),
        repr(NULLABLE_SINCE),
    ]
    return hashlib.sha256("\n".join(declared).encode()).hexdigest()


def _is_current(client, database: str, fingerprint: str) -> bool:
    """A full `ensure_tables` of this very schema finished here, and every object it makes is still there."""
    names = _object_names()
    try:
        present, marked = client.query(
            "SELECT (SELECT count() FROM system.tables WHERE database = {db:String} AND name IN "
            f"{{names:Array(String)}}), (SELECT count() FROM {clickhouse_database(database)}.{ENSURED} "
            "WHERE fingerprint = {f:String})",
            parameters={"db": database, "names": names, "f": fingerprint},
        ).result_rows[0]
    except Exception:  # noqa: BLE001 - no database or no marker yet (the server's own error kinds): not current
        return False
    return present == len(set(names)) and marked > 0


def _mark_current(client, database: str, fingerprint: str) -> None:
    db = clickhouse_database(database)
    client.command(
        f"CREATE TABLE IF NOT EXISTS {db}.{ENSURED} (fingerprint String, ensured_at DateTime64(3, 'UTC')) "
        "ENGINE = ReplacingMergeTree ORDER BY fingerprint"
    )
    client.command(
        f"INSERT INTO {db}.{ENSURED} VALUES ({{f:String}}, now64(3))", parameters={"f": fingerprint}
    )


def added_columns() -> list[tuple[str, str, str, str]]:
    """(table, column, declared type, the column before it) of each of `ADDED_SINCE`."""
    out = []
    for table, column in ADDED_SINCE:
        columns = next(spec for spec in DATASETS.values() if spec.table == table).columns
        names = [name for name, _ in columns]
        out.append((table, column, dict(columns)[column], names[names.index(column) - 1]))
    return out


def _make_nullable(client, database: str) -> None:
    """`NULLABLE_SINCE`'s columns still NOT NULL in this store modified to their declared type."""
    db = clickhouse_database(database)
    found = client.query(
        "SELECT table, name, type FROM system.columns WHERE database = {db:String} AND "
        "(table, name) IN {pairs:Array(Tuple(String, String))}",
        parameters={"db": database, "pairs": list(NULLABLE_SINCE)},
    ).result_rows
    for table, column, ctype in found:
        if not ctype.startswith("Nullable("):
            declared = dict(next(s for s in DATASETS.values() if s.table == table).columns)[column]
            client.command(
                f"ALTER TABLE {db}.{sql_identifier(table)} MODIFY COLUMN {sql_identifier(column)} {declared}"
            )


def _object_names() -> list[str]:
    names = [spec.table for spec in DATASETS.values()] + [
        LOADS,
        INGEST_LOG,
        LOAD_IDS,
        DAILY_AGG,
        DAILY_MV,
        "active_loads",
        "bars_1d_v",
        "bars_1d_range",
        history.LOAD_HISTORY,
        history.LOAD_HISTORY_MV,
    ]
    names += [n for spec in DATASETS.values() for n in (spec.view, spec.range_view)]
    return names


def finish_column_renames(client, database: str) -> list:
    """Finish a column rename killed after its swap (its old table still under the staging name): copy
    the rows missing from the new table, keep the old one under its ``_before_`` name. Only when no other
    process is migrating. Returns what was moved (migrations.Moved), per table."""
    found = migrations.columns_of(client, database, [r.staging for r in RENAMED])
    return [
        migrations.finish_rename(client, database, r)
        for r in RENAMED
        if r.staging in found and r.is_old(found[r.staging])
    ]


# ---- read helpers ------------------------------------------------------------------------------------


def _utc(value: datetime | date | str) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def range_query(database: str, dataset: str) -> str:
    """``SELECT * FROM <table>_range(...)`` with bind parameters venue, instrument, start, end
    (half-open ``[start, end)``), ordered by the table's key."""
    spec = spec_for(dataset)
    return (
        f"SELECT * FROM {clickhouse_database(database)}.`{spec.range_view}`(venue = {{venue:String}}, "
        "instrument = {instrument:String}, start = {start:DateTime64(6, 'UTC')}, "
        "end = {end:DateTime64(6, 'UTC')})\n"
        f"ORDER BY {', '.join(spec.order_by)}"
    )


def read_range(
    client,
    database: str,
    dataset: str,
    venue: str,
    instrument: str,
    start: datetime | date | str,
    end: datetime | date | str,
) -> pl.DataFrame:
    """Active rows of one instrument in ``[start, end)`` (naive datetimes are UTC) as a frame with
    the datasets.frames schema, sorted by the table key."""
    spec = spec_for(dataset)
    table = client.query_arrow(
        range_query(database, spec.name),
        parameters={"venue": venue, "instrument": instrument, "start": _utc(start), "end": _utc(end)},
    )
    frame = pl.from_arrow(table)
    if not isinstance(frame, pl.DataFrame) or frame.width == 0:
        return pl.DataFrame(schema=spec.schema)
    return frame.select([pl.col(name).cast(dtype) for name, dtype in spec.schema.items()])


def daily_bars(
    client, database: str, venue: str, instrument: str, first_day: date, last_day: date
) -> pl.DataFrame:
    """Daily bars of one instrument for ``first_day..last_day`` (inclusive), computed from its trades at
    insert time (``bars_1d_range``)."""
    sql = (
        f"SELECT * FROM {clickhouse_database(database)}.bars_1d_range(venue = {{venue:String}}, "
        "instrument = {instrument:String}, first_day = {first_day:Date}, last_day = {last_day:Date}) "
        "ORDER BY day"
    )
    params = {"venue": venue, "instrument": instrument, "first_day": first_day, "last_day": last_day}
    return pl.from_arrow(client.query_arrow(sql, parameters=params))


def where_equal(where: list[str], params: dict, **values: str | None) -> None:
    """`where` gains ``<name> = {<name>:String}`` and `params` the value, for each of `values` not None."""
    for name, value in values.items():
        if value is not None:
            where.append(f"{name} = {{{name}:String}}")
            params[name] = value


def loaded_days(
    client, database: str, dataset: str, venue: str | None = None, instrument: str | None = None
) -> pl.DataFrame:
    """The active load of every slice (dataset, venue, instrument, day, load_id, rows, run_id, loaded_at)."""
    spec = spec_for(dataset)
    where, params = ["dataset = {code:String}"], {"code": spec.code}
    where_equal(where, params, venue=venue, instrument=instrument)
    sql = (
        "SELECT dataset, venue, instrument, day, load_id, rows, run_id, loaded_at FROM "
        f"{clickhouse_database(database)}.{LOADS} FINAL WHERE {' AND '.join(where)} ORDER BY venue, "
        "instrument, day"
    )
    return pl.from_arrow(client.query_arrow(sql, parameters=params))


def loaded_slices(
    client, database: str, dataset: str, venue: str, days: Sequence[date]
) -> set[tuple[str, date]]:
    """(instrument, day) of the venue's slices of `dataset` on `days` that have an active load."""
    rows = client.query(
        f"SELECT instrument, day FROM {clickhouse_database(database)}.{LOADS} FINAL WHERE dataset = "
        "{code:String} AND venue = {venue:String} AND day IN {days:Array(Date)}",
        parameters={"code": spec_for(dataset).code, "venue": venue, "days": list(days)},
    ).result_rows
    return {(instrument, day) for instrument, day in rows}


def stored_rows(client, database: str, keys: Iterable) -> dict:
    """{slice key: its active load's rows} of the slices of `keys` (datasets.slices.SliceKey) that have an
    active load: one query per dataset."""
    keys = list(keys)
    found: dict = {}
    for dataset in sorted({k.dataset for k in keys}):
        mine = {(k.venue, k.instrument, k.day): k for k in keys if k.dataset == dataset}
        rows = client.query(
            f"SELECT venue, instrument, day, rows FROM {clickhouse_database(database)}.{LOADS} FINAL WHERE "
            "dataset = {code:String} AND day IN {days:Array(Date)} AND venue IN {venues:Array(String)}",
            parameters={
                "code": spec_for(dataset).code,
                "days": sorted({day for _, _, day in mine}),
                "venues": sorted({venue for venue, _, _ in mine}),
            },
        ).result_rows
        found.update({mine[(v, i, d)]: int(n) for v, i, d, n in rows if (v, i, d) in mine})
    return found


def load_sources_sql(database: str, where: str = "1") -> str:
    """``SELECT load_id, source FROM ingest_log ...``: the source whose ingest_log row names each load
    (every engine write logs its load id under the feed's source; `where` narrows the log read)."""
    return (
        "SELECT load_id, argMax(source, finished_at) AS source FROM "
        f"{clickhouse_database(database)}.{INGEST_LOG} WHERE outcome = 'ok' AND load_id != 0 AND {where} "
        "GROUP BY load_id"
    )


def active_sources(
    client, database: str, dataset: str, instruments: Iterable[str], days: Iterable[date]
) -> dict[tuple[str, str, date], tuple[int, str]]:
    """{(venue, instrument, day): (active load id, the source that wrote it, '' when no ingest_log row
    names it)} of the slices of `dataset` of `instruments` ('VENUE:INSTRUMENT') on `days` that have an
    active load."""
    days, instruments = sorted(set(days)), sorted(set(instruments))
    if not days or not instruments:
        return {}
    rows = client.query(
        "SELECT a.venue, a.instrument, a.day, a.load_id, l.source FROM "
        f"{clickhouse_database(database)}.active_loads AS a LEFT JOIN "
        f"({load_sources_sql(database, 'dataset = {code:String} AND day IN {days:Array(Date)}')}) AS l ON "
        "a.load_id = l.load_id WHERE a.dataset = {code:String} AND a.day IN {days:Array(Date)} AND "
        "concat(a.venue, ':', a.instrument) IN {instruments:Array(String)}",
        parameters={"code": spec_for(dataset).code, "days": days, "instruments": instruments},
    ).result_rows
    return {(r[0], r[1], r[2]): (int(r[3]), r[4] or "") for r in rows}


def load_sources(client, database: str, load_ids: Iterable[int]) -> dict[int, str]:
    """{load id: the source whose ingest_log row names it} (a load no row names is left out)."""
    ids = sorted(set(load_ids))
    if not ids:
        return {}
    rows = client.query(load_sources_sql(database, "load_id IN {ids:Array(UInt64)}"), parameters={"ids": ids})
    return {int(load_id): source for load_id, source in rows.result_rows}


def stored_names(client, database: str, dataset: str) -> dict[str, set[str]]:
    """Venue -> the instruments with any load of `dataset` (active or not)."""
    rows = client.query(
        f"SELECT DISTINCT venue, instrument FROM {clickhouse_database(database)}.{LOADS} "
        "WHERE dataset = {code:String}",
        parameters={"code": spec_for(dataset).code},
    ).result_rows
    out: dict[str, set[str]] = {}
    for venue, instrument in rows:
        out.setdefault(venue, set()).add(instrument)
    return out


def _sources_sql(database: str) -> str:
    """Per dataset x venue x instrument, the sources of the active loads and their days: 'BINANCE 3,
    BINANCE_ARCHIVE 1' (a load no ingest_log row names: 'unknown')."""
    return (
        "SELECT dataset, venue, instrument, arrayStringConcat(arraySort(groupArray(concat(if(source = '', "
        "'unknown', source), ' ', toString(n)))), ', ') AS sources FROM (SELECT a.dataset AS dataset, "
        "a.venue AS venue, a.instrument AS instrument, s.source AS source, count() AS n FROM "
        f"{clickhouse_database(database)}.{LOADS} AS a FINAL LEFT JOIN ({load_sources_sql(database)}) AS s "
        "ON a.load_id = s.load_id GROUP BY dataset, venue, instrument, source) GROUP BY dataset, venue, "
        "instrument"
    )


def exists(client, database: str, table: str) -> bool:
    """Whether `table` (or view) is in the database."""
    return bool(
        client.query(
            "SELECT count() FROM system.tables WHERE database = {db:String} AND name = {t:String}",
            parameters={"db": database, "t": table},
        ).result_rows[0][0]
    )


def coverage(client, database: str) -> pl.DataFrame:
    """Per dataset x venue x instrument what is stored: first and last day, days with an active load
    (and of them with rows), days missing between the first and the last, rows, the latest load, the
    slices whose latest ingest attempt did not succeed (failed or skipped, never loaded since), and the
    sources the active loads came from with their days (`sources`)."""
    db = clickhouse_database(database)
    sql = (
        "SELECT l.dataset AS code, l.venue AS venue, l.instrument AS instrument, l.first_day AS first_day, "
        "l.last_day AS last_day, l.days AS days, l.days_with_rows AS days_with_rows, "
        "toUInt32(dateDiff('day', l.first_day, l.last_day) + 1 - l.days) AS missing_days, l.stored_rows AS "
        "rows, l.last_loaded_at AS last_loaded_at, ifNull(f.failed, 0) AS failed_days, src.sources AS "
        "sources FROM (SELECT dataset, venue, instrument, min(day) AS first_day, max(day) AS last_day, "
        "count() AS days, countIf(rows > 0) AS days_with_rows, sum(rows) AS stored_rows, max(loaded_at) AS "
        f"last_loaded_at FROM {db}.{LOADS} FINAL GROUP BY dataset, venue, instrument) AS l LEFT JOIN ("
        "SELECT dataset, venue, instrument, toUInt64(count()) AS failed FROM ("
        "SELECT dataset, venue, instrument, day, argMax(outcome, finished_at) AS last FROM "
        f"{db}.{INGEST_LOG} GROUP BY dataset, venue, instrument, day) WHERE last != 'ok' GROUP BY dataset, "
        "venue, instrument) AS f ON l.dataset = f.dataset AND l.venue = f.venue AND l.instrument = "
        f"f.instrument LEFT JOIN ({_sources_sql(database)}) AS src "
        "ON l.dataset = src.dataset AND l.venue = src.venue AND l.instrument = src.instrument "
        "ORDER BY code, venue, instrument"
    )
    frame = pl.from_arrow(client.query_arrow(sql))
    names = {spec.code: spec.name for spec in DATASETS.values()}
    return frame.with_columns(
        pl.col("code").replace_strict(names, default=pl.col("code")).alias("dataset")
    ).select(
        "dataset",
        "venue",
        "instrument",
        "first_day",
        "last_day",
        "days",
        "days_with_rows",
        "missing_days",
        "rows",
        "last_loaded_at",
        "failed_days",
        "sources",
    )


# ---- maintenance -------------------------------------------------------------------------------------
#
# A row is garbage when no read path shows it and none ever will: its load was *superseded* (its
# slice's active load has a larger id: the pointer only moves up) or *orphaned* (never made active
# and older than the grace: a killed write). A load that never became active but is younger than
# the grace is *pending*: it may be a write in flight (ids are taken before the insert, the pointer
# flips after the count), so it is kept. Load ids are snowflakes: ms since 1970 << 22, by the
# engine's clock.

DEFAULT_ORPHAN_GRACE = timedelta(hours=24)
STAGING_PREFIX = "_compact_"


class CompactionAborted(RuntimeError):
    """The month was left as it was (nothing swapped)."""


class CompactionConflict(CompactionAborted):
    """A write went into the month while it was being compacted: run it again later."""


@dataclass(frozen=True)
class MonthGarbage:
    """One month of one table: its rows and how many of them the loads of each state hold."""

    dataset: str
    table: str
    month: str  # YYYYMM (the partition id)
    rows: int
    superseded: int = 0
    orphaned: int = 0
    pending: int = 0  # rows of unflipped loads younger than the grace: kept

    @property
    def reclaimable(self) -> int:
        return self.superseded + self.orphaned


@dataclass(frozen=True)
class CompactResult:
    table: str
    month: str  # YYYYMM
    rows_before: int
    rows_after: int
    seconds: float
    superseded: int = 0
    orphaned: int = 0
    pending: int = 0  # kept
    dataset: str = ""

    @property
    def reclaimed(self) -> int:
        return self.rows_before - self.rows_after


def _month_id(month: str | date) -> str:
    if isinstance(month, date):
        return f"{month.year:04d}{month.month:02d}"
    text = str(month).replace("-", "")
    if len(text) != 6 or not text.isdigit() or not 1 <= int(text[4:]) <= 12:
        raise ValueError(f"invalid month {month!r}: expected YYYY-MM")
    return text


def _targets(spec: Dataset) -> list[tuple[str, str]]:
    """(table, month expression = its partition key) of a dataset: for trades the daily aggregate too."""
    targets = [(spec.table, "toYYYYMM(ts)")]
    if spec.code == "trades":
        targets.append((DAILY_AGG, "toYYYYMM(day)"))
    return targets


def orphan_cutoff(client, grace: timedelta = DEFAULT_ORPHAN_GRACE) -> int:
    """The first load id issued after (the engine's now - grace): unflipped loads below it are orphans."""
    if grace < timedelta(0):
        raise ValueError(f"orphan grace must not be negative, got {grace}")
    now_ms = int(client.command("SELECT toUnixTimestamp64Milli(now64(3))"))
    return max(0, now_ms - int(grace.total_seconds() * 1000)) << 22


def _load_states_sql(database: str, spec: Dataset, table: str, month_expr: str) -> str:
    """One row per (month, slice, load) of ``table`` in the months ``{months:Array(UInt32)}``:
    month, load_id, n (rows), state (active | superseded | orphaned | pending; orphans are the
    unflipped loads below ``{cutoff:UInt64}``)."""
    db = clickhouse_database(database)
    return (
        "SELECT g.month AS month, g.load_id AS load_id, g.n AS n, multiIf("
        f"g.load_id IN ({active_loads_sql(database, spec.name)}), 'active', "
        "g.load_id < ifNull(a.active, 0), 'superseded', g.load_id < {cutoff:UInt64}, 'orphaned', 'pending') "
        f"AS state\nFROM (SELECT {month_expr} AS month, venue, instrument, day, load_id, count() AS n FROM "
        f"{db}.`{table}`\n      WHERE {month_expr} IN {{months:Array(UInt32)}} GROUP BY month, venue, "
        "instrument, day, load_id) AS g\nLEFT JOIN (SELECT venue, instrument, day, load_id AS active FROM "
        f"{db}.{LOADS} FINAL\n           WHERE dataset = '{spec.code}' AND toYYYYMM(day) IN "
        "{months:Array(UInt32)}) AS a\nON g.venue = a.venue AND g.instrument = a.instrument AND g.day = "
        "a.day"
    )


def garbage_by_month(
    client, database: str, dataset: str, months=None, orphan_grace: timedelta = DEFAULT_ORPHAN_GRACE
) -> list[MonthGarbage]:
    """Every month (of ``months``, YYYY-MM, or all) of the dataset's tables with its garbage. Cheap
    when there is none: one scan of the month key and ``load_id`` per table; the per-slice split
    (superseded / orphaned / pending) is computed only for months with inactive rows."""
    spec = spec_for(dataset)
    db = clickhouse_database(database)
    wanted = sorted({int(_month_id(m)) for m in months}) if months is not None else None
    cutoff, out = None, []
    for table, month_expr in _targets(spec):
        where = f"WHERE {month_expr} IN {{months:Array(UInt32)}} " if wanted is not None else ""
        counts = client.query(
            f"SELECT {month_expr} AS month, count(), countIf(load_id NOT IN "
            f"({active_loads_sql(database, spec.name)})) FROM {db}.`{table}` {where}GROUP BY month ORDER BY "
            "month",
            parameters={"months": wanted} if wanted is not None else None,
        ).result_rows
        dirty = [int(m) for m, _, inactive in counts if inactive]
        split = {}
        if dirty:
            cutoff = orphan_cutoff(client, orphan_grace) if cutoff is None else cutoff
            split = {
                int(r[0]): r[1:]
                for r in client.query(
                    "SELECT month, sumIf(n, state = 'superseded'), sumIf(n, state = 'orphaned'), "
                    "sumIf(n, state = 'pending') FROM "
                    f"({_load_states_sql(database, spec, table, month_expr)}) GROUP BY month",
                    parameters={"months": dirty, "cutoff": cutoff},
                ).result_rows
            }
        out += [
            MonthGarbage(spec.name, table, str(m), int(rows), *(int(v) for v in split.get(int(m), (0, 0, 0))))
            for m, rows, _ in counts
        ]
    return out


def _max_block(client, database: str, table: str, part: str) -> int:
    """The highest block number in a partition: every insert creates a part above it (merges don't)."""
    return int(
        client.command(
            "SELECT max(max_block_number) FROM system.parts WHERE database = {db:String} AND table = "
            "{table:String} AND partition_id = {part:String} AND active",
            parameters={"db": database, "table": table, "part": part},
        )
        or 0
    )


def _no_write_since(client, database: str, table: str, part: str, block: int) -> None:
    if _max_block(client, database, table, part) != block:
        raise CompactionConflict(
            f"compaction of {table} {part} aborted: a write went into the month while it was "
            "being compacted; nothing was changed, run it again"
        )


def compact_month(
    client, database: str, dataset: str, month: str | date, orphan_grace: timedelta = DEFAULT_ORPHAN_GRACE
) -> list[CompactResult]:
    """Drop superseded and orphaned rows of one month (partition) of a dataset: copy every other row
    (active, and pending loads younger than ``orphan_grace``) to a staging table, check each active
    slice's count against ``loads.rows``, then swap the partition with ``ALTER TABLE ... REPLACE
    PARTITION`` (``DROP PARTITION`` when nothing is left): atomic, so readers see the same rows
    before, during and after. A table-month without garbage is left untouched. For trades the
    daily aggregate is compacted the same way. In cluster mode (``CLICKHOUSE_CLUSTER``) each shard does
    this to its own rows, ``ON CLUSTER`` (:func:`_swap_on_cluster`), with the same keep rule and checks.

    Never run it while another process writes into that month: a row inserted between the copy and
    the swap would be lost. What keeps writers out when the tick_compaction asset runs it: its
    ``clickhouse`` concurrency pool (the other ClickHouse steps of that pool wait) and, on the
    embedded engine, the data-directory lock every ClickHouse step holds while its client is open
    (one process at a time: this also holds off the ingest steps that sit in their sources' pools).
    On a ClickHouse server those ingest steps are not kept out, so the swap is also refused
    (:class:`CompactionConflict`, nothing changed) when a part was added to the partition since the
    copy began; only the instant between that check and the swap stays unguarded. A count mismatch
    raises :class:`CompactionAborted` (nothing changed)."""
    spec = spec_for(dataset)
    part = _month_id(month)
    db = clickhouse_database(database)
    params = {"months": [int(part)], "cutoff": orphan_cutoff(client, orphan_grace)}
    swap = _swap_on_cluster if cluster.configured() else _swap_one_node
    results = []
    for table, month_expr in _targets(spec):
        started = time.monotonic()
        states = _load_states_sql(database, spec, table, month_expr)
        before, superseded, orphaned, pending = (
            int(v or 0)
            for v in client.query(
                "SELECT sum(n), sumIf(n, state = 'superseded'), sumIf(n, state = 'orphaned'), sumIf(n, "
                f"state = 'pending') FROM ({states})",
                parameters=params,
            ).result_rows[0]
        )
        counts = {"superseded": superseded, "orphaned": orphaned, "pending": pending, "dataset": spec.name}
        if not superseded + orphaned:
            results.append(
                CompactResult(table, part, before, before, round(time.monotonic() - started, 3), **counts)
            )
            continue
        swap(client, database, spec, _MonthSwap(table, month_expr, part, params))
        after = int(client.command(f"SELECT count() FROM {db}.`{table}` WHERE {month_expr} = {part}") or 0)
        results.append(
            CompactResult(table, part, before, after, round(time.monotonic() - started, 3), **counts)
        )
    return results


@dataclass(frozen=True)
class _MonthSwap:
    """One table-month to compact: its partition key and the parameters of its load states."""

    table: str
    month_expr: str
    part: str  # YYYYMM
    params: dict  # months, cutoff (of _load_states_sql)


def _keep_rule(states: str) -> str:
    """The rows a compaction keeps (both paths): every load not superseded nor orphaned (_load_states_sql)."""
    return f"load_id NOT IN (SELECT load_id FROM ({states}) WHERE state IN ('superseded', 'orphaned'))"


def _check_counts(
    client, database: str, spec: Dataset, swap: _MonthSwap, staging: str, unchanged: Callable[[], None]
) -> None:
    """Raise CompactionAborted unless every active slice of the month has ``loads.rows`` rows in
    ``staging`` (``unchanged()`` first: a write that flipped meanwhile is a conflict, not an error)."""
    db = clickhouse_database(database)
    bad = client.query(
        f"SELECT l.venue, l.instrument, l.day, l.rows, ifNull(s.n, 0) FROM "
        f"(SELECT venue, instrument, day, load_id, rows FROM {db}.{LOADS} FINAL "
        f" WHERE dataset = '{spec.code}' AND toYYYYMM(day) = {swap.part}) AS l "
        f"LEFT JOIN (SELECT load_id, count() AS n FROM {db}.`{staging}` GROUP BY load_id) AS s "
        f"ON l.load_id = s.load_id WHERE l.rows != ifNull(s.n, 0) LIMIT 5"
    ).result_rows
    if bad:
        unchanged()
        raise CompactionAborted(
            f"compaction of {swap.table} {swap.part} aborted: active slices with a row count different from "
            f"loads.rows (venue, instrument, day, expected, found): {bad}"
        )


def _swap_one_node(client, database: str, spec: Dataset, swap: _MonthSwap) -> None:
    """The month's kept rows copied to a staging table, checked, swapped in (one node)."""
    db, table, part = clickhouse_database(database), swap.table, swap.part
    states = _load_states_sql(database, spec, table, swap.month_expr)
    block = _max_block(client, database, table, part)
    staging = f"{STAGING_PREFIX}{table}_{part}_{uuid.uuid4().hex[:8]}"  # its own: never another run's
    client.command(f"CREATE TABLE {db}.`{staging}` AS {db}.`{table}`")
    try:
        client.command(
            f"INSERT INTO {db}.`{staging}` SELECT * FROM {db}.`{table}` WHERE {swap.month_expr} = {part} "
            f"AND {_keep_rule(states)}",
            parameters=swap.params,
        )
        if table == spec.table:
            _check_counts(
                client,
                database,
                spec,
                swap,
                staging,
                lambda: _no_write_since(client, database, table, part, block),
            )  # a write that flipped
        kept = int(client.command(f"SELECT count() FROM {db}.`{staging}`") or 0)
        _no_write_since(client, database, table, part, block)
        if kept:
            client.command(f"ALTER TABLE {db}.`{table}` REPLACE PARTITION ID '{part}' FROM {db}.`{staging}`")
        else:  # every row was garbage (REPLACE refuses an empty source)
            client.command(f"ALTER TABLE {db}.`{table}` DROP PARTITION ID '{part}'")
    finally:
        client.command(f"DROP TABLE IF EXISTS {db}.`{staging}`")


def _inlined(states: str, params: dict) -> str:
    """The load states with their two parameters written in (integers): the copy's SELECT is sent on to
    every shard, which evaluates the keep rule against its own rows."""
    months = ", ".join(str(int(m)) for m in params["months"])
    return states.replace("{months:Array(UInt32)}", f"[{months}]").replace(
        "{cutoff:UInt64}", str(int(params["cutoff"]))
    )


def _shard_blocks(client, database: str, name: str, table: str, part: str) -> list[tuple]:
    return [
        tuple(r)
        for r in client.query(
            cluster.max_blocks_sql(name),
            parameters={"db": database, "table": cluster.local_name(table), "part": part},
        ).result_rows
    ]


def _swap_on_cluster(client, database: str, spec: Dataset, swap: _MonthSwap) -> None:
    """The cluster form of :func:`_swap_one_node` (stores.clickhouse.cluster.compaction_statements): each
    shard copies its kept rows (the same keep rule, over its local table) into a staging table; over all
    shards, each active slice's count is checked and no garbage may be in the copy; no shard got a write
    meanwhile; then each shard swaps its partition ``ON CLUSTER``."""
    name, db, table, part = cluster.configured(), clickhouse_database(database), swap.table, swap.part
    states = _inlined(
        _load_states_sql(database, spec, cluster.local_name(table), swap.month_expr), swap.params
    )
    blocks = _shard_blocks(client, database, name, table, part)
    staging = f"{STAGING_PREFIX}{table}_{part}_{uuid.uuid4().hex[:8]}"
    from_empty = bool(
        int(
            client.command(
                "SELECT count() FROM system.settings WHERE name = 'allow_replace_partition_from_empty_source'"
            )
            or 0
        )
    )
    create_local, create, copy, sync, replace, *drops = cluster.compaction_statements(
        database, name, table, part, _keep_rule(states), staging, replace_from_empty=from_empty
    )

    def unchanged() -> None:
        if _shard_blocks(client, database, name, table, part) != blocks:
            raise CompactionConflict(
                f"compaction of {table} {part} aborted: a write went into the month on a shard "
                "while it was being compacted; nothing was changed, run it again"
            )

    try:
        client.command(create_local)
        client.command(create)
        client.command(copy, settings=cluster.insert_settings())
        client.command(sync)
        if table == spec.table:
            _check_counts(client, database, spec, swap, staging, unchanged)
        # the keep rule, which each shard evaluated on its own rows, checked against all shards' load states
        # (read over the Distributed table, GLOBAL by client_settings): no garbage may be in the copy
        garbage = _keep_rule(_load_states_sql(database, spec, table, swap.month_expr)).replace(
            "NOT IN", "IN", 1
        )
        left = int(
            client.command(f"SELECT count() FROM {db}.`{staging}` WHERE {garbage}", parameters=swap.params)
            or 0
        )
        if left:
            unchanged()
            raise CompactionAborted(
                f"compaction of {table} {part} aborted: {left:,} rows of superseded or orphaned "
                "loads were copied; nothing was changed"
            )
        unchanged()
        client.command(replace)
    finally:
        for statement in drops:
            client.command(statement)


def drop_stale_staging(client, database: str, older_than: timedelta = timedelta(days=1)) -> list[str]:
    """Drop the staging tables a killed compaction left behind (created more than ``older_than`` ago)."""
    names = [
        r[0]
        for r in client.query(
            "SELECT name FROM system.tables WHERE database = {db:String} AND startsWith(name, "
            "{prefix:String}) AND metadata_modification_time <= now() - toIntervalSecond({age:UInt32})",
            parameters={"db": database, "prefix": STAGING_PREFIX, "age": int(older_than.total_seconds())},
        ).result_rows
    ]
    on = f" ON CLUSTER `{name}` SYNC" if (name := cluster.configured()) else ""  # on every node
    for table in names:
        client.command(
            "DROP TABLE IF EXISTS "
            f"{clickhouse_database(database)}.`{sql_identifier(table, 'staging table')}`{on}"
        )
    return names


@dataclass
class CompactionReport:
    """What :func:`compact_store` did: the table-months it compacted, the months it left alone."""

    results: list = field(default_factory=list)  # CompactResult of each table of a compacted month
    checked: list = field(default_factory=list)  # MonthGarbage of every table-month looked at
    conflicts: list = field(default_factory=list)  # "dataset YYYY-MM: why" (a write ran into it: next time)
    errors: list = field(default_factory=list)  # "dataset YYYY-MM: why" (a count mismatch: look at it)
    stale_staging: list = field(default_factory=list)  # staging tables of killed compactions, dropped
    seconds: float = 0.0

    @property
    def reclaimed(self) -> int:
        return sum(r.reclaimed for r in self.results)

    @property
    def months_compacted(self) -> int:
        return len({(r.dataset, r.month) for r in self.results})

    def rows(self) -> list[dict]:
        """One dict per compacted table-month (for metadata)."""
        return [
            {
                "dataset": r.dataset,
                "table": r.table,
                "month": f"{r.month[:4]}-{r.month[4:]}",
                "rows_before": r.rows_before,
                "rows_after": r.rows_after,
                "rows_reclaimed": r.reclaimed,
                "superseded": r.superseded,
                "orphaned": r.orphaned,
                "unflipped_kept": r.pending,
                "seconds": r.seconds,
            }
            for r in self.results
        ]

    def summary(self) -> str:
        months = {(r.dataset, r.month) for r in self.results}
        return (
            f"{self.reclaimed:,} rows reclaimed in {len(months)} month(s) of {len(self.checked)} "
            f"table-months checked, {len(self.conflicts)} skipped (a write ran into them), "
            f"{len(self.errors)} failed, {self.seconds:.1f} s"
        )


def compact_store(
    client, database: str, datasets=None, months=None, orphan_grace: timedelta = DEFAULT_ORPHAN_GRACE
) -> CompactionReport:
    """:func:`compact_month` for every dataset (or ``datasets``) and month (or ``months``, YYYY-MM)
    with reclaimable rows (:func:`garbage_by_month`); the others are only counted. A month that
    could not be compacted is listed (``conflicts`` / ``errors``) and the next months still run."""
    started = time.monotonic()
    report = CompactionReport(stale_staging=drop_stale_staging(client, database))
    for dataset in datasets or DATASETS:
        found = garbage_by_month(client, database, dataset, months, orphan_grace)
        report.checked += found
        for month in sorted({g.month for g in found if g.reclaimable}):
            label = f"{dataset} {month[:4]}-{month[4:]}"
            try:
                report.results += compact_month(client, database, dataset, month, orphan_grace)
            except CompactionConflict as error:
                report.conflicts.append(f"{label}: {error}")
            except CompactionAborted as error:
                report.errors.append(f"{label}: {error}")
    report.seconds = round(time.monotonic() - started, 3)
    return report


def garbage_rows(client, database: str, dataset: str) -> int:
    """Rows of a dataset's table that no read path shows (superseded or orphaned loads)."""
    spec = spec_for(dataset)
    return int(
        client.command(
            f"SELECT count() FROM {clickhouse_database(database)}.`{spec.table}` "
            f"WHERE load_id NOT IN ({active_loads_sql(database, spec.name)})"
        )
        or 0
    )
