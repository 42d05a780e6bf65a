"""File handling shared by the domains: atomic writes and quarantine of bad input.

Landing areas are written by other programs and read by ours; these helpers make our own writes
atomic (a reader never sees half a file) and move bad files aside with the reason beside them.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal


def fsync_directory(directory: str | os.PathLike) -> None:
    """Make renames/creations in a directory durable (no-op where directories can't be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


_tmp_counter = itertools.count()


def open_temp_file(directory: str, name: str) -> tuple[int, str]:
    """A new temp file next to the target: ``.<name>.<pid>.<n>.tmp`` (O_EXCL; mode from the umask)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    while True:
        tmp = os.path.join(directory, f".{name}.{os.getpid()}.{next(_tmp_counter)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
        except FileNotFoundError:
            os.makedirs(directory, exist_ok=True)


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, fsync: bool = True,
                       sync_dir: bool = False) -> str:
    """Write `data` to `path` atomically (temp file in the same dir, fsync, os.replace).

    Creates missing parent directories. The file gets the usual permissions (0666 minus umask).
    """
    path = os.fspath(path)
    directory, name = os.path.split(path)
    fd, tmp = open_temp_file(directory or ".", name)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if sync_dir:
        fsync_directory(directory or ".")
    return path


def write_bytes_if_changed(path: str | os.PathLike, data: bytes, *, fsync: bool = True,
                           sync_dir: bool = False) -> Literal["written", "unchanged"]:
    """Write `data` unless the file already holds exactly these bytes."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as fh:
            if os.fstat(fh.fileno()).st_size == len(data) and fh.read() == data:
                return "unchanged"
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        pass
    atomic_write_bytes(path, data, fsync=fsync, sync_dir=sync_dir)
    return "written"


def quarantine(path: str | os.PathLike, reason: str, quarantine_root: str | os.PathLike, *,
               relative_to: str | os.PathLike | None = None) -> Path:
    """Move a bad file out of the landing area and write ``<name>.reason.txt`` next to it.

    With `relative_to` (e.g. the landing root) the file keeps its relative path under
    `quarantine_root` and replaces an earlier quarantined copy of the same file; without it the
    file goes flat into `quarantine_root`, with ``.1``, ``.2``... appended on a name clash.
    Returns the new path of the file.
    """
    src = Path(path)
    qroot = Path(quarantine_root)
    if relative_to is not None:
        dest = qroot / src.resolve().relative_to(Path(relative_to).resolve())
    else:
        dest = qroot / src.name
        n = 0
        while dest.exists() or dest.with_name(dest.name + ".reason.txt").exists():
            n += 1
            dest = qroot / f"{src.name}.{n}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(src, dest)
    except OSError:  # another filesystem
        shutil.move(str(src), str(dest))
    note = (f"reason: {reason}\nsource: {src}\n"
            f"quarantined_at: {datetime.now(timezone.utc).isoformat(timespec='seconds')}\n")
    atomic_write_bytes(dest.with_name(dest.name + ".reason.txt"), note.encode("utf-8"))
    return dest
