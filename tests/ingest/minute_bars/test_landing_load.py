"""The landing load engine against the real TimescaleDB: a server dying mid-load fails it within
seconds naming the server, and a file that can't be loaded is set aside while the others load."""

from __future__ import annotations

import json
import threading
import time
from datetime import date
from pathlib import Path

import polars as pl
import psycopg
import pytest

from marketdata_assets.core import progress, settings
from marketdata_assets.core.errors import StoreUnavailable
from marketdata_assets.core.files import reason_file_of
from marketdata_assets.core.landing_files import LinkRefused
from marketdata_assets.ingest.minute_bars import landing as landing_load
from marketdata_assets.ingest.minute_bars import loader
from marketdata_assets.replay import minute_csv as fx
from marketdata_assets.resources import TimescaleResource
from marketdata_assets.sources.minute_csv.profiles import load_profiles
from marketdata_assets.sources.minute_csv.reader import open_minute_csv
from tests.conftest import recreate_database, worker_name
from tests.support.fault_proxy import FaultProxy

DB = worker_name("marketdata_landing_load_test")
DAYS = fx.trading_days(date(2026, 1, 5), 5)
MONTHS = [date(2026, 1, 1)]


def resource(port: int) -> TimescaleResource:
    return TimescaleResource(
        host="127.0.0.1",
        port=port,
        user=settings.get("TIMESCALE_USER"),
        password=settings.get("TIMESCALE_PASSWORD"),
        dbname=DB,
        sslmode="disable",
        connect_timeout_s=2,
    )


def load(
    root: Path, quarantine_root: Path, profiles=None, log=lambda message: None
) -> landing_load.LandingLoad:
    """One load against the real server."""
    live = resource(int(settings.get("TIMESCALE_PORT")))
    try:
        return landing_load.load_landing(
            live.connection,
            root,
            MONTHS,
            quarantine_root=quarantine_root,
            use_copy=True,
            workers=2,
            profiles=profiles,
            log=log,
        )
    finally:
        live.close()


def stored() -> pl.DataFrame:
    with psycopg.connect(
        host="127.0.0.1",
        port=settings.get("TIMESCALE_PORT"),
        user="postgres",
        password=settings.get("TIMESCALE_PASSWORD"),
        dbname=DB,
    ) as conn:
        rows = conn.execute(
            "SELECT time, code, name, open, high, low, close, volume, amount "
            "FROM stock_1min_qfq ORDER BY code, time"
        ).fetchall()
    return pl.DataFrame(rows, schema=fx.MINUTE_SCHEMA, orient="row")


@pytest.fixture
def landing(tmp_path) -> tuple[Path, pl.DataFrame]:
    recreate_database(DB, extension=True)
    root = tmp_path / "landing"
    root.mkdir()
    truths = []
    for i in range(16):
        bars = fx.make_bars(f"{600000 + i}.SH", DAYS, seed=i)
        fx.write_text(root / f"{600000 + i}.SH.csv", fx.render(bars, "tushare"))
        truths.append(fx.expected(bars, "tushare"))
    return root, pl.concat(truths).sort("code", "time")


def test_server_dying_mid_load_fails_within_seconds_naming_it_then_a_rerun_is_exact(landing, tmp_path):
    root, truth = landing
    proxy = FaultProxy("127.0.0.1", int(settings.get("TIMESCALE_PORT")))
    dying = resource(proxy.port)
    killed_at: list[float] = []

    def log(message: str) -> None:  # the first finished file is the event: the server dies right there
        if message.startswith("[") and not killed_at:
            proxy.kill()
            killed_at.append(time.monotonic())

    outcome: dict = {}

    def run() -> None:
        try:
            landing_load.load_landing(
                dying.connection,
                root,
                MONTHS,
                quarantine_root=tmp_path / "q",
                use_copy=True,
                workers=2,
                log=log,
            )
        except Exception as error:  # noqa: BLE001 - the test inspects it
            outcome["error"], outcome["at"] = error, time.monotonic()

    worker = threading.Thread(target=run)
    worker.start()
    worker.join(timeout=90)
    dying.close()
    assert not worker.is_alive(), "the load hung after the server died"
    assert killed_at, "the load never finished a file"
    error = outcome["error"]
    assert isinstance(error, StoreUnavailable), repr(error)
    assert outcome["at"] - killed_at[0] < 10  # was 30 s of pool timeout per queued file
    assert f"TimescaleDB at 127.0.0.1:{proxy.port}" in str(error) and "make stack-up" in str(error)
    assert "connection lost" in str(error)
    assert not (tmp_path / "q").exists()  # nothing was quarantined for the server's fault
    assert 0 < stored().height < truth.height

    report = load(root, tmp_path / "q")
    assert report.metadata()["files_loaded"] + report.metadata()["files_skipped"] == 16
    assert report.metadata()["files_skipped"] >= 1  # what committed before the death is not redone
    assert stored().equals(truth)


def test_a_file_the_database_refuses_is_quarantined_and_the_others_load(landing, tmp_path):
    """A NUL byte in a name passes the CSV reader but no Postgres text column takes it: that file
    alone is set aside with the reason, nothing of it is stored, the other files load."""
    root, truth = landing
    bad = fx.make_bars("688001.SH", DAYS[:1], seed=99).with_columns(name=pl.lit("bad\x00name"))
    fx.write_text(root / "688001.SH.csv", fx.render(bad, "cn_minute"))
    heard = []
    with progress.listening(lambda *report: heard.append(report[1:])):
        report = load(root, tmp_path / "q")
    meta = report.metadata()
    assert (meta["files_loaded"], meta["files_quarantined"]) == (16, 1)
    assert heard == [(k, 17, "files") for k in range(18)]  # every file settled, the quarantined one too
    (entry,) = report.quarantined
    assert entry["file"] == "688001.SH.csv"
    assert entry["reason"].startswith("688001.SH.csv: the database refused the file's rows: ")
    assert "0x00" in entry["reason"] and "column name" in entry["reason"]
    assert entry["reason"] in (tmp_path / "q" / "688001.SH.csv.reason.txt").read_text()
    assert not (root / "688001.SH.csv").exists()
    assert stored().equals(truth)


def test_a_time_column_that_never_parses_is_quarantined_then_retried_when_a_profile_reads_it(
    landing, tmp_path
):
    """US-style dates: no row's time parses. The file is set aside naming the column (not loaded as 0
    rows and remembered as done); the same profiles leave it there; a profile that reads the dates
    brings it back and loads it."""
    root, truth = landing
    us = fx.make_bars("688002.SH", DAYS[:2], seed=5)
    text = fx.render(us, "tushare").splitlines()
    header, rows = text[0], text[1:]
    rows = [
        ",".join([cells[0], f"{cells[1][5:7]}/{cells[1][8:10]}/{cells[1][:4]}{cells[1][10:]}", *cells[2:]])
        for cells in (row.split(",") for row in rows)
    ]
    (root / "688002.SH.csv").write_text("\n".join([header, *rows]) + "\n")
    quarantine_root = tmp_path / "q"
    fixed = load_profiles(
        {
            "name": "us_dates",
            "columns": {
                "ts_code": "code",
                "trade_time": "time",
                "open": "open",
                "high": "high",
                "low": "low",
                "close": "close",
                "vol": "volume",
                "amount": "amount",
            },
            "time_formats": ["%m/%d/%Y %H:%M:%S", "%m/%d/%Y %H:%M"],
            "volume_unit": "shares",
        }
    )
    first = load(root, quarantine_root)
    (entry,) = first.quarantined
    assert (
        entry["file"] == "688002.SH.csv"
        and "never parses" in entry["reason"]
        and "trade_time" in entry["reason"]
    )
    assert (quarantine_root / "688002.SH.csv").exists() and stored().equals(truth)

    again = load(root, quarantine_root)
    assert (again.released, again.quarantined) == ([], [])  # the same profiles can't read it
    assert (quarantine_root / "688002.SH.csv").exists()

    retried = load(root, quarantine_root, fixed)
    assert retried.released == ["688002.SH.csv"] and retried.quarantined == []
    assert retried.metadata()["files_loaded"] == 1 and retried.metadata()["rows_loaded"] == us.height
    assert not (quarantine_root / "688002.SH.csv").exists()
    assert not (quarantine_root / "688002.SH.csv.reason.txt").exists()
    assert stored().height == truth.height + us.height


def test_a_file_with_a_name_near_the_limit_loads_and_its_rejects_file_is_written(landing, tmp_path):
    """A 249-character file name: `<name>.rejects.csv` would pass the 255-byte limit, so the rejects
    file gets a shortened, hashed name; the file's good rows load."""
    root, truth = landing
    bars = fx.make_bars("688003.SH", DAYS[:1], seed=7)
    lines = fx.render(bars, "tushare").splitlines()
    lines[4] = lines[4].replace(lines[4].split(",")[2], "12.3abc")
    name = "x" * 245 + ".csv"
    (root / name).write_text("\n".join(lines) + "\n")
    report = load(root, tmp_path / "q")
    meta = report.metadata()
    assert (meta["files_loaded"], meta["rows_rejected"], meta["files_quarantined"]) == (17, 1, 0)
    (long_load,) = [f for f in report.files if f.file == name]
    written = Path(long_load.rejects_file)
    assert written.exists() and len(written.name.encode()) <= 255 and written.name.endswith(".rejects.csv")
    assert "12.3abc" in written.read_text()
    assert stored().height == truth.height + bars.height - 1


def test_a_link_in_the_landing_area_is_quarantined_unread_naming_the_link(landing, tmp_path):
    """A link to a file outside whose first line is a secret, and a linked directory holding a CSV:
    neither is read, both are quarantined with a reason naming the link in the landing area; the
    secret and the target's path appear nowhere in the run's metadata, log or quarantine reasons (the
    asset publishes these); the other files load. A link met at open time is refused too."""
    root, truth = landing
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = "root:x:0:0:SECRET-7f3a9c:/root:/bin/bash"
    (outside / "passwd").write_text(secret + "\n")
    fx.write_text(outside / "688002.SH.csv", fx.render(fx.make_bars("688002.SH", DAYS, seed=7), "tushare"))
    (root / "2026").mkdir()
    (root / "2026" / "600999.SH.csv").symlink_to(outside / "passwd")
    (root / "elsewhere").symlink_to(outside)  # a directory link: never entered
    assert loader.landing_files(root) == sorted(root.glob("*.csv"))  # what the sensor reads: no link
    lines: list[str] = []
    report = load(root, tmp_path / "q", log=lines.append)
    meta = report.metadata()
    assert (meta["files_loaded"], meta["files_quarantined"]) == (16, 2)
    reasons = {entry["file"]: entry["reason"] for entry in report.quarantined}
    assert reasons == {
        name: f"{name}: a symbolic link, not read (it points outside the landing area; a landing "
        "area is read without following links: put the file itself there)"
        for name in ("2026/600999.SH.csv", "elsewhere")
    }
    notes = [reason_file_of(tmp_path / "q" / name).read_text() for name in reasons]
    with psycopg.connect(
        host="127.0.0.1",
        port=settings.get("TIMESCALE_PORT"),
        user="postgres",
        password=settings.get("TIMESCALE_PASSWORD"),
        dbname=DB,
    ) as conn:
        recorded = conn.execute("SELECT source_file, reason, profiles FROM minute_bar_quarantine").fetchall()
    assert sorted(recorded) == sorted((name, reason, None) for name, reason in reasons.items())
    published = json.dumps(
        [meta, report.quarantined, report.files_table(), lines, notes, recorded], default=str
    )
    assert "SECRET-7f3a9c" not in published and str(outside) not in published and "688002" not in published
    assert all("link_target: not recorded (it points outside the landing area)" in note for note in notes)
    assert stored().equals(truth)
    moved = tmp_path / "q" / "2026" / "600999.SH.csv"
    assert moved.is_symlink() and (outside / "passwd").read_text() == secret + "\n"
    with pytest.raises(LinkRefused) as refused:  # a link swapped in after the listing: refused when opened
        open_minute_csv(moved)
    assert "SECRET" not in str(refused.value) and str(outside) not in str(refused.value)


def test_files_load_largest_first_by_halving_size_classes_each_in_path_order(tmp_path):
    sizes = {  # class: halvings below the largest file (1,000 bytes)
        "000003.SZ.csv": 400,  # 1
        "600000.SH.csv": 1000,  # 0
        "000001.SZ.csv": 600,  # 0
        "300001.SZ.csv": 520,  # 0
        "000002.SZ.csv": 10,  # 6
        "600001.SH.csv": 300,  # 1
    }
    for name, size in sizes.items():
        (tmp_path / name).write_bytes(b"x" * size)
    order = landing_load.load_order(tmp_path / name for name in sizes)
    assert [path.name for path in order] == [
        "000001.SZ.csv",
        "300001.SZ.csv",
        "600000.SH.csv",
        "000003.SZ.csv",
        "600001.SH.csv",
        "000002.SZ.csv",
    ]
    assert landing_load.load_order([]) == []
