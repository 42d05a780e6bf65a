"""Yahoo Finance chart v8: 1-minute bars (`chart`)."""

from datetime import timedelta

from marketdata_assets.sources.interface import HISTORY, Option, Reach, Source, StockFeed
from marketdata_assets.sources.yahoo import feeds
from marketdata_assets.sources.yahoo.chart import (
    ERRORS,
    PROVIDER,
    YahooInstrumentNotFound,
    YahooRequestError,
    parse_chart,
)
from marketdata_assets.sources.yahoo.client import LIMITS, YahooChartClient
from marketdata_assets.sources.yahoo.feeds import SOURCE
from marketdata_assets.sources.yahoo.instruments import denoise_float32, normalize_currency
from marketdata_assets.sources.yahoo.records import ChartData

# 1-minute bars reach about 30 days back: observed (Yahoo documents chart v8 nowhere), as yfinance's users
# report
BARS_REACH = Reach(
    timedelta(days=30), "nowhere in this project", "https://github.com/ranaroussi/yfinance/issues/2451"
)
# venues: the exchange each answer names (any Yahoo lists)
YAHOO = Source(
    SOURCE,
    (),
    {"bars_1m": HISTORY},
    YahooChartClient,
    "yahoo",
    {"bars_1m": BARS_REACH},
    feed=StockFeed(feeds.feeds, feeds.session_bar_opens, feeds.BLOCK_DAYS, feeds.BARS_A_DAY),
    options={
        "max_days_back": Option(
            BARS_REACH.span.days,
            nullable=True,
            description=(
                "How many days back the chart API serves 1-minute bars; older days are not asked for. "
                "null: no horizon (e.g. a replay)."
            ),
        )
    },
)

__all__ = [
    "ERRORS",
    "LIMITS",
    "PROVIDER",
    "YAHOO",
    "ChartData",
    "YahooChartClient",
    "YahooInstrumentNotFound",
    "YahooRequestError",
    "denoise_float32",
    "normalize_currency",
    "parse_chart",
]
