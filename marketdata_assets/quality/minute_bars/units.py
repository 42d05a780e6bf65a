"""Unit (scale) errors: a stretch of prices 100x off that comes back — pence quoted as pounds, fen as
yuan, a vendor's price column in the wrong unit for part of a file.

A JUMP is a bar-to-bar change of the close by a factor near 100 (or 1/100): ``close / lag(close)``
per code in time order, within ``[FACTOR / TOLERANCE, FACTOR * TOLERANCE]`` (76.9..130) or its
inverse. A-share prices move at most 10-30% a day, so such a jump is never a trade, but it can be
real (a re-denomination, a consolidation), so a lone jump is NOT flagged: only a STRETCH is, a jump
followed by the opposite jump for the same code (the prices went back), reported with its first
and last bar at the wrong scale and the factor. Rows with a NULL or zero close are skipped; a
ratio between prices of opposite signs (forward-adjusted prices can be negative) is never a jump.

Per month partition, in SQL with window functions: the month's rows of the minute table
(``lag(close) OVER (PARTITION BY code ORDER BY time)``), or the K-line's months (month-to-month
close) around the partition. A jump whose partner is outside the month (a stretch across the month
end) is looked for again in a window of ``LOOKAROUND_MONTHS`` on both sides, for that code only,
through the (code, time) index (so a stretch longer than that window is not paired). Severity WARN:
the bars are loaded and consistent otherwise; the report names instrument and times for a human to
confirm against the vendor.
"""

from __future__ import annotations

import time as _time
from dataclasses import dataclass, field
from datetime import date, datetime

import psycopg
from psycopg import sql

from marketdata_assets.core.calendars import next_month
from marketdata_assets.core.identifiers import sql_identifier
from marketdata_assets.core.markdown import table as markdown_table
from marketdata_assets.quality.minute_bars.completeness import scan_settings
from marketdata_assets.stores.timescale import kline
from marketdata_assets.stores.timescale.copy_writer import table_identifier

FACTOR = 100.0
TOLERANCE = 1.3
LOOKAROUND_MONTHS = 1  # minute bars; the K-line looks 12 months each way (it is small)

BAND = """({ratio} BETWEEN %(low)s AND %(high)s OR {ratio} BETWEEN 1 / %(high)s AND 1 / %(low)s)"""

# The K-line (small): lag() over every row of the window.
_JUMPS = (
    """SELECT code, prev_at, at, prev_close, close, close / prev_close AS ratio
FROM (SELECT code, {at} AS at, close, lag({at}) OVER w AS prev_at, lag(close) OVER w AS prev_close
      FROM {table}
      WHERE {at} >= %(start)s::timestamp AND {at} < %(end)s::timestamp AND close IS NOT NULL AND close <> 0 \
{codes}
      WINDOW w AS (PARTITION BY code ORDER BY {at})) s
WHERE """
    + BAND.format(ratio="close / prev_close")
    + """
ORDER BY code, at"""
)

# The minute bars (~26M rows a month for 5,000 codes): sorting them all for lag() would spill to
# disk, so per code and day first (one hash aggregate, no sort): the day's extreme |close|. A day
# whose extremes are x77 apart holds a jump inside it; two consecutive days of a code whose highs
# are ~x100 apart (a wider band: the prices move inside each day) hold one between them. lag()
# then runs over only those code-days' rows (through the (code, time) index) for the exact bars.
WIDE = 1.5  # intraday moves (limit-up/down days) between a day's high and the bars at its edges
_CANDIDATES = """WITH days AS (
    SELECT code, time::date AS day, min(abs(close)) AS low, max(abs(close)) AS high
    FROM {table}
    WHERE time >= %(start)s::timestamp AND time < %(end)s::timestamp AND close IS NOT NULL AND close <> 0 \
{codes}
    GROUP BY code, time::date),
seq AS (SELECT *, lag(day) OVER w AS prev_day, lag(high) OVER w AS prev_high
        FROM days WINDOW w AS (PARTITION BY code ORDER BY day))
SELECT code, day, day FROM seq WHERE high / low >= %(low)s
UNION
SELECT code, prev_day, day FROM seq
WHERE high / prev_high BETWEEN %(wide_low)s AND %(wide_high)s
   OR high / prev_high BETWEEN 1 / %(wide_high)s AND 1 / %(wide_low)s"""

# Before that, per code (the plain GROUP BY code's shape): a code whose |close| in the window stays
# within a factor of FACTOR / TOLERANCE has no jump (a jump's ratio is at most max / min), so only the
# other codes are reduced per day, through the (code, time) index.
_CANDIDATE_CODES = """SELECT coalesce(array_agg(code ORDER BY code), ARRAY[]::text[]) FROM (
    SELECT code FROM {table}
    WHERE time >= %(start)s::timestamp AND time < %(end)s::timestamp AND close IS NOT NULL AND close <> 0 \
{codes}
    GROUP BY code HAVING max(abs(close)) / min(abs(close)) >= %(low)s) c"""

_SPAN_JUMPS = """SELECT code, prev_at, at, prev_close, close, close / prev_close AS ratio
FROM (SELECT b.code, b.time AS at, b.close, lag(b.time) OVER w AS prev_at, lag(b.close) OVER w AS prev_close
      FROM unnest(%(codes)s::text[], %(first)s::date[], %(last)s::date[]) WITH ORDINALITY AS c(code, first, \
last, span)
      JOIN {table} b ON b.code = c.code AND b.time >= c.first AND b.time < c.last + 1
      WHERE b.close IS NOT NULL AND b.close <> 0
      WINDOW w AS (PARTITION BY c.span ORDER BY b.time)) s
WHERE """ + BAND.format(ratio="close / prev_close")

_COUNT = (
    "SELECT count(*) FROM {table} WHERE code = %(code)s AND {at} >= %(first)s::timestamp AND {at} <= "
    "%(last)s::timestamp"
)


@dataclass(frozen=True)
class Jump:
    code: str
    prev_at: datetime
    at: datetime
    prev_close: float
    close: float
    ratio: float

    @property
    def up(self) -> bool:
        return self.ratio > 1


@dataclass(frozen=True)
class Stretch:
    """Bars first..last (inclusive) of `code` at `factor` times the scale of the bars around them."""

    code: str
    first: datetime
    last: datetime
    factor: float  # the opening jump's ratio (~100 or ~0.01)
    bars: int
    before: float  # close before the stretch
    inside: float  # first close of the stretch
    after: float  # first close after it


@dataclass
class UnitCheck:
    what: str  # "minute bars" | "monthly K-line"
    month: date
    stretches: list[Stretch] = field(default_factory=list)
    unpaired: list[Jump] = field(default_factory=list)  # lone x100 moves: listed, not flagged
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return not self.stretches

    @property
    def severity(self) -> str | None:
        """WARN: the rows are loaded and otherwise consistent; a human confirms against the vendor."""
        return None if self.passed else "WARN"

    def description(self, limit: int = 5) -> str:
        head = f"{self.month:%Y-%m} {self.what}"
        if self.passed:
            lone = (
                f"; {len(self.unpaired)} lone x100 move(s) that do not revert, not flagged"
                if self.unpaired
                else ""
            )
            return f"{head}: no stretch at a x100 scale{lone}"
        return (
            f"{head}: {len(self.stretches)} stretch(es) at a x100 scale that revert (a unit error?): "
            + "; ".join(
                f"{s.code} {_at(s.first)} .. {_at(s.last)} ({s.bars:,} bars at x{s.factor:.4g}: "
                f"{s.before:g} -> {s.inside:g} ... -> {s.after:g})"
                for s in self.stretches[:limit]
            )
        )

    def metadata(self) -> dict:
        out: dict = {
            "stretches": len(self.stretches),
            "lone_jumps": len(self.unpaired),
            "seconds": self.seconds,
            "factor": FACTOR,
            "tolerance": TOLERANCE,
        }
        if self.stretches:
            out["stretch_table"] = markdown_table(
                [
                    "code",
                    "first bar",
                    "last bar",
                    "bars",
                    "factor",
                    "close before",
                    "first close inside",
                    "close after",
                ],
                (
                    [
                        s.code,
                        _at(s.first),
                        _at(s.last),
                        s.bars,
                        round(s.factor, 4),
                        s.before,
                        s.inside,
                        s.after,
                    ]
                    for s in self.stretches
                ),
                limit=100,
            )
        if self.unpaired:
            out["lone_jumps_table"] = markdown_table(
                ["code", "from", "to", "close before", "close after", "ratio"],
                (
                    [j.code, _at(j.prev_at), _at(j.at), j.prev_close, j.close, round(j.ratio, 4)]
                    for j in self.unpaired
                ),
                limit=100,
            )
        return out


def _at(value: datetime | date) -> str:
    if isinstance(value, datetime) and (value.hour, value.minute) != (0, 0):
        return f"{value:%Y-%m-%d %H:%M}"
    return f"{value:%Y-%m-%d}" if isinstance(value, datetime) and value.day != 1 else f"{value:%Y-%m}"


def _add_months(month: date, n: int) -> date:
    index = month.year * 12 + month.month - 1 + n
    return date(index // 12, index % 12 + 1, 1)


def _params(start: date, end: date, codes: list[str] | None) -> dict:
    return {"start": start, "end": end, "codes": codes, "low": FACTOR / TOLERANCE, "high": FACTOR * TOLERANCE}


def jumps(
    conn: psycopg.Connection, table: str, at: str, start: date, end: date, codes: list[str] | None = None
) -> list[Jump]:
    """The x100 jumps of `table` (time column `at`) in [start, end), for `codes` or all: lag() over
    every row (for small tables such as the K-line)."""
    query = sql.SQL(
        _JUMPS.format(at="{at}", table="{table}", codes="AND code = ANY(%(codes)s)" if codes else "")
    )
    rows = conn.execute(
        query.format(at=sql.Identifier(sql_identifier(at)), table=table_identifier(table)),
        _params(start, end, codes),
    ).fetchall()
    return [Jump(*row) for row in rows]


def minute_jumps(
    conn: psycopg.Connection, table: str, start: date, end: date, codes: list[str] | None = None
) -> list[Jump]:
    """The x100 jumps of the minute bars in [start, end): the same jumps as :func:`jumps`, with
    lag() run only over the code-days that can hold one (see _CANDIDATE_CODES, _CANDIDATES): no sort
    of the month."""
    params = {
        **_params(start, end, codes),
        "wide_low": FACTOR / TOLERANCE / WIDE,
        "wide_high": FACTOR * TOLERANCE * WIDE,
    }
    only = "AND code = ANY(%(codes)s)" if codes else ""
    query = sql.SQL(_CANDIDATE_CODES.format(table="{table}", codes=only))
    params["codes"] = conn.execute(query.format(table=table_identifier(table)), params).fetchone()[0]
    if not params["codes"]:
        return []
    query = sql.SQL(_CANDIDATES.format(table="{table}", codes="AND code = ANY(%(codes)s)"))
    spans = conn.execute(query.format(table=table_identifier(table)), params).fetchall()
    if not spans:
        return []
    rows = conn.execute(
        sql.SQL(_SPAN_JUMPS).format(table=table_identifier(table)),
        {
            **params,
            "codes": [c for c, _, _ in spans],
            "first": [f for _, f, _ in spans],
            "last": [la for _, _, la in spans],
        },
    ).fetchall()
    unique = {(row[0], row[2]): Jump(*row) for row in rows}  # a jump inside a day is in two spans
    return sorted(unique.values(), key=lambda j: (j.code, j.at))


def pair(found: list[Jump]) -> tuple[list[tuple[Jump, Jump]], list[Jump]]:
    """(stretches as (opening jump, closing jump), lone jumps): per code in time order, a jump
    followed by a jump the other way closes a stretch."""
    pairs, lone = [], []
    by_code: dict[str, list[Jump]] = {}
    for jump in sorted(found, key=lambda j: (j.code, j.at)):
        by_code.setdefault(jump.code, []).append(jump)
    for series in by_code.values():
        open_jump = None
        for jump in series:
            if open_jump is not None and jump.up != open_jump.up:
                pairs.append((open_jump, jump))
                open_jump = None
            else:
                if open_jump is not None:
                    lone.append(open_jump)
                open_jump = jump
        if open_jump is not None:
            lone.append(open_jump)
    return pairs, lone


def _check(
    conn: psycopg.Connection, what: str, table: str, at: str, month: date, lookaround: int, whole_window: bool
) -> UnitCheck:
    """Stretches overlapping `month`: jumps of the whole window around it (`whole_window`, a small
    table), or of the month and then, for codes with a lone jump, of the window around it."""

    def find(start: date, end: date, codes: list[str] | None = None) -> list[Jump]:
        if whole_window:
            return jumps(conn, table, at, start, end, codes)
        return minute_jumps(conn, table, start, end, codes)

    started = _time.monotonic()
    start = date(month.year, month.month, 1)
    end = next_month(start)
    result = UnitCheck(what, start)
    wide = (_add_months(start, -lookaround), _add_months(start, 1 + lookaround))
    with conn.transaction(force_rollback=True):
        scan_settings(conn)
        if whole_window:
            found = find(*wide)
        else:
            found = find(start, end)
            pairs, lone = pair(found)
            if lone:  # a partner may be across the month's edge: look around, for those codes only
                codes = sorted({j.code for j in lone})
                found = [j for j in found if j.code not in codes] + find(*wide, codes=codes)
        pairs, lone = pair(found)
        count = sql.SQL(_COUNT.format(table="{table}", at="{at}")).format(
            table=table_identifier(table), at=sql.Identifier(sql_identifier(at))
        )
        for opening, closing in pairs:
            first, last = opening.at, closing.prev_at
            if first >= datetime(end.year, end.month, end.day) or last < datetime(
                start.year, start.month, start.day
            ):
                continue  # a stretch of a neighbouring month
            bars = conn.execute(count, {"code": opening.code, "first": first, "last": last}).fetchone()[0]
            result.stretches.append(
                Stretch(
                    opening.code,
                    first,
                    last,
                    opening.ratio,
                    bars,
                    opening.prev_close,
                    opening.close,
                    closing.close,
                )
            )
        month_start = datetime(start.year, start.month, start.day)
        month_end = datetime(end.year, end.month, end.day)
        result.unpaired = [j for j in lone if month_start <= j.at < month_end]
    result.seconds = round(_time.monotonic() - started, 3)
    return result


def check_minutes(
    conn: psycopg.Connection,
    month: date,
    *,
    table: str = kline.MINUTE_TABLE,
    lookaround: int = LOOKAROUND_MONTHS,
) -> UnitCheck:
    """x100 stretches in the month's minute bars (bar-to-bar close)."""
    return _check(conn, "minute bars", table, "time", month, lookaround, whole_window=False)


def check_kline(
    conn: psycopg.Connection, month: date, *, table: str = kline.KLINE, lookaround: int = 12
) -> UnitCheck:
    """x100 stretches in the monthly K-line (month-to-month close) that include `month`."""
    return _check(conn, "monthly K-line", table, "month", month, lookaround, whole_window=True)
