"""Two trees' data paths side by side (issue 22: "no path slower by more than noise" after the
re-layout): the `ticks_load`, `bars_load` and `alphas_import` benchmarks of tree A and tree B,
interleaved in one session so that load on this shared machine hits both alike.

    git -C /work/main worktree add --detach /work/wt/old d3e0708   # the old layout, once
    ln -s /work/main/.venv /work/wt/old/.venv
    scripts/with-env .venv/bin/python -m bench compare --tree /work/wt/old --tree . \\
        ticks_load bars_load alphas_import --rounds 4

Each round runs every bench once per tree, A then B in odd rounds and B then A in even ones (when
B always ran second, bars_load's K-line refresh, the same SQL in both trees, came out a steady 1.2x
slower for B), each in a fresh process started with cwd and PYTHONPATH set to that tree, which runs
the tree's OWN bench module (bench/compare_probe.py: the old layout's benches import `lib.*` names;
one probe file serves both layouts). One warm-up round first (not counted: data generation,
bytecode compilation, page cache). Sizes are reduced (`BENCHES` below: the benches' own size
options, else a module constant; the full-size runs stay `python -m bench NAME`): one round, both
trees and the three benches, took about 4 minutes at a load average of 7-12 on this 2-core machine
and 6 at 15-24. The data are generated once under <state dir>/bench/compare-<hash of the sizes>/,
the benches' MARKETDATA_STATE_DIR here (both trees read the same files: their generators are the
same code).

Databases: each tree gets its own (the bench's database names with `_<suffix>_a` / `_<suffix>_b`;
suffix from --db-suffix, else MARKETDATA_TEST_DB_SUFFIX, else `cmp`), set by the probe in the
bench's module constants: `bars_load`'s Postgres database (dropped at the end), `alphas_import`'s
three MongoDB databases (the bench drops them itself). `ticks_load` uses a temporary chDB directory
per phase. The lead's `marketdata` databases are not touched; Dagster runs are ephemeral
(DAGSTER_HOME and the metrics directory are temporary ones).

Per bench and tree: the median and min-max over the rounds of the round's wall time and CPU time
(the probe and every process it waited for: phases, replay server; not the database servers')
and of the bench's own figures (rows/s, docs/s, seconds: each bench's `figures`), then B/A of the paired
rounds (median and min-max). Verdict `B worse`/`B better` only when the two trees' min-max ranges
do not overlap; otherwise `noise`. All samples: bench/results/compare.json. Run it on a quiet
machine: CPU time is the steadier figure when neighbours are busy.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PROBE = Path(__file__).resolve().parent / "compare_probe.py"
LABELS = "ab"


@dataclass(frozen=True)
class Figure:
    label: str
    path: tuple  # keys / indices into the bench's results JSON (or the round's own figures)
    higher_is_better: bool
    of_round: bool = False  # the round's wall / CPU time, not a figure of the bench's report


@dataclass(frozen=True)
class Bench:
    env: dict = field(default_factory=dict)  # the bench's own size options
    constants: dict = field(default_factory=dict)  # module constants replaced (sizes without an option)
    databases: tuple = ()  # module constants naming databases (suffixed per tree)
    phase_entry: str | None = None  # its `--phase` entry point, when phases hold databases
    figures: tuple = ()


def _rate(label: str, *path) -> Figure:
    return Figure(label, path, True)


def _time(label: str, *path) -> Figure:
    return Figure(label, path, False)


BENCHES = {
    "ticks_load": Bench(
        env={"BENCH_CSV_TRADES": "1000000", "BENCH_JSON_TRADES": "100000", "BENCH_REPEAT": "1"},
        figures=(
            _rate("ceiling rows/s", "summary", "ceiling", "rows_per_s_min_median_max", 1),
            _rate("CSV path rows/s", "summary", "csv", "rows_per_s_min_median_max", 1),
            _rate("CSV path rows/CPU s", "summary", "csv", "rows_per_cpu_s_median"),
            _rate("JSON path rows/s", "summary", "json", "rows_per_s_min_median_max", 1),
            _rate("JSON path rows/CPU s", "summary", "json", "rows_per_cpu_s_median"),
            _time("CSV path peak RSS MB", "summary", "csv", "peak_rss_mb_max"),
        ),
    ),
    "bars_load": Bench(
        constants={"CODES": 10},
        databases=("DB",),
        figures=(
            _rate("psql \\copy rows/s", "psql_copy_rows_per_s"),
            _rate("project load rows/s", "project_rows_per_s"),
            _time("plain GROUP BY s", "plain_group_by_s"),
            _time("K-line refresh s", "refresh_s"),
        ),
    ),
    "alphas_import": Bench(
        env={"BENCH_ALPHAS": "1000"},
        databases=("DB_REGULAR", "DB_SUPER", "DB_CEILING"),
        phase_entry="_phase_main",
        figures=(
            _rate("ceiling docs/s", "ceiling_docs_per_s_during_first"),
            _rate("first import docs/s", "first_import_docs_per_s"),
            _rate("overwrite docs/s", "overwrite_docs_per_s"),
            _rate("no-op overwrite docs/s", "noop_overwrite_docs_per_s"),
            _time("unchanged re-run s", "rerun_s"),
            _time("coverage s", "coverage_s"),
            _time("peak RSS MB", "peak_rss_mb"),
        ),
    ),
}
ROUND_FIGURES = (
    Figure("round wall s", ("wall_s",), False, of_round=True),
    Figure("round CPU s", ("cpu_s",), False, of_round=True),
)
DEFAULT_NAMES = {
    "DB": "marketdata_bench",
    "DB_REGULAR": "bench_alphas_regular",
    "DB_SUPER": "bench_alphas_super",
    "DB_CEILING": "bench_alphas_ceiling",
}
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")  # unquoted in the benches' SQL: lower case only


# ---- one round ----------------------------------------------------------------------------------


def database_names(bench: Bench, suffix: str, label: str) -> dict[str, str]:
    """The bench's database constants for one tree: `<default>_<suffix>_<label>`, checked."""
    names = {constant: f"{DEFAULT_NAMES[constant]}_{suffix}_{label}" for constant in bench.databases}
    for name in names.values():
        if not _NAME.match(name):
            raise ValueError(
                f"database name {name!r}: lower-case letters, digits and underscores, at most 63"
            )
    return names


def spec(name: str, suffix: str, label: str) -> dict:
    bench = BENCHES[name]
    return {
        "bench": name,
        "constants": {**bench.constants, **database_names(bench, suffix, label)},
        "phase_entry": bench.phase_entry,
    }


def last_json_line(stdout: str) -> dict:
    """The probe's report: its stdout's last non-empty line, a JSON object."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    if not lines:
        raise ValueError("the probe printed nothing")
    value = json.loads(lines[-1])
    if not isinstance(value, dict) or "report" not in value:
        raise ValueError(f"not a probe report: {lines[-1][:200]!r}")
    return value


def round_env(tree: Path, state: Path, scratch: Path, label: str, name: str, bench_spec: dict) -> dict:
    """The probe's environment: the stack's addresses as given (run under scripts/with-env), the
    tree on PYTHONPATH, the compare's own state dir, a throwaway Dagster home and metrics directory."""
    (scratch / f"dagster_home_{label}").mkdir(parents=True, exist_ok=True)
    (scratch / "metrics").mkdir(parents=True, exist_ok=True)
    return {
        **os.environ,
        **BENCHES[name].env,
        "PYTHONPATH": str(tree),
        "MARKETDATA_STATE_DIR": str(state),
        "CLICKHOUSE_DSN": f"chdb://{state / 'clickhouse'}",
        "DAGSTER_HOME": str(scratch / f"dagster_home_{label}"),
        "PROMETHEUS_MULTIPROC_DIR": str(scratch / "metrics"),
        "BENCH_COMPARE": json.dumps(bench_spec),
    }


def run_round(tree: Path, name: str, env: dict, log: Path) -> dict:
    """One bench in a fresh process in `tree`: the probe's report, with the round's wall time and
    CPU time (this process's waited-for children: the probe and everything it waited for)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(PROBE), "run"], cwd=tree, env=env, capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    with log.open("a") as handle:
        handle.write(f"==== {name} in {tree} (probe exit {done.returncode}, {wall:.1f} s)\n{done.stderr}\n")
    if done.returncode != 0:
        raise RuntimeError(
            f"{name} in {tree} failed (exit {done.returncode}); see {log}:\n{done.stderr[-2000:]}"
        )
    result = last_json_line(done.stdout)
    for imported in (result["module"], result.get("package")):
        if imported and not Path(imported).resolve().is_relative_to(tree.resolve()):
            raise RuntimeError(f"{name}: the probe imported {imported}, not {tree}'s code")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {**result, "wall_s": wall, "cpu_s": cpu, "load_1m": os.getloadavg()[0]}


# ---- figures ------------------------------------------------------------------------------------


def figure_value(sample: dict, figure: Figure) -> float:
    """A figure of one round: from the round itself (wall, CPU) or the bench's report."""
    value = sample if figure.of_round else sample["report"]
    for key in figure.path:
        value = value[key]
    return float(value)


def summarize(a: list[float], b: list[float], higher_is_better: bool) -> dict:
    """Medians and min-max of each tree, B/A of the paired rounds, and the verdict (`noise` unless
    the two ranges do not overlap)."""
    ratios = [y / x for x, y in zip(a, b) if x]
    if min(len(a), len(b)) < 2:
        verdict = "n/a (1 round)"
    elif max(a) < min(b):
        verdict = "B better" if higher_is_better else "B worse"
    elif max(b) < min(a):
        verdict = "B worse" if higher_is_better else "B better"
    else:
        verdict = "noise"
    return {
        "a": (statistics.median(a), min(a), max(a)),
        "b": (statistics.median(b), min(b), max(b)),
        "b_over_a": (statistics.median(ratios), min(ratios), max(ratios)) if ratios else None,
        "verdict": verdict,
    }


def _num(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.2f}"


def format_row(label: str, summary: dict) -> str:
    a, b, ratio = summary["a"], summary["b"], summary["b_over_a"]
    spread = lambda t: f"{_num(t[0]):>10} [{_num(t[1])}-{_num(t[2])}]"
    paired = f"{ratio[0]:5.2f} [{ratio[1]:.2f}-{ratio[2]:.2f}]" if ratio else "-"
    return f"  {label:24} {spread(a):>30} {spread(b):>30}   {paired:>18}  {summary['verdict']}"


def report(samples: dict[str, dict[str, list[dict]]], trees: list[Path]) -> list[dict]:
    """Print the table per bench; return its rows (for the results file)."""
    rows = []
    print(f"\nA = {trees[0]} ({_commit(trees[0])}), B = {trees[1]} ({_commit(trees[1])})")
    print(f"  {'':24} {'A median [min-max]':>30} {'B median [min-max]':>30}   {'B/A paired':>18}  verdict")
    for name, by_label in samples.items():
        a, b = by_label["a"], by_label["b"]
        loads = [s["load_1m"] for s in a + b]
        print(
            f"{name} ({len(a)} rounds; load average {min(loads):.1f}-{max(loads):.1f}; "
            f"bench status A {sorted({s['status'] for s in a})}, B {sorted({s['status'] for s in b})})"
        )
        for figure in ROUND_FIGURES + BENCHES[name].figures:
            summary = summarize(
                [figure_value(s, figure) for s in a],
                [figure_value(s, figure) for s in b],
                figure.higher_is_better,
            )
            print(format_row(figure.label, summary))
            rows.append({"bench": name, "figure": figure.label, **summary})
    return rows


def _commit(tree: Path) -> str:
    done = subprocess.run(
        ["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    )
    dirty = subprocess.run(
        ["git", "-C", str(tree), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return (done.stdout.strip() or "?") + (" + uncommitted changes" if dirty else "")


# ---- main ---------------------------------------------------------------------------------------


def round_order(round_no: int, trees: list[Path]) -> list[tuple[str, Path]]:
    """A then B in odd rounds, B then A in even ones (the warm-up is round 0): neither tree always
    runs right after the other's load."""
    pairs = list(zip(LABELS, trees))
    return pairs if round_no % 2 else pairs[::-1]


def state_dir() -> Path:
    """<state dir>/bench/compare-<hash of the sizes>: reduced-size data apart from the full runs'."""
    configured = os.environ.get("MARKETDATA_STATE_DIR")
    base = Path(configured).resolve() if configured else REPO / ".stack"
    sizes = json.dumps({name: [b.env, b.constants] for name, b in BENCHES.items()}, sort_keys=True)
    return base / "bench" / f"compare-{hashlib.sha1(sizes.encode()).hexdigest()[:8]}"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench compare", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--tree",
        action="append",
        type=Path,
        required=True,
        help="a checkout, twice: A (e.g. the old layout), then B",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=4,
        help="counted rounds (default 4; an even number runs each order as often)",
    )
    parser.add_argument(
        "--no-warm-up", dest="warm_up", action="store_false", help="skip the uncounted first round"
    )
    parser.add_argument(
        "--db-suffix",
        default=os.environ.get("MARKETDATA_TEST_DB_SUFFIX") or "cmp",
        help="in the benches' database names (default: MARKETDATA_TEST_DB_SUFFIX, else cmp)",
    )
    parser.add_argument("benches", nargs="*", metavar="BENCH", help=f"of {', '.join(BENCHES)} (default: all)")
    args = parser.parse_args(argv)
    if len(args.tree) != 2:
        parser.error("give exactly two --tree")
    if set(args.benches) - set(BENCHES) or args.rounds < 1:
        parser.error(f"benches: {', '.join(BENCHES)}; rounds: at least 1")
    args.tree = [tree.resolve() for tree in args.tree]
    for tree in args.tree:
        if not (tree / "bench" / "__init__.py").exists():
            parser.error(f"{tree} is not a checkout with a bench/ package")
    args.benches = args.benches or list(BENCHES)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[2:] if argv is None else argv)
    state = state_dir()
    state.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="bench_compare_"))
    log = REPO / "bench" / "results" / "compare.log"
    log.parent.mkdir(exist_ok=True)
    log.write_text("")
    samples: dict[str, dict[str, list[dict]]] = {name: {"a": [], "b": []} for name in args.benches}
    print(
        f"bench compare: {args.rounds} rounds{' after a warm-up round' if args.warm_up else ''}, "
        f"data in {state}, bench output in {log}",
        flush=True,
    )
    try:
        for round_no in range(0 if args.warm_up else 1, args.rounds + 1):
            for name in args.benches:
                for label, tree in round_order(round_no, args.tree):
                    env = round_env(tree, state, scratch, label, name, spec(name, args.db_suffix, label))
                    sample = run_round(tree, name, env, log)
                    print(
                        f"round {round_no or 'warm-up'}: {name} {label} {sample['wall_s']:6.1f} s wall "
                        f"{sample['cpu_s']:6.1f} s CPU (bench status {sample['status']})",
                        flush=True,
                    )
                    if round_no:
                        samples[name][label].append(sample)
    finally:
        drop_postgres_databases(args.benches, args.db_suffix)
        shutil.rmtree(scratch, ignore_errors=True)
    rows = report(samples, args.tree)
    out = REPO / "bench" / "results" / "compare.json"
    out.write_text(
        json.dumps(
            {"trees": [str(t) for t in args.tree], "rounds": args.rounds, "rows": rows, "samples": samples},
            indent=1,
            default=str,
        )
        + "\n"
    )
    return 0


def drop_postgres_databases(benches: list[str], suffix: str) -> None:
    """bars_load leaves its database in place; the compare's per-tree ones are dropped."""
    if "bars_load" not in benches:
        return
    import psycopg
    from psycopg import sql

    from marketdata_assets.core import settings

    with psycopg.connect(
        host=settings.get("TIMESCALE_HOST"),
        port=settings.get("TIMESCALE_PORT"),
        user=settings.get("TIMESCALE_USER"),
        password=settings.get("TIMESCALE_PASSWORD"),
        dbname="postgres",
        autocommit=True,
    ) as conn:
        for label in LABELS:
            for name in database_names(BENCHES["bars_load"], suffix, label).values():
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
