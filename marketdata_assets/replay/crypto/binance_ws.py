"""Binance spot WebSocket market streams, replayed: the venue's protocol, limits and misbehaviour.

Combined and raw streams, live control messages, `trade` and `depthUpdate` events (real U/u) from the
tapes (and `aggTrade`, each trade an aggregate of its one fill), with a REST replay passed in answering
`/api/v3/depth` from the same books; Binance's control, ping and lifetime limits, and faults. What it serves,
its faults and limits: docs/tests.md, "The Binance spot WebSocket replay".
"""

from __future__ import annotations

import json
import time
from urllib.parse import parse_qsl, urlsplit

from websockets.asyncio.server import ServerConnection

from marketdata_assets.replay.crypto.config import BINANCE, ReplayConfig
from marketdata_assets.replay.crypto.live_book import LiveInstrument, fmt8, last_closed_bar, open_bar
from marketdata_assets.replay.crypto.ws_server import (
    WS_FAULT_KINDS,
    Client,
    TickFaults,
    WsConfig,
    WsFault,
    WsServer,
)

STREAM_KINDS = ("trade", "depth", "depth@100ms", "bookTicker", "kline_1m", "aggTrade")


def agg_trade(trade: dict) -> dict:
    """Spot's `aggTrade` event of a replayed `trade`: an aggregate of that one fill (a = f = l = its id)."""
    return {
        "e": "aggTrade",
        "E": trade["E"],
        "s": trade["s"],
        "a": trade["t"],
        "p": trade["p"],
        "q": trade["q"],
        "f": trade["t"],
        "l": trade["t"],
        "T": trade["T"],
        "m": trade["m"],
        "M": True,
    }


def kline(instrument: str, bar: tuple, closed: bool, event_ms: int) -> dict:
    """A `kline` event of a tape bar (live_book.last_closed_bar / open_bar)."""
    open_ms = bar[0] // 1000
    return {
        "e": "kline",
        "E": event_ms,
        "s": instrument,
        "k": {
            "t": open_ms,
            "T": open_ms + 59_999,
            "s": instrument,
            "i": "1m",
            "f": -1,
            "L": -1,
            "o": fmt8(bar[1]),
            "c": fmt8(bar[4]),
            "h": fmt8(bar[2]),
            "l": fmt8(bar[3]),
            "v": fmt8(bar[5]),
            "n": bar[7],
            "x": closed,
            "q": fmt8(bar[6]),
            "V": fmt8(bar[9]),
            "Q": fmt8(bar[10]),
            "B": "0",
        },
    }


__all__ = [
    "WS_FAULT_KINDS",
    "BinanceWsReplay",
    "Client",
    "WsConfig",
    "WsFault",
]  # the shared ones from ws_server


class BinanceWsReplay(WsServer):
    """The WebSocket replay server, serving from a background thread (`url`)."""

    venue = BINANCE
    stream_kinds = STREAM_KINDS
    trade_kind = "trade"

    counted = ("limit_closes",)

    # ---- connections ------------------------------------------------------------------------

    all_market: tuple[str, ...] = ()  # the venue's all-market streams (`!forceOrder@arr`: every symbol's)

    def _valid(self, stream: str) -> bool:
        if stream in self.all_market:
            return True
        instrument, _, kind = stream.partition("@")
        return (
            instrument == instrument.lower()
            and instrument.upper() in self.instruments
            and kind in self.stream_kinds
        )

    def _open(self, connection: ServerConnection) -> Client | None:
        """The client a request path asks for (`/stream?streams=`, `/ws/<stream>`, `/ws`), or None."""
        url = urlsplit(connection.request.path)
        if url.path.rstrip("/") == "/stream":
            named = dict(parse_qsl(url.query)).get("streams", "")
            streams, combined = [s for s in named.split("/") if s], True
        elif url.path.startswith("/ws"):
            streams, combined = [s for s in url.path.removeprefix("/ws").strip("/").split("/") if s], False
        else:
            return None
        if len(streams) > self.config.max_streams or not all(self._valid(s) for s in streams):
            return None
        self.counts["connections"] += 1
        return Client(self.counts["connections"], connection, set(streams), combined)

    async def _serve(self, connection: ServerConnection) -> None:
        client = self._open(connection)
        if client is None:
            await connection.close(1008, "Invalid request")
            return
        await self._converse(client, self._control)

    def _deliver(self, client: Client, stream: str, payload: dict) -> None:
        if client.stalled or stream not in client.streams:
            return
        kind = stream[1:].split("@")[0] if stream.startswith("!") else stream.split("@")[1]
        payload = self.maybe_damaged(kind, payload)
        text = json.dumps(
            {"stream": stream, "data": payload} if client.combined else payload, separators=(",", ":")
        )
        self.send_data(client, text)

    # ---- control messages ------------------------------------------------------------------

    def _over_limit(self, client: Client) -> bool:
        now = time.monotonic()
        client.controls.append(now)
        while client.controls and client.controls[0] <= now - 1.0:
            client.controls.popleft()
        return len(client.controls) > self.config.control_per_s

    async def _control(self, client: Client, message: str | bytes) -> bool:
        """Answer one control message; False when the connection is closed for it."""
        if self._over_limit(client):
            self.counts["limit_closes"] += 1
            await client.connection.close(1008, "Too many requests")
            return False
        try:
            request = json.loads(message)
            method, request_id = request["method"], request.get("id")
        except (ValueError, KeyError, TypeError) as error:
            reply = {
                "error": {
                    "code": 3 if isinstance(error, ValueError) else 2,
                    "msg": f"Invalid request: {type(error).__name__}",
                },
                "id": None,
            }
            client.outbox.put_nowait(json.dumps(reply))
            return True
        client.outbox.put_nowait(
            json.dumps(
                {**self._answer(client, method, request.get("params") or []), "id": request_id},
                separators=(",", ":"),
            )
        )
        return True

    def _answer(self, client: Client, method: str, params: list) -> dict:
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            if method == "SUBSCRIBE":
                self.counts["subscribes"] += 1
                refused = [f for f in self.faults("subscribe_error") if self.counts["subscribes"] > f.after]
                if any(f.take() for f in refused):
                    return {"error": {"code": 2, "msg": "Invalid request: service temporarily unavailable"}}
            bad = [s for s in params if not isinstance(s, str) or not self._valid(s)]
            if bad:
                return {"error": {"code": 2, "msg": f"Invalid request: unknown stream {bad[0]!r}"}}
            if method == "SUBSCRIBE" and len(client.streams | set(params)) > self.config.max_streams:
                return {"error": {"code": 2, "msg": "Invalid request: too many streams"}}
            (client.streams.update if method == "SUBSCRIBE" else client.streams.difference_update)(params)
            return {"result": None}
        if method == "LIST_SUBSCRIPTIONS":
            return {"result": sorted(client.streams)}
        if method in ("SET_PROPERTY", "GET_PROPERTY"):
            if not params or params[0] != "combined":
                return {"error": {"code": 0, "msg": "Unknown property"}}
            if method == "GET_PROPERTY":
                return {"result": client.combined}
            if len(params) < 2 or not isinstance(params[1], bool):
                return {"error": {"code": 1, "msg": "Invalid value type: expected Boolean"}}
            client.combined = params[1]
            return {"result": None}
        return {
            "error": {
                "code": 2,
                "msg": f"Invalid request: unknown variant {method}, expected one of "
                "`SUBSCRIBE`, `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`, `SET_PROPERTY`, "
                "`GET_PROPERTY`",
            }
        }

    # ---- the market moving ------------------------------------------------------------------

    def move(self, name: str, live: LiveInstrument, faults: TickFaults, event_ms: int) -> None:
        """A diff event, the move's trades, the book ticker (and the venue's extras) to subscribers."""
        depth = self.depth_event(live, event_ms, faults.skip)
        trades = self.trades(live, faults.trades, event_ms)
        lower = name.lower()
        _, bids, asks = live.top(1)
        ticker = (
            {"u": depth["u"], "s": name, "b": bids[0][0], "B": bids[0][1], "a": asks[0][0], "A": asks[0][1]}
            if bids and asks
            else None
        )  # a side emptied: no best price to tell
        for client in list(self.clients.values()):
            for kind in ("depth@100ms", "depth"):
                self._deliver(client, f"{lower}@{kind}", depth)
            for trade in trades:
                self._deliver(client, f"{lower}@{self.trade_kind}", trade)
                if self.trade_kind == "trade" and f"{lower}@aggTrade" in client.streams:
                    self._deliver(client, f"{lower}@aggTrade", agg_trade(trade))
            if ticker is not None:
                self._deliver(client, f"{lower}@bookTicker", self.book_ticker(ticker, event_ms))
        self.bars(name, event_ms)
        self.extras(name, live, trades, event_ms)

    def depth_event(self, live: LiveInstrument, event_ms: int, skip: bool) -> dict:
        return live.step(event_ms, skip=skip)

    def trades(self, live: LiveInstrument, count: int, event_ms: int) -> list[dict]:
        return live.trades(count, event_ms)

    def book_ticker(self, ticker: dict, event_ms: int) -> dict:
        return ticker  # spot's bookTicker has no event time

    def extras(self, name: str, live: LiveInstrument, trades: list[dict], event_ms: int) -> None:
        """The venue's other streams of a tick (USD-M: markPrice, forceOrder)."""

    def bars(self, name: str, event_ms: int) -> None:
        """`kline_1m`: the open bar's update about every second; the last closed bar (x true) to a
        client that has not had it: at the minute's turn, and at once after it subscribed (Binance
        would make a new subscriber wait for the turn: too long for a test; a bar sent twice has one id)."""
        stream = f"{name.lower()}@kline_1m"
        clients = [c for c in self.clients.values() if stream in c.streams]
        if not clients:
            return
        now_us = self.market.now_us()
        closed = last_closed_bar(self.market, self.venue, name, now_us)
        update = (
            kline(name, open_bar(self.market, self.venue, name, now_us), False, event_ms)
            if self.due("kline", name, 1.0)
            else None
        )
        for client in clients:
            if closed is not None and client.bars_sent.get(stream) != closed[0]:
                client.bars_sent[stream] = closed[0]
                self._deliver(client, stream, kline(name, closed, True, event_ms))
            if update is not None:
                self._deliver(client, stream, update)


def main(argv: list[str] | None = None) -> int:
    """`python -m marketdata_assets.replay.crypto.binance_ws --port 8767 --rest-port 8766`: the WebSocket
    replay and the REST replay on one market (their books agree), until Ctrl-C or SIGTERM."""
    import argparse

    from marketdata_assets.replay import serve_until_terminated
    from marketdata_assets.replay.crypto.server import CryptoReplayServer

    p = argparse.ArgumentParser(
        prog="python -m marketdata_assets.replay.crypto.binance_ws", description=main.__doc__
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8767, help="WebSocket port (0: a free one, printed)")
    p.add_argument("--rest-port", type=int, default=8766, help="the REST replay's port")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tick-s", type=float, default=0.1, help="seconds between two moves of each instrument")
    p.add_argument("--lifetime-s", type=float, default=86_400.0, help="a connection's life (Binance: 24 h)")
    args = p.parse_args(argv)
    rest = CryptoReplayServer(ReplayConfig(seed=args.seed), host=args.host, port=args.rest_port)
    ws = BinanceWsReplay(
        WsConfig(tick_s=args.tick_s, lifetime_s=args.lifetime_s), rest=rest, host=args.host, port=args.port
    ).start()
    print(f"Binance WebSocket replay on {ws.url} (REST on {rest.base_url})", flush=True)
    try:
        return serve_until_terminated(rest.httpd)
    finally:
        ws.stop()


if __name__ == "__main__":
    raise SystemExit(main())
