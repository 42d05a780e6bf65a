"""Errors with messages a quant can act on: what, where (host:port, file, instrument, partition), what to
do."""

from __future__ import annotations


class StoreUnavailable(RuntimeError):
    """A database could not be reached. The message names host:port and the fix, never a password."""

    def __init__(self, store: str, address: str, reason: str, hint: str):
        self.store, self.address, self.reason, self.hint = store, address, reason, hint
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
