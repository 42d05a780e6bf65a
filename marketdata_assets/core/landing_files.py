"""Landing areas never follow a link out of themselves: how their files are listed and opened.

A landing area is a directory other programs drop files into (minute-bar CSVs, alpha files and
packages, Binance dumps; the live collector's hours are read back the same way). One rule for all,
the simplest safe one: a symbolic link INSIDE an area — to a file or to a directory, pointing inside
the area, outside it, or nowhere — is never followed. `walk` and `scan` list it apart, as a link
(never entered, never stat'ed through), so the area's loader quarantines it with `link_reason`;
`open_file` opens a landing file with O_NOFOLLOW, so a link swapped in after the listing is refused
too (`LinkRefused`). The reason names the link by its path inside the area and says that it is a
link and whether it points inside or outside the area: nothing of the target is read, and a
target outside the area is not even named. Only the landing ROOT may be a link (a configured
directory on another disk): what counts is inside it.

Not covered: a directory of the area swapped for a link between the listing and the opening of a
file below it (O_NOFOLLOW guards the file's own name; the listing never enters a link).
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)


def visible(name: str) -> bool:
    """Not a dot file (copiers' and our own temporary files, hidden bookkeeping)."""
    return not name.startswith(".")


def name_in_area(path: str | os.PathLike, root: str | os.PathLike | None) -> str:
    """`path` relative to `root` (POSIX), as the area names it; the path as given without a root."""
    if root is not None:
        for base, place in (
            (os.path.abspath(root), os.path.abspath(path)),
            (
                os.path.realpath(root),
                os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path)),
            ),
        ):
            relative = os.path.relpath(place, base)
            if relative != os.pardir and not relative.startswith(os.pardir + os.sep):
                return Path(relative).as_posix()
    return str(path)


def points_inside(path: str | os.PathLike, root: str | os.PathLike) -> bool:
    """Whether the link at `path` resolves to `root` or below (its name is resolved, its target
    never opened)."""
    real_root, target = os.path.realpath(root), os.path.realpath(path)
    return target == real_root or target.startswith(real_root.rstrip(os.sep) + os.sep)


def link_reason(path: str | os.PathLike, root: str | os.PathLike | None = None) -> str:
    """Why a link in a landing area is not read: its name in the area, that it is a link, and (with
    `root`) whether it points inside or outside the area — never its target."""
    where = ""
    if root is not None:
        where = (
            "it points inside the landing area; "
            if points_inside(path, root)
            else "it points outside the landing area; "
        )
    return (
        f"{name_in_area(path, root)}: a symbolic link, not read ({where}a landing area is read "
        "without following links: put the file itself there)"
    )


class LinkRefused(OSError):
    """A landing entry that is a symbolic link: not opened. The message is `link_reason`'s."""

    def __init__(self, path: str | os.PathLike, root: str | os.PathLike | None = None):
        self.path = Path(path)
        super().__init__(link_reason(path, root))


def is_link(path: str | os.PathLike) -> bool:
    try:
        return stat.S_ISLNK(os.lstat(path).st_mode)
    except OSError:
        return False


def open_file(
    path: str | os.PathLike, root: str | os.PathLike | None = None, flags: int = os.O_RDONLY
) -> int:
    """A file descriptor of the landing file `path`, opened without following a link at its name
    (O_NOFOLLOW): LinkRefused when it is one (the other OSErrors as os.open raises them)."""
    try:
        return os.open(path, flags | NOFOLLOW | _CLOEXEC)
    except OSError:
        if is_link(path):
            raise LinkRefused(path, root) from None
        raise


def open_binary(path: str | os.PathLike, root: str | os.PathLike | None = None) -> io.BufferedReader:
    """`open_file` as a buffered binary file object (the caller closes it)."""
    return os.fdopen(open_file(path, root), "rb")


def read_bytes(path: str | os.PathLike, root: str | os.PathLike | None = None) -> bytes:
    """The whole landing file `path` (LinkRefused for a link)."""
    with open_binary(path, root) as handle:
        return handle.read()


@dataclass
class Entries:
    """One directory's entries by kind (names): links apart, never followed."""

    dirs: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)  # anything else that is no link: a reader checks the kind
    links: list[str] = field(default_factory=list)


def check_no_link_between(root: str | os.PathLike, path: str | os.PathLike) -> None:
    """LinkRefused when a component of `path` below `root` (and `path` itself) is a link."""
    current = Path(root)
    for part in Path(os.path.relpath(path, root)).parts:
        if part in (os.curdir, os.pardir):
            raise ValueError(f"{path} is not inside the landing area {root}")
        current = current / part
        if is_link(current):
            raise LinkRefused(current, root)


def scan(
    directory: str | os.PathLike, root: str | os.PathLike | None = None, *, is_root: bool = False
) -> Entries:
    """The entries of one directory of a landing area, sorted; none when it does not exist.
    The directory itself is opened without following a link (unless it `is_root`: the landing
    root may be one); with `root`, no directory between `root` and it may be a link either
    (LinkRefused)."""
    if root is not None:
        check_no_link_between(root, directory)
    try:
        fd = os.open(directory, os.O_RDONLY | _DIRECTORY | (0 if is_root else NOFOLLOW) | _CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return Entries()
    except OSError:
        if is_link(directory):
            raise LinkRefused(directory, root) from None
        raise
    found = Entries()
    try:
        with os.scandir(fd if os.scandir in os.supports_fd else directory) as entries:
            for entry in entries:
                if entry.is_symlink():
                    found.links.append(entry.name)
                elif entry.is_dir(follow_symlinks=False):
                    found.dirs.append(entry.name)
                else:
                    found.files.append(entry.name)
    finally:
        os.close(fd)
    found.dirs.sort()
    found.files.sort()
    found.links.sort()
    return found


@dataclass
class Listing:
    """What a landing area holds: its files, and the links in it (never entered, never read)."""

    files: list[Path] = field(default_factory=list)
    links: list[Path] = field(default_factory=list)
    others: list[Path] = field(default_factory=list)  # visible files `keep` refused (a .zip among CSVs)


def _visible_dir(relative: str) -> bool:
    return visible(relative.rsplit("/", 1)[-1])


def walk(
    root: str | os.PathLike,
    *,
    enter: Callable[[str], bool] = _visible_dir,
    keep: Callable[[str], bool] = visible,
) -> Listing:
    """Every file under `root` (any depth) whose name `keep` accepts, in directories whose path
    relative to `root` (POSIX) `enter` accepts, and every link with a visible name in them (to a
    file or a directory: a link's kind is not looked up through it). Sorted; empty when `root`
    does not exist."""
    listing = Listing()
    root = Path(root)
    pending = [""]
    while pending:
        relative = pending.pop()
        directory = root / relative if relative else root
        try:
            entries = scan(directory, is_root=not relative)
        except LinkRefused:  # swapped for a link since its parent was listed
            listing.links.append(directory)
            continue
        prefix = f"{relative}/" if relative else ""
        listing.links.extend(directory / name for name in entries.links if visible(name))
        for name in entries.files:
            if keep(name):
                listing.files.append(directory / name)
            elif visible(name):
                listing.others.append(directory / name)
        pending.extend(prefix + name for name in entries.dirs if enter(prefix + name))
    listing.files.sort()
    listing.links.sort()
    listing.others.sort()
    return listing
