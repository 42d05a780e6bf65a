"""Each partition of a crypto run carries its own truth in Dagster's instance: a run over one day x the
4 venues where one venue stores nothing fails that partition alone (the run's failure names it with its
verdict), and every other partition's materialization holds its own rows, instruments and verdict. Replay
servers, the real embedded ClickHouse, an ephemeral Dagster instance."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
from dagster._core.storage.partition_status_cache import get_and_update_asset_status_cache_value

from marketdata_assets.apps.launch import launch
from marketdata_assets.datasets.frames import spec_for
from marketdata_assets.defs.crypto.partitions import crypto_partitions
from marketdata_assets.replay.crypto import ReplayConfig
from marketdata_assets.stores.clickhouse import tables as ct
from tests.support.ticks_common import crypto_replay
from tests.support.ticks_dagster import (
    UNUSED,
    crypto_day,
    crypto_resources,
    query,
    stock_resources,
    ticks_definitions,
)

YESTERDAY = datetime.now(UTC).date() - timedelta(days=1)
INSTRUMENTS = [
    "BINANCE:BTCUSDT",
    "BINANCE_UM:BTCUSDT",
    "DERIBIT:BTC-PERPETUAL",
    "OKX:BTC-USDT",
    "OKX:BTC-USDT-SWAP",
]
TRADES = dg.AssetKey("crypto_trades")

server, _clean = crypto_replay(ReplayConfig(seed=5, trades_per_day=300))


@pytest.fixture
def instance():
    with dg.DagsterInstance.ephemeral() as inst:
        yield inst


def okx_damaged_day(server, clickhouse, instance, max_failed: int):
    """`launch`'s outcome of yesterday's crypto trades over the 5 instruments, every OKX trades page
    damaged (a field missing), one attempt a slice."""
    server.clear_faults()
    server.reset()
    server.add_fault(kind="missing_field", venue="OKX", endpoint="trades")
    day = crypto_day(YESTERDAY, INSTRUMENTS)
    config = {**day["config"]["crypto_ticks"], "max_failed": max_failed, "attempts": 1}
    try:
        return launch(
            "crypto day",
            ticks_definitions(),
            instance=instance,
            resources={
                **crypto_resources(UNUSED),
                **stock_resources(UNUSED),
                **crypto_resources(server.base_url),
                "clickhouse": clickhouse,
            },
            selection=[TRADES],
            tags=day["tags"],
            run_config={"ops": {"crypto_ticks": {"config": config}}},
        )
    finally:
        server.clear_faults()


def test_a_venue_that_stores_nothing_fails_its_partition_alone_and_the_others_carry_their_own_rows(
    server, clickhouse, instance
):
    outcome = okx_damaged_day(server, clickhouse, instance, max_failed=5)
    okx = f"{YESTERDAY}|OKX"

    # Dagster's own view: OKX's partition failed, the three others are materialized; the partition status
    # the UI's partition bar reads says the same
    stored = {f"{YESTERDAY}|{venue}" for venue in ("BINANCE", "BINANCE_UM", "DERIBIT")}
    assert (
        not outcome.success and instance.get_run_by_id(outcome.run_id).status == dg.DagsterRunStatus.FAILURE
    )
    assert instance.get_materialized_partitions(TRADES) == stored
    status = get_and_update_asset_status_cache_value(instance, TRADES, crypto_partitions)
    assert (
        set(status.deserialize_materialized_partition_subsets(crypto_partitions).get_partition_keys())
        == stored
    )
    assert set(status.deserialize_failed_partition_subsets(crypto_partitions).get_partition_keys()) == {okx}
    # the store (what `marketdata status` reads) agrees: each venue's rows of the day, none of OKX's
    loads = dict(
        query(
            clickhouse,
            f"SELECT venue, sum(rows) FROM {{db}}.{ct.LOADS} FINAL WHERE day = {{day:Date}} "
            "AND dataset = {code:String} GROUP BY venue",
            day=YESTERDAY,
            code=spec_for("trades").code,
        )
    )
    assert loads == {"BINANCE": 300, "BINANCE_UM": 300, "DERIBIT": 300}
    records = instance.fetch_materializations(TRADES, limit=10).records
    own = {
        r.partition_key: {k: v.value for k, v in r.asset_materialization.metadata.items()} for r in records
    }
    assert set(own) == stored
    for partition, venue in zip(sorted(stored), ("BINANCE", "BINANCE_UM", "DERIBIT")):
        meta = own[partition]
        assert meta["summary"] == "Successful: 1/1" and meta["venues"] == venue and meta["instruments"] == 1
        assert meta["rows"] == meta["rows_stored"] == 300 and meta["verdict"] == "ok"
        assert meta["run_rows"] == 900 and meta["run_partitions"] == 4
        assert meta["slices_failed"] == 0 and "OKX" not in meta["slices"]
    # why OKX failed: the step's failure names it with its verdict, and so does the run's warning
    (error,) = outcome.errors.values()
    assert error.startswith(
        f"1 partition(s) not stored (the others are): crypto_trades {okx}: failed: 2 slice(s) failed: "
    )
    warned = [e.user_message for e in instance.all_logs(outcome.run_id) if "nothing stored" in e.user_message]
    assert len(warned) == 1 and warned[0].startswith(
        f"crypto_trades {okx}: failed, nothing stored (2 slice(s) failed: "
    )
    assert "marketdata/verdict" not in instance.get_run_by_id(outcome.run_id).tags  # its status says it

    # the console line agrees: the stored partitions' own rows summed, the failed one named
    assert outcome.rows == 900 and outcome.state == "FAILED" and outcome.failed_partitions == [okx]
    assert outcome.line().startswith("[FAILED] crypto day: 1 asset, 4 partitions, 900 rows")
    assert f"; failed partitions: {okx}" in outcome.line()


def test_a_run_failed_for_too_many_slices_counts_the_rows_it_stored(server, clickhouse, instance):
    """More failed slices than `max_failed`: the step fails before it materializes anything, yet the slices
    that loaded are stored; the console line counts their rows (it said 0 rows while 2,400 of 2,560 slices
    were stored)."""
    outcome = okx_damaged_day(server, clickhouse, instance, max_failed=0)
    assert outcome.state == "FAILED" and not instance.get_materialized_partitions(TRADES)
    assert outcome.rows == 900, outcome.line()  # BINANCE, BINANCE_UM and DERIBIT's 300 each, stored
    (error,) = outcome.errors.values()
    assert "of 2 failed slices)" in error, error  # the commonest cause, and how many it stands for
