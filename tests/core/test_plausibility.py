"""The one plausibility rule for timestamps from outside (core/plausibility.py), on its own."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import polars as pl
import pytest

from marketdata_assets.core import plausibility
from marketdata_assets.core.naming import A_SHARE_VENUES

NOW = datetime(2026, 1, 20, 2, 0, tzinfo=UTC)  # 10:00 in Beijing
SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_after_now_plus_the_tolerance_in_the_venues_time_zone_is_implausible(monkeypatch):
    monkeypatch.delenv("TIMESTAMP_FUTURE_TOLERANCE_MINUTES", raising=False)
    sse = plausibility.window("SSE", NOW)
    assert sse.local() == (datetime(1990, 12, 19), datetime(2026, 1, 20, 10, 10))  # Beijing wall clock
    assert sse.reason(datetime(2026, 1, 20, 10, 9)) is None  # naive: Beijing time, inside the 10 minutes
    assert sse.reason(datetime(2026, 1, 20, 10, 11)) == (
        "implausible time: '2026-01-20 10:11:00' is after now + 10 min (2026-01-20 10:10 Asia/Shanghai)"
    )
    assert sse.reason(datetime(2062, 1, 5, 9, 31), "2062-01-05 09:31").startswith(
        "implausible time: '2062-01-05 09:31' is after now"
    )
    # an aware time is compared as an instant: 02:05 UTC is 10:05 in Beijing
    assert sse.reason(datetime(2026, 1, 20, 2, 5, tzinfo=UTC)) is None
    monkeypatch.setenv("TIMESTAMP_FUTURE_TOLERANCE_MINUTES", "0")
    assert plausibility.window("SSE", NOW).reason(datetime(2026, 1, 20, 10, 1)) is not None


def test_before_the_venues_earliest_plausible_day_is_implausible_and_configurable(monkeypatch):
    monkeypatch.delenv("TIMESTAMP_EARLIEST", raising=False)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    assert plausibility.window("BINANCE", NOW).reason(epoch) == (
        "implausible time: '1970-01-01 00:00:00+00:00' is before BINANCE's earliest plausible day 2017-07-14"
    )
    assert plausibility.window("BINANCE", NOW).reason(datetime(2017, 7, 14, tzinfo=UTC)) is None
    assert plausibility.window("NYQ", NOW).earliest.date() == plausibility.DEFAULT_EARLIEST  # any other venue
    assert plausibility.window("NYQ", NOW).reason(epoch) is not None
    monkeypatch.setenv("TIMESTAMP_EARLIEST", "binance = 2018-01-01, NYQ=1962-01-02")
    assert plausibility.window("BINANCE", NOW).reason(datetime(2017, 9, 1, tzinfo=UTC)) is not None
    assert plausibility.window("NYQ", NOW).earliest.date() == date(1962, 1, 2)
    for bad in ("BINANCE", "BINANCE=2018-13-01", "=2018-01-01"):
        monkeypatch.setenv("TIMESTAMP_EARLIEST", bad)
        with pytest.raises(ValueError, match="TIMESTAMP_EARLIEST"):
            plausibility.window("BINANCE", NOW)
    monkeypatch.setenv("TIMESTAMP_FUTURE_TOLERANCE_MINUTES", "-5")
    with pytest.raises(ValueError, match="TIMESTAMP_FUTURE_TOLERANCE_MINUTES must be a whole number"):
        plausibility.tolerance()


def test_several_venues_take_the_loosest_bounds():
    shares = plausibility.window(A_SHARE_VENUES, NOW)
    assert shares.venue == "SSE/SZSE/BSE" and shares.local()[0] == datetime(1990, 12, 1)
    assert shares.zone.key == "Asia/Shanghai"


def test_check_raises_naming_what_and_the_value():
    alpha_api = plausibility.window("ALPHA_API", NOW)
    created = datetime(2062, 1, 5, 10, 0, tzinfo=ZoneInfo("America/New_York"))
    with pytest.raises(
        plausibility.ImplausibleTime,
        match=r"alpha X's dateCreated: implausible time: "
        r"'2062-01-05 10:00:00-05:00' is after now",
    ):
        alpha_api.check(created, "alpha X's dateCreated")
    assert alpha_api.check(NOW - timedelta(days=1), "x") == NOW - timedelta(days=1)


def test_polars_expressions_judge_naive_and_aware_columns():
    sse = plausibility.window("SSE", NOW)
    naive = pl.DataFrame(
        {
            "time": [
                datetime(2026, 1, 19, 9, 31),
                datetime(2062, 1, 19, 9, 31),
                None,
                datetime(1980, 1, 2, 9, 31),
            ]
        }
    )
    reasons = naive.select(sse.violation(pl.col("time"), naive=True)).to_series().to_list()
    assert reasons[0] is None and reasons[2] is None
    assert reasons[1].startswith("implausible time: '2062-01-19 09:31:00.000000' is after now + 10 min")
    assert reasons[3].endswith("is before SSE's earliest plausible day 1990-12-19")
    assert naive.select(sse.outside(pl.col("time"), naive=True)).to_series().to_list() == [
        False,
        True,
        False,
        True,
    ]


def test_split_judges_each_row_by_its_own_venue():
    frame = pl.DataFrame(
        {
            "ts": pl.Series(
                [datetime(2017, 8, 1), datetime(1970, 1, 1), datetime(2017, 8, 1), datetime(2026, 1, 19)],
                dtype=pl.Datetime("us", "UTC"),
            ),
            "venue": ["DERIBIT", "BINANCE", "BINANCE_UM", "BINANCE"],
            "instrument": ["A", "B", "C", "D"],
        }
    )
    kept, rejected = plausibility.split(frame, now=NOW)
    assert kept["instrument"].to_list() == ["A", "D"]  # Deribit existed in 2017; USD-M futures did not
    assert rejected["instrument"].to_list() == ["B", "C"]
    assert rejected["reason"].to_list() == [
        (
            "implausible time: '1970-01-01 00:00:00.000000+00:00' is before BINANCE's earliest plausible "
            "day 2017-07-14"
        ),
        (
            "implausible time: '2017-08-01 00:00:00.000000+00:00' is before BINANCE_UM's earliest plausible "
            "day 2019-09-08"
        ),
    ]
    clean, none = plausibility.split(frame.head(1), now=NOW)
    assert clean.height == 1 and none.height == 0 and "reason" in none.columns


def test_an_aware_column_is_judged_by_a_venue_window_of_another_time_zone():
    frame = pl.DataFrame(
        {
            "ts": pl.Series(
                [datetime(2026, 1, 20, 2, 5), datetime(2026, 1, 20, 2, 15)], dtype=pl.Datetime("us", "UTC")
            ),
            "venue": ["SSE", "SSE"],
        }
    )
    kept, rejected = plausibility.split(frame, now=NOW)  # 10:05 and 10:15 Beijing time
    assert kept.height == 1 and rejected["reason"][0].endswith(
        "is after now + 10 min (2026-01-20 10:10 Asia/Shanghai)"
    )
