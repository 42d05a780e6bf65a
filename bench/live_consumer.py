"""The NATS -> ClickHouse consumer alone: how many live trades a second it moves from JetStream into
`trades_live` (issue 23's latency path; docs/live-capture.md, Bench).

A stream of the bench's own (`benchlcc.>`, `--prefix`) on the stack's nats-server is filled with `--trades`
trade messages shaped as the collector publishes them; then one `TradesConsumer` (production
defaults: batches of 1,000 or 0.25 s) drains it into an embedded ClickHouse in a scratch directory,
in this process. Reported: wall seconds until every message is acknowledged, trades a second, CPU
µs a trade (this process: the consumer's loop and its INSERT thread). `--rounds` repeats it (a fresh
stream and table each time). To compare two trees, run it from each (PYTHONPATH) interleaved.

Run: `scripts/with-env .venv/bin/python -m bench live_consumer [--trades 100000] [--rounds 2]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

from marketdata_assets.core import settings
from marketdata_assets.ingest.live.consume.consumer import ConsumerConfig, TradesConsumer
from marketdata_assets.stores.clickhouse import connection
from marketdata_assets.stores.clickhouse.live import ensure_live_tables, insert_live_trades
from marketdata_assets.stores.jetstream import JetStreamStore, StreamSpec

PREFIX, DATABASE = "benchlcc", "bench_live_consumer"
RESULTS = Path(__file__).resolve().parent / "results" / "live_consumer.json"


def stream_spec(prefix: str) -> StreamSpec:
    """The bench's stream over `<prefix>.>` (a test passes a prefix of its own)."""
    return StreamSpec(
        name=f"BENCH_LIVE_CONSUMER_{prefix}", subjects=(f"{prefix}.>",), max_bytes=512 << 20, max_age_s=3600.0
    )


def trade(i: int, now_ms: int, prefix: str) -> tuple[str, str, bytes]:
    payload = {
        "venue": "BINANCE",
        "instrument": "BTCUSDT",
        "trade_id": str(i),
        "price": "40000.5",
        "quantity": "0.01",
        "side": "buy" if i % 2 else "sell",
        "ts_ms": now_ms + i,
        "event_ms": now_ms + i,
        "recv_ns": (now_ms + i) * 1_000_000,
    }
    return f"{prefix}.trades.BINANCE.BTCUSDT", f"BINANCE.BTCUSDT.{i}", json.dumps(payload).encode()


async def fill(store: JetStreamStore, spec: StreamSpec, trades: int, prefix: str) -> None:
    await store.delete_stream(spec.name)
    await store.ensure_stream(spec)
    now_ms = int(time.time() * 1000)
    for start in range(0, trades, 5000):
        await store.publish([trade(i, now_ms, prefix) for i in range(start, min(trades, start + 5000))])


async def drain(trades: int, scratch: Path, prefix: str = PREFIX) -> dict:
    """One round: fill the stream, then time the consumer until every trade is acknowledged."""
    client, locked = connection.open_client(f"chdb://{scratch / 'clickhouse'}", DATABASE, lock_timeout_s=5)
    ensure_live_tables(client, DATABASE)
    store = await JetStreamStore(settings.get("NATS_URL"), name="bench-live-consumer").connect()
    spec = stream_spec(prefix)
    try:
        await fill(store, spec, trades, prefix)
        config = ConsumerConfig(stream=spec.name, subject_filter=f"{prefix}.trades.>", durable="bench")
        consumer = TradesConsumer(config, store, lambda rows: insert_live_trades(client, DATABASE, rows))
        await consumer.subscribe()
        stop = asyncio.Event()
        wall0, cpu0 = time.perf_counter(), time.process_time()
        running = asyncio.create_task(consumer.run(stop))
        await consumer.stats.wait_until(lambda s: s.acked >= trades, 600)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        stop.set()
        await running
        stored = int(client.command(f"SELECT count() FROM {DATABASE}.trades_live FINAL"))
    finally:
        await store.delete_stream(spec.name)
        await store.close()
        client.close()
        connection.release_directory(locked)
    return {
        "trades": trades,
        "stored": stored,
        "wall_s": round(wall, 3),
        "trades_per_s": round(trades / wall),
        "cpu_us_per_trade": round(cpu / trades * 1e6, 1),
        "batches": consumer.stats.batches,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench live_consumer", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--trades", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--prefix", default=PREFIX, help="NATS subject prefix (and stream) of the run")
    args = parser.parse_args(argv)
    rounds = []
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="bench-live-consumer-") as scratch:
            rounds.append(asyncio.run(drain(args.trades, Path(scratch), args.prefix)))
        print(json.dumps(rounds[-1]), flush=True)
    report = {"rounds": rounds, "median_trades_per_s": statistics.median(r["trades_per_s"] for r in rounds)}
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(report, indent=1))
    lost = [r for r in rounds if r["stored"] != r["trades"]]
    print(
        f"consumer: median {report['median_trades_per_s']:,} trades/s"
        + (f"; STORED != SENT in {len(lost)} round(s)" if lost else "")
    )
    return 1 if lost else 0


if __name__ == "__main__":
    raise SystemExit(main())
