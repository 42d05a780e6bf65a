"""The checks of the alpha collections (MongoDB), declared (quality/checks.py's `Check`): counts
agree with the import ledger, types match the collection, required fields are there, dates parse
and agree with their UTC index. Each runs over the whole collection (a few seconds for 50,000
documents); the collections are not partitioned."""

from __future__ import annotations

from marketdata_assets.datasets.alpha_files import to_utc
from marketdata_assets.quality.checks import ALPHA_STORE, AlphaStore, Check, Verdict, whole
from marketdata_assets.stores.mongo.alphas import ledger_entries
from marketdata_assets.stores.mongo.documents import DATE_FIELDS, DATES_FIELD

# Fields every alpha of the type carries (the BRAIN-style API answers them for every alpha).
REQUIRED_FIELDS = {
    "REGULAR": ("id", "type", "author", "dateCreated", "settings", "regular"),
    "SUPER": ("id", "type", "author", "dateCreated", "settings", "combo", "selection"),
}
SAMPLE = 10


def documents_match_ledger(store: AlphaStore, alpha_type: str) -> Verdict:
    """The collection's documents are the distinct alphas the ledger says were imported: the ids on
    one side only are named (the first SAMPLE)."""
    collection = store.collections[alpha_type]
    documents = collection.count_documents({})
    ledger_ids = {
        entry["alpha_id"]
        for entry in ledger_entries(store.ledger, fields=("alpha_id", "type", "documents"))
        if entry["type"] == alpha_type and entry["documents"] == 1
    }
    stored_ids = {doc["_id"] for doc in collection.find({}, {"_id": 1})}
    missing, unledgered = sorted(ledger_ids - stored_ids), sorted(stored_ids - ledger_ids)
    return Verdict(
        not missing and not unledgered,
        metadata={
            "documents": documents,
            "ledger_alphas": len(ledger_ids),
            "in_ledger_not_stored": missing[:SAMPLE] if missing else 0,
            "stored_not_in_ledger": unledgered[:SAMPLE] if unledgered else 0,
        },
    )


def type_matches_collection(store: AlphaStore, alpha_type: str) -> Verdict:
    """Every document's type is the collection's."""
    collection = store.collections[alpha_type]
    wrong = list(collection.find({"type": {"$ne": alpha_type}}, {"_id": 1, "type": 1}).limit(SAMPLE))
    count = collection.count_documents({"type": {"$ne": alpha_type}}) if wrong else 0
    return Verdict(
        not wrong,
        metadata={
            "wrong_type": count,
            "sample": [{"id": doc["_id"], "type": doc.get("type")} for doc in wrong],
        },
    )


def required_fields_present(store: AlphaStore, alpha_type: str) -> Verdict:
    """Every document has the type's REQUIRED_FIELDS (not null): documents missing each, by field."""
    collection = store.collections[alpha_type]
    missing = {}
    for name in REQUIRED_FIELDS[alpha_type]:
        count = collection.count_documents({"$or": [{name: {"$exists": False}}, {name: None}]})
        if count:
            missing[name] = count
    return Verdict(
        not missing,
        metadata={"fields": ", ".join(REQUIRED_FIELDS[alpha_type]), "documents_missing_by_field": missing},
    )


def _date_problem(doc: dict, name: str) -> str | None:
    """What is wrong with the document's date field `name`, if anything."""
    value = doc.get(name)
    if value is None:
        return "missing" if name == "dateCreated" else None
    try:
        parsed = to_utc(value)
    except ValueError as error:
        return str(error)
    indexed = (doc.get(DATES_FIELD) or {}).get(name)
    # BSON dates keep milliseconds
    if indexed is None or abs((indexed.replace(tzinfo=parsed.tzinfo) - parsed).total_seconds()) >= 0.001:
        return f"{DATES_FIELD}.{name} is {indexed}"
    return None


def dates_parse(store: AlphaStore, alpha_type: str) -> Verdict:
    """dateCreated/dateModified/dateSubmitted parse as ISO 8601 with an offset and agree with the UTC
    dates indexed in _dates (dateCreated must be there)."""
    problems, checked = [], 0
    for doc in store.collections[alpha_type].find({}, {**{name: 1 for name in DATE_FIELDS}, DATES_FIELD: 1}):
        checked += 1
        for name in DATE_FIELDS:
            problem = _date_problem(doc, name)
            if problem is not None:
                problems.append({"id": doc["_id"], "field": name, "problem": problem})
    return Verdict(
        not problems,
        metadata={"documents_checked": checked, "problems": len(problems), "sample": problems[:SAMPLE]},
    )


def collection_checks(asset: str, alpha_type: str) -> list[Check]:
    """The four checks of the collection of `alpha_type` (REGULAR, SUPER), the asset `asset`."""

    def check(name: str, judge, description: str) -> Check:
        return Check(name, asset, description, ALPHA_STORE, whole(lambda store: judge(store, alpha_type)))

    return [
        check(
            "documents_match_ledger",
            documents_match_ledger,
            "Documents in the collection = distinct alphas the ledger says were imported.",
        ),
        check("type_matches_collection", type_matches_collection, f"Every document's type is {alpha_type}."),
        check(
            "required_fields_present",
            required_fields_present,
            f"Every document has {', '.join(REQUIRED_FIELDS[alpha_type])}.",
        ),
        check(
            "dates_parse",
            dates_parse,
            "dateCreated/dateModified/dateSubmitted parse as ISO 8601 with an "
            "offset and agree with the UTC dates indexed in _dates.",
        ),
    ]
