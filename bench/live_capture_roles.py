"""The processes `bench live_capture` measures (bench/live_capture.py starts them), each printing one
JSON line of results on stdout:

- `bare`: the ceiling. A `websockets` client (the collector's library, opened with the collector's
  options: no compression, `max_queue` 256, no size cap, pings at the stale deadline) on the
  collector's event loop (uvloop, `run_streaming`) that receives the sender's frames and discards them.
- `picows`: the compiled ceiling. picows's Cython client (`ws_connect`, a `WSListener` whose `on_ws_frame`
  counts and discards; PINGs answered with PONGs, pings every `STALE_S`, no size cap) on the same loop,
  same URL and window.
- `wsclient`: the collector's own transport (`WsClient`, its frames cut in compiled code) receiving and
  discarding the same way: what the collector's receiving costs against the two ceilings.
- `collector`: the real `LiveCollector` with the Binance spot protocol (trades and diff-depth books):
  frames off the socket onto its bounded queue, decoded, landed raw (zstd, `LandingWriter` in a
  scratch directory), books synced from the sender's REST snapshots, trades published to the
  stack's nats-server on the bench's own subject prefix and stream.

`--universe N` (bench/live_capture_universe.py): all three on `universe_names(N)`, trade and depth@100ms
streams each, split over connections as the collector splits them (`universe_plan`: at most
`--max-streams` a connection, the venue's 1,024 by default; the first 100 in the URL, the rest
SUBSCRIBEd 100 a message: the collector paces them itself, the bare clients space them `SPACING_S`);
all count from the moment every SUBSCRIBE was acknowledged (the collector: processed), having told
the sender (`--held`) to send as fast as they read from then on.

The collector also reports its stages (`Stages`: each batch's wait on the frame queue, each publish
call, the fill of its queue and publish buffer) and what its landing files say about the frames it
dropped (`landing_gaps`: `overflow` markers, `gap` ranges, holes in the landed trade ids).

All count from their first frame (and every acknowledgement) for `seconds`, then stop (the collector
lands and publishes what it holds: its clock stops when that is done), and report frames, wall and
CPU seconds of the process (`time.process_time`: every thread, so the landing worker's zstd is
included).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import sys
import time
import traceback
import urllib.request
from array import array
from pathlib import Path
from urllib.parse import urlsplit

import websockets

from bench import exit_with_parent
from bench.live_sender import FLOOD, universe_names
from marketdata_assets.ingest.live.collect.collector import CollectorConfig, LiveCollector, run_streaming
from marketdata_assets.ingest.live.collect.connection import CLOSE_TIMEOUT_S
from marketdata_assets.ingest.live.collect.ws_client import WsClient
from marketdata_assets.sources.binance.stream import (
    URL_STREAMS,
    VENUE,
    BinanceSpotStream,
    combined_url,
    subscribe_messages,
)
from marketdata_assets.sources.registry import stream_protocol
from marketdata_assets.sources.stream import BOOKS, TRADES, plan_connections
from marketdata_assets.stores.jetstream import JetStreamStore, StreamSpec
from marketdata_assets.stores.landing import CONTROL_CHANNEL, LandingWriter
from marketdata_assets.stores.landing.reader import closed_files, read_lines

PREFIX = "benchlc"  # the bench's subjects, `benchlc.trades.BINANCE.<instrument>`: no other stream sees them


def stream_spec(prefix: str = PREFIX) -> StreamSpec:
    """The bench's own stream over `<prefix>.>` (a smoke test passes a prefix of its own)."""
    name = "BENCH_LIVE_CAPTURE" if prefix == PREFIX else f"BENCH_LIVE_CAPTURE_{prefix}"
    return StreamSpec(name=name, subjects=(f"{prefix}.>",), max_bytes=512 << 20, max_age_s=3600.0)


STREAM = stream_spec()
STALE_S = 10.0  # the collector's default stale deadline (its pings go at this interval)
SHUTDOWN_S = 90.0  # a collector's stop (land and publish what it holds) taking longer: reported as hung


async def bare(url: str, seconds: float) -> dict:
    """Receive and discard, `seconds` from the first frame. Its close waits `CLOSE_TIMEOUT_S` for the
    sender's close frame, as the universe's connections do: once the client stops reading, its full queue
    keeps that frame unread, and the library's 10 s default was spent on every run."""
    async with websockets.connect(
        url,
        open_timeout=10,
        ping_interval=STALE_S,
        ping_timeout=STALE_S,
        max_size=None,
        max_queue=256,
        compression=None,
        proxy=None,
        close_timeout=CLOSE_TIMEOUT_S,
    ) as ws:
        await ws.recv()
        frames, t0, c0 = 0, time.perf_counter(), time.process_time()
        deadline = t0 + seconds
        async for _ in ws:
            frames += 1
            if frames % 1000 == 0 and time.perf_counter() >= deadline:
                break
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"frames": frames, "wall_s": round(wall, 3), "cpu_s": round(cpu, 3)}


# The bare client's SUBSCRIBEs: one every 0.35 s. Five span 1.4 s, so a second at the sender holds at most
# four of them and a ping, unless the network or the sender's loop delays a message 0.4 s more than the
# fourth after it.
SPACING_S = 0.35


def universe_plan(instruments: list[str], max_streams: int | None = None) -> list[list[str]]:
    """The streams of `instruments` (trades and depth@100ms, as the collector names them) split over
    connections as the collector splits them (at most `max_streams` each; None: the venue's)."""
    streams = BinanceSpotStream((TRADES, BOOKS)).channels(instruments, 100)
    return plan_connections(streams, max_streams or BinanceSpotStream.limits.max_channels)


def subscribes(plan: list[str]) -> list[tuple[int, str]]:
    """The SUBSCRIBE messages of a connection's streams past those its URL names."""
    return subscribe_messages(plan[URL_STREAMS:], 1) if plan[URL_STREAMS:] else []


class Discard:
    """The bare clients' connections' receiving (websockets's, picows's): acknowledgements counted until
    every SUBSCRIBE was answered (or, with none to send, the first frame), then frames while `counting`."""

    def __init__(self, expected: int):
        self.expected, self.acks, self.frames, self.counting = expected, 0, 0, False
        self.subscribed = asyncio.Event()

    async def receive(self, ws) -> None:
        async for text in ws:
            if self.counting:
                self.frames += 1
            else:
                self.note(text)

    def note(self, text: str) -> None:
        """A message outside the window: an acknowledgement counted until all came."""
        if not self.subscribed.is_set():
            self.acks += text.startswith('{"result"')
            if self.acks >= self.expected:
                self.subscribed.set()

    async def subscribe(self, ws, plan: list[str]) -> None:
        """The collector's SUBSCRIBE messages, evenly spaced (`SPACING_S`)."""
        for k, (_, text) in enumerate(subscribes(plan)):
            if k:
                await asyncio.sleep(SPACING_S)
            await ws.send(text)


async def flood(url: str) -> None:
    """Tell the sender (`--held`) at `url`'s host to send as fast as read from now on."""
    where = urlsplit(url)
    await asyncio.to_thread(
        lambda: urllib.request.urlopen(f"http://{where.netloc}{FLOOD}", timeout=10).read()
    )


async def bare_universe(base: str, plans: list[list[str]], seconds: float) -> dict:
    """The ceiling on a universe: a connection a plan, subscribed as the collector subscribes, each
    receiving and discarding; `seconds` counted from the moment every SUBSCRIBE was acknowledged (the
    sender, held until then, told to send as fast as read)."""
    discard, started = Discard(sum(len(subscribes(plan)) for plan in plans)), time.perf_counter()
    sockets = await asyncio.gather(
        *(
            websockets.connect(
                combined_url(base, plan[:URL_STREAMS]),
                open_timeout=10,
                ping_interval=STALE_S,
                ping_timeout=STALE_S,
                max_size=None,
                max_queue=256,
                compression=None,
                proxy=None,
                close_timeout=CLOSE_TIMEOUT_S,
            )
            for plan in plans
        )
    )
    tasks = [asyncio.create_task(discard.receive(ws)) for ws in sockets]
    tasks += [asyncio.create_task(discard.subscribe(ws, plan)) for ws, plan in zip(sockets, plans)]
    try:
        return await universe_window(discard, base, seconds, started, len(plans))
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)


async def universe_window(
    discard: Discard, base: str, seconds: float, started: float, connections: int
) -> dict:
    """A bare client's universe window: once every SUBSCRIBE was acknowledged, the sender at `base` told
    to send as fast as read, and `discard` counting for `seconds`."""
    async with asyncio.timeout(120):
        await discard.subscribed.wait()
    subscribed_s = time.perf_counter() - started
    await flood(base)
    t0, c0, discard.counting = time.perf_counter(), time.process_time(), True
    await asyncio.sleep(seconds)
    discard.counting = False
    frames, wall, cpu = discard.frames, time.perf_counter() - t0, time.process_time() - c0
    return {
        "frames": frames,
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "connections": connections,
        "acks": discard.acks,
        "subscribed_s": round(subscribed_s, 3),
    }


# picows is imported by its roles only: the collector's process (its RSS, its start) stays as it was.
async def picows_connect(listener, url: str) -> tuple:
    """A picows client connection to `url` (its transport and `listener()`, a WSListener) with the bare
    websockets client's options: a ping every `STALE_S` (its pong due within as long), every PING
    answered with a PONG (picows does it before `on_ws_frame`), no size cap."""
    import picows

    return await picows.ws_connect(
        listener,
        url,
        websocket_handshake_timeout=10,
        enable_auto_ping=True,
        auto_ping_idle_timeout=STALE_S,
        auto_ping_reply_timeout=STALE_S,
        auto_ping_strategy=picows.WSAutoPingStrategy.PING_PERIODICALLY,
        enable_auto_pong=True,
        max_frame_size=sys.maxsize,
    )


def picows_kinds() -> tuple:
    """(the data frames' types, CLOSE) of picows's frames."""
    from picows import WSMsgType

    return (WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.CONTINUATION), WSMsgType.CLOSE


def picows_closing(transport) -> None:
    """A picows connection's close begun: a CLOSE sent (or answered), then the socket closed."""
    transport.send_close()
    transport.disconnect()


async def picows_close(transport) -> None:
    """A picows connection closed (`picows_closing`), waited for up to `CLOSE_TIMEOUT_S`."""
    picows_closing(transport)
    with contextlib.suppress(Exception):
        await asyncio.wait_for(transport.wait_disconnected(), CLOSE_TIMEOUT_S)


async def bare_picows(url: str, seconds: float) -> dict:
    """The compiled ceiling: picows's client receiving and discarding, `seconds` from the first frame (as
    `bare`: the messages after the first, the clock looked at every 1,000)."""
    from picows import WSListener

    data, close = picows_kinds()
    done = asyncio.get_running_loop().create_future()

    class Window(WSListener):
        frames, t0 = 0, None

        def on_ws_frame(self, transport, frame) -> None:
            if not frame.fin or frame.msg_type not in data:  # a message's last frame counts, as websockets's
                if frame.msg_type == close:
                    picows_closing(transport)
                return
            if self.t0 is None:
                self.t0, self.c0 = time.perf_counter(), time.process_time()
                self.deadline = self.t0 + seconds
                return
            self.frames += 1
            if self.frames % 1000 == 0 and time.perf_counter() >= self.deadline and not done.done():
                wall, cpu = time.perf_counter() - self.t0, time.process_time() - self.c0
                done.set_result({"frames": self.frames, "wall_s": round(wall, 3), "cpu_s": round(cpu, 3)})

        def on_ws_disconnected(self, transport) -> None:
            if not done.done():
                done.set_exception(ConnectionError("the sender closed before the window ended"))

    transport, _ = await picows_connect(Window, url)
    try:
        return await done
    finally:
        await picows_close(transport)


async def bare_wsclient(url: str, seconds: float) -> dict:
    """The collector's own transport (`WsClient`: websockets' protocol, the frames cut in compiled code)
    receiving and discarding, `seconds` from the first frame (as `bare`: the messages after the first, the
    clock looked at every 1,000): what the collector's receiving costs against the two ceilings."""
    client = await WsClient.connect(url)
    done = asyncio.get_running_loop().create_future()
    window: dict = {"frames": -1}

    def on_texts(texts: list[str], recv_ns: int) -> None:
        if window["frames"] < 0:
            window.update(frames=len(texts) - 1, t0=time.perf_counter(), c0=time.process_time())
            window["deadline"] = window["t0"] + seconds
            return
        before = window["frames"]
        window["frames"] = frames = before + len(texts)
        if frames // 1000 > before // 1000 and time.perf_counter() >= window["deadline"] and not done.done():
            wall, cpu = time.perf_counter() - window["t0"], time.process_time() - window["c0"]
            done.set_result({"frames": frames, "wall_s": round(wall, 3), "cpu_s": round(cpu, 3)})

    client.start(lambda text, recv_ns: on_texts([text], recv_ns), on_texts)
    try:
        return await done
    finally:
        await client.close(CLOSE_TIMEOUT_S)


async def picows_universe(base: str, plans: list[list[str]], seconds: float) -> dict:
    """`bare_universe` with picows's client: a connection a plan, the same SUBSCRIBEs at the same spacing
    (`Discard.subscribe`), each message counted and discarded in the window (before it, acknowledgements
    counted: `Discard.note`)."""
    from picows import WSListener, WSMsgType

    (data, close), text = picows_kinds(), WSMsgType.TEXT
    discard, started = Discard(sum(len(subscribes(plan)) for plan in plans)), time.perf_counter()

    class Feed(WSListener):
        def on_ws_connected(self, transport) -> None:
            self.transport = transport

        def on_ws_frame(self, transport, frame) -> None:
            if frame.fin and frame.msg_type in data:
                if discard.counting:
                    discard.frames += 1
                else:
                    discard.note(frame.get_payload_as_utf8_text())
            elif frame.msg_type == close:
                picows_closing(transport)

        async def send(self, message: str) -> None:  # what `Discard.subscribe` calls
            self.transport.send(text, message.encode())

    connected = await asyncio.gather(
        *(picows_connect(Feed, combined_url(base, plan[:URL_STREAMS])) for plan in plans)
    )
    tasks = [asyncio.create_task(discard.subscribe(feed, plan)) for (_, feed), plan in zip(connected, plans)]
    try:
        return await universe_window(discard, base, seconds, started, len(plans))
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*(picows_close(transport) for transport, _ in connected))


def percentiles(values: array) -> dict:
    """p50 / p99 / max of milliseconds (empty: {})."""
    if not values:
        return {}
    ordered = sorted(values)
    p50, p99 = (round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1) for q in (0.5, 0.99))
    return {"n": len(ordered), "p50_ms": p50, "p99_ms": p99, "max_ms": round(ordered[-1], 1)}


class Stages:
    """Cheap per-stage clocks inside the collector (bench only): each batch's wait on the frame queue
    (its oldest frame's receive time to the processor taking it), each JetStream publish call's
    duration, and the queue's and the publish buffer's fill, sampled."""

    def __init__(self, live):
        self.queue_wait, self.publish_ms = array("f"), array("f")
        self.most_queued = self.most_buffered = 0
        process, publish = live.processing.process, live.store.publish

        async def timed_process(batch):
            oldest = next((item[2] for item in batch if item[0] == "frame"), None)  # not a drop's marker
            if oldest is not None:
                self.queue_wait.append((time.time_ns() - oldest) / 1e6)
            await process(batch)

        async def timed_publish(messages):
            started = time.perf_counter()
            try:
                return await publish(messages)
            finally:
                self.publish_ms.append((time.perf_counter() - started) * 1000)

        live.processing.process, live.store.publish = timed_process, timed_publish
        self.live = live

    async def sample(self, every_s: float = 0.1) -> None:
        while True:
            self.most_queued = max(self.most_queued, self.live.queue.qsize())
            self.most_buffered = max(self.most_buffered, self.live.publisher.buffered)
            await asyncio.sleep(every_s)

    def report(self) -> dict:
        return {
            "queue_wait": percentiles(self.queue_wait),
            "publish_call": percentiles(self.publish_ms),
            "most_queued_frames": self.most_queued,
            "most_buffered_records": self.most_buffered,
        }


TRADE_ID = re.compile(rb'\\?"t\\?":(\d+)')  # a trade frame's id, in the frame as sent (`r`) or escaped (`d`)


def landing_gaps(landing: Path, instruments: list[str]) -> dict:
    """What the landing files say about the frames the collector dropped: per instrument's trade
    channel, the ids landed and the span from the first to the last (the sender's ids count up by
    one), the holes in it, and the gap records: trade-id ranges (`gap` markers with `first_id`/`last_id`)
    covering holes; and every record of dropped frames (`overflow_markers`)."""
    overflow = overflow_markers(landing, f"{instruments[0].lower()}@trade")
    span = landed = holes = covered = ranges = wrong = 0
    for name in instruments:
        ids, gaps = set(), []
        for path in closed_files(landing, VENUE, f"{name.lower()}@trade"):
            for line in read_lines(path):
                if b',"m":"' not in line[:160]:
                    frame_at = line.find(b'"r":')  # the frame, past the record's own `t`
                    match = TRADE_ID.search(line, frame_at if frame_at >= 0 else line.find(b'"d":'))
                    if match:
                        ids.add(int(match.group(1)))
                    continue
                record = json.loads(line)
                details = record.get("x") or {}
                if record["m"] == "gap" and "first_id" in details:
                    gaps.append((int(details["first_id"]), int(details["last_id"])))
        if not ids:
            continue
        missing = set(range(min(ids), max(ids) + 1)) - ids
        recorded = {i for first, last in gaps for i in range(first, last + 1)}
        span += max(ids) - min(ids) + 1
        landed, holes, covered, ranges = (
            landed + len(ids),
            holes + len(missing),
            covered + len(missing & recorded),
            ranges + len(gaps),
        )
        wrong += len(recorded & ids)
    return {
        "trade_ids_spanned": span,
        "trade_ids_landed": landed,
        "trade_id_holes": holes,
        "holes_in_gap_ranges": covered,
        "landed_ids_in_gap_ranges": wrong,
        "trade_gap_records": ranges,
        "overflow_records": len(overflow),
        "overflow_recorded_frames": sum(overflow),
    }


async def collector(
    url: str,
    rest_url: str,
    instruments: list[str],
    seconds: float,
    landing: Path,
    nats_url: str,
    prefix: str = PREFIX,
    queue_size: int | None = None,
    max_lag_s: float | None = None,
    max_streams: int | None = None,
    held: bool = False,
    shutdown_s: float = SHUTDOWN_S,
    subscribe_timeout_s: float = 300.0,
    synced_s: float = 0.0,
) -> dict:
    """The collector, `seconds` from its first landed frame and every SUBSCRIBE acknowledged (or, if
    that takes longer than `subscribe_timeout_s`, from then: `subscribed_s` None, its `pending_acks`
    said; `synced_s`: and every book synced, or that long; `held`: the sender told to send as fast as
    read from there), then a clean stop (land, publish, close) within `shutdown_s`. `queue_size`,
    `max_lag_s`: its frame queue's bounds (None: the production defaults; a tree without the lag bound
    ignores it); `max_streams` a connection (None: the venue's)."""
    store = await JetStreamStore(nats_url, name="bench-live-capture").connect()
    await store.ensure_stream(stream_spec(prefix))
    bounds = {"queue_size": queue_size, "max_lag_s": max_lag_s, "max_streams": max_streams}
    config = CollectorConfig(
        instruments,
        url.rsplit("/stream", 1)[0],
        rest_url,
        subject_prefix=prefix,
        **{k: v for k, v in bounds.items() if v and k in CollectorConfig.__dataclass_fields__},
    )
    live = LiveCollector(
        stream_protocol(VENUE, (TRADES, BOOKS)), config, LandingWriter(landing, VENUE), store
    )
    stages = Stages(live)
    sampling = asyncio.create_task(stages.sample())
    stop = asyncio.Event()
    plans, began = len(universe_plan(instruments, max_streams)), time.perf_counter()
    running = asyncio.create_task(live.run(stop))
    try:
        await live.stats.wait_until(lambda s: s.frames > 0 and subscribed(live, plans), subscribe_timeout_s)
        subscribed_s = round(time.perf_counter() - began, 3)
    except TimeoutError:
        subscribed_s = None
    s, at_subscribed = (
        live.stats,
        {
            "subscribed_s": subscribed_s,
            "rss_subscribed_mb": rss_mb(),
            "pending_acks": sum(c in live.connections for c in live.conns.requests.pending.values()),
        },
    )
    if synced_s:  # its books synced first (the REST snapshots of its start done): its steady state
        deadline = time.perf_counter() + synced_s
        while book_state(live)["books_synced"] < len(instruments) and time.perf_counter() < deadline:
            await asyncio.sleep(0.5)
        at_subscribed["synced_wait_s"] = round(time.perf_counter() - began, 3)
        at_subscribed["synced_before"] = book_state(live)["books_synced"]
    if held:
        await flood(url)
    start = (s.frames, s.trades, s.published, s.overflow_frames, time.perf_counter(), time.process_time())
    print(json.dumps({"ready": True}), flush=True)  # the bench starts its clocks (RSS samples, ...)
    perf_control("enable")
    await asyncio.sleep(seconds)
    window_end = {"rss_end_mb": rss_mb(), **book_state(live)}
    stop.set()
    stopping = time.perf_counter()
    try:  # a stop that never ends is a finding, not a hung bench
        await asyncio.wait_for(asyncio.shield(running), shutdown_s)
        hung = False
    except TimeoutError:
        hung = True
    wall, cpu = time.perf_counter() - start[4], time.process_time() - start[5]
    perf_control("disable")
    shutdown_s = time.perf_counter() - stopping
    if not hung:
        await store.close()
    stuck = (
        []
        if not hung
        else [
            f"{t.get_name()}: "
            + " <- ".join(
                f"{Path(f.f_code.co_filename).name}:{f.f_lineno} {f.f_code.co_name}"
                for f in t.get_stack(limit=8)
            )
            for t in asyncio.all_tasks()
            if t is not asyncio.current_task()
        ]
    )
    sampling.cancel()
    landed_bytes = sum(p.stat().st_size for p in landing.rglob("*.zst"))
    gaps = {} if hung else landing_gaps(landing, instruments)
    return {
        "frames": s.frames - start[0],
        "trades": s.trades - start[1],
        "published": s.published - start[2],
        "overflow_frames": s.overflow_frames - start[3],
        "publish_dropped": s.publish_dropped,
        "publish_failures": s.publish_failures,
        "gaps": s.gaps,
        "snapshots": s.snapshots,
        "bad_frames": s.bad_frames,
        "duplicates": s.duplicates,
        "total_frames": s.frames,
        "total_trades": s.trades,
        "total_published": s.published,
        "unpublished": live.publisher.buffered,
        "landed_bytes": landed_bytes,
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "shutdown_s": round(shutdown_s, 3),
        "shutdown_hung": hung,
        "stuck_tasks": stuck,
        "total_overflow_frames": s.overflow_frames,
        "total_overflow_trades": getattr(s, "overflow_trades", None),  # an older tree counts none
        "landing": gaps,
        "stages": stages.report(),
        **at_subscribed,
        **window_end,
        "acks": s.acks,
        "connects": s.connects,
        "disconnects": s.disconnects,
        "subscribe_errors": s.subscribe_errors,
        "connect_failures": s.connect_failures,
        "markers": dict(s.markers),
    }


def overflow_markers(landing: Path, first_channel: str) -> list[int]:
    """The frames each `overflow` marker says were dropped, from the control channel's files (every one
    lands there; a connection's channels get at most one a second), and each disconnect's
    `overflow_dropped`, from `first_channel` (a connection's other markers land in each of its channels,
    and the bench's one connection carries them all)."""
    dropped = []
    for channel, kinds in ((CONTROL_CHANNEL, ("overflow",)), (first_channel, ("disconnect",))):
        for path in closed_files(landing, VENUE, channel):
            for line in read_lines(path):
                if b',"m":"' not in line[:160]:
                    continue
                record = json.loads(line)
                details = record.get("x") or {}
                if record["m"] == "overflow" and "overflow" in kinds:
                    dropped.append(int(details["dropped"]))
                elif record["m"] in kinds and details.get("overflow_dropped"):
                    dropped.append(int(details["overflow_dropped"]))
    return dropped


def perf_control(command: str) -> None:
    """`PERF_CTL` (a FIFO): told `enable` and `disable` around the collector's window, so that
    `perf record -D -1 --control fifo:$PERF_CTL ...` samples the window alone (not the start, nor the
    landing's check after the stop)."""
    if os.environ.get("PERF_CTL"):
        with open(os.environ["PERF_CTL"], "w") as ctl:
            ctl.write(command + "\n")


def subscribed(live, connections: int) -> bool:
    """Every connection of the collector open and each of its SUBSCRIBEs acknowledged (and processed)."""
    return len(live.connections) == connections and not any(
        c in live.connections for c in live.conns.requests.pending.values()
    )


def book_state(live) -> dict:
    """Its books, those synced, and the depth diffs the others hold while they wait for a REST snapshot."""
    books = live.books.by_instrument.values()
    return {
        "books": len(books),
        "books_synced": sum(not b.needs_snapshot for b in books),
        "buffered_diffs": sum(len(b.buffer) for b in books),
    }


def rss_mb(pid: int | str = "self") -> float | None:
    """A process's resident set (/proc), MB; None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def main(argv: list[str] | None = None) -> None:
    exit_with_parent()
    parser = argparse.ArgumentParser(prog="python -m bench.live_capture_roles")
    parser.add_argument("role", choices=("bare", "picows", "wsclient", "collector"))
    parser.add_argument("--url", required=True)
    parser.add_argument("--rest-url", default="")
    parser.add_argument("--instruments", default="BTCUSDT")
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--landing", type=Path)
    parser.add_argument("--nats-url", default="")
    parser.add_argument("--prefix", default=PREFIX, help="subject prefix (its stream: stream_spec)")
    parser.add_argument(
        "--queue-size",
        type=int,
        default=None,
        help="the collector's frame queue (default: "
        "production's; the throughput part holds every frame of its window: no overflow)",
    )
    parser.add_argument(
        "--max-lag-s",
        type=float,
        default=None,
        help="the collector's lag bound (default: "
        "production's; the throughput part drops nothing for lag either)",
    )
    parser.add_argument(
        "--universe",
        type=int,
        default=0,
        help="instead of --instruments: this many, `universe_names`, over connections (`universe_plan`)",
    )
    parser.add_argument(
        "--max-streams", type=int, default=None, help="streams a connection (default: the venue's)"
    )
    parser.add_argument(
        "--held",
        action="store_true",
        help="the collector: tell the sender (--held) to send as "
        "fast as read once subscribed (the bare client's universe always does)",
    )
    parser.add_argument(
        "--shutdown-s", type=float, default=SHUTDOWN_S, help="a longer stop is reported as hung"
    )
    parser.add_argument(
        "--subscribe-timeout-s",
        type=float,
        default=300.0,
        help="the collector: count from then if its SUBSCRIBEs are not all acknowledged by then",
    )
    parser.add_argument(
        "--synced-s",
        type=float,
        default=0.0,
        help="the collector: wait up to this long for every book to sync before the window",
    )
    args = parser.parse_args(argv)
    instruments = universe_names(args.universe) if args.universe else args.instruments.split(",")
    # every role on the collector's event loop (uvloop, `run_streaming`), as `marketdata collect` runs
    if args.role in ("bare", "picows") and args.universe:
        client = bare_universe if args.role == "bare" else picows_universe
        role = client(args.url, universe_plan(instruments, args.max_streams), args.seconds)
    elif args.role in ("bare", "picows", "wsclient"):
        client = {"bare": bare, "picows": bare_picows, "wsclient": bare_wsclient}[args.role]
        role = client(args.url, args.seconds)
    else:
        role = collector(
            args.url,
            args.rest_url,
            instruments,
            args.seconds,
            args.landing,
            args.nats_url,
            args.prefix,
            args.queue_size,
            args.max_lag_s,
            args.max_streams,
            args.held,
            args.shutdown_s,
            args.subscribe_timeout_s,
            args.synced_s,
        )
    try:
        result = run_streaming(role)
    except Exception:  # noqa: BLE001  (said, and out: the loop's close would wait on the collector's tasks)
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)
    print(json.dumps(result), flush=True)
    if result.get("shutdown_hung"):
        os._exit(0)  # the stuck tasks would hold the process (the report says so)


if __name__ == "__main__":
    main()
