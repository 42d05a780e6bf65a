"""Trading calendars: which days a venue trades and which 1-minute bar stamps a day must have.

Holidays and session hours come from the `exchange-calendars` library (kept up to date by its
maintainers; never a hand-written holiday list). Venues are OUR codes (lib/ticks/instruments:
``SSE``, ``SZSE``, ``BSE`` and the exchanges Yahoo names in ``meta.exchangeName``), mapped to
exchange_calendars' ISO codes by :data:`VENUE_CALENDARS`; an ISO code it knows (``XNYS``, ``XHKG``)
is accepted as it is. exchange_calendars' own short aliases are NOT used: its ``BSE`` is Bombay.

API::

    calendar_for("SSE")                                  -> exchange_calendars.ExchangeCalendar (XSHG)
    trading_days("SSE", date(2024, 9, 30), date(2024, 10, 9))   -> [2024-09-30, 2024-10-08, 2024-10-09]
    is_trading_day("NYSE", date(2024, 11, 29))           -> True (a half day)
    session_minutes("SSE", date(2024, 10, 8))            -> 240 UTC-aware bar stamps
    session_minutes("SSE", day, call_auction=True)       -> 241 (the 09:30 opening-auction bar first)
    session_minutes("NYSE", date(2024, 11, 29))          -> 210 stamps, 09:30..12:59 New York time
    venue_timezone("SSE")                                -> "Asia/Shanghai"
    convention_for("SSE")                                -> BarConvention(label="end", call_auction=False)

**Bar labelling.** A 1-minute bar covers [t, t + 1 min); vendors stamp it with either end:

- A-shares (SSE, SZSE, BSE): the bar is labelled by its END. Our CSV drops (lib/bars/minute_csv,
  replay/minute_csv) have 240 bars a day, 09:31..11:30 and 13:01..15:00 Beijing time, the opening
  call auction (09:15-09:25, matched at 09:25) folded into the 09:31 bar. Tushare ``stk_mins``
  (lib/ticks/sources/tushare/parse.py) is labelled by its end too but has 241 bars: a separate
  09:30 bar carrying the opening auction, then 09:31..15:00. Defaults: ``label="end"``,
  ``call_auction=False`` (the CSV drops); ``call_auction=True`` gives Tushare's 241.
  14:58 and 14:59 are inside the closing call auction (14:57-15:00, no continuous trading): they
  are session minutes, with zero volume when a vendor writes them.
- Everything else (Yahoo chart v8 ``interval=1m``): labelled by its START, e.g. 09:30..15:59 New
  York time on a full XNYS day (390 bars), 08:00..16:29 London time on XLON (510; the closing
  auction is not a bar). Default ``label="start"``.

**Range limits.** A calendar knows the sessions between its first session (2000 or the venue's
earliest, whichever is later) and its last one (about a year ahead; for XSHG the last year whose
lunar holidays the installed exchange-calendars knows: upgrade the package each December). A day
outside raises ``OutOfCalendar`` (a ValueError) naming the venue, the day and the bounds, never a silent "holiday".
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from functools import cache, lru_cache
from typing import TYPE_CHECKING, Literal

# imported on first use: it pulls in pandas, ~1.5 s that a process loading the definitions never needs
if TYPE_CHECKING:
    import exchange_calendars as xcals

Label = Literal["end", "start"]
EARLIEST = date(2000, 1, 1)  # the first month partition of the bars domain


class OutOfCalendar(ValueError):
    """A day outside the range a venue's calendar knows (names venue, day and range)."""


@dataclass(frozen=True)
class BarConvention:
    """How a venue's 1-minute bars are stamped: by the END or the START of their minute, and whether
    a separate opening-call-auction bar is stamped at the open (label "end" only)."""

    label: Label = "start"
    call_auction: bool = False


A_SHARE = BarConvention(label="end", call_auction=False)
YAHOO = BarConvention(label="start", call_auction=False)

# Our venue code -> (exchange_calendars code, bar convention).
VENUE_CALENDARS: dict[str, tuple[str, BarConvention]] = {
    # A-shares. exchange_calendars has XSHG only: Shenzhen (SZSE) and Beijing (BSE) close on the
    # same national holidays (set by the State Council for all three exchanges) and trade the same
    # hours, 09:30-11:30 and 13:00-15:00, so both use the Shanghai calendar. Note that
    # exchange_calendars' alias "BSE" is the Bombay Stock Exchange: never look our BSE up there.
    "SSE": ("XSHG", A_SHARE),
    "SZSE": ("XSHG", A_SHARE),
    "BSE": ("XSHG", A_SHARE),
    # Yahoo's exchangeName codes and the usual names.
    "NYSE": ("XNYS", YAHOO), "NYQ": ("XNYS", YAHOO), "ASE": ("XNYS", YAHOO), "PCX": ("XNYS", YAHOO),
    "NASDAQ": ("XNYS", YAHOO), "NMS": ("XNYS", YAHOO), "NGM": ("XNYS", YAHOO), "NCM": ("XNYS", YAHOO),
    "XNAS": ("XNYS", YAHOO),  # exchange_calendars has no XNAS: Nasdaq keeps the NYSE holidays and hours
    "LSE": ("XLON", YAHOO), "IOB": ("XLON", YAHOO),
    "HKEX": ("XHKG", YAHOO), "HKG": ("XHKG", YAHOO),
    "TSX": ("XTSE", YAHOO), "TOR": ("XTSE", YAHOO),
    "JPX": ("XTKS", YAHOO), "TYO": ("XTKS", YAHOO),
    "ASX": ("XASX", YAHOO),
    "JNB": ("XJSE", YAHOO),
    "TLV": ("XTAE", YAHOO),
    "GER": ("XETR", YAHOO), "FRA": ("XFRA", YAHOO),
    "PAR": ("XPAR", YAHOO), "AMS": ("XAMS", YAHOO),
}


def _resolve(venue: str) -> tuple[str, BarConvention]:
    if not isinstance(venue, str):
        raise TypeError(f"venue must be a string, not {type(venue).__name__}")
    key = venue.strip().upper()
    if key in VENUE_CALENDARS:
        return VENUE_CALENDARS[key]
    if key in _iso_codes():
        return key, YAHOO
    raise ValueError(f"no trading calendar for venue {venue!r}: known venues {sorted(VENUE_CALENDARS)} "
                     "or an exchange_calendars ISO code (XNYS, XLON, XHKG, ...)")


@contextmanager
def _library() -> Iterator[None]:
    """exchange_calendars 4.13 on pandas 3.1 warns about its own use of `.values`: not ours to fix."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        yield


@lru_cache(maxsize=1)
def _iso_codes() -> frozenset[str]:
    import exchange_calendars as xcals

    return frozenset(xcals.get_calendar_names(include_aliases=False))


@cache
def _calendar(code: str) -> tuple[xcals.ExchangeCalendar, date]:
    """(calendar, first day it answers for): from 2000-01-01, or the venue's own earliest."""
    import exchange_calendars as xcals

    with _library():
        try:
            return xcals.get_calendar(code, start=EARLIEST.isoformat()), EARLIEST
        except ValueError:  # a venue whose calendar starts after 2000
            calendar = xcals.get_calendar(code)
            return calendar, calendar.first_session.date()


def calendar_for(venue: str) -> xcals.ExchangeCalendar:
    """The exchange_calendars calendar of one of our venues (cached; sessions from 2000 on)."""
    return _calendar(_resolve(venue)[0])[0]


def calendar_code(venue: str) -> str:
    """The exchange_calendars code behind a venue: "SSE" -> "XSHG"."""
    return _resolve(venue)[0]


def convention_for(venue: str) -> BarConvention:
    """The venue's default bar convention (see the module docstring)."""
    return _resolve(venue)[1]


def venue_timezone(venue: str) -> str:
    """The IANA time zone of the venue's sessions: "Asia/Shanghai" for SSE."""
    return str(calendar_for(venue).tz)


def _day(value: date | datetime | str, what: str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        return date.fromisoformat(value)
    raise TypeError(f"{what} must be a date, not {type(value).__name__}")


def _check_bounds(venue: str, calendar: xcals.ExchangeCalendar, *days: date) -> None:
    first, last = _calendar(calendar.name)[1], calendar.last_session.date()
    for day in days:
        if not first <= day <= last:
            raise OutOfCalendar(
                f"{day} is outside the {calendar.name} calendar of venue {venue!r}, which knows "
                f"{first}..{last}" + (" (upgrade exchange-calendars for later years' holidays)" if day > last else ""))


def is_trading_day(venue: str, day: date | datetime | str) -> bool:
    """Whether the venue has a session on `day` (ValueError outside the calendar's bounds)."""
    calendar, day = calendar_for(venue), _day(day, "day")
    _check_bounds(venue, calendar, day)
    with _library():
        return day >= calendar.first_session.date() and bool(calendar.is_session(day.isoformat()))


def trading_days(venue: str, start: date | datetime | str, end: date | datetime | str) -> list[date]:
    """The venue's trading days in [start, end], both ends included (empty if end < start)."""
    calendar = calendar_for(venue)
    first, last = _day(start, "start"), _day(end, "end")
    if last < first:
        return []
    _check_bounds(venue, calendar, first, last)
    first = max(first, calendar.first_session.date())  # days before it (2000-01-01..03) are holidays
    if last < first:
        return []
    with _library():
        return [ts.date() for ts in calendar.sessions_in_range(first.isoformat(), last.isoformat())]


def session_minutes(venue: str, day: date | datetime | str, *, label: Label | None = None,
                    call_auction: bool | None = None) -> list[datetime]:
    """The 1-minute bar stamps (UTC-aware, ascending) a full day of bars has on `day`; [] when the
    venue does not trade that day. `label` and `call_auction` default to the venue's convention
    (:func:`convention_for`): "end" stamps each bar one minute after its start; `call_auction`
    (label "end" only) adds the opening-auction bar stamped at the open (Tushare's 09:30)."""
    default = convention_for(venue)
    label = default.label if label is None else label
    call_auction = default.call_auction if call_auction is None else call_auction
    if label not in ("end", "start"):
        raise ValueError(f"label must be 'end' or 'start', not {label!r}")
    if call_auction and label != "end":
        raise ValueError("call_auction=True needs label='end': the auction bar is stamped at the open, "
                         "which label='start' gives the first continuous bar")
    calendar, day = calendar_for(venue), _day(day, "day")
    _check_bounds(venue, calendar, day)
    if not is_trading_day(venue, day):
        return []
    with _library():
        starts = calendar.session_minutes(day.isoformat()).tz_convert("UTC").to_pydatetime()
    minutes = [t.replace(tzinfo=timezone.utc) for t in starts]  # left side: each bar's start
    if label == "end":
        step = timedelta(minutes=1)
        minutes = [t + step for t in minutes]
        if call_auction:
            minutes.insert(0, minutes[0] - step)
    return minutes


def local_session_minutes(venue: str, day: date | datetime | str, **convention) -> list[datetime]:
    """:func:`session_minutes` as naive wall-clock times of the venue (how stock_1min_qfq stores them)."""
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(venue_timezone(venue))
    return [t.astimezone(zone).replace(tzinfo=None) for t in session_minutes(venue, day, **convention)]
