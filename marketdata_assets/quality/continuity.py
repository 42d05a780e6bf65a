"""Trade-id continuity of the crypto venues, and the refill of what is missing (no Dagster here).

Where a venue numbers its trades one by one per instrument (`ID_SEQUENCES`, by the active load's source),
`find_holes` finds the ids a stored slice lacks, inside its day and at midnight, in ClickHouse; `refill`
fetches exactly those from the venue's REST API by id and writes each completed slice once. A live
slice's ids below the first one its capture landed that day are "before capture" (`with_capture`): not
a loss of the capture, judged apart and refilled on their own. Sequences,
queries and edge cases: docs/crypto-datasets.md, "Trade-id continuity and its refill".
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import polars as pl

from marketdata_assets.core.errors import error_text
from marketdata_assets.core.http import STOP_ERRORS, RequestStats, counting
from marketdata_assets.core.identifiers import clickhouse_database
from marketdata_assets.core.markdown import table
from marketdata_assets.datasets.frames import TRADES_SPEC, day_window, spec_for
from marketdata_assets.datasets.slices import SliceKey
from marketdata_assets.sources.interface import IdSequence
from marketdata_assets.sources.registry import SEQUENCED_DATASETS, id_sequence, same_ids
from marketdata_assets.stores.clickhouse import cluster, load_ids, tables, writer

CHECKED_DATASETS = SEQUENCED_DATASETS  # the datasets whose ids are declared sequential (sources.registry)


# --------------------------------------------------------------------------------------------
# What the check finds
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IdHole:
    """Ids first_missing..last_missing (inclusive) of an instrument-day are not stored."""

    venue: str
    instrument: str
    day: date
    first_missing: int
    last_missing: int
    at_midnight: bool = False  # between the previous day's last id and this day's first

    @property
    def missing(self) -> int:
        return self.last_missing - self.first_missing + 1

    @property
    def ids(self) -> str:
        return str(self.first_missing) if self.missing == 1 else f"{self.first_missing}-{self.last_missing}"

    def __str__(self) -> str:
        return self.ids + (" (at midnight)" if self.at_midnight else "")


@dataclass(frozen=True)
class SliceIds:
    """The ids of one slice's active load, as `find_holes` found them."""

    venue: str
    instrument: str
    day: date
    load_id: int
    source: str = ""
    sequence: IdSequence | None = None  # None: not checked (no sequential ids, or the source is unknown)
    rows: int = 0
    first_id: int | None = None
    last_id: int | None = None
    without_id: int = 0  # rows with a null seq (not counted as holes)
    previous_load_id: int = 0  # the previous day's active load, when it holds ids of the same sequence
    previous_last_id: int | None = None
    missing: int = 0  # ids missing inside the day and at midnight
    ranges: int = 0  # how many hole ranges
    holes: tuple[IdHole, ...] = ()  # the first `max_ranges` of them, in id order
    captured_from_id: int | None = None  # a live slice: the first id its capture landed (`with_capture`)
    captured_at: datetime | None = None  # and when that capture began (its first landed record)

    @property
    def before_capture(self) -> tuple[IdHole, ...]:
        """The holes below the first id the capture landed: ids of before the capture began."""
        first = self.captured_from_id
        return () if first is None else tuple(h for h in self.holes if h.last_missing < first)

    @property
    def missing_before_capture(self) -> int:
        return sum(h.missing for h in self.before_capture)

    @property
    def missing_in_capture(self) -> int:
        """The missing ids not known to be before capture (ranges not listed count here)."""
        return self.missing - self.missing_before_capture

    @property
    def key(self) -> SliceKey:
        return SliceKey("trades", self.venue, self.instrument, self.day)

    @property
    def partition_key(self) -> str:
        return f"{self.day.isoformat()}|{self.venue}:{self.instrument}"

    @property
    def passed(self) -> bool:
        """No id missing, except before capture began (a live slice's)."""
        return self.missing_in_capture == 0

    def capture_note(self) -> str:
        """The ids before capture, said ('10,148 tradeId id(s) before capture (from 13:15 UTC) not stored:
        1001-11148'); '' when there are none."""
        before = self.before_capture
        if not before:
            return ""
        return (
            f"{self.missing_before_capture:,} {self.sequence.name} id(s) before capture (from "
            f"{self.captured_at.astimezone(UTC):%H:%M} UTC) not stored: {', '.join(h.ids for h in before)}"
        )

    def summary(self) -> str:
        where = f"{self.venue}:{self.instrument} {self.day}"
        if self.sequence is None:
            why = (
                f"ids of {self.source} loads are not sequential per instrument"
                if self.source
                else f"no ingest_log row names the source of load {self.load_id}"
            )
            return f"{where}: not checked ({why})"
        note = self.capture_note()
        if self.passed:
            if not self.rows:
                return f"{where}: no trades"
            since = " since capture began" if note else ""
            complete = (
                f"{where}: {self.rows:,} trades, {self.sequence.name} ids {self.first_id}-{self.last_id}"
            )
            return f"{complete} complete{since}" + (f"; {note}" if note else "")
        inside = [h for h in self.holes if h not in self.before_capture]
        shown = ", ".join(map(str, inside))
        unlisted = self.ranges - len(self.holes)
        more = f" and {unlisted:,} more range(s)" if unlisted > 0 else ""
        ranges = self.ranges - len(self.before_capture)
        return (
            f"{where}: {self.missing_in_capture:,} {self.sequence.name} id(s) missing in {ranges:,} "
            f"range(s): {shown}{more}" + (f"; {note}" if note else "")
        )

    def metadata(self) -> dict[str, Any]:
        """Plain metadata (ids as strings: they are names, not amounts)."""
        return {
            "id_sequence": self.sequence.name if self.sequence else "",
            "source": self.source,
            "load_id": str(self.load_id),
            "rows_checked": self.rows,
            "missing_ids": self.missing_in_capture,
            "missing_before_capture": self.missing_before_capture,
            "hole_ranges": self.ranges,
            "first_id": str(self.first_id or ""),
            "last_id": str(self.last_id or ""),
            "previous_day_last_id": str(self.previous_last_id or ""),
            "rows_without_id": self.without_id,
            "captured_from": f"{self.captured_at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC, id "
            f"{self.captured_from_id}"
            if self.captured_at is not None
            else "",
            "holes": table(
                ["first missing", "last missing", "ids", "where"],
                (
                    (
                        str(h.first_missing),
                        str(h.last_missing),
                        h.missing,
                        "before capture"
                        if h in self.before_capture
                        else "midnight"
                        if h.at_midnight
                        else "inside the day",
                    )
                    for h in self.holes
                ),
            ),
        }


def with_capture(found: Mapping[str, SliceIds], starts: Mapping[SliceKey, tuple[int, datetime]]) -> dict:
    """`find_holes`' slices with, for those in `starts` (a live slice's key -> (the first id its capture
    landed, when that capture began)), their ids before capture told apart (`SliceIds.before_capture`)."""
    out = dict(found)
    for key, ids in found.items():
        start = starts.get(ids.key)
        if start is not None:
            out[key] = replace(ids, captured_from_id=start[0], captured_at=start[1])
    return out


def _loads(
    client, database: str, slices: list[SliceKey], dataset: str
) -> dict[tuple[str, str, date], tuple[int, str]]:
    """{(venue, instrument, day): (active load, its ingest_log source or '')} of the slices and of the
    day before each."""
    days = {s.day for s in slices} | {s.day - timedelta(days=1) for s in slices}
    return tables.active_sources(
        client, database, dataset, {f"{s.venue}:{s.instrument}" for s in slices}, days
    )


def _rows_where(slices: list[SliceKey]) -> tuple[str, dict]:
    """The filter of the trades table that reaches the slices' rows (and the days before) through
    the sorting key, and its parameters; `{loads:Array(UInt64)}` picks the loads."""
    first = min(s.day for s in slices) - timedelta(days=1)
    sql = (
        "venue IN {venues:Array(String)} AND instrument IN {instruments:Array(String)} "
        "AND ts >= {start:DateTime64(6, 'UTC')} AND ts < {end:DateTime64(6, 'UTC')} "
        "AND load_id IN {loads:Array(UInt64)}"
    )
    return sql, {
        "venues": sorted({s.venue for s in slices}),
        "instruments": sorted({s.instrument for s in slices}),
        "start": day_window(first)[0],
        "end": day_window(max(s.day for s in slices))[1],
    }


def _scan(client, database: str, table_name: str, where: str, params: dict) -> dict[int, tuple]:
    """One read of the loads' ids: {load: (rows, rows without an id, first id, last id, aligned)}.
    `aligned`: all the load's rows are in one part and its ids step by one with their offsets in it
    (`seq - _part_offset` constant), so no two rows share an id: its distinct ids are its rows with an
    id, and a load without holes is proven so without a set of its ids. Not claimed in cluster mode
    (a Distributed read's parts are per shard)."""
    shifted = "seq - toInt64(_part_offset)"
    aligned = (
        "0"
        if cluster.configured()
        else f"min({shifted}) = max({shifted}) AND min(_part_index) = max(_part_index)"
    )
    rows = client.query(
        f"SELECT load_id, count(), countIf(seq IS NULL), min(seq), max(seq), {aligned} "
        f"FROM {clickhouse_database(database)}.`{table_name}` WHERE {where} GROUP BY load_id",
        parameters=params,
    ).result_rows
    return {int(r[0]): (int(r[1]), int(r[2]), r[3], r[4], bool(r[5])) for r in rows}


def _unproven(stats: tuple | None) -> bool:
    """Whether a load's scan leaves its holes to find: it has ids, and they are not proven to be
    exactly first..last (aligned: distinct ids = rows with an id, then a complete span passes)."""
    if stats is None or stats[2] is None:
        return False
    rows, without_id, first, last, aligned = stats
    return not (aligned and last - first + 1 == rows - without_id)


def _read_ids(
    client,
    database: str,
    table: str,
    where: str,
    params: dict,
    checked: set[int],
    previous: list[int],
    max_ranges: int,
) -> tuple[dict[int, tuple], dict[int, tuple]]:
    """({load: (rows, rows without an id, first id, last id)}, {load: (hole ranges, missing ids, the
    first `max_ranges` ranges)}) of the `checked` loads and of the `previous` days' loads (their last
    id only). The figures measured when each load was written (stores.clickhouse.load_ids), checked
    against a count of its rows, answer without reading the ids; the other loads are read: one scan of
    their ids, then the distinct ids of those not proven complete by it."""
    read = sorted(checked | set(previous))
    known = load_ids.verified(client, database, table, where, params, read)
    settled = {load: f for load, f in known.items() if load not in checked or f.holes_known(max_ranges)}
    by_load = {load: (f.rows, f.without_id, f.first_id, f.last_id) for load, f in settled.items()}
    ranges = {
        load: (f.ranges, f.missing, list(f.holes[:max_ranges])) for load, f in settled.items() if f.ranges
    }
    rest = [load for load in read if load not in settled]
    if rest:
        scanned = _scan(client, database, table, where, {**params, "loads": rest})
        by_load.update({load: stats[:4] for load, stats in scanned.items()})
        unproven = {
            load: load_ids.LoadIds(load, stats[0], first_id=stats[2], last_id=stats[3])
            for load, stats in scanned.items()
            if load in checked and _unproven(stats)
        }
        ranges.update(load_ids.hole_ranges(client, database, table, where, params, unproven, max_ranges))
    return by_load, ranges


def find_holes(
    client, database: str, slices: Iterable[SliceKey], *, max_ranges: int = 10, dataset: str = "trades"
) -> dict[str, SliceIds]:
    """The ids of each slice's active load of `dataset` (trades or agg_trades), by partition key
    ('YYYY-MM-DD|VENUE:INSTRUMENT'), with its missing ids and its first `max_ranges` hole ranges. Slices
    without an active load are left out."""
    if dataset not in CHECKED_DATASETS:
        raise ValueError(
            f"dataset {dataset!r} has no sequential ids to check (checked: {', '.join(CHECKED_DATASETS)})"
        )
    spec = spec_for(dataset)
    slices = sorted({replace(s, dataset=dataset) for s in slices})
    if not slices:
        return {}
    if not 1 <= max_ranges <= 1_000_000:
        raise ValueError("max_ranges: 1..1,000,000")
    loads = _loads(client, database, slices, spec.name)
    found: dict[str, SliceIds] = {}
    for s in slices:
        if (s.venue, s.instrument, s.day) not in loads:
            continue
        load_id, source = loads[(s.venue, s.instrument, s.day)]
        sequence = id_sequence(s.venue, source, dataset)
        previous = loads.get((s.venue, s.instrument, s.day - timedelta(days=1)))
        same = (
            sequence is not None
            and previous is not None
            and same_ids(id_sequence(s.venue, previous[1], dataset), sequence)
        )
        item = SliceIds(
            s.venue,
            s.instrument,
            s.day,
            load_id,
            source,
            sequence,
            previous_load_id=previous[0] if same else 0,
        )
        found[item.partition_key] = item
    checked = [s for s in found.values() if s.sequence is not None]
    if not checked:
        return found
    where, params = _rows_where([s.key for s in checked])
    by_load, ranges = _read_ids(
        client,
        database,
        spec.table,
        where,
        params,
        {s.load_id for s in checked},
        [s.previous_load_id for s in checked if s.previous_load_id],
        max_ranges,
    )
    for s in checked:
        rows, without_id, first, last = by_load.get(s.load_id, (0, 0, None, None))
        previous_last = by_load.get(s.previous_load_id, (0, 0, None, None))[3] if s.previous_load_id else None
        holes: list[IdHole] = []
        count, missing, shown = ranges.get(s.load_id, (0, 0, []))
        if first is not None and previous_last is not None and first > previous_last + 1:
            holes.append(IdHole(s.venue, s.instrument, s.day, previous_last + 1, first - 1, at_midnight=True))
        holes += [IdHole(s.venue, s.instrument, s.day, int(lo), int(hi)) for lo, hi in shown]
        midnight = holes[0].missing if holes and holes[0].at_midnight else 0
        found[s.partition_key] = replace(
            s,
            rows=int(rows),
            first_id=first,
            last_id=last,
            without_id=int(without_id),
            previous_last_id=previous_last,
            missing=int(missing) + midnight,
            ranges=int(count) + (midnight > 0),
            holes=tuple(holes[:max_ranges]),
        )
    return found


# --------------------------------------------------------------------------------------------
# The refill
# --------------------------------------------------------------------------------------------


def spans(holes: Iterable[IdHole], page: int) -> list[tuple[int, int]]:
    """The id spans to fetch: holes less than a page apart in one span (the ids between are
    fetched again and dropped by the merge: cheaper than another request)."""
    out: list[list[int]] = []
    for hole in sorted(holes, key=lambda h: h.first_missing):
        if out and hole.first_missing - out[-1][1] <= page:
            out[-1][1] = max(out[-1][1], hole.last_missing)
        else:
            out.append([hole.first_missing, hole.last_missing])
    return [(lo, hi) for lo, hi in out]


@dataclass
class RefillOutcome:
    """What the refill did for one checked slice."""

    found: SliceIds
    status: str = "pending"  # ok | failed | skipped | nothing to do
    fetched: int = 0  # trades the venue returned in the spans
    added: dict[date, int] = field(default_factory=dict)  # trades added, per day written
    load_ids: dict[date, int] = field(default_factory=dict)  # the new load of each day written
    outside: int = 0  # fetched trades of neither the day nor the day before: not written
    micro: bool = False  # the slice's stored times carry microseconds: ask the venue for them
    still_missing: int = 0  # ids missing after the refill (the venue did not serve them)
    stats: RequestStats = field(default_factory=RequestStats)
    error: str = ""
    frame: pl.DataFrame | None = None


@dataclass
class RefillReport:
    outcomes: list[RefillOutcome] = field(default_factory=list)
    seconds: float = 0.0

    def failures(self) -> list[RefillOutcome]:
        return [o for o in self.outcomes if o.status in ("failed", "skipped")]

    def summary(self) -> str:
        holed = [o for o in self.outcomes if o.found.missing]
        return (
            f"{len(self.outcomes)} slice(s) checked, {len(holed)} with missing ids "
            f"({sum(o.found.missing for o in holed):,} ids), {sum(sum(o.added.values()) for o in holed):,} "
            f"trades added, {sum(o.still_missing for o in self.outcomes):,} ids still missing, "
            f"{len(self.failures())} failed or skipped, {self.requests} requests"
        )

    @property
    def requests(self) -> int:
        return sum(o.stats.requests for o in self.outcomes)

    def metadata(self) -> dict[str, Any]:
        rows = (
            (
                str(o.found.key),
                o.found.sequence.name if o.found.sequence else "",
                o.found.missing,
                o.found.ranges,
                o.fetched,
                ", ".join(f"{d}: +{n:,}" for d, n in sorted(o.added.items())),
                o.still_missing,
                o.stats.requests,
                o.status + (f": {o.error[:300]}" if o.error else ""),
            )
            for o in self.outcomes
        )
        return {
            "summary": self.summary(),
            "slices_checked": len(self.outcomes),
            "ids_missing_before": sum(o.found.missing for o in self.outcomes),
            "trades_added": sum(sum(o.added.values()) for o in self.outcomes),
            "ids_still_missing": sum(o.still_missing for o in self.outcomes),
            "requests": self.requests,
            "slices": table(
                [
                    "slice",
                    "id sequence",
                    "missing ids",
                    "ranges",
                    "fetched",
                    "added",
                    "still missing",
                    "requests",
                    "outcome",
                ],
                rows,
            ),
            "seconds": round(self.seconds, 3),
        }


async def _fetch(
    clients: Mapping[str, Callable[[], Any]],
    todo: list[RefillOutcome],
    workers: int,
    log: Callable[[str], None],
) -> None:
    """Fetch each slice's spans, `workers` slices at once per venue through ONE client per venue."""

    async def venue(name: str, mine: list[RefillOutcome]) -> None:
        gate, stopped = asyncio.Semaphore(workers), []

        async def one(api, outcome: RefillOutcome) -> None:
            found = outcome.found
            async with gate:
                if stopped:
                    outcome.status, outcome.error = "skipped", f"not attempted: {name} stopped: {stopped[0]}"
                    return
                extra = {"time_unit": "MICROSECOND"} if outcome.micro else {}
                frames = []
                try:
                    with counting(outcome.stats):
                        for lo, hi in spans(found.holes, found.sequence.page):
                            frames.append(
                                await getattr(api, found.sequence.fetch)(
                                    found.instrument, lo, hi, day=found.day, **extra
                                )
                            )
                except STOP_ERRORS as error:
                    stopped.append(error)
                    outcome.status, outcome.error = "failed", error_text(error, str(found.key))
                    return
                except Exception as error:  # noqa: BLE001 - one slice's failure never stops the others
                    outcome.status, outcome.error = "failed", error_text(error, str(found.key))
                    return
                outcome.frame = pl.concat(frames, how="vertical") if frames else None
                outcome.fetched = outcome.frame.height if outcome.frame is not None else 0
                log(
                    f"refill {found.key}: {outcome.fetched:,} trades fetched for {found.missing:,} missing "
                    f"{found.sequence.name} ids ({outcome.stats.requests} requests)"
                )

        if name not in clients:
            for outcome in mine:
                outcome.status, outcome.error = "failed", f"no REST client for venue {name}"
            return
        async with clients[name]() as api:
            await asyncio.gather(*(one(api, outcome) for outcome in mine))

    by_venue: dict[str, list[RefillOutcome]] = {}
    for outcome in todo:
        by_venue.setdefault(outcome.found.venue, []).append(outcome)
    await asyncio.gather(*(venue(name, mine) for name, mine in by_venue.items()))


def _micro(client, database: str, found: SliceIds) -> bool:
    """Whether the slice's stored times carry microseconds (its first 10,000 rows tell)."""
    start, end = day_window(found.day)
    return bool(
        client.query(
            "SELECT max(toUnixTimestamp64Micro(ts) % 1000) > 0 FROM (SELECT ts FROM "
            f"{clickhouse_database(database)}.`{TRADES_SPEC.table}` "
            "WHERE venue = {venue:String} AND instrument = {instrument:String} "
            "AND ts >= {start:DateTime64(6, 'UTC')} AND ts < {end:DateTime64(6, 'UTC')} AND load_id = "
            "{load:UInt64} LIMIT 10000)",
            parameters={
                "venue": found.venue,
                "instrument": found.instrument,
                "start": start,
                "end": end,
                "load": found.load_id,
            },
        ).result_rows[0][0]
    )


def _complete(
    client, database: str, venue: str, instrument: str, day: date, added: pl.DataFrame, run_id: str
) -> tuple[int, writer.WriteResult]:
    """The slice's active rows plus `added`, each trade id once (the stored row wins), written as
    the slice's new load. Returns (trades added, the write)."""
    start, end = day_window(day)
    stored = tables.read_range(client, database, "trades", venue, instrument, start, end)
    merged = (
        pl.concat([stored, added.select(stored.columns)], how="vertical")
        .unique(subset="trade_id", keep="first", maintain_order=True)
        .sort(["ts", "seq"], nulls_last=True, maintain_order=True)
    )
    return merged.height - stored.height, writer.write_slice(
        client, database, "trades", merged, venue, instrument, day, run_id
    )


def _write(client, database: str, outcome: RefillOutcome, run_id: str, log: Callable[[str], None]) -> None:
    found, frame = outcome.found, outcome.frame
    current = _loads(client, database, [found.key], TRADES_SPEC.name)
    expected = {found.day: found.load_id}
    if found.previous_load_id:
        expected[found.day - timedelta(days=1)] = found.previous_load_id
    changed = [
        d for d, load in expected.items() if current.get((found.venue, found.instrument, d), (0,))[0] != load
    ]
    if changed:
        outcome.status = "skipped"
        outcome.error = (
            f"{found.key}: reloaded while its holes were fetched (the active load of "
            f"{', '.join(map(str, changed))} changed): run the refill again"
        )
        return
    started = datetime.now(UTC)
    for day in sorted(expected, reverse=True):
        start, end = day_window(day)
        part = frame.filter((pl.col("ts") >= start) & (pl.col("ts") < end)) if frame is not None else None
        if part is None or part.height == 0:
            continue
        added, written = _complete(client, database, found.venue, found.instrument, day, part, run_id)
        outcome.added[day], outcome.load_ids[day] = added, written.load_id
        stats = outcome.stats if day == found.day else RequestStats()  # the requests count on the checked day
        writer.log_ingest(
            client,
            database,
            [
                {  # under the slice's own source: the new load keeps its id sequence
                    "run_id": run_id,
                    "source": current[(found.venue, found.instrument, day)][1],
                    "dataset": TRADES_SPEC.code,
                    "venue": found.venue,
                    "instrument": found.instrument,
                    "day": day,
                    "rows": written.rows,
                    "requests": stats.requests,
                    "retries": stats.retries,
                    "rate_limited": stats.rate_limited,
                    "outcome": "ok",
                    "error": f"trade-id refill: +{added:,} trades ({found.sequence.name} ids)",
                    "load_id": written.load_id,
                    "started_at": started,
                    "finished_at": datetime.now(UTC),
                }
            ],
        )
        log(
            f"refill {found.venue}:{found.instrument} {day}: +{added:,} trades written (load "
            f"{written.load_id})"
        )
    window = day_window(min(expected))[0], day_window(max(expected))[1]
    outcome.outside = (
        frame.filter((pl.col("ts") < window[0]) | (pl.col("ts") >= window[1])).height
        if frame is not None
        else 0
    )
    outcome.status = "ok"


def _only_before_capture(ids: SliceIds) -> SliceIds:
    """The slice with only its holes before capture (what the capture's own refill fetches)."""
    before = ids.before_capture
    return replace(ids, holes=before, missing=sum(h.missing for h in before), ranges=len(before))


def refill(
    connect: Callable[[], Any],
    database: str,
    run_id: str,
    slices: Iterable[SliceKey],
    clients: Mapping[str, Callable[[], Any]],
    *,
    max_ranges: int = 100_000,
    workers: int = 4,
    log: Callable[[str], None] | None = None,
    before_capture: Mapping[SliceKey, tuple[int, datetime]] | None = None,
) -> RefillReport:
    """Find the slices' holes, fetch them from the venues (`clients`: venue -> a factory of its REST
    client, used as an async context manager), write each completed slice, and look again.
    `connect()` gives a ClickHouse client as a context manager; it is not held while fetching.
    With `before_capture` (live slices' capture starts, as `with_capture` takes them) only the ids
    before each slice's capture are fetched; a slice without one is left alone."""
    log = log or (lambda message: None)
    started = time.monotonic()
    slices = list(slices)
    with connect() as client:
        tables.ensure_tables(client, database)  # it writes slices: the store is bootstrapped first
        found = find_holes(client, database, slices, max_ranges=max_ranges)
        if before_capture is not None:
            found = {
                key: _only_before_capture(ids) for key, ids in with_capture(found, before_capture).items()
            }
        report = RefillReport(
            [
                RefillOutcome(f, status="pending" if f.sequence and f.missing else "nothing to do")
                for f in found.values()
            ]
        )
        todo = [o for o in report.outcomes if o.status == "pending"]
        for outcome in todo:
            outcome.micro = outcome.found.sequence.time_units and _micro(client, database, outcome.found)
    for outcome in todo:
        if outcome.found.ranges > len(outcome.found.holes):
            log(
                f"refill {outcome.found.key}: {outcome.found.ranges:,} hole ranges, the first {max_ranges:,} "
                "are fetched now; run the refill again for the others"
            )
    if todo:
        asyncio.run(_fetch(clients, todo, workers, log))
        with connect() as client:
            for outcome in todo:
                if outcome.status == "pending":
                    try:
                        _write(client, database, outcome, run_id, log)
                    except Exception as error:  # noqa: BLE001 - the other slices are still written
                        outcome.status, outcome.error = "failed", error_text(error, str(outcome.found.key))
                outcome.frame = None
            after = find_holes(
                client,
                database,
                [o.found.key for o in todo],
                max_ranges=1 if before_capture is None else 1000,
            )
        if before_capture is not None:
            after = {
                key: _only_before_capture(ids) for key, ids in with_capture(after, before_capture).items()
            }
        for outcome in todo:
            left = after.get(outcome.found.partition_key)
            outcome.still_missing = left.missing if left is not None else 0
    report.seconds = time.monotonic() - started
    log(f"trade-id refill: {report.summary()}")
    return report
