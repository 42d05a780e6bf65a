"""The base of every vendor HTTP client: one request/retry/classify path, and the sources' errors.

Vendor clients subclass `ApiClient` and declare, as data, what their answers mean (`ERRORS`) and what
they allow (`LIMITS`); `call()` paces, sends, classifies and retries every request. Over 500 lines: that
one path with its limiters and error tables, kept whole so no second loop grows elsewhere. Limits, the
steps of `call()`, counters: docs/ticks.md, "The HTTP client"; error kinds: "Errors and limits".
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import json
import math
import random
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from email.utils import parsedate_to_datetime
from ssl import SSLContext
from typing import Any, Literal

import httpx
import msgspec

from marketdata_assets.core import metrics

RETRYABLE_STATUS = frozenset({500, 502, 503, 504, 520, 521, 522, 524})
RATE_LIMIT_STATUS = frozenset({429, 418})

ErrorCategory = Literal[
    "rate_limited",
    "banned",
    "quota",
    "permission",
    "unauthorized",
    "not_found",
    "rejected",
    "retry",
    "data",
    "bad_body",
]


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class ApiError(RuntimeError):
    """A request that failed for good (retries ran out): names the API, the request and what came back."""

    def __init__(self, api: str, method: str, path: str, status: int | None, detail: str):
        self.api, self.method, self.path, self.status, self.detail = api, method, path, status, detail
        where = f"{api} {method} {path}"
        super().__init__(f"{where}: HTTP {status}: {detail}" if status else f"{where}: {detail}")


class SourceError(RuntimeError):
    """Base of the errors a source's answer stands for."""

    source: str | None = None


class SourceBanned(SourceError):
    """The source banned us (Binance 418 / "IP banned until ...") or a quota is used up: stop asking."""

    def __init__(
        self, source: str, detail: str, *, until: datetime | None = None, request: str | None = None
    ):
        self.source, self.detail, self.until, self.request = source, detail, until, request
        when = f" until {until.isoformat()}" if until else ""
        super().__init__(
            f"{source} banned this IP{when}: {detail}"
            + (f" ({request})" if request else "")
            + ". Stop requesting from this source until then."
        )


class SourcePermissionError(SourceError):
    """401/403 or a vendor's permission code: credentials, region or a firewall refused the request."""

    def __init__(self, source: str, status: int, detail: str, *, request: str | None = None):
        self.source, self.status, self.detail, self.request = source, status, detail, request
        super().__init__(
            f"{source} refused access (HTTP {status}): {detail}" + (f" ({request})" if request else "")
        )


class SourceRequestError(SourceError):
    """The source rejected the request: unknown instrument, bad parameter, unknown path. Not retried."""

    def __init__(
        self,
        source: str,
        instrument: str | None,
        status: int,
        code: Any,
        detail: str,
        *,
        request: str | None = None,
    ):
        self.source, self.instrument, self.status, self.code, self.detail, self.request = (
            source,
            instrument,
            status,
            code,
            detail,
            request,
        )
        what = f"{source} {instrument}" if instrument else source
        super().__init__(
            f"{what}: HTTP {status}, code {code}: {detail}" + (f" ({request})" if request else "")
        )


class SourceNotFound(SourceRequestError):
    """The source has no such instrument or path (404 / "Not Found")."""


class SourceDataError(SourceError):
    """An answer that cannot be read into the normalized frame; names instrument, day and request."""

    def __init__(
        self,
        instrument: str | None,
        day: date | str | None,
        detail: str,
        *,
        source: str | None = None,
        request: str | None = None,
    ):
        self.instrument, self.day, self.detail, self.source, self.request = (
            instrument,
            day,
            detail,
            source,
            request,
        )
        where = " ".join(str(part) for part in (source, instrument, day) if part)
        super().__init__(f"{where}: {detail}" + (f" ({request})" if request else ""))


# A source that raised one of these is stopped for the rest of the run (no request is sent).
STOP_ERRORS = (SourceBanned, SourcePermissionError)


class _NotSent(Exception):
    """A request held back right before its first byte went out: a pause or stop began meanwhile."""


@dataclass(frozen=True)
class Page:
    """Where an answer came from: errors about it name the source, instrument, day and request."""

    source: str
    instrument: str | None = None
    day: date | str | None = None
    request: str | None = None

    def error(self, detail: str) -> SourceDataError:
        return SourceDataError(self.instrument, self.day, detail, source=self.source, request=self.request)


def describe_request(method: str, path: str, params: Mapping[str, Any] | None) -> str:
    query = "&".join(f"{k}={v}" for k, v in (params or {}).items())
    return f"{method} {path}" + (f"?{query}" if query else "")


@functools.cache
def tls_context() -> SSLContext:
    """The verifying TLS context the process's clients share (httpx's default: certifi's CAs, or
    SSL_CERT_FILE / SSL_CERT_DIR). httpx builds one per client otherwise, reading and parsing the CA bundle
    each time (~25 ms of CPU), and a process makes a client per source, snapshot source and lookup."""
    return httpx.create_ssl_context()


def body_excerpt(response: httpx.Response, limit: int = 300) -> str:
    text = response.text.strip().replace("\n", " ")
    return text[:limit] + ("..." if len(text) > limit else "")


# --------------------------------------------------------------------------------------------
# What answers mean, and what a source allows: declared as data per source
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ErrorTable:
    """How a source's error answers are classified: `broad` message fragments first (in order,
    case-insensitive; an entry `(fragment, category, code, ...)` applies to those vendor codes only),
    then `exact` vendor codes (case-insensitive), then `status`, then the HTTP defaults (401/403
    permission, 404 not found, 418/429 rate limited, 5xx retry, other 4xx rejected)."""

    broad: tuple[tuple[str, ...], ...] = ()
    exact: Mapping[str, ErrorCategory] = field(default_factory=dict)
    status: Mapping[int, ErrorCategory] = field(default_factory=dict)

    def classify(self, status: int, code: Any, message: str) -> ErrorCategory:
        lower = (message or "").lower()
        for needle, category, *codes in self.broad:
            if needle.lower() in lower and (not codes or str(code) in codes):
                return category
        if code is not None:
            wanted = str(code).casefold()
            for key, category in self.exact.items():
                if key.casefold() == wanted:
                    return category
        if status in self.status:
            return self.status[status]
        if status in (401, 403):
            return "permission"
        if status == 404:
            return "not_found"
        if status in RATE_LIMIT_STATUS:
            return "rate_limited"
        if status in RETRYABLE_STATUS:
            return "retry"
        return "rejected"


@dataclass(frozen=True)
class Limits:
    """What a source allows: `requests_per_minute` over every concurrent request, at most
    `requests_per_minute * rate_window_s / 60` of them in any `rate_window_s` seconds as the source
    counts them (a `WindowGate`), paced by a token bucket; `max_concurrency` (requests in flight)
    and, where the source counts request weight (Binance), `weight_per_window` per fixed
    `weight_window_s`, spent up to `weight_headroom` of it, endpoint weights in `weights` (1 if
    absent) and the response header carrying the source's own count. `endpoint_limits` maps a path
    prefix to (requests, window_s): at most that many requests whose path starts with it (the
    longest prefix that matches) in any `window_s` seconds as the source counts them
    (`WindowGate`), over a window longer by `endpoint_margin` (a share of it: slack for a source
    that counts by coarser clock ticks)."""

    requests_per_minute: float = 600
    rate_window_s: float = 60.0
    max_concurrency: int = 8
    weight_per_window: int | None = None
    weight_window_s: float = 60.0
    weight_headroom: float = 0.9
    weight_header: str | None = None
    weights: Mapping[str, int] = field(default_factory=dict)
    endpoint_limits: Mapping[str, tuple[int, float]] = field(default_factory=dict)
    endpoint_margin: float = 0.05


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 5
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    # Never sleep longer than this on a Retry-After: past it the request fails with a clear error.
    max_retry_after_s: float = 300.0


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: "7", "5.0", or an HTTP date. None if absent/garbage."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    return None if math.isnan(seconds) else max(0.0, seconds)


@dataclass
class Backoff:
    """A reconnecting loop's backoff: doubling from `base_s` to `cap_s`, jittered to half of it at least;
    `reset` after a success."""

    base_s: float = 1.0
    cap_s: float = 32.0
    rng: random.Random = field(default_factory=random.Random)
    failures: int = 0

    def next_delay(self) -> float:
        self.failures += 1
        delay = min(self.base_s * 2 ** (self.failures - 1), self.cap_s)
        return delay * self.rng.uniform(0.5, 1.0)

    def reset(self) -> None:
        self.failures = 0


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter: uniform(0, min(cap, base * 2**attempt))."""
    return (rng or random).uniform(0, min(cap, base * (2**attempt)))


# --------------------------------------------------------------------------------------------
# Gates
# --------------------------------------------------------------------------------------------


class TokenBucket:
    """Paces requests: `rate_per_minute` a minute, bursts up to `burst`, shared by all tasks of a
    loop. Not a limit over a window (a burst plus a minute's refill can exceed the rate in 60 s):
    `WindowGate` is that limit."""

    def __init__(self, rate_per_minute: float, burst: int | None = None, clock=time.monotonic):
        if rate_per_minute <= 0:
            raise ValueError("rate_per_minute must be positive")
        self.rate = rate_per_minute / 60.0
        self.capacity = float(burst if burst is not None else max(1, int(rate_per_minute // 60) or 1))
        self.tokens = self.capacity
        self.clock = clock
        self.updated = clock()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now

    async def acquire(self, cost: float = 1.0) -> float:
        """Wait for `cost` tokens; returns the seconds waited."""
        waited = 0.0
        async with self._lock:
            while True:
                self._refill()
                if self.tokens >= cost:
                    self.tokens -= cost
                    return waited
                delay = (cost - self.tokens) / self.rate
                waited += delay
                await asyncio.sleep(delay)


class WeightGate:
    """Request weight per fixed window (Binance: per minute): waits for the next window rather
    than pass `limit * headroom`. Counts locally and trusts the source's header when it says more."""

    def __init__(self, limit: int, window_s: float = 60.0, headroom: float = 0.9, clock=time.time):
        if limit <= 0 or window_s <= 0:
            raise ValueError("weight limit and window must be positive")
        self.limit, self.window_s, self.budget, self.clock = limit, window_s, limit * headroom, clock
        self.margin = min(1.0, 0.02 * window_s)
        self.window: int | None = None
        self.used = 0.0
        self._lock = asyncio.Lock()

    def _roll(self, now: float) -> None:
        window = int(now // self.window_s)
        if window != self.window:
            self.window, self.used = window, 0.0

    async def acquire(self, cost: float) -> float:
        """Reserve `cost` weight; returns the seconds waited."""
        waited = 0.0
        async with self._lock:
            while True:
                now = self.clock()
                self._roll(now)
                if self.used + cost <= self.budget or self.used == 0:
                    self.used += cost
                    return waited
                delay = (self.window + 1) * self.window_s - now + self.margin
                waited += delay
                await asyncio.sleep(delay)

    def note(self, used: int) -> None:
        """The source's count (e.g. `X-MBX-USED-WEIGHT-1M`) as of a response just received."""
        self._roll(self.clock())
        self.used = max(self.used, float(used))


class WindowGate:
    """At most `requests` requests in any `window_s` seconds as the SOURCE counts them, whatever
    the network and the load do: a request holds its place from the moment it leaves until
    `window_s` after its answer has come back (`acquire` ... `release`). The source saw it at some
    moment in between, so the next request that takes this place reaches it at least `window_s`
    later. Shared by all tasks of a loop; waiters go in turn."""

    def __init__(self, requests: int, window_s: float, clock=time.monotonic):
        if requests < 1 or window_s <= 0:
            raise ValueError("a window limit needs requests >= 1 and window_s > 0")
        self.requests, self.window_s, self.clock = requests, window_s, clock
        self.done: deque[float] = deque()  # when the answers of the window's requests came back
        self.in_flight = 0
        self._changed = asyncio.Condition()

    @classmethod
    def for_rate(cls, per_minute: float, window_s: float = 60.0) -> WindowGate:
        """`per_minute` requests a minute as a limit over any `window_s` seconds (a fractional
        count: the whole requests it allows, over the window they take at that rate)."""
        if per_minute <= 0 or window_s <= 0:
            raise ValueError("requests_per_minute and its window must be positive")
        allowed = per_minute * window_s / 60.0
        whole = max(1, math.floor(allowed + 1e-9))
        return cls(whole, window_s * whole / allowed)

    async def acquire(self) -> float:
        """Wait until one more request fits, count it as in flight; returns the seconds waited."""
        started = self.clock()
        async with self._changed:
            while True:
                now = self.clock()
                while self.done and self.done[0] <= now - self.window_s:
                    self.done.popleft()
                if len(self.done) + self.in_flight < self.requests:
                    self.in_flight += 1
                    return self.clock() - started
                timeout = self.done[0] + self.window_s - now if self.done else None
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        await self._changed.wait()

    async def release(self) -> None:
        """The request's answer came back (or it failed): its place frees `window_s` from now."""
        async with self._changed:
            self.in_flight -= 1
            self.done.append(self.clock())
            self._changed.notify_all()

    async def cancel(self) -> None:
        """The request never left (held back at the wire): its place frees at once."""
        async with self._changed:
            self.in_flight -= 1
            self._changed.notify_all()


async def take_places(gates: list[WindowGate]) -> None:
    """A place in each gate, in order: all of them, or (cancelled or failed meanwhile) none."""
    taken: list[WindowGate] = []
    try:
        for gate in gates:
            await gate.acquire()
            taken.append(gate)
    except BaseException:
        for gate in taken:
            await gate.cancel()
        raise


# --------------------------------------------------------------------------------------------
# Counters: one type for a client, a slice and a run
# --------------------------------------------------------------------------------------------


@dataclass
class RequestStats:
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0  # 429/418 answers and vendors' HTTP-200 limit codes
    server_errors: int = 0  # 5xx answers
    transport_errors: int = 0  # timeouts, refused or broken connections
    weight_waits: int = 0  # waits for the next request-weight window
    weight_wait_s: float = 0.0
    max_used_weight: int = 0
    latency_s: list[float] = field(default_factory=list)

    def add(self, other: RequestStats) -> None:
        for name in (
            "requests",
            "retries",
            "rate_limited",
            "server_errors",
            "transport_errors",
            "weight_waits",
            "weight_wait_s",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.max_used_weight = max(self.max_used_weight, other.max_used_weight)
        self.latency_s.extend(other.latency_s)

    def percentile_ms(self, q: float) -> float | None:
        if not self.latency_s:
            return None
        ordered = sorted(self.latency_s)
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1)

    def as_metadata(self) -> dict[str, Any]:
        figures = {
            "requests": self.requests,
            "retries": self.retries,
            "rate_limited_429": self.rate_limited,
            "server_errors_5xx": self.server_errors,
            "transport_errors": self.transport_errors,
            "latency_p50_ms": self.percentile_ms(0.5),
            "latency_p95_ms": self.percentile_ms(0.95),
        }
        if self.weight_waits or self.max_used_weight:
            figures.update(
                weight_waits=self.weight_waits,
                weight_wait_s=round(self.weight_wait_s, 3),
                max_used_weight_1m=self.max_used_weight,
            )
        return figures


_slice_stats: contextvars.ContextVar[RequestStats | None] = contextvars.ContextVar(
    "slice_stats", default=None
)


@contextlib.contextmanager
def bound(var: contextvars.ContextVar, value):
    """`var` holds `value` inside the block (in this task and the tasks it starts), as before after it."""
    token = var.set(value)
    try:
        yield value
    finally:
        var.reset(token)


def counting(stats: RequestStats) -> contextlib.AbstractContextManager[RequestStats]:
    """Count the requests made inside the block (in this task) on `stats` too."""
    return bound(_slice_stats, stats)


def _tallies(own: RequestStats) -> tuple[RequestStats, ...]:
    """The client's own counters and, inside `counting()`, the slice's."""
    current = _slice_stats.get()
    return (own,) if current is None else (own, current)


# --------------------------------------------------------------------------------------------
# The client
# --------------------------------------------------------------------------------------------

_JSON = msgspec.json.Decoder()


def decode_json(content: bytes) -> Any:
    """A JSON body, read in C (msgspec: ~2x the standard library's speed, integers of any size kept as
    integers); what it refuses and the standard library takes (NaN, 1e400, lone surrogates, a BOM, UTF-16)
    is read by the standard library, so an answer means the same either way."""
    try:
        return _JSON.decode(content)
    except msgspec.DecodeError:
        return json.loads(content)


class ApiClient:
    """Async client with the shared policy. Use as `async with Client(...) as api: await api.call(...)`."""

    api_name = "HTTP API"
    metrics_source: str | None = None  # the `source` label of core.metrics; None: derived from api_name
    ERRORS = ErrorTable()
    LIMITS = Limits()
    # What a body that is not JSON means on a 2xx answer: "data" (a SourceDataError naming the
    # request) or "retry" (a proxy that cut the body: asked again with backoff, then the data error).
    bad_body: ErrorCategory = "data"
    dropped: Any = (
        None  # the rows a source's parsers dropped, by reason (datasets.wire.DropCounts): in `figures`
    )

    def __init__(
        self,
        base_url: str,
        *,
        requests_per_minute: float | None = None,
        max_concurrency: int | None = None,
        timeout_s: float = 30.0,
        retry: RetryPolicy | None = None,
        headers: dict[str, str] | None = None,
        rng: random.Random | None = None,
        weight_per_window: int | None = None,
        weight_window_s: float | None = None,
        weight_headroom: float | None = None,
        deadline_s: float | None = None,
        endpoint_limits: Mapping[str, tuple[int, float]] | None = None,
    ):
        limits = self.LIMITS
        rpm = requests_per_minute if requests_per_minute is not None else limits.requests_per_minute
        concurrency = max_concurrency if max_concurrency is not None else limits.max_concurrency
        self.base_url = base_url.rstrip("/")
        self.bucket = TokenBucket(rpm, burst=max(1, concurrency))  # paces
        self.rate_window = WindowGate.for_rate(rpm, limits.rate_window_s)  # caps any window
        self.semaphore = asyncio.Semaphore(concurrency)
        weight = weight_per_window if weight_per_window is not None else limits.weight_per_window
        self.weight = (
            WeightGate(
                weight,
                weight_window_s or limits.weight_window_s,
                weight_headroom if weight_headroom is not None else limits.weight_headroom,
            )
            if weight
            else None
        )
        # path prefix -> (requests, window_s); `endpoint_limits={}` turns the per-endpoint gates off
        self.endpoint_limits = dict(limits.endpoint_limits if endpoint_limits is None else endpoint_limits)
        self._gates: dict[str, WindowGate] = {}
        self.retry = retry or RetryPolicy()
        self.stats = RequestStats()
        self.rng = rng or random.Random()
        self.pause_until = 0.0  # wall clock: no request leaves before (Retry-After, a source's window)
        self.stopped: dict[str | None, SourceError] = {}  # endpoint (None: every one) -> why it stopped
        self._stopping = asyncio.Event()  # set (and replaced) when something stops: wakes the paused
        # httpx's timeout bounds each read; a body dripped a byte at a time needs a deadline for the whole
        # answer
        self.deadline_s = deadline_s if deadline_s is not None else 4 * timeout_s
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout_s),
            headers=headers or {},
            follow_redirects=False,
            verify=tls_context(),
        )

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    @property
    def http(self) -> httpx.AsyncClient:
        return self._http

    def figures(self) -> dict[str, Any]:
        """The client's request counters and, where the source keeps them (`dropped`:
        datasets.wire.DropCounts), the rows it dropped by reason; a source with counts of its own overrides
        this."""
        return {**self.stats.as_metadata(), **(self.dropped.figures() if self.dropped is not None else {})}

    # ---- what a source declares beyond its tables (override where the vendor differs) ------

    def error_fields(self, payload: Any) -> tuple[Any, str] | None:
        """(code, message) of an error inside a decoded answer, None for a good one."""
        return None

    def is_rate_limited(self, response: httpx.Response) -> bool:
        """For `request()`: which raw responses are waited out and retried."""
        return response.status_code in RATE_LIMIT_STATUS

    def rate_limit_wait(
        self, response: httpx.Response, attempt: int, *, page: Page, message: str, waits: int
    ) -> float:
        """Seconds to wait after a rate-limit answer (`waits`: how many this call waited out
        before): Retry-After, else backoff. A source may raise here to stop waiting."""
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        return (
            retry_after
            if retry_after is not None
            else backoff_delay(attempt, self.retry.backoff_base_s, self.retry.backoff_max_s, self.rng)
        )

    def ban_until(self, message: str) -> datetime | None:
        return None

    def make_error(
        self, category: ErrorCategory, *, status: int, code: Any, message: str, page: Page
    ) -> SourceError:
        """The exception an answer classified as `category` stands for."""
        detail = f"code {code}: {message}" if code is not None else message
        if category in ("banned", "quota"):
            return SourceBanned(
                self.api_name, f"HTTP {status}: {detail}", until=self.ban_until(message), request=page.request
            )
        if category in ("permission", "unauthorized"):
            return SourcePermissionError(self.api_name, status, detail, request=page.request)
        if category == "data":
            return page.error(detail)
        cls = SourceNotFound if category == "not_found" else SourceRequestError
        return cls(self.api_name, page.instrument, status, code, message, request=page.request)

    def exhausted(
        self,
        category: ErrorCategory,
        *,
        method: str,
        path: str,
        status: int | None,
        failure: str,
        attempts: int,
        page: Page | None,
    ) -> Exception:
        """What is raised when retries run out."""
        if category == "data" and page is not None:
            return page.error(f"{failure} after {attempts} attempts")
        request = f" ({page.request})" if page is not None and page.request else ""
        return ApiError(
            self.api_name,
            method,
            path,
            status,
            f"gave up after {attempts} attempts; last: {failure}{request}",
        )

    # ---- the one path ----------------------------------------------------------------------

    def _gate(self, path: str) -> WindowGate | None:
        """The window gate of the longest `endpoint_limits` prefix `path` starts with (one per prefix)."""
        prefix = max((p for p in self.endpoint_limits if path.startswith(p)), key=len, default=None)
        if prefix is None:
            return None
        gate = self._gates.get(prefix)
        if gate is None:
            requests, window_s = self.endpoint_limits[prefix]
            gate = self._gates[prefix] = WindowGate(requests, window_s * (1 + self.LIMITS.endpoint_margin))
        return gate

    def _refuse(self, endpoint: str | None) -> None:
        stopped = self.stopped.get(None) or (self.stopped.get(endpoint) if endpoint else None)
        if stopped is not None:
            raise stopped

    def _stop(self, endpoint: str | None, error: SourceError) -> None:
        """Refuse `endpoint` (None: every one) from now on; requests waiting out a pause learn it now."""
        self.stopped[endpoint] = error
        self._stopping.set()
        self._stopping = asyncio.Event()

    def pause_for(self, seconds: float, since: float | None = None) -> None:
        """No request of the client leaves for `seconds` from `since` (wall clock, default now);
        several pauses at once do not stack."""
        self.pause_until = max(self.pause_until, (time.time() if since is None else since) + seconds)

    def _held(self, endpoint: str | None) -> bool:
        """A pause is on, or something stopped the endpoint: the request must not leave now."""
        return (
            self.pause_until > time.time()
            or None in self.stopped
            or bool(endpoint and endpoint in self.stopped)
        )

    async def _clear(self, cost: float, gates: list[WindowGate], endpoint: str | None) -> None:
        """Wait (holding a concurrency slot) for every pause and limit that applies, take the
        request's weight, token and window places, and return once nothing holds it back; httpx's
        trace (`_at_the_wire`) checks once more right before the first byte goes out."""
        while True:
            while (delay := self.pause_until - time.time()) > 0:
                self._refuse(endpoint)
                with contextlib.suppress(TimeoutError):  # a stop ends the wait at once
                    async with asyncio.timeout(delay):
                        await self._stopping.wait()
            self._refuse(endpoint)
            if self.weight is not None:
                waited = await self.weight.acquire(cost)
                if waited:
                    for stats in _tallies(self.stats):
                        stats.weight_waits += 1
                        stats.weight_wait_s += waited
            await self.bucket.acquire(1.0)
            await take_places(gates)  # as late as possible: right before the request leaves
            if not self._held(endpoint):
                return
            for gate in gates:  # a pause or a stop began while it waited: wait that out first
                await gate.cancel()

    def _at_the_wire(self, endpoint: str | None):
        """The request's httpcore trace: right before its first byte goes out, a pause or stop that
        began since `_clear` holds it back (`_NotSent`); a 429/418 pauses every request for its
        Retry-After as soon as its headers are in, before its body is read and classified."""

        async def trace(event: str, info: dict) -> None:
            if event.endswith(".send_request_headers.started") and self._held(endpoint):
                raise _NotSent(event)
            if event.endswith(".receive_response_headers.complete"):
                _, status, _, headers = info["return_value"]
                if status in RATE_LIMIT_STATUS:
                    value = next((v for k, v in headers if k.lower() == b"retry-after"), None)
                    seconds = parse_retry_after(value.decode("latin-1") if value is not None else None)
                    if seconds is not None and seconds <= self.retry.max_retry_after_s:
                        self.pause_for(seconds)

        return trace

    async def _send(self, method: str, path: str, endpoint: str | None, kwargs: dict) -> httpx.Response:
        """Wait for every gate and pause after taking a concurrency slot, check at the wire that
        nothing paused or stopped the endpoint since, send."""
        cost = kwargs.pop("_weight", None) or self.LIMITS.weights.get(
            endpoint or path, 1
        )  # never sent to httpx
        consume = kwargs.pop("_consume", None)
        kwargs["extensions"] = {**(kwargs.get("extensions") or {}), "trace": self._at_the_wire(endpoint)}
        self._refuse(endpoint)
        gates = [gate for gate in (self.rate_window, self._gate(path)) if gate is not None]
        async with self.semaphore:
            while True:
                await self._clear(cost, gates, endpoint)
                started, sent = time.monotonic(), True
                try:
                    response = await self._transmit(method, path, consume, kwargs)
                except _NotSent:
                    sent = False
                finally:
                    for gate in gates:
                        await (gate.release() if sent else gate.cancel())
                    if sent:
                        for stats in _tallies(self.stats):
                            stats.requests += 1
                if sent:
                    break
        latency = time.monotonic() - started
        metrics.http_response(self.metrics_source or self.api_name, response.status_code, latency)
        for stats in _tallies(self.stats):
            stats.latency_s.append(latency)
        if self.weight is not None and self.LIMITS.weight_header:
            used = response.headers.get(self.LIMITS.weight_header, "").strip()
            if used.isdigit():
                self.weight.note(int(used))
                for stats in _tallies(self.stats):
                    stats.max_used_weight = max(stats.max_used_weight, int(used))
        return response

    async def _transmit(self, method: str, path: str, consume, kwargs: dict) -> httpx.Response:
        if consume is not None:  # a body streamed to its consumer: no whole-answer deadline
            return await self._stream(method, path, consume, kwargs)
        try:
            async with asyncio.timeout(self.deadline_s):
                return await self._http.request(method, path, **kwargs)
        except TimeoutError:
            raise httpx.ReadTimeout(f"no complete answer within the {self.deadline_s:g} s deadline") from None

    async def _stream(self, method: str, path: str, consume, kwargs: dict) -> httpx.Response:
        """Send; a 200 answer's body goes to `consume(response)` as it arrives (any other status is
        read whole, to be classified like every answer)."""
        async with self._http.stream(method, path, **kwargs) as response:
            if response.status_code == 200:
                await consume(response)
            else:
                await response.aread()
        return response

    def _classify(
        self, response: httpx.Response, raw: bool, decode=decode_json
    ) -> tuple[ErrorCategory | None, Any, Any, str]:
        """(category or None, payload, code, message) of an answer."""
        status = response.status_code
        if raw:
            if self.is_rate_limited(response):
                return "rate_limited", None, None, body_excerpt(response, 200)
            if status in RETRYABLE_STATUS:
                return "retry", None, None, body_excerpt(response, 200)
            return None, response, None, ""
        try:
            payload = (decode if status == 200 else decode_json)(response.content)
        except ValueError:
            payload = None
            if status < 400:
                return ("bad_body" if self.bad_body == "retry" else "data"), None, None, "malformed JSON body"
        found = self.error_fields(payload) if payload is not None else None
        if found is None and status < 400:
            return None, payload, None, ""
        code, message = found if found is not None else (None, body_excerpt(response))
        return self.ERRORS.classify(status, code, str(message)), payload, code, str(message)

    async def _loop(
        self,
        method: str,
        path: str,
        *,
        page: Page | None,
        endpoint: str | None,
        raw: bool,
        decode=decode_json,
        **kwargs,
    ) -> Any:
        attempt = waits = 0
        page = page or Page(self.api_name, request=describe_request(method, path, kwargs.get("params")))
        while True:
            try:
                response = await self._send(method, path, endpoint, dict(kwargs))
            except (httpx.TimeoutException, httpx.TransportError) as error:
                metrics.http_transport_error(self.metrics_source or self.api_name)
                for stats in _tallies(self.stats):
                    stats.transport_errors += 1
                category, status, failure = "retry", None, f"{type(error).__name__}: {error}"
                wait = backoff_delay(attempt, self.retry.backoff_base_s, self.retry.backoff_max_s, self.rng)
            else:
                category, payload, code, message = self._classify(response, raw, decode)
                status = response.status_code
                if category is None:
                    return payload
                if category == "rate_limited":
                    metrics.http_rate_limited(self.metrics_source or self.api_name)
                    for stats in _tallies(self.stats):
                        stats.rate_limited += 1
                    told = time.time()  # a source's own pause (Tushare's window) ends where it said
                    wait = self.rate_limit_wait(response, attempt, page=page, message=message, waits=waits)
                    waits += 1
                    if wait > self.retry.max_retry_after_s:
                        metrics.http_error(self.metrics_source or self.api_name, "gave_up")
                        raise ApiError(
                            self.api_name,
                            method,
                            path,
                            status,
                            f"told to wait {wait:.0f} s (Retry-After), more than the "
                            f"{self.retry.max_retry_after_s:.0f} s allowed: {message[:200]} "
                            f"({page.request})",
                        )
                    self.pause_for(
                        wait, told
                    )  # every request, this one's retry too, waits it out in `_clear`,
                    wait = 0.0  # where a ban that comes meanwhile ends the wait at once
                    failure = f"rate limited: {message or response.text[:200]}"
                elif category in ("retry", "bad_body"):
                    metrics.http_error(
                        self.metrics_source or self.api_name,
                        "server_error" if status in RETRYABLE_STATUS else category,
                    )
                    if status in RETRYABLE_STATUS:
                        for stats in _tallies(self.stats):
                            stats.server_errors += 1
                        failure = f"server error: {response.text[:200]}"
                    elif (
                        category == "bad_body"
                    ):  # a cut body: asked again, then a data error naming the request
                        failure = (
                            f"{message} (HTTP {status}, {len(response.content)} bytes): "
                            f"starts {response.text[:80]!r}"
                        )
                        category = "data"
                    else:  # a vendor's "try again" code
                        failure = f"code {code}: {message}" if code is not None else message
                    wait = backoff_delay(
                        attempt, self.retry.backoff_base_s, self.retry.backoff_max_s, self.rng
                    )
                else:
                    if category == "data":
                        message = (
                            f"{message} (HTTP {status}, {len(response.content)} bytes); body starts "
                            f"{response.text[:120]!r}"
                        )
                    error = self.make_error(category, status=status, code=code, message=message, page=page)
                    metrics.http_error(self.metrics_source or self.api_name, category)
                    if category in ("banned", "unauthorized"):
                        self._stop(None, error)
                    elif category in ("quota", "permission") and endpoint:
                        self._stop(endpoint, error)
                    raise error
            if attempt >= self.retry.max_retries:
                metrics.http_error(self.metrics_source or self.api_name, "gave_up")
                raise self.exhausted(
                    category,
                    method=method,
                    path=path,
                    status=status,
                    failure=failure,
                    attempts=attempt + 1,
                    page=page,
                )
            attempt += 1
            metrics.http_retry(self.metrics_source or self.api_name)
            for stats in _tallies(self.stats):
                stats.retries += 1
            await asyncio.sleep(wait)

    async def call(
        self,
        method: str,
        path: str,
        *,
        page: Page | None = None,
        endpoint: str | None = None,
        decode=decode_json,
        **kwargs,
    ) -> Any:
        """Send through the whole policy; the decoded JSON answer, or the `SourceError` it stands
        for (`ERRORS`). `endpoint` (default: the path) names what a quota or permission error stops
        (bans stop every endpoint) and keys the endpoint's weight in `LIMITS.weights`; pass a fixed
        one where the path carries the instrument (Yahoo's chart path). `decode`: how a 200 answer's
        body is read (a declared page's records: datasets.declared.typed_pages)."""
        return await self._loop(
            method, path, page=page, endpoint=endpoint or path, raw=False, decode=decode, **kwargs
        )

    async def stream(
        self, method: str, path: str, consume, *, page: Page | None = None, **kwargs
    ) -> httpx.Response:
        """`request()` for a large body: a 200 answer is handed to `consume(response)` (an async
        function reading `response.aiter_bytes()`) while it arrives, under the same limits, counters
        and retries; a transfer cut or broken mid-body is retried whole (`consume` must start over:
        truncate what it writes). Returns the response (its body already consumed when 200)."""
        return await self._loop(method, path, page=page, endpoint=None, raw=True, _consume=consume, **kwargs)

    async def request(self, method: str, path: str, **kwargs) -> httpx.Response:
        """Send with rate limit and retries. Returns the response for any status that is not
        retried (2xx, and 4xx other than 429/418); raises ApiError when retries run out."""
        return await self._loop(method, path, page=None, endpoint=None, raw=True, **kwargs)
