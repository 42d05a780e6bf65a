"""TimescaleDB resource: a psycopg 3 pool, a connection check and a capability probe.

The probe runs once per step process and tells assets which path to take:
- `extension_version`: TimescaleDB installed in the database (None: plain Postgres),
- `license`: "timescale" (continuous aggregates available) or "apache" (hypertables only),
- `copy_from_stdin`: False on the PGlite (WebAssembly) server, where COPY FROM STDIN aborts the
  server, so loaders use multi-row INSERT ... SELECT FROM unnest(...) instead.

A server that dies mid-work fails the step within seconds: the first lost connection marks the
store down, closes the pool (threads waiting for a connection wake up) and every later request
raises the same StoreUnavailable naming the server, instead of each waiting the pool timeout.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Literal

import dagster as dg
import psycopg
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout
from pydantic import Field, PrivateAttr

from marketdata_assets.core import settings
from marketdata_assets.core.errors import StoreUnavailable, scrub

# How long a step waits on the pool before checking that the server is still there.
CHECKOUT_SLICE_S = 2.0


@dataclass(frozen=True)
class TimescaleCapabilities:
    server_version: str
    extension_version: str | None
    license: str | None
    copy_from_stdin: bool
    single_session: bool

    @property
    def continuous_aggregates(self) -> bool:
        return self.extension_version is not None and self.license == "timescale"

    def as_metadata(self) -> dict:
        return {**asdict(self), "continuous_aggregates": self.continuous_aggregates}


def probe_capabilities(conn: psycopg.Connection, copy_mode: str = "auto") -> TimescaleCapabilities:
    """Ask the server what it can do, without trying anything that could hurt it."""
    with conn.cursor() as cur:
        version = cur.execute("SELECT version()").fetchone()[0]
        row = cur.execute("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
        extension = row[0] if row else None
        license_ = None
        if extension:
            license_ = cur.execute("SELECT current_setting('timescaledb.license', true)").fetchone()[0]
    conn.rollback()
    # PGlite reports an emscripten/wasm build; its single backend dies on COPY FROM STDIN.
    wasm = any(marker in version.lower() for marker in ("emscripten", "wasm", "pglite"))
    copy = {"auto": not wasm, "on": True, "off": False}[copy_mode]
    return TimescaleCapabilities(
        server_version=version.split(" on ")[0],
        extension_version=extension,
        license=license_,
        copy_from_stdin=copy,
        single_session=wasm,
    )


class TimescaleResource(dg.ConfigurableResource):
    """The market database (PostgreSQL + TimescaleDB)."""

    host: str = Field(description="TIMESCALE_HOST")
    port: int = Field(default=5432, description="TIMESCALE_PORT")
    user: str = Field(default="postgres", description="TIMESCALE_USER")
    password: str = Field(
        default="",
        description="TIMESCALE_PASSWORD (empty: the variable's value, else the local "
        "stack's generated one for its own server)",
    )
    dbname: str = Field(default="marketdata", description="TIMESCALE_DB")
    sslmode: str = Field(default="prefer", description="TIMESCALE_SSLMODE")
    pool_size: int = Field(
        default=4,
        description="TIMESCALE_POOL_SIZE: connections per process "
        "(1 for a single-session server such as PGlite).",
    )
    connect_timeout_s: int = Field(default=5, description="Seconds before a connection attempt fails.")
    copy_mode: Literal["auto", "on", "off"] = Field(
        default="auto", description="COPY FROM STDIN: auto (probe), on, off (INSERT path)."
    )
    application_name: str = "marketdata-assets"

    _pool: ConnectionPool | None = PrivateAttr(default=None)
    _capabilities: TimescaleCapabilities | None = PrivateAttr(default=None)
    _down: StoreUnavailable | None = PrivateAttr(default=None)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def _conninfo(self) -> str:
        return psycopg.conninfo.make_conninfo(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password or settings.get("TIMESCALE_PASSWORD") or None,
            dbname=self.dbname,
            sslmode=self.sslmode,
            connect_timeout=self.connect_timeout_s,
            application_name=self.application_name,
            # a host that vanishes without closing the socket is noticed in ~25 s, not never
            keepalives=1,
            keepalives_idle=10,
            keepalives_interval=5,
            keepalives_count=3,
        )

    def _error(self, reason: str) -> StoreUnavailable:
        return StoreUnavailable(
            "TimescaleDB",
            f"{self.address} (database {self.dbname}, user {self.user})",
            scrub(
                reason.strip().splitlines()[0] if reason.strip() else reason,
                self.password,
                settings.get("TIMESCALE_PASSWORD"),
            ),
            "Start the local stack with `make stack-up` (or `scripts/stack up`), or set "
            "TIMESCALE_HOST/TIMESCALE_PORT to a running server.",
        )

    def connect(self, autocommit: bool = False) -> psycopg.Connection:
        """A dedicated connection outside the pool (for autocommit work such as CALL refresh_...)."""
        try:
            return psycopg.connect(self._conninfo(), autocommit=autocommit)
        except psycopg.OperationalError as error:
            raise self._error(str(error)) from None

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self.open()

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self.close()

    def open(self) -> None:
        if self._pool is not None:
            return
        with self.connect() as conn:  # fails fast with a clear message; the pool would only time out
            self._capabilities = probe_capabilities(conn, self.copy_mode)
        size = 1 if self._capabilities.single_session else self.pool_size
        self._pool = ConnectionPool(
            self._conninfo(),
            min_size=1,
            max_size=size,
            open=True,
            timeout=max(30, self.connect_timeout_s),
            name=f"timescale-{self.dbname}",
            check=ConnectionPool.check_connection,
        )

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        self._down = None

    def _lost(self, error: Exception) -> StoreUnavailable:
        """The server went away under a connection: every other user of this resource fails now too."""
        if self._down is None:
            detail = (str(error).strip().splitlines() or [type(error).__name__])[0]
            self._down = self._error(f"connection lost mid-work ({detail})")
            if self._pool is not None:
                self._pool.close(timeout=1)  # waiting threads get PoolClosed at once
        return self._down_error()

    def _down_error(self) -> StoreUnavailable:
        """A fresh exception per raise (threads must not share one traceback)."""
        down = self._down
        return StoreUnavailable(down.store, down.address, down.reason, down.hint)

    @property
    def capabilities(self) -> TimescaleCapabilities:
        self.open()
        return self._capabilities

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        """A pooled connection; committed on success, rolled back on error (psycopg_pool semantics).
        A connection lost to the server raises StoreUnavailable, here and in every later call."""
        if self._down is not None:
            raise self._down_error()
        self.open()
        pool = self._pool
        conn = self._checkout(pool)
        try:
            with conn:
                yield conn
        except (psycopg.OperationalError, psycopg.InterfaceError) as error:
            if conn.broken or conn.closed:
                raise self._lost(error) from None
            raise
        finally:
            pool.putconn(conn)

    def _checkout(self, pool: ConnectionPool) -> psycopg.Connection:
        """Wait for a pooled connection in short slices; between slices a direct connection attempt
        tells a busy pool (keep waiting) from a dead server (fail now, not at the pool timeout)."""
        deadline = time.monotonic() + pool.timeout
        while True:
            try:
                return pool.getconn(timeout=max(0.1, min(CHECKOUT_SLICE_S, deadline - time.monotonic())))
            except PoolClosed:
                if self._down is not None:
                    raise self._down_error() from None
                raise
            except PoolTimeout as error:
                if self._down is not None:
                    raise self._down_error() from None
                try:
                    psycopg.connect(self._conninfo()).close()
                except psycopg.OperationalError as failure:
                    raise self._lost(failure) from None
                if time.monotonic() >= deadline:
                    raise self._error(f"no connection within the pool timeout ({error})") from None

    def refresh_capabilities(self) -> TimescaleCapabilities:
        """Probe again (the bootstrap created the extension); the pool's connections stay usable."""
        with self.connection() as conn:
            self._capabilities = probe_capabilities(conn, self.copy_mode)
        return self._capabilities
