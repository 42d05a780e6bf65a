"""The minute-bar store's bootstrap: the TimescaleDB extension, the hypertable `stock_1min_qfq` with its
unique index (migrating a plain table's rows), and the loader's bookkeeping tables.

Every writer of minute bars calls :func:`bootstrap` before its first row (the `bar_store` asset, the
landing load behind `stock_1min_qfq` whoever launches it: the CLI, a sensor, a schedule, the asset
run alone; the K-line), so each finds the schema `make run` builds. All of it is one transaction
holding the project's DDL lock: Postgres DDL is transactional, CREATE EXTENSION and create_hypertable
included, so a crash in the middle leaves nothing or the finished schema.

Where the extension can't be created (not installed on the server, not preloaded, no privilege) the
table is a plain Postgres table: a degraded mode, returned with its reason (`degraded`) for the run's
metadata and the CLI's line, never a silent default. The next bootstrap on a server that has it
makes the table a hypertable, migrating its rows (stores/timescale/minute_table.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import psycopg

from marketdata_assets.stores.timescale import ledger
from marketdata_assets.stores.timescale.minute_table import (
    MIGRATE_MAX_ROWS,
    MINUTE_TABLE,
    MinuteTable,
    ensure_minute_table,
)


@dataclass(frozen=True)
class StoreBootstrap:
    """What a bootstrap found and did."""

    extension_version: str | None
    extension_created: bool
    degraded: str | None  # why stock_1min_qfq is a plain table, None when it is a hypertable
    table: MinuteTable
    seconds: float

    def as_metadata(self) -> dict:
        """Plain values for a run's metadata."""
        table = self.table
        metadata = {
            "store_mode": "hypertable" if table.hypertable else "plain table (degraded)",
            "timescaledb": self.extension_version or "absent",
            "extension_created": self.extension_created,
            "table_created": table.created,
            "bootstrap_seconds": self.seconds,
        }
        if self.degraded:
            metadata["degraded"] = self.degraded
        if table.migrated_rows is not None:
            metadata.update(
                migrated_rows=table.migrated_rows,
                rows_after_migration=table.rows_after_migration,
                migration_seconds=table.migration_seconds,
            )
        return metadata

    def events(self) -> list[str]:
        """What a log should say about this bootstrap (nothing when the store was already in place)."""
        lines = []
        if self.extension_created:
            lines.append(f"created the timescaledb extension ({self.extension_version})")
        if self.table.migrated_rows is not None:
            lines.append(
                f"{MINUTE_TABLE} was a plain table: now a hypertable, {self.table.migrated_rows:,} rows "
                f"migrated ({self.table.rows_after_migration:,} after) in {self.table.migration_seconds} s"
            )
        elif self.table.created:
            lines.append(
                f"created {MINUTE_TABLE} ({'hypertable' if self.table.hypertable else 'plain table'})"
            )
        return lines


def degraded_reason(reason: str) -> str:
    return (
        f"TimescaleDB is not available ({reason}): {MINUTE_TABLE} is a plain PostgreSQL table (no chunks), "
        "and stock_monthly_kline a table refreshed with date_trunc('month') and ordered array_agg instead "
        "of time_bucket/first/last. Once the server has the extension, the next run makes the table a "
        "hypertable and migrates its rows."
    )


def ensure_extension(conn: psycopg.Connection) -> tuple[str | None, bool, str | None]:
    """(extension version, created now, why it is absent). CREATE EXTENSION runs in a savepoint, so
    a refusal leaves the caller's transaction usable."""
    version = _extension_version(conn)
    if version:
        return version, False, None
    if conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'").fetchone() is None:
        return None, False, degraded_reason("the server has no timescaledb extension installed")
    # Without the preloaded loader (which defines this setting), CREATE EXTENSION ends the session.
    if conn.execute("SELECT current_setting('timescaledb.disable_load', true)").fetchone()[0] is None:
        return (
            None,
            False,
            degraded_reason(
                "the server does not preload it: add timescaledb to "
                "shared_preload_libraries and restart the server"
            ),
        )
    try:
        with conn.transaction():
            conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    except psycopg.errors.DatabaseError as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        return None, False, degraded_reason(f"CREATE EXTENSION timescaledb failed: {first}")
    return _extension_version(conn), True, None


def _extension_version(conn: psycopg.Connection) -> str | None:
    row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
    return row[0] if row else None


def bootstrap(conn: psycopg.Connection, *, migrate_max_rows: int | None = MIGRATE_MAX_ROWS) -> StoreBootstrap:
    """Extension, minute table (hypertable + unique index) and the loader's tables, idempotently, in
    one transaction under the DDL lock. Raises minute_table.PlainTableNotMigrated (nothing changed)
    when a plain table holds more rows than `migrate_max_rows`."""
    started = time.monotonic()
    with ledger.ddl_lock(conn):
        version, created, degraded = ensure_extension(conn)
        table = ensure_minute_table(conn, migrate_max_rows=migrate_max_rows)
        ledger.ensure_loader_tables(conn)
    return StoreBootstrap(
        extension_version=version,
        extension_created=created,
        degraded=degraded,
        table=table,
        seconds=round(time.monotonic() - started, 3),
    )
