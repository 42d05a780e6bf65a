"""A bench-only Binance spot market for `bench live_capture`: a WebSocket server pushing pre-rendered
Binance combined-stream frames (`trade` and `depthUpdate` events) as fast as the client reads them,
or at a set rate, plus `/api/v3/depth` snapshots that fit the diffs (so the collector's books sync).

Why not the replay (replay/crypto/binance_ws.py): it builds every event from the tapes and the true
book in Python and sends through the `websockets` server, so it costs more CPU per frame than the
client it feeds and would measure itself. Here a frame is a template filled with its ids and times
(`%` formatting) and framed by hand (a server frame is unmasked: two to ten header bytes), written
in chunks of a few hundred frames; what the client sends (pings, a SUBSCRIBE, the close) is read and
answered (pong, ack, close), nothing else. The frames look like Binance's: trade events with real
field names and ids counting per instrument, depth diffs of ten levels a side whose U/u continue
the previous u, the event time `E` (and a trade's `T`) the send time in ms, so a receiver's lag is
the path's.

Run: `python -m bench.live_sender --rate 0` (0: as fast as the client reads); it prints
`{"port": n}` on stdout, serves until stdin closes, then prints `{"sent": frames}`.
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
from urllib.parse import parse_qs, urlsplit

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TRADE = ('{"stream":"%s@trade","data":{"e":"trade","E":%d,"s":"%s","t":%d,"p":"%s","q":"%s","T":%d,'
         '"m":%s,"M":true}}')
DEPTH = '{"stream":"%s@depth@100ms","data":{"e":"depthUpdate","E":%d,"s":"%s","U":%d,"u":%d,"b":%s,"a":%s}}'
CHUNK = 256  # frames per write when sending as fast as the client reads
TICK_S = 0.002  # the paced sender's step


def frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """One unmasked (server to client) WebSocket frame."""
    n = len(payload)
    if n < 126:
        return bytes((0x80 | opcode, n)) + payload
    if n < 65536:
        return bytes((0x80 | opcode, 126)) + struct.pack("!H", n) + payload
    return bytes((0x80 | opcode, 127)) + struct.pack("!Q", n) + payload


class Market:
    """Frames of `instruments`, one depth diff every `1 / depth_share` frames, the rest trades."""

    def __init__(self, instruments: list[str], depth_share: float, seed: int = 7):
        rng = random.Random(seed)
        self.instruments = instruments
        # trade ids from the clock: a later sender's ids are new to the stream's duplicate window
        self.trade_ids = dict.fromkeys(instruments, time.time_ns() // 1000)  # a million ids a second apart
        self.update_ids = dict.fromkeys(instruments, 40_000_000)
        self.trades = [(f"{95000 + rng.randint(-500, 500) + rng.randint(0, 99) / 100:.2f}",
                        f"{rng.randint(1, 20000) / 10000:.5f}", rng.choice(("true", "false"))) for _ in range(997)]
        self.sides = [self._side(rng, sign) for sign in (-1, 1) for _ in range(61)]
        self.depth_every = round(1 / depth_share) if depth_share > 0 else 0
        self.n = 0
        self.turns = {"trade": 0, "depth": 0}  # each kind goes round every instrument in turn

    @staticmethod
    def _side(rng: random.Random, sign: int) -> str:
        levels = [[f"{95000 + sign * (1 + rng.randint(0, 400)) / 10:.2f}", f"{rng.randint(0, 50000) / 10000:.5f}"]
                  for _ in range(10)]
        return json.dumps(levels, separators=(",", ":"))

    def snapshot(self, instrument: str) -> dict:
        """A REST depth answer whose lastUpdateId is the last diff sent: the next diff continues it."""
        bids = [[f"{95000 - k / 10:.2f}", "1.00000"] for k in range(1, 21)]
        asks = [[f"{95000 + k / 10:.2f}", "1.00000"] for k in range(1, 21)]
        return {"lastUpdateId": self.update_ids.get(instrument, 0), "bids": bids, "asks": asks}

    def render(self, instruments: list[str], count: int) -> bytes:
        """`count` framed events, trades and depth diffs each going round `instruments`, stamped now."""
        now_ms = time.time_ns() // 1_000_000
        out = []
        turns = self.turns
        for _ in range(count):
            self.n += 1
            depth = bool(self.depth_every) and self.n % self.depth_every == 0
            kind = "depth" if depth else "trade"
            turns[kind] += 1
            name = instruments[turns[kind] % len(instruments)]
            lower = name.lower()
            if depth:
                first = self.update_ids[name] + 1
                last = self.update_ids[name] = first + 6
                text = DEPTH % (lower, now_ms, name, first, last, self.sides[self.n % 61], self.sides[61 + self.n % 61])
            else:
                trade_id = self.trade_ids[name] = self.trade_ids[name] + 1
                price, qty, maker = self.trades[self.n % 997]
                text = TRADE % (lower, now_ms, name, trade_id, price, qty, now_ms, maker)
            out.append(frame(text.encode()))
        return b"".join(out)


async def read_frames(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, closed: asyncio.Event) -> None:
    """Answer what the client sends: a ping with its pong, a text request with an ack, a close with
    a close; sets `closed` when the client leaves."""
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
            if opcode == 0x9:
                writer.write(frame(payload, 0xA))
            elif opcode == 0x8:
                writer.write(frame(payload[:2], 0x8))
                break
            elif opcode == 0x1:
                request = json.loads(payload)
                writer.write(frame(json.dumps({"result": None, "id": request.get("id")}).encode()))
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        closed.set()


async def push(market: Market, instruments: list[str], writer: asyncio.StreamWriter, rate: float,
               closed: asyncio.Event) -> None:
    """Frames until the client leaves: as fast as it reads (`rate` 0), else `rate` a second."""
    started, sent = time.monotonic(), 0
    while not closed.is_set():
        if rate <= 0:
            count = CHUNK
        else:
            count = min(int((time.monotonic() - started) * rate) - sent, 10 * CHUNK)
            if count <= 0:
                await asyncio.sleep(TICK_S)
                continue
        writer.write(market.render(instruments, count))
        sent += count
        await writer.drain()


def instruments_of(target: str) -> list[str]:
    """The instruments a combined-stream URL names (`/stream?streams=btcusdt@trade/...`)."""
    streams = parse_qs(urlsplit(target).query).get("streams", [""])[0].split("/")
    return list(dict.fromkeys(s.split("@", 1)[0].upper() for s in streams if "@" in s))


async def handle(market: Market, rate: float, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        writer.close()
        return
    target = head.split(" ", 2)[1]
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in head.split("\r\n")[1:])}
    if target.startswith("/api/v3/depth"):
        instrument = parse_qs(urlsplit(target).query).get("symbol", [""])[0]
        body = json.dumps(market.snapshot(instrument)).encode()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        writer.close()
        return
    accept = base64.b64encode(hashlib.sha1(headers["sec-websocket-key"].encode() + GUID).digest()).decode()
    writer.write(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Accept: {accept}\r\n\r\n").encode())
    closed = asyncio.Event()
    answering = asyncio.create_task(read_frames(reader, writer, closed))
    try:
        await push(market, instruments_of(target) or market.instruments, writer, rate, closed)
    except ConnectionError:
        pass
    finally:
        answering.cancel()
        writer.close()


async def serve(rate: float, depth_share: float, instruments: list[str], port: int) -> None:
    market = Market(instruments, depth_share)
    server = await asyncio.start_server(lambda r, w: handle(market, rate, r, w), "127.0.0.1", port)
    print(json.dumps({"port": server.sockets[0].getsockname()[1]}), flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)  # the bench closes our stdin to stop us
    server.close()
    print(json.dumps({"sent": market.n}), flush=True)  # frames written, every connection


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.live_sender", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=0.0, help="frames a second per connection (0: as fast as read)")
    parser.add_argument("--depth-share", type=float, default=0.25, help="share of depth diffs among the frames")
    parser.add_argument("--instruments", default="BTCUSDT", help="comma list (a URL naming others wins)")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    asyncio.run(serve(args.rate, args.depth_share, args.instruments.split(","), args.port))


if __name__ == "__main__":
    main()
