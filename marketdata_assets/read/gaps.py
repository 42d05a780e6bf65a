"""Days a read asked for that have nothing stored: the read API warns naming them (:class:`MissingDays`),
so a frame with holes never passes for a complete one.

A day is expected when it is over (before today, UTC for ClickHouse, Beijing for the minute bars) and,
on a venue with a trading calendar (core.calendars: the A-share and Yahoo venues), a trading day; a
crypto venue trades every day. It is missing for an instrument when no load of the dataset is active
for it (ClickHouse) or no bar is stored on it (minute bars). Reading every instrument (None) judges the
instruments with something stored in the range.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Iterable, Mapping
from datetime import date, timedelta

from marketdata_assets.core import calendars

SHOWN = 5  # instruments named in a warning (the rest counted)


class MissingDays(UserWarning):
    """A read's range has days with nothing stored; ``missing`` maps instrument -> the days."""

    def __init__(self, message: str, missing: Mapping[str, list[date]]):
        super().__init__(message)
        self.missing = dict(missing)


class LiveRowsNotRead(UserWarning):
    """A trades read's range holds live trades no hourly load holds yet (today's open hours): read them
    with ``live=True``; ``rows`` counts them."""

    def __init__(self, message: str, rows: int):
        super().__init__(message)
        self.rows = rows


class StoreNotRead(UserWarning):
    """The catalog could not read one store (``store`` names it): its rows are missing, the others' are
    there."""

    def __init__(self, message: str, store: str):
        super().__init__(message)
        self.store = store


def warn_not_read(store: str, error: BaseException) -> None:
    reason = f"{type(error).__name__}: {(str(error).strip() or '-').splitlines()[0]}"
    warnings.warn(
        StoreNotRead(f"the catalog lists nothing of {store}: it could not be read ({reason})", store),
        stacklevel=_callers_level(),
    )


def warn_live(venue: str, rows: int) -> None:
    warnings.warn(
        LiveRowsNotRead(
            f"{rows:,} live {venue} trade(s) in the range are not loaded into trades yet "
            "(their hours are still open): read with live=True to have them, marked "
            "path='live'",
            rows,
        ),
        stacklevel=_callers_level(),
    )


def expected_days(venue: str, first: date, last: date, today: date) -> list[date]:
    """The days of ``[first, last]`` that are over by `today` and that `venue` trades."""
    last = min(last, today - timedelta(days=1))
    if last < first:
        return []
    if venue.upper() in calendars.VENUE_CALENDARS:
        try:
            return calendars.trading_days(venue, first, last)
        except calendars.OutOfCalendar:
            pass
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def spans(days: Iterable[date]) -> str:
    """``2025-01-03..2025-01-05, 2025-01-09``: consecutive days as one span."""
    out: list[list[date]] = []
    for day in sorted(days):
        if out and (day - out[-1][1]).days == 1:
            out[-1][1] = day
        else:
            out.append([day, day])
    return ", ".join(a.isoformat() if a == b else f"{a}..{b}" for a, b in out)


def missing_days(expected: list[date], stored: Mapping[str, Iterable[date]]) -> dict[str, list[date]]:
    """Instrument -> the expected days it has nothing stored on (instruments without any left out)."""
    want = set(expected)
    out = {name: sorted(want - set(days)) for name, days in stored.items()}
    return {name: days for name, days in sorted(out.items()) if days}


def message(what: str, venue: str, missing: Mapping[str, list[date]], expected: list[date]) -> str:
    """One line naming the instruments and days with nothing stored, and where to look."""
    shown = [f"{name} {spans(days)}" for name, days in list(missing.items())[:SHOWN]]
    more = f"; +{len(missing) - SHOWN} more instrument(s)" if len(missing) > SHOWN else ""
    total = sum(len(days) for days in missing.values())
    return (
        f"{what} {venue}: {total} instrument-day(s) of {len(expected)} expected day(s) "
        f"({expected[0]}..{expected[-1]}) have nothing stored: {'; '.join(shown)}{more}. "
        "read.catalog() / `marketdata catalog` shows what is stored; the warning's .missing has every day"
    )


def warn_missing(
    what: str,
    venue: str,
    expected: list[date],
    stored: Iterable[tuple[str, date]],
    wanted: Iterable[str] | None,
) -> None:
    """MissingDays (naming the caller's line: the first outside the read package) if an instrument of
    `wanted` (None: every one with something `stored`, (instrument, day) pairs) has an expected day with
    nothing stored."""
    days: dict[str, set] = {name: set() for name in wanted or ()}
    for name, day in stored:
        if wanted is None or name in days:
            days.setdefault(name, set()).add(day)
    missing = missing_days(expected, days)
    if missing:
        warnings.warn(
            MissingDays(message(what, venue, missing, expected), missing), stacklevel=_callers_level()
        )


def _callers_level() -> int:
    """The `stacklevel` of the first frame outside this package, seen from the function calling `warn`
    (a read through a shortcut, `dataset` or `minute_bars` alike names the user's line)."""
    here, frame, level = os.path.dirname(__file__), sys._getframe(2), 2  # 1: the line calling warn
    while frame is not None and os.path.dirname(frame.f_code.co_filename) == here:
        frame, level = frame.f_back, level + 1
    return level
