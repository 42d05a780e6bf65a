"""The daily fetch of the month in progress (New York time), every account."""

from datetime import datetime, timedelta

import dagster as dg

from marketdata_assets.defs._common.runs import daily_use_schedule
from marketdata_assets.defs.alphas.assets import alpha_files
from marketdata_assets.defs.alphas.partitions import alpha_accounts

alpha_fetch_job = dg.define_asset_job("alpha_fetch", selection=[alpha_files])

# In the first days of a month the previous month is fetched too: alphas created in its last hours
# after the previous day's fetch, and the API's listing lag.
PREVIOUS_MONTH_DAYS = 3


def fetch_months(now: datetime) -> list[str]:
    months = [f"{now:%Y-%m}-01"]
    if now.day <= PREVIOUS_MONTH_DAYS:
        months.insert(0, f"{now.replace(day=1) - timedelta(days=1):%Y-%m}-01")
    return months


@daily_use_schedule(
    alpha_fetch_job,
    "30 6 * * *",
    "alphas",
    "Fetches the month in progress for every account; the import follows (landing sensor).",
    zone="America/New_York",
    default_status=dg.DefaultScheduleStatus.STOPPED,
)
def alpha_fetch_daily(context: dg.ScheduleEvaluationContext):
    """The month in progress (and the previous one in a month's first days), one run per (month,
    account): accounts have their own sessions and limits, and a failed account is retried alone. The
    import follows through the landing sensor. Stopped by default (it calls the vendor's API): turn it
    on once the accounts' credentials are set."""
    now = context.scheduled_execution_time
    return [
        dg.RunRequest(
            partition_key=dg.MultiPartitionKey({"month": month, "account": account}),
            run_key=f"{month}|{account}@{now:%Y-%m-%d}",
        )
        for month in fetch_months(now)
        for account in alpha_accounts.get_partition_keys()
    ]
