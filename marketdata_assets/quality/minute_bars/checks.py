"""The checks of the TimescaleDB minute bars and their monthly K-line, declared (quality/checks.py's
`Check`):

- the validation queries A-E on the whole K-line (stores/timescale/kline.py `VALIDATIONS`):
  A warns, B-E block;
- per month partition: minute completeness against the trading calendar
  (completeness.py), K-line coverage with the cleaning rule that removed a code (kline_coverage.py)
  and x100 unit stretches (units.py), and the plausible time window of each month's codes
  (time_window.py). A month before the calendar's first session cannot be judged: a WARN saying so.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import psycopg

from marketdata_assets.core import calendars
from marketdata_assets.core.markdown import Markdown, table
from marketdata_assets.quality.checks import (
    ERROR,
    MONTH,
    TIMESCALE,
    WARN,
    Check,
    Verdict,
    each_partition,
    whole,
)
from marketdata_assets.quality.minute_bars import completeness, kline_coverage, time_window, units
from marketdata_assets.stores.timescale import kline

MINUTES, KLINE = "stock_1min_qfq", kline.KLINE  # the assets


def validation_verdict(validation: kline.Validation, conn: psycopg.Connection) -> Verdict:
    """The validation query `validation` over the whole K-line: the rows it finds (expected: none), a
    sample of them and the query itself."""
    (result,) = kline.run_validations(conn, validations=[validation])
    metadata: dict[str, Any] = {
        "rows_found": result.rows_found,
        "query": Markdown(f"```sql\n{validation.sql}\n```"),
    }
    if result.sample_rows:
        columns = list(result.sample_rows[0])
        metadata["sample"] = table(columns, ([row[c] for c in columns] for row in result.sample_rows))
    return Verdict(result.passed, None, metadata, ERROR if validation.blocking else WARN)


def _validation_check(validation: kline.Validation) -> Check:
    return Check(
        f"{validation.key}_{validation.name}",
        KLINE,
        f"{validation.key}. {validation.description}",
        TIMESCALE,
        whole(lambda conn: validation_verdict(validation, conn)),
        blocking=validation.blocking,
    )


def month_verdict(
    find: Callable[[psycopg.Connection, date], Any], conn: psycopg.Connection, key: str
) -> Verdict:
    """The verdict of a month partition ('YYYY-MM-01') by `find` (a module's check_month/check_minutes)."""
    try:
        return Verdict.of(find(conn, date.fromisoformat(key)))
    except calendars.OutOfCalendar as error:  # before the calendar's first session (2000)
        return Verdict(False, f"cannot judge {key[:7]}: {error}", severity=WARN)


def _month_check(
    name: str, asset: str, find: Callable[[psycopg.Connection, date], Any], description: str
) -> Check:
    return Check(
        name,
        asset,
        description,
        TIMESCALE,
        each_partition(lambda conn, key: month_verdict(find, conn, key)),
        MONTH,
    )


KLINE_VALIDATIONS = [_validation_check(validation) for validation in kline.VALIDATIONS]

MINUTE_CHECKS = [
    _month_check(
        "complete_minutes",
        MINUTES,
        completeness.check_month,
        (
            "Every code that traded in the month has every session minute (XSHG calendar, bars labelled by "
            "their end) on every trading day: missing minutes and off-session bars ERROR; suspended "
            "code-days, code-days without bars whose rows a load rejected (named with count, reason and "
            "rejects file) and closing-auction (14:58/14:59) gaps WARN; so does a month past the last "
            "session the installed exchange-calendars knows (judged provisionally: upgrade it)."
        ),
    ),
    _month_check(
        "no_unit_stretch",
        MINUTES,
        units.check_minutes,
        (
            "No stretch of bars at ~100x (or 1/100) the scale around it that reverts: WARN naming code, "
            "first and last bar (a lone x100 move is listed, not flagged)."
        ),
    ),
    _month_check(
        "times_inside_window",
        MINUTES,
        time_window.check_month,
        (
            "No bar of the month's codes lies outside the plausible window (core/plausibility.py): after "
            "now + the tolerance in Beijing time (the month's own future included; a 2062 typo no partition "
            "owns) or before the A-share venues' first session. ERROR naming code and time."
        ),
    ),
]

KLINE_COVERAGE_CHECKS = [
    _month_check(
        "every_code_has_a_kline_row",
        KLINE,
        kline_coverage.check_month,
        (
            "Every code with minute bars in the month has its K-line row, else ERROR naming the cleaning "
            "rule that removed its rows (or a stale refresh)."
        ),
    ),
    _month_check(
        "no_unit_stretch",
        KLINE,
        units.check_kline,
        "No month-to-month stretch at ~100x that reverts: WARN naming code and months.",
    ),
]
