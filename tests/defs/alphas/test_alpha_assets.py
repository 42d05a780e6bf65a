"""The alpha assets end to end: replay API -> landing files -> MongoDB -> packages and back, with
the sensor, the schedule and the catch-up backfill. Real MongoDB-wire server, real HTTP."""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from marketdata_assets.apps.launch import reported_rows
from marketdata_assets.datasets.alpha_files import iter_alpha_files, read_alpha_file
from marketdata_assets.defs.alphas import sensors
from marketdata_assets.defs.alphas.assets import (
    alpha_documents,
    alpha_files,
    alpha_package_drops,
    alpha_packages,
    alpha_store,
)
from marketdata_assets.defs.alphas.checks import alpha_checks
from marketdata_assets.defs.alphas.schedules import alpha_fetch_daily
from marketdata_assets.ingest.alphas.packages import build_package
from marketdata_assets.replay.alpha_api import AlphaReplayServer, ReplayAccount, ReplayConfig
from marketdata_assets.resources import AlphaApiResource, AlphaStoreResource
from marketdata_assets.sources.alpha_api import credential_vars
from marketdata_assets.stores.mongo.alphas import LEDGER, collection_digest

NY = ZoneInfo("America/New_York")
MONTH, MONTH_KEY = "2025-07", "2025-07-01"
ACCOUNTS = {"main": 90, "research": 40}
PASSWORDS = {"main": "Main-pw!7d1e", "research": "Research-pw!a0b2"}


@pytest.fixture(scope="module")
def replay():
    accounts = [
        ReplayAccount(name, f"{name}@example.com", PASSWORDS[name], alphas=n) for name, n in ACCOUNTS.items()
    ]
    config = ReplayConfig(seed=11, accounts=accounts, start_month="2025-06", months=2)
    with AlphaReplayServer(config) as server:
        yield server


@pytest.fixture
def server(replay):
    yield replay
    replay.set_faults(
        reset_counters=True, latency_s=0, rate_limit_every=0, server_error_every=0, truncate_every=0
    )
    for name in ACCOUNTS:
        replay.require_persona(name, False)


@pytest.fixture
def landing(tmp_path, monkeypatch):
    """A state dir of our own: landing area, packages and quarantine; account credentials."""
    monkeypatch.setenv("MARKETDATA_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("ALPHA_LANDING_DIR", str(tmp_path / "landing"))
    monkeypatch.setenv("ALPHA_PACKAGES_DIR", str(tmp_path / "packages"))
    for name, password in PASSWORDS.items():
        user_var, password_var = credential_vars(name)
        monkeypatch.setenv(user_var, f"{name}@example.com")
        monkeypatch.setenv(password_var, password)
    return tmp_path / "landing"


@pytest.fixture
def resources(server, mongo, mongo_db_name):
    store = AlphaStoreResource(
        uri=mongo.uri, db_name_regular=f"{mongo_db_name}_r", db_name_super=f"{mongo_db_name}_s"
    )
    yield {
        "alpha_api": AlphaApiResource(
            base_url=server.base_url, accounts="main,research", backoff_base_s=0.01
        ),
        "alpha_store": store,
        "mongo": mongo,
    }
    for name in (store.db_name_regular, store.db_name_super):
        mongo.client.drop_database(name)


def materialize(assets, resources, partition_key=None, run_config=None, raise_on_error=True, **kw):
    return dg.materialize(
        assets,
        resources=resources,
        partition_key=partition_key,
        run_config=run_config,
        raise_on_error=raise_on_error,
        instance=kw.pop("instance", None),
        **kw,
    )


IMPORT = [alpha_documents, *alpha_checks]
ALL_UPSTREAM = [
    alpha_files.to_source_asset(),
    alpha_package_drops.to_source_asset(),
    alpha_store.to_source_asset(),
]


def fetch(resources, account="main", month=MONTH_KEY, **kw):
    return materialize(
        [alpha_files], resources, dg.MultiPartitionKey({"month": month, "account": account}), **kw
    )


def import_month(resources, month=MONTH_KEY, mode="incremental", **config):
    return materialize(
        [*IMPORT, *ALL_UPSTREAM],
        resources,
        month,
        run_config={"ops": {"alpha_documents": {"config": {"mode": mode, **config}}}},
    )


def metadata(result, key: str) -> dict:
    (event,) = [e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == key]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def collections(resources):
    store = resources["alpha_store"]
    return store.database_for("regular")[store.collection], store.database_for("super")[store.collection]


def truth_by_type(server, account, month=MONTH):
    return {t: set(server.truth(account, month, t)) for t in ("REGULAR", "SUPER")}


def test_fetch_lands_each_alpha_as_a_file_and_refetch_rewrites_only_changes(server, landing, resources):
    with dg.instance_for_test() as instance:
        result = fetch(resources, "main", instance=instance)
        logs = " ".join(entry.user_message for entry in instance.all_logs(result.run_id))
    assert "main 2025-07:" in logs  # the run's own log lines are in there
    truth = truth_by_type(server, "main")
    meta = metadata(result, "alpha_files")
    for alpha_type, ids in truth.items():
        files = {p.stem for p in iter_alpha_files(landing, alpha_type, MONTH, "main")}
        assert files == ids and ids
    assert meta["alphas_fetched"] == meta["files_written"] == sum(len(v) for v in truth.values())
    logged = logs + json.dumps(meta, default=str)
    assert PASSWORDS["main"] not in logged and "Basic " not in logged
    assert meta["requests"] >= 2 and meta["files_quarantined"] == 0
    one = next(iter_alpha_files(landing, "REGULAR", MONTH, "main"))
    before = one.stat().st_mtime_ns

    again = metadata(fetch(resources, "main"), "alpha_files")
    assert again["files_written"] == 0 and again["files_unchanged"] == meta["files_written"]
    assert one.stat().st_mtime_ns == before
    # another account lands in its own directory
    fetch(resources, "research")
    assert {p.stem for p in iter_alpha_files(landing, None, MONTH, "research")} == set().union(
        *truth_by_type(server, "research").values()
    )


def test_fetch_survives_429s_5xx_and_truncated_bodies(server, landing, resources):
    server.set_faults(
        reset_counters=True, rate_limit_every=2, retry_after="0.05", server_error_every=3, truncate_every=5
    )
    meta = metadata(fetch(resources, "research"), "alpha_files")
    assert meta["rate_limited_429"] >= 1 and meta["server_errors_5xx"] >= 1 and meta["retries"] >= 2
    assert {p.stem for p in iter_alpha_files(landing, None, MONTH, "research")} == set().union(
        *truth_by_type(server, "research").values()
    )


def test_persona_check_fails_the_partition_without_retries(server, landing, resources):
    server.require_persona("main")
    result = fetch(resources, "main", raise_on_error=False)
    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    message = failure.event_specific_data.error.message
    assert "persona" in message and "main" in message and PASSWORDS["main"] not in message
    assert not any(e.event_type_value == "STEP_UP_FOR_RETRY" for e in result.all_events)


def written_rows(result) -> int:
    """What the console line of the run says was written (apps.launch counts it from the metadata)."""
    return reported_rows(
        [e.event_specific_data.materialization for e in result.get_asset_materialization_events()]
    )


def test_import_matches_the_api_and_every_check_passes(server, landing, resources):
    fetch(resources, "main")
    fetch(resources, "research")
    result = import_month(resources)
    regular, super_ = collections(resources)
    truth = {
        t: truth_by_type(server, "main")[t] | truth_by_type(server, "research")[t]
        for t in ("REGULAR", "SUPER")
    }
    assert {d["_id"] for d in regular.find({}, {"_id": 1})} == truth["REGULAR"]
    assert {d["_id"] for d in super_.find({}, {"_id": 1})} == truth["SUPER"]
    stored = regular.find_one({"_id": min(truth["REGULAR"])})
    assert stored["_dates"]["dateCreated"].tzinfo is not None
    assert stored["regular"]["code"] and stored["settings"]["region"]
    meta = metadata(result, "regular_alphas")
    assert meta["inserted"] == len(truth["REGULAR"]) and meta["run_files_quarantined"] == 0
    assert metadata(result, "super_alphas")["inserted"] == len(truth["SUPER"])
    assert meta["documents_written"] == len(truth["REGULAR"])
    assert written_rows(result) == len(truth["REGULAR"]) + len(
        truth["SUPER"]
    )  # the CLI's and make run's count
    checks = result.get_asset_check_evaluations()
    assert len(checks) == 8 and all(c.passed for c in checks), [
        (c.check_name, c.metadata) for c in checks if not c.passed
    ]

    # nothing changed: every file is skipped by the ledger
    again = import_month(resources)
    assert metadata(again, "regular_alphas")["run_files_skipped"] == len(
        list(iter_alpha_files(landing, "REGULAR", MONTH))
    )
    assert metadata(again, "regular_alphas")["inserted"] == 0 and written_rows(again) == 0
    from marketdata_assets.apps.launch import UNCHANGED_KEYS, reported_rows

    skipped = len(list(iter_alpha_files(landing, None, MONTH)))  # what the console says beside its 0 rows
    assert (
        reported_rows(
            [e.event_specific_data.materialization for e in again.get_asset_materialization_events()],
            UNCHANGED_KEYS,
        )
        == skipped
        == len(truth["REGULAR"]) + len(truth["SUPER"])
    )

    # a document lost behind the ledger's back, and one no import wrote: the ledger check names both
    lost = min(truth["REGULAR"])
    stray = {**regular.find_one({"_id": lost}), "_id": "STRAY01", "id": "STRAY01"}
    regular.delete_one({"_id": lost})
    regular.insert_one(stray)
    (ledger_check,) = [
        c
        for c in import_month(resources).get_asset_check_evaluations()
        if c.asset_key.to_user_string() == "regular_alphas" and c.check_name == "documents_match_ledger"
    ]
    found = {k: v.value for k, v in ledger_check.metadata.items()}
    assert not ledger_check.passed
    assert (found["in_ledger_not_stored"], found["stored_not_in_ledger"]) == ([lost], ["STRAY01"])


def test_import_modes_through_run_config(server, landing, resources):
    fetch(resources, "main")
    import_month(resources)
    regular, _ = collections(resources)
    path = next(iter_alpha_files(landing, "REGULAR", MONTH, "main"))
    alpha, _ = read_alpha_file(path)
    stored_before = regular.find_one({"_id": alpha["id"]})
    # the file loses a field and changes another: overwrite keeps the old field, rebuild drops it
    changed = {k: v for k, v in alpha.items() if k != "color"}
    changed["name"] = "renamed"
    changed["dateModified"] = "2031-08-03T10:00:00-04:00"  # alone in the window below
    path.write_text(json.dumps(changed))

    overwrite = import_month(resources, mode="overwrite")
    doc = regular.find_one({"_id": alpha["id"]})
    assert doc["name"] == "renamed" and doc["color"] == stored_before["color"]
    assert metadata(overwrite, "regular_alphas")["merged"] == 1
    assert metadata(overwrite, "regular_alphas")["unchanged"] >= 1

    time_range = import_month(
        resources, mode="time_range", start="2031-08-01T00:00:00-04:00", end="2031-08-04T00:00:00-04:00"
    )
    assert (
        metadata(time_range, "regular_alphas")["run_alphas_filtered_out"]
        == len(list(iter_alpha_files(landing, "REGULAR", MONTH))) - 1
    )

    rebuild = import_month(resources, mode="rebuild")
    doc = regular.find_one({"_id": alpha["id"]})
    assert "color" not in doc and doc["name"] == "renamed"
    assert metadata(rebuild, "regular_alphas")["replaced"] == len(
        list(iter_alpha_files(landing, "REGULAR", MONTH))
    )

    bad = dg.materialize(
        [*IMPORT, *ALL_UPSTREAM],
        resources=resources,
        partition_key=MONTH_KEY,
        raise_on_error=False,
        run_config={"ops": {"alpha_documents": {"config": {"mode": "time_range"}}}},
    )
    assert not bad.success


def test_bad_files_are_quarantined_with_reasons_and_the_rest_imports(server, landing, resources, tmp_path):
    fetch(resources, "main")
    directory = landing / "alphas" / "REGULAR" / MONTH / "main"
    good = len(list(directory.glob("*.json")))
    (directory / "Trunc001.json").write_text('{"id": "Trunc001", "type": "REGULAR", "dateCr')
    (directory / "NoIdAlph.json").write_text(
        json.dumps({"type": "REGULAR", "dateCreated": "2025-07-02T10:00:00-04:00"})
    )
    other = landing / "alphas" / "POWER_POOL" / MONTH / "main"
    other.mkdir(parents=True)
    (other / "Power001.json").write_text(
        json.dumps({"id": "Power001", "type": "POWER_POOL", "dateCreated": "2025-07-02T10:00:00-04:00"})
    )
    result = import_month(resources)
    meta = metadata(result, "regular_alphas")
    assert meta["run_files_quarantined"] == 3 and meta["inserted"] == good
    quarantine = tmp_path / "state" / "quarantine" / "alphas"
    reasons = {p.name: p.read_text() for p in quarantine.rglob("*.reason.txt")}
    assert set(reasons) == {
        "Trunc001.json.reason.txt",
        "NoIdAlph.json.reason.txt",
        "Power001.json.reason.txt",
    }
    assert "missing id" in reasons["NoIdAlph.json.reason.txt"]
    assert "unsupported type 'POWER_POOL'" in reasons["Power001.json.reason.txt"]
    assert not (directory / "Trunc001.json").exists()
    assert collections(resources)[0].count_documents({}) == good


def test_flags_and_rejects_of_item_9_are_in_the_run_metadata(server, landing, resources, tmp_path):
    """A file named for another alpha, a field of the wrong kind and a key twice with different values
    are quarantined; a key twice with the same value and a BOM are imported and counted as flags."""
    fetch(resources, "main")
    directory = landing / "alphas" / "REGULAR" / MONTH / "main"
    files = sorted(directory.glob("*.json"))
    good = len(files)
    alphas = [json.loads(path.read_text()) for path in files[:5]]
    files[0].write_text(json.dumps({**alphas[0], "id": "Renamed1"}))  # name != id
    files[1].write_text(json.dumps({**alphas[1], "status": {"state": "ACTIVE"}}))  # wrong kind
    files[2].write_text('{"id": "Other12", ' + json.dumps(alphas[2])[1:])  # id twice, different
    files[3].write_text('{"type": "REGULAR", ' + json.dumps(alphas[3])[1:])  # type twice, the same
    files[4].write_bytes(b"\xef\xbb\xbf" + json.dumps(alphas[4]).encode())  # a UTF-8 BOM
    meta = metadata(import_month(resources), "regular_alphas")
    assert (meta["run_files_quarantined"], meta["run_files_flagged"], meta["inserted"]) == (3, 2, good - 3)
    assert "disagrees with the alpha's id 'Renamed1' (expected Renamed1.json)" in meta["quarantined"]
    assert "status: expected a string or null, got an object" in meta["quarantined"]
    assert "duplicate key 'id' with different values ('Other12', then " in meta["quarantined"]
    assert "duplicate key 'type' with the same value twice, kept once" in meta["flagged"]
    assert "UTF-8 byte order mark ignored" in meta["flagged"]
    assert collections(resources)[0].count_documents({}) == good - 3


def test_packages_round_trip_through_the_landing_area(server, landing, resources, tmp_path, monkeypatch):
    fetch(resources, "main")
    fetch(resources, "research")
    import_month(resources)
    built = materialize(
        [alpha_packages, *[dg.AssetSpec(k) for k in ("regular_alphas", "super_alphas")]], resources, MONTH_KEY
    )
    meta = metadata(built, "alpha_packages")
    assert meta["packages"] == 4 and meta["alphas_packaged"] == len(
        list(iter_alpha_files(landing, None, MONTH))
    )
    digests = [collection_digest(c) for c in collections(resources)]
    originals = {p.relative_to(landing): p.read_bytes() for p in iter_alpha_files(landing, None, MONTH)}

    # a fresh landing area that only receives the packages: decomposed, imported, identical
    fresh = tmp_path / "fresh"
    monkeypatch.setenv("ALPHA_LANDING_DIR", str(fresh))
    shutil.copytree(tmp_path / "packages", fresh / "packages")
    for collection in collections(resources):
        collection.drop()
    resources["alpha_store"].databases()[0][LEDGER].drop()
    result = materialize(
        [alpha_package_drops, *IMPORT, alpha_files.to_source_asset(), alpha_store.to_source_asset()],
        resources,
        MONTH_KEY,
    )
    assert metadata(result, "alpha_package_drops")["packages_decomposed"] == 4
    assert {p.relative_to(fresh): p.read_bytes() for p in iter_alpha_files(fresh, None, MONTH)} == originals
    assert [collection_digest(c) for c in collections(resources)] == digests

    # a corrupt package is quarantined whole; the others still decompose
    package = next((fresh / "packages").rglob("*.jsonl.gz"))
    package.write_bytes(package.read_bytes()[:-20])
    again = metadata(materialize([alpha_package_drops], resources, MONTH_KEY), "alpha_package_drops")
    assert again["packages_quarantined"] == 1 and again["packages_decomposed"] == 3
    assert not package.exists()


def sensor_context(instance, cursor=None):
    return dg.build_sensor_context(instance=instance, cursor=cursor)


def test_landing_sensor_requests_the_changed_months_once(server, landing, resources):
    fetch(resources, "main")
    with dg.instance_for_test() as instance:
        first = sensors.alpha_landing_files(sensor_context(instance))
        assert [
            (r.partition_key, sorted(k.to_user_string() for k in r.asset_selection))
            for r in first.run_requests
        ] == [(MONTH_KEY, ["alpha_packages", "regular_alphas", "super_alphas"])]
        quiet = sensors.alpha_landing_files(sensor_context(instance, first.cursor))
        assert quiet.run_requests == []
        # an alpha file of another month, and a package of the first month dropped in
        fetch(resources, "main", month="2025-06-01")
        build_package(
            list(iter_alpha_files(landing, "REGULAR", MONTH, "main")), landing / "packages" / "drops"
        )
        later = sensors.alpha_landing_files(sensor_context(instance, quiet.cursor))
        requested = {
            r.partition_key: sorted(k.to_user_string() for k in r.asset_selection) for r in later.run_requests
        }
        assert requested == {
            "2025-06-01": ["alpha_packages", "regular_alphas", "super_alphas"],
            MONTH_KEY: ["alpha_package_drops", "alpha_packages", "regular_alphas", "super_alphas"],
        }
        # an import of June started after its files were written (what `make run` leaves): a sensor
        # starting from scratch asks only for the month whose import didn't run since
        materialize([alpha_documents, *ALL_UPSTREAM], resources, "2025-06-01", instance=instance)
        fresh = sensors.alpha_landing_files(sensor_context(instance))
        assert [r.partition_key for r in fresh.run_requests] == [MONTH_KEY]


def test_landing_sensor_stops_at_its_budget_and_resumes_without_losing_a_file(
    server, landing, resources, monkeypatch
):
    fetch(resources, "main")
    fetch(resources, "main", month="2025-06-01")
    monkeypatch.setattr(sensors, "TIME_BUDGET_S", 0.0)  # one change per evaluation
    months, cursor, evaluations = set(), None, 0
    total = len(list(iter_alpha_files(landing)))
    with dg.instance_for_test() as instance:
        while True:
            result = sensors.alpha_landing_files(sensor_context(instance, cursor))
            if result.cursor == cursor:
                break
            cursor, evaluations = result.cursor, evaluations + 1
            months.update(r.partition_key for r in result.run_requests)
    assert evaluations == total and months == {"2025-06-01", MONTH_KEY}


def test_daily_fetch_schedule_requests_every_account_and_the_previous_month_early_on():
    with dg.build_schedule_context(
        scheduled_execution_time=datetime(2025, 7, 2, 6, 30, tzinfo=NY)
    ) as context:
        requests = alpha_fetch_daily(context)
    assert sorted(str(r.partition_key) for r in requests) == sorted(
        f"{a}|{m}" for a in ("main", "research") for m in ("2025-06-01", "2025-07-01")
    )
    with dg.build_schedule_context(
        scheduled_execution_time=datetime(2025, 7, 20, 6, 30, tzinfo=NY)
    ) as context:
        assert sorted(str(r.partition_key) for r in alpha_fetch_daily(context)) == [
            "main|2025-07-01",
            "research|2025-07-01",
        ]


def test_catch_up_backfills_missing_and_failed_partitions_of_the_last_months(server, landing, resources):
    from marketdata_assets.definitions import defs

    definitions = defs()
    now = datetime.now(NY)
    last_complete = sensors.alpha_months.get_partition_keys(current_time=now)[-2]
    with dg.instance_for_test() as instance:
        # one complete month fully fetched and imported: it is not requested again
        for account in ("main", "research"):
            fetch(resources, account, month=last_complete, instance=instance)
        dg.materialize(
            [alpha_documents, *ALL_UPSTREAM],
            resources=resources,
            partition_key=last_complete,
            instance=instance,
        )
        context = dg.build_sensor_context(instance=instance, definitions=definitions)
        result = sensors.alpha_monthly_catchup(context)
        (request,) = result.run_requests
        subset = request.asset_graph_subset
        fetches = {str(k) for k in subset.get_partitions_subset(alpha_files.key).get_partition_keys()}
        imports = set(subset.get_partitions_subset(dg.AssetKey("regular_alphas")).get_partition_keys())
        assert len(fetches) == 2 * (sensors.CATCHUP_MONTHS - 1) and not any(
            last_complete in k for k in fetches
        )
        assert len(imports) == sensors.CATCHUP_MONTHS - 1 and last_complete not in imports
        assert sensors.alpha_monthly_catchup(
            dg.build_sensor_context(instance=instance, definitions=definitions, cursor=result.cursor)
        ).skip_message


def test_import_metadata_draws_the_alphas_created_per_day(server, landing, resources):
    import base64
    import re

    fetch(resources, "main")
    meta = metadata(import_month(resources), "regular_alphas")
    payload = re.search(r"base64,([A-Za-z0-9+/=]+)\)", meta["alphas_created"]).group(1)
    svg = base64.b64decode(payload).decode()
    counts = [int(n) for n in re.findall(r"<title>\d\d-\d\d: (\d+)</title>", svg)]
    assert len(counts) == 31 and sum(counts) == len(truth_by_type(server, "main")["REGULAR"])


def test_coverage_draws_stored_over_listed_per_account_month_and_names_what_is_missing(
    server, landing, resources
):
    import base64
    import re

    from marketdata_assets.datasets.alpha_files import read_listing
    from marketdata_assets.defs.alphas.coverage import alphas_coverage, recent_months

    assert recent_months(3, datetime(2026, 1, 15, tzinfo=NY)) == ["2025-11", "2025-12", "2026-01"]
    months = len(recent_months(400, datetime.now(NY))) - recent_months(400, datetime.now(NY)).index(MONTH)
    config = {"ops": {"alphas_coverage": {"config": {"months": months}}}}
    truth = {a: set().union(*truth_by_type(server, a).values()) for a in ACCOUNTS}

    def cover():
        meta = metadata(materialize([alphas_coverage], resources, run_config=config), "alphas_coverage")
        svg = base64.b64decode(re.search(r"base64,([A-Za-z0-9+/=]+)\)", meta["heat_map"]).group(1)).decode()
        return meta, dict(re.findall(r"<title>(\w+ \d\d-\d\d): ([^<]+)</title>", svg))

    for account in ACCOUNTS:
        fetch(resources, account)
    listing = read_listing(landing, MONTH, "main")
    assert (
        listing["listed"] == len(truth["main"])
        and set().union(*map(set, listing["ids"].values())) == truth["main"]
    )
    meta, cells = cover()  # fetched, nothing imported yet
    assert meta["alphas_expected"] == sum(map(len, truth.values())) and meta["alphas_stored"] == 0
    assert meta["incomplete_account_months"] == 2 and cells["main 25-07"] == "0.0%"
    assert cells["main 25-08"] == "not expected"

    import_month(resources)
    meta, cells = cover()
    assert (
        meta["overall_percent"] == 100
        and meta["incomplete_account_months"] == 0
        and meta["files_not_listed"] == 0
    )
    assert cells["main 25-07"] == cells["research 25-07"] == "100.0%"

    # a document lost from MongoDB; a file the API no longer lists; a month that only has files
    regular, _ = collections(resources)
    lost = min(truth_by_type(server, "main")["REGULAR"])
    regular.delete_one({"_id": lost})
    one = next(iter_alpha_files(landing, "REGULAR", MONTH, "research"))
    shutil.copy(one, one.with_name("Zombie01.json"))
    unfetched = landing / "alphas" / "REGULAR" / "2025-08" / "main"
    unfetched.mkdir(parents=True)
    shutil.copy(one, unfetched / "Orphan01.json")
    meta, cells = cover()
    assert meta["incomplete_account_months"] == 2 and meta["files_not_listed"] == 1
    assert meta["alphas_expected"] == sum(map(len, truth.values())) + 1
    assert meta["alphas_stored"] == sum(map(len, truth.values())) - 1
    assert cells["main 25-07"] == f"{(len(truth['main']) - 1) / len(truth['main']):.1%}"
    assert cells["research 25-07"] == "100.0%" and cells["main 25-08"] == "0.0%"
    assert (
        f"| main | {MONTH} | {len(truth['main'])} | {len(truth['main']) - 1} | 0 | {lost} |"
        in meta["heat_map"]
    )
    assert "| main | 2025-08 | 1 (files; never fetched) | 0 | 0 | Orphan01 |" in meta["heat_map"]


def test_a_range_of_months_carries_each_months_own_counts(server, landing, resources, tmp_path):
    months = {"2025-06-01": "2025-06", MONTH_KEY: MONTH}
    for key in months:
        fetch(resources, "main", month=key)
    result = materialize(
        [*IMPORT, *ALL_UPSTREAM],
        resources,
        tags={
            "dagster/asset_partition_range_start": "2025-06-01",
            "dagster/asset_partition_range_end": MONTH_KEY,
        },
    )
    events = [
        e
        for e in result.get_asset_materialization_events()
        if e.asset_key.to_user_string() == "regular_alphas"
    ]
    own = {e.partition: {k: v.value for k, v in e.materialization.metadata.items()} for e in events}
    assert set(own) == set(months)
    truth = {key: len(server.truth("main", month, "REGULAR")) for key, month in months.items()}
    assert len(set(truth.values())) == 2 and all(truth.values())  # the months differ: each shows its own
    for key, month in months.items():
        assert (
            own[key]["month"] == month and own[key]["inserted"] == own[key]["documents_written"] == truth[key]
        )
        assert own[key]["files"] == truth[key] and own[key]["run_inserted"] == sum(truth.values())
    supers = sum(len(server.truth("main", month, "SUPER")) for month in months.values())
    assert written_rows(result) == sum(truth.values()) + supers  # the months summed, each once

    # the packages of the range, and their drops decomposed again: each month its own packages
    tags = {
        "dagster/asset_partition_range_start": "2025-06-01",
        "dagster/asset_partition_range_end": MONTH_KEY,
    }
    built = materialize(
        [alpha_packages, *[dg.AssetSpec(k) for k in ("regular_alphas", "super_alphas")]], resources, tags=tags
    )
    files = {key: len(list(iter_alpha_files(landing, None, month))) for key, month in months.items()}
    for key, meta in by_partition(built, "alpha_packages").items():
        assert meta["packages"] == 2 and meta["alphas_packaged"] == files[key]  # REGULAR and SUPER of "main"
        assert meta["run_packages"] == 4 and meta["run_alphas_packaged"] == sum(files.values())
    shutil.copytree(tmp_path / "packages", landing / "packages", dirs_exist_ok=True)
    dropped = materialize([alpha_package_drops], resources, tags=tags)
    for key, meta in by_partition(dropped, "alpha_package_drops").items():
        assert (
            meta["packages_decomposed"] == 2
            and meta["files_unchanged"] == files[key]
            and meta["files_written"] == 0
        )
        assert meta["run_packages_decomposed"] == 4 and meta["run_partitions"] == 2


def by_partition(result, key: str) -> dict[str, dict]:
    events = [e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == key]
    return {e.partition: {k: v.value for k, v in e.materialization.metadata.items()} for e in events}
