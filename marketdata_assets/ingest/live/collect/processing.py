"""The collector's processor: it takes the frame queue's batches, sheds the frames that waited too
long (shedding.py), decodes each frame once, lands the batch raw (batch_landing.py, in a worker
thread) and hands each frame to the part it concerns: the connections (slots.py), the books
(books.py), the trade batches and messages (publishing.py).
"""

from __future__ import annotations

import asyncio
import logging
import time

from marketdata_assets.ingest.live.collect.batch_landing import BatchLanding
from marketdata_assets.ingest.live.collect.batches import hand_on, sort_frames
from marketdata_assets.ingest.live.collect.books import Books
from marketdata_assets.ingest.live.collect.connection import FrameQueue
from marketdata_assets.ingest.live.collect.publishing import Publisher
from marketdata_assets.ingest.live.collect.shedding import OVERFLOW, TRADE_LAG_FACTOR, shed
from marketdata_assets.ingest.live.collect.slots import ConnectionSlots
from marketdata_assets.ingest.live.stats import Stats
from marketdata_assets.sources.stream import BOOKS, MALFORMED, TRADES, Frame, StreamProtocol

log = logging.getLogger(__name__)
TRADE_LOSS_LOG_S = 10.0  # a collector dropping trade frames says so at most this often


class Processor:
    """One collector's processor over its queue and parts."""

    def __init__(
        self,
        protocol: StreamProtocol,
        config,
        stats: Stats,
        queue: FrameQueue,
        landing: BatchLanding,
        conns: ConnectionSlots,
        books: Books,
        publisher: Publisher,
    ):
        self.protocol, self.config, self.stats, self.queue, self.landing = (
            protocol,
            config,
            stats,
            queue,
            landing,
        )
        self.conns, self.books, self.publisher = conns, books, publisher
        self.connections = conns.connections  # by id (the same dict)
        self.add_trade, self.add_messages, self.on_book = (
            publisher.add_trade,
            publisher.add_messages,
            books.on_book,
        )
        self.landing_ns: int | None = None  # receive time of the oldest item of the batch being landed
        # the venue's compiled reader of its documented frames (sources/_reader.pyx), if it has one
        self.frame_reader = getattr(protocol, "frame_reader", None)
        self._trade_loss_logged, self._unlogged_trades = -TRADE_LOSS_LOG_S, 0  # `_trades_dropped`'s note

    def unlanded_ns(self) -> int | None:
        """The receive time of the oldest item read off the sockets and not landed yet (the batch being
        landed, else the queue's first; None: nothing waits): the landing's hours close after it."""
        items = self.queue.items
        return self.landing_ns if self.landing_ns is not None else items[0][2] if items else None

    async def process_forever(self) -> None:
        """Batches of `batch_size` off the queue; frames that waited more than `max_lag_s` are dropped
        whole and marked (shedding.py)."""
        queue, config, stats, publisher = self.queue, self.config, self.stats, self.publisher
        lag_ns, behind_ns = int(config.max_lag_s * 1e9), int(config.trade_batch_max_s * 1e9)
        while True:
            batch = await queue.take(config.batch_size)
            try:
                now_ns = time.time_ns()
                publisher.behind = batch[0][2] < now_ns - behind_ns
                if batch[0][2] < now_ns - lag_ns:  # its oldest waited too long: the processor is behind
                    kept, dropped = shed(
                        batch,
                        now_ns - lag_ns,
                        now_ns,
                        self.protocol.data_prefix,
                        self.protocol.trade_marks,
                        now_ns - TRADE_LAG_FACTOR * lag_ns,
                    )
                    stats.overflow_frames += dropped
                    await self.process(kept)
                else:
                    await self.process(batch)
            except Exception:
                stats.lost_frames += len(batch)  # the processor fails with them (`_fail`)
                raise
            finally:
                queue.task_done(len(batch))
                stats.changed.set()

    async def process(self, batch: list[tuple]) -> None:
        """Land the batch raw (in a worker thread), then handle what it means (batches.py: each frame
        decoded once, then handed on)."""
        landing, publisher = self.landing, self.publisher
        landed, publisher.gap_markers, parsed = publisher.gap_markers, [], []
        marked = bool(landed)
        reader = self.frame_reader
        marked |= sort_frames(
            batch, self.protocol.decode, landing.marker_channels, self.stats.bad, landed, parsed, reader
        )
        self.landing_ns = batch[0][2] if batch else None
        try:
            await asyncio.to_thread(landing.land_frames if not marked else landing.land, landed)
        finally:
            self.landing_ns = None
        hand_on(parsed, self, reader)

    def _on_marker(self, conn_id: str, marker: tuple[str, dict]) -> None:
        self.stats.marked(marker[0])
        if marker[0] == OVERFLOW or marker[1].get("overflow_dropped"):
            self.publisher.dropped()  # the trades read before the drop sealed: the ids after it are checked
            self._trades_dropped(conn_id, marker[1].get("trades", marker[1].get("overflow_trades", 0)))
        if marker[0] == "disconnect":
            streams = self.conns.conn_streams.pop(conn_id, None) or []
            self.landing.forget(conn_id)
            if marker[1].get("reason") not in ("rollover", "stop", "unsubscribed"):
                self.books.reset(conn_id, streams)

    def _trades_dropped(self, conn_id: str, count: int) -> None:
        """Trade frames dropped (the machine could not keep up): counted, and said at once in the log,
        at most every `TRADE_LOSS_LOG_S` (their ids are recorded in `gap` markers and refilled from the
        venue by the hourly load)."""
        if not count:
            return
        stats, now = self.stats, time.monotonic()
        stats.overflow_trades += count
        self._unlogged_trades += count
        if now - self._trade_loss_logged >= TRADE_LOSS_LOG_S:
            log.warning(
                "%s: %d trade frame(s) dropped since the last note (%d in all; connection %s): the collector "
                "is behind; their ids are recorded as gaps and refilled from the venue by the hourly load",
                self.protocol.venue,
                self._unlogged_trades,
                stats.overflow_trades,
                conn_id,
            )
            self._trade_loss_logged, self._unlogged_trades = now, 0

    def _on_frame(self, conn_id: str, recv_ns: int, frame: Frame) -> None:
        """A frame that is not plain data (`process` hands those to `_on_event`): what it asks of its
        connection answered (slots.py `Requests`), an event in it handled."""
        self.conns.requests.answer(conn_id, frame)
        if frame.kind == "event":
            self._on_event(conn_id, recv_ns, frame)
        elif frame.kind not in ("ack", "error", "notice", "control"):
            self.stats.bad("unknown_shape")

    def _on_event(self, conn_id: str, recv_ns: int, frame: Frame) -> None:
        conn = self.connections.get(conn_id)
        if conn is not None and conn.unseen:
            conn.saw(frame.channel)  # the data flows: a rollover may close its predecessor
        dataset = frame.dataset
        if dataset == TRADES:  # nearly every frame: kept for its instrument's next batch
            self.add_trade(frame, recv_ns, conn_id)
            return
        try:
            if dataset == BOOKS:
                self.on_book(frame, conn_id, recv_ns)
            elif dataset is not None:
                self.add_messages(frame, recv_ns)
            else:
                self.stats.bad("unknown_stream")
        except MALFORMED as error:
            self.stats.refuse(dataset, frame.instrument, error, self.protocol.venue)


__all__ = ["Processor"]
