"""A run that dies never blocks the next (#26): real `marketdata` / launcher processes, real Postgres.

- a waiter blocked by a live holder says which pool and run hold it, waits at ~0% CPU and, when the
  holder's process dies, cleans it up and runs (the minute-bar load);
- a waiter stops on SIGTERM leaving nothing claimed: through the launcher (`make run`'s path, the
  ClickHouse pool) and through the `marketdata` CLI (a vendor pool, in demo mode);
- (test_dead_runs_storage.py, using these helpers) a run SIGKILLed mid-step is failed and its slot
  freed by the next run, which then runs; a Postgres (Dagster storage and market database) crashed
  mid-load: one line per failure, exit within seconds; after a restart the next run cleans up and loads
  exactly the rest; the storage stopped or crashed under the other pools.
Steps are held mid-step by what the stores themselves wait on (the DDL advisory lock of the
minute-bar load, the embedded ClickHouse directory lock), never by sleeps. The tests of a module
share one Dagster instance and its stores (each test uses pools of its own, and ends its holders),
which they read and poll through the commands' own instance (`command_instance`: one kept connection;
Dagster's default opens one a query, ~30 ms of CPU a turn of `slot_taken_by`'s 0.1 s poll).
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import dagster as dg
import psycopg
import pymongo
import pytest

from marketdata_assets.core import settings
from marketdata_assets.core.sweep import process_tags
from marketdata_assets.orchestration.instance import command_instance
from tests.conftest import recreate_database, worker_name
from tests.support.fault_proxy import FaultProxy

REPO = Path(__file__).resolve().parents[2]
MARKETDATA = Path(sys.executable).parent / "marketdata"
DAGSTER_DB = worker_name("dagster_dead_runs_test")
MARKET_DB = worker_name("marketdata_dead_runs_test")
MONTHS = [date(2025, 3, 1), date(2025, 4, 1)]


@pytest.fixture(scope="module")
def run_env(tmp_path_factory):
    """A Dagster instance and stores of this module alone (on the stack's servers)."""
    recreate_database(DAGSTER_DB)
    recreate_database(MARKET_DB, extension=True)
    with pymongo.MongoClient(
        settings.get("MONGODB_URI"), **settings.mongo_auth(), serverSelectionTimeoutMS=5000
    ) as client:
        for suffix in ("regular", "super"):
            client.drop_database(f"{MARKET_DB}_{suffix}")
    tmp_path = tmp_path_factory.mktemp("dead_runs")
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "instance" / "dagster.yaml", home / "dagster.yaml")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "DAGSTER_PG_DB": DAGSTER_DB,
        "TIMESCALE_DB": MARKET_DB,
        "ALPHA_DB_REGULAR": f"{MARKET_DB}_regular",
        "ALPHA_DB_SUPER": f"{MARKET_DB}_super",
        "MARKETDATA_STATE_DIR": str(tmp_path / "state"),
        "CLICKHOUSE_DSN": f"chdb://{tmp_path / 'ch' / 'data'}",
        "PYTHONUNBUFFERED": "1",
    }
    (tmp_path / "state").mkdir()
    with pytest.MonkeyPatch.context() as monkeypatch:
        for key in ("DAGSTER_HOME", "DAGSTER_PG_DB", "DAGSTER_PG_PORT"):
            monkeypatch.setenv(key, env[key])
        yield env


class Proc:
    """A real process whose stderr/stdout lines are collected as they come."""

    def __init__(self, args: list[str], env: dict):
        self.popen = subprocess.Popen(
            args,
            env=env,
            cwd=env["MARKETDATA_STATE_DIR"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._readers = [
            threading.Thread(target=self._read, args=(stream,), daemon=True)
            for stream in (self.popen.stdout, self.popen.stderr)
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream) -> None:
        for line in stream:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()

    def wait_for_line(self, text: str, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = next((line for line in self.lines if text in line), None)
                if found is not None:
                    return found
                if self.popen.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"no line with {text!r}; output:\n" + "\n".join(self.lines))
                self._changed.wait(0.2)

    def wait(self, timeout: float = 120) -> int:
        code = self.popen.wait(timeout=timeout)
        # the reader threads drain the pipes: at once when they close with the process, else for 0.1 s
        # (Dagster's `tail -F` mirrors of a step's output, which hold them, outlive a killed process by ~1 s)
        drained = time.monotonic() + 0.1
        for reader in self._readers:
            reader.join(timeout=max(0.0, drained - time.monotonic()))
        return code

    @property
    def output(self) -> str:
        return "\n".join(self.lines)


def marketdata(env: dict, *args: str) -> Proc:
    return Proc([str(MARKETDATA), *args], env)


def launcher(env: dict, *assets: str) -> Proc:
    return Proc([sys.executable, str(REPO / "tests" / "support" / "launch_assets.py"), *assets], env)


_REPLAYS: list[
    Path
] = []  # the replay CSVs of MONTHS, written once in this process (seconds of CPU each time)


def replay_files(directory: Path) -> Path:
    """The five replay minute-bar files of MONTHS in `directory` (a copy of this process's one set)."""
    from marketdata_assets.apps.main import write_replay_minute_files

    if not _REPLAYS:
        written = Path(tempfile.mkdtemp(prefix="marketdata-dead-runs-csv-"))
        atexit.register(shutil.rmtree, written, ignore_errors=True)
        write_replay_minute_files(written, MONTHS)
        _REPLAYS.append(written)
    shutil.copytree(_REPLAYS[0], directory)
    return directory


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def hold_slot(instance: dg.DagsterInstance, pool: str, label: str = "test holder", process=None) -> str:
    """A live run holding the pool's only slot: of this test process, or of `process` (a ProcessRef)."""
    run_id = str(uuid.uuid4())
    instance.run_storage.add_run(
        dg.DagsterRun(
            job_name="holder",
            run_id=run_id,
            status=dg.DagsterRunStatus.STARTED,
            tags=process_tags(run_id, label, process),
        )
    )
    instance.event_log_storage.set_concurrency_slots(pool, 1)
    assert instance.event_log_storage.claim_concurrency_slot(pool, run_id, "holder_step").is_claimed
    return run_id


def queued_behind(instance: dg.DagsterInstance, pool: str, waiter: Proc, holder: str, label: str, pid: int):
    """The waiter's run, once its line names the holder's run and live process and it is queued for the
    slot."""
    line = waiter.wait_for_line(f"waits for a slot of pool '{pool}'")
    assert f"run {holder[:8]} ({label})" in line and f"process {pid} on this host alive" in line
    (run,) = runs_by_pid(instance, waiter.popen.pid)
    assert run.run_id in claims_of(instance, pool)[1]  # queued for the slot
    return run


def claims_of(instance: dg.DagsterInstance, pool: str) -> tuple[list[str], list[str]]:
    """(run ids holding slots, run ids with pending steps) of the pool."""
    info = instance.event_log_storage.get_concurrency_info(pool)
    return [s.run_id for s in info.claimed_slots], [p.run_id for p in info.pending_steps]


def runs_by_pid(instance: dg.DagsterInstance, pid: int) -> list[dg.DagsterRun]:
    return list(instance.get_runs(dg.RunsFilter(tags={"marketdata/pid": str(pid)})))


def end_holder(instance: dg.DagsterInstance, run_id: str) -> None:
    """A holder of hold_slot gone without a trace (the module's later commands sweep nothing of it)."""
    instance.event_log_storage.free_concurrency_slots_for_run(run_id)
    instance.delete_run(run_id)


# The first step of each command waits for its pool: one pool of each store and a vendor pool.
WAITERS = {
    "timescaledb": lambda env, tmp: marketdata(
        env, "load-minute-bars", "--data-dir", str(replay_files(tmp / "csv")), "--workers", "1"
    ),
    "mongodb": lambda env, tmp: marketdata(env, "import-alphas", "--start-month", "2025-06"),
    "clickhouse": lambda env, tmp: launcher(env, "tick_store"),
    "tushare": lambda env, tmp: marketdata(
        env,
        "--demo",
        "ingest",
        "--symbols",
        "600000.SH",
        "--start-date",
        "2025-06-05",
        "--end-date",
        "2025-06-05",
    ),
}


def test_a_waiter_names_a_live_holder_waits_at_no_cpu_and_runs_once_the_holder_dies(run_env, tmp_path):
    """The holder is a run of another live process: the waiter names it and its process, waits queued at
    ~0% CPU; the holder's process killed, the waiter's next sweep fails it, frees its slot and the load
    runs."""
    from marketdata_assets.core.processes import ProcessRef, process_start

    pool = "timescaledb"
    holder_process = subprocess.Popen(["sleep", "600"])
    try:
        ref = ProcessRef(socket.gethostname(), holder_process.pid, process_start(holder_process.pid))
        with command_instance() as instance:
            holder = hold_slot(instance, pool, "a load elsewhere", ref)
            waiter = WAITERS[pool](run_env, tmp_path)
            try:
                queued_behind(instance, pool, waiter, holder, "a load elsewhere", ref.pid)
                # the mechanism (pool_wait) is the same for every pool: measured once
                before, started = cpu_seconds(waiter.popen.pid), time.monotonic()
                time.sleep(4)  # 400 clock ticks: a 5% share is 20 of them
                share = (cpu_seconds(waiter.popen.pid) - before) / (time.monotonic() - started)
                print(f"the waiting process used {share:.2%} of a CPU over 4 s")
                assert share < 0.05, f"the waiting process used {share:.1%} of a CPU"
                holder_process.kill()
                holder_process.wait()
                assert waiter.wait(timeout=120) == 0, waiter.output
            finally:
                if waiter.popen.poll() is None:
                    waiter.popen.kill()
            assert f"marked failed: run {holder[:8]} (a load elsewhere); 1 pool slot freed ({pool} 1)" in (
                waiter.output
            )
            assert "[ok] minute bars" in waiter.output
            assert instance.get_run_by_id(holder).status == dg.DagsterRunStatus.FAILURE
            assert claims_of(instance, pool) == ([], [])
    finally:
        holder_process.kill()


# SIGTERM while waiting: pool_wait's interrupt check is the same for every pool; what differs is who
# turns the interruption into exit 130: the launcher (make run's path: clickhouse) or the `marketdata`
# CLI's session (the timescaledb and mongodb commands' path too; tushare's also stops its demo replays).
@pytest.mark.parametrize("pool", ["clickhouse", "tushare"])
def test_a_waiter_names_the_holder_and_stops_on_sigterm_leaving_nothing_claimed(run_env, tmp_path, pool):
    with command_instance() as instance:
        holder = hold_slot(instance, pool)
        try:
            waiter = WAITERS[pool](run_env, tmp_path)
            try:
                run = queued_behind(instance, pool, waiter, holder, "test holder", os.getpid())
                sent = time.monotonic()
                waiter.popen.send_signal(signal.SIGTERM)
                # said by the wait loop, or by the launcher when the signal lands between two of its checks
                waiter.wait_for_line("nothing stays claimed", timeout=2)
                code = waiter.wait(timeout=30)
                print(
                    f"{pool}: the wait ended at once, the process exited {time.monotonic() - sent:.2f} s "
                    "after SIGTERM"
                )
            finally:
                if waiter.popen.poll() is None:
                    waiter.popen.kill()
            assert code == 130, waiter.output
            assert "interrupted" in waiter.output and "Traceback" not in waiter.output
            assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
            assert claims_of(instance, pool) == ([holder], [holder])  # the waiter left nothing claimed
        finally:
            end_holder(instance, holder)


@contextmanager
def timescale_held(env: dict):
    """The minute-bar load takes the project's DDL advisory lock first: held here, the step waits in it."""
    from marketdata_assets.stores.timescale.ledger import DDL_LOCK_KEY

    server = {
        key: env.get(f"TIMESCALE_{key}") or settings.get(f"TIMESCALE_{key}")
        for key in ("HOST", "PORT", "USER")
    }
    with psycopg.connect(
        host=server["HOST"],
        port=server["PORT"],
        user=server["USER"],
        password=env.get("TIMESCALE_PASSWORD") or settings.get("TIMESCALE_PASSWORD") or None,
        dbname=env["TIMESCALE_DB"],
        autocommit=True,
    ) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (DDL_LOCK_KEY,))
        yield {}


@contextmanager
def clickhouse_held(env: dict):
    """An embedded ClickHouse directory opens in one process at a time: held here, a step waits for it."""
    from marketdata_assets.resources.clickhouse import _DirectoryLock

    lock = _DirectoryLock(Path(env["CLICKHOUSE_DSN"].removeprefix("chdb://")))
    lock.acquire(5)
    try:
        yield {}
    finally:
        lock.release()


class SlowProxy(FaultProxy):
    """The real MongoDB server, every answer 0.3 s late: the import's first step (index builds, a few
    round trips) lasts seconds after it takes its slot, while its resource's ping still passes."""

    def _pipe(self, src, dst) -> None:
        try:
            answers = src.getpeername()[1] == self.upstream[1]  # the server's side of the pair
            while data := src.recv(65536):
                time.sleep(0.3 if answers else 0)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            src.close()


@contextmanager
def mongodb_held(env: dict):
    address = settings.get("MONGODB_URI").removeprefix("mongodb://").split("/")[0].split(",")[0]
    host, port = address.rsplit(":", 1)
    with SlowProxy(host, int(port)) as proxy:
        yield {"MONGODB_URI": f"mongodb://{proxy.address}/?directConnection=true"}


# (the command whose first step takes the pool, what keeps that step from finishing)
KILLED = {
    "timescaledb": (WAITERS["timescaledb"], timescale_held),
    "mongodb": (WAITERS["mongodb"], mongodb_held),
    "clickhouse": (WAITERS["clickhouse"], clickhouse_held),
    # (tushare's step: a ClickHouse step like tick_store, launched by the CLI like the two others: no case of
    # its own)
}


def slot_taken_by(instance: dg.DagsterInstance, pool: str, proc: Proc, timeout: float = 120) -> str:
    """The run id of `proc` once its step holds a slot of `pool`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = runs_by_pid(instance, proc.popen.pid)
        if runs and runs[0].run_id in claims_of(instance, pool)[0]:
            return runs[0].run_id
        assert proc.popen.poll() is None, (
            f"exited {proc.popen.returncode} before taking a slot:\n{proc.output}"
        )
        time.sleep(0.1)
    raise AssertionError(f"no {pool} slot taken within {timeout} s:\n{proc.output}")
