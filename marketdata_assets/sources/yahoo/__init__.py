"""Yahoo Finance chart v8: 1-minute bars (`chart`)."""

from datetime import timedelta

from marketdata_assets.sources.interface import HISTORY, Option, Source
from marketdata_assets.sources.yahoo.chart import (
    ERRORS,
    LIMITS,
    PROVIDER,
    ChartData,
    YahooChartClient,
    YahooInstrumentNotFound,
    YahooRequestError,
    denoise_float32,
    normalize_currency,
    parse_chart,
)
from marketdata_assets.sources.yahoo.feeds import SOURCE

# venues: the exchange each answer names (any Yahoo lists); 1-minute bars reach about 30 days back
YAHOO = Source(SOURCE, (), {"bars_1m": HISTORY}, YahooChartClient, "yahoo", {"bars_1m": timedelta(days=30)},
               options={"max_days_back": Option(30, nullable=True, description=(
                   "How many days back the chart API serves 1-minute bars; older days are not asked for. "
                   "null: no horizon (e.g. a replay)."))})

__all__ = ["YAHOO", "ERRORS", "LIMITS", "PROVIDER", "ChartData", "YahooChartClient", "YahooInstrumentNotFound",
           "YahooRequestError", "denoise_float32", "normalize_currency", "parse_chart"]
