"""The live collector's core for Binance spot: streams in, raw landing, books, trades to JetStream.

Tasks of one `BinanceSpotCollector.run()`:
- a slot per planned connection (at most 1,024 streams each): connect with the first streams in
  the URL and the rest subscribed by paced messages; on a disconnect, reconnect after a jittered
  backoff; before the venue's forced cut (`rollover_s`, Binance: 24 h) open the next connection
  first and close the old one when the new one has delivered its first frame (make before break:
  both deliver the overlap, the landing keeps both, the book drops repeats by update id and
  JetStream drops repeated trades by message id);
- the processor: takes batches off the bounded queue, reads of each frame only its stream name and
  what the book and the trade publish need, lands the batch raw through the landing writer in a
  worker thread (a slow disk never blocks the socket readers; a full queue is a counted, marked
  gap), then feeds depth events to `DepthSync` and trades to the publish buffer;
- snapshots: a book that needs one (start, gap) gets a REST depth snapshot (landed raw too, channel
  `<instrument>@depth_snapshot`); a gap is marked in the depth channel (`gap`) and its rebuild
  (`resync`); a snapshot older than the buffered events is taken again;
- the publisher: batches of trades to JetStream with `Nats-Msg-Id`; a failed batch is kept and
  published again (what was stored is deduplicated by the server);
- a ticker flushing the landing files each second and closing the hours that ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import time
from collections import deque
from dataclasses import dataclass

from marketdata_assets.ingest.live.connection import AttemptWindow, Backoff, Connection, Pacer
from marketdata_assets.ingest.live.stats import Stats
from marketdata_assets.sources.binance import BinanceClient
from marketdata_assets.sources.binance.stream import (
    LIMITS,
    URL_STREAMS,
    VENUE,
    DepthSync,
    classify,
    combined_url,
    depth_stream,
    plan_connections,
    stream_kind,
    subscribe_messages,
    trade_record,
    trade_stream,
)
from marketdata_assets.stores.jetstream import JetStreamStore, subject
from marketdata_assets.stores.landing import LandingWriter

CONTROL_CHANNEL = "_control"  # acks, errors, frames of no stream
BAD_CHANNEL = "_bad"  # frames that are not JSON


@dataclass
class CollectorConfig:
    instruments: list[str]
    ws_url: str
    rest_url: str
    depth_speed_ms: int = 100
    snapshot_limit: int = 1000
    queue_size: int = 10_000
    batch_size: int = 500
    stale_s: float = 10.0
    rollover_s: float = LIMITS.lifetime_s - 15 * 60  # a new connection 15 min before the 24 h cut
    backoff_base_s: float = 1.0
    backoff_cap_s: float = 32.0
    publish_batch: int = 500
    publish_buffer: int = 200_000
    max_streams: int = LIMITS.max_streams
    url_streams: int = URL_STREAMS  # streams named in the URL; the others subscribed by messages
    subject_prefix: str = "md"


class BinanceSpotCollector:
    """See the module doc. `await run(stop)` until `stop` is set; `stats` counts what happened."""

    def __init__(self, config: CollectorConfig, writer: LandingWriter, store: JetStreamStore | None = None):
        self.config, self.writer, self.store = config, writer, store
        self.stats = Stats()
        self.queue: asyncio.Queue = asyncio.Queue(maxsize=config.queue_size)
        self.books = {name: DepthSync(name) for name in config.instruments}
        self.snapshotting: set[str] = set()
        self.snapshot_tasks: set[asyncio.Task] = set()
        self.outbox: deque[tuple[str, str, bytes]] = deque()
        self.outbox_ready = asyncio.Event()
        self.connections: dict[str, Connection] = {}
        self.conn_streams: dict[str, list[str]] = {}  # until its disconnect marker is landed
        self.pending: dict[int, str] = {}  # SUBSCRIBE id -> connection id
        self.request_ids = itertools.count(1)
        self.conn_numbers = itertools.count(1)
        self.attempts = AttemptWindow(LIMITS.connections_per_5min, 300.0)
        self.rest = BinanceClient(config.rest_url)
        self.slot_tasks: list[asyncio.Task] = []
        self.service_tasks: list[asyncio.Task] = []

    def streams(self) -> list[str]:
        return [s for name in self.config.instruments
                for s in (trade_stream(name), depth_stream(name, self.config.depth_speed_ms))]

    async def run(self, stop: asyncio.Event) -> None:
        recovered = await asyncio.to_thread(self.writer.recover_partials)
        self.stats.markers["recovered_files"] = len(recovered)
        plans = plan_connections(self.streams(), self.config.max_streams)
        self.slot_tasks = [asyncio.create_task(self._slot(streams)) for streams in plans]
        self.service_tasks = [asyncio.create_task(self._process_forever()), asyncio.create_task(self._tick_forever())]
        if self.store is not None:
            self.service_tasks.append(asyncio.create_task(self._publish_forever()))
        try:
            await stop.wait()
        finally:
            await self._shutdown()

    async def _shutdown(self) -> None:
        """Stop reading, land what was read, publish what was parsed, close the files."""
        for task in self.slot_tasks:
            task.cancel()
        await asyncio.gather(*self.slot_tasks, return_exceptions=True)
        for conn in list(self.connections.values()):
            await conn.close("stop")
        await self.queue.join()
        helpers = self.service_tasks + list(self.snapshot_tasks)
        for task in helpers:
            task.cancel()
        await asyncio.gather(*helpers, return_exceptions=True)
        if self.store is not None:
            await self._drain_outbox()  # the publisher is stopped: nothing else takes from the buffer
        await asyncio.to_thread(self.writer.close)
        await self.rest.aclose()

    # ---- connections ------------------------------------------------------------------------

    def _new_connection(self, streams: list[str]) -> Connection:
        conn_id = f"{os.getpid()}-{next(self.conn_numbers)}"
        later = streams[self.config.url_streams:]
        messages = subscribe_messages(later, next(self.request_ids)) if later else []
        for _ in messages[1:]:
            next(self.request_ids)
        for message_id, _ in messages:
            self.pending[message_id] = conn_id
        conn = Connection(conn_id, combined_url(self.config.ws_url, streams[:self.config.url_streams]), streams,
                          messages, self.queue,
                          self.stats, stale_s=self.config.stale_s, pacer=Pacer(LIMITS.control_per_s - 1))
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
            except (OSError, asyncio.TimeoutError, Exception) as error:  # noqa: BLE001  (any failure: retry)
                self.connections.pop(conn.conn_id, None)
                self.conn_streams.pop(conn.conn_id, None)
                self.stats.connect_failures += 1
                self.writer.marker(CONTROL_CHANNEL, conn.conn_id, "connect_failed", error=f"{type(error).__name__}: {error}")
                await asyncio.sleep(backoff.next_delay())
                continue
            self.stats.connects += 1
            return conn

    async def _slot(self, streams: list[str]) -> None:
        """Keep one connection's streams flowing: reconnect on loss, roll over before the cut."""
        backoff = Backoff(self.config.backoff_base_s, self.config.backoff_cap_s)
        conn = await self._open(streams, backoff)
        while True:
            rollover = asyncio.create_task(asyncio.sleep(self.config.rollover_s))
            ended = asyncio.create_task(conn.ended.wait())
            await asyncio.wait({rollover, ended}, return_when=asyncio.FIRST_COMPLETED)
            rollover.cancel()
            ended.cancel()
            if conn.ended.is_set():
                self.connections.pop(conn.conn_id, None)
                if conn.frames:
                    backoff.reset()
                await asyncio.sleep(backoff.next_delay())
                conn = await self._open(streams, backoff)
                continue
            successor = await self._open(streams, backoff)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(successor.first_frame.wait(), self.config.stale_s)
            self.stats.rollovers += 1
            await conn.close("rollover")
            self.connections.pop(conn.conn_id, None)
            conn = successor

    # ---- processing -------------------------------------------------------------------------

    async def _process_forever(self) -> None:
        while True:
            batch = [await self.queue.get()]
            while len(batch) < self.config.batch_size and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            try:
                await self._process(batch)
            finally:
                for _ in batch:
                    self.queue.task_done()
                self.stats.changed.set()

    async def _process(self, batch: list[tuple]) -> None:
        """Land the batch raw (in a worker thread), then handle what it means."""
        landed, parsed = [], []
        for kind, conn, recv_ns, payload in batch:
            if kind == "marker":
                landed.append((kind, conn, recv_ns, payload, self._channels_of(conn)))
                parsed.append((kind, conn, recv_ns, payload))
                continue
            try:
                frame = classify(json.loads(payload))
            except ValueError:
                self.stats.bad("not_json")
                landed.append(("frame", conn, recv_ns, payload, [BAD_CHANNEL]))
                continue
            landed.append(("frame", conn, recv_ns, payload, [frame.stream or CONTROL_CHANNEL]))
            parsed.append(("frame", conn, recv_ns, frame))
        await asyncio.to_thread(self._land, landed)
        for kind, conn, recv_ns, item in parsed:
            if kind == "marker":
                self._on_marker(conn, item)
            else:
                self._on_frame(conn, recv_ns, item)

    def _channels_of(self, conn_id: str) -> list[str]:
        """Where a connection's markers go: every stream it carries (each channel's file tells its
        own story), or the control channel."""
        return self.conn_streams.get(conn_id) or [CONTROL_CHANNEL]

    def _land(self, landed: list[tuple]) -> None:
        for kind, conn, recv_ns, payload, channels in landed:
            for channel in channels:
                if kind == "frame":
                    self.writer.frame(channel, conn, payload, recv_ns)
                else:
                    self.writer.marker(channel, conn, payload[0], recv_ns, **payload[1])
            self.stats.frames += kind == "frame"
            if kind == "frame":
                self.stats.framed(channels[0], recv_ns)

    def _on_marker(self, conn_id: str, marker: tuple[str, dict]) -> None:
        self.stats.marked(marker[0])
        if marker[0] == "disconnect":
            self.conn_streams.pop(conn_id, None)

    def _on_frame(self, conn_id: str, recv_ns: int, frame) -> None:
        if frame.kind == "ack":
            self.stats.acks += 1
            self.pending.pop(frame.request_id, None)
        elif frame.kind == "error":
            self._on_refused(conn_id, frame)
        elif frame.kind == "event":
            instrument, kind = stream_kind(frame.stream)
            try:
                if kind == "trade":
                    self._on_trade(instrument, frame.data, recv_ns)
                elif kind == "depth":
                    self._on_depth(instrument, frame, conn_id)
                else:
                    self.stats.bad("unknown_stream")
            except (KeyError, TypeError, ValueError):
                self.stats.bad(f"malformed_{kind}")
        else:
            self.stats.bad("unknown_shape")

    def _on_refused(self, conn_id: str, frame) -> None:
        """A refused SUBSCRIBE: marked, and subscribed again on its connection after a pause."""
        self.stats.subscribe_errors += 1
        self.writer.marker(CONTROL_CHANNEL, conn_id, "subscribe_error", id=frame.request_id, error=frame.error)
        owner = self.pending.pop(frame.request_id, None) if frame.request_id is not None else None
        conn = self.connections.get(owner or conn_id)
        if conn is None:
            return
        retry = [(i, text) for i, text in conn.subscriptions if i == frame.request_id]
        if retry:
            again = [(next(self.request_ids), text) for _, text in retry]
            again = [(i, json.dumps({**json.loads(text), "id": i}, separators=(",", ":"))) for i, text in again]
            for i, _ in again:
                self.pending[i] = conn.conn_id
            conn.subscriptions.extend(again)
            asyncio.get_running_loop().call_later(self.config.backoff_base_s, conn.resubscribe, again)

    def _on_trade(self, instrument: str, data: dict, recv_ns: int) -> None:
        msg_id, payload = trade_record(data, instrument, recv_ns)
        self.stats.trades += 1
        self.stats.lagged(recv_ns, int(data.get("E") or data["T"]))
        if self.store is None:
            return
        if len(self.outbox) >= self.config.publish_buffer:  # NATS away for long: the landing files keep it
            self.stats.publish_dropped += 1
            return
        self.outbox.append((subject("trades", VENUE, instrument, self.config.subject_prefix), msg_id, payload))
        self.outbox_ready.set()

    def _on_depth(self, instrument: str, frame, conn_id: str) -> None:
        sync = self.books.get(instrument)
        if sync is None:
            self.stats.bad("unknown_instrument")
            return
        data = frame.data
        outcome = sync.on_event(int(data["U"]), int(data["u"]), data["b"], data["a"])
        if outcome == "gap":
            self.stats.gaps += 1
            expected, got = sync.last_gap
            self.writer.marker(frame.stream, conn_id, "gap", expected_first=expected, got_first=got)
        if sync.needs_snapshot and instrument not in self.snapshotting:
            self.snapshotting.add(instrument)
            task = asyncio.ensure_future(self._snapshot(instrument, frame.stream))
            self.snapshot_tasks.add(task)
            task.add_done_callback(self.snapshot_tasks.discard)

    async def _snapshot(self, instrument: str, channel: str) -> None:
        """Build the book from REST snapshots until one fits the buffered events (see DepthSync)."""
        sync, backoff = self.books[instrument], Backoff(self.config.backoff_base_s / 4, self.config.backoff_cap_s)
        rebuilt_after_gap = sync.last_gap is not None
        try:
            while sync.needs_snapshot:
                try:
                    body = await self.rest.depth_body(instrument, self.config.snapshot_limit)
                except Exception as error:  # noqa: BLE001  (a REST failure: try again later, counted)
                    self.stats.bad("snapshot_failed")
                    self.writer.marker(channel, "rest", "snapshot_failed", error=f"{type(error).__name__}: {error}")
                    await asyncio.sleep(backoff.next_delay())
                    continue
                recv_ns = time.time_ns()
                text = json.dumps(body, separators=(",", ":"))
                await asyncio.to_thread(self.writer.frame, f"{instrument.lower()}@depth_snapshot", "rest", text,
                                        recv_ns)
                outcome = sync.on_snapshot(int(body["lastUpdateId"]), body["bids"], body["asks"])
                if outcome == "stale":
                    self.stats.stale_snapshots += 1
                    await asyncio.sleep(backoff.next_delay())
                    continue
                if outcome == "gap":
                    self.stats.gaps += 1
                    expected, got = sync.last_gap
                    self.writer.marker(channel, "rest", "gap", expected_first=expected, got_first=got)
                    continue
                self.stats.snapshots += 1
                self.writer.marker(channel, "rest", "resync" if rebuilt_after_gap else "snapshot",
                                   last_update_id=int(body["lastUpdateId"]), update_id=sync.book.update_id)
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
            if await self._publish_batch():
                backoff.reset()
            else:
                await asyncio.sleep(backoff.next_delay())

    async def _publish_batch(self) -> bool:
        """Publish the oldest batch; it leaves the buffer only once JetStream acknowledged all of it."""
        batch = list(itertools.islice(self.outbox, self.config.publish_batch))
        try:
            result = await self.store.publish(batch)
        except Exception:  # noqa: BLE001  (NATS down, a timeout: the whole batch is published again)
            self.stats.publish_failures += 1
            return False
        for _ in batch:
            self.outbox.popleft()
        self.stats.published += result.stored
        self.stats.duplicates += result.duplicates
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
