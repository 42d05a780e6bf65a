"""Opening a ClickHouse client, embedded or a server, without Dagster: the one path the Dagster resource
(resources/clickhouse.py) and the read API (marketdata_assets.read) both take.

`chdb:///path` opens the real ClickHouse engine in-process through clickhouse-connect's chDB backend;
only one process may hold a data directory, so the client is opened under an exclusive file lock
(`.<dir>.lock` beside it, holding the holder's pid) and the lock is released when the client is
closed. Clients of one process share the lock (chDB shares one engine per process and path).
`http(s)://host:port` talks to a ClickHouse server; nothing is serialized then. The local stack's default
is such a server: one process serving the engine to all the others (local_server.py).
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import clickhouse_connect
from clickhouse_connect.driver.exceptions import OperationalError

from marketdata_assets.core import settings
from marketdata_assets.core.errors import StoreUnavailable, scrub
from marketdata_assets.core.identifiers import sql_identifier
from marketdata_assets.stores.clickhouse import cluster


class _RaisedAnyway(logging.Filter):
    """clickhouse-connect logs "Unexpected Http Driver Exception" just before it raises the error it
    means; that error is what gets reported (StoreUnavailable naming host:port, a step's failure), so the
    log line (a second line, on stderr when nothing handles logging) is dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Unexpected Http Driver Exception")


logging.getLogger("clickhouse_connect.driver._backend.http_sync").addFilter(_RaisedAnyway())


class EmbeddedLockTimeout(RuntimeError):
    """Another process holds the embedded engine's data directory (the message names it)."""


def process_description(pid: str, most: int = 160) -> str:
    """`pid N (program and its arguments)`, as far as /proc tells (the holder of a lock, for a message): one
    line whatever the command line holds (a `python -c` script's newlines folded), at most `most`
    characters."""
    try:
        argv = [
            a.decode(errors="replace")
            for a in Path(f"/proc/{int(pid)}/cmdline").read_bytes().split(b"\0")
            if a
        ]
    except (OSError, ValueError):
        argv = []
    words = [Path(argv[0]).name, *argv[1:]] if argv else []
    command = " ".join(" ".join(word.split()) for word in words)
    command = command if len(command) <= most else command[: most - 1].rstrip() + "…"
    return f"pid {pid} ({command})" if command else f"pid {pid}"


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

    def acquire(self, timeout_s: float, on_wait=None) -> float:
        """Take the lock (``on_wait(holder pid)`` once if it must wait); the seconds waited."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        started = time.monotonic()
        deadline, announced = started + timeout_s, False
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
                        f"embedded ClickHouse at {self.data_dir} is held by "
                        f"{process_description(self.holder())} for more than {timeout_s:.0f} s; only one "
                        "process can open it (wait for that step or session to finish, read the Parquet "
                        "export instead, or use a ClickHouse server DSN)"
                    ) from None
                time.sleep(0.2)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return time.monotonic() - started if announced else 0.0

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


# chDB shares one engine per process and path: clients of the same process share the lock.
_process_locks: dict[Path, list] = {}
_process_locks_guard = threading.Lock()


def acquire_directory(data_dir: Path, timeout_s: float, on_wait=None) -> float:
    """Hold `data_dir` for this process (shared by its clients); the seconds waited for another."""
    with _process_locks_guard:
        held = _process_locks.get(data_dir)
        if held:
            held[1] += 1
            return 0.0
    lock = _DirectoryLock(data_dir)
    waited = lock.acquire(timeout_s, on_wait)
    with _process_locks_guard:
        _process_locks[data_dir] = [lock, 1]
    return waited


def wait_line(data_dir: Path, holder: str, timeout_s: float) -> str:
    """What a waiter says at once: which directory, who holds it, how long at most, how to stop."""
    return (
        f"waiting for the embedded ClickHouse at {data_dir}: held by {process_description(holder)}; "
        f"up to {timeout_s:.0f} s (lock_timeout_s), Ctrl-C stops. A ClickHouse server DSN (the local stack's "
        "default) lets both in at once"
    )


def release_directory(data_dir: Path) -> None:
    with _process_locks_guard:
        held = _process_locks.get(data_dir)
        if not held:
            return
        held[1] -= 1
        if held[1] == 0:
            held[0].release()
            del _process_locks[data_dir]


def address(dsn: str) -> str:
    """host:port of a server DSN (no credentials), or the embedded DSN itself."""
    if dsn.startswith("chdb:"):
        return dsn
    parts = urlsplit(dsn)
    return f"{parts.hostname}:{parts.port or (8443 if parts.scheme == 'https' else 8123)}"


_CAUSE = re.compile(
    r"\[Errno \d+\] ([^'\")]+)|(Connection aborted|RemoteDisconnected|Failed to read response data)"
)


def gone(error: BaseException, client) -> StoreUnavailable | None:
    """The error as StoreUnavailable naming the server when the server went away under a call (a refused,
    reset or cut connection: the call never reached or never left the engine); None for anything else
    (the server answered with an error about what it was asked)."""
    if not isinstance(error, OperationalError) or not getattr(client, "url", ""):
        return None
    cause = _CAUSE.search(str(error))
    reason = next(filter(None, cause.groups())) if cause else "the connection failed"
    return StoreUnavailable(
        "ClickHouse",
        address(client.url),
        f"{reason.strip()} (the server went away)",
        "What was acknowledged before is stored; restart the server (`scripts/stack up "
        "clickhouse`, which `make run` does) and run the same command again",
    )


def embedded_dir(dsn: str) -> Path | None:
    """The data directory of an embedded DSN (None: a server, or chdb://memory)."""
    if not dsn.startswith("chdb:") or dsn == "chdb://memory":
        return None
    return Path(dsn.removeprefix("chdb://"))


LOCK_TIMEOUT_S = 300.0  # how long a step waits for another process's embedded engine by default


def open_client(
    dsn: str,
    database: str,
    *,
    user: str | None = None,
    password: str | None = None,
    connect_timeout_s: int = 5,
    lock_timeout_s: float = LOCK_TIMEOUT_S,
    on_wait=None,
    on_acquired=None,
    create_database: bool = True,
):
    """(client, locked data directory or None). On the embedded engine the data directory's lock is
    taken first (waiting up to ``lock_timeout_s``, ``on_wait(holder pid)`` once when it has to wait and
    ``on_acquired(seconds)`` when such a wait ends;
    :class:`EmbeddedLockTimeout` naming the holder after that); release it with :func:`release_directory`
    after closing the client. A server that cannot be reached raises StoreUnavailable (no password in it).
    `user` and `password` default to CLICKHOUSE_USER and CLICKHOUSE_PASSWORD (the stack's generated one)."""
    sql_identifier(database, "ClickHouse database")
    data_dir = embedded_dir(dsn)
    if dsn.startswith("chdb:") and cluster.configured():
        raise ValueError(
            f"CLICKHOUSE_CLUSTER={cluster.configured()} needs ClickHouse servers (CLICKHOUSE_DSN "
            "http(s)://...), not the embedded engine: empty it for one node"
        )
    if dsn.startswith("chdb:"):
        if data_dir is not None:
            data_dir.mkdir(parents=True, exist_ok=True)
            waited = acquire_directory(data_dir, lock_timeout_s, on_wait)
            if waited and on_acquired:
                on_acquired(waited)
        try:
            client = clickhouse_connect.get_client(dsn=dsn)
        except Exception as error:  # noqa: BLE001 - whatever chDB raises: the store is unavailable
            if data_dir is not None:
                release_directory(data_dir)
            raise StoreUnavailable(
                "ClickHouse (embedded chDB)",
                dsn,
                str(error)[:300],
                "Another process may hold the data directory; set CLICKHOUSE_DSN to another "
                "path or a server.",
            ) from None
    else:
        user = settings.get("CLICKHOUSE_USER") if user is None else user
        password = settings.get("CLICKHOUSE_PASSWORD") if password is None else password
        loopback = urlsplit(dsn).hostname in ("127.0.0.1", "localhost", "::1")
        try:
            client = clickhouse_connect.get_client(
                dsn=dsn,
                username=user,
                password=password,
                compress=not loopback,
                connect_timeout=connect_timeout_s,
                send_receive_timeout=300,
                settings=cluster.client_settings() if cluster.configured() else None,
            )
        except Exception as error:  # noqa: BLE001 - whatever the driver raises: the server is unavailable
            raise StoreUnavailable(
                "ClickHouse",
                address(dsn),
                scrub(str(error).splitlines()[0][:300], password),
                "Start the local stack's engine server (`scripts/stack up clickhouse`, which `make run` "
                "does) or the server of docker/compose.yaml, or set CLICKHOUSE_DSN.",
            ) from None
    if create_database:
        client.command(f"CREATE DATABASE IF NOT EXISTS `{database}`")
    return client, data_dir
