"""The ticks checks record Passed/Failed per partition, range runs included: crypto_trades and three
of its checks (trade-id continuity: test_continuity.py) on the crypto replay, the real embedded ClickHouse, an
ephemeral Dagster instance."""

from __future__ import annotations

from datetime import timedelta
from itertools import product

import dagster as dg
import pytest
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from marketdata_assets.datasets.frames import spec_for
from marketdata_assets.defs._common.partitions import crypto_key
from marketdata_assets.replay.crypto import CryptoReplayServer, ReplayConfig
from tests.support.ticks_dagster import DAY, crypto_resources, day_range, materialize, query

INSTRUMENTS = ["BINANCE:BTCUSDT", "BINANCE:ETHUSDT", "OKX:BTC-USDT"]
CHECKS = ["no_duplicate_trade_ids", "prices_positive", "timestamps_inside_day"]
TRADES_KEY = dg.AssetKey("crypto_trades")
PER_DAY = 200

pytestmark = pytest.mark.usefixtures("okx_trades_of_any_day")  # OKX trades of 2025-01-15


@pytest.fixture(scope="module")
def crypto_server():
    with CryptoReplayServer(ReplayConfig(seed=11, trades_per_day=PER_DAY)) as server:
        yield server


@pytest.fixture
def crypto(crypto_server, store):
    """The venues' resources and a `store` (an emptied one of an earlier test's where there is one:
    tests/support/store_pool.py), which the runs' ensure_tables finds made."""
    crypto_server.clear_faults()
    crypto_server.reset()
    return {**crypto_resources(crypto_server.base_url), "clickhouse": store}


@pytest.fixture
def instance():
    with dg.DagsterInstance.ephemeral() as inst:
        yield inst


def evaluations(result: dg.ExecuteInProcessResult) -> dict[tuple[str, str | None], dg.AssetCheckEvaluation]:
    found = [
        e
        for e in result.get_asset_check_evaluations()
        if e.asset_key == TRADES_KEY and e.check_name in CHECKS
    ]
    by_key = {(e.check_name, e.partition): e for e in found}
    assert len(by_key) == len(found), "two evaluations of one check on one partition"
    return by_key


def stored_status(instance, keys) -> dict[tuple[str, str | None], tuple[str, bool]]:
    """(status, current) of each check partition as the UI reads it: the latest execution and
    whether it checked the partition's latest materialization."""
    infos = instance.event_log_storage.get_asset_check_partition_info(
        [dg.AssetCheckKey(TRADES_KEY, name) for name in CHECKS], partition_keys=keys
    )
    return {
        (i.check_key.name, i.partition_key): (i.latest_execution_status.value, i.is_current) for i in infos
    }


def no_warnings(instance, result) -> None:
    logs = instance.all_logs(result.run_id)
    assert not [e.user_message for e in logs if e.level >= 30], "warnings in the run"  # logging.WARNING
    assert not any("implicit Nothing" in e.user_message for e in logs)


def test_a_range_run_records_each_check_on_each_partition(crypto, instance):
    day2 = DAY + timedelta(days=1)
    keys = [crypto_key(day, "BINANCE") for day in (DAY, day2)]  # two instruments in each
    tags = {"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]}
    result = materialize(
        instance,
        crypto,
        ["crypto_trades"],
        tags=tags,
        config={"crypto_ticks": {"instruments": INSTRUMENTS[:2]}},
    )
    assert result.success
    checks = evaluations(result)
    assert set(checks) == set(product(CHECKS, keys))  # none without a partition
    assert all(e.passed and e.metadata["rows_checked"].value == 2 * PER_DAY for e in checks.values())
    assert checks[("prices_positive", keys[1])].metadata["checked"].value == keys[1]
    assert stored_status(instance, None) == {k: ("SUCCEEDED", True) for k in product(CHECKS, keys)}
    history = instance.event_log_storage.get_asset_check_execution_history(
        dg.AssetCheckKey(TRADES_KEY, "prices_positive"), limit=100
    )
    assert sorted(r.partition for r in history) == sorted(keys)
    assert {r.status for r in history} == {AssetCheckExecutionRecordStatus.SUCCEEDED}  # nothing left PLANNED
    no_warnings(instance, result)


def test_a_corrupt_partition_fails_alone_in_a_checks_only_range_run(crypto, instance):
    clickhouse = crypto["clickhouse"]
    tags = day_range(DAY, "BINANCE", "OKX")
    keys = [crypto_key(DAY, venue) for venue in ("BINANCE", "BINANCE_UM", "DERIBIT", "OKX")]
    assert materialize(
        instance, crypto, ["crypto_trades"], tags=tags, config={"crypto_ticks": {"instruments": INSTRUMENTS}}
    ).success
    # a copy of one stored trade of ETHUSDT's active load, negative price: a duplicate id and a bad price
    ((load_id,),) = query(
        clickhouse,
        "SELECT load_id FROM {db}.active_loads WHERE dataset = {code:String} "
        "AND instrument = 'ETHUSDT' AND day = {day:Date}",
        code=spec_for("trades").code,
        day=DAY,
    )
    query(
        clickhouse,
        "INSERT INTO {db}.trades SELECT * REPLACE (-price AS price) FROM {db}.trades "
        "WHERE load_id = {load_id:UInt64} LIMIT 1",
        load_id=load_id,
    )

    result = materialize(instance, crypto, dg.AssetSelection.checks_for_assets("crypto_trades"), tags=tags)
    assert result.success and not result.get_asset_materialization_events()  # only the checks ran
    checks = evaluations(result)
    assert set(checks) == set(product(CHECKS, keys))
    bad = crypto_key(DAY, "BINANCE")  # ETHUSDT's, beside a clean BTCUSDT
    failed = {k for k, e in checks.items() if not e.passed}
    assert failed == {("no_duplicate_trade_ids", bad), ("prices_positive", bad)}
    duplicates, prices = checks[("no_duplicate_trade_ids", bad)], checks[("prices_positive", bad)]
    assert duplicates.metadata["violations"].value == 1 and prices.metadata["violations"].value == 1
    assert prices.metadata["rows_checked"].value == 2 * PER_DAY + 1
    assert "| BINANCE:BTCUSDT | passed | 0 |" in prices.metadata["by_instrument"].value
    assert "| BINANCE | ETHUSDT | 2025-01-15 |" in duplicates.metadata["sample"].value
    assert "load_id" not in prices.metadata["sample"].value and "ETHUSDT" in prices.metadata["sample"].value
    assert all(
        "sample" not in e.metadata and e.metadata["violations"].value == 0
        for k, e in checks.items()
        if k not in failed
    )
    assert stored_status(instance, keys) == {
        k: ("FAILED" if k in failed else "SUCCEEDED", True) for k in product(CHECKS, keys)
    }
    no_warnings(instance, result)


def test_a_single_partition_run_records_that_partition_once(crypto, instance):
    key = crypto_key(DAY, "OKX")
    result = materialize(
        instance,
        crypto,
        ["crypto_trades"],
        partition_key=key,
        config={"crypto_ticks": {"instruments": ["OKX:BTC-USDT"]}},
    )
    assert result.success
    checks = evaluations(result)
    assert set(checks) == {(name, key) for name in CHECKS} and all(e.passed for e in checks.values())
    assert len(result.get_asset_materialization_events()) == 1
    target = checks[("prices_positive", key)].target_materialization_data
    assert target is not None and target.run_id == result.run_id
    assert target.storage_id == instance.fetch_materializations(TRADES_KEY, limit=1).records[0].storage_id
    assert stored_status(instance, [key]) == {(name, key): ("SUCCEEDED", True) for name in CHECKS}
    no_warnings(instance, result)
