"""OKX v5 public market data: the client and the pure parsers of its answers."""

from marketdata_assets.lib.ticks.sources.okx.rest import (
    CONTRACT_VALUES,
    ERRORS,
    LIMITS,
    ContractSizer,
    OkxClient,
    parse_books,
    parse_candles,
    parse_history_trades,
)

__all__ = ["CONTRACT_VALUES", "ERRORS", "LIMITS", "ContractSizer", "OkxClient", "parse_books", "parse_candles",
           "parse_history_trades"]
