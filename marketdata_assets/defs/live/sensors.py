"""Closed landing hours of the live collector's trade channels (every venue of ingest/live/load.py
`LIVE_VENUES`: Binance spot, OKX, Deribit) and of the other datasets' channels (ingest/live/dataset_rows.py
`CHANNELS`: tickers, bars_1m, liquidations, open_interest, mark_funding, books): a load of each (hour,
VENUE:INSTRUMENT) of the asset the file feeds (`live_trades`, `live_tickers`, ...; one file may feed
several: Deribit's ticker channel) as soon as the file closes, the instruments added to
`live_instruments` first. A channel of every instrument's events (OKX `SWAP@liquidation-orders`)
requests the hour of each known instrument it carries.

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
from marketdata_assets.defs.live.datasets import asset_name
from marketdata_assets.defs.live.partitions import (
    LIVE_INSTRUMENTS,
    live_instruments,
    live_key,
    partition_hour,
)
from marketdata_assets.ingest.live.dataset_rows import CHANNELS, LIVE_DATASET_NAMES
from marketdata_assets.ingest.live.load import LIVE_VENUES, file_hour, hour_key
from marketdata_assets.orchestration.sensing import range_tags
from marketdata_assets.stores.landing import closed_files

LOOKBACK = timedelta(hours=48)  # closed files of older hours are not looked at (nor kept in the cursor)
TIME_BUDGET_S = 40  # an evaluation times out at 60 s

live_trades_job = dg.define_asset_job("live_trades_job", selection=dg.AssetSelection.assets("live_trades"))
# what the landing sensor launches: one of these assets a run (each request names it)
live_hours_job = dg.define_asset_job("live_hours_job", selection=dg.AssetSelection.assets(
    "live_trades", *(asset_name(dataset) for dataset in LIVE_DATASET_NAMES)))


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


def _channels(root: Path, venue: str) -> list[str]:
    venue_dir = Path(root) / venue
    return sorted(p.name for p in venue_dir.iterdir() if p.is_dir()) if venue_dir.is_dir() else []


def dataset_channels(root: Path) -> list[tuple[str, str, str, object]]:
    """(venue, channel, asset, its instrument's key, or the VenueDataset of a channel shared by every
    instrument) of every live dataset's channel under `root` (directory names only)."""
    out, listed = [], {}
    for dataset, venues in CHANNELS.items():
        for venue, spec in venues.items():
            channels = listed.setdefault(venue, _channels(root, venue))
            for channel in channels:
                instrument = spec.instrument_of(channel)
                if instrument:
                    out.append((venue, channel, asset_name(dataset), partition_key(venue, instrument)))
                elif channel in spec.shared_channels():
                    out.append((venue, channel, asset_name(dataset), spec))
    return out


def closed_dataset_files(root: Path, since: str, known: list[str]) -> list[tuple[str, str, str, str]]:
    """(relative path, landing hour, VENUE:INSTRUMENT key, asset) of the closed files of every live
    dataset's channels, hours >= `since`; a shared channel's file once for each instrument it carries
    of `known` (keys) and of the instrument channels found."""
    channels = dataset_channels(root)
    known = list(dict.fromkeys([*known, *(key for *_, key in channels if isinstance(key, str))]))
    found = []
    for venue, channel, asset, key in channels:
        keys = [key] if isinstance(key, str) else [
            k for k in known if k.startswith(f"{venue}:") and key.carries(k.split(":", 1)[1])]
        for path in (closed_files(root, venue, channel) if keys else []):
            if file_hour(path) >= since:
                found += [(f"{venue}/{channel}/{path.name}", file_hour(path), k, asset) for k in keys]
    return found


def hour_runs(closed: dict[str, dict[str, list[str]]], order: list[str], asset: str = "live_trades") -> list[dg.RunRequest]:
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
            requests.append(dg.RunRequest(run_key=f"{asset}:{key}:{first}..{last}:{files[:16]}",
                                          asset_selection=[dg.AssetKey(asset)],
                                          partition_key=live_key(key, first) if first == last else None, tags=tags))
    return requests


def closed_live_files(root: Path, since: str, existing: list[str]) -> list[tuple[str, str, str, str]]:
    """(relative path, landing hour, VENUE:INSTRUMENT key, asset) of every closed file a live asset
    loads: the trade channels' (`live_trades`) and the other datasets' (a shared channel's for the
    instruments known or found now)."""
    trades = [(*found, "live_trades") for found in closed_trade_files(root, since)]
    return trades + closed_dataset_files(root, since, [*existing, *(f[2] for f in trades)])


@dg.sensor(job=live_hours_job, minimum_interval_seconds=settings.landing_sensor_interval_s(),
           default_status=dg.DefaultSensorStatus.RUNNING)
def live_landing_hours(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    """Each newly closed file of a live asset's channels requests a load of its (hour, instrument) by
    that asset (one run per asset, hour and contiguous block of instruments). Cursor: the closed files
    seen (of the last 48 hours), not the clock: a file closed late (a crash recovered on the next
    start, a second segment after a restart within the hour) requests its hour again, and no file is
    requested twice."""
    seen = set(json.loads(context.cursor)) if context.cursor else set()
    since = hour_key(datetime.now(timezone.utc) - LOOKBACK)
    root = settings.live_landing_dir()
    started = time.monotonic()
    existing = list(context.instance.get_dynamic_partitions(LIVE_INSTRUMENTS))
    closed: dict[str, dict[str, dict[str, list[str]]]] = {}  # asset -> hour -> key -> files
    current: set[str] = set()  # the files seen or requested now (a file of several assets: all at once)
    for relative, hour, key, asset in closed_live_files(root, since, existing):
        if relative not in seen and relative not in current:
            if time.monotonic() - started > TIME_BUDGET_S:
                continue  # next tick
            current.add(relative)
        elif relative in seen:
            current.add(relative)
            continue
        closed.setdefault(asset, {}).setdefault(hour, {}).setdefault(key, []).append(relative)
    new = sorted({key for by_hour in closed.values() for keys in by_hour.values() for key in keys} - set(existing))
    requests = [request for asset, by_hour in closed.items() for request in hour_runs(by_hour, existing + new, asset)]
    if requests:
        files = sum(len(keys) for by_hour in closed.values() for keys in by_hour.values())
        context.log.info(f"{files} newly closed (asset, hour, instrument) file(s) under {root}: {len(requests)} "
                         f"run(s), {len(new)} new instrument(s)")
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(sorted(current)),
                           dynamic_partitions_requests=[live_instruments.build_add_request(new)] if new else [])
