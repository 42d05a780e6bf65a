"""The local stack's servers (the ones `make test` started) let no one in without the credentials
generated for this state directory: each refuses a client without them or with wrong ones, in the
server's own words, and lets in one with them; the state directory, the landing areas and the files
holding a secret are their owner's alone; no secret is on a server's command line."""

from __future__ import annotations

import asyncio
import grp
import os
import stat
from pathlib import Path

import httpx
import nats
import psycopg
import pymongo
import pytest
import redis
from nats.errors import Error as NatsError

from marketdata_assets.core import settings
from marketdata_assets.core.errors import StoreUnavailable
from marketdata_assets.stores.jetstream import JetStreamStore

STATE = settings.state_dir()


def test_postgres_asks_every_tcp_client_for_its_password(monkeypatch):
    monkeypatch.delenv("PGPASSWORD", raising=False)
    login = {
        "host": settings.get("DAGSTER_PG_HOST"),
        "port": settings.get("DAGSTER_PG_PORT"),
        "dbname": "postgres",
        "user": settings.get("DAGSTER_PG_USER"),
        "connect_timeout": 5,
        "passfile": os.devnull,
    }
    with pytest.raises(psycopg.OperationalError, match="no password supplied"):
        psycopg.connect(**login).close()
    with pytest.raises(psycopg.OperationalError, match='password authentication failed for user "postgres"'):
        psycopg.connect(**login, password="wrong").close()
    with psycopg.connect(**login, password=settings.get("DAGSTER_PG_PASSWORD")) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("postgres",)
    rules = [
        line.split()
        for line in (STATE / "postgres" / "data" / "pg_hba.conf").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert {rule[0] for rule in rules} == {"local", "host"} and not [r for r in rules if "trust" in r]
    assert all(rule[-1] == "scram-sha-256" for rule in rules if rule[0] == "host")
    assert all(rule[3:] == ["peer", "map=stack"] for rule in rules if rule[0] == "local")


def test_the_pglite_server_asks_for_the_password_by_scram():
    """The stack's PGlite server (one session at a time: this test's connections are short)."""
    login = {
        "host": "127.0.0.1",
        "port": settings.get("STACK_PGLITE_PORT"),
        "user": "postgres",
        "dbname": "postgres",
        "sslmode": "disable",
        "connect_timeout": 30,
        "passfile": os.devnull,
    }
    with pytest.raises(psycopg.OperationalError, match="no password supplied"):
        psycopg.connect(**login).close()
    with pytest.raises(psycopg.OperationalError, match='password authentication failed for user "postgres"'):
        psycopg.connect(**login, password="wrong").close()
    with psycopg.connect(**login, password=settings.stack_secrets()["postgres"]) as conn:  # libpq checks the
        assert conn.execute("SELECT current_user").fetchone() == ("postgres",)  # server's proof too


def test_the_clickhouse_server_answers_401_and_code_516_without_its_password():
    url = settings.stack_clickhouse_url()
    if settings.clickhouse_dsn() != url:
        pytest.skip(f"CLICKHOUSE_DSN names another server ({settings.clickhouse_dsn()})")
    for login in ({}, {"auth": ("default", "wrong")}):
        answer = httpx.post(f"{url}/", content=b"DROP DATABASE IF EXISTS intruder", timeout=10, **login)
        assert (answer.status_code, answer.headers["X-ClickHouse-Exception-Code"]) == (401, "516")
        assert "(AUTHENTICATION_FAILED)" in answer.text
    answer = httpx.post(
        f"{url}/",
        content=b"SELECT 1",
        timeout=10,
        auth=(settings.get("CLICKHOUSE_USER"), settings.get("CLICKHOUSE_PASSWORD")),
    )
    assert (answer.status_code, answer.text) == (200, "1\n")


def test_the_mongodb_wire_server_wants_scram_credentials():
    uri = settings.get("MONGODB_URI")
    with pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000) as anonymous:
        with pytest.raises(pymongo.errors.OperationFailure, match="requires authentication") as refused:
            anonymous.list_database_names()
        assert refused.value.code == 13  # Unauthorized, as mongod says it
    user = settings.get("MONGODB_USERNAME")
    with pymongo.MongoClient(
        uri, serverSelectionTimeoutMS=5000, username=user, password="wrong", authSource="admin"
    ) as wrong:
        with pytest.raises(pymongo.errors.OperationFailure, match="authentication failed") as refused:
            wrong.list_database_names()
        assert refused.value.code == 18  # AuthenticationFailed
    with pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000, **settings.mongo_auth()) as client:
        assert client.admin.command("connectionStatus")["authInfo"]["authenticatedUsers"] == [
            {"user": user, "db": "admin"}
        ]


def test_nats_wants_its_token_and_the_store_says_so_in_one_line(monkeypatch):
    url = settings.get("NATS_URL")

    async def connect(token: str | None) -> str:
        async def quiet(_error) -> None:
            return None

        try:
            client = await nats.connect(
                url, token=token, allow_reconnect=False, connect_timeout=5, error_cb=quiet
            )
        except NatsError as error:
            return str(error)
        await client.close()
        return "in"

    assert asyncio.run(connect(None)) == "nats: 'Authorization Violation'"
    assert asyncio.run(connect("wrong")) == "nats: 'Authorization Violation'"
    assert asyncio.run(connect(settings.get("NATS_TOKEN"))) == "in"
    monkeypatch.setenv("NATS_TOKEN", "wrong")
    with pytest.raises(
        StoreUnavailable,
        match=r"NATS JetStream at 127\.0\.0\.1:\d+ refused the login: Authorization Violation\. "
        "Check NATS_TOKEN",
    ):
        asyncio.run(JetStreamStore(url, connect_timeout_s=5).connect())


def test_redis_wants_its_password():
    url = settings.get("REDIS_URL")
    with (
        redis.Redis.from_url(url, socket_timeout=5) as anonymous,
        pytest.raises(redis.exceptions.AuthenticationError, match="Authentication required"),
    ):
        anonymous.ping()
    with (
        redis.Redis.from_url(url, socket_timeout=5, password="wrong") as wrong,
        pytest.raises(redis.exceptions.AuthenticationError),
    ):
        wrong.ping()
    with redis.Redis.from_url(url, socket_timeout=5, password=settings.get("REDIS_PASSWORD")) as client:
        assert client.ping() is True


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_state_is_its_owner_s_alone_and_no_secret_is_on_a_command_line():
    postgres_group = os.geteuid() == 0 and STATE.stat().st_gid == grp.getgrnam("postgres").gr_gid
    assert _mode(STATE) == (
        0o710 if postgres_group else 0o700
    )  # as root, Postgres (user postgres) passes through
    for sub in ("landing", "clickhouse", "run", "nats", "mongodb"):
        assert _mode(STATE / sub) == 0o700, sub
    for private in (
        "stack-secrets",
        "nats/nats-server.conf",
        "redis/redis.conf",
        "postgres/data/pg_hba.conf",
    ):
        assert _mode(STATE / private) == 0o600, private
    secrets = settings.stack_secrets()
    assert set(secrets) == set(settings.STACK_SECRET_NAMES) and len(set(secrets.values())) == len(secrets)
    for pidfile in (STATE / "run").glob("*.pid"):
        cmdline = Path(f"/proc/{pidfile.read_text().split()[0]}/cmdline")
        if cmdline.exists():
            text = cmdline.read_bytes().decode(errors="replace")
            assert not [name for name, value in secrets.items() if value in text], pidfile.name
