"""The whole code location loads (every domain folder, the resources, jobs, schedules, sensors), and
every asset has the resources it asks for, a partitioning where it ingests, and its checks."""

from __future__ import annotations

import json
import subprocess
import sys

import dagster as dg

# ingest assets -> the checks each must have (a check the refactor drops would go unnoticed otherwise)
TICKS_CHECKS = {
    "crypto_trades": {
        "no_duplicate_trade_ids",
        "timestamps_inside_day",
        "prices_positive",
        "within_rest_reach",
    },
    "crypto_bars_1m": {
        "bar_high_low_consistent",
        "timestamps_inside_day",
        "prices_positive",
        "bars_on_the_1m_grid",
        "no_unit_step",
    },
    "binance_dump_trades": {"no_duplicate_trade_ids", "timestamps_inside_day", "prices_positive"},
    "live_trades": {
        "no_duplicate_trade_ids",
        "timestamps_inside_day",
        "prices_positive",
        "trade_ids_continuous",
    },
    "live_agg_trades": {
        "no_duplicate_trade_ids",
        "timestamps_inside_day",
        "prices_positive",
        "trade_ids_continuous",
    },
    "live_bars_1m": {
        "bar_high_low_consistent",
        "timestamps_inside_day",
        "prices_positive",
        "bars_on_the_1m_grid",
        "no_unit_step",
    },
    "live_tickers": {"ticker_not_crossed", "timestamps_inside_day"},
    "live_liquidations": {"no_duplicate_liquidation_ids", "timestamps_inside_day"},
    "live_open_interest": {"open_interest_not_negative", "timestamps_inside_day"},
    "live_mark_funding": {"timestamps_inside_day"},
    "live_books": {"prices_positive", "book_not_crossed", "timestamps_inside_day"},
    "binance_dump_bars_1m": {
        "bar_high_low_consistent",
        "timestamps_inside_day",
        "prices_positive",
        "bars_on_the_1m_grid",
        "no_unit_step",
    },
    "crypto_book_snapshots": {"prices_positive"},
    "crypto_tickers": {"ticker_not_crossed"},
    "crypto_funding": {"funding_inside_cap", "timestamps_inside_day", "within_rest_reach"},
    "crypto_open_interest": {"open_interest_not_negative", "timestamps_inside_day", "within_rest_reach"},
    "crypto_open_interest_snapshots": {"open_interest_not_negative"},
    "crypto_liquidations": {"no_duplicate_liquidation_ids", "timestamps_inside_day"},
    "crypto_mark_bars_1m": {"bar_high_low_consistent", "mark_near_index", "timestamps_inside_day"},
    "crypto_index_bars_1m": {"bar_high_low_consistent", "timestamps_inside_day"},
    "crypto_option_chains": {"options_iv_positive_and_names_parse"},
    "a_share_bars_1m": {
        "bar_high_low_consistent",
        "timestamps_inside_day",
        "bars_on_the_1m_grid",
        "no_unit_step",
        "minutes_complete",
    },
    "a_share_daily_bars": {"bar_high_low_consistent", "timestamps_inside_day", "no_unit_step"},
    "yahoo_bars_1m": {
        "bar_high_low_consistent",
        "timestamps_inside_day",
        "bars_on_the_1m_grid",
        "no_unit_step",
        "minutes_complete",
    },
}


def test_the_code_location_loads_and_every_asset_has_its_resources_partitions_and_checks():
    from marketdata_assets.definitions import defs

    definitions = defs()
    dg.Definitions.validate_loadable(definitions)
    repo = definitions.get_repository_def()
    resources = set(repo.get_top_level_resources())
    assert {
        "clickhouse",
        "tushare",
        "yahoo",
        "binance",
        "binance_um",
        "okx",
        "deribit",
        "timescale",
        "alpha_store",
    } <= resources
    graph = repo.asset_graph
    groups: dict[str, set[str]] = {}
    for key in graph.get_all_asset_keys():
        assets_def = graph.get(key).assets_def
        missing = assets_def.required_resource_keys - resources - {"io_manager"}  # the default one
        assert not missing, (
            f"{key.to_user_string()} needs resources {sorted(missing)} the location does not have"
        )
        groups.setdefault(graph.get(key).group_name, set()).add(key.to_user_string())
    # the groups are the domains (defs/<group>/)
    assert set(groups) == {"alphas", "crypto", "equities", "archives", "exports", "live", "upkeep"}
    assert groups["live"] == {
        "live_trades",
        "live_trade_id_refill",
        "live_tickers",
        "live_bars_1m",
        "live_liquidations",
        "live_open_interest",
        "live_mark_funding",
        "live_books",
        "live_agg_trades",
    }
    assert groups["upkeep"] == {"tick_store", "tick_compaction", "ticks_coverage"}
    assert groups["exports"] == {"parquet_export"}
    assert groups["crypto"] == {
        "crypto_factors",
        "trade_id_refill",
        "instrument_master",
        *(name for name in TICKS_CHECKS if name.startswith("crypto_")),
    }
    assert {
        "binance_dump_trades",
        "binance_dump_bars_1m",
        "binance_archive_recheck",
        "binance_archive_reconcile",
    } <= groups["archives"]
    assert {
        "a_share_bars_1m",
        "a_share_daily_bars",
        "yahoo_bars_1m",
        "bar_store",
        "stock_1min_qfq",
        "stock_monthly_kline",
    } <= groups["equities"]
    for name in TICKS_CHECKS:
        assert graph.get(dg.AssetKey(name)).partitions_def is not None, f"{name} is not partitioned"
    checks: dict[str, set[str]] = {}
    for check in graph.asset_check_keys:
        checks.setdefault(check.asset_key.to_user_string(), set()).add(check.name)
    for name, expected in TICKS_CHECKS.items():
        assert expected <= checks.get(name, set()), (
            f"{name} lacks checks {sorted(expected - checks.get(name, set()))}"
        )
    assert {job.name for job in repo.get_all_jobs()} >= {
        "crypto_ticks_job",
        "binance_dumps_job",
        "a_share_bars_job",
        "tick_compaction_job",
        "live_trades_job",
        "live_hours_job",
    }
    assert {s.name for s in repo.sensor_defs} >= {
        "binance_dump_files",
        "crypto_instruments_from_config",
        "live_landing_hours",
    }
    # declarative automation (factors, coverage pictures) runs by default, through one sensor
    automation = [s for s in repo.sensor_defs if isinstance(s, dg.AutomationConditionSensorDefinition)]
    assert [(s.name, s.default_status) for s in automation] == [
        ("automation_conditions", dg.DefaultSensorStatus.RUNNING)
    ]
    targeted = automation[0].asset_selection.resolve(graph)
    assert {
        dg.AssetKey("crypto_factors"),
        dg.AssetKey("ticks_coverage"),
        dg.AssetKey("alphas_coverage"),
    } <= targeted


def test_every_asset_a_schedule_keeps_fresh_has_a_freshness_deadline_after_its_run():
    """The assets loaded on a cadence carry a cron freshness policy whose deadline follows their
    schedule's run, and the instance evaluates freshness (a late or failed partition shows as such)."""
    from pathlib import Path

    import yaml

    from marketdata_assets.core.settings import INSTANCE_YAML
    from marketdata_assets.definitions import defs

    graph = defs().resolve_asset_graph()
    schedules = {s.name: s for s in defs().schedules}
    expected = {
        "crypto_trades": "crypto_ticks_daily",
        "crypto_bars_1m": "crypto_ticks_daily",
        "a_share_bars_1m": "a_share_after_close",
        "a_share_daily_bars": "a_share_after_close",
        "yahoo_bars_1m": "yahoo_after_close",
        "alpha_files": "alpha_fetch_daily",
        "stock_monthly_kline": "monthly_kline_after_close",
    }
    for asset, schedule in expected.items():
        policy = graph.get(dg.AssetKey(asset)).freshness_policy
        assert isinstance(policy, dg.FreshnessPolicy), asset
        run_at = schedules[schedule].cron_schedule.split()
        deadline = policy.deadline_cron.split()
        assert policy.timezone == schedules[schedule].execution_timezone, asset
        # the deadline is later in the day than the run (both crons fire at a fixed time of day)
        assert (int(deadline[1]), int(deadline[0])) > (int(run_at[1]), int(run_at[0])), (
            asset,
            deadline,
            run_at,
        )
    assert yaml.safe_load(Path(INSTANCE_YAML).read_text())["freshness"] == {"enabled": True}


def test_landing_sensors_look_as_often_as_configured(monkeypatch):
    import importlib

    import pytest

    from marketdata_assets.core import settings
    from marketdata_assets.defs.equities import sensors

    monkeypatch.setenv("LANDING_SENSOR_INTERVAL_S", "7")
    assert importlib.reload(sensors).minute_bar_files.minimum_interval_seconds == 7
    monkeypatch.setenv("LANDING_SENSOR_INTERVAL_S", "0")
    with pytest.raises(
        ValueError, match="LANDING_SENSOR_INTERVAL_S must be a whole number of seconds >= 1, got '0'"
    ):
        settings.landing_sensor_interval_s()
    monkeypatch.delenv("LANDING_SENSOR_INTERVAL_S")
    assert importlib.reload(sensors).minute_bar_files.minimum_interval_seconds == 30


# Each domain module imported on its own (load_from_defs_folder silences Dagster's warnings while it imports
# them), then the code location; the deprecation-like warnings caught, as JSON.
IMPORT_THE_DEFINITIONS = """
import importlib, json, pkgutil, warnings
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import marketdata_assets.defs as domains
    for module in pkgutil.walk_packages(domains.__path__, "marketdata_assets.defs."):
        importlib.import_module(module.name)
    from marketdata_assets.definitions import defs
    defs().get_repository_def()
print(json.dumps([[w.category.__name__, f"{w.filename}:{w.lineno}", str(w.message)] for w in caught
                  if issubclass(w.category, (DeprecationWarning, FutureWarning))]))
"""


def test_the_definitions_use_no_deprecated_dagster_api():
    """No Dagster deprecation (its "is deprecated and will be removed" DeprecationWarning) or
    supersession warning when the definitions load, in a fresh process (not the modules this one cached)."""
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_THE_DEFINITIONS],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    caught = json.loads(result.stdout.splitlines()[-1])
    dagster = [
        w for w in caught if w[0] == "SupersessionWarning" or " is deprecated and will be removed in " in w[2]
    ]
    assert not dagster, "\n".join(" ".join(w) for w in dagster)
