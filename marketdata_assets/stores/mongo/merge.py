"""Deep merge of alpha JSON objects (the alpha import tool's "smart deep merge").

Objects merge recursively (only a key absent from the new object keeps the old value); arrays set in
``array_keys`` merge item by item by key; ``merge_changed`` also says whether anything changed, so an
importer can skip unchanged documents. Rules, order, equality: docs/alphas.md, "The deep merge".
"""

from __future__ import annotations

import marshal
import math
from collections.abc import Mapping
from typing import Any

DEFAULT_ARRAY_KEYS: dict[str, str] = {"checks": "name", "classifications": "id"}

# Import modes of the alpha import tool and what each means for ONE document. Which files or alphas
# are looked at (skip processed files, a date window, newer than the database's latest timestamp)
# is decided by the caller; per document every mode deep-merges except `rebuild`.
IMPORT_MODES: dict[str, str] = {
    "incremental": "merge",  # skip already processed files, deep-merge the rest
    "overwrite": "merge",  # process every file, deep-merge (old fields are kept)
    "rebuild": "replace",  # whole-document replace: fields missing from the new object are dropped
    "time_range": "merge",  # only alphas created in a time window, deep-merged
    "smart_merge": "merge",  # only alphas modified after the newest one in the database, deep-merged
}

_SCALARS = (str, int, float, bool, type(None))
_CONTAINERS = frozenset((dict, list))
_PLAIN_SCALARS = frozenset(_SCALARS)  # exact types: most values, tested without isinstance
_MISSING = object()
_MATCH_TYPES = {str: "str", int: "int", float: "float", bool: "const", type(None): "const"}


class _Keys:
    """array_keys split into exact dotted paths and bare names, built once per call (and `share`)."""

    __slots__ = ("bare", "exact", "share")

    def __init__(self, array_keys: Mapping[str, str | None] | None, share: bool = False):
        self.share = share
        self.exact: dict[tuple[str, ...], str | None] = {}
        self.bare: dict[str, str | None] = {}
        for path, key in (DEFAULT_ARRAY_KEYS if array_keys is None else array_keys).items():
            if key is not None and not isinstance(key, str):
                raise TypeError(f"array key for {path!r} must be a field name or None, got {key!r}")
            if "." in path:
                self.exact[tuple(path.split("."))] = key
            else:
                self.bare[path] = key

    def key_for(self, path: tuple[str, ...]) -> str | None:
        if self.exact and path in self.exact:
            return self.exact[path]
        return self.bare.get(path[-1]) if path else None


def copy_json(value: Any) -> Any:
    """A copy of a JSON tree: new dicts and lists, scalars shared (much cheaper than deepcopy)."""
    t = type(value)
    if t is dict:
        return {k: (copy_json(v) if type(v) in _CONTAINERS else v) for k, v in value.items()}
    if t is list:
        return [copy_json(v) if type(v) in _CONTAINERS else v for v in value]
    if isinstance(value, dict):  # subclasses: slow path
        return {k: copy_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [copy_json(v) for v in value]
    return value


def _scalar_equal(a: Any, b: Any) -> bool:
    ta, tb = type(a), type(b)
    if ta is tb:
        return a == b or (ta is float and math.isnan(a) and math.isnan(b))
    if ta is bool or tb is bool:
        return False
    # subclasses: bson's Int64 (what pymongo returns for large integers) equals a plain int
    for py_type in (int, float, str):
        if isinstance(a, py_type):
            return isinstance(b, py_type) and (
                a == b or (py_type is float and math.isnan(a) and math.isnan(b))
            )
    return a == b


def json_equal(a: Any, b: Any) -> bool:
    """Strict JSON equality: int, float and bool are different types, list order matters, key order
    does not; NaN equals NaN; int subclasses (bson Int64) count as int."""
    if isinstance(a, dict):
        if not isinstance(b, dict) or len(a) != len(b):
            return False
        for k, v in a.items():
            if k not in b or not json_equal(v, b[k]):
                return False
        return True
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b))
    if isinstance(b, (dict, list)):
        return False
    return _scalar_equal(a, b)


def _match_key(value: Any) -> tuple[str, Any]:
    # the JSON type keeps 1, 1.0 and True apart (they are equal and hash alike in Python)
    json_type = _MATCH_TYPES.get(type(value))
    if json_type is not None:
        return (json_type, value)
    if isinstance(value, bool) or value is None:
        return ("const", value)
    for py_type in (str, int, float):
        if isinstance(value, py_type):
            return (py_type.__name__, value)
    return (type(value).__name__, value)


def _identical(old: Any, new: Any) -> bool:
    """Equal with the same JSON types and key order. ``==`` alone has 1 == 1.0 == True; marshal's
    bytes tell them apart and follow key order (format 2: no back-references, so how objects are
    shared does not matter). Both run in C, several times faster than walking the trees; a type
    marshal does not know (bson's Int64) answers False and the caller walks."""
    if old != new:
        return False
    try:
        return marshal.dumps(old, 2) == marshal.dumps(new, 2)
    except ValueError:
        return False


def _take(value: Any, keys: _Keys) -> Any:
    return value if keys.share else copy_json(value)


def _keyed(items: list, key: str) -> bool:
    for item in items:
        if not isinstance(item, dict) or key not in item or not isinstance(item[key], _SCALARS):
            return False
    return True


def _merge(old: Any, new: Any, path: tuple[str, ...], keys: _Keys) -> tuple[Any, bool]:
    if isinstance(new, dict) and isinstance(old, dict):
        out: dict = {}
        changed = False
        shared = 0
        for k, nv in new.items():
            ov = old.get(k, _MISSING)
            if ov is not _MISSING:
                shared += 1
                tn = type(nv)
                if tn not in _PLAIN_SCALARS and (tn in _CONTAINERS or isinstance(nv, (dict, list))):
                    if _identical(ov, nv):
                        v = _take(nv, keys)
                    else:
                        v, c = _merge(ov, nv, path + (k,), keys)
                        if c:
                            changed = True
                else:  # scalar: inlined (most of an alpha's values)
                    v = nv
                    if not changed and not ((type(ov) is tn and ov == nv) or _scalar_equal(ov, nv)):
                        changed = True
            else:
                v, changed = _take(nv, keys), True
            out[k] = v
        if shared < len(old):  # old-only keys are kept, after the new ones
            for k, ov in old.items():
                if k not in new:
                    out[k] = _take(ov, keys)
        return out, changed
    if isinstance(new, list) and isinstance(old, list):
        key = keys.key_for(path)
        if key is not None and _keyed(new, key) and _keyed(old, key):
            return _merge_keyed(old, new, key, path, keys)
        return _take(new, keys), not json_equal(old, new)
    return _take(new, keys), not json_equal(old, new)


def _merge_keyed(old: list, new: list, key: str, path: tuple[str, ...], keys: _Keys) -> tuple[list, bool]:
    positions: dict[tuple[str, Any], list[int]] = {}
    for i, item in enumerate(old):
        positions.setdefault(_match_key(item[key]), []).append(i)
    seen: dict[tuple[str, Any], int] = {}
    used = [False] * len(old)
    out: list = []
    order: list[int] = []  # old index behind each output item, -1 for a new item
    changed = False
    for item in new:
        mk = _match_key(item[key])
        n = seen.get(mk, 0)
        seen[mk] = n + 1
        candidates = positions.get(mk)
        if candidates is not None and n < len(candidates):
            oi = candidates[n]
            used[oi] = True
            if _identical(old[oi], item):
                merged = _take(item, keys)
            else:
                merged, c = _merge(old[oi], item, path, keys)
                changed = changed or c
            order.append(oi)
        else:
            merged = _take(item, keys)
            changed = True
            order.append(-1)
        out.append(merged)
    for oi, item in enumerate(old):
        if not used[oi]:
            out.append(_take(item, keys))
            order.append(oi)
    if not changed and order != list(range(len(old))):
        # same items, other order: changed unless the moved items happen to be equal
        changed = not json_equal(out, old)
    return out, changed


def merge_changed(
    old: Any, new: Any, array_keys: Mapping[str, str | None] | None = None, *, share: bool = False
) -> tuple[Any, bool]:
    """Deep-merge `new` into `old` (docs/alphas.md, "The deep merge"); returns (merged, changed vs. old).

    `old` None means "no previous version": the result is a copy of `new` and changed is True.
    `share`: the result may share dicts and lists with the inputs (docs/alphas.md, "The deep merge").
    """
    keys = _Keys(array_keys, share)
    if old is None:
        return _take(new, keys), True
    if _identical(old, new):
        return _take(new, keys), False
    return _merge(old, new, (), keys)


def deep_merge(old: Any, new: Any, array_keys: Mapping[str, str | None] | None = None) -> Any:
    """Deep-merge `new` into `old` and return the result (inputs untouched). See docs/alphas.md, "The deep
    merge"."""
    return merge_changed(old, new, array_keys)[0]


def resolve_for_mode(
    old: Any,
    new: Any,
    mode: str = "overwrite",
    array_keys: Mapping[str, str | None] | None = None,
    *,
    share: bool = False,
) -> tuple[Any, bool]:
    """The document an import `mode` stores for one alpha, and whether it differs from `old`.

    `rebuild` replaces the whole document with `new`; every other mode deep-merges. `share`: as
    for merge_changed.
    """
    try:
        action = IMPORT_MODES[mode]
    except KeyError:
        raise ValueError(f"unknown import mode {mode!r}: expected one of {', '.join(IMPORT_MODES)}") from None
    if action == "replace":
        return (new if share else copy_json(new)), old is None or not json_equal(old, new)
    return merge_changed(old, new, array_keys, share=share)
