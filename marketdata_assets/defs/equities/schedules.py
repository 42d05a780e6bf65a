"""When the equities assets run.

- A-shares (China days, into ClickHouse): 15:30 Asia/Shanghai on weekdays, the day that just closed;
- Yahoo (UTC days, see partitions.py): 17:30 America/New_York on weekdays, that day;
- the monthly K-line (TimescaleDB): every evening after the close, the last three months as one run
  (the refresh when the server has no refresh policy, and a safety net when it has).

The catch-up schedules look at the last `catch_up_days` (sources config) closed days and request the
days the instance knows as missing or failed, with `retry_failed: true` so only the slices whose
latest attempt did not succeed are fetched again.

The vendor schedules are off by default (they call the vendors' hosts): switch them on in the UI or
with `dagster schedule start`.
"""

from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import dagster as dg

from marketdata_assets.defs._common.runs import RETRY_FAILED, daily_use, op_config, statuses, todo
from marketdata_assets.defs.equities.minute_bars import stock_monthly_kline
from marketdata_assets.defs.equities.partitions import a_share_days, minute_bar_months, yahoo_days
from marketdata_assets.orchestration.sensing import range_tags
from marketdata_assets.sources.config import load_sources_config

SHANGHAI, NEW_YORK = ZoneInfo("Asia/Shanghai"), ZoneInfo("America/New_York")

a_share_bars_job = dg.define_asset_job(
    "a_share_bars_job", selection=dg.AssetSelection.assets("a_share_bars_1m", "a_share_daily_bars")
)
yahoo_bars_job = dg.define_asset_job("yahoo_bars_job", selection=dg.AssetSelection.assets("yahoo_bars_1m"))
monthly_kline_job = dg.define_asset_job("monthly_kline_refresh", selection=[stock_monthly_kline])


@dg.schedule(
    job=a_share_bars_job,
    cron_schedule="30 15 * * 1-5",
    execution_timezone="Asia/Shanghai",
    metadata=daily_use("a_shares", "Loads each China trading day after its close."),
)
def a_share_after_close(context: dg.ScheduleEvaluationContext):
    """The China trading day that closed at 15:00, the whole universe in one run."""
    day = context.scheduled_execution_time.astimezone(SHANGHAI).date()
    return dg.RunRequest(run_key=f"a_shares:{day}", partition_key=day.isoformat())


@dg.schedule(
    job=yahoo_bars_job,
    cron_schedule="30 17 * * 1-5",
    execution_timezone="America/New_York",
    metadata=daily_use(
        "yahoo",
        "Loads each day after New York's close; Yahoo keeps 1-minute bars about "
        "30 days, so a day not loaded within them is gone.",
    ),
)
def yahoo_after_close(context: dg.ScheduleEvaluationContext):
    """The day New York closed at 16:00 (its UTC day partition), the whole universe in one run."""
    day = context.scheduled_execution_time.astimezone(NEW_YORK).date()
    return dg.RunRequest(run_key=f"yahoo:{day}", partition_key=day.isoformat())


@dg.schedule(
    job=monthly_kline_job,
    cron_schedule="30 17 * * 1-5",
    execution_timezone="Asia/Shanghai",
    metadata=daily_use(
        "minute_bars",
        "Refreshes the last three months of the K-line each evening: the "
        "refresh on a server without TimescaleDB's background jobs (the "
        "local stack's PGlite), a safety net beside its policy otherwise.",
    ),
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


@dg.schedule(
    job=a_share_bars_job,
    cron_schedule="0 20 * * *",
    execution_timezone="Asia/Shanghai",
    metadata=daily_use("a_shares", "Retries the recent days that are missing or failed."),
)
def a_share_catch_up(context: dg.ScheduleEvaluationContext):
    """Missing or failed A-share days of the last N days (closed ones only)."""
    return stock_catch_up(
        context,
        a_share_days,
        ["a_share_bars_1m", "a_share_daily_bars"],
        "a_share_bars",
        time(15, 30),
        SHANGHAI,
        "a_shares",
    ) or dg.SkipReason("every recent A-share day is loaded")


@dg.schedule(
    job=yahoo_bars_job,
    cron_schedule="0 20 * * *",
    execution_timezone="America/New_York",
    metadata=daily_use("yahoo", "Retries the recent days that are missing or failed."),
)
def yahoo_catch_up(context: dg.ScheduleEvaluationContext):
    """Missing or failed Yahoo days of the last N days (closed ones only)."""
    return stock_catch_up(
        context, yahoo_days, ["yahoo_bars_1m"], "yahoo_bars_1m", time(17, 30), NEW_YORK, "yahoo"
    ) or dg.SkipReason("every recent Yahoo day is loaded")
