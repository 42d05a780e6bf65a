"""docs/configuration.md, the one configuration reference, generated from the declarations.

    python -m marketdata_assets.apps.configuration            # writes docs/configuration.md
    python -m marketdata_assets.apps.configuration --check    # exit 1 when the committed page is stale

The page holds every environment variable (core/settings.py's table), every key of the sources
config file (the declarations sources/config.py validates it with: sources/config_schema.py and the
sources' `Option`s), every run-config option of every asset and job (the `config` classes of the
loaded definitions, their fields' docstrings as descriptions), every schedule and sensor with those to
turn on for daily use (their `daily_use` metadata, defs/_common/runs.py), and what the run deadline
does to a long first backfill. It is rendered with every variable unset, so it shows the defaults,
not this machine's values; tests/test_configuration_doc.py regenerates it and compares.
"""

from __future__ import annotations

import inspect
import os
import sys
import typing
from dataclasses import dataclass
from pathlib import Path

import annotated_types
import dagster as dg
import yaml

from marketdata_assets.core import settings
from marketdata_assets.core.markdown import prose, table
from marketdata_assets.sources import config_schema
from marketdata_assets.sources.registry import live_switches

DOC = settings.PROJECT_ROOT / "docs" / "configuration.md"
COMMAND = "python -m marketdata_assets.apps.configuration"


@dataclass(frozen=True)
class ConfigOp:
    """An op (one asset, or a multi-asset) that takes run config."""

    name: str
    assets: tuple[str, ...]
    config: type[dg.Config]
    backfill: str
    jobs: tuple[str, ...]


def config_ops(repo) -> list[ConfigOp]:
    """Every op of the definitions whose function takes a `config`, by op name."""
    jobs = [j for j in repo.get_all_jobs() if not j.name.startswith("__")]
    found = {}
    for assets_def in repo.asset_graph.assets_defs:
        if not assets_def.is_executable or not assets_def.keys:
            continue
        op = assets_def.op
        config = typing.get_type_hints(op.compute_fn.decorated_fn).get("config")
        if config is None or op.name in found:
            continue
        found[op.name] = ConfigOp(
            op.name,
            tuple(sorted(k.to_user_string() for k in assets_def.keys)),
            config,
            _backfill(assets_def.backfill_policy),
            tuple(j.name for j in jobs if op.name in j.graph.node_dict),
        )
    return [found[name] for name in sorted(found)]


SINGLE_RUN = "single run (a backfill is one run over its whole range)"


def _backfill(policy: dg.BackfillPolicy | None) -> str:
    if policy is None:
        return "none (one run per partition, or unpartitioned)"
    if policy.max_partitions_per_run is None:
        return SINGLE_RUN
    return f"multi run ({policy.max_partitions_per_run} partition(s) per run)"


def _type(annotation) -> str:
    if typing.get_origin(annotation) is typing.Literal:
        return "one of " + ", ".join(map(str, typing.get_args(annotation)))
    if typing.get_args(annotation):
        return str(annotation).replace("typing.", "")
    return annotation.__name__


def _bounds(metadata: list) -> str:
    signs = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
    return "".join(
        f", {signs[k]} {getattr(m, k)}"
        for m in metadata
        if isinstance(m, annotated_types.BaseMetadata)
        for k in signs
        if hasattr(m, k)
    )


def _default(field) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    return '`""`' if value == "" else f"`{value}`"


def fields_table(config: type[dg.Config]) -> str:
    return table(
        ["option", "type", "default", "meaning"],
        (
            (f"`{name}`", _type(f.annotation) + _bounds(f.metadata), _default(f), prose(f.description or ""))
            for name, f in config.model_fields.items()
        ),
    )


def _template(op: ConfigOp) -> str:
    """The op's run config with every option at its default, as YAML to copy into the launchpad."""
    defaults = {
        name: f.get_default(call_default_factory=True)
        for name, f in op.config.model_fields.items()
        if not f.is_required()
    }
    text = yaml.safe_dump({"ops": {op.name: {"config": defaults}}}, sort_keys=False, default_flow_style=None)
    return f"```yaml\n{text}```"


def run_config(repo) -> str:
    """Every op's run config (listed under its assets and jobs), then the assets and the jobs."""
    ops = config_ops(repo)
    parts = [
        "## Run config of the assets and jobs",
        prose(
            'Options of one run, set in the launchpad ("Materialize" with Shift, or a job\'s launchpad) or '
            "as "
            "`run_config` of a `RunRequest`: `ops: {<op>: {config: {<option>: <value>}}}`. An op that "
            "materializes several assets is configured once, under its op name. Resources (the stores, the "
            "sources' clients) take their settings from the environment variables above and the sources "
            "config file, not from here."
        ),
    ]
    for op in ops:
        parts.append(
            f"### `{op.name}`\n\nAssets: {', '.join(f'`{a}`' for a in op.assets)}. "
            f"Jobs: {', '.join(f'`{j}`' for j in op.jobs) or '-'}. Backfill policy: {op.backfill}. "
            f"Config class: `{op.config.__name__}`.\n\n" + _template(op) + "\n\n" + fields_table(op.config)
        )
    by_asset = sorted((a, op.name) for op in ops for a in op.assets)
    parts.append(
        "### By asset\n\n"
        + table(["asset", "configured under the op"], ((f"`{a}`", f"`{o}`") for a, o in by_asset))
    )
    jobs = sorted({j for op in ops for j in op.jobs})
    parts.append(
        "### By job\n\n"
        + table(
            ["job", "ops taking run config"],
            ((f"`{j}`", ", ".join(f"`{op.name}`" for op in ops if j in op.jobs)) for j in jobs),
        )
    )
    return "\n\n".join(parts)


def _what(definition) -> str:
    """The first sentence of a schedule's or sensor's description (else its function's docstring)."""
    text = definition.description or inspect.getdoc(getattr(definition, "__wrapped__", None)) or ""
    if not text and isinstance(definition, dg.AutomationConditionSensorDefinition):
        text = "Dagster's declarative automation: materializes the assets whose automation condition is met."
    text = " ".join(text.split())
    return prose(text.split(". ")[0].rstrip(".") + ".") if text else ""


def _launches(repo, definition) -> str:
    if isinstance(definition, dg.AutomationConditionSensorDefinition):
        return "assets with an automation condition"
    if getattr(definition, "has_jobs", True) and definition.job_name:
        return f"job `{definition.job_name}`"
    if definition.asset_selection is not None:
        keys = sorted(k.to_user_string() for k in definition.asset_selection.resolve(repo.asset_graph))
        return ", ".join(f"`{k}`" for k in keys)
    return "no runs"


def _metadata(definition, key: str) -> str:
    value = (definition.metadata or {}).get(key)
    return getattr(value, "value", value) or ""


def _row(repo, definition, kind: str, cadence: str) -> tuple[str, ...]:
    """A schedule's or sensor's row: name, kind, cadence, default status, what it launches and why."""
    status = definition.default_status.value.lower()
    return (f"`{definition.name}`", kind, cadence, status, _launches(repo, definition), _what(definition))


def schedules_and_sensors(repo) -> str:
    """Every schedule and sensor (cadence, default status, what it launches), then the daily-use set."""
    rows = [
        _row(repo, s, "schedule", f"`{s.cron_schedule}` {s.execution_timezone or 'UTC'}")
        for s in repo.schedule_defs
    ]
    rows += [_row(repo, s, "sensor", f"every {s.minimum_interval_seconds} s") for s in repo.sensor_defs]
    every = sorted(rows, key=lambda r: (r[3] != "running", r[0]))
    return "\n\n".join(
        [
            "## Schedules and sensors",
            prose(
                "The ones that call no vendor start running (landing areas, automation, upkeep); the ones "
                "that call a vendor, or refresh what one feeds, start stopped. Intervals of the landing "
                "sensors are LANDING_SENSOR_INTERVAL_S (shown at its default)."
            ),
            table(["name", "kind", "cadence", "default", "launches", "what it does"], every),
            daily_use(repo),
        ]
    )


def daily_use(repo) -> str:
    """The stopped schedules and sensors to turn on, by feed (their `daily_use` metadata)."""
    from marketdata_assets.defs._common.runs import DAILY_USE, DAILY_USE_WHY, FEEDS

    marked = [(_metadata(d, DAILY_USE), d) for d in (*repo.schedule_defs, *repo.sensor_defs)]
    parts = [
        "### Daily use: what to turn on",
        prose(
            "Turn on the stopped ones of each feed you use, in the UI (Automation) or with the commands "
            "below (from the repo root, the project .env in place). The ones running by default need "
            "nothing. A new feed's long history is a backfill first (see the next section); the catch-up "
            "schedules only look back `catch_up_days`."
        ),
    ]
    for feed, what in FEEDS.items():
        mine = [d for f, d in marked if f == feed]
        if not mine:
            continue
        kinds = ["schedule" if isinstance(d, dg.ScheduleDefinition) else "sensor" for d in mine]
        parts.append(
            f"**{feed}**: {prose(what)}.\n\n"
            + table(["turn on", "why"], ((f"`{d.name}`", prose(_metadata(d, DAILY_USE_WHY))) for d in mine))
            + "\n\n```bash\n"
            + "\n".join(
                f"dagster {k} start -w workspace.yaml {d.name}" for k, d in zip(kinds, mine, strict=True)
            )
            + "\n```"
        )
    return "\n\n".join(parts)


def _names(ops: list[ConfigOp]) -> str:
    return ", ".join(f"`{op.name}`" for op in ops)


def deadline(repo) -> str:
    """What the run deadline does, and how a long first backfill is loaded (from the ops' config classes
    and backfill policies)."""
    from marketdata_assets.defs._common.ingest import IngestConfig, RunDeadline

    ops = config_ops(repo)
    limited = [op for op in ops if issubclass(op.config, RunDeadline)]
    single = _names([op for op in limited if op.backfill == SINGLE_RUN])
    retry = _names([op for op in limited if issubclass(op.config, IngestConfig)])
    minutes = RunDeadline.model_fields["deadline_minutes"].default
    max_failed = IngestConfig.model_fields["max_failed"].default
    steps = (
        f"1. Launch the same range again with `retry_failed: true` ({retry}): only the slices whose latest "
        "attempt did not succeed (failed, skipped, never tried) are planned, so each run loads the next "
        "deadline's worth; repeat until the step succeeds. `retry_failed_from_run: <run id>` takes exactly "
        "the slices that run failed or skipped.\n"
        "2. Or backfill in ranges that fit: a month of days at a time in the UI's backfill dialog (the "
        "instance runs at most 2 backfill runs at once, instance/dagster.yaml).\n"
        "3. Or lift the deadline for that run: `deadline_minutes: 0` (the run then holds the source's pool "
        "until it ends; that source's scheduled runs wait)."
    )
    return "\n\n".join(
        [
            "## The run deadline and a long first backfill",
            prose(
                f"The ingest ops ({_names(limited)}) stop at `deadline_minutes` ({minutes:g} by default; 0: "
                "none), so a run never holds a source's pool forever. When it passes, the fetch in flight is "
                "cut off and fails, and every slice not yet fetched is recorded `skipped` in `ingest_log`; "
                "the slices already fetched are written. Skipped and failed slices count against "
                f"`max_failed` ({max_failed}), so the step then fails, naming the run id to retry. (A "
                "Binance dump-file load, `binance_dumps`, reads its files in one load that the deadline "
                "does not interrupt.)"
            ),
            prose(
                f"The partitioned ones have a single-run backfill policy ({single}): a backfill of a range "
                "of days is ONE run over the whole range (of a day x venue asset, Dagster's backfill "
                "makes one run per day, every venue and instrument of the day in it), and `marketdata "
                "ingest` "
                "launches one range run too. `marketdata backfill crypto|a_shares|yahoo` splits a long "
                "first backfill into runs that each fit (docs/quickstart.md, step 5). A range that does not "
                "fit stops at the deadline with part of it loaded. To load the rest:"
            ),
            steps,
            prose(
                "The catch-up schedules retry only the last `catch_up_days` (sources config), so they do not "
                "finish an old range. `alpha_files` is the exception: a backfill runs one partition (month x "
                "account) per run."
            ),
        ]
    )


CONTENTS = (
    "Contents: [environment variables](#environment-variables) · [the sources config file]"
    "(#the-sources-config-file) · [run config](#run-config-of-the-assets-and-jobs) · [schedules and "
    "sensors](#schedules-and-sensors) · [daily use](#daily-use-what-to-turn-on) · [the run deadline "
    "and a long first backfill](#the-run-deadline-and-a-long-first-backfill)"
)


def render() -> str:
    """The whole page (the definitions are loaded here: Dagster's)."""
    from marketdata_assets.definitions import defs

    repo = defs().get_repository_def()
    return (
        "\n\n".join(
            [
                "# Configuration reference",
                (
                    f"Generated by `{COMMAND}` from the declarations (do not edit; "
                    "tests/test_configuration_doc.py fails when it is stale). Defaults are shown, never a "
                    "secret's value."
                ),
                CONTENTS,
                "## Environment variables",
                prose(
                    "Every setting is an environment variable; unset ones take the default below (the local "
                    "stack's). `make env` prints the effective values (secrets masked); `make run`/`make "
                    "test` write a project .env (`NAME=${NAME:-default}`) from this table, where a variable "
                    "you export wins. Secrets reach resources as `dg.EnvVar`, so the UI shows the name, "
                    "never the value."
                ),
                settings.reference(live_switches()),
                "## The sources config file",
                prose(
                    "`marketdata_assets/sources/data_providers.yaml` (or the file `TICKS_PROVIDERS_CONFIG` "
                    "names): the sources' limits and the universes. Every key is validated when the file is "
                    "read; a bad value, an unknown key or a missing required one fails with the file, the "
                    "key's path and what is expected: `mine.yaml: sources.binance.weight_per_minute: "
                    "expected an integer >= 1, got 0 (file /path/to/mine.yaml)`."
                ),
                config_schema.reference(),
                run_config(repo),
                schedules_and_sensors(repo),
                deadline(repo),
            ]
        )
        + "\n"
    )


def main(argv: list[str]) -> int:
    """Write the page, or with `--check [PATH]` say whether PATH (the committed page) is current."""
    for setting in settings.SETTINGS + live_switches():  # the page shows the defaults, not this machine's
        os.environ.pop(setting.name, None)
    text = render()
    if argv[:1] == ["--check"]:
        path = Path(argv[1]) if len(argv) > 1 else DOC
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            print(f"{path} is stale: run `{COMMAND}` and commit docs/configuration.md", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(text, encoding="utf-8")
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
