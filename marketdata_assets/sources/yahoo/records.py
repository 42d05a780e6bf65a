"""What a Yahoo chart v8 answer is read into, declared once: `ChartMeta` (the fields of `meta` read; the
rest are ignored), `ChartData` (one instrument's bars, unit and drop counts) and `BAR_RULES`, what every
bar keeps, checked on the page's columns."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec
import numpy as np
import polars as pl

from marketdata_assets.datasets.declared import Rule

QUOTE_FIELDS = ("open", "high", "low", "close", "volume")


class ChartMeta(msgspec.Struct):
    """`meta`: the fields read, as sent (`Any`: what a value of another type means is said where it is
    read; the whole `meta` is kept in `ChartData.meta`)."""

    symbol: Any = None  # "VOD.L": the instrument, when none was given
    exchangeName: Any = None  # "LSE", "NMS": the bars' venue
    fullExchangeName: Any = None  # "LSE", "NasdaqGS": the venue without an exchangeName
    currency: Any = None  # the prices' unit: ISO 4217 ("USD") or a minor unit (`MINOR_UNITS`: "GBp" pence)
    dataGranularity: Any = None  # "1m": must be the interval asked for (absent: not said)
    exchangeTimezoneName: Any = None  # "Europe/London": ChartData.timezone
    gmtoffset: Any = None  # seconds east of UTC at the answer's time: ChartData.gmtoffset


@dataclass
class ChartData:
    instrument: str
    frame: pl.DataFrame  # BARS_SCHEMA, oldest first, prices in major units
    currency: str | None = None  # normalized: "GBP" for "GBp"
    quote_currency: str | None = None  # as Yahoo sent it
    price_divisor: int = 1
    exchange: str = "YAHOO"
    timezone: str | None = None  # meta.exchangeTimezoneName
    gmtoffset: int | None = None
    meta: dict = field(default_factory=dict)
    null_minutes: int = 0
    partial_rows: int = 0
    off_minute: int = 0  # timestamps not on a minute boundary (floored)
    duplicates: int = 0
    outside: int = 0  # rows outside the requested window (dropped)
    denoised: int = 0  # prices snapped from float32 noise
    no_currency: int = 0  # answers without meta.currency where the unit does not depend on it
    requests: int = 0
    dropped_on: Counter = field(default_factory=Counter)  # (DROP_REASONS reason, UTC day) -> rows dropped

    def counts(self) -> dict[str, int]:
        return {
            "null_minutes": self.null_minutes,
            "partial_rows": self.partial_rows,
            "off_minute": self.off_minute,
            "duplicates": self.duplicates,
            "outside": self.outside,
            "denoised": self.denoised,
            "no_currency": self.no_currency,
        }


def _not_seconds(what: str, bar: dict) -> str:
    value = bar["timestamp"]
    if isinstance(value, int) and not isinstance(value, bool):
        math.isfinite(value)  # an int too large for a double raises OverflowError, as the row reader did
    return f"{what} is {value!r}, not epoch seconds"


def _at(bar: dict) -> str:
    return datetime.fromtimestamp(int(bar["epoch"]), UTC).isoformat()


def _infinite(name: str) -> Callable[[str, dict], str]:
    def says(what: str, bar: dict) -> str:
        float(bar[name])  # an int too large for a double raises OverflowError, as the row reader did
        return f"infinite {name} at {bar['epoch']}"

    return says


def _value_rules(name: str) -> tuple[Rule, Rule]:
    """A bar's `name`: a number (or null: a minute without trades), not infinite (NaN is null)."""
    return (
        Rule(
            name,
            lambda c: c[f"{name} number"],
            lambda what, bar: f"non-numeric {name} {bar[name]!r} at {_at(bar)}",
        ),
        Rule(name, lambda c: ~np.isinf(c[f"{name} value"]), _infinite(name)),
    )


# What every bar keeps, in the order a breach is told: its timestamp epoch seconds, numbers (or null)
# that are not infinite, a volume not negative.
BAR_RULES = (
    Rule("timestamp", lambda c: c["seconds"], _not_seconds),
    *(rule for name in QUOTE_FIELDS for rule in _value_rules(name)),
    Rule(
        "volume",
        lambda c: ~(c["volume value"] < 0),
        lambda what, bar: f"volume {bar['volume value']:g} at {_at(bar)}, negative",
    ),
)


__all__ = ["BAR_RULES", "QUOTE_FIELDS", "ChartData", "ChartMeta"]
