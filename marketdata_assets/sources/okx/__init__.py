"""OKX v5 public market data: the venue's declaration and its client (the parsers: `rest`)."""

from marketdata_assets.sources.interface import IdSequence, venue_source
from marketdata_assets.sources.okx.client import ERRORS, LIMITS, OkxClient
from marketdata_assets.sources.okx.naming import contract
from marketdata_assets.sources.okx.reference import STATES
from marketdata_assets.sources.okx.stream import OkxStream

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

__all__ = ["ERRORS", "LIMITS", "OKX", "OkxClient"]
