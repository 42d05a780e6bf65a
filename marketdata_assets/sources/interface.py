"""What a crypto venue's client is to the rest of the project: the datasets it serves and how
(HISTORY: the rows of a time window; SNAPSHOT: the venue's state now), and the methods that fetch
them. Venue packages implement it; the registry (sources/venues.py) builds them by name."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Protocol, runtime_checkable

import polars as pl

from marketdata_assets.core.http import RequestStats

HISTORY, SNAPSHOT = "history", "snapshot"


@runtime_checkable
class VenueClient(Protocol):
    """What every crypto venue client offers (Binance spot and USD-M, OKX, Deribit)."""

    name: str  # the venue: BINANCE | BINANCE_UM | OKX | DERIBIT
    stats: RequestStats
    DATASETS: ClassVar[dict[str, str]]  # dataset -> HISTORY | SNAPSHOT

    async def trades(self, instrument: str, start: datetime, end: datetime) -> pl.DataFrame:
        """All trades with start <= ts < end, each once, ordered by (ts, seq)."""

    async def book_snapshot(self, instrument: str, depth: int) -> pl.DataFrame:
        """The current book, `depth` levels a side (level 0 = best)."""

    async def bars_1m(self, instrument: str, start: datetime, end: datetime) -> pl.DataFrame:
        """1-minute bars opening in [start, end)."""

    async def aclose(self) -> None: ...
