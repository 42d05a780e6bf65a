"""Deribit v2 public market data: the client and the pure parsers of its answers."""

from marketdata_assets.sources.deribit.rest import (
    CONTRACT_SIZES,
    ERRORS,
    LIMITS,
    DeribitClient,
    chain_currency,
    contract_size,
    is_inverse,
    liquidations_of,
    parse_chart,
    parse_funding,
    parse_liquidations,
    parse_open_interest,
    parse_option_chain,
    parse_order_book,
    parse_ticker,
    parse_trade_page,
    parse_trades,
)
from marketdata_assets.sources.deribit.stream import DeribitStream
from marketdata_assets.sources.interface import venue_source

DERIBIT = venue_source("DERIBIT", DeribitClient, "deribit", stream=DeribitStream)

__all__ = ["DERIBIT", "CONTRACT_SIZES", "ERRORS", "LIMITS", "DeribitClient", "chain_currency", "contract_size",
           "is_inverse", "liquidations_of", "parse_chart", "parse_funding", "parse_liquidations",
           "parse_open_interest", "parse_option_chain", "parse_order_book", "parse_ticker",
           "parse_trade_page", "parse_trades"]
