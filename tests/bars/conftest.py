"""Fixtures of the bars domain: a PGlite (TimescaleDB with the TSL features) server of its own."""

from __future__ import annotations

import select
import shutil
import signal
import subprocess
import time

import pytest

from marketdata_assets.core import settings
from tests.conftest import free_port, worker_name

PGLITE_DIR = settings.PROJECT_ROOT / "scripts" / "pglite"


@pytest.fixture(scope="session")
def pglite_server(tmp_path_factory):
    """scripts/pglite/server.mjs on a free port over a fresh data directory (SIGTERM at the end)."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the PGlite server (scripts/pglite) needs Node.js >= 20")
    if not (PGLITE_DIR / "node_modules" / "@electric-sql" / "pglite" / "package.json").exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail(f"{PGLITE_DIR}/node_modules is missing and npm is not installed: run `npm ci` there")
        done = subprocess.run([npm, "ci"], check=False, cwd=PGLITE_DIR, capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            pytest.fail(f"`npm ci` in {PGLITE_DIR} failed:\n{done.stdout}\n{done.stderr}")
    tmp = tmp_path_factory.mktemp("pglite")
    port = free_port()
    log_path = tmp / "server.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [node, "server.mjs", "--data-dir", str(tmp / "data"), "--host", "127.0.0.1", "--port", str(port),
             "--idle-timeout", "20"],
            cwd=PGLITE_DIR, stdout=subprocess.PIPE, stderr=log, text=True)
    started = time.monotonic()
    line = ""
    while True:
        if proc.poll() is not None:
            pytest.fail(f"the PGlite server exited ({proc.returncode}):\n{log_path.read_text()}")
        if time.monotonic() - started > 120:
            proc.kill()
            pytest.fail(f"the PGlite server was not ready within 120 s:\n{log_path.read_text()}")
        if select.select([proc.stdout], [], [], 1.0)[0]:
            line = proc.stdout.readline()
            if line.startswith("PGLITE READY"):
                break
    yield {"host": "127.0.0.1", "port": port, "ready_line": line.strip(), "log": log_path}
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert code == 0, f"the PGlite server exited with {code} on SIGTERM:\n{log_path.read_text()}"




# --- A schema of its own per test on the native server (completeness, coverage, unit checks) -------

QUALITY_DB = worker_name("marketdata_quality_test")


@pytest.fixture(scope="session")
def quality_db() -> str:
    from tests.conftest import recreate_database

    recreate_database(QUALITY_DB, extension=True)
    return QUALITY_DB


@pytest.fixture
def minute_store(quality_db, tmp_path):
    """A connection whose search_path starts with a fresh schema holding stock_1min_qfq, the loader's
    tables and the K-line table: the project's fixed table names, isolated per test."""
    import uuid

    import psycopg
    from psycopg import sql

    from marketdata_assets.stores.timescale import kline, ledger

    conn = psycopg.connect(host=settings.get("TIMESCALE_HOST"), port=settings.get("TIMESCALE_PORT"),
                           user=settings.get("TIMESCALE_USER"), password=settings.get("TIMESCALE_PASSWORD") or None,
                           dbname=quality_db, connect_timeout=5)
    schema = f"quality_{uuid.uuid4().hex[:10]}"
    conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    conn.execute(sql.SQL("SET search_path TO {}, public").format(sql.Identifier(schema)))
    conn.commit()
    kline.ensure_monthly_kline(conn)
    ledger.ensure_loader_tables(conn)
    conn.commit()
    try:
        yield conn
    finally:
        conn.rollback()
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
        conn.commit()
        conn.close()
