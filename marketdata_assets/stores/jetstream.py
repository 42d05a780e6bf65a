"""NATS JetStream as a store of normalized live messages: the stream, its limits, publishing with
deduplication, and counting what it holds.

Why a store: JetStream persists what the collector publishes (a file-backed stream with size and
age limits) until the consumers (the NATS -> ClickHouse path, later) have it; like the other stores
it knows no venue. Subjects are `md.<dataset>.<venue>.<instrument>` (`subject`). Every message
carries `Nats-Msg-Id`; the server drops a message whose id it has seen within the stream's
duplicate window, so a republish (after a reconnect, an unacknowledged batch, two overlapping
connections delivering one trade) stores nothing twice. `ensure_stream` is idempotent: it creates
the stream, or updates it when its limits differ, and leaves it alone when they match.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

import nats
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeout
from nats.js import api
from nats.js.errors import APIError, NoStreamResponseError, NotFoundError

from marketdata_assets.core import settings
from marketdata_assets.core.errors import StoreUnavailable

_TOKEN = re.compile(r"^[A-Za-z0-9_-]+$")


@functools.lru_cache(maxsize=65_536)
def subject(dataset: str, venue: str, instrument: str, prefix: str = "md") -> str:
    """`md.<dataset>.<venue>.<instrument>`; each part one NATS token (no dots, wildcards, spaces).
    Another `prefix` keeps a test's messages out of every other stream (streams may not overlap).
    Cached: the collector asks once a message, for a few hundred distinct subjects (the check is
    a regex per part; a refused part raises, and an exception is not cached)."""
    for part, what in (
        (prefix, "prefix"),
        (dataset, "dataset"),
        (venue, "venue"),
        (instrument, "instrument"),
    ):
        if not _TOKEN.match(part):
            raise ValueError(
                f"{what} {part!r} cannot be a NATS subject token (letters, digits, _ and - only)"
            )
    return f"{prefix}.{dataset}.{venue}.{instrument}"


@dataclass(frozen=True)
class StreamSpec:
    """A stream and its limits (the oldest messages go first when a limit is reached)."""

    name: str = "MARKETDATA"
    subjects: tuple[str, ...] = ("md.>",)
    max_bytes: int = 1 << 30
    max_age_s: float = 24 * 3600.0
    duplicate_window_s: float = 120.0
    replicas: int = 1  # copies on a JetStream cluster (3: a server's loss keeps the stream available)

    def config(self) -> api.StreamConfig:
        return api.StreamConfig(
            name=self.name,
            subjects=list(self.subjects),
            max_bytes=self.max_bytes,
            max_age=self.max_age_s,
            num_replicas=self.replicas,
            # the server refuses a duplicate window longer than the age limit
            duplicate_window=min(self.duplicate_window_s, self.max_age_s),
            storage=api.StorageType.FILE,
            discard=api.DiscardPolicy.OLD,
        )


def _differs(current: api.StreamConfig, wanted: api.StreamConfig) -> bool:
    return (
        sorted(current.subjects or []) != sorted(wanted.subjects or [])
        or current.max_bytes != wanted.max_bytes
        or abs((current.max_age or 0) - (wanted.max_age or 0)) > 1e-3
        or abs((current.duplicate_window or 0) - (wanted.duplicate_window or 0)) > 1e-3
        or (current.num_replicas or 1) != (wanted.num_replicas or 1)
    )


class _Acks:
    """The acknowledgements of one published batch: counts, the first error, `done` when every
    message has its ack (or an error came)."""

    def __init__(self):
        self.expected, self.sent = 0, False
        self.stored = self.duplicates = 0
        self.seen: set[str] = set()
        self.duplicate_at: set[int] = set()  # the indexes of the messages the server already had
        self.error: Exception | None = None
        self.done = asyncio.Event()

    def all_sent(self) -> None:
        self.sent = True
        self.check()

    def fail(self, error: Exception) -> None:
        self.error = self.error or error
        self.done.set()

    def check(self) -> None:
        if self.sent and len(self.seen) >= self.expected:
            self.done.set()


@dataclass
class PublishResult:
    stored: int = 0
    duplicates: int = 0
    duplicate_at: frozenset[int] = frozenset()  # which messages of the batch were duplicates
    passed_at: frozenset[int] = frozenset()  # which ones the sink does not keep (another sink's datasets)
    refused_at: frozenset[int] = (
        frozenset()
    )  # which ones the sink cannot store as they are (malformed, out of range)


class PullBatches:
    """A durable pull consumer's messages in batches, received on one inbox subscription with a callback.

    Why not nats-py's `fetch`: it awaits each message through a task and a timer of its own (about five
    event-loop turns a message), the consumer's largest cost at 10k messages/s. Here the messages land
    in a list from the subscription's callback, and a batch is what the list holds. The pull request is
    JetStream's documented API: `{"batch": n, "expires": ns}` to `$JS.API.CONSUMER.MSG.NEXT.<stream>.
    <durable>`, replies to our inbox; one request is open at a time, ended by its last message or a
    status message (408: expired; 409: refused, e.g. the consumer was deleted; 404: nothing, for a
    no-wait request). A request whose end never came is given up locally `GRACE_S` after it expired:
    a reconnect loses it, and the stack's nats-server (2.9) sends no 408 for an expired request that
    delivered part of its batch, which is the common case once messages carry batches of trades (with
    2 s of grace every such request held the consumer 2 s: p99 2.2 s over 10 minutes; a second request
    open for a moment only delivers the next batch's messages early). Messages that arrive after a batch was
    taken (the open request is still delivering) start the next batch: they are pending on the server, to be
    acknowledged then.
    """

    GRACE_S = 0.1

    def __init__(self, store: JetStreamStore, stream: str, durable: str):
        self.store, self.subject = store, f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self.inbox, self.subscription = "", None
        self.buffer: list = []
        self.remaining, self.expires_at = 0, 0.0  # of the open request (0: none open)
        self.want = 0  # the batch being filled: wake the waiter when the buffer reaches it
        self.arrived = asyncio.Event()
        self.refusals: dict[str, int] = {}  # 409 descriptions -> count

    async def start(self) -> PullBatches:
        self.inbox = self.store.nc.new_inbox()
        self.subscription = await self.store.nc.subscribe(self.inbox, cb=self._on_msg)
        return self

    async def stop(self) -> None:
        """Let the open request end (it may still deliver), give back what no batch took (`nak`:
        redelivered at once to whoever pulls next, not after the ack wait), unsubscribe."""
        end = self.expires_at + self.GRACE_S
        while self.remaining > 0 and time.monotonic() < end and not self.store.nc.is_closed:
            self.arrived.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(end - time.monotonic()):
                    await self.arrived.wait()
        left, self.buffer = self.buffer, []
        with contextlib.suppress(Exception):  # a closed connection: the server redelivers after ack_wait
            for msg in left:
                await msg.nak()
            if self.subscription is not None:
                await self.subscription.unsubscribe()
        self.subscription = None

    async def ack(self, messages: list, give_up_s: float, confirm_s: float = 2.0) -> bool:
        """Acknowledge `messages`: a plain `+ACK` each, the last one confirmed by the server (a double
        ack; the server takes one connection's acks in order, so the confirmation covers them all: one
        round trip a batch, not one a message). Not confirmed within `confirm_s` (NATS away or
        restarting): all sent again, until confirmed or `give_up_s` has passed (then the server
        redelivers them after its ack wait). Sending an ack again is harmless: the server ignores the
        ack of a message it no longer holds."""
        if not messages:
            return True
        nc, deadline = self.store.nc, time.monotonic() + give_up_s
        while True:
            try:
                for msg in messages[:-1]:
                    await nc.publish(msg.reply, b"+ACK")
                await nc.request(messages[-1].reply, b"+ACK", timeout=confirm_s)
                return True
            except Exception:  # noqa: BLE001  (a timeout, a closed or reconnecting connection)
                if nc.is_closed or time.monotonic() + confirm_s > deadline:
                    return False
                await asyncio.sleep(0.1)

    async def _on_msg(self, msg) -> None:
        status = msg.headers.get("Status") if msg.headers else None
        if status is None:
            self.buffer.append(msg)
            self.remaining -= 1
            if len(self.buffer) != 1 and len(self.buffer) < self.want and self.remaining > 0:
                return  # wake the waiter at the first message, a full batch, the request's end only
        elif status == "100":  # an idle heartbeat (not asked for): nothing ends
            return
        else:
            if status == "409":
                reason = msg.headers.get("Description", "")
                self.refusals[reason] = self.refusals.get(reason, 0) + 1
            self.remaining = 0
        self.arrived.set()

    async def _request(self, batch: int, expires_s: float) -> None:
        body = json.dumps({"batch": batch, "expires": int(expires_s * 1e9)}).encode()
        self.remaining, self.expires_at = batch, time.monotonic() + expires_s
        await self.store.nc.publish(self.subject, body, reply=self.inbox)

    async def batch(self, size: int, first_wait_s: float, fill_wait_s: float) -> list:
        """Up to `size` messages: waits up to `first_wait_s` for the first, then up to `fill_wait_s`
        more for the batch to fill; [] if none came. A request asks for what the batch lacks and
        lives `first_wait_s` at most."""
        self.want, first_end, fill_end = size, time.monotonic() + first_wait_s, None
        while len(self.buffer) < size:
            now = time.monotonic()
            if self.buffer and fill_end is None:
                fill_end = now + fill_wait_s
            end = first_end if fill_end is None else fill_end
            if now >= end:
                break
            if self.remaining > 0 and now > self.expires_at + self.GRACE_S:
                self.remaining = 0  # its end never came (a reconnect lost it): ask again
            if self.remaining <= 0:
                await self._request(size - len(self.buffer), first_wait_s)
                if self.buffer and fill_end is None:
                    continue  # the first came meanwhile: start the fill deadline
            self.arrived.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(end - now):
                    await self.arrived.wait()
        taken, self.buffer = self.buffer[:size], self.buffer[size:]
        return taken


async def first_answering(servers: list[str], timeout_s: float) -> str:
    """The first of the NATS `servers` that accepts a connection (host:port); StoreUnavailable naming
    each one's host:port (never a URL's credentials) when none does within `timeout_s` each."""
    addresses, reasons = [], []
    for url in servers:
        parts = urlsplit(url if "://" in url else f"nats://{url}")
        host, port = parts.hostname or "127.0.0.1", parts.port or 4222
        address = f"{host}:{port}"
        try:
            async with asyncio.timeout(timeout_s):
                _, writer = await asyncio.open_connection(host, port)
        except (OSError, TimeoutError) as error:
            addresses.append(address)
            reason = str(error) or f"no answer within {timeout_s:g} s"
            reasons.append(f"{address}: {reason}" if len(servers) > 1 else reason)
            continue
        writer.close()
        return address
    raise StoreUnavailable(
        "NATS JetStream",
        ", ".join(addresses),
        "; ".join(reasons),
        "Start it with `scripts/stack up nats` (which `make run` does) or set NATS_URL to a running server.",
    )


async def authorized(address: str, token: str | None, timeout_s: float) -> None:
    """One connection without retries: a refused token fails here, in one line naming the server, not in
    the client's endless reconnection loop."""

    async def quiet(_error) -> None:
        return None

    try:
        probe = await nats.connect(
            [address], token=token, allow_reconnect=False, connect_timeout=timeout_s, error_cb=quiet
        )
    except NatsError as error:
        raise StoreUnavailable(
            "NATS JetStream",
            address,
            str(error).removeprefix("nats: ").strip("'"),
            "Set NATS_TOKEN to the server's token (the local stack's is generated per state "
            "directory; scripts/with-env sets it).",
        ) from None
    await probe.close()


class JetStreamStore:
    """A connection to NATS with JetStream. `async with JetStreamStore(url) as js: ...`. `url`: one
    server, or a comma list of a cluster's (`nats://a:4222,nats://b:4222`, as NATS_URL is spelled for
    the NATS tools): the client connects to one and moves to another when that one goes away."""

    def __init__(
        self,
        url: str,
        *,
        name: str = "marketdata",
        connect_timeout_s: float = 5.0,
        ack_timeout_s: float = 5.0,
    ):
        self.url, self.name = url, name
        self.connect_timeout_s, self.ack_timeout_s = connect_timeout_s, ack_timeout_s
        self.nc: nats.NATS | None = None
        self.js = None
        self._acks: dict[str, _Acks] = {}  # the batches waiting for their acks (publish), by number
        self._ack_prefix, self._batch = "", 0

    async def connect(self) -> JetStreamStore:
        # reconnects forever once connected: a NATS restart must not end the collector (publishes wait
        # and are retried); no server answering at the start is StoreUnavailable (the client would retry
        # forever, a traceback each time)
        servers = [url.strip() for url in self.url.split(",") if url.strip()]
        token = settings.get("NATS_TOKEN") or None
        await authorized(
            await first_answering(servers, min(self.connect_timeout_s, 3.0)), token, self.connect_timeout_s
        )
        self.nc = await nats.connect(
            servers,
            name=self.name,
            connect_timeout=self.connect_timeout_s,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
            token=token,
        )
        self.js = self.nc.jetstream(timeout=self.ack_timeout_s)
        return self

    async def close(self) -> None:
        if self.nc is not None and not self.nc.is_closed:
            await self.nc.drain()

    async def __aenter__(self):
        return await self.connect()

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def ensure_stream(self, spec: StreamSpec) -> str:
        """Create the stream or bring its limits to `spec`; "created", "updated" or "unchanged"."""
        wanted = spec.config()
        try:
            info = await self.js.stream_info(spec.name)
        except NotFoundError:
            await self.js.add_stream(wanted)
            return "created"
        if _differs(info.config, wanted):
            await self.js.update_stream(wanted)
            return "updated"
        return "unchanged"

    async def publish(self, messages: Iterable[tuple[str, str, bytes]]) -> PublishResult:
        """Publish (subject, msg id, payload) messages and wait for every acknowledgement; raises
        (nats TimeoutError, APIError, NoStreamResponseError) when one does not come or is an error:
        the caller republishes the whole batch and the duplicate window keeps what was stored once.

        JetStream "async publish", light: every message goes out with a reply subject
        `<inbox>.<batch>_<i>` under one wildcard subscription (`_on_ack`), and the batch waits for
        all its acks at once; an ack is read for its `duplicate` flag and errors only (no future,
        no PubAck object a message: nats-py's publish_async cost ~36 µs a message)."""
        if not self._ack_prefix:
            await self._subscribe_acks()
        self._batch += 1
        number = str(self._batch)
        batch = self._acks[number] = _Acks()
        try:
            prefix, publish = f"{self._ack_prefix}{number}_", self.nc.publish
            for i, (subj, msg_id, payload) in enumerate(messages):
                await publish(subj, payload, reply=f"{prefix}{i}", headers={"Nats-Msg-Id": msg_id})
                batch.expected += 1
            batch.all_sent()
            async with asyncio.timeout(self.ack_timeout_s * 2):
                await batch.done.wait()
        finally:
            self._acks.pop(number, None)
        if batch.error is not None:
            raise batch.error
        return PublishResult(
            stored=batch.stored, duplicates=batch.duplicates, duplicate_at=frozenset(batch.duplicate_at)
        )

    async def _subscribe_acks(self) -> None:
        self._ack_prefix = f"{self.nc.new_inbox()}."
        await self.nc.subscribe(f"{self._ack_prefix}*", cb=self._on_ack)

    async def _on_ack(self, msg) -> None:
        """One acknowledgement: counted in its batch when the batch is still waiting (a late ack of
        an abandoned batch is ignored: that batch is republished whole)."""
        number, _, index = msg.subject[len(self._ack_prefix) :].partition("_")
        batch = self._acks.get(number)
        if batch is None or index in batch.seen:
            return
        batch.seen.add(index)
        data = msg.data
        if msg.headers and msg.headers.get("Status") == "503":
            batch.fail(NoStreamResponseError())
        elif b'"error"' in data:
            batch.fail(APIError.from_error(json.loads(data)["error"]))
        elif b'"duplicate"' in data and json.loads(data).get(
            "duplicate"
        ):  # the server writes `"duplicate": true`
            batch.duplicates += 1
            batch.duplicate_at.add(int(index))
        else:
            batch.stored += 1
        batch.check()

    async def message_count(self, stream: str, subject_filter: str | None = None) -> int:
        """Messages the stream holds (of one subject filter, if given)."""
        if subject_filter is None:
            return (await self.js.stream_info(stream)).state.messages
        info = await self.js.stream_info(stream, subjects_filter=subject_filter)
        return sum((info.state.subjects or {}).values())

    async def delete_stream(self, stream: str) -> None:
        try:
            await self.js.delete_stream(stream)
        except NotFoundError:
            pass


__all__ = ["JetStreamStore", "NatsTimeout", "PublishResult", "PullBatches", "StreamSpec", "subject"]
