"""Yahoo Finance chart v8: 1-minute bars."""

from marketdata_assets.lib.ticks.sources.yahoo.chart import *  # noqa: F403
from marketdata_assets.lib.ticks.sources.yahoo.chart import YahooChartClient  # noqa: F401
