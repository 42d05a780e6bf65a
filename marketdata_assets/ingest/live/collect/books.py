"""A collector's order books: each instrument's book kept in sync from its diffs (the venue's
`new_book`: its sequence and checksum rules), started and rebuilt from REST snapshots or a
resubscription, every gap and rebuild marked in the book's channel; reset when the connection that
carried it is lost.

`LiveCollector` (collector.py) owns one `Books`; their top-N snapshots and gap-hour repairs are
`BookOutputs` (book_outputs.py). Rules and figures: docs/live-capture.md, "The collector" (its books).
"""

from __future__ import annotations

import asyncio
import json
import time

from marketdata_assets.core.http import Backoff
from marketdata_assets.ingest.live.collect.book_outputs import BookOutputs, LatestState
from marketdata_assets.ingest.live.collect.slots import ConnectionSlots, Setup
from marketdata_assets.sources.stream import Frame
from marketdata_assets.stores.jetstream import JetStreamStore


class Books(BookOutputs):
    """The books of a collector's instruments (`by_instrument`: instrument -> the venue's book sync)."""

    def __init__(
        self,
        setup: Setup,
        slots: ConnectionSlots,
        instruments: list[str],
        publish_lock: asyncio.Lock,
        snapshot_store: JetStreamStore | None,
        latest: LatestState | None,
    ):
        self.protocol, self.config, self.writer, self.stats = setup
        self.slots, protocol, config = slots, setup.protocol, setup.config
        self.publish_lock, self.snapshot_store, self.latest = publish_lock, snapshot_store, latest
        self.by_instrument = {name: protocol.new_book(name) for name in instruments}
        self.retired: set[str] = set()  # instruments unsubscribed (their frames still in flight are counted)
        self.resyncing: set[str] = set()  # books rebuilt after a gap (marked `resync`, not `snapshot`)
        self.snapshotting: set[str] = set()
        self.snapshot_tasks: set[asyncio.Task] = set()
        self.rest = protocol.snapshot_source(config.rest_url) if protocol.rest_snapshots else None
        self.repair = protocol.repair_source(config.rest_url) if config.rest_url else None
        self.gap_periods: dict[
            str, tuple[str, set[int]]
        ] = {}  # instrument -> (book channel, periods with a gap)
        self.book_times: dict[
            str, tuple[int, int | None]
        ] = {}  # instrument -> (recv ns, exchange ms) of its book
        self.snapshot_ids: dict[str, int] = {}  # instrument -> update id of its last published top-N snapshot

    def change(self, new: list[str], gone: list[str]) -> None:
        """The universe changed: books for the new instruments, the gone ones' dropped (their frames
        still in flight are counted, not read)."""
        for name in gone:
            self.by_instrument.pop(name, None)
            self.book_times.pop(name, None)
            self.snapshot_ids.pop(name, None)
            self.retired.add(name)
        for name in new:
            self.by_instrument[name] = self.protocol.new_book(name)
            self.retired.discard(name)

    async def close(self) -> None:
        for client in (self.rest, self.repair):
            if client is not None:
                await client.aclose()

    def on_book(self, frame: Frame, conn_id: str, recv_ns: int = 0) -> None:
        instrument = frame.instrument
        sync = self.by_instrument.get(instrument)
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

    def reset(self, conn_id: str, streams: list[str]) -> None:
        """A connection lost (not rolled over): the books it carried are dropped, so each is rebuilt from
        a fresh snapshot (the reconnect's subscribe sends one; Binance: a REST snapshot), never continued
        across the outage; a `gap` marker (cause `disconnect`) says so, and the hour gets its repair
        snapshot like any gap. A book another open connection still carries is kept."""
        carried = self.slots.carried_elsewhere(conn_id)
        for instrument, sync in list(self.by_instrument.items()):
            channel = self._book_channel(instrument, streams)
            if channel is None or channel in carried or sync.needs_snapshot:
                continue
            self.by_instrument[instrument] = self.protocol.new_book(instrument)
            self.resyncing.add(instrument)
            self.stats.book_resets += 1
            self.writer.marker(
                channel, conn_id, "gap", cause="disconnect", last_update_id=sync.book.update_id
            )
            self._gap_period(instrument, channel)
            self._rest_snapshot(instrument, channel)

    def _book_prefix(self, instrument: str) -> str:
        """How the venue's book channels of an instrument begin (Binance: `btcusdt@depth`)."""
        return self.protocol.book_channel_format.format(
            instrument.lower() if self.protocol.lower_channels else instrument
        )

    def _book_channel(self, instrument: str, streams: list[str]) -> str | None:
        prefix = self._book_prefix(instrument)
        return next((c for c in streams if c.startswith(prefix)), None)

    def _book_unreadable(self, instrument: str, error: ValueError) -> None:
        """A book whose deferred levels hold a size that is no number (`OrderBook.settle`): counted as a
        malformed book and rebuilt from a fresh snapshot, as after a gap (cause `malformed`)."""
        self.stats.refuse("books", instrument, error, self.protocol.venue)
        conn_id, channel = next(
            (
                (conn, channel)
                for conn, streams in self.slots.conn_streams.items()
                if (channel := self._book_channel(instrument, streams))
            ),
            ("collector", None),
        )
        channel = channel or self._book_prefix(instrument)
        self.by_instrument[instrument] = self.protocol.new_book(instrument)
        self._on_gap(instrument, channel, conn_id, "malformed", {"error": str(error)})
        self._rest_snapshot(instrument, channel)

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
        details = {
            "cause": {"mismatch": "checksum", "malformed": "malformed"}.get(outcome, "sequence"),
            **details,
        }
        self.writer.marker(channel, conn_id, "gap", **details)
        self._gap_period(instrument, channel)
        if self.rest is not None:
            return
        ids = self.slots.requests.resubscribe(conn_id, channel)
        if ids is not None:
            self.stats.resubscribes += 1
            self.writer.marker(channel, conn_id, "resubscribe", ids=ids)

    def _on_rebuilt(self, instrument: str, channel: str, conn_id: str, sync) -> None:
        self.stats.snapshots += 1
        kind = "resync" if instrument in self.resyncing else "snapshot"
        self.resyncing.discard(instrument)
        self.writer.marker(channel, conn_id, kind, update_id=sync.book.update_id)

    async def _snapshot(self, instrument: str, channel: str) -> None:
        """Build the book from REST snapshots until one fits the buffered events (see DepthSync)."""
        sync, backoff = (
            self.by_instrument[instrument],
            Backoff(self.config.backoff_base_s / 4, self.config.backoff_cap_s),
        )
        try:
            while sync.needs_snapshot:
                try:
                    body = await self.rest.fetch(instrument, self.config.snapshot_limit)
                except Exception as error:  # noqa: BLE001  (a REST failure: try again later, counted)
                    self.stats.bad("snapshot_failed")
                    self.writer.marker(
                        channel, "rest", "snapshot_failed", error=f"{type(error).__name__}: {error}"
                    )
                    await asyncio.sleep(backoff.next_delay())
                    continue
                text = json.dumps(body, separators=(",", ":"))
                await asyncio.to_thread(
                    self.writer.frame,
                    self.protocol.snapshot_channel(instrument),
                    "rest",
                    text,
                    time.time_ns(),
                )
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


__all__ = ["Books"]
