"""Are a month's minute bars complete? Every code that traded in the month against the trading calendar.

One verdict per code and trading day (complete, partial, auction gap, suspended, rejected,
off-session, missing day) against the XSHG grid of core/calendars, and the month's severity: ERROR
where the bars are provably not what the exchange traded. One scan of the month counts each code's
bars on the grid; only the codes that are not complete on every trading day are then counted per
day (through the (code, time) index). Verdicts, severities, cost and figures: docs/completeness.md,
"Minute bars".
"""

from __future__ import annotations

import time as _time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TypeVar
from zoneinfo import ZoneInfo

import psycopg
from psycopg import sql

from marketdata_assets.core import calendars
from marketdata_assets.core.markdown import table as markdown_table
from marketdata_assets.core.naming import A_SHARE_VENUES
from marketdata_assets.stores.timescale.copy_writer import table_identifier
from marketdata_assets.stores.timescale.kline import MINUTE_TABLE
from marketdata_assets.stores.timescale.ledger import RejectedDay, rejected_rows_between

REQUIRED, AUCTION, OPTIONAL = "required", "auction", "optional"
SAMPLE = 50  # problem code-days expanded and listed; counts cover all
SHOWN_STAMPS = 12  # stamps listed per code-day
T = TypeVar("T")
WORK_MEM = "64MB"  # a month's code-day hash aggregate (~110k groups for 5,000 codes) stays in memory


@dataclass(frozen=True)
class Grid:
    """The expected bar stamps of a window: naive wall-clock times of the venue and their need."""

    venue: str
    start: date  # first day judged
    end: date  # day after the last day judged
    days: list[date]  # trading days in [start, end)
    stamps: list[datetime]
    needs: list[str]  # required | auction | optional, one per stamp
    known_until: date  # the calendar's last known session: later days are provisional

    @property
    def provisional_days(self) -> list[date]:
        return [d for d in self.days if d > self.known_until]


def month_window(month: date, as_of: date | None = None, venue: str = "SSE") -> tuple[date, date]:
    """[first day, day after the last day) judged for `month`: the whole month once it is over, up to
    yesterday (in the venue's time zone) while it is in progress."""
    month = date(month.year, month.month, 1)
    today = as_of or datetime.now(ZoneInfo(calendars.venue_timezone(venue))).date()
    return month, max(month, min(calendars.next_month(month), today))


def expected_grid(venue: str, start: date, end: date) -> Grid:
    """The grid of [start, end) from the venue's calendar (calendars.OutOfCalendar outside its known
    range)."""
    days = calendars.trading_days(venue, start, end - timedelta(days=1)) if end > start else []
    stamps, needs = [], []
    auction_venue = venue.upper() in A_SHARE_VENUES
    for day in days:
        minutes = calendars.local_session_minutes(venue, day, call_auction=auction_venue)
        close = minutes[-1]
        for i, stamp in enumerate(minutes):
            if auction_venue and i == 0:
                need = OPTIONAL
            elif auction_venue and close - stamp in (timedelta(minutes=1), timedelta(minutes=2)):
                need = AUCTION
            else:
                need = REQUIRED
            stamps.append(stamp)
            needs.append(need)
    return Grid(venue, start, end, days, stamps, needs, calendars.last_known_session(venue))


# --- SQL ----------------------------------------------------------------------------------------

_GRID_TABLE = """CREATE TEMP TABLE _bar_grid ON COMMIT DROP AS
SELECT g.time, g.time::date AS day, g.need, (g.need = 'auction')::int AS is_auction,
       (g.need = 'optional')::int AS is_optional
FROM unnest(%(stamps)s::timestamp[], %(needs)s::text[]) AS g(time, need)"""

# The one pass over the month's rows, per code (the plain GROUP BY code's shape): all bars, and bars
# on the grid's required/auction stamps (+1 each) and on its optional stamp (+OPTIONAL_UNIT each),
# found by hashed `= ANY(array)` lookups (cheaper per row than a join). (code, time) is unique, so a
# code with as many bars on required/auction stamps as the grid has is complete on every trading day.
OPTIONAL_UNIT = 1 << 20  # > the required/auction stamps of a month (31 days x 1,440 minutes)
_CODE_TOTALS = """CREATE TEMP TABLE _bar_codes ON COMMIT DROP AS
SELECT code, count(*) AS bars,
       sum(CASE WHEN time = ANY(%(on_grid)s::timestamp[]) THEN 1
                WHEN time = ANY(%(optional)s::timestamp[]) THEN {optional_unit} ELSE 0 END) AS grid
FROM {table}
WHERE time >= %(start)s::timestamp AND time < %(end)s::timestamp
GROUP BY code"""

# The codes that are complete on every trading day (nothing missing, nothing off the grid).
_COMPLETE_CODES = """(grid %% {optional_unit} = %(expected)s::bigint
    AND bars = grid %% {optional_unit} + grid / {optional_unit})"""

# Counts per code and day of bars, bars on required/auction/optional stamps (integer flags summed:
# cheaper per row than comparing the need's text), for the codes not complete (all codes when none is).
_CODE_DAYS = """CREATE TEMP TABLE _bar_days ON COMMIT DROP AS
SELECT b.code, b.time::date AS day, count(*) AS bars,
       (count(g.time) - coalesce(sum(g.is_optional), 0))::int AS on_grid,
       coalesce(sum(g.is_auction), 0)::int AS auction, coalesce(sum(g.is_optional), 0)::int AS optional
FROM {table} b LEFT JOIN _bar_grid g ON g.time = b.time
WHERE b.time >= %(start)s::timestamp AND b.time < %(end)s::timestamp {codes}
GROUP BY b.code, b.time::date"""

# A complete code has bars on every trading day.
_DAYS = """CREATE TEMP TABLE _grid_days ON COMMIT DROP AS
SELECT day, count(*) FILTER (WHERE need <> 'optional') AS expected,
       count(*) FILTER (WHERE need = 'auction') AS expected_auction,
       %(any_complete)s OR EXISTS (SELECT 1 FROM _bar_days d WHERE d.day = g.day) AS has_bars
FROM _bar_grid g GROUP BY day"""

# Codes, bars, code-days (a complete code has one per trading day and no other).
_SUMMARY = """SELECT (SELECT count(*) FROM _bar_codes),
       (SELECT coalesce(sum(bars), 0)::bigint FROM _bar_codes),
       %(complete)s::bigint * %(days)s::bigint + (SELECT count(*) FROM _bar_days)"""

# Everything that is not a complete code-day, with its counts (suspended: a trading day with bars
# for the market but none for this code; off-calendar: bars on a day that is not a trading day).
_PROBLEMS = """WITH codes AS (SELECT DISTINCT code FROM _bar_days),
expected AS (SELECT c.code, d.day, d.expected, d.expected_auction
             FROM codes c CROSS JOIN _grid_days d WHERE d.has_bars)
SELECT coalesce(p.code, e.code) AS code, coalesce(p.day, e.day) AS day,
       e.code IS NULL AS off_calendar, p.code IS NULL AS suspended,
       coalesce(e.expected, 0) AS expected, coalesce(e.expected_auction, 0) AS expected_auction,
       coalesce(p.bars, 0) AS bars, coalesce(p.on_grid, 0) AS on_grid,
       coalesce(p.auction, 0) AS auction, coalesce(p.optional, 0) AS optional
FROM _bar_days p FULL JOIN expected e ON e.code = p.code AND e.day = p.day
WHERE p.code IS NULL OR e.code IS NULL OR p.on_grid < e.expected OR p.bars > p.on_grid + p.optional
ORDER BY 1, 2"""

_MISSING_STAMPS = """SELECT p.code, p.day, array_agg(g.time ORDER BY g.time)
FROM unnest(%(codes)s::text[], %(days)s::date[]) AS p(code, day)
JOIN _bar_grid g ON g.day = p.day AND g.need <> 'optional'
WHERE NOT EXISTS (SELECT 1 FROM {table} b WHERE b.code = p.code AND b.time = g.time)
GROUP BY p.code, p.day"""

_OFF_STAMPS = """SELECT p.code, p.day, array_agg(b.time ORDER BY b.time)
FROM unnest(%(codes)s::text[], %(days)s::date[]) AS p(code, day)
JOIN {table} b ON b.code = p.code AND b.time >= p.day AND b.time < p.day + 1
WHERE NOT EXISTS (SELECT 1 FROM _bar_grid g WHERE g.time = b.time)
GROUP BY p.code, p.day"""


def _clock(stamp: datetime) -> str:
    return f"{stamp:%H:%M}"


def _stamps_text(stamps: list[datetime], total: int) -> str:
    """'10:01-10:05, 13:30' style: consecutive minutes as ranges, at most SHOWN_STAMPS pieces."""
    pieces: list[str] = []
    run: list[datetime] = []
    for stamp in stamps:
        if run and stamp - run[-1] == timedelta(minutes=1):
            run.append(stamp)
            continue
        if run:
            pieces.append(_clock(run[0]) if len(run) == 1 else f"{_clock(run[0])}-{_clock(run[-1])}")
        run = [stamp]
    if run:
        pieces.append(_clock(run[0]) if len(run) == 1 else f"{_clock(run[0])}-{_clock(run[-1])}")
    text = ", ".join(pieces[:SHOWN_STAMPS])
    shown = len(stamps)
    if len(pieces) > SHOWN_STAMPS or total > shown:
        text += " …"
    return text


@dataclass
class CodeDay:
    code: str
    day: date
    verdict: str  # partial | auction_gap | suspended | rejected | off_session | off_calendar
    missing: int = 0  # required minutes missing
    auction_missing: int = 0
    off_session: int = 0  # bars outside the grid (all bars of an off-calendar day)
    bars: int = 0
    stamps: str = ""  # the first missing (or off-session) stamps
    rejects: RejectedDay | None = None  # rows of this code and day a load rejected


def rejects_text(rejects: RejectedDay, files: int = 2) -> str:
    """'240 rows rejected (future-dated; rejects in <file>)'."""
    reasons = (
        next(iter(rejects.reasons))
        if len(rejects.reasons) == 1
        else ", ".join(f"{why} {n:,}" for why, n in rejects.reasons.items())
    )
    more = len(rejects.files) - files
    shown = ", ".join(rejects.files[:files]) + (f" (+{more})" if more > 0 else "")
    return f"{rejects.rows:,} row{'s' * (rejects.rows != 1)} rejected ({reasons}; rejects in {shown})"


def listed(head: str, items: Sequence[T], show: Callable[[T], str], limit: int, sep: str = "; ") -> str:
    """`head` and the first `limit` of `items` as `show` writes them, joined by `sep` ("" with no items): a
    finding of a check's description."""
    return head + sep.join(show(item) for item in items[:limit]) if items else ""


def _partial_text(c: CodeDay) -> str:
    return f"{c.code} {c.day} {c.missing} missing ({c.stamps})" + (
        f", {rejects_text(c.rejects)}" if c.rejects else ""
    )


def _off_text(c: CodeDay) -> str:
    return f"{c.code} {c.day}{' (not a trading day)' if c.verdict == 'off_calendar' else ''} {c.stamps}"


@dataclass
class MonthCompleteness:
    """What :func:`check_month` found in one month (docs/completeness.md, "Minute bars")."""

    month: date
    start: date
    end: date
    trading_days: int
    codes: int = 0
    expected_bars: int = 0  # required + auction stamps of the days with bars, for every code judged
    bars: int = 0
    code_days: int = 0
    partial: list[CodeDay] = field(default_factory=list)
    auction_gaps: list[CodeDay] = field(default_factory=list)
    suspended: list[CodeDay] = field(default_factory=list)
    rejected: list[CodeDay] = field(default_factory=list)  # no bar, but rows of the code-day were rejected
    off_session: list[CodeDay] = field(default_factory=list)  # off_session and off_calendar code-days
    missing_days: list[date] = field(default_factory=list)
    missing_day_rejects: dict[date, RejectedDay] = field(
        default_factory=dict
    )  # rows rejected on missing days
    seconds: float = 0.0
    known_until: date | None = None  # the calendar's last known session, when the window goes past it
    provisional_days: list[date] = field(default_factory=list)  # trading days judged provisionally
    calendar_note: str = ""  # calendars.provisional_note: what to upgrade

    @property
    def missing_minutes(self) -> int:
        return sum(c.missing for c in self.partial)

    @property
    def auction_minutes_missing(self) -> int:
        return sum(c.auction_missing for c in self.partial + self.auction_gaps)

    @property
    def off_session_bars(self) -> int:
        return sum(c.off_session for c in self.off_session)

    @property
    def severity(self) -> str | None:
        """ "ERROR", "WARN" or None (passed): see docs/completeness.md, "Minute bars"."""
        errors = [c.day for c in self.partial + self.off_session] + self.missing_days
        if any(self.known_until is None or day <= self.known_until for day in errors):
            return "ERROR"
        if errors or self.suspended or self.rejected or self.auction_gaps or self.known_until is not None:
            return "WARN"
        return None

    @property
    def passed(self) -> bool:
        return self.severity is None

    def description(self, limit: int = 4) -> str:
        """One specific sentence naming codes and days (after what is provisional, if anything)."""
        if self.known_until is None:
            return self._findings(limit)
        days = ", ".join(f"{d:%m-%d}" for d in self.provisional_days) or "none"
        return f"{self.calendar_note}. Days judged provisionally: {days}. {self._findings(limit)}"

    def _findings(self, limit: int) -> str:
        if self.trading_days == 0 and self.codes == 0:
            return f"{self.month:%Y-%m}: no trading day to judge yet"
        if self.codes == 0:
            return (
                f"{self.month:%Y-%m}: no minute bars at all in {self.start}..{self.end - timedelta(days=1)}"
                f" ({self.trading_days} trading days)"
            )
        found = (
            listed(
                "no bars for any code on trading day(s) ", self.missing_days, self._missing_day, limit, ", "
            ),
            listed(
                f"{len(self.partial)} code-day(s) with {self.missing_minutes:,} missing minute(s): ",
                self.partial,
                _partial_text,
                limit,
            ),
            listed(
                f"{self.off_session_bars:,} bar(s) outside the sessions: ", self.off_session, _off_text, limit
            ),
            listed(
                f"{len(self.rejected)} code-day(s) without bars whose rows a load rejected: ",
                self.rejected,
                lambda c: f"{c.code} {c.day}: {rejects_text(c.rejects)}",
                limit,
            ),
            listed(
                f"{len(self.suspended)} suspended code-day(s) (no bar on a trading day): ",
                list(self.suspended_by_code().items()),
                lambda code_days: f"{code_days[0]} {', '.join(code_days[1])}",
                limit,
            ),
            listed(
                f"{len(self.auction_gaps)} code-day(s) missing only closing-auction minutes 14:58/14:59: ",
                self.auction_gaps,
                lambda c: f"{c.code} {c.day}",
                limit,
            ),
        )
        parts = [part for part in found if part]
        head = (
            f"{self.month:%Y-%m}: {self.codes:,} codes x {self.trading_days} trading days, "
            f"{self.bars:,} of {self.expected_bars:,} expected bars"
        )
        return head + (": complete" if not parts else " — " + " | ".join(parts))

    def _missing_day(self, day: date) -> str:
        rejects = self.missing_day_rejects.get(day)
        return f"{day}" + (f" ({rejects_text(rejects)})" if rejects is not None else "")

    def suspended_by_code(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for c in self.suspended:
            out.setdefault(c.code, []).append(f"{c.day:%m-%d}")
        return out

    def suspended_per_day(self) -> Counter:
        return Counter(c.day for c in self.suspended)

    def metadata(self) -> dict:
        """Plain values and Markdown tables (the check wraps them into MetadataValues)."""
        out: dict = {
            "month": f"{self.month:%Y-%m}",
            "judged": f"{self.start}..{self.end - timedelta(days=1)}",
            "codes": self.codes,
            "trading_days": self.trading_days,
            "bars": self.bars,
            "expected_bars": self.expected_bars,
            "complete_pct": round(100 * min(self.bars, self.expected_bars) / self.expected_bars, 3)
            if self.expected_bars
            else None,
            "partial_code_days": len(self.partial),
            "missing_minutes": self.missing_minutes,
            "auction_gap_code_days": len(self.auction_gaps),
            "auction_minutes_missing": self.auction_minutes_missing,
            "suspended_code_days": len(self.suspended),
            "rejected_code_days": len(self.rejected),
            "off_session_bars": self.off_session_bars,
            "missing_days": [str(d) for d in self.missing_days],
            "seconds": self.seconds,
        }
        if self.known_until is not None:
            out["provisional_days"] = [str(d) for d in self.provisional_days]
            out["calendar"] = self.calendar_note
        if self.partial:
            out["partial"] = markdown_table(
                ["code", "day", "missing", "closing auction", "first missing", "rejected"],
                (
                    [
                        c.code,
                        c.day,
                        c.missing,
                        c.auction_missing,
                        c.stamps,
                        rejects_text(c.rejects) if c.rejects else "",
                    ]
                    for c in self.partial
                ),
                limit=SAMPLE,
            )
        if self.rejected:
            out["rejected"] = markdown_table(
                ["code", "day", "rows rejected", "reasons", "rejects in"],
                (
                    [c.code, c.day, c.rejects.rows, ", ".join(c.rejects.reasons), " ".join(c.rejects.files)]
                    for c in self.rejected
                ),
                limit=SAMPLE,
            )
        if self.off_session:
            out["off_session"] = markdown_table(
                ["code", "day", "bars off-session", "trading day", "first stamps"],
                (
                    [c.code, c.day, c.off_session, "no" if c.verdict == "off_calendar" else "yes", c.stamps]
                    for c in self.off_session
                ),
                limit=SAMPLE,
            )
        if self.suspended:
            per_code = self.suspended_by_code()
            out["suspended"] = markdown_table(
                ["code", "days without bars", "days"],
                ([code, len(days), " ".join(days)] for code, days in per_code.items()),
                limit=SAMPLE,
            )
            out["suspended_per_day"] = markdown_table(
                ["day", "codes without bars"], sorted(self.suspended_per_day().items())
            )
        if self.auction_gaps:
            out["auction_gaps"] = markdown_table(
                ["code", "day", "missing of 14:58/14:59"],
                ([c.code, c.day, c.auction_missing] for c in self.auction_gaps),
                limit=SAMPLE,
            )
        return out


def scan_settings(conn: psycopg.Connection) -> None:
    """For the rest of the current transaction: work_mem for a month's per code-day hash aggregate
    (with the default 4 MB Postgres sorts 26M rows on disk instead), and no JIT (compiling the
    expressions costs ~0.5 s, more than it saves on one month)."""
    conn.execute("SELECT set_config('work_mem', %s, true), set_config('jit', 'off', true)", (WORK_MEM,))


def build_code_days(conn: psycopg.Connection, grid: Grid, table: str = MINUTE_TABLE) -> int:
    """The temporary tables _bar_grid, _bar_codes (bars per code), _bar_days (counts per code and day
    of the codes not complete on every trading day; of all codes when none is) and _grid_days, in the
    connection's current transaction (dropped at its end). Returns the number of complete codes."""
    scan_settings(conn)
    ident = table_identifier(table)
    window = {"start": grid.start, "end": grid.end}
    conn.execute(_GRID_TABLE, {"stamps": grid.stamps, "needs": grid.needs})
    conn.execute("CREATE INDEX ON _bar_grid (time)")
    conn.execute("ANALYZE _bar_grid")
    on_grid = [s for s, need in zip(grid.stamps, grid.needs) if need != OPTIONAL]
    optional = [s for s, need in zip(grid.stamps, grid.needs) if need == OPTIONAL]
    unit = sql.Literal(OPTIONAL_UNIT)
    conn.execute(  # never a prepared statement: the arrays must be constants to be hashed
        sql.SQL(_CODE_TOTALS).format(table=ident, optional_unit=unit),
        {**window, "on_grid": on_grid, "optional": optional},
        prepare=False,
    )
    complete = sql.SQL(_COMPLETE_CODES).format(optional_unit=unit)
    (complete_codes,) = conn.execute(
        sql.SQL("SELECT count(*) FILTER (WHERE {}) FROM _bar_codes").format(complete),
        {"expected": len(on_grid)},
    ).fetchone()
    codes = sql.SQL("")
    if complete_codes:  # count per day only the others (through the (code, time) index)
        others = sql.SQL("SELECT array_agg(code) FROM _bar_codes WHERE NOT {}").format(complete)
        window["codes"] = conn.execute(others, {"expected": len(on_grid)}).fetchone()[0] or []
        codes = sql.SQL("AND b.code = ANY(%(codes)s::text[])")
    conn.execute(sql.SQL(_CODE_DAYS).format(table=ident, codes=codes), window)
    conn.execute(_DAYS, {"any_complete": complete_codes > 0})
    return complete_codes


def check_month(
    conn: psycopg.Connection,
    month: date,
    *,
    venue: str = "SSE",
    as_of: date | None = None,
    table: str = MINUTE_TABLE,
    sample: int = SAMPLE,
) -> MonthCompleteness:
    """Judge the minute bars of `month` (docs/completeness.md, "Minute bars"). Read-only: runs in a
    transaction that is rolled back (its temporary tables go with it). Days after the calendar's last known
    session are judged provisionally (docs/completeness.md, "Minute bars"); calendars.OutOfCalendar before its
    first."""
    started = _time.monotonic()
    start, end = month_window(month, as_of, venue)
    grid = expected_grid(venue, start, end)
    result = MonthCompleteness(month=start, start=start, end=end, trading_days=len(grid.days))
    if end - timedelta(days=1) > grid.known_until:
        result.known_until, result.provisional_days = grid.known_until, grid.provisional_days
        result.calendar_note = calendars.provisional_note(venue)
    ident = table_identifier(table)
    with conn.transaction(force_rollback=True):
        complete = build_code_days(conn, grid, table)
        result.codes, result.bars, result.code_days = conn.execute(
            _SUMMARY, {"complete": complete, "days": len(grid.days)}
        ).fetchone()
        if not result.codes:  # a month with trading days and no bar at all: a missing drop
            result.missing_days = list(grid.days)
        else:
            missing_days, per_code = conn.execute(
                "SELECT coalesce(array_agg(day ORDER BY day) FILTER (WHERE NOT has_bars), '{}'), "
                "coalesce(sum(expected) FILTER (WHERE has_bars), 0) FROM _grid_days"
            ).fetchone()
            result.missing_days, result.expected_bars = list(missing_days), int(per_code) * result.codes
        for row in conn.execute(_PROBLEMS).fetchall():
            _classify(result, *row)
        _name_rejected_rows(conn, result)
        _expand(
            conn, ident, result.partial[:sample], _MISSING_STAMPS, lambda c: c.missing + c.auction_missing
        )
        _expand(conn, ident, result.off_session[:sample], _OFF_STAMPS, lambda c: c.off_session)
    result.seconds = round(_time.monotonic() - started, 3)
    return result


def _classify(
    result: MonthCompleteness,
    code: str,
    day: date,
    off_calendar: bool,
    suspended: bool,
    expected: int,
    expected_auction: int,
    bars: int,
    on_grid: int,
    auction: int,
    optional: int,
) -> None:
    if off_calendar:
        result.off_session.append(CodeDay(code, day, "off_calendar", off_session=bars, bars=bars))
        return
    if suspended:
        result.suspended.append(CodeDay(code, day, "suspended"))
        return
    auction_missing = expected_auction - auction
    missing = (expected - expected_auction) - (on_grid - auction)
    off = bars - on_grid - optional
    if missing:
        result.partial.append(CodeDay(code, day, "partial", missing, auction_missing, off, bars))
    elif auction_missing:
        result.auction_gaps.append(CodeDay(code, day, "auction_gap", 0, auction_missing, off, bars))
    if off:
        result.off_session.append(CodeDay(code, day, "off_session", off_session=off, bars=bars))


def _name_rejected_rows(conn: psycopg.Connection, result: MonthCompleteness) -> None:
    """Code-days without bars whose rows a load rejected become `rejected` (not suspended); partial
    code-days and missing days get their rejected rows; so do codes with no bar in the month at all
    on trading days that have bars (inside check_month's transaction: its temporary tables)."""
    found = rejected_rows_between(conn, result.start, result.end)
    if not found:
        return
    suspended, result.suspended = result.suspended, []
    for c in suspended:
        c.rejects = found.get((c.code, c.day))
        c.verdict = "rejected" if c.rejects else c.verdict
        (result.rejected if c.rejects else result.suspended).append(c)
    for c in result.partial:
        c.rejects = found.get((c.code, c.day))
    for day in result.missing_days:
        on_day = [r for (_, d), r in found.items() if d == day]
        if on_day:
            result.missing_day_rejects[day] = _merged(day, on_day)
    codes = sorted({code for code, _ in found})
    judged = {row[0] for row in conn.execute("SELECT code FROM _bar_codes WHERE code = ANY(%s)", (codes,))}
    days = {row[0] for row in conn.execute("SELECT day FROM _grid_days WHERE has_bars")}
    unjudged = [r for (code, day), r in sorted(found.items()) if code not in judged and day in days]
    result.rejected = sorted(
        result.rejected + [CodeDay(r.code, r.day, "rejected", rejects=r) for r in unjudged],
        key=lambda c: (c.code, c.day),
    )


def _merged(day: date, rejected: list[RejectedDay]) -> RejectedDay:
    """The rejected rows of several codes on one day, as one."""
    merged = RejectedDay("*", day)
    for r in rejected:
        merged.rows += r.rows
        for why, n in r.reasons.items():
            merged.reasons[why] = merged.reasons.get(why, 0) + n
        merged.files += [f for f in r.files if f not in merged.files]
    return merged


def _expand(
    conn: psycopg.Connection, ident: sql.Composable, code_days: list[CodeDay], query: str, total
) -> None:
    if not code_days:
        return
    rows = conn.execute(
        sql.SQL(query).format(table=ident),
        {"codes": [c.code for c in code_days], "days": [c.day for c in code_days]},
    ).fetchall()
    found = {(code, day): stamps for code, day, stamps in rows}
    for c in code_days:
        stamps = found.get((c.code, c.day), [])
        c.stamps = (
            _stamps_text(stamps, total(c)) if c.verdict != "off_calendar" else _stamps_text(stamps, c.bars)
        )
