"""The collector's counters, and a way to wait for them to reach something without polling.

Tests and (later) the metrics exporter read these; `Stats.changed` is set after every processed
batch, so `wait_until` wakes on progress instead of sleeping.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Stats:
    frames: int = 0  # frames taken off the queue and landed
    markers: dict[str, int] = field(default_factory=dict)
    bad_frames: dict[str, int] = field(default_factory=dict)  # reason -> count (not JSON, unknown shape, ...)
    connects: int = 0
    connect_failures: int = 0
    disconnects: dict[str, int] = field(default_factory=dict)  # reason -> count
    rollovers: int = 0
    stale: int = 0
    overflow_frames: int = 0  # frames dropped because the queue was full
    subscribe_errors: int = 0
    acks: int = 0
    trades: int = 0
    gaps: int = 0  # book sequence breaks and checksum mismatches
    checksum_mismatches: int = 0  # of the gaps, those a wrong checksum showed (OKX)
    resubscribes: int = 0  # book channels subscribed again for a fresh snapshot (OKX, Deribit)
    pings: int = 0  # keepalive texts sent (OKX's "ping")
    replies: int = 0  # answers to the venue's requests (Deribit's test_request)
    snapshots: int = 0  # books (re)built from a REST snapshot
    stale_snapshots: int = 0  # snapshots older than the buffered events (another was taken)
    published: int = 0  # trades stored by JetStream
    duplicates: int = 0  # republished trades JetStream already had
    publish_failures: int = 0  # batches that failed and were republished
    publish_dropped: int = 0  # trades dropped from a full publish buffer (still in the landing files)
    changed: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    def bad(self, reason: str) -> None:
        self.bad_frames[reason] = self.bad_frames.get(reason, 0) + 1

    def marked(self, kind: str) -> None:
        self.markers[kind] = self.markers.get(kind, 0) + 1

    async def wait_until(self, condition: Callable[[Stats], bool], timeout_s: float) -> None:
        """Return once `condition(self)` holds (checked after every change); TimeoutError after
        `timeout_s` saying what the counters were."""
        async def watch():
            while not condition(self):
                self.changed.clear()
                await self.changed.wait()
        try:
            await asyncio.wait_for(watch(), timeout_s)
        except asyncio.TimeoutError:
            raise TimeoutError(f"condition not reached within {timeout_s} s; counters: {self}") from None
