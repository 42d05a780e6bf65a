"""data.binance.vision archives through the ingest engine, and their record (`dump_archives`).

The source (sources/binance_vision/archives.py) lists, downloads, verifies and reads an archive; here a
run's archives become one engine feed (`ArchiveRun`), each archive whose slices all loaded is
recorded with its digests, and the record is read back to `recheck` published digests (reloading
replaced archives) and to `reconcile` monthly archives with the stored daily slices.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl

from marketdata_assets.core.http import SourceDataError
from marketdata_assets.core.identifiers import clickhouse_database, sql_identifier
from marketdata_assets.datasets.frames import BARS_SCHEMA, LC, spec_for
from marketdata_assets.datasets.slices import Batches, Feed, Job
from marketdata_assets.ingest.engine import Engine, IngestReport
from marketdata_assets.sources.binance_vision.archive_settings import ArchiveSettings
from marketdata_assets.sources.binance_vision.archives import (
    DAILY_ONLY,
    SOURCE,
    VENUE_MARKETS,
    ArchiveClient,
    ArchiveKey,
    ArchiveMissing,
    ArchiveReader,
    DayFigures,
    Verified,
    fetch_verified,
    read_archive,
)
from marketdata_assets.stores.clickhouse.tables import LOADS, ensure_tables

ARCHIVES = "dump_archives"  # the table of verified archives


# --------------------------------------------------------------------------------------------
# One run's archives through the ingest engine
# --------------------------------------------------------------------------------------------


@dataclass
class Loaded:
    """An archive the run read: how it was verified and what it held."""

    verified: Verified
    figures: dict
    days: list[date]  # the slices it wrote


class ArchiveRun:
    """The engine feed of a run's archives (one job per archive: the slices of the days it writes)
    and, after `Engine.run`, their record. `verified` archives (downloaded before, by the
    reconcile) are read from disk instead of downloaded again."""

    def __init__(
        self,
        make_client: Callable[[], ArchiveClient],
        workdir: Path,
        *,
        workers: int = 2,
        attempts: int = 2,
        verified: dict[ArchiveKey, Verified] | None = None,
    ):
        self.make_client, self.workdir, self.workers, self.attempts = (
            make_client,
            Path(workdir),
            workers,
            attempts,
        )
        self.verified = dict(verified or {})
        self.loaded: dict[ArchiveKey, Loaded] = {}

    def feed(self, jobs: dict[ArchiveKey, list[date]]) -> Feed:
        return Feed(
            SOURCE,
            [Job(key.slices(days), key) for key, days in sorted(jobs.items()) if days],
            self._fetch,
            self.make_client,
            workers=self.workers,
            attempts=self.attempts,
        )

    async def _fetch(self, api: ArchiveClient, job: Job) -> Batches:
        """The verified archive, read from its zip in batches as the engine writes them (the day is
        never whole in memory); recorded as loaded once read through; the file removed after."""
        key: ArchiveKey = job.args
        verified = self.verified.pop(key, None) or await fetch_verified(api, key, self.workdir)
        days = [k.day for k in job.keys]
        reader = ArchiveReader(verified.path, key, days)

        def read() -> Iterator[pl.DataFrame]:
            yield from reader.batches()
            self.loaded[key] = Loaded(verified, reader.figures, days)

        return Batches(read, close=lambda: verified.path.unlink(missing_ok=True))

    def record(
        self,
        client,
        database: str,
        report: IngestReport,
        run_id: str,
        *,
        status: str = "loaded",
        previous: dict[ArchiveKey, str] | None = None,
        notes: dict[ArchiveKey, str] | None = None,
    ) -> list[dict]:
        """Each archive whose slices all loaded, into `dump_archives`; returns the rows written."""
        rows = []
        for key, loaded in sorted(self.loaded.items()):
            outcomes = [report.outcomes.get(s) for s in key.slices(loaded.days)]
            if not all(o is not None and o.status == "ok" for o in outcomes):
                continue
            rows.append(
                archive_row(
                    loaded.verified,
                    loaded.figures,
                    run_id,
                    status=status,
                    days=loaded.days,
                    load_ids=[o.load_id for o in outcomes],
                    previous=(previous or {}).get(key, ""),
                    note=(notes or {}).get(key, ""),
                )
            )
        insert_archives(client, database, rows)
        return rows


def archive_row(
    verified: Verified,
    figures: dict,
    run_id: str,
    *,
    status: str,
    days: list[date],
    load_ids: list[int],
    previous: str = "",
    note: str = "",
) -> dict:
    key = verified.key
    firsts = [f.first_id for f in figures.values() if f.first_id is not None]
    lasts = [f.last_id for f in figures.values() if f.last_id is not None]
    return {
        "market": key.market,
        "family": key.family,
        "interval": key.interval,
        "instrument": key.instrument,
        "period": key.period,
        "day": key.day,
        "dataset": key.dataset,
        "venue": key.venue,
        "url": verified.url,
        "sha256": verified.sha256,
        "published_sha256": verified.sha256,
        "previous_sha256": previous,
        "size": verified.size,
        "days": list(days),
        "load_ids": list(load_ids),
        "rows": sum(f.rows for f in figures.values()),
        "first_id": min(firsts, default=0),
        "last_id": max(lasts, default=0),
        "id_count": sum(f.ids for f in figures.values()),
        "status": status,
        "note": note,
        "run_id": run_id,
        "verified_at": datetime.now(UTC),
    }


# --------------------------------------------------------------------------------------------
# The record: `dump_archives`
# --------------------------------------------------------------------------------------------

ARCHIVE_COLUMNS = (
    "market",
    "family",
    "interval",
    "instrument",
    "period",
    "day",
    "dataset",
    "venue",
    "url",
    "sha256",
    "published_sha256",
    "previous_sha256",
    "size",
    "days",
    "load_ids",
    "rows",
    "first_id",
    "last_id",
    "id_count",
    "status",
    "note",
    "run_id",
    "verified_at",
)
_IDENTITY = "market, family, interval, instrument, period, day"


def archive_table_ddl(database: str) -> str:
    """Every verification of an archive, appended (the history of its digests): the latest row of an
    archive is its state. `status`: loaded (its slices written) | reconciled (a monthly archive
    compared with the daily slices)."""
    return f"""CREATE TABLE IF NOT EXISTS {clickhouse_database(database)}.{ARCHIVES} (
    `market` {LC},
    `family` {LC},
    `interval` {LC},
    `instrument` {LC},
    `period` {LC},
    `day` Date,
    `dataset` {LC},
    `venue` {LC},
    `url` String,
    `sha256` String,
    `published_sha256` String,
    `previous_sha256` String DEFAULT '',
    `size` UInt64,
    `days` Array(Date),
    `load_ids` Array(UInt64),
    `rows` UInt64,
    `first_id` Int64,
    `last_id` Int64,
    `id_count` UInt64,
    `status` {LC},
    `note` String DEFAULT '',
    `run_id` String,
    `verified_at` DateTime64(3, 'UTC')
) ENGINE = MergeTree
ORDER BY ({_IDENTITY}, verified_at)"""


def ensure_archive_table(client, database: str) -> None:
    client.command(f"CREATE DATABASE IF NOT EXISTS {clickhouse_database(database)}")
    client.command(archive_table_ddl(database))


def insert_archives(client, database: str, rows: list[dict]) -> None:
    ensure_archive_table(client, database)
    if rows:
        client.insert(
            ARCHIVES,
            [[r[c] for c in ARCHIVE_COLUMNS] for r in rows],
            column_names=list(ARCHIVE_COLUMNS),
            database=database,
        )


@dataclass(frozen=True)
class ArchiveRecord:
    key: ArchiveKey
    published_sha256: str
    days: tuple[date, ...]
    status: str
    rows: int
    verified_at: datetime


def latest_archives(
    client, database: str, *, statuses: Collection[str] = ("loaded", "reconciled"), period: str | None = None
) -> list[ArchiveRecord]:
    """The latest record of every archive (of `period`) whose latest status is one of `statuses`."""
    where, params = ["status IN {statuses:Array(String)}"], {"statuses": list(statuses)}
    if period is not None:
        where.append("period = {period:String}")
        params["period"] = period
    rows = client.query(
        f"SELECT {_IDENTITY}, published_sha256, days, status, rows, verified_at FROM (SELECT * FROM "
        f"{clickhouse_database(database)}.{ARCHIVES} ORDER BY verified_at DESC LIMIT 1 BY {_IDENTITY}) "
        f"WHERE {' AND '.join(where)} ORDER BY {_IDENTITY}",
        parameters=params,
    ).result_rows
    return [ArchiveRecord(ArchiveKey(*r[:6]), r[6], tuple(r[7]), r[8], int(r[9]), r[10]) for r in rows]


def stored_figures(
    client, database: str, dataset: str, venue: str, instrument: str, days: list[date]
) -> dict[date, DayFigures]:
    """The figures of the active slices of `days` ({day: DayFigures}; a day without an active load
    is left out, one whose load is empty has zero rows)."""
    spec = spec_for(dataset)
    db, table = clickhouse_database(database), f"`{sql_identifier(spec.table, 'table')}`"
    by_ts = spec.schema is BARS_SCHEMA or dataset == "liquidations"
    ident = "toInt64(toUnixTimestamp64Micro(ts))" if by_ts else "seq"
    distinct = "liquidation_id" if dataset == "liquidations" else ident
    params = {"code": spec.code, "venue": venue, "instrument": instrument, "days": list(days)}
    active = {
        r[0]: int(r[1])
        for r in client.query(
            f"SELECT day, load_id FROM {db}.{LOADS} FINAL WHERE dataset = {{code:String}} AND venue = "
            "{venue:String} AND instrument = {instrument:String} AND day IN {days:Array(Date)}",
            parameters=params,
        ).result_rows
    }
    out = {day: DayFigures() for day in active}
    if active:
        for day, rows, first, last, ids in client.query(
            f"SELECT day, count(), min({ident}), max({ident}), uniqExact({distinct}) FROM {db}.{table} "
            "WHERE venue = {venue:String} AND instrument = {instrument:String} AND day IN {days:Array(Date)} "
            "AND load_id IN {ids:Array(UInt64)} GROUP BY day",
            parameters={**params, "ids": list(active.values())},
        ).result_rows:
            out[day].add(int(rows), int(first or 0), int(last or 0), int(ids))
    return out


# --------------------------------------------------------------------------------------------
# The re-check: published digests read again, replaced archives reloaded
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    key: ArchiveKey
    old: str
    new: str
    days: tuple[date, ...]

    def text(self) -> str:
        return f"{self.key.name}: {self.old} -> {self.new}"


@dataclass
class RecheckResult:
    checked: int = 0
    changed: list[Change] = field(default_factory=list)
    withdrawn: list[str] = field(default_factory=list)  # recorded archives that answer 404 now
    errors: list[str] = field(default_factory=list)  # CHECKSUMs that could not be read
    report: IngestReport = field(default_factory=IngestReport)
    recorded: list[dict] = field(default_factory=list)
    reconciled: ReconcileResult | None = None


async def _gather(items, fn, workers: int) -> list:
    """fn(item) for every item, `workers` at once; an exception is returned in its place."""
    gate = asyncio.Semaphore(max(1, workers))

    async def one(item):
        async with gate:
            try:
                return await fn(item)
            except Exception as error:  # noqa: BLE001 - reported per item
                return error

    return await asyncio.gather(*(one(item) for item in items))


async def find_changes(
    make_client: Callable[[], ArchiveClient],
    records: list[ArchiveRecord],
    workers: int,
    result: RecheckResult,
) -> None:
    async with make_client() as api:
        found = await _gather(records, lambda r: api.published(r.key), workers)
    result.checked = len(records)
    for record, published in zip(records, found):
        if isinstance(published, ArchiveMissing):
            result.withdrawn.append(f"{record.key.name}: {published}")
        elif isinstance(published, Exception):
            result.errors.append(f"{record.key.name}: {published}")
        elif published != record.published_sha256:
            result.changed.append(Change(record.key, record.published_sha256, published, record.days))


def recheck(
    make_client: Callable[[], ArchiveClient],
    engine: Engine,
    workdir: Path,
    *,
    workers: int = 2,
    attempts: int = 2,
) -> RecheckResult:
    """Read the published CHECKSUM of every recorded archive again; reload the daily archives whose
    digest changed (their slices replaced at once by the load pointer) and reconcile the changed
    monthly ones again; record each with its previous digest."""
    result = RecheckResult()
    with engine.connect() as client:
        ensure_tables(client, engine.database)  # reloads write slices: the store is bootstrapped first
        ensure_archive_table(client, engine.database)
        records = latest_archives(client, engine.database)
    asyncio.run(find_changes(make_client, records, workers, result))
    daily = {c.key: list(c.days) for c in result.changed if c.key.period == "daily"}
    previous = {c.key: c.old for c in result.changed}
    if daily:
        run = ArchiveRun(make_client, workdir, workers=workers, attempts=attempts)
        result.report = engine.run([[run.feed(daily)]])
        with engine.connect() as client:
            result.recorded = run.record(
                client,
                engine.database,
                result.report,
                engine.run_id,
                previous=previous,
                notes={k: f"replaced: {previous[k]} -> {v.verified.sha256}" for k, v in run.loaded.items()},
            )
    monthly = {c.key: c.days for c in result.changed if c.key.period == "monthly"}
    if monthly:  # compared again, and the days it had filled loaded again from its new version
        result.reconciled = reconcile(
            make_client, engine, workdir, sorted(monthly), workers=workers, previous=previous, reload=monthly
        )
    return result


# --------------------------------------------------------------------------------------------
# Reconciling a monthly archive with the daily slices
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DayComparison:
    key: ArchiveKey  # the monthly archive
    day: date
    expected: DayFigures  # the monthly archive's
    actual: DayFigures | None  # the stored slice's before the run (None: no daily slice stored)
    loaded: bool = False  # the run wrote the day from the monthly archive

    @property
    def status(self) -> str:
        """match | mismatch | no daily slice, or what loading the day made of it: filled | replaced |
        reloaded."""
        if self.actual is None:
            return "filled" if self.loaded else "no daily slice"
        if self.expected.same(self.actual):
            return "reloaded" if self.loaded else "match"
        return "replaced" if self.loaded else "mismatch"

    def row(self) -> list:
        return [
            f"{self.key.venue}:{self.key.instrument}",
            self.key.dataset,
            str(self.day),
            self.status,
            self.expected.text(),
            self.actual.text() if self.actual is not None else "-",
        ]


@dataclass
class ReconcileResult:
    comparisons: list[DayComparison] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # monthly archives not published (yet)
    failed: list[str] = field(default_factory=list)  # not verified / not readable
    loaded_days: dict = field(default_factory=dict)  # archive -> days written from it
    report: IngestReport = field(default_factory=IngestReport)
    recorded: list[dict] = field(default_factory=list)

    @property
    def mismatches(self) -> list[DayComparison]:
        return [c for c in self.comparisons if c.status == "mismatch"]

    def summary(self) -> str:
        status = [c.status for c in self.comparisons]
        counts = ", ".join(
            f"{status.count(s)} {s}"
            for s in ("match", "mismatch", "no daily slice", "filled", "replaced", "reloaded")
            if s in status
        )
        return (
            f"{len({c.key for c in self.comparisons})} monthly archive(s), days: {counts or 'none'}; "
            f"{len(self.missing)} not published, {len(self.failed)} failed"
        )


def monthly_keys(
    settings: ArchiveSettings, months: Iterable[date], instruments: Collection[str] = ()
) -> list[ArchiveKey]:
    """The monthly archives of every configured archive file and instrument (or of `instruments`,
    VENUE:INSTRUMENT) for `months` (any day of each); none of the daily-only families
    (liquidationSnapshot)."""
    return sorted(
        {
            ArchiveKey(
                VENUE_MARKETS[key.venue], family, interval, key.instrument, "monthly", month.replace(day=1)
            )
            for month in months
            for key in settings.instrument_keys()
            if not instruments or key.partition_key in instruments
            for family, interval in settings.files()
            if family not in DAILY_ONLY
        }
    )


def months_to_reconcile(
    client, database: str, settings: ArchiveSettings, today: date, months_back: int = 3
) -> list[ArchiveKey]:
    """Monthly archives of the configured files and instruments for the last `months_back` complete
    months (from the config's start date) that have daily archives recorded and no reconciled
    monthly record yet."""
    first = today.replace(day=1)
    months = []
    for _ in range(months_back):
        first = (first - timedelta(days=1)).replace(day=1)
        if first >= settings.start_date.replace(day=1):
            months.append(first)
    ensure_archive_table(client, database)
    done = {r.key for r in latest_archives(client, database, statuses=("reconciled",), period="monthly")}
    daily = {
        replace(r.key, period="monthly", day=r.key.day.replace(day=1))
        for r in latest_archives(client, database, period="daily")
    }
    return [k for k in monthly_keys(settings, months) if k in daily and k not in done]


def _verified_months(
    make_client: Callable[[], ArchiveClient],
    workdir: Path,
    months: list[ArchiveKey],
    workers: int,
    result: ReconcileResult,
) -> dict[ArchiveKey, Verified]:
    """The monthly archives downloaded and verified; the others noted as missing or failed."""

    async def download() -> list:
        async with make_client() as api:
            return await _gather(months, lambda key: fetch_verified(api, key, workdir), workers)

    verified: dict[ArchiveKey, Verified] = {}
    for key, got in zip(months, asyncio.run(download()) if months else []):
        if isinstance(got, ArchiveMissing):
            result.missing.append(str(got))
        elif isinstance(got, Exception):
            result.failed.append(f"{key.name}: {got}")
        else:
            verified[key] = got
    return verified


def _compare(
    client,
    database: str,
    verified: dict[ArchiveKey, Verified],
    result: ReconcileResult,
    wanted: Callable[[DayComparison], bool],
) -> tuple[dict[ArchiveKey, dict], dict[ArchiveKey, list[date]]]:
    """Each verified archive's days compared with the stored daily slices (`result.comparisons`):
    (its figures, the days to load from it: those `wanted`). An unreadable archive is failed."""
    figures: dict[ArchiveKey, dict] = {}
    jobs: dict[ArchiveKey, list[date]] = {}
    for key, archive in verified.items():
        try:
            _, figures[key] = read_archive(archive.path, key)
        except SourceDataError as error:
            result.failed.append(str(error))
            archive.path.unlink(missing_ok=True)
            continue
        stored = stored_figures(client, database, key.dataset, key.venue, key.instrument, key.days())
        mine = [DayComparison(key, day, expected, stored.get(day)) for day, expected in figures[key].items()]
        result.comparisons.extend(mine)
        jobs[key] = [c.day for c in mine if wanted(c)]
    return figures, jobs


def _reconciled_row(
    key: ArchiveKey,
    archive: Verified,
    found: dict,
    result: ReconcileResult,
    written: list,
    earlier: tuple[date, ...],
    run_id: str,
    previous: str,
) -> dict:
    """The `dump_archives` row of a reconciled monthly archive: its note counts the days by status
    and names each mismatch; its days are every day it has loaded, this run's and earlier ones'."""
    mine = [c for c in result.comparisons if c.key == key]
    note = ", ".join(
        f"{sum(c.status == s for c in mine)} {s}"
        for s in ("match", "mismatch", "filled", "replaced", "reloaded")
        if any(c.status == s for c in mine)
    ) + "".join(
        f"; {c.day} {c.status}: monthly {c.expected.text()}, daily {c.actual.text()}"
        for c in mine
        if c.status in ("mismatch", "replaced")
    )
    days = sorted({o.key.day for o in written} | set(earlier))
    return archive_row(
        archive,
        found,
        run_id,
        status="reconciled",
        days=days,
        load_ids=[o.load_id for o in written],
        previous=previous,
        note=note[:2000],
    )


def reconcile(
    make_client: Callable[[], ArchiveClient],
    engine: Engine,
    workdir: Path,
    months: list[ArchiveKey],
    *,
    workers: int = 2,
    fill_missing: bool = True,
    replace_mismatched: bool = False,
    previous: dict[ArchiveKey, str] | None = None,
    reload: dict[ArchiveKey, Collection[date]] | None = None,
) -> ReconcileResult:
    """Fetch and verify the monthly archives, compare each day with the stored daily slice, load the
    days without a daily slice (`fill_missing`), the mismatched ones (`replace_mismatched`) and the
    `reload` ones from them, and record every verified monthly archive (status `reconciled`; its
    `days`: every day it has loaded, these and earlier runs')."""
    result = ReconcileResult()
    verified = _verified_months(make_client, workdir, months, workers, result)

    def wanted(c: DayComparison) -> bool:
        return (
            (c.status == "no daily slice" and fill_missing)
            or (c.status == "mismatch" and replace_mismatched)
            or c.day in set((reload or {}).get(c.key, ()))
        )

    with engine.connect() as client:
        ensure_tables(client, engine.database)  # filled days are written as slices
        ensure_archive_table(client, engine.database)
        figures, jobs = _compare(client, engine.database, verified, result, wanted)
        earlier = {r.key: r.days for r in latest_archives(client, engine.database, period="monthly")}
    run = ArchiveRun(
        make_client, workdir, workers=workers, verified={k: verified[k] for k in jobs if jobs[k]}
    )
    if any(jobs.values()):
        result.report = engine.run([[run.feed(jobs)]])
    written = {
        k: [
            o
            for o in map(result.report.outcomes.get, k.slices(jobs[k]))
            if o is not None and o.status == "ok"
        ]
        for k in jobs
    }
    written_days = {(k, o.key.day) for k, done in written.items() for o in done}
    result.comparisons = [
        replace(c, loaded=True) if (c.key, c.day) in written_days else c for c in result.comparisons
    ]
    result.loaded_days = {k.name: sorted(o.key.day for o in written[k]) for k in jobs if jobs[k]}
    rows = [
        _reconciled_row(
            key,
            verified[key],
            found,
            result,
            written[key],
            earlier.get(key, ()),
            engine.run_id,
            (previous or {}).get(key, ""),
        )
        for key, found in figures.items()
    ]
    for key in figures:
        verified[key].path.unlink(missing_ok=True)
    with engine.connect() as client:
        insert_archives(client, engine.database, rows)
    result.recorded = rows
    return result
