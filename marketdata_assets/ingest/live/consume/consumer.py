"""The NATS -> ClickHouse path of live trades: a durable JetStream pull consumer on
`md.trades.>` that inserts into ``trades_live`` (stores.clickhouse.live) and acknowledges only after
the insert succeeded. Dagster-free: `marketdata consume` / `marketdata collect --consume`.

Batches, retries, exactly once in the table, pulls and acks, figures: docs/live-capture.md, "The
NATS → ClickHouse consumer, `marketdata collect`, and the collector's endpoints" and its Bench section.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import msgspec
import orjson
from nats.js import api

from marketdata_assets.core.http import Backoff
from marketdata_assets.ingest.live.stats import Stats
from marketdata_assets.stores.clickhouse.live import trade_rows
from marketdata_assets.stores.jetstream import JetStreamStore, PullBatches


@dataclass
class ConsumerConfig:
    stream: str = "MARKETDATA"
    subject_filter: str = "md.trades.>"
    durable: str = "trades-clickhouse"
    batch_size: int = 1000
    max_wait_s: float = 0.25
    idle_poll_s: float = (
        1.0  # a pull for the first message of a batch waits at most this (then stop is checked)
    )
    ack_wait_s: float = 30.0
    retry_base_s: float = 0.25
    retry_cap_s: float = 10.0


@dataclass
class ConsumerStats:
    fetched: int = 0  # messages received (redeliveries included)
    redelivered: int = 0  # of them, delivered before (a crash or a failed insert)
    inserted: int = 0  # rows sent in successful INSERTs
    acked: int = 0  # trades whose messages were acknowledged (after their INSERT)
    acked_messages: int = 0  # those messages (each a batch of one instrument's trades)
    batches: int = 0
    insert_failures: int = 0  # INSERTs refused (the batch stays unacked and is tried again)
    bad_messages: dict[str, int] = field(default_factory=dict)  # reason -> count (terminated)
    last_insert_ns: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    wait_until = Stats.wait_until  # the same wait on progress as the collector's counters


def consumer_config(config: ConsumerConfig) -> api.ConsumerConfig:
    return api.ConsumerConfig(
        durable_name=config.durable,
        ack_policy=api.AckPolicy.EXPLICIT,
        deliver_policy=api.DeliverPolicy.ALL,
        filter_subject=config.subject_filter,
        ack_wait=config.ack_wait_s,
        max_ack_pending=max(10_000, 4 * config.batch_size),
    )


class TradesConsumer:
    """See the module doc. `insert(rows)` runs in a worker thread and raises when the INSERT fails."""

    def __init__(
        self, config: ConsumerConfig, store: JetStreamStore, insert: Callable[[Sequence[tuple]], int]
    ):
        self.config, self.store, self.insert = config, store, insert
        self.stats = ConsumerStats()
        self.pull: PullBatches | None = None

    async def subscribe(self) -> None:
        """Bind to the durable consumer (created, or updated to this config, by the server)."""
        await self.store.js.add_consumer(self.config.stream, consumer_config(self.config))
        self.pull = await PullBatches(self.store, self.config.stream, self.config.durable).start()

    async def run(self, stop: asyncio.Event) -> None:
        """Fetch, insert, ack until `stop`, the next batch fetched while the last one is inserted and
        acknowledged (one INSERT at a time, in order: the next batch's wait for its messages overlaps
        this one's INSERT instead of following it); a batch being fetched when `stop` is set is still
        stored and acknowledged (a pull request lives `idle_poll_s` at most; what it delivers after the
        last batch is given back, `PullBatches.stop`), so a clean stop leaves nothing pending."""
        if self.pull is None:
            await self.subscribe()
        storing: asyncio.Task | None = None
        try:
            while not stop.is_set():
                messages = await self.fetch_batch(stop)
                if storing is not None:
                    await storing
                    storing = None
                if messages:
                    storing = asyncio.create_task(self.store_batch(messages, stop))
        finally:
            if storing is not None:
                await storing
            await self.pull.stop()

    async def fetch_batch(self, stop: asyncio.Event | None = None) -> list:
        """Up to `batch_size` messages: waits for the first until `stop` (`idle_poll_s` at a time), then
        for more until the batch is full or `max_wait_s` has passed."""
        while True:
            batch = await self.pull.batch(
                self.config.batch_size, self.config.idle_poll_s, self.config.max_wait_s
            )
            if batch or stop is None or stop.is_set():
                return batch

    def decode(self, messages: list) -> tuple[list, list, list]:
        """(rows, their messages, messages that are not trades)."""
        rows, good, bad = [], [], []
        for msg in messages:
            self.stats.fetched += 1
            if msg.metadata.num_delivered > 1:
                self.stats.redelivered += 1
            try:
                rows.extend(trade_rows(msg.data))
                good.append(msg)
            except (ValueError, KeyError, TypeError) as error:
                malformed = isinstance(error, orjson.JSONDecodeError) or (
                    isinstance(error, msgspec.DecodeError) and not isinstance(error, msgspec.ValidationError)
                )  # JSON it is not; a ValidationError names the field (`... - at `$[0].price``)
                reason = "not_json" if malformed else f"bad_{type(error).__name__}"
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
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(backoff.next_delay()):
                        await stop.wait()
        self.stats.inserted += len(rows)
        # `acked`: what the consumer no longer holds (a stop right after leaves nothing pending); acks not
        # confirmed within ack_wait come back as redeliveries, inserted again, harmlessly
        if await self.pull.ack(good, self.config.ack_wait_s):
            self.stats.acked += len(rows)
            self.stats.acked_messages += len(good)
        self.stats.batches += 1
        self.stats.last_insert_ns = time.time_ns()
        self.stats.changed.set()
        return True

    def counters(self) -> dict:
        return {k: v for k, v in vars(self.stats).items() if k != "changed"}


__all__ = ["ConsumerConfig", "ConsumerStats", "TradesConsumer", "consumer_config"]
