"""Each partition of a crypto run carries its own truth in Dagster's instance: a run over one day x the
4 venues where one venue stores nothing leaves that partition unmaterialized (an observation says why),
and every other partition's materialization holds its own rows, instruments and outcome. Replay
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


def test_a_venue_that_stores_nothing_leaves_its_partition_unmaterialized_and_the_others_carry_their_own_rows(
    server, clickhouse, instance
):
    server.clear_faults()
    server.reset()
    server.add_fault(kind="missing_field", venue="OKX", endpoint="trades")  # every OKX trades page damaged
    day = crypto_day(YESTERDAY, INSTRUMENTS)
    config = {**day["config"]["crypto_ticks"], "max_failed": 5, "attempts": 1}
    outcome = launch(
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
    server.clear_faults()
    assert outcome.success, outcome.errors

    # Dagster's own view: OKX's partition is not materialized, the three others are; the partition status the
    # UI's partition bar reads says the same, and nothing failed (the run did not)
    stored = {f"{YESTERDAY}|{venue}" for venue in ("BINANCE", "BINANCE_UM", "DERIBIT")}
    assert instance.get_materialized_partitions(TRADES) == stored
    status = get_and_update_asset_status_cache_value(instance, TRADES, crypto_partitions)
    assert (
        set(status.deserialize_materialized_partition_subsets(crypto_partitions).get_partition_keys())
        == stored
    )
    assert not list(status.deserialize_failed_partition_subsets(crypto_partitions).get_partition_keys())
    okx = f"{YESTERDAY}|OKX"
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
    assert instance.get_latest_materialization_event(TRADES) is not None
    records = instance.fetch_materializations(TRADES, limit=10).records
    own = {
        r.partition_key: {k: v.value for k, v in r.asset_materialization.metadata.items()} for r in records
    }
    assert set(own) == stored
    for partition, venue in zip(sorted(stored), ("BINANCE", "BINANCE_UM", "DERIBIT")):
        meta = own[partition]
        assert meta["summary"] == "Successful: 1/1" and meta["venues"] == venue and meta["instruments"] == 1
        assert meta["rows"] == 300 and meta["run_rows"] == 900 and meta["run_partitions"] == 4
        assert meta["slices_failed"] == 0 and "OKX" not in meta["slices"]
    # why OKX is missing: the observation of its partition, and the run's warning
    (observation,) = [r.asset_observation for r in instance.fetch_observations(TRADES, limit=10).records]
    assert observation.partition == okx
    reason = observation.metadata["not_stored"].value
    assert (
        reason.startswith("2 slice(s) failed: ")
        and observation.metadata["summary"].value == "Successful: 0/2"
    )
    warned = [e.user_message for e in instance.all_logs(outcome.run_id) if "nothing stored" in e.user_message]
    assert warned == [f"crypto_trades {okx}: nothing stored ({reason}): the partition is not materialized"]

    # the console line agrees: the partitions' own rows summed (equal counts are not taken for one run figure)
    assert (
        outcome.rows == 900 and outcome.state == "partial" and outcome.not_stored == [f"crypto_trades[{okx}]"]
    )
    assert f"; not stored: crypto_trades[{okx}]" in outcome.line()
    assert outcome.line().startswith("[partial] crypto day: 1 asset, 4 partitions, 900 rows")
