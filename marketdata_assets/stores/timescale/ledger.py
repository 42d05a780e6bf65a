"""The minute-bar loader's bookkeeping tables (`etl_metadata`, the landing index, the
quarantine, the rejected rows per code and day) and the project's DDL lock: schema changes of
concurrent runs take it first."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date

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

# The rows each loaded file had rejected whose code and time parsed, per code, day and kind of reason
# ('future-dated', 'bad number in close'): written in the file's load transaction, replaced when the
# file is loaded again, so the completeness check can name them as the cause of a day without bars.
REJECTED_ROWS = "minute_bar_rejected_rows"
REJECTED_ROWS_DDL = f"""
CREATE TABLE IF NOT EXISTS {REJECTED_ROWS} (
    source_file   text        NOT NULL,
    code          text        NOT NULL,
    day           date        NOT NULL,
    reason        text        NOT NULL,
    rejected_rows bigint      NOT NULL,
    rejects_file  text,
    run_id        text,
    loaded_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source_file, code, day, reason)
)"""
REJECTED_ROWS_INDEX = f"CREATE INDEX IF NOT EXISTS {REJECTED_ROWS}_day_code ON {REJECTED_ROWS} (day, code)"


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
        conn.execute(REJECTED_ROWS_DDL)
        conn.execute(REJECTED_ROWS_INDEX)


def replace_rejected_rows(
    conn: psycopg.Connection,
    source_file: str,
    codes: Sequence[str],
    days: Sequence[date],
    reasons: Sequence[str],
    rows: Sequence[int],
    *,
    rejects_file: str | None,
    run_id: str | None,
) -> None:
    """The file's rejected rows per (code, day, reason) in place of what its earlier load recorded, in
    the caller's transaction (the file's load)."""
    conn.execute(f"DELETE FROM {REJECTED_ROWS} WHERE source_file = %s", (source_file,))
    if codes:
        conn.execute(
            f"""
            INSERT INTO {REJECTED_ROWS} (source_file, code, day, reason, rejected_rows, rejects_file, run_id)
            SELECT %s, r.code, r.day, r.reason, r.n, %s, %s
            FROM unnest(%s::text[], %s::date[], %s::text[], %s::bigint[]) AS r(code, day, reason, n)""",
            (source_file, rejects_file, run_id, list(codes), list(days), list(reasons), list(rows)),
        )


@dataclass
class RejectedDay:
    """The rows of one code and day that loads rejected: how many, by kind of reason, and in which
    rejects files (the source file where none was written)."""

    code: str
    day: date
    rows: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)


def rejected_rows_between(
    conn: psycopg.Connection, start: date, end: date
) -> dict[tuple[str, date], RejectedDay]:
    """The rejected rows of the days in [start, end) by (code, day); none on a store whose loader never
    made the table."""
    if conn.execute("SELECT to_regclass(%s)", (REJECTED_ROWS,)).fetchone()[0] is None:
        return {}
    found: dict[tuple[str, date], RejectedDay] = {}
    for code, day, reason, rows, file in conn.execute(
        f"""
            SELECT code, day, reason, sum(rejected_rows)::bigint, coalesce(rejects_file, source_file)
            FROM {REJECTED_ROWS} WHERE day >= %s AND day < %s
            GROUP BY 1, 2, 3, 5 ORDER BY 1, 2, 4 DESC, 3, 5""",
        (start, end),
    ).fetchall():
        entry = found.setdefault((code, day), RejectedDay(code, day))
        entry.rows += rows
        entry.reasons[reason] = entry.reasons.get(reason, 0) + rows
        if file not in entry.files:
            entry.files.append(file)
    return found
