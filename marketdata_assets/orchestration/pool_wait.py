"""A step waiting for a pool slot: said once, at ~0% CPU, stoppable, and never behind a dead run.

Dagster 1.13's executors wait for a slot in a loop that never sleeps: the in-process one asks
`interval_to_next_pending_claim_check()`, which returns `min([0, ...])` (always <= 0, see
dagster-io/dagster#20367, closed unmerged), and the multiprocess one has no sleep at all; and the
in-process loop never looks at the SIGINT/SIGTERM that Dagster's run captured, so a waiting
`marketdata` command spun at 100% CPU and ignored `timeout`. `install()` wraps
`ActiveExecution.concurrency_event_iterator`, which both loops call every turn: when nothing of the
run is in flight and steps wait for slots, it waits for Dagster's next claim check in 0.2 s slices,
raising Dagster's own interruption on Ctrl-C / SIGTERM (the run fails; Dagster's concurrency context
drops the pending claims: nothing stays claimed). The first wait of a step says which pool and which
runs hold it (age, process alive or gone); holders whose process is gone are failed and their slots
freed at once (marketdata_assets.orchestration.runs), and again every RESWEEP_S while waiting.
Installed by marketdata_assets.definitions, so every process that runs steps has it.
"""

from __future__ import annotations

import sys
import threading
import time

from dagster._core.errors import DagsterExecutionInterruptedError
from dagster._core.execution.plan.active import ActiveExecution
from dagster._utils.interrupts import check_captured_interrupt, pop_captured_interrupt

SLICE_S = 0.2
MAX_WAIT_S = 15.0  # Dagster's longest interval between two claim checks
RESWEEP_S = 10.0
INTERRUPTED = threading.Event()  # set when a wait was stopped by a signal (the launcher reads it)
_ORIGINAL = ActiveExecution.concurrency_event_iterator


def install() -> None:
    if ActiveExecution.concurrency_event_iterator is not _waiting_iterator:
        ActiveExecution.concurrency_event_iterator = _waiting_iterator


def _waiting_iterator(self: ActiveExecution, plan_context):
    yield from _ORIGINAL(self, plan_context)
    claims = getattr(self, "_instance_concurrency_context", None)
    if claims is None or not claims.has_pending_claims() or self.has_in_flight_steps:
        return
    announced = self.__dict__.setdefault("_marketdata_announced", {})
    for step_key in claims.pending_claim_steps():
        if step_key not in announced:
            pool = self.get_step_by_key(step_key).pool or ""
            announced[step_key] = time.monotonic()
            _say(plan_context, _first_word(plan_context.instance, step_key, pool))
    _wait(self, claims, plan_context)


def _first_word(instance, step_key: str, pool: str) -> str:
    """The swept dead holders (if any) and who holds the pool now."""
    from marketdata_assets.core.sweep import holders_line, swept_line
    from marketdata_assets.orchestration.runs import holders, sweep

    dead, freed = sweep(instance, [pool])
    limit, held = holders(instance, pool)
    line = holders_line(step_key, pool, limit, held, time.time())
    swept = swept_line(dead, freed)
    return f"{swept}\n{line}" if swept else line


def _say(plan_context, message: str) -> None:
    for line in message.splitlines():
        print(line, file=sys.stderr, flush=True)
        plan_context.log.info(line)


def _next_check_in(self: ActiveExecution, claims) -> float:
    now = time.time()
    moments = list(getattr(claims, "_pending_timeouts", {}).values()) + list(
        getattr(self, "_waiting_to_retry", {}).values()
    )
    return min(MAX_WAIT_S, max(SLICE_S, min((m - now for m in moments), default=1.0)))


def _wait(self: ActiveExecution, claims, plan_context) -> None:
    deadline = time.monotonic() + _next_check_in(self, claims)
    last_sweep = self.__dict__.setdefault("_marketdata_swept_at", [time.monotonic()])
    while time.monotonic() < deadline:
        if check_captured_interrupt():
            pop_captured_interrupt()
            INTERRUPTED.set()
            _say(
                plan_context,
                "interrupted while waiting for a pool slot: the run stops, nothing stays claimed",
            )
            raise DagsterExecutionInterruptedError()
        time.sleep(SLICE_S)
    if time.monotonic() - last_sweep[0] >= RESWEEP_S:
        last_sweep[0] = time.monotonic()
        from marketdata_assets.core.sweep import swept_line
        from marketdata_assets.orchestration.runs import sweep

        pools = sorted({self.get_step_by_key(k).pool or "" for k in claims.pending_claim_steps()} - {""})
        line = swept_line(*sweep(plan_context.instance, pools))
        if line:
            _say(plan_context, line)
