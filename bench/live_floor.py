"""The floor under issue 23's throughput target: what one acknowledged JetStream publish costs the
collector's process in nats-py, against the budget a frame has at 0.5x a bare WebSocket client.

The target reads frames per CPU second ≥ 0.5x the ceiling's (bench live_capture), i.e. CPU µs a frame
≤ 2x the ceiling's. The ceiling already spends its µs receiving the frame, so everything else (decode,
landing, the book, the message and its publish) must fit in the other half. Here, per round, on the
stack's nats-server, `--messages` trade messages shaped as the collector publishes them:

- `plain`: `nc.publish(subject, payload)` to a subject no stream listens to (no ack comes back);
- `with_id`: the same with the reply subject and the `Nats-Msg-Id` header the collector sends;
- `acked`: `JetStreamStore.publish` (the collector's own path) in batches of 1,000 into a stream of
  the bench's own: every ack read and counted; the stream must then hold every message once.

CPU µs a message of this process only (nats-server's own CPU not counted). `--ceiling-us` is the bare
client's CPU µs a frame (default: bench/results/live_capture.json's throughput part, else 5.8, measured
2026-11-24). Run: `scripts/with-env .venv/bin/python -m bench live_floor [--messages 100000] [--rounds 3]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path

from bench.live_consumer import trade
from marketdata_assets.core import settings
from marketdata_assets.stores.jetstream import JetStreamStore, StreamSpec

PREFIX = "benchlf"
RESULTS = Path(__file__).resolve().parent / "results" / "live_floor.json"
CAPTURE_RESULTS = RESULTS.parent / "live_capture.json"
CEILING_US = 5.8  # bench live_capture, bare websockets client, 2026-11-24 (docs/live-capture.md, Bench)
BATCH = 1000


def ceiling_us() -> float:
    """The bare client's CPU µs a frame from the last live_capture throughput run, else CEILING_US."""
    try:
        return float(json.loads(CAPTURE_RESULTS.read_text())["throughput"]["bare_cpu_us_per_frame"])
    except (OSError, KeyError, ValueError, TypeError):
        return CEILING_US


async def one_round(messages: int, prefix: str) -> dict:
    """CPU µs a message of each way (module doc); the stream's count after `acked`."""
    store = await JetStreamStore(settings.get("NATS_URL"), name="bench-live-floor").connect()
    spec = StreamSpec(
        name=f"BENCH_LIVE_FLOOR_{prefix}", subjects=(f"{prefix}.>",), max_bytes=512 << 20, max_age_s=600.0
    )
    now_ms = int(time.time() * 1000)
    batch = [trade(i, now_ms, prefix) for i in range(messages)]
    out: dict = {"messages": messages}
    try:
        await store.delete_stream(spec.name)
        await store.ensure_stream(spec)
        nc = store.nc
        for label, extra in (("plain", False), ("with_id", True)):
            cpu0 = time.process_time()
            for subj, msg_id, payload in batch:  # `x` + subject: no stream listens, no ack comes
                if extra:
                    await nc.publish(
                        "x" + subj, payload, reply="_INBOX.floor.1", headers={"Nats-Msg-Id": msg_id}
                    )
                else:
                    await nc.publish("x" + subj, payload)
            await nc.flush()
            out[f"{label}_cpu_us"] = round((time.process_time() - cpu0) / messages * 1e6, 2)
        cpu0 = time.process_time()
        for start in range(0, messages, BATCH):
            await store.publish(batch[start : start + BATCH])
        out["acked_cpu_us"] = round((time.process_time() - cpu0) / messages * 1e6, 2)
        out["stored"] = await store.message_count(spec.name)
    finally:
        await store.delete_stream(spec.name)
        await store.close()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench live_floor", description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ceiling-us", type=float, default=None, help="the bare client's CPU µs a frame")
    parser.add_argument("--prefix", default=PREFIX, help="NATS subject prefix (and stream) of the run")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    rounds = []
    for _ in range(args.rounds):
        rounds.append(asyncio.run(one_round(args.messages, args.prefix)))
        print(json.dumps(rounds[-1]), flush=True)
    ceiling = args.ceiling_us if args.ceiling_us is not None else ceiling_us()
    acked = statistics.median(r["acked_cpu_us"] for r in rounds)
    report = {
        "rounds": rounds,
        "ceiling_cpu_us_per_frame": ceiling,
        "budget_cpu_us_per_frame": 2 * ceiling,
        "left_after_receive_us": ceiling,
        "median_acked_cpu_us": acked,
        "median_with_id_cpu_us": statistics.median(r["with_id_cpu_us"] for r in rounds),
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(report, indent=1))
    print(
        f"budget a frame at 0.5x the ceiling: {2 * ceiling:.1f} µs, {ceiling:.1f} µs of it left after "
        f"receiving; an acknowledged publish alone: {acked:.1f} µs (median of {len(rounds)})"
    )
    lost = [r for r in rounds if r["stored"] != r["messages"]]
    if lost:
        print(f"STORED != SENT in {len(lost)} round(s)")
    return 1 if lost else 0


if __name__ == "__main__":
    raise SystemExit(main())
