"""Alpha JSON object <-> MongoDB document, validation and collection routing.

``_id`` = the alpha's id, every field kept as it is plus the ``_dates`` sidecar; keys MongoDB would
misread are escaped reversibly; REGULAR and SUPER go to their store, any other type to quarantine.
Document shape, key escaping, field types: docs/alphas.md, "Alpha documents".
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import bson
from bson.codec_options import DEFAULT_CODEC_OPTIONS, CodecOptions

from marketdata_assets.datasets.alpha_files import check_alpha_id, implausible_created, to_utc
from marketdata_assets.stores.mongo.merge import resolve_for_mode

COLLECTIONS: dict[str, str] = {"REGULAR": "regular", "SUPER": "super"}
DATE_FIELDS: tuple[str, ...] = ("dateCreated", "dateModified", "dateSubmitted")
DATES_FIELD = "_dates"
_ID_RE = re.compile(r"^[A-Za-z0-9]{7,8}$")

ESC = "\uff3c"  # ＼ full-width reverse solidus: the escape character
FW_DOLLAR = "\uff04"  # ＄
FW_DOT = "\uff0e"  # ．
_NEEDS_ESCAPE = re.compile("[$.\x00\uff04\uff0e\uff3c]")
_ESCAPE_MAP = {
    "$": FW_DOLLAR,
    ".": FW_DOT,
    "\x00": ESC + "0",
    ESC: ESC + ESC,
    FW_DOLLAR: ESC + FW_DOLLAR,
    FW_DOT: ESC + FW_DOT,
}
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
MAX_DEPTH = 100  # levels of nested objects/arrays, the alpha itself the first: MongoDB's documented limit

# The JSON types each known field of the API's alpha object may hold (null is always allowed: the
# API sends null for "not set"); an absent field is fine. "checks" is checked at the top level and
# in each statistics block (where the API puts it); "[]" items: the type every item must have.
_OBJECT, _ARRAY, _STRING, _BOOLEAN, _NUMBER = "object", "array", "string", "boolean", "number"
FIELD_JSON_TYPES: dict[str, tuple[str, str | None]] = {  # field -> (its type, the type of an array's items)
    "author": (_STRING, None),
    "name": (_STRING, None),
    "status": (_STRING, None),
    "stage": (_STRING, None),
    "grade": (_STRING, None),
    "category": (_STRING, None),
    "color": (_STRING, None),
    "favorite": (_BOOLEAN, None),
    "hidden": (_BOOLEAN, None),
    "osmosisPoints": (_NUMBER, None),
    "settings": (_OBJECT, None),
    "regular": (_OBJECT, None),
    "combo": (_OBJECT, None),
    "selection": (_OBJECT, None),
    "pyramidThemes": (_OBJECT, None),
    "team": (_OBJECT, None),
    "is": (_OBJECT, None),
    "os": (_OBJECT, None),
    "train": (_OBJECT, None),
    "test": (_OBJECT, None),
    "prod": (_OBJECT, None),
    "tags": (_ARRAY, _STRING),
    "classifications": (_ARRAY, _OBJECT),
    "checks": (_ARRAY, _OBJECT),
    "competitions": (_ARRAY, _OBJECT),
    "themes": (_ARRAY, _OBJECT),
    "pyramids": (_ARRAY, _OBJECT),
}
STATISTICS_BLOCKS = ("is", "os", "train", "test", "prod")
SETTINGS_JSON_TYPES: dict[str, str] = {
    "region": _STRING,
    "universe": _STRING,
    "delay": _NUMBER,
    "decay": _NUMBER,
}


class UnsupportedAlphaType(ValueError):
    """The alpha's type has no collection (it is quarantined instead)."""


class InvalidAlpha(ValueError):
    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


# ---------------------------------------------------------------- keys


def escape_key(key: str) -> str:
    if not _NEEDS_ESCAPE.search(key):
        return key
    return "".join(_ESCAPE_MAP.get(ch, ch) for ch in key)


def unescape_key(key: str) -> str:
    if ESC not in key and FW_DOLLAR not in key and FW_DOT not in key:
        return key
    out = []
    chars = iter(key)
    for ch in chars:
        if ch == ESC:
            nxt = next(chars, None)
            if nxt is None:
                raise ValueError(f"dangling escape character at the end of key {key!r}")
            out.append("\x00" if nxt == "0" else nxt)
        elif ch == FW_DOLLAR:
            out.append("$")
        elif ch == FW_DOT:
            out.append(".")
        else:
            out.append(ch)
    return "".join(out)


_LEAVES = frozenset((str, int, float, bool, type(None)))


def _tree_keys(value: Any, keys: list) -> list:
    """Every key of a JSON tree, all depths, appended to `keys` (then one string search covers them all)."""
    if isinstance(value, dict):
        keys.extend(value)
        values = value.values()
    else:
        values = value
    for v in values:
        t = type(v)
        if t is dict or t is list or (t not in _LEAVES and isinstance(v, (dict, list))):
            _tree_keys(v, keys)
    return keys


def _needs_escape(value: Any) -> bool:
    """Does any key at any depth need escaping?"""
    return _NEEDS_ESCAPE.search("".join(_tree_keys(value, []))) is not None


def _escape_tree(value: Any) -> Any:
    if isinstance(value, dict):
        return {escape_key(k): _escape_tree(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_escape_tree(v) for v in value]
    return value


def _unescape_tree(value: Any) -> Any:
    if isinstance(value, dict):
        return {unescape_key(k): _unescape_tree(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unescape_tree(v) for v in value]
    return value


def unsafe_keys(value: Any, _path: str = "") -> list[str]:
    """Paths of keys MongoDB would misread: a leading ``$``, a ``.`` or NUL anywhere (should be [])."""
    found: list[str] = []
    if isinstance(value, dict):
        for k, v in value.items():
            here = f"{_path}/{k}"
            if not isinstance(k, str) or k.startswith("$") or "." in k or "\x00" in k:
                found.append(here)
            found.extend(unsafe_keys(v, here))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found.extend(unsafe_keys(v, f"{_path}[{i}]"))
    return found


# ---------------------------------------------------------------- validation


def _where(trail: list) -> str:
    out = ""
    for part in trail:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or "/"


def _walk_problems(value: Any, trail: list, problems: list[str]) -> None:
    # the path string is only built when something is wrong: this runs on every alpha
    if isinstance(value, (dict, list)) and len(trail) >= MAX_DEPTH:
        problems.append(
            f"{_where(trail[:3])}...: nested more than {MAX_DEPTH} levels deep "
            f"(MongoDB stores at most {MAX_DEPTH})"
        )
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                problems.append(f"non-string key {k!r} at {_where(trail)}")
                continue
            if not k.isascii():
                try:
                    k.encode("utf-8")
                except UnicodeEncodeError:
                    problems.append(f"key at {_where(trail)} is not valid Unicode (lone surrogate)")
            trail.append(k)
            _walk_problems(v, trail, problems)
            trail.pop()
    elif isinstance(value, list):
        for i, v in enumerate(value):
            trail.append(i)
            _walk_problems(v, trail, problems)
            trail.pop()
    elif isinstance(value, str):
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                problems.append(f"{_where(trail)}: string is not valid Unicode (lone surrogate)")
    elif value is None or value is True or value is False:
        pass
    elif isinstance(value, int):
        if not _INT64_MIN <= value <= _INT64_MAX:
            problems.append(f"{_where(trail)}: integer {value} does not fit in 64 bits")
    elif isinstance(value, float):
        if not math.isfinite(value):
            problems.append(f"{_where(trail)}: non-finite number {value}")
    else:
        problems.append(f"{_where(trail)}: not a JSON value ({type(value).__name__})")


def _utf8_ok(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _fast_storable(value: Any, keys: list | None = None, depth: int = 1) -> bool:
    """True if every key and value is plain JSON storable in BSON: a quick pre-check (exact types,
    scalars inlined, much cheaper than the walk); when it says False, _walk_problems says why.
    Appends every key to `keys` on the way (for _needs_escape's search without a second walk)."""
    if depth > MAX_DEPTH:
        return False
    if type(value) is dict:
        for k in value:
            if type(k) is not str or (not k.isascii() and not _utf8_ok(k)):
                return False
        if keys is not None:
            keys.extend(value)
        values = value.values()
    else:
        values = value
    for v in values:
        t = type(v)
        if t is str:
            if not v.isascii() and not _utf8_ok(v):
                return False
        elif t is float:
            if v - v != 0.0:  # inf and nan give nan
                return False
        elif t is int:
            if not _INT64_MIN <= v <= _INT64_MAX:
                return False
        elif t is dict or t is list:
            if not _fast_storable(v, keys, depth + 1):
                return False
        elif v is not None and t is not bool:
            return False
    return True


def validate_alpha(
    obj: Any, supported_types: tuple[str, ...] | None = tuple(COLLECTIONS), *, check_values: bool = True
) -> list[str]:
    """Problems that send an alpha to quarantine ([] = good).

    Checks: a JSON object; ``id`` present, 7-8 letters/digits; ``type`` present and a string (and,
    unless `supported_types` is None, one of them: else ``unsupported type 'X'``); ``dateCreated``
    present, a parseable ISO 8601 timestamp with an offset and plausible (core/plausibility.py: it
    decides the month);
    ``dateModified``/``dateSubmitted`` null/absent or parseable; the known fields of the JSON types in
    FIELD_JSON_TYPES (``status: expected a string or null, got an object``); every value storable in
    BSON and canonical JSON (64-bit integers, finite floats, valid Unicode, at most MAX_DEPTH
    levels) unless `check_values` is False (for callers that serialize anyway and let the encoder
    vouch for the values).
    """
    return _validate(obj, supported_types, check_values, None)[0]


def inspect_alpha(
    obj: Any, implausible: Callable[[datetime, str], str | None] = implausible_created
) -> tuple[list[str], bool]:
    """``(validate_alpha(obj), whether any key needs escaping)`` in one walk of the object (the
    second answer is for `to_document(..., escape=...)`; it means nothing when there are problems).
    `implausible`: what implausible_created says of a parsed dateCreated (an importer's cheaper one)."""
    keys: list[str] = []
    problems, walked = _validate(obj, tuple(COLLECTIONS), True, keys, implausible)
    if problems:
        return problems, False
    return problems, _NEEDS_ESCAPE.search("".join(keys)) is not None if walked else _needs_escape(obj)


def _validate(
    obj: Any,
    supported_types: tuple[str, ...] | None,
    check_values: bool,
    keys: list | None,
    implausible: Callable[[datetime, str], str | None] = implausible_created,
) -> tuple[list[str], bool]:
    """(problems, whether the quick check passed: `keys` then holds every key)."""
    if not isinstance(obj, dict):
        got = "array" if isinstance(obj, list) else ("null" if obj is None else type(obj).__name__)
        return [f"not a JSON object (got {got})"], False
    problems: list[str] = []
    if "id" not in obj or obj["id"] is None:
        problems.append("missing id")
    elif not isinstance(obj["id"], str) or not _ID_RE.match(obj["id"]):
        problems.append(f"invalid id {obj['id']!r}: expected 7-8 letters or digits")
    if "type" not in obj or obj["type"] is None:
        problems.append("missing type")
    elif not isinstance(obj["type"], str):
        problems.append(f"type is not a string: {obj['type']!r}")
    elif supported_types is not None and obj["type"] not in supported_types:
        problems.append(f"unsupported type {obj['type']!r}")
    for field in DATE_FIELDS:
        value = obj.get(field)
        if value is None:
            if field == "dateCreated":
                problems.append("missing dateCreated")
            continue
        try:
            parsed = to_utc(value)
        except ValueError as exc:
            problems.append(f"unparseable {field}: {exc}")
            continue
        if field == "dateCreated" and (problem := implausible(parsed, value)):
            problems.append(f"{field}: {problem}")  # it decides the month
    _json_type_problems(obj, problems)
    walked = check_values and _fast_storable(obj, keys)
    if check_values and not walked:
        _walk_problems(obj, [], problems)
    return problems, walked


def _json_type(value: Any) -> str:
    if isinstance(value, dict):
        return _OBJECT
    if isinstance(value, list):
        return _ARRAY
    if isinstance(value, str):
        return _STRING
    if isinstance(value, bool):
        return _BOOLEAN
    if isinstance(value, (int, float)):
        return _NUMBER
    return "null" if value is None else type(value).__name__


def _article(json_type: str) -> str:
    if json_type in ("null", _BOOLEAN):
        return "true/false" if json_type == _BOOLEAN else json_type
    return ("an " if json_type[0] in "aeiou" else "a ") + json_type


def _check_json_type(where: str, value: Any, expected: str, items: str | None, problems: list[str]) -> None:
    """The slow, exact check (isinstance: bson's Int64 of a stored document is a number), with the message."""
    if value is None:
        return
    got = _json_type(value)
    if got != expected:
        problems.append(f"{where}: expected {_article(expected)} or null, got {_article(got)}")
    elif items is not None:
        for i, item in enumerate(value):
            if _json_type(item) != items:
                problems.append(f"{where}[{i}]: expected {_article(items)}, got {_article(_json_type(item))}")
                break


_PY_TYPES = {_OBJECT: (dict,), _ARRAY: (list,), _STRING: (str,), _BOOLEAN: (bool,), _NUMBER: (int, float)}
# (field, exact types that pass at once, exact type every item must have or None, JSON type, items' JSON type)
_FIELD_CHECKS = tuple(
    (
        field,
        frozenset(_PY_TYPES[json_type] + (type(None),)),
        _PY_TYPES[item][0] if item else None,
        json_type,
        item,
    )
    for field, (json_type, item) in FIELD_JSON_TYPES.items()
)
_SETTINGS_CHECKS = tuple(
    (field, frozenset(_PY_TYPES[json_type] + (type(None),)), json_type)
    for field, json_type in SETTINGS_JSON_TYPES.items()
)
_LIST_OF_DICTS = frozenset((dict,))


def _json_type_problems(obj: dict, problems: list[str]) -> None:
    """The known fields (FIELD_JSON_TYPES, SETTINGS_JSON_TYPES, checks in the statistics blocks) of the
    wrong JSON type. Exact types first (this runs on every alpha); anything else gets the exact check."""
    for field, allowed, item_type, json_type, items in _FIELD_CHECKS:
        if field in obj:
            value = obj[field]
            if type(value) not in allowed or (
                item_type is not None and type(value) is list and not set(map(type, value)) <= {item_type}
            ):
                _check_json_type(field, value, json_type, items, problems)
    settings = obj.get("settings")
    if type(settings) is dict:
        for field, allowed, json_type in _SETTINGS_CHECKS:
            if field in settings and type(settings[field]) not in allowed:
                _check_json_type(f"settings.{field}", settings[field], json_type, None, problems)
    for block in STATISTICS_BLOCKS:
        stats = obj.get(block)
        if type(stats) is dict and "checks" in stats:
            checks = stats["checks"]
            if checks is not None and (
                type(checks) is not list or not set(map(type, checks)) <= _LIST_OF_DICTS
            ):
                _check_json_type(f"{block}.checks", checks, _ARRAY, _OBJECT, problems)


def collection_for(obj: Mapping) -> str:
    """'regular' or 'super'; UnsupportedAlphaType for any other type (quarantine it)."""
    alpha_type = obj.get("type")
    try:
        return COLLECTIONS[alpha_type]
    except (KeyError, TypeError):
        raise UnsupportedAlphaType(f"unsupported type {alpha_type!r}") from None


# ---------------------------------------------------------------- documents


def date_sidecar(obj: Mapping) -> dict:
    """``{field: aware UTC datetime | None}`` for the date fields present in the alpha."""
    dates = {}
    for field in DATE_FIELDS:
        if field in obj:
            value = obj[field]
            dates[field] = None if value is None else to_utc(value)
    return dates


def to_document(obj: dict, *, validate: bool = True, escape: bool | None = None) -> dict:
    """The MongoDB document of an alpha (docs/alphas.md, "Alpha documents"). InvalidAlpha if it has problems.

    Validation here is structural (type support is the caller's routing decision via
    `collection_for`). The document is a new top-level dict; nested values are SHARED with `obj`
    when no key needs escaping (the common case: no copy of a 4 KB tree per alpha), so treat both
    as read-only afterwards (pymongo does not modify documents that have an ``_id``).
    `escape`: whether some key needs escaping, when the caller knows (`inspect_alpha`); None: look.
    """
    if validate:
        problems = validate_alpha(obj, supported_types=None)
        if problems:
            raise InvalidAlpha(problems)
    doc: dict = {"_id": check_alpha_id(obj.get("id"))}
    if _needs_escape(obj) if escape is None else escape:
        for key, value in obj.items():
            stored = escape_key(key)
            doc[ESC + stored if stored.startswith("_") else stored] = _escape_tree(value)
    else:
        for key, value in obj.items():
            doc[ESC + key if key.startswith("_") else key] = value
    doc[DATES_FIELD] = date_sidecar(obj)
    return doc


def _needs_unescape(value: Any) -> bool:
    joined = "".join(_tree_keys(value, []))
    return ESC in joined or FW_DOLLAR in joined or FW_DOT in joined


def from_document(doc: Mapping) -> dict:
    """The original alpha object of a document (drops ``_id``/sidecars, unescapes keys).

    Like to_document, shares nested values with `doc` when no key needed escaping.
    """
    if _needs_unescape(doc):
        return {unescape_key(k): _unescape_tree(v) for k, v in doc.items() if not k.startswith("_")}
    return {k: v for k, v in doc.items() if not k.startswith("_")}


# ＼ ＄ ． in UTF-8 all start with these two bytes: stored BSON without them has no escaped key
_ESCAPES_UTF8_PREFIX = ESC.encode()[:2]
assert all(ch.encode().startswith(_ESCAPES_UTF8_PREFIX) for ch in (ESC, FW_DOLLAR, FW_DOT))


def alpha_from_bson(data: bytes, codec_options: CodecOptions = DEFAULT_CODEC_OPTIONS) -> tuple[dict, bool]:
    """``(from_document(document), whether any key was escaped)`` of a stored document's raw BSON.

    Bytes without the escape characters' UTF-8 prefix cannot hold an escaped key: no key walk."""
    if not isinstance(data, bytes):  # a memoryview (RawBSONDocument.raw): `in` would go item by item
        data = bytes(data)
    doc = bson.decode(data, codec_options)
    if _ESCAPES_UTF8_PREFIX not in data:
        return {k: v for k, v in doc.items() if not k.startswith("_")}, False
    return from_document(doc), _needs_unescape(doc)


def replace_payload(doc: dict) -> dict:
    """Arguments of an upserting ``ReplaceOne``/``replace_one``: ``{filter, replacement, upsert}``.

    ``pymongo.ReplaceOne(**replace_payload(doc))``. The replacement contains no operator and no
    key that MongoDB could read as one (checked; ValueError otherwise).
    """
    bad = unsafe_keys(doc)
    if bad:
        raise ValueError(f"document {doc.get('_id')!r} has keys MongoDB would misread: {', '.join(bad[:5])}")
    return {"filter": {"_id": doc["_id"], "id": doc["_id"]}, "replacement": doc, "upsert": True}


def merged_document(
    old_doc: Mapping | None,
    new_alpha: dict,
    mode: str = "overwrite",
    array_keys: Mapping[str, str | None] | None = None,
    *,
    validate: bool = True,
) -> tuple[dict, bool]:
    """The document to store for `new_alpha` given the stored `old_doc` (None if absent).

    Merges the ORIGINAL objects (unescaped, sidecars recomputed), per the import `mode`
    (`rebuild` replaces, every other mode deep-merges). Returns (document, changed); an unchanged
    alpha (changed False) needs no write. `validate=False` skips validating the merged object, for
    callers that validated `new_alpha` already (a stored document was validated when it was stored).
    """
    old = None if old_doc is None else from_document(old_doc)
    merged, changed = resolve_for_mode(old, new_alpha, mode, array_keys)
    return to_document(merged, validate=validate), changed
