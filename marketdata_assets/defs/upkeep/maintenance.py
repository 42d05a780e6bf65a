"""Upkeep of the tick store: `tick_compaction`, every Sunday at 05:00 UTC (no load is scheduled then;
on by default: it calls no vendor), drops the rows no read shows (reloaded days' superseded loads,
killed loads' orphans) month by month with stores.clickhouse.tables.compact_store. Reads stay
exact throughout: each month is swapped atomically. Months without such rows are only counted. On a
ClickHouse cluster (CLICKHOUSE_CLUSTER) the same call compacts each shard's rows ON CLUSTER
(docs/scale-out.md, "Compaction per shard").
"""

from datetime import timedelta

import dagster as dg

from marketdata_assets.core.markdown import table
from marketdata_assets.defs._common.config import RunConfig
from marketdata_assets.defs.upkeep.store import GROUP, tick_store
from marketdata_assets.orchestration import pools
from marketdata_assets.resources import ClickHouseResource
from marketdata_assets.stores.clickhouse import tables as ct


class CompactionConfig(RunConfig):
    months: list[str] = []  # noqa: RUF012 - pydantic copies the default
    """Only these months (YYYY-MM); empty: every month."""
    orphan_grace_hours: float = 24
    """A load that never became active is reclaimed once it is this old (a younger one may be a write in
    flight)."""


@dg.asset(group_name=GROUP, deps=[tick_store], pool=pools.CLICKHOUSE, kinds={"clickhouse"})
def tick_compaction(
    context: dg.AssetExecutionContext, config: CompactionConfig, clickhouse: ClickHouseResource
) -> dg.MaterializeResult:
    """Superseded and orphaned rows of the tick tables dropped, per dataset and month, with an atomic
    partition swap (each shard its own on a cluster). In the `clickhouse` pool, and on the embedded engine
    under its data-directory lock, so no other ClickHouse step writes while it runs (see compact_month for
    a server)."""
    with clickhouse.get_client() as client:
        ct.ensure_tables(client, clickhouse.database)
        report = ct.compact_store(
            client,
            clickhouse.database,
            months=config.months or None,
            orphan_grace=timedelta(hours=config.orphan_grace_hours),
        )
    clickhouse.close()
    context.log.info(f"tick_compaction: {report.summary()}")
    rows = report.rows()
    metadata = {
        "rows_reclaimed": dg.MetadataValue.int(report.reclaimed),
        "months_compacted": report.months_compacted,
        "table_months_checked": len(report.checked),
        "unflipped_rows_kept": sum(g.pending for g in report.checked),
        "compactions": dg.MetadataValue.md(
            table(list(rows[0]), (r.values() for r in rows)) if rows else "none"
        ),
        "compactions_json": dg.MetadataValue.json(rows),
        "skipped": dg.MetadataValue.md("\n".join(f"- {c}" for c in report.conflicts) or "none"),
        "seconds": report.seconds,
    }
    if report.errors:
        raise dg.Failure(
            description=f"tick_compaction: {len(report.errors)} month(s) not compacted (nothing changed "
            f"in them): {'; '.join(report.errors)[:1500]}",
            metadata=metadata,
        )
    return dg.MaterializeResult(metadata=metadata)


tick_compaction_job = dg.define_asset_job(
    "tick_compaction_job", selection=dg.AssetSelection.assets(tick_compaction)
)


@dg.schedule(
    job=tick_compaction_job,
    cron_schedule="0 5 * * 0",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def tick_compaction_weekly(context: dg.ScheduleEvaluationContext):
    """The whole store, once a week (the run checks every month and compacts those with garbage)."""
    return dg.RunRequest(run_key=f"tick-compaction:{context.scheduled_execution_time:%Y-%m-%d}")
