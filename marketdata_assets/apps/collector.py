"""The live collector as a process:
`python -m marketdata_assets.apps.collector --instruments BTCUSDT,ETHUSDT`.

Runs ingest.live's collector for one venue (`--venue BINANCE | BINANCE_UM | OKX | DERIBIT`, default
Binance spot; `--datasets trades,books,tickers,...`, default each venue's: trades, books, tickers)
until SIGINT/SIGTERM: frames to the landing files under
the state dir (settings.live_landing_dir()), trades to NATS JetStream (NATS_URL; `--no-nats` to run
without), the stream created or updated first. `--ws-url`/`--rest-url` point it at the replays
(`python -m marketdata_assets.replay.crypto.binance_ws`, `okx_ws`, `deribit_ws`). A bare one-venue process
(JetStream only, no endpoints); `marketdata collect` (apps/cli/live.py, apps/live.py, which takes its
`PROTOCOLS` from here) runs every enabled venue in one process with the sinks, the consumer and the endpoints.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from pathlib import Path

from marketdata_assets.core import settings
from marketdata_assets.ingest.live.collect.collector import CollectorConfig, LiveCollector, run_streaming
from marketdata_assets.sources.registry import STREAMS
from marketdata_assets.stores.jetstream import JetStreamStore, StreamSpec
from marketdata_assets.stores.landing import LandingWriter

PROTOCOLS = STREAMS  # venue -> its stream protocol, declared in its package (sources/registry.py)


def rest_base(venue: str, override: str | None = None) -> str:
    """The venue's REST base for book snapshots and the gap-hour repair: `override` (a replay's in
    tests), else the sources config's (its `base_url_env` variable, e.g. OKX_BASE_URL, else the
    file's `base_url`: the vendor's public host)."""
    if override:
        return override.rstrip("/")
    from marketdata_assets.sources.config import rest_base as configured

    return configured(venue)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m marketdata_assets.apps.collector", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--venue", default="BINANCE", choices=sorted(PROTOCOLS), help="whose public stream")
    p.add_argument(
        "--instruments",
        default=None,
        help="comma-separated, as the venue spells them (default: two of its majors)",
    )
    p.add_argument(
        "--datasets",
        default=None,
        help="comma-separated datasets to collect (default: trades,books,"
        "tickers); also bars_1m, funding, mark_price, liquidations, "
        "open_interest where the venue has them",
    )
    p.add_argument("--ws-url", default=None, help="default: the venue's public WebSocket")
    p.add_argument(
        "--rest-url",
        default=None,
        help="REST base for book snapshots (Binance) and the gap-hour "
        "repair (every venue); default: the sources config's",
    )
    p.add_argument("--landing-dir", type=Path, default=None, help="default: <state dir>/landing/live")
    p.add_argument("--nats-url", default=None, help="default: NATS_URL")
    p.add_argument("--no-nats", action="store_true", help="land raw frames only, publish nothing")
    p.add_argument("--stream", default=StreamSpec.name, help="JetStream stream name")
    p.add_argument("--stale-s", type=float, default=None, help="default: the venue's (10 s; Deribit 15 s)")
    p.add_argument("--rollover-s", type=float, default=None, help="default: 15 min before the venue's cut")
    return p


async def main_async(args: argparse.Namespace) -> dict:
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()] if args.datasets else None
    protocol = PROTOCOLS[args.venue](datasets=datasets)
    instruments = args.instruments or ",".join(protocol.default_instruments)
    config = CollectorConfig(
        [i.strip().upper() for i in instruments.split(",") if i.strip()],
        args.ws_url or protocol.ws_url,
        rest_base(args.venue, args.rest_url),
        stale_s=args.stale_s or protocol.stale_s,
        rollover_s=args.rollover_s,
    )
    writer = LandingWriter(args.landing_dir or settings.live_landing_dir(), protocol.venue)
    store = None
    if not args.no_nats:
        store = await JetStreamStore(
            args.nats_url or settings.get("NATS_URL"), name="marketdata-collector"
        ).connect()
        await store.ensure_stream(StreamSpec(name=args.stream))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    collector = LiveCollector(protocol, config, writer, store)
    try:
        await collector.run(stop)
    finally:
        if store is not None:
            await store.close()
    return {k: v for k, v in vars(collector.stats).items() if k != "changed"}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    print(json.dumps(run_streaming(main_async(args)), default=str), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
