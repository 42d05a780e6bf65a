"""A bench-only Binance spot market for `bench live_capture`: a WebSocket server pushing pre-rendered
Binance combined-stream frames (`trade` and `depthUpdate` events) as fast as the client reads them,
or at a set rate, plus `/api/v3/depth` snapshots that fit the diffs (so the collector's books sync).

Why not the replay (replay/crypto/binance_ws.py): it builds every event from the tapes and the true
book in Python and sends through the `websockets` server, so it costs more CPU per frame than the
client it feeds and would measure itself. Here a frame is a template filled with its ids and times
(`%` formatting) and framed by hand (a server frame is unmasked: two to ten header bytes), written
in chunks of a few hundred frames. The frames look like Binance's: trade events with real field
names and ids counting per instrument, depth diffs of ten levels a side whose U/u continue the
previous u, the event time `E` (and a trade's `T`) the send time in ms, so a receiver's lag is the
path's.

Connections as Binance's: each carries the streams its URL names (`/stream?streams=a/b/...`) and
those it SUBSCRIBEs (acknowledged `{"result":null,"id":N}`), and gets frames of those only (trades
and depth@100ms diffs of the instruments it carries, each kind going round them). Binance spot's
"WebSocket Limits" are enforced as documented (binance-spot-api-docs, web-socket-streams.md,
https://github.com/binance/binance-spot-api-docs/blob/master/web-socket-streams.md#websocket-limits):
more than 5 incoming messages (ping, pong, JSON control) within any second (a rolling window, as they
come in) closes the connection with 1008 "Too many requests" (Binance's close as users report it:
binance/binance-connector-go issue 90, nautilus_trader issue 5012, which also reports the window as
rolling); more than 1,024 streams is refused: a SUBSCRIBE going past is answered
`{"error":{"code":4,"msg":"Too many subscriptions"},"id":N}` (Binance's answer as reported in
oliver-zehentleitner/unicorn-binance-websocket-api issue 17), its streams not added; a URL naming more
gets HTTP 400 (Binance documents no answer for it). Each connection's control messages are timed, so
the report gives the most in any second.
The third limit, 300 connection attempts per 5 minutes per IP, is not enforced (a run opens a few).

With `--held`, the frames go at `--warm-rate` a second a connection until the client GETs
`/_bench/flood` (once it has every acknowledgement), and as fast as read from then on: its clocks
start there, without a backlog read before them.

Run: `python -m bench.live_sender --rate 0 [--universe N] [--held]` (rate 0: as fast as the
client reads; `N` instruments named as Binance spot's: `universe_names`); it prints `{"port": n}` on stdout,
serves until stdin closes, then its report (`Market.report`: frames sent, connections, subscription time,
control messages, refusals, REST snapshots served).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import random
import struct
import sys
import time
from collections import deque
from urllib.parse import parse_qs, urlsplit

from bench import exit_with_parent
from marketdata_assets.replay.crypto.reference import coin_names

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TRADE = (
    '{"stream":"%s@trade","data":{"e":"trade","E":%d,"s":"%s","t":%d,"p":"%s","q":"%s","T":%d,'
    '"m":%s,"M":true}}'
)
DEPTH = '{"stream":"%s@depth@100ms","data":{"e":"depthUpdate","E":%d,"s":"%s","U":%d,"u":%d,"b":%s,"a":%s}}'
CHUNK = 256  # frames per write when sending as fast as the client reads
TICK_S = 0.002  # the paced sender's step
MAX_STREAMS, CONTROL_PER_S = 1024, 5  # Binance spot's WebSocket Limits (see the module doc)
POLICY_VIOLATION = 1008  # the close code of a connection past the message limit
FLOOD = "/_bench/flood"  # with --held: a GET of it starts the sending as fast as read


def universe_names(n: int) -> list[str]:
    """`n` USDT pairs named as Binance spot's are (the replay's coin names: the majors, then made-up
    tickers of 3 to 5 letters), the same for every process."""
    return [f"{coin}USDT" for coin in coin_names(random.Random("bench-universe"), n)[:n]]


def frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """One unmasked (server to client) WebSocket frame."""
    n = len(payload)
    if n < 126:
        return bytes((0x80 | opcode, n)) + payload
    if n < 65536:
        return bytes((0x80 | opcode, 126)) + struct.pack("!H", n) + payload
    return bytes((0x80 | opcode, 127)) + struct.pack("!Q", n) + payload


def most_in_a_second(times: list[float]) -> int:
    """The most of `times` (ascending) within any second (two exactly a second apart are not)."""
    best, first = 0, 0
    for k, t in enumerate(times):
        while t - times[first] >= 1.0:
            first += 1
        best = max(best, k - first + 1)
    return best


class Session:
    """One client connection: the streams it carries (named in its URL, then subscribed), the
    instruments whose trades and depth diffs it gets, and when each message it sent came."""

    def __init__(self, opened: float):
        self.opened = self.subscribed_at = opened  # subscribed_at: when its last stream was added
        self.streams: set[str] = set()
        self.trades: list[str] = []  # instruments of its trade streams (frames go round them)
        self.depths: list[str] = []  # ... of its depth@100ms streams
        self.turns = {"trade": 0, "depth": 0}
        self.url_streams = self.acks = self.errors = 0
        self.control: list[float] = []  # when each incoming message (ping, pong, JSON) came
        self.recent: deque[float] = deque()  # those of the last second
        self.closed_for: str | None = None  # the sender ended it: "rate" (past the message limit)

    def add(self, streams: list[str], known: dict) -> bool:
        """Carry `streams` too; False (nothing added) if that would pass the streams limit."""
        new = [s for s in dict.fromkeys(streams) if s not in self.streams]
        if len(self.streams) + len(new) > MAX_STREAMS:
            return False
        for stream in new:
            self.streams.add(stream)
            name, _, kind = stream.partition("@")
            name = name.upper()
            if name in known and kind in ("trade", "depth@100ms"):  # others are carried, never sent
                (self.trades if kind == "trade" else self.depths).append(name)
        self.subscribed_at = time.monotonic()
        return True

    def note(self, now: float) -> bool:
        """An incoming message at `now`; False when it is one more than the limit allows in a second."""
        self.control.append(now)
        recent = self.recent
        recent.append(now)
        while recent[0] <= now - 1.0:
            recent.popleft()
        return len(recent) <= CONTROL_PER_S

    def report(self, t0: float) -> dict:
        return {
            "streams": len(self.streams),
            "url_streams": self.url_streams,
            "acks": self.acks,
            "errors": self.errors,
            "control_messages": len(self.control),
            "max_control_per_s": most_in_a_second(self.control),
            "connected_s": round(self.opened - t0, 3),
            "subscribed_s": round(self.subscribed_at - t0, 3),
            "closed_for": self.closed_for,
        }


class Market:
    """Frames of `instruments`, one depth diff every `1 / depth_share` frames, the rest trades; the
    connections served and what they were refused."""

    def __init__(self, instruments: list[str], depth_share: float, seed: int = 7, held: bool = False):
        rng = random.Random(seed)
        self.instruments = instruments
        # trade ids from the clock: a later sender's ids are new to the stream's duplicate window
        self.trade_ids = dict.fromkeys(instruments, time.time_ns() // 1000)  # a million ids a second apart
        self.update_ids = dict.fromkeys(instruments, 40_000_000)
        self.trades = [
            (
                f"{95000 + rng.randint(-500, 500) + rng.randint(0, 99) / 100:.2f}",
                f"{rng.randint(1, 20000) / 10000:.5f}",
                rng.choice(("true", "false")),
            )
            for _ in range(997)
        ]
        self.sides = [self._side(rng, sign) for sign in (-1, 1) for _ in range(61)]
        self.depth_every = round(1 / depth_share) if depth_share > 0 else 0
        self.n = 0
        self.turns = {"trade": 0, "depth": 0}  # each kind goes round every instrument in turn
        self.sessions: list[Session] = []
        self.refusals = {"rate": 0, "streams": 0}
        self.snapshots: list[tuple[float, int]] = []  # (when, limit) of each REST depth request
        self.flood_at = (
            None if held else 0.0
        )  # held: as fast as read only from a GET of `FLOOD` (`warm_rate` before)

    @staticmethod
    def _side(rng: random.Random, sign: int) -> str:
        levels = [
            [f"{95000 + sign * (1 + rng.randint(0, 400)) / 10:.2f}", f"{rng.randint(0, 50000) / 10000:.5f}"]
            for _ in range(10)
        ]
        return json.dumps(levels, separators=(",", ":"))

    def snapshot(self, instrument: str) -> dict:
        """A REST depth answer whose lastUpdateId is the last diff sent: the next diff continues it."""
        bids = [[f"{95000 - k / 10:.2f}", "1.00000"] for k in range(1, 21)]
        asks = [[f"{95000 + k / 10:.2f}", "1.00000"] for k in range(1, 21)]
        return {"lastUpdateId": self.update_ids.get(instrument, 0), "bids": bids, "asks": asks}

    def render(
        self, instruments: list[str], count: int, depths: list[str] | None = None, turns: dict | None = None
    ) -> bytes:
        """`count` framed events stamped now: trades going round `instruments`, depth diffs round
        `depths` (default: the same); a kind with no instrument gives its turn to the other."""
        now_ms = time.time_ns() // 1_000_000
        depths = instruments if depths is None else depths
        turns = self.turns if turns is None else turns
        if not instruments and not depths:
            return b""
        out = []
        for _ in range(count):
            self.n += 1
            depth = (
                bool(self.depth_every) and self.n % self.depth_every == 0 and bool(depths)
            ) or not instruments
            kind = "depth" if depth else "trade"
            turns[kind] += 1
            names = depths if depth else instruments
            name = names[turns[kind] % len(names)]
            lower = name.lower()
            if depth:
                first = self.update_ids[name] + 1
                last = self.update_ids[name] = first + 6
                text = DEPTH % (
                    lower,
                    now_ms,
                    name,
                    first,
                    last,
                    self.sides[self.n % 61],
                    self.sides[61 + self.n % 61],
                )
            else:
                trade_id = self.trade_ids[name] = self.trade_ids[name] + 1
                price, qty, maker = self.trades[self.n % 997]
                text = TRADE % (lower, now_ms, name, trade_id, price, qty, now_ms, maker)
            out.append(frame(text.encode()))
        return b"".join(out)

    def report(self) -> dict:
        """Frames sent; per connection its streams, acks, control messages (the most in any second) and
        times from the first connect; the subscription time (the first connect to the last stream added
        on a connection the sender did not end); refusals; the REST snapshots' times and limits."""
        t0 = self.sessions[0].opened if self.sessions else 0.0
        kept = [s for s in self.sessions if s.closed_for is None]
        return {
            "sent": self.n,
            "connections": len(self.sessions),
            "sessions": [s.report(t0) for s in self.sessions],
            "streams": len(set().union(*(s.streams for s in kept))),
            "subscription_s": round(max((s.subscribed_at for s in kept), default=t0) - t0, 3),
            "max_control_per_s": max((most_in_a_second(s.control) for s in self.sessions), default=0),
            "refusals": self.refusals,
            "flood_s": None if self.flood_at is None else round(max(self.flood_at - t0, 0.0), 3),
            "snapshots": [(round(t - t0, 3), limit) for t, limit in self.snapshots],
        }


async def read_frames(
    market: Market,
    session: Session,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    closed: asyncio.Event,
) -> None:
    """Answer what the client sends: a ping with its pong, a SUBSCRIBE with an ack (or an error past the
    streams limit), another request with an ack, a close with a close; past the message limit, close
    the connection (1008); sets `closed` when the connection ends."""
    try:
        while True:
            head = await reader.readexactly(2)
            opcode, n = head[0] & 0x0F, head[1] & 0x7F
            if n == 126:
                n = struct.unpack("!H", await reader.readexactly(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", await reader.readexactly(8))[0]
            mask = await reader.readexactly(4) if head[1] & 0x80 else b"\0\0\0\0"
            data = await reader.readexactly(n)
            payload = bytes(b ^ mask[k % 4] for k, b in enumerate(data))
            if opcode == 0x8:
                writer.write(frame(payload[:2], 0x8))
                break
            if opcode in (0x1, 0x9, 0xA) and not session.note(time.monotonic()):
                session.closed_for = "rate"
                market.refusals["rate"] += 1
                writer.write(frame(struct.pack("!H", POLICY_VIOLATION) + b"Too many requests", 0x8))
                break
            if opcode == 0x9:
                writer.write(frame(payload, 0xA))
            elif opcode == 0x1:
                writer.write(frame(answer(market, session, json.loads(payload)).encode()))
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        closed.set()


def answer(market: Market, session: Session, request: dict) -> str:
    """A request's answer: a SUBSCRIBE's streams added and acknowledged, or refused past the limit."""
    request_id = request.get("id")
    if request.get("method") == "SUBSCRIBE":
        if not session.add([str(s) for s in request.get("params") or ()], market.trade_ids):
            session.errors += 1
            market.refusals["streams"] += 1
            return json.dumps({"error": {"code": 4, "msg": "Too many subscriptions"}, "id": request_id})
        session.acks += 1
    return json.dumps({"result": None, "id": request_id})


async def push(
    market: Market,
    session: Session,
    writer: asyncio.StreamWriter,
    rate: float,
    warm_rate: float,
    closed: asyncio.Event,
) -> None:
    """Frames of the connection's streams until it ends: `rate` a second, or (0) as fast as it reads once
    the flood started (`FLOOD`), `warm_rate` a second before."""
    started, sent = time.monotonic(), 0
    while not closed.is_set():
        pace = rate or (0 if market.flood_at is not None else warm_rate)
        if not (session.trades or session.depths):  # nothing subscribed yet
            await asyncio.sleep(TICK_S)
            continue
        if pace <= 0:
            count = CHUNK
        else:
            count = min(int((time.monotonic() - started) * pace) - sent, 10 * CHUNK)
            if count <= 0:
                await asyncio.sleep(TICK_S)
                continue
        writer.write(market.render(session.trades, count, session.depths, session.turns))
        sent += count
        await writer.drain()


def streams_of(target: str) -> list[str]:
    """The streams a combined-stream URL names (`/stream?streams=btcusdt@trade/...`)."""
    return [s for s in parse_qs(urlsplit(target).query).get("streams", [""])[0].split("/") if s]


async def handle(
    market: Market, rate: float, warm_rate: float, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    while True:  # REST requests on a kept-alive connection (as Binance's), until a WebSocket upgrade
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return
        target = head.split(" ", 2)[1]
        if not target.startswith("/api/v3/depth"):
            break
        query = parse_qs(urlsplit(target).query)
        market.snapshots.append((time.monotonic(), int(query.get("limit", ["100"])[0])))
        body = json.dumps(market.snapshot(query.get("symbol", [""])[0])).encode()
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()
    headers = {
        k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in head.split("\r\n")[1:])
    }
    if target == FLOOD:
        market.flood_at = market.flood_at if market.flood_at is not None else time.monotonic()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()
        return
    session, named = Session(time.monotonic()), streams_of(target)
    if not session.add(named, market.trade_ids):  # more streams than a connection may carry
        market.refusals["streams"] += 1
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()
        return
    session.url_streams = len(session.streams)
    market.sessions.append(session)
    accept = base64.b64encode(hashlib.sha1(headers["sec-websocket-key"].encode() + GUID).digest()).decode()
    writer.write(
        (
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {accept}\r\n\r\n"
        ).encode()
    )
    closed = asyncio.Event()
    answering = asyncio.create_task(read_frames(market, session, reader, writer, closed))
    try:
        await push(market, session, writer, rate, warm_rate, closed)
    except ConnectionError:
        pass
    finally:
        answering.cancel()
        writer.close()


async def serve(
    rate: float,
    depth_share: float,
    instruments: list[str],
    port: int,
    warm_rate: float = 0.0,
    held: bool = False,
) -> None:
    market = Market(instruments, depth_share, held=held)
    server = await asyncio.start_server(lambda r, w: handle(market, rate, warm_rate, r, w), "127.0.0.1", port)
    print(json.dumps({"port": server.sockets[0].getsockname()[1]}), flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)  # the bench closes our stdin to stop us
    server.close()
    print(json.dumps(market.report()), flush=True)


def main(argv: list[str] | None = None) -> None:
    exit_with_parent()
    parser = argparse.ArgumentParser(prog="python -m bench.live_sender", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rate", type=float, default=0.0, help="frames a second per connection (0: as fast as read)"
    )
    parser.add_argument(
        "--depth-share", type=float, default=0.25, help="share of depth diffs among the frames"
    )
    parser.add_argument("--instruments", default="BTCUSDT", help="comma list of the market's instruments")
    parser.add_argument("--universe", type=int, default=0, help="instead: this many (`universe_names`)")
    parser.add_argument(
        "--held",
        action="store_true",
        help="with --rate 0: as fast as read only from a GET of "
        f"{FLOOD} (the client subscribed), --warm-rate a second a connection before",
    )
    parser.add_argument("--warm-rate", type=float, default=1000.0)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    instruments = universe_names(args.universe) if args.universe else args.instruments.split(",")
    asyncio.run(serve(args.rate, args.depth_share, instruments, args.port, args.warm_rate, args.held))


if __name__ == "__main__":
    main()
