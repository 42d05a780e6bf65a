"""A PostgreSQL server of one test's own, for tests that stop, kill or restart the server.

The stack's server is shared by every test worker: a test that shuts a server down does it to one of
these instead. Same binaries and TimescaleDB build as the stack (scripts/stack.py); initdb takes a
few seconds, so use it only where a server has to die.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from pathlib import Path

import psycopg

from tests.conftest import free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")


class PrivatePostgres:
    """initdb + pg_ctl on a free port under `root`; `stop(mode)` ("immediate" is a crash), `start()` again."""

    def __init__(self, root: Path, timescaledb: bool = True):
        self.root = root
        self.data = root / "data"
        self.socket_dir = root / "socket"
        self.logfile = root / "postgres.log"
        self.port = free_port()
        self.timescaledb = timescaledb

    def _as_owner(self) -> list[str]:
        return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _run(self, *args: str) -> None:
        result = subprocess.run([*self._as_owner(), *args], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(
                f"{' '.join(args[:2])} failed: {result.stdout}{result.stderr}\n"
                f"{self.logfile.read_text() if self.logfile.exists() else ''}"
            )

    def init(self) -> PrivatePostgres:
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        self.logfile.touch()
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            for path in (self.root, self.socket_dir, self.logfile):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self._run(
            str(PG_BIN / "initdb"),
            "-D",
            str(self.data),
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "-U",
            "postgres",
        )
        return self.start()

    def start(self) -> PrivatePostgres:
        options = [
            f"-c port={self.port}",
            "-c listen_addresses=127.0.0.1",
            f"-c unix_socket_directories={self.socket_dir}",
            "-c max_connections=100",
            "-c fsync=off",
        ]
        if self.timescaledb:
            options += ["-c shared_preload_libraries=timescaledb", "-c timescaledb.telemetry_level=off"]
        self._run(
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.logfile),
            "-o",
            " ".join(options),
            "-w",
            "-t",
            "60",
            "start",
        )
        return self

    def stop(self, mode: str = "fast") -> None:
        """`immediate` is what a crash or a power cut looks like to the clients (no checkpoint, no
        goodbye)."""
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def create_database(self, name: str, extension: bool = False) -> str:
        with self.connect("postgres") as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        if extension:
            with self.connect(name) as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        return name

    def password_only(self, user: str, password: str, *databases: str) -> None:
        """`user` may log in over TCP with `password` only (scram-sha-256) and owns `databases` (created,
        with TimescaleDB)."""
        with self.connect() as conn:
            conn.execute(f"CREATE ROLE {user} LOGIN PASSWORD '{password}'")
        for name in databases:
            self.create_database(name, extension=True)
            with self.connect() as conn:
                conn.execute(f'ALTER DATABASE "{name}" OWNER TO {user}')
        hba = self.data / "pg_hba.conf"
        hba.write_text(
            f"host all {user} 127.0.0.1/32 scram-sha-256\nhost all {user} ::1/128 scram-sha-256\n"
            + hba.read_text()
        )
        with self.connect() as conn:
            conn.execute("SELECT pg_reload_conf()")

    def connect(self, dbname: str = "postgres") -> psycopg.Connection:
        return psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user="postgres",
            dbname=dbname,
            autocommit=True,
            connect_timeout=5,
        )

    def url(self, dbname: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def close(self) -> None:
        if self.running():
            try:
                self.stop("immediate")
            except RuntimeError:
                pass
        shutil.rmtree(self.root, ignore_errors=True)
