"""The collector's WebSocket client (ingest/live/ws_client.py) against a real `websockets` server:
messages in order across fragments, what came before `start` kept, invalid UTF-8 fails the connection."""

from __future__ import annotations

import asyncio

from websockets.asyncio.server import serve

from marketdata_assets.ingest.live.ws_client import WsClient


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
