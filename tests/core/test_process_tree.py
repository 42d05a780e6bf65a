"""`make run`'s launcher stopped by SIGTERM (a supervisor, `timeout`, a container's stop) or losing its
parent: the UI it started and every process under it end within seconds and free their ports, even those
started in sessions of their own that ignore Ctrl-C and were orphaned (Dagster's webserver and daemon
under `dg dev`). Real processes, shaped as that tree: launcher -> `dg`-like child -> two servers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from marketdata_assets.core.process_tree import descendants

REPO = Path(__file__).resolve().parents[2]

# A server holding a port, in a session of its own, deaf to Ctrl-C (as a slow webserver is).
SERVER = """
import signal, socket, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
listener = socket.socket(); listener.bind(("127.0.0.1", 0)); listener.listen()
print(listener.getsockname()[1], flush=True)
while True:
    time.sleep(1)
"""
# `dg dev`'s shape: it starts the servers in sessions of their own and, on Ctrl-C, leaves them behind.
UI = f"""
import subprocess, sys, time
servers = [subprocess.Popen([sys.executable, "-c", {SERVER!r}], stdout=subprocess.PIPE, text=True,
                            start_new_session=True) for _ in range(2)]
lines = [f"{{server.pid}} {{server.stdout.readline().strip()}}" for server in servers]
with open(sys.argv[1] + ".tmp", "w") as out:
    out.write("\\n".join(lines) + "\\n")
import os; os.rename(sys.argv[1] + ".tmp", sys.argv[1])
while True:
    time.sleep(1)
"""
# The launcher, as apps/demo.py serves the UI: guarded; started with SIGINT ignored (a shell's background
# job) and through a Dagster run since, which leaves SIGTERM as SIGINT's handler.
LAUNCHER = f"""
import signal, sys
from marketdata_assets.apps.demo import serve_until_stopped
from marketdata_assets.core import process_tree
process_tree.guard()
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGTERM, signal.getsignal(signal.SIGINT))
sys.exit(serve_until_stopped([sys.executable, "-c", {UI!r}, sys.argv[1]], None))
"""
# A parent that starts the launcher and is then killed (make under `kill -9`).
PARENT = f"""
import subprocess, sys
subprocess.Popen([sys.executable, "-c", {LAUNCHER!r}, sys.argv[1]]).wait()
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _started(script: str, tmp_path: Path) -> tuple[subprocess.Popen, list[int], list[int]]:
    """The process, the pids of the tree under it (the UI's, the servers') and the servers' ports."""
    said = tmp_path / "servers"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(said)], cwd=REPO, env=env, start_new_session=True
    )
    deadline = time.monotonic() + 60
    while not said.exists():
        assert proc.poll() is None and time.monotonic() < deadline, "the tree did not start"
        time.sleep(0.05)
    servers = [line.split() for line in said.read_text().splitlines()]
    return proc, descendants(proc.pid), [int(port) for _, port in servers]


@pytest.mark.parametrize("how", ["sigterm", "parent_killed"])
def test_the_launcher_stopped_any_way_leaves_no_process_nor_port(how, tmp_path):
    proc, pids, ports = _started(PARENT if how == "parent_killed" else LAUNCHER, tmp_path)
    assert len(pids) >= 3 and all(_alive(pid) for pid in pids) and all(_listening(port) for port in ports)
    began = time.monotonic()
    if how == "sigterm":
        proc.send_signal(signal.SIGTERM)  # a supervisor stops the launcher alone
    else:
        proc.kill()  # the launcher's parent is gone: it is told by the kernel
    proc.wait(timeout=60)
    deadline = time.monotonic() + 60
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in pids if _alive(pid)], how
    assert not [port for port in ports if _listening(port)], how
    # Ctrl-C to the UI, then SIGTERM to the servers it left (3 s later): seconds, not minutes
    assert time.monotonic() - began < 30, how
