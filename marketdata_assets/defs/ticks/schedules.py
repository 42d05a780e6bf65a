"""When the ticks assets run.

Each venue's day is loaded after its session closes, in its own time zone, as ONE run per day with
every instrument / the whole universe in it:

- crypto (UTC days): 00:30 UTC, yesterday x every instrument of `crypto_instruments`;
- A-shares (China days): 15:30 Asia/Shanghai on weekdays, the day that just closed;
- Yahoo (UTC days, see partitions.py): 17:30 America/New_York on weekdays, that day;
- snapshots (books, tickers, open interest where there is no history): every 15 minutes, every
  instrument (a snapshot can only be taken now); option chains: hourly.

The catch-up schedules look at the last `catch_up_days` (sources config) closed days and request
the partitions the instance knows as missing or failed (materialization status; in-progress ones
are left alone), with `retry_failed: true` so only the slices whose latest attempt did not succeed
are fetched again. For day x instrument partitions the missing/failed instruments of a day are
requested as runs over contiguous blocks of the instrument dimension (a run's partitions are a
range), consecutive days with the same blocks as one run.

The schedules are off by default (they call the vendors' hosts): switch them on in the UI or with
`dagster schedule start`.
"""


from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import dagster as dg

from marketdata_assets.core.ranges import range_runs
from marketdata_assets.defs.ticks.assets import CRYPTO_ASSETS, SNAPSHOT_ASSETS
from marketdata_assets.defs.ticks.partitions import (
    CRYPTO_INSTRUMENTS,
    a_share_days,
    crypto_instruments,
    crypto_key,
    crypto_partitions,
    option_chains,
    yahoo_days,
)
from marketdata_assets.orchestration.sensing import range_tags
from marketdata_assets.resources.sources import load_sources_config

SHANGHAI, NEW_YORK, UTC = ZoneInfo("Asia/Shanghai"), ZoneInfo("America/New_York"), ZoneInfo("UTC")
RETRY_FAILED = {"retry_failed": True}

crypto_ticks_job = dg.define_asset_job("crypto_ticks_job", selection=dg.AssetSelection.assets(
    *CRYPTO_ASSETS.values()), partitions_def=crypto_partitions)
crypto_snapshots_job = dg.define_asset_job("crypto_snapshots_job", selection=dg.AssetSelection.assets(
    *(asset for asset, _ in SNAPSHOT_ASSETS.values())), partitions_def=crypto_instruments)
crypto_option_chains_job = dg.define_asset_job("crypto_option_chains_job", selection=dg.AssetSelection.assets(
    "crypto_option_chains"), partitions_def=option_chains)
a_share_ticks_job = dg.define_asset_job("a_share_ticks_job", selection=dg.AssetSelection.assets(
    "a_share_bars_1m", "a_share_daily_bars"), partitions_def=a_share_days)
yahoo_bars_job = dg.define_asset_job("yahoo_bars_job", selection=dg.AssetSelection.assets("yahoo_bars_1m"),
                                     partitions_def=yahoo_days)


# --------------------------------------------------------------------------------------------
# Runs over day x instrument partitions
# --------------------------------------------------------------------------------------------

def day_range_tags(first_day: date, last_day: date, first: str, last: str) -> dict[str, str]:
    """One run over days first_day..last_day x instruments first..last (day|instrument keys)."""
    return range_tags(crypto_key(first_day, first), crypto_key(last_day, last))


def _op_config(op_name: str, config: dict) -> dict:
    return {"ops": {op_name: {"config": config}}}


# --------------------------------------------------------------------------------------------
# After the close
# --------------------------------------------------------------------------------------------

@dg.schedule(job=crypto_ticks_job, cron_schedule="30 0 * * *", execution_timezone="UTC")
def crypto_ticks_daily(context: dg.ScheduleEvaluationContext):
    """Yesterday (UTC) for every crypto instrument, in one run."""
    day = (context.scheduled_execution_time.astimezone(UTC) - timedelta(days=1)).date()
    instruments = context.instance.get_dynamic_partitions(CRYPTO_INSTRUMENTS)
    if not instruments:
        return dg.SkipReason("no crypto instruments yet (the crypto_instruments_from_config sensor adds them)")
    return dg.RunRequest(run_key=f"crypto:{day}", tags=day_range_tags(day, day, instruments[0], instruments[-1]))


@dg.schedule(job=crypto_snapshots_job, cron_schedule="*/15 * * * *", execution_timezone="UTC")
def crypto_snapshots_every_15_minutes(context: dg.ScheduleEvaluationContext):
    """One order-book, ticker and (where there is no history) open-interest snapshot of every crypto
    instrument."""
    instruments = context.instance.get_dynamic_partitions(CRYPTO_INSTRUMENTS)
    if not instruments:
        return dg.SkipReason("no crypto instruments yet")
    when = context.scheduled_execution_time.astimezone(UTC)
    return dg.RunRequest(run_key=f"snapshots:{when:%Y-%m-%dT%H:%M}",
                         tags=range_tags(instruments[0], instruments[-1]))


@dg.schedule(job=crypto_option_chains_job, cron_schedule="5 * * * *", execution_timezone="UTC")
def crypto_option_chains_hourly(context: dg.ScheduleEvaluationContext):
    """One snapshot of every configured option chain, each hour."""
    chains = option_chains.get_partition_keys()
    if not chains:
        return dg.SkipReason("no option chains in the sources config (universes.crypto.option_chains)")
    when = context.scheduled_execution_time.astimezone(UTC)
    return dg.RunRequest(run_key=f"option_chains:{when:%Y-%m-%dT%H}",
                         tags=range_tags(chains[0], chains[-1]))


@dg.schedule(job=a_share_ticks_job, cron_schedule="30 15 * * 1-5", execution_timezone="Asia/Shanghai")
def a_share_after_close(context: dg.ScheduleEvaluationContext):
    """The China trading day that closed at 15:00, the whole universe in one run."""
    day = context.scheduled_execution_time.astimezone(SHANGHAI).date()
    return dg.RunRequest(run_key=f"a_shares:{day}", partition_key=day.isoformat())


@dg.schedule(job=yahoo_bars_job, cron_schedule="30 17 * * 1-5", execution_timezone="America/New_York")
def yahoo_after_close(context: dg.ScheduleEvaluationContext):
    """The day New York closed at 16:00 (its UTC day partition), the whole universe in one run."""
    day = context.scheduled_execution_time.astimezone(NEW_YORK).date()
    return dg.RunRequest(run_key=f"yahoo:{day}", partition_key=day.isoformat())


# --------------------------------------------------------------------------------------------
# Catch-up: missing or failed partitions of the last N days
# --------------------------------------------------------------------------------------------

def _bad(status) -> bool:
    return status is None or status == dg.AssetPartitionStatus.FAILED


def _statuses(instance, assets: Sequence[str], keys: list[str], partitions_def) -> list[dict]:
    out = []
    for asset in assets:
        found = instance.get_status_by_partition(dg.AssetKey(asset), keys, partitions_def) if keys else {}
        out.append(found or {})  # no status cache yet: everything is missing
    return out


def stock_catch_up(context: dg.ScheduleEvaluationContext, partitions_def, assets: Sequence[str], op_name: str,
                   ready: time, zone: ZoneInfo, prefix: str, days: int | None = None) -> list[dg.RunRequest]:
    """One run per closed day (session close `ready` in `zone` passed) that is missing or failed."""
    now = context.scheduled_execution_time
    days = days or load_sources_config().catch_up_days
    keys = [k for k in partitions_def.get_partition_keys(current_time=now)[-(days + 1):]
            if datetime.combine(date.fromisoformat(k), ready, tzinfo=zone) <= now][-days:]
    statuses = _statuses(context.instance, assets, keys, partitions_def)
    todo = [k for k in keys if any(_bad(s.get(k)) for s in statuses)
            and not any(s.get(k) == dg.AssetPartitionStatus.IN_PROGRESS for s in statuses)]
    return [dg.RunRequest(run_key=f"{prefix}-catch-up:{k}@{now:%Y-%m-%d}", partition_key=k,
                          run_config=_op_config(op_name, RETRY_FAILED)) for k in todo]


def crypto_catch_up_requests(context: dg.ScheduleEvaluationContext, days: int | None = None) -> list[dg.RunRequest]:
    now = context.scheduled_execution_time.astimezone(UTC)
    days = days or load_sources_config().catch_up_days
    instruments = list(context.instance.get_dynamic_partitions(CRYPTO_INSTRUMENTS))
    # a UTC day is closed at midnight; give the venues half an hour to finish their day
    last = (now - timedelta(minutes=30)).date() - timedelta(days=1)
    day_list = [last - timedelta(days=i) for i in range(days)][::-1]
    keys = [crypto_key(d, i) for d in day_list for i in instruments]
    statuses = _statuses(context.instance, list(CRYPTO_ASSETS.values()), keys, crypto_partitions)
    affected: dict[date, set[str]] = {}
    for key in keys:
        if any(_bad(s.get(key)) for s in statuses) and not any(
                s.get(key) == dg.AssetPartitionStatus.IN_PROGRESS for s in statuses):
            day, instrument = key.split("|")
            affected.setdefault(date.fromisoformat(day), set()).add(instrument)
    return [dg.RunRequest(run_key=f"crypto-catch-up:{a}..{b}:{i}..{j}@{now:%Y-%m-%d}",
                          tags=day_range_tags(a, b, i, j), run_config=_op_config("crypto_ticks", RETRY_FAILED))
            for a, b, i, j in range_runs(affected, instruments)]


@dg.schedule(job=crypto_ticks_job, cron_schedule="0 3 * * *", execution_timezone="UTC")
def crypto_ticks_catch_up(context: dg.ScheduleEvaluationContext):
    """Missing or failed (day, instrument) partitions of the last N days."""
    return crypto_catch_up_requests(context) or dg.SkipReason("every crypto partition of the last days is loaded")


@dg.schedule(job=a_share_ticks_job, cron_schedule="0 20 * * *", execution_timezone="Asia/Shanghai")
def a_share_catch_up(context: dg.ScheduleEvaluationContext):
    """Missing or failed A-share days of the last N days (closed ones only)."""
    return stock_catch_up(context, a_share_days, ["a_share_bars_1m", "a_share_daily_bars"], "a_share_ticks",
                          time(15, 30), SHANGHAI, "a_shares") or dg.SkipReason("every recent A-share day is loaded")


@dg.schedule(job=yahoo_bars_job, cron_schedule="0 20 * * *", execution_timezone="America/New_York")
def yahoo_catch_up(context: dg.ScheduleEvaluationContext):
    """Missing or failed Yahoo days of the last N days (closed ones only)."""
    return stock_catch_up(context, yahoo_days, ["yahoo_bars_1m"], "yahoo_bars_1m", time(17, 30), NEW_YORK,
                          "yahoo") or dg.SkipReason("every recent Yahoo day is loaded")
