"""Binance: spot REST market data (`rest`) and data.binance.vision dump files (`dumps`)."""

from marketdata_assets.lib.ticks.sources.binance.rest import *
from marketdata_assets.lib.ticks.sources.binance.rest import BinanceClient  # noqa: F401
