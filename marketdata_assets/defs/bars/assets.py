import time

import dagster as dg

from marketdata_assets import pools
from marketdata_assets.resources import TimescaleResource


@dg.asset(group_name="bars", pool=pools.TIMESCALEDB, kinds={"timescaledb"})
def bar_store(context: dg.AssetExecutionContext, timescale: TimescaleResource) -> dg.MaterializeResult:
    """The market database with the TimescaleDB extension; its capabilities decide the load and
    aggregate paths (COPY vs INSERT, continuous aggregate vs table)."""
    started = time.monotonic()
    timescale.ensure_extension()
    capabilities = timescale.capabilities
    context.log.info(f"TimescaleDB {capabilities.extension_version} ({capabilities.license} license) "
                     f"on {capabilities.server_version}")
    return dg.MaterializeResult(metadata={
        **{key: str(value) for key, value in capabilities.as_metadata().items()},
        "seconds": round(time.monotonic() - started, 3),
    })
