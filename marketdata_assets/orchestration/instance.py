"""The Dagster instance a command runs in (`marketdata ...`, `make run`): its Postgres storages on
one kept connection.

Outside the webserver, Dagster's Postgres storages open a new connection for every query
(SQLAlchemy's NullPool). A run of a few dozen steps writes hundreds of events: hundreds of backends
started and, on a server that asks for a password, as many SCRAM exchanges on both sides. A command
keeps one connection instead, with the webserver's own pool (`optimize_for_webserver`) but no
statement timeout (a slow query of a large instance must not fail a run), recycled after an hour,
and checked before each use (SQLAlchemy's pessimistic disconnect handling): a restarted server costs
a reconnect, and a stopped one still fails the connection attempts that apps.launch.storage_watch
reports. SQLite storages are left as they are.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
from sqlalchemy import event, exc

POOL_RECYCLE_SECONDS = 3600
MAX_OVERFLOW = 20  # connections beyond the kept one, for threads writing at once (closed when returned)


@contextmanager
def command_instance() -> Iterator[dg.DagsterInstance]:
    """The instance of DAGSTER_HOME, entered, its Postgres storages pooled."""
    with dg.DagsterInstance.get() as instance:
        instance.optimize_for_webserver(
            statement_timeout=0, pool_recycle=POOL_RECYCLE_SECONDS, max_overflow=MAX_OVERFLOW
        )
        for engine in postgres_engines(instance):
            event.listen(engine, "checkout", _ping)
        yield instance


def postgres_engines(instance: dg.DagsterInstance) -> list:
    """The SQLAlchemy engines of the instance's Postgres storages (dagster_postgres keeps one each)."""
    storages = (instance.run_storage, instance.event_log_storage, instance.schedule_storage)
    engines = [getattr(storage, "_engine", None) for storage in storages]
    return [engine for engine in engines if engine is not None and engine.dialect.name == "postgresql"]


def _ping(dbapi_connection, connection_record, connection_proxy) -> None:
    """A kept connection that no longer answers is replaced before use (the pool then connects anew)."""
    try:
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as error:  # whatever the driver raises for a closed or broken connection
        raise exc.DisconnectionError(f"the kept Dagster storage connection is gone: {error}") from error
