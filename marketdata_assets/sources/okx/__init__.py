"""OKX v5 public market data: the client and the pure parsers of its answers."""

from marketdata_assets.sources.interface import IdSequence, venue_source
from marketdata_assets.sources.okx.client import ERRORS, LIMITS, OkxClient
from marketdata_assets.sources.okx.naming import contract, underlying
from marketdata_assets.sources.okx.reference import STATES
from marketdata_assets.sources.okx.rest import (
    funding_frame,
    parse_books,
    parse_candles,
    parse_funding_history,
    parse_history_trades,
    parse_liquidations,
    parse_open_interest_history,
    parse_price_candles,
    parse_ticker,
)
from marketdata_assets.sources.okx.stream import OkxStream
from marketdata_assets.sources.okx.units import ContractSizer

OKX = venue_source(
    "OKX",
    OkxClient,
    "okx",
    stream=OkxStream,
    id_sequences=(
        IdSequence(
            "tradeId", "OKX", ("OKX", OkxStream.live_source), "trades_by_id", 100, False, "OKX tradeId"
        ),
    ),
    contract=contract,
    statuses=STATES,
    sized=True,
)

__all__ = [
    "ERRORS",
    "LIMITS",
    "OKX",
    "ContractSizer",
    "OkxClient",
    "funding_frame",
    "parse_books",
    "parse_candles",
    "parse_funding_history",
    "parse_history_trades",
    "parse_liquidations",
    "parse_open_interest_history",
    "parse_price_candles",
    "parse_ticker",
    "underlying",
]
