"""How a run works through one provider's symbols (no Dagster here: plain asyncio, tested through the assets).

`ProviderRun` takes the run's keys (A-share codes, Yahoo symbols, crypto (kind, instrument, day)
slices), works on `workers` of them at once with one shared client, and gives every key an
`Outcome`:

- each key is independent: an error is recorded on that key and the others go on;
- a key whose fetch failed is retried (after the keys not yet tried) until `attempts`; a batch of
  keys (Tushare `daily` answers 100 codes at once) that fails is split into single keys first, so
  one bad symbol cannot fail its neighbours;
- `SourceRequestError` (unknown symbol, rejected parameter) is not retried: asking again gets the
  same answer;
- `SourceBanned` / `SourcePermissionError` (HTTP 418, IP bans, Tushare quotas and permissions,
  bad tokens, 401/403) STOP the provider: the key fails with the vendor's message, every key not
  started yet is `skipped` ("not attempted: ... stopped: ...") and no further request is sent;
- progress goes to the run log every `progress_every` keys or `progress_every_s` seconds.

Request figures per key (requests, retries, 429s, latency) come from httpx event hooks installed on
the client (`count_requests`) and a context variable set around each key's fetch, so concurrent
keys of one client are told apart. A batch's requests are counted on its first key (totals stay
exact). Provider totals come from the client's own `stats`.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any

import httpx

from marketdata_assets.lib.markdown import table
from marketdata_assets.lib.http import SourceBanned, SourcePermissionError, SourceRequestError

UTC = timezone.utc
STOP_ERRORS = (SourceBanned, SourcePermissionError)
OUTCOMES = ("ok", "failed", "skipped")


# --------------------------------------------------------------------------------------------
# Request figures per key
# --------------------------------------------------------------------------------------------

@dataclass
class KeyStats:
    requests: int = 0
    responses: int = 0
    rate_limited: int = 0       # HTTP 429 / 418 answers
    server_errors: int = 0      # 5xx answers
    latency_s: list[float] = field(default_factory=list)
    _sent: dict = field(default_factory=dict, repr=False)

    @property
    def retries(self) -> int:
        """Attempts that the shared policy repeats: 429/418 and 5xx answers, and requests that got no
        answer (timeouts, transport errors)."""
        return self.rate_limited + self.server_errors + max(0, self.requests - self.responses)

    def percentile_ms(self, q: float) -> float:
        if not self.latency_s:
            return 0.0
        ordered = sorted(self.latency_s)
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1)

    def add(self, other: KeyStats) -> None:
        self.requests += other.requests
        self.responses += other.responses
        self.rate_limited += other.rate_limited
        self.server_errors += other.server_errors
        self.latency_s.extend(other.latency_s)


_current_stats: contextvars.ContextVar[KeyStats | None] = contextvars.ContextVar("ticks_key_stats", default=None)


def count_requests(client) -> None:
    """Attribute the requests of an ApiClient (its httpx client) to the key being fetched."""
    async def on_request(request: httpx.Request) -> None:
        stats = _current_stats.get()
        if stats is not None:
            stats.requests += 1
            stats._sent[id(request)] = time.monotonic()

    async def on_response(response: httpx.Response) -> None:
        stats = _current_stats.get()
        if stats is None:
            return
        started = stats._sent.pop(id(response.request), None)
        stats.responses += 1
        if started is not None:
            stats.latency_s.append(time.monotonic() - started)
        if response.status_code in (429, 418):
            stats.rate_limited += 1
        elif response.status_code >= 500:
            stats.server_errors += 1

    hooks = client.http.event_hooks
    hooks["request"].append(on_request)
    hooks["response"].append(on_response)


# --------------------------------------------------------------------------------------------
# Outcomes
# --------------------------------------------------------------------------------------------

@dataclass
class Outcome:
    key: Hashable
    status: str = "pending"     # pending -> fetched -> ok | failed | skipped
    value: Any = None           # what the fetch returned for the key (dropped once written)
    error: str = ""
    attempts: int = 0
    stats: KeyStats = field(default_factory=KeyStats)
    started_at: datetime | None = None
    finished_at: datetime | None = None

    def fail(self, message: str, status: str = "failed") -> None:
        self.status, self.error, self.value = status, message, None
        self.finished_at = datetime.now(UTC)


def error_text(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text if isinstance(error, (RuntimeError, ValueError)) else f"{type(error).__name__}: {text}"


def describe_error(error: BaseException, label: str) -> str:
    """The error's own message, prefixed with `label` (venue, instrument, day) unless it names it."""
    text = error_text(error)
    return text if label.split(" ")[0].split(":")[-1] in text else f"{label}: {text}"


class ProviderRun:
    """One provider's keys of a run (see the module docstring)."""

    def __init__(self, provider: str, *, workers: int, attempts: int = 2, what: str = "symbols",
                 log: Callable[[str], None] | None = None, progress_every: int = 250,
                 progress_every_s: float = 10.0, label: Callable[[Hashable], str] = str):
        if workers < 1 or attempts < 1:
            raise ValueError("workers and attempts must be >= 1")
        self.provider, self.workers, self.attempts, self.what = provider, workers, attempts, what
        self.log = log or (lambda message: None)
        self.progress_every, self.progress_every_s = progress_every, progress_every_s
        self.label = label
        self.stopped: BaseException | None = None
        self.outcomes: dict[Hashable, Outcome] = {}
        self._done = 0
        self._last_report = 0.0
        self._started = 0.0

    @property
    def stop_message(self) -> str:
        return f"{self.provider} stopped: {self.stopped}" if self.stopped else ""

    def _report(self, force: bool = False) -> None:
        now = time.monotonic()
        total = len(self.outcomes)
        if not force and self._done % self.progress_every and now - self._last_report < self.progress_every_s:
            return
        self._last_report = now
        counts = {s: sum(o.status == s for o in self.outcomes.values()) for s in ("failed", "skipped")}
        ok = self._done - counts["failed"] - counts["skipped"]
        elapsed = max(now - self._started, 1e-9)
        rate = self._done / elapsed
        eta = f", about {(total - self._done) / rate:.0f} s left" if rate and self._done < total else ""
        self.log(f"{self.provider}: {self._done}/{total} {self.what} done ({ok} fetched, {counts['failed']} failed, "
                 f"{counts['skipped']} skipped), {rate:.1f}/s{eta}")

    def _finish(self, outcome: Outcome) -> None:
        self._done += 1
        self._report()

    async def run(self, keys: Sequence[Hashable],
                  fetch: Callable[[tuple], Awaitable[dict]],
                  *, batch_size: int = 1,
                  on_fetched: Callable[[Outcome], Awaitable[None]] | None = None) -> dict[Hashable, Outcome]:
        """Fetch every key; `fetch(batch)` returns {key: value} for the keys of the batch (a key
        missing from the answer fails). `on_fetched(outcome)` (e.g. a write) runs after each key's
        fetch; if it raises, the key fails (not retried)."""
        self._started = self._last_report = time.monotonic()
        self.outcomes = {key: Outcome(key) for key in dict.fromkeys(keys)}
        ordered = list(self.outcomes)
        queue: deque[tuple[tuple, int]] = deque(
            (tuple(ordered[i:i + batch_size]), 0) for i in range(0, len(ordered), max(1, batch_size)))
        self.log(f"{self.provider}: {len(ordered)} {self.what} to fetch, {self.workers} at once")

        async def settle(batch: tuple, answer: dict) -> None:
            for key in batch:
                outcome = self.outcomes[key]
                if key not in answer:
                    outcome.fail(f"{self.label(key)}: the provider's answer has no data for it")
                    self._finish(outcome)
                    continue
                outcome.value, outcome.status = answer[key], "fetched"
                outcome.finished_at = datetime.now(UTC)
                if on_fetched is not None:
                    try:
                        await on_fetched(outcome)
                    except Exception as error:  # noqa: BLE001 - recorded on the key, the others go on
                        outcome.fail(f"{self.label(key)}: write failed: {error_text(error)}")
                self._finish(outcome)

        async def worker() -> None:
            while queue:
                batch, attempt = queue.popleft()
                if self.stopped is not None:
                    for key in batch:
                        self.outcomes[key].fail(f"not attempted: {self.stop_message}", status="skipped")
                        self._finish(self.outcomes[key])
                    continue
                stats = KeyStats()
                for key in batch:
                    outcome = self.outcomes[key]
                    outcome.attempts += 1
                    outcome.started_at = outcome.started_at or datetime.now(UTC)
                token = _current_stats.set(stats)
                try:
                    answer = await fetch(batch)
                except STOP_ERRORS as error:
                    if self.stopped is None:
                        self.stopped = error
                        self.log(f"{self.provider}: STOPPED, no further requests in this run: {error}")
                    for key in batch:
                        self.outcomes[key].fail(describe_error(error, self.label(key)))
                        self._finish(self.outcomes[key])
                    continue
                except Exception as error:  # noqa: BLE001 - one key's failure never stops the others
                    if len(batch) > 1:  # find the bad key: one request per key
                        queue.extend(((key,), attempt) for key in batch)
                        continue
                    key = batch[0]
                    outcome = self.outcomes[key]
                    outcome.error = describe_error(error, self.label(key))
                    if attempt + 1 < self.attempts and not isinstance(error, SourceRequestError):
                        self.log(f"{self.provider}: {outcome.error} (attempt {attempt + 1} of {self.attempts}; "
                                 "retried after the others)")
                        queue.append((batch, attempt + 1))
                    else:
                        outcome.fail(outcome.error)
                        self._finish(outcome)
                    continue
                finally:
                    _current_stats.reset(token)
                    self.outcomes[batch[0]].stats.add(stats)
                await settle(batch, answer if isinstance(answer, dict) else {})

        await asyncio.gather(*(worker() for _ in range(min(self.workers, max(1, len(queue))))))
        self._report(force=True)
        return self.outcomes


# --------------------------------------------------------------------------------------------
# ingest_log rows and lookups
# --------------------------------------------------------------------------------------------

def log_row(run_id: str, provider: str, kind: str, venue: str, instrument: str, day: date, outcome: Outcome, *,
            status: str | None = None, rows: int = 0, load_id: int = 0, error: str | None = None,
            stats: KeyStats | None = None) -> dict:
    """One ingest_log row (lib.ticks.writer.log_ingest) for a (run, provider, instrument, day) attempt."""
    stats = stats if stats is not None else outcome.stats
    now = datetime.now(UTC)
    status = status or outcome.status
    return {"run_id": run_id, "provider": provider, "kind": kind, "venue": venue or "", "instrument": instrument,
            "day": day, "rows": rows, "requests": stats.requests, "retries": stats.retries,
            "rate_limited": stats.rate_limited, "latency_p50_ms": stats.percentile_ms(0.5),
            "latency_p95_ms": stats.percentile_ms(0.95), "outcome": status if status in OUTCOMES else "failed",
            "error": outcome.error if error is None else error, "load_id": load_id,
            "started_at": outcome.started_at or now, "finished_at": outcome.finished_at or now}


def _db(database: str) -> str:
    from marketdata_assets.lib.identifiers import sql_identifier

    return f"`{sql_identifier(database, 'ClickHouse database')}`"


def loaded_ok(client, database: str, provider: str, kind: str, days: Sequence[date]) -> set[tuple[str, date]]:
    """(instrument, day) slices whose latest ingest_log attempt by `provider` succeeded."""
    if not days:
        return set()
    rows = client.query(
        f"SELECT instrument, day FROM {_db(database)}.ingest_log WHERE provider = {{provider:String}} "
        "AND kind = {kind:String} AND day IN {days:Array(Date)} GROUP BY instrument, day "
        "HAVING argMax(outcome, finished_at) = 'ok'",
        parameters={"provider": provider, "kind": kind, "days": list(days)}).result_rows
    return {(r[0], r[1]) for r in rows}


def not_ok_in_run(client, database: str, run_id: str, provider: str, kind: str,
                  days: Sequence[date]) -> set[tuple[str, date]]:
    """(instrument, day) slices that failed or were skipped in run `run_id`."""
    if not days:
        return set()
    rows = client.query(
        f"SELECT DISTINCT instrument, day FROM {_db(database)}.ingest_log WHERE run_id = {{run_id:String}} "
        "AND provider = {provider:String} AND kind = {kind:String} AND day IN {days:Array(Date)} "
        "AND outcome != 'ok'",
        parameters={"run_id": run_id, "provider": provider, "kind": kind, "days": list(days)}).result_rows
    return {(r[0], r[1]) for r in rows}


# --------------------------------------------------------------------------------------------
# Summaries for metadata
# --------------------------------------------------------------------------------------------

def success_line(ok: int, total: int) -> str:
    """The seed's summary: "Successful: 148/150"."""
    return f"Successful: {ok}/{total}"


def failures_table(rows: Sequence[tuple[str, str, str, int]], limit: int = 200) -> str:
    """Markdown table of (what, outcome, error, attempts)."""
    return table(["slice", "outcome", "error", "attempts"],
                 ((what, status, error[:700], attempts) for what, status, error, attempts in rows), limit=limit)


def provider_table(stats_by_provider: dict[str, dict]) -> str:
    """Markdown table of each provider client's RequestStats.as_metadata()."""
    columns = ["provider", "requests", "retries", "rate_limited_429", "server_errors_5xx", "transport_errors",
               "latency_p50_ms", "latency_p95_ms"]
    return table(columns, ([name, *(figures.get(c) for c in columns[1:])] for name, figures in stats_by_provider.items()))
