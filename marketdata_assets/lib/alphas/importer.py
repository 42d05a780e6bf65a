"""Deep-merge import of alpha files into MongoDB (seed 000's importer), with the five modes and a ledger.

Modes (seed 000):
- `incremental`: files already in the ledger with the same sha256 are skipped; the rest deep-merge.
- `overwrite`: every file, deep merge (old fields kept, new values win).
- `rebuild`: every file, the stored document is replaced whole (old-only fields go).
- `time_range`: only alphas whose dateModified lies in [start, end); deep merge.
- `smart_merge`: only alphas modified after the newest dateModified already stored (per
  collection, read once at the start); deep merge.

Documents are written with whole-document `ReplaceOne(upsert=True)` (the merge happens here, in
Python: cheaper on the server than many dotted `$set`s, and no key of the data ever reaches the
server as an operator or a path — `documents.to_document` escapes `$` and `.`); unchanged alphas are
not written at all. The ledger (`import_ledger`, in the regular database next to the data) gets
one entry per file after the batch holding its alphas is written, so a killed import re-runs
only the files without an entry, and re-merging a file already merged changes nothing: the
collections end identical to an uninterrupted import.

A ledger entry: ``file, size, sha256, documents`` (1 imported, 0 filtered out by the mode),
``alpha_id, type, month`` (New York month of dateCreated: the partition), ``mode, imported_at, run_id``.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, Mapping, Optional

import pymongo
from pymongo.database import Database

from marketdata_assets.lib.alphas.documents import (DATES_FIELD, collection_for, date_sidecar, merged_document,
                                                    to_document, validate_alpha)
from marketdata_assets.lib.alphas.files import month_of, read_alpha_file
from marketdata_assets.lib.files import quarantine

IMPORT_MODES = ("incremental", "overwrite", "rebuild", "time_range", "smart_merge")
LEDGER = "import_ledger"

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

    docs: dict[str, dict] = field(default_factory=dict)
    files: list[dict] = field(default_factory=list)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def ensure_alpha_indexes(db_regular: Database, db_super: Database, collection: str) -> None:
    for db in (db_regular, db_super):
        db[collection].create_indexes(ALPHA_INDEXES)
    db_regular[LEDGER].create_index([("file", pymongo.ASCENDING), ("sha256", pymongo.ASCENDING)], name="file_sha256")
    db_regular[LEDGER].create_index([("type", pymongo.ASCENDING), ("month", pymongo.ASCENDING)], name="type_month")


def newest_modified(coll) -> Optional[datetime]:
    doc = coll.find_one({f"{DATES_FIELD}.dateModified": {"$ne": None}}, {f"{DATES_FIELD}.dateModified": 1},
                        sort=[(f"{DATES_FIELD}.dateModified", pymongo.DESCENDING)])
    value = doc[DATES_FIELD]["dateModified"] if doc else None
    return value.replace(tzinfo=timezone.utc) if value is not None and value.tzinfo is None else value


def import_files(files: Iterable[tuple[str, Path]], *, db_regular: Database, db_super: Database,
                 collection: str = "alphas", mode: str = "incremental",
                 time_range: Optional[tuple[datetime, datetime]] = None, batch_size: int = 1000,
                 array_keys: Optional[Mapping[str, Optional[str]]] = None, quarantine_root: Optional[Path] = None,
                 landing_root: Optional[Path] = None, run_id: Optional[str] = None,
                 on_progress: Optional[Callable[[ImportStats], None]] = None) -> ImportStats:
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
    since = {kind: newest_modified(coll) for kind, coll in targets.items()} if mode == "smart_merge" else {}
    pending = {kind: _Pending() for kind in targets}

    def reject(name: str, path: Path, reason: str) -> None:
        stats.quarantined.append({"file": name, "reason": reason})
        if quarantine_root is not None:
            quarantine(path, reason, quarantine_root, relative_to=landing_root)

    def flush(kind: str) -> None:
        batch = pending[kind]
        if batch.docs:
            coll = targets[kind]
            old = {} if mode == "rebuild" else {
                d["_id"]: d for d in coll.find({"_id": {"$in": list(batch.docs)}})}
            writes = []
            for alpha_id, alpha in batch.docs.items():
                stored = old.get(alpha_id)
                if mode == "rebuild":
                    doc, changed = to_document(alpha), True
                else:
                    doc, changed = merged_document(stored, alpha, mode, array_keys)
                if not changed:
                    stats.unchanged += 1
                    continue
                if stored is None and mode != "rebuild":
                    stats.inserted += 1
                elif mode == "rebuild":
                    stats.replaced += 1
                else:
                    stats.merged += 1
                writes.append(pymongo.ReplaceOne({"_id": alpha_id}, doc, upsert=True))
            if writes:
                coll.bulk_write(writes, ordered=False)
        now = datetime.now(timezone.utc)
        if batch.files:
            ledger.insert_many([{**entry, "mode": mode, "imported_at": now, "run_id": run_id} for entry in batch.files])
        pending[kind] = _Pending()
        if on_progress is not None and (batch.docs or batch.files):
            on_progress(stats)

    for name, path in files:
        stats.files_seen += 1
        try:
            data = path.read_bytes()
        except OSError as error:
            reject(name, path, f"unreadable: {error}")
            continue
        sha = sha256_bytes(data)
        # only entries that imported the alpha count: a file a time_range or smart_merge run filtered
        # out (documents 0) has not been imported yet
        if mode == "incremental" and ledger.find_one({"file": name, "sha256": sha, "documents": 1}, {"_id": 1}):
            stats.files_skipped += 1
            continue
        alpha, problem = read_alpha_file(path)
        problems = [problem] if problem else validate_alpha(alpha)
        if problems:
            reject(name, path, "; ".join(problems))
            continue
        kind = collection_for(alpha)
        modified = date_sidecar(alpha).get("dateModified")
        keep = True
        if mode == "time_range":
            keep = modified is not None and time_range[0] <= modified < time_range[1]
        elif mode == "smart_merge" and since.get(kind) is not None:
            keep = modified is not None and modified > since[kind]
        batch = pending[kind]
        if keep:
            batch.docs[alpha["id"]] = alpha  # the same alpha twice in one batch: the later file wins
        else:
            stats.alphas_filtered_out += 1
        batch.files.append({"file": name, "size": len(data), "sha256": sha, "documents": int(keep),
                            "alpha_id": alpha["id"], "type": alpha["type"], "month": month_of(alpha["dateCreated"])})
        stats.files_imported += keep
        if len(batch.docs) >= batch_size or len(batch.files) >= 4 * batch_size:
            flush(kind)
    for kind in pending:
        flush(kind)
    stats.seconds = round(time.monotonic() - started, 3)
    return stats


def collection_digest(coll) -> str:
    """sha256 over every document in _id order (tests compare interrupted and clean imports)."""
    digest = hashlib.sha256()
    for doc in coll.find({}, sort=[("_id", pymongo.ASCENDING)]):
        digest.update(repr(sorted(doc.items())).encode())
    return digest.hexdigest()

