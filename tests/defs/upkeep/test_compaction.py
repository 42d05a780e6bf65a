"""tick_compaction as Dagster runs it (materialized in process on the real embedded ClickHouse): what
it reclaims and reports, reads through the range views identical before, during and after, a
second run that finds nothing and rewrites nothing, and the weekly schedule that runs it."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import dagster as dg
import pytest

from marketdata_assets.defs.upkeep.maintenance import (
    tick_compaction,
    tick_compaction_job,
    tick_compaction_weekly,
)
from marketdata_assets.defs.upkeep.store import tick_store
from marketdata_assets.orchestration import pools
from marketdata_assets.resources import ClickHouseResource
from marketdata_assets.stores.clickhouse import tables as ct
from marketdata_assets.stores.clickhouse import writer as w
from tests.stores.clickhouse.test_clickhouse_tables import insert_orphan, load_id_aged, parts, trades
from tests.support.ticks_common import reads_around
from tests.support.ticks_dagster import metadata

DAY = date(2024, 3, 31)
APRIL = date(2024, 4, 1)
SLICES = [("BTCUSDT", DAY), ("ETHUSDT", DAY), ("BTCUSDT", APRIL)]
LOADS = (12_000, 8_000, 10_000)  # rows of a slice's 1st, 2nd, 3rd load
WINDOW = (DAY - timedelta(days=3), APRIL + timedelta(days=1))


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        yield inst


def compact(instance, clickhouse, **config) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [tick_store, tick_compaction],
        selection=[tick_compaction],
        instance=instance,
        resources={"clickhouse": clickhouse},
        raise_on_error=False,
        run_config={"ops": {"tick_compaction": {"config": config}}},
    )


def reads(client, db) -> dict:
    """What readers see: every instrument's trades through trades_range, and the daily bars."""
    out = {
        i: ct.read_range(client, db, "trades", "BINANCE", i, *WINDOW)
        for i in ("BTCUSDT", "ETHUSDT", "SOLUSDT")
    }
    out["bars"] = ct.daily_bars(client, db, "BINANCE", "BTCUSDT", *WINDOW)
    return out


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(a[k].equals(b[k]) for k in a)


def test_tick_compaction_reclaims_superseded_and_orphaned_rows_and_reads_stay_exact(clickhouse, instance):
    db = clickhouse.database
    with clickhouse.get_client() as client:
        ct.ensure_tables(client, db)
        superseded = 0
        for seed, n in enumerate(LOADS):  # each slice loaded three times
            for instrument, day in SLICES:
                w.write_slice(
                    client,
                    db,
                    "trades",
                    trades(n, day, instrument, seed=seed),
                    "BINANCE",
                    instrument,
                    day,
                    f"r{seed}",
                )
                superseded += n if seed < 2 else 0
        killed = insert_orphan(
            client,
            db,
            trades(2_000, DAY - timedelta(days=1), "SOLUSDT", seed=7),
            DAY - timedelta(days=1),
            load_id_aged(client, timedelta(days=2)),
        )
        in_flight = insert_orphan(
            client,
            db,
            trades(1_500, DAY - timedelta(days=2), "SOLUSDT", seed=8),
            DAY - timedelta(days=2),
            load_id_aged(client, timedelta(minutes=5)),
        )
        assert ct.garbage_rows(client, db, "trades") == superseded + killed + in_flight
        before = reads(client, db)
    clickhouse.close()

    # a reader on its own connection reads in a loop for the whole run
    reader = ClickHouseResource(dsn=clickhouse.dsn, database=db, lock_timeout_s=5)
    try:
        result, during, wrong = reads_around(
            reader.get_client,
            lambda client: same(reads(client, db), before),
            lambda: compact(instance, clickhouse),
        )
    finally:
        reader.close()
    assert result.success
    assert during >= 1 and wrong == []

    meta = metadata(result, "tick_compaction")
    assert (
        meta["rows_reclaimed"] == superseded + killed + 7
    )  # + the daily aggregate: 4 + 1 rows (March), 2 (April)
    rows = {(r["table"], r["month"]): r for r in meta["compactions_json"]}
    assert set(rows) == {
        ("trades", "2024-03"),
        ("trades_1d_agg", "2024-03"),
        ("trades", "2024-04"),
        ("trades_1d_agg", "2024-04"),
    }
    march = rows["trades", "2024-03"]
    assert (march["rows_before"], march["rows_after"]) == (
        2 * sum(LOADS) + killed + in_flight,
        2 * LOADS[-1] + in_flight,
    )
    assert march["rows_reclaimed"] == march["superseded"] + march["orphaned"] == 2 * 20_000 + killed
    assert (march["orphaned"], march["unflipped_kept"]) == (killed, in_flight)
    assert rows["trades", "2024-04"]["rows_reclaimed"] == 20_000
    assert sum(r["rows_reclaimed"] for r in rows.values()) == meta["rows_reclaimed"]
    assert all(r["seconds"] >= 0 for r in rows.values())
    assert meta["months_compacted"] == 2 and meta["unflipped_rows_kept"] == in_flight + 1
    assert "| trades | 2024-03 |" in meta["compactions"] and meta["skipped"] == "none"
    with clickhouse.get_client() as client:
        assert same(reads(client, db), before)
        assert ct.garbage_rows(client, db, "trades") == in_flight  # a load that may still be writing
        unchanged = parts(client, db)
    clickhouse.close()

    # the next run finds nothing to reclaim and rewrites nothing
    again = compact(instance, clickhouse)
    meta = metadata(again, "tick_compaction")
    assert (meta["rows_reclaimed"], meta["months_compacted"], meta["compactions_json"]) == (0, 0, [])
    assert meta["table_months_checked"] == 4
    with clickhouse.get_client() as client:
        assert parts(client, db) == unchanged
    clickhouse.close()

    # with no grace the unflipped load counts as an orphan; `months` limits the run
    last = compact(instance, clickhouse, orphan_grace_hours=0, months=["2024-03"])
    meta = metadata(last, "tick_compaction")
    assert meta["rows_reclaimed"] == in_flight + 1 and meta["table_months_checked"] == 2
    with clickhouse.get_client() as client:
        assert ct.garbage_rows(client, db, "trades") == 0
        assert same(reads(client, db), before)


def test_a_month_that_cannot_be_compacted_fails_the_run_and_the_others_are_compacted(clickhouse, instance):
    db = clickhouse.database
    with clickhouse.get_client() as client:
        ct.ensure_tables(client, db)
        for seed in range(2):
            for instrument, day in SLICES:
                w.write_slice(
                    client,
                    db,
                    "trades",
                    trades(100, day, instrument, seed=seed),
                    "BINANCE",
                    instrument,
                    day,
                    "r",
                )
        # a pointer whose row count does not match the rows stored (never written by the writer)
        w._flip(
            client,
            db,
            "trades",
            "BINANCE",
            [("ETHUSDT", DAY, w.new_load_ids(client, db, "trades", "BINANCE", [("ETHUSDT", DAY)])[0], 5)],
            "broken",
        )
    clickhouse.close()
    result = compact(instance, clickhouse)
    assert not result.success
    (event,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    data = event.step_failure_data.user_failure_data
    assert "1 month(s) not compacted" in data.description and "trades 2024-03" in data.description
    assert data.metadata["rows_reclaimed"].value == 101  # April: 100 trades + 1 aggregate row
    with clickhouse.get_client() as client:
        assert client.command(f"SELECT count() FROM `{db}`.trades WHERE toYYYYMM(ts) = 202403") == 400


def test_the_weekly_schedule_runs_the_compaction_in_the_clickhouse_pool(instance):
    assert tick_compaction_weekly.job_name == "tick_compaction_job"
    assert (tick_compaction_weekly.cron_schedule, tick_compaction_weekly.execution_timezone) == (
        "0 5 * * 0",
        "UTC",
    )
    assert tick_compaction_weekly.default_status == dg.DefaultScheduleStatus.RUNNING
    sunday = datetime(2025, 1, 19, 5, tzinfo=UTC)
    with dg.build_schedule_context(instance=instance, scheduled_execution_time=sunday) as context:
        (request,) = tick_compaction_weekly.evaluate_tick(context).run_requests
    assert request.run_key == "tick-compaction:2025-01-19" and request.partition_key is None
    assert tick_compaction.op.pool == pools.CLICKHOUSE
    # loaded with the whole code location: the job selects exactly the asset
    from marketdata_assets.definitions import defs

    repo = defs().get_repository_def()
    assert repo.get_schedule_def("tick_compaction_weekly").job_name == tick_compaction_job.name
    job = repo.get_job("tick_compaction_job")
    assert job.asset_layer.selected_asset_keys == {dg.AssetKey("tick_compaction")}
