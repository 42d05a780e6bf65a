"""Each resource against its real server: connect, DDL, round trip, and a clear error fast when
the server is not there."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime

import pyarrow as pa
import pymongo
import pytest

from marketdata_assets.core import settings
from marketdata_assets.core.errors import StoreUnavailable
from marketdata_assets.resources import ClickHouseResource, MongoResource, TimescaleResource
from marketdata_assets.resources.clickhouse import EmbeddedLockTimeout
from tests.conftest import free_port

SECRET = "s3cr3t-Pa55word"


# --- MongoDB ---------------------------------------------------------------------------------


def test_mongo_round_trip_and_indexes(mongo, mongo_db_name):
    collection = mongo.database(mongo_db_name)["alphas"]
    names = mongo.ensure_indexes(collection, [pymongo.IndexModel([("id", 1)], name="id", unique=True)])
    assert names == ["id"]
    assert mongo.ensure_indexes(collection, [pymongo.IndexModel([("id", 1)], name="id", unique=True)]) == [
        "id"
    ]
    created = datetime(2025, 7, 18, 23, 32, 42, tzinfo=UTC)
    collection.insert_one({"id": "abc1234", "settings": {"region": "USA"}, "dateCreated": created})
    with pytest.raises(pymongo.errors.DuplicateKeyError):
        collection.insert_one({"id": "abc1234"})
    stored = collection.find_one({"id": "abc1234"}, {"_id": 0})
    assert stored == {"id": "abc1234", "settings": {"region": "USA"}, "dateCreated": created}
    assert mongo.server_version().split(".")[0].isdigit()


def test_mongo_stopped_server_fails_fast_with_address(tmp_path):
    """A real server, started then killed: the next connect names host:port and the fix, quickly."""
    port = free_port()
    server = subprocess.Popen(
        [
            str(__import__("pathlib").Path(sys.executable).parent / "secantusd-py"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--storage-path",
            str(tmp_path),
            "--log-level",
            "ERROR",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with pymongo.MongoClient(f"mongodb://127.0.0.1:{port}", serverSelectionTimeoutMS=30_000) as probe:
            probe.admin.command("ping")  # up (this server takes no credentials)
    finally:
        server.kill()
        server.wait()
    resource = MongoResource(
        uri=f"mongodb://127.0.0.1:{port}", username="quant", password=SECRET, server_selection_timeout_ms=2000
    )
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as error:
        resource.connect()
    assert time.monotonic() - started < 10
    message = str(error.value)
    assert f"127.0.0.1:{port}" in message and "make stack-up" in message
    assert SECRET not in message


# --- TimescaleDB -----------------------------------------------------------------------------


def test_timescale_probe_ddl_and_round_trip(timescale):
    caps = timescale.capabilities
    assert caps.extension_version and caps.extension_version.startswith("2.")
    assert caps.license == "apache" and not caps.continuous_aggregates  # the native build is Apache-only
    assert caps.copy_from_stdin and not caps.single_session
    ddl = """
        CREATE TABLE IF NOT EXISTS resource_probe (time timestamp NOT NULL, code text NOT NULL, \
close double precision);
        SELECT create_hypertable('resource_probe', 'time', if_not_exists => TRUE);
    """
    for _ in range(2):  # idempotent
        with timescale.connection() as conn:
            conn.execute(ddl)
    with timescale.connection() as conn:
        conn.execute("TRUNCATE resource_probe")
        with conn.cursor().copy("COPY resource_probe (time, code, close) FROM STDIN") as copy:
            copy.write_row((datetime(2024, 1, 31, 14, 59), "600000.SH", 7.5))
            copy.write_row((datetime(2024, 2, 1, 9, 31), "600000.SH", -1.25))
    with timescale.connection() as conn:
        rows = conn.execute("""SELECT time_bucket('1 month', time) AS month, code, last(close, time)
                               FROM resource_probe GROUP BY 1, 2 ORDER BY 1""").fetchall()
    assert rows == [(datetime(2024, 1, 1), "600000.SH", 7.5), (datetime(2024, 2, 1), "600000.SH", -1.25)]


def test_timescale_stopped_server_fails_fast_without_password():
    port = free_port()
    resource = TimescaleResource(
        host="127.0.0.1", port=port, password=SECRET, dbname="marketdata", connect_timeout_s=3
    )
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as error:
        resource.open()
    assert time.monotonic() - started < 10
    message = str(error.value)
    assert f"127.0.0.1:{port}" in message and "database marketdata" in message and "make stack-up" in message
    assert SECRET not in message


# --- ClickHouse ------------------------------------------------------------------------------


def test_clickhouse_embedded_ddl_and_arrow_round_trip(clickhouse):
    ddl = f"""CREATE TABLE IF NOT EXISTS `{clickhouse.database}`.trades_probe
              (ts DateTime64(6, 'UTC'), instrument LowCardinality(String), price Float64, qty Float64)
              ENGINE = ReplacingMergeTree ORDER BY (instrument, ts)"""
    with clickhouse.get_client() as client:
        client.command(ddl)
        client.command(ddl)  # idempotent
        table = pa.table(
            {
                "ts": pa.array(
                    [datetime(2025, 1, 1, 0, 0, 0, 123456), datetime(2025, 1, 1, 0, 0, 1)], pa.timestamp("us")
                ),
                "instrument": ["BINANCE:BTCUSDT", "BINANCE:BTCUSDT"],
                "price": [93500.5, 93501.0],
                "qty": [0.01, 0.5],
            }
        )
        client.insert_arrow(f"{clickhouse.database}.trades_probe", table)
        rows = client.query(
            f"SELECT toString(ts), instrument, price FROM `{clickhouse.database}`.trades_probe ORDER BY ts"
        ).result_rows
    assert rows == [
        ("2025-01-01 00:00:00.123456", "BINANCE:BTCUSDT", 93500.5),
        ("2025-01-01 00:00:01.000000", "BINANCE:BTCUSDT", 93501.0),
    ]
    assert clickhouse.embedded


def test_clickhouse_two_resources_in_one_process_share_the_engine(clickhouse_dsn):
    first = ClickHouseResource(dsn=clickhouse_dsn, database="shared_probe", lock_timeout_s=2)
    second = ClickHouseResource(dsn=clickhouse_dsn, database="shared_probe", lock_timeout_s=2)
    try:
        with first.get_client() as a, second.get_client() as b:
            assert a.command("SELECT 1") == b.command("SELECT 2") - 1
    finally:
        first.close()
        second.close()


def test_clickhouse_embedded_directory_held_by_another_process(tmp_path, capfd):
    """A second process can't open a data directory in use: a clear error naming the holder."""
    data_dir = tmp_path / "ch"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
        import sys, time
        from marketdata_assets.resources import ClickHouseResource
        r = ClickHouseResource(dsn="chdb://{data_dir}")
        with r.get_client() as c:
            c.command("SELECT 1")
            print("ready", flush=True)
            time.sleep(60)
    """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        resource = ClickHouseResource(dsn=f"chdb://{data_dir}", lock_timeout_s=1)
        with pytest.raises(EmbeddedLockTimeout) as error, resource.get_client():
            pass
        assert str(holder.pid) in str(error.value) and str(data_dir) in str(error.value)
        said = (
            capfd.readouterr().err
        )  # the wait was on the console at once: where, who, how long, how to stop
        assert f"waiting for the embedded ClickHouse at {data_dir}: held by pid {holder.pid}" in said
        assert "up to 1 s" in said and "Ctrl-C stops" in said
        # a wait that ends: one line when the holder is gone (the waiter a fresh process: chDB is one embedded
        # engine a process, and this test's worker may have opened one at another path already)
        patient = subprocess.Popen(
            [
                sys.executable,
                "-c",
                textwrap.dedent(f"""
            from marketdata_assets.resources import ClickHouseResource
            patient = ClickHouseResource(dsn="chdb://{data_dir}", lock_timeout_s=60)
            with patient.get_client() as client:
                print(client.command("SELECT 1"), flush=True)
            patient.close()
        """),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        first = patient.stderr.readline()  # it waits (said at once), then the holder goes
        threading.Timer(0.5, holder.kill).start()
        out, err = patient.communicate(timeout=90)
        assert patient.returncode == 0 and out.strip() == "1", err[-2000:]
        lines = [first, *err.splitlines()]
        assert [line for line in lines if "is free after" in line] and sum(
            "waiting for" in x for x in lines
        ) == 1
    finally:
        holder.kill()
        holder.wait()
    assert ClickHouseResource(dsn="chdb://memory").lock_timeout_s == 300  # minutes, not a quarter of an hour


def test_clickhouse_server_dsn_stopped_fails_fast_without_password():
    port = free_port()
    resource = ClickHouseResource(dsn=f"http://127.0.0.1:{port}", password=SECRET, connect_timeout_s=2)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as error, resource.get_client():
        pass
    assert time.monotonic() - started < 10
    assert f"127.0.0.1:{port}" in str(error.value) and SECRET not in str(error.value)


# --- configuration ---------------------------------------------------------------------------


def test_secrets_travel_as_env_var_names_not_values(monkeypatch):
    import dagster as dg

    from marketdata_assets.resources import build_resources

    monkeypatch.setenv("MONGODB_PASSWORD", SECRET)
    monkeypatch.setenv("CLICKHOUSE_PASSWORD", SECRET)
    monkeypatch.setenv("TIMESCALE_PASSWORD", SECRET)
    resources = build_resources()
    assert resources["mongo"].password == dg.EnvVar("MONGODB_PASSWORD")
    assert resources["timescale"].password == dg.EnvVar("TIMESCALE_PASSWORD")
    assert SECRET not in repr(resources) and SECRET not in str(resources)


def test_unset_variables_fall_back_to_the_local_stack(monkeypatch):
    import dagster as dg

    from marketdata_assets.core import settings
    from marketdata_assets.resources import build_resources

    for name in (
        "MONGODB_URI",
        "TIMESCALE_PORT",
        "CLICKHOUSE_DSN",
        "MARKETDATA_STATE_DIR",
        "STACK_CLICKHOUSE_PORT",
        "CLICKHOUSE_PASSWORD",
    ):
        monkeypatch.delenv(name, raising=False)  # hermetic: whatever the shell running the suite exports
    resources = build_resources()
    # the stack's generated password: passed by its variable's name, its value in no config the UI shows
    assert resources["clickhouse"].password == dg.EnvVar("CLICKHOUSE_PASSWORD")
    assert settings.stack_secrets()["clickhouse"] not in repr(resources)
    assert resources["mongo"].uri == "mongodb://127.0.0.1:57017"
    assert resources["timescale"].port == 55432
    assert resources["clickhouse"].dsn == "http://127.0.0.1:58123"  # the stack's engine server
    monkeypatch.setenv("STACK_CLICKHOUSE_PORT", "59999")  # a stack moved to another port: followed
    assert build_resources()["clickhouse"].dsn == "http://127.0.0.1:59999"


def test_mongo_server_that_stops_answering_fails_the_operation_instead_of_hanging():
    """A wedged server (connections open, no answer): an operation fails after socket_timeout_ms with
    a network timeout (which the importer reports as StoreUnavailable), it does not wait forever."""
    from urllib.parse import urlsplit

    from pymongo.errors import NetworkTimeout

    from tests.support.fault_proxy import FaultProxy

    uri = urlsplit(settings.get("MONGODB_URI"))
    with FaultProxy(uri.hostname, uri.port) as proxy:
        resource = MongoResource(
            uri=f"mongodb://{proxy.address}/?directConnection=true",
            socket_timeout_ms=1500,
            server_selection_timeout_ms=2000,
        )
        try:
            collection = resource.database("test_stalled")["probe"]
            collection.find_one({})  # answered: the connection is up
            proxy.stall()
            started = time.monotonic()
            with pytest.raises(NetworkTimeout):
                collection.find_one({})
            assert time.monotonic() - started < 10
        finally:
            resource.close()
