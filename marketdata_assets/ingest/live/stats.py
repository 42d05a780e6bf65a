"""The collector's counters, and a way to wait for them to reach something without polling.

Tests and (later) the metrics exporter read these; `Stats.changed` is set after every processed
batch, so `wait_until` wakes on progress instead of sleeping.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

LOG = logging.getLogger(__name__)
REFUSAL_KEYS = 500  # distinct (dataset, instrument, reason) kept; more are counted as `other`
SEP = "|"  # dataset|instrument|reason: one key of `Stats.refused`
_REQUEST = re.compile(r" \((?:GET|POST) /[^ ]*\?[^)]*\)$")  # the request a message ends with (its query)


def refusal_reason(error: BaseException, instrument: str) -> str:
    """A short, stable text of why a frame was refused: the error's first line, without the venue and
    instrument it names and the request it quotes, at most 160 characters."""
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    while True:  # "OKX UNI-USD-SWAP: ..." (maybe twice, as a lookup's error quoted by the parser's)
        head, found, rest = text.partition(f"{instrument}: ")
        if not found or len(head) > 40:
            break
        text = rest
    for tail in (" (request ", " (asked again "):
        text = text.split(tail, 1)[0]
    return _REQUEST.sub("", text).replace(SEP, "/")[:160]


# Upper bounds (s) of the exchange-time -> receive-time lag histogram (apps.collector_endpoints
# exposes it as marketdata_live_lag_seconds); a negative lag (clocks apart) counts in the first.
LAG_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass
class Stats:
    frames: int = 0  # frames taken off the queue and landed
    markers: dict[str, int] = field(default_factory=dict)
    bad_frames: dict[str, int] = field(default_factory=dict)  # reason -> count (not JSON, unknown shape, ...)
    refused: dict[str, int] = field(default_factory=dict)  # "dataset|instrument|reason" -> frames refused
    connects: int = 0
    connect_failures: int = 0
    handshake_refusals: dict[int, int] = field(
        default_factory=dict
    )  # HTTP status (429, 418) -> refused handshakes
    disconnects: dict[str, int] = field(default_factory=dict)  # reason -> count
    rollovers: int = 0
    notices: int = 0  # the venue's warnings that it will close a connection soon (each rolled over)
    stale: int = 0
    overflow_frames: int = 0  # frames dropped: the queue was full, or they waited longer than max_lag_s
    overflow_trades: int = 0  # of them, trade frames (dropped last; their ids are refilled from the venue)
    trade_gaps: int = (
        0  # trade-id ranges recorded as lost with dropped frames (`gap` markers, cause overflow)
    )
    subscribe_errors: int = 0
    errors_by_code: dict[str, int] = field(default_factory=dict)  # the venue's error code -> refusals
    last_errors: dict[str, str] = field(
        default_factory=dict
    )  # code -> the venue's last error object (JSON text)
    refused_retries: int = 0  # refused requests sent again after a growing backoff
    retry_wait_s: float = 0.0  # the backoff before the latest such retry
    warnings: dict[str, int] = field(
        default_factory=dict
    )  # fields the venue left out, stored as null (reason -> count)
    acks: int = 0
    trades: int = 0  # trades parsed (= messages["trades"]; kept a field: /status and the metrics read it)
    messages: dict[str, int] = field(
        default_factory=dict
    )  # dataset -> messages parsed (trades, tickers, ...)
    gaps: int = 0  # book sequence breaks and checksum mismatches
    checksum_mismatches: int = 0  # of the gaps, those a wrong checksum showed (OKX)
    book_resets: int = 0  # books dropped when their connection was lost (each rebuilt from a fresh snapshot)
    universe_changes: int = 0  # re-resolved universes applied without a restart (`set_instruments`)
    subscribed_later: int = 0  # channels subscribed by those changes
    unsubscribed: int = 0  # channels unsubscribed by them (instruments delisted, expired, out of the rule)
    universe_failures: int = 0  # re-resolutions that failed (the collected universe kept)
    unplaced_channels: int = 0  # channels of a change beyond the venue's connections per IP (not subscribed)
    after_unsubscribe: int = 0  # book frames of an unsubscribed instrument still in flight (landed, not read)
    resubscribes: int = 0  # book channels subscribed again for a fresh snapshot (OKX, Deribit)
    pings: int = 0  # keepalive texts sent (OKX's "ping")
    replies: int = 0  # answers to the venue's requests (Deribit's test_request)
    snapshots: int = 0  # books (re)built from a REST snapshot
    stale_snapshots: int = 0  # snapshots older than the buffered events (another was taken)
    published: int = 0  # records stored by JetStream (every dataset; a trade batch counts its trades)
    duplicates: int = 0  # republished records JetStream already had (in batches it had)
    publish_failures: int = 0  # batches that failed and were republished
    publish_refused: int = (
        0  # records a sink could not store as they are (ClickHouse: a time or id out of range)
    )
    publish_dropped: int = 0  # messages dropped from a full publish buffer (still in the landing files)
    book_snapshots: int = 0  # top-N book snapshots stored by JetStream
    book_tops_landed: int = 0  # top-N book snapshots landed (`<instrument>@book_top`, every one taken)
    book_snapshot_repeats: int = 0  # of them, ones JetStream already had (same book update id)
    book_snapshots_skipped: int = 0  # snapshot ticks of a book awaiting its resync (nothing published)
    book_snapshot_failures: int = 0  # snapshot batches NATS did not take (not retried: the next is fresher)
    repair_snapshots: int = 0  # REST snapshots landed at the end of an hour with a book gap
    repair_failures: int = 0  # such snapshots that failed (tried again at the next hour boundary)
    latest_writes: int = 0  # latest-state cache (Redis) hash writes
    latest_failures: int = 0  # its failed flushes (Redis away or slow: capture goes on, tried again)
    channel_frames: dict[str, int] = field(
        default_factory=dict
    )  # landing channel -> frames received (the writer's count)
    last_frame_ns: int = 0  # receive time of the newest frame (0: none yet)
    lost_frames: int = (
        0  # frames read and never processed: a failed processor's batch and the queue (CollectorFailed)
    )
    lag_buckets: list[int] = field(default_factory=lambda: [0] * (len(LAG_BUCKETS_S) + 1))  # last: +Inf
    lag_sum_s: float = 0.0
    started_ns: int = field(default_factory=time.time_ns)
    changed: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    @property
    def parsed(self) -> int:
        """Messages parsed, every dataset."""
        return sum(self.messages.values())

    def lagged(self, recv_ns: int, exchange_ms: int) -> None:
        """One message's lag from the venue's event time to its receive time."""
        lag_s = recv_ns / 1e9 - exchange_ms / 1e3
        self.lag_buckets[bisect.bisect_left(LAG_BUCKETS_S, lag_s)] += 1
        self.lag_sum_s += lag_s

    def lagged_tape(self, tape) -> None:
        """`lagged` of a trade tape's records (datasets/trade_tape.py), all at once."""
        self.lag_sum_s += tape.lags(self.lag_buckets, LAG_BUCKETS_S)

    def bad(self, reason: str) -> None:
        self.bad_frames[reason] = self.bad_frames.get(reason, 0) + 1

    def refuse(self, dataset: str, instrument: str, error: BaseException, venue: str = "") -> None:
        """A frame of `instrument` the venue's parser refused: counted as `malformed_<dataset>` and under
        its dataset, instrument and reason (`refused`); the first of each (instrument, reason) logged."""
        self.bad(f"malformed_{dataset}")
        reason = refusal_reason(error, instrument)
        key = SEP.join((dataset, instrument or "?", reason))
        if key not in self.refused:
            if len(self.refused) >= REFUSAL_KEYS:
                key = SEP.join((dataset, "*", "other (more distinct refusals than kept)"))
            else:
                LOG.warning(
                    "%s %s: a frame of %s refused: %s (counted under `refused` in /status and "
                    "marketdata_live_refused)",
                    venue,
                    instrument,
                    dataset,
                    reason,
                )
        self.refused[key] = self.refused.get(key, 0) + 1

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
            async with asyncio.timeout(timeout_s):
                await watch()
        except TimeoutError:
            raise TimeoutError(f"condition not reached within {timeout_s} s; counters: {self}") from None


# The figures of a collector's /status (apps/collector_endpoints.py) that tell whether live data
# flows now: per venue and summed (defs/live/health.py shows them in the UI while an hour is open).
STATUS_FIGURES = (
    "frames",
    "trades",
    "published",
    "gaps",
    "resubscribes",
    "snapshots",
    "overflow_frames",
    "overflow_trades",
    "publish_dropped",
    "connects",
)


def status_overview(body: dict) -> tuple[list[dict], dict]:
    """(a row per venue: health, connections, last frame age, publish buffer and `STATUS_FIGURES`;
    the totals, with the disconnects summed and, with a consumer, the trades it acknowledged) of
    a /status body. ValueError when the body is not a collector's status."""
    venues = body.get("venues") if isinstance(body, dict) else None
    if not isinstance(venues, dict):
        raise ValueError("not a collector's /status body (no `venues`)")  # noqa: TRY004  (bad input, not a bug)
    rows = []
    for venue, v in sorted(venues.items()):
        counters = v.get("collector", {})
        rows.append(
            {
                "venue": venue,
                "health": v.get("health"),
                "connections": v.get("connections", 0),
                "last_frame_age_s": v.get("last_frame_age_s"),
                "publish_buffer": v.get("publish_buffer", 0),
                "disconnects": sum((counters.get("disconnects") or {}).values()),
                **{name: counters.get(name, 0) for name in STATUS_FIGURES},
            }
        )
    totals = {name: sum(r[name] for r in rows) for name in (*STATUS_FIGURES, "disconnects", "connections")}
    totals["healthy"] = bool(body.get("healthy"))
    if isinstance(body.get("consumer"), dict):
        totals["consumer_acked"] = body["consumer"].get("acked", 0)
    return rows, totals
