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
for server in servers:
    print(server.pid, server.stdout.readline().strip(), flush=True)
while True:
    time.sleep(1)
"""
# The launcher, as apps/demo.py runs the UI: guarded, waiting on it.
LAUNCHER = f"""
import subprocess, sys
from marketdata_assets.apps.demo import _wait
from marketdata_assets.core import process_tree
process_tree.guard()
ui = subprocess.Popen([sys.executable, "-c", {UI!r}], stdout=subprocess.PIPE, text=True)
print(ui.pid, flush=True)
for _ in range(2):
    print(ui.stdout.readline().strip(), flush=True)
sys.exit(_wait(ui))
"""
# A parent that starts the launcher and is then killed (make under `kill -9`).
PARENT = f"""
import subprocess, sys
launcher = subprocess.Popen([sys.executable, "-c", {LAUNCHER!r}], stdout=sys.stdout)
launcher.wait()
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


def _started(script: str) -> tuple[subprocess.Popen, list[int], list[int]]:
    """The process, the pids of the tree (the launcher's, the UI's, the servers') and the servers' ports."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=env,
        start_new_session=True,
    )
    lines = [proc.stdout.readline().strip() for _ in range(3)]
    assert all(lines), lines
    servers = [line.split() for line in lines[1:]]
    ui = int(lines[0])
    return proc, [ui, *(int(pid) for pid, _ in servers)], [int(port) for _, port in servers]


@pytest.mark.parametrize("how", ["sigterm", "sigterm_to_group", "parent_killed"])
def test_the_launcher_stopped_any_way_leaves_no_process_nor_port(how):
    proc, pids, ports = _started(PARENT if how == "parent_killed" else LAUNCHER)
    assert all(_alive(pid) for pid in pids) and all(_listening(port) for port in ports)
    began = time.monotonic()
    if how == "sigterm":
        proc.send_signal(signal.SIGTERM)  # a supervisor stops the launcher alone
    elif how == "sigterm_to_group":
        os.killpg(proc.pid, signal.SIGTERM)  # `timeout` signals its whole process group
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
