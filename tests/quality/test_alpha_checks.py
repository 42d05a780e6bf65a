"""The alpha collections' checks (quality/alpha_checks.py) against the real MongoDB-wire server:
a clean import passes all four; a document lost behind the ledger's back and one no import wrote,
a document of the wrong type, a missing required field, an unparsable date and a date whose UTC
index disagrees are each found and named."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from marketdata_assets.ingest.alphas.importer import import_files
from marketdata_assets.quality.alpha_checks import REQUIRED_FIELDS, collection_checks
from marketdata_assets.quality.checks import ALPHA_STORE, ERROR, AlphaStore, Check
from marketdata_assets.replay.alpha_factory import make_alpha

NAMES = ["documents_match_ledger", "type_matches_collection", "required_fields_present", "dates_parse"]


@pytest.fixture
def imported(dbs, tmp_path):
    """Three REGULAR and two SUPER alphas imported; the store handle the checks read."""
    files = []
    for seed, alpha_type in ((1, "REGULAR"), (2, "REGULAR"), (3, "REGULAR"), (4, "SUPER"), (5, "SUPER")):
        path = tmp_path / alpha_type / f"{seed}.json"
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(make_alpha(seed, alpha_type)))
        files.append((f"{alpha_type}/{seed}.json", path))
    import_files(files, db_regular=dbs[0], db_super=dbs[1], mode="incremental")
    regular, super_ = (db["alphas"] for db in dbs)
    return AlphaStore(dbs[0], {"REGULAR": regular, "SUPER": super_})


def verdicts(store: AlphaStore, alpha_type: str) -> dict:
    asset = {"REGULAR": "regular_alphas", "SUPER": "super_alphas"}[alpha_type]
    checks: list[Check] = collection_checks(asset, alpha_type)
    assert [c.name for c in checks] == NAMES and {
        (c.asset, c.store, c.partitioned_by, c.blocking) for c in checks
    } == {(asset, ALPHA_STORE, None, False)}
    return {c.name: c.run(store)[None] for c in checks}


def test_a_clean_import_passes_every_check(imported):
    for alpha_type, documents in (("REGULAR", 3), ("SUPER", 2)):
        found = verdicts(imported, alpha_type)
        assert all(v.passed and v.severity == ERROR for v in found.values()), found
        assert found["documents_match_ledger"].metadata == {
            "documents": documents,
            "ledger_alphas": documents,
            "in_ledger_not_stored": 0,
            "stored_not_in_ledger": 0,
        }
        assert found["type_matches_collection"].metadata == {"wrong_type": 0, "sample": []}
        assert found["required_fields_present"].metadata == {
            "fields": ", ".join(REQUIRED_FIELDS[alpha_type]),
            "documents_missing_by_field": {},
        }
        assert found["dates_parse"].metadata == {"documents_checked": documents, "problems": 0, "sample": []}


def test_each_check_names_what_is_wrong(imported):
    regular = imported.collections["REGULAR"]
    ids = sorted(d["_id"] for d in regular.find({}, {"_id": 1}))
    lost = regular.find_one({"_id": ids[0]})
    regular.delete_one({"_id": ids[0]})
    regular.insert_one({**lost, "_id": "STRAY01", "id": "STRAY01", "type": "SUPER"})  # no import wrote it
    regular.update_one({"_id": ids[1]}, {"$unset": {"author": ""}, "$set": {"dateModified": "yesterday"}})
    regular.update_one({"_id": ids[2]}, {"$set": {"_dates.dateCreated": datetime(2001, 1, 1, tzinfo=UTC)}})

    found = verdicts(imported, "REGULAR")
    assert not any(v.passed for v in found.values())
    ledger = found["documents_match_ledger"].metadata
    assert (ledger["in_ledger_not_stored"], ledger["stored_not_in_ledger"]) == ([ids[0]], ["STRAY01"])
    assert found["type_matches_collection"].metadata == {
        "wrong_type": 1,
        "sample": [{"id": "STRAY01", "type": "SUPER"}],
    }
    assert found["required_fields_present"].metadata["documents_missing_by_field"] == {"author": 1}
    problems = {(p["id"], p["field"]): p["problem"] for p in found["dates_parse"].metadata["sample"]}
    assert set(problems) == {(ids[1], "dateModified"), (ids[2], "dateCreated")}
    assert problems[(ids[2], "dateCreated")].startswith("_dates.dateCreated is 2001-01-01")
    assert all(v.passed for v in verdicts(imported, "SUPER").values())  # the other collection is untouched
