"""The generated project `.env` never overrides the user's environment: Dagster lets `.env` win
(dagster dev / dg / `dagster asset materialize` inject it from the working directory, dg dev's code
server again through PerProjectEnvFileLoader), so its lines are `NAME=${NAME:-default}`, which
python-dotenv expands from the reading process' environment. Proved end to end against a private
PostgreSQL server that only lets a user with a password in: the exported host, port, user and
password reach the code that `dagster dev`/`dg` load from the repo root and the `marketdata` CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

import psycopg
import pytest
from dotenv import dotenv_values

from marketdata_assets.core import settings
from marketdata_assets.replay import minute_csv as fx
from tests.test_project_cli import plain_environment

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
USER, PASSWORD, DB, CLI_DB = "quant", "user-set-Secret-24", "user_marketdata", "user_marketdata_cli"


def test_the_generated_file_fills_in_only_what_the_environment_leaves_unset(tmp_path, monkeypatch):
    path = tmp_path / ".env"
    monkeypatch.delenv("TIMESCALE_HOST", raising=False)
    monkeypatch.setenv("TIMESCALE_PASSWORD", "never-copied")
    settings.write_dotenv(path)
    text = path.read_text()
    generated = settings.stack_secrets()  # the local stack's, the default of a secret whose server it is
    assert "TIMESCALE_HOST=${TIMESCALE_HOST:-127.0.0.1}\n" in text
    assert f"TIMESCALE_PASSWORD=${{TIMESCALE_PASSWORD:-{generated['postgres']}}}\n" in text
    assert "never-copied" not in text and oct(path.stat().st_mode & 0o777) == "0o600"
    monkeypatch.setenv("TIMESCALE_HOST", "tsdb.internal")
    monkeypatch.setenv("TIMESCALE_PASSWORD", PASSWORD)
    values = dotenv_values(path)  # what Dagster's loaders read
    assert (values["TIMESCALE_HOST"], values["TIMESCALE_PASSWORD"]) == ("tsdb.internal", PASSWORD)
    monkeypatch.delenv("TIMESCALE_HOST")
    monkeypatch.delenv("TIMESCALE_PASSWORD")
    values = dotenv_values(path)
    assert (values["TIMESCALE_HOST"], values["TIMESCALE_PASSWORD"], values["TIMESCALE_DB"]) == (
        "127.0.0.1",
        generated["postgres"],
        settings.get("TIMESCALE_DB"),
    )
    assert set(values) == {s.name for s in settings.SETTINGS} | {"DAGSTER_HOME"}

    # a secret the user typed into the file is kept on regeneration; an unsafe default is not written
    path.write_text(
        text.replace(
            f"MONGODB_PASSWORD=${{MONGODB_PASSWORD:-{generated['mongodb']}}}", "MONGODB_PASSWORD=typed-in"
        )
    )
    monkeypatch.setenv("TICKS_PROVIDERS_CONFIG", "/opt/conf/$HOME}/x.yaml")
    settings.write_dotenv(path)
    regenerated = path.read_text()
    assert "MONGODB_PASSWORD=typed-in\n" in regenerated and "TICKS_PROVIDERS_CONFIG=" not in regenerated
    assert (
        "# TICKS_PROVIDERS_CONFIG: its value holds a character a .env default cannot; export it"
        in regenerated
    )


def test_an_empty_clickhouse_dsn_stays_derived_when_read(tmp_path, monkeypatch):
    """The file leaves CLICKHOUSE_DSN empty (resolved when read: the local stack's engine server on
    STACK_CLICKHOUSE_PORT, which serves <state dir>/clickhouse), so a port exported later is the one used."""
    path = tmp_path / ".env"
    monkeypatch.delenv("CLICKHOUSE_DSN", raising=False)
    monkeypatch.setenv("STACK_CLICKHOUSE_PORT", "58123")
    settings.write_dotenv(path)
    assert "CLICKHOUSE_DSN=${CLICKHOUSE_DSN:-}\n" in path.read_text()
    monkeypatch.setenv("STACK_CLICKHOUSE_PORT", "58124")
    for name, value in dotenv_values(path).items():  # as Dagster's loader puts them into the process
        if name != "STACK_CLICKHOUSE_PORT":
            monkeypatch.setenv(name, value or "")
    assert settings.clickhouse_dsn() == "http://127.0.0.1:58124"
    monkeypatch.setenv(
        "CLICKHOUSE_DSN", "http://clickhouse.internal:8123"
    )  # one exported when written is kept
    settings.write_dotenv(path)
    assert "CLICKHOUSE_DSN=${CLICKHOUSE_DSN:-http://clickhouse.internal:8123}\n" in path.read_text()


@pytest.fixture(scope="module")
def password_server():
    """A private server of this module on which USER gets in with PASSWORD only (scram-sha-256), owning DB
    (the `dagster dev`/`dg` test's) and CLI_DB (the `marketdata` test's: each test starts from an empty
    one)."""
    from tests.support.private_postgres import PrivatePostgres

    # Not under pytest's tmp dir: its folders are root's alone, and the server runs as `postgres`.
    server = PrivatePostgres(Path(tempfile.mkdtemp(prefix="marketdata-private-pg-"))).init()
    try:
        server.password_only(USER, PASSWORD, DB, CLI_DB)
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(
                host="127.0.0.1", port=server.port, user=USER, password="wrong", dbname=DB, connect_timeout=5
            ).close()
        yield server
    finally:
        server.close()


def user_shell(server, tmp_path: Path, db: str = DB) -> dict[str, str]:
    """A shell in an activated venv where the user exported their own servers (a host name the
    generated .env does not have, their port, user, password, database and Dagster home)."""
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "dagster.yaml").write_text("{}\n")  # a SQLite instance of this test
    return {
        **plain_environment(),
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "NO_COLOR": "1",
        "TIMESCALE_HOST": "localhost",
        "TIMESCALE_PORT": str(server.port),
        "TIMESCALE_USER": USER,
        "TIMESCALE_PASSWORD": PASSWORD,
        "TIMESCALE_DB": db,
        "TIMESCALE_SSLMODE": "disable",
        "DAGSTER_HOME": str(tmp_path / "home"),
        "MARKETDATA_STATE_DIR": str(tmp_path / "state"),
        # the stack's Dagster storage, whose password is generated under the stack's state dir, not this one
        "DAGSTER_PG_PASSWORD": settings.get("DAGSTER_PG_PASSWORD"),
    }


def user_tables(server) -> set[str]:
    with psycopg.connect(
        host="127.0.0.1", port=server.port, user=USER, password=PASSWORD, dbname=DB, connect_timeout=5
    ) as conn:
        return {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}


# How `dagster dev` (and `dg dev`, which also sets DAGSTER_PROJECT_ENV_FILE_PATHS) load the code
# location: the CLI injects the working directory's .env, the code server injects the project's
# .env again from the instance's secrets loader; then the definitions' resources connect.
PROBE = """
import json, logging, os
from dagster._cli.utils import get_possibly_temporary_instance_for_cli

os.environ["DAGSTER_PROJECT_ENV_FILE_PATHS"] = json.dumps({"marketdata_assets": "."})
with get_possibly_temporary_instance_for_cli("dagster dev", logger=logging.getLogger("probe")) as instance:
    instance.inject_env_vars("marketdata_assets")
    import dagster as dg
    from marketdata_assets.definitions import defs
    with dg.build_resources({"timescale": defs().resources["timescale"]}) as resources:
        timescale = resources.timescale
        with timescale.connection() as conn:
            user, port = conn.execute("SELECT current_user, inet_server_port()").fetchone()
    print(json.dumps({"host": timescale.host, "user": user, "port": port, "home": os.environ["DAGSTER_HOME"],
                      "password_is_the_exported_one": timescale.password == os.environ["EXPORTED"]}))
"""


def test_dagster_dev_and_dg_from_the_repo_root_use_the_exported_host_and_password(password_server, tmp_path):
    settings.write_dotenv()  # what every `make` target writes, the local stack's values in it
    generated = dotenv_values(REPO / ".env", interpolate=False)
    assert (
        generated["TIMESCALE_HOST"].startswith("${TIMESCALE_HOST:-")
        and generated["TIMESCALE_PASSWORD"]
        == f"${{TIMESCALE_PASSWORD:-{settings.stack_secrets()['postgres']}}}"
    )
    env = user_shell(password_server, tmp_path)
    probe = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=REPO,
        env={**env, "EXPORTED": PASSWORD},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert probe.returncode == 0, probe.stderr[-3000:]
    assert json.loads(probe.stdout.strip().splitlines()[-1]) == {
        "host": "localhost",
        "user": USER,
        "port": password_server.port,
        "home": env["DAGSTER_HOME"],
        "password_is_the_exported_one": True,
    }

    launched = subprocess.run(
        [str(BIN / "dg"), "launch", "--assets", "bar_store"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert launched.returncode == 0, (launched.stdout + launched.stderr)[-3000:]
    assert {"stock_1min_qfq", "etl_metadata"} <= user_tables(
        password_server
    )  # bootstrapped on the user's server
    assert PASSWORD not in launched.stdout + launched.stderr


def test_the_marketdata_cli_uses_the_exported_host_and_password(password_server, tmp_path):
    settings.write_dotenv()
    env = user_shell(password_server, tmp_path, CLI_DB)
    drop = tmp_path / "drop"
    drop.mkdir()
    bars = fx.make_bars("600000.SH", fx.trading_days(date(2026, 3, 2), 2), seed=1)
    fx.write_text(drop / "600000.SH.csv", fx.render(bars, "cn_minute"), bom=True)
    result = subprocess.run(
        [str(BIN / "marketdata"), "load-minute-bars", "--data-dir", str(drop)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    with psycopg.connect(
        host="127.0.0.1",
        port=password_server.port,
        user=USER,
        password=PASSWORD,
        dbname=CLI_DB,
        connect_timeout=5,
    ) as conn:
        assert conn.execute("SELECT count(*) FROM stock_1min_qfq").fetchone()[0] == bars.height == 480
    assert PASSWORD not in result.stdout + result.stderr
