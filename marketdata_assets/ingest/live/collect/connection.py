"""One venue WebSocket connection of the collector, and the pacing rules around connections.

A connection connects, subscribes (paced), reads every frame with its receive time onto the
collector's bounded queue, and ends with a `disconnect` marker saying why; nothing here parses a
frame. Backoff, attempt window, pacer, stale deadline, the full queue and refused handshakes:
docs/live-capture.md, "One connection (`ingest/live/collect/connection.py`)".
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections import deque
from collections.abc import Sequence

from websockets.exceptions import InvalidStatus

from marketdata_assets.ingest.live.collect.batches import frame_items
from marketdata_assets.ingest.live.collect.shedding import is_trade
from marketdata_assets.ingest.live.collect.ws_client import WsClient
from marketdata_assets.ingest.live.stats import Stats
from marketdata_assets.sources.stream import Keepalive

Item = tuple  # ("frame", conn, recv_ns, text) | ("marker", conn, recv_ns, (kind, details))
# How long a close waits for the venue's close frame before the TCP connection is dropped (the library's
# 10 s default, per connection, kept a stop waiting on a venue that does not answer the closing handshake)
CLOSE_TIMEOUT_S = 1.0


async def cancel_until_done(tasks: list[asyncio.Task]) -> None:
    """Cancel the tasks, again while any still runs: a cancel can be swallowed below us, and the task
    then carries on, and the stop waits for it forever. nats-py swallows one that lands in a publish
    (`Client._flush_pending`: `except asyncio.CancelledError: pass`); Python 3.11's `asyncio.wait_for`
    one that lands as its awaitable ends (CPython gh-86296), in any library that still uses it."""
    pending = set(tasks)
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.5)
    for task in tasks:  # retrieved, as gather(return_exceptions=True) did: no "never retrieved" log
        if not task.cancelled():
            task.exception()


RATE_LIMIT_STATUSES = (418, 429)


def handshake_refusal(error: BaseException) -> tuple[int, float | None] | None:
    """(status, Retry-After in seconds or None) of a handshake refused for rate (429, 418); None otherwise."""
    if not isinstance(error, InvalidStatus) or error.response.status_code not in RATE_LIMIT_STATUSES:
        return None
    header = (error.response.headers.get("Retry-After") or "").strip()
    wait_s = None
    if header:
        try:
            wait_s = max(0.0, float(header))
        except ValueError:
            try:
                wait_s = max(0.0, email.utils.parsedate_to_datetime(header).timestamp() - time.time())
            except (TypeError, ValueError):
                wait_s = None
    return error.response.status_code, wait_s


class AttemptWindow:
    """Connection attempts allowed in a sliding window; `wait` returns when one more is allowed."""

    def __init__(self, limit: int, window_s: float):
        self.limit, self.window_s = limit, window_s
        self.times: deque[float] = deque()

    async def wait(self) -> None:
        now = time.monotonic()
        while self.times and self.times[0] <= now - self.window_s:
            self.times.popleft()
        if len(self.times) >= self.limit:
            await asyncio.sleep(self.times[0] + self.window_s - now)
        self.times.append(time.monotonic())


class Pacer:
    """At most `per_s` messages in any second, spaced `1 / per_s` apart (a burst sent at once, delayed on
    the way, lands in the venue's next second with the following ones: bench live_capture --universe
    saw 6 in a second at Binance, which closes the connection), and `per_hour` in any hour when set."""

    def __init__(self, per_s: int, per_hour: int | None = None):
        self.windows = [(1.0, max(1, per_s), deque())]
        self.gap_s = 1.0 / max(1, per_s)
        self.last = -1e9
        if per_hour:
            self.windows.append((3600.0, per_hour, deque()))
        self.turn = (
            asyncio.Lock()
        )  # first come, first sent: an unsubscribe is not overtaken by a later subscribe

    async def wait(self) -> None:
        async with self.turn:
            await self._wait()

    async def _wait(self) -> None:
        while True:
            now, delay = time.monotonic(), 0.0
            for width, most, sent in self.windows:
                while sent and sent[0] <= now - width:
                    sent.popleft()
                if len(sent) >= most:
                    delay = max(delay, sent[0] + width - now)
            delay = max(delay, self.last + self.gap_s - now)
            if delay <= 0:
                for _, _, sent in self.windows:
                    sent.append(now)
                self.last = now
                return
            await asyncio.sleep(delay)


TRADE_SLACK = 4  # a full queue still takes trade frames up to a quarter more


class FrameQueue:
    """The bounded queue between the socket readers and the processor, taken a batch at a time: the
    parts of `asyncio.Queue` the collector uses, without its per-item waiter bookkeeping (one frame is
    a few microseconds of work: `get_nowait` and `task_done` a frame were a tenth of it)."""

    def __init__(self, maxsize: int):
        self.maxsize = maxsize
        self.items: deque[Item] = deque()
        self.unfinished = 0  # taken and not yet done, plus waiting
        self.ready = asyncio.Event()  # items are waiting
        self.room = asyncio.Event()  # below maxsize
        self.finished = asyncio.Event()  # nothing unfinished
        self.room.set()
        self.finished.set()

    def qsize(self) -> int:
        return len(self.items)

    def empty(self) -> bool:
        return not self.items

    def put_nowait(self, item: Item) -> None:
        if len(self.items) >= self.maxsize:
            self.room.clear()
            raise asyncio.QueueFull
        self.put_many((item,))

    def put_many(self, items: Sequence[Item]) -> None:
        """Items that fit (the caller checked the room)."""
        self.items.extend(items)
        self.unfinished += len(items)
        if not self.ready.is_set():
            self.ready.set()
        if self.finished.is_set():
            self.finished.clear()

    async def put(self, item: Item) -> None:
        while len(self.items) >= self.maxsize:
            self.room.clear()
            await self.room.wait()
        self.put_nowait(item)

    async def take(self, most: int) -> list[Item]:
        """Up to `most` items, oldest first; waits for the first."""
        while not self.items:
            self.ready.clear()
            await self.ready.wait()
        items = self.items
        batch = [items.popleft() for _ in range(min(most, len(items)))]
        self.room.set()
        return batch

    def task_done(self, count: int = 1) -> None:
        self.unfinished -= count
        if self.unfinished <= 0:
            self.finished.set()

    async def join(self) -> None:
        await self.finished.wait()


class Connection:
    """One WebSocket connection carrying `streams` (docs/live-capture.md, "One connection")."""

    def __init__(
        self,
        conn_id: str,
        url: str,
        streams: list[str],
        subscribe: list[tuple[int, str]],
        queue: FrameQueue,
        stats: Stats,
        *,
        stale_s: float,
        pacer: Pacer,
        keepalive: Keepalive | None = None,
        trade_marks: tuple[str, ...] = (),
    ):
        self.conn_id, self.url, self.streams, self.keepalive = conn_id, url, streams, keepalive
        self.trade_marks = (
            trade_marks  # a trade frame may take TRADE_SLACK more of a full queue (shedding.py)
        )
        self.subscriptions = subscribe  # (id, text) of the SUBSCRIBE messages after connecting
        self.requests: dict[int, str] = {}  # id -> text of every request sent (a refused one is sent again)
        self.queue, self.stats, self.stale_s, self.pacer = queue, stats, stale_s, pacer
        self.ws = None
        self.first_frame = asyncio.Event()
        self.all_data = asyncio.Event()  # set when every one of its channels delivered data (`saw`)
        self.unseen: set[str] = set(streams)  # its channels that delivered no data yet
        if not self.unseen:
            self.all_data.set()
        self.ended = asyncio.Event()
        self.warned = asyncio.Event()  # the venue said it will close this connection soon (OKX's notice)
        self.reason = "open"
        self.frames = 0
        self.dropped = 0
        self.dropped_trades = 0  # trade frames among them
        self.opened_at = 0.0
        self._last_seen = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._loop_time = asyncio.get_running_loop().time
        self._tasks: list[asyncio.Task] = []

    def saw(self, channel: str | None) -> None:
        """A data frame of `channel` was processed (a rollover closes the predecessor once every
        channel of its successor delivered: before that, the old connection still carries some)."""
        self.unseen.discard(channel)
        if not self.unseen:
            self.all_data.set()

    async def open(self) -> None:
        """Connect and start reading and subscribing; raises what connecting raises."""
        self.ws = await WsClient.connect(self.url, open_timeout=10)
        loop = asyncio.get_running_loop()
        self.opened_at = self._last_seen = loop.time()
        self._arm(loop)
        self._marker("connect", url=self.url.split("?", 1)[0], streams=len(self.streams))
        self.ws.start(self._on_text, self._on_texts)
        self._tasks = [
            asyncio.create_task(self._until_lost()),
            asyncio.create_task(self._subscribe(self.subscriptions)),
            asyncio.create_task(self._ping(self.stale_s)),
        ]
        if self.keepalive is not None:
            self._tasks.append(asyncio.create_task(self._keep_alive(self.keepalive)))

    async def _subscribe(self, messages: list[tuple[int, str]]) -> None:
        for message_id, text in messages:
            await self.pacer.wait()
            if not self.ws.send(text):
                return
            self.requests[message_id] = text
            self._marker("subscribe", id=message_id)

    def send(self, messages: list[tuple[int, str]]) -> None:
        """Requests after the first ones (a universe change): sent once it is open, paced like them."""
        if self.ws is None:  # still connecting: they follow its subscriptions
            self.subscriptions.extend(messages)
        else:
            self.resubscribe(messages)

    def resubscribe(self, messages: list[tuple[int, str]]) -> None:
        """Send requests (subscriptions again, a universe's change), paced like the first ones."""
        if not self.ended.is_set():
            self._tasks.append(asyncio.create_task(self._subscribe(messages)))

    def reply(self, text: str) -> None:
        """Answer the venue's own request (Deribit's `test_request`) at once: the venue paces its requests,
        and its limit on ours is on subscriptions (a reply waiting behind them would be late)."""
        if not self.ended.is_set() and self.ws is not None:
            self.ws.send(text)

    async def _keep_alive(self, keepalive: Keepalive) -> None:
        """Send the venue's text ping whenever the connection has been quiet for `every_s`."""
        loop = asyncio.get_running_loop()
        while True:
            quiet = loop.time() - self._last_seen
            if quiet < keepalive.every_s:
                await asyncio.sleep(keepalive.every_s - quiet)
                continue
            if not self.ws.send(
                keepalive.text
            ):  # not paced: OKX counts subscribe/unsubscribe/login, not pings
                return
            self.stats.pings += 1
            await asyncio.sleep(keepalive.every_s)

    async def _ping(self, every_s: float) -> None:
        """A WebSocket ping every `every_s` (what the library's keepalive did: the path stays warm; a dead
        peer is the stale deadline's to notice)."""
        while self.ws.ping():
            await asyncio.sleep(every_s)

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = loop.call_at(self._last_seen + self.stale_s, self._deadline)

    def _deadline(self) -> None:
        loop = asyncio.get_running_loop()
        if self.ended.is_set():
            return
        if loop.time() - self._last_seen < self.stale_s:
            self._arm(loop)
            return
        self.reason = "stale"
        self.stats.stale += 1
        self.ws.abort()

    def _on_text(self, text: str, recv_ns: int) -> None:
        """A message off the socket (called as the bytes are parsed)."""
        self._on_texts([text], recv_ns)

    def _on_texts(self, texts: list[str], recv_ns: int) -> None:
        """The messages of one read off the socket: queued at once when they fit (the common case), else
        one by one, the overflow marked (`_enqueue`)."""
        self._last_seen = self._loop_time()
        if not self.frames:
            self.first_frame.set()
        self.frames += len(texts)
        queue, conn_id = self.queue, self.conn_id
        if not self.dropped and len(queue.items) + len(texts) <= queue.maxsize:
            queue.put_many(frame_items(texts, conn_id, recv_ns))
        else:
            for text in texts:
                self._enqueue(("frame", conn_id, recv_ns, text))

    async def _until_lost(self) -> None:
        try:
            await self.ws.ended.wait()
            self.reason = self._close_reason() if self.reason == "open" else self.reason
        finally:
            await self._finish()

    def _close_reason(self) -> str:
        received = self.ws.close_rcvd if self.ws is not None else None
        if received is None:
            return "dropped"  # no close frame: the TCP connection went away
        return f"closed {received.code} {received.reason}".strip()

    def _enqueue(self, item: Item) -> None:
        queue = self.queue
        if (
            len(queue.items) >= queue.maxsize
            and self.trade_marks
            and len(queue.items) < queue.maxsize + queue.maxsize // TRADE_SLACK
            and is_trade(item[3], self.trade_marks)
        ):
            if (
                self.dropped_trades
            ):  # trades dropped before it are marked before it: its trade gap is then known
                queue.put_many((self._overflow(),))
            queue.put_many((item,))  # past the bound: books and tops are dropped before a trade
            return
        if self.dropped:
            if queue.maxsize - queue.qsize() < 2:
                self._drop(item)
                return
            self._put(self._overflow())
        try:
            queue.put_nowait(item)
        except asyncio.QueueFull:
            self._drop(item)

    def _drop(self, item: Item) -> None:
        self.dropped += 1
        self.dropped_trades += bool(self.trade_marks) and is_trade(item[3], self.trade_marks)
        self.stats.overflow_frames += 1
        self.stats.changed.set()  # the processor is behind: whoever waits on the counters must hear it

    def _overflow(self) -> Item:
        """The `overflow` marker of the frames dropped since the last one (how many, how many trades)."""
        details = {
            "dropped": self.dropped,
            "cause": "full",
            **({"trades": self.dropped_trades} if self.trade_marks else {}),
        }
        self.dropped = self.dropped_trades = 0
        return self._marker_item("overflow", **details)

    def _marker_item(self, kind: str, **details) -> Item:
        return "marker", self.conn_id, time.time_ns(), (kind, details)

    def _marker(self, kind: str, **details) -> None:
        self._put(self._marker_item(kind, **details))

    def _put(self, item: Item) -> None:
        """A marker into the queue; it waits for room (markers are rare, and must not be lost)."""
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            asyncio.ensure_future(self.queue.put(item))

    async def close(self, reason: str) -> None:
        """End the connection on purpose (a rollover, a stop)."""
        if self.ended.is_set():
            return
        if self.reason == "open":  # a stop during a rollover's close keeps the first reason
            self.reason = reason
        if self.ws is None:  # never connected (its opening was cancelled): nothing to wait for
            self.ended.set()
            return
        await self.ws.close(CLOSE_TIMEOUT_S)
        await self.ended.wait()

    async def _finish(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        for task in self._tasks:
            if task is not asyncio.current_task():
                task.cancel()
        if self.ws is not None:
            self.ws.abort()
        self.stats.disconnects[self.reason.split(" ")[0]] = (
            self.stats.disconnects.get(self.reason.split(" ")[0], 0) + 1
        )
        self._marker(
            "disconnect",
            reason=self.reason,
            frames=self.frames,
            overflow_dropped=self.dropped,
            **({"overflow_trades": self.dropped_trades} if self.trade_marks and self.dropped else {}),
            age_s=round(asyncio.get_running_loop().time() - self.opened_at, 3),
        )
        self.dropped = self.dropped_trades = 0
        self.ended.set()
