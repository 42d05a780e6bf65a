"""One round of `python -m bench compare` inside one tree: run that tree's own bench module and print
its report as one JSON line.

Started by bench/compare.py as `python <this file> run` with cwd and PYTHONPATH set to the tree
under test, so `bench.<name>` and `marketdata_assets` are that tree's (the old layout's benches
import `lib.*` names, the new ones `core.*`, `stores.*`...). Standard library only: the same file
runs against either layout.

The spec comes in the environment (BENCH_COMPARE, JSON): the bench's name, module constants to
replace before main() runs (database names, so that the two trees and other checkouts never share
a database; sizes without an environment option), and the bench's phase entry point, if its phases
run in their own processes (`python -m bench.<name> --phase ...`): those commands are rerouted
through this file (`... phase ...`), so the phases see the same constants.

The bench's human report goes to stderr; stdout's last line is
`{"status": <main()'s exit status>, "report": <the bench's results JSON>, "module": <its file>,
"package": <marketdata_assets/__init__.py as imported>}`.
The results file the bench writes (bench/results/<name>.json of the tree) is put back as it was.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import subprocess
import sys
import types
from pathlib import Path


def load_bench(spec: dict) -> types.ModuleType:
    """The tree's bench module with the spec's constants in place (each must exist: a renamed
    constant must not pass unnoticed)."""
    module = importlib.import_module(f"bench.{spec['bench']}")
    for name, value in spec.get("constants", {}).items():
        if not hasattr(module, name):
            raise SystemExit(f"{module.__file__} has no {name} to replace")
        setattr(module, name, value)
    return module


def phase_argv(argv: list[str], module_name: str, probe: str) -> list[str]:
    """`python -m <the bench> ARGS` -> `python <this probe> phase ARGS`; any other command unchanged."""
    if len(argv) >= 3 and argv[1:3] == ["-m", module_name]:
        return [argv[0], probe, "phase", *argv[3:]]
    return list(argv)


def reroute_phases(module: types.ModuleType) -> None:
    """The module's `subprocess.run` of its own phases goes through this probe (other commands and
    the rest of the subprocess module as they were)."""

    def run(argv, *args, **kwargs):  # `check` as the caller passes it
        return subprocess.run(phase_argv(argv, module.__name__, __file__), *args, **kwargs)  # noqa: PLW1510

    module.subprocess = types.SimpleNamespace(**{**vars(subprocess), "run": run})


def run_main(module: types.ModuleType, name: str) -> dict:
    """main() with its stdout on stderr; the results file it writes, read and then restored."""
    results = Path(module.__file__).parent / "results" / f"{name}.json"
    saved = results.read_bytes() if results.exists() else None
    try:
        with contextlib.redirect_stdout(sys.stderr):
            status = module.main()
        report = json.loads(results.read_text())
    finally:
        if saved is not None:
            results.write_bytes(saved)
        else:
            results.unlink(missing_ok=True)
    package = sys.modules.get("marketdata_assets")  # not the editable install's checkout, the caller checks
    return {
        "status": status,
        "report": report,
        "module": module.__file__,
        "package": getattr(package, "__file__", None),
    }


def main(argv: list[str]) -> int:
    spec = json.loads(os.environ["BENCH_COMPARE"])
    module = load_bench(spec)
    if argv[:1] == ["phase"]:
        return getattr(module, spec["phase_entry"])(argv[1:]) or 0
    if spec.get("phase_entry"):
        reroute_phases(module)
    print(json.dumps(run_main(module, spec["bench"])), flush=True)
    return 0


if __name__ == "__main__":
    if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
        del sys.path[0]  # this file's directory (perhaps another tree's bench/): the tree is on PYTHONPATH
    sys.exit(main(sys.argv[1:]))
