"""stores.clickhouse.writer against the real embedded ClickHouse (chDB; one data directory for the
session)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from marketdata_assets.datasets import frames
from marketdata_assets.sources.binance_vision.dumps import KLINES_1M_CSV, TRADES_CSV, read_dump
from marketdata_assets.stores.clickhouse import tables as ct
from marketdata_assets.stores.clickhouse import writer as w

REPO = Path(__file__).resolve().parents[3]
DAY = date(2024, 3, 1)


def make_trades(
    n: int,
    day: date = DAY,
    instrument: str = "BTCUSDT",
    venue: str = "BINANCE",
    price0: float = 42000.0,
    seed: int = 0,
) -> pl.DataFrame:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    columns = pl.DataFrame(
        {
            "ts": [
                start + timedelta(seconds=i * 86399 / max(n, 1), microseconds=(i * 7919 + seed) % 1_000_000)
                for i in range(n)
            ],
            "venue": [venue] * n,
            "instrument": [instrument] * n,
            "trade_id": [f"{seed}-{i}" for i in range(n)],
            "price": [price0 + ((i * 37 + seed) % 1000) / 100 for i in range(n)],
            "quantity": [0.001 * (1 + (i * 13) % 50) for i in range(n)],
            "amount": [
                (price0 + ((i * 37 + seed) % 1000) / 100) * 0.001 * (1 + (i * 13) % 50) for i in range(n)
            ],
            "side": ["buy" if (i + seed) % 3 else "sell" for i in range(n)],
            "seq": [None if i % 5 == 0 else 10_000 + i for i in range(n)],
        },
    )
    return frames.as_schema(columns, frames.TRADES_SCHEMA).sort("ts")  # another nullable column: null


def make_books(day: date = DAY, snapshots: int = 4, levels: int = 5) -> pl.DataFrame:
    start = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
    rows = []
    for s in range(snapshots):
        ts = start + timedelta(milliseconds=100 * s, microseconds=s + 1)
        for side, sign in (("bid", -1), ("ask", 1)):
            for level in range(levels):
                rows.append(
                    {
                        "ts": ts,
                        "venue": "OKX",
                        "instrument": "BTC-USDT-SWAP",
                        "side": side,
                        "level": level,
                        "price": 42000.5 + sign * (0.5 + level * 0.1),
                        "quantity": 0.25 * (level + 1),
                        "update_id": None if s == 0 else 1_000_000_000_000 + s,
                    }
                )
    return pl.DataFrame(rows, schema=frames.BOOKS_SCHEMA)


def make_bars(
    day: date = DAY, minutes: int = 240, instrument: str = "600000.SH", venue: str = "SSE"
) -> pl.DataFrame:
    start = datetime(day.year, day.month, day.day, 1, 30, tzinfo=UTC)
    return pl.DataFrame(
        {
            "ts": [start + timedelta(minutes=i) for i in range(minutes)],
            "venue": [venue] * minutes,
            "instrument": [instrument] * minutes,
            "open": [10.0 + i / 100 for i in range(minutes)],
            "high": [10.05 + i / 100 for i in range(minutes)],
            "low": [9.95 + i / 100 for i in range(minutes)],
            "close": [10.01 + i / 100 for i in range(minutes)],
            "volume": [1000.0 * (i + 1) for i in range(minutes)],
            "amount": [10010.0 * (i + 1) for i in range(minutes)],
            "trades": [None if i == 3 else i for i in range(minutes)],
        },
        schema=frames.BARS_SCHEMA,
    )


@pytest.fixture
def ch(store):
    """(client, database) with the tick tables created: a `store`, so an emptied one of an earlier test's
    where there is one (tests/support/store_pool.py) instead of ~88 CREATEs a test."""
    with store.get_client() as client:
        yield client, store.database


def visible(client, db, dataset, venue, instrument, start=DAY, end=DAY + timedelta(days=1)) -> pl.DataFrame:
    return ct.read_range(client, db, dataset, venue, instrument, start, end)


def raw_count(client, db, table="trades") -> int:
    return int(client.command(f"SELECT count() FROM `{db}`.`{table}`"))


@pytest.mark.parametrize("method", ["python", "arrow"])
def test_round_trip_every_kind_exact(ch, method):
    client, db = ch
    for kind, frame, venue, instrument, order in (
        ("trades", make_trades(500), "BINANCE", "BTCUSDT", ["ts", "trade_id"]),
        ("books", make_books(), "OKX", "BTC-USDT-SWAP", ["ts", "side", "level"]),
        ("bars_1m", make_bars(), "SSE", "600000.SH", ["ts"]),
    ):
        result = w.write_slice(client, db, kind, frame, venue, instrument, DAY, "run-1", method=method)
        assert result.rows == frame.height and result.load_id > 0 and result.method == method
        back = visible(client, db, kind, venue, instrument)
        assert back.schema == pl.Schema(frame.schema)
        assert back.sort(order).equals(frame.sort(order)), kind  # exact: µs timestamps, nulls, floats
    # microseconds survive
    back = visible(client, db, "trades", "BINANCE", "BTCUSDT")
    assert back["ts"].dt.microsecond().n_unique() > 100
    assert back["seq"].null_count() == 100


def test_python_and_arrow_methods_store_the_same_rows(ch):
    client, db = ch
    frame = make_trades(2000)
    w.write_slice(client, db, "trades", frame, "BINANCE", "BTCUSDT", DAY, "r", method="python")
    a = visible(client, db, "trades", "BINANCE", "BTCUSDT")
    w.write_slice(client, db, "trades", frame, "BINANCE", "BTCUSDT", DAY, "r", method="arrow", batch_rows=300)
    b = visible(client, db, "trades", "BINANCE", "BTCUSDT")
    assert a.equals(b) and a.height == 2000


def test_same_day_twice_never_duplicates_and_replaces_exactly(ch):
    client, db = ch
    first = make_trades(1000, seed=1)
    w.write_slice(client, db, "trades", first, "BINANCE", "BTCUSDT", DAY, "run-1")
    w.write_slice(client, db, "trades", first, "BINANCE", "BTCUSDT", DAY, "run-2")
    assert visible(client, db, "trades", "BINANCE", "BTCUSDT").height == 1000
    # a corrected re-download with FEWER rows: the missing rows disappear too (no merge, no OPTIMIZE)
    second = make_trades(600, seed=2, price0=43000.0)
    w.write_slice(client, db, "trades", second, "BINANCE", "BTCUSDT", DAY, "run-3")
    back = visible(client, db, "trades", "BINANCE", "BTCUSDT")
    assert back.sort("ts", "trade_id").equals(second.sort("ts", "trade_id"))
    assert raw_count(client, db) == 2600  # old loads are still on disk
    whole = client.query(f"SELECT count(), min(price) FROM `{db}`.trades_v").result_rows[0]
    assert whole == (600, second["price"].min())
    daily = ct.daily_bars(client, db, "BINANCE", "BTCUSDT", DAY, DAY)
    assert daily["trades"].to_list() == [600] and daily["open"][0] == second.sort("ts")["price"][0]
    assert int(client.command(f"SELECT count() FROM system.mutations WHERE database = '{db}'")) == 0


def test_other_days_and_instruments_are_left_intact(ch):
    client, db = ch
    day2 = DAY + timedelta(days=1)
    a = make_trades(300, DAY, seed=1)
    b = make_trades(200, day2, seed=2)
    eth = make_trades(100, DAY, instrument="ETHUSDT", price0=3000.0)
    w.write_slice(client, db, "trades", a, "BINANCE", "BTCUSDT", DAY, "r")
    w.write_slice(client, db, "trades", b, "BINANCE", "BTCUSDT", day2, "r")
    w.write_slice(client, db, "trades", eth, "BINANCE", "ETHUSDT", DAY, "r")
    w.write_slice(client, db, "trades", make_trades(50, day2, seed=3), "BINANCE", "BTCUSDT", day2, "r2")
    assert visible(client, db, "trades", "BINANCE", "BTCUSDT").equals(a)
    assert visible(client, db, "trades", "BINANCE", "ETHUSDT").equals(eth)
    assert visible(client, db, "trades", "BINANCE", "BTCUSDT", day2, day2 + timedelta(days=1)).height == 50
    # an empty frame empties exactly its day
    w.write_slice(client, db, "trades", frames.empty_trades(), "BINANCE", "BTCUSDT", DAY, "r3")
    assert visible(client, db, "trades", "BINANCE", "BTCUSDT").height == 0
    assert visible(client, db, "trades", "BINANCE", "ETHUSDT").height == 100
    loads = ct.loaded_days(client, db, "trades", "BINANCE")
    assert loads.select("instrument", "day", "rows").rows() == [
        ("BTCUSDT", DAY, 0),
        ("BTCUSDT", day2, 50),
        ("ETHUSDT", DAY, 100),
    ]


def test_a_streamed_write_inserts_batch_by_batch_and_shows_nothing_until_every_batch_is_in(ch):
    client, db = ch
    before = make_trades(300, instrument="ETHUSDT", seed=1)
    w.write_slice(client, db, "trades", before, "BINANCE", "ETHUSDT", DAY, "run-1")
    rows_at_each_batch: list[int] = []

    def batches(frame: pl.DataFrame, fail_after: int | None = None):
        for i, part in enumerate(frame.iter_slices(250)):
            rows_at_each_batch.append(raw_count(client, db))  # the earlier batches are in the table
            if i == fail_after:
                raise ValueError("the archive's reader refused a line")
            yield part

    def stream(rows, run_id: str, **options):
        return w.write_streamed(client, db, "trades", "BINANCE", "ETHUSDT", [DAY], rows, run_id, **options)

    new = make_trades(1000, instrument="ETHUSDT", seed=2)
    with pytest.raises(ValueError, match="refused a line"):
        stream(batches(new, 2), "run-2", insert_rows=250)
    assert rows_at_each_batch == [300, 550, 800]  # inserted as read, 250 rows at a time
    shown = visible(client, db, "trades", "BINANCE", "ETHUSDT").sort("ts", "trade_id")
    assert shown.equals(before.sort("ts", "trade_id"))  # the half-written load stays invisible

    result = stream(batches(new), "run-3")
    assert result[DAY].rows == 1000 and result[DAY].method == "python, streamed"  # one insert of 1,000
    assert (result[DAY].first_ts, result[DAY].last_ts) == (new["ts"].min(), new["ts"].max())
    # four inserts of one load (in cluster mode each its own deduplication token)
    again = stream(batches(new), "run-4", method="arrow", insert_rows=300)
    assert again[DAY].rows == 1000 and again[DAY].load_id > result[DAY].load_id
    back = visible(client, db, "trades", "BINANCE", "ETHUSDT")
    assert back.sort("ts", "trade_id").equals(new.sort("ts", "trade_id"))
    with pytest.raises(ValueError, match=r"rows of 2024-03-02, not one of the days written \(2024-03-01\)"):
        stream([make_trades(10, DAY + timedelta(days=1), "ETHUSDT")], "r")


def test_failed_write_before_the_flip_leaves_the_previous_state(ch, monkeypatch):
    client, db = ch
    before = make_trades(400, seed=1)
    w.write_slice(client, db, "trades", before, "BINANCE", "BTCUSDT", DAY, "run-1")
    bars_before = ct.daily_bars(client, db, "BINANCE", "BTCUSDT", DAY, DAY)

    # half of the new rows get in, then the writer dies (simulated by an error before the flip)
    real_insert = w._insert_python

    def half_then_fail(client_, database, spec, table, *args, **kwargs):
        real_insert(client_, database, spec, table.slice(0, table.num_rows // 2), *args, **kwargs)
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(w, "_insert_python", half_then_fail)
    with pytest.raises(KeyboardInterrupt):
        w.write_slice(
            client,
            db,
            "trades",
            make_trades(1000, seed=2),
            "BINANCE",
            "BTCUSDT",
            DAY,
            "run-2",
            method="python",
        )
    assert raw_count(client, db) == 900  # the orphan rows are on disk...
    assert visible(client, db, "trades", "BINANCE", "BTCUSDT").equals(before)  # ...and invisible
    assert ct.daily_bars(client, db, "BINANCE", "BTCUSDT", DAY, DAY).equals(bars_before)
    assert ct.garbage_rows(client, db, "trades") == 500

    # a row-count mismatch is refused too
    monkeypatch.setattr(
        w, "_insert_python", lambda c, d, s, t, *a, **k: real_insert(c, d, s, t.slice(1), *a, **k)
    )
    with pytest.raises(RuntimeError, match="different row count"):
        w.write_slice(client, db, "trades", make_trades(10, seed=3), "BINANCE", "BTCUSDT", DAY, "run-3")
    assert visible(client, db, "trades", "BINANCE", "BTCUSDT").equals(before)
    monkeypatch.undo()

    # the next complete write replaces everything; compaction then drops the garbage
    after = make_trades(700, seed=4)
    w.write_slice(client, db, "trades", after, "BINANCE", "BTCUSDT", DAY, "run-4")
    assert visible(client, db, "trades", "BINANCE", "BTCUSDT").equals(after)
    results = ct.compact_month(client, db, "trades", "2024-03")
    assert results[0].rows_after == 700 and raw_count(client, db) == 700
    assert visible(client, db, "trades", "BINANCE", "BTCUSDT").equals(after)
    assert ct.daily_bars(client, db, "BINANCE", "BTCUSDT", DAY, DAY)["trades"].to_list() == [700]


KILLED_WRITER = textwrap.dedent("""
    import sys, clickhouse_connect
    sys.path.insert(0, {tests!r})
    from marketdata_assets.stores.clickhouse import tables as ct, writer as w
    from stores.clickhouse.test_writer import make_trades, DAY
    client = clickhouse_connect.get_client(dsn={dsn!r})
    ct.ensure_tables(client, "ticks")
    w.write_slice(client, "ticks", "trades", make_trades(300, seed=1), "BINANCE", "BTCUSDT", DAY, "run-1")
    real = client.insert_arrow
    def insert_arrow(*args, **kwargs):
        summary = real(*args, **kwargs)
        print("BATCH", flush=True)   # a batch is committed; the parent kills us now
        sys.stdin.readline()
        return summary
    client.insert_arrow = insert_arrow
    w.write_slice(client, "ticks", "trades", make_trades(5000, seed=2), "BINANCE", "BTCUSDT", DAY, "run-2",
                  method="arrow", batch_rows=1000)
    print("FLIPPED", flush=True)
""")

READER = textwrap.dedent("""
    import json, sys, clickhouse_connect
    sys.path.insert(0, {tests!r})
    from marketdata_assets.stores.clickhouse import tables as ct
    from stores.clickhouse.test_writer import make_trades, DAY
    client = clickhouse_connect.get_client(dsn={dsn!r})
    back = ct.read_range(client, "ticks", "trades", "BINANCE", "BTCUSDT", DAY, "2024-03-02")
    print(json.dumps({{"raw": int(client.command("SELECT count() FROM ticks.trades")), "visible": back.height,
                      "equal": back.equals(make_trades(300, seed=1))}}))
""")


def test_killed_writer_process_leaves_exactly_the_previous_state(tmp_path):
    """SIGKILL a writer (its own chDB directory) after part of a re-write is committed."""
    dsn = f"chdb://{tmp_path / 'killed'}"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    tests = str(REPO / "tests")
    writer = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER.format(tests=tests, dsn=dsn)],
        cwd=REPO,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = writer.stdout.readline()
        assert line.strip() == "BATCH", writer.stderr.read()
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(30)
    assert writer.returncode == -signal.SIGKILL
    reader = subprocess.run(
        [sys.executable, "-c", READER.format(tests=tests, dsn=dsn)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert reader.returncode == 0, reader.stderr
    state = json.loads(reader.stdout.strip().splitlines()[-1])
    assert state == {"raw": 1300, "visible": 300, "equal": True}


def test_rejects_rows_outside_the_day_and_bad_frames(ch):
    client, db = ch
    frame = make_trades(20)
    late = frame.with_columns(
        pl.when(pl.int_range(pl.len()) == 7)
        .then(pl.col("ts") + timedelta(days=1))
        .otherwise(pl.col("ts"))
        .alias("ts")
    )
    with pytest.raises(
        ValueError, match=r"BINANCE:BTCUSDT on 2024-03-01: row 7 has ts 2024-03-02T.*outside the day"
    ):
        w.write_slice(client, db, "trades", late, "BINANCE", "BTCUSDT", DAY, "r")
    cases = [
        (frame.drop("amount"), "missing columns \\['amount'\\]"),
        (frame.with_columns(pl.col("price").cast(pl.Utf8)), "column 'price' is String"),
        (
            frame.with_columns(
                pl.when(pl.int_range(pl.len()) == 3).then(None).otherwise(pl.col("price")).alias("price")
            ),
            "column 'price' has 1 null\\(s\\), first at row 3",
        ),
        (
            frame.with_columns(
                pl.when(pl.int_range(pl.len()) == 4)
                .then(float("nan"))
                .otherwise(pl.col("quantity"))
                .alias("quantity")
            ),
            "'quantity' is NaN/inf at row 4",
        ),
        (frame.with_columns(pl.lit("BUY").alias("side")), "row 0 has side 'BUY'"),
        (frame.with_columns(pl.lit("ETHUSDT").alias("instrument")), "row 0 has instrument 'ETHUSDT'"),
        (frame.with_columns(pl.col("ts").dt.replace_time_zone(None)), "naive time is ambiguous"),
        (
            frame.with_columns(pl.col("ts").cast(pl.Datetime("ns", "UTC")) + pl.duration(nanoseconds=1)),
            "has nanoseconds",
        ),
    ]
    for bad, message in cases:
        with pytest.raises(ValueError, match=message) as info:
            w.write_slice(client, db, "trades", bad, "BINANCE", "BTCUSDT", DAY, "r")
        assert "BINANCE:BTCUSDT on 2024-03-01" in str(info.value)
    with pytest.raises(ValueError, match="not normalized"):
        w.write_slice(client, db, "trades", frame, "BINANCE", "btcusdt", DAY, "r")
    assert raw_count(client, db) == 0 and int(client.command(f"SELECT count() FROM `{db}`.loads")) == 0


def test_a_nullable_column_a_frame_lacks_is_stored_null_and_a_required_one_is_named(ch):
    client, db = ch
    frame = make_trades(50)
    w.write_slice(client, db, "trades", frame.drop("seq"), "BINANCE", "BTCUSDT", DAY, "r")
    back = visible(client, db, "trades", "BINANCE", "BTCUSDT")
    assert back.equals(frame.with_columns(pl.lit(None, pl.Int64).alias("seq")))
    with pytest.raises(ValueError, match=r"BINANCE:BTCUSDT on 2024-03-01: missing columns \['price'\]"):
        w.write_slice(client, db, "trades", frame.drop("seq", "price"), "BINANCE", "BTCUSDT", DAY, "r2")
    assert visible(client, db, "trades", "BINANCE", "BTCUSDT").equals(back)


def test_lossless_casts_are_accepted(ch):
    client, db = ch
    frame = make_trades(50)
    loose = frame.with_columns(
        pl.col("ts").dt.convert_time_zone("Asia/Shanghai").dt.cast_time_unit("ns"),
        pl.col("side").cast(pl.Categorical),
        pl.col("seq").cast(pl.Int32),
    )
    w.write_slice(client, db, "trades", loose, "BINANCE", "BTCUSDT", DAY, "r")
    assert visible(client, db, "trades", "BINANCE", "BTCUSDT").equals(frame)


def test_write_slices_many_instruments_in_one_load(ch):
    client, db = ch
    day_bars = pl.concat(
        [make_bars(instrument=code, venue="SSE") for code in ("600000.SH", "600519.SH", "688981.SH")]
    )
    results = w.write_slices(client, db, "bars_1m", day_bars, "SSE", DAY, "r1")
    assert sorted(results) == ["600000.SH", "600519.SH", "688981.SH"]
    assert len({r.load_id for r in results.values()}) == 3 and all(r.rows == 240 for r in results.values())
    # the next day's run has no bars for 688981.SH (suspended): naming it empties its slice
    fewer = day_bars.filter(pl.col("instrument") != "688981.SH")
    w.write_slices(client, db, "bars_1m", fewer, "SSE", DAY, "r2", instruments=["688981.SH"])
    counts = dict(
        client.query(f"SELECT instrument, count() FROM `{db}`.bars_1m_v GROUP BY instrument").result_rows
    )
    assert counts == {"600000.SH": 240, "600519.SH": 240}
    assert visible(client, db, "bars_1m", "SSE", "600519.SH").equals(make_bars(instrument="600519.SH"))
    with pytest.raises(ValueError, match="listed on SSE, not SZSE"):
        w.write_slices(
            client, db, "bars_1m", day_bars.with_columns(pl.lit("SZSE").alias("venue")), "SZSE", DAY, "r"
        )


def write_binance_csv(path: Path, frame: pl.DataFrame, header: bool, millis: bool) -> None:
    time_col = frame["ts"].dt.epoch("ms" if millis else "us")
    out = pl.DataFrame(
        {
            "id": frame["seq"],
            "price": frame["price"],
            "qty": frame["quantity"],
            "quote_qty": frame["amount"],
            "time": time_col,
            "is_buyer_maker": frame["side"] == "sell",
        }
    )
    if not header:  # spot dumps: 7 columns, no header
        out = out.with_columns(pl.lit(True).alias("is_best_match"))
    out.write_csv(path, include_header=header)


def binance_like(n: int, day: date, seed: int, millis: bool) -> pl.DataFrame:
    frame = make_trades(n, day, seed=seed).with_columns(
        pl.int_range(1_000_000 * seed, 1_000_000 * seed + pl.len(), dtype=pl.Int64).alias("seq")
    )
    if millis:
        frame = frame.with_columns(pl.col("ts").dt.truncate("1ms"))
    return frame.with_columns(pl.col("seq").cast(pl.Utf8).alias("trade_id"))


def test_csv_file_path_equals_the_arrow_path(ch, tmp_path):
    client, db = ch
    day2 = DAY + timedelta(days=1)
    spot = binance_like(3000, DAY, 1, millis=True)
    futures = binance_like(2000, day2, 2, millis=False).with_columns(pl.lit("ETHUSDT").alias("instrument"))
    paths = [tmp_path / "BTCUSDT-trades-2024-03-01.csv", tmp_path / "ETHUSDT-trades-2024-03-02.csv"]
    write_binance_csv(paths[0], spot, header=False, millis=True)
    write_binance_csv(paths[1], futures, header=True, millis=False)

    result = w.load_csv_files(client, db, paths, "BINANCE", profile=TRADES_CSV, run_id="csv")
    assert result.rows == 5000 and [(s.instrument, s.day, s.rows) for s in result.slices] == [
        ("BTCUSDT", DAY, 3000),
        ("ETHUSDT", day2, 2000),
    ]
    by_file = {
        "BTCUSDT": visible(client, db, "trades", "BINANCE", "BTCUSDT"),
        "ETHUSDT": visible(client, db, "trades", "BINANCE", "ETHUSDT", day2, day2 + timedelta(days=1)),
    }
    bars_file = ct.daily_bars(client, db, "BINANCE", "BTCUSDT", DAY, DAY)
    # the same files through Polars and the Arrow path: identical rows
    for path, symbol, day in ((paths[0], "BTCUSDT", DAY), (paths[1], "ETHUSDT", day2)):
        frame = read_dump(path)
        w.write_slice(client, db, "trades", frame, "BINANCE", symbol, day, "arrow", method="arrow")
        back = visible(client, db, "trades", "BINANCE", symbol, day, day + timedelta(days=1))
        assert back.equals(by_file[symbol]), symbol
    assert by_file["BTCUSDT"].sort("ts", "trade_id").equals(spot.sort("ts", "trade_id"))
    assert by_file["ETHUSDT"].sort("ts", "trade_id").equals(futures.sort("ts", "trade_id"))
    assert ct.daily_bars(client, db, "BINANCE", "BTCUSDT", DAY, DAY).equals(bars_file)
    # loading the files again replaces their slices
    w.load_csv_files(client, db, paths, "BINANCE", profile=TRADES_CSV, run_id="csv-2")
    assert client.query(f"SELECT count() FROM `{db}`.trades_v").result_rows[0][0] == 5000


@pytest.mark.parametrize(
    "market, day", [("spot", date(2024, 12, 31)), ("spot", date(2025, 1, 2)), ("um", date(2024, 6, 3))]
)
def test_csv_file_path_matches_the_dump_reader(ch, tmp_path, market, day):
    """Real dump layouts (spot: no header, True/False, µs from 2025; USD-M: header, true/false)
    through the engine's file() equal sources.binance_vision.dumps.read_dump + write_slice."""
    from marketdata_assets.replay.binance_dumps import generate_trades, write_dump
    from marketdata_assets.sources.binance_vision.dumps import read_dump

    client, db = ch
    venue = "BINANCE" if market == "spot" else "BINANCE_UM"
    path = write_dump(
        tmp_path / f"BTCUSDT-trades-{day.isoformat()}.csv",
        generate_trades("BTCUSDT", day, 20_000, seed=5, market=market, venue=venue),
        market=market,
        day=day,
    )
    w.load_csv_files(client, db, [path], venue, profile=TRADES_CSV)
    by_file = visible(client, db, "trades", venue, "BTCUSDT", day, day + timedelta(days=1))
    polars_frame = read_dump(path, market=market, venue=venue)
    stored = frames.as_schema(polars_frame, frames.TRADES_SCHEMA)  # a column the dumps lack: null, as stored
    assert by_file.sort("ts", "trade_id").equals(stored.sort("ts", "trade_id"))
    w.write_slice(client, db, "trades", polars_frame, venue, "BTCUSDT", day, "arrow", method="arrow")
    assert visible(client, db, "trades", venue, "BTCUSDT", day, day + timedelta(days=1)).equals(by_file)
    assert by_file["ts"].dt.microsecond().max() > 0


def test_a_nullable_column_a_dump_profile_lacks_is_stored_null_and_a_required_one_is_named(ch, tmp_path):
    client, db = ch
    frame = binance_like(50, DAY, 1, millis=True)
    path = tmp_path / "BTCUSDT-trades-2024-03-01.csv"
    write_binance_csv(path, frame, header=False, millis=True)
    select = {c: sql for c, sql in TRADES_CSV.select.items() if c != "seq"}
    no_seq = replace(TRADES_CSV, select=select, unique_ids="")
    assert w.load_csv_files(client, db, [path], "BINANCE", profile=no_seq).rows == 50
    back = visible(client, db, "trades", "BINANCE", "BTCUSDT")
    assert back.sort("ts", "trade_id").equals(
        frame.with_columns(pl.lit(None, pl.Int64).alias("seq")).sort("ts", "trade_id")
    )
    no_side = replace(no_seq, select={c: sql for c, sql in select.items() if c != "side"})
    with pytest.raises(
        ValueError, match="the trades dump profile has no column 'side', which trades requires"
    ):
        w.load_csv_files(client, db, [path], "BINANCE", profile=no_side)
    assert visible(client, db, "trades", "BINANCE", "BTCUSDT").equals(back)


def test_csv_rows_outside_the_file_day_make_nothing_visible(ch, tmp_path):
    client, db = ch
    good = tmp_path / "BTCUSDT-trades-2024-03-01.csv"
    write_binance_csv(good, binance_like(100, DAY, 1, millis=True), header=False, millis=True)
    w.load_csv_files(client, db, [good], "BINANCE", profile=TRADES_CSV)
    wrong_day = tmp_path / "ETHUSDT-trades-2024-03-02.csv"
    write_binance_csv(wrong_day, binance_like(50, DAY, 2, millis=True), header=False, millis=True)
    other = tmp_path / "SOLUSDT-trades-2024-03-02.csv"
    write_binance_csv(
        other, binance_like(10, DAY + timedelta(days=1), 3, millis=True), header=False, millis=True
    )
    with pytest.raises(
        ValueError, match="ETHUSDT-trades-2024-03-02.csv: 50 row\\(s\\) of BINANCE:ETHUSDT are outside"
    ):
        w.load_csv_files(client, db, [good, wrong_day, other], "BINANCE", profile=TRADES_CSV)
    counts = dict(
        client.query(f"SELECT instrument, count() FROM `{db}`.trades_v GROUP BY instrument").result_rows
    )
    assert counts == {"BTCUSDT": 100}
    for bad, message in (
        ([tmp_path / "BTCUSDT-aggTrades-2024-03-01.csv"], "does not match"),
        ([tmp_path / "BTCUSDT-trades-2024-03-09.csv"], "no such file"),
        ([good, good], "same slice"),
    ):
        with pytest.raises(ValueError, match=message):
            w.load_csv_files(client, db, bad, "BINANCE", profile=TRADES_CSV)


def test_a_short_line_fails_its_csv_on_the_engine_path_as_the_zip_path_rejects_it(ch, tmp_path):
    """One strict reading for both paths: a row without is_buyer_maker is never stored as a buy."""
    import zipfile

    from marketdata_assets.core.http import SourceDataError

    client, db = ch
    good = tmp_path / "BTCUSDT-trades-2024-03-01.csv"
    write_binance_csv(good, binance_like(100, DAY, 1, millis=True), header=False, millis=True)
    short = tmp_path / "ETHUSDT-trades-2024-03-01.csv"
    write_binance_csv(short, binance_like(50, DAY, 2, millis=True), header=False, millis=True)
    lines = short.read_text().splitlines()
    lines[10] = ",".join(lines[10].split(",")[:5])  # id,price,qty,quote_qty,time: no is_buyer_maker
    short.write_text("\n".join(lines) + "\n")
    with pytest.raises(Exception, match="a row lacks one of id, price, qty, quote_qty, time, is_buyer_maker"):
        w.load_csv_files(client, db, [good, short], "BINANCE", profile=TRADES_CSV)
    assert client.command(f"SELECT count() FROM `{db}`.trades_v") == 0  # nothing of that statement is visible
    w.load_csv_files(client, db, [good], "BINANCE", profile=TRADES_CSV)
    assert client.command(f"SELECT count() FROM `{db}`.trades_v") == 100
    zipped = tmp_path / "zip" / "ETHUSDT-trades-2024-03-01.zip"
    zipped.parent.mkdir()
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.write(short, short.name)
    with pytest.raises(SourceDataError, match="have no is_buyer_maker"):
        read_dump(zipped)


def test_csv_klines_profile(ch, tmp_path):
    client, db = ch
    bars = make_bars(instrument="BTCUSDT", venue="BINANCE").with_columns(pl.col("trades").fill_null(0))
    path = tmp_path / "BTCUSDT-1m-2024-03-01.csv"
    open_ms = bars["ts"].dt.epoch("ms")
    pl.DataFrame(
        {
            "open_time": open_ms,
            "open": bars["open"],
            "high": bars["high"],
            "low": bars["low"],
            "close": bars["close"],
            "volume": bars["volume"],
            "close_time": open_ms + 59_999,
            "quote_volume": bars["amount"],
            "count": bars["trades"],
            "taker_buy_volume": 0.0,
            "taker_buy_quote_volume": 0.0,
            "ignore": 0,
        }
    ).write_csv(path, include_header=False)
    result = w.load_csv_files(client, db, [path], "BINANCE", profile=KLINES_1M_CSV)
    assert result.rows == 240
    assert visible(client, db, "bars_1m", "BINANCE", "BTCUSDT").equals(bars)


def test_log_ingest(ch):
    client, db = ch
    t0 = datetime(2024, 3, 2, 0, 5, 1, 250000, tzinfo=UTC)
    rows = [
        {
            "run_id": "run-1",
            "source": "binance_rest",
            "dataset": "trades",
            "venue": "BINANCE",
            "instrument": "BTCUSDT",
            "day": DAY,
            "rows": 1000,
            "requests": 12,
            "retries": 2,
            "rate_limited": 1,
            "latency_p50_ms": 85.5,
            "latency_p95_ms": 410.0,
            "outcome": "ok",
            "load_id": 42,
            "started_at": t0,
            "finished_at": t0 + timedelta(seconds=9),
        },
        {
            "run_id": "run-1",
            "source": "binance_rest",
            "venue": "BINANCE",
            "instrument": "ETHUSDT",
            "day": "2024-03-01",
            "outcome": "failed",
            "error": "HTTP 451 from api.binance.com",
            "started_at": t0,
            "finished_at": t0,
        },
        {
            "run_id": "run-1",
            "source": "tushare",
            "venue": "SSE",
            "instrument": "600000.SH",
            "day": DAY,
            "outcome": "skipped",
            "started_at": t0.replace(tzinfo=None),
            "finished_at": t0.replace(tzinfo=None),
        },
    ]
    assert w.log_ingest(client, db, rows) == 3
    got = client.query(
        f"SELECT source, instrument, rows, requests, retries, rate_limited, latency_p50_ms, "
        f"latency_p95_ms, outcome, error, load_id, started_at, finished_at FROM `{db}`.ingest_log "
        "ORDER BY source, instrument"
    ).result_rows
    assert [r[:11] for r in got] == [
        ("binance_rest", "BTCUSDT", 1000, 12, 2, 1, 85.5, 410.0, "ok", "", 42),
        ("binance_rest", "ETHUSDT", 0, 0, 0, 0, 0.0, 0.0, "failed", "HTTP 451 from api.binance.com", 0),
        ("tushare", "600000.SH", 0, 0, 0, 0, 0.0, 0.0, "skipped", "", 0),
    ]
    assert got[0][11].replace(tzinfo=UTC) == t0 and got[0][12].replace(tzinfo=UTC) == t0 + timedelta(
        seconds=9
    )
    for bad, message in (
        (dict(rows[0], outcome="done"), "outcome 'done'"),
        (dict(rows[0], foo=1), "unknown keys"),
        ({k: v for k, v in rows[0].items() if k != "day"}, "missing \\['day'\\]"),
    ):
        with pytest.raises(ValueError, match=message):
            w.log_ingest(client, db, [bad])
