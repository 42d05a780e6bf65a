"""Ticks assets: the ClickHouse store, the crypto venues' trades, bars and book snapshots.

Every ingest asset reads the same way: partition keys and run config in → the slices
(`lib.ticks.engine.SliceKey`) → `Engine.run(feeds)` → `materialize(report)`: one
MaterializeResult per asset, or a step failure naming the slices that did not load (the others
are written; the partitions show as failed until a `retry_failed` run loads the rest).
"""

import time
from collections.abc import Iterator

import dagster as dg

from marketdata_assets import pools
from marketdata_assets.defs.ticks.partitions import (
    FRESHNESS,
    crypto_instruments,
    crypto_partitions,
    slice_keys,
)
from marketdata_assets.defs.ticks.resources import CryptoVenueResource, load_providers_config
from marketdata_assets.lib.markdown import table
from marketdata_assets.lib.ticks import clickhouse_tables as ct
from marketdata_assets.lib.ticks.engine import Engine, IngestReport, plan
from marketdata_assets.lib.ticks.instruments import parse_partition_key
from marketdata_assets.lib.ticks.sources import book_feed, venue_feed
from marketdata_assets.resources import ClickHouseResource

GROUP = "ticks"
CRYPTO_ASSETS = {"trades": "crypto_trades", "bars_1m": "crypto_bars_1m"}  # dataset -> asset


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
            parameters={"db": clickhouse.database}).result_rows
    context.log.info(f"ClickHouse {version}: database {clickhouse.database} has {len(tables)} tables and views")
    return dg.MaterializeResult(metadata={
        "engine_version": version, "embedded": clickhouse.embedded, "database": clickhouse.database,
        "tables": dg.MetadataValue.md(table(["table", "engine", "rows"], ((n, e, r or 0) for n, e, r in tables))),
        "seconds": round(time.monotonic() - started, 3),
    })


# --------------------------------------------------------------------------------------------
# What every ingest asset shares: the run options, the engine, the report as Dagster results
# --------------------------------------------------------------------------------------------

class RunDeadline(dg.Config):
    deadline_minutes: float = 180
    """The whole run's deadline: then a fetch still going fails and the rest is skipped (retry_failed
    picks them up), so a run never holds a source's pool forever; 0: none."""


class IngestConfig(RunDeadline):
    retry_failed: bool = False
    """Only slices whose latest ingest_log attempt did not succeed (failed, skipped, never tried)."""
    retry_failed_from_run: str = ""
    """Only slices that failed or were skipped in this run id."""
    attempts: int = 2
    """Fetch attempts per slice (on top of the HTTP retries of 429/5xx/timeouts)."""
    max_failed: int = 0
    """The step fails when more slices than this failed (after writing the others)."""
    workers: int = 0
    """Fetches at once; 0: the source's `workers` from the providers config."""


def engine(context, clickhouse: ClickHouseResource, config: RunDeadline) -> Engine:
    return Engine(clickhouse.get_client, clickhouse.database, context.run.run_id, log=context.log.info,
                  deadline_s=config.deadline_minutes * 60 or None)


def planned(clickhouse: ClickHouseResource, config: IngestConfig, source: str, keys, report: IngestReport) -> list:
    with clickhouse.get_client() as client:
        ct.ensure_tables(client, clickhouse.database)
        return plan(client, clickhouse.database, source, keys, retry_failed=config.retry_failed,
                    retry_failed_from_run=config.retry_failed_from_run, report=report)


def materialize(context, report: IngestReport, assets: dict[str, str], max_failed: int) -> Iterator:
    """The report as one MaterializeResult per asset (dataset -> asset), or the step's failure."""
    metadata = {dataset: _metadata(report, dataset) for dataset in assets}
    for dataset, asset in assets.items():
        context.log.info(f"{asset}: {report.summary(dataset)}, {metadata[dataset]['rows'].value:,} rows")
    failures = report.failures()
    if len(failures) > max_failed:
        first = "; ".join(o.error[:300] for o in failures[:3])
        more = f" (and {len(failures) - 3} more, see the failures table)" if len(failures) > 3 else ""
        summaries = ", ".join(f"{asset} {report.summary(dataset)}" for dataset, asset in assets.items())
        raise dg.Failure(
            description=f"{', '.join(assets.values())}: {len(failures)} slice(s) not loaded ({summaries}); the "
                        f"others are written; rerun with retry_failed_from_run: {context.run.run_id} to load only "
                        f"those. {first}{more}",
            metadata={**{f"{asset}_summary": report.summary(dataset) for dataset, asset in assets.items()},
                      "failures": dg.MetadataValue.md(report.failures_table()),
                      "sources": dg.MetadataValue.md(report.sources_table())},
            allow_retries=False)
    for dataset, asset in assets.items():
        yield dg.MaterializeResult(asset_key=asset, metadata=metadata[dataset])


def _metadata(report: IngestReport, dataset: str) -> dict:
    plain = report.metadata(dataset)
    return {**plain, "rows": dg.MetadataValue.int(plain["rows"]), "slices": dg.MetadataValue.md(plain["slices"]),
            "rows_dropped": dg.MetadataValue.int(plain["rows_dropped"]),
            "dropped_by_reason": dg.MetadataValue.json(plain["dropped_by_reason"]),
            "conversions": dg.MetadataValue.md(plain["conversions"]),
            "sources": dg.MetadataValue.md(plain["sources"]), "source_figures": dg.MetadataValue.json(report.sources)}


# --------------------------------------------------------------------------------------------
# Crypto venues
# --------------------------------------------------------------------------------------------

def _specs() -> list[dg.AssetSpec]:
    return [
        dg.AssetSpec("crypto_trades", deps=[tick_store], group_name=GROUP, kinds={"clickhouse", "polars"},
                     freshness_policy=FRESHNESS["crypto"],
                     description="Trades of Binance spot (aggregate trades), OKX and Deribit per UTC day and "
                                 "instrument, normalized, in ClickHouse `trades` (read: trades_v, trades_range)."),
        dg.AssetSpec("crypto_bars_1m", deps=[tick_store], group_name=GROUP, kinds={"clickhouse", "polars"},
                     freshness_policy=FRESHNESS["crypto"],
                     description="The venues' own 1-minute bars per UTC day and instrument, in ClickHouse "
                                 "`bars_1m` (read: bars_1m_v, bars_1m_range)."),
    ]


@dg.multi_asset(name="crypto_ticks", specs=_specs(), partitions_def=crypto_partitions, can_subset=True,
                backfill_policy=dg.BackfillPolicy.single_run(), pool=pools.CRYPTO_VENUES)
def crypto_ticks(context: dg.AssetExecutionContext, config: IngestConfig, clickhouse: ClickHouseResource,
                 binance: CryptoVenueResource, okx: CryptoVenueResource, deribit: CryptoVenueResource):
    """Trades and 1-minute bars of the run's (day, instrument) partitions from the venues' REST APIs."""
    assets = {d: a for d, a in CRYPTO_ASSETS.items() if dg.AssetKey(a) in context.selected_asset_keys}
    venues = {"BINANCE": binance, "OKX": okx, "DERIBIT": deribit}
    keys = slice_keys(context.partition_keys, assets)
    unknown = sorted({f"{k.venue}:{k.instrument}" for k in keys if k.venue not in venues})
    if unknown:
        raise dg.Failure(f"crypto_ticks: no REST client for {unknown}: venues are {sorted(venues)}")
    report = IngestReport()
    feeds = [venue_feed(venue, resource.make_client, planned(clickhouse, config, venue, mine, report),
                        workers=config.workers or resource.workers, attempts=config.attempts)
             for venue, resource in venues.items() if (mine := [k for k in keys if k.venue == venue])]
    report.merge(engine(context, clickhouse, config).run([feeds]))
    clickhouse.close()
    yield from materialize(context, report, assets, config.max_failed)


class BookSnapshotConfig(RunDeadline):
    depth: int = 0
    """Levels per side; 0: the providers config's book_depth."""


@dg.asset(group_name=GROUP, partitions_def=crypto_instruments, backfill_policy=dg.BackfillPolicy.single_run(),
          deps=[tick_store], pool=pools.CRYPTO_VENUES, kinds={"clickhouse", "polars"})
def crypto_book_snapshots(context: dg.AssetExecutionContext, config: BookSnapshotConfig,
                          clickhouse: ClickHouseResource, binance: CryptoVenueResource, okx: CryptoVenueResource,
                          deribit: CryptoVenueResource):
    """One order-book snapshot per instrument of the run, added to its UTC day's slice in ClickHouse
    `book_snapshots` (read: book_snapshots_v, book_snapshots_range). Venues serve only the current
    book: history is what these snapshots collected."""
    depth = config.depth or load_providers_config().book_depth
    instruments = [parse_partition_key(key) for key in context.partition_keys]
    venues = {"BINANCE": binance, "OKX": okx, "DERIBIT": deribit}
    feeds = [book_feed(venue, resource.make_client, mine, depth=depth, workers=resource.workers)
             for venue, resource in venues.items()
             if (mine := [i.instrument for i in instruments if i.venue == venue])]
    with clickhouse.get_client() as client:
        ct.ensure_tables(client, clickhouse.database)
    report = engine(context, clickhouse, config).run([feeds])
    clickhouse.close()
    yield from materialize(context, report, {"books": "crypto_book_snapshots"}, 0)
