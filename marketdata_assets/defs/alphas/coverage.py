"""The alphas domain's coverage picture: account x month, the share of the alphas the API listed that
are stored in MongoDB (lib.alphas.coverage), as a heat map in the asset's metadata with the counts."""

from datetime import datetime

import dagster as dg

from marketdata_assets import pools, settings
from marketdata_assets.defs.alphas.assets import GROUP, IMPORTED_TYPES
from marketdata_assets.defs.alphas.partitions import alpha_accounts
from marketdata_assets.lib.alphas import coverage as cov
from marketdata_assets.lib.alphas.api import NY
from marketdata_assets.lib.markdown import table
from marketdata_assets.resources import AlphaStoreResource

PAGE = 1000


class AlphaCoverageConfig(dg.Config):
    months: int = 24
    """New York months drawn, ending with the month in progress."""


def recent_months(count: int, today: datetime) -> list[str]:
    """The last `count` months as YYYY-MM, oldest first, ending with `today`'s."""
    index = today.year * 12 + today.month - 1
    return [f"{i // 12:04d}-{i % 12 + 1:02d}" for i in range(index - max(1, count) + 1, index + 1)]


def listed_by_api(instance: dg.DagsterInstance, months: list[str], accounts: list[str]) -> dict[cov.AccountMonth, int]:
    """What the latest materialization of each alpha_files partition says the API listed."""
    keys = {str(dg.MultiPartitionKey({"month": f"{m}-01", "account": a})): cov.AccountMonth(a, m)
            for m in months for a in accounts}
    listed: dict[cov.AccountMonth, int] = {}
    cursor = None
    while True:  # newest first: the first record of a partition is its latest
        page = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=dg.AssetKey("alpha_files"),
                                                                     asset_partitions=sorted(keys)),
                                               limit=PAGE, cursor=cursor)
        for record in page.records:
            key = keys.get(record.partition_key or "")
            fetched = record.asset_materialization.metadata.get("alphas_fetched") if record.asset_materialization else None
            if key is not None and key not in listed and fetched is not None:
                listed[key] = int(fetched.value)
        if not page.has_more:
            return listed
        cursor = page.cursor


@dg.asset(group_name=GROUP, pool=pools.MONGODB, kinds={"mongodb"},
          deps=["alpha_files", *IMPORTED_TYPES],
          automation_condition=dg.AutomationCondition.on_cron("30 9 * * *", cron_timezone="America/New_York"))
def alphas_coverage(context: dg.AssetExecutionContext, config: AlphaCoverageConfig,
                    alpha_store: AlphaStoreResource) -> dg.MaterializeResult:
    """Account x month: alphas stored in MongoDB / alphas the API listed (its latest fetch of the
    partition; the files landed where never fetched), with the counts and first missing ids of every
    incomplete cell."""
    months = recent_months(config.months, datetime.now(NY))
    accounts = alpha_accounts.get_partition_keys()
    collections = {alpha_type: alpha_store.collection_of(alpha_type) for alpha_type in IMPORTED_TYPES.values()}
    grid = cov.coverage(settings.alpha_landing_dir(), months, accounts,
                        listed_by_api(context.instance, months, accounts), collections)
    incomplete = grid.incomplete()
    context.log.info(f"alphas coverage {months[0]}..{months[-1]}: {grid.overall:.2%}, "
                     f"{len(incomplete)} incomplete account-months")
    return dg.MaterializeResult(metadata={
        "heat_map": dg.MetadataValue.md(grid.markdown()),
        "overall_percent": round(100 * grid.overall, 3),
        "incomplete_account_months": len(incomplete),
        "alphas_listed": sum(c.listed or 0 for c in grid.cells.values()),
        "alphas_landed": sum(c.landed for c in grid.cells.values()),
        "alphas_stored": sum(c.stored for c in grid.cells.values()),
        "months": f"{months[0]}..{months[-1]}",
        "stored_without_file": dg.MetadataValue.md(table(["month", "documents"], grid.stored_without_file.items()))
        if grid.stored_without_file else 0,
    })
