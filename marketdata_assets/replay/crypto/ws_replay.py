"""What OKX's and Deribit's WebSocket replays share beyond the server part of ws_server.py (which
Binance's uses too; its connections, combined streams and control limits stay in binance_ws.py):
one `LiveInstrument` per instrument of the venue (a true book moving by numbered updates, the
tape's trades), each tick's move (ws_server.py's tick loop) handed to the venue's formatting
(`publish`), data frames and control answers per client, and the faults (`WsFault`): `disconnect` (TCP dropped
after `after` data frames), `stall` (after `after` data frames nothing is sent or read: no data, no pong),
`skip_sequence` (an update applied to the truth but never sent), `subscribe_error` (the
`after`-th subscribe refused), `wrong_checksum` (a venue with checksums sends a wrong one),
`burst` (at tick `after`, `count` trades of the instrument at once); the venue's cut after
`lifetime_s` (ws_server.py: OKX announces it, `announce_cut`).

A subclass declares `venue`, `path`, `control(client, text)` (answers a client's message; False
closes) and `publish(name, live, move)` (sends a tick's book update and trades to subscribers).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from websockets.asyncio.server import ServerConnection

from marketdata_assets.replay.crypto.live_book import LiveInstrument
from marketdata_assets.replay.crypto.ws_server import Client, TickFaults, WsServer


@dataclass
class Move:
    """One tick of one instrument: the book update (ids first..last, touched levels) and trades."""

    first: int
    last: int
    bids: list
    asks: list
    trades: list[tuple[int, float, float, bool]]
    event_ms: int
    bad_checksum: bool = False


class VenueWsReplay(WsServer):
    """The shared server; see the module doc. `url` is where a client connects."""

    venue = ""
    path = "/"
    other_paths: tuple[str, ...] = ()  # more endpoints the venue serves (OKX's /ws/v5/business)

    counted = ("pings", "idle_closes", "heartbeat_closes", "test_requests")

    def refuse_subscribe(self) -> bool:
        """Count a subscribe request; True when a `subscribe_error` fault refuses it."""
        self.counts["subscribes"] += 1
        return any(f.take() for f in self.faults("subscribe_error") if self.counts["subscribes"] > f.after)

    # ---- connections ------------------------------------------------------------------------

    async def _serve(self, connection: ServerConnection) -> None:
        path = connection.request.path.split("?")[0].rstrip("/")
        if path not in (p.rstrip("/") for p in (self.path, *self.other_paths)):
            await connection.close(1008, "Invalid request")
            return
        self.counts["connections"] += 1
        client = Client(self.counts["connections"], connection, set(), combined=False, path=path)
        client.last_in = client.last_out = asyncio.get_running_loop().time()
        await self._converse(client, self.control, self.closed)

    def closed(self, client: Client) -> None:
        """A client went away (a subclass stops what it runs for it)."""

    def reply(self, client: Client, text: str) -> None:
        """A control answer (not a data frame: no fault counts it)."""
        if client.stalled:
            return
        client.last_out = asyncio.get_running_loop().time()
        client.outbox.put_nowait(text)
        if self.config.record:
            self.sent.setdefault(client.number, []).append(text)

    def move(self, name: str, live: LiveInstrument, faults: TickFaults, event_ms: int) -> None:
        """The tick's book update and trades as a `Move`, sent the venue's way (`publish`)."""
        first, last, bids, asks = live.step_levels(faults.skip)
        self.publish(
            name,
            live,
            Move(
                first,
                last,
                bids,
                asks,
                live.tape_trades(faults.trades, event_ms),
                event_ms,
                faults.bad_checksum,
            ),
        )

    def trade_pushes(self, move: Move) -> list[list]:
        """The move's trades in pushes of at most `trades_per_tick` (a burst is many frames, as a busy
        market's are: OKX pushes a trade or a few at a time; Deribit's 100 ms batches stay small)."""
        size = max(1, self.config.trades_per_tick)
        return [move.trades[i : i + size] for i in range(0, len(move.trades), size)]

    async def control(self, client: Client, message: str | bytes) -> bool:
        raise NotImplementedError

    def publish(self, name: str, live: LiveInstrument, move: Move) -> None:
        raise NotImplementedError
