"""The `marketdata` command: the seeds' options, real runs recorded in a Dagster instance, exit codes.

Help and usage errors need no run: they are parsed in this process (click's CliRunner, `in_process`);
one real process each proves what the installed command adds (exit 0 for --help, exit 2 for a usage
error), and every run is a real process."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pymongo
import pytest
from click.testing import CliRunner

from marketdata_assets.apps.cli import cli
from marketdata_assets.core import settings
from tests.conftest import TEST_DAGSTER_DB, recreate_database, worker_name

REPO = Path(__file__).resolve().parents[3]
MARKETDATA = Path(sys.executable).parent / "marketdata"
CLI_TIMESCALE_DB = worker_name("marketdata_cli_test")  # and the alpha databases: never the developer's
COMMANDS = ["fetch-alphas", "package-alphas", "import-alphas", "ingest", "load-minute-bars", "aggregate"]


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory):
    recreate_database(TEST_DAGSTER_DB)
    recreate_database(CLI_TIMESCALE_DB, extension=True)
    with pymongo.MongoClient(
        settings.get("MONGODB_URI"), **settings.mongo_auth(), serverSelectionTimeoutMS=5000
    ) as client:
        for suffix in ("regular", "super"):
            client.drop_database(f"{CLI_TIMESCALE_DB}_{suffix}")
    home = tmp_path_factory.mktemp("dagster_home")
    shutil.copy(REPO / "instance" / "dagster.yaml", home / "dagster.yaml")
    return {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "DAGSTER_PG_DB": TEST_DAGSTER_DB,
        "TIMESCALE_DB": CLI_TIMESCALE_DB,
        "ALPHA_DB_REGULAR": f"{CLI_TIMESCALE_DB}_regular",
        "ALPHA_DB_SUPER": f"{CLI_TIMESCALE_DB}_super",
        "MARKETDATA_STATE_DIR": str(tmp_path_factory.mktemp("state")),
        "CLICKHOUSE_DSN": f"chdb://{tmp_path_factory.mktemp('ch') / 'data'}",
    }


def marketdata(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(MARKETDATA), *args],
        env=env,
        cwd=env["MARKETDATA_STATE_DIR"],
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )


def runs(env: dict) -> list:
    os.environ.update({k: env[k] for k in ("DAGSTER_HOME", "DAGSTER_PG_DB")})
    with dg.DagsterInstance.get() as instance:
        return list(instance.get_runs(dg.RunsFilter(tags={"marketdata/launched_by": "marketdata CLI"})))


def in_process(monkeypatch, env: dict, *args: str):
    """`marketdata args` parsed in this process (its environment `env`, restored afterwards): what main() does
    with a usage error (the message, exit 2) is what click's standalone mode does here."""
    monkeypatch.setattr(os, "environ", dict(env))
    return CliRunner().invoke(cli, list(args), prog_name="marketdata")


HELP = {
    "import-alphas": (["--import-mode", "--batch-size", "--workers"], "3_mongo_import_v4.py"),
    "ingest": (
        [
            "--symbols",
            "--start-date",
            "--end-date",
            "--providers-config",
            "--workers",
            "--max-workers",
            "--source",
            "--provider",
        ],
        "data.ingestion.run",
    ),
    "load-minute-bars": (
        ["--data-dir", "--force", "--workers", "--max-workers", "--aggregate", "--force-backfill"],
        "run_etl.py",
    ),
    "aggregate": (["--force-backfill"], "load_data/aggregate.py"),
    "fetch-alphas": (["--start-month", "--account"], "1_fetch_all_alpha_main_async.py"),
    "package-alphas": (
        ["--start-month", "--end-month", "--account", "--only"],
        "2_alpha_files_packaging_and_decomposition.py",
    ),
}


def assert_help_of(command: str, text: str) -> None:
    options, seed_script = HELP[command]
    assert all(option in text for option in options), text
    assert seed_script in " ".join(text.split())  # the help names the seed script it replaces


def test_every_seed_command_has_help_with_its_options(monkeypatch):
    assert set(HELP) == set(COMMANDS)
    for command in COMMANDS:
        result = in_process(monkeypatch, os.environ, command, "--help")
        assert result.exit_code == 0, result.output
        assert_help_of(command, result.stdout)
    # the installed command prints the same help and exits 0
    result = subprocess.run(
        [str(MARKETDATA), "import-alphas", "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert_help_of("import-alphas", result.stdout)


def test_ingest_on_the_replays_is_a_dagster_run_with_its_checks(cli_env, monkeypatch):
    monkeypatch.setattr(os, "environ", dict(os.environ))  # runs() points this process at the test instance
    result = marketdata(
        cli_env,
        "--demo",
        "ingest",
        "--symbols",
        "600000.SH",
        "000001.SZ",
        "--start-date",
        "2025-06-05",
        "--end-date",
        "2025-06-06",
        "--workers",
        "2",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[ok] A-share bars 2025-06-05..2025-06-06 (2): 2 assets, 2 partitions" in result.stdout
    assert "16/16 checks passed" in result.stdout  # (5 minute-bar + 3 daily-bar checks) x 2 days
    (run,) = runs(cli_env)
    assert run.status == dg.DagsterRunStatus.SUCCESS
    assert (
        run.tags["dagster/asset_partition_range_start"],
        run.tags["dagster/asset_partition_range_end"],
    ) == ("2025-06-05", "2025-06-06")


def test_a_failing_run_exits_non_zero_naming_its_partitions(cli_env):
    result = marketdata(
        cli_env,
        "--demo",
        "import-alphas",
        "--import-mode",
        "time_range",
        "--start-month",
        "2025-06",
        "--end-month",
        "2025-07",
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert (
        "FAILED: import alphas 2025-06..2025-07 (time_range): step alpha_documents (partitions 2025-06-01, "
        "2025-07-01): import mode time_range needs `start` and `end`"
    ) in result.stderr  # one line, no traceback
    assert "Traceback" not in result.stderr and "Stack Trace" not in result.stderr


def test_bad_options_are_usage_errors_naming_the_option(cli_env, monkeypatch):
    result = in_process(monkeypatch, cli_env, "fetch-alphas", "--account", "nobody")
    assert result.exit_code == 2 and "unknown accounts ['nobody']" in result.stderr
    result = marketdata(
        cli_env, "ingest", "--start-date", "2025-06-07", "--end-date", "2025-06-08"
    )  # a weekend
    assert result.returncode == 2 and "no partition between 2025-06-07 and 2025-06-08" in result.stderr


def test_a_backfill_under_a_terminal_shows_its_slices_advancing_during_the_fetch(cli_env):
    """Under a pseudo-terminal the bar counts the slices the fetch settles, of their total, with an ETA (it
    sat at 0 partitions for the whole fetch, then ran through the checks), and the run's line follows on its
    own."""
    import pty
    import re

    main, child = pty.openpty()
    process = subprocess.Popen(
        [
            str(MARKETDATA),
            "--demo",
            "backfill",
            "a_shares",
            "--start-date",
            "2025-06-05",
            "--end-date",
            "2025-06-06",
        ],
        env=cli_env,
        cwd=cli_env["MARKETDATA_STATE_DIR"],
        stdin=child,
        stdout=child,
        stderr=child,
        close_fds=True,
    )
    os.close(child)
    screen = b""
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        screen += chunk
    os.close(main)
    assert process.wait(timeout=110) == 0, screen.decode(errors="replace")[-2000:]
    text = screen.decode(errors="replace")
    states = [
        (int(done), int(total)) for done, total in re.findall(r"\(slices\)\s+\[[#-]*\]\s+(\d+)/(\d+)", text)
    ]
    totals = {total for _, total in states}
    assert len(totals) == 1 and (total := totals.pop()) > 4, (
        states
    )  # every slice of the run, known from the start
    assert [done for done, _ in states] == sorted(done for done, _ in states)  # only forward
    assert {1, total // 2, total - 1} <= {done for done, _ in states}  # advancing through the fetch
    assert re.search(r"\d/\d+\s+\d\d:\d\d:\d\d", text)  # an ETA from the rate so far
    assert re.search(r"\r?\n\[ok\] a_shares 2025-06-05\.\.2025-06-06: ", text)  # the line after the bar
