"""`parquet_export`: each day's ClickHouse datasets and TimescaleDB minute bars, and the whole monthly
K-line and alphas, as Hive-partitioned Parquet under MARKETDATA_EXPORT_DIR
(`<dataset>/venue=<V>/date=<YYYY-MM-DD>/part-0.parquet`, `kline_monthly/venue=<V>/month=<YYYY-MM>/`,
`alphas/type=<T>/month=<YYYY-MM>/`), for DuckDB, Polars and anything else that reads Parquet without
opening the stores; config `dated`: a dated snapshot under `snapshots/<today, UTC>/` instead.

Partitioned like the crypto days (defs/_common/partitions.py: UTC days); a backfill of many days is
one run (the K-line and the alphas exported once). Incremental: a file is rewritten only when its
partition's active loads changed (the other stores: their content's fingerprint), so running a day
again is cheap. In the `clickhouse` pool: on the embedded engine the step holds the data directory
while it reads. The schedule (stopped by default) exports yesterday at 06:30 UTC.
"""

from datetime import date

import dagster as dg
from pydantic import Field

from marketdata_assets.core import settings
from marketdata_assets.defs._common.figures import add_own
from marketdata_assets.defs._common.partitions import crypto_days
from marketdata_assets.defs._common.runs import daily_use
from marketdata_assets.orchestration import pools
from marketdata_assets.read import Reader
from marketdata_assets.read import export as parquet
from marketdata_assets.resources import ClickHouseResource, MongoResource, TimescaleResource
from marketdata_assets.stores.clickhouse import tables as ct

GROUP = "exports"


class ParquetExportConfig(dg.Config):
    dated: bool = Field(
        default=False,
        description=(
            "Write a dated snapshot under <export dir>/snapshots/<today, UTC>/ instead of the export in "
            "place: never rewritten (unchanged partitions are skipped, a file that would change fails the "
            "step)."
        ),
    )


@dg.asset(
    group_name=GROUP,
    partitions_def=crypto_days,
    pool=pools.CLICKHOUSE,
    kinds={"parquet", "clickhouse"},
    backfill_policy=dg.BackfillPolicy.single_run(),
)
def parquet_export(
    context: dg.AssetExecutionContext,
    config: ParquetExportConfig,
    clickhouse: ClickHouseResource,
    timescale: TimescaleResource,
    mongo: MongoResource,
) -> dg.MaterializeResult:
    """The partition's days of every ClickHouse dataset and of the A-share minute bars, and the whole
    monthly K-line and alphas, as Parquet files; unchanged partitions are skipped."""
    days = [date.fromisoformat(key) for key in context.partition_keys]
    with (
        clickhouse.get_client() as client,
        timescale.connection() as conn,
        Reader(
            clickhouse_client=client,
            clickhouse_database=clickhouse.database,
            timescale_conn=conn,
            mongo_client=mongo.client,
        ) as reader,
    ):
        ct.ensure_tables(
            client, clickhouse.database
        )  # a fresh store: its tables (and the loads it reads) exist
        report = parquet.export_days(reader, settings.export_dir(), days, dated=config.dated)
    clickhouse.close()
    context.log.info(f"parquet_export: {report.summary()}")
    for day in days:  # each day's own files; the run's (the whole K-line and alphas too) as run_*
        add_own(context, day.isoformat(), report.of_day(day), len(days))
    return dg.MaterializeResult(
        metadata={
            "run_files_written": report.files_written,
            "run_files_skipped": len(report.skipped),
            "files_removed": len(report.removed),
            "run_partitions_without_rows": len(report.empty),
            "run_rows_written": dg.MetadataValue.int(report.rows),
            "bytes_written": dg.MetadataValue.int(report.bytes),
            "path": dg.MetadataValue.path(report.root),
            "dated": config.dated,
            "written": dg.MetadataValue.md("\n".join(f"- `{p}`" for p in report.written[:200]) or "none"),
            "seconds": report.seconds,
        }
    )


parquet_export_job = dg.define_asset_job(
    "parquet_export_job", selection=dg.AssetSelection.assets(parquet_export)
)
parquet_export_daily = dg.build_schedule_from_partitioned_job(
    parquet_export_job,
    hour_of_day=6,
    minute_of_hour=30,
    default_status=dg.DefaultScheduleStatus.STOPPED,
    metadata=daily_use(
        "parquet_export",
        "exports yesterday's partition once the day's loads are in (a day "
        "re-loaded later is rewritten by the next export of that day: re-run it or backfill)",
    ),
)
