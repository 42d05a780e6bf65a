"""Fetched alphas -> landing files, and dropped packages -> landing files.

`land_month` fetches one (account, month) from the API and writes each alpha as its own file in
the landing layout (files.py), rewriting only alphas whose content changed. An alpha that can't be
placed (no id, no parseable dateCreated, an id that isn't one) is written to the quarantine with
its reason instead, and the month goes on.

`dropped_packages` / `decompose_dropped` handle packages put into ``<landing>/packages/``: each is
verified against its manifest and written back as files; a corrupt one is quarantined whole
(package and manifest) and nothing of it lands, and so is a symbolic link there, unread
(core/landing_files.py: no landing area follows a link).
"""

from __future__ import annotations

import itertools
import json
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from marketdata_assets.core.files import atomic_write_bytes, quarantine, reason_file_of
from marketdata_assets.core.landing_files import Listing, is_link, link_reason, walk
from marketdata_assets.datasets.alpha_files import (
    ALPHA_DIR,
    canonical_file_bytes,
    land_alpha,
    listing_path,
)
from marketdata_assets.ingest.alphas.packages import (
    PACKAGE_DIR,
    PACKAGE_SUFFIX,
    PackageError,
    decompose_package,
    manifest_path_of,
    read_manifest,
)
from marketdata_assets.sources.interface import MonthFetcher

PROGRESS_EVERY_S = 5.0


@dataclass
class LandedMonth:
    account: str
    month: str
    fetched: int = 0
    written: int = 0
    unchanged: int = 0
    by_type: Counter = field(default_factory=Counter)
    quarantined: list[dict] = field(default_factory=list)
    fetch: Any = None  # the fetch's counts (`MonthFetcher`'s result `stats`: `as_metadata()`)
    seconds: float = 0.0

    def as_metadata(self) -> dict:
        return {
            "account": self.account,
            "month": self.month,
            "alphas_fetched": self.fetched,
            "files_written": self.written,
            "files_unchanged": self.unchanged,
            "files_quarantined": len(self.quarantined),
            "alphas_by_type": dict(self.by_type),
            "seconds": self.seconds,
        }


async def land_month(
    api: MonthFetcher,
    account: str,
    month: str,
    landing_root: Path,
    quarantine_root: Path,
    *,
    on_progress: Callable[[LandedMonth], None] | None = None,
) -> LandedMonth:
    """Fetch every alpha of (account, month) and land it; returns the counts. A fetch that completes
    also records the ids it listed (`alpha_files.read_listing`): what the coverage picture holds the store
    to."""
    started = last_report = time.monotonic()
    landed = LandedMonth(account=account, month=month)
    listed: dict[str, list[str]] = {}
    directories: set[str] = set()
    unplaceable = itertools.count(1)

    def land(alpha: dict) -> None:
        nonlocal last_report
        landed.fetched += 1
        try:
            path, outcome = land_alpha(landing_root, account, alpha, fsync=False)
        except ValueError as error:  # the alpha can't say where it belongs
            reason = f"alpha of account {account!r} in {month} can't be placed: {error}"
            target = quarantine_root / "unplaceable" / account / month / f"{next(unplaceable):06d}.json"
            atomic_write_bytes(
                target,
                canonical_file_bytes(alpha)
                if isinstance(alpha, dict)
                else (json.dumps(alpha) + "\n").encode(),
            )
            reason_file_of(target).write_text(reason + "\n")
            landed.quarantined.append({"file": str(target), "reason": reason})
            return
        landed.by_type[alpha.get("type")] += 1
        listed.setdefault(path.parts[-4], []).append(path.stem)  # .../<TYPE>/<month>/<account>/<id>.json
        directories.add(str(path.parent))
        if outcome == "written":
            landed.written += 1
        else:
            landed.unchanged += 1
        if on_progress is not None and time.monotonic() - last_report >= PROGRESS_EVERY_S:
            last_report = time.monotonic()
            on_progress(landed)

    result = await api.fetch_month(account, month, on_alpha=land, keep=False)
    landed.fetch = result.stats
    listing = {
        "account": account,
        "month": month,
        "listed": landed.fetched,
        "unplaceable": len(landed.quarantined),
        "ids": {alpha_type: sorted(ids) for alpha_type, ids in sorted(listed.items())},
    }
    atomic_write_bytes(listing_path(landing_root, month, account), canonical_file_bytes(listing), fsync=False)
    if landed.written:
        os.sync()  # one flush for the month instead of an fsync per file (a re-fetch repairs a crash)
    landed.seconds = round(time.monotonic() - started, 3)
    return landed


def package_drops(landing_root: Path) -> Listing:
    """The files under ``<landing>/packages/`` (any depth, dot files left out) and the symbolic links
    there (never entered nor read: decompose_dropped quarantines them; core/landing_files.py), the
    ``packages`` directory itself included."""
    base = landing_root / PACKAGE_DIR
    return Listing(links=[base]) if is_link(base) else walk(base)


def _packages(files: list[Path]) -> list[Path]:
    present = set(files)
    return [p for p in files if p.name.endswith(PACKAGE_SUFFIX) and manifest_path_of(p) in present]


def dropped_packages(landing_root: Path) -> list[Path]:
    """Packages dropped under ``<landing>/packages/`` (any depth), with their manifests present
    (neither of them a link)."""
    return _packages(package_drops(landing_root).files)


def package_month(package: Path) -> str | None:
    """The month a dropped package's manifest names (None if the manifest can't be read)."""
    try:
        return read_manifest(package).get("month")
    except (PackageError, OSError, ValueError):
        return None


def package_account(package: Path) -> str | None:
    """The account a dropped package's manifest names (None if the manifest can't be read)."""
    try:
        return read_manifest(package).get("account")
    except (PackageError, OSError, ValueError):
        return None


@dataclass
class Decomposed:
    package: str
    month: str | None
    outcome: str  # decomposed | quarantined
    count: int = 0
    written: int = 0
    unchanged: int = 0
    reason: str = ""


def decompose_dropped(
    landing_root: Path, months: set[str], quarantine_root: Path, accounts: set[str] | None = None
) -> list[Decomposed]:
    """Decompose every dropped package of `months` (and `accounts`, when given) into landing files;
    quarantine the corrupt ones. A package whose manifest is unreadable is quarantined too (its
    month is unknown, so it can only be reported by the run that looks at every package: months
    containing None). A symbolic link there (a package's, a manifest's or a directory's name) is
    no month's: every run quarantines it unread, the reason naming the link."""
    drops = package_drops(landing_root)
    results = []
    for link in drops.links:
        name, reason = link.relative_to(landing_root).as_posix(), link_reason(link, landing_root)
        quarantine(link, reason, quarantine_root, relative_to=landing_root)
        results.append(Decomposed(name, None, "quarantined", reason=reason))
    for package in _packages(drops.files):
        month = package_month(package)
        if month not in months and not (month is None and None in months):
            continue
        if accounts and month is not None and package_account(package) not in accounts:
            continue
        name = str(package.relative_to(landing_root))
        try:
            counts = decompose_package(package, landing_root)
        except (PackageError, OSError, ValueError) as error:
            reason = f"package {name}: {error}"
            quarantine(package, reason, quarantine_root, relative_to=landing_root)
            manifest = manifest_path_of(package)
            if manifest.exists():
                quarantine(manifest, reason, quarantine_root, relative_to=landing_root)
            results.append(Decomposed(name, month, "quarantined", reason=reason))
            continue
        results.append(
            Decomposed(name, month, "decomposed", counts["count"], counts["written"], counts["unchanged"])
        )
    return results


__all__ = [
    "Decomposed",
    "LandedMonth",
    "LandingChange",
    "decompose_dropped",
    "dropped_packages",
    "land_month",
    "landing_changes",
    "package_account",
    "package_drops",
    "package_month",
]


# ---------------------------------------------------------------- changes in the landing area


@dataclass(frozen=True)
class LandingChange:
    mtime_ns: int
    path: str  # relative to the landing root, posix
    landed: str  # "file" (an alpha file) | "package" (a dropped package or its manifest)
    month: str | None  # YYYY-MM; None: a package whose manifest can't be read (yet)


def _scan(directory: str, depth: int, out: list, cursor: tuple[int, str], root_len: int) -> None:
    """Files `depth` levels below `directory` newer than the cursor, as (mtime_ns, relative path)."""
    try:
        entries = os.scandir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return
    with entries:
        for entry in entries:
            if entry.name.startswith("."):  # temp files of atomic writes
                continue
            if entry.is_symlink():  # never entered nor read: the import of its month quarantines it
                if depth <= 2 and (depth or entry.name.endswith(".json")):  # a file's, account's or month's
                    _add(entry, out, cursor, root_len)
            elif depth:
                if entry.is_dir(follow_symlinks=False):
                    _scan(entry.path, depth - 1, out, cursor, root_len)
            elif entry.name.endswith(".json") and entry.is_file(follow_symlinks=False):
                _add(entry, out, cursor, root_len)


def _add(entry: os.DirEntry, out: list, cursor: tuple[int, str], root_len: int) -> None:
    try:
        mtime_ns = entry.stat(follow_symlinks=False).st_mtime_ns
    except FileNotFoundError:  # moved away (quarantine) meanwhile
        return
    if mtime_ns >= cursor[0]:
        rel = entry.path[root_len:]
        if (mtime_ns, rel) > cursor:
            out.append((mtime_ns, rel))


def landing_changes(landing_root: Path, cursor: tuple[int, str] = (0, "")) -> list[LandingChange]:
    """Alpha files and dropped packages changed after `cursor` ((mtime_ns, path) of the last change
    seen), oldest first. Alpha files are found by walking the layout's four levels with scandir
    (one stat per file: ~100,000 files a second here) and their month comes from their directory;
    a package's month from its manifest."""
    root = str(landing_root).rstrip("/") + "/"
    found: list[tuple[int, str]] = []
    if not is_link(root + ALPHA_DIR):  # the import refuses a linked layout, naming it
        _scan(root + ALPHA_DIR, 3, found, cursor, len(root))
    changes = []
    for mtime_ns, rel in found:
        parts = rel.split("/")
        # any *.json of an account directory: the import quarantines one not named <id>.json; 3 or 4
        # parts: a link in place of a month's or an account's directory, quarantined by the import too
        if len(parts) in (3, 4, 5):
            changes.append(LandingChange(mtime_ns, rel, "file", parts[2]))
    drops = package_drops(landing_root)
    links = set(drops.links)
    for path in drops.files + drops.links:
        linked = path in links
        if not linked and not path.name.endswith((PACKAGE_SUFFIX, ".manifest.json")):
            continue
        try:
            mtime_ns = path.lstat().st_mtime_ns
        except FileNotFoundError:
            continue
        rel = path.relative_to(landing_root).as_posix()
        if (mtime_ns, rel) > cursor:
            package = (
                path
                if path.name.endswith(PACKAGE_SUFFIX)
                else path.with_name(path.name[: -len(".manifest.json")] + PACKAGE_SUFFIX)
            )
            changes.append(
                LandingChange(mtime_ns, rel, "package", None if linked else package_month(package))
            )
    changes.sort(key=lambda c: (c.mtime_ns, c.path))
    return changes
