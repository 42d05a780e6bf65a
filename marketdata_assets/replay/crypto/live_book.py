"""The live side of one Binance spot instrument in the replay: a true order book that moves by
numbered updates, and the tape's trades played forward.

Its snapshot and diff events agree as at the venue, its bars are the REST replays' bars, and every trade
played is kept as sent so the REST replay answers those ids the same. How the book, bars and trades
are made: docs/tests.md, "The live book".
"""

from __future__ import annotations

import bisect
import random
import time
from collections import OrderedDict
from datetime import timedelta

from marketdata_assets.replay.crypto.config import BINANCE
from marketdata_assets.replay.crypto.tape import (
    MINUTE_US,
    Market,
    day_of_us,
    day_us,
    instrument_spec,
    round_step,
)

EMITTED_KEPT = 500_000  # trades kept as sent per instrument (a long-running replay forgets the oldest)


def fmt8(value: float) -> str:
    return f"{value:.8f}"


def last_closed_bar(market: Market, venue: str, instrument: str, now_us: int) -> tuple | None:
    """The tape's bar of the minute that ended last (tape.DayTape.bars' tuple), as REST answers it."""
    minute = now_us - now_us % MINUTE_US - MINUTE_US
    bars = market.bars_between(venue, instrument, minute, minute)
    return bars[0] if bars else None


def open_bar(market: Market, venue: str, instrument: str, now_us: int) -> tuple:
    """The tape's bar of the minute in progress (the replay's open bar shows its final values)."""
    day = day_of_us(now_us)
    return market.tape(venue, instrument, day).bars()[(now_us - day_us(day)) // MINUTE_US]


class LiveInstrument:
    """Book and trades of one instrument; thread-safe (the WebSocket loop steps it, the REST
    replay's threads read snapshots). It shares the market's lock: a step that rolls into the next
    day's tape takes that lock too, and two locks taken in opposite orders by the two loops deadlock."""

    def __init__(self, market: Market, instrument: str, seed: int, levels: int = 40, venue: str = BINANCE):
        self.market, self.instrument, self.levels, self.venue = market, instrument, levels, venue
        self.spec = instrument_spec(venue, instrument)
        seed_key = f"live:{seed}:{instrument}" if venue == BINANCE else f"live:{seed}:{venue}:{instrument}"
        self.rng = random.Random(seed_key)
        self.lock = market.lock
        update_id, bids, asks, _ = market.book(venue, instrument, levels)
        self.update_id = update_id
        self.bids = {fmt8(p): fmt8(q) for p, q in bids}
        self.asks = {fmt8(p): fmt8(q) for p, q in asks}
        now = market.now_us()
        self.tape = market.tape(venue, instrument, day_of_us(now))
        self.cursor = bisect.bisect_left(self.tape.ts, now)
        self.first_trade_id: int | None = None
        self.last_trade_id: int | None = None
        self.emitted: OrderedDict[int, tuple[int, float, float, bool]] = OrderedDict()
        market.live_trades[(venue, instrument)] = self

    # ---- the book ---------------------------------------------------------------------------

    def _best(self, side: dict[str, str], highest: bool) -> float:
        prices = [float(p) for p in side]
        return (max(prices) if highest else min(prices)) if prices else float(self.tape.open_price)

    def _one_update(self, touched: dict[tuple[str, str], str]) -> None:
        """Change one level of the truth book; remember its final quantity in `touched`."""
        rng, tick = self.rng, self.spec.tick
        is_bid = rng.random() < 0.5
        side = self.bids if is_bid else self.asks
        name = "b" if is_bid else "a"
        roll = rng.random()
        if side and roll < 0.55:  # change the size at an existing level near the top
            price = sorted(side, key=float, reverse=is_bid)[rng.randrange(min(10, len(side)))]
            size = fmt8(
                max(
                    self.spec.size_step,
                    round_step(rng.expovariate(1 / self.spec.size_mean) * 3, self.spec.size_step),
                )
            )
        elif side and (roll < 0.8 or len(side) > self.levels * 1.5):  # remove a level
            price = sorted(side, key=float, reverse=is_bid)[rng.randrange(min(10, len(side)))]
            size = fmt8(0.0)
        else:  # a new level behind the best, never crossing the other side
            best_bid, best_ask = self._best(self.bids, True), self._best(self.asks, False)
            offset = tick * rng.randint(0, 15)
            raw = best_bid - offset if is_bid else best_ask + offset
            if is_bid and raw >= best_ask:
                raw = best_ask - tick
            if not is_bid and raw <= best_bid:
                raw = best_bid + tick
            if raw <= 0:
                return
            price = fmt8(round_step(raw, tick))
            size = fmt8(
                max(
                    self.spec.size_step,
                    round_step(rng.expovariate(1 / self.spec.size_mean), self.spec.size_step),
                )
            )
        if float(size) == 0:
            side.pop(price, None)
        else:
            side[price] = size
        touched[(name, price)] = size

    def step_levels(self, skip: bool = False) -> tuple[int, int, list[list[str]], list[list[str]]]:
        """(first, last update id, bids, asks touched: [price, final quantity]) of the next move (1 to 3
        updates); `skip`: one update before it is applied but never sent (first = previous last + 2)."""
        with self.lock:
            if skip:
                self._one_update({})
                self.update_id += 1
            first = self.update_id + 1
            touched: dict[tuple[str, str], str] = {}
            for _ in range(self.rng.randint(1, 3)):
                self._one_update(touched)
                self.update_id += 1
            return (
                first,
                self.update_id,
                [[p, q] for (s, p), q in touched.items() if s == "b"],
                [[p, q] for (s, p), q in touched.items() if s == "a"],
            )

    def step(self, event_ms: int, skip: bool = False) -> dict:
        """The next `depthUpdate` payload (see `step_levels`)."""
        first, last, bids, asks = self.step_levels(skip)
        return {
            "e": "depthUpdate",
            "E": event_ms,
            "s": self.instrument,
            "U": first,
            "u": last,
            "b": bids,
            "a": asks,
        }

    def top(self, depth: int) -> tuple[int, list[tuple[str, str]], list[tuple[str, str]]]:
        """(update id, best `depth` bids, asks) of the truth, the venue's strings, best first."""
        with self.lock:
            bids = sorted(self.bids.items(), key=lambda level: float(level[0]), reverse=True)[:depth]
            asks = sorted(self.asks.items(), key=lambda level: float(level[0]))[:depth]
            return self.update_id, bids, asks

    def snapshot(self, depth: int) -> tuple[int, list, list, int]:
        """(lastUpdateId, bids, asks, ts µs) of the truth book, best `depth` levels (the REST answer)."""
        with self.lock:
            bids = sorted(((float(p), float(q)) for p, q in self.bids.items()), reverse=True)[:depth]
            asks = sorted((float(p), float(q)) for p, q in self.asks.items())[:depth]
            return self.update_id, bids, asks, int(time.time() * 1e6)

    def truth(self) -> tuple[int, dict[str, str], dict[str, str]]:
        with self.lock:
            return self.update_id, dict(self.bids), dict(self.asks)

    # ---- trades -----------------------------------------------------------------------------

    def resume_after(self, last_id: int) -> None:
        """Play on from the trade after `last_id` (one an earlier run sent), if that is ahead of now."""
        with self.lock:
            while self.tape.first_id + self.tape.n <= last_id:  # it ran into a later day's tape
                self.tape = self.market.tape(self.venue, self.instrument, self.tape.day + timedelta(days=1))
                self.cursor = 0
            self.cursor = max(self.cursor, last_id + 1 - self.tape.first_id)

    def tape_trades(self, count: int, event_ms: int | None = None) -> list[tuple[int, float, float, bool]]:
        """The next `count` trades of the tape: (trade id, price, size, the taker bought), kept in
        `emitted` as traded at `event_ms` (default: now)."""
        event_ms = int(time.time() * 1000) if event_ms is None else event_ms
        out = []
        with self.lock:
            for _ in range(count):
                if self.cursor >= self.tape.n:
                    self.tape = self.market.tape(
                        self.venue, self.instrument, self.tape.day + timedelta(days=1)
                    )
                    self.cursor = 0
                tape, i = self.tape, self.cursor
                trade_id = tape.first_id + i
                out.append((trade_id, tape.price[i], tape.size[i], bool(tape.buy[i])))
                self.cursor += 1
                self.emitted[trade_id] = (event_ms, tape.price[i], tape.size[i], bool(tape.buy[i]))
                if len(self.emitted) > EMITTED_KEPT:
                    self.emitted.popitem(last=False)
                self.first_trade_id = trade_id if self.first_trade_id is None else self.first_trade_id
                self.last_trade_id = trade_id
        return out

    def trades(self, count: int, event_ms: int) -> list[dict]:
        """The next `count` trades of the tape as Binance `trade` payloads."""
        return [
            {
                "e": "trade",
                "E": event_ms,
                "s": self.instrument,
                "t": trade_id,
                "p": fmt8(price),
                "q": fmt8(size),
                "T": event_ms,
                "m": not buy,
                "M": True,
            }
            for trade_id, price, size, buy in self.tape_trades(count, event_ms)
        ]

    def emitted_before(self, before_id: int, limit: int) -> list[tuple[int, int, float, float, bool]] | None:
        """Up to `limit` trades sent with id < before_id, newest first (as `emitted_from`); None when
        before_id - 1 is not among the kept ones."""
        with self.lock:
            if before_id - 1 not in self.emitted:
                return None
            out = []
            for trade_id in range(before_id - 1, before_id - 1 - limit, -1):
                sent = self.emitted.get(trade_id)
                if sent is None:
                    break
                out.append((trade_id, *sent))
            return out

    def emitted_from(self, from_id: int, limit: int) -> list[tuple[int, int, float, float, bool]] | None:
        """Up to `limit` trades sent with id >= from_id, ascending: (id, time ms, price, size, the taker
        bought); None when from_id is not among the kept ones (the REST replay answers from its tape)."""
        with self.lock:
            if from_id not in self.emitted:
                return None
            out = []
            for trade_id in range(from_id, from_id + limit):
                sent = self.emitted.get(trade_id)
                if sent is None:
                    break
                out.append((trade_id, *sent))
            return out
