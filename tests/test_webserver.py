"""The project served as `make run` serves it (`dg dev` in the repo: webserver + daemon) on a Postgres-backed
instance: every asset and check loads through GraphQL, a run launched through it ends up in Postgres, files
dropped in the landing area load and chart, and the server's log holds no warning of our own making.

One server for the module, with `make run`'s sensor interval: the minute-bar files are in the landing area
when it starts, so the landing sensor's first tick requests their load, which ends before the tests start
(the run launched through GraphQL then runs alone)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import psycopg
import pytest
from dagster import DagsterEventType
from dagster_graphql import DagsterGraphQLClient

from marketdata_assets.apps.demo import ui_command
from marketdata_assets.core import settings
from tests.conftest import TEST_DAGSTER_DB, free_port, recreate_database, worker_name

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.webserver
WEB_TIMESCALE_DB = worker_name("marketdata_web_test")
WEB_ALPHA_DBS = {
    "ALPHA_DB_REGULAR": f"web_test_regular_{uuid.uuid4().hex[:6]}",
    "ALPHA_DB_SUPER": f"web_test_super_{uuid.uuid4().hex[:6]}",
}

ASSET_NODES = """
{ assetNodes { assetKey { path } groupName
    assetChecksOrError { ... on AssetChecks { checks { name } } } } }
"""


@pytest.fixture(scope="module")
def served_project(tmp_path_factory):
    recreate_database(TEST_DAGSTER_DB)
    recreate_database(WEB_TIMESCALE_DB, extension=True)
    home = tmp_path_factory.mktemp("dagster_home")
    shutil.copy(REPO / "instance" / "dagster.yaml", home / "dagster.yaml")
    port = free_port()
    landing = tmp_path_factory.mktemp("landing")
    write_minute_files(landing)  # for the chart test: the sensor's first tick finds them
    environ = {name: value for name, value in os.environ.items() if name != "LANDING_SENSOR_INTERVAL_S"}
    env = {
        **environ,
        "DAGSTER_HOME": str(home),
        "DAGSTER_PG_DB": TEST_DAGSTER_DB,
        "MINUTE_BARS_LANDING_DIR": str(landing),
        "MARKETDATA_STATE_DIR": str(tmp_path_factory.mktemp("state")),
        "TIMESCALE_DB": WEB_TIMESCALE_DB,
        **WEB_ALPHA_DBS,
        "CLICKHOUSE_DSN": f"chdb://{tmp_path_factory.mktemp('ch') / 'data'}",
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    with (
        pytest.MonkeyPatch.context() as patch
    ):  # the pool limits, as `make run` applies them (in this process)
        for name, value in env.items():
            patch.setenv(name, value)
        from dagster import DagsterInstance

        from marketdata_assets.orchestration import pools

        with DagsterInstance.get() as instance:
            assert (
                pools.apply(instance)[pools.CLICKHOUSE] == 1
            )  # an embedded ClickHouse: one process at a time
    with open(home / "dagster-dev.log", "wb") as log:
        # the command and directory of `make run` (apps.demo); the repo's .env only fills in unset variables
        server = subprocess.Popen(
            ui_command("127.0.0.1", port),
            cwd=REPO,
            env={**env, "VIRTUAL_ENV": sys.prefix},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"{url}/server_info", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail("dagster dev did not come up:\n" + (home / "dagster-dev.log").read_text()[-3000:])
            time.sleep(0.5)
        # the landing sensor's run (its first tick, once the daemon has loaded the code location), waited
        # for here so that it does not share the machine with the run the GraphQL test launches; the chart
        # test checks it
        deadline = time.monotonic() + 180
        while (
            not (runs := graphql(url, SENSOR_RUNS)["runsOrError"]["results"]) and time.monotonic() < deadline
        ):
            time.sleep(1)
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("DAGSTER_HOME", str(home))
            patch.setenv("DAGSTER_PG_DB", TEST_DAGSTER_DB)
            for run in runs:
                try:
                    wait_for_run_end(run["runId"])
                except AssertionError:  # not ended in time: the chart test says so, the others go on
                    pass
        yield url, port, landing, home
        os.killpg(
            server.pid, signal.SIGINT
        )  # Ctrl-C, as a user stops it; it may linger, nothing of it is kept
        try:
            server.wait(timeout=3)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)


def write_minute_files(landing: Path) -> None:
    """Three codes' minute bars of Jan..Mar 2026, in a folder of the landing area (written before the
    server starts: no sensor tick sees them half-written)."""
    from tests.defs.equities.test_bars_assets import NAMED, write_files

    (landing / "drop").mkdir()
    write_files(landing / "drop", files=NAMED)


def graphql(url: str, query: str) -> dict:
    response = httpx.post(f"{url}/graphql", json={"query": query}, timeout=60)
    response.raise_for_status()
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


def test_every_asset_and_check_loads(served_project):
    from marketdata_assets.definitions import defs

    url, _, _, _ = served_project
    expected = defs().resolve_asset_graph()
    expected_assets = {key.to_user_string() for key in expected.get_all_asset_keys()}
    expected_checks = {(key.asset_key.to_user_string(), key.name) for key in expected.asset_check_keys}

    deadline = time.monotonic() + 120  # the code location may still be loading
    while True:
        nodes = graphql(url, ASSET_NODES)["assetNodes"]
        if nodes or time.monotonic() > deadline:
            break
        time.sleep(1)
    served_assets = {"/".join(node["assetKey"]["path"]) for node in nodes}
    served_checks = {
        ("/".join(node["assetKey"]["path"]), check["name"])
        for node in nodes
        for check in node["assetChecksOrError"].get("checks", [])
    }
    assert expected_assets and served_assets == expected_assets
    assert served_checks == expected_checks
    assert {node["groupName"] for node in nodes} >= {"alphas", "crypto", "equities", "archives", "upkeep"}


RUN_ENDED = {DagsterEventType.RUN_SUCCESS, DagsterEventType.RUN_FAILURE, DagsterEventType.RUN_CANCELED}


def wait_for_run_end(run_id: str, timeout: float = 110) -> str:
    """The run's last event, waited for on the event log's own notifications (Postgres LISTEN /
    NOTIFY through Dagster's watcher), not by polling the run's status."""
    from dagster import DagsterInstance

    ended, last = threading.Event(), []

    def on_event(event, _cursor) -> None:
        if event.is_dagster_event and event.dagster_event_type in RUN_ENDED:
            last.append(event.dagster_event_type.name)
            ended.set()

    with DagsterInstance.get() as instance:
        records = instance.get_records_for_run(run_id)
        already = [
            r.event_log_entry.dagster_event_type.name
            for r in records.records
            if r.event_log_entry.is_dagster_event and r.event_log_entry.dagster_event_type in RUN_ENDED
        ]
        if already:
            return already[-1]
        instance.event_log_storage.watch(run_id, records.cursor, on_event)
        try:
            assert ended.wait(timeout), f"run {run_id} did not end within {timeout} s"
        finally:
            instance.event_log_storage.end_watch(run_id, on_event)
    return last[0]


def test_run_launched_through_graphql_is_stored_in_postgres(served_project, mongo, monkeypatch):
    _, port, _, home = served_project
    client = DagsterGraphQLClient("127.0.0.1", port_number=port)
    run_id = client.submit_job_execution(
        "__ASSET_JOB",
        repository_location_name="marketdata_assets",
        asset_selection=[["alpha_store"], ["bar_store"], ["tick_store"]],
        tags={"marketdata/test": "webserver"},
    )
    try:
        monkeypatch.setenv("DAGSTER_HOME", str(home))
        monkeypatch.setenv("DAGSTER_PG_DB", TEST_DAGSTER_DB)
        assert wait_for_run_end(run_id) == "RUN_SUCCESS"
        with psycopg.connect(
            host=settings.get("DAGSTER_PG_HOST"),
            port=settings.get("DAGSTER_PG_PORT"),
            user=settings.get("DAGSTER_PG_USER"),
            password=settings.get("DAGSTER_PG_PASSWORD"),
            dbname=TEST_DAGSTER_DB,
            autocommit=True,
        ) as conn:
            # the run's end event is stored (and notified) before its row's status is updated: a busy
            # machine showed 'STARTED' in between; the row must reach its end within seconds
            deadline = time.monotonic() + 10
            while (
                stored := conn.execute("SELECT status FROM runs WHERE run_id = %s", (run_id,)).fetchone()
            ) == ("STARTED",) and time.monotonic() < deadline:
                time.sleep(0.05)
            materialized = conn.execute(
                "SELECT count(DISTINCT asset_key) FROM event_logs WHERE run_id = %s "
                "AND dagster_event_type = 'ASSET_MATERIALIZATION'",
                (run_id,),
            ).fetchone()[0]
        assert stored == ("SUCCESS",)
        assert materialized == 3
        # the databases the served code location was configured with (ALPHA_DB_* variables)
        assert mongo.client[WEB_ALPHA_DBS["ALPHA_DB_REGULAR"]]["alphas"].index_information().keys() >= {
            "id",
            "region",
        }
    finally:
        for name in WEB_ALPHA_DBS.values():
            mongo.client.drop_database(name)


SENSOR_RUNS = """
{ runsOrError(filter: {tags: [{key: "dagster/sensor_name", value: "minute_bar_files"}]}) {
    ... on Runs { results { runId status tags { key value } } } } }
"""


def test_files_dropped_in_the_landing_area_load_and_chart_in_a_real_browser(
    served_project, tmp_path, monkeypatch
):
    """Minute-bar CSVs in the landing area (there when the server started; the fixture waited for their
    run): the sensor requests one range run of their months, which loads them and refreshes the K-line;
    then open the asset page in Debian's chromium and look at the chart in its metadata."""
    from playwright.sync_api import sync_playwright

    url, _, _, home = served_project
    runs = graphql(url, SENSOR_RUNS)["runsOrError"]["results"]
    assert runs, "the sensor requested no run"
    (run,) = runs
    tags = {t["key"]: t["value"] for t in run["tags"]}
    assert (tags["dagster/asset_partition_range_start"], tags["dagster/asset_partition_range_end"]) == (
        "2026-01-01",
        "2026-03-01",
    )
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("DAGSTER_PG_DB", TEST_DAGSTER_DB)
    assert wait_for_run_end(run["runId"]) == "RUN_SUCCESS"

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=shutil.which("chromium") or "/usr/bin/chromium",
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        try:
            # the UI's Content-Security-Policy forbids eval: without bypass_csp, wait_for_function's polling
            # (a string predicate, evaluated again while false) failed with EvalError on a busy machine
            page = browser.new_page(viewport={"width": 1400, "height": 1000}, bypass_csp=True)
            page.goto(f"{url}/assets/stock_monthly_kline", wait_until="networkidle")
            page.get_by_text("[Show Markdown]").first.click(timeout=60_000)
            page.wait_for_function(
                "Array.from(document.images).filter(i => i.src.startsWith('data:image/svg')"
                " && i.complete && i.naturalWidth > 0).length >= 3",
                timeout=30_000,
            )
            images = page.evaluate(
                "Array.from(document.images).filter(i => i.src.startsWith('data:image/svg'))"
                ".map(i => [i.alt, i.naturalWidth, i.naturalHeight])"
            )
            page.screenshot(path=str(tmp_path / "monthly_candles.png"))
        finally:
            browser.close()
    assert sorted(alt for alt, _, _ in images) == [
        "000001.SZ monthly K-line",
        "600000.SH monthly K-line",
        "688981.SH monthly K-line",
    ]
    assert all((w, h) == (560, 220) for _, w, h in images)


# What `make run` printed on every start before issue #24: `dagster dev` is superseded by `dg dev`, a
# workspace that named the location otherwise than pyproject's [tool.dg.project] made Dagster warn at
# every load of the definitions, and `dg` warns when the project's venv is not the active one.
OWN_WARNINGS = ("superseded", "does not match the name", "virtual environment does not match")


def test_the_served_project_logs_no_warning_of_ours(served_project):
    url, _, _, home = served_project
    graphql(url, ASSET_NODES)  # the code location has been loaded by now (the first test waited for it)
    log = (home / "dagster-dev.log").read_text(errors="replace")
    # the daemon warns and errs only (`make run`'s terminal had a SensorDaemon INFO line per tick: 341 in
    # 15 min)
    assert not [line for line in log.splitlines() if "dagster.daemon." in line and "INFO" in line]
    assert "0 changes since the cursor" not in log  # a quiet sensor tick of ours logs nothing
    ours = [
        line
        for line in log.splitlines()
        if any(text in line for text in OWN_WARNINGS) or ("Warning" in line and "marketdata_assets/" in line)
    ]
    assert not ours, "\n".join(ours[:5])
