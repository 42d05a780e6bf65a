"""Asset checks of the stock feeds' assets in ClickHouse (declared in quality/slice_checks.py
`STOCK_FEED_CHECKS`, made asset checks by defs/_common/checks.py), per day partition of each feed: the
rules over the day's slices whose active load this source wrote (ingest_log); the minute grid against
the venue's calendar (a day past the calendar's last known session is judged provisionally: a WARN
saying so). The TimescaleDB minute bars' checks: minute_checks.py."""

from marketdata_assets.defs._common.checks import asset_checks
from marketdata_assets.defs.equities.partitions import STOCK_DAYS
from marketdata_assets.quality.slice_checks import STOCK_FEED_CHECKS

equities_checks = [
    check for name, days in STOCK_DAYS.items() for check in asset_checks(STOCK_FEED_CHECKS[name], days)
]
