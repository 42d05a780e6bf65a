"""A real-size data.binance.vision day end to end (issue 62): the `binance_archives` asset's path
against the native pipeline on the same archives, in the same run.

The day (2025-01-15, BTCUSDT spot, BENCH_ARCHIVE_TRADES trades, default 5,000,000) is served by the
archive replay (replay/binance_archive.py, its own process: its CPU counts for neither path) as the
vendor publishes it: `.zip` + `.zip.CHECKSUM` of the day's trades, aggTrades (the trades' runs of one
price and side) and 1m klines. Each path runs in its own process on a fresh chDB database with the
project's tables (stores.clickhouse.tables):

- asset: what `binance_archives` and its `trade_ids_continuous` checks run, without Dagster:
  `ArchiveRun` through the ingest engine (download hashed as it streams, verify, read, write each
  slice, flip), `record` (dump_archives), then `quality.continuity.find_holes` on trades and aggTrades;
- native: `curl` each zip and CHECKSUM, `sha256sum`, `unzip -p` to a CSV, ClickHouse `INSERT ... SELECT
  FROM file()` of the CSV into the same table, then the checks' plain query (`count(), min(seq),
  max(seq)` of the day).

Per part: wall seconds, CPU seconds (the process's and the tools' it waited for) and peak RSS (the
process's; the tools' maximum beside it). Rounds alternate the order (BENCH_REPEAT, default 3); the
figure is the asset path's rows per CPU second over the native path's, the median of the per-round
ratios, with the load average at each round. Targets: >= 0.8x, asset peak RSS < 1 GB. Both paths
must store the same rows (count, id range, sum of quantities per table): else exit 1.
Old vs new: `--tree DIR` adds the asset path of another checkout to every round (its own
process, cwd and PYTHONPATH that checkout). Results: bench/results/archive_day.json. Run:
`scripts/with-env .venv/bin/python -m bench archive_day [--tree /path/to/old/checkout]`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from marketdata_assets.core import settings

DAY = date(2025, 1, 15)
INSTRUMENT = "BTCUSDT"
VENUE = "BINANCE"
TRADES = int(os.environ.get("BENCH_ARCHIVE_TRADES", "5000000"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "3"))
RATIO_TARGET, RSS_TARGET_MB = 0.8, 1024
FILES = {  # dataset -> (archive family, kline interval)
    "trades": ("trades", ""),
    "agg_trades": ("aggTrades", ""),
    "bars_1m": ("klines", "1m"),
}
# the native path's reading of each spot file (microsecond times since 2025) into the project's columns
NATIVE = {
    "trades": (
        "id Int64, price Float64, qty Float64, quote_qty Float64, time Int64, maker Bool, best Bool",
        "fromUnixTimestamp64Micro(time, 'UTC'), 'BINANCE', 'BTCUSDT', toString(id), price, qty, "
        + "quote_qty, if(maker, 'sell', 'buy'), id",
    ),
    "agg_trades": (
        "id Int64, price Float64, qty Float64, first Int64, last Int64, time Int64, maker Bool, best Bool",
        "fromUnixTimestamp64Micro(time, 'UTC'), 'BINANCE', 'BTCUSDT', toString(id), price, qty, "
        + "price * qty, if(maker, 'sell', 'buy'), id",
    ),
    "bars_1m": (
        "open_time Int64, open Float64, high Float64, low Float64, close Float64, volume Float64, "
        + "close_time Int64, quote_volume Float64, count Int64, tbv Float64, tbq Float64, ignore String",
        "fromUnixTimestamp64Micro(open_time, 'UTC'), 'BINANCE', 'BTCUSDT', open, high, low, close, "
        + "volume, quote_volume, count",
    ),
}


def _archive_key(dataset: str):
    from marketdata_assets.sources.binance_vision.archives import ArchiveKey

    family, interval = FILES[dataset]
    return ArchiveKey("spot", family, interval, INSTRUMENT, "daily", DAY)


class Usage:
    """Wall, CPU (self + waited-for children) and peak RSS of the parts of one phase."""

    def __init__(self):
        self.parts: dict[str, dict] = {}

    @staticmethod
    def _now() -> tuple[float, float, float]:
        me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return time.monotonic(), me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime

    def part(self, name: str, fn, *args, **kwargs):
        wall, me, kids = self._now()
        result = fn(*args, **kwargs)
        wall2, me2, kids2 = self._now()
        self.parts[name] = {
            "seconds": round(wall2 - wall, 3),
            "cpu_s": round(me2 - me + kids2 - kids, 3),
            "tools_cpu_s": round(kids2 - kids, 3),
        }
        return result

    def summary(self) -> dict:
        return {
            "parts": self.parts,
            "seconds": round(sum(p["seconds"] for p in self.parts.values()), 3),
            "cpu_s": round(sum(p["cpu_s"] for p in self.parts.values()), 3),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        }


# ---- the two paths (each in its own process) -------------------------------------------------------------


def _asset(client, database: str, base_url: str, workdir: Path, usage: Usage) -> None:
    import contextlib

    from marketdata_assets.ingest.archives import ArchiveRun
    from marketdata_assets.ingest.engine import Engine
    from marketdata_assets.quality.continuity import find_holes
    from marketdata_assets.sources.binance_vision.archives import ArchiveClient, daily_jobs

    keys = [_archive_key(d).slices()[0] for d in FILES]
    run = ArchiveRun(lambda: ArchiveClient(base_url), workdir, workers=3)
    engine = Engine(lambda: contextlib.nullcontext(client), database, "bench")
    report = usage.part("fetch, verify, load", engine.run, [[run.feed(daily_jobs(keys))]])
    if failed := [o.error for o in report.failures()]:
        raise RuntimeError(f"{len(failed)} slices failed: {failed[:2]}")
    usage.part("record", run.record, client, database, report, "bench")
    for dataset in ("trades", "agg_trades"):
        slices = [k for k in keys if k.dataset == dataset]
        found = usage.part(f"check {dataset}", find_holes, client, database, slices, dataset=dataset)
        if any(f.holes for f in found.values()):
            raise RuntimeError(f"{dataset}: holes found in a day without holes: {found}")


def _native(client, database: str, base_url: str, workdir: Path, usage: Usage) -> None:
    db = f"`{database}`"
    for dataset in FILES:
        key = _archive_key(dataset)
        zip_path, csv_path = workdir / key.name, workdir / key.name.replace(".zip", ".csv")
        url = base_url + key.path

        def fetch(url=url, zip_path=zip_path) -> str:
            subprocess.run(["curl", "-sfo", str(zip_path), url], check=True)
            return subprocess.run(["curl", "-sf", url + ".CHECKSUM"], check=True, capture_output=True).stdout

        published = usage.part(f"{dataset}: curl", fetch).split()[0].decode()
        digest = usage.part(
            f"{dataset}: sha256sum",
            lambda z=zip_path: subprocess.run(["sha256sum", str(z)], check=True, capture_output=True).stdout,
        )
        if digest.split()[0].decode() != published:
            raise RuntimeError(f"{key.name}: sha256 mismatch")

        def unzip(zip_path=zip_path, csv_path=csv_path) -> None:
            with open(csv_path, "wb") as out:
                subprocess.run(["unzip", "-p", str(zip_path)], check=True, stdout=out)

        usage.part(f"{dataset}: unzip -p", unzip)
        schema, select = NATIVE[dataset]
        from marketdata_assets.datasets.frames import spec_for

        spec = spec_for(dataset)
        cols = ", ".join(f"`{c}`" for c in (*spec.column_names, "day", "load_id"))
        usage.part(
            f"{dataset}: INSERT FROM file()",
            client.command,
            f"INSERT INTO {db}.`{spec.table}` ({cols}) SELECT {select}, toDate('{DAY}'), toUInt64(1) "
            f"FROM file('{csv_path}', CSV, '{schema}')",
        )
        ident = "toUnixTimestamp64Micro(ts)" if dataset == "bars_1m" else "seq"
        usage.part(
            f"{dataset}: plain check",
            client.query,
            f"SELECT day, count(), min({ident}), max({ident}) FROM {db}.`{spec.table}` GROUP BY day",
        )
        zip_path.unlink()
        csv_path.unlink()


def _stored(client, database: str, view: bool) -> dict:
    """Per table: rows, first and last id, sum of quantities (what both paths must agree on)."""
    from marketdata_assets.datasets.frames import spec_for

    out = {}
    for dataset in FILES:
        spec = spec_for(dataset)
        table = f"{spec.table}_v" if view else spec.table
        ident, qty = ("toUnixTimestamp64Micro(ts)", "volume") if dataset == "bars_1m" else ("seq", "quantity")
        row = client.query(
            f"SELECT count(), min({ident}), max({ident}), round(sum({qty}), 4) FROM `{database}`.`{table}`"
        ).result_rows[0]
        out[dataset] = [int(row[0]), int(row[1]), int(row[2]), float(row[3])]
    return out


def run_phase(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--phase", choices=("asset", "native"), required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--base-url", required=True)
    args = parser.parse_args(argv)
    from marketdata_assets.resources import ClickHouseResource
    from marketdata_assets.stores.clickhouse.tables import ensure_tables

    database = f"bench_archive_{args.phase}"
    store = ClickHouseResource(dsn=f"chdb://{args.data_dir}", database=database, lock_timeout_s=60)
    usage = Usage()
    try:
        with store.get_client() as client, tempfile.TemporaryDirectory(dir=args.data_dir.parent) as work:
            client.command(f"DROP DATABASE IF EXISTS `{database}`")
            client.command(f"CREATE DATABASE `{database}`")
            ensure_tables(client, database)
            path = _asset if args.phase == "asset" else _native
            path(client, database, args.base_url, Path(work), usage)
            stored = _stored(client, database, view=args.phase == "asset")
            client.command(f"DROP DATABASE `{database}`")
    finally:
        store.close()
    print(json.dumps({"phase": args.phase, **usage.summary(), "stored": stored}))
    return 0


# ---- the driver ------------------------------------------------------------------------------------------


def _phase(phase: str, data_dir: Path, base_url: str, tree: Path | None = None) -> dict:
    """One phase in its own process; `tree`: the asset path of another checkout (its package)."""
    argv = [sys.executable, "-m", "bench.archive_day", "--phase", phase, "--data-dir", str(data_dir)]
    env = dict(os.environ, PYTHONPATH=str(tree)) if tree else None
    done = subprocess.run(
        [*argv, "--base-url", base_url],
        check=False,
        cwd=tree or Path.cwd(),
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"bench phase {phase} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _serve(workdir: Path) -> tuple[subprocess.Popen, str]:
    config = workdir / "replay.json"
    config.write_text(json.dumps({"seed": 11, "trades_per_day": TRADES, "published_until": DAY.isoformat()}))
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "marketdata_assets.replay.binance_archive",
            "--config",
            str(config),
            "--port",
            "0",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    match = re.search(r"on (http://[\w.]+:\d+)", process.stdout.readline())
    if not match:
        process.kill()
        raise RuntimeError("the archive replay did not start")
    return process, match.group(1)


def _warm(base_url: str) -> dict:
    """Each archive generated once (the replay caches it); its size."""
    import httpx

    sizes = {}
    for dataset in FILES:
        key = _archive_key(dataset)
        httpx.get(base_url + key.path + ".CHECKSUM", timeout=600).raise_for_status()
        head = httpx.head(base_url + key.path, timeout=600)
        sizes[dataset] = int(head.headers.get("content-length", 0))
    return sizes


def _report(runs: list[dict], paths: list[str]) -> dict:
    """Per asset path: the median of the per-round CPU ratios (native CPU s / the path's) and its peak RSS."""
    out = {}
    for path in paths:
        ratios = [r["native"]["cpu_s"] / r[path]["cpu_s"] for r in runs]
        walls = [r["native"]["seconds"] / r[path]["seconds"] for r in runs]
        rss = max(r[path]["peak_rss_mb"] for r in runs)
        out[path] = {
            "cpu_ratio_median": round(statistics.median(ratios), 3),
            "cpu_ratios": [round(x, 3) for x in ratios],
            "wall_ratio_median": round(statistics.median(walls), 3),
            "peak_rss_mb": rss,
            "met": statistics.median(ratios) >= RATIO_TARGET and rss < RSS_TARGET_MB,
        }
    return out


def _print_round(n: int, run: dict) -> None:
    print(f"round {n} (load average {run['loadavg']}):")
    for phase in (k for k in run if k != "loadavg"):
        p = run[phase]
        print(
            f"  {phase:6} {p['seconds']:7.2f} s wall, {p['cpu_s']:7.2f} CPU s, peak RSS {p['peak_rss_mb']} MB"
        )
        for name, part in p["parts"].items():
            print(f"    {name:34} {part['seconds']:7.2f} s  {part['cpu_s']:7.2f} CPU s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench archive_day")
    parser.add_argument(
        "--tree",
        action="append",
        type=Path,
        default=[],
        help="also run the asset path of this checkout (old vs new in the same rounds); repeatable",
    )
    args = parser.parse_args(argv or [])
    settings.apply_defaults()
    workdir = Path(tempfile.mkdtemp(prefix="archive_day_", dir=settings.state_dir()))
    process, base_url = _serve(workdir)
    trees = {"asset": None, **{f"asset@{t.name}": t.resolve() for t in args.tree}}
    runs: list[dict] = []
    try:
        started = time.monotonic()
        sizes = _warm(base_url)
        print(
            f"{TRADES:,} trades of {INSTRUMENT} {DAY}: zips {sizes} "
            f"({time.monotonic() - started:.0f} s to build)"
        )
        for n in range(1, REPEAT + 1):
            order = ["native", *trees]
            order = order[n % len(order) :] + order[: n % len(order)]  # each path first in turn
            run = {"loadavg": Path("/proc/loadavg").read_text().split()[:3]}
            for phase in order:
                run[phase] = _phase(phase.split("@")[0], workdir / "chdb", base_url, trees.get(phase))
            for path in trees:
                if run[path]["stored"] != run["native"]["stored"]:
                    raise RuntimeError(
                        f"{path} stored other rows than the native path: {run[path]['stored']} vs "
                        f"{run['native']['stored']}"
                    )
            _print_round(n, run)
            runs.append(run)
    finally:
        process.terminate()
        process.wait()
        shutil.rmtree(workdir, ignore_errors=True)  # the engines' data directories
    summary = _report(runs, list(trees))
    for path, figures in summary.items():
        print(
            f"{path} / native per CPU second: median {figures['cpu_ratio_median']} (rounds "
            f"{figures['cpu_ratios']}), wall {figures['wall_ratio_median']}; "
            f"peak RSS {figures['peak_rss_mb']} MB; "
            f"targets >= {RATIO_TARGET}x, < {RSS_TARGET_MB} MB: {'met' if figures['met'] else 'NOT met'}"
        )
    print(f"stored (rows, first id, last id, sum of quantities): {runs[-1]['native']['stored']}")
    out = settings.PROJECT_ROOT / "bench" / "results" / "archive_day.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {"trades": TRADES, "day": str(DAY), "sizes": sizes, "runs": runs, "paths": summary}, indent=1
        )
    )
    return 0 if summary["asset"]["met"] else 1


if __name__ == "__main__":
    sys.exit(run_phase(sys.argv[1:]) if "--phase" in sys.argv else main(sys.argv[1:]))
