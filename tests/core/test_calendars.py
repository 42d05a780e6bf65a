"""Trading calendars (core/calendars.py) over exchange_calendars: holidays, sessions, bar stamps."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from importlib.metadata import version
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest

from marketdata_assets.core import calendars

SHANGHAI = ZoneInfo("Asia/Shanghai")
NEW_YORK = ZoneInfo("America/New_York")


def local(stamps, zone):
    return [t.astimezone(zone).replace(tzinfo=None) for t in stamps]


def test_venues_map_to_exchange_calendars():
    assert [
        calendars.calendar_code(v) for v in ("SSE", "SZSE", "BSE", "NYSE", "NASDAQ", "NMS", "LSE", "xlon")
    ] == ["XSHG", "XSHG", "XSHG", "XNYS", "XNYS", "XNYS", "XLON", "XLON"]
    # exchange_calendars' own alias BSE is Bombay: ours is Beijing, on the Shanghai calendar
    assert calendars.venue_timezone("BSE") == "Asia/Shanghai"
    assert calendars.calendar_for("SSE").name == "XSHG"
    with pytest.raises(ValueError, match="no trading calendar for venue 'MOON'"):
        calendars.calendar_for("MOON")


def test_national_day_is_not_a_trading_day_on_the_chinese_exchanges():
    assert calendars.trading_days("SSE", date(2024, 9, 27), date(2024, 10, 9)) == [
        date(2024, 9, 27),
        date(2024, 9, 30),
        date(2024, 10, 8),
        date(2024, 10, 9),
    ]
    for venue in ("SSE", "SZSE", "BSE"):
        assert not calendars.is_trading_day(venue, date(2024, 10, 1))
        assert calendars.session_minutes(venue, date(2024, 10, 1)) == []
    # Spring Festival 2026: closed 2026-02-16..2026-02-23 (weekdays), open again on the 24th
    feb = calendars.trading_days("SSE", date(2026, 2, 13), date(2026, 2, 24))
    assert feb == [date(2026, 2, 13), date(2026, 2, 24)]


def test_a_share_day_has_240_end_labelled_bars_or_241_with_the_auction_bar():
    day = date(2024, 10, 8)
    stamps = calendars.session_minutes("SSE", day)
    assert len(stamps) == 240 and all(t.tzinfo == UTC for t in stamps)
    wall = local(stamps, SHANGHAI)
    assert (wall[0].time(), wall[119].time(), wall[120].time(), wall[-1].time()) == (
        time(9, 31),
        time(11, 30),
        time(13, 1),
        time(15, 0),
    )
    assert wall == calendars.local_session_minutes("SSE", day)
    assert all(b - a == timedelta(minutes=1) for a, b in pairwise(wall[:120]))
    tushare = calendars.local_session_minutes("SZSE", day, call_auction=True)
    assert len(tushare) == 241 and tushare[0] == datetime(2024, 10, 8, 9, 30) and tushare[1:] == wall
    starts = calendars.local_session_minutes("SSE", day, label="start")
    assert (starts[0].time(), starts[-1].time(), len(starts)) == (time(9, 30), time(14, 59), 240)
    with pytest.raises(ValueError, match="call_auction=True needs label='end'"):
        calendars.session_minutes("SSE", day, label="start", call_auction=True)


def test_nyse_full_day_and_half_day_are_start_labelled():
    full = local(calendars.session_minutes("NYSE", date(2024, 11, 27)), NEW_YORK)
    assert (len(full), full[0].time(), full[-1].time()) == (390, time(9, 30), time(15, 59))
    half = local(
        calendars.session_minutes("NYSE", date(2024, 11, 29)), NEW_YORK
    )  # the day after Thanksgiving
    assert (len(half), half[0].time(), half[-1].time()) == (210, time(9, 30), time(12, 59))
    assert not calendars.is_trading_day("NYSE", date(2024, 11, 28))  # Thanksgiving
    assert calendars.convention_for("NYSE") == calendars.BarConvention(label="start", call_auction=False)
    assert calendars.convention_for("SSE") == calendars.BarConvention(label="end", call_auction=False)


def test_weekend():
    assert calendars.session_minutes("SSE", date(2024, 10, 12)) == []  # a Saturday
    assert calendars.trading_days("NYSE", date(2024, 11, 30), date(2024, 12, 1)) == []
    assert calendars.trading_days("SSE", date(2024, 10, 9), date(2024, 10, 8)) == []  # end before start


def test_days_before_the_calendar_raise_naming_venue_and_day():
    with pytest.raises(ValueError, match=r"1999-12-31 is outside the XSHG calendar of venue 'SZSE'"):
        calendars.trading_days("SZSE", date(1999, 12, 31), date(2000, 1, 10))
    with pytest.raises(
        calendars.OutOfCalendar, match=r"1999-12-31 is outside the XSHG calendar of venue 'SSE'"
    ):
        calendars.is_trading_day("SSE", date(1999, 12, 31))
    # the first days of 2000 are inside (no session before 2000-01-04)
    assert calendars.trading_days("SSE", date(2000, 1, 1), date(2000, 1, 5)) == [
        date(2000, 1, 4),
        date(2000, 1, 5),
    ]


# Days after the last session the installed exchange-calendars knows: 2027 for XSHG today (4.13.2
# knows 2026 only); the next year the library does not know if it is upgraded.
BEYOND = max(2027, calendars.last_known_session("SSE").year + 1)


def january(year: int = BEYOND) -> list[date]:
    return [date(year, 1, d) for d in range(1, 32)]


def test_days_after_the_library_are_provisional_weekdays_with_the_regular_session():
    last = calendars.last_known_session("SSE")
    assert last < date(BEYOND, 1, 1) and calendars.is_provisional("SSE", date(BEYOND, 1, 4))
    assert not calendars.is_provisional("SSE", last)
    weekdays = [d for d in january() if d.weekday() < 5]
    assert calendars.trading_days("SSE", date(BEYOND, 1, 1), date(BEYOND, 1, 31)) == weekdays
    # a range across the boundary: the library's days, then the provisional ones
    across = calendars.trading_days("SSE", last - timedelta(days=6), date(BEYOND, 1, 8))
    assert across == calendars.trading_days("SSE", last - timedelta(days=6), last) + [
        d for d in weekdays if d.day <= 8
    ]
    assert calendars.provisional_days("SSE", across) == [d for d in weekdays if d.day <= 8]
    saturday = next(d for d in january() if d.weekday() == 5)
    assert not calendars.is_trading_day("SSE", saturday) and calendars.session_minutes("SSE", saturday) == []
    monday = next(d for d in january() if d.weekday() == 0)
    wall = local(calendars.session_minutes("SSE", monday), SHANGHAI)
    assert (len(wall), wall[0].time(), wall[119].time(), wall[120].time(), wall[-1].time()) == (
        240,
        time(9, 31),
        time(11, 30),
        time(13, 1),
        time(15, 0),
    )
    assert len(calendars.session_minutes("SSE", monday, call_auction=True)) == 241
    assert calendars.local_session_minutes("SZSE", monday) == wall
    # the same clock times as a day the library knows
    known = local(calendars.session_minutes("SSE", last), SHANGHAI)
    assert [t.time() for t in wall] == [t.time() for t in known]
    note = calendars.provisional_note("BSE")
    assert (
        note.startswith(
            f"provisional: exchange-calendars {version('exchange-calendars')} knows XSHG sessions "
            f"only until {last}"
        )
        and "MARKETDATA_HOLIDAYS_FILE is not set" in note
    )


def test_the_provisional_session_is_the_library_s_regular_one_on_known_days():
    for venue, day in (
        ("SSE", date(2026, 12, 30)),
        ("NYSE", date(2026, 11, 20)),
        ("LSE", date(2026, 6, 3)),
        ("HKEX", date(2026, 6, 3)),
        ("JPX", date(2026, 6, 3)),
        ("ASX", date(2026, 6, 3)),
    ):
        assert calendars._fallback_minutes(calendars.calendar_for(venue), day) == calendars.session_minutes(
            venue, day, label="start"
        ), venue
    nyse_beyond = calendars.last_known_session("NYSE") + timedelta(days=7)
    monday = nyse_beyond + timedelta(days=-nyse_beyond.weekday())
    wall = local(calendars.session_minutes("NYSE", monday), NEW_YORK)
    assert (len(wall), wall[0].time(), wall[-1].time()) == (390, time(9, 30), time(15, 59))


def test_a_holiday_file_takes_days_out_of_the_provisional_calendar(tmp_path, monkeypatch):
    spring = date(BEYOND, 2, 8) if date(BEYOND, 2, 8).weekday() < 5 else date(BEYOND, 2, 9)
    holidays = tmp_path / "holidays.yaml"
    holidays.write_text(
        f"# State Council notice\nXSHG: [{BEYOND}-01-01, '{spring}']\nNYSE:\n  - {BEYOND}-01-01\n"
    )
    monkeypatch.setenv("MARKETDATA_HOLIDAYS_FILE", str(holidays))
    new_year = date(BEYOND, 1, 1)
    for venue in ("SSE", "SZSE", "BSE"):
        assert not calendars.is_trading_day(venue, spring) and calendars.session_minutes(venue, spring) == []
    days = calendars.trading_days("SSE", date(BEYOND, 1, 1), date(BEYOND, 2, 28))
    weekdays = [d for d in (new_year + timedelta(days=i) for i in range(59)) if d.weekday() < 5]
    assert days == [d for d in weekdays if d not in (new_year, spring)] and spring in weekdays
    assert f"the holidays of {holidays}" in calendars.provisional_note("SSE")
    # known days are the library's alone: a listed 2026 day changes nothing
    holidays.write_text("SSE: [2026-12-30]\n")
    assert calendars.is_trading_day("SSE", date(2026, 12, 30)) and calendars.is_trading_day("SSE", spring)


@pytest.mark.parametrize(
    "text, message",
    [
        ("XSHG: 2027-01-01\n", "key 'XSHG': expected a list of ISO dates"),
        ("MOON: [2027-01-01]\n", "key 'MOON': no trading calendar for venue 'MOON'"),
        ("XSHG: [2027-13-01]\n", "key 'XSHG': '2027-13-01' is not an ISO date"),
        ("- 2027-01-01\n", "expected a mapping of exchange codes to lists of ISO dates"),
        ("XSHG: [2027-01-01\n", "is not valid YAML"),
    ],
)
def test_a_bad_holiday_file_is_an_error_naming_file_and_key(tmp_path, monkeypatch, text, message):
    holidays = tmp_path / "holidays.yaml"
    holidays.write_text(text)
    monkeypatch.setenv("MARKETDATA_HOLIDAYS_FILE", str(holidays))
    with pytest.raises(ValueError, match=re.escape(message)) as error:
        calendars.is_trading_day("SSE", date(BEYOND, 1, 4))
    assert str(holidays) in str(error.value)
    monkeypatch.setenv("MARKETDATA_HOLIDAYS_FILE", str(tmp_path / "missing.yaml"))
    with pytest.raises(
        ValueError, match=r"MARKETDATA_HOLIDAYS_FILE=.*missing.yaml: cannot read the holiday file"
    ):
        calendars.trading_days("SSE", date(BEYOND, 1, 1), date(BEYOND, 1, 5))
