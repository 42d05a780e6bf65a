"""The live collector's own endpoints: `/metrics` (Prometheus), `/health` and `/status`, served by the
collector process on COLLECTOR_METRICS_HOST:COLLECTOR_METRICS_PORT from its in-memory counters at
scrape time (not the exporter's multiprocess directory), one `venue` label per collector.

Why, the names, what /health and /status say: docs/live-capture.md ("Endpoints" in "The NATS →
ClickHouse consumer, ...") and docs/metrics.md ("The live collector's metrics").
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from marketdata_assets.apps.exporter import _QuietHandler, _Server, _Server6
from marketdata_assets.core.metrics import label
from marketdata_assets.ingest.live.stats import LAG_BUCKETS_S

# Stats counters exposed one to one: attribute -> (metric name without _total, help)
COUNTERS = {
    "frames": ("marketdata_live_frames_landed", "Frames taken off the queue and landed raw."),
    "connects": ("marketdata_live_connects", "WebSocket connections opened."),
    "connect_failures": ("marketdata_live_connect_failures", "Connection attempts that failed."),
    "rollovers": ("marketdata_live_rollovers", "Connections replaced before the venue's forced cut."),
    "notices": (
        "marketdata_live_notices",
        "The venue's notices that it will close a connection soon (OKX 64008).",
    ),
    "stale": ("marketdata_live_stale", "Connections aborted as silent past the stale deadline."),
    "gaps": ("marketdata_live_gaps", "Book sequence breaks (each one resync)."),
    "snapshots": ("marketdata_live_snapshots", "Books (re)built from a REST snapshot."),
    "overflow_frames": (
        "marketdata_live_overflow_frames",
        "Frames dropped: the queue full, or older than the lag bound (marked).",
    ),
    "overflow_trades": (
        "marketdata_live_overflow_trades",
        "Of them, trade frames (dropped last; their ids refilled by the hourly load).",
    ),
    "subscribe_errors": ("marketdata_live_subscribe_errors", "Subscriptions the venue refused (sent again)."),
    "published": (
        "marketdata_live_published",
        "Messages stored by JetStream (a trade each, batches counted by their trades).",
    ),
    "duplicates": ("marketdata_live_duplicates", "Republished trades JetStream already had."),
    "publish_failures": (
        "marketdata_live_publish_failures",
        "Publish batches that failed (published again).",
    ),
    "publish_dropped": ("marketdata_live_publish_dropped", "Trades dropped from a full publish buffer."),
    "publish_refused": (
        "marketdata_live_publish_refused",
        "Trades a sink could not store as they are (still landed).",
    ),
}
CONSUMER_COUNTERS = {
    "fetched": "Messages the NATS -> ClickHouse consumer received (redeliveries included).",
    "redelivered": "Of them, messages delivered before (a crash or a refused INSERT).",
    "inserted": "Rows sent to trades_live in successful INSERTs.",
    "acked": "Trades acknowledged (after their INSERT).",
    "acked_messages": "Messages acknowledged (each one instrument's batch of trades).",
    "insert_failures": "INSERTs refused (the batch stays unacknowledged and is tried again).",
}


def channel_kind(channel: str) -> str:
    """The `channel` label of a landing channel: the stream's kind without its instrument
    (Binance `btcusdt@depth@100ms` -> `depth`), or the channel itself (`_control`, `_bad`)."""
    if "@" not in channel:
        return label(channel)
    return label(channel.split("@")[1])


@dataclass
class Venue:
    """One venue's running collector (its `stats`, `queue`, `outbox`, `connections`) and stale deadline."""

    collector: Any
    venue: str
    stale_s: float

    def connected(self) -> int:
        return sum(1 for conn in list(self.collector.connections.values()) if not conn.ended.is_set())

    def frame_age_s(self) -> float | None:
        last = self.collector.stats.last_frame_ns
        return None if not last else max(0.0, time.time() - last / 1e9)

    def health(self) -> tuple[bool, str]:
        if not self.connected():
            return False, "no open connection"
        age = self.frame_age_s()
        if age is None:
            return False, "connected, no frame yet"
        if age > self.stale_s:
            return False, f"stale: last frame {age:.1f} s ago (deadline {self.stale_s:g} s)"
        return True, "ok"


@dataclass
class Watched:
    """What the endpoints read: the process's collectors, one per venue, and optionally the consumer
    running beside them."""

    venues: list[Venue]
    consumer: Any = None

    def connected(self) -> int:
        return sum(v.connected() for v in self.venues)

    def health(self) -> tuple[bool, str]:
        """ok when every venue is; else each failing venue's reason (one venue: its reason alone)."""
        failing = [(v.venue, reason) for v in self.venues for ok, reason in [v.health()] if not ok]
        if not failing:
            return True, "ok"
        if len(self.venues) == 1:
            return False, failing[0][1]
        return False, "; ".join(f"{venue}: {reason}" for venue, reason in failing)


def _counter(name: str, doc: str, labels: list[str], values: Iterable[tuple[list[str], float]]):
    family = CounterMetricFamily(name, doc, labels=labels)
    for label_values, value in values:
        family.add_metric(label_values, value)
    return family


def _gauge(name: str, doc: str, venue: str, value: float):
    family = GaugeMetricFamily(name, doc, labels=["venue"])
    family.add_metric([venue], value)
    return family


class LiveCollector(Collector):
    """The collector's counters as metric families, read at scrape time."""

    def __init__(self, watched: Watched):
        self.watched = watched

    def collect(self):
        families: dict[str, Any] = {}
        for venue in self.watched.venues:
            for family in self._venue(venue):
                if family.name in families:
                    families[family.name].samples.extend(family.samples)
                else:
                    families[family.name] = family
        yield from families.values()
        if self.watched.consumer is not None:
            yield from self._consumer(self.watched.consumer.stats)

    def _venue(self, w: Venue):
        """One venue's families (merged with the other venues' by name in `collect`)."""
        stats, venue = w.collector.stats, label(w.venue)
        for attr, (name, doc) in COUNTERS.items():
            yield _counter(name, doc, ["venue"], [([venue], getattr(stats, attr))])
        by_kind: dict[str, int] = {}
        for channel, n in dict(stats.channel_frames).items():
            by_kind[channel_kind(channel)] = by_kind.get(channel_kind(channel), 0) + n
        yield _counter(
            "marketdata_live_frames",
            "Frames received, by venue and channel (rate(): frames/s).",
            ["venue", "channel"],
            [([venue, k], n) for k, n in sorted(by_kind.items())],
        )
        yield _counter(
            "marketdata_live_messages",
            "Normalized messages, by venue and dataset.",
            ["venue", "dataset"],
            [
                ([venue, label(d)], n)
                for d, n in sorted({"trades": stats.trades, **dict(stats.messages)}.items())
            ],
        )
        for attr, name, doc in (
            ("disconnects", "marketdata_live_disconnects", "Connections lost, by reason."),
            ("bad_frames", "marketdata_live_bad_frames", "Bad frames, by reason."),
            ("markers", "marketdata_live_markers", "Marker records landed, by kind."),
        ):
            yield _counter(
                name,
                doc,
                ["venue", "reason"],
                [([venue, label(k)], n) for k, n in sorted(dict(getattr(stats, attr)).items())],
            )
        yield _counter(
            "marketdata_live_refused",
            "Frames the venue's parser refused, by dataset, instrument and reason (at most 500 kept).",
            ["venue", "dataset", "instrument", "reason"],
            [([venue, *key.split("|", 2)], n) for key, n in sorted(stats.refused.items())],
        )
        yield _counter(
            "marketdata_live_resyncs",
            "Books rebuilt after a gap.",
            ["venue"],
            [([venue], stats.markers.get("resync", 0))],
        )
        yield _gauge(
            "marketdata_live_queue_depth",
            "Frames waiting between the sockets and the processor.",
            venue,
            w.collector.queue.qsize(),
        )
        yield _gauge(
            "marketdata_live_publish_buffer",
            "Messages (a trade each) waiting to be published to JetStream.",
            venue,
            getattr(w.collector, "buffered", 0),
        )
        yield _gauge("marketdata_live_connections", "Open WebSocket connections.", venue, w.connected())
        yield _gauge(
            "marketdata_live_last_frame_timestamp_seconds",
            "Unix time of the newest frame.",
            venue,
            stats.last_frame_ns / 1e9,
        )
        yield self._lag(stats, venue)

    @staticmethod
    def _lag(stats, venue: str):
        family = HistogramMetricFamily(
            "marketdata_live_lag_seconds",
            "Lag from the venue's event time to the local receive time, per trade.",
            labels=["venue"],
        )
        counts, running, buckets = list(stats.lag_buckets), 0, []
        for bound, n in zip((*LAG_BUCKETS_S, float("inf")), counts):
            running += n
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), running))
        family.add_metric([venue], buckets, sum_value=stats.lag_sum_s)
        return family

    @staticmethod
    def _consumer(stats):
        for attr, doc in CONSUMER_COUNTERS.items():
            yield _counter(f"marketdata_live_consumer_{attr}", doc, [], [([], getattr(stats, attr))])
        yield _counter(
            "marketdata_live_consumer_bad_messages",
            "Messages that were not trades (terminated), by reason.",
            ["reason"],
            [([label(k)], n) for k, n in sorted(dict(stats.bad_messages).items())],
        )
        family = GaugeMetricFamily(
            "marketdata_live_consumer_last_insert_timestamp_seconds",
            "Unix time of the consumer's latest successful INSERT.",
        )
        family.add_metric([], stats.last_insert_ns / 1e9)
        yield family


def _plain(stats) -> dict:
    return {
        k: (dict(v) if isinstance(v, dict) else list(v) if isinstance(v, list) else v)
        for k, v in vars(stats).items()
        if k != "changed"
    }


def summed(parts: list[dict]) -> dict:
    """Counters of several venues as one: numbers added, dicts added key by key, lists element-wise,
    `last_frame_ns` the newest, `started_ns` the first."""
    out: dict[str, Any] = {}
    for part in parts:
        for key, value in part.items():
            if key not in out:
                out[key] = (
                    dict(value)
                    if isinstance(value, dict)
                    else list(value)
                    if isinstance(value, list)
                    else value
                )
            elif key in ("last_frame_ns", "started_ns"):
                out[key] = (max if key == "last_frame_ns" else min)(out[key], value)
            elif isinstance(value, dict):
                for k, n in value.items():
                    out[key][k] = out[key].get(k, 0) + n
            elif isinstance(value, list):
                out[key] = [a + b for a, b in zip(out[key], value, strict=True)]
            else:
                out[key] += value
    return out


def status(watched: Watched) -> dict:
    """The /status body."""
    venues = {}
    for v in watched.venues:
        ok, reason = v.health()
        venues[v.venue] = {
            "healthy": ok,
            "health": reason,
            "connections": v.connected(),
            "last_frame_age_s": v.frame_age_s(),
            "queue_depth": v.collector.queue.qsize(),
            "publish_buffer": getattr(v.collector, "buffered", 0),
            "collector": _plain(v.collector.stats),
        }
    ok, reason = watched.health()
    ages = [a for a in (v["last_frame_age_s"] for v in venues.values()) if a is not None]
    body = {
        "venues": venues,
        "healthy": ok,
        "health": reason,
        "connections": watched.connected(),
        "last_frame_age_s": min(ages) if ages else None,
        "queue_depth": sum(v["queue_depth"] for v in venues.values()),
        "publish_buffer": sum(v["publish_buffer"] for v in venues.values()),
        "collector": summed([v["collector"] for v in venues.values()]),
        "lag_buckets_s": list(LAG_BUCKETS_S),
    }
    if len(venues) == 1:
        body["venue"] = next(iter(venues))
    if watched.consumer is not None:
        body["consumer"] = _plain(watched.consumer.stats)
    return body


class EndpointsApp:
    def __init__(self, watched: Watched):
        self.watched = watched
        registry = CollectorRegistry(auto_describe=False)
        registry.register(LiveCollector(watched))
        self.metrics_app = make_wsgi_app(registry)

    def __call__(self, environ, start_response):
        path = (environ.get("PATH_INFO") or "/").rstrip("/") or "/"
        if path == "/metrics":
            return self.metrics_app(environ, start_response)
        if path == "/health":
            ok, reason = self.watched.health()
            return _reply(
                start_response, "200 OK" if ok else "503 Service Unavailable", f"{reason}\n".encode()
            )
        if path == "/status":
            body = json.dumps(status(self.watched), indent=2, sort_keys=True, default=str) + "\n"
            return _reply(start_response, "200 OK", body.encode(), "application/json")
        return _reply(start_response, "404 Not Found", b"not found: try /metrics, /health, /status\n")


def _reply(start_response, status_line: str, body: bytes, content_type: str = "text/plain; charset=utf-8"):
    start_response(
        status_line,
        [("Content-Type", content_type), ("Content-Length", str(len(body))), ("Cache-Control", "no-store")],
    )
    return [body]


class Endpoints:
    """Serving from a daemon thread: `.url`, `.stop()`."""

    def __init__(self, watched: Watched, host: str, port: int):
        server_class = _Server6 if ":" in host else _Server
        self.server = make_server(
            host, port, EndpointsApp(watched), server_class=server_class, handler_class=_QuietHandler
        )
        self.host, self.port = host, self.server.server_address[1]
        self.thread = threading.Thread(
            target=self.server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="collector-endpoints",
            daemon=True,
        )
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://{f'[{self.host}]' if ':' in self.host else self.host}:{self.port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
