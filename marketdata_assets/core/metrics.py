"""The Prometheus metrics of the loads, defined once: vendor HTTP requests and what came back, rows
loaded per dataset, and when each dataset × venue last committed a load (docs/metrics.md).

Plain and Dagster-free: one recording function per event, none of which ever raises. Multiprocess
mode (PROMETHEUS_MULTIPROC_DIR, created here before the first sample) and the label rules:
docs/metrics.md, "Processes: multiprocess mode" and "The metrics".
"""

from __future__ import annotations

import functools
import logging
import os
import re
import time
from pathlib import Path

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiproc_dir() -> Path | None:
    """The directory this process writes its samples to, or None (in-process registry)."""
    value = os.environ.get(MULTIPROC_ENV) or os.environ.get(MULTIPROC_ENV.lower())
    return Path(value) if value else None


def ensure_multiproc_dir() -> bool:
    """Create the multiprocess directory if it is configured and missing; True if it exists now."""
    path = multiproc_dir()
    if path is None:
        return False
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        log.warning(
            "metrics: cannot create %s=%s (%s); metrics of this process are lost", MULTIPROC_ENV, path, error
        )
        return False
    return True


ensure_multiproc_dir()  # before prometheus_client opens a file there

from prometheus_client import Counter, Gauge, Histogram  # after the directory exists

# ---- the metric objects ------------------------------------------------------------------------------

HTTP_REQUESTS = Counter(
    "marketdata_http_requests",
    "Vendor HTTP requests sent, by source and outcome (the answer's status "
    "class 2xx/3xx/4xx/5xx, or transport_error when no answer came).",
    ["source", "outcome"],
)
HTTP_RATE_LIMITED = Counter(
    "marketdata_http_rate_limited",
    "Rate-limit answers (HTTP 429/418, and vendors' HTTP-200 limit codes), by source.",
    ["source"],
)
HTTP_RETRIES = Counter(
    "marketdata_http_retries",
    "Requests sent again after a rate limit, a 5xx, a timeout or a bad body, by source.",
    ["source"],
)
HTTP_ERRORS = Counter(
    "marketdata_http_errors",
    "Failed requests and error answers other than rate limits, by source and category "
    "(transport, server_error, bad_body, retry, banned, quota, permission, unauthorized, not_found, "
    "rejected, data, session_expired, gave_up).",
    ["source", "category"],
)
HTTP_LATENCY = Histogram(
    "marketdata_http_request_duration_seconds",
    "Time from sending a vendor request to its complete answer, by source.",
    ["source"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0),
)
ROWS_LOADED = Counter(
    "marketdata_rows_loaded",
    "Rows (documents for the alpha collections) made visible by committed loads, "
    "by dataset and venue (ticks) or store.",
    ["dataset", "venue"],
)
LOADS_COMMITTED = Counter(
    "marketdata_loads_committed",
    "Committed loads (a ticks pointer flip, a minute-bar file, an alpha "
    "import batch), by dataset and venue or store.",
    ["dataset", "venue"],
)
LAST_SUCCESS = Gauge(
    "marketdata_last_success_timestamp_seconds",
    "Unix time of the latest committed load, by dataset and venue or store (the latest of every process).",
    ["dataset", "venue"],
    multiprocess_mode="max",
)


# ---- label values ------------------------------------------------------------------------------------

# api_name of each vendor client (core.http.ApiClient subclasses) -> its source label
SOURCES = {
    "alpha api": "alpha_api",
    "tushare pro": "tushare",
    "tushare": "tushare",
    "yahoo finance": "yahoo",
    "yahoo": "yahoo",
    "binance": "binance",
    "okx": "okx",
    "deribit": "deribit",
    "http api": "http",
}
_UNSAFE = re.compile(r"[^A-Za-z0-9_.:-]+")


@functools.lru_cache(maxsize=256)
def label(value: object) -> str:
    """A label value: only [A-Za-z0-9_.:-] (anything else becomes `_`), at most 64 characters."""
    text = _UNSAFE.sub("_", str(value)).strip("_")
    return text[:64] or "unknown"


@functools.lru_cache(maxsize=64)
def source_label(name: str | None) -> str:
    """The `source` label of a client's api_name ("Tushare Pro" -> tushare) or of a source name."""
    key = " ".join(str(name or "").replace("_", " ").split()).lower()
    return SOURCES.get(key) or label(key.replace(" ", "_"))


def status_class(status: int) -> str:
    return f"{status // 100}xx" if 100 <= status < 600 else "other"


# ---- recording: one call per event, never raising ---------------------------------------------------

_warned = [False]


def _safe(record):
    """Run a recording; on a failure, recreate a vanished multiprocess directory and try once
    more, else log (the first failure as a warning) and go on: metrics never break a load."""

    @functools.wraps(record)
    def wrapper(*args, **kwargs) -> None:
        try:
            record(*args, **kwargs)
            return
        except Exception as error:  # noqa: BLE001
            failure = error
        path = multiproc_dir()
        if path is not None and not path.is_dir() and ensure_multiproc_dir():
            try:
                record(*args, **kwargs)
                return
            except Exception as error:  # noqa: BLE001
                failure = error
        (log.debug if _warned[0] else log.warning)(
            "metrics: %s failed (%s: %s); the load goes on", record.__name__, type(failure).__name__, failure
        )
        _warned[0] = True

    return wrapper


@_safe
def http_response(source: str | None, status: int, seconds: float) -> None:
    """An answer arrived: the request by status class, and its latency."""
    name = source_label(source)
    HTTP_REQUESTS.labels(name, status_class(status)).inc()
    HTTP_LATENCY.labels(name).observe(max(0.0, seconds))


@_safe
def http_transport_error(source: str | None) -> None:
    """A request got no answer (timeout, refused or broken connection)."""
    name = source_label(source)
    HTTP_REQUESTS.labels(name, "transport_error").inc()
    HTTP_ERRORS.labels(name, "transport").inc()


@_safe
def http_rate_limited(source: str | None) -> None:
    HTTP_RATE_LIMITED.labels(source_label(source)).inc()


@_safe
def http_retry(source: str | None) -> None:
    """A request is sent again (after a rate limit, a 5xx, a timeout or a bad body)."""
    HTTP_RETRIES.labels(source_label(source)).inc()


@_safe
def http_error(source: str | None, category: str) -> None:
    HTTP_ERRORS.labels(source_label(source), label(category)).inc()


@_safe
def loaded(dataset: str, venue: str, rows: int, at: float | None = None) -> None:
    """A load committed `rows` rows of `dataset` at `venue` (or store): rows, loads, last success."""
    names = (label(dataset), label(venue))
    ROWS_LOADED.labels(*names).inc(max(0, int(rows)))
    LOADS_COMMITTED.labels(*names).inc()
    LAST_SUCCESS.labels(*names).set(time.time() if at is None else at)
