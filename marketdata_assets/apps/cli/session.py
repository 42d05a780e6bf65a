"""What every `marketdata` subcommand shares: the session (instance, definitions, launches, the exit
code), the assets of a command with their checks and upstream stand-ins, and month/day ranges."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import click
import dagster as dg

from marketdata_assets.core import progress, settings
from marketdata_assets.orchestration.sensing import range_tags

MONTH = click.DateTime(formats=["%Y-%m"])
DAY = click.DateTime(formats=["%Y-%m-%d"])


class Session:
    """The instance, the definitions and the launches of one command."""

    def __init__(self, demo: bool, verbose: bool = False):
        self.stack = ExitStack()
        self.verbose = verbose
        if demo:
            from marketdata_assets.apps.demo import activate

            replays = activate("on")
            self.stack.callback(replays.stop)
            click.echo(replays.describe(), err=True)
        settings.apply_defaults()
        self.outcomes = []
        self.retry_note = ""  # what running the command again does (a backfill: only what is not loaded)
        self._instance: dg.DagsterInstance | None = None

    def definitions(self) -> dg.Definitions:
        from marketdata_assets.definitions import defs

        return defs()

    def instance(self) -> dg.DagsterInstance:
        """The Dagster instance, opened at the first run: a stopped storage is one line and exit 3; runs
        found dead are failed and their pool slots freed first (marketdata_assets.orchestration.runs)."""
        if self._instance is None:
            from marketdata_assets.apps.launch import STORAGE_DOWN_EXIT, storage_watch
            from marketdata_assets.core.sweep import swept_line
            from marketdata_assets.orchestration.instance import command_instance
            from marketdata_assets.orchestration.runs import storage_reachable, sweep

            error = None if self.verbose else storage_reachable()
            if error is not None:
                click.echo(f"FAILED: {error}", err=True)
                self.stack.close()
                raise click.exceptions.Exit(STORAGE_DOWN_EXIT)
            self.stack.enter_context(storage_watch(enabled=not self.verbose))
            self._instance = self.stack.enter_context(command_instance())
            line = swept_line(*sweep(self._instance))
            if line:
                click.echo(line, err=True)
        return self._instance

    def run(
        self,
        label: str,
        assets: list,
        *,
        tags: dict | None = None,
        partition_key=None,
        run_config=None,
        expected: int = 1,
    ) -> None:
        from marketdata_assets.apps.launch import Interrupted, launch

        instance = self.instance()  # a stopped storage is said before the definitions load (seconds)
        defs = self.definitions()
        with work_bar(label, expected) as on_event:
            try:
                outcome = launch(
                    label,
                    assets,
                    instance=instance,
                    resources=defs.resources or {},
                    tags={"marketdata/launched_by": "marketdata CLI", **(tags or {})},
                    partition_key=partition_key,
                    run_config=run_config,
                    on_event=on_event,
                    verbose=self.verbose,
                )
            except Interrupted as interrupted:
                click.echo(f"\n{interrupted}", err=True)
                self.stack.close()
                raise click.exceptions.Exit(130) from None
        click.echo(outcome.line())
        self.outcomes.append(outcome)

    def finish(self) -> int:
        from marketdata_assets.apps.launch import exit_code, summary

        self.stack.close()
        if len(self.outcomes) > 1:
            click.echo(summary(self.outcomes))
        failed = [o for o in self.outcomes if not o.success]
        for outcome in failed:
            fallback = (
                f"FAILED: {outcome.label}: partitions {', '.join(outcome.partitions) or '-'}; "
                f"see run {outcome.run_id} in the UI"
            )
            for line in outcome.error_lines() or [fallback]:
                click.echo(line, err=True)
        if failed:
            note = f" ({self.retry_note})" if self.retry_note else ""
            click.echo(f"to retry: run the same command again{note}", err=True)
        return exit_code(self.outcomes)


@contextmanager
def work_bar(label: str, expected: int = 1) -> Iterator[Callable[[str, object], None]]:
    """A progress bar on stderr for the work done inside the block (`_bar_listeners`); yields what takes a
    run's events (its warnings printed above the bar, its materializations counted until work reports)."""
    with click.progressbar(length=max(expected, 1), label=label, file=sys.stderr, show_pos=True) as bar:
        on_event, on_progress = _bar_listeners(bar, label, expected)
        with progress.listening(on_progress):
            yield on_event


def _bar_listeners(bar, label: str, expected: int):
    """What moves a run's bar: the work its steps report done of their known total (core.progress: an ingest
    feed's slices, an import's or a load's files), summed over the pieces in the unit reported last, once any
    reports; until then its partitions materialized, of `expected`. A warning of the run is printed above the
    bar (the line cleared, the bar drawn again below it), not into it."""
    pieces: dict[str, tuple[int, int, str]] = {}
    seen: set = set()
    lock, tty = threading.Lock(), sys.stderr.isatty()

    def move(done: int, total: int, unit: str) -> None:
        if bar.label != f"{label} ({unit})":  # another unit: its own count and rate from 0
            bar.label, bar.pos, bar.finished, bar.start, bar.avg = (
                f"{label} ({unit})",
                0,
                False,
                time.time(),
                [],
            )
        bar.length = max(total, 1)
        if done > bar.pos:
            bar.update(done - bar.pos)

    def on_progress(what: str, done: int, total: int, unit: str) -> None:
        with lock:
            pieces[what] = (done, total, unit)
            mine = [(d, t) for d, t, u in pieces.values() if u == unit]
            move(sum(d for d, _ in mine), sum(t for _, t in mine), unit)

    def on_event(what: str, event) -> None:
        with lock:
            if what == "warning":  # on a terminal: the bar's line cleared, the warning, the bar drawn again
                click.echo(f"\r\x1b[K{event}" if tty else event, file=sys.stderr)
                bar.render_progress()
            elif what == "materialization" and not pieces:
                seen.add((event.asset_key, event.partition))
                move(min(len(seen), expected), expected, "partitions")

    return on_event, on_progress


def run_range(
    session: Session,
    label: str,
    assets: list,
    keys: list[str],
    run_config: dict | None = None,
    *,
    per_key: int = 1,
) -> None:
    """One run over the partition keys first..last (the assets' single-run backfill policy)."""
    session.run(
        label, assets, tags=range_tags(keys[0], keys[-1]), run_config=run_config, expected=per_key * len(keys)
    )


def assets_named(defs: dg.Definitions, *names: str) -> list:
    """The assets holding `names`, with their checks."""
    from marketdata_assets.apps.main import checks_of

    keys = {dg.AssetKey(name) for name in names}
    chosen = [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition) and keys & set(a.keys)]
    return chosen + checks_of(defs, chosen)


def upstream(defs: dg.Definitions, assets: list) -> list:
    """Source stand-ins for what `assets` depend on outside themselves (not rematerialized)."""
    inside = {key for a in assets if isinstance(a, dg.AssetsDefinition) for key in a.keys}
    deps = {dep for a in assets if isinstance(a, dg.AssetsDefinition) for dep in a.dependency_keys} - inside
    return [
        a.to_source_asset(key)
        for a in defs.assets or []
        if isinstance(a, dg.AssetsDefinition)
        for key in a.keys
        if key in deps
    ]


def selection(defs: dg.Definitions, *names: str) -> list:
    """The assets holding `names` with their checks, and stand-ins for what they depend on."""
    chosen = assets_named(defs, *names)
    return chosen + upstream(defs, chosen)


def months_between(start: datetime | None, end: datetime | None, tz: str) -> list[str]:
    """Month partition keys from start to end (default: the last complete month in `tz`)."""
    if start is None:
        first_of_this = datetime.now(ZoneInfo(tz)).date().replace(day=1)
        start = end = datetime.combine(first_of_this - timedelta(days=1), datetime.min.time())
    end = end or start
    if end < start:
        raise click.BadParameter("the end month is before the start month")
    keys, month = [], date(start.year, start.month, 1)
    while month <= date(end.year, end.month, 1):
        keys.append(f"{month:%Y-%m-%d}")
        month = date(month.year + month.month // 12, month.month % 12 + 1, 1)
    return keys


def days_between(
    partitions_def, start: datetime, end: datetime, what: str = "", first: str = ""
) -> list[str]:
    """The day partition keys from start to end; none is a usage error saying why: the range is before the
    first partition (`first`: the config key that sets it), after today, today (not over yet), or has only
    days the calendar excludes. `what`: the domain the message names."""
    keys = [k for k in partitions_def.get_partition_keys() if f"{start:%Y-%m-%d}" <= k <= f"{end:%Y-%m-%d}"]
    if keys:
        return keys
    span = f"{start:%Y-%m-%d}" + (f"..{end:%Y-%m-%d}" if end.date() != start.date() else "")
    partition = f"{what} partition" if what else "partition"
    today = datetime.now(ZoneInfo(partitions_def.timezone)).date()
    if end.date() < (first_day := partitions_def.start.date()):
        where = f" ({first})" if first else ""
        raise click.BadParameter(f"{span} is before the first {partition}, {first_day}{where}")
    if start.date() > today:
        raise click.BadParameter(f"{span} is after today ({today}): no {partition} yet")
    if start.date() == today and partitions_def.end_offset < 1:  # today's partition exists once it is over
        raise click.BadParameter(
            f"{span} is today ({partitions_def.timezone}): no {partition} until the day is over"
        )
    raise click.BadParameter(f"no partition between {start:%Y-%m-%d} and {end:%Y-%m-%d} (weekdays only)")


def finish(ctx: click.Context) -> None:
    """End the command with its session's exit code (1 when a run failed, else 4 when one stored a partial
    result)."""
    ctx.exit(ctx.obj.finish())
