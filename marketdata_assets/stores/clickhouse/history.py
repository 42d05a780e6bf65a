"""The load history: every flip of the load pointer, kept, so a read can ask what the store showed at
an earlier time (``as_of``), the bitemporal record of the tick tables.

``loads`` is a ``ReplacingMergeTree(load_id)``: a merge keeps only each slice's latest load, so the
flips it replaced disappear. ``load_history`` (plain MergeTree, ``loads``' columns plus ``recorded``)
is fed by the materialized view ``load_history_mv`` on ``loads``, so a flip stays ONE insert (into
``loads``; the view writes the same block into the history) and nothing in the writers changes.
Created by :func:`ensure_history` from tables.ensure_tables (idempotent). A store that had loads
before the history existed is backfilled once: from ``loads`` as it stands (the rows no merge has
replaced yet; ``recorded = 'loads'``) and from the ``ok`` rows of ``ingest_log`` (every engine
write names its load id; ``loaded_at`` is then the row's ``finished_at``, moments after the flip, and
``rows`` the rows the run fetched, which for snapshot feeds is less than the slice's total:
``recorded = 'ingest_log'``). Loads made before and known to neither are not in the history; an
``as_of`` before them reads what the history has.

:func:`loads_as_of` picks, per slice, the largest load id whose flip happened at or before ``as_of``.
Rows of superseded loads survive until compaction (tables.compact_month drops them, a month at a
time): :func:`check_not_compacted` compares each picked load's rows with the history's count and
raises :class:`CompactedAway` naming the slices whose rows are gone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from marketdata_assets.core.identifiers import clickhouse_database
from marketdata_assets.datasets.frames import LC, Dataset

LOAD_HISTORY = "load_history"
LOAD_HISTORY_MV = "load_history_mv"
PENDING = "backfill pending"
DONE = "backfilled"
COLUMNS = "dataset, venue, instrument, day, load_id, rows, run_id, loaded_at"


class CompactedAway(LookupError):
    """An ``as_of`` read needs a superseded load whose rows compaction has dropped."""


@dataclass(frozen=True)
class HistoricLoad:
    venue: str
    instrument: str
    day: date
    load_id: int
    rows: int
    loaded_at: datetime


def history_ddl(database: str) -> list[str]:
    """The history table, then the view that feeds it (every insert into ``loads`` from then on). The
    ALTER is metadata only, and a no-op once the column is there."""
    db = clickhouse_database(database)
    # the columns of `loads` (AS: they stay the same), plus where a row came from
    table = (
        f"CREATE TABLE IF NOT EXISTS {db}.{LOAD_HISTORY} AS {db}.loads ENGINE = MergeTree "
        f"ORDER BY (dataset, venue, instrument, day, load_id) COMMENT '{PENDING}'"
    )
    recorded = f"ALTER TABLE {db}.{LOAD_HISTORY} ADD COLUMN IF NOT EXISTS `recorded` {LC} DEFAULT 'flip'"
    view = (
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{LOAD_HISTORY_MV} TO {db}.{LOAD_HISTORY} AS\n"
        f"SELECT {COLUMNS} FROM {db}.loads"
    )
    return [table, recorded, view]


def ensure_history(client, database: str) -> int:
    """Create the history and its view if missing; backfill it once (see the module docstring).
    Returns the rows backfilled now (0 when it was done before)."""
    for statement in history_ddl(database):
        client.command(statement)
    comment = client.command(
        "SELECT comment FROM system.tables WHERE database = {db:String} AND name = {t:String}",
        parameters={"db": database, "t": LOAD_HISTORY},
    )
    if not str(comment).startswith(PENDING):
        return 0
    db = clickhouse_database(database)
    missing = f"load_id NOT IN (SELECT load_id FROM {db}.{LOAD_HISTORY})"
    before = int(client.command(f"SELECT count() FROM {db}.{LOAD_HISTORY}") or 0)
    client.command(
        f"INSERT INTO {db}.{LOAD_HISTORY} ({COLUMNS}, recorded) SELECT {COLUMNS}, 'loads' "
        f"FROM {db}.loads WHERE {missing}"
    )
    client.command(
        f"INSERT INTO {db}.{LOAD_HISTORY} ({COLUMNS}, recorded) SELECT argMax(dataset, finished_at), "
        "argMax(venue, finished_at), argMax(instrument, finished_at), argMax(day, finished_at), load_id, "
        "max(rows), argMax(run_id, finished_at), max(finished_at), 'ingest_log' "
        f"FROM {db}.ingest_log WHERE outcome = 'ok' AND load_id != 0 AND dataset != '' AND {missing} "
        "GROUP BY load_id"
    )
    after = int(client.command(f"SELECT count() FROM {db}.{LOAD_HISTORY}") or 0)
    client.command(f"ALTER TABLE {db}.{LOAD_HISTORY} MODIFY COMMENT '{DONE}'")
    return after - before


def _where(venue: str | None, instruments: list[str] | None) -> str:
    where = "dataset = {code:String} AND day >= {first_day:Date} AND day <= {last_day:Date}"
    if venue is not None:
        where += " AND venue = {venue:String}"
    if instruments is not None:
        where += " AND instrument IN {instruments:Array(String)}"
    return where


def loads_as_of(
    client,
    database: str,
    spec: Dataset,
    venue: str | None,
    instruments: list[str] | None,
    first_day: date,
    last_day: date,
    as_of: datetime,
) -> list[HistoricLoad]:
    """Per slice of the range, the load that was active at ``as_of``: the largest load id whose flip
    (``loaded_at``) happened at or before it. Slices first loaded later are absent."""
    sql = (
        "SELECT venue, instrument, day, max(load_id) AS id, argMax(rows, load_id), argMax(loaded_at, "
        f"load_id) FROM {clickhouse_database(database)}.{LOAD_HISTORY} "
        f"WHERE {_where(venue, instruments)} AND loaded_at <= {{as_of:DateTime64(3, 'UTC')}} "
        "GROUP BY venue, instrument, day ORDER BY venue, instrument, day"
    )
    params = {
        "code": spec.code,
        "venue": venue,
        "instruments": instruments,
        "first_day": first_day,
        "last_day": last_day,
        "as_of": as_of,
    }
    return [
        HistoricLoad(v, i, d, int(lid), int(n), at)
        for v, i, d, lid, n, at in client.query(sql, parameters=params).result_rows
    ]


def check_not_compacted(
    client, database: str, spec: Dataset, loads: list[HistoricLoad], as_of: datetime
) -> None:
    """:class:`CompactedAway` when a load's rows in its table are fewer than the history recorded
    (compaction drops a superseded load's rows, all of them, a month at a time)."""
    wanted = {h.load_id: h for h in loads if h.rows}
    if not wanted:
        return
    first, last = min(h.day for h in wanted.values()), max(h.day for h in wanted.values())
    found = dict(
        client.query(
            f"SELECT load_id, count() FROM {clickhouse_database(database)}.`{spec.table}` "
            "WHERE venue IN {venues:Array(String)} AND instrument IN {instruments:Array(String)} "
            "AND ts >= {first:Date} AND ts < {last:Date} + 1 AND load_id IN {ids:Array(UInt64)} GROUP BY "
            "load_id",
            parameters={
                "venues": sorted({h.venue for h in wanted.values()}),
                "instruments": sorted({h.instrument for h in wanted.values()}),
                "first": first,
                "last": last,
                "ids": list(wanted),
            },
        ).result_rows
    )
    gone = [h for h in wanted.values() if int(found.get(h.load_id, 0)) < h.rows]
    if gone:
        names = ", ".join(
            f"{h.venue}:{h.instrument} {h.day} (load {h.load_id} of {h.loaded_at:%Y-%m-%d %H:%M:%S} UTC, "
            f"{h.rows} rows, {int(found.get(h.load_id, 0))} left)"
            for h in gone[:5]
        )
        raise CompactedAway(
            f"{spec.name} as of {as_of.isoformat()}: the rows of {len(gone)} superseded load(s) were "
            "dropped by compaction (tick_compaction), so what the store showed then cannot be read any "
            f"more: {names}{' ...' if len(gone) > 5 else ''}. Read a later as_of, or without as_of (the "
            "latest)."
        )
