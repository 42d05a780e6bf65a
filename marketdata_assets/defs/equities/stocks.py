"""Stocks: A-share 1-minute and daily bars from Tushare Pro, 1-minute bars from Yahoo Finance.

Daily partitions (A-shares: China days; Yahoo: UTC days); the universe is processed INSIDE the run
(the sources config's: for A-shares also rules resolved per day from the instrument master; or
`instruments` in the run config; for A-shares `instruments: [ALL]` is every
code Tushare lists today: `stock_basic`, asked once per Beijing day and kept in
`<state dir>/listings/`, ~5,400 codes, fetched within the run's Tushare rate limits), a block of days
at a time (`day_blocks`: memory stays at one block of the universe). All instruments of a day go
into ClickHouse with one write per exchange; a day on which no instrument has any bar is not a
trading day: nothing is written and the ingest log says so.
"""

import asyncio
from datetime import date

import dagster as dg

from marketdata_assets.core import settings
from marketdata_assets.core.http import ApiError, SourceError
from marketdata_assets.core.identifiers import instrument_key
from marketdata_assets.core.naming import a_share_code, a_share_venue
from marketdata_assets.datasets.slices import SliceKey
from marketdata_assets.datasets.universe import resolve
from marketdata_assets.defs._common.ingest import TICK_STORE, IngestConfig, engine, materialize, planned
from marketdata_assets.defs._common.partitions import days_of
from marketdata_assets.defs.equities.partitions import FRESHNESS, a_share_days, yahoo_days
from marketdata_assets.ingest.engine import IngestReport, day_blocks
from marketdata_assets.ingest.instruments import stored_master
from marketdata_assets.orchestration import pools
from marketdata_assets.resources import ClickHouseResource
from marketdata_assets.resources.sources import TushareResource, YahooResource
from marketdata_assets.sources.config import load_sources_config
from marketdata_assets.sources.registry import stock_feed

GROUP = "equities"
TUSHARE, YAHOO = stock_feed("TUSHARE"), stock_feed("YAHOO")  # their feeds, listing and checks' sessions
A_SHARE_ASSETS = {"bars_1m": "a_share_bars_1m", "daily_bars": "a_share_daily_bars"}


ALL = "ALL"


class StockBarsConfig(IngestConfig):
    instruments: list[str] = []  # noqa: RUF012 - pydantic copies the default
    """These instruments instead of the sources config's universe (A-share codes in any spelling).
    A-shares: [ALL] is every code Tushare lists today (stock_basic list_status L, asked once per Beijing
    day and kept under <state dir>/listings; docs/cli.md). Yahoo has no listing: names are taken as given."""


def universe(config: StockBarsConfig, default, normalize) -> list[str]:
    try:
        return list(dict.fromkeys(normalize(i) for i in (config.instruments or default)))
    except ValueError as error:
        raise dg.Failure(f"run config instruments: {error}") from None


def a_share_universe(
    context, config: StockBarsConfig, tushare: TushareResource, clickhouse: ClickHouseResource
) -> tuple[dict[date, list[str]], str]:
    """(each of the run's days -> its codes, what they are): the run config's, the sources config's rules
    resolved per day from the instrument master (with its explicit codes), its explicit codes, or with [ALL]
    the listing."""
    days = days_of(context.partition_keys)
    if [i.strip().upper() for i in config.instruments] == [ALL]:
        codes, said = _listed_today(context, tushare)
        return dict.fromkeys(days, codes), said
    sources = load_sources_config()
    rules = sources.a_share_rules()
    if config.instruments or not any(rule.selects for rule in rules.values()):
        codes = universe(config, sources.a_shares, a_share_code)
        return dict.fromkeys(
            days, codes
        ), f"{len(codes)} {'run config' if config.instruments else 'sources config'} codes"
    with clickhouse.get_client() as client:
        master = stored_master(client, clickhouse.database, set(rules))
    if not any(master.current(venue) for venue in rules):
        raise dg.Failure(
            "a_share_bars: universes.a_shares.rules select from the instrument master, which holds no "
            "A-share: materialize `instrument_master` with TUSHARE_TOKEN set (Tushare stock_basic)"
        )
    by_day = {
        day: sorted(code for rule in rules.values() for code in resolve(master, rule, day)) for day in days
    }
    sizes = sorted(len(codes) for codes in by_day.values())
    said = (
        f"{sizes[0]:,}-{sizes[-1]:,} codes a day, universes.a_shares.rules resolved per day from the "
        f"instrument master ({', '.join(sorted(rules))})"
    )
    context.log.info(f"a_share_bars: {said}")
    return by_day, said


def _listed_today(context, tushare: TushareResource) -> tuple[list[str], str]:
    """Every code Tushare lists today (stock_basic, asked once a Beijing day), and what they are."""
    try:
        listing = asyncio.run(TUSHARE.listing(tushare.make_client, settings.state_dir() / "listings"))
    except (SourceError, ApiError) as error:
        raise dg.Failure(
            f"a_share_bars: instruments [ALL] needs Tushare's listing (stock_basic): {error}"
        ) from None
    where = "read from the day's file" if listing.cached else "asked today"
    said = f"{len(listing.codes):,} codes Tushare lists (stock_basic list_status L, {listing.day}, {where})"
    context.log.info(f"a_share_bars: {said}")
    return listing.codes, said


def _a_share_specs() -> list[dg.AssetSpec]:
    return [
        dg.AssetSpec(
            "a_share_bars_1m",
            deps=[TICK_STORE],
            group_name=GROUP,
            kinds={"clickhouse", "polars"},
            freshness_policy=FRESHNESS["a_share"],
            skippable=True,
            description="A-share 1-minute bars (Tushare stk_mins; 241 a day, ts = bar open in UTC) of the "
            "whole universe per China trading day, in ClickHouse `bars_1m` (venues SSE, SZSE, BSE).",
        ),
        dg.AssetSpec(
            "a_share_daily_bars",
            deps=[TICK_STORE],
            group_name=GROUP,
            kinds={"clickhouse", "polars"},
            freshness_policy=FRESHNESS["a_share"],
            skippable=True,
            description="A-share daily bars (Tushare daily: volume in shares, amount in yuan, pre_close) per "
            "China trading day, in ClickHouse `daily_bars` (read: daily_bars_v, daily_bars_range).",
        ),
    ]


@dg.multi_asset(
    name="a_share_bars",
    specs=_a_share_specs(),
    partitions_def=a_share_days,
    can_subset=True,
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool=pools.TUSHARE,
)
def a_share_bars(
    context: dg.AssetExecutionContext,
    config: StockBarsConfig,
    clickhouse: ClickHouseResource,
    tushare: TushareResource,
):
    """A-share 1-minute and daily bars of the run's China trading days, the universe inside the run."""
    assets = {d: a for d, a in A_SHARE_ASSETS.items() if dg.AssetKey(a) in context.selected_asset_keys}
    if not (tushare.token or "").strip():  # say which variable, before any request
        raise dg.Failure(f"a_share_bars: {TUSHARE.credential_error(f'{tushare.token_env} is not set')}")
    by_day, said = a_share_universe(context, config, tushare, clickhouse)
    report = IngestReport()

    def stages():
        widest = max((len(codes) for codes in by_day.values()), default=0)
        for block in day_blocks(sorted(by_day), TUSHARE.block_days, widest, TUSHARE.bars_a_day):
            keys = [
                SliceKey(d, a_share_venue(c), c, day) for d in assets for day in block for c in by_day[day]
            ]
            yield TUSHARE.feeds(
                tushare.make_client,
                planned(clickhouse, config, "TUSHARE", keys, report),
                workers=config.workers or tushare.workers,
                attempts=config.attempts,
            )

    report.merge(engine(context, clickhouse, config).run(stages()))
    clickhouse.close()
    yield from materialize(
        context,
        report,
        assets,
        config.max_failed,
        extra={dataset: {"universe": said} for dataset in assets},
        partition_of=_day_of,
    )


@dg.asset(
    group_name=GROUP,
    partitions_def=yahoo_days,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[TICK_STORE],
    pool=pools.YAHOO,
    kinds={"clickhouse", "polars"},
    freshness_policy=FRESHNESS["yahoo"],
    output_required=False,
)
def yahoo_bars_1m(
    context: dg.AssetExecutionContext,
    config: StockBarsConfig,
    clickhouse: ClickHouseResource,
    yahoo: YahooResource,
):
    """1-minute bars (Yahoo chart v8, regular session; prices in major units: pence -> pounds) of the
    universe per UTC day, in ClickHouse `bars_1m` (venue = Yahoo's exchange code: NMS, LSE, GER, ...)."""
    instruments = universe(
        config, load_sources_config().yahoo_instruments, lambda name: instrument_key(name.strip().upper())
    )
    report = IngestReport()

    def stages():
        for block in day_blocks(
            days_of(context.partition_keys), YAHOO.block_days, len(instruments), YAHOO.bars_a_day
        ):
            keys = [SliceKey("bars_1m", "", instrument, day) for day in block for instrument in instruments]
            yield YAHOO.feeds(
                yahoo.make_client,
                planned(clickhouse, config, "YAHOO", keys, report),
                workers=config.workers or yahoo.workers,
                attempts=config.attempts,
            )

    report.merge(engine(context, clickhouse, config).run(stages()))
    clickhouse.close()
    yield from materialize(
        context, report, {"bars_1m": "yahoo_bars_1m"}, config.max_failed, partition_of=_day_of
    )


def _day_of(key: SliceKey) -> str:
    """A slice's daily partition key."""
    return key.day.isoformat()
