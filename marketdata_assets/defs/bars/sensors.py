"""A sensor on the minute-bar landing area: new or changed CSV files request loads of their months."""

import json
import time

import dagster as dg

from marketdata_assets import settings
from marketdata_assets.defs.bars.assets import stock_1min_qfq, stock_daily_ma, stock_monthly_kline
from marketdata_assets.lib.bars.loader import landing_files
from marketdata_assets.lib.bars.minute_csv import CsvFileError, file_time_range

# An evaluation times out at 60 s: stop reading new files well before, the rest waits a tick.
TIME_BUDGET_S = 40


@dg.sensor(asset_selection=[stock_1min_qfq, stock_monthly_kline, stock_daily_ma], minimum_interval_seconds=30,
           default_status=dg.DefaultSensorStatus.RUNNING)
def minute_bar_files(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    """Cursor: the largest (mtime_ns, path) seen, not the clock, so files copied in with old
    modification times are still picked up in order and nothing is read twice."""
    cursor = json.loads(context.cursor) if context.cursor else {"mtime_ns": 0, "path": ""}
    root = settings.minute_bars_landing_dir()
    changed = sorted((path.stat().st_mtime_ns, str(path), path) for path in landing_files(root))
    changed = [item for item in changed if (item[0], item[1]) > (cursor["mtime_ns"], cursor["path"])]
    started, months, unreadable = time.monotonic(), set(), []
    for mtime_ns, name, path in changed:
        if time.monotonic() - started > TIME_BUDGET_S:
            break
        try:
            months.update(file_time_range(path).months)
        except CsvFileError as error:  # the load run quarantines it; nothing to request here
            unreadable.append(str(error))
        cursor = {"mtime_ns": mtime_ns, "path": name}
    for problem in unreadable:
        context.log.warning(f"unreadable landing file: {problem}")
    requests = [dg.RunRequest(partition_key=f"{month}-01", run_key=f"{month}:{cursor['mtime_ns']}")
                for month in sorted(months)]
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(cursor))
