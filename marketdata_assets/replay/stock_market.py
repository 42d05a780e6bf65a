"""What the Tushare and Yahoo replays share: their config, their faults, the deterministic market
both draw from, and what the one-port server (`replay.stocks`) gives each of them (`Host`,
`SourceReplay`).

The market: an exchange's sessions (its calendar, core.calendars; minus `holidays`) are trading days,
prices are random walks around a slow per-instrument reference (`reference_price`), every number a pure
function of (seed, instrument, day) so that the ground truth can be recomputed at any time.

The field names of `Fault` and of the config are the replay's own format (the control endpoint's
JSON, the CLI's `--fault` and `--config`): `Fault.symbols` names the instruments a fault targets.
"""

from __future__ import annotations

import dataclasses
import math
import random
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any

from marketdata_assets.core import calendars
from marketdata_assets.replay import Limited, Reply, json_reply


@dataclass
class Fault(Limited):
    """One injected fault. Matches requests by provider ("tushare" / "yahoo", None = both), API
    (Tushare api_name or "chart"), and symbols (None = all); fires on every `every`-th matching
    request, at most `times` times (None = unlimited)."""

    kind: str
    symbols: list[str] | None = None
    provider: str | None = None
    api: str | None = None
    every: int = 1
    times: int | None = None
    status: int = 503  # http_error
    seconds: float = 0.0  # latency
    field: str = "close"  # missing_field / non_numeric (Yahoo: a quote field, or "meta.<key>")
    value: Any = "abc"  # non_numeric
    code: int = 40203  # tushare_error
    message: str = ""  # tushare_error / bad_request
    body: str = "Too Many Requests"  # too_many_requests ("Edge: Too Many Requests" is the other one)
    seen: int = 0
    fired: int = 0

    KINDS = (
        "latency",
        "http_error",
        "malformed_json",
        "missing_field",
        "non_numeric",
        "tushare_error",
        "tushare_permission",
        "bad_token",
        "too_many_requests",
        "not_found",
        "bad_request",
        "null_data",
    )

    def __post_init__(self):
        if self.kind not in self.KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; one of {', '.join(self.KINDS)}")
        if self.symbols is not None:
            self.symbols = [s.upper() for s in self.symbols]

    def matches(self, source: str, api: str, instruments: Iterable[str]) -> bool:
        if self.provider and self.provider != source:
            return False
        if self.api and self.api != api:
            return False
        return self.symbols is None or any(i.upper() in self.symbols for i in instruments)

    def public(self) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items()}


@dataclass
class StocksReplayConfig:
    seed: int = 7
    latency_s: float = 0.0
    # Tushare
    tushare_tokens: list[str] | None = None  # None: any non-empty token is accepted
    tushare_minute_limit: int | None = None
    tushare_hour_limit: int | None = None
    tushare_day_limit: int | None = None
    limit_window_s: float = 60.0
    stk_mins_row_limit: int = 8000
    daily_row_limit: int = 6000
    has_more: bool = False  # set data.has_more on truncated answers (the real API does not, reliably)
    tushare_auction_bar: bool = True  # 09:30 auction bar (241 bars) or folded into 09:31 (240)
    tushare_listed: int = (
        5000  # codes stock_basic lists (list_status L): the market's size (replay.a_share_listing)
    )
    stock_basic_row_limit: int = 6000  # rows of a stock_basic answer
    # Yahoo
    yahoo_null_minute_rate: float = 0.02
    yahoo_partial_rate: float = 0.01
    yahoo_max_window_days: float = 8.0
    yahoo_days_back: float | None = 30.0
    now: float | None = None  # epoch seconds of "now" for Yahoo's horizon and range=; None = the clock
    holidays: list[str] = field(default_factory=list)  # YYYY-MM-DD without sessions anywhere
    faults: list[Fault] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: dict) -> StocksReplayConfig:
        data = dict(data)
        faults = [f if isinstance(f, Fault) else Fault(**f) for f in data.pop("faults", [])]
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown config fields: {sorted(unknown)}")
        return cls(**data, faults=faults)

    def holiday_tuple(self) -> tuple[str, ...]:
        """The holidays as the (cached) generators take them."""
        return tuple(sorted(self.holidays))


class Host:
    """What the one-port server gives the Tushare and Yahoo replays: the config, the fault firing, the
    request log and the clock."""

    def __init__(self, config: StocksReplayConfig):
        self.config = config
        self.lock = threading.RLock()
        self.log: deque[dict] = deque(maxlen=100_000)
        self._local = threading.local()  # the request path being handled, for the log

    def now(self) -> float:
        """Epoch seconds of "now" (`config.now`, or the clock)."""
        return self.config.now if self.config.now is not None else time.time()

    def fire_faults(self, source: str, api: str, instruments: list[str]) -> Fault | None:
        """Count the faults matching a request, wait out the configured and the injected latency;
        the first firing non-latency fault."""
        latency, chosen = 0.0, None
        with self.lock:
            for fault in self.config.faults:
                if not fault.matches(source, api, instruments):
                    continue
                fault.seen += 1
                if fault.seen % max(1, fault.every) != 0:
                    continue
                if fault.kind == "latency":
                    if fault.take():
                        latency += fault.seconds
                elif chosen is None and fault.take():
                    chosen = fault
        if self.config.latency_s + latency:
            time.sleep(self.config.latency_s + latency)
        return chosen

    def record(
        self,
        source: str,
        api: str,
        instruments: list[str],
        status: int,
        code: Any = None,
        fault: str | None = None,
    ) -> None:
        """Log one answered request."""
        with self.lock:
            self.log.append(
                {
                    "t": time.monotonic(),
                    "wall": time.time(),
                    "provider": source,
                    "api": api,
                    "path": getattr(self._local, "path", None),
                    "symbols": [i.upper() for i in instruments],
                    "status": status,
                    "code": code,
                    "fault": fault,
                }
            )


class SourceReplay:
    """One source's side of the stocks replay, answering on the `host`'s port with its config."""

    def __init__(self, host: Host):
        self.host = host

    @property
    def config(self) -> StocksReplayConfig:
        return self.host.config


# --------------------------------------------------------------------------------------------
# Deterministic market data
# --------------------------------------------------------------------------------------------


def seeded_random(*parts: Any) -> random.Random:
    return random.Random("|".join(str(p) for p in parts))  # str seeds hash with SHA-512: stable


def is_session_day(day: date, holidays: tuple[str, ...] = (), venue: str | None = None) -> bool:
    """A weekday not in `holidays` and, for a `venue`, a session of its exchange's calendar (a vendor serves
    no bars on a market holiday) where the calendar knows the day."""
    return (
        day.weekday() < 5
        and day.isoformat() not in holidays
        and (venue is None or _venue_session(venue, day))
    )


@lru_cache(maxsize=65_536)
def _venue_session(venue: str, day: date) -> bool:
    try:
        return bool(calendars.trading_days(venue, day, day))
    except ValueError:  # no calendar for the venue, or a day before it: a weekday trades
        return True


@lru_cache(maxsize=65_536)
def session_end(venue: str, day: date) -> datetime | None:
    """The end of `venue`'s regular session on `day` by its calendar (an early close, as the day after
    Thanksgiving's 13:00 in New York, included); None where the calendar knows neither (a vendor's own
    hours then)."""
    try:
        minutes = calendars.session_minutes(venue, day)
    except ValueError:  # no calendar for the venue, or a day outside it
        return None
    return minutes[-1] + timedelta(minutes=1) if minutes else None


def reference_price(seed: int, instrument: str, day: date, lo: float, hi: float) -> float:
    """A slowly moving per-instrument level, a pure function of the day (no chain through history)."""
    base = lo * (hi / lo) ** seeded_random(seed, instrument, "base").random()
    phase = seeded_random(seed, instrument, "phase").random() * 2 * math.pi
    x = day.toordinal()
    return base * math.exp(
        0.12 * math.sin(x / 29.0 + phase)
        + 0.04 * math.sin(x / 6.3 + 2 * phase)
        + 0.01 * seeded_random(seed, instrument, day, "ref").gauss(0, 1)
    )


def r2(x: float) -> float:
    return round(x + 0.0, 2)


def vendor_json(status: int, payload: Any) -> Reply:
    """JSON as both vendors send it: UTF-8 (Tushare's messages are Chinese), charset in the type."""
    return json_reply(status, payload, content_type="application/json;charset=utf-8", ensure_ascii=False)
