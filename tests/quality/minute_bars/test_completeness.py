"""Completeness of a month of minute bars (quality/minute_bars/completeness.py) on the native TimescaleDB.

Every case is a realistic CSV drop (replay/minute_csv layouts) loaded through the project's own
loader into a schema of its own, then judged against the XSHG calendar. September 2026 has 21
trading days; Friday 2026-09-25 is the Mid-Autumn holiday.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from importlib.metadata import version
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl

from marketdata_assets.core import calendars
from marketdata_assets.ingest.minute_bars import loader
from marketdata_assets.quality.minute_bars import completeness
from marketdata_assets.replay import minute_csv as fx
from tests.conftest import allow_future_until

SEP = date(2026, 9, 1)
SEP_DAYS = calendars.trading_days("SSE", SEP, date(2026, 9, 30))
MID_AUTUMN = date(2026, 9, 25)


def drop(conn, tmp_path: Path, frame: pl.DataFrame, name: str, layout: str = "cn_minute") -> None:
    """Write `frame` as a CSV drop in `layout` and load it the way stock_1min_qfq does."""
    path = fx.write_text(tmp_path / name, fx.render(frame, layout), bom=layout == "cn_minute")
    months = sorted({date(t.year, t.month, 1) for t in frame["time"].to_list()})
    loader.load_file(
        conn,
        path,
        name,
        months,
        sha256=loader.file_sha256(path),
        use_copy=True,
        run_id=None,
        reject_dir=tmp_path / "rejects",
    )


def without(
    frame: pl.DataFrame, day: date, start: time | None = None, end: time | None = None
) -> pl.DataFrame:
    """The frame without the bars of `day` (between start and end inclusive, or all of them)."""
    on_day = pl.col("time").dt.date() == day
    if start is not None:
        on_day = on_day & pl.col("time").dt.time().is_between(start, end)
    return frame.filter(~on_day)


def test_grid_is_the_calendar_in_the_csv_convention():
    grid = completeness.expected_grid("SSE", SEP, date(2026, 10, 1))
    assert grid.days == SEP_DAYS and len(grid.days) == 21 and MID_AUTUMN not in grid.days
    day = [(t.time(), k) for t, k in zip(grid.stamps, grid.needs) if t.date() == SEP]
    assert len(day) == 241 and day[0] == (time(9, 30), "optional") and day[1] == (time(9, 31), "required")
    assert [k for _, k in day[-3:]] == ["auction", "auction", "required"] and day[-1][0] == time(15, 0)
    assert (time(11, 30), "required") in day and (time(13, 1), "required") in day
    assert not any(t in (time(11, 31), time(13, 0), time(15, 1)) for t, _ in day)


def test_complete_month_passes_with_both_vendor_conventions(minute_store, tmp_path):
    # a CSV drop (240 bars a day) and a Tushare stk_mins export (241: the 09:30 auction bar first)
    drop(minute_store, tmp_path, fx.make_bars("600000.SH", SEP_DAYS, seed=1), "600000.SH.csv")
    tushare = fx.make_bars("000001.SZ", SEP_DAYS, seed=2)
    auction = tushare.filter(pl.col("time").dt.time() == time(9, 31)).with_columns(
        pl.col("time") - timedelta(minutes=1)
    )
    drop(
        minute_store, tmp_path, pl.concat([auction, tushare]).sort("time"), "000001.SZ.csv", layout="tushare"
    )
    result = completeness.check_month(minute_store, SEP)
    assert result.passed and result.severity is None
    assert (result.codes, result.trading_days, result.bars, result.expected_bars) == (
        2,
        21,
        21 * 481,
        2 * 21 * 240,
    )
    assert (
        result.description() == "2026-09: 2 codes x 21 trading days, 10,101 of 10,080 expected bars: complete"
    )
    meta = result.metadata()
    assert (meta["partial_code_days"], meta["suspended_code_days"], meta["off_session_bars"]) == (0, 0, 0)
    assert "partial" not in meta and minute_store.info.transaction_status.name == "IDLE"


def test_missing_stretch_is_an_error_naming_code_day_and_minutes(minute_store, tmp_path):
    bars = fx.make_bars("600000.SH", SEP_DAYS, seed=1)
    holed = without(
        without(bars, date(2026, 9, 3), time(10, 1), time(10, 5)), date(2026, 9, 16), time(15, 0), time(15, 0)
    )
    drop(minute_store, tmp_path, holed, "600000.SH.csv")
    drop(minute_store, tmp_path, fx.make_bars("000001.SZ", SEP_DAYS, seed=2), "000001.SZ.csv")
    result = completeness.check_month(minute_store, SEP)
    assert result.severity == "ERROR" and not result.passed
    assert [(c.code, c.day, c.missing, c.stamps) for c in result.partial] == [
        ("600000.SH", date(2026, 9, 3), 5, "10:01-10:05"),
        ("600000.SH", date(2026, 9, 16), 1, "15:00"),
    ]
    assert result.missing_minutes == 6 and result.suspended == [] and result.off_session == []
    text = result.description()
    assert (
        "2 code-day(s) with 6 missing minute(s): 600000.SH 2026-09-03 5 missing (10:01-10:05); "
        "600000.SH 2026-09-16 1 missing (15:00)" in text
    )
    assert "| 600000.SH | 2026-09-03 | 5 | 0 | 10:01-10:05 |" in result.metadata()["partial"]


def test_suspended_day_is_told_apart_from_a_partial_day(minute_store, tmp_path):
    drop(
        minute_store,
        tmp_path,
        without(fx.make_bars("300750.SZ", SEP_DAYS, seed=3), date(2026, 9, 14)),
        "300750.SZ.csv",
    )
    drop(minute_store, tmp_path, fx.make_bars("600000.SH", SEP_DAYS, seed=1), "600000.SH.csv")
    result = completeness.check_month(minute_store, SEP)
    assert result.severity == "WARN"  # a suspension alone does not fail the month
    assert [(c.code, c.day, c.verdict) for c in result.suspended] == [
        ("300750.SZ", date(2026, 9, 14), "suspended")
    ]
    assert result.partial == [] and result.missing_days == []
    assert "1 suspended code-day(s) (no bar on a trading day): 300750.SZ 09-14" in result.description()
    meta = result.metadata()
    assert (
        "| 300750.SZ | 1 | 09-14 |" in meta["suspended"] and "| 2026-09-14 | 1 |" in meta["suspended_per_day"]
    )


def test_a_day_without_any_bar_is_a_missing_day_not_suspensions(minute_store, tmp_path):
    for i, code in enumerate(("600000.SH", "000001.SZ")):
        drop(
            minute_store,
            tmp_path,
            without(fx.make_bars(code, SEP_DAYS, seed=i), date(2026, 9, 30)),
            f"{code}.csv",
        )
    result = completeness.check_month(minute_store, SEP)
    assert (
        result.severity == "ERROR" and result.missing_days == [date(2026, 9, 30)] and result.suspended == []
    )
    assert "no bars for any code on trading day(s) 2026-09-30" in result.description()


def test_off_session_bars_and_a_holiday_are_errors(minute_store, tmp_path):
    # a vendor's weekday-only file: it has bars on the Mid-Autumn holiday, and one at 12:00 (lunch)
    weekdays = sorted([*SEP_DAYS, MID_AUTUMN])
    bars = fx.make_bars("601398.SH", weekdays, seed=4)
    lunch = bars.filter(pl.col("time") == datetime(2026, 9, 8, 11, 30)).with_columns(
        time=pl.lit(datetime(2026, 9, 8, 12, 0))
    )
    drop(minute_store, tmp_path, pl.concat([bars, lunch]).sort("time"), "601398.SH.csv")
    result = completeness.check_month(minute_store, SEP)
    assert result.severity == "ERROR" and result.partial == []
    found = [(c.code, c.day, c.verdict, c.off_session, c.stamps) for c in result.off_session]
    assert found == [
        ("601398.SH", date(2026, 9, 8), "off_session", 1, "12:00"),
        ("601398.SH", MID_AUTUMN, "off_calendar", 240, "09:31-11:30, 13:01-15:00"),
    ]
    assert result.off_session_bars == 241
    assert (
        "241 bar(s) outside the sessions: 601398.SH 2026-09-08 12:00; "
        "601398.SH 2026-09-25 (not a trading day) 09:31-11:30, 13:01-15:00" in result.description()
    )


def test_start_labelled_file_is_caught(minute_store, tmp_path):
    """A file stamped by the bar's START (09:30..11:29, 13:00..14:59) loaded as if end-labelled."""
    bars = fx.make_bars("688981.SH", SEP_DAYS[:3], seed=5).with_columns(pl.col("time") - timedelta(minutes=1))
    drop(minute_store, tmp_path, bars, "688981.SH.csv")
    result = completeness.check_month(minute_store, SEP, as_of=SEP_DAYS[3])
    assert result.trading_days == 3 and result.severity == "ERROR"
    assert [(c.day, c.missing, c.stamps) for c in result.partial] == [
        (d, 2, "11:30, 15:00") for d in SEP_DAYS[:3]
    ]
    assert [(c.day, c.off_session, c.stamps) for c in result.off_session] == [
        (d, 1, "13:00") for d in SEP_DAYS[:3]
    ]


def test_closing_auction_gaps_only_warn(minute_store, tmp_path):
    """The replay's dirty file (and `make run`'s 600000.SH) leaves out 14:58 every day."""
    drop(minute_store, tmp_path, fx.make_bars("600000.SH", SEP_DAYS, seed=0, dirty=True), "600000.SH.csv")
    result = completeness.check_month(minute_store, SEP)
    assert result.severity == "WARN" and result.partial == [] and len(result.auction_gaps) == 21
    assert result.auction_minutes_missing == 21
    assert (
        "21 code-day(s) missing only closing-auction minutes 14:58/14:59: 600000.SH 2026-09-01"
        in result.description()
    )


def test_month_in_progress_is_judged_up_to_yesterday(minute_store, tmp_path):
    days = [d for d in SEP_DAYS if d <= date(2026, 9, 10)]
    today = fx.make_bars("600000.SH", [date(2026, 9, 10)], seed=1).filter(pl.col("time").dt.hour() < 11)
    drop(
        minute_store,
        tmp_path,
        pl.concat([fx.make_bars("600000.SH", days[:-1], seed=1), today]),
        "600000.SH.csv",
    )
    result = completeness.check_month(minute_store, SEP, as_of=date(2026, 9, 10))
    assert (result.start, result.end, result.trading_days) == (SEP, date(2026, 9, 10), 7)
    assert result.passed  # today's half-loaded day is not judged yet


def test_a_2027_month_is_judged_provisionally_with_a_warn(minute_store, tmp_path, monkeypatch):
    """January 2027 (the year after the last the installed exchange-calendars knows for XSHG): the
    weekdays minus the holiday file are the grid, and whatever is found the verdict is a WARN naming
    the library version to upgrade and the days judged provisionally, never an error."""
    year = max(2027, calendars.last_known_session("SSE").year + 1)
    month, as_of = date(year, 1, 1), date(year, 2, 1)
    holidays = tmp_path / "holidays.yaml"
    holidays.write_text(f"XSHG: [{year}-01-01]\n")
    monkeypatch.setenv("MARKETDATA_HOLIDAYS_FILE", str(holidays))
    allow_future_until(monkeypatch, as_of)
    days = calendars.trading_days("SSE", month, date(year, 1, 31))
    assert month not in days and len(days) == sum(date(year, 1, d).weekday() < 5 for d in range(2, 32))
    drop(minute_store, tmp_path, fx.make_bars("600000.SH", days, seed=1), "600000.SH.csv")
    drop(minute_store, tmp_path, fx.make_bars("000001.SZ", days, seed=2), "000001.SZ.csv")

    complete = completeness.check_month(minute_store, month, as_of=as_of)
    assert (complete.severity, complete.passed, complete.trading_days) == ("WARN", False, len(days))
    assert (complete.bars, complete.expected_bars, complete.partial, complete.missing_days) == (
        2 * 240 * len(days),
        2 * 240 * len(days),
        [],
        [],
    )
    text = complete.description()
    assert text.startswith(
        f"provisional: exchange-calendars {version('exchange-calendars')} knows XSHG sessions "
        f"only until {calendars.last_known_session('SSE')}; later days are judged as weekdays "
        f"minus the holidays of {holidays}. Upgrade exchange-calendars"
    )
    assert f"Days judged provisionally: {', '.join(f'{d:%m-%d}' for d in days)}." in text
    assert text.endswith(
        f"{year}-01: 2 codes x {len(days)} trading days, {complete.bars:,} of {complete.bars:,} "
        "expected bars: complete"
    )
    meta = complete.metadata()
    assert meta["provisional_days"] == [str(d) for d in days] and "exchange-calendars" in meta["calendar"]

    # a hole on a provisional day is listed, still a WARN; without the holiday file New Year's Day is
    # a weekday without bars: a missing day, a WARN too
    holed = without(fx.make_bars("600000.SH", days, seed=1), days[2], time(10, 1), time(10, 5))
    drop(minute_store, tmp_path, holed, "600000.SH.csv")
    monkeypatch.delenv("MARKETDATA_HOLIDAYS_FILE")
    found = completeness.check_month(minute_store, month, as_of=as_of)
    assert found.severity == "WARN" and found.missing_days == ([month] if month.weekday() < 5 else [])
    assert [(c.code, c.day, c.missing, c.stamps) for c in found.partial] == [
        ("600000.SH", days[2], 5, "10:01-10:05")
    ]
    assert "MARKETDATA_HOLIDAYS_FILE is not set" in found.description()
    assert f"600000.SH {days[2]} 5 missing (10:01-10:05)" in found.description()


def test_a_month_without_bars_fails_but_a_month_not_started_passes(minute_store):
    result = completeness.check_month(minute_store, SEP)
    assert result.severity == "ERROR" and result.codes == 0 and result.missing_days == SEP_DAYS
    assert (
        result.description() == "2026-09: no minute bars at all in 2026-09-01..2026-09-30 (21 trading days)"
    )
    not_started = completeness.check_month(minute_store, SEP, as_of=SEP)
    assert not_started.passed and not_started.description() == "2026-09: no trading day to judge yet"


def test_a_day_whose_rows_were_rejected_as_future_dated_is_named_not_a_suspension(
    minute_store, tmp_path, monkeypatch
):
    """A drop stamped ahead: its rows of a day still to come are rejected as future-dated. Once that day
    has passed, the code without bars on it is no suspension: the check names the rejected rows, their
    reason and rejects file; loading the file again (fixed) replaces that record."""
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    month = calendars.next_month(today + timedelta(days=2))  # its first two trading days: ahead of now
    day, after = calendars.trading_days("SSE", month, month + timedelta(days=20))[:2]
    past = calendars.trading_days("SSE", today - timedelta(days=20), today - timedelta(days=1))[-1]
    allow_future_until(monkeypatch, after + timedelta(days=1))  # the market's bars of both days, loaded
    drop(minute_store, tmp_path, fx.make_bars("000001.SZ", [day, after], seed=2), "000001.SZ.csv")
    drop(minute_store, tmp_path, fx.make_bars("600000.SH", [after], seed=1), "600000.SH.later.csv")
    monkeypatch.setenv("TIMESTAMP_FUTURE_TOLERANCE_MINUTES", "10")  # the default: `day` is in the future
    early = fx.make_bars("600000.SH", [past, day], seed=1)
    drop(minute_store, tmp_path, early, "600000.SH.csv")
    rejects = tmp_path / "rejects" / "600000.SH.csv.rejects.csv"
    assert len(rejects.read_text().splitlines()) == 1 + 240

    result = completeness.check_month(minute_store, month, as_of=after + timedelta(days=1))
    assert result.suspended == [] and result.partial == [] and result.missing_days == []
    assert [(c.code, c.day, c.verdict, c.rejects.rows, c.rejects.reasons) for c in result.rejected] == [
        ("600000.SH", day, "rejected", 240, {"future-dated": 240})
    ]
    assert result.severity == "WARN"  # like a suspension: listed for a look (the load said partial)
    text = result.description()
    assert (
        f"1 code-day(s) without bars whose rows a load rejected: 600000.SH {day}: 240 rows rejected "
        f"(future-dated; rejects in {rejects})"
        in text
        and "suspended" not in text
    )
    meta = result.metadata()
    assert (meta["rejected_code_days"], meta["suspended_code_days"]) == (1, 0)
    assert f"| 600000.SH | {day} | 240 | future-dated | {rejects} |" in meta["rejected"]

    # the file again without the rows stamped ahead: its record is replaced, the day reads as a suspension
    drop(minute_store, tmp_path, early.filter(pl.col("time").dt.date() == past), "600000.SH.csv")
    again = completeness.check_month(minute_store, month, as_of=after + timedelta(days=1))
    assert again.rejected == [] and [(c.code, c.day) for c in again.suspended] == [("600000.SH", day)]
