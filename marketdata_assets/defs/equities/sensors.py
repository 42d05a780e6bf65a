"""A sensor on the minute-bar landing area: new or changed CSV files request loads of their months."""

import json
import time
from datetime import datetime

import dagster as dg

from marketdata_assets.core import settings
from marketdata_assets.defs.equities.minute_bars import (
    bars_coverage,
    stock_1min_qfq,
    stock_daily_ma,
    stock_monthly_kline,
)
from marketdata_assets.defs.equities.partitions import minute_bar_months
from marketdata_assets.ingest.minute_bars.loader import landing_files
from marketdata_assets.orchestration.sensing import (
    contiguous,
    newest_by_partition,
    partitions_to_request,
    range_tags,
)
from marketdata_assets.sources.registry import minute_files

# An evaluation times out at 60 s: stop reading new files well before, the rest waits a tick.
TIME_BUDGET_S = 40


@dg.sensor(
    asset_selection=[stock_1min_qfq, stock_monthly_kline, stock_daily_ma, bars_coverage],
    minimum_interval_seconds=settings.landing_sensor_interval_s(),
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def minute_bar_files(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    """Changed files -> one range run per stretch of consecutive months they touch, leaving out the
    months a run started after the change already loaded (`make run`'s, a backfill's). Cursor: the
    largest (mtime_ns, path) seen, not the clock, so files copied in with old modification times
    are still picked up in order and nothing is read twice."""
    cursor = json.loads(context.cursor) if context.cursor else {"mtime_ns": 0, "path": ""}
    root = settings.minute_bars_landing_dir()
    changed = sorted((path.stat().st_mtime_ns, str(path), path) for path in landing_files(root))
    changed = [item for item in changed if (item[0], item[1]) > (cursor["mtime_ns"], cursor["path"])]
    started, touched, unreadable, files = time.monotonic(), [], [], minute_files()
    for mtime_ns, name, path in changed:
        if time.monotonic() - started > TIME_BUDGET_S:
            break
        try:
            touched += [(f"{month}-01", mtime_ns) for month in files.time_range(path).months]
        except files.file_error as error:  # the load run quarantines it; nothing to request here
            unreadable.append(str(error))
        cursor = {"mtime_ns": mtime_ns, "path": name}
    for problem in unreadable:
        context.log.warning(f"unreadable landing file: {problem}")
    newest = newest_by_partition(touched)
    wanted = partitions_to_request(context.instance, stock_1min_qfq.key, newest)
    if len(wanted) < len(newest):
        context.log.info(f"months already loaded by a later run: {sorted(set(newest) - set(wanted))}")
    months = minute_bar_months.get_partition_keys(current_time=datetime.now())
    requests = [
        dg.RunRequest(run_key=f"{first}..{last}:{cursor['mtime_ns']}", tags=range_tags(first, last))
        for first, last in contiguous([m for m in wanted if m in months], months)
    ]
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(cursor))
