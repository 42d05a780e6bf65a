"""K-line coverage (quality/minute_bars/kline_coverage.py): every code with minute bars has its monthly K-line
row, or the check names it with the cleaning rule that removed its rows. Native TimescaleDB, the
project's loader and the K-line's own refresh (table path)."""

from __future__ import annotations

from datetime import date

import polars as pl

from marketdata_assets.quality.minute_bars import kline_coverage
from marketdata_assets.replay import minute_csv as fx
from marketdata_assets.stores.timescale import kline
from tests.quality.minute_bars.test_completeness import SEP, SEP_DAYS, drop

OCT = date(2026, 10, 1)


def refresh(conn) -> None:
    conn.commit()
    kline.refresh_window(conn, SEP, OCT)


def test_rules_are_the_kline_where():
    assert kline_coverage.RULES == (
        "volume >= 0",
        "amount >= 0",
        "high >= GREATEST(open, close)",
        "low <= LEAST(open, close)",
    )
    assert all(rule in kline.MONTHLY_SELECT for rule in kline_coverage.RULES)


def test_index_file_without_amount_column_fails_coverage_while_checks_a_to_e_pass(minute_store, tmp_path):
    """The issue's motivating case: the SSE Composite's minute file in the symbol,dt,... layout (no
    amount column) loads every minute row and yields no K-line row."""
    index = fx.make_bars("000001.SH", SEP_DAYS, seed=3, base_price=3200.0)
    drop(minute_store, tmp_path, index, "000001.XSHG.csv", layout="symbol_dt")
    drop(minute_store, tmp_path, fx.make_bars("600000.SH", SEP_DAYS, seed=1), "600000.SH.csv")
    refresh(minute_store)
    assert minute_store.execute(
        "SELECT count(*) FROM stock_1min_qfq WHERE code = '000001.SH'"
    ).fetchone() == (5040,)
    assert [r.passed for r in kline.run_validations(minute_store)] == [True] * 5  # A-E see nothing wrong

    result = kline_coverage.check_month(minute_store, SEP)
    assert not result.passed and (result.codes_with_bars, result.kline_rows) == (2, 1)
    (missing,) = result.missing
    assert (missing.code, missing.bars, missing.kept) == ("000001.SH", 5040, 0)
    assert missing.dropped_by == {
        "volume >= 0": 0,
        "amount >= 0": 5040,
        "high >= GREATEST(open, close)": 0,
        "low <= LEAST(open, close)": 0,
    }
    assert missing.reason == (
        "every row removed by the cleaning WHERE: `amount >= 0` fails for 5,040 of 5,040 rows "
        "(5,040 with amount NULL: no amount column in the file?)"
    )
    assert result.description() == (
        "2026-09: 2 codes with minute bars, 1 K-line rows — 1 code(s) without a K-line row: 000001.SH: "
        + missing.reason
    )
    assert "| 000001.SH | 5,040 | 0 | every row removed" in result.metadata()["missing"]


def test_swapped_high_column_names_its_rule(minute_store, tmp_path):
    """A vendor file whose high and low columns are swapped: every bar has high < low."""
    bars = fx.make_bars("300750.SZ", SEP_DAYS[:2], seed=4).rename({"high": "low", "low": "high"})
    drop(minute_store, tmp_path, bars, "300750.SZ.csv", layout="tushare")
    refresh(minute_store)
    (missing,) = kline_coverage.check_month(minute_store, SEP).missing
    high_fails = bars.filter(pl.col("high") < pl.max_horizontal("open", "close")).height
    low_fails = bars.filter(pl.col("low") > pl.min_horizontal("open", "close")).height
    assert (
        missing.kept,
        missing.dropped_by["high >= GREATEST(open, close)"],
        missing.dropped_by["low <= LEAST(open, close)"],
    ) == (0, high_fails, low_fails)
    assert (
        400 < high_fails < 480 and 400 < low_fails < 480
    )  # a bar whose open or close is its extreme passes one
    assert (
        f"`high >= GREATEST(open, close)` fails for {high_fails} of 480 rows; "
        f"`low <= LEAST(open, close)` fails for {low_fails} of 480 rows"
    ) in missing.reason


def test_rows_loaded_after_the_refresh_and_rows_deleted_after_it_are_stale(minute_store, tmp_path):
    drop(minute_store, tmp_path, fx.make_bars("600000.SH", SEP_DAYS[:2], seed=1), "600000.SH.csv")
    refresh(minute_store)
    drop(minute_store, tmp_path, fx.make_bars("601398.SH", SEP_DAYS[:2], seed=5), "601398.SH.csv")
    minute_store.execute("DELETE FROM stock_1min_qfq WHERE code = '600000.SH'")
    minute_store.commit()
    result = kline_coverage.check_month(minute_store, SEP)
    assert [(m.code, m.kept) for m in result.missing] == [("601398.SH", 480)]
    assert result.missing[0].reason.startswith("stale: 480 of 480 rows pass the cleaning")
    assert result.stale_rows == ["600000.SH"]
    assert "1 K-line row(s) without minute bars (stale, refresh the month): 600000.SH" in result.description()
    refresh(minute_store)
    assert kline_coverage.check_month(minute_store, SEP).passed


def test_complete_coverage_passes_though_the_cleaning_drops_some_rows(minute_store, tmp_path):
    dirty = fx.make_bars("600000.SH", SEP_DAYS[:3], seed=0, dirty=True)  # a NULL amount, a NULL close, open 0
    assert dirty.filter(pl.col("amount").is_null()).height == 3
    drop(minute_store, tmp_path, dirty, "600000.SH.csv")
    drop(
        minute_store,
        tmp_path,
        fx.make_bars("000001.SZ", SEP_DAYS[:3], seed=2),
        "000001.SZ.csv",
        layout="tushare",
    )
    refresh(minute_store)
    result = kline_coverage.check_month(minute_store, SEP)
    assert result.passed and result.severity is None and result.missing == [] and result.stale_rows == []
    assert (
        result.description()
        == "2026-09: 2 codes with minute bars, 2 K-line rows: every code has its K-line row"
    )
    assert result.metadata() == {
        "month": "2026-09",
        "codes_with_bars": 2,
        "kline_rows": 2,
        "codes_without_kline": 0,
        "stale_kline_rows": 0,
        "seconds": result.seconds,
    }
