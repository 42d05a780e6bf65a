"""The instrument master: what each venue says an instrument is (its reference data, one normalized
`Instrument` per venue listing), kept point in time as versions that are never overwritten.

A venue package reads its reference endpoint into `Instrument`s; `changes` turns a fresh listing into
the versions to append (a new contract value, status or tick size is a new version from the time it
was seen; an instrument that left the listing gets a closing version); `Master` answers "what was
this instrument on that day" and "what was listed that day" from the stored versions, and asks the
venue (one rate-limited lookup) for an instrument it has never seen. docs/instruments.md has the model.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, date, datetime
from operator import mul, truediv
from typing import NamedTuple

import polars as pl

from marketdata_assets.core.contracts import Contract
from marketdata_assets.datasets.frames import UTC_US, day_window

TYPES = ("spot", "perpetual", "future", "option", "equity")
TRADING = ("live", "trading")  # statuses of an instrument that trades
STATUSES = ("live", "suspended", "preopen", "test", "delisted", "expired", "gone")  # the master's words
CLOSED = ("delisted", "expired", "gone")  # statuses after its end (gone: it left the listing unannounced)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Instrument(NamedTuple):
    """One instrument as its venue's reference data describes it, in the master's units."""

    venue: str  # BINANCE | BINANCE_UM | OKX | DERIBIT | SSE | SZSE | BSE
    instrument: str  # the venue's own name (symbol, instId, instrument_name, ts_code)
    type: str  # spot | perpetual | future | option | equity (a share)
    base: str  # base currency (an option: its underlying's base)
    quote: str  # quote currency (prices are quote per base)
    settle: str  # settlement currency (spot: the quote)
    inverse: bool  # sizes counted in `contract_unit` = the quote (USD), settled in the base
    contract_value: float  # what one contract is worth, in `contract_unit` (spot: 1 base)
    contract_multiplier: float  # OKX ctMult, else 1: a contract is contract_value x contract_multiplier
    contract_unit: str  # the currency contract_value counts (OKX ctValCcy; Deribit: USD or the coin)
    tick_size: float | None  # price increment
    lot_size: float | None  # size increment, in the venue's size unit (contracts for OKX derivatives)
    min_size: float | None  # the smallest order, in the same unit
    listed: datetime | None  # listing time (None: the venue does not say)
    expires: datetime | None  # expiry (futures, options) or delisting time; None: open-ended
    status: str  # live | suspended | preopen | delisted | expired | gone | ...
    strike: float | None = None  # options
    option_type: str | None = None  # call | put
    underlying: str | None = None  # the index or family it derives from (OKX uly, Deribit price_index)

    @property
    def key(self) -> tuple[str, str]:
        return self.venue, self.instrument

    @property
    def contract(self) -> Contract:
        """What it is, from this record: type, base, quote, expiry, strike, option type, inverse."""
        return Contract(
            self.venue,
            self.instrument,
            self.type,  # type: ignore[arg-type]  (an equity has no contract shape: never asked of one)
            self.base,
            self.quote,
            self.expires.date() if self.expires is not None and self.type in ("future", "option") else None,
            self.strike,
            {"call": "C", "put": "P"}.get(self.option_type or ""),  # type: ignore[arg-type]
            self.inverse,
        )

    @property
    def size(self) -> float:
        """What one contract is worth, in `contract_unit`: contract_value x contract_multiplier."""
        return self.contract_value * self.contract_multiplier

    def base_and_quote(self, price: float, size: float) -> tuple[float, float]:
        """A size in the venue's unit (contracts for a contract, base units for spot) at `price` as
        (base quantity, quote amount): `sized` of one."""
        (base,), (quote,) = self.sized([price], [size])
        return base, quote

    def sized(self, prices: list[float], sizes: list[float]) -> tuple[list[float], list[float]]:
        """Sizes in the venue's unit at `prices`, as columns: (quantities in base units, amounts in quote
        units). The one sizing of a contract: x contract_value x contract_multiplier, in `contract_unit`
        (inverse: the quote, so the base is / price)."""
        if self.type == "spot":
            return sizes, list(map(mul, prices, sizes))
        value = self.size
        contracts = [size * value for size in sizes]  # quote units (inverse) or base units (linear)
        if self.inverse:
            return list(map(truediv, contracts, prices)), contracts
        return contracts, list(map(mul, prices, contracts))


# The fields whose change makes a new version (the rest: names and times the venue may restate).
VERSIONED = (
    "type",
    "settle",
    "inverse",
    "contract_value",
    "contract_multiplier",
    "contract_unit",
    "tick_size",
    "lot_size",
    "min_size",
    "listed",
    "expires",
    "status",
    "strike",
    "option_type",
    "underlying",
)

# The stored master: a row per version; `valid_from` when it starts to hold, `seen` when we learned it.
SCHEMA: dict[str, pl.DataType] = {
    "valid_from": UTC_US,
    "seen": UTC_US,
    "venue": pl.Utf8,
    "instrument": pl.Utf8,
    "type": pl.Utf8,
    "base": pl.Utf8,
    "quote": pl.Utf8,
    "settle": pl.Utf8,
    "inverse": pl.Boolean,
    "contract_value": pl.Float64,
    "contract_multiplier": pl.Float64,
    "contract_unit": pl.Utf8,
    "tick_size": pl.Float64,
    "lot_size": pl.Float64,
    "min_size": pl.Float64,
    "listed": UTC_US,
    "expires": UTC_US,
    "status": pl.Utf8,
    "strike": pl.Float64,
    "option_type": pl.Utf8,
    "underlying": pl.Utf8,
}


class LookupFailed(RuntimeError):
    """The venue's reference endpoint could not be asked (not: it does not know the instrument)."""


class Version(NamedTuple):
    valid_from: datetime  # when this description starts to hold
    seen: datetime  # when the master learned it
    instrument: Instrument


def changes(
    current: dict[tuple[str, str], Instrument],
    listing: Iterable[Instrument],
    now: datetime,
    complete: bool = True,
) -> list[Version]:
    """The versions to append when the venue lists `listing` at `now`, given each instrument's current
    version: a new instrument from its listing time (or `now` if unknown; a first sight describes its
    past too), a changed one from `now`. With `complete` (the listing is the venue's whole master), an
    instrument missing from it ends: expired if its expiry passed, else gone (the checks flag it)."""
    out: list[Version] = []
    listed: set[tuple[str, str]] = set()
    for item in listing:
        listed.add(item.key)
        before = current.get(item.key)
        if before is not None and item.listed is None:
            item = item._replace(listed=before.listed)  # a listing time learned before stays known
        if before is None:
            out.append(Version(min(item.listed or EPOCH, now) if item.listed else EPOCH, now, item))
        elif (fields := [n for n in VERSIONED if getattr(before, n) != getattr(item, n)]) == ["listed"]:
            # only its listing time learned (or restated): a version from the listing, the same description
            out.append(Version(min(item.listed or now, now), now, item))
        elif fields:
            out.append(Version(now, now, item))
    if complete:
        venues = {key[0] for key in listed}
        for key, before in current.items():
            if key in listed or key[0] not in venues or before.status in CLOSED:
                continue
            expired = before.expires is not None and before.expires <= now
            ended = before._replace(
                status="expired" if expired else "gone", expires=before.expires if expired else now
            )
            out.append(Version(before.expires if expired else now, now, ended))
    return out


def frame(versions: Iterable[Version]) -> pl.DataFrame:
    """Versions as the stored master's rows (`SCHEMA`)."""
    rows = [{"valid_from": v.valid_from, "seen": v.seen, **v.instrument._asdict()} for v in versions]
    return pl.DataFrame(rows, schema=SCHEMA, orient="row") if rows else pl.DataFrame(schema=SCHEMA)


def from_frame(rows: pl.DataFrame) -> list[Version]:
    """The stored master's rows back as versions."""
    fields = Instrument._fields
    return [
        Version(row["valid_from"], row["seen"], Instrument(**{name: row[name] for name in fields}))
        for row in rows.iter_rows(named=True)
    ]


class Master:
    """The point-in-time master of some venues, in memory: every version of every instrument, ordered.

    `at(venue, instrument, when)` is the version valid at `when` (before the first: the first, so a day
    before our first sight is sized as first seen); an instrument never seen is asked of `lookup`
    (venue, instrument -> its Instruments, or [] if the venue does not know it) once, at most one lookup
    every `min_interval_s` per venue; what the venue does not know is remembered as unknown.
    """

    def __init__(
        self,
        versions: Iterable[Version] = (),
        lookup: Callable[[str, str], list[Instrument]] | None = None,
        min_interval_s: float = 0.2,
        clock: Callable[[], datetime] | None = None,
        retry_s: float = 60.0,
    ):
        self._versions: dict[tuple[str, str], list[Version]] = {}
        self._lookups: dict[str | None, Callable] = (
            {None: lookup} if lookup is not None else {}
        )  # venue -> lookup
        self._interval, self._clock = min_interval_s, clock or _now
        self._unknown: set[tuple[str, str]] = set()
        self._last_lookup: dict[str, float] = {}
        self._failed: dict[tuple[str, str], tuple[float, str]] = {}  # a lookup that failed: when, why
        self._retry_s = retry_s
        self._listing: dict[tuple[str, str], datetime | None] = {}  # (venue, instrument) -> listing, cached
        self._lock = threading.Lock()
        self.lookups = 0  # reference lookups made
        self.added: list[Version] = []  # versions learned by lookups, for the caller to store
        self.add(versions)

    def connect(self, lookup: Callable[[str, str], list[Instrument]], venue: str | None = None) -> None:
        """Ask `lookup` for an instrument of `venue` (None: of any venue) never seen (its reference
        endpoint)."""
        self._lookups[venue] = lookup

    def add(self, versions: Iterable[Version]) -> None:
        """Versions into the histories; one already held (same instrument and validity start) is not added
        again."""
        for version in versions:
            history = self._versions.setdefault(version.instrument.key, [])
            if all(v.valid_from != version.valid_from for v in history):
                history.append(version)
                self._listing.pop(version.instrument.key, None)
                self._unknown.discard(version.instrument.key)
                history.sort(key=lambda v: (v.valid_from, v.seen))

    def current(self, venue: str | None = None) -> dict[tuple[str, str], Instrument]:
        """Each instrument's latest version (of `venue`)."""
        return {
            key: history[-1].instrument
            for key, history in self._versions.items()
            if venue is None or key[0] == venue
        }

    def history(self, venue: str, instrument: str) -> list[Version]:
        return list(self._versions.get((venue, instrument), ()))

    def at(self, venue: str, instrument: str, when: datetime | None = None) -> Instrument | None:
        """The version of (venue, instrument) valid at `when` (None: now); None if the venue does not know
        it."""
        history = self._versions.get((venue, instrument)) or self._learn(venue, instrument)
        if not history:
            return None
        if when is None:
            return history[-1].instrument
        valid = [v for v in history if v.valid_from <= when]
        return (valid[-1] if valid else history[0]).instrument

    def listing(self, venue: str, instrument: str) -> datetime | None:
        """When the instrument was listed, as the master last learned it (None: no source said)."""
        key = (venue, instrument)
        if key not in self._listing:
            known = [v for v in self._versions.get(key, ()) if v.instrument.listed is not None]
            self._listing[key] = max(known, key=lambda v: v.seen).instrument.listed if known else None
        return self._listing[key]

    def first_seen(self, venue: str, instrument: str) -> datetime | None:
        """When the master first learned of the instrument (None: never)."""
        history = self._versions.get((venue, instrument))
        return min(v.seen for v in history) if history else None

    def listed_on(self, venue: str, day: date) -> list[Instrument]:
        """The instruments of `venue` trading on `day`, as each was described that day (no survivors' bias:
        an instrument that later ended is there; one listed later is not). One whose listing no source
        gave is there on every day before it ended (`look_ahead` names the days before its first sight)."""
        keys = sorted(key for key in self._versions if key[0] == venue)
        return [item for key in keys if (item := self.on_day(*key, day)) is not None]

    def on_day(self, venue: str, instrument: str, day: date) -> Instrument | None:
        """The instrument as described on `day` if it traded that day (listed before the day ended, by the
        listing the master knows now, and not ended before it started), else None."""
        start, end = day_window(day)
        valid = [v for v in self._versions.get((venue, instrument), ()) if v.valid_from < end]
        listed = self.listing(venue, instrument)
        if not valid or (listed is not None and listed >= end):
            return None
        item = valid[-1].instrument
        if item.status in CLOSED:  # ended: it traded on `day` if it ended after the day started
            if (item.expires or valid[-1].valid_from) <= start:
                return None
            before = valid[-2].instrument if len(valid) > 1 else item
            return before if before.status not in CLOSED else item
        return item if item.expires is None or item.expires > start else None

    def look_ahead(self, venue: str, day: date, names: Iterable[str]) -> list[str]:
        """Of `names`, those whose listing no source gave and that the master first saw after `day`: in
        `day`'s universe only because they were listed when first seen (today's world standing in for the
        past)."""
        end = day_window(day)[1]
        return sorted(
            name
            for name in names
            if (venue, name) in self._versions
            and self.listing(venue, name) is None
            and (self.first_seen(venue, name) or end) >= end
        )

    def needs_lookup(self, venue: str, instrument: str) -> bool:
        """Never seen, and not already answered "unknown" by the venue."""
        return (venue, instrument) not in self._versions and (venue, instrument) not in self._unknown

    def learn(self, venue: str, asked: list[str], found: list[Instrument]) -> int:
        """What the venue answered for `asked` (instruments never seen; one lookup, or a listing holding
        them): `found` added as versions (`added` keeps them for the caller to store), the asked ones it lacks
        remembered as unknown to the venue; returns the versions added."""
        learned = changes(self.current(venue), found, self._clock(), complete=False)
        self.added.extend(learned)
        self.add(learned)
        self._unknown.update((venue, name) for name in asked if (venue, name) not in self._versions)
        return len(learned)

    async def resolve(
        self,
        venue: str,
        instrument: str,
        when: datetime | None,
        lookup: Callable[[str], Awaitable[list[Instrument]]],
    ) -> Instrument | None:
        """`at`, an instrument never seen asked first of the async `lookup` (a venue client's; the same
        spacing of lookups as the blocking ones)."""
        if self.needs_lookup(venue, instrument):
            await asyncio.sleep(self.pause(venue))
            self.learn(venue, [instrument], await lookup(instrument))
        return self.at(venue, instrument, when)

    def pause(self, venue: str) -> float:
        """Seconds to wait before the next lookup of `venue` (at most one every `min_interval_s`); counts
        it."""
        now = time.monotonic()
        wait = max(0.0, self._last_lookup.get(venue, -1e9) + self._interval - now)
        self._last_lookup[venue] = now + wait
        self.lookups += 1
        return wait

    def _learn(self, venue: str, instrument: str) -> list[Version]:
        """A blocking lookup; one that failed (the venue unreachable) is not asked again for `retry_s`:
        until then the same error is raised at once (the caller refuses the frame, counted)."""
        key, lookup = (venue, instrument), self._lookups.get(venue) or self._lookups.get(None)
        if lookup is None or not self.needs_lookup(venue, instrument):
            return self._versions.get(key, [])
        with self._lock:
            if not self.needs_lookup(venue, instrument):
                return self._versions.get(key, [])
            failed = self._failed.get(key)
            if failed is not None and time.monotonic() - failed[0] < self._retry_s:
                raise LookupFailed(
                    f"{venue} {instrument}: {failed[1]} (asked again {self._retry_s:g} s after)"
                )
            time.sleep(self.pause(venue))
            try:
                found = lookup(venue, instrument)
            except Exception as error:
                self._failed[key] = (time.monotonic(), str(error))
                raise
            self._failed.pop(key, None)
            self.learn(venue, [instrument], found)
            return self._versions.get(key, [])


def _now() -> datetime:
    return datetime.now(UTC)


__all__ = [
    "CLOSED",
    "SCHEMA",
    "STATUSES",
    "TYPES",
    "Instrument",
    "LookupFailed",
    "Master",
    "Version",
    "changes",
    "frame",
    "from_frame",
]
