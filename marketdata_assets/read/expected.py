"""What should be stored, day by day, and why a day that should be is not.

An instrument-day of a dataset is expected when the day is over (before today, UTC), on or after its
universe's `history_start`, a trading day of the venue (core.calendars; a crypto venue trades every
day), the instrument is in the venue's universe that day (the sources file's rule on the stored
instrument master, with the explicit instruments: datasets.universe) and the venue's source serves the
dataset for it. Days that are not expected have a reason (:data:`NOT_LISTED`, ...) and are never
counted missing. A missing expected day has one too, with the command that loads it: the REST reach
of a venue is a reason a day is missing, not a reason it is not expected.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import polars as pl

from marketdata_assets.core.identifiers import clickhouse_database
from marketdata_assets.core.naming import A_SHARE_VENUES
from marketdata_assets.datasets.frames import DATASETS, day_window
from marketdata_assets.datasets.instruments import Master
from marketdata_assets.datasets.universe import UniverseRule, resolve
from marketdata_assets.datasets.volumes import Volumes, needed
from marketdata_assets.read.gaps import expected_days
from marketdata_assets.sources.interface import HISTORY
from marketdata_assets.sources.registry import source
from marketdata_assets.sources.venues import VENUES, serves
from marketdata_assets.stores.clickhouse import tables
from marketdata_assets.stores.clickhouse.instruments import TABLE as INSTRUMENTS
from marketdata_assets.stores.clickhouse.instruments import read_versions
from marketdata_assets.stores.clickhouse.volumes import TABLE as VOLUMES
from marketdata_assets.stores.clickhouse.volumes import read_volumes, snapshot_times

NOT_LISTED = "not listed"  # the venue did not list it that day (before its listing, after its end)
NOT_IN_UNIVERSE = "not in the universe"  # listed, but the rule leaves it out that day
BEFORE_START = "before history_start"
CLOSED = "closed"  # not a trading day of the venue, or not over yet
SHOWN = 5  # reasons a missing text names (the rest counted)


def domain(venue: str) -> str:
    """The `marketdata backfill` domain loading `venue`'s history: crypto, a_shares or yahoo."""
    if venue in VENUES:
        return "crypto"
    return "a_shares" if venue in A_SHARE_VENUES else "yahoo"


def _source(venue: str):
    return source({"crypto": venue, "a_shares": "TUSHARE", "yahoo": "YAHOO"}[domain(venue)])


def loads(dataset: str, venue: str, instrument: str) -> bool:
    """The venue's history source serves `dataset` for `instrument` (on some day)."""
    if venue in VENUES:
        try:
            return serves(venue, dataset, instrument) == HISTORY
        except ValueError:  # a name its naming cannot read: no run asks for it
            return False
    return _source(venue).datasets.get(dataset) == HISTORY


@dataclass
class Universes:
    """Each venue's universe per day (`rules`: crypto and A-share venues, on `master`) and the history start
    of each (`starts`); `names`: instruments of a universe without venues (Yahoo's symbols, any
    exchange) -> their history start."""

    master: Master
    rules: Mapping[str, UniverseRule]
    starts: Mapping[str, date]
    names: Mapping[str, date] = field(default_factory=dict)
    volumes: Volumes | None = None
    _days: dict = field(default_factory=dict, repr=False)  # (venue, first day of a stretch) -> universe
    _bounds: dict = field(default_factory=dict, repr=False)  # venue -> the days its universe can change on
    _calendar: dict = field(default_factory=dict, repr=False)  # (venue, first, last, today) -> trading days
    _ever: dict = field(default_factory=dict, repr=False)  # venue -> every instrument its universe named

    @classmethod
    def of(cls, config, master: Master, volumes: Volumes | None = None) -> Universes:
        """The universes of the sources config `config` (sources.config.SourcesConfig) on `master`."""
        crypto, shares = config.crypto_rules(), config.a_share_rules()
        starts = {v: config.crypto_history_start for v in crypto}
        starts.update({v: config.a_share_history_start for v in shares})
        names = {name: config.yahoo_history_start for name in config.yahoo_instruments}
        return cls(master, {**crypto, **shares}, starts, names, volumes)

    def covers(self, venue: str, instrument: str) -> bool:
        """A universe names `instrument` of `venue` (on some day from its history_start to yesterday), so it
        says on which days the instrument is expected; one it never names (a dump file's) it does not."""
        if venue in self.rules:
            if venue not in self._ever:
                today = datetime.now(UTC).date()
                self._ever[venue] = self.members(venue, date.min, today, today)
            return instrument in self._ever[venue]
        return domain(venue) == "yahoo" and instrument in self.names

    def start(self, venue: str, instrument: str) -> date:
        return self.starts[venue] if venue in self.rules else self.names[instrument]

    def _changes(self, venue: str) -> list[date]:
        """The days `venue`'s universe can change on: each day a version of an instrument the rule can take
        (one of its versions admitted by it, or explicit) starts, is listed or ends, or a volume snapshot is
        taken, and the day after each (listed_on compares with the day's bounds)."""
        if venue not in self._bounds:
            rule = self.rules[venue]
            histories = [self.master.history(venue, key[1]) for key in self.master.current(venue)]
            stamps = [
                stamp
                for history in histories
                if history[-1].instrument.instrument in rule.explicit
                or any(rule.admits(v.instrument) for v in history)
                for v in history
                for stamp in (v.valid_from, v.instrument.listed, v.instrument.expires)
            ]
            stamps += self.volumes.times.get(venue, []) if self.volumes is not None else []
            days = {t.astimezone(UTC).date() for t in stamps if t is not None}
            self._bounds[venue] = sorted(days | {day + timedelta(days=1) for day in days})
        return self._bounds[venue]

    def _of(self, venue: str, day: date) -> set[str]:
        """The universe on `day`: resolved once per stretch of days between its changes (a venue's thousands
        of instruments over years of days take a minute day by day)."""
        bounds = self._changes(venue)
        at = bisect.bisect_right(bounds, day)
        key = (venue, max(bounds[at - 1] if at else date.min, self.starts[venue]))
        if key not in self._days:
            self._days[key] = set(resolve(self.master, self.rules[venue], key[1], self.volumes))
        return self._days[key]

    def _listed(self, venue: str, instrument: str, day: date) -> bool:
        """The venue listed `instrument` on `day` (its version of that day says so)."""
        return self.master.on_day(venue, instrument, day) is not None

    def why_not(self, venue: str, instrument: str, day: date, today: date) -> str | None:
        """None if `instrument` of `venue` is expected on `day` (of a dataset its source serves), else why
        not; an instrument no universe covers: None (the caller decides)."""
        if not self.covers(venue, instrument):
            return None
        if day < self.start(venue, instrument):
            return BEFORE_START
        if not expected_days(venue, day, day, today):
            return CLOSED
        if venue not in self.rules:
            return None
        if instrument in self._of(venue, day):
            return None
        return NOT_IN_UNIVERSE if self._listed(venue, instrument, day) else NOT_LISTED

    def _trading(self, venue: str, first: date, last: date, today: date) -> list[date]:
        """read.gaps.expected_days, once per venue and range (a calendar's days are not free)."""
        key = (venue, first, last, today)
        if key not in self._calendar:
            self._calendar[key] = expected_days(venue, first, last, today)
        return self._calendar[key]

    def days(self, venue: str, instrument: str, first: date, last: date, today: date) -> list[date]:
        """The days of [first, last] `instrument` of `venue` is expected on (a covered instrument)."""
        days = self._trading(venue, max(first, self.start(venue, instrument)), last, today)
        if venue not in self.rules:
            return days
        return [day for day in days if instrument in self._of(venue, day)]

    def members(self, venue: str, first: date, last: date, today: date) -> set[str]:
        """Every instrument in `venue`'s universe on some expected day of [first, last] (a rule's venue)."""
        if venue not in self.rules:
            return set()
        days = self._trading(venue, max(first, self.starts[venue]), last, today)
        return set().union(*(self._of(venue, day) for day in days))


def expectation(universes: Universes, dataset: str, full_day: Callable, fallback: Callable, today: date):
    """(venue, instrument, day) -> `full_day(venue, day)` on an expected day of `dataset`, None on another;
    an instrument no universe covers: `fallback(venue, instrument, day)`."""

    def expected(venue: str, instrument: str, day: date):
        if not universes.covers(venue, instrument) or not loads(dataset, venue, instrument):
            return fallback(venue, instrument, day)
        return None if universes.why_not(venue, instrument, day, today) else full_day(venue, day)

    return expected


def expected_instruments(
    universes: Universes, dataset: str, first: date, last: date, today: date
) -> list[tuple[str, str]]:
    """(venue, instrument) of every universe member expected to have `dataset` on a day of [first, last]."""
    return [
        (venue, name)
        for venue in sorted(universes.rules)
        for name in sorted(universes.members(venue, first, last, today))
        if loads(dataset, venue, name)
    ]


def stored_universes(client, database: str, config) -> Universes:
    """The universes of `config` on the stored instrument master (and volume snapshots for top-N rules);
    a store without the master's table: the explicit instruments only."""
    master = Master(read_versions(client, database) if tables.exists(client, database, INSTRUMENTS) else [])
    rules = {**config.crypto_rules(), **config.a_share_rules()}
    topped = {venue for venue, rule in rules.items() if rule.top is not None}
    volumes = None
    if topped and tables.exists(client, database, VOLUMES):
        times = snapshot_times(client, database, topped)
        start = min(config.crypto_history_start, config.a_share_history_start)
        days = [start + timedelta(days=i) for i in range((datetime.now(UTC).date() - start).days)]
        volumes = Volumes(read_volumes(client, database, needed(times, days)), times)
    return Universes.of(config, master, volumes)


def _span(days: list[date]) -> str:
    return f"{days[0]}" if len(days) == 1 else f"{len(days):,} days {days[0]}..{days[-1]}"


def _beyond(venue: str, instrument: str, days: list[date], reach, archives) -> list[tuple[list[date], str]]:
    """Days past the REST reach: those the Binance archives of the sources file (`archives`) load, with the
    command, and the others with where their days come from (and why not from the archives)."""
    head = f"past the REST reach of {venue} ({reach.text})"
    if not reach.assets:
        return [(days, f"{head}: {reach.older_from}")]
    if archives is None or (venue, instrument) not in {
        (k.venue, k.instrument) for k in archives.instrument_keys()
    }:
        why = f"{venue}:{instrument} is not among the instruments of binance_archives in the sources file"
        return [(days, f"{head}: {reach.older_from} ({why})")]
    held = [day for day in days if day >= archives.start_date]
    rest = [day for day in days if day < archives.start_date]
    out = []
    if held:
        command = f"marketdata backfill archives --start-date {held[0]} --end-date {held[-1]}"
        out.append((held, f"{head}: load from the archive: {command}"))
    if rest:
        why = f"binance_archives start on {archives.start_date} in the sources file"
        out.append((rest, f"{head}: {reach.older_from} ({why})"))
    return out


def why_missing(
    dataset: str,
    venue: str,
    instrument: str,
    days: Iterable[date],
    archives=None,
    now: datetime | None = None,
) -> list[tuple[list[date], str]]:
    """The missing expected `days` grouped by their reason, each with the command that loads them:
    "not loaded: marketdata backfill crypto --start-date A --end-date B" within the source's REST history,
    "past the REST reach of BINANCE_UM (48 hours): load from the archive: marketdata backfill archives ..."
    (`archives`: the sources file's ArchiveSettings) or where older days come from, beyond it."""
    days = sorted(days)
    reach = _source(venue).reach.get(dataset)
    now = now or datetime.now(UTC)
    edge = None if reach is None else now - reach.span
    beyond = [d for d in days if edge is not None and day_window(d)[0] < edge]
    within = days[len(beyond) :]  # sorted: the days past the reach come first
    out = []
    if within:
        command = f"marketdata backfill {domain(venue)} --start-date {within[0]} --end-date {within[-1]}"
        out.append((within, f"not loaded: {command}"))
    if beyond:
        out += _beyond(venue, instrument, beyond, reach, archives)
    return out


def missing_text(groups: list[tuple[list[date], str]]) -> str:
    """'29 days 2026-10-29..2026-11-26 not loaded: marketdata backfill crypto ...; 2025-01-02 past ...'."""
    return "; ".join(f"{_span(days)} {reason}" for days, reason in groups)


def stored_days(client, database: str) -> dict[tuple[str, str, str], set[date]]:
    """(dataset, venue, instrument) -> the days with an active load (one grouped query)."""
    names = {spec.code: spec.name for spec in DATASETS.values()}
    rows = client.query(
        "SELECT dataset, venue, instrument, groupArray(day) FROM "
        f"{clickhouse_database(database)}.{tables.LOADS} FINAL GROUP BY dataset, venue, instrument"
    ).result_rows
    return {(names.get(code, code), venue, name): set(days) for code, venue, name, days in rows}


def _history_datasets(venue: str) -> list[str]:
    return sorted(name for name, mode in _source(venue).datasets.items() if mode == HISTORY)


def with_expected(
    frame: pl.DataFrame, stored: Mapping, universes: Universes, archives=None, today: date | None = None
) -> pl.DataFrame:
    """The catalog's ClickHouse rows (`frame`, tables.coverage's columns) counting as missing the expected
    days without an active load (`stored`: stored_days) and naming them with their reasons
    (`missing_reasons`), plus a row for each instrument-dataset a universe expects and nothing is stored
    of; rows no universe covers keep the days missing between their first and last day."""
    today = today or datetime.now(UTC).date()
    yesterday = today - timedelta(days=1)
    expected: dict[tuple[str, str], list[date]] = {}

    def judged(dataset: str, venue: str, instrument: str) -> tuple[int, str | None] | None:
        if not universes.covers(venue, instrument) or not loads(dataset, venue, instrument):
            return None
        if (venue, instrument) not in expected:
            expected[(venue, instrument)] = universes.days(venue, instrument, date.min, yesterday, today)
        have = stored.get((dataset, venue, instrument), set())
        missing = [day for day in expected[(venue, instrument)] if day not in have]
        return len(missing), missing_text(why_missing(dataset, venue, instrument, missing, archives)) or None

    rows = frame.to_dicts()
    for row in rows:
        found = judged(row["dataset"], row["venue"], row["instrument"])
        row["missing_reasons"] = None
        if found is not None:
            row["missing_days"], row["missing_reasons"] = found
    have = {(r["dataset"], r["venue"], r["instrument"]) for r in rows}
    for venue in sorted(universes.rules):
        for instrument in sorted(universes.members(venue, date.min, yesterday, today)):
            for dataset in _history_datasets(venue):
                found = None if (dataset, venue, instrument) in have else judged(dataset, venue, instrument)
                if found is not None and found[0]:
                    rows.append(_absent(dataset, venue, instrument, *found))
    out = pl.DataFrame(rows, schema={**frame.schema, "missing_reasons": pl.String})
    return out.sort("dataset", "venue", "instrument")


def _absent(dataset: str, venue: str, instrument: str, missing: int, reasons: str | None) -> dict:
    """A catalog row of an expected instrument-dataset with nothing stored."""
    return {
        "dataset": dataset,
        "venue": venue,
        "instrument": instrument,
        "days": 0,
        "days_with_rows": 0,
        "missing_days": missing,
        "rows": 0,
        "failed_days": 0,
        "missing_reasons": reasons,
    }
