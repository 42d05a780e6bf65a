"""The stocks replay: Tushare Pro (`replay.tushare`) and Yahoo Finance chart v8 (`replay.yahoo`)
served on one port, with the fault list, the request log and the control endpoints they share.

Deterministic data (`replay.stock_market`) with the ground truth in process and at `GET /_replay/truth`.
Faults, control endpoints, in-process use and CLI: docs/tests.md, "The stocks replay".
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Iterable
from datetime import date
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from marketdata_assets.replay import (
    BackgroundServer,
    FaultList,
    Reply,
    cli_parser,
    config_from_cli,
    json_reply,
    run_cli,
)
from marketdata_assets.replay.stock_market import Fault, Host, StocksReplayConfig
from marketdata_assets.replay.tushare import DAILY_FIELDS, STK_MINS_FIELDS, TushareReplay
from marketdata_assets.replay.yahoo import YahooReplay


class StocksReplayServer(Host, FaultList, BackgroundServer):
    """The replay server; a context manager serving in a background thread (`base_url`)."""

    thread_name = "stocks-replay"

    def __init__(self, config: StocksReplayConfig | None = None, *, host: str = "127.0.0.1", port: int = 0):
        super().__init__(config or StocksReplayConfig())
        self.tushare = TushareReplay(self)
        self.yahoo = YahooReplay(self)
        # verbose lines give the path only: Tushare tokens travel in bodies and are never printed
        self.listen(
            host, port, self.handle, name="stocks-replay", methods=("GET", "POST", "HEAD"), log_query=False
        )

    def banner(self) -> str:
        """The CLI's first line of output."""
        return (
            f"stocks replay (Tushare Pro + Yahoo chart v8) on {self.base_url}: seed {self.config.seed}, "
            f"{len(self.config.faults)} faults"
        )

    # ---- control ---------------------------------------------------------------------------

    def add_fault(self, kind: str, **kwargs) -> Fault:
        return self.keep_fault(Fault(kind, **kwargs))

    def configure(self, **changes) -> StocksReplayConfig:
        with self.lock:
            for key, value in changes.items():
                if key == "faults" or not hasattr(self.config, key):
                    raise TypeError(f"unknown config field {key!r}")
                setattr(self.config, key, value)
            return self.config

    def reset_counters(self) -> None:
        with self.lock:
            self.tushare.reset()
            self.log.clear()
            for fault in self.config.faults:
                fault.seen = fault.fired = 0

    def requests_for(self, source: str | None = None, instrument: str | None = None) -> list[dict]:
        with self.lock:
            return [
                e
                for e in self.log
                if (source is None or e["provider"] == source)
                and (instrument is None or instrument.upper() in e["symbols"])
            ]

    def state(self) -> dict:
        with self.lock:
            config = {
                k: v
                for k, v in dataclasses.asdict(self.config).items()
                if k not in ("faults", "tushare_tokens")
            }
            return {
                "config": config,
                "faults": [f.public() for f in self.config.faults],
                "requests": len(self.log),
                "tushare_calls": {f"{k[1]}": v for k, v in self.tushare.total_counts.items()},
            }

    # ---- dispatch --------------------------------------------------------------------------

    def handle(self, method: str, target: str, headers, body: bytes) -> Reply:
        parts = urlsplit(target)
        path = parts.path
        self._local.path = path
        if path.startswith("/_replay/"):
            return self._control(method, path.rstrip("/"), parts.query, body)
        if path.startswith("/v8/finance/chart/") and method in ("GET", "HEAD"):
            return self.yahoo.answer(unquote(path[len("/v8/finance/chart/") :]), parts.query)
        if method == "POST" and (path.rstrip("/") in ("", "/dataapi") or path.startswith("/dataapi/")):
            api = path[len("/dataapi/") :].strip("/") if path.startswith("/dataapi/") else None
            return self.tushare.answer(api, body)
        return Reply(404, b'{"detail":"Not Found"}', {"Content-Type": "application/json"})

    def _control(self, method: str, path: str, query: str, body: bytes) -> Reply:
        def reply(status: int, payload: Any) -> Reply:
            return json_reply(status, payload, ensure_ascii=False)

        try:
            payload = json.loads(body or b"{}")
        except ValueError:
            return reply(400, {"detail": "JSON body expected"})
        if path == "/_replay/state":
            return reply(200, self.state())
        if path == "/_replay/requests":
            with self.lock:
                return reply(200, list(self.log))
        if path == "/_replay/faults" and method == "POST":
            try:
                if payload.get("clear"):
                    self.clear_faults()
                if payload.get("config"):
                    self.configure(**payload["config"])
                for spec in payload.get("add", []):
                    self.add_fault(**spec)
                if payload.get("reset_counters"):
                    self.reset_counters()
            except (TypeError, ValueError) as error:
                return reply(400, {"detail": str(error)})
            return reply(200, self.state())
        if path == "/_replay/truth":
            args = dict(parse_qsl(query))
            try:
                day = date.fromisoformat(args.get("day", ""))
            except ValueError:
                return reply(400, {"detail": "day=YYYY-MM-DD required"})
            instrument = args.get("symbol", "")
            source = args.get("provider", "tushare")
            if source == "tushare":
                return reply(200, {"fields": STK_MINS_FIELDS, "items": self.tushare.minutes(instrument, day)})
            if source == "tushare_daily":
                row = self.tushare.daily(instrument, day)
                return reply(200, {"fields": DAILY_FIELDS, "items": [row] if row else []})
            if source == "yahoo":
                return reply(
                    200,
                    {
                        "fields": ["timestamp", "open", "high", "low", "close", "volume", "kind", "missing"],
                        "items": self.yahoo.rows(instrument, day),
                    },
                )
            return reply(400, {"detail": "provider= tushare | tushare_daily | yahoo"})
        return reply(404, {"detail": "Not found."})


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def build_arg_parser() -> argparse.ArgumentParser:
    p = cli_parser(
        "marketdata_assets.replay.stocks",
        "Replay of Tushare Pro and Yahoo Finance chart v8 (formats, quirks, faults).",
        port=8766,
        config="StocksReplayConfig fields (faults too)",
    )
    p.add_argument("--latency", type=float, dest="latency_s")
    p.add_argument(
        "--tushare-token",
        action="append",
        dest="tushare_tokens",
        help="accepted token (repeatable); default: any non-empty token",
    )
    p.add_argument("--tushare-minute-limit", type=int)
    p.add_argument("--tushare-hour-limit", type=int)
    p.add_argument("--tushare-day-limit", type=int)
    p.add_argument(
        "--limit-window", type=float, dest="limit_window_s", help="seconds of the per-minute window (60)"
    )
    p.add_argument("--stk-mins-row-limit", type=int)
    p.add_argument(
        "--no-auction-bar", action="store_true", help="fold the 09:30 auction into 09:31 (240 bars)"
    )
    p.add_argument("--yahoo-days-back", type=float)
    return p


def server_from_args(args: argparse.Namespace) -> StocksReplayServer:
    config = config_from_cli(
        args,
        StocksReplayConfig.from_dict,
        (
            "seed",
            "latency_s",
            "tushare_tokens",
            "tushare_minute_limit",
            "tushare_hour_limit",
            "tushare_day_limit",
            "limit_window_s",
            "stk_mins_row_limit",
            "yahoo_days_back",
        ),
    )
    if args.no_auction_bar:
        config.tushare_auction_bar = False
    return StocksReplayServer(config, host=args.host, port=args.port)


def main(argv: Iterable[str] | None = None) -> int:
    return run_cli(
        argv,
        build_arg_parser(),
        server_from_args,
        fault='a Fault as JSON, e.g. \'{"kind":"not_found","symbols":["DEAD.L"]}\' (repeatable)',
        verbose="print each request line (never a token) to stderr",
    )


if __name__ == "__main__":
    raise SystemExit(main())
