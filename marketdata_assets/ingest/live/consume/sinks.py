"""Optional sinks of the collector's normalized trades besides JetStream (the
`CLICKHOUSE_DIRECT_WRITE` setting): objects with JetStreamStore's `publish(messages)` shape, so the
collector's publisher batches, retries and counts them the same way.

- `ClickHouseTradeSink`: each batch's trades (subjects `<prefix>.trades.<venue>.<instrument>`) are one
  INSERT into ``trades_live`` (stores.clickhouse.live), for a machine without NATS; the other
  datasets' messages (tickers, ...) have no live table yet and are passed over (not counted as stored).
  A refused INSERT raises, the collector keeps the batch and sends it again;
  the table's ReplacingMergeTree key keeps a trade once however often it is sent.
- `Tee`: several sinks in order (JetStream, then ClickHouse); a batch counts as published only when
  every sink took it, and a retry is harmless to each (JetStream's duplicate window, the table's key).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable, Sequence

from marketdata_assets.stores.clickhouse.live import trade_rows
from marketdata_assets.stores.jetstream import PublishResult


def is_trade(subject: str) -> bool:
    """Whether a message's subject (`<prefix>.<dataset>.<venue>.<instrument>`) is a trade's."""
    parts = subject.split(".")
    return len(parts) >= 4 and parts[-3] == "trades"


class ClickHouseTradeSink:
    """`insert(rows)` does the INSERT (it runs in a worker thread, one at a time)."""

    def __init__(self, insert: Callable[[Sequence[tuple]], int]):
        self.insert = insert
        self.lock = threading.Lock()
        self.rows = 0  # rows inserted
        self.failures = 0  # INSERTs refused

    def _insert(self, rows: list[tuple]) -> int:
        with self.lock:
            return self.insert(rows)

    async def publish(self, messages: Iterable[tuple[str, str, bytes]]) -> PublishResult:
        batch = list(messages)
        rows, passed, refused = [], set(), set()
        for k, (where, _, payload) in enumerate(batch):
            if not is_trade(where):
                passed.add(k)  # another sink's dataset
                continue
            try:
                rows.extend(trade_rows(payload))
            except (KeyError, TypeError, ValueError):  # a message the table cannot hold: sending it with the
                refused.add(k)  # others would fail the INSERT every time (counted by the publisher)
        try:
            await asyncio.to_thread(self._insert, rows)
        except Exception:
            self.failures += 1
            raise
        self.rows += len(rows)
        return PublishResult(stored=len(rows), passed_at=frozenset(passed), refused_at=frozenset(refused))


class Tee:
    """Publish to each sink in turn; the first one's result is reported (JetStream's duplicates)."""

    def __init__(self, *sinks):
        self.sinks = sinks

    async def publish(self, messages: Iterable[tuple[str, str, bytes]]) -> PublishResult:
        batch = list(messages)
        results = [await sink.publish(batch) for sink in self.sinks]
        return results[0]


__all__ = ["ClickHouseTradeSink", "Tee"]
