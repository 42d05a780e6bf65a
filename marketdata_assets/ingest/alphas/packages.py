"""Monthly alpha packages: ``.jsonl.gz`` + manifest, built from landing files and decomposed back.

One package per (TYPE, month, account), whose lines are the landing files' bytes sorted by id, gzipped
without timestamps, so files -> package -> files restores every path and byte and an unchanged month
keeps its package; both directions stream one alpha at a time.
Layout, manifest, crash safety and memory figures: docs/alphas.md, "Monthly packages".
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import re
import zlib
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from marketdata_assets.core.landing_files import open_binary, read_bytes
from marketdata_assets.datasets.alpha_files import (
    alpha_dir,
    atomic_write_bytes,
    canonical_file_bytes,
    check_account,
    check_month,
    check_type,
    fsync_directory,
    gc_paused,
    iter_alpha_files,
    landing_root_of,
    loads_line,
    month_of,
    open_temp_file,
    parse_alpha_path,
    read_alpha_file,
    write_bytes_if_changed,
)
from marketdata_assets.stores.mongo.documents import validate_alpha

FORMAT = "alpha-package/1"
_ID_RE = re.compile(r"^[A-Za-z0-9]{7,8}$")
PACKAGE_DIR = "packages"
PACKAGE_SUFFIX = ".jsonl.gz"
MANIFEST_SUFFIX = ".manifest.json"
_CHUNK = 1 << 18


class PackageError(ValueError):
    """A package or its manifest is missing, corrupt or inconsistent (nothing was written)."""


class _HashingWriter:
    """File wrapper that hashes and counts what gzip writes through it."""

    def __init__(self, fh):
        self.fh, self.sha, self.size = fh, hashlib.sha256(), 0

    def write(self, data) -> int:
        self.sha.update(data)
        self.size += len(data)
        return self.fh.write(data)

    def flush(self) -> None:
        self.fh.flush()


def package_paths(
    package_root: str | os.PathLike, alpha_type: str, month: str, account: str
) -> tuple[Path, Path]:
    """(package file, manifest file) of one (TYPE, month, account)."""
    base = Path(package_root) / check_type(alpha_type) / check_month(month)
    account = check_account(account)
    return base / f"{account}{PACKAGE_SUFFIX}", base / f"{account}{MANIFEST_SUFFIX}"


def manifest_path_of(package_path: str | os.PathLike) -> Path:
    p = Path(package_path)
    if not p.name.endswith(PACKAGE_SUFFIX):
        raise PackageError(f"{p} is not a package (expected a name ending in {PACKAGE_SUFFIX})")
    return p.with_name(p.name[: -len(PACKAGE_SUFFIX)] + MANIFEST_SUFFIX)


def read_manifest(package_path: str | os.PathLike) -> dict:
    path = manifest_path_of(package_path)
    try:
        manifest = json.loads(read_bytes(path))  # never through a symbolic link (LinkRefused)
    except FileNotFoundError:
        raise PackageError(f"manifest {path} is missing: rebuild the package") from None
    except (OSError, ValueError) as exc:
        raise PackageError(f"manifest {path} is unreadable: {exc}") from None
    required = ("format", "type", "month", "account", "count", "sha256_jsonl", "sha256_package")
    missing = [k for k in required if not isinstance(manifest, dict) or k not in manifest]
    if missing:
        raise PackageError(f"manifest {path} lacks {', '.join(missing)}")
    if manifest["format"] != FORMAT:
        raise PackageError(f"manifest {path} has format {manifest['format']!r}, expected {FORMAT!r}")
    return manifest


def _sha256_file(path: Path) -> tuple[str, int]:
    sha, size = hashlib.sha256(), 0
    with open_binary(path) as fh:  # never through a symbolic link (LinkRefused)
        while chunk := fh.read(_CHUNK):
            sha.update(chunk)
            size += len(chunk)
    return sha.hexdigest(), size


def _check_alpha(
    obj: Any, where: str, alpha_type: str, month: str, alpha_id: str | None, line: bytes | None = None
) -> None:
    """Valid, and belongs here. `line` = the alpha's canonical bytes when the caller has them: the
    encoder then already vouched for the values (no NaN, valid Unicode). Integers beyond 64 bits are
    valid JSON and packages keep them losslessly; they are refused later, by the MongoDB import's
    validation (BSON has no such integers)."""
    problems = validate_alpha(obj, supported_types=None, check_values=line is None)
    if problems:
        raise PackageError(f"{where}: invalid alpha: {'; '.join(problems)}")
    if alpha_id is not None and obj["id"] != alpha_id:
        raise PackageError(f"{where}: holds alpha {obj['id']!r}, expected {alpha_id!r}")
    if obj["type"] != alpha_type:
        raise PackageError(f"{where}: alpha {obj['id']} has type {obj['type']!r}, expected {alpha_type!r}")
    created_month = month_of(obj["dateCreated"])
    if created_month != month:
        raise PackageError(
            f"{where}: alpha {obj['id']} was created in {created_month} (New York), not {month}"
        )


# ---------------------------------------------------------------- build


def build_package(
    files: Iterable[str | os.PathLike],
    package_root: str | os.PathLike | None = None,
    *,
    list_files: bool = False,
    compresslevel: int = 6,
    fsync: bool = True,
) -> tuple[Path, dict]:
    """Package the landing files of ONE (TYPE, month, account) directory: (package path, manifest).

    Every file must sit in the layout, parse, validate, and belong where it sits (id = file name,
    type and New York month of dateCreated = its directories); otherwise PackageError and nothing
    is written. If the existing package already has exactly these bytes it is kept as it is.
    """
    directory, ids = _one_directory(files)
    first = os.path.join(directory, ids[0] + ".json")
    alpha_type, month, account, _ = parse_alpha_path(first)
    if package_root is None:
        package_root = landing_root_of(first) / PACKAGE_DIR
    package_path, manifest_path = package_paths(package_root, alpha_type, month, account)
    package_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = open_temp_file(str(package_path.parent), package_path.name)
    try:
        with os.fdopen(fd, "wb") as raw, gc_paused():
            hashing = _HashingWriter(raw)
            jsonl_sha, jsonl_bytes = _write_alphas(hashing, directory, ids, alpha_type, month, compresslevel)
            raw.flush()
            if fsync:
                os.fsync(raw.fileno())
        manifest = {
            "format": FORMAT,
            "type": alpha_type,
            "month": month,
            "account": account,
            "count": len(ids),
            "sha256_jsonl": jsonl_sha,
            "jsonl_bytes": jsonl_bytes,
            "sha256_package": hashing.sha.hexdigest(),
            "package_bytes": hashing.size,
            "package": package_path.name,
            "compresslevel": compresslevel,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        }
        if list_files:
            manifest["files"] = [f"{i}.json" for i in ids]
        if (old := _identical_package(package_path, manifest)) is not None:
            os.unlink(tmp)
            return package_path, old
        os.replace(tmp, package_path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    atomic_write_bytes(
        manifest_path, (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode(), fsync=fsync
    )
    if fsync:
        fsync_directory(package_path.parent)
    return package_path, manifest


def _one_directory(files: Iterable[str | os.PathLike]) -> tuple[str, list[str]]:
    """(the one directory, the sorted alpha ids of its files); PackageError for anything else."""
    # plain strings, not Path objects: ~100 bytes per alpha for 50,000 alphas
    by_dir: dict[str, list[str]] = defaultdict(list)
    for f in files:
        directory, name = os.path.split(os.path.abspath(os.fspath(f)))
        by_dir[directory].append(name)
    if not by_dir:
        raise PackageError("no files to package")
    if len(by_dir) != 1:
        raise PackageError(
            f"files span {len(by_dir)} directories; a package holds exactly one "
            "(TYPE, month, account) directory: " + ", ".join(sorted(by_dir)[:5])
        )
    ((directory, names),) = by_dir.items()
    names = sorted(set(names))
    for name in names:
        if not name.endswith(".json") or not _ID_RE.match(name[:-5]):
            raise PackageError(f"{os.path.join(directory, name)} is not an alpha file (<id>.json)")
    return directory, [name[:-5] for name in names]


def _write_alphas(
    out: _HashingWriter, directory: str, ids: list[str], alpha_type: str, month: str, compresslevel: int
) -> tuple[str, int]:
    """Each alpha's canonical line, checked, into a gzip stream on `out`: (sha256 of the JSONL, its bytes)."""
    jsonl_sha, jsonl_bytes = hashlib.sha256(), 0
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=compresslevel) as gz:
        for alpha_id in ids:
            path = os.path.join(directory, alpha_id + ".json")
            obj, reason = read_alpha_file(path)
            if reason is not None:
                raise PackageError(f"{path}: {reason}")
            try:
                line = canonical_file_bytes(obj)
            except (ValueError, UnicodeEncodeError):
                line = None  # the full check below says what is wrong
            _check_alpha(obj, path, alpha_type, month, alpha_id, line)
            if line is None:
                raise PackageError(f"{path}: alpha {alpha_id} can't be written as JSON")
            gz.write(line)
            jsonl_sha.update(line)
            jsonl_bytes += len(line)
    return jsonl_sha.hexdigest(), jsonl_bytes


def _identical_package(package_path: Path, manifest: dict) -> dict | None:
    """The manifest of the package already there when it holds exactly these bytes, else None."""
    with contextlib.suppress(PackageError, OSError):
        old = read_manifest(package_path)
        same = {k: v for k, v in old.items() if k != "created_at"} == {
            k: v for k, v in manifest.items() if k != "created_at"
        }
        if same and _sha256_file(package_path) == (manifest["sha256_package"], manifest["package_bytes"]):
            return old
    return None


def build_packages(
    landing_root: str | os.PathLike,
    package_root: str | os.PathLike | None = None,
    *,
    alpha_type: str | None = None,
    month: str | None = None,
    account: str | None = None,
    **kwargs,
) -> list[tuple[Path, dict]]:
    """build_package for every (TYPE, month, account) directory under a landing root (filters optional)."""
    groups: dict[tuple[str, str, str], list[Path]] = defaultdict(list)
    for path in iter_alpha_files(landing_root, alpha_type, month, account):
        groups[parse_alpha_path(path)[:3]].append(path)
    root = Path(package_root) if package_root is not None else Path(landing_root) / PACKAGE_DIR
    return [build_package(groups[key], root, **kwargs) for key in sorted(groups)]


# ---------------------------------------------------------------- decompose


def _lines(package_path: Path):
    """Decompressed lines of a package; gzip/zlib failures become PackageError."""
    try:
        with open_binary(package_path) as raw, gzip.GzipFile(fileobj=raw, mode="rb") as gz:
            yield from gz
    except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError
        raise PackageError(f"package {package_path} is corrupt: {exc}") from None


def verify_package(
    package_path: str | os.PathLike, *, verify_canonical: bool = True
) -> tuple[dict, list[str]]:
    """Check a package against its manifest without writing anything: (manifest, ids in order).

    Verifies the package file's sha256 and size, that it decompresses, every line is a valid alpha
    of the manifest's type and month, ids strictly increasing, the count and the sha256 of the
    uncompressed bytes, the optional file list, and (verify_canonical) that every line is canonical
    JSON. PackageError with the first problem otherwise.
    """
    package_path = Path(package_path)
    manifest = read_manifest(package_path)
    if not package_path.is_file():
        raise PackageError(f"package {package_path} is missing")
    alpha_type, month = check_type(manifest["type"]), check_month(manifest["month"])
    check_account(manifest["account"])
    sha, size = _sha256_file(package_path)
    if sha != manifest["sha256_package"] or size != manifest.get("package_bytes", size):
        raise PackageError(
            f"package {package_path} does not match its manifest (sha256 {sha}, {size} bytes; "
            f"manifest says {manifest['sha256_package']}, "
            f"{manifest.get('package_bytes')} bytes): "
            "it is corrupt or was replaced; rebuild it from the landing files"
        )
    jsonl_sha, ids, prev = hashlib.sha256(), [], None
    with gc_paused():
        for n, line in enumerate(_lines(package_path), 1):
            jsonl_sha.update(line)
            where = f"{package_path} line {n}"
            if not line.endswith(b"\n"):
                raise PackageError(f"{where}: last line has no newline (truncated package)")
            try:
                obj = loads_line(line)
            except ValueError as exc:
                raise PackageError(f"{where}: {exc}") from None
            canonical = None
            if verify_canonical:
                try:
                    canonical = canonical_file_bytes(obj)
                except (ValueError, UnicodeEncodeError):
                    pass  # _check_alpha reports it
            _check_alpha(obj, where, alpha_type, month, None, canonical)
            if prev is not None and obj["id"] <= prev:
                raise PackageError(f"{where}: id {obj['id']} is not after {prev} (not sorted or repeated)")
            if verify_canonical and canonical != line:
                raise PackageError(f"{where}: alpha {obj['id']} is not in canonical JSON form")
            prev = obj["id"]
            ids.append(prev)
    if len(ids) != manifest["count"]:
        raise PackageError(
            f"package {package_path} holds {len(ids)} alphas, manifest says {manifest['count']}"
        )
    if jsonl_sha.hexdigest() != manifest["sha256_jsonl"]:
        raise PackageError(f"package {package_path}: sha256 of the JSON lines does not match the manifest")
    if "files" in manifest and manifest["files"] != [f"{i}.json" for i in ids]:
        raise PackageError(f"package {package_path}: alphas differ from the manifest's file list")
    return manifest, ids


def decompose_package(
    package_path: str | os.PathLike,
    landing_root: str | os.PathLike,
    *,
    fsync: bool | Literal["batch"] = "batch",
    verify_canonical: bool = True,
) -> dict:
    """Write every alpha of a package back as its own landing file; returns counts.

    The whole package is verified first (verify_package): a corrupt or inconsistent package is
    refused with PackageError before any file is written. Files already holding the same bytes are
    left alone. Every file is replaced atomically. Durability: ``"batch"`` (default) flushes once
    at the end (``os.sync()``; per-file fsync costs ~1.7 ms a file here, 50,000 files = 90 s, and a
    re-run repairs anything a crash left behind, since files are compared byte for byte),
    ``True`` fsyncs every file, ``False`` leaves it to the OS.
    Returns ``{"count", "written", "unchanged", "directory"}``.
    """
    package_path = Path(package_path)
    manifest, ids = verify_package(package_path, verify_canonical=verify_canonical)
    directory = str(alpha_dir(landing_root, manifest["type"], manifest["month"], manifest["account"]))
    counts = {"count": len(ids), "written": 0, "unchanged": 0, "directory": directory}
    n = 0
    for n, line in enumerate(_lines(package_path), 1):
        if n > len(ids):
            raise PackageError(f"package {package_path} changed while it was being decomposed")
        path = os.path.join(directory, ids[n - 1] + ".json")
        counts[write_bytes_if_changed(path, line, fsync=fsync is True)] += 1
    if n != len(ids):
        raise PackageError(f"package {package_path} changed while it was being decomposed")
    if counts["written"]:
        if fsync == "batch":
            os.sync()
        if fsync:
            fsync_directory(directory)
    return counts
