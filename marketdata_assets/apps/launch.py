"""One materialization in this process, recorded in the Dagster instance (so it shows in the UI),
and what people read on a console about it: one line per step, then a summary.

`make run` (marketdata_assets.apps.main) and the `marketdata` command both launch through `launch()`.
Dagster's console logger is off (on with --verbose): the run's events are tapped in this process,
and the steps' warnings are printed as plain lines; every event is still in the run's log in the UI.
Each run carries its process in tags (core/sweep.py), so a run whose process dies is found and failed
by the next sweep (marketdata_assets.orchestration.runs). A failed step is one line naming the error; a
Dagster storage that stops answering ends the process within about a second with one line (storage_watch),
instead of Dagster's retries, warnings and tracebacks.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import dagster as dg

from marketdata_assets.core.sweep import process_tags
from marketdata_assets.core.verdicts import EXIT_CODES, FAILED, OK, PARTIAL, worst
from marketdata_assets.orchestration import pool_wait
from marketdata_assets.orchestration.sensing import RANGE_END, RANGE_START

QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}  # the tap prints warnings
VERBOSE = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
# what an asset wrote, by the first of these keys it reports: rows loaded into a store, rows written
# to files (the Parquet export), alpha documents inserted or changed by an import, alphas fetched
ROW_KEYS = ("rows_loaded", "rows_written", "rows", "documents_written", "alphas_fetched")
FILE_KEYS = ("files_written",)  # files a step wrote for others to read (the Parquet export), not stored rows
UNCHANGED_KEYS = ("records_unchanged",)  # records a step found stored as they are (an alpha re-import's)
EPHEMERAL_JOB = "__ephemeral_asset_job__"  # dg.materialize's job name
WRAPPERS = {"DagsterExecutionStepExecutionError", "DagsterUserCodeExecutionError"}
STORAGE_DOWN_EXIT = 3
STORAGE_DRIVER_ERROR = (
    "(psycopg2.",
    "too many retries for DB",
)  # dagster-postgres's errors (our stores: psycopg 3)
NOT_EXECUTING = re.compile(r"Dependencies for step (\S+) .*Not executing\.$")  # Dagster's skipped step
CURRENT: dict = {}  # the run being launched in this process: label, run_id, tap


class Interrupted(Exception):
    """Ctrl-C / SIGTERM stopped a run (Dagster marked it failed)."""


@dataclass
class Outcome:
    """What one launched run did."""

    label: str
    success: bool
    run_id: str
    seconds: float
    assets: list[str] = field(default_factory=list)
    partitions: list[str] = field(default_factory=list)
    rows: int = 0
    unchanged: int = 0  # records already stored as they are (0 rows written is then not "nothing done")
    files: int = 0
    checks_passed: int = 0
    checks: int = 0
    failed_partitions: list[str] = field(default_factory=list)
    failed_checks: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # WARN-severity checks that did not pass
    degraded: list[str] = field(default_factory=list)  # an asset's `degraded` metadata: a store's fallback
    errors: dict[str, str] = field(
        default_factory=dict
    )  # "step X" | "resource setup" | "run" -> what went wrong
    partial: list[str] = field(
        default_factory=list
    )  # "<asset>: <its `partial` metadata>": what it could not do
    covered: list[str] = field(
        default_factory=list
    )  # "<asset>: <its `covered` metadata>": slices left to a more
    # faithful source's load (not a failure: the run is ok)
    skipped: int = 0  # steps not executed because a step they depend on failed

    @property
    def state(self) -> str:
        """ok | checks failed (it stored what it fetched, and a check of ERROR severity did not pass) |
        partial (it succeeded, and a partition or an asset says what it could not store: its `partial`
        metadata, the run's tag `marketdata/verdict`) | FAILED (a step failed: among them a partition nothing
        could be stored of, named with its verdict); the line names the failed checks whatever its state."""
        if not self.success:
            return "FAILED"
        return PARTIAL if self.partial else "checks failed" if self.failed_checks else OK

    @property
    def verdict(self) -> str:
        """The run's verdict (core.verdicts): failed, partial, else ok (checks failed too: what was fetched
        is stored); the `marketdata` command exits with its worst run's code (EXIT_CODES)."""
        return FAILED if not self.success else PARTIAL if self.partial else OK

    def line(self) -> str:
        parts = [f"{len(self.assets)} asset{'s' * (len(self.assets) != 1)}"]
        if self.partitions:
            parts.append(f"{len(self.partitions)} partition{'s' * (len(self.partitions) != 1)}")
        parts.append(f"{self.rows:,} rows" + (f" ({self.unchanged:,} unchanged)" if self.unchanged else ""))
        if self.files:
            parts.append(f"{self.files:,} files written")
        if self.checks:
            parts.append(
                f"{self.checks_passed}/{self.checks} checks passed"
                + (
                    f" ({len(self.warnings)} warning{'s' * (len(self.warnings) != 1)})"
                    if self.warnings
                    else ""
                )
            )
        text = f"[{self.state}] {self.label}: {', '.join(parts)}, {self.seconds:.1f} s"
        if self.partial:
            text += f"; partial: {'; '.join(self.partial[:3])}" + (
                f" (+{len(self.partial) - 3})" if len(self.partial) > 3 else ""
            )
        if self.covered:
            text += f"; covered: {'; '.join(self.covered[:3])}" + (
                f" (+{len(self.covered) - 3})" if len(self.covered) > 3 else ""
            )
        if self.failed_partitions:
            text += f"; failed partitions: {', '.join(self.failed_partitions[:10])}" + (
                f" (+{len(self.failed_partitions) - 10})" if len(self.failed_partitions) > 10 else ""
            )
        if self.failed_checks:
            text += f"; failed checks: {', '.join(self.failed_checks[:10])}"
        if self.warnings:
            text += f"; warnings: {', '.join(self.warnings[:10])}"
        for note in self.degraded:
            text += f"; DEGRADED: {note}"
        return text + f"  (run {self.run_id[:8]})"

    def error_lines(self) -> list[str]:
        """One line per failed step: which step, which partitions, what went wrong (its cause first: the root
        error, how many slices); then one line counting the steps not executed because of them."""
        partitions = ", ".join(self.failed_partitions[:6]) + (
            f" (+{len(self.failed_partitions) - 6})" if len(self.failed_partitions) > 6 else ""
        )
        by_error: dict[str, list[str]] = {}  # steps that failed alike (a store gone under them): one line
        for where, error in sorted(self.errors.items()):
            by_error.setdefault(error, []).append(where)
        lines = [
            f"FAILED: {self.label}: {_places(wheres)}"
            + (f" (partitions {partitions})" if partitions else "")
            + f": {error} (run {self.run_id[:8]})"
            for error, wheres in by_error.items()
        ]
        if self.skipped:
            lines.append(
                f"skipped: {self.label}: {self.skipped} downstream step{'s' * (self.skipped != 1)} not "
                "executed (what they depend on failed)"
            )
        return lines


def exit_code(outcomes: list[Outcome]) -> int:
    """A command's exit code: its worst run's verdict's (core.verdicts EXIT_CODES: 0 ok, 4 partial, 1
    failed)."""
    return EXIT_CODES[worst(o.verdict for o in outcomes)]


def summary(outcomes: list[Outcome]) -> str:
    failed = [o for o in outcomes if not o.success]
    partial = [o for o in outcomes if o.state == PARTIAL]
    unchecked = [o for o in outcomes if o.state == "checks failed"]
    seconds = sum(o.seconds for o in outcomes)
    text = (
        f"{len(outcomes) - len(failed) - len(partial) - len(unchecked)}/{len(outcomes)} steps ok, "
        + (f"{len(partial)} partial, " if partial else "")
        + (f"{len(unchecked)} with failed checks, " if unchecked else "")
        + f"{sum(o.rows for o in outcomes):,} rows, "
        f"{sum(o.checks_passed for o in outcomes)}/{sum(o.checks for o in outcomes)} checks passed, "
        f"{seconds:.1f} s"
    )
    if failed:
        text += "; failed: " + "; ".join(f"{o.label} (run {o.run_id})" for o in failed)
    degraded = [o.label for o in outcomes if o.degraded]
    if degraded:
        text += "; DEGRADED: " + ", ".join(degraded)
    return text


def reported_rows(materializations: list[dg.AssetMaterialization], keys: tuple[str, ...] = ROW_KEYS) -> int:
    """Rows (or the figure of the first of `keys` an asset reports) per asset, summed. A partition's
    materialization that carries the run's figure as `run_<key>` counts that once (the Parquet export: the
    whole K-line and alphas are no day's own); one that carries `run_partitions` (defs/_common/ingest.py,
    the alpha import) reports its own figures: summed over the partitions; another asset's range run
    repeats the run's figures on every partition: counted once."""
    by_asset: dict = {}
    total = 0
    for materialization in materializations:
        metadata = materialization.metadata
        key = next((key for key in keys if key in metadata or f"run_{key}" in metadata), None)
        if key is not None and isinstance(getattr(metadata.get(f"run_{key}"), "value", None), (int, float)):
            by_asset.setdefault(materialization.asset_key, set()).add((None, metadata[f"run_{key}"].value))
            continue
        value = metadata[key].value if key in metadata else None
        if isinstance(value, (int, float)) and "run_partitions" in metadata:
            total += int(value)
        elif isinstance(value, (int, float)):
            by_asset.setdefault(materialization.asset_key, set()).add((materialization.partition, value))
    for values in by_asset.values():
        figures = {value for _, value in values}
        total += int(next(iter(figures))) if len(figures) == 1 else int(sum(v for _, v in values))
    return total


EVENT_NAMES = {
    "STEP_START": "step_start",
    "STEP_SUCCESS": "step_end",
    "STEP_FAILURE": "step_end",
    "ASSET_MATERIALIZATION": "materialization",
}  # what on_event(what, event) hears of


class _Tap(logging.Handler):
    """The run's events in this process, ahead of the storage's handler: the console follows the run
    (on_event) and hears of a step failure even when the storage can't record it."""

    def __init__(self, on_event: Callable[[str, object], None] | None, say_warnings: bool = True):
        super().__init__()
        self.on_event = on_event
        self.say_warnings = say_warnings
        self.step: str | None = None
        self.failures: dict[str, str] = {}  # "step X" | "resource setup" | "run" -> the error's first line
        self.failed_rows: dict[str, int] = {}  # "step X" -> rows it stored before it failed (its `rows`)
        self.skipped: set[str] = set()  # steps Dagster did not execute: a step they depend on failed

    def emit(self, record: logging.LogRecord) -> None:
        event = getattr(record, "dagster_event", None)
        if event is None:
            self._say(record)
            return
        event_type = getattr(event, "event_type_value", None)
        if event_type == "STEP_START":
            self.step = event.step_key
        elif event_type == "STEP_FAILURE" and event.step_failure_data is not None:
            self.failures[f"step {event.step_key}"] = failure_line(event.step_failure_data)
            stored = _failure_metadata(event.step_failure_data).get("rows")
            if isinstance(getattr(stored, "value", stored), int):
                self.failed_rows[f"step {event.step_key}"] = int(getattr(stored, "value", stored))
        elif event_type == "RESOURCE_INIT_FAILURE" and getattr(event.event_specific_data, "error", None):
            self.failures[f"step {event.step_key}" if event.step_key else "resource setup"] = error_line(
                event.event_specific_data.error
            )
        elif (
            event_type == "PIPELINE_FAILURE"
            and not self.failures
            and getattr(event.event_specific_data, "error", None)
        ):
            self.failures["run"] = error_line(event.event_specific_data.error)
        if event_type in EVENT_NAMES and self.on_event is not None:
            self.on_event(EVENT_NAMES[event_type], event)

    def _say(self, record: logging.LogRecord) -> None:
        """A step's own warnings and errors, one plain line each (Dagster's console logger is off)."""
        meta = getattr(record, "dagster_meta", None) or {}
        skipped = NOT_EXECUTING.match(str(meta.get("orig_message") or ""))
        if skipped:  # counted on the outcome's error lines, one line for all (Dagster logs one each)
            self.skipped.add(skipped.group(1))
            return
        if self.say_warnings and record.levelno >= logging.WARNING and meta.get("orig_message"):
            where = f"{meta['step_key']}: " if meta.get("step_key") else ""
            line = f"{logging.getLevelName(record.levelno).lower()}: {where}{meta['orig_message']}"
            try:
                if self.on_event is None:
                    raise LookupError("no console")
                self.on_event("warning", line)  # the console prints it (above its progress bar)
            except Exception:  # noqa: BLE001  (the console's trouble never fails the step it reports on)
                print(line, file=sys.stderr, flush=True)


def _failure_metadata(data) -> dict:
    """The metadata a step's `dg.Failure` carried ({} for any other error)."""
    return (getattr(data, "user_failure_data", None) and data.user_failure_data.metadata) or {}


def failure_line(data) -> str:
    """A step failure's line: its `cause` metadata when it says one (a root error for the console: the
    ingest steps'), else the error's."""
    cause = _failure_metadata(data).get("cause")
    return str(getattr(cause, "value", cause)) if cause is not None else error_line(data.error)


def error_line(error) -> str:
    """The user's exception of a Dagster error (not Dagster's wrapper), first line, without the class path;
    an HTTP client's 'Max retries exceeded' said as the server that did not answer (no URL, no session)."""
    while error is not None and error.cls_name in WRAPPERS and error.cause is not None:
        error = error.cause
    if error is None:
        return "unknown error"
    text = (error.message.strip().splitlines() or [error.cls_name])[0]
    prefix = f"{error.cls_name}: "
    text = text.split(prefix, 1)[1] if prefix in text else text
    pool = _POOL_GONE.search(text)
    if pool is None:
        return text
    why = _ERRNO.search(pool.group(3))
    return (
        f"the server at {pool.group(1)}:{pool.group(2)} did not answer "
        f"({why.group(0) if why else 'no connection'}): is it running? (the local stack: `make stack-up`)"
    )


# urllib3's error for a server that went away (clickhouse-connect's HTTP client): its URL holds a session id
_POOL_GONE = re.compile(
    r"HTTPS?ConnectionPool\(host='([^']*)', port=(\d+)\): Max retries exceeded with url: \S+ (.*)"
)
_ERRNO = re.compile(r"\[Errno -?\d+\] [^'\")]+|Connection refused|Connection reset by peer|timed out")


def _places(wheres: list[str]) -> str:
    """'step a' | '3 steps (a, b, c)' for the steps that failed alike."""
    if len(wheres) == 1:
        return wheres[0]
    names = [w.removeprefix("step ") for w in wheres]
    return f"{len(wheres)} steps ({', '.join(names[:5])}{f' +{len(names) - 5}' if len(names) > 5 else ''})"


@contextmanager
def _tapped(instance: dg.DagsterInstance, tap: _Tap) -> Iterator[None]:
    """Put `tap` before the instance's own handlers (the event log writer) for the runs started inside."""
    original = instance.get_handlers
    instance.get_handlers = lambda: [tap, *original()]
    try:
        yield
    finally:
        del instance.get_handlers


def _execute(
    assets: list,
    *,
    instance,
    resources: dict,
    run_id: str,
    partition_key,
    selection,
    tags: dict,
    run_config: dict,
):
    """dg.materialize with our run id (the process tags name it)."""
    defs = dg.Definitions(
        jobs=[dg.define_asset_job(EPHEMERAL_JOB, selection=selection)], assets=assets, resources=resources
    )
    job = defs.resolve_job_def(EPHEMERAL_JOB)
    return job.execute_in_process(
        run_config=run_config,
        instance=instance,
        partition_key=partition_key,
        raise_on_error=False,
        tags=tags,
        run_id=run_id,
    )


def launch(
    label: str,
    assets: list,
    *,
    instance: dg.DagsterInstance,
    resources: dict,
    tags: dict | None = None,
    partition_key=None,
    selection=None,
    run_config: dict | None = None,
    on_event: Callable[[str, object], None] | None = None,
    verbose: bool = False,
) -> Outcome:
    """Materialize `assets` (their checks included when listed) in this process. Raises Interrupted
    when Ctrl-C / SIGTERM stopped the run. `verbose`: Dagster's console logger (with its tracebacks)."""
    started = time.monotonic()
    run_id = str(uuid.uuid4())
    tap = _Tap(on_event, say_warnings=not verbose)
    planned = _planned_partitions(instance, assets, selection, partition_key, tags or {})
    CURRENT.update(label=label, run_id=run_id, tap=tap, partitions=planned)
    pool_wait.INTERRUPTED.clear()
    try:
        with _tapped(instance, tap):
            result = _execute(
                assets,
                instance=instance,
                resources=resources,
                run_id=run_id,
                partition_key=partition_key,
                selection=selection,
                tags={**(tags or {}), **process_tags(run_id, label)},
                run_config={**(VERBOSE if verbose else QUIET), **(run_config or {})},
            )
    finally:
        CURRENT.clear()
    if pool_wait.INTERRUPTED.is_set() or _interrupted(result):
        raise Interrupted(
            f"interrupted: {label} stopped (run {run_id[:8]} marked failed); nothing stays claimed"
        )
    events = result.get_asset_materialization_events()
    materializations = [e.event_specific_data.materialization for e in events]
    keys = (
        sorted(key.to_user_string() for key in selection)
        if selection
        else sorted(
            {key.to_user_string() for a in assets if isinstance(a, dg.AssetsDefinition) for key in a.keys}
        )
    )
    checks = result.get_asset_check_evaluations()
    done_partitions = {m.partition for m in materializations if m.partition}
    return Outcome(
        label=label,
        success=result.success,
        run_id=result.run_id,
        seconds=time.monotonic() - started,
        assets=keys,
        partitions=sorted(done_partitions | set(planned)),
        rows=reported_rows(materializations) + sum(tap.failed_rows.values()),
        files=reported_rows(materializations, FILE_KEYS),
        unchanged=reported_rows(materializations, UNCHANGED_KEYS),
        checks_passed=sum(c.passed for c in checks),
        checks=len(checks),
        failed_partitions=[] if result.success else _failed(assets, selection, planned, materializations),
        failed_checks=_named(c for c in checks if not c.passed and c.severity != dg.AssetCheckSeverity.WARN),
        warnings=_named(c for c in checks if not c.passed and c.severity == dg.AssetCheckSeverity.WARN),
        degraded=sorted(
            {str(m.metadata["degraded"].value) for m in materializations if "degraded" in m.metadata}
        ),
        errors=dict(tap.failures),
        partial=_said(materializations, "partial"),
        covered=_said(materializations, "covered"),
        skipped=len(tap.skipped),
    )


def _failed(assets: list, selection, planned: list[str], materializations: list) -> list[str]:
    """The planned partitions some asset of the failed run (its selection, partitioned as planned) did not
    materialize (a step materializes the partitions it stored before it fails naming the others); all of
    them when none can be told."""
    wanted = set(selection or [])
    keys = {
        key
        for a in assets
        if isinstance(a, dg.AssetsDefinition) and a.partitions_def is not None
        for key in a.keys
        if not wanted or key in wanted
    }
    done = {(m.asset_key, m.partition) for m in materializations if m.partition}
    return sorted({p for p in planned if any((key, p) not in done for key in keys)}) or planned


def _said(materializations: list, key: str) -> list[str]:
    """ "<asset>: <its `key` metadata>" of each materialization that says it (a range run repeats it:
    once)."""
    return sorted(
        {
            f"{m.asset_key.to_user_string()}: {m.metadata[key].value}"
            for m in materializations
            if key in m.metadata
        }
    )


def _interrupted(result) -> bool:
    if result.success:
        return False
    failure = next((e for e in result.all_events if e.event_type_value == "PIPELINE_FAILURE"), None)
    data = failure.event_specific_data if failure is not None else None
    return getattr(getattr(data, "failure_reason", None), "value", None) == "UNEXPECTED_TERMINATION"


def _named(checks) -> list[str]:
    return sorted(
        {
            f"{c.asset_key.to_user_string()}:{c.check_name}" + (f"[{c.partition}]" if c.partition else "")
            for c in checks
        }
    )


def _planned_partitions(instance, assets: list, selection, partition_key, tags: dict) -> list[str]:
    """The partitions the run was asked for: its key, or its range's keys."""
    if partition_key is not None:
        return [str(partition_key)]
    start, end = tags.get(RANGE_START), tags.get(RANGE_END)
    if not start:
        return []
    wanted = set(selection or [])
    partitions_def = next(
        (
            a.partitions_def
            for a in assets
            if isinstance(a, dg.AssetsDefinition)
            and a.partitions_def is not None
            and (not wanted or wanted & set(a.keys))
        ),
        None,
    )
    if partitions_def is None:
        return [f"{start}...{end}"]
    with dg.partition_loading_context(dynamic_partitions_store=instance):
        return list(partitions_def.get_partition_keys_in_range(dg.PartitionKeyRange(start, end)))


class _StorageWatch(logging.Handler):
    """dagster-postgres logs "Retrying failed database connection" on the root logger at each failed
    attempt and retries for ~6 s per write (~24 s and 40 lines of warnings and tracebacks for one run).
    At the first one the server is probed: when it doesn't answer twice in half a second, `on_down`.
    Other records go where they went without a handler (stderr, warnings and up)."""

    MARKER = "Retrying failed database connection"

    def __init__(self, on_down: Callable[[Exception], None]):
        super().__init__(logging.WARNING)
        self.on_down = on_down
        self._probing = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if not record.getMessage().startswith(self.MARKER):
            if not self._handled_elsewhere(record):
                logging.lastResort.handle(record)
        elif not self._probing.is_set():
            self._probing.set()
            threading.Thread(target=self._probe, name="storage-watch", daemon=True).start()

    def _handled_elsewhere(self, record: logging.LogRecord) -> bool:
        """Whether another handler got the record (logging only falls back to lastResort when none does)."""
        logger = logging.getLogger(record.name)
        while logger is not None:
            if any(handler is not self for handler in logger.handlers):
                return True
            logger = logger.parent if logger.propagate else None
        return False

    def _probe(self) -> None:
        from marketdata_assets.orchestration.runs import storage_reachable

        error = None
        for delay in (0.0, 0.5):
            time.sleep(delay)
            error = storage_reachable(timeout_s=2)
            if error is None:
                self._probing.clear()  # a blip: Dagster's retry gets through
                return
        self.on_down(error)


def storage_down(error: Exception) -> None:
    """One line per failure (a step's, then the storage's) and the end of this process: nothing can be
    recorded any more. The run stays STARTED until the next command's sweep fails it and frees its slots."""
    lines = []
    label, run_id, tap = CURRENT.get("label"), CURRENT.get("run_id"), CURRENT.get("tap")
    if tap is not None:
        partitions = CURRENT.get("partitions") or []
        where = (
            f" (partitions {partitions[0]}..{partitions[-1]})"
            if len(partitions) > 1
            else (f" (partition {partitions[0]})" if partitions else "")
        )
        lines += [
            f"FAILED: {label}: {what}{where}: {text}"
            for what, text in sorted(tap.failures.items())
            if not text.startswith(STORAGE_DRIVER_ERROR)
        ]  # a step that failed writing to the storage
    stopped = ""
    if run_id:
        stopped = (
            f" The run {run_id[:8]} ({label}) stopped"
            + (f" in step {tap.step}" if tap and tap.step else "")
            + "."
        )
    lines.append(f"FAILED: {error}{stopped}")
    sys.stderr.write("\n" + "\n".join(lines) + "\n")
    sys.stderr.flush()
    sys.stdout.flush()
    os._exit(STORAGE_DOWN_EXIT)


@contextmanager
def storage_watch(enabled: bool = True) -> Iterator[None]:
    """While inside, a Dagster storage that stops answering ends the process with one line (storage_down).
    `enabled=False` (--verbose): Dagster's own retries, warnings and tracebacks."""
    if not enabled:
        yield
        return
    root = logging.getLogger()
    handler = _StorageWatch(storage_down)
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
