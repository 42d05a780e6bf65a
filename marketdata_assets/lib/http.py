"""The base of every vendor HTTP client: rate limit, concurrency limit, retries, and counters.

Vendor modules (alpha API, Tushare, Yahoo, Binance, OKX, Deribit) subclass `ApiClient` and add
their own authentication and payload parsing; the policy here is shared:

- a token bucket across all concurrent requests of the client (requests per minute),
- a semaphore bounding requests in flight,
- 429/418 wait for `Retry-After` (seconds, float strings like "5.0" too, or an HTTP date),
- 5xx, timeouts and transport errors retried with exponential backoff and full jitter,
- other 4xx returned to the caller, which knows what the vendor meant by them,
- counters (requests, retries, 429s, latency) for materialization metadata.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

RETRYABLE_STATUS = frozenset({500, 502, 503, 504, 520, 521, 522, 524})
RATE_LIMIT_STATUS = frozenset({429, 418})


class ApiError(RuntimeError):
    """A request that failed for good: names the API, the request and what came back."""

    def __init__(self, api: str, method: str, path: str, status: int | None, detail: str):
        self.api, self.method, self.path, self.status, self.detail = api, method, path, status, detail
        where = f"{api} {method} {path}"
        super().__init__(f"{where}: HTTP {status}: {detail}" if status else f"{where}: {detail}")


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
    return max(0.0, seconds) if seconds == seconds else None  # NaN -> None


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter: uniform(0, min(cap, base * 2**attempt))."""
    return (rng or random).uniform(0, min(cap, base * (2 ** attempt)))


class TokenBucket:
    """`rate_per_minute` requests per minute, bursts up to `burst`, shared by all tasks of a loop."""

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

    def penalize(self, seconds: float) -> None:
        """After a 429, nobody sends for `seconds`: drain the bucket into the future."""
        self._refill()
        self.tokens = min(self.tokens, 0.0) - seconds * self.rate


@dataclass
class RequestStats:
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    server_errors: int = 0
    transport_errors: int = 0
    latency_s: list[float] = field(default_factory=list)

    def as_metadata(self) -> dict[str, Any]:
        lat = sorted(self.latency_s)
        pct = (lambda q: round(lat[min(len(lat) - 1, int(q * len(lat)))] * 1000, 1)) if lat else (lambda q: None)
        return {"requests": self.requests, "retries": self.retries, "rate_limited_429": self.rate_limited,
                "server_errors_5xx": self.server_errors, "transport_errors": self.transport_errors,
                "latency_p50_ms": pct(0.5), "latency_p95_ms": pct(0.95)}


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 5
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    # Never sleep longer than this on a Retry-After: past it the request fails with a clear error.
    max_retry_after_s: float = 300.0


class ApiClient:
    """Async client with the shared policy. Use as `async with Client(...) as api: await api.request(...)`."""

    api_name = "HTTP API"

    def __init__(self, base_url: str, *, requests_per_minute: float = 600, max_concurrency: int = 8,
                 timeout_s: float = 30.0, retry: RetryPolicy | None = None, headers: dict[str, str] | None = None,
                 rng: random.Random | None = None):
        self.base_url = base_url.rstrip("/")
        self.bucket = TokenBucket(requests_per_minute, burst=max(1, max_concurrency))
        self.semaphore = asyncio.Semaphore(max_concurrency)
        self.retry = retry or RetryPolicy()
        self.stats = RequestStats()
        self.rng = rng or random.Random()
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=httpx.Timeout(timeout_s),
                                       headers=headers or {}, follow_redirects=False)

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    @property
    def http(self) -> httpx.AsyncClient:
        return self._http

    def is_rate_limited(self, response: httpx.Response) -> bool:
        """Vendors that signal limits differently (HTTP 200 + error code) override this."""
        return response.status_code in RATE_LIMIT_STATUS

    async def request(self, method: str, path: str, *, cost: float = 1.0, **kwargs) -> httpx.Response:
        """Send with rate limit and retries. Returns the response for any status that is not
        retried (2xx, and 4xx other than 429/418); raises ApiError when retries run out."""
        attempt = 0
        while True:
            await self.bucket.acquire(cost)
            started = time.monotonic()
            try:
                async with self.semaphore:
                    self.stats.requests += 1
                    response = await self._http.request(method, path, **kwargs)
            except (httpx.TimeoutException, httpx.TransportError) as error:
                self.stats.transport_errors += 1
                failure = f"{type(error).__name__}: {error}"
                wait = backoff_delay(attempt, self.retry.backoff_base_s, self.retry.backoff_max_s, self.rng)
                status = None
            else:
                self.stats.latency_s.append(time.monotonic() - started)
                if self.is_rate_limited(response):
                    self.stats.rate_limited += 1
                    retry_after = parse_retry_after(response.headers.get("Retry-After"))
                    wait = retry_after if retry_after is not None else backoff_delay(
                        attempt, self.retry.backoff_base_s, self.retry.backoff_max_s, self.rng)
                    if wait > self.retry.max_retry_after_s:
                        raise ApiError(self.api_name, method, path, response.status_code,
                                       f"told to wait {wait:.0f} s (Retry-After), more than the "
                                       f"{self.retry.max_retry_after_s:.0f} s allowed: {response.text[:200]}")
                    self.bucket.penalize(wait)
                    failure, status = f"rate limited: {response.text[:200]}", response.status_code
                elif response.status_code in RETRYABLE_STATUS:
                    self.stats.server_errors += 1
                    failure, status = f"server error: {response.text[:200]}", response.status_code
                    wait = backoff_delay(attempt, self.retry.backoff_base_s, self.retry.backoff_max_s, self.rng)
                else:
                    return response
            if attempt >= self.retry.max_retries:
                raise ApiError(self.api_name, method, path, status,
                               f"gave up after {attempt + 1} attempts; last: {failure}")
            attempt += 1
            self.stats.retries += 1
            await asyncio.sleep(wait)
