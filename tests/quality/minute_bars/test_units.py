"""x100 unit errors (quality/minute_bars/units.py): a stretch that reverts is named with its first and last
bar; a genuine x100 move that stays is not. Realistic CSV drops through the loader, native TimescaleDB."""

from __future__ import annotations

from datetime import date, datetime

import polars as pl

from marketdata_assets.quality.minute_bars import units
from marketdata_assets.replay import minute_csv as fx
from marketdata_assets.stores.timescale import kline
from tests.quality.minute_bars.test_completeness import SEP, SEP_DAYS, drop
from tests.quality.minute_bars.test_kline_coverage import OCT

PRICES = ("open", "high", "low", "close")


def scaled(
    frame: pl.DataFrame, start: datetime, end: datetime | None = None, factor: float = 100.0
) -> pl.DataFrame:
    """Prices x`factor` for bars in [start, end) (a vendor's fen-for-yuan stretch)."""
    inside = pl.col("time") >= start
    if end is not None:
        inside = inside & (pl.col("time") < end)
    return frame.with_columns(
        pl.when(inside).then(pl.col(c) * factor).otherwise(pl.col(c)).alias(c) for c in PRICES
    )


def test_a_stretch_that_reverts_is_named_with_its_first_and_last_bar(minute_store, tmp_path):
    bars = scaled(
        fx.make_bars("600000.SH", SEP_DAYS[:8], seed=1),
        datetime(2026, 9, 3, 10, 0),
        datetime(2026, 9, 7, 14, 0),
    )
    drop(minute_store, tmp_path, bars, "600000.SH.csv")
    drop(minute_store, tmp_path, fx.make_bars("000001.SZ", SEP_DAYS[:8], seed=2), "000001.SZ.csv")
    result = units.check_minutes(minute_store, SEP)
    assert not result.passed and result.unpaired == []
    (stretch,) = result.stretches
    assert (stretch.code, stretch.first, stretch.last, stretch.bars) == (
        "600000.SH",
        datetime(2026, 9, 3, 10, 0),
        datetime(2026, 9, 7, 13, 59),
        211 + 240 + 179,
    )
    assert 95 < stretch.factor < 105 and 95 < stretch.inside / stretch.before < 105
    assert result.description().startswith(
        "2026-09 minute bars: 1 stretch(es) at a x100 scale that revert (a unit error?): "
        "600000.SH 2026-09-03 10:00 .. 2026-09-07 13:59 (630 bars at x"
    )
    assert "| 600000.SH | 2026-09-03 10:00 | 2026-09-07 13:59 | 630 |" in result.metadata()["stretch_table"]


def test_a_stretch_inside_one_day_and_one_at_a_hundredth(minute_store, tmp_path):
    bars = scaled(
        fx.make_bars("688981.SH", SEP_DAYS[:3], seed=3),
        datetime(2026, 9, 2, 13, 5),
        datetime(2026, 9, 2, 13, 20),
        factor=0.01,
    )
    drop(minute_store, tmp_path, bars, "688981.SH.csv")
    (stretch,) = units.check_minutes(minute_store, SEP).stretches
    assert (stretch.first, stretch.last, stretch.bars) == (
        datetime(2026, 9, 2, 13, 5),
        datetime(2026, 9, 2, 13, 19),
        15,
    )
    assert 0.0095 < stretch.factor < 0.0105


def test_a_genuine_x100_move_that_stays_is_not_flagged(minute_store, tmp_path):
    drop(
        minute_store,
        tmp_path,
        scaled(fx.make_bars("601398.SH", SEP_DAYS[:6], seed=4), datetime(2026, 9, 4, 9, 31)),
        "601398.SH.csv",
    )
    drop(
        minute_store,
        tmp_path,
        fx.make_bars("300750.SZ", SEP_DAYS[:6], seed=5, negative=True),
        "300750.SZ.csv",
    )
    result = units.check_minutes(minute_store, SEP)
    assert result.passed and result.stretches == []
    (lone,) = result.unpaired
    assert (lone.code, lone.prev_at, lone.at) == (
        "601398.SH",
        datetime(2026, 9, 3, 15, 0),
        datetime(2026, 9, 4, 9, 31),
    )
    assert result.description() == (
        "2026-09 minute bars: no stretch at a x100 scale; 1 lone x100 move(s) that do not revert, not flagged"
    )


def test_a_stretch_across_the_month_end_is_named_in_both_months(minute_store, tmp_path):
    days = fx.trading_days(date(2026, 9, 28), 5)  # 09-28..09-30, 10-08, 10-09
    bars = scaled(
        fx.make_bars("000001.SZ", days, seed=6), datetime(2026, 9, 30, 11, 0), datetime(2026, 10, 8, 10, 0)
    )
    drop(minute_store, tmp_path, bars, "000001.SZ.csv")
    for month in (SEP, OCT):
        (stretch,) = units.check_minutes(minute_store, month).stretches
        assert (stretch.first, stretch.last) == (datetime(2026, 9, 30, 11, 0), datetime(2026, 10, 8, 9, 59))


def test_kline_month_at_x100_between_normal_months(minute_store, tmp_path):
    days = fx.trading_days(date(2026, 7, 1), 80)  # July..October
    bars = fx.make_bars("600000.SH", days, seed=7)
    wrong = scaled(bars, datetime(2026, 8, 1), datetime(2026, 9, 1))  # August's file in fen
    genuine = scaled(
        fx.make_bars("601398.SH", days, seed=8), datetime(2026, 9, 1)
    )  # from September on, for good
    drop(minute_store, tmp_path, wrong, "600000.SH.csv")
    drop(minute_store, tmp_path, genuine, "601398.SH.csv")
    minute_store.commit()
    kline.refresh_window(minute_store, date(2026, 7, 1), date(2026, 11, 1))
    august = units.check_kline(minute_store, date(2026, 8, 1))
    (stretch,) = august.stretches
    assert (stretch.code, stretch.first, stretch.last, stretch.bars) == (
        "600000.SH",
        datetime(2026, 8, 1),
        datetime(2026, 8, 1),
        1,
    )
    assert "600000.SH 2026-08 .. 2026-08 (1 bars at x" in august.description()
    september = units.check_kline(minute_store, SEP)
    assert september.passed and [j.code for j in september.unpaired] == ["601398.SH"]
