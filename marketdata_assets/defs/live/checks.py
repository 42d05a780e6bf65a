"""Asset checks of `live_trades` (declared in quality/slice_checks.py as the REST and dump trades'
are, each hour judged by the day slice its load rewrote): no duplicate trade id, timestamps inside
the day, prices positive, and trade-id continuity (individual Binance trade ids)."""

from marketdata_assets.defs._common.checks import asset_checks
from marketdata_assets.defs.live.partitions import live_partitions
from marketdata_assets.quality.slice_checks import LIVE_TRADE_CHECKS

live_checks = asset_checks(LIVE_TRADE_CHECKS, live_partitions)
