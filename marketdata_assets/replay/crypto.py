"""A local replay of Binance spot, OKX v5 and Deribit v2 public market data, on one port.

Paths (the vendors' own, so one base URL serves all three clients):

- Binance `/api/v3/aggTrades` (symbol, fromId | startTime/endTime ≤ 1 h, limit ≤ 1000),
  `/api/v3/trades`, `/api/v3/klines` (interval=1m), `/api/v3/depth`, `/api/v3/ping`, `/api/v3/time`.
  Strings for prices/quantities, millisecond times, MICROSECONDS when the request carries
  `X-MBX-TIME-UNIT: MICROSECOND`; `X-MBX-USED-WEIGHT-1M` on every answer, counted per fixed window
  of `weight_window_s` (60 s like the venue; shorter in tests) against `binance_weight_limit`:
  beyond it 429 + Retry-After + -1003.
- OKX `/api/v5/market/history-trades` (type=1 by tradeId | type=2 by ts, after/before, limit ≤ 100,
  newest first), `/api/v5/market/trades`, `/api/v5/market/books` (sz ≤ 400, levels
  `[px, sz, "0", numOrders]`), `/api/v5/market/history-candles` (bar=1m); every value a string.
- Deribit `/api/v2/public/get_last_trades_by_instrument_and_time`, `get_last_trades_by_instrument`
  (start_seq), `get_order_book`, `get_tradingview_chart_data` (resolution=1), `get_time`; JSON-RPC
  envelope with usIn/usOut/usDiff/testnet.

Data: deterministic per (seed, venue, instrument, day): `trades_per_day` trades (a busy hour holds
`busy_share` of them, `burst_share` repeat the previous timestamp, `burst_run` > 0 puts that many
trades in one millisecond), a random-walk price on the venue's tick, ids contiguous across days
(Binance `a`, OKX tradeId, Deribit trade_seq). Bars are aggregated from the same trades (empty
minutes carry the previous close with zero volume; only minutes that have ended are served). Only
data before `now` (default: the wall clock) exists. `truth_trades` / `truth_bars` / `last_book` give what a correct client must produce (the
normalized frames of lib.ticks.frames).

Faults (`ReplayConfig.faults`, `server.add_fault(...)`, `POST /_replay/faults`, CLI `--fault JSON`),
each optionally targeted at a venue, an instrument and an endpoint (trades | book | bars), firing on
every `every`-th matching request after the first `after`, at most `times` times:
`latency` (latency_s), `rate_limit` (429 + Retry-After; OKX code 50011 — status=200 gives the
HTTP-200 variant; Deribit 10028 — status=400 for that variant), `ban` (Binance only: 418 + -1003
"IP banned until ..."), `server_error` (status, default 503), `waf` (Binance only: 403 HTML),
`unauthorized` (401 / Deribit 13009), `vendor_error` (a rejected-parameter error in the venue's
format), `malformed_json` (body cut in half), `missing_field` (a required field removed from one
record), `bad_number` (a price that is not a number).

Control (no auth): `GET /_replay/state`, `POST /_replay/faults` (`{"faults": [...], "replace": bool}`),
`DELETE /_replay/faults`, `POST /_replay/reset`, `GET /_replay/truth?venue=&instrument=&day=`.

In-process: `with CryptoReplayServer(ReplayConfig(seed=1)) as server: server.base_url`.
CLI: `python -m marketdata_assets.replay.crypto --port 8766 --seed 7 --trades-per-day 20000`.
"""

from __future__ import annotations

import argparse
import bisect
import dataclasses
import json
import math
import random
import sys
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit
from marketdata_assets.replay import BackgroundServer, serve_until_terminated

if TYPE_CHECKING:  # Polars is imported only by the ground-truth helpers: the CLI starts fast
    import polars as pl

UTC = timezone.utc
DAY_US = 86_400_000_000
MINUTE_US = 60_000_000
EPOCH_DAY = date(2017, 1, 1)
BINANCE, OKX, DERIBIT = "BINANCE", "OKX", "DERIBIT"

DEFAULT_INSTRUMENTS = {
    BINANCE: ["BTCUSDT", "ETHUSDT", "SOLUSDT"],
    OKX: ["BTC-USDT", "ETH-USDT", "BTC-USDT-SWAP"],
    DERIBIT: ["BTC-PERPETUAL", "ETH-PERPETUAL", "BTC_USDC-PERPETUAL"],
}
ID_BASE = {BINANCE: 3_000_000_000, OKX: 500_000_000, DERIBIT: 100_000_000}
OKX_CONTRACT_VALUES = {"BTC-USDT-SWAP": 0.01, "ETH-USDT-SWAP": 0.1}
FAULT_KINDS = frozenset({"latency", "rate_limit", "ban", "server_error", "waf", "unauthorized", "vendor_error",
                         "malformed_json", "missing_field", "bad_number"})
BODY_FAULTS = frozenset({"malformed_json", "missing_field", "bad_number"})


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------

@dataclass
class Fault:
    kind: str
    venue: str | None = None  # BINANCE | OKX | DERIBIT; None = all
    instrument: str | None = None  # None = all
    endpoint: str | None = None  # trades | book | bars; None = all
    every: int = 1
    after: int = 0  # let the first N matching requests through
    times: int | None = None  # fire at most N times; None = always
    status: int | None = None
    retry_after: str | None = "1"  # Retry-After as sent; None = no header
    latency_s: float = 0.0
    seen: int = 0
    fired: int = 0

    def __post_init__(self):
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"fault kind {self.kind!r}: one of {', '.join(sorted(FAULT_KINDS))}")
        if self.venue:
            self.venue = self.venue.upper()
        if self.every < 1:
            raise ValueError("every must be >= 1")

    def matches(self, venue: str, instrument: str | None, endpoint: str | None) -> bool:
        if self.venue and self.venue != venue:
            return False
        if self.kind in ("ban", "waf") and venue != BINANCE:
            return False
        if self.instrument and self.instrument != instrument:
            return False
        return not self.endpoint or self.endpoint == endpoint

    def fire(self) -> bool:
        """Count a matching request; True if the fault applies to it."""
        self.seen += 1
        if self.seen <= self.after or (self.seen - self.after - 1) % self.every:
            return False
        if self.times is not None and self.fired >= self.times:
            return False
        self.fired += 1
        return True


@dataclass
class ReplayConfig:
    seed: int = 0
    trades_per_day: int = 3000
    trades_per_day_by_instrument: dict[str, int] = field(default_factory=dict)
    busy_share: float = 0.4
    burst_share: float = 0.1
    burst_run: int = 0
    instruments: dict[str, list[str]] = field(default_factory=lambda: {k: list(v) for k, v in
                                                                       DEFAULT_INSTRUMENTS.items()})
    binance_weight_limit: int = 6000
    weight_window_s: float = 60.0
    now: str | None = None  # ISO 8601; None = the wall clock
    faults: list[Fault] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: dict) -> ReplayConfig:
        data = dict(data)
        faults = [f if isinstance(f, Fault) else Fault(**f) for f in data.pop("faults", [])]
        config = cls(**data)
        config.faults = faults
        return config


# --------------------------------------------------------------------------------------------
# Deterministic data
# --------------------------------------------------------------------------------------------

def _decimals(step: float) -> int:
    return max(0, -math.floor(math.log10(step) + 1e-9))


@dataclass(frozen=True)
class Spec:
    base_price: float
    tick: float
    size_step: float
    size_mean: float  # in size units
    kind: str  # "base" | "inverse" (size in USD) | "contracts" (size * ct_val = base)
    ct_val: float = 1.0


def instrument_spec(venue: str, instrument: str) -> Spec:
    root = instrument[:3]
    base = {"BTC": 60_000.0, "ETH": 3_000.0, "SOL": 150.0, "BNB": 550.0}.get(root, 100.0)
    if venue == BINANCE:
        return Spec(base, 0.01, 0.00001, 3_000.0 / base, "base")
    if venue == OKX:
        tick = 0.1 if base >= 10_000 else 0.01
        if instrument in OKX_CONTRACT_VALUES:
            ct = OKX_CONTRACT_VALUES[instrument]
            return Spec(base, tick, 0.01, 3_000.0 / base / ct, "contracts", ct)
        return Spec(base, tick, 0.00000001, 3_000.0 / base, "base")
    tick = 0.5 if base >= 10_000 else 0.05
    parts = instrument.split("-")
    if "_" not in parts[0] and len(parts) == 2:
        return Spec(base, tick, 10.0 if root == "BTC" else 1.0, 3_000.0, "inverse")
    return Spec(base, tick, 0.0001, 3_000.0 / base, "base")


def _round_step(value: float, step: float) -> float:
    return round(round(value / step) * step, _decimals(step))


def base_and_quote(spec: Spec, price: float, size: float) -> tuple[float, float]:
    """The normalized quantity (base) and amount (quote) of a venue size, as the clients compute them."""
    if spec.kind == "inverse":
        return size / price, size
    if spec.kind == "contracts":
        base = size * spec.ct_val
        return base, price * base
    return size, price * size


def binance_trade_span(agg_id: int) -> tuple[int, int]:
    """First/last individual trade ids of an aggregate trade (1 or 2 trades each, contiguous)."""
    first = 7_000_000_000 + agg_id + (agg_id + 2) // 3
    return first, first + (1 if agg_id % 3 == 0 else 0)


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
            day_us = _day_us(self.day)
            out, i, close = [], 0, self.open_price
            for minute in range(1440):
                start, end = day_us + minute * MINUTE_US, day_us + (minute + 1) * MINUTE_US
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
                    if self.venue == BINANCE:
                        f, last = binance_trade_span(self.first_id + i)
                        count += last - f + 1
                    else:
                        count += 1
                    i += 1
                close = c
                out.append((start, o, h, lo, c, vol, quote, count, size_vol, tb_base, tb_quote))
            self._bars = out
        return self._bars


def _day_us(day: date) -> int:
    return (day - date(1970, 1, 1)).days * DAY_US


def _day_of_us(us: int) -> date:
    return date(1970, 1, 1) + timedelta(days=us // DAY_US)


def generate_tape(config: ReplayConfig, venue: str, instrument: str, day: date) -> DayTape:
    spec = instrument_spec(venue, instrument)
    n = trades_per_day(config, instrument)
    rng = random.Random(f"crypto-replay:{config.seed}:{venue}:{instrument}:{day.isoformat()}")
    day_us = _day_us(day)
    busy_hour = rng.randrange(24)
    times = []
    for _ in range(n):
        if rng.random() < config.busy_share:
            times.append(day_us + busy_hour * 3_600_000_000 + rng.randrange(3_600_000_000))
        else:
            times.append(day_us + rng.randrange(DAY_US))
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
    open_price = _round_step(spec.base_price * math.exp(rng.uniform(-0.15, 0.15)), spec.tick)
    price, prices, sizes, buys = open_price, [], [], []
    for _ in range(n):
        price = max(spec.tick, _round_step(price * (1 + rng.gauss(0, 0.0003)), spec.tick))
        prices.append(price)
        sizes.append(max(spec.size_step, _round_step(rng.expovariate(1 / spec.size_mean), spec.size_step)))
        buys.append(rng.random() < 0.5)
    first_id = ID_BASE[venue] + (day - EPOCH_DAY).days * n
    return DayTape(venue, instrument, day, spec, first_id, open_price, times, prices, sizes, buys)


def trades_per_day(config: ReplayConfig, instrument: str) -> int:
    return config.trades_per_day_by_instrument.get(instrument, config.trades_per_day)


# --------------------------------------------------------------------------------------------
# Number formats
# --------------------------------------------------------------------------------------------

def fmt8(value: float) -> str:
    """Binance: fixed 8 decimals ("0.01633102")."""
    return f"{value:.8f}"


def fmt_plain(value: float) -> str:
    """OKX: the shortest exact decimal, no exponent, no trailing zeros ("29963.2", "0.00001", "1")."""
    text = repr(float(value))
    if "e" in text or "E" in text:
        text = f"{value:.12f}".rstrip("0").rstrip(".")
    elif text.endswith(".0"):
        text = text[:-2]
    return text


@dataclass
class Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


class VendorError(Exception):
    """An error answer in the vendor's format, raised from the handlers."""

    def __init__(self, status: int, payload: Any):
        self.status, self.payload = status, payload


# --------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------

class CryptoReplayServer(BackgroundServer):
    """The replay server; a context manager serving in a background thread (`base_url`)."""

    thread_name = "crypto-replay"

    def __init__(self, config: ReplayConfig | None = None, *, host: str = "127.0.0.1", port: int = 0):
        self.config = config or ReplayConfig()
        self.lock = threading.RLock()
        self.tapes: OrderedDict[tuple[str, str, date], DayTape] = OrderedDict()
        self.log: deque[dict] = deque(maxlen=200_000)
        self.weight_window: int | None = None
        self.weight_used = 0
        self.book_counter = 0
        self.books: dict[tuple[str, str], tuple[int, int | None, list]] = {}
        self.verbose = False
        self.httpd = ThreadingHTTPServer((host, port), self._handler_class())
        self.httpd.daemon_threads = True
        self.thread: threading.Thread | None = None

    # ---- lifecycle -------------------------------------------------------------------------


    # ---- control ---------------------------------------------------------------------------

    def add_fault(self, fault: Fault | None = None, **kwargs) -> Fault:
        fault = fault or Fault(**kwargs)
        with self.lock:
            self.config.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self.lock:
            self.config.faults.clear()

    def reset(self) -> None:
        with self.lock:
            self.log.clear()
            self.weight_window, self.weight_used = None, 0
            for fault in self.config.faults:
                fault.seen = fault.fired = 0

    def requests(self, venue: str | None = None, instrument: str | None = None,
                 endpoint: str | None = None) -> list[dict]:
        with self.lock:
            return [r for r in self.log if (venue is None or r["venue"] == venue)
                    and (instrument is None or r["instrument"] == instrument)
                    and (endpoint is None or r["endpoint"] == endpoint)]

    def state(self) -> dict:
        with self.lock:
            by_venue: dict[str, int] = {}
            for r in self.log:
                by_venue[r["venue"]] = by_venue.get(r["venue"], 0) + 1
            return {"requests": len(self.log), "by_venue": by_venue, "weight_used": self.weight_used,
                    "weight_limit": self.config.binance_weight_limit, "weight_window_s": self.config.weight_window_s,
                    "faults": [dataclasses.asdict(f) for f in self.config.faults], "now": self.now_us()}

    def now_us(self) -> int:
        if self.config.now:
            when = datetime.fromisoformat(self.config.now.replace("Z", "+00:00"))
            when = when if when.tzinfo else when.replace(tzinfo=UTC)
            return int(when.timestamp() * 1_000_000)
        return int(time.time() * 1_000_000)

    # ---- data access -----------------------------------------------------------------------

    def tape(self, venue: str, instrument: str, day: date) -> DayTape:
        key = (venue, instrument, day)
        with self.lock:
            tape = self.tapes.get(key)
            if tape is None:
                tape = generate_tape(self.config, venue, instrument, day)
                self.tapes[key] = tape
                while len(self.tapes) > 96:
                    self.tapes.popitem(last=False)
            else:
                self.tapes.move_to_end(key)
            return tape

    def _id_location(self, venue: str, instrument: str, trade_id: int) -> tuple[date, int]:
        n = trades_per_day(self.config, instrument)
        offset = trade_id - ID_BASE[venue]
        return EPOCH_DAY + timedelta(days=offset // n), offset % n

    def rows_between(self, venue: str, instrument: str, lo_us: int, hi_us: int, limit: int | None = None,
                     newest_first: bool = False) -> list[tuple[DayTape, int]]:
        """Trades with lo_us <= ts <= hi_us (and before now), oldest first (or newest first), at most `limit`."""
        hi_us = min(hi_us, self.now_us() - 1)
        lo_us = max(lo_us, _day_us(EPOCH_DAY))
        out: list[tuple[DayTape, int]] = []
        if hi_us < lo_us:
            return out
        room = (lambda: limit - len(out)) if limit is not None else (lambda: 1 << 62)
        day = _day_of_us(hi_us if newest_first else lo_us)
        while room() > 0 and (_day_us(day) + DAY_US > lo_us if newest_first else _day_us(day) <= hi_us):
            tape = self.tape(venue, instrument, day)
            i, j = bisect.bisect_left(tape.ts, lo_us), bisect.bisect_right(tape.ts, hi_us)
            if newest_first:
                out.extend((tape, k) for k in range(j - 1, max(i, j - room()) - 1, -1))
                day -= timedelta(days=1)
            else:
                out.extend((tape, k) for k in range(i, min(j, i + room())))
                day += timedelta(days=1)
        return out

    def rows_from_id(self, venue: str, instrument: str, first: int, limit: int) -> list[tuple[DayTape, int]]:
        """Up to `limit` trades with id >= first, ascending (before now)."""
        now = self.now_us()
        first = max(first, ID_BASE[venue])
        day, i = self._id_location(venue, instrument, first)
        out: list[tuple[DayTape, int]] = []
        while len(out) < limit and _day_us(day) < now:
            tape = self.tape(venue, instrument, day)
            while i < tape.n and len(out) < limit:
                if tape.ts[i] >= now:
                    return out
                out.append((tape, i))
                i += 1
            day, i = day + timedelta(days=1), 0
        return out

    def rows_before_id(self, venue: str, instrument: str, below: int, limit: int) -> list[tuple[DayTape, int]]:
        """Up to `limit` trades with id < below, newest first."""
        now = self.now_us()
        last_id = self.last_id(venue, instrument)
        below = min(below, last_id + 1)
        out: list[tuple[DayTape, int]] = []
        if below <= ID_BASE[venue]:
            return out
        day, i = self._id_location(venue, instrument, below - 1)
        while len(out) < limit and day >= EPOCH_DAY:
            tape = self.tape(venue, instrument, day)
            while i >= 0 and len(out) < limit:
                if tape.ts[i] < now:
                    out.append((tape, i))
                i -= 1
            day = day - timedelta(days=1)
            i = trades_per_day(self.config, instrument) - 1
        return out

    def rows_before_ts(self, venue: str, instrument: str, below_us: int, limit: int) -> list[tuple[DayTape, int]]:
        """Up to `limit` trades with ts < below_us, newest first."""
        below_us = min(below_us, self.now_us())
        out: list[tuple[DayTape, int]] = []
        day = _day_of_us(below_us - 1)
        while len(out) < limit and day >= EPOCH_DAY:
            tape = self.tape(venue, instrument, day)
            i = bisect.bisect_left(tape.ts, below_us) - 1
            while i >= 0 and len(out) < limit:
                out.append((tape, i))
                i -= 1
            day -= timedelta(days=1)
        return out

    def last_id(self, venue: str, instrument: str) -> int:
        now = self.now_us()
        tape = self.tape(venue, instrument, _day_of_us(now))
        i = bisect.bisect_left(tape.ts, now) - 1
        if i >= 0:
            return tape.first_id + i
        return tape.first_id - 1

    def bars_between(self, venue: str, instrument: str, lo_us: int, hi_us: int) -> list[tuple]:
        """Minute bars opening in [lo_us, hi_us], only minutes that have ended by now."""
        hi_us = min(hi_us, self.now_us() - MINUTE_US)
        out: list[tuple] = []
        if hi_us < lo_us:
            return out
        day = max(_day_of_us(lo_us), EPOCH_DAY)
        while _day_us(day) <= hi_us:
            bars = self.tape(venue, instrument, day).bars()
            lo_i = max(0, -(-(lo_us - _day_us(day)) // MINUTE_US))
            hi_i = min(1439, (hi_us - _day_us(day)) // MINUTE_US)
            out.extend(bars[lo_i:hi_i + 1])
            day += timedelta(days=1)
        return out

    # ---- ground truth ----------------------------------------------------------------------

    def truth_trades(self, venue: str, instrument: str, day: date, *, time_unit: str = "ms") -> pl.DataFrame:
        """The normalized trades frame a correct client returns for [day, day + 1)."""
        import polars as pl

        from marketdata_assets.lib.ticks.frames import TRADES_SCHEMA

        venue = venue.upper()
        rows = self.rows_between(venue, instrument, _day_us(day), _day_us(day) + DAY_US - 1)
        ts, ids, prices, qtys, amounts, sides, seqs = [], [], [], [], [], [], []
        for tape, i in rows:
            t = tape.ts[i]
            if venue == BINANCE and time_unit == "ms":
                t -= t % 1000
            base, quote = base_and_quote(tape.spec, tape.price[i], tape.size[i])
            trade = tape.first_id + i
            ts.append(t)
            ids.append(self._trade_id(venue, instrument, trade))
            prices.append(tape.price[i])
            qtys.append(base)
            amounts.append(quote)
            sides.append("buy" if tape.buy[i] else "sell")
            seqs.append(trade)
        n = len(ts)
        return pl.DataFrame({
            "ts": pl.Series(ts, dtype=pl.Int64).cast(TRADES_SCHEMA["ts"]), "venue": [venue] * n,
            "instrument": [instrument] * n, "trade_id": ids, "price": prices, "quantity": qtys, "amount": amounts,
            "side": sides, "seq": pl.Series(seqs, dtype=pl.Int64)}, schema=TRADES_SCHEMA)

    def truth_bars(self, venue: str, instrument: str, day: date) -> pl.DataFrame:
        """The normalized 1-minute bars of [day, day + 1) (trades is null where the venue has no count)."""
        import polars as pl

        from marketdata_assets.lib.ticks.frames import BARS_SCHEMA

        venue = venue.upper()
        bars = self.bars_between(venue, instrument, _day_us(day), _day_us(day) + DAY_US - 1)
        rows = [self._bar_values(venue, b) for b in bars]
        n = len(rows)
        return pl.DataFrame({
            "ts": pl.Series([r[0] for r in rows], dtype=pl.Int64).cast(BARS_SCHEMA["ts"]), "venue": [venue] * n,
            "instrument": [instrument] * n, "open": [r[1] for r in rows], "high": [r[2] for r in rows],
            "low": [r[3] for r in rows], "close": [r[4] for r in rows], "volume": [r[5] for r in rows],
            "amount": [r[6] for r in rows],
            "trades": pl.Series([r[7] if venue == BINANCE else None for r in rows], dtype=pl.Int64)},
            schema=BARS_SCHEMA)

    def last_book(self, venue: str, instrument: str) -> pl.DataFrame:
        """The normalized book last served for (venue, instrument); Binance's `ts` is null-free but
        unknowable (receive time), so compare the other columns."""
        import polars as pl

        from marketdata_assets.lib.ticks.frames import BOOKS_SCHEMA

        with self.lock:
            ts, update_id, rows = self.books[(venue.upper(), instrument)]
        n = len(rows)
        return pl.DataFrame({
            "ts": pl.Series([ts] * n, dtype=pl.Int64).cast(BOOKS_SCHEMA["ts"]),
            "venue": [venue.upper()] * n, "instrument": [instrument] * n,
            "side": [r[0] for r in rows], "level": pl.Series([r[1] for r in rows], dtype=pl.Int32),
            "price": [r[2] for r in rows], "quantity": [r[3] for r in rows],
            "update_id": pl.Series([update_id] * n, dtype=pl.Int64)}, schema=BOOKS_SCHEMA)

    @staticmethod
    def _bar_values(venue: str, bar: tuple) -> tuple:
        ts, o, h, lo, c, vol, quote, count = bar[:8]
        if venue == BINANCE:  # what 8-decimal strings carry
            vol, quote = round(vol, 8), round(quote, 8)
        return ts, o, h, lo, c, vol, quote, count

    @staticmethod
    def _trade_id(venue: str, instrument: str, trade: int) -> str:
        if venue == DERIBIT:
            root = instrument.split("-")[0].split("_")[0]
            return str(trade) if root == "BTC" else f"{root}-{trade}"
        return str(trade)

    # ---- request handling -------------------------------------------------------------------

    def handle(self, method: str, target: str, headers) -> Reply:
        url = urlsplit(target)
        path, query = url.path, dict(parse_qsl(url.query, keep_blank_values=True))
        if path.startswith("/_replay/"):
            return Reply(200)  # answered by the control handler
        if path.startswith("/api/v3/"):
            venue, instrument = BINANCE, query.get("symbol")
        elif path.startswith("/api/v5/"):
            venue, instrument = OKX, query.get("instId")
        elif path.startswith("/api/v2/"):
            venue, instrument = DERIBIT, query.get("instrument_name")
        else:
            return Reply(404, b"Not Found", {"Content-Type": "text/plain"})
        endpoint = _endpoint(path)
        extra_headers: dict[str, str] = {}
        with self.lock:
            self.log.append({"t": time.monotonic(), "venue": venue, "path": path, "query": query,
                             "instrument": instrument, "endpoint": endpoint, "status": None})
            entry = self.log[-1]
            if venue == BINANCE:
                over, retry_after = self._count_weight(path, query)
                extra_headers["X-MBX-USED-WEIGHT-1M"] = str(self.weight_used)
                extra_headers["X-MBX-USED-WEIGHT"] = str(self.weight_used)
                if over:
                    reply = self._json(429, {"code": -1003, "msg": (
                        f"Too much request weight used; current limit is {self.config.binance_weight_limit} request "
                        f"weight per 1 MINUTE. Please use WebSocket Streams for live updates to avoid polling the "
                        f"API.")}, {**extra_headers, "Retry-After": str(retry_after)})
                    entry["status"] = reply.status
                    return reply
            fired = [f for f in self.config.faults if f.matches(venue, instrument, endpoint) and f.fire()]
            delay = sum(f.latency_s for f in fired if f.kind == "latency")
            replacing = next((f for f in fired if f.kind not in BODY_FAULTS and f.kind != "latency"), None)
            if replacing is not None:
                reply = self._fault_reply(replacing, venue)
            else:
                try:
                    if venue == BINANCE:
                        payload = self._binance(path, query, headers)
                    elif venue == OKX:
                        payload = self._okx(path, query)
                    else:
                        payload = self._deribit(path, query)
                    status = 200
                except VendorError as error:
                    payload, status = error.payload, error.status
                    fired = []
                if venue == DERIBIT:
                    payload = self._rpc(payload, query)
                body_faults = [f for f in fired if f.kind in BODY_FAULTS]
                for fault in body_faults:
                    if fault.kind != "malformed_json":
                        _mutate(payload, venue, path, fault.kind)
                body = json.dumps(payload, separators=(",", ":")).encode()
                if any(f.kind == "malformed_json" for f in body_faults):
                    body = body[:max(1, len(body) // 2)]
                reply = Reply(status, body, {"Content-Type": "application/json"})
            reply.headers.update(extra_headers)
            reply.delay_s = delay
            entry["status"] = reply.status
            return reply

    def _count_weight(self, path: str, query: dict) -> tuple[bool, int]:
        window = int(time.time() // self.config.weight_window_s)
        if window != self.weight_window:
            self.weight_window, self.weight_used = window, 0
        self.weight_used += _binance_weight(path, query)
        if self.weight_used > self.config.binance_weight_limit:
            remaining = (window + 1) * self.config.weight_window_s - time.time()
            return True, max(1, math.ceil(remaining))
        return False, 0

    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> Reply:
        return Reply(status, json.dumps(payload, separators=(",", ":")).encode(),
                     {"Content-Type": "application/json", **(headers or {})})

    def _rpc(self, payload: Any, query: dict) -> dict:
        us_in = int(time.time() * 1_000_000)
        envelope: dict[str, Any] = {"jsonrpc": "2.0"}
        if "id" in query:
            envelope["id"] = int(query["id"]) if query["id"].isdigit() else query["id"]
        if isinstance(payload, dict) and "error" in payload and len(payload) == 1:
            envelope["error"] = payload["error"]
        else:
            envelope["result"] = payload
        us_out = us_in + 37
        envelope.update({"usIn": us_in, "usOut": us_out, "usDiff": us_out - us_in, "testnet": False})
        return envelope

    def _fault_reply(self, fault: Fault, venue: str) -> Reply:
        retry = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
        kind = fault.kind
        if kind == "rate_limit":
            if venue == BINANCE:
                return self._json(fault.status or 429, {"code": -1003, "msg": (
                    "Too much request weight used; current limit is 6000 request weight per 1 MINUTE. "
                    "Please use WebSocket Streams for live updates to avoid polling the API.")}, retry)
            if venue == OKX:
                return self._json(fault.status or 429, {"msg": "Too Many Requests", "code": "50011"}, retry)
            return self._json(fault.status or 429, self._rpc({"error": {"message": "too_many_requests",
                                                                        "code": 10028}}, {}), retry)
        if kind == "ban":
            seconds = float(fault.retry_after or 120)
            until = int((time.time() + seconds) * 1000)
            return self._json(fault.status or 418, {"code": -1003, "msg": (
                f"Way too much request weight used; IP banned until {until}. Please use WebSocket Streams for "
                f"live updates to avoid bans.")}, {"Retry-After": str(int(seconds))})
        if kind == "server_error":
            status = fault.status or 503
            if venue == BINANCE:
                return self._json(status, {"code": -1001, "msg": "Internal error; unable to process your request. "
                                                                 "Please try again."})
            if venue == OKX:
                return self._json(status, {"code": "50001", "msg": "Service temporarily unavailable. Please try "
                                                                   "again later.", "data": []})
            return Reply(status, f"<html><head><title>{status} Bad Gateway</title></head><body><center><h1>{status} "
                                 f"Bad Gateway</h1></center><hr><center>nginx</center></body></html>".encode(),
                         {"Content-Type": "text/html"})
        if kind == "waf":
            return Reply(fault.status or 403, (
                b"<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 4.01 Transitional//EN\">\n<HTML><HEAD><META "
                b"HTTP-EQUIV=\"Content-Type\" CONTENT=\"text/html; charset=iso-8859-1\">\n<TITLE>ERROR: The request "
                b"could not be satisfied</TITLE>\n</HEAD><BODY>\n<H1>403 ERROR</H1>\n<H2>The request could not be "
                b"satisfied.</H2>\n<HR noshade size=\"1px\">\nRequest blocked.\n</BODY></HTML>"),
                {"Content-Type": "text/html"})
        if kind == "unauthorized":
            if venue == BINANCE:
                return self._json(fault.status or 401, {"code": -2015, "msg": "Invalid API-key, IP, or permissions "
                                                                              "for action."})
            if venue == OKX:
                return self._json(fault.status or 401, {"msg": "Invalid OK-ACCESS-KEY", "code": "50111"})
            return self._json(fault.status or 400, self._rpc({"error": {"message": "unauthorized", "code": 13009}},
                                                             {}))
        # vendor_error
        if venue == BINANCE:
            return self._json(fault.status or 400, {"code": -1100, "msg": "Illegal characters found in a parameter."})
        if venue == OKX:
            return self._json(fault.status or 200, {"code": "51000", "data": [], "msg": "Parameter instId error"})
        return self._json(fault.status or 400, self._rpc({"error": {
            "message": "Invalid params", "data": {"reason": "wrong format", "param": "instrument_name"},
            "code": -32602}}, {}))

    # ---- Binance ---------------------------------------------------------------------------

    def _binance_instrument(self, query: dict) -> str:
        symbol = query.get("symbol")
        if not symbol:
            raise VendorError(400, {"code": -1102, "msg": "Mandatory parameter 'symbol' was not sent, was empty/null, "
                                                          "or malformed."})
        if symbol not in self.config.instruments.get(BINANCE, []):
            raise VendorError(400, {"code": -1121, "msg": "Invalid symbol."})
        return symbol

    def _binance(self, path: str, query: dict, headers) -> Any:
        micro = (headers.get("X-MBX-TIME-UNIT") or "").upper() == "MICROSECOND"

        def t_out(us: int) -> int:
            return us if micro else us // 1000

        def t_in(name: str) -> int | None:
            value = query.get(name)
            if value in (None, ""):
                return None
            if not value.lstrip("-").isdigit():
                raise VendorError(400, {"code": -1100, "msg": f"Illegal characters found in parameter '{name}'; "
                                                              f"legal range is '^[0-9]{{1,20}}$'."})
            number = int(value)
            return number if number >= 100_000_000_000_000 else number * 1000

        def limit(default: int, maximum: int) -> int:
            value = query.get("limit")
            if value in (None, ""):
                return default
            return max(1, min(maximum, int(value)))

        if path == "/api/v3/ping":
            return {}
        if path == "/api/v3/time":
            return {"serverTime": int(time.time() * 1000)}
        symbol = self._binance_instrument(query)
        if path == "/api/v3/aggTrades":
            n = limit(500, 1000)
            start, end = t_in("startTime"), t_in("endTime")
            from_id = query.get("fromId")
            if from_id not in (None, "") and (start is not None or end is not None):
                raise VendorError(400, {"code": -1128, "msg": "Combination of optional parameters invalid."})
            if start is not None and end is not None:
                if end - start > 3_600_000_000:
                    raise VendorError(400, {"code": -1127, "msg": "More than 1 hours between startTime and endTime."})
                rows = self.rows_between(BINANCE, symbol, start, end, n)
            elif start is not None:
                rows = self.rows_between(BINANCE, symbol, start, start + 3_600_000_000, n)
            elif end is not None:
                rows = self.rows_between(BINANCE, symbol, end - 3_600_000_000, end, n, newest_first=True)[::-1]
            elif from_id not in (None, ""):
                rows = self.rows_from_id(BINANCE, symbol, int(from_id), n)
            else:
                rows = list(reversed(self.rows_before_id(BINANCE, symbol, self.last_id(BINANCE, symbol) + 1, n)))
            out = []
            for tape, i in rows:
                a = tape.first_id + i
                f, last = binance_trade_span(a)
                out.append({"a": a, "p": fmt8(tape.price[i]), "q": fmt8(tape.size[i]), "f": f, "l": last,
                            "T": t_out(tape.ts[i]), "m": not tape.buy[i], "M": True})
            return out
        if path == "/api/v3/trades":
            n = limit(500, 1000)
            rows = list(reversed(self.rows_before_id(BINANCE, symbol, self.last_id(BINANCE, symbol) + 1, n)))
            return [{"id": tape.first_id + i, "price": fmt8(tape.price[i]), "qty": fmt8(tape.size[i]),
                     "quoteQty": fmt8(tape.price[i] * tape.size[i]), "time": t_out(tape.ts[i]),
                     "isBuyerMaker": not tape.buy[i], "isBestMatch": True} for tape, i in rows]
        if path == "/api/v3/klines":
            interval = query.get("interval")
            if interval != "1m":
                raise VendorError(400, {"code": -1120, "msg": "Invalid interval."})
            n = limit(500, 1000)
            start, end = t_in("startTime"), t_in("endTime")
            now = self.now_us()
            if start is not None:
                hi = min(end if end is not None else now, start + n * MINUTE_US - 1)
                bars = self.bars_between(BINANCE, symbol, start, hi)[:n]
            else:
                hi = min(end if end is not None else now, now - MINUTE_US)
                bars = self.bars_between(BINANCE, symbol, hi - n * MINUTE_US + 1, hi)[-n:]
            out = []
            for bar in bars:
                ts, o, h, lo, c, vol, quote, count, _, tb_base, tb_quote = bar
                out.append([t_out(ts), fmt8(o), fmt8(h), fmt8(lo), fmt8(c), fmt8(vol), t_out(ts + MINUTE_US) - 1,
                            fmt8(quote), count, fmt8(tb_base), fmt8(tb_quote), "0"])
            return out
        if path == "/api/v3/depth":
            n = limit(100, 5000)
            update_id, bids, asks, _ = self._book(BINANCE, symbol, n)
            return {"lastUpdateId": update_id, "bids": [[fmt8(p), fmt8(q)] for p, q in bids],
                    "asks": [[fmt8(p), fmt8(q)] for p, q in asks]}
        raise VendorError(404, {"code": -1000, "msg": f"Unknown path {path}"})

    # ---- OKX -------------------------------------------------------------------------------

    def _okx(self, path: str, query: dict) -> Any:
        known = ("/api/v5/market/history-trades", "/api/v5/market/trades", "/api/v5/market/books",
                 "/api/v5/market/history-candles", "/api/v5/market/candles")
        if path not in known:
            raise VendorError(404, {"msg": "Not Found", "code": 404, "error_code": "404", "error_message": "Not Found",
                                    "detail": f"The requested path {path} was not found", "data": {}})
        inst = query.get("instId")
        if not inst:
            raise VendorError(200, {"code": "50014", "data": [], "msg": "Parameter instId can not be empty."})
        if inst not in self.config.instruments.get(OKX, []):
            raise VendorError(200, {"code": "51001", "data": [], "msg": "Instrument ID or Spread ID doesn't exist."})

        def int_param(name: str) -> int | None:
            value = query.get(name)
            if value in (None, ""):
                return None
            if not value.isdigit():
                raise VendorError(200, {"code": "51000", "data": [], "msg": f"Parameter {name} error"})
            return int(value)

        n = max(1, min(100, int_param("limit") or 100))
        if path in ("/api/v5/market/history-trades", "/api/v5/market/trades"):
            kind = query.get("type") or "1"
            after, before = int_param("after"), int_param("before")
            if path == "/api/v5/market/trades" or (after is None and before is None):
                rows = self.rows_before_id(OKX, inst, self.last_id(OKX, inst) + 1, n)
            elif kind == "2":
                if after is not None:
                    rows = self.rows_before_ts(OKX, inst, after * 1000, n)
                else:
                    rows = self.rows_between(OKX, inst, before * 1000 + 1000, self.now_us(), n)[::-1]
            elif kind == "1":
                if after is not None:
                    rows = self.rows_before_id(OKX, inst, after, n)
                else:
                    rows = list(reversed(self.rows_from_id(OKX, inst, before + 1, n)))
            else:
                raise VendorError(200, {"code": "51000", "data": [], "msg": "Parameter type error"})
            data = [{"instId": inst, "side": "buy" if tape.buy[i] else "sell", "sz": fmt_plain(tape.size[i]),
                     "px": fmt_plain(tape.price[i]), "source": "0", "tradeId": str(tape.first_id + i),
                     "ts": str(tape.ts[i] // 1000)} for tape, i in rows]
            return {"code": "0", "msg": "", "data": data}
        if path == "/api/v5/market/books":
            depth = max(1, min(400, int_param("sz") or 1))
            _, bids, asks, ts = self._book(OKX, inst, depth)
            rng = random.Random(f"okx-orders:{ts}")
            return {"code": "0", "msg": "", "data": [{
                "asks": [[fmt_plain(p), fmt_plain(q), "0", str(rng.randint(1, 30))] for p, q in asks],
                "bids": [[fmt_plain(p), fmt_plain(q), "0", str(rng.randint(1, 30))] for p, q in bids],
                "ts": str(ts // 1000)}]}
        # candles
        if (query.get("bar") or "1m") != "1m":
            raise VendorError(200, {"code": "51000", "data": [], "msg": "Parameter bar error"})
        after, before = int_param("after"), int_param("before")
        now = self.now_us()
        hi = min(now - MINUTE_US, after * 1000 - 1) if after is not None else now - MINUTE_US
        if before is not None and after is None:  # the oldest n newer than `before`
            lo = before * 1000 + 1
            bars = self.bars_between(OKX, inst, lo, min(hi, lo + n * MINUTE_US - 1))[:n]
        else:  # the newest n older than `after` (and newer than `before`)
            lo = hi - n * MINUTE_US + 1
            if before is not None:
                lo = max(lo, before * 1000 + 1)
            bars = self.bars_between(OKX, inst, lo, hi)[-n:]
        spec = instrument_spec(OKX, inst)
        data = []
        for bar in reversed(bars):
            ts, o, h, lo_p, c, vol, quote, _, size_vol = bar[:9]
            confirm = "1" if ts + MINUTE_US <= now else "0"
            vol_ccy = quote if spec.kind == "base" else vol
            data.append([str(ts // 1000), fmt_plain(o), fmt_plain(h), fmt_plain(lo_p), fmt_plain(c),
                         fmt_plain(size_vol), fmt_plain(vol_ccy), fmt_plain(quote), confirm])
        return {"code": "0", "msg": "", "data": data}

    # ---- Deribit ---------------------------------------------------------------------------

    def _deribit(self, path: str, query: dict) -> Any:
        method = path.rsplit("/", 1)[-1]

        def invalid(reason: str, param: str) -> VendorError:
            return VendorError(400, {"error": {"message": "Invalid params", "data": {"reason": reason, "param": param},
                                               "code": -32602}})

        def int_param(name: str, required: bool = False) -> int | None:
            value = query.get(name)
            if value in (None, ""):
                if required:
                    raise invalid("required", name)
                return None
            if not value.lstrip("-").isdigit():
                raise invalid("must be integer", name)
            return int(value)

        if method == "get_time":
            return int(time.time() * 1000)
        methods = ("get_last_trades_by_instrument_and_time", "get_last_trades_by_instrument", "get_order_book",
                   "get_tradingview_chart_data")
        if not path.startswith("/api/v2/public/") or method not in methods:
            raise VendorError(400, {"error": {"message": "Method not found", "code": -32601}})
        inst = query.get("instrument_name")
        if not inst:
            raise invalid("required", "instrument_name")
        if inst not in self.config.instruments.get(DERIBIT, []):
            raise invalid("instrument not found", "instrument_name")
        if method in ("get_last_trades_by_instrument_and_time", "get_last_trades_by_instrument"):
            count = int_param("count") or 10
            if not 1 <= count <= 1000:
                raise invalid("must be between 1 and 1000", "count")
            sorting = query.get("sorting") or "default"
            if sorting not in ("asc", "desc", "default"):
                raise invalid("must be one of asc, desc, default", "sorting")
            if method == "get_last_trades_by_instrument_and_time":
                start, end = int_param("start_timestamp", True), int_param("end_timestamp", True)
                rows = self.rows_between(DERIBIT, inst, start * 1000, end * 1000 + 999, count + 1,
                                         newest_first=sorting != "asc")
                if sorting != "asc":
                    rows.reverse()
            else:
                start_seq, end_seq = int_param("start_seq"), int_param("end_seq")
                if start_seq is None and end_seq is None:
                    rows = list(reversed(self.rows_before_id(DERIBIT, inst, self.last_id(DERIBIT, inst) + 1, count)))
                else:
                    first = start_seq if start_seq is not None else end_seq - count + 1
                    wanted = count + 1 if end_seq is None else max(0, min(count + 1, end_seq - first + 1))
                    rows = self.rows_from_id(DERIBIT, inst, first, wanted)
            if sorting == "asc":
                page, has_more = rows[:count], len(rows) > count
            else:
                page, has_more = list(reversed(rows[-count:])), len(rows) > count
            return {"trades": [self._deribit_trade(inst, tape, i) for tape, i in page], "has_more": has_more}
        if method == "get_order_book":
            depth = int_param("depth") or 20
            if depth not in (1, 5, 10, 20, 50, 100, 1000, 10000):
                raise invalid("must be one of 1, 5, 10, 20, 50, 100, 1000, 10000", "depth")
            update_id, bids, asks, ts = self._book(DERIBIT, inst, depth)
            best_bid, best_ask = bids[0], asks[0]
            mid = (best_bid[0] + best_ask[0]) / 2
            inverse = instrument_spec(DERIBIT, inst).kind == "inverse"
            return {
                "timestamp": ts // 1000, "state": "open", "stats": {"volume": 12345.6789, "volume_usd": 7.4e8,
                                                                   "price_change": 1.23, "low": mid * 0.97,
                                                                   "high": mid * 1.02},
                "settlement_price": round(mid, 2), "open_interest": 1.1e9 if inverse else 1234.5,
                "min_price": round(mid * 0.97, 1), "max_price": round(mid * 1.03, 1), "mark_price": round(mid, 2),
                "last_price": best_ask[0], "instrument_name": inst, "index_price": round(mid - 3.21, 2),
                "funding_8h": 0.00001234, "current_funding": 0.0, "interest_value": 0.0123,
                "change_id": update_id, "bids": [[p, q] for p, q in bids], "asks": [[p, q] for p, q in asks],
                "best_bid_price": best_bid[0], "best_bid_amount": best_bid[1], "best_ask_price": best_ask[0],
                "best_ask_amount": best_ask[1], "estimated_delivery_price": round(mid - 3.21, 2)}
        # get_tradingview_chart_data
        start, end = int_param("start_timestamp", True), int_param("end_timestamp", True)
        if (query.get("resolution") or "") != "1":
            raise invalid("only resolution 1 is replayed", "resolution")
        end = min(end, start + 10_000 * 60_000 - 1)  # at most 10000 candles an answer
        bars = self.bars_between(DERIBIT, inst, start * 1000, end * 1000 + 999)
        if not bars:
            return {"volume": [], "ticks": [], "status": "no_data", "open": [], "low": [], "high": [], "cost": [],
                    "close": []}
        return {"volume": [b[5] for b in bars], "ticks": [b[0] // 1000 for b in bars], "status": "ok",
                "open": [b[1] for b in bars], "low": [b[3] for b in bars], "high": [b[2] for b in bars],
                "cost": [b[6] for b in bars], "close": [b[4] for b in bars]}

    def _deribit_trade(self, inst: str, tape: DayTape, i: int) -> dict:
        seq = tape.first_id + i
        price = tape.price[i]
        previous = tape.price[i - 1] if i else tape.open_price
        tick_direction = 0 if price > previous else 2 if price < previous else (1 if tape.buy[i] else 3)
        rng = random.Random(seq)
        trade = {"trade_seq": seq, "trade_id": self._trade_id(DERIBIT, inst, seq), "timestamp": tape.ts[i] // 1000,
                 "tick_direction": tick_direction, "price": price, "mark_price": round(price + rng.uniform(-2, 2), 2),
                 "instrument_name": inst, "index_price": round(price + rng.uniform(-5, 5), 2),
                 "direction": "buy" if tape.buy[i] else "sell", "amount": tape.size[i]}
        if tape.spec.kind == "inverse":
            trade["contracts"] = tape.size[i] / tape.spec.size_step
        if rng.random() < 0.01:
            trade["liquidation"] = "M"
        return trade

    # ---- books -----------------------------------------------------------------------------

    def _book(self, venue: str, instrument: str, depth: int) -> tuple[int, list, list, int]:
        """(update id, bids, asks, ts µs) in venue units; remembers the normalized truth."""
        self.book_counter += 1
        now = self.now_us()
        spec = instrument_spec(venue, instrument)
        tape = self.tape(venue, instrument, _day_of_us(now))
        i = bisect.bisect_left(tape.ts, now) - 1
        mid = tape.price[i] if i >= 0 else tape.open_price
        update_id = 40_000_000_000 + self.book_counter * 7 + len(instrument)
        rng = random.Random(f"book:{self.config.seed}:{venue}:{instrument}:{update_id}")
        best_bid = _round_step(mid - spec.tick * rng.randint(0, 3), spec.tick)
        best_ask = _round_step(best_bid + spec.tick * rng.randint(1, 4), spec.tick)
        bids, asks = [], []
        for level in range(depth):
            bids.append((_round_step(best_bid - level * spec.tick * rng.randint(1, 3), spec.tick),
                         max(spec.size_step, _round_step(rng.expovariate(1 / spec.size_mean) * 3, spec.size_step))))
            asks.append((_round_step(best_ask + level * spec.tick * rng.randint(1, 3), spec.tick),
                         max(spec.size_step, _round_step(rng.expovariate(1 / spec.size_mean) * 3, spec.size_step))))
        # strictly monotonic prices, best first
        for side, sign in ((bids, -1), (asks, 1)):
            for k in range(1, len(side)):
                if sign * (side[k][0] - side[k - 1][0]) <= 0:
                    side[k] = (_round_step(side[k - 1][0] + sign * spec.tick, spec.tick), side[k][1])
        bids = [(p, q) for p, q in bids if p > 0]
        ts = now - now % 1000
        rows = [("bid", k, p, base_and_quote(spec, p, q)[0]) for k, (p, q) in enumerate(bids)] + \
               [("ask", k, p, base_and_quote(spec, p, q)[0]) for k, (p, q) in enumerate(asks)]
        self.books[(venue, instrument)] = (ts, update_id if venue != OKX else None, rows)
        return update_id, bids, asks, ts

    # ---- control endpoints -----------------------------------------------------------------

    def control(self, method: str, target: str, body: bytes) -> Reply:
        url = urlsplit(target)
        path, query = url.path, dict(parse_qsl(url.query))
        try:
            if path == "/_replay/state" and method == "GET":
                return self._json(200, self.state())
            if path == "/_replay/faults" and method == "POST":
                data = json.loads(body or b"{}")
                faults = [Fault(**{k: v for k, v in f.items() if k not in ("seen", "fired")})
                          for f in data.get("faults", [])]
                with self.lock:
                    if data.get("replace", False):
                        self.config.faults.clear()
                    self.config.faults.extend(faults)
                return self._json(200, self.state())
            if path == "/_replay/faults" and method == "DELETE":
                self.clear_faults()
                return self._json(200, self.state())
            if path == "/_replay/reset" and method == "POST":
                self.reset()
                return self._json(200, self.state())
            if path == "/_replay/truth" and method == "GET":
                frame = self.truth_trades(query["venue"], query["instrument"], date.fromisoformat(query["day"]),
                                          time_unit=query.get("time_unit", "ms"))
                return self._json(200, {"count": frame.height, "trade_ids": frame["trade_id"].to_list(),
                                        "first_ts": str(frame["ts"].min()), "last_ts": str(frame["ts"].max())})
        except (KeyError, ValueError, TypeError) as error:
            return self._json(400, {"detail": f"{type(error).__name__}: {error}"})
        return self._json(404, {"detail": "unknown control endpoint"})

    def _handler_class(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True
            server_version = "crypto-replay"
            sys_version = ""

            def _serve(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                try:
                    if self.path.startswith("/_replay/"):
                        reply = server.control(self.command, self.path, body)
                    else:
                        reply = server.handle(self.command, self.path, self.headers)
                except Exception as error:  # noqa: BLE001 - a replay bug must not hang the client
                    reply = server._json(500, {"detail": f"replay server error: {type(error).__name__}: {error}"})
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                if server.verbose:
                    print(f"{self.command} {self.path} -> {reply.status}", file=sys.stderr, flush=True)
                try:
                    self.send_response(reply.status)
                    for key, value in reply.headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (a latency fault)
                    self.close_connection = True

            do_GET = do_POST = do_DELETE = do_HEAD = _serve

            def log_message(self, *args):
                pass

        return Handler


def _endpoint(path: str) -> str | None:
    name = path.rsplit("/", 1)[-1]
    if name in ("aggTrades", "trades", "history-trades", "get_last_trades_by_instrument_and_time",
                "get_last_trades_by_instrument"):
        return "trades"
    if name in ("depth", "books", "get_order_book"):
        return "book"
    if name in ("klines", "history-candles", "candles", "get_tradingview_chart_data"):
        return "bars"
    return None


def _binance_weight(path: str, query: dict) -> int:
    name = path.rsplit("/", 1)[-1]
    if name == "depth":
        try:
            n = int(query.get("limit") or 100)
        except ValueError:
            n = 100
        return 5 if n <= 100 else 25 if n <= 500 else 50 if n <= 1000 else 250
    return {"aggTrades": 4, "trades": 25, "historicalTrades": 25, "klines": 2}.get(name, 1)


def _mutate(payload: Any, venue: str, path: str, kind: str) -> None:
    """Damage one record of a normal answer: drop a required field or make a price non-numeric."""
    name = path.rsplit("/", 1)[-1]
    missing = kind == "missing_field"
    if venue == BINANCE:
        if name in ("aggTrades", "trades") and payload:
            record = payload[len(payload) // 2]
            key = "p" if name == "aggTrades" else "price"
            if missing:
                del record[key]
            else:
                record[key] = "6O123.45"
        elif name == "klines" and payload:
            row = payload[len(payload) // 2]
            if missing:
                del row[4]
            else:
                row[4] = "6O123.45"
        elif name == "depth":
            if missing:
                del payload["lastUpdateId"]
            elif payload["bids"]:
                payload["bids"][0][0] = "6O123.45"
        return
    if venue == OKX:
        data = payload.get("data") or []
        if not data:
            return
        if name in ("history-trades", "trades"):
            record = data[len(data) // 2]
            if missing:
                del record["px"]
            else:
                record["px"] = "6O123.4"
        elif name == "books":
            if missing:
                del data[0]["bids"]
            elif data[0]["asks"]:
                data[0]["asks"][0][0] = "6O123.4"
        else:
            row = data[len(data) // 2]
            if missing:
                del row[5:]
            else:
                row[4] = "6O123.4"
        return
    result = payload.get("result")
    if not isinstance(result, dict):
        return
    if name.startswith("get_last_trades"):
        trades = result.get("trades") or []
        if trades:
            record = trades[len(trades) // 2]
            if missing:
                del record["price"]
            else:
                record["price"] = "n/a"
    elif name == "get_order_book":
        if missing:
            del result["bids"]
        elif result.get("asks"):
            result["asks"][0][0] = "n/a"
    elif result.get("close"):
        if missing:
            del result["close"]
        else:
            result["close"][len(result["close"]) // 2] = "n/a"


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------

def build_arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m marketdata_assets.replay.crypto",
                                description="Replay of Binance spot, OKX v5 and Deribit v2 market data (formats, "
                                            "quirks, faults) on one port.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8766, help="0 picks a free port (printed)")
    p.add_argument("--config", help="JSON file with ReplayConfig fields (faults too); flags override")
    p.add_argument("--seed", type=int)
    p.add_argument("--trades-per-day", type=int)
    p.add_argument("--burst-run", type=int, help="put this many trades in one millisecond once a day")
    p.add_argument("--weight-limit", type=int, dest="binance_weight_limit", help="Binance weight per window (6000)")
    p.add_argument("--weight-window", type=float, dest="weight_window_s", help="seconds per weight window (60)")
    p.add_argument("--now", help="ISO time: data exists only before it (default: the wall clock)")
    p.add_argument("--latency", type=float, help="add this many seconds to every data request")
    p.add_argument("--fault", action="append", default=[],
                   help='a fault as JSON, e.g. \'{"kind":"rate_limit","venue":"BINANCE","every":5}\' (repeatable)')
    p.add_argument("--verbose", action="store_true", help="print each request line to stderr")
    return p


def config_from_args(args: argparse.Namespace) -> ReplayConfig:
    data: dict = {}
    if args.config:
        with open(args.config, encoding="utf-8") as handle:
            data = json.load(handle)
    config = ReplayConfig.from_dict(data)
    for attr in ("seed", "trades_per_day", "burst_run", "binance_weight_limit", "weight_window_s", "now"):
        if getattr(args, attr) is not None:
            setattr(config, attr, getattr(args, attr))
    if args.latency:
        config.faults.append(Fault(kind="latency", latency_s=args.latency))
    for text in args.fault:
        config.faults.append(Fault(**json.loads(text)))
    return config


def main(argv: Iterable[str] | None = None) -> int:
    args = build_arg_parser().parse_args(list(argv) if argv is not None else None)
    server = CryptoReplayServer(config_from_args(args), host=args.host, port=args.port)
    server.verbose = args.verbose
    venues = "; ".join(f"{v}: {', '.join(i)}" for v, i in server.config.instruments.items())
    print(f"crypto market-data replay on {server.base_url} ({venues}); {server.config.trades_per_day} trades/day, "
          f"seed {server.config.seed}, {len(server.config.faults)} fault(s)", flush=True)

    return serve_until_terminated(server.httpd)


if __name__ == "__main__":
    raise SystemExit(main())
