"""The venues' 24 h volumes, kept point in time: each master refresh takes a snapshot (every instrument's
24 h volume from its venue's ticker endpoint, all stamped with the refresh's time), so a universe rule's
top-N of a past day ranks by what was known then, never by today's volumes.

`pick` says which snapshot a day uses: the latest taken before the day ends (before 00:00 UTC of the next
day: no volume from after the day); a day before the first snapshot has none, and uses the first, marked as
look-ahead. `Volumes` holds the snapshots a resolution read (docs/instruments.md, "Top N by 24 h volume").
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import NamedTuple

import polars as pl

from marketdata_assets.datasets.frames import UTC_US


class Volume(NamedTuple):
    """One instrument's 24 h volume as its venue's ticker endpoint gave it when a snapshot was taken."""

    venue: str  # BINANCE | BINANCE_UM | OKX | DERIBIT
    instrument: str  # the venue's own name
    taken: datetime  # when the snapshot was taken (the refresh's time, one for all its rows)
    quote_volume: float  # the 24 h volume in `unit` (each venue's measure: docs/instruments.md)
    unit: str  # the currency it counts: the quote (USDT, BTC, ...), or USD ("" when unknown)


# The stored snapshots: a row per instrument and snapshot.
SCHEMA: dict[str, pl.DataType] = {
    "venue": pl.Utf8,
    "instrument": pl.Utf8,
    "taken": UTC_US,
    "quote_volume": pl.Float64,
    "unit": pl.Utf8,
}


def frame(volumes: Iterable[Volume]) -> pl.DataFrame:
    """Volumes as the stored snapshots' rows (`SCHEMA`)."""
    rows = [v._asdict() for v in volumes]
    return pl.DataFrame(rows, schema=SCHEMA, orient="row") if rows else pl.DataFrame(schema=SCHEMA)


def from_frame(rows: pl.DataFrame) -> list[Volume]:
    return [Volume(**row) for row in rows.iter_rows(named=True)]


def day_end(day: date) -> datetime:
    """The end of a UTC day: 00:00 UTC of the next day (a snapshot taken then belongs to the next day)."""
    return datetime.combine(day + timedelta(days=1), datetime.min.time(), UTC)


def pick(times: list[datetime], day: date) -> tuple[datetime, bool] | None:
    """The snapshot `day` uses of those taken at `times` (sorted): the latest taken before the day ends, or,
    for a day before the first snapshot, the first (True: taken after the day, a look-ahead); None if none."""
    if not times:
        return None
    at = bisect.bisect_left(times, day_end(day))
    return (times[at - 1], False) if at else (times[0], True)


class Snapshot(NamedTuple):
    """The volumes a day ranks by: the snapshot's time, whether it was taken after the day, its volumes."""

    taken: datetime
    look_ahead: bool
    volumes: dict[str, Volume]  # instrument -> its volume


class Volumes:
    """Snapshots of some venues: every snapshot time (`times`, venue -> times) and the rows of those read.
    `for_day` gives the snapshot a day uses; one whose rows were not read is an error, never a guess."""

    def __init__(self, rows: Iterable[Volume] = (), times: Mapping[str, Iterable[datetime]] | None = None):
        self.rows: dict[tuple[str, datetime], dict[str, Volume]] = {}
        for row in rows:
            self.rows.setdefault((row.venue, row.taken), {})[row.instrument] = row
        known = {venue: set(t) for venue, t in (times or {}).items()}
        for venue, taken in self.rows:
            known.setdefault(venue, set()).add(taken)
        self.times = {venue: sorted(t) for venue, t in known.items()}

    def for_day(self, venue: str, day: date) -> Snapshot | None:
        """The snapshot of `venue` that `day` uses (`pick`), or None if the venue has none."""
        chosen = pick(self.times.get(venue, []), day)
        if chosen is None:
            return None
        taken, look_ahead = chosen
        if (venue, taken) not in self.rows:
            raise KeyError(
                f"the {venue} volume snapshot of {taken:%Y-%m-%d %H:%M} UTC (for {day}) was not read"
            )
        return Snapshot(taken, look_ahead, self.rows[(venue, taken)])


def needed(times: Mapping[str, list[datetime]], days: Iterable[date]) -> dict[str, set[datetime]]:
    """Venue -> the snapshot times `days` use (what a resolution of those days has to read)."""
    days = list(days)
    out: dict[str, set[datetime]] = {}
    for venue, taken in times.items():
        out[venue] = {chosen[0] for day in days if (chosen := pick(sorted(taken), day)) is not None}
    return out


__all__ = ["SCHEMA", "Snapshot", "Volume", "Volumes", "day_end", "frame", "from_frame", "needed", "pick"]
