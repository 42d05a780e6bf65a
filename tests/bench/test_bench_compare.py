"""bench/compare.py and its probe: the report line, the verdicts, the per-tree database names, and
one round through the probe against a stand-in tree (its constants replaced in the bench's process
and in the phase process it starts, its results file put back)."""

from __future__ import annotations

import importlib
import json
import os
import textwrap

import pytest

from bench import compare
from bench.compare_probe import phase_argv

FAKE_BENCH = """
import json, subprocess, sys
from pathlib import Path

DB = "default_db"
SIZE = 10


def main():
    print("human report")  # must not reach the probe's stdout
    phase = subprocess.run([sys.executable, "-m", "bench.fake", "--phase", "x"], check=True,
                           capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "fake.json").write_text(json.dumps({"db": DB, "size": SIZE, "phase": json.loads(phase.stdout)}))
    return 1


def phase_main(argv):
    print(json.dumps({"db": DB, "argv": argv}))


if __name__ == "__main__":
    phase_main(sys.argv[1:])
"""


def test_last_json_line():
    line = '{"report": {"a": 1}, "status": 0}'
    assert compare.last_json_line(f"noise\n{line}\n\n") == json.loads(line)
    for bad in ("", "\n", '{"status": 0}', "[1]"):
        with pytest.raises(ValueError):
            compare.last_json_line(bad)


@pytest.mark.parametrize(
    ("a", "b", "higher", "verdict"),
    [
        ([100, 110, 105], [80, 90, 85], True, "B worse"),
        ([100, 110, 105], [80, 90, 85], False, "B better"),
        ([1.0, 1.2, 1.1], [1.3, 1.5, 1.4], False, "B worse"),
        ([1.0, 1.2, 1.1], [1.1, 1.3, 1.2], False, "noise"),
        ([1.0], [2.0], False, "n/a (1 round)"),
    ],
)
def test_summarize_verdict(a, b, higher, verdict):
    summary = compare.summarize(a, b, higher)
    assert summary["verdict"] == verdict
    assert summary["a"] == (sorted(a)[len(a) // 2], min(a), max(a))
    assert summary["b_over_a"][0] == sorted(y / x for x, y in zip(a, b))[len(a) // 2]


def test_figure_value_round_and_report():
    sample = {"wall_s": 3.5, "report": {"summary": {"csv": {"rows_per_s_min_median_max": [1, 2, 3]}}}}
    assert compare.figure_value(sample, compare.ROUND_FIGURES[0]) == 3.5
    assert compare.figure_value(sample, compare.BENCHES["ticks_load"].figures[1]) == 2.0


def test_database_names_per_tree():
    bench = compare.BENCHES["alphas_import"]
    a, b = (compare.database_names(bench, "bench", label) for label in "ab")
    assert a["DB_REGULAR"] == "bench_alphas_regular_bench_a"
    assert b["DB_REGULAR"] == "bench_alphas_regular_bench_b"
    assert not set(a.values()) & set(b.values())
    for suffix in ("Upper", "x;drop", "x" * 50):
        with pytest.raises(ValueError):
            compare.database_names(compare.BENCHES["bars_load"], suffix, "a")


@pytest.mark.parametrize("name", sorted(compare.BENCHES))
def test_this_trees_benches_have_what_compare_replaces(name):
    """A renamed constant or phase entry in a bench module must show here, not mid-comparison."""
    bench, module = compare.BENCHES[name], importlib.import_module(f"bench.{name}")
    for constant in (*bench.constants, *bench.databases):
        assert hasattr(module, constant), constant
    for constant in bench.databases:
        assert getattr(module, constant) == compare.DEFAULT_NAMES[constant]
    assert bench.phase_entry is None or callable(getattr(module, bench.phase_entry))


def test_phase_argv():
    assert phase_argv(["py", "-m", "bench.x", "--phase", "a"], "bench.x", "/p.py") == [
        "py",
        "/p.py",
        "phase",
        "--phase",
        "a",
    ]
    assert phase_argv(["py", "-m", "other", "a"], "bench.x", "/p.py") == ["py", "-m", "other", "a"]
    assert phase_argv(["psql", "-h"], "bench.x", "/p.py") == ["psql", "-h"]


def test_round_through_the_probe(tmp_path):
    tree = tmp_path / "tree"
    (tree / "bench" / "results").mkdir(parents=True)
    (tree / "bench" / "__init__.py").write_text("")
    (tree / "bench" / "fake.py").write_text(textwrap.dedent(FAKE_BENCH))
    kept = tree / "bench" / "results" / "fake.json"
    kept.write_text('{"full": "run"}')
    spec = {"bench": "fake", "constants": {"DB": "db_cmp_a", "SIZE": 3}, "phase_entry": "phase_main"}
    env = {**os.environ, "PYTHONPATH": str(tree), "BENCH_COMPARE": json.dumps(spec)}

    sample = compare.run_round(tree, "fake", env, tmp_path / "log")

    assert sample["module"] == str(tree / "bench" / "fake.py")
    assert sample["status"] == 1
    phase = {"db": "db_cmp_a", "argv": ["--phase", "x"]}  # the phase process saw the replaced constant too
    assert sample["report"] == {"db": "db_cmp_a", "size": 3, "phase": phase}
    assert sample["wall_s"] > 0 and sample["cpu_s"] > 0
    assert kept.read_text() == '{"full": "run"}'
    assert "human report" in (tmp_path / "log").read_text()

    spec["constants"]["NO_SUCH"] = 1
    env["BENCH_COMPARE"] = json.dumps(spec)
    with pytest.raises(RuntimeError, match="has no NO_SUCH"):
        compare.run_round(tree, "fake", env, tmp_path / "log")


def test_parse_args(tmp_path):
    trees = []
    for name in ("old", "new"):
        (tmp_path / name / "bench").mkdir(parents=True)
        (tmp_path / name / "bench" / "__init__.py").write_text("")
        trees += ["--tree", str(tmp_path / name)]
    args = compare.parse_args([*trees, "--rounds", "3"])
    assert args.benches == list(compare.BENCHES) and args.rounds == 3 and args.warm_up
    assert compare.parse_args(trees).rounds == 4
    assert args.tree == [tmp_path / "old", tmp_path / "new"]
    assert compare.parse_args([*trees, "bars_load", "--db-suffix", "x"]).benches == ["bars_load"]
    for bad in ([*trees, "nope"], trees[:2], [*trees, "--tree", str(tmp_path)], [*trees, "--rounds", "0"]):
        with pytest.raises(SystemExit):
            compare.parse_args(bad)


def test_round_order_alternates(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert compare.round_order(1, [a, b]) == [("a", a), ("b", b)]
    assert compare.round_order(2, [a, b]) == [("b", b), ("a", a)]
    assert compare.round_order(0, [a, b]) == [("b", b), ("a", a)]  # the warm-up


def test_round_refuses_code_from_outside_the_tree(tmp_path):
    """The venv's editable install points at one checkout: a round must not measure it by mistake."""
    tree = tmp_path / "tree"
    (tree / "bench").mkdir(parents=True)
    (tree / "bench" / "__init__.py").write_text("")
    (tree / "bench" / "fake.py").write_text(
        textwrap.dedent(FAKE_BENCH).replace("import json,", "import marketdata_assets, json,")
    )
    spec = {"bench": "fake", "constants": {}, "phase_entry": "phase_main"}
    env = {**os.environ, "PYTHONPATH": f"{tree}:{compare.REPO}", "BENCH_COMPARE": json.dumps(spec)}
    with pytest.raises(RuntimeError, match="not .*tree's code"):
        compare.run_round(tree, "fake", env, tmp_path / "log")
