"""The minute-bar loader's bookkeeping tables (seed 001's `etl_metadata`, the landing index, the
quarantine) and the project's DDL lock: schema changes of concurrent runs take it first."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

ETL_METADATA_DDL = """
CREATE TABLE IF NOT EXISTS etl_metadata (
    source_file        text        NOT NULL,
    month              date        NOT NULL,
    sha256             text        NOT NULL,
    size_bytes         bigint      NOT NULL,
    rows_loaded        bigint      NOT NULL,
    rows_rejected      bigint      NOT NULL,
    duplicates_dropped bigint      NOT NULL DEFAULT 0,
    loaded_at          timestamptz NOT NULL DEFAULT now(),
    run_id             text,
    PRIMARY KEY (source_file, month)
)"""

# Where each landing file's rows fall in time, so a run finds the files of its months without
# reading every file: refreshed when a file's size or mtime changes.
LANDING_INDEX_DDL = """
CREATE TABLE IF NOT EXISTS minute_bar_landing_files (
    source_file text        PRIMARY KEY,
    size_bytes  bigint      NOT NULL,
    mtime_ns    bigint      NOT NULL,
    first_time  timestamp,
    last_time   timestamp,
    months      date[]      NOT NULL,
    error       text,
    indexed_at  timestamptz NOT NULL DEFAULT now()
)"""

# Files set aside because no profile could read them, with the profile set (fingerprint) that
# failed: a run under another profile set moves them back into the landing area to be read again.
QUARANTINE_DDL = """
CREATE TABLE IF NOT EXISTS minute_bar_quarantine (
    source_file    text        PRIMARY KEY,
    quarantined_to text        NOT NULL,
    reason         text        NOT NULL,
    profiles       text,
    quarantined_at timestamptz NOT NULL DEFAULT now()
)"""


# Runs of different months start together (a sensor, a backfill): concurrent CREATE ... IF NOT
# EXISTS can still collide in the catalog, so schema changes take this lock first.
DDL_LOCK_KEY = 0x6D61726B65740001


@contextmanager
def ddl_lock(conn: psycopg.Connection) -> Iterator[None]:
    """One transaction holding the project's DDL advisory lock (released at commit or rollback)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (DDL_LOCK_KEY,))
        yield


def ensure_loader_tables(conn: psycopg.Connection) -> None:
    with ddl_lock(conn):
        conn.execute(ETL_METADATA_DDL)
        conn.execute(LANDING_INDEX_DDL)
        conn.execute(QUARANTINE_DDL)
