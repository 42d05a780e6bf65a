"""Proving a month of minute bars complete, at market scale: the completeness check, the K-line
coverage query and the unit (x100) check against a plain ``SELECT code, count(*) ... GROUP BY code``
over the same rows.

One month (September 2026: 21 XSHG trading days) of 5,000 A-share codes x 240 bars = 25.2M rows,
generated in SQL with generate_series in a schema of its own (``bench_completeness``) of the bench
database on the native TimescaleDB, with planted faults: holes (minutes missing), suspended
code-days, off-session bars (12:00, the Mid-Autumn holiday), a pence-for-pounds (x100) stretch that
reverts, a genuine x100 move that does not, and codes without amount (all their rows dropped by the
K-line's cleaning). The schema is dropped at the end. Each query runs once to warm the cache,
then `REPEAT` rounds run them all in turn (a load on the shared machine then hits all alike); the
report gives median seconds and the median per-round ratio to the plain GROUP BY.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import sys
import time
from datetime import date, datetime, timedelta
from pathlib import Path

import psycopg
from psycopg import sql

from bench.bars_load import DB, connect
from marketdata_assets.core import settings

SCHEMA = "bench_completeness"
CODES = int(os.environ.get("BENCH_CODES", "5000"))
MONTH = date(2026, 9, 1)
REPEAT = int(os.environ.get("BENCH_REPEAT", "3"))
KEEP = os.environ.get("BENCH_KEEP") == "1"  # leave the schema for EXPLAIN; the next run with it reuses it

# Planted faults: (what, code index)
HOLE_CODES = range(40)  # 10:01-10:05 missing on the 3rd trading day
SUSPENDED_CODES = range(100, 130)  # no bar on the 10th trading day
OFF_SESSION_CODE = 200  # a bar at 12:00
HOLIDAY_CODE = 201  # a day of bars on 2026-09-25 (Mid-Autumn)
UNIT_CODE = 300  # x100 from the 5th trading day 10:00 to the 6th 14:00
GENUINE_CODE = 301  # x100 from the 12th trading day on, never back
NO_AMOUNT_CODES = range(400, 403)  # amount NULL: no K-line row


def ensure_database() -> None:
    with psycopg.connect(
        host=settings.get("TIMESCALE_HOST"),
        port=settings.get("TIMESCALE_PORT"),
        user=settings.get("TIMESCALE_USER"),
        password=settings.get("TIMESCALE_PASSWORD"),
        dbname="postgres",
        autocommit=True,
    ) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB,)).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DB)))
    with connect(autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")


def code_of(i: int) -> str:
    return f"{600000 + i:06d}.SH" if i % 2 == 0 else f"{i:06d}.SZ"


GENERATE = """
INSERT INTO stock_1min_qfq (time, code, name, open, high, low, close, volume, amount)
SELECT t, c.code, NULL, p, p + 0.02, p - 0.02, p + 0.01, v, v * p
FROM (SELECT i, CASE WHEN i %% 2 = 0 THEN lpad((600000 + i)::text, 6, '0') || '.SH'
                     ELSE lpad(i::text, 6, '0') || '.SZ' END AS code
      FROM generate_series(0, %(codes)s - 1) AS i) c
CROSS JOIN LATERAL (
    SELECT d.day + m.minute AS t,
           (5 + c.i %% 200 + ((m.k * 7 + d.n * 13 + c.i) %% 100) / 100.0)::float8 AS p,
           (100 * (1 + (m.k + c.i) %% 50))::float8 AS v
    FROM unnest(%(days)s::timestamp[]) WITH ORDINALITY AS d(day, n)
    CROSS JOIN (SELECT make_interval(mins => s) AS minute, row_number() OVER () AS k
                FROM (SELECT generate_series(9 * 60 + 31, 11 * 60 + 30) UNION ALL
                      SELECT generate_series(13 * 60 + 1, 15 * 60)) AS g(s)) m
) b"""


def prepare(conn: psycopg.Connection, days: list[date]) -> int:
    """The schema with the month's bars and planted faults, and the month's K-line."""
    from marketdata_assets.stores.timescale import kline, minute_table

    conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(SCHEMA)))
    conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(SCHEMA)))
    conn.execute(sql.SQL("SET search_path TO {}, public").format(sql.Identifier(SCHEMA)))
    conn.execute(minute_table.MINUTE_TABLE_DDL.format(table="stock_1min_qfq"))
    conn.execute(
        "SELECT create_hypertable('stock_1min_qfq', by_range('time', INTERVAL '1 month'), "
        "create_default_indexes => false)"
    )
    conn.commit()
    started = time.monotonic()
    conn.execute(GENERATE, {"codes": CODES, "days": [datetime(d.year, d.month, d.day) for d in days]})
    conn.commit()
    print(f"generated {CODES:,} codes x {len(days)} days in {time.monotonic() - started:.0f} s", flush=True)

    def at(n: int, hour: int, minute: int = 0) -> datetime:
        return datetime(days[n].year, days[n].month, days[n].day, hour, minute)

    times_100 = (
        "UPDATE stock_1min_qfq SET open = open * 100, high = high * 100, low = low * 100, close = close * 100"
    )
    copy_rows = (
        "INSERT INTO stock_1min_qfq SELECT time + %s, code, name, open, high, low, close, volume, amount "
        "FROM stock_1min_qfq"
    )
    faults = [
        (
            "DELETE FROM stock_1min_qfq WHERE code = ANY(%s) AND time BETWEEN %s AND %s",
            ([code_of(i) for i in HOLE_CODES], at(2, 10, 1), at(2, 10, 5)),
        ),
        (
            "DELETE FROM stock_1min_qfq WHERE code = ANY(%s) AND time >= %s AND time < %s",
            ([code_of(i) for i in SUSPENDED_CODES], at(9, 0), at(10, 0)),
        ),
        (
            copy_rows + " WHERE code = %s AND time = %s",
            (timedelta(minutes=30), code_of(OFF_SESSION_CODE), at(4, 11, 30)),
        ),
        (
            copy_rows + " WHERE code = %s AND time >= %s AND time < %s",
            (date(2026, 9, 25) - days[0], code_of(HOLIDAY_CODE), at(0, 0), at(1, 0)),
        ),
        (
            times_100 + " WHERE code = %s AND time >= %s AND time < %s",
            (code_of(UNIT_CODE), at(4, 10), at(5, 14)),
        ),
        (times_100 + " WHERE code = %s AND time >= %s", (code_of(GENUINE_CODE), at(11, 0))),
        (
            "UPDATE stock_1min_qfq SET amount = NULL WHERE code = ANY(%s)",
            ([code_of(i) for i in NO_AMOUNT_CODES],),
        ),
    ]
    for statement, params in faults:
        conn.execute(statement, params)
    conn.commit()
    started = time.monotonic()
    conn.execute("CREATE UNIQUE INDEX stock_1min_qfq_code_time ON stock_1min_qfq (code, time DESC)")
    conn.execute("ANALYZE stock_1min_qfq")
    conn.commit()
    print(f"indexed and analyzed in {time.monotonic() - started:.0f} s", flush=True)
    kline.ensure_monthly_kline(conn)
    conn.commit()
    refreshed = kline.refresh_window(conn, MONTH, date(2026, 10, 1))
    print(f"K-line refreshed in {refreshed.seconds:.0f} s ({refreshed.rows_in_window:,} rows)", flush=True)
    return conn.execute("SELECT count(*) FROM stock_1min_qfq").fetchone()[0]


def rounds(queries: dict, repeat: int = REPEAT) -> tuple[dict, dict, dict]:
    """Each query once to warm the cache, then `repeat` rounds running every query in turn, so
    that a load on the shared machine hits all of them alike. (median seconds, median ratio to the
    first query within a round, last result) per query."""
    results = {name: run() for name, run in queries.items()}
    seconds: dict[str, list[float]] = {name: [] for name in queries}
    for _ in range(repeat):
        for name, run in queries.items():
            started = time.monotonic()
            results[name] = run()
            seconds[name].append(time.monotonic() - started)
    base = next(iter(queries))
    medians = {name: statistics.median(s) for name, s in seconds.items()}
    ratios = {
        name: statistics.median(s / b for s, b in zip(seconds[name], seconds[base])) for name in queries
    }
    for name, values in seconds.items():
        print(
            f"{name:<26} median {medians[name]:6.2f} s  ({', '.join(f'{v:.2f}' for v in values)})"
            f"  {ratios[name]:.2f}x",
            flush=True,
        )
    return medians, ratios, results


def main() -> int:
    from marketdata_assets.core import calendars
    from marketdata_assets.quality.minute_bars import completeness, kline_coverage, units

    settings.apply_defaults()
    days = calendars.trading_days("SSE", MONTH, date(2026, 9, 30))
    ensure_database()
    report: dict = {"codes": CODES, "month": f"{MONTH:%Y-%m}", "trading_days": len(days)}
    with connect() as conn:
        try:
            if (
                KEEP
                and conn.execute(
                    "SELECT to_regclass(%s) IS NOT NULL", (f"{SCHEMA}.stock_monthly_kline",)
                ).fetchone()[0]
            ):
                conn.execute(sql.SQL("SET search_path TO {}, public").format(sql.Identifier(SCHEMA)))
                report["rows"] = conn.execute("SELECT count(*) FROM stock_1min_qfq").fetchone()[0]
                conn.commit()
            else:
                report["rows"] = prepare(conn, days)
            print(f"{report['rows']:,} rows in {SCHEMA}.stock_1min_qfq", flush=True)
            month = (MONTH, date(2026, 10, 1))
            plain_sql = (
                "SELECT code, count(*) FROM stock_1min_qfq "
                "WHERE time >= %s::timestamp AND time < %s::timestamp GROUP BY code"
            )
            medians, ratios, results = rounds(
                {
                    "plain GROUP BY code": lambda: conn.execute(plain_sql, month).fetchall(),
                    "completeness check": lambda: completeness.check_month(conn, MONTH),
                    "K-line coverage": lambda: kline_coverage.check_month(conn, MONTH),
                    "unit check (minute bars)": lambda: units.check_minutes(conn, MONTH),
                    "unit check (K-line)": lambda: units.check_kline(conn, MONTH),
                }
            )
            found, coverage, stretches = (
                results[k] for k in ("completeness check", "K-line coverage", "unit check (minute bars)")
            )
            report.update(
                {
                    "plain_group_by_s": round(medians["plain GROUP BY code"], 2),
                    "plain_groups": len(results["plain GROUP BY code"]),
                    "completeness_s": round(medians["completeness check"], 2),
                    "completeness_over_plain": round(ratios["completeness check"], 2),
                    "coverage_s": round(medians["K-line coverage"], 2),
                    "coverage_over_plain": round(ratios["K-line coverage"], 2),
                    "units_s": round(medians["unit check (minute bars)"], 2),
                    "units_over_plain": round(ratios["unit check (minute bars)"], 2),
                    "kline_units_s": round(medians["unit check (K-line)"], 3),
                    "found": {
                        "severity": found.severity,
                        "partial_code_days": len(found.partial),
                        "missing_minutes": found.missing_minutes,
                        "suspended_code_days": len(found.suspended),
                        "off_session_bars": found.off_session_bars,
                        "kline_missing_codes": [m.code for m in coverage.missing],
                        "unit_stretches": [(s.code, str(s.first), str(s.last)) for s in stretches.stretches],
                    },
                }
            )
        finally:
            conn.rollback()
            if not KEEP:
                conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(SCHEMA)))
                conn.commit()
    expected = {
        "partial_code_days": len(HOLE_CODES),
        "missing_minutes": 5 * len(HOLE_CODES),
        "suspended_code_days": len(SUSPENDED_CODES),
        "off_session_bars": 1 + 240,
    }
    ok = (
        all(report["found"][k] == v for k, v in expected.items())
        and report["found"]["kline_missing_codes"] == sorted(code_of(i) for i in NO_AMOUNT_CODES)
        and [s[0] for s in report["found"]["unit_stretches"]] == [code_of(UNIT_CODE)]
    )
    report["planted_faults_found"] = ok
    report["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    report["loadavg"] = Path("/proc/loadavg").read_text().split()[:3]
    report["at"] = datetime.now().isoformat(timespec="seconds")
    print(
        f"completeness {report['completeness_over_plain']}x, K-line coverage "
        f"{report['coverage_over_plain']}x, unit check {report['units_over_plain']}x the plain GROUP BY; "
        f"planted faults found: {ok}; load average {' '.join(report['loadavg'])}"
    )
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "bars_completeness.json").write_text(json.dumps(report, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
