"""Sensors of the alpha domain: the landing area, and the monthly catch-up backfill."""

import json
import time
from datetime import datetime, timedelta

import dagster as dg
from dagster._core.definitions.assets.graph.asset_graph_subset import AssetGraphSubset
from dagster._core.definitions.events import AssetKeyPartitionKey

from marketdata_assets.core import settings
from marketdata_assets.datasets.alpha_files import API_TZ
from marketdata_assets.defs._common.runs import daily_use
from marketdata_assets.defs.alphas.assets import (
    IMPORTED_TYPES,
    alpha_documents,
    alpha_files,
    alpha_package_drops,
    alpha_packages,
)
from marketdata_assets.defs.alphas.partitions import alpha_accounts, alpha_months, alpha_months_by_account
from marketdata_assets.ingest.alphas.landing import landing_changes
from marketdata_assets.orchestration.sensing import newest_by_partition, partitions_to_request

# An evaluation times out at 60 s: stop well before; the rest waits for the next tick.
TIME_BUDGET_S = 40.0
IMPORT_KEYS = [dg.AssetKey(name) for name in IMPORTED_TYPES]


@dg.sensor(
    asset_selection=[alpha_package_drops, alpha_documents, alpha_packages],
    minimum_interval_seconds=settings.landing_sensor_interval_s(),
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def alpha_landing_files(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    """New or changed alpha files or dropped packages -> import runs of their months (packages are
    decomposed first). Cursor: the largest (mtime_ns, path) handled, not the clock, so files copied
    in with old modification times are still seen, in order, and nothing is requested twice; nor
    is a month a run started after the change already imported."""
    cursor = json.loads(context.cursor) if context.cursor else {"mtime_ns": 0, "path": ""}
    started = time.monotonic()
    changes = landing_changes(settings.alpha_landing_dir(), (cursor["mtime_ns"], cursor["path"]))
    file_changes, package_changes, skipped = [], [], []
    valid = set(alpha_months.get_partition_keys(current_time=datetime.now(API_TZ)))
    handled = 0
    for change in changes:
        if handled and time.monotonic() - started > TIME_BUDGET_S:
            break
        handled += 1
        cursor = {"mtime_ns": change.mtime_ns, "path": change.path}
        key = f"{change.month}-01" if change.month else None
        if key not in valid:
            skipped.append(f"{change.path} (month {change.month!r} is not a partition)")
        else:
            (package_changes if change.landed == "package" else file_changes).append((key, change.mtime_ns))
    if skipped:
        context.log.warning(
            f"{len(skipped)} landing changes outside the partitions: {'; '.join(skipped[:5])}"
        )
    # months a run started after the change already imported (make run's, a backfill's) are left out
    file_months = set(
        partitions_to_request(context.instance, IMPORT_KEYS[0], newest_by_partition(file_changes))
    )
    package_months = set(
        partitions_to_request(context.instance, alpha_package_drops.key, newest_by_partition(package_changes))
    )
    if changes:  # a quiet tick logs nothing (every 30 s it filled the daemon's terminal)
        context.log.info(
            f"{len(changes)} changes since the cursor, {handled} handled in "
            f"{time.monotonic() - started:.2f} s: months to import {sorted(file_months | package_months)}"
        )
    requests = []
    for key in sorted(file_months | package_months):
        selection = (
            ([alpha_package_drops.key] if key in package_months else []) + IMPORT_KEYS + [alpha_packages.key]
        )
        requests.append(
            dg.RunRequest(
                partition_key=key, asset_selection=selection, run_key=f"landing:{key}:{cursor['mtime_ns']}"
            )
        )
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(cursor))


CATCHUP_MONTHS = 6
CATCHUP_DAY, CATCHUP_HOUR = 2, 7  # New York time: after the month's last alphas are surely listed


def months_to_catch_up(
    instance: dg.DagsterInstance, now: datetime, months: int = CATCHUP_MONTHS
) -> tuple[list[str], list[str]]:
    """(alpha_files multi-partition keys, import month keys) of the last `months` complete months
    that are missing or whose last materialization failed. An import month follows its fetches."""
    keys = alpha_months.get_partition_keys(current_time=now)
    # the last `months` complete months (end_offset=1 also lists the month in progress)
    recent = keys[-months - 1 : -1]
    fetch_keys = [
        dg.MultiPartitionKey({"month": m, "account": a})
        for m in recent
        for a in alpha_accounts.get_partition_keys()
    ]
    fetch_status = (
        instance.get_status_by_partition(alpha_files.key, fetch_keys, alpha_months_by_account) or {}
    )
    fetch_todo = [k for k in fetch_keys if fetch_status.get(k) != dg.AssetPartitionStatus.MATERIALIZED]
    import_todo = {k.keys_by_dimension["month"] for k in fetch_todo}
    for key in IMPORT_KEYS:
        status = instance.get_status_by_partition(key, recent, alpha_months) or {}
        import_todo.update(m for m in recent if status.get(m) != dg.AssetPartitionStatus.MATERIALIZED)
    return [str(k) for k in fetch_todo], sorted(import_todo)


# Stopped by default, like the daily fetch: both call the vendor's API; turn them on once the
# accounts' credentials are set.
@dg.sensor(
    asset_selection=[alpha_files, alpha_documents],
    minimum_interval_seconds=3600,
    default_status=dg.DefaultSensorStatus.STOPPED,
    metadata=daily_use(
        "alphas", "Once a month, backfills the alpha months of the last six that are missing or failed."
    ),
)
def alpha_monthly_catchup(context: dg.SensorEvaluationContext):
    """Once a month (from the 2nd, 07:00 New York): a partition backfill of every missing or failed
    alpha_files (month x account) and import month of the last six complete months. The backfill
    runs fetches one partition per run and the import as one range run (single-run policy: one
    ledger and one connection for the whole range), each import month after its fetches."""
    now = datetime.now(API_TZ)
    due = (
        f"{now:%Y-%m}"
        if (now.day, now.hour) >= (CATCHUP_DAY, CATCHUP_HOUR)
        else f"{(now.replace(day=1) - timedelta(days=1)):%Y-%m}"
    )
    if context.cursor == due:
        return dg.SkipReason(f"catch-up of {due} already launched")
    fetch_todo, import_todo = months_to_catch_up(context.instance, now)
    if not fetch_todo and not import_todo:
        return dg.SensorResult(
            skip_reason=f"{due}: every alpha partition of the last {CATCHUP_MONTHS} months is materialized",
            cursor=due,
        )
    asset_graph = context.repository_def.asset_graph
    wanted = {AssetKeyPartitionKey(alpha_files.key, key) for key in fetch_todo}
    wanted |= {AssetKeyPartitionKey(key, month) for key in IMPORT_KEYS for month in import_todo}
    context.log.info(f"catch-up {due}: {len(fetch_todo)} fetch partitions, import months {import_todo}")
    subset = AssetGraphSubset.from_asset_partition_set(wanted, asset_graph)
    return dg.SensorResult(
        run_requests=[dg.RunRequest.for_asset_graph_subset(subset, tags={"marketdata/catch_up": due})],
        cursor=due,
    )
