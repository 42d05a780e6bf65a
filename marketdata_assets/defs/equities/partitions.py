"""Partitions of the equities domain.

- The stock feeds (into ClickHouse; sources/registry.py `STOCK_FEEDS`): each its calendar days
  (`StockDays.days_zone`: China days for A-shares, UTC days for Yahoo), weekdays only (holidays run and
  find no bars: the day is recorded as not a trading day). The universe (~5,000 A-share codes) is
  processed inside the run, never a partition dimension (1.25M keys a year). `end_offset=1`: today's
  partition exists, so the after-close schedule can load the day that just closed. Yahoo's UTC day holds
  the regular session of every exchange of its universe (the Americas, Europe, Africa, the Middle East),
  and a UTC day is the unit the tick tables write, so a partition is exactly one slice per instrument.
- Minute bars from CSV drops (TimescaleDB): calendar months of Beijing time; the month in progress is
  a partition too (end_offset=1), since minute bars arrive daily and the K-line of the current month
  is refreshed as they do.
"""

from datetime import timedelta

import dagster as dg

from marketdata_assets.defs._common.partitions import WEEKENDS
from marketdata_assets.sources.config import load_sources_config
from marketdata_assets.sources.interface import StockFeed
from marketdata_assets.sources.registry import STOCK_FEEDS

_config = load_sources_config()


def _days(feed: StockFeed) -> dg.DailyPartitionsDefinition:
    return dg.DailyPartitionsDefinition(
        start_date=feed.days.history_start(_config).isoformat(),
        timezone=feed.days.days_zone,
        end_offset=1,
        exclusions=WEEKENDS,
    )


def _freshness(feed: StockFeed) -> dg.FreshnessPolicy:
    """Materialized by the feed's deadline on weekdays, after its after-close run (schedules.py); shown in
    the UI, evaluated by the daemon with `freshness: enabled` in dagster.yaml."""
    due = feed.days.fresh_by
    return dg.FreshnessPolicy.cron(
        deadline_cron=f"{due.minute} {due.hour} * * 1-5",
        lower_bound_delta=timedelta(hours=4),
        timezone=feed.days.zone,
    )


STOCK_DAYS = {name: _days(feed) for name, feed in STOCK_FEEDS.items()}  # feed -> its day partitions
FRESHNESS = {name: _freshness(feed) for name, feed in STOCK_FEEDS.items()}
a_share_days, yahoo_days = STOCK_DAYS["TUSHARE"], STOCK_DAYS["YAHOO"]  # the names apps/cli reads
minute_bar_months = dg.MonthlyPartitionsDefinition(
    start_date="2000-01-01", timezone="Asia/Shanghai", end_offset=1
)
