"""ClickHouse resource: the same clickhouse-connect API on an embedded engine or a server.

`chdb:///path` opens the real ClickHouse engine in-process through clickhouse-connect's chDB
backend; only one process may hold a data directory, so the client is opened under an exclusive
file lock and closed when the step ends (steps that use it are also in the `clickhouse` pool).
`http(s)://host:port` talks to a ClickHouse server; nothing is serialized then.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import clickhouse_connect
import dagster as dg
from pydantic import Field, PrivateAttr

from marketdata_assets.core.errors import StoreUnavailable, scrub
from marketdata_assets.core.identifiers import sql_identifier


class EmbeddedLockTimeout(RuntimeError):
    pass


class _DirectoryLock:
    """Exclusive lock on an embedded ClickHouse data directory, across processes."""

    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self.path = data_dir.parent / f".{data_dir.name}.lock"
        self._fd: int | None = None

    def holder(self) -> str:
        try:
            return self.path.read_text().strip() or "unknown"
        except OSError:
            return "unknown"

    def acquire(self, timeout_s: float, on_wait=None) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline, announced = time.monotonic() + timeout_s, False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not announced and on_wait:
                    on_wait(self.holder())
                    announced = True
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise EmbeddedLockTimeout(
                        f"embedded ClickHouse at {self.data_dir} is held by pid "
                        f"{self.holder()} for more than {timeout_s:.0f} s; only one process can open it "
                        "(wait for that step to finish, or use a ClickHouse server DSN)") from None
                time.sleep(0.2)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


# chDB shares one engine per process and path: clients of the same process share the lock.
_process_locks: dict[Path, list] = {}
_process_locks_guard = threading.Lock()


def acquire_directory(data_dir: Path, timeout_s: float, on_wait=None) -> None:
    with _process_locks_guard:
        held = _process_locks.get(data_dir)
        if held:
            held[1] += 1
            return
    lock = _DirectoryLock(data_dir)
    lock.acquire(timeout_s, on_wait)
    with _process_locks_guard:
        _process_locks[data_dir] = [lock, 1]


def release_directory(data_dir: Path) -> None:
    with _process_locks_guard:
        held = _process_locks.get(data_dir)
        if not held:
            return
        held[1] -= 1
        if held[1] == 0:
            held[0].release()
            del _process_locks[data_dir]


class ClickHouseResource(dg.ConfigurableResource):
    """ClickHouse, embedded (chdb:///path, chdb://memory) or a server (http(s)://host:port)."""

    dsn: str = Field(description="CLICKHOUSE_DSN: chdb:///path, chdb://memory or http(s)://host:port.")
    user: str = Field(default="default", description="CLICKHOUSE_USER (server DSNs).")
    password: str = Field(default="", description="CLICKHOUSE_PASSWORD (server DSNs).")
    database: str = Field(default="marketdata", description="CLICKHOUSE_DATABASE: database of the tick tables.")
    connect_timeout_s: int = Field(default=5, description="Server DSNs: connect timeout.")
    lock_timeout_s: float = Field(default=900, description="Embedded: how long to wait for another process "
                                                           "holding the data directory.")

    _client = PrivateAttr(default=None)
    _locked_dir: Path | None = PrivateAttr(default=None)
    _log = PrivateAttr(default=None)

    @property
    def embedded(self) -> bool:
        return self.dsn.startswith("chdb:")

    @property
    def address(self) -> str:
        if self.embedded:
            return self.dsn
        parts = urlsplit(self.dsn)
        return f"{parts.hostname}:{parts.port or (8443 if parts.scheme == 'https' else 8123)}"

    def _open(self):
        sql_identifier(self.database, "ClickHouse database")
        if self.embedded:
            if self.dsn != "chdb://memory":
                data_dir = Path(self.dsn.removeprefix("chdb://"))
                data_dir.mkdir(parents=True, exist_ok=True)
                log = self._log
                acquire_directory(data_dir, self.lock_timeout_s, on_wait=lambda pid: log and log.info(
                    f"waiting for embedded ClickHouse held by pid {pid}"))
                self._locked_dir = data_dir
            try:
                client = clickhouse_connect.get_client(dsn=self.dsn)
            except Exception as error:
                self._release_lock()
                raise StoreUnavailable("ClickHouse (embedded chDB)", self.dsn, str(error)[:300],
                                       "Another process may hold the data directory; set CLICKHOUSE_DSN to another "
                                       "path or a server.") from None
        else:
            try:
                client = clickhouse_connect.get_client(
                    dsn=self.dsn, username=self.user, password=self.password,
                    connect_timeout=self.connect_timeout_s, send_receive_timeout=300)
            except Exception as error:
                raise StoreUnavailable(
                    "ClickHouse", self.address, scrub(str(error).splitlines()[0][:300], self.password),
                    "Start the server (docker/compose.yaml) or set CLICKHOUSE_DSN; the local stack uses the embedded "
                    "engine (leave CLICKHOUSE_DSN empty).") from None
        client.command(f"CREATE DATABASE IF NOT EXISTS `{self.database}`")
        return client

    def _release_lock(self) -> None:
        if self._locked_dir is not None:
            release_directory(self._locked_dir)
            self._locked_dir = None

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._log = context.log

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self.close()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        self._release_lock()

    @contextmanager
    def get_client(self) -> Iterator:
        """The clickhouse-connect client (opened on first use, closed at step teardown)."""
        if self._client is None:
            self._client = self._open()
        yield self._client
