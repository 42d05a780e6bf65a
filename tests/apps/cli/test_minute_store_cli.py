"""`marketdata load-minute-bars` on databases nobody bootstrapped (issue 27): a fresh database ends with
the hypertable and its unique index; Postgres killed during the first load, then the same command
again, gives exactly the files' rows; a server without TimescaleDB says so on the command's line, and
the plain table it loaded, the server given TimescaleDB, is refused once with the command that migrates
it, which migrates it. The tests that stop their server share one private server (module-scoped), each
test in a database of its own."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import polars as pl
import psycopg
import pytest

from marketdata_assets.core import settings
from marketdata_assets.replay import minute_csv as fx
from marketdata_assets.stores.timescale import minute_table
from tests.conftest import recreate_database, worker_name
from tests.support.private_postgres import PrivatePostgres

REPO = Path(__file__).resolve().parents[3]
MARKETDATA = Path(sys.executable).parent / "marketdata"
DAGSTER_DB = worker_name("dagster_minute_store_cli_test")
FRESH_DB = worker_name("marketdata_minute_store_cli_test")
DAYS = fx.trading_days(date(2026, 1, 5), 6)  # in January 2026: 1,440 rows a file


@pytest.fixture(scope="module")
def dagster_db() -> str:
    recreate_database(DAGSTER_DB)
    return DAGSTER_DB


@pytest.fixture(scope="module")
def landing(tmp_path_factory) -> tuple[Path, pl.DataFrame]:
    """24 files of 6 days (the loads only read them: every test shares them). 24 files, one worker: the first
    load is still at its first files when the server is stopped after the first commit."""
    root = tmp_path_factory.mktemp("landing")
    truths = []
    for i in range(24):
        bars = fx.make_bars(f"{600000 + i}.SH", DAYS, seed=i)
        fx.write_text(root / f"{600000 + i}.SH.csv", fx.render(bars, "tushare"))
        truths.append(fx.expected(bars, "tushare"))
    return root, pl.concat(truths)


@pytest.fixture(scope="module")
def few_files(landing, tmp_path_factory) -> tuple[Path, pl.DataFrame]:
    """The first 4 of those files (5,760 rows, past the migration test's 1,000-row limit): what a load that
    is not interrupted needs to show its table, line and checks. Only the crash test needs the 24 (a load
    still going after its first commit); the others loaded all 24 for nothing they check."""
    root, _ = landing
    few = tmp_path_factory.mktemp("few")
    truths = []
    for i in range(4):
        name = f"{600000 + i}.SH.csv"
        shutil.copy(root / name, few / name)
        truths.append(fx.expected(fx.make_bars(f"{600000 + i}.SH", DAYS, seed=i), "tushare"))
    return few, pl.concat(truths)


def cli_env(tmp_path: Path, dagster_db: str, port: int, dbname: str) -> dict:
    home = tmp_path / "dagster_home"
    home.mkdir(exist_ok=True)
    shutil.copy(REPO / "instance" / "dagster.yaml", home / "dagster.yaml")
    return {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "DAGSTER_PG_DB": dagster_db,
        "TIMESCALE_PORT": str(port),
        "TIMESCALE_DB": dbname,
        "TIMESCALE_SSLMODE": "disable",
        "MARKETDATA_STATE_DIR": str(tmp_path / "state"),
        "CLICKHOUSE_DSN": f"chdb://{tmp_path / 'ch'}",
    }


def load_command(env: dict, root: Path) -> list[str]:
    return [str(MARKETDATA), "load-minute-bars", "--data-dir", str(root), "--workers", "1"]


def run(env: dict, root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        load_command(env, root),
        env=env,
        cwd=env["MARKETDATA_STATE_DIR"].rsplit("/", 1)[0],
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )


def store_state(port: int, dbname: str) -> dict:
    with psycopg.connect(
        host="127.0.0.1",
        port=port,
        user="postgres",
        password=settings.get("TIMESCALE_PASSWORD"),
        dbname=dbname,
        connect_timeout=5,
    ) as conn:
        extension = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
        rows, distinct = conn.execute(
            "SELECT count(*), count(DISTINCT (code, time)) FROM stock_1min_qfq"
        ).fetchone()
        return {
            "hypertable": bool(extension) and minute_table.is_hypertable(conn, "stock_1min_qfq"),
            "rows": rows,
            "distinct": distinct,
            "rows_outside_chunks": conn.execute("SELECT count(*) FROM ONLY stock_1min_qfq").fetchone()[0],
            "indexes": [
                r[0]
                for r in conn.execute("SELECT indexdef FROM pg_indexes WHERE tablename = 'stock_1min_qfq'")
            ],
        }


def committed_rows(conn: psycopg.Connection) -> int:
    if conn.execute("SELECT to_regclass('stock_1min_qfq')").fetchone()[0] is None:
        return 0
    return conn.execute("SELECT count(*) FROM stock_1min_qfq").fetchone()[0]


@pytest.fixture(scope="module")
def private_server():
    """A PostgreSQL + TimescaleDB server of this module's (tests/support/private_postgres.py), which its tests
    stop, kill and restart: initdb once, a database per test."""
    # Not under pytest's tmp dir: its folders are root's alone, and the server runs as `postgres`.
    server = PrivatePostgres(Path(tempfile.mkdtemp(prefix="marketdata-private-pg-"))).init()
    yield server
    server.close()


@pytest.fixture
def private_postgres(private_server):
    """The module's private server, running with TimescaleDB preloaded (restarted so if a test left it
    otherwise)."""
    if not private_server.timescaledb or not private_server.running():
        if private_server.running():
            private_server.stop()
        private_server.timescaledb = True
        private_server.start()
    return private_server


UNIQUE_INDEX = (
    'CREATE UNIQUE INDEX stock_1min_qfq_code_time ON public.stock_1min_qfq USING btree (code, "time" DESC)'
)


def test_the_cli_into_a_fresh_database_makes_the_hypertable_with_its_unique_index(
    few_files, tmp_path, dagster_db
):
    root, truth = few_files
    recreate_database(FRESH_DB)  # no extension, nothing bootstrapped
    port = int(settings.get("TIMESCALE_PORT"))
    result = run(cli_env(tmp_path, dagster_db, port, FRESH_DB), root)
    assert result.returncode == 0, result.stdout + result.stderr
    # a month of a few days' bars: stored whole, its complete_minutes check says the rest is missing
    assert (
        f"[checks failed] minute bars 2026-01..2026-01: 1 asset, 1 partition, {truth.height:,} rows"
        in result.stdout
    )
    assert "DEGRADED" not in result.stdout
    assert store_state(port, FRESH_DB) == {
        "hypertable": True,
        "rows": truth.height,
        "distinct": truth.height,
        "rows_outside_chunks": 0,
        "indexes": [UNIQUE_INDEX],
    }


def test_postgres_killed_during_the_first_load_of_a_fresh_database_then_the_rerun_is_exact(
    landing, tmp_path, dagster_db, private_postgres
):
    root, truth = landing
    private_postgres.create_database("fresh")  # no extension
    env = cli_env(tmp_path, dagster_db, private_postgres.port, "fresh")
    with open(tmp_path / "first.log", "w") as log:
        first = subprocess.Popen(
            load_command(env, root), env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + 100
    # one connection polled (autocommit: each query sees the latest commit), not a backend every 20 ms
    with private_postgres.connect("fresh") as watcher:
        while committed_rows(watcher) == 0:  # the first file committed: crash right there
            assert first.poll() is None and time.monotonic() < deadline, (tmp_path / "first.log").read_text()
            time.sleep(0.02)
    private_postgres.stop("immediate")
    assert first.wait(timeout=100) == 1, (tmp_path / "first.log").read_text()
    private_postgres.start()
    partial = store_state(private_postgres.port, "fresh")
    print(f"crashed after {partial['rows']:,} of {truth.height:,} rows")
    assert 0 < partial["rows"] < truth.height and partial["hypertable"]  # bootstrapped before the first row

    again = run(env, root)
    assert again.returncode == 0, again.stdout + again.stderr
    state = store_state(private_postgres.port, "fresh")
    print(f"re-run: {state['rows']:,} rows, {state['rows'] - state['distinct']} duplicates")
    assert state == {
        "hypertable": True,
        "rows": truth.height,
        "distinct": truth.height,
        "rows_outside_chunks": 0,
        "indexes": [UNIQUE_INDEX],
    }


def test_without_timescaledb_the_cli_line_says_degraded_then_the_plain_table_is_refused_once_then_migrated(
    few_files, tmp_path, dagster_db, private_postgres
):
    """The command on a server without TimescaleDB loads a plain table and its line says DEGRADED. The server
    restarted with TimescaleDB: that plain table, above MINUTE_BARS_MIGRATE_MAX_ROWS, fails the load once,
    naming the table, its rows and the command, changing nothing; that command migrates it, every row kept."""
    root, truth = few_files
    private_postgres.stop()
    private_postgres.timescaledb = False  # the library is not preloaded: no extension can be created
    private_postgres.start()
    private_postgres.create_database("plain")
    env = cli_env(tmp_path, dagster_db, private_postgres.port, "plain")
    result = run(env, root)
    assert result.returncode == 0, result.stdout + result.stderr
    line = next(li for li in result.stdout.splitlines() if li.startswith("[checks failed] minute bars"))
    assert f"{truth.height:,} rows" in line
    assert "DEGRADED: TimescaleDB is not available (the server does not preload it" in line
    assert "stock_1min_qfq is a plain PostgreSQL table" in line
    assert store_state(private_postgres.port, "plain")["hypertable"] is False

    private_postgres.stop()  # the server has TimescaleDB now; the database has no extension yet
    private_postgres.timescaledb = True
    private_postgres.start()
    refused = run({**env, "MINUTE_BARS_MIGRATE_MAX_ROWS": "1000"}, root)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    said = refused.stdout + refused.stderr
    assert f"stock_1min_qfq is a plain table (not a hypertable) holding {truth.height:,} rows" in said
    command = f"MINUTE_BARS_MIGRATE_MAX_ROWS={truth.height} marketdata load-minute-bars"
    assert command in said
    assert store_state(private_postgres.port, "plain") == {
        "hypertable": False,
        "rows": truth.height,
        "distinct": truth.height,
        "rows_outside_chunks": truth.height,
        "indexes": [UNIQUE_INDEX],
    }  # nothing changed

    migrated = run({**env, "MINUTE_BARS_MIGRATE_MAX_ROWS": str(truth.height)}, root)  # the command it named
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    assert "DEGRADED" not in migrated.stdout
    assert store_state(private_postgres.port, "plain") == {
        "hypertable": True,
        "rows": truth.height,
        "distinct": truth.height,
        "rows_outside_chunks": 0,
        "indexes": [UNIQUE_INDEX],
    }
