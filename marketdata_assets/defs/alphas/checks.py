"""Checks on the alpha collections: counts agree with the ledger, types match, required fields are
there, dates parse. Each runs over the whole collection (a few seconds for 50,000 documents)."""

import dagster as dg

from marketdata_assets.datasets.alpha_files import to_utc
from marketdata_assets.defs.alphas.assets import IMPORTED_TYPES
from marketdata_assets.ingest.alphas.importer import ledger_entries
from marketdata_assets.resources import AlphaStoreResource
from marketdata_assets.stores.mongo.documents import DATE_FIELDS, DATES_FIELD

# Fields every alpha of the type carries (the BRAIN-style API answers them for every alpha).
REQUIRED_FIELDS = {
    "REGULAR": ("id", "type", "author", "dateCreated", "settings", "regular"),
    "SUPER": ("id", "type", "author", "dateCreated", "settings", "combo", "selection"),
}
SAMPLE = 10


def _checks_for(asset_name: str, alpha_type: str) -> list[dg.AssetChecksDefinition]:
    key = dg.AssetKey(asset_name)

    @dg.asset_check(asset=key, name="documents_match_ledger",
                    description="Documents in the collection = distinct alphas the ledger says were imported.")
    def documents_match_ledger(alpha_store: AlphaStoreResource) -> dg.AssetCheckResult:
        collection = alpha_store.collection_of(alpha_type)
        documents = collection.count_documents({})
        ledger_ids = {entry["alpha_id"] for entry in ledger_entries(alpha_store.databases()[0],
                                                                    fields=("alpha_id", "type", "documents"))
                      if entry["type"] == alpha_type and entry["documents"] == 1}
        stored_ids = {doc["_id"] for doc in collection.find({}, {"_id": 1})}
        missing, unledgered = sorted(ledger_ids - stored_ids), sorted(stored_ids - ledger_ids)
        return dg.AssetCheckResult(passed=not missing and not unledgered, metadata={
            "documents": documents, "ledger_alphas": len(ledger_ids),
            "in_ledger_not_stored": dg.MetadataValue.json(missing[:SAMPLE]) if missing else 0,
            "stored_not_in_ledger": dg.MetadataValue.json(unledgered[:SAMPLE]) if unledgered else 0})

    @dg.asset_check(asset=key, name="type_matches_collection",
                    description=f"Every document's type is {alpha_type}.")
    def type_matches_collection(alpha_store: AlphaStoreResource) -> dg.AssetCheckResult:
        collection = alpha_store.collection_of(alpha_type)
        wrong = list(collection.find({"type": {"$ne": alpha_type}}, {"_id": 1, "type": 1}).limit(SAMPLE))
        count = collection.count_documents({"type": {"$ne": alpha_type}}) if wrong else 0
        return dg.AssetCheckResult(passed=not wrong, metadata={
            "wrong_type": count, "sample": dg.MetadataValue.json([{"id": d["_id"], "type": d.get("type")} for d in wrong])})

    @dg.asset_check(asset=key, name="required_fields_present",
                    description=f"Every document has {', '.join(REQUIRED_FIELDS[alpha_type])}.")
    def required_fields_present(alpha_store: AlphaStoreResource) -> dg.AssetCheckResult:
        collection = alpha_store.collection_of(alpha_type)
        missing = {}
        for field in REQUIRED_FIELDS[alpha_type]:
            count = collection.count_documents({"$or": [{field: {"$exists": False}}, {field: None}]})
            if count:
                missing[field] = count
        return dg.AssetCheckResult(passed=not missing, metadata={
            "fields": ", ".join(REQUIRED_FIELDS[alpha_type]),
            "documents_missing_by_field": dg.MetadataValue.json(missing)})

    @dg.asset_check(asset=key, name="dates_parse",
                    description="dateCreated/dateModified/dateSubmitted parse as ISO 8601 with an offset and agree "
                                "with the UTC dates indexed in _dates.")
    def dates_parse(alpha_store: AlphaStoreResource) -> dg.AssetCheckResult:
        collection = alpha_store.collection_of(alpha_type)
        problems, checked = [], 0
        for doc in collection.find({}, {**{f: 1 for f in DATE_FIELDS}, DATES_FIELD: 1}):
            checked += 1
            sidecar = doc.get(DATES_FIELD) or {}
            for field in DATE_FIELDS:
                value = doc.get(field)
                if value is None:
                    if field == "dateCreated":
                        problems.append({"id": doc["_id"], "field": field, "problem": "missing"})
                    continue
                try:
                    parsed = to_utc(value)
                except ValueError as error:
                    problems.append({"id": doc["_id"], "field": field, "problem": str(error)})
                    continue
                indexed = sidecar.get(field)
                # BSON dates keep milliseconds
                if indexed is None or abs((indexed.replace(tzinfo=parsed.tzinfo) - parsed).total_seconds()) >= 0.001:
                    problems.append({"id": doc["_id"], "field": field, "problem": f"{DATES_FIELD}.{field} is {indexed}"})
        return dg.AssetCheckResult(passed=not problems, metadata={
            "documents_checked": checked, "problems": len(problems),
            "sample": dg.MetadataValue.json(problems[:SAMPLE])})

    return [documents_match_ledger, type_matches_collection, required_fields_present, dates_parse]


alpha_checks = [check for name, alpha_type in IMPORTED_TYPES.items() for check in _checks_for(name, alpha_type)]
