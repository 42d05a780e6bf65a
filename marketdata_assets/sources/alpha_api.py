"""Client of the WorldQuant BRAIN-style alpha API: sessions per account, month listing by windows.

It handles the vendor's quirks (session cookie, persona 401, rate limits, `next` links to rewrite, an
offset limit that splits a month into dateCreated windows) and never shows a password. Over 500 lines:
everything about the alpha API source in one module (auth, paging, windows, errors).
The quirks, one by one: docs/alphas.md, "The vendor's API as the client reads it".
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, quote, urljoin, urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import httpx

from marketdata_assets.core import metrics
from marketdata_assets.core.http import ApiClient, ApiError, backoff_delay
from marketdata_assets.datasets.alpha_files import check_account
from marketdata_assets.sources.interface import HISTORY, AccountApi, Source

log = logging.getLogger(__name__)

NY = ZoneInfo("America/New_York")
AUTH_PATH = "/authentication"
LIST_PATH = "/users/self/alphas"
PAGE_LIMIT = 100  # the API's largest page
MAX_WINDOW_RESULTS = 10_000  # offset + limit must stay within this
ALPHA_TYPES = ("REGULAR", "SUPER")
SESSION_COOKIE = "t"
CONCURRENT_LIMIT = b"CONCURRENT_SIMULATION_LIMIT_EXCEEDED"

AlphaCallback = Callable[[dict], "Awaitable[Any] | Any"]


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class AlphaApiError(ApiError):
    """A request of the alpha API that failed for good (the message names the URL)."""


class InvalidResponseError(AlphaApiError):
    """The body was not the JSON object expected, on every attempt."""


class AlphaAuthError(RuntimeError):
    """Authentication failed for an account. Names the account, never the password."""

    def __init__(self, account: str, detail: str):
        self.account, self.detail = account, detail
        super().__init__(f"alpha API account {account!r}: {detail}")


class PersonaRequired(AlphaAuthError):
    """The account must pass an interactive (biometric) identity check before the API answers."""

    def __init__(self, account: str, location: str):
        self.location = location
        super().__init__(
            account,
            "the API requires an interactive biometric (persona) check "
            f"before it answers again: open {location} in a browser, complete the check "
            "as this account's user, then rerun. Not retried.",
        )


class AlphaConfigError(ValueError):
    """Missing or malformed configuration (names the variable, never a value)."""


# --------------------------------------------------------------------------------------------
# Accounts
# --------------------------------------------------------------------------------------------


def env_key(name: str) -> str:
    """The account part of the variable names: upper case, anything else than A-Z0-9 as `_`."""
    key = re.sub(r"[^A-Z0-9]", "_", name.strip().upper())
    if not key.strip("_"):
        raise AlphaConfigError(f"account name {name!r} has no letter or digit")
    return key


def credential_vars(name: str) -> tuple[str, str]:
    """(`ALPHA_API_USER_<NAME>`, `ALPHA_API_PASSWORD_<NAME>`) for an account name."""
    key = env_key(name)
    return f"ALPHA_API_USER_{key}", f"ALPHA_API_PASSWORD_{key}"


@dataclass(frozen=True)
class AlphaAccount:
    """An account's name (as configured) and credentials. repr/str never show the password."""

    name: str
    user: str
    password: str = field(repr=False)

    def __str__(self) -> str:
        return f"alpha account {self.name!r} (user {self.user!r})"

    @classmethod
    def from_env(cls, name: str, environ: Mapping[str, str] | None = None) -> AlphaAccount:
        environ = os.environ if environ is None else environ
        user_var, password_var = credential_vars(name)
        missing = [var for var in (user_var, password_var) if not environ.get(var)]
        if missing:
            raise AlphaConfigError(f"alpha account {name!r}: set {' and '.join(missing)}")
        return cls(name=name, user=environ[user_var], password=environ[password_var])


def parse_account_names(text: str) -> list[str]:
    """Account names from configuration ("main, research"): each one also a partition key and a
    directory of the landing layout, so checked like one (files.check_account)."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise AlphaConfigError("no alpha accounts configured: set ALPHA_API_ACCOUNTS (e.g. main,research)")
    try:
        return [check_account(name) for name in names]
    except ValueError as error:
        raise AlphaConfigError(f"ALPHA_API_ACCOUNTS: {error}") from None


def accounts_from_env(
    names: Iterable[str] | str, environ: Mapping[str, str] | None = None
) -> list[AlphaAccount]:
    """Accounts for configured names ("a,b" or a list), credentials from their environment variables."""
    if isinstance(names, str):
        names = parse_account_names(names)
    accounts = [AlphaAccount.from_env(name, environ) for name in names]
    keys = [env_key(a.name) for a in accounts]
    if len(set(keys)) != len(keys):
        raise AlphaConfigError(f"account names collide once upper-cased: {[a.name for a in accounts]}")
    return accounts


# --------------------------------------------------------------------------------------------
# Time windows and URLs
# --------------------------------------------------------------------------------------------


def month_window(month: str) -> tuple[datetime, datetime]:
    """[start, end) of a "YYYY-MM" month in New York time (aware datetimes). "YYYY-MM-01" (a
    Dagster monthly partition key) is accepted too."""
    match = re.fullmatch(r"(\d{4})-(\d{2})(?:-01)?", month.strip())
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise AlphaConfigError(f"month must look like 2025-07 (or 2025-07-01), got {month!r}")
    year, mon = int(match.group(1)), int(match.group(2))
    start = datetime(year, mon, 1, tzinfo=NY)
    end = datetime(year + (mon == 12), mon % 12 + 1, 1, tzinfo=NY)
    return start, end


def format_time(moment: datetime) -> str:
    """ISO 8601 in New York time with its offset, whole seconds: 2025-07-18T23:32:42-04:00."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: give a time zone")
    return moment.astimezone(NY).replace(microsecond=0).isoformat()


def date_created_filter(start: datetime, end: datetime) -> str:
    """The query fragment for start <= dateCreated < end, in BRAIN's convention:
    `dateCreated%3E=START&dateCreated%3CEND` (the operator is part of the key; `<` has no `=`)."""

    def enc(moment: datetime) -> str:
        return quote(format_time(moment), safe=":-T")  # a "+" offset would otherwise read as a space

    return f"dateCreated%3E={enc(start)}&dateCreated%3C{enc(end)}"


def list_path(
    start: datetime,
    end: datetime,
    *,
    alpha_type: str | None,
    limit: int = PAGE_LIMIT,
    offset: int = 0,
    order: str = "dateCreated",
) -> str:
    """`/users/self/alphas?limit=&offset=&order=&type=&dateCreated%3E=...&dateCreated%3C...`."""
    parts = [f"limit={limit}", f"offset={offset}", f"order={quote(order)}"]
    if alpha_type:
        parts.append(f"type={quote(alpha_type)}")
    parts.append(date_created_filter(start, end))
    return f"{LIST_PATH}?{'&'.join(parts)}"


def rewrite_next(next_url: str, base_url: str) -> str:
    """The URL to request for a `next` link: its path and query joined to the configured base URL.

    The API answers `http://HOST:443/users/self/alphas?...` (http on 443); with base
    `https://HOST` that becomes `https://HOST/users/self/alphas?...`, and with a replay server's
    `http://127.0.0.1:PORT` it goes to the replay server. The query is kept byte for byte.
    A base with a path prefix keeps it unless the link's path already starts with it.
    """
    link = urlsplit(next_url)
    base = urlsplit(base_url.rstrip("/"))
    path = link.path or "/"
    prefix = base.path.rstrip("/")
    if prefix and not (path == prefix or path.startswith(prefix + "/")):
        path = prefix + path
    return urlunsplit((base.scheme, base.netloc, path, link.query, ""))


def _offset_of(url: str) -> int:
    for key, value in parse_qsl(urlsplit(url).query, keep_blank_values=True):
        if key == "offset":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))  # noqa: FURB162  also takes "2024-01-01Z"
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=NY)


class _WindowTooBig(Exception):
    """A listing window one listing cannot page through whole (why: the message): it is split in halves."""


async def _all_or_nothing(*coroutines) -> None:
    """Run concurrently; on the first failure cancel the rest (no orphan requests) and raise it."""
    tasks = [asyncio.ensure_future(c) for c in coroutines]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        for task in tasks:
            task.cancel()  # a no-op for the finished ones
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException) and not isinstance(outcome, asyncio.CancelledError):
            raise outcome


# --------------------------------------------------------------------------------------------
# Stats
# --------------------------------------------------------------------------------------------


@dataclass
class FetchStats:
    """Counters of one `fetch_month` (request counters are this call's share of the client's)."""

    account: str = ""
    month: str = ""
    requests: int = 0
    retries: int = 0
    rate_limited_429: int = 0
    server_errors_5xx: int = 0
    transport_errors: int = 0
    invalid_bodies: int = 0
    reauths: int = 0
    pages: int = 0
    windows: int = 0
    windows_split: int = 0
    alphas: int = 0
    duplicates_dropped: int = 0  # seen again: pages shifted, or re-listed after a learned offset limit
    count_mismatches: int = 0
    out_of_window: int = 0
    alphas_by_type: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def as_metadata(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k not in ("alphas_by_type",)}
        out["alphas_by_type"] = dict(self.alphas_by_type)
        return out


@dataclass
class MonthFetch:
    """What `fetch_month` returns: the alphas (unless a callback took them) and the stats."""

    account: str
    month: str
    start: str
    end: str
    alphas: list[dict]
    stats: FetchStats

    @property
    def ids(self) -> list[str]:
        return [a["id"] for a in self.alphas]


# --------------------------------------------------------------------------------------------
# The client of one account
# --------------------------------------------------------------------------------------------


ACCOUNT_HTTP = {"requests_per_minute": 240, "max_concurrency": 4, "timeout_s": 60.0}  # an account's default


class AlphaApiClient(ApiClient):
    """One account's session over the shared HTTP policy (its own rate limit and concurrency).

    `async with AlphaApiClient(base_url, account) as api: result = await api.fetch_month("2025-07")`
    """

    api_name = "Alpha API"
    metrics_source = "alpha_api"  # every request, 429, retry and latency goes to core.metrics under it

    def __init__(
        self,
        base_url: str,
        account: AlphaAccount,
        *,
        page_limit: int = PAGE_LIMIT,
        max_window_results: int = MAX_WINDOW_RESULTS,
        types: Sequence[str] = ALPHA_TYPES,
        order: str = "dateCreated",
        **http: Any,  # ApiClient's (retry, rng, ...); an account's rate, concurrency, timeout: ACCOUNT_HTTP
    ):
        super().__init__(base_url, headers={"Accept": "application/json"}, **{**ACCOUNT_HTTP, **http})
        if page_limit < 1 or max_window_results < page_limit:
            raise AlphaConfigError("need 1 <= page_limit <= max_window_results")
        self.account = account
        self.page_limit = page_limit
        self.max_window_results = max_window_results
        self.types = tuple(types)
        self.order = order
        self.reauths = 0
        self.invalid_bodies = 0
        self.authentications = 0
        self._token: str | None = None
        self._expires_at = 0.0
        self._generation = 0
        self._auth_lock = asyncio.Lock()
        self._blocked: AlphaAuthError | None = None

    def __repr__(self) -> str:
        return f"AlphaApiClient(base_url={self.base_url!r}, account={self.account.name!r})"

    # ---- sessions --------------------------------------------------------------------------

    def _absolute(self, path_or_url: str) -> str:
        if path_or_url.startswith(("http://", "https://")):
            return path_or_url
        return self.base_url + path_or_url

    def _persona_location(self, response: httpx.Response) -> str | None:
        challenge = response.headers.get("WWW-Authenticate", "")
        if response.status_code == 401 and challenge.strip().split(" ")[0].lower().rstrip(",") == "persona":
            location = response.headers.get("Location") or "(no Location header given)"
            return urljoin(self.base_url + "/", location) if response.headers.get("Location") else location
        return None

    def _stop_for_persona(self, response: httpx.Response) -> None:
        location = self._persona_location(response)
        if location is not None:
            self._blocked = PersonaRequired(self.account.name, location)
            log.error(
                "alpha API account %r needs an interactive persona check: %s", self.account.name, location
            )
            raise self._blocked

    async def authenticate(self) -> dict:
        """`POST /authentication` with HTTP Basic; keeps the session cookie `t`. Returns the body."""
        if self._blocked:
            raise self._blocked
        self._http.headers.pop("Cookie", None)
        self._http.cookies.clear()
        response = await self.request(
            "POST", AUTH_PATH, auth=httpx.BasicAuth(self.account.user, self.account.password)
        )
        self.authentications += 1
        self._stop_for_persona(response)
        if response.status_code == 401:
            raise AlphaAuthError(
                self.account.name,
                f"credentials rejected by POST {self._absolute(AUTH_PATH)} "
                f"(HTTP 401: {response.text[:200]}); check {' / '.join(credential_vars(self.account.name))}",
            )
        if response.status_code not in (200, 201):
            raise AlphaAuthError(
                self.account.name,
                f"POST {self._absolute(AUTH_PATH)} answered HTTP "
                f"{response.status_code}: {response.text[:200]}",
            )
        token = self._session_cookie(response)
        if not token:
            raise AlphaAuthError(
                self.account.name,
                f"POST {self._absolute(AUTH_PATH)} answered "
                f"{response.status_code} without a session cookie {SESSION_COOKIE!r}",
            )
        try:
            body = response.json()
        except ValueError:
            body = {}
        expiry = None
        if isinstance(body, dict) and isinstance(body.get("token"), dict):
            expiry = body["token"].get("expiry")
        ttl = float(expiry) if isinstance(expiry, (int, float)) and expiry > 0 else 4 * 3600.0
        self._token = token
        self._http.headers["Cookie"] = f"{SESSION_COOKIE}={token}"
        self._http.cookies.clear()  # the header above is the one session; the jar stays empty
        self._expires_at = time.monotonic() + ttl - min(60.0, ttl * 0.1)
        self._generation += 1
        log.info("alpha API account %r authenticated (session for %.0f s)", self.account.name, ttl)
        return body if isinstance(body, dict) else {}

    @staticmethod
    def _session_cookie(response: httpx.Response) -> str | None:
        # Parsed from the headers ourselves: a jar may refuse a Secure cookie over http (replay).
        for header in response.headers.get_list("set-cookie"):
            jar = SimpleCookie()
            try:
                jar.load(header)
            except Exception:  # noqa: BLE001, S112 - a malformed cookie is just not ours
                continue
            if SESSION_COOKIE in jar and jar[SESSION_COOKIE].value:
                return jar[SESSION_COOKIE].value
        return None

    async def _ensure_session(self) -> None:
        if self._blocked:
            raise self._blocked
        if self._token and time.monotonic() < self._expires_at:
            return
        async with self._auth_lock:
            if not (self._token and time.monotonic() < self._expires_at):
                await self.authenticate()

    async def _reauthenticate(self, generation: int) -> None:
        async with self._auth_lock:
            if self._generation != generation:
                return  # another request already renewed the session
            self.reauths += 1
            log.info("alpha API account %r: session expired (401), re-authenticating", self.account.name)
            await self.authenticate()

    async def check_session(self) -> bool:
        """`GET /authentication`: True while the session is valid (200), False on a plain 401."""
        if self._blocked:
            raise self._blocked
        if not self._token:
            return False
        response = await self.request("GET", AUTH_PATH)
        self._stop_for_persona(response)
        return response.status_code == 200

    # ---- requests --------------------------------------------------------------------------

    def is_rate_limited(self, response: httpx.Response) -> bool:
        if super().is_rate_limited(response):
            return True
        return (
            400 <= response.status_code < 500
            and response.status_code != 401
            and len(response.content) < 1024
            and CONCURRENT_LIMIT in response.content
        )

    async def get_json(self, path_or_url: str) -> dict:
        """GET with a session: 401 → re-authenticate once and retry; persona → stop; a body that is
        not a JSON object is retried like a 5xx, then fails naming the URL."""
        url = self._absolute(path_or_url)
        reauthed = False
        bad_bodies = 0
        while True:
            await self._ensure_session()
            generation = self._generation
            response = await self.request("GET", url)
            if response.status_code == 401:
                metrics.http_error(self.metrics_source, "session_expired")
                self._stop_for_persona(response)
                if reauthed:
                    raise AlphaAuthError(
                        self.account.name,
                        f"GET {url}: still HTTP 401 right after re-authenticating: {response.text[:200]}",
                    )
                reauthed = True
                await self._reauthenticate(generation)
                continue
            if response.status_code != 200:
                metrics.http_error(self.metrics_source, "rejected")
                raise AlphaApiError(self.api_name, "GET", url, response.status_code, response.text[:300])
            try:
                data = response.json()
                if not isinstance(data, dict):
                    raise ValueError(f"a JSON {type(data).__name__}, not an object")  # noqa: TRY004
            except ValueError as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
                self.invalid_bodies += 1
                metrics.http_error(self.metrics_source, "bad_body")
                if bad_bodies >= self.retry.max_retries:
                    metrics.http_error(self.metrics_source, "gave_up")
                    raise InvalidResponseError(
                        self.api_name,
                        "GET",
                        url,
                        response.status_code,
                        f"invalid JSON body on {bad_bodies + 1} attempts (truncated by a proxy?): {error}; "
                        f"{len(response.content)} bytes, ending {response.text[-80:]!r}",
                    ) from None
                self.stats.retries += 1
                metrics.http_retry(self.metrics_source)
                await asyncio.sleep(
                    backoff_delay(bad_bodies, self.retry.backoff_base_s, self.retry.backoff_max_s, self.rng)
                )
                bad_bodies += 1
                continue
            return data

    def _counters(self) -> tuple[int, ...]:
        """What a month's `FetchStats` counts as a difference: requests, retries, 429s, 5xx answers,
        transport errors, invalid bodies, re-authentications."""
        http = self.stats
        return (
            http.requests,
            http.retries,
            http.rate_limited,
            http.server_errors,
            http.transport_errors,
            self.invalid_bodies,
            self.reauths,
        )

    # ---- listing ---------------------------------------------------------------------------

    async def fetch_month(
        self, month: str, on_alpha: AlphaCallback | None = None, *, keep: bool | None = None
    ) -> MonthFetch:
        """Every alpha of the types configured whose dateCreated is in the New York month.

        `on_alpha(alpha)` (sync or async) is called once per alpha as pages arrive; the alphas
        are also returned in `MonthFetch.alphas` (ordered by dateCreated, id) when `keep` is
        true, which is the default without a callback.
        """
        start, end = month_window(month)
        keep = on_alpha is None if keep is None else keep
        stats = FetchStats(account=self.account.name, month=month)
        before = self._counters()
        started = time.monotonic()
        seen: set[str] = set()
        kept: list[dict] = []

        async def sink(alpha: dict, alpha_type: str) -> None:
            alpha_id = alpha.get("id")
            if alpha_id in seen:
                stats.duplicates_dropped += 1
                return
            created = _parse_time(alpha.get("dateCreated"))
            if created is None or not (start <= created < end):
                stats.out_of_window += 1
                log.warning(
                    "alpha %s of account %r has dateCreated %r outside %s; skipped",
                    alpha_id,
                    self.account.name,
                    alpha.get("dateCreated"),
                    month,
                )
                return
            seen.add(alpha_id)
            stats.alphas += 1
            its_type = alpha.get("type") or alpha_type
            stats.alphas_by_type[its_type] = stats.alphas_by_type.get(its_type, 0) + 1
            if keep:
                kept.append(alpha)
            if on_alpha is not None:
                outcome = on_alpha(alpha)
                if inspect.isawaitable(outcome):
                    await outcome

        await _all_or_nothing(*(self._fetch_window(t, start, end, sink, stats) for t in self.types))
        after = self._counters()
        (
            stats.requests,
            stats.retries,
            stats.rate_limited_429,
            stats.server_errors_5xx,
            stats.transport_errors,
            stats.invalid_bodies,
            stats.reauths,
        ) = (b - a for a, b in zip(before, after))
        stats.seconds = round(time.monotonic() - started, 3)
        kept.sort(key=lambda a: (_parse_time(a.get("dateCreated")) or start, str(a.get("id"))))
        log.info(
            "alpha API account %r %s: %d alphas in %d windows (%d split), %d pages, %d requests",
            self.account.name,
            month,
            stats.alphas,
            stats.windows,
            stats.windows_split,
            stats.pages,
            stats.requests,
        )
        return MonthFetch(self.account.name, month, format_time(start), format_time(end), kept, stats)

    async def _split(
        self, alpha_type: str, start: datetime, end: datetime, sink, stats: FetchStats, why: str
    ) -> None:
        span = (end - start).total_seconds()
        if span < 2:
            raise AlphaApiError(
                self.api_name,
                "GET",
                self._absolute(list_path(start, end, alpha_type=alpha_type)),
                None,
                f"{why} within one second [{format_time(start)}, {format_time(end)}): "
                "cannot slice the window any further",
            )
        middle = start + timedelta(seconds=int(span // 2))
        stats.windows_split += 1
        log.info(
            "alpha API account %r %s window [%s, %s) split: %s",
            self.account.name,
            alpha_type,
            format_time(start),
            format_time(end),
            why,
        )
        await _all_or_nothing(
            self._fetch_window(alpha_type, start, middle, sink, stats),
            self._fetch_window(alpha_type, middle, end, sink, stats),
        )

    async def _fetch_window(
        self, alpha_type: str, start: datetime, end: datetime, sink, stats: FetchStats
    ) -> None:
        """List [start, end) of one type by following `next`; split in halves when the window is too big
        (what its pages gave already is sunk again by the halves: the sink keeps each id once)."""
        # Instants in UTC: halves of a window that spans a DST change are then exact.
        start, end = start.astimezone(UTC), end.astimezone(UTC)
        try:
            await self._list_window(alpha_type, start, end, sink, stats)
        except _WindowTooBig as too_big:
            await self._split(alpha_type, start, end, sink, stats, str(too_big))

    async def _list_window(
        self, alpha_type: str, start: datetime, end: datetime, sink, stats: FetchStats
    ) -> None:
        stats.windows += 1
        url = self._absolute(
            list_path(start, end, alpha_type=alpha_type, limit=self.page_limit, order=self.order)
        )
        data = await self.get_json(url)
        stats.pages += 1
        count = data.get("count")
        if not isinstance(count, int) or not isinstance(data.get("results"), list):
            raise InvalidResponseError(
                self.api_name,
                "GET",
                url,
                200,
                f"not a list page (keys {sorted(data)[:8]}): expected count, next, results",
            )
        if count > self.max_window_results:
            raise _WindowTooBig(
                f"{count} alphas, more than the {self.max_window_results} one listing can page through"
            )
        received = 0
        followed = {url}
        while True:
            results = data["results"]
            for alpha in results:
                await sink(alpha, alpha_type)
            received += len(results)
            next_url = data.get("next")
            if not next_url:
                break
            if not results:
                raise InvalidResponseError(
                    self.api_name, "GET", url, 200, f"empty page with a next link {next_url!r}"
                )
            url = rewrite_next(next_url, self.base_url)
            if url in followed:
                raise InvalidResponseError(
                    self.api_name,
                    "GET",
                    url,
                    200,
                    "next link points back to a page already listed: the listing would never end",
                )
            followed.add(url)
            try:
                data = await self.get_json(url)
            except AlphaApiError as error:
                offset = _offset_of(url)
                if error.status == 400 and offset > 0:
                    # The server pages less deep than configured: remember its limit, slice finer.
                    self.max_window_results = max(self.page_limit, min(self.max_window_results, offset))
                    raise _WindowTooBig(f"HTTP 400 at offset {offset} ({error.detail[:120]})") from None
                raise
            stats.pages += 1
            if not isinstance(data.get("results"), list):
                raise InvalidResponseError(self.api_name, "GET", url, 200, "page without a results list")
        if received != count:
            stats.count_mismatches += 1
            log.warning(
                "alpha API account %r %s window [%s, %s): count said %d, pages gave %d (alphas created "
                "or deleted while listing?)",
                self.account.name,
                alpha_type,
                format_time(start),
                format_time(end),
                count,
                received,
            )


# --------------------------------------------------------------------------------------------
# Several accounts
# --------------------------------------------------------------------------------------------


class AlphaApi:
    """Several accounts against one base URL; one `AlphaApiClient` (session, limits) per account.

    `async with AlphaApi(base_url, accounts_from_env("main,research")) as api:
         result = await api.fetch_month("research", "2025-07", on_alpha=store)`
    """

    def __init__(self, base_url: str, accounts: Sequence[AlphaAccount], **client_kwargs):
        if not accounts:
            raise AlphaConfigError("no alpha accounts configured")
        names = [a.name for a in accounts]
        if len(set(names)) != len(names):
            raise AlphaConfigError(f"duplicate account names: {names}")
        self.base_url = base_url.rstrip("/")
        self.accounts = {a.name: a for a in accounts}
        self.client_kwargs = client_kwargs
        self._clients: dict[str, AlphaApiClient] = {}

    def __repr__(self) -> str:
        return f"AlphaApi(base_url={self.base_url!r}, accounts={list(self.accounts)!r})"

    @classmethod
    def from_env(
        cls,
        base_url: str,
        names: Iterable[str] | str,
        environ: Mapping[str, str] | None = None,
        **client_kwargs,
    ) -> AlphaApi:
        """Accounts named in configuration ("a,b"), credentials from ALPHA_API_USER_/PASSWORD_<NAME>."""
        return cls(base_url, accounts_from_env(names, environ), **client_kwargs)

    def request_stats(self) -> dict[str, dict[str, Any]]:
        """Per account, since the client was made: the shared policy's counters plus re-auths."""
        return {
            name: {
                **c.stats.as_metadata(),
                "reauths": c.reauths,
                "authentications": c.authentications,
                "invalid_bodies": c.invalid_bodies,
            }
            for name, c in self._clients.items()
        }

    def client(self, account: str | AlphaAccount) -> AlphaApiClient:
        name = account.name if isinstance(account, AlphaAccount) else account
        if name not in self.accounts:
            raise AlphaConfigError(f"unknown alpha account {name!r}; configured: {sorted(self.accounts)}")
        if name not in self._clients:
            self._clients[name] = AlphaApiClient(self.base_url, self.accounts[name], **self.client_kwargs)
        return self._clients[name]

    async def fetch_month(
        self,
        account: str | AlphaAccount,
        month: str,
        on_alpha: AlphaCallback | None = None,
        *,
        keep: bool | None = None,
    ) -> MonthFetch:
        return await self.client(account).fetch_month(month, on_alpha, keep=keep)

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.aclose()


# The BRAIN-style alpha API: alphas of each account, listed by creation window.
ALPHA_API = Source(
    "ALPHA_API",
    (),
    {"alphas": HISTORY},
    AlphaApiClient,
    accounts=AccountApi(
        AlphaApi,
        parse_account_names,
        accounts_from_env,
        credential_vars,
        month_window,
        NY,
        (AlphaAuthError, AlphaConfigError),
    ),
)
