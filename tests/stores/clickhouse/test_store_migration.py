"""A store written by the previous version (``loads.kind``, ``ingest_log.provider`` / ``kind``) gets the
new column names (``dataset``, ``source``) from ensure_tables, on the real embedded ClickHouse: every row
kept, the read views showing the same rows, the old tables kept, a second run a no-op; rows that reach
the old table during the copy, two processes at once, and a migration killed before or after its swap
(stores.clickhouse.migrations)."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest

from marketdata_assets.datasets import frames
from marketdata_assets.resources import ClickHouseResource
from marketdata_assets.stores.clickhouse import live, migrations
from marketdata_assets.stores.clickhouse import tables as ct
from marketdata_assets.stores.clickhouse import writer as w

DAY = date(2024, 3, 31)

# The previous version's DDL (marketdata_assets/stores/clickhouse/tables.py before #22's renames), as it
# created these objects; the dataset tables and the daily aggregate did not change.
OLD_LOADS = """CREATE TABLE IF NOT EXISTS {db}.loads (
    `kind` LowCardinality(String),
    `venue` LowCardinality(String),
    `instrument` LowCardinality(String),
    `day` Date,
    `load_id` UInt64,
    `rows` UInt64,
    `run_id` String,
    `loaded_at` DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree(load_id)
ORDER BY (kind, venue, instrument, day)"""
OLD_INGEST_LOG = """CREATE TABLE IF NOT EXISTS {db}.ingest_log (
    `run_id` String,
    `provider` LowCardinality(String),
    `kind` LowCardinality(String) DEFAULT '',
    `venue` LowCardinality(String),
    `instrument` LowCardinality(String),
    `day` Date,
    `rows` UInt64 DEFAULT 0,
    `requests` UInt32 DEFAULT 0,
    `retries` UInt32 DEFAULT 0,
    `rate_limited` UInt32 DEFAULT 0,
    `latency_p50_ms` Float64 DEFAULT 0,
    `latency_p95_ms` Float64 DEFAULT 0,
    `outcome` Enum8('ok' = 1, 'failed' = 2, 'skipped' = 3),
    `error` String DEFAULT '',
    `load_id` UInt64 DEFAULT 0,
    `started_at` DateTime64(3, 'UTC'),
    `finished_at` DateTime64(3, 'UTC'){added}
) ENGINE = MergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (provider, instrument, day, finished_at)"""
OLD_ADDED = """,
    `dropped` Map(LowCardinality(String), UInt64),
    `conversions` Array(String)"""
# the trade columns the previous version's view showed (a column added since: not in its snapshots)
OLD_TRADE_COLUMNS = "`ts`, `venue`, `instrument`, `trade_id`, `price`, `quantity`, `amount`, `side`, `seq`"
OLD_VIEWS = [
    """CREATE OR REPLACE VIEW {db}.`trades_v` AS
SELECT """
    + OLD_TRADE_COLUMNS
    + """
FROM {db}.`trades`
WHERE load_id IN (SELECT load_id FROM {db}.loads FINAL WHERE kind = 'trades')""",
    """CREATE OR REPLACE VIEW {db}.active_loads AS
SELECT kind, venue, instrument, day, load_id, rows, run_id, loaded_at FROM {db}.loads FINAL""",
]
OLD_LOG_COLUMNS = [
    "run_id",
    "provider",
    "kind",
    "venue",
    "instrument",
    "day",
    "rows",
    "outcome",
    "error",
    "load_id",
    "started_at",
    "finished_at",
]


def old_store(client, database: str, with_added_columns: bool = True) -> None:
    """The tables and views the previous version's ensure_tables created (``with_added_columns``: an
    ingest_log with ``dropped`` / ``conversions``, else one of before they were added)."""
    db = f"`{database}`"
    client.command(f"CREATE DATABASE IF NOT EXISTS {db}")
    for spec in frames.DATASETS.values():
        client.command(ct._table_ddl(database, spec))
    client.command(OLD_LOADS.format(db=db))
    client.command(f"SYSTEM STOP MERGES {db}.loads")  # its superseded rows stay: the copy must keep them
    client.command(OLD_INGEST_LOG.format(db=db, added=OLD_ADDED if with_added_columns else ""))
    for statement in ct._daily_ddl(database)[:2] + OLD_VIEWS:
        client.command(statement.format(db=db))


def trades(n: int, instrument: str, seed: int) -> pl.DataFrame:
    start = datetime(DAY.year, DAY.month, DAY.day, tzinfo=UTC)
    return pl.DataFrame(
        {
            "ts": [start + timedelta(seconds=i * 60 + seed) for i in range(n)],
            "venue": "BINANCE",
            "instrument": instrument,
            "trade_id": [str(seed * 1000 + i) for i in range(n)],
            "price": [100.0 + i for i in range(n)],
            "quantity": 1.0,
            "amount": [100.0 + i for i in range(n)],
            "side": ["buy" if i % 2 else "sell" for i in range(n)],
            "seq": list(range(n)),
        },
    ).pipe(frames.as_schema, frames.TRADES_SCHEMA)


def old_write(
    client, database: str, instrument: str, load_id: int, n: int, run_id: str, loads: str = "loads"
) -> None:
    """A slice written the previous version's way: the rows under a load id, then its row in ``loads``
    (``kind``)."""
    frame = trades(n, instrument, load_id).with_columns(
        pl.lit(DAY, pl.Date).alias("day"), pl.lit(load_id, pl.UInt64).alias("load_id")
    )
    client.insert_arrow("trades", frame.to_arrow(compat_level=pl.CompatLevel.oldest()), database=database)
    client.insert(
        loads,
        [
            [
                "trades",
                "BINANCE",
                instrument,
                DAY,
                load_id,
                n,
                run_id,
                datetime(2024, 4, 1, 0, 0, load_id % 60, tzinfo=UTC),
            ]
        ],
        column_names=["kind", "venue", "instrument", "day", "load_id", "rows", "run_id", "loaded_at"],
        database=database,
    )


def old_log(
    client,
    database: str,
    instrument: str,
    load_id: int,
    provider: str = "BINANCE",
    outcome: str = "ok",
    extra: dict | None = None,
) -> None:
    """An ingest_log row of the previous version (``provider``, ``kind``)."""
    at = datetime(2024, 4, 1, 0, 0, load_id % 60, 123000, tzinfo=UTC)
    row = dict(
        zip(
            OLD_LOG_COLUMNS,
            [
                f"run-{load_id}",
                provider,
                "trades",
                "BINANCE",
                instrument,
                DAY,
                10,
                outcome,
                "" if outcome == "ok" else "HTTP 503",
                load_id,
                at,
                at,
            ],
        ),
        **(extra or {}),
    )
    client.insert("ingest_log", [list(row.values())], column_names=list(row), database=database)


def fill(client, database: str, with_added_columns: bool = True) -> None:
    """Three loads (BTCUSDT's first superseded) and four attempts, written the old way."""
    old_store(client, database, with_added_columns)
    old_write(client, database, "BTCUSDT", 11, 5, "r1")
    old_write(client, database, "ETHUSDT", 12, 4, "r1")
    old_write(client, database, "BTCUSDT", 13, 3, "r2")
    extra = (
        {"dropped": {"bad_price": 2}, "conversions": ["quantity: contracts -> base"]}
        if with_added_columns
        else {}
    )
    old_log(client, database, "BTCUSDT", 11, extra=extra)
    old_log(client, database, "ETHUSDT", 12)
    old_log(client, database, "BTCUSDT", 13, provider="BINANCE_DUMPS")
    old_log(client, database, "XRPUSDT", 0, outcome="failed")


def rows(client, sql: str, **params) -> list[tuple]:
    return sorted(client.query(sql, parameters=params or None).result_rows, key=repr)


def columns(client, database: str, table: str) -> list[str]:
    return migrations.columns_of(client, database, [table]).get(table, [])


def snapshot(client, db: str, loads_column: str, log_columns: tuple[str, str]) -> dict:
    """What a reader sees: the read views, and every stored row of the two tables (superseded loads too)."""
    provider, kind = log_columns
    return {
        "trades_v": rows(client, f"SELECT {OLD_TRADE_COLUMNS} FROM `{db}`.trades_v"),
        "active_loads": rows(
            client, f"SELECT * EXCEPT ({loads_column}), {loads_column} FROM `{db}`.active_loads"
        ),
        "loads": rows(
            client,
            f"SELECT {loads_column}, venue, instrument, day, load_id, rows, run_id, loaded_at "
            f"FROM `{db}`.loads",
        ),
        "ingest_log": rows(
            client,
            f"SELECT run_id, {provider}, {kind}, venue, instrument, day, rows, outcome, error, "
            f"load_id, started_at, finished_at FROM `{db}`.ingest_log",
        ),
    }


def tables_state(client, db: str) -> list[tuple]:
    """Every table (the views are replaced on every run) with its uuid and the highest block of its parts:
    unchanged = nothing rebuilt or written."""
    return client.query(
        "SELECT t.name, toString(t.uuid), max(p.max_block_number) FROM system.tables AS t "
        "LEFT JOIN system.parts AS p ON p.database = t.database AND p.table = t.name AND p.active "
        "WHERE t.database = {db:String} AND t.engine != 'View' GROUP BY t.name, t.uuid ORDER BY t.name",
        parameters={"db": db},
    ).result_rows


def test_a_store_of_the_previous_version_gets_the_new_names_and_keeps_every_row(clickhouse, caplog):
    db = clickhouse.database
    with clickhouse.get_client() as client:
        fill(client, db)
        before = snapshot(client, db, "kind", ("provider", "kind"))
        old_maps = rows(client, f"SELECT instrument, dropped, conversions FROM `{db}`.ingest_log")
        assert (
            len(before["loads"]) == 3 and len(before["ingest_log"]) == 4 and len(before["trades_v"]) == 3 + 4
        )
        with caplog.at_level(logging.WARNING, logger=migrations.__name__):
            ct.ensure_tables(client, db)
        assert "kind" not in columns(client, db, "loads") and "dataset" in columns(client, db, "loads")
        assert {"provider", "kind"}.isdisjoint(columns(client, db, "ingest_log"))
        keys = dict(
            client.query(
                "SELECT name, sorting_key FROM system.tables WHERE database = {db:String}",
                parameters={"db": db},
            ).result_rows
        )
        assert keys["loads"] == "dataset, venue, instrument, day"
        assert keys["ingest_log"] == "source, instrument, day, finished_at"
        after = snapshot(client, db, "dataset", ("source", "dataset"))
        assert after == before  # every row, and the views show the same
        assert rows(client, f"SELECT instrument, dropped, conversions FROM `{db}`.ingest_log") == old_maps
        # the previous tables are kept as they were
        assert rows(client, f"SELECT * FROM `{db}`.loads_before_dataset_columns") == before["loads"]
        assert int(client.command(f"SELECT count() FROM `{db}`.ingest_log_before_dataset_columns")) == 4
        logged = [r.getMessage() for r in caplog.records]
        assert len(logged) == 2 and "loads (kind -> dataset): 3 rows copied, 0 caught up" in logged[0]
        assert "ingest_log (provider -> source, kind -> dataset): 4 rows copied" in logged[1]

        # the new code reads and writes the migrated store
        assert ct.loaded_days(client, db, "trades")["load_id"].to_list() == [13, 12]
        w.write_slice(client, db, "trades", trades(2, "BTCUSDT", 7), "BINANCE", "BTCUSDT", DAY, "r3")
        assert int(client.command(f"SELECT count() FROM `{db}`.trades_v")) == 2 + 4

        # a second ensure_tables changes nothing and logs nothing
        state = tables_state(client, db)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger=migrations.__name__):
            ct.ensure_tables(client, db)
        assert tables_state(client, db) == state and caplog.records == []


def test_an_ingest_log_older_than_its_added_columns_is_migrated_with_their_defaults(clickhouse):
    db = clickhouse.database
    with clickhouse.get_client() as client:
        fill(client, db, with_added_columns=False)
        before = snapshot(client, db, "kind", ("provider", "kind"))
        ct.ensure_tables(client, db)
        assert snapshot(client, db, "dataset", ("source", "dataset")) == before
        assert rows(client, f"SELECT DISTINCT dropped, conversions FROM `{db}`.ingest_log") == [({}, [])]


class _Hook:
    """A client that calls `hook(sql)` after each command whose text contains `after` (once)."""

    def __init__(self, client, after: str, hook):
        self._client, self._after, self._hook, self.fired = client, after, hook, False

    def __getattr__(self, name):
        return getattr(self._client, name)

    def command(self, sql, *args, **kwargs):
        result = self._client.command(sql, *args, **kwargs)
        if not self.fired and self._after in sql:
            self.fired = True
            self._hook(sql)
        return result


def test_rows_written_into_the_old_tables_during_the_copy_are_caught_up(clickhouse, caplog):
    db = clickhouse.database
    with clickhouse.get_client() as client:
        fill(client, db)

        def previous_version_writes(sql):  # a process of the previous version, between the copy and the swap
            if "loads_dataset_columns_new" in sql:
                old_write(client, db, "SOLUSDT", 21, 6, "late")
            else:
                old_log(client, db, "SOLUSDT", 21)

        for table in ("loads", "ingest_log"):
            racing = _Hook(
                client, f"INSERT INTO `{db}`.`{table}_dataset_columns_new`", previous_version_writes
            )
            with caplog.at_level(logging.WARNING, logger=migrations.__name__):
                migrations.rename_columns(
                    racing,
                    db,
                    next(r for r in ct.RENAMED if r.table == table),
                    lambda name, t=table: ct._CREATE[t](db, name, exists_ok=False),
                    after_swap=lambda: None,
                )
            assert racing.fired
        ct.ensure_tables(client, db)
        assert rows(
            client, f"SELECT instrument, load_id, rows FROM `{db}`.active_loads WHERE dataset = 'trades'"
        ) == [("BTCUSDT", 13, 3), ("ETHUSDT", 12, 4), ("SOLUSDT", 21, 6)]
        assert int(client.command(f"SELECT count() FROM `{db}`.loads FINAL")) == 3
        assert rows(client, f"SELECT instrument, count() FROM `{db}`.ingest_log GROUP BY instrument") == [
            ("BTCUSDT", 2),
            ("ETHUSDT", 1),
            ("SOLUSDT", 1),
            ("XRPUSDT", 1),
        ]
        assert int(client.command(f"SELECT count() FROM `{db}`.trades_v WHERE instrument = 'SOLUSDT'")) == 6
    logged = [r.getMessage() for r in caplog.records]
    assert "3 rows copied, 1 caught up after the swap, 4 rows now" in logged[0]
    assert "4 rows copied, 1 caught up after the swap, 5 rows now" in logged[1]


def test_two_processes_at_once_migrate_once(clickhouse):
    """A second process starting while the first one copies waits for it, then finds the store migrated."""
    db = clickhouse.database
    other = ClickHouseResource(dsn=clickhouse.dsn, database=db, lock_timeout_s=5)
    waiting, errors = threading.Event(), []

    class Second(_Hook):
        def query(self, sql, *args, **kwargs):
            result = self._client.query(sql, *args, **kwargs)
            if "system.columns" in sql and any(
                r[0] == "loads_dataset_columns_new" for r in result.result_rows
            ):
                waiting.set()  # it sees the first one's claim: it waits
            return result

    def second_process():
        try:
            with other.get_client() as c:
                ct.ensure_tables(Second(c, "(no hook)", print), db, wait_s=60)
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    thread = threading.Thread(target=second_process)

    def start_second(_sql):
        thread.start()
        assert waiting.wait(30), "the second process did not find the claim"

    try:
        with clickhouse.get_client() as client:
            fill(client, db)
            before = snapshot(client, db, "kind", ("provider", "kind"))
            ct.ensure_tables(
                _Hook(client, f"INSERT INTO `{db}`.`loads_dataset_columns_new`", start_second), db
            )
            thread.join(60)
            assert not thread.is_alive() and errors == []
            assert snapshot(client, db, "dataset", ("source", "dataset")) == before  # no row twice, none lost
            assert int(client.command(f"SELECT count() FROM `{db}`.loads")) == 3
            assert int(client.command(f"SELECT count() FROM `{db}`.ingest_log")) == 4
    finally:
        other.close()


def test_a_migration_killed_before_its_swap_leaves_the_table_untouched(clickhouse):
    db = clickhouse.database
    with clickhouse.get_client() as client:
        fill(client, db)
        before = snapshot(client, db, "kind", ("provider", "kind"))

        def killed(_sql):
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            ct.ensure_tables(_Hook(client, f"INSERT INTO `{db}`.`loads_dataset_columns_new`", killed), db)
        assert (
            "kind" in columns(client, db, "loads") and columns(client, db, "loads_dataset_columns_new") == []
        )
        assert snapshot(client, db, "kind", ("provider", "kind")) == before
        # a copy left by a process killed hard: the others wait for it, then say what to do
        client.command(f"CREATE TABLE `{db}`.loads_dataset_columns_new AS `{db}`.loads")
        with pytest.raises(
            migrations.MigrationBlocked, match="DROP TABLE .*loads_dataset_columns_new and run again"
        ):
            ct.ensure_tables(client, db, wait_s=0.5)
        client.command(f"DROP TABLE `{db}`.loads_dataset_columns_new")
        ct.ensure_tables(client, db)
        assert snapshot(client, db, "dataset", ("source", "dataset")) == before


def test_a_migration_killed_after_its_swap_is_finished_by_hand(clickhouse, caplog):
    db = clickhouse.database
    with clickhouse.get_client() as client:
        fill(client, db)
        before = snapshot(client, db, "kind", ("provider", "kind"))

        def killed(_sql):  # right after the swap: the old table is under the staging name
            old_write(
                client, db, "SOLUSDT", 21, 6, "late", "loads_dataset_columns_new"
            )  # a late write lands in it
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            ct.ensure_tables(_Hook(client, f"EXCHANGE TABLES `{db}`.`loads`", killed), db)
        assert "dataset" in columns(client, db, "loads") and "kind" in columns(
            client, db, "loads_dataset_columns_new"
        )
        with caplog.at_level(logging.WARNING, logger=migrations.__name__):
            ct.ensure_tables(client, db)  # the store works; the leftover is named
        assert any("finish_column_renames" in r.getMessage() for r in caplog.records)
        moved = ct.finish_column_renames(client, db)
        assert [(m.table, m.caught_up, m.rows_before, m.rows_after) for m in moved] == [("loads", 1, 4, 4)]
        after = snapshot(client, db, "dataset", ("source", "dataset"))
        assert [r for r in after["loads"] if r[2] != "SOLUSDT"] == before["loads"]
        assert [r[2:6] for r in after["loads"] if r[2] == "SOLUSDT"] == [("SOLUSDT", DAY, 21, 6)]
        assert after["ingest_log"] == before["ingest_log"] and ct.finish_column_renames(client, db) == []
        assert columns(client, db, "loads_dataset_columns_new") == [] and "kind" in columns(
            client, db, "loads_before_dataset_columns"
        )


def test_a_store_older_than_an_added_dataset_column_gets_it_once_its_rows_reading_null(clickhouse, caplog):
    """`ADDED_SINCE` (liquidations.order_price): a table created before the column was declared gets it, in
    its declared place and type, before the views that name it; its rows read null; a second run adds
    nothing."""
    db, spec = clickhouse.database, frames.LIQUIDATIONS_SPEC
    with clickhouse.get_client() as client:
        client.command(f"CREATE DATABASE IF NOT EXISTS `{db}`")
        client.command(
            ct._table_ddl(db, spec).replace(",\n    `order_price` Nullable(Float64) CODEC(ZSTD(1))", "")
        )
        assert "order_price" not in columns(client, db, "liquidations")
        at = datetime(DAY.year, DAY.month, DAY.day, 1, tzinfo=UTC)
        client.insert(
            "liquidations",
            [[at, "BINANCE_UM", "BTCUSDT", "1.SELL", "sell", 9910.0, 0.014, 138.74, DAY, 7]],
            column_names=[
                "ts",
                "venue",
                "instrument",
                "liquidation_id",
                "side",
                "price",
                "quantity",
                "amount",
                "day",
                "load_id",
            ],
            database=db,
        )
        with caplog.at_level(logging.WARNING, logger=migrations.__name__):
            ct.ensure_tables(client, db)
        assert "added the column(s) liquidations.order_price" in caplog.text
        assert columns(client, db, "liquidations") == [*spec.column_names, "day", "load_id"]
        assert rows(
            client,
            "SELECT type FROM system.columns WHERE database = {d:String} AND table = 'liquidations' "
            "AND name = 'order_price'",
            d=db,
        ) == [("Nullable(Float64)",)]
        client.insert(
            "loads",
            [["liquidations", "BINANCE_UM", "BTCUSDT", DAY, 7, 1, "run-7"]],
            column_names=["dataset", "venue", "instrument", "day", "load_id", "rows", "run_id"],
            database=db,
        )
        stored = ct.read_range(
            client, db, "liquidations", "BINANCE_UM", "BTCUSDT", DAY, DAY + timedelta(days=1)
        )
        assert stored.select("liquidation_id", "price", "order_price").rows() == [("1.SELL", 9910.0, None)]
        assert migrations.add_columns(client, db, ct.added_columns()) == []  # once


def test_a_trades_live_older_than_a_trades_column_gets_it_before_the_view_that_names_it(clickhouse, caplog):
    """An existing ``trades_live`` (made only if missing) made before a `trades` column was declared (here
    `seq`) gets it in its place and type from ensure_live_tables; its rows read null through
    ``trades_latest``; a second run adds nothing."""
    db = clickhouse.database
    with clickhouse.get_client() as client:
        client.command(f"CREATE DATABASE IF NOT EXISTS `{db}`")
        client.command(live._live_ddl(db).replace(",\n    `seq` Nullable(Int64) CODEC(Delta, ZSTD(1))", ""))
        assert "seq" not in columns(client, db, live.TRADES_LIVE)
        at = datetime(DAY.year, DAY.month, DAY.day, 1, tzinfo=UTC)
        old = [c for c in live.LIVE_COLUMNS if c != "seq"]
        values = {"ts": at, "venue": "BINANCE", "instrument": "BTCUSDT", "trade_id": "1", "side": "buy"}
        row = [values.get(c, at if c.endswith("_ts") else 1.0) for c in old]
        client.insert(live.TRADES_LIVE, [row], column_names=old, database=db)
        with caplog.at_level(logging.WARNING, logger=migrations.__name__):
            live.ensure_live_tables(client, db)
        assert f"added the column(s) {live.TRADES_LIVE}.seq" in caplog.text
        assert columns(client, db, live.TRADES_LIVE) == [*live.LIVE_COLUMNS, "inserted_at"]
        assert rows(
            client,
            "SELECT type FROM system.columns WHERE database = {d:String} AND table = {t:String} "
            "AND name = 'seq'",
            d=db,
            t=live.TRADES_LIVE,
        ) == [("Nullable(Int64)",)]
        assert rows(client, f"SELECT trade_id, seq, path FROM `{db}`.{live.TRADES_LATEST}") == [
            ("1", None, "live")
        ]
        assert migrations.add_columns(client, db, live.live_added_columns()) == []  # once
