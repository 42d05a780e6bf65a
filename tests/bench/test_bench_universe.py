"""bench/universe.py end to end on a tiny universe (5 spot + 3 USD-M instruments, one round): the replay,
both sides into a ClickHouse database of the test's own on the local server, the Dagster run on a
temporary instance and the partitions page's GraphQL query. No figure is judged (a loaded machine, or
this size's fixed costs, miss the goals: exit status 1 is allowed), only that the report is consistent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SPOT, USDM, TRADES = 5, 3, 50


def test_universe_bench_loads_the_same_rows_both_ways_in_one_run(tmp_path):
    results = tmp_path / "universe.json"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "universe",
            "--spot",
            str(SPOT),
            "--usdm",
            str(USDM),
            "--trades-per-day",
            str(TRADES),
            "--rounds",
            "1",
            "--database",
            f"bench_universe_t{uuid.uuid4().hex[:8]}",
            "--results",
            str(results),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode in (0, 1), done.stderr[-3000:]
    report = json.loads(results.read_text())
    assert report["instruments"] == {"spot": SPOT, "usdm": USDM}
    # spot: trades and bars; USD-M perpetuals: trades, bars, funding, open interest
    assert report["slices"] == 2 * SPOT + 4 * USDM
    (only,) = report["rounds"]
    assert (
        only["dagster"]["rows"] == only["direct"]["rows"] == report["rows"]
        and report["rows_equal_every_round"]
    )
    assert report["rows"]["trades"] == (SPOT + USDM) * TRADES
    assert report["rows"]["bars_1m"] == (SPOT + USDM) * 1440
    assert report["rows"]["funding"] > 0 and report["rows"]["open_interest"] > 0
    assert report["runs_launched"] == 1 and report["partitions_materialized"] == 2
    assert report["materializations"] == 2 * 4  # two partitions x four assets
    assert report["storage_rows_written"] > 0 and report["storage_rows_by_table"]["runs"] == 1
    assert report["graphql_partition_page_ms"] > 0 and len(only["graphql"]["partition_health"]["ms"]) == 3
    assert report["graphql_num_materialized"] == only["graphql"]["materialized_in_health_ranges"] == 2
    assert report["asset_partitions"] > 2
    for side in ("dagster", "direct"):
        assert only[side]["seconds"] > 0 and only[side]["cpu_s"] > 0 and only[side]["peak_rss_mb"] > 0
        assert only[side].get("failed_slices", 0) == 0
    assert report["wall_ratio_median"] > 0 and report["cpu_ratio_median"] > 0
    assert "Dagster/direct" in done.stdout and "partitions page GraphQL" in done.stdout
