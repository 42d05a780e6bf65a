"""The trade-id hole check (issue 13) against a plain count of the same rows.

One UTC day (2025-01-15) of 20 Binance instruments, BENCH_HOLE_TRADES trades each (default
10,000,000: 200 million rows), in the project's `trades` table (stores.clickhouse.tables: sorting
key, codecs, the daily-bar view), one active load per instrument with its ingest_log row (source
BINANCE: aggregate trade ids), generated inside ClickHouse (`numbers()`; a Python frame of 200
million rows would measure Python), then the loads' ids measured and recorded the way the writer's
loads do (stores.clickhouse.load_ids `measure` and `record`, as `load_csv_files` after its insert;
its seconds are printed: a load's cost, not the check's). BENCH_HOLED of the instruments (default 4)
miss five id ranges each (1, 7, 100, 1,000 and 25,000 ids). The data is kept between runs (a
manifest says what it holds) in `$MARKETDATA_STATE_DIR/bench/trade_id_holes_load_ids` (not the
directory of the bench before the figures: a checkout of then runs beside this one).

Timed, three repetitions (BENCH_REPEAT), in one process on the embedded engine, the load average
printed beside each repetition:

- count: `SELECT instrument, count() FROM trades WHERE ts in the day GROUP BY instrument` (the
  plain count), and the same over the active loads only (`load_id IN (active loads)`: what every
  read view does); for scale, a scan of the ids (`max(seq)` per instrument: the least a check that
  reads the ids reads, where a count reads no column at all);
- check: `quality.continuity.find_holes` over the 20 slices, what the `trade_ids_continuous`
  check runs: the loads and their sources, the figures recorded for them, and one count of each
  load's rows that says the figures still hold (no read of the ids); and its two halves: the clean
  slices alone, the holed slices alone. Before the figures (rev 265c47e) the check read the ids (a
  scan, then a bitmap of the holed slices' ids): 7-8x the count;
- window everywhere: the window query over all 20 slices (what the check would cost reading every
  id in order), for comparison.

The check must find exactly the holes put in, and per slice the same ranges and missing ids as the
window over every slice (else exit 1). Results: bench/results/trade_id_holes.json.
Run: `scripts/with-env .venv/bin/python -m bench trade_id_holes`.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import KeptData
from bench.ticks_load import DAY, INSTRUMENTS
from marketdata_assets.core import settings

VENUE = "BINANCE"
TRADES = int(os.environ.get("BENCH_HOLE_TRADES", "10000000"))
HOLED = int(os.environ.get("BENCH_HOLED", "4"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "3"))
DATABASE = "bench_trade_id_holes"
FIRST_ID = 3_000_000_000
HOLE_SIZES = (1, 7, 100, 1_000, 25_000)  # at 10%, 30%, 50%, 70%, 90% of each holed instrument's day


def holes_of(index: int, trades: int = TRADES, holed: int = HOLED) -> list[tuple[int, int]]:
    """The (first, last) missing ids of instrument `index` (the first `holed` instruments have holes)."""
    if index >= holed:
        return []
    base = FIRST_ID + index * trades
    return [
        (base + trades * (2 * k + 1) // 10, base + trades * (2 * k + 1) // 10 + size - 1)
        for k, size in enumerate(HOLE_SIZES)
        if size < trades // 10
    ]


def generate(client, database: str = DATABASE, trades: int = TRADES, holed: int = HOLED) -> float:
    """The 20 slices (`trades` each, the first `holed` with holes) in a new `database`, as loads made
    active the way the writer does (rows, then one row in `loads`), each with its ingest_log row.
    Returns the seconds taken (bench.factors generates its trades with it too)."""
    from marketdata_assets.datasets.frames import spec_for
    from marketdata_assets.stores.clickhouse import load_ids, writer
    from marketdata_assets.stores.clickhouse import tables as ct

    started = time.monotonic()
    client.command(f"DROP DATABASE IF EXISTS `{database}`")
    client.command(f"CREATE DATABASE `{database}`")
    ct.ensure_tables(client, database)
    ids = writer.new_load_ids(client, database, "trades", VENUE, [(s, DAY) for s in INSTRUMENTS])
    start = datetime(DAY.year, DAY.month, DAY.day, tzinfo=UTC)
    loads, log = [], []
    for index, (symbol, load_id) in enumerate(zip(INSTRUMENTS, ids)):
        first = FIRST_ID + index * trades
        missing = (
            " OR ".join(
                f"(number BETWEEN {lo - first} AND {hi - first})" for lo, hi in holes_of(index, trades, holed)
            )
            or "0"
        )
        client.command(
            f"INSERT INTO `{database}`.trades (ts, venue, instrument, trade_id, price, quantity, amount, "
            "side, seq, "
            "day, load_id) SELECT {start:DateTime64(6, 'UTC')} + toIntervalMicrosecond(intDiv(number * "
            "86400000000, {n:UInt64})) AS ts, {venue:String}, {symbol:String}, toString({first:Int64} + "
            "number), round(100 + 10 * sin(number / 50000) + (cityHash64(number) % 100) / 100, 2) AS price, "
            "(cityHash64(number, 1) % 100000) / 100000 + 0.00001 AS quantity, price * quantity, "
            "if(cityHash64(number, 2) % 2 = 0, 'buy', 'sell'), {first:Int64} + number, toDate(ts), "
            f"{{load:UInt64}} FROM numbers({{n:UInt64}}) WHERE NOT ({missing})",
            parameters={
                "start": start,
                "n": trades,
                "venue": VENUE,
                "symbol": symbol,
                "first": first,
                "load": load_id,
            },
        )
        rows = trades - sum(hi - lo + 1 for lo, hi in holes_of(index, trades, holed))
        loads.append(["trades", VENUE, symbol, DAY, load_id, rows, "bench", datetime.now(UTC)])
        log.append(
            {
                "run_id": "bench",
                "source": VENUE,
                "dataset": "trades",
                "venue": VENUE,
                "instrument": symbol,
                "day": DAY,
                "rows": rows,
                "outcome": "ok",
                "load_id": load_id,
                "started_at": start,
                "finished_at": datetime.now(UTC),
            }
        )
        print(f"  {symbol}: {rows:,} rows ({time.monotonic() - started:.0f} s)", flush=True)
    measuring = time.monotonic()  # what a load in the store measures of its ids (as load_csv_files does)
    spec = spec_for("trades")
    load_ids.record(
        client,
        database,
        spec,
        list(load_ids.measure(client, database, spec, VENUE, INSTRUMENTS, [DAY], ids).values()),
    )
    print(f"  ids of the {len(ids)} loads measured in {time.monotonic() - measuring:.1f} s", flush=True)
    client.insert(
        "loads",
        loads,
        column_names=["dataset", "venue", "instrument", "day", "load_id", "rows", "run_id", "loaded_at"],
        database=database,
    )
    writer.log_ingest(client, database, log)
    client.command(f"OPTIMIZE TABLE `{database}`.trades FINAL")  # as the merges would leave it after a while
    return time.monotonic() - started


def timed(fn) -> tuple[float, object]:
    started = time.monotonic()
    result = fn()
    return time.monotonic() - started, result


def main() -> int:
    settings.apply_defaults()
    from marketdata_assets.datasets.slices import SliceKey
    from marketdata_assets.quality.continuity import find_holes
    from marketdata_assets.resources import ClickHouseResource

    workdir = settings.state_dir() / "bench" / "trade_id_holes_load_ids"  # not the data of before: no figures
    manifest = {
        "day": DAY.isoformat(),
        "instruments": INSTRUMENTS,
        "trades": TRADES,
        "holed": HOLED,
        "holes": list(HOLE_SIZES),
    }
    kept = KeptData(workdir, manifest)
    store = ClickHouseResource(dsn=f"chdb://{workdir / 'chdb'}", database=DATABASE, lock_timeout_s=60)
    slices = [SliceKey("trades", VENUE, s, DAY) for s in INSTRUMENTS]
    expected = {i: holes_of(i) for i in range(len(INSTRUMENTS))}
    start = datetime(DAY.year, DAY.month, DAY.day, tzinfo=UTC)
    day_filter = "ts >= {start:DateTime64(6, 'UTC')} AND ts < {start:DateTime64(6, 'UTC')} + INTERVAL 1 DAY"
    runs = []
    try:
        with store.get_client() as client:
            if kept.fresh:
                print(f"generating {len(INSTRUMENTS)} x {TRADES:,} trades of {DAY} ...", flush=True)
                generated = generate(client)
                kept.done()
                print(f"generated in {generated:.0f} s")
            total = int(client.command(f"SELECT count() FROM `{DATABASE}`.trades"))
            disk_mb = (
                int(
                    client.command(
                        "SELECT sum(bytes_on_disk) FROM system.parts WHERE database = {db:String} "
                        "AND table = 'trades' AND active",
                        parameters={"db": DATABASE},
                    )
                )
                / 1e6
            )
            print(f"{total:,} rows, {disk_mb:,.0f} MB on disk; {HOLED} instrument(s) with holes")

            def count(active: bool):
                where = day_filter + (
                    f" AND load_id IN (SELECT load_id FROM `{DATABASE}`.active_loads "
                    "WHERE dataset = 'trades')"
                    if active
                    else ""
                )
                return client.query(
                    f"SELECT instrument, count() FROM `{DATABASE}`.trades WHERE {where} GROUP BY instrument",
                    parameters={"start": start},
                ).result_rows

            def window_everywhere():
                return client.query(
                    "SELECT load_id, countIf(seq > prev + 1), ifNull(sumIf(seq - prev - 1, seq > prev + 1), "
                    "0) FROM (SELECT load_id, seq, lagInFrame(seq) OVER (PARTITION BY load_id ORDER BY seq "
                    f"ASC ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) AS prev FROM `{DATABASE}`.trades WHERE "
                    f"{day_filter} AND load_id IN (SELECT load_id FROM `{DATABASE}`.active_loads WHERE "
                    "dataset = 'trades')) GROUP BY load_id",
                    parameters={"start": start},
                ).result_rows

            for rep in range(1, REPEAT + 1):
                run: dict = {"repetition": rep}
                run["count_s"], counted = timed(lambda: count(False))
                run["count_active_s"], _ = timed(lambda: count(True))
                run["scan_ids_s"], _ = timed(
                    lambda: client.query(
                        (
                            f"SELECT instrument, max(seq) FROM `{DATABASE}`.trades WHERE {day_filter} GROUP "
                            "BY instrument"
                        ),
                        parameters={"start": start},
                    )
                )
                run["check_s"], found = timed(lambda: find_holes(client, DATABASE, slices))
                run["check_clean_only_s"], _ = timed(lambda: find_holes(client, DATABASE, slices[HOLED:]))
                run["check_holed_only_s"], _ = timed(lambda: find_holes(client, DATABASE, slices[:HOLED]))
                run["window_everywhere_s"], windowed = timed(window_everywhere)
                for index, key in enumerate(slices):
                    ids = found[f"{DAY}|{VENUE}:{key.instrument}"]
                    got = [(h.first_missing, h.last_missing) for h in ids.holes]
                    if got != expected[index] or ids.missing != sum(
                        hi - lo + 1 for lo, hi in expected[index]
                    ):
                        raise RuntimeError(
                            f"{key}: the check found {got} ({ids.missing} ids), expected {expected[index]}"
                        )
                by_window = {int(r[0]): (int(r[1]), int(r[2])) for r in windowed}  # the window: the old way
                if any(by_window.get(f.load_id, (0, 0)) != (f.ranges, f.missing) for f in found.values()):
                    raise RuntimeError(
                        "the check and the window over every slice disagree on a slice's holes"
                    )
                if sum(n for _, n in counted) != total or sum(int(r[2]) for r in windowed) != sum(
                    hi - lo + 1 for h in expected.values() for lo, hi in h
                ):
                    raise RuntimeError("the count or the window over every slice disagrees with the data")
                for key in (
                    "count_active_s",
                    "scan_ids_s",
                    "check_s",
                    "check_clean_only_s",
                    "check_holed_only_s",
                    "window_everywhere_s",
                ):
                    run[key.replace("_s", "_over_count")] = round(run[key] / run["count_s"], 1)
                run = {k: round(v, 3) if isinstance(v, float) else v for k, v in run.items()}
                run["load_average"] = [round(x, 2) for x in os.getloadavg()]
                runs.append(run)
                print(
                    f"run {rep}: count {run['count_s']:.2f} s (active loads {run['count_active_s']:.2f} s, "
                    f"scan of the ids {run['scan_ids_s']:.2f} s) | "
                    f"check {run['check_s']:.2f} s = {run['check_over_count']}x (clean slices "
                    f"{run['check_clean_only_s']:.2f} s, holed {run['check_holed_only_s']:.2f} s) | window "
                    f"over every slice {run['window_everywhere_s']:.2f} s = "
                    f"{run['window_everywhere_over_count']}x (load average {run['load_average'][0]})",
                    flush=True,
                )
    finally:
        store.close()

    def median(key: str) -> float:
        return round(statistics.median(r[key] for r in runs), 3)

    report = {
        "day": DAY.isoformat(),
        "instruments": len(INSTRUMENTS),
        "trades_per_instrument": TRADES,
        "rows": total,
        "disk_mb": round(disk_mb),
        "holed_instruments": HOLED,
        "hole_sizes": HOLE_SIZES,
        "repetitions": REPEAT,
        "median": {k: median(k) for k in runs[0] if k not in ("repetition", "load_average")},
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "runs": runs,
        "at": datetime.now().isoformat(timespec="seconds"),
    }
    m = report["median"]
    print(
        f"median of {REPEAT}: count {m['count_s']} s, over the active loads {m['count_active_s']} s; check "
        f"{m['check_s']} s ({m['check_over_count']}x the count); window over every slice "
        f"{m['window_everywhere_s']} s ({m['window_everywhere_over_count']}x); peak RSS "
        f"{report['peak_rss_mb']} MB"
    )
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "trade_id_holes.json").write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
