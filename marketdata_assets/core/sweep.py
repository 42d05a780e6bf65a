"""Runs whose process is gone: which ones, and what people read about them.

A run launched in a process of its own host (the `marketdata` command, `make run`) carries its
process in tags (`process_tags`). A run that is not finished while that process no longer exists
will never finish: the sweep (marketdata_assets.orchestration.runs) marks it failed and frees its pool slots.
The tags name the run they were written for, so a re-execution (which copies its parent's tags) is
never judged by its parent's process. Dagster-free: runs are seen as RunView.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from marketdata_assets.core.processes import ProcessRef, age

HOST_TAG = "marketdata/host"
PID_TAG = "marketdata/pid"
START_TAG = "marketdata/process_start"
RUN_TAG = "marketdata/run"  # the run the process tags were written for
LABEL_TAG = "marketdata/label"
UNFINISHED = ("NOT_STARTED", "STARTING", "STARTED", "CANCELING")


def process_tags(run_id: str, label: str, process: ProcessRef | None = None) -> dict[str, str]:
    process = process or ProcessRef.current()
    return {
        HOST_TAG: process.host,
        PID_TAG: str(process.pid),
        START_TAG: process.start,
        RUN_TAG: run_id,
        LABEL_TAG: label,
    }


def process_of(run_id: str, tags: Mapping[str, str]) -> ProcessRef | None:
    """The process that runs `run_id`, if its tags were written for it."""
    if tags.get(RUN_TAG) != run_id or not tags.get(PID_TAG, "").isdigit():
        return None
    return ProcessRef(tags.get(HOST_TAG, ""), int(tags[PID_TAG]), tags.get(START_TAG, ""))


@dataclass(frozen=True)
class RunView:
    run_id: str
    status: str  # a DagsterRunStatus name
    tags: Mapping[str, str] = field(default_factory=dict)
    started: float | None = None  # epoch seconds (start, else creation)

    @property
    def process(self) -> ProcessRef | None:
        return process_of(self.run_id, self.tags)

    @property
    def label(self) -> str:
        return self.tags.get(LABEL_TAG, "")

    def name(self) -> str:
        return f"run {self.run_id[:8]}" + (f" ({self.label})" if self.label else "")


def dead_runs(runs: Iterable[RunView], here: str | None = None) -> list[RunView]:
    """The unfinished runs whose own process, on this host, is gone."""
    return [
        run
        for run in runs
        if run.status in UNFINISHED and run.process is not None and run.process.state(here) == "gone"
    ]


def failure_message(run: RunView) -> str:
    process = run.process
    return (
        f"Marked failed by marketdata's sweep: the process that ran it ({process.pid} on {process.host}) "
        "no longer exists (killed, out of memory, terminal closed or machine restarted); its pool slots "
        "were freed. Re-run it: what it committed is kept and skipped."
    )


def swept_line(failed: list[RunView], freed: dict[str, int]) -> str:
    """One line for the console: the dead runs found and cleaned up (empty when there were none)."""
    if not failed and not freed:
        return ""
    parts = []
    if failed:
        parts.append(
            f"{len(failed)} earlier run{'s' * (len(failed) != 1)} found dead (process gone) and "
            "marked failed: " + ", ".join(run.name() for run in failed)
        )
    slots = sum(freed.values())
    if slots:
        parts.append(
            f"{slots} pool slot{'s' * (slots != 1)} freed ("
            + ", ".join(f"{pool} {n}" for pool, n in sorted(freed.items()))
            + ")"
        )
    return "cleaned up: " + "; ".join(parts)


def holders_line(
    step: str, pool: str, limit: int, holders: list[RunView], now: float, here: str | None = None
) -> str:
    """What a step waiting for a pool slot says once: the pool and who holds its slots."""
    described = []
    for run in holders:
        process = run.process
        bits = [
            f"{age(now - run.started)} old" if run.started else "age unknown",
            process.describe(here) if process else "process not recorded (launched by Dagster)",
        ]
        described.append(f"{run.name()}, {', '.join(bits)}")
    held = "; ".join(described) or "no run (slots being handed over)"
    return (
        f"{step} waits for a slot of pool '{pool}' (limit {limit}), held by: {held}. Ctrl-C stops the wait "
        "and leaves nothing claimed."
    )
