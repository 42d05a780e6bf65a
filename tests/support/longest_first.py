"""The order in which `make test` (pytest-xdist, `--dist loadfile`) hands test files to its workers:
the longest files first, so no long file starts near the end and keeps the run waiting on one worker.

xdist's own order is by number of tests, most first, which starts the few-but-slow files (the
webserver, the CLI and crash tests: 2-8 tests of subprocesses each) last. Here LONGEST (each
file's seconds summed over its tests, `--durations=0`, 2 CPUs, 3 workers) goes first, then the
rest in xdist's order. A file missing from the list only loses its head start; a renamed file in
it is ignored.

A worker gets its next file when it is down to the last test of the one it runs (xdist gives it
the next one two tests before the end): a file waits behind one test, not two.
"""

from __future__ import annotations

import pytest

LONGEST = (  # tests/... files, longest first (worker seconds in a full run, 3 workers on 2 CPUs, 2026-11-28)
    "tests/orchestration/test_dead_runs_storage.py",  # 84
    "tests/defs/test_ticks_assets.py",  # 81
    "tests/ingest/live/test_recovery.py",  # 79
    "tests/test_webserver.py",  # 69
    "tests/test_quickstart.py",  # 55
    "tests/test_stack_intruder.py",  # 40-60 (added 2026-11-28, measured alone)
    "tests/defs/equities/test_bars_assets.py",  # 50
    "tests/apps/cli/test_cli.py",  # 43
    "tests/ingest/alphas/test_import_faults.py",  # 42
    "tests/apps/cli/test_minute_store_cli.py",  # 41
    "tests/apps/cli/test_collect_cli.py",  # 41
    "tests/test_dotenv_precedence.py",  # 39
    "tests/ingest/live/test_venues.py",  # 36
    "tests/orchestration/test_dead_runs.py",  # 34
    "tests/apps/cli/test_cli_seeds.py",  # 31
    "tests/bench/test_bench_universe.py",  # 29
    "tests/ingest/live/test_nats_cluster.py",  # 27
    "tests/defs/alphas/test_alpha_assets.py",  # 25
    "tests/bench/test_bench_live_capture.py",  # 24
    "tests/test_project_cli.py",  # 23
    "tests/stores/clickhouse/test_writer.py",  # 23
    "tests/stores/clickhouse/test_clickhouse_local_server.py",  # 23
    "tests/stores/clickhouse/test_clickhouse_tables.py",  # 22
    "tests/defs/crypto/test_crypto_dataset_assets.py",  # 21
    "tests/sources/binance_vision/test_binance_archives.py",  # 20
    "tests/ingest/alphas/test_store_faults.py",  # 19
    "tests/test_new_venue_recipe.py",  # 16
    "tests/defs/crypto/test_continuity.py",  # 14
    "tests/resources/test_resources.py",  # 14
    "tests/defs/live/test_live_dataset_loads.py",  # 13
    "tests/sources/yahoo/test_yahoo.py",  # 12
)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    rank = {path: i for i, path in enumerate(LONGEST)}

    class LongestFirst(LoadFileScheduling):
        def _assign_work_unit(self, node) -> None:
            first = min(
                self.workqueue, key=lambda scope: rank.get(scope, len(rank))
            )  # stable: queue order on ties
            self.workqueue.move_to_end(first, last=False)
            super()._assign_work_unit(node)

        def _reschedule(self, node) -> None:
            if node.shutting_down:
                return
            if not self.workqueue:
                node.shutdown()
                return
            if self._pending_of(self.assigned_work[node]) > 1:  # the worker still has a next test to run
                return
            self._assign_work_unit(node)

    return LongestFirst(config, log)
