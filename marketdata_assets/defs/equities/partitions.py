"""Partitions of the equities domain.

- A-shares (Tushare, into ClickHouse): China calendar days (Asia/Shanghai), weekdays only (holidays
  run and find no bars: the day is recorded as not a trading day). The universe (~5,000 codes) is
  processed inside the run, never a partition dimension (1.25M keys a year). `end_offset=1`: today's
  partition exists, so the 15:30 schedule can load the day that just closed.
- Yahoo: UTC calendar days, weekdays. Every exchange of the universe holds its regular session
  inside one UTC day (the Americas, Europe, Africa, the Middle East), and a UTC day is the unit the
  tick tables write (one slice per instrument and UTC day), so a partition is exactly one slice per
  instrument. `end_offset=1` for the same reason as A-shares (the schedule runs at 17:30 New York, in
  the same UTC day).
- Minute bars from CSV drops (TimescaleDB): calendar months of Beijing time; the month in progress is
  a partition too (end_offset=1), since minute bars arrive daily and the K-line of the current month
  is refreshed as they do.
"""

from datetime import timedelta

import dagster as dg

from marketdata_assets.defs._common.partitions import WEEKENDS
from marketdata_assets.sources.config import load_sources_config

_config = load_sources_config()

a_share_days = dg.DailyPartitionsDefinition(
    start_date=_config.a_share_history_start.isoformat(),
    timezone="Asia/Shanghai",
    end_offset=1,
    exclusions=WEEKENDS,
)
yahoo_days = dg.DailyPartitionsDefinition(
    start_date=_config.yahoo_history_start.isoformat(), timezone="UTC", end_offset=1, exclusions=WEEKENDS
)
minute_bar_months = dg.MonthlyPartitionsDefinition(
    start_date="2000-01-01", timezone="Asia/Shanghai", end_offset=1
)

# Freshness (shown in the UI, evaluated by the daemon with `freshness: enabled` in dagster.yaml): each
# dataset is materialized by its deadline, after its schedule's run (schedules.py).
FRESHNESS = {
    # the session ends 15:00 Beijing; a_share_after_close runs at 15:30 on weekdays
    "a_share": dg.FreshnessPolicy.cron(
        deadline_cron="0 18 * * 1-5", lower_bound_delta=timedelta(hours=4), timezone="Asia/Shanghai"
    ),
    # the regular session ends 16:00 New York; yahoo_after_close runs at 17:30 on weekdays
    "yahoo": dg.FreshnessPolicy.cron(
        deadline_cron="0 20 * * 1-5", lower_bound_delta=timedelta(hours=4), timezone="America/New_York"
    ),
}
