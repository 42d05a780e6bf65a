"""Parquet export of the stores, Hive-partitioned, incremental and atomic per file (docs/read.md).

Layout: ``<root>/<dataset>/venue=<VENUE>/date=<YYYY-MM-DD>/part-0.parquet``, one file per dataset,
venue and day, for every ClickHouse dataset (datasets.frames.DATASETS: the day is the slices' UTC
day) and the TimescaleDB minute bars as ``minute_bars`` (venue from the code's exchange: SSE, SZSE,
BSE; the day is the Beijing trading day). The partition columns live in the path only (a file has
no ``venue`` column): DuckDB's ``read_parquet(..., hive_partitioning = true)`` and Polars'
``scan_parquet(..., hive_partitioning=True)`` add ``venue`` and ``date`` back.

A ClickHouse file holds exactly the rows of the loads it names: its key-value metadata
``marketdata.export`` is JSON with the dataset, venue, day, rows and ``loads`` ({instrument: load
id}); it is rewritten only when the day's active loads of that dataset and venue differ from those.
Minute bars have no load ids (the loader replaces rows in place): their ``fingerprint`` is the day's
row count and the sum of a hash of every row, computed by the server (one scan of the day's bars).
A partition whose loads hold no rows (a day emptied by a re-load) loses its file. Each file is
written beside its final name and renamed over it (after an fsync), so a reader sees the old file
or the new one, never a part.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from psycopg import sql

from marketdata_assets.core.identifiers import clickhouse_database, sql_identifier
from marketdata_assets.core.naming import A_SHARE_VENUE_BY_SUFFIX
from marketdata_assets.datasets.frames import DATASETS, Dataset, day_window, spec_for
from marketdata_assets.read import clickhouse as ch_reads
from marketdata_assets.read import timescale as ts_reads

META_KEY = "marketdata.export"
MINUTE_BARS = "minute_bars"
_CODE_OF_DATASET = {spec.code: spec.name for spec in DATASETS.values()}


@dataclass(frozen=True)
class Partition:
    """One file to be: a dataset's rows of one venue and day, and what identifies them."""

    dataset: str
    venue: str
    day: date
    rows: int                  # what the loads / the fingerprint say the partition holds
    identity: dict             # {"loads": {instrument: load id}} or {"fingerprint": "..."}

    def path(self, root: Path) -> Path:
        return partition_path(root, self.dataset, self.venue, self.day)


@dataclass
class ExportReport:
    root: str
    written: list = field(default_factory=list)   # relative paths
    skipped: list = field(default_factory=list)   # unchanged partitions
    removed: list = field(default_factory=list)   # partitions emptied by a re-load
    rows: int = 0                                 # rows written now
    bytes: int = 0                                # bytes written now
    seconds: float = 0.0

    def summary(self) -> str:
        return (f"{len(self.written)} file(s) written ({self.rows:,} rows, {self.bytes:,} bytes), "
                f"{len(self.skipped)} unchanged, {len(self.removed)} removed, {self.seconds:.1f} s, under {self.root}")


def partition_path(root: Path, dataset: str, venue: str, day: date) -> Path:
    sql_identifier(dataset, "dataset")
    sql_identifier(venue, "venue")
    return Path(root) / dataset / f"venue={venue}" / f"date={day.isoformat()}" / "part-0.parquet"


def stored_identity(path: Path) -> dict | None:
    """The ``marketdata.export`` metadata of an exported file (None: no file, or not one of ours)."""
    try:
        meta = pq.read_metadata(path).metadata or {}
    except (OSError, pa.ArrowInvalid):
        return None
    raw = meta.get(META_KEY.encode())
    return json.loads(raw) if raw else None


def write_atomic(path: Path, schema: pa.Schema, tables: Iterable[pa.Table], identity: dict) -> tuple[int, int]:
    """Write ``tables`` as one Parquet file at ``path``, atomically; returns (rows, bytes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    schema = schema.with_metadata({META_KEY: json.dumps(identity, sort_keys=True)})
    rows = 0
    try:
        with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
            for table in tables:
                writer.write_table(table.cast(schema))
                rows += table.num_rows
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return rows, path.stat().st_size


def _arrow_schema(schema: dict) -> pa.Schema:
    return pl.DataFrame(schema=schema).to_arrow(compat_level=pl.CompatLevel.oldest()).schema


# ---- ClickHouse -----------------------------------------------------------------------------------

def clickhouse_partitions(client, database: str, day: date, datasets: Sequence[str] | None = None) -> list[Partition]:
    """Every (dataset, venue) with an active load on ``day``, with its loads and rows (one query)."""
    wanted = {spec_for(name).code for name in datasets} if datasets is not None else set(_CODE_OF_DATASET)
    rows = client.query(
        f"SELECT dataset, venue, groupArray(instrument), groupArray(load_id), sum(rows) "
        f"FROM {clickhouse_database(database)}.loads FINAL WHERE day = {{day:Date}} AND dataset IN {{codes:Array(String)}} "
        "GROUP BY dataset, venue ORDER BY dataset, venue", parameters={"day": day, "codes": sorted(wanted)}).result_rows
    return [Partition(_CODE_OF_DATASET[code], venue, day, int(n), {"loads": dict(zip(names, map(int, ids)))})
            for code, venue, names, ids, n in rows if code in _CODE_OF_DATASET]


def _clickhouse_tables(client, database: str, spec: Dataset, part: Partition) -> Iterable[pa.Table]:
    """The partition's rows (exactly its loads), in the table's order, without ``venue``, batch by batch."""
    columns = [c for c in spec.column_names if c != "venue"]
    start, end = day_window(part.day)
    sql = ch_reads.select_sql(database, spec, columns, all_instruments=True, as_of=True)
    params = {**ch_reads.query_params(spec, part.venue, None, start, end), "ids": list(part.identity["loads"].values())}
    schema = {c: spec.schema[c] for c in columns}
    with client.query_arrow_stream(sql, parameters=params) as stream:
        for batch in stream:
            table = pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch
            yield ch_reads.to_frame(table, spec, columns).select(list(schema)).to_arrow(
                compat_level=pl.CompatLevel.oldest())


# ---- TimescaleDB minute bars ----------------------------------------------------------------------

_FINGERPRINT = """SELECT split_part(code, '.', 2) AS exchange, count(*),
       coalesce(sum(hashtextextended(concat_ws('|', code, time, name, open, high, low, close, volume, amount), 0)
                    ::numeric), 0)::text
FROM {table} WHERE time >= %(start)s AND time < %(end)s GROUP BY 1 ORDER BY 1"""


def minute_partitions(conn, day: date) -> list[Partition]:
    """Each exchange's minute bars of the Beijing ``day``: rows and a fingerprint of their content
    (none when the database has no minute table: nothing was loaded there)."""
    if not conn.execute("SELECT to_regclass(%s) IS NOT NULL", (ts_reads.MINUTE_TABLE,)).fetchone()[0]:
        return []
    start = ts_reads.beijing_time(day, "day")
    query = sql.SQL(_FINGERPRINT).format(table=sql.Identifier(ts_reads.MINUTE_TABLE))
    rows = conn.execute(query, {"start": start, "end": start + timedelta(days=1)}).fetchall()
    return [Partition(MINUTE_BARS, A_SHARE_VENUE_BY_SUFFIX[exchange], day, int(n), {"fingerprint": f"{n}:{digest}"})
            for exchange, n, digest in rows if exchange in A_SHARE_VENUE_BY_SUFFIX]


# ---- the export -----------------------------------------------------------------------------------

def _export(root: Path, part: Partition, schema: dict, tables, report: ExportReport) -> None:
    path = part.path(root)
    relative = str(path.relative_to(root))
    identity = {"dataset": part.dataset, "venue": part.venue, "date": part.day.isoformat(), "rows": part.rows,
                **part.identity}
    if part.rows == 0:
        if path.exists():
            path.unlink()
            report.removed.append(relative)
        else:
            report.skipped.append(relative)
        return
    if stored_identity(path) == identity:
        report.skipped.append(relative)
        return
    rows, size = write_atomic(path, _arrow_schema(schema), tables(), identity)
    if rows != part.rows:  # the loads said otherwise: never leave a file that disagrees with its metadata
        path.unlink(missing_ok=True)
        raise RuntimeError(f"export of {relative}: {rows} rows read, its loads hold {part.rows}; file removed")
    report.written.append(relative)
    report.rows += rows
    report.bytes += size


def export_day(reader, root: Path | str, day: date, *, datasets: Sequence[str] | None = None,
               minute_bars: bool = True) -> ExportReport:
    """Export one day of every ClickHouse dataset (or ``datasets``) and, with ``minute_bars``, the
    TimescaleDB minute bars, through ``reader`` (a read.Reader) into ``root``; unchanged partitions
    are skipped (see the module docstring)."""
    started, root = time.monotonic(), Path(root)
    report = ExportReport(root=str(root))
    if datasets is None or [d for d in datasets if d != MINUTE_BARS]:
        client, database = reader.clickhouse(), reader.database
        names = None if datasets is None else [d for d in datasets if d != MINUTE_BARS]
        for part in clickhouse_partitions(client, database, day, names):
            spec = spec_for(part.dataset)
            schema = {c: t for c, t in spec.schema.items() if c != "venue"}
            _export(root, part, schema, lambda s=spec, p=part: _clickhouse_tables(client, database, s, p), report)
    if minute_bars and (datasets is None or MINUTE_BARS in datasets):
        conn = reader.timescale()
        parts = minute_partitions(conn, day)
        whole: list[pl.DataFrame] = []

        def day_bars(venue: str) -> Iterable[pa.Table]:
            if not whole:
                whole.append(ts_reads.minute_bars(conn, None, day, day + timedelta(days=1)))
            suffix = next(s for s, v in A_SHARE_VENUE_BY_SUFFIX.items() if v == venue)
            yield whole[0].filter(pl.col("code").str.ends_with(f".{suffix}")).to_arrow(
                compat_level=pl.CompatLevel.oldest())

        for part in parts:
            _export(root, part, ts_reads.MINUTE_BARS_SCHEMA, lambda v=part.venue: day_bars(v), report)
    report.seconds = round(time.monotonic() - started, 3)
    return report


def export_days(reader, root: Path | str, days: Iterable[date], **options) -> ExportReport:
    """:func:`export_day` for each of ``days``, one report for all."""
    started = time.monotonic()
    total = ExportReport(root=str(root))
    for day in sorted(set(days)):
        one = export_day(reader, root, day, **options)
        total.written += one.written
        total.skipped += one.skipped
        total.removed += one.removed
        total.rows += one.rows
        total.bytes += one.bytes
    total.seconds = round(time.monotonic() - started, 3)
    return total
