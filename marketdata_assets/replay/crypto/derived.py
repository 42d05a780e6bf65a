"""The replay market's derived series: index and mark prices, funding, open interest and which
trades were liquidations, each a pure function of (seed, venue, instrument, time) built on the day
tapes, so every venue answers the same numbers on every run and tests can recompute them.

- index: the minute's trade bar moved by a small deterministic tracking error (±2 bp);
- mark: the index times (1 + premium), the premium a 36-hour wave of ±4 bp plus noise;
- funding settled at t for the period [t - interval, t): the period's mean premium plus the usual
  0.01% interest-rate term, clamped to ±`FUNDING_CAP` (venues clamp to a published cap);
- open interest at t (contracts): a level per instrument moving ±20% through the day, never < 0;
- liquidations: about 1% of trades (`is_liquidation`), the same ones on every call.
"""

from __future__ import annotations

import math
import random
import zlib

from marketdata_assets.replay.crypto.tape import MINUTE_US, Market, day_of_us, day_us

HOUR_US = 3_600_000_000
FUNDING_CAP = 0.0075  # ±0.75% a period: inside every venue's cap for the majors
INTEREST = 0.0001  # the 0.01% a period interest component of Binance's and OKX's formula
LIQUIDATION_SHARE = 0.01


def _unit(*key) -> float:
    """A deterministic number in [0, 1) for a key."""
    return zlib.crc32(repr(key).encode()) / 2**32


def premium(seed: int, venue: str, instrument: str, minute_us: int) -> float:
    """mark / index - 1 during the minute opening at `minute_us`."""
    minutes = minute_us // MINUTE_US
    return 0.0004 * math.sin(2 * math.pi * minutes / 2160) + 0.0001 * (
        _unit(seed, venue, instrument, minutes) - 0.5
    )


def index_bar(
    market: Market, venue: str, instrument: str, minute_us: int
) -> tuple[float, float, float, float]:
    """(open, high, low, close) of the index in the minute opening at `minute_us` (it must have ended)."""
    bar = market.tape(venue, instrument, day_of_us(minute_us)).bars()[
        (minute_us - day_us(day_of_us(minute_us))) // MINUTE_US
    ]
    error = 0.0002 * (_unit("index", market.config.seed, venue, instrument, minute_us) - 0.5) * 2
    o, h, lo, c = (round(p * (1 + error), 2) for p in bar[1:5])
    return o, max(o, h, lo, c), min(o, h, lo, c), c


def mark_bar(
    market: Market, venue: str, instrument: str, minute_us: int
) -> tuple[float, float, float, float]:
    """(open, high, low, close) of the mark price: the index bar times (1 + premium)."""
    factor = 1 + premium(market.config.seed, venue, instrument, minute_us)
    return tuple(round(p * factor, 2) for p in index_bar(market, venue, instrument, minute_us))


def funding_rate(market: Market, venue: str, instrument: str, settle_us: int, interval_hours: float) -> float:
    """The rate settled at `settle_us` for the `interval_hours` before it (sampled every 15 minutes)."""
    period = int(interval_hours * HOUR_US)
    samples = [
        premium(market.config.seed, venue, instrument, settle_us - period + k * 15 * MINUTE_US)
        for k in range(max(1, period // (15 * MINUTE_US)))
    ]
    rate = sum(samples) / len(samples) + INTEREST * interval_hours / 8
    return round(max(-FUNDING_CAP, min(FUNDING_CAP, rate)), 8)


def settlements(first_us: int, last_us: int, interval_hours: float) -> list[int]:
    """Funding times (multiples of the interval since 00:00 UTC) in [first_us, last_us]."""
    step = int(interval_hours * HOUR_US)
    t = -(-first_us // step) * step
    out = []
    while t <= last_us:
        out.append(t)
        t += step
    return out


def open_interest(market: Market, venue: str, instrument: str, ts_us: int) -> float:
    """Open interest in contracts (the venue's units) at `ts_us`, whole contracts."""
    spec = market.spec(venue, instrument, ts_us)  # contracts of the value valid then
    level = 40_000 * spec.size_mean
    day = ts_us // (24 * HOUR_US)
    phase = (ts_us % (24 * HOUR_US)) / (24 * HOUR_US)
    wave = 0.2 * math.sin(2 * math.pi * (phase + _unit("oi-phase", venue, instrument, day)))
    noise = 0.02 * (_unit("oi", market.config.seed, venue, instrument, ts_us // (5 * MINUTE_US)) - 0.5)
    return float(max(0, round(level * (1 + wave + noise))))


def is_liquidation(seed: int, venue: str, instrument: str, trade_id: int) -> bool:
    """Whether the trade `trade_id` was a forced liquidation (about `LIQUIDATION_SHARE` of trades)."""
    return random.Random(f"liq:{seed}:{venue}:{instrument}:{trade_id}").random() < LIQUIDATION_SHARE
