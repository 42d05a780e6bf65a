"""The sweep's judgement of a run's process (core/processes, core/sweep) and the dead_run_sweep sensor
on a real Dagster instance (Postgres): dead runs of this host failed and their slots freed; a live
run, a run of another host, a re-execution carrying its parent's tags and a finished run left alone."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import uuid
from pathlib import Path

import dagster as dg
import pytest

from marketdata_assets.core.processes import ProcessRef, age, process_start
from marketdata_assets.core.sweep import RUN_TAG, RunView, dead_runs, process_tags, swept_line
from tests.conftest import recreate_database, worker_name

REPO = Path(__file__).resolve().parents[2]
DAGSTER_DB = worker_name("dagster_sweep_test")


def finished_process() -> ProcessRef:
    """A real process that has exited (its pid is free again)."""
    child = subprocess.Popen(["true"])
    child.wait()
    return ProcessRef(socket.gethostname(), child.pid, "")


def test_a_process_is_alive_only_with_its_own_start_time():
    me = ProcessRef.current()
    assert me.state() == "alive" and me.start == process_start(os.getpid()) != ""
    assert ProcessRef(me.host, me.pid, me.start + "0").state() == "gone"  # the pid reused by another process
    assert ProcessRef(me.host, me.pid, "other-boot:" + me.start.split(":")[1]).state() == "gone"  # a reboot
    assert ProcessRef("another-host", me.pid, me.start).state() == "elsewhere"
    gone = finished_process()
    assert gone.state() == "gone" and process_start(gone.pid) is None
    assert [age(5), age(300), age(7500), age(3 * 86400)] == ["5 s", "5 min", "2 h 5 min", "3 days"]


def test_dead_runs_are_unfinished_runs_of_this_host_whose_own_process_is_gone():
    gone = finished_process()
    dead = RunView("a" * 36, "STARTED", process_tags("a" * 36, "minute bars", gone))
    live = RunView("b" * 36, "STARTED", process_tags("b" * 36, "x"))
    elsewhere = RunView("c" * 36, "STARTED", process_tags("c" * 36, "x", ProcessRef("other", gone.pid, "")))
    copied = RunView(
        "d" * 36, "STARTED", process_tags("a" * 36, "x", gone)
    )  # a re-execution: its parent's tags
    ended = RunView("e" * 36, "FAILURE", process_tags("e" * 36, "x", gone))
    assert dead_runs([dead, live, elsewhere, copied, ended]) == [dead]
    assert swept_line([dead], {"timescaledb": 1}) == (
        "cleaned up: 1 earlier run found dead (process gone) and marked "
        "failed: run aaaaaaaa (minute bars); 1 pool slot freed "
        "(timescaledb 1)"
    )
    assert swept_line([], {}) == ""


@pytest.fixture
def instance(tmp_path, monkeypatch):
    recreate_database(DAGSTER_DB)
    shutil.copy(REPO / "instance" / "dagster.yaml", tmp_path / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    monkeypatch.setenv("DAGSTER_PG_DB", DAGSTER_DB)
    with dg.DagsterInstance.get() as instance:
        yield instance


def add_run(instance, status: dg.DagsterRunStatus, tags: dict, run_id: str | None = None) -> str:
    run_id = run_id or str(uuid.uuid4())
    instance.run_storage.add_run(dg.DagsterRun(job_name="job", run_id=run_id, status=status, tags=tags))
    return run_id


def test_the_sensor_fails_dead_runs_and_frees_slots_no_run_can_use(instance):
    from marketdata_assets.orchestration.runs import dead_run_sweep

    storage = instance.event_log_storage
    storage.set_concurrency_slots("timescaledb", 3)
    storage.set_concurrency_slots("mongodb", 1)
    gone = finished_process()
    dead = str(uuid.uuid4())
    add_run(instance, dg.DagsterRunStatus.STARTED, process_tags(dead, "minute bars", gone), dead)
    live = str(uuid.uuid4())
    add_run(instance, dg.DagsterRunStatus.STARTED, process_tags(live, "live"), live)
    other = str(uuid.uuid4())
    add_run(
        instance,
        dg.DagsterRunStatus.STARTED,
        process_tags(other, "x", ProcessRef("other-host", gone.pid, "")),
        other,
    )
    copied = add_run(instance, dg.DagsterRunStatus.STARTED, {**process_tags(dead, "x", gone)})
    ended = add_run(instance, dg.DagsterRunStatus.SUCCESS, {})  # finished without freeing its slot
    for run_id, pool in (
        (dead, "timescaledb"),
        (live, "timescaledb"),
        (other, "timescaledb"),
        (ended, "mongodb"),
    ):
        assert storage.claim_concurrency_slot(pool, run_id, "step").is_claimed
    assert copied != dead and instance.get_run_by_id(copied).tags[RUN_TAG] == dead

    result = dead_run_sweep(dg.build_sensor_context(instance=instance))
    assert isinstance(result, dg.SkipReason)
    assert result.skip_message == (
        "cleaned up: 1 earlier run found dead (process gone) and marked failed: run "
        f"{dead[:8]} (minute bars); 2 pool slots freed (mongodb 1, timescaledb 1)"
    )
    status = {run_id: instance.get_run_by_id(run_id).status for run_id in (dead, live, other, copied, ended)}
    assert status == {
        dead: dg.DagsterRunStatus.FAILURE,
        live: dg.DagsterRunStatus.STARTED,
        other: dg.DagsterRunStatus.STARTED,
        copied: dg.DagsterRunStatus.STARTED,
        ended: dg.DagsterRunStatus.SUCCESS,
    }
    holders = {s.run_id for s in storage.get_concurrency_info("timescaledb").claimed_slots}
    assert holders == {live, other} and not storage.get_concurrency_info("mongodb").claimed_slots
    failure = instance.all_logs(dead, of_type=dg.DagsterEventType.RUN_FAILURE)[0]
    assert f"the process that ran it ({gone.pid} on {gone.host}) no longer exists" in failure.message
    assert dead_run_sweep(dg.build_sensor_context(instance=instance)).skip_message == (
        "no dead runs, no stray pool slots"
    )
