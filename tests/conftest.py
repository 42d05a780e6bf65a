"""Tests run against the real servers of the local stack (`scripts/stack up`, done by `make test`).

Each test session works in its own databases (`*_test`), so a developer's data is never touched.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import tempfile
import uuid
from datetime import UTC

import psycopg
import pytest

from marketdata_assets.core import settings
from tests.support.longest_first import pytest_xdist_make_scheduler  # noqa: F401  (the longest test files first)

# The fixtures shared across the test folders (each module's fixtures as its folder's conftest had them):
# the ClickHouse `store` and OKX's reach lifted (tests/fixtures/ticks.py), the alpha databases `dbs`,
# the bars' PGlite server and TimescaleDB schemas (session-scoped: one per worker), the live tests'
# nats-server, stream and landing root. The live tests' own `store` is tests/defs/live/conftest.py's.
pytest_plugins = [
    "tests.fixtures.alphas",
    "tests.fixtures.bars",
    "tests.fixtures.live",
    "tests.fixtures.ticks",
]

# Two alpha accounts (the account dimension of alpha_files is read when the definitions load);
# set, not defaulted: `make test` runs pytest with the settings' defaults already applied.
os.environ["ALPHA_API_ACCOUNTS"] = "main,research"
# Metric samples of the tests' requests and loads go to a directory of this session, never into the
# one the developer's exporter reads (set before anything imports prometheus_client).
os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="marketdata-test-metrics-")
atexit.register(shutil.rmtree, os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
settings.apply_defaults()


def worker_name(name: str) -> str:
    """A database name of this pytest process: `make test` runs files in parallel (pytest-xdist), and
    each worker recreates its databases; MARKETDATA_TEST_DB_SUFFIX keeps two checkouts' runs apart."""
    worker = "_".join(
        part
        for part in (
            os.environ.get("MARKETDATA_TEST_DB_SUFFIX", ""),
            os.environ.get("PYTEST_XDIST_WORKER", ""),
        )
        if part
    )
    return f"{name}_{worker}" if worker else name


TEST_TIMESCALE_DB = worker_name("marketdata_test")
TEST_DAGSTER_DB = worker_name("dagster_test")


def allow_future_until(monkeypatch, day) -> None:
    """A test that stores days which have not happened yet (the year after the last one a calendar
    library knows) widens the plausibility rule's future tolerance to reach past `day`: otherwise
    core/plausibility rightly rejects those rows as stamped in the future."""
    from datetime import datetime

    minutes = datetime(day.year, day.month, day.day, tzinfo=UTC) - datetime.now(UTC)
    monkeypatch.setenv(
        "TIMESTAMP_FUTURE_TOLERANCE_MINUTES", str(max(0, int(minutes.total_seconds() // 60)) + 3 * 1440)
    )


def clear_stale_defs_state() -> None:
    """Dagster keeps the defs-state storage of the instance last entered (`with instance:`) in a
    context variable, and an exit resets it to what it was at that instance's entry. An instance
    entered but never exited (a schedule context's `.instance` outside `with context:`) exits when
    collected, at any later moment, and puts back the storage of an instance disposed since: the next
    `defs()` fails ("Attempted to resolve undefined DagsterInstance weakref"). test_dagster_contexts
    keeps every such context exited; this clears, with a warning naming it, a storage that still
    points at a disposed instance before a test starts."""
    from dagster._core.storage.defs_state import base

    storage = base.DefsStateStorage.get()
    weakref = getattr(storage, "_instance_weakref", None)
    if weakref is not None and weakref() is None:
        import warnings

        warnings.warn(
            f"Dagster's defs-state storage pointed at a disposed instance ({type(storage).__name__}): "
            "cleared",
            stacklevel=2,
        )
        base._current_storage.set(None)  # no token to reset to: this context's value is the stale one


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def admin_connect() -> psycopg.Connection:
    return psycopg.connect(
        host=settings.get("TIMESCALE_HOST"),
        port=settings.get("TIMESCALE_PORT"),
        user=settings.get("TIMESCALE_USER"),
        password=settings.get("TIMESCALE_PASSWORD") or None,
        dbname="postgres",
        autocommit=True,
        connect_timeout=5,
    )


def recreate_database(name: str, extension: bool = False) -> None:
    with admin_connect() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    if extension:
        with psycopg.connect(
            host=settings.get("TIMESCALE_HOST"),
            port=settings.get("TIMESCALE_PORT"),
            user=settings.get("TIMESCALE_USER"),
            password=settings.get("TIMESCALE_PASSWORD"),
            dbname=name,
            autocommit=True,
        ) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")


@pytest.fixture(scope="session")
def timescale_db() -> str:
    recreate_database(TEST_TIMESCALE_DB, extension=True)
    return TEST_TIMESCALE_DB


@pytest.fixture
def timescale(timescale_db):
    from marketdata_assets.resources import TimescaleResource

    resource = TimescaleResource(
        host=settings.get("TIMESCALE_HOST"),
        port=int(settings.get("TIMESCALE_PORT")),
        user=settings.get("TIMESCALE_USER"),
        password=settings.get("TIMESCALE_PASSWORD"),
        dbname=timescale_db,
        sslmode="disable",
    )
    yield resource
    resource.close()


@pytest.fixture
def mongo():
    from marketdata_assets.resources import MongoResource

    resource = MongoResource(uri=settings.get("MONGODB_URI"))
    yield resource
    resource.close()


@pytest.fixture
def mongo_db_name(mongo):
    """A throwaway database name, dropped afterwards."""
    name = f"test_{uuid.uuid4().hex[:10]}"
    yield name
    mongo.client.drop_database(name)


@pytest.fixture(scope="session")
def clickhouse_dsn(tmp_path_factory) -> str:
    """chDB allows one data directory per process: the whole test session shares this one.

    One client stays open on it for the whole session, so the embedded engine starts once: closed
    by the last client, it starts again (~0.5 s of CPU) on the next open, at a cost that grows
    with every restart in the process (chDB 26.9 keeps each engine's threads: ~1.5 s of CPU per
    open after 30 restarts). The tests' resources still open and close their own clients and the
    directory lock (shared within a process) as the steps do."""
    from marketdata_assets.resources import ClickHouseResource

    dsn = f"chdb://{tmp_path_factory.mktemp('clickhouse') / 'data'}"
    keeper = ClickHouseResource(dsn=dsn, database="default", lock_timeout_s=5)
    with keeper.get_client():
        pass
    yield dsn
    keeper.close()


@pytest.fixture
def clickhouse(clickhouse_dsn, request):
    """The test's database. A test with a `store` (every one makes the tables) gets an emptied one of an
    earlier test's store where there is one (tests/support/store_pool.py); any database left as a fresh
    store is emptied for the next, any other dropped."""
    from marketdata_assets.resources import ClickHouseResource
    from tests.support import store_pool

    database = None
    if "store" in request.fixturenames:
        picker = ClickHouseResource(dsn=clickhouse_dsn, database="default", lock_timeout_s=5)
        with picker.get_client() as client:
            database = store_pool.take(client, clickhouse_dsn)
        picker.close()  # `get_client` leaves its client open and the directory lock held until `close`
    resource = ClickHouseResource(
        dsn=clickhouse_dsn, database=database or f"test_{uuid.uuid4().hex[:8]}", lock_timeout_s=5
    )
    yield resource
    with resource.get_client() as client:
        if not store_pool.give_back(client, clickhouse_dsn, resource.database):
            client.command(f"DROP DATABASE IF EXISTS `{resource.database}`")
    resource.close()


@pytest.fixture
def env(monkeypatch):
    """Set environment variables for one test."""

    def _set(**values):
        for key, value in values.items():
            monkeypatch.setenv(key, str(value))

    return _set


@pytest.fixture(autouse=True)
def _no_dead_defs_state_storage():
    """Before each test: no defs-state storage of a disposed instance (clear_stale_defs_state)."""
    clear_stale_defs_state()
    yield


@pytest.fixture
def private_postgres():
    """A PostgreSQL + TimescaleDB server of this test alone, which the test may stop, kill and restart."""
    from pathlib import Path

    from tests.support.private_postgres import PrivatePostgres

    # Not under pytest's tmp dir: its folders are root's alone, and the server runs as `postgres`.
    server = PrivatePostgres(Path(tempfile.mkdtemp(prefix="marketdata-private-pg-"))).init()
    yield server
    server.close()
