"""The minute bars' and K-line's checks as declared (quality/minute_bars/checks.py) on the native
TimescaleDB: what each judges into a Verdict (passed, severity, description, metadata with Markdown
tables), seed 004's validations A-E with their blocking flags, and a month before the calendar's
first session told as a WARN instead of an error."""

from __future__ import annotations

from datetime import time

import polars as pl

from marketdata_assets.core.markdown import Markdown
from marketdata_assets.quality.checks import ERROR, MONTH, TIMESCALE, WARN
from marketdata_assets.quality.minute_bars.checks import (
    KLINE_COVERAGE_CHECKS,
    KLINE_VALIDATIONS,
    MINUTE_CHECKS,
)
from marketdata_assets.replay import minute_csv as fx
from marketdata_assets.stores.timescale import kline
from tests.quality.minute_bars.test_completeness import SEP, SEP_DAYS, drop, without
from tests.quality.minute_bars.test_kline_coverage import refresh

MONTH_KEY = SEP.isoformat()


def by_name(checks) -> dict:
    return {check.name: check for check in checks}


def test_the_declarations_keep_their_names_assets_and_flags():
    assert [(c.name, c.asset, c.blocking, c.partitioned_by) for c in KLINE_VALIDATIONS] == [
        ("A_extreme_monthly_gain", "stock_monthly_kline", False, None),
        ("B_negative_volume_or_amount", "stock_monthly_kline", True, None),
        ("C_price_logic", "stock_monthly_kline", True, None),
        ("D_volume_without_amount", "stock_monthly_kline", True, None),
        ("E_missing_name", "stock_monthly_kline", True, None),
    ]
    assert KLINE_VALIDATIONS[0].description == f"A. {kline.VALIDATIONS[0].description}"
    assert [(c.name, c.asset) for c in MINUTE_CHECKS + KLINE_COVERAGE_CHECKS] == [
        ("complete_minutes", "stock_1min_qfq"),
        ("no_unit_stretch", "stock_1min_qfq"),
        ("times_inside_window", "stock_1min_qfq"),
        ("every_code_has_a_kline_row", "stock_monthly_kline"),
        ("no_unit_stretch", "stock_monthly_kline"),
    ]
    assert {(c.store, c.partitioned_by, c.blocking) for c in MINUTE_CHECKS + KLINE_COVERAGE_CHECKS} == {
        (TIMESCALE, MONTH, False)
    }


def test_a_month_of_complete_bars_passes_every_check(minute_store, tmp_path):
    drop(minute_store, tmp_path, fx.make_bars("600000.SH", SEP_DAYS, seed=1), "600000.SH.csv")
    refresh(minute_store)
    for check in MINUTE_CHECKS + KLINE_COVERAGE_CHECKS:
        (verdict,) = check.run(minute_store, [MONTH_KEY]).values()
        assert verdict.passed and verdict.severity == WARN, (check.name, verdict)  # a passed finding: WARN
        assert verdict.description.startswith("2026-09"), verdict.description
    complete = by_name(MINUTE_CHECKS)["complete_minutes"].run(minute_store, [MONTH_KEY])[MONTH_KEY]
    assert (complete.metadata["codes"], complete.metadata["bars"], complete.metadata["missing_days"]) == (
        1,
        21 * 240,
        [],
    )
    for check in KLINE_VALIDATIONS:
        verdict = check.run(minute_store)[None]
        assert verdict.passed and verdict.severity == (ERROR if check.blocking else WARN)
        assert verdict.metadata["rows_found"] == 0 and "sample" not in verdict.metadata
        assert isinstance(verdict.metadata["query"], Markdown) and verdict.metadata["query"].startswith(
            "```sql\nSELECT"
        )


def test_a_missing_stretch_fails_with_a_table_and_an_extreme_month_warns(minute_store, tmp_path):
    bars = fx.make_bars("600000.SH", SEP_DAYS, seed=1)
    drop(minute_store, tmp_path, without(bars, SEP_DAYS[2], time(10, 1), time(10, 5)), "600000.SH.csv")
    # a month whose close is 20x its open (seed 004's A: worth a look, not an error)
    soaring = fx.make_bars("000001.SZ", SEP_DAYS, seed=2).with_columns(
        pl.when(pl.col("time").dt.date() > SEP_DAYS[0]).then(pl.col(c) * 20).otherwise(pl.col(c)).alias(c)
        for c in ("open", "high", "low", "close")
    )
    drop(minute_store, tmp_path, soaring, "000001.SZ.csv")
    refresh(minute_store)
    complete = by_name(MINUTE_CHECKS)["complete_minutes"].run(minute_store, [MONTH_KEY])[MONTH_KEY]
    assert not complete.passed and complete.severity == ERROR
    assert f"600000.SH {SEP_DAYS[2]} 5 missing (10:01-10:05)" in complete.description
    assert isinstance(complete.metadata["partial"], Markdown)
    assert f"| 600000.SH | {SEP_DAYS[2]} | 5 | 0 | 10:01-10:05 |" in complete.metadata["partial"]

    extreme = KLINE_VALIDATIONS[0].run(minute_store)[None]
    assert not extreme.passed and extreme.severity == WARN and extreme.metadata["rows_found"] == 1
    assert isinstance(extreme.metadata["sample"], Markdown) and "| 000001.SZ |" in extreme.metadata["sample"]
    assert all(check.run(minute_store)[None].passed for check in KLINE_VALIDATIONS[1:])


def test_a_month_before_the_calendar_cannot_be_judged_and_says_so(minute_store):
    verdict = by_name(MINUTE_CHECKS)["complete_minutes"].run(minute_store, ["1990-01-01"])["1990-01-01"]
    assert (verdict.passed, verdict.severity, verdict.metadata) == (False, WARN, {})
    assert verdict.description.startswith("cannot judge 1990-01: "), verdict.description
