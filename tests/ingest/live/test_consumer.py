"""The NATS -> ClickHouse consumer against the stack's real nats-server and the embedded ClickHouse:
rows exactly once (duplicates, a restart between INSERT and ack, a refused INSERT), acks only after
the INSERT, and the trades_latest view letting the batch loads supersede the live rows. Waits are on
the consumer's counters, never on the clock."""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import UTC, date, datetime

import polars as pl
import pytest

from marketdata_assets.ingest.live.collect.collector import CollectorConfig
from marketdata_assets.ingest.live.consume.consumer import ConsumerConfig, TradesConsumer, consumer_config
from marketdata_assets.stores.clickhouse import live
from marketdata_assets.stores.clickhouse.writer import write_slice
from marketdata_assets.stores.jetstream import JetStreamStore, StreamSpec, subject
from marketdata_assets.stores.landing import LandingWriter
from tests.support.live import BinanceSpotCollector

WAIT_S = 20
T0_MS = 1_763_900_000_000  # 2025-11-23 12:13:20 UTC


def trade(instrument: str, trade_id: int) -> dict:
    ms = T0_MS + trade_id * 1000
    return {
        "venue": "BINANCE",
        "instrument": instrument,
        "trade_id": str(trade_id),
        "price": 100.5,
        "quantity": 0.25,
        "amount": 25.125,
        "side": "buy",
        "seq": trade_id,
        "ts_us": ms * 1000,
        "event_ms": ms,
        "recv_ns": ms * 1_000_000 + 7,
    }  # a `Trade` as a collector publishes it (one a message: `trade_messages`)


def messages(
    prefix: str, ids, instrument: str = "BTCUSDT", msg_id_suffix: str = ""
) -> list[tuple[str, str, bytes]]:
    return [
        (
            subject("trades", "BINANCE", instrument, prefix),
            f"BINANCE.{instrument}.{i}{msg_id_suffix}",
            json.dumps(trade(instrument, i)).encode(),
        )
        for i in ids
    ]


def config_for(spec, **overrides) -> ConsumerConfig:
    prefix = spec.subjects[0].split(".")[0]
    return ConsumerConfig(
        **{
            "stream": spec.name,
            "subject_filter": f"{prefix}.trades.>",
            "durable": "ch",
            "batch_size": 50,
            "max_wait_s": 0.05,
            "idle_poll_s": 0.2,
            "ack_wait_s": 30.0,
            "retry_base_s": 0.05,
            **overrides,
        }
    )


@contextlib.asynccontextmanager
async def store_for(nats_url, spec):
    store = await JetStreamStore(nats_url).connect()
    await store.ensure_stream(spec)
    try:
        yield store
    finally:
        await store.delete_stream(spec.name)
        await store.close()


@contextlib.asynccontextmanager
async def consuming(store, config, client, database):
    consumer = TradesConsumer(config, store, lambda rows: live.insert_live_trades(client, database, rows))
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    try:
        yield consumer
    finally:
        stop.set()
        await asyncio.wait_for(task, WAIT_S)


async def ack_pending(store, config) -> int:
    return (await store.js.consumer_info(config.stream, config.durable)).num_ack_pending


def ids_in(client, database: str, table: str = live.TRADES_LIVE) -> list[int]:
    final = " FINAL" if table == live.TRADES_LIVE else ""
    return sorted(
        int(r[0]) for r in client.query(f"SELECT trade_id FROM `{database}`.{table}{final}").result_rows
    )


def test_rows_once_with_duplicates_acked_after_insert(clickhouse, nats_url, stream_spec):
    with clickhouse.get_client() as client:
        live.ensure_live_tables(client, clickhouse.database)
        config = config_for(stream_spec)
        prefix = stream_spec.subjects[0].split(".")[0]

        async def scenario():
            async with store_for(nats_url, stream_spec) as store:
                first = await store.publish(messages(prefix, range(300)))
                again = await store.publish(messages(prefix, range(100)))  # same ids: the stream drops them
                # the same trades under other message ids (another publisher): the table must drop them
                other = await store.publish(messages(prefix, range(200, 260), msg_id_suffix=".x"))
                assert (first.stored, again.duplicates, other.stored) == (300, 100, 60)
                async with consuming(store, config, client, clickhouse.database) as consumer:
                    await consumer.stats.wait_until(lambda s: s.acked == 360, WAIT_S)
                    assert await ack_pending(store, config) == 0
                return consumer.stats

        stats = asyncio.run(scenario())
    assert stats.inserted == 360 and stats.insert_failures == 0 and stats.batches >= 360 // 50
    assert ids_in(client, clickhouse.database) == list(range(300))
    assert live.live_count(client, clickhouse.database)[0] == 300


def test_restart_between_insert_and_ack_is_redelivered_and_stored_once(clickhouse, nats_url, stream_spec):
    """A consumer that inserted a batch and died before acking it (fetched, inserted, connection
    dropped): the next one gets the batch again after ack_wait and the table still holds it once."""
    with clickhouse.get_client() as client:
        live.ensure_live_tables(client, clickhouse.database)
        # ack_wait: short, so the dead consumer's batch comes back soon, but long enough that no batch of
        # the live consumer outlasts it on a loaded machine (1 s did: extra redeliveries, 21 left pending)
        config = config_for(stream_spec, ack_wait_s=5.0)
        prefix = stream_spec.subjects[0].split(".")[0]

        async def scenario():
            async with store_for(nats_url, stream_spec) as store:
                await store.publish(messages(prefix, range(120)))
                dying = TradesConsumer(config, await JetStreamStore(nats_url).connect(), lambda rows: None)
                await dying.subscribe()
                batch = await dying.pull.batch(40, 5, 1)
                rows, _, _ = dying.decode(batch)
                live.insert_live_trades(client, clickhouse.database, rows)  # in, never acked
                await dying.store.nc.close()  # the process is gone
                assert await ack_pending(store, config) == 40
                async with consuming(store, config, client, clickhouse.database) as consumer:
                    await consumer.stats.wait_until(lambda s: s.acked == 120 and s.redelivered == 40, WAIT_S)
                    assert await ack_pending(store, config) == 0
                return consumer.stats

        stats = asyncio.run(scenario())
    assert stats.fetched == 120
    assert ids_in(client, clickhouse.database) == list(range(120))
    assert live.live_count(client, clickhouse.database) == (
        120,
        160,
    )  # 40 copies until a merge: FINAL hides them


def test_a_refused_insert_leaves_the_batch_unacked_until_it_goes_in(clickhouse, nats_url, stream_spec):
    with clickhouse.get_client() as client:
        db = clickhouse.database
        live.ensure_live_tables(client, db)
        client.command(
            f"DROP TABLE `{db}`.{live.TRADES_LIVE}"
        )  # ClickHouse refuses the INSERT: a real failure
        config = config_for(stream_spec)
        prefix = stream_spec.subjects[0].split(".")[0]

        async def scenario():
            async with store_for(nats_url, stream_spec) as store:
                await store.publish(messages(prefix, range(30)))
                async with consuming(store, config, client, db) as consumer:
                    await consumer.stats.wait_until(lambda s: s.insert_failures >= 2, WAIT_S)
                    assert consumer.stats.acked == 0 and await ack_pending(store, config) == 30
                    live.ensure_live_tables(client, db)  # ClickHouse back
                    await consumer.stats.wait_until(lambda s: s.acked == 30, WAIT_S)
                    assert await ack_pending(store, config) == 0
                return consumer.stats

        stats = asyncio.run(scenario())
    assert stats.inserted == 30 and stats.fetched == 30
    assert ids_in(client, db) == list(range(30))


def test_bad_messages_are_terminated_and_counted(clickhouse, nats_url, stream_spec):
    with clickhouse.get_client() as client:
        live.ensure_live_tables(client, clickhouse.database)
        config = config_for(stream_spec)
        prefix = stream_spec.subjects[0].split(".")[0]
        target = subject("trades", "BINANCE", "BTCUSDT", prefix)

        async def scenario():
            async with store_for(nats_url, stream_spec) as store:
                unstorable = [
                    json.dumps({**trade("BTCUSDT", 90 + k), **change}).encode()
                    for k, change in enumerate([{"seq": 2**63}, {"ts_us": 220_000_000_000_000_000}])
                ]  # Int64; year 8941
                await store.publish(
                    [
                        (target, "bad-1", b"{not json"),
                        (target, "bad-2", b'{"venue": "BINANCE"}'),
                        *[(target, f"bad-{3 + k}", data) for k, data in enumerate(unstorable)],
                        *messages(prefix, range(5)),
                    ]
                )
                async with consuming(store, config, client, clickhouse.database) as consumer:
                    await consumer.stats.wait_until(
                        lambda s: s.acked == 5 and sum(s.bad_messages.values()) == 4, WAIT_S
                    )
                    assert await ack_pending(store, config) == 0
                return consumer.stats

        stats = asyncio.run(scenario())
    assert stats.bad_messages == {"not_json": 1, "bad_ValidationError": 3}  # a field missing, Int64, year
    assert stats.insert_failures == 0  # the unstorable were never sent: an INSERT with one failed for good
    assert ids_in(client, clickhouse.database) == list(range(5))


def test_trades_latest_shows_batch_loads_then_live_rows(clickhouse):
    with clickhouse.get_client() as client:
        db = clickhouse.database
        live.ensure_live_tables(client, db)
        live.ensure_live_tables(client, db)  # idempotent
        rows = [
            row
            for name in ("BTCUSDT", "ETHUSDT")
            for i in range(10)
            for row in live.trade_rows(json.dumps(trade(name, i)).encode())
        ]
        live.insert_live_trades(client, db, rows)
        assert ids_in(client, db, live.TRADES_LATEST) == sorted(list(range(10)) * 2)
        loaded = pl.DataFrame(
            {
                "ts": [datetime.fromtimestamp((T0_MS + i * 1000) / 1000, tz=UTC) for i in range(6)],
                "venue": "BINANCE",
                "instrument": "BTCUSDT",
                "trade_id": [str(i) for i in range(6)],
                "price": 101.0,
                "quantity": 1.0,
                "amount": 101.0,
                "side": "sell",
                "seq": None,
            },
            schema_overrides={"ts": pl.Datetime("us", "UTC"), "seq": pl.Int64},
        )
        write_slice(client, db, "trades", loaded, "BINANCE", "BTCUSDT", date(2025, 11, 23), "run-1")
        got = client.query(
            f"SELECT instrument, path, groupArray(toUInt32(trade_id)), any(price) "
            f"FROM `{db}`.{live.TRADES_LATEST} GROUP BY instrument, path ORDER BY instrument, path"
        ).result_rows
    assert [(i, p, sorted(ids), price) for i, p, ids, price in got] == [
        ("BTCUSDT", "batch", list(range(6)), 101.0),  # the batch load supersedes the live rows of its time
        ("BTCUSDT", "live", list(range(6, 10)), 100.5),  # after the last loaded trade: live
        ("ETHUSDT", "live", list(range(10)), 100.5),
    ]  # nothing loaded: all live


def test_consumer_config_is_durable_explicit_ack():
    cfg = consumer_config(ConsumerConfig())
    assert cfg.durable_name == "trades-clickhouse" and cfg.filter_subject == "md.trades.>"
    assert cfg.ack_policy.value == "explicit"


def test_direct_write_sink_and_tee_store_each_trade_once(clickhouse, nats_url, stream_spec, tmp_path):
    """The collector's optional sinks (ingest.live.consume.sinks): JetStream then ClickHouse; a batch
    sent again (the collector's retry) is stored once in each; a message the table cannot hold is left out
    of the INSERT and named (it would fail every INSERT); a refused INSERT raises (the collector keeps it)."""
    from marketdata_assets.ingest.live.consume.sinks import ClickHouseTradeSink, Tee

    with clickhouse.get_client() as client:
        db = clickhouse.database
        live.ensure_live_tables(client, db)
        sink = ClickHouseTradeSink(lambda rows: live.insert_live_trades(client, db, rows))
        prefix = stream_spec.subjects[0].split(".")[0]

        async def scenario():
            async with store_for(nats_url, stream_spec) as store:
                tee = Tee(store, sink)
                first = await tee.publish(messages(prefix, range(20)))
                again = await tee.publish(messages(prefix, range(10, 30)))
                held = await store.message_count(stream_spec.name)
                stored = ids_in(client, db)
                mixed = messages(prefix, range(40, 43))  # and one the table cannot hold: left out, said so
                mixed.insert(
                    1, (mixed[0][0], "x", json.dumps({**trade("BTCUSDT", 99), "seq": 2**63}).encode())
                )
                partial = await sink.publish(mixed)
                collector = BinanceSpotCollector(
                    CollectorConfig(["BTCUSDT"], "ws://127.0.0.1:9", "http://127.0.0.1:9"),
                    LandingWriter(tmp_path, "BINANCE"),
                    sink,
                )
                collector.publisher.outbox.extend(
                    (where, msg_id, payload, 1)
                    for where, msg_id, payload in [*messages(prefix, range(50, 52)), mixed[1]]
                )
                collector.publisher.buffered = 3
                assert (
                    await collector.publisher.publish_batch()
                )  # the collector counts what the sink left out
                assert (
                    collector.stats.published,
                    collector.stats.publish_refused,
                    collector.publisher.buffered,
                ) == (2, 1, 0)
                client.command(f"DROP TABLE `{db}`.{live.TRADES_LIVE}")
                try:
                    await tee.publish(messages(prefix, range(30, 31)))
                except Exception:  # noqa: BLE001
                    refused = True
                else:
                    refused = False
                return first, again, held, stored, refused, partial

        first, again, held, stored, refused, partial = asyncio.run(scenario())
        live.ensure_live_tables(client, db)
    assert (first.stored, again.stored, again.duplicates, held) == (20, 10, 10, 30)
    assert stored == list(range(30))
    assert (partial.stored, partial.refused_at) == (3, {1})
    assert refused and sink.failures == 1 and sink.rows == 45


def test_the_stream_replicas_come_from_the_setting_and_a_change_updates_the_stream(monkeypatch):
    from marketdata_assets.apps.live import LiveOptions, _spec
    from marketdata_assets.core import settings as live_settings
    from marketdata_assets.stores.jetstream import _differs

    monkeypatch.setenv("NATS_STREAM_REPLICAS", "3")
    spec = _spec(LiveOptions(stream_replicas=live_settings.nats_stream_replicas()))
    assert spec.config().num_replicas == 3
    assert _differs(StreamSpec().config(), spec.config())  # an existing one-copy stream is updated to three
    monkeypatch.setenv("NATS_STREAM_REPLICAS", "7")
    with pytest.raises(ValueError, match="NATS_STREAM_REPLICAS must be 1 to 5"):
        live_settings.nats_stream_replicas()
