"""The Prometheus exporter over real HTTP, with the samples written by real other processes.

Every process started here writes to a tmp multiprocess directory (PROMETHEUS_MULTIPROC_DIR set
in its environment), never to the real one; the exporter runs in a thread of this process with
that directory and a Dagster instance passed in, or as its own process (the CLI). Tests wait on
events (a process ending, a figure appearing in /metrics), never for fixed times.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path

import dagster
import pytest
from prometheus_client.parser import text_string_to_metric_families

from marketdata_assets.apps.exporter import start_exporter
from marketdata_assets.replay.crypto import CryptoReplayServer, ReplayConfig
from tests.support.scripted_server import Reply, ScriptedServer

REPO = Path(__file__).resolve().parents[2]
DEADLINE_S = 60.0


def get(url: str, timeout: float = 30.0) -> tuple[int, str, str]:
    """(status, content type, body) of a GET, error statuses included."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Content-Type", ""), error.read().decode()


def scrape(url: str) -> dict[tuple[str, frozenset], float]:
    """/metrics as {(sample name, labels): value}."""
    status, _, body = get(f"{url}/metrics")
    assert status == 200, body
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }


def value(samples: dict, name: str, **labels) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def wait_for_metrics(url: str, ready, what: str) -> dict:
    """Scrape until `ready(samples)` holds (generous deadline); the samples that satisfied it."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        samples = scrape(url)
        if ready(samples):
            return samples
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{what} did not appear in /metrics within {DEADLINE_S:g} s: {sorted(k[0] for k in samples)}"
            )
        time.sleep(0.05)  # polling interval, not a wait for an outcome


def run_python(code: str, metrics_dir: Path | None, timeout: float = 120.0) -> dict:
    """Run `code` in a new interpreter (PROMETHEUS_MULTIPROC_DIR = metrics_dir, or unset); its last
    stdout line as JSON."""
    env = {k: v for k, v in os.environ.items() if k.upper() != "PROMETHEUS_MULTIPROC_DIR"}
    env["PYTHONPATH"] = str(REPO)
    if metrics_dir is not None:
        env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture
def instance():
    with dagster.DagsterInstance.ephemeral() as inst:
        yield inst


@pytest.fixture
def exporter(tmp_path, instance):
    metrics_dir = tmp_path / "metrics"
    running = start_exporter("127.0.0.1", 0, instance=instance, metrics_dir=metrics_dir)
    yield running
    running.stop()


# ---- requests, 429s, retries, latency and rows from another process --------------------------------------

FETCH_AND_LOAD = """
    import asyncio, json, os
    import clickhouse_connect
    from marketdata_assets.core.http import RetryPolicy
    from marketdata_assets.stores.clickhouse import tables as ct, writer as w
    from marketdata_assets.sources.binance.client import BinanceClient

    async def fetch():
        retry = RetryPolicy(max_retries=3, backoff_base_s=0.01, backoff_max_s=0.05)
        async with BinanceClient({base_url!r}, retry=retry, requests_per_minute=60_000) as api:
            return await api.book_snapshot("SOLUSDT", 5), api.stats

    book, stats = asyncio.run(fetch())
    client = clickhouse_connect.get_client(dsn={dsn!r})
    ct.ensure_tables(client, "ticks")
    day = book["ts"][0].date()
    result = w.write_slice(client, "ticks", "books", book, "BINANCE", "SOLUSDT", day, "metrics-test")
    print(json.dumps({{"pid": os.getpid(), "requests": stats.requests, "retries": stats.retries,
                      "rate_limited": stats.rate_limited, "rows": result.rows}}))
"""


def test_requests_429_retry_latency_and_rows_of_another_process_reach_metrics(exporter, tmp_path):
    """A separate process fetches a Binance book through core/http.py from the replay server, which
    answers 429 then 200, and loads it with the ticks writer into an embedded ClickHouse: /metrics
    shows both requests by status class, the 429, the retry, two latency observations, the rows
    and the time of the commit."""
    with CryptoReplayServer(ReplayConfig(seed=5, trades_per_day=100)) as server:
        server.add_fault(
            kind="rate_limit",
            venue="BINANCE",
            instrument="SOLUSDT",
            endpoint="book",
            times=1,
            retry_after="0.05",
        )
        started = time.time()
        child = run_python(
            FETCH_AND_LOAD.format(base_url=server.base_url, dsn=f"chdb://{tmp_path / 'ch'}"),
            exporter.metrics_dir,
        )
    assert (child["requests"], child["retries"], child["rate_limited"]) == (2, 1, 1) and child["rows"] == 10
    assert (exporter.metrics_dir / f"counter_{child['pid']}.db").is_file()  # the child's own samples file

    loaded = ("marketdata_rows_loaded_total", {"dataset": "books", "venue": "BINANCE"})
    samples = wait_for_metrics(
        exporter.url, lambda s: value(s, loaded[0], **loaded[1]) is not None, "rows loaded"
    )
    assert value(samples, "marketdata_http_requests_total", source="binance", outcome="4xx") == 1
    assert value(samples, "marketdata_http_requests_total", source="binance", outcome="2xx") == 1
    assert value(samples, "marketdata_http_rate_limited_total", source="binance") == 1
    assert value(samples, "marketdata_http_retries_total", source="binance") == 1
    assert value(samples, "marketdata_http_request_duration_seconds_count", source="binance") == 2
    assert value(samples, "marketdata_http_request_duration_seconds_bucket", source="binance", le="+Inf") == 2
    assert 0 < value(samples, "marketdata_http_request_duration_seconds_sum", source="binance") < 30
    assert value(samples, loaded[0], **loaded[1]) == 10
    assert value(samples, "marketdata_loads_committed_total", dataset="books", venue="BINANCE") == 1
    assert (
        started
        <= value(samples, "marketdata_last_success_timestamp_seconds", dataset="books", venue="BINANCE")
        <= time.time()
    )
    assert not any(name == "marketdata_http_errors_total" and value_ for (name, _), value_ in samples.items())

    status, content_type, body = get(f"{exporter.url}/status")
    assert status == 200 and content_type == "application/json"
    books = json.loads(body)["last_success"]["books"]["BINANCE"]
    assert books["rows_loaded"] == 10 and books["loads"] == 1 and started <= books["timestamp"] <= time.time()


MANY = """
    import json
    from marketdata_assets.core import metrics
    metrics.http_response("Tushare Pro", 200, 0.2)
    metrics.http_error("Tushare Pro", "server_error")
    metrics.loaded("trades", "OKX", {rows}, at={at})
    print(json.dumps({{"ok": True}}))
"""


def test_samples_of_several_processes_are_summed_and_the_latest_success_wins(exporter):
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(MANY.format(rows=rows, at=at))],
            cwd=REPO,
            env={
                **os.environ,
                "PYTHONPATH": str(REPO),
                "PROMETHEUS_MULTIPROC_DIR": str(exporter.metrics_dir),
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rows, at in ((7, 1_700_000_000.0), (5, 1_700_000_500.0), (3, 1_699_000_000.0))
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    samples = wait_for_metrics(
        exporter.url,
        lambda s: value(s, "marketdata_loads_committed_total", dataset="trades", venue="OKX") == 3,
        "three processes' loads",
    )
    assert value(samples, "marketdata_rows_loaded_total", dataset="trades", venue="OKX") == 15
    assert (
        value(samples, "marketdata_last_success_timestamp_seconds", dataset="trades", venue="OKX")
        == 1_700_000_500
    )
    assert value(samples, "marketdata_http_requests_total", source="tushare", outcome="2xx") == 3
    assert value(samples, "marketdata_http_errors_total", source="tushare", category="server_error") == 3
    assert value(samples, "marketdata_http_request_duration_seconds_bucket", source="tushare", le="0.25") == 3
    assert value(samples, "marketdata_http_request_duration_seconds_bucket", source="tushare", le="0.1") == 0
    assert value(samples, "marketdata_exporter_errors_total", part="metrics_dir") == 0
    assert (
        value(samples, "marketdata_exporter_multiproc_files")
        == len(list(exporter.metrics_dir.glob("*.db")))
        >= 9
    )


IN_PROCESS = """
    import json
    import prometheus_client
    from prometheus_client import values
    from marketdata_assets.core import metrics
    metrics.loaded("daily_bars", "SSE", 4)
    text = prometheus_client.generate_latest(prometheus_client.REGISTRY).decode()
    print(json.dumps({"value_class": values.ValueClass.__name__,
                      "line": 'marketdata_rows_loaded_total{dataset="daily_bars",venue="SSE"} 4.0' in text}))
"""

UNUSABLE_DIR = """
    import asyncio, json
    from marketdata_assets.core.http import ApiClient, RetryPolicy

    async def go():
        async with ApiClient({url!r}, retry=RetryPolicy(max_retries=2, backoff_base_s=0.01, \
backoff_max_s=0.02)) as api:
            response = await api.request("GET", "/anything")
            return response.status_code, api.stats.requests, api.stats.rate_limited

    status, requests, limited = asyncio.run(go())
    print(json.dumps({{"status": status, "requests": requests, "rate_limited": limited}}))
"""


def test_without_the_variable_metrics_stay_in_process_and_an_unusable_dir_never_breaks_a_request(tmp_path):
    child = run_python(IN_PROCESS, None)
    assert child == {"value_class": "MutexValue", "line": True}

    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    with ScriptedServer() as server:
        server.replies.extend(
            [Reply(429, b'{"detail":"slow down"}', {"Retry-After": "0"}), Reply(200, b'{"ok":1}')]
        )
        child = run_python(UNUSABLE_DIR.format(url=server.url), blocker / "metrics")
    assert child == {"status": 200, "requests": 2, "rate_limited": 1}


# ---- the Dagster instance: freshness, /health, /status ----------------------------------------------------


@dagster.asset
def metrics_probe_asset() -> int:
    return 1


def test_health_status_and_freshness_lag_from_a_materialization(exporter, instance):
    status, _, body = get(f"{exporter.url}/health")
    assert (status, body) == (200, "ok\n")
    samples = scrape(exporter.url)
    assert value(samples, "marketdata_dagster_instance_up") == 1
    assert not any(
        name == "marketdata_asset_freshness_lag_seconds" for name, _ in samples
    )  # nothing materialized

    assert dagster.materialize([metrics_probe_asset], instance=instance).success
    event = instance.get_latest_materialization_event(dagster.AssetKey("metrics_probe_asset"))
    samples = wait_for_metrics(
        exporter.url,
        lambda s: (
            value(s, "marketdata_asset_freshness_lag_seconds", asset_key="metrics_probe_asset") is not None
        ),
        "the freshness lag",
    )
    scraped = time.time()
    assert value(
        samples, "marketdata_asset_last_materialization_timestamp_seconds", asset_key="metrics_probe_asset"
    ) == pytest.approx(event.timestamp, abs=1e-3)
    assert (
        0
        <= value(samples, "marketdata_asset_freshness_lag_seconds", asset_key="metrics_probe_asset")
        <= scraped - event.timestamp + 1e-3
    )
    assert value(samples, "marketdata_exporter_errors_total", part="instance") == 0

    status, content_type, body = get(f"{exporter.url}/status")
    assert status == 200 and content_type == "application/json"
    report = json.loads(body)
    assert set(report) == {
        "exporter",
        "metrics_dir",
        "metrics_files",
        "demo",
        "instance",
        "assets",
        "last_success",
    }
    assert set(report["exporter"]) >= {"version", "started_at", "start_time", "uptime_seconds"}
    assert report["metrics_dir"] == str(exporter.metrics_dir) and report["instance"] == {
        "ok": True,
        "error": None,
    }
    assert report["demo"] in ("auto", "on", "off") and report["last_success"] == {}
    probe = report["assets"]["metrics_probe_asset"]
    assert probe["timestamp"] == pytest.approx(event.timestamp) and probe["lag_seconds"] >= 0
    assert probe["last_materialization"].startswith(time.strftime("%Y-", time.gmtime(event.timestamp)))
    assert get(f"{exporter.url}/nope")[0] == 404


def test_cli_answers_503_on_health_and_still_serves_metrics_when_the_instance_storage_is_down(tmp_path):
    """The exporter process (the CLI) with a Dagster instance whose Postgres refuses connections."""
    with socket.socket() as sock:  # a port nothing listens on once closed
        sock.bind(("127.0.0.1", 0))
        dead_port = sock.getsockname()[1]
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(
        textwrap.dedent(f"""
        storage:
          postgres:
            postgres_db:
              hostname: 127.0.0.1
              port: {dead_port}
              username: postgres
              password: not-this-one
              db_name: dagster
              scheme: postgresql+psycopg2
    """)
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "DAGSTER_HOME": str(home),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
        "MARKETDATA_DEMO": "on",
    }
    log = (tmp_path / "exporter.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "marketdata_assets.apps.exporter",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--query-timeout",
            "1",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    try:
        line = proc.stdout.readline()  # printed once it listens
        assert "serving http://127.0.0.1:" in line, (tmp_path / "exporter.log").read_text()
        url = line.split("serving ", 1)[1].split("/metrics", 1)[0]
        assert str(tmp_path / "metrics") in line

        status, _, body = get(f"{url}/health")
        assert status == 503 and body.startswith("dagster instance storage unreachable: "), body
        assert "not-this-one" not in body

        samples = scrape(url)
        assert value(samples, "marketdata_dagster_instance_up") == 0
        assert value(samples, "marketdata_exporter_errors_total", part="instance") >= 2

        status, _, body = get(f"{url}/status")
        report = json.loads(body)
        assert status == 200 and report["instance"]["ok"] is False and report["demo"] == "on"
        assert report["assets"] == {} and "not-this-one" not in body

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert "stopped" in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        log.close()
