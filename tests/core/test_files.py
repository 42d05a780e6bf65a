"""core/files.py: names kept under the file system's 255 bytes, temp files and reason files for any
name that exists, and quarantine of what a landing area may hold (links pointing anywhere,
directories, long names) without raising (issue 15 item 6)."""

from __future__ import annotations

import os
import re

import pytest

from marketdata_assets.core.files import (
    NAME_MAX,
    atomic_write_bytes,
    fit_name,
    open_temp_file,
    quarantine,
    reason_file_of,
)

LONG = (
    "a" * 200 + "-" + "b" * 44 + ".json"
)  # 250 characters: a file that exists, nothing longer fits beside it


def test_fit_name_keeps_short_names_and_shortens_long_ones_stably():
    assert fit_name("ABCDEFG.json", ".reason.txt") == "ABCDEFG.json.reason.txt"
    short = fit_name(LONG, ".reason.txt")
    assert len(short.encode()) == NAME_MAX and short.endswith(".reason.txt")
    assert re.fullmatch(r"a{200}-b+~[0-9a-f]{12}\.reason\.txt", short), short
    assert fit_name(LONG, ".reason.txt") == short  # stable
    assert fit_name(LONG[:-6] + "c.json", ".reason.txt") != short  # distinct names stay distinct
    # multi-byte characters are never cut in half
    wide = "é" * 200 + ".json"
    fitted = fit_name(wide, ".reason.txt")
    assert len(fitted.encode()) <= NAME_MAX and fitted.startswith("é" * 50)
    fitted.encode("utf-8")  # valid UTF-8
    with pytest.raises(ValueError):
        fit_name("x", "." * 300)


def test_temp_and_atomic_writes_work_for_the_longest_names(tmp_path):
    fd, tmp = open_temp_file(str(tmp_path), LONG)
    os.close(fd)
    name = os.path.basename(tmp)
    assert name.startswith(".aaaa") and name.endswith(".tmp") and len(name.encode()) <= NAME_MAX
    os.unlink(tmp)
    target = tmp_path / LONG
    atomic_write_bytes(target, b"{}\n")
    assert target.read_bytes() == b"{}\n" and os.listdir(tmp_path) == [LONG]


def test_quarantine_of_a_long_name_writes_its_reason(tmp_path):
    landing, qroot = tmp_path / "landing", tmp_path / "quarantine"
    bad = landing / "alphas" / LONG
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"{")
    moved = quarantine(bad, "truncated JSON", qroot, relative_to=landing)
    assert moved == qroot / "alphas" / LONG and moved.read_bytes() == b"{"
    note = reason_file_of(moved)
    assert note.parent == moved.parent and note.name == fit_name(LONG, ".reason.txt")
    assert note.read_text().startswith(f"reason: truncated JSON\nsource: {bad}\nquarantined_at: ")
    # flat, with a clash: the ".1" suffix and the reason file still fit
    for n in range(2):
        bad.write_bytes(b"[]")
        moved = quarantine(bad, f"not an object #{n}", qroot / "flat")
        assert len(moved.name.encode()) <= NAME_MAX
        assert reason_file_of(moved).read_text().startswith(f"reason: not an object #{n}\n")
    assert len(os.listdir(qroot / "flat")) == 4


def test_quarantine_moves_a_link_pointing_outside_not_its_target(tmp_path):
    landing, qroot, outside = tmp_path / "landing", tmp_path / "quarantine", tmp_path / "elsewhere"
    outside.mkdir()
    target = outside / "secret.json"
    target.write_text("not ours")
    link = landing / "alphas" / "REGULAR" / "ABCDEFG.json"
    link.parent.mkdir(parents=True)
    link.symlink_to(target)
    moved = quarantine(link, "a symbolic link out of the landing area", qroot, relative_to=landing)
    assert moved == qroot / "alphas" / "REGULAR" / "ABCDEFG.json"
    assert moved.is_symlink() and os.readlink(moved) == str(target)
    assert not os.path.lexists(link) and target.read_text() == "not ours"
    note = reason_file_of(moved).read_text()
    assert note.startswith(f"reason: a symbolic link out of the landing area\nsource: {link}\n")
    assert (
        "link_target: not recorded (it points outside the landing area)\n" in note
        and str(outside) not in note
    )
    inside = landing / "alphas" / "REGULAR" / "OPQRSTU.json"  # a target inside the area is named
    inside.symlink_to(landing / "alphas" / "REGULAR" / "VWXYZAB.json")
    moved_inside = quarantine(inside, "a link", qroot, relative_to=landing)
    assert f"link_target: {landing}/alphas/REGULAR/VWXYZAB.json\n" in reason_file_of(moved_inside).read_text()
    # a dangling link, and a landing root reached through a link: no error either
    (tmp_path / "landing-link").symlink_to(landing)
    dangling = landing / "alphas" / "REGULAR" / "HIJKLMN.json"
    dangling.symlink_to(tmp_path / "gone.json")
    moved = quarantine(
        tmp_path / "landing-link" / "alphas" / "REGULAR" / "HIJKLMN.json",
        "dangling",
        qroot,
        relative_to=tmp_path / "landing-link",
    )
    assert moved == qroot / "alphas" / "REGULAR" / "HIJKLMN.json" and moved.is_symlink()


def test_quarantine_of_a_path_outside_relative_to_goes_flat(tmp_path):
    stray = tmp_path / "stray.json"
    stray.write_text("{")
    moved = quarantine(
        stray, "not in the landing area", tmp_path / "quarantine", relative_to=tmp_path / "landing"
    )
    assert moved == tmp_path / "quarantine" / "stray.json" and reason_file_of(moved).exists()


def test_quarantine_moves_a_directory_and_replaces_an_earlier_copy(tmp_path):
    landing, qroot = tmp_path / "landing", tmp_path / "quarantine"
    for round_ in range(2):
        directory = landing / "alphas" / "ABCDEFG.json"
        directory.mkdir(parents=True)
        (directory / f"inside{round_}.txt").write_text("x")
        moved = quarantine(
            directory, f"not a regular file: a directory ({round_})", qroot, relative_to=landing
        )
        assert moved.is_dir() and os.listdir(moved) == [f"inside{round_}.txt"]
        assert (
            reason_file_of(moved)
            .read_text()
            .startswith(f"reason: not a regular file: a directory ({round_})")
        )
    assert not os.path.lexists(landing / "alphas" / "ABCDEFG.json")
