"""One price path per coin, shared by every venue's instruments priced in dollars of it (spot against a
dollar quote, perpetuals, futures), so the replay's trades, books, bars, index and mark prices and funding
agree across venues and days within a small basis, as a basis check on real data expects.

The path: the coin's daily log-returns (a walk from `EPOCH_DAY` pulled back towards the coin's base price,
deterministic from the seed), and
within each day a minute path bridged from the day's open to the next day's (no jump at midnight). A
venue's instrument sits a constant few basis points off it; each trade a little off that.
"""

from __future__ import annotations

import functools
import math
import random
import threading
from datetime import date, timedelta

from marketdata_assets.replay.crypto import reference
from marketdata_assets.replay.crypto.config import BINANCE, BINANCE_UM, OKX

EPOCH_DAY = date(2017, 1, 1)
DAILY_VOL = 0.03  # the coin's daily log-return standard deviation
REVERSION = 0.02  # a day's pull back towards the base price: the walk stays within some ±30% of it (sd 15%)
MINUTES = 1440
NOISE = 0.0002  # a trade's own deviation from its instrument's price
BASIS = 0.0003  # an instrument's constant distance from the coin, at most (3 bp)
DOLLARS = {"USDT", "USDC", "USD", "FDUSD", "BUSD", "TUSD", "DAI"}

_opens: dict[
    tuple[int, str], list[float]
] = {}  # (seed, coin) -> its log price at each day's open since EPOCH_DAY
_lock = threading.Lock()


def coin_of(venue: str, instrument: str) -> str | None:
    """The coin whose dollar price an instrument trades at (BTCUSDT, BTC-USDT-SWAP, BTC-PERPETUAL: BTC);
    None for one priced otherwise (options' premiums, a pair against another coin)."""
    if venue in (BINANCE, BINANCE_UM):
        coin, quote = reference.split_binance(instrument)
    elif venue == OKX:
        parts = instrument.split("-")
        if len(parts) not in (2, 3):  # options (5 parts) are premiums; dated futures have 3 too
            return None
        coin, quote = parts[0], parts[1]
    else:
        parts = instrument.split("-")
        if len(parts) == 4:  # options
            return None
        coin, _, quote = parts[0].partition("_")
        quote = quote or "USD"
    return coin if quote in DOLLARS else None


def _day_open(seed: int, coin: str, day: date) -> float:
    """The coin's log price (relative to its base price) at the day's open."""
    index = max(0, (day - EPOCH_DAY).days)
    with _lock:
        series = _opens.setdefault((seed, coin), [0.0])
        while len(series) <= index:
            rng = random.Random(f"coin-day:{seed}:{coin}:{len(series)}")
            series.append(series[-1] * (1 - REVERSION) + rng.gauss(0.0, DAILY_VOL))
        return series[index]


@functools.lru_cache(maxsize=512)
def minute_path(seed: int, coin: str, day: date) -> tuple[float, ...]:
    """The coin's log price at each minute boundary of the day (1,441 values: open to the next open)."""
    start, end = _day_open(seed, coin, day), _day_open(seed, coin, day + timedelta(days=1))
    rng, step, walk = (
        random.Random(f"coin-minutes:{seed}:{coin}:{day.isoformat()}"),
        DAILY_VOL / math.sqrt(MINUTES),
        [0.0],
    )
    for _ in range(MINUTES):
        walk.append(walk[-1] + rng.gauss(0.0, step))
    drift = walk[-1] - (end - start)
    return tuple(start + walk[k] - drift * k / MINUTES for k in range(MINUTES + 1))


def basis(seed: int, venue: str, instrument: str) -> float:
    """The instrument's constant relative distance from its coin's price (within ±`BASIS`)."""
    return BASIS * (2 * random.Random(f"basis:{seed}:{venue}:{instrument}").random() - 1)


def price_at(seed: int, coin: str, base_price: float, day: date, offset_us: int) -> float:
    """The coin's price `offset_us` into the day (the minute path, linear within a minute)."""
    path = minute_path(seed, coin, day)
    position = min(max(offset_us / 60_000_000, 0.0), float(MINUTES))
    k = min(int(position), MINUTES - 1)
    return base_price * math.exp(path[k] + (path[k + 1] - path[k]) * (position - k))
