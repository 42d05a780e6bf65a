"""Tushare Pro: A-share 1-minute bars (`stk_mins`) and daily bars (`daily`), and the listing
(`stock_basic`, kept per Beijing day): the client, the error table and the pure parsers of its answers."""

from datetime import time

from marketdata_assets.core.naming import A_SHARE_VENUES, a_share_code, a_share_venue
from marketdata_assets.sources.interface import HISTORY, Option, Source, StockDays, StockFeed
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
from marketdata_assets.sources.tushare.listing import STATUSES as LISTING_STATUSES
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
    statuses=LISTING_STATUSES,
    feed=StockFeed(
        feeds.feeds,
        feeds.session_bar_opens,
        feeds.BLOCK_DAYS,
        feeds.BARS_A_DAY,
        listing=listed_today,
        credential_error=TushareTokenError,
        prefix="a_share",
        universe="a_shares",
        label="A-share bars",
        vendor="Tushare",
        what="A-share bars from Tushare (`universes.a_shares`; needs TUSHARE_TOKEN)",
        # the session ends 15:00 Beijing: loaded at 15:30, due by 18:00
        days=StockDays(
            "Asia/Shanghai",
            "Asia/Shanghai",
            time(15, 30),
            time(18),
            lambda config: config.a_share_history_start,
        ),
        assets={
            "bars_1m": "A-share 1-minute bars (Tushare stk_mins; 241 a day, ts = bar open in UTC) of the "
            "whole universe per China trading day, in ClickHouse `bars_1m` (venues SSE, SZSE, BSE).",
            "daily_bars": "A-share daily bars (Tushare daily: volume in shares, amount in yuan, pre_close) "
            "per China trading day, in ClickHouse `daily_bars` (read: daily_bars_v, daily_bars_range).",
        },
        instruments=lambda config: config.a_shares,
        normalize=a_share_code,
        slice_venue=a_share_venue,
        rules=lambda config: config.a_share_rules(),
        loads="Loads each China trading day after its close.",
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
