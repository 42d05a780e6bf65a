"""Loading minute-bar CSV files into stock_1min_qfq, idempotently, per file and month.

The unit of work is (file, month): the months of a run's partitions that a file has rows in.
`etl_metadata` records each loaded (file, month) with the file's sha256: a file
already loaded with the same content is skipped unless forced.

One file is one transaction:
1. pass 1 streams the file and computes, per code, the first and last bar time in the wanted
   months (and collects rejected lines);
2. DELETE those (code, time range) rows, stream the file again and write its rows (binary COPY,
   or INSERT ... unnest on servers without COPY FROM STDIN), upsert etl_metadata, replace the
   file's rejected rows per code and day (ledger.REJECTED_ROWS: what the completeness check names
   as the cause of a day without bars), COMMIT.
So re-loading a file replaces its rows and never duplicates them; a file covering one day of all
codes does not touch other days; a killed load rolls back to the previous state. A file that
repeats a (code, minute) across batches trips the unique index: it is then loaded again keeping
the last occurrence of each bar (counted as `duplicates_dropped`).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import polars as pl
import psycopg
from psycopg import errors, sql

from marketdata_assets.core.landing_files import Listing, open_binary, walk
from marketdata_assets.ingest.minute_bars.transforms import dedupe_bars
from marketdata_assets.sources.registry import minute_files
from marketdata_assets.stores.timescale import ledger
from marketdata_assets.stores.timescale.copy_writer import insert_rows, table_identifier
from marketdata_assets.stores.timescale.kline import MINUTE_TABLE

FILES = minute_files()  # the minute-bar files' reader and profiles (sources/minute_csv)

# Files up to this size are parsed once (batches kept between the span pass and the write).
IN_MEMORY_BYTES = 256 << 20


@dataclass
class FileLoad:
    """What happened to one file in one run (metadata rows, the run log)."""

    file: str
    size_bytes: int
    months: list[str] = field(default_factory=list)
    outcome: str = "pending"  # loaded | skipped (a file that can't be loaded is quarantined)
    rows: int = 0
    rows_by_month: dict = field(default_factory=dict)  # "YYYY-MM" -> rows written in that month
    rows_deleted: int = 0
    rejects: int = 0
    rejects_by_reason: dict = field(default_factory=dict)  # reason (up to its first ':') -> rows
    duplicates_dropped: int = 0
    seconds: float = 0.0
    rejects_file: str | None = None


def file_sha256(path: Path, chunk: int = 8 << 20) -> str:
    digest = hashlib.sha256()
    with open_binary(path) as fh:  # never through a link (LinkRefused)
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _is_csv(name: str) -> bool:
    return not name.startswith(".") and name.lower().endswith((".csv", ".csv.gz"))


def landing_listing(root: Path) -> Listing:
    """CSV (and .csv.gz) files under the landing root, ignoring hidden and partial files, and the
    symbolic links in it (never entered nor read: the load quarantines them; core/landing_files.py)."""
    return walk(root, keep=_is_csv)


def landing_files(root: Path) -> list[Path]:
    """The CSV files of `landing_listing` (no link among them)."""
    return landing_listing(root).files


def landing_index(
    conn: psycopg.Connection, root: Path, files: Sequence[Path] | None = None
) -> tuple[dict[str, tuple[list[date], str | None]], list[tuple[Path, str, os.stat_result]]]:
    """({relative path: (months, error)} of files indexed as they are now, [new or changed files])
    of `files` (default: landing_files(root)). Entries of files gone from the landing area are dropped."""
    known = {
        row[0]: row[1:]
        for row in conn.execute(
            "SELECT source_file, size_bytes, mtime_ns, months, error FROM minute_bar_landing_files"
        ).fetchall()
    }
    current: dict[str, tuple[list[date], str | None]] = {}
    stale = []
    for path in landing_files(root) if files is None else files:
        rel = str(path.relative_to(root))
        stat = path.lstat()
        cached = known.get(rel)
        if cached and cached[0] == stat.st_size and cached[1] == stat.st_mtime_ns:
            current[rel] = (list(cached[2]), cached[3])
        else:
            stale.append((path, rel, stat))
    gone = set(known) - set(current) - {rel for _, rel, _ in stale}
    if gone:
        conn.execute("DELETE FROM minute_bar_landing_files WHERE source_file = ANY(%s)", (sorted(gone),))
    conn.commit()
    return current, stale


def record_index(
    conn: psycopg.Connection,
    rel: str,
    stat: os.stat_result,
    first: datetime | None,
    last: datetime | None,
    months: Sequence[date],
    error: str | None,
) -> None:
    with conn.transaction():
        conn.execute(
            """
            INSERT INTO minute_bar_landing_files (source_file, size_bytes, mtime_ns, first_time, last_time, \
months, error)
            VALUES (%s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (source_file) DO UPDATE SET size_bytes = EXCLUDED.size_bytes, \
mtime_ns = EXCLUDED.mtime_ns,
                first_time = EXCLUDED.first_time, last_time = EXCLUDED.last_time, months = EXCLUDED.months,
                error = EXCLUDED.error, indexed_at = now()""",
            (rel, stat.st_size, stat.st_mtime_ns, first, last, list(months), error),
        )


@dataclass
class ParsedFile:
    """A file parsed once (files up to IN_MEMORY_BYTES): its batches, rejects and time span."""

    batches: list[pl.DataFrame]
    rejects: list
    reject_count: int
    reject_reasons: dict
    first_time: datetime | None
    last_time: datetime | None
    months: list[date]
    rejected_days: pl.DataFrame = field(
        default_factory=lambda: pl.DataFrame(schema=FILES.rejected_days_schema)
    )


def parse_file(path: Path, profiles: Sequence[Any] | None = None, **options) -> ParsedFile:
    reader = FILES.open(path, profiles, **options)
    batches = list(reader.batches())
    months: set[date] = set()
    first = last = None
    for batch in batches:
        lo, hi = batch["time"].min(), batch["time"].max()
        first = lo if first is None or lo < first else first
        last = hi if last is None or hi > last else last
        months.update(batch["time"].dt.truncate("1mo").dt.date().unique().to_list())
    return ParsedFile(
        batches,
        reader.rejects,
        reader.reject_count,
        dict(reader.reject_reasons),
        first,
        last,
        sorted(months),
        reader.rejected_days,
    )


def file_span(
    path: Path, profiles: Sequence[Any] | None = None
) -> tuple[datetime | None, datetime | None, list[date], ParsedFile | None]:
    """(first, last, months, parsed file or None) of a new or changed landing file: small files are
    parsed whole (the load reuses the batches), big ones scanned by their time column only.
    Raises the file source's `file_error` when the file can't be read."""
    if path.lstat().st_size <= IN_MEMORY_BYTES:
        parsed = parse_file(path, profiles)
        return parsed.first_time, parsed.last_time, parsed.months, parsed
    span = FILES.open(path, profiles).time_range()
    return span.min_time, span.max_time, [date(int(m[:4]), int(m[5:7]), 1) for m in span.months], None


def months_to_load(
    conn: psycopg.Connection, rel: str, sha: str, months: Iterable[date], force: bool
) -> list[date]:
    wanted = sorted(set(months))
    if force or not wanted:
        return wanted
    done = {
        row[0]
        for row in conn.execute(
            "SELECT month FROM etl_metadata WHERE source_file = %s AND sha256 = %s AND month = ANY(%s)",
            (rel, sha, wanted),
        ).fetchall()
    }
    return [m for m in wanted if m not in done]


def _in_months(frame: pl.DataFrame, months: Sequence[date]) -> pl.DataFrame:
    return frame.filter(pl.col("time").dt.truncate("1mo").dt.date().is_in(list(months)))


def _delete_spans(conn: psycopg.Connection, table: str, span: pl.DataFrame) -> int:
    """Delete the stored bars of each code's time span in the file (what a reload replaces): rows deleted."""
    delete = sql.SQL("""
        DELETE FROM {table} t
        USING unnest(%s::text[], %s::timestamp[], %s::timestamp[]) AS r(code, first, last)
        WHERE t.code = r.code AND t.time BETWEEN r.first AND r.last""").format(table=table_identifier(table))
    cursor = conn.execute(delete, [span["code"].to_list(), span["first"].to_list(), span["last"].to_list()])
    return cursor.rowcount


def _insert_batches(
    conn: psycopg.Connection, batches, table: str, use_copy: bool
) -> tuple[int, int, dict[date, int]]:
    """Each batch's bars, a repeated bar kept once, into `table`: (rows, duplicates dropped, rows a
    month)."""
    rows = duplicates = 0
    per_month: dict[date, int] = {}
    for batch in batches:
        unique = dedupe_bars(batch)
        duplicates += batch.height - unique.height
        rows += insert_rows(conn, unique, table, use_copy=use_copy)
        for month, count in unique.group_by(pl.col("time").dt.truncate("1mo").dt.date()).len().iter_rows():
            per_month[month] = per_month.get(month, 0) + count
    return rows, duplicates, per_month


def _record_months(
    conn: psycopg.Connection,
    rel: str,
    months: Sequence[date],
    sha256: str,
    result: FileLoad,
    per_month: dict[date, int],
    run_id: str | None,
) -> None:
    """The file's `etl_metadata` row of each month it was loaded for (its digest and counts)."""
    for month in months:
        conn.execute(
            """
            INSERT INTO etl_metadata (source_file, month, sha256, size_bytes, rows_loaded, \
rows_rejected,
                                      duplicates_dropped, run_id)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (source_file, month) DO UPDATE SET sha256 = EXCLUDED.sha256,
                size_bytes = EXCLUDED.size_bytes, rows_loaded = EXCLUDED.rows_loaded,
                rows_rejected = EXCLUDED.rows_rejected, duplicates_dropped = \
EXCLUDED.duplicates_dropped,
                loaded_at = now(), run_id = EXCLUDED.run_id""",
            (
                rel,
                month,
                sha256,
                result.size_bytes,
                per_month.get(month, 0),
                result.rejects,
                result.duplicates_dropped,
                run_id,
            ),
        )


def load_file(
    conn: psycopg.Connection,
    path: Path,
    rel: str,
    months: Sequence[date],
    *,
    sha256: str,
    use_copy: bool,
    run_id: str | None,
    reject_dir: Path,
    profiles: Sequence[Any] | None = None,
    table: str = MINUTE_TABLE,
    block_bytes: int | None = None,
    parsed: ParsedFile | None = None,
) -> FileLoad:
    """Load the rows of `path` that fall in `months`, replacing what an earlier load of the same rows
    wrote, in one transaction on `conn` (which must not be in a transaction)."""
    started = time.monotonic()
    result = FileLoad(file=rel, size_bytes=path.lstat().st_size, months=[f"{m:%Y-%m}" for m in months])
    options = {"block_bytes": block_bytes} if block_bytes else {}

    # Pass 1: per-code time spans in the wanted months, and the rejects. A file that fits in memory
    # keeps its parsed batches for pass 2; a bigger one is streamed again.
    if parsed is None and result.size_bytes <= IN_MEMORY_BYTES:
        parsed = parse_file(path, profiles, **options)
    reader = FILES.open(path, profiles, **options) if parsed is None else None
    spans: list[pl.DataFrame] = []
    kept: list[pl.DataFrame] | None = [] if parsed is not None else None
    for batch in parsed.batches if parsed is not None else reader.batches():
        batch = _in_months(batch, months)
        if batch.height:
            spans.append(batch.group_by("code").agg(first=pl.col("time").min(), last=pl.col("time").max()))
            if kept is not None:
                kept.append(batch)
    rejects = parsed.rejects if parsed is not None else reader.rejects
    result.rejects = parsed.reject_count if parsed is not None else reader.reject_count
    result.rejects_by_reason = dict(parsed.reject_reasons if parsed is not None else reader.reject_reasons)
    rejected_days = parsed.rejected_days if parsed is not None else reader.rejected_days
    if rejects:
        result.rejects_file = str(
            FILES.write_rejects(rejects, reject_dir / f"{rel.replace('/', '__')}.rejects.csv")
        )
    span = (
        pl.concat(spans).group_by("code").agg(pl.col("first").min(), pl.col("last").max())
        if spans
        else pl.DataFrame(schema={"code": pl.String, "first": pl.Datetime("us"), "last": pl.Datetime("us")})
    )

    def write(dedupe_whole_file: bool) -> None:
        with conn.transaction():
            if span.height:
                result.rows_deleted = _delete_spans(conn, table, span)
            batches = (
                iter(kept)
                if kept is not None
                else (_in_months(b, months) for b in FILES.open(path, profiles, **options).batches())
            )
            if dedupe_whole_file:  # a bar repeated across batches: keep its last occurrence in the file
                frames = [b for b in batches if b.height]
                batches = iter([pl.concat(frames)] if frames else [])
            result.rows, result.duplicates_dropped, per_month = _insert_batches(
                conn, batches, table, use_copy
            )
            result.rows_by_month = {f"{month:%Y-%m}": count for month, count in sorted(per_month.items())}
            ledger.replace_rejected_rows(
                conn,
                rel,
                *(rejected_days[c].to_list() for c in FILES.rejected_days_schema),
                rejects_file=result.rejects_file,
                run_id=run_id,
            )
            _record_months(conn, rel, months, sha256, result, per_month, run_id)

    try:
        write(dedupe_whole_file=False)
    except errors.UniqueViolation:
        write(dedupe_whole_file=True)
    result.outcome = "loaded"
    result.seconds = round(time.monotonic() - started, 3)
    return result
