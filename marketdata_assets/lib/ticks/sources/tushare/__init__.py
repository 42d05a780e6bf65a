"""Tushare Pro: A-share 1-minute and daily bars."""

from marketdata_assets.lib.ticks.sources.tushare.pro import *  # noqa: F403
from marketdata_assets.lib.ticks.sources.tushare.pro import TushareClient  # noqa: F401
