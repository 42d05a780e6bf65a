"""Daily factors (ingest.factors, computed inside ClickHouse) against a plain count of the same trades.

One UTC day (2025-01-15) of 20 Binance instruments, BENCH_FACTOR_TRADES trades each (``--trades``; default
10,000,000: 200 million rows), generated inside ClickHouse by bench.trade_id_holes.generate (no holes), and
for every instrument the other factor inputs, written with stores.clickhouse.writer.write_slices: its 1-minute
bars (made from its trades by the engine), a 10-level book snapshot every minute, three funding
settlements, mark and index 1-minute bars. Kept between runs in
``$MARKETDATA_STATE_DIR/bench/factors/<trades>`` (a manifest says what it holds).

Timed, three repetitions (BENCH_REPEAT), in one process on the embedded engine:

- count: ``SELECT instrument, count(), sum(quantity) FROM trades WHERE venue and day GROUP BY instrument``
  (the plain table), and the same over ``trades_v`` (the active loads, what the factors read);
- many: ``compute_factors_many`` of the 20 instruments (one query, GROUP BY instrument), and the same with
  the trades factors only (the cost of the 200 million rows apart from the small inputs);
- each: ``compute_factors`` of each instrument in turn (20 queries over the range views).

The two ways must agree (rel 1e-9), every factor must be non-NULL, and trade_count / volume must equal
the count (else exit 1). Results: bench/results/factors.json.
Run: ``scripts/with-env .venv/bin/python -m bench factors`` (or ``python -m bench.factors --trades 1000000``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench import KeptData
from bench.ticks_load import DAY, INSTRUMENTS
from bench.trade_id_holes import VENUE, generate
from marketdata_assets.core import settings

TRADES = int(os.environ.get("BENCH_FACTOR_TRADES", "10000000"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "3"))
DATABASE = "bench_factors"
LEVELS = 10
VERSION = 2  # of the generated data: a change regenerates it
START = datetime(DAY.year, DAY.month, DAY.day, tzinfo=UTC)


def generate_inputs(client) -> None:
    """The small inputs of every instrument, through the writer (one write per dataset)."""
    import numpy as np
    import polars as pl

    from marketdata_assets.datasets import frames
    from marketdata_assets.stores.clickhouse import writer

    bars = pl.from_arrow(
        client.query_arrow(
            "SELECT toDateTime64(toStartOfInterval(ts, INTERVAL 1 MINUTE), 6, 'UTC') AS minute, venue, "
            "instrument, argMin(price, ts) AS open, max(price) AS high, min(price) AS low, "
            "argMax(price, ts) AS close, sum(quantity) AS volume, sum(amount) AS amount, count() AS trades "
            f"FROM `{DATABASE}`.trades_v GROUP BY venue, instrument, minute"
        )
    )
    bars = bars.rename({"minute": "ts"}).select([pl.col(c).cast(t) for c, t in frames.BARS_SCHEMA.items()])
    bars = bars.sort("instrument", "ts")
    rng = np.random.default_rng(7)
    n = bars.height
    premium = pl.Series(1 + 0.0002 + 0.0001 * rng.standard_normal(n))  # mark = index * premium (per minute)
    mark = bars.select(
        "ts",
        "venue",
        "instrument",
        *[(pl.col(c) * premium).alias(c) for c in ("open", "high", "low", "close")],
    )
    index = bars.select(list(frames.PRICE_BARS_SCHEMA))
    sides = pl.DataFrame({"side": ["bid", "ask"]}).join(
        pl.DataFrame({"level": range(LEVELS)}, schema={"level": pl.Int32}), how="cross"
    )
    levels = bars.select("ts", "venue", "instrument", "close").join(sides, how="cross")
    k = levels.height
    sign = pl.when(pl.col("side") == "bid").then(-1.0).otherwise(1.0)
    step = (pl.col("level") + 1) * 0.01 * (1 + pl.Series(rng.random(k)))
    books = levels.with_columns(
        (pl.col("close") + sign * step).alias("price"),
        pl.Series("quantity", 0.1 + rng.random(k) * 5),
        pl.lit(None, pl.Int64).alias("update_id"),
    ).select(list(frames.BOOKS_SCHEMA))
    funding = pl.DataFrame(
        [
            (START + timedelta(hours=h), VENUE, s, float(rng.normal(0.0001, 0.00005)), 8.0, None, None, None)
            for s in INSTRUMENTS
            for h in (0, 8, 16)
        ],
        schema=frames.FUNDING_SCHEMA,
        orient="row",
    ).with_columns(pl.col("rate").alias("rate_8h"))
    for dataset, frame in (
        ("bars_1m", bars),
        ("books", books),
        ("funding", funding),
        ("mark_bars_1m", mark),
        ("index_bars_1m", index),
    ):
        writer.write_slices(client, DATABASE, dataset, frame, VENUE, DAY, "bench", instruments=INSTRUMENTS)
        print(f"  {dataset}: {frame.height:,} rows", flush=True)


def timed(fn) -> tuple[float, object]:
    started = time.monotonic()
    result = fn()
    return time.monotonic() - started, result


def check(many, each, counted) -> None:
    """The two ways agree, nothing is NULL, trade_count and volume are the count's."""
    a = {(r["instrument"], r["factor"]): r["value"] for r in many.iter_rows(named=True)}
    b = {(r["instrument"], r["factor"]): r["value"] for r in each.iter_rows(named=True)}
    if set(a) != set(b) or any(v is None for v in a.values()):
        raise RuntimeError(f"missing or NULL factors: {sorted(k for k, v in a.items() if v is None)[:5]}")
    bad = [k for k in a if not math.isclose(a[k], b[k], rel_tol=1e-9, abs_tol=1e-12)]
    if bad:
        raise RuntimeError(f"one query and one per instrument disagree: {[(k, a[k], b[k]) for k in bad[:5]]}")
    for instrument, rows, volume in counted:
        if a[(instrument, "trade_count")] != rows or not math.isclose(
            a[(instrument, "volume")], volume, rel_tol=1e-9
        ):
            raise RuntimeError(
                f"{instrument}: trade_count/volume {a[(instrument, 'trade_count')]}/"
                f"{a[(instrument, 'volume')]} but the count says {rows}/{volume}"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.factors")
    parser.add_argument(
        "--trades", type=int, default=TRADES, help="trades per instrument (default %(default)s)"
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "factors.json")
    args = parser.parse_args(argv or [])
    settings.apply_defaults()
    from marketdata_assets.ingest import factors as fx
    from marketdata_assets.resources import ClickHouseResource

    workdir = settings.state_dir() / "bench" / "factors" / str(args.trades)  # a quick run keeps the full data
    manifest = {"day": DAY.isoformat(), "instruments": INSTRUMENTS, "trades": args.trades, "version": VERSION}
    kept = KeptData(workdir, manifest)
    store = ClickHouseResource(dsn=f"chdb://{workdir / 'chdb'}", database=DATABASE, lock_timeout_s=60)
    trades_only = [f for f in fx.FACTORS if f.input == "trades"]
    day_filter = (
        "venue = {venue:String} AND ts >= {start:DateTime64(6, 'UTC')} "
        "AND ts < {start:DateTime64(6, 'UTC')} + INTERVAL 1 DAY"
    )
    params = {"venue": VENUE, "start": START}
    runs = []
    try:
        with store.get_client() as client:
            if kept.fresh:
                print(f"generating {len(INSTRUMENTS)} x {args.trades:,} trades of {DAY} ...", flush=True)
                started = time.monotonic()
                generate(client, DATABASE, args.trades, holed=0)
                generate_inputs(client)
                kept.done()
                print(f"generated in {time.monotonic() - started:.0f} s")
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
            print(f"{total:,} trades, {disk_mb:,.0f} MB on disk")

            def count(table: str):
                return client.query(
                    f"SELECT instrument, count(), sum(quantity) FROM `{DATABASE}`.{table} "
                    f"WHERE {day_filter} GROUP BY instrument",
                    parameters=params,
                ).result_rows

            def each():
                import polars as pl

                return pl.concat([fx.compute_factors(client, DATABASE, VENUE, s, DAY) for s in INSTRUMENTS])

            for rep in range(1, REPEAT + 1):
                run: dict = {"repetition": rep}
                run["count_s"], counted = timed(lambda: count("trades"))
                run["count_active_s"], _ = timed(lambda: count("trades_v"))
                run["many_s"], many = timed(
                    lambda: fx.compute_factors_many(client, DATABASE, VENUE, INSTRUMENTS, DAY)
                )
                run["many_trades_only_s"], _ = timed(
                    lambda: fx.compute_factors_many(
                        client, DATABASE, VENUE, INSTRUMENTS, DAY, factors=trades_only
                    )
                )
                run["each_s"], one_by_one = timed(each)
                check(many, one_by_one, counted)
                for key in ("count_active_s", "many_s", "many_trades_only_s", "each_s"):
                    run[key.replace("_s", "_over_count")] = round(run[key] / run["count_s"], 1)
                run = {k: round(v, 3) if isinstance(v, float) else v for k, v in run.items()}
                runs.append(run)
                print(
                    f"run {rep}: count {run['count_s']:.2f} s (active loads {run['count_active_s']:.2f} s)"
                    f" | factors, one query {run['many_s']:.2f} s = {run['many_over_count']}x (trades "
                    f"factors only {run['many_trades_only_s']:.2f} s) | one query per instrument "
                    f"{run['each_s']:.2f} s = {run['each_over_count']}x",
                    flush=True,
                )
    finally:
        store.close()

    def median(key: str) -> float:
        return round(statistics.median(r[key] for r in runs), 3)

    report = {
        "day": DAY.isoformat(),
        "instruments": len(INSTRUMENTS),
        "trades_per_instrument": args.trades,
        "rows": total,
        "disk_mb": round(disk_mb),
        "factors": len(fx.FACTORS),
        "repetitions": REPEAT,
        "median": {k: median(k) for k in runs[0] if k != "repetition"},
        "rows_per_s_many": round(total / median("many_s")),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "runs": runs,
        "at": datetime.now().isoformat(timespec="seconds"),
    }
    m = report["median"]
    print(
        f"median of {REPEAT}: count {m['count_s']} s (active loads {m['count_active_s']} s); factors of "
        f"{len(INSTRUMENTS)} instruments in one query {m['many_s']} s ({m['many_over_count']}x the count; "
        f"trades factors only {m['many_trades_only_s']} s), one query per instrument {m['each_s']} s "
        f"({m['each_over_count']}x); peak RSS {report['peak_rss_mb']} MB"
    )
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
