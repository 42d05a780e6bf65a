"""When the crypto assets run: each UTC day is loaded after it closes as ONE run with every
instrument in it (00:30 UTC, yesterday x every instrument of `crypto_instruments`); snapshots (books,
tickers, open interest where there is no history) every 15 minutes, every instrument (a snapshot can
only be taken now); option chains hourly.

The catch-up schedule looks at the last `catch_up_days` (sources config) closed days and requests the
(day, instrument) partitions the instance knows as missing or failed, with `retry_failed: true`, as
runs over contiguous blocks of the instrument dimension (a run's partitions are a range), consecutive
days with the same blocks as one run.

The schedules are off by default (they call the vendors' hosts): switch them on in the UI or with
`dagster schedule start`.
"""

from datetime import date, timedelta

import dagster as dg

from marketdata_assets.core.ranges import range_runs
from marketdata_assets.defs._common.partitions import crypto_key
from marketdata_assets.defs._common.runs import (
    RETRY_FAILED,
    UTC,
    daily_use,
    day_range_tags,
    op_config,
    statuses,
    todo,
)
from marketdata_assets.defs.crypto.assets import CRYPTO_ASSETS, SNAPSHOT_ASSETS
from marketdata_assets.defs.crypto.partitions import (
    CRYPTO_INSTRUMENTS,
    crypto_instruments,
    crypto_partitions,
    option_chains,
)
from marketdata_assets.orchestration.sensing import range_tags
from marketdata_assets.sources.config import load_sources_config

crypto_ticks_job = dg.define_asset_job("crypto_ticks_job", selection=dg.AssetSelection.assets(
    *CRYPTO_ASSETS.values()), partitions_def=crypto_partitions)
crypto_snapshots_job = dg.define_asset_job("crypto_snapshots_job", selection=dg.AssetSelection.assets(
    *(asset for asset, _ in SNAPSHOT_ASSETS.values())), partitions_def=crypto_instruments)
crypto_option_chains_job = dg.define_asset_job("crypto_option_chains_job", selection=dg.AssetSelection.assets(
    "crypto_option_chains"), partitions_def=option_chains)


@dg.schedule(job=crypto_ticks_job, cron_schedule="30 0 * * *", execution_timezone="UTC", metadata=daily_use(
    "crypto", "Loads each closed UTC day: without it no new history arrives."))
def crypto_ticks_daily(context: dg.ScheduleEvaluationContext):
    """Yesterday (UTC) for every crypto instrument, in one run."""
    day = (context.scheduled_execution_time.astimezone(UTC) - timedelta(days=1)).date()
    instruments = context.instance.get_dynamic_partitions(CRYPTO_INSTRUMENTS)
    if not instruments:
        return dg.SkipReason("no crypto instruments yet (the crypto_instruments_from_config sensor adds them)")
    return dg.RunRequest(run_key=f"crypto:{day}", tags=day_range_tags(day, day, instruments[0], instruments[-1]))


@dg.schedule(job=crypto_snapshots_job, cron_schedule="*/15 * * * *", execution_timezone="UTC", metadata=daily_use(
    "crypto", "A snapshot can only be taken now: a quarter-hour it does not run is lost for good."))
def crypto_snapshots_every_15_minutes(context: dg.ScheduleEvaluationContext):
    """One order-book, ticker and (where there is no history) open-interest snapshot of every crypto
    instrument."""
    instruments = context.instance.get_dynamic_partitions(CRYPTO_INSTRUMENTS)
    if not instruments:
        return dg.SkipReason("no crypto instruments yet")
    when = context.scheduled_execution_time.astimezone(UTC)
    return dg.RunRequest(run_key=f"snapshots:{when:%Y-%m-%dT%H:%M}",
                         tags=range_tags(instruments[0], instruments[-1]))


@dg.schedule(job=crypto_option_chains_job, cron_schedule="5 * * * *", execution_timezone="UTC", metadata=daily_use(
    "crypto", "As the snapshots: an hour missed is lost (it skips when no option chain is configured)."))
def crypto_option_chains_hourly(context: dg.ScheduleEvaluationContext):
    """One snapshot of every configured option chain, each hour."""
    chains = option_chains.get_partition_keys()
    if not chains:
        return dg.SkipReason("no option chains in the sources config (universes.crypto.option_chains)")
    when = context.scheduled_execution_time.astimezone(UTC)
    return dg.RunRequest(run_key=f"option_chains:{when:%Y-%m-%dT%H}",
                         tags=range_tags(chains[0], chains[-1]))


def crypto_catch_up_requests(context: dg.ScheduleEvaluationContext, days: int | None = None) -> list[dg.RunRequest]:
    now = context.scheduled_execution_time.astimezone(UTC)
    days = days or load_sources_config().catch_up_days
    instruments = list(context.instance.get_dynamic_partitions(CRYPTO_INSTRUMENTS))
    # a UTC day is closed at midnight; give the venues half an hour to finish their day
    last = (now - timedelta(minutes=30)).date() - timedelta(days=1)
    day_list = [last - timedelta(days=i) for i in range(days)][::-1]
    keys = [crypto_key(d, i) for d in day_list for i in instruments]
    affected: dict[date, set[str]] = {}
    for key in todo(keys, statuses(context.instance, list(CRYPTO_ASSETS.values()), keys, crypto_partitions)):
        day, instrument = key.split("|")
        affected.setdefault(date.fromisoformat(day), set()).add(instrument)
    return [dg.RunRequest(run_key=f"crypto-catch-up:{a}..{b}:{i}..{j}@{now:%Y-%m-%d}",
                          tags=day_range_tags(a, b, i, j), run_config=op_config("crypto_ticks", RETRY_FAILED))
            for a, b, i, j in range_runs(affected, instruments)]


@dg.schedule(job=crypto_ticks_job, cron_schedule="0 3 * * *", execution_timezone="UTC", metadata=daily_use(
    "crypto", "Retries the days that failed or were skipped, and loads the recent days of new instruments."))
def crypto_ticks_catch_up(context: dg.ScheduleEvaluationContext):
    """Missing or failed (day, instrument) partitions of the last N days."""
    return crypto_catch_up_requests(context) or dg.SkipReason("every crypto partition of the last days is loaded")


