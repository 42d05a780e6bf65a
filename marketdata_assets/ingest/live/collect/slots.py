"""A collector's connections: its channels planned into slots within the venue's limits, each slot kept
connected (reconnect on loss, make before break at the venue's cut), channels added and removed while
it runs, and the requests on them (ids, acknowledgements, refusals retried with a backoff).

`LiveCollector` (collector.py) owns one `ConnectionSlots`; the limits and figures are in
docs/live-capture.md, "The collector".
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
from collections.abc import Callable
from typing import Any, NamedTuple

from marketdata_assets.core.http import Backoff
from marketdata_assets.ingest.live.collect.connection import (
    AttemptWindow,
    Connection,
    FrameQueue,
    Pacer,
    cancel_until_done,
    handshake_refusal,
)
from marketdata_assets.ingest.live.stats import Stats
from marketdata_assets.sources.stream import Frame, Keepalive, StreamProtocol, plan_connections
from marketdata_assets.stores.landing import CONTROL_CHANNEL, LandingWriter

NO_CUT_S = 10 * 365 * 86_400.0  # a venue that never cuts a connection: no rollover


def connect_failed(
    writer: LandingWriter, stats: Stats, cap_s: float, conn_id: str, error: BaseException, backoff: Backoff
) -> float:
    """Mark a failed connection attempt; the delay before the next: the backoff's, or at least what a venue
    refusing the handshake for rate (429, 418) asks (Retry-After; without one, the backoff's cap)."""
    delay = backoff.next_delay()
    refusal = handshake_refusal(error)
    if refusal is None:
        writer.marker(CONTROL_CHANNEL, conn_id, "connect_failed", error=f"{type(error).__name__}: {error}")
        return delay
    status, retry_after_s = refusal
    delay = max(delay, cap_s if retry_after_s is None else retry_after_s)
    stats.handshake_refusals[status] = stats.handshake_refusals.get(status, 0) + 1
    writer.marker(
        CONTROL_CHANNEL,
        conn_id,
        "handshake_refused",
        status=status,
        retry_after_s=retry_after_s,
        wait_s=round(delay, 3),
    )
    stats.changed.set()
    return delay


class Setup(NamedTuple):
    """What every part of a collector is given: its venue's stream, its config, the landing writer and the
    counters."""

    protocol: StreamProtocol
    config: Any  # the collector's CollectorConfig
    writer: LandingWriter
    stats: Stats


class Requests:
    """The requests a collector sent on its connections: their ids, those awaiting an answer, and the
    refused ones sent again after a backoff of their own."""

    def __init__(self, setup: Setup, connections: dict[str, Connection]):
        self.protocol, self.config, self.writer, self.stats = setup
        self.connections = connections  # the slots' connections by id (the same dict)
        self.pending: dict[int, str] = {}  # subscribe request id -> connection id
        self.refusals: dict[str, Backoff] = {}  # a refused request (without its id) -> its backoff
        self.refused_ids: dict[int, str] = {}  # the id a refused request was sent again with -> that request
        self.ids = itertools.count(1)

    def make(self, messages_of, conn_id: str | None = None) -> list[tuple[int, str]]:
        """Messages from `messages_of(first_id)`, their ids taken from the collector's counter; with
        `conn_id`, awaited as sent on that connection (`pending`)."""
        messages = messages_of(next(self.ids))
        for _ in messages[1:]:
            next(self.ids)
        if conn_id is not None:
            for message_id, _ in messages:
                self.pending[message_id] = conn_id
        return messages

    def on_ack(self, request_id: int | None) -> None:
        self.stats.acks += 1
        self.pending.pop(request_id, None)
        refused = self.refused_ids.pop(request_id, None)
        if refused is not None:
            self.refusals.pop(refused, None)  # taken at last: its next refusal starts from the base delay

    def on_refused(self, conn_id: str, frame: Frame) -> None:
        """A refused request (a subscription, a book's resubscription, a rate limit): marked with the
        venue's whole error object, counted by its code, and sent again on its connection with a new id
        after a backoff that grows with each refusal of the same request (jittered, capped; reset once
        it is acknowledged), so a venue that keeps refusing is not asked every second."""
        stats = self.stats
        stats.subscribe_errors += 1
        code = frame.code or "?"
        stats.errors_by_code[code] = stats.errors_by_code.get(code, 0) + 1
        stats.last_errors[code] = frame.error or ""
        owner = self.pending.pop(frame.request_id, None) if frame.request_id is not None else None
        conn = self.connections.get(owner or conn_id)
        text = conn.requests.get(frame.request_id) if conn is not None else None
        if text is None:
            self.writer.marker(
                CONTROL_CHANNEL, conn_id, "subscribe_error", id=frame.request_id, error=frame.error
            )
            return
        key = self.protocol.with_id(text, 0)  # the request without its id: its refusals share one backoff
        backoff = self.refusals.setdefault(
            key, Backoff(self.config.backoff_base_s, self.config.backoff_cap_s)
        )
        delay = backoff.next_delay()
        stats.refused_retries += 1
        stats.retry_wait_s = round(delay, 3)
        self.writer.marker(
            CONTROL_CHANNEL,
            conn_id,
            "subscribe_error",
            id=frame.request_id,
            error=frame.error,
            retry_in_s=round(delay, 3),
            refusals=backoff.failures,
        )
        request_id = next(self.ids)
        self.pending[request_id] = conn.conn_id
        self.refused_ids[request_id] = key
        again = [(request_id, self.protocol.with_id(text, request_id))]
        asyncio.get_running_loop().call_later(delay, conn.resubscribe, again)

    def answer(self, conn_id: str, frame: Frame) -> None:
        """What a frame that is not plain data asks of its connection: a reply (a pong), an acknowledged
        or refused request, the venue's notice of a cut (its slot rolls over now: make before break)."""
        conn = self.connections.get(conn_id)
        if frame.reply is not None and conn is not None:
            self.stats.replies += 1
            conn.reply(frame.reply)
        if frame.kind == "ack":
            self.on_ack(frame.request_id)
        elif frame.kind == "error":
            self.on_refused(conn_id, frame)
        elif frame.kind == "notice":
            self.stats.notices += 1
            if conn is not None:
                conn.warned.set()

    def resubscribe(self, conn_id: str, channel: str) -> list[int] | None:
        """A book's channel subscribed again on its connection (venues without REST snapshots): the
        request ids, None when the connection is gone."""
        conn = self.connections.get(conn_id)
        if conn is None:
            return None
        messages = self.make(lambda first: self.protocol.resubscribe_messages(channel, first))
        conn.resubscribe(messages)
        return [i for i, _ in messages]


def fill_slots(
    slots: list[list[str]], channels: list[str], most: int, endpoint: Callable[[str], str]
) -> tuple[list[tuple[int, list[str]]], list[str]]:
    """New `channels` into the `slots` with room, in order (at most `most` channels a slot, all of one
    `endpoint`): (slot index, the channels it takes) of each slot that takes some, and the channels left."""
    filled, rest = [], channels
    for k, slot in enumerate(slots):
        if not rest:
            break
        where = endpoint(slot[0]) if slot else ""
        fits = [channel for channel in rest if endpoint(channel) == where][: max(0, most - len(slot))]
        if fits:
            taken = set(fits)
            rest = [channel for channel in rest if channel not in taken]
            filled.append((k, fits))
    return filled, rest


class ConnectionSlots:
    """The slots (each a list of channels, one connection each, two during a rollover), their
    connections by id, and the requests sent on them."""

    def __init__(self, setup: Setup, queue: FrameQueue):
        self.protocol, self.config, self.writer, self.stats = setup
        protocol, config, self.queue = setup.protocol, setup.config, queue
        self.limits = limits = protocol.limits
        self.url_channels = limits.url_channels if config.url_streams is None else config.url_streams
        self.rollover_s = config.rollover_s or (
            limits.lifetime_s - 15 * 60 if limits.lifetime_s else NO_CUT_S
        )
        self.connections: dict[str, Connection] = {}
        self.conn_streams: dict[str, list[str]] = {}  # until its disconnect marker is landed
        self.requests = Requests(setup, self.connections)
        self.conn_numbers = itertools.count(1)
        self.attempts = AttemptWindow(limits.connections_per_window, limits.window_s)
        self.slots: list[
            list[str]
        ] = []  # each connection slot's channels (a universe change edits them in place)
        self.slot_tasks: list[asyncio.Task] = []
        self.replanned = asyncio.Event()  # the slots changed: the watch on them starts over
        # a venue counting every connection's control messages together (Deribit) gets one pacer for all
        self.pacer = Pacer(limits.control_per_s, limits.control_per_hour) if limits.control_per_ip else None

    def plan(self, channels: list[str]) -> list[list[str]]:
        """`channels` over connections within the venue's channels a connection; beyond its connections
        per IP (Deribit: 32), refused naming the remedy: a split over collectors (`Part`)."""
        plans = plan_connections(
            channels, self.config.max_streams or self.limits.max_channels, self.protocol.endpoint
        )
        most = self.limits.max_connections
        if most is not None and len(self.slots) + len(plans) > most:
            raise ValueError(
                f"{self.protocol.venue}: {len(channels)} channels need {len(self.slots) + len(plans)} "
                f"connections, above the venue's {most} per IP: split the universe over collectors "
                "(--part K/N) on several addresses"
            )
        return plans

    def start(self, channels: list[str]) -> None:
        self.slots = self.plan(channels)
        self.slot_tasks = [asyncio.create_task(self._slot(streams)) for streams in self.slots]

    async def stop(self) -> None:
        """Stop reading: the slots cancelled, every connection closed at once (each bounded by the close
        timeout: a stop is as quick for 8 connections as for 1)."""
        await cancel_until_done(self.slot_tasks)
        await asyncio.gather(*(conn.close("stop") for conn in list(self.connections.values())))

    # ---- connecting ---------------------------------------------------------------------------

    def _new_connection(self, streams: list[str]) -> Connection:
        conn_id = f"{os.getpid()}-{next(self.conn_numbers)}"
        protocol, config = self.protocol, self.config
        opening = self.requests.make(protocol.opening_messages)
        later = streams[self.url_channels :]
        messages = (
            self.requests.make(lambda first: protocol.subscribe_messages(later, first), conn_id)
            if later
            else []
        )
        named = streams[: self.url_channels]
        keepalive = protocol.keepalive
        if keepalive is not None:  # ping well before our own stale deadline could call a quiet channel dead
            keepalive = Keepalive(
                keepalive.text, config.keepalive_s or min(keepalive.every_s, config.stale_s / 2)
            )
        base = protocol.endpoint_url(config.ws_url, protocol.endpoint(streams[0]) if streams else "")
        conn = Connection(
            conn_id,
            protocol.url(base, named),
            streams,
            opening + messages,
            self.queue,
            self.stats,
            stale_s=config.stale_s,
            pacer=self.pacer or Pacer(self.limits.control_per_s, self.limits.control_per_hour),
            keepalive=keepalive,
            trade_marks=protocol.trade_marks,
        )
        self.connections[conn_id] = conn
        self.conn_streams[conn_id] = list(streams)
        return conn

    async def _open(self, streams: list[str], backoff: Backoff) -> Connection:
        """A connected connection, after as many attempts (backed off) as it takes."""
        while True:
            await self.attempts.wait()
            conn = self._new_connection(streams)
            try:
                await conn.open()
            except (asyncio.CancelledError, Exception) as error:  # any failure: retry; a stop: end
                self.connections.pop(conn.conn_id, None)
                self.conn_streams.pop(conn.conn_id, None)
                if isinstance(
                    error, asyncio.CancelledError
                ):  # a stop while connecting: this connection never was
                    raise
                self.stats.connect_failures += 1
                await asyncio.sleep(
                    connect_failed(
                        self.writer, self.stats, self.config.backoff_cap_s, conn.conn_id, error, backoff
                    )
                )
                continue
            self.stats.connects += 1
            return conn

    async def _slot(self, streams: list[str]) -> None:
        """Keep one connection's streams flowing: reconnect on loss, roll over before the cut (or at
        once when the venue announces one)."""
        backoff = Backoff(self.config.backoff_base_s, self.config.backoff_cap_s)
        conn = await self._open(streams, backoff)
        while True:
            waits = {
                asyncio.create_task(asyncio.sleep(self.rollover_s)),
                asyncio.create_task(conn.ended.wait()),
                asyncio.create_task(conn.warned.wait()),
            }  # the cut's time, a loss, the venue's notice
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:  # a stop too: none of them outlives the slot
                for waiting in waits:
                    waiting.cancel()
            if conn.ended.is_set():
                self.connections.pop(conn.conn_id, None)
                if conn.frames:
                    backoff.reset()
                await asyncio.sleep(backoff.next_delay())
                conn = await self._open(streams, backoff)
                continue
            successor = await self._open(streams, backoff)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.stale_s):
                    await successor.all_data.wait()
            self.stats.rollovers += 1
            await conn.close("rollover")
            self.connections.pop(conn.conn_id, None)
            conn = successor

    # ---- what the venue answers ---------------------------------------------------------------

    def carried_elsewhere(self, conn_id: str) -> set[str]:
        """The channels the open connections other than `conn_id` carry."""
        return {
            c
            for other, conn in self.connections.items()
            if other != conn_id and not conn.ended.is_set()
            for c in conn.streams
        }

    # ---- the channels changing ----------------------------------------------------------------

    def _carrying(self, slot: list[str]) -> list[Connection]:
        """The open (or opening) connections of a slot: one, two during a rollover."""
        return [
            conn for conn in self.connections.values() if conn.streams is slot and not conn.ended.is_set()
        ]

    def _send(self, conn: Connection, channels: list[str], joined: bool) -> None:
        """Channels subscribed (`joined`) or unsubscribed on a connection, awaited as any request
        (`pending`)."""
        messages_of = self.protocol.subscribe_messages if joined else self.protocol.unsubscribe_messages
        messages = self.requests.make(lambda first: messages_of(channels, first), conn.conn_id)
        marked = self.conn_streams.get(conn.conn_id)
        if marked is not None:
            if joined:
                self.conn_streams[conn.conn_id] = marked + channels
            else:
                leaving = set(channels)
                self.conn_streams[conn.conn_id] = [c for c in marked if c not in leaving]
        if not joined:  # a rollover's successor waits for data of its channels only
            for channel in channels:
                conn.saw(channel)
        conn.send(messages)

    async def unsubscribe(self, channels: list[str]) -> None:
        """Each channel out of its slot, unsubscribed on the slot's connections; a slot left with none
        is retired (its connection closed, reason `unsubscribed`)."""
        gone, retired = set(channels), []
        for slot in self.slots:
            leaving = [channel for channel in slot if channel in gone]
            if not leaving:
                continue
            slot[:] = [channel for channel in slot if channel not in gone]
            if not slot:
                retired.append(slot)
                continue
            for conn in self._carrying(slot):
                self._send(conn, leaving, joined=False)
        self.stats.unsubscribed += len(channels)
        for slot in retired:
            await self._retire(slot)

    async def _retire(self, slot: list[str]) -> None:
        index = next(k for k, other in enumerate(self.slots) if other is slot)
        task = self.slot_tasks.pop(index)
        self.slots.pop(index)
        self.replanned.set()
        conns = self._carrying(slot)
        await cancel_until_done([task])
        await asyncio.gather(*(conn.close("unsubscribed") for conn in conns))
        for conn in conns:
            self.connections.pop(conn.conn_id, None)

    def subscribe_more(self, channels: list[str]) -> None:
        """New channels into the slots with room (same endpoint), subscribed on their connections; the
        rest on new connections (their own slots)."""
        most, endpoint = self.config.max_streams or self.limits.max_channels, self.protocol.endpoint
        filled, rest = fill_slots(self.slots, channels, most, endpoint)
        for k, fits in filled:
            self.slots[k].extend(fits)
            for conn in self._carrying(self.slots[k]):
                self._send(conn, fits, joined=True)
        if rest:
            plans = plan_connections(rest, most, endpoint)
            room = (
                len(plans)
                if self.limits.max_connections is None
                else self.limits.max_connections - len(self.slots)
            )
            unplaced = sum(len(plan) for plan in plans[max(0, room) :])
            if (
                unplaced
            ):  # the venue's connections per IP are all taken: said, counted, never silently dropped
                plans = plans[: max(0, room)]
                self.stats.unplaced_channels += unplaced
                self.writer.marker(
                    CONTROL_CHANNEL,
                    "collector",
                    "over_connection_limit",
                    channels=unplaced,
                    connections=self.limits.max_connections,
                )
            self.slots.extend(plans)
            self.slot_tasks.extend(asyncio.create_task(self._slot(plan)) for plan in plans)
            self.replanned.set()
        self.stats.subscribed_later += len(channels)


__all__ = ["NO_CUT_S", "ConnectionSlots", "Requests", "connect_failed"]
