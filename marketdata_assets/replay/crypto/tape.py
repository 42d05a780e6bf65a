"""The deterministic market every crypto venue answers from: instruments' specs, day tapes of
trades, the minute bars aggregated from them, and order books around the last price.

A tape is a pure function of (seed, venue, instrument, day), so a replay restarted with the same
config serves the same trades, and the ground truth can be recomputed at any time. `Market` caches
tapes and answers the queries the venues need (by time, by trade id, bars, a book), never past `now`.
"""

from __future__ import annotations

import bisect
import math
import random
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from marketdata_assets.replay.crypto import paths, reference
from marketdata_assets.replay.crypto.config import BINANCE, BINANCE_UM, DERIBIT, OKX, ReplayConfig

DAY_US = 86_400_000_000
MINUTE_US = 60_000_000
EPOCH_DAY = date(2017, 1, 1)
ID_BASE = {BINANCE: 3_000_000_000, BINANCE_UM: 5_000_000_000, OKX: 500_000_000, DERIBIT: 100_000_000}
OKX_CONTRACT_VALUES = reference.OKX_CONTRACT_VALUES  # the configured contracts' ctVal (reference holds it)
CACHED_TAPES = 96

Rows = list[tuple["DayTape", int]]  # trades as (tape, index in the tape)


# --------------------------------------------------------------------------------------------
# Instruments
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    base_price: float
    tick: float
    size_step: float
    size_mean: float  # in size units
    size_unit: str  # "base" | "inverse" (size in USD) | "contracts" (size * ct_val = base) |
    # "inverse_contracts" (size * ct_val = USD)
    ct_val: float = 1.0  # what one contract is worth (OKX ctVal x ctMult)


def instrument_spec(venue: str, instrument: str, at_us: int | None = None, now_us: int | None = None) -> Spec:
    """The tape's spec of an instrument from its reference terms (`reference.terms`); with `at_us`
    and `now_us`, the terms valid then (a contract value that changed in the history)."""
    if at_us is None or now_us is None:
        found = reference.terms(venue, instrument)
    else:
        found = reference.terms_at(venue, instrument, at_us, now_us)
    value = found.contract_value
    mean = {
        "base": 3_000.0 / found.base_price,
        "inverse": 3_000.0,
        "contracts": 3_000.0 / found.base_price / value,
        "inverse_contracts": 3_000.0 / value,
    }[found.size_unit]
    return Spec(found.base_price, found.tick, found.step, max(mean, found.step), found.size_unit, value)


def _decimals(step: float) -> int:
    return max(0, -math.floor(math.log10(step) + 1e-9))


def round_step(value: float, step: float) -> float:
    return round(round(value / step) * step, _decimals(step))


def base_and_quote(spec: Spec, price: float, size: float) -> tuple[float, float]:
    """The normalized quantity (base) and amount (quote) of a venue size, as the clients compute them."""
    if spec.size_unit == "inverse":
        return size / price, size
    if spec.size_unit == "contracts":
        base = size * spec.ct_val
        return base, price * base
    if spec.size_unit == "inverse_contracts":
        return size * spec.ct_val / price, size * spec.ct_val
    return size, price * size


def binance_trade_span(agg_id: int) -> tuple[int, int]:
    """First/last individual trade ids of an aggregate trade (1 or 2 trades each, contiguous)."""
    first = 7_000_000_000 + agg_id + (agg_id + 2) // 3
    return first, first + (1 if agg_id % 3 == 0 else 0)


# --------------------------------------------------------------------------------------------
# Day tapes
# --------------------------------------------------------------------------------------------


def day_us(day: date) -> int:
    return (day - date(1970, 1, 1)).days * DAY_US


def day_of_us(us: int) -> date:
    return date(1970, 1, 1) + timedelta(days=us // DAY_US)


@dataclass
class DayTape:
    venue: str
    instrument: str
    day: date
    spec: Spec
    first_id: int
    open_price: float
    ts: list[int]  # epoch µs, sorted (ms multiples except Binance)
    price: list[float]
    size: list[float]  # venue units (Binance/OKX spot: base; OKX swap: contracts; Deribit inverse: USD)
    buy: list[bool]  # the taker bought
    _bars: list | None = None

    @property
    def n(self) -> int:
        return len(self.ts)

    def bars(self) -> list[tuple]:
        """1440 minutes: (ts_us, o, h, l, c, base volume, quote volume, trade count, size volume,
        taker-buy base, taker-buy quote)."""
        if self._bars is None:
            start_of_day = day_us(self.day)
            out, i, close = [], 0, self.open_price
            for minute in range(1440):
                start, end = start_of_day + minute * MINUTE_US, start_of_day + (minute + 1) * MINUTE_US
                o = h = lo = c = close
                vol = quote = size_vol = tb_base = tb_quote = 0.0
                count, first = 0, True
                while i < self.n and self.ts[i] < end:
                    p = self.price[i]
                    base, q = base_and_quote(self.spec, p, self.size[i])
                    if first:
                        o = h = lo = p
                        first = False
                    h, lo, c = max(h, p), min(lo, p), p
                    vol += base
                    quote += q
                    size_vol += self.size[i]
                    if self.buy[i]:
                        tb_base += base
                        tb_quote += q
                    if self.venue in (BINANCE, BINANCE_UM):  # aggregate trades: 1 or 2 trades each
                        f, last = binance_trade_span(self.first_id + i)
                        count += last - f + 1
                    else:
                        count += 1
                    i += 1
                close = c
                out.append((start, o, h, lo, c, vol, quote, count, size_vol, tb_base, tb_quote))
            self._bars = out
        return self._bars


def trades_per_day(config: ReplayConfig, instrument: str) -> int:
    return config.trades_per_day_by_instrument.get(instrument, config.trades_per_day)


def generate_tape(config: ReplayConfig, venue: str, instrument: str, day: date) -> DayTape:
    """The day's trades; an instrument listed, delisted or expired that day trades only in the part of
    the day it was live (as many trades, ids contiguous), none on days it was not."""
    now = reference.clock_us(config)
    spec = instrument_spec(venue, instrument, day_us(day), now)
    listed, ended = reference.window(config, venue, instrument)
    lo, hi = max(day_us(day), listed), min(day_us(day) + DAY_US, ended if ended is not None else 1 << 62)
    n = trades_per_day(config, instrument) if hi > lo else 0
    rng = random.Random(f"crypto-replay:{config.seed}:{venue}:{instrument}:{day.isoformat()}")
    start_of_day = day_us(day)
    busy_hour = rng.randrange(24)
    times = []
    for _ in range(n):
        if rng.random() < config.busy_share:
            times.append(start_of_day + busy_hour * 3_600_000_000 + rng.randrange(3_600_000_000))
        else:
            times.append(start_of_day + rng.randrange(DAY_US))
    if (lo, hi) != (start_of_day, start_of_day + DAY_US):  # squeezed into the hours it was live
        times = [lo + (t - start_of_day) * (hi - lo) // DAY_US for t in times]
    times.sort()
    for i in range(1, n):
        if rng.random() < config.burst_share:
            times[i] = times[i - 1]
    if config.burst_run > 1 and n > config.burst_run:
        at = n // 2
        for i in range(at + 1, min(n, at + config.burst_run)):
            times[i] = times[at]
    if venue != BINANCE:
        times = [t - t % 1000 for t in times]
    coin = paths.coin_of(venue, instrument)
    if coin is not None and spec.base_price != reference.base_price(coin):
        coin = None  # priced in another unit than the coin's dollars
    if coin is None:  # its own walk (options' premiums, a pair against another coin)
        open_price = round_step(spec.base_price * math.exp(rng.uniform(-0.15, 0.15)), spec.tick)
    else:  # the coin's path, shared by every venue, a few basis points off it
        level = spec.base_price * (1 + paths.basis(config.seed, venue, instrument))
        open_price = round_step(paths.price_at(config.seed, coin, level, day, 0), spec.tick)
    price, prices, sizes, buys = open_price, [], [], []
    for t in times:
        if coin is None:
            price = max(spec.tick, round_step(price * (1 + rng.gauss(0, 0.0003)), spec.tick))
        else:
            on_path = paths.price_at(config.seed, coin, level, day, t - start_of_day)
            price = max(spec.tick, round_step(on_path * (1 + rng.gauss(0, paths.NOISE)), spec.tick))
        prices.append(price)
        sizes.append(max(spec.size_step, round_step(rng.expovariate(1 / spec.size_mean), spec.size_step)))
        buys.append(rng.random() < 0.5)
    first_id = ID_BASE[venue] + (day - EPOCH_DAY).days * trades_per_day(config, instrument)
    return DayTape(venue, instrument, day, spec, first_id, open_price, times, prices, sizes, buys)


# --------------------------------------------------------------------------------------------
# The market: cached tapes and the queries venues answer from
# --------------------------------------------------------------------------------------------


class Market:
    """The tapes of one replay (the most recent `CACHED_TAPES` kept) and what can be asked of them.
    Only trades before `now_us()` exist; only minutes that have ended have bars."""

    def __init__(self, config: ReplayConfig, lock: threading.RLock | None = None):
        self.config = config
        self.lock = lock or threading.RLock()
        self.tapes: OrderedDict[tuple[str, str, date], DayTape] = OrderedDict()
        self.book_counter = 0
        self.last_book_id = 0
        self.books: dict[
            tuple[str, str], tuple[int, int | None, list]
        ] = {}  # the last book served, normalized
        # (venue, instrument) -> depth -> (update id, bids, asks, ts µs): a live book (the WebSocket
        # replay's, replay.crypto.live_book) that REST snapshots must agree with
        self.live_books: dict[tuple[str, str], Callable[[int], tuple[int, list, list, int]]] = {}
        # (venue, instrument) -> the WebSocket replay's LiveInstrument: the trades it sent, which REST
        # answers by id as sent (`emitted_from`)
        self.live_trades: dict[tuple[str, str], Any] = {}

    def now_us(self) -> int:
        return reference.clock_us(self.config)

    def spec(self, venue: str, instrument: str, at_us: int | None = None) -> Spec:
        """The instrument's spec at `at_us` (default: now)."""
        now = self.now_us()
        return instrument_spec(venue, instrument, now if at_us is None else at_us, now)

    def window(self, venue: str, instrument: str) -> tuple[int, int]:
        """[listed, ended) of the instrument: the span its trades can fall in (reference.window)."""
        listed, ended = reference.window(self.config, venue, instrument)
        return max(listed, day_us(EPOCH_DAY)), ended if ended is not None else 1 << 62

    def exists(self, venue: str, instrument: str) -> bool:
        """Listed by now and not delisted or expired yet."""
        listed, ended = self.window(venue, instrument)
        return listed <= self.now_us() < ended

    def first_day(self, venue: str, instrument: str) -> date:
        return day_of_us(self.window(venue, instrument)[0])

    def tape(self, venue: str, instrument: str, day: date) -> DayTape:
        key = (venue, instrument, day)
        with self.lock:
            tape = self.tapes.get(key)
            if tape is None:
                tape = generate_tape(self.config, venue, instrument, day)
                self.tapes[key] = tape
                while len(self.tapes) > CACHED_TAPES:
                    self.tapes.popitem(last=False)
            else:
                self.tapes.move_to_end(key)
            return tape

    def _id_location(self, venue: str, instrument: str, trade_id: int) -> tuple[date, int]:
        n = trades_per_day(self.config, instrument)
        offset = trade_id - ID_BASE[venue]
        return EPOCH_DAY + timedelta(days=offset // n), offset % n

    def rows_between(
        self,
        venue: str,
        instrument: str,
        lo_us: int,
        hi_us: int,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> Rows:
        """Trades with lo_us <= ts <= hi_us (and before now), oldest first (or newest first), at most
        `limit`."""
        listed, ended = self.window(venue, instrument)
        hi_us = min(hi_us, self.now_us() - 1, ended - 1)
        lo_us = max(lo_us, listed)
        out: Rows = []
        if hi_us < lo_us:
            return out
        room = (lambda: limit - len(out)) if limit is not None else (lambda: 1 << 62)
        day = day_of_us(hi_us if newest_first else lo_us)
        while room() > 0 and (day_us(day) + DAY_US > lo_us if newest_first else day_us(day) <= hi_us):
            tape = self.tape(venue, instrument, day)
            i, j = bisect.bisect_left(tape.ts, lo_us), bisect.bisect_right(tape.ts, hi_us)
            if newest_first:
                out.extend((tape, k) for k in range(j - 1, max(i, j - room()) - 1, -1))
                day -= timedelta(days=1)
            else:
                out.extend((tape, k) for k in range(i, min(j, i + room())))
                day += timedelta(days=1)
        return out

    def rows_from_id(self, venue: str, instrument: str, first: int, limit: int) -> Rows:
        """Up to `limit` trades with id >= first, ascending (before now)."""
        now = self.now_us()
        first_day = self.first_day(venue, instrument)
        first = max(
            first, ID_BASE[venue] + (first_day - EPOCH_DAY).days * trades_per_day(self.config, instrument)
        )
        day, i = self._id_location(venue, instrument, first)
        out: Rows = []
        while len(out) < limit and day_us(day) < now:
            tape = self.tape(venue, instrument, day)
            while i < tape.n and len(out) < limit:
                if tape.ts[i] >= now:
                    return out
                out.append((tape, i))
                i += 1
            day, i = day + timedelta(days=1), 0
        return out

    def rows_before_id(self, venue: str, instrument: str, below: int, limit: int) -> Rows:
        """Up to `limit` trades with id < below, newest first."""
        now = self.now_us()
        below = min(below, self.last_id(venue, instrument) + 1)
        out: Rows = []
        if below <= ID_BASE[venue]:
            return out
        day, i = self._id_location(venue, instrument, below - 1)
        first_day = self.first_day(venue, instrument)
        while len(out) < limit and day >= first_day:
            tape = self.tape(venue, instrument, day)
            i = min(i, tape.n - 1)
            while i >= 0 and len(out) < limit:
                if tape.ts[i] < now:
                    out.append((tape, i))
                i -= 1
            day = day - timedelta(days=1)
            i = trades_per_day(self.config, instrument) - 1
        return out

    def rows_before_ts(self, venue: str, instrument: str, below_us: int, limit: int) -> Rows:
        """Up to `limit` trades with ts < below_us, newest first."""
        below_us = min(below_us, self.now_us())
        out: Rows = []
        day = day_of_us(below_us - 1)
        first_day = self.first_day(venue, instrument)
        while len(out) < limit and day >= first_day:
            tape = self.tape(venue, instrument, day)
            i = bisect.bisect_left(tape.ts, below_us) - 1
            while i >= 0 and len(out) < limit:
                out.append((tape, i))
                i -= 1
            day -= timedelta(days=1)
        return out

    def latest(self, venue: str, instrument: str, limit: int) -> Rows:
        """The newest `limit` trades, oldest first."""
        return list(
            reversed(self.rows_before_id(venue, instrument, self.last_id(venue, instrument) + 1, limit))
        )

    def last_id(self, venue: str, instrument: str) -> int:
        now = min(self.now_us(), self.window(venue, instrument)[1])
        tape = self.tape(venue, instrument, day_of_us(now))
        i = bisect.bisect_left(tape.ts, now) - 1
        if i >= 0:
            return tape.first_id + i
        return tape.first_id - 1

    def bars_between(self, venue: str, instrument: str, lo_us: int, hi_us: int) -> list[tuple]:
        """Minute bars opening in [lo_us, hi_us], only minutes that have ended by now."""
        listed, ended = self.window(venue, instrument)
        hi_us = min(hi_us, self.now_us() - MINUTE_US, ended - 1)
        lo_us = max(lo_us, listed - listed % MINUTE_US)
        out: list[tuple] = []
        if hi_us < lo_us:
            return out
        day = max(day_of_us(lo_us), EPOCH_DAY)
        while day_us(day) <= hi_us:
            bars = self.tape(venue, instrument, day).bars()
            lo_i = max(0, -(-(lo_us - day_us(day)) // MINUTE_US))
            hi_i = min(1439, (hi_us - day_us(day)) // MINUTE_US)
            out.extend(bars[lo_i : hi_i + 1])
            day += timedelta(days=1)
        return out

    def book(self, venue: str, instrument: str, depth: int) -> tuple[int, list, list, int]:
        """(update id, bids, asks, ts µs) in venue units around the last trade price; remembers the
        normalized rows in `books` (OKX books have no update id there)."""
        live = self.live_books.get((venue, instrument))
        if live is not None:
            return self._live_book(venue, instrument, live(depth))
        self.book_counter += 1
        now = self.now_us()
        spec = self.spec(venue, instrument)
        tape = self.tape(venue, instrument, day_of_us(now))
        i = bisect.bisect_left(tape.ts, now) - 1
        mid = tape.price[i] if i >= 0 else tape.open_price
        # growing with the clock (ms x 1000), so a replay started again later never sends an id again, as
        # a venue never does (the live loads refuse one id landing twice with different books)
        update_id = self.last_book_id = max(self.last_book_id + 1, now // 1000 * 1000)
        rng = random.Random(f"book:{self.config.seed}:{venue}:{instrument}:{update_id}")
        best_bid = round_step(mid - spec.tick * rng.randint(0, 3), spec.tick)
        best_ask = round_step(best_bid + spec.tick * rng.randint(1, 4), spec.tick)
        bids, asks = [], []
        for level in range(depth):
            bids.append(
                (
                    round_step(best_bid - level * spec.tick * rng.randint(1, 3), spec.tick),
                    max(spec.size_step, round_step(rng.expovariate(1 / spec.size_mean) * 3, spec.size_step)),
                )
            )
            asks.append(
                (
                    round_step(best_ask + level * spec.tick * rng.randint(1, 3), spec.tick),
                    max(spec.size_step, round_step(rng.expovariate(1 / spec.size_mean) * 3, spec.size_step)),
                )
            )
        # strictly monotonic prices, best first
        for side, sign in ((bids, -1), (asks, 1)):
            for k in range(1, len(side)):
                if sign * (side[k][0] - side[k - 1][0]) <= 0:
                    side[k] = (round_step(side[k - 1][0] + sign * spec.tick, spec.tick), side[k][1])
        bids = [(p, q) for p, q in bids if p > 0]
        ts = now - now % 1000
        rows = [("bid", k, p, base_and_quote(spec, p, q)[0]) for k, (p, q) in enumerate(bids)] + [
            ("ask", k, p, base_and_quote(spec, p, q)[0]) for k, (p, q) in enumerate(asks)
        ]
        self.books[(venue, instrument)] = (ts, update_id if venue != OKX else None, rows)
        return update_id, bids, asks, ts

    def _live_book(
        self, venue: str, instrument: str, book: tuple[int, list, list, int]
    ) -> tuple[int, list, list, int]:
        update_id, bids, asks, ts = book
        spec = self.spec(venue, instrument)
        rows = [("bid", k, p, base_and_quote(spec, p, q)[0]) for k, (p, q) in enumerate(bids)] + [
            ("ask", k, p, base_and_quote(spec, p, q)[0]) for k, (p, q) in enumerate(asks)
        ]
        self.books[(venue, instrument)] = (ts, update_id, rows)
        return book
