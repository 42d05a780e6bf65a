"""The project loads the way dg and dagster load it: `dg check defs`, `dg list defs --json`,
`dagster definitions validate`, in a plain environment (an activated venv: no scripts/with-env,
none of the project's variables), reading the generated project `.env`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def plain_environment() -> dict[str, str]:
    """This shell's environment without anything the project or scripts/with-env sets."""
    from marketdata_assets.core.settings import SETTINGS, write_dotenv

    if not (REPO / ".env").exists():  # `make test` writes it (make dotenv)
        write_dotenv()
    project = {s.name for s in SETTINGS} | {"DAGSTER_HOME"}
    return {k: v for k, v in os.environ.items() if k not in project and not k.startswith("ALPHA_API_")}


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / args[0]), *args[1:]],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**plain_environment(), "PATH": f"{BIN}:{os.environ['PATH']}", "NO_COLOR": "1"},
        timeout=300,
        check=False,
    )


def test_dg_check_defs():
    result = cli("dg", "check", "defs")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All definitions loaded successfully" in result.stdout + result.stderr


def test_dg_list_defs_lists_every_domain_and_resource():
    result = cli("dg", "list", "defs", "--json")
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    keys = {asset["asset_key"] for asset in listed["assets"]}
    assert {"alpha_store", "tick_store", "bar_store"} <= keys
    assert {asset["group_name"] for asset in listed["assets"]} >= {
        "alphas",
        "crypto",
        "equities",
        "archives",
        "upkeep",
    }
    assert {r["name"] for r in listed["resources"]} >= {"mongo", "clickhouse", "timescale"}


def test_dagster_definitions_validate():
    result = cli("dagster", "definitions", "validate", "-w", "workspace.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All code locations passed validation" in result.stdout + result.stderr


def test_a_steps_forkserver_preloads_every_module_of_the_location_without_a_warning():
    """What the run's forkserver preloads (definitions.EXECUTOR) is all the location's load imports, so a
    step's process builds its definitions from modules already imported; and it says nothing doing so."""
    script = (
        "import sys; import marketdata_assets.step_preload; before = set(sys.modules); "
        "from marketdata_assets.definitions import defs; defs(); "
        "print(sorted(m for m in set(sys.modules) - before if m.startswith('marketdata_assets')))"
    )
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", script],
        check=False,
        cwd=REPO,
        text=True,
        capture_output=True,
        env={**plain_environment(), "NO_COLOR": "1"},
        timeout=120,
    )
    assert result.returncode == 0 and result.stderr == "", result.stderr[-2000:]
    assert result.stdout.strip() == "[]"
