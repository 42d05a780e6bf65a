"""The instrument master at work: a venue's listing read and turned into the versions to store (`refresh`),
with a snapshot of its 24 h volumes beside them (universe rules' top N); the process's instrument service
wired to ClickHouse and the venues' clients (`instrument_service`: the stored master loaded, what its users
looked up stored back once), so a day's sizes come from the version valid that day and no instrument is
asked twice; the universes resolved from the master and the volumes (`universe_resolver`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta

from marketdata_assets.core.http import RetryPolicy
from marketdata_assets.datasets.frames import day_window
from marketdata_assets.datasets.instrument_service import InstrumentService
from marketdata_assets.datasets.instruments import CLOSED, VERSIONED, Instrument, Master, Version, changes
from marketdata_assets.datasets.universe import Cut, UniverseRule, resolution
from marketdata_assets.datasets.volumes import Volume, Volumes, needed
from marketdata_assets.sources.binance_vision import listing
from marketdata_assets.sources.config import rest_base
from marketdata_assets.sources.registry import SOURCES
from marketdata_assets.sources.venues import contract_of, venue_client
from marketdata_assets.stores.clickhouse.instruments import (
    ensure_instruments_table,
    read_versions,
    store_versions,
)
from marketdata_assets.stores.clickhouse.volumes import (
    ensure_volumes_table,
    read_volumes,
    snapshot_times,
    store_volumes,
)


class ClickHouseMaster:
    """The master's versions in ClickHouse's `instruments` table (made by either call if missing), through a
    client `connect` opens for each call (a context manager: `Reader`'s, a Dagster resource's), in `database`
    (a function: read at each call, as the connection is)."""

    def __init__(self, connect: Callable[[], AbstractContextManager], database: str | Callable[[], str]):
        self._connect, self._database = connect, database

    @property
    def database(self) -> str:
        return self._database() if callable(self._database) else self._database

    @classmethod
    def of(cls, client, database: str) -> ClickHouseMaster:
        """Through one open client."""
        return cls(lambda: contextlib.nullcontext(client), database)

    def read(self, venues: set[str] | None = None) -> list[Version]:
        with self._connect() as client:
            return stored_versions(client, self.database, venues)

    def write(self, versions: list[Version]) -> int:
        with self._connect() as client:
            return store_versions(client, self.database, versions)


def stored_versions(client, database: str, venues=None) -> list[Version]:
    """The stored versions (of `venues`; None: all), the table made if missing."""
    ensure_instruments_table(client, database)
    return [v for v in read_versions(client, database) if venues is None or v.instrument.venue in venues]


LOOKUP_RETRY = RetryPolicy(max_retries=1, backoff_base_s=0.2, backoff_max_s=1.0)  # a frame waits on it
LOOKUP_TIMEOUT_S = 5.0


def reference_client(venue: str, base: str | None = None) -> Callable:
    """A maker of `venue`'s client at `base` (None: the sources config's REST base, read when it is made):
    the venue's provider of reference data for an instrument service (its limits and error table; one retry
    and a short timeout, since a stream's frame waits on a lookup)."""
    return lambda: venue_client(
        venue, base or rest_base(venue), retry=LOOKUP_RETRY, timeout_s=LOOKUP_TIMEOUT_S
    )


def instrument_service(store, venues=None, bases: dict[str, str | None] | None = None) -> InstrumentService:
    """The process's instrument service: the stored master of `venues` (None: all) loaded from `store` (a
    `ClickHouseMaster`), and each venue whose contracts are sized by its reference data (`Source.sized`)
    asked at its REST base (`bases`: venue -> base; a venue not in it: the sources config's)."""
    sized = [name for name, declared in SOURCES.items() if declared.sized]
    bases = bases or {}
    service = InstrumentService(store, {venue: reference_client(venue, bases.get(venue)) for venue in sized})
    service.load(venues)
    return service


def stored_master(client, database: str, venues=None) -> Master:
    """The stored versions (of `venues`; None: all) as a master: a service's with nothing to ask (a reader of
    the master, e.g. the universe CLI and the checks)."""
    return InstrumentService(ClickHouseMaster.of(client, database)).load(venues)


def stored_volumes(client, database: str, rules: dict[str, UniverseRule], days) -> Volumes:
    """The volume snapshots the top-N rules of `rules` use on `days` (each venue's snapshot times, and the
    rows of those the days use: one read for the whole resolution), the table made if missing."""
    venues = {venue for venue, rule in rules.items() if rule.top is not None}
    if not venues:
        return Volumes()
    ensure_volumes_table(client, database)
    times = snapshot_times(client, database, venues)
    return Volumes(read_volumes(client, database, needed(times, days)), times)


def universe_resolver(
    master: Master,
    rules: dict[str, UniverseRule],
    volumes: Volumes | None = None,
    cuts: dict[tuple[str, date], Cut] | None = None,
    look_ahead: dict[tuple[str, date], list[str]] | None = None,
) -> Callable[[str, date], list[str]]:
    """(venue, day) -> the venue's universe that day by its rule (`rules`: venue -> UniverseRule; a top N
    ranked by `volumes`, each day's cut kept in `cuts` for the caller to say; the instruments in only by
    today's listing standing in for the day kept in `look_ahead`): every instrument the master lists that
    the rule selects, whatever its name's shape (what it is comes from its record); the explicit
    instruments stay on the days they were listed."""

    def universe(venue: str, day: date) -> list[str]:
        rule = rules.get(venue)
        if rule is None:
            return []
        found = resolution(master, rule, day, volumes)
        if found.cut is not None and cuts is not None:
            cuts[(venue, day)] = found.cut
        if found.look_ahead and look_ahead is not None:
            look_ahead[(venue, day)] = found.look_ahead
        return list(found.names)

    return universe


REFRESH_HINT = "refresh the instrument master with the archive site reachable: `marketdata instruments`"


def cut_warnings(
    cuts: dict[tuple[str, date], Cut], look_ahead: dict[tuple[str, date], list[str]] | None = None
) -> list[str]:
    """What a resolution must say of its days: the top-N cuts ranked by a snapshot taken after the day
    (look-ahead) or by none, and the instruments in a day before the master first saw them with no listing
    time known (look-ahead), each venue's in one line."""
    out = []
    for venue in sorted({v for v, _ in cuts}):
        mine = sorted((day, cut) for (v, day), cut in cuts.items() if v == venue)
        flagged = [(day, cut) for day, cut in mine if cut.snapshot is None or cut.snapshot.look_ahead]
        if flagged:
            days = [day for day, _ in flagged]
            out.append(f"{venue} {days[0]}..{days[-1]} ({len(days)} day(s)): {flagged[0][1].text}")
    for venue in sorted({v for v, _ in look_ahead or {}}):
        days = sorted(day for v, day in look_ahead if v == venue)
        names = sorted({name for (v, _), found in look_ahead.items() if v == venue for name in found})
        out.append(
            f"{venue} {days[0]}..{days[-1]} ({len(days)} day(s)): {len(names):,} instrument(s) with no "
            "listing time, in by today's listing before the master first saw them — look-ahead "
            f"({', '.join(names[:5])}{' ...' if len(names) > 5 else ''}); {REFRESH_HINT}"
        )
    return out


@dataclass(frozen=True)
class Refresh:
    """One venue's listing against its stored master."""

    venue: str
    listed: int  # instruments the venue lists now
    versions: list[Version]  # to append: new instruments, changes, endings
    new: list[str]  # never seen before
    changed: dict[str, list[str]]  # instrument -> the fields that changed (contract_value, status, ...)
    ended: dict[str, str]  # instrument -> its ending status (expired, gone, delisted)
    skipped: dict[str, int] = field(default_factory=dict)  # archived symbols not taken, by reason
    volumes: int = 0  # instruments in the 24 h volume snapshot taken with it


def refresh(master: Master, venue: str, listing: list[Instrument], now: datetime | None = None) -> Refresh:
    """What `listing` (the venue's whole master now) adds to the stored one: never overwrites, ends what
    left the listing (expired if its expiry passed, else gone)."""
    now = now or datetime.now(UTC)
    venues = {item.venue for item in listing} | {
        venue
    }  # a source may list several venues (Tushare: SSE, SZSE, BSE)
    current = {key: item for key, item in master.current().items() if key[0] in venues}
    versions = changes(current, listing, now, complete=True)
    new = [v.instrument.instrument for v in versions if v.instrument.key not in current]
    ended = {
        v.instrument.instrument: v.instrument.status
        for v in versions
        if v.instrument.key in current
        and v.instrument.status in CLOSED
        and current[v.instrument.key].status not in CLOSED
    }
    changed = {
        v.instrument.instrument: [f for f in VERSIONED if getattr(before, f) != getattr(v.instrument, f)]
        for v in versions
        if (before := current.get(v.instrument.key)) is not None and v.instrument.instrument not in ended
    }
    return Refresh(venue, len(listing), versions, new, changed, ended)


ARCHIVED = {"BINANCE": "spot", "BINANCE_UM": "um"}  # venues whose daily files the archive site lists
LISTING_WORKERS = 16  # the archive site's listing requests in flight (S3 answers thousands a second)


async def venue_listing(
    make_client: Callable, taken: datetime | None = None
) -> tuple[list[Instrument], list[Volume], str | None]:
    """The venue's whole master now (its client's `listing`) and, with `taken`, every instrument's 24 h volume
    stamped so (its client's `volumes`; none for a venue without them), in one session of the client; the
    error of volumes that could not be read (the listing still counts)."""
    async with make_client() as api:
        listed = await api.listing()
        if taken is None or not hasattr(api, "volumes"):
            return listed, [], None
        try:
            return listed, await api.volumes(taken), None
        except Exception as error:  # noqa: BLE001  (reported; the listing is stored all the same)
            return listed, [], f"{type(error).__name__}: {error}"


async def _each(names: list[str], ask: Callable) -> dict[str, object]:
    """name -> `await ask(name)`, LISTING_WORKERS at a time."""
    gate = asyncio.Semaphore(LISTING_WORKERS)

    async def one(name: str):
        async with gate:
            return name, await ask(name)

    return dict(await asyncio.gather(*(one(name) for name in names)))


def _undated(listed: list[Instrument], known: dict) -> list[str]:
    """The instruments of `listed` whose listing neither the venue nor the stored master gives."""
    return [
        item.instrument
        for item in listed
        if item.listed is None and (known.get(item.key) is None or known[item.key].listed is None)
    ]


async def archive_lives(
    make_archive: Callable, venue: str, listed: list[Instrument], known: dict, today: date, skipped: Counter
) -> tuple[list[Instrument], list[Instrument]]:
    """What the archive site's daily trade files say of `venue`'s instruments: (`listed` with the listing time
    the venue does not give taken from each symbol's first file's day, the symbols only the archive still
    has, as delisted: listed on their first file's day, ended after their last). A symbol with no file yet
    keeps `listed: unknown`; a name the venue's naming cannot read is skipped; both counted in `skipped`."""
    market, names = ARCHIVED[venue], {item.instrument for item in listed}
    quotes = {item.quote for item in (*listed, *known.values()) if item.venue == venue and item.quote}
    async with make_archive() as api:
        firsts = await _each(_undated(listed, known), lambda name: listing.first_day(api, market, name))
        gone = []
        for name in await listing.symbols(api, market):
            before = known.get((venue, name))
            if name in names or (before is not None and before.status in CLOSED):
                continue  # still listed, or its end already known
            try:
                gone.append((name, contract_of(venue, name, quotes=quotes)))
            except ValueError:  # no quote asset the venue lists ends it
                skipped["unreadable_name"] += 1
        lives = await _each(
            [name for name, _ in gone], lambda name: listing.first_and_last_day(api, market, name, today)
        )
    skipped["listed_unknown"] += sum(day is None for day in firsts.values())
    dated = [
        item._replace(listed=day_window(firsts[item.instrument])[0]) if firsts.get(item.instrument) else item
        for item in listed
    ]
    delisted = []
    for name, named in gone:
        if lives[name] is None:
            skipped["no_daily_files"] += 1
            continue
        first, last = (day_window(day)[0] for day in lives[name])
        delisted.append(
            Instrument(
                venue,
                name,
                named.contract_type,
                named.base,
                named.quote,
                named.quote,
                False,
                1.0,
                1.0,
                named.base,
                None,
                None,
                None,
                first,
                last + timedelta(days=1),
                "delisted",
            )
        )
    return dated, delisted


def refresh_venues(
    client,
    database: str,
    makers: dict[str, Callable],
    now: datetime | None = None,
    archive: Callable | None = None,
) -> tuple[list[Refresh], dict[str, str]]:
    """Each venue's listing read and its versions stored, with a snapshot of its 24 h volumes stamped `now`
    (with `archive`, a client maker of the archive site: the Binance listing times exchangeInfo lacks and
    the symbols only the archive still has, as delisted). Each source counts on its own: (the refreshes,
    venue -> what failed of it and its effect; what did not fail is stored)."""
    now = now or datetime.now(UTC)
    venues = {venue for name in makers for venue in (SOURCES[name].venues if name in SOURCES else (name,))}
    master = stored_master(client, database, venues)  # TUSHARE's: SSE, SZSE, BSE
    ensure_volumes_table(client, database)
    done, failed = [], {}
    for venue, make in sorted(makers.items()):
        skipped: Counter = Counter()
        try:
            venue_now, volumes, volumes_failed = asyncio.run(venue_listing(make, now))
        except Exception as error:  # noqa: BLE001  (one venue's failure is reported, the others go on)
            failed[venue] = f"its listing: {type(error).__name__}: {error} (nothing of {venue} stored)"
            continue
        problems = [f"its 24 h volumes: {volumes_failed} (its versions are stored)"] if volumes_failed else []
        if archive is not None and venue in ARCHIVED:
            known = master.current(venue)
            try:
                venue_now, delisted = asyncio.run(
                    archive_lives(archive, venue, venue_now, known, now.date(), skipped)
                )
                venue_now += delisted
            except Exception as error:  # noqa: BLE001  (the venue's own listing is stored all the same)
                unknown = len(_undated(venue_now, known))
                problems.append(
                    f"the archive site's listing: {type(error).__name__}: {error} ({len(venue_now):,} listed "
                    f"instruments stored, {unknown:,} of them with no listing time (listed: unknown); "
                    "delisted symbols not added)"
                )
        result = replace(refresh(master, venue, venue_now, now), skipped=dict(skipped), volumes=len(volumes))
        store_versions(client, database, result.versions)
        store_volumes(client, database, volumes)
        done.append(result)
        if problems:
            failed[venue] = "; ".join(problems)
    return done, failed


__all__ = [
    "ClickHouseMaster",
    "Refresh",
    "archive_lives",
    "cut_warnings",
    "instrument_service",
    "reference_client",
    "refresh",
    "refresh_venues",
    "stored_master",
    "stored_versions",
    "stored_volumes",
    "universe_resolver",
    "venue_listing",
]
