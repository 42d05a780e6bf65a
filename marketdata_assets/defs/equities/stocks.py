"""Stocks: each stock feed's bars (sources/registry.py `STOCK_FEEDS`: A-share 1-minute and daily bars
from Tushare Pro, 1-minute bars from Yahoo Finance), made from its declaration: an asset per dataset,
named `<prefix>_<dataset>`, in one step per feed that uses the feed's resource and pool (its config entry).

Daily partitions (the feed's calendar days, partitions.py); the universe is processed INSIDE the run
(the sources config's: with universe rules (A-shares) resolved per day from the instrument master; or
`instruments` in the run config; with a listing (A-shares) `instruments: [ALL]` is every code the
source lists today: Tushare's `stock_basic`, asked once per Beijing day and kept in
`<state dir>/listings/`, ~5,400 codes, fetched within the run's rate limits), a block of days
at a time (`day_blocks`: memory stays at one block of the universe). All instruments of a day go
into ClickHouse with one write per exchange; a day on which no instrument has any bar is not a
trading day: nothing is written and the ingest log says so.
"""

import asyncio
from datetime import date

import dagster as dg

from marketdata_assets.core import settings
from marketdata_assets.core.http import ApiError, SourceError
from marketdata_assets.datasets.slices import SliceKey
from marketdata_assets.datasets.universe import resolve
from marketdata_assets.defs._common.ingest import TICK_STORE, IngestConfig, engine, materialize, planned
from marketdata_assets.defs._common.partitions import days_of
from marketdata_assets.defs.equities.partitions import FRESHNESS, STOCK_DAYS
from marketdata_assets.ingest.engine import IngestReport, day_blocks
from marketdata_assets.ingest.instruments import stored_master
from marketdata_assets.sources.config import load_sources_config
from marketdata_assets.sources.interface import StockFeed
from marketdata_assets.sources.registry import STOCK_FEEDS, source

GROUP = "equities"
ALL = "ALL"


class StockBarsConfig(IngestConfig):
    instruments: list[str] = []  # noqa: RUF012 - pydantic copies the default
    """These instruments instead of the sources config's universe (A-share codes in any spelling).
    A-shares: [ALL] is every code Tushare lists today (stock_basic list_status L, asked once per Beijing
    day and kept under <state dir>/listings; docs/cli.md). Yahoo has no listing: names are taken as given."""


def stock_assets(name: str) -> dict[str, str]:
    """dataset -> asset of stock feed `name`."""
    return {dataset: STOCK_FEEDS[name].asset(dataset) for dataset in source(name).datasets}


def step_name(name: str) -> str:
    """The step of feed `name`: its one asset, or `<prefix>_bars` for several."""
    assets = stock_assets(name)
    return f"{STOCK_FEEDS[name].prefix}_bars" if len(assets) > 1 else next(iter(assets.values()))


def universe(config: StockBarsConfig, default, normalize) -> list[str]:
    try:
        return list(dict.fromkeys(normalize(i) for i in (config.instruments or default)))
    except ValueError as error:
        raise dg.Failure(f"run config instruments: {error}") from None


def run_universe(
    context, name: str, config: StockBarsConfig, resource, clickhouse
) -> tuple[dict[date, list[str]], str]:
    """(each of the run's days -> its instruments, what they are): the run config's, the sources config's
    rules resolved per day from the instrument master (with its explicit instruments), its explicit
    instruments, or with [ALL] the feed's listing."""
    feed, step, days = STOCK_FEEDS[name], step_name(name), days_of(context.partition_keys)
    if feed.listing is not None and [i.strip().upper() for i in config.instruments] == [ALL]:
        codes, said = _listed_today(context, step, feed, resource)
        return dict.fromkeys(days, codes), said
    sources = load_sources_config()
    rules = feed.rules(sources) if feed.rules is not None else {}
    if config.instruments or not any(rule.selects for rule in rules.values()):
        codes = universe(config, feed.instruments(sources), feed.normalize)
        said = f"{len(codes)} {'run config' if config.instruments else 'sources config'} codes"
        return dict.fromkeys(days, codes), said
    with clickhouse.get_client() as client:
        master = stored_master(client, clickhouse.database, set(rules))
    if not any(master.current(venue) for venue in rules):
        raise dg.Failure(
            f"{step}: universes.{feed.universe}.rules select from the instrument master, which holds none "
            f"of {', '.join(sorted(rules))}: refresh it with {name}'s credential set "
            f"(`marketdata instruments --venue {name}`)"
        )
    by_day = {
        day: sorted(code for rule in rules.values() for code in resolve(master, rule, day)) for day in days
    }
    sizes = sorted(len(codes) for codes in by_day.values())
    said = (
        f"{sizes[0]:,}-{sizes[-1]:,} codes a day, universes.{feed.universe}.rules resolved per day from the "
        f"instrument master ({', '.join(sorted(rules))})"
    )
    context.log.info(f"{step}: {said}")
    return by_day, said


def _listed_today(context, step: str, feed: StockFeed, resource) -> tuple[list[str], str]:
    """Every instrument the feed lists today (asked once a day, kept under the state dir), and what they
    are."""
    try:
        listing = asyncio.run(feed.listing(resource.make_client, settings.state_dir() / "listings"))
    except (SourceError, ApiError) as error:
        raise dg.Failure(f"{step}: instruments [ALL] needs the feed's listing: {error}") from None
    context.log.info(f"{step}: {listing.said}")
    return listing.codes, listing.said


def _spec(name: str, dataset: str, asset: str) -> dg.AssetSpec:
    return dg.AssetSpec(
        asset,
        deps=[TICK_STORE],
        group_name=GROUP,
        kinds={"clickhouse", "polars"},
        freshness_policy=FRESHNESS[name],
        skippable=True,
        description=STOCK_FEEDS[name].assets[dataset],
    )


def stock_bars(name: str) -> dg.AssetsDefinition:
    """The assets of stock feed `name`: its datasets' bars of the run's days, the universe inside the run,
    fetched with its resource (its config entry) in its pool."""
    feed, assets, entry = STOCK_FEEDS[name], stock_assets(name), source(name).config

    @dg.multi_asset(
        name=step_name(name),
        specs=[_spec(name, dataset, asset) for dataset, asset in assets.items()],
        partitions_def=STOCK_DAYS[name],
        can_subset=len(assets) > 1,
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool=entry,
        required_resource_keys={"clickhouse", entry},
    )
    def bars(context: dg.AssetExecutionContext, config: StockBarsConfig):
        clickhouse, resource = context.resources.clickhouse, getattr(context.resources, entry)
        chosen = {d: a for d, a in assets.items() if dg.AssetKey(a) in context.selected_asset_keys}
        if feed.credential_error is not None and not (resource.token or "").strip():  # before any request
            missing = feed.credential_error(f"{resource.token_env} is not set")
            raise dg.Failure(f"{step_name(name)}: {missing}")
        by_day, said = run_universe(context, name, config, resource, clickhouse)
        report = IngestReport()
        stages = _stages(name, by_day, chosen, resource, clickhouse, config, report)
        report.merge(engine(context, clickhouse, config).run(stages))
        clickhouse.close()
        yield from materialize(
            context,
            report,
            chosen,
            config.max_failed,
            extra={dataset: {"universe": said} for dataset in chosen},
            partition_of=_day_of,
        )

    return bars


def _stages(
    name: str, by_day: dict[date, list[str]], chosen: dict[str, str], resource, clickhouse, config, report
):
    """The run's stages, a block of days at a time (`day_blocks`: memory stays at one block of the
    universe): the feeds of the block's slices of the `chosen` datasets still to load."""
    feed = STOCK_FEEDS[name]
    widest = max((len(codes) for codes in by_day.values()), default=0)
    for block in day_blocks(sorted(by_day), feed.block_days, widest, feed.bars_a_day):
        keys = [
            SliceKey(d, feed.slice_venue(c), c, day) for d in chosen for day in block for c in by_day[day]
        ]
        yield feed.feeds(
            resource.make_client,
            planned(clickhouse, config, name, keys, report),
            workers=config.workers or resource.workers,
            attempts=config.attempts,
        )


def _day_of(key: SliceKey) -> str:
    """A slice's daily partition key."""
    return key.day.isoformat()


STOCK_BARS = [stock_bars(name) for name in STOCK_FEEDS]  # a list: the defs folder's loader finds lists
_of = dict(zip(STOCK_FEEDS, STOCK_BARS, strict=True))
a_share_bars, yahoo_bars_1m = _of["TUSHARE"], _of["YAHOO"]  # the names tests/support read
