"""The instrument master in ClickHouse: ``instruments``, a row per version of an instrument (its reference
data from `valid_from`, learned at `seen`), appended and never updated; read whole or as of a time.

A ReplacingMergeTree on (venue, instrument, valid_from) read with FINAL: storing the same versions twice
(a run retried, two refreshes at once) keeps one row each. The model: datasets/instruments.py.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import polars as pl

from marketdata_assets.core.identifiers import clickhouse_database
from marketdata_assets.datasets.frames import UTC_US
from marketdata_assets.datasets.instruments import SCHEMA, Version, frame, from_frame
from marketdata_assets.stores.clickhouse import cluster
from marketdata_assets.stores.clickhouse.tables import where_equal

TABLE = "instruments"
_NOT_NULL = (
    "valid_from",
    "seen",
    "venue",
    "instrument",
    "type",
    "base",
    "quote",
    "settle",
    "inverse",
    "contract_value",
    "contract_multiplier",
    "contract_unit",
    "status",
)


def _column(name: str, dtype: pl.DataType) -> str:
    """`name` ClickHouse type: the frame's type, Nullable unless the master always has it."""
    if dtype == UTC_US:
        ctype = "DateTime64(6, 'UTC')"
    else:
        ctype = {pl.Utf8: "String", pl.Boolean: "Bool", pl.Float64: "Float64"}[dtype]
    if name not in _NOT_NULL:
        ctype = f"Nullable({ctype})"
    if dtype == pl.Utf8 and name != "instrument":
        ctype = f"LowCardinality({ctype})"
    return f"`{name}` {ctype}"


def ddl(database: str) -> str:
    cols = ",\n    ".join(_column(name, dtype) for name, dtype in SCHEMA.items())
    return (
        f"CREATE TABLE IF NOT EXISTS {clickhouse_database(database)}.`{TABLE}` (\n    {cols}\n"
        ") ENGINE = ReplacingMergeTree(seen)\nORDER BY (venue, instrument, valid_from)"
    )


def ensure_instruments_table(client, database: str) -> str:
    """The table (and its database) made if missing."""
    cluster.run_ddl(client, [f"CREATE DATABASE IF NOT EXISTS {clickhouse_database(database)}", ddl(database)])
    return TABLE


def store_versions(client, database: str, versions: Iterable[Version]) -> int:
    """Append versions (one INSERT), the table made if missing (a collector stores what it looked up before
    anything made the master: make run's first minute); returns how many were sent."""
    ensure_instruments_table(client, database)
    return cluster.insert_frame(client, database, TABLE, frame(versions))


def read_versions(
    client, database: str, venue: str | None = None, as_of: datetime | None = None
) -> list[Version]:
    """Every stored version (of `venue`), oldest first; with `as_of`, only what was valid at that time or
    before (each instrument's history up to it: `Master.at` picks the valid one)."""
    where, params = [], {}
    where_equal(where, params, venue=venue or None)
    if as_of is not None:
        where.append("valid_from <= {as_of:DateTime64(6, 'UTC')}")
        params["as_of"] = as_of
    sql = (
        f"SELECT {', '.join(f'`{c}`' for c in SCHEMA)} FROM {clickhouse_database(database)}.`{TABLE}` FINAL"
        + (f" WHERE {' AND '.join(where)}" if where else "")
        + " ORDER BY venue, instrument, valid_from"
    )
    table = client.query_arrow(sql, parameters=params)
    return from_frame(pl.from_arrow(table).cast(SCHEMA))  # type: ignore[arg-type]


__all__ = ["TABLE", "ensure_instruments_table", "read_versions", "store_versions"]
