"""One materialization in this process, recorded in the Dagster instance (so it shows in the UI),
and what people read on a console about it: one line per step, then a summary.

`make run` (marketdata_assets.main) and the `marketdata` command both launch through `launch()`.
The console logger is quiet (warnings and errors); every event is still in the run's log in the UI.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import dagster as dg

from marketdata_assets.sensing import RANGE_END, RANGE_START

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
ROW_KEYS = ("rows_loaded", "rows", "documents_imported", "alphas_fetched")  # the first one an asset reports
LAUNCH_TAG = "marketdata/launch"


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
    checks_passed: int = 0
    checks: int = 0
    failed_partitions: list[str] = field(default_factory=list)
    failed_checks: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # WARN-severity checks that did not pass
    degraded: list[str] = field(default_factory=list)  # an asset's `degraded` metadata: a store's fallback

    def line(self) -> str:
        parts = [f"{len(self.assets)} asset{'s' * (len(self.assets) != 1)}"]
        if self.partitions:
            parts.append(f"{len(self.partitions)} partition{'s' * (len(self.partitions) != 1)}")
        parts.append(f"{self.rows:,} rows")
        if self.checks:
            parts.append(f"{self.checks_passed}/{self.checks} checks passed"
                         + (f" ({len(self.warnings)} warning{'s' * (len(self.warnings) != 1)})" if self.warnings else ""))
        text = f"[{'ok' if self.success else 'FAILED'}] {self.label}: {', '.join(parts)}, {self.seconds:.1f} s"
        if self.failed_partitions:
            text += f"; failed partitions: {', '.join(self.failed_partitions[:10])}" + (
                f" (+{len(self.failed_partitions) - 10})" if len(self.failed_partitions) > 10 else "")
        if self.failed_checks:
            text += f"; failed checks: {', '.join(self.failed_checks[:10])}"
        if self.warnings:
            text += f"; warnings: {', '.join(self.warnings[:10])}"
        for note in self.degraded:
            text += f"; DEGRADED: {note}"
        return text + f"  (run {self.run_id[:8]})"


def summary(outcomes: list[Outcome]) -> str:
    failed = [o for o in outcomes if not o.success]
    seconds = sum(o.seconds for o in outcomes)
    text = (f"{len(outcomes) - len(failed)}/{len(outcomes)} steps ok, "
            f"{sum(o.rows for o in outcomes):,} rows, "
            f"{sum(o.checks_passed for o in outcomes)}/{sum(o.checks for o in outcomes)} checks passed, "
            f"{seconds:.1f} s")
    if failed:
        text += "; failed: " + "; ".join(f"{o.label} (run {o.run_id})" for o in failed)
    degraded = [o.label for o in outcomes if o.degraded]
    if degraded:
        text += "; DEGRADED: " + ", ".join(degraded)
    return text


def _rows(materializations: list[dg.AssetMaterialization]) -> int:
    """Rows per asset (a range run repeats the run's figures on every partition: counted once)."""
    by_asset: dict = {}
    for materialization in materializations:
        metadata = materialization.metadata
        value = next((metadata[key].value for key in ROW_KEYS if key in metadata), None)
        if isinstance(value, (int, float)):
            by_asset.setdefault(materialization.asset_key, set()).add((materialization.partition, value))
    total = 0
    for values in by_asset.values():
        figures = {value for _, value in values}
        total += int(next(iter(figures))) if len(figures) == 1 else int(sum(v for _, v in values))
    return total


def _progress_thread(instance: dg.DagsterInstance, launch_id: str, on_event: Callable[[str, object], None],
                     done: threading.Event) -> threading.Thread:
    """Follows the run's events in the instance (the run is found by its launch tag) and calls
    on_event(kind, event) for step starts/ends and materializations; for progress bars."""
    def follow() -> None:
        cursor, run_id = None, None
        kinds = {"STEP_START": "step_start", "STEP_SUCCESS": "step_end", "STEP_FAILURE": "step_end",
                 "ASSET_MATERIALIZATION": "materialization"}
        while True:
            finished = done.is_set()
            if run_id is None:
                runs = instance.get_runs(dg.RunsFilter(tags={LAUNCH_TAG: launch_id}), limit=1)
                run_id = runs[0].run_id if runs else None
            if run_id is not None:
                records = instance.get_records_for_run(run_id, cursor=cursor)
                cursor = records.cursor
                for record in records.records:
                    event = record.event_log_entry.dagster_event
                    if event is not None and event.event_type_value in kinds:
                        on_event(kinds[event.event_type_value], event)
            if finished:
                return
            done.wait(0.5)

    thread = threading.Thread(target=follow, name="launch-progress", daemon=True)
    thread.start()
    return thread


def launch(label: str, assets: list, *, instance: dg.DagsterInstance, resources: dict, tags: dict | None = None,
           partition_key=None, selection=None, run_config: dict | None = None,
           on_event: Callable[[str, object], None] | None = None) -> Outcome:
    """Materialize `assets` (their checks included when listed) in this process."""
    started = time.monotonic()
    launch_id = uuid.uuid4().hex
    config = {**QUIET, **(run_config or {})}
    done = threading.Event()
    follower = _progress_thread(instance, launch_id, on_event, done) if on_event else None
    try:
        result = dg.materialize(assets, instance=instance, resources=resources, partition_key=partition_key,
                                selection=selection, tags={**(tags or {}), LAUNCH_TAG: launch_id},
                                raise_on_error=False, run_config=config)
    finally:
        done.set()
        if follower is not None:
            follower.join(timeout=10)
    events = result.get_asset_materialization_events()
    materializations = [e.event_specific_data.materialization for e in events]
    keys = sorted(key.to_user_string() for key in selection) if selection else sorted(
        {key.to_user_string() for a in assets if isinstance(a, dg.AssetsDefinition) for key in a.keys})
    checks = result.get_asset_check_evaluations()
    planned = _planned_partitions(instance, assets, selection, partition_key, tags or {})
    done_partitions = {m.partition for m in materializations if m.partition}
    return Outcome(
        label=label, success=result.success, run_id=result.run_id, seconds=time.monotonic() - started,
        assets=keys, partitions=sorted(done_partitions | set(planned)),
        rows=_rows(materializations),
        checks_passed=sum(c.passed for c in checks), checks=len(checks),
        failed_partitions=[] if result.success else sorted(set(planned) - done_partitions) or planned,
        failed_checks=_named(c for c in checks if not c.passed and c.severity != dg.AssetCheckSeverity.WARN),
        warnings=_named(c for c in checks if not c.passed and c.severity == dg.AssetCheckSeverity.WARN),
        degraded=sorted({str(m.metadata["degraded"].value) for m in materializations if "degraded" in m.metadata}))


def _named(checks) -> list[str]:
    return sorted({f"{c.asset_key.to_user_string()}:{c.check_name}" + (f"[{c.partition}]" if c.partition else "")
                   for c in checks})


def _planned_partitions(instance, assets: list, selection, partition_key, tags: dict) -> list[str]:
    """The partitions the run was asked for: its key, or its range's keys."""
    if partition_key is not None:
        return [str(partition_key)]
    start, end = tags.get(RANGE_START), tags.get(RANGE_END)
    if not start:
        return []
    wanted = set(selection or [])
    partitions_def = next((a.partitions_def for a in assets if isinstance(a, dg.AssetsDefinition)
                           and a.partitions_def is not None and (not wanted or wanted & set(a.keys))), None)
    if partitions_def is None:
        return [f"{start}...{end}"]
    with dg.partition_loading_context(dynamic_partitions_store=instance):
        return list(partitions_def.get_partition_keys_in_range(dg.PartitionKeyRange(start, end)))
