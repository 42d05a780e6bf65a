"""`bench live_capture --universe N`: the collector on a universe of N replayed Binance spot instruments.

Each instrument has its trade and depth@100ms streams: 2N streams over ceil(2N / 1,024) connections,
the first 100 of each named in its URL, the rest SUBSCRIBEd 100 a message (the collector's plan,
`universe_plan`). The sender (bench/live_sender.py) serves them as Binance does and enforces Binance
spot's WebSocket Limits (5 incoming messages a second a connection, 1,024 streams a connection; its
doc cites them); it times every control message, so each run reports its subscription time (the first
connect to the last stream added) against the floor the limits allow, the most control messages a
connection sent within a second (at most 5) and the sender's refusals (goal 0).

Two parts, each at N and at a baseline of a few instruments (`--baseline`, 10: one connection, every
stream in its URL) in the same session:
1. Throughput, `--rounds` rounds of six runs (the two bare clients, websockets and picows, and the
   collector, at N and at the baseline, the order flipped each round): a client subscribes at the
   sender's warm rate (1,000 frames a second a connection), then tells the sender to send as fast as it
   reads and counts `--window-s` from there (bench/live_capture_roles.py); frames a CPU second of each,
   the ratio collector / each bare client (median of the rounds), the measure of bench/live_capture.py's
   part 1 (its queue holds the whole window). Targets at N: >= 0.4 of websockets, >= 0.3 of picows.
   `--pin`: the sender on one CPU, the client measured on another (the bare client costs ~6 or ~10 µs a
   frame from one run to the next, pinned or not, and the ratio with it: docs/live-capture.md, "Session 40").
2. Memory: the collector alone at a steady `--memory-rate` (frames a second in all, spread over its
   connections; its queue holds every frame, as in part 1) for `--memory-s`; its RSS after subscription
   and at the end, and per 1,000 instruments: (RSS at N - RSS at the baseline) / ((N - baseline) /
   1,000); its CPU a frame at that rate, and its books: synced, or buffering diffs while their REST
   snapshot waits on the collector's request-weight budget (`book_sync_floor_min`: N books at that
   budget). Then once more at N with production's queue bounds (50,000 frames, 1 s of lag): the frames
   it landed of those sent, dropped, its markers, and the acknowledgements it never processed (the lag
   bound sheds them with the frames).

`--books-synced` (the throughput part): the collector's window starts once every book is synced, its
steady state (diffs applied, every book's top published each second); without it most books still wait
for their REST snapshot during the window (29-69 of 2,000 synced at its end).

Measured 2026-11-28 (docs/live-capture.md, "Session 47"): ratio 0.408 / 0.462 / 0.384 / 0.511 / 0.433 /
0.434 / 0.429 at 2,000 instruments in seven runs (the median of their 21 rounds 0.429; the collector
9.25-12.96 µs a frame), the tree before 0.363 / 0.403 in runs alternating with the first two (0.385;
10.15-14.16 µs); 0.566-0.654 at 10.
Measured 2026-11-27 (docs/live-capture.md, "Session 43"): a `--books-synced` window is a backlog's drain (2.19
million frames queued, 1.17 GB of RSS, 65.8 s to process them; ratio 0.259); the collector keeping up instead
(reading paused at 20,000 queued frames, a patch not kept) cost 25.7-45.1 µs a frame: its books are bound by
memory (`bench book_path`).
Measured 2026-11-27 (docs/live-capture.md, "Session 42"): with `--books-synced`, ratio 0.228-0.262 at 2,000
instruments (the collector 17.3-21.3 µs a frame; 0.193-0.255, 18.0-25.6 µs, before the book kept its
price order): far from the target in the collector's steady state.
Measured 2026-11-27 (docs/live-capture.md, "Session 41"): ratio 0.416 at 2,000 instruments (rounds
0.416-0.443; the collector 10.6-10.7 µs a frame, the bare client 4.4-4.7), 0.677 at 10; an hour later,
the same code, 0.350 and 0.346 (the collector 13.0-14.9 µs): the target met in some runs only.
Measured 2026-11-27 (docs/live-capture.md, "Session 38"): ratio 0.421 at 2,000 instruments (rounds
0.338-0.431; waiting books no longer read their diffs' levels).
Measured 2026-11-26 (docs/live-capture.md, "The universe run"): ratio 0.341 at 2,000 instruments over 4
connections (rounds 0.282-0.371, the bare client's CPU a frame moving 5.1-8.2 us; 0.283 the session before,
0.195 and 0.169 before the landing, sealing and book-buffer changes), 0.495 at 10 (target at N: >= 0.4:
missed); subscription 3.0 s at the collector's pacing, 0 refusals; 44.9 MB of RSS per 1,000 instruments
subscribed; every frame landed under production's queue bounds.

Results: bench/results/live_capture_universe.json; `--short`: one round of a second, the queue of
bench/live_capture.py's smoke run (tests/bench/test_bench_live_capture_universe.py). Figures depend
on the machine's load (the load average is recorded at every run). Run:
`scripts/with-env .venv/bin/python -m bench live_capture --universe 2000 [--rounds 3] [--baseline 10]`.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from bench.live_capture import (
    CEILINGS,
    SHORT_QUEUE,
    WHOLE_WINDOW,
    WHOLE_WINDOW_S,
    drop_stream,
    last_json,
    per_frame,
    sender,
)
from bench.live_capture_roles import subscribes, universe_plan
from bench.live_sender import CONTROL_PER_S, universe_names
from marketdata_assets.ingest.live.collect.collector import CollectorConfig
from marketdata_assets.sources.binance.client import LIMITS, depth_weight
from marketdata_assets.sources.binance.stream import BinanceSpotStream

RESULTS = Path(__file__).resolve().parent / "results" / "live_capture_universe.json"
REPO = Path(__file__).resolve().parents[1]
TARGET_RATIO = 0.4  # at N instruments, of the bare websockets client's frames a CPU second
TARGET_PICOWS_RATIO = 0.3  # at N instruments, of the bare picows client's
WARM_RATE = 1000.0  # frames a second a connection while the client subscribes
SYNC_WAIT_S = 600.0  # `--books-synced`: the longest the collector waits for its books (at 2,000: ~2 min)
SHUTDOWN_S = 900.0  # the collector's stop lands and publishes its whole window: at scale that takes minutes


def subscription_floor(plans: list[list[str]], per_s: int) -> int:
    """The least time, in whole seconds, every connection's SUBSCRIBEs take at `per_s` messages in any
    second (connections in parallel; a connection's k-th message, from 0, no sooner than k // per_s s
    after its first)."""
    return max(((len(subscribes(plan)) - 1) // per_s for plan in plans if subscribes(plan)), default=0)


def book_sync_floor_min(instruments: int) -> float:
    """Minutes the collector's REST budget takes to fetch a snapshot of every book: Binance's request
    weight a minute (`LIMITS`, spent up to its headroom) over a depth snapshot's weight at the
    collector's `snapshot_limit`."""
    weight = depth_weight(CollectorConfig.__dataclass_fields__["snapshot_limit"].default)
    return round(instruments / (LIMITS.weight_per_window * LIMITS.weight_headroom / weight), 1)


def role_argv(
    role: str,
    address: str,
    n: int,
    seconds: float,
    args,
    scratch: Path,
    nats_url: str,
    mode: str = "throughput",
) -> list[str]:
    """A role's command line on the universe of `n`. The collector's queue: the throughput part's holds
    its whole window (`--short`: the smoke run's queue) and it starts the flood; `steady` holds every
    frame too, at the steady rate; `production` has production's bounds (50,000 frames, 1 s)."""
    argv = [
        sys.executable,
        "-m",
        "bench.live_capture_roles",
        role,
        "--universe",
        str(n),
        "--seconds",
        str(seconds),
        "--url",
        f"ws://{address}",
        *(["--max-streams", str(args.max_streams)] if args.max_streams else []),
    ]
    if role in CEILINGS:
        return argv
    landing = Path(tempfile.mkdtemp(prefix="landing-", dir=scratch))
    argv += [
        "--rest-url",
        f"http://{address}",
        "--landing",
        str(landing),
        "--nats-url",
        nats_url,
        "--prefix",
        args.prefix,
        "--shutdown-s",
        str(SHUTDOWN_S),
    ]
    if mode == "production":  # its acknowledgements may be shed with the frames: it counts from a minute on
        return argv + ["--subscribe-timeout-s", "60"]
    queue = SHORT_QUEUE if args.short and mode == "throughput" else WHOLE_WINDOW
    return argv + [
        "--queue-size",
        str(queue),
        "--max-lag-s",
        str(WHOLE_WINDOW_S),
        *(["--held"] if mode == "throughput" else []),
        *(["--synced-s", str(SYNC_WAIT_S)] if args.books_synced and role == "collector" else []),
    ]


def pinned_cpus() -> tuple[int, int]:
    """(the sender's CPU, the measured client's) for `--pin`: the first two this process may use."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        raise SystemExit("--pin needs two CPUs")
    return cpus[0], cpus[1]


def run(role: str, n: int, args, scratch: Path, nats_url: str, mode: str = "throughput") -> dict:
    """One run of a role on the universe of `n` against a sender of its own (`mode`: `role_argv`'s;
    not the throughput part: the sender sends `--memory-rate` frames a second in all); the sender's
    report beside (its REST snapshots counted, not listed)."""
    plans = universe_plan(universe_names(n), args.max_streams)
    counts: dict = {}
    steady = mode != "throughput"
    rate = args.memory_rate / len(plans) if steady else 0.0  # the sender's rate is a connection's
    extra = ("--universe", str(n), *(() if steady else ("--held", "--warm-rate", str(WARM_RATE))))
    seconds = args.memory_s if steady else args.window_s
    cpus = pinned_cpus() if args.pin and not steady else None
    with sender(rate, args.depth_share, counts, extra, cpus and {cpus[0]}) as address:
        process = subprocess.Popen(
            role_argv(role, address, n, seconds, args, scratch, nats_url, mode),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        if cpus is not None:  # before it starts any thread (its imports take a second): they inherit it
            os.sched_setaffinity(process.pid, {cpus[1]})
        try:
            stdout, stderr = process.communicate(timeout=seconds + SHUTDOWN_S + 600)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    if process.returncode:
        raise RuntimeError(f"{role} at {n} failed ({process.returncode}): {stderr[-2000:]}")
    result = per_frame(last_json(stdout))
    snapshots = counts.pop("snapshots", [])
    counts["snapshots_served"], counts["last_snapshot_s"] = (
        len(snapshots),
        max((t for t, _ in snapshots), default=None),
    )
    return {**result, "instruments": n, "sender": counts, "load_average": round(os.getloadavg()[0], 2)}


ROLES = (*CEILINGS, "collector")  # the throughput part's, at each size


def throughput(args, sizes: list[int], scratch: Path, nats_url: str) -> dict:
    """`args.rounds` rounds of the bare clients and the collector at each size, the order flipped each
    round; per size the runs and their medians (see the module doc, part 1)."""
    groups = [[(role, n) for role in ROLES] for n in sizes]
    samples: dict[tuple[str, int], list[dict]] = {run_: [] for group in groups for run_ in group}
    for round_ in range(args.rounds):
        flip = round_ % 2
        for role, n in [
            r for group in (groups[::-1] if flip else groups) for r in (group[::-1] if flip else group)
        ]:
            samples[role, n].append(run(role, n, args, scratch, nats_url))
            print(
                f"  {role} at {n}: {samples[role, n][-1]['cpu_us_per_frame']} us of CPU a frame", flush=True
            )
    return {str(n): size_summary({role: samples[role, n] for role in ROLES}) for n in sizes}


def size_summary(runs_of: dict[str, list[dict]]) -> dict:
    """One size's rounds (`runs_of` each role's): frames a CPU second and the collector's ratio to each
    ceiling (medians, the ratio's range), the subscription and the limits as the sender saw them (worst
    of the runs), the collector's books."""
    collector, runs = runs_of["collector"], [r for rs in runs_of.values() for r in rs]
    ratios = {}
    for ceiling, name in CEILINGS.items():
        cpu = [c["frames_per_cpu_s"] / b["frames_per_cpu_s"] for b, c in zip(runs_of[ceiling], collector)]
        ratios[f"{name}_per_cpu_s"] = round(statistics.median(cpu), 3)
        ratios[f"{name}_min_max"] = [round(min(cpu), 3), round(max(cpu), 3)]
    return {
        "instruments": collector[0]["instruments"],
        "streams": max(r["sender"]["streams"] for r in runs),
        "connections": len(collector[0]["sender"]["sessions"])
        - sum(s["closed_for"] is not None for s in collector[0]["sender"]["sessions"]),
        **ratios,
        **{
            f"{name}_{key}": statistics.median(r[key] for r in rs)
            for name, rs in runs_of.items()
            for key in ("frames_per_cpu_s", "frames_per_s", "cpu_us_per_frame")
        },
        "subscription_s": {name: [r["sender"]["subscription_s"] for r in rs] for name, rs in runs_of.items()},
        "max_control_per_s": max(r["sender"]["max_control_per_s"] for r in runs),
        "sender_refusals": {k: sum(r["sender"]["refusals"][k] for r in runs) for k in ("rate", "streams")},
        "collector_disconnects": [r.get("disconnects") for r in collector],
        "collector_books_synced": [r.get("books_synced") for r in collector],
        "collector_books_synced_before": [r.get("synced_before") for r in collector],
        "load_average": [r["load_average"] for r in runs],
        "runs": runs_of,
    }


def memory(args, sizes: list[int], scratch: Path, nats_url: str) -> dict:
    """The collector at a steady rate at each size (part 2), then at N with production's queue bounds;
    RSS per 1,000 instruments from the first two sizes (N, then the baseline)."""
    runs = {str(n): run("collector", n, args, scratch, nats_url, mode="steady") for n in sizes}
    out = {
        "rate_frames_per_s": args.memory_rate,
        "duration_s": args.memory_s,
        "runs": runs,
        "production_bounds": run("collector", sizes[0], args, scratch, nats_url, mode="production"),
    }
    if len(sizes) == 2:
        (big, a), (small, b) = ((n, runs[str(n)]) for n in sizes)
        per_k = (big - small) / 1000
        for when in ("subscribed", "end"):
            out[f"rss_per_1000_instruments_{when}_mb"] = round(
                (a[f"rss_{when}_mb"] - b[f"rss_{when}_mb"]) / per_k, 1
            )
    return out


def limits_report(args, n: int) -> dict:
    """What the limits allow at `n`: connections, streams, the subscription floors (Binance's 5 messages
    a second; the collector's own pacing) and the books' REST floor."""
    plans = universe_plan(universe_names(n), args.max_streams)
    return {
        "instruments": n,
        "streams": sum(map(len, plans)),
        "connections": len(plans),
        "subscribe_messages": [len(subscribes(plan)) for plan in plans],
        "subscription_floor_s": subscription_floor(plans, CONTROL_PER_S),
        "collector_paced_floor_s": subscription_floor(plans, BinanceSpotStream.limits.control_per_s),
        "book_sync_floor_min": book_sync_floor_min(n),
    }


def run_universe(args, nats_url: str, scratch: Path) -> dict:
    """Both parts (unless skipped) at `args.universe` and at the baseline; the report."""
    sizes = [args.universe] + ([args.baseline] if args.baseline else [])
    report = {"limits": {str(n): limits_report(args, n) for n in sizes}}
    try:
        for part, measure in (("throughput", throughput), ("memory", memory)):
            if part not in args.skip:
                try:
                    report[part] = measure(args, sizes, scratch, nats_url)
                except (
                    RuntimeError,
                    subprocess.TimeoutExpired,
                ) as error:  # the other part's figures are kept
                    report[f"{part}_failed"] = str(error)[-3000:]
    finally:
        asyncio.run(drop_stream(nats_url, args.prefix))
    return report


def missed(report: dict, n: int) -> list[str]:
    """The targets a report misses at `n`: the ratio, and the limits (every stream acknowledged, no
    refusal, at most 5 control messages in a second)."""
    t = report.get("throughput", {}).get(str(n))
    out = [f"{key}: {report[key][:300]}" for key in ("throughput_failed", "memory_failed") if key in report]
    if t:
        if t["ratio_per_cpu_s"] < TARGET_RATIO:
            out.append(f"ratio at {n} {t['ratio_per_cpu_s']} < {TARGET_RATIO}")
        if t["ratio_picows_per_cpu_s"] < TARGET_PICOWS_RATIO:
            out.append(f"ratio to picows at {n} {t['ratio_picows_per_cpu_s']} < {TARGET_PICOWS_RATIO}")
        if t["streams"] < report["limits"][str(n)]["streams"]:
            out.append(f"streams acknowledged {t['streams']} < {report['limits'][str(n)]['streams']}")
        if any(t["sender_refusals"].values()) or t["max_control_per_s"] > CONTROL_PER_S:
            out.append(
                f"sender refusals {t['sender_refusals']}, most control messages in a second "
                f"{t['max_control_per_s']}"
            )
    return out


def print_report(report: dict) -> None:
    for n, t in report.get("throughput", {}).items():
        lim = report["limits"][n]
        print(
            f"{int(n):,} instruments, {t['streams']:,} streams over {t['connections']} connections: "
            f"bare websockets {t['bare_frames_per_cpu_s']:,.0f} frames/CPU-s ({t['bare_cpu_us_per_frame']} "
            f"us), bare picows {t['picows_frames_per_cpu_s']:,.0f} ({t['picows_cpu_us_per_frame']} us), "
            f"collector {t['collector_frames_per_cpu_s']:,.0f} ({t['collector_cpu_us_per_frame']} us)"
        )
        print(
            f"  ratio collector/websockets {t['ratio_per_cpu_s']} (rounds {t['ratio_min_max']}; target >= "
            f"{TARGET_RATIO}), collector/picows {t['ratio_picows_per_cpu_s']} (rounds "
            f"{t['ratio_picows_min_max']}; target >= {TARGET_PICOWS_RATIO})"
        )
        print(
            f"  subscription s {t['subscription_s']} (floor at {CONTROL_PER_S}/s: "
            f"{lim['subscription_floor_s']} s, at the collector's pacing: {lim['collector_paced_floor_s']} "
            f"s); most control messages in a second {t['max_control_per_s']}; sender refusals "
            f"{t['sender_refusals']}; collector disconnects {t['collector_disconnects']}; books synced "
            f"{t['collector_books_synced']} of {int(n):,} (all of them: {lim['book_sync_floor_min']} min at "
            f"the REST budget; before the window: {t.get('collector_books_synced_before')}); load "
            f"{t['load_average']}"
        )
    m = report.get("memory")
    if m:
        for n, r in m["runs"].items():
            print(
                f"steady {m['rate_frames_per_s']:,.0f} frames/s, {int(n):,} instruments: RSS "
                f"{r['rss_subscribed_mb']:.0f} MB subscribed, {r['rss_end_mb']:.0f} MB after "
                f"{m['duration_s']:.0f} s; {r['cpu_us_per_frame']} us of CPU a frame; books synced "
                f"{r['books_synced']}, diffs buffered {r['buffered_diffs']:,}"
            )
        p = m["production_bounds"]
        print(
            f"with production's queue bounds (50,000 frames, 1 s), {int(p['instruments']):,} instruments at "
            f"{m['rate_frames_per_s']:,.0f} frames/s: {p['sender']['sent']:,} frames sent, "
            f"{p['total_frames']:,} landed, {p['total_overflow_frames']:,} dropped; markers {p['markers']}; "
            f"acknowledgements never processed {p['pending_acks']}"
        )
        if "rss_per_1000_instruments_end_mb" in m:
            print(
                f"RSS per 1,000 instruments: {m['rss_per_1000_instruments_subscribed_mb']} MB subscribed, "
                f"{m['rss_per_1000_instruments_end_mb']} MB at the end"
            )


def main(args) -> int:
    """`python -m bench live_capture --universe N ...` (the options: bench/live_capture.py `parse`)."""
    from marketdata_assets.core import settings

    nats_url = settings.get("NATS_URL")
    tmp = settings.state_dir() / "tmp"
    scratch = Path(tempfile.mkdtemp(prefix="bench-live-universe-", dir=tmp if tmp.is_dir() else None))
    report = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
        "args": vars(args),
    }
    try:
        report.update(run_universe(args, nats_url, scratch))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    report["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    results = args.results or RESULTS
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print_report(report)
    print(f"load average before {report['load_average_before']}, after {report['load_average_after']}")
    failed = missed(report, args.universe)
    if failed:
        print(f"targets missed: {'; '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0
