"""Trading calendars (lib/calendars.py) over exchange_calendars: holidays, sessions, bar stamps."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest

from marketdata_assets.lib import calendars

SHANGHAI = ZoneInfo("Asia/Shanghai")
NEW_YORK = ZoneInfo("America/New_York")


def local(stamps, zone):
    return [t.astimezone(zone).replace(tzinfo=None) for t in stamps]


def test_venues_map_to_exchange_calendars():
    assert [calendars.calendar_code(v) for v in ("SSE", "SZSE", "BSE", "NYSE", "NASDAQ", "NMS", "LSE", "xlon")] == \
        ["XSHG", "XSHG", "XSHG", "XNYS", "XNYS", "XNYS", "XLON", "XLON"]
    # exchange_calendars' own alias BSE is Bombay: ours is Beijing, on the Shanghai calendar
    assert calendars.venue_timezone("BSE") == "Asia/Shanghai"
    assert calendars.calendar_for("SSE").name == "XSHG"
    with pytest.raises(ValueError, match="no trading calendar for venue 'MOON'"):
        calendars.calendar_for("MOON")


def test_national_day_is_not_a_trading_day_on_the_chinese_exchanges():
    assert calendars.trading_days("SSE", date(2024, 9, 27), date(2024, 10, 9)) == [
        date(2024, 9, 27), date(2024, 9, 30), date(2024, 10, 8), date(2024, 10, 9)]
    for venue in ("SSE", "SZSE", "BSE"):
        assert not calendars.is_trading_day(venue, date(2024, 10, 1))
        assert calendars.session_minutes(venue, date(2024, 10, 1)) == []
    # Spring Festival 2026: closed 2026-02-16..2026-02-23 (weekdays), open again on the 24th
    feb = calendars.trading_days("SSE", date(2026, 2, 13), date(2026, 2, 24))
    assert feb == [date(2026, 2, 13), date(2026, 2, 24)]


def test_a_share_day_has_240_end_labelled_bars_or_241_with_the_auction_bar():
    day = date(2024, 10, 8)
    stamps = calendars.session_minutes("SSE", day)
    assert len(stamps) == 240 and all(t.tzinfo == timezone.utc for t in stamps)
    wall = local(stamps, SHANGHAI)
    assert (wall[0].time(), wall[119].time(), wall[120].time(), wall[-1].time()) == \
        (time(9, 31), time(11, 30), time(13, 1), time(15, 0))
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
    half = local(calendars.session_minutes("NYSE", date(2024, 11, 29)), NEW_YORK)  # the day after Thanksgiving
    assert (len(half), half[0].time(), half[-1].time()) == (210, time(9, 30), time(12, 59))
    assert not calendars.is_trading_day("NYSE", date(2024, 11, 28))  # Thanksgiving
    assert calendars.convention_for("NYSE") == calendars.BarConvention(label="start", call_auction=False)
    assert calendars.convention_for("SSE") == calendars.BarConvention(label="end", call_auction=False)


def test_weekend():
    assert calendars.session_minutes("SSE", date(2024, 10, 12)) == []  # a Saturday
    assert calendars.trading_days("NYSE", date(2024, 11, 30), date(2024, 12, 1)) == []
    assert calendars.trading_days("SSE", date(2024, 10, 9), date(2024, 10, 8)) == []  # end before start


def test_days_outside_the_calendar_raise_naming_venue_and_day():
    last = calendars.calendar_for("SSE").last_session.date()
    beyond = last + timedelta(days=400)
    with pytest.raises(calendars.OutOfCalendar, match=rf"{beyond} is outside the XSHG calendar of venue 'SSE'"):
        calendars.is_trading_day("SSE", beyond)
    with pytest.raises(ValueError, match=r"1999-12-31 is outside the XSHG calendar of venue 'SZSE'"):
        calendars.trading_days("SZSE", date(1999, 12, 31), date(2000, 1, 10))
    # the first days of 2000 are inside (no session before 2000-01-04)
    assert calendars.trading_days("SSE", date(2000, 1, 1), date(2000, 1, 5)) == [date(2000, 1, 4), date(2000, 1, 5)]
