"""One live-capture process: the collector, its optional sinks, the NATS -> ClickHouse consumer and
the collector's endpoints, as `marketdata collect` / `marketdata consume` run them (apps/cli/live.py).

`run_live(options, stop)` starts what `options` asks for and runs until `stop` is set:
- the Binance spot collector (ingest.live) landing raw frames and publishing trades to JetStream
  (`nats_url`), and/or writing them straight to ClickHouse ``trades_live`` (`direct_write`, seed 002's
  clickhouse_direct_write; alone it is the path for a machine without NATS);
- with `consume`, the durable consumer from JetStream into ``trades_live`` in the same process;
- with a `metrics_port`, /metrics, /health and /status (apps.collector_endpoints).
One ClickHouse client serves the direct writes and the consumer (their INSERTs take turns): on the
embedded engine one process holds the data directory, so they could not be two processes.
Returns the counters at the end (JSON-able).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from marketdata_assets.apps.collector_endpoints import Endpoints, Watched
from marketdata_assets.ingest.live.binance_spot import BinanceSpotCollector, CollectorConfig
from marketdata_assets.ingest.live.consumer import ConsumerConfig, TradesConsumer
from marketdata_assets.ingest.live.sinks import ClickHouseTradeSink, Tee
from marketdata_assets.sources.binance.stream import VENUE
from marketdata_assets.stores.clickhouse import connection
from marketdata_assets.stores.clickhouse.live import ensure_live_tables, insert_live_trades
from marketdata_assets.stores.jetstream import JetStreamStore, StreamSpec
from marketdata_assets.stores.landing import LandingWriter
from marketdata_assets.stores.redis_cache import RedisLatestCache


@dataclass
class LiveOptions:
    instruments: list[str] = field(default_factory=list)
    ws_url: str = ""
    rest_url: str = ""
    landing_dir: Path | None = None
    nats_url: str | None = None  # None: no NATS
    stream: str = StreamSpec.name
    subject_prefix: str = "md"
    collect: bool = True
    direct_write: bool = False
    consume: bool = False
    clickhouse_dsn: str = ""
    database: str = "marketdata"
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = None  # None: no endpoints
    stale_s: float = 10.0
    redis_url: str | None = None  # the latest-state cache (REDIS_CACHE); None: none
    consumer: ConsumerConfig = field(default_factory=ConsumerConfig)


class _ClickHouse:
    """The process's one client, its INSERTs one at a time (opened only when a sink needs it)."""

    def __init__(self, options: LiveOptions):
        self.client, self.locked = connection.open_client(options.clickhouse_dsn, options.database)
        self.database, self.lock = options.database, threading.Lock()
        ensure_live_tables(self.client, self.database)

    def insert(self, rows) -> int:
        with self.lock:
            return insert_live_trades(self.client, self.database, rows)

    def close(self) -> None:
        self.client.close()
        if self.locked is not None:
            connection.release_directory(self.locked)


def _spec(options: LiveOptions) -> StreamSpec:
    subjects = StreamSpec.subjects if options.subject_prefix == "md" else (f"{options.subject_prefix}.>",)
    return StreamSpec(name=options.stream, subjects=subjects)


async def run_live(options: LiveOptions, stop: asyncio.Event,
                   on_ready: Callable[[dict], None] | None = None) -> dict:
    """See the module doc; `on_ready(info)` once everything runs (info: the endpoints' URL, ...)."""
    if not (options.collect or options.consume):
        raise ValueError("nothing to run: neither the collector nor the consumer")
    if options.consume and options.nats_url is None:
        raise ValueError("the consumer reads NATS JetStream: it needs a NATS URL")
    async with contextlib.AsyncExitStack() as stack:
        clickhouse = None
        if options.direct_write or options.consume:
            clickhouse = await asyncio.to_thread(_ClickHouse, options)
            stack.callback(clickhouse.close)
        store = None
        if options.nats_url is not None:
            store = await JetStreamStore(options.nats_url, name="marketdata-collect").connect()
            stack.push_async_callback(store.close)
            await store.ensure_stream(_spec(options))
        tasks, collector, consumer = [], None, None
        if options.consume:
            consumer = TradesConsumer(options.consumer, store, clickhouse.insert)
            await consumer.subscribe()
            tasks.append(asyncio.create_task(consumer.run(stop)))
        if options.collect:
            latest = None
            if options.redis_url:
                latest = RedisLatestCache(options.redis_url)
                stack.push_async_callback(latest.aclose)
            collector = _collector(options, store, clickhouse, latest)
            tasks.append(asyncio.create_task(collector.run(stop)))
        info = {"tasks": len(tasks)}
        if collector is not None and options.metrics_port is not None:
            endpoints = Endpoints(Watched(collector, VENUE, options.stale_s, consumer), options.metrics_host,
                                  options.metrics_port)
            stack.callback(endpoints.stop)
            info["url"] = endpoints.url
        if on_ready is not None:
            on_ready(info)
        await asyncio.gather(*tasks)
    return _counters(collector, consumer)


def _collector(options: LiveOptions, store, clickhouse, latest=None) -> BinanceSpotCollector:
    sinks = [s for s in (store, ClickHouseTradeSink(clickhouse.insert) if options.direct_write else None) if s]
    sink = None if not sinks else sinks[0] if len(sinks) == 1 else Tee(*sinks)
    config = CollectorConfig(list(options.instruments), options.ws_url, options.rest_url, stale_s=options.stale_s,
                             subject_prefix=options.subject_prefix)
    writer = LandingWriter(options.landing_dir, VENUE)
    return BinanceSpotCollector(config, writer, sink, snapshot_store=store, latest=latest)


def _counters(collector, consumer) -> dict:
    out = {}
    for name, part in (("collector", collector), ("consumer", consumer)):
        if part is not None:
            out[name] = {k: v for k, v in vars(part.stats).items() if k != "changed"}
    return out
