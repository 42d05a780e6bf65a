"""The crypto replay as a CLI: `python -m marketdata_assets.replay.crypto --port 8766 --seed 7`
(`--help` lists the flags; a `--config` JSON file holds any `ReplayConfig` field, flags override it)."""

from __future__ import annotations

import argparse
from collections.abc import Iterable

from marketdata_assets.replay import cli_parser, config_from_cli, run_cli
from marketdata_assets.replay.crypto.config import Fault, ReplayConfig
from marketdata_assets.replay.crypto.server import CryptoReplayServer


def build_arg_parser() -> argparse.ArgumentParser:
    p = cli_parser(
        "marketdata_assets.replay.crypto",
        "Replay of Binance spot, OKX v5 and Deribit v2 market data (formats, quirks, faults) on one port.",
        port=8766,
        config="ReplayConfig fields (faults too)",
    )
    p.add_argument("--trades-per-day", type=int)
    p.add_argument("--burst-run", type=int, help="put this many trades in one millisecond once a day")
    p.add_argument(
        "--weight-limit", type=int, dest="binance_weight_limit", help="Binance weight per window (6000)"
    )
    p.add_argument(
        "--weight-window", type=float, dest="weight_window_s", help="seconds per weight window (60)"
    )
    p.add_argument("--now", help="ISO time: data exists only before it (default: the wall clock)")
    p.add_argument("--latency", type=float, help="add this many seconds to every data request")
    return p


def server_from_args(args: argparse.Namespace) -> CryptoReplayServer:
    config = config_from_cli(
        args,
        ReplayConfig.from_dict,
        ("seed", "trades_per_day", "burst_run", "binance_weight_limit", "weight_window_s", "now"),
    )
    if args.latency:
        config.faults.append(Fault(kind="latency", latency_s=args.latency))
    return CryptoReplayServer(config, host=args.host, port=args.port)


def main(argv: Iterable[str] | None = None) -> int:
    fault = 'a fault as JSON, e.g. \'{"kind":"rate_limit","venue":"BINANCE","every":5}\' (repeatable)'
    return run_cli(argv, build_arg_parser(), server_from_args, fault=fault)


if __name__ == "__main__":
    raise SystemExit(main())
