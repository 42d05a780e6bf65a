"""The capacity model (bench/capacity.py, docs/scale-out.md): fed this machine's inputs it gives this
machine's measured outputs, and its full-universe answer follows from its stated assumptions."""

from __future__ import annotations

import dataclasses
import json
import math
import statistics

import pytest

from bench import capacity

RUNS = json.loads(capacity.RUNS_FILE.read_text())


def cost() -> capacity.RunCost:
    return capacity.fit_run_cost(RUNS)


@pytest.mark.parametrize("venue", sorted(capacity.CRYPTO_BENCH))
def test_the_fetch_model_gives_the_crypto_bench_seconds(venue):
    """bench crypto_datasets (docs/crypto-datasets.md): the seconds each venue took through the replay at its
    limits, from the requests it made and the limits the project declares, within 6%."""
    bench = capacity.CRYPTO_BENCH[venue]
    predicted = capacity.fetch_seconds(venue, bench["requests"], capacity.declared_budgets())
    assert predicted == pytest.approx(bench["seconds"], rel=0.06), (venue, predicted)


def test_the_run_cost_model_predicts_runs_it_was_not_fitted_on():
    """Fitted on every other run of this machine's instance, it predicts the wall time of the others."""
    assert len(RUNS) >= 20
    fitted = capacity.fit_run_cost(RUNS[::2])
    held_out = RUNS[1::2]
    errors = [abs(fitted.wall(r["steps"], r["busy_s"]) - r["wall_s"]) for r in held_out]
    assert statistics.median(errors) < 0.25
    assert statistics.median(fitted.wall(r["steps"], r["busy_s"]) for r in held_out) == pytest.approx(
        statistics.median(r["wall_s"] for r in held_out), rel=0.1
    )
    assert 0.1 < fitted.fixed < 2.0  # the measured per-run overhead of an in-process run


def test_a_share_day_is_the_documented_25_minutes():
    """docs/quickstart.md: the full market (~5,050 stk_mins requests at Tushare's 200 a minute), ~25
    minutes."""
    market = dataclasses.replace(capacity.FULL_UNIVERSE[6], instruments=5_050)
    line = capacity.plan(cost(), universe=(market,)).lines[0]
    assert line.requests_per_day == 5_050 and line.fetch_s / 60 == pytest.approx(25, rel=0.02)


def test_the_full_universe_answer_follows_from_the_assumptions():
    p = capacity.plan(cost())
    a = p.assumptions
    assert p.launch_s == pytest.approx(
        a["pod_start_s"] + capacity.MEASURED["code_location_import_s"][0] + cost().fixed, abs=0.01
    )
    disk = p.rows_per_day * 365 * a["retention_years"] * a["bytes_per_row"] / (a["shard_tb"] * 1e12)
    assert p.units("ClickHouse disk") == math.ceil(disk)
    for line in p.lines:  # each batch keeps launching under its share, or holds every partition of the day
        overhead = p.launch_s / (p.launch_s + line.batch * line.busy_per_partition_s)
        assert overhead <= a["overhead_share"] + 1e-9 or line.batch == line.partitions_per_day, line
        assert line.runs_per_day == math.ceil(line.partitions_per_day / line.batch)
    # crypto is day x venue: no per-instrument partitions; the first bottleneck is the disk
    assert p.backfill_partitions == 0 and p.limits[0].resource == "ClickHouse disk"
    assert p.launch_share_unbatched < 0.05
    # more disk per shard: fewer shards; no pod to start (this machine's launcher): a cheaper launch
    assert capacity.plan(cost(), overrides={"shard_tb": 8.0}).units("ClickHouse disk") == math.ceil(disk / 2)
    assert capacity.plan(cost(), overrides={"pod_start_s": 0.0}).launch_s < 3
    # every live trade at the peak through the consumers, each at most half busy at its measured rate
    live = sum(
        line.rows_per_day
        for u, line in zip(capacity.FULL_UNIVERSE, p.lines)
        if u.name.endswith("trades") and u.venue in capacity.LIVE_VENUES
    )
    peak = live / 86_400 * a["peak_over_mean"]
    assert p.units("consumer at the peak") == math.ceil(
        peak / (0.5 * capacity.MEASURED["consumer_trades_per_s"][0])
    )
    assert (
        capacity.plan(cost(), overrides={"consumer_trades_per_s": 2 * 18_600}).units("consumer at the peak")
        == 1
    )
    # the collectors: every frame of every dataset `collect` takes (trades, book diffs, tickers, bars, mark
    # price), at the measured CPU a frame, each collector at most half busy
    per_instrument = a["book_frames_per_instrument_s"] + a["other_frames_per_instrument_s"]
    assert per_instrument == 22
    collectors = 0
    for u, line in zip(capacity.FULL_UNIVERSE, p.lines):
        if u.name.endswith("trades") and u.venue in capacity.LIVE_VENUES:
            frames = line.rows_per_day / 86_400 * a["peak_over_mean"] + per_instrument * u.instruments
            cores = frames * capacity.MEASURED["frame_cost_s"][0]
            assert p.units(f"{u.venue} collector CPU") == math.ceil(cores / 0.5), u.venue
            collectors += math.ceil(cores / 0.5)
    assert p.units("collector CPU") == collectors
    trades_and_books = capacity.plan(cost(), overrides={"other_frames_per_instrument_s": 0.0})
    assert trades_and_books.units("collector CPU") <= collectors
    slower = capacity.plan(cost(), overrides={"frame_cost_s": 46e-6})  # the collector of 2026-11-24
    assert slower.units("collector CPU") > collectors


def test_one_partition_per_instrument_would_be_the_first_bottleneck():
    """What day x venue partitions (the instruments of a venue and day in one run, as the A-shares' market)
    cleared: one partition per instrument and day is 27 times Dagster's per-asset comfort limit over the
    history kept, and launching runs takes most of the run workers' time."""
    per_instrument = tuple(
        dataclasses.replace(u, partitions_per_day=0) if u.venue in ("binance", "binance_um", "okx") else u
        for u in capacity.FULL_UNIVERSE
    )
    p = capacity.plan(cost(), universe=per_instrument)
    assert p.limits[0].resource.startswith("Dagster partitions") and p.limits[0].load > 10
    assert p.backfill_partitions == 1_500 * 365 * p.assumptions["retention_years"]
    assert p.launch_share_unbatched > 0.5


def test_the_command_prints_the_plan(capsys):
    assert capacity.main([]) == 0
    out = capsys.readouterr().out
    assert "first bottleneck: ClickHouse disk" in out and "ClickHouse shards" in out


# ---- Dagster partitions of the definitions at the model's universe --------------------------------------
DAGSTER_LIMIT = 100_000  # partitions per asset Dagster's documentation recommends at most
YEARS = 10


def _venue_instruments() -> int:
    """The crypto instruments of the model's universe: each venue's largest line."""
    largest: dict[str, int] = {}
    for u in capacity.FULL_UNIVERSE:
        if u.venue in capacity.LIVE_VENUES:
            largest[u.venue] = max(largest.get(u.venue, 0), u.instruments)
    return sum(largest.values())


_WINDOWS: dict[tuple, int] = {}


def _windows(partitions_def, years: int) -> int:
    key = (str(partitions_def), years)  # the same definition on several assets: counted once
    if key not in _WINDOWS:
        start = partitions_def.start
        _WINDOWS[key] = len(
            partitions_def.get_partition_keys(current_time=start.replace(year=start.year + years))
        )
    return _WINDOWS[key]


def partitions_over_years(partitions_def, dynamic: dict[str, int], years: int = YEARS) -> int:
    """How many partitions `partitions_def` has `years` after its start, dynamic dimensions sized by
    `dynamic`."""
    import dagster as dg

    if isinstance(partitions_def, dg.MultiPartitionsDefinition):
        return math.prod(
            partitions_over_years(d.partitions_def, dynamic, years) for d in partitions_def.partitions_defs
        )
    if isinstance(partitions_def, dg.TimeWindowPartitionsDefinition):
        return _windows(partitions_def, years)
    if isinstance(partitions_def, dg.DynamicPartitionsDefinition):
        return dynamic[partitions_def.name]
    return len(partitions_def.get_partition_keys())


def test_at_the_models_universe_every_asset_stays_under_dagsters_partition_limit():
    """Computed from the definitions, not from prose: ten years of every partitioned asset, its dynamic
    dimensions as large as the capacity model's universe (2,280 crypto instruments)."""
    from marketdata_assets.definitions import defs

    dynamic = {"crypto_instruments": _venue_instruments()}
    counts = {
        spec.key.to_user_string(): partitions_over_years(spec.partitions_def, dynamic)
        for spec in defs().resolve_all_asset_specs()
        if spec.partitions_def is not None
    }
    over = {asset: n for asset, n in counts.items() if n > DAGSTER_LIMIT}
    assert not over, over
    assert 3_652 * 4 <= counts["crypto_trades"] <= 3_653 * 4  # ten years of days x the 4 REST venues
    assert counts["crypto_tickers"] == 2_280 and counts["a_share_bars_1m"] <= 3_654
    assert 87_600 <= counts["live_trades"] <= 87_700  # ten years of hours, the instruments inside
