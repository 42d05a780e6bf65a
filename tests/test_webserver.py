"""The project served by `dagster dev` (webserver + daemon) on a Postgres-backed instance:
every asset and check loads through GraphQL, and a run launched through it ends up in Postgres."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import psycopg
import pytest
from dagster_graphql import DagsterGraphQLClient

from marketdata_assets import settings
from tests.conftest import TEST_DAGSTER_DB, free_port, recreate_database

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.webserver

ASSET_NODES = """
{ assetNodes { assetKey { path } groupName
    assetChecksOrError { ... on AssetChecks { checks { name } } } } }
"""


@pytest.fixture(scope="module")
def served_project(tmp_path_factory, timescale_db):
    recreate_database(TEST_DAGSTER_DB)
    home = tmp_path_factory.mktemp("dagster_home")
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    port = free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), "DAGSTER_PG_DB": TEST_DAGSTER_DB,
           "TIMESCALE_DB": timescale_db, "CLICKHOUSE_DSN": f"chdb://{tmp_path_factory.mktemp('ch') / 'data'}",
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    log = open(home / "dagster-dev.log", "wb")
    server = subprocess.Popen(["dagster", "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
                              cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        try:
            if httpx.get(f"{url}/server_info", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            log.close()
            pytest.fail("dagster dev did not come up:\n" + (home / "dagster-dev.log").read_text()[-3000:])
        time.sleep(0.5)
    yield url, port
    os.killpg(server.pid, 15)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, 9)
    log.close()


def graphql(url: str, query: str) -> dict:
    response = httpx.post(f"{url}/graphql", json={"query": query}, timeout=60)
    response.raise_for_status()
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


def test_every_asset_and_check_loads(served_project):
    from marketdata_assets.definitions import defs

    url, _ = served_project
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
    served_checks = {("/".join(node["assetKey"]["path"]), check["name"])
                     for node in nodes for check in node["assetChecksOrError"].get("checks", [])}
    assert expected_assets and served_assets == expected_assets
    assert served_checks == expected_checks
    assert {node["groupName"] for node in nodes} >= {"alphas", "ticks", "bars"}


def test_run_launched_through_graphql_is_stored_in_postgres(served_project, mongo):
    url, port = served_project
    test_db = f"test_{uuid.uuid4().hex[:8]}"
    client = DagsterGraphQLClient("127.0.0.1", port_number=port)
    run_id = client.submit_job_execution(
        "__ASSET_JOB", repository_location_name="marketdata_assets",
        run_config={"ops": {"alpha_store": {"config": {"db_name_regular": f"{test_db}_regular",
                                                       "db_name_super": f"{test_db}_super"}}}},
        asset_selection=[["alpha_store"], ["bar_store"], ["tick_store"]],
        tags={"marketdata/test": "webserver"})
    try:
        deadline = time.monotonic() + 240  # queued -> daemon dequeues -> run process -> steps
        while True:
            status = client.get_run_status(run_id).value
            if status in ("SUCCESS", "FAILURE", "CANCELED") or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert status == "SUCCESS"
        with psycopg.connect(host=settings.get("DAGSTER_PG_HOST"), port=settings.get("DAGSTER_PG_PORT"),
                             user=settings.get("DAGSTER_PG_USER"), dbname=TEST_DAGSTER_DB) as conn:
            stored = conn.execute("SELECT status FROM runs WHERE run_id = %s", (run_id,)).fetchone()
            materialized = conn.execute(
                "SELECT count(DISTINCT asset_key) FROM event_logs WHERE run_id = %s "
                "AND dagster_event_type = 'ASSET_MATERIALIZATION'", (run_id,)).fetchone()[0]
        assert stored == ("SUCCESS",)
        assert materialized == 3
        assert mongo.client[f"{test_db}_regular"]["alphas"].index_information().keys() >= {"id", "region"}
    finally:
        mongo.client.drop_database(f"{test_db}_regular")
        mongo.client.drop_database(f"{test_db}_super")
