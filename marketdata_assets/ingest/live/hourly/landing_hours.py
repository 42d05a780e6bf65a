"""What every hourly live load shares (trades: load.py; the other datasets: dataset_load.py): the
landing files' hour keys, which hours feed a UTC day slice, and the reading of a channel's closed
files record by record with each landing hour's figures (frames, what was kept, what was discarded
and why, markers by kind, lag, a crash's recovered files).

Why a module of its own: the trades loader and the datasets' loader read the same files the same
way (one file counted once per run, markers are records not frames, a file's hour is its receive
hour); only what a frame holds differs, which each reader says in its `_frame`.
"""

from __future__ import annotations

import json
import statistics
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from marketdata_assets.core.landing_files import read_bytes
from marketdata_assets.datasets.slices import Feed, Job, SliceKey
from marketdata_assets.datasets.wire import note_dropped
from marketdata_assets.stores.landing import read_lines, record
from marketdata_assets.stores.landing.writer import SUMMARY

HOUR_FORMAT = "%Y-%m-%dT%HZ"  # the landing files' hour key
CLAIM = threading.Lock()


def hour_key(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(HOUR_FORMAT)


def parse_hour(key: str) -> datetime:
    return datetime.strptime(key, HOUR_FORMAT).replace(tzinfo=UTC)


def hours_of_day(day: date) -> list[str]:
    """The landing hours that can hold the day's events: 23Z of the day before to 00Z of the next."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC) - timedelta(hours=1)
    return [hour_key(start + timedelta(hours=h)) for h in range(26)]


def hour_slices(hour: str) -> list[date]:
    """The days a landing hour's events belong to (its day; also the day before for 00Z)."""
    moment = parse_hour(hour)
    return [(moment - timedelta(hours=1)).date(), moment.date()] if moment.hour == 0 else [moment.date()]


def file_hour(path: Path) -> str:
    return path.name.split(".", 1)[0]


def own_hours(day: date) -> set[str]:
    """The day's own 24 landing hours (their discards go to the slice's ingest_log `dropped`)."""
    return set(hours_of_day(day)[1:25])


def first_copy(seen: dict, key: str, values: tuple, what: str) -> bool:
    """True the first time `key` (a trade id, a message id) is read (`seen` keeps its values); False
    for a copy with the same values (one of `duplicates`); ValueError for one with different values
    (it fails the slice: which copy is right is not ours to guess)."""
    previous = seen.get(key)
    if previous is None:
        seen[key] = values
        return True
    if previous != values:
        raise ValueError(f"{what} {key} landed twice with different values: {previous} and {values}")
    return False


def note_hour_drops(figures: dict[str, HourFigures], instrument: str, day: date) -> None:
    """The discards of the day's own hours on the running fetch's notes (the slice's ingest_log `dropped`)."""
    own = own_hours(day)
    for hour, hour_figures in figures.items():
        if hour in own:
            for reason, count in hour_figures.discarded.items():
                note_dropped(instrument, reason, count, day)


@dataclass
class HourFigures:
    """What one landing hour of a channel held: files, frames, trades (the rows kept: trades, or
    another dataset's rows), what was discarded and why, markers by kind, the lag exchange time ->
    receive time, and its files' summaries."""

    hour: str
    files: list[str] = field(default_factory=list)
    frames: int = 0
    trades: int = 0  # rows kept (each trade id / message id once)
    stored: int = (
        0  # of those, rows of the stored slice (a live dataset's: merged, inside its day, plausible)
    )
    discarded: Counter = field(default_factory=Counter)
    markers: Counter = field(default_factory=Counter)
    lags_ms: list[float] = field(default_factory=list)
    recovered: int = 0  # files a crash left, closed by recover()
    torn_dropped: int = 0  # lines the crash tore (lost before this loader)

    def lag_ms(self, q: float) -> float | None:
        if not self.lags_ms:
            return None
        if len(self.lags_ms) == 1:
            return round(self.lags_ms[0], 3)
        return round(statistics.quantiles(self.lags_ms, n=100, method="inclusive")[int(q * 100) - 1], 3)

    def metadata(self) -> dict[str, Any]:
        return {
            "hour": self.hour,
            "files": len(self.files),
            "frames": self.frames,
            "trades": self.trades,
            "discarded": sum(self.discarded.values()),
            "discarded_by_reason": dict(sorted(self.discarded.items())),
            "markers": dict(sorted(self.markers.items())),
            "disconnects": self.markers.get("disconnect", 0),
            "gaps": self.markers.get("gap", 0),
            "overflows": self.markers.get("overflow", 0),
            "connects": self.markers.get("connect", 0),
            "recovered_files": self.recovered,
            "torn_lines": self.torn_dropped,
            "lag_p50_ms": self.lag_ms(0.5),
            "lag_p95_ms": self.lag_ms(0.95),
        }


def summary(path: Path) -> dict:
    """A closed file's summary (`<name>.json`), {} if it has none."""
    side = path.with_name(path.name + SUMMARY)
    try:
        return json.loads(read_bytes(side))  # never through a symbolic link (LinkRefused: an OSError)
    except (OSError, ValueError):
        return {}


def landing_record(line: bytes) -> dict | None:
    """A landing line's record: a JSON object with its receive time `t` (ns); None if it is not one."""
    try:
        found = record(line)
    except ValueError:
        return None
    return found if isinstance(found, dict) and type(found.get("t")) is int else None


class LandingReader:
    """Reads a channel's closed files, oldest first: markers counted by kind, each frame handed to
    `_frame(record, figures)` (None: kept; else the reason it is discarded), all on the hour of its
    file (`figures`: hour -> HourFigures)."""

    def __init__(self, figures: dict[str, HourFigures]):
        self.figures = figures

    def read(self, path: Path) -> None:
        with CLAIM:  # one reader counts a file (two slices of a run read the edge hours: workers > 1)
            figures = self.figures.setdefault(file_hour(path), HourFigures(file_hour(path)))
            if path.name in figures.files:  # counted by another slice's read of this run
                figures = HourFigures(figures.hour)
            figures.files.append(path.name)
        about = summary(path)
        figures.recovered += bool(about.get("recovered"))
        figures.torn_dropped += int(about.get("torn_dropped") or 0)
        for line in read_lines(path):
            record = landing_record(line)
            if record is None:  # a closed file holds whole lines: one that is no record is counted, not fatal
                figures.discarded["bad_line"] += 1
                continue
            if "m" in record:
                figures.markers[record["m"]] += 1
                continue
            figures.frames += 1
            reason = self._frame(record, figures)
            if reason:
                figures.discarded[reason] += 1

    def _frame(self, record: dict, figures: HourFigures) -> str | None:
        raise NotImplementedError


@dataclass
class HourlyLoad:
    """What the hourly loads share: the landing root, the run's slices, what each hour read held ((venue,
    instrument) -> hour -> HourFigures, after the run), the run's instrument service (contract sizes;
    None: one of the load's own), and one engine feed per venue, one job a slice. A load says which
    source each venue's rows are logged under (`source_of`) and reads one slice (`_fetch`)."""

    root: Path
    slices: list[SliceKey]
    figures: dict[tuple[str, str], dict[str, HourFigures]] = field(default_factory=dict)
    service: Any = None

    def source_of(self, venue: str) -> Any:
        raise NotImplementedError

    async def _fetch(self, api: Any, job: Any) -> Any:
        raise NotImplementedError

    def feeds(self, workers: int = 1, attempts: int = 1) -> list[Feed]:
        """One feed per venue, one job a slice; `workers` slices read at once (threads), each tried
        `attempts` times."""
        venues = dict.fromkeys(key.venue for key in self.slices)
        return [
            Feed(
                self.source_of(venue),
                [Job((key,)) for key in dict.fromkeys(self.slices) if key.venue == venue],
                fetch=self._fetch,
                client=None,
                workers=workers,
                attempts=attempts,
            )
            for venue in venues
        ]
