"""The rest of the crypto data model as Dagster runs it: the history datasets of yesterday for a spot
pair, a Binance USD-M perpetual, an OKX swap and a Deribit perpetual in one run; snapshots; option
chains; factors materialized by declarative automation once their upstream partitions are there.
Replay servers, the real embedded ClickHouse, an ephemeral Dagster instance. The stored rows are
compared with what the venues' clients fetch from the same replay (the clients are held to the
replay's ground truth in their own tests)."""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime, timedelta
from xml.etree import ElementTree

import dagster as dg
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from marketdata_assets.apps.launch import launch
from marketdata_assets.datasets.frames import day_window
from marketdata_assets.datasets.wire import columns_of
from marketdata_assets.defs.crypto.assets import CRYPTO_ASSETS, SNAPSHOT_ASSETS
from marketdata_assets.ingest.factors import FACTORS
from marketdata_assets.replay.crypto import ReplayConfig
from marketdata_assets.sources.config import load_sources_config
from marketdata_assets.sources.venues import venue_client
from marketdata_assets.stores.clickhouse import tables as ct
from marketdata_assets.stores.clickhouse import writer
from tests.support.ticks_common import FAST, crypto_replay
from tests.support.ticks_dagster import (
    UNUSED,
    crypto_day,
    crypto_resources,
    failure,
    log_messages,
    materialize,
    metadata,
    query,
    stock_resources,
    summed,
    ticks_definitions,
    view_rows,
)

YESTERDAY = datetime.now(UTC).date() - timedelta(days=1)
INSTRUMENTS = [
    "BINANCE:BTCUSDT",
    "BINANCE_UM:BTCUSDT",
    "DERIBIT:BTC-PERPETUAL",
    "OKX:BTC-USDT",
    "OKX:BTC-USDT-SWAP",
]
PERPETUALS = ["BINANCE_UM:BTCUSDT", "DERIBIT:BTC-PERPETUAL", "OKX:BTC-USDT-SWAP"]
HISTORY = list(CRYPTO_ASSETS.values())


server, _clean = crypto_replay(ReplayConfig(seed=11, trades_per_day=600))


@pytest.fixture
def instance():
    with dg.DagsterInstance.ephemeral() as inst:
        inst.add_dynamic_partitions("crypto_instruments", INSTRUMENTS)
        yield inst


@pytest.fixture
def resources(server, store):
    """The venues' resources and a `store` (an emptied one of an earlier test's where there is one:
    tests/support/store_pool.py), which the runs' ensure_tables finds made."""
    server.clear_faults()
    server.reset()
    yield {**crypto_resources(server.base_url), "clickhouse": store}
    server.clear_faults()


def fetched(server, key: str, dataset: str) -> pl.DataFrame:
    """What the venue's client returns for yesterday (the same replay)."""
    venue, instrument = key.split(":")

    async def go():
        async with venue_client(venue, server.base_url, retry=FAST, requests_per_minute=60_000) as api:
            return await getattr(api, dataset)(instrument, *day_window(YESTERDAY))

    return asyncio.run(go())


def test_a_day_of_every_history_dataset_then_snapshots_then_factors_by_automation(
    server, resources, instance
):
    clickhouse = resources["clickhouse"]
    # the automation daemon is running before the day's data arrives: its first evaluation sees nothing to do
    definitions = dg.Definitions(
        assets=ticks_definitions(), resources={**stock_resources(UNUSED), **resources}
    )
    factors_only = dg.AssetSelection.assets("crypto_factors")
    before = dg.evaluate_automation_conditions(
        defs=definitions, instance=instance, asset_selection=factors_only
    )
    assert before.total_requested == 0
    result = materialize(instance, resources, HISTORY, **crypto_day(YESTERDAY, INSTRUMENTS))
    assert result.success, failure(result)[0]
    funding = metadata(result, "crypto_funding")
    # perpetuals only: a spot pair has no funding slice (and is no failure)
    assert (
        funding["run_summary"] == "Successful: 3/3" and funding["slices_failed"] == 0
    )  # the run's; its partition's
    assert "data:image/svg+xml;base64," in funding["chart"]
    assert metadata(result, "crypto_trades")["run_summary"] == "Successful: 5/5"
    # Deribit has no mark history
    assert metadata(result, "crypto_mark_bars_1m")["run_summary"] == "Successful: 2/2"
    assert metadata(result, "crypto_liquidations")["run_summary"] == "Successful: 2/2"  # OKX and Deribit
    for dataset, keys in (
        ("funding", PERPETUALS),
        ("open_interest", ["BINANCE_UM:BTCUSDT", "OKX:BTC-USDT-SWAP"]),
        ("liquidations", ["DERIBIT:BTC-PERPETUAL", "OKX:BTC-USDT-SWAP"]),
        ("mark_bars_1m", ["BINANCE_UM:BTCUSDT", "OKX:BTC-USDT-SWAP"]),
        ("index_bars_1m", ["BINANCE_UM:BTCUSDT", "OKX:BTC-USDT-SWAP"]),
    ):
        for key in keys:
            expected = fetched(server, key, dataset)
            # OKX serves the liquidations of the last 24 hours only: late in the UTC day, yesterday's part of
            # that window may hold none (the comparison below still holds; Deribit's are never empty)
            assert expected.height > 0 or (dataset, key) == ("liquidations", "OKX:BTC-USDT-SWAP"), (
                dataset,
                key,
            )
            stored = view_rows(clickhouse, dataset, *key.split(":"), YESTERDAY)
            order = [c for c in ("ts", "liquidation_id") if c in expected.columns]
            assert_frame_equal(stored.sort(order), expected.sort(order), check_exact=False, rel_tol=1e-9)
    checks = result.get_asset_check_evaluations()
    assert checks and all(c.passed for c in checks), [c.check_name for c in checks if not c.passed]
    assert {c.check_name for c in checks} >= {
        "funding_inside_cap",
        "open_interest_not_negative",
        "mark_near_index",
        "no_duplicate_liquidation_ids",
    }

    snapshots = materialize(
        instance,
        resources,
        [a for a, _ in SNAPSHOT_ASSETS.values()],
        tags={
            "dagster/asset_partition_range_start": INSTRUMENTS[0],
            "dagster/asset_partition_range_end": INSTRUMENTS[-1],
        },
    )
    assert snapshots.success, failure(snapshots)[0]
    assert metadata(snapshots, "crypto_tickers")["run_summary"] == "Successful: 5/5"
    # Deribit only
    assert metadata(snapshots, "crypto_open_interest_snapshots")["run_summary"] == "Successful: 1/1"
    assert all(c.passed for c in snapshots.get_asset_check_evaluations())

    # the factors of yesterday's partitions: requested by the automation condition, then computed
    requested = dg.evaluate_automation_conditions(
        defs=definitions, instance=instance, cursor=before.cursor, asset_selection=factors_only
    )
    assert sorted(
        str(k) for k in requested.get_requested_partitions(dg.AssetKey("crypto_factors"))
    ) == sorted({f"{YESTERDAY}|{key.split(':')[0]}" for key in INSTRUMENTS})
    factors = materialize(
        instance, resources, ["crypto_factors"], tags=crypto_day(YESTERDAY, INSTRUMENTS)["tags"]
    )
    assert factors.success, failure(factors)[0]
    meta = metadata(factors, "crypto_factors")
    assert summed(factors, "crypto_factors", "slices") == 5 == meta["run_slices"]  # each venue-day its own
    assert summed(factors, "crypto_factors", "values") == 5 * len(FACTORS) == meta["run_rows"]
    assert all("data:image/svg+xml" in meta[f"chart_{name}"] for name in ("return", "realized_vol"))
    values = {
        (venue, instrument, factor): value
        for venue, instrument, factor, value in query(
            clickhouse,
            "SELECT venue, instrument, factor, value FROM {db}.factors_v "
            "WHERE ts = {day:DateTime64(6, 'UTC')}",
            day=day_window(YESTERDAY)[0],
        )
    }
    assert len(values) == 5 * len(FACTORS)
    assert values[("OKX", "BTC-USDT", "funding_annualized")] is None  # spot: no funding
    assert all(values[(*key.split(":"), "funding_annualized")] is not None for key in PERPETUALS)
    assert all(values[(*key.split(":"), "trade_count")] == 600 for key in INSTRUMENTS)
    again = dg.evaluate_automation_conditions(
        defs=definitions, instance=instance, cursor=requested.cursor, asset_selection=factors_only
    )
    assert again.total_requested == 0  # handled: nothing upstream changed since


def test_a_damaged_funding_page_fails_its_slice_only_and_option_chains_snapshot_every_option(
    server, resources, instance
):
    server.add_fault(kind="missing_field", venue="OKX", endpoint="funding")
    result = materialize(
        instance, resources, ["crypto_funding", "crypto_open_interest"], **crypto_day(YESTERDAY, INSTRUMENTS)
    )
    assert not result.success
    description, meta = failure(result)
    assert "OKX" in description and "BTC-USDT-SWAP" in description and "retry_failed_from_run" in description
    assert meta["crypto_funding_summary"] == "Successful: 2/3"
    # the other dataset of that venue is written
    assert meta["crypto_open_interest_summary"] == "Successful: 2/2"
    server.clear_faults()

    chains = materialize(instance, resources, ["crypto_option_chains"], partition_key="DERIBIT:BTC-OPTIONS")
    assert chains.success, failure(chains)[0]
    chain_meta = metadata(chains, "crypto_option_chains")
    assert chain_meta["summary"] == "Successful: 1/1"
    smile = ElementTree.fromstring(base64.b64decode(chain_meta["smile_BTC-OPTIONS"].split("base64,")[1][:-1]))
    lines = smile.findall("{http://www.w3.org/2000/svg}polyline")
    assert len(lines) == 4 and all(len(line.get("points").split()) >= 10 for line in lines)  # 4 expiries
    (check,) = chains.get_asset_check_evaluations()
    assert check.passed and check.metadata["rows_checked"].value > 20
    rows = query(
        resources["clickhouse"],
        "SELECT count(), uniqExact(option), min(mark_iv), "
        "countIf(option_type = 'put') FROM {db}.option_chain_v "
        "WHERE instrument = 'BTC-OPTIONS'",
    )
    ((n, options, min_iv, puts),) = rows
    assert n == options > 20 and min_iv > 0 and 0 < puts < n


def test_days_past_a_venues_rest_history_are_not_fetched_and_the_run_says_what_it_could_not_do(
    server, resources, instance
):
    old = YESTERDAY - timedelta(days=40)  # past USD-M's and OKX's open interest history, inside funding's
    keys = ["BINANCE_UM:BTCUSDT", "DERIBIT:BTC-PERPETUAL"]  # two venues' instruments
    clickhouse = resources["clickhouse"]
    # another USD-M instrument's open interest of that day is stored (as by a load of when it was in reach)
    with clickhouse.get_client() as client:
        ct.ensure_tables(client, clickhouse.database)
        columns = columns_of("open_interest")
        columns.add(int(day_window(old)[0].timestamp()) * 1_000_000, 10.0, 1.0, "base", 10.0, 500_000.0)
        writer.write_slice(
            client,
            clickhouse.database,
            "open_interest",
            columns.frame("BINANCE_UM", "ETHUSDT"),
            "BINANCE_UM",
            "ETHUSDT",
            old,
            "earlier",
        )
    day = crypto_day(old, keys)
    outcome = launch(
        "crypto old day",
        ticks_definitions(),
        instance=instance,
        resources={**crypto_resources(UNUSED), **stock_resources(UNUSED), **resources},
        selection=[dg.AssetKey("crypto_funding"), dg.AssetKey("crypto_open_interest")],
        tags=day["tags"],
        run_config={"ops": {"crypto_ticks": {"config": day["config"]["crypto_ticks"]}}},
    )
    where = (
        "BINANCE_UM open_interest (REST: 30 days): nowhere in this project (data.binance.vision's um "
        "`metrics` files hold it: not loaded)"
    )
    empty = f"{old}|BINANCE_UM"
    # nothing stored of USD-M's open interest that day: not loadable from its REST API, the partition fails
    # alone (the step's failure names it with where its days come from); the others are materialized
    verdict = (
        f"not loadable: 1 slice(s) past the venue's REST history, not fetched and not stored: "
        f"BINANCE_UM:BTCUSDT {old}. Loads from: {where}"
    )
    assert not outcome.success and outcome.state == "FAILED" and outcome.failed_partitions == [empty]
    said = f"1 partition(s) not stored (the others are): crypto_open_interest {empty}: {verdict}"
    assert outcome.errors == {"step crypto_ticks": said}
    assert outcome.line().startswith("[FAILED] crypto old day: 2 assets, 2 partitions, ")
    materialized = {
        (e.dagster_event.asset_key.to_user_string(), e.dagster_event.partition): {
            k: v.value for k, v in e.dagster_event.event_specific_data.materialization.metadata.items()
        }
        for e in instance.all_logs(outcome.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
    }
    assert set(materialized) == {
        ("crypto_funding", empty),
        ("crypto_funding", f"{old}|DERIBIT"),
        ("crypto_open_interest", f"{old}|DERIBIT"),
    }
    assert not list(instance.fetch_observations(dg.AssetKey("crypto_open_interest"), limit=5).records)
    # Deribit serves no open interest history: no slice, nothing was to be stored (materialized, 0 rows)
    deribit = materialized[("crypto_open_interest", f"{old}|DERIBIT")]
    assert (
        deribit["summary"] == "Successful: 0/0" and deribit["rows"] == 0 and deribit["beyond_rest_reach"] == 0
    )
    for partition in (empty, f"{old}|DERIBIT"):
        funding = materialized[("crypto_funding", partition)]
        assert funding["beyond_rest_reach"] == 0 and funding["summary"] == "Successful: 1/1"
        assert funding["run_summary"] == "Successful: 2/2" and funding["venues"] == partition.split("|")[1]
        assert "partial" not in funding and "older_days_from" not in funding and funding["verdict"] == "ok"
    assert not server.requests("BINANCE_UM", endpoint="open_interest")
    warned = [m for m in log_messages(instance, outcome) if "older than the venue's REST history" in m]
    assert warned == [
        (
            f"crypto_open_interest: 1 slice(s) older than the venue's REST history reaches, not fetched "
            f"(0 stored from elsewhere): ['BINANCE_UM:BTCUSDT {old}']; older days: {where}"
        )
    ]
    # its step failed, Dagster skips the asset's checks in that run; a checks-only run: the WARN check
    # names the day x venue's configured instruments past the history that nothing stored covers
    assert not outcome.warnings
    checks = materialize(
        instance, resources, dg.AssetSelection.checks_for_assets("crypto_open_interest"), tags=day["tags"]
    )
    assert checks.success and not checks.get_asset_materialization_events()
    (check,) = [
        c
        for c in checks.get_asset_check_evaluations()
        if c.check_name == "within_rest_reach" and c.partition == empty
    ]
    configured = load_sources_config().crypto_instruments_by_venue()["BINANCE_UM"]
    assert "ETHUSDT" in configured and not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert check.description == (
        f"{old}|BINANCE_UM: 1 slice(s) past the venue's REST history, not fetched and not stored: "
        f"BINANCE_UM:BTCUSDT {old}. Older days: {where}"
    )
    assert check.metadata["beyond_rest_reach"].value == len(configured)
    assert check.metadata["not_stored"].value == len(configured) - 1  # ETHUSDT's is stored
