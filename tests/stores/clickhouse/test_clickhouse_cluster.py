"""ClickHouse cluster mode (stores.clickhouse.cluster, issue #25), checked offline: every statement of the
cluster DDL parses with ClickHouse's own parser (chDB's ``formatQuery``, the engine's parser), names
engines the engine has, and its tables match the single-node tables column by column; the single-node
DDL stays byte for byte what it was; inserts carry the quorum and a deduplication token that the engine
honours; the monthly compaction's cluster statements parse, keep what the single-node compaction keeps and
run on a cluster of one shard on this host (minus ON CLUSTER). What these tests cannot do: run the DDL on
Keeper and several servers (none here)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from marketdata_assets.datasets.frames import DATASETS, as_schema
from marketdata_assets.stores.clickhouse import cluster, connection, history, live, tables, writer

DB = "marketdata"
CLUSTER = "desk"
GOLDEN = Path(__file__).with_name("clickhouse_single_node.sql")


def single_node() -> list[str]:
    """Every DDL statement the project issues on one node (tables, history, live), in order."""
    return [*tables.ddl_statements(DB), *history.history_ddl(DB), live._live_ddl(DB), live._latest_ddl(DB)]


@pytest.fixture(scope="module")
def parser(clickhouse_dsn):
    """``formatted(sql)``: the statement as ClickHouse's parser prints it back; a syntax error raises."""
    from marketdata_assets.resources import ClickHouseResource

    resource = ClickHouseResource(dsn=clickhouse_dsn, database="default", lock_timeout_s=30)
    with resource.get_client() as client:
        engines = {r[0] for r in client.query("SELECT name FROM system.table_engines").result_rows}

        def formatted(sql: str) -> str:
            return client.query("SELECT formatQuery({q:String})", parameters={"q": sql}).result_rows[0][0]

        formatted.engines = engines
        yield formatted
    resource.close()


def parts(formatted: str) -> dict:
    """The column lines, ENGINE, PARTITION BY and ORDER BY of a parsed CREATE TABLE (formatQuery's layout:
    one column per line between the lines ``(`` and ``)``)."""
    lines = formatted.splitlines()
    start, end = lines.index("("), lines.index(")")
    clause = {
        k: next((ln for ln in lines if ln.startswith(k)), None)
        for k in ("ENGINE", "PARTITION BY", "ORDER BY")
    }
    return {"columns": [ln.strip().rstrip(",") for ln in lines[start + 1 : end]], **clause}


def test_single_node_ddl_is_unchanged_byte_for_byte():
    """Cluster mode off, the statements are exactly the ones of before cluster mode (a deliberate change
    of the single-node DDL updates tests/stores/clickhouse/clickhouse_single_node.sql with it)."""
    assert ";\n\n".join(single_node()) + ";\n" == GOLDEN.read_text()


def test_every_cluster_statement_parses_with_clickhouse(parser):
    statements = cluster.on_cluster([f"CREATE DATABASE IF NOT EXISTS `{DB}`", *single_node()], CLUSTER)
    assert len(statements) > len(single_node())
    for statement in statements:
        text = parser(statement)
        assert f"ON CLUSTER {CLUSTER}" in text, text
        engine = re.search(r"ENGINE = (\w+)", text)
        if engine:
            assert engine[1] in parser.engines, engine[1]
            assert engine[1].startswith("Replicated") or engine[1] == "Distributed", text


def test_cluster_tables_match_the_single_node_tables_column_by_column(parser):
    """Each single-node table has its cluster twin: the same columns (names, types, codecs, defaults, in
    order), PARTITION BY and ORDER BY, the replicated form of its engine; a sharded one also a
    Distributed table of its name over it, sharded by instrument."""
    cluster_tables = {}
    for statement in cluster.on_cluster(single_node(), CLUSTER):
        text = parser(statement)
        if name := re.match(rf"CREATE TABLE IF NOT EXISTS {DB}\.(\w+) ON CLUSTER", text):
            cluster_tables[name[1]] = text
    checked = 0
    for statement in single_node():
        text = parser(statement)
        name = re.match(rf"CREATE TABLE IF NOT EXISTS {DB}\.(\w+)", text)
        if not name or " AS " in text.splitlines()[0]:  # load_history copies loads' columns (AS): below
            continue
        table = name[1]
        one, many = parts(text), parts(cluster_tables[cluster.local_name(table)])
        assert many["columns"] == one["columns"], table
        assert (many["PARTITION BY"], many["ORDER BY"]) == (one["PARTITION BY"], one["ORDER BY"]), table
        engine = re.match(r"ENGINE = (\w+?)(?:\((.*)\))?$", one["ENGINE"])
        path = "{shard}" if cluster.placement(table).shard_key else "/all/"
        assert many["ENGINE"].startswith(f"ENGINE = Replicated{engine[1]}('/clickhouse/tables/"), table
        assert path in many["ENGINE"] and many["ENGINE"].endswith(
            f"'{{replica}}'{', ' + engine[2] if engine[2] else ''})"
        )
        if cluster.placement(table).shard_key:
            assert (
                f"ENGINE = Distributed({CLUSTER}, {DB}, {table}_local, cityHash64(instrument))"
                in cluster_tables[table]
            )
            assert "`instrument`" in " ".join(one["columns"])
        checked += 1
    assert checked == len(DATASETS) + 5  # + loads, ingest_log, load_ids, trades_1d_agg, trades_live
    history_table = cluster_tables[history.LOAD_HISTORY]
    assert (
        f"AS {DB}.loads" in history_table and "ReplicatedMergeTree('/clickhouse/tables/all/" in history_table
    )


def test_pointer_and_log_are_whole_and_views_read_local_tables(parser):
    statements = [parser(s) for s in cluster.on_cluster(single_node(), CLUSTER)]
    names = " ".join(s.splitlines()[0] for s in statements)
    assert "loads_local" not in names and "ingest_log_local" not in names
    mv = next(
        s for s in statements if s.startswith(f"CREATE MATERIALIZED VIEW IF NOT EXISTS {DB}.trades_1d_mv")
    )
    assert f"TO {DB}.trades_1d_agg_local" in mv and f"FROM {DB}.trades_local" in mv
    history_mv = next(s for s in statements if f"{DB}.{history.LOAD_HISTORY_MV}" in s.splitlines()[0])
    assert f"TO {DB}.load_history" in history_mv and f"FROM {DB}.loads" in history_mv
    view = next(s for s in statements if s.startswith(f"CREATE OR REPLACE VIEW {DB}.trades_v"))
    assert f"FROM {DB}.trades\n" in view and f"FROM {DB}.loads\n    FINAL" in view  # the Distributed name


def test_a_ddl_typo_fails_the_parse(parser, monkeypatch):
    """A typo in the DDL the transform starts from (or produces) is a syntax error of the engine's parser."""
    broken = tables._loads_ddl(DB).replace("ORDER BY (dataset", "ORDR BY (dataset")
    monkeypatch.setattr(tables, "_loads_ddl", lambda database, *a, **k: broken)
    statements = cluster.on_cluster(tables.ddl_statements(DB), CLUSTER)
    with pytest.raises(Exception, match="Syntax error"):
        for statement in statements:
            parser(statement)


def test_an_undeclared_table_or_engine_is_refused():
    with pytest.raises(ValueError, match="no cluster placement"):
        cluster.on_cluster(
            [f"CREATE TABLE IF NOT EXISTS `{DB}`.`fresh` (x UInt8) ENGINE = MergeTree ORDER BY x"], CLUSTER
        )
    with pytest.raises(ValueError, match="cannot make it replicated"):
        cluster.on_cluster([f"CREATE TABLE IF NOT EXISTS `{DB}`.`loads` (x UInt8) ENGINE = Memory"], CLUSTER)
    with pytest.raises(ValueError, match="invalid ClickHouse cluster"):
        cluster.on_cluster([], "desk; DROP")


def test_the_setting_is_validated_and_needs_a_server(env):
    env(CLICKHOUSE_CLUSTER="desk; DROP")
    with pytest.raises(ValueError, match="invalid ClickHouse cluster"):
        cluster.configured()
    env(CLICKHOUSE_CLUSTER=" desk ")
    assert cluster.configured() == "desk"
    with pytest.raises(ValueError, match="not the embedded engine"):
        connection.open_client("chdb://memory", "marketdata")
    env(CLICKHOUSE_CLUSTER="")
    assert cluster.configured() == "" and cluster.insert_settings("t") is None


def test_compaction_and_optimize_statements_parse(parser):
    statements = cluster.compaction_statements(
        DB, CLUSTER, "trades", "202601", "load_id IN (1, 2)", "_compact_trades_202601_ab12cd34"
    )
    statements.append(cluster.optimize_statement(DB, CLUSTER, "trades_live", "202601"))
    statements.append(cluster.max_blocks_sql(CLUSTER))
    for statement in statements:
        parser(statement)
    assert (
        parser(statements[3])
        == f"SYSTEM SYNC REPLICA ON CLUSTER {CLUSTER} {DB}._compact_trades_202601_ab12cd34_local"
    )
    swap = parser(statements[4])
    assert swap.startswith(f"ALTER TABLE {DB}.trades_local ON CLUSTER {CLUSTER}\n")
    assert f"REPLACE PARTITION ID '202601' FROM {DB}._compact_trades_202601_ab12cd34_local" in swap
    assert "allow_replace_partition_from_empty_source = 1" in swap
    older = cluster.compaction_statements(
        DB, CLUSTER, "trades", "202601", "1", "_compact_x", replace_from_empty=False
    )
    assert "SETTINGS" not in parser(older[4])
    assert f"OPTIMIZE TABLE {DB}.trades_live_local ON CLUSTER {CLUSTER} PARTITION ID" in parser(
        statements[-2]
    )
    with pytest.raises(ValueError):
        cluster.compaction_statements(DB, CLUSTER, "loads", "202601", "1", "_compact_x")


def test_cluster_mode_reaches_the_engine_and_compaction_goes_to_the_cluster(clickhouse, env):
    """With CLICKHOUSE_CLUSTER set, ensure_tables sends the ON CLUSTER statements and compaction of a month
    with superseded rows asks the cluster's shards: the embedded engine, which has no such cluster,
    answers that (the path is taken), and the month is left as it was."""
    from datetime import date

    from tests.support.cluster_engine_run import trades

    with clickhouse.get_client() as client:
        tables.ensure_tables(client, clickhouse.database)
        for ids, price in ((["1", "2", "3"], 100.0), (["1", "2"], 101.0)):
            writer.write_slice(
                client,
                clickhouse.database,
                "trades",
                trades(ids, price),
                "BINANCE",
                "BTCUSDT",
                date(2026, 1, 5),
                "run",
                method="arrow",
            )
        stored = int(client.command(f"SELECT count() FROM `{clickhouse.database}`.trades"))
        env(CLICKHOUSE_CLUSTER=CLUSTER)
        with pytest.raises(Exception, match=f"{CLUSTER}.*not found|not found.*{CLUSTER}"):
            tables.ensure_tables(client, clickhouse.database)
        with pytest.raises(Exception, match=f"{CLUSTER}.*not found|not found.*{CLUSTER}"):
            tables.compact_month(client, clickhouse.database, "trades", "2026-01")
        env(CLICKHOUSE_CLUSTER="")
        assert int(client.command(f"SELECT count() FROM `{clickhouse.database}`.trades")) == stored >= 5


def test_a_retried_insert_block_is_deduplicated_by_its_token(clickhouse, env):
    """The writer's batches carry insert_deduplication_token = the loads' ids + offset: the same block sent
    twice (a driver retry) lands once. On a cluster the replicated tables deduplicate; here the embedded
    engine's MergeTree does the same once its non-replicated deduplication window is on."""
    spec = DATASETS["trades"]
    with clickhouse.get_client() as client:
        tables.ensure_tables(client, clickhouse.database)
        client.command(
            f"ALTER TABLE `{clickhouse.database}`.trades MODIFY SETTING non_replicated_deduplication_window "
            "= 100"
        )
        frame = pl.DataFrame(
            {
                "ts": [1_767_225_600_000_000, 1_767_225_601_000_000],
                "venue": ["BINANCE"] * 2,
                "instrument": ["BTCUSDT"] * 2,
                "trade_id": ["1", "2"],
                "price": [1.0, 2.0],
                "quantity": [1.0, 1.0],
                "amount": [1.0, 2.0],
                "side": ["buy", "sell"],
                "seq": [None, None],
            },
            schema_overrides=spec.schema,
        ).pipe(as_schema, spec.schema)
        table = frame.with_columns(
            pl.lit("2026-01-01").str.to_date().alias("day"), pl.lit(7, pl.UInt64).alias("load_id")
        ).to_arrow(compat_level=pl.CompatLevel.oldest())
        env(CLICKHOUSE_CLUSTER=CLUSTER)
        assert cluster.insert_settings("t")["insert_quorum"] == "auto"
        for _ in range(2):
            writer._insert_arrow(client, clickhouse.database, spec, table, 1, [7])
        assert (
            int(client.command(f"SELECT count() FROM `{clickhouse.database}`.trades WHERE load_id = 7")) == 2
        )
        env(CLICKHOUSE_CLUSTER="")
        assert cluster.insert_settings("t") is None
        writer._insert_arrow(client, clickhouse.database, spec, table, 1, [7])  # no token: inserted again
        assert (
            int(client.command(f"SELECT count() FROM `{clickhouse.database}`.trades WHERE load_id = 7")) == 4
        )


@pytest.fixture(scope="module")
def engine_run(tmp_path_factory) -> dict:
    """What tests/support/cluster_engine_run.py saw (in its own process: chDB holds one data directory per
    process)."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.support.cluster_engine_run", str(tmp_path_factory.mktemp("engine"))],
        capture_output=True,
        check=False,
        text=True,
        timeout=300,
        cwd=Path(__file__).parents[3],
        env={**os.environ, "CLICKHOUSE_CLUSTER": ""},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_distributed_layer_runs_on_the_engine(engine_run):
    """tests/support/cluster_engine_run.py: the cluster statements minus what needs Keeper (ON CLUSTER, the
    Replicated prefix) run on chDB with a cluster of one shard on this host: the writer re-writes a slice
    through the Distributed table (the new rows only are read back), the daily bar comes from the view on
    the local table, ``trades_latest`` adds the live trade after the loaded ones; on two shards its join
    of two Distributed tables is refused by ClickHouse's default and runs with the project's settings; the
    monthly compaction on the cluster leaves what the single-node compaction leaves."""
    seen = engine_run
    assert seen["engines"] == {
        "trades": "Distributed",
        "trades_local": "MergeTree",
        "loads": "ReplacingMergeTree",
    }
    assert (seen["first_rows"], seen["second_rows"], seen["read_rows"], seen["read_prices"]) == (
        3,
        2,
        2,
        [101.0],
    )
    assert (
        seen["stored_local"] == 5 and seen["history"] == 2
    )  # the superseded load's rows stay until compaction
    assert (seen["bar_trades"], seen["bar_close"]) == (2, 101.0)
    assert seen["latest"] == {"batch": 2, "live": 1}
    assert "Double-distributed" in seen["pair_default_refused"] and seen["pair_project_settings"] >= 0
    assert seen["pair_block_shards"] == [1, 2] and seen["pair_blocks_agree"]
    # the monthly compaction, on the cluster and on one node, over the same garbage: January keeps the
    # active load's 2 rows (3 superseded), February's orphaned load leaves nothing; the same on both paths
    want = [
        ["trades", "202601", 5, 2, 3, 0, 0],
        ["trades_1d_agg", "202601", 2, 1, 1, 0, 0],
        ["trades", "202602", 2, 0, 0, 2, 0],
        ["trades_1d_agg", "202602", 1, 0, 0, 1, 0],
    ]
    assert seen["cluster_results"] == seen["one_results"] == want
    assert seen["cluster_problems"] == seen["one_problems"] == []
    assert seen["cluster_rows"] == seen["one_rows"] and len(seen["one_rows"]) == 2
    assert seen["cluster_staging_left"] == seen["one_staging_left"] == 0 and seen[
        "compacted_read_prices"
    ] == [101.0]


def _keep_rule(sent: list[str], into: str, after: str, before: str) -> str:
    copy = next(s for s in sent if s.startswith(f"INSERT INTO {into}"))
    return copy[copy.index(after) + len(after) : copy.rindex(before) if before else None]


def test_the_cluster_compaction_keeps_what_one_node_keeps(parser, engine_run):
    """The statements the cluster compaction sent for a real month (the engine run: the same garbage
    compacted on ``desk`` and on one node) parse with ClickHouse's parser; the copy keeps by the same rule
    as the single-node copy (its load states over the shard's local table, the parameters written in),
    selects every column into a staging table made AS the local table, and the swap runs ON CLUSTER."""
    seen = engine_run
    sent = seen["cluster_sent"]
    on_cluster = [s for s in sent if " ON CLUSTER " in s]
    assert len(on_cluster) == 4 * 6  # 4 table-months: 2 CREATE, SYNC, REPLACE, 2 DROP each
    for statement in on_cluster + [s for s in sent if s.startswith("INSERT INTO")]:
        assert parser(statement)
    cluster_keep = _keep_rule(
        sent,
        f"`{DB}`.`_compact_trades_202601_",
        "WHERE _partition_id = '202601' AND (",
        ") SETTINGS parallel_distributed_insert_select = 2",
    )
    one_keep = _keep_rule(
        seen["one_sent"], "`marketdata_one`.`_compact_trades_202601_", "toYYYYMM(ts) = 202601 AND ", ""
    )
    cutoff = re.search(r"g\.load_id < (\d+), 'orphaned'", cluster_keep)[1]
    one_keep = (
        one_keep.replace("`marketdata_one`", f"`{DB}`")
        .replace(f"`{DB}`.`trades`", f"`{DB}`.`trades_local`")
        .replace("{months:Array(UInt32)}", "[202601]")
        .replace("{cutoff:UInt64}", cutoff)
    )
    assert parser(f"SELECT 1 WHERE {cluster_keep}") == parser(f"SELECT 1 WHERE {one_keep}")
    assert (
        "load_id NOT IN (SELECT load_id FROM" in one_keep
        and "state IN ('superseded', 'orphaned')" in one_keep
    )
    copy = parser(next(s for s in sent if s.startswith(f"INSERT INTO `{DB}`.`_compact_trades_202601_")))
    assert f"SELECT *\nFROM {DB}.trades\n" in copy
    create = parser(next(s for s in on_cluster if "_compact_trades_202601_" in s and s.startswith("CREATE")))
    assert create.endswith(f"ON CLUSTER {CLUSTER} AS {DB}.trades_local")
