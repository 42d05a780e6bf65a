"""Minute bars into TimescaleDB (native server): the project's load vs `psql \\copy`, and the monthly
K-line refresh vs the plain GROUP BY it materializes.

About 6 million rows: 100 codes x one year of trading days x 240 one-minute bars, one CSV per
code in a layout both readers take (`datetime,code,open,high,low,close,volume,money`). The same
files go through `psql \\copy` (the ceiling) and through the project's stock_1min_qfq asset
(landing index, sha256, parse with Polars, binary COPY, etl_metadata), into the same hypertable
definition, on the same server, in one run. Targets (issue 5, tightened since): load >= 1.2x
\\copy; refresh <= 1.0x the plain query. Each figure is printed with the load average, each load with
the unique index's size. Old code: run it from another checkout (cwd and PYTHONPATH that tree).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import psycopg

from marketdata_assets.core import settings

DB = "marketdata_bench"
CODES = 100
YEAR = 2025
WORKERS = int(os.environ.get("BENCH_WORKERS", "4"))


def trading_days(year: int) -> list[date]:
    day, days = date(year, 1, 1), []
    while day.year == year:
        if day.weekday() < 5:
            days.append(day)
        day += timedelta(days=1)
    return days[:250]


def minutes_of_day() -> np.ndarray:
    """Offsets in minutes from midnight of the 240 bar times (09:31-11:30, 13:01-15:00)."""
    morning = np.arange(9 * 60 + 31, 11 * 60 + 31)
    afternoon = np.arange(13 * 60 + 1, 15 * 60 + 1)
    return np.concatenate([morning, afternoon])


def generate(directory: Path) -> tuple[list[Path], int]:
    """One CSV per code (kept between runs: same seed, same bytes)."""
    directory.mkdir(parents=True, exist_ok=True)
    days = np.array([np.datetime64(d, "m") for d in trading_days(YEAR)])
    times = (days[:, None] + minutes_of_day()[None, :].astype("timedelta64[m]")).ravel()
    paths, rows = [], 0
    for i in range(CODES):
        code = f"{600000 + i}.SH" if i % 2 == 0 else f"{i:06d}.SZ"
        path = directory / f"{code}.csv"
        paths.append(path)
        rows += len(times)
        if path.exists():
            continue
        rng = np.random.default_rng(i)
        close = np.round(10 + i / 10 + np.cumsum(rng.normal(0, 0.01, len(times))), 2)
        open_ = np.round(np.concatenate([[close[0]], close[:-1]]), 2)
        high = np.round(np.maximum(open_, close) + rng.uniform(0, 0.02, len(times)), 2)
        low = np.round(np.minimum(open_, close) - rng.uniform(0, 0.02, len(times)), 2)
        volume = rng.integers(1, 5000, len(times)) * 100.0
        amount = np.round(volume * (open_ + close) / 2, 2)
        frame = pl.DataFrame(
            {
                "datetime": times.astype("datetime64[us]"),
                "code": code,
                "open": open_,
                "high": high,
                "low": low,
                "close": close,
                "volume": volume,
                "money": amount,
            }
        )
        frame.write_csv(path, datetime_format="%Y-%m-%d %H:%M:%S")
    return paths, rows


def connect(**kw) -> psycopg.Connection:
    return psycopg.connect(
        host=settings.get("TIMESCALE_HOST"),
        port=settings.get("TIMESCALE_PORT"),
        user=settings.get("TIMESCALE_USER"),
        password=settings.get("TIMESCALE_PASSWORD"),
        dbname=DB,
        **kw,
    )


def fresh_database() -> None:
    with psycopg.connect(
        host=settings.get("TIMESCALE_HOST"),
        port=settings.get("TIMESCALE_PORT"),
        user=settings.get("TIMESCALE_USER"),
        password=settings.get("TIMESCALE_PASSWORD"),
        dbname="postgres",
        autocommit=True,
    ) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB}")
    with connect(autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")


def fresh_table() -> None:
    from marketdata_assets.stores.timescale.minute_table import ensure_minute_table

    with connect(autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS stock_1min_qfq CASCADE")
        conn.execute(
            "DROP TABLE IF EXISTS etl_metadata, minute_bar_landing_files, stock_monthly_kline CASCADE"
        )
    with connect() as conn:
        ensure_minute_table(conn)
        conn.commit()


def loadavg() -> str:
    """The 1, 5 and 15 minute load averages, printed beside each figure."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def index_mb() -> int:
    """The unique index's size over all chunks (rows written in its order leave its pages full)."""
    with connect() as conn:
        size = conn.execute("SELECT hypertable_index_size('stock_1min_qfq_code_time')").fetchone()[0]
    return round(size / 1e6)


def count_rows() -> int:
    with connect() as conn:
        return conn.execute("SELECT count(*) FROM stock_1min_qfq").fetchone()[0]


def psql_copy(paths: list[Path]) -> float:
    script = "".join(
        f"\\copy stock_1min_qfq (time, code, open, high, low, close, volume, amount) "
        f"FROM '{p}' WITH (FORMAT csv, HEADER true)\n"
        for p in paths
    )
    started = time.monotonic()
    subprocess.run(
        [
            "psql",
            "-h",
            settings.get("TIMESCALE_HOST"),
            "-p",
            settings.get("TIMESCALE_PORT"),
            "-U",
            settings.get("TIMESCALE_USER"),
            "-d",
            DB,
            "-v",
            "ON_ERROR_STOP=1",
            "-q",
        ],
        input=script,
        env={**os.environ, "PGPASSWORD": settings.get("TIMESCALE_PASSWORD") or ""},
        text=True,
        check=True,
        capture_output=True,
    )
    return time.monotonic() - started


def project_load(landing: Path, workers: int) -> tuple[float, dict]:
    import dagster as dg

    os.environ["MINUTE_BARS_LANDING_DIR"] = str(landing)
    os.environ["TIMESCALE_DB"] = DB
    from marketdata_assets.defs.equities.minute_bars import stock_1min_qfq
    from marketdata_assets.resources import build_resources

    started = time.monotonic()
    result = dg.materialize(
        [stock_1min_qfq],
        resources=build_resources(),
        run_config={"ops": {"stock_1min_qfq": {"config": {"workers": workers}}}},
        tags={
            "dagster/asset_partition_range_start": f"{YEAR}-01-01",
            "dagster/asset_partition_range_end": f"{YEAR}-12-01",
        },
    )
    seconds = time.monotonic() - started
    (event, *_) = result.get_asset_materialization_events()
    metadata = {k: v.value for k, v in event.materialization.metadata.items() if k != "files"}
    return seconds, metadata


def refresh_vs_plain() -> dict:
    from marketdata_assets.stores.timescale import kline

    with connect() as conn:
        kline.ensure_monthly_kline(conn)
        conn.commit()
        plain_started = time.monotonic()
        # Fetch every row: a count(*) around it would let Postgres skip the first()/last() aggregates.
        groups = len(conn.execute(kline.MONTHLY_SELECT).fetchall())
        plain = time.monotonic() - plain_started
        conn.rollback()
        refreshed = kline.force_backfill(conn)
    return {
        "plain_group_by_s": round(plain, 2),
        "refresh_s": refreshed.seconds,
        "groups": groups,
        "rows_in_window": refreshed.rows_in_window,
        "path": refreshed.path,
        "refresh_over_plain": round(refreshed.seconds / plain, 2),
    }


def main() -> int:
    settings.apply_defaults()
    data = settings.state_dir() / "bench" / "minute_csv"
    started = time.monotonic()
    paths, rows = generate(data)
    size_mb = sum(p.stat().st_size for p in paths) / 1e6
    print(
        f"data: {len(paths)} files, {rows:,} rows, {size_mb:.0f} MB ({time.monotonic() - started:.1f} s to "
        "prepare)"
    )
    fresh_database()

    fresh_table()
    copy_s = psql_copy(paths)
    assert count_rows() == rows
    copy_index_mb = index_mb()
    print(
        f"psql \\copy:      {copy_s:6.1f} s  {rows / copy_s:>10,.0f} rows/s  (index {copy_index_mb} MB; "
        f"load average {loadavg()})"
    )

    fresh_table()
    load_s, meta = project_load(data, workers=WORKERS)
    loaded = count_rows()
    assert loaded == rows, (loaded, rows)
    print(
        f"project load:    {load_s:6.1f} s  {rows / load_s:>10,.0f} rows/s  ({meta['write_path']}, "
        f"{WORKERS} workers; index {index_mb()} MB; load average {loadavg()})"
    )

    refresh = refresh_vs_plain()
    print(
        f"plain GROUP BY:  {refresh['plain_group_by_s']:6.2f} s  ({refresh['groups']} monthly rows; "
        f"load average {loadavg()})"
    )
    print(
        f"K-line refresh:  {refresh['refresh_s']:6.2f} s  ({refresh['path']} path; load average {loadavg()})"
    )

    report = {
        "rows": rows,
        "files": len(paths),
        "csv_mb": round(size_mb),
        "psql_copy_s": round(copy_s, 2),
        "psql_copy_rows_per_s": round(rows / copy_s),
        "project_load_s": round(load_s, 2),
        "project_rows_per_s": round(rows / load_s),
        "load_over_copy": round(copy_s / load_s, 2),
        "index_mb_copy": copy_index_mb,
        "index_mb_load": index_mb(),
        **refresh,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "loadavg": Path("/proc/loadavg").read_text().split()[:3],
        "at": datetime.now().isoformat(timespec="seconds"),
    }
    print(
        f"load speed vs \\copy: {report['load_over_copy']}x (target >= 1.2); "
        f"refresh vs plain query: {report['refresh_over_plain']}x (target <= 1.0); "
        f"peak RSS {report['peak_rss_mb']} MB; load average {' '.join(report['loadavg'])}"
    )
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "bars_load.json").write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
