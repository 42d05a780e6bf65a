"""A run that dies never blocks the next (#26), when the Dagster storage itself goes: a Postgres
crashed mid-load, a storage stopped before any run or crashed mid-step (one line per failure, exit
within seconds, the next run cleans up), a holder dying while a step waits, and `--verbose`.
Split from test_dead_runs.py (its helpers) so the two halves run on two workers.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from contextlib import closing

import dagster as dg
import pytest

from marketdata_assets.core.sweep import process_tags
from tests.orchestration import test_dead_runs
from tests.orchestration.test_dead_runs import (
    DAGSTER_DB,
    KILLED,
    MARKETDATA,
    REPO,
    WAITERS,
    Proc,
    claims_of,
    marketdata,
    replay_files,
    slot_taken_by,
)

run_env = test_dead_runs.run_env  # the fixture, shared


def test_a_postgres_crash_mid_load_is_one_line_per_failure_and_the_next_run_loads_the_rest(private_postgres,
                                                                                          tmp_path, monkeypatch):
    """Dagster's storage and the market database on one server (as in the local stack), crashed while
    the fifth of five files loads: the first four committed, the command says so and exits within
    seconds; after a restart the next command fails the dead run, frees its slot, loads the fifth."""
    from marketdata_assets.ingest.minute_bars import loader
    from marketdata_assets.stores.timescale import ledger

    pg = private_postgres
    pg.create_database("dagster")
    pg.create_database("market", extension=True)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "instance" / "dagster.yaml", home / "dagster.yaml")
    (tmp_path / "state").mkdir()
    server = {"HOST": "127.0.0.1", "PORT": str(pg.port), "USER": "postgres", "PASSWORD": ""}
    env = {**os.environ, "DAGSTER_HOME": str(home), "MARKETDATA_STATE_DIR": str(tmp_path / "state"),
           "DAGSTER_PG_DB": "dagster", "TIMESCALE_DB": "market", "PYTHONUNBUFFERED": "1",
           **{f"DAGSTER_PG_{k}": v for k, v in server.items()}, **{f"TIMESCALE_{k}": v for k, v in server.items()}}
    csv = replay_files(tmp_path / "csv")
    last = min(csv.iterdir(), key=lambda path: path.stat().st_size)  # loaded last (largest first, one worker)
    blocker, watcher = pg.connect("market"), pg.connect("market")  # both die with the server
    with closing(blocker), closing(watcher):
        blocker.autocommit = False
        ledger.ensure_loader_tables(blocker)
        blocker.commit()
        blocker.execute("SELECT 1")  # a transaction left open: record_index's block is a savepoint in it
        loader.record_index(blocker, last.name, last.stat(), None, None, [], None)  # uncommitted: the load waits
        load = marketdata(env, "load-minute-bars", "--data-dir", str(csv), "--workers", "1")
        try:
            deadline = time.monotonic() + 120
            while not watcher.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                      "AND datname = 'market'").fetchone()[0]:
                assert time.monotonic() < deadline and load.popen.poll() is None, load.output
                time.sleep(0.1)
            committed = watcher.execute("SELECT count(*) FROM stock_1min_qfq").fetchone()[0]
            crashed = time.monotonic()
            pg.stop("immediate")
            code = load.wait(timeout=60)
            print(f"the command exited {time.monotonic() - crashed:.1f} s after the crash:\n{load.output}")
        finally:
            if load.popen.poll() is None:
                load.popen.kill()
    assert code == 3, load.output
    failures = [line for line in load.lines if line.startswith("FAILED")]
    assert len(failures) == 2, load.output
    assert failures[0].startswith("FAILED: minute bars 2025-03..2025-04: step stock_1min_qfq (partitions "
                                  f"2025-03-01..2025-04-01): TimescaleDB at 127.0.0.1:{pg.port} (database market")
    assert f"{committed:,} rows of 4 files were committed before, 1 of 5 files not finished" in failures[0]
    assert failures[1].startswith(f"FAILED: Dagster's storage (Postgres) at 127.0.0.1:{pg.port} (database dagster")
    assert "Traceback" not in load.output and "Retrying" not in load.output
    pg.start()
    monkeypatch.setenv("DAGSTER_PG_PORT", str(pg.port))
    monkeypatch.setenv("DAGSTER_PG_DB", "dagster")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    following = marketdata(env, "load-minute-bars", "--data-dir", str(csv), "--workers", "1")
    assert following.wait(timeout=180) == 0, following.output
    assert "cleaned up: 1 earlier run found dead (process gone) and marked failed" in following.output
    assert "1 pool slot freed (timescaledb 1)" in following.output
    with pg.connect("market") as conn:
        rows, distinct = conn.execute("SELECT count(*), count(DISTINCT (code, time)) FROM stock_1min_qfq").fetchone()
    assert rows == distinct > committed
    assert f"{rows - committed:,} rows" in following.output  # exactly the fifth file's
    with dg.DagsterInstance.get() as instance:
        (dead,) = [r for r in instance.get_runs() if r.tags.get("marketdata/pid") == str(load.popen.pid)]
        assert dead.status == dg.DagsterRunStatus.FAILURE
        assert claims_of(instance, "timescaledb") == ([], [])


@pytest.mark.parametrize("launcher_args", [["marketdata", "load-minute-bars"],
                                           [sys.executable, "-m", "marketdata_assets.apps.demo", "run", "--no-ui"]],
                         ids=["marketdata", "make-run"])
def test_a_stopped_dagster_storage_is_one_line_and_exit_3_before_any_run(run_env, tmp_path, launcher_args):
    from tests.conftest import free_port

    command = [str(MARKETDATA), *launcher_args[1:]] if launcher_args[0] == "marketdata" else launcher_args
    if launcher_args[0] == "marketdata":
        command += ["--data-dir", str(replay_files(tmp_path / "csv"))]
    port = free_port()  # nothing listens there
    started = time.monotonic()
    proc = Proc(command, {**run_env, "DAGSTER_PG_PORT": str(port)})
    assert proc.wait(timeout=120) == 3, proc.output
    print(f"{launcher_args[-1]}: exit 3 after {time.monotonic() - started:.1f} s (start-up included)")
    (line,) = [line for line in proc.lines if "FAILED" in line]
    assert f"FAILED: Dagster's storage (Postgres) at 127.0.0.1:{port} (database {DAGSTER_DB}" in line
    assert "Connection refused" in line and "make stack-up" in line
    assert "Traceback" not in proc.output and "Retrying" not in proc.output


@pytest.mark.parametrize("pool", ["mongodb", "clickhouse", "tushare"])
def test_dagster_storage_crashed_mid_step_is_one_line_and_the_next_run_cleans_up(run_env, tmp_path, monkeypatch,
                                                                                 private_postgres, pool):
    """The other stores' steps when only Dagster's Postgres crashes under them: the command ends with
    one line as soon as the run needs its storage; after the restart the next run fails the dead one
    and frees its slot."""
    pg = private_postgres
    pg.create_database("dagster")
    env = {**run_env, "DAGSTER_PG_HOST": "127.0.0.1", "DAGSTER_PG_PORT": str(pg.port), "DAGSTER_PG_USER": "postgres",
           "DAGSTER_PG_PASSWORD": "", "DAGSTER_PG_DB": "dagster"}
    for key in ("DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_USER", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_DB"):
        monkeypatch.setenv(key, env[key])
    command, held = KILLED[pool]
    with dg.DagsterInstance.get() as instance, contextlib.ExitStack() as hold:
        changed = hold.enter_context(held(env))
        victim = command({**env, **changed}, tmp_path)
        try:
            dead_run = slot_taken_by(instance, pool, victim)
            pg.stop("immediate")
        except BaseException:
            victim.popen.kill()
            raise
        if pool != "mongodb":  # a lock: released, the step goes on (the slow MongoDB proxy stays up, or the
            hold.close()       # import would fail on its closed connection before it needs the storage)
        crashed = time.monotonic()  # the step goes on now, until the run needs its storage
        try:
            code = victim.wait(timeout=120)
        finally:
            if victim.popen.poll() is None:
                victim.popen.kill()
        print(f"{pool}: exit {code} {time.monotonic() - crashed:.1f} s after the step was let go:\n{victim.output}")
        assert code == 3, victim.output
        storage_lines = [line for line in victim.lines if line.startswith("FAILED: Dagster's storage (Postgres) at "
                                                                          f"127.0.0.1:{pg.port} (database dagster")]
        assert len(storage_lines) == 1 and f"The run {dead_run[:8]}" in storage_lines[0], victim.output
        assert [line for line in victim.lines if line.startswith("FAILED")] == storage_lines  # the one cause
        assert "Traceback" not in victim.output and "Retrying" not in victim.output
        pg.start()
        following = command(env, tmp_path)
        assert following.wait(timeout=180) == 0, following.output
        assert f"marked failed: run {dead_run[:8]}" in following.output
        assert f"1 pool slot freed ({pool} 1)" in following.output
        assert instance.get_run_by_id(dead_run).status == dg.DagsterRunStatus.FAILURE
        assert claims_of(instance, pool) == ([], [])


def test_a_holder_that_dies_while_a_step_waits_is_cleaned_up_and_the_step_runs(run_env, tmp_path):
    from marketdata_assets.core.processes import ProcessRef, process_start

    holder_process = subprocess.Popen(["sleep", "600"])
    try:
        ref = ProcessRef(socket.gethostname(), holder_process.pid, process_start(holder_process.pid))
        with dg.DagsterInstance.get() as instance:
            holder = str(uuid.uuid4())
            instance.run_storage.add_run(dg.DagsterRun(job_name="holder", run_id=holder,
                                                       status=dg.DagsterRunStatus.STARTED,
                                                       tags=process_tags(holder, "a load elsewhere", ref)))
            instance.event_log_storage.set_concurrency_slots("timescaledb", 1)
            assert instance.event_log_storage.claim_concurrency_slot("timescaledb", holder, "step").is_claimed
            waiter = WAITERS["timescaledb"](run_env, tmp_path)
            line = waiter.wait_for_line("waits for a slot of pool 'timescaledb'")
            assert f"run {holder[:8]} (a load elsewhere)" in line and f"process {ref.pid} on this host alive" in line
            holder_process.kill()
            holder_process.wait()
            assert waiter.wait(timeout=120) == 0, waiter.output
            assert f"marked failed: run {holder[:8]} (a load elsewhere); 1 pool slot freed (timescaledb 1)" in (
                waiter.output)
            assert "[ok] minute bars" in waiter.output
            assert instance.get_run_by_id(holder).status == dg.DagsterRunStatus.FAILURE
    finally:
        holder_process.kill()


def test_verbose_shows_what_dagster_says_about_a_stopped_storage(run_env, tmp_path):
    from tests.conftest import free_port

    port = free_port()
    proc = marketdata({**run_env, "DAGSTER_PG_PORT": str(port)}, "--verbose", "load-minute-bars", "--data-dir",
                      str(replay_files(tmp_path / "csv")))
    assert proc.wait(timeout=120) not in (0, 3), proc.output
    assert "Retrying failed database connection" in proc.output and "Traceback" in proc.output
