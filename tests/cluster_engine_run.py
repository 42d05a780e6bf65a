"""The cluster DDL's Distributed layer run for real on the embedded engine (tests/test_clickhouse_cluster.py
starts it in its own process: chDB holds one data directory per process).

`python -m tests.cluster_engine_run DIR`: an engine in DIR whose config (chDB's ``config-file`` option)
declares the cluster ``desk`` of one shard on this host (and ``pair``, two shards both on it) and the
``{shard}``/``{replica}`` macros. The
statements of stores.clickhouse.cluster run with the two things that need ClickHouse Keeper taken out
(``ON CLUSTER`` and the ``Replicated`` engine prefix with its Keeper path); everything else runs as
generated: the ``_local`` tables, the Distributed tables over them, the materialized views on the local
tables, the views and ``trades_latest`` over the Distributed ones. Then the project's writer, reads and
live path go through them with ``CLICKHOUSE_CLUSTER=desk`` (its insert and session settings). Prints one
JSON object of what it saw.
"""

from __future__ import annotations

import json
import os
import re
import sys
from datetime import date, datetime, timezone
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
    """The statement minus what needs Keeper: ``ON CLUSTER `...``` and ``Replicated<E>('path', '{replica}', ``."""
    statement = re.sub(r" ON CLUSTER `\w+`", "", statement)
    return re.sub(r"Replicated(\w+)\('[^']*', '\{replica\}'(?:, )?", r"\1(", statement)


def ddl(database: str, name: str) -> list[str]:
    from marketdata_assets.stores.clickhouse import cluster, history, live, tables

    return cluster.on_cluster([f"CREATE DATABASE IF NOT EXISTS `{database}`", *tables.ddl_statements(database),
                               *history.history_ddl(database), live._live_ddl(database), live._latest_ddl(database)],
                              name)


def two_shards(client) -> dict:
    """``trades_latest`` on the cluster ``pair`` (two shards, both this engine: rows read twice, so only
    whether the query runs is looked at): it joins two Distributed tables, which ClickHouse's default
    refuses (double-distributed JOIN) and the project's session settings make GLOBAL."""
    for statement in ddl("marketdata_pair", "pair"):
        client.command(without_keeper(statement))
    sql = "SELECT count() FROM marketdata_pair.trades_latest"
    try:
        client.query(sql, settings={"distributed_product_mode": "deny"})
        refused = ""
    except Exception as error:  # noqa: BLE001 - its message is the finding
        refused = str(error)[:200]
    return {"pair_default_refused": refused, "pair_project_settings": client.query(sql).result_rows[0][0]}


def trades(ids: list[str], price: float):
    import polars as pl

    from marketdata_assets.datasets.frames import TRADES

    start = datetime(2026, 1, 5, 1, tzinfo=timezone.utc)
    return pl.DataFrame({"ts": [start.replace(minute=i) for i in range(len(ids))], "venue": "BINANCE",
                         "instrument": "BTCUSDT", "trade_id": ids, "price": price, "quantity": 1.0,
                         "amount": price, "side": "buy", "seq": None}, schema=TRADES.schema)


def main(directory: str) -> int:
    from clickhouse_connect.driver._chdbclient import ChdbClient

    from marketdata_assets.stores.clickhouse import cluster, history, live, tables, writer

    config = Path(directory) / "config.xml"
    config.write_text(CONFIG)
    statements = ddl(DB, "desk")
    os.environ["CLICKHOUSE_CLUSTER"] = "desk"
    client = ChdbClient(path=str(Path(directory) / "data"), chdb_options={"config-file": str(config)},
                        settings=cluster.client_settings())
    seen: dict = {"clusters": [r[0] for r in client.query("SELECT cluster FROM system.clusters").result_rows]}
    for statement in statements:
        client.command(without_keeper(statement))
    first = writer.write_slice(client, DB, "trades", trades(["1", "2", "3"], 100.0), "BINANCE", "BTCUSDT",
                               date(2026, 1, 5), "run-1", method="arrow")
    second = writer.write_slice(client, DB, "trades", trades(["1", "2"], 101.0), "BINANCE", "BTCUSDT",
                                date(2026, 1, 5), "run-2", method="arrow")
    read = tables.read_range(client, DB, "trades", "BINANCE", "BTCUSDT", "2026-01-05", "2026-01-06")
    bars = tables.daily_bars(client, DB, "BINANCE", "BTCUSDT", date(2026, 1, 5), date(2026, 1, 5))
    live.insert_live_trades(client, DB, [live.trade_row({
        "venue": "BINANCE", "instrument": "BTCUSDT", "trade_id": "9", "price": "102", "quantity": "1", "side": "buy",
        "ts_ms": 1_767_580_000_000, "recv_ns": 1_767_580_000_000_000_000})])
    latest = client.query(f"SELECT path, count() FROM {DB}.trades_latest GROUP BY path ORDER BY path").result_rows
    local = client.query(f"SELECT count() FROM {DB}.trades_local").result_rows[0][0]
    seen.update(first_rows=first.rows, second_rows=second.rows, read_rows=read.height,
                read_prices=sorted(set(read["price"].to_list())), bar_trades=int(bars["trades"][0]),
                bar_close=float(bars["close"][0]), latest={path: n for path, n in latest}, stored_local=int(local),
                history=int(client.command(f"SELECT count() FROM {DB}.{history.LOAD_HISTORY}")),
                engines=dict(client.query("SELECT name, engine FROM system.tables WHERE database = {db:String} AND "
                                          "name IN ('trades', 'trades_local', 'loads')", parameters={"db": DB}).result_rows))
    seen.update(two_shards(client))
    client.close()
    print(json.dumps(seen))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
