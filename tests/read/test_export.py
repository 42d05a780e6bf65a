"""The Parquet export against the real stores, on data the engine, the minute-bar loader and the
alpha importer loaded from replays: DuckDB and Polars read the Hive-partitioned files back equal to
the read API (and so to the stores), the monthly K-line and the alphas too; a second export with
nothing changed writes nothing; a re-load rewrites just its partition; a day emptied (a month no
longer stored) loses its file; a dated snapshot is never rewritten and the AsOfUnsupported message's
command keeps one; the Dagster asset does the same in one step."""

from __future__ import annotations

import json
import os
import re
import shlex
from datetime import date, datetime, timedelta
from unittest import mock
from zoneinfo import ZoneInfo

import dagster as dg
import duckdb
import polars as pl
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from polars.testing import assert_frame_equal

from marketdata_assets.apps.cli import cli
from marketdata_assets.core import progress
from marketdata_assets.datasets.frames import day_window, spec_for
from marketdata_assets.datasets.wire import columns_of
from marketdata_assets.defs.exports.assets import parquet_export
from marketdata_assets.ingest.alphas.importer import import_files
from marketdata_assets.ingest.minute_bars.loader import file_sha256, load_file
from marketdata_assets.read import AsOfUnsupported, Reader
from marketdata_assets.read.export import (
    META_KEY,
    SnapshotConflict,
    export_day,
    export_days,
    snapshot_dir,
    stored_identity,
    write_atomic,
)
from marketdata_assets.replay.alpha_factory import make_alpha
from marketdata_assets.replay.crypto import CryptoReplayServer, ReplayConfig
from marketdata_assets.replay.minute_csv import make_bars, render, write_text
from marketdata_assets.stores.clickhouse import writer
from marketdata_assets.stores.timescale import kline
from tests.read.conftest import DAY, ingest

START, END = day_window(DAY)
TRADES_FILE = "trades/venue=BINANCE/date=2025-01-15/part-0.parquet"
NEW_YORK = ZoneInfo("America/New_York")
KLINE_FILES = [
    "kline_monthly/venue=SSE/month=2025-01/part-0.parquet",
    "kline_monthly/venue=SZSE/month=2025-01/part-0.parquet",
]
ALPHA_FILES = [
    "alphas/type=REGULAR/month=2025-06/part-0.parquet",
    "alphas/type=REGULAR/month=2025-07/part-0.parquet",
    "alphas/type=SUPER/month=2025-06/part-0.parquet",
    "alphas/type=SUPER/month=2025-07/part-0.parquet",
]


def load_minutes(conn, tmp_path, seed: int) -> None:
    """600000.SH and 000001.SZ on DAY (a trading day in Shanghai too), from one CSV file."""
    truth = pl.concat(
        [make_bars(code, [DAY], seed=seed + i) for i, code in enumerate(["600000.SH", "000001.SZ"])]
    )
    path = write_text(tmp_path / f"bars-{seed}.csv", render(truth, "cn_minute"))
    load_file(
        conn,
        path,
        path.name,
        [date(2025, 1, 1)],
        sha256=file_sha256(path),
        use_copy=True,
        run_id="test",
        reject_dir=tmp_path / "rejects",
    )


def import_alphas(dbs, tmp_path, alphas: list[dict], mode: str = "incremental") -> None:
    files = []
    for alpha in alphas:
        path = tmp_path / "alphas" / f"{alpha['id']}.json"
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(alpha))
        files.append((path.name, path))
    import_files(files, db_regular=dbs[0], db_super=dbs[1], mode=mode)


def six_alphas() -> list[dict]:
    """REGULAR and SUPER alphas created 21:00 New York from June 28 to July 3: June 30's is July 1 in UTC,
    a June alpha by the New York month the export partitions by."""
    return [
        make_alpha(
            i,
            ("REGULAR", "SUPER")[i % 2],
            date_created=datetime(2025, 6, 28, 21, tzinfo=NEW_YORK) + timedelta(days=i),
        )
        for i in range(6)
    ]


@pytest.fixture
def alpha_dbs(dbs, monkeypatch):
    """The alpha databases of the test (empty) as the Reader's (ALPHA_DB_REGULAR / _SUPER)."""
    monkeypatch.setenv("ALPHA_DB_REGULAR", dbs[0].name)
    monkeypatch.setenv("ALPHA_DB_SUPER", dbs[1].name)
    return dbs


@pytest.fixture
def loaded(store, minute_store, alpha_dbs, mongo, tmp_path):
    with CryptoReplayServer(ReplayConfig(seed=2, trades_per_day=400)) as server:
        ingest(store, server.base_url, "BINANCE", "trades", ["BTCUSDT", "ETHUSDT"])
        ingest(store, server.base_url, "BINANCE", "bars_1m", ["BTCUSDT"])
        ingest(store, server.base_url, "BINANCE_UM", "funding", ["BTCUSDT"])
    load_minutes(minute_store, tmp_path, seed=0)
    with (
        store.get_client() as client,
        Reader(
            clickhouse_client=client,
            clickhouse_database=store.database,
            timescale_conn=minute_store,
            mongo_client=mongo.client,
        ) as reader,
    ):
        yield reader


@pytest.fixture
def monthly(minute_store, alpha_dbs, mongo, tmp_path):
    """The stores without ClickHouse: minute bars of DAY, the K-line of January refreshed from them, six
    alphas imported."""
    load_minutes(minute_store, tmp_path, seed=0)
    kline.refresh_window(minute_store, date(2025, 1, 1), date(2025, 2, 1))
    import_alphas(alpha_dbs, tmp_path, six_alphas())
    with Reader(timescale_conn=minute_store, mongo_client=mongo.client) as reader:
        yield reader


def comparable(frame: pl.DataFrame) -> pl.DataFrame:
    """A read frame or a file's rows, to compare: aware times in UTC, the bar convention columns (label,
    adjustment) and the trades' id_sequence (Enums in a read, dictionary text in a file) as text. The files
    say what the reads say."""
    aware = [c for c, t in frame.schema.items() if isinstance(t, pl.Datetime) and t.time_zone]
    stated = [c for c in ("label", "adjustment", "id_sequence") if c in frame.columns]
    return frame.with_columns(
        *(pl.col(c).dt.convert_time_zone("UTC") for c in aware), *(pl.col(c).cast(pl.String) for c in stated)
    )


def scan(root, dataset: str) -> pl.DataFrame:
    return pl.scan_parquet(root / dataset / "**" / "*.parquet", hive_partitioning=True).collect()


def files(root) -> dict:
    """Every Parquet file under root: its bytes (a file rewritten in place shows)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.parquet"))}


def duck(root, dataset: str) -> pl.DataFrame:
    """The dataset's files as DuckDB reads them (hive partitions: venue, date)."""
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        return con.sql(
            f"SELECT * FROM read_parquet('{root}/{dataset}/**/*.parquet', hive_partitioning = true)"
        ).pl()


def test_duckdb_and_polars_read_the_export_back_as_the_stores_hold_it(loaded, tmp_path):
    root = tmp_path / "export"
    report = export_day(loaded, root, DAY)
    assert sorted(report.written) == sorted(
        [
            TRADES_FILE,
            "bars_1m/venue=BINANCE/date=2025-01-15/part-0.parquet",
            "funding/venue=BINANCE_UM/date=2025-01-15/part-0.parquet",
            "minute_bars/venue=SSE/date=2025-01-15/part-0.parquet",
            "minute_bars/venue=SZSE/date=2025-01-15/part-0.parquet",
        ]
    )
    assert not list(root.rglob("*.tmp")) and report.bytes == sum(
        p.stat().st_size for p in root.rglob("*.parquet")
    )
    for dataset, venue in (("trades", "BINANCE"), ("bars_1m", "BINANCE"), ("funding", "BINANCE_UM")):
        stored = comparable(loaded.dataset(dataset, venue, None, START, END))
        order = list(spec_for(dataset).order_by)
        by_duckdb = duck(root, dataset)
        assert by_duckdb["date"].unique().to_list() == [DAY]
        assert_frame_equal(comparable(by_duckdb.select(stored.columns)).sort(order), stored.sort(order))
        by_polars = pl.scan_parquet(root / dataset / "**" / "*.parquet", hive_partitioning=True).collect()
        assert_frame_equal(comparable(by_polars.select(stored.columns)).sort(order), stored.sort(order))
    assert scan(root, "bars_1m")["label"].unique().to_list() == [
        "start"
    ]  # the bars' convention travels with them
    assert scan(root, "trades")["id_sequence"].unique().to_list() == [
        "aggTrade"
    ]  # and the trades' ids theirs
    minutes = loaded.minute_bars(None, DAY, "2025-01-16")
    by_duckdb = duck(root, "minute_bars")
    assert (
        sorted(by_duckdb["venue"].unique()) == ["SSE", "SZSE"] and by_duckdb.height == minutes.height == 480
    )
    assert_frame_equal(
        comparable(by_duckdb.select(minutes.columns)).sort("code", "time"), comparable(minutes)
    )
    by_polars = scan(root, "minute_bars")
    assert by_polars["time"].dtype == pl.Datetime(
        "us", "Asia/Shanghai"
    )  # as read: Beijing, aware, end-stamped
    assert set(zip(by_polars["label"], by_polars["adjustment"])) == {("end", "qfq")}
    identity = stored_identity(root / TRADES_FILE)
    assert identity["rows"] == 800 and sorted(identity["loads"]) == ["BTCUSDT", "ETHUSDT"]
    assert META_KEY == "marketdata.export"


def test_an_unchanged_store_exports_nothing_and_a_reload_rewrites_just_its_partition(
    loaded, store, minute_store, tmp_path
):
    root = tmp_path / "export"
    heard = []
    with progress.listening(lambda *report: heard.append(report)):
        first = export_day(loaded, root, DAY)
    total = len(first.written) + len(first.skipped) + len(first.empty) + len(first.removed)
    assert [(done, t, unit) for _, done, t, unit in heard] == [
        (k, total, "partitions") for k in range(1, total + 1)
    ]
    again = export_day(loaded, root, DAY)
    assert again.written == [] and sorted(again.skipped) == sorted(first.written) and again.rows == 0
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*.parquet")}
    with CryptoReplayServer(ReplayConfig(seed=3, trades_per_day=300)) as server:
        ingest(store, server.base_url, "BINANCE", "trades", ["BTCUSDT"], run_id="run-2")
    load_minutes(minute_store, tmp_path, seed=5)  # another file for the same bars: new values
    third = export_day(loaded, root, DAY)
    assert sorted(third.written) == [
        "minute_bars/venue=SSE/date=2025-01-15/part-0.parquet",
        "minute_bars/venue=SZSE/date=2025-01-15/part-0.parquet",
        TRADES_FILE,
    ]
    assert third.rows == 700 + 480
    changed = {p for p in root.rglob("*.parquet") if p.stat().st_mtime_ns != before[p]}
    assert {str(p.relative_to(root)) for p in changed} == set(third.written)
    assert_frame_equal(
        comparable(duck(root, "trades").select(*spec_for("trades").column_names, "id_sequence")).sort(
            "instrument", "ts", "trade_id"
        ),
        comparable(loaded.trades("BINANCE", None, START, END)),
    )
    # a re-load that empties the day: the partition loses its file
    with store.get_client() as client:
        writer.write_slice(
            client,
            store.database,
            "funding",
            columns_of("funding").frame("BINANCE_UM", "BTCUSDT"),
            "BINANCE_UM",
            "BTCUSDT",
            DAY,
            "empty",
        )
    fourth = export_day(loaded, root, DAY, datasets=["funding"])
    assert (
        fourth.removed == ["funding/venue=BINANCE_UM/date=2025-01-15/part-0.parquet"] and not fourth.written
    )
    assert not (root / fourth.removed[0]).exists()
    fifth = export_day(
        loaded, tmp_path / "fresh", DAY, datasets=["funding"]
    )  # an empty directory: no file to keep
    assert fifth.empty == fourth.removed and not fifth.skipped and "1 with no rows" in fifth.summary()


def test_the_kline_and_the_alphas_are_exported_whole_and_read_back_as_the_reader_reads_them(
    monthly, alpha_dbs, minute_store, tmp_path
):
    root = tmp_path / "export"
    report = export_days(
        monthly, root, []
    )  # no day: only the K-line and the alphas (ClickHouse is not opened)
    assert sorted(report.written) == sorted(KLINE_FILES + ALPHA_FILES) and report.rows == 2 + 6
    months = scan(root, "kline_monthly").with_columns(
        pl.col("month").str.strptime(pl.Datetime("us"), "%Y-%m").dt.replace_time_zone("Asia/Shanghai")
    )
    stored = comparable(monthly.kline(None, "2025-01-01", "2025-02-01"))
    assert stored.height == 2 and sorted(months["venue"]) == ["SSE", "SZSE"]
    assert_frame_equal(comparable(months.select(stored.columns)).sort("code"), stored.sort("code"))
    alphas, back = monthly.alphas(), scan(root, "alphas")
    assert_frame_equal(back.select(alphas.columns).sort("id"), alphas.sort("id"))
    made = six_alphas()
    assert dict(zip(back["id"], back["month"])) == {
        a["id"]: ("2025-06" if i < 3 else "2025-07") for i, a in enumerate(made)
    }
    again = export_days(monthly, root, [])
    assert again.written == [] and again.rows == 0 and sorted(again.skipped) == sorted(report.written)
    # new minute bars re-aggregated, an alpha changed in place, July's only REGULAR alpha deleted
    minute_store.rollback()  # end the reads' transaction: a K-line refresh runs outside one
    load_minutes(minute_store, tmp_path, seed=5)
    kline.refresh_window(minute_store, date(2025, 1, 1), date(2025, 2, 1))
    alpha_dbs[1]["alphas"].update_one({"_id": made[1]["id"]}, {"$set": {"grade": "SPECTACULAR"}})
    alpha_dbs[0]["alphas"].delete_one({"_id": made[4]["id"]})
    third = export_days(monthly, root, [])
    assert sorted(third.written) == sorted(KLINE_FILES + ["alphas/type=SUPER/month=2025-06/part-0.parquet"])
    assert third.removed == ["alphas/type=REGULAR/month=2025-07/part-0.parquet"] and third.rows == 2 + 1
    assert_frame_equal(scan(root, "alphas").select(alphas.columns).sort("id"), monthly.alphas().sort("id"))
    assert_frame_equal(
        comparable(scan(root, "kline_monthly").drop("venue", "month")).sort("code"),
        comparable(monthly.kline(None, "2025-01-01", "2025-02-01")).drop("month").sort("code"),
    )


def test_a_dated_snapshot_is_never_rewritten_and_another_date_keeps_the_first(monthly, alpha_dbs, tmp_path):
    root, first_date, next_date = tmp_path / "export", date(2026, 3, 2), date(2026, 3, 3)
    names = ["minute_bars", "kline_monthly", "alphas"]
    minute_files = [f"minute_bars/venue={v}/date=2025-01-15/part-0.parquet" for v in ("SSE", "SZSE")]
    first = export_days(monthly, root, [DAY], datasets=names, dated=True, snapshot_date=first_date)
    assert first.root == str(root / "snapshots" / "2026-03-02") and first.rows == 480 + 2 + 6
    assert sorted(first.written) == sorted(minute_files + KLINE_FILES + ALPHA_FILES)
    assert [p.name for p in root.iterdir()] == ["snapshots"]  # the export in place is not touched
    kept = files(root)
    again = export_days(monthly, root, [DAY], datasets=names, dated=True, snapshot_date=first_date)
    assert again.written == [] and len(again.skipped) == len(first.written) and files(root) == kept
    existing = (
        root / "snapshots" / "2026-03-02" / ALPHA_FILES[0]
    )  # publishing never replaces a file, even racing
    with pytest.raises(SnapshotConflict, match="appeared while this export wrote it"):
        write_atomic(existing, pq.read_schema(existing), [pq.ParquetFile(existing).read()], {}, replace=False)
    assert files(root) == kept and not list(root.rglob("*.tmp"))
    # the store changed: the same date's snapshot refuses, naming the file, and writes nothing at all
    made = six_alphas()
    alpha_dbs[0]["alphas"].update_one({"_id": made[0]["id"]}, {"$set": {"grade": "SPECTACULAR"}})
    import_alphas(
        alpha_dbs, tmp_path, [make_alpha(99, date_created=datetime(2025, 8, 1, 12, tzinfo=NEW_YORK))]
    )
    with pytest.raises(
        SnapshotConflict, match=r"1 file\(s\) .*alphas/type=REGULAR/month=2025-06/part-0\.parquet"
    ):
        export_days(monthly, root, [DAY], datasets=names, dated=True, snapshot_date=first_date)
    assert files(root) == kept and not list(root.rglob("*.tmp"))
    # another date: a snapshot of its own, the first one kept byte for byte
    other = export_days(monthly, root, [DAY], datasets=names, dated=True, snapshot_date=next_date)
    assert sorted(other.written) == sorted(
        first.written + ["alphas/type=REGULAR/month=2025-08/part-0.parquet"]
    )
    assert {k: v for k, v in files(root).items() if k.startswith("snapshots/2026-03-02/")} == kept
    grades = [
        dict(zip(*scan(root / "snapshots" / day, "alphas").select("id", "grade").to_dict().values()))
        for day in ("2026-03-02", "2026-03-03")
    ]
    assert grades[0][made[0]["id"]] != "SPECTACULAR" and grades[1][made[0]["id"]] == "SPECTACULAR"


def test_the_as_of_refusal_ends_with_the_command_that_keeps_dated_snapshots_and_it_runs(
    monthly, minute_store, quality_db, tmp_path, monkeypatch
):
    monkeypatch.setenv("MARKETDATA_EXPORT_DIR", str(tmp_path / "export"))
    monkeypatch.setenv(
        "TIMESCALE_DB", quality_db
    )  # the command's Reader sees the test's schema, as `monthly` does
    monkeypatch.setenv(
        "PGOPTIONS", f"-c search_path={minute_store.execute('SELECT current_schema()').fetchone()[0]}"
    )
    today = snapshot_dir(tmp_path / "export")
    refusals = {
        "kline_monthly": lambda: monthly.kline(None, "2025-01-01", "2025-02-01", as_of="2025-01-20"),
        "alphas": lambda: monthly.alphas(as_of="2025-07-02"),
        "minute_bars": lambda: monthly.minute_bars(None, DAY, "2025-01-16", as_of="2025-01-16"),
    }
    calls = {}
    for dataset, refused in refusals.items():
        with pytest.raises(AsOfUnsupported) as raised:
            refused()
        command, calls[dataset] = re.findall(r"`([^`]+)`", str(raised.value))[-2:]
        assert str(raised.value).endswith(f"`{command}` (in Python: `{calls[dataset]}`)")
        assert command == f"marketdata export --dated --dataset {dataset}"
        with mock.patch.dict(
            os.environ
        ):  # the command fills in the settings' defaults: not for the next tests
            out = CliRunner().invoke(cli, shlex.split(command)[1:])
        assert out.exit_code == 0, out.output
        written = sorted(str(p.relative_to(today)) for p in (today / dataset).rglob("*.parquet"))
        assert written == {"kline_monthly": KLINE_FILES, "alphas": ALPHA_FILES, "minute_bars": []}[dataset]
        assert f"{len(written)} file(s) written" in out.output and str(today) in out.output
    kept = files(today)
    for call in calls.values():
        exec(call)  # noqa: S102  (the message's Python call: the same snapshot again, nothing to write)
    assert files(today) == kept and scan(today, "alphas").height == 6


def test_the_asset_exports_a_partition_in_one_step(
    loaded, store, timescale, mongo, alpha_dbs, tmp_path, monkeypatch
):
    monkeypatch.setenv("MARKETDATA_EXPORT_DIR", str(tmp_path / "asset_export"))
    import_alphas(alpha_dbs, tmp_path, six_alphas())
    resources = {"clickhouse": store, "timescale": timescale, "mongo": mongo}

    def run(dated: bool) -> dict:
        result = dg.materialize(
            [parquet_export],
            partition_key=DAY.isoformat(),
            resources=resources,
            run_config={"ops": {"parquet_export": {"config": {"dated": dated}}}},
        )
        assert result.success
        return result.asset_materializations_for_node("parquet_export")[0].metadata

    def rows_in(root, written) -> int:
        return sum(pq.read_metadata(root / path).num_rows for path in written)

    root = tmp_path / "asset_export"
    meta = run(dated=False)
    written = [line.strip("- `") for line in meta["written"].value.splitlines()]
    daily = [
        TRADES_FILE,
        "bars_1m/venue=BINANCE/date=2025-01-15/part-0.parquet",
        "funding/venue=BINANCE_UM/date=2025-01-15/part-0.parquet",
    ]
    assert meta["path"].value == str(root) and meta["run_files_written"].value == len(written)
    assert sorted(p for p in written if not p.startswith("kline_monthly/")) == sorted([*daily, *ALPHA_FILES])
    # the day's own files and rows; the run's count every row written: the alphas' and the K-line's too
    assert meta["files_written"].value == len(daily) and meta["rows_written"].value == 800 + 1440 + 3
    assert (
        meta["run_rows_written"].value
        == rows_in(root, written)
        == 800 + 1440 + 3 + 6 + rows_in(root, [p for p in written if p.startswith("kline_monthly/")])
    )
    meta = run(dated=False)
    assert meta["run_files_written"].value == 0 and meta["run_files_skipped"].value == len(written)
    assert meta["files_written"].value == 0 and meta["files_skipped"].value == len(daily)
    meta = run(dated=True)  # a dated snapshot of the same: every file again, under snapshots/<today>
    assert meta["path"].value == str(snapshot_dir(root)) and meta["run_files_written"].value == len(written)
    assert meta["run_rows_written"].value == rows_in(snapshot_dir(root), written)
    meta = run(dated=True)
    assert meta["run_files_written"].value == 0 and meta["run_rows_written"].value == 0
