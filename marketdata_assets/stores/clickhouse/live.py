"""ClickHouse tables of the live path: ``trades_live`` (a ReplacingMergeTree read with FINAL, fed by the
consumer or the collector's direct writes), the view ``trades_latest`` (the batch loads, then the live
rows) and ``live_reconciliation``; created idempotently (an existing ``trades_live`` given the `trades`
columns declared after it).

Why a ReplacingMergeTree and not insert deduplication tokens, and what the view shows:
docs/live-capture.md, `trades_live` and `trades_latest` in "The NATS → ClickHouse consumer, ...".
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec
import orjson

from marketdata_assets.core.identifiers import clickhouse_database
from marketdata_assets.datasets.frames import TRADES_SPEC
from marketdata_assets.datasets.normalized import TRADE_FIELDS, US_HIGH, US_LOW, Trade
from marketdata_assets.stores.clickhouse import cluster, migrations
from marketdata_assets.stores.clickhouse.tables import LOADS, ensure_tables, monthly_table_ddl

TRADES_LIVE = "trades_live"
TRADES_LATEST = "trades_latest"
LIVE_COLUMNS = (*TRADES_SPEC.column_names, "event_ts", "recv_ts")


def _live_ddl(database: str) -> str:
    return monthly_table_ddl(
        database,
        TRADES_LIVE,
        [
            *TRADES_SPEC.columns,
            ("event_ts", "DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1))"),
            ("recv_ts", "DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1))"),
            ("inserted_at", "DateTime64(3, 'UTC') DEFAULT now64(3)"),
        ],
        "ReplacingMergeTree",
        "venue, instrument, trade_id",
    )


def _latest_ddl(database: str) -> str:
    db = clickhouse_database(database)
    cols = ", ".join(f"`{c}`" for c in TRADES_SPEC.column_names)
    live_cols = ", ".join(f"l.`{c}` AS `{c}`" for c in TRADES_SPEC.column_names)
    newest_day = (
        f"SELECT load_id FROM {db}.{LOADS} FINAL WHERE dataset = '{TRADES_SPEC.code}' AND rows > 0 "
        f"AND (venue, instrument, day) IN (SELECT venue, instrument, max(day) FROM {db}.{LOADS} FINAL "
        f"WHERE dataset = '{TRADES_SPEC.code}' AND rows > 0 GROUP BY venue, instrument)"
    )
    loaded_until = (
        f"SELECT venue, instrument, max(ts) AS loaded_until FROM {db}.{TRADES_SPEC.table} "
        f"WHERE load_id IN ({newest_day}) GROUP BY venue, instrument"
    )
    return (
        f"CREATE OR REPLACE VIEW {db}.{TRADES_LATEST} AS\n"
        f"SELECT {cols}, 'batch' AS path FROM {db}.`{TRADES_SPEC.view}`\nUNION ALL\n"
        f"SELECT {live_cols}, 'live' AS path FROM {db}.{TRADES_LIVE} AS l FINAL\n"
        f"LEFT JOIN ({loaded_until}) AS c ON l.venue = c.venue AND l.instrument = c.instrument\n"
        "WHERE c.loaded_until IS NULL OR l.ts > c.loaded_until\n"
        "SETTINGS join_use_nulls = 1"
    )


def live_tail_sql(
    database: str, columns: Sequence[str], *, all_instruments: bool, count: bool = False
) -> str:
    """The live trades of [start, end) that no batch load holds yet (``trades_latest``'s live path: after
    each instrument's loaded_until), ordered as ``trades``; parameters venue, instruments, start, end."""
    match = "venue = {venue:String}" + (
        "" if all_instruments else " AND instrument IN {instruments:Array(String)}"
    )
    what = "count()" if count else ", ".join(f"`{c}`" for c in columns)
    order = "" if count else f" ORDER BY {', '.join(TRADES_SPEC.order_by)}"
    return (
        f"SELECT {what} FROM {clickhouse_database(database)}.{TRADES_LATEST} "
        f"WHERE path = 'live' AND {match} AND ts >= {{start:DateTime64(6, 'UTC')}} "
        f"AND ts < {{end:DateTime64(6, 'UTC')}}{order}"
    )


def live_coverage_sql(database: str) -> str:
    """Per venue x instrument what ``trades_live`` holds: first and last day, days, rows, the newest row's
    insert time and trade time (its lag is now minus that)."""
    return (
        "SELECT venue, instrument, min(toDate(ts)) AS first_day, max(toDate(ts)) AS last_day, "
        "toUInt64(uniqExact(toDate(ts))) AS days, count() AS rows, max(inserted_at) AS last_loaded_at, "
        f"max(ts) AS last_ts FROM {clickhouse_database(database)}.{TRADES_LIVE} FINAL "
        "GROUP BY venue, instrument ORDER BY venue, instrument"
    )


def live_added_columns() -> list[tuple[str, str, str, str]]:
    """(trades_live, column, declared type, the column before it) of every `trades` column: those an
    existing ``trades_live`` lacks (declared after it was made) are added (migrations.add_columns)."""
    names = TRADES_SPEC.column_names
    return [
        (TRADES_LIVE, name, ctype, names[i - 1]) for i, (name, ctype) in enumerate(TRADES_SPEC.columns) if i
    ]


def ensure_live_tables(client, database: str) -> list[str]:
    """The batch tables (tables.ensure_tables, idempotent) and the live ones, an existing ``trades_live``
    given the `trades` columns it lacks (before the view that names them); returns the live names. A
    cluster store is born with the current schema (as tables.ensure_tables')."""
    ensure_tables(client, database)
    statements = [_live_ddl(database), _latest_ddl(database)]
    if name := cluster.configured():
        statements = cluster.on_cluster(statements, name)
    else:
        migrations.add_columns(client, database, live_added_columns())  # a table not made yet: left alone
    for statement in statements:
        client.command(statement)
    return [TRADES_LIVE, TRADES_LATEST]


# What the columns hold: DateTime64 from 1900 to 2299 (a time past it is stored as another, silently),
# `seq` an Int64 (a larger id fails the whole INSERT: a message with one would stop the consumer for good).
# `Trade` declares both on its fields, so the typed decode refuses such a message whole; the event and
# receive times are checked here, as their rows are built.


def _utc_us(us: int, field: str = "ts_us") -> datetime:
    if not US_LOW <= us < US_HIGH:
        raise ValueError(f"{field} {us} is outside the years 1900-2299 the table stores")
    return datetime.fromtimestamp(us // 1_000_000, tz=UTC).replace(microsecond=us % 1_000_000)


def _utc_ms(ms: int, field: str) -> datetime:
    return _utc_us(ms * 1000, field)


_TRADES = msgspec.json.Decoder(list[Trade])  # a collector's message: a JSON array of trades, typed
_STORED = operator.attrgetter(*TRADE_FIELDS[1:])  # a trade's values after its time, as the table's columns


def trade_row(trade: Trade) -> tuple:
    """A row of ``trades_live`` (:data:`LIVE_COLUMNS`) from a published trade, stored as it is (an event
    time of 0: the trade's time). ValueError on a time the table cannot hold."""
    ts = _utc_us(trade.ts_us)
    return (
        ts,
        *_STORED(trade),
        _utc_ms(trade.event_ms, "event_ms") if trade.event_ms else ts,
        _utc_us(trade.recv_ns // 1000, "recv_ns / 1000"),
    )


def _trade_object(message: Any) -> Trade:
    """One trade object: a message of `trade_messages`, or an older collector's (`ts_ms`, no `amount`
    nor `event_ms`: spot trades only)."""
    if isinstance(message, dict) and "ts_ms" in message and "ts_us" not in message:
        price, quantity = float(message["price"]), float(message["quantity"])  # its numbers may be text
        message = {"event_ms": 0, "seq": None, **message, "price": price, "quantity": quantity}
        message["amount"] = price * quantity
        message["ts_us"] = int(message.pop("ts_ms")) * 1000
    return msgspec.convert(message, Trade)


def trade_rows(data: bytes) -> list[tuple]:
    """The rows of one `md.trades.*` message: a batch (a JSON array of `Trade`s, the collector's), decoded
    typed, or one trade object (`_trade_object`). ValueError (msgspec's names the field: `Expected `float`,
    got `str` - at `$[0].price``) or TypeError if it is neither."""
    if data[:1] == b"[":
        trades = _TRADES.decode(data)
        if not trades:
            raise ValueError("a trades message is a non-empty JSON array")
    else:
        trades = [_trade_object(orjson.loads(data))]
    return [trade_row(trade) for trade in trades]


def insert_live_trades(client, database: str, rows: Sequence[tuple]) -> int:
    """Insert rows (:func:`trade_row`) into ``trades_live`` in one INSERT; raises when ClickHouse
    refuses it (the caller keeps its messages unacknowledged). Returns the rows sent."""
    if rows:
        client.insert(
            TRADES_LIVE,
            list(rows),
            column_names=list(LIVE_COLUMNS),
            database=database,
            settings=cluster.insert_settings(),
        )  # copies: the ReplacingMergeTree, not a token
    return len(rows)


def live_count(client, database: str, venue: str | None = None) -> tuple[int, int]:
    """(distinct trades, stored rows) of ``trades_live`` (the second counts copies not yet merged)."""
    db = clickhouse_database(database)
    where, params = ("WHERE venue = {venue:String}", {"venue": venue}) if venue else ("", None)
    distinct = int(
        client.command(f"SELECT count() FROM {db}.{TRADES_LIVE} FINAL {where}", parameters=params) or 0
    )
    stored = int(client.command(f"SELECT count() FROM {db}.{TRADES_LIVE} {where}", parameters=params) or 0)
    return distinct, stored


__all__ = [
    "LIVE_COLUMNS",
    "TRADES_LATEST",
    "TRADES_LIVE",
    "ensure_live_tables",
    "insert_live_trades",
    "live_count",
    "trade_row",
    "trade_rows",
]


# ---- reconciliation of live hours ------------------------------------------------------------
# ``live_reconciliation``: per (venue, instrument, UTC hour), how many of the hour's stored trades
# came from the live landing files and how many from the REST/archive refill (ids no landing file
# holds), and the hour's book gaps; written by the live loads and the refill (defs/live), the newest
# row of a key wins (ReplacingMergeTree on `recorded_at`; read with FINAL).

LIVE_RECONCILIATION = "live_reconciliation"
RECONCILIATION_COLUMNS = ("venue", "instrument", "hour", "live_trades", "refilled_trades", "book_gaps")


def _reconciliation_ddl(database: str) -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {clickhouse_database(database)}.{LIVE_RECONCILIATION} (\n"
        "    `venue` LowCardinality(String), `instrument` LowCardinality(String), `hour` DateTime('UTC'),\n"
        "    `live_trades` UInt64, `refilled_trades` UInt64, `book_gaps` UInt32,\n"
        "    `recorded_at` DateTime64(3, 'UTC') DEFAULT now64(3)\n"
        ") ENGINE = ReplacingMergeTree(recorded_at)\nORDER BY (venue, instrument, hour)"
    )


def ensure_reconciliation_table(client, database: str) -> str:
    """``live_reconciliation`` (idempotent; ON CLUSTER, whole on every node, in cluster mode)."""
    statements = [_reconciliation_ddl(database)]
    for statement in cluster.on_cluster(statements, name) if (name := cluster.configured()) else statements:
        client.command(statement)
    return LIVE_RECONCILIATION


def record_reconciliation(client, database: str, rows: Sequence[tuple]) -> int:
    """Rows of RECONCILIATION_COLUMNS (hour a UTC datetime); the table is created first."""
    if not rows:
        return 0
    ensure_reconciliation_table(client, database)
    client.insert(
        LIVE_RECONCILIATION,
        list(rows),
        column_names=list(RECONCILIATION_COLUMNS),
        database=clickhouse_database(database),
        settings=cluster.insert_settings(),
    )
    return len(rows)


def reconciliation(
    client, database: str, venue: str, instrument: str, start: datetime, end: datetime
) -> dict:
    """hour -> (live_trades, refilled_trades, book_gaps) of an instrument's hours in [start, end)."""
    ensure_reconciliation_table(client, database)
    rows = client.query(
        f"SELECT hour, live_trades, refilled_trades, book_gaps FROM {clickhouse_database(database)}."
        f"{LIVE_RECONCILIATION} FINAL WHERE venue = {{venue:String}} AND instrument = {{instrument:String}} "
        "AND hour >= {start:DateTime} AND hour < {end:DateTime} ORDER BY hour",
        parameters={"venue": venue, "instrument": instrument, "start": start, "end": end},
    ).result_rows
    return {r[0].replace(tzinfo=UTC) if r[0].tzinfo is None else r[0]: tuple(r[1:]) for r in rows}
