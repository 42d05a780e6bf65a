"""The sources of the ticks domain, one package each: everything about a source (its client, the
parsing of its wire formats into the normalized frames, its error table and its limits) lives in
its package, over the shared client of `lib.http`:

- `binance` (spot REST `/api/v3`, and `binance.dumps`: data.binance.vision dump files),
- `okx` (v5 public market data), `deribit` (v2 public JSON-RPC over HTTP),
- `tushare` (Tushare Pro: A-share 1-minute and daily bars), `yahoo` (chart v8 1-minute bars).

The crypto venues answer one interface (`VenueClient`); `venue_client(venue, base_url, **limits)`
builds the client of a venue.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol, runtime_checkable

import polars as pl

from marketdata_assets.lib.http import RequestStats

VENUES = ("BINANCE", "OKX", "DERIBIT")


@runtime_checkable
class VenueClient(Protocol):
    """What every crypto venue client offers (Binance, OKX, Deribit)."""

    name: str  # the venue: BINANCE | OKX | DERIBIT
    stats: RequestStats

    async def trades(self, instrument: str, start: datetime, end: datetime) -> pl.DataFrame:
        """All trades with start <= ts < end, each once, ordered by (ts, seq)."""

    async def book_snapshot(self, instrument: str, depth: int) -> pl.DataFrame:
        """The current book, `depth` levels a side (level 0 = best)."""

    async def bars_1m(self, instrument: str, start: datetime, end: datetime) -> pl.DataFrame:
        """1-minute bars opening in [start, end)."""

    async def aclose(self) -> None: ...


def venue_client(venue: str, base_url: str | None = None, **kwargs) -> VenueClient:
    """The client of `venue` (BINANCE | OKX | DERIBIT); base_url None = the venue's public host;
    kwargs are the limits and retry policy (`lib.http.ApiClient`)."""
    key = venue.upper()
    if key == "BINANCE":
        from marketdata_assets.lib.ticks.sources.binance import BinanceClient as cls
    elif key == "OKX":
        from marketdata_assets.lib.ticks.sources.okx import OkxClient as cls
    elif key == "DERIBIT":
        from marketdata_assets.lib.ticks.sources.deribit import DeribitClient as cls
    else:
        raise ValueError(f"unknown venue {venue!r}; one of {', '.join(VENUES)}")
    return cls(base_url, **kwargs) if base_url else cls(**kwargs)
