"""What the live-capture tests share (their fixtures: tests/fixtures/live.py). Live-capture tests: the
stack's real nats-server (NATS_URL, started by `scripts/stack up` under `make test`, like the
databases), the Binance REST + WebSocket replays, and a collector run in the test's event loop.
Nothing is mocked; waits are on the collector's progress (Stats.wait_until), never on the wall clock.

Each test publishes under its own subject prefix into its own stream (JetStream streams may not
overlap), deleted afterwards, so parallel workers and a developer's data never meet.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import orjson

from marketdata_assets.ingest.live.collect.collector import CollectorConfig, LiveCollector
from marketdata_assets.replay.crypto import CryptoReplayServer, ReplayConfig
from marketdata_assets.replay.crypto.binance_ws import BinanceWsReplay, WsConfig
from marketdata_assets.sources.registry import stream_protocol
from marketdata_assets.sources.stream import BOOKS, TRADES
from marketdata_assets.stores.jetstream import JetStreamStore, StreamSpec
from marketdata_assets.stores.landing import LandingWriter

INSTRUMENTS = ["BTCUSDT", "ETHUSDT"]


class BinanceSpotCollector(LiveCollector):
    """The collector with Binance spot's stream protocol, trades and diff-depth books only (the protocol's
    default adds tickers), as the tests drive it."""

    def __init__(
        self, config: CollectorConfig, writer: LandingWriter, store=None, *, snapshot_store=None, latest=None
    ):
        super().__init__(
            stream_protocol("BINANCE", (TRADES, BOOKS)),
            config,
            writer,
            store,
            snapshot_store=snapshot_store,
            latest=latest,
        )


def replays(ws_config: WsConfig | None = None, seed: int = 3):
    """The REST replay and the WebSocket replay on its market, as one context manager."""
    stack = contextlib.ExitStack()
    rest = stack.enter_context(
        CryptoReplayServer(ReplayConfig(seed=seed, instruments={"BINANCE": list(INSTRUMENTS)}))
    )
    ws = stack.enter_context(BinanceWsReplay(ws_config or WsConfig(tick_s=0.02), rest=rest))
    return stack, rest, ws


@contextlib.asynccontextmanager
async def collecting(
    config: CollectorConfig,
    writer: LandingWriter,
    nats_url: str | None = None,
    spec: StreamSpec | None = None,
    protocol=None,
    keep_stream: bool = False,
) -> AsyncIterator[tuple[LiveCollector, JetStreamStore | None]]:
    """A collector running in this event loop (its stream created first); stopped and drained on exit.
    `protocol`: a venue's stream (sources/<venue>/stream.py); default Binance spot. `keep_stream`: the
    stream outlives the block (the test counts what it holds once the collector stopped, then deletes it)."""
    store = None
    if nats_url is not None:
        store = await JetStreamStore(nats_url, ack_timeout_s=5).connect()
        await store.ensure_stream(spec)
    collector = (
        BinanceSpotCollector(config, writer, store)
        if protocol is None
        else LiveCollector(protocol, config, writer, store)
    )
    stop = asyncio.Event()
    task = asyncio.create_task(collector.run(stop))
    try:
        yield collector, store
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)
        if store is not None:
            if not keep_stream:
                await store.delete_stream(spec.name)
            await store.close()


def config_for(ws: BinanceWsReplay, rest: CryptoReplayServer, **overrides) -> CollectorConfig:
    return CollectorConfig(
        list(INSTRUMENTS), ws.url, rest.base_url, **{"backoff_base_s": 0.05, "stale_s": 5.0, **overrides}
    )


def landing(tmp_path: Path) -> Path:
    return tmp_path / "landing"


def levels(side: dict[str, str]) -> dict[Decimal, Decimal]:
    return {Decimal(p): Decimal(q) for p, q in side.items()}


async def books_match_at_rest(collector, ws, instruments: list[str], timeout_s: float) -> None:
    """Stop the replay's market, wait until every book stands at its last update, compare them by
    value (the venues spell prices differently: OKX strings, Deribit JSON numbers)."""
    ws.pause()

    def caught_up(stats) -> bool:
        return all(
            not collector.books.by_instrument[name].needs_snapshot
            and collector.books.by_instrument[name].book.update_id == ws.truth_book(name)[0]
            for name in instruments
        )

    await collector.stats.wait_until(caught_up, timeout_s)
    for name in instruments:
        _, bids, asks = ws.truth_book(name)
        book = collector.books.by_instrument[name].book
        assert (levels(book.bids), levels(book.asks)) == (levels(bids), levels(asks)), name
    ws.resume()


async def stream_trades(store: JetStreamStore, stream: str, subject_filter: str) -> list[dict]:
    """Every trade the stream holds under `subject_filter`, read from its messages (each a batch of one
    instrument's trades: a JSON array), in stream order."""
    total = await store.message_count(stream, subject_filter)
    subscription = await store.js.subscribe(subject_filter, stream=stream, ordered_consumer=True)
    trades = []
    try:
        for _ in range(total):
            message = await subscription.next_msg(timeout=10)
            trades.extend(orjson.loads(message.data))
    finally:
        await subscription.unsubscribe()
    return trades
