"""The ingest engine of the ticks domain: slices in, one `IngestReport` out (no Dagster here).

Stages of concurrent `Feed`s (one per source) of `Job`s: plan, fetch through one client per source,
write each (dataset, venue, day) with one pointer flip, log. Over 500 lines: the plan, fetch workers
and writer thread share one run's state (_FeedRun); the report is the rest. Retries, stops, deadline
and writes: docs/ticks.md, "The ingest engine".
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any

import polars as pl

from marketdata_assets.core import progress
from marketdata_assets.core.errors import StoreUnavailable, error_text
from marketdata_assets.core.http import STOP_ERRORS, RequestStats, SourceRequestError, counting
from marketdata_assets.core.identifiers import clickhouse_database
from marketdata_assets.core.markdown import table
from marketdata_assets.core.verdicts import Verdict, judge
from marketdata_assets.datasets.frames import day_window, spec_for
from marketdata_assets.datasets.slices import Batches, Feed, Fetched, Job, SliceKey
from marketdata_assets.datasets.wire import FetchNotes, drop_implausible, noting
from marketdata_assets.stores.clickhouse import connection, tables, writer

OUTCOMES = ("ok", "failed", "skipped")
COVERED_BY = "covered by "  # a held slice's why, then the source whose load holds it
LEFT_OUT = "left out by the retry options"


# --------------------------------------------------------------------------------------------
# What a run records of each slice
# --------------------------------------------------------------------------------------------


@dataclass
class SliceOutcome:
    key: SliceKey
    status: str = "pending"  # ok | failed | skipped
    rows: int = 0
    load_id: int = 0
    error: str = ""
    note: str = ""
    attempts: int = 0
    stats: RequestStats = field(default_factory=RequestStats)
    first_ts: datetime | None = None
    last_ts: datetime | None = None
    dropped: Counter = field(default_factory=Counter)  # rows the parser dropped, by reason
    conversions: list[str] = field(default_factory=list)  # unit conversions applied to the rows
    started_at: datetime | None = None
    finished_at: datetime | None = None

    def settle(self, status: str, error: str = "") -> None:
        self.status, self.error, self.finished_at = status, error, datetime.now(UTC)


# --------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------


@dataclass
class IngestReport:
    outcomes: dict[SliceKey, SliceOutcome] = field(default_factory=dict)
    sources: dict[str, dict] = field(default_factory=dict)  # source -> request figures
    left_out: dict[str, int] = field(default_factory=dict)  # dataset -> slices left out by the retry options
    covered: dict[str, Counter] = field(
        default_factory=dict
    )  # dataset -> {source: slices a more faithful load holds}
    seconds: float = 0.0
    # slices the run did not fetch, each with why: `held` ones are stored already (a more faithful source's
    # load, a load the retry options leave as it is, a load of when the day was in the venue's reach);
    # `not_fetched` ones are not (past the venue's REST history and stored nowhere)
    held: dict[SliceKey, str] = field(default_factory=dict)
    not_fetched: dict[SliceKey, str] = field(default_factory=dict)
    held_rows: dict[SliceKey, int] = field(default_factory=dict)  # the stored rows of held slices

    def merge(self, other: IngestReport) -> None:
        self.outcomes.update(other.outcomes)
        self.held.update(other.held)
        self.not_fetched.update(other.not_fetched)
        self.held_rows.update(other.held_rows)
        for dataset, by in other.covered.items():
            self.covered.setdefault(dataset, Counter()).update(by)
        for name, figures in other.sources.items():
            mine = self.sources.setdefault(name, {})
            for key, value in figures.items():
                if not isinstance(value, (int, float)) or key.startswith("latency"):
                    mine[key] = value  # a percentile of the last stage: not additive
                elif key.startswith("max_"):
                    mine[key] = max(mine.get(key, 0), value)
                else:
                    mine[key] = mine.get(key, 0) + value

    def part(self, keys: Iterable[SliceKey]) -> IngestReport:
        """The report of `keys` alone (one partition's slices): its outcomes, held and not fetched slices,
        covered counts; the request figures (`sources`) stay the run's."""
        wanted = list(dict.fromkeys(keys))  # looked up, not scanned: a run of many partitions stays linear
        mine = IngestReport(
            outcomes={k: self.outcomes[k] for k in wanted if k in self.outcomes},
            sources=self.sources,
            seconds=self.seconds,
            held={k: self.held[k] for k in wanted if k in self.held},
            not_fetched={k: self.not_fetched[k] for k in wanted if k in self.not_fetched},
            held_rows={k: self.held_rows[k] for k in wanted if k in self.held_rows},
        )
        for key, why in mine.held.items():
            if why.startswith(COVERED_BY):
                mine.covered.setdefault(key.dataset, Counter())[why[len(COVERED_BY) :]] += 1
            elif why == LEFT_OUT:
                mine.left_out[key.dataset] = mine.left_out.get(key.dataset, 0) + 1
        return mine

    def slice_keys(self) -> set[SliceKey]:
        """Every slice the run was about: fetched, held or not fetched."""
        return set(self.outcomes) | set(self.held) | set(self.not_fetched)

    def of(self, dataset: str) -> list[SliceOutcome]:
        return [o for k, o in self.outcomes.items() if k.dataset == dataset]

    def failures(self) -> list[SliceOutcome]:
        return [o for o in self.outcomes.values() if o.status != "ok"]

    def summary(self, dataset: str | None = None) -> str:
        """The run's one-line summary: "Successful: 148/150"."""
        mine = self.of(dataset) if dataset else list(self.outcomes.values())
        return f"Successful: {sum(o.status == 'ok' for o in mine)}/{len(mine)}"

    def covered_text(self, dataset: str) -> str:
        """ "2 slices covered by BINANCE_ARCHIVE, 1 by BINANCE_DUMPS" ('' when none was)."""
        by = sorted(self.covered.get(dataset, Counter()).items(), key=lambda item: (-item[1], item[0]))
        if not by:
            return ""
        first, *rest = by
        return f"{first[1]:,} slice{'s' * (first[1] != 1)} covered by {first[0]}" + "".join(
            f", {n:,} by {source}" for source, n in rest
        )

    def verdict(self, loads_from: Callable[[list[SliceKey]], str] | None = None) -> Verdict:
        """The verdict of this report's slices (one partition's: `part`): ok when every one is stored
        (loaded, or held), partial when some are, else not loadable (every missing one not fetched: past the
        source's reach) or failed. `loads_from(not fetched keys)`: where those come from."""
        outcomes = list(self.outcomes.values())
        stored = sum(o.status == "ok" for o in outcomes) + len(self.held)
        failed = [o for o in outcomes if o.status == "failed"]
        skipped = sum(o.status == "skipped" for o in outcomes)
        texts = [f"{len(failed)} slice(s) failed: {failed[0].error[:200]}"] if failed else []
        if skipped:
            texts.append(
                f"{skipped} slice(s) skipped (the run's deadline, or its source stopped: a ban, a "
                "permission error)"
            )
        whys: dict[str, list[SliceKey]] = {}
        for key, why in self.not_fetched.items():
            whys.setdefault(why, []).append(key)
        unloadable = ", ".join(
            f"{len(keys)} slice(s) {why}: {_names(keys)}" for why, keys in sorted(whys.items())
        )
        where = loads_from(list(self.not_fetched)) if loads_from and self.not_fetched else ""
        return judge(stored, unloadable, ", ".join(texts), where)

    def rows_stored(self) -> int:
        """The rows its slices hold now: loaded by this run, and those of the held slices."""
        return sum(o.rows for o in self.outcomes.values() if o.status == "ok") + sum(self.held_rows.values())

    def failures_table(self, limit: int = 200) -> str:
        return table(
            ["slice", "outcome", "error", "attempts"],
            ((str(o.key), o.status, o.error[:700], o.attempts) for o in self.failures()),
            limit=limit,
        )

    def sources_table(self) -> str:
        columns = [
            "source",
            "requests",
            "retries",
            "rate_limited_429",
            "server_errors_5xx",
            "transport_errors",
            "latency_p50_ms",
            "latency_p95_ms",
        ]
        return table(columns, ([name, *(f.get(c) for c in columns[1:])] for name, f in self.sources.items()))

    def metadata(self, dataset: str) -> dict[str, Any]:
        """Plain metadata of one dataset: summary, counts, rows, time range, request figures, tables."""
        mine = self.of(dataset)
        ok = [o for o in mine if o.status == "ok"]
        stats = RequestStats()
        for o in mine:
            stats.add(o.stats)
        days = sorted({o.key.day for o in mine})
        firsts = [o.first_ts for o in ok if o.first_ts is not None]
        lasts = [o.last_ts for o in ok if o.last_ts is not None]
        figures = stats.as_metadata()
        dropped: Counter = Counter()
        conversions: dict[str, int] = {}
        for o in ok:
            dropped.update(o.dropped)
            for text in o.conversions:
                conversions[text] = conversions.get(text, 0) + 1
        return {
            "summary": self.summary(dataset),
            "slices_ok": len(ok),
            "slices_failed": sum(o.status == "failed" for o in mine),
            "slices_skipped": sum(o.status == "skipped" for o in mine),
            "left_out_by_retry_options": self.left_out.get(dataset, 0),
            "slices_covered": sum(self.covered.get(dataset, Counter()).values()),
            "covered_by": dict(sorted(self.covered.get(dataset, Counter()).items())),
            "days": ", ".join(map(str, days)) if len(days) <= 5 else f"{days[0]}..{days[-1]} ({len(days)})",
            "instruments": len({o.key.instrument for o in mine}),
            "venues": ", ".join(sorted({o.key.venue for o in ok if o.key.venue})),
            "rows": sum(o.rows for o in ok),
            "first_ts": min(firsts).isoformat() if firsts else "",
            "last_ts": max(lasts).isoformat() if lasts else "",
            **{
                k: figures[k]
                for k in (
                    "requests",
                    "retries",
                    "rate_limited_429",
                    "server_errors_5xx",
                    "latency_p50_ms",
                    "latency_p95_ms",
                )
            },
            "rows_dropped": sum(dropped.values()),
            "dropped_by_reason": dict(sorted(dropped.items())),
            "conversions": table(["conversion", "slices"], sorted(conversions.items()))
            if conversions
            else "none",
            "slices": table(
                ["slice", "rows", "dropped", "requests", "retries", "429s", "p50 ms", "outcome"],
                (
                    (
                        str(o.key),
                        o.rows,
                        _dropped_text(o.dropped),
                        o.stats.requests,
                        o.stats.retries,
                        o.stats.rate_limited,
                        o.stats.percentile_ms(0.5),
                        o.status + (f" ({o.note})" if o.note else ""),
                    )
                    for o in mine
                ),
                limit=200,
            ),
            "sources": self.sources_table(),
            "seconds": round(self.seconds, 3),
        }


def _names(keys: Sequence[SliceKey], shown: int = 5) -> str:
    """'BINANCE_UM:BTCUSDT 2026-11-23, ... (+3)'."""
    names = sorted(f"{k.venue}:{k.instrument} {k.day}" for k in keys)
    return ", ".join(names[:shown]) + (f" (+{len(names) - shown})" if len(names) > shown else "")


def _dropped_text(dropped: Counter) -> str:
    return ", ".join(f"{n} {reason}" for reason, n in sorted(dropped.items())) if dropped else ""


# --------------------------------------------------------------------------------------------
# Planning: the retry options against the ingest log
# --------------------------------------------------------------------------------------------


def loaded_ok(
    client, database: str, source: str, dataset: str, days: Sequence[date]
) -> set[tuple[str, date]]:
    """(instrument, day) slices whose latest ingest_log attempt by `source` succeeded."""
    return _logged_slices(
        client,
        database,
        "SELECT",
        None,
        source,
        dataset,
        days,
        "GROUP BY instrument, day HAVING argMax(outcome, finished_at) = 'ok'",
    )


def not_ok_in_run(
    client, database: str, run_id: str, source: str, dataset: str, days: Sequence[date]
) -> set[tuple[str, date]]:
    """(instrument, day) slices that failed or were skipped in run `run_id`."""
    return _logged_slices(
        client, database, "SELECT DISTINCT", run_id, source, dataset, days, "AND outcome != 'ok'"
    )


def _logged_slices(
    client,
    database: str,
    select: str,
    run_id: str | None,
    source: str,
    dataset: str,
    days: Sequence[date],
    rest: str,
) -> set[tuple[str, date]]:
    """(instrument, day) of the ingest_log rows by `source` of `dataset` on `days` (of run `run_id`, when
    given): `select` "SELECT" or "SELECT DISTINCT", `rest` the SQL after the filter on days."""
    if not days:
        return set()
    run, parameters = "", {"source": source, "code": spec_for(dataset).code, "days": list(days)}
    if run_id is not None:
        run, parameters["run_id"] = "run_id = {run_id:String} AND ", run_id
    rows = client.query(
        f"{select} instrument, day FROM {clickhouse_database(database)}.ingest_log WHERE {run}source = "
        "{source:String} AND dataset = {code:String} AND day IN {days:Array(Date)} " + rest,
        parameters=parameters,
    ).result_rows
    return {(r[0], r[1]) for r in rows}


def covered(client, database: str, source: str, keys: Iterable[SliceKey]) -> dict[SliceKey, str]:
    """The slices of `keys` whose active load is of a source more faithful than `source` (the dataset's
    `fidelity`), with that source: a load of `source` would replace them with something less."""
    keys = [k for k in keys if spec_for(k.dataset).fidelity]
    found: dict[SliceKey, str] = {}
    for dataset in sorted({k.dataset for k in keys}):
        spec, mine = spec_for(dataset), [k for k in keys if k.dataset == dataset]
        active = tables.active_sources(
            client, database, dataset, {f"{k.venue}:{k.instrument}" for k in mine}, {k.day for k in mine}
        )
        for key in mine:
            holder = active.get((key.venue, key.instrument, key.day), (0, ""))[1]
            if spec.outranks(holder, source):
                found[key] = holder
    return found


def plan(
    client,
    database: str,
    source: str,
    keys: Iterable[SliceKey],
    *,
    retry_failed: bool = False,
    retry_failed_from_run: str = "",
    replace: bool = False,
    report: IngestReport | None = None,
) -> list[SliceKey]:
    """The slices to fetch under the retry options (the others are counted in `report.left_out`), less
    those a more faithful source's load holds unless `replace` (counted in `report.covered` by source)."""
    keys = list(dict.fromkeys(keys))
    keep = keys
    for dataset in sorted({k.dataset for k in keys}):
        mine = [k for k in keep if k.dataset == dataset]
        days = sorted({k.day for k in mine})
        drop: set[SliceKey] = set()
        if retry_failed_from_run:
            wanted = not_ok_in_run(client, database, retry_failed_from_run, source, dataset, days)
            drop |= {k for k in mine if (k.instrument, k.day) not in wanted}
        if retry_failed:
            done = loaded_ok(client, database, source, dataset, days)
            drop |= {k for k in mine if (k.instrument, k.day) in done}
        keep = [k for k in keep if k not in drop]
        if report is not None:
            report.left_out[dataset] = report.left_out.get(dataset, 0) + len(drop)
            report.held.update(dict.fromkeys(drop, LEFT_OUT))
    if replace:
        return keep
    held = covered(client, database, source, keep)
    if report is not None:
        for key, holder in held.items():
            report.covered.setdefault(key.dataset, Counter())[holder] += 1
            report.held[key] = COVERED_BY + holder
    return [k for k in keep if k not in held]


def day_blocks(
    days: Sequence[date], most: int, instruments: int, rows_per_day: int, max_rows: int = 2_000_000
) -> list[list[date]]:
    """A run's days cut into blocks (stages) of at most `most` days and about `max_rows` rows (~200
    MB): the whole A-share market goes a day at a time, a 150-instrument universe 20 days at a time."""
    size = max(1, min(most, max_rows // max(1, instruments * rows_per_day)))
    return [list(days[i : i + size]) for i in range(0, len(days), size)]


# --------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------


class Engine:
    """`Engine(connect, database, run_id, log=...).run(stages)`; `connect()` gives a ClickHouse
    client as a context manager (one per run, used from the writer thread)."""

    def __init__(
        self,
        connect: Callable[[], Any],
        database: str,
        run_id: str,
        *,
        log: Callable[[str], None] | None = None,
        progress_every_s: float = 10.0,
        deadline_s: float | None = None,
    ):
        self.connect, self.database, self.run_id = connect, database, run_id
        self.log = log or (lambda message: None)
        self.progress_every_s = progress_every_s
        self.deadline_s = deadline_s  # the whole run: later jobs are skipped, a fetch past it is cut off
        self.deadline: float | None = None

    def remaining(self) -> float | None:
        """Seconds left before the run's deadline (None: no deadline)."""
        return None if self.deadline is None else self.deadline - time.monotonic()

    def run(self, stages: Iterable[Sequence[Feed]]) -> IngestReport:
        started = time.monotonic()
        self.deadline = started + self.deadline_s if self.deadline_s else None
        report = IngestReport()
        with self.connect() as client:
            for stage in stages:
                report.merge(asyncio.run(self._stage(client, list(stage))))
        report.seconds = time.monotonic() - started
        return report

    async def _stage(self, client, feeds: list[Feed]) -> IngestReport:
        """The feeds concurrently; feeds with the same client factory share ONE client (one limit)."""
        report = IngestReport()
        feeds = [feed for feed in feeds if feed.jobs]
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clickhouse-writer")
        try:
            async with AsyncExitStack() as stack:
                apis = {}
                for feed in feeds:
                    if feed.client is not None and id(feed.client) not in apis:
                        apis[id(feed.client)] = await stack.enter_async_context(feed.client())
                await asyncio.gather(
                    *(
                        _FeedRun(self, client, pool, feed, report).run(apis.get(id(feed.client)))
                        for feed in feeds
                    )
                )
                for feed in feeds:
                    if feed.client is not None:
                        report.sources[feed.source] = apis[id(feed.client)].figures()
        finally:
            pool.shutdown(wait=True)
        return report


class _FeedRun:
    """One feed of a stage: fetch its jobs, settle and write its slices."""

    def __init__(self, engine: Engine, client, pool: ThreadPoolExecutor, feed: Feed, report: IngestReport):
        self.engine, self.client, self.pool, self.feed, self.report = engine, client, pool, feed, report
        self.outcomes = {key: SliceOutcome(key) for job in feed.jobs for key in job.keys}
        report.outcomes.update(self.outcomes)
        self.stopped: BaseException | None = None
        self.groups: dict[tuple, dict[SliceKey, pl.DataFrame]] = {}
        self.unsettled: dict[tuple, int] = {}
        for key in self.outcomes:
            group = self._group(key)
            self.unsettled[group] = self.unsettled.get(group, 0) + 1
        self.done = 0
        self.last_report: float | None = None  # the first settled slice is reported at once
        self.started = time.monotonic()
        self.progress_key = f"{feed.source}#{id(self)}"  # this feed's slices, for whoever shows progress
        progress.report(self.progress_key, 0, len(self.outcomes))

    async def run(self, api) -> None:
        feed = self.feed
        queue: deque[tuple[Job, int]] = deque((job, 0) for job in feed.jobs)
        self.engine.log(
            f"{feed.source}: {len(self.outcomes)} slices in {len(feed.jobs)} fetches, {feed.workers} at once"
        )
        writes: list[asyncio.Future] = []
        if feed.load is not None:
            for job in feed.jobs:
                for key in job.keys:
                    self.outcomes[key].attempts, self.outcomes[key].started_at = 1, datetime.now(UTC)
            results = await self._call(feed.load, feed.jobs)
            for key in self.outcomes.keys() - results.keys():
                results[key] = RuntimeError("the loader returned nothing for it")
            for key, result in results.items():
                if unavailable := connection.gone(result, self.client):
                    raise unavailable from None
                if isinstance(result, BaseException):
                    self._fail(key, error_text(result, str(key)))
                else:
                    self._done(key, result.rows, result.load_id, None)
                    self.outcomes[key].note = result.method
        else:
            await self._workers(api, queue, writes)
        await asyncio.gather(*writes)
        rows = [self._log_row(o) for o in self.outcomes.values()]
        await self._call(writer.log_ingest, self.engine.database, rows)
        self._progress(force=True)

    async def _workers(self, api, queue: deque, writes: list) -> None:
        async def worker() -> None:
            while queue:
                job, attempt = queue.popleft()
                remaining = self.engine.remaining()
                if self.stopped is None and remaining is not None and remaining <= 0:
                    self.stopped = TimeoutError(f"the run's deadline of {self.engine.deadline_s:g} s passed")
                    self.engine.log(
                        f"{self.feed.source}: {self.stopped}; the remaining slices are skipped "
                        "(retry_failed picks them up)"
                    )
                if self.stopped is not None:
                    for key in job.keys:
                        self._settle(
                            key,
                            "skipped",
                            f"not attempted: {self.feed.source} {key.dataset} stopped: {self.stopped}",
                            writes,
                        )
                    continue
                stats, notes = RequestStats(), FetchNotes()
                for key in job.keys:
                    outcome = self.outcomes[key]
                    outcome.attempts += 1
                    outcome.started_at = outcome.started_at or datetime.now(UTC)
                try:
                    with counting(stats), noting(notes):
                        async with asyncio.timeout(remaining):
                            fetched = await self.feed.fetch(api, job)
                except STOP_ERRORS as error:
                    if self.stopped is None:
                        self.stopped = error
                        self.engine.log(
                            f"{self.feed.source} {job.keys[0].dataset}: STOPPED, no further requests in "
                            f"this run: {error}"
                        )
                    self._fail_job(job, error, stats, writes)
                    continue
                except Exception as error:  # noqa: BLE001 - one job's failure never stops the others
                    if (
                        isinstance(error, TimeoutError)
                        and remaining is not None
                        and self.engine.remaining() <= 0
                    ):
                        # the run's deadline, mid-fetch: this job fails, the remaining ones are skipped
                        self.stopped = self.stopped or TimeoutError(
                            f"the run's deadline of {self.engine.deadline_s:g} s passed during a fetch"
                        )
                        self._fail_job(job, self.stopped, stats, writes)
                        continue
                    if len({k.instrument for k in job.keys}) > 1:
                        queue.extend((part, attempt) for part in job.split())
                        continue
                    if attempt + 1 < self.feed.attempts and not isinstance(error, SourceRequestError):
                        self.engine.log(
                            f"{self.feed.source}: {error_text(error, str(job.keys[0]))} (attempt "
                            f"{attempt + 1} of {self.feed.attempts}; retried after the others)"
                        )
                        queue.append((job, attempt + 1))
                        self.outcomes[job.keys[0]].stats.add(stats)
                        continue
                    self._fail_job(job, error, stats, writes)
                    continue
                self.outcomes[job.keys[0]].stats.add(stats)  # a job's requests count on its first slice
                self._note(job, notes)
                self._take(job, fetched, writes)

        await asyncio.gather(*(worker() for _ in range(min(self.feed.workers, max(1, len(queue))))))

    # ---- settling slices and writing groups -------------------------------------------------

    def _fail_job(self, job: Job, error: BaseException, stats: RequestStats, writes: list) -> None:
        self.outcomes[job.keys[0]].stats.add(stats)
        for key in job.keys:
            self._settle(key, "failed", error_text(error, str(key)), writes)

    def _note(self, job: Job, notes: FetchNotes) -> None:
        """A fetch's drops count on the slice of the dropped row's day where the parser knows it,
        else on its first slice of the instrument; its conversions apply to every slice."""
        seen: set[str] = set()
        for key in job.keys:
            outcome = self.outcomes[key]
            outcome.dropped.update(notes.dropped_on.get((key.instrument, key.day), {}))
            if key.instrument not in seen:
                seen.add(key.instrument)
                outcome.dropped.update(notes.dropped.get(key.instrument, {}))
            outcome.conversions = list(notes.conversions.get(key.instrument, {}))

    def _implausible(self, job: Job, frame: pl.DataFrame) -> pl.DataFrame:
        """The frame without rows of implausible times (core.plausibility), counted as `implausible_time`
        on the job's first slice of their instrument (as `_note` places a fetch's drops)."""
        kept, rejected = drop_implausible(frame, Counter())
        if rejected.height:
            first = {}
            for key in job.keys:
                first.setdefault(key.instrument, key)
            for instrument, rows in rejected.group_by("instrument").len().iter_rows():
                if instrument in first:
                    self.outcomes[first[instrument]].dropped["implausible_time"] += rows
            self.engine.log(
                f"{self.feed.source}: {rejected.height} fetched row(s) with an implausible timestamp "
                f"dropped ({job.keys[0]}...), e.g. {rejected['instrument'][0]}: {rejected['reason'][0]}"
            )
        return kept

    def _take(self, job: Job, fetched: Fetched, writes: list) -> None:
        """Cut the fetched frame into the job's slices; rows no slice of the job holds are counted.
        Batches are written as they are read, on the writer thread."""
        if isinstance(fetched, Batches):
            self._start_write(writes, self._write_batches, job, fetched)
            return
        frame, venues = fetched if isinstance(fetched, tuple) else (fetched, {})
        frame = self._implausible(job, frame) if frame.height and "venue" in frame.columns else frame
        taken = 0
        for key in job.keys:
            start, end = day_window(key.day)
            part = (
                frame.filter(
                    (pl.col("instrument") == key.instrument) & (pl.col("ts") >= start) & (pl.col("ts") < end)
                )
                if frame.height
                else frame
            )
            taken += part.height
            venue = key.venue or venues.get(key.instrument) or (part["venue"][0] if part.height else "")
            self._settle(key, "fetched", "", writes, part, venue)
        if frame.height > taken:
            self.engine.log(
                f"{self.feed.source}: {frame.height - taken} fetched row(s) outside the requested "
                f"slices ({job.keys[0]}...) not written"
            )

    def _settle(
        self,
        key: SliceKey,
        status: str,
        error: str,
        writes: list,
        frame: pl.DataFrame | None = None,
        venue: str = "",
    ) -> None:
        outcome = self.outcomes[key]
        group = self._group(key)
        if status == "fetched":
            self.groups.setdefault(group, {})[replace(key, venue=venue or key.venue)] = frame
        else:
            outcome.settle(status, error)
            self._count_done()
        self.unsettled[group] -= 1
        if self.unsettled[group] == 0:
            slices = self.groups.pop(group, {})
            if slices:
                self._start_write(writes, self._write_group, group, slices)

    def _start_write(self, writes: list, fn, *args) -> None:
        """`fn(client, *args)` on the writer thread, awaited with the feed's other writes."""
        write = asyncio.ensure_future(self._call(fn, *args))
        write.add_done_callback(self._stop_when_gone)
        writes.append(write)

    def _stop_when_gone(self, write: asyncio.Future) -> None:
        """The store went away under a write: no further fetch (the write's error ends the run)."""
        if not write.cancelled() and isinstance(write.exception(), StoreUnavailable) and self.stopped is None:
            self.stopped = write.exception()
            self.engine.log(f"{self.feed.source}: STOPPED: {self.stopped}")

    def _group(self, key: SliceKey) -> tuple:
        return (key.dataset, key.day) if self.feed.by_day else (key.dataset, key.day, key.instrument)

    def _write_group(self, client, group: tuple, slices: dict[SliceKey, pl.DataFrame]) -> None:
        """Runs on the writer thread: one write per venue of the group."""
        dataset, day = group[:2]
        if self.feed.skip_empty_days and all(frame.height == 0 for frame in slices.values()):
            self.engine.log(
                f"{self.feed.source} {dataset} {day}: no rows for any of {len(slices)} instruments: "
                "not a trading day, nothing written"
            )
            for key in slices:
                self._done(key, 0, 0, None, note="not a trading day (no bars for any instrument)")
            return
        by_venue: dict[str, dict[SliceKey, pl.DataFrame]] = {}
        for key, frame in slices.items():
            by_venue.setdefault(key.venue, {})[key] = frame
        for venue, items in by_venue.items():
            try:
                self._write_venue(client, dataset, venue, day, items)
            except Exception as error:  # noqa: BLE001 - the write failed: its slices failed
                if unavailable := connection.gone(error, client):
                    raise unavailable from None  # the server went away: the run stops, the next one resumes
                message = f"{self.feed.source} {venue}:{dataset} {day}: write failed: {error}"
                self.engine.log(message)
                for key in items:
                    if self.outcomes[self._original(key)].status not in OUTCOMES:
                        self._fail(key, message)

    def _write_venue(
        self, client, dataset: str, venue: str, day: date, items: dict[SliceKey, pl.DataFrame]
    ) -> None:
        if not venue:
            for key in items:
                self._fail(key, f"{key}: the source named no venue for it")
            return
        try:  # the whole group in one write (it validates every frame first: nothing is written if one fails)
            good, written = items, self._write(client, dataset, venue, day, items)
        except ValueError:  # find the bad frames; the others are written
            good = {}
            for key, frame in items.items():
                try:
                    good[key] = writer.validate_frame(frame, dataset, venue, key.instrument, day)
                except ValueError as error:
                    self._fail(key, f"{self.feed.source} {error}")
            if not good:
                return
            written = self._write(client, dataset, venue, day, good)
        for key, frame in good.items():
            self._done(key, frame.height, written[key.instrument].load_id, frame)
        if len(good) > 1:  # one slice's write is in the progress line, the metadata and the ingest log (a
            # line each would be an event-log row per slice: 5 ms of a run's CPU each at 2,000 instruments)
            rows = sum(f.height for f in good.values())
            self.engine.log(
                f"wrote {dataset} {venue} {day}: {len(good)} instruments, {rows:,} rows in one load batch"
            )

    def _write(
        self, client, dataset: str, venue: str, day: date, items: dict[SliceKey, pl.DataFrame]
    ) -> dict:
        """One load per instrument and one pointer flip for the group (`append`: after the day's rows)."""
        db = self.engine.database
        frames = list(items.values())
        if self.feed.append:
            start, end = day_window(day)
            frames += [
                tables.read_range(client, db, dataset, venue, key.instrument, start, end) for key in items
            ]
        return writer.write_slices(
            client,
            db,
            dataset,
            pl.concat(frames, how="vertical"),
            venue,
            day,
            self.engine.run_id,
            instruments=[key.instrument for key in items],
        )

    def _write_batches(self, client, job: Job, fetched: Batches) -> None:
        """Runs on the writer thread: one instrument's slices from the batches as they are read (rows
        of implausible times dropped and counted, as `_take` does), every pointer flipped at the end."""
        first = job.keys[0]
        days = {key.day: key for key in job.keys}

        def batches() -> Iterator[pl.DataFrame]:
            for batch in fetched.read():
                yield self._implausible(job, batch) if batch.height and "venue" in batch.columns else batch

        notes = FetchNotes()
        try:
            with noting(notes):  # the reading's drops count as a fetch's do
                written = writer.write_streamed(
                    client,
                    self.engine.database,
                    first.dataset,
                    first.venue,
                    first.instrument,
                    list(days),
                    batches(),
                    self.engine.run_id,
                )
        except Exception as error:  # noqa: BLE001 - the read or the write failed: its slices failed
            if unavailable := connection.gone(error, client):
                raise unavailable from None
            for key in job.keys:
                self._fail(key, error_text(error, str(key)))
            return  # its drops not counted: as a fetch that failed
        finally:
            fetched.close()
        self._note(job, notes)
        for day, key in days.items():
            result = written[day]
            self._done(key, result.rows, result.load_id, None, note=result.method)
            if result.rows:
                self.outcomes[key].first_ts, self.outcomes[key].last_ts = result.first_ts, result.last_ts

    def _original(self, key: SliceKey) -> SliceKey:
        return key if key in self.outcomes else replace(key, venue="")

    def _done(
        self, key: SliceKey, rows: int, load_id: int, frame: pl.DataFrame | None, note: str = ""
    ) -> None:
        outcome = self.outcomes[self._original(key)]
        outcome.key = key
        outcome.rows, outcome.load_id, outcome.note = rows, load_id, note
        if frame is not None and frame.height:
            outcome.first_ts, outcome.last_ts = frame["ts"].min(), frame["ts"].max()
        outcome.settle("ok")
        self._count_done()

    def _fail(self, key: SliceKey, message: str) -> None:
        outcome = self.outcomes[self._original(key)]
        outcome.key = key
        outcome.settle("failed", message)
        self._count_done()

    async def _call(self, fn, *args):
        """`fn(client, *args)` on the writer thread (every ClickHouse call of a run, one at a time)."""
        return await asyncio.get_running_loop().run_in_executor(self.pool, lambda: fn(self.client, *args))

    # ---- the log ----------------------------------------------------------------------------

    def _log_row(self, o: SliceOutcome) -> dict:
        now = datetime.now(UTC)
        return {
            "run_id": self.engine.run_id,
            "source": self.feed.source,
            "dataset": spec_for(o.key.dataset).code,
            "venue": o.key.venue,
            "instrument": o.key.instrument,
            "day": o.key.day,
            "rows": o.rows,
            "requests": o.stats.requests,
            "retries": o.stats.retries,
            "rate_limited": o.stats.rate_limited,
            "latency_p50_ms": o.stats.percentile_ms(0.5) or 0.0,
            "latency_p95_ms": o.stats.percentile_ms(0.95) or 0.0,
            "outcome": o.status if o.status in OUTCOMES else "failed",
            "error": o.error or o.note,
            "load_id": o.load_id,
            "started_at": o.started_at or now,
            "finished_at": o.finished_at or now,
            "dropped": dict(o.dropped),
            "conversions": o.conversions,
        }

    def _count_done(self) -> None:
        self.done += 1
        progress.report(self.progress_key, self.done, len(self.outcomes))
        self._progress()

    def _progress(self, force: bool = False) -> None:
        now = time.monotonic()
        if (
            not force
            and self.last_report is not None
            and now - self.last_report < self.engine.progress_every_s
        ):
            return
        self.last_report = now
        counts = {s: sum(o.status == s for o in self.outcomes.values()) for s in OUTCOMES}
        rows = sum(o.rows for o in self.outcomes.values() if o.status == "ok")
        eta = progress.eta_text(self.done, len(self.outcomes), now - self.started)
        self.engine.log(
            f"{self.feed.source}: {self.done}/{len(self.outcomes)} slices settled ({counts['ok']} ok, "
            f"{counts['failed']} failed, {counts['skipped']} skipped), {rows:,} rows written"
            + (f", {eta}" if eta else "")
        )
