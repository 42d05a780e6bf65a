"""Alpha <-> MongoDB document: exact documents, key escaping, lossless round trips, validation, routing."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import bson
import pymongo
import pytest
from bson.codec_options import CodecOptions
from pymongo.common import validate_ok_for_replace

from marketdata_assets.datasets.alpha_files import canonical_json
from marketdata_assets.replay.alpha_factory import make_alpha
from marketdata_assets.stores.mongo.documents import (
    ESC,
    FW_DOLLAR,
    FW_DOT,
    InvalidAlpha,
    UnsupportedAlphaType,
    collection_for,
    escape_key,
    from_document,
    merged_document,
    replace_payload,
    to_document,
    unescape_key,
    unsafe_keys,
    validate_alpha,
)

NASTY_KEYS = [
    "$where",
    "$set",
    "a.b",
    "$",
    ".",
    "..",
    "a$b",
    "x.$y",
    "\x00",
    "a\x00b",
    FW_DOLLAR,
    FW_DOT,
    ESC,
    ESC + "0",
    ESC + ESC,
    FW_DOLLAR + "set",
    "$" + FW_DOLLAR,
    ESC + "$",
    "plain",
    "",
    "_",
    "__",
    "日本.語",
    "0",
    ESC + "_x",
]


def small_alpha() -> dict:
    return {
        "id": "akZ3Yd0",
        "type": "REGULAR",
        "dateCreated": "2025-07-18T23:32:42-04:00",
        "dateModified": "2025-12-01T09:00:00-05:00",
        "dateSubmitted": None,
        "settings": {"region": "USA", "$where": "1 == 1", "a.b": {"c.d": 1}},
        "_id": "not the real id",
        "_dates": "user field",
        "checks": [{"name": "MATCHES_THEMES", "$set": {"x": 1}}, {"name": "MATCHES_THEMES"}],
        "note": "$values are never touched: a.b $set",
    }


def test_document_exact():
    doc = to_document(small_alpha())
    assert doc == {
        "_id": "akZ3Yd0",
        "id": "akZ3Yd0",
        "type": "REGULAR",
        "dateCreated": "2025-07-18T23:32:42-04:00",
        "dateModified": "2025-12-01T09:00:00-05:00",
        "dateSubmitted": None,
        "settings": {"region": "USA", "\uff04where": "1 == 1", "a\uff0eb": {"c\uff0ed": 1}},
        "\uff3c_id": "not the real id",
        "\uff3c_dates": "user field",
        "checks": [{"name": "MATCHES_THEMES", "\uff04set": {"x": 1}}, {"name": "MATCHES_THEMES"}],
        "note": "$values are never touched: a.b $set",
        "_dates": {
            "dateCreated": datetime(2025, 7, 19, 3, 32, 42, tzinfo=UTC),
            "dateModified": datetime(2025, 12, 1, 14, 0, 0, tzinfo=UTC),
            "dateSubmitted": None,
        },
    }
    assert next(iter(doc)) == "_id" and list(doc)[-1] == "_dates"
    assert from_document(doc) == small_alpha()
    assert list(from_document(doc)) == list(small_alpha())


def test_documents_read_back_as_son():
    from bson.son import SON

    alpha = small_alpha()
    stored = bson.decode(bson.encode(to_document(alpha)), codec_options=CodecOptions(document_class=SON))
    assert isinstance(stored["settings"], SON)
    assert from_document(stored) == alpha


def test_dates_sidecar_absent_fields_stay_absent():
    doc = to_document({"id": "ABCDEFG", "type": "SUPER", "dateCreated": "2025-03-09T03:00:00-04:00"})
    assert doc["_dates"] == {"dateCreated": datetime(2025, 3, 9, 7, 0, tzinfo=UTC)}
    doc = to_document(
        {
            "id": "ABCDEFG",
            "type": "SUPER",
            "dateCreated": "2025-11-02T01:30:00-05:00",
            "dateSubmitted": "2025-11-02T01:30:00-04:00",
        }
    )
    assert doc["_dates"] == {
        "dateCreated": datetime(2025, 11, 2, 6, 30, tzinfo=UTC),
        "dateSubmitted": datetime(2025, 11, 2, 5, 30, tzinfo=UTC),
    }


@pytest.mark.parametrize("key", NASTY_KEYS)
def test_key_escaping_is_reversible_and_safe(key):
    escaped = escape_key(key)
    assert unescape_key(escaped) == key
    assert not escaped.startswith("$") and "." not in escaped and "\x00" not in escaped


def test_escaping_is_injective_over_nasty_keys():
    assert len({escape_key(k) for k in NASTY_KEYS}) == len(NASTY_KEYS)
    with pytest.raises(ValueError, match="dangling escape"):
        unescape_key("abc" + ESC)


def test_round_trip_with_nasty_keys_everywhere():
    alpha = make_alpha(5, "REGULAR")
    alpha["settings"].update({k: {k: [k, {k: k}]} for k in NASTY_KEYS})
    alpha["is"]["checks"].append({"name": "CUSTOM", **{k: 1 for k in NASTY_KEYS}})
    alpha.update({k: k for k in NASTY_KEYS if k})
    doc = to_document(alpha)
    assert unsafe_keys(doc) == []
    back = from_document(doc)
    assert back == alpha and canonical_json(back) == canonical_json(alpha)
    assert list(back) == list(alpha)


@pytest.mark.parametrize(
    "seed,alpha_type,region",
    [(1, "REGULAR", "USA"), (2, "REGULAR", "GLB"), (3, "SUPER", None), (4, "SUPER", "GLB")],
)
def test_round_trip_through_bson(seed, alpha_type, region):
    alpha = make_alpha(seed, alpha_type, region=region)
    original = copy.deepcopy(alpha)
    doc = to_document(alpha)
    assert alpha == original  # input untouched
    stored = bson.decode(bson.encode(doc), codec_options=CodecOptions(tz_aware=True))
    assert stored["_id"] == alpha["id"]
    assert stored["_dates"]["dateCreated"] == doc["_dates"]["dateCreated"]
    back = from_document(stored)
    assert back == alpha
    assert canonical_json(back) == canonical_json(alpha)


def _keys_everywhere(value, out=None):
    out = [] if out is None else out
    if isinstance(value, dict):
        for k, v in value.items():
            out.append(k)
            _keys_everywhere(v, out)
    elif isinstance(value, list):
        for v in value:
            _keys_everywhere(v, out)
    return out


def test_replace_payload_has_no_operator_keys():
    alpha = small_alpha()
    alpha["settings"]["$inc"] = {"is.sharpe": 100}
    alpha["$unset"] = {"status": ""}
    payload = replace_payload(to_document(alpha))
    assert payload["filter"] == {"_id": "akZ3Yd0", "id": "akZ3Yd0"} and payload["upsert"] is True
    keys = _keys_everywhere(payload["filter"]) + _keys_everywhere(payload["replacement"])
    assert [k for k in keys if k.startswith("$") or "." in k or "\x00" in k] == []
    # the driver's own replacement check passes (it refuses a document that starts with an operator)
    validate_ok_for_replace(payload["replacement"])
    with pytest.raises(ValueError):
        validate_ok_for_replace({"$unset": {"status": ""}})
    pymongo.ReplaceOne(**payload)


def test_replace_payload_refuses_unescaped_documents():
    assert unsafe_keys({"a": {"$set": 1}, "b": [{"c.d": 1}]}) == ["/a/$set", "/b[0]/c.d"]
    with pytest.raises(ValueError, match="misread"):
        replace_payload({"_id": "ABCDEFG", "a": {"$set": 1}})


def test_validate_good_alphas():
    for seed in range(20):
        for alpha_type in ("REGULAR", "SUPER"):
            assert validate_alpha(make_alpha(seed, alpha_type)) == []


def _nested_lists(depth: int) -> list:
    value: list = []
    for _ in range(depth - 1):
        value = [value]
    return value


@pytest.mark.parametrize(
    "obj,problems",
    [
        ([1, 2], ["not a JSON object (got array)"]),
        (None, ["not a JSON object (got null)"]),
        ("ABCDEFG", ["not a JSON object (got str)"]),
        ({"type": "REGULAR", "dateCreated": "2025-07-18T23:32:42-04:00"}, ["missing id"]),
        ({"id": None, "type": "REGULAR", "dateCreated": "2025-07-18T23:32:42-04:00"}, ["missing id"]),
        (
            {"id": "ABC123", "type": "REGULAR", "dateCreated": "2025-07-18T23:32:42-04:00"},
            ["invalid id 'ABC123': expected 7-8 letters or digits"],
        ),
        (
            {"id": "ABC123456", "type": "REGULAR", "dateCreated": "2025-07-18T23:32:42-04:00"},
            ["invalid id 'ABC123456': expected 7-8 letters or digits"],
        ),
        (
            {"id": "ABC-1234", "type": "REGULAR", "dateCreated": "2025-07-18T23:32:42-04:00"},
            ["invalid id 'ABC-1234': expected 7-8 letters or digits"],
        ),
        (
            {"id": 1234567, "type": "REGULAR", "dateCreated": "2025-07-18T23:32:42-04:00"},
            ["invalid id 1234567: expected 7-8 letters or digits"],
        ),
        ({"id": "ABCDEFG", "dateCreated": "2025-07-18T23:32:42-04:00"}, ["missing type"]),
        (
            {"id": "ABCDEFG", "type": 1, "dateCreated": "2025-07-18T23:32:42-04:00"},
            ["type is not a string: 1"],
        ),
        (
            {"id": "ABCDEFG", "type": "ATOM", "dateCreated": "2025-07-18T23:32:42-04:00"},
            ["unsupported type 'ATOM'"],
        ),
        ({"id": "ABCDEFG", "type": "REGULAR"}, ["missing dateCreated"]),
        (
            {"id": "ABCDEFG", "type": "REGULAR", "dateCreated": "yesterday"},
            ["unparseable dateCreated: not an ISO 8601 timestamp: 'yesterday'"],
        ),
        (
            {"id": "ABCDEFG", "type": "REGULAR", "dateCreated": "2025-07-18T23:32:42"},
            ["unparseable dateCreated: timestamp without a UTC offset: '2025-07-18T23:32:42'"],
        ),
        (
            {
                "id": "ABCDEFG",
                "type": "REGULAR",
                "dateCreated": "2025-07-18T23:32:42-04:00",
                "dateModified": 1752896000,
            },
            ["unparseable dateModified: expected an ISO 8601 string, got int"],
        ),
        (
            {
                "id": "ABCDEFG",
                "type": "REGULAR",
                "dateCreated": "2025-07-18T23:32:42-04:00",
                "dateSubmitted": "2025-13-01",
            },
            ["unparseable dateSubmitted: not an ISO 8601 timestamp: '2025-13-01'"],
        ),
        (
            {
                "id": "ABCDEFG",
                "type": "REGULAR",
                "dateCreated": "2025-07-18T23:32:42-04:00",
                "is": {"pnl": 2**63, "checks": [{"value": float("nan")}]},
            },
            [f"is.pnl: integer {2**63} does not fit in 64 bits", "is.checks[0].value: non-finite number nan"],
        ),
        (
            {
                "id": "ABCDEFG",
                "type": "REGULAR",
                "dateCreated": "2025-07-18T23:32:42-04:00",
                "name": "bad \ud800",
            },
            ["name: string is not valid Unicode (lone surrogate)"],
        ),
        (
            {"id": "", "dateCreated": None},
            ["invalid id '': expected 7-8 letters or digits", "missing type", "missing dateCreated"],
        ),
        # known fields of the wrong JSON type (null is fine: the API's "not set")
        (
            {
                "id": "ABCDEFG",
                "type": "REGULAR",
                "dateCreated": "2025-07-18T23:32:42-04:00",
                "status": {"s": "ACTIVE"},
                "checks": "LOW_SHARPE",
                "favorite": 1,
                "hidden": None,
                "name": None,
            },
            [
                "status: expected a string or null, got an object",
                "favorite: expected true/false or null, got a number",
                "checks: expected an array or null, got a string",
            ],
        ),
        (
            {
                "id": "ABCDEFG",
                "type": "REGULAR",
                "dateCreated": "2025-07-18T23:32:42-04:00",
                "settings": {"region": ["USA"]},
                "os": {"checks": [{"name": "LOW_SHARPE"}, "PASS"]},
                "tags": ["a", None],
                "osmosisPoints": "12",
            },
            [
                "osmosisPoints: expected a number or null, got a string",
                "tags[1]: expected a string, got null",
                "settings.region: expected a string or null, got an array",
                "os.checks[1]: expected an object, got a string",
            ],
        ),
        (
            {
                "id": "ABCDEFG",
                "type": "REGULAR",
                "dateCreated": "2025-07-18T23:32:42-04:00",
                "x": _nested_lists(100),
            },
            ["x[0][0]...: nested more than 100 levels deep (MongoDB stores at most 100)"],
        ),
    ],
)
def test_validate_problems(obj, problems):
    assert validate_alpha(obj) == problems


def test_validate_any_type_when_asked():
    alpha = make_alpha(1, "ATOM")
    assert validate_alpha(alpha) == ["unsupported type 'ATOM'"]
    assert validate_alpha(alpha, supported_types=None) == []
    assert to_document(alpha)["type"] == "ATOM"  # documents are type-agnostic; routing decides


def test_to_document_refuses_invalid():
    with pytest.raises(InvalidAlpha) as info:
        to_document({"id": "x", "type": "REGULAR", "dateCreated": "2025-07-18"})
    assert info.value.problems == [
        "invalid id 'x': expected 7-8 letters or digits",
        "unparseable dateCreated: timestamp without a UTC offset: '2025-07-18'",
    ]


def test_collection_routing():
    assert collection_for(make_alpha(1, "REGULAR")) == "regular"
    assert collection_for(make_alpha(1, "SUPER")) == "super"
    with pytest.raises(UnsupportedAlphaType, match="unsupported type 'ATOM'"):
        collection_for(make_alpha(1, "ATOM"))
    with pytest.raises(UnsupportedAlphaType, match="unsupported type None"):
        collection_for({})


def test_merged_document_against_stored_document():
    stored = to_document(
        {
            "id": "ABCDEFG",
            "type": "REGULAR",
            "dateCreated": "2025-07-18T23:32:42-04:00",
            "dateSubmitted": "2025-07-20T10:00:00-04:00",
            "a.b": 1,
            "is": {"checks": [{"name": "LOW_SHARPE", "value": 1.0}], "sharpe": 1.0},
        }
    )
    new = {
        "id": "ABCDEFG",
        "type": "REGULAR",
        "dateCreated": "2025-07-18T23:32:42-04:00",
        "dateSubmitted": None,
        "is": {"checks": [{"name": "LOW_SHARPE", "value": 2.5}, {"name": "NEW_CHECK", "value": 1.0}]},
    }
    doc, changed = merged_document(stored, new)
    assert changed
    assert doc == {
        "_id": "ABCDEFG",
        "id": "ABCDEFG",
        "type": "REGULAR",
        "dateCreated": "2025-07-18T23:32:42-04:00",
        "dateSubmitted": None,
        "is": {
            "checks": [{"name": "LOW_SHARPE", "value": 2.5}, {"name": "NEW_CHECK", "value": 1.0}],
            "sharpe": 1.0,
        },
        "a\uff0eb": 1,
        "_dates": {"dateCreated": datetime(2025, 7, 19, 3, 32, 42, tzinfo=UTC), "dateSubmitted": None},
    }
    assert merged_document(doc, new) == (doc, False)
    # as stored and read back by pymongo (large integers come back as bson Int64): still unchanged
    big = {**new, "is": {**new["is"], "pnl": 2**40}}
    stored_big = bson.decode(
        bson.encode(merged_document(stored, big)[0]), codec_options=CodecOptions(tz_aware=True)
    )
    assert type(stored_big["is"]["pnl"]) is not int
    assert merged_document(stored_big, big)[1] is False
    rebuilt, changed = merged_document(stored, new, mode="rebuild")
    assert changed and "a\uff0eb" not in rebuilt and rebuilt["is"] == new["is"]
    assert merged_document(None, new) == (to_document(new), True)


def test_alpha_factory_is_deterministic_realistic_and_complete():
    import hashlib
    import statistics

    from marketdata_assets.replay.alpha_factory import alpha_id_for

    assert make_alpha(42, "SUPER") == make_alpha(42, "SUPER")
    assert make_alpha(42, "SUPER") != make_alpha(43, "SUPER")
    # same bytes on every machine (string-seeded RNG): the replay server and the benchmark rely on it
    digest = hashlib.sha256(
        b"".join(canonical_json(make_alpha(i, t)) for i in range(20) for t in ("REGULAR", "SUPER"))
    ).hexdigest()
    assert digest == FACTORY_DIGEST
    ids = {alpha_id_for(i, t) for i in range(5000) for t in ("REGULAR", "SUPER", "ATOM")}
    assert len(ids) == 15000
    alphas = [make_alpha(i, t) for i in range(150) for t in ("REGULAR", "SUPER")]
    sizes = [len(canonical_json(a)) for a in alphas]
    assert 3500 < statistics.mean(sizes) < 5500
    seen_checks = set()
    for a in alphas:
        assert validate_alpha(a) == []
        assert a["dateCreated"][-6:] in ("-04:00", "-05:00")
        assert ("regular" in a) == (a["type"] == "REGULAR") and ("combo" in a) == (a["type"] == "SUPER")
        names = [c["name"] for c in a["is"]["checks"]]
        assert names.count("IS_LADDER_SHARPE") >= 2 and names.count("MATCHES_THEMES") >= 1
        for c in a["is"]["checks"]:
            seen_checks.add((c["name"], c["result"], tuple(sorted(c))))
        for block in ("is", "os", "train", "test"):
            if a[block] is not None:
                assert isinstance(a[block]["pnl"], int) and isinstance(a[block]["checks"], list)
    shapes = {shape for _, _, shape in seen_checks}
    assert ("name", "result") in shapes
    assert ("limit", "name", "result", "value") in shapes
    assert ("limit", "name", "ratio", "result", "value") in shapes
    assert ("effective", "multiplier", "name", "pyramids", "result") in shapes
    assert ("endDate", "limit", "name", "result", "startDate", "value", "year") in shapes
    assert {r for _, r, _ in seen_checks} == {"PASS", "FAIL", "WARNING", "PENDING"}
    assert any(sum(c["name"] == "MATCHES_THEMES" for c in a["is"]["checks"]) == 2 for a in alphas)
    assert any(
        c["endDate"] < c["startDate"]
        for a in alphas
        for c in a["is"]["checks"]
        if c["name"] == "IS_LADDER_SHARPE"
    )
    assert any(a["os"] is not None and a["dateSubmitted"] for a in alphas)
    assert any(a["train"] is not None and a["train"]["investabilityConstrained"] for a in alphas)
    assert any("osmosisPoints" in a for a in alphas)
    glb = make_alpha(1, "REGULAR", region="GLB")
    assert glb["is"]["amer"]["investabilityConstrained"]["pnl"] is not None
    sup = make_alpha(1, "SUPER")
    assert {"selectionHandling", "selectionLimit", "componentActivation"} <= set(sup["settings"])
    assert sup["combo"]["operatorCount"] is None and sup["selection"]["operatorCount"] is None


FACTORY_DIGEST = "f8950da7a3f074627811ad7d5ff5b336abf32e043c6e09369021aa97d0b65dc9"
