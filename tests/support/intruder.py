"""An unprivileged local user racing the stack's servers for a way in without their credentials.

`python -m tests.support.intruder`, started as root, drops to the OS user `nobody` before it opens a
socket (run as anyone else it stays that user), prints `ready uid=N`, then reads its targets on stdin:
`attack SERVICE PORT` (TCP on 127.0.0.1) or `unix SERVICE PATH`. It says each change of a target's
outcome as it happens (a JSON line `["change", target, time, outcome]`); `stop` ends it with one JSON
summary. Each target is attacked in a loop by a thread of its own, anonymously, in the server's own wire
protocol on raw sockets (no driver: nothing to import once the process is `nobody`):

- mongodb: `createUser intruder` with role root on admin;
- postgres, pglite: a startup as `postgres` with no password, then `CREATE ROLE intruder ... SUPERUSER`;
- clickhouse: `CREATE USER intruder` over HTTP with no credentials;
- nats: `CONNECT {}` and `PING`; redis: `PING`, then `ACL SETUSER intruder`.

An attempt ends `in` (the server ran it), `refused` (the server asked for credentials or refused, in its
own words), `down` (nothing listens), `denied` (the OS refused the connection: a socket in a private
directory) or `error`. The summary counts them per target and keeps each change of outcome with its
time (CLOCK_MONOTONIC, shared with the parent), so a test can tell that the racer met a server as it came up.

`Intruder` (the parent's side) starts it and, from a watcher thread, hands it every socket that starts
listening in a process naming the test's state directory, whatever its port (the racer attacks each
address once): a server started on a port no client knows is found the way any local user finds it
(/proc/net/tcp), here tied to its owner so that other tests' servers are never attacked.
"""

from __future__ import annotations

import json
import os
import pwd
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import bson
import bson.errors

REPO = Path(__file__).resolve().parents[2]
PAUSE_S = {"down": 0.005, "denied": 0.005}  # between attempts: fast while nothing listens
PAUSE_LIVE_S = 0.05  # a live server gets ~20 connections a second from each target
WATCH_S = 0.01  # how often the parent looks for new listeners
NO_TIME_WAIT = struct.pack("ii", 1, 0)  # SO_LINGER 0: closed by a reset, so /proc/net/tcp stays short
TIMEOUT_S = 2.0


def _read_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed by the server")
        data += chunk
    return data


def _read_line(sock: socket.socket) -> str:
    data = b""
    while not data.endswith(b"\r\n"):
        chunk = sock.recv(1)
        if not chunk:
            raise ConnectionError(f"closed by the server after {data!r}")
        data += chunk
    return data.decode(errors="replace").strip()


def mongodb(sock: socket.socket) -> tuple[str, str]:
    """OP_MSG createUser on admin: a refusal is Unauthorized (13); any other answer got past the check."""
    doc = {"createUser": "intruder", "pwd": "intruder", "roles": ["root"], "$db": "admin"}
    body = struct.pack("<I", 0) + b"\x00" + bson.encode(doc)
    sock.sendall(struct.pack("<iiii", 16 + len(body), 1, 0, 2013) + body)
    length, _, _, _ = struct.unpack("<iiii", _read_exact(sock, 16))
    reply = bson.decode(_read_exact(sock, length - 16)[5:])
    words = "created" if reply.get("ok") == 1 else f"{reply.get('code')} {reply.get('errmsg')}"
    return ("refused" if reply.get("code") == 13 else "in"), words


def _pg_message(sock: socket.socket) -> tuple[bytes, bytes]:
    kind, length = struct.unpack("!ci", _read_exact(sock, 5))
    return kind, _read_exact(sock, length - 4)


def _pg_error(body: bytes) -> str:
    fields = {part[:1]: part[1:] for part in body.split(b"\0") if part}
    return f"{fields.get(b'C', b'').decode()} {fields.get(b'M', b'').decode()}"


def postgres(sock: socket.socket) -> tuple[str, str]:
    """A startup as the superuser with no password; logged in, it creates a superuser of its own."""
    params = b"user\0postgres\0database\0postgres\0\0"
    sock.sendall(struct.pack("!ii", 8 + len(params), 196608) + params)
    kind, body = _pg_message(sock)
    if kind == b"E":
        return "refused", _pg_error(body)
    code = struct.unpack("!i", body[:4])[0]
    if kind != b"R" or code != 0:
        return "refused", f"asks for a password (authentication request {code})"
    while kind != b"Z":
        kind, body = _pg_message(sock)
    query = b"CREATE ROLE intruder LOGIN SUPERUSER PASSWORD 'intruder'\0"
    sock.sendall(b"Q" + struct.pack("!i", 4 + len(query)) + query)
    kind, body = _pg_message(sock)
    return "in", "logged in as postgres: " + (_pg_error(body) if kind == b"E" else "CREATE ROLE")


def clickhouse(sock: socket.socket) -> tuple[str, str]:
    """A statement over HTTP with no credentials: 401/403 is a refusal, any other answer ran it."""
    statement = b"CREATE USER intruder IDENTIFIED BY 'intruder'"
    sock.sendall(
        b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        + f"Content-Length: {len(statement)}\r\n\r\n".encode()
        + statement
    )
    status = _read_line(sock)
    code = status.split()[1] if len(status.split()) > 1 else status
    return ("refused" if code in ("401", "403") else "in"), status


def nats(sock: socket.socket) -> tuple[str, str]:
    info = _read_line(sock)
    if not info.startswith("INFO"):
        return "error", info
    sock.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\nPING\r\n')
    answer = _read_line(sock)
    return ("in" if answer == "PONG" else "refused"), answer


def redis(sock: socket.socket) -> tuple[str, str]:
    sock.sendall(b"*1\r\n$4\r\nPING\r\n")
    answer = _read_line(sock)
    if answer != "+PONG":
        return "refused", answer
    sock.sendall(b"*5\r\n$3\r\nACL\r\n$7\r\nSETUSER\r\n$8\r\nintruder\r\n$2\r\non\r\n$9\r\n>intruder\r\n")
    return "in", f"PING answered without a password; ACL SETUSER: {_read_line(sock)}"


PROTOCOLS = {
    "mongodb": mongodb,
    "postgres": postgres,
    "pglite": postgres,
    "clickhouse": clickhouse,
    "nats": nats,
    "redis": redis,
}


def attempt(service: str, address: str | tuple[str, int]) -> tuple[str, str]:
    family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(TIMEOUT_S)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, NO_TIME_WAIT)
            sock.connect(address)
            return PROTOCOLS[service](sock)
    except ConnectionRefusedError:
        return "down", ""
    except (PermissionError, FileNotFoundError) as error:
        return ("denied" if isinstance(error, PermissionError) else "down"), str(error)
    except (OSError, ValueError, struct.error, bson.errors.BSONError) as error:
        return "error", f"{type(error).__name__}: {error}"


OUT = threading.Lock()


def say(line: str) -> None:
    with OUT:
        print(line, flush=True)


class Target:
    """One address attacked in a loop until the racer stops; each change of outcome is said as it happens."""

    def __init__(self, key: str, address: str | tuple[str, int], stop: threading.Event):
        self.key, self.service, self.address, self.stop = key, key.split()[0], address, stop
        self.counts: dict[str, int] = {}
        self.changes: list[tuple[float, str, str]] = []  # (monotonic time, outcome, the server's words)
        self.ins: list[tuple[float, str]] = []
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        last = None
        while not self.stop.is_set():
            outcome, words = attempt(self.service, self.address)
            now = time.monotonic()
            self.counts[outcome] = self.counts.get(outcome, 0) + 1
            if outcome != last:
                self.changes.append((now, outcome, words))
                say(json.dumps(["change", self.key, now, outcome]))
                last = outcome
            if outcome == "in" and len(self.ins) < 20:
                self.ins.append((now, words))
            self.stop.wait(PAUSE_S.get(outcome, PAUSE_LIVE_S))

    def summary(self) -> dict:
        return {"counts": self.counts, "changes": self.changes, "ins": self.ins}


def drop_privileges() -> None:
    if os.geteuid() != 0:
        return
    nobody = pwd.getpwnam("nobody")
    os.setgroups([])
    os.setgid(nobody.pw_gid)
    os.setuid(nobody.pw_uid)


def main() -> None:
    drop_privileges()
    print(f"ready uid={os.getuid()}", flush=True)
    stop, targets = threading.Event(), {}
    for line in sys.stdin:
        verb, *rest = line.split()
        if verb == "stop":
            break
        service, where = rest
        key = f"{service} {where}"
        if key not in targets:
            address = where if verb == "unix" else ("127.0.0.1", int(where))
            targets[key] = Target(key, address, stop)
    stop.set()
    for target in targets.values():
        target.thread.join(TIMEOUT_S + 1)
    summary = {key: target.summary() for key, target in targets.items()}
    say(json.dumps({"uid": os.getuid(), "targets": summary}))


# sock_diag (netlink): the kernel's listening sockets only. Reading /proc/net/tcp walks every bucket of the
# established table too: ~3.7 ms of CPU a look (most of it the kernel's) against ~0.05 ms here, a look
# every WATCH_S (~35% of a core for the watcher alone, beside the servers it watches start).
NETLINK_SOCK_DIAG, SOCK_DIAG_BY_FAMILY = 4, 20
NLM_F_REQUEST, NLM_F_DUMP, NLMSG_ERROR, NLMSG_DONE = 0x1, 0x300, 2, 3
TCP_LISTEN = 10


def _diag_listening(family: int) -> dict[str, int]:
    """inode -> port of every TCP socket of `family` listening in this network namespace (sock_diag)."""
    request = struct.pack("=BBBBI", family, socket.IPPROTO_TCP, 0, 0, 1 << TCP_LISTEN) + bytes(48)
    header = struct.pack("=IHHII", 16 + len(request), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, 1, 0)
    found = {}
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_SOCK_DIAG) as sock:
        sock.sendto(header + request, (0, 0))
        while True:
            data, at = sock.recv(65536), 0
            while at < len(data):
                length, kind = struct.unpack_from("=IH", data, at)
                if kind == NLMSG_DONE:
                    return found
                if kind == NLMSG_ERROR:
                    raise OSError(-struct.unpack_from("=i", data, at + 16)[0], "sock_diag refused the dump")
                # inet_diag_msg: family, state, timer, retrans (4 bytes), then the socket id (sport first,
                # big-endian; 48 bytes), expires, rqueue, wqueue, uid, inode
                port = struct.unpack_from("!H", data, at + 20)[0]
                found[str(struct.unpack_from("=I", data, at + 84)[0])] = port
                at += (length + 3) & ~3


def _proc_listening() -> dict[str, int]:
    found = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A":  # LISTEN
                found[fields[9]] = int(fields[1].rsplit(":", 1)[1], 16)
    return found


def listening_inodes() -> dict[str, int]:
    """Every TCP socket listening in this network namespace: inode -> port (sock_diag; /proc/net/tcp
    where netlink is not allowed)."""
    try:
        return {**_diag_listening(socket.AF_INET), **_diag_listening(socket.AF_INET6)}
    except OSError:
        return _proc_listening()


def owners_naming(text: str) -> dict[str, int]:
    """socket inode -> pid, over the processes whose command line names `text`."""
    owners = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if text.encode() not in (entry / "cmdline").read_bytes():
                continue
            for fd in (entry / "fd").iterdir():
                link = os.readlink(fd)
                if link.startswith("socket:["):
                    owners[link[8:-1]] = int(entry.name)
        except OSError:
            continue
    return owners


class Intruder:
    """The racer process, and a watcher that hands it every new listener of the state directory's servers."""

    def __init__(self, state: Path, service: str):
        self.state, self.service = state, service
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.intruder"],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.uid = int(self.process.stdout.readline().strip().removeprefix("ready uid="))
        self.lock = threading.Lock()
        self.heard = threading.Condition()
        self.changes: list[tuple[str, float, str]] = []  # (target, time, outcome) as the racer says them
        self.summary: dict | None = None
        self.listener = threading.Thread(target=self._listen, daemon=True)
        self.listener.start()
        self.watched: set[str] = set()  # inodes already looked at
        self.stopped = threading.Event()
        self.watcher = threading.Thread(target=self._watch, daemon=True)
        self.watcher.start()

    def attack(self, port: int | None = None, unix: Path | None = None) -> None:
        with self.lock:
            line = f"unix {self.service} {unix}" if unix else f"attack {self.service} {port}"
            self.process.stdin.write(line + "\n")
            self.process.stdin.flush()

    def _watch(self) -> None:
        while not self.stopped.wait(WATCH_S):
            fresh = {inode: port for inode, port in listening_inodes().items() if inode not in self.watched}
            if not fresh:
                continue
            owners = owners_naming(str(self.state))
            for inode, port in fresh.items():
                self.watched.add(inode)
                if inode in owners:
                    self.attack(port)

    def _listen(self) -> None:
        for line in self.process.stdout:
            said = json.loads(line)
            with self.heard:
                if isinstance(said, list):
                    self.changes.append(tuple(said[1:]))
                else:
                    self.summary = said
                self.heard.notify_all()

    def wait_until_now(self, target: str, outcome: str, timeout_s: float = 60) -> float | None:
        """When the racer's latest word on `target` became `outcome` (waiting for it to be), or None: a
        racer starved between a restart's down and up saw no up, so it is down since then, not since a
        later kill."""

        def latest() -> float | None:
            said = [(at, o) for t, at, o in self.changes if t == target]
            return said[-1][0] if said and said[-1][1] == outcome else None

        with self.heard:
            self.heard.wait_for(lambda: latest() is not None, timeout_s)
            return latest()

    def wait_for(self, target: str, outcome: str, after: float, timeout_s: float = 60) -> float | None:
        """When the racer said `target` turned `outcome` after the time `after` (waiting for it), or None."""

        def said() -> float | None:
            return next(
                (at for t, at, o in self.changes if t == target and at > after and o == outcome), None
            )

        with self.heard:
            self.heard.wait_for(lambda: said() is not None, timeout_s)
            return said()

    def finish(self) -> dict:
        self.stopped.set()
        self.watcher.join()
        self.process.stdin.write("stop\n")
        self.process.stdin.close()
        self.process.wait(30)
        self.listener.join(10)
        return self.summary


if __name__ == "__main__":
    main()
