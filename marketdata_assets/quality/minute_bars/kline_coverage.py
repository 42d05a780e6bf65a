"""Does every code with minute bars in a month have its monthly K-line row? If not, why not.

A code all of whose minute rows fail the K-line's cleaning WHERE gets no K-line row while the
validation queries A-E stay green; :func:`check_month` names such codes with the rule(s) that removed
their rows (or "stale"), and K-line rows whose code has no minute bars any more.
The case, what is reported, the cost: docs/minute-bars.md, "K-line coverage".
"""

from __future__ import annotations

import time as _time
from dataclasses import dataclass, field
from datetime import date

import psycopg
from psycopg import sql

from marketdata_assets.core.calendars import next_month
from marketdata_assets.core.markdown import table as markdown_table
from marketdata_assets.quality.minute_bars.completeness import listed, scan_settings
from marketdata_assets.stores.timescale import kline
from marketdata_assets.stores.timescale.copy_writer import table_identifier

RULES = kline.cleaning_rules()
# What NULL does to a rule (a NULL column makes the rule NULL, which drops the row too)
_NULL_OF = {"volume >= 0": "volume", "amount >= 0": "amount"}


def _failing(rule: str) -> str:
    return f"(({rule}) IS NOT TRUE)"


def _kept() -> str:
    return "(" + " AND ".join(f"({rule})" for rule in RULES) + ")"


# The one pass: codes with bars in the month (the plain GROUP BY code) against the month's K-line rows.
_PER_CODE = """WITH minute_codes AS (
    SELECT code, count(*) AS bars FROM {minutes}
    WHERE time >= %(start)s::timestamp AND time < %(end)s::timestamp GROUP BY code),
kline_codes AS (SELECT code FROM {kline} WHERE month = %(start)s::timestamp)
SELECT coalesce(m.code, k.code) AS code, m.bars
FROM minute_codes m FULL JOIN kline_codes k ON k.code = m.code
WHERE m.code IS NULL OR k.code IS NULL"""

# Why: for the codes without a row only, through the (code, time) index.
_REASONS = """SELECT code, count(*) FILTER (WHERE {kept}) AS kept, {rule_counts}, {null_counts}
FROM {minutes}
WHERE code = ANY(%(codes)s) AND time >= %(start)s::timestamp AND time < %(end)s::timestamp GROUP BY code"""


@dataclass
class MissingCode:
    code: str
    bars: int
    kept: int  # rows passing the cleaning (> 0: the month was not refreshed since they loaded)
    dropped_by: dict[str, int]  # rule -> rows failing it
    nulls: dict[str, int] = field(default_factory=dict)  # column -> NULL rows

    @property
    def reason(self) -> str:
        if self.kept:
            return (
                f"stale: {self.kept:,} of {self.bars:,} rows pass the cleaning but the month's K-line was "
                "not refreshed since they loaded"
            )
        failing = [(rule, n) for rule, n in self.dropped_by.items() if n]
        parts = []
        for rule, n in failing:
            text = f"`{rule}` fails for {n:,} of {self.bars:,} rows"
            column = _NULL_OF.get(rule)
            if column and self.nulls.get(column):
                hint = ": no " + column + " column in the file?" if self.nulls[column] == self.bars else ""
                text += f" ({self.nulls[column]:,} with {column} NULL{hint})"
            parts.append(text)
        return "every row removed by the cleaning WHERE: " + "; ".join(parts)


@dataclass
class KlineCoverage:
    month: date
    codes_with_bars: int = 0
    kline_rows: int = 0
    missing: list[MissingCode] = field(default_factory=list)
    stale_rows: list[str] = field(default_factory=list)  # K-line codes without minute bars
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return not self.missing and not self.stale_rows

    @property
    def severity(self) -> str | None:
        """ERROR when a code lacks its row (or a row is stale): the K-line silently misses an instrument."""
        return None if self.passed else "ERROR"

    def description(self, limit: int = 5) -> str:
        head = (
            f"{self.month:%Y-%m}: {self.codes_with_bars:,} codes with minute bars, {self.kline_rows:,} "
            "K-line rows"
        )
        if self.passed:
            return head + ": every code has its K-line row"
        found = (
            listed(
                f"{len(self.missing)} code(s) without a K-line row: ",
                self.missing,
                lambda m: f"{m.code}: {m.reason}",
                limit,
            ),
            listed(
                f"{len(self.stale_rows)} K-line row(s) without minute bars (stale, refresh the month): ",
                self.stale_rows,
                str,
                limit,
                ", ",
            ),
        )
        return head + " — " + " | ".join(part for part in found if part)

    def metadata(self) -> dict:
        out: dict = {
            "month": f"{self.month:%Y-%m}",
            "codes_with_bars": self.codes_with_bars,
            "kline_rows": self.kline_rows,
            "codes_without_kline": len(self.missing),
            "stale_kline_rows": len(self.stale_rows),
            "seconds": self.seconds,
        }
        if self.missing:
            out["missing"] = markdown_table(
                ["code", "minute rows", "kept by the cleaning", "reason"],
                ([m.code, m.bars, m.kept, m.reason] for m in self.missing),
                limit=100,
            )
        if self.stale_rows:
            out["stale"] = ", ".join(self.stale_rows[:100])
        return out


def check_month(
    conn: psycopg.Connection,
    month: date,
    *,
    minutes: str = kline.MINUTE_TABLE,
    kline_table: str = kline.KLINE,
) -> KlineCoverage:
    """Compare the month's minute-bar codes with its K-line rows (read-only; docs/minute-bars.md, "K-line
    coverage")."""
    started = _time.monotonic()
    start = date(month.year, month.month, 1)
    params = {"start": start, "end": next_month(start)}
    tables = {"minutes": table_identifier(minutes), "kline": table_identifier(kline_table)}
    result = KlineCoverage(start)
    with conn.transaction(force_rollback=True):
        scan_settings(conn)
        for code, bars in conn.execute(sql.SQL(_PER_CODE).format(**tables), params).fetchall():
            if bars is None:
                result.stale_rows.append(code)
            else:
                result.missing.append(MissingCode(code, bars, 0, {}))
        result.kline_rows = conn.execute(
            sql.SQL("SELECT count(*) FROM {kline} WHERE month = %(start)s::timestamp").format(**tables),
            params,
        ).fetchone()[0]
        result.codes_with_bars = result.kline_rows - len(result.stale_rows) + len(result.missing)
        if result.missing:
            query = sql.SQL(
                _REASONS.format(
                    kept=_kept(),
                    minutes="{minutes}",
                    rule_counts=", ".join(f"count(*) FILTER (WHERE {_failing(rule)})" for rule in RULES),
                    null_counts=", ".join(
                        f"count(*) FILTER (WHERE {column} IS NULL)" for column in _NULL_OF.values()
                    ),
                )
            )
            found = {
                code: rest
                for code, *rest in conn.execute(
                    query.format(**tables), {**params, "codes": [m.code for m in result.missing]}
                ).fetchall()
            }
            for m in result.missing:
                kept, *counts = found[m.code]
                m.kept = kept
                m.dropped_by = dict(zip(RULES, counts[: len(RULES)]))
                m.nulls = dict(zip(_NULL_OF.values(), counts[len(RULES) :]))
    result.missing.sort(key=lambda m: m.code)
    result.stale_rows.sort()
    result.seconds = round(_time.monotonic() - started, 3)
    return result
