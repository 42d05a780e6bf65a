"""The live collector's core, venue-neutral: streams in, raw landing, books, messages to JetStream.

`LiveCollector` runs a venue's `StreamProtocol` (sources/stream.py): its connections (make before
break at the venue's cut), a processor that decodes each frame once, lands it raw and feeds the books
and the messages, the JetStream publisher, the landing's ticker. Design, limits and figures:
docs/live-capture.md, "The collector" (its "tasks of one `LiveCollector.run()`").
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import json
import os
import time
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import uvloop

from marketdata_assets.ingest.live.book_outputs import BookOutputs, LatestState
from marketdata_assets.ingest.live.connection import (
    AttemptWindow,
    Backoff,
    Connection,
    FrameQueue,
    Pacer,
    handshake_refusal,
)
from marketdata_assets.ingest.live.parts import Part
from marketdata_assets.ingest.live.shedding import OVERFLOW, TRADE_LAG_FACTOR, TradeGaps, shed
from marketdata_assets.ingest.live.stats import Stats
from marketdata_assets.sources.config import rest_base
from marketdata_assets.sources.stream import (
    BOOKS,
    MALFORMED,
    TRADES,
    Frame,
    Keepalive,
    StreamProtocol,
    TradeMessage,
    plan_connections,
    shared_channels,
    trade_batch,
)
from marketdata_assets.stores.jetstream import JetStreamStore, subject
from marketdata_assets.stores.landing import BAD_CHANNEL, LandingWriter

T = TypeVar("T")
DATA = "data"  # a parsed frame that is an event and asks for no reply (`_process`)
CONTROL_CHANNEL = "_control"  # acks, errors, heartbeats, frames of no channel
OVERFLOW_MARK_EVERY_NS = 1_000_000_000  # a connection's channels get at most one `overflow` marker a second
NO_CUT_S = 10 * 365 * 86_400.0  # a venue that never cuts a connection: no rollover


@dataclass
class CollectorConfig:
    instruments: list[str]
    ws_url: str
    rest_url: str | None = None  # REST base: snapshots (venues with `rest_snapshots`), every venue's gap-hour repair
    depth_speed_ms: int = 100
    snapshot_limit: int = 100  # levels of the snapshot a book starts from (Binance: weight 5 at 100, 50 at 1,000)
    queue_size: int = 50_000  # frames queued at most (memory); the bound that counts is `max_lag_s`
    batch_size: int = 500  # frames the processor takes at a time (larger cost more CPU a frame: bench live_capture)
    max_lag_s: float = 1.0  # a frame received longer ago when the processor gets to it is dropped (shedding.py)
    stale_s: float = 10.0
    rollover_s: float | None = None  # None: 15 min before the venue's cut (never, without one)
    backoff_base_s: float = 1.0
    backoff_cap_s: float = 32.0
    publish_batch: int = 500  # messages a JetStream batch (a trade batch message counts once)
    publish_buffer: int = 200_000  # records waiting to be published, at most
    trade_batch_s: float = 0.05  # every this long, an instrument's trades go out as one message when they are
    trade_batch_frames: int = 20  # this many frames or more,
    trade_batch_max_s: float = 0.25  # or the oldest waited this long (a sparse instrument: fewer, fuller messages)
    trade_batch_behind_s: float = 1.0  # the same while the processor is behind (its frames waited longer than
    # trade_batch_max_s already: catching up, not the batch's wait, is what their lag waits on)
    max_streams: int | None = None  # None: the venue's channels per connection
    url_streams: int | None = None  # None: the venue's; channels named in the URL, the others subscribed
    keepalive_s: float | None = None  # None: the venue's interval (OKX: 20 s) or stale_s / 2, the shorter
    subject_prefix: str = "md"
    book_depth: int = 20  # levels per side in the top-N book snapshots published to JetStream
    book_snapshot_s: float = 1.0  # their cadence (0: none)
    latest_flush_s: float = 0.1  # how often the latest-state cache (Redis) is written
    repair_period_s: float = 3600.0  # an hour with a book gap gets a REST snapshot at its end (tests: shorter)
    repair_depth: int = 1000  # levels asked for (each venue's REST clamps to what it serves)
    part: Part = Part()  # the share of `instruments` this collector takes (ingest/live/parts.py): all of them


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


async def _cancel_until_done(tasks: list[asyncio.Task]) -> None:
    """Cancel the tasks, again while any still runs: a cancel can be swallowed below us, and the task
    then carries on, and the stop waits for it forever. nats-py swallows one that lands in a publish
    (`Client._flush_pending`: `except asyncio.CancelledError: pass`); Python 3.11's `asyncio.wait_for`
    one that lands as its awaitable ends (CPython gh-86296), in any library that still uses it."""
    pending = set(tasks)
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.5)
    for task in tasks:  # retrieved, as gather(return_exceptions=True) did: no "never retrieved" log
        if not task.cancelled():
            task.exception()


class CollectorFailed(RuntimeError):
    """A collector's service task (processing, publishing, the landing's ticks, ...) failed: it stopped."""


class LiveCollector(BookOutputs):
    """docs/live-capture.md, "The collector". `await run(stop)` until `stop` is set; `stats` counts what happened."""

    def __init__(self, protocol: StreamProtocol, config: CollectorConfig, writer: LandingWriter,
                 store: JetStreamStore | None = None, *, snapshot_store: JetStreamStore | None = None,
                 latest: LatestState | None = None):
        self.protocol, self.config, self.writer, self.store = protocol, config, writer, store
        self.latest = latest  # the optional latest-state cache (Redis): fed what is published, never waited on
        self.snapshot_store = snapshot_store or (store if isinstance(store, JetStreamStore) else None)
        self.limits = protocol.limits
        self.url_channels = self.limits.url_channels if config.url_streams is None else config.url_streams
        lifetime = self.limits.lifetime_s
        self.rollover_s = config.rollover_s or (lifetime - 15 * 60 if lifetime else NO_CUT_S)
        self.stats = Stats()
        self.stats.channel_frames = writer.landed  # the writer counts them as it lands them
        self.stats.warnings = getattr(protocol, "warnings", self.stats.warnings)  # the protocol counts them
        self.queue = FrameQueue(config.queue_size)
        self.trade_gaps = TradeGaps()  # the trade ids lost with dropped frames (shedding.py)
        self.gap_markers: list[tuple] = []  # their `gap` markers, landed with the next batch (`_land`'s entries)
        self.part = config.part
        self.instruments = config.part.take(config.instruments)  # what it collects (`set_instruments` changes it)
        self.books = {name: protocol.new_book(name) for name in self.instruments}
        self.retired: set[str] = set()  # instruments unsubscribed (their frames still in flight are counted)
        self.resyncing: set[str] = set()  # books rebuilt after a gap (marked `resync`, not `snapshot`)
        self.snapshotting: set[str] = set()
        self.snapshot_tasks: set[asyncio.Task] = set()
        self.outbox: deque[tuple[str, str, bytes, int]] = deque()  # (subject, msg id, payload, records)
        self.buffered = 0  # records in the outbox (trade frames not yet sealed are not records yet)
        self.publish_buffer = config.publish_buffer  # at most so many (`_room`)
        # instrument -> its trade frames since the last seal, their receive times, the first one's connection
        self.trade_frames: dict[str, tuple[list[Frame], list[int], str, int]] = {}  # frames, recvs, conn, first tick
        self.sealing: asyncio.TimerHandle | None = None
        self.seal_ticks = 0  # sealing ticks so far (`_seal_due`)
        self.max_ticks = max(1, round(config.trade_batch_max_s / config.trade_batch_s))  # a sparse batch's ticks
        self.behind_ticks = max(self.max_ticks, round(config.trade_batch_behind_s / config.trade_batch_s))
        self.behind = False  # the processor's last batch had waited longer than trade_batch_max_s
        self.subjects: dict[tuple[str, str], str] = {}  # (dataset, instrument) -> its subject
        self.outbox_ready = asyncio.Event()
        self.publish_lock = asyncio.Lock()  # held while JetStream has a batch: a stop waits, never cuts it
        self.connections: dict[str, Connection] = {}
        self.conn_streams: dict[str, list[str]] = {}  # until its disconnect marker is landed
        self.overflow_marked: dict[str, int] = {}  # conn -> when its channels last got an `overflow` marker
        self.pending: dict[int, str] = {}  # subscribe request id -> connection id
        self.refusals: dict[str, Backoff] = {}  # a refused request (without its id) -> its backoff
        self.refused_ids: dict[int, str] = {}  # the id a refused request was sent again with -> that request
        self.request_ids = itertools.count(1)
        self.conn_numbers = itertools.count(1)
        self.attempts = AttemptWindow(self.limits.connections_per_window, self.limits.window_s)
        self.rest = protocol.snapshot_source(config.rest_url) if protocol.rest_snapshots else None
        self.repair = protocol.repair_source(config.rest_url) if config.rest_url else None
        # contract sizes: the venue's reference data (one lookup a new instrument), at the REST base given,
        # else where the protocol already asks, else the sources config's (read at the first lookup)
        master = getattr(protocol, "master", None)
        if config.rest_url or (master is not None and not master.connected(protocol.venue)):
            protocol.use_reference(config.rest_url or (lambda: rest_base(protocol.venue)), master)
        self.gap_periods: dict[str, tuple[str, set[int]]] = {}  # instrument -> (book channel, periods with a gap)
        self.book_times: dict[str, tuple[int, int | None]] = {}  # instrument -> (recv ns, exchange ms) of its book
        self.snapshot_ids: dict[str, int] = {}  # instrument -> update id of its last published top-N snapshot
        self.slots: list[list[str]] = []  # each connection slot's channels (a universe change edits them in place)
        self.slot_tasks: list[asyncio.Task] = []
        self.replanned = asyncio.Event()  # the slots changed: the watch on them starts over
        self.universe_lock = asyncio.Lock()
        # a venue counting every connection's control messages together (Deribit) gets one pacer for all
        self.pacer = Pacer(self.limits.control_per_s, self.limits.control_per_hour) if self.limits.control_per_ip else None
        self.service_tasks: list[asyncio.Task] = []
        self.processor: asyncio.Task | None = None  # of the service tasks, the one taking frames off the queue

    def streams(self, instruments: list[str] | None = None) -> list[str]:
        """The channels of `instruments` (default: its own), the shared ones only in the first part."""
        channels = self.protocol.channels(self.instruments if instruments is None else instruments,
                                          self.config.depth_speed_ms)
        if self.part.shared:
            return channels
        shared = shared_channels(self.protocol)
        return [channel for channel in channels if channel not in shared]

    def _plan(self, channels: list[str]) -> list[list[str]]:
        """`channels` over connections within the venue's channels a connection; beyond its connections
        per IP (Deribit: 32), refused naming the remedy: a split over collectors (`Part`)."""
        plans = plan_connections(channels, self.config.max_streams or self.limits.max_channels, self.protocol.endpoint)
        most = self.limits.max_connections
        if most is not None and len(self.slots) + len(plans) > most:
            raise ValueError(f"{self.protocol.venue}: {len(channels)} channels need {len(self.slots) + len(plans)} "
                             f"connections, above the venue's {most} per IP: split the universe over collectors "
                             "(--part K/N) on several addresses")
        return plans

    async def run(self, stop: asyncio.Event) -> None:
        recovered = await asyncio.to_thread(self.writer.recover_partials)
        self.stats.markers["recovered_files"] = len(recovered)
        # the subscribed instruments' sizes known before their first frame (a listing, not a lookup each)
        await asyncio.to_thread(self.protocol.reference_ready, list(self.instruments))
        self.slots = self._plan(self.streams())
        self.slot_tasks = [asyncio.create_task(self._slot(streams)) for streams in self.slots]
        self.processor = asyncio.create_task(self._process_forever())
        self.service_tasks = [self.processor, asyncio.create_task(self._tick_forever())]
        if self.store is not None:
            self.service_tasks.append(asyncio.create_task(self._publish_forever()))
        if BOOKS in getattr(self.protocol, "datasets", (BOOKS,)) and self.config.book_snapshot_s > 0:
            self.service_tasks.append(asyncio.create_task(self._book_snapshots_forever()))  # landed, maybe published
        if self.latest is not None:
            self.service_tasks.append(asyncio.create_task(self._latest_forever()))
        if self.repair is not None:
            self.service_tasks.append(asyncio.create_task(self._repair_forever()))
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
        try:
            while True:  # again after each universe change (`replanned`): slots came, slots went
                self.replanned.clear()
                replanned = asyncio.ensure_future(self.replanned.wait())
                watched = [*self.service_tasks, *self.slot_tasks]
                try:
                    done, _ = await asyncio.wait([stopping, replanned, *watched], return_when=asyncio.FIRST_COMPLETED)
                finally:
                    replanned.cancel()
                current = {*self.service_tasks, *self.slot_tasks}  # a slot retired meanwhile did not fail
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
        raise CollectorFailed(f"{self.protocol.venue} collector stopped: its {name} task failed with {error!r}; "
                              f"frames read and never processed: {self.stats.lost_frames}{also}") from error

    async def _shutdown(self, drain: bool = True) -> None:
        """Stop reading, land what was read (`drain`: the processor is alive), publish what was parsed,
        close the files."""
        await _cancel_until_done(self.slot_tasks)
        await asyncio.gather(*(conn.close("stop") for conn in list(self.connections.values())))  # at once, each
        # bounded by the close timeout: a stop is as quick for 8 connections as for 1
        if drain:
            await self.queue.join()
        async with self.publish_lock:  # no publish is cut short: a batch the server stored is counted once
            await _cancel_until_done(self.service_tasks + list(self.snapshot_tasks))
        self._seal_trades()
        if self.store is not None:
            await self._drain_outbox()  # the publisher is stopped: nothing else takes from the buffer
        if self.latest is not None:
            await self._flush_latest()
        if self.gap_markers:  # found by the last batch
            await asyncio.to_thread(self._land, self.gap_markers)
        await asyncio.to_thread(self.writer.close)
        for client in (self.rest, self.repair):
            if client is not None:
                await client.aclose()

    # ---- connections ------------------------------------------------------------------------

    def _requests(self, messages_of) -> list[tuple[int, str]]:
        """Messages from `messages_of(first_id)`, their ids taken from the collector's counter."""
        messages = messages_of(next(self.request_ids))
        for _ in messages[1:]:
            next(self.request_ids)
        return messages

    def _new_connection(self, streams: list[str]) -> Connection:
        conn_id = f"{os.getpid()}-{next(self.conn_numbers)}"
        protocol = self.protocol
        opening = self._requests(protocol.opening_messages)
        later = streams[self.url_channels:]
        messages = self._requests(lambda first: protocol.subscribe_messages(later, first)) if later else []
        for message_id, _ in messages:
            self.pending[message_id] = conn_id
        named = streams[:self.url_channels]
        keepalive = protocol.keepalive
        if keepalive is not None:  # ping well before our own stale deadline could call a quiet channel dead
            every = self.config.keepalive_s or min(keepalive.every_s, self.config.stale_s / 2)
            keepalive = Keepalive(keepalive.text, every)
        base = protocol.endpoint_url(self.config.ws_url, protocol.endpoint(streams[0]) if streams else "")
        conn = Connection(conn_id, protocol.url(base, named), streams, opening + messages, self.queue,
                          self.stats, stale_s=self.config.stale_s,
                          pacer=self.pacer or Pacer(self.limits.control_per_s, self.limits.control_per_hour),
                          keepalive=keepalive, trade_marks=protocol.trade_marks)
        self.connections[conn_id] = conn
        self.conn_streams[conn_id] = list(streams)
        return conn

    async def _open(self, streams: list[str], backoff: Backoff) -> Connection:
        """A connected connection, after as many attempts (backed off) as it takes."""
        while True:
            await self.attempts.wait()
            conn = self._new_connection(streams)
            try:
                await conn.open()
            except (asyncio.CancelledError, Exception) as error:  # any failure: retry; a stop: end
                self.connections.pop(conn.conn_id, None)
                self.conn_streams.pop(conn.conn_id, None)
                if isinstance(error, asyncio.CancelledError):  # a stop while connecting: this connection never was
                    raise
                self.stats.connect_failures += 1
                await asyncio.sleep(self._connect_failed(conn.conn_id, error, backoff))
                continue
            self.stats.connects += 1
            return conn

    def _connect_failed(self, conn_id: str, error: BaseException, backoff: Backoff) -> float:
        """Mark a failed attempt; the delay before the next: the backoff's, or at least what a venue
        refusing the handshake for rate (429, 418) asks (Retry-After; without one, the backoff's cap)."""
        delay = backoff.next_delay()
        refusal = handshake_refusal(error)
        if refusal is None:
            self.writer.marker(CONTROL_CHANNEL, conn_id, "connect_failed", error=f"{type(error).__name__}: {error}")
            return delay
        status, retry_after_s = refusal
        delay = max(delay, self.config.backoff_cap_s if retry_after_s is None else retry_after_s)
        self.stats.handshake_refusals[status] = self.stats.handshake_refusals.get(status, 0) + 1
        self.writer.marker(CONTROL_CHANNEL, conn_id, "handshake_refused", status=status, retry_after_s=retry_after_s,
                           wait_s=round(delay, 3))
        self.stats.changed.set()
        return delay

    async def _slot(self, streams: list[str]) -> None:
        """Keep one connection's streams flowing: reconnect on loss, roll over before the cut (or at
        once when the venue announces one)."""
        backoff = Backoff(self.config.backoff_base_s, self.config.backoff_cap_s)
        conn = await self._open(streams, backoff)
        while True:
            waits = {asyncio.create_task(asyncio.sleep(self.rollover_s)), asyncio.create_task(conn.ended.wait()),
                     asyncio.create_task(conn.warned.wait())}  # the cut's time, a loss, the venue's notice
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:  # a stop too: none of them outlives the slot
                for waiting in waits:
                    waiting.cancel()
            if conn.ended.is_set():
                self.connections.pop(conn.conn_id, None)
                if conn.frames:
                    backoff.reset()
                await asyncio.sleep(backoff.next_delay())
                conn = await self._open(streams, backoff)
                continue
            successor = await self._open(streams, backoff)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.stale_s):
                    await successor.all_data.wait()
            self.stats.rollovers += 1
            await conn.close("rollover")
            self.connections.pop(conn.conn_id, None)
            conn = successor

    # ---- the universe changing ------------------------------------------------------------

    async def set_instruments(self, universe: list[str]) -> dict[str, int]:
        """Collect this part's share of `universe` from now on, without a restart (a re-resolved universe:
        new listings in, delisted and expired ones out): the instruments that left unsubscribed on their
        connections, the new ones' sizes looked up, then subscribed where connections have room, else
        on new connections. Their slots keep the change across reconnects. Counts of the change."""
        async with self.universe_lock:
            wanted = self.part.take(universe)
            kept = set(wanted)
            new = [name for name in wanted if name not in self.books]
            gone = [name for name in self.instruments if name not in kept]
            if not new and not gone:
                return {"added": 0, "removed": 0, "subscribed": 0, "unsubscribed": 0}
            if new:
                await asyncio.to_thread(self.protocol.reference_ready, new)
            if self.processor is None:  # not running yet: `run` subscribes what it holds then
                self.instruments, self.books = list(wanted), {name: self.protocol.new_book(name) for name in wanted}
                self.stats.changed.set()
                return {"added": len(new), "removed": len(gone), "subscribed": 0, "unsubscribed": 0}
            before, after = self.streams(), self.streams(wanted)
            now_set, then_set = set(after), set(before)
            leaving = [channel for channel in before if channel not in now_set]
            joining = [channel for channel in after if channel not in then_set]
            self.instruments = list(wanted)
            for name in gone:
                self.books.pop(name, None)
                self.book_times.pop(name, None)
                self.snapshot_ids.pop(name, None)
                self.retired.add(name)
            for name in new:
                self.books[name] = self.protocol.new_book(name)
                self.retired.discard(name)
            await self._unsubscribe(leaving)
            self._subscribe_more(joining)
            counts = {"added": len(new), "removed": len(gone), "subscribed": len(joining), "unsubscribed": len(leaving)}
            self.stats.universe_changes += 1
            self.writer.marker(CONTROL_CHANNEL, "collector", "universe", **counts, instruments=len(self.instruments))
            self.stats.changed.set()
            return counts

    def _carrying(self, slot: list[str]) -> list[Connection]:
        """The open (or opening) connections of a slot: one, two during a rollover."""
        return [conn for conn in self.connections.values() if conn.streams is slot and not conn.ended.is_set()]

    def _send(self, conn: Connection, messages: list[tuple[int, str]], channels: list[str], joined: bool) -> None:
        """Subscribe or unsubscribe messages on a connection, awaited as any request (`pending`)."""
        for message_id, _ in messages:
            self.pending[message_id] = conn.conn_id
        marked = self.conn_streams.get(conn.conn_id)
        if marked is not None:
            if joined:
                self.conn_streams[conn.conn_id] = marked + channels
            else:
                leaving = set(channels)
                self.conn_streams[conn.conn_id] = [c for c in marked if c not in leaving]
        if not joined:  # a rollover's successor waits for data of its channels only
            for channel in channels:
                conn.saw(channel)
        conn.send(messages)

    async def _unsubscribe(self, channels: list[str]) -> None:
        """Each channel out of its slot, unsubscribed on the slot's connections; a slot left with none
        is retired (its connection closed, reason `unsubscribed`)."""
        gone, retired = set(channels), []
        for slot in self.slots:
            leaving = [channel for channel in slot if channel in gone]
            if not leaving:
                continue
            slot[:] = [channel for channel in slot if channel not in gone]
            if not slot:
                retired.append(slot)
                continue
            for conn in self._carrying(slot):
                self._send(conn, self._requests(lambda first: self.protocol.unsubscribe_messages(leaving, first)),
                           leaving, joined=False)
        self.stats.unsubscribed += len(channels)
        for slot in retired:
            await self._retire(slot)

    async def _retire(self, slot: list[str]) -> None:
        index = next(k for k, other in enumerate(self.slots) if other is slot)
        task = self.slot_tasks.pop(index)
        self.slots.pop(index)
        self.replanned.set()
        conns = self._carrying(slot)
        await _cancel_until_done([task])
        await asyncio.gather(*(conn.close("unsubscribed") for conn in conns))
        for conn in conns:
            self.connections.pop(conn.conn_id, None)

    def _subscribe_more(self, channels: list[str]) -> None:
        """New channels into the slots with room (same endpoint), subscribed on their connections; the
        rest on new connections (their own slots)."""
        most, endpoint, rest = self.config.max_streams or self.limits.max_channels, self.protocol.endpoint, channels
        for slot in self.slots:
            if not rest:
                break
            where = endpoint(slot[0]) if slot else ""
            fits = [channel for channel in rest if endpoint(channel) == where][:max(0, most - len(slot))]
            if not fits:
                continue
            taken = set(fits)
            rest = [channel for channel in rest if channel not in taken]
            slot.extend(fits)
            for conn in self._carrying(slot):
                self._send(conn, self._requests(lambda first, fits=fits: self.protocol.subscribe_messages(fits, first)),
                           fits, joined=True)
        if rest:
            plans = plan_connections(rest, most, endpoint)
            room = len(plans) if self.limits.max_connections is None else self.limits.max_connections - len(self.slots)
            unplaced = sum(len(plan) for plan in plans[max(0, room):])
            if unplaced:  # the venue's connections per IP are all taken: said, counted, never silently dropped
                plans = plans[:max(0, room)]
                self.stats.unplaced_channels += unplaced
                self.writer.marker(CONTROL_CHANNEL, "collector", "over_connection_limit", channels=unplaced,
                                   connections=self.limits.max_connections)
            self.slots.extend(plans)
            self.slot_tasks.extend(asyncio.create_task(self._slot(plan)) for plan in plans)
            self.replanned.set()
        self.stats.subscribed_later += len(channels)

    # ---- processing -------------------------------------------------------------------------

    async def _process_forever(self) -> None:
        """Batches of `batch_size` off the queue; frames that waited more than `max_lag_s` are dropped
        whole and marked (shedding.py)."""
        queue, config, stats = self.queue, self.config, self.stats
        lag_ns, behind_ns = int(config.max_lag_s * 1e9), int(config.trade_batch_max_s * 1e9)
        while True:
            batch = await queue.take(config.batch_size)
            try:
                now_ns = time.time_ns()
                self.behind = batch[0][2] < now_ns - behind_ns
                if batch[0][2] < now_ns - lag_ns:  # its oldest waited too long: the processor is behind
                    kept, dropped = shed(batch, now_ns - lag_ns, now_ns, self.protocol.data_prefix,
                                         self.protocol.trade_marks, now_ns - TRADE_LAG_FACTOR * lag_ns)
                    stats.overflow_frames += dropped
                    await self._process(kept)
                else:
                    await self._process(batch)
            except Exception:
                stats.lost_frames += len(batch)  # the processor fails with them (`_fail`)
                raise
            finally:
                queue.task_done(len(batch))
                stats.changed.set()

    async def _process(self, batch: list[tuple]) -> None:
        """Land the batch raw (in a worker thread), then handle what it means. Landed: a frame as
        (channel, conn, text, recv_ns), a marker as (None, conn, recv_ns, marker, its channels)."""
        landed, parsed, decode = self.gap_markers, [], self.protocol.decode
        self.gap_markers, marked = [], bool(landed)
        for kind, conn, recv_ns, payload in batch:
            if kind == "marker":
                marked = True
                landed.append((None, conn, recv_ns, payload, self._marker_channels(conn, recv_ns, payload[0])))
                parsed.append((kind, conn, recv_ns, payload))
                continue
            try:
                frame = decode(payload)
            except ValueError:
                self.stats.bad("not_json")
                landed.append((BAD_CHANNEL, conn, payload, recv_ns))
                continue
            landed.append((frame.channel or CONTROL_CHANNEL, conn, payload, recv_ns))
            parsed.append((DATA if frame.kind == "event" and frame.reply is None else kind, conn, recv_ns, frame))
        await asyncio.to_thread(self._land_frames if not marked else self._land, landed)
        on_event = self._on_event
        for kind, conn, recv_ns, item in parsed:
            if kind is DATA:  # nearly every frame
                on_event(conn, recv_ns, item)
            elif kind == "marker":
                self._on_marker(conn, item)
            else:
                self._on_frame(conn, recv_ns, item)

    def _marker_channels(self, conn_id: str, recv_ns: int, kind: str) -> list[str]:
        """Where a connection's marker lands: every channel it carries (each channel's file tells its
        own story), or the control channel. An `overflow` marker, one a batch while the processor is
        behind, lands in the control channel every time (its counts are the whole record of the drops)
        and in the connection's channels at most once a second: written into each of ~1,000 channels
        of a connection, the markers cost more than the frames they stand for, and the collector would
        never catch up (docs/live-capture.md)."""
        channels = self.conn_streams.get(conn_id)
        if not channels:
            return [CONTROL_CHANNEL]
        if kind != OVERFLOW:
            return channels
        if recv_ns < self.overflow_marked.get(conn_id, 0) + OVERFLOW_MARK_EVERY_NS:
            return [CONTROL_CHANNEL]
        self.overflow_marked[conn_id] = recv_ns
        return [*channels, CONTROL_CHANNEL]

    def _land(self, landed: list[tuple]) -> None:
        """The batch into the landing files in order: runs of frames at once, markers one by one."""
        frames = []
        for entry in landed:
            if entry[0] is not None:
                frames.append(entry)
                continue
            if frames:
                self._land_frames(frames)
                frames = []
            _, conn, recv_ns, (kind, details), channels = entry
            for channel in channels:
                self.writer.marker(channel, conn, kind, recv_ns, **details)
        if frames:
            self._land_frames(frames)

    def _land_frames(self, frames: list[tuple[str, str, str, int]]) -> None:
        self.writer.frames(frames)
        stats = self.stats
        stats.frames += len(frames)
        stats.last_frame_ns = max(stats.last_frame_ns, frames[-1][3])

    def _on_marker(self, conn_id: str, marker: tuple[str, dict]) -> None:
        self.stats.marked(marker[0])
        if marker[0] == OVERFLOW or marker[1].get("overflow_dropped"):
            self._seal_trades()  # the trades read before the drop first: the ids after it are checked
            self.trade_gaps.dropped()  # each instrument's next trade says which ids were lost
        if marker[0] == "disconnect":
            streams = self.conn_streams.pop(conn_id, None) or []
            self.overflow_marked.pop(conn_id, None)
            if marker[1].get("reason") not in ("rollover", "stop", "unsubscribed"):
                self._reset_books(conn_id, streams)

    def _reset_books(self, conn_id: str, streams: list[str]) -> None:
        """A connection lost (not rolled over): the books it carried are dropped, so each is rebuilt from
        a fresh snapshot (the reconnect's subscribe sends one; Binance: a REST snapshot), never continued
        across the outage; a `gap` marker (cause `disconnect`) says so, and the hour gets its repair
        snapshot like any gap. A book another open connection still carries is kept."""
        carried = {c for other, conn in self.connections.items() if other != conn_id and not conn.ended.is_set()
                   for c in conn.streams}
        for instrument, sync in list(self.books.items()):
            channel = self._book_channel(instrument, streams)
            if channel is None or channel in carried or sync.needs_snapshot:
                continue
            self.books[instrument] = self.protocol.new_book(instrument)
            self.resyncing.add(instrument)
            self.stats.book_resets += 1
            self.writer.marker(channel, conn_id, "gap", cause="disconnect", last_update_id=sync.book.update_id)
            self._gap_period(instrument, channel)
            self._rest_snapshot(instrument, channel)

    def _book_prefix(self, instrument: str) -> str:
        """How the venue's book channels of an instrument begin (Binance: `btcusdt@depth`)."""
        return self.protocol.book_channel_format.format(instrument.lower() if self.protocol.lower_channels else instrument)

    def _book_channel(self, instrument: str, streams: list[str]) -> str | None:
        prefix = self._book_prefix(instrument)
        return next((c for c in streams if c.startswith(prefix)), None)

    def _book_unreadable(self, instrument: str, error: ValueError) -> None:
        """A book whose deferred levels hold a size that is no number (`OrderBook.settle`): counted as a
        malformed book and rebuilt from a fresh snapshot, as after a gap (cause `malformed`)."""
        self.stats.bad("malformed_books")
        conn_id, channel = next(((conn, channel) for conn, streams in self.conn_streams.items()
                                 if (channel := self._book_channel(instrument, streams))), ("collector", None))
        channel = channel or self._book_prefix(instrument)
        self.books[instrument] = self.protocol.new_book(instrument)
        self._on_gap(instrument, channel, conn_id, "malformed", {"error": str(error)})
        self._rest_snapshot(instrument, channel)

    def _on_frame(self, conn_id: str, recv_ns: int, frame: Frame) -> None:
        """A frame that is not plain data (`_process` hands those to `_on_event`)."""
        if frame.reply is not None:
            conn = self.connections.get(conn_id)
            if conn is not None:
                self.stats.replies += 1
                conn.reply(frame.reply)
        if frame.kind == "event":
            self._on_event(conn_id, recv_ns, frame)
        elif frame.kind == "ack":
            self.stats.acks += 1
            self.pending.pop(frame.request_id, None)
            refused = self.refused_ids.pop(frame.request_id, None)
            if refused is not None:
                self.refusals.pop(refused, None)  # taken at last: its next refusal starts from the base delay
        elif frame.kind == "error":
            self._on_refused(conn_id, frame)
        elif frame.kind == "notice":
            self.stats.notices += 1
            conn = self.connections.get(conn_id)
            if conn is not None:
                conn.warned.set()  # its slot rolls over now (make before break)
        elif frame.kind != "control":
            self.stats.bad("unknown_shape")

    def _on_event(self, conn_id: str, recv_ns: int, frame: Frame) -> None:
        conn = self.connections.get(conn_id)
        if conn is not None and conn.unseen:
            conn.saw(frame.channel)  # the data flows: a rollover may close its predecessor
        dataset = frame.dataset
        if dataset == TRADES:  # nearly every frame: kept with its receive time for its instrument's next
            pending = self.trade_frames.get(frame.instrument)  # batch, read all at once when it is sealed
            if pending is None:
                pending = self.trade_frames[frame.instrument] = ([], [], conn_id, self.seal_ticks)
            pending[0].append(frame)
            pending[1].append(recv_ns)
            if self.sealing is None:
                self.sealing = asyncio.get_running_loop().call_later(self.config.trade_batch_s, self._seal_due)
            return
        try:
            if dataset == BOOKS:
                self._on_book(frame, conn_id, recv_ns)
            elif dataset is not None:
                self._on_messages(frame, recv_ns)
            else:
                self.stats.bad("unknown_stream")
        except MALFORMED:
            self.stats.bad(f"malformed_{dataset}")

    def _on_refused(self, conn_id: str, frame: Frame) -> None:
        """A refused request (a subscription, a book's resubscription, a rate limit): marked with the
        venue's whole error object, counted by its code, and sent again on its connection with a new id
        after a backoff that grows with each refusal of the same request (jittered, capped; reset once
        it is acknowledged), so a venue that keeps refusing is not asked every second."""
        self.stats.subscribe_errors += 1
        code = frame.code or "?"
        self.stats.errors_by_code[code] = self.stats.errors_by_code.get(code, 0) + 1
        self.stats.last_errors[code] = frame.error or ""
        owner = self.pending.pop(frame.request_id, None) if frame.request_id is not None else None
        conn = self.connections.get(owner or conn_id)
        text = conn.requests.get(frame.request_id) if conn is not None else None
        if text is None:
            self.writer.marker(CONTROL_CHANNEL, conn_id, "subscribe_error", id=frame.request_id, error=frame.error)
            return
        key = self.protocol.with_id(text, 0)  # the request without its id: its refusals share one backoff
        backoff = self.refusals.setdefault(key, Backoff(self.config.backoff_base_s, self.config.backoff_cap_s))
        delay = backoff.next_delay()
        self.stats.refused_retries += 1
        self.stats.retry_wait_s = round(delay, 3)
        self.writer.marker(CONTROL_CHANNEL, conn_id, "subscribe_error", id=frame.request_id, error=frame.error,
                           retry_in_s=round(delay, 3), refusals=backoff.failures)
        request_id = next(self.request_ids)
        self.pending[request_id] = conn.conn_id
        self.refused_ids[request_id] = key
        again = [(request_id, self.protocol.with_id(text, request_id))]
        asyncio.get_running_loop().call_later(delay, conn.resubscribe, again)

    def _subject(self, dataset: str, instrument: str) -> str:
        where = self.subjects.get((dataset, instrument))
        if where is None:
            where = self.subjects[dataset, instrument] = subject(dataset, self.protocol.venue, instrument,
                                                                 self.config.subject_prefix)
        return where

    def _room(self, wanted: int) -> int:
        """How many of `wanted` records the publish buffer takes (the rest dropped and counted: NATS
        away for long, the landing files keep them)."""
        room = self.publish_buffer - self.buffered
        if room >= wanted:  # nearly always
            self.buffered += wanted
            return wanted
        room = max(0, room)
        self.stats.publish_dropped += wanted - room
        self.buffered += room
        return room

    def _trade_gap(self, frame: Frame, first_seq: int | None, conn_id: str, recv_ns: int) -> None:
        """The trade ids an instrument lost with dropped frames, as a `gap` marker of its trade channel
        (landed by the worker thread with the next batch: the loop never waits on the writer's lock)."""
        lost = self.trade_gaps.after(frame.instrument, first_seq)
        if lost is not None:
            self.stats.trade_gaps += 1
            details = {"cause": OVERFLOW, "first_id": lost[0], "last_id": lost[1], "trades": lost[1] - lost[0] + 1}
            self.gap_markers.append((None, conn_id, recv_ns, ("gap", details), [frame.channel]))

    def _on_messages(self, frame: Frame, recv_ns: int) -> None:
        """An event's messages (tickers, bars, ...: `protocol.messages`) to the publish buffer, each to
        `md.<dataset>.<venue>.<instrument>` with its `Nats-Msg-Id`."""
        stats = self.stats
        counts = stats.messages
        for message in self.protocol.messages(frame, recv_ns):
            counts[message.dataset] = counts.get(message.dataset, 0) + 1
            stats.trades += message.dataset == TRADES
            if message.event_ms is not None:
                stats.lagged(recv_ns, message.event_ms)
            where = self._subject(message.dataset, message.instrument)
            if self.store is None:
                if self.latest is not None:  # no sink to publish to: the cache is fed here
                    self.latest.offer(((where, message.msg_id, message.payload),))
                continue
            if self._room(1):
                self.outbox.append((where, message.msg_id, message.payload, 1))
                self.outbox_ready.set()

    def _seal_due(self) -> None:
        """The sealing tick: the instruments holding `trade_batch_frames` trade frames, or whose oldest
        waited `trade_batch_max_s` in the collector, sealed (`_seal`); the tick again while others wait (their
        wait counted in ticks from their first frame's processing, not its receive time: a backlog's frames are
        all old, and batching is what lets the collector work a backlog off). At a universe most
        instruments trade a few times a second: a message each 50 ms would carry one trade, and its
        message work (the batch, its id, the publish, its ack) would cost more than the trade's. While the
        processor is behind, the wait is `trade_batch_behind_s`: fuller messages, a backlog worked off sooner."""
        self.sealing = None
        self.seal_ticks += 1
        pending, enough = self.trade_frames, self.config.trade_batch_frames
        started = self.seal_ticks - (self.behind_ticks if self.behind else self.max_ticks)
        due = {name: p for name, p in pending.items() if len(p[0]) >= enough or p[3] <= started}
        if len(due) == len(pending):
            self.trade_frames = {}
        else:
            for name in due:
                del pending[name]
            self.sealing = asyncio.get_running_loop().call_later(self.config.trade_batch_s, self._seal_due)
        self._seal(due)

    def _seal_trades(self) -> None:
        """Every instrument's trade frames sealed now (before a drop is noted, at a stop)."""
        if self.sealing is not None:
            self.sealing.cancel()
            self.sealing = None
        pending, self.trade_frames = self.trade_frames, {}
        self._seal(pending)

    def _seal(self, pending: dict[str, tuple[list[Frame], list[int], str, int]]) -> None:
        """Instruments' trade frames read into their records (the venue's `read_trades`: the one parse),
        counted, and sealed into one message each in the outbox (sources/stream.py `trade_batch`: a JSON
        array, an id made from its content); with no sink, to the latest-state cache."""
        for instrument, (frames, recvs, conn_id, _) in pending.items():
            records = self._read_trades(instrument, frames, recvs, conn_id)
            if self.store is None:
                if self.latest is not None and records:  # no sink to publish to: the cache is fed here
                    self.latest.offer(((self._subject(TRADES, instrument),
                                        *trade_batch(self.protocol.venue, instrument, records[-1:])),))
                continue
            records = records[:self._room(len(records))]
            if records:
                self.outbox.append((self._subject(TRADES, instrument),
                                    *trade_batch(self.protocol.venue, instrument, records), len(records)))
                self.outbox_ready.set()

    def _read_trades(self, instrument: str, frames: list[Frame], recvs: list[int], conn_id: str) -> list[TradeMessage]:
        """One instrument's trade frames as records, counted (trades, lag; a frame the venue refuses as
        `malformed_trades`); after dropped frames, the trade ids they held (`_trade_gap`)."""
        bad: list = []
        records, stats = self.protocol.read_trades(frames, recvs, bad), self.stats
        for _ in bad:
            stats.bad(f"malformed_{TRADES}")
        if records:
            gaps = self.trade_gaps
            if gaps.watch:  # frames were dropped: did this instrument lose trades?
                self._trade_gap(frames[0], records[0].seq, conn_id, recvs[0])
            gaps.last[instrument] = records[-1].seq
            stats.messages[TRADES] = stats.messages.get(TRADES, 0) + len(records)
            stats.trades += len(records)
            stats.lagged_many(records)
        return records

    def _on_book(self, frame: Frame, conn_id: str, recv_ns: int = 0) -> None:
        instrument = frame.instrument
        sync = self.books.get(instrument)
        if sync is None:
            if instrument in self.retired:  # unsubscribed: its last frames, landed, not read into a book
                self.stats.after_unsubscribe += 1
            else:
                self.stats.bad("unknown_instrument")
            return
        outcome = sync.on_frame(frame.data)
        if outcome in ("snapshot", "applied"):
            self.book_times[instrument] = (recv_ns, self.protocol.book_time_ms(frame.data))
        if outcome in ("gap", "mismatch"):
            self._on_gap(instrument, frame.channel, conn_id, outcome, sync.gap_details())
        elif outcome == "snapshot":
            self._on_rebuilt(instrument, frame.channel, conn_id, sync)
        if sync.needs_snapshot:
            self._rest_snapshot(instrument, frame.channel)

    def _rest_snapshot(self, instrument: str, channel: str) -> None:
        """Rebuild a book from REST snapshots (venues whose snapshots come from REST), once at a time."""
        if self.rest is not None and instrument not in self.snapshotting:
            self.snapshotting.add(instrument)
            task = asyncio.ensure_future(self._snapshot(instrument, channel))
            self.snapshot_tasks.add(task)
            task.add_done_callback(self.snapshot_tasks.discard)

    def _on_gap(self, instrument: str, channel: str, conn_id: str, outcome: str, details: dict) -> None:
        """One gap: marked, counted, and (venues without REST snapshots) the channel subscribed again."""
        self.stats.gaps += 1
        self.stats.checksum_mismatches += outcome == "mismatch"
        self.resyncing.add(instrument)
        details = {"cause": {"mismatch": "checksum", "malformed": "malformed"}.get(outcome, "sequence"), **details}
        self.writer.marker(channel, conn_id, "gap", **details)
        self._gap_period(instrument, channel)
        conn = self.connections.get(conn_id)
        if self.rest is not None or conn is None:
            return
        messages = self._requests(lambda first: self.protocol.resubscribe_messages(channel, first))
        self.stats.resubscribes += 1
        self.writer.marker(channel, conn_id, "resubscribe", ids=[i for i, _ in messages])
        conn.resubscribe(messages)

    def _on_rebuilt(self, instrument: str, channel: str, conn_id: str, sync) -> None:
        self.stats.snapshots += 1
        kind = "resync" if instrument in self.resyncing else "snapshot"
        self.resyncing.discard(instrument)
        self.writer.marker(channel, conn_id, kind, update_id=sync.book.update_id)

    async def _snapshot(self, instrument: str, channel: str) -> None:
        """Build the book from REST snapshots until one fits the buffered events (see DepthSync)."""
        sync, backoff = self.books[instrument], Backoff(self.config.backoff_base_s / 4, self.config.backoff_cap_s)
        try:
            while sync.needs_snapshot:
                try:
                    body = await self.rest.fetch(instrument, self.config.snapshot_limit)
                except Exception as error:  # noqa: BLE001  (a REST failure: try again later, counted)
                    self.stats.bad("snapshot_failed")
                    self.writer.marker(channel, "rest", "snapshot_failed", error=f"{type(error).__name__}: {error}")
                    await asyncio.sleep(backoff.next_delay())
                    continue
                text = json.dumps(body, separators=(",", ":"))
                await asyncio.to_thread(self.writer.frame, self.protocol.snapshot_channel(instrument), "rest", text,
                                        time.time_ns())
                outcome = sync.on_snapshot_body(body)
                if outcome == "stale":
                    self.stats.stale_snapshots += 1
                    await asyncio.sleep(backoff.next_delay())
                    continue
                if outcome == "gap":
                    self.stats.gaps += 1
                    self.resyncing.add(instrument)
                    self.writer.marker(channel, "rest", "gap", cause="sequence", **sync.gap_details())
                    self._gap_period(instrument, channel)
                    continue
                self._on_rebuilt(instrument, channel, "rest", sync)
        finally:
            self.snapshotting.discard(instrument)
            self.stats.changed.set()

    # ---- publishing -------------------------------------------------------------------------

    async def _publish_forever(self) -> None:
        backoff = Backoff(self.config.backoff_base_s / 4, self.config.backoff_cap_s)
        while True:
            if not self.outbox:
                self.outbox_ready.clear()
                await self.outbox_ready.wait()
            async with self.publish_lock:
                published = await self._publish_batch()
            if published:
                backoff.reset()
            else:
                await asyncio.sleep(backoff.next_delay())

    async def _publish_batch(self) -> bool:
        """Publish the oldest batch; it leaves the buffer only once JetStream acknowledged all of it."""
        batch = list(itertools.islice(self.outbox, self.config.publish_batch))
        messages = [(where, msg_id, payload) for where, msg_id, payload, _ in batch]
        if self.latest is not None:
            self.latest.offer(messages)  # a retried batch is offered again: the same values
        try:
            result = await self.store.publish(messages)
        except Exception:  # noqa: BLE001  (NATS down, a timeout: the whole batch is published again)
            self.stats.publish_failures += 1
            return False
        for _ in batch:
            self.outbox.popleft()
        records = [n for _, _, _, n in batch]
        repeated = sum(records[k] for k in result.duplicate_at)
        passed = sum(records[k] for k in result.passed_at)  # a sink's datasets it does not keep
        refused = sum(records[k] for k in result.refused_at)
        self.buffered -= sum(records)
        self.stats.published += sum(records) - repeated - passed - refused
        self.stats.publish_refused += refused
        self.stats.duplicates += repeated
        self.stats.changed.set()
        return True

    async def _drain_outbox(self, attempts: int = 5) -> None:
        for _ in range(attempts):
            while self.outbox and await self._publish_batch():
                pass
            if not self.outbox:
                return

    async def _tick_forever(self) -> None:
        """Flush the landing files every second and close the hours that ended."""
        while True:
            await asyncio.sleep(1.0)
            await asyncio.to_thread(self.writer.tick)
