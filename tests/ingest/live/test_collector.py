"""The Binance spot collector against the WebSocket replay (and its REST replay) and the stack's real
nats-server: frames land raw and complete, books equal the replay's truth, every fault is survived
and on record. Waits are on the collector's counters (Stats.wait_until), never on the clock."""

from __future__ import annotations

import asyncio
import errno
import json
import threading
import time

import pytest

from marketdata_assets.ingest.live.collect.batch_landing import OVERFLOW_MARK_EVERY_NS
from marketdata_assets.ingest.live.collect.collector import CollectorConfig
from marketdata_assets.replay.crypto.binance_ws import WsConfig
from marketdata_assets.stores.landing import CONTROL_CHANNEL, LandingWriter, closed_files, read_file
from tests.support.live import (
    INSTRUMENTS,
    BinanceSpotCollector,
    books_match_at_rest,
    collecting,
    config_for,
    replays,
    stream_trades,
)

WAIT_S = 45  # progress waits (on counters): a bound for a busy host, reached in seconds when idle


def records(root, channel: str) -> list[dict]:
    return [r for path in closed_files(root, "BINANCE", channel) for r in read_file(path)]


async def books_at_rest(collector, ws) -> None:
    await books_match_at_rest(collector, ws, INSTRUMENTS, WAIT_S)


def trade_ids(root, instrument: str) -> list[int]:
    return [json.loads(r["d"])["data"]["t"] for r in records(root, f"{instrument.lower()}@trade") if "d" in r]


def test_frames_land_raw_and_complete_and_books_match(tmp_path, nats_url, stream_spec):
    stack, rest, ws = replays(WsConfig(tick_s=0.02, record=True))
    with stack:

        async def scenario():
            config = config_for(ws, rest, subject_prefix=stream_spec.subjects[0].split(".")[0])
            async with collecting(config, LandingWriter(tmp_path, "BINANCE"), nats_url, stream_spec) as (
                c,
                store,
            ):
                await c.stats.wait_until(lambda s: s.snapshots == 2 and s.published >= 200, WAIT_S)
                await books_at_rest(c, ws)
                # the market stands still again: what it sent is final (a tick in flight counts too)
                ws.pause()
                await c.stats.wait_until(lambda s: s.frames == sum(len(t) for t in ws.sent.values()), WAIT_S)
                await c.stats.wait_until(
                    lambda s: (
                        not c.publisher.trade_frames and not c.publisher.outbox and s.published == s.trades
                    ),
                    WAIT_S,
                )
                stored = await stream_trades(
                    store, stream_spec.name, f"{stream_spec.subjects[0].split('.')[0]}.trades.>"
                )
            return c.stats, stored

        stats, stored = asyncio.run(scenario())
    landed = {
        ch: [r["d"] for r in records(tmp_path, ch) if "d" in r]
        for ch in {f"{i.lower()}@{k}" for i in INSTRUMENTS for k in ("trade", "depth@100ms")}
    }
    (texts,) = ws.sent.values()
    for channel, frames in landed.items():  # every frame, byte for byte, in order
        assert frames == [t for t in texts if json.loads(t)["stream"] == channel], channel
    assert stats.gaps == 0 and stats.bad_frames == {} and stats.overflow_frames == 0
    assert len(stored) == stats.published == stats.trades  # each trade stored once
    for name in INSTRUMENTS:
        ids = trade_ids(tmp_path, name)
        assert [int(t["trade_id"]) for t in stored if t["instrument"] == name] == ids  # in order, as landed
        assert ids == list(range(ids[0], ids[0] + len(ids)))
        snapshot = records(tmp_path, f"{name.lower()}@depth_snapshot")
        assert len(snapshot) == 1 and "lastUpdateId" in json.loads(snapshot[0]["d"])


def test_a_disconnect_is_marked_and_the_collector_resumes(tmp_path):
    stack, rest, ws = replays()
    with stack:
        ws.add_fault(kind="disconnect", after=40)

        async def scenario():
            async with collecting(config_for(ws, rest), LandingWriter(tmp_path, "BINANCE")) as (c, _):
                await c.stats.wait_until(lambda s: s.connects == 2 and s.trades >= 200, WAIT_S)
                await books_at_rest(c, ws)
            return c.stats

        stats = asyncio.run(scenario())
    assert stats.disconnects.get("dropped") == 1 and stats.connect_failures == 0
    trade = records(tmp_path, "btcusdt@trade")
    kinds = [r.get("m") for r in trade if "m" in r]
    assert kinds[:3] == ["connect", "disconnect", "connect"]
    dropped = next(r for r in trade if r.get("m") == "disconnect")
    assert dropped["x"]["reason"] == "dropped" and dropped["x"]["frames"] > 40
    conns = [r["c"] for r in trade if "d" in r]
    assert len(set(conns)) == 2  # frames of both connections, each tagged with its own


def test_a_skipped_sequence_triggers_exactly_one_resync(tmp_path):
    stack, rest, ws = replays()
    with stack:
        ws.add_fault(kind="skip_sequence", instrument="BTCUSDT", after=30)

        async def scenario():
            async with collecting(config_for(ws, rest), LandingWriter(tmp_path, "BINANCE")) as (c, _):
                await c.stats.wait_until(lambda s: s.gaps == 1 and s.snapshots == 3, WAIT_S)
                await books_at_rest(c, ws)  # right again after the resync (a missed update would show)
            return c.stats

        stats = asyncio.run(scenario())
    assert stats.gaps == 1 and stats.snapshots == 3
    marks = [
        r for r in records(tmp_path, "btcusdt@depth@100ms") if r.get("m") in ("gap", "resync", "snapshot")
    ]
    assert [r["m"] for r in marks] == ["snapshot", "gap", "resync"]
    gap = marks[1]["x"]
    assert gap["got_first"] == gap["expected_first"] + 1  # one update id missing
    assert not [r for r in records(tmp_path, "ethusdt@depth@100ms") if r.get("m") in ("gap", "resync")]


def test_republish_over_overlapping_connections_is_not_duplicated(tmp_path, nats_url, stream_spec):
    """Rollover before the venue's cut: the new connection opens before the old one closes, so both
    deliver the same trades for a while; JetStream holds every trade (some twice, in the batches of
    both connections: `trades_live`'s key keeps one, tests/ingest/live/test_consumer.py), nothing is lost."""
    stack, rest, ws = replays()
    with stack:

        async def scenario():
            config = config_for(
                ws, rest, rollover_s=0.5, subject_prefix=stream_spec.subjects[0].split(".")[0]
            )
            async with collecting(config, LandingWriter(tmp_path, "BINANCE"), nats_url, stream_spec) as (
                c,
                store,
            ):
                await c.stats.wait_until(lambda s: s.rollovers >= 2, WAIT_S)
                ws.pause()
                await c.stats.wait_until(
                    lambda s: (
                        not c.publisher.trade_frames
                        and not c.publisher.outbox
                        and not c.publisher.buffered
                        and s.published == s.trades
                    ),
                    WAIT_S,
                )
                stored = await stream_trades(
                    store, stream_spec.name, f"{stream_spec.subjects[0].split('.')[0]}.trades.>"
                )
            return c.stats, stored

        stats, stored = asyncio.run(scenario())
    unique = {
        (name, i) for name in INSTRUMENTS for i in trade_ids(tmp_path, name)
    }  # ids count per instrument
    assert stats.trades > len(unique)  # the overlap delivered some trades twice (both landed raw)
    assert len(stored) == stats.published == stats.trades
    assert {(t["instrument"], int(t["trade_id"])) for t in stored} == unique
    assert stats.disconnects.get("rollover", 0) >= 2 and stats.gaps == 0


def test_the_venue_cut_is_survived(tmp_path):
    stack, rest, ws = replays(WsConfig(tick_s=0.02, lifetime_s=0.4))
    with stack:

        async def scenario():
            async with collecting(config_for(ws, rest), LandingWriter(tmp_path, "BINANCE")) as (c, _):
                await c.stats.wait_until(
                    lambda s: s.disconnects.get("closed", 0) >= 2 and s.connects >= 3, WAIT_S
                )
            return c.stats

        stats = asyncio.run(scenario())
    assert stats.gaps == 0 or stats.snapshots > 2  # a book that missed events across the cut was rebuilt
    cuts = [r["x"]["reason"] for r in records(tmp_path, "btcusdt@trade") if r.get("m") == "disconnect"]
    assert cuts[:2] == ["closed 1001 connection lifetime reached"] * 2


def test_a_stalled_socket_is_detected_and_reconnected(tmp_path):
    stack, rest, ws = replays()
    with stack:
        ws.add_fault(kind="stall", after=30)

        async def scenario():
            config = config_for(ws, rest, stale_s=1.0)
            async with collecting(config, LandingWriter(tmp_path, "BINANCE")) as (c, _):
                await c.stats.wait_until(
                    lambda s: s.stale == 1 and s.connects == 2 and s.trades >= 150, WAIT_S
                )
            return c.stats

        stats = asyncio.run(scenario())
    assert stats.disconnects.get("stale") == 1
    marks = [r for r in records(tmp_path, "ethusdt@trade") if r.get("m") == "disconnect"]
    assert marks[0]["x"]["reason"] == "stale"


class GatedWriter(LandingWriter):
    """A landing writer whose disk stops while `gate` is clear (a slow disk: the writer thread waits)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.gate = threading.Event()

    def frame(self, *args, **kwargs):
        self.gate.wait(WAIT_S)
        super().frame(*args, **kwargs)

    def frames(self, *args, **kwargs):
        self.gate.wait(WAIT_S)
        return super().frames(*args, **kwargs)


def lost_ids(root, instrument: str) -> tuple[set[int], set[int]]:
    """(the trade ids missing between the instrument's first and last landed trade, the ids its trade
    channel's `gap` markers say the dropped frames held); each range's ids are none of the landed."""
    landed = set(trade_ids(root, instrument))
    recorded = set()
    for r in records(root, f"{instrument.lower()}@trade"):
        if r.get("m") == "gap" and r["x"]["cause"] == "overflow":
            ids = set(range(r["x"]["first_id"], r["x"]["last_id"] + 1))
            assert len(ids) == r["x"]["trades"] and not ids & landed, r
            recorded |= ids
    return set(range(min(landed), max(landed) + 1)) - landed, recorded


def test_a_burst_faster_than_the_writer_is_a_counted_gap(tmp_path, caplog):
    """Trade frames dropped are said as they are: counted (`overflow_trades`, a metric and a /status figure),
    in a log line, and their ids recorded as gap ranges."""
    caplog.set_level("WARNING", logger="marketdata_assets.ingest.live.collect.processing")
    stack, rest, ws = replays()
    with stack:
        ws.add_fault(kind="burst", instrument="BTCUSDT", after=10, count=3000)
        writer = GatedWriter(tmp_path, "BINANCE")
        writer.gate.set()

        async def scenario():
            config = config_for(ws, rest, queue_size=64, batch_size=16)
            async with collecting(config, writer) as (c, _):
                await c.stats.wait_until(lambda s: s.snapshots == 2, WAIT_S)
                writer.gate.clear()
                # past the book diffs a full queue drops first (shedding.py), burst trades are dropped too
                await c.stats.wait_until(lambda s: s.overflow_frames >= 100, WAIT_S)
                writer.gate.set()
                # the whole burst received: each of its trades processed or dropped and counted
                await c.stats.wait_until(
                    lambda s: s.markers.get("overflow", 0) >= 1 and s.trades + s.overflow_frames >= 3000,
                    WAIT_S,
                )
                after = c.stats.trades  # then trades of both instruments: each one's lost ids are known
                await c.stats.wait_until(lambda s: s.trade_gaps >= 1 and s.trades >= after + 100, WAIT_S)
            return c.stats

        stats = asyncio.run(scenario())
    counted = sum(
        r["x"]["dropped"] for r in records(tmp_path, CONTROL_CHANNEL) if r.get("m") == "overflow"
    ) + sum(
        r["x"].get("overflow_dropped", 0)
        for r in records(tmp_path, "btcusdt@trade")
        if r.get("m") == "disconnect"
    )
    assert counted == stats.overflow_frames > 0  # every dropped frame is on record
    assert stats.trades + stats.overflow_frames >= 3000
    (btc_missing, btc_recorded), (eth_missing, eth_recorded) = (
        lost_ids(tmp_path, name) for name in INSTRUMENTS
    )
    assert btc_missing and btc_recorded == btc_missing  # ... and every trade id it held, as a gap range
    assert eth_recorded == eth_missing
    trade_drops = sum(
        r["x"].get("trades", 0) for r in records(tmp_path, CONTROL_CHANNEL) if r.get("m") == "overflow"
    ) + sum(
        r["x"].get("overflow_trades", 0)
        for r in records(tmp_path, "btcusdt@trade")
        if r.get("m") == "disconnect"
    )
    assert stats.overflow_trades == trade_drops > 0 and stats.overflow_trades <= stats.overflow_frames
    said = [r.getMessage() for r in caplog.records if "trade frame(s) dropped" in r.getMessage()]
    assert said and said[0].startswith("BINANCE: "), caplog.text


def test_frames_that_waited_longer_than_the_lag_bound_are_dropped_and_marked(tmp_path):
    """A processor stalled past `max_lag_s` (the landing blocked, as on a starved machine): the
    frames that waited too long are dropped whole when it resumes, not processed late; each drop is
    an `overflow` marker (cause `lag`) in the control channel, which the connection's channels hear of
    at most once a second, and the trade ids they held `gap` ranges; the queue (far from full) dropped
    nothing itself."""
    stack, rest, ws = replays()
    with stack:
        writer = GatedWriter(tmp_path, "BINANCE")
        writer.gate.set()

        async def scenario():
            config = config_for(ws, rest, max_lag_s=0.2, batch_size=16)  # one marker a batch
            async with collecting(config, writer) as (c, _):
                await c.stats.wait_until(lambda s: s.snapshots == 2 and s.trades >= 50, WAIT_S)
                writer.gate.clear()
                deadline = time.monotonic() + WAIT_S
                # waited 4.5 x the bound: past the trades' bound too (3 x; books and tops go at 1 x)
                while not (c.queue.items and time.time_ns() - c.queue.items[0][2] > 0.9e9):
                    assert time.monotonic() < deadline, "no frame queued behind the stalled landing"
                    await asyncio.sleep(0.02)
                writer.gate.set()
                await c.stats.wait_until(lambda s: s.overflow_frames > 0 and s.trade_gaps >= 1, WAIT_S)
                after = c.stats.trades
                await c.stats.wait_until(lambda s: s.trades >= after + 100, WAIT_S)
            return c.stats

        stats = asyncio.run(scenario())
    drops = [r["x"] for r in records(tmp_path, CONTROL_CHANNEL) if r.get("m") == "overflow"]
    assert drops and all(d["cause"] == "lag" and d["waited_s"] > 0.2 for d in drops)
    assert sum(d["dropped"] for d in drops) == stats.overflow_frames  # every dropped frame is on record
    for channel in ("btcusdt@trade", "ethusdt@depth@100ms"):  # a channel hears of its connection's drops ...
        marked = [(r["c"], r["t"]) for r in records(tmp_path, channel) if r.get("m") == "overflow"]
        assert (
            marked
            and all(
                a[0] != b[0] or b[1] - a[1] >= OVERFLOW_MARK_EVERY_NS  # ... at most once a second
                for a, b in zip(sorted(marked), sorted(marked)[1:])
            )
        )
        assert len(marked) < len(drops)  # one marker a batch in the control channel, in a second or two
    lost = [lost_ids(tmp_path, name) for name in INSTRUMENTS]
    assert all(recorded == missing for missing, recorded in lost) and any(missing for missing, _ in lost)
    gaps = [
        r for name in INSTRUMENTS for r in records(tmp_path, f"{name.lower()}@trade") if r.get("m") == "gap"
    ]
    assert len(gaps) == stats.trade_gaps


def test_a_refused_subscription_is_marked_and_retried(tmp_path):
    stack, rest, ws = replays()
    with stack:
        ws.add_fault(kind="subscribe_error")  # the first SUBSCRIBE is refused

        async def scenario():
            config = config_for(ws, rest, url_streams=1)  # the other three streams by SUBSCRIBE
            async with collecting(config, LandingWriter(tmp_path, "BINANCE")) as (c, _):
                await c.stats.wait_until(
                    lambda s: (
                        s.subscribe_errors == 1 and s.acks >= 1 and s.snapshots == 2 and s.trades >= 100
                    ),
                    WAIT_S,
                )
            return c.stats

        stats = asyncio.run(scenario())
    assert stats.subscribe_errors == 1 and stats.connects == 1  # retried on the same connection
    control = records(tmp_path, "_control")
    assert [r.get("m") for r in control if "m" in r] == ["subscribe_error"]
    assert any('"error"' in r["d"] for r in control if "d" in r) and any(
        '"result":null' in r["d"] for r in control if "d" in r
    )
    assert set(trade_ids(tmp_path, "ETHUSDT"))  # the refused streams flow after the retry


def test_a_stop_while_a_connection_is_still_opening_ends_at_once(tmp_path):
    """A venue that accepts the TCP connection and never answers the handshake (a reconnect in flight
    when the stop comes): the stop ends the collector within the close timeout, not never."""

    async def scenario() -> float:
        silent = await asyncio.start_server(lambda reader, writer: None, "127.0.0.1", 0)
        port = silent.sockets[0].getsockname()[1]
        config = CollectorConfig(
            list(INSTRUMENTS), f"ws://127.0.0.1:{port}", f"http://127.0.0.1:{port}", stale_s=5.0
        )
        collector = BinanceSpotCollector(config, LandingWriter(tmp_path, "BINANCE"), None)
        stop = asyncio.Event()
        task = asyncio.create_task(collector.run(stop))
        while not collector.connections:  # the connection is registered, its handshake pending
            await asyncio.sleep(0.01)
        stop.set()
        started = time.monotonic()
        await asyncio.wait_for(task, 20)
        silent.close()
        return time.monotonic() - started

    assert asyncio.run(scenario()) < 5


def test_a_stop_at_any_step_of_a_refused_connect_ends_the_collector(tmp_path):
    """Nothing listens, so each attempt is refused at once. The stop lands at each of the first loop steps
    after the attempt starts, the step its refusal comes back among them: there a cancel was once taken
    for the refusal (Python 3.11's `asyncio.wait_for`), and the slot reconnected on, its stop waited for
    forever. Every one of these stops ends the collector within 5 s."""

    async def stop_after(steps: int) -> float:
        config = CollectorConfig(list(INSTRUMENTS), "ws://127.0.0.1:9", "http://127.0.0.1:9")
        collector = BinanceSpotCollector(config, LandingWriter(tmp_path / str(steps), "BINANCE"), None)
        stop = asyncio.Event()
        task = asyncio.create_task(collector.run(stop))
        while not collector.connections:  # the attempt is registered, its connect under way
            await asyncio.sleep(0)
        for _ in range(steps):
            await asyncio.sleep(0)
        stop.set()
        started = time.monotonic()
        await asyncio.wait({task}, timeout=10)
        took = time.monotonic() - started
        task.cancel()
        return took

    async def scenario() -> dict[int, float]:
        return {steps: await stop_after(steps) for steps in range(12)}

    took = asyncio.run(scenario())
    assert max(took.values()) < 5, took


class FullDisk(LandingWriter):
    """A landing writer whose disk fills after `batches` batches of frames."""

    def __init__(self, *args, batches: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.batches = batches

    def frames(self, *args, **kwargs):
        self.batches -= 1
        if self.batches < 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        return super().frames(*args, **kwargs)


def test_a_failed_processor_stops_the_collector_with_the_error_and_closes_its_files(tmp_path):
    """The landing disk fills: the processing task fails. The collector does not read on into a queue no
    one takes from (a stop then waited forever for it): it stops at once, closes what it landed, and raises
    `CollectorFailed` naming the venue, the task and the error, the frames it lost counted."""
    from marketdata_assets.ingest.live.collect.collector import CollectorFailed

    stack, rest, ws = replays(WsConfig(tick_s=0.02))
    with stack:

        async def scenario():
            collector = BinanceSpotCollector(
                config_for(ws, rest), FullDisk(tmp_path, "BINANCE", batches=3), None
            )
            task = asyncio.create_task(collector.run(asyncio.Event()))  # never stopped: it must end by itself
            with pytest.raises(CollectorFailed) as failed:
                await asyncio.wait_for(task, WAIT_S)
            return collector, failed.value

        collector, error = asyncio.run(scenario())
    assert "BINANCE collector stopped: its process_forever task failed with OSError(28" in str(error)
    assert isinstance(error.__cause__, OSError) and error.__cause__.errno == errno.ENOSPC
    assert collector.stats.lost_frames >= 1 and f"never processed: {collector.stats.lost_frames}" in str(
        error
    )
    assert collector.stats.frames >= 1 and not list(tmp_path.rglob("*.part"))  # what it landed is closed
    landed = sum(len(records(tmp_path, f"{i.lower()}@trade")) for i in INSTRUMENTS)
    assert landed >= 1


def test_a_failed_connection_slot_stops_the_collector_with_the_error(tmp_path):
    """A connection slot that fails (a bug, not a lost connection: those it survives) is not left dead while
    the collector runs on without its streams: the collector stops and says which task failed."""
    from marketdata_assets.ingest.live.collect.collector import CollectorFailed

    async def broken_open(streams, backoff):
        raise RuntimeError("a bug in opening")

    async def scenario():
        config = CollectorConfig(list(INSTRUMENTS), "ws://127.0.0.1:9", "http://127.0.0.1:9")
        collector = BinanceSpotCollector(config, LandingWriter(tmp_path, "BINANCE"), None)
        collector.conns._open = broken_open  # each slot's first connect fails as a bug would
        with pytest.raises(CollectorFailed) as failed:
            await asyncio.wait_for(collector.run(asyncio.Event()), WAIT_S)
        return failed.value

    error = asyncio.run(scenario())
    assert "its slot task failed with RuntimeError('a bug in opening')" in str(error)


def test_the_hours_close_after_the_oldest_frame_not_landed_yet(tmp_path):
    """What the landing's tick is told (`Processor.unlanded_ns`): the receive time of the batch being
    landed while it is, else of the queue's first item, else None (nothing waits: the clock turns the
    hour)."""
    seen = []

    async def scenario():
        config = CollectorConfig(["BTCUSDT"], "ws://unused", "http://127.0.0.1:9")
        collector = BinanceSpotCollector(config, LandingWriter(tmp_path, "BINANCE"), None)
        processing, land = collector.processing, collector.landing.land_frames
        collector.landing.land_frames = lambda frames: seen.append(processing.unlanded_ns()) or land(frames)
        seen.append(processing.unlanded_ns())
        collector.queue.put_many([("frame", "c1", 7_000, '{"stream":"btcusdt@trade"}')])
        seen.append(processing.unlanded_ns())
        await processing.process([("frame", "c1", 5_000 + k, f'{{"k":{k}}}') for k in range(3)])
        seen.append(processing.unlanded_ns())
        collector.writer.close()

    asyncio.run(scenario())
    assert seen == [None, 7_000, 5_000, 7_000]


def test_a_full_publish_buffer_drops_the_trades_it_has_no_room_for_counted_and_still_landed(tmp_path):
    """The publish buffer holds `publish_buffer` records (NATS away for long): the trades past it are
    dropped from publishing and counted (`publish_dropped`), every frame is still landed."""

    def trade(k: int) -> str:
        return json.dumps(
            {
                "stream": "btcusdt@trade",
                "data": {
                    "e": "trade",
                    "E": 1672515782136,
                    "s": "BTCUSDT",
                    "t": k,
                    "p": "1.5",
                    "q": "2",
                    "T": 1672515782136,
                    "m": False,
                },
            }
        )

    async def scenario():
        writer = LandingWriter(tmp_path, "BINANCE")
        config = CollectorConfig(["BTCUSDT"], "ws://unused", "http://127.0.0.1:9", publish_buffer=3)
        collector = BinanceSpotCollector(
            config, writer, store=object()
        )  # a sink never reached: nothing is sealed
        await collector.processing.process([("frame", "c1", 1_000 + k, trade(k)) for k in range(5)])
        collector.publisher.seal_trades()  # read and sealed: the outbox takes what the buffer has room for
        writer.close()
        return collector

    collector = asyncio.run(scenario())
    assert (
        collector.stats.trades == 5
        and collector.stats.publish_dropped == 2
        and collector.publisher.buffered == 3
    )
    ((subject, _, payload, count),) = collector.publisher.outbox
    assert (
        subject.endswith(".BTCUSDT") and count == 3 and [t["seq"] for t in json.loads(payload)] == [0, 1, 2]
    )
    assert trade_ids(tmp_path, "BTCUSDT") == [0, 1, 2, 3, 4]


def test_the_processor_is_behind_while_the_batches_it_takes_waited_longer_than_a_sparse_batch(tmp_path):
    """`Processor.process_forever` tells `behind` from the oldest frame of each batch it takes: received
    more than `trade_batch_max_s` ago (and less than `max_lag_s`: not shed), behind; a fresh batch, not."""
    frame = json.dumps(
        {
            "stream": "btcusdt@trade",
            "data": {
                "e": "trade",
                "E": 1672515782136,
                "s": "BTCUSDT",
                "t": 1,
                "p": "1.5",
                "q": "2",
                "T": 1672515782136,
                "m": False,
            },
        }
    )

    async def scenario():
        config = CollectorConfig(
            ["BTCUSDT"], "ws://unused", "http://127.0.0.1:9", trade_batch_max_s=0.25, max_lag_s=60
        )
        collector = BinanceSpotCollector(config, LandingWriter(tmp_path, "BINANCE"), store=object())
        processing = asyncio.create_task(collector.processing.process_forever())
        seen = []
        for waited_s in (2.0, 0.0, 5.0):
            collector.queue.put_many([("frame", "c1", time.time_ns() - int(waited_s * 1e9), frame)])
            await collector.queue.join()
            seen.append(collector.publisher.behind)
        processing.cancel()
        collector.publisher.seal_trades()
        collector.writer.close()
        return seen, collector.stats

    seen, stats = asyncio.run(scenario())
    assert seen == [True, False, True] and stats.overflow_frames == 0 and stats.frames == 3


@pytest.mark.parametrize("behind, behind_frames", [(False, 4), (True, 3), (True, 4)])
def test_a_dense_instrument_is_sealed_at_the_next_tick_and_a_sparse_one_after_its_ticks(
    tmp_path, behind, behind_frames
):
    """Sealing: at each `trade_batch_s` tick an instrument with `trade_batch_frames` trade frames goes out as
    one message; one with fewer waits until `trade_batch_max_s` has passed in ticks since its first frame was
    processed (not since it was received: a backlog's frames are all old), so a sparse instrument's message
    carries several trades instead of one; while the processor is behind (its last batch had waited longer
    than `trade_batch_max_s`, as `process_forever` finds), `trade_batch_behind_s`, and a dense one needs
    `trade_batch_behind_frames`; a stop seals everything."""

    def trade(symbol: str, k: int) -> str:
        return json.dumps(
            {
                "stream": f"{symbol.lower()}@trade",
                "data": {
                    "e": "trade",
                    "E": 1672515782136,
                    "s": symbol,
                    "t": k,
                    "p": "1.5",
                    "q": "2",
                    "T": 1672515782136,
                    "m": False,
                },
            }
        )

    async def scenario():
        writer = LandingWriter(tmp_path, "BINANCE")
        config = CollectorConfig(
            ["BTCUSDT", "ETHUSDT"],
            "ws://unused",
            "http://127.0.0.1:9",
            trade_batch_s=60,
            trade_batch_frames=3,
            trade_batch_max_s=240,  # the ticks are the test's (`_seal_due`)
            trade_batch_behind_s=360,
            trade_batch_behind_frames=behind_frames,
        )
        collector = BinanceSpotCollector(
            config, writer, store=object()
        )  # a sink never reached: the outbox holds them
        collector.publisher.behind = behind
        old = time.time_ns() - 60 * 10**9  # received a minute ago
        sent = []
        await collector.processing.process(
            [("frame", "c1", old + k, trade("BTCUSDT", k)) for k in range(3)]
            + [("frame", "c1", old, trade("ETHUSDT", 100))]
        )
        for tick in range(1, 7 if behind else 5):
            collector.publisher.sealing.cancel()
            collector.publisher._seal_due()
            sent.append([(subject.rsplit(".", 1)[1], n) for subject, _, _, n in collector.publisher.outbox])
            collector.publisher.outbox.clear()
            if tick == 2:
                await collector.processing.process([("frame", "c1", old, trade("ETHUSDT", 101))])
        await collector.processing.process([("frame", "c1", old, trade("ETHUSDT", 102))])
        collector.publisher.seal_trades()
        sent.append([(subject.rsplit(".", 1)[1], n) for subject, _, _, n in collector.publisher.outbox])
        writer.close()
        return collector, sent

    collector, sent = asyncio.run(scenario())
    assert collector.publisher.max_ticks == 4 and collector.publisher.behind_ticks == 6
    if behind and behind_frames == 4:  # too few to go out by size: both at the behind wait's end
        assert sent == [[], [], [], [], [], [("BTCUSDT", 3), ("ETHUSDT", 2)], [("ETHUSDT", 1)]]
    elif behind:
        assert sent == [[("BTCUSDT", 3)], [], [], [], [], [("ETHUSDT", 2)], [("ETHUSDT", 1)]]
    else:
        assert sent == [[("BTCUSDT", 3)], [], [], [("ETHUSDT", 2)], [("ETHUSDT", 1)]]
    assert (
        not collector.publisher.trade_frames
        and collector.publisher.sealing is None
        and collector.stats.trades == 6
    )
