"""The repair of the crypto trades' trade-id continuity (its check, `trade_ids_continuous`, is declared
with the crypto checks in quality/slice_checks.py, as the dump and archive trades' are):

- `trade_id_refill` (day x venue, like crypto_ticks; run it by hand or as a backfill on the
  partitions the check failed, `instruments` to name the failed ones): fetches exactly the missing ids
  from the venue's REST API and writes each completed slice as one new load; a slice without holes
  sends no request.
"""

import dagster as dg

from marketdata_assets.defs._common.config import RunConfig
from marketdata_assets.defs._common.partitions import crypto_key, slice_keys
from marketdata_assets.defs._common.refill import refill_asset, refill_by_partition
from marketdata_assets.defs.crypto.assets import VENUE_KEYS, venue_resources
from marketdata_assets.defs.crypto.partitions import crypto_partitions
from marketdata_assets.quality.continuity import refill
from marketdata_assets.resources import ClickHouseResource
from marketdata_assets.sources.registry import ID_SEQUENCES

GROUP = "crypto"


class RefillConfig(RunConfig):
    max_ranges: int = 100_000
    """Hole ranges fetched per slice in one run (a slice with more: run again)."""
    workers: int = 4
    """Slices fetched at once per venue."""
    max_failed: int = 0
    """The step fails when more slices than this could not be refilled (the others are written)."""
    instruments: list[str] = []  # noqa: RUF012 - pydantic copies the default
    """Only these instruments (VENUE:INSTRUMENT) of the run's venues; empty: every configured one."""


# the venues whose trade ids can be fetched by id (sources.registry.ID_SEQUENCES)
REFILL_VENUES = sorted({seq.venue for seq in ID_SEQUENCES})


@refill_asset(GROUP, crypto_partitions, "crypto_trades", [VENUE_KEYS[venue] for venue in REFILL_VENUES])
def trade_id_refill(context: dg.AssetExecutionContext, config: RefillConfig) -> dg.MaterializeResult:
    """The trade ids missing from the run's slices (see the trade_ids_continuous check), fetched by id
    from the venue and written with the slice's stored trades as its new load (one pointer flip)."""
    clickhouse: ClickHouseResource = context.resources.clickhouse
    clients = {
        venue: resource.make_client for venue, resource in venue_resources(context, REFILL_VENUES).items()
    }
    report = refill(
        clickhouse.get_client,
        clickhouse.database,
        context.run.run_id,
        slice_keys(context.partition_keys, ["trades"], config.instruments),
        clients,
        max_ranges=config.max_ranges,
        workers=config.workers,
        log=context.log.info,
    )
    clickhouse.close()
    return refill_by_partition(
        context, "trade_id_refill", report, config.max_failed, lambda key: crypto_key(key.day, key.venue)
    )
