"""`marketdata load-minute-bars` on a landing area with nothing it can load says which case it is: no CSV
file at all (a usage error, exit 2: the wrong folder?), or CSV files none of which holds a row the load
keeps (a load of nothing, exit 1, each file's reason said); files that are not CSV (a .zip) are named, never
ignored silently. And the landing walk lists such files beside the CSVs."""

from __future__ import annotations

import gzip
import zipfile

from click.testing import CliRunner

from marketdata_assets.apps.cli import cli
from marketdata_assets.core.landing_files import walk
from marketdata_assets.ingest.minute_bars.loader import landing_listing


def _zip(path) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("600000.SH.csv", "code,time,open\n")


def _load(folder) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["load-minute-bars", "--data-dir", str(folder)])
    return result.exit_code, result.output


def test_a_landing_of_archives_only_is_a_usage_error_naming_them(tmp_path):
    _zip(tmp_path / "bars-2026-03.zip")
    code, said = _load(tmp_path)
    assert code == 2, said
    assert "no CSV file (.csv, .csv.gz) under" in said
    assert "not read: 1 file(s) that are not CSV (.csv, .csv.gz): bars-2026-03.zip" in said, said


def test_csv_files_with_no_row_the_load_keeps_are_a_load_of_nothing(tmp_path):
    (tmp_path / "600000.SH.csv").write_text("code,time,open,high,low,close,volume\n600000,noon,1,1,1,1,1\n")
    with gzip.open(tmp_path / "600001.SH.csv.gz", "wt") as out:
        out.write("code,time,open,high,low,close,volume\n600001,soon,1,1,1,1,1\n")
    _zip(tmp_path / "old.zip")
    code, said = _load(tmp_path)
    assert code == 1, said
    assert said.count("unreadable: ") == 2, said  # each file's reason
    assert "FAILED: nothing to load: 2 CSV file(s) under" in said and "old.zip" in said, said


def test_the_landing_walk_lists_what_it_does_not_keep(tmp_path):
    (tmp_path / "a.csv").write_text("x\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.zip").write_bytes(b"PK")
    (tmp_path / ".hidden.zip").write_bytes(b"PK")
    listing = landing_listing(tmp_path)
    assert [p.name for p in listing.files] == ["a.csv"] and [p.name for p in listing.others] == ["b.zip"]
    assert walk(tmp_path).others == []  # keep everything visible: nothing left over
