"""Trade-id continuity of the crypto trades (the check: defs/_common/continuity.py) and its repair.

- `trade_ids_continuous` on `crypto_trades` (the dump and archive trades have theirs in defs/archives).
- `trade_id_refill` (day x instrument, like crypto_ticks; run it by hand or as a backfill on the
  partitions the check failed): fetches exactly the missing ids from the venue's REST API and
  writes each completed slice as one new load; a partition without holes sends no request.
"""

import dagster as dg

from marketdata_assets.defs._common.checks import preview
from marketdata_assets.defs._common.continuity import continuity_check
from marketdata_assets.defs._common.partitions import slice_keys
from marketdata_assets.defs.crypto.partitions import crypto_partitions
from marketdata_assets.orchestration import pools
from marketdata_assets.quality.continuity import refill
from marketdata_assets.resources import ClickHouseResource
from marketdata_assets.resources.sources import CryptoVenueResource

GROUP = "crypto"

with preview():
    continuity_checks = [continuity_check("crypto_trades", crypto_partitions)]


class RefillConfig(dg.Config):
    max_ranges: int = 100_000
    """Hole ranges fetched per slice in one run (a slice with more: run again)."""
    workers: int = 4
    """Slices fetched at once per venue."""
    max_failed: int = 0
    """The step fails when more slices than this could not be refilled (the others are written)."""


@dg.asset(group_name=GROUP, partitions_def=crypto_partitions, deps=["crypto_trades"], pool=pools.CRYPTO_VENUES,
          backfill_policy=dg.BackfillPolicy.single_run(), kinds={"clickhouse", "polars"})
def trade_id_refill(context: dg.AssetExecutionContext, config: RefillConfig, clickhouse: ClickHouseResource,
                    binance: CryptoVenueResource, okx: CryptoVenueResource,
                    deribit: CryptoVenueResource) -> dg.MaterializeResult:
    """The trade ids missing from the run's slices (see the trade_ids_continuous check), fetched by id
    from the venue and written with the slice's stored trades as its new load (one pointer flip)."""
    clients = {"BINANCE": binance.make_client, "OKX": okx.make_client, "DERIBIT": deribit.make_client}
    report = refill(clickhouse.get_client, clickhouse.database, context.run.run_id,
                    slice_keys(context.partition_keys, ["trades"]), clients, max_ranges=config.max_ranges,
                    workers=config.workers, log=context.log.info)
    clickhouse.close()
    metadata = report.metadata()
    metadata["slices"] = dg.MetadataValue.md(metadata["slices"])
    if len(report.failures()) > config.max_failed:
        errors = "; ".join(o.error[:300] for o in report.failures()[:3])
        raise dg.Failure(description=f"trade_id_refill: {report.summary()}: {errors}", metadata=metadata,
                         allow_retries=False)
    return dg.MaterializeResult(metadata=metadata)
