"""The bars coverage picture (quality/minute_bars/coverage.py), and what the checks say about `make run`'s
data."""

from __future__ import annotations

import base64
import re
from datetime import date
from xml.etree import ElementTree

import polars as pl

from marketdata_assets.apps.main import last_complete_months, write_replay_minute_files
from marketdata_assets.core import calendars
from marketdata_assets.ingest.minute_bars import loader
from marketdata_assets.quality.minute_bars import completeness, coverage, kline_coverage, units
from marketdata_assets.replay import minute_csv as fx
from marketdata_assets.stores.timescale import kline
from tests.quality.minute_bars.test_completeness import SEP, SEP_DAYS, drop, without


def test_worst_codes_one_row_each_and_the_others_in_one_band(minute_store, tmp_path):
    drop(
        minute_store,
        tmp_path,
        without(fx.make_bars("000001.SZ", SEP_DAYS, seed=1), date(2026, 9, 14)),
        "a.csv",
    )
    holed = fx.make_bars("600000.SH", SEP_DAYS, seed=2).filter(
        ~((pl.col("time").dt.date() == date(2026, 9, 2)) & (pl.col("time").dt.hour() == 10))
    )  # 60 bars
    drop(minute_store, tmp_path, holed, "b.csv")
    for i, code in enumerate(("601398.SH", "300750.SZ", "688981.SH")):
        drop(minute_store, tmp_path, fx.make_bars(code, SEP_DAYS, seed=3 + i), f"{code}.csv")
    found = coverage.month_coverage(minute_store, SEP, worst=1)
    assert (found.codes, found.complete_codes, found.days) == (5, 3, SEP_DAYS)
    (worst,) = found.worst  # the suspended code is the least complete: 20 of 21 days
    assert (worst.code, worst.empty_days, worst.partial_days) == ("000001.SZ", 1, 0)
    assert worst.cells[SEP_DAYS.index(date(2026, 9, 14))] == 0.0 and worst.cells[0] == 1.0
    assert found.others_count == 4
    assert found.others[SEP_DAYS.index(date(2026, 9, 2))] == (3 + 180 / 240) / 4  # 600000.SH is in the band
    assert abs(found.overall - (20 / 21 + (1 - 60 / (21 * 240)) + 3) / 5) < 1e-12

    markdown = found.markdown()
    assert "| 000001.SZ | 95.24 | 0 | 1 | 0 |" in markdown and "| all other 4 codes | 99.70 |" in markdown
    svg = base64.b64decode(re.search(r"base64,([A-Za-z0-9+/=]+)\)", markdown).group(1)).decode()
    root = ElementTree.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    titles = [t.text for t in root.iter(f"{ns}title")]
    assert (
        len(titles) == 2 * 21 and "000001.SZ 14: 0.0%" in titles and "all other 4 codes 02: 93.8%" in titles
    )
    assert "2026-09: 5 codes, 98.81% of bars" in [t.text for t in root.iter(f"{ns}text")]
    assert found.as_json()["rows"]["000001.SZ"][SEP_DAYS.index(date(2026, 9, 14))] == 0.0


def test_make_run_replay_data_verdict(minute_store, tmp_path):
    """`make run` loads marketdata_assets.apps.main's replay drops for the last three complete months: every
    trading day of every code is there (the replay follows the XSHG calendar), and 600000.SH — the
    deliberately dirty file — leaves out 14:58 every day: a WARN naming the closing-auction minute,
    not an ERROR. The K-line covers every code and nothing is off by x100."""
    months = last_complete_months(3)
    paths = write_replay_minute_files(tmp_path / "landing", months)
    assert len(paths) == 5
    for path in paths:
        loader.load_file(
            minute_store,
            path,
            path.name,
            months,
            sha256=loader.file_sha256(path),
            use_copy=True,
            run_id=None,
            reject_dir=tmp_path / "rejects",
        )
    minute_store.commit()
    kline.refresh_window(minute_store, months[0], calendars.next_month(months[-1]))
    for month in months:
        found = completeness.check_month(minute_store, month)
        assert (found.severity, found.codes, found.partial, found.suspended, found.off_session) == (
            "WARN",
            5,
            [],
            [],
            [],
        ), found.description()
        assert {(c.code, c.auction_missing) for c in found.auction_gaps} == {("600000.SH", 1)}
        assert len(found.auction_gaps) == found.trading_days
        assert found.metadata()["auction_gaps"].count("| 600000.SH |") == min(
            found.trading_days, completeness.SAMPLE
        )
        assert kline_coverage.check_month(minute_store, month).passed
        assert (
            units.check_minutes(minute_store, month).passed and units.check_kline(minute_store, month).passed
        )
