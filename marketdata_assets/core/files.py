"""File handling shared by the domains: atomic writes and quarantine of bad input.

Landing areas are written by other programs and read by ours; these helpers make our own writes
atomic (a reader never sees half a file) and move bad files aside with the reason beside them.
Names we derive from a file's name (temp files, reason files) are kept under the file system's
255-byte limit by ``fit_name``, so they can be created whatever the original name's length.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import itertools
import os
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from marketdata_assets.core.landing_files import points_inside


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


_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None  # syncfs(2), by ctypes


def sync_filesystem(path: str | os.PathLike) -> bool:
    """syncfs(2): every file, rename and creation on the file system holding `path` made durable in one
    call, where thousands of files would take two fsyncs each (4,000 files: 0.45 s of CPU and 1.1-1.5 s
    against 0.01 s and 0.05-0.13 s, docs/live-capture.md). It waits for the other writers' data on that
    file system too. False where there is no syncfs (not Linux): the caller fsyncs each file. A
    write-back error is an OSError, as fsync's is."""
    syncfs = getattr(_LIBC, "syncfs", None)
    if syncfs is None:
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        if syncfs(fd) != 0:
            error = ctypes.get_errno()
            raise OSError(error, os.strerror(error), str(path))
    finally:
        os.close(fd)
    return True


NAME_MAX = 255  # bytes in one file name (ext4, xfs, btrfs, tmpfs, APFS, NTFS in UTF-16 units)
REASON_SUFFIX = ".reason.txt"
_HASH_CHARS = 12


def _fs_bytes(name: str) -> bytes:
    return name.encode("utf-8", "surrogateescape")  # file names that aren't UTF-8 arrive escaped


def fit_name(name: str, suffix: str = "", limit: int = NAME_MAX) -> str:
    """``name + suffix``, or, when that is over `limit` bytes, the start of `name`, ``~``, 12 hex
    digits of the sha256 of the whole `name`, then `suffix`: recognisable (it starts like the
    original), stable (the same name always gives the same result) and, through the hash, distinct
    for distinct names. ``fit_name("a" * 300, ".reason.txt")`` -> ``"aaa…a~3c9d1e0f5a2b.reason.txt"``."""
    if len(_fs_bytes(name)) + len(_fs_bytes(suffix)) <= limit:
        return name + suffix
    tag = "~" + hashlib.sha256(_fs_bytes(name)).hexdigest()[:_HASH_CHARS]
    room = limit - len(_fs_bytes(tag + suffix))
    if room < 1:
        raise ValueError(f"suffix {suffix!r} leaves no room for a name under {limit} bytes")
    head, used = [], 0
    for char in name:  # whole characters only: the short name stays valid UTF-8 when the name was
        size = len(_fs_bytes(char))
        if used + size > room:
            break
        head.append(char)
        used += size
    return "".join(head) + tag + suffix


def reason_file_of(path: str | os.PathLike) -> Path:
    """Where `quarantine` writes the reason of the file quarantined at `path`:
    ``<name>.reason.txt`` next to it (shortened by fit_name for a long name)."""
    path = Path(path)
    return path.with_name(fit_name(path.name, REASON_SUFFIX))


_tmp_counter = itertools.count()


def open_temp_file(directory: str, name: str) -> tuple[int, str]:
    """A new temp file next to the target: ``.<name>.<pid>.<n>.tmp`` (O_EXCL; mode from the umask);
    for a long `name` its start and a hash (fit_name), so any name that exists can be written."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    while True:
        tmp = os.path.join(
            directory, "." + fit_name(name, f".{os.getpid()}.{next(_tmp_counter)}.tmp", NAME_MAX - 1)
        )
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
        except FileNotFoundError:
            os.makedirs(directory, exist_ok=True)


def atomic_write_bytes(
    path: str | os.PathLike, data: bytes, *, fsync: bool = True, sync_dir: bool = False
) -> str:
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
                view = view[os.write(fd, view) :]
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


def write_bytes_if_changed(
    path: str | os.PathLike, data: bytes, *, fsync: bool = True, sync_dir: bool = False
) -> Literal["written", "unchanged"]:
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


def _quarantine_place(src: Path, relative_to: str | os.PathLike | None) -> Path | None:
    """`src` relative to the root `relative_to`, without following `src` itself (a link is moved, not
    its target); None when `src` is not under it."""
    if relative_to is None:
        return None
    try:
        return (src.parent.resolve() / src.name).relative_to(Path(relative_to).resolve())
    except (ValueError, OSError, RuntimeError):
        return None


def _remove(path: Path) -> None:
    """An earlier quarantined copy (file, link or directory) at `path`, removed."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _link_target(link: Path, area: str | os.PathLike | None) -> str:
    """What the reason file says of a link's target: the target when it is inside the landing area
    `area`, else not even its name (landing_files.link_reason)."""
    if area is not None and points_inside(link, area):
        return os.readlink(link)
    return "not recorded (it points outside the landing area)" if area is not None else "not recorded"


def quarantine(
    path: str | os.PathLike,
    reason: str,
    quarantine_root: str | os.PathLike,
    *,
    relative_to: str | os.PathLike | None = None,
) -> Path:
    """Move a bad file out of the landing area and write ``<name>.reason.txt`` next to it.

    With `relative_to` (e.g. the landing root) the file keeps its relative path under
    `quarantine_root` and replaces an earlier quarantined copy of the same file; without it, or
    for a file that is not under `relative_to`, the file goes flat into `quarantine_root`, with
    ``.1``, ``.2``... appended on a name clash. A symbolic link is moved itself (never its
    target, wherever that points), as is a directory. The reason file records the reason, the
    full original path (and a link's target when it is inside `relative_to`, the landing area: a
    target outside it is not named); its name is shortened by fit_name when
    ``<name>.reason.txt`` would be too long for the file system. Returns the new path of the file.
    """
    src = Path(path)
    qroot = Path(quarantine_root)
    place = _quarantine_place(src, relative_to)
    if place is not None:
        dest = qroot / place
        if os.path.lexists(dest):
            _remove(dest)
    else:
        dest = qroot / src.name
        n = 0
        while os.path.lexists(dest) or reason_file_of(dest).exists():
            n += 1
            dest = qroot / fit_name(src.name, f".{n}")
    link_target = _link_target(src, relative_to) if src.is_symlink() else None
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(src, dest)
    except OSError:  # another filesystem (shutil.move recreates a link as a link)
        shutil.move(str(src), str(dest))
    note = (
        f"reason: {reason}\nsource: {os.path.abspath(src)}\n"
        f"quarantined_at: {datetime.now(UTC).isoformat(timespec='seconds')}\n"
    )
    if link_target is not None:
        note += f"link_target: {link_target}\n"
    atomic_write_bytes(reason_file_of(dest), note.encode("utf-8", "surrogateescape"))
    return dest
