"""The venues' 24 h volume snapshots in ClickHouse: ``instrument_volumes``, beside ``instruments``, a row per
instrument and snapshot (each master refresh takes one), never updated; read as the snapshot times per
venue, then the rows of the snapshots a resolution uses.

A ReplacingMergeTree on (venue, taken, instrument) read with FINAL: storing the same snapshot twice (a
refresh retried) keeps one row each. The model: datasets/volumes.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

import polars as pl

from marketdata_assets.core.identifiers import clickhouse_database
from marketdata_assets.datasets.volumes import SCHEMA, Volume, frame, from_frame
from marketdata_assets.stores.clickhouse import cluster

TABLE = "instrument_volumes"


def ddl(database: str) -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {clickhouse_database(database)}.`{TABLE}` (\n"
        "    `venue` LowCardinality(String),\n    `instrument` String,\n    `taken` DateTime64(6, 'UTC'),\n"
        "    `quote_volume` Float64,\n    `unit` LowCardinality(String)\n"
        ") ENGINE = ReplacingMergeTree\nORDER BY (venue, taken, instrument)"
    )


def ensure_volumes_table(client, database: str) -> str:
    """The table (and its database) made if missing."""
    cluster.run_ddl(client, [f"CREATE DATABASE IF NOT EXISTS {clickhouse_database(database)}", ddl(database)])
    return TABLE


def store_volumes(client, database: str, volumes: Iterable[Volume]) -> int:
    """Append a snapshot's rows (one INSERT); returns how many were sent."""
    return cluster.insert_frame(client, database, TABLE, frame(volumes))


def snapshot_times(client, database: str, venues: Iterable[str]) -> dict[str, list[datetime]]:
    """Venue -> the times of its stored snapshots, oldest first."""
    sql = (
        f"SELECT venue, groupUniqArray(taken) FROM {clickhouse_database(database)}.`{TABLE}` FINAL "
        "WHERE venue IN {venues:Array(String)} GROUP BY venue"
    )
    rows = client.query(sql, parameters={"venues": sorted(venues)}).result_rows
    return {venue: sorted(_utc(t) for t in times) for venue, times in rows}


def read_volumes(client, database: str, snapshots: Mapping[str, Iterable[datetime]]) -> list[Volume]:
    """The rows of the snapshots named (venue -> their times)."""
    wanted = {(venue, taken) for venue, times in snapshots.items() for taken in times}
    if not wanted:
        return []
    sql = (
        f"SELECT {', '.join(f'`{c}`' for c in SCHEMA)} FROM {clickhouse_database(database)}.`{TABLE}` FINAL "
        "WHERE venue IN {venues:Array(String)} AND taken IN {times:Array(DateTime64(6, 'UTC'))} "
        "ORDER BY venue, taken, instrument"
    )
    table = client.query_arrow(
        sql, parameters={"venues": sorted({v for v, _ in wanted}), "times": sorted({t for _, t in wanted})}
    )
    return [
        row
        for row in from_frame(pl.from_arrow(table).cast(SCHEMA))  # type: ignore[arg-type]
        if (row.venue, row.taken) in wanted
    ]


def _utc(stamp: datetime) -> datetime:
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


__all__ = ["TABLE", "ensure_volumes_table", "read_volumes", "snapshot_times", "store_volumes"]
