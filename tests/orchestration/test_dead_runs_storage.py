"""A run that dies never blocks the next (#26): a run SIGKILLed mid-step, and the Dagster storage
itself going: a Postgres crashed mid-load, a storage stopped before any run or crashed mid-step (one
line per failure, exit within seconds, the next run cleans up), and `--verbose`.
Each store's scenario is one sequence: a run killed mid-step (left STARTED, holding the pool's only
slot); the next run fails it, frees its slot and runs, until the storage crashes under it; after the
restart the run after that cleans up in turn and runs to the end. One private Postgres serves the
module (each test: databases of its own). Split from test_dead_runs.py (its helpers) so the two halves
run on two workers.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path

import dagster as dg
import pytest

from marketdata_assets.orchestration.instance import command_instance
from tests.orchestration import test_dead_runs
from tests.orchestration.test_dead_runs import (
    DAGSTER_DB,
    KILLED,
    MARKETDATA,
    REPO,
    Proc,
    claims_of,
    marketdata,
    replay_files,
    slot_taken_by,
    timescale_held,
)

run_env = test_dead_runs.run_env  # the fixture, shared (one per module)


@pytest.fixture(scope="module")
def module_postgres():
    """A PostgreSQL + TimescaleDB server of this module, which its tests stop, crash and restart."""
    from tests.support.private_postgres import PrivatePostgres

    # Not under pytest's tmp dir: its folders are root's alone, and the server runs as `postgres`.
    server = PrivatePostgres(Path(tempfile.mkdtemp(prefix="marketdata-private-pg-"))).init()
    yield server
    server.close()


@pytest.fixture
def pg(module_postgres):
    """The module's server, up (a test that failed while it was down left it stopped)."""
    if not module_postgres.running():
        module_postgres.start()
    return module_postgres


def kill_mid_step(instance: dg.DagsterInstance, pool: str, victim: Proc) -> str:
    """SIGKILL `victim` once its step holds the pool's slot (held mid-step): its run id. What #26 found:
    the killed run stays STARTED and keeps its slot (the pool's only one here)."""
    try:
        dead_run = slot_taken_by(instance, pool, victim)
    finally:
        victim.popen.kill()
    victim.wait()
    assert instance.get_run_by_id(dead_run).status == dg.DagsterRunStatus.STARTED
    assert claims_of(instance, pool)[0] == [dead_run]
    return dead_run


def cleaned_up(output: str, dead_run: str, pool: str) -> None:
    """The next run's first words: the dead run failed, its slot freed."""
    assert (
        f"cleaned up: 1 earlier run found dead (process gone) and marked failed: run {dead_run[:8]}" in output
    ), output
    assert f"1 pool slot freed ({pool} 1)" in output, output


def test_a_killed_load_is_cleaned_up_then_postgres_crash_mid_load_is_one_line_per_failure_next_run_loads_rest(
    pg, tmp_path, monkeypatch
):
    """Dagster's storage and the market database on one server (as in the local stack). A load SIGKILLed
    in its first step (held at the DDL advisory lock) stays STARTED with the pool's slot; the next load
    fails it, frees the slot and runs, until the server crashes while the fifth of five files loads: the
    first four committed, the command says so and exits within seconds; after a restart the next command
    fails the dead run, frees its slot, loads the fifth."""
    from marketdata_assets.ingest.minute_bars import landing, loader
    from marketdata_assets.stores.timescale import ledger

    pg.create_database("dagster")
    pg.create_database("market", extension=True)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "instance" / "dagster.yaml", home / "dagster.yaml")
    (tmp_path / "state").mkdir()
    server = {"HOST": "127.0.0.1", "PORT": str(pg.port), "USER": "postgres", "PASSWORD": ""}
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "MARKETDATA_STATE_DIR": str(tmp_path / "state"),
        "DAGSTER_PG_DB": "dagster",
        "TIMESCALE_DB": "market",
        "PYTHONUNBUFFERED": "1",
        **{f"DAGSTER_PG_{k}": v for k, v in server.items()},
        **{f"TIMESCALE_{k}": v for k, v in server.items()},
    }
    monkeypatch.setenv("DAGSTER_PG_PORT", str(pg.port))
    monkeypatch.setenv("DAGSTER_PG_DB", "dagster")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    csv = replay_files(tmp_path / "csv")
    last = landing.load_order(csv.iterdir())[-1]  # loaded last (one worker)
    with command_instance() as instance, timescale_held(env):
        killed = kill_mid_step(
            instance,
            "timescaledb",
            marketdata(env, "load-minute-bars", "--data-dir", str(csv), "--workers", "1"),
        )
    blocker, watcher = pg.connect("market"), pg.connect("market")  # both die with the server
    with closing(blocker), closing(watcher):
        blocker.autocommit = False
        ledger.ensure_loader_tables(blocker)
        blocker.commit()
        blocker.execute("SELECT 1")  # a transaction left open: record_index's block is a savepoint in it
        loader.record_index(
            blocker, last.name, last.stat(), None, None, [], None
        )  # uncommitted: the load waits
        load = marketdata(env, "load-minute-bars", "--data-dir", str(csv), "--workers", "1")
        try:
            deadline = time.monotonic() + 120
            while not watcher.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND wait_event <> 'advisory' AND datname = 'market'"
            ).fetchone()[0]:
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
    cleaned_up(load.output, killed, "timescaledb")  # the killed load's slot: freed by the next, which ran
    assert code == 3, load.output
    failures = [line for line in load.lines if line.startswith("FAILED")]
    assert len(failures) == 2, load.output
    assert failures[0].startswith(
        "FAILED: minute bars 2025-03..2025-04: step stock_1min_qfq (partitions "
        f"2025-03-01..2025-04-01): TimescaleDB at 127.0.0.1:{pg.port} (database market"
    )
    assert f"{committed:,} rows of 4 files were committed before, 1 of 5 files not finished" in failures[0]
    assert failures[1].startswith(
        f"FAILED: Dagster's storage (Postgres) at 127.0.0.1:{pg.port} (database dagster"
    )
    assert "Traceback" not in load.output and "Retrying" not in load.output
    pg.start()
    following = marketdata(env, "load-minute-bars", "--data-dir", str(csv), "--workers", "1")
    assert following.wait(timeout=180) == 0, following.output
    with command_instance() as instance:
        (dead,) = [r for r in instance.get_runs() if r.tags.get("marketdata/pid") == str(load.popen.pid)]
        cleaned_up(following.output, dead.run_id, "timescaledb")
        assert "Traceback" not in following.output
        with pg.connect("market") as conn:
            rows, distinct = conn.execute(
                "SELECT count(*), count(DISTINCT (code, time)) FROM stock_1min_qfq"
            ).fetchone()
        assert rows == distinct > committed
        assert f"{rows - committed:,} rows" in following.output  # exactly the fifth file's
        assert dead.status == dg.DagsterRunStatus.FAILURE
        assert instance.get_run_by_id(killed).status == dg.DagsterRunStatus.FAILURE
        assert claims_of(instance, "timescaledb") == ([], [])


@pytest.mark.parametrize(
    "launcher_args",
    [
        ["marketdata", "load-minute-bars"],
        [sys.executable, "-m", "marketdata_assets.apps.demo", "run", "--no-ui"],
    ],
    ids=["marketdata", "make-run"],
)
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


# The minute-bar load's (timescaledb) sequence is the test above; tushare's step is a ClickHouse step like
# tick_store (the same embedded store left open by a dead process), launched by the `marketdata` CLI like
# the import and the load (the same startup sweep), freed by the same sweep with another pool name.
@pytest.mark.parametrize("pool", ["mongodb", "clickhouse"])
def test_a_run_killed_mid_step_is_freed_by_the_next_a_storage_crash_ends_in_one_line_and_the_next_cleans_up(
    run_env, tmp_path, monkeypatch, pg, pool
):
    """The other stores' steps. A run SIGKILLed mid-step stays STARTED with the pool's only slot; the next
    run fails it, frees its slot and runs its step, until only Dagster's Postgres crashes under it: the
    command ends with one line as soon as the run needs its storage; after the restart the run after
    that fails the dead one, frees its slot and runs to the end."""
    database = pg.create_database(f"dagster_{pool}")
    env = {
        **run_env,
        "DAGSTER_PG_HOST": "127.0.0.1",
        "DAGSTER_PG_PORT": str(pg.port),
        "DAGSTER_PG_USER": "postgres",
        "DAGSTER_PG_PASSWORD": "",
        "DAGSTER_PG_DB": database,
    }
    for key in (
        "DAGSTER_PG_HOST",
        "DAGSTER_PG_PORT",
        "DAGSTER_PG_USER",
        "DAGSTER_PG_PASSWORD",
        "DAGSTER_PG_DB",
    ):
        monkeypatch.setenv(key, env[key])
    command, held = KILLED[pool]
    with command_instance() as instance, contextlib.ExitStack() as hold:
        changed = hold.enter_context(held(env))
        killed = kill_mid_step(instance, pool, command({**env, **changed}, tmp_path))
        victim = command({**env, **changed}, tmp_path)
        try:
            dead_run = slot_taken_by(instance, pool, victim)  # the killed run's slot: freed, taken
            pg.stop("immediate")
        except BaseException:
            victim.popen.kill()
            raise
        if pool != "mongodb":  # a lock: released, the step goes on (the slow MongoDB proxy stays up, or the
            hold.close()  # import would fail on its closed connection before it needs the storage)
        crashed = time.monotonic()  # the step goes on now, until the run needs its storage
        try:
            code = victim.wait(timeout=120)
        finally:
            if victim.popen.poll() is None:
                victim.popen.kill()
        print(
            f"{pool}: exit {code} {time.monotonic() - crashed:.1f} s after the step was let "
            f"go:\n{victim.output}"
        )
        cleaned_up(victim.output, killed, pool)
        assert code == 3, victim.output
        storage_lines = [
            line
            for line in victim.lines
            if line.startswith(
                f"FAILED: Dagster's storage (Postgres) at 127.0.0.1:{pg.port} (database {database}"
            )
        ]
        assert len(storage_lines) == 1 and f"The run {dead_run[:8]}" in storage_lines[0], victim.output
        assert [line for line in victim.lines if line.startswith("FAILED")] == storage_lines  # the one cause
        assert "Traceback" not in victim.output and "Retrying" not in victim.output
        pg.start()
        hold.close()
        following = command(env, tmp_path)
        assert following.wait(timeout=180) == 0, following.output
        cleaned_up(following.output, dead_run, pool)
        assert "Traceback" not in following.output
        assert instance.get_run_by_id(killed).status == dg.DagsterRunStatus.FAILURE
        assert instance.get_run_by_id(dead_run).status == dg.DagsterRunStatus.FAILURE
        assert claims_of(instance, pool) == ([], [])


def test_verbose_shows_what_dagster_says_about_a_stopped_storage(run_env, tmp_path):
    from tests.conftest import free_port

    port = free_port()
    proc = marketdata(
        {**run_env, "DAGSTER_PG_PORT": str(port)},
        "--verbose",
        "load-minute-bars",
        "--data-dir",
        str(replay_files(tmp_path / "csv")),
    )
    assert proc.wait(timeout=120) not in (0, 3), proc.output
    assert "Retrying failed database connection" in proc.output and "Traceback" in proc.output
