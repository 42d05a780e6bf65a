"""The instrument master at work: a venue's listing read and turned into the versions to store (`refresh`),
and a run's clients sized by the stored master (`sized_by`), what they had to look up stored back
(`keep_learned`), so a day's sizes come from the version valid that day and no instrument is asked twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

from marketdata_assets.datasets.instruments import CLOSED, Instrument, Master, Version, changes
from marketdata_assets.stores.clickhouse.instruments import (
    ensure_instruments_table,
    read_versions,
    store_versions,
)


def stored_master(client, database: str, venues=None) -> Master:
    """The stored versions (of `venues`; None: all) as a master (the table made if missing)."""
    ensure_instruments_table(client, database)
    versions = read_versions(client, database)
    return Master([v for v in versions if venues is None or v.instrument.venue in venues])


def sized_by(make_client: Callable, master: Master) -> Callable:
    """`make_client` whose clients size contracts by `master` (a client with no contract sizes: as it is)."""
    def make():
        api = make_client()
        if hasattr(api, "master"):
            api.master = master
        return api
    return make


def keep_learned(client, database: str, master: Master) -> int:
    """Store what the clients looked up during the run (once); returns the versions stored."""
    learned, master.added[:] = list(master.added), []
    return store_versions(client, database, learned) if learned else 0


@dataclass(frozen=True)
class Refresh:
    """One venue's listing against its stored master."""

    venue: str
    listed: int                # instruments the venue lists now
    versions: list[Version]    # to append: new instruments, changes, endings
    new: list[str]             # never seen before
    changed: dict[str, list[str]]  # instrument -> the fields that changed (contract_value, status, ...)
    ended: dict[str, str]      # instrument -> its ending status (expired, gone)


def refresh(master: Master, venue: str, listing: list[Instrument], now: datetime | None = None) -> Refresh:
    """What `listing` (the venue's whole master now) adds to the stored one: never overwrites, ends what
    left the listing (expired if its expiry passed, else gone)."""
    now = now or datetime.now(timezone.utc)
    current = master.current(venue)
    versions = changes(current, listing, now, complete=True)
    new = [v.instrument.instrument for v in versions if v.instrument.key not in current]
    ended = {v.instrument.instrument: v.instrument.status for v in versions
             if v.instrument.key in current and v.instrument.status in CLOSED
             and current[v.instrument.key].status not in CLOSED}
    changed = {}
    for v in versions:
        before = current.get(v.instrument.key)
        if before is not None and v.instrument.instrument not in ended:
            changed[v.instrument.instrument] = [f for f in ("contract_value", "contract_multiplier", "tick_size",
                                                            "lot_size", "min_size", "status", "expires")
                                                if getattr(before, f) != getattr(v.instrument, f)]
    return Refresh(venue, len(listing), versions, new, changed, ended)


__all__ = ["Refresh", "keep_learned", "refresh", "sized_by", "stored_master"]


async def venue_listing(make_client: Callable) -> list[Instrument]:
    """The venue's whole master now (its client's `listing`)."""
    async with make_client() as api:
        return await api.listing()


def refresh_venues(client, database: str, makers: dict[str, Callable], now: datetime | None = None
                   ) -> tuple[list[Refresh], dict[str, str]]:
    """Each venue's listing read and its versions stored: (the refreshes, venue -> the error of a venue
    whose listing could not be read; the others are stored)."""
    now = now or datetime.now(timezone.utc)
    master = stored_master(client, database, set(makers))
    done, failed = [], {}
    for venue, make in sorted(makers.items()):
        try:
            listing = asyncio.run(venue_listing(make))
        except Exception as error:  # noqa: BLE001  (one venue's failure is reported, the others go on)
            failed[venue] = f"{type(error).__name__}: {error}"
            continue
        result = refresh(master, venue, listing, now)
        store_versions(client, database, result.versions)
        done.append(result)
    return done, failed
