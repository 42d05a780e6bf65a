"""Redis as the live collector's latest-state cache (`REDIS_CACHE`): per
instrument one hash `<prefix>:latest:<venue>:<instrument>` (prefix `md`, the subjects' own) holding
the last message of each dataset the collector publishes (`trades`: the last trade of the newest batch;
`books`: the top of book with its update id; any other dataset, e.g. `tickers`, under its own name), each as
the JSON the collector publishes, and `updated_ns`; every write renews the key's TTL, so an instrument
no longer collected disappears by itself.

Why a store of its own, fed beside the publish path: dashboards and quick looks ask "what is the
price now" without reading a stream. It knows no venue: messages are (subject, msg id, payload)
as JetStream's, the dataset, venue and instrument read from the subject.

A cache must never hold capture back: `offer` only folds messages into a dict (the newest per key
and field, so memory is bounded by instruments x datasets, whatever Redis does), and `flush` writes
that dict in one pipeline with short socket timeouts; a failed flush (Redis down, slow) is counted,
its values kept unless newer ones came, and the next flush tries again. Nothing here raises to the
collector.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from marketdata_assets.core import settings

FIELD_OF = {"trades": "trade", "books": "book"}  # other datasets: the field is the dataset's name


def key_of(subject: str) -> tuple[str, str] | None:
    """(hash key, field) of a subject `<prefix>.<dataset>.<venue>.<instrument>`; None for another shape."""
    parts = subject.split(".")
    if len(parts) != 4:
        return None
    prefix, dataset, venue, instrument = parts
    return f"{prefix}:latest:{venue}:{instrument}", FIELD_OF.get(dataset, dataset)


def top_of_book(payload: bytes) -> str:
    """A top-N book snapshot's best bid and ask (price, size strings; None for an empty side)."""
    book = json.loads(payload)
    bids, asks = book.get("bids") or [], book.get("asks") or []
    return json.dumps(
        {
            "update_id": book.get("update_id"),
            "bid": bids[0] if bids else None,
            "ask": asks[0] if asks else None,
            "event_ms": book.get("event_ms"),
            "recv_ns": book.get("recv_ns"),
        },
        separators=(",", ":"),
    )


def last_of(payload: bytes) -> str:
    """A message's newest record as JSON text: the last of a batch (a JSON array: the collector's trades),
    else the message itself."""
    if not payload.startswith(b"["):
        return payload.decode()
    return json.dumps(json.loads(payload)[-1], separators=(",", ":"))


class RedisLatestCache:
    """See the module doc. `offer(messages)` is synchronous and cheap; `flush()` writes (async)."""

    def __init__(self, url: str, *, ttl_s: int = 3600, timeout_s: float = 1.0):
        self.url, self.ttl_s = url, ttl_s
        self.client = aioredis.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry_on_timeout=False,
            health_check_interval=0,
            password=settings.get("REDIS_PASSWORD") or None,
        )
        self.pending: dict[str, dict[str, str]] = {}  # key -> field -> value, the newest of each
        self.offered = 0  # messages folded in
        self.writes = 0  # hash writes Redis took
        self.failures = 0  # flushes that failed (Redis away or slow); their values are tried again
        self.last_error = ""

    def offer(self, messages: Iterable[tuple[str, str, bytes]]) -> None:
        for subject, _, payload in messages:
            where = key_of(subject)
            if where is None:
                continue
            key, field = where
            try:
                value = top_of_book(payload) if field == "book" else last_of(payload)
            except (ValueError, AttributeError, TypeError, IndexError):
                continue
            self.pending.setdefault(key, {})[field] = value
            self.offered += 1

    async def flush(self) -> bool:
        """Write what was offered since the last flush; False (counted, kept for the next) when Redis
        failed."""
        if not self.pending:
            return True
        batch, self.pending = self.pending, {}
        now = str(time.time_ns())
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                for key, fields in batch.items():
                    pipe.hset(key, mapping={**fields, "updated_ns": now})
                    pipe.expire(key, self.ttl_s)
                await pipe.execute()
        except (RedisError, OSError, TimeoutError) as error:
            self.failures += 1
            self.last_error = f"{type(error).__name__}: {error}"
            self._keep(batch)
            return False
        except asyncio.CancelledError:  # a stop mid-write: the final flush writes them
            self._keep(batch)
            raise
        self.writes += len(batch)
        return True

    def _keep(self, batch: dict[str, dict[str, str]]) -> None:
        """Put an unwritten batch back, under the values offered since (newer)."""
        for key, fields in batch.items():
            self.pending[key] = {**fields, **self.pending.get(key, {})}

    async def aclose(self) -> None:
        await self.client.aclose()


__all__ = ["RedisLatestCache", "key_of", "top_of_book"]
