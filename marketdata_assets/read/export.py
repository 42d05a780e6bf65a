"""Parquet export of the stores, Hive-partitioned, incremental and atomic per file, with dated
snapshots that are never changed once written.

Layout, the files' identity metadata and the snapshots: docs/read.md, "The Parquet export".
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from psycopg import sql

from marketdata_assets.core import progress, settings
from marketdata_assets.core.identifiers import clickhouse_database, sql_identifier
from marketdata_assets.core.naming import A_SHARE_EXCHANGES, A_SHARE_VENUE_BY_SUFFIX
from marketdata_assets.datasets.alpha_files import API_TZ
from marketdata_assets.datasets.frames import DATASETS, Dataset, Stamping, day_window, spec_for
from marketdata_assets.read import clickhouse as ch_reads
from marketdata_assets.read import conventions
from marketdata_assets.read import timescale as ts_reads
from marketdata_assets.read.alphas import SCHEMA as ALPHA_SCHEMA  # (read.alphas is also a function)
from marketdata_assets.read.coverage import ALPHAS, KLINE_MONTHLY, MINUTE_BARS, has_table

META_KEY = "marketdata.export"
WHOLE_STORE = (KLINE_MONTHLY, ALPHAS)  # exported whole by every export, not by day
EXPORTED = (*DATASETS, MINUTE_BARS, *WHOLE_STORE)
SNAPSHOTS = "snapshots"
HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"  # Hive's null partition value (Polars and DuckDB read it as null)
_CODE_OF_DATASET = {spec.code: spec.name for spec in DATASETS.values()}


class SnapshotConflict(RuntimeError):
    """A dated snapshot's file that an export would change (the message names each)."""


@dataclass(frozen=True)
class Partition:
    """One file to be: a dataset's rows of one venue (alphas: type) and day (or month), and what
    identifies them."""

    dataset: str
    venue: str  # venue=; type= for the alphas
    day: date | None  # date= of the daily datasets; None for the monthly ones
    rows: int  # what the loads / the fingerprint say the partition holds
    identity: dict  # {"loads": {instrument: load id}} or {"fingerprint": "..."}
    month: str | None = None  # month=YYYY-MM of kline_monthly and alphas

    @property
    def keys(self) -> dict[str, str]:
        """The path's key=value pairs, in order (part of the file's identity too)."""
        last = {"date": self.day.isoformat()} if self.day is not None else {"month": str(self.month)}
        return {"type" if self.dataset == ALPHAS else "venue": self.venue, **last}

    def path(self, root: Path) -> Path:
        if self.day is not None:
            return partition_path(root, self.dataset, self.venue, self.day)
        return Path(root, self.dataset, *(f"{k}={v}" for k, v in self.keys.items()), "part-0.parquet")


@dataclass(frozen=True)
class _Job:
    """A partition, the (Polars) schema of its file and how to read its rows."""

    part: Partition
    schema: dict
    tables: Callable[[], Iterable[pa.Table]]


@dataclass
class ExportReport:
    root: str  # where the files are (a dated export: its snapshot)
    written: list = field(default_factory=list)  # relative paths
    skipped: list = field(default_factory=list)  # unchanged partitions (their file as it would be written)
    empty: list = field(default_factory=list)  # partitions with no rows stored, and no file to remove
    removed: list = field(default_factory=list)  # partitions emptied by a re-load / no longer stored
    rows: int = 0  # rows written now
    bytes: int = 0  # bytes written now
    rows_of: dict = field(default_factory=dict)  # relative path -> rows written now
    seconds: float = 0.0
    dated: bool = False

    @property
    def files_written(self) -> int:
        return len(self.written)

    def of_day(self, day: date) -> dict:
        """A day's own files (`date=<day>` partitions: the whole K-line and alphas are the run's): written,
        their rows, unchanged, with no rows."""
        mine = f"/date={day.isoformat()}/"
        written = [path for path in self.written if mine in path]
        return {
            "files_written": len(written),
            "rows_written": sum(self.rows_of[path] for path in written),
            "files_skipped": sum(mine in path for path in self.skipped),
            "partitions_without_rows": sum(mine in path for path in self.empty),
        }

    def summary(self) -> str:
        return (
            f"{len(self.written)} file(s) written ({self.rows:,} rows, {self.bytes:,} bytes), "
            f"{len(self.skipped)} unchanged, {len(self.removed)} removed, {len(self.empty)} with no rows, "
            f"{self.seconds:.1f} s, under "
            f"{self.root}{' (dated snapshot)' if self.dated else ''}"
        )


def partition_path(root: Path, dataset: str, venue: str, day: date) -> Path:
    sql_identifier(dataset, "dataset")
    sql_identifier(venue, "venue")
    return Path(root) / dataset / f"venue={venue}" / f"date={day.isoformat()}" / "part-0.parquet"


def snapshot_dir(root: Path | str, on: date | None = None) -> Path:
    """``<root>/snapshots/<on: today, UTC>``: where a dated export of that date writes."""
    return Path(root) / SNAPSHOTS / (on or datetime.now(UTC).date()).isoformat()


def stored_identity(path: Path) -> dict | None:
    """The ``marketdata.export`` metadata of an exported file (None: no file, or not one of ours)."""
    try:
        meta = pq.read_metadata(path).metadata or {}
    except (OSError, pa.ArrowInvalid):
        return None
    raw = meta.get(META_KEY.encode())
    return json.loads(raw) if raw else None


def write_atomic(
    path: Path, schema: pa.Schema, tables: Iterable[pa.Table], identity: dict, *, replace: bool = True
) -> tuple[int, int]:
    """Write ``tables`` as one Parquet file at ``path``, atomically; returns (rows, bytes). Without
    ``replace`` an existing ``path`` is never touched: SnapshotConflict instead."""
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
        if replace:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)  # fails if the name exists: never replaces a file
            except FileExistsError:
                raise SnapshotConflict(
                    f"{path} appeared while this export wrote it (another export of the same "
                    "snapshot?): left as it is"
                ) from None
    finally:
        tmp.unlink(missing_ok=True)
    return rows, path.stat().st_size


def _stated_schema(schema: dict, column: str, bars: Stamping) -> dict:
    """The file schema of bars: the time column aware, plus ``label`` and ``adjustment``
    (read.conventions)."""
    return dict(conventions.stated(pl.DataFrame(schema=schema), column, bars).schema)


def _arrow_schema(schema: dict) -> pa.Schema:
    return pl.DataFrame(schema=schema).to_arrow(compat_level=pl.CompatLevel.oldest()).schema


def _arrow(frame: pl.DataFrame) -> pa.Table:
    return frame.to_arrow(compat_level=pl.CompatLevel.oldest())


def _of_venue(frame: pl.DataFrame, venue: str, drop: Sequence[str] = ()) -> Iterable[pa.Table]:
    """The rows of an A-share venue (by the code's exchange suffix), without the ``drop`` columns."""
    yield _arrow(frame.filter(pl.col("code").str.ends_with(f".{A_SHARE_EXCHANGES[venue]}")).drop(drop))


# ---- ClickHouse -----------------------------------------------------------------------------------


def clickhouse_partitions(
    client, database: str, day: date, datasets: Sequence[str] | None = None
) -> list[Partition]:
    """Every (dataset, venue) with an active load on ``day``, with its loads and rows (one query)."""
    wanted = {spec_for(name).code for name in datasets} if datasets is not None else set(_CODE_OF_DATASET)
    rows = client.query(
        "SELECT dataset, venue, groupArray(instrument), groupArray(load_id), sum(rows) "
        f"FROM {clickhouse_database(database)}.loads FINAL WHERE day = {{day:Date}} AND dataset IN "
        "{codes:Array(String)} GROUP BY dataset, venue ORDER BY dataset, venue",
        parameters={"day": day, "codes": sorted(wanted)},
    ).result_rows
    return [
        Partition(_CODE_OF_DATASET[code], venue, day, int(n), {"loads": dict(zip(names, map(int, ids)))})
        for code, venue, names, ids, n in rows
        if code in _CODE_OF_DATASET
    ]


def _clickhouse_tables(client, database: str, spec: Dataset, part: Partition) -> Iterable[pa.Table]:
    """The partition's rows (exactly its loads), in the table's order, without ``venue``, batch by batch;
    trade ids with the sequence each instrument's slice holds (read.clickhouse.IDS)."""
    columns = [c for c in spec.column_names if c != "venue"]
    start, end = day_window(part.day)
    sql = ch_reads.select_sql(database, spec, columns, all_instruments=True, as_of=True)
    loads = part.identity["loads"]
    params = {**ch_reads.query_params(spec, part.venue, None, start, end), "ids": list(loads.values())}
    schema = {c: spec.schema[c] for c in columns}
    ids = None
    if ch_reads.states_ids(spec, columns):
        names = ch_reads.sequences_of_loads(client, database, spec.name, part.venue, loads.values())
        ids = (
            pl.col("instrument")
            .replace_strict({i: names[load] for i, load in loads.items()}, return_dtype=ch_reads.ID_SEQUENCE)
            .alias(ch_reads.IDS)
        )
    with client.query_arrow_stream(sql, parameters=params) as stream:
        for batch in stream:
            table = pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch
            frame = ch_reads.to_frame(table, spec, columns).select(list(schema))
            frame = frame.with_columns(ids) if ids is not None else frame
            yield _arrow(conventions.stated(frame, "ts", spec.bars) if spec.bars else frame)


# ---- TimescaleDB: minute bars and the monthly K-line ----------------------------------------------

_FINGERPRINT = """SELECT split_part(code, '.', 2) AS exchange, count(*),
       coalesce(sum(hashtextextended(concat_ws('|', code, time, name, open, high, low, close, volume, \
amount), 0)
                    ::numeric), 0)::text
FROM {table} WHERE time >= %(start)s AND time < %(end)s GROUP BY 1 ORDER BY 1"""
_KLINE_FINGERPRINT = """SELECT to_char(month, 'YYYY-MM') AS month, split_part(code, '.', 2) AS exchange, \
count(*),
       coalesce(sum(hashtextextended(concat_ws('|', code, month, name, open, high, low, close, volume, \
amount), 0)
                    ::numeric), 0)::text
FROM {table} GROUP BY 1, 2 ORDER BY 1, 2"""


def minute_partitions(conn, day: date) -> list[Partition]:
    """Each exchange's minute bars of the Beijing ``day``: rows and a fingerprint of their content
    (none when the database has no minute table: nothing was loaded there)."""
    if not has_table(conn, ts_reads.MINUTE_TABLE):
        return []
    start = ts_reads.beijing_time(day, "day")
    query = sql.SQL(_FINGERPRINT).format(table=sql.Identifier(ts_reads.MINUTE_TABLE))
    rows = conn.execute(query, {"start": start, "end": start + timedelta(days=1)}).fetchall()
    return [
        Partition(
            MINUTE_BARS, A_SHARE_VENUE_BY_SUFFIX[exchange], day, int(n), {"fingerprint": f"{n}:{digest}"}
        )
        for exchange, n, digest in rows
        if exchange in A_SHARE_VENUE_BY_SUFFIX
    ]


def kline_partitions(conn) -> list[Partition]:
    """Each (month, exchange) of the monthly K-line: rows and a fingerprint of their content (one scan;
    none when there is no K-line)."""
    if not has_table(conn, ts_reads.KLINE):
        return []
    rows = conn.execute(sql.SQL(_KLINE_FINGERPRINT).format(table=sql.Identifier(ts_reads.KLINE))).fetchall()
    return [
        Partition(
            KLINE_MONTHLY,
            A_SHARE_VENUE_BY_SUFFIX[exchange],
            None,
            int(n),
            {"fingerprint": f"{n}:{digest}"},
            month=month,
        )
        for month, exchange, n, digest in rows
        if exchange in A_SHARE_VENUE_BY_SUFFIX
    ]


class _LastRead:
    """The last frame read, by key: the venues of a day (a month) are exported one after the other and
    share one read, and a backfill holds one day's bars at a time, not all of them."""

    def __init__(self, load: Callable[[object], pl.DataFrame]):
        self.load, self.key, self.frame = load, None, None

    def __call__(self, key) -> pl.DataFrame:
        if self.frame is None or key != self.key:
            self.frame = None
            self.key, self.frame = key, self.load(key)
        return self.frame


def _minute_jobs(conn, days: Iterable[date]) -> list[_Job]:
    stamping = ts_reads.MINUTE_STAMPING
    bars = _LastRead(
        lambda day: conventions.stated(
            ts_reads.minute_bars(conn, None, day, day + timedelta(days=1)), "time", stamping
        )
    )
    schema = _stated_schema(ts_reads.MINUTE_BARS_SCHEMA, "time", stamping)
    return [
        _Job(part, schema, lambda p=part: _of_venue(bars(p.day), p.venue))
        for day in days
        for part in minute_partitions(conn, day)
    ]


def _kline_jobs(conn) -> list[_Job]:
    """The K-line's partitions (month by month: a month's venues share one read)."""

    def month_rows(month: str) -> pl.DataFrame:
        first = datetime.strptime(month, "%Y-%m")
        frame = ts_reads.kline(conn, None, first, (first + timedelta(days=32)).replace(day=1))
        return conventions.stated(frame, "month", ts_reads.KLINE_STAMPING)

    rows = _LastRead(month_rows)
    schema = {
        c: t
        for c, t in _stated_schema(ts_reads.KLINE_SCHEMA, "month", ts_reads.KLINE_STAMPING).items()
        if c != "month"
    }
    return [
        _Job(part, schema, lambda p=part: _of_venue(rows(p.month), p.venue, drop=["month"]))
        for part in kline_partitions(conn)
    ]


# ---- MongoDB: alphas --------------------------------------------------------------------------------


def alpha_partitions(frame: pl.DataFrame) -> list[tuple[Partition, pl.DataFrame]]:
    """The Reader's alphas frame split by type and New York month of dateCreated (null: Hive's null
    partition), each part without ``type`` and with the fingerprint of its rows."""
    month = pl.col("dateCreated").dt.convert_time_zone(API_TZ.key).dt.strftime("%Y-%m")
    keyed = frame.with_columns(
        pl.col("type").fill_null(HIVE_NULL).alias("__type"), month.fill_null(HIVE_NULL).alias("__month")
    )
    parts = []
    for (kind, month_key), group in sorted(
        keyed.partition_by("__type", "__month", as_dict=True, maintain_order=True).items()
    ):
        rows = group.drop("type", "__type", "__month")
        digest = hashlib.sha256(rows.write_csv().encode()).hexdigest()[:32]
        parts.append(
            (
                Partition(
                    ALPHAS,
                    sql_identifier(kind, "alpha type"),
                    None,
                    rows.height,
                    {"fingerprint": f"{rows.height}:{digest}"},
                    month=month_key,
                ),
                rows,
            )
        )
    return parts


def _alpha_jobs(reader) -> list[_Job]:
    schema = {c: t for c, t in ALPHA_SCHEMA.items() if c != "type"}
    return [
        _Job(part, schema, lambda r=rows: [_arrow(r)]) for part, rows in alpha_partitions(reader.alphas())
    ]


# ---- the export -----------------------------------------------------------------------------------

FORMAT = 3  # 2: bars state their convention (label, adjustment, an aware time); 3: trades their id sequence
# (id_sequence): files of an earlier format are rewritten


def _identity(part: Partition) -> dict:
    return {"dataset": part.dataset, **part.keys, "rows": part.rows, **part.identity, "format": FORMAT}


def _export(root: Path, job: _Job, report: ExportReport, *, replace: bool) -> None:
    part = job.part
    path = part.path(root)
    relative = str(path.relative_to(root))
    identity = _identity(part)
    if part.rows == 0:
        if path.exists():
            path.unlink()
            report.removed.append(relative)
        else:  # nothing stored and no file: not "unchanged" (an export into an empty directory said so)
            report.empty.append(relative)
        return
    if stored_identity(path) == identity:
        report.skipped.append(relative)
        return
    rows, size = write_atomic(path, _arrow_schema(job.schema), job.tables(), identity, replace=replace)
    if rows != part.rows:  # the store said otherwise: never leave a file that disagrees with its metadata
        path.unlink(missing_ok=True)
        said = "its loads hold" if "loads" in part.identity else "its fingerprint counted"
        raise RuntimeError(f"export of {relative}: {rows} rows read, {said} {part.rows}; file removed")
    report.written.append(relative)
    report.rows_of[relative] = rows
    report.rows += rows
    report.bytes += size


def wanted_datasets(datasets: Sequence[str] | None) -> list[str]:
    """The datasets named (None: every one, EXPORTED), checked: an unknown name is a ValueError naming
    them."""
    if datasets is None:
        return list(EXPORTED)
    if isinstance(datasets, str):
        datasets = [datasets]
    unknown = [d for d in datasets if d not in EXPORTED]
    if unknown:
        raise ValueError(f"unknown dataset(s) {unknown}: the export knows {', '.join(EXPORTED)}")
    return list(dict.fromkeys(datasets))


def _daily_jobs(reader, days: list[date], datasets: list[str] | None, minute_bars: bool) -> list[_Job]:
    """The days' ClickHouse partitions (``datasets`` None: every dataset) and minute bars; a store none
    of them needs is not opened."""
    jobs = []
    names = None if datasets is None else [d for d in datasets if d in DATASETS]
    if days and (names is None or names):
        client, database = reader.clickhouse(), reader.database
        for part in (p for day in days for p in clickhouse_partitions(client, database, day, names)):
            spec = spec_for(part.dataset)
            schema = {c: t for c, t in spec.schema.items() if c != "venue"}
            schema = _stated_schema(schema, "ts", spec.bars) if spec.bars else schema
            if ch_reads.states_ids(spec, schema):
                schema[ch_reads.IDS] = ch_reads.ID_SEQUENCE
            jobs.append(_Job(part, schema, lambda s=spec, p=part: _clickhouse_tables(client, database, s, p)))
    if days and minute_bars and (datasets is None or MINUTE_BARS in datasets):
        jobs += _minute_jobs(reader.timescale(), days)
    return jobs


def _stale(root: Path, datasets: Iterable[str], jobs: list[_Job]) -> list[Path]:
    """Files of the whole-store ``datasets`` under ``root`` that no partition of ``jobs`` names."""
    planned = {job.part.path(root) for job in jobs}
    return sorted(
        path for name in datasets for path in (root / name).glob("*/*/part-0.parquet") if path not in planned
    )


def _refuse_changes(root: Path, jobs: list[_Job], stale: list[Path]) -> None:
    """SnapshotConflict naming every file of the snapshot ``root`` the export would change or remove."""
    paths = [(job.part.path(root), job.part) for job in jobs]
    changed = [
        path
        for path, part in paths
        if path.exists() and (part.rows == 0 or stored_identity(path) != _identity(part))
    ]
    conflicts = [str(p.relative_to(root)) for p in changed + stale]
    if conflicts:
        raise SnapshotConflict(
            f"the dated snapshot {root} already holds {len(conflicts)} file(s) that differ from what the "
            "stores hold now (they changed since the earlier export of that date): "
            f"{', '.join(conflicts[:10])}{' ...' if len(conflicts) > 10 else ''}. A snapshot is never "
            f"rewritten: nothing was written; keep it as it is, or delete those files (or {root}) to take "
            "the snapshot again."
        )


def export_days(
    reader,
    root: Path | str,
    days: Iterable[date],
    *,
    datasets: Sequence[str] | None = None,
    minute_bars: bool = True,
    dated: bool = False,
    snapshot_date: date | None = None,
) -> ExportReport:
    """Export ``days`` of every ClickHouse dataset and of the minute bars, and the whole K-line and
    alphas (or only ``datasets``: names of EXPORTED), through ``reader`` (a read.Reader) into ``root``;
    ``dated``: into the snapshot ``<root>/snapshots/<snapshot_date: today, UTC>`` (see the module
    docstring). Unchanged partitions are skipped."""
    started = time.monotonic()
    names = None if datasets is None else wanted_datasets(datasets)
    target = snapshot_dir(root, snapshot_date) if dated else Path(root)
    jobs = _daily_jobs(reader, sorted(set(days)), names, minute_bars)
    whole = [name for name in WHOLE_STORE if names is None or name in names]
    if KLINE_MONTHLY in whole:
        jobs += _kline_jobs(reader.timescale())
    if ALPHAS in whole:
        jobs += _alpha_jobs(reader)
    stale = _stale(target, whole, jobs)
    if dated:
        _refuse_changes(target, jobs, stale)
    report = ExportReport(root=str(target), dated=dated)
    for path in stale:
        path.unlink()
        report.removed.append(str(path.relative_to(target)))
    key = f"export#{id(report)}"  # partitions settled of the export's, for a bar
    for done, job in enumerate(jobs, start=1):
        _export(target, job, report, replace=not dated)
        progress.report(key, done, len(jobs), "partitions")
    report.seconds = round(time.monotonic() - started, 3)
    return report


def export_day(reader, root: Path | str, day: date, **options) -> ExportReport:
    """:func:`export_days` of one day (the K-line and the alphas too, unless ``datasets`` leaves them out)."""
    return export_days(reader, root, [day], **options)


def default_days() -> list[date]:
    """Yesterday (UTC): the day the schedule exports."""
    return [datetime.now(UTC).date() - timedelta(days=1)]


def snapshot(
    reader,
    datasets: Sequence[str] | None = None,
    days: Iterable[date] | None = None,
    *,
    root: Path | str | None = None,
    on: date | None = None,
) -> ExportReport:
    """A dated export, what ``marketdata export --dated`` runs: ``datasets`` (None: all) of ``days``
    (None: yesterday, UTC) into ``<root: settings.export_dir()>/snapshots/<on: today, UTC>/``."""
    return export_days(
        reader,
        settings.export_dir() if root is None else root,
        default_days() if days is None else days,
        datasets=datasets,
        dated=True,
        snapshot_date=on,
    )


def snapshot_command(dataset: str | None = None) -> str:
    """The command line (and the API call) that keeps a dated snapshot of ``dataset`` (None: of
    everything)."""
    if dataset is not None:
        wanted_datasets([dataset])
    option = f" --dataset {dataset}" if dataset else ""
    names = f", [{dataset!r}]" if dataset else ""
    call = f"from marketdata_assets.read import Reader, export; export.snapshot(Reader(){names})"
    return f"`marketdata export --dated{option}` (in Python: `{call}`)"
