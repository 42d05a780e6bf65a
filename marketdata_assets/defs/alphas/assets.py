import time

import dagster as dg
import pymongo

from marketdata_assets import pools
from marketdata_assets.resources import MongoResource

# Indexes every alpha collection carries (seed 000 / the alphas issue): lookups by id, and the
# filters quants use: type, creation/modification dates, status, region.
ALPHA_INDEXES = [
    pymongo.IndexModel([("id", pymongo.ASCENDING)], name="id", unique=True),
    pymongo.IndexModel([("type", pymongo.ASCENDING)], name="type"),
    pymongo.IndexModel([("dateCreated", pymongo.ASCENDING)], name="dateCreated"),
    pymongo.IndexModel([("dateModified", pymongo.ASCENDING)], name="dateModified"),
    pymongo.IndexModel([("status", pymongo.ASCENDING)], name="status"),
    pymongo.IndexModel([("settings.region", pymongo.ASCENDING)], name="region"),
]


class AlphaStoreConfig(dg.Config):
    """Names as in the seed's mongo_config.json."""

    db_name_regular: str = "regular_alphas"
    db_name_super: str = "super_alphas"
    collection: str = "alphas"


@dg.asset(group_name="alphas", pool=pools.MONGODB, kinds={"mongodb"})
def alpha_store(context: dg.AssetExecutionContext, config: AlphaStoreConfig, mongo: MongoResource) -> dg.MaterializeResult:
    """The MongoDB databases and collections that hold REGULAR and SUPER alphas, with their indexes."""
    started = time.monotonic()
    collections = {}
    for database in (config.db_name_regular, config.db_name_super):
        collection = mongo.database(database)[config.collection]
        collections[f"{database}.{config.collection}"] = {
            "indexes": mongo.ensure_indexes(collection, ALPHA_INDEXES),
            "documents": collection.estimated_document_count(),
        }
    context.log.info(f"alpha collections ready: {', '.join(collections)}")
    return dg.MaterializeResult(metadata={
        "server_version": mongo.server_version(),
        "collections": dg.MetadataValue.json(collections),
        "documents": sum(c["documents"] for c in collections.values()),
        "seconds": round(time.monotonic() - started, 3),
    })
