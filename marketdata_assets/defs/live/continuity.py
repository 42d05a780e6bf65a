"""`live_trade_id_refill`: the trade ids missing from the live trades' day slices (the
`trade_ids_continuous` check of live_trades), fetched by id from the venue (Binance `historicalTrades`,
OKX history-trades, Deribit trades by trade_seq; no key) with the existing refill
(quality.continuity.refill) and written with the slice's stored trades as its new load, under the
slice's own source (BINANCE_LIVE / OKX_LIVE / DERIBIT_LIVE: the same id sequence). Then each hour of
the refilled days is reconciled again (defs/live/assets.py `reconcile`: trades from the live landing
vs from the refill, the book gaps; metadata and ClickHouse `live_reconciliation`).

Partitioned like live_trades (hours; each its day slices); run it by hand (`refill_command`, the
command the check names) or as a backfill on the hours whose check failed. It calls a vendor, so it
runs by itself only for the ids before capture: with `before_capture`, in the landing sensor's run of
an instrument's first captured hour of the day (defs/live/sensors.py). What it
adds survives the day's later hourly loads: a live load keeps the stored trades of a live slice
whose ids no landing file holds (ingest/live/hourly/load.py, `kept_from_store` in live_trades' metadata).
Each hour's materialization carries its own reconciliation; the refill's figures (its day slices') are
`run_*`.
"""

import json
from datetime import date

import dagster as dg

from marketdata_assets.core import settings
from marketdata_assets.datasets.slices import SliceKey
from marketdata_assets.defs._common.config import RunConfig
from marketdata_assets.defs._common.figures import add_own, as_run
from marketdata_assets.defs._common.refill import refill_asset, refill_result
from marketdata_assets.defs.live.assets import GROUP, hour_instruments, reconcile, reconciliation_metadata
from marketdata_assets.defs.live.partitions import landing_hour, live_partitions
from marketdata_assets.ingest.live.hourly.load import LIVE_VENUES, capture_starts, day_origins
from marketdata_assets.quality.continuity import refill
from marketdata_assets.resources import ClickHouseResource
from marketdata_assets.sources.config import CRYPTO_SOURCES

VENUE_KEYS = {venue: CRYPTO_SOURCES[venue] for venue in LIVE_VENUES}  # each venue's REST resource
ASSET = "live_trade_id_refill"


class LiveRefillConfig(RunConfig):
    max_ranges: int = 100_000
    """Hole ranges fetched per slice in one run (a slice with more: run again)."""
    max_failed: int = 0
    """The step fails when more slices than this could not be refilled (the others are written)."""
    instruments: list[str] = []  # noqa: RUF012 - pydantic copies the default
    """Only these instruments (VENUE:INSTRUMENT); empty: every one with a closed trade file of the run's
    hours."""
    before_capture: bool = False
    """Only the ids before the instrument's capture began that day (below the first id its landing holds):
    what the landing sensor's run of a first captured hour fetches by itself."""


def refill_command(hour: str, instruments: list[str]) -> str:
    """The command that runs this refill by hand for `instruments` (VENUE:INSTRUMENT) of the hour key's
    day slices, from the project directory."""
    config = json.dumps(
        {"ops": {ASSET: {"config": {"instruments": sorted(instruments)}}}}, separators=(",", ":")
    )
    return f"dg launch --assets {ASSET} --partition {hour} --config-json '{config}'"


@refill_asset(GROUP, live_partitions, "live_trades", VENUE_KEYS.values())
def live_trade_id_refill(context: dg.AssetExecutionContext, config: LiveRefillConfig) -> dg.MaterializeResult:
    """The trade ids missing from the run's hours' day slices of live trades, fetched by id from the
    venue and written with the slice's stored trades as its new load (one pointer flip); then the
    hours reconciled: trades from the live landing vs from the refill."""
    clickhouse: ClickHouseResource = context.resources.clickhouse
    triples = hour_instruments(context.partition_keys, "live_trades", config.instruments)
    slices = sorted(
        {
            SliceKey("trades", venue, instrument, date.fromisoformat(hour[:10]))
            for hour, venue, instrument in triples
        }
    )
    clients = {
        venue: getattr(context.resources, VENUE_KEYS[venue]).make_client
        for venue in {s.venue for s in slices}
    }
    root = settings.live_landing_dir()
    starts = None
    if config.before_capture:
        with clickhouse.get_client() as client:
            starts = capture_starts(client, clickhouse.database, root, slices)
    report = refill(
        clickhouse.get_client,
        clickhouse.database,
        context.run.run_id,
        slices,
        clients,
        max_ranges=config.max_ranges,
        workers=1,
        log=context.log.info,
        before_capture=starts,
    )
    with clickhouse.get_client() as client:
        origins = day_origins(client, clickhouse.database, root, slices)
    records = reconcile(clickhouse, root, origins, triples)
    clickhouse.close()
    result = refill_result(ASSET, report, config.max_failed)
    keys = context.partition_keys
    for key in keys:  # each hour's own reconciliation: its trades from the landing and from the refill
        mine = [r for r in records if r["hour"] == landing_hour(str(key))]
        add_own(context, key, reconciliation_metadata(mine), len(keys))
    run = {**(result.metadata or {}), **reconciliation_metadata(records)}  # the day slices' refill: the run's
    run["holes"] = "the ids before capture only" if config.before_capture else "every missing id"
    return dg.MaterializeResult(metadata=as_run(run))
