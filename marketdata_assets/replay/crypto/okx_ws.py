"""OKX's public WebSocket v5, replayed (the protocol as sources/okx/stream.py documents it).

`/ws/v5/public`: `{"id", "op": "subscribe" | "unsubscribe", "args": [{"channel", "instId"}]}`
answered per arg `{"id", "event": "subscribe", "arg", "connId"}`, refused `{"id", "event": "error",
"code", "msg", "connId"}` (an unknown channel or instrument: 60018; the `subscribe_error` fault:
60012); the text "ping" answered "pong"; a connection with no traffic either way for `idle_s`
(OKX: 30 s) is closed. Channels `trades` and `books`: subscribing `books` sends the snapshot of the
true book at once (`action: snapshot`, prevSeqId -1, the checksum of its top 25 levels), then every
tick an `update` (prevSeqId = the update id before the move, seqId = after it; the touched levels'
final sizes, "0" removing) with the checksum of the true book after it, and the tape's trades.
Faults (ws_replay.py): disconnect, stall, skip_sequence (seqId continuity broken), wrong_checksum
(one update's checksum off by one; its data right), subscribe_error.
"""

from __future__ import annotations

import asyncio
import json

from marketdata_assets.replay.crypto.config import OKX
from marketdata_assets.replay.crypto.live_book import LiveInstrument
from marketdata_assets.replay.crypto.okx import fmt_plain
from marketdata_assets.replay.crypto.ws_replay import Move, VenueWsReplay
from marketdata_assets.replay.crypto.ws_server import Client
from marketdata_assets.sources.okx.stream import CHECKSUM_LEVELS, checksum

CHANNELS = ("trades", "books")


def text(value: dict) -> str:
    return json.dumps(value, separators=(",", ":"))


class OkxWsReplay(VenueWsReplay):
    venue = OKX
    path = "/ws/v5/public"

    def _levels(self, pairs) -> list[list[str]]:
        return [[p, q, "0", "1"] for p, q in pairs]

    def _checksum(self, live: LiveInstrument) -> int:
        _, bids, asks = live.top(CHECKSUM_LEVELS)
        return checksum(bids, asks)

    async def control(self, client: Client, message: str | bytes) -> bool:
        if message == "ping":
            self.counts["pings"] += 1
            self.reply(client, "pong")
            return True
        try:
            request = json.loads(message)
            op, args, request_id = request["op"], request["args"], request.get("id")
            args = [(str(a["channel"]), str(a["instId"])) for a in args]
        except (ValueError, KeyError, TypeError):
            self.reply(client, text({"event": "error", "code": "60012", "msg": f"Invalid request: {message!s:.200}",
                                     "connId": str(client.number)}))
            return True
        head = {"id": request_id} if request_id is not None else {}
        if op == "subscribe" and self.refuse_subscribe():
            self.reply(client, text({**head, "event": "error", "code": "60012",
                                     "msg": "Invalid request: service temporarily unavailable",
                                     "connId": str(client.number)}))
            return True
        for channel, instrument in args:
            if op not in ("subscribe", "unsubscribe") or channel not in CHANNELS or instrument not in self.instruments:
                self.reply(client, text({**head, "event": "error", "code": "60018",
                                         "msg": f"Wrong URL or channel:{channel},instId:{instrument} doesn't exist",
                                         "connId": str(client.number)}))
                continue
            self._subscribe(client, op, channel, instrument, head)
        return True

    def _subscribe(self, client: Client, op: str, channel: str, instrument: str, head: dict) -> None:
        key = f"{instrument}@{channel}"
        self.reply(client, text({**head, "event": op, "arg": {"channel": channel, "instId": instrument},
                                 "connId": str(client.number)}))
        if op == "unsubscribe":
            client.streams.discard(key)
            return
        client.streams.add(key)
        if channel == "books":
            live = self.instruments[instrument]
            update_id, bids, asks = live.top(400)
            self.send_data(client, text({"arg": {"channel": "books", "instId": instrument}, "action": "snapshot",
                                         "data": [{"asks": self._levels(asks), "bids": self._levels(bids),
                                                   "ts": str(live.market.now_us() // 1000),
                                                   "checksum": checksum(bids[:CHECKSUM_LEVELS], asks[:CHECKSUM_LEVELS]),
                                                   "prevSeqId": -1, "seqId": update_id}]}))

    def publish(self, name: str, live: LiveInstrument, move: Move) -> None:
        cs = self._checksum(live) + (1 if move.bad_checksum else 0)
        book = text({"arg": {"channel": "books", "instId": name}, "action": "update",
                     "data": [{"asks": self._levels(move.asks), "bids": self._levels(move.bids),
                               "ts": str(move.event_ms), "checksum": cs, "prevSeqId": move.first - 1,
                               "seqId": move.last}]})
        trades = text({"arg": {"channel": "trades", "instId": name},
                       "data": [{"instId": name, "tradeId": str(i), "px": fmt_plain(p), "sz": fmt_plain(q),
                                 "side": "buy" if buy else "sell", "ts": str(move.event_ms), "count": "1"}
                                for i, p, q, buy in move.trades]})
        for client in list(self.clients.values()):
            if f"{name}@books" in client.streams:
                self.send_data(client, book)
            if f"{name}@trades" in client.streams and move.trades:
                self.send_data(client, trades)

    def check_idle(self) -> None:
        now = asyncio.get_running_loop().time()
        for client in list(self.clients.values()):
            if now - max(client.last_in, client.last_out) > self.config.idle_s and not client.stalled:
                self.counts["idle_closes"] += 1
                asyncio.ensure_future(client.connection.close(4004, "No data received in 30s."))


def main(argv: list[str] | None = None) -> int:
    """`python -m marketdata_assets.replay.crypto.okx_ws --port 8768`: OKX's public WebSocket on the
    replay market, until Ctrl-C or SIGTERM."""
    from marketdata_assets.replay.crypto.ws_main import run

    return run(OkxWsReplay, "okx_ws", 8768, argv)


if __name__ == "__main__":
    raise SystemExit(main())
