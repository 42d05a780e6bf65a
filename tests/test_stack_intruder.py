"""Every start path of every stack server, raced by an unprivileged local user (tests/support/intruder.py,
as `nobody` when the suite runs as root) with anonymous logins and user creation: on the server's port from
before the first start, and on any other port a process of the state directory opens. Nothing gets in,
ever: not at the first start, an idle `up`, a restart, a restart for new credentials, nor a start after
SIGKILL. A control shows the racer does get into a server that listens without credentials."""

from __future__ import annotations

import os
import pwd
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.support.intruder import Intruder, _proc_listening, listening_inodes
from tests.test_stack import postgres_readable_dir, stack  # noqa: F401  (the fixture)


def _env(service: str, port: int, secret: str) -> dict[str, str]:
    """The settings that put one service on `port` with `secret` (empty: the state's generated one)."""
    return {
        "postgres": {
            "DAGSTER_PG_PORT": str(port),
            "TIMESCALE_PORT": str(port),
            "DAGSTER_PG_PASSWORD": secret,
            "TIMESCALE_PASSWORD": secret,
        },
        "mongodb": {"MONGODB_URI": f"mongodb://127.0.0.1:{port}", "MONGODB_PASSWORD": secret},
        "pglite": {"STACK_PGLITE_PORT": str(port), "TIMESCALE_PORT": str(port), "TIMESCALE_PASSWORD": secret},
        "clickhouse": {
            "STACK_CLICKHOUSE_PORT": str(port),
            "CLICKHOUSE_DSN": "",
            "CLICKHOUSE_PASSWORD": secret,
        },
        "nats": {"NATS_URL": f"nats://127.0.0.1:{port}", "NATS_TOKEN": secret},
        "redis": {"REDIS_URL": f"redis://127.0.0.1:{port}/0", "REDIS_PASSWORD": secret},
    }[service]


def _kill_hard(pid: int) -> None:
    """SIGKILL a server and every process below it (Postgres' backends), as a crash would leave them."""
    family, grown = {pid}, True
    while grown:
        grown = False
        for entry in Path("/proc").iterdir():
            try:
                parent = int((entry / "stat").read_text().rsplit(") ", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if parent in family and int(entry.name) not in family:
                family.add(int(entry.name))
                grown = True
    for member in family:
        try:
            os.kill(member, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:  # until reaped, zombie too
        time.sleep(0.05)


SERVICES = ["postgres", "mongodb", "pglite", "clickhouse", "nats", "redis"]


@pytest.mark.parametrize("service", SERVICES)
def test_no_start_path_lets_an_anonymous_local_user_in(service, postgres_readable_dir):  # noqa: F811
    state, port = postgres_readable_dir, free_port()
    env = _env(service, port, "")
    intruder = Intruder(state, service)
    if os.geteuid() == 0:
        assert intruder.uid == pwd.getpwnam("nobody").pw_uid  # not the stack's user, not root
    intruder.attack(port)
    if service == "postgres":  # its socket, for the stack's own OS user only
        intruder.attack(unix=state / "postgres" / "socket" / f".s.PGSQL.{port}")
    main = f"{service} {port}"
    phases: list[tuple[str, float, float]] = []

    def up(**more: str) -> None:
        result = stack(state, "up", service, **{**env, **more})
        assert result.returncode == 0 and f"{service:<11} " in result.stdout, result.stdout + result.stderr

    def met(name: str, after: float) -> None:
        """The racer was at the port when the server came up: refused by it after `after`."""
        assert intruder.wait_for(main, "refused", after), (
            f"{service}: the racer never met the server in {name!r}"
        )

    def gone(name: str, after: float) -> float:
        """The racer sees the port closed (so that the next server is a new one to it): it said so after
        `after`, or it has said nothing since a closed port before (starved through a restart's short gap,
        it never saw the server that `after` then killed)."""
        closed = intruder.wait_for(main, "down", after, timeout_s=10) or intruder.wait_until_now(main, "down")
        assert closed, f"{service}: the racer never saw the server gone in {name!r}"
        return closed

    def pid() -> int:
        return int((state / "run" / f"{service}.pid").read_text().split()[0])

    changed = _env(service, port, "changed-by-the-user")
    try:
        began = time.monotonic()
        up()
        met("first start", began)
        phases.append(("first start", began, time.monotonic()))
        began = time.monotonic()
        up()
        phases.append(("an idle up", began, time.monotonic()))
        began = time.monotonic()
        stack(state, "down", service, **env)
        closed = gone("restart", began)
        up()
        met("restart", closed)
        phases.append(("restart", began, time.monotonic()))
        began = time.monotonic()
        up(**changed)  # `up` restarts it (Postgres: sets the password and reloads); the gap may be too short
        phases.append(("new credentials", began, time.monotonic()))  # for a loaded racer to see
        began = time.monotonic()
        _kill_hard(pid())
        closed = gone("start after SIGKILL", began)
        up(**changed)
        met("start after SIGKILL", closed)
        phases.append(("start after SIGKILL", began, time.monotonic()))
    finally:
        stack(state, "down", service, **changed)
        summary = intruder.finish()
    targets = summary["targets"]
    ins: dict[tuple[str, str], list[str]] = {}
    for target, seen in targets.items():
        for at, words in seen["ins"]:
            ins.setdefault((target, _phase_of(phases, at)), []).append(words)
    assert not ins, f"{service}: an anonymous local user got in:\n" + "\n".join(
        f"  {target} during {name!r}: {len(said)}{'+' if len(said) >= 20 else ''} times, first {said[0]!r}"
        for (target, name), said in ins.items()
    )
    assert targets[main]["counts"].get("refused", 0) > 0, targets[main]
    if service == "postgres" and os.geteuid() == 0:  # the socket: its directory is not for `nobody`
        unix = targets[f"postgres {state / 'postgres' / 'socket' / f'.s.PGSQL.{port}'}"]
        assert set(unix["counts"]) <= {"denied", "down"} and unix["counts"].get("denied"), unix


def _phase_of(phases: list[tuple[str, float, float]], at: float) -> str:
    return next((name for name, began, ended in phases if began <= at <= ended), f"t={at:.3f}")


def test_the_racer_gets_into_a_server_that_listens_without_credentials(tmp_path):
    """The control: a MongoDB-wire server started without `--auth`, as the stack once did to provision its
    user, is found on its port and taken (the racer is no test that cannot fail)."""
    storage = tmp_path / "mongodb" / "data"
    storage.mkdir(parents=True)
    intruder, port = Intruder(tmp_path, "mongodb"), free_port()  # watching only: it is told no port
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "secantusd-py"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--storage-path",
            str(storage),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert intruder.wait_for(f"mongodb {port}", "in", after=0), "the racer never got in"
    finally:
        summary = intruder.finish()  # before the server goes: a throwaway, killed
        server.kill()
        server.wait(30)
    (target,) = summary["targets"].values()
    assert target["counts"].get("in", 0) > 0, target
    assert target["ins"][0][1] == "created" or "51003" in target["ins"][0][1]  # created, or already there


def test_the_watcher_lists_every_listener_as_proc_net_tcp_does():
    """The watcher's look (sock_diag) finds a new listener, IPv4 and IPv6, with the inode and port
    /proc/net/tcp gives it, and no socket that does not listen (a racer would attack nothing, unseen)."""
    listeners, others = [], []
    try:
        for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
            listener = socket.socket(family)
            try:
                listener.bind((host, 0))
            except OSError:  # no IPv6 on this host
                listener.close()
                assert family == socket.AF_INET6
                continue
            listener.listen()
            listeners.append(listener)
            others.append(socket.create_connection(listener.getsockname()[:2]))
            others.append(listener.accept()[0])
        seen, listed = listening_inodes(), _proc_listening()
        for sock in listeners:
            inode = str(os.fstat(sock.fileno()).st_ino)
            assert seen[inode] == listed[inode] == sock.getsockname()[1]
        for sock in others:
            inode = str(os.fstat(sock.fileno()).st_ino)
            assert inode not in seen and inode not in listed
    finally:
        for sock in listeners + others:
            sock.close()
