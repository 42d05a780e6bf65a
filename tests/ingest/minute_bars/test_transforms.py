"""Composable minute-bar transforms: cleaning like the monthly K-line, daily bars, MA5/10/20."""

from __future__ import annotations

from datetime import date, datetime

import polars as pl
import pytest
from polars.testing import assert_frame_equal, assert_series_equal

from marketdata_assets.ingest.minute_bars.transforms import (
    clean_minute_bars,
    daily_bars,
    dedupe_bars,
    ma_pipeline,
    moving_averages,
    pipeline,
)
from marketdata_assets.replay.minute_csv import make_bars, trading_days
from marketdata_assets.sources.minute_csv.reader import MINUTE_SCHEMA


def bars(rows) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=MINUTE_SCHEMA, orient="row")


T = datetime(2026, 1, 5, 9, 31)


def test_pipeline_composes_left_to_right():
    add = lambda df: df.with_columns(x=pl.col("x") + 1)
    double = lambda df: df.with_columns(x=pl.col("x") * 2)
    df = pl.DataFrame({"x": [1, 2]})
    assert pipeline(add, double)(df)["x"].to_list() == [4, 6]
    assert pipeline(double, add)(df)["x"].to_list() == [3, 5]
    assert pipeline()(df) is df
    with pytest.raises(TypeError):
        pipeline(add, "not a function")


def test_clean_matches_the_kline_where_clause():
    rows = [
        (T, "A", None, 10.0, 10.5, 9.5, 10.2, 100.0, 1000.0),  # clean
        (T, "B", None, -3.0, -2.0, -4.0, -2.5, 100.0, 1000.0),  # negative qfq prices: kept
        (T, "C", None, 0.0, 10.5, 9.5, 10.2, 100.0, 1000.0),  # open = 0 < low: dropped
        (T, "D", None, 10.0, 10.0, 10.0, 10.0, 0.0, 0.0),  # zero-volume placeholder: kept
        (T, "E", None, 10.0, 10.5, 9.5, 10.2, None, 1000.0),  # NULL volume: dropped
        (T, "F", None, 10.0, 10.5, 9.5, 10.2, 100.0, None),  # NULL amount: dropped
        (T, "G", None, 10.0, 10.5, 9.5, 10.2, -1.0, 1000.0),  # negative volume: dropped
        (T, "H", None, 10.0, 10.1, 9.5, 10.2, 100.0, 1000.0),  # high < close: dropped
        (T, "I", None, None, 10.5, 9.5, 10.2, 100.0, 1000.0),  # NULL open: GREATEST ignores it, kept
        (T, "J", None, 10.0, None, 9.5, 10.2, 100.0, 1000.0),  # NULL high: dropped
        (T, "K", None, None, 10.5, 9.5, None, 100.0, 1000.0),  # open and close NULL: dropped
        (T, "L", None, 10.0, 10.5, 10.1, 10.2, 100.0, 1000.0),  # low > open: dropped
    ]
    kept = clean_minute_bars(bars(rows))["code"].to_list()
    assert kept == ["A", "B", "D", "I"]


def test_daily_bars_first_last_by_time_not_row_order():
    day = [
        (datetime(2026, 1, 5, 9, 31 + i), "600000.SH", "浦发银行", o, h, l, c, v, a)
        for i, (o, h, l, c, v, a) in enumerate(
            [(10, 11, 9.5, 10.5, 100, 1000), (10.5, 12, 10, 11, 200, 2200), (11, 11.5, 8, 9, 300, 2700)]
        )
    ]
    next_day = [(datetime(2026, 1, 6, 9, 31), "600000.SH", "浦发银行", 9.0, 9.5, 8.5, 9.2, 50.0, 460.0)]
    df = bars(list(reversed(day)) + next_day)  # stored newest first (Tushare)
    out = daily_bars(df)
    assert out.columns == ["date", "code", "name", "open", "high", "low", "close", "volume", "amount"]
    assert out.row(0) == (date(2026, 1, 5), "600000.SH", "浦发银行", 10.0, 12.0, 8.0, 9.0, 600.0, 5900.0)
    assert out.row(1) == (date(2026, 1, 6), "600000.SH", "浦发银行", 9.0, 9.5, 8.5, 9.2, 50.0, 460.0)


def test_daily_bars_without_name_column():
    df = bars([(T, "A", None, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0)]).drop("name")
    assert daily_bars(df)["name"].to_list() == [None]


def test_moving_averages_per_code_null_until_enough_days():
    days = trading_days(date(2026, 1, 5), 25)
    frames = []
    for code, base in (("A", 100.0), ("B", 0.0)):
        frames.append(
            pl.DataFrame(
                {"date": days, "code": [code] * len(days), "close": [base + i for i in range(len(days))]}
            )
        )
    df = pl.concat(frames).sample(fraction=1.0, shuffle=True, seed=1)  # order must not matter
    out = moving_averages(df)
    a = out.filter(pl.col("code") == "A")
    assert a["ma5"].to_list()[:5] == [None, None, None, None, 102.0]
    assert a["ma10"].null_count() == 9 and a["ma10"][9] == 104.5
    assert a["ma20"].null_count() == 19 and a["ma20"][19] == 109.5 and a["ma20"][24] == 114.5
    b = out.filter(pl.col("code") == "B")
    assert b["ma5"][4] == 2.0  # B's window never sees A's closes


def test_ma_pipeline_from_minute_bars():
    days = trading_days(date(2026, 1, 5), 22)
    minute = pl.concat(
        [
            make_bars("600000.SH", days, seed=1, dirty=True),
            make_bars("000001.SZ", days, seed=2, negative=True),
        ]
    )
    out = ma_pipeline(minute)
    assert out.columns == [
        "date",
        "code",
        "name",
        "open",
        "high",
        "low",
        "close",
        "volume",
        "amount",
        "ma5",
        "ma10",
        "ma20",
    ]
    assert out.height == 2 * len(days)
    sh = out.filter(pl.col("code") == "600000.SH").sort("date")
    clean = clean_minute_bars(minute.filter(pl.col("code") == "600000.SH")).sort("time")
    first_day = clean.filter(pl.col("time").dt.date() == days[0])
    assert sh.row(0)[3:9] == (
        first_day["open"][0],
        first_day["high"].max(),
        first_day["low"].min(),
        first_day["close"][-1],
        first_day["volume"].sum(),
        first_day["amount"].sum(),
    )
    expected_ma5 = sh["close"].rolling_mean(5)
    assert_series_equal(sh["ma5"], expected_ma5, check_names=False)
    assert sh["ma20"].null_count() == 19
    sz = out.filter(pl.col("code") == "000001.SZ")
    assert (sz["close"] < 0).all() and sz["ma5"].drop_nulls().len() == len(days) - 4  # negative qfq kept


def test_dedupe_keeps_last_occurrence():
    df = bars(
        [
            (T, "A", None, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0),
            (T, "B", None, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0),
            (T, "A", None, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0),
        ]
    )
    out = dedupe_bars(df)
    assert out.select("code", "open").rows() == [("B", 2.0), ("A", 3.0)]
    unique = df.head(2)
    assert dedupe_bars(unique) is unique
    assert_frame_equal(dedupe_bars(df.head(0)), df.head(0))
