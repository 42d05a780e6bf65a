"""Deribit v2 public market data: the client and the pure parsers of its answers."""

from marketdata_assets.lib.ticks.sources.deribit.rest import (
    ERRORS,
    LIMITS,
    DeribitClient,
    is_inverse,
    parse_chart,
    parse_order_book,
    parse_trades,
)

__all__ = ["ERRORS", "LIMITS", "DeribitClient", "is_inverse", "parse_chart", "parse_order_book", "parse_trades"]
