"""When the equities assets run.

- Each stock feed (sources/registry.py `STOCK_FEEDS`), in its exchange's zone on weekdays after the close
  (`StockDays.loaded_at`), the day that just closed: A-shares at 15:30 Asia/Shanghai (China days), Yahoo
  at 17:30 America/New_York (its UTC day, see partitions.py);
- the monthly K-line (TimescaleDB): every evening after the close, the last three months as one run
  (the refresh when the server has no refresh policy, and a safety net when it has).

The catch-up schedules (`StockDays.catch_up_at`) look at the last `catch_up_days` (sources config)
closed days and request the days the instance knows as missing or failed, with `retry_failed: true` so
only the slices whose latest attempt did not succeed are fetched again.

The vendor schedules are off by default (they call the vendors' hosts): switch them on in the UI or
with `dagster schedule start`.
"""

from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import dagster as dg

from marketdata_assets.defs._common.runs import RETRY_FAILED, daily_use_schedule, op_config, statuses, todo
from marketdata_assets.defs.equities.minute_bars import stock_monthly_kline
from marketdata_assets.defs.equities.partitions import STOCK_DAYS, minute_bar_months
from marketdata_assets.defs.equities.stocks import step_name, stock_assets
from marketdata_assets.orchestration.sensing import range_tags
from marketdata_assets.sources.config import load_sources_config
from marketdata_assets.sources.registry import STOCK_FEEDS

SHANGHAI = ZoneInfo("Asia/Shanghai")
monthly_kline_job = dg.define_asset_job("monthly_kline_refresh", selection=[stock_monthly_kline])


@daily_use_schedule(
    monthly_kline_job,
    "30 17 * * 1-5",
    "minute_bars",
    "Refreshes the last three months of the K-line each evening: the "
    "refresh on a server without TimescaleDB's background jobs (the "
    "local stack's PGlite), a safety net beside its policy otherwise.",
    zone="Asia/Shanghai",
)
def monthly_kline_after_close(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """Mirrors the continuous aggregate policy's window (start_offset 3 months) in one range run."""
    now = context.scheduled_execution_time
    keys = minute_bar_months.get_partition_keys(current_time=now + timedelta(seconds=1))[-3:]
    return dg.RunRequest(run_key=f"{keys[0]}..{keys[-1]}@{now:%Y-%m-%d}", tags=range_tags(keys[0], keys[-1]))


# --------------------------------------------------------------------------------------------
# Catch-up: missing or failed days of the last N days
# --------------------------------------------------------------------------------------------


def stock_catch_up(
    context: dg.ScheduleEvaluationContext,
    partitions_def,
    assets: Sequence[str],
    op_name: str,
    ready: time,
    zone: ZoneInfo,
    prefix: str,
    days: int | None = None,
) -> list[dg.RunRequest]:
    """One run per closed day (session close `ready` in `zone` passed) that is missing or failed."""
    now = context.scheduled_execution_time
    days = days or load_sources_config().catch_up_days
    keys = [
        k
        for k in partitions_def.get_partition_keys(current_time=now)[-(days + 1) :]
        if datetime.combine(date.fromisoformat(k), ready, tzinfo=zone) <= now
    ][-days:]
    missing = todo(keys, statuses(context.instance, assets, keys, partitions_def))
    return [
        dg.RunRequest(
            run_key=f"{prefix}-catch-up:{k}@{now:%Y-%m-%d}",
            partition_key=k,
            run_config=op_config(op_name, RETRY_FAILED),
        )
        for k in missing
    ]


def _cron(at: time, days: str = "1-5") -> str:
    return f"{at.minute} {at.hour} * * {days}"


def after_close(name: str, job) -> dg.ScheduleDefinition:
    """Feed `name`'s day that closed (its day in the exchange's zone), the whole universe in one run."""
    feed = STOCK_FEEDS[name]
    zone = ZoneInfo(feed.days.zone)

    @daily_use_schedule(
        job,
        _cron(feed.days.loaded_at),
        feed.universe,
        feed.loads,
        zone=feed.days.zone,
        name=f"{feed.prefix}_after_close",
    )
    def schedule(context: dg.ScheduleEvaluationContext):
        day = context.scheduled_execution_time.astimezone(zone).date()
        return dg.RunRequest(run_key=f"{feed.universe}:{day}", partition_key=day.isoformat())

    schedule.__wrapped__.__doc__ = (  # what docs/configuration.md says of it
        f"The day that closed before {feed.days.loaded_at:%H:%M} {feed.days.zone} (its "
        f"{feed.days.days_zone} day partition), the whole universe in one run."
    )
    return schedule


def catch_up(name: str, job) -> dg.ScheduleDefinition:
    """Feed `name`'s missing or failed days of the last N days (closed ones only)."""
    feed = STOCK_FEEDS[name]

    @daily_use_schedule(
        job,
        _cron(feed.days.catch_up_at, "*"),
        feed.universe,
        "Retries the recent days that are missing or failed.",
        zone=feed.days.zone,
        name=f"{feed.prefix}_catch_up",
    )
    def schedule(context: dg.ScheduleEvaluationContext):
        return stock_catch_up(
            context,
            STOCK_DAYS[name],
            list(stock_assets(name).values()),
            step_name(name),
            feed.days.loaded_at,
            ZoneInfo(feed.days.zone),
            feed.universe,
        ) or dg.SkipReason(f"every recent day of {step_name(name)} is loaded")

    schedule.__wrapped__.__doc__ = (
        f"Missing or failed days of {step_name(name)} of the last N days (closed ones only)."
    )
    return schedule


# each stock feed's job (`<prefix>_bars_job`: its assets) and its two schedules
STOCK_JOBS = {
    name: dg.define_asset_job(
        f"{feed.prefix}_bars_job", selection=dg.AssetSelection.assets(*stock_assets(name).values())
    )
    for name, feed in STOCK_FEEDS.items()
}
STOCK_SCHEDULES = [
    schedule for name, job in STOCK_JOBS.items() for schedule in (after_close(name, job), catch_up(name, job))
]  # a list: the defs folder's loader finds what lists hold, not dicts
_named = {schedule.name: schedule for schedule in STOCK_SCHEDULES}
a_share_after_close, yahoo_after_close = (
    _named["a_share_after_close"],
    _named["yahoo_after_close"],
)  # tests read them
