"""datasets/declared.py on its own: a page decoded into declared records, what a record that does not fit
is called (record, field, value), the rules that are not types checked on a page's columns, the frame
built from them. No source and no server: the venues' tests cover their own records."""

from __future__ import annotations

from typing import Literal

import msgspec
import numpy as np
import polars as pl
import pytest

from marketdata_assets.core.http import Page, SourceDataError
from marketdata_assets.datasets.declared import (
    Amount,
    Finite,
    Int64,
    Positive,
    Records,
    Text,
    bar_rules,
    check,
    columns,
    frame_of,
    is_epoch,
    is_finite,
    is_flag,
    is_positive,
    one_of,
    page_of,
    raw,
    record_epoch,
    records_of,
    typed_pages,
)

PAGE = Page("TOYEX", "BTCUSD", "2026-03-02", "GET /trades")


class Fill(msgspec.Struct):
    id: Int64  # trade id
    p: float  # price
    q: float  # size
    T: int  # epoch ms
    m: bool  # buyer is the maker


class Row(msgspec.Struct, array_like=True):
    labels = {"p": "price"}  # how messages name a field of this array-like record

    t: int  # epoch ms
    p: float  # price


FILLS = [
    {"id": 1, "p": "101.5", "q": 2, "T": 1_772_409_600_000, "m": True},
    {"id": 2, "p": 101.25, "q": "0.5", "T": 1_772_409_600_001, "m": False},
]


def refusal(call) -> str:
    with pytest.raises(SourceDataError) as refused:
        call()
    assert refused.value.source == "TOYEX" and refused.value.instrument == "BTCUSD"
    return str(refused.value)


def test_a_page_is_read_into_its_records_numbers_sent_as_text_included():
    fills = page_of(Fill, FILLS, "fill", PAGE)
    assert [(f.id, f.p, f.q, f.m) for f in fills] == [(1, 101.5, 2.0, True), (2, 101.25, 0.5, False)]
    assert columns(fills, ["p", "T"]) == {"p": [101.5, 101.25], "T": [1_772_409_600_000, 1_772_409_600_001]}
    assert columns([], ["p"]) == {"p": []}


def test_a_record_that_does_not_fit_is_named_by_its_position_field_and_value():
    bad = [FILLS[0], {**FILLS[1], "p": "abc"}]
    assert "fill #1 p is 'abc', not a number" in refusal(lambda: page_of(Fill, bad, "fill", PAGE))
    lacks = [{k: v for k, v in FILLS[0].items() if k != "q"}]
    assert "fill #0 lacks field 'q' (has ['T', 'id', 'm', 'p'])" in refusal(
        lambda: page_of(Fill, lacks, "fill", PAGE)
    )
    huge = [{**FILLS[0], "id": 2**64}]
    assert "fill #0 id is 18446744073709551616, out of the 64-bit integer range" in refusal(
        lambda: page_of(Fill, huge, "fill", PAGE)
    )
    assert "fills: expected a JSON array, got dict" in refusal(
        lambda: page_of(Fill, {"code": 1}, "fill", PAGE)
    )
    # array-like records: a position is named by its field (its `labels` entry), one record by its kind alone
    assert "row #0 price is 'x', not a number" in refusal(lambda: page_of(Row, [[1, "x"]], "row", PAGE))
    assert "snapshot p is None, not a number" in refusal(
        lambda: one_of(Fill, {**FILLS[0], "p": None}, "snapshot", PAGE)
    )
    assert "snapshot m is 'maybe', not true/false" in refusal(
        lambda: one_of(Fill, {**FILLS[0], "m": "maybe"}, "snapshot", PAGE)
    )


def test_pages_decoded_from_their_bytes_keep_them_and_a_body_that_does_not_fit_is_plain_json():
    decode = typed_pages(Fill)
    content = msgspec.json.encode(FILLS)
    records = decode(content)
    assert isinstance(records, Records) and records.content == content and records[0].p == 101.5
    assert page_of(Fill, records, "fill", PAGE) is records  # taken as they are
    assert raw(records) == FILLS  # read again from the bytes, as sent
    error = decode(b'{"code": -1121, "msg": "Invalid symbol."}')
    assert error == {"code": -1121, "msg": "Invalid symbol."} and raw(error) is error


def test_the_first_record_that_breaks_a_rule_is_told_with_the_value_as_sent():
    body = [{"p": "1e400"}, {"p": "-1"}]
    cols = {"p": np.array([float("inf"), -1.0]), "T": np.array([1_772_409_600_000, 5])}
    rules = (is_positive("p", "price"), is_finite("p", "price"), is_epoch("T"))
    # record 0 breaks the second rule, record 1 the first: the first record wins, its first broken rule
    told = refusal(lambda: check(cols, rules, "fill #{i}", PAGE, body))
    assert "fill #0 price is '1e400', not a finite number" in told
    cols["p"] = np.array([1.0, 2.0])
    told = refusal(
        lambda: check(cols, rules, lambda i, r: f"fill {i} at {r['p']}", PAGE)
    )  # named by a function
    assert "fill 1 at 2.0 T is 5: neither epoch milliseconds nor microseconds" in told
    cols["T"] = np.array([0, 1_772_409_600_000_123])  # 0: a placeholder the plausibility rule drops; µs
    check(cols, rules, "fill #{i}", PAGE)  # kept
    check({"p": np.array([])}, rules, "fill #{i}", PAGE)  # an empty page keeps every rule
    flags = {"m": np.array([True, "true"], dtype=object)}
    assert "fill #1 m is 'true', not true/false" in refusal(
        lambda: check(flags, (is_flag("m"),), "fill #{i}", PAGE)
    )


def test_a_bar_that_cannot_be_true_is_refused_by_its_shape():
    bar = {
        "ts": np.array([1_772_409_600_000_000]),
        "open": np.array([10.0]),
        "high": np.array([9.0]),
        "low": np.array([8.0]),
        "close": np.array([9.5]),
        "volume": np.array([1.0]),
    }
    assert "bar #0 is not a bar: open 10.0, high 9.0, low 8.0, close 9.5" in refusal(
        lambda: check(bar, bar_rules(), "bar #{i}", PAGE)
    )
    bar.update(high=np.array([11.0]), ts=np.array([1_772_409_630_000_000]))
    assert "opens at 2026-03-02T00:00:30+00:00, not on a minute" in refusal(
        lambda: check(bar, bar_rules(), "bar #{i}", PAGE)
    )


def test_a_frame_is_built_from_a_pages_columns_in_its_schema():
    schema = {
        "ts": pl.Datetime("us", "UTC"),
        "venue": pl.Utf8,
        "instrument": pl.Utf8,
        "price": pl.Float64,
        "side": pl.Utf8,
    }
    frame = frame_of(schema, "TOYEX", "BTCUSD", [1_772_409_600_000, 1_772_409_600_000_250], price=[1.5, 2.5])
    assert frame.schema == pl.Schema(schema)
    assert frame["ts"].dt.epoch("us").to_list() == [1_772_409_600_000_000, 1_772_409_600_000_250]  # ms and µs
    assert frame["venue"].to_list() == ["TOYEX"] * 2 and frame["side"].null_count() == 2
    assert frame_of(schema, "TOYEX", "BTCUSD", []).height == 0


class Fill2(msgspec.Struct):
    id: Text  # trade id
    price: Positive
    size: Amount
    rate: Finite
    side: Literal["buy", "sell"]
    flag: Literal["M", "T", "MT"] | None = None
    seq: Int64 = 0
    closes: list[Positive] = []


GOOD = {"id": "7", "price": 1.5, "size": 0, "rate": -0.1, "side": "buy"}


def fill_name(i: int, record) -> str:
    named = isinstance(record, dict) and isinstance(record.get("id"), str) and record["id"]
    return f"fill {record['id']}" if named else f"fill #{i}"


@pytest.mark.parametrize(
    ("bad", "words"),
    [
        ({"price": 0}, "fill 7 price is 0, not positive"),
        ({"price": "n/a"}, "fill 7 price is 'n/a', not a number"),
        ({"size": -1}, "fill 7 size is -1, not a number >= 0"),
        ({"rate": "nan"}, "fill 7 rate is 'nan', not a finite number"),
        ({"side": "long"}, "fill 7 side is 'long', not buy/sell"),
        ({"flag": "X"}, "fill 7 flag is 'X', not one of M, T, MT"),
        ({"id": 7}, "fill #1 id is 7, not a string"),
        ({"id": ""}, "fill #1 id is '', not a non-empty string"),
        ({"seq": 2**64}, "fill 7 seq is 18446744073709551616, out of the 64-bit integer range"),
        ({"closes": [1.0, None]}, "fill 7 closes[1] is None, not a number"),
        ({"price": None}, "fill 7 price is None, not a number"),
    ],
)
def test_records_of_names_the_record_field_and_value_by_the_declared_type(bad, words):
    with pytest.raises(SourceDataError) as error:
        records_of(Fill2, [GOOD, {**GOOD, **bad}], fill_name, PAGE)
    assert str(error.value) == f"TOYEX BTCUSD 2026-03-02: {words} (GET /trades)"


def test_records_of_a_record_missing_a_field_or_no_object():
    with pytest.raises(SourceDataError, match=r"fill #1 lacks field 'id' \(has \['price'\]\)"):
        records_of(Fill2, [GOOD, {"price": 1}], fill_name, PAGE)
    with pytest.raises(SourceDataError, match="fill #1 is 5, not an object"):
        records_of(Fill2, [GOOD, 5], fill_name, PAGE)


def test_records_of_reads_numbers_sent_as_text_unless_strict():
    (fill,) = records_of(Fill2, [{**GOOD, "price": "2.5"}], fill_name, PAGE)
    assert fill.price == 2.5 and fill.flag is None and fill.seq == 0
    with pytest.raises(SourceDataError, match="fill 7 price is '2.5', not a number"):
        records_of(Fill2, [{**GOOD, "price": "2.5"}], fill_name, PAGE, strict=True)


def test_record_epoch_reads_a_records_time_as_sent_or_read():
    ms = 1_736_942_400_000
    assert record_epoch({"ts": ms}, "ts") == ms and record_epoch({"ts": str(ms)}, "ts") == ms
    assert record_epoch({"ts": ms * 1000}, "ts") == ms * 1000  # µs too
    assert (
        record_epoch([str(ms), "1"], "ts", at=0) == ms and record_epoch([ms], "ts") is None
    )  # a row: by `at`
    for odd in (0, True, "1.7e12", "١٧٣٦", 17_369_424, None, [ms]):  # no epoch: the record is named otherwise
        assert record_epoch({"ts": odd}, "ts") is None, odd
    assert record_epoch(5, "ts") is None and record_epoch({}, "ts") is None
