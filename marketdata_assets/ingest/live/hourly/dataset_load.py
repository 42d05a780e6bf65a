"""The batch side of live capture for the datasets other than trades: closed landing hours loaded
into the dataset's day slices through the ingest engine, as the trades are (ingest/live/hourly/load.py; no
Dagster here, defs/live calls it). One loader, parameterised by dataset.

What is read, deduplication, discards and the slice: docs/live-loads.md, "Other live datasets in
ClickHouse".
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl

from marketdata_assets.core.http import SourceDataError
from marketdata_assets.datasets.frames import day_window, spec_for
from marketdata_assets.datasets.slices import Job, SliceKey
from marketdata_assets.datasets.wire import drop_implausible, note_dropped
from marketdata_assets.ingest.live.hourly.dataset_rows import (
    BARS_1M,
    CHANNELS,
    MARK_FUNDING,
    SOURCES,
    VenueDataset,
    own_messages,
    protocol,
)
from marketdata_assets.ingest.live.hourly.landing_hours import (
    CLAIM,
    HourFigures,
    HourlyLoad,
    LandingReader,
    file_hour,
    first_copy,
    hour_slices,
    hours_of_day,
    note_hour_drops,
)
from marketdata_assets.ingest.live.hourly.trade_frames import sized_at_hour
from marketdata_assets.sources.stream import MALFORMED
from marketdata_assets.stores.landing import closed_files

HOUR = "__landing_hour"  # a row's landing hour while a slice is read (each hour's share of the slice)


def venue_dataset(dataset: str, venue: str) -> VenueDataset:
    """What a venue lands of a live dataset; ValueError if it lands none."""
    venues = CHANNELS.get(dataset)
    if venues is None:
        raise ValueError(f"{dataset!r} is no live dataset loaded here (datasets: {', '.join(CHANNELS)})")
    if venue not in venues:
        raise ValueError(f"no live {dataset} of venue {venue} (venues: {', '.join(venues)})")
    return venues[venue]


class MessageReader(LandingReader):
    """Reads an instrument's channels of one dataset: each message id once, every frame that adds
    nothing counted on the hour of its file with the reason."""

    def __init__(
        self, dataset: str, venue: str, instrument: str, figures: dict[str, HourFigures], service=None
    ):
        super().__init__(figures)
        self.dataset, self.venue, self.instrument = dataset, venue, instrument
        self.spec = venue_dataset(dataset, venue)
        self.protocol = protocol(venue, service)  # sized by the run's instrument service
        self.spec.prepare(instrument, self.protocol)  # a contract it cannot size fails the slice, naming it
        self.seen: dict[str, tuple] = {}
        self.rows: list[dict[str, Any]] = []
        self.hours: list[str] = []  # the landing hour of each row

    def _messages(self, record: dict) -> list | str:
        """The frame's messages, or the reason it is discarded."""
        if self.spec.own_records:
            try:
                return own_messages(record, self.venue)
            except (ValueError, TypeError, KeyError):
                return "bad_frame"
        try:
            decoded = self.protocol.decode(record["d"])
        except (ValueError, TypeError, KeyError):
            return "bad_frame"
        if decoded.kind != "event":
            return "not_an_event"
        try:
            return self.protocol.messages(decoded, int(record["t"]))
        except MALFORMED:
            return "bad_frame"

    def _frame(self, record: dict, figures: HourFigures) -> str | None:
        messages = self._messages(record)
        if isinstance(messages, str):
            return messages
        mine = [m for m in messages if m.dataset in self.spec.mappers]
        if not mine:
            return "unconfirmed" if self.dataset == BARS_1M else "no_message"
        ours = [m for m in mine if m.instrument == self.instrument]
        if not ours:
            return "other_instrument"
        if len(mine) > len(ours):
            figures.discarded["other_instrument"] += len(mine) - len(ours)
        try:
            made = [(m, self._rows(m)) for m in ours]
        except (
            KeyError,
            TypeError,
            ValueError,
            IndexError,
            SourceDataError,
        ):  # the last: a REST parser's refusal
            return "bad_frame"
        for message, rows in made:
            self._keep(message, rows, figures, record)
        return None

    def _rows(self, message) -> list[dict]:
        return self.spec.mappers[message.dataset](json.loads(message.payload), self.protocol, self.instrument)

    def _keep(self, message, rows: list[dict], figures: HourFigures, record: dict) -> None:
        """A message's rows (a book snapshot has many), kept the first time its id is read."""
        received = message.event_ms is None  # ts is the receive time: not part of what must agree
        values = tuple(tuple(v for k, v in row.items() if not (received and k == "ts")) for row in rows)
        if not first_copy(
            self.seen, message.msg_id, values, f"{self.venue}:{self.instrument} {self.dataset} message"
        ):
            figures.discarded["duplicates"] += 1
            return
        self.rows.extend(rows)
        self.hours += [figures.hour] * len(rows)
        figures.trades += len(rows)
        if message.event_ms is not None:
            figures.lags_ms.append(record["t"] / 1e6 - message.event_ms)

    def frame(self) -> pl.DataFrame:
        """The rows kept, as the dataset's stored frame (mark_funding: one row per ts, merged), and `HOUR`:
        the landing hour of each (a merged row's: its first message's)."""
        spec = spec_for(self.dataset)
        fields = [name for name in spec.schema if name not in ("venue", "instrument")]
        times = [name for name, dtype in spec.schema.items() if dtype == pl.Datetime("us", "UTC")]
        frame = pl.DataFrame(
            self.rows,
            schema={name: pl.Int64 if name in times else spec.schema[name] for name in fields},
            orient="row",
        )
        frame = frame.with_columns(
            *(pl.col(name).cast(spec.schema[name]) for name in times),
            pl.Series(HOUR, self.hours, dtype=pl.String),
            venue=pl.lit(self.venue),
            instrument=pl.lit(self.instrument),
        )
        if self.dataset == MARK_FUNDING:
            frame = frame.group_by("ts", "venue", "instrument", maintain_order=True).agg(
                *(pl.col(name).drop_nulls().first() for name in fields if name != "ts"), pl.col(HOUR).first()
            )
        return frame.select(*spec.schema, HOUR)


def day_files(root: Path, dataset: str, venue: str, instrument: str, day: date) -> list[Path]:
    """The closed files of the instrument's channels of the dataset in the hours of `day`, in order."""
    spec, hours = venue_dataset(dataset, venue), set(hours_of_day(day))
    return sorted(
        (
            path
            for channel in spec.channel_names(instrument)
            for path in closed_files(root, venue, channel)
            if file_hour(path) in hours
        ),
        key=lambda p: (file_hour(p), p.name),
    )


def read_day(
    root: Path, key: SliceKey, figures: dict[str, HourFigures] | None = None, service=None
) -> pl.DataFrame:
    """The slice's rows from its closed landing files: each message once, inside the day, ordered,
    implausible times dropped; what was discarded counted on `figures` (hour -> HourFigures) and, for
    the day's own hours, on the running fetch's notes (the slice's ingest_log `dropped`)."""
    figures = {} if figures is None else figures
    paths = day_files(root, key.dataset, key.venue, key.instrument, key.day)
    if not paths:
        raise FileNotFoundError(
            f"{key.venue}:{key.instrument} {key.day}: no closed landing file of the {key.dataset} "
            f"channels {venue_dataset(key.dataset, key.venue).channel_names(key.instrument)} in "
            f"its hours under {root}"
        )
    reader = MessageReader(key.dataset, key.venue, key.instrument, figures, service)
    for path in paths:  # each hour sized by the reference data valid then (a protocol of the reader's own)
        sized_at_hour(reader.protocol, path)
        reader.read(path)
    note_hour_drops(figures, key.instrument, key.day)
    drops: Counter = Counter()
    frame, _ = drop_implausible(reader.frame(), drops)  # before the day: a 1970 stamp is no neighbour's row
    for reason, count in drops.items():
        note_dropped(key.instrument, reason, count, key.day)
    start, end = day_window(key.day)
    frame = frame.filter((pl.col("ts") >= start) & (pl.col("ts") < end))
    for hour, rows in frame.group_by(HOUR).len().iter_rows():  # each hour's share of the stored slice
        figures.setdefault(hour, HourFigures(hour)).stored += rows
    return frame.drop(HOUR).sort(
        [c for c in spec_for(key.dataset).order_by if c not in ("venue", "instrument")]
    )


@dataclass
class LiveDatasetLoad(HourlyLoad):
    """The engine feeds of a run's slices of one dataset from the landing root (each venue's rows logged
    under its live source `<VENUE>_LIVE`)."""

    def source_of(self, venue: str):
        return SOURCES[venue]

    async def _fetch(self, api: Any, job: Job) -> pl.DataFrame:
        (key,) = job.keys
        with CLAIM:
            figures = self.figures.setdefault((key.venue, key.instrument), {})
        return await asyncio.to_thread(read_day, self.root, key, figures, self.service)


def dataset_slices(dataset: str, hours: Iterable[str], pairs: Iterable[tuple[str, str]]) -> list[SliceKey]:
    """The (dataset, venue, instrument, day) slices that loading `hours` (landing hour keys) of the
    (venue, instrument) `pairs` rewrites; ValueError for a venue that lands no such dataset."""
    days = sorted({day for hour in hours for day in hour_slices(hour)})
    pairs = list(dict.fromkeys(pairs))
    for venue, _ in pairs:
        venue_dataset(dataset, venue)
    return [SliceKey(dataset, venue, instrument, day) for venue, instrument in pairs for day in days]
