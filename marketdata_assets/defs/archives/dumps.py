"""Binance daily dump files (data.binance.vision spot `trades` and `1m` klines, .csv or .zip) from a
landing directory into the same ClickHouse tables as the REST data (sources.binance_vision.dumps).

Partitions: UTC day x venue (BINANCE); a run loads every instrument with a file of its days in the
landing area (or the `instruments` it names). A (dataset, BINANCE, instrument, day) slice is
ONE slice whichever source wrote it: a dump and a REST run of the same instrument-day replace each
other (the last load wins); the dump holds every individual trade, the REST path aggregate trades.
"""

import dagster as dg

from marketdata_assets.core import settings
from marketdata_assets.defs._common.ingest import (
    IngestConfig,
    engine,
    materialize,
    planned,
    slice_assets,
    tick_spec,
)
from marketdata_assets.defs._common.partitions import crypto_key, slice_keys
from marketdata_assets.defs.archives.partitions import binance_dump_partitions
from marketdata_assets.ingest.dumps import dump_feed
from marketdata_assets.ingest.engine import IngestReport
from marketdata_assets.orchestration import pools
from marketdata_assets.resources import ClickHouseResource
from marketdata_assets.sources.binance_vision.dumps import DUMP_DATASETS, SOURCE, VENUE, landing_dumps

GROUP = "archives"


class DumpIngestConfig(IngestConfig):
    instruments: list[str] = []  # noqa: RUF012 - pydantic copies the default
    """Only these instruments (BINANCE:INSTRUMENT); empty: every one with a file in the landing area."""


DUMP_ASSETS = {"trades": "binance_dump_trades", "bars_1m": "binance_dump_bars_1m"}  # dataset -> asset


_DESCRIPTIONS = {  # asset -> description
    "binance_dump_trades": "Binance spot trades from data.binance.vision daily dump files in the landing "
    "directory, in ClickHouse `trades` (venue BINANCE; every individual trade).",
    "binance_dump_bars_1m": "Binance spot 1-minute klines from daily dump files, in ClickHouse `bars_1m`.",
}


@slice_assets(
    "binance_dumps",
    [tick_spec(asset, GROUP, text, skippable=True) for asset, text in _DESCRIPTIONS.items()],
    binance_dump_partitions,
    pools.CLICKHOUSE,
)
def binance_dumps(
    context: dg.AssetExecutionContext, config: DumpIngestConfig, clickhouse: ClickHouseResource
):
    """Load the dump files of the run's (day, venue) partitions from the landing directory: every
    instrument with a file of the day, each its own slice."""
    assets = {d: a for d, a in DUMP_ASSETS.items() if dg.AssetKey(a) in context.selected_asset_keys}
    report = IngestReport()
    root = settings.binance_dumps_landing_dir()
    files = {(DUMP_DATASETS[name.family][0], name.instrument, name.day) for _, name in landing_dumps(root)}
    wanted = slice_keys(
        context.partition_keys,
        assets,
        config.instruments,
        {VENUE: sorted({instrument for _, instrument, _ in files})},
    )
    if not config.instruments:  # the slices with a file (a named instrument without one fails, named)
        wanted = [k for k in wanted if (k.dataset, k.instrument, k.day) in files]
    keys = planned(clickhouse, config, SOURCE, wanted, report)
    feed = dump_feed(
        root,
        keys,
        engine_reads_files=clickhouse.embedded,
        database=clickhouse.database,
        run_id=context.run.run_id,
    )
    report.merge(engine(context, clickhouse, config).run([[feed]]))
    clickhouse.close()
    yield from materialize(
        context, report, assets, config.max_failed, partition_of=lambda key: crypto_key(key.day, key.venue)
    )
