"""The vocabulary of a load: a slice (`SliceKey`), the slices one fetch answers (`Job`), and one
source's work in a run (`Feed`). Sources build feeds, the ingest engine runs them, checks and stores
name slices: the one shape they all share, with no behaviour beyond splitting a batch."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import date
from typing import Any

import polars as pl

from marketdata_assets.core.naming import parse_partition_key


@dataclass(frozen=True, order=True)
class SliceKey:
    """One write unit: a dataset's rows of one instrument of a venue on one UTC day. `venue` may be
    empty until the fetch names it (Yahoo's exchange comes with the answer)."""

    dataset: str
    venue: str
    instrument: str
    day: date

    def __str__(self) -> str:
        return f"{self.venue + ':' if self.venue else ''}{self.instrument} {self.day} {self.dataset}"


def slices_of(partition_keys: Iterable[str], dataset: str) -> list[SliceKey]:
    """The slices of day x instrument partition keys ('YYYY-MM-DD|VENUE:INSTRUMENT') of `dataset`."""
    out = []
    for key in partition_keys:
        day, instrument = str(key).split("|")
        parsed = parse_partition_key(instrument)
        out.append(SliceKey(dataset, parsed.venue, parsed.instrument, date.fromisoformat(day)))
    return out


@dataclass(frozen=True)
class Job:
    """The slices one fetch answers."""

    keys: tuple[SliceKey, ...]
    args: Any = None  # what the fetch needs beyond the keys (a file path, ...)

    def split(self) -> list[Job]:
        """One job per instrument (to find the bad one of a batch)."""
        by_instrument: dict[str, list[SliceKey]] = {}
        for key in self.keys:
            by_instrument.setdefault(key.instrument, []).append(key)
        return [Job(tuple(keys), self.args) for keys in by_instrument.values()]


@dataclass(frozen=True)
class Batches:
    """A fetch of one instrument's slices whose rows are written as they are read (a day of millions of
    trades never whole in memory): `read()` yields frames of the job's days, on the writer thread;
    `close()` runs after, whatever happened."""

    read: Callable[[], Iterator[pl.DataFrame]]
    close: Callable[[], None] = lambda: None


# a frame, a frame + {instrument: venue}, or batches written as they are read
Fetched = pl.DataFrame | tuple[pl.DataFrame, dict[str, str]] | Batches


@dataclass
class Feed:
    """One source's work in a stage."""

    source: str  # the ingest_log `source`
    jobs: list[Job]
    fetch: Callable[[Any, Job], Awaitable[Fetched]]
    client: Callable[[], AbstractAsyncContextManager] | None = None  # None: no HTTP (dump files)
    workers: int = 4
    attempts: int = 2
    by_day: bool = False  # write a (dataset, venue, day) group at once (one pointer flip),
    # not each slice as soon as it is fetched
    append: bool = False  # a write adds to the day's active rows (book snapshots)
    skip_empty_days: bool = False  # no bar for any instrument of a day: not a trading day
    # Sources whose rows the engine reads itself (dump CSVs through ClickHouse's file()): called on
    # the writer thread with the client and the jobs, returns {key: WriteResult or the exception}.
    load: Callable[[Any, list[Job]], dict] | None = None

    def __post_init__(self):
        if self.workers < 1 or self.attempts < 1:
            raise ValueError(f"{self.source}: workers and attempts must be >= 1")
