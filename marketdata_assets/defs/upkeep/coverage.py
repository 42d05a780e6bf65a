"""The ClickHouse store's coverage picture: instrument x day completeness of the stored 1-minute bars
(quality.bar_coverage) against the universe of each day (read.expected) as a heat map in the asset's
metadata, with the days, percentages and missing days behind it."""

from datetime import UTC, datetime, timedelta

import dagster as dg

from marketdata_assets.core.charts import heatmap_svg, svg_markdown_image
from marketdata_assets.core.markdown import table
from marketdata_assets.defs._common.config import RunConfig
from marketdata_assets.defs.upkeep.store import GROUP
from marketdata_assets.orchestration import pools
from marketdata_assets.quality import bar_coverage as cov
from marketdata_assets.read import expected
from marketdata_assets.resources import ClickHouseResource
from marketdata_assets.sources.config import load_sources_config

SHOWN_ROWS = 40  # the worst instruments drawn; the table and the figures cover all
BARS = "bars_1m"


class CoverageConfig(RunConfig):
    days: int = 30
    """UTC days drawn, ending yesterday."""


@dg.asset(
    group_name=GROUP,
    pool=pools.CLICKHOUSE,
    kinds={"clickhouse"},
    deps=["crypto_bars_1m", "binance_dump_bars_1m", "a_share_bars_1m", "yahoo_bars_1m"],
    automation_condition=dg.AutomationCondition.on_cron("0 6 * * *"),
    check_specs=[
        dg.AssetCheckSpec(
            "history_complete",
            asset="ticks_coverage",
            description=(
                "Every day the universe expects in the drawn days (listed, in the day's universe, from "
                "history_start, trading) has its 1-minute bars stored; a missing one is named with its "
                "reason and the command that loads it (WARN: missing history is a backfill to run, not a "
                "fault)."
            ),
        )
    ],
)
def ticks_coverage(
    context: dg.AssetExecutionContext, config: CoverageConfig, clickhouse: ClickHouseResource
) -> dg.MaterializeResult:
    """Instrument x day completeness of the 1-minute bars in ClickHouse: each day's stored bars
    against a full day of its venue (1,440 around the clock, the calendar's session minutes on an
    exchange) on the days the instrument's universe expects it (listed, in the day's universe, from
    history_start, trading: read/expected.py), worst instruments first; its universe's instruments
    with nothing stored included, each missing day named with its reason and the command that loads it."""
    today = datetime.now(UTC).date()
    last = today - timedelta(days=1)
    first = last - timedelta(days=max(1, config.days) - 1)
    sources = load_sources_config()
    with clickhouse.get_client() as client:
        stored = cov.bars_per_day(client, clickhouse.database, first, last)
        universes = expected.stored_universes(client, clickhouse.database, sources)
    grid = cov.coverage(
        stored,
        first,
        last,
        expected.expectation(universes, BARS, cov.expected_bars, cov.since_first_stored(stored), today),
        expected.expected_instruments(universes, BARS, first, last, today),
    )
    provisional = cov.provisional_notes({row.split(":")[0] for row in grid.rows}, last)
    shown = grid.rows[:SHOWN_ROWS]
    svg = heatmap_svg(
        f"1-minute bars stored, {first}..{last} (worst {len(shown)} of {len(grid.rows)})",
        shown,
        [f"{d:%m-%d}" for d in grid.days],
        grid.cells[:SHOWN_ROWS],
    )
    missing = sum(len(days) for days in grid.missing.values())
    context.log.info(
        f"ticks coverage {first}..{last}: {len(grid.rows)} instruments, {grid.overall:.2%} overall, "
        f"{missing} expected instrument-day(s) with no bar"
    )
    return dg.MaterializeResult(
        check_results=[_history_complete(grid, missing, sources.binance_archives)],
        metadata={
            "heat_map": dg.MetadataValue.md(svg_markdown_image(svg, "coverage heat map")),
            "overall_percent": round(100 * grid.overall, 2),
            "instruments": len(grid.rows),
            "incomplete_instruments": sum(p < 1 for p in grid.percent.values()),
            "missing_days": missing,
            "days": f"{first}..{last}",
            "by_instrument": dg.MetadataValue.md(
                table(
                    ["instrument", "days stored / expected", "bars stored %", "missing"],
                    (_line(grid, key, sources.binance_archives) for key in grid.rows),
                    limit=500,
                )
            ),
            **({"stored_not_expected": _outside(grid.outside)} if grid.outside else {}),
            **({"calendar": "; ".join(provisional)} if provisional else {}),
        },
    )


def _history_complete(grid: cov.Coverage, missing: int, archives) -> dg.AssetCheckResult:
    """The check: no expected instrument-day without bars; the instruments missing most, with why."""
    worst = sorted(grid.missing.items(), key=lambda item: (-len(item[1]), item[0]))
    return dg.AssetCheckResult(
        check_name="history_complete",
        passed=not missing,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"{missing:,} expected instrument-day(s) of {len(grid.missing):,} instrument(s) have no bars"
            if missing
            else "every expected day is stored"
        ),
        metadata={
            "missing_days": missing,
            "missing": dg.MetadataValue.md(
                table(
                    ["instrument", "missing days", "why, and the command that loads them"],
                    ((key, len(days), _line(grid, key, archives)[3]) for key, days in worst[:SHOWN_ROWS]),
                )
                if worst
                else "none"
            ),
        },
    )


def _line(grid: cov.Coverage, key: str, archives) -> tuple[str, str, str, str]:
    """An instrument's row of the table: its days, bars and missing days with their reasons."""
    venue, instrument = key.split(":", 1)
    stored, want = grid.days_stored[key]
    holes = grid.missing.get(key, [])
    why = expected.missing_text(expected.why_missing(BARS, venue, instrument, holes, archives))
    return key, f"{stored}/{want}", f"{100 * grid.percent[key]:.2f}", why


def _outside(outside: dict[str, int]) -> str:
    """'BINANCE:XUSDT 3 day(s), ...': bars stored on days an instrument is not expected (not counted)."""
    return ", ".join(f"{key} {n} day(s)" for key, n in sorted(outside.items()))
