"""Wire records: each vendor message is declared once, in its source's package, as a typed record
(a ``msgspec.Struct``, one comment per field: wire name, unit, meaning; its type says what a value must
be: `Positive`, `Amount`, `Digits`, a `Literal`) and read here. A page of them is checked and converted in
C (`records_of`); a record that does not fit is a SourceDataError naming the record, the field, its value
as sent and what its type asks (`misfit`). Rules that are not types (an epoch in milliseconds or
microseconds, the page's instrument, a bar's shape) run on the columns afterwards (`check`).
"""

from __future__ import annotations

import functools
import math
import re
import sys
import typing
from collections.abc import Callable, Sequence
from typing import Annotated, Any, NamedTuple

import msgspec
import numpy as np
import polars as pl

from marketdata_assets.core.http import Page, SourceDataError, decode_json
from marketdata_assets.datasets.frames import (
    EPOCH_MS_OR_US,
    EPOCH_US_FROM,
    Int64,  # with the record types below, for the records
    from_us,
)

# The types of declared fields that say what a value must be (a breach is told with their `description`)
_LARGEST = sys.float_info.max
Finite = Annotated[float, msgspec.Meta(ge=-_LARGEST, le=_LARGEST, description="a finite number")]
Amount = Annotated[float, msgspec.Meta(ge=0, le=_LARGEST, description="a number >= 0")]  # finite, >= 0
Positive = Annotated[float, msgspec.Meta(gt=0, le=_LARGEST, description="positive")]  # a price, a size
Text = Annotated[str, msgspec.Meta(min_length=1, description="a non-empty string")]  # an id, a name
Count = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1, description="a count >= 0")]  # trades, orders
Digits = Annotated[str, msgspec.Meta(pattern="^[0-9]{1,18}$", description="an integer")]  # an integer sent as
# text (OKX's epoch ms): its digits only, no point or exponent, within the tables' Int64 (`integers`)
integers = functools.partial(msgspec.convert, type=list[int], strict=False)  # `Digits` values as ints, in C

_FAILURE = re.compile(r"^(?P<why>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_STEP = re.compile(r"\[(\d+)\]|\.([^.\[]+)")
_TYPES = {
    "int": "an integer",
    "float": "a number",
    "bool": "true/false",
    "str": "a string",
    "object": "an object",
    "array": "an array",
}


def page_of(
    kind: type, body: Any, what: str, page: Page, named: Callable[[int, Any], str] | None = None
) -> list:
    """`body` (a decoded JSON array) as `kind` records; a SourceDataError naming what does not fit (record i
    as `named(i, its JSON)`, else "`what` #i"). `Records` (already `kind`, `typed_pages`) are taken as they
    are."""
    if isinstance(body, Records):
        return body
    if not isinstance(body, list):
        raise page.error(f"{what}s: expected a JSON array, got {type(body).__name__} {str(body)[:120]!r}")
    return records_of(kind, body, named or (lambda i, record: f"{what} #{i}"), page)


def records_of(
    kind: type, body: list, named: Callable[[int, Any], str], page: Page, strict: bool = False
) -> list:
    """`body` (decoded JSON records) as `kind` records, converted and checked in C by their declared types;
    the first that does not fit: a SourceDataError naming the record (`named(i, its JSON)`), the field, its
    value as sent and what the field's type asks (`misfit`), with that record's position as its `record`.
    `strict`: JSON types exactly as declared."""
    try:
        return msgspec.convert(body, list[kind], strict=strict)
    except msgspec.ValidationError as error:
        failure = page.error(misfit(str(error), body, kind, named))
        steps = _failure(str(error))[1]
        failure.record = steps[0] if steps and isinstance(steps[0], int) else None  # the record's position
        raise failure from None


def _failure(message: str) -> tuple[str, list[int | str]]:
    """(why, path steps) of a msgspec ValidationError's message: "... - at `$[3].p`" -> (..., [3, "p"])."""
    found = _FAILURE.match(message)
    return found["why"], [int(i) if i else name for i, name in _STEP.findall(found["path"] or "")]


def misfit(message: str, body: list, kind: type, named: Callable[[int, Any], str]) -> str:
    """msgspec's "Expected `float` > 0.0 - at `$[3].price`" as "trade 42 price is -1.0, not positive": the
    record by `named`, the field by its wire name, the value as sent, what its declared type asks."""
    why, steps = _failure(message)
    if not steps or not isinstance(steps[0], int) or steps[0] >= len(body):
        return f"{kind.__name__} records: {why}"
    record = body[steps[0]]
    label = named(steps[0], record)
    missing = re.match(r"Object missing required field `([^`]+)`", why)
    if missing:
        has = sorted(record)[:12] if isinstance(record, dict) else []
        return f"{label} lacks field {missing[1]!r} (has {has})"
    if len(steps) == 1 and kind.__struct_config__.array_like and why.startswith("Expected `array`"):
        return f"{label} is not a [{', '.join(kind.__struct_fields__)}] array: {str(record)[:160]}"
    if len(steps) == 1:  # the record itself is of another JSON type
        expected = re.match(r"Expected `([^`|]+)`", why)
        return f"{label} is {_shown(record)}, not {_TYPES.get(expected[1], why) if expected else why}"
    name, value = steps[1], record
    for step in steps[1:]:
        try:
            value = value[step]
        except (KeyError, IndexError, TypeError):
            break
    where = " ".join([label, _name(kind, name), *(f"[{s}]" for s in steps[2:])]).replace(" [", "[")
    asks = "a finite number" if _non_finite(value) else _asks(kind, name, why)
    if asks == _INT64:
        return f"{where} is {str(value)[:40]}, out of the 64-bit integer range"
    return f"{where} is {_shown(value)}, not {asks}"


def _non_finite(value: Any) -> bool:
    """A number, or a number's text, that is NaN or infinite ('NaN', 'inf', 1e400 read as a float)."""
    if isinstance(value, bool) or not isinstance(value, str | float | int):
        return False
    try:
        return not math.isfinite(float(value))
    except (ValueError, OverflowError):
        return False


def record_epoch(record: Any, key: str, at: int | None = None) -> int | None:
    """A record's `key` as epoch ms or µs, as sent (an integer, or its digit text) or read, to name the
    record by its time; a row (a JSON array) by its value at position `at` (None: a row has none); None
    where it is no such epoch."""
    if isinstance(record, list):
        t = record[at] if at is not None and len(record) > at else None
    else:
        t = record.get(key) if isinstance(record, dict) else None
    t = int(t) if isinstance(t, str) and t.isascii() and t.isdigit() and len(t) <= 18 else t
    if isinstance(t, bool) or not isinstance(t, int | np.integer):
        return None
    return t if EPOCH_MS_OR_US[0] <= t < EPOCH_MS_OR_US[1] else None


def _shown(value: Any) -> str:
    """A value as a breach shows it: an array or object by its type and its start, else as sent."""
    return f"{type(value).__name__} {str(value)[:80]!r}" if isinstance(value, dict | list) else repr(value)


def _asks(kind: type, name: Any, why: str) -> str:
    """What field `name` of `kind` asks, as a breach says it: the description of its type's constraint
    (`Positive`: "positive"), the values of a Literal ("buy/sell"), else the JSON type msgspec expected."""
    fields = kind.__struct_fields__
    name = fields[name] if isinstance(name, int) and name < len(fields) else name  # an array-like record's
    hint = typing.get_type_hints(kind, include_extras=True).get(name) if isinstance(name, str) else None
    values, described = _literals(hint), _description(hint)
    if why.startswith("Invalid enum value") and values:
        return "/".join(values) if len(values) == 2 else f"one of {', '.join(map(str, values))}"
    if why.startswith("Number out of range"):
        return "a finite number"
    expected = re.match(r"Expected `([^`|]+)`(.*)", why)
    if expected and expected[2].startswith(" ") and described:  # a constraint (`Expected `float` > 0.0`)
        return described
    if expected and expected[2].startswith((" >=", " <")) and expected[1] == "int":
        return _INT64
    return _TYPES.get(expected[1], expected[1]) if expected else why


_INT64 = "in the 64-bit integer range"


def _literals(hint: Any) -> tuple:
    """The values a Literal in `hint` allows (through Optional, Annotated)."""
    if typing.get_origin(hint) is typing.Literal:
        return typing.get_args(hint)
    return next((v for arg in typing.get_args(hint) if (v := _literals(arg))), ())


def _description(hint: Any) -> str | None:
    """The description of the msgspec.Meta in `hint` (through Optional, list[...])."""
    if typing.get_origin(hint) is Annotated:
        metas = [m for m in hint.__metadata__ if isinstance(m, msgspec.Meta) and m.description]
        if metas:
            return metas[0].description
    return next((d for arg in typing.get_args(hint) if (d := _description(arg))), None)


class Records(list):
    """A page decoded from its bytes straight into declared records (`typed_pages`); `content` keeps the
    bytes, for the record readers when a record breaks a rule that is not a type (`raw`)."""

    content: bytes = b""


def typed_pages(kind: type):
    """A body reader for an endpoint whose pages are arrays of `kind`: the records decoded from the bytes
    in one pass (msgspec, lax as `page_of`); a body they do not fit (an error object, a bad record) is
    read as any answer is (core.http.decode_json), and its parser takes it as before."""
    decoder = msgspec.json.Decoder(list[kind], strict=False)

    def decode(content: bytes) -> Any:
        try:
            records = Records(decoder.decode(content))
        except msgspec.DecodeError:
            return decode_json(content)
        records.content = content
        return records

    return decode


def raw(body: Any) -> Any:
    """The decoded JSON of a body (`Records` are read again from their bytes)."""
    return decode_json(body.content) if isinstance(body, Records) else body


def one_of(kind: type, record: Any, what: str, page: Page) -> Any:
    """One decoded JSON value as a `kind` record (a stream event, a snapshot answer)."""
    return records_of(kind, [record], lambda i, one: what, page)[0]


def _name(kind: type | None, step: int | str) -> str:
    """A record field's name as messages say it: its `labels` entry, else its wire name (array-like
    records: the name of the field at that position)."""
    if kind is None:
        return str(step)
    name = (
        kind.__struct_fields__[step]
        if isinstance(step, int) and step < len(kind.__struct_fields__)
        else str(step)
    )
    return getattr(kind, "labels", {}).get(name, name)


def columns(records: Sequence[Any], fields: Sequence[str]) -> dict[str, list]:
    """The `fields` of `records` (declared records of one kind) as lists: each record's values taken at
    once and transposed, in C."""
    if not records:
        return {name: [] for name in fields}
    values = zip(*map(msgspec.structs.astuple, records))
    every = dict(zip(type(records[0]).__struct_fields__, values, strict=True))
    return {name: list(every[name]) for name in fields}


def epochs_to_us(times: Sequence[int]) -> np.ndarray:
    """Epoch ms or µs → µs, each by its magnitude (datasets.frames.epoch_to_us, vectorized)."""
    stamps = np.fromiter(times, np.int64, len(times))
    return np.where(stamps >= EPOCH_US_FROM, stamps, stamps * 1000)


def frame_of(
    schema: dict, venue: str, instrument: str, ts: Sequence[int], /, **values: Sequence
) -> pl.DataFrame:
    """A frame of `schema` built eagerly from a page's columns (no query plan per page): `ts` in epoch ms
    or µs (by magnitude, as datasets.frames.epoch_to_us), venue and instrument constant, the other
    columns of the schema from `values` (other keys ignored); a column not in `values` is null (a nullable
    column this venue has nothing for; the writer refuses nulls where the dataset allows none)."""
    n = len(ts)
    built = {
        "ts": pl.Series("ts", epochs_to_us(ts)).cast(schema["ts"]),
        "venue": _constant("venue", venue, n),
        "instrument": _constant("instrument", instrument, n),
    }
    return pl.DataFrame(
        [
            built[name] if name in built else pl.Series(name, values.get(name, [None] * n), dtype)
            for name, dtype in schema.items()
        ]
    )


def _constant(name: str, value: str, n: int) -> pl.Series:
    """`n` times `value` (eagerly: `pl.repeat` builds a query plan, ~30x the cost for a page)."""
    return pl.Series(name, [value], pl.Utf8).new_from_index(0, n) if n else pl.Series(name, [], pl.Utf8)


# ---- rules that are not types, kept by every record of a page ----------------------------------


class Rule(NamedTuple):
    """A rule every record of a page keeps, checked on the page's columns at once; `says` is how a
    breach is told (a template over {what}: the record, {value}: its `column` value, {wire}: that
    field's text as sent)."""

    column: str  # the column it reads (and names in {value}, {wire})
    ok: Callable[[dict[str, np.ndarray]], Any]  # the page's columns → True where a record keeps it
    says: str | Callable[[str, dict], str]  # the breach, as the record readers always said it (or
    #                                            (what, the record's values) → the words)


def is_finite(column: str, label: str | None = None) -> Rule:
    """A number that is not NaN or infinite (said with the wire's text: 'NaN', '1e400')."""
    return Rule(
        column,
        lambda cols: np.isfinite(cols[column]),
        f"{{what}} {label or column} is {{wire!r}}, not a finite number",
    )


def is_positive(column: str, label: str | None = None) -> Rule:
    """A price or size above 0."""
    return Rule(
        column, lambda cols: cols[column] > 0, f"{{what}} {label or column} is {{value}}, not positive"
    )


def is_not_negative(column: str, label: str | None = None) -> Rule:
    """A volume, a count: 0 or more."""
    return Rule(column, lambda cols: cols[column] >= 0, f"{{what}} {label or column} is {{value}}, negative")


def is_epoch(column: str, label: str | None = None) -> Rule:
    """0 (a placeholder the plausibility rule drops and counts) or epoch milliseconds / microseconds."""

    def ok(cols):
        t = cols[column]
        return (t == 0) | ((t >= EPOCH_MS_OR_US[0]) & (t < EPOCH_MS_OR_US[1]))

    return Rule(
        column,
        ok,
        f"{{what}} {label or column} is {{value}}: neither epoch milliseconds nor "
        "microseconds (seconds? nanoseconds?)",
    )


def is_flag(column: str, label: str | None = None) -> Rule:
    """A JSON true/false (a lax "true" or 1 is not)."""
    return Rule(
        column,
        lambda cols: (
            cols[column].dtype == bool or np.fromiter(map(_is_bool, cols[column]), bool, len(cols[column]))
        ),
        f"{{what}} {label or column} is {{value!r}}, not true/false",
    )


def _is_bool(value: Any) -> bool:
    return value is True or value is False


def bar_rules(ts: str = "ts", volume: str | None = "volume", minute: bool = True) -> tuple[Rule, ...]:
    """A bar that can be true (datasets.wire.check_bar, said the same way): opens on a minute (`minute`;
    `ts` in epoch µs), positive prices, low <= open/close <= high, volume >= 0."""
    on_minute = (
        (
            Rule(
                ts,
                lambda c: c[ts] % 60_000_000 == 0,
                lambda what, r: (
                    f"{what} opens at {from_us(int(r[ts])).isoformat()}, not on a minute: not a 1-minute bar"
                ),
            ),
        )
        if minute
        else ()
    )
    prices = tuple(is_positive(name, name) for name in ("open", "high", "low", "close"))
    shape = Rule(
        "low",
        lambda c: (
            (c["low"] <= np.minimum(c["open"], c["close"])) & (np.maximum(c["open"], c["close"]) <= c["high"])
        ),
        lambda what, r: (
            f"{what} is not a bar: open {r['open']}, high {r['high']}, low {r['low']}, close {r['close']}"
        ),
    )
    volumes = (is_not_negative(volume, "volume"),) if volume else ()
    return on_minute + prices + (shape,) + volumes


def check(
    cols: dict[str, Sequence],
    rules: Sequence[Rule],
    what: str | Callable[[int, dict], str],
    page: Page,
    body: Any = None,
    kind: type | None = None,
) -> None:
    """A SourceDataError telling how the first record (by position) that breaks a rule breaks it (its
    first rule broken, in the rules' order); nothing if every record keeps every rule. `what` names
    record i: a template over {i} and the record's columns ("aggTrade #{i} (a={a})") or (i, the record's
    values) → its name; `body` (and `kind`, for array-like records) gives a field's text as sent."""
    if not len(next(iter(cols.values()), ())):
        return
    arrays = _Arrays(cols)
    first: tuple[int, int] | None = None
    for k, rule in enumerate(rules):
        ok = _kept(arrays, rule)
        if ok.size and not ok.all():
            i = int(np.argmin(ok))
            if first is None or i < first[0]:
                first = (i, k)
    if first is None:
        return
    i, rule = first[0], rules[first[1]]
    record = {name: values[i] for name, values in cols.items()}
    named = what(i, record) if callable(what) else what.format(i=i, **record)
    if callable(rule.says):
        raise page.error(rule.says(named, record))
    raise page.error(
        rule.says.format(
            what=named,
            value=record.get(rule.column),
            wire=_wire(body, kind, i, rule.column, record.get(rule.column)),
        )
    )


def _kept(arrays: _Arrays, rule: Rule) -> np.ndarray:
    """Where the records keep `rule` (a NaN or an overflow in its test is a breach, not a warning)."""
    with np.errstate(invalid="ignore", over="ignore"):
        return np.asarray(rule.ok(arrays), bool)


def _wire(body: Any, kind: type | None, i: int, column: str, value: Any) -> Any:
    """Field `column` of record i as the body sent it (`value` where the body does not have it)."""
    try:
        record = raw(body)[i]
        return record[column] if isinstance(record, dict) else record[kind.__struct_fields__.index(column)]
    except (TypeError, KeyError, IndexError, ValueError, AttributeError):
        return value


class _Arrays(dict):
    """A page's columns as arrays for the rules, each converted when a rule first reads it."""

    def __init__(self, cols: dict[str, Sequence]):
        super().__init__()
        self.cols = cols

    def __missing__(self, name: str) -> np.ndarray:
        array = self[name] = _array(self.cols[name])
        return array

    def __contains__(self, name: object) -> bool:
        return name in self.cols


def _array(values: Sequence) -> np.ndarray:
    """A column as numbers where it is numbers (floats, ints as int64, true/false as bool), else objects."""
    if isinstance(values, np.ndarray):
        return values
    kind = type(values[0]) if len(values) else None
    try:
        if kind is float:  # a declared float column (an int among them is read as its float; text raises)
            floats = np.fromiter(values, np.float64, len(values))
            if not np.isnan(floats).any() or None not in values:  # numpy reads a None as NaN
                return floats
        if kind in (int, bool) and set(map(type, values)) == {kind}:
            return np.fromiter(values, np.int64 if kind is int else bool, len(values))
    except (TypeError, ValueError, OverflowError):
        pass
    return np.array(values, object)


def each(column: str, keeps: Callable[[Any], bool], says: str | Callable[[str, dict], str]) -> Rule:
    """A rule on each value of `column` alone, asked value by value (a name, a side, a flag: what is
    not a number)."""
    return Rule(column, lambda cols: np.fromiter(map(keeps, cols[column]), bool, len(cols[column])), says)


def check_at(
    cols: dict[str, Sequence],
    rules: Sequence[Rule],
    what: str | Callable[[int, dict], str],
    page_at: Callable[[int, dict], Page],
    body: Any = None,
    kind: type | None = None,
) -> None:
    """`check`, its breach told on `page_at(i, record)`: the page of the record that breaks a rule (its
    own day, where one page's records span several days)."""
    breach: list = []

    def named(i: int, record: dict) -> str:
        breach[:] = i, record
        return what(i, record) if callable(what) else what.format(i=i, **record)

    try:
        check(cols, rules, named, Page(""), body, kind)
    except SourceDataError as error:
        raise page_at(*breach).error(error.detail) from None


def objects(values: Sequence) -> np.ndarray:
    """A column as sent (numbers, text, null, arrays, objects) as a 1-D array of its values, for rules
    that read them one by one (numpy would make arrays of equal length a second dimension)."""
    return np.fromiter(values, object, len(values))


# ---- array-like records, and rules kept only where a column says so ----------------------------


def where(column: str, rules: Sequence[Rule]) -> tuple[Rule, ...]:
    """`rules` kept only by the records where `column` is true (a bar still forming has no prices to
    check)."""
    return tuple(
        Rule(
            rule.column,
            lambda c, ok=rule.ok: ~np.asarray(c[column], bool) | np.asarray(ok(c), bool),
            rule.says,
        )
        for rule in rules
    )


__all__ = [
    "Amount",
    "Count",
    "Digits",
    "Finite",
    "Int64",
    "Positive",
    "Records",
    "Rule",
    "Text",
    "bar_rules",
    "check",
    "check_at",
    "columns",
    "each",
    "epochs_to_us",
    "frame_of",
    "integers",
    "is_epoch",
    "is_finite",
    "is_flag",
    "is_not_negative",
    "is_positive",
    "misfit",
    "objects",
    "one_of",
    "page_of",
    "raw",
    "record_epoch",
    "records_of",
    "typed_pages",
    "where",
]
