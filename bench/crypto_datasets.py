"""One day of funding, open interest and ticker snapshots for 200 instruments (70 Binance USD-M, 70
OKX swaps, 60 Deribit perpetuals) and the Deribit option chains, fetched through the crypto replay
with the venues' documented limits switched on in the replay and in the clients.

Reported per venue: rows/s and requests/s; per limit (an endpoint's documented one, else the
venue's request bucket): requests, the most requests the replay saw in any window of the limit
(must not pass it), and for a limit that bound the fetch how close to its pace the requests went;
and the replay's refusals (must be 0: every refusal is a limit violation). The fetch is done as
the assets do it: one client per venue (its limits shared by every request), `workers`
instruments at once.

Run: `scripts/with-env .venv/bin/python -m bench crypto_datasets` (BENCH_INSTRUMENTS=200).
Results: bench/results/crypto_datasets.json.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import sys
import time
from bisect import bisect_right
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

from marketdata_assets.datasets.frames import day_window
from marketdata_assets.replay.crypto import CryptoReplayServer, ReplayConfig
from marketdata_assets.sources.interface import HISTORY
from marketdata_assets.sources.venues import serves, venue_client

RESULTS = Path(__file__).resolve().parent / "results" / "crypto_datasets.json"
DATASETS = ("funding", "open_interest", "tickers")
WORKERS = 4  # the sources config's workers per venue
SHARE = {"BINANCE_UM": 0.35, "OKX": 0.35, "DERIBIT": 0.30}


def universe(n: int) -> dict[str, list[str]]:
    """`n` made-up perpetuals over the three venues (C000USDT, C001-USDT-SWAP, C002_USDC-PERPETUAL, ...)."""
    um = round(n * SHARE["BINANCE_UM"])
    okx = round(n * SHARE["OKX"])
    names = [f"C{i:03d}" for i in range(n)]
    return {
        "BINANCE_UM": [f"{c}USDT" for c in names[:um]],
        "OKX": [f"{c}-USDT-SWAP" for c in names[um : um + okx]],
        "DERIBIT": [f"{c}_USDC-PERPETUAL" for c in names[um + okx :]],
    }


async def fetch_venue(base_url: str, venue: str, instruments: list[str], day) -> dict:
    start, end = day_window(day)
    rows = requests = 0
    async with venue_client(venue, base_url) as api:  # contract sizes: looked up at the replay, once each
        gate = asyncio.Semaphore(WORKERS)

        async def one(instrument: str, dataset: str) -> int:
            async with gate:
                if serves(venue, dataset, instrument) == HISTORY:
                    frame = await getattr(api, dataset)(instrument, start, end)
                else:
                    frame = await getattr(api, dataset)(instrument)
                return frame.height

        started = time.monotonic()
        heights = await asyncio.gather(*(one(i, d) for d in DATASETS for i in instruments))
        if venue == "DERIBIT":
            heights += await asyncio.gather(*(api.option_chain(f"{c}-OPTIONS") for c in ("BTC", "ETH")))
            heights = [h if isinstance(h, int) else h.height for h in heights]
        seconds = time.monotonic() - started
        rows, requests = sum(heights), api.stats.requests
        rate_limited = api.stats.rate_limited
        limits = {prefix: spec for prefix, spec in api.endpoint_limits.items()}
        rpm = api.LIMITS.requests_per_minute
    return {
        "venue": venue,
        "instruments": len(instruments),
        "rows": rows,
        "requests": requests,
        "seconds": round(seconds, 2),
        "rows_per_s": round(rows / seconds),
        "requests_per_s": round(requests / seconds, 1),
        "answered_429": rate_limited,
        "endpoint_limits": limits,
        "requests_per_minute": rpm,
    }


def most_in_window(times: list[float], window_s: float) -> int:
    times = sorted(times)
    return max((bisect_right(times, t + window_s - 1e-9) - i for i, t in enumerate(times)), default=0)


def bucket_refusals(times: list[float], rate: float, capacity: float) -> int:
    """Requests a token bucket (`rate` a second, `capacity` at most) would have refused."""
    tokens, last, refused = capacity, None, 0
    for t in sorted(times):
        tokens = capacity if last is None else min(capacity, tokens + (t - last) * rate)
        last = t
        if tokens < 1 - 1e-9:
            refused += 1
        else:
            tokens -= 1
    return refused


def limit_report(server: CryptoReplayServer, venues: list[dict]) -> list[dict]:
    """Per limit: an endpoint's own (requests per sliding window), else the venue client's request
    bucket over all its other requests (Deribit's credits are such a bucket: 20 a second, as many
    at most). For each: requests, what the replay saw against the limit (the most in any window, or
    the requests the bucket would have refused: the violations), and, when the limit bound the
    fetch (more requests than one window or a full bucket allows), the shortest time the limit
    permits over the time the requests took (1.0: exactly at the limit's pace)."""
    groups: dict[tuple[str, str], list[float]] = defaultdict(list)
    specs: dict[tuple[str, str], tuple[str, float, float]] = {}
    for entry in server.requests():
        stats = next(v for v in venues if v["venue"] == entry["venue"])
        prefix = max(
            (p for p in stats["endpoint_limits"] if entry["path"].startswith(p)), key=len, default=None
        )
        if prefix is not None:
            key, spec = (entry["venue"], prefix), ("window", *stats["endpoint_limits"][prefix])
        else:
            rate = stats["requests_per_minute"] / 60
            key, spec = (entry["venue"], "every other request (bucket)"), ("bucket", rate, max(1.0, rate))
        groups[key].append(entry["t"])
        specs[key] = spec
    out = []
    for key, times in sorted(groups.items()):
        kind, a, b = specs[key]
        span = max(times) - min(times)
        if kind == "window":
            limit, window = int(a), b
            most = most_in_window(times, window)
            row = {
                "limit": f"{limit} / {window:g} s",
                "most_in_a_window": most,
                "violations": max(0, most - limit),
            }
            shortest = (-(-len(times) // limit) - 1) * window if len(times) > limit else None
        else:
            rate, capacity = a, b
            row = {
                "limit": f"{rate:g}/s, {capacity:g} at once",
                "violations": bucket_refusals(times, rate, capacity),
            }
            shortest = (len(times) - capacity) / rate if len(times) > capacity else None
        row = {"venue": key[0], "limit_of": key[1], "requests": len(times), **row}
        if shortest is not None and span > 0:
            row["limit_bound_share"] = round(shortest / span, 2)
        out.append(row)
    return out


def main() -> int:
    n = int(os.environ.get("BENCH_INSTRUMENTS", "200"))
    day = datetime.now(UTC).date() - timedelta(days=1)
    instruments = universe(n)
    config = ReplayConfig(
        seed=1,
        trades_per_day=200,
        instruments={**instruments},
        okx_requests_per_2s=20,
        deribit_requests_per_s=20,
        binance_um_weight_limit=2400,
    )
    with CryptoReplayServer(config) as server:
        started = time.monotonic()

        async def everything():
            return await asyncio.gather(
                *(fetch_venue(server.base_url, v, i, day) for v, i in instruments.items())
            )

        venues = asyncio.run(everything())
        seconds = time.monotonic() - started
        endpoints = limit_report(server, venues)
        refusals = server.state()["limit_refusals"]
    rows, requests = sum(v["rows"] for v in venues), sum(v["requests"] for v in venues)
    report = {
        "day": day.isoformat(),
        "instruments": n,
        "datasets": [*DATASETS, "option_chain"],
        "seconds": round(seconds, 1),
        "rows": rows,
        "requests": requests,
        "rows_per_s": round(rows / seconds),
        "requests_per_s": round(requests / seconds, 1),
        "replay_refusals": refusals,
        "window_violations": sum(e["violations"] for e in endpoints),
        "venues": [{k: v for k, v in venue.items() if k not in ("endpoint_limits",)} for venue in venues],
        "endpoints": endpoints,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
        "at": datetime.now().isoformat(timespec="seconds"),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"crypto datasets: {n} instruments, {rows:,} rows, {requests:,} requests in {seconds:.1f} s "
        f"({report['rows_per_s']:,} rows/s, {report['requests_per_s']} requests/s); "
        f"replay refusals {refusals}, window violations {report['window_violations']}"
    )
    for v in venues:
        print(
            f"  {v['venue']:<10} {v['instruments']:>3} instruments {v['rows']:>7,} rows "
            f"{v['requests']:>5} requests {v['seconds']:>6} s  {v['rows_per_s']:>7,} rows/s "
            f"{v['requests_per_s']:>6} req/s  429s {v['answered_429']}"
        )
    for e in endpoints:
        bound = (
            f"limit-bound, at {e['limit_bound_share']:.0%} of the limit's pace"
            if "limit_bound_share" in e
            else "not bound (fits in one window)"
        )
        print(
            f"  {e['venue']:<10} {e['limit_of']:<52} {e['requests']:>5} req  limit {e['limit']:>16}  "
            f"violations {e['violations']}  {bound}"
        )
    failed = report["window_violations"] or any(refusals.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
