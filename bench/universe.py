"""A synthetic universe of the capacity model's size (1,500 Binance spot + 530 USD-M instruments by
default) for one UTC day (yesterday: USD-M trades reach back 48 hours) of trades, 1-minute bars,
funding and open interest from the crypto replay (its own process), loaded two ways into a fresh
ClickHouse database of the local server each time: Dagster (one in-process run of `crypto_ticks`
over day x {BINANCE, BINANCE_UM}, `instruments` = the universe, a temporary SQLite DAGSTER_HOME)
and the same slices by direct `Engine.run` calls. Rounds alternate the order. Reported: wall and
CPU s per side, Dagster/direct ratios (goal <= 1.2), runs, partitions, Dagster storage rows written,
the UI's partition-health GraphQL query for crypto_trades (goal < 2 s), peak RSS; exit 1 when a
goal is missed. Run: `python -m bench universe [--spot N --usdm N --trades-per-day N --rounds N]`.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from bench.ticks_load import ReplayServer
from marketdata_assets.core import settings

RESULTS = Path(__file__).resolve().parent / "results" / "universe.json"
DATASETS = ("trades", "bars_1m", "funding", "open_interest")
VENUES = ("BINANCE", "BINANCE_UM")
WORKERS = CONCURRENCY = 4  # the sources config's workers and max_concurrency of both venues
LIFTED = 10**9  # rate limits off (replay and clients): this measures the load, not the venues' quotas
RATIO_GOAL, GRAPHQL_GOAL_MS = 1.2, 2000
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}  # as the CLI's runs (apps.launch)
PARTITION_HEALTH = """query PartitionHealthQuery($assetKey: AssetKeyInput!) {
  assetNodeOrError(assetKey: $assetKey) { ... on AssetNode { id
    partitionKeysByDimension { name type partitionKeys }
    assetPartitionStatuses {
      ... on TimePartitionStatuses { ranges { status startTime endTime startKey endKey } }
      ... on DefaultPartitionStatuses { materializedPartitions materializingPartitions failedPartitions }
      ... on MultiPartitionStatuses { primaryDimensionName ranges {
        primaryDimStartKey primaryDimEndKey primaryDimStartTime primaryDimEndTime
        secondaryDim {
          ... on TimePartitionStatuses { ranges { status startTime endTime startKey endKey } }
          ... on DefaultPartitionStatuses { materializedPartitions materializingPartitions failedPartitions }
        } } } } } } }"""
PARTITION_STATS = """query PartitionStats($assetKey: AssetKeyInput!) {
  assetNodeOrError(assetKey: $assetKey) { ... on AssetNode {
    partitionStats { numMaterialized numMaterializing numFailed numPartitions } } } }"""


def bench_day() -> date:
    return datetime.now(UTC).date() - timedelta(days=1)


def universe(spot: int, usdm: int) -> dict[str, list[str]]:
    """Made-up pairs C0000USDT, C0001USDT, ...: `spot` on Binance spot, the first `usdm` of them as
    USD-M perpetuals too."""
    return {
        "BINANCE": [f"C{i:04d}USDT" for i in range(spot)],
        "BINANCE_UM": [f"C{i:04d}USDT" for i in range(usdm)],
    }


def slices(day: date, instruments: dict[str, list[str]]) -> list:
    """The run's slices as the asset computes them: day x venue partitions, the instruments config,
    datasets a venue serves for the instrument and day."""
    from marketdata_assets.defs._common.partitions import crypto_key, slice_keys
    from marketdata_assets.sources.interface import HISTORY
    from marketdata_assets.sources.venues import serves

    keys = slice_keys(
        [crypto_key(day, v) for v in VENUES],
        DATASETS,
        [f"{v}:{i}" for v, names in instruments.items() for i in names],
    )
    return [k for k in keys if serves(k.venue, k.dataset, k.instrument, k.day) == HISTORY]


class Replay(ReplayServer):
    """The crypto replay CLI in its own process serving the universe, its limits lifted."""

    def __init__(self, workdir: Path, instruments: dict[str, list[str]], trades_per_day: int):
        self.start(
            workdir,
            {
                "seed": 11,
                "trades_per_day": trades_per_day,
                "instruments": instruments,
                "binance_weight_limit": LIFTED,
                "binance_um_weight_limit": LIFTED,
            },
        )


# ---- the phases (each its own process) ----------------------------------------------------------


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _rss_mb() -> int:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def fresh_store(database: str):
    from marketdata_assets.resources import ClickHouseResource
    from marketdata_assets.stores.clickhouse.tables import ensure_tables

    store = ClickHouseResource(dsn=settings.clickhouse_dsn(), database=database)
    with store.get_client() as client:
        client.command(f"DROP DATABASE IF EXISTS `{database}`")
        client.command(f"CREATE DATABASE `{database}`")
        ensure_tables(client, database)  # before either side's timing (the asset's own call finds them)
    return store


def visible_rows(store) -> dict[str, int]:
    from marketdata_assets.datasets.frames import spec_for

    with store.get_client() as client:
        return {
            d: int(client.command(f"SELECT count() FROM `{store.database}`.{spec_for(d).table}_v"))
            for d in DATASETS
        }


def venue_resources(base_url: str) -> dict:
    from marketdata_assets.resources.sources import CryptoVenueResource

    limits = {
        "workers": WORKERS,
        "max_concurrency": CONCURRENCY,
        "requests_per_minute": LIFTED,
        "weight_per_minute": LIFTED,
        "max_retries": 3,
        "backoff_base_s": 0.01,
    }
    return {
        venue.lower(): CryptoVenueResource(venue=venue, base_url=base_url, **limits)  # OKX, DERIBIT: unused
        for venue in ("BINANCE", "BINANCE_UM", "OKX", "DERIBIT")
    }


def direct_load(store, base_url: str, keys: list) -> dict:
    """The slices through the ingest engine: one feed per venue, each with its own client."""
    from functools import partial

    from marketdata_assets.core.http import RetryPolicy
    from marketdata_assets.ingest.engine import Engine
    from marketdata_assets.sources.venues import venue_client, venue_feed

    retry = RetryPolicy(max_retries=3, backoff_base_s=0.01)
    feeds = [
        venue_feed(
            venue,
            partial(
                venue_client,
                venue,
                base_url,
                requests_per_minute=LIFTED,
                max_concurrency=CONCURRENCY,
                timeout_s=30,
                retry=retry,
                weight_limit=LIFTED,
                weight_headroom=0.9,
            ),
            mine,
            workers=WORKERS,
            attempts=2,
        )
        for venue in VENUES
        if (mine := [k for k in keys if k.venue == venue])
    ]
    report = Engine(store.get_client, store.database, "bench-direct").run([feeds])
    return {"failed_slices": len(report.failures()), "slices": len(report.outcomes)}


def storage_rows(home: Path) -> dict[str, int]:
    """Rows of every table of the instance's SQLite files (runs, the per-run event logs, the index)."""
    counts: dict[str, int] = {}
    for path in sorted(home.rglob("*.db")):
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
                if table != "alembic_version":
                    (rows,) = db.execute(f'SELECT count(*) FROM "{table}"').fetchone()
                    counts[table] = counts.get(table, 0) + rows
    return counts


def dagster_load(store, base_url: str, home: Path, day: date, instruments: dict[str, list[str]]) -> dict:
    """One in-process run of crypto_ticks over day x VENUES, as `marketdata backfill crypto` launches it
    (range tags, retry_failed, quiet console), with the universe as its `instruments`."""
    import dagster as dg

    from marketdata_assets.defs._common.runs import day_range_tags
    from marketdata_assets.defs.crypto.assets import CRYPTO_ASSETS, crypto_ticks

    instance = dg.DagsterInstance.local_temp(str(home))
    rows_before, runs_before = storage_rows(home), instance.get_runs_count()
    config = {
        "instruments": [f"{v}:{i}" for v, names in instruments.items() for i in names],
        "retry_failed": True,
    }
    started, cpu = time.monotonic(), _cpu_s()
    result = dg.materialize(
        [crypto_ticks],
        instance=instance,
        resources={"clickhouse": store, **venue_resources(base_url)},
        selection=[CRYPTO_ASSETS[d] for d in DATASETS],
        tags=day_range_tags(day, day, VENUES[0], VENUES[-1]),
        run_config={"ops": {"crypto_ticks": {"config": config}}, **QUIET},
        raise_on_error=False,
    )
    seconds, cpu = time.monotonic() - started, _cpu_s() - cpu
    if not result.success:
        failure = next((e.message for e in result.all_events if e.event_type_value == "STEP_FAILURE"), "")
        raise RuntimeError(f"the Dagster run failed: {failure[:2000]}")
    events = result.get_asset_materialization_events()
    rows_after = storage_rows(home)
    written = {t: n - rows_before.get(t, 0) for t, n in rows_after.items() if n != rows_before.get(t, 0)}
    runs = instance.get_runs_count() - runs_before
    instance.dispose()
    return {
        "seconds": seconds,
        "cpu_s": cpu,
        "runs_launched": runs,
        "partitions": len({e.partition for e in events}),
        "materializations": len(events),
        "storage_rows_written": sum(written.values()),
        "storage_rows_by_table": written,
    }


def graphql_times(home: Path, repeat: int = 3) -> dict:
    """The UI's asset partitions page query (PartitionHealthQuery) and the asset's partitionStats for
    crypto_trades, executed in this process against the run's instance, the code location served as
    the webserver serves it (workspace.yaml: a code server process of its own); each `repeat` times,
    each time a fresh request context (as a new page load)."""
    import dagster as dg
    from dagster._core.instance.ref import InstanceRef
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import WorkspaceFileTarget
    from dagster_graphql.test.utils import execute_dagster_graphql

    instance = dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home)))
    target = WorkspaceFileTarget([str(settings.PROJECT_ROOT / "workspace.yaml")])
    variables = {"assetKey": {"path": ["crypto_trades"]}}
    out: dict = {}
    with WorkspaceProcessContext(instance, target, read_only=True) as process:
        entries = process.get_current_workspace().code_location_entries.values()
        errors = [e.load_error for e in entries if e.load_error]
        if errors:
            raise RuntimeError(f"the code location did not load: {errors[0]}")
        for name, query in (("partition_health", PARTITION_HEALTH), ("partition_stats", PARTITION_STATS)):
            times = []
            for _ in range(repeat):
                context = process.create_request_context()
                started = time.monotonic()
                data = execute_dagster_graphql(context, query, variables).data["assetNodeOrError"]
                times.append((time.monotonic() - started) * 1000)
            out[name] = {"ms_median": round(statistics.median(times)), "ms": [round(t) for t in times]}
            out[name]["data"] = data
    instance.dispose()
    health, stats = out["partition_health"].pop("data"), out["partition_stats"].pop("data")["partitionStats"]
    return {
        **out,
        "num_materialized": stats["numMaterialized"],
        "num_partitions": stats["numPartitions"],
        "materialized_in_health_ranges": materialized_in_ranges(health),
    }


def materialized_in_ranges(node: dict) -> int:
    """Partitions the page would paint materialized: days of each primary range x its venues."""
    statuses = node.get("assetPartitionStatuses") or {}
    total = 0
    for r in statuses.get("ranges", []):
        days = (
            date.fromisoformat(r["primaryDimEndKey"]) - date.fromisoformat(r["primaryDimStartKey"])
        ).days + 1
        total += days * len((r.get("secondaryDim") or {}).get("materializedPartitions", []))
    return total


def run_phase(argv: list[str]) -> int:
    """One side (or the GraphQL query) in this process; prints one JSON line."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--phase", choices=("dagster", "direct", "graphql"), required=True)
    parser.add_argument("--spot", type=int, required=True)
    parser.add_argument("--usdm", type=int, required=True)
    parser.add_argument("--day", type=date.fromisoformat, required=True)
    parser.add_argument("--database", required=True)
    parser.add_argument("--base-url")
    parser.add_argument("--home", type=Path)
    args = parser.parse_args(argv)
    settings.apply_defaults()
    if args.phase == "graphql":
        print(json.dumps({"phase": "graphql", **graphql_times(args.home), "peak_rss_mb": _rss_mb()}))
        return 0
    instruments = universe(args.spot, args.usdm)
    store = fresh_store(args.database)
    try:
        rss_before = _rss_mb()
        if args.phase == "dagster":
            info = dagster_load(store, args.base_url, args.home, args.day, instruments)
        else:
            started, cpu = time.monotonic(), _cpu_s()
            info = direct_load(store, args.base_url, slices(args.day, instruments))
            info.update(seconds=time.monotonic() - started, cpu_s=_cpu_s() - cpu)
        rows = visible_rows(store)
    finally:
        store.close()
    info.update(seconds=round(info["seconds"], 2), cpu_s=round(info["cpu_s"], 2))
    print(
        json.dumps(
            {
                "phase": args.phase,
                **info,
                "rows": rows,
                "rss_before_load_mb": rss_before,
                "peak_rss_mb": _rss_mb(),
            }
        )
    )
    return 0


# ---- the bench ---------------------------------------------------------------------------------


def _phase(phase: str, args, **extra) -> dict:
    argv = [
        sys.executable,
        "-m",
        "bench.universe",
        "--phase",
        phase,
        "--spot",
        str(args.spot),
        "--usdm",
        str(args.usdm),
        "--day",
        str(args.day),
        "--database",
        args.database,
    ]
    for key, value in extra.items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    done = subprocess.run(argv, check=False, cwd=settings.PROJECT_ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"bench phase {phase} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    lines = [line for line in done.stdout.splitlines() if line.startswith('{"phase"')]
    if not lines:  # the code server (GraphQL phase) shares the stdout: only the phase's own line is read
        raise RuntimeError(
            f"bench phase {phase} printed no report:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        )
    return json.loads(lines[-1])


def one_round(number: int, args, replay: Replay, workdir: Path) -> dict:
    """Both sides, each on a fresh database (odd rounds Dagster first, even rounds direct first), then
    the partitions page's query on the Dagster side's instance."""
    home = workdir / f"dagster_home_{number}"
    home.mkdir()
    (home / "dagster.yaml").write_text("")  # the default storage: SQLite files under the directory
    out: dict = {"round": number}
    for side in ("dagster", "direct") if number % 2 else ("direct", "dagster"):
        replay_cpu = replay.cpu_s()
        out[side] = _phase(
            side, args, base_url=replay.base_url, **({"home": home} if side == "dagster" else {})
        )
        out[side]["replay_cpu_s"] = round(replay.cpu_s() - replay_cpu, 2)
        print(
            f"  round {number} {side:<7} {out[side]['seconds']:>8.1f} s wall {out[side]['cpu_s']:>8.1f} s "
            f"CPU (replay {out[side]['replay_cpu_s']} s CPU), {sum(out[side]['rows'].values()):,} rows, "
            f"peak RSS {out[side]['peak_rss_mb']} MB",
            flush=True,
        )
    out["graphql"] = _phase("graphql", args, home=home)
    d, g = out["direct"], out["dagster"]
    out["wall_ratio"] = round(g["seconds"] / d["seconds"], 3)
    out["cpu_ratio"] = round(g["cpu_s"] / d["cpu_s"], 3)
    out["rows_equal"] = d["rows"] == g["rows"]
    return out


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench universe", description=__doc__.split("\n\n")[0])
    parser.add_argument("--spot", type=int, default=1500, help="Binance spot instruments (1,500)")
    parser.add_argument("--usdm", type=int, default=530, help="of them also USD-M perpetuals (530)")
    parser.add_argument("--trades-per-day", type=int, default=200, help="trades per instrument-day (200)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of both sides (2)")
    parser.add_argument(
        "--database", default="bench_universe", help="ClickHouse database (dropped, recreated)"
    )
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if not 0 < args.usdm <= args.spot or args.rounds < 1 or args.trades_per_day < 1:
        parser.error("need 0 < --usdm <= --spot, --rounds >= 1, --trades-per-day >= 1")
    args.day = bench_day()
    return args


def summarize(args, rounds: list[dict], replay_rss: int) -> dict:
    def median(side: str, key: str) -> float:
        return round(statistics.median(r[side][key] for r in rounds), 2)

    last = rounds[-1]
    wall, cpu = (round(statistics.median(r[k] for r in rounds), 3) for k in ("wall_ratio", "cpu_ratio"))
    graphql_ms = max(r["graphql"]["partition_health"]["ms_median"] for r in rounds)
    return {
        "day": args.day.isoformat(),
        "instruments": {"spot": args.spot, "usdm": args.usdm},
        "trades_per_instrument_day": args.trades_per_day,
        "datasets": list(DATASETS),
        "slices": sum(1 for _ in slices(args.day, universe(args.spot, args.usdm))),
        "rows": last["direct"]["rows"],
        "rows_total": sum(last["direct"]["rows"].values()),
        "rows_equal_every_round": all(r["rows_equal"] for r in rounds),
        "dagster_storage": "SQLite (DagsterInstance.local_temp: a temporary DAGSTER_HOME per round)",
        "clickhouse": f"{settings.clickhouse_dsn()} database {args.database} (fresh for every load)",
        "seconds_median": {"dagster": median("dagster", "seconds"), "direct": median("direct", "seconds")},
        "cpu_s_median": {"dagster": median("dagster", "cpu_s"), "direct": median("direct", "cpu_s")},
        "wall_ratio_median": wall,
        "cpu_ratio_median": cpu,
        "runs_launched": last["dagster"]["runs_launched"],
        "partitions_materialized": last["dagster"]["partitions"],
        "materializations": last["dagster"]["materializations"],
        "storage_rows_written": last["dagster"]["storage_rows_written"],
        "storage_rows_by_table": last["dagster"]["storage_rows_by_table"],
        "graphql_partition_page_ms": graphql_ms,
        "graphql_partition_stats_ms": max(r["graphql"]["partition_stats"]["ms_median"] for r in rounds),
        "asset_partitions": last["graphql"]["num_partitions"],
        "graphql_num_materialized": last["graphql"]["num_materialized"],
        "peak_rss_mb": {
            "dagster": max(r["dagster"]["peak_rss_mb"] for r in rounds),
            "direct": max(r["direct"]["peak_rss_mb"] for r in rounds),
            "graphql": max(r["graphql"]["peak_rss_mb"] for r in rounds),
            "replay": replay_rss,
        },
        "goals": {"ratio_max": RATIO_GOAL, "graphql_ms_max": GRAPHQL_GOAL_MS},
        "rounds": rounds,
        "at": datetime.now().isoformat(timespec="seconds"),
    }


def print_report(report: dict) -> None:
    print(
        f"{'round':<6}{'side':<9}{'wall s':>9}{'CPU s':>9}{'replay CPU s':>14}{'peak RSS MB':>13}{'rows':>12}"
    )
    for r in report["rounds"]:
        for side in ("dagster", "direct"):
            s = r[side]
            print(
                f"{r['round']:<6}{side:<9}{s['seconds']:>9.1f}{s['cpu_s']:>9.1f}{s['replay_cpu_s']:>14.1f}"
                f"{s['peak_rss_mb']:>13}{sum(s['rows'].values()):>12,}"
            )
    rounds = " / ".join(f"{r['wall_ratio']:.2f}" for r in report["rounds"])
    print(
        f"Dagster/direct (median of rounds): wall {report['wall_ratio_median']:.2f}x ({rounds}), CPU "
        f"{report['cpu_ratio_median']:.2f}x (goal <= {RATIO_GOAL}); rows equal on both sides: "
        f"{report['rows_equal_every_round']} ({', '.join(f'{d} {n:,}' for d, n in report['rows'].items())})"
    )
    top = sorted(report["storage_rows_by_table"].items(), key=lambda kv: -kv[1])[:4]
    print(
        f"runs launched {report['runs_launched']}, partitions materialized "
        f"{report['partitions_materialized']} of {report['asset_partitions']:,} "
        f"({report['materializations']} materializations); Dagster storage rows written "
        f"{report['storage_rows_written']:,} ({', '.join(f'{t} {n:,}' for t, n in top)}); "
        f"{report['dagster_storage']}"
    )
    print(
        "partitions page GraphQL (PartitionHealthQuery, crypto_trades): "
        f"{report['graphql_partition_page_ms']} ms (median of 3, worst round; goal < {GRAPHQL_GOAL_MS}); "
        f"partitionStats {report['graphql_partition_stats_ms']} ms: {report['graphql_num_materialized']} "
        "materialized"
    )
    rss = report["peak_rss_mb"]
    print(
        f"peak RSS MB: Dagster {rss['dagster']}, direct {rss['direct']}, GraphQL process {rss['graphql']}, "
        f"replay server {rss['replay']}"
    )


def missed_goals(report: dict) -> list[str]:
    checks = (
        ("wall <= 1.2x direct", report["wall_ratio_median"] <= RATIO_GOAL),
        ("CPU <= 1.2x direct", report["cpu_ratio_median"] <= RATIO_GOAL),
        ("partitions page < 2 s", report["graphql_partition_page_ms"] < GRAPHQL_GOAL_MS),
        ("same rows both sides", report["rows_equal_every_round"]),
    )
    return [name for name, ok in checks if not ok]


def main(argv: list[str] | None = None) -> int:
    if "--resolve" in (argv or []):  # the universe from the venues' reference data (bench/universe_rules.py)
        from bench import universe_rules

        return universe_rules.main(argv)
    args = parse(argv or [])
    settings.apply_defaults()
    instruments = universe(args.spot, args.usdm)
    workdir = Path(tempfile.mkdtemp(prefix="universe_bench_"))
    replay, rounds = None, []
    try:
        replay = Replay(workdir, instruments, args.trades_per_day)
        print(
            f"universe: {args.spot:,} spot + {args.usdm:,} USD-M instruments, {args.day}, "
            f"{args.trades_per_day} trades per instrument-day, {', '.join(DATASETS)}; replay "
            f"{replay.base_url}",
            flush=True,
        )
        for number in range(1, args.rounds + 1):
            rounds.append(one_round(number, args, replay, workdir))
        replay_rss = replay.peak_rss_mb()
    finally:
        if replay is not None:
            replay.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        drop_database(args.database)
    report = summarize(args, rounds, replay_rss)
    report["missed"] = missed_goals(report)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(report, indent=2) + "\n")
    print_report(report)
    if report["missed"]:
        print(f"goal missed: {', '.join(report['missed'])}")
    return 1 if report["missed"] else 0


def drop_database(database: str) -> None:
    from marketdata_assets.resources import ClickHouseResource

    store = ClickHouseResource(dsn=settings.clickhouse_dsn(), database=database)
    try:
        with store.get_client() as client:
            client.command(f"DROP DATABASE IF EXISTS `{database}`")
    finally:
        store.close()


if __name__ == "__main__":
    sys.exit(run_phase(sys.argv[1:]) if "--phase" in sys.argv else main(sys.argv[1:]))
