"""Errors with messages a quant can act on: what, where (host:port, file, instrument, partition), what to
do."""

from __future__ import annotations

import re

# What a server says when it refuses the login (Postgres, ClickHouse, MongoDB, NATS, Redis), not its absence.
_REFUSED_LOGIN = re.compile(
    r"password authentication failed|authentication failed|AUTHENTICATION_FAILED|Code: 516\b|bad auth|"
    r"Authorization Violation|WRONGPASS|invalid username-password|NOAUTH",
    re.IGNORECASE,
)
# The settings that hold each store's login (an exported value wins over the stack's generated one).
LOGIN_SETTINGS = {
    "ClickHouse": "CLICKHOUSE_USER / CLICKHOUSE_PASSWORD",
    "TimescaleDB": "TIMESCALE_USER / TIMESCALE_PASSWORD",
    "MongoDB": "MONGODB_USERNAME / MONGODB_PASSWORD (or MONGODB_URI)",
    "Dagster's storage (Postgres)": "DAGSTER_PG_USER / DAGSTER_PG_PASSWORD",
    "NATS JetStream": "NATS_TOKEN (the local stack's is generated per state directory)",
}


class StoreUnavailable(RuntimeError):
    """A database could not be reached, or refused the login (`refused_login`). The message names
    host:port and the fix, never a password."""

    def __init__(self, store: str, address: str, reason: str, hint: str):
        reason = reason.split(", full error:")[0]  # what a driver appends for developers (MongoDB's dict)
        self.store, self.address, self.reason, self.hint = store, address, reason, hint
        self.refused_login = bool(_REFUSED_LOGIN.search(reason))
        if self.refused_login:  # it answered: starting it is not the fix
            login, said = LOGIN_SETTINGS.get(store, "its user and password"), reason.strip().rstrip(".")
            super().__init__(
                f"{store} at {address} refused the login: {said}. Check {login}: an exported "
                "value wins over the stack's generated one (`make env` shows which are set, secrets hidden)"
            )
            return
        super().__init__(f"{store} at {address} is not reachable: {reason}. {hint}")

    def with_progress(self, done: str) -> StoreUnavailable:
        """The same error saying how far the work got (what committed, what to re-run)."""
        return StoreUnavailable(self.store, self.address, f"{self.reason}; {done}", self.hint)


def scrub(text: str, *secrets: str) -> str:
    """Remove secrets from a message that came from a driver before it reaches a log or the UI."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def error_text(error: BaseException, label: str) -> str:
    """The error's own message, prefixed with `label` (a slice: 'VENUE:INSTRUMENT day dataset') unless
    it names the instrument already; the exception's type too unless it is a RuntimeError or ValueError."""
    text = str(error).strip() or type(error).__name__
    if not isinstance(error, (RuntimeError, ValueError)):
        text = f"{type(error).__name__}: {text}"
    return text if label.split(" ")[0].split(":")[-1] in text else f"{label}: {text}"
