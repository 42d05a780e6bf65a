"""A launcher's whole process tree stopped with it (`make run`: the UI's `dg dev`, its webserver, daemon
and code servers, which Dagster starts in sessions of their own).

`guard()` makes the launcher their last resort: SIGTERM and SIGHUP stop it as Ctrl-C does (a
KeyboardInterrupt), it is sent SIGTERM if the process that started it (make) dies, and it adopts the
processes orphaned under it (Linux's child subreaper), so none is left holding a port. `stop_tree()`
then stops every process under it: Ctrl-C first (Dagster shuts down its own), SIGTERM, then SIGKILL.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import time
from pathlib import Path

PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER = 1, 36  # linux/prctl.h


def _prctl(option: int, value: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def stop_signals() -> None:
    """SIGINT, SIGTERM and SIGHUP raise KeyboardInterrupt here, whatever was set before: a run in this
    process leaves SIGTERM as SIGINT's handler (Dagster maps one to the other), and a process started
    with SIGINT ignored (a shell's background job, some supervisors) would then ignore SIGTERM too.
    Main thread only."""
    for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, signal.default_int_handler)


def guard() -> None:
    """This process stops on SIGINT/SIGTERM/SIGHUP (`stop_signals`), when its parent dies, and adopts its
    orphans (call it from the main thread)."""
    stop_signals()
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() == 1:  # the parent died before the line above: as if told now
        os.kill(os.getpid(), signal.SIGTERM)


def descendants(pid: int | None = None) -> list[int]:
    """Every process under `pid` (default: this one), parents before their children (/proc)."""
    out, todo = [], [pid or os.getpid()]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except (OSError, ValueError):
                continue
            out.extend(children)
            todo.extend(children)
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")  # a zombie holds no port: it waits for its parent


def _reap() -> None:
    """Collect this process's children that ended (orphans it adopted included)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _signal(pids: list[int], number: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, number)
        except (ProcessLookupError, PermissionError):
            pass


def _wait(pids: list[int], seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while True:
        _reap()
        left = [pid for pid in pids if _alive(pid)]
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.1)


def stop_tree(
    first: list[int] | None = None, grace_s: float = 20.0, orphans_s: float = 3.0, term_s: float = 5.0
) -> list[int]:
    """Stop every process under this one: `first` (default: all of them) told Ctrl-C and given `grace_s`
    to end; the others under it then `orphans_s` more (what `first` stops on its way out), then whatever
    is left SIGTERM, `term_s`, SIGKILL. The pids it had to kill."""
    pids = descendants()
    first = pids if first is None else first
    _signal(first, signal.SIGINT)
    _wait(first, grace_s)
    left = _wait(pids, orphans_s)
    pids = sorted({*left, *descendants()})  # and what was adopted meanwhile
    _signal(pids, signal.SIGTERM)
    left = _wait(pids, term_s)
    _signal(left, signal.SIGKILL)
    _wait(left, term_s)
    return left


__all__ = ["descendants", "guard", "stop_signals", "stop_tree"]
