"""Yahoo Finance chart v8: 1-minute bars (`chart`)."""

from marketdata_assets.sources.yahoo.chart import (
    ERRORS,
    LIMITS,
    PROVIDER,
    ChartData,
    YahooChartClient,
    YahooRequestError,
    YahooSymbolNotFound,
    denoise_float32,
    normalize_currency,
    parse_chart,
)

__all__ = ["ERRORS", "LIMITS", "PROVIDER", "ChartData", "YahooChartClient", "YahooRequestError", "YahooSymbolNotFound",
           "denoise_float32", "normalize_currency", "parse_chart"]
