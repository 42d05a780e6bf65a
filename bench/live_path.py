"""The collector's hot path offline, stage by stage: what each step costs a frame in CPU, with the compiled
parts (core/compiled.py) and without, and another checkout's tree in the same rounds (`--tree`).

The frames are `bench live_capture`'s (bench/live_sender.py: Binance spot trades and depth diffs of
`--instruments`, `--depth-share` of them diffs), rendered once as the socket would bring them. Each variant
runs in its own process (`MARKETDATA_COMPILED`, `PYTHONPATH`), the variants interleaved round by round,
and times with `time.process_time` (every thread: the landing's worker included):

- `cut`: the bytes into messages, as the collector's `WsClient` cuts them (64 KB reads);
- `queue`: each read's messages queued as the connection queues them (`Connection._on_texts`' items);
- `process`: the processor's batches (`Processor.process`: decode, raw landing in its worker thread,
  books, trades kept for their batch), the books synced from the sender's snapshots first;
- `seal`: every instrument's trade frames read and sealed into their messages (`Publisher.seal_trades`).

No socket and no NATS: `bench live_capture` measures the whole process against the ceilings; this one
says where a frame's microseconds go. Results: bench/results/live_path.json. The collector set up so
(`offline_collector`, `opened_client`) is also what tests/support/collector_path.py runs.
Run: `scripts/with-env .venv/bin/python -m bench live_path [--frames 200000] [--rounds 3] [--tree DIR]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "live_path.json"
INSTRUMENTS = "BTCUSDT,ETHUSDT,SOLUSDT,BNBUSDT,XRPUSDT,DOGEUSDT,ADAUSDT,TRXUSDT,LTCUSDT,DOTUSDT"
STAGES = ("cut", "queue", "process", "seal")
READ = 65536  # bytes a read of the socket brings


class Transport:
    """Where a client's answers go: kept (`sent`: the handshake's request, pongs, ...)."""

    def __init__(self):
        self.sent: list[bytes] = []

    def is_closing(self) -> bool:
        return False

    def write(self, data: bytes) -> None:
        self.sent.append(data)

    def close(self) -> None:
        pass


class Sink:
    """A sink that is there (so trade batches are sealed into messages) and is never published to."""


def offline_collector(market, instruments: list[str], scratch: Path, flush_lines: int = 1000, **config):
    """A `LiveCollector` with no socket and no NATS: Binance spot's trades and books over `instruments`,
    landing in `scratch`, its books synced from `market`'s snapshots (bench/live_sender.py `Market`);
    `config`: CollectorConfig fields to change."""
    from marketdata_assets.ingest.live.collect.collector import CollectorConfig, LiveCollector
    from marketdata_assets.sources.binance.stream import BinanceSpotStream
    from marketdata_assets.sources.stream import BOOKS, TRADES
    from marketdata_assets.stores.landing import LandingWriter

    settings = CollectorConfig(instruments, ws_url="ws://127.0.0.1:9/", rest_url="http://127.0.0.1:9")
    for name, value in config.items():
        setattr(settings, name, value)
    writer = LandingWriter(scratch, "BINANCE", flush_lines=flush_lines)
    made = LiveCollector(BinanceSpotStream((TRADES, BOOKS)), settings, writer, store=Sink())
    for name in instruments:
        made.books.by_instrument[name].on_snapshot_body(market.snapshot(name))
    return made


def opened_client(on_text: Callable[[str, int], None], on_texts: Callable[[list[str], int], None]):
    """A `WsClient` whose handshake was answered as a server answers it (its request's key accepted),
    open and started: each message it cuts goes to `on_text` / `on_texts`."""
    from websockets.protocol import State
    from websockets.utils import accept_key

    from marketdata_assets.ingest.live.collect.ws_client import WsClient

    client = WsClient("ws://127.0.0.1:9/")
    client.connection_made(Transport())
    key = re.search(rb"Sec-WebSocket-Key: (\S+)", client.transport.sent.pop()).group(1).decode()
    client.data_received(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        + f"Sec-WebSocket-Accept: {accept_key(key)}\r\n\r\n".encode()
    )
    if not (client.framed and client.protocol.state is State.OPEN):
        raise RuntimeError("the offline handshake did not open the connection")
    client.start(on_text, on_texts)
    return client


async def _stages(instruments: list[str], frames: int, depth_share: float) -> dict:
    from bench.live_sender import Market
    from marketdata_assets.ingest.live.collect.collector import streaming_gc

    market = Market(instruments, depth_share)
    with tempfile.TemporaryDirectory() as scratch:
        collector = offline_collector(market, instruments, Path(scratch))
        writer = collector.writer
        data = market.render(instruments, frames)
        reads: list[list[str]] = []
        client = opened_client(
            lambda text, recv_ns: reads.append([text]), lambda texts, recv_ns: reads.append(texts)
        )
        streaming_gc()
        took = {}
        c0 = time.process_time()
        for at in range(0, len(data), READ):
            client.data_received(data[at : at + READ])
        took["cut"], c0 = time.process_time() - c0, time.process_time()
        # one receive time a read, as `Connection._on_texts` stamps them
        items = [[("frame", "c1", now, text) for text in texts] for texts in reads if (now := time.time_ns())]
        took["queue"], c0 = time.process_time() - c0, time.process_time()
        batch_size, process = collector.config.batch_size, collector.processing.process
        for read in items:
            for at in range(0, len(read), batch_size):
                await process(read[at : at + batch_size])
        took["process"], c0 = time.process_time() - c0, time.process_time()
        collector.publisher.seal_trades()
        took["seal"] = time.process_time() - c0
        writer.close()
        counted = sum(map(len, reads))
        stats = collector.stats
        if counted != frames or stats.frames != frames or not stats.trades:
            raise RuntimeError(
                f"{counted} cut, {stats.frames} landed, {stats.trades} trades of {frames} frames"
            )
    return {
        "frames": frames,
        "trades": stats.trades,
        "messages": len(collector.publisher.outbox),
        **{f"{stage}_us": round(1e6 * took[stage] / frames, 3) for stage in STAGES},
    }


def role(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench live_path --role")
    parser.add_argument("--role", action="store_true")
    parser.add_argument("--frames", type=int, required=True)
    parser.add_argument("--instruments", required=True)
    parser.add_argument("--depth-share", type=float, required=True)
    args = parser.parse_args(argv)
    result = asyncio.run(_stages(args.instruments.split(","), args.frames, args.depth_share))
    try:
        from marketdata_assets.core.compiled import active
    except ImportError:  # a tree from before the compiled parts
        active = {}
    print(json.dumps({**result, "compiled": sorted(name for name, on in active.items() if on)}))
    return 0


def run_variant(tree: Path, compiled: str, args) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree), "MARKETDATA_COMPILED": compiled}
    # this file run as a script: the tree's own package (and sender) on its path, this role in every tree
    command = [sys.executable, str(Path(__file__).resolve()), "--role", "--frames", str(args.frames)]
    command += ["--instruments", args.instruments, "--depth-share", str(args.depth_share)]
    done = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{tree} MARKETDATA_COMPILED={compiled}: {done.stderr[-2000:]}")
    return json.loads(done.stdout.splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--role" in argv:
        return role(argv)
    parser = argparse.ArgumentParser(prog="bench live_path", description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--instruments", default=INSTRUMENTS)
    parser.add_argument("--depth-share", type=float, default=0.25)
    parser.add_argument("--tree", type=Path, help="another checkout, run in the same rounds (pure Python)")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    variants = {"compiled": (REPO, "1"), "pure": (REPO, "0")}
    if args.tree:
        variants["tree"] = (args.tree.resolve(), "0")
    samples: dict[str, list[dict]] = {name: [] for name in variants}
    load_before = os.getloadavg()
    for k in range(args.rounds):
        order = list(variants) if k % 2 == 0 else list(reversed(variants))
        for name in order:
            samples[name].append(run_variant(*variants[name], args))
    report = {"frames": args.frames, "instruments": args.instruments, "depth_share": args.depth_share}
    report |= {"load_before": load_before, "load_after": os.getloadavg(), "samples": samples}
    count = args.instruments.count(",") + 1
    print(
        f"CPU µs a frame, median of {args.rounds} rounds ({args.frames:,} frames, {count} instruments, ",
        end="",
    )
    print(f"{args.depth_share:.0%} depth diffs)")
    print(f"{'variant':<10}" + "".join(f"{stage:>10}" for stage in (*STAGES, "total")))
    for name, runs in samples.items():
        medians = {stage: statistics.median(r[f"{stage}_us"] for r in runs) for stage in STAGES}
        totals = [sum(r[f"{stage}_us"] for stage in STAGES) for r in runs]
        report[name] = {**medians, "total": statistics.median(totals), "compiled": runs[0]["compiled"]}
        print(f"{name:<10}" + "".join(f"{v:>10.3f}" for v in (*medians.values(), statistics.median(totals))))
    print(f"load average before {load_before}, after {report['load_after']}")
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
