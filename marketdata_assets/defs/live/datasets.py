"""`live_tickers`, `live_bars_1m`, `live_liquidations`, `live_open_interest`, `live_mark_funding`,
`live_books`, `live_agg_trades` (opt-in at the collector: Binance spot's aggTrade): the
live datasets other than trades from the collector's closed landing hours (ingest/live/hourly/dataset_load.py;
which venue lands which: ingest/live/hourly/dataset_rows.py), by hour like `live_trades`, in the
same ClickHouse slices as the REST loads of the dataset (mark_funding: its own table, the live
stream's samples, never `funding_rates`' settlements).

One factory (`live_dataset_asset`), one asset per dataset, each thin: the run's hours and their
instruments in, the day slices those hours feed rewritten by one engine run (a feed per venue, source
`<VENUE>_LIVE`), one MaterializeResult (the engine's figures, the hours' frames, messages kept,
discards by reason, markers, lag) and one AssetObservation per hour with its figures and its
instruments'. The checks: defs/live/checks.py; the sensor requesting their hours: defs/live/sensors.py.
"""

import dagster as dg

from marketdata_assets.core import settings
from marketdata_assets.defs._common.ingest import engine, materialize, planned, run_instruments
from marketdata_assets.defs.live.assets import (
    HOURLY_LOAD,
    LiveIngestConfig,
    hour_instruments,
    hour_observations,
    run_hours_metadata,
)
from marketdata_assets.defs.live.landed import asset_name
from marketdata_assets.ingest.engine import IngestReport
from marketdata_assets.ingest.live.hourly.dataset_load import LiveDatasetLoad, dataset_slices
from marketdata_assets.ingest.live.hourly.dataset_rows import CHANNELS, LIVE_DATASET_NAMES, SOURCES
from marketdata_assets.ingest.live.hourly.landing_hours import HourFigures
from marketdata_assets.resources import ClickHouseResource

DESCRIPTIONS = {
    "tickers": "best bid/ask (and last) as the venues stream them, in `tickers`",
    "bars_1m": "closed 1-minute bars as the venues stream them, in `bars_1m`",
    "liquidations": "forced liquidations as the venues stream them, in `liquidations`",
    "open_interest": "open interest as the venues stream it, in `open_interest`",
    "mark_funding": "mark, index and current funding-rate samples (not settlements), in `mark_funding`",
    "books": "top-N book snapshots (the collector's books, each second they moved), in `book_snapshots`",
    "agg_trades": "aggregate trades of a collector that enabled them (opt-in), in `agg_trades`",
}


def load_hours(context, config: LiveIngestConfig, clickhouse: ClickHouseResource, dataset: str):
    """The run's hours of `dataset` loaded (one engine run), their observations logged; the asset's
    MaterializeResult (or the step's failure)."""
    venues = CHANNELS[dataset]
    triples = hour_instruments(
        context.partition_keys, asset_name(dataset), config.instruments, venues, dataset
    )
    report = IngestReport()
    slices = []
    for venue in dict.fromkeys(v for _, v, _ in triples):
        mine = dict.fromkeys(
            key
            for hour, v, instrument in triples
            if v == venue
            for key in dataset_slices(dataset, [hour], [(v, instrument)])
        )
        slices += planned(clickhouse, config, SOURCES[venue], list(mine), report)
    instruments = run_instruments(clickhouse, {key.venue for key in slices})  # each hour's valid sizes
    load = LiveDatasetLoad(settings.live_landing_dir(), slices, service=instruments)
    report.merge(engine(context, clickhouse, config).run([load.feeds(config.workers or 1, config.attempts)]))
    instruments.keep()  # what the load looked up at the venues, stored once
    instruments.close()
    clickhouse.close()
    hours = hour_observations(
        context,
        lambda v, i, h: load.figures.get((v, i), {}).get(h, HourFigures(h)),
        triples,
        own_rows=lambda f: f.stored,
        kept="messages",
    )
    yield from materialize(
        context,
        report,
        {dataset: asset_name(dataset)},
        config.max_failed,
        {dataset: run_hours_metadata(hours, report.metadata(dataset)["rows"], "messages")},
    )


def live_dataset_asset(dataset: str) -> dg.AssetsDefinition:
    """The hourly live asset of `dataset` (a key of ingest/live/hourly/dataset_rows.py `CHANNELS`)."""
    venues = ", ".join(CHANNELS[dataset])

    @dg.asset(
        **HOURLY_LOAD,
        name=asset_name(dataset),
        description=f"Live {DESCRIPTIONS[dataset]} ({venues}), from the collector's closed landing hours: "
        "each run rewrites the UTC day slices its hours feed from every closed landing file of "
        "those days so far (a re-run changes nothing).",
    )
    def live_dataset(
        context: dg.AssetExecutionContext, config: LiveIngestConfig, clickhouse: ClickHouseResource
    ):
        yield from load_hours(context, config, clickhouse, dataset)

    return live_dataset


live_dataset_assets = [live_dataset_asset(dataset) for dataset in LIVE_DATASET_NAMES]
