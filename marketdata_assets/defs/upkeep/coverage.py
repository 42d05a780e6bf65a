"""The ClickHouse store's coverage picture: instrument x day completeness of the stored 1-minute bars
(quality.bar_coverage) as a heat map in the asset's metadata, with the percentages behind it."""

from datetime import UTC, datetime, timedelta

import dagster as dg

from marketdata_assets.core.charts import heatmap_svg, svg_markdown_image
from marketdata_assets.core.markdown import table
from marketdata_assets.defs._common.config import RunConfig
from marketdata_assets.defs.upkeep.store import GROUP
from marketdata_assets.orchestration import pools
from marketdata_assets.quality import bar_coverage as cov
from marketdata_assets.resources import ClickHouseResource

SHOWN_ROWS = 40  # the worst instruments drawn; the table and the figures cover all


class CoverageConfig(RunConfig):
    days: int = 30
    """UTC days drawn, ending yesterday."""


@dg.asset(
    group_name=GROUP,
    pool=pools.CLICKHOUSE,
    kinds={"clickhouse"},
    deps=["crypto_bars_1m", "binance_dump_bars_1m", "a_share_bars_1m", "yahoo_bars_1m"],
    automation_condition=dg.AutomationCondition.on_cron("0 6 * * *"),
)
def ticks_coverage(
    context: dg.AssetExecutionContext, config: CoverageConfig, clickhouse: ClickHouseResource
) -> dg.MaterializeResult:
    """Instrument x day completeness of the 1-minute bars in ClickHouse: each day's stored bars
    against a full day of its venue (1,440 around the clock, the calendar's session minutes on an
    exchange, nothing expected on a closed day), worst instruments first."""
    last = datetime.now(UTC).date() - timedelta(days=1)
    first = last - timedelta(days=max(1, config.days) - 1)
    with clickhouse.get_client() as client:
        stored = cov.bars_per_day(client, clickhouse.database, first, last)
    grid = cov.coverage(stored, first, last)
    provisional = cov.provisional_notes({venue for venue, _ in stored}, last)
    shown = grid.rows[:SHOWN_ROWS]
    svg = heatmap_svg(
        f"1-minute bars stored, {first}..{last} (worst {len(shown)} of {len(grid.rows)})",
        shown,
        [f"{d:%m-%d}" for d in grid.days],
        grid.cells[:SHOWN_ROWS],
    )
    context.log.info(
        f"ticks coverage {first}..{last}: {len(grid.rows)} instruments, {grid.overall:.2%} overall"
    )
    return dg.MaterializeResult(
        metadata={
            "heat_map": dg.MetadataValue.md(svg_markdown_image(svg, "coverage heat map")),
            "overall_percent": round(100 * grid.overall, 2),
            "instruments": len(grid.rows),
            "incomplete_instruments": sum(p < 1 for p in grid.percent.values()),
            "days": f"{first}..{last}",
            "by_instrument": dg.MetadataValue.md(
                table(
                    ["instrument", "bars stored %"],
                    ((k, f"{100 * p:.2f}") for k, p in grid.percent.items()),
                    limit=500,
                )
            ),
            **({"calendar": "; ".join(provisional)} if provisional else {}),
        }
    )
