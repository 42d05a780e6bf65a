"""scripts/stack on a private state directory: clear errors, lifecycle, and `down` touching only its own."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import pytest

from tests.conftest import free_port

STACK = Path(__file__).resolve().parent.parent / "scripts" / "stack.py"


def stack(state: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {**os.environ, "MARKETDATA_STATE_DIR": str(state), **env}
    return subprocess.run(
        [sys.executable, str(STACK), *args],
        capture_output=True,
        text=True,
        env=environ,
        timeout=120,
        check=False,
    )


@pytest.fixture
def taken_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_taken_ports_give_clear_errors(tmp_path, taken_port):
    result = stack(
        tmp_path,
        "up",
        "postgres",
        "mongodb",
        TIMESCALE_PORT=str(taken_port),
        DAGSTER_PG_PORT=str(taken_port),
        MONGODB_URI=f"mongodb://127.0.0.1:{taken_port}",
    )
    assert result.returncode == 1
    assert result.stdout.count(f"port 127.0.0.1:{taken_port} is taken by another process") == 2
    assert "TIMESCALE_PORT" in result.stdout and "MONGODB_URI" in result.stdout


@pytest.fixture
def postgres_readable_dir():
    """pytest's tmp dirs are root-only; the postgres user must be able to reach the data dir."""
    path = Path(tempfile.mkdtemp(prefix="stack-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_failed_start_shows_the_log_tail(postgres_readable_dir):
    state = postgres_readable_dir
    data = state / "postgres" / "data"
    data.mkdir(parents=True)
    (data / "PG_VERSION").write_text("15\n")
    (data / "postgresql.conf").write_text("shared_buffers = lots\n")  # the server refuses to start
    port = str(free_port())
    result = stack(state, "up", "postgres", TIMESCALE_PORT=port, DAGSTER_PG_PORT=port)
    assert result.returncode == 1
    assert "postgres    FAILED: postgres start failed" in result.stdout
    assert f"log {state / 'logs' / 'postgres.log'}" in result.stdout
    assert 'invalid value for parameter "shared_buffers": "lots"' in result.stdout
    assert not (state / "run" / "postgres.pid").exists()


def test_lifecycle_and_down_stops_only_its_own(tmp_path):
    port = free_port()
    env = {"MONGODB_URI": f"mongodb://127.0.0.1:{port}"}
    assert "started" in stack(tmp_path, "up", "mongodb", **env).stdout
    assert "already running" in stack(tmp_path, "up", "mongodb", **env).stdout  # idempotent
    status = stack(tmp_path, "status", "mongodb", **env).stdout
    assert f"port {port}" in status and "rss" in status
    pid = int((tmp_path / "run" / "mongodb.pid").read_text())

    assert "stopped" in stack(tmp_path, "down", "mongodb", **env).stdout
    assert (
        not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split(") ")[1][:1]
    )

    # A pid file naming a process this stack did not start: `down` leaves it alone.
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        (tmp_path / "run" / "mongodb.pid").write_text(f"{stranger.pid}\n")
        assert "not running" in stack(tmp_path, "down", "mongodb", **env).stdout
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()


def test_nats_with_jetstream_lifecycle(tmp_path, monkeypatch):
    import asyncio

    from marketdata_assets.core.errors import StoreUnavailable
    from marketdata_assets.stores.jetstream import JetStreamStore, StreamSpec

    port = free_port()
    env = {"NATS_URL": f"nats://127.0.0.1:{port}"}
    assert "started" in stack(tmp_path, "up", "nats", **env).stdout
    assert "already running" in stack(tmp_path, "up", "nats", **env).stdout
    assert f"port {port}" in stack(tmp_path, "status", "nats", **env).stdout

    async def jetstream() -> str:
        async with JetStreamStore(env["NATS_URL"]) as js:
            return await js.ensure_stream(StreamSpec(name="STACK_TEST", subjects=("stacktest.>",)))

    try:
        assert asyncio.run(jetstream()) == "created"  # JetStream is on, its store in the state dir
        assert (tmp_path / "nats" / "jetstream").is_dir()
        # a server a stack before credentials started (no record of them) is restarted with them, as is one
        # whose token the user changed since: the new token is the one it takes, the stream kept
        pid = (tmp_path / "run" / "nats.pid").read_text().strip()
        (tmp_path / "run" / "nats.credentials").unlink()
        upgraded = stack(tmp_path, "up", "nats", **env).stdout
        assert (
            f"restarting pid {pid}: it was started without today's credentials" in upgraded
            and "started" in upgraded
        )
        env["NATS_TOKEN"] = "the-users-own-token"
        assert "restarting pid" in stack(tmp_path, "up", "nats", **env).stdout
        with monkeypatch.context() as users_shell:
            users_shell.setenv("NATS_TOKEN", env["NATS_TOKEN"])
            assert asyncio.run(jetstream()) == "unchanged"
        with pytest.raises(StoreUnavailable, match="Authorization Violation"):
            asyncio.run(jetstream())  # the old token no longer gets in
    finally:
        assert "stopped" in stack(tmp_path, "down", "nats", **env).stdout
    assert "stopped" in stack(tmp_path, "status", "nats", **env).stdout


def test_postgres_takes_the_users_password_and_an_old_trusting_server_is_locked_in_place(
    postgres_readable_dir,
):
    """`up` on a running server whose pg_hba.conf trusts everyone (what the stack wrote before credentials)
    rewrites it and reloads: the same server, now asking every TCP client for the password."""
    state, port = postgres_readable_dir, str(free_port())
    env = {
        "DAGSTER_PG_PORT": port,
        "TIMESCALE_PORT": port,
        "DAGSTER_PG_PASSWORD": "users-own",
        "TIMESCALE_PASSWORD": "users-own",
        "DAGSTER_PG_DB": "dagster_t",
        "TIMESCALE_DB": "market_t",
    }
    login = {
        "host": "127.0.0.1",
        "port": port,
        "user": "postgres",
        "dbname": "market_t",
        "connect_timeout": 5,
        "passfile": os.devnull,
    }
    assert "started" in stack(state, "up", "postgres", **env).stdout
    try:
        with psycopg.connect(**login, password="users-own") as conn:
            assert conn.execute("SELECT extname FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
        hba = state / "postgres" / "data" / "pg_hba.conf"
        hba.write_text("local all all trust\nhost all all 127.0.0.1/32 trust\n")  # a clone from before
        subprocess.run(
            [
                "runuser",
                "-u",
                "postgres",
                "--",
                "/usr/lib/postgresql/15/bin/pg_ctl",
                "-D",
                str(hba.parent),
                "reload",
            ],
            check=True,
            capture_output=True,
        )
        assert _settles(login, "in")  # the postmaster rereads its files on the signal
        pid = (state / "run" / "postgres.pid").read_text().strip()
        assert f"already running (pid {pid}" in stack(state, "up", "postgres", **env).stdout
        assert _settles(login, "fe_sendauth: no password supplied")
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(**login, password="generated-one-would-be-wrong").close()
        psycopg.connect(**login, password="users-own").close()
    finally:
        assert "stopped" in stack(state, "down", "postgres", **env).stdout


def _settles(login: dict, outcome: str, within_s: float = 10) -> bool:
    """Whether a password-less connection ends in `outcome` ("in", or a piece of the refusal) within the
    time."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            psycopg.connect(**login).close()
            answer = "in"
        except psycopg.OperationalError as error:
            answer = str(error)
        if outcome in answer or time.monotonic() > deadline:
            return outcome in answer
        time.sleep(0.05)


def test_a_mongodb_user_the_stack_did_not_create_is_reported_and_an_older_stacks_server_restarted(tmp_path):
    """A user made in the window an older stack left (a server of the same data without `--auth` while it
    provisioned): `up` restarts that stack's server (its record holds the credentials only), checks the users
    in the data files with no server running, and names the stranger with its roles."""
    import hashlib

    import pymongo

    port = free_port()
    env = {"MONGODB_URI": f"mongodb://127.0.0.1:{port}", "MONGODB_PASSWORD": "users-own"}
    first = stack(tmp_path, "up", "mongodb", **env).stdout
    assert "started" in first and "WARNING" not in first
    try:
        uri = f"mongodb://127.0.0.1:{port}/?directConnection=true"
        user = os.environ.get("MONGODB_USERNAME") or "marketdata"
        with pymongo.MongoClient(uri, username=user, password="users-own", authSource="admin") as client:
            client.admin.command("createUser", "stranger", pwd="x", roles=["root"])
        older = hashlib.sha256(f"{user}\0users-own".encode()).hexdigest()[:16]  # what an older stack recorded
        (tmp_path / "run" / "mongodb.credentials").write_text(older + "\n")
        pid = (tmp_path / "run" / "mongodb.pid").read_text().strip()
        upgraded = stack(tmp_path, "up", "mongodb", **env)
        assert upgraded.returncode == 0, upgraded.stdout
        assert f"restarting pid {pid}: it was started without today's credentials or by an older stack" in (
            upgraded.stdout
        )
        assert "WARNING: users this stack did not create: stranger@admin (root@admin)" in upgraded.stdout
        assert "already running" in stack(tmp_path, "up", "mongodb", **env).stdout  # today's record: kept
    finally:
        stack(tmp_path, "down", "mongodb", **env)


def test_a_postgres_role_the_stack_did_not_create_is_reported(postgres_readable_dir):
    state, port = postgres_readable_dir, str(free_port())
    env = {
        "DAGSTER_PG_PORT": port,
        "TIMESCALE_PORT": port,
        "DAGSTER_PG_PASSWORD": "own",
        "TIMESCALE_PASSWORD": "own",
    }
    first = stack(state, "up", "postgres", **env).stdout
    assert "started" in first and "WARNING" not in first
    try:
        login = {
            "host": "127.0.0.1",
            "port": port,
            "user": "postgres",
            "dbname": "postgres",
            "password": "own",
        }
        with psycopg.connect(**login, autocommit=True) as conn:
            conn.execute("CREATE ROLE stranger LOGIN SUPERUSER PASSWORD 'x'")
            conn.execute("CREATE ROLE reader NOLOGIN")
        again = stack(state, "up", "postgres", **env).stdout
        assert "already running" in again
        assert "WARNING: roles this stack did not create: reader, stranger (superuser)" in again
    finally:
        stack(state, "down", "postgres", **env)
