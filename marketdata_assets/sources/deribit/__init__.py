"""Deribit v2 public market data: the client and the pure parsers of its answers."""

from marketdata_assets.sources.deribit.client import ERRORS, LIMITS, DeribitClient
from marketdata_assets.sources.deribit.naming import chain_currency, contract, is_inverse
from marketdata_assets.sources.deribit.rest import (
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
from marketdata_assets.sources.deribit.units import size_of
from marketdata_assets.sources.interface import IdSequence, venue_source

DERIBIT = venue_source(
    "DERIBIT",
    DeribitClient,
    "deribit",
    stream=DeribitStream,
    id_sequences=(
        IdSequence(
            "trade_seq",
            "DERIBIT",
            ("DERIBIT", DeribitStream.live_source),
            "trades_by_seq",
            1000,
            False,
            "Deribit trade_seq",
        ),
    ),
    contract=contract,
    sized=True,
)

__all__ = [
    "DERIBIT",
    "ERRORS",
    "LIMITS",
    "DeribitClient",
    "chain_currency",
    "is_inverse",
    "liquidations_of",
    "parse_chart",
    "parse_funding",
    "parse_liquidations",
    "parse_open_interest",
    "parse_option_chain",
    "parse_order_book",
    "parse_ticker",
    "parse_trade_page",
    "parse_trades",
    "size_of",
]
