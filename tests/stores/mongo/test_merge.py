"""Deep merge: the seed's examples verbatim, keyed arrays with repeated keys, null overwrite, purity."""

from __future__ import annotations

import copy
import json

import pytest

from marketdata_assets.replay.alpha_factory import make_alpha
from marketdata_assets.stores.mongo.merge import (
    DEFAULT_ARRAY_KEYS,
    deep_merge,
    json_equal,
    merge_changed,
    resolve_for_mode,
)


def test_seed_example_nested_objects():
    old = {"settings": {"region": "USA", "delay": 0}}
    new = {"settings": {"region": "ASI", "decay": 5}}
    assert deep_merge(old, new) == {"settings": {"region": "ASI", "delay": 0, "decay": 5}}


def test_seed_example_array_merged_by_name():
    old = {"checks": [{"name": "LOW_SHARPE", "value": 1.0}]}
    new = {"checks": [{"name": "LOW_SHARPE", "value": 2.5}, {"name": "NEW_CHECK", "value": 1.0}]}
    assert deep_merge(old, new) == {
        "checks": [{"name": "LOW_SHARPE", "value": 2.5}, {"name": "NEW_CHECK", "value": 1.0}]
    }


def test_default_array_keys():
    assert DEFAULT_ARRAY_KEYS == {"checks": "name", "classifications": "id"}


def test_null_in_new_overwrites_and_absent_key_keeps_old():
    old = {
        "dateSubmitted": "2025-07-18T23:32:42-04:00",
        "os": {"sharpe": 1.2},
        "grade": "GOOD",
        "settings": {"region": "USA", "decay": 4},
    }
    new = {"dateSubmitted": None, "os": None, "settings": {"decay": None}}
    assert deep_merge(old, new) == {
        "dateSubmitted": None,
        "os": None,
        "settings": {"decay": None, "region": "USA"},
        "grade": "GOOD",
    }


def test_new_keys_first_then_old_only_keys():
    merged = deep_merge({"a": 1, "b": 2, "c": 3}, {"c": 30, "d": 4})
    assert list(merged) == ["c", "d", "a", "b"]
    assert merged == {"c": 30, "d": 4, "a": 1, "b": 2}


def test_type_mismatch_new_wins():
    assert deep_merge({"x": {"a": 1}}, {"x": 5}) == {"x": 5}
    assert deep_merge({"x": 5}, {"x": {"a": 1}}) == {"x": {"a": 1}}
    assert deep_merge({"x": [1]}, {"x": {"a": 1}}) == {"x": {"a": 1}}
    assert deep_merge({"x": None}, {"x": [{"name": "A"}]}) == {"x": [{"name": "A"}]}


def test_repeated_matches_themes_pair_by_occurrence():
    old = {
        "is": {
            "checks": [
                {"name": "LOW_SHARPE", "result": "PASS", "limit": 1.25, "value": 1.5},
                {
                    "name": "MATCHES_THEMES",
                    "result": "FAIL",
                    "multiplier": 1.5,
                    "themes": [{"id": "Kp0RXpzL", "multiplier": 1.5, "name": "Value Factor Theme"}],
                    "legacy": "first",
                },
                {
                    "name": "MATCHES_THEMES",
                    "result": "FAIL",
                    "multiplier": 2.0,
                    "themes": [{"id": "LR0B9zkm", "multiplier": 2.0, "name": "Momentum Recovery Theme"}],
                    "legacy": "second",
                },
            ]
        }
    }
    new = {
        "is": {
            "checks": [
                {
                    "name": "MATCHES_THEMES",
                    "result": "PASS",
                    "multiplier": 1.5,
                    "themes": [{"id": "Kp0RXpzL", "multiplier": 1.5, "name": "Value Factor Theme"}],
                },
                {"name": "LOW_SHARPE", "result": "PASS", "limit": 1.25, "value": 1.62},
                {
                    "name": "MATCHES_THEMES",
                    "result": "PASS",
                    "multiplier": 3.0,
                    "themes": [{"id": "bKn3YE3J", "multiplier": 3.0, "name": "ATOM Theme"}],
                },
            ]
        }
    }
    assert deep_merge(old, new) == {
        "is": {
            "checks": [
                # 1st MATCHES_THEMES of new with the 1st of old (keeps its old-only field)
                {
                    "name": "MATCHES_THEMES",
                    "result": "PASS",
                    "multiplier": 1.5,
                    "themes": [{"id": "Kp0RXpzL", "multiplier": 1.5, "name": "Value Factor Theme"}],
                    "legacy": "first",
                },
                {"name": "LOW_SHARPE", "result": "PASS", "limit": 1.25, "value": 1.62},
                # 2nd with the 2nd; `themes` has no key configured: the new array replaces the old one
                {
                    "name": "MATCHES_THEMES",
                    "result": "PASS",
                    "multiplier": 3.0,
                    "themes": [{"id": "bKn3YE3J", "multiplier": 3.0, "name": "ATOM Theme"}],
                    "legacy": "second",
                },
            ]
        }
    }


def test_repeated_is_ladder_sharpe_extras_and_old_only_items():
    old = {
        "is": {
            "checks": [
                {
                    "name": "IS_LADDER_SHARPE",
                    "result": "PASS",
                    "year": 2,
                    "startDate": "2023-01-20",
                    "endDate": "2021-01-20",
                    "limit": 1.58,
                    "value": 2.1,
                    "note": "y2",
                },
                {
                    "name": "IS_LADDER_SHARPE",
                    "result": "FAIL",
                    "year": 3,
                    "startDate": "2023-01-20",
                    "endDate": "2020-01-20",
                    "limit": 1.63,
                    "value": 1.5,
                    "note": "y3",
                },
                {
                    "name": "IS_LADDER_SHARPE",
                    "result": "PASS",
                    "year": 4,
                    "startDate": "2023-01-20",
                    "endDate": "2019-01-20",
                    "limit": 1.68,
                    "value": 1.9,
                },
                {"name": "SELF_CORRELATION", "result": "PENDING"},
            ]
        }
    }
    new = {
        "is": {
            "checks": [
                {"name": "SELF_CORRELATION", "result": "PASS", "limit": 0.7, "value": 0.41},
                {
                    "name": "IS_LADDER_SHARPE",
                    "result": "PASS",
                    "year": 2,
                    "startDate": "2024-01-20",
                    "endDate": "2022-01-20",
                    "limit": 1.58,
                    "value": 2.3,
                },
                {
                    "name": "IS_LADDER_SHARPE",
                    "result": "PASS",
                    "year": 3,
                    "startDate": "2024-01-20",
                    "endDate": "2021-01-20",
                    "limit": 1.63,
                    "value": 1.7,
                },
                {"name": "LOW_2Y_SHARPE", "result": "PASS", "limit": 1.58, "value": 2.0},
            ]
        }
    }
    assert deep_merge(old, new) == {
        "is": {
            "checks": [
                {"name": "SELF_CORRELATION", "result": "PASS", "limit": 0.7, "value": 0.41},
                {
                    "name": "IS_LADDER_SHARPE",
                    "result": "PASS",
                    "year": 2,
                    "startDate": "2024-01-20",
                    "endDate": "2022-01-20",
                    "limit": 1.58,
                    "value": 2.3,
                    "note": "y2",
                },
                {
                    "name": "IS_LADDER_SHARPE",
                    "result": "PASS",
                    "year": 3,
                    "startDate": "2024-01-20",
                    "endDate": "2021-01-20",
                    "limit": 1.63,
                    "value": 1.7,
                    "note": "y3",
                },
                {"name": "LOW_2Y_SHARPE", "result": "PASS", "limit": 1.58, "value": 2.0},
                # the 3rd old IS_LADDER_SHARPE found no partner: kept, after the new items
                {
                    "name": "IS_LADDER_SHARPE",
                    "result": "PASS",
                    "year": 4,
                    "startDate": "2023-01-20",
                    "endDate": "2019-01-20",
                    "limit": 1.68,
                    "value": 1.9,
                },
            ]
        }
    }


def test_old_only_items_follow_new_items_in_old_order():
    old = {"checks": [{"name": "A", "v": 1}, {"name": "B", "v": 1}, {"name": "C", "v": 1}]}
    new = {"checks": [{"name": "C", "v": 2}, {"name": "D", "v": 2}]}
    assert deep_merge(old, new) == {
        "checks": [{"name": "C", "v": 2}, {"name": "D", "v": 2}, {"name": "A", "v": 1}, {"name": "B", "v": 1}]
    }


def test_empty_new_keyed_array_keeps_old_items():
    old = {"checks": [{"name": "A", "result": "PASS"}]}
    assert deep_merge(old, {"checks": []}) == old


def test_classifications_by_id():
    old = {
        "classifications": [
            {"id": "DATA_USAGE:SINGLE_DATA_SET", "name": "Single Data Set Alpha"},
            {"id": "POWER_POOL:POWER_POOL_ELIGIBLE", "name": "Power Pool Alpha", "x": 1},
        ]
    }
    new = {
        "classifications": [
            {"id": "POWER_POOL:POWER_POOL_ELIGIBLE", "name": "Power Pool Alpha (2025)"},
            {"id": "PYRAMID:USA/D1/PV", "name": "USA/D1/PV"},
        ]
    }
    assert deep_merge(old, new) == {
        "classifications": [
            {"id": "POWER_POOL:POWER_POOL_ELIGIBLE", "name": "Power Pool Alpha (2025)", "x": 1},
            {"id": "PYRAMID:USA/D1/PV", "name": "USA/D1/PV"},
            {"id": "DATA_USAGE:SINGLE_DATA_SET", "name": "Single Data Set Alpha"},
        ]
    }


def test_key_values_of_different_json_types_do_not_pair():
    old = {"classifications": [{"id": 1, "name": "int"}]}
    new = {"classifications": [{"id": "1", "name": "str"}, {"id": True, "name": "bool"}]}
    assert deep_merge(old, new) == {
        "classifications": [
            {"id": "1", "name": "str"},
            {"id": True, "name": "bool"},
            {"id": 1, "name": "int"},
        ]
    }


def test_nested_investability_constrained_blocks_and_checks_at_any_depth():
    old = {
        "is": {
            "sharpe": 1.2,
            "pnl": 100,
            "investabilityConstrained": {"sharpe": 0.9, "pnl": 80, "turnover": 0.3},
            "amer": {"sharpe": 1.0, "investabilityConstrained": {"sharpe": 0.7, "drawdown": 0.1}},
            "checks": [{"name": "LOW_SHARPE", "result": "FAIL", "limit": 1.25, "value": 1.2}],
        },
        "train": {
            "checks": [{"name": "LOW_FITNESS", "result": "PASS", "limit": 1.0, "value": 1.1, "old": True}]
        },
    }
    new = {
        "is": {
            "sharpe": 1.3,
            "investabilityConstrained": {"sharpe": 1.0, "margin": 0.0004},
            "amer": {"investabilityConstrained": {"sharpe": 0.8}},
            "checks": [{"name": "LOW_SHARPE", "result": "PASS", "limit": 1.25, "value": 1.3}],
        },
        "train": {
            "checks": [
                {"name": "LOW_FITNESS", "result": "FAIL", "value": 0.8},
                {"name": "LOW_SHARPE", "result": "PASS", "limit": 1.25, "value": 1.4},
            ]
        },
    }
    assert deep_merge(old, new) == {
        "is": {
            "sharpe": 1.3,
            "investabilityConstrained": {"sharpe": 1.0, "margin": 0.0004, "pnl": 80, "turnover": 0.3},
            "amer": {"investabilityConstrained": {"sharpe": 0.8, "drawdown": 0.1}, "sharpe": 1.0},
            "checks": [{"name": "LOW_SHARPE", "result": "PASS", "limit": 1.25, "value": 1.3}],
            "pnl": 100,
        },
        "train": {
            "checks": [
                {"name": "LOW_FITNESS", "result": "FAIL", "value": 0.8, "limit": 1.0, "old": True},
                {"name": "LOW_SHARPE", "result": "PASS", "limit": 1.25, "value": 1.4},
            ]
        },
    }


def test_nested_keyed_arrays_inside_keyed_items():
    old = {
        "checks": [
            {"name": "MATCHES_PYRAMID", "pyramids": [{"name": "USA/D1/PV", "multiplier": 1.3, "x": 1}]}
        ]
    }
    new = {"checks": [{"name": "MATCHES_PYRAMID", "pyramids": [{"name": "USA/D1/PV", "multiplier": 1.5}]}]}
    # pyramids is not configured: replaced
    assert deep_merge(old, new) == new
    # configured by exact path (array items are transparent in paths): merged by name
    keys = {**DEFAULT_ARRAY_KEYS, "checks.pyramids": "name"}
    assert deep_merge(old, new, keys) == {
        "checks": [
            {"name": "MATCHES_PYRAMID", "pyramids": [{"name": "USA/D1/PV", "multiplier": 1.5, "x": 1}]}
        ]
    }


def test_arrays_of_scalars_and_objects_without_the_key_are_replaced():
    assert deep_merge({"tags": ["a", "b"]}, {"tags": ["c"]}) == {"tags": ["c"]}
    assert deep_merge({"themes": [{"id": "A", "m": 1}]}, {"themes": [{"id": "B"}]}) == {
        "themes": [{"id": "B"}]
    }
    # one item without `name`: the whole array is replaced
    old = {"checks": [{"name": "A", "v": 1}, {"name": "B", "v": 1}]}
    new = {"checks": [{"name": "A", "v": 2}, {"result": "PASS"}]}
    assert deep_merge(old, new) == new
    # non-scalar key values: replaced
    assert deep_merge({"checks": [{"name": ["x"], "v": 1}]}, {"checks": [{"name": ["x"]}]}) == {
        "checks": [{"name": ["x"]}]
    }


def test_exact_path_configuration_and_switching_off():
    old = {
        "is": {"checks": [{"name": "A", "v": 1, "keep": 1}]},
        "train": {"checks": [{"name": "A", "v": 1, "keep": 1}]},
    }
    new = {"is": {"checks": [{"name": "A", "v": 2}]}, "train": {"checks": [{"name": "A", "v": 2}]}}
    merged = deep_merge(old, new, {"is.checks": "name"})
    assert merged == {
        "is": {"checks": [{"name": "A", "v": 2, "keep": 1}]},
        "train": {"checks": [{"name": "A", "v": 2}]},
    }
    merged = deep_merge(old, new, {"checks": "name", "train.checks": None})
    assert merged == {
        "is": {"checks": [{"name": "A", "v": 2, "keep": 1}]},
        "train": {"checks": [{"name": "A", "v": 2}]},
    }
    with pytest.raises(TypeError):
        deep_merge(old, new, {"checks": 1})


def test_pure_inputs_untouched_and_nothing_shared():
    old = make_alpha(1, "REGULAR")
    new = make_alpha(2, "REGULAR", overrides={"id": old["id"]})
    old_copy, new_copy = copy.deepcopy(old), copy.deepcopy(new)
    merged = deep_merge(old, new)
    assert old == old_copy and new == new_copy

    # mutate every container of the result: the inputs stay as they were
    def scribble(value):
        if isinstance(value, dict):
            for v in list(value.values()):
                scribble(v)
            value["__x"] = 1
        elif isinstance(value, list):
            for v in list(value):
                scribble(v)
            value.append("__x")

    scribble(merged)
    assert old == old_copy and new == new_copy


def test_merge_changed():
    alpha = make_alpha(7, "SUPER")
    assert merge_changed(alpha, copy.deepcopy(alpha)) == (alpha, False)
    # a new version with fewer fields but the same values: nothing changes
    subset = {
        "id": alpha["id"],
        "settings": {"region": alpha["settings"]["region"]},
        "is": {"checks": [alpha["is"]["checks"][0]]},
    }
    assert merge_changed(alpha, subset)[1] is False
    # key order alone is not a change
    assert merge_changed({"a": 1, "b": 2}, {"b": 2, "a": 1})[1] is False
    # a value change, a new key, a null overwrite, a type change (1 vs 1.0 vs true) are changes
    assert merge_changed({"a": 1}, {"a": 2}) == ({"a": 2}, True)
    assert merge_changed({"a": 1}, {"b": 1}) == ({"b": 1, "a": 1}, True)
    assert merge_changed({"a": 1}, {"a": None}) == ({"a": None}, True)
    assert merge_changed({"a": 1}, {"a": 1.0})[1] is True
    assert merge_changed({"a": 1}, {"a": True})[1] is True
    assert merge_changed({"a": [1, 2]}, {"a": [2, 1]})[1] is True
    # reordered keyed items are a change (order of the result = new order)
    old = {"checks": [{"name": "A"}, {"name": "B"}]}
    assert merge_changed(old, {"checks": [{"name": "B"}, {"name": "A"}]}) == (
        {"checks": [{"name": "B"}, {"name": "A"}]},
        True,
    )
    assert merge_changed(old, {"checks": [{"name": "A"}]}) == (old, False)
    assert merge_changed(old, {"checks": [{"name": "B"}]}) == (
        {"checks": [{"name": "B"}, {"name": "A"}]},
        True,
    )
    # nothing stored yet
    assert merge_changed(None, {"a": 1}) == ({"a": 1}, True)


def test_refetched_alpha_realistic():
    old = make_alpha(11, "REGULAR", status="UNSUBMITTED")
    new = json.loads(json.dumps(old))
    new["dateModified"] = "2025-07-19T10:00:00-04:00"
    new["is"]["checks"] = [c for c in new["is"]["checks"] if c["name"] != "SELF_CORRELATION"]
    new["is"]["checks"][0]["value"] = 9.99
    new.pop("osmosisPoints", None)
    merged, changed = merge_changed(old, new)
    assert changed
    assert merged["dateModified"] == "2025-07-19T10:00:00-04:00"
    assert merged["is"]["checks"][0]["value"] == 9.99
    # SELF_CORRELATION vanished from the new fetch: kept, at the end
    assert merged["is"]["checks"][-1] == next(
        c for c in old["is"]["checks"] if c["name"] == "SELF_CORRELATION"
    )
    assert [c["name"] for c in merged["is"]["checks"][:-1]] == [c["name"] for c in new["is"]["checks"]]


def test_resolve_for_mode():
    old = {"a": 1, "b": {"x": 1, "y": 2}}
    new = {"b": {"x": 5}}
    assert resolve_for_mode(old, new, "rebuild") == ({"b": {"x": 5}}, True)
    assert resolve_for_mode(old, old, "rebuild") == (old, False)
    for mode in ("incremental", "overwrite", "time_range", "smart_merge"):
        assert resolve_for_mode(old, new, mode) == ({"b": {"x": 5, "y": 2}, "a": 1}, True)
    with pytest.raises(ValueError, match="unknown import mode 'merge'"):
        resolve_for_mode(old, new, "merge")


def test_json_equal_is_strict():
    assert json_equal({"a": [1, {"b": None}]}, {"a": [1, {"b": None}]})
    assert not json_equal(1, 1.0) and not json_equal(1, True) and not json_equal({"a": 1}, {"b": 1})
    assert json_equal(float("nan"), float("nan"))


def test_stored_int64_equals_plain_int():
    from bson.int64 import Int64

    old = {"is": {"pnl": Int64(2**40), "checks": [{"name": "A", "value": Int64(3)}]}}
    new = {"is": {"pnl": 2**40, "checks": [{"name": "A", "value": 3}]}}
    assert merge_changed(old, new)[1] is False
    assert json_equal(old, new) and json_equal(new, old)
    assert not json_equal({"a": Int64(1)}, {"a": True}) and not json_equal({"a": Int64(1)}, {"a": 1.0})
