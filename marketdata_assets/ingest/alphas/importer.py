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

The same writes serve a sharded cluster (docs/deploy.md, "MongoDB"): every upsert and delete filter
names the shard key ``id`` next to ``_id`` (`by_ids`: mongos refuses an upsert without it), every
document holds it, and every write and commit waits for ``w: majority`` unless MONGODB_URI names a
``w`` of its own (`with_majority`). Reads by ``_id`` alone stay correct there (mongos asks every shard).

Batches are written by one background thread, in order, while the next batch is read, parsed and
merged (the server is another process: its work and ours overlap); a batch whose alphas are still
being written waits for that write before reading them. The first batches of a run are small, so
the server starts early. `_Import` is the importing thread's side (read, check, queue, prepare a
batch, quarantine, count), `_BatchStore` the writer's (a batch and its ledger entries, in a
transaction or not).

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

One bad file never stops an import: whatever is wrong with a file (unreadable, not a regular file,
a symbolic link out of the landing area, bad JSON, a key twice with different values, a name that
is not its alpha's id, fields of the wrong JSON type, a document over MongoDB's 16 MB, anything the
server refuses for that one document) quarantines it with the reason and the others load. What is
accepted but unusual is flagged (``ImportStats.flagged``: a byte order mark, a key twice with the
same value) or counted (``files_keys_escaped``). A store that goes away fails the import at once
with StoreUnavailable (MongoDB, its address, what to do), never after the driver's retry loops:
transactions are retried only on a transient error from a live server.

A write conflict means a transaction is still open on the server: importers of one partition
refuse to run together (import_lock), so it is one a killed importer left. The server ends it when
its lifetime runs out (transactionLifetimeLimitSeconds, read from the server; MongoDB's 60 s when it
does not say); the batch is tried again with a growing pause until then, with one line saying what
it waits for, and past that ImportBlocked names the server and the remedy. After such a crash
(`after_crash`) every batch goes through a transaction: a plain insert of an alpha the dead
transaction wrote would wait on the server without a word (SecantusDB: until a transaction statement
comes by after the lifetime). The ledger never claims a file before its documents are committed:
its entries commit in the batch's transaction, or are written after the batch's plain inserts.

Over 500 lines: the import's batch store, conflict wait and ledger are one transaction story; each
class is one step of it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
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
from pymongo.errors import (
    BulkWriteError,
    ConnectionFailure,
    DocumentTooLarge,
    DuplicateKeyError,
    OperationFailure,
    PyMongoError,
    WriteError,
)
from pymongo.write_concern import WriteConcern

from marketdata_assets.core import metrics
from marketdata_assets.core.errors import StoreUnavailable
from marketdata_assets.core.files import quarantine
from marketdata_assets.datasets.alpha_files import (
    UnreadableFile,
    gc_paused,
    month_of,
    parse_alpha_file,
    read_landing_file,
)
from marketdata_assets.stores.mongo.documents import (
    DATES_FIELD,
    alpha_from_bson,
    collection_for,
    date_sidecar,
    inspect_alpha,
    merged_document,
    to_document,
)
from marketdata_assets.stores.mongo.merge import resolve_for_mode

IMPORT_MODES = ("incremental", "overwrite", "rebuild", "time_range", "smart_merge")
LEDGER = "import_ledger"
# What the ledger keeps per file (with the mode, time and run of the write that committed it).
LEDGER_FIELDS = ("file", "size", "sha256", "documents", "alpha_id", "type", "month")
_OBSOLETE_LEDGER_INDEX = "import_ledger_index"  # written by earlier versions
WRITTEN_COUNTS = ("inserted", "merged", "replaced")  # the counts of a batch whose documents were written
# ids per `$in` when reading or deleting stored documents: SecantusDB's cost per id grows with the
# list (measured per document: 20-30 ids read in 0.14 ms and delete in 0.33 ms, 100 ids in 0.22 / 0.41 ms)
STORED_READ_CHUNK = 25
# The first batches of a run are smaller (FIRST_BATCH, then GROWTH times the last, up to batch_size):
# the server starts writing while the rest of a batch is still read and parsed.
FIRST_BATCH = 100
GROWTH = 4
_DUPLICATE_KEY = 11000
_ILLEGAL_OPERATION = 20  # a standalone mongod refusing transactions
# MongoDB's limit for one document (its BSON), checked on the encoded document before it is sent
MAX_DOCUMENT_BYTES = 16 * 1024 * 1024
# A transaction that fails with a transient error from a live server (a write conflict) is tried
# again after a pause growing from CONFLICT_FIRST_PAUSE_S to CONFLICT_MAX_PAUSE_S, for as long as the
# server keeps a transaction open (its transaction lifetime, read from the server; MongoDB's default
# when it does not say) plus CONFLICT_GRACE_S; a lost connection is raised at once (the driver's
# with_transaction retried for 120 s, also when the server was gone, which hung imports).
DEFAULT_TRANSACTION_LIFETIME_S = 60.0
CONFLICT_GRACE_S = 5.0
CONFLICT_FIRST_PAUSE_S, CONFLICT_MAX_PAUSE_S = 0.1, 2.0
_log = logging.getLogger(__name__)
_ID_NAME = re.compile(r"^[A-Za-z0-9]{7,8}$")
STORE_HINT = ("Check that the server is running and reachable (the local stack: `make stack-up`), then run "
              "the import again: the files already imported are skipped (ledger import_ledger)")

# The alpha collections' shard key on a sharded cluster (deploy/mongodb/shard-alphas.js): every upsert
# and delete filter names it (`by_ids`), as mongos requires of an upsert; `_id` and `id` hold the same id.
SHARD_KEY = ("id",)
# What every write of the importer waits for when MONGODB_URI names no `w`: a majority of the replica
# set (of each shard's set on a sharded cluster), so a committed batch survives a failover.
MAJORITY = WriteConcern(w="majority")

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
    files_keys_escaped: int = 0  # alphas with a key holding `$`, `.` or NUL: stored escaped (documents.py)
    quarantined: list[dict] = field(default_factory=list)  # {file, reason}: moved out of the landing area
    flagged: list[dict] = field(default_factory=list)  # {file, flag}: imported, but something was unusual
    seconds: float = 0.0
    seconds_waiting_for_conflicts: float = 0.0  # for a transaction left open on the server (a killed import)

    def as_metadata(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in ("quarantined", "flagged")} | {
            "files_quarantined": len(self.quarantined), "files_flagged": len(self.flagged),
            "documents_written": self.inserted + self.merged + self.replaced}


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
    docs: dict[str, dict]       # alpha id -> document to store (new or changed)
    new: dict[str, dict]        # alpha id -> alpha that was not stored when read (its document is itself)
    replace: list[str]          # ids whose stored document is replaced
    entries: list[dict]
    counts: dict[str, int]
    sources: dict[str, tuple[str, Path]]  # alpha id -> (name, path) of the file it came from
    counted: dict[str, str]     # alpha id -> the count it is in (inserted, merged, replaced)


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
            metrics.loaded(f"{batch.alpha_type}_alphas", "mongodb", sum(counts.get(k, 0) for k in WRITTEN_COUNTS))

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


def ensure_alpha_indexes(db_regular: Database, db_super: Database, collection: str) -> None:
    for db in (db_regular, db_super):
        db[collection].create_indexes(ALPHA_INDEXES)
    db_regular[LEDGER].create_index([("dir", pymongo.ASCENDING)], name="dir")
    db_regular.drop_collection(_OBSOLETE_LEDGER_INDEX)


def by_ids(ids: str | list[str]) -> dict:
    """The filter of the alpha(s) with these ids, naming the shard key: ``{"_id": id, "id": id}`` (a list:
    both ``$in`` it). mongos refuses an upsert whose filter lacks the full shard key, and routes a delete
    that has it to the shards that hold the ids rather than to every shard; on a replica set the two
    fields are the same condition twice (``_id`` is the alpha's ``id``: stores.mongo.documents)."""
    value = {"$in": ids} if isinstance(ids, list) else ids
    return {"_id": value, **{name: value for name in SHARD_KEY}}


def with_majority(coll):
    """The collection writing with ``w: majority`` unless the client's URI names a ``w`` of its own."""
    return coll if "w" in coll.write_concern.document else coll.with_options(write_concern=MAJORITY)


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


def _store_address(client: pymongo.MongoClient) -> str:
    """host:port of the client's servers, from what it knows (no I/O, no credentials)."""
    try:
        servers = client.topology_description.server_descriptions()
        return ",".join(f"{host}:{port}" for host, port in servers) or "unknown address"
    except Exception:  # noqa: BLE001 - only a name for a message
        return "unknown address"


def store_unavailable(client: pymongo.MongoClient, error: PyMongoError) -> StoreUnavailable:
    """The error an import raises when MongoDB goes away: store, address, the driver's reason, a hint."""
    reason = f"{type(error).__name__}: {str(error).split(', Timeout')[0].split(' (configured timeouts')[0][:300]}"
    return StoreUnavailable("MongoDB", _store_address(client), reason, STORE_HINT)


class ImportBlocked(RuntimeError):
    """A batch still conflicts with a transaction open on the server after waiting longer than the
    server keeps one: the message names the server (host:port) and the remedy."""


def transaction_lifetime(client: pymongo.MongoClient) -> tuple[float, str]:
    """(seconds, where that comes from) a transaction may stay open on the server: its
    ``transactionLifetimeLimitSeconds`` parameter, or MongoDB's default (60 s) when the server does not
    report it (SecantusDB does not) or refuses to say (no privilege)."""
    try:
        value = client.admin.command({"getParameter": 1, "transactionLifetimeLimitSeconds": 1}).get(
            "transactionLifetimeLimitSeconds")
    except OperationFailure:
        value = None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value), "the server's transactionLifetimeLimitSeconds"
    return DEFAULT_TRANSACTION_LIFETIME_S, ("MongoDB's default transactionLifetimeLimitSeconds: the server does "
                                            "not report its own")


@dataclass
class _ConflictWait:
    """Waits out write conflicts with a transaction open on the server, with a growing pause, for up
    to `limit_s` (None: the server's transaction lifetime + CONFLICT_GRACE_S) from the first conflict
    of a batch; says once what it waits for, and raises ImportBlocked past the limit."""

    client: pymongo.MongoClient
    limit_s: float | None
    on_wait: Callable[[str], None]
    waited_s: float = 0.0  # over the whole import
    _started: float | None = None
    _pause_s: float = CONFLICT_FIRST_PAUSE_S
    _lifetime: tuple[float, str] | None = None
    _announced: bool = False

    def pause(self, what: str, error: OperationFailure) -> None:
        now = time.monotonic()
        if self._started is None:
            self._started, self._pause_s = now, CONFLICT_FIRST_PAUSE_S
        if self._lifetime is None:
            self._lifetime = transaction_lifetime(self.client)
        limit = self.limit_s if self.limit_s is not None else self._lifetime[0] + CONFLICT_GRACE_S
        seconds, source = self._lifetime
        if not self._announced:
            self._announced = True
            code = (error.details or {}).get("codeName") or error.code
            self.on_wait(f"MongoDB at {_store_address(self.client)}: writing {what} conflicts with a transaction "
                         f"still open on the server ({code}); importers of one partition refuse to run together, "
                         f"so it is one a killed import left. Waiting up to {limit:.0f} s for the server to end it "
                         f"(transactions live {seconds:.0f} s: {source})")
        if now - self._started >= limit:
            raise ImportBlocked(
                f"MongoDB at {_store_address(self.client)}: writing {what} still conflicts with a transaction "
                f"open on the server after {now - self._started:.0f} s of waiting (transactions live "
                f"{seconds:.0f} s: {source}). Remedy: end the transaction - run db.adminCommand({{killAllSessions: "
                "[]}) on that server, or restart it - then run the import again; the files already imported "
                "are skipped (ledger import_ledger)")
        time.sleep(min(self._pause_s, max(0.0, self._started + limit - now)))
        self._pause_s = min(2 * self._pause_s, CONFLICT_MAX_PAUSE_S)

    def ended(self) -> None:
        """The batch committed: the time it waited counts, the next conflict starts a new wait."""
        if self._started is not None:
            self.waited_s += time.monotonic() - self._started
            self._started = None


def import_files(files: Iterable[tuple[str, Path]], *, db_regular: Database, db_super: Database,
                 collection: str = "alphas", mode: str = "incremental",
                 time_range: tuple[datetime, datetime] | None = None, batch_size: int = 1000,
                 array_keys: Mapping[str, str | None] | None = None, quarantine_root: Path | None = None,
                 landing_root: Path | None = None, run_id: str | None = None,
                 on_progress: Callable[[ImportStats], None] | None = None, after_crash: bool = False,
                 conflict_wait_s: float | None = None, on_wait: Callable[[str], None] | None = None
                 ) -> ImportStats:
    """Import alpha files ((name in the ledger, path) pairs) and return what happened.

    `on_progress(stats)` is called after every bulk write (a batch of documents and their ledger
    entries), for progress reports on long imports. Bad files are quarantined (with
    `quarantine_root`; always listed in ``stats.quarantined``) and the others load; a lost
    connection to MongoDB raises StoreUnavailable within the driver's server selection timeout.

    A write conflict with a transaction left open on the server is waited out (`on_wait` gets one
    line saying so; default: this module's logger) for up to `conflict_wait_s` (None: the server's
    transaction lifetime + CONFLICT_GRACE_S), then ImportBlocked. `after_crash` (an importer of
    these partitions died, `import_lock` says): every batch is written in a transaction, so a
    conflict with what the dead one left surfaces at once; a plain insert would wait on the server
    for as long as that transaction lives, silently (on SecantusDB until a transaction statement
    reaps it)."""
    try:
        return _import_files(files, db_regular=db_regular, db_super=db_super, collection=collection, mode=mode,
                             time_range=time_range, batch_size=batch_size, array_keys=array_keys,
                             quarantine_root=quarantine_root, landing_root=landing_root, run_id=run_id,
                             on_progress=on_progress, after_crash=after_crash,
                             conflicts=_ConflictWait(db_regular.client, conflict_wait_s, on_wait or _log.warning))
    except ConnectionFailure as error:  # also ServerSelectionTimeoutError, AutoReconnect, NetworkTimeout
        raise store_unavailable(db_regular.client, error) from error


def _import_files(files: Iterable[tuple[str, Path]], *, db_regular: Database, db_super: Database,
                  collection: str, mode: str, time_range: tuple[datetime, datetime] | None, batch_size: int,
                  array_keys: Mapping[str, str | None] | None, quarantine_root: Path | None,
                  landing_root: Path | None, run_id: str | None,
                  on_progress: Callable[[ImportStats], None] | None, after_crash: bool,
                  conflicts: _ConflictWait) -> ImportStats:
    if mode not in IMPORT_MODES:
        raise ValueError(f"unknown import mode {mode!r}: one of {', '.join(IMPORT_MODES)}")
    if mode == "time_range" and not time_range:
        raise ValueError("import mode time_range needs time_range=(start, end)")
    started = time.monotonic()
    targets = {"regular": with_majority(db_regular[collection]), "super": with_majority(db_super[collection])}
    store = _BatchStore(db_regular.client, targets, with_majority(db_regular[LEDGER]), mode=mode, array_keys=array_keys, run_id=run_id,
                        after_crash=after_crash, conflicts=conflicts)
    files = list(files)
    run = _Import(store, files, db_regular=db_regular, mode=mode, time_range=time_range, batch_size=batch_size,
                  quarantine_root=quarantine_root, landing_root=landing_root, on_progress=on_progress)
    run.load(files)
    stats = run.stats
    stats.seconds = round(time.monotonic() - started, 3)
    stats.seconds_waiting_for_conflicts = round(conflicts.waited_s, 3)
    return stats


class _Import:
    """One import, in the importing thread: reads, checks and queues each file, prepares batches
    (reads the stored alphas, merges) for the writer thread (`_BatchStore.write`), quarantines bad
    files and keeps the statistics."""

    def __init__(self, store: _BatchStore, files: list[tuple[str, Path]], *, db_regular: Database, mode: str,
                 time_range: tuple[datetime, datetime] | None, batch_size: int, quarantine_root: Path | None,
                 landing_root: Path | None, on_progress: Callable[[ImportStats], None] | None):
        self.store, self.mode, self.time_range, self.batch_size = store, mode, time_range, batch_size
        self.quarantine_root, self.landing_root, self.on_progress = quarantine_root, landing_root, on_progress
        self.stats = ImportStats()
        targets = store.targets
        # A file the ledger has never seen holds an alpha that is almost always new (its first fetch):
        # it is inserted without reading the collection first, and merged after all if the insert
        # finds it stored (duplicate key, see _BatchStore.merge_late). That saves the first import a
        # read per alpha.
        self.ledgered = ledgered_files(db_regular, (name for name, _ in files)) if mode != "rebuild" else {}
        self.since = {t: newest_modified(coll) for t, coll in targets.items()} if mode == "smart_merge" else {}
        self.pending = {alpha_type: _Pending() for alpha_type in targets}
        self.limits = {alpha_type: min(batch_size, FIRST_BATCH) for alpha_type in targets}
        self.real_root = os.path.realpath(landing_root) if landing_root is not None else None
        self.writer = _Writer(store.write, self.done)

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
                    if alpha_type is not None and (len(pending[alpha_type].docs) >= limits[alpha_type]
                                             or len(pending[alpha_type].files) >= 4 * limits[alpha_type]):
                        writer.submit(self.prepare(alpha_type))
                for alpha_type, batch in pending.items():
                    if batch.docs or batch.files:
                        writer.submit(self.prepare(alpha_type))
                writer.wait()
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
            return None
        alpha, problem, notes = parse_alpha_file(data)
        problems, escape = ([problem], False) if problem else inspect_alpha(alpha)
        if not problems and (wrong_name := _name_problem(name, alpha["id"])):
            problems = [wrong_name]
        if problems:
            self.reject(name, path, "; ".join(problems))
            return None
        alpha_type = collection_for(alpha)
        keep = self.keeps(alpha, alpha_type)
        entry = {"file": name, "size": len(data), "sha256": sha, "documents": int(keep), "alpha_id": alpha["id"],
                 "type": alpha["type"], "month": month_of(alpha["dateCreated"])}
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

    def queue(self, alpha_type: str, name: str, path: Path, alpha: dict, escape: bool, keep: bool, entry: dict,
              notes: list[str]) -> None:
        stats, batch = self.stats, self.pending[alpha_type]
        if keep:
            batch.docs[alpha["id"]] = (alpha, escape)  # the same alpha twice in one batch: the later file wins
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
            old = stored_alphas(self.store.targets[alpha_type], ids)
        batch = _Batch(alpha_type, {}, {}, [], pending.files, {"inserted": 0, "merged": 0, "replaced": 0,
                                                               "unchanged": 0},
                       pending.sources, {})
        for alpha_id, (size, count) in self.merge(pending, old, batch).items():
            name, path = pending.sources[alpha_id]
            what = "merged with the stored alpha, its document would be" if count == "merged" else "its document is"
            self.reject(name, path, f"alpha {alpha_id}: {what} {size:,} bytes, over MongoDB's limit of "
                                    f"{MAX_DOCUMENT_BYTES:,} bytes per document (file {name})")
            batch.entries = [entry for entry in batch.entries if entry["file"] != name]
            self.stats.files_imported -= 1
        return batch

    def merge(self, pending: _Pending, old: dict[str, tuple[dict, bool]], batch: _Batch) -> dict[str, tuple]:
        """Fill `batch` with the documents of the pending alphas merged with the stored ones (`old`);
        the alphas whose document is too large: id -> (its size, the count it would be in)."""
        mode, array_keys = self.mode, self.store.array_keys
        docs, new, replace, counted, counts = batch.docs, batch.new, batch.replace, batch.counted, batch.counts
        too_large = {}
        for alpha_id, (alpha, escape) in pending.docs.items():
            stored = old.get(alpha_id)
            # every alpha was validated when read: the documents need no second validation, and
            # a merged object has a key to escape only if the stored or the new one had one
            if mode == "rebuild" or stored is None:  # merged with nothing, an alpha is itself
                doc, count = _encoded(to_document(alpha, validate=False, escape=escape)), \
                    "replaced" if mode == "rebuild" else "inserted"
            else:
                # shared subtrees: nothing here mutates the alpha, the stored one or the merge
                merged, changed = resolve_for_mode(stored[0], alpha, mode, array_keys, share=True)
                if not changed:
                    counts["unchanged"] += 1
                    continue
                doc, count = _encoded(to_document(merged, validate=False, escape=escape or stored[1])), "merged"
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
        for key, value in counts.items():
            setattr(stats, key, getattr(stats, key) + value)
        if self.on_progress is not None:
            self.on_progress(stats)


class _BatchStore:
    """Writes prepared batches and their ledger entries (in the writer thread): in a transaction,
    waiting out write conflicts, or plainly; knows whether the server has transactions."""

    def __init__(self, client: pymongo.MongoClient, targets: dict, ledger, *, mode: str,
                 array_keys: Mapping[str, str | None] | None, run_id: str | None, after_crash: bool,
                 conflicts: _ConflictWait):
        self.client, self.targets, self.ledger = client, targets, ledger
        self.mode, self.array_keys, self.run_id = mode, array_keys, run_id
        self.after_crash, self.conflicts = after_crash, conflicts
        self.transactions = True  # until the server says it has none

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
        while (batch.replace or self.after_crash) and self.transactions:
            try:
                if self.in_transaction(lambda session: self.write_batch(batch, session), what):
                    return counts
            except BulkWriteError as error:
                # the whole batch was rolled back. An alpha inserted unread, or stored by someone else
                # since we read it: merge into what is stored now. A document the server refused:
                # out of the batch. Then the batch is written again.
                self.settle(batch, error, list(batch.docs), counts)
            except DocumentTooLarge:
                return self.write_each(batch, counts)
        return self.write_plain(batch, counts)

    def write_plain(self, batch: _Batch, counts: dict) -> dict:
        """The batch outside a transaction (new alphas only, or a server without transactions),
        then its ledger entries."""
        coll = self.targets[batch.alpha_type]
        order = list(batch.docs)
        try:
            if batch.replace:  # without transactions
                coll.bulk_write([pymongo.ReplaceOne(by_ids(i), batch.docs[i], upsert=True) if i in batch.replace
                                 else pymongo.InsertOne(batch.docs[i]) for i in order], ordered=False)
            elif order:
                coll.insert_many([batch.docs[i] for i in order], ordered=False)
        except DocumentTooLarge:  # some of the batch may be written: each document again, on its own
            return self.write_each(batch, counts)
        except BulkWriteError as error:  # unordered: every document without an error is written
            ids = self.settle(batch, error, order, counts)
            late = [pymongo.ReplaceOne(by_ids(i), batch.docs[i], upsert=True) for i in ids if i in batch.docs]
            if late:
                coll.bulk_write(late, ordered=False)
        self.record(batch, None)
        return counts

    def write_each(self, batch: _Batch, counts: dict) -> dict:
        """The batch one document at a time (no transaction), then its ledger entries: the
        documents the server or the driver refuse are dropped, the others written. (A new alpha the
        failed batch had written already counts as unchanged rather than inserted.)"""
        coll = self.targets[batch.alpha_type]
        for alpha_id in list(batch.docs):
            try:
                if alpha_id in batch.new:
                    try:
                        coll.insert_one(batch.docs[alpha_id])
                        continue
                    except DuplicateKeyError:  # stored after all (also by the failed batch): merge
                        self.merge_late(batch, [alpha_id], counts)
                        if alpha_id not in batch.docs:
                            continue
                coll.replace_one(by_ids(alpha_id), batch.docs[alpha_id], upsert=True)
            except (DocumentTooLarge, WriteError) as error:
                self.drop(batch, alpha_id, str(error).split(", full error")[0], counts)
        self.record(batch, None)
        return counts

    def settle(self, batch: _Batch, error: BulkWriteError, order: list[str], counts: dict) -> list[str]:
        """After a bulk write's errors: the documents the server refused are dropped, the new alphas
        it says are stored already merged into what is stored (merge_late); those alphas' ids."""
        taken, refused = self.sort_errors(batch, error, order)
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

    def in_transaction(self, callback: Callable, what: str) -> bool:
        """callback(session) in a transaction: True once committed; False if the server has no
        transactions (IllegalOperation: nothing was written, and `transactions` remembers it).
        A transient error from a live server (a write conflict with a transaction still open) is
        waited out (`conflicts`); a lost connection is raised at once (no 120 s of retries)."""
        with self.client.start_session() as session:
            while True:
                session.start_transaction(write_concern=self.ledger.write_concern)
                try:
                    callback(session)
                    session.commit_transaction()
                    self.conflicts.ended()
                    return True
                except ConnectionFailure:
                    raise  # ending the session aborts what the server still holds
                except OperationFailure as error:
                    self.abort(session)
                    if error.code == _ILLEGAL_OPERATION:
                        self.transactions = False
                        return False
                    if not error.has_error_label("TransientTransactionError"):
                        raise
                    self.conflicts.pause(what, error)
                except BaseException:
                    self.abort(session)
                    raise

    @staticmethod
    def abort(session) -> None:
        if session.in_transaction:
            session.abort_transaction()  # errors are ignored by the driver

    def write_batch(self, batch: _Batch, session) -> None:
        coll = self.targets[batch.alpha_type]
        if batch.replace:  # one round trip: small `$in` lists, as statements of one delete command
            coll.bulk_write([pymongo.DeleteMany(by_ids(batch.replace[start:start + STORED_READ_CHUNK]))
                             for start in range(0, len(batch.replace), STORED_READ_CHUNK)],
                            ordered=False, session=session)
        if batch.docs:
            coll.insert_many(list(batch.docs.values()), ordered=False, session=session)
        self.record(batch, session)

    def record(self, batch: _Batch, session) -> None:
        """The batch's ledger entries (in its transaction with `session`)."""
        # each ledger document is written whole or not at all: an interruption between two of them
        # only makes the next incremental run merge the files of the missing one again (no change)
        ledger_docs = _ledger_documents(batch.entries, self.mode, self.run_id, datetime.now(timezone.utc))
        if ledger_docs:
            self.ledger.insert_many(ledger_docs, ordered=False, session=session)

    @staticmethod
    def sort_errors(batch: _Batch, error: BulkWriteError, order: list[str]) -> tuple[list[str], dict[str, str]]:
        """(the new alphas a duplicate key error says are stored already, {alpha id: the server's
        message} of the documents it refused); the error itself when it is about something else."""
        errors = error.details.get("writeErrors", [])
        taken, refused = [], {}
        if not errors or error.details.get("writeConcernErrors"):
            raise error
        for item in errors:
            index = item.get("index", -1)
            if not 0 <= index < len(order):
                raise error
            if item.get("code") == _DUPLICATE_KEY:
                if order[index] not in batch.new:
                    raise error
                taken.append(order[index])
            else:
                refused[order[index]] = f"{item.get('errmsg', 'refused')} (code {item.get('code')})"
        return taken, refused

    def merge_late(self, batch: _Batch, ids: list[str], counts: dict) -> None:
        """New alphas found stored after all (duplicate key): merged into what is stored now."""
        old = stored_documents(self.targets[batch.alpha_type], ids)
        for alpha_id in ids:
            doc, changed = merged_document(old.get(alpha_id), batch.new.pop(alpha_id), self.mode, self.array_keys,
                                           validate=False)
            counts["inserted"] -= 1
            if changed:
                counts["merged"] += 1
                batch.docs[alpha_id] = doc
                batch.replace.append(alpha_id)
                batch.counted[alpha_id] = "merged"
            else:
                counts["unchanged"] += 1
                del batch.docs[alpha_id]
                del batch.counted[alpha_id]


def collection_digest(coll) -> str:
    """sha256 over every document in _id order (tests compare interrupted and clean imports)."""
    digest = hashlib.sha256()
    for doc in coll.find({}, sort=[("_id", pymongo.ASCENDING)]):
        digest.update(repr(sorted(doc.items())).encode())
    return digest.hexdigest()

