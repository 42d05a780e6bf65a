"""Yahoo Finance chart v8: 1-minute bars (`chart`)."""

from datetime import time, timedelta

from marketdata_assets.core.identifiers import instrument_key
from marketdata_assets.sources.interface import HISTORY, Option, Reach, Source, StockDays, StockFeed
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
from marketdata_assets.sources.yahoo.records import ChartData
from marketdata_assets.sources.yahoo.units import denoise_float32, normalize_currency

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
    feed=StockFeed(
        feeds.feeds,
        feeds.session_bar_opens,
        feeds.BLOCK_DAYS,
        feeds.BARS_A_DAY,
        prefix="yahoo",
        universe="yahoo",
        label="Yahoo bars",
        vendor="Yahoo",
        what="Yahoo 1-minute bars (`universes.yahoo`)",
        # UTC days (every exchange of the universe holds its session inside one); the regular session ends
        # 16:00 New York: loaded at 17:30, due by 20:00
        days=StockDays(
            "UTC", "America/New_York", time(17, 30), time(20), lambda config: config.yahoo_history_start
        ),
        assets={
            "bars_1m": "1-minute bars (Yahoo chart v8, regular session; prices in major units: pence -> "
            "pounds) of the universe per UTC day, in ClickHouse `bars_1m` (venue = Yahoo's exchange code: "
            "NMS, LSE, GER, ...)."
        },
        instruments=lambda config: config.yahoo_instruments,
        normalize=lambda name: instrument_key(name.strip().upper()),
        loads=(
            "Loads each day after New York's close; Yahoo keeps 1-minute bars about "
            "30 days, so a day not loaded within them is gone."
        ),
    ),
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
