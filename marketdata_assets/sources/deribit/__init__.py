"""Deribit v2 public market data: the venue's declaration and its client (the parsers: `rest`)."""

from marketdata_assets.sources.deribit.client import ERRORS, LIMITS, DeribitClient
from marketdata_assets.sources.deribit.naming import contract
from marketdata_assets.sources.deribit.stream import DeribitStream
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

__all__ = ["DERIBIT", "ERRORS", "LIMITS", "DeribitClient"]
