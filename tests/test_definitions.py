"""The whole code location loads (every domain folder, the resources, jobs, schedules, sensors), and
every asset has the resources it asks for, a partitioning where it ingests, and its checks."""

from __future__ import annotations

import dagster as dg

# ingest assets -> the checks each must have (a check the refactor drops would go unnoticed otherwise)
TICKS_CHECKS = {
    "crypto_trades": {"no_duplicate_trade_ids", "timestamps_inside_day", "prices_positive"},
    "crypto_bars_1m": {"bar_high_low_consistent", "timestamps_inside_day", "prices_positive"},
    "binance_dump_trades": {"no_duplicate_trade_ids", "timestamps_inside_day", "prices_positive"},
    "binance_dump_bars_1m": {"bar_high_low_consistent", "timestamps_inside_day", "prices_positive"},
    "crypto_book_snapshots": {"prices_positive"},
    "a_share_bars_1m": {"bar_high_low_consistent", "timestamps_inside_day"},
    "a_share_daily_bars": {"bar_high_low_consistent", "timestamps_inside_day"},
    "yahoo_bars_1m": {"bar_high_low_consistent", "timestamps_inside_day"},
}


def test_the_code_location_loads_and_every_asset_has_its_resources_partitions_and_checks():
    from marketdata_assets.definitions import defs

    definitions = defs()
    dg.Definitions.validate_loadable(definitions)
    repo = definitions.get_repository_def()
    resources = set(repo.get_top_level_resources())
    assert {"clickhouse", "tushare", "yahoo", "binance", "okx", "deribit", "timescale", "alpha_store"} <= resources
    graph = repo.asset_graph
    groups: dict[str, set[str]] = {}
    for key in graph.get_all_asset_keys():
        assets_def = graph.get(key).assets_def
        missing = assets_def.required_resource_keys - resources - {"io_manager"}  # the default one
        assert not missing, f"{key.to_user_string()} needs resources {sorted(missing)} the location does not have"
        groups.setdefault(graph.get(key).group_name, set()).add(key.to_user_string())
    assert {"alphas", "ticks", "bars"} <= set(groups)
    assert groups["ticks"] == {"tick_store", "tick_compaction", *TICKS_CHECKS}
    for name in TICKS_CHECKS:
        assert graph.get(dg.AssetKey(name)).partitions_def is not None, f"{name} is not partitioned"
    checks: dict[str, set[str]] = {}
    for check in graph.asset_check_keys:
        checks.setdefault(check.asset_key.to_user_string(), set()).add(check.name)
    for name, expected in TICKS_CHECKS.items():
        assert expected <= checks.get(name, set()), f"{name} lacks checks {sorted(expected - checks.get(name, set()))}"
    assert {job.name for job in repo.get_all_jobs()} >= {"crypto_ticks_job", "binance_dumps_job", "a_share_ticks_job",
                                                       "tick_compaction_job"}
    assert {s.name for s in repo.sensor_defs} >= {"binance_dump_files", "crypto_instruments_from_config"}
