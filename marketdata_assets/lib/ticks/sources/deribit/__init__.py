"""Deribit v2 public market data."""

from marketdata_assets.lib.ticks.sources.deribit.rest import *  # noqa: F403
from marketdata_assets.lib.ticks.sources.deribit.rest import DeribitClient  # noqa: F401
