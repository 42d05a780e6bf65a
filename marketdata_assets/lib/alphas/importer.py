"""Deep-merge import of alpha files into MongoDB (seed 000's importer), with the five modes and a ledger.

Modes (seed 000):
- `incremental`: files already in the ledger with the same sha256 are skipped; the rest deep-merge.
- `overwrite`: every file, deep merge (old fields kept, new values win).
- `rebuild`: every file, the stored document is replaced whole (old-only fields go).
- `time_range`: only alphas whose dateModified lies in [start, end); deep merge.
- `smart_merge`: only alphas modified after the newest dateModified already stored (per
  collection, read once at the start); deep merge.

The merge happens here, in Python: an alpha not stored yet is inserted (its merge with nothing is
itself), a changed one replaces the stored document whole, an unchanged one is not written at all;
no key of the data ever reaches the server as an operator or a path (`documents.to_document`
escapes `$` and `.`). Stored documents are read with `$in` lists of STORED_READ_CHUNK ids (the
server's cost per id grows with the list), only for alphas whose file the ledger has seen: an
alpha from a file it has never seen is inserted unread. Each batch that replaces documents is
written in one transaction: replaced documents are deleted and inserted again (SecantusDB spends
~25% less on that than on a ReplaceOne, which plans and runs an update per document; an upsert of
a new alpha costs ~2.5x an insert), then the batch's ledger entries. A server without transactions
(a standalone mongod) gets InsertOne / ReplaceOne bulk writes, then the ledger. An alpha inserted
unread that is stored after all (the ledger was dropped, another file holds the same alpha, or
another import stored it since) fails with a duplicate key and is merged into what is stored then.

Batches are written by one background thread, in order, while the next batch is read, parsed and
merged (the server is another process: its work and ours overlap); a batch whose alphas are still
being written waits for that write before reading them. The first batches of a run are small, so
the server starts early.

The ledger (`import_ledger`, in the regular database next to the data) has one entry per file:
``file, size, sha256, documents`` (1 imported, 0 filtered out by the mode), ``alpha_id, type,
month`` (New York month of dateCreated: the partition), with the ``mode, imported_at, run_id`` of
the write that committed it. The entries of one bulk write are stored together, one ledger
document per landing directory, a column per field: ``{dir, mode, imported_at, run_id, files:
{file: [...], size: [...], sha256: [...], ...}}`` (`ledger_entries` reads them back as rows). One
document per file would cost this server about a fifth of the import (each insert has a fixed cost
far above its size); one per write costs nothing measurable. Columns rather than an array of
entries: the skip check reads three of them for 50,000 files in ~0.15 s, where projecting three
fields out of 50,000 embedded entries took ~0.45 s. The ledger document commits with the batch
holding its alphas (in its transaction, or right after the inserts of new alphas), so a killed
import re-runs only the files without an entry, and re-merging a file already merged changes
nothing: the collections end identical to an uninterrupted import. `incremental` reads the entries of its files' directories once per run
(index on ``dir``) to skip the (file, sha256) pairs already imported. Entries of earlier versions
(one document per file, no ``dir``) still count for the checks; `incremental` merges their files
once more (no change) and ledgers them anew.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import bson
import pymongo
from bson import ObjectId
from bson.raw_bson import RawBSONDocument
from pymongo.database import Database
from pymongo.errors import BulkWriteError, OperationFailure

from marketdata_assets.lib.alphas.documents import (
    DATES_FIELD,
    alpha_from_bson,
    collection_for,
    date_sidecar,
    inspect_alpha,
    merged_document,
    to_document,
)
from marketdata_assets.lib.alphas.files import gc_paused, month_of, parse_alpha_bytes, read_file_bytes
from marketdata_assets.lib.alphas.merge import resolve_for_mode
from marketdata_assets.lib.files import quarantine

IMPORT_MODES = ("incremental", "overwrite", "rebuild", "time_range", "smart_merge")
LEDGER = "import_ledger"
# What the ledger keeps per file (with the mode, time and run of the write that committed it).
LEDGER_FIELDS = ("file", "size", "sha256", "documents", "alpha_id", "type", "month")
_OBSOLETE_LEDGER_INDEX = "import_ledger_index"  # written by earlier versions
# ids per `$in` when reading or deleting stored documents: SecantusDB's cost per id grows with the
# list (measured per document: 20-30 ids read in 0.14 ms and delete in 0.33 ms, 100 ids in 0.22 / 0.41 ms)
STORED_READ_CHUNK = 25
# The first batches of a run are smaller (FIRST_BATCH, then GROWTH times the last, up to batch_size):
# the server starts writing while the rest of a batch is still read and parsed.
FIRST_BATCH = 100
GROWTH = 4
_DUPLICATE_KEY = 11000
_ILLEGAL_OPERATION = 20  # a standalone mongod refusing transactions

# Indexes every alpha collection carries: lookups by id, and the filters quants use.
ALPHA_INDEXES = [
    pymongo.IndexModel([("id", pymongo.ASCENDING)], name="id", unique=True),
    pymongo.IndexModel([("type", pymongo.ASCENDING)], name="type"),
    # on the parsed UTC dates (the ISO strings with New York offsets don't sort as time)
    pymongo.IndexModel([(f"{DATES_FIELD}.dateCreated", pymongo.ASCENDING)], name="dates_dateCreated"),
    pymongo.IndexModel([(f"{DATES_FIELD}.dateModified", pymongo.ASCENDING)], name="dates_dateModified"),
    pymongo.IndexModel([("status", pymongo.ASCENDING)], name="status"),
    pymongo.IndexModel([("settings.region", pymongo.ASCENDING)], name="region"),
]


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
    quarantined: list[dict] = field(default_factory=list)
    seconds: float = 0.0

    def as_metadata(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "quarantined"} | {
            "files_quarantined": len(self.quarantined)}


@dataclass
class _Pending:
    """Alphas of one collection waiting for a bulk write, and the files they came from."""

    docs: dict[str, tuple[dict, bool]] = field(default_factory=dict)  # id -> (alpha, a key needs escaping)
    files: list[dict] = field(default_factory=list)
    ledgered: set[str] = field(default_factory=set)  # ids read from a file the ledger has seen (maybe stored)


@dataclass
class _Batch:
    """One prepared write: the documents, the ledger entries of its files, what it counts."""

    kind: str
    docs: dict[str, dict]       # alpha id -> document to store (new or changed)
    new: dict[str, dict]        # alpha id -> alpha that was not stored when read (its document is itself)
    replace: list[str]          # ids whose stored document is replaced
    entries: list[dict]
    counts: dict[str, int]


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
            future, self._future, self._batch = self._future, None, None
            self._done(future.result())

    def wait_for(self, kind: str, ids: Iterable[str]) -> None:
        """Wait if the batch in flight writes any of these alphas (so reading them sees the write)."""
        if self._batch is not None and self._batch.kind == kind and not self._batch.docs.keys().isdisjoint(ids):
            self.wait()

    def submit(self, batch: _Batch) -> None:
        self.wait()
        self._batch, self._future = batch, self._pool.submit(self._write, batch)

    def close(self) -> None:
        self._pool.shutdown(wait=True)


def _encoded(document: dict) -> RawBSONDocument:
    """The document as BSON, encoded here (in the thread that prepares a batch) rather than by the
    driver in the writer thread: the server would wait for that encoding (~8% of a first import)."""
    return RawBSONDocument(bson.encode(document))


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def ensure_alpha_indexes(db_regular: Database, db_super: Database, collection: str) -> None:
    for db in (db_regular, db_super):
        db[collection].create_indexes(ALPHA_INDEXES)
    db_regular[LEDGER].create_index([("dir", pymongo.ASCENDING)], name="dir")
    db_regular.drop_collection(_OBSOLETE_LEDGER_INDEX)


def newest_modified(coll) -> datetime | None:
    doc = coll.find_one({f"{DATES_FIELD}.dateModified": {"$ne": None}}, {f"{DATES_FIELD}.dateModified": 1},
                        sort=[(f"{DATES_FIELD}.dateModified", pymongo.DESCENDING)])
    value = doc[DATES_FIELD]["dateModified"] if doc else None
    return value.replace(tzinfo=timezone.utc) if value is not None and value.tzinfo is None else value


def _directory(name: str) -> str:
    return name.rpartition("/")[0]


def _columns(ledger_doc: Mapping, fields: tuple[str, ...]) -> list[list]:
    """The `fields` columns of a ledger document (an earlier version's document is one entry)."""
    if "files" in ledger_doc:
        return [ledger_doc["files"].get(name, []) for name in fields]
    return [[ledger_doc.get(name)] for name in fields]


def _ledger_columns(db_regular: Database, query: Mapping | None, fields: tuple[str, ...]
                    ) -> Iterator[tuple[dict, list[list]]]:
    """(the write's ``mode, imported_at, run_id``, the `fields` columns) of each ledger document
    matching `query`; only those columns travel."""
    projection = {"_id": 0, "mode": 1, "imported_at": 1, "run_id": 1}
    for name in fields:
        projection[f"files.{name}"] = projection[name] = 1
    for doc in db_regular[LEDGER].find(query or {}, projection):
        yield {key: doc.get(key) for key in ("mode", "imported_at", "run_id")}, _columns(doc, fields)


def ledger_entries(db_regular: Database, query: Mapping | None = None,
                   fields: tuple[str, ...] = LEDGER_FIELDS) -> Iterator[dict]:
    """The ledger's file entries (with `fields`, plus ``mode, imported_at, run_id``) of the
    ledger documents matching `query` (on the document: ``dir``, ``run_id``, ``files.<field>``)."""
    for shared, columns in _ledger_columns(db_regular, query, fields):
        for row in zip(*columns):
            yield {**shared, **dict(zip(fields, row))}


def ledgered_files(db_regular: Database, names: Iterable[str]) -> dict[str, set[str]]:
    """For the files of the ledger among `names`' directories: file -> sha256s of its entries that
    imported the alpha (empty: only filtered out so far). One query per STORED_READ_CHUNK
    directories, on the ledger's ``dir`` index, reading three columns."""
    dirs = sorted({_directory(name) for name in names})
    found: dict[str, set[str]] = {}
    for start in range(0, len(dirs), STORED_READ_CHUNK):
        query = {"dir": {"$in": dirs[start:start + STORED_READ_CHUNK]}}
        for _, columns in _ledger_columns(db_regular, query, ("file", "sha256", "documents")):
            for name, sha, documents in zip(*columns):
                shas = found.setdefault(name, set())
                if documents:
                    shas.add(sha)
    return found


def _ledger_documents(entries: list[dict], mode: str, run_id: str | None, now: datetime) -> list[dict]:
    """The ledger documents of one write's file entries: one per landing directory, a column per field."""
    by_dir: dict[str, list[dict]] = {}
    for entry in entries:
        by_dir.setdefault(_directory(entry["file"]), []).append(entry)
    return [{"_id": ObjectId(), "dir": directory, "mode": mode, "imported_at": now, "run_id": run_id,
             "files": {name: [entry[name] for entry in group] for name in LEDGER_FIELDS}}
            for directory, group in by_dir.items()]


def stored_alphas(coll, ids: list[str]) -> dict[str, tuple[dict, bool]]:
    """id -> (stored alpha, whether a stored key is escaped), from the raw BSON (documents.alpha_from_bson)."""
    raw = coll.with_options(codec_options=coll.codec_options.with_options(document_class=RawBSONDocument))
    found: dict[str, tuple[dict, bool]] = {}
    for start in range(0, len(ids), STORED_READ_CHUNK):
        for doc in raw.find({"_id": {"$in": ids[start:start + STORED_READ_CHUNK]}}):
            alpha, escaped = alpha_from_bson(doc.raw, coll.codec_options)
            found[alpha["id"]] = (alpha, escaped)
    return found


def stored_documents(coll, ids: list[str]) -> dict[str, dict]:
    found: dict[str, dict] = {}
    for start in range(0, len(ids), STORED_READ_CHUNK):
        for doc in coll.find({"_id": {"$in": ids[start:start + STORED_READ_CHUNK]}}):
            found[doc["_id"]] = doc
    return found


def import_files(files: Iterable[tuple[str, Path]], *, db_regular: Database, db_super: Database,
                 collection: str = "alphas", mode: str = "incremental",
                 time_range: tuple[datetime, datetime] | None = None, batch_size: int = 1000,
                 array_keys: Mapping[str, str | None] | None = None, quarantine_root: Path | None = None,
                 landing_root: Path | None = None, run_id: str | None = None,
                 on_progress: Callable[[ImportStats], None] | None = None) -> ImportStats:
    """Import alpha files ((name in the ledger, path) pairs) and return what happened.

    `on_progress(stats)` is called after every bulk write (a batch of documents and their ledger
    entries), for progress reports on long imports."""
    if mode not in IMPORT_MODES:
        raise ValueError(f"unknown import mode {mode!r}: one of {', '.join(IMPORT_MODES)}")
    if mode == "time_range" and not time_range:
        raise ValueError("import mode time_range needs time_range=(start, end)")
    started = time.monotonic()
    stats = ImportStats()
    targets = {"regular": db_regular[collection], "super": db_super[collection]}
    ledger = db_regular[LEDGER]
    files = list(files)
    # A file the ledger has never seen holds an alpha that is almost always new (its first fetch):
    # it is inserted without reading the collection first, and merged after all if the insert
    # finds it stored (duplicate key, see merge_late). That saves the first import a read per alpha.
    ledgered = ledgered_files(db_regular, (name for name, _ in files)) if mode != "rebuild" else {}
    since = {kind: newest_modified(coll) for kind, coll in targets.items()} if mode == "smart_merge" else {}
    pending = {kind: _Pending() for kind in targets}
    limits = {kind: min(batch_size, FIRST_BATCH) for kind in targets}
    transactions = [True]  # until the server says it has none

    def reject(name: str, path: Path, reason: str) -> None:
        stats.quarantined.append({"file": name, "reason": reason})
        if quarantine_root is not None:
            quarantine(path, reason, quarantine_root, relative_to=landing_root)

    def prepare(kind: str) -> _Batch:
        """Read the stored documents of the pending alphas and merge (in the caller's thread)."""
        batch, pending[kind] = pending[kind], _Pending()
        limits[kind] = min(batch_size, limits[kind] * GROWTH)
        ids = [alpha_id for alpha_id in batch.docs if alpha_id in batch.ledgered]
        old: dict[str, tuple[dict, bool]] = {}
        if ids:
            writer.wait_for(kind, ids)
            old = stored_alphas(targets[kind], ids)
        counts = {"inserted": 0, "merged": 0, "replaced": 0, "unchanged": 0}
        docs, new, replace = {}, {}, []
        for alpha_id, (alpha, escape) in batch.docs.items():
            stored = old.get(alpha_id)
            # every alpha was validated when read: the documents need no second validation, and
            # a merged object has a key to escape only if the stored or the new one had one
            if mode == "rebuild":
                docs[alpha_id] = _encoded(to_document(alpha, validate=False, escape=escape))
                replace.append(alpha_id)
                counts["replaced"] += 1
            elif stored is None:  # merged with nothing, an alpha is itself
                docs[alpha_id] = _encoded(to_document(alpha, validate=False, escape=escape))
                new[alpha_id] = alpha
                counts["inserted"] += 1
            else:
                # shared subtrees: nothing here mutates the alpha, the stored one or the merge
                merged, changed = resolve_for_mode(stored[0], alpha, mode, array_keys, share=True)
                if not changed:
                    counts["unchanged"] += 1
                    continue
                docs[alpha_id] = _encoded(to_document(merged, validate=False, escape=escape or stored[1]))
                replace.append(alpha_id)
                counts["merged"] += 1
        return _Batch(kind, docs, new, replace, batch.files, counts)

    def write(batch: _Batch) -> dict:
        """The documents, then the ledger entries (in the writer thread).

        A batch that replaces documents is one transaction: each replaced document is deleted and
        inserted again (SecantusDB: ~25% less work than a ReplaceOne, which plans and runs an update
        per document), and the ledger entries commit with the documents. A batch of new alphas only
        is inserted outside a transaction (a transaction adds ~13% to an insert), then its ledger
        entries. Without transactions: InsertOne / ReplaceOne, then the entries."""
        counts = dict(batch.counts)
        ledger_docs = _ledger_documents(batch.entries, mode, run_id, datetime.now(timezone.utc))
        while batch.replace and transactions[0]:
            try:
                if in_transaction(lambda session: write_batch(batch, ledger_docs, session)):
                    return counts
            except BulkWriteError as error:
                # an alpha inserted unread, or stored by someone else since we read it: the whole
                # batch was rolled back; merge into what is stored now and write the batch again
                merge_late(batch, taken_ids(batch, error), counts)
        coll = targets[batch.kind]
        order = list(batch.docs)
        try:
            if batch.replace:  # without transactions
                coll.bulk_write([pymongo.ReplaceOne({"_id": i}, batch.docs[i], upsert=True) if i in batch.replace
                                 else pymongo.InsertOne(batch.docs[i]) for i in order], ordered=False)
            elif order:
                coll.insert_many([batch.docs[i] for i in order], ordered=False)
        except BulkWriteError as error:
            ids = taken_ids(batch, error, order)
            merge_late(batch, ids, counts)
            late = [pymongo.ReplaceOne({"_id": i}, batch.docs[i], upsert=True) for i in ids if i in batch.docs]
            if late:
                coll.bulk_write(late, ordered=False)
        record(ledger_docs, None)
        return counts

    def in_transaction(callback: Callable) -> bool:
        """callback(session) in a transaction: True once committed; False if the server has no
        transactions (IllegalOperation: nothing was written, and `transactions` remembers it)."""
        try:
            with db_regular.client.start_session() as session:
                session.with_transaction(callback)
            return True
        except OperationFailure as error:
            if error.code != _ILLEGAL_OPERATION:
                raise
            transactions[0] = False
            return False

    def write_batch(batch: _Batch, ledger_docs: list[dict], session) -> None:
        coll = targets[batch.kind]
        if batch.replace:  # one round trip: small `$in` lists, as statements of one delete command
            coll.bulk_write([pymongo.DeleteMany({"_id": {"$in": batch.replace[start:start + STORED_READ_CHUNK]}})
                             for start in range(0, len(batch.replace), STORED_READ_CHUNK)],
                            ordered=False, session=session)
        if batch.docs:
            coll.insert_many(list(batch.docs.values()), ordered=False, session=session)
        record(ledger_docs, session)

    def record(ledger_docs: list[dict], session) -> None:
        # each ledger document is written whole or not at all: an interruption between two of them
        # only makes the next incremental run merge the files of the missing one again (no change)
        if ledger_docs:
            ledger.insert_many(ledger_docs, ordered=False, session=session)

    def taken_ids(batch: _Batch, error: BulkWriteError, order: list[str] | None = None) -> list[str]:
        """The new alphas a duplicate key error says are stored already (re-raised for any other error)."""
        order = order or list(batch.docs)
        errors = error.details.get("writeErrors", [])
        ids = [order[e["index"]] for e in errors if e.get("code") == _DUPLICATE_KEY and e["index"] < len(order)]
        if not ids or len(ids) != len(errors) or any(i not in batch.new for i in ids):
            raise error
        return ids

    def merge_late(batch: _Batch, ids: list[str], counts: dict) -> None:
        old = stored_documents(targets[batch.kind], ids)
        for alpha_id in ids:
            doc, changed = merged_document(old.get(alpha_id), batch.new.pop(alpha_id), mode, array_keys,
                                           validate=False)
            counts["inserted"] -= 1
            if changed:
                counts["merged"] += 1
                batch.docs[alpha_id] = doc
                batch.replace.append(alpha_id)
            else:
                counts["unchanged"] += 1
                del batch.docs[alpha_id]

    def done(counts: dict) -> None:
        for key, value in counts.items():
            setattr(stats, key, getattr(stats, key) + value)
        if on_progress is not None:
            on_progress(stats)

    writer = _Writer(write, done)
    # JSON trees have no reference cycles: most of the parse time would be the cyclic GC's
    with gc_paused():
        try:
            for name, path in files:
                stats.files_seen += 1
                try:
                    data = read_file_bytes(path)
                except OSError as error:
                    reject(name, path, f"unreadable: {error}")
                    continue
                sha = sha256_bytes(data)
                if mode == "incremental" and sha in ledgered.get(name, ()):
                    stats.files_skipped += 1
                    continue
                alpha, problem = parse_alpha_bytes(data)
                problems, escape = ([problem], False) if problem else inspect_alpha(alpha)
                if problems:
                    reject(name, path, "; ".join(problems))
                    continue
                kind = collection_for(alpha)
                keep = True
                if mode == "time_range":
                    modified = date_sidecar(alpha).get("dateModified")
                    keep = modified is not None and time_range[0] <= modified < time_range[1]
                elif mode == "smart_merge" and since.get(kind) is not None:
                    modified = date_sidecar(alpha).get("dateModified")
                    keep = modified is not None and modified > since[kind]
                batch = pending[kind]
                if keep:
                    batch.docs[alpha["id"]] = (alpha, escape)  # the same alpha twice in one batch: the later file wins
                    if name in ledgered:
                        batch.ledgered.add(alpha["id"])
                else:
                    stats.alphas_filtered_out += 1
                batch.files.append({"file": name, "size": len(data), "sha256": sha, "documents": int(keep),
                                    "alpha_id": alpha["id"], "type": alpha["type"],
                                    "month": month_of(alpha["dateCreated"])})
                stats.files_imported += keep
                if len(batch.docs) >= limits[kind] or len(batch.files) >= 4 * limits[kind]:
                    writer.submit(prepare(kind))
            for kind, batch in pending.items():
                if batch.docs or batch.files:
                    writer.submit(prepare(kind))
            writer.wait()
        finally:
            writer.close()
    stats.seconds = round(time.monotonic() - started, 3)
    return stats


def collection_digest(coll) -> str:
    """sha256 over every document in _id order (tests compare interrupted and clean imports)."""
    digest = hashlib.sha256()
    for doc in coll.find({}, sort=[("_id", pymongo.ASCENDING)]):
        digest.update(repr(sorted(doc.items())).encode())
    return digest.hexdigest()

