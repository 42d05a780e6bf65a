"""docs/configuration.md is generated (apps/configuration.py) and current, and it holds every
environment variable, every key of the sources config file, every run-config option of every asset,
and every schedule and sensor, each stopped one saying which feed it is for."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from marketdata_assets.apps.configuration import COMMAND, DOC
from marketdata_assets.core.settings import MORE_VARIABLES, PROJECT_ROOT, SETTINGS
from marketdata_assets.sources.config_schema import COMMON, SECTION, options

PAGE = DOC.read_text(encoding="utf-8") if DOC.exists() else ""


def _check(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "marketdata_assets.apps.configuration", "--check", *args],
        check=False,
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_committed_page_is_the_generated_one():
    done = _check()
    assert done.returncode == 0, f"docs/configuration.md is stale: run `{COMMAND}`\n{done.stderr[-2000:]}"


def test_a_stale_page_is_refused_naming_the_command(tmp_path):
    stale = tmp_path / "configuration.md"
    stale.write_text(PAGE.replace("| `TIMESCALE_HOST` |", "| `TIMESCALE_HOST_OLD` |"), encoding="utf-8")
    done = _check(str(stale))
    assert done.returncode == 1 and f"stale: run `{COMMAND}`" in done.stderr


def test_every_environment_variable_is_there_and_no_secret_has_a_value():
    for setting in SETTINGS + MORE_VARIABLES:
        row = re.search(rf"^\| `{re.escape(setting.name)}` \| ([^|]*) \|", PAGE, re.MULTILINE)
        assert row, f"docs/configuration.md lacks {setting.name}"
        if setting.secret:
            assert row[1] == "(secret, no default)", f"{setting.name}'s default is shown: {row[1]}"


def test_every_variable_names_files_that_exist():
    for setting in SETTINGS + MORE_VARIABLES:
        assert setting.read_by and setting.group, f"{setting.name}: which files read it, in which group?"
        for path in setting.read_by:
            assert (PROJECT_ROOT / path).exists() or (PROJECT_ROOT / "marketdata_assets" / path).exists(), (
                f"{setting.name}: {path} does not exist"
            )


def test_every_key_of_the_sources_config_is_there():
    for path, option in options():
        section, _entry, *rest = path.split(".") + [""]
        shown = f"{SECTION}.<entry>.{rest[0]}" if section == SECTION and rest[0] in COMMON else path
        assert f"| `{shown}` | {option.rule()} |" in PAGE, f"docs/configuration.md lacks {shown}"


def _ops_with_config() -> dict[str, list[str]]:
    """op -> its config fields, from Dagster's own config schema of the loaded definitions."""
    from marketdata_assets.definitions import defs

    found = {}
    for assets_def in defs().get_repository_def().asset_graph.assets_defs:
        if not assets_def.is_executable or not assets_def.keys:
            continue
        field = assets_def.op.config_field
        fields = getattr(field.config_type, "fields", None) if field else None
        if fields:
            found[assets_def.op.name] = sorted(fields)
    return found


def test_every_run_config_option_of_every_asset_is_there():
    ops = _ops_with_config()
    assert {"crypto_ticks", "a_share_bars", "alpha_documents", "stock_1min_qfq"} <= set(ops)
    for op, fields in ops.items():
        start = PAGE.index(f"### `{op}`\n")
        section = PAGE[start : PAGE.index("\n### ", start + 1)]
        missing = [f for f in fields if f"| `{f}` |" not in section]
        assert not missing, f"docs/configuration.md, op {op}: lacks {missing}"


def test_every_run_config_option_has_a_description_dagster_shows():
    from marketdata_assets.definitions import defs

    for assets_def in defs().get_repository_def().asset_graph.assets_defs:
        field = assets_def.op.config_field if assets_def.is_executable and assets_def.keys else None
        for name, option in (getattr(field.config_type, "fields", None) or {}).items() if field else ():
            assert option.description, f"op {assets_def.op.name}: option {name} has no description"


def test_every_stopped_schedule_and_sensor_says_which_feed_it_is_for():
    from marketdata_assets.definitions import defs
    from marketdata_assets.defs._common.runs import DAILY_USE, DAILY_USE_WHY, FEEDS

    repo = defs().get_repository_def()
    for definition in (*repo.schedule_defs, *repo.sensor_defs):
        assert f"| `{definition.name}` |" in PAGE, f"docs/configuration.md lacks {definition.name}"
        if definition.default_status.value == "STOPPED":
            meta = definition.metadata or {}
            assert DAILY_USE in meta and meta[DAILY_USE].value in FEEDS and meta[DAILY_USE_WHY].value, (
                f"{definition.name} starts stopped: mark it with daily_use(feed, why) (defs/_common/runs.py)"
            )
            assert f"start -w workspace.yaml {definition.name}\n" in PAGE


def test_a_marker_names_a_known_feed():
    from marketdata_assets.defs._common.runs import daily_use

    with pytest.raises(ValueError, match="unknown feed 'crpyto'"):
        daily_use("crpyto", "a typo")


def test_the_deadline_section_states_the_code_s_default():
    from marketdata_assets.defs._common.ingest import RunDeadline

    default = RunDeadline.model_fields["deadline_minutes"].default
    assert f"stop at `deadline_minutes` ({default:g} by default; 0: none)" in PAGE
