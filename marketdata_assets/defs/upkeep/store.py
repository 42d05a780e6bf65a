"""The ClickHouse store: its tables, load pointer, read views and ingest log, created or migrated
(stores/clickhouse/tables.py) before any ingest asset writes (they depend on it by key)."""

import time

import dagster as dg

from marketdata_assets.core.markdown import table
from marketdata_assets.orchestration import pools
from marketdata_assets.resources import ClickHouseResource
from marketdata_assets.stores.clickhouse import tables as ct

GROUP = "upkeep"


@dg.asset(group_name=GROUP, pool=pools.CLICKHOUSE, kinds={"clickhouse"})
def tick_store(context: dg.AssetExecutionContext, clickhouse: ClickHouseResource) -> dg.MaterializeResult:
    """The ClickHouse database that holds normalized trades, order-book snapshots and bars: its
    tables, the load pointer, the read views and the ingest log (created if missing)."""
    started = time.monotonic()
    with clickhouse.get_client() as client:
        ct.ensure_tables(client, clickhouse.database)
        version = client.server_version
        tables = client.query(
            "SELECT name, engine, total_rows FROM system.tables WHERE database = {db:String} ORDER BY name",
            parameters={"db": clickhouse.database},
        ).result_rows
    context.log.info(
        f"ClickHouse {version}: database {clickhouse.database} has {len(tables)} tables and views"
    )
    return dg.MaterializeResult(
        metadata={
            "engine_version": version,
            "embedded": clickhouse.embedded,
            "database": clickhouse.database,
            "tables": dg.MetadataValue.md(
                table(["table", "engine", "rows"], ((n, e, r or 0) for n, e, r in tables))
            ),
            "seconds": round(time.monotonic() - started, 3),
        }
    )
