"""Runs that died: found, marked failed and their pool slots freed, with Dagster's own APIs.

Runs launched in this project's processes (marketdata_assets.apps.launch) record their process in tags;
Dagster's run monitoring does not watch them (it only asks a run launcher, and the default one
cannot tell whether a run worker lives). `sweep()` runs at the start of every `marketdata` command,
of `make run`, and on the daemon's `dead_run_sweep` sensor: it fails the unfinished runs of this
host whose process is gone (`report_run_failed`) and frees the slots they hold, and those of runs
that finished without freeing theirs (`free_concurrency_slots_for_run`). The decisions are in
core/sweep.py; `storage_reachable()` tells a stopped Dagster storage in seconds.
"""

from __future__ import annotations

import os
import socket
from collections import Counter
from pathlib import Path

import dagster as dg
import psycopg
import yaml

from marketdata_assets.core import settings
from marketdata_assets.core.errors import StoreUnavailable, scrub
from marketdata_assets.core.sweep import HOST_TAG, UNFINISHED, RunView, dead_runs, failure_message, swept_line

FINISHED = (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)


def view(record: dg.RunRecord) -> RunView:
    run = record.dagster_run
    started = record.start_time or record.create_timestamp.timestamp()
    return RunView(run.run_id, run.status.value, dict(run.tags), started)


def slots_by_run(instance: dg.DagsterInstance, pools: list[str] | None = None) -> dict[str, Counter]:
    """Claimed pool slots: run id -> Counter(pool -> slots)."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return {}
    held: dict[str, Counter] = {}
    for pool, info in storage.get_concurrency_infos(pools or sorted(storage.get_concurrency_keys())).items():
        for slot in info.claimed_slots:
            held.setdefault(slot.run_id, Counter())[pool] += 1
    return held


def sweep(
    instance: dg.DagsterInstance, pools: list[str] | None = None
) -> tuple[list[RunView], dict[str, int]]:
    """Fail this host's unfinished runs whose process is gone; free the slots of every run that can no
    longer use them. Returns (runs failed, slots freed per pool)."""
    records = instance.get_run_records(
        dg.RunsFilter(
            statuses=[dg.DagsterRunStatus(s) for s in UNFINISHED], tags={HOST_TAG: socket.gethostname()}
        )
    )
    dead = dead_runs([view(r) for r in records])
    held = slots_by_run(instance, pools)
    for run in dead:
        current = instance.get_run_by_id(run.run_id)
        if current is not None and current.status.value in UNFINISHED:
            instance.report_run_failed(current, failure_message(run))
    freeing = {run.run_id for run in dead}
    others = [run_id for run_id in held if run_id not in freeing]
    if others:  # slots of runs that ended (or were deleted) without freeing them
        live = {
            r.dagster_run.run_id
            for r in instance.get_run_records(dg.RunsFilter(run_ids=others))
            if r.dagster_run.status not in FINISHED
        }
        freeing |= {run_id for run_id in others if run_id not in live}
    freed: Counter = Counter()
    storage = instance.event_log_storage
    for run_id in freeing:
        if storage.supports_global_concurrency_limits:
            storage.free_concurrency_slots_for_run(run_id)
        freed.update(held.get(run_id, Counter()))
    return dead, dict(freed)


def holders(instance: dg.DagsterInstance, pool: str) -> tuple[int, list[RunView]]:
    """(the pool's limit, the runs holding its slots)."""
    info = instance.event_log_storage.get_concurrency_info(pool)
    run_ids = list(dict.fromkeys(slot.run_id for slot in info.claimed_slots))
    records = instance.get_run_records(dg.RunsFilter(run_ids=run_ids)) if run_ids else []
    by_id = {r.dagster_run.run_id: view(r) for r in records}
    return info.limit or info.slot_count, [
        by_id.get(run_id, RunView(run_id, "UNKNOWN")) for run_id in run_ids
    ]


def storage_address() -> str:
    return (
        f"{settings.get('DAGSTER_PG_HOST')}:{settings.get('DAGSTER_PG_PORT')} "
        f"(database {settings.get('DAGSTER_PG_DB')}, user {settings.get('DAGSTER_PG_USER')})"
    )


def storage_unavailable(reason: str) -> StoreUnavailable:
    return StoreUnavailable(
        "Dagster's storage (Postgres)",
        storage_address(),
        reason,
        "Start it with `make stack-up` (or set DAGSTER_PG_HOST/DAGSTER_PG_PORT to a running server), then "
        "re-run the same command: it first marks a run stopped by this failed and frees its pool slots; what "
        "was committed is skipped.",
    )


def stores_in_postgres(home: str | None = None) -> bool:
    """Whether the Dagster instance of `home` (DAGSTER_HOME) keeps its runs in Postgres, as the project's
    instance/dagster.yaml does; one of the user's own (SQLite, say) is not checked against Postgres."""
    home = home if home is not None else os.environ.get("DAGSTER_HOME", "")
    path = Path(home) / "dagster.yaml"
    if not home or not path.is_file():
        return True  # the project's instance, once made
    try:
        config = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return True  # Dagster says what is wrong with it when it opens it
    if "postgres" in (config.get("storage") or {}):
        return True
    storages = (config.get(k) or {} for k in ("run_storage", "event_log_storage", "schedule_storage"))
    return any(str(s.get("module", "")).startswith("dagster_postgres") for s in storages)


def storage_reachable(timeout_s: int = 3) -> StoreUnavailable | None:
    """None when Dagster's Postgres answers now, or the instance stores elsewhere (`stores_in_postgres`);
    else the error to show (no password in it)."""
    if not stores_in_postgres():
        return None
    password = settings.get("DAGSTER_PG_PASSWORD")
    try:
        psycopg.connect(
            host=settings.get("DAGSTER_PG_HOST"),
            port=settings.get("DAGSTER_PG_PORT"),
            user=settings.get("DAGSTER_PG_USER"),
            password=password or None,
            dbname=settings.get("DAGSTER_PG_DB"),
            connect_timeout=timeout_s,
        ).close()
    except psycopg.Error as error:
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        return storage_unavailable(scrub(lines[0] if lines else type(error).__name__, password))
    return None


@dg.sensor(
    name="dead_run_sweep",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Marks failed the runs of this host whose process is gone and frees pool slots "
    "no run can use any more (marketdata_assets.orchestration.runs.sweep).",
)
def dead_run_sweep(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    line = swept_line(*sweep(context.instance))
    if line:
        context.log.info(line)
    return dg.SkipReason(line or "no dead runs, no stray pool slots")
