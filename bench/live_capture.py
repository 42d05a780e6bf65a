"""The live collector's hot path against the machine's ceiling, its end-to-end latency, and its
memory over a long run (issue 23: `bench live_capture`).

Frames come from bench/live_sender.py, a separate process pushing pre-rendered Binance spot
combined-stream frames (trades, and depth diffs with continuous U/u; `--depth-share` of them) over
a WebSocket on 127.0.0.1, with `/api/v3/depth` snapshots that fit the diffs. The processes measured
are bench/live_capture_roles.py's. Three parts:

1. **Throughput** (`--rounds`, each round every role, the order rotated each round; a fresh sender
   each time, sending as fast as the client reads): the real `LiveCollector` (Binance spot protocol:
   receive, bounded queue, decode, raw landing as zstd files in a scratch dir, books, trades published
   to the stack's nats-server at NATS_URL on the bench's own subjects `benchlc.>` and stream
   `BENCH_LIVE_CAPTURE`) vs two ceilings receiving and discarding the same frames: a bare `websockets`
   client (the collector's library) and a bare picows client (compiled: the cost a frame a client
   can get to); beside them the collector's own transport alone (`WsClient`, bare). Each runs
   `--window-s` from its first frame; the collector's clock runs on until
   what it read is landed and published. Per core = frames / CPU seconds of the process (every
   thread); the ratios (collector / ceiling, median over rounds) are taken per CPU second, the
   measure that holds on a shared machine. Frames the collector's queue had no room for are
   dropped by it (counted, never landed): they are not in its frames. Targets: >= 0.5 of the
   websockets ceiling; <= 2.5 µs of CPU a frame and >= 0.35 of the picows ceiling. Beside them,
   the peer: cryptofeed (bench/live_capture_peer.py, its own venv: bench/peer_venv.py) on the same
   sender, with no-op callbacks (parsing every frame, keeping its books) and with its redis backend
   writing every trade (`--no-peers` leaves them out; `--short` does).
2. **Latency** at a steady `--rate` (frames/s; 10,000 with `--depth-share 0`: 10k trades a second):
   each frame's event time `E` (and `T`) is its send time; collector -> JetStream -> the durable
   consumer (ingest/live/consume/consumer.py, production defaults: batches of 1,000 or 0.25 s) -> embedded
   ClickHouse `trades_live` in a scratch data directory (chDB, run in this process). Queryable =
   the time a query saw the row: after each batch's INSERT returns, `SELECT max(event_ts)` of the
   table must reach the batch's newest event time; the latency of every row of the batch is that
   query's return time minus its `E` (the INSERT's own return time is reported beside it: the
   difference is the query). p50/p99 over every row, and over the rows after the first 10 s.
   Target p99 < 1 s. Beside it, each row's stages (collector receive -> stored in JetStream, the ack
   subject's time -> taken up by the consumer -> INSERT returned -> visible), the collector's queue
   wait and publish calls, and from its landing files the frames it dropped (`overflow` markers) and
   the trade ids they held (`gap` ranges against the holes in the landed ids). `--busy N`: N
   processes spinning in pure Python at our priority during the run (a busy machine; the load
   average is sampled); the target there is a bounded lag (p99 < 5 s) with every drop recorded.
3. **Memory**: the same steady run lasts `--duration-s` (600); the collector's RSS (/proc) every
   `--rss-every-s` (5): start, end, max and the least-squares slope (MB per minute) over the run
   and over its second half (bounded queues: flat).

Results: bench/results/live_capture.json (every sample of the rounds, the RSS series, the latency
percentiles). `--universe N`: the collector on N instruments over several connections against the
bare clients (websockets, picows) on the same ones, subscription within Binance's limits, RSS per
1,000 instruments (bench/live_capture_universe.py; results in bench/results/live_capture_universe.json).
`--short`: a few seconds of each (a smoke test, tests/bench/test_bench_live_capture.py).
Figures depend on the machine's load (recorded: load average before and after); re-measure on a
quiet machine before comparing.
Run: `scripts/with-env .venv/bin/python -m bench live_capture [--duration-s 600] [--short]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from array import array
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import numpy

from bench.live_capture_roles import PREFIX, rss_mb, stream_spec
from bench.peer_venv import ensure_peer_python
from marketdata_assets.core import settings
from marketdata_assets.ingest.live.consume.consumer import ConsumerConfig, TradesConsumer
from marketdata_assets.sources.binance.stream import combined_url, depth_stream, trade_stream
from marketdata_assets.stores.clickhouse import connection
from marketdata_assets.stores.clickhouse.live import LIVE_COLUMNS, ensure_live_tables, insert_live_trades
from marketdata_assets.stores.jetstream import JetStreamStore

RESULTS = Path(__file__).resolve().parent / "results" / "live_capture.json"
REPO = Path(__file__).resolve().parents[1]
NAMES = [
    "BTCUSDT",
    "ETHUSDT",
    "SOLUSDT",
    "BNBUSDT",
    "XRPUSDT",
    "DOGEUSDT",
    "ADAUSDT",
    "TRXUSDT",
    "LTCUSDT",
    "DOTUSDT",
]
INSTRUMENTS = NAMES[:8]  # the run's (`--instruments`)
DATABASE = "bench_live_capture"
DURABLE = "bench-live-capture"
TARGET_RATIO, TARGET_P99_S = 0.5, 1.0
TARGET_PICOWS_RATIO, TARGET_US_PER_FRAME = 0.35, 2.5  # of the picows ceiling; the collector's CPU a frame
CEILINGS = {"bare": "ratio", "picows": "ratio_picows"}  # a ceiling role -> its ratios' keys in the report
WARM_UP_S = 10.0
# The throughput part's frame queue: every frame of its window fits (the sender sends as fast as the
# client reads: the collector's reader takes ~650k frames a second while its processor runs,
# 2.5 GB of queued frames at most), so each frame read goes the whole path and counts; with a smaller
# queue the reader outruns the processor, and the CPU spent reading frames the full queue then drops
# (counted as overflow, by design) is charged to the frames that were processed (2,000,000 did so
# until 2026-11-25: 1.2-1.5 million frames of a 5-s window dropped).
WHOLE_WINDOW = 8_000_000
WHOLE_WINDOW_S = 3600.0  # ... and no frame of it dropped for its wait (the lag bound, shedding.py)
SHORT_QUEUE = 20_000  # --short: a smoke run does not process a whole window's frames at its stop


@contextmanager
def sender(
    rate: float,
    depth_share: float,
    counts: dict | None = None,
    extra: tuple[str, ...] = (),
    cpus: set[int] | None = None,
):
    """The frame source, a process of its own (`extra`: more of its options; `cpus`: the CPUs it may run
    on, None: any); yields its base URL (WebSocket and REST on one port). `counts`: its report once it
    stopped (`sent`: the frames it wrote)."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.live_sender",
            "--rate",
            str(rate),
            "--depth-share",
            str(depth_share),
            "--instruments",
            ",".join(INSTRUMENTS),
            *extra,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    if cpus is not None:  # before it starts any thread (its imports take a second): they inherit it
        os.sched_setaffinity(process.pid, cpus)
    try:
        port = json.loads(process.stdout.readline())["port"]
        yield f"127.0.0.1:{port}"
    finally:
        try:
            rest, _ = process.communicate(timeout=10)  # closes its stdin: it stops
            if counts is not None and rest.strip():
                counts.update(last_json(rest))
        except subprocess.TimeoutExpired:
            process.kill()


# spins in pure Python at our priority until its parent is gone (a killed bench leaves no spinner)
SPIN = (
    "import os\nparent = os.getppid()\nwhile os.getppid() == parent:\n"
    "    for _ in range(100_000):\n        pass\n"
)


@contextmanager
def busy_neighbours(count: int):
    """`count` processes spinning in pure Python at our priority (a busy machine); killed after."""
    spinners = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(count)]
    try:
        yield [p.pid for p in spinners]
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def role_argv(
    role: str,
    address: str,
    seconds: float,
    scratch: Path,
    nats_url: str,
    prefix: str,
    queue_size: int | None = None,
    max_lag_s: float | None = None,
) -> list[str]:
    streams = [s for name in INSTRUMENTS for s in (trade_stream(name), depth_stream(name))]
    argv = [sys.executable, "-m", "bench.live_capture_roles", role, "--seconds", str(seconds)]
    if role in CEILINGS or role == "wsclient":
        return argv + ["--url", combined_url(f"ws://{address}", streams)]
    landing = Path(tempfile.mkdtemp(prefix="landing-", dir=scratch))
    return argv + [
        "--url",
        f"ws://{address}",
        "--rest-url",
        f"http://{address}",
        "--instruments",
        ",".join(INSTRUMENTS),
        "--landing",
        str(landing),
        "--nats-url",
        nats_url,
        "--prefix",
        prefix,
        *(["--queue-size", str(queue_size), "--max-lag-s", str(WHOLE_WINDOW_S)] if queue_size else []),
        *(["--max-lag-s", str(max_lag_s)] if max_lag_s else []),
    ]


PEERS = {"cryptofeed_noop": "noop", "cryptofeed_redis": "redis"}  # peer role -> its sink


def peer_argv(role: str, address: str, seconds: float, python: Path) -> list[str]:
    """cryptofeed (bench/live_capture_peer.py, in its own venv) on the same sender: no-op callbacks
    (it still parses every frame and keeps its books), or its redis backend writing every trade."""
    return [
        str(python),
        str(REPO / "bench" / "live_capture_peer.py"),
        "--url",
        f"ws://{address}",
        "--rest-url",
        f"http://{address}",
        "--instruments",
        ",".join(INSTRUMENTS),
        "--seconds",
        str(seconds),
        "--sink",
        PEERS[role],
        "--redis-url",
        settings.get("REDIS_URL"),
    ]


def last_json(text: str) -> dict:
    return json.loads([line for line in text.splitlines() if line.startswith("{")][-1])


def run_role(
    role: str,
    seconds: float,
    depth_share: float,
    scratch: Path,
    nats_url: str,
    prefix: str,
    queue_size: int = WHOLE_WINDOW,
    peer_python: Path | None = None,
) -> dict:
    with sender(0, depth_share) as address:
        argv = (
            peer_argv(role, address, seconds, peer_python)
            if role in PEERS
            else role_argv(role, address, seconds, scratch, nats_url, prefix, queue_size=queue_size)
        )
        done = subprocess.run(
            argv, check=False, capture_output=True, text=True, cwd=REPO, timeout=seconds + 300
        )
    if done.returncode:
        raise RuntimeError(f"{role} failed ({done.returncode}): {done.stderr[-2000:]}")
    return per_frame(last_json(done.stdout))


def per_frame(result: dict) -> dict:
    """A role's result with its frames a second, a CPU second, and its CPU µs a frame."""
    result["frames_per_s"] = round(result["frames"] / result["wall_s"])
    result["frames_per_cpu_s"] = round(result["frames"] / max(result["cpu_s"], 1e-6))
    result["cpu_us_per_frame"] = round(1e6 * result["cpu_s"] / max(result["frames"], 1), 2)
    return result


def throughput(
    rounds: int,
    window_s: float,
    depth_share: float,
    scratch: Path,
    nats_url: str,
    prefix: str,
    queue_size: int = WHOLE_WINDOW,
    peer_python: Path | None = None,
) -> dict:
    """Interleaved rounds of the ceilings, the collector and the peers (see the module doc, part 1)."""
    roles = [*CEILINGS, "wsclient", "collector", *(PEERS if peer_python else ())]
    samples = {role: [] for role in roles}
    for round_ in range(rounds):
        order = roles[round_ % len(roles) :] + roles[: round_ % len(roles)]  # each role first once in a while
        for role in order:
            samples[role].append(
                run_role(role, window_s, depth_share, scratch, nats_url, prefix, queue_size, peer_python)
            )

    def median(role, key):
        return statistics.median(s[key] for s in samples[role])

    out = {
        "window_s": window_s,
        "depth_share": depth_share,
        "rounds": rounds,
        "roles": roles,
        **{k: v for ceiling in CEILINGS for k, v in collector_ratios(samples, ceiling).items()},
        "samples": samples,
    }
    for role in roles:
        out[f"{role}_frames_per_cpu_s"] = round(median(role, "frames_per_cpu_s"))
        out[f"{role}_frames_per_s"] = round(median(role, "frames_per_s"))
        out[f"{role}_cpu_us_per_frame"] = median(role, "cpu_us_per_frame")
    for role in roles:  # each role's median against each ceiling's
        for ceiling, name in CEILINGS.items():
            out[f"{role}_{name}_per_cpu_s"] = round(
                out[f"{role}_frames_per_cpu_s"] / out[f"{ceiling}_frames_per_cpu_s"], 3
            )
    return out


def collector_ratios(samples: dict, ceiling: str) -> dict:
    """The collector / a ceiling, round by round (each round's pair): per CPU second (median and range)
    and per wall second (median); keyed by the ceiling's name in `CEILINGS`."""
    pairs = list(zip(samples[ceiling], samples["collector"]))
    cpu = [c["frames_per_cpu_s"] / b["frames_per_cpu_s"] for b, c in pairs]
    wall = [c["frames_per_s"] / b["frames_per_s"] for b, c in pairs]
    name = CEILINGS[ceiling]
    return {
        f"{name}_per_cpu_s": round(statistics.median(cpu), 3),
        f"{name}_min_max": [round(min(cpu), 3), round(max(cpu), 3)],
        f"{name}_wall": round(statistics.median(wall), 3),
    }


# a row's way: collector receive -> JetStream stored (its ack subject's time) -> taken up by the consumer
# (decoded) -> INSERT returned -> the query saw it
STAGES = ("received_to_stored", "stored_to_taken", "taken_to_inserted", "inserted_to_visible")
WINDOW_STAGES = ("received", "stored", "taken", "inserted", "visible")  # E -> received, then each stage's end


class StagedConsumer(TradesConsumer):
    """The production consumer, each message's JetStream store time (its ack subject's timestamp) and
    the time the consumer took its batch up (decoded it) noted for `TimedInsert`, and the most
    messages pending on the server at a fetch."""

    def __init__(self, config: ConsumerConfig, store: JetStreamStore, insert: TimedInsert):
        super().__init__(config, store, insert)
        self.timed, self.most_pending = insert, 0

    def decode(self, messages: list) -> tuple[list, list, list]:
        taken_ms, times = time.time_ns() / 1e6, []
        rows, good, bad = [], [], []
        for msg in messages:
            r, g, b = super().decode([msg])
            rows.extend(r)
            good.extend(g)
            bad.extend(b)
            meta = msg.metadata
            times.append((len(r), meta.timestamp.timestamp() * 1000, taken_ms))
            self.most_pending = max(self.most_pending, meta.num_pending)
        self.timed.message_times = times
        self.timed.decoded_ms = time.time_ns() / 1e6
        self.timed.parts["decode"].append(self.timed.decoded_ms - taken_ms)
        return rows, good, bad


EVENT_TS, RECV_TS = LIVE_COLUMNS.index("event_ts"), LIVE_COLUMNS.index("recv_ts")  # in a trades_live row


class TimedInsert:
    """The consumer's INSERT into `trades_live`, then the query that proves the batch visible; per row
    the time from its event time `E` to the INSERT's return and to the query's (see part 2), and the
    stages of its way (`STAGES`; `message_times`: (rows, stored ms, taken ms) of each message of the
    batch, set by `StagedConsumer`)."""

    def __init__(self, client, started_ms: float):
        self.client, self.started_ms = client, started_ms
        self.visible, self.inserted, self.received = array("f"), array("f"), array("f")  # ms per row
        self.warm_index, self.invisible_batches, self.rows = None, 0, 0
        # (s since start, worst, best ms, worst ms per stage) of each batch
        self.batches: list[tuple[float, float, float, dict]] = []
        self.stages = {name: array("f") for name in STAGES}
        self.message_times: list[tuple[int, float, float]] = []
        # a batch's parts, ms: decode, decoded -> the INSERT called (a thread hop), the INSERT, the query
        self.parts = {name: array("f") for name in ("decode", "to_thread", "insert", "query")}
        self.decoded_ms = 0.0

    def __call__(self, rows) -> int:
        called_ms = time.time_ns() / 1e6
        n = insert_live_trades(self.client, DATABASE, rows)
        inserted_ms = time.time_ns() / 1e6
        newest = self.client.command(
            f"SELECT toUnixTimestamp64Milli(max(event_ts)) FROM `{DATABASE}`.trades_live"
        )
        visible_ms = time.time_ns() / 1e6
        for name, ms in (
            ("to_thread", called_ms - self.decoded_ms),
            ("insert", inserted_ms - called_ms),
            ("query", visible_ms - inserted_ms),
        ):
            self.parts[name].append(ms)
        events = [row[EVENT_TS].timestamp() * 1000 for row in rows]
        if int(newest) < max(events):
            self.invisible_batches += 1
        if self.warm_index is None and min(events) > self.started_ms + WARM_UP_S * 1000:
            self.warm_index = len(self.visible)
        self.visible.extend(visible_ms - e for e in events)
        self.inserted.extend(inserted_ms - e for e in events)
        received = [row[RECV_TS].timestamp() * 1000 for row in rows]
        self.received.extend(r - e for r, e in zip(received, events))
        worst = self.stage_times(events, received, inserted_ms, visible_ms)
        self.batches.append(
            ((visible_ms - self.started_ms) / 1000, visible_ms - min(events), visible_ms - max(events), worst)
        )
        self.rows += n
        return n

    def stage_times(
        self, events: list[float], received: list[float], inserted_ms: float, visible_ms: float
    ) -> dict:
        """Each row's stages; the batch's worst of each (E -> received first)."""
        if sum(n for n, _, _ in self.message_times) != len(received):
            return {}  # not the consumer's batch (rows of messages not timed)
        stored = [t for n, t, _ in self.message_times for _ in range(n)]
        taken = [t for n, _, t in self.message_times for _ in range(n)]
        ways = {
            "received_to_stored": [s - r for s, r in zip(stored, received)],
            "stored_to_taken": [f - s for f, s in zip(taken, stored)],
            "taken_to_inserted": [inserted_ms - f for f in taken],
            "inserted_to_visible": [visible_ms - inserted_ms],
        }
        for name, values in ways.items():
            self.stages[name].extend(values if name != "inserted_to_visible" else values * len(taken))
        return {
            "received": round(max(r - e for r, e in zip(received, events))),
            **{name.split("_to_")[1]: round(max(values)) for name, values in ways.items()},
        }

    def report(self) -> dict:
        def pct(values, start=0) -> dict:
            data = numpy.frombuffer(values, dtype=numpy.float32)[start:]
            if not len(data):
                return {}
            p50, p90, p99, p999 = numpy.percentile(data, [50, 90, 99, 99.9])
            return {
                "rows": len(data),
                "p50_ms": round(float(p50), 1),
                "p90_ms": round(float(p90), 1),
                "p99_ms": round(float(p99), 1),
                "p99_9_ms": round(float(p999), 1),
                "max_ms": round(float(data.max()), 1),
            }

        warm = self.warm_index if self.warm_index is not None else len(self.visible)
        return {
            "queryable": pct(self.visible),
            "by_window": self.windows(),
            "queryable_after_warm_up": pct(self.visible, warm),
            "insert_returned": pct(self.inserted),
            "received_by_collector": pct(self.received),
            "stages": {name: pct(values) for name, values in self.stages.items()},
            "batch_parts": {name: pct(values) for name, values in self.parts.items()},
            "invisible_batches": self.invisible_batches,
            "rows": self.rows,
        }

    def windows(self, width_s: float = 5.0) -> list[dict]:
        """The batches' worst latency per `width_s` window of the run (when a tail happened), and the
        worst of each stage (where it happened)."""
        out: dict[int, list] = {}
        for t, worst, best, stages in self.batches:
            out.setdefault(int(t // width_s), []).append((worst, best, stages))
        return [
            {
                "from_s": k * width_s,
                "batches": len(v),
                "worst_ms": round(max(w for w, _, _ in v), 1),
                "best_ms": round(min(b for _, b, _ in v), 1),
                "worst_stage_ms": {name: max(s.get(name, 0) for _, _, s in v) for name in WINDOW_STAGES},
            }
            for k, v in sorted(out.items())
        ]


def slope_mb_per_min(series: list[tuple[float, float]]) -> float | None:
    if len(series) < 3:
        return None
    ts, ys = [t for t, _ in series], [y for _, y in series]
    return round(statistics.linear_regression(ts, ys).slope * 60, 3)


def rss_report(series: list[tuple[float, float]], run_s: float | None = None) -> dict:
    """Start, end, max and slopes of the samples taken while the collector ran (the first `run_s`
    seconds); the samples after (its stop, and the role reading its landing files back for the report)
    only as `after_run_max_mb`, since they are not the collector's steady state."""
    running = [(t, mb) for t, mb in series if run_s is None or t <= run_s] or series
    if not running:
        return {}
    values, after = [mb for _, mb in running], [mb for t, mb in series if run_s is not None and t > run_s]
    return {
        "samples": len(running),
        "start_mb": round(values[0], 1),
        "end_mb": round(values[-1], 1),
        "max_mb": round(max(values), 1),
        "slope_mb_per_min": slope_mb_per_min(running),
        "slope_second_half_mb_per_min": slope_mb_per_min(running[len(running) // 2 :]),
        "after_run_max_mb": round(max(after), 1) if after else None,
        "series": [(round(t, 1), round(mb, 1)) for t, mb in series],
    }


async def run_collector(
    argv: list[str], every_s: float, loads: list | None = None
) -> tuple[dict, list[tuple[float, float]]]:
    """The collector process; its RSS (and the 1-minute load average, into `loads`) every `every_s`
    from its first frame to its exit."""
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=REPO
    )
    ready = await process.stdout.readline()
    if not ready:
        raise RuntimeError(f"collector failed: {(await process.stderr.read()).decode()[-2000:]}")
    series, t0 = [], time.monotonic()
    finished = asyncio.create_task(process.communicate())
    while not finished.done():
        mb = rss_mb(process.pid)
        if mb is not None and process.returncode is None:
            series.append((time.monotonic() - t0, mb))
            if loads is not None:
                loads.append(round(os.getloadavg()[0], 2))
        await asyncio.wait({finished}, timeout=every_s)
    stdout, stderr = finished.result()
    if process.returncode:
        raise RuntimeError(f"collector failed ({process.returncode}): {stderr.decode()[-2000:]}")
    return last_json(stdout.decode()), series


async def steady(
    rate: float,
    depth_share: float,
    duration_s: float,
    every_s: float,
    scratch: Path,
    nats_url: str,
    prefix: str,
    busy: int = 0,
    max_lag_s: float | None = None,
) -> dict:
    """Parts 2 and 3: collector -> JetStream -> consumer -> ClickHouse at `rate`, for `duration_s`,
    beside `busy` spinning neighbours (`max_lag_s`: the collector's lag bound, None: production's)."""
    client, locked = connection.open_client(f"chdb://{scratch / 'clickhouse'}", DATABASE, lock_timeout_s=5)
    ensure_live_tables(client, DATABASE)
    store = await JetStreamStore(nats_url, name="bench-live-capture-consumer").connect()
    spec = stream_spec(prefix)
    try:
        await store.delete_stream(spec.name)  # a clean stream: no message of an earlier run
        await store.ensure_stream(spec)
        insert = TimedInsert(client, time.time_ns() / 1e6)
        config = ConsumerConfig(stream=spec.name, subject_filter=f"{prefix}.trades.>", durable=DURABLE)
        consumer = StagedConsumer(config, store, insert)
        await consumer.subscribe()
        stop = asyncio.Event()
        consuming = asyncio.create_task(consumer.run(stop))
        counts, loads, cpu_start = {}, [], time.process_time()
        with busy_neighbours(busy), sender(rate, depth_share, counts) as address:
            insert.started_ms = time.time_ns() / 1e6
            argv = role_argv("collector", address, duration_s, scratch, nats_url, prefix, max_lag_s=max_lag_s)
            result, series = await run_collector(argv, every_s, loads)
        try:  # a collector far behind leaves a backlog: reported (`caught_up`), not fatal
            await consumer.stats.wait_until(
                lambda s: s.inserted >= result["total_published"], 120 + duration_s / 4
            )
            caught_up = True
        except TimeoutError:
            caught_up = False
        finally:
            stop.set()
            await consuming
            consumer_cpu_s = time.process_time() - cpu_start  # this process: the consumer, its INSERTs, chDB
    finally:
        await store.delete_stream(spec.name)
        await store.close()
        client.close()
        connection.release_directory(locked)
    collected = {
        k: result[k]
        for k in (
            "frames",
            "trades",
            "published",
            "overflow_frames",
            "publish_dropped",
            "unpublished",
            "gaps",
            "wall_s",
            "cpu_s",
            "shutdown_s",
            "shutdown_hung",
            "stuck_tasks",
        )
    }
    collected["cpu_share_of_a_core"] = round(result["cpu_s"] / result["wall_s"], 3)
    collected["achieved_frames_per_s"] = round(
        result["frames"] / result["wall_s"]
    )  # the offered rate, if kept up
    for key in ("total_frames", "total_overflow_frames", "landing", "stages"):
        collected[key] = result.get(key)
    return {
        "rate_frames_per_s": rate,
        "depth_share": depth_share,
        "duration_s": duration_s,
        "busy": busy,
        "max_lag_s": max_lag_s,
        "frames_sent": counts.get("sent"),
        "load_average_during": loads,
        "collector": collected,
        "consumer": {
            **consumer.counters(),
            "most_pending": consumer.most_pending,
            "cpu_s": round(consumer_cpu_s, 2),
        },
        "consumer_caught_up": caught_up,
        "latency": insert.report(),
        "rss": rss_report(series, duration_s),
    }


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench live_capture", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="throughput rounds (each: the ceilings and the collector)"
    )
    parser.add_argument(
        "--window-s", type=float, default=10.0, help="throughput: seconds from the first frame"
    )
    parser.add_argument("--depth-share", type=float, default=0.25, help="throughput: share of depth diffs")
    parser.add_argument(
        "--instruments", type=int, default=8, choices=range(1, len(NAMES) + 1), help="throughput: instruments"
    )
    parser.add_argument("--rate", type=float, default=10_000.0, help="steady run: frames a second")
    parser.add_argument(
        "--steady-depth-share", type=float, default=0.0, help="steady run: share of depth diffs"
    )
    parser.add_argument(
        "--duration-s", type=float, default=600.0, help="steady run: seconds (latency and RSS)"
    )
    parser.add_argument("--rss-every-s", type=float, default=5.0)
    parser.add_argument(
        "--max-lag-s",
        type=float,
        default=None,
        help="steady run: the collector's lag bound (default: production's)",
    )
    parser.add_argument(
        "--busy",
        type=int,
        default=0,
        help="steady run: this many neighbour processes spinning at our priority (a busy machine)",
    )
    parser.add_argument("--short", action="store_true", help="a smoke run: a few seconds of each part")
    parser.add_argument(
        "--no-peers",
        action="store_true",
        help="throughput without the cryptofeed rows (they "
        "run in a venv of their own, built once: bench/peer_venv.py)",
    )
    parser.add_argument("--skip", choices=("throughput", "steady", "memory"), action="append", default=[])
    parser.add_argument("--prefix", default=PREFIX, help="NATS subject prefix (and stream) of the run")
    parser.add_argument(
        "--results",
        type=Path,
        default=None,
        help="where the JSON report goes (default: "
        "bench/results/live_capture.json, with --universe live_capture_universe.json)",
    )
    universe = parser.add_argument_group("the universe run (bench/live_capture_universe.py)")
    universe.add_argument("--universe", type=int, default=0, help="this many instruments instead of the 8")
    universe.add_argument(
        "--baseline", type=int, default=10, help="instruments of the baseline run beside (0: none)"
    )
    universe.add_argument(
        "--max-streams", type=int, default=None, help="streams a connection (default: Binance's)"
    )
    universe.add_argument(
        "--memory-rate", type=float, default=10_000.0, help="memory part: frames a second in all"
    )
    universe.add_argument("--memory-s", type=float, default=30.0, help="memory part: seconds")
    universe.add_argument(
        "--pin",
        action="store_true",
        help="throughput part: the sender on the first CPU, the client measured (a bare client or the "
        "collector) on the second (the bare client's cost a frame moves between ~6 and ~10 us from run to "
        "run, pinned or not)",
    )
    universe.add_argument(
        "--books-synced",
        action="store_true",
        help="throughput part: the collector's window starts once every book is synced (its steady state: "
        "each depth diff applied, each book's top published every second; without it, most books still "
        "wait for their REST snapshot during the window)",
    )
    args = parser.parse_args(argv)
    if args.short:
        args.rounds, args.window_s, args.duration_s, args.rss_every_s = 1, 1.0, 3.0, 1.0
        args.rate, args.memory_s = min(args.rate, 2_000.0), 2.0
    return args


LABELS = {
    "bare": "ceiling: bare websockets client",
    "picows": "ceiling: bare picows client",
    "wsclient": "the collector's WsClient, bare",
    "collector": "collector: WS->landing->NATS",
    "cryptofeed_noop": "cryptofeed, no-op callbacks",
    "cryptofeed_redis": "cryptofeed, trades to redis",
}


def print_throughput(t: dict) -> None:
    """Part 1: each role's medians and its ratio to each ceiling; the collector's ratios round by round
    (median, min-max) against the targets."""
    print(f"{'':34}{'frames/s':>12}{'frames/CPU-s':>14}{'CPU us/frame':>14}{'/websockets':>13}{'/picows':>9}")
    for role in t["roles"]:
        print(
            f"{LABELS[role]:34}{t[role + '_frames_per_s']:>12,}{t[role + '_frames_per_cpu_s']:>14,}"
            f"{t[role + '_cpu_us_per_frame']:>14.2f}{t[role + '_ratio_per_cpu_s']:>13.3f}"
            f"{t[role + '_ratio_picows_per_cpu_s']:>9.3f}"
        )
    print(
        f"ratio collector/websockets ceiling per CPU-s {t['ratio_per_cpu_s']} (min-max "
        f"{t['ratio_min_max']}), wall {t['ratio_wall']}; target >= {TARGET_RATIO}"
    )
    print(
        f"ratio collector/picows ceiling per CPU-s {t['ratio_picows_per_cpu_s']} (min-max "
        f"{t['ratio_picows_min_max']}), wall {t['ratio_picows_wall']}; target >= {TARGET_PICOWS_RATIO}"
    )
    print(
        f"CPU us/frame: collector {t['collector_cpu_us_per_frame']}, websockets ceiling "
        f"{t['bare_cpu_us_per_frame']}, picows ceiling {t['picows_cpu_us_per_frame']}; "
        f"target collector <= {TARGET_US_PER_FRAME}"
    )
    dropped = [c.get("overflow_frames", 0) for c in t["samples"].get("collector", ())]
    if any(dropped):  # read, then dropped by the full queue: their reading is charged to the frames kept
        print(f"frames the collector's queue dropped in its rounds: {dropped}")


def print_table(report: dict) -> None:
    t, s = report.get("throughput"), report.get("steady")
    if t:
        print_throughput(t)
    if s:
        q, w, c = s["latency"]["queryable"], s["latency"]["queryable_after_warm_up"], s["collector"]
        print(
            f"steady {s['rate_frames_per_s']:,.0f} frames/s offered for {s['duration_s']:.0f} s "
            f"({c['achieved_frames_per_s']:,} achieved): {c['trades']:,} trades, "
            f"{s['consumer']['inserted']:,} inserted; collector {c['cpu_share_of_a_core']} of a core, "
            f"overflow {c['overflow_frames']:,}"
        )
        print(
            f"exchange time -> queryable: p50 {q.get('p50_ms')} ms, p99 {q.get('p99_ms')} ms, max "
            f"{q.get('max_ms')} ms (after the first {WARM_UP_S:.0f} s: p50 {w.get('p50_ms')}, p99 "
            f"{w.get('p99_ms')}); target p99 < {TARGET_P99_S * 1000:.0f} ms"
        )
        print_losses(s)
        if c.get("shutdown_hung"):
            print(f"collector stop did not end within its limit: {c.get('stuck_tasks')}")
        r = s["rss"]
        print(
            f"collector RSS: start {r.get('start_mb')} MB, end {r.get('end_mb')} MB, max {r.get('max_mb')} "
            f"MB, slope {r.get('slope_mb_per_min')} MB/min (second half "
            f"{r.get('slope_second_half_mb_per_min')}) while it ran; after (its stop, the landing read "
            f"back): max {r.get('after_run_max_mb')} MB"
        )
    print(f"load average before {report['load_average_before']}, after {report['load_average_after']}")


def print_losses(s: dict) -> None:
    """The steady run's dropped frames and their gap records, and where the time went (p99 per stage)."""
    c, g = s["collector"], s["collector"].get("landing") or {}
    loads = s.get("load_average_during") or [0]
    print(
        f"busy neighbours {s.get('busy', 0)}, load average during the run {min(loads)}-{max(loads)}; "
        f"frames sent {s.get('frames_sent')}, dropped by the collector {c.get('total_overflow_frames')} "
        f"(trade frames {c.get('total_overflow_trades')}) "
        f"(overflow records {g.get('overflow_records')} naming {g.get('overflow_recorded_frames')} frames); "
        f"trade ids spanned {g.get('trade_ids_spanned')}, holes {g.get('trade_id_holes')}, in recorded gap "
        f"ranges {g.get('holes_in_gap_ranges')} ({g.get('trade_gap_records')} records)"
    )
    stages = {
        **{f"collector {k}": v for k, v in ((c.get("stages") or {}).items()) if isinstance(v, dict)},
        **s["latency"].get("stages", {}),
    }
    print(
        "p50/p99/max ms per stage: "
        + "; ".join(
            f"{name} {v.get('p50_ms')}/{v.get('p99_ms')}/{v.get('max_ms')}" for name, v in stages.items() if v
        )
    )
    parts = s["latency"].get("batch_parts", {})
    print(
        "consumer batch parts, p50/p99 ms: "
        + "; ".join(f"{name} {v.get('p50_ms')}/{v.get('p99_ms')}" for name, v in parts.items() if v)
    )


async def drop_stream(nats_url: str, prefix: str) -> None:
    """The run's stream goes (the collectors of the throughput rounds filled it)."""
    async with JetStreamStore(nats_url, name="bench-live-capture-cleanup") as store:
        await store.delete_stream(stream_spec(prefix).name)


def missed_targets(report: dict) -> list[str]:
    """The targets a report misses: the throughput ratios and the collector's CPU a frame, the p99."""
    missed, t = [], report.get("throughput")
    if t and t["ratio_per_cpu_s"] < TARGET_RATIO:
        missed.append(f"throughput ratio {t['ratio_per_cpu_s']} < {TARGET_RATIO}")
    if t and t["ratio_picows_per_cpu_s"] < TARGET_PICOWS_RATIO:
        missed.append(f"ratio to the picows ceiling {t['ratio_picows_per_cpu_s']} < {TARGET_PICOWS_RATIO}")
    if t and t["collector_cpu_us_per_frame"] > TARGET_US_PER_FRAME:
        missed.append(
            f"collector CPU a frame {t['collector_cpu_us_per_frame']} us > {TARGET_US_PER_FRAME} us"
        )
    p99 = report.get("steady", {}).get("latency", {}).get("queryable", {}).get("p99_ms")
    if p99 is not None and p99 >= TARGET_P99_S * 1000:
        missed.append(f"p99 {p99} ms >= {TARGET_P99_S * 1000:.0f} ms")
    return missed


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    if args.universe:
        from bench.live_capture_universe import main as universe

        return universe(args)
    args.results = args.results or RESULTS
    INSTRUMENTS[:] = NAMES[: args.instruments]  # every role's streams and the sender's market
    nats_url = settings.get("NATS_URL")
    tmp = settings.state_dir() / "tmp"
    scratch = Path(tempfile.mkdtemp(prefix="bench-live-capture-", dir=tmp if tmp.is_dir() else None))
    report = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
        "instruments": INSTRUMENTS,
        "args": vars(args),
    }
    try:
        if "throughput" not in args.skip:
            peer = (
                None
                if args.short or args.no_peers
                else ensure_peer_python(settings.state_dir() / "bench-peer-venv")
            )
            report["throughput"] = throughput(
                args.rounds,
                args.window_s,
                args.depth_share,
                scratch,
                nats_url,
                args.prefix,
                SHORT_QUEUE if args.short else WHOLE_WINDOW,
                peer,
            )
        if "steady" not in args.skip:
            report["steady"] = asyncio.run(
                steady(
                    args.rate,
                    args.steady_depth_share,
                    args.duration_s,
                    args.rss_every_s,
                    scratch,
                    nats_url,
                    args.prefix,
                    args.busy,
                    args.max_lag_s,
                )
            )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        asyncio.run(drop_stream(nats_url, args.prefix))
    report["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print_table(report)
    missed = missed_targets(report)
    if missed:
        print(f"targets missed: {'; '.join(missed)}", file=sys.stderr)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
