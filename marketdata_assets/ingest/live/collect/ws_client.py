"""A WebSocket client for the collector: the `websockets` library's own protocol (Sans-I/O: handshake,
control frames, messages in pieces, closing) on an asyncio transport, each message handed to a
callback as the bytes arrive; after the handshake the frames are cut here, and a message in one
unmasked text frame (nearly all) goes straight to the callback (docs/live-capture.md, Bench).

Why not `websockets.connect`: its asyncio client hands frames over one `await recv()` at a time,
through an assembler, a future and the reader's task; at tens of thousands of frames a second that
glue cost the collector more than the library's parsing of the frame itself (bench live_capture).
Here `data_received` parses what came and calls `on_text(text, recv_ns)` for each text message at
once (one receive time per read from the socket: the frames of one read arrived together).
Handshake errors are the library's (`InvalidStatus` with the response: a 429's `Retry-After`).
Pings from the server are answered by the protocol; `ping()` sends one of ours (keepalive).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable

from websockets.client import ClientProtocol
from websockets.exceptions import InvalidState
from websockets.frames import Close, CloseCode, Opcode
from websockets.protocol import State
from websockets.uri import parse_uri

from marketdata_assets.ingest.live.collect.wsframes import cut_texts, frame_end

TEXT, BINARY, CONT = Opcode.TEXT, Opcode.BINARY, Opcode.CONT


class WsClient(asyncio.Protocol):
    """One connection. `client = await WsClient.connect(url)`, then `client.start(on_text)` (messages that
    came before are handed over then, in order); `ended` is set once the TCP connection is gone;
    `close_rcvd` is the venue's close frame (None: none came)."""

    def __init__(self, url: str):
        self.wsuri = parse_uri(url)
        self.protocol = ClientProtocol(self.wsuri, max_size=None)
        self.on_text: Callable[[str, int], None] | None = None
        self.on_texts: Callable[[list[str], int], None] | None = None  # the messages of one read, at once
        self.early: list[tuple[str, int]] = []  # messages before `start`
        self.transport: asyncio.Transport | None = None
        self.opened = asyncio.get_running_loop().create_future()
        self.ended = asyncio.Event()
        self.fragments: list[bytes] = []  # a message sent in several frames, until its last
        self.head = b""  # the handshake's answer so far (until its end is seen)
        self.framed = False  # the frames after the handshake are cut here (`_frames`)
        self.pending = b""  # the start of a frame not yet whole

    @classmethod
    async def connect(cls, url: str, open_timeout: float = 10.0) -> WsClient:
        """Connect and complete the handshake; raises what that raises (OSError, TimeoutError,
        websockets' InvalidStatus / InvalidHandshake)."""
        client = cls(url)
        wsuri, loop = client.wsuri, asyncio.get_running_loop()
        secure = ssl.create_default_context() if wsuri.secure else None

        async def handshake() -> None:
            await loop.create_connection(
                lambda: client,
                wsuri.host,
                wsuri.port,
                ssl=secure,
                server_hostname=wsuri.host if secure else None,
            )
            await client.opened

        try:
            async with asyncio.timeout(open_timeout):
                await handshake()
        except BaseException:
            client.abort()
            raise
        return client

    def start(
        self, on_text: Callable[[str, int], None], on_texts: Callable[[list[str], int], None] | None = None
    ) -> None:
        """From now on each text message goes to `on_text(text, recv_ns)`; those cut from one read of the
        socket to `on_texts(texts, recv_ns)` at once, if given."""
        self.on_text = on_text
        self.on_texts = on_texts or (lambda texts, recv_ns: [on_text(text, recv_ns) for text in texts])
        early, self.early = self.early, []
        for text, recv_ns in early:
            on_text(text, recv_ns)

    # ---- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.protocol.send_request(self.protocol.connect())
        self._flush()

    def data_received(self, data: bytes) -> None:
        recv_ns = time.time_ns()
        if self.framed:
            self._frames(self.pending + data if self.pending else data, recv_ns)
        elif self.protocol.state is State.CONNECTING:
            self._answer(data, recv_ns)
        else:
            self._parsed(data, recv_ns)
        self._flush()  # pongs, the answer to a close frame

    def _answer(self, data: bytes, recv_ns: int) -> None:
        """The handshake's answer, to the protocol; once it opened the connection, the frames after it
        are cut here (the protocol's parser stands at a frame's start: it took the answer and nothing
        more)."""
        self.head += data
        end = self.head.find(b"\r\n\r\n")
        if end < 0:
            self._parsed(data, recv_ns)
            return
        cut = len(data) - (len(self.head) - end - 4)
        self.head = b""
        self._parsed(data[:cut], recv_ns)
        if self.protocol.state is State.OPEN:
            self.framed = True
            self._frames(data[cut:], recv_ns)
        elif cut < len(data):
            self._parsed(data[cut:], recv_ns)

    def _frames(self, buf: bytes, recv_ns: int) -> None:
        """The whole frames in `buf`: runs of messages in one unmasked text frame (nearly all) cut in
        compiled code (wsframes.py) and handed on together, without the protocol's frame objects; any
        other frame (control, a message in pieces, binary, after a close) goes whole to the protocol, in
        its place among them; the rest waits."""
        pos, protocol = 0, self.protocol
        while True:
            if self.on_text is not None and not self.fragments and protocol.state is State.OPEN:
                texts, pos, end, bad = cut_texts(buf, pos)
                if texts:
                    self.on_texts(texts, recv_ns)
            else:
                end, bad = frame_end(buf, pos), False
            if end < 0:
                break
            if bad:
                self._invalid_text()
            else:
                self._parsed(buf[pos:end], recv_ns)
            pos = end
        self.pending = buf[pos:]

    def _parsed(self, data: bytes, recv_ns: int) -> None:
        """`data` parsed by the protocol, and what it made of it handed on."""
        protocol = self.protocol
        protocol.receive_data(data)
        for event in protocol.events_received():
            opcode = getattr(event, "opcode", None)  # a Response (the handshake's answer) has none
            if opcode is None:
                self._handshaken()
            elif opcode is TEXT or opcode is BINARY or opcode is CONT:
                self._message_part(event.data, event.fin, recv_ns)

    def _message_part(self, data: bytes, last: bool, recv_ns: int) -> None:
        """A frame of a message sent in several (or before `start`): the message once its last came."""
        if not last:
            self.fragments.append(data)
            return
        data = b"".join((*self.fragments, data)) if self.fragments else data
        self.fragments = []
        try:
            text = data.decode()
        except UnicodeDecodeError:
            self._invalid_text()
            return
        if self.on_text is None:
            self.early.append((text, recv_ns))
        else:
            self.on_text(text, recv_ns)

    def eof_received(self) -> bool | None:
        if self.pending:  # a frame cut by the end: the protocol tells it as it would have
            self._parsed(self.pending, time.time_ns())
            self.pending = b""
        self.protocol.receive_eof()
        self._flush()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("connection closed during the handshake"))
        self.ended.set()

    # ---- ours --------------------------------------------------------------------------------

    def _invalid_text(self) -> None:
        """A message that is not UTF-8 (RFC 6455: fail the connection, 1007), as the library's client does."""
        self.protocol.fail(CloseCode.INVALID_DATA, "invalid UTF-8 in a text message")
        self._flush()

    def _handshaken(self) -> None:
        error = self.protocol.handshake_exc
        if self.opened.done():
            return
        if error is not None:
            self.opened.set_exception(error)
        else:
            self.opened.set_result(None)

    def _flush(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        for data in self.protocol.data_to_send():
            if data:
                transport.write(data)
            elif transport.can_write_eof():
                transport.write_eof()  # the protocol's end of our side, after a closing handshake
        if self.protocol.close_expected():
            transport.close()

    def send(self, text: str) -> bool:
        """Send a text message; False when the connection is no longer open."""
        try:
            self.protocol.send_text(text.encode())
        except InvalidState:
            return False
        self._flush()
        return True

    def ping(self) -> bool:
        try:
            self.protocol.send_ping(b"")
        except InvalidState:
            return False
        self._flush()
        return True

    async def close(self, timeout_s: float) -> None:
        """The closing handshake, waiting at most `timeout_s` for the venue's close frame, then the TCP
        connection dropped."""
        if self.protocol.state is State.OPEN:
            self.protocol.send_close(1000)
            self._flush()
        try:
            async with asyncio.timeout(timeout_s):
                await self.ended.wait()
        except TimeoutError:
            self.abort()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    @property
    def close_rcvd(self) -> Close | None:
        return self.protocol.close_rcvd
