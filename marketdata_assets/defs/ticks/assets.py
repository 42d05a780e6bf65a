import time

import dagster as dg

from marketdata_assets import pools
from marketdata_assets.resources import ClickHouseResource


@dg.asset(group_name="ticks", pool=pools.CLICKHOUSE, kinds={"clickhouse"})
def tick_store(context: dg.AssetExecutionContext, clickhouse: ClickHouseResource) -> dg.MaterializeResult:
    """The ClickHouse database that holds normalized trades, order-book snapshots and bars."""
    started = time.monotonic()
    with clickhouse.get_client() as client:
        version = client.server_version
        tables = client.query(
            "SELECT name, engine, total_rows FROM system.tables WHERE database = {db:String} ORDER BY name",
            parameters={"db": clickhouse.database}).result_rows
    context.log.info(f"ClickHouse {version}: database {clickhouse.database} has {len(tables)} tables")
    return dg.MaterializeResult(metadata={
        "engine_version": version,
        "embedded": clickhouse.embedded,
        "database": clickhouse.database,
        "tables": dg.MetadataValue.md(
            "| table | engine | rows |\n|---|---|---|\n"
            + "".join(f"| {name} | {engine} | {rows or 0} |\n" for name, engine, rows in tables)) if tables else "none yet",
        "seconds": round(time.monotonic() - started, 3),
    })
