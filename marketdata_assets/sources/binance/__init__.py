"""Binance: spot REST market data (`rest`), USD-M futures REST (`futures`, venue BINANCE_UM) and
data.binance.vision dump files (`dumps`)."""

from marketdata_assets.sources.binance.futures import BinanceFuturesClient  # noqa: F401
from marketdata_assets.sources.binance.rest import *
from marketdata_assets.sources.binance.rest import BinanceClient  # noqa: F401
