"""orchestration.instance: the Dagster instance of a command (`marketdata ...`, `make run`) keeps one
Postgres connection where Dagster alone opens one per query; a restarted server costs a reconnect,
not a failed write. On a server of the test's own that lets the user in with a password only, as a
real one does. (A stopped or crashed server is still the failed connection that storage_watch reports:
test_dead_runs_storage, through the `marketdata` command.)"""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy
from sqlalchemy import event

from marketdata_assets.orchestration.instance import command_instance, postgres_engines

REPO = Path(__file__).resolve().parents[2]
USER, PASSWORD = "runner", "user-set-Command-Instance-7"


@pytest.fixture
def server(private_postgres, tmp_path, monkeypatch):
    """DAGSTER_HOME: the project's dagster.yaml, its storage on the private server."""
    private_postgres.password_only(USER, PASSWORD, "dagster")
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "instance" / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    for key, value in {
        "HOST": "127.0.0.1",
        "PORT": private_postgres.port,
        "USER": USER,
        "PASSWORD": PASSWORD,
        "DB": "dagster",
    }.items():
        monkeypatch.setenv(f"DAGSTER_PG_{key}", str(value))
    return private_postgres


def counted_connections(instance: dg.DagsterInstance) -> list[int]:
    """A one-item list counting the connections the instance's storages open from now on."""
    opened = [0]

    def count(*_):
        opened[0] += 1

    for engine in postgres_engines(instance):
        event.listen(engine, "connect", count)
    return opened


def use_every_storage(instance: dg.DagsterInstance, times: int) -> None:
    for _ in range(times):
        instance.get_runs_count()  # run storage
        instance.has_dynamic_partition("instruments", "BINANCE:BTCUSDT")  # event log storage
        instance.all_instigator_state()  # schedule storage


def test_a_command_keeps_one_connection_where_dagster_opens_one_per_query(server):
    with dg.DagsterInstance.get() as plain:
        assert len(postgres_engines(plain)) == 3
        per_query = counted_connections(plain)
        use_every_storage(plain, 5)
    with command_instance() as instance:
        kept = counted_connections(instance)
        use_every_storage(instance, 5)
        instance.add_dynamic_partitions("instruments", ["BINANCE:BTCUSDT"])
        assert instance.has_dynamic_partition("instruments", "BINANCE:BTCUSDT")
    assert per_query[0] >= 15
    assert kept[0] == 3  # one per storage, kept


def test_a_restarted_server_costs_a_reconnect_not_a_failed_query(server):
    with command_instance() as instance:
        opened = counted_connections(instance)
        use_every_storage(instance, 1)
        server.stop("fast")
        server.start()
        use_every_storage(instance, 2)
        assert opened[0] == 6  # each storage: its first connection, and one after the restart
    # without the check before use, the kept connection fails the first query after a restart
    with dg.DagsterInstance.get() as unchecked:
        unchecked.optimize_for_webserver(statement_timeout=0, pool_recycle=3600, max_overflow=20)
        unchecked.get_runs_count()
        server.stop("fast")
        server.start()
        with pytest.raises(sqlalchemy.exc.OperationalError):
            unchecked.get_runs_count()
