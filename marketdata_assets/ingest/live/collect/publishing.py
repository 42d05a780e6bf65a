"""What a collector sends on: each instrument's trade frames batched and read at once when the batch is
sealed, the other datasets' messages, a bounded buffer of them (the outbox) published to JetStream in
batches, and the optional latest-state cache fed and flushed.

`LiveCollector` (collector.py) owns one `Publisher`; why trades are batched and how the seal is timed:
docs/live-capture.md, "The collector".
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque

from marketdata_assets.core.http import Backoff
from marketdata_assets.datasets.trade_tape import TradeTape
from marketdata_assets.ingest.live.collect.book_outputs import LatestState
from marketdata_assets.ingest.live.collect.shedding import OVERFLOW, TradeGaps
from marketdata_assets.ingest.live.stats import Stats
from marketdata_assets.sources.stream import TRADES, Frame, StreamProtocol
from marketdata_assets.stores.jetstream import JetStreamStore, subject


class Publisher:
    """Trade batches, messages and the outbox of one collector (`store` None: nothing is published;
    the latest-state cache, if any, is fed directly)."""

    def __init__(
        self,
        protocol: StreamProtocol,
        config,
        stats: Stats,
        store: JetStreamStore | None,
        latest: LatestState | None,
    ):
        self.protocol, self.config, self.stats, self.store, self.latest = (
            protocol,
            config,
            stats,
            store,
            latest,
        )
        self.outbox: deque[tuple[str, str, bytes, int]] = deque()  # (subject, msg id, payload, records)
        self.buffered = 0  # records in the outbox (trade frames not yet sealed are not records yet)
        self.publish_buffer = config.publish_buffer  # at most so many (`_room`)
        self.outbox_ready = asyncio.Event()
        self.publish_lock = asyncio.Lock()  # held while JetStream has a batch: a stop waits, never cuts it
        # instrument -> its trades since the last seal (datasets/trade_tape.py: their frames or, read by the
        # venue's compiled reader, their records; the first one's connection and sealing tick)
        self.trade_frames: dict[str, TradeTape] = {}
        self.sealing: asyncio.TimerHandle | None = None
        self.seal_ticks = 0  # sealing ticks so far (`_seal_due`)
        self.max_ticks = max(1, round(config.trade_batch_max_s / config.trade_batch_s))  # a sparse batch's
        self.behind_ticks = max(self.max_ticks, round(config.trade_batch_behind_s / config.trade_batch_s))
        self.behind = False  # the processor's last batch had waited longer than trade_batch_max_s
        self.subjects: dict[tuple[str, str], str] = {}  # (dataset, instrument) -> its subject
        self.trade_gaps = TradeGaps()  # the trade ids lost with dropped frames (shedding.py)
        self.gap_markers: list[tuple] = []  # their `gap` markers, landed with the next batch (`_land`'s)

    def subject(self, dataset: str, instrument: str) -> str:
        where = self.subjects.get((dataset, instrument))
        if where is None:
            where = self.subjects[dataset, instrument] = subject(
                dataset, self.protocol.venue, instrument, self.config.subject_prefix
            )
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

    # ---- trades --------------------------------------------------------------------------------

    def add_trade(self, frame: Frame, recv_ns: int, conn_id: str) -> None:
        """A trade frame kept with its receive time for its instrument's next batch (read all at once
        when it is sealed)."""
        tape = self.trade_frames.get(frame.instrument)
        if tape is None:
            tape = self.open_tape(frame.instrument, conn_id)
        tape.add(frame, recv_ns)

    def open_tape(self, instrument: str, conn_id: str) -> TradeTape:
        """The tape of `instrument`'s next batch, its first trade come on `conn_id`; the sealing tick
        set if none is."""
        tape = self.trade_frames[instrument] = TradeTape(
            self.protocol.venue, instrument, conn_id, self.seal_ticks, self.protocol.read_trades
        )
        if self.sealing is None:
            self.sealing = asyncio.get_running_loop().call_later(self.config.trade_batch_s, self._seal_due)
        return tape

    def _seal_due(self) -> None:
        """The sealing tick: the instruments holding `trade_batch_frames` trade frames, or whose oldest
        waited `trade_batch_max_s` in the collector, sealed (`_seal`); the tick again while others wait
        (their wait counted in ticks from their first frame's processing, not its receive time: a
        backlog's frames are all old, and batching is what lets the collector work a backlog off). At a
        universe most instruments trade a few times a second: a message each 50 ms would carry one
        trade, and its message work (the batch, its id, the publish, its ack) would cost more than the
        trade's. While the processor is behind, the wait is `trade_batch_behind_s` and the size
        `trade_batch_behind_frames`: its frames are late already, and fuller messages (fewer publishes and
        acks) work the backlog off sooner."""
        self.sealing = None
        self.seal_ticks += 1
        config, pending = self.config, self.trade_frames
        enough = config.trade_batch_behind_frames if self.behind else config.trade_batch_frames
        started = self.seal_ticks - (self.behind_ticks if self.behind else self.max_ticks)
        due = {name: tape for name, tape in pending.items() if len(tape) >= enough or tape.tick <= started}
        if len(due) == len(pending):
            self.trade_frames = {}
        else:
            for name in due:
                del pending[name]
            self.sealing = asyncio.get_running_loop().call_later(self.config.trade_batch_s, self._seal_due)
        self._seal(due)

    def seal_trades(self) -> None:
        """Every instrument's trade frames sealed now (before a drop is noted, at a stop)."""
        if self.sealing is not None:
            self.sealing.cancel()
            self.sealing = None
        pending, self.trade_frames = self.trade_frames, {}
        self._seal(pending)

    def dropped(self) -> None:
        """Frames were dropped: the trades read before are sealed, each instrument's next trade checked
        against its last one (shedding.py `TradeGaps`)."""
        self.seal_trades()
        self.trade_gaps.dropped()

    def _seal(self, pending: dict[str, TradeTape]) -> None:
        """Instruments' trade frames read into their records (the venue's `read_trades`: the one parse),
        counted, and sealed into one message each in the outbox (datasets/trade_tape.py `trade_batch`: a
        JSON array, an id made from its content); with no sink, to the latest-state cache."""
        for instrument, tape in pending.items():
            count = self._read_trades(instrument, tape)
            if self.store is None:
                if self.latest is not None and count:  # no sink to publish to: the cache is fed here
                    self.latest.offer(((self.subject(TRADES, instrument), *tape.batch(count - 1, count)),))
                continue
            count = self._room(count)
            if count:
                self.outbox.append((self.subject(TRADES, instrument), *tape.batch(0, count), count))
                self.outbox_ready.set()

    def _read_trades(self, instrument: str, tape: TradeTape) -> int:
        """One instrument's trades read into their records and counted (trades, lag; a frame the venue
        refuses as `malformed_trades`); after dropped frames, the trade ids they held (`_trade_gap`)."""
        bad: list = []
        count, stats = tape.read(bad), self.stats
        for frame, error in bad:
            stats.refuse(TRADES, frame.instrument, error, self.protocol.venue)
        if count:
            gaps = self.trade_gaps
            if gaps.watch:  # frames were dropped: did this instrument lose trades?
                self._trade_gap(instrument, tape.first_channel, tape.first_seq, tape.conn_id, tape.first_recv)
            gaps.last[instrument] = tape.last_seq
            stats.messages[TRADES] = stats.messages.get(TRADES, 0) + count
            stats.trades += count
            stats.lagged_tape(tape)
        return count

    def _trade_gap(
        self, instrument: str, channel: str, first_seq: int | None, conn_id: str, recv_ns: int
    ) -> None:
        """The trade ids an instrument lost with dropped frames, as a `gap` marker of its trade channel
        (landed by the worker thread with the next batch: the loop never waits on the writer's lock)."""
        lost = self.trade_gaps.after(instrument, first_seq)
        if lost is not None:
            self.stats.trade_gaps += 1
            details = {
                "cause": OVERFLOW,
                "first_id": lost[0],
                "last_id": lost[1],
                "trades": lost[1] - lost[0] + 1,
            }
            self.gap_markers.append((None, conn_id, recv_ns, ("gap", details), [channel]))

    # ---- other datasets ------------------------------------------------------------------------

    def add_messages(self, frame: Frame, recv_ns: int) -> None:
        """An event's messages (tickers, bars, ...: `protocol.messages`) to the publish buffer, each to
        `md.<dataset>.<venue>.<instrument>` with its `Nats-Msg-Id`."""
        stats = self.stats
        counts = stats.messages
        for message in self.protocol.messages(frame, recv_ns):
            counts[message.dataset] = counts.get(message.dataset, 0) + 1
            stats.trades += message.dataset == TRADES
            if message.event_ms is not None:
                stats.lagged(recv_ns, message.event_ms)
            where = self.subject(message.dataset, message.instrument)
            if self.store is None:
                if self.latest is not None:  # no sink to publish to: the cache is fed here
                    self.latest.offer(((where, message.msg_id, message.payload),))
                continue
            if self._room(1):
                self.outbox.append((where, message.msg_id, message.payload, 1))
                self.outbox_ready.set()

    # ---- publishing ----------------------------------------------------------------------------

    async def publish_forever(self) -> None:
        backoff = Backoff(self.config.backoff_base_s / 4, self.config.backoff_cap_s)
        while True:
            if not self.outbox:
                self.outbox_ready.clear()
                await self.outbox_ready.wait()
            async with self.publish_lock:
                published = await self.publish_batch()
            if published:
                backoff.reset()
            else:
                await asyncio.sleep(backoff.next_delay())

    async def publish_batch(self) -> bool:
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

    async def drain(self, attempts: int = 5) -> None:
        """What the outbox holds, published at a stop (the publisher is stopped: nothing else takes from
        it)."""
        for _ in range(attempts):
            while self.outbox and await self.publish_batch():
                pass
            if not self.outbox:
                return

    async def latest_forever(self) -> None:
        """Write the latest-state cache every `latest_flush_s`; a failure is counted and tried again
        at the next turn (Redis away never holds capture back)."""
        while True:
            await asyncio.sleep(self.config.latest_flush_s)
            await self.flush_latest()

    async def flush_latest(self) -> None:
        try:
            await self.latest.flush()
        except Exception:  # noqa: BLE001  (a cache's failure of any kind: counted, capture goes on)
            self.latest.failures += 1
        self.stats.latest_writes, self.stats.latest_failures = self.latest.writes, self.latest.failures
        self.stats.changed.set()


__all__ = ["Publisher"]
