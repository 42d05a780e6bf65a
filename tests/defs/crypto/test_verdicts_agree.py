"""One verdict per partition, the same everywhere. A Dagster asset backfill of crypto_trades over a day x
the 4 venues, BINANCE_UM's day past its REST history and stored nowhere, run by the backfill and run-queue
daemons' own iterations on a Dagster instance, read back through the webserver's GraphQL schema (in this
process: the server adds nothing to what it answers): the partitions tab, the run, the backfill page and
the CLI's line and exit code say the same. Then a day the archive holds in part is materialized partial with
the same rows whichever load ran first, and the CLI exits 4. Replay servers (venues, data.binance.vision),
the embedded ClickHouse."""

from __future__ import annotations

import logging
import os
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import pytest
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
from dagster._daemon.backfill import execute_backfill_iteration
from dagster_graphql.test.utils import execute_dagster_graphql

from marketdata_assets.apps.launch import exit_code, launch
from marketdata_assets.replay.binance_archive import ArchiveReplayConfig, BinanceArchiveReplayServer
from marketdata_assets.replay.crypto import ReplayConfig
from marketdata_assets.resources import ClickHouseResource
from tests.support.ticks_common import crypto_replay
from tests.support.ticks_dagster import crypto_resources, day_range

TODAY = datetime.now(UTC).date()
DAY = TODAY - timedelta(days=3)  # past USD-M's 48 hours of trades
ARCHIVE_FIRST = TODAY - timedelta(days=5)  # the archive loads it before a crypto run
VENUES = ("BINANCE", "BINANCE_UM", "DERIBIT", "OKX")
TRADES = dg.AssetKey("crypto_trades")

server, _clean = crypto_replay(ReplayConfig(seed=7, trades_per_day=50))


@dg.definitions
def verdict_defs() -> dg.Definitions:
    """The crypto and archive assets on the replays and the test's ClickHouse (the environment names
    them: the backfill's runs load these definitions again in this process)."""
    from marketdata_assets.defs.archives.archives import binance_archives
    from marketdata_assets.defs.crypto.assets import crypto_ticks

    clickhouse = ClickHouseResource(
        dsn=os.environ["VERDICTS_CLICKHOUSE_DSN"],
        database=os.environ["VERDICTS_CLICKHOUSE_DB"],
        lock_timeout_s=5,
    )
    return dg.Definitions(
        assets=[crypto_ticks, binance_archives],
        resources={**crypto_resources(os.environ["VERDICTS_VENUES_URL"]), "clickhouse": clickhouse},
        executor=dg.in_process_executor,
    )


@pytest.fixture
def workspace(server, clickhouse, tmp_path, monkeypatch):
    """(instance, workspace process context): runs launched in this process, each to its end."""
    with BinanceArchiveReplayServer(ArchiveReplayConfig(seed=3, trades_per_day=40)) as archive:
        for name, value in {
            "VERDICTS_CLICKHOUSE_DSN": clickhouse.dsn,
            "VERDICTS_CLICKHOUSE_DB": clickhouse.database,
            "VERDICTS_VENUES_URL": server.base_url,
            "BINANCE_ARCHIVE_BASE_URL": archive.base_url,
            "MARKETDATA_STATE_DIR": str(tmp_path),
        }.items():
            monkeypatch.setenv(name, value)
        launcher = {
            "module": "dagster._core.launcher.sync_in_memory_run_launcher",
            "class": "SyncInMemoryRunLauncher",
        }
        with dg.instance_for_test(overrides={"run_launcher": launcher}) as instance:
            origin = InProcessCodeLocationOrigin(
                LoadableTargetOrigin(module_name=__name__, attribute="verdict_defs"), location_name="verdicts"
            )
            with WorkspaceProcessContext(instance, InProcessWorkspaceLoadTarget(origin)) as context:
                yield instance, context


def graphql(context: WorkspaceProcessContext, query: str, **variables) -> dict:
    result = execute_dagster_graphql(context.create_request_context(), query, variables)
    assert not result.errors, result.errors
    return result.data


LAUNCH_BACKFILL = """
mutation($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) {
  __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }
"""
BACKFILL = """
query($id: String!) { partitionBackfillOrError(backfillId: $id) { ... on PartitionBackfill { status
  partitionStatusCounts: assetBackfillData { assetBackfillStatuses { ... on AssetPartitionsStatusCounts {
    assetKey { path } numPartitionsTargeted numPartitionsMaterialized numPartitionsFailed } } } } } }
"""
RUNS = """
query($id: String!) { runsOrError(filter: {tags: [{key: "dagster/backfill", value: $id}]}) {
  ... on Runs { results { runId status tags { key value } } } } }
"""
PARTITIONS = """
{ assetNodeOrError(assetKey: {path: ["crypto_trades"]}) { ... on AssetNode { assetPartitionStatuses {
  ... on MultiPartitionStatuses { ranges { primaryDimStartKey primaryDimEndKey secondaryDim {
    ... on DefaultPartitionStatuses { materializedPartitions failedPartitions } } } } } } } }
"""
MATERIALIZATIONS = """
query($partitions: [String!]) { assetOrError(assetKey: {path: ["crypto_trades"]}) { ... on Asset {
  assetMaterializations(partitions: $partitions) { partition metadataEntries { label
    ... on TextMetadataEntry { text } ... on IntMetadataEntry { intValue } } } } } }
"""


def partition_statuses(context) -> dict[str, str]:
    """'day|venue' -> materialized | failed, as the partitions tab shows them."""
    ranges = graphql(context, PARTITIONS)["assetNodeOrError"]["assetPartitionStatuses"]["ranges"]
    out = {}
    for r in ranges:
        first, last = date.fromisoformat(r["primaryDimStartKey"]), date.fromisoformat(r["primaryDimEndKey"])
        days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
        for status, venues in (
            ("materialized", r["secondaryDim"]["materializedPartitions"]),
            ("failed", r["secondaryDim"]["failedPartitions"]),
        ):
            out.update({f"{day}|{venue}": status for day in days for venue in venues})
    return out


def latest_metadata(context, partition: str) -> dict:
    events = graphql(context, MATERIALIZATIONS, partitions=[partition])["assetOrError"][
        "assetMaterializations"
    ]
    entries = events[0]["metadataEntries"]  # the latest first
    return {e["label"]: e.get("text", e.get("intValue")) for e in entries}


def backfill(instance, context, partitions: list[str]) -> str:
    params = {
        "assetSelection": [{"path": ["crypto_trades"]}],
        "partitionNames": partitions,
        "fromFailure": False,
    }
    launched = graphql(context, LAUNCH_BACKFILL, params=params)["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    for _ in range(6):  # the daemons' iterations: the backfill's requests its runs, the queue's launches them
        list(execute_backfill_iteration(context, logging.getLogger("backfill")))
        for run in instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.QUEUED])):
            instance.launch_run(run.run_id, context.create_request_context())  # run here, to its end
        if instance.get_backfill(launched["backfillId"]).status.value.startswith("COMPLETED"):
            break
    return launched["backfillId"]


def test_a_venue_past_its_rest_reach_has_one_verdict_on_every_page_and_the_archive_fills_it_either_way(
    server, clickhouse, workspace
):
    instance, context = workspace
    past = f"{DAY}|BINANCE_UM"
    partitions = [f"{DAY}|{venue}" for venue in VENUES]
    backfill_id = backfill(instance, context, partitions)

    # the partitions tab: BINANCE_UM's day failed, the three others materialized
    statuses = partition_statuses(context)
    assert statuses == {p: "failed" if p == past else "materialized" for p in partitions}
    # the backfill page: failed, 3 of 4 materialized, 1 failed
    page = graphql(context, BACKFILL, id=backfill_id)["partitionBackfillOrError"]
    (counts,) = page["partitionStatusCounts"]["assetBackfillStatuses"]
    assert page["status"] == "COMPLETED_FAILED"
    assert [counts[f"numPartitions{n}"] for n in ("Targeted", "Materialized", "Failed")] == [4, 3, 1]
    # the run: failed, naming that partition, why, where its days come from and the command that loads them
    (run,) = graphql(context, RUNS, id=backfill_id)["runsOrError"]["results"]
    assert run["status"] == "FAILURE" and all(t["key"] != "marketdata/verdict" for t in run["tags"])
    (failure,) = [
        e.dagster_event.step_failure_data.user_failure_data
        for e in instance.all_logs(run["runId"], of_type=dg.DagsterEventType.STEP_FAILURE)
    ]
    why = (
        f"crypto_trades {past}: not loadable: 2 slice(s) past the venue's REST history, not fetched and "
        f"not stored: BINANCE_UM:BTCUSDT {DAY}, BINANCE_UM:ETHUSDT {DAY}. Loads from: BINANCE_UM trades "
        "(REST: 48 hours): data.binance.vision archives"
    )
    command = f"`marketdata backfill archives --start-date {DAY} --end-date {DAY}`"
    assert failure.description.startswith(f"1 partition(s) not stored (the others are): {why}")
    assert failure.description.endswith(command) and list(failure.metadata["not_stored"].value) == [
        f"crypto_trades {past}"
    ]

    # the CLI, the same day: FAILED naming the same partition and why, exit 1
    defs = verdict_defs()

    def here(label: str, **how):  # a launch of these definitions on the test's instance, as the CLI's
        return launch(label, defs.assets, instance=instance, resources=defs.resources, **how)

    cli = here(
        f"crypto {DAY}",
        selection=[TRADES],
        tags=day_range(DAY, VENUES[0], VENUES[-1]),
    )
    assert cli.state == "FAILED" and exit_code([cli]) == 1 and cli.failed_partitions == [past]
    assert cli.line().startswith(f"[FAILED] crypto {DAY}: 1 asset, 4 partitions, ")
    said = f"FAILED: crypto {DAY}: step crypto_ticks (partitions {past}): {failure.description}"
    assert cli.error_lines() == [f"{said} (run {cli.run_id[:8]})"]

    # the archive holds one of USD-M's two instruments: after the REST run (DAY), before one (ARCHIVE_FIRST)
    for day in (DAY, ARCHIVE_FIRST):
        archived = here(
            f"archives {day}",
            selection=[dg.AssetKey("binance_archive_trades")],
            partition_key=f"{day}|BINANCE_UM",
            run_config={"ops": {"binance_archives": {"config": {"instruments": ["BINANCE_UM:BTCUSDT"]}}}},
        )
        assert archived.success, archived.errors
    rest = here(
        f"crypto {ARCHIVE_FIRST}",
        selection=[TRADES],
        tags=day_range(ARCHIVE_FIRST, "BINANCE_UM", "BINANCE_UM"),
    )
    # a partial result: the run succeeded, its tag and line say partial, the command exits 4
    assert rest.state == "partial" and exit_code([rest]) == 4 and rest.rows == 0  # it loaded nothing itself
    assert instance.get_run_by_id(rest.run_id).tags["marketdata/verdict"] == "partial"
    assert rest.line().startswith(f"[partial] crypto {ARCHIVE_FIRST}: 1 asset, 1 partition, 0 rows")
    # the same stored state, the same partition status and verdict whichever load ran first
    statuses = partition_statuses(context)
    assert statuses[past] == statuses[f"{ARCHIVE_FIRST}|BINANCE_UM"] == "materialized"
    after, before = (latest_metadata(context, f"{day}|BINANCE_UM") for day in (DAY, ARCHIVE_FIRST))
    missing = "1 slice(s) past the venue's REST history, not fetched and not stored: BINANCE_UM:ETHUSDT"
    assert after["verdict"] == before["verdict"] == "partial"
    assert after["partial"].startswith(f"{missing} {DAY}. Loads from: BINANCE_UM trades (REST: 48 hours)")
    assert before["partial"] == after["partial"].replace(str(DAY), str(ARCHIVE_FIRST))
    assert after["rows_stored"] == before["rows_stored"] == 40  # the archive's rows of BTCUSDT
    assert rest.partial == [f"crypto_trades: {before['partial']}"]
