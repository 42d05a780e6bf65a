"""The instrument master as an asset: every crypto venue's reference data read daily (spot, perpetuals,
futures, options, with contract values, tick and lot sizes, listing and expiry) and stored point in
time in ClickHouse `instruments` (a change is a new version, nothing is overwritten), with a snapshot of
the venues' 24 h volumes in `instrument_volumes` (universe rules' top N); its checks flag an instrument
that left a listing without a delisting or expiry, and a changed contract value."""

import dagster as dg

from marketdata_assets.core.markdown import table
from marketdata_assets.defs._common.config import RunConfig
from marketdata_assets.defs._common.ingest import TICK_STORE
from marketdata_assets.defs._common.runs import daily_use_schedule
from marketdata_assets.defs.crypto.assets import GROUP, VENUE_KEYS, venue_resources
from marketdata_assets.ingest.instruments import refresh_venues
from marketdata_assets.orchestration import pools
from marketdata_assets.resources import ClickHouseResource
from marketdata_assets.sources.binance_vision import listing
from marketdata_assets.sources.binance_vision.archives import ArchiveClient
from marketdata_assets.sources.config import load_sources_config

CHECKS = [
    dg.AssetCheckSpec(
        "no_unannounced_ending",
        asset="instrument_master",
        description=(
            "No instrument left its venue's listing without a delisting status or a passed expiry (it is "
            "kept, ended as 'gone' from the day it was missed)."
        ),
    ),
    dg.AssetCheckSpec(
        "contract_values_steady",
        asset="instrument_master",
        description=(
            "No contract value or multiplier changed since the last refresh (a change is a new version: the "
            "days before keep the old value)."
        ),
    ),
]


class MasterConfig(RunConfig):
    venues: list[str] = []  # noqa: RUF012  a pydantic (Dagster Config) field
    """The venues to refresh (default: every crypto venue, and TUSHARE's A-shares when TUSHARE_TOKEN is
    set)."""


def _counts(refreshes) -> list[tuple]:
    return [
        (
            r.venue,
            f"{r.listed:,}",
            f"{len(r.new):,}",
            f"{len(r.changed):,}",
            f"{len(r.ended):,}",
            f"{len(r.versions):,}",
            f"{r.volumes:,}",
            ", ".join(f"{k} {v:,}" for k, v in r.skipped.items()) or "-",
        )
        for r in refreshes
    ]


def _checks(refreshes: list) -> list[dg.AssetCheckResult]:
    """The master's checks: an instrument gone without a delisting or expiry, a changed contract value."""
    gone = [
        (r.venue, name) for r in refreshes for name, status in sorted(r.ended.items()) if status == "gone"
    ]
    values = [
        (r.venue, name, ", ".join(fields))
        for r in refreshes
        for name, fields in sorted(r.changed.items())
        if {"contract_value", "contract_multiplier"} & set(fields)
    ]
    return [
        _warning("no_unannounced_ending", "gone", ["venue", "instrument"], gone),
        _warning("contract_values_steady", "changed", ["venue", "instrument", "changed"], values),
    ]


def _warning(check: str, counted: str, columns: list[str], found: list[tuple]) -> dg.AssetCheckResult:
    """A WARN check that passes when nothing is `found`: their count (`counted`) and their table."""
    return dg.AssetCheckResult(
        check_name=check,
        passed=not found,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            counted: len(found),
            "instruments": dg.MetadataValue.md(table(columns, found, limit=100) if found else "none"),
        },
    )


def _metadata(refreshes: list) -> dict:
    """What a refresh did, per venue and in all."""
    metadata = {
        "venues": dg.MetadataValue.md(
            table(
                [
                    "venue",
                    "listed",
                    "new",
                    "changed",
                    "ended",
                    "versions stored",
                    "24 h volumes",
                    "archive symbols skipped",
                ],
                _counts(refreshes),
            )
        ),
        "listed": sum(r.listed for r in refreshes),
        "rows_written": sum(len(r.versions) for r in refreshes),
    }  # versions: nothing changed, none
    return metadata


@dg.asset(
    group_name=GROUP,
    deps=[TICK_STORE],
    pool=pools.CRYPTO_VENUES,
    kinds={"clickhouse"},
    check_specs=CHECKS,
    required_resource_keys={"clickhouse", "tushare", *VENUE_KEYS.values()},
)
def instrument_master(context: dg.AssetExecutionContext, config: MasterConfig) -> dg.MaterializeResult:
    """Each venue's instruments from its reference endpoints (Binance spot and USD-M exchangeInfo and the
    archive site's delisted symbols, OKX public/instruments of every type, Deribit get_instruments active and
    expired, Tushare stock_basic listed and delisted), appended to the point-in-time master, and each crypto
    venue's 24 h volumes (its ticker endpoint) as a snapshot (read: `read.instruments(venue, as_of=...)`,
    `marketdata universe`)."""
    clickhouse: ClickHouseResource = context.resources.clickhouse
    unknown = sorted(set(config.venues) - set(VENUE_KEYS) - {"TUSHARE"})
    if unknown:
        raise dg.Failure(
            f"instrument_master: unknown venue(s) {', '.join(unknown)}; one of "
            f"{', '.join([*sorted(VENUE_KEYS), 'TUSHARE'])}"
        )
    makers = {
        venue: resource.make_client
        for venue, resource in venue_resources(context, config.venues or None).items()
    }
    sources, tushare = load_sources_config(), context.resources.tushare
    wanted = "TUSHARE" in config.venues or (
        not config.venues and any(rule.selects for rule in sources.a_share_universe_rules.values())
    )
    failed = {}
    if (tushare.token or "").strip() and (not config.venues or "TUSHARE" in config.venues):
        makers["TUSHARE"] = tushare.make_client  # the A-share master: stock_basic, listed and delisted
    elif wanted:  # asked for, or a_shares rules select from it: its missing credentials fail the step
        failed["TUSHARE"] = (
            "TUSHARE_TOKEN is not set: the A-share master (SSE, SZSE, BSE) is not refreshed, so "
            "universes.a_shares.rules select from what is stored; set TUSHARE_TOKEN (docs/configuration.md)"
        )
    archives = sources.binance_archives  # the archive site: Binance listing days, delisted symbols
    with clickhouse.get_client() as client:
        refreshes, venues_failed = refresh_venues(
            client,
            clickhouse.database,
            makers,
            archive=lambda: ArchiveClient.from_settings(archives, **listing.LIMITS),
        )
    clickhouse.close()
    failed.update(venues_failed)
    checks, metadata = _checks(refreshes), _metadata(refreshes)
    if failed:
        stored = ", ".join(f"{r.venue} {len(r.versions):,}" for r in refreshes) or "none"
        raise dg.Failure(
            f"instrument_master: {len(failed)} source(s) failed (versions stored: {stored}): "
            + "; ".join(f"{v}: {e}" for v, e in sorted(failed.items())),
            metadata=metadata,
        )
    context.log.info(
        f"instrument_master: {metadata['listed']:,} instruments listed, "
        f"{metadata['rows_written']:,} versions stored"
    )
    return dg.MaterializeResult(metadata=metadata, check_results=checks)


instrument_master_job = dg.define_asset_job("instrument_master_job", selection=["instrument_master"])


@daily_use_schedule(
    instrument_master_job,
    "10 0 * * *",
    "crypto",
    "The venues' instruments: new listings join the universes, delistings and contract changes are kept.",
)
def instrument_master_daily(context: dg.ScheduleEvaluationContext):
    """Every venue's reference data at 00:10 UTC, before the day's loads (crypto_ticks_daily at 00:30)."""
    return dg.RunRequest(run_key=f"instrument_master:{context.scheduled_execution_time:%Y-%m-%d}")
