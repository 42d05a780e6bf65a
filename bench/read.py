"""The read API into Polars vs the store's own Arrow export of the same rows (issue 24: `bench read`).

Data, written into a scratch ClickHouse database of a temporary chDB data directory (the project's
table definitions, stores.clickhouse.tables.ensure_tables) and generated inside the engine
(`INSERT ... SELECT ... FROM numbers()`), each slice under a load id of its own and made active by
a row in `loads`, the load pointer, as a write does: so the reads below read active loads, through
the pointer, like every read of the real store:

- bars: a month (30 days, 2025-01) of 1-minute bars for 20 Binance instruments (864,000 bars, 600 slices);
- trades: one day (2025-01-15) of BENCH_READ_TRADES trades (10 million) of one instrument.

Per round, interleaved (the order flips each round, so load on this shared 2-core machine hits
both alike): `Reader.bars(VENUE, the 20 instruments, month)` and `Reader.trades(VENUE, instrument,
day)`, each to a Polars frame with the datasets.frames schema, against `client.query_arrow` of the
very SELECT the read runs (read.clickhouse.select_sql, same parameters): the engine's `FORMAT Arrow`
into a pyarrow Table, nothing more. Wall-clock and CPU (this process: chDB runs in it) per read;
the ratio is native seconds / read seconds, median over the rounds (BENCH_READ_ROUNDS, 5; one
warm-up round first, not counted). Target: >= 0.7 for both. Results: bench/results/read.json.
Run: `scripts/with-env .venv/bin/python -m bench read`.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from marketdata_assets.core import settings
from marketdata_assets.datasets.frames import day_window, spec_for
from marketdata_assets.read import Reader
from marketdata_assets.read import clickhouse as ch_reads
from marketdata_assets.stores.clickhouse import connection, writer
from marketdata_assets.stores.clickhouse import tables as ct

VENUE = "BINANCE"
INSTRUMENTS = [
    f"{base}USDT"
    for base in (
        "BTC",
        "ETH",
        "SOL",
        "BNB",
        "XRP",
        "DOGE",
        "ADA",
        "TRX",
        "AVAX",
        "LINK",
        "DOT",
        "TON",
        "SHIB",
        "LTC",
        "BCH",
        "UNI",
        "NEAR",
        "APT",
        "SUI",
        "PEPE",
    )
]
MONTH = [date(2025, 1, 1) + timedelta(days=i) for i in range(30)]
DAY = date(2025, 1, 15)
TRADES = int(os.environ.get("BENCH_READ_TRADES", "10000000"))
ROUNDS = int(os.environ.get("BENCH_READ_ROUNDS", "5"))
DATABASE = "bench_read"
TARGET = 0.7
RESULTS = Path(__file__).resolve().parent / "results" / "read.json"


def flip(client, code: str, slices: list[tuple[str, date, int, int]]) -> None:
    """Make the generated loads active: ONE insert into `loads`, as a write's flip."""
    now = datetime.now(UTC)
    client.insert(
        "loads",
        [[code, VENUE, i, d, load_id, rows, "bench", now] for i, d, load_id, rows in slices],
        column_names=["dataset", "venue", "instrument", "day", "load_id", "rows", "run_id", "loaded_at"],
        database=DATABASE,
    )


def generate_bars(client) -> int:
    """20 instruments x 30 days of 1-minute bars, one load per (instrument, day), one INSERT."""
    slices = [(i, d) for i in INSTRUMENTS for d in MONTH]
    ids = writer.new_load_ids(client, DATABASE, "bars", VENUE, slices)
    start = datetime(MONTH[0].year, MONTH[0].month, MONTH[0].day, tzinfo=UTC)
    # row n: instrument n // (30 * 1440), minute n % (30 * 1440) of the month; its slice's load id by index
    client.command(
        f"INSERT INTO `{DATABASE}`.bars_1m (ts, venue, instrument, open, high, low, close, volume, amount, "
        "trades, day, load_id) SELECT ts, {venue:String}, inst, p, p * 1.001, p * 0.999, p * (1 + (m % 7 - "
        "3) / 10000), 10 + m % 100, (10 + m % 100) * p, toInt64(m % 50), toDate(ts), ids[n DIV 1440 + 1] "
        "FROM (SELECT number AS n, n % {minutes:UInt32} AS m, {instruments:Array(String)}[n DIV "
        "{minutes:UInt32} + 1] AS inst, toDateTime64({start:DateTime64(6, 'UTC')}, 6, 'UTC') + "
        "toIntervalMinute(m) AS ts, 100 + (n DIV {minutes:UInt32}) * 10 + sin(m / 300) AS p, "
        "{ids:Array(UInt64)} AS ids FROM numbers({rows:UInt64}))",
        parameters={
            "venue": VENUE,
            "minutes": len(MONTH) * 1440,
            "instruments": INSTRUMENTS,
            "start": start,
            "ids": ids,
            "rows": len(slices) * 1440,
        },
    )
    flip(client, "bars", [(i, d, load_id, 1440) for (i, d), load_id in zip(slices, ids)])
    return len(slices) * 1440


def generate_trades(client) -> int:
    """One day of TRADES trades of INSTRUMENTS[0] (one slice, one load), one INSERT."""
    (load_id,) = writer.new_load_ids(client, DATABASE, "trades", VENUE, [(INSTRUMENTS[0], DAY)])
    start, _ = day_window(DAY)
    client.command(
        f"INSERT INTO `{DATABASE}`.trades (ts, venue, instrument, trade_id, price, quantity, amount, side, "
        "seq, day, load_id) SELECT toDateTime64({start:DateTime64(6, 'UTC')}, 6, 'UTC') + "
        "toIntervalMicrosecond(intDiv(number * 86400000000, {rows:UInt64})) AS ts, {venue:String}, "
        "{instrument:String}, toString(4000000000 + number), round(95000 + 500 * sin(number / 100000) + "
        "(number % 13), 2) AS p, (number % 997 + 1) / 10000 AS q, p * q, if(number % 3 = 0, 'sell', 'buy'), "
        "toInt64(4000000000 + number), {day:Date}, {load:UInt64} FROM numbers({rows:UInt64})",
        parameters={
            "start": start,
            "rows": TRADES,
            "venue": VENUE,
            "instrument": INSTRUMENTS[0],
            "day": DAY,
            "load": load_id,
        },
    )
    flip(client, "trades", [(INSTRUMENTS[0], DAY, load_id, TRADES)])
    return TRADES


def cases() -> dict:
    """name -> (read call on a Reader, dataset, instruments, start, end)."""
    month_start, month_end = day_window(MONTH[0])[0], day_window(MONTH[-1])[1]
    trades_start, trades_end = day_window(DAY)
    return {
        "bars_1m: 20 instruments x 30 days": (
            lambda r: r.bars(VENUE, INSTRUMENTS, month_start, month_end),
            "bars_1m",
            INSTRUMENTS,
            month_start,
            month_end,
        ),
        f"trades: one day, {TRADES:,} trades": (
            lambda r: r.trades(VENUE, INSTRUMENTS[0], trades_start, trades_end),
            "trades",
            [INSTRUMENTS[0]],
            trades_start,
            trades_end,
        ),
    }


def native(client, dataset: str, instruments: list[str], start: datetime, end: datetime):
    """The store's own Arrow export of the read's SELECT (same SQL, same parameters)."""
    spec = spec_for(dataset)
    sql = ch_reads.select_sql(DATABASE, spec, list(spec.column_names), all_instruments=False, as_of=False)
    return client.query_arrow(sql, parameters=ch_reads.query_params(spec, VENUE, instruments, start, end))


def timed(fn) -> tuple[float, float, int]:
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    result = fn()
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    return wall, (after.ru_utime - cpu.ru_utime) + (after.ru_stime - cpu.ru_stime), len(result)


def measure(client, reader: Reader) -> list[dict]:
    """Interleaved rounds (a warm-up first) of each case: read vs native."""
    out = []
    for name, (read_call, dataset, instruments, start, end) in cases().items():
        samples = {"read": [], "native": []}
        for round_ in range(ROUNDS + 1):
            order = [
                ("read", lambda call=read_call: call(reader)),
                ("native", lambda args=(dataset, instruments, start, end): native(client, *args)),
            ]
            for label, fn in order if round_ % 2 == 0 else order[::-1]:
                wall, cpu, rows = timed(fn)
                if round_:  # round 0 warms up
                    samples[label].append(
                        {"seconds": round(wall, 3), "cpu_seconds": round(cpu, 3), "rows": rows}
                    )
        ratios = [n["seconds"] / r["seconds"] for r, n in zip(samples["read"], samples["native"])]
        cpu_ratios = [n["cpu_seconds"] / r["cpu_seconds"] for r, n in zip(samples["read"], samples["native"])]
        rows = samples["read"][0]["rows"]
        assert all(s["rows"] == rows for s in samples["read"] + samples["native"]), (
            "read and native rows differ"
        )
        median = {k: statistics.median(s["seconds"] for s in v) for k, v in samples.items()}
        out.append(
            {
                "case": name,
                "rows": rows,
                "read_s": median["read"],
                "native_s": median["native"],
                "read_rows_per_s": round(rows / median["read"]),
                "ratio": round(statistics.median(ratios), 3),
                "ratio_min_max": [round(min(ratios), 3), round(max(ratios), 3)],
                "cpu_ratio": round(statistics.median(cpu_ratios), 3),
                "samples": samples,
            }
        )
    return out


def main() -> int:
    scratch = Path(
        tempfile.mkdtemp(
            prefix="bench-read-",
            dir=settings.state_dir() / "tmp" if (settings.state_dir() / "tmp").is_dir() else None,
        )
    )
    dsn = f"chdb://{scratch / 'clickhouse'}"
    try:
        client, locked = connection.open_client(dsn, DATABASE, lock_timeout_s=5)
        ct.ensure_tables(client, DATABASE)
        started = time.monotonic()
        generated = {"bars_1m": generate_bars(client), "trades": generate_trades(client)}
        generation_s = round(time.monotonic() - started, 1)
        with Reader(clickhouse_client=client, clickhouse_database=DATABASE) as reader:
            results = measure(client, reader)
        client.close()
        connection.release_directory(locked)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    report = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "rounds": ROUNDS,
        "generated": generated,
        "generation_s": generation_s,
        "load_average": os.getloadavg(),
        "target_ratio": TARGET,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "results": results,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2, default=str) + "\n")
    for r in results:
        print(
            f"{r['case']}: {r['rows']:,} rows; read {r['read_s']:.3f} s ({r['read_rows_per_s']:,} rows/s), "
            f"native Arrow {r['native_s']:.3f} s; ratio native/read {r['ratio']} (min-max "
            f"{r['ratio_min_max']}), CPU ratio {r['cpu_ratio']}"
        )
    print(
        f"generated in {generation_s} s; peak RSS {report['peak_rss_mb']} MB; load average "
        f"{report['load_average']}"
    )
    missed = [r["case"] for r in results if r["ratio"] < TARGET]
    if missed:
        print(f"target missed (ratio < {TARGET}): {missed}", file=sys.stderr)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
