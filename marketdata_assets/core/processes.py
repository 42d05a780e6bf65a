"""Which process a run lives in, and whether that process still exists.

An in-process run (the `marketdata` command, `make run`) records its process as host, pid and the
process's start (the boot's id and the start time in clock ticks, from /proc): a pid the kernel has
given to another process since, or any pid after a reboot, no longer matches, so a dead run is never
taken for alive. A process of another host is never judged: only that machine can tell.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


def _boot_id() -> str:
    try:
        return (PROC / "sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def process_start(pid: int) -> str | None:
    """`<boot id>:<start time in clock ticks>` of `pid`; None if no such process; "" where /proc is
    missing."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return "" if not PROC.is_dir() else None
    # the command name (field 2) may hold spaces and parentheses: the fields after the last ")"
    fields = stat.rsplit(")", 1)[1].split()
    return f"{_boot_id()}:{fields[19]}"  # field 22: starttime


@dataclass(frozen=True)
class ProcessRef:
    """A process: its host, pid and start (process_start's text; "" when unknown)."""

    host: str
    pid: int
    start: str

    @classmethod
    def current(cls) -> ProcessRef:
        pid = os.getpid()
        return cls(socket.gethostname(), pid, process_start(pid) or "")

    def state(self, here: str | None = None) -> str:
        """alive | gone | elsewhere (another host: not judged)."""
        if self.host != (here or socket.gethostname()):
            return "elsewhere"
        start = process_start(self.pid)
        if start is None:
            return "gone"
        if start == "" or not self.start:  # no /proc: the pid exists, which is all we can tell
            return _pid_exists(self.pid)
        return "alive" if start == self.start else "gone"

    def describe(self, here: str | None = None) -> str:
        state = self.state(here)
        where = "this host" if state != "elsewhere" else f"host {self.host}"
        return {
            "alive": f"process {self.pid} on {where} alive",
            "gone": f"process {self.pid} on {where} gone",
            "elsewhere": f"process {self.pid} on {where} (not checked from here)",
        }[state]


def _pid_exists(pid: int) -> str:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return "gone"
    except PermissionError:
        return "alive"
    return "alive"


def age(seconds: float) -> str:
    """A duration for people: 42 s, 3 min, 2 h 5 min, 3 days."""
    seconds = max(0, int(seconds))
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 90 * 60:
        return f"{seconds // 60} min"
    if seconds < 48 * 3600:
        hours, minutes = divmod(seconds // 60, 60)
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{seconds // 86400} days"
