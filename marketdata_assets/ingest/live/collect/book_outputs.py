"""What the live collector makes of its books besides keeping them: the parts of `Books` (books.py)
that run on a clock rather than on frames, and the latest-state cache's protocol.

- Top-N book snapshots (`book_snapshot_s`, default 1 s; `book_depth`, default 20): every synced book
  that moved since its last one is landed as the collector's own record in `<instrument>@book_top`
  (whatever the sinks: the hourly `live_books` load stores these) and goes to JetStream as
  `md.books.<venue>.<instrument>`, payload
  `{venue, instrument, update_id, depth, bids, asks, event_ms, recv_ns}` (levels as the venue's
  strings), `Nats-Msg-Id` `<venue>.<instrument>.<update id>` (a repeat, from a restart or a second
  collector, is dropped by the server). A book awaiting its resync publishes nothing (counted). A
  failed batch is not kept: the next one is fresher (counted).
- Book-gap repair: an hour (`repair_period_s`) in which a book had a gap gets a REST snapshot at
  the next hour boundary (the venue's `repair_source`: Binance `/api/v3/depth`, OKX
  `/api/v5/market/books`, Deribit `public/get_order_book`), landed raw in `<instrument>@depth_snapshot`
  after a `repair` marker naming the hours it repairs, so each hour's book can be rebuilt from the
  landing files. A failed one is marked and tried again at the next boundary.
- The latest-state cache (stores/redis_cache.py, optional): what is published is offered to it, and
  it is written every `latest_flush_s` (publishing.py); its failures are counted and never hold
  capture back.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from typing import Protocol

import orjson

from marketdata_assets.core.http import Backoff
from marketdata_assets.sources.stream import BOOKS, book_top_channel
from marketdata_assets.stores.jetstream import subject


class LatestState(Protocol):
    """A latest-state cache (stores/redis_cache.py `RedisLatestCache`): `offer` never blocks nor raises."""

    failures: int
    writes: int

    def offer(self, messages: list[tuple[str, str, bytes]]) -> None: ...

    async def flush(self) -> bool: ...


class BookOutputs:
    """Mixed into `Books` (books.py), whose attributes these use: config, protocol, by_instrument, book_times,
    snapshot_ids, snapshot_store, latest, repair, gap_periods, publish_lock, writer, stats."""

    def _gap_period(self, instrument: str, channel: str) -> None:
        """Remember the hour (`repair_period_s`) in which a book had a gap."""
        _, periods = self.gap_periods.setdefault(instrument, (channel, set()))
        periods.add(int(time.time() // self.config.repair_period_s))

    async def repair_forever(self) -> None:
        """At every hour boundary, a REST snapshot for each book that had a gap in an hour now ended."""
        period = self.config.repair_period_s
        while True:
            await asyncio.sleep(period - time.time() % period + 0.001)
            current = int(time.time() // period)
            for instrument, (channel, periods) in list(self.gap_periods.items()):
                due = sorted(p for p in periods if p < current)
                if due and await self._repair_snapshot(instrument, channel, due):
                    periods.difference_update(due)

    async def _repair_snapshot(self, instrument: str, channel: str, due: list[int]) -> bool:
        """Land a REST snapshot raw in `<instrument>@depth_snapshot`, after a `repair` marker naming the
        gap hours it repairs (so each hour's book can be rebuilt from the files). A failure is marked
        and counted; the next boundary tries again."""
        period = self.config.repair_period_s
        hours = [datetime.fromtimestamp(p * period, UTC).isoformat() for p in due]
        target = self.protocol.snapshot_channel(instrument)
        backoff = Backoff(self.config.backoff_base_s, self.config.backoff_cap_s)
        for attempt in range(3):
            try:
                body = await self.repair.fetch(instrument, self.config.repair_depth)
                break
            except Exception as error:  # noqa: BLE001  (a REST failure: tried again, then at the next boundary)
                if attempt == 2:
                    self.stats.repair_failures += 1
                    self.writer.marker(
                        target,
                        "rest",
                        "repair_failed",
                        hours=hours,
                        book_channel=channel,
                        error=f"{type(error).__name__}: {error}",
                    )
                    return False
                await asyncio.sleep(backoff.next_delay())
        text = json.dumps(body, separators=(",", ":"))

        def land() -> None:
            self.writer.marker(target, "rest", "repair", hours=hours, book_channel=channel)
            self.writer.frame(target, "rest", text, time.time_ns())

        await asyncio.to_thread(land)
        self.stats.repair_snapshots += 1
        self.stats.changed.set()
        return True

    async def book_snapshots_forever(self) -> None:
        """Every `book_snapshot_s`, the top N of every synced book that moved since its last one."""
        while True:
            await asyncio.sleep(self.config.book_snapshot_s)
            await self.publish_book_snapshots()

    def book_snapshot(self, instrument: str) -> tuple[int, tuple[str, str, bytes]] | None:
        """(update id, (subject, msg id, payload)) of a book's top-N snapshot; None while it awaits a resync
        (counted)
        or when it has not moved since the last one."""
        sync = self.by_instrument[instrument]
        if sync.needs_snapshot:
            self.stats.book_snapshots_skipped += 1
            return None
        update_id = sync.book.update_id
        if update_id is None or self.snapshot_ids.get(instrument) == update_id:
            return None
        try:
            bids, asks = sync.book.top(self.config.book_depth)
        except ValueError as error:  # a deferred level's size is no number: the book is rebuilt
            self._book_unreadable(instrument, error)
            return None
        recv_ns, exchange_ms = self.book_times.get(instrument, (0, None))
        venue = self.protocol.venue
        payload = {
            "venue": venue,
            "instrument": instrument,
            "update_id": update_id,
            "depth": self.config.book_depth,
            "bids": bids,  # (price, size) pairs: JSON arrays
            "asks": asks,
            "event_ms": exchange_ms,
            "recv_ns": recv_ns,
        }
        return update_id, (
            subject(BOOKS, venue, instrument, self.config.subject_prefix),
            f"{venue}.{instrument}.{update_id}",
            orjson.dumps(payload),
        )

    async def publish_book_snapshots(self) -> None:
        """One batch of top-N snapshots to JetStream (`md.books.<venue>.<instrument>`, Nats-Msg-Id
        `<venue>.<instrument>.<update id>`: a repeat is deduplicated). A failed batch is not kept: the
        next one is fresher (counted)."""
        if BOOKS not in getattr(self.protocol, "datasets", (BOOKS,)):  # books not collected: no snapshots
            return
        snapshots = {
            name: snap for name in list(self.by_instrument) if (snap := self.book_snapshot(name)) is not None
        }
        if not snapshots:
            return
        await asyncio.to_thread(self._land_book_tops, snapshots)
        if self.latest is not None:
            self.latest.offer([message for _, message in snapshots.values()])
        if self.snapshot_store is None:  # the cache alone
            self.snapshot_ids.update((name, update_id) for name, (update_id, _) in snapshots.items())
            return
        try:
            async with self.publish_lock:
                result = await self.snapshot_store.publish([message for _, message in snapshots.values()])
        except Exception:  # noqa: BLE001  (NATS away: counted, the next tick publishes fresher books)
            self.stats.book_snapshot_failures += 1
            return
        for instrument, (update_id, _) in snapshots.items():
            self.snapshot_ids[instrument] = update_id
        self.stats.book_snapshots += result.stored
        self.stats.book_snapshot_repeats += result.duplicates
        self.stats.changed.set()

    def _land_book_tops(self, snapshots: dict[str, tuple[int, tuple[str, str, bytes]]]) -> None:
        """Each snapshot's payload in its book's `@book_top` channel (connection id `collector`: not
        a venue's frame), stamped with the time it was taken."""
        now = time.time_ns()
        for instrument, (_, (_, _, payload)) in snapshots.items():
            self.writer.frame(book_top_channel(self.protocol, instrument), "collector", payload.decode(), now)
        self.stats.book_tops_landed += len(snapshots)
