"""The alphas domain's coverage picture: account x month, the share of the alphas the API listed that
are stored in MongoDB (quality.alpha_coverage), as a heat map in the asset's metadata with the counts."""

from datetime import datetime

import dagster as dg

from marketdata_assets.core import settings
from marketdata_assets.defs._common.config import RunConfig
from marketdata_assets.defs.alphas.assets import GROUP, IMPORTED_TYPES
from marketdata_assets.defs.alphas.partitions import alpha_accounts, alpha_months, month_of_key
from marketdata_assets.orchestration import pools
from marketdata_assets.quality import alpha_coverage as cov
from marketdata_assets.resources import AlphaStoreResource
from marketdata_assets.sources.registry import account_api


class AlphaCoverageConfig(RunConfig):
    months: int = 24
    """New York months drawn, ending with the month in progress."""


def recent_months(count: int, today: datetime) -> list[str]:
    """The last `count` alpha month partitions as YYYY-MM, oldest first, ending with `today`'s."""
    return [
        month_of_key(key) for key in alpha_months.get_partition_keys(current_time=today)[-max(1, count) :]
    ]


@dg.asset(
    group_name=GROUP,
    pool=pools.MONGODB,
    kinds={"mongodb"},
    deps=["alpha_files", *IMPORTED_TYPES],
    automation_condition=dg.AutomationCondition.on_cron("30 9 * * *", cron_timezone="America/New_York"),
)
def alphas_coverage(
    context: dg.AssetExecutionContext, config: AlphaCoverageConfig, alpha_store: AlphaStoreResource
) -> dg.MaterializeResult:
    """Account x month: the alphas of the latest complete API listing (the landed files, for a month
    never fetched) that are stored in MongoDB, with the counts and first missing ids of every
    incomplete cell."""
    months = recent_months(config.months, datetime.now(account_api().timezone))
    collections = {
        alpha_type: alpha_store.collection_of(alpha_type) for alpha_type in IMPORTED_TYPES.values()
    }
    grid = cov.coverage(
        settings.alpha_landing_dir(), months, alpha_accounts.get_partition_keys(), collections
    )
    incomplete = grid.incomplete()
    context.log.info(
        f"alphas coverage {months[0]}..{months[-1]}: {grid.overall:.2%}, "
        f"{len(incomplete)} incomplete account-months"
    )
    return dg.MaterializeResult(
        metadata={
            "heat_map": dg.MetadataValue.md(grid.markdown()),
            "overall_percent": round(100 * grid.overall, 3),
            "incomplete_account_months": len(incomplete),
            "alphas_expected": sum(c.expected for c in grid.cells.values()),
            "alphas_stored": sum(c.stored for c in grid.cells.values()),
            "alphas_unplaceable": sum(c.unplaceable for c in grid.cells.values()),
            "files_not_listed": sum(c.not_listed for c in grid.cells.values()),
            "months": f"{months[0]}..{months[-1]}",
        }
    )
