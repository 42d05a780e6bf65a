"""Asset checks of the equities assets in ClickHouse (A-shares from Tushare, Yahoo bars; declared in
quality/slice_checks.py, made asset checks by defs/_common/checks.py), per day partition: the rules
over the day's slices whose active load this source wrote (ingest_log); the minute grid against the
venue's calendar (a day past the calendar's last known session is judged provisionally: a WARN
saying so). The TimescaleDB minute bars' checks: minute_checks.py."""

from marketdata_assets.defs._common.checks import asset_checks
from marketdata_assets.defs.equities.partitions import a_share_days, yahoo_days
from marketdata_assets.quality.slice_checks import A_SHARE_CHECKS, YAHOO_CHECKS

equities_checks = [*asset_checks(A_SHARE_CHECKS, a_share_days), *asset_checks(YAHOO_CHECKS, yahoo_days)]
