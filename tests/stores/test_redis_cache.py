"""The latest-state cache (stores/redis_cache.py) against a real redis-server: the stack's (REDIS_URL;
`make test` starts it with `scripts/stack up redis`) for the collector run, and one this test starts
and stops itself for the outage. The cache holds each instrument's last trade and top of book as the
replay sent them, with a TTL; a Redis that is down never stops capture (its failures are counted)
and the cache catches up once Redis is back. Waits are on counters."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
import uuid
from decimal import Decimal

import pytest
import redis.asyncio as aioredis

from marketdata_assets.core import settings
from marketdata_assets.replay.crypto.binance_ws import WsConfig
from marketdata_assets.stores.jetstream import JetStreamStore
from marketdata_assets.stores.landing import LandingWriter
from marketdata_assets.stores.redis_cache import RedisLatestCache, key_of
from tests.conftest import free_port
from tests.support.live import INSTRUMENTS, BinanceSpotCollector, config_for, replays

WAIT_S = 15
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


@pytest.fixture
def redis_url() -> str:
    return settings.get("REDIS_URL")


async def run_collector(config, writer, store, latest, body):
    collector = BinanceSpotCollector(config, writer, store, latest=latest)
    stop = asyncio.Event()
    task = asyncio.create_task(collector.run(stop))
    try:
        return collector, await body(collector)
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)


def test_key_and_field_come_from_the_subject():
    assert key_of("md.trades.BINANCE.BTCUSDT") == ("md:latest:BINANCE:BTCUSDT", "trade")
    assert key_of("md.books.OKX.BTC-USDT") == ("md:latest:OKX:BTC-USDT", "book")
    assert key_of("md.tickers.DERIBIT.BTC-PERPETUAL") == ("md:latest:DERIBIT:BTC-PERPETUAL", "tickers")
    assert key_of("not.a.subject") is None


@pytest.mark.parametrize("with_nats", [True, False], ids=["nats", "no_nats"])
def test_the_cache_holds_the_last_trade_and_the_top_of_book(
    tmp_path, nats_url, stream_spec, redis_url, with_nats
):
    """Fed from the publish path, and with no sink at all (`collect --no-nats`: from the messages)."""
    stack, rest, ws = replays(WsConfig(tick_s=0.02))
    prefix = stream_spec.subjects[0].split(".")[0]
    with stack:

        async def scenario():
            latest = RedisLatestCache(redis_url, ttl_s=120)
            config = config_for(ws, rest, subject_prefix=prefix, book_snapshot_s=0.05)
            async with contextlib.AsyncExitStack() as stores:
                store = None
                if with_nats:
                    store = await stores.enter_async_context(JetStreamStore(nats_url))
                    await store.ensure_stream(stream_spec)
                    stores.push_async_callback(store.delete_stream, stream_spec.name)

                async def body(c):
                    await c.stats.wait_until(
                        lambda s: s.latest_writes > 0 and s.book_tops_landed >= 2, WAIT_S
                    )
                    ws.pause()  # at rest: the cache must end at the replay's last trade and true book

                    def at_rest(stats) -> bool:
                        return (
                            not c.publisher.trade_frames
                            and not c.publisher.outbox
                            and not latest.pending
                            and all(c.books.snapshot_ids.get(n) == ws.truth_book(n)[0] for n in INSTRUMENTS)
                        )

                    await c.stats.wait_until(at_rest, WAIT_S)
                    await latest.flush()
                    client = aioredis.Redis.from_url(
                        redis_url, decode_responses=True, password=settings.get("REDIS_PASSWORD")
                    )
                    got = {
                        n: (
                            await client.hgetall(f"{prefix}:latest:BINANCE:{n}"),
                            await client.ttl(f"{prefix}:latest:BINANCE:{n}"),
                        )
                        for n in INSTRUMENTS
                    }
                    await client.delete(*[f"{prefix}:latest:BINANCE:{n}" for n in INSTRUMENTS])
                    await client.aclose()
                    truth = {n: (ws.truth_book(n), ws.trade_ids(n)[1]) for n in INSTRUMENTS}
                    ws.resume()
                    return got, truth

                c, (got, truth) = await run_collector(
                    config, LandingWriter(tmp_path, "BINANCE"), store, latest, body
                )
            await latest.aclose()
            return c.stats, got, truth

        stats, got, truth = asyncio.run(scenario())
    for name in INSTRUMENTS:
        fields, ttl = got[name]
        (update_id, bids, asks), last_trade_id = truth[name]
        trade, book = json.loads(fields["trade"]), json.loads(fields["book"])
        assert int(trade["trade_id"]) == last_trade_id and trade["instrument"] == name
        assert book["update_id"] == update_id
        best_bid = max(bids, key=Decimal)
        best_ask = min(asks, key=Decimal)
        assert book["bid"] == [best_bid, bids[best_bid]] and book["ask"] == [best_ask, asks[best_ask]]
        assert 0 < ttl <= 120 and int(fields["updated_ns"]) > 0
    assert stats.latest_failures == 0


def test_a_redis_outage_never_stops_capture_and_the_cache_catches_up(tmp_path):
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"  # nothing listens yet: Redis is down
    stack, rest, ws = replays(WsConfig(tick_s=0.02))
    prefix = f"t{uuid.uuid4().hex[:8]}"
    with stack:

        async def scenario():
            latest = RedisLatestCache(url, ttl_s=60, timeout_s=0.2)
            config = config_for(ws, rest, subject_prefix=prefix, book_snapshot_s=0.05, latest_flush_s=0.05)

            async def body(c):
                await c.stats.wait_until(
                    lambda s: s.latest_failures >= 3 and s.snapshots == 2 and s.trades >= 100, WAIT_S
                )
                assert c.stats.latest_writes == 0
                server = await asyncio.create_subprocess_exec(
                    REDIS_SERVER,
                    "--bind",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--requirepass",
                    settings.get("REDIS_PASSWORD"),
                    stdout=subprocess.DEVNULL,
                )
                try:
                    await c.stats.wait_until(lambda s: s.latest_writes >= len(INSTRUMENTS), WAIT_S)
                    client = aioredis.Redis.from_url(
                        url, decode_responses=True, password=settings.get("REDIS_PASSWORD")
                    )
                    books = [await client.hget(f"{prefix}:latest:BINANCE:{n}", "book") for n in INSTRUMENTS]
                    await client.aclose()
                finally:
                    server.terminate()
                    await asyncio.wait_for(server.wait(), 10)
                return books

            c, books = await run_collector(config, LandingWriter(tmp_path, "BINANCE"), None, latest, body)
            await latest.aclose()
            return c.stats, books

        stats, books = asyncio.run(scenario())
    assert all(json.loads(book)["bid"] for book in books)  # the top of book arrived once Redis was up
    assert stats.latest_failures >= 3 and stats.gaps == 0 and stats.bad_frames == {}
    assert stats.trades >= 100 and stats.frames > 100  # capture went on throughout
