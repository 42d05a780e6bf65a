"""ClickHouse resource: the same clickhouse-connect API on an embedded engine or a server.

`chdb:///path` opens the real ClickHouse engine in-process through clickhouse-connect's chDB
backend; only one process may hold a data directory, so the client is opened under an exclusive
file lock and closed when the step ends (steps that use it are also in the `clickhouse` pool).
`http(s)://host:port` talks to a ClickHouse server; nothing is serialized then. The opening and the
lock are stores/clickhouse/connection.py's (shared with the read API).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
from pydantic import Field, PrivateAttr

from marketdata_assets.resources.held import HeldClientResource
from marketdata_assets.stores.clickhouse import connection
from marketdata_assets.stores.clickhouse.connection import (  # noqa: F401  (their home is stores/clickhouse)
    EmbeddedLockTimeout,
    _DirectoryLock,
    acquire_directory,
    release_directory,
)


class ClickHouseResource(HeldClientResource):
    """ClickHouse, embedded (chdb:///path, chdb://memory) or a server (http(s)://host:port)."""

    dsn: str = Field(description="CLICKHOUSE_DSN: chdb:///path, chdb://memory or http(s)://host:port.")
    user: str = Field(default="default", description="CLICKHOUSE_USER (server DSNs).")
    password: str = Field(
        default="",
        description="CLICKHOUSE_PASSWORD (server DSNs; empty: the variable's value, "
        "else the local stack's generated one for its own server).",
    )
    database: str = Field(
        default="marketdata", description="CLICKHOUSE_DATABASE: database of the tick tables."
    )
    connect_timeout_s: int = Field(default=5, description="Server DSNs: connect timeout.")
    lock_timeout_s: float = Field(
        default=connection.LOCK_TIMEOUT_S,
        description="Embedded: how long to wait "
        "for another process holding the data directory (said on the console at once).",
    )

    _locked_dir: Path | None = PrivateAttr(default=None)
    _log = PrivateAttr(default=None)

    @property
    def embedded(self) -> bool:
        return self.dsn.startswith("chdb:")

    @property
    def address(self) -> str:
        return connection.address(self.dsn)

    def _open(self):
        data_dir = connection.embedded_dir(self.dsn)
        client, self._locked_dir = connection.open_client(
            self.dsn,
            self.database,
            user=self.user,
            password=self.password or None,
            connect_timeout_s=self.connect_timeout_s,
            lock_timeout_s=self.lock_timeout_s,
            on_wait=lambda pid: self._say(connection.wait_line(data_dir, pid, self.lock_timeout_s)),
            on_acquired=lambda s: self._say(
                f"the embedded ClickHouse at {data_dir} is free after {s:.1f} s: going on"
            ),
        )
        return client

    def _say(self, line: str) -> None:
        """A wait on the console at once (the command's stderr) and in the run's log."""
        print(line, file=sys.stderr, flush=True)
        if self._log is not None:
            self._log.info(line)

    def _release_lock(self) -> None:
        if self._locked_dir is not None:
            release_directory(self._locked_dir)
            self._locked_dir = None

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._log = context.log

    def close(self) -> None:
        super().close()
        self._release_lock()

    @contextmanager
    def get_client(self) -> Iterator:
        """The clickhouse-connect client (opened on first use, closed at step teardown)."""
        if self._client is None:
            self._client = self._open()
        yield self._client
