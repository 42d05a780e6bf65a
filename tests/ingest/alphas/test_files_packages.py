"""Landing files (layout, New York months, atomic writes, robust reads, quarantine) and monthly packages."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import tracemalloc
from datetime import datetime
from pathlib import Path

import pytest

from marketdata_assets.datasets import alpha_files as files_mod
from marketdata_assets.datasets.alpha_files import (
    alpha_path,
    canonical_file_bytes,
    canonical_json,
    iter_alpha_files,
    land_alpha,
    month_alpha_files,
    month_of,
    parse_alpha_path,
    quarantine,
    read_alpha_file,
    write_if_changed,
)
from marketdata_assets.ingest.alphas.landing import decompose_dropped, dropped_packages, landing_changes
from marketdata_assets.ingest.alphas.packages import (
    PackageError,
    build_package,
    build_packages,
    decompose_package,
    manifest_path_of,
    read_manifest,
    verify_package,
)
from marketdata_assets.replay.alpha_factory import NY, make_alpha

ACCOUNT = "XX12345"


# ---------------------------------------------------------------- months in New York


@pytest.mark.parametrize(
    "iso,month",
    [
        ("2025-07-31T23:30:00-04:00", "2025-07"),  # already August in UTC
        ("2025-08-01T03:30:00Z", "2025-07"),  # the same instant written in UTC
        ("2025-08-01T03:30:00+00:00", "2025-07"),
        ("2025-08-01T00:00:00-04:00", "2025-08"),
        ("2024-12-31T23:59:59-05:00", "2024-12"),  # 2025 in UTC
        ("2025-01-01T00:00:00-05:00", "2025-01"),
        ("2024-02-29T23:59:59-05:00", "2024-02"),  # leap day, EST
        ("2025-03-01T04:59:59Z", "2025-02"),  # EST (-05:00) at the Feb/Mar boundary
        ("2025-03-01T05:00:00Z", "2025-03"),
        ("2025-03-09T01:59:59-05:00", "2025-03"),  # DST starts 2025-03-09 02:00 EST
        ("2025-03-09T03:00:00-04:00", "2025-03"),
        ("2025-03-31T23:59:59-04:00", "2025-03"),
        ("2025-04-01T03:59:59Z", "2025-03"),  # EDT (-04:00) at the Mar/Apr boundary
        ("2025-04-01T04:00:00Z", "2025-04"),
        ("2025-10-31T23:59:59-04:00", "2025-10"),
        ("2025-11-01T03:59:59Z", "2025-10"),
        ("2025-11-01T04:00:00Z", "2025-11"),
        ("2025-11-02T01:30:00-04:00", "2025-11"),  # DST ends 2025-11-02: 01:30 happens twice
        ("2025-11-02T01:30:00-05:00", "2025-11"),
        ("2025-11-30T23:59:59-05:00", "2025-11"),
        ("2025-12-01T04:59:59Z", "2025-11"),
        ("2025-03-01T00:30:00-04:00", "2025-02"),  # a wrong offset: the instant decides (23:30 EST, Feb 28)
        ("2025-07-18T23:32:42.123456-04:00", "2025-07"),
    ],
)
def test_month_of_new_york(iso, month):
    assert month_of(iso) == month


@pytest.mark.parametrize("bad", ["2025-07-31T23:30:00", "2025-07-31", "yesterday", "", None, 1752896000])
def test_month_of_refuses_ambiguous_or_garbage(bad):
    with pytest.raises(ValueError):
        month_of(bad)


# ---------------------------------------------------------------- layout and writes


def test_alpha_path_layout(tmp_path):
    alpha = make_alpha(1, "SUPER", datetime(2025, 7, 31, 23, 30, tzinfo=NY))
    assert alpha["dateCreated"] == "2025-07-31T23:30:00-04:00"
    path = alpha_path(tmp_path, ACCOUNT, alpha)
    assert path == tmp_path / "alphas" / "SUPER" / "2025-07" / ACCOUNT / f"{alpha['id']}.json"
    assert parse_alpha_path(path) == ("SUPER", "2025-07", ACCOUNT, alpha["id"])
    for account in ("../x", "a/b", "", ".hidden", "a|b"):
        with pytest.raises(ValueError, match="invalid account"):
            alpha_path(tmp_path, account, alpha)
    with pytest.raises(ValueError, match="invalid alpha id"):
        alpha_path(tmp_path, ACCOUNT, {**alpha, "id": "../../x"})
    with pytest.raises(ValueError, match="invalid alpha type"):
        alpha_path(tmp_path, ACCOUNT, {**alpha, "type": "../SUPER"})
    with pytest.raises(ValueError, match="without a UTC offset"):
        alpha_path(tmp_path, ACCOUNT, {**alpha, "dateCreated": "2025-07-31T23:30:00"})


def test_write_if_changed(tmp_path):
    alpha = make_alpha(3, "REGULAR")
    path = tmp_path / "a" / "b" / f"{alpha['id']}.json"
    assert write_if_changed(path, alpha) == "written"
    data = path.read_bytes()
    assert (
        data == json.dumps(alpha, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
    )
    mtime = path.stat().st_mtime_ns
    assert write_if_changed(path, json.loads(data)) == "unchanged"
    assert path.stat().st_mtime_ns == mtime
    changed = {**alpha, "dateModified": "2026-01-02T03:04:05-05:00"}
    assert write_if_changed(path, changed) == "written"
    assert json.loads(path.read_bytes()) == changed
    # the same alpha written in another format by another tool: rewritten once, canonical after
    path.write_text(json.dumps(alpha, indent=2))
    assert write_if_changed(path, alpha) == "written"
    assert write_if_changed(path, alpha) == "unchanged"
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temp files left
    umask = os.umask(0)
    os.umask(umask)
    assert oct(path.stat().st_mode & 0o777) == oct(0o666 & ~umask)  # not mkstemp's 0600


def test_atomic_write_failure_keeps_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "ABCDEFG.json"
    write_if_changed(path, {"id": "ABCDEFG", "v": 1})

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files_mod.os, "replace", broken_replace)
    with pytest.raises(OSError, match="No space"):
        write_if_changed(path, {"id": "ABCDEFG", "v": 2})
    assert json.loads(path.read_bytes()) == {"id": "ABCDEFG", "v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["ABCDEFG.json"]
    with pytest.raises(ValueError):  # NaN is not JSON: refused before anything is written
        write_if_changed(tmp_path / "x.json", {"v": float("nan")})
    assert not (tmp_path / "x.json").exists()


def test_land_alpha_and_iter(tmp_path):
    alphas = [make_alpha(i, "REGULAR", datetime(2025, 7, 31, 23, 0, tzinfo=NY)) for i in range(3)]
    for alpha in alphas:
        assert land_alpha(tmp_path, ACCOUNT, alpha)[1] == "written"
    assert land_alpha(tmp_path, ACCOUNT, alphas[0])[1] == "unchanged"
    directory = tmp_path / "alphas" / "REGULAR" / "2025-07" / ACCOUNT
    (directory / ".ABCDEFG.json.x1.tmp").write_text("partial")
    (directory / "ABCDEFG.json.reason.txt").write_text("x")
    (directory / "notes.json").write_text("{}")
    assert list(iter_alpha_files(tmp_path)) == sorted(directory / f"{a['id']}.json" for a in alphas)
    assert list(iter_alpha_files(tmp_path, "SUPER")) == []
    assert len(list(iter_alpha_files(tmp_path, "REGULAR", "2025-07", ACCOUNT))) == 3


def test_month_alpha_files_names_what_iter_alpha_files_finds(tmp_path):
    for i in range(12):
        alpha_type = ("REGULAR", "SUPER", "POWER_POOL")[i % 3]
        created = datetime(2025, 7 + i % 2, 10, tzinfo=NY)
        land_alpha(tmp_path, ("acct1", "acct2")[i % 4 // 2], make_alpha(i, alpha_type, created))
    july = tmp_path / "alphas" / "REGULAR" / "2025-07"
    (july / "acct1" / ".ABCDEFG.json.x1.tmp").write_text("partial")
    (july / "acct1" / "notes.json").write_text("{}")
    (july / "bad account!").mkdir()
    (july / "bad account!" / "ABCDEFG.json").write_text("{}")
    (tmp_path / "alphas" / "SUPER" / "2025-07" / "stray.json").write_text("{}")

    def named(paths):  # a directory whose name is no account is not in the layout: not listed
        return [(p.relative_to(tmp_path).as_posix(), p) for p in paths if "bad account!" not in p.parts]

    # a *.json whose name is no alpha id is listed too (the import quarantines it), temp files are not
    notes = ("alphas/REGULAR/2025-07/acct1/notes.json", july / "acct1" / "notes.json")
    assert notes in month_alpha_files(tmp_path, "2025-07")
    (july / "acct1" / "notes.json").unlink()
    for month in ("2025-07", "2025-08"):
        every = named(iter_alpha_files(tmp_path, None, month))
        assert month_alpha_files(tmp_path, month) == every and len(every) == 6
        assert month_alpha_files(tmp_path, month, alpha_type="SUPER") == named(
            iter_alpha_files(tmp_path, "SUPER", month)
        )
        assert month_alpha_files(tmp_path, month, exclude_types=("SUPER",)) == [
            (name, path) for name, path in every if parse_alpha_path(path)[0] != "SUPER"
        ]
        assert month_alpha_files(tmp_path, month, accounts=["acct2"]) == [
            (name, path) for name, path in every if parse_alpha_path(path)[2] == "acct2"
        ]
    assert (
        month_alpha_files(tmp_path, "2025-09") == []
        and month_alpha_files(tmp_path / "nowhere", "2025-07") == []
    )
    with pytest.raises(ValueError, match="invalid month"):
        month_alpha_files(tmp_path, "2025-7")


# ---------------------------------------------------------------- reading


def _read(tmp_path, data: bytes):
    path = tmp_path / "ABCDEFG.json"
    path.write_bytes(data)
    return read_alpha_file(path)


def test_read_good_and_bom(tmp_path):
    alpha = make_alpha(4, "SUPER")
    text = json.dumps(alpha, indent=2, ensure_ascii=False)
    assert _read(tmp_path, text.encode()) == (alpha, None)
    assert _read(tmp_path, b"\xef\xbb\xbf" + text.encode()) == (alpha, None)
    assert _read(tmp_path, text.encode("utf-16")) == (alpha, None)  # BOM + UTF-16
    assert _read(tmp_path, b"\xef\xbb\xbf  \n" + canonical_file_bytes(alpha) + b"\n\n") == (alpha, None)


@pytest.mark.parametrize(
    "data,reason",
    [
        (b"", "empty file"),
        (b"  \n\t ", "empty file"),
        (b"\xef\xbb\xbf", "empty file"),
        (b'{"id": "ABCDEFG", "type": "REG', "truncated JSON: Unterminated string"),
        (b'{"id": "ABCDEFG", ', "truncated JSON: Expecting property name"),
        (b'{"id": "ABCDEFG", "is": {"checks": [', "truncated JSON: Expecting value"),
        (
            b'{"id": "ABCDEFG",, "type": 1}',
            "malformed JSON: Expecting property name enclosed in double quotes at line 1",
        ),
        (b'{"id": "ABCDEFG"} {"id": "B"}', "malformed JSON: Extra data at line 1 column 19"),
        (b"{'id': 'ABCDEFG'}", "malformed JSON: Expecting property name enclosed in double quotes"),
        (b'{"sharpe": NaN}', "malformed JSON: non-standard JSON constant NaN"),
        (b'{"id": "\xff\xfe"}', "invalid UTF-8: invalid start byte at byte 8"),
        (b"[1, 2]", "not a JSON object (got array)"),
        (b"null", "not a JSON object (got null)"),
        (b'"ABCDEFG"', "not a JSON object (got string)"),
        (b"42", "not a JSON object (got number)"),
    ],
)
def test_read_bad_files(tmp_path, data, reason):
    obj, why = _read(tmp_path, data)
    assert obj is None
    assert why.startswith(reason), why


def test_read_truncated_real_alpha(tmp_path):
    data = canonical_file_bytes(make_alpha(9, "REGULAR"))
    for cut in (1, 10, len(data) // 2, len(data) - 2):
        obj, why = _read(tmp_path, data[:cut])
        assert obj is None and why.startswith("truncated JSON"), (cut, why)


def test_read_missing_file(tmp_path):
    assert read_alpha_file(tmp_path / "nope.json") == (None, "unreadable: No such file or directory")


def test_quarantine(tmp_path):
    landing, qroot = tmp_path / "landing", tmp_path / "quarantine"
    bad = landing / "alphas" / "REGULAR" / "2025-07" / ACCOUNT / "ABCDEFG.json"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b'{"id": "ABC')
    moved = quarantine(bad, "truncated JSON", qroot, relative_to=landing)
    assert moved == qroot / "alphas" / "REGULAR" / "2025-07" / ACCOUNT / "ABCDEFG.json"
    assert not bad.exists() and moved.read_bytes() == b'{"id": "ABC'
    note = (moved.parent / "ABCDEFG.json.reason.txt").read_text()
    assert note.startswith(f"reason: truncated JSON\nsource: {bad}\nquarantined_at: ")
    # flat: name clashes get a suffix, nothing is overwritten
    for n in range(3):
        bad.write_bytes(b"[]")
        moved = quarantine(bad, f"not a JSON object (got array) #{n}", qroot / "flat")
        assert moved.name == ["ABCDEFG.json", "ABCDEFG.json.1", "ABCDEFG.json.2"][n]
        assert (
            (moved.parent / f"{moved.name}.reason.txt")
            .read_text()
            .startswith(f"reason: not a JSON object (got array) #{n}\n")
        )


# ---------------------------------------------------------------- packages


def _land(
    root: Path,
    count: int,
    alpha_type: str = "REGULAR",
    month=(2025, 7),
    account: str = ACCOUNT,
    first_seed: int = 0,
) -> list[Path]:
    paths = []
    for i in range(first_seed, first_seed + count):
        created = datetime(*month, 1 + i % 28, (i * 7) % 24, i % 60, tzinfo=NY)
        path, _ = land_alpha(root, account, make_alpha(i, alpha_type, created), fsync=False)
        paths.append(path)
    return paths


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted((root / "alphas").rglob("*.json"))}


def test_package_round_trip_is_lossless(tmp_path):
    landing = tmp_path / "landing"
    paths = _land(landing, 40, "SUPER", month=(2025, 11))
    package, manifest = build_package(reversed(paths))
    assert package == landing / "packages" / "SUPER" / "2025-11" / f"{ACCOUNT}.jsonl.gz"
    jsonl = b"".join(p.read_bytes() for p in sorted(paths, key=lambda p: p.stem))
    assert {k: v for k, v in manifest.items() if k != "created_at"} == {
        "format": "alpha-package/1",
        "type": "SUPER",
        "month": "2025-11",
        "account": ACCOUNT,
        "count": 40,
        "sha256_jsonl": hashlib.sha256(jsonl).hexdigest(),
        "jsonl_bytes": len(jsonl),
        "sha256_package": hashlib.sha256(package.read_bytes()).hexdigest(),
        "package_bytes": package.stat().st_size,
        "package": f"{ACCOUNT}.jsonl.gz",
        "compresslevel": 6,
    }
    assert datetime.fromisoformat(manifest["created_at"]).tzinfo is not None
    assert read_manifest(package) == manifest
    assert gzip.decompress(package.read_bytes()) == jsonl
    lines = jsonl.splitlines()
    assert [json.loads(line)["id"] for line in lines] == sorted(p.stem for p in paths)

    # package -> files: byte-identical files at the same relative paths
    copy_root = tmp_path / "copy"
    counts = decompose_package(package, copy_root)
    assert counts == {
        "count": 40,
        "written": 40,
        "unchanged": 0,
        "directory": str(copy_root / "alphas" / "SUPER" / "2025-11" / ACCOUNT),
    }
    assert _tree_bytes(copy_root) == _tree_bytes(landing)
    assert decompose_package(package, copy_root)["unchanged"] == 40

    # files -> package again: the same bytes
    package2, manifest2 = build_package(iter_alpha_files(copy_root), tmp_path / "packages2")
    assert package2.read_bytes() == package.read_bytes()
    assert manifest2["sha256_package"] == manifest["sha256_package"]
    assert manifest2["sha256_jsonl"] == manifest["sha256_jsonl"]

    # rebuilding an unchanged month keeps the package and manifest (created_at included)
    manifest_bytes = manifest_path_of(package).read_bytes()
    assert build_package(paths) == (package, manifest)
    assert manifest_path_of(package).read_bytes() == manifest_bytes

    # one alpha changes: new package, new sha
    changed = json.loads(paths[0].read_bytes())
    changed["is"]["checks"][0]["value"] = 123.0
    write_if_changed(paths[0], changed, fsync=False)
    _, manifest3 = build_package(paths, list_files=True)
    assert manifest3["sha256_package"] != manifest["sha256_package"]
    assert manifest3["files"] == [f"{stem}.json" for stem in sorted(p.stem for p in paths)]
    assert decompose_package(package, copy_root, fsync=True)["written"] == 1


def test_non_canonical_files_become_canonical(tmp_path):
    landing = tmp_path / "landing"
    paths = _land(landing, 3)
    pretty = json.dumps(json.loads(paths[1].read_bytes()), indent=2).encode()
    paths[1].write_bytes(b"\xef\xbb\xbf" + pretty)
    package, _ = build_package(paths)
    counts = decompose_package(package, landing)
    assert counts["written"] == 1 and counts["unchanged"] == 2
    assert paths[1].read_bytes() == canonical_file_bytes(json.loads(pretty))


def test_build_packages_for_every_directory(tmp_path):
    _land(tmp_path, 5, "REGULAR", (2025, 7))
    _land(tmp_path, 4, "REGULAR", (2025, 8), first_seed=100)
    _land(tmp_path, 3, "SUPER", (2025, 7), account="YY99999")
    built = build_packages(tmp_path)
    assert [(m["type"], m["month"], m["account"], m["count"]) for _, m in built] == [
        ("REGULAR", "2025-07", ACCOUNT, 5),
        ("REGULAR", "2025-08", ACCOUNT, 4),
        ("SUPER", "2025-07", "YY99999", 3),
    ]
    assert [p.relative_to(tmp_path).as_posix() for p, _ in built] == [
        f"packages/REGULAR/2025-07/{ACCOUNT}.jsonl.gz",
        f"packages/REGULAR/2025-08/{ACCOUNT}.jsonl.gz",
        "packages/SUPER/2025-07/YY99999.jsonl.gz",
    ]
    assert len(build_packages(tmp_path, alpha_type="SUPER")) == 1


def test_build_refuses_bad_input(tmp_path):
    paths = _land(tmp_path, 3)
    other = _land(tmp_path, 1, month=(2025, 8), first_seed=50)
    with pytest.raises(PackageError, match="span 2"):
        build_package(paths + other)
    with pytest.raises(PackageError, match="no files"):
        build_package([])
    # an alpha in the wrong month directory
    wrong = paths[0].parents[1] / ACCOUNT / f"{other[0].stem}.json"
    wrong.write_bytes(other[0].read_bytes())
    with pytest.raises(PackageError, match="created in 2025-08 \\(New York\\), not 2025-07"):
        build_package(paths + [wrong])
    wrong.unlink()
    # a file whose name is another id
    renamed = paths[0].with_name("ZZZZZZZ.json")
    renamed.write_bytes(paths[1].read_bytes())
    with pytest.raises(PackageError, match="expected 'ZZZZZZZ'"):
        build_package(paths + [renamed])
    renamed.write_bytes(b'{"id": "ZZZ')
    with pytest.raises(PackageError, match="ZZZZZZZ.json: truncated JSON"):
        build_package(paths + [renamed])
    renamed.unlink()
    assert not list((tmp_path / "packages").rglob("*.tmp"))
    assert not (tmp_path / "packages" / "REGULAR" / "2025-07" / f"{ACCOUNT}.jsonl.gz").exists()


def _write_package(path: Path, lines: list[bytes], **manifest_overrides) -> None:
    """A hand-made package with a manifest that matches its bytes (unless overridden)."""
    jsonl = b"".join(lines)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(jsonl, mtime=0))
    manifest = {
        "format": "alpha-package/1",
        "type": "REGULAR",
        "month": "2025-07",
        "account": ACCOUNT,
        "count": len(lines),
        "sha256_jsonl": hashlib.sha256(jsonl).hexdigest(),
        "sha256_package": hashlib.sha256(path.read_bytes()).hexdigest(),
        **manifest_overrides,
    }
    manifest_path_of(path).write_text(json.dumps(manifest))


def test_decompose_refuses_corrupt_packages(tmp_path):
    landing = tmp_path / "landing"
    paths = _land(landing, 6)
    package, manifest = build_package(paths)
    target = tmp_path / "target"
    good = package.read_bytes()

    def refused(match):
        with pytest.raises(PackageError, match=match):
            decompose_package(package, target)
        assert not target.exists()  # nothing written

    flipped = bytearray(good)
    flipped[len(flipped) // 2] ^= 0xFF
    package.write_bytes(bytes(flipped))
    refused("does not match its manifest")
    package.write_bytes(good[: len(good) // 2])
    refused("does not match its manifest")
    package.write_bytes(good)
    manifest_path_of(package).unlink()
    refused("manifest .* is missing")
    manifest_path_of(package).write_text("{not json")
    refused("manifest .* is unreadable")
    manifest_path_of(package).write_text(json.dumps({**manifest, "format": "v0"}))
    refused("has format 'v0'")

    lines = [p.read_bytes() for p in sorted(paths, key=lambda p: p.stem)]
    _write_package(package, lines, count=7)
    refused("holds 6 alphas, manifest says 7")
    _write_package(package, lines, sha256_jsonl="0" * 64)
    refused("sha256 of the JSON lines does not match")
    _write_package(package, lines[::-1])
    refused("not sorted or repeated")
    _write_package(package, lines + [lines[-1]])
    refused("not sorted or repeated")
    _write_package(package, lines[:-1] + [lines[-1][:-1]])
    refused("no newline")
    _write_package(package, lines[:-1] + [lines[-1][:100] + b"\n"])
    refused("line 6: truncated JSON")
    _write_package(
        package, lines[:-1] + [json.dumps(json.loads(lines[-1]), indent=1).replace("\n", "").encode() + b"\n"]
    )
    refused("not in canonical JSON form")
    _write_package(package, lines, month="2025-08")
    refused("created in 2025-07 \\(New York\\), not 2025-08")
    _write_package(package, lines, type="SUPER")
    refused("has type 'REGULAR', expected 'SUPER'")
    _write_package(package, lines, files=["x.json"])
    refused("differ from the manifest's file list")
    # a gzip stream cut short, with a manifest that matches the cut bytes
    compressed = gzip.compress(b"".join(lines), mtime=0)[:-20]
    package.write_bytes(compressed)
    manifest_path_of(package).write_text(
        json.dumps(
            {
                **manifest,
                "sha256_package": hashlib.sha256(compressed).hexdigest(),
                "package_bytes": len(compressed),
            }
        )
    )
    refused("is corrupt")
    _write_package(package, lines)
    assert verify_package(package)[1] == [p.stem for p in sorted(paths, key=lambda p: p.stem)]
    assert decompose_package(package, target)["written"] == 6


def test_packaging_streams(tmp_path):
    """Memory does not grow with the number of alphas: one alpha at a time plus ids/paths."""
    paths = _land(tmp_path, 250)
    tracemalloc.start()
    try:
        package, manifest = build_package(paths, fsync=False)
        _, build_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        decompose_package(package, tmp_path / "copy", fsync=False)
        _, decompose_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    data_bytes = manifest["jsonl_bytes"]
    assert data_bytes > 1_000_000  # as parsed objects: ~10x that
    # zlib state and 256 KB read buffers (~0.4 MB), a few hundred bytes per alpha (names, ids), one
    # alpha at a time: less than the JSON text alone, let alone the parsed objects
    assert build_peak < 1_000_000, build_peak
    assert decompose_peak < 1_000_000, decompose_peak
    assert os.path.getsize(package) < data_bytes / 3


def test_orjson_path_when_installed(tmp_path, monkeypatch):
    """orjson (optional) parses package lines; anything it refuses goes to the standard parser for a
    verdict/reason. Alpha files never go to orjson: it would keep the last of two equal keys silently."""
    import types

    calls = []

    def fake_loads(data):
        calls.append(data)
        text = data.decode() if isinstance(data, bytes) else data
        if "NaN" in text or any(len(tok) > 18 and tok.isdigit() for tok in text.replace(",", " ").split()):
            raise json.JSONDecodeError("orjson refuses", text, 0)
        return json.loads(text)

    monkeypatch.setattr(
        files_mod, "_orjson", types.SimpleNamespace(loads=fake_loads, JSONDecodeError=json.JSONDecodeError)
    )
    alpha = make_alpha(2, "REGULAR")
    assert files_mod.loads_line(canonical_json(alpha)) == alpha
    assert files_mod.loads_line(b'{"pnl": 123456789012345678901234}') == {"pnl": 123456789012345678901234}
    with pytest.raises(ValueError, match="^malformed JSON: non-standard JSON constant NaN$"):
        files_mod.loads_line(b'{"v": NaN}')
    with pytest.raises(ValueError, match="^truncated JSON"):
        files_mod.loads_line(b'{"v": ')
    assert len(calls) == 4
    assert _read(tmp_path, canonical_file_bytes(alpha)) == (alpha, None)
    assert _read(tmp_path, b'{"id": "A", "id": "B"}')[1].startswith(
        "duplicate key 'id' with different values"
    )
    assert len(calls) == 4


# ---------------------------------------------------------------- links in the landing area


def test_links_in_the_landing_area_are_listed_as_links_and_never_read(tmp_path):
    """A link to an alpha file, in place of an account's or a month's directory, or of a dropped
    package: listed as itself (the importer and the package drops quarantine it), never entered nor
    read; the reason names the link and not its target; packaging and the sensor see no content."""
    landing, outside, qroot = tmp_path / "landing", tmp_path / "outside-SECRET", tmp_path / "quarantine"
    _land(landing, 2)
    foreign = _land(outside, 3, account="other", first_seed=10)  # good alphas, but outside the area
    july = landing / "alphas" / "REGULAR" / "2025-07"
    (july / ACCOUNT / foreign[0].name).symlink_to(foreign[0])
    (july / "linked").symlink_to(foreign[1].parent)
    (landing / "alphas" / "SUPER").mkdir()
    (landing / "alphas" / "SUPER" / "2025-07").symlink_to(foreign[1].parent.parent)
    (landing / "packages").mkdir()
    (landing / "packages" / f"{ACCOUNT}.jsonl.gz").symlink_to(outside / "x.jsonl.gz")
    links = {
        f"alphas/REGULAR/2025-07/{ACCOUNT}/{foreign[0].name}",
        "alphas/REGULAR/2025-07/linked",
        "alphas/SUPER/2025-07",
    }
    listed = dict(month_alpha_files(landing, "2025-07"))
    assert links <= set(listed) and len(listed) == 2 + len(links)
    assert {p.name for p in iter_alpha_files(landing)} == {p.name for p in _land(tmp_path / "again", 2)}
    for name in sorted(links):
        obj, reason = read_alpha_file(listed[name])
        assert obj is None and reason == (
            f"{listed[name]}: a symbolic link, not read (a landing area is read without "
            "following links: put the file itself there)"
        )
        with pytest.raises(
            files_mod.UnreadableFile,
            match="^" + name + r": a symbolic link, not read \(it points "
            "outside the landing area; ",
        ):
            files_mod.read_landing_file(listed[name], os.path.realpath(landing))
    changes = {(c.path, c.month) for c in landing_changes(landing)}
    assert {(name, "2025-07") for name in links} <= changes
    assert (f"packages/{ACCOUNT}.jsonl.gz", None) in changes
    (result,) = decompose_dropped(landing, {"2025-07"}, qroot)
    assert (result.package, result.outcome) == (f"packages/{ACCOUNT}.jsonl.gz", "quarantined")
    assert result.reason.startswith(
        f"packages/{ACCOUNT}.jsonl.gz: a symbolic link, not read (it points outside"
    )
    assert (qroot / "packages" / f"{ACCOUNT}.jsonl.gz").is_symlink() and dropped_packages(landing) == []
    ((_, manifest),) = build_packages(landing, tmp_path / "packages")
    assert manifest["count"] == 2  # the two alphas that are in the area, nothing through a link
