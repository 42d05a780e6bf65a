"""The minute-bar table `stock_1min_qfq`: its DDL, and making it a hypertable, migrating the rows of
a plain table that already holds bars.

One bar per code and minute (a UNIQUE index on (code, time DESC)); with TimescaleDB a hypertable on
`time` with 1-month chunks and no default index. A plain table (created where the extension was
absent, or by an older version) becomes a hypertable with its rows moved into chunks
(`create_hypertable(..., migrate_data => true)`), counted before and after and timed. That copy runs
in one transaction holding an exclusive lock on the table and writes every row again, so above
`migrate_max_rows` it is refused once with :class:`PlainTableNotMigrated`, which names the table,
its rows and the command that migrates it; nothing is changed then.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import psycopg
from psycopg import sql

from marketdata_assets.core.identifiers import qualified_name

MINUTE_TABLE = "stock_1min_qfq"
MINUTE_CHUNK_INTERVAL = "1 month"  # TimescaleDB makes this a fixed 30-day chunk
MIGRATE_SETTING = "MINUTE_BARS_MIGRATE_MAX_ROWS"
MIGRATE_MAX_ROWS = 20_000_000  # ~2 minutes of migrate_data on 2 cores (2.3M rows took 12.4 s)

# A bar's columns after its time: a minute's here, a month's in the K-line table (kline.KLINE_TABLE_DDL)
BAR_COLUMNS_DDL = """    code text NOT NULL,
    name text,
    open double precision,
    high double precision,
    low double precision,
    close double precision,
    volume double precision,
    amount double precision"""
MINUTE_TABLE_DDL = f"""CREATE TABLE IF NOT EXISTS {{table}} (
    time timestamp without time zone NOT NULL,
{BAR_COLUMNS_DDL}
)"""
MINUTE_HYPERTABLE_SQL = (
    f"SELECT create_hypertable({{table_name}}, by_range('time', INTERVAL '{MINUTE_CHUNK_INTERVAL}'), "
    "create_default_indexes => false, if_not_exists => true, migrate_data => {migrate})"
)
MINUTE_UNIQUE_INDEX_DDL = "CREATE UNIQUE INDEX IF NOT EXISTS {index} ON {table} (code, time DESC)"


class PlainTableNotMigrated(RuntimeError):
    """A plain minute table holding rows was not made a hypertable; the message says how to do it."""


@dataclass(frozen=True)
class MinuteTable:
    """What ensure_minute_table did. `migrated_rows` is set when a plain table became a hypertable."""

    created: bool
    hypertable: bool
    migrated_rows: int | None = None
    rows_after_migration: int | None = None
    migration_seconds: float | None = None


def timescaledb_installed(conn: psycopg.Connection) -> bool:
    return conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone() is not None


def is_hypertable(conn: psycopg.Connection, table: str) -> bool:
    return conn.execute(
        """SELECT EXISTS (SELECT 1 FROM timescaledb_information.hypertables h
                           WHERE format('%%I.%%I', h.hypertable_schema, h.hypertable_name)::regclass
                                 = to_regclass(%s))""",
        (table,),
    ).fetchone()[0]


def ensure_minute_table(
    conn: psycopg.Connection, *, table: str = MINUTE_TABLE, migrate_max_rows: int | None = MIGRATE_MAX_ROWS
) -> MinuteTable:
    """Create the minute-bar table if missing (idempotent), in one transaction (a savepoint inside the
    caller's): a hypertable when TimescaleDB is installed in the database, migrating the rows of an
    existing plain table (up to `migrate_max_rows`; None: any number), and the unique index."""
    qualified_name(table)
    ident = sql.Identifier(*table.split("."))
    with conn.transaction():
        existed = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()[0]
        conn.execute(sql.SQL(MINUTE_TABLE_DDL).format(table=ident))
        result = MinuteTable(created=not existed, hypertable=False)
        if timescaledb_installed(conn):
            if existed and not is_hypertable(conn, table):
                result = _migrate(conn, table, ident, migrate_max_rows)
            else:
                conn.execute(
                    sql.SQL(MINUTE_HYPERTABLE_SQL).format(
                        table_name=sql.Literal(table), migrate=sql.Literal(False)
                    )
                )
                result = MinuteTable(created=not existed, hypertable=True)
        index = sql.Identifier(f"{table.rpartition('.')[2]}_code_time")
        conn.execute(sql.SQL(MINUTE_UNIQUE_INDEX_DDL).format(index=index, table=ident))
    return result


def _migrate(
    conn: psycopg.Connection, table: str, ident: sql.Identifier, max_rows: int | None
) -> MinuteTable:
    """A plain table becomes a hypertable, its rows moved into chunks; the counts must agree."""
    count = sql.SQL("SELECT count(*) FROM {}").format(ident)
    before = conn.execute(count).fetchone()[0]
    if max_rows is not None and before > max_rows:
        raise PlainTableNotMigrated(
            f"{table} is a plain table (not a hypertable) holding {before:,} rows, more than "
            f"{MIGRATE_SETTING}={max_rows:,}: moving them into hypertable chunks rewrites every row in one "
            "transaction that locks the table, so it is not done implicitly, and nothing was loaded or "
            f"changed. Migrate it once with `{MIGRATE_SETTING}={before} marketdata load-minute-bars` (the "
            "same command, run with a limit above the table's rows; a bar_store run with that variable set "
            "does the same)."
        )
    started = time.monotonic()
    try:
        with conn.transaction():
            conn.execute(
                sql.SQL(MINUTE_HYPERTABLE_SQL).format(
                    table_name=sql.Literal(table), migrate=sql.Literal(before > 0)
                )
            )
    except psycopg.errors.DatabaseError as error:
        detail = " ".join(str(error).split())
        raise PlainTableNotMigrated(
            f"{table} is a plain table holding {before:,} rows and TimescaleDB refused to make it a "
            f"hypertable: {detail}. Nothing was changed; fix the table (e.g. a unique index without `time`) "
            "and run the load again."
        ) from None
    after = conn.execute(count).fetchone()[0]
    if after != before:  # rolls the migration back with the transaction
        raise RuntimeError(f"migrating {table} into a hypertable: {before:,} rows before, {after:,} after")
    return MinuteTable(
        created=False,
        hypertable=True,
        migrated_rows=before,
        rows_after_migration=after,
        migration_seconds=round(time.monotonic() - started, 3),
    )
