"""OKX v5 public market data."""

from marketdata_assets.lib.ticks.sources.okx.rest import *  # noqa: F403
from marketdata_assets.lib.ticks.sources.okx.rest import OkxClient  # noqa: F401
