"""The Prometheus exporter: `python -m marketdata_assets.apps.exporter [--host H] [--port P]` (defaults
METRICS_HOST / METRICS_PORT, 127.0.0.1:9108): `/metrics`, `/health`, `/status`.

Serves the multiprocess samples (core.metrics) merged, plus asset freshness from the Dagster
instance; nothing a scrape does can make /metrics fail. `start_exporter(host, port)` serves from a
daemon thread. The metrics and endpoints: docs/metrics.md, "The metrics" and "Endpoints".
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import UTC, datetime
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import REGISTRY, CollectorRegistry, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from marketdata_assets.core import metrics as lib_metrics
from marketdata_assets.core import settings

log = logging.getLogger(__name__)

QUERY_TIMEOUT_S = 5.0
_SECRET_IN_URL = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s:@]+:[^/\s@]+@")


@functools.lru_cache(maxsize=1)
def version() -> str:
    try:
        from importlib.metadata import version as package_version

        return package_version("marketdata-assets")
    except Exception:  # noqa: BLE001 - not installed as a distribution
        return "0+unknown"


def _reason(error: BaseException) -> str:
    """One line about a failure, credentials in URLs masked."""
    text = " ".join(str(error).split())[:300]
    return _SECRET_IN_URL.sub(r"\1***@", f"{type(error).__name__}: {text}" if text else type(error).__name__)


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


# ---- the Dagster instance, queried one at a time ---------------------------------------------------


class InstanceProbe:
    """Queries of the Dagster instance, one at a time, each on a daemon thread waited for at most
    `timeout_s` (a hung storage never holds the exporter's exit).

    `instance`: a DagsterInstance, a callable returning one, or None (`DagsterInstance.get()`,
    i.e. DAGSTER_HOME's). The instance is made by the first query (`warm()` at start), and again
    after a failure to make it (dagster-postgres retries a refused connection for ~15 s). A query
    waits for the one running within its own time limit, else fails: a hung storage holds one
    thread, never one per scrape."""

    def __init__(self, instance: Any = None, timeout_s: float = QUERY_TIMEOUT_S):
        self._given = instance
        self._instance = instance if hasattr(instance, "get_asset_records") else None
        self.timeout_s = timeout_s
        self._busy: Future | None = None
        self.last_error: str | None = None  # of the latest query that failed, also after its caller gave up
        self._owned = False  # made here (then disposed of by close)
        self._lock = threading.Lock()

    def _get(self):
        if self._instance is None:
            if callable(self._given):
                self._instance = self._given()
            else:
                from dagster import DagsterInstance

                self._instance = DagsterInstance.get()
                self._owned = True
        return self._instance

    def run(self, query: Callable[[Any], Any], timeout_s: float | None = None) -> Any:
        timeout_s = self.timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout_s
        while True:  # one query at a time: wait for the one running, within this query's time
            with self._lock:
                busy = self._busy
                if busy is None or busy.done():
                    self._busy = future = Future()
                    break
            try:
                busy.exception(timeout=max(0.0, deadline - time.monotonic()))
            except FutureTimeout:
                raise TimeoutError(
                    f"an earlier query of the Dagster instance is still running "
                    f"(over {timeout_s:g} s){self._previous()}"
                ) from None
        threading.Thread(
            target=self._work, args=(future, query), name="exporter-instance-query", daemon=True
        ).start()
        try:
            return future.result(timeout=max(0.0, deadline - time.monotonic()))
        except FutureTimeout:
            raise TimeoutError(
                f"the Dagster instance did not answer within {timeout_s:g} s{self._previous()}"
            ) from None

    def warm(self) -> None:
        """Make the instance in the background now (importing dagster and connecting take seconds)."""
        with self._lock:
            if self._busy is None:
                self._busy = future = Future()
                threading.Thread(
                    target=self._work,
                    args=(future, lambda instance: None),
                    name="exporter-instance-query",
                    daemon=True,
                ).start()

    def _work(self, future: Future, query: Callable[[Any], Any]) -> None:
        try:
            future.set_result(query(self._get()))
            self.last_error = None
        except BaseException as error:  # noqa: BLE001 - handed to the waiting caller
            self.last_error = _reason(error)
            future.set_exception(error)

    def _previous(self) -> str:
        return f"; the query before failed: {self.last_error}" if self.last_error else ""

    def latest_materializations(self) -> dict[str, float]:
        """{asset key: unix time of its latest materialization} of every asset that has one."""

        def query(instance) -> dict[str, float]:
            found = {}
            for record in instance.get_asset_records():
                entry = record.asset_entry
                event = entry.last_materialization
                if event is not None:
                    found[entry.asset_key.to_user_string()] = float(event.timestamp)
            return found

        return self.run(query)

    def ping(self) -> None:
        """A cheap query of the event log storage (one asset key)."""
        self.run(lambda instance: instance.get_asset_keys(limit=1))

    def close(self) -> None:
        """Dispose of the instance if it was made here (and no query is using it)."""
        if self._owned and self._instance is not None and (self._busy is None or self._busy.done()):
            try:
                self._instance.dispose()
            except Exception as error:  # noqa: BLE001 - closing anyway
                log.debug("exporter: disposing of the Dagster instance failed: %s", _reason(error))


# ---- collectors ------------------------------------------------------------------------------------


class ExporterState:
    """What the exporter counts about itself (in memory: the exporter is one process)."""

    def __init__(self, metrics_dir: Path | None):
        self.started = time.time()
        self.metrics_dir = metrics_dir
        self.errors: dict[str, int] = {}
        self.instance_up = 0
        self._logged: dict[str, str] = {}
        self._lock = threading.Lock()

    def error(self, part: str, error: BaseException) -> str:
        """Count a failure of one part of a scrape; log it (a warning when the reason changed, else at
        debug level)."""
        reason = _reason(error)
        with self._lock:
            self.errors[part] = self.errors.get(part, 0) + 1
            repeated = self._logged.get(part) == reason
            self._logged[part] = reason
        (log.debug if repeated else log.warning)("exporter: %s failed: %s", part, reason)
        return reason

    def samples(self) -> list[Metric]:
        """The loads' samples: the multiprocess directory merged, or this process's registry."""
        try:
            if self.metrics_dir is not None:
                return list(MultiProcessCollector(None, path=str(self.metrics_dir)).collect())
            return [m for m in REGISTRY.collect() if m.name.startswith("marketdata_")]
        except Exception as error:  # noqa: BLE001 - a damaged file must not fail the scrape
            self.error("metrics_dir", error)
            return []

    def files(self) -> int | None:
        """Sample files in the multiprocess directory (one per process and metric type)."""
        if self.metrics_dir is None:
            return None
        try:
            return sum(1 for _ in self.metrics_dir.glob("*.db"))
        except OSError:
            return None


class SamplesCollector(Collector):
    def __init__(self, state: ExporterState):
        self.state = state

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        return self.state.samples()


class DagsterCollector(Collector):
    """Scrape-time figures: freshness per asset from the instance, and the exporter's own."""

    def __init__(self, state: ExporterState, probe: InstanceProbe):
        self.state, self.probe = state, probe

    def describe(self) -> list[Metric]:
        return []  # registering must not query the instance

    def collect(self) -> Iterable[Metric]:
        now = time.time()
        last = GaugeMetricFamily(
            "marketdata_asset_last_materialization_timestamp_seconds",
            "Unix time of the latest materialization of the asset (Dagster instance).",
            labels=["asset_key"],
        )
        lag = GaugeMetricFamily(
            "marketdata_asset_freshness_lag_seconds",
            "Seconds since the latest materialization of the asset.",
            labels=["asset_key"],
        )
        try:
            found = self.probe.latest_materializations()
        except Exception as error:  # noqa: BLE001
            self.state.error("instance", error)
            self.state.instance_up = 0
        else:
            self.state.instance_up = 1
            for key, timestamp in sorted(found.items()):
                last.add_metric([key], timestamp)
                lag.add_metric([key], max(0.0, now - timestamp))
        yield last
        yield lag
        yield GaugeMetricFamily(
            "marketdata_dagster_instance_up",
            "1 if the Dagster instance answered this scrape's query, else 0.",
            value=self.state.instance_up,
        )
        errors = CounterMetricFamily(
            "marketdata_exporter_errors",
            "Failures while scraping, by part (instance, metrics_dir).",
            labels=["part"],
        )
        for part in sorted({"instance", "metrics_dir", *self.state.errors}):
            errors.add_metric([part], self.state.errors.get(part, 0))
        yield errors
        yield GaugeMetricFamily(
            "marketdata_exporter_start_time_seconds",
            "Unix time the exporter started.",
            value=self.state.started,
        )
        files = self.state.files()
        if files is not None:
            yield GaugeMetricFamily(
                "marketdata_exporter_multiproc_files",
                "Sample files in the multiprocess "
                "directory (a scrape reads them all; they grow with the processes).",
                value=files,
            )
        info = GaugeMetricFamily(
            "marketdata_exporter_info", "The exporter's version (value 1).", labels=["version"]
        )
        info.add_metric([version()], 1)
        yield info


# ---- the WSGI application -----------------------------------------------------------------------------


def _last_success(metrics: Iterable[Metric]) -> dict[str, dict[str, dict]]:
    """{dataset: {venue: {timestamp, at, age_seconds, rows_loaded, loads}}} from the loads' samples."""
    now = time.time()
    table: dict[str, dict[str, dict]] = {}

    def slot(sample) -> dict:
        return table.setdefault(sample.labels.get("dataset", ""), {}).setdefault(
            sample.labels.get("venue", ""), {}
        )

    for metric in metrics:
        for sample in metric.samples:
            if sample.name == "marketdata_last_success_timestamp_seconds":
                slot(sample).update(
                    timestamp=sample.value,
                    at=_iso(sample.value),
                    age_seconds=round(max(0.0, now - sample.value), 3),
                )
            elif sample.name == "marketdata_rows_loaded_total":
                slot(sample)["rows_loaded"] = int(sample.value)
            elif sample.name == "marketdata_loads_committed_total":
                slot(sample)["loads"] = int(sample.value)
    return table


class ExporterApp:
    """Routes /metrics, /health and /status (GET; anything else 404 or 405)."""

    def __init__(self, state: ExporterState, probe: InstanceProbe):
        self.state, self.probe = state, probe
        self.registry = CollectorRegistry(support_collectors_without_names=True)
        self.registry.register(SamplesCollector(state))
        self.registry.register(DagsterCollector(state, probe))
        self.metrics_app = make_wsgi_app(self.registry)

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO") or "/"
        if path.rstrip("/") == "/metrics":
            return self.metrics_app(environ, start_response)
        routes = {"/health": self.health, "/status": self.status, "/": self.index}
        handler = routes.get(path.rstrip("/") or "/")
        if handler is None:
            return self._reply(
                start_response, "404 Not Found", b"not found: try /metrics, /health, /status\n"
            )
        if environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD"):
            return self._reply(
                start_response, "405 Method Not Allowed", b"GET only\n", [("Allow", "GET, HEAD")]
            )
        return handler(start_response)

    @staticmethod
    def _reply(
        start_response,
        status: str,
        body: bytes,
        headers: list | None = None,
        content_type: str = "text/plain; charset=utf-8",
    ):
        start_response(
            status,
            [
                ("Content-Type", content_type),
                ("Content-Length", str(len(body))),
                ("Cache-Control", "no-store"),
                *(headers or []),
            ],
        )
        return [body]

    def index(self, start_response):
        return self._reply(start_response, "200 OK", b"marketdata exporter: /metrics /health /status\n")

    def health(self, start_response):
        try:
            self.probe.ping()
        except Exception as error:  # noqa: BLE001
            reason = self.state.error("instance", error)
            return self._reply(
                start_response,
                "503 Service Unavailable",
                f"dagster instance storage unreachable: {reason}\n".encode(),
            )
        return self._reply(start_response, "200 OK", b"ok\n")

    def status(self, start_response):
        now = time.time()
        assets: dict[str, dict] = {}
        instance: dict[str, Any] = {"ok": True, "error": None}
        try:
            found = self.probe.latest_materializations()
        except Exception as error:  # noqa: BLE001
            instance = {"ok": False, "error": self.state.error("instance", error)}
        else:
            assets = {
                key: {"last_materialization": _iso(ts), "timestamp": ts, "lag_seconds": round(now - ts, 3)}
                for key, ts in sorted(found.items())
            }
        body = {
            "exporter": {
                "version": version(),
                "started_at": _iso(self.state.started),
                "start_time": self.state.started,
                "uptime_seconds": round(now - self.state.started, 3),
                "errors": dict(self.state.errors),
            },
            "metrics_dir": str(self.state.metrics_dir) if self.state.metrics_dir is not None else None,
            "metrics_files": self.state.files(),
            "demo": settings.get("MARKETDATA_DEMO"),
            "instance": instance,
            "assets": assets,
            "last_success": _last_success(self.state.samples()),
        }
        return self._reply(
            start_response,
            "200 OK",
            (json.dumps(body, indent=2, sort_keys=True) + "\n").encode(),
            content_type="application/json",
        )


# ---- serving ---------------------------------------------------------------------------------------------


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _Server6(_Server):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):
        log.debug("exporter: " + format, *args)


class Exporter:
    """A running exporter: `.url` (http://host:port), `.stop()`."""

    def __init__(self, server: WSGIServer, thread: threading.Thread, app: ExporterApp, host: str):
        self.server, self.thread, self.app = server, thread, app
        self.host = host
        self.port = server.server_address[1]

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def metrics_dir(self) -> Path | None:
        return self.app.state.metrics_dir

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.app.probe.close()
        self.thread.join(timeout=5)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_exporter(
    host: str | None = None,
    port: int | None = None,
    *,
    instance: Any = None,
    metrics_dir: str | Path | None = None,
    query_timeout_s: float = QUERY_TIMEOUT_S,
) -> Exporter:
    """Serve /metrics, /health and /status from a daemon thread; returns the running `Exporter`.

    `host`/`port`: default METRICS_HOST / METRICS_PORT (port 0: a free port). `instance`: a
    DagsterInstance, a callable returning one, or None for `DagsterInstance.get()`. `metrics_dir`:
    the multiprocess directory to merge; default PROMETHEUS_MULTIPROC_DIR if set, else this
    process's own registry."""
    host = host if host is not None else settings.get("METRICS_HOST")
    port = int(port if port is not None else settings.get("METRICS_PORT"))
    if metrics_dir is None and lib_metrics.multiproc_dir() is not None:
        metrics_dir = settings.metrics_dir()
    directory = Path(metrics_dir).resolve() if metrics_dir is not None else None
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)
    state = ExporterState(directory)
    probe = InstanceProbe(instance, timeout_s=query_timeout_s)
    probe.warm()
    app = ExporterApp(state, probe)
    server_class = _Server6 if ":" in host else _Server
    server = make_server(host, port, app, server_class=server_class, handler_class=_QuietHandler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="metrics-exporter", daemon=True
    )
    thread.start()
    return Exporter(server, thread, app, host)


def main(argv: list[str] | None = None) -> int:
    settings.apply_defaults()  # DAGSTER_HOME, PROMETHEUS_MULTIPROC_DIR
    parser = argparse.ArgumentParser(
        prog="python -m marketdata_assets.apps.exporter",
        description="Prometheus exporter: /metrics, /health, /status.",
    )
    parser.add_argument(
        "--host", default=settings.get("METRICS_HOST"), help="address to listen on (METRICS_HOST)"
    )
    parser.add_argument(
        "--port",
        type=int,
        default=int(settings.get("METRICS_PORT")),
        help="port (METRICS_PORT; 0: a free one)",
    )
    parser.add_argument(
        "--query-timeout",
        type=float,
        default=QUERY_TIMEOUT_S,
        help="seconds a scrape waits for the Dagster instance (default %(default)s)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    exporter = start_exporter(
        args.host, args.port, metrics_dir=settings.metrics_dir(), query_timeout_s=args.query_timeout
    )
    print(
        f"marketdata exporter serving {exporter.url}/metrics (/health, /status); samples from "
        f"{exporter.metrics_dir}",
        flush=True,
    )
    try:
        while not stop.wait(1.0):
            pass
    finally:
        exporter.stop()
    print("marketdata exporter stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
