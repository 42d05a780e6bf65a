"""The batch side of live capture: closed landing hours of live trades (the venues of `LIVE_VENUES`)
loaded into the `trades` day slices through the ingest engine (no Dagster here; defs/live calls it).

A load rewrites a day slice from every closed file of its hours (idempotent, exact), keeping what the
trade-id refill added. What is read, discarded and kept, and the cost: docs/live-loads.md, "The
batch side: hourly live loads (Dagster)".
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import polars as pl

from marketdata_assets.core.identifiers import clickhouse_database
from marketdata_assets.core.landing_files import LinkRefused, scan
from marketdata_assets.datasets.frames import day_window, spec_for
from marketdata_assets.datasets.instrument_service import InstrumentService
from marketdata_assets.datasets.normalized import Trade, trade_values, trades_frame
from marketdata_assets.datasets.slices import Feed, Job, SliceKey
from marketdata_assets.datasets.wire import finish_trades, note_dropped
from marketdata_assets.ingest.instruments import ClickHouseMaster, instrument_service
from marketdata_assets.ingest.live.hourly.landing_hours import (  # noqa: F401 (hour helpers, read by defs/live from here)
    CLAIM,
    UTC,
    HourFigures,
    HourlyLoad,
    LandingReader,
    file_hour,
    first_copy,
    hour_key,
    hour_slices,
    hours_of_day,
    landing_record,
    note_hour_drops,
    parse_hour,
    summary,
)
from marketdata_assets.ingest.live.hourly.trade_frames import (
    LIVE_SOURCES,
    LIVE_VENUES,
    VENUE,
    LiveVenue,
    referenced,
    sized_at_hour,
)
from marketdata_assets.stores.clickhouse import tables
from marketdata_assets.stores.landing import closed_files, read_lines


def trade_channel(instrument: str, venue: str = VENUE) -> str:
    """The landing channel of an instrument's trades (the collector lands each stream under its name)."""
    return LIVE_VENUES[venue].trade_channel(instrument)


def instrument_of_channel(channel: str, venue: str = VENUE) -> str | None:
    """The instrument of a trade channel (`btcusdt@trade` -> BTCUSDT); None for another channel."""
    return LIVE_VENUES[venue].instrument_of_channel(channel)


# --------------------------------------------------------------------------------------------
# Reading a channel's records (what a frame holds: trade_frames.py)
# --------------------------------------------------------------------------------------------


class ChannelReader(LandingReader):
    """Reads one instrument's trade channel, file by file, oldest first: each trade id once (the first
    frame that carries it), everything else counted on the hour of its file (`figures`)."""

    def __init__(
        self,
        instrument: str,
        figures: dict[str, HourFigures],
        venue: str = VENUE,
        service: InstrumentService | None = None,
    ):
        super().__init__(figures)
        self.instrument, self.venue = instrument, LiveVenue(venue, referenced(venue, service))
        self.seen: dict[str, tuple] = {}
        self.trades: list[Trade] = []

    def _frame(self, record: dict, figures: HourFigures) -> str | None:
        """Keep the frame's trades; the reason it is discarded otherwise (a trade seen before counts
        as one of `duplicates`; one id with different values fails the slice)."""
        text = record.get("d")
        rows = self.venue.trades(text, self.instrument, record["t"]) if isinstance(text, str) else "bad_frame"
        if isinstance(rows, str):
            return rows
        kept = 0
        for t in rows:
            if not first_copy(
                self.seen, t.trade_id, trade_values(t), f"{self.venue.venue}:{self.instrument} trade id"
            ):
                figures.discarded["duplicates"] += 1
                continue
            self.trades.append(t)
            kept += 1
            figures.lags_ms.append(record["t"] / 1e6 - t.event_ms)
        figures.trades += kept
        return None if rows else "not_a_trade"

    def frame(self) -> pl.DataFrame:
        return trades_frame(self.trades)


def day_files(root: Path, instrument: str, day: date, venue: str = VENUE) -> list[Path]:
    """The closed files of the instrument's trade channel in the hours of `day` (`hours_of_day`), in order."""
    hours = set(hours_of_day(day))
    return [
        path
        for path in closed_files(root, venue, trade_channel(instrument, venue))
        if file_hour(path) in hours
    ]


def capture_start(
    root: Path, venue: str, instrument: str, day: date, service: InstrumentService | None = None
) -> tuple[int, datetime] | None:
    """When the capture that `day`'s slice comes from began: (the first trade id it landed, the receive
    time of the first record of its earliest file) from the instrument's closed trade files of the day's
    hours (`hours_of_day`: from 23Z the day before, so a capture running over midnight began the day
    before); None without a landed trade. The ids below it were never the capture's to land."""
    began, spec = None, LiveVenue(venue, referenced(venue, service))
    for path in day_files(root, instrument, day, venue):
        sized_at_hour(spec.protocol, path)  # as read_day sizes it (a protocol of its own: no reset needed)
        for line in read_lines(path):
            record = landing_record(line)
            if record is None:
                continue
            began = began or datetime.fromtimestamp(record["t"] / 1e9, UTC)
            text = record.get("d")
            rows = spec.trades(text, instrument, record["t"]) if isinstance(text, str) else "marker"
            ids = [] if isinstance(rows, str) else [t.seq for t in rows if t.seq is not None]
            if ids:
                return min(ids), began
    return None


def capture_starts(
    client, database: str, root: Path, slices: Iterable[SliceKey]
) -> dict[SliceKey, tuple[int, datetime]]:
    """`capture_start` of each live trades slice that has one; the frames sized by the stored master,
    as the hourly load sizes them (the load stored what it looked up)."""
    slices = [key for key in slices if key.venue in LIVE_VENUES]
    service = instrument_service(ClickHouseMaster.of(client, database), {key.venue for key in slices})
    out = {}
    for key in slices:
        if key.venue in LIVE_VENUES:
            found = capture_start(root, key.venue, key.instrument, key.day, service)
            if found is not None:
                out[key] = found
    service.keep()
    return out


def read_day(
    root: Path,
    instrument: str,
    day: date,
    figures: dict[str, HourFigures] | None = None,
    venue: str = VENUE,
    stored: pl.DataFrame | None = None,
    kept: Counter | None = None,
    origins: dict[str, list[int]] | None = None,
    service: InstrumentService | None = None,
) -> pl.DataFrame:
    """The day's trades of an instrument from its closed landing files (plus the `stored` trades
    whose ids they lack: a refill's): each trade id once, ordered, implausible times dropped; what
    was discarded counted on `figures` (hour -> HourFigures) and, for the day's own hours, on the
    running fetch's notes (the slice's ingest_log `dropped`); `kept` counts `kept_from_store`;
    `origins` gets, per hour of the trades' time, [trades from the landing, trades from the store]."""
    figures = {} if figures is None else figures
    paths = day_files(root, instrument, day, venue)
    if not paths:
        raise FileNotFoundError(
            f"{venue}:{instrument} {day}: no closed landing file of channel "
            f"{trade_channel(instrument, venue)} in its hours under {root}"
        )
    reader = ChannelReader(instrument, figures, venue, service)
    for path in paths:  # each hour sized by the reference data valid then (`service`: the run's)
        sized_at_hour(reader.venue.protocol, path)
        reader.read(path)
    note_hour_drops(figures, instrument, day)
    start, end = day_window(day)
    frame = reader.frame()
    frame = frame.filter((pl.col("ts") >= start) & (pl.col("ts") < end))
    if stored is not None and stored.height:
        extra = stored.filter(~pl.col("trade_id").is_in(frame["trade_id"].implode())).select(frame.columns)
        frame = pl.concat([frame, extra], how="vertical")
        if kept is not None:
            kept["kept_from_store"] += extra.height
    else:
        extra = None
    drops: Counter = Counter()
    frame = finish_trades([frame], drops=drops)
    for reason, count in drops.items():
        note_dropped(instrument, reason, count, day)
    if origins is not None:
        count_origins(frame, set() if extra is None else set(extra["trade_id"]), origins)
    return frame


def count_origins(frame: pl.DataFrame, refilled: set[str], origins: dict[str, list[int]]) -> None:
    """Per hour of the trades' time: [from the landing files, from the store (a refill)]."""
    counted = (
        frame.select(
            pl.col("ts").dt.truncate("1h").alias("hour"),
            pl.col("trade_id").is_in(sorted(refilled)).alias("refill"),
        )
        .group_by("hour", "refill")
        .len()
    )
    for hour, refill, n in counted.iter_rows():
        moment = hour if hour.tzinfo else hour.replace(tzinfo=UTC)
        origins.setdefault(hour_key(moment), [0, 0])[int(refill)] += n


def book_gaps(root: Path, venue: str, instrument: str, hour: str) -> list[dict[str, Any]]:
    """The `gap` markers of an instrument's book channels in one landing hour (closed files), oldest
    first: receive time, channel, connection and the marker's details (cause, ids). A file whose
    summary counts no gap is not read (a book channel's hour is its largest file)."""
    spec, out = LIVE_VENUES[venue], []
    venue_dir = Path(root) / venue
    try:
        channels = scan(venue_dir, root).dirs  # a link is never entered
    except LinkRefused:
        channels = []
    for channel in (c for c in channels if spec.is_book_channel(c, instrument)):
        for path in closed_files(root, venue, channel, hour):
            if summary(path).get("markers", {"gap": 1}).get("gap", 0) == 0:
                continue  # its summary counts no gap: the (large) book file is not read
            for line in read_lines(path):
                if b'"gap"' not in line:
                    continue
                record = landing_record(line)  # None: a damaged line (the book's loads count it)
                if record is not None and record.get("m") == "gap":
                    at = datetime.fromtimestamp(record["t"] / 1e9, UTC).isoformat(timespec="milliseconds")
                    out.append(
                        {
                            "at": at,
                            "channel": channel,
                            "connection": record.get("c"),
                            **(record.get("x") or {}),
                        }
                    )
    return out


@dataclass
class LiveTradesLoad(HourlyLoad):
    """The engine feeds of a run's trade slices from the landing root (each venue's rows logged under its
    live source)."""

    stored: dict[SliceKey, pl.DataFrame] = field(default_factory=dict)  # stored_live_rows()
    kept: dict[SliceKey, int] = field(default_factory=dict)  # stored trades kept: ids no file holds
    origins: dict[tuple[str, str], dict[str, list[int]]] = field(default_factory=dict)  # count_origins

    def source_of(self, venue: str):
        return LIVE_VENUES[venue].source

    def feed(self, workers: int = 1, attempts: int = 1) -> Feed:
        """The one feed of a single-venue run."""
        (only,) = self.feeds(workers, attempts)
        return only

    async def _fetch(self, api: Any, job: Job) -> pl.DataFrame:
        (key,) = job.keys
        return await asyncio.to_thread(
            self._read, key, self.figures.setdefault((key.venue, key.instrument), {})
        )

    def _read(self, key: SliceKey, figures: dict[str, HourFigures]) -> pl.DataFrame:
        kept: Counter = Counter()
        origins: dict[str, list[int]] = {}
        frame = read_day(
            self.root,
            key.instrument,
            key.day,
            figures,
            key.venue,
            self.stored.get(key),
            kept,
            origins,
            self.service,
        )
        self.kept[key] = kept["kept_from_store"]
        with CLAIM:
            self.origins.setdefault((key.venue, key.instrument), {}).update(origins)
        return frame


def live_slices(hours: Iterable[str], instruments: Iterable[str | tuple[str, str]]) -> list[SliceKey]:
    """The trades slices that loading `hours` (landing hour keys) of `instruments` (names of Binance,
    or (venue, instrument) pairs) rewrites."""
    days = sorted({day for hour in hours for day in hour_slices(hour)})
    pairs = [(VENUE, i) if isinstance(i, str) else i for i in instruments]
    return [SliceKey("trades", venue, instrument, day) for venue, instrument in pairs for day in days]


def stored_live_rows(client, database: str, slices: Iterable[SliceKey]) -> dict[SliceKey, pl.DataFrame]:
    """The active rows of the slices whose active load is a live one (ingest_log source the venue's
    `LiveVenue.source`: a live load or a refill of one), to keep what a refill added (module doc)."""
    slices = list(slices)
    if not slices:
        return {}
    db = clickhouse_database(database)
    rows = client.query(
        f"SELECT a.venue, a.instrument, a.day, l.source FROM {db}.active_loads AS a "
        f"INNER JOIN (SELECT load_id, "
        f"argMax(source, finished_at) AS source FROM {db}.ingest_log WHERE dataset = {{code:String}} AND "
        "outcome = 'ok' AND load_id != 0 AND day IN {days:Array(Date)} GROUP BY load_id) AS l "
        "ON a.load_id = l.load_id "
        "WHERE a.dataset = {code:String} AND a.venue IN {venues:Array(String)} "
        "AND a.day IN {days:Array(Date)} "
        "AND l.source IN {sources:Array(String)}",
        parameters={
            "code": spec_for("trades").code,
            "venues": sorted({s.venue for s in slices}),
            "sources": sorted(LIVE_SOURCES),
            "days": sorted({s.day for s in slices}),
        },
    ).result_rows
    live = {(r[0], r[1], r[2]) for r in rows if LIVE_SOURCES.get(r[3]) == r[0]}
    out = {}
    for key in slices:
        if (key.venue, key.instrument, key.day) in live:
            start, end = day_window(key.day)
            out[key] = tables.read_range(client, database, "trades", key.venue, key.instrument, start, end)
    return out


def day_origins(
    client, database: str, root: Path, slices: Iterable[SliceKey]
) -> dict[tuple[str, str], dict[str, list[int]]]:
    """(venue, instrument) -> hour -> [trades from the landing files, trades only the store holds (a
    refill's)] of the slices' days as stored now (what a refill wrote included); a slice none of
    whose hours has a closed file is skipped."""
    out: dict[tuple[str, str], dict[str, list[int]]] = {}
    slices = list(slices)
    service = instrument_service(ClickHouseMaster.of(client, database), {key.venue for key in slices})
    for key in slices:
        start, end = day_window(key.day)
        stored = tables.read_range(client, database, "trades", key.venue, key.instrument, start, end)
        origins: dict[str, list[int]] = {}
        try:
            read_day(root, key.instrument, key.day, {}, key.venue, stored, Counter(), origins, service)
        except FileNotFoundError:
            continue
        out.setdefault((key.venue, key.instrument), {}).update(origins)
    service.keep()
    return out
