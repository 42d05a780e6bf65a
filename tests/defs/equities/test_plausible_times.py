"""Issue #28 on the real TimescaleDB: a minute-bar file with a year typo (2062 for 2026) loads its
2026 rows and rejects the others with their reason; nothing of 2062 reaches the landing index, the
minute table or the K-line; the per-month window check fails on a row planted outside the window."""

from __future__ import annotations

import os
from datetime import date, datetime
from pathlib import Path

import dagster as dg
import polars as pl
import psycopg
import pytest

from marketdata_assets.core import settings
from marketdata_assets.replay import minute_csv as fx
from marketdata_assets.stores.timescale import kline
from tests.defs.equities.test_bars_assets import DB, bars_env, materialize, metadata, stored  # noqa: F401 - a fixture

pytestmark = pytest.mark.usefixtures("bars_env")  # a database and a landing area of their own

JANUARY = {"dagster/partition": "2026-01-01"}
TYPED = range(60, 90)  # 30 of the day's 240 bars: 10:31 .. 11:00 written with the year 2062


def year_typo_file(landing: Path, code: str = "600000.SH", typed: range = TYPED) -> pl.DataFrame:
    """One code, one January 2026 trading day (240 bars), the `typed` rows stamped 2062; returns the
    true rows."""
    truth = fx.make_bars(code, [date(2026, 1, 5)], seed=28)
    lines = fx.render(truth, "cn_minute").splitlines()
    for i in typed:
        lines[1 + i] = lines[1 + i].replace("2026-01-05", "2062-01-05")
    fx.write_text(landing / f"{code}.csv", "\n".join(lines) + "\n")
    return fx.expected(truth, "cn_minute")


def checks_of(result) -> dict:
    return {
        (e.check_name, e.partition): e
        for e in result.get_asset_check_evaluations()
        if e.check_name == "times_inside_window"
    }


def test_the_2062_typo_file_loads_its_2026_rows_and_rejects_the_others_with_reason_and_count():
    truth = year_typo_file(settings.minute_bars_landing_dir())
    assert truth.height == 240
    year_typo_file(settings.minute_bars_landing_dir(), "000001.SZ", range(240))  # every row typed
    (settings.minute_bars_landing_dir() / "bars-2026-01.zip").write_bytes(b"PK\x05\x06" + bytes(18))
    assert materialize(["bar_store"], tags=None).success
    result = materialize(["stock_1min_qfq", "stock_monthly_kline"], with_checks=True, tags=JANUARY)
    assert result.success
    meta = metadata(result, "stock_1min_qfq")
    assert (meta["files_loaded"], meta["files_quarantined"], meta["files_not_csv"]) == (1, 1, 1)  # the .zip
    (quarantined,) = meta["quarantined"]
    assert (
        quarantined["file"] == "000001.SZ.csv"
        and (
            "'时间' of profile 'cn_minute' is implausible in every row: "
            "'2062-01-05 09:31:00', '2062-01-05 09:32:00', '2062-01-05 09:33:00' (0 of 240 rows inside the "
            "plausible window 1990-12-01 .. "
        )
        in quarantined["reason"]
    )
    reason_file = (
        Path(os.environ["MARKETDATA_STATE_DIR"]) / "quarantine" / "minute_bars" / "000001.SZ.csv.reason.txt"
    )
    assert "is implausible in every row" in reason_file.read_text()
    assert (meta["rows_loaded"], meta["rows_rejected"]) == (210, 30)
    assert meta["rejected_by_reason"] == {"implausible time": 30}
    rejects = (
        (
            Path(os.environ["MARKETDATA_STATE_DIR"])
            / "quarantine"
            / "minute_bars"
            / "rejects"
            / "600000.SH.csv.rejects.csv"
        )
        .read_text()
        .splitlines()
    )
    assert len(rejects) == 1 + 30 and rejects[1].startswith(
        "62,implausible time: '2062-01-05 10:31:00' is after now + 10 min ("
    )
    assert stored("SELECT rows_loaded, rows_rejected FROM etl_metadata") == [(210, 30)]

    # no 2062 anywhere: the landing index, the minute table, the K-line (even refreshed over 2062)
    assert stored("SELECT source_file, months, error IS NULL FROM minute_bar_landing_files ORDER BY 1") == [
        ("000001.SZ.csv", [], False),
        ("600000.SH.csv", [date(2026, 1, 1)], True),
    ]
    assert stored("SELECT count(*), min(time), max(time) FROM stock_1min_qfq") == [
        (210, datetime(2026, 1, 5, 9, 31), datetime(2026, 1, 5, 15, 0))
    ]
    stored_times = {r[0] for r in stored("SELECT time FROM stock_1min_qfq")}
    assert stored_times == set(truth["time"].to_list()) - {truth["time"][i] for i in TYPED}
    with psycopg.connect(
        host="127.0.0.1",
        port=settings.get("TIMESCALE_PORT"),
        user="postgres",
        password=settings.get("TIMESCALE_PASSWORD"),
        dbname=DB,
    ) as conn:
        kline.refresh_window(
            conn, date(2062, 1, 1), date(2062, 2, 1)
        )  # what a refresh covering 2062 would see
    assert stored("SELECT month::date, code FROM stock_monthly_kline") == [(date(2026, 1, 1), "600000.SH")]
    assert checks_of(result)[("times_inside_window", "2026-01-01")].passed


def test_the_month_window_check_fails_on_a_row_planted_outside_its_window():
    year_typo_file(settings.minute_bars_landing_dir())
    materialize(["bar_store"], tags=None)
    clean = materialize(["stock_1min_qfq"], with_checks=True, tags=JANUARY)
    assert checks_of(clean)[("times_inside_window", "2026-01-01")].passed  # clean data passes
    stored(
        "INSERT INTO stock_1min_qfq (time, code, open, high, low, close, volume, amount) "
        "VALUES ('2062-01-05 10:31', '600000.SH', 10, 10, 10, 10, 100, 1000) RETURNING code"
    )  # the old code's row

    planted = materialize(["stock_1min_qfq"], with_checks=True, tags=JANUARY)
    check = checks_of(planted)[("times_inside_window", "2026-01-01")]
    assert (check.passed, check.severity) == (False, dg.AssetCheckSeverity.ERROR)
    assert (
        "1 row(s) after now + the tolerance, 0 before the earliest plausible day, e.g. 600000.SH "
        "2062-01-05 10:31 (after now + the tolerance)" in check.description
    )
    assert check.metadata["rows_after_now"].value == 1


def test_a_load_that_rejected_input_is_partial_on_the_runs_line_naming_rows_files_and_where():
    """Rows rejected (the 2062 typo: future-dated) and a file quarantined whole make the run's line
    `[partial]`, not `[ok]`, with the count, the files and where their rejects are; the rejected rows
    are recorded per code and day. The file fixed and loaded again: no longer partial, the record replaced."""
    from marketdata_assets.apps.cli.session import selection
    from marketdata_assets.apps.launch import launch
    from tests.defs.equities.test_bars_assets import definitions

    landing = settings.minute_bars_landing_dir()
    truth = year_typo_file(landing)
    year_typo_file(landing, "000001.SZ", range(240))  # every row typed: quarantined
    clean = fx.make_bars("601398.SH", [date(2026, 1, 5)], seed=3)
    fx.write_text(landing / "601398.SH.csv", fx.render(clean, "tushare"))
    quarantine = Path(os.environ["MARKETDATA_STATE_DIR"]) / "quarantine" / "minute_bars"
    with dg.DagsterInstance.ephemeral() as instance:
        d = definitions()

        def load():
            return launch(
                "minute bars 2026-01..2026-01",
                selection(d, "stock_1min_qfq"),
                instance=instance,
                resources=d.resources,
                partition_key="2026-01-01",
            )

        first = load()
        assert first.success and first.state == "partial"
        assert first.partial == [
            (
                "stock_1min_qfq: 30 rows rejected (implausible time: 30) from 1 of 2 files loaded: "
                f"600000.SH.csv (30); rejects files in {quarantine / 'rejects'}; 1 file quarantined, not "
                f"loaded at all: 000001.SZ.csv (moved to {quarantine} with their reasons)"
            )
        ]
        assert first.line().startswith(
            "[partial] minute bars 2026-01..2026-01: 1 asset, 1 partition, 450 rows, "
        )
        assert f"; partial: {first.partial[0]}" in first.line()
        recorded = stored(
            "SELECT source_file, code, day, reason, rejected_rows, rejects_file FROM minute_bar_rejected_rows"
        )
        assert recorded == [
            (
                "600000.SH.csv",
                "600000.SH",
                date(2062, 1, 5),
                "future-dated",
                30,
                str(quarantine / "rejects" / "600000.SH.csv.rejects.csv"),
            )
        ]

        fx.write_text(landing / "600000.SH.csv", fx.render(truth, "cn_minute"))  # the typo fixed
        fixed = load()  # nothing rejected now; the month holds one day of bars (01-05): its check says so
        assert fixed.success and (fixed.state, fixed.partial) == ("checks failed", [])
        assert fixed.failed_checks == ["stock_1min_qfq:complete_minutes[2026-01-01]"]
        assert fixed.line().startswith(
            "[checks failed] minute bars 2026-01..2026-01: 1 asset, 1 partition, 240 rows, "
        )
        assert stored("SELECT count(*) FROM minute_bar_rejected_rows") == [(0,)]
