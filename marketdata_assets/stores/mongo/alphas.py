"""The alpha store in MongoDB: the collections' indexes, the import ledger, and how a batch is written.

Writes name the shard key and wait for a majority; the ledger keeps a document per landing directory
and write, a column per field; a batch commits with its ledger entries (in one transaction where the
server has them), conflicts with a killed importer's transaction are waited out, a lost server fails.
Collections, ledger layout and figures, writes and retries: docs/alphas.md, "The alpha store".
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import pymongo
from bson import ObjectId
from bson.raw_bson import RawBSONDocument
from pymongo.database import Database
from pymongo.errors import BulkWriteError, ConnectionFailure, OperationFailure, PyMongoError
from pymongo.write_concern import WriteConcern

from marketdata_assets.core.errors import StoreUnavailable
from marketdata_assets.stores.mongo.documents import DATES_FIELD, alpha_from_bson

LEDGER = "import_ledger"
# What the ledger keeps per file (with the mode, time and run of the write that committed it).
LEDGER_FIELDS = ("file", "size", "sha256", "documents", "alpha_id", "type", "month")
_OBSOLETE_LEDGER_INDEX = "import_ledger_index"  # written by earlier versions
# ids per `$in` when reading or deleting stored documents: SecantusDB's cost per id grows with the
# list (measured per document: 20-30 ids read in 0.14 ms and delete in 0.33 ms, 100 ids in 0.22 / 0.41 ms)
STORED_READ_CHUNK = 25
_DUPLICATE_KEY = 11000
_ILLEGAL_OPERATION = 20  # a standalone mongod refusing transactions
# A transaction that fails with a transient error from a live server (a write conflict) is tried
# again after a pause growing from CONFLICT_FIRST_PAUSE_S to CONFLICT_MAX_PAUSE_S, for as long as the
# server keeps a transaction open (its transaction lifetime, read from the server; MongoDB's default
# when it does not say) plus CONFLICT_GRACE_S; a lost connection is raised at once (the driver's
# with_transaction retried for 120 s, also when the server was gone, which hung imports).
DEFAULT_TRANSACTION_LIFETIME_S = 60.0
CONFLICT_GRACE_S = 5.0
CONFLICT_FIRST_PAUSE_S, CONFLICT_MAX_PAUSE_S = 0.1, 2.0
STORE_HINT = (
    "Check that the server is running and reachable (the local stack: `make stack-up`), then run "
    "the import again: the files already imported are skipped (ledger import_ledger)"
)

# The alpha collections' shard key on a sharded cluster (deploy/mongodb/shard-alphas.js): every upsert
# and delete filter names it (`by_ids`), as mongos requires of an upsert; `_id` and `id` hold the same id.
SHARD_KEY = ("id",)
# What every write to the store waits for when MONGODB_URI names no `w`: a majority of the replica
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


# ---------------------------------------------------------------- collections


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
    doc = coll.find_one(
        {f"{DATES_FIELD}.dateModified": {"$ne": None}},
        {f"{DATES_FIELD}.dateModified": 1},
        sort=[(f"{DATES_FIELD}.dateModified", pymongo.DESCENDING)],
    )
    value = doc[DATES_FIELD]["dateModified"] if doc else None
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def stored_alphas(coll, ids: list[str]) -> dict[str, tuple[dict, bool]]:
    """id -> (stored alpha, whether a stored key is escaped), from the raw BSON
    (documents.alpha_from_bson)."""
    raw = coll.with_options(codec_options=coll.codec_options.with_options(document_class=RawBSONDocument))
    found: dict[str, tuple[dict, bool]] = {}
    for start in range(0, len(ids), STORED_READ_CHUNK):
        for doc in raw.find({"_id": {"$in": ids[start : start + STORED_READ_CHUNK]}}):
            alpha, escaped = alpha_from_bson(doc.raw, coll.codec_options)
            found[alpha["id"]] = (alpha, escaped)
    return found


def stored_documents(coll, ids: list[str]) -> dict[str, dict]:
    found: dict[str, dict] = {}
    for start in range(0, len(ids), STORED_READ_CHUNK):
        for doc in coll.find({"_id": {"$in": ids[start : start + STORED_READ_CHUNK]}}):
            found[doc["_id"]] = doc
    return found


def collection_digest(coll) -> str:
    """sha256 over every document in _id order (tests compare interrupted and clean imports)."""
    digest = hashlib.sha256()
    for doc in coll.find({}, sort=[("_id", pymongo.ASCENDING)]):
        digest.update(repr(sorted(doc.items())).encode())
    return digest.hexdigest()


# ---------------------------------------------------------------- the ledger


def _directory(name: str) -> str:
    return name.rpartition("/")[0]


def _columns(ledger_doc: Mapping, fields: tuple[str, ...]) -> list[list]:
    """The `fields` columns of a ledger document (an earlier version's document is one entry)."""
    if "files" in ledger_doc:
        return [ledger_doc["files"].get(name, []) for name in fields]
    return [[ledger_doc.get(name)] for name in fields]


def _ledger_columns(
    db_regular: Database, query: Mapping | None, fields: tuple[str, ...]
) -> Iterator[tuple[dict, list[list]]]:
    """(the write's ``mode, imported_at, run_id``, the `fields` columns) of each ledger document
    matching `query`; only those columns travel."""
    projection = {"_id": 0, "mode": 1, "imported_at": 1, "run_id": 1}
    for name in fields:
        projection[f"files.{name}"] = projection[name] = 1
    for doc in db_regular[LEDGER].find(query or {}, projection):
        yield {key: doc.get(key) for key in ("mode", "imported_at", "run_id")}, _columns(doc, fields)


def ledger_entries(
    db_regular: Database, query: Mapping | None = None, fields: tuple[str, ...] = LEDGER_FIELDS
) -> Iterator[dict]:
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
        query = {"dir": {"$in": dirs[start : start + STORED_READ_CHUNK]}}
        for _, columns in _ledger_columns(db_regular, query, ("file", "sha256", "documents")):
            for name, sha, documents in zip(*columns):
                shas = found.setdefault(name, set())
                if documents:
                    shas.add(sha)
    return found


def ledger_documents(entries: list[dict], mode: str, run_id: str | None, now: datetime) -> list[dict]:
    """The ledger documents of one write's file entries: one per landing directory, a column per field."""
    by_dir: dict[str, list[dict]] = {}
    for entry in entries:
        by_dir.setdefault(_directory(entry["file"]), []).append(entry)
    return [
        {
            "_id": ObjectId(),
            "dir": directory,
            "mode": mode,
            "imported_at": now,
            "run_id": run_id,
            "files": {name: [entry[name] for entry in group] for name in LEDGER_FIELDS},
        }
        for directory, group in by_dir.items()
    ]


# ---------------------------------------------------------------- errors


def store_address(client: pymongo.MongoClient) -> str:
    """host:port of the client's servers, from what it knows (no I/O, no credentials)."""
    try:
        servers = client.topology_description.server_descriptions()
        return ",".join(f"{host}:{port}" for host, port in servers) or "unknown address"
    except Exception:  # noqa: BLE001 - only a name for a message
        return "unknown address"


def store_unavailable(client: pymongo.MongoClient, error: PyMongoError) -> StoreUnavailable:
    """The error an import raises when MongoDB goes away: store, address, the driver's reason, a hint."""
    said = str(error).split(", Timeout")[0].split(" (configured timeouts")[0]
    reason = f"{type(error).__name__}: {said[:300]}"
    return StoreUnavailable("MongoDB", store_address(client), reason, STORE_HINT)


class ImportBlocked(RuntimeError):
    """A batch still conflicts with a transaction open on the server after waiting longer than the
    server keeps one: the message names the server (host:port) and the remedy."""


def bulk_write_errors(
    error: BulkWriteError, order: list[str], new: Collection[str]
) -> tuple[list[str], dict[str, str]]:
    """(the ids among `new` a duplicate key error says are stored already, {id: the server's message}
    of the documents it refused) of a bulk write of the documents of `order`; the error itself when it
    is about something else."""
    errors = error.details.get("writeErrors", [])
    taken, refused = [], {}
    if not errors or error.details.get("writeConcernErrors"):
        raise error
    for item in errors:
        index = item.get("index", -1)
        if not 0 <= index < len(order):
            raise error
        if item.get("code") == _DUPLICATE_KEY:
            if order[index] not in new:
                raise error
            taken.append(order[index])
        else:
            refused[order[index]] = f"{item.get('errmsg', 'refused')} (code {item.get('code')})"
    return taken, refused


# ---------------------------------------------------------------- transactions


def transaction_lifetime(client: pymongo.MongoClient) -> tuple[float, str]:
    """(seconds, where that comes from) a transaction may stay open on the server: its
    ``transactionLifetimeLimitSeconds`` parameter, or MongoDB's default (60 s) when the server does not
    report it (SecantusDB does not) or refuses to say (no privilege)."""
    try:
        value = client.admin.command({"getParameter": 1, "transactionLifetimeLimitSeconds": 1}).get(
            "transactionLifetimeLimitSeconds"
        )
    except OperationFailure:
        value = None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value), "the server's transactionLifetimeLimitSeconds"
    return DEFAULT_TRANSACTION_LIFETIME_S, (
        "MongoDB's default transactionLifetimeLimitSeconds: the server does not report its own"
    )


@dataclass
class ConflictWait:
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
            self.on_wait(
                f"MongoDB at {store_address(self.client)}: writing {what} conflicts with a transaction "
                f"still open on the server ({code}); importers of one partition refuse to run together, "
                f"so it is one a killed import left. Waiting up to {limit:.0f} s for the server to end it "
                f"(transactions live {seconds:.0f} s: {source})"
            )
        if now - self._started >= limit:
            raise ImportBlocked(
                f"MongoDB at {store_address(self.client)}: writing {what} still conflicts with a transaction "
                f"open on the server after {now - self._started:.0f} s of waiting (transactions live "
                f"{seconds:.0f} s: {source}). Remedy: end the transaction - run "
                "db.adminCommand({killAllSessions: []}) on that server, or restart it - then run the import "
                "again; the files already imported are skipped (ledger import_ledger)"
            )
        time.sleep(min(self._pause_s, max(0.0, self._started + limit - now)))
        self._pause_s = min(2 * self._pause_s, CONFLICT_MAX_PAUSE_S)

    def ended(self) -> None:
        """The batch committed: the time it waited counts, the next conflict starts a new wait."""
        if self._started is not None:
            self.waited_s += time.monotonic() - self._started
            self._started = None


class AlphaCollections:
    """The collections an import writes (by alpha type: regular, super) and its ledger, each writing
    with ``w: majority`` unless the URI names a ``w``; knows whether the server has transactions.
    The writes raise the driver's errors (BulkWriteError, DocumentTooLarge, WriteError, ...)."""

    def __init__(self, db_regular: Database, db_super: Database, collection: str, conflicts: ConflictWait):
        self.db_regular, self.client, self.conflicts = db_regular, db_regular.client, conflicts
        self.targets = {
            "regular": with_majority(db_regular[collection]),
            "super": with_majority(db_super[collection]),
        }
        self.ledger = with_majority(db_regular[LEDGER])
        self.transactions = True  # until the server says it has none

    def stored_alphas(self, alpha_type: str, ids: list[str]) -> dict[str, tuple[dict, bool]]:
        return stored_alphas(self.targets[alpha_type], ids)

    def stored_documents(self, alpha_type: str, ids: list[str]) -> dict[str, dict]:
        return stored_documents(self.targets[alpha_type], ids)

    def newest_modified(self, alpha_type: str) -> datetime | None:
        return newest_modified(self.targets[alpha_type])

    def ledgered_files(self, names: Iterable[str]) -> dict[str, set[str]]:
        return ledgered_files(self.db_regular, names)

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

    def write_in(self, session, alpha_type: str, docs: Mapping[str, object], replace: list[str]) -> None:
        """In `session`'s transaction: the stored documents of `replace` deleted, then every document
        of `docs` (id -> document) inserted."""
        coll = self.targets[alpha_type]
        if replace:  # one round trip: small `$in` lists, as statements of one delete command
            coll.bulk_write(
                [
                    pymongo.DeleteMany(by_ids(replace[start : start + STORED_READ_CHUNK]))
                    for start in range(0, len(replace), STORED_READ_CHUNK)
                ],
                ordered=False,
                session=session,
            )
        if docs:
            coll.insert_many(list(docs.values()), ordered=False, session=session)

    def write_plain(self, alpha_type: str, docs: Mapping[str, object], replace: Collection[str]) -> None:
        """`docs` (id -> document) outside a transaction, unordered: those of `replace` replace the
        stored document (upsert), the others are inserted; every document without an error is written."""
        coll = self.targets[alpha_type]
        if replace:
            coll.bulk_write(
                [
                    pymongo.ReplaceOne(by_ids(i), doc, upsert=True)
                    if i in replace
                    else pymongo.InsertOne(doc)
                    for i, doc in docs.items()
                ],
                ordered=False,
            )
        elif docs:
            coll.insert_many(list(docs.values()), ordered=False)

    def upsert(self, alpha_type: str, docs: Mapping[str, object]) -> None:
        """Each document of `docs` (id -> document) replacing the stored one, or inserted."""
        if docs:
            self.targets[alpha_type].bulk_write(
                [pymongo.ReplaceOne(by_ids(i), doc, upsert=True) for i, doc in docs.items()], ordered=False
            )

    def insert_one(self, alpha_type: str, doc) -> None:
        self.targets[alpha_type].insert_one(doc)

    def replace_one(self, alpha_type: str, alpha_id: str, doc) -> None:
        self.targets[alpha_type].replace_one(by_ids(alpha_id), doc, upsert=True)

    def record(self, entries: list[dict], mode: str, run_id: str | None, session=None) -> None:
        """The ledger entries of one write (in its transaction with `session`)."""
        # each ledger document is written whole or not at all: an interruption between two of them
        # only makes the next incremental run merge the files of the missing one again (no change)
        docs = ledger_documents(entries, mode, run_id, datetime.now(UTC))
        if docs:
            self.ledger.insert_many(docs, ordered=False, session=session)
