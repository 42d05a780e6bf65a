"""Closed landing hours of the live collector's trade channels (every venue of ingest/live/load.py
`LIVE_VENUES`: Binance spot, OKX, Deribit): a load of each (hour, VENUE:INSTRUMENT) as soon as its
file closes, the instruments added to `live_instruments` first.

Running by default, like the landing-file sensors of the archives domain: a live load calls no
vendor (it reads local files into the local store), so nothing is spent or rate-limited by leaving
it on, and a stopped sensor would leave the live hours unloaded without anyone noticing (the
freshness policy would, an hour later).
"""

import hashlib
import json
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg

from marketdata_assets.core import settings
from marketdata_assets.core.naming import partition_key
from marketdata_assets.core.ranges import instrument_blocks
from marketdata_assets.defs.live.partitions import (
    LIVE_INSTRUMENTS,
    live_instruments,
    live_key,
    partition_hour,
)
from marketdata_assets.ingest.live.load import LIVE_VENUES, file_hour, hour_key
from marketdata_assets.orchestration.sensing import range_tags
from marketdata_assets.stores.landing import closed_files

LOOKBACK = timedelta(hours=48)  # closed files of older hours are not looked at (nor kept in the cursor)
TIME_BUDGET_S = 40  # an evaluation times out at 60 s

live_trades_job = dg.define_asset_job("live_trades_job", selection=dg.AssetSelection.assets("live_trades"))


def closed_trade_files(root: Path, since: str) -> list[tuple[str, str, str]]:
    """(relative path, landing hour, VENUE:INSTRUMENT key) of the closed trade-channel files of every
    live venue, hours >= `since`."""
    found = []
    for venue, spec in LIVE_VENUES.items():
        venue_dir = Path(root) / venue
        channels = sorted(p.name for p in venue_dir.iterdir() if p.is_dir()) if venue_dir.is_dir() else []
        for channel in channels:
            instrument = spec.instrument_of_channel(channel)
            if instrument is None:
                continue
            key = partition_key(venue, instrument)
            for path in closed_files(root, venue, channel):
                if file_hour(path) >= since:
                    found.append((f"{venue}/{channel}/{path.name}", file_hour(path), key))
    return found


def hour_runs(closed: dict[str, dict[str, list[str]]], order: list[str]) -> list[dg.RunRequest]:
    """One run per landing hour and contiguous block of its instruments (`order`: the dimension's);
    `closed`: hour -> instrument key -> the newly closed files (their names make the run key, so a
    later segment of the same hour is a new run)."""
    requests = []
    position = {key: i for i, key in enumerate(order)}
    for hour in sorted(closed):
        key = partition_hour(hour)
        for first, last in instrument_blocks(order, closed[hour]):
            block = [k for k in closed[hour] if position[first] <= position[k] <= position[last]]
            files = hashlib.sha1("\n".join(sorted(p for k in block for p in closed[hour][k])).encode()).hexdigest()
            tags = {} if first == last else range_tags(live_key(key, first), live_key(key, last))
            requests.append(dg.RunRequest(run_key=f"live_trades:{key}:{first}..{last}:{files[:16]}",
                                          partition_key=live_key(key, first) if first == last else None, tags=tags))
    return requests


@dg.sensor(job=live_trades_job, minimum_interval_seconds=settings.landing_sensor_interval_s(),
           default_status=dg.DefaultSensorStatus.RUNNING)
def live_landing_hours(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    """Each newly closed trade-channel file requests a load of its (hour, instrument). Cursor: the
    closed files seen (of the last 48 hours), not the clock: a file closed late (a crash recovered
    on the next start, a second segment after a restart within the hour) requests its hour again,
    and no file is requested twice."""
    seen = set(json.loads(context.cursor)) if context.cursor else set()
    since = hour_key(datetime.now(timezone.utc) - LOOKBACK)
    root = settings.live_landing_dir()
    started = time.monotonic()
    closed: dict[str, dict[str, list[str]]] = {}
    current = set()
    for relative, hour, key in closed_trade_files(root, since):
        current.add(relative)
        if relative in seen:
            continue
        if time.monotonic() - started > TIME_BUDGET_S:
            current.discard(relative)  # next tick
            continue
        closed.setdefault(hour, {}).setdefault(key, []).append(relative)
    existing = list(context.instance.get_dynamic_partitions(LIVE_INSTRUMENTS))
    new = sorted({key for keys in closed.values() for key in keys} - set(existing))
    requests = hour_runs(closed, existing + new)
    if requests:
        context.log.info(f"{sum(len(k) for k in closed.values())} newly closed (hour, instrument) file(s) under "
                         f"{root}: {len(requests)} run(s), {len(new)} new instrument(s)")
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(sorted(current)),
                           dynamic_partitions_requests=[live_instruments.build_add_request(new)] if new else [])
