"""Bad alpha JSON beside good files (issue 15 items 4, 6 and 9): one real import over a landing area
holding every case of CASES and good alphas, against the real MongoDB-wire server. Each bad case is
quarantined with its specific reason (a reason file that names the file is always written) or is a
documented acceptance that the import counts; every good file is stored; a re-run finds nothing
left to fail on. Then the 16 MB limit in depth: checked before sending, merged documents, and what
the server or the driver still refuses."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from marketdata_assets.core import settings
from marketdata_assets.core.files import reason_file_of
from marketdata_assets.datasets.alpha_files import canonical_file_bytes, land_alpha, month_alpha_files
from marketdata_assets.ingest.alphas import importer
from marketdata_assets.ingest.alphas.importer import import_files
from marketdata_assets.replay.alpha_factory import NY, make_alpha
from marketdata_assets.resources import MongoResource
from marketdata_assets.stores.mongo.alphas import ensure_alpha_indexes, ledger_entries
from marketdata_assets.stores.mongo.documents import from_document

MONTH = "2025-07"
DIRECTORY = f"alphas/REGULAR/{MONTH}/main"
CREATED = datetime(2025, 7, 15, 10, 0, tzinfo=NY)
GOOD = 20
OVER_16_MB = 17 * 1024 * 1024


def case_alpha(n: int, **changes) -> dict:
    """A realistic alpha with the id of case n (``Case0nn``), its fields changed by `changes`
    (a value of DROP removes the field)."""
    alpha = make_alpha(1000 + n, "REGULAR", CREATED)
    alpha["id"] = f"Case{n:03d}"
    for key, value in changes.items():
        if value is DROP:
            del alpha[key]
        else:
            alpha[key] = value
    return alpha


DROP = object()


def nested(n: int, depth: int) -> dict:
    value: dict = {"leaf": 1}
    for _ in range(depth):
        value = {"a": value}
    return case_alpha(n, extra=value)


def with_is(n: int, **changes) -> dict:
    alpha = case_alpha(n)
    alpha["is"] = {**alpha["is"], **changes}
    return alpha


def with_settings(n: int, **changes) -> dict:
    alpha = case_alpha(n)
    alpha["settings"] = {**alpha["settings"], **changes}
    return alpha


def text(obj: dict) -> bytes:
    return json.dumps(obj).encode()  # NaN and Infinity as Python writes them; ASCII escapes


def duplicated(n: int, key_bytes: bytes) -> bytes:
    """Case n's canonical bytes with `key_bytes` (``"key":value,``) inserted first: a key twice."""
    return b"{" + key_bytes + canonical_file_bytes(case_alpha(n))[1:]


@dataclass
class Case:
    name: str  # file name in DIRECTORY
    make: Callable[[Path, Path], None]  # (path to create, a directory outside the landing area)
    outcome: str  # "quarantined" | "stored"
    expect: str = ""  # reason fragment (quarantined) or flag fragment (stored, "" = no flag)
    stored_id: str | None = None  # stored: the alpha id; quarantined: an id that must NOT be stored


def content(data: bytes | Callable[[], bytes]) -> Callable[[Path, Path], None]:
    def make(path: Path, outside: Path) -> None:
        path.write_bytes(data() if callable(data) else data)

    return make


def symlink_out(n: int) -> Callable[[Path, Path], None]:
    def make(path: Path, outside: Path) -> None:
        target = outside / f"Case{n:03d}.json"
        target.write_bytes(canonical_file_bytes(case_alpha(n)))  # a good alpha, but outside
        path.symlink_to(target)

    return make


def directory(path: Path, outside: Path) -> None:
    path.mkdir()
    (path / "inside.txt").write_text("a directory named like an alpha file")


def fifo(path: Path, outside: Path) -> None:
    os.mkfifo(path)


def unreadable(path: Path, outside: Path) -> None:
    path.write_bytes(canonical_file_bytes(case_alpha(36)))
    path.chmod(0)


def q(name: str, data: bytes | Callable[[], bytes], expect: str, stored_id: str | None = None) -> Case:
    return Case(name, content(data), "quarantined", expect, stored_id)


def q_made(name: str, make: Callable[[Path, Path], None], expect: str, stored_id: str | None = None) -> Case:
    return Case(name, make, "quarantined", expect, stored_id)


def ok(name: str, data, expect: str, stored_id: str) -> Case:
    return Case(name, content(data), "stored", expect, stored_id)


LONG_GOOD = "L" * 235 + ".json"  # 240 characters: "<name>.reason.txt" would be 251 + ... over 255 bytes
LONG_BAD = "M" * 245 + ".json"  # 250 characters, truncated content

CASES: dict[str, Case] = {
    "invalid_utf8": q(
        "Case001.json",
        lambda: canonical_file_bytes(case_alpha(1)).replace(b'"favorite":false', b'"favorite":"\xff\xfe"'),
        "invalid UTF-8: invalid start byte",
    ),
    "truncated": q("Case002.json", lambda: canonical_file_bytes(case_alpha(2))[:2000], "truncated JSON"),
    "json_array": q(
        "Case003.json",
        lambda: b"[" + canonical_file_bytes(case_alpha(3)) + b"]",
        "not a JSON object (got array)",
    ),
    "json_number": q("Case004.json", b"42\n", "not a JSON object (got number)"),
    "json_string": q("Case005.json", b'"Case005"', "not a JSON object (got string)"),
    "empty_file": q("Case006.json", b"", "empty file"),
    "blank_file": q("Case007.json", b" \n\t\n", "empty file"),
    "nan_literal": q(
        "Case010.json",
        lambda: text(with_is(10, sharpe=float("nan"))),
        "malformed JSON: non-standard JSON constant NaN",
    ),
    "infinity_literal": q(
        "Case011.json",
        lambda: text(with_is(11, fitness=float("-inf"))),
        "malformed JSON: non-standard JSON constant -Infinity",
    ),
    "missing_id": q("Case012.json", lambda: text(case_alpha(12, id=DROP)), "missing id"),
    "id_wrong_type": q(
        "Case013.json",
        lambda: text(case_alpha(13, id=1234567)),
        "invalid id 1234567: expected 7-8 letters or digits",
    ),
    "id_not_the_name": q(
        "Case014.json",
        lambda: text(case_alpha(14, id="Other14")),
        "file name 'Case014.json' disagrees with the alpha's id 'Other14' (expected Other14.json)",
        stored_id="Other14",
    ),
    "duplicate_id_key": q(
        "Case015.json",
        lambda: duplicated(15, b'"id":"Xyz1234",'),
        "duplicate key 'id' with different values ('Xyz1234', then 'Case015')",
        stored_id="Case015",
    ),
    "duplicate_nested_key": q(
        "Case017.json",
        lambda: canonical_file_bytes(case_alpha(17)).replace(b'"region":', b'"region":"JPN","region":'),
        "duplicate key 'region' with different values ('JPN', then",
    ),
    "status_an_object": q(
        "Case018.json",
        lambda: text(case_alpha(18, status={"code": "ACTIVE"})),
        "status: expected a string or null, got an object",
    ),
    "checks_a_string": q(
        "Case019.json",
        lambda: text(with_is(19, checks="LOW_SHARPE:PASS")),
        "is.checks: expected an array or null, got a string",
    ),
    "settings_an_array": q(
        "Case020.json",
        lambda: text(case_alpha(20, settings=["USA", "TOP3000"])),
        "settings: expected an object or null, got an array",
    ),
    "favorite_a_string": q(
        "Case021.json",
        lambda: text(case_alpha(21, favorite="true")),
        "favorite: expected true/false or null, got a string",
    ),
    "classifications_strings": q(
        "Case022.json",
        lambda: text(case_alpha(22, classifications=["PYRAMID:USA/D1/PV"])),
        "classifications[0]: expected an object, got a string",
    ),
    "region_a_number": q(
        "Case023.json",
        lambda: text(with_settings(23, region=1)),
        "settings.region: expected a string or null, got a number",
    ),
    "tags_a_string": q(
        "Case024.json",
        lambda: text(case_alpha(24, tags="momentum")),
        "tags: expected an array or null, got a string",
    ),
    "over_16_mb": q(
        "Case025.json",
        lambda: canonical_file_bytes(
            case_alpha(25, regular={"code": "x" * OVER_16_MB, "description": None, "operatorCount": 1})
        ),
        "alpha Case025: its document is 17,",
        stored_id="Case025",
    ),
    "nested_150_levels": q("Case026.json", lambda: text(nested(26, 150)), "nested more than 100 levels deep"),
    "nested_beyond_the_parser": q(
        "Case027.json",
        b'{"id":"Case027","x":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        "malformed JSON: nested too deeply",
    ),
    "date_unparseable": q(
        "Case028.json",
        lambda: text(case_alpha(28, dateCreated="07/15/2025 10:00 AM")),
        "unparseable dateCreated: not an ISO 8601 timestamp: '07/15/2025 10:00 AM'",
    ),
    "date_created_year_typo": q(
        "Case042.json",
        lambda: text(case_alpha(42, dateCreated="2062-07-15T10:00:00-04:00")),
        "dateCreated: implausible time: '2062-07-15T10:00:00-04:00' is after now + 10 min (",
        "Case042",
    ),
    "date_created_epoch_zero": q(
        "Case043.json",
        lambda: text(case_alpha(43, dateCreated="1970-01-01T00:00:00Z")),
        "dateCreated: implausible time: '1970-01-01T00:00:00Z' is before ALPHA_API's "
        "earliest plausible day 2016-01-01",
        "Case043",
    ),
    "date_without_offset": q(
        "Case029.json",
        lambda: text(case_alpha(29, dateModified="2025-07-15T10:00:00")),
        "unparseable dateModified: timestamp without a UTC offset",
    ),
    "integer_over_64_bits": q(
        "Case030.json",
        lambda: text(with_is(30, pnl=2**64)),
        f"is.pnl: integer {2**64} does not fit in 64 bits",
    ),
    "lone_surrogate": q(
        "Case031.json",
        lambda: text(case_alpha(31, name="half \ud800 pair")),
        "name: string is not valid Unicode (lone surrogate)",
    ),
    "symlink_outside": q_made(
        "Case032.json",
        symlink_out(32),
        f"{DIRECTORY}/Case032.json: a symbolic link, not read (it points outside the landing area; ",
        stored_id="Case032",
    ),
    "long_name": q(
        LONG_GOOD,
        lambda: canonical_file_bytes(case_alpha(33)),
        f"file name '{LONG_GOOD[:40]}... (240 characters)' disagrees with the alpha's id 'Case033'",
        stored_id="Case033",
    ),
    "long_name_bad_content": q(
        LONG_BAD, lambda: canonical_file_bytes(case_alpha(34))[:100], "truncated JSON"
    ),
    "name_not_an_id": q(
        "notes.json",
        lambda: canonical_file_bytes(case_alpha(35)),
        "file name 'notes.json' disagrees with the alpha's id 'Case035'",
        stored_id="Case035",
    ),
    "unreadable": q_made("Case036.json", unreadable, "unreadable: Permission denied"),
    "directory_named_json": q_made("Case037.json", directory, "not a regular file: a directory"),
    "fifo_named_json": q_made("Case038.json", fifo, "not a regular file: a FIFO"),
    "html_error_page": q(
        "Case039.json", b"<html><body>502 Bad Gateway</body></html>", "malformed JSON: Expecting value"
    ),
    "trailing_garbage": q(
        "Case040.json", lambda: canonical_file_bytes(case_alpha(40)) + b"}", "malformed JSON: Extra data"
    ),
    "empty_object": q("Case041.json", b"{}", "missing id; missing type; missing dateCreated"),
    # documented, counted acceptances
    "utf8_bom": ok(
        "Case050.json",
        lambda: b"\xef\xbb\xbf" + canonical_file_bytes(case_alpha(50)),
        "UTF-8 byte order mark ignored",
        "Case050",
    ),
    "utf16_bom": ok(
        "Case051.json",
        lambda: json.dumps(case_alpha(51)).encode("utf-16"),
        "UTF-16-LE text (byte order mark), read as such",
        "Case051",
    ),
    "duplicate_key_same_value": ok(
        "Case052.json",
        lambda: duplicated(52, b'"status":"%s",' % case_alpha(52)["status"].encode()),
        "duplicate key 'status' with the same value twice, kept once",
        "Case052",
    ),
    "dollar_and_dot_keys": ok("Case053.json", lambda: text(ESCAPED["dollar_and_dot_keys"]()), "", "Case053"),
    "nul_in_a_key": ok("Case054.json", lambda: text(ESCAPED["nul_in_a_key"]()), "", "Case054"),
}
# Keys MongoDB would misread are stored escaped (documents.py), counted in files_keys_escaped, and
# read back as they were
ESCAPED: dict[str, Callable[[], dict]] = {
    "dollar_and_dot_keys": lambda: with_settings(53, **{"$set": {"status": "X"}, "a.b": 1}),
    "nul_in_a_key": lambda: case_alpha(54, **{"odd\u0000key": 1}),
}
SKIPPED = {"unreadable"} if os.geteuid() == 0 else set()  # root reads a file of mode 000


@dataclass
class Corpus:
    landing: Path
    quarantine: Path
    stats: importer.ImportStats
    rerun: importer.ImportStats
    regular: object
    super_: object
    good: dict[str, dict]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    base = tmp_path_factory.mktemp("corpus")
    landing, quarantine_root, outside = base / "landing", base / "quarantine", base / "outside"
    outside.mkdir()
    good = {}
    for seed in range(GOOD):
        alpha = make_alpha(seed, "SUPER" if seed % 4 == 0 else "REGULAR", CREATED)
        land_alpha(landing, "main", alpha, fsync=False)
        good[alpha["id"]] = alpha
    (landing / DIRECTORY).mkdir(parents=True, exist_ok=True)
    for key, case in CASES.items():
        if key not in SKIPPED:
            case.make(landing / DIRECTORY / case.name, outside)
    mongo = MongoResource(uri=settings.get("MONGODB_URI"))
    names = [f"test_corpus_r_{uuid.uuid4().hex[:8]}", f"test_corpus_s_{uuid.uuid4().hex[:8]}"]
    regular, super_ = (mongo.client[name] for name in names)
    ensure_alpha_indexes(regular, super_, "alphas")
    try:

        def run():
            return import_files(
                month_alpha_files(landing, MONTH),
                db_regular=regular,
                db_super=super_,
                quarantine_root=quarantine_root,
                landing_root=landing,
                batch_size=10,
            )

        stats = run()
        yield Corpus(landing, quarantine_root, stats, run(), regular, super_, good)
    finally:
        for name in names:
            mongo.client.drop_database(name)
        mongo.close()


def stored_ids(corpus: Corpus) -> set[str]:
    return {doc["_id"] for db in (corpus.regular, corpus.super_) for doc in db["alphas"].find({}, {"_id": 1})}


@pytest.mark.parametrize(
    "key",
    [
        pytest.param(
            key,
            marks=pytest.mark.skipif(
                key in SKIPPED, reason="running as root: a file of mode 000 is readable"
            ),
        )
        for key in CASES
    ],
)
def test_each_bad_case_is_quarantined_with_its_reason_or_counted(corpus, key):
    case = CASES[key]
    name = f"{DIRECTORY}/{case.name}"
    path = corpus.landing / name
    quarantined = {q["file"]: q["reason"] for q in corpus.stats.quarantined}
    flags = {f["file"]: f["flag"] for f in corpus.stats.flagged}
    if case.outcome == "quarantined":
        assert name in quarantined, f"{key} was not quarantined: {flags.get(name)}"
        assert case.expect in quarantined[name], quarantined[name]
        assert not os.path.lexists(path), "still in the landing area"
        moved = corpus.quarantine / name
        assert os.path.lexists(moved)
        note = reason_file_of(moved).read_text("utf-8", "surrogateescape")
        assert note.startswith(f"reason: {quarantined[name]}\nsource: {path}\n"), note[:300]
        assert name not in {e["file"] for e in ledger_entries(corpus.regular)}
        if case.stored_id:
            assert case.stored_id not in stored_ids(corpus)
    else:
        assert name not in quarantined, quarantined.get(name)
        assert case.stored_id in stored_ids(corpus)
        assert flags.get(name, "") == case.expect
        if key in ESCAPED:
            doc = corpus.regular["alphas"].find_one({"_id": case.stored_id})
            keys = json.dumps(list(doc["settings"]) + list(doc))
            assert "$" not in keys and "a.b" not in keys and "\\u0000" not in keys, keys
            assert from_document(doc) == ESCAPED[key]()


def test_the_good_files_load_and_the_counts_add_up(corpus):
    stats = corpus.stats
    bad = [key for key, case in CASES.items() if case.outcome == "quarantined" and key not in SKIPPED]
    accepted = [key for key, case in CASES.items() if case.outcome == "stored"]
    flagged = [key for key in accepted if CASES[key].expect]
    assert len(bad) + len(accepted) >= 25
    assert len(stats.quarantined) == len(bad), sorted(q["file"] for q in stats.quarantined)
    assert stats.files_seen == GOOD + len(CASES) - len(SKIPPED)
    assert stats.files_imported == stats.inserted == GOOD + len(accepted)
    assert stored_ids(corpus) == set(corpus.good) | {CASES[key].stored_id for key in accepted}
    for alpha_id, alpha in corpus.good.items():
        db = corpus.super_ if alpha["type"] == "SUPER" else corpus.regular
        assert from_document(db["alphas"].find_one({"_id": alpha_id})) == alpha
    meta = stats.as_metadata()
    assert (meta["files_quarantined"], meta["files_flagged"], meta["files_keys_escaped"]) == (
        len(bad),
        len(flagged),
        len(ESCAPED),
    )
    # a long name: the reason file's name is shortened (recognisable, with a hash), it records the full path
    for long_name in (LONG_GOOD, LONG_BAD):
        reason_file = reason_file_of(corpus.quarantine / DIRECTORY / long_name)
        assert len(reason_file.name.encode()) <= 255 and reason_file.name.startswith(long_name[:200])
        assert f"source: {corpus.landing / DIRECTORY / long_name}\n" in reason_file.read_text()
    # the link was moved itself; its target, outside the landing area, is untouched
    link = corpus.quarantine / DIRECTORY / "Case032.json"
    assert link.is_symlink() and Path(os.readlink(link)).exists()
    note = reason_file_of(link).read_text()  # nothing of the target, not even its path
    assert "link_target: not recorded (it points outside the landing area)\n" in note
    assert str(corpus.landing.parent / "outside") not in note
    # nothing is left to fail on: a re-run skips the imported files and quarantines nothing
    rerun = corpus.rerun
    assert rerun.quarantined == [] and rerun.files_skipped == rerun.files_seen == GOOD + len(accepted)


# ---------------------------------------------------------------- MongoDB's 16 MB per document


def land_month(landing: Path, alphas: list[dict]) -> list[tuple[str, Path]]:
    for alpha in alphas:
        alpha = {key: value for key, value in alpha.items() if value is not DROP}
        path = landing / DIRECTORY / f"{alpha['id']}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(canonical_file_bytes(alpha))
    return month_alpha_files(landing, MONTH)


def big(n: int, size: int, field: str = "regular") -> dict:
    return case_alpha(n, **{field: {"code": "y" * size, "description": None, "operatorCount": 1}})


def test_a_document_merged_over_16_mb_is_quarantined_and_the_stored_alpha_kept(dbs, tmp_path):
    landing, quarantine_root = tmp_path / "landing", tmp_path / "quarantine"
    half = 9 * 1024 * 1024

    def run(files, mode="incremental"):
        return import_files(
            files,
            db_regular=dbs[0],
            db_super=dbs[1],
            mode=mode,
            quarantine_root=quarantine_root,
            landing_root=landing,
        )

    first = run(land_month(landing, [big(1, half), case_alpha(2)]))
    assert (first.inserted, first.quarantined) == (2, [])
    # the new file is 9 MB too, in another field, without `regular` (kept from the stored alpha by the
    # deep merge): merged, the document would be 18 MB
    files = land_month(
        landing, [{**big(1, half, field="combo"), "regular": DROP}, case_alpha(2, name="changed")]
    )
    second = run(files, mode="overwrite")
    assert [q["file"] for q in second.quarantined] == [f"{DIRECTORY}/Case001.json"]
    reason = second.quarantined[0]["reason"]
    assert reason.startswith("alpha Case001: merged with the stored alpha, its document would be 18,"), reason
    assert reason.endswith(
        f"bytes, over MongoDB's limit of 16,777,216 bytes per document (file {DIRECTORY}/Case001.json)"
    )
    assert (second.merged, second.files_imported) == (1, 1)
    assert len(from_document(dbs[0]["alphas"].find_one({"_id": "Case001"}))["regular"]["code"]) == half
    assert from_document(dbs[0]["alphas"].find_one({"_id": "Case002"}))["name"] == "changed"
    assert run(month_alpha_files(landing, MONTH), mode="overwrite").quarantined == []


@pytest.mark.parametrize("stored_first", [False, True], ids=["inserts", "transaction"])
def test_a_document_the_server_refuses_is_quarantined_and_the_batch_loads(
    dbs, tmp_path, monkeypatch, stored_first
):
    """The check before sending is off: the server refuses the 17 MB document (write error 10334).
    `inserts`: a batch of new alphas (unordered insert: the others are written). `transaction`: the
    alphas are stored already, the batch replaces them in a transaction that the refusal rolls back:
    the document is taken out and the transaction runs again."""
    monkeypatch.setattr(importer, "MAX_DOCUMENT_BYTES", 1 << 30)
    landing, quarantine_root = tmp_path / "landing", tmp_path / "quarantine"
    alphas = [case_alpha(n) for n in range(1, 13)]
    if stored_first:
        import_files(land_month(landing, alphas), db_regular=dbs[0], db_super=dbs[1])
        alphas = [{**alpha, "name": "changed"} for alpha in alphas]
    alphas[5] = big(6, OVER_16_MB)
    stats = import_files(
        land_month(landing, alphas),
        db_regular=dbs[0],
        db_super=dbs[1],
        mode="overwrite",
        quarantine_root=quarantine_root,
        landing_root=landing,
    )
    assert [q["file"] for q in stats.quarantined] == [f"{DIRECTORY}/Case006.json"]
    reason = stats.quarantined[0]["reason"]
    assert reason.startswith("MongoDB refused the document of alpha Case006 (17,8"), reason
    assert reason.endswith(
        f" bytes; file {DIRECTORY}/Case006.json): object to insert too large. size in bytes: "
        f"17829626, max size: 16777216 (code 10334)"
    ), reason
    assert (stats.merged if stored_first else stats.inserted) == 11 and stats.files_imported == 11
    assert reason_file_of(quarantine_root / DIRECTORY / "Case006.json").exists()
    docs = {doc["_id"]: from_document(doc) for doc in dbs[0]["alphas"].find()}
    assert len(docs) == (12 if stored_first else 11)
    assert all(docs[a["id"]] == a for a in alphas if a["id"] != "Case006")
    if stored_first:  # the stored alpha is kept as it was
        assert docs["Case006"]["name"] != "changed" and len(docs["Case006"]["regular"]["code"]) < 1000
    ledgered = {e["file"] for e in ledger_entries(dbs[0]) if e["run_id"] is None and e["mode"] == "overwrite"}
    assert f"{DIRECTORY}/Case006.json" not in ledgered and len(ledgered) == 11


def test_a_document_the_driver_refuses_before_sending_is_quarantined_the_rest_written_one_by_one(
    dbs, tmp_path, monkeypatch
):
    """Over the server's 48 MB message size the driver refuses the document itself (DocumentTooLarge,
    part of the batch maybe sent): the batch is written again document by document."""
    monkeypatch.setattr(importer, "MAX_DOCUMENT_BYTES", 1 << 30)
    landing, quarantine_root = tmp_path / "landing", tmp_path / "quarantine"
    alphas = [case_alpha(n) for n in range(1, 9)]
    alphas[3] = big(4, 49 * 1024 * 1024)
    stats = import_files(
        land_month(landing, alphas),
        db_regular=dbs[0],
        db_super=dbs[1],
        quarantine_root=quarantine_root,
        landing_root=landing,
    )
    assert [q["file"] for q in stats.quarantined] == [f"{DIRECTORY}/Case004.json"]
    assert "MongoDB refused the document of alpha Case004 (51," in stats.quarantined[0]["reason"]
    assert stats.files_imported == 7
    assert {doc["_id"] for doc in dbs[0]["alphas"].find({}, {"_id": 1})} == {a["id"] for a in alphas} - {
        "Case004"
    }
    assert len({e["file"] for e in ledger_entries(dbs[0])}) == 7
