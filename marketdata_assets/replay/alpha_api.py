"""A local replay of the WorldQuant BRAIN-style alpha API: real formats, quirks and faults.

Sessions, paging and filters as the vendor answers them, deterministic alphas per account, faults and
`/_replay/` control endpoints. Over 500 lines: the whole vendor replay (generation, query language,
paging, faults) in one module, mirroring sources/alpha_api.py.
Endpoints, faults, control and use: docs/alphas.md, "The API's replay".
"""

from __future__ import annotations

import argparse
import base64
import binascii
import dataclasses
import importlib
import json
import operator
import os
import random
import re
import secrets
import string
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit, urlunsplit
from zoneinfo import ZoneInfo

from marketdata_assets.replay import (
    BackgroundServer,
    Reply,
    answer,
    cli_parser,
    config_from_cli,
    json_reply,
    run_cli,
)
from marketdata_assets.replay.alpha_factory import make_alpha
from marketdata_assets.sources.alpha_api import credential_vars, month_window

NY = ZoneInfo("America/New_York")
LIST_PATH = "/users/self/alphas"
DATE_FIELDS = frozenset({"dateCreated", "dateModified", "dateSubmitted"})
RESERVED_PARAMS = frozenset({"limit", "offset", "order"})
ID_CHARS = string.ascii_letters + string.digits

AlphaFactory = Callable[[int, str, datetime], dict]


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


@dataclass
class ReplayAccount:
    name: str
    user: str
    password: str = field(repr=False)
    alphas: int | None = None  # None: ReplayConfig.alphas_per_account
    persona: bool = False  # POST /authentication answers the persona 401

    @classmethod
    def default(cls, name: str, **kwargs) -> ReplayAccount:
        """Credentials from ALPHA_API_USER_<NAME>/ALPHA_API_PASSWORD_<NAME> if set, else replay defaults."""
        user_var, password_var = credential_vars(name)
        return cls(
            name=name,
            user=os.environ.get(user_var) or default_user(name),
            password=os.environ.get(password_var) or default_password(name),
            **kwargs,
        )


def default_user(name: str) -> str:
    return f"{name.lower()}@replay.invalid"


def default_password(name: str) -> str:
    return f"replay-{name.lower()}"


@dataclass
class Faults:
    latency_s: float = 0.0
    rate_limit_every: int = 0
    retry_after: str | None = "1"  # header value as sent ("1", "5.0"); None: no header
    rate_limit_body: str = (
        "throttled"  # "throttled" (DRF) | "concurrent" (CONCURRENT_SIMULATION_LIMIT_EXCEEDED)
    )
    rate_limit_status: int = 429
    server_error_every: int = 0
    server_error_status: int = 503
    truncate_every: int = 0
    disconnect_every: int = 0
    expire_session_after: int | None = None  # a session answers this many data requests, then 401


@dataclass
class ReplayConfig:
    seed: int = 0
    accounts: list[ReplayAccount] = field(default_factory=lambda: [ReplayAccount.default("main")])
    alphas_per_account: int = 300
    start_month: str = "2024-01"
    months: int = 3
    super_share: float = 0.2
    boundary_alphas: bool = True
    max_limit: int = 100
    default_limit: int = 10
    max_offset: int = 10_000
    session_ttl_s: float = 14400.0
    cookie_secure: bool = False
    next_origin: str = "http://{host}:443"  # the vendor's quirk; "" for links to this server
    faults: Faults = field(default_factory=Faults)

    @classmethod
    def from_dict(cls, data: dict) -> ReplayConfig:
        data = dict(data)
        accounts = [
            a
            if isinstance(a, ReplayAccount)
            else (ReplayAccount(**a) if "user" in a else ReplayAccount.default(**a))
            for a in data.pop("accounts", [])
        ] or None
        faults = data.pop("faults", None)
        config = cls(**data)
        if accounts:
            config.accounts = accounts
        if faults:
            config.faults = faults if isinstance(faults, Faults) else Faults(**faults)
        return config


@dataclass
class Record:
    ts: int  # dateCreated, epoch seconds
    id: str
    type: str
    alpha: dict
    raw: bytes


def _add_months(month: str, n: int) -> str:
    year, mon = int(month[:4]), int(month[5:7])
    index = year * 12 + mon - 1 + n
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def _ny(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, UTC).astimezone(NY)


def boundary_times(start_month: str, months: int) -> list[int]:
    """Epoch seconds that test month and DST edges, inside the configured months."""
    lo, _ = month_window(start_month)
    _, hi = month_window(_add_months(start_month, months - 1))
    lo_ts, hi_ts = int(lo.timestamp()), int(hi.timestamp())
    out: list[int] = []
    for i in range(months):
        start, end = month_window(_add_months(start_month, i))
        s, e = int(start.timestamp()), int(end.timestamp())
        out += [s, s + 1, e - 1, e - 1800]  # first seconds; 23:59:59 and 23:30 NY (next month in UTC)
        middle = s + (e - s) // 2
        out += [middle] * 3 + [middle + 1] * 2  # same-second bursts, as batch simulations make them
    for year in range(lo.year, hi.year + 1):
        for fold in (0, 1):  # both 01:30 on the first Sunday of November
            day = datetime(year, 11, 1)
            day += timedelta(days=(6 - day.weekday()) % 7)
            out.append(int(datetime(year, 11, day.day, 1, 30, tzinfo=NY).replace(fold=fold).timestamp()))
        day = datetime(year, 3, 8)  # 03:30 on the second Sunday of March, just after the jump
        day += timedelta(days=(6 - day.weekday()) % 7)
        out.append(int(datetime(year, 3, day.day, 3, 30, tzinfo=NY).timestamp()))
    return [t for t in out if lo_ts <= t < hi_ts]


def _user_id(rng: random.Random) -> str:
    return "".join(rng.choice(string.ascii_uppercase) for _ in range(2)) + f"{rng.randint(0, 99999):05d}"


def generate_account_alphas(
    config: ReplayConfig, account: ReplayAccount, factory: AlphaFactory, taken_ids: set[str]
) -> tuple[str, list[Record]]:
    rng = random.Random(f"alpha-replay:{config.seed}:{account.name}")
    author = _user_id(rng)
    n = config.alphas_per_account if account.alphas is None else account.alphas
    lo, _ = month_window(config.start_month)
    _, hi = month_window(_add_months(config.start_month, config.months - 1))
    lo_ts, hi_ts = int(lo.timestamp()), int(hi.timestamp())
    times = boundary_times(config.start_month, config.months) if config.boundary_alphas else []
    times = times[:n] + [rng.randrange(lo_ts, hi_ts) for _ in range(max(0, n - len(times)))]
    records = []
    for ts in times:
        while True:
            alpha_id = "".join(rng.choice(ID_CHARS) for _ in range(rng.choice((7, 8))))
            if alpha_id not in taken_ids:
                taken_ids.add(alpha_id)
                break
        alpha_type = "SUPER" if rng.random() < config.super_share else "REGULAR"
        created = _ny(ts)
        alpha = dict(factory(rng.getrandbits(32), alpha_type, created))
        alpha.update(id=alpha_id, type=alpha_type, author=author, dateCreated=created.isoformat())
        records.append(
            Record(ts, alpha_id, alpha_type, alpha, json.dumps(alpha, separators=(",", ":")).encode())
        )
    records.sort(key=lambda r: (r.ts, r.id))
    return author, records


# --------------------------------------------------------------------------------------------
# Query parsing (the vendor's operator-in-the-key convention)
# --------------------------------------------------------------------------------------------

_OP_IN_KEY = re.compile(r"^([A-Za-z_][\w.]*)(>=|<=|!=|>|<|=)(.*)$", re.DOTALL)


def parse_filters(query: str) -> tuple[dict[str, str], list[tuple[str, str, list[str]]]]:
    """Split a raw query into (reserved params, filters [(field, op, values)]).

    `dateCreated%3E=V` → ("dateCreated", ">=", [V]); `dateCreated%3CV` (no "=") → ("dateCreated",
    "<", [V]); `dateCreated%3CV=` (DRF's re-encoding of the same) too; `type!=SUPER` → "!=";
    `status=A%1FB` → ("status", "=", ["A", "B"]).
    """
    params: dict[str, str] = {}
    filters: list[tuple[str, str, list[str]]] = []
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key in RESERVED_PARAMS:
            params[key] = value
            continue
        if key and key[-1] in "<>!" and re.fullmatch(r"[A-Za-z_][\w.]*[<>!]", key):
            name, op = key[:-1], key[-1] + "="
        elif value == "" and (match := _OP_IN_KEY.match(key)):
            name, op, value = match.groups()
        else:
            name, op = key, "="
        filters.append((name, op, value.split("\x1f")))
    return params, filters


def _lookup(alpha: dict, path: str) -> Any:
    value: Any = alpha
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _parse_when(text: str) -> datetime | None:
    text = text.strip().replace(" ", "+")  # an unencoded "+hh:mm" offset arrives as a space
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))  # noqa: FURB162  also takes "2024-01-01Z"
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=NY)


_COMPARE = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


def _coerce(sample: Any, text: str) -> Any:
    if isinstance(sample, bool):
        return text.lower() == "true"
    if isinstance(sample, (int, float)):
        try:
            return float(text)
        except ValueError:
            return None
    return text


def _matches(alpha: dict, name: str, op: str, values: list[str]) -> bool:
    if name == "tag":
        present = any(v in (alpha.get("tags") or []) for v in values)
        return present if op == "=" else not present
    actual = _lookup(alpha, name)
    if name in DATE_FIELDS:
        actual = _parse_when(actual) if isinstance(actual, str) else None
        wanted = [_parse_when(v) for v in values]
    else:
        wanted = [_coerce(actual, v) for v in values]
    if op == "=":
        return any(actual == w for w in wanted)
    if op == "!=":
        return all(actual != w for w in wanted)
    if actual is None or wanted[0] is None:
        return False
    try:
        return _COMPARE[op](actual, wanted[0])
    except TypeError:
        return False


def replace_query_param(url: str, key: str, value: Any) -> str:
    """Django REST framework's: parse, set, re-encode sorted (this is why `next` looks different)."""
    scheme, netloc, path, query, fragment = urlsplit(url)
    query_dict = parse_qs(query, keep_blank_values=True)
    query_dict[key] = [str(value)]
    return urlunsplit((scheme, netloc, path, urlencode(sorted(query_dict.items()), doseq=True), fragment))


def remove_query_param(url: str, key: str) -> str:
    scheme, netloc, path, query, fragment = urlsplit(url)
    query_dict = parse_qs(query, keep_blank_values=True)
    query_dict.pop(key, None)
    return urlunsplit((scheme, netloc, path, urlencode(sorted(query_dict.items()), doseq=True), fragment))


# --------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------


@dataclass
class Session:
    account: str
    created: float
    requests: int = 0


class AlphaReplayServer(BackgroundServer):
    """The replay server; a context manager serving in a background thread (`base_url`)."""

    thread_name = "alpha-replay"

    def __init__(
        self,
        config: ReplayConfig | None = None,
        *,
        alpha_factory: AlphaFactory | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ):
        self.config = config or ReplayConfig()
        self.alpha_factory = alpha_factory or make_alpha
        self.lock = threading.RLock()
        self.accounts = {a.name: a for a in self.config.accounts}
        self.by_user = {a.user: a for a in self.config.accounts}
        self.authors: dict[str, str] = {}
        self.records: dict[str, list[Record]] = {}
        taken: set[str] = set()
        for account in self.config.accounts:
            self.authors[account.name], self.records[account.name] = generate_account_alphas(
                self.config, account, self.alpha_factory, taken
            )
        self.by_id = {r.id: (name, r) for name, recs in self.records.items() for r in recs}
        self.sessions: dict[str, Session] = {}
        self.persona_required = {a.name for a in self.config.accounts if a.persona}
        self.data_requests = 0
        self.counters: dict[str, int] = {}
        self.auth_counts: dict[str, int] = {}
        self.log: deque[dict] = deque(maxlen=200_000)
        self.listen(
            host,
            port,
            self._serve,
            name="alpha-replay",
            methods=("GET", "POST", "DELETE", "PUT", "PATCH"),
            delay_before=self._latency,
        )

    def banner(self) -> str:
        """The CLI's first line of output."""
        summary = ", ".join(f"{name} ({len(recs)} alphas)" for name, recs in self.records.items())
        return (
            f"alpha API replay on {self.base_url}: {summary}; months {self.config.start_month} "
            f"+{self.config.months}; max offset {self.config.max_offset}"
        )

    # ---- ground truth and control ----------------------------------------------------------

    def truth(self, account: str, month: str | None = None, alpha_type: str | None = None) -> list[str]:
        """Ids of an account's alphas (in a New York month, of a type), ordered by dateCreated, id."""
        records = self.records[account]
        if month:
            start, end = month_window(month)
            records = [r for r in records if start.timestamp() <= r.ts < end.timestamp()]
        return [r.id for r in records if alpha_type is None or r.type == alpha_type]

    def alpha(self, alpha_id: str) -> dict:
        return self.by_id[alpha_id][1].alpha

    def set_faults(self, reset_counters: bool = False, **changes) -> Faults:
        with self.lock:
            self.config.faults = dataclasses.replace(self.config.faults, **changes)
            if reset_counters:
                self.data_requests = 0
            return self.config.faults

    def expire_sessions(self, account: str | None = None) -> int:
        with self.lock:
            gone = [t for t, s in self.sessions.items() if account is None or s.account == account]
            for token in gone:
                del self.sessions[token]
            return len(gone)

    def require_persona(self, account: str, required: bool = True) -> None:
        with self.lock:
            (self.persona_required.add if required else self.persona_required.discard)(account)

    def requests_to(self, path_prefix: str, method: str | None = None) -> list[dict]:
        with self.lock:
            return [
                e
                for e in self.log
                if e["path"].startswith(path_prefix) and (method is None or e["method"] == method)
            ]

    def state(self) -> dict:
        with self.lock:
            return {
                "accounts": {
                    name: {"author": self.authors[name], "alphas": len(self.records[name])}
                    for name in self.accounts
                },
                "sessions": len(self.sessions),
                "data_requests": self.data_requests,
                "authentications": dict(self.auth_counts),
                "served": dict(self.counters),
                "faults": dataclasses.asdict(self.config.faults),
                "persona_required": sorted(self.persona_required),
            }

    def _count(self, key: str) -> None:
        self.counters[key] = self.counters.get(key, 0) + 1

    # ---- request handling ------------------------------------------------------------------

    def _latency(self, target: str) -> float:
        """The latency fault: before the request is looked at, on everything but the control endpoints."""
        return 0.0 if target.startswith("/_replay/") else self.config.faults.latency_s

    def _serve(self, method: str, target: str, headers, body: bytes) -> Reply:
        """One request at a time, logged with its status."""
        with self.lock:
            reply = answer(self.handle, method, target, headers, body)
            self.log.append({"t": time.monotonic(), "method": method, "path": target, "status": reply.status})
        return reply

    def _persona_reply(self) -> Reply:
        inquiry = "inq_" + secrets.token_hex(8)
        return json_reply(
            401,
            {"detail": "Biometric verification required."},
            {"WWW-Authenticate": "persona", "Location": f"/authentication/persona?inquiry={inquiry}"},
        )

    def _session(self, cookie_header: str | None) -> tuple[str, Session] | None:
        if not cookie_header:
            return None
        jar = SimpleCookie()
        try:
            jar.load(cookie_header)
        except Exception:  # noqa: BLE001
            return None
        token = jar["t"].value if "t" in jar else None
        session = self.sessions.get(token) if token else None
        if session is None:
            return None
        if time.monotonic() - session.created > self.config.session_ttl_s:
            del self.sessions[token]
            return None
        return token, session

    def handle(self, method: str, target: str, headers, body: bytes) -> Reply:
        parts = urlsplit(target)
        path = parts.path.rstrip("/") or "/"
        if path.startswith("/_replay/"):
            return self._control(method, path, parts.query, body)
        if path == "/authentication":
            return self._authentication(method, headers)
        if method == "GET" and (path == LIST_PATH or path.startswith("/alphas/")):
            return self._data(path, parts.query, headers)
        return json_reply(404, {"detail": "Not found."})

    def _authentication(self, method: str, headers) -> Reply:
        config = self.config
        if method == "POST":
            auth = headers.get("Authorization") or ""
            user = password = None
            if auth.lower().startswith("basic "):
                try:
                    user, _, password = base64.b64decode(auth[6:].strip()).decode().partition(":")
                except (binascii.Error, UnicodeDecodeError):
                    pass
            account = self.by_user.get(user) if user is not None else None
            if account is None or not secrets.compare_digest(
                account.password.encode(), (password or "").encode()
            ):
                self._count("auth_rejected")
                return json_reply(
                    401,
                    {"detail": "Invalid username or password."},
                    {"WWW-Authenticate": 'Basic realm="api"'},
                )
            self.auth_counts[account.name] = self.auth_counts.get(account.name, 0) + 1
            if account.name in self.persona_required:
                self._count("persona")
                return self._persona_reply()
            token = secrets.token_urlsafe(24)
            self.sessions[token] = Session(account.name, time.monotonic())
            cookie = f"t={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={int(config.session_ttl_s)}"
            if config.cookie_secure:
                cookie += "; Secure"
            return json_reply(
                201,
                {
                    "user": {"id": self.authors[account.name]},
                    "token": {"expiry": float(config.session_ttl_s)},
                    "permissions": [
                        "BEFORE_AND_AFTER_PERFORMANCE_V2",
                        "BRAIN_LABS",
                        "CONSULTANT",
                        "MULTI_SIMULATION",
                        "PROD_ALPHAS",
                        "SUPER_ALPHA",
                        "VISUALIZATION",
                        "WORKDAY",
                    ],
                },
                {"Set-Cookie": cookie},
            )
        found = None
        if method in ("GET", "DELETE"):
            found = self._session(headers.get("Cookie"))
        if method == "GET":
            if found is None:
                return json_reply(401, {"detail": "Incorrect authentication credentials."})
            token, session = found
            remaining = max(0.0, config.session_ttl_s - (time.monotonic() - session.created))
            return json_reply(
                200,
                {
                    "user": {"id": self.authors[session.account]},
                    "token": {"expiry": round(remaining, 1)},
                    "permissions": ["CONSULTANT"],
                },
            )
        if method == "DELETE":
            if found:
                self.sessions.pop(found[0], None)
            return Reply(204)
        return json_reply(405, {"detail": f'Method "{method}" not allowed.'})

    def _data(self, path: str, query: str, headers) -> Reply:
        faults = self.config.faults
        self.data_requests += 1
        n = self.data_requests
        if faults.rate_limit_every and n % faults.rate_limit_every == 0:
            self._count("rate_limited")
            body = (
                {"detail": "CONCURRENT_SIMULATION_LIMIT_EXCEEDED"}
                if faults.rate_limit_body == "concurrent"
                else {"detail": "Request was throttled. Expected available in 1 second."}
            )
            headers = {"Retry-After": faults.retry_after} if faults.retry_after is not None else {}
            return json_reply(faults.rate_limit_status, body, headers)
        if faults.server_error_every and n % faults.server_error_every == 0:
            self._count("5xx")
            return Reply(
                faults.server_error_status,
                b"<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>",
                {"Content-Type": "text/html"},
            )
        found = self._session(headers.get("Cookie"))
        if found is None:
            self._count("401")
            return json_reply(401, {"detail": "Incorrect authentication credentials."})
        token, session = found
        if session.account in self.persona_required:
            del self.sessions[token]
            self._count("persona")
            return self._persona_reply()
        if faults.expire_session_after is not None and session.requests >= faults.expire_session_after:
            del self.sessions[token]
            self._count("401_expired")
            return json_reply(401, {"detail": "Incorrect authentication credentials."})
        session.requests += 1
        if path == LIST_PATH:
            reply = self._list(session.account, query, headers)
        else:
            name_rec = self.by_id.get(path.rsplit("/", 1)[-1])
            if name_rec is None or name_rec[0] != session.account:
                reply = json_reply(404, {"detail": "Not found."})
            else:
                reply = Reply(200, name_rec[1].raw, {"Content-Type": "application/json"})
        if reply.status == 200 and faults.truncate_every and n % faults.truncate_every == 0:
            self._count("truncated")
            reply.truncate = True
        elif reply.status == 200 and faults.disconnect_every and n % faults.disconnect_every == 0:
            self._count("disconnected")
            reply.disconnect = True
        return reply

    def _list(self, account: str, query: str, headers) -> Reply:
        config = self.config
        params, filters = parse_filters(query)
        try:
            limit = int(params.get("limit", config.default_limit))
            offset = int(params.get("offset", 0))
        except ValueError:
            return json_reply(400, {"detail": "limit and offset must be integers."})
        if limit <= 0:
            limit = config.default_limit
        limit = min(limit, config.max_limit)
        if offset < 0:
            return json_reply(400, {"detail": "offset must not be negative."})
        if offset + limit > config.max_offset:
            return json_reply(
                400, {"detail": f"Invalid offset: offset + limit must not exceed {config.max_offset}."}
            )
        records = self.records[account]
        fast = [
            (n, op, v)
            for n, op, v in filters
            if n == "dateCreated" and len(v) == 1 and op in ("<", "<=", ">", ">=")
        ]
        for _, op, values in fast:
            bound = _parse_when(values[0])
            if bound is None:
                return json_reply(400, {"dateCreated": [f"Enter a valid date/time: {values[0]!r}."]})
            compare, b = _COMPARE[op], bound.timestamp()
            records = [r for r in records if compare(r.ts, b)]
        rest = [f for f in filters if f not in fast and _lookup_root(f[0])]
        if rest:
            records = [r for r in records if all(_matches(r.alpha, *f) for f in rest)]
        order = params.get("order") or "-dateCreated"
        descending, key = order.startswith("-"), order.lstrip("-+")
        if key == "dateCreated":
            records = sorted(records, key=lambda r: (r.ts, r.id), reverse=descending)
        else:

            def sort_key(r: Record):
                value = _lookup(r.alpha, key)
                return (value is None, value if isinstance(value, (int, float, str)) else str(value), r.id)

            records = sorted(records, key=sort_key, reverse=descending)
        page = records[offset : offset + limit]
        host = urlsplit("//" + (headers.get("Host") or "localhost")).hostname or "localhost"
        host = f"[{host}]" if ":" in host else host
        origin = config.next_origin.format(host=host) if config.next_origin else self.base_url
        url = f"{origin}{LIST_PATH}?{query}"
        next_url = previous = None
        if offset + limit < len(records):
            next_url = replace_query_param(replace_query_param(url, "limit", limit), "offset", offset + limit)
        if offset > 0:
            previous = replace_query_param(url, "limit", limit)
            previous = (
                remove_query_param(previous, "offset")
                if offset - limit <= 0
                else replace_query_param(previous, "offset", offset - limit)
            )
        head = json.dumps(
            {"count": len(records), "next": next_url, "previous": previous}, separators=(",", ":")
        )
        body = head[:-1].encode() + b',"results":[' + b",".join(r.raw for r in page) + b"]}"
        return Reply(200, body, {"Content-Type": "application/json"})

    def _control(self, method: str, path: str, query: str, body: bytes) -> Reply:
        try:
            payload = json.loads(body or b"{}")
        except ValueError:
            return json_reply(400, {"detail": "JSON body expected"})
        if path == "/_replay/state":
            return json_reply(200, self.state())
        if path == "/_replay/faults" and method == "POST":
            try:
                faults = self.set_faults(**payload)
            except TypeError as error:
                return json_reply(400, {"detail": str(error)})
            return json_reply(200, dataclasses.asdict(faults))
        if path == "/_replay/expire" and method == "POST":
            return json_reply(200, {"expired": self.expire_sessions(payload.get("account"))})
        if path == "/_replay/persona" and method == "POST":
            if payload.get("account") not in self.accounts:
                return json_reply(400, {"detail": "unknown account"})
            self.require_persona(payload["account"], bool(payload.get("required", True)))
            return json_reply(200, {"persona_required": sorted(self.persona_required)})
        if path == "/_replay/truth":
            args = dict(parse_qsl(query))
            if args.get("account") not in self.accounts:
                return json_reply(400, {"detail": "account= one of " + ",".join(self.accounts)})
            return json_reply(200, {"ids": self.truth(args["account"], args.get("month"), args.get("type"))})
        return json_reply(404, {"detail": "Not found."})


def _lookup_root(name: str) -> bool:
    """Filters on fields an alpha has (DRF ignores unknown query parameters)."""
    return name == "tag" or name.split(".")[0] in _KNOWN_ROOTS


_KNOWN_ROOTS = frozenset(
    {
        "id",
        "type",
        "author",
        "settings",
        "regular",
        "combo",
        "selection",
        "dateCreated",
        "dateSubmitted",
        "dateModified",
        "name",
        "favorite",
        "hidden",
        "color",
        "category",
        "tags",
        "classifications",
        "grade",
        "stage",
        "status",
        "is",
        "os",
        "train",
        "test",
        "prod",
        "competitions",
        "themes",
        "pyramids",
        "pyramidThemes",
        "team",
        "osmosisPoints",
    }
)


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def load_factory(spec: str) -> AlphaFactory:
    """`package.module:callable` → the callable (the current directory is importable)."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise SystemExit(f"--factory wants module:callable, got {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    return getattr(importlib.import_module(module_name), attr)


def build_arg_parser() -> argparse.ArgumentParser:
    p = cli_parser(
        "marketdata_assets.replay.alpha_api",
        "Replay of the BRAIN-style alpha API (formats, quirks, faults).",
        port=8765,
        config="ReplayConfig fields (accounts, faults...)",
    )
    p.add_argument("--alphas", type=int, help="alphas per account")
    p.add_argument(
        "--accounts",
        help="comma-separated account names; credentials from ALPHA_API_USER_<NAME> / "
        "ALPHA_API_PASSWORD_<NAME>, else <name>@replay.invalid / replay-<name>",
    )
    p.add_argument("--persona-account", action="append", default=[], help="accounts that get the persona 401")
    p.add_argument("--start-month", help="first month, YYYY-MM (New York time)")
    p.add_argument("--months", type=int)
    p.add_argument("--super-share", type=float)
    p.add_argument("--max-limit", type=int)
    p.add_argument("--max-offset", type=int)
    p.add_argument("--session-ttl", type=float, dest="session_ttl_s")
    p.add_argument(
        "--factory", help="module:callable making alpha objects, called (seed, type, date_created)"
    )
    f = p.add_argument_group("faults")
    f.add_argument("--latency", type=float, dest="latency_s")
    f.add_argument("--rate-limit-every", type=int)
    f.add_argument("--retry-after", help='Retry-After value as sent, e.g. "1" or "5.0"; "none" for no header')
    f.add_argument("--rate-limit-body", choices=["throttled", "concurrent"])
    f.add_argument("--rate-limit-status", type=int, help="status of those answers (429)")
    f.add_argument("--server-error-every", type=int)
    f.add_argument("--server-error-status", type=int)
    f.add_argument("--truncate-every", type=int)
    f.add_argument("--disconnect-every", type=int)
    f.add_argument("--expire-session-after", type=int)
    return p


def server_from_args(args: argparse.Namespace) -> AlphaReplayServer:
    config = config_from_cli(
        args,
        ReplayConfig.from_dict,
        {
            "seed": "seed",
            "alphas": "alphas_per_account",
            "start_month": "start_month",
            "months": "months",
            "super_share": "super_share",
            "max_limit": "max_limit",
            "max_offset": "max_offset",
            "session_ttl_s": "session_ttl_s",
        },
    )
    if args.accounts:
        config.accounts = [ReplayAccount.default(n.strip()) for n in args.accounts.split(",") if n.strip()]
    for name in args.persona_account:
        matches = [a for a in config.accounts if a.name == name]
        if matches:
            matches[0].persona = True
        else:
            config.accounts.append(ReplayAccount.default(name, persona=True))
    for attr in (
        "latency_s",
        "rate_limit_every",
        "rate_limit_body",
        "rate_limit_status",
        "server_error_every",
        "server_error_status",
        "truncate_every",
        "disconnect_every",
        "expire_session_after",
    ):
        if getattr(args, attr) is not None:
            setattr(config.faults, attr, getattr(args, attr))
    if args.retry_after is not None:
        config.faults.retry_after = None if args.retry_after.lower() == "none" else args.retry_after
    factory = load_factory(args.factory) if args.factory else None
    return AlphaReplayServer(config, alpha_factory=factory, host=args.host, port=args.port)


def main(argv: Iterable[str] | None = None) -> int:
    return run_cli(argv, build_arg_parser(), server_from_args)


if __name__ == "__main__":
    raise SystemExit(main())
