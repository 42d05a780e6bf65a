"""One live-capture process: the collector, its optional sinks, the NATS -> ClickHouse consumer and
the collector's endpoints, as `marketdata collect` / `marketdata consume` run them (apps/cli/live.py).

`run_live(options, stop)` starts what `options` asks for and runs until `stop` is set:
- one collector (ingest.live `LiveCollector`) per venue of `options.venues` (Binance spot and USD-M,
  OKX, Deribit: `PROTOCOLS`), each collecting `options.datasets` where the venue has them (None: every
  dataset it has: trades, books, tickers, bars_1m, funding, mark_price, liquidations, open_interest),
  landing raw frames under its venue and publishing the messages to JetStream (`nats_url`), and/or
  writing the trades straight to ClickHouse ``trades_live`` (`direct_write`, the setting
  CLICKHOUSE_DIRECT_WRITE; alone it is the path for a machine without NATS). The venues share the
  process's one NATS connection and its sinks: a venue is a protocol and its connections, not a
  process (the JetStream client and the ClickHouse client are thread/loop-safe for this);
- with `consume`, the durable consumer from JetStream into ``trades_live`` in the same process;
- with a `metrics_port`, /metrics, /health and /status (apps.collector_endpoints).
One ClickHouse client serves the direct writes and the consumer (their INSERTs take turns): on the
embedded engine one process holds the data directory, so they could not be two processes.
Returns the counters at the end (JSON-able).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from marketdata_assets.apps.collector import PROTOCOLS
from marketdata_assets.apps.collector_endpoints import Endpoints, Venue, Watched, summed
from marketdata_assets.apps.universes import keep_looked_up, process_instruments
from marketdata_assets.core.errors import error_text
from marketdata_assets.ingest.instruments import reference_client
from marketdata_assets.ingest.live.collect.collector import CollectorConfig, LiveCollector
from marketdata_assets.ingest.live.collect.parts import Part
from marketdata_assets.ingest.live.consume.consumer import ConsumerConfig, TradesConsumer
from marketdata_assets.ingest.live.consume.sinks import ClickHouseTradeSink, Tee
from marketdata_assets.sources.registry import SOURCES, stream_protocol
from marketdata_assets.sources.stream import OPT_IN_DATASETS
from marketdata_assets.stores.clickhouse import connection
from marketdata_assets.stores.clickhouse.live import ensure_live_tables, insert_live_trades
from marketdata_assets.stores.jetstream import JetStreamStore, StreamSpec
from marketdata_assets.stores.landing import LandingWriter
from marketdata_assets.stores.redis_cache import RedisLatestCache

LOG = logging.getLogger(__name__)
KEEP_LOOKED_UP_S = 60.0  # how often the versions the collectors looked up reach the stored master
_WHOLE = Part()  # the whole universe: a venue's default part


@dataclass
class VenueOptions:
    """One venue's collector: its instruments (as the venue spells them), WebSocket base (a replay's in
    tests), REST base (book snapshots where books start from REST, and every venue's gap-hour repair;
    None: neither), stale deadline (None: the protocol's)."""

    venue: str
    instruments: list[str]
    ws_url: str = ""
    rest_url: str | None = None
    stale_s: float | None = None
    rollover_s: float | None = None
    part: Part = (
        _WHOLE  # the share of the venue's universe this process collects (ingest/live/collect/parts.py)
    )
    resolve: Callable[[], list[str]] | None = None  # the venue's universe today, again (None: a fixed list)
    resolve_every_s: float = 3600.0  # how often `resolve` runs


@dataclass
class LiveOptions:
    venues: list[VenueOptions] = field(default_factory=list)
    datasets: tuple[str, ...] | None = None  # collected where a venue has them; None: all it has
    landing_dir: Path | None = None
    nats_url: str | None = None  # None: no NATS
    stream: str = StreamSpec.name
    stream_max_bytes: int = StreamSpec.max_bytes  # reserved on the server's JetStream storage
    stream_replicas: int = StreamSpec.replicas
    subject_prefix: str = "md"
    collect: bool = True
    direct_write: bool = False
    consume: bool = False
    clickhouse_dsn: str = ""
    database: str = "marketdata"
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = None  # None: no endpoints
    redis_url: str | None = None  # the latest-state cache (REDIS_CACHE); None: none
    share_clickhouse: bool = False  # an embedded engine opened for each INSERT only (others use it between)
    instrument_service: Any = None  # the process's (its universes came from it); None: run_live makes one
    consumer: ConsumerConfig = field(default_factory=ConsumerConfig)


class _ClickHouse:
    """The process's one client, its INSERTs one at a time (opened only when a sink needs it).

    `share`: an embedded engine's directory is one process's at a time, so a live process holding it
    would stop every Dagster run for as long as it runs (`make run` starts one beside the UI). Shared,
    the directory is opened for each INSERT and released after it (a lock not free within
    `SHARE_WAIT_S` fails the INSERT, which the consumer retries with its messages unacknowledged).
    A server DSN is never shared this way (it needs nothing of the sort)."""

    SHARE_WAIT_S = 5.0

    def __init__(self, options: LiveOptions):
        self.dsn, self.database, self.lock = options.clickhouse_dsn, options.database, threading.Lock()
        self.share = options.share_clickhouse and connection.embedded_dir(self.dsn) is not None
        self.client, self.locked, self.ready = None, None, False
        if not self.share:
            self._open(900)

    def _open(self, wait_s: float) -> None:
        self.client, self.locked = connection.open_client(self.dsn, self.database, lock_timeout_s=wait_s)
        if not self.ready:
            ensure_live_tables(self.client, self.database)
            self.ready = True

    def insert(self, rows) -> int:
        with self.lock:
            if not self.share:
                return insert_live_trades(self.client, self.database, rows)
            self._open(self.SHARE_WAIT_S)
            try:
                return insert_live_trades(self.client, self.database, rows)
            finally:
                self.close()

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
        if self.locked is not None:
            connection.release_directory(self.locked)
            self.locked = None


def _spec(options: LiveOptions) -> StreamSpec:
    subjects = StreamSpec.subjects if options.subject_prefix == "md" else (f"{options.subject_prefix}.>",)
    return StreamSpec(
        name=options.stream,
        subjects=subjects,
        max_bytes=options.stream_max_bytes,
        replicas=options.stream_replicas,
    )


async def run_live(
    options: LiveOptions, stop: asyncio.Event, on_ready: Callable[[dict], None] | None = None
) -> dict:
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
        tasks, collectors, consumer = [], [], None
        if options.consume:
            consumer = TradesConsumer(options.consumer, store, clickhouse.insert)
            await consumer.subscribe()
            tasks.append(asyncio.create_task(consumer.run(stop)))
        if options.collect:
            latest = None
            if options.redis_url:
                latest = RedisLatestCache(options.redis_url)
                stack.push_async_callback(latest.aclose)
            sink = _sink(options, store, clickhouse)
            service = await asyncio.to_thread(_instruments, options)
            stack.callback(service.close)
            collectors = [
                _collector(options, venue, sink, store, latest, service) for venue in options.venues
            ]
            tasks += [asyncio.create_task(venue.collector.run(stop)) for venue in collectors]
            resolving = [
                asyncio.create_task(_resolve_forever(given, running.collector))
                for given, running in zip(options.venues, collectors, strict=True)
                if given.resolve
            ]
            # the versions looked up live, stored each minute and at the stop
            stack.callback(keep_looked_up, service, LOG.warning)
            resolving.append(asyncio.create_task(_keep_looked_up_forever(service)))
            stack.callback(lambda: [task.cancel() for task in resolving])
        info = {"tasks": len(tasks), "venues": [v.venue for v in collectors]}
        if collectors and options.metrics_port is not None:
            endpoints = Endpoints(Watched(collectors, consumer), options.metrics_host, options.metrics_port)
            stack.callback(endpoints.stop)
            info["url"] = endpoints.url
        if on_ready is not None:
            on_ready(info)
        try:
            await asyncio.gather(*tasks)
        except Exception:
            stop.set()  # one venue (or the consumer) failed: the others stop cleanly before the error goes up
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
    return _counters(collectors, consumer)


def _sink(options: LiveOptions, store, clickhouse):
    """Where every venue's trades go: JetStream, ClickHouse, both (JetStream first), or nowhere."""
    sinks = [
        s for s in (store, ClickHouseTradeSink(clickhouse.insert) if options.direct_write else None) if s
    ]
    return None if not sinks else sinks[0] if len(sinks) == 1 else Tee(*sinks)


def _instruments(options: LiveOptions):
    """The process's instrument service (the options' or a new one) with the venues' stored master loaded
    (the store away: said, the venues asked instead) and each venue's REST base given asked for what it
    lacks."""
    service = options.instrument_service or process_instruments()
    for venue in options.venues:
        if venue.rest_url and SOURCES[venue.venue].sized:
            service.provide(venue.venue, reference_client(venue.venue, venue.rest_url))
    try:
        service.load([venue.venue for venue in options.venues])
    except Exception as error:  # noqa: BLE001  (collecting goes on; sizes are asked of the venues)
        LOG.warning("%s: the venues are asked instead", error_text(error, "the instrument master"))
    return service


def _collector(
    options: LiveOptions, venue: VenueOptions, sink, store=None, latest=None, service=None
) -> Venue:
    """One venue's collector: its landing writer, the shared sink, book snapshots to JetStream
    (`store`), the shared latest-state cache (`latest`), contract sizes by the process's `service`."""
    protocol = venue_protocol(venue.venue, options.datasets, service)
    stale_s = venue.stale_s or protocol.stale_s
    config = CollectorConfig(
        list(venue.instruments),
        venue.ws_url or protocol.ws_url,
        venue.rest_url,
        stale_s=stale_s,
        rollover_s=venue.rollover_s,
        subject_prefix=options.subject_prefix,
        part=venue.part,
    )
    writer = LandingWriter(options.landing_dir, protocol.venue)
    return Venue(
        LiveCollector(protocol, config, writer, sink, snapshot_store=store, latest=latest),
        protocol.venue,
        stale_s,
    )


async def _resolve_forever(venue: VenueOptions, collector: LiveCollector) -> None:
    """The venue's universe resolved again every `resolve_every_s` and applied to its running collector (new
    listings subscribed, delisted and expired ones unsubscribed); a resolution that fails (the master's store
    away) keeps what it collects, logged and counted (`universe_failures`)."""
    while True:
        await asyncio.sleep(venue.resolve_every_s)
        try:
            universe = await asyncio.to_thread(venue.resolve)
            if not universe:
                raise ValueError("an empty universe (kept the current one)")
            counts = await collector.set_instruments(universe)
        except Exception as error:  # noqa: BLE001  (the next resolution tries again)
            collector.stats.universe_failures += 1
            LOG.warning(
                "%s: the universe not resolved again: %s", venue.venue, error_text(error, "the universe")
            )
            continue
        if counts["added"] or counts["removed"]:
            LOG.info("%s universe: %s", venue.venue, counts)


async def _keep_looked_up_forever(service, every_s: float = KEEP_LOOKED_UP_S) -> None:
    """`keep_looked_up` every `every_s`: what the venues answered the collectors' lookups reaches the stored
    master while they run, not only through the next hourly load."""
    while True:
        await asyncio.sleep(every_s)
        await asyncio.to_thread(keep_looked_up, service, LOG.warning)


def venue_protocol(venue: str, datasets: tuple[str, ...] | None = None, service=None):
    """The venue's stream protocol collecting `datasets` where it has them (None: every one it has but the
    opt-in ones, `OPT_IN_DATASETS`: agg_trades), its contracts sized by `service` where the venue's are."""
    supported = PROTOCOLS[venue]().supported
    wanted = (
        tuple(d for d in supported if d not in OPT_IN_DATASETS)
        if datasets is None
        else tuple(d for d in supported if d in datasets)
    )
    return stream_protocol(venue, wanted, service)


def _counters(collectors: list[Venue], consumer) -> dict:
    """The venues' counters summed (`collector`), each venue's (`venues`), the consumer's."""
    out: dict = {}
    if collectors:
        venues = {
            v.venue: {k: x for k, x in vars(v.collector.stats).items() if k != "changed"} for v in collectors
        }
        out["collector"], out["venues"] = summed(list(venues.values())), venues
    if consumer is not None:
        out["consumer"] = {k: v for k, v in vars(consumer.stats).items() if k != "changed"}
    return out
