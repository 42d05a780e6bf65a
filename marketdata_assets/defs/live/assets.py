"""`live_trades`: Binance spot trades of the closed landing hours (ingest/live/load.py), hour x
instrument, in the same ClickHouse `trades` slices as the REST and archive data.

Thin: the run's (hour, instrument) keys in, the day slices those hours feed rewritten by one engine
run (each from every closed file of its day so far: idempotent and exact; docs/live-capture.md), one
MaterializeResult (rows loaded, slices, the run's hours' frames, discards by reason, markers, lag
exchange -> receive p50/p95) and one AssetObservation per (hour, instrument) with that hour's own
figures: the collector's health per landing hour in the UI (frames, gaps, disconnects, overflow, lag).
"""

import dagster as dg

from marketdata_assets.core import settings
from marketdata_assets.core.naming import parse_partition_key
from marketdata_assets.defs._common.ingest import TICK_STORE, IngestConfig, engine, materialize, planned
from marketdata_assets.defs.live.partitions import FRESHNESS, landing_hour, live_partitions
from marketdata_assets.ingest.engine import IngestReport
from marketdata_assets.ingest.live.load import (
    SOURCE,
    HourFigures,
    LiveTradesLoad,
    live_slices,
    stored_live_rows,
)
from marketdata_assets.orchestration import pools
from marketdata_assets.resources import ClickHouseResource

GROUP = "live"


def hour_instruments(partition_keys) -> list[tuple[str, str]]:
    """(landing hour, instrument) of each 'YYYY-MM-DD-HH:00|VENUE:INSTRUMENT' key."""
    pairs = []
    for key in partition_keys:
        hour, instrument = str(key).split("|")
        pairs.append((landing_hour(hour), parse_partition_key(instrument).instrument))
    return pairs


def merged(figures: list[HourFigures]) -> HourFigures:
    """Several hours' figures as one (the run's)."""
    total = HourFigures(", ".join(f.hour for f in figures[:3]) + (" ..." if len(figures) > 3 else ""))
    for f in figures:
        total.files += f.files
        total.frames, total.trades = total.frames + f.frames, total.trades + f.trades
        total.discarded.update(f.discarded)
        total.markers.update(f.markers)
        total.lags_ms += f.lags_ms
        total.recovered, total.torn_dropped = total.recovered + f.recovered, total.torn_dropped + f.torn_dropped
    return total


def hour_metadata(figures: HourFigures) -> dict:
    plain = figures.metadata()
    return {**plain, "discarded_by_reason": dg.MetadataValue.json(plain["discarded_by_reason"]),
            "markers": dg.MetadataValue.json(plain["markers"]),
            **{k: dg.MetadataValue.float(plain[k]) for k in ("lag_p50_ms", "lag_p95_ms") if plain[k] is not None}}


@dg.asset(group_name=GROUP, partitions_def=live_partitions, deps=[TICK_STORE], kinds={"clickhouse"},
          backfill_policy=dg.BackfillPolicy.single_run(), pool=pools.CLICKHOUSE, freshness_policy=FRESHNESS)
def live_trades(context: dg.AssetExecutionContext, config: IngestConfig, clickhouse: ClickHouseResource):
    """Binance spot trades from the live collector's closed landing hours, in ClickHouse `trades`
    (venue BINANCE, every individual trade, each trade id once): each run rewrites the UTC day slices
    its hours feed from every closed landing file of those days so far (a re-run changes nothing)."""
    pairs = hour_instruments(context.partition_keys)
    report = IngestReport()
    slices = [key for hour, instrument in pairs for key in live_slices([hour], [instrument])]
    slices = planned(clickhouse, config, SOURCE, slices, report)
    with clickhouse.get_client() as client:  # what a refill added is kept (ingest/live/load.py)
        stored = stored_live_rows(client, clickhouse.database, slices)
    load = LiveTradesLoad(settings.live_landing_dir(), slices, stored)
    report.merge(engine(context, clickhouse, config).run([[load.feed(config.workers or 1, config.attempts)]]))
    clickhouse.close()
    hours = []
    for key, (hour, instrument) in zip(context.partition_keys, pairs, strict=True):
        figures = load.figures.get(instrument, {}).get(hour, HourFigures(hour))
        hours.append(figures)
        context.log_event(dg.AssetObservation(asset_key=context.asset_key, partition=str(key),
                                              metadata=hour_metadata(figures)))
    run = hour_metadata(merged(hours))
    extra = {"trades": {("hours" if name == "hour" else name): value for name, value in run.items()}}
    extra["trades"]["kept_from_store"] = sum(load.kept.values())  # trades a refill added, no file holds
    yield from materialize(context, report, {"trades": "live_trades"}, config.max_failed, extra)

