"""Deribit's API v2 over WebSocket, replayed (JSON-RPC 2.0, as sources/deribit/stream.py documents it).

`/ws/api/v2`: `public/subscribe` / `public/unsubscribe` `{"channels": [..]}` answered with the list
of channels (an unknown one: error 10000-range `{"code": 11050, "message": "bad_request"}`; the
`subscribe_error` fault: `{"code": 10028, "message": "too_many_requests"}`); `public/set_heartbeat`
`{"interval": s}` (at least 10) answered "ok", after which a `test_request` heartbeat goes out every
interval (`WsConfig.heartbeat_s` shortens it in tests) and a connection that has not answered the
last one with `public/test` is closed; `public/test` answered `{"version"}`. Channels
`trades.<instrument>.100ms` (lists of trades from the tape) and `book.<instrument>.100ms`: the
snapshot at subscribe (`["new", price, amount]`), then every tick a `change` (prev_change_id = the
update id before the move, change_id = after it; `new` / `change` / `delete` entries). Prices and
amounts are JSON numbers. `ticker.<instrument>.100ms`: every `ticker_every_s`, the REST replay's
`public/ticker` answer (deribit.ticker: mark and index of the last minute that ended, open
interest, current_funding and funding_8h for perpetuals, the day's stats) with the live book's
best bid/ask and the tick's time, so live and REST agree. Faults (ws_replay.py): disconnect, stall,
skip_sequence, subscribe_error, burst, bad_frame (`channel` "ticker": the next ticker with its fields
missing); the cut after `lifetime_s` (a maintenance restart: a close frame, no warning).
"""

from __future__ import annotations

import asyncio
import json

from marketdata_assets.replay.crypto.config import DERIBIT
from marketdata_assets.replay.crypto.deribit import ticker, trade_id
from marketdata_assets.replay.crypto.live_book import LiveInstrument
from marketdata_assets.replay.crypto.ws_replay import Move, VenueWsReplay
from marketdata_assets.replay.crypto.ws_server import Client


def text(value: dict) -> str:
    return json.dumps({"jsonrpc": "2.0", **value}, separators=(",", ":"))


def notification(channel: str, data) -> str:
    return text({"method": "subscription", "params": {"channel": channel, "data": data}})


class DeribitWsReplay(VenueWsReplay):
    venue = DERIBIT
    path = "/ws/api/v2"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.heartbeats: dict[int, asyncio.Task] = {}
        self.unanswered: dict[int, int] = {}  # client -> test_requests not answered yet

    def _valid(self, channel: str) -> bool:
        kind, _, rest = channel.partition(".")
        instrument, _, interval = rest.rpartition(".")
        return kind in ("trades", "book", "ticker") and instrument in self.instruments and interval == "100ms"

    async def control(self, client: Client, message: str | bytes) -> bool:
        try:
            request = json.loads(message)
            method, request_id, params = request["method"], request.get("id"), request.get("params") or {}
        except (ValueError, KeyError, TypeError):
            self.reply(client, text({"id": None, "error": {"code": -32700, "message": "parse_error"}}))
            return True
        self.reply(client, text({"id": request_id, **self._answer(client, method, params)}))
        if method == "public/subscribe":
            for channel in client.pending_snapshots:
                self._snapshot(client, channel)
            client.pending_snapshots = []
        return True

    def _answer(self, client: Client, method: str, params: dict) -> dict:
        if method == "public/test":
            self.unanswered[client.number] = 0
            return {"result": {"version": "replay"}}
        if method == "public/set_heartbeat":
            interval = params.get("interval")
            if not isinstance(interval, (int, float)) or interval < 10:
                return {"error": {"code": 11029, "message": "invalid_arguments"}}
            self._start_heartbeat(client, self.config.heartbeat_s or float(interval))
            return {"result": "ok"}
        if method not in ("public/subscribe", "public/unsubscribe"):
            return {"error": {"code": -32601, "message": "Method not found"}}
        channels = params.get("channels") or []
        if method == "public/subscribe" and self.refuse_subscribe():
            return {"error": {"code": 10028, "message": "too_many_requests"}}
        if not all(isinstance(c, str) and self._valid(c) for c in channels):
            return {"error": {"code": 11050, "message": "bad_request"}}
        if method == "public/unsubscribe":
            client.streams.difference_update(channels)
            return {"result": channels}
        client.streams.update(channels)
        client.pending_snapshots = [c for c in channels if c.startswith("book.")]
        return {"result": channels}

    def _snapshot(self, client: Client, channel: str) -> None:
        instrument = channel[len("book.") :].rpartition(".")[0]
        update_id, bids, asks = self.instruments[instrument].top(10_000)
        self.send_data(
            client,
            notification(
                channel,
                {
                    "type": "snapshot",
                    "timestamp": self.market.now_us() // 1000,
                    "instrument_name": instrument,
                    "change_id": update_id,
                    "bids": [["new", float(p), float(q)] for p, q in bids],
                    "asks": [["new", float(p), float(q)] for p, q in asks],
                },
            ),
        )

    def _start_heartbeat(self, client: Client, every_s: float) -> None:
        async def beat():
            while True:
                await asyncio.sleep(every_s)
                if self.unanswered.get(client.number, 0) > 0 and not client.stalled:
                    self.counts["heartbeat_closes"] += 1
                    await client.connection.close(1000, "heartbeat test_request not answered")
                    return
                self.unanswered[client.number] = self.unanswered.get(client.number, 0) + 1
                self.counts["test_requests"] += 1
                self.reply(client, text({"method": "heartbeat", "params": {"type": "test_request"}}))

        old = self.heartbeats.pop(client.number, None)
        if old is not None:
            old.cancel()
        self.heartbeats[client.number] = asyncio.ensure_future(beat())

    def closed(self, client: Client) -> None:
        task = self.heartbeats.pop(client.number, None)
        if task is not None:
            task.cancel()

    def publish(self, name: str, live: LiveInstrument, move: Move) -> None:
        def entries(levels):
            return [["delete" if float(q) == 0 else "change", float(p), float(q)] for p, q in levels]

        book_channel, trades_channel = f"book.{name}.100ms", f"trades.{name}.100ms"
        book = notification(
            book_channel,
            {
                "type": "change",
                "timestamp": move.event_ms,
                "instrument_name": name,
                "prev_change_id": move.first - 1,
                "change_id": move.last,
                "bids": entries(move.bids),
                "asks": entries(move.asks),
            },
        )
        trades = [
            notification(
                trades_channel,
                [
                    {
                        "trade_seq": i,
                        "trade_id": trade_id(name, i),
                        "timestamp": move.event_ms,
                        "tick_direction": 0,
                        "price": p,
                        "amount": q,
                        "direction": "buy" if buy else "sell",
                        "instrument_name": name,
                        "index_price": p,
                        "mark_price": p,
                    }
                    for i, p, q, buy in chunk
                ],
            )
            for chunk in self.trade_pushes(move)
        ]
        ticker_channel = f"ticker.{name}.100ms"
        tick = (
            self._ticker(name, live, move)
            if any(ticker_channel in c.streams for c in self.clients.values())
            and all(live.top(1)[1:])
            and self.due("ticker", name, self.config.ticker_every_s)
            else None
        )
        for client in list(self.clients.values()):
            if book_channel in client.streams:
                self.send_data(client, book)
            if trades_channel in client.streams:
                for push in trades:
                    self.send_data(client, push)
            if tick is not None and ticker_channel in client.streams:
                self.send_data(client, tick)

    def _ticker(self, name: str, live: LiveInstrument, move: Move) -> str:
        _, bids, asks = live.top(1)
        data = {
            **ticker(self.market, name),
            "timestamp": move.event_ms,
            "best_bid_price": float(bids[0][0]),
            "best_bid_amount": float(bids[0][1]),
            "best_ask_price": float(asks[0][0]),
            "best_ask_amount": float(asks[0][1]),
        }
        return notification(f"ticker.{name}.100ms", self.maybe_damaged("ticker", data))


def main(argv: list[str] | None = None) -> int:
    """`python -m marketdata_assets.replay.crypto.deribit_ws --port 8769`: Deribit's WebSocket API on the
    replay market, until Ctrl-C or SIGTERM."""
    from marketdata_assets.replay.crypto.ws_main import run

    return run(DeribitWsReplay, "deribit_ws", 8769, argv)


if __name__ == "__main__":
    raise SystemExit(main())
