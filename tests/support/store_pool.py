"""Ensured ClickHouse databases of a test process, emptied and reused: a test that asks for a `store`
gets a database whose every table a previous test's store left exactly as `ensure_tables` makes it,
emptied (one TRUNCATE a table, ~10 ms in all), instead of a new one (~88 CREATEs, ~0.5 s of CPU and
more as the session's databases pile up: the suite made ~240). Only the embedded engine's databases
(chdb: in this process, so nothing writes to them after their test). A table that is no part of a fresh
store (the instrument master, the live reconciliation: made by the runs that write them) is dropped
first; a database whose objects then still differ from a fresh store's in any way (a table altered or
dropped, a view added) is dropped as before."""

from __future__ import annotations

import hashlib
import uuid

from marketdata_assets.stores.clickhouse import tables as ct

_READY: dict[str, list[str]] = {}  # dsn -> emptied databases of a fresh store's objects
_FRESH: dict[str, str] = {}  # dsn -> the objects of a fresh store, hashed (`_objects`)
_FRESH_NAMES: dict[str, set[str]] = {}  # dsn -> the names of those objects


def _objects(client, database: str) -> str:
    """Every table and view of `database` as created, its name written out of the statements, hashed."""
    rows = client.query(
        "SELECT name, engine, create_table_query FROM system.tables WHERE database = {db:String} "
        "ORDER BY name",
        parameters={"db": database},
    ).result_rows
    text = "\n".join(f"{name}|{engine}|{query}" for name, engine, query in rows).replace(database, "<db>")
    return hashlib.sha256(text.encode()).hexdigest()


def take(client, dsn: str) -> str | None:
    """An emptied store's database for a test (None: not an embedded engine's). The process's first is
    made here, and what a fresh store holds read from it."""
    if not dsn.startswith("chdb://"):
        return None
    if dsn not in _FRESH:
        database = f"test_{uuid.uuid4().hex[:8]}"
        ct.ensure_tables(client, database)
        _FRESH[dsn] = _objects(client, database)
        _FRESH_NAMES[dsn] = {name for name, _ in _tables(client, database)}
        return database
    ready = _READY.get(dsn)
    return ready.pop() if ready else None


def _tables(client, database: str) -> list[tuple[str, str]]:
    return client.query(
        "SELECT name, engine FROM system.tables WHERE database = {db:String}", parameters={"db": database}
    ).result_rows


def give_back(client, dsn: str, database: str) -> bool:
    """Empty `database` for the next test if it holds exactly a fresh store's objects (its data aside)
    once the tables no fresh store has are dropped."""
    if _FRESH.get(dsn) is None:
        return False
    for name, engine in _tables(client, database):
        if name not in _FRESH_NAMES[dsn] and engine.endswith("MergeTree"):
            client.command(f"DROP TABLE `{database}`.`{name}` SYNC")
    if _objects(client, database) != _FRESH[dsn]:
        return False
    tables = client.query(
        "SELECT name FROM system.tables WHERE database = {db:String} AND engine LIKE '%MergeTree' "
        "AND name != {marker:String}",
        parameters={"db": database, "marker": ct.ENSURED},
    ).result_rows
    for (name,) in tables:
        client.command(f"TRUNCATE TABLE `{database}`.`{name}`")
    _READY.setdefault(dsn, []).append(database)
    return True
