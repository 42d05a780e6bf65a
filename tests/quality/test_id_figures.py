"""The ids each load's write measured (stores.clickhouse.load_ids) answer the trade-id check exactly as
reading the ids does: the same holes, ranges and missing ids with the figures and without them (the
scan), on every write path (a frame, a streamed write, the engine's CSV reader); a load whose rows
changed after its write, or with more hole ranges than were kept, is read again. Real embedded
ClickHouse, one store per test from the pool."""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl
import pytest

from marketdata_assets.datasets.frames import day_window
from marketdata_assets.datasets.slices import SliceKey
from marketdata_assets.quality.continuity import find_holes
from marketdata_assets.replay.binance_dumps import generate_trades, write_dump
from marketdata_assets.sources.binance_vision.dumps import TRADES_CSV
from marketdata_assets.stores.clickhouse import load_ids, writer
from marketdata_assets.stores.clickhouse import tables as ct

DAY = date(2025, 3, 4)
FIRST = 7_000_000


@pytest.fixture
def store(clickhouse):
    with clickhouse.get_client() as client:
        ct.ensure_tables(client, clickhouse.database)
        yield client, clickhouse.database


def trades(instrument: str, n: int, seqs=None, day: date = DAY) -> pl.DataFrame:
    frame = generate_trades(instrument, day, n, seed=3)
    seqs = list(range(FIRST, FIRST + n)) if seqs is None else seqs
    return frame.with_columns(pl.Series("seq", seqs, dtype=pl.Int64))


def logged(client, db: str, instrument: str, day: date, load_id: int) -> None:
    start = day_window(day)[0]
    writer.log_ingest(
        client,
        db,
        [
            {
                "run_id": "t",
                "source": "BINANCE",
                "dataset": "trades",
                "venue": "BINANCE",
                "instrument": instrument,
                "day": day,
                "outcome": "ok",
                "load_id": load_id,
                "started_at": start,
                "finished_at": start,
            }
        ],
    )


def write(client, db: str, instrument: str, frame: pl.DataFrame, day: date = DAY) -> int:
    load = writer.write_slice(client, db, "trades", frame, "BINANCE", instrument, day, "t").load_id
    logged(client, db, instrument, day, load)
    return load


def holes(found) -> dict:
    return {
        k: (f.rows, f.first_id, f.last_id, f.without_id, f.previous_last_id, f.missing, f.ranges, f.holes)
        for k, f in found.items()
    }


def with_and_without_figures(client, db: str, slices, max_ranges: int = 10) -> dict:
    """find_holes from the figures, then from the ids alone (the figures removed): they must agree."""
    measured = holes(find_holes(client, db, slices, max_ranges=max_ranges))
    client.command(f"TRUNCATE TABLE `{db}`.{load_ids.LOAD_IDS}")
    assert holes(find_holes(client, db, slices, max_ranges=max_ranges)) == measured
    return measured


def recorded(client, db: str, loads) -> dict:
    start, end = day_window(DAY - timedelta(days=1))[0], day_window(DAY)[1]
    where = (
        "ts >= {start:DateTime64(6, 'UTC')} AND ts < {end:DateTime64(6, 'UTC')} "
        "AND load_id IN {loads:Array(UInt64)}"
    )
    return load_ids.verified(client, db, "trades", where, {"start": start, "end": end}, list(loads))


def test_a_frames_figures_answer_as_its_ids_do_holes_repeats_nulls_and_midnight(store):
    client, db = store
    n = 600
    seqs = list(range(FIRST, FIRST + n))
    holed = [s for s in seqs if s % 50 != 7 and not FIRST + 300 <= s < FIRST + 320]  # 12 + 1 ranges
    repeated = [s if s != FIRST + 9 else FIRST + 10 for s in seqs]  # 9 missing, 10 twice: same count
    nulls = [None if i % 7 == 0 else s for i, s in enumerate(seqs)]
    shuffled = list(reversed(holed))  # not in id order: the figures hold all the same
    loads = {
        "SOLUSDT": write(client, db, "SOLUSDT", trades("SOLUSDT", len(holed), holed)),
        "XRPUSDT": write(client, db, "XRPUSDT", trades("XRPUSDT", n, repeated)),
        "ADAUSDT": write(client, db, "ADAUSDT", trades("ADAUSDT", n, nulls)),
        "DOTUSDT": write(client, db, "DOTUSDT", trades("DOTUSDT", len(shuffled), shuffled)),
        "BTCUSDT": write(client, db, "BTCUSDT", trades("BTCUSDT", n)),
    }
    before = [s - n - 5 for s in seqs]  # the day before ends 5 ids short of this day's first
    write(
        client, db, "BTCUSDT", trades("BTCUSDT", n, before, DAY - timedelta(days=1)), DAY - timedelta(days=1)
    )
    figures = recorded(client, db, loads.values())
    assert {i: (figures[load].distinct, figures[load].missing) for i, load in loads.items()} == {
        "SOLUSDT": (len(holed), n - len(holed)),
        "XRPUSDT": (n - 1, 1),
        "ADAUSDT": (n - len(range(0, n, 7)), len(range(0, n, 7)) - 1),  # id FIRST (row 0) is null
        "DOTUSDT": (len(holed), n - len(holed)),
        "BTCUSDT": (n, 0),
    }
    found = with_and_without_figures(client, db, [SliceKey("trades", "BINANCE", i, DAY) for i in loads], 20)
    sol = found[f"{DAY}|BINANCE:SOLUSDT"]
    assert sol[5:7] == (n - len(holed), 12) and sol[7][6].first_missing == FIRST + 300
    assert found[f"{DAY}|BINANCE:XRPUSDT"][5:7] == (1, 1)
    btc = found[f"{DAY}|BINANCE:BTCUSDT"]
    assert (btc[4], btc[5], str(btc[7][0])) == (FIRST - 6, 5, f"{FIRST - 5}-{FIRST - 1} (at midnight)")


def test_a_load_whose_rows_changed_after_its_write_or_without_figures_is_read_again(store):
    client, db = store
    load = write(client, db, "ETHUSDT", trades("ETHUSDT", 300))
    key = SliceKey("trades", "BINANCE", "ETHUSDT", DAY)
    assert recorded(client, db, [load])[load].missing == 0
    client.command(
        f"ALTER TABLE `{db}`.trades DELETE WHERE load_id = {load} AND seq = {FIRST + 100} "
        "SETTINGS mutations_sync = 2"
    )
    assert recorded(client, db, [load]) == {}  # 299 rows stored, 300 measured: not used
    (found,) = find_holes(client, db, [key]).values()
    assert (found.rows, found.missing, [str(h) for h in found.holes]) == (299, 1, [str(FIRST + 100)])
    client.command(f"DROP TABLE `{db}`.{load_ids.LOAD_IDS}")  # a store not ensured since the figures exist
    assert find_holes(client, db, [key]) == {found.partition_key: found}
    ct.ensure_tables(client, db)


def test_more_hole_ranges_than_kept_are_read_from_the_ids(store):
    client, db = store
    kept = load_ids.KEPT_RANGES
    seqs = [FIRST + i for i in range(3 * kept + 300) if i % 3 != 1]  # kept + 100 one-id holes
    load = write(client, db, "BNBUSDT", trades("BNBUSDT", len(seqs), seqs))
    figures = recorded(client, db, [load])[load]
    assert (figures.ranges, len(figures.holes)) == (kept + 100, kept)
    assert figures.holes_known(10) and not figures.holes_known(kept + 50)
    key = SliceKey("trades", "BINANCE", "BNBUSDT", DAY)
    (few,) = find_holes(client, db, [key], max_ranges=10).values()
    (many,) = with_and_without_figures(client, db, [key], max_ranges=kept + 50).values()
    assert (few.ranges, len(few.holes), many[6], len(many[7])) == (kept + 100, 10, kept + 100, kept + 50)
    assert many[7][-1].first_missing == FIRST + 3 * (kept + 49) + 1


def test_streamed_and_csv_loads_record_the_same_figures_as_a_frame(store, tmp_path):
    client, db = store
    complete = generate_trades("LTCUSDT", DAY, 2000, seed=5)
    first = complete["seq"].min()
    cut = complete.filter(~pl.col("seq").is_between(first + 500, first + 509))
    loads = {"frame": write(client, db, "LTCUSDT", cut)}
    streamed = writer.write_streamed(
        client, db, "trades", "BINANCE", "LTCUSDT", [DAY], cut.iter_slices(300), "t", insert_rows=600
    )
    loads["streamed"] = streamed[DAY].load_id
    logged(client, db, "LTCUSDT", DAY, loads["streamed"])
    path = tmp_path / f"LTCUSDT-trades-{DAY}.csv"
    write_dump(path, cut)
    (csv,) = writer.load_csv_files(client, db, [path], "BINANCE", profile=TRADES_CSV, run_id="t").slices
    loads["csv"] = csv.load_id
    logged(client, db, "LTCUSDT", DAY, csv.load_id)
    figures = recorded(client, db, loads.values())
    assert {path: figures[load].holes for path, load in loads.items()} == {
        p: ((first + 500, first + 509),) for p in loads
    }
    assert {figures[load].rows for load in loads.values()} == {1990}
    assert int(client.command(f"SELECT count() FROM `{db}`.{load_ids.LOAD_IDS}")) == 3
    (found,) = with_and_without_figures(client, db, [SliceKey("trades", "BINANCE", "LTCUSDT", DAY)]).values()
    assert found[5:7] == (10, 1)  # the csv load is the active one
