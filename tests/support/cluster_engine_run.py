"""The cluster DDL's Distributed layer run for real on the embedded engine
(tests/stores/clickhouse/test_clickhouse_cluster.py starts it in its own process: chDB holds one data
directory per process).

`python -m tests.support.cluster_engine_run DIR`: an engine in DIR whose config (chDB's ``config-file``
option) declares the cluster ``desk`` of one shard on this host (and ``pair``, two shards both on it) and the
``{shard}``/``{replica}`` macros. The
statements of stores.clickhouse.cluster run with the two things that need ClickHouse Keeper taken out
(``ON CLUSTER`` and the ``Replicated`` engine prefix with its Keeper path); everything else runs as
generated: the ``_local`` tables, the Distributed tables over them, the materialized views on the local
tables, the views and ``trades_latest`` over the Distributed ones. Then the project's writer, reads and
live path go through them with ``CLICKHOUSE_CLUSTER=desk`` (its insert and session settings), and the
monthly compaction (tables.compact_store) runs its cluster statements on ``desk`` (minus ``ON CLUSTER``;
``SYSTEM SYNC REPLICA``, which only a replicated table has, is not sent), beside the single-node
compaction of the same writes in another database of the engine. Prints one JSON object of what it saw.
"""

from __future__ import annotations

import json
import os
import re
import sys
from datetime import UTC, date, datetime
from pathlib import Path

CONFIG = """<clickhouse>
  <tcp_port>39000</tcp_port>
  <remote_servers>
    <desk><shard><replica><host>localhost</host><port>39000</port></replica></shard></desk>
    <pair><shard><replica><host>localhost</host><port>39000</port></replica></shard>
          <shard><replica><host>127.0.0.1</host><port>39000</port></replica></shard></pair>
  </remote_servers>
  <macros><shard>01</shard><replica>r1</replica></macros>
</clickhouse>
"""
DB = "marketdata"


def without_keeper(statement: str) -> str:
    """The statement minus what needs Keeper: ``ON CLUSTER `...``` and
    ``Replicated<E>('path', '{replica}', ``."""
    statement = re.sub(r" ON CLUSTER `\w+`", "", statement)
    return re.sub(r"Replicated(\w+)\('[^']*', '\{replica\}'(?:, )?", r"\1(", statement)


def ddl(database: str, name: str) -> list[str]:
    from marketdata_assets.stores.clickhouse import cluster, history, live, tables

    return cluster.on_cluster(
        [
            f"CREATE DATABASE IF NOT EXISTS `{database}`",
            *tables.ddl_statements(database),
            *history.history_ddl(database),
            live._live_ddl(database),
            live._latest_ddl(database),
        ],
        name,
    )


def two_shards(client) -> dict:
    """``trades_latest`` on the cluster ``pair`` (two shards, both this engine: rows read twice, so only
    whether the query runs is looked at): it joins two Distributed tables, which ClickHouse's default
    refuses (double-distributed JOIN) and the project's session settings make GLOBAL. And the compaction's
    block numbers of a partition, one per shard (both shards' are this engine's, so they agree)."""
    for statement in ddl("marketdata_pair", "pair"):
        client.command(without_keeper(statement))
    sql = "SELECT count() FROM marketdata_pair.trades_latest"
    try:
        client.query(sql, settings={"distributed_product_mode": "deny"})
        refused = ""
    except Exception as error:  # noqa: BLE001 - its message is the finding
        refused = str(error)[:200]
    from marketdata_assets.stores.clickhouse import cluster

    blocks = client.query(
        cluster.max_blocks_sql("pair"),
        parameters={  # the compaction's per-shard write check
            "db": DB,
            "table": "trades_local",
            "part": "202601",
        },
    ).result_rows
    return {
        "pair_default_refused": refused,
        "pair_project_settings": client.query(sql).result_rows[0][0],
        "pair_block_shards": [int(r[0]) for r in blocks],
        "pair_blocks_agree": len({r[1] for r in blocks}) == 1,
    }


class WithoutKeeper:
    """The client, each statement sent as :func:`without_keeper` makes it (``SYSTEM SYNC REPLICA``, for a
    replicated table only, not sent); ``sent`` keeps every statement as the project wrote it."""

    def __init__(self, client):
        self.client, self.sent = client, []

    def command(self, sql: str, *args, **kwargs):
        self.sent.append(sql)
        if not sql.startswith("SYSTEM SYNC REPLICA"):
            return self.client.command(without_keeper(sql), *args, **kwargs)
        return None

    def query(self, sql: str, *args, **kwargs):
        self.sent.append(sql)
        return self.client.query(without_keeper(sql), *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.client, name)


def write_twice(client, database: str) -> list:
    """A slice written twice: the first load (3 rows) superseded by the second (2 rows)."""
    from marketdata_assets.stores.clickhouse import writer

    return [
        writer.write_slice(
            client,
            database,
            "trades",
            trades(ids, price),
            "BINANCE",
            "BTCUSDT",
            date(2026, 1, 5),
            run,
            method="arrow",
        )
        for ids, price, run in ((["1", "2", "3"], 100.0, "run-1"), (["1", "2"], 101.0, "run-2"))
    ]


def write_orphan(client, database: str) -> None:
    """Rows of a load never made active, in February (an orphan once the grace is 0): the month keeps none."""
    import polars as pl

    from marketdata_assets.datasets.frames import TRADES_SPEC
    from marketdata_assets.stores.clickhouse import writer

    orphan = trades(["7", "8"], 99.0).with_columns(
        pl.col("ts").dt.offset_by("31d"), pl.lit("ETHUSDT").alias("instrument")
    )
    table = orphan.with_columns(pl.col("ts").dt.date().alias("day"), pl.lit(7, pl.UInt64).alias("load_id"))
    writer._insert_arrow(
        client, database, TRADES_SPEC, table.to_arrow(compat_level=pl.CompatLevel.oldest()), 100, [7]
    )


def compaction(client, cluster_db: str, one_db: str) -> dict:
    """compact_store on the cluster (``desk``) and on one node, over the same garbage: what each did, the
    trades left (without load ids, which differ) and the statements each sent."""
    from datetime import timedelta

    from marketdata_assets.stores.clickhouse import tables

    seen: dict = {}
    for path, database, name in (("cluster", cluster_db, "desk"), ("one", one_db, "")):
        os.environ["CLICKHOUSE_CLUSTER"] = name
        if name == "":  # the cluster database has the slice written twice already (main)
            tables.ensure_tables(client, database)
            write_twice(client, database)
        write_orphan(client, database)
        recorder = WithoutKeeper(client)
        report = tables.compact_store(recorder, database, datasets=["trades"], orphan_grace=timedelta(0))
        seen[f"{path}_results"] = [
            [r.table, r.month, r.rows_before, r.rows_after, r.superseded, r.orphaned, r.pending]
            for r in report.results
        ]
        seen[f"{path}_problems"] = report.conflicts + report.errors
        seen[f"{path}_sent"] = recorder.sent
        seen[f"{path}_rows"] = [
            list(map(str, r))
            for r in client.query(
                f"SELECT venue, instrument, ts, trade_id, price FROM `{database}`.trades ORDER BY ts, "
                "trade_id"
            ).result_rows
        ]
        seen[f"{path}_staging_left"] = int(
            client.command(
                (
                    "SELECT count() FROM system.tables WHERE database = {db:String} AND startsWith(name, "
                    "'_compact_')"
                ),
                parameters={"db": database},
            )
        )
    os.environ["CLICKHOUSE_CLUSTER"] = "desk"
    return seen


def trades(ids: list[str], price: float):
    import polars as pl

    from marketdata_assets.datasets.frames import TRADES_SPEC, as_schema

    start = datetime(2026, 1, 5, 1, tzinfo=UTC)
    return pl.DataFrame(
        {
            "ts": [start.replace(minute=i) for i in range(len(ids))],
            "venue": "BINANCE",
            "instrument": "BTCUSDT",
            "trade_id": ids,
            "price": price,
            "quantity": 1.0,
            "amount": price,
            "side": "buy",
            "seq": None,
        },
    ).pipe(as_schema, TRADES_SPEC.schema)


def main(directory: str) -> int:
    from clickhouse_connect.driver._chdbclient import ChdbClient

    from marketdata_assets.stores.clickhouse import cluster, history, live, tables

    config = Path(directory) / "config.xml"
    config.write_text(CONFIG)
    statements = ddl(DB, "desk")
    os.environ["CLICKHOUSE_CLUSTER"] = "desk"
    client = ChdbClient(
        path=str(Path(directory) / "data"),
        chdb_options={"config-file": str(config)},
        settings=cluster.client_settings(),
    )
    seen: dict = {"clusters": [r[0] for r in client.query("SELECT cluster FROM system.clusters").result_rows]}
    for statement in statements:
        client.command(without_keeper(statement))
    first, second = write_twice(client, DB)
    read = tables.read_range(client, DB, "trades", "BINANCE", "BTCUSDT", "2026-01-05", "2026-01-06")
    bars = tables.daily_bars(client, DB, "BINANCE", "BTCUSDT", date(2026, 1, 5), date(2026, 1, 5))
    live.insert_live_trades(
        client,
        DB,
        live.trade_rows(
            json.dumps(
                {
                    "venue": "BINANCE",
                    "instrument": "BTCUSDT",
                    "trade_id": "9",
                    "price": "102",
                    "quantity": "1",
                    "side": "buy",
                    "ts_ms": 1_767_580_000_000,
                    "recv_ns": 1_767_580_000_000_000_000,
                }
            ).encode()
        ),
    )
    latest = client.query(
        f"SELECT path, count() FROM {DB}.trades_latest GROUP BY path ORDER BY path"
    ).result_rows
    local = client.query(f"SELECT count() FROM {DB}.trades_local").result_rows[0][0]
    seen.update(
        first_rows=first.rows,
        second_rows=second.rows,
        read_rows=read.height,
        read_prices=sorted(set(read["price"].to_list())),
        bar_trades=int(bars["trades"][0]),
        bar_close=float(bars["close"][0]),
        latest={path: n for path, n in latest},
        stored_local=int(local),
        history=int(client.command(f"SELECT count() FROM {DB}.{history.LOAD_HISTORY}")),
        engines=dict(
            client.query(
                "SELECT name, engine FROM system.tables WHERE database = {db:String} AND "
                "name IN ('trades', 'trades_local', 'loads')",
                parameters={"db": DB},
            ).result_rows
        ),
    )
    seen.update(two_shards(client))
    seen.update(compaction(client, DB, "marketdata_one"))
    seen["compacted_read_prices"] = sorted(
        set(
            tables.read_range(client, DB, "trades", "BINANCE", "BTCUSDT", "2026-01-05", "2026-01-06")[
                "price"
            ].to_list()
        )
    )
    client.close()
    print(json.dumps(seen))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
