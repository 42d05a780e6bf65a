"""The bars domain's coverage picture: code x trading day completeness of a month of minute bars,
readable with 5,000 codes: the worst codes one row each, every other code in one band.

Each cell is the share of the day's expected bars present (required and closing-auction stamps of
quality/minute_bars/completeness' grid, capped at 1; 0 on a day the code has no bar); a code's figure is the
mean over the month's judged trading days. The same counts as the completeness check
(completeness.build_code_days: one pass over the month, per day only for the codes not complete),
reduced in SQL to the worst codes' cells, one band of the others and one row per worst code for the
table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import psycopg

from marketdata_assets.core import calendars
from marketdata_assets.core.charts import heatmap_svg, svg_markdown_image
from marketdata_assets.core.markdown import table
from marketdata_assets.quality.minute_bars import completeness
from marketdata_assets.stores.timescale.kline import MINUTE_TABLE

WORST = 30

# _bar_days holds the codes not complete on every trading day: a code absent from it has every cell full.
_CELLS = """CREATE TEMP TABLE _bar_cells ON COMMIT DROP AS
WITH counted AS (SELECT DISTINCT code FROM _bar_days)
SELECT c.code, d.day,
       CASE WHEN k.code IS NULL THEN 1.0
            ELSE least(coalesce(p.on_grid, 0), d.expected)::float8 / d.expected END AS share,
       coalesce(p.bars - p.on_grid - p.optional, 0) AS off
FROM _bar_codes c LEFT JOIN counted k ON k.code = c.code CROSS JOIN _grid_days d
LEFT JOIN _bar_days p ON p.code = c.code AND p.day = d.day
WHERE d.expected > 0"""

_RANKED = """CREATE TEMP TABLE _bar_ranked ON COMMIT DROP AS
SELECT c.code, avg(c.share) AS share, (sum(c.off) + coalesce(max(o.bars), 0))::bigint AS off,
       count(*) FILTER (WHERE c.share > 0 AND c.share < 1) AS partial_days,
       count(*) FILTER (WHERE c.share = 0) AS empty_days,
       row_number() OVER (ORDER BY avg(c.share), sum(c.off) + coalesce(max(o.bars), 0) DESC, c.code) AS rank
FROM _bar_cells c
LEFT JOIN (SELECT code, sum(bars) AS bars FROM _bar_days d
           WHERE NOT EXISTS (SELECT 1 FROM _grid_days g WHERE g.day = d.day) GROUP BY code) o ON o.code = \
c.code
GROUP BY c.code"""

_SHOWN = """SELECT code, share, off, partial_days, empty_days FROM _bar_ranked
WHERE rank <= %(worst)s AND (share < 1 OR off > 0) ORDER BY rank"""

# One line per day for the codes not drawn: their mean share and how many they are.
_BAND = """SELECT c.day, avg(c.share), count(*) FROM _bar_cells c
WHERE c.code <> ALL(%(shown)s) GROUP BY c.day ORDER BY c.day"""


@dataclass
class CodeRow:
    code: str
    share: float
    off_session: int
    partial_days: int
    empty_days: int
    cells: list[float | None] = field(default_factory=list)


@dataclass
class MonthCoverage:
    month: date
    days: list[date]
    codes: int = 0
    complete_codes: int = 0
    overall: float = 1.0  # mean share over every code-day
    worst: list[CodeRow] = field(default_factory=list)
    others: list[float | None] = field(default_factory=list)  # the band: the other codes' mean per day
    others_count: int = 0
    provisional_days: list[date] = field(default_factory=list)  # judged on a provisional calendar
    calendar_note: str = ""  # what to upgrade (calendars.provisional_note), when there are such days

    def svg(self) -> str:
        rows = [r.code for r in self.worst] + (
            [f"all other {self.others_count:,} codes"] if self.others_count else []
        )
        values = [r.cells for r in self.worst] + ([self.others] if self.others_count else [])
        title = f"{self.month:%Y-%m}: {self.codes:,} codes, {100 * self.overall:.2f}% of bars"
        return heatmap_svg(title, rows, [f"{d:%d}" for d in self.days], values, cell=18)

    def markdown(self) -> str:
        """The heat map and the figures behind it."""
        lines = [
            (r.code, f"{100 * r.share:.2f}", r.partial_days, r.empty_days, r.off_session) for r in self.worst
        ]
        if self.others_count:
            shares = [s for s in self.others if s is not None]
            lines.append(
                (
                    f"all other {self.others_count:,} codes",
                    f"{100 * sum(shares) / len(shares):.2f}" if shares else "",
                    "",
                    "",
                    "",
                )
            )
        note = (
            f"**{self.calendar_note}** (days {', '.join(f'{d:%m-%d}' for d in self.provisional_days)})\n\n"
            if self.provisional_days
            else ""
        )
        return (
            svg_markdown_image(self.svg(), f"{self.month:%Y-%m} coverage")
            + "\n\n"
            + note
            + table(
                ["code", "bars present %", "partial days", "days without bars", "off-session bars"], lines
            )
        )

    def as_json(self) -> dict:
        return {
            "month": f"{self.month:%Y-%m}",
            "days": [str(d) for d in self.days],
            "codes": self.codes,
            "complete_codes": self.complete_codes,
            "overall_percent": round(100 * self.overall, 3),
            "rows": {r.code: [None if s is None else round(100 * s, 2) for s in r.cells] for r in self.worst},
            "others": {
                "codes": self.others_count,
                "percent": [None if s is None else round(100 * s, 2) for s in self.others],
            },
            "provisional_days": [str(d) for d in self.provisional_days],
        }


def month_coverage(
    conn: psycopg.Connection,
    month: date,
    *,
    venue: str = "SSE",
    as_of: date | None = None,
    table_name: str = MINUTE_TABLE,
    worst: int = WORST,
) -> MonthCoverage:
    """The month's coverage (read-only): the `worst` incomplete codes and the band of all others."""
    start, end = completeness.month_window(month, as_of, venue)
    grid = completeness.expected_grid(venue, start, end)
    result = MonthCoverage(start, grid.days, provisional_days=grid.provisional_days)
    if result.provisional_days:
        result.calendar_note = calendars.provisional_note(venue)
    with conn.transaction(force_rollback=True):
        completeness.build_code_days(conn, grid, table_name)
        conn.execute(_CELLS)
        conn.execute(_RANKED)
        result.codes, result.complete_codes, overall = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE share >= 1 AND off = 0), avg(share) FROM _bar_ranked"
        ).fetchone()
        result.overall = 1.0 if overall is None else float(overall)
        rows = {
            row[0]: CodeRow(*row, cells=[None] * len(grid.days))
            for row in conn.execute(_SHOWN, {"worst": worst}).fetchall()
        }
        position = {d: i for i, d in enumerate(grid.days)}
        for code, day, share in conn.execute(
            "SELECT code, day, share FROM _bar_cells WHERE code = ANY(%s)", (list(rows),)
        ).fetchall():
            rows[code].cells[position[day]] = share
        result.worst = list(rows.values())
        result.others = [None] * len(grid.days)
        for day, share, count in conn.execute(_BAND, {"shown": list(rows)}).fetchall():
            result.others[position[day]] = share
            result.others_count = max(result.others_count, count)
    return result
