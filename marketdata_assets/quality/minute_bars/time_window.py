"""Are a month's stored minute bars inside the plausible window? (checked per month partition)

The loader rejects implausible times (core/plausibility.py: after now + the tolerance in Beijing
time, or before the A-share venues' first session), but rows loaded before that rule, or written by
another path, can still sit in stock_1min_qfq: a 2062 typo for 2026 is in no month partition the
loads run for, yet a K-line refresh covering 2062 makes a candle of it. :func:`check_month` looks,
for one month, at the codes with bars in that month and finds their rows outside the window (the
month's own future rows included), through the (code, time) index: two range scans that chunk
exclusion keeps to the chunks outside the window. Any such row FAILS the check (ERROR), naming
code, time and which bound it crosses.
"""

from __future__ import annotations

import time as _time
from dataclasses import dataclass, field
from datetime import date, datetime

import psycopg
from psycopg import sql

from marketdata_assets.core import plausibility
from marketdata_assets.core.calendars import next_month
from marketdata_assets.core.markdown import table as markdown_table
from marketdata_assets.core.naming import A_SHARE_VENUES
from marketdata_assets.quality.minute_bars.completeness import scan_settings
from marketdata_assets.stores.timescale import kline
from marketdata_assets.stores.timescale.copy_writer import table_identifier

SAMPLE_ROWS = 20

_OUTSIDE = """WITH month_codes AS (
    SELECT DISTINCT code FROM {minutes} WHERE time >= %(start)s::timestamp AND time < %(end)s::timestamp)
SELECT code, time, why, count(*) FILTER (WHERE why = 'after') OVER () AS after,
       count(*) FILTER (WHERE why = 'before') OVER () AS before FROM (
    SELECT code, time, 'after' AS why FROM {minutes}
    WHERE code IN (SELECT code FROM month_codes) AND time > %(latest)s::timestamp
    UNION ALL
    SELECT code, time, 'before' AS why FROM {minutes}
    WHERE code IN (SELECT code FROM month_codes) AND time < %(earliest)s::timestamp) AS outside
ORDER BY why, code, time LIMIT %(limit)s"""


@dataclass
class MonthWindow:
    """The verdict for one month: rows of its codes outside [earliest, latest] (Beijing wall clock)."""

    month: date
    earliest: datetime
    latest: datetime
    codes: int = 0
    after: int = 0  # rows after now + the tolerance
    before: int = 0  # rows before the earliest plausible day
    sample: list[tuple[str, datetime, str]] = field(default_factory=list)  # (code, time, bound crossed)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return not (self.after or self.before)

    @property
    def severity(self) -> str | None:
        return None if self.passed else "ERROR"

    def description(self, limit: int = 5) -> str:
        head = (
            f"{self.month:%Y-%m}: {self.codes:,} codes; window {self.earliest:%Y-%m-%d} .. "
            f"{self.latest:%Y-%m-%d %H:%M} Beijing time"
        )
        if self.passed:
            return head + ": every row of these codes lies inside it"
        shown = "; ".join(
            f"{code} {stamp:%Y-%m-%d %H:%M} ({why})" for code, stamp, why in self.sample[:limit]
        )
        return (
            f"{head}: {self.after:,} row(s) after now + the tolerance, {self.before:,} before the earliest "
            f"plausible day, e.g. {shown}"
        )

    def metadata(self) -> dict:
        out: dict = {
            "month": f"{self.month:%Y-%m}",
            "codes": self.codes,
            "rows_after_now": self.after,
            "rows_before_earliest": self.before,
            "earliest": f"{self.earliest:%Y-%m-%d}",
            "latest": f"{self.latest:%Y-%m-%d %H:%M}",
            "seconds": self.seconds,
        }
        if self.sample:
            out["sample"] = markdown_table(["code", "time", "crosses"], self.sample, limit=SAMPLE_ROWS)
        return out


def check_month(
    conn: psycopg.Connection, month: date, *, minutes: str = kline.MINUTE_TABLE, now: datetime | None = None
) -> MonthWindow:
    """The month's codes' rows outside the plausible window (read-only; see the module docstring)."""
    started = _time.monotonic()
    start = date(month.year, month.month, 1)
    earliest, latest = plausibility.window(A_SHARE_VENUES, now).local()
    result = MonthWindow(start, earliest, latest)
    params = {
        "start": start,
        "end": next_month(start),
        "earliest": earliest,
        "latest": latest,
        "limit": SAMPLE_ROWS,
    }
    table = {"minutes": table_identifier(minutes)}
    with conn.transaction(force_rollback=True):
        scan_settings(conn)
        result.codes = conn.execute(
            sql.SQL(
                "SELECT count(DISTINCT code) FROM {minutes} WHERE time >= "
                "%(start)s::timestamp AND time < %(end)s::timestamp"
            ).format(**table),
            params,
        ).fetchone()[0]
        rows = conn.execute(sql.SQL(_OUTSIDE).format(**table), params).fetchall()
    labels = {"after": "after now + the tolerance", "before": "before the earliest plausible day"}
    for code, stamp, why, result.after, result.before in rows:
        result.sample.append((code, stamp, labels[why]))
    result.seconds = round(_time.monotonic() - started, 3)
    return result
