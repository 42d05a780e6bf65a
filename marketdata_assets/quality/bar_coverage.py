"""How complete the stored 1-minute bars are, per instrument and UTC day: the bars of each active
load against what a full day has (1,440 for a 24/7 crypto venue, the session minutes of its
calendar for an exchange, none on a day it is closed) on the days the caller expects the instrument
(read/expected.py: its universe that day, from history_start), as a grid for the coverage heat map.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache

from marketdata_assets.core import calendars
from marketdata_assets.core.identifiers import sql_identifier
from marketdata_assets.core.naming import A_SHARE_VENUES
from marketdata_assets.datasets.frames import spec_for
from marketdata_assets.sources.registry import stock_feed

FULL_DAY = 1440


@lru_cache(maxsize=4096)  # one calendar computation per venue-day, not one per instrument
def expected_bars(venue: str, day: date) -> int | None:
    """The 1-minute bars a full day of `venue` has; None on a day it does not trade. A venue without
    a calendar trades around the clock (crypto)."""
    opens = stock_feed("TUSHARE" if venue in A_SHARE_VENUES else "YAHOO").session_bar_opens
    try:
        return len(opens(venue, day)) or None
    except ValueError:  # no calendar: a 24/7 venue
        return FULL_DAY


def provisional_notes(venues: Iterable[str], last: date) -> list[str]:
    """One note (calendars.provisional_note) per calendar of `venues` whose last known session is
    before `last`: its days after that are expected on a provisional calendar. Crypto venues: none."""
    notes = {}
    for venue in venues:
        try:
            if calendars.is_provisional(venue, last):
                notes[calendars.calendar_code(venue)] = calendars.provisional_note(venue)
        except ValueError:  # no calendar: a 24/7 venue
            continue
    return sorted(notes.values())


@dataclass(frozen=True)
class Coverage:
    """Rows (VENUE:INSTRUMENT, worst first) x days: each cell the share of its expected bars stored
    (None: not expected), each row's share of bars over its expected days (`percent`), its expected days
    with bars and expected days (`days_stored`) and the expected days with no bar (`missing`); `outside`:
    per instrument the days with bars on which it is not expected (not counted)."""

    rows: list[str]
    days: list[date]
    cells: list[list[float | None]]
    percent: dict[str, float]
    days_stored: dict[str, tuple[int, int]]
    missing: dict[str, list[date]]
    outside: dict[str, int]

    @property
    def overall(self) -> float:
        return sum(self.percent.values()) / len(self.percent) if self.percent else 0.0


def bars_per_day(client, database: str, first: date, last: date) -> dict[tuple[str, str], dict[date, int]]:
    """(venue, instrument) -> day -> active 1-minute bars stored (the active loads' counts), over [first,
    last]."""
    db = sql_identifier(database, "ClickHouse database")
    rows = client.query(
        f"SELECT venue, instrument, day, rows FROM `{db}`.active_loads WHERE dataset = {{code:String}} "
        "AND day BETWEEN {first:Date} AND {last:Date}",
        parameters={"code": spec_for("bars_1m").code, "first": first, "last": last},
    ).result_rows
    out: dict[tuple[str, str], dict[date, int]] = {}
    for venue, instrument, day, count in rows:
        out.setdefault((venue, instrument), {})[day] = int(count)
    return out


Expected = Callable[
    [str, str, date], int | None
]  # (venue, instrument, day) -> a full day's bars, None: not expected


def since_first_stored(stored: dict[tuple[str, str], dict[date, int]]) -> Expected:
    """A full day of the venue from each instrument's first stored day on: for instruments no universe
    names (what was stored is all that says it was wanted)."""

    def expected(venue: str, instrument: str, day: date) -> int | None:
        by_day = stored.get((venue, instrument))
        return expected_bars(venue, day) if by_day and day >= min(by_day) else None

    return expected


def coverage(
    stored: dict[tuple[str, str], dict[date, int]],
    first: date,
    last: date,
    expected: Expected | None = None,
    also: Iterable[tuple[str, str]] = (),
) -> Coverage:
    """The grid of `stored` bars, and of the instruments `also` expected with nothing stored, against
    `expected(venue, instrument, day)` (default: since_first_stored); an instrument expected on no day of
    the range has no row (its bars on days not expected are counted in `outside`)."""
    expected = expected or since_first_stored(stored)
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    lines: dict[str, list[float | None]] = {}
    percent, counts, missing, outside = {}, {}, {}, {}
    for venue, instrument in sorted(set(stored) | set(also)):
        by_day, key = stored.get((venue, instrument), {}), f"{venue}:{instrument}"
        line, got, want, holes, extra = [], 0, 0, [], 0
        for day in days:
            full, bars = expected(venue, instrument, day), by_day.get(day, 0)
            if full is None:
                line.append(None)
                extra += bars > 0
                continue
            line.append(min(bars, full) / full)
            got, want = got + min(bars, full), want + full
            holes += [day] if bars == 0 else []
        if extra:
            outside[key] = extra
        if want:
            lines[key], percent[key], missing[key] = line, got / want, holes
            counts[key] = (sum(1 for c in line if c), sum(1 for c in line if c is not None))
    rows = sorted(lines, key=lambda k: (percent[k], k))
    return Coverage(
        rows,
        days,
        [lines[k] for k in rows],
        {k: percent[k] for k in rows},
        {k: counts[k] for k in rows},
        {k: missing[k] for k in rows if missing[k]},
        outside,
    )
