"""Closed landing hours of the live collector's trade channels (every venue of
ingest/live/hourly/load.py `LIVE_VENUES`: Binance spot, OKX, Deribit) and of the other datasets' channels
(ingest/live/hourly/dataset_rows.py `CHANNELS`: tickers, bars_1m, liquidations, open_interest, mark_funding,
books; defs/live/landed.py): a
load of each hour by the asset the files feed (`live_trades`, `live_tickers`, ...; one file may feed
several: Deribit's ticker channel) as soon as a file closes, the instruments whose files closed named in
the run's config. A channel of every instrument's events (OKX `SWAP@liquidation-orders`) requests the
hour of each instrument found it carries.

Running by default, like the landing-file sensors of the archives domain: a live load calls no
vendor (it reads local files into the local store), so nothing is spent or rate-limited by leaving
it on, and a stopped sensor would leave the live hours unloaded without anyone noticing (the
freshness policy would, an hour later). The one vendor call: the run of an instrument's first captured
hour of a day also runs `live_trade_id_refill` for its ids before capture (REST by id; none asked when
the slice has no such hole).
"""

import hashlib
import json
import time
from datetime import UTC, datetime, timedelta

import dagster as dg

from marketdata_assets.core import settings
from marketdata_assets.defs.live.landed import asset_name, closed_live_files
from marketdata_assets.defs.live.partitions import partition_hour
from marketdata_assets.ingest.live.hourly.dataset_rows import LIVE_DATASET_NAMES
from marketdata_assets.ingest.live.hourly.load import hour_key, hours_of_day, parse_hour

LOOKBACK = timedelta(hours=48)  # closed files of older hours are not looked at (nor kept in the cursor)
TIME_BUDGET_S = 40  # an evaluation times out at 60 s

live_trades_job = dg.define_asset_job("live_trades_job", selection=dg.AssetSelection.assets("live_trades"))
REFILL = "live_trade_id_refill"  # runs with live_trades' first captured hour of an instrument's day
# what the landing sensor launches: one of these assets a run (each request names it; live_trades' with the
# refill of the ids before capture)
live_hours_job = dg.define_asset_job(
    "live_hours_job",
    selection=dg.AssetSelection.assets(
        "live_trades", REFILL, *(asset_name(dataset) for dataset in LIVE_DATASET_NAMES)
    ),
)


def hour_runs(
    closed: dict[str, dict[str, list[str]]], asset: str = "live_trades", starting=None
) -> list[dg.RunRequest]:
    """One run per landing hour: its partition, the instruments whose files closed (`closed`: hour ->
    instrument key -> the newly closed files, whose names make the run key, so a later segment of the
    same hour is a new run) as the run's `instruments`; with the refill of the ids before capture of
    the instruments whose capture began that hour (`starting`: hour -> keys; `first_captured`)."""
    requests = []
    for hour in sorted(closed):
        files = hashlib.sha1(
            "\n".join(sorted(p for paths in closed[hour].values() for p in paths)).encode()
        ).hexdigest()
        ops = {asset: {"config": {"instruments": sorted(closed[hour])}}}
        began = sorted((starting or {}).get(hour, ()))
        if began:
            ops[REFILL] = {"config": {"instruments": began, "before_capture": True}}
        requests.append(
            dg.RunRequest(
                run_key=f"{asset}:{partition_hour(hour)}:{files[:16]}",
                partition_key=partition_hour(hour),
                asset_selection=[dg.AssetKey(name) for name in ops],
                run_config={"ops": ops},
            )
        )
    return requests


def first_captured(landed: set[tuple[str, str]], closed: dict[str, dict[str, list[str]]]) -> dict:
    """Hour -> the instrument keys of `closed` (hour -> key -> files) whose capture began that hour: no
    closed trade file of theirs (`landed`: (hour, key)) in an earlier hour of its day (from 23Z the day
    before, `hours_of_day`)."""
    out: dict[str, list[str]] = {}
    for hour, keys in closed.items():
        earlier = [h for h in hours_of_day(parse_hour(hour).date()) if h < hour]
        began = [key for key in keys if not any((h, key) in landed for h in earlier)]
        if began:
            out[hour] = began
    return out


@dg.sensor(
    job=live_hours_job,
    minimum_interval_seconds=settings.landing_sensor_interval_s(),
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def live_landing_hours(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    """Each newly closed file of a live asset's channels requests a load of its hour by that asset (one
    run per asset and hour, the instruments whose files closed in its config). Cursor: the closed files
    seen (of the last 48 hours), not the clock: a file closed late (a crash recovered on the next
    start, a second segment after a restart within the hour) requests its hour again, and no file is
    requested twice. The run of an instrument's first captured hour of a day (`first_captured`) also runs
    `live_trade_id_refill` for its ids before capture."""
    seen = set(json.loads(context.cursor)) if context.cursor else set()
    since = hour_key(datetime.now(UTC) - LOOKBACK)
    root = settings.live_landing_dir()
    started = time.monotonic()
    closed: dict[str, dict[str, dict[str, list[str]]]] = {}  # asset -> hour -> key -> files
    current: set[str] = set()  # the files seen or requested now (a file of several assets: all at once)
    listed = closed_live_files(root, since, [])
    for relative, hour, key, asset in listed:
        if relative not in seen and relative not in current:
            if time.monotonic() - started > TIME_BUDGET_S:
                continue  # next tick
            current.add(relative)
        elif relative in seen:
            current.add(relative)
            continue
        closed.setdefault(asset, {}).setdefault(hour, {}).setdefault(key, []).append(relative)
    landed = {(hour, key) for _, hour, key, asset in listed if asset == "live_trades"}
    starting = first_captured(landed, closed.get("live_trades", {}))
    requests = [
        request
        for asset, by_hour in closed.items()
        for request in hour_runs(by_hour, asset, starting if asset == "live_trades" else None)
    ]
    if requests:
        files = sum(len(keys) for by_hour in closed.values() for keys in by_hour.values())
        context.log.info(
            f"{files} newly closed (asset, hour, instrument) file(s) under {root}: {len(requests)} run(s)"
        )
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(sorted(current)))
