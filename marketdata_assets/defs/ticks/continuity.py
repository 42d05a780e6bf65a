"""Trade-id continuity (the logic: quality/continuity.py).

- `trade_ids_continuous`, a check on the trades assets (`crypto_trades`, `binance_dump_trades`, and
  `binance_archive_trades` / `binance_archive_agg_trades` when those archives are configured): per
  day x instrument partition, the ids missing inside the slice and at midnight (after the previous
  day, when it is stored with ids of the same sequence), named with their first ranges; one evaluation
  per partition.
- `trade_id_refill` (day x instrument, like crypto_ticks; run it by hand or as a backfill on the
  partitions the check failed): fetches exactly the missing ids from the venue's REST API and
  writes each completed slice as one new load; a partition without holes sends no request.
"""

import warnings
from collections.abc import Iterator

import dagster as dg

from marketdata_assets.defs.ticks.archives import ARCHIVE_ASSETS, binance_archive_partitions
from marketdata_assets.defs.ticks.checks import record
from marketdata_assets.defs.ticks.partitions import binance_dump_partitions, crypto_partitions, slice_keys
from marketdata_assets.orchestration import pools
from marketdata_assets.quality.continuity import CHECKED_DATASETS, find_holes, refill
from marketdata_assets.resources import ClickHouseResource
from marketdata_assets.resources.sources import CryptoVenueResource

CHECK = "trade_ids_continuous"
DESCRIPTION = ("No trade id is missing where the venue numbers trades one by one per instrument (Binance aggregate "
               "or individual trade ids, OKX tradeId, Deribit trade_seq): inside the day, and from the previous "
               "day's last id (when stored, same sequence) to this day's first.")
GROUP = "ticks_repair"


def _check(asset: str, partitions_def, dataset: str = "trades") -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=asset, name=CHECK, description=DESCRIPTION, partitions_def=partitions_def)
    def check(context: dg.AssetCheckExecutionContext, clickhouse: ClickHouseResource) -> Iterator:
        with clickhouse.get_client() as client:
            found = find_holes(client, clickhouse.database, slice_keys(context.partition_keys, [dataset]),
                               dataset=dataset)
        outcomes = {}
        for key in map(str, context.partition_keys):
            ids = found.get(key)
            metadata = {**(ids.metadata() if ids else {}), "checked": key}
            if ids:
                metadata["holes"] = dg.MetadataValue.md(metadata["holes"])
            outcomes[key] = (ids is None or ids.passed, metadata, ids.summary() if ids else f"{key}: no active load")
        yield from record(context, outcomes)

    return check


with warnings.catch_warnings():  # partitioned asset checks are a preview feature (see checks.py)
    warnings.simplefilter("ignore", dg.PreviewWarning)
    continuity_checks = [_check("crypto_trades", crypto_partitions),
                         _check("binance_dump_trades", binance_dump_partitions),
                         *(_check(ARCHIVE_ASSETS[dataset], binance_archive_partitions, dataset)
                           for dataset in CHECKED_DATASETS if dataset in ARCHIVE_ASSETS)]


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
