"""Runs over day x instrument partitions: (first day, last day, first instrument, last instrument)
ranges that cover exactly a set of (day, instrument) pairs, so a catch-up or a sensor asks for few
runs (a Dagster run's partitions are one range) and never for a pair it does not mean."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, timedelta


def instrument_blocks(order: Sequence[str], affected: Iterable[str]) -> list[tuple[str, str]]:
    """Maximal runs of consecutive `order` entries that are all affected: (first, last) each."""
    affected = set(affected)
    blocks, start, last = [], None, None
    for key in order:
        if key in affected:
            start = start or key
            last = key
        elif start is not None:
            blocks.append((start, last))
            start = None
    if start is not None:
        blocks.append((start, last))
    return blocks


def range_runs(affected_by_day: dict[date, set[str]], order: Sequence[str]) -> list[tuple[date, date, str, str]]:
    """(first day, last day, first instrument, last instrument) ranges covering exactly the affected
    (day, instrument) pairs: the day's contiguous instrument blocks, consecutive days with the same
    blocks merged."""
    runs: list[list] = []
    open_runs: dict[tuple[str, str], list] = {}
    for day in sorted(d for d, keys in affected_by_day.items() if keys):
        blocks = instrument_blocks(order, affected_by_day[day])
        still_open = {}
        for block in blocks:
            current = open_runs.get(block)
            if current is not None and current[1] == day - timedelta(days=1):
                current[1] = day
            else:
                current = [day, day, *block]
                runs.append(current)
            still_open[block] = current
        open_runs = still_open
    return [tuple(run) for run in runs]
