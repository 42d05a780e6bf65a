"""Crypto venue clients (Binance spot, OKX v5, Deribit v2) with one interface, and their errors.

Every client subclasses `lib.http.ApiClient` (token bucket, semaphore, Retry-After, 5xx backoff,
stats) and answers in the normalized frames of `lib.ticks.frames`:

    async with make_provider("BINANCE", base_url) as venue:
        trades = await venue.trades("BTCUSDT", start, end)        # [start, end), UTC
        book = await venue.book_snapshot("BTCUSDT", depth=20)
        bars = await venue.bars_1m("BTCUSDT", start, end)

Errors (all `ProviderError`):

- `ProviderBanned`: the venue banned this IP (Binance 418 / -1003 "IP banned until ..."). The
  client refuses every later call without sending anything: stop using the provider.
- `ProviderPermissionError`: 401 / 403 (e.g. Binance's WAF answering HTML).
- `ProviderDataError(instrument, day, detail)`: a page that cannot be trusted (malformed JSON, a
  missing field, an unparseable or non-finite number); names the instrument, the day and the request.
  Other instruments are unaffected: callers catch it per instrument.
- `ProviderRequestError`: the venue rejected the request (unknown symbol, bad parameter, unknown path).

Retries that run out (5xx, 429 beyond `max_retries`, timeouts) raise the shared `lib.http.ApiError`.
Datetimes may be aware (any zone) or naive (taken as UTC); intervals are half-open [start, end).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import date, datetime, timedelta, timezone
from typing import Any, Protocol, runtime_checkable

import httpx
import polars as pl

from marketdata_assets.lib.http import RequestStats
from marketdata_assets.lib.ticks.frames import BARS_SCHEMA, BOOKS_SCHEMA, TRADES_SCHEMA

UTC = timezone.utc
VENUES = ("BINANCE", "OKX", "DERIBIT")


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------

class ProviderError(RuntimeError):
    """Base of the venue clients' errors."""

    provider: str | None = None


class ProviderBanned(ProviderError):
    """The venue banned us (HTTP 418 / Binance -1003 "IP banned until ..."): stop the provider."""

    def __init__(self, provider: str, detail: str, *, until: datetime | None = None, request: str | None = None):
        self.provider, self.detail, self.until, self.request = provider, detail, until, request
        when = f" until {until.isoformat()}" if until else ""
        super().__init__(f"{provider} banned this IP{when}: {detail}"
                         + (f" ({request})" if request else "")
                         + ". Stop requesting from this provider until then.")


class ProviderPermissionError(ProviderError):
    """401/403: credentials, region or a web application firewall refused the request."""

    def __init__(self, provider: str, status: int, detail: str, *, request: str | None = None):
        self.provider, self.status, self.detail, self.request = provider, status, detail, request
        super().__init__(f"{provider} refused access (HTTP {status}): {detail}" + (f" ({request})" if request else ""))


class ProviderRequestError(ProviderError):
    """The venue rejected the request: unknown instrument, bad parameter, unknown path."""

    def __init__(self, provider: str, instrument: str | None, status: int, code: Any, detail: str, *,
                 request: str | None = None):
        self.provider, self.instrument, self.status, self.code, self.detail, self.request = (
            provider, instrument, status, code, detail, request)
        what = f"{provider} {instrument}" if instrument else provider
        super().__init__(f"{what}: HTTP {status}, code {code}: {detail}" + (f" ({request})" if request else ""))


class ProviderDataError(ProviderError):
    """A response that cannot be parsed into the normalized frame; names instrument, day and request."""

    def __init__(self, instrument: str | None, day: date | str | None, detail: str, *,
                 provider: str | None = None, request: str | None = None):
        self.instrument, self.day, self.detail, self.provider, self.request = instrument, day, detail, provider, request
        where = " ".join(str(part) for part in (provider, instrument, day) if part)
        super().__init__(f"{where}: {detail}" + (f" ({request})" if request else ""))


# --------------------------------------------------------------------------------------------
# The common interface
# --------------------------------------------------------------------------------------------

@runtime_checkable
class ProviderClient(Protocol):
    """What every venue client offers (BinanceClient, OkxClient, DeribitClient)."""

    name: str  # the venue: BINANCE | OKX | DERIBIT
    stats: RequestStats

    async def trades(self, instrument: str, start: datetime, end: datetime) -> pl.DataFrame:
        """All trades with start <= ts < end, each once, ordered by (ts, seq)."""

    async def book_snapshot(self, instrument: str, depth: int) -> pl.DataFrame:
        """The current book, `depth` levels a side (level 0 = best)."""

    async def bars_1m(self, instrument: str, start: datetime, end: datetime) -> pl.DataFrame:
        """1-minute bars opening in [start, end)."""

    async def aclose(self) -> None: ...


def make_provider(venue: str, base_url: str | None = None, **kwargs) -> ProviderClient:
    """A client for `venue` (BINANCE | OKX | DERIBIT); base_url None = the vendor's public host.
    kwargs go to the client (and on to ApiClient: requests_per_minute, max_concurrency, timeout_s,
    retry, ...), e.g. `make_provider("OKX", resource.base_url, **resource.client_kwargs())`."""
    key = venue.upper()
    if key == "BINANCE":
        from marketdata_assets.lib.ticks.providers.binance import BinanceClient as cls
    elif key == "OKX":
        from marketdata_assets.lib.ticks.providers.okx import OkxClient as cls
    elif key == "DERIBIT":
        from marketdata_assets.lib.ticks.providers.deribit import DeribitClient as cls
    else:
        raise ValueError(f"unknown venue {venue!r}; one of {', '.join(VENUES)}")
    return cls(base_url, **kwargs) if base_url else cls(**kwargs)


# --------------------------------------------------------------------------------------------
# Time helpers
# --------------------------------------------------------------------------------------------

def as_utc(value: datetime) -> datetime:
    """Aware datetimes converted to UTC; naive ones taken as UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def to_us(value: datetime) -> int:
    """Epoch microseconds of a datetime (naive = UTC)."""
    delta = as_utc(value) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def floor_ms(value: datetime) -> int:
    return to_us(value) // 1000


def ceil_ms(value: datetime) -> int:
    return -(-to_us(value) // 1000)


def from_us(us: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)


def epoch_to_us(value: int) -> int:
    """Epoch milliseconds (13 digits today) or microseconds (16 digits) → microseconds, by magnitude.
    Binance answers in microseconds when asked (X-MBX-TIME-UNIT) and its dumps switch per row."""
    if value >= 100_000_000_000_000:  # >= 1e14: microseconds (ms would be the year 5138)
        return value
    return value * 1000


def day_of(value: datetime | None) -> date | None:
    return as_utc(value).date() if value is not None else None


# --------------------------------------------------------------------------------------------
# Parsing helpers shared by the venue modules
# --------------------------------------------------------------------------------------------

class PageContext:
    """Where a page came from, to build errors that name the instrument, day and request."""

    def __init__(self, provider: str, instrument: str | None, day: date | None = None, request: str | None = None):
        self.provider, self.instrument, self.day, self.request = provider, instrument, day, request

    def error(self, detail: str) -> ProviderDataError:
        return ProviderDataError(self.instrument, self.day, detail, provider=self.provider, request=self.request)


def describe_request(path: str, params: dict[str, Any] | None) -> str:
    query = "&".join(f"{k}={v}" for k, v in (params or {}).items())
    return f"GET {path}" + (f"?{query}" if query else "")


def decode_json(response: httpx.Response, ctx: PageContext) -> Any:
    try:
        return json.loads(response.content)
    except ValueError as error:
        raise ctx.error(f"malformed JSON body (HTTP {response.status_code}, {len(response.content)} bytes): "
                        f"{error}; body starts {response.text[:120]!r}") from None


def number(value: Any, what: str, ctx: PageContext) -> float:
    """A finite float from a vendor string ("0.01633102") or JSON number; a clear error otherwise."""
    if isinstance(value, bool) or value is None:
        raise ctx.error(f"{what} is {value!r}, not a number")
    try:
        result = float(value)
    except (TypeError, ValueError):
        raise ctx.error(f"{what} is {value!r}, not a number") from None
    if not math.isfinite(result):
        raise ctx.error(f"{what} is {value!r}, not a finite number")
    return result


def integer(value: Any, what: str, ctx: PageContext) -> int:
    if isinstance(value, bool) or value is None:
        raise ctx.error(f"{what} is {value!r}, not an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise ctx.error(f"{what} is {value!r}, not an integer")


def field(record: Any, key: str, what: str, ctx: PageContext) -> Any:
    if not isinstance(record, dict):
        raise ctx.error(f"{what} is {type(record).__name__} {str(record)[:80]!r}, not an object")
    try:
        return record[key]
    except KeyError:
        raise ctx.error(f"{what} lacks field {key!r} (has {sorted(record)[:12]})") from None


def price_check(price: float, what: str, ctx: PageContext) -> float:
    if price <= 0:
        raise ctx.error(f"{what} price is {price}, not positive")
    return price


class TradeColumns:
    """Accumulates parsed trades as columns; `frame()` builds the normalized trades frame."""

    def __init__(self):
        self.ts: list[int] = []
        self.trade_id: list[str] = []
        self.price: list[float] = []
        self.quantity: list[float] = []
        self.amount: list[float] = []
        self.side: list[str] = []
        self.seq: list[int | None] = []

    def add(self, ts_us: int, trade_id: str, price: float, quantity: float, amount: float, side: str,
            seq: int | None) -> None:
        self.ts.append(ts_us)
        self.trade_id.append(trade_id)
        self.price.append(price)
        self.quantity.append(quantity)
        self.amount.append(amount)
        self.side.append(side)
        self.seq.append(seq)

    def __len__(self) -> int:
        return len(self.ts)

    def frame(self, venue: str, instrument: str) -> pl.DataFrame:
        n = len(self.ts)
        return pl.DataFrame({
            "ts": pl.Series(self.ts, dtype=pl.Int64).cast(TRADES_SCHEMA["ts"]),
            "venue": pl.Series([venue] * n, dtype=pl.Utf8),
            "instrument": pl.Series([instrument] * n, dtype=pl.Utf8),
            "trade_id": pl.Series(self.trade_id, dtype=pl.Utf8),
            "price": pl.Series(self.price, dtype=pl.Float64),
            "quantity": pl.Series(self.quantity, dtype=pl.Float64),
            "amount": pl.Series(self.amount, dtype=pl.Float64),
            "side": pl.Series(self.side, dtype=pl.Utf8),
            "seq": pl.Series(self.seq, dtype=pl.Int64),
        }, schema=TRADES_SCHEMA)


def finish_trades(frames: Sequence[pl.DataFrame], start: datetime | None = None,
                  end: datetime | None = None) -> pl.DataFrame:
    """Concatenate pages, keep [start, end), drop repeated trade ids, order by (ts, seq)."""
    frame = pl.concat(list(frames), how="vertical") if frames else pl.DataFrame(schema=TRADES_SCHEMA)
    if start is not None:
        frame = frame.filter(pl.col("ts") >= as_utc(start))
    if end is not None:
        frame = frame.filter(pl.col("ts") < as_utc(end))
    return (frame.unique(subset=["trade_id"], keep="first", maintain_order=True)
            .sort(["ts", "seq"], nulls_last=True, maintain_order=True))


def book_frame(venue: str, instrument: str, ts_us: int, update_id: int | None,
               bids: list[tuple[float, float]], asks: list[tuple[float, float]]) -> pl.DataFrame:
    rows = [("bid", i, p, q) for i, (p, q) in enumerate(bids)] + [("ask", i, p, q) for i, (p, q) in enumerate(asks)]
    n = len(rows)
    return pl.DataFrame({
        "ts": pl.Series([ts_us] * n, dtype=pl.Int64).cast(BOOKS_SCHEMA["ts"]),
        "venue": pl.Series([venue] * n, dtype=pl.Utf8),
        "instrument": pl.Series([instrument] * n, dtype=pl.Utf8),
        "side": pl.Series([r[0] for r in rows], dtype=pl.Utf8),
        "level": pl.Series([r[1] for r in rows], dtype=pl.Int32),
        "price": pl.Series([r[2] for r in rows], dtype=pl.Float64),
        "quantity": pl.Series([r[3] for r in rows], dtype=pl.Float64),
        "update_id": pl.Series([update_id] * n, dtype=pl.Int64),
    }, schema=BOOKS_SCHEMA)


class BarColumns:
    def __init__(self):
        self.ts: list[int] = []
        self.open: list[float] = []
        self.high: list[float] = []
        self.low: list[float] = []
        self.close: list[float] = []
        self.volume: list[float] = []
        self.amount: list[float] = []
        self.trades: list[int | None] = []

    def add(self, ts_us: int, o: float, h: float, lo: float, c: float, volume: float, amount: float,
            trades: int | None) -> None:
        self.ts.append(ts_us)
        self.open.append(o)
        self.high.append(h)
        self.low.append(lo)
        self.close.append(c)
        self.volume.append(volume)
        self.amount.append(amount)
        self.trades.append(trades)

    def __len__(self) -> int:
        return len(self.ts)

    def frame(self, venue: str, instrument: str) -> pl.DataFrame:
        n = len(self.ts)
        return pl.DataFrame({
            "ts": pl.Series(self.ts, dtype=pl.Int64).cast(BARS_SCHEMA["ts"]),
            "venue": pl.Series([venue] * n, dtype=pl.Utf8),
            "instrument": pl.Series([instrument] * n, dtype=pl.Utf8),
            "open": pl.Series(self.open, dtype=pl.Float64),
            "high": pl.Series(self.high, dtype=pl.Float64),
            "low": pl.Series(self.low, dtype=pl.Float64),
            "close": pl.Series(self.close, dtype=pl.Float64),
            "volume": pl.Series(self.volume, dtype=pl.Float64),
            "amount": pl.Series(self.amount, dtype=pl.Float64),
            "trades": pl.Series(self.trades, dtype=pl.Int64),
        }, schema=BARS_SCHEMA)


def finish_bars(frames: Sequence[pl.DataFrame], start: datetime | None = None,
                end: datetime | None = None) -> pl.DataFrame:
    frame = pl.concat(list(frames), how="vertical") if frames else pl.DataFrame(schema=BARS_SCHEMA)
    if start is not None:
        frame = frame.filter(pl.col("ts") >= as_utc(start))
    if end is not None:
        frame = frame.filter(pl.col("ts") < as_utc(end))
    return frame.unique(subset=["ts"], keep="first", maintain_order=True).sort("ts", maintain_order=True)


# --------------------------------------------------------------------------------------------
# ccxt unified shapes (what users of ccxt have saved) → the normalized frames
# --------------------------------------------------------------------------------------------
#
# ccxt names things differently: its `amount` is the BASE quantity (in CONTRACTS for derivatives,
# symbols with ":"), its `cost` is the quote value — our `quantity` and `amount`. Symbols are
# unified ("BTC/USDT", "BTC/USDT:USDT", "BTC/USD:BTC"); the frames keep the venue's own id, taken
# from `info` when it names it (OKX instId, Deribit instrument_name, Binance s), else `instrument=`,
# else derived by `ccxt_symbol_to_instrument`.

_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")


def ccxt_symbol_to_instrument(venue: str, symbol: str) -> str:
    """"BTC/USDT" → BTCUSDT (Binance) / BTC-USDT (OKX); "BTC/USDT:USDT" → BTCUSDT / BTC-USDT-SWAP;
    "BTC/USD:BTC" → BTC-USD-SWAP (OKX) / BTC-PERPETUAL (Deribit); "BTC/USDC:USDC" → BTC_USDC-PERPETUAL;
    "BTC/USD:BTC-241227" → BTC-USD-241227 (OKX) / BTC-27DEC24 (Deribit)."""
    venue = venue.upper()
    pair, _, settle = symbol.partition(":")
    base, _, quote = pair.partition("/")
    settle, _, expiry = settle.partition("-")
    if not base or not quote:
        raise ValueError(f"{symbol!r} is not a ccxt unified symbol like BTC/USDT or BTC/USDT:USDT")
    if venue == "BINANCE":
        return f"{base}{quote}" + (f"_{expiry}" if expiry else "")
    if venue == "OKX":
        if not settle:
            return f"{base}-{quote}"
        return f"{base}-{quote}-{expiry}" if expiry else f"{base}-{quote}-SWAP"
    if venue == "DERIBIT":
        root = base if settle == base else f"{base}_{quote}"
        if expiry:
            return f"{root}-{int(expiry[4:6])}{_MONTHS[int(expiry[2:4]) - 1]}{expiry[:2]}"
        return f"{root}-PERPETUAL"
    raise ValueError(f"unknown venue {venue!r}")


def _ccxt_instrument(venue: str, symbol: str | None, info: Any, instrument: str | None) -> str:
    if instrument:
        return instrument
    if isinstance(info, dict):
        for key in ("instId", "instrument_name", "s", "symbol"):
            if isinstance(info.get(key), str) and info[key]:
                return info[key]
    if not symbol:
        raise ValueError("no instrument: pass instrument=, or trades with a symbol or info")
    return ccxt_symbol_to_instrument(venue, symbol)


def _ccxt_sizes(symbol: str | None, price: float, amount: float, cost: Any, contract_size: float | None,
                what: str, ctx: PageContext) -> tuple[float, float]:
    """(base quantity, quote value) of a ccxt amount (contracts for derivatives)."""
    pair, _, settle = (symbol or "").partition(":")
    if settle:
        if contract_size is None:
            raise ctx.error(f"{what}: {symbol} is a contract market; ccxt amounts are contracts: pass contract_size")
        base = pair.partition("/")[0]
        if settle.partition("-")[0] == base:  # inverse: contracts of `contract_size` quote units
            quote = amount * contract_size
            return quote / price, quote
        amount = amount * contract_size
    quote = number(cost, f"{what} cost", ctx) if cost is not None else price * amount
    return amount, quote


def from_ccxt_trades(trades: Sequence[dict], venue: str, instrument: str | None = None, *,
                     contract_size: float | None = None) -> pl.DataFrame:
    """ccxt `fetch_trades` results → trades frame (id, timestamp ms, side = taker, amount, cost)."""
    venue = venue.upper()
    cols = TradeColumns()
    inst = None
    for i, trade in enumerate(trades):
        inst = inst or _ccxt_instrument(venue, trade.get("symbol"), trade.get("info"), instrument)
        ctx = PageContext(venue, inst)
        what = f"ccxt trade #{i}"
        ts = epoch_to_us(integer(field(trade, "timestamp", what, ctx), f"{what} timestamp", ctx))
        trade_id = field(trade, "id", what, ctx)
        if trade_id in (None, ""):
            raise ctx.error(f"{what} has no id")
        price = price_check(number(field(trade, "price", what, ctx), f"{what} price", ctx), what, ctx)
        amount = number(field(trade, "amount", what, ctx), f"{what} amount", ctx)
        side = field(trade, "side", what, ctx)
        if side not in ("buy", "sell"):
            raise ctx.error(f"{what} side is {side!r}, not buy/sell")
        quantity, quote = _ccxt_sizes(trade.get("symbol"), price, amount, trade.get("cost"), contract_size, what, ctx)
        info = trade.get("info") if isinstance(trade.get("info"), dict) else {}
        seq = info.get("a", info.get("trade_seq"))
        seq = seq if isinstance(seq, int) else (int(trade_id) if str(trade_id).isdigit() else None)
        cols.add(ts, str(trade_id), price, quantity, quote, side, seq)
    return finish_trades([cols.frame(venue, inst or instrument or "")])


def from_ccxt_order_book(book: dict, venue: str, instrument: str | None = None, *,
                         received: datetime | None = None, contract_size: float | None = None) -> pl.DataFrame:
    """ccxt `fetch_order_book` → books frame; `timestamp` None (Binance) → `received` (or now);
    update_id = `nonce`. Entries may carry a third element (order count): ignored."""
    venue = venue.upper()
    inst = _ccxt_instrument(venue, book.get("symbol"), None, instrument)
    ctx = PageContext(venue, inst)
    stamp = book.get("timestamp")
    ts_us = epoch_to_us(integer(stamp, "book timestamp", ctx)) if stamp is not None else to_us(
        received or datetime.now(UTC))
    nonce = book.get("nonce")
    levels = {}
    for side in ("bids", "asks"):
        rows = field(book, side, "ccxt order book", ctx)
        out = []
        for k, level in enumerate(rows if isinstance(rows, list) else []):
            if not isinstance(level, (list, tuple)) or len(level) < 2:
                raise ctx.error(f"{side}[{k}] is not a [price, amount] pair: {str(level)[:80]}")
            price = price_check(number(level[0], f"{side}[{k}] price", ctx), f"{side}[{k}]", ctx)
            amount = number(level[1], f"{side}[{k}] amount", ctx)
            out.append((price, _ccxt_sizes(book.get("symbol"), price, amount, None, contract_size,
                                           f"{side}[{k}]", ctx)[0]))
        levels[side] = out
    return book_frame(venue, inst, ts_us, integer(nonce, "nonce", ctx) if nonce is not None else None,
                      levels["bids"], levels["asks"])


def from_ccxt_ohlcv(rows: Sequence[Sequence[Any]], venue: str, instrument: str) -> pl.DataFrame:
    """ccxt `fetch_ohlcv` rows [ts ms, o, h, l, c, v] → bars frame. ccxt carries no quote volume and
    no trade count: amount is NaN (unknown, not an estimate) and trades null."""
    venue = venue.upper()
    ctx = PageContext(venue, instrument)
    cols = BarColumns()
    for i, row in enumerate(rows):
        if not isinstance(row, (list, tuple)) or len(row) < 6:
            raise ctx.error(f"ohlcv #{i} is not [timestamp, open, high, low, close, volume]: {str(row)[:120]}")
        ts = epoch_to_us(integer(row[0], f"ohlcv #{i} timestamp", ctx))
        o, h, lo, c, v = (number(row[k], f"ohlcv #{i} {name}", ctx) for k, name in
                          ((1, "open"), (2, "high"), (3, "low"), (4, "close"), (5, "volume")))
        cols.add(ts, o, h, lo, c, v, math.nan, None)
    return finish_bars([cols.frame(venue, instrument)])


def status_detail(response: httpx.Response, limit: int = 300) -> str:
    text = response.text.strip().replace("\n", " ")
    return text[:limit] + ("..." if len(text) > limit else "")


__all__ = [
    "VENUES",
    "ProviderBanned",
    "ProviderClient",
    "ProviderDataError",
    "ProviderError",
    "ProviderPermissionError",
    "ProviderRequestError",
    "as_utc",
    "ccxt_symbol_to_instrument",
    "ceil_ms",
    "epoch_to_us",
    "floor_ms",
    "from_ccxt_ohlcv",
    "from_ccxt_order_book",
    "from_ccxt_trades",
    "from_us",
    "make_provider",
    "to_us",
]
