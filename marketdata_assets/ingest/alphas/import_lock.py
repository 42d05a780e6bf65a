"""One alpha importer per partition (type x month of a store): an exclusive lock file per partition.

A second importer of a partition that is being imported refuses at once (PartitionBusy, naming the
partition and the holder: who, pid, host, since when), so a write conflict an importer meets comes
from a dead one, never from a live neighbour. The kernel releases a dead holder's lock (flock, as
the embedded ClickHouse's directory lock), so a killed importer never blocks the next one; the file
keeps the holder's line and its state, and a lock taken over from a holder that did not end cleanly
tells the next importer that one died mid-import (`after_crash`: it may have left a transaction open
on the server). Importers share this machine's state directory (the landing area is local to it);
importers on two machines writing one MongoDB are not serialized by it.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import socket
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

RUNNING, ENDED, FAILED = "running", "ended", "failed"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


class PartitionBusy(RuntimeError):
    """Another live importer holds the partition: the message names the partition and the holder."""


def describe(holder: dict) -> str:
    """'who (pid N on host, since T)' of a lock file's holder record."""
    if not holder:
        return "an importer that has not said who it is yet"
    return (
        f"{holder.get('holder', 'an importer')} (pid {holder.get('pid', '?')} on {holder.get('host', '?')}, "
        f"since {holder.get('since', '?')})"
    )


def _record(fd: int) -> dict:
    try:
        return json.loads(os.pread(fd, 65536, 0) or b"{}")
    except ValueError:
        return {}


def _write(fd: int, record: dict) -> None:
    data = json.dumps(record).encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)


def _acquire(path: Path, partition: str) -> int:
    """The open, locked lock file of one partition; PartitionBusy at once if a live importer holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return fd
    except BlockingIOError:
        holder = describe(_record(fd))
        os.close(fd)
        raise PartitionBusy(
            f"alpha import of {partition} is already running: {holder}. One importer per "
            "partition: wait for it to end (or stop it), then run again"
        ) from None


def _release(fd: int) -> None:
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@contextmanager
def partition_lock(
    lock_dir: Path, store: str, alpha_type: str, months: Iterable[str], holder: str = "an alpha import"
) -> Iterator[list[str]]:
    """Hold the import lock of `alpha_type` for each month in `store` (e.g. 'regular_alphas.alphas')
    for the block, or raise PartitionBusy at once when a live importer holds one of them. Yields the
    descriptions of earlier importers of these partitions that died (or failed) before they ended:
    empty when every one ended cleanly."""
    lock_dir.mkdir(parents=True, exist_ok=True)
    record = {"holder": holder, "pid": os.getpid(), "host": socket.gethostname(), "since": _now()}
    held: list[tuple[int, str, dict]] = []  # (lock file, partition, what its previous holder left)
    try:
        for month in sorted(set(months)):
            partition = f"{alpha_type} {month} of {store}"
            fd = _acquire(lock_dir / _UNSAFE.sub("_", f"{store}.{alpha_type}.{month}.lock"), partition)
            held.append((fd, partition, _record(fd)))
    except BaseException:
        for fd, _, _ in held:  # left as their previous holders left them
            _release(fd)
        raise
    for fd, _, _ in held:
        _write(fd, {**record, "state": RUNNING})
    ended = False
    try:
        yield [
            f"{partition}: {describe(previous)} did not end ({previous['state']})"
            for _, partition, previous in held
            if previous.get("state") not in (None, ENDED)
        ]
        ended = True
    finally:
        for fd, _, _ in held:
            _write(fd, {**record, "state": ENDED if ended else FAILED, "ended": _now()})
            _release(fd)
