"""Binance, the venue: spot REST market data (client `client`, parsers `rest`), USD-M futures REST
(`futures_client`, `futures`, venue BINANCE_UM), their wire records (`records`), what a symbol means
(`instruments`) and their WebSocket streams (`stream`, `futures_stream`). The data.binance.vision files
(dumps and archives) are a source of their own: sources/binance_vision."""

from marketdata_assets.sources.binance.client import ERRORS, LIMITS, BinanceClient, ban_until, depth_weight
from marketdata_assets.sources.binance.futures_client import BinanceFuturesClient
from marketdata_assets.sources.binance.futures_stream import BinanceUsdmStream
from marketdata_assets.sources.binance.naming import contract
from marketdata_assets.sources.binance.reference import STATUSES
from marketdata_assets.sources.binance.rest import (
    parse_agg_trades,
    parse_depth,
    parse_klines,
    parse_ticker_24hr,
    parse_trades,
)
from marketdata_assets.sources.binance.stream import BinanceSpotStream
from marketdata_assets.sources.interface import IdSequence, Option, venue_source


def _weights(per_minute: int) -> dict[str, Option]:
    """Binance's request weight per IP and minute, and the share of it a run may use before it waits
    for the next minute."""
    return {
        "weight_per_minute": Option(
            per_minute,
            "integer",
            minimum=1,
            description=(
                "Request weight per IP and minute (X-MBX-USED-WEIGHT-1M), gated across the run's requests."
            ),
        ),
        "weight_headroom": Option(
            0.9,
            maximum=1.0,
            description=(
                "Share of the minute's weight a run uses; past it, requests wait for the next minute."
            ),
        ),
    }


# the individual trade ids of the live trade streams, historicalTrades and the data.binance.vision files
# (sources/binance_vision declares its own sources' share of the same sequence)
TRADE_IDS = (
    "Binance trade ids (dump files, archives and the live trade streams: every individual trade; "
    "historicalTrades)"
)
SPOT = venue_source(
    "BINANCE",
    BinanceClient,
    "binance",
    _weights(6000),
    BinanceSpotStream,
    (
        IdSequence(
            "aggTrade",
            "BINANCE",
            ("BINANCE",),
            "agg_trades_by_id",
            1000,
            True,
            "Binance aggregate trade ids (aggTrades `a`: the REST path)",
        ),
        IdSequence(
            "trade", "BINANCE", (BinanceSpotStream.live_source,), "trades_by_id", 1000, True, TRADE_IDS
        ),
        IdSequence(
            "aggTrade",
            "BINANCE",
            (BinanceSpotStream.live_source,),
            "agg_trades_by_id",
            1000,
            True,
            (
                "Binance aggregate trade ids (the live aggTrade stream `a`, opt-in; the archives' "
                "agg_trades ids)"
            ),
            dataset="agg_trades",
        ),
    ),
    contract=lambda instrument, quotes=(): contract("BINANCE", instrument, quotes),
    statuses=STATUSES,
    collect_by_default=True,
    url_options=("ws_url", "rest_url"),  # the first live venue's, unprefixed (kept for their users)
)
USD_M = venue_source(
    "BINANCE_UM",
    BinanceFuturesClient,
    "binance_um",
    _weights(2400),
    BinanceUsdmStream,
    (
        IdSequence(
            "aggTrade",
            "BINANCE_UM",
            ("BINANCE_UM", BinanceUsdmStream.live_source),
            "agg_trades_by_id",
            1000,
            True,
            "Binance USD-M aggregate trade ids (aggTrades `a`: REST and the live aggTrade stream)",
        ),
    ),
    contract=lambda instrument, quotes=(): contract("BINANCE_UM", instrument, quotes),
    statuses=STATUSES,
)

__all__ = [
    "ERRORS",
    "LIMITS",
    "SPOT",
    "TRADE_IDS",
    "USD_M",
    "BinanceClient",
    "BinanceFuturesClient",
    "BinanceSpotStream",
    "BinanceUsdmStream",
    "ban_until",
    "contract",
    "depth_weight",
    "parse_agg_trades",
    "parse_depth",
    "parse_klines",
    "parse_ticker_24hr",
    "parse_trades",
]
