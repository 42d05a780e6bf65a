"""`python -m bench universe --resolve [--rounds N --days N]`: the capacity model's universe read from the
crypto replay's reference endpoints (its own process) with the venues' documented limits enforced
(OKX 20 requests / 2 s per type, Deribit get_instruments 1 / s, Binance request weight), stored as the
point-in-time master in a fresh ClickHouse database of the local server each round, then resolved per day
by the capacity model's rules (every Binance spot and USD-M instrument, every OKX swap, Deribit's options).
Reported per round: wall and CPU seconds of the refresh, requests per venue, the replay's limit refusals
(goal 0), instruments listed, versions stored, the rules' universe sizes and the time to resolve a day.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.ticks_load import ReplayServer
from bench.universe import drop_database
from marketdata_assets.core import settings

RESULTS = Path(__file__).resolve().parent / "results" / "universe_rules.json"
VENUES = ("BINANCE", "BINANCE_UM", "OKX", "DERIBIT")
RULES = {
    "BINANCE": {"types": ("spot",)},
    "BINANCE_UM": {"types": ("perpetual", "future")},
    "OKX": {"types": ("perpetual",)},
    "DERIBIT": {"types": ("option",)},
}
LIMITED = {
    "seed": 0,
    "okx_requests_per_2s": 20,
    "deribit_requests_per_s": 20,
    "deribit_instruments_per_s": 1,
    "binance_weight_limit": 6000,
    "binance_um_weight_limit": 2400,
}


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench universe --resolve")
    p.add_argument("--resolve", action="store_true")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--days", type=int, default=7, help="days resolved back from today")
    p.add_argument("--database", default="bench_universe_rules")
    p.add_argument("--results", type=Path, default=RESULTS)
    return p.parse_args(argv)


def replay_state(url: str) -> dict:
    with urllib.request.urlopen(f"{url}/_replay/state", timeout=10) as answer:
        return json.loads(answer.read())


def one_round(url: str, database: str, days: int) -> dict:
    from marketdata_assets.datasets.universe import UniverseRule, resolve
    from marketdata_assets.ingest.instruments import refresh_venues, stored_master
    from marketdata_assets.resources import ClickHouseResource
    from marketdata_assets.sources.venues import venue_client

    drop_database(database)
    clients: dict[str, list] = {venue: [] for venue in VENUES}

    def maker(venue: str):
        def make():
            api = venue_client(venue, url)
            clients[venue].append(api)
            return api

        return make

    before = replay_state(url)["limit_refusals"]
    store = ClickHouseResource(dsn=settings.clickhouse_dsn(), database=database)
    try:
        with store.get_client() as client:
            wall, cpu = time.perf_counter(), time.process_time()
            refreshes, failed = refresh_venues(client, database, {v: maker(v) for v in VENUES})
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            master = stored_master(client, database)
    finally:
        store.close()
    after = replay_state(url)["limit_refusals"]
    today = datetime.now(UTC).date()
    started = time.perf_counter()
    sizes = {
        venue: [
            len(resolve(master, UniverseRule(venue, **rule), today - timedelta(days=k))) for k in range(days)
        ]
        for venue, rule in RULES.items()
    }
    resolve_s = (time.perf_counter() - started) / days
    return {
        "refresh_wall_s": round(wall, 2),
        "refresh_cpu_s": round(cpu, 2),
        "failed": failed,
        "requests": {v: sum(api.stats.requests for api in clients[v]) for v in VENUES},
        "limit_refusals": {v: after.get(v, 0) - before.get(v, 0) for v in after},
        "listed": {r.venue: r.listed for r in refreshes},
        "versions": sum(len(r.versions) for r in refreshes),
        "universe_today": {v: s[0] for v, s in sizes.items()},
        "universe_by_day": sizes,
        "resolve_day_s": round(resolve_s, 3),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse(argv or [])
    settings.apply_defaults()
    workdir = Path(tempfile.mkdtemp(prefix="universe_rules_"))
    replay = ReplayServer.__new__(ReplayServer)
    replay.start(workdir, LIMITED)
    try:
        rounds = []
        for _ in range(args.rounds):
            rounds.append(one_round(replay.base_url, args.database, args.days))
            time.sleep(1.1)  # Deribit's get_instruments limit is per IP, a client's gate its own: a round's
            # new clients must not ask within a second of the last round's last request
    finally:
        replay.stop()
        drop_database(args.database)
    report = {
        "rounds": rounds,
        "median_refresh_wall_s": statistics.median(r["refresh_wall_s"] for r in rounds),
        "median_refresh_cpu_s": statistics.median(r["refresh_cpu_s"] for r in rounds),
        "limit_refusals": sum(sum(r["limit_refusals"].values()) for r in rounds),
        "failed": [r["failed"] for r in rounds if r["failed"]],
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(report, indent=2) + "\n")
    last = rounds[-1]
    print(
        f"universe --resolve: {sum(last['listed'].values()):,} instruments listed "
        f"({', '.join(f'{v} {n:,}' for v, n in last['listed'].items())}); refresh median "
        f"{report['median_refresh_wall_s']} s wall, {report['median_refresh_cpu_s']} s CPU over "
        f"{len(rounds)} rounds; requests {last['requests']}; limit refusals {report['limit_refusals']}; "
        f"universe today {last['universe_today']}; resolve {last['resolve_day_s']} s a day"
    )
    return 1 if report["limit_refusals"] or report["failed"] else 0
