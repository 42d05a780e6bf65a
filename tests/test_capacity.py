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
        statistics.median(r["wall_s"] for r in held_out), rel=0.1)
    assert 0.1 < fitted.fixed < 2.0  # the measured per-run overhead of an in-process run


def test_a_share_day_is_the_documented_25_minutes():
    """docs/quickstart.md: the full market (~5,050 stk_mins requests at Tushare's 200 a minute), ~25 minutes."""
    market = dataclasses.replace(capacity.FULL_UNIVERSE[6], instruments=5_050)
    line = capacity.plan(cost(), universe=(market,)).lines[0]
    assert line.requests_per_day == 5_050 and line.fetch_s / 60 == pytest.approx(25, rel=0.02)


def test_the_full_universe_answer_follows_from_the_assumptions():
    p = capacity.plan(cost())
    a = p.assumptions
    assert p.launch_s == pytest.approx(a["pod_start_s"] + capacity.MEASURED["code_location_import_s"][0]
                                       + cost().fixed, abs=0.01)
    disk = p.rows_per_day * 365 * a["retention_years"] * a["bytes_per_row"] / (a["shard_tb"] * 1e12)
    assert p.units("ClickHouse disk") == math.ceil(disk)
    for line in p.lines:  # each batch keeps launching under its share, or holds every partition of the day
        overhead = p.launch_s / (p.launch_s + line.batch * line.busy_per_partition_s)
        assert overhead <= a["overhead_share"] + 1e-9 or line.batch == line.partitions_per_day, line
        assert line.runs_per_day == math.ceil(line.partitions_per_day / line.batch)
    assert p.backfill_partitions == 1_500 * 365 * a["retention_years"]
    # the first bottleneck: Dagster's partitions of the per-instrument crypto assets, then launching
    assert p.limits[0].resource.startswith("Dagster partitions") and p.limits[0].load > 10
    assert p.launch_share_unbatched > 0.5
    # more disk per shard: fewer shards; no pod to start (this machine's launcher): a cheaper launch
    assert capacity.plan(cost(), overrides={"shard_tb": 8.0}).units("ClickHouse disk") == math.ceil(disk / 2)
    assert capacity.plan(cost(), overrides={"pod_start_s": 0.0}).launch_s < 3
    # every live trade at the peak through the consumers, each at most half busy at its measured rate
    live = sum(line.rows_per_day for u, line in zip(capacity.FULL_UNIVERSE, p.lines)
               if u.name.endswith("trades") and u.venue in capacity.LIVE_VENUES)
    peak = live / 86_400 * a["peak_over_mean"]
    assert p.units("consumer at the peak") == math.ceil(peak / (0.5 * capacity.MEASURED["consumer_trades_per_s"][0]))
    assert capacity.plan(cost(), overrides={"consumer_trades_per_s": 2 * 18_600}).units("consumer at the peak") == 1
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


def test_partitioning_crypto_by_venue_and_day_clears_the_first_bottleneck():
    """The remedy docs/scale-out.md gives: the instruments of a venue and day in one partition (as the
    A-shares already are): launching is no longer most of the run workers' time and the partition count
    fits Dagster."""
    batched = tuple(dataclasses.replace(u, partitions_per_day=u.partitions_per_day or 1)
                    for u in capacity.FULL_UNIVERSE)
    p = capacity.plan(cost(), universe=batched)
    assert p.launch_share_unbatched < 0.05
    assert not any(limit.resource.startswith("Dagster partitions") for limit in p.limits)


def test_the_command_prints_the_plan(capsys):
    assert capacity.main([]) == 0
    out = capsys.readouterr().out
    assert "first bottleneck: Dagster partitions per asset" in out and "ClickHouse shards" in out
