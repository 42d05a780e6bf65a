"""Tushare Pro: A-share 1-minute bars (`stk_mins`) and daily bars (`daily`), and the listing
(`stock_basic`, kept per Beijing day): the client, the error table and the pure parsers of its answers."""

from marketdata_assets.core.naming import A_SHARE_VENUES
from marketdata_assets.sources.interface import HISTORY, Option, Source, StockFeed
from marketdata_assets.sources.tushare import feeds
from marketdata_assets.sources.tushare.client import (
    DEFAULT_BASE_URL,
    LEGACY_BASE_URL,
    LIMITS,
    TushareClient,
    token_from_env,
)
from marketdata_assets.sources.tushare.errors import (
    ERRORS,
    PROVIDER,
    TushareLimitReached,
    TusharePermissionError,
    TushareResponseError,
    TushareTokenError,
    error_fields,
)
from marketdata_assets.sources.tushare.feeds import SOURCE
from marketdata_assets.sources.tushare.listing import (
    ListedInstrument,
    Listing,
    listed_today,
    parse_stock_basic,
)
from marketdata_assets.sources.tushare.parse import (
    normalize_ts_code,
    parse_daily,
    parse_stk_mins,
    response_table,
    venue_of,
)
from marketdata_assets.sources.tushare.records import DAILY_FIELDS, STK_MINS_FIELDS, Table

TUSHARE = Source(
    SOURCE,
    A_SHARE_VENUES,
    {"bars_1m": HISTORY, "daily_bars": HISTORY},
    TushareClient,
    "tushare",
    feed=StockFeed(
        feeds.feeds,
        feeds.session_bar_opens,
        feeds.BLOCK_DAYS,
        feeds.BARS_A_DAY,
        listing=listed_today,
        credential_error=TushareTokenError,
    ),
    options={
        "token_env": Option(
            "TUSHARE_TOKEN",
            "text",
            description=("The NAME of the variable holding the token (never the token itself)."),
        ),
        "limit_window_s": Option(
            60,
            description=(
                "A per-minute limit answer (40203) pauses every request until the next window "
                "of this many seconds."
            ),
        ),
    },
)

__all__ = [
    "DAILY_FIELDS",
    "DEFAULT_BASE_URL",
    "ERRORS",
    "LEGACY_BASE_URL",
    "LIMITS",
    "PROVIDER",
    "STK_MINS_FIELDS",
    "TUSHARE",
    "ListedInstrument",
    "Listing",
    "Table",
    "TushareClient",
    "TushareLimitReached",
    "TusharePermissionError",
    "TushareResponseError",
    "TushareTokenError",
    "error_fields",
    "listed_today",
    "normalize_ts_code",
    "parse_daily",
    "parse_stk_mins",
    "parse_stock_basic",
    "response_table",
    "token_from_env",
    "venue_of",
]
