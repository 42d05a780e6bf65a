"""The NATS -> ClickHouse path of live trades (issue #23): a durable JetStream pull consumer on
`md.trades.>` that inserts into ``trades_live`` (stores.clickhouse.live) and acknowledges only after
the insert succeeded.

- Batches are bounded by size (`batch_size` messages) and time (`max_wait_s` after the first
  message of a batch): at most that long between a trade reaching the stream and its INSERT.
- A batch whose INSERT fails stays unacknowledged and is inserted again (backed off) until it goes
  in; if that takes longer than `ack_wait_s` the server redelivers it meanwhile, which does no harm.
- Exactly once in the table although delivery is at least once: a consumer killed between its
  INSERT and its acks gets the batch redelivered after `ack_wait_s` and inserts it again; the
  table's ReplacingMergeTree key (venue, instrument, trade_id) and the reads' FINAL keep one row.
- A message that is not a trade is terminated (never redelivered) and counted with its reason.

Dagster-free, like the collector: `marketdata consume` / `marketdata collect --consume`, or
`TradesConsumer(...).run(stop)` in an event loop. The insert is a callable, so the caller owns the
ClickHouse client (one process holds an embedded engine's directory).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from nats.errors import TimeoutError as NatsTimeout
from nats.js import api

from marketdata_assets.ingest.live.connection import Backoff
from marketdata_assets.ingest.live.stats import Stats
from marketdata_assets.stores.clickhouse.live import trade_row
from marketdata_assets.stores.jetstream import JetStreamStore


@dataclass
class ConsumerConfig:
    stream: str = "MARKETDATA"
    subject_filter: str = "md.trades.>"
    durable: str = "trades-clickhouse"
    batch_size: int = 1000
    max_wait_s: float = 0.25
    idle_poll_s: float = 1.0  # a pull for the first message of a batch waits at most this (then stop is checked)
    ack_wait_s: float = 30.0
    retry_base_s: float = 0.25
    retry_cap_s: float = 10.0


@dataclass
class ConsumerStats:
    fetched: int = 0  # messages received (redeliveries included)
    redelivered: int = 0  # of them, delivered before (a crash or a failed insert)
    inserted: int = 0  # rows sent in successful INSERTs
    acked: int = 0
    batches: int = 0
    insert_failures: int = 0  # INSERTs refused (the batch stays unacked and is tried again)
    bad_messages: dict[str, int] = field(default_factory=dict)  # reason -> count (terminated)
    last_insert_ns: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    wait_until = Stats.wait_until  # the same wait on progress as the collector's counters


def consumer_config(config: ConsumerConfig) -> api.ConsumerConfig:
    return api.ConsumerConfig(durable_name=config.durable, ack_policy=api.AckPolicy.EXPLICIT,
                              deliver_policy=api.DeliverPolicy.ALL, filter_subject=config.subject_filter,
                              ack_wait=config.ack_wait_s, max_ack_pending=max(10_000, 4 * config.batch_size))


class TradesConsumer:
    """See the module doc. `insert(rows)` runs in a worker thread and raises when the INSERT fails."""

    def __init__(self, config: ConsumerConfig, store: JetStreamStore, insert: Callable[[Sequence[tuple]], int]):
        self.config, self.store, self.insert = config, store, insert
        self.stats = ConsumerStats()
        self.subscription = None

    async def subscribe(self) -> None:
        """Bind to the durable consumer (created, or updated to this config, by the server)."""
        await self.store.js.add_consumer(self.config.stream, consumer_config(self.config))
        self.subscription = await self.store.js.pull_subscribe(
            self.config.subject_filter, durable=self.config.durable, stream=self.config.stream)

    async def run(self, stop: asyncio.Event) -> None:
        """Fetch, insert, ack until `stop`; a batch being fetched when it is set is still stored and
        acknowledged (a pull waits at most `idle_poll_s`), so a clean stop leaves nothing pending."""
        if self.subscription is None:
            await self.subscribe()
        try:
            while not stop.is_set():
                messages = await self.fetch_batch(stop)
                if messages:
                    await self.store_batch(messages, stop)
        finally:
            await self.subscription.unsubscribe()

    async def fetch_batch(self, stop: asyncio.Event | None = None) -> list:
        """Up to `batch_size` messages: waits for the first until `stop` (pulling `idle_poll_s` at a
        time), then for more until the batch is full or `max_wait_s` has passed."""
        batch, deadline = [], None
        while len(batch) < self.config.batch_size:
            if deadline is None and stop is not None and stop.is_set():
                break
            timeout = self.config.idle_poll_s if deadline is None else deadline - time.monotonic()
            if timeout <= 0:
                break
            try:
                got = await self.subscription.fetch(self.config.batch_size - len(batch), timeout=timeout)
            except (NatsTimeout, asyncio.TimeoutError):
                if batch:
                    break
                continue
            batch += got
            if deadline is None and batch:
                deadline = time.monotonic() + self.config.max_wait_s
        return batch

    def decode(self, messages: list) -> tuple[list, list, list]:
        """(rows, their messages, messages that are not trades)."""
        rows, good, bad = [], [], []
        for msg in messages:
            self.stats.fetched += 1
            if msg.metadata.num_delivered > 1:
                self.stats.redelivered += 1
            try:
                rows.append(trade_row(json.loads(msg.data)))
                good.append(msg)
            except (ValueError, KeyError, TypeError) as error:
                reason = "not_json" if isinstance(error, json.JSONDecodeError) else f"bad_{type(error).__name__}"
                self.stats.bad_messages[reason] = self.stats.bad_messages.get(reason, 0) + 1
                bad.append(msg)
        return rows, good, bad

    async def store_batch(self, messages: list, stop: asyncio.Event) -> bool:
        """INSERT the batch, retried (backed off) until it succeeds or `stop`; ack only after it did."""
        rows, good, bad = self.decode(messages)
        for msg in bad:
            await msg.term()
        backoff = Backoff(self.config.retry_base_s, self.config.retry_cap_s)
        while True:
            try:
                await asyncio.to_thread(self.insert, rows)
                break
            except Exception:  # noqa: BLE001  (ClickHouse away or refusing: keep the batch unacked, retry)
                self.stats.insert_failures += 1
                self.stats.changed.set()
                if stop.is_set():
                    return False
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), backoff.next_delay())
        # acks the server confirms (double ack): `acked` is what the consumer no longer holds, so a stop
        # right after leaves nothing pending (a plain ack may still be in the server's queue then)
        # (an ack the server did not confirm in time comes back after ack_wait: inserted again, harmlessly)
        confirmed = await asyncio.gather(*(msg.ack_sync(timeout=self.config.ack_wait_s) for msg in good),
                                         return_exceptions=True)
        self.stats.inserted += len(rows)
        self.stats.acked += sum(not isinstance(result, BaseException) for result in confirmed)
        self.stats.batches += 1
        self.stats.last_insert_ns = time.time_ns()
        self.stats.changed.set()
        return True

    def counters(self) -> dict:
        return {k: v for k, v in vars(self.stats).items() if k != "changed"}


__all__ = ["ConsumerConfig", "ConsumerStats", "TradesConsumer", "consumer_config"]
