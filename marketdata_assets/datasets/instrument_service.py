"""One instrument service per process: the point-in-time master in memory (`Master`), loaded from the store,
asked of each venue's provider (its one REST client: limits, retries, error table) only for what it lacks,
and what it learned stored back once. Handed by constructor to the venues' REST clients and streams, the
hourly loads and the universe, so a process holds one master and asks the venue once per instrument.

The store and the providers are given by the caller (ingest wires ClickHouse and the venue clients), so
the service stays free of both. A stream parses frames synchronously: its lookups run on the service's own
event-loop thread, through the same client, and wait at most `lookup_timeout_s`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping
from concurrent.futures import Future
from datetime import datetime
from typing import Any, Protocol, Self

from marketdata_assets.datasets.instruments import Instrument, LookupFailed, Master, Version


class Provider(Protocol):
    """A venue's reference data through its one client (an async context manager)."""

    async def lookup(self, instrument: str) -> list[Instrument]: ...  # one name; [] if the venue lacks it

    async def listing_for(self, instruments: list[str]) -> list[Instrument]: ...  # listings holding them


class MasterStore(Protocol):
    """Where the master's versions are kept (the table made by either call if missing)."""

    def read(self, venues: set[str] | None) -> list[Version]: ...  # the stored versions (None: all venues)

    def write(self, versions: list[Version]) -> int: ...  # append; returns how many were sent


class InstrumentService:
    """See the module doc. `providers`: venue -> a maker of its client (`Provider`)."""

    def __init__(
        self,
        store: MasterStore | None = None,
        providers: Mapping[str, Callable[[], Any]] | None = None,
        *,
        min_interval_s: float = 0.2,
        retry_s: float = 60.0,
        lookup_timeout_s: float = 10.0,
        clock: Callable[[], datetime] | None = None,
    ):
        self.master = Master(min_interval_s=min_interval_s, clock=clock, retry_s=retry_s)
        self.store = store
        self.lookup_timeout_s = lookup_timeout_s
        self._makers: dict[str, Callable[[], Any]] = {}
        self._loaded: set[str] = set()
        self._all_loaded = False
        self._keep_lock = threading.Lock()
        self._runner: _Runner | None = None
        for venue, make in (providers or {}).items():
            self.provide(venue, make)

    # ---- where it reads and asks ------------------------------------------------------------------

    def provide(self, venue: str, make: Callable[[], Any]) -> None:
        """Ask `venue`'s client made by `make` for what the master lacks (replaces an earlier one)."""
        self._makers[venue] = make
        if self._runner is not None:
            self._runner.forget(venue)
        self.master.connect(self._blocking_lookup(venue), venue)

    def provides(self, venue: str) -> bool:
        return venue in self._makers

    def load(self, venues: Iterable[str] | None = None) -> Master:
        """The stored versions of `venues` (None: all) not loaded yet, into the master; returns it."""
        if self.store is None or self._all_loaded:
            return self.master
        wanted = None if venues is None else set(venues) - self._loaded
        return self.reload(wanted) if wanted is None or wanted else self.master

    def reload(self, venues: Iterable[str] | None = None) -> Master:
        """The stored versions of `venues` (None: all) read again (what a refresh stored since), into the
        master; returns it."""
        if self.store is None:
            return self.master
        wanted = None if venues is None else set(venues)
        self.master.add(self.store.read(wanted))
        if wanted is None:
            self._all_loaded = True
        else:
            self._loaded |= wanted
        return self.master

    # ---- what it answers ----------------------------------------------------------------------------

    def at(self, venue: str, instrument: str, when: datetime | None = None) -> Instrument | None:
        """The version valid at `when` (None: now); one never seen looked up once (blocking); None if the
        venue does not know it; LookupFailed (or the client's SourceError) when it could not be asked."""
        return self.master.at(venue, instrument, when)

    async def resolve(
        self,
        venue: str,
        instrument: str,
        when: datetime | None = None,
        lookup: Callable[[str], Awaitable[list[Instrument]]] | None = None,
    ) -> Instrument | None:
        """`at` for async callers: `lookup` (a REST client's own) or the venue's provider awaited."""
        ask = lookup or (lambda name: asyncio.wrap_future(self._run(venue, "lookup", name)))
        return await self.master.resolve(venue, instrument, when, ask)

    def ready(self, venue: str, instruments: Iterable[str]) -> int:
        """Blocking: the instruments of `venue` never seen asked in the listings that hold them (not a lookup
        each); returns the versions learned (a listing that fails: they are looked up one by one later)."""
        missing = [name for name in instruments if self.master.needs_lookup(venue, name)]
        if not missing or venue not in self._makers:
            return 0
        try:
            found = self._run(venue, "listing_for", missing).result(self.lookup_timeout_s * 6)
        except Exception:  # noqa: BLE001  (each is asked on its own at its first frame, and counted there)
            return 0
        return self.master.learn(venue, missing, found)

    # ---- what it learned ----------------------------------------------------------------------------

    @property
    def learned(self) -> list[Version]:
        """Versions learned by lookups and not stored yet."""
        return list(self.master.added)

    def keep(self) -> int:
        """What the lookups learned, stored once (taken off when stored; a store that fails keeps them for
        the next call and raises); returns the versions stored."""
        with self._keep_lock:
            learned = list(self.master.added)
            if not learned or self.store is None:
                return 0
            stored = self.store.write(learned)
            del self.master.added[: len(learned)]  # lookups of other threads append after them
            return stored

    def close(self) -> None:
        """The providers' clients closed and the lookup thread stopped."""
        if self._runner is not None:
            self._runner.stop()
            self._runner = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- the lookup thread ------------------------------------------------------------------------

    def _run(self, venue: str, method: str, *args) -> Future:
        if venue not in self._makers:
            raise LookupFailed(f"{venue}: no reference endpoint to ask")
        if self._runner is None:
            self._runner = _Runner(self._makers)
        return self._runner.call(venue, method, *args)

    def _blocking_lookup(self, venue: str) -> Callable[[str, str], list[Instrument]]:
        def lookup(_venue: str, instrument: str) -> list[Instrument]:
            future = self._run(venue, "lookup", instrument)
            try:
                return future.result(self.lookup_timeout_s)
            except TimeoutError:
                future.cancel()
                raise LookupFailed(
                    f"{venue} {instrument}: the reference lookup took over {self.lookup_timeout_s:g} s"
                ) from None
            except Exception as error:  # the client's classified error, after its retries: refused, counted
                raise LookupFailed(f"{venue} {instrument}: the reference lookup failed: {error}") from error

        return lookup


class _Runner:
    """An event loop on its own thread holding each venue's client open (made at its first call)."""

    def __init__(self, makers: Mapping[str, Callable[[], Any]]):
        self._makers, self._clients = makers, {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="instrument-lookups", daemon=True)
        self._thread.start()

    def call(self, venue: str, method: str, *args) -> Future:
        return asyncio.run_coroutine_threadsafe(self._call(venue, method, *args), self._loop)

    async def _call(self, venue: str, method: str, *args):
        client = self._clients.get(venue)
        if client is None:
            client = self._clients[venue] = await self._makers[venue]().__aenter__()
        return await getattr(client, method)(*args)

    def forget(self, venue: str) -> None:
        client = self._clients.pop(venue, None)
        if client is not None:
            asyncio.run_coroutine_threadsafe(client.__aexit__(None, None, None), self._loop)

    def stop(self) -> None:
        async def close_all():
            for client in self._clients.values():
                await client.__aexit__(None, None, None)

        try:
            asyncio.run_coroutine_threadsafe(close_all(), self._loop).result(5)
        except Exception:  # noqa: BLE001, S110  (closing at the end: a client that fails to close is let go)
            pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()


__all__ = ["InstrumentService", "MasterStore", "Provider"]
