"""The deep-merge importer against the real MongoDB-wire server: the seed's examples, the five
modes on the same fixtures, quarantine, `$`/`.` keys, and a killed import resumed."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from marketdata_assets.core import progress
from marketdata_assets.ingest.alphas.importer import import_files
from marketdata_assets.replay.alpha_factory import make_alpha
from marketdata_assets.stores.mongo.alphas import (
    LEDGER,
    collection_digest,
    ensure_alpha_indexes,
    ledger_entries,
)
from marketdata_assets.stores.mongo.documents import from_document, to_document

REPO = Path(__file__).resolve().parents[3]


def alpha(alpha_id: str, modified: str = "2025-07-18T23:32:42-04:00", **fields) -> dict:
    base = {
        "id": alpha_id,
        "type": "REGULAR",
        "dateCreated": "2025-07-01T10:00:00-04:00",
        "dateModified": modified,
        "dateSubmitted": None,
        "status": "UNSUBMITTED",
    }
    return {**base, **fields}


def drop(root: Path, name: str, obj) -> tuple[str, Path]:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return name, path


def stored(db, alpha_id: str) -> dict:
    return from_document(db["alphas"].find_one({"_id": alpha_id}))


def run(dbs, files, mode="incremental", **kw):
    return import_files(files, db_regular=dbs[0], db_super=dbs[1], mode=mode, **kw)


def assert_same_as_a_clean_import(mongo, dbs, files) -> None:
    """`dbs` hold exactly what one uninterrupted import of `files` into empty databases gives."""
    clean_names = [f"test_clean_r_{uuid.uuid4().hex[:6]}", f"test_clean_s_{uuid.uuid4().hex[:6]}"]
    try:
        clean = tuple(mongo.client[n] for n in clean_names)
        ensure_alpha_indexes(clean[0], clean[1], "alphas")
        run(clean, files)
        for got, want in zip(dbs, clean):
            assert got["alphas"].count_documents({}) == want["alphas"].count_documents({}) > 0
            assert collection_digest(got["alphas"]) == collection_digest(want["alphas"])
    finally:
        for n in clean_names:
            mongo.client.drop_database(n)


def test_the_seeds_two_examples(dbs, tmp_path):
    old = alpha(
        "AAAAAAA", settings={"region": "USA", "delay": 0}, checks=[{"name": "LOW_SHARPE", "value": 1.0}]
    )
    new = alpha(
        "AAAAAAA",
        settings={"region": "ASI", "decay": 5},
        checks=[{"name": "LOW_SHARPE", "value": 2.5}, {"name": "NEW_CHECK", "value": 1.0}],
    )
    heard = []
    with progress.listening(lambda *report: heard.append(report[1:])):
        run(dbs, [drop(tmp_path, "v1/a.json", old), drop(tmp_path, "v1/not-json.json", "{")])
    assert heard[0] == (0, 2, "files") and heard[-1] == (
        2,
        2,
        "files",
    )  # files read of the import's, for a bar
    assert [done for done, _, _ in heard] == sorted(done for done, _, _ in heard)
    stats = run(dbs, [drop(tmp_path, "v2/a.json", new)], mode="overwrite")
    doc = stored(dbs[0], "AAAAAAA")
    assert doc["settings"] == {"region": "ASI", "delay": 0, "decay": 5}
    assert doc["checks"] == [{"name": "LOW_SHARPE", "value": 2.5}, {"name": "NEW_CHECK", "value": 1.0}]
    assert (stats.merged, stats.inserted) == (1, 0)


def test_five_modes_on_the_same_fixtures(dbs, tmp_path):
    v1 = [
        alpha("AAAAAAA", legacy="kept?", settings={"region": "USA"}),
        alpha("BBBBBBB", modified="2025-07-10T09:00:00-04:00", settings={"region": "EUR"}),
    ]
    v2 = [
        alpha("AAAAAAA", modified="2025-08-02T12:00:00-04:00", settings={"region": "ASI"}),
        alpha("BBBBBBB", modified="2025-07-11T09:00:00-04:00", settings={"region": "CHN"}),
    ]
    first = [drop(tmp_path, f"v1/{a['id']}.json", a) for a in v1]
    second = [drop(tmp_path, f"v2/{a['id']}.json", a) for a in v2]

    # incremental: the same files again are skipped by their sha256 in the ledger
    assert run(dbs, first).inserted == 2
    again = run(dbs, first)
    assert (again.files_skipped, again.inserted, again.merged) == (2, 0, 0)
    # overwrite: deep merge, the old-only field survives, new values win; a re-run changes nothing
    merged = run(dbs, second, mode="overwrite")
    assert merged.merged == 2 and stored(dbs[0], "AAAAAAA")["legacy"] == "kept?"
    assert stored(dbs[0], "AAAAAAA")["settings"] == {"region": "ASI"}
    assert run(dbs, second, mode="overwrite").unchanged == 2
    # rebuild: whole documents replaced, the old-only field is gone
    run(dbs, first, mode="overwrite")
    rebuilt = run(dbs, second, mode="rebuild")
    assert rebuilt.replaced == 2
    assert dbs[0]["alphas"].find_one({"_id": "AAAAAAA"}) == to_document(v2[0])
    assert stored(dbs[0], "AAAAAAA") == v2[0] and "legacy" not in stored(dbs[0], "AAAAAAA")
    # time_range: only alphas modified inside the window
    run(dbs, first, mode="rebuild")
    window = (datetime(2025, 8, 1, tzinfo=UTC), datetime(2025, 9, 1, tzinfo=UTC))
    ranged = run(dbs, second, mode="time_range", time_range=window)
    assert (ranged.merged, ranged.alphas_filtered_out) == (1, 1)
    assert stored(dbs[0], "AAAAAAA")["settings"] == {"region": "ASI"}
    assert stored(dbs[0], "BBBBBBB")["settings"] == {"region": "EUR"}
    # smart_merge: only alphas newer than the newest dateModified stored (A, 2025-08-02 16:00Z, now)
    newer = alpha("BBBBBBB", modified="2025-08-03T00:00:00-04:00", settings={"region": "JPN"})
    older = alpha("CCCCCCC", modified="2025-07-01T00:00:00-04:00")
    smart = run(
        dbs, [drop(tmp_path, "v3/b.json", newer), drop(tmp_path, "v3/c.json", older)], mode="smart_merge"
    )
    assert (smart.merged, smart.inserted, smart.alphas_filtered_out) == (1, 0, 1)
    assert stored(dbs[0], "BBBBBBB")["settings"] == {"region": "JPN"}
    assert dbs[0]["alphas"].count_documents({"_id": "CCCCCCC"}) == 0
    entries = list(ledger_entries(dbs[0]))
    assert len(entries) == 16  # 8 runs x 2 files; skipped files add no entry
    assert {e["mode"] for e in entries} == {
        "incremental",
        "overwrite",
        "rebuild",
        "time_range",
        "smart_merge",
    }
    # a file smart_merge filtered out was not imported: a later incremental run still imports it
    later = run(dbs, [drop(tmp_path, "v3/c.json", older)])
    assert (later.files_skipped, later.inserted) == (0, 1)
    imported_c = [
        e for e in ledger_entries(dbs[0], {"dir": "v3"}) if e["file"] == "v3/c.json" and e["documents"]
    ]
    assert [e["alpha_id"] for e in imported_c] == ["CCCCCCC"]


def test_the_ledger_has_one_entry_per_file_stored_per_write_and_directory(dbs, tmp_path):
    files = [
        drop(tmp_path, f"alphas/REGULAR/2025-07/{account}/{i:07d}.json", alpha(f"{i:07d}"))
        for account in ("acct1", "acct2")
        for i in range(account == "acct2", 30, 2)
    ]
    files.append(drop(tmp_path, "alphas/REGULAR/2025-07/acct1/bad.json", "{"))
    run(dbs, files, batch_size=10, run_id="run-1")
    fields = ("file", "size", "sha256", "documents", "alpha_id", "type", "month")
    entries = {e["file"]: e for e in ledger_entries(dbs[0], fields=fields)}
    assert sorted(entries) == sorted(name for name, _ in files if not name.endswith("bad.json"))
    name, path = files[3]
    assert entries[name] == {
        "file": name,
        "size": path.stat().st_size,
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "documents": 1,
        "alpha_id": path.stem,
        "type": "REGULAR",
        "month": "2025-07",
        "mode": "incremental",
        "imported_at": entries[name]["imported_at"],
        "run_id": "run-1",
    }
    # one ledger document per bulk write and directory, not per file, with a column per field
    docs = list(dbs[0][LEDGER].find())
    assert len(files) - 1 == sum(len(doc["files"]["file"]) for doc in docs) > 2 * len(docs)
    assert all({name.rpartition("/")[0] for name in doc["files"]["file"]} == {doc["dir"]} for doc in docs)
    assert all(len({len(column) for column in doc["files"].values()}) == 1 for doc in docs)


def test_entries_of_the_earlier_per_file_ledger_still_count(dbs, tmp_path):
    name, path = drop(tmp_path, "alphas/REGULAR/2025-07/acct1/EEEEEEE.json", alpha("EEEEEEE"))
    dbs[0][LEDGER].insert_one(
        {
            "file": name,
            "size": path.stat().st_size,
            "documents": 1,
            "alpha_id": "EEEEEEE",
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "type": "REGULAR",
            "month": "2025-07",
            "mode": "incremental",
            "run_id": "old",
            "imported_at": None,
        }
    )
    assert [(e["file"], e["run_id"]) for e in ledger_entries(dbs[0])] == [(name, "old")]
    # incremental merges such a file once more (nothing changes) and ledgers it the new way
    assert run(dbs, [(name, path)]).inserted == 1
    again = run(dbs, [(name, path)])
    assert (again.files_skipped, again.inserted, again.merged) == (1, 0, 0)


def test_an_alpha_stored_without_a_ledger_entry_is_merged_not_inserted_twice(dbs, tmp_path):
    """Files the ledger has not seen are inserted without a read; an alpha that is stored after all
    (the ledger was dropped, or another file of the same alpha was imported) is merged."""
    modified = "2025-08-02T12:00:00-04:00"
    run(
        dbs,
        [
            drop(tmp_path, f"v1/{i}.json", alpha(i, legacy="kept", settings={"region": "USA"}))
            for i in ("FFFFFFF", "GGGGGGG")
        ],
    )
    dbs[0][LEDGER].drop()
    # a batch of unledgered files only (written outside a transaction)
    stats = run(
        dbs,
        [
            drop(tmp_path, "v2/FFFFFFF.json", alpha("FFFFFFF", modified, settings={"region": "ASI"})),
            drop(tmp_path, "v2/GGGGGGG.json", alpha("GGGGGGG", legacy="kept", settings={"region": "USA"})),
            drop(tmp_path, "v2/HHHHHHH.json", alpha("HHHHHHH")),
        ],
    )
    assert (stats.inserted, stats.merged, stats.unchanged) == (1, 1, 1)
    assert stored(dbs[0], "FFFFFFF") == alpha("FFFFFFF", modified, legacy="kept", settings={"region": "ASI"})
    assert dbs[0]["alphas"].count_documents({}) == 3
    # a batch that also replaces a ledgered alpha (one transaction): rolled back, merged, written again
    stats = run(
        dbs,
        [
            drop(tmp_path, "v2/HHHHHHH.json", alpha("HHHHHHH", modified)),
            drop(tmp_path, "v3/GGGGGGG.json", alpha("GGGGGGG", modified, settings={"delay": 1})),
        ],
    )
    assert (stats.inserted, stats.merged, stats.unchanged) == (0, 2, 0)
    assert stored(dbs[0], "GGGGGGG") == alpha(
        "GGGGGGG", modified, legacy="kept", settings={"region": "USA", "delay": 1}
    )
    assert stored(dbs[0], "HHHHHHH") == alpha("HHHHHHH", modified)
    assert dbs[0]["alphas"].count_documents({}) == 3


def test_bad_files_are_quarantined_and_the_rest_imports(dbs, tmp_path):
    landing, quarantine_root = tmp_path / "landing", tmp_path / "quarantine"
    good = make_alpha(1, "SUPER")
    files = [
        drop(landing, "good.json", good),
        drop(landing, "truncated.json", json.dumps(make_alpha(2))[:500]),
        drop(landing, "not_json.json", "<html>502 Bad Gateway</html>"),
        drop(landing, "no_id.json", {k: v for k, v in make_alpha(3).items() if k != "id"}),
        drop(landing, "weird_type.json", {**make_alpha(4), "type": "POWER_POOL"}),
    ]
    stats = run(dbs, files, quarantine_root=quarantine_root, landing_root=landing)
    assert stats.inserted == 1 and dbs[1]["alphas"].count_documents({}) == 1
    assert sorted(q["file"] for q in stats.quarantined) == [
        "no_id.json",
        "not_json.json",
        "truncated.json",
        "weird_type.json",
    ]
    assert "POWER_POOL" in (quarantine_root / "weird_type.json.reason.txt").read_text()
    assert not (landing / "truncated.json").exists() and (landing / "good.json").exists()


def test_dollar_and_dot_keys_are_data_never_operators(dbs, tmp_path):
    tricky = alpha("DDDDDDD", settings={"$set": {"status": "ACTIVE"}, "a.b": 1, "$where": "sleep(1)"})
    run(dbs, [drop(tmp_path, "d.json", tricky)])
    raw = dbs[0]["alphas"].find_one({"_id": "DDDDDDD"})
    assert raw["status"] == "UNSUBMITTED"  # "$set" did not act
    assert not any(k.startswith("$") or "." in k for k in raw["settings"])
    assert stored(dbs[0], "DDDDDDD") == tricky


KILLABLE = """
import sys, time
from pathlib import Path
from marketdata_assets.core import settings
settings.apply_defaults()
import pymongo
from marketdata_assets.ingest.alphas.importer import import_files
client = pymongo.MongoClient(settings.get("MONGODB_URI"), **settings.mongo_auth())
root = Path(sys.argv[1])
files = [(p.name, p) for p in sorted(root.glob("*.json"))]
import_files(files, db_regular=client[sys.argv[2]], db_super=client[sys.argv[3]], batch_size=25)
"""


def test_killed_import_resumes_to_the_same_documents(dbs, mongo, tmp_path):
    landing = tmp_path / "landing"
    for seed in range(400):
        drop(landing, f"{seed:04d}.json", make_alpha(seed, "SUPER" if seed % 5 == 0 else "REGULAR"))
    files = [(p.name, p) for p in sorted(landing.glob("*.json"))]
    regular, super_ = dbs
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLABLE, str(landing), regular.name, super_.name],
        cwd=REPO,
        env=os.environ.copy(),
    )
    deadline = time.monotonic() + 120
    while len(list(ledger_entries(regular))) < 60:
        assert proc.poll() is None and time.monotonic() < deadline, (
            "the import ended before it could be killed"
        )
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert len(list(ledger_entries(regular))) < 400
    resumed = run(dbs, files)
    assert resumed.files_skipped >= 60

    assert_same_as_a_clean_import(mongo, dbs, files)
