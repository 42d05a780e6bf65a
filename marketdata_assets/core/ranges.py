"""Runs over instrument partitions: the (first, last) blocks of consecutive partitions that cover
exactly a set of instruments, so a sensor asks for few runs (a Dagster run's partitions are one
range) and never for an instrument it does not mean (the live hours)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


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
