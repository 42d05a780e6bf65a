"""The sources of the ticks domain, one package each: everything about a source (its client, the
parsing of its wire formats into the normalized frames, its error table and its limits) lives in
its package, over the shared client of `core.http`:

- `binance` (spot REST `/api/v3`, and `binance.dumps`: data.binance.vision dump files),
- `okx` (v5 public market data), `deribit` (v2 public JSON-RPC over HTTP),
- `tushare` (Tushare Pro: A-share 1-minute and daily bars), `yahoo` (chart v8 1-minute bars).

The crypto venues answer one interface (`VenueClient`); `venue_client(venue, base_url, **limits)`
builds the client of a venue. Each client declares the datasets it serves in `DATASETS` (dataset
-> HISTORY: `async <dataset>(instrument, start, end)`, the rows of [start, end); SNAPSHOT: `async
<dataset>(instrument)`, the venue's state now, added to today's slice) and how far back a history
goes where the venue limits it (`REACH`: dataset -> `Reach`, with where older days come from);
`serves` reads them (`beyond_reach`: the slices a run cannot fetch), and `venue_feed` /
`snapshot_feed` tell the ingest engine how to ask. A new dataset is its table spec
(datasets.frames) and, in each source that has it, one method and one DATASETS entry.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime

import polars as pl

from marketdata_assets.core.contracts import Contract
from marketdata_assets.core.http import SourceDataError
from marketdata_assets.datasets.frames import day_window, spec_for
from marketdata_assets.datasets.instruments import Instrument
from marketdata_assets.datasets.slices import Feed, Job, SliceKey
from marketdata_assets.sources.interface import Reach, VenueClient, fetch
from marketdata_assets.sources.registry import SOURCES

CLIENTS = {s.name: s.client for s in SOURCES.values() if s.venue_api}  # the crypto venues, declared once
VENUES = tuple(CLIENTS)


def client_class(venue: str) -> type:
    """The client class of `venue` (BINANCE | BINANCE_UM | OKX | DERIBIT)."""
    try:
        return CLIENTS[venue.upper()]
    except KeyError:
        raise ValueError(f"unknown venue {venue!r}; one of {', '.join(VENUES)}") from None


def venue_client(venue: str, base_url: str | None = None, instrument_service=None, **kwargs) -> VenueClient:
    """The client of `venue`; base_url None = the venue's public host; kwargs are the limits and
    retry policy (`core.http.ApiClient`); `instrument_service` sizes a venue's contracts where its
    reference data does (`Source.sized`; None: a service of its own), and is not needed by the others."""
    cls = client_class(venue)
    if SOURCES[venue.upper()].sized:
        kwargs["instrument_service"] = instrument_service
    return cls(base_url, **kwargs) if base_url else cls(**kwargs)


def contract_of(
    venue: str, instrument: str, known: Instrument | None = None, quotes: Iterable[str] = ()
) -> Contract:
    """What an instrument of `venue` is: the master's record of it (`known`), else its name read by the
    venue's own declared naming (`Source.contract`: for a name the master never saw); ValueError naming
    venue and instrument for a name of no such shape, or a venue that declares no naming. `quotes`: the
    quote assets the venue lists, for a naming that splits pairs by them (Binance's)."""
    if known is not None:
        return known.contract
    declared = SOURCES.get(venue.upper())
    if declared is None or declared.contract is None:
        raise ValueError(f"{venue}:{instrument}: no contract naming known for venue {venue!r}")
    return declared.contract(instrument, quotes) if quotes else declared.contract(instrument)


def serves(
    venue: str,
    dataset: str,
    instrument: str | None = None,
    day: date | None = None,
    now: datetime | None = None,
) -> str | None:
    """HISTORY or SNAPSHOT if `venue`'s client serves `dataset` (for `instrument`'s contract type:
    funding only for perpetuals, ...; for `day`, if its history reaches back that far: the client's
    `REACH`), else None: such a slice does not exist at this source, it is not a failure."""
    cls = client_class(venue)
    mode = cls.DATASETS.get(dataset)
    contracts = spec_for(dataset).contracts
    naming = SOURCES[venue.upper()].contract  # a venue declaring none: its DATASETS say all
    if mode is None or (
        instrument is not None
        and contracts is not None
        and naming is not None
        and naming(instrument).contract_type not in contracts
    ):
        return None
    reach = reach_of(venue, dataset)
    if day is not None and reach is not None and day_window(day)[0] < (now or datetime.now(UTC)) - reach.span:
        return None
    return mode


def reach_of(venue: str, dataset: str) -> Reach | None:
    """How far back `venue`'s REST API serves `dataset` (None: no limit known)."""
    return getattr(client_class(venue), "REACH", {}).get(dataset)


def beyond_reach(keys, now: datetime | None = None) -> list[SliceKey]:
    """The slices of `keys` (each of a dataset its venue serves as HISTORY) whose day starts before
    their venue's REST history reaches: such a slice cannot be fetched."""
    now = now or datetime.now(UTC)
    return [
        k
        for k in keys
        if (reach := reach_of(k.venue, k.dataset)) is not None and day_window(k.day)[0] < now - reach.span
    ]


def older_from(keys) -> str:
    """Where the older days of these slices come from, per venue and dataset (' / ' between them):
    'BINANCE_UM trades (REST: 48 hours): data.binance.vision archives ... (assets
    binance_archive_trades, ...)'."""
    texts = []
    for venue, dataset in sorted({(k.venue, k.dataset) for k in keys}):
        reach = reach_of(venue, dataset)
        if reach is not None:
            assets = f" (assets {', '.join(reach.assets)})" if reach.assets else ""
            texts.append(f"{venue} {dataset} (REST: {reach.text}): {reach.older_from}{assets}")
    return " / ".join(texts)


# --------------------------------------------------------------------------------------------
# How the engine asks a venue for a dataset (one job per instrument-day, or per snapshot)
# --------------------------------------------------------------------------------------------


async def _fetch_day(api: VenueClient, job) -> pl.DataFrame:
    key = job.keys[0]
    return await fetch(api, key.dataset, key.instrument, *day_window(key.day))


def venue_feed(venue: str, client, keys, *, workers: int, attempts: int) -> Feed:
    """The engine's feed for a venue's HISTORY slices (trades, bars_1m, funding, ...); `client`
    makes the client."""
    return Feed(venue, [Job((key,)) for key in keys], _fetch_day, client, workers=workers, attempts=attempts)


def snapshot_feed(venue: str, client, dataset: str, instruments, *, workers: int, depth: int = 20) -> Feed:
    """One SNAPSHOT of `dataset` per instrument (books: `depth` levels a side), added to today's
    (UTC) slice of each; a snapshot stamped on another day is taken again next run."""
    today = datetime.now(UTC).date()

    async def fetch(api: VenueClient, job) -> pl.DataFrame:
        key = job.keys[0]
        if dataset == "books":
            frame = await api.book_snapshot(key.instrument, depth)
        else:
            frame = await getattr(api, dataset)(key.instrument)
        if frame.height and frame["ts"].min().date() != key.day:
            raise SourceDataError(
                key.instrument,
                key.day,
                f"the snapshot is stamped {frame['ts'].min().isoformat()}, "
                "not on the day it was taken for: taken again next run",
                source=venue,
            )
        return frame

    jobs = [Job((SliceKey(dataset, venue, instrument, today),)) for instrument in instruments]
    return Feed(venue, jobs, fetch, client, workers=workers, attempts=1, append=True, by_day=True)
