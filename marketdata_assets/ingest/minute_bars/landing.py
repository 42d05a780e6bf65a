"""One load of the minute-bar landing area for a run's months: which files, in parallel, and what
happened to each. The store is bootstrapped first (stores/timescale/bootstrap.py), whoever launched the load.

The files of the months (by the landing index; new or changed files are indexed on the way) load largest
first (by halving size classes, each in path order: `load_order`) on `workers` connections, each file in
its own transaction (loader.load_file). A file that can't be loaded — unreadable, no known layout, a
time column that never parses, values the database refuses — is quarantined with its reason and every
other file loads. Files no profile could read are recorded with the profile set's fingerprint; a later
run with other profiles (a fixed or added one) moves them back and reads them again. A symbolic link in
the landing area (to a file or a directory, wherever it points) is never read: every load quarantines
it, the reason naming the link (core/landing_files.py), and a file swapped for a link after the listing
is refused when it is opened. A store that goes away is different: the first StoreUnavailable cancels
the queued files and fails the load at once, so a dead server costs seconds, not a pool timeout per
file.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl
import psycopg

from marketdata_assets.core import metrics, progress
from marketdata_assets.core.errors import StoreUnavailable
from marketdata_assets.core.files import quarantine, reason_file_of
from marketdata_assets.core.landing_files import LinkRefused, link_reason
from marketdata_assets.core.markdown import table
from marketdata_assets.ingest.minute_bars import loader
from marketdata_assets.sources.registry import minute_files
from marketdata_assets.stores.timescale import bootstrap as store
from marketdata_assets.stores.timescale.minute_table import MIGRATE_MAX_ROWS

FILES = minute_files()  # the minute-bar files' reader and profiles (sources/minute_csv)

# What a file's own content can cause; anything else (a server gone, a bug) fails the load.
FILE_ERRORS = (ValueError, UnicodeError, OSError, psycopg.DataError, pl.exceptions.PolarsError)


@dataclass(frozen=True)
class LandingFile:
    """A file to look at: `months` known from the index, or None for a new/changed file (`stat` set)."""

    path: Path
    rel: str
    stat: object | None
    months: list[date] | None


@dataclass
class LandingLoad:
    """What one load did: the outcome of every file looked at, and the quarantined ones."""

    months: list[date]
    use_copy: bool
    workers: int
    files: list[loader.FileLoad] = field(default_factory=list)
    quarantined: list[dict] = field(default_factory=list)
    released: list[str] = field(default_factory=list)
    not_csv: list[str] = field(default_factory=list)  # files of the landing area that are no CSV: not read
    seconds: float = 0.0
    bootstrap: store.StoreBootstrap | None = None  # done before the first file
    quarantine_root: Path | None = None  # quarantined files; rejects files in its `rejects` directory

    def metadata(self) -> dict:
        """Plain values; the asset turns the tables into Markdown/JSON metadata."""
        loaded = [f for f in self.files if f.outcome == "loaded"]
        rows = sum(f.rows for f in loaded)
        by_reason: Counter = Counter()
        for f in self.files:
            by_reason.update(f.rejects_by_reason)
        return {
            "months": f"{self.months[0]:%Y-%m}..{self.months[-1]:%Y-%m}",
            "write_path": "binary COPY" if self.use_copy else "INSERT ... SELECT FROM unnest",
            "files_considered": len(self.files),
            "files_loaded": len(loaded),
            "files_skipped": sum(f.outcome == "skipped" for f in self.files),
            "files_quarantined": len(self.quarantined),
            "files_released": len(self.released),
            "files_not_csv": len(self.not_csv),
            "rows_loaded": rows,
            "rows_replaced": sum(f.rows_deleted for f in loaded),
            "rows_rejected": sum(f.rejects for f in self.files),
            "rejected_by_reason": dict(sorted(by_reason.items())),
            "duplicates_dropped": sum(f.duplicates_dropped for f in loaded),
            "rows_per_second": round(rows / self.seconds) if self.seconds else None,
            "seconds": self.seconds,
            **(self.bootstrap.as_metadata() if self.bootstrap else {}),
        }

    def of_month(self, month: date) -> dict:
        """A month's own figures: the rows written in it, the files that loaded rows of it or skipped it
        (loaded before with the same content). Rejected rows and quarantined files are the run's input's."""
        key = f"{month:%Y-%m}"
        mine = [f for f in self.files if key in f.months]
        return {
            "month": key,
            "rows_loaded": sum(f.rows_by_month.get(key, 0) for f in mine if f.outcome == "loaded"),
            "files_loaded": sum(f.outcome == "loaded" and f.rows_by_month.get(key, 0) > 0 for f in mine),
            "files_skipped": sum(f.outcome == "skipped" for f in mine),
        }

    @property
    def reject_dir(self) -> Path | None:
        return self.quarantine_root / "rejects" if self.quarantine_root else None

    def partial(self, shown: int = 3) -> str | None:
        """What of the input was not loaded, or None: rows rejected (how many, why, from which files,
        where their rejects files are) and files quarantined whole (a file not loaded at all)."""
        parts = []
        rejecting = sorted((f for f in self.files if f.rejects), key=lambda f: (-f.rejects, f.file))
        if rejecting:
            loaded = sum(f.outcome == "loaded" for f in self.files)
            by_reason: Counter = Counter()
            for f in rejecting:
                by_reason.update(f.rejects_by_reason)
            parts.append(
                f"{sum(f.rejects for f in rejecting):,} rows rejected "
                f"({', '.join(f'{why}: {n:,}' for why, n in by_reason.most_common())}) from {len(rejecting)} "
                f"of {loaded} file{'s' * (loaded != 1)} loaded: "
                f"{_first([f'{f.file} ({f.rejects:,})' for f in rejecting], shown)}; "
                f"rejects files in {self.reject_dir}"
            )
        if self.quarantined:
            count = len(self.quarantined)
            parts.append(
                f"{count} file{'s' * (count != 1)} quarantined, not loaded at all: "
                f"{_first(sorted(q['file'] for q in self.quarantined), shown)} "
                f"(moved to {self.quarantine_root} with their reasons)"
            )
        return "; ".join(parts) or None

    def progress(self, planned: int) -> str:
        """How far a load got (for the error of a store lost mid-load)."""
        loaded = [f for f in self.files if f.outcome == "loaded"]
        done = len(self.files) + len(self.quarantined)
        return (
            f"{sum(f.rows for f in loaded):,} rows of {len(loaded)} file{'s' * (len(loaded) != 1)} were "
            f"committed before, {planned - done} of {planned} files not finished (re-run the same load: "
            "what committed is skipped)"
        )

    def files_table(self) -> str:
        return table(
            ["file", "months", "outcome", "rows", "replaced", "rejected", "duplicates", "seconds", "note"],
            (
                [
                    f.file,
                    " ".join(f.months),
                    f.outcome,
                    f.rows,
                    f.rows_deleted,
                    f.rejects,
                    f.duplicates_dropped,
                    f.seconds,
                    f.rejects_file or "",
                ]
                for f in sorted(self.files, key=lambda f: f.file)
            ),
        )


def _first(names: Sequence[str], shown: int) -> str:
    """The first `shown` names, then how many more."""
    return ", ".join(names[:shown]) + (f" (+{len(names) - shown})" if len(names) > shown else "")


def plan_files(
    conn: psycopg.Connection, root: Path, months: Sequence[date], files: Sequence[Path] | None = None
) -> list[LandingFile]:
    """The files that may hold rows of `months` in `load_order`: indexed files with rows in them, and
    every new or changed file (its months are learnt when it is read). `files`: the landing files
    listed (default: loader.landing_files)."""
    indexed, stale = loader.landing_index(conn, root, files)
    wanted = set(months)
    work = [
        LandingFile(root / rel, rel, None, sorted(wanted & set(file_months)))
        for rel, (file_months, error) in indexed.items()
        if not error and wanted & set(file_months)
    ]
    work += [LandingFile(path, rel, stat, None) for path, rel, stat in stale]
    by_path = {item.path: item for item in work}
    return [by_path[path] for path in load_order(by_path)]


def load_order(paths: Iterable[Path]) -> list[Path]:
    """Largest first by halving size classes (the files within 2x of the largest, then within 4x, ...) so
    the workers end on small files; within a class by path. Files named by their code then reach each
    chunk's unique index (code, time DESC) in its order: each file's entries after those of the codes
    loaded before, not split into the index's middle (docs/minute-bars.md, "Measured again")."""
    sizes = {path: max(1, path.lstat().st_size) for path in paths}
    largest = max(sizes.values(), default=1)
    return sorted(sizes, key=lambda path: (int(math.log2(largest / sizes[path])), path))


def release_quarantined(conn: psycopg.Connection, root: Path, fingerprint: str) -> list[str]:
    """Move files quarantined under another profile set back to where they were (unless something
    new took their place); returns their landing paths."""
    rows = conn.execute(
        "SELECT source_file, quarantined_to FROM minute_bar_quarantine "
        "WHERE profiles IS NOT NULL AND profiles <> %s ORDER BY source_file",
        (fingerprint,),
    ).fetchall()
    released = []
    for rel, moved_to in rows:
        origin, held = root / rel, Path(moved_to)
        if held.exists() and not origin.exists():
            origin.parent.mkdir(parents=True, exist_ok=True)
            held.replace(origin)
            reason_file_of(held).unlink(missing_ok=True)
            released.append(rel)
        conn.execute("DELETE FROM minute_bar_quarantine WHERE source_file = %s", (rel,))
        conn.execute("DELETE FROM minute_bar_landing_files WHERE source_file = %s", (rel,))  # read it anew
    conn.commit()
    return released


def load_landing(
    connection: Callable[[], AbstractContextManager[psycopg.Connection]],
    root: Path,
    months: Sequence[date],
    *,
    quarantine_root: Path,
    use_copy: bool,
    workers: int = 4,
    force: bool = False,
    profiles: Sequence[Any] | None = None,  # the file source's profiles (None: its built-in ones)
    run_id: str | None = None,
    migrate_max_rows: int | None = MIGRATE_MAX_ROWS,
    log: Callable[[str], None] = lambda message: None,
) -> LandingLoad:
    """Load the landing files' rows of `months` into stock_1min_qfq, after bootstrapping the store
    (store.bootstrap: extension, hypertable, indexes); `connection()` yields a pooled connection (the
    resource's). Raises StoreUnavailable when the server goes away, PlainTableNotMigrated before any
    load when a plain table holds more than `migrate_max_rows` rows."""
    started = time.monotonic()
    report = LandingLoad(
        months=list(months), use_copy=use_copy, workers=workers, quarantine_root=quarantine_root
    )
    with connection() as conn:
        report.bootstrap = store.bootstrap(conn, migrate_max_rows=migrate_max_rows)
        fingerprint = FILES.fingerprint(profiles)
        report.released = release_quarantined(conn, root, fingerprint)
        listing = loader.landing_listing(root)
        work = plan_files(conn, root, months, listing.files)
    for rel in report.released:
        log(f"released {rel} from quarantine: the profiles changed since it was set aside")
    report.not_csv = [path.relative_to(root).as_posix() for path in listing.others]
    if report.not_csv:
        log(not_csv_line(report.not_csv))
    log(
        f"{len(work)} files to look at for {months[0]:%Y-%m}..{months[-1]:%Y-%m} "
        f"({sum(f.months is None for f in work)} new or changed); "
        f"{'binary COPY' if use_copy else 'INSERT ... unnest'}, {workers} workers"
    )
    job = _FileJob(
        connection,
        set(months),
        force=force,
        use_copy=use_copy,
        run_id=run_id,
        reject_dir=report.reject_dir,
        profiles=profiles,
    )
    progress_key = f"minute bars load#{id(job)}"  # files settled of the load's, for a bar
    progress.report(progress_key, 0, len(work), "files")
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = {pool.submit(job.load, item): item for item in work}
        try:
            for done, future in enumerate(as_completed(futures), start=1):
                progress.report(progress_key, done, len(work), "files")
                item = futures[future]
                try:
                    outcome = future.result()
                except FILE_ERRORS as error:  # nothing of the file was kept (one transaction)
                    report.quarantined.append(
                        _set_aside(connection, item, error, root, quarantine_root, fingerprint, log)
                    )
                    continue
                if outcome is not None:
                    report.files.append(outcome)
                    _count_and_log(outcome, item, f"[{done}/{len(work)}]", log)
        except StoreUnavailable as error:
            pool.shutdown(wait=False, cancel_futures=True)
            raise error.with_progress(report.progress(len(work))) from None
        except (psycopg.OperationalError, psycopg.InterfaceError):
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    for link in listing.links:  # whatever it points to, nothing of it is read
        item = LandingFile(link, link.relative_to(root).as_posix(), None, None)
        report.quarantined.append(
            _set_aside(connection, item, LinkRefused(link, root), root, quarantine_root, fingerprint, log)
        )
    report.seconds = round(time.monotonic() - started, 3)
    return report


def not_csv_line(names: list[str]) -> str:
    """What the load says of the landing area's files that are no CSV (it reads none of them)."""
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return (
        f"not read: {len(names)} file(s) that are not CSV (.csv, .csv.gz): {shown}; unpack an archive into "
        "the landing area to load its files"
    )


@dataclass
class _FileJob:
    """Loads one landing file's wanted months (a worker thread each, its own pooled connection)."""

    connection: Callable[[], AbstractContextManager[psycopg.Connection]]
    wanted: set[date]
    force: bool
    use_copy: bool
    run_id: str | None
    reject_dir: Path
    profiles: Sequence[Any] | None

    def load(self, item: LandingFile) -> loader.FileLoad | None:
        """The file's outcome (loaded or skipped), None when it holds none of the wanted months."""
        with self.connection() as conn:
            file_months, parsed = item.months, None
            if file_months is None:
                try:
                    first, last, all_months, parsed = loader.file_span(item.path, self.profiles)
                except FILE_ERRORS as error:  # the whole file can't be read: out of the landing area
                    loader.record_index(conn, item.rel, item.stat, None, None, [], str(error))
                    raise
                loader.record_index(conn, item.rel, item.stat, first, last, all_months, None)
                file_months = sorted(self.wanted & set(all_months))
                if not file_months:
                    return None
            sha = loader.file_sha256(item.path)
            todo = loader.months_to_load(conn, item.rel, sha, file_months, self.force)
            conn.commit()
            if not todo:
                return loader.FileLoad(
                    file=item.rel,
                    size_bytes=item.path.lstat().st_size,
                    months=[f"{m:%Y-%m}" for m in file_months],
                    outcome="skipped",
                )
            return loader.load_file(
                conn,
                item.path,
                item.rel,
                todo,
                sha256=sha,
                use_copy=self.use_copy,
                run_id=self.run_id,
                reject_dir=self.reject_dir,
                profiles=self.profiles,
                parsed=parsed,
            )


def _set_aside(
    connection: Callable[[], AbstractContextManager[psycopg.Connection]],
    item: LandingFile,
    error: Exception,
    root: Path,
    quarantine_root: Path,
    fingerprint: str,
    log: Callable[[str], None],
) -> dict:
    """Move a file that can't be loaded into quarantine with its reason (recorded in
    minute_bar_quarantine); returns {file, reason} for the report."""
    reason = str(error)
    if isinstance(error, LinkRefused):  # named in the landing area, never by its target
        reason = link_reason(item.path, root)
    elif isinstance(error, psycopg.Error):  # the driver's message doesn't name the file
        reason = f"{item.rel}: the database refused the file's rows: {' '.join(reason.split())}"
    try:
        moved_to = quarantine(item.path, reason, quarantine_root, relative_to=root)
    except OSError as failure:  # e.g. the file vanished: it is then no longer in the landing area
        reason = f"{reason} (could not be moved aside: {failure})"
    else:
        with connection() as conn:
            conn.execute(
                """
                INSERT INTO minute_bar_quarantine (source_file, quarantined_to, reason, profiles)
                VALUES (%s, %s, %s, %s) ON CONFLICT (source_file) DO UPDATE SET
                    quarantined_to = EXCLUDED.quarantined_to, reason = EXCLUDED.reason,
                    profiles = EXCLUDED.profiles, quarantined_at = now()""",
                (
                    item.rel,
                    str(moved_to),
                    reason,
                    fingerprint if isinstance(error, FILES.file_error) else None,
                ),
            )
    log(f"quarantined {item.rel}: {reason}")
    return {"file": item.rel, "reason": reason}


def _count_and_log(
    outcome: loader.FileLoad, item: LandingFile, progress: str, log: Callable[[str], None]
) -> None:
    if outcome.outcome == "loaded":  # committed (one transaction per file)
        metrics.loaded("stock_1min_qfq", "timescaledb", outcome.rows)
    rate = f", {outcome.rows / outcome.seconds:,.0f} rows/s" if outcome.seconds else ""
    reasons = ", ".join(f"{n} {why}" for why, n in sorted(outcome.rejects_by_reason.items()))
    log(
        f"{progress} {outcome.outcome} {item.rel}: {outcome.rows:,} rows, "
        f"{outcome.rejects} rejected{f' ({reasons})' if reasons else ''}{rate}"
    )
