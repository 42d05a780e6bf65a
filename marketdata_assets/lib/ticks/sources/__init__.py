"""The sources of the ticks domain, one package each: everything about a source (its client, the
parsing of its wire formats into the normalized frames, its error table and its limits) lives in
its package, over the shared client of `lib.http`:

- `binance` (spot REST `/api/v3`, and `binance.dumps`: data.binance.vision dump files),
- `okx` (v5 public market data), `deribit` (v2 public JSON-RPC over HTTP),
- `tushare` (Tushare Pro: A-share 1-minute and daily bars), `yahoo` (chart v8 1-minute bars).

The crypto venues answer one interface (`VenueClient`); `venue_client(venue, base_url, **limits)`
builds the client of a venue, `venue_feed` / `book_feed` tell the ingest engine how to ask it.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Protocol, runtime_checkable

import polars as pl

from marketdata_assets.lib.http import RequestStats, SourceDataError
from marketdata_assets.lib.ticks.engine import Feed, Job, SliceKey
from marketdata_assets.lib.ticks.frames import day_window

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


# --------------------------------------------------------------------------------------------
# How the engine asks a venue for a dataset (one job per instrument-day)
# --------------------------------------------------------------------------------------------

VENUE_DATASETS = ("trades", "bars_1m")


async def _fetch_day(api: VenueClient, job) -> pl.DataFrame:
    key = job.keys[0]
    start, end = day_window(key.day)
    method = {"trades": api.trades, "bars_1m": api.bars_1m}[key.dataset]
    return await method(key.instrument, start, end)


def venue_feed(venue: str, client, keys, *, workers: int, attempts: int) -> Feed:
    """The engine's feed for a venue's trades / 1-minute bars slices; `client` makes the client."""
    return Feed(venue, [Job((key,)) for key in keys], _fetch_day, client, workers=workers, attempts=attempts)


def book_feed(venue: str, client, instruments, *, depth: int, workers: int) -> Feed:
    """One order-book snapshot per instrument, added to today's (UTC) slice of each."""
    today = datetime.now(timezone.utc).date()

    async def fetch(api: VenueClient, job) -> pl.DataFrame:
        key = job.keys[0]
        frame = await api.book_snapshot(key.instrument, depth)
        if frame.height and frame["ts"][0].date() != key.day:
            raise SourceDataError(key.instrument, key.day, f"the snapshot is stamped {frame['ts'][0].isoformat()}, "
                                  "after the day it was taken for: taken again next run", source=venue)
        return frame

    jobs = [Job((SliceKey("books", venue, instrument, today),)) for instrument in instruments]
    return Feed(venue, jobs, fetch, client, workers=workers, attempts=1, append=True, by_day=True)
