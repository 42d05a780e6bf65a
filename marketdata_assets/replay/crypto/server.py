"""The crypto replay server: one port for every venue, a request routed to the venue module whose
path prefix it carries, faults fired the same way for all, the control endpoints, and the ground
truth a correct client must produce (the normalized frames of datasets.frames).

The server owns what crosses venues: the request log, the faults and their counters, the lock,
and turning a venue's payload into bytes (damaged by body faults where they fire).
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections import deque
from datetime import date
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlsplit

from marketdata_assets.replay import BackgroundServer, FaultList, Reply, json_reply
from marketdata_assets.replay.crypto.binance import Binance
from marketdata_assets.replay.crypto.binance_um import BinanceUm
from marketdata_assets.replay.crypto.config import BODY_FAULTS, Fault, ReplayConfig
from marketdata_assets.replay.crypto.deribit import Deribit
from marketdata_assets.replay.crypto.okx import Okx
from marketdata_assets.replay.crypto.tape import DAY_US, Market, base_and_quote, day_us
from marketdata_assets.replay.crypto.venue import VendorError, Venue

if TYPE_CHECKING:  # Polars is imported only by the ground-truth helpers: the CLI starts fast
    import polars as pl

VENUES: tuple[type[Venue], ...] = (Binance, BinanceUm, Okx, Deribit)


class CryptoReplayServer(FaultList, BackgroundServer):
    """The replay server; a context manager serving in a background thread (`base_url`)."""

    thread_name = "crypto-replay"

    def __init__(self, config: ReplayConfig | None = None, *, host: str = "127.0.0.1", port: int = 0):
        self.config = config or ReplayConfig()
        self.lock = threading.RLock()
        self.market = Market(self.config, self.lock)
        self.venues: dict[str, Venue] = {cls.name: cls(self.config, self.market) for cls in VENUES}
        self.log: deque[dict] = deque(maxlen=200_000)
        self.listen(host, port, self.dispatch, name="crypto-replay")

    def banner(self) -> str:
        """The CLI's first line of output."""
        venues = "; ".join(f"{v}: {', '.join(i)}" for v, i in self.config.instruments.items())
        return (
            f"crypto market-data replay on {self.base_url} ({venues}); {self.config.trades_per_day} "
            f"trades/day, seed {self.config.seed}, {len(self.config.faults)} fault(s)"
        )

    # ---- control ---------------------------------------------------------------------------

    def add_fault(self, fault: Fault | None = None, **kwargs) -> Fault:
        return self.keep_fault(fault or Fault(**kwargs))

    def reset(self) -> None:
        with self.lock:
            self.log.clear()
            for venue in self.venues.values():
                venue.reset()
            for fault in self.config.faults:
                fault.seen = fault.fired = 0

    def requests(
        self, venue: str | None = None, instrument: str | None = None, endpoint: str | None = None
    ) -> list[dict]:
        with self.lock:
            return [
                r
                for r in self.log
                if (venue is None or r["venue"] == venue)
                and (instrument is None or r["instrument"] == instrument)
                and (endpoint is None or r["endpoint"] == endpoint)
            ]

    def state(self) -> dict:
        with self.lock:
            by_venue: dict[str, int] = {}
            for r in self.log:
                by_venue[r["venue"]] = by_venue.get(r["venue"], 0) + 1
            binance = self.venues[Binance.name]
            return {
                "requests": len(self.log),
                "by_venue": by_venue,
                "weight_used": binance.weight_used,
                "weight_limit": self.config.binance_weight_limit,
                "weight_window_s": self.config.weight_window_s,
                "limit_refusals": {v.name: v.limit_refusals for v in self.venues.values()},
                "faults": [dataclasses.asdict(f) for f in self.config.faults],
                "now": self.market.now_us(),
            }

    def now_us(self) -> int:
        return self.market.now_us()

    # ---- ground truth ----------------------------------------------------------------------

    def truth_trades(self, venue: str, instrument: str, day: date, *, time_unit: str = "ms") -> pl.DataFrame:
        """The normalized trades frame a correct client returns for [day, day + 1)."""
        from marketdata_assets.datasets.normalized import Trade, trades_frame

        venue = venue.upper()
        rows = self.market.rows_between(venue, instrument, day_us(day), day_us(day) + DAY_US - 1)
        trades = []
        for tape, i in rows:
            t = tape.ts[i]
            if time_unit == "ms":  # Binance's tapes have microseconds, the others' are whole milliseconds
                t -= t % 1000
            base, quote = base_and_quote(tape.spec, tape.price[i], tape.size[i])
            seq = tape.first_id + i
            trade_id = self.venues[venue].trade_id(instrument, seq)
            side = "buy" if tape.buy[i] else "sell"
            trades.append(Trade(venue, instrument, trade_id, tape.price[i], base, quote, side, seq, t, 0, 0))
        return trades_frame(trades)

    def truth_bars(self, venue: str, instrument: str, day: date) -> pl.DataFrame:
        """The normalized 1-minute bars of [day, day + 1) (trades is null where the venue has no count)."""
        import polars as pl

        from marketdata_assets.datasets.frames import BARS_SCHEMA

        venue = venue.upper()
        source = self.venues[venue]
        bars = self.market.bars_between(venue, instrument, day_us(day), day_us(day) + DAY_US - 1)
        rows = [bar[:8] for bar in bars]
        if source.bar_decimals is not None:  # what the venue's decimal strings carry
            rows = [
                (*r[:5], round(r[5], source.bar_decimals), round(r[6], source.bar_decimals), r[7])
                for r in rows
            ]
        n = len(rows)
        return pl.DataFrame(
            {
                "ts": pl.Series([r[0] for r in rows], dtype=pl.Int64).cast(BARS_SCHEMA["ts"]),
                "venue": [venue] * n,
                "instrument": [instrument] * n,
                "open": [r[1] for r in rows],
                "high": [r[2] for r in rows],
                "low": [r[3] for r in rows],
                "close": [r[4] for r in rows],
                "volume": [r[5] for r in rows],
                "amount": [r[6] for r in rows],
                "trades": pl.Series(
                    [r[7] if source.bar_trade_counts else None for r in rows], dtype=pl.Int64
                ),
            },
            schema=BARS_SCHEMA,
        )

    def last_book(self, venue: str, instrument: str) -> pl.DataFrame:
        """The normalized book last served for (venue, instrument); Binance's `ts` is null-free but
        unknowable (receive time), so compare the other columns."""
        import polars as pl

        from marketdata_assets.datasets.frames import BOOKS_SCHEMA

        with self.lock:
            ts, update_id, rows = self.market.books[(venue.upper(), instrument)]
        n = len(rows)
        return pl.DataFrame(
            {
                "ts": pl.Series([ts] * n, dtype=pl.Int64).cast(BOOKS_SCHEMA["ts"]),
                "venue": [venue.upper()] * n,
                "instrument": [instrument] * n,
                "side": [r[0] for r in rows],
                "level": pl.Series([r[1] for r in rows], dtype=pl.Int32),
                "price": [r[2] for r in rows],
                "quantity": [r[3] for r in rows],
                "update_id": pl.Series([update_id] * n, dtype=pl.Int64),
            },
            schema=BOOKS_SCHEMA,
        )

    # ---- request handling -------------------------------------------------------------------

    def dispatch(self, method: str, target: str, headers, body: bytes) -> Reply:
        if target.startswith("/_replay/"):
            return self.control(method, target, body)
        return self.handle(method, target, headers)

    def route(self, path: str) -> Venue | None:
        return next((v for v in self.venues.values() if path.startswith(v.prefix)), None)

    def handle(self, method: str, target: str, headers) -> Reply:
        url = urlsplit(target)
        path, query = url.path, dict(parse_qsl(url.query, keep_blank_values=True))
        if path.startswith("/_replay/"):
            return Reply(200)  # answered by `control`
        venue = self.route(path)
        if venue is None:
            return Reply(404, b"Not Found", {"Content-Type": "text/plain"})
        instrument, endpoint = venue.instrument(query), venue.endpoint(path)
        with self.lock:
            self.log.append(
                {
                    "t": time.monotonic(),
                    "venue": venue.name,
                    "path": path,
                    "query": query,
                    "instrument": instrument,
                    "endpoint": endpoint,
                    "status": None,
                }
            )
            entry = self.log[-1]
            extra_headers, refusal = venue.admit(path, query)
            if refusal is not None:
                entry["status"] = refusal.status
                return refusal
            fired = [
                f for f in self.config.faults if f.matches(venue.name, instrument, endpoint) and f.fire()
            ]
            delay = sum(f.latency_s for f in fired if f.kind == "latency")
            replacing = next((f for f in fired if f.kind not in BODY_FAULTS and f.kind != "latency"), None)
            if replacing is not None:
                reply = venue.fault_reply(replacing)
            else:
                reply = self._answer(
                    venue, path, query, headers, [f.kind for f in fired if f.kind in BODY_FAULTS]
                )
            reply.headers.update(extra_headers)
            reply.delay_s = delay
            entry["status"] = reply.status
            return reply

    @staticmethod
    def _answer(venue: Venue, path: str, query: dict, headers, body_faults: list[str]) -> Reply:
        """The venue's answer as JSON, damaged by the body faults that fired (not its own errors)."""
        try:
            payload, status = venue.answer(path, query, headers), 200
        except VendorError as error:
            payload, status, body_faults = error.payload, error.status, []
        payload = venue.envelope(payload, query)
        for fault_kind in body_faults:
            if fault_kind != "malformed_json":
                venue.mutate(payload, path, fault_kind)
        reply = json_reply(status, payload)
        if "malformed_json" in body_faults:
            reply.body = reply.body[: max(1, len(reply.body) // 2)]
        return reply

    # ---- control endpoints -----------------------------------------------------------------

    def control(self, method: str, target: str, body: bytes) -> Reply:
        url = urlsplit(target)
        path, query = url.path, dict(parse_qsl(url.query))
        try:
            if path == "/_replay/state" and method == "GET":
                return json_reply(200, self.state())
            if path == "/_replay/faults" and method == "POST":
                data = json.loads(body or b"{}")
                faults = [
                    Fault(**{k: v for k, v in f.items() if k not in ("seen", "fired")})
                    for f in data.get("faults", [])
                ]
                with self.lock:
                    if data.get("replace", False):
                        self.config.faults.clear()
                    self.config.faults.extend(faults)
                return json_reply(200, self.state())
            if path == "/_replay/faults" and method == "DELETE":
                self.clear_faults()
                return json_reply(200, self.state())
            if path == "/_replay/reset" and method == "POST":
                self.reset()
                return json_reply(200, self.state())
            if path == "/_replay/truth" and method == "GET":
                frame = self.truth_trades(
                    query["venue"],
                    query["instrument"],
                    date.fromisoformat(query["day"]),
                    time_unit=query.get("time_unit", "ms"),
                )
                return json_reply(
                    200,
                    {
                        "count": frame.height,
                        "trade_ids": frame["trade_id"].to_list(),
                        "first_ts": str(frame["ts"].min()),
                        "last_ts": str(frame["ts"].max()),
                    },
                )
        except (KeyError, ValueError, TypeError) as error:
            return json_reply(400, {"detail": f"{type(error).__name__}: {error}"})
        return json_reply(404, {"detail": "unknown control endpoint"})
