"""The collector's WebSocket client (ingest/live/collect/ws_client.py) against a real `websockets` server
and a hand-written one: messages in order across fragments and however the bytes arrive, what came before
`start` kept, pings answered, invalid UTF-8 and masked frames fail the connection."""

from __future__ import annotations

import asyncio

import pytest
from websockets.asyncio.server import serve
from websockets.utils import accept_key

from marketdata_assets.ingest.live.collect.ws_client import WsClient


def test_messages_fragments_and_invalid_text():
    async def handler(ws):
        await ws.send("first")  # before the client's start: kept for it
        await ws.send(["frag", "mented"])  # one message in two frames
        await ws.ping()
        await ws.send(b"\xff\xfe", text=True)  # not UTF-8: the client fails the connection (1007)
        await ws.wait_closed()

    async def main():
        async with serve(handler, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            client = await WsClient.connect(f"ws://127.0.0.1:{port}/")
            await asyncio.sleep(0.05)
            got = []
            client.start(lambda text, recv_ns: got.append(text))
            await asyncio.wait_for(client.ended.wait(), 5)
            return got, client.protocol.close_sent

    got, close_sent = asyncio.run(main())
    assert got == ["first", "fragmented"]
    assert close_sent.code == 1007


def test_a_cancel_as_the_connect_is_refused_is_a_cancel():
    """Nothing listens on port 9: the connect is refused within a few loop steps. Cancelled at each step in
    turn, the connect ends cancelled whenever the cancel came first, the step the refusal comes back too:
    a cancel taken for the refusal (Python 3.11's `asyncio.wait_for`) let a collector's stop wait forever."""

    async def cancelled_after(steps: int) -> tuple[bool, str]:
        connecting = asyncio.create_task(WsClient.connect("ws://127.0.0.1:9"))
        for _ in range(steps):
            await asyncio.sleep(0)
        ended_first = connecting.done()
        connecting.cancel()
        await asyncio.wait({connecting})
        return ended_first, "cancelled" if connecting.cancelled() else type(connecting.exception()).__name__

    async def scenario():
        return [await cancelled_after(steps) for steps in range(12)]

    outcomes = asyncio.run(scenario())
    assert all(outcome == "cancelled" for ended_first, outcome in outcomes if not ended_first), outcomes
    assert (False, "cancelled") in outcomes and (True, "ConnectionRefusedError") in outcomes, (
        outcomes
    )  # both sides seen


def _frame(payload: bytes, opcode: int = 0x1, fin: bool = True, mask: bytes | None = None) -> bytes:
    """A frame as a server writes it (RFC 6455 5.2): 7-bit, 16-bit or 64-bit length; `mask` only to break the
    rule."""
    n, first = len(payload), (0x80 if fin else 0) | opcode
    size = (
        bytes([n]) if n < 126 else bytes([126]) + n.to_bytes(2) if n < 65536 else bytes([127]) + n.to_bytes(8)
    )
    if mask is None:
        return bytes([first]) + size + payload
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([first, size[0] | 0x80]) + size[1:] + mask + body


async def _raw_server(talk):
    """A TCP server that answers the WebSocket handshake by hand, then lets `talk(answer, reader, writer)`
    write the answer and the frames in the pieces it chooses."""

    async def on_client(reader, writer):
        request = await reader.readuntil(b"\r\n\r\n")
        key = next(
            line.split(b":", 1)[1].strip()
            for line in request.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-key:")
        )
        answer = (
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept_key(key.decode()).encode() + b"\r\n\r\n"
        )
        await talk(answer, reader, writer)

    return await asyncio.start_server(on_client, "127.0.0.1", 0)


async def _collect(talk, together: bool = False) -> tuple[list[str], WsClient]:
    """The messages a client receives from `_raw_server(talk)` until the connection ends, and the client;
    `together`: the messages cut from one read come in one call (as the collector takes them)."""
    server = await _raw_server(talk)
    async with server:
        client = await WsClient.connect(f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/")
        got: list[str] = []
        client.start(
            lambda text, recv_ns: got.append(text),
            (lambda texts, recv_ns: got.extend(texts)) if together else None,
        )
        await asyncio.wait_for(client.ended.wait(), 5)
        return got, client


@pytest.mark.parametrize("together", [False, True])
def test_frames_are_cut_right_however_the_bytes_arrive(together):
    """The frames after the handshake are cut by the client itself: frames in the handshake's own read, every
    length encoding, a stream delivered a byte at a time, a ping answered between messages, a message in
    pieces, and a close frame: the same messages, in order, as the protocol would give (also when the
    messages of one read are handed on together: those the protocol gives stay in their place)."""
    big, mid = "x" * 70_000, "é" * 100  # 64-bit and 16-bit lengths (é: two bytes of UTF-8)
    pong = asyncio.Event()

    async def talk(answer, reader, writer):
        writer.write(answer + _frame(b"in-the-answer") + _frame(mid.encode()))
        writer.write(_frame(big.encode()) + _frame(b"", opcode=0x9))
        for byte in _frame(b"byte-by-byte") + _frame(b"frag", fin=False) + _frame(b"mented", opcode=0x0):
            writer.write(bytes([byte]))
            await writer.drain()
        head = await reader.readexactly(2)  # the client's pong (masked: 4 key bytes, no payload)
        await reader.readexactly(4 + (head[1] & 0x7F))
        if head[0] & 0x0F == 0xA:
            pong.set()
        writer.write(
            _frame(b"before") + _frame(b"pie", fin=False) + _frame(b"ces", opcode=0x0) + _frame(b"after")
        )
        writer.write(_frame(b"last") + _frame((1000).to_bytes(2), opcode=0x8))
        await writer.drain()

    got, client = asyncio.run(_collect(talk, together))
    assert got == [
        "in-the-answer",
        mid,
        big,
        "byte-by-byte",
        "fragmented",
        "before",
        "pieces",
        "after",
        "last",
    ]
    assert pong.is_set()
    assert client.close_rcvd.code == 1000


def test_a_masked_frame_from_the_server_fails_the_connection():
    """A server must not mask its frames (RFC 6455 5.1): the protocol is told, and fails the connection
    (1002)."""

    async def talk(answer, reader, writer):
        writer.write(answer + _frame(b"fine") + _frame(b"masked", mask=b"abcd") + _frame(b"never"))
        await writer.drain()
        await reader.read()

    got, client = asyncio.run(_collect(talk))
    assert got == ["fine"]
    assert client.protocol.close_sent.code == 1002
