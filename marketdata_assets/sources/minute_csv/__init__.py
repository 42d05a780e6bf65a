"""Minute-bar CSV files dropped by vendors: the reader and the vendor profiles (columns, encodings, code
formats)."""

from marketdata_assets.core.naming import A_SHARE_VENUES
from marketdata_assets.sources.interface import FILES, Source

# A-share minute-bar CSV files dropped by vendors into the landing directory
MINUTE_CSV = Source("MINUTE_CSV", A_SHARE_VENUES, {"stock_1min_qfq": FILES})
