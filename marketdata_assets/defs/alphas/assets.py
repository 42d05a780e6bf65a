import time

import dagster as dg

from marketdata_assets import pools
from marketdata_assets.lib.alphas.importer import ensure_alpha_indexes
from marketdata_assets.resources import MongoResource


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
    ensure_alpha_indexes(mongo.database(config.db_name_regular), mongo.database(config.db_name_super),
                         config.collection)
    for database in (config.db_name_regular, config.db_name_super):
        collection = mongo.database(database)[config.collection]
        collections[f"{database}.{config.collection}"] = {
            "indexes": sorted(collection.index_information()),
            "documents": collection.estimated_document_count(),
        }
    context.log.info(f"alpha collections ready: {', '.join(collections)}")
    return dg.MaterializeResult(metadata={
        "server_version": mongo.server_version(),
        "collections": dg.MetadataValue.json(collections),
        "documents": sum(c["documents"] for c in collections.values()),
        "seconds": round(time.monotonic() - started, 3),
    })
