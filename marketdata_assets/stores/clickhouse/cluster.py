"""ClickHouse cluster mode: the single-node DDL of stores.clickhouse.tables, history and live, rewritten
for replicated shards under ClickHouse Keeper when ``CLICKHOUSE_CLUSTER`` names a cluster (empty: one
node, unchanged) by one declaration (:data:`PLACEMENT`) and one engine rule, not a second copy of the
DDL (:func:`on_cluster`); also the cluster's insert and read settings and its per-shard compaction.

Design, limits and what was checked: docs/scale-out.md, "ClickHouse cluster mode".
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

import orjson

from marketdata_assets.core import settings
from marketdata_assets.core.identifiers import clickhouse_database, sql_identifier
from marketdata_assets.datasets.frames import DATASETS

LOCAL_SUFFIX = "_local"
SHARDED_PATH = "/clickhouse/tables/{shard}/{database}/{table}"
WHOLE_PATH = "/clickhouse/tables/all/{database}/{table}"
BY_INSTRUMENT = "cityHash64(instrument)"
ENGINES = ("MergeTree", "ReplacingMergeTree", "AggregatingMergeTree", "SummingMergeTree")


@dataclass(frozen=True)
class Placement:
    """Where a table's rows live on the cluster: ``shard_key`` (a Distributed sharding expression), or
    None: replicated whole on every node, not sharded."""

    shard_key: str | None
    why: str


_SLICE = (
    "a slice (venue, instrument, day) and its load on one shard: the writer's count and compaction stay local"
)
PLACEMENT: dict[str, Placement] = {
    **{spec.table: Placement(BY_INSTRUMENT, _SLICE) for spec in DATASETS.values()},
    "trades_1d_agg": Placement(BY_INSTRUMENT, "fed by the MV on trades_local: the same shard as its trades"),
    "trades_live": Placement(
        BY_INSTRUMENT, "a trade's redelivered copies (same instrument) merge on one shard"
    ),
    "loads": Placement(
        None, "the load pointer: every shard filters its rows by it, and a flip is one atomic block"
    ),
    "ingest_log": Placement(None, "small (a row per attempt), read beside the pointer: kept whole with it"),
    "load_ids": Placement(
        None, "small (a row per load of trades), read beside the pointer: kept whole with it"
    ),
    "live_reconciliation": Placement(
        None, "small (a row per venue-hour of live trades): whole on every node"
    ),
    "load_history": Placement(None, "fed by the MV on loads (whole on every node): whole too"),
    "instruments": Placement(
        None, "the point-in-time master: small, read whole by every run's universe and sizes"
    ),
    "instrument_volumes": Placement(None, "the 24 h volume snapshots: small, read beside the master"),
}

_CREATE_TABLE = re.compile(r"^CREATE TABLE IF NOT EXISTS (?P<db>`\w+`)\.`?(?P<name>\w+)`? ")
_ENGINE = re.compile(r"ENGINE = (?P<engine>\w+)(?:\((?P<args>[^()]*)\))?")
_OBJECT = re.compile(
    r"^(?P<verb>CREATE OR REPLACE VIEW|CREATE MATERIALIZED VIEW IF NOT EXISTS|ALTER TABLE) "
    r"(?P<db>`\w+`)\.`?(?P<name>\w+)`? "
)
_DATABASE = re.compile(r"^CREATE DATABASE IF NOT EXISTS (?P<db>`\w+`)$")


def configured() -> str:
    """The cluster named by ``CLICKHOUSE_CLUSTER`` (validated), or '' for a single node."""
    name = settings.get("CLICKHOUSE_CLUSTER").strip()
    return sql_identifier(name, "ClickHouse cluster") if name else ""


def local_name(table: str) -> str:
    """The name of the table that holds ``table``'s rows on each node."""
    return f"{table}{LOCAL_SUFFIX}" if placement(table).shard_key else table


def placement(table: str) -> Placement:
    try:
        return PLACEMENT[table]
    except KeyError:
        raise ValueError(
            f"ClickHouse table {table!r} has no cluster placement: declare it in "
            "stores.clickhouse.cluster.PLACEMENT (sharded by a key, or whole on every node)"
        ) from None


def _replicated_engine(statement: str, table: str) -> str:
    """The statement with its ``ENGINE = X(args)`` made ``ReplicatedX(path, '{replica}', args)``."""
    match = _ENGINE.search(statement)
    if match is None or match["engine"] not in ENGINES:
        raise ValueError(f"{table}: no engine of {ENGINES} in its DDL: cannot make it replicated")
    path = SHARDED_PATH if placement(table).shard_key else WHOLE_PATH
    args = ", ".join([f"'{path}'", "'{replica}'", *([match["args"]] if match["args"] else [])])
    return (
        statement[: match.start()]
        + f"ENGINE = Replicated{match['engine']}({args})"
        + statement[match.end() :]
    )


def _table(statement: str, cluster: str) -> list[str]:
    match = _CREATE_TABLE.match(statement)
    db, name = match["db"], match["name"]
    shard_key = placement(name).shard_key
    local = local_name(name)
    head = f"CREATE TABLE IF NOT EXISTS {db}.`{local}` ON CLUSTER `{cluster}` "
    created = [_replicated_engine(head + statement[match.end() :], name)]
    if shard_key:
        created.append(
            f"CREATE TABLE IF NOT EXISTS {db}.`{name}` ON CLUSTER `{cluster}` AS {db}.`{local}`\n"
            f"ENGINE = Distributed(`{cluster}`, {db}, `{local}`, {shard_key})"
        )
    return created


def _local_refs(text: str, db: str) -> str:
    """``db.t`` / ``db.`t``` of every sharded table made its local table (in a materialized view)."""
    for table, where in PLACEMENT.items():
        if where.shard_key:
            text = re.sub(rf"{re.escape(db)}\.`?{table}`?(?=[\s\n]|$)", f"{db}.`{local_name(table)}`", text)
    return text


def _object(statement: str, cluster: str) -> list[str]:
    match = _OBJECT.match(statement)
    verb, db, name = match["verb"], match["db"], match["name"]
    rest = statement[match.end() :]
    if verb.startswith("CREATE MATERIALIZED VIEW"):  # it must fire on the node that stores the block
        return [f"{verb} {db}.`{name}` ON CLUSTER `{cluster}` {_local_refs(rest, db)}"]
    if verb == "ALTER TABLE" and placement(name).shard_key:  # the local table and its Distributed twin
        return [f"ALTER TABLE {db}.`{n}` ON CLUSTER `{cluster}` {rest}" for n in (local_name(name), name)]
    return [f"{verb} {db}.`{name}` ON CLUSTER `{cluster}` {rest}"]


def on_cluster(statements: Iterable[str], cluster: str) -> list[str]:
    """The cluster statements of single-node DDL statements (docs/scale-out.md, "ClickHouse cluster mode"), in
    order."""
    sql_identifier(cluster, "ClickHouse cluster")
    out: list[str] = []
    for statement in statements:
        if (database := _DATABASE.match(statement)) is not None:
            out.append(f"CREATE DATABASE IF NOT EXISTS {database['db']} ON CLUSTER `{cluster}`")
        elif _CREATE_TABLE.match(statement):
            out += _table(statement, cluster)
        elif _OBJECT.match(statement):
            out += _object(statement, cluster)
        else:
            raise ValueError(f"no cluster form for the statement: {statement.splitlines()[0][:120]}")
    return out


def run_ddl(client, statements: Iterable[str]) -> None:
    """Run single-node DDL statements: as they are, or their cluster forms in cluster mode (`on_cluster`)."""
    statements = list(statements)
    for statement in on_cluster(statements, name) if (name := configured()) else statements:
        client.command(statement)


def insert_frame(client, database: str, table: str, rows) -> int:
    """A polars frame's rows into `table` (one INSERT, cluster mode's settings); returns how many were
    sent."""
    if rows.height:
        client.insert_arrow(table, rows.to_arrow(), database=database, settings=insert_settings())
    return rows.height


def insert_rows(
    client, database: str, table: str, rows: Sequence, columns: Sequence[str], settings=None
) -> int:
    """Rows (lists of values, datetimes aware or UTC) into `table` as JSON lines in one INSERT; returns how
    many were sent. Not clickhouse-connect's `insert`, which probes every row list for a pandas frame and
    so imports pandas, 0.3-0.7 CPU s a process that nothing here needs."""
    if rows:
        body = b"\n".join(orjson.dumps(row, default=_utc_text, option=_OPT) for row in rows)
        client.raw_insert(
            f"{clickhouse_database(database)}.`{table}`", list(columns), body, settings, "JSONCompactEachRow"
        )
    return len(rows)


_OPT = orjson.OPT_PASSTHROUGH_DATETIME


def _utc_text(value):
    """A datetime or a date as the engine's default input reads it (UTC, microseconds)."""
    if isinstance(value, datetime):
        value = value.astimezone(UTC) if value.tzinfo else value
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} {value!r} is not a value of a row")


def client_settings() -> dict:
    """Session settings of a client in cluster mode: reads see every quorum-written flip, and a subquery
    or JOIN over a Distributed table inside a query over another (``trades_latest``'s join of the live
    and the loaded trades) runs once and is sent to the shards (``GLOBAL``), where ClickHouse's default
    (``deny``) would refuse it."""
    return {"select_sequential_consistency": 1, "distributed_product_mode": "global"}


def insert_settings(token: str | Callable[[], str] | None = None) -> dict | None:
    """Settings of one INSERT: None on a single node; in cluster mode the quorum (docs/scale-out.md,
    "ClickHouse cluster mode") and,
    given a ``token`` (or a function making it, called only in cluster mode), the block's deduplication
    token."""
    if not configured():
        return None
    out = {"insert_quorum": "auto", "insert_quorum_parallel": 0, "distributed_foreground_insert": 1}
    token = token() if callable(token) else token
    return {**out, "insert_deduplication_token": token} if token else out


def load_token(load_ids: Sequence[int], offset: int = 0) -> str | None:
    """The deduplication token of a block of new loads: their ids and the block's offset in the insert
    (-1: the flip of their pointers); None without ids."""
    if not load_ids:
        return None
    return f"loads-{min(load_ids)}-{max(load_ids)}-{len(load_ids)}-{offset}"


def rows_token(prefix: str, rows: Sequence) -> str:
    """A deduplication token from a block's content (a retried identical block, e.g. ingest_log rows)."""
    return f"{prefix}-{hashlib.sha256(repr(list(rows)).encode()).hexdigest()[:32]}"


def compaction_statements(
    database: str,
    cluster: str,
    table: str,
    month: str,
    keep_where: str,
    staging: str,
    replace_from_empty: bool = True,
) -> list[str]:
    """One month's compaction of a sharded table on the cluster (docs/scale-out.md, "ClickHouse cluster
    mode"), in order: the
    staging ``_local`` table and its Distributed twin; the kept rows (``keep_where``, SQL of the caller
    over the table's columns, run by each shard on its own rows) copied shard by shard; every replica of
    the staging table synced (the replica that runs the swap reads its own copy); each shard's partition
    swapped; the staging tables dropped. ``month``: the partition id (YYYYMM). ``replace_from_empty``:
    the swap empties a shard's partition when nothing of it is kept (every row garbage, or no row of the
    month on that shard), which ClickHouse refuses (26.9, chDB's, does) unless
    ``allow_replace_partition_from_empty_source`` is on; a server older than that setting does it anyway
    and would refuse the unknown setting (False: leave it out)."""
    db, cl = clickhouse_database(database), f"`{sql_identifier(cluster, 'ClickHouse cluster')}`"
    if not placement(table).shard_key or not re.fullmatch(r"\d{6}", month):
        raise ValueError(
            f"compaction on the cluster is for a sharded table and a YYYYMM month: {table} {month}"
        )
    local, stage_local = local_name(table), f"{sql_identifier(staging, 'staging table')}{LOCAL_SUFFIX}"
    empty = " SETTINGS allow_replace_partition_from_empty_source = 1" if replace_from_empty else ""
    return [
        f"CREATE TABLE {db}.`{stage_local}` ON CLUSTER {cl} AS {db}.`{local}`",
        (
            f"CREATE TABLE {db}.`{staging}` ON CLUSTER {cl} AS {db}.`{stage_local}` "
            f"ENGINE = Distributed({cl}, {db}, `{stage_local}`, {placement(table).shard_key})"
        ),
        (
            f"INSERT INTO {db}.`{staging}` SELECT * FROM {db}.`{table}` WHERE _partition_id = '{month}' AND "
            f"({keep_where}) SETTINGS parallel_distributed_insert_select = 2"
        ),
        f"SYSTEM SYNC REPLICA ON CLUSTER {cl} {db}.`{stage_local}`",
        (
            f"ALTER TABLE {db}.`{local}` ON CLUSTER {cl} REPLACE PARTITION ID '{month}' FROM "
            f"{db}.`{stage_local}`{empty}"
        ),
        f"DROP TABLE IF EXISTS {db}.`{staging}` ON CLUSTER {cl} SYNC",
        f"DROP TABLE IF EXISTS {db}.`{stage_local}` ON CLUSTER {cl} SYNC",
    ]


def max_blocks_sql(cluster: str) -> str:
    """Per shard, the highest block number of a partition of a local table over all its replicas
    (``{db:String}``, ``{table:String}``, ``{part:String}``): an insert into that shard's partition raises
    it (merges don't), so a write that went in while a compaction copied is seen before the swap."""
    return (
        "SELECT _shard_num, max(max_block_number) FROM clusterAllReplicas("
        f"'{sql_identifier(cluster, 'ClickHouse cluster')}', system.parts) WHERE database = {{db:String}} "
        "AND table = {table:String} AND partition_id = {part:String} AND active GROUP BY _shard_num ORDER "
        "BY _shard_num"
    )


def optimize_statement(database: str, cluster: str, table: str, month: str) -> str:
    """``OPTIMIZE TABLE <local> ON CLUSTER ... PARTITION ID ... FINAL``: merge one month on every shard
    (e.g. ``trades_live``, whose duplicates a merge removes)."""
    if not re.fullmatch(r"\d{6}", month):
        raise ValueError(f"invalid partition id {month!r}: expected YYYYMM")
    return (
        f"OPTIMIZE TABLE {clickhouse_database(database)}.`{local_name(table)}` "
        f"ON CLUSTER `{sql_identifier(cluster, 'ClickHouse cluster')}` PARTITION ID '{month}' FINAL"
    )
