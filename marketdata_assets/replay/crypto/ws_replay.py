"""What every venue's WebSocket replay shares (OKX's and Deribit's; Binance's predates it and keeps
its own server loop): a server in a background thread on the replay market, one `LiveInstrument`
per instrument of the venue (a true book moving by numbered updates, the tape's trades), a tick
that moves every instrument and hands the move to the venue's formatting (`publish`), per-client
outboxes, and the faults of binance_ws.py (`WsFault`): `disconnect` (TCP dropped after `after` data
frames), `stall` (after `after` data frames nothing is sent or read: no data, no pong),
`skip_sequence` (an update applied to the truth but never sent), `subscribe_error` (the
`after`-th subscribe refused), `wrong_checksum` (a venue with checksums sends a wrong one).

A subclass declares `venue`, `path`, `control(client, text)` (answers a client's message; False
closes) and `publish(name, live, move)` (sends a tick's book update and trades to subscribers).
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from marketdata_assets.replay.crypto.binance_ws import Client, WsConfig, WsFault
from marketdata_assets.replay.crypto.config import ReplayConfig
from marketdata_assets.replay.crypto.live_book import LiveInstrument
from marketdata_assets.replay.crypto.tape import Market

if TYPE_CHECKING:
    from marketdata_assets.replay.crypto.server import CryptoReplayServer


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


class VenueWsReplay:
    """The shared server; see the module doc. `url` is where a client connects."""

    venue = ""
    path = "/"

    def __init__(self, config: WsConfig | None = None, *, rest: CryptoReplayServer | None = None,
                 replay: ReplayConfig | None = None, host: str = "127.0.0.1", port: int = 0):
        self.config = config or WsConfig()
        self.market = rest.market if rest is not None else Market(replay or ReplayConfig())
        seed = (rest.config if rest is not None else self.market.config).seed
        names = self.market.config.instruments.get(self.venue, [])
        self.instruments = {name: LiveInstrument(self.market, name, seed, self.config.book_levels, venue=self.venue)
                            for name in names}
        self.host, self.port = host, port
        self.clients: dict[int, Client] = {}
        self.counts: dict[str, int] = {"connections": 0, "subscribes": 0, "ticks": 0, "pings": 0,
                                       "idle_closes": 0, "heartbeat_closes": 0, "test_requests": 0}
        self.updates: dict[str, int] = dict.fromkeys(names, 0)
        self.sent: dict[int, list[str]] = {}
        self.paused = False
        self.lock = threading.Lock()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None

    # ---- lifecycle --------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}{self.path}"

    def start(self):
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), name=f"{self.venue}-ws-replay",
                                        daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError(f"the {self.venue} WebSocket replay did not start within 10 s")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    async def _main(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        async with serve(self._serve, self.host, self.port, ping_interval=self.config.ping_interval_s,
                         ping_timeout=self.config.pong_timeout_s, max_queue=64) as server:
            self.port = server.sockets[0].getsockname()[1]
            ticker = asyncio.create_task(self._tick_forever())
            self._ready.set()
            await self._stop.wait()
            ticker.cancel()
            for client in list(self.clients.values()):
                client.connection.transport.abort()

    # ---- control from tests -----------------------------------------------------------------

    def add_fault(self, fault: WsFault | None = None, **kwargs) -> WsFault:
        fault = fault or WsFault(**kwargs)
        with self.lock:
            self.config.faults.append(fault)
        return fault

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False

    def truth_book(self, instrument: str) -> tuple[int, dict[str, str], dict[str, str]]:
        return self.instruments[instrument].truth()

    def trade_ids(self, instrument: str) -> tuple[int | None, int | None]:
        live = self.instruments[instrument]
        return live.first_trade_id, live.last_trade_id

    def faults(self, kind: str) -> list[WsFault]:
        with self.lock:
            return [f for f in self.config.faults if f.kind == kind]

    def refuse_subscribe(self) -> bool:
        """Count a subscribe request; True when a `subscribe_error` fault refuses it."""
        self.counts["subscribes"] += 1
        return any(f.take() for f in self.faults("subscribe_error") if self.counts["subscribes"] > f.after)

    # ---- connections ------------------------------------------------------------------------

    async def _serve(self, connection: ServerConnection) -> None:
        if connection.request.path.split("?")[0].rstrip("/") != self.path.rstrip("/"):
            await connection.close(1008, "Invalid request")
            return
        self.counts["connections"] += 1
        client = Client(self.counts["connections"], connection, set(), combined=False)
        client.last_in = client.last_out = asyncio.get_running_loop().time()
        self.clients[client.number] = client
        sender = asyncio.create_task(self._send_forever(client))
        try:
            async for message in connection:
                client.last_in = asyncio.get_running_loop().time()
                if not await self.control(client, message):
                    break
        except ConnectionClosed:
            pass
        finally:
            sender.cancel()
            self.closed(client)
            self.clients.pop(client.number, None)

    def closed(self, client: Client) -> None:
        """A client went away (a subclass stops what it runs for it)."""

    async def _send_forever(self, client: Client) -> None:
        while True:
            text = await client.outbox.get()
            try:
                await client.connection.send(text)
            except ConnectionClosed:
                return

    def reply(self, client: Client, text: str) -> None:
        """A control answer (not a data frame: no fault counts it)."""
        if client.stalled:
            return
        client.last_out = asyncio.get_running_loop().time()
        client.outbox.put_nowait(text)
        if self.config.record:
            self.sent.setdefault(client.number, []).append(text)

    def send_data(self, client: Client, text: str) -> None:
        """A data frame to one client; the disconnect and stall faults count these."""
        if client.stalled:
            return
        try:
            client.outbox.put_nowait(text)
        except asyncio.QueueFull:  # a client that does not read: the venue drops it
            client.connection.transport.abort()
            return
        client.last_out = asyncio.get_running_loop().time()
        client.sent += 1
        if self.config.record:
            self.sent.setdefault(client.number, []).append(text)
        for fault in self.faults("disconnect"):
            if client.sent > fault.after and fault.take():
                asyncio.get_running_loop().call_soon(self._abort_after_outbox, client)
        for fault in self.faults("stall"):
            if client.sent > fault.after and fault.take():
                client.stalled = True
                client.connection.transport.pause_reading()  # pings unread: no pong either

    def _abort_after_outbox(self, client: Client) -> None:
        async def later():
            while not client.outbox.empty():
                await asyncio.sleep(0.001)
            client.connection.transport.abort()
        asyncio.ensure_future(later())

    # ---- the market moving ------------------------------------------------------------------

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(self.config.tick_s)
            self.tick()
            self.check_idle()

    def check_idle(self) -> None:
        """A subclass closes connections the venue would (OKX: no traffic for `idle_s`)."""

    def tick(self) -> None:
        """Move every instrument once and send the move to its subscribers (`publish`)."""
        if self.paused:
            return
        self.counts["ticks"] += 1
        event_ms = int(time.time() * 1000)
        for name, live in self.instruments.items():
            self.updates[name] += 1
            mine = [f for kind in ("skip_sequence", "wrong_checksum") for f in self.faults(kind)
                    if f.instrument in (None, name) and self.updates[name] > f.after]
            skip = any(f.take() for f in mine if f.kind == "skip_sequence")
            bad = any(f.take() for f in mine if f.kind == "wrong_checksum")
            first, last, bids, asks = live.step_levels(skip)
            move = Move(first, last, bids, asks, live.tape_trades(self.config.trades_per_tick), event_ms, bad)
            self.publish(name, live, move)

    async def control(self, client: Client, message: str | bytes) -> bool:
        raise NotImplementedError

    def publish(self, name: str, live: LiveInstrument, move: Move) -> None:
        raise NotImplementedError
