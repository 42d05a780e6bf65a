"""The K-line refresh when the server has no refresh policy (the table path), and a safety net
when it has: every evening after the close, the last three months as one run."""

from datetime import timedelta

import dagster as dg

from marketdata_assets.defs.bars.assets import stock_monthly_kline
from marketdata_assets.defs.bars.partitions import minute_bar_months
from marketdata_assets.orchestration.sensing import range_tags

monthly_kline_job = dg.define_asset_job("monthly_kline_refresh", selection=[stock_monthly_kline],
                                        partitions_def=minute_bar_months)


@dg.schedule(job=monthly_kline_job, cron_schedule="30 17 * * 1-5", execution_timezone="Asia/Shanghai")
def monthly_kline_after_close(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """Mirrors the continuous aggregate policy's window (start_offset 3 months) in one range run."""
    now = context.scheduled_execution_time
    keys = minute_bar_months.get_partition_keys(current_time=now + timedelta(seconds=1))[-3:]
    return dg.RunRequest(run_key=f"{keys[0]}..{keys[-1]}@{now:%Y-%m-%d}", tags=range_tags(keys[0], keys[-1]))
