"""Binance spot REST (`/api/v3`): aggregate trades, 1-minute klines and depth snapshots.

Formats (shared/docs/vendor-formats.md):

- aggTrades `[{a, p, q, f, l, T, m, M}]`: prices/quantities are strings, `T` in milliseconds, or
  microseconds when the request carried `X-MBX-TIME-UNIT: MICROSECOND` (decided per value by
  magnitude, so both work whatever was asked). `m` = the buyer was the maker → the taker SOLD.
  trade_id = seq = `a`; amount = price * quantity (aggTrades have no quoteQty).
- trades `[{id, price, qty, quoteQty, time, isBuyerMaker, isBestMatch}]` (`parse_trades`): amount = quoteQty.
- klines: 12-element mixed arrays `[openTime, "o", "h", "l", "c", "volume", closeTime,
  "quoteVolume", trades, "takerBase", "takerQuote", "0"]`.
- depth `{lastUpdateId, bids:[[p, q]], asks:[[p, q]]}` has no timestamp: the snapshot's `ts` is the
  time the response was received (local clock, UTC).

Paging trades: windows of at most one hour (`startTime`/`endTime`, limit 1000); as soon as a window
fills a page the client pages by `fromId` = last `a` + 1 until it passes `end` (ids are contiguous,
so nothing is lost or repeated; a final filter keeps [start, end)).

Limits: Binance counts request WEIGHT per IP per minute and reports it in `X-MBX-USED-WEIGHT-1M`.
`WeightGate` adds each request's weight locally, takes the larger of its count and the header, and
before a request that would pass `weight_limit * weight_headroom` waits for the next window (the
venue's windows are fixed minutes). 429 (with Retry-After) is retried by the base class; 418 or a
-1003 "IP banned until ..." raises `ProviderBanned` at once and the client then refuses every call.
403 with an HTML body is the WAF: `ProviderPermissionError`, not retried.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import httpx
import polars as pl

from marketdata_assets.lib.http import ApiClient, RequestStats
from marketdata_assets.lib.ticks.providers import (
    BarColumns,
    PageContext,
    ProviderBanned,
    ProviderDataError,
    ProviderPermissionError,
    ProviderRequestError,
    TradeColumns,
    as_utc,
    book_frame,
    ceil_ms,
    day_of,
    decode_json,
    describe_request,
    epoch_to_us,
    field,
    finish_bars,
    finish_trades,
    floor_ms,
    from_us,
    integer,
    number,
    price_check,
    status_detail,
    to_us,
)

VENUE = "BINANCE"
DEFAULT_BASE_URL = "https://api.binance.com"
WEIGHT_HEADER = "X-MBX-USED-WEIGHT-1M"
MAX_WINDOW = timedelta(hours=1)

# Request weights of the endpoints used (Binance spot, 2024-2025).
WEIGHT_AGG_TRADES = 4
WEIGHT_TRADES = 25
WEIGHT_KLINES = 2
DEPTH_LIMITS = (5, 10, 20, 50, 100, 500, 1000, 5000)

_BANNED_UNTIL = re.compile(r"banned until (\d{10,17})", re.IGNORECASE)


def depth_weight(limit: int) -> int:
    if limit <= 100:
        return 5
    if limit <= 500:
        return 25
    if limit <= 1000:
        return 50
    return 250


# --------------------------------------------------------------------------------------------
# Parsers (pure: a decoded JSON body in, a normalized frame out)
# --------------------------------------------------------------------------------------------

def _ctx(instrument: str, ctx: PageContext | None) -> PageContext:
    return ctx or PageContext(VENUE, instrument)


def _bool(value: Any, what: str, ctx: PageContext) -> bool:
    if isinstance(value, bool):
        return value
    raise ctx.error(f"{what} is {value!r}, not true/false")


def parse_agg_trades(body: Any, instrument: str, ctx: PageContext | None = None) -> pl.DataFrame:
    """`/api/v3/aggTrades` records → trades frame (trade_id = seq = `a`)."""
    ctx = _ctx(instrument, ctx)
    if not isinstance(body, list):
        raise ctx.error(f"aggTrades: expected a JSON array, got {type(body).__name__} {str(body)[:120]!r}")
    cols = TradeColumns()
    for i, record in enumerate(body):
        what = f"aggTrade #{i}"
        agg_id = integer(field(record, "a", what, ctx), f"{what} a", ctx)
        price = price_check(number(field(record, "p", what, ctx), f"{what} (a={agg_id}) p", ctx), what, ctx)
        qty = number(field(record, "q", what, ctx), f"{what} (a={agg_id}) q", ctx)
        ts = epoch_to_us(integer(field(record, "T", what, ctx), f"{what} (a={agg_id}) T", ctx))
        maker = _bool(field(record, "m", what, ctx), f"{what} (a={agg_id}) m", ctx)
        cols.add(ts, str(agg_id), price, qty, price * qty, "sell" if maker else "buy", agg_id)
    return cols.frame(VENUE, instrument)


def parse_trades(body: Any, instrument: str, ctx: PageContext | None = None) -> pl.DataFrame:
    """`/api/v3/trades` / `historicalTrades` records → trades frame (amount = quoteQty, seq = id)."""
    ctx = _ctx(instrument, ctx)
    if not isinstance(body, list):
        raise ctx.error(f"trades: expected a JSON array, got {type(body).__name__} {str(body)[:120]!r}")
    cols = TradeColumns()
    for i, record in enumerate(body):
        what = f"trade #{i}"
        trade_id = integer(field(record, "id", what, ctx), f"{what} id", ctx)
        price = price_check(number(field(record, "price", what, ctx), f"{what} (id={trade_id}) price", ctx), what, ctx)
        qty = number(field(record, "qty", what, ctx), f"{what} (id={trade_id}) qty", ctx)
        quote = number(field(record, "quoteQty", what, ctx), f"{what} (id={trade_id}) quoteQty", ctx)
        ts = epoch_to_us(integer(field(record, "time", what, ctx), f"{what} (id={trade_id}) time", ctx))
        maker = _bool(field(record, "isBuyerMaker", what, ctx), f"{what} (id={trade_id}) isBuyerMaker", ctx)
        cols.add(ts, str(trade_id), price, qty, quote, "sell" if maker else "buy", trade_id)
    return cols.frame(VENUE, instrument)


def parse_klines(body: Any, instrument: str, ctx: PageContext | None = None) -> pl.DataFrame:
    """`/api/v3/klines` 12-element arrays → bars frame (volume = base, amount = quote volume)."""
    ctx = _ctx(instrument, ctx)
    if not isinstance(body, list):
        raise ctx.error(f"klines: expected a JSON array, got {type(body).__name__} {str(body)[:120]!r}")
    cols = BarColumns()
    for i, row in enumerate(body):
        if not isinstance(row, list) or len(row) < 12:
            raise ctx.error(f"kline #{i} is not a 12-element array: {str(row)[:160]}")
        what = f"kline #{i}"
        open_us = epoch_to_us(integer(row[0], f"{what} open time", ctx))
        when = from_us(open_us).strftime("%H:%M")
        o, h, lo, c = (number(row[k], f"{what} ({when}) {name}", ctx) for k, name in
                       ((1, "open"), (2, "high"), (3, "low"), (4, "close")))
        volume = number(row[5], f"{what} ({when}) volume", ctx)
        amount = number(row[7], f"{what} ({when}) quote volume", ctx)
        trades = integer(row[8], f"{what} ({when}) number of trades", ctx)
        cols.add(open_us, o, h, lo, c, volume, amount, trades)
    return cols.frame(VENUE, instrument)


def _levels(levels: Any, side: str, ctx: PageContext) -> list[tuple[float, float]]:
    if not isinstance(levels, list):
        raise ctx.error(f"depth {side} is {type(levels).__name__}, not an array")
    out = []
    for i, level in enumerate(levels):
        if not isinstance(level, list) or len(level) < 2:
            raise ctx.error(f"depth {side}[{i}] is not a [price, qty] pair: {str(level)[:80]}")
        out.append((price_check(number(level[0], f"{side}[{i}] price", ctx), f"{side}[{i}]", ctx),
                    number(level[1], f"{side}[{i}] qty", ctx)))
    return out


def parse_depth(body: Any, instrument: str, received: datetime, ctx: PageContext | None = None) -> pl.DataFrame:
    """`/api/v3/depth` → books frame. Depth carries no time: `ts` = `received` (when it arrived)."""
    ctx = _ctx(instrument, ctx)
    update_id = integer(field(body, "lastUpdateId", "depth", ctx), "depth lastUpdateId", ctx)
    bids = _levels(field(body, "bids", "depth", ctx), "bids", ctx)
    asks = _levels(field(body, "asks", "depth", ctx), "asks", ctx)
    return book_frame(VENUE, instrument, to_us(received), update_id, bids, asks)


def ban_until(message: str) -> datetime | None:
    match = _BANNED_UNTIL.search(message or "")
    return from_us(epoch_to_us(int(match.group(1)))) if match else None


def _is_ban(response: httpx.Response) -> bool:
    if response.status_code == 418:
        return True
    return response.status_code == 429 and b"banned until" in response.content[:1000].lower()


# --------------------------------------------------------------------------------------------
# The weight limiter
# --------------------------------------------------------------------------------------------

@dataclass
class BinanceStats(RequestStats):
    weight_waits: int = 0
    weight_wait_s: float = 0.0
    max_used_weight: int = 0

    def as_metadata(self) -> dict[str, Any]:
        return {**super().as_metadata(), "weight_waits": self.weight_waits,
                "weight_wait_s": round(self.weight_wait_s, 3), "max_used_weight_1m": self.max_used_weight}


class WeightGate:
    """Request weight per fixed window (Binance: per minute): waits for the next window rather
    than pass `limit * headroom`. Counts locally and trusts the venue's header when it says more."""

    def __init__(self, limit: int, window_s: float = 60.0, headroom: float = 0.9, clock=time.time):
        if limit <= 0 or window_s <= 0:
            raise ValueError("weight limit and window must be positive")
        self.limit, self.window_s, self.budget, self.clock = limit, window_s, limit * headroom, clock
        self.margin = min(1.0, 0.02 * window_s)
        self.window: int | None = None
        self.used = 0.0
        self._lock = asyncio.Lock()

    def _roll(self, now: float) -> None:
        window = int(now // self.window_s)
        if window != self.window:
            self.window, self.used = window, 0.0

    async def acquire(self, cost: float) -> float:
        """Reserve `cost` weight; returns the seconds waited."""
        waited = 0.0
        async with self._lock:
            while True:
                now = self.clock()
                self._roll(now)
                if self.used + cost <= self.budget or self.used == 0:
                    self.used += cost
                    return waited
                delay = (self.window + 1) * self.window_s - now + self.margin
                waited += delay
                await asyncio.sleep(delay)

    def note(self, used: int) -> None:
        """The venue's count (`X-MBX-USED-WEIGHT-1M`) as of a response just received."""
        self._roll(self.clock())
        self.used = max(self.used, float(used))


# --------------------------------------------------------------------------------------------
# The client
# --------------------------------------------------------------------------------------------

class BinanceClient(ApiClient):
    """Binance spot market data. `time_unit="MICROSECOND"` asks for microsecond timestamps."""

    api_name = "Binance"
    name = VENUE

    def __init__(self, base_url: str = DEFAULT_BASE_URL, *, weight_limit: int = 6000, weight_window_s: float = 60.0,
                 weight_headroom: float = 0.9, time_unit: str | None = None, page_limit: int = 1000,
                 requests_per_minute: float = 1200, headers: dict[str, str] | None = None, **kwargs):
        headers = dict(headers or {})
        if time_unit:
            if time_unit.upper() not in ("MILLISECOND", "MICROSECOND"):
                raise ValueError("time_unit: MILLISECOND or MICROSECOND")
            headers["X-MBX-TIME-UNIT"] = time_unit.upper()
        super().__init__(base_url, requests_per_minute=requests_per_minute, headers=headers, **kwargs)
        if not 1 <= page_limit <= 1000:
            raise ValueError("page_limit: 1..1000")
        self.page_limit = page_limit
        self.stats = BinanceStats()
        self.weight = WeightGate(weight_limit, weight_window_s, weight_headroom)
        self.banned: ProviderBanned | None = None

    # ---- transport --------------------------------------------------------------------------

    def is_rate_limited(self, response: httpx.Response) -> bool:
        used = response.headers.get(WEIGHT_HEADER)
        if used and used.strip().isdigit():
            self.weight.note(int(used))
            self.stats.max_used_weight = max(self.stats.max_used_weight, int(used))
        # 418 and "banned until" come back to _get (ProviderBanned at once); plain 429 is retried.
        return response.status_code == 429 and not _is_ban(response)

    async def _get(self, path: str, params: dict[str, Any], *, instrument: str, day: date | None,
                   weight: int) -> tuple[Any, PageContext, httpx.Response]:
        if self.banned is not None:
            raise self.banned
        waited = await self.weight.acquire(weight)
        if waited:
            self.stats.weight_waits += 1
            self.stats.weight_wait_s += waited
        if self.banned is not None:
            raise self.banned
        request = describe_request(path, params)
        ctx = PageContext(VENUE, instrument, day, request)
        response = await self.request("GET", path, params=params)
        status = response.status_code
        if _is_ban(response):
            try:
                message = str(response.json().get("msg") or response.text)
            except ValueError:
                message = response.text
            self.banned = ProviderBanned(VENUE, f"HTTP {status}: {message[:300]}", until=ban_until(message),
                                         request=request)
            raise self.banned
        if status in (401, 403):
            content_type = response.headers.get("content-type", "")
            if "html" in content_type or response.text.lstrip().startswith("<"):
                detail = ("an HTML page instead of JSON: Binance's web application firewall (WAF) blocked the "
                          "request; check the request rate and pattern, and the IP/region; not retried")
            else:
                detail = status_detail(response)
            raise ProviderPermissionError(VENUE, status, detail, request=request)
        if status >= 400:
            try:
                payload = response.json()
                code, message = payload.get("code"), payload.get("msg")
            except (ValueError, AttributeError):
                code, message = None, status_detail(response)
            raise ProviderRequestError(VENUE, instrument, status, code, str(message), request=request)
        return decode_json(response, ctx), ctx, response

    # ---- trades -----------------------------------------------------------------------------

    async def trades(self, instrument: str, start: datetime, end: datetime) -> pl.DataFrame:
        """Aggregate trades with start <= ts < end (see the module doc for the paging)."""
        start, end = as_utc(start), as_utc(end)
        frames: list[pl.DataFrame] = []
        end_us = to_us(end)
        cursor, from_id = start, None
        while True:
            if from_id is None:
                if cursor >= end:
                    break
                window_end = min(cursor + MAX_WINDOW, end)
                params = {"symbol": instrument, "startTime": floor_ms(cursor), "endTime": ceil_ms(window_end) - 1,
                          "limit": self.page_limit}
                body, ctx, _ = await self._get("/api/v3/aggTrades", params, instrument=instrument,
                                               day=day_of(cursor), weight=WEIGHT_AGG_TRADES)
                page = parse_agg_trades(body, instrument, ctx)
                frames.append(page)
                if page.height >= self.page_limit:
                    from_id = int(page["seq"].max()) + 1
                cursor = window_end
            else:
                params = {"symbol": instrument, "fromId": from_id, "limit": self.page_limit}
                day = day_of(frames[-1]["ts"].max()) if frames[-1].height else day_of(start)
                body, ctx, _ = await self._get("/api/v3/aggTrades", params, instrument=instrument, day=day,
                                               weight=WEIGHT_AGG_TRADES)
                page = parse_agg_trades(body, instrument, ctx)
                if page.height == 0:
                    break
                first = int(page["seq"].min())
                if first < from_id:
                    raise ctx.error(f"aggTrades page for fromId={from_id} starts at a={first}")
                frames.append(page)
                if page.height < self.page_limit or to_us(page["ts"].max()) >= end_us:
                    break
                from_id = int(page["seq"].max()) + 1
        return finish_trades(frames, start, end)

    async def recent_trades(self, instrument: str, limit: int = 500) -> pl.DataFrame:
        """`/api/v3/trades`: the latest `limit` (≤ 1000) individual trades."""
        params = {"symbol": instrument, "limit": limit}
        body, ctx, _ = await self._get("/api/v3/trades", params, instrument=instrument, day=None,
                                       weight=WEIGHT_TRADES)
        return finish_trades([parse_trades(body, instrument, ctx)])

    # ---- book -------------------------------------------------------------------------------

    async def book_snapshot(self, instrument: str, depth: int = 100) -> pl.DataFrame:
        """`/api/v3/depth` (limit rounded up to 5/10/20/50/100/500/1000/5000, then cut to `depth`).
        `ts` is the time the response was received: Binance's depth has no timestamp."""
        limit = next((x for x in DEPTH_LIMITS if x >= depth), DEPTH_LIMITS[-1])
        params = {"symbol": instrument, "limit": limit}
        body, ctx, _ = await self._get("/api/v3/depth", params, instrument=instrument,
                                       day=day_of(datetime.now().astimezone()), weight=depth_weight(limit))
        received = datetime.now().astimezone()
        frame = parse_depth(body, instrument, received, ctx)
        return frame.filter(pl.col("level") < depth)

    # ---- bars -------------------------------------------------------------------------------

    async def bars_1m(self, instrument: str, start: datetime, end: datetime) -> pl.DataFrame:
        start, end = as_utc(start), as_utc(end)
        frames: list[pl.DataFrame] = []
        cursor_ms, end_ms = ceil_ms(start), ceil_ms(end)
        while cursor_ms < end_ms:
            params = {"symbol": instrument, "interval": "1m", "startTime": cursor_ms, "endTime": end_ms - 1,
                      "limit": self.page_limit}
            body, ctx, _ = await self._get("/api/v3/klines", params, instrument=instrument,
                                           day=day_of(from_us(cursor_ms * 1000)), weight=WEIGHT_KLINES)
            page = parse_klines(body, instrument, ctx)
            if page.height == 0:
                break
            frames.append(page)
            last_ms = to_us(page["ts"].max()) // 1000
            if page.height < self.page_limit or last_ms + 1 <= cursor_ms:
                break
            cursor_ms = last_ms + 1
        return finish_bars(frames, start, end)


__all__ = [
    "BinanceClient",
    "BinanceStats",
    "ProviderDataError",
    "WeightGate",
    "ban_until",
    "depth_weight",
    "parse_agg_trades",
    "parse_depth",
    "parse_klines",
    "parse_trades",
]
