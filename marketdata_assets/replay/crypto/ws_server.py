"""What the venues' WebSocket replays share: the faults, the config, a client's state, and the server
around them (a background thread with its own event loop, start/stop, the tick loop, the per-client
sender, pausing the market, the truth for tests). binance_ws.py, okx_ws.py and deribit_ws.py (through
ws_replay.py) build on it; each says its venue's protocol.

A subclass sets `venue`, `path` and its own `counted` counters; it defines `_serve(connection)` (arming
`_arm_cut(client)`: the venue's forced cut after `lifetime_s`) and `move(name, live, faults, event_ms)`: one
instrument's move of a tick, sent its venue's way. The tick itself, and which faults fire on it, is one loop
here for every venue.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from marketdata_assets.replay import Limited
from marketdata_assets.replay.crypto.config import ReplayConfig
from marketdata_assets.replay.crypto.live_book import LiveInstrument
from marketdata_assets.replay.crypto.tape import Market

if TYPE_CHECKING:
    from marketdata_assets.replay.crypto.server import CryptoReplayServer

WS_FAULT_KINDS = frozenset(
    {
        "disconnect",
        "stall",
        "skip_sequence",
        "subscribe_error",
        "burst",
        "wrong_checksum",
        "bad_frame",  # wrong_checksum: OKX's replay only
        "refuse_handshake",
    }
)  # the HTTP upgrade answered `status` (429, 418) + Retry-After
# bad_frame: the next `times` data frames of `channel` (the venue's channel kind: "bookTicker",
# "tickers", "ticker", ...) go out with their fields missing (`damage`): a client must count them and go on.


def damage(data):
    """A payload with its fields gone: a dict keeps only what names the event (e, s, instId,
    instrument_name); a list keeps one damaged element."""
    if isinstance(data, list):
        return [damage(data[0])] if data else [{}]
    if isinstance(data, dict):
        return {k: v for k, v in data.items() if k in ("e", "s", "instId", "instrument_name")}
    return data


@dataclass
class WsFault(Limited):
    kind: str
    instrument: str | None = None  # skip_sequence, burst, wrong_checksum (None: every instrument)
    after: int = 0
    times: int | None = 1
    count: int = 1000  # burst: trades at once
    channel: str | None = None  # bad_frame: the channel kind whose frames are damaged
    status: int = (
        429  # refuse_handshake: 429 (too many requests) or 418 (Binance: the IP is banned until ...)
    )
    retry_after_s: int | None = 1  # refuse_handshake: the Retry-After header (None: none sent)
    fired: int = 0

    def __post_init__(self):
        if self.kind not in WS_FAULT_KINDS:
            raise ValueError(
                f"WebSocket fault kind {self.kind!r}: one of {', '.join(sorted(WS_FAULT_KINDS))}"
            )


@dataclass
class WsConfig:
    tick_s: float = 0.1  # one diff event per instrument and tick (`@100ms`)
    trades_per_tick: int = 2
    lifetime_s: float = 86_400.0  # the venue cuts a connection this long after it opened
    cut_notice_s: float = 30.0  # a venue that announces its cut (OKX's notice) does so this long before
    ping_interval_s: float = 20.0
    pong_timeout_s: float = 60.0
    control_per_s: int = 5
    max_streams: int = 1024
    book_levels: int = 40
    record: bool = False  # keep every text sent, per connection (`sent`): what a client must have landed
    idle_s: float = 30.0  # OKX's replay: a connection with no traffic either way for this long is closed
    heartbeat_s: float | None = (
        None  # Deribit's replay: test_request cadence (None: the interval the client set)
    )
    ticker_every_s: float = (
        0.1  # tickers (OKX tickers, Deribit ticker.100ms): at most one per instrument this often
    )
    derived_every_s: float = (
        1.0  # mark price, funding, open interest: one per instrument this often (markPrice@1s)
    )
    # where the replay keeps the last trade id it sent per instrument (None: nowhere): its next start
    # sends from the one after, as a venue never sends an id twice (the stream plays the tape faster
    # than its clock, so "the trade of now" is behind what an earlier run sent)
    trade_ids_file: Path | None = None
    faults: list[WsFault] = field(default_factory=list)


@dataclass(frozen=True)
class TickFaults:
    """What the faults do to one instrument's move on one tick."""

    skip: bool = False  # skip_sequence: one update applied to the truth but never sent
    bad_checksum: bool = False  # wrong_checksum: the update's checksum is off (OKX)
    trades: int = 0  # trades of the move (`trades_per_tick`, or a burst's count)


@dataclass
class Client:
    """One connection's state."""

    number: int
    connection: ServerConnection
    streams: set[str]
    combined: bool
    sent: int = 0  # data frames
    stalled: bool = False
    controls: deque = field(default_factory=deque)  # monotonic times of recent control messages
    outbox: asyncio.Queue = field(default_factory=lambda: asyncio.Queue(maxsize=200_000))
    last_in: float = 0.0  # loop time of the last message received (the venue replays of ws_replay.py)
    last_out: float = 0.0  # ... and sent
    pending_snapshots: list = field(
        default_factory=list
    )  # Deribit's replay: book snapshots to send after the answer
    path: str = ""  # the request path it connected on (OKX: /ws/v5/public or /ws/v5/business)
    bars_sent: dict = field(
        default_factory=dict
    )  # kline/candle stream -> open time (µs) of the last closed bar sent


TRADE_IDS_LOCK = threading.Lock()


class WsServer:
    """The server part every venue replay shares (see the module doc)."""

    venue = ""
    path = ""
    counted: tuple[str, ...] = ()  # the venue's own counters, beside connections, subscribes and ticks

    def __init__(
        self,
        config: WsConfig | None = None,
        *,
        rest: CryptoReplayServer | None = None,
        replay: ReplayConfig | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ):
        self.config = config or WsConfig()
        self.market = rest.market if rest is not None else Market(replay or ReplayConfig())
        seed = (rest.config if rest is not None else self.market.config).seed
        names = self.market.config.instruments.get(self.venue, [])
        self.instruments = {
            name: LiveInstrument(self.market, name, seed, self.config.book_levels, venue=self.venue)
            for name in names
        }
        for name, live in self.instruments.items():  # the REST replay's books (OKX `books`, Deribit
            self.market.live_books[(self.venue, name)] = live.snapshot  # `get_order_book`) are these
        self.host, self.port = host, port
        self.clients: dict[int, Client] = {}
        self.counts: dict[str, int] = dict.fromkeys(("connections", "subscribes", "ticks", *self.counted), 0)
        self.sent: dict[int, list[str]] = {}  # connection number -> texts sent (WsConfig.record)
        self.listened_ticks = 0  # ticks while a client was subscribed (a fault's `after` counts these)
        self.counts["lifetime_cuts"] = 0  # the venue's forced cuts (`_cut`, every venue)
        self.last_push: dict[
            tuple[str, str], float
        ] = {}  # (kind, instrument) -> monotonic time of its last push
        self.paused = False  # the market stands still (tests compare books at rest)
        self.refused_handshakes: list[tuple[int, float]] = []  # (status, loop time) of each refused upgrade
        self.lock = threading.Lock()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self.saved_ns = 0
        self._resume_trade_ids()

    def _resume_trade_ids(self) -> None:
        """Start each instrument's trades after the last id an earlier run sent (`trade_ids_file`)."""
        path = self.config.trade_ids_file
        if path is None or not path.exists():
            return
        try:
            sent = json.loads(path.read_text()).get(self.venue, {})
        except (OSError, ValueError):
            return  # unreadable: start as if none was kept (the file is written again each second)
        for name, live in self.instruments.items():
            if isinstance(sent.get(name), int):
                live.resume_after(sent[name])

    def save_trade_ids(self) -> None:
        """Record each instrument's last trade id sent (`trade_ids_file`), this venue's entry only."""
        path = self.config.trade_ids_file
        if path is None:
            return
        with TRADE_IDS_LOCK:  # every venue's replay of a process writes the one file
            try:
                kept = json.loads(path.read_text()) if path.exists() else {}
            except (OSError, ValueError):
                kept = {}
            kept[self.venue] = {
                **kept.get(self.venue, {}),
                **{name: live.last_trade_id for name, live in self.instruments.items() if live.last_trade_id},
            }
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f"{path.name}.{self.venue}.tmp")
            tmp.write_text(json.dumps(kept, sort_keys=True))
            os.replace(tmp, path)

    # ---- lifecycle --------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}{self.path}"

    def start(self):
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._main()), name=f"{self.venue}-ws-replay", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError(f"the {self.venue} WebSocket replay did not start within 10 s")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)
        self.save_trade_ids()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    async def _main(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        async with serve(
            self._serve,
            self.host,
            self.port,
            ping_interval=self.config.ping_interval_s,
            ping_timeout=self.config.pong_timeout_s,
            max_queue=64,
            process_request=self._refuse_handshake,
        ) as server:
            self.port = server.sockets[0].getsockname()[1]
            ticker = asyncio.create_task(self._tick_forever())
            self._ready.set()
            await self._stop.wait()
            ticker.cancel()
            for client in list(self.clients.values()):
                client.connection.transport.abort()

    def _refuse_handshake(self, connection: ServerConnection, request):
        """The `refuse_handshake` fault: the upgrade answered with the fault's status and Retry-After
        (what Binance does to an IP over its limits: 429, then 418 with a ban), no WebSocket."""
        for fault in self.faults("refuse_handshake"):
            if fault.take():
                self.refused_handshakes.append((fault.status, asyncio.get_running_loop().time()))
                response = connection.respond(
                    fault.status, "Too many requests\n" if fault.status == 429 else "IP banned\n"
                )
                if fault.retry_after_s is not None:
                    response.headers["Retry-After"] = str(fault.retry_after_s)
                return response
        return None

    # ---- the venue's forced cut ---------------------------------------------------------------

    async def _converse(self, client: Client, control, closed=None) -> None:
        """A connected client until it or the venue closes: its sender, its forced cut, and each message
        it sends handed to `control` (False: close); `closed(client)` once it is gone."""
        self.clients[client.number] = client
        sender = asyncio.create_task(self._send_forever(client))
        cut = self._arm_cut(client)
        try:
            async for message in client.connection:
                client.last_in = asyncio.get_running_loop().time()
                if not await control(client, message):
                    break
        except ConnectionClosed:
            pass
        finally:
            cut.cancel()
            sender.cancel()
            if closed is not None:
                closed(client)
            self.clients.pop(client.number, None)

    def _arm_cut(self, client: Client) -> asyncio.TimerHandle:
        """The cut `lifetime_s` after the connection opened (cancel the handle when it closes)."""
        return asyncio.get_running_loop().call_later(self.config.lifetime_s, self._cut, client)

    def _cut(self, client: Client) -> None:
        """The venue's forced disconnect (Binance: 24 h): announced first where the venue does so
        (`announce_cut`: OKX's notice, `cut_notice_s` before), then a close frame."""
        self.counts["lifetime_cuts"] += 1
        delay = self.announce_cut(client)
        asyncio.get_running_loop().call_later(
            delay, lambda: asyncio.ensure_future(client.connection.close(1001, "connection lifetime reached"))
        )

    def announce_cut(self, client: Client) -> float:
        """Tell the client its connection will be cut; seconds until the cut (0: no warning)."""
        return 0.0

    # ---- control from tests -----------------------------------------------------------------

    def add_fault(self, fault: WsFault | None = None, **kwargs) -> WsFault:
        fault = fault or WsFault(**kwargs)
        with self.lock:
            self.config.faults.append(fault)
        return fault

    def pause(self) -> None:
        """Stop moving the market (no more events or trades) until `resume`; returns at once: the
        tick in progress, if any, still goes out."""
        self.paused = True

    def resume(self) -> None:
        self.paused = False

    def truth_book(self, instrument: str) -> tuple[int, dict[str, str], dict[str, str]]:
        return self.instruments[instrument].truth()

    def trade_ids(self, instrument: str) -> tuple[int | None, int | None]:
        """First and last trade id sent so far (contiguous: the tape's ids)."""
        live = self.instruments[instrument]
        return live.first_trade_id, live.last_trade_id

    def faults(self, kind: str) -> list[WsFault]:
        with self.lock:
            return [f for f in self.config.faults if f.kind == kind]

    # ---- sending ----

    def due(self, kind: str, instrument: str, every_s: float) -> bool:
        """Whether `kind` of `instrument` is due (its last push `every_s` or more ago); marks it pushed."""
        now = time.monotonic()
        if now - self.last_push.get((kind, instrument), -1e9) < every_s:
            return False
        self.last_push[(kind, instrument)] = now
        return True

    def maybe_damaged(self, channel: str, payload):
        """`payload`, or its damaged copy when a `bad_frame` fault of `channel` fires."""
        if any(f.take() for f in self.faults("bad_frame") if f.channel == channel):
            self.counts["bad_frames"] = self.counts.get("bad_frames", 0) + 1
            return damage(payload)
        return payload

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

    async def _send_forever(self, client: Client) -> None:
        while True:
            text = await client.outbox.get()
            try:
                await client.connection.send(text)
            except ConnectionClosed:
                return
            client.outbox.task_done()

    async def delivered(self, timeout_s: float = 15.0) -> None:
        """Awaited from the caller's loop, once paused: every frame queued to each open client was sent
        and read by it (a WebSocket ping after the last of them came back: TCP keeps the order)."""

        async def sent_and_read(client: Client) -> None:
            with contextlib.suppress(ConnectionClosed):
                await client.outbox.join()
                await (await client.connection.ping())

        async def each_client() -> None:  # not a stalled one (it reads nothing), nor one gone meanwhile
            for client in [c for c in self.clients.values() if not c.stalled]:
                waits = {
                    asyncio.ensure_future(sent_and_read(client)),
                    asyncio.ensure_future(client.connection.wait_closed()),
                }
                try:
                    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for waiting in waits:
                        waiting.cancel()

        async def bounded() -> None:
            async with asyncio.timeout(timeout_s):
                await each_client()

        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(bounded(), self._loop))

    def _abort_after_outbox(self, client: Client) -> None:
        """Drop the TCP connection once what was queued has gone (a cut mid-stream, no close frame)."""

        async def later():
            while not client.outbox.empty():
                await asyncio.sleep(0.001)
            client.connection.transport.abort()

        asyncio.ensure_future(later())

    # ---- the market moving ----

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(self.config.tick_s)
            self.tick()
            self.check_idle()

    def check_idle(self) -> None:
        """A venue's replay closes the connections the venue would (OKX: no traffic for `idle_s`)."""

    @property
    def updates(self) -> dict[str, int]:
        """Each instrument's moves a fault's `after` counts (every instrument moves on every tick)."""
        return dict.fromkeys(self.instruments, self.listened_ticks)

    def tick(self) -> None:
        """Move every instrument once, each move sent its venue's way (`move`), with the faults that
        fire on this tick: `skip_sequence` / `wrong_checksum` after `after` moves of the instrument made
        while a client was subscribed (not before a slow collector's subscription: the fault would be unseen),
        `burst` after `after` such ticks."""
        if self.paused:
            return
        self.counts["ticks"] += 1
        event_ms = int(time.time() * 1000)
        if self.config.trade_ids_file is not None and time.monotonic_ns() - self.saved_ns > 1e9:
            self.saved_ns = time.monotonic_ns()
            self.save_trade_ids()
        self.listened_ticks += any(client.streams for client in self.clients.values())
        for name, live in self.instruments.items():
            self.move(name, live, self._tick_faults(name), event_ms)

    def _tick_faults(self, name: str) -> TickFaults:
        def due(kind: str, count: int) -> list[WsFault]:
            return [f for f in self.faults(kind) if f.instrument in (None, name) and count > f.after]

        burst = sum(f.count for f in due("burst", self.listened_ticks) if f.take())
        return TickFaults(
            skip=any(f.take() for f in due("skip_sequence", self.listened_ticks)),
            bad_checksum=any(f.take() for f in due("wrong_checksum", self.listened_ticks)),
            trades=burst or self.config.trades_per_tick,
        )

    def move(self, name: str, live, faults: TickFaults, event_ms: int) -> None:
        """One instrument's move of a tick (a `LiveInstrument`), sent to its subscribers."""
        raise NotImplementedError
