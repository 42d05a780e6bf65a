"""What a venue module gives the crypto replay server, and what the server gives it.

The server routes a request to the `Venue` whose `prefix` starts its path, logs it, fires the
faults, and turns the venue's payload (or `VendorError`) into JSON. A venue holds only its own
knowledge: paths and formats (`answer`), limits (`admit`), the envelope around every answer, the
error bodies of faults and which field a damaged answer loses.
"""

from __future__ import annotations

from typing import Any, ClassVar

from marketdata_assets.replay import Reply
from marketdata_assets.replay.crypto.config import Fault, ReplayConfig
from marketdata_assets.replay.crypto.tape import Market


class VendorError(Exception):
    """An error answer in the vendor's format, raised from `Venue.answer`."""

    def __init__(self, status: int, payload: Any):
        self.status, self.payload = status, payload


class Venue:
    """One venue of the replay, answering from the shared `market`."""

    name: str
    prefix: str  # the paths it serves start with this
    instrument_param: str  # the query parameter naming the instrument
    endpoints: ClassVar[dict[str, str]]  # the last path segment -> trades | book | bars (what faults target)
    bar_decimals: int | None = None  # bar volumes as the venue's strings carry them (truth_bars)
    bar_trade_counts = False  # its bars count trades (truth_bars' `trades`)

    def __init__(self, config: ReplayConfig, market: Market):
        self.config, self.market = config, market
        self.limit_refusals = 0  # requests `admit` refused for a rate limit (the bench's "violations")

    def instrument(self, query: dict) -> str | None:
        return query.get(self.instrument_param)

    def endpoint(self, path: str) -> str | None:
        return self.endpoints.get(path.rsplit("/", 1)[-1])

    def admit(self, path: str, query: dict) -> tuple[dict[str, str], Reply | None]:
        """Headers for the answer, and a refusal if a limit is reached (called under the server's lock)."""
        return {}, None

    def answer(self, path: str, query: dict, headers) -> Any:
        """The payload of a normal answer; raises VendorError for the venue's own errors."""
        raise NotImplementedError

    def envelope(self, payload: Any, query: dict) -> Any:
        """What goes on the wire around a payload or an error."""
        return payload

    def fault_reply(self, fault: Fault) -> Reply:
        """The answer that replaces a normal one when `fault` fires (one not in BODY_FAULTS)."""
        raise NotImplementedError

    def mutate(self, payload: Any, path: str, fault_kind: str) -> None:
        """Damage one record of a normal answer: drop a required field ("missing_field") or make a
        price non-numeric ("bad_number")."""

    def trade_id(self, instrument: str, seq: int) -> str:
        return str(seq)

    def reset(self) -> None:
        """Forget counted requests (`CryptoReplayServer.reset`); subclasses call this too."""
        self.limit_refusals = 0


def retry_after(fault: Fault) -> dict[str, str]:
    return {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}


def middle(records: list) -> Any:
    """The record that body faults damage."""
    return records[len(records) // 2]


def damage(record: dict | list, key: Any, fault_kind: str, bad_number: str) -> None:
    """Drop `key` from a record ("missing_field") or put a value there that is not a number."""
    if fault_kind == "missing_field":
        del record[key]
    else:
        record[key] = bad_number
