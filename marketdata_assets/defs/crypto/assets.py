"""Crypto assets: the venues' history datasets (trades, bars, funding, open interest, liquidations,
mark/index bars) per UTC day x venue (the venue's configured instruments inside the run, each its own
slice: loaded, reported and retried alone), snapshots (books, tickers, open interest) per instrument,
and option chains.

Every ingest asset reads the same way: partition keys and run config in → the slices
(`datasets.slices.SliceKey`) → `Engine.run(feeds)` → `materialize(report)` (defs/_common/ingest.py):
one materialization per partition something is stored of, with its verdict (ok, partial), or a step
failure naming the slices that did not load, or the partitions nothing is stored of (not loadable from the
venue's REST API, with where they come from; failed): those show failed, the others materialized.
"""

import functools
from datetime import timedelta

import dagster as dg

from marketdata_assets.core.charts import line_chart_svg, svg_markdown_image
from marketdata_assets.core.naming import parse_partition_key
from marketdata_assets.datasets.frames import spec_for
from marketdata_assets.defs._common.history import count_held
from marketdata_assets.defs._common.ingest import (
    TICK_STORE,
    IngestConfig,
    RunDeadline,
    engine,
    materialize,
    planned,
    run_instruments,
    slice_assets,
    tick_spec,
)
from marketdata_assets.defs._common.partitions import crypto_key, days_of, slice_keys
from marketdata_assets.defs.crypto.partitions import (
    FRESHNESS,
    crypto_instruments,
    crypto_partitions,
    option_chains,
)
from marketdata_assets.ingest.engine import IngestReport
from marketdata_assets.ingest.instruments import (
    cut_warnings,
    stored_volumes,
    universe_resolver,
)
from marketdata_assets.orchestration import pools
from marketdata_assets.quality.checks import ClickHouse
from marketdata_assets.quality.reach import (
    NOT_STORED_BEYOND_REACH,
    STORED_BEYOND_REACH,
    Unreached,
    loads_from,
    name,
    unreached,
)
from marketdata_assets.resources import ClickHouseResource
from marketdata_assets.resources.sources import CryptoVenueResource
from marketdata_assets.sources.config import CRYPTO_SOURCES, load_sources_config
from marketdata_assets.sources.interface import HISTORY, SNAPSHOT
from marketdata_assets.sources.venues import beyond_reach, older_from, serves, snapshot_feed, venue_feed
from marketdata_assets.stores.clickhouse import tables as ct
from marketdata_assets.stores.clickhouse.series import series, smiles

GROUP = "crypto"


# --------------------------------------------------------------------------------------------
# Crypto venues: every HISTORY dataset of a day x instrument in one multi-asset, every SNAPSHOT
# dataset of an instrument in another (what each venue serves: sources.venues `DATASETS`)
# --------------------------------------------------------------------------------------------

READ = "(read: {table}_v, {table}_range)"
HISTORY_ASSETS = {  # dataset -> (asset, description)
    "trades": (
        "crypto_trades",
        (
            "Trades of Binance spot and USD-M (aggregate trades), OKX and Deribit "
            "per UTC day and instrument, normalized, in ClickHouse `trades`"
        ),
    ),
    "bars_1m": ("crypto_bars_1m", "The venues' own 1-minute bars per UTC day and instrument, in `bars_1m`"),
    "funding": (
        "crypto_funding",
        (
            "Funding settlements of perpetuals (Binance USD-M fundingRate, OKX "
            "realized rate, Deribit hourly interest) per UTC day, in "
            "`funding_rates`; charted"
        ),
    ),
    "open_interest": (
        "crypto_open_interest",
        (
            "Open interest history (Binance USD-M and OKX, 5-minute) in "
            "contracts, base units and quote value, in `open_interest`; "
            "charted"
        ),
    ),
    "liquidations": (
        "crypto_liquidations",
        (
            "Forced liquidations (OKX liquidation orders, Deribit trades "
            "flagged as liquidations) per UTC day, in `liquidations`"
        ),
    ),
    "mark_bars_1m": (
        "crypto_mark_bars_1m",
        "1-minute mark price bars (Binance USD-M, OKX), in `mark_bars_1m`",
    ),
    "index_bars_1m": (
        "crypto_index_bars_1m",
        (
            "1-minute index price bars of the derivatives' underlying "
            "index (Binance USD-M, OKX), in `index_bars_1m`"
        ),
    ),
}
CRYPTO_ASSETS = {dataset: asset for dataset, (asset, _) in HISTORY_ASSETS.items()}  # dataset -> asset
SNAPSHOT_ASSETS = {
    "books": (
        "crypto_book_snapshots",
        "Order-book snapshots (levels per side: the config's book_depth), in `book_snapshots`",
    ),
    "tickers": (
        "crypto_tickers",
        (
            "Ticker snapshots: last, best bid/ask and sizes, 24h volume, and mark, "
            "index and funding where the venue's ticker has them, in `tickers`"
        ),
    ),
    "open_interest": (
        "crypto_open_interest_snapshots",
        "Open interest snapshots where the venue has no history (Deribit's ticker), in `open_interest`",
    ),
}


def _spec(dataset: str, asset: str, description: str, **kwargs) -> dg.AssetSpec:
    table_name = spec_for(dataset).table
    return tick_spec(
        asset, GROUP, f"{description} {READ.format(table=table_name)}.", ("clickhouse", "polars"), **kwargs
    )


# Every crypto venue's resource key (its sources config entry), from the declarations: an asset that asks
# the venues requires them all by key, so a venue added to sources/registry.py needs no line here.
VENUE_KEYS = CRYPTO_SOURCES  # venue -> resource key


class CryptoIngestConfig(IngestConfig):
    instruments: list[str] = []  # noqa: RUF012  a pydantic (Dagster Config) field
    """Only these instruments (VENUE:INSTRUMENT) of the run's venues, configured or not; empty: every
    configured one (with retry_failed: every one whose latest attempt did not succeed)."""


def run_slices(context, datasets, config: CryptoIngestConfig, master=None, volumes=None) -> list:
    """The slices of the run's day x venue partitions (each venue's universe resolved per day from `master`
    where the sources file gives it a rule, a top N ranked by `volumes`), or a Failure naming a malformed or
    unknown instrument."""
    bad = []
    for key in config.instruments:
        try:
            if parse_partition_key(key).venue not in VENUE_KEYS:
                bad.append(f"{key} (venues: {', '.join(sorted(VENUE_KEYS))})")
        except ValueError as error:
            bad.append(str(error))
    if bad:
        raise dg.Failure(f"crypto_ticks: instruments config refused: {'; '.join(bad)}")
    rules = load_sources_config().crypto_rules()
    if master is None:
        return slice_keys(context.partition_keys, datasets, config.instruments)
    cuts, ahead = {}, {}
    keys = slice_keys(
        context.partition_keys,
        datasets,
        config.instruments,
        universe_resolver(master, rules, volumes, cuts, ahead),
    )
    for line in cut_warnings(cuts, ahead):  # a top N by a later snapshot or by none, a look-ahead: said
        context.log.warning(f"crypto_ticks: {line}")
    return keys


def venue_resources(context, venues=None) -> dict[str, CryptoVenueResource]:
    """The run's venue resources (of `venues`, else every venue), by venue."""
    return {
        venue: getattr(context.resources, key)
        for venue, key in VENUE_KEYS.items()
        if venues is None or venue in venues
    }


@slice_assets(
    "crypto_ticks",
    [
        _spec(d, a, text, freshness_policy=FRESHNESS, skippable=True)
        for d, (a, text) in HISTORY_ASSETS.items()
    ],
    crypto_partitions,
    pools.CRYPTO_VENUES,
    required_resource_keys={"clickhouse", *VENUE_KEYS.values()},
)
def crypto_ticks(context: dg.AssetExecutionContext, config: CryptoIngestConfig):
    """The history datasets of the run's (day, venue) partitions from the venues' REST APIs, every
    configured instrument of each venue; a dataset a venue does not serve for an instrument (funding of
    a spot pair) has no slice."""
    assets = {d: a for d, a in CRYPTO_ASSETS.items() if dg.AssetKey(a) in context.selected_asset_keys}
    clickhouse: ClickHouseResource = context.resources.clickhouse
    venues = venue_resources(context)
    instruments = run_instruments(clickhouse, set(venues))  # contract sizes and universes: the stored master
    with clickhouse.get_client() as client:
        volumes = stored_volumes(
            client, clickhouse.database, load_sources_config().crypto_rules(), days_of(context.partition_keys)
        )
    keys = run_slices(context, assets, config, instruments.master, volumes)
    unknown = sorted({f"{k.venue}:{k.instrument}" for k in keys if k.venue not in venues})
    if unknown:
        raise dg.Failure(f"crypto_ticks: no REST client for {unknown}: venues are {sorted(venues)}")
    keys = [k for k in keys if serves(k.venue, k.dataset, k.instrument) == HISTORY]
    report = IngestReport()
    beyond, reach_metadata = beyond_rest_reach(context, clickhouse, assets, keys, report)
    keys = [k for k in keys if k not in beyond]
    feeds = [
        venue_feed(
            venue,
            functools.partial(resource.make_client, instrument_service=instruments),
            planned(clickhouse, config, venue, mine, report),
            workers=config.workers or resource.workers,
            attempts=config.attempts,
        )
        for venue, resource in venues.items()
        if (mine := [k for k in keys if k.venue == venue])
    ]
    report.merge(engine(context, clickhouse, config).run([feeds]))
    instruments.keep()  # what the clients looked up at the venues, stored once
    count_held(clickhouse, report)
    extra = history_charts(clickhouse, assets, keys)
    for dataset, metadata in reach_metadata.items():
        extra.setdefault(dataset, {}).update(metadata)
    clickhouse.close()
    yield from materialize(
        context,
        report,
        assets,
        config.max_failed,
        extra,
        partition_of=lambda key: crypto_key(key.day, key.venue),
        partition_extra=reach_of_part,
        loads_from=loads_from,
    )


def reach_of_part(dataset: str, part: IngestReport) -> dict:
    """One partition's reach metadata (its slices past the venue's REST history), as beyond_rest_reach's."""
    return reach_metadata(
        Unreached(
            tuple(part.not_fetched) + tuple(k for k, why in part.held.items() if why == STORED_BEYOND_REACH),
            tuple(part.not_fetched),
        )
    )


def reach_metadata(found: Unreached) -> dict:
    """`beyond_rest_reach` (how many) and `older_days_from` (a partition's verdict says what is missing)."""
    metadata = {"beyond_rest_reach": dg.MetadataValue.int(len(found.beyond))}
    if found.beyond:
        metadata["older_days_from"] = dg.MetadataValue.text(older_from(found.beyond))
    return metadata


def beyond_rest_reach(
    context, clickhouse: ClickHouseResource, assets: dict[str, str], keys, report: IngestReport
) -> tuple[set, dict]:
    """The slices of `keys` older than their venue's REST history reaches (quality.reach: not fetched; in
    `report`, held when stored from elsewhere, else not fetched: each partition's verdict), and per dataset
    its asset's metadata about them (reach_metadata; the WARN check `within_rest_reach` judges alike). A
    warning per dataset names them."""
    beyond, metadata = set(), {dataset: {"beyond_rest_reach": dg.MetadataValue.int(0)} for dataset in assets}
    if not beyond_reach(keys):
        return beyond, metadata
    with clickhouse.get_client() as client:
        ct.ensure_tables(client, clickhouse.database)
        store = ClickHouse(client, clickhouse.database)
        for dataset, asset in assets.items():
            found = unreached(store, [k for k in keys if k.dataset == dataset])
            beyond.update(found.beyond)
            metadata[dataset] = reach_metadata(found)
            if not found.beyond:
                continue
            where = older_from(found.beyond)
            report.held.update(dict.fromkeys(set(found.beyond) - set(found.missing), STORED_BEYOND_REACH))
            report.not_fetched.update(dict.fromkeys(found.missing, NOT_STORED_BEYOND_REACH))
            context.log.warning(
                f"{asset}: {len(found.beyond)} slice(s) older than the venue's REST history "
                f"reaches, not fetched ({len(found.beyond) - len(found.missing)} stored from "
                f"elsewhere): {sorted(name(k) for k in found.beyond)[:5]}; older days: {where}"
            )
    return beyond, metadata


CHARTS = {  # dataset -> (column, what it shows, bucket seconds, days drawn up to the run's last day)
    "funding": ("rate_8h", "funding rate (as an 8-hour rate)", 3600, 30),
    "open_interest": ("quote", "open interest (quote value, hourly mean)", 3600, 7),
    "mark_bars_1m": ("close", "mark price (hourly mean)", 3600, 7),
}


def history_charts(clickhouse: ClickHouseResource, assets: dict[str, str], keys) -> dict[str, dict]:
    """A line chart per charted dataset of the run: its instruments over the days before the run's last."""
    out = {}
    with clickhouse.get_client() as client:
        for dataset, (column, what, bucket_s, days) in CHARTS.items():
            mine = [k for k in keys if k.dataset == dataset]
            if dataset not in assets or not mine:
                continue
            last = max(k.day for k in mine)
            first = last - timedelta(days=days - 1)
            data = series(
                client,
                clickhouse.database,
                dataset,
                column,
                {(k.venue, k.instrument) for k in mine},
                first,
                last,
                bucket_s,
            )
            svg = line_chart_svg(f"{what}, {first}..{last}", data)
            out[dataset] = {"chart": dg.MetadataValue.md(svg_markdown_image(svg, what))}
    return out


class SnapshotConfig(RunDeadline):
    depth: int = 0
    """Book levels per side; 0: the providers config's book_depth."""


@slice_assets(
    "crypto_snapshots",
    [_spec(d, a, text, skippable=True) for d, (a, text) in SNAPSHOT_ASSETS.items()],
    crypto_instruments,
    pools.CRYPTO_VENUES,
    required_resource_keys={"clickhouse", *VENUE_KEYS.values()},
)
def crypto_snapshots(context: dg.AssetExecutionContext, config: SnapshotConfig):
    """One snapshot of each selected dataset per instrument of the run, added to its UTC day's slice
    (venues serve only the current state: history is what these snapshots collected)."""
    assets = {d: a for d, (a, _) in SNAPSHOT_ASSETS.items() if dg.AssetKey(a) in context.selected_asset_keys}
    clickhouse: ClickHouseResource = context.resources.clickhouse
    depth = config.depth or load_sources_config().book_depth
    instruments = [parse_partition_key(key) for key in context.partition_keys]
    with clickhouse.get_client() as client:
        ct.ensure_tables(client, clickhouse.database)
    service = run_instruments(clickhouse)  # contract sizes: the stored master
    feeds = [
        snapshot_feed(
            venue,
            functools.partial(resource.make_client, instrument_service=service),
            dataset,
            mine,
            depth=depth,
            workers=resource.workers,
        )
        for venue, resource in venue_resources(context).items()
        for dataset in assets
        if (
            mine := [
                i.instrument
                for i in instruments
                if i.venue == venue and serves(venue, dataset, i.instrument) == SNAPSHOT
            ]
        )
    ]
    report = engine(context, clickhouse, config).run([feeds])
    service.keep()  # what the clients looked up at the venues, stored once
    clickhouse.close()
    yield from materialize(
        context, report, assets, 0, partition_of=lambda key: f"{key.venue}:{key.instrument}"
    )


@dg.asset(
    group_name=GROUP,
    partitions_def=option_chains,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[TICK_STORE],
    pool=pools.CRYPTO_VENUES,
    kinds={"clickhouse", "polars"},
)
def crypto_option_chains(
    context: dg.AssetExecutionContext,
    config: RunDeadline,
    clickhouse: ClickHouseResource,
    deribit: CryptoVenueResource,
):
    """One snapshot of every option of each chain of the run (DERIBIT:BTC-OPTIONS: Deribit's book
    summary of all BTC options: strike, expiry, type, mark price and IV, bid/ask, underlying, open
    interest), added to the UTC day's slice in `option_chain` (read: option_chain_v, option_chain_range),
    so a volatility surface can be rebuilt for any snapshot time; the latest smiles are charted."""
    chains = [parse_partition_key(key) for key in context.partition_keys]
    feeds = [
        snapshot_feed(
            "DERIBIT",
            deribit.make_client,
            "option_chain",
            [c.instrument for c in chains if c.venue == "DERIBIT"],
            workers=deribit.workers,
        )
    ]
    with clickhouse.get_client() as client:
        ct.ensure_tables(client, clickhouse.database)
    report = engine(context, clickhouse, config).run([feeds])
    with clickhouse.get_client() as client:
        charts = {
            f"{c.venue}:{c.instrument}": {
                f"smile_{c.instrument}": dg.MetadataValue.md(
                    svg_markdown_image(
                        line_chart_svg(
                            f"{c}: mark IV by strike, nearest expiries",
                            smiles(client, clickhouse.database, c.venue, c.instrument),
                            unit="%",
                        ),
                        f"{c} smile",
                    )
                )
            }
            for c in chains
        }
    clickhouse.close()

    def chart_of(_dataset: str, part) -> dict:  # a chain's partition: its own smile
        return next((charts.get(f"{key.venue}:{key.instrument}", {}) for key in part.slice_keys()), {})

    yield from materialize(
        context,
        report,
        {"option_chain": "crypto_option_chains"},
        0,
        partition_of=lambda key: f"{key.venue}:{key.instrument}",
        partition_extra=chart_of,
    )
