"""When the crypto assets run: each UTC day is loaded after it closes as ONE run with every venue
(and so every configured instrument) in it (00:30 UTC); snapshots (books, tickers, open interest where
there is no history) every 15 minutes, every instrument (a snapshot can only be taken now); option
chains hourly.

The catch-up schedule asks for the last `catch_up_days` (sources config) closed days x every venue in
one run with `retry_failed: true`: the ingest log decides what is fetched (each instrument whose latest
attempt failed, was skipped or never made: a failed instrument, or one added to the config since), so an
instrument is retried alone, without a partition of its own.

The schedules are off by default (they call the vendors' hosts): switch them on in the UI or with
`dagster schedule start`.
"""

from datetime import timedelta

import dagster as dg

from marketdata_assets.defs._common.partitions import crypto_key, crypto_venues
from marketdata_assets.defs._common.runs import (
    RETRY_FAILED,
    UTC,
    daily_use_schedule,
    day_range_tags,
    op_config,
    statuses,
)
from marketdata_assets.defs.crypto.assets import CRYPTO_ASSETS, SNAPSHOT_ASSETS
from marketdata_assets.defs.crypto.partitions import (
    CRYPTO_INSTRUMENTS,
    crypto_partitions,
    option_chains,
)
from marketdata_assets.orchestration.sensing import range_tags
from marketdata_assets.sources.config import load_sources_config

crypto_ticks_job = dg.define_asset_job(
    "crypto_ticks_job", selection=dg.AssetSelection.assets(*CRYPTO_ASSETS.values())
)
crypto_snapshots_job = dg.define_asset_job(
    "crypto_snapshots_job",
    selection=dg.AssetSelection.assets(*(asset for asset, _ in SNAPSHOT_ASSETS.values())),
)
crypto_option_chains_job = dg.define_asset_job(
    "crypto_option_chains_job", selection=dg.AssetSelection.assets("crypto_option_chains")
)


@daily_use_schedule(
    crypto_ticks_job, "30 0 * * *", "crypto", "Loads each closed UTC day: without it no new history arrives."
)
def crypto_ticks_daily(context: dg.ScheduleEvaluationContext):
    """Yesterday (UTC) for every crypto venue (each venue's configured instruments), in one run."""
    day = (context.scheduled_execution_time.astimezone(UTC) - timedelta(days=1)).date()
    venues = crypto_venues.get_partition_keys()
    return dg.RunRequest(run_key=f"crypto:{day}", tags=day_range_tags(day, day, venues[0], venues[-1]))


@daily_use_schedule(
    crypto_snapshots_job,
    "*/15 * * * *",
    "crypto",
    "A snapshot can only be taken now: a quarter-hour it does not run is lost for good.",
)
def crypto_snapshots_every_15_minutes(context: dg.ScheduleEvaluationContext):
    """One order-book, ticker and (where there is no history) open-interest snapshot of every crypto
    instrument."""
    instruments = context.instance.get_dynamic_partitions(CRYPTO_INSTRUMENTS)
    if not instruments:
        return dg.SkipReason("no crypto instruments yet")
    when = context.scheduled_execution_time.astimezone(UTC)
    return dg.RunRequest(
        run_key=f"snapshots:{when:%Y-%m-%dT%H:%M}", tags=range_tags(instruments[0], instruments[-1])
    )


@daily_use_schedule(
    crypto_option_chains_job,
    "5 * * * *",
    "crypto",
    "As the snapshots: an hour missed is lost (it skips when no option chain is configured).",
)
def crypto_option_chains_hourly(context: dg.ScheduleEvaluationContext):
    """One snapshot of every configured option chain, each hour."""
    chains = option_chains.get_partition_keys()
    if not chains:
        return dg.SkipReason("no option chains in the sources config (universes.crypto.option_chains)")
    when = context.scheduled_execution_time.astimezone(UTC)
    return dg.RunRequest(run_key=f"option_chains:{when:%Y-%m-%dT%H}", tags=range_tags(chains[0], chains[-1]))


def crypto_catch_up_requests(
    context: dg.ScheduleEvaluationContext, days: int | None = None
) -> list[dg.RunRequest]:
    """One run over the last `days` closed days x every venue, fetching what the ingest log lacks."""
    now = context.scheduled_execution_time.astimezone(UTC)
    days = days or load_sources_config().catch_up_days
    # a UTC day is closed at midnight; give the venues half an hour to finish their day
    last = (now - timedelta(minutes=30)).date() - timedelta(days=1)
    first = last - timedelta(days=days - 1)
    venues = crypto_venues.get_partition_keys()
    keys = [crypto_key(first + timedelta(days=i), v) for i in range(days) for v in venues]
    found = statuses(context.instance, list(CRYPTO_ASSETS.values()), keys, crypto_partitions)
    if any(s.get(k) == dg.AssetPartitionStatus.IN_PROGRESS for s in found for k in keys):
        return []  # a run of those days is loading: the next catch-up looks again
    return [
        dg.RunRequest(
            run_key=f"crypto-catch-up:{first}..{last}@{now:%Y-%m-%d}",
            tags=day_range_tags(first, last, venues[0], venues[-1]),
            run_config=op_config("crypto_ticks", RETRY_FAILED),
        )
    ]


@daily_use_schedule(
    crypto_ticks_job,
    "0 3 * * *",
    "crypto",
    "Retries the days that failed or were skipped, and loads the recent days of new instruments.",
)
def crypto_ticks_catch_up(context: dg.ScheduleEvaluationContext):
    """The slices of the last N days the ingest log has no success for (failed, skipped, new instruments)."""
    return crypto_catch_up_requests(context) or dg.SkipReason("a run of the last days is in progress")
