"""Deep-merge import of alpha files into MongoDB, in five modes; the store it writes through (indexes,
ledger, transactions) is stores/mongo/alphas.py.

The merge is done here, in Python; a background thread writes the batches with their ledger entries,
so a killed import re-runs only what is missing; a bad file is quarantined and never stops the import.
Modes, batches, crashes, quarantine: docs/alphas.md, "The importer".
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import bson
from bson.raw_bson import RawBSONDocument
from pymongo.database import Database
from pymongo.errors import (
    BulkWriteError,
    ConnectionFailure,
    DocumentTooLarge,
    DuplicateKeyError,
    WriteError,
)

from marketdata_assets.core import metrics, progress
from marketdata_assets.core.files import quarantine
from marketdata_assets.datasets.alpha_files import (
    UnreadableFile,
    gc_paused,
    read_landing_file,
)
from marketdata_assets.ingest.alphas.reading import PlausibleCreated, month_of_valid, parse_alpha
from marketdata_assets.stores.mongo.alphas import (
    AlphaCollections,
    ConflictWait,
    bulk_write_errors,
    store_unavailable,
)
from marketdata_assets.stores.mongo.documents import (
    collection_for,
    date_sidecar,
    inspect_alpha,
    merged_document,
    to_document,
)
from marketdata_assets.stores.mongo.merge import resolve_for_mode

IMPORT_MODES = ("incremental", "overwrite", "rebuild", "time_range", "smart_merge")
WRITTEN_COUNTS = ("inserted", "merged", "replaced")  # the counts of a batch whose documents were written
# The first batches of a run are smaller (FIRST_BATCH, then GROWTH times the last, up to batch_size):
# the server starts writing while the rest of a batch is still read and parsed.
FIRST_BATCH = 100
GROWTH = 4
# MongoDB's limit for one document (its BSON), checked on the encoded document before it is sent
MAX_DOCUMENT_BYTES = 16 * 1024 * 1024
_log = logging.getLogger(__name__)
_ID_NAME = re.compile(r"^[A-Za-z0-9]{7,8}$")


@dataclass
class ImportStats:
    files_seen: int = 0
    files_skipped: int = 0
    files_imported: int = 0
    alphas_filtered_out: int = 0
    inserted: int = 0
    merged: int = 0
    replaced: int = 0
    unchanged: int = 0
    files_keys_escaped: int = 0  # alphas with a key holding `$`, `.` or NUL: stored escaped (documents.py)
    quarantined: list[dict] = field(default_factory=list)  # {file, reason}: moved out of the landing area
    flagged: list[dict] = field(default_factory=list)  # {file, flag}: imported, but something was unusual
    seconds: float = 0.0
    seconds_waiting_for_conflicts: float = 0.0  # for a transaction left open on the server (a killed import)
    # 'YYYY-MM' (New York month of dateCreated) -> {inserted, merged, replaced, unchanged}: alphas per month
    by_month: dict[str, Counter] = field(default_factory=dict)

    def as_metadata(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in ("quarantined", "flagged", "by_month")} | {
            "files_quarantined": len(self.quarantined),
            "files_flagged": len(self.flagged),
            "documents_written": self.inserted + self.merged + self.replaced,
            # stored as they are: alphas found unchanged, and files the ledger knew (one alpha each), not read
            "records_unchanged": self.unchanged + self.files_skipped,
        }


@dataclass
class _Pending:
    """Alphas of one collection waiting for a bulk write, and the files they came from."""

    docs: dict[str, tuple[dict, bool]] = field(default_factory=dict)  # id -> (alpha, a key needs escaping)
    files: list[dict] = field(default_factory=list)
    ledgered: set[str] = field(default_factory=set)  # ids read from a file the ledger has seen (maybe stored)
    sources: dict[str, tuple[str, Path]] = field(default_factory=dict)  # id -> (name, path) of its file


@dataclass
class _Batch:
    """One prepared write: the documents, the ledger entries of its files, what it counts."""

    alpha_type: str
    docs: dict[str, dict]  # alpha id -> document to store (new or changed)
    new: dict[str, dict]  # alpha id -> alpha that was not stored when read (its document is itself)
    replace: list[str]  # ids whose stored document is replaced
    entries: list[dict]
    counts: dict[str, int]
    sources: dict[str, tuple[str, Path]]  # alpha id -> (name, path) of the file it came from
    counted: dict[str, str]  # alpha id -> the count it is in (inserted, merged, replaced, unchanged)


class _Writer:
    """Writes prepared batches one at a time, in order, in a background thread."""

    def __init__(self, write: Callable[[_Batch], dict], done: Callable[[dict], None]):
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="alpha-import-writer")
        self._write, self._done = write, done
        self._batch: _Batch | None = None
        self._future: Future | None = None

    def wait(self) -> None:
        """Until the batch in flight is written; its error is raised here, in the caller's thread."""
        if self._future is not None:
            future, batch, self._future, self._batch = self._future, self._batch, None, None
            counts = future.result()
            self._done(counts)  # the batch and its ledger entries are committed: documents written
            metrics.loaded(
                f"{batch.alpha_type}_alphas", "mongodb", sum(counts.get(k, 0) for k in WRITTEN_COUNTS)
            )

    def wait_for(self, alpha_type: str, ids: Iterable[str]) -> None:
        """Wait if the batch in flight writes any of these alphas (so reading them sees the write)."""
        batch = self._batch
        if batch is not None and batch.alpha_type == alpha_type and not batch.docs.keys().isdisjoint(ids):
            self.wait()

    def submit(self, batch: _Batch) -> None:
        self.wait()
        self._batch, self._future = batch, self._pool.submit(self._write, batch)

    def check(self) -> None:
        """Raise the error of a write that failed already (a dead server stops the reading at once)."""
        if self._future is not None and self._future.done() and self._future.exception() is not None:
            self.wait()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def _encoded(document: dict) -> RawBSONDocument:
    """The document as BSON, encoded here (in the thread that prepares a batch) rather than by the
    driver in the writer thread: the server would wait for that encoding (~8% of a first import)."""
    return RawBSONDocument(bson.encode(document))


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _name_problem(name: str, alpha_id: str) -> str | None:
    """Why the file's name disagrees with the alpha in it (None: it agrees). A file in the landing
    layout (``alphas/<TYPE>/<YYYY-MM>/<account>/<id>.json``) must be named by its alpha's id; a file
    named elsewhere only when its name looks like an alpha id."""
    base = name.rpartition("/")[2]
    stem = base.removesuffix(".json")
    if stem == alpha_id:
        return None
    if name.startswith("alphas/") and name.count("/") == 4 or _ID_NAME.match(stem):
        shown = base if len(base) <= 60 else base[:40] + f"... ({len(base)} characters)"
        return f"file name {shown!r} disagrees with the alpha's id {alpha_id!r} (expected {alpha_id}.json)"
    return None


def import_files(
    files: Iterable[tuple[str, Path]],
    *,
    db_regular: Database,
    db_super: Database,
    collection: str = "alphas",
    mode: str = "incremental",
    time_range: tuple[datetime, datetime] | None = None,
    batch_size: int = 1000,
    array_keys: Mapping[str, str | None] | None = None,
    quarantine_root: Path | None = None,
    landing_root: Path | None = None,
    run_id: str | None = None,
    on_progress: Callable[[ImportStats], None] | None = None,
    after_crash: bool = False,
    conflict_wait_s: float | None = None,
    on_wait: Callable[[str], None] | None = None,
) -> ImportStats:
    """Import alpha files ((name in the ledger, path) pairs) and return what happened.

    `on_progress(stats)` is called after every bulk write (a batch of documents and their ledger
    entries), for progress reports on long imports. Bad files are quarantined (with
    `quarantine_root`; always listed in ``stats.quarantined``) and the others load; a lost
    connection to MongoDB raises StoreUnavailable within the driver's server selection timeout.

    A write conflict with a transaction left open on the server is waited out (`on_wait` gets one
    line saying so; default: this module's logger) for up to `conflict_wait_s` (None: the server's
    transaction lifetime + stores.mongo.alphas.CONFLICT_GRACE_S), then ImportBlocked. `after_crash` (an
    importer of these partitions died, `import_lock` says): every batch is written in a transaction, so a
    conflict with what the dead one left surfaces at once; a plain insert would wait on the server
    for as long as that transaction lives, silently (on SecantusDB until a transaction statement
    reaps it)."""
    try:
        return _import_files(
            files,
            db_regular=db_regular,
            db_super=db_super,
            collection=collection,
            mode=mode,
            time_range=time_range,
            batch_size=batch_size,
            array_keys=array_keys,
            quarantine_root=quarantine_root,
            landing_root=landing_root,
            run_id=run_id,
            on_progress=on_progress,
            after_crash=after_crash,
            conflicts=ConflictWait(db_regular.client, conflict_wait_s, on_wait or _log.warning),
        )
    except ConnectionFailure as error:  # also ServerSelectionTimeoutError, AutoReconnect, NetworkTimeout
        raise store_unavailable(db_regular.client, error) from error


def _import_files(
    files: Iterable[tuple[str, Path]],
    *,
    db_regular: Database,
    db_super: Database,
    collection: str,
    mode: str,
    time_range: tuple[datetime, datetime] | None,
    batch_size: int,
    array_keys: Mapping[str, str | None] | None,
    quarantine_root: Path | None,
    landing_root: Path | None,
    run_id: str | None,
    on_progress: Callable[[ImportStats], None] | None,
    after_crash: bool,
    conflicts: ConflictWait,
) -> ImportStats:
    if mode not in IMPORT_MODES:
        raise ValueError(f"unknown import mode {mode!r}: one of {', '.join(IMPORT_MODES)}")
    if mode == "time_range" and not time_range:
        raise ValueError("import mode time_range needs time_range=(start, end)")
    started = time.monotonic()
    store = AlphaCollections(db_regular, db_super, collection, conflicts)
    batches = _BatchStore(store, mode=mode, array_keys=array_keys, run_id=run_id, after_crash=after_crash)
    files = list(files)
    run = _Import(
        batches,
        files,
        mode=mode,
        time_range=time_range,
        batch_size=batch_size,
        quarantine_root=quarantine_root,
        landing_root=landing_root,
        on_progress=on_progress,
    )
    run.load(files)
    stats = run.stats
    stats.seconds = round(time.monotonic() - started, 3)
    stats.seconds_waiting_for_conflicts = round(conflicts.waited_s, 3)
    return stats


class _Import:
    """One import, in the importing thread: reads, checks and queues each file, prepares batches
    (reads the stored alphas, merges) for the writer thread (`_BatchStore.write`), quarantines bad
    files and keeps the statistics."""

    def __init__(
        self,
        batches: _BatchStore,
        files: list[tuple[str, Path]],
        *,
        mode: str,
        time_range: tuple[datetime, datetime] | None,
        batch_size: int,
        quarantine_root: Path | None,
        landing_root: Path | None,
        on_progress: Callable[[ImportStats], None] | None,
    ):
        self.batches, self.store = batches, batches.store
        self.mode, self.time_range, self.batch_size = mode, time_range, batch_size
        self.quarantine_root, self.landing_root, self.on_progress = quarantine_root, landing_root, on_progress
        self.stats = ImportStats()
        types = self.store.targets
        # A file the ledger has never seen holds an alpha that is almost always new (its first fetch):
        # it is inserted without reading the collection first, and merged after all if the insert
        # finds it stored (duplicate key, see _BatchStore.merge_late). That saves the first import a
        # read per alpha.
        self.ledgered = self.store.ledgered_files(name for name, _ in files) if mode != "rebuild" else {}
        self.since = {t: self.store.newest_modified(t) for t in types} if mode == "smart_merge" else {}
        self.pending = {alpha_type: _Pending() for alpha_type in types}
        self.limits = {alpha_type: min(batch_size, FIRST_BATCH) for alpha_type in types}
        self.real_root = os.path.realpath(landing_root) if landing_root is not None else None
        self.implausible = PlausibleCreated()
        self.writer = _Writer(self.write, self.done)
        self.progress_key, self.total = f"alpha import#{id(self)}", len(files)  # files read of all, for a bar
        progress.report(self.progress_key, 0, self.total, "files")

    def write(self, batch: _Batch) -> dict:
        """The batch written (in the writer thread), its counts with each alpha's by month of dateCreated."""
        counts = self.batches.write(batch)
        months = {entry["alpha_id"]: entry["month"] for entry in batch.entries}
        counts["by_month"] = Counter(
            (months[alpha_id], count) for alpha_id, count in batch.counted.items() if alpha_id in months
        )
        return counts

    def load(self, files: list[tuple[str, Path]]) -> None:
        """Every file queued, every batch written (the last error of the writer raised here)."""
        stats, writer, pending, limits = self.stats, self.writer, self.pending, self.limits
        # JSON trees have no reference cycles: most of the parse time would be the cyclic GC's
        with gc_paused():
            try:
                for name, path in files:
                    stats.files_seen += 1
                    writer.check()
                    try:
                        alpha_type = self.take(name, path)
                    except Exception as error:  # noqa: BLE001 - whatever else is wrong with this one file
                        self.reject(name, path, f"could not be imported: {type(error).__name__}: {error}")
                        continue
                    if alpha_type is not None and (
                        len(pending[alpha_type].docs) >= limits[alpha_type]
                        or len(pending[alpha_type].files) >= 4 * limits[alpha_type]
                    ):
                        writer.submit(self.prepare(alpha_type))
                for alpha_type, batch in pending.items():
                    if batch.docs or batch.files:
                        writer.submit(self.prepare(alpha_type))
                writer.wait()
                progress.report(self.progress_key, stats.files_seen, self.total, "files")
            finally:
                writer.close()

    def reject(self, name: str, path: Path, reason: str) -> None:
        entry = {"file": name, "reason": reason}
        self.stats.quarantined.append(entry)
        if self.quarantine_root is not None:
            try:
                quarantine(path, reason, self.quarantine_root, relative_to=self.landing_root)
            except OSError as error:  # e.g. a read-only landing area: reported, and the import goes on
                entry["reason"] = f"{reason} (not moved to the quarantine: {error})"

    def take(self, name: str, path: Path) -> str | None:
        """Read, check and queue one file; the collection it went to (None: skipped or quarantined)."""
        try:
            data = read_landing_file(path, self.real_root)
        except UnreadableFile as error:
            self.reject(name, path, str(error))
            return None
        sha = sha256_bytes(data)
        if self.mode == "incremental" and sha in self.ledgered.get(name, ()):
            self.stats.files_skipped += 1
            month = path.parent.parent.name  # <TYPE>/<YYYY-MM>/<account>/<id>.json: its month's own count
            self.stats.by_month.setdefault(month, Counter())["skipped"] += 1
            return None
        alpha, problem, notes = parse_alpha(data)
        problems, escape = ([problem], False) if problem else inspect_alpha(alpha, self.implausible)
        if not problems and (wrong_name := _name_problem(name, alpha["id"])):
            problems = [wrong_name]
        if problems:
            self.reject(name, path, "; ".join(problems))
            return None
        alpha_type = collection_for(alpha)
        keep = self.keeps(alpha, alpha_type)
        entry = {
            "file": name,
            "size": len(data),
            "sha256": sha,
            "documents": int(keep),
            "alpha_id": alpha["id"],
            "type": alpha["type"],
            "month": month_of_valid(alpha["dateCreated"]),
        }
        # everything above may fail for this file alone; queueing only records
        self.queue(alpha_type, name, path, alpha, escape, keep, entry, notes)
        return alpha_type

    def keeps(self, alpha: dict, alpha_type: str) -> bool:
        """Whether the mode imports this alpha (time_range, smart_merge: by its dateModified)."""
        if self.mode == "time_range":
            modified = date_sidecar(alpha).get("dateModified")
            return modified is not None and self.time_range[0] <= modified < self.time_range[1]
        if self.mode == "smart_merge" and self.since.get(alpha_type) is not None:
            modified = date_sidecar(alpha).get("dateModified")
            return modified is not None and modified > self.since[alpha_type]
        return True

    def queue(
        self,
        alpha_type: str,
        name: str,
        path: Path,
        alpha: dict,
        escape: bool,
        keep: bool,
        entry: dict,
        notes: list[str],
    ) -> None:
        stats, batch = self.stats, self.pending[alpha_type]
        if keep:
            batch.docs[alpha["id"]] = (
                alpha,
                escape,
            )  # the same alpha twice in one batch: the later file wins
            batch.sources[alpha["id"]] = (name, path)
            if name in self.ledgered:
                batch.ledgered.add(alpha["id"])
        else:
            stats.alphas_filtered_out += 1
        batch.files.append(entry)
        stats.files_imported += keep
        stats.files_keys_escaped += escape
        stats.flagged.extend({"file": name, "flag": note} for note in notes)

    def prepare(self, alpha_type: str) -> _Batch:
        """Read the stored documents of the pending alphas and merge (in the caller's thread)."""
        pending, self.pending[alpha_type] = self.pending[alpha_type], _Pending()
        self.limits[alpha_type] = min(self.batch_size, self.limits[alpha_type] * GROWTH)
        ids = [alpha_id for alpha_id in pending.docs if alpha_id in pending.ledgered]
        old: dict[str, tuple[dict, bool]] = {}
        if ids:
            self.writer.wait_for(alpha_type, ids)
            old = self.store.stored_alphas(alpha_type, ids)
        batch = _Batch(
            alpha_type,
            {},
            {},
            [],
            pending.files,
            {"inserted": 0, "merged": 0, "replaced": 0, "unchanged": 0},
            pending.sources,
            {},
        )
        for alpha_id, (size, count) in self.merge(pending, old, batch).items():
            name, path = pending.sources[alpha_id]
            what = (
                "merged with the stored alpha, its document would be"
                if count == "merged"
                else "its document is"
            )
            self.reject(
                name,
                path,
                f"alpha {alpha_id}: {what} {size:,} bytes, over MongoDB's limit of "
                f"{MAX_DOCUMENT_BYTES:,} bytes per document (file {name})",
            )
            batch.entries = [entry for entry in batch.entries if entry["file"] != name]
            self.stats.files_imported -= 1
        return batch

    def merge(self, pending: _Pending, old: dict[str, tuple[dict, bool]], batch: _Batch) -> dict[str, tuple]:
        """Fill `batch` with the documents of the pending alphas merged with the stored ones (`old`);
        the alphas whose document is too large: id -> (its size, the count it would be in)."""
        mode, array_keys = self.mode, self.batches.array_keys
        docs, new, replace, counted, counts = (
            batch.docs,
            batch.new,
            batch.replace,
            batch.counted,
            batch.counts,
        )
        too_large = {}
        for alpha_id, (alpha, escape) in pending.docs.items():
            stored = old.get(alpha_id)
            # every alpha was validated when read: the documents need no second validation, and
            # a merged object has a key to escape only if the stored or the new one had one
            if mode == "rebuild" or stored is None:  # merged with nothing, an alpha is itself
                doc, count = (
                    _encoded(to_document(alpha, validate=False, escape=escape)),
                    "replaced" if mode == "rebuild" else "inserted",
                )
            else:
                # shared subtrees: nothing here mutates the alpha, the stored one or the merge
                merged, changed = resolve_for_mode(stored[0], alpha, mode, array_keys, share=True)
                if not changed:
                    counts["unchanged"] += 1
                    counted[alpha_id] = "unchanged"
                    continue
                doc, count = (
                    _encoded(to_document(merged, validate=False, escape=escape or stored[1])),
                    "merged",
                )
            if len(doc.raw) > MAX_DOCUMENT_BYTES:  # the server would refuse it (and with it the batch)
                too_large[alpha_id] = (len(doc.raw), count)
                continue
            docs[alpha_id], counted[alpha_id] = doc, count
            counts[count] += 1
            if count == "inserted":
                new[alpha_id] = alpha
            else:
                replace.append(alpha_id)
        return too_large

    def done(self, counts: dict) -> None:
        """A batch is written (called by the writer, in this thread): its counts and refused files."""
        stats = self.stats
        for name, path, reason in counts.pop("rejected", ()):
            self.reject(name, path, reason)
            stats.files_imported -= 1
        for (month, count), n in counts.pop("by_month", {}).items():
            stats.by_month.setdefault(month, Counter())[count] += n
        for key, value in counts.items():
            setattr(stats, key, getattr(stats, key) + value)
        progress.report(self.progress_key, stats.files_seen, self.total, "files")
        if self.on_progress is not None:
            self.on_progress(stats)


class _BatchStore:
    """Writes prepared batches and their ledger entries through the store (in the writer thread): in
    a transaction or plainly; takes out of a batch what the server refuses, and merges an alpha
    inserted unread that is stored after all into what is stored."""

    def __init__(
        self,
        store: AlphaCollections,
        *,
        mode: str,
        array_keys: Mapping[str, str | None] | None,
        run_id: str | None,
        after_crash: bool,
    ):
        self.store, self.mode, self.array_keys = store, mode, array_keys
        self.run_id, self.after_crash = run_id, after_crash

    def write(self, batch: _Batch) -> dict:
        """The documents, then the ledger entries (in the writer thread).

        A batch that replaces documents is one transaction: each replaced document is deleted and
        inserted again (SecantusDB: ~25% less work than a ReplaceOne, which plans and runs an update
        per document), and the ledger entries commit with the documents. A batch of new alphas only
        is inserted outside a transaction (a transaction adds ~13% to an insert), then its ledger
        entries. Without transactions: InsertOne / ReplaceOne, then the entries.

        A document the server refuses (too large for it, ...) is taken out of the batch, its file
        quarantined (by `done`, in the importing thread) and the rest written; when the driver
        refuses one before sending (DocumentTooLarge), the batch is written one document at a time."""
        counts = dict(batch.counts, rejected=[])
        what = f"a batch of {len(batch.docs):,} {batch.alpha_type} alphas"
        while (batch.replace or self.after_crash) and self.store.transactions:
            try:
                if self.store.in_transaction(lambda session: self.write_batch(batch, session), what):
                    return counts
            except BulkWriteError as error:
                # the whole batch was rolled back. An alpha inserted unread, or stored by someone else
                # since we read it: merge into what is stored now. A document the server refused:
                # out of the batch. Then the batch is written again.
                self.settle(batch, error, list(batch.docs), counts)
            except DocumentTooLarge:
                return self.write_each(batch, counts)
        return self.write_plain(batch, counts)

    def write_batch(self, batch: _Batch, session) -> None:
        self.store.write_in(session, batch.alpha_type, batch.docs, batch.replace)
        self.store.record(batch.entries, self.mode, self.run_id, session)

    def write_plain(self, batch: _Batch, counts: dict) -> dict:
        """The batch outside a transaction (new alphas only, or a server without transactions),
        then its ledger entries."""
        order = list(batch.docs)
        try:
            self.store.write_plain(batch.alpha_type, batch.docs, batch.replace)
        except DocumentTooLarge:  # some of the batch may be written: each document again, on its own
            return self.write_each(batch, counts)
        except BulkWriteError as error:  # unordered: every document without an error is written
            ids = self.settle(batch, error, order, counts)
            self.store.upsert(batch.alpha_type, {i: batch.docs[i] for i in ids if i in batch.docs})
        self.store.record(batch.entries, self.mode, self.run_id)
        return counts

    def write_each(self, batch: _Batch, counts: dict) -> dict:
        """The batch one document at a time (no transaction), then its ledger entries: the
        documents the server or the driver refuse are dropped, the others written. (A new alpha the
        failed batch had written already counts as unchanged rather than inserted.)"""
        store, alpha_type = self.store, batch.alpha_type
        for alpha_id in list(batch.docs):
            try:
                if alpha_id in batch.new:
                    try:
                        store.insert_one(alpha_type, batch.docs[alpha_id])
                        continue
                    except DuplicateKeyError:  # stored after all (also by the failed batch): merge
                        self.merge_late(batch, [alpha_id], counts)
                        if alpha_id not in batch.docs:
                            continue
                store.replace_one(alpha_type, alpha_id, batch.docs[alpha_id])
            except (DocumentTooLarge, WriteError) as error:
                self.drop(batch, alpha_id, str(error).split(", full error")[0], counts)
        store.record(batch.entries, self.mode, self.run_id)
        return counts

    def settle(self, batch: _Batch, error: BulkWriteError, order: list[str], counts: dict) -> list[str]:
        """After a bulk write's errors: the documents the server refused are dropped, the new alphas
        it says are stored already merged into what is stored (merge_late); those alphas' ids."""
        taken, refused = bulk_write_errors(error, order, batch.new)
        for alpha_id, message in refused.items():
            self.drop(batch, alpha_id, message, counts)
        self.merge_late(batch, taken, counts)
        return taken

    @staticmethod
    def drop(batch: _Batch, alpha_id: str, message: str, counts: dict) -> None:
        """Take a document the server refused out of the batch: its file goes to the quarantine
        (`done`), its ledger entry is not written, its count is undone."""
        name, path = batch.sources[alpha_id]
        doc = batch.docs[alpha_id]
        size = len(doc.raw) if isinstance(doc, RawBSONDocument) else len(bson.encode(doc))
        counts[batch.counted.pop(alpha_id)] -= 1
        del batch.docs[alpha_id]
        batch.new.pop(alpha_id, None)
        if alpha_id in batch.replace:
            batch.replace.remove(alpha_id)
        batch.entries = [entry for entry in batch.entries if entry["file"] != name]
        reason = f"MongoDB refused the document of alpha {alpha_id} ({size:,} bytes; file {name}): {message}"
        counts["rejected"].append((name, path, reason))

    def merge_late(self, batch: _Batch, ids: list[str], counts: dict) -> None:
        """New alphas found stored after all (duplicate key): merged into what is stored now."""
        old = self.store.stored_documents(batch.alpha_type, ids)
        for alpha_id in ids:
            doc, changed = merged_document(
                old.get(alpha_id), batch.new.pop(alpha_id), self.mode, self.array_keys, validate=False
            )
            counts["inserted"] -= 1
            if changed:
                counts["merged"] += 1
                batch.docs[alpha_id] = doc
                batch.replace.append(alpha_id)
                batch.counted[alpha_id] = "merged"
            else:
                counts["unchanged"] += 1
                del batch.docs[alpha_id]
                batch.counted[alpha_id] = "unchanged"
