"""The live collector's core, venue-neutral: streams in, raw landing, books, messages to JetStream.

`LiveCollector` runs a venue's `StreamProtocol` (sources/stream.py) with its parts by concern: the
connections (slots.py), the processor that decodes each frame once, lands it raw and hands it on
(processing.py, batch_landing.py), the books (books.py), the trade batches, messages and JetStream
(publishing.py); it starts them, changes the universe, stops or fails them as one, and ticks the
landing. Design, limits and figures: docs/live-capture.md, "The collector" (its "tasks of one
`LiveCollector.run()`").
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import uvloop

from marketdata_assets.ingest.instruments import reference_client
from marketdata_assets.ingest.live.collect.batch_landing import BatchLanding
from marketdata_assets.ingest.live.collect.book_outputs import LatestState
from marketdata_assets.ingest.live.collect.books import Books
from marketdata_assets.ingest.live.collect.connection import FrameQueue, cancel_until_done
from marketdata_assets.ingest.live.collect.parts import Part
from marketdata_assets.ingest.live.collect.processing import Processor
from marketdata_assets.ingest.live.collect.publishing import Publisher
from marketdata_assets.ingest.live.collect.slots import ConnectionSlots, Setup
from marketdata_assets.ingest.live.stats import Stats
from marketdata_assets.sources.stream import BOOKS, StreamProtocol, shared_channels
from marketdata_assets.stores.jetstream import JetStreamStore
from marketdata_assets.stores.landing import CONTROL_CHANNEL, LandingWriter

T = TypeVar("T")


@dataclass
class CollectorConfig:
    instruments: list[str]
    ws_url: str
    rest_url: str | None = (
        None  # REST base: snapshots (venues with `rest_snapshots`), every venue's gap-hour repair
    )
    depth_speed_ms: int = 100
    snapshot_limit: int = (
        100  # levels of the snapshot a book starts from (Binance: weight 5 at 100, 50 at 1,000)
    )
    queue_size: int = 50_000  # frames queued at most (memory); the bound that counts is `max_lag_s`
    batch_size: int = (
        500  # frames the processor takes at a time (larger cost more CPU a frame: bench live_capture)
    )
    max_lag_s: float = (
        1.0  # a frame received longer ago when the processor gets to it is dropped (shedding.py)
    )
    stale_s: float = 10.0
    rollover_s: float | None = None  # None: 15 min before the venue's cut (never, without one)
    backoff_base_s: float = 1.0
    backoff_cap_s: float = 32.0
    publish_batch: int = 500  # messages a JetStream batch (a trade batch message counts once)
    publish_buffer: int = 200_000  # records waiting to be published, at most
    trade_batch_s: float = 0.05  # every this long, an instrument's trades go out as one message when they are
    trade_batch_frames: int = 20  # this many frames or more,
    trade_batch_max_s: float = (
        0.25  # or the oldest waited this long (a sparse instrument: fewer, fuller messages)
    )
    trade_batch_behind_s: float = 1.0  # the same while the processor is behind (its frames waited longer than
    # trade_batch_max_s already: catching up, not the batch's wait, is what their lag waits on)
    trade_batch_behind_frames: int = 100  # and, while behind, sealed by size from this many frames
    max_streams: int | None = None  # None: the venue's channels per connection
    url_streams: int | None = None  # None: the venue's; channels named in the URL, the others subscribed
    keepalive_s: float | None = None  # None: the venue's interval (OKX: 20 s) or stale_s / 2, the shorter
    subject_prefix: str = "md"
    book_depth: int = 20  # levels per side in the top-N book snapshots published to JetStream
    book_snapshot_s: float = 1.0  # their cadence (0: none)
    latest_flush_s: float = 0.1  # how often the latest-state cache (Redis) is written
    repair_period_s: float = (
        3600.0  # an hour with a book gap gets a REST snapshot at its end (tests: shorter)
    )
    repair_depth: int = 1000  # levels asked for (each venue's REST clamps to what it serves)
    part: Part = field(
        default_factory=Part
    )  # the share of `instruments` this collector takes (ingest/live/collect/parts.py): all of them


def run_streaming(main: Coroutine[Any, Any, T]) -> T:
    """Run a live process's main coroutine (collector, consumer) to its end: on uvloop, the event loop
    in C (bench live_capture: 14.1 -> 13.0 µs of CPU a frame), with `streaming_gc`."""
    streaming_gc()
    return uvloop.run(main)


def streaming_gc(gen0: int = 50_000) -> None:
    """For a live process (collector, consumer), once it started: its cycles collected every `gen0`
    allocations instead of CPython's 700, and its start-up objects (modules, configuration) left out of
    every collection (`gc.freeze`). A frame's JSON objects die at once (reference counting frees them,
    not the collector of cycles), yet at the default the cycle collector ran every ~50 frames and
    scanned the queued frames and the books each time: bench live_capture, 19.2 -> 15.0 µs of CPU a frame."""
    gc.freeze()
    gc.set_threshold(gen0, 20, 100)


class CollectorFailed(RuntimeError):
    """A collector's service task (processing, publishing, the landing's ticks, ...) failed: it stopped."""


class LiveCollector:
    """docs/live-capture.md, "The collector". `await run(stop)` until `stop` is set; `stats` counts what
    happened. It owns the parts by concern: `conns` (slots.py), `processing` (processing.py), `landing`
    (batch_landing.py), `books` (books.py), `publisher` (publishing.py)."""

    def __init__(
        self,
        protocol: StreamProtocol,
        config: CollectorConfig,
        writer: LandingWriter,
        store: JetStreamStore | None = None,
        *,
        snapshot_store: JetStreamStore | None = None,
        latest: LatestState | None = None,
    ):
        self.protocol, self.config, self.writer, self.store, self.latest = (
            protocol,
            config,
            writer,
            store,
            latest,
        )
        self.stats = stats = Stats()
        stats.channel_frames = writer.landed  # the writer counts them as it lands them
        stats.warnings = getattr(protocol, "warnings", stats.warnings)  # the protocol counts them
        self.queue = FrameQueue(config.queue_size)
        self.part = config.part
        self.instruments = config.part.take(
            config.instruments
        )  # what it collects (`set_instruments` changes it)
        setup = Setup(protocol, config, writer, stats)
        self.conns = ConnectionSlots(setup, self.queue)
        self.connections = self.conns.connections  # by id (the same dict)
        self.publisher = Publisher(protocol, config, stats, store, latest)
        self.books = Books(
            setup,
            self.conns,
            self.instruments,
            self.publisher.publish_lock,
            snapshot_store or (store if isinstance(store, JetStreamStore) else None),
            latest,
        )
        self.landing = BatchLanding(writer, stats, self.conns.conn_streams)
        self.processing = Processor(
            protocol, config, stats, self.queue, self.landing, self.conns, self.books, self.publisher
        )
        # contract sizes: the service the protocol was handed, asking the venue where it asks already, else
        # at the REST base given, else the sources config's (read at the first lookup)
        service = protocol.instrument_service
        if service is not None and not service.provides(protocol.venue):
            service.provide(protocol.venue, reference_client(protocol.venue, config.rest_url))
        self.universe_lock = asyncio.Lock()
        self.service_tasks: list[asyncio.Task] = []
        self.processor: asyncio.Task | None = (
            None  # of the service tasks, the one taking frames off the queue
        )

    def streams(self, instruments: list[str] | None = None) -> list[str]:
        """The channels of `instruments` (default: its own), the shared ones only in the first part."""
        channels = self.protocol.channels(
            self.instruments if instruments is None else instruments, self.config.depth_speed_ms
        )
        if self.part.shared:
            return channels
        shared = shared_channels(self.protocol)
        return [channel for channel in channels if channel not in shared]

    async def run(self, stop: asyncio.Event) -> None:
        recovered = await asyncio.to_thread(self.writer.recover_partials)
        self.stats.markers["recovered_files"] = len(recovered)
        # the subscribed instruments' sizes known before their first frame (a listing, not a lookup each)
        await asyncio.to_thread(self.protocol.reference_ready, list(self.instruments))
        self.conns.start(self.streams())
        self.processor = asyncio.create_task(self.processing.process_forever())
        self.service_tasks = [self.processor, asyncio.create_task(self._tick_forever())]
        if self.store is not None:
            self.service_tasks.append(asyncio.create_task(self.publisher.publish_forever()))
        if BOOKS in getattr(self.protocol, "datasets", (BOOKS,)) and self.config.book_snapshot_s > 0:
            self.service_tasks.append(
                asyncio.create_task(self.books.book_snapshots_forever())
            )  # landed, maybe published
        if self.latest is not None:
            self.service_tasks.append(asyncio.create_task(self.publisher.latest_forever()))
        if self.books.repair is not None:
            self.service_tasks.append(asyncio.create_task(self.books.repair_forever()))
        failed = None
        try:
            failed = await self._stopped_or_failed(stop)
        finally:
            if failed is None:  # stopped (or cancelled)
                await self._shutdown()
        if failed is not None:
            await self._fail(failed)

    async def _stopped_or_failed(self, stop: asyncio.Event) -> asyncio.Task | None:
        """Wait for `stop`, or for a service or connection slot task to end: they run until cancelled, so
        one that ends has failed (the landing disk full, a bug); that task, or None when stopped."""
        stopping = asyncio.ensure_future(stop.wait())
        conns = self.conns
        try:
            while True:  # again after each universe change (`replanned`): slots came, slots went
                conns.replanned.clear()
                replanned = asyncio.ensure_future(conns.replanned.wait())
                watched = [*self.service_tasks, *conns.slot_tasks]
                try:
                    done, _ = await asyncio.wait(
                        [stopping, replanned, *watched], return_when=asyncio.FIRST_COMPLETED
                    )
                finally:
                    replanned.cancel()
                current = {*self.service_tasks, *conns.slot_tasks}  # a slot retired meanwhile did not fail
                failed = next((task for task in watched if task in done and task in current), None)
                if failed is not None or stopping in done:
                    return failed
        finally:
            stopping.cancel()

    async def _fail(self, failed: asyncio.Task) -> None:
        """A service task failed: stop as a stop does, as far as it can, then raise `CollectorFailed` naming
        the venue, the task and the error, so the process exits and its supervisor restarts it (the
        landing recovers its files then), instead of reading on into a queue nobody takes from. A failed
        processor's batch and the frames still queued are lost, counted in `lost_frames`."""
        error = failed.exception() if not failed.cancelled() else asyncio.CancelledError()
        processing = not self.processor.done()
        if not processing:
            self.stats.lost_frames += self.queue.qsize()
        also = ""
        try:
            await self._shutdown(drain=processing)
        except Exception as again:  # noqa: BLE001  (the same fault again, most likely: the first one is the story)
            also = f"; stopping after it failed too: {again!r}"
        name = failed.get_coro().__name__.strip("_")
        raise CollectorFailed(
            f"{self.protocol.venue} collector stopped: its {name} task failed with {error!r}; "
            f"frames read and never processed: {self.stats.lost_frames}{also}"
        ) from error

    async def _shutdown(self, drain: bool = True) -> None:
        """Stop reading, land what was read (`drain`: the processor is alive), publish what was parsed,
        close the files."""
        publisher = self.publisher
        await self.conns.stop()
        if drain:
            await self.queue.join()
        async with (
            publisher.publish_lock
        ):  # no publish is cut short: a batch the server stored is counted once
            await cancel_until_done(self.service_tasks + list(self.books.snapshot_tasks))
        publisher.seal_trades()
        if self.store is not None:
            await publisher.drain()
        if self.latest is not None:
            await publisher.flush_latest()
        if publisher.gap_markers:  # found by the last batch
            await asyncio.to_thread(self.landing.land, publisher.gap_markers)
        await asyncio.to_thread(self.writer.close)
        await self.books.close()

    async def set_instruments(self, universe: list[str]) -> dict[str, int]:
        """Collect this part's share of `universe` from now on, without a restart (a re-resolved universe:
        new listings in, delisted and expired ones out): the instruments that left unsubscribed on their
        connections, the new ones' sizes looked up, then subscribed where connections have room, else
        on new connections. Their slots keep the change across reconnects. Counts of the change."""
        async with self.universe_lock:
            wanted = self.part.take(universe)
            kept = set(wanted)
            new = [name for name in wanted if name not in self.books.by_instrument]
            gone = [name for name in self.instruments if name not in kept]
            if not new and not gone:
                return {"added": 0, "removed": 0, "subscribed": 0, "unsubscribed": 0}
            if new:
                await asyncio.to_thread(self.protocol.reference_ready, new)
            if self.processor is None:  # not running yet: `run` subscribes what it holds then
                self.instruments = list(wanted)
                self.books.by_instrument = {name: self.protocol.new_book(name) for name in wanted}
                self.stats.changed.set()
                return {"added": len(new), "removed": len(gone), "subscribed": 0, "unsubscribed": 0}
            before, after = self.streams(), self.streams(wanted)
            now_set, then_set = set(after), set(before)
            leaving = [channel for channel in before if channel not in now_set]
            joining = [channel for channel in after if channel not in then_set]
            self.instruments = list(wanted)
            self.books.change(new, gone)
            await self.conns.unsubscribe(leaving)
            self.conns.subscribe_more(joining)
            counts = {
                "added": len(new),
                "removed": len(gone),
                "subscribed": len(joining),
                "unsubscribed": len(leaving),
            }
            self.stats.universe_changes += 1
            self.writer.marker(
                CONTROL_CHANNEL, "collector", "universe", **counts, instruments=len(self.instruments)
            )
            self.stats.changed.set()
            return counts

    async def _tick_forever(self) -> None:
        """Flush the landing files every second and close the hours that ended (and whose frames all
        landed: a backlog crossing the hour goes on landing in its hour's files)."""
        while True:
            await asyncio.sleep(1.0)
            await asyncio.to_thread(self.writer.tick, None, self.processing.unlanded_ns())
