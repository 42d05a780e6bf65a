"""New Binance dump files in the landing directory: loads of their (day, venue) partitions (each run
loads the day's files); files this landing does not load moved aside with the reason."""

import json
import time
from datetime import date
from pathlib import Path

import dagster as dg

from marketdata_assets.core import settings
from marketdata_assets.core.files import quarantine
from marketdata_assets.core.naming import partition_key
from marketdata_assets.defs._common.partitions import crypto_key
from marketdata_assets.defs._common.runs import day_range_tags
from marketdata_assets.defs.archives.dumps import DUMP_ASSETS
from marketdata_assets.orchestration.sensing import newest_by_partition, partitions_to_request
from marketdata_assets.sources.binance_vision import dumps

# An evaluation times out at 60 s: stop looking at new files well before; the rest waits a tick.
TIME_BUDGET_S = 40

binance_dumps_job = dg.define_asset_job(
    "binance_dumps_job", selection=dg.AssetSelection.assets(*DUMP_ASSETS.values())
)


def move_aside(context, root: Path, ignored: list[tuple[Path, str]]) -> None:
    """Each file the landing does not load (and its .CHECKSUM) into `ignored/`, keeping its relative
    path, with `<name>.reason.txt` saying why (core.files.quarantine); copiers' temporary files stay."""
    for path, why in ignored:
        if dumps.in_progress(path.name):
            continue
        try:
            moved = quarantine(path, why, root / dumps.IGNORED_DIR, relative_to=root)
            checksum = path.with_name(path.name + ".CHECKSUM")
            if checksum.exists():
                quarantine(
                    checksum,
                    f"the checksum of {path.name}, moved aside: {why}",
                    root / dumps.IGNORED_DIR,
                    relative_to=root,
                )
        except OSError as error:  # removed meanwhile, or not ours to move: said, and tried again next time
            context.log.warning(f"{path}: not loaded ({why}); could not be moved aside: {error}")
            continue
        context.log.warning(f"{path}: not loaded: {why}; moved to {moved} (reason beside it)")


@dg.sensor(
    job=binance_dumps_job,
    minimum_interval_seconds=settings.landing_sensor_interval_s(),
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def binance_dump_files(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    """New dump files in the landing directory request loads of their days (day x BINANCE partitions:
    each run loads every file of its days), consecutive days in one run. Cursor: the largest
    (mtime_ns, path) seen, not the clock, so files copied in with old modification times are still
    picked up, in order, and none is looked at twice; the run_key only guards against a repeat.
    Partitions a run started after the change already loaded (`make run`'s) are left out. Files
    of kinds this landing does not load are logged and moved into `ignored/` with a `.reason.txt`."""
    cursor = json.loads(context.cursor) if context.cursor else {"mtime_ns": 0, "path": ""}
    root = settings.binance_dumps_landing_dir()
    found, ignored = [], []
    for path, name in dumps.landing_dumps(root, ignored):
        try:
            mtime_ns = path.stat().st_mtime_ns
        except OSError:  # removed while we looked
            continue
        if (mtime_ns, str(path)) > (cursor["mtime_ns"], cursor["path"]):
            found.append((mtime_ns, str(path), name))
    found.sort(key=lambda item: (item[0], item[1]))
    started = time.monotonic()
    touched: dict[str, list[tuple[str, int]]] = {}  # family -> (day x venue partition key, mtime_ns)
    for mtime_ns, path, name in found:
        if time.monotonic() - started > TIME_BUDGET_S:
            break
        try:
            partition_key(dumps.VENUE, name.instrument)
        except ValueError as error:
            context.log.warning(f"{path}: not a Binance spot instrument ({error}); ignored")
        else:
            touched.setdefault(name.family, []).append((crypto_key(name.day, dumps.VENUE), mtime_ns))
        cursor = {"mtime_ns": mtime_ns, "path": path}
    requests = []
    for family, changes in touched.items():
        asset = DUMP_ASSETS[dumps.DUMP_DATASETS[family][0]]
        days = sorted(
            date.fromisoformat(key.split("|")[0])
            for key in partitions_to_request(
                context.instance, dg.AssetKey(asset), newest_by_partition(changes)
            )
        )
        for first, last in _day_runs(days):
            requests.append(
                dg.RunRequest(
                    run_key=f"{asset}:{first}..{last}:{cursor['mtime_ns']}",
                    tags=day_range_tags(first, last, dumps.VENUE, dumps.VENUE),
                    asset_selection=[dg.AssetKey(asset)],
                )
            )
    if found:
        context.log.info(f"{len(found)} new dump file(s) under {root}: {len(requests)} run(s)")
    move_aside(context, root, ignored)
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(cursor))


def _day_runs(days: list[date]) -> list[tuple[date, date]]:
    """Consecutive days as (first, last) runs."""
    runs: list[list[date]] = []
    for day in days:
        if runs and (day - runs[-1][1]).days == 1:
            runs[-1][1] = day
        else:
            runs.append([day, day])
    return [(a, b) for a, b in runs]
