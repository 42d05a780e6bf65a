"""The ids of each load of a sequenced dataset (a `seq` column), measured in the store once, when the
writer has inserted the load and before its pointer flips: rows, first and last id, distinct ids (a
bitmap), hole ranges. Loads are append-only, so the trade-id check (quality.continuity) reads these
figures and one count of the load's rows instead of its ids. Design: docs/crypto-datasets.md,
"Trade-id continuity and its refill".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta

from marketdata_assets.core.identifiers import clickhouse_database
from marketdata_assets.datasets.frames import LC, Dataset
from marketdata_assets.stores.clickhouse import cluster

LOAD_IDS = "load_ids"
KEPT_RANGES = 1_000  # hole ranges kept per load (a load with more: its ranges are read from its rows)
_COLUMNS = ("dataset", "load_id", "rows", "without_id", "first_id", "last_id", "distinct_ids", "ranges")
_COLUMNS += ("missing", "holes", "measured_at")


def load_ids_ddl(database: str) -> str:
    return f"""CREATE TABLE IF NOT EXISTS {clickhouse_database(database)}.`{LOAD_IDS}` (
    `dataset` {LC},
    `load_id` UInt64,
    `rows` UInt64,
    `without_id` UInt64,
    `first_id` Nullable(Int64),
    `last_id` Nullable(Int64),
    `distinct_ids` Nullable(UInt64),
    `ranges` UInt64,
    `missing` UInt64,
    `holes` Array(Tuple(Int64, Int64)),
    `measured_at` DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree(measured_at)
ORDER BY load_id"""


@dataclass(frozen=True)
class LoadIds:
    """The ids of one load's rows. `distinct` None: not measured (an id below 0), and then the ranges
    are unknown; else `missing` = last - first + 1 - distinct, in `ranges` ranges, the first
    `KEPT_RANGES` of them in `holes` (first missing, last missing), in id order."""

    load_id: int
    rows: int
    without_id: int = 0
    first_id: int | None = None
    last_id: int | None = None
    distinct: int | None = None
    ranges: int = 0
    missing: int = 0
    holes: tuple[tuple[int, int], ...] = ()

    def holes_known(self, max_ranges: int) -> bool:
        """Whether these figures tell the load's first `max_ranges` hole ranges."""
        return self.distinct is not None and (len(self.holes) == self.ranges or len(self.holes) >= max_ranges)


def has_ids(spec: Dataset) -> bool:
    return "seq" in spec.column_names


def measure(
    client, database: str, spec: Dataset, venue: str, instruments: Sequence[str], days: Sequence[date], loads
) -> dict[int, LoadIds]:
    """The ids of the new `loads` of `instruments` on `days` (their rows in those days), as stored now:
    one read of their ids (a bitmap of them: exact distinct ids), a second only for the loads with
    holes (their first `KEPT_RANGES` ranges). A load without rows is left out."""
    start = datetime(min(days).year, min(days).month, min(days).day, tzinfo=UTC)
    end = datetime(max(days).year, max(days).month, max(days).day, tzinfo=UTC) + timedelta(days=1)
    where = (
        "venue = {venue:String} AND instrument IN {instruments:Array(String)} AND ts >= "
        "{start:DateTime64(6, 'UTC')} AND ts < {end:DateTime64(6, 'UTC')} "
        "AND load_id IN {loads:Array(UInt64)}"
    )
    params = {
        "venue": venue,
        "instruments": list(instruments),
        "start": start,
        "end": end,
        "loads": list(loads),
    }
    found = {}
    for load, rows, without_id, first, last, negative, distinct in client.query(
        "SELECT load_id, count(), countIf(seq IS NULL), min(seq), max(seq), countIf(seq < 0), "
        "groupBitmapIf(toUInt64(assumeNotNull(seq)), seq >= 0) "
        f"FROM {clickhouse_database(database)}.`{spec.table}` WHERE {where} GROUP BY load_id",
        parameters=params,
    ).result_rows:
        measured = None if negative else int(distinct)
        span = last - first + 1 if first is not None else 0
        missing = span - measured if measured is not None else 0
        found[int(load)] = LoadIds(
            int(load), int(rows), int(without_id), first, last, measured, missing=missing
        )
    holed = {load: f for load, f in found.items() if f.missing}
    for load, (count, missing, shown) in hole_ranges(
        client, database, spec.table, where, params, holed, KEPT_RANGES
    ).items():
        found[load] = replace(found[load], ranges=int(count), missing=int(missing), holes=tuple(shown))
    return found


def record(client, database: str, spec: Dataset, figures: Sequence[LoadIds]) -> int:
    """Store the figures of new loads (before their pointers flip). Returns the rows written."""
    if not figures:
        return 0
    now = datetime.now(UTC)
    rows = [
        [
            spec.code,
            f.load_id,
            f.rows,
            f.without_id,
            f.first_id,
            f.last_id,
            f.distinct,
            f.ranges,
            f.missing,
            list(f.holes),
            now,
        ]
        for f in figures
    ]
    cluster.insert_rows(
        client,
        database,
        LOAD_IDS,
        rows,
        _COLUMNS,
        cluster.insert_settings(cluster.load_token([f.load_id for f in figures], -2)),
    )
    return len(rows)


def verified(client, database: str, table: str, where: str, params: dict, loads: Sequence[int]) -> dict:
    """{load: LoadIds} of the `loads` whose figures were recorded and still hold: the load's rows under
    `where` (which must reach every row of the load's day) counted now are the rows measured (a load's
    rows are never changed after its write; a count that differs leaves the load to be read again)."""
    db = clickhouse_database(database)
    if not client.query(  # a store its tables were not ensured for since the figures exist: none
        "SELECT count() FROM system.tables WHERE database = {db:String} AND name = {t:String}",
        parameters={"db": database, "t": LOAD_IDS},
    ).result_rows[0][0]:
        return {}
    recorded = {
        int(load): _figures(int(load), *figures)
        for load, figures in client.query(
            "SELECT load_id, argMax(tuple(rows, without_id, first_id, last_id, distinct_ids, ranges, "
            f"missing, holes), measured_at) FROM {db}.{LOAD_IDS} WHERE load_id IN {{loads:Array(UInt64)}} "
            "GROUP BY load_id",
            parameters={"loads": list(loads)},
        ).result_rows
    }
    if not recorded:
        return {}
    counted = dict(
        client.query(
            f"SELECT load_id, count() FROM {db}.`{table}` WHERE {where} GROUP BY load_id",
            parameters={**params, "loads": sorted(recorded)},
        ).result_rows
    )
    return {load: f for load, f in recorded.items() if int(counted.get(load, 0)) == f.rows}


def _figures(load: int, rows, without_id, first, last, distinct, ranges, missing, holes) -> LoadIds:
    return LoadIds(
        load,
        int(rows),
        int(without_id),
        first,
        last,
        None if distinct is None else int(distinct),
        int(ranges),
        int(missing),
        tuple((int(lo), int(hi)) for lo, hi in holes),
    )


def hole_ranges(
    client, database: str, table: str, where: str, params: dict, loads: dict, max_ranges: int
) -> dict[int, tuple[int, int, list]]:
    """{load: (hole ranges, missing ids, its first `max_ranges` ranges)} of `loads` ({load: anything with
    `first_id` and `last_id`}), exact: the distinct ids in order, as a bitmap of their offsets from the
    load's first id (a span under 2^32 ids, as one instrument's day always is; a wider one: a window
    over its ids in order). `where` picks the rows with `{loads:Array(UInt64)}`."""
    narrow = [load for load, f in loads.items() if f.last_id - f.first_id < 2**32]
    wide = [load for load in loads if load not in narrow]
    found = {}
    if narrow:
        offsets = (
            "toUInt32(assumeNotNull(seq) - transform(load_id, {loads:Array(UInt64)}, "
            "{firsts:Array(Int64)}, 0))"
        )
        for r in client.query(
            f"WITH bitmapToArray(groupBitmapState({offsets})) AS ids, arrayDifference(ids) AS steps, "
            "arrayFilter((i, step) -> step > 1, ids, steps) AS ends, "
            "arrayFilter(step -> step > 1, steps) AS gaps "
            "SELECT load_id, length(gaps), toInt64(arraySum(gaps)) - length(gaps), "
            f"arraySlice(arrayMap((i, step) -> (i - step + 1, i - 1), ends, gaps), 1, {int(max_ranges)}) "
            f"FROM {clickhouse_database(database)}.`{table}` WHERE {where} AND seq IS NOT NULL "
            "GROUP BY load_id",
            parameters={**params, "loads": narrow, "firsts": [loads[load].first_id for load in narrow]},
        ).result_rows:
            first = loads[int(r[0])].first_id
            found[int(r[0])] = (int(r[1]), int(r[2]), [(first + lo, first + hi) for lo, hi in r[3]])
    if wide:
        found.update(_window_ranges(client, database, table, where, {**params, "loads": wide}, max_ranges))
    return found


def _window_ranges(client, database: str, table: str, where: str, params: dict, max_ranges: int) -> dict:
    """The hole ranges of `params['loads']` by a window over their ids in order (`lagInFrame`)."""
    return {
        int(r[0]): (int(r[1]), int(r[2]), [(int(lo), int(hi)) for lo, hi in r[3]])
        for r in client.query(
            "SELECT load_id, countIf(seq > prev + 1), ifNull(sumIf(seq - prev - 1, seq > prev + 1), 0), "
            f"groupArraySortedIf({int(max_ranges)})((prev + 1, seq - 1), seq > prev + 1) FROM ("
            "SELECT load_id, seq, lagInFrame(seq) OVER (PARTITION BY load_id ORDER BY seq ASC "
            "ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) AS prev "
            f"FROM {clickhouse_database(database)}.`{table}` WHERE {where} AND seq IS NOT NULL) "
            "GROUP BY load_id",
            parameters=params,
        ).result_rows
    }
