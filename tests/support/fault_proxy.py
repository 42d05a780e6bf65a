"""A TCP proxy in front of a real database server, for "the server died mid-load" tests.

Clients connect to the proxy's port; every byte goes to and from the real server. `kill()` makes
the server look dead to them the way a killed server process does: open connections are dropped and
new ones refused, while the real server (shared by the rest of the suite) keeps running. `stall()` keeps the
connections open but forwards nothing more (a wedged server). `wait_for(n)` returns once n client
connections are open, so a test kills on an event, not after a sleep.
"""

from __future__ import annotations

import socket
import struct
import threading
from typing import Self


class FaultProxy:
    def __init__(self, upstream_host: str, upstream_port: int):
        self.upstream = (upstream_host, upstream_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self.accepted = 0
        self._sockets: list[socket.socket] = []
        self._lock = threading.Condition()
        self._dead = False
        self.stalled = False
        threading.Thread(target=self._accept, daemon=True, name="fault-proxy").start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed by kill()
            try:
                server = socket.create_connection(self.upstream, timeout=5)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._dead:
                    client.close()
                    server.close()
                    return
                self._sockets += [client, server]
                self.accepted += 1
                self._lock.notify_all()
            for src, dst in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                if not self.stalled:  # a stalled server reads and never answers
                    dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            src.close()  # each socket is the source of exactly one pipe

    def wait_for(self, connections: int, timeout: float = 60) -> None:
        """Block until `connections` client connections have been accepted in total."""
        with self._lock:
            if not self._lock.wait_for(lambda: self.accepted >= connections, timeout):
                raise TimeoutError(f"only {self.accepted} of {connections} connections reached the proxy")

    def stall(self) -> None:
        """From now on bytes are read and dropped: clients wait for answers that never come."""
        self.stalled = True

    def kill(self) -> None:
        """Drop every open connection, as the kernel does for a killed server process, and refuse
        new ones. (shutdown, not close: close() would not wake the pipes blocked in recv.)"""
        with self._lock:
            self._dead = True
            sockets, self._sockets = self._sockets, []
        try:  # shutdown wakes the thread blocked in accept(); close alone would not
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        for sock in sockets:
            try:  # SO_LINGER 0: the pipes' close() then resets instead of lingering
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        if not self._dead:
            self.kill()
