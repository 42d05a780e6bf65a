"""The command line of a venue's WebSocket replay (okx_ws, deribit_ws): the replay on a REST replay's
market (their books and tapes agree), until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse

from marketdata_assets.replay import serve_until_terminated
from marketdata_assets.replay.crypto.config import ReplayConfig
from marketdata_assets.replay.crypto.server import CryptoReplayServer
from marketdata_assets.replay.crypto.ws_server import WsConfig


def run(replay_class, name: str, port: int, argv: list[str] | None) -> int:
    p = argparse.ArgumentParser(prog=f"python -m marketdata_assets.replay.crypto.{name}")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=port, help="WebSocket port (0: a free one, printed)")
    p.add_argument("--rest-port", type=int, default=0, help="the REST replay's port")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tick-s", type=float, default=0.1, help="seconds between two moves of each instrument")
    args = p.parse_args(argv)
    rest = CryptoReplayServer(ReplayConfig(seed=args.seed), host=args.host, port=args.rest_port)
    ws = replay_class(WsConfig(tick_s=args.tick_s), rest=rest, host=args.host, port=args.port).start()
    print(f"{replay_class.venue} WebSocket replay on {ws.url} (REST on {rest.base_url})", flush=True)
    try:
        return serve_until_terminated(rest.httpd)
    finally:
        ws.stop()
