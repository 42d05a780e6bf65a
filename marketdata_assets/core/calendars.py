"""Trading calendars: which days a venue trades and which 1-minute bar stamps a day must have.

Holidays and session hours come from `exchange-calendars` (never a hand-written list), looked up by
our venue codes (:data:`VENUE_CALENDARS`); bars are labelled by their end (A-shares) or start (Yahoo).
Days after the library's last session are judged provisionally. API, bar conventions and range
limits: docs/completeness.md, "The calendars".
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from zoneinfo import ZoneInfo

from marketdata_assets.core import settings

# imported on first use: it pulls in pandas, ~1.5 s that a process loading the definitions never needs
if TYPE_CHECKING:
    import exchange_calendars as xcals

Label = Literal["end", "start"]
EARLIEST = date(2000, 1, 1)  # the first month partition of the bars domain
HOLIDAYS_FILE = "MARKETDATA_HOLIDAYS_FILE"  # settings.py documents it


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
    "NYSE": ("XNYS", YAHOO),
    "NYQ": ("XNYS", YAHOO),
    "ASE": ("XNYS", YAHOO),
    "PCX": ("XNYS", YAHOO),
    "NASDAQ": ("XNYS", YAHOO),
    "NMS": ("XNYS", YAHOO),
    "NGM": ("XNYS", YAHOO),
    "NCM": ("XNYS", YAHOO),
    "XNAS": ("XNYS", YAHOO),  # exchange_calendars has no XNAS: Nasdaq keeps the NYSE holidays and hours
    "LSE": ("XLON", YAHOO),
    "IOB": ("XLON", YAHOO),
    "HKEX": ("XHKG", YAHOO),
    "HKG": ("XHKG", YAHOO),
    "TSX": ("XTSE", YAHOO),
    "TOR": ("XTSE", YAHOO),
    "JPX": ("XTKS", YAHOO),
    "TYO": ("XTKS", YAHOO),
    "ASX": ("XASX", YAHOO),
    "JNB": ("XJSE", YAHOO),
    "TLV": ("XTAE", YAHOO),
    "GER": ("XETR", YAHOO),
    "FRA": ("XFRA", YAHOO),
    "PAR": ("XPAR", YAHOO),
    "AMS": ("XAMS", YAHOO),
}


def _resolve(venue: str) -> tuple[str, BarConvention]:
    if not isinstance(venue, str):
        raise TypeError(f"venue must be a string, not {type(venue).__name__}")
    key = venue.strip().upper()
    if key in VENUE_CALENDARS:
        return VENUE_CALENDARS[key]
    if key in _iso_codes():
        return key, YAHOO
    raise ValueError(
        f"no trading calendar for venue {venue!r}: known venues {sorted(VENUE_CALENDARS)} "
        "or an exchange_calendars ISO code (XNYS, XLON, XHKG, ...)"
    )


_LIBRARY = threading.RLock()  # `warnings.catch_warnings` swaps the process's filters: one thread at a time


@contextmanager
def _library() -> Iterator[None]:
    """exchange_calendars 4.13 on pandas 3.1 warns about its own use of `.values`: not ours to fix. Threads
    take turns (a replay's request threads ask calendars too): another thread's exit from `catch_warnings`
    would restore the filters under this one."""
    with _LIBRARY, warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        yield


@lru_cache(maxsize=1)
def _iso_codes() -> frozenset[str]:
    import exchange_calendars as xcals

    return frozenset(xcals.get_calendar_names(include_aliases=False))


def _calendar(code: str) -> tuple[xcals.ExchangeCalendar, date]:
    """(calendar, first day it answers for): from 2000-01-01, or the venue's own earliest. A calendar the
    library cannot build raises its ValueError again on every call, without building it again."""
    calendar, first, failure = _built(code)
    if failure is not None:
        raise ValueError(*failure)
    return calendar, first


@cache
def _built(code: str) -> tuple[xcals.ExchangeCalendar | None, date | None, tuple | None]:
    """`_calendar`'s answer, kept, a failure too: exchange_calendars 4.13 on pandas 3.1 cannot build XTAE
    (Tel Aviv: "Special dates ... are not sessions"), and each attempt took ~1.3 s of CPU (two builds of
    its lunar holidays), for every day a replay or a check asked about."""
    import exchange_calendars as xcals

    with _library():
        try:
            try:
                return xcals.get_calendar(code, start=EARLIEST.isoformat()), EARLIEST, None
            except ValueError:  # a venue whose calendar starts after 2000
                calendar = xcals.get_calendar(code)
                return calendar, calendar.first_session.date(), None
        except ValueError as error:  # its arguments: the same error raised anew on each call
            return None, None, error.args


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


def next_month(month: date) -> date:
    """The first day of the month after `month`'s."""
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def _day(value: date | datetime | str, what: str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        return date.fromisoformat(value)
    raise TypeError(f"{what} must be a date, not {type(value).__name__}")


def _check_bounds(venue: str, calendar: xcals.ExchangeCalendar, *days: date) -> None:
    """Days before the calendar's first session are refused; days after its last are provisional."""
    first, last = _calendar(calendar.name)[1], _known_until(calendar)
    for day in days:
        if day < first:
            raise OutOfCalendar(
                f"{day} is outside the {calendar.name} calendar of venue {venue!r}, which knows "
                f"{first}..{last} (and provisionally every day after {last})"
            )


def last_known_session(venue: str) -> date:
    """The last session the installed exchange-calendars knows for the venue; later days are provisional."""
    return _known_until(calendar_for(venue))


def _known_until(calendar: xcals.ExchangeCalendar) -> date:
    """The calendar's last session: the one place that says where the library's knowledge ends."""
    return calendar.last_session.date()


def is_provisional(venue: str, day: date | datetime | str) -> bool:
    """Whether `day` is beyond what the library knows (judged on weekdays minus the holiday file)."""
    return _day(day, "day") > last_known_session(venue)


def provisional_days(venue: str, days: Iterable[date]) -> list[date]:
    """The days of `days` judged provisionally, ascending."""
    last = last_known_session(venue)
    return sorted(d for d in days if d > last)


def provisional_note(venue: str) -> str:
    """What a provisional verdict says: the library and version to upgrade, and what stood in for it."""
    from importlib.metadata import version

    code, path = calendar_code(venue), settings.get(HOLIDAYS_FILE)
    holidays = f"the holidays of {path}" if path else f"no holiday file ({HOLIDAYS_FILE} is not set)"
    return (
        f"provisional: exchange-calendars {version('exchange-calendars')} knows {code} sessions only until "
        f"{last_known_session(venue)}; later days are judged as weekdays minus {holidays}. "
        "Upgrade exchange-calendars (pip install -U exchange-calendars) to judge them for sure"
    )


def user_holidays(code: str) -> frozenset[date]:
    """The holidays the user's holiday file lists for an exchange_calendars code (empty without a file)."""
    path = settings.get(HOLIDAYS_FILE)
    if not path:
        return frozenset()
    file = Path(path)
    try:
        stamp = file.stat().st_mtime_ns
    except OSError as error:
        raise ValueError(f"{HOLIDAYS_FILE}={path}: cannot read the holiday file ({error.strerror})") from None
    return _holiday_file(str(file.resolve()), stamp).get(code, frozenset())


@lru_cache(maxsize=8)
def _holiday_file(path: str, _mtime_ns: int) -> dict[str, frozenset[date]]:
    """{calendar code: holidays} of a holiday file (YAML mapping of calendar or venue codes to ISO dates)."""
    import yaml

    try:
        loaded = (
            yaml.load(Path(path).read_text(), Loader=yaml.BaseLoader) or {}
        )  # dates as text: checked below
    except yaml.YAMLError as error:
        raise ValueError(f"holiday file {path} is not valid YAML: {error}") from None
    if not isinstance(loaded, dict):
        raise ValueError(  # noqa: TRY004 - a bad file
            f"holiday file {path}: expected a mapping of exchange codes to lists of ISO dates, "
            f"e.g. 'XSHG: [2027-01-01]', not {type(loaded).__name__}"
        )
    out: dict[str, set[date]] = {}
    for key, days in loaded.items():
        try:
            code = _resolve(str(key))[0]
        except ValueError as error:
            raise ValueError(f"holiday file {path}: key {key!r}: {error}") from None
        if not isinstance(days, list):
            raise ValueError(f"holiday file {path}: key {key!r}: expected a list of ISO dates")  # noqa: TRY004
        for value in days:
            try:
                out.setdefault(code, set()).add(date.fromisoformat(str(value)))
            except ValueError:
                raise ValueError(
                    f"holiday file {path}: key {key!r}: {value!r} is not an ISO date (YYYY-MM-DD)"
                ) from None
    return {code: frozenset(days) for code, days in out.items()}


def _fallback_is_session(calendar: xcals.ExchangeCalendar, day: date) -> bool:
    return calendar.weekmask[day.weekday()] == "1" and day not in user_holidays(calendar.name)


def _fallback_minutes(calendar: xcals.ExchangeCalendar, day: date) -> list[datetime]:
    """The left-side minute stamps (UTC) of a regular session of the calendar on `day`: its current
    open and close times, less its lunch break (as exchange_calendars' session_minutes gives them)."""
    zone = ZoneInfo(str(calendar.tz))

    def at(times, offset: int = 0) -> datetime | None:
        if not times:
            return None
        return datetime.combine(day + timedelta(days=offset), times[-1][1], zone).astimezone(UTC)

    start, end = (
        at(calendar.open_times, calendar.open_offset),
        at(calendar.close_times, calendar.close_offset),
    )
    pause, resume = at(calendar.break_start_times), at(calendar.break_end_times)
    minutes, t, step = [], start, timedelta(minutes=1)
    while t < end:
        if pause is None or not pause <= t < resume:
            minutes.append(t)
        t += step
    return minutes


def is_trading_day(venue: str, day: date | datetime | str) -> bool:
    """Whether the venue has a session on `day` (ValueError before the calendar's first session;
    provisional after its last: see the module docstring)."""
    calendar, day = calendar_for(venue), _day(day, "day")
    _check_bounds(venue, calendar, day)
    if day > _known_until(calendar):
        return _fallback_is_session(calendar, day)
    with _library():
        return day >= calendar.first_session.date() and bool(calendar.is_session(day.isoformat()))


def trading_days(venue: str, start: date | datetime | str, end: date | datetime | str) -> list[date]:
    """The venue's trading days in [start, end], both ends included (empty if end < start); days
    after the calendar's last session are provisional."""
    calendar = calendar_for(venue)
    first, last = _day(start, "start"), _day(end, "end")
    if last < first:
        return []
    _check_bounds(venue, calendar, first, last)
    known = _known_until(calendar)
    after = max(first, known + timedelta(days=1))
    beyond = [after + timedelta(days=i) for i in range((last - after).days + 1)]
    beyond = [d for d in beyond if _fallback_is_session(calendar, d)]
    first, last = max(first, calendar.first_session.date()), min(last, known)  # 2000-01-01..03 are holidays
    if last < first:
        return beyond
    with _library():
        return [ts.date() for ts in calendar.sessions_in_range(first.isoformat(), last.isoformat())] + beyond


def session_minutes(
    venue: str, day: date | datetime | str, *, label: Label | None = None, call_auction: bool | None = None
) -> list[datetime]:
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
        raise ValueError(
            "call_auction=True needs label='end': the auction bar is stamped at the open, "
            "which label='start' gives the first continuous bar"
        )
    calendar, day = calendar_for(venue), _day(day, "day")
    _check_bounds(venue, calendar, day)
    if not is_trading_day(venue, day):
        return []
    if day > _known_until(calendar):
        minutes = _fallback_minutes(calendar, day)
    else:
        with _library():
            starts = calendar.session_minutes(day.isoformat()).tz_convert("UTC").to_pydatetime()
        minutes = [t.replace(tzinfo=UTC) for t in starts]  # left side: each bar's start
    if label == "end":
        step = timedelta(minutes=1)
        minutes = [t + step for t in minutes]
        if call_auction:
            minutes.insert(0, minutes[0] - step)
    return minutes


def local_session_minutes(venue: str, day: date | datetime | str, **convention) -> list[datetime]:
    """:func:`session_minutes` as naive wall-clock times of the venue (how stock_1min_qfq stores them)."""
    zone = ZoneInfo(venue_timezone(venue))
    return [t.astimezone(zone).replace(tzinfo=None) for t in session_minutes(venue, day, **convention)]
