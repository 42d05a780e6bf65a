"""The Parquet export against the real stores, on data the engine and the minute-bar loader loaded
from replays: DuckDB and Polars read the Hive-partitioned files back equal to the read API (and so
to the stores); a second export with nothing changed writes nothing; a re-load rewrites just its
partition; a day emptied loses its file; the Dagster asset does the same in one step."""

from __future__ import annotations

from datetime import date

import dagster as dg
import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from marketdata_assets.datasets.frames import day_window, spec_for
from marketdata_assets.datasets.wire import columns_of
from marketdata_assets.defs.exports.assets import parquet_export
from marketdata_assets.ingest.minute_bars.loader import file_sha256, load_file
from marketdata_assets.read import Reader
from marketdata_assets.read.export import META_KEY, export_day, stored_identity
from marketdata_assets.replay.crypto import CryptoReplayServer, ReplayConfig
from marketdata_assets.replay.minute_csv import make_bars, render, write_text
from marketdata_assets.stores.clickhouse import writer
from tests.read.conftest import DAY, ingest

START, END = day_window(DAY)
TRADES = "trades/venue=BINANCE/date=2025-01-15/part-0.parquet"


def load_minutes(conn, tmp_path, seed: int) -> None:
    """600000.SH and 000001.SZ on DAY (a trading day in Shanghai too), from one CSV file."""
    truth = pl.concat([make_bars(code, [DAY], seed=seed + i) for i, code in enumerate(["600000.SH", "000001.SZ"])])
    path = write_text(tmp_path / f"bars-{seed}.csv", render(truth, "cn_minute"))
    load_file(conn, path, path.name, [date(2025, 1, 1)], sha256=file_sha256(path), use_copy=True, run_id="test",
              reject_dir=tmp_path / "rejects")


@pytest.fixture
def loaded(store, minute_store, tmp_path):
    with CryptoReplayServer(ReplayConfig(seed=2, trades_per_day=400)) as server:
        ingest(store, server.base_url, "BINANCE", "trades", ["BTCUSDT", "ETHUSDT"])
        ingest(store, server.base_url, "BINANCE", "bars_1m", ["BTCUSDT"])
        ingest(store, server.base_url, "BINANCE_UM", "funding", ["BTCUSDT"])
    load_minutes(minute_store, tmp_path, seed=0)
    with store.get_client() as client, Reader(clickhouse_client=client, clickhouse_database=store.database,
                                              timescale_conn=minute_store) as reader:
        yield reader


def duck(root, dataset: str) -> pl.DataFrame:
    """The dataset's files as DuckDB reads them (hive partitions: venue, date)."""
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        return con.sql(f"SELECT * FROM read_parquet('{root}/{dataset}/**/*.parquet', hive_partitioning = true)").pl()


def test_duckdb_and_polars_read_the_export_back_as_the_stores_hold_it(loaded, tmp_path):
    root = tmp_path / "export"
    report = export_day(loaded, root, DAY)
    assert sorted(report.written) == sorted([
        TRADES, "bars_1m/venue=BINANCE/date=2025-01-15/part-0.parquet",
        "funding/venue=BINANCE_UM/date=2025-01-15/part-0.parquet",
        "minute_bars/venue=SSE/date=2025-01-15/part-0.parquet", "minute_bars/venue=SZSE/date=2025-01-15/part-0.parquet"])
    assert not list(root.rglob("*.tmp")) and report.bytes == sum(p.stat().st_size for p in root.rglob("*.parquet"))
    for dataset, venue in (("trades", "BINANCE"), ("bars_1m", "BINANCE"), ("funding", "BINANCE_UM")):
        stored = loaded.dataset(dataset, venue, None, START, END)
        order = list(spec_for(dataset).order_by)
        by_duckdb = duck(root, dataset)
        assert by_duckdb["date"].unique().to_list() == [DAY]
        assert_frame_equal(by_duckdb.select(stored.columns).sort(order), stored.sort(order))
        by_polars = pl.scan_parquet(root / dataset / "**" / "*.parquet", hive_partitioning=True).collect()
        assert_frame_equal(by_polars.select(stored.columns).sort(order), stored.sort(order))
    minutes = loaded.minute_bars(None, DAY, "2025-01-16")
    by_duckdb = duck(root, "minute_bars")
    assert sorted(by_duckdb["venue"].unique()) == ["SSE", "SZSE"] and by_duckdb.height == minutes.height == 480
    assert_frame_equal(by_duckdb.select(minutes.columns).sort("code", "time"), minutes)
    identity = stored_identity(root / TRADES)
    assert identity["rows"] == 800 and sorted(identity["loads"]) == ["BTCUSDT", "ETHUSDT"]
    assert META_KEY == "marketdata.export"


def test_an_unchanged_store_exports_nothing_and_a_reload_rewrites_just_its_partition(
        loaded, store, minute_store, tmp_path):
    root = tmp_path / "export"
    first = export_day(loaded, root, DAY)
    again = export_day(loaded, root, DAY)
    assert again.written == [] and sorted(again.skipped) == sorted(first.written) and again.rows == 0
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*.parquet")}
    with CryptoReplayServer(ReplayConfig(seed=3, trades_per_day=300)) as server:
        ingest(store, server.base_url, "BINANCE", "trades", ["BTCUSDT"], run_id="run-2")
    load_minutes(minute_store, tmp_path, seed=5)  # another file for the same bars: new values
    third = export_day(loaded, root, DAY)
    assert sorted(third.written) == [
        "minute_bars/venue=SSE/date=2025-01-15/part-0.parquet", "minute_bars/venue=SZSE/date=2025-01-15/part-0.parquet",
        TRADES]
    assert third.rows == 700 + 480
    changed = {p for p in root.rglob("*.parquet") if p.stat().st_mtime_ns != before[p]}
    assert {str(p.relative_to(root)) for p in changed} == set(third.written)
    assert_frame_equal(duck(root, "trades").select(spec_for("trades").column_names).sort("instrument", "ts", "trade_id"),
                       loaded.trades("BINANCE", None, START, END))
    # a re-load that empties the day: the partition loses its file
    with store.get_client() as client:
        writer.write_slice(client, store.database, "funding", columns_of("funding").frame("BINANCE_UM", "BTCUSDT"),
                           "BINANCE_UM", "BTCUSDT", DAY, "empty")
    fourth = export_day(loaded, root, DAY, datasets=["funding"])
    assert fourth.removed == ["funding/venue=BINANCE_UM/date=2025-01-15/part-0.parquet"] and not fourth.written
    assert not (root / fourth.removed[0]).exists()


def test_the_asset_exports_a_partition_in_one_step(loaded, store, timescale, tmp_path, monkeypatch):
    monkeypatch.setenv("MARKETDATA_EXPORT_DIR", str(tmp_path / "asset_export"))
    result = dg.materialize([parquet_export], partition_key=DAY.isoformat(),
                            resources={"clickhouse": store, "timescale": timescale})
    assert result.success
    meta = result.asset_materializations_for_node("parquet_export")[0].metadata
    assert meta["files_written"].value == 3 and meta["rows_written"].value == 800 + 1440 + 3
    assert meta["path"].value == str(tmp_path / "asset_export")
    assert (tmp_path / "asset_export" / TRADES).exists()
    again = dg.materialize([parquet_export], partition_key=DAY.isoformat(),
                           resources={"clickhouse": store, "timescale": timescale})
    meta = again.asset_materializations_for_node("parquet_export")[0].metadata
    assert meta["files_written"].value == 0 and meta["files_skipped"].value == 3
