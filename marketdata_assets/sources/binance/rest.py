"""Binance spot REST (`/api/v3`): aggregate trades, trades, 1-minute klines, depth snapshots and tickers;
the wire records and the rules their pages keep are declared below, the paging, limits and errors in
`BinanceClient` (USD-M's `futures.BinanceFuturesClient` reuses both). docs/ticks.md ("Binance spot REST")
has what the declarations do not say: time units, paging, the trade-id refill, weights and bans.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from operator import mul
from typing import Any, ClassVar

import msgspec
import numpy as np
import polars as pl

from marketdata_assets.core.contracts import Contract, bad_name, split_pair, yymmdd
from marketdata_assets.core.http import (
    ApiClient,
    ErrorTable,
    Limits,
    Page,
    SourcePermissionError,
    describe_request,
)
from marketdata_assets.datasets.declared import (
    Int64,
    Rule,
    bar_rules,
    check,
    columns,
    frame_of,
    is_epoch,
    is_finite,
    is_flag,
    is_not_negative,
    is_positive,
    page_of,
    typed_pages,
)
from marketdata_assets.datasets.frames import (
    BARS_SCHEMA,
    EPOCH_MS_OR_US,
    TRADES_SCHEMA,
    as_utc,
    ceil_ms,
    day_of,
    epoch_to_us,
    floor_ms,
    from_us,
    to_us,
)
from marketdata_assets.datasets.wire import (
    DropCounts,
    book_frame,
    book_levels,
    columns_of,
    epoch_us,
    field,
    finish_bars,
    finish_trades,
    integer,
    not_negative,
    number,
)
from marketdata_assets.sources.interface import HISTORY, SNAPSHOT

VENUE = "BINANCE"
DEFAULT_BASE_URL = "https://api.binance.com"
MAX_WINDOW = timedelta(hours=1)
DEPTH_LIMITS = (5, 10, 20, 50, 100, 500, 1000, 5000)

LIMITS = Limits(
    requests_per_minute=1200, max_concurrency=4,
    weight_per_window=6000, weight_window_s=60.0, weight_headroom=0.9, weight_header="X-MBX-USED-WEIGHT-1M",
    weights={"/api/v3/aggTrades": 4, "/api/v3/trades": 25, "/api/v3/historicalTrades": 25,
             "/api/v3/klines": 2, "/api/v3/ticker/24hr": 2},
    # depth: depth_weight(limit)
)
ERRORS = ErrorTable(
    broad=(("banned until", "banned"),),
    exact={"-1003": "rate_limited", "-1121": "not_found", "-1100": "rejected", "-1102": "rejected",
           # DISCONNECTED, SERVER_BUSY, TIMEOUT, overloaded: "please try again"
           "-1001": "retry", "-1004": "retry", "-1007": "retry", "-1008": "retry"},
    status={418: "banned"},
)
WAF = ("an HTML page instead of JSON: Binance's web application firewall (WAF) blocked the request; check the "
       "request rate and pattern, and the IP/region; not retried")

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

def contract(venue: str, instrument: str) -> Contract:
    """What a Binance symbol of `venue` (BINANCE, BINANCE_UM, BINANCE_CM) stands for (core/contracts.py
    has the shapes); ValueError for another."""
    pair, _, suffix = instrument.partition("_")
    base, quote = split_pair(venue, instrument, pair)
    if venue == "BINANCE":
        if suffix:
            raise bad_name(venue, instrument, "a spot symbol has no '_'")
        return Contract(venue, instrument, "spot", base, quote)
    inverse = venue == "BINANCE_CM"
    if suffix in ("", "PERP") and (suffix == "PERP") == inverse:
        return Contract(venue, instrument, "perpetual", base, quote, inverse=inverse)
    if suffix:
        return Contract(venue, instrument, "future", base, quote, yymmdd(venue, instrument, suffix), inverse=inverse)
    raise bad_name(venue, instrument, "a COIN-M perpetual is BASEUSD_PERP")


def _ctx(instrument: str, ctx: Page | None, venue: str = VENUE) -> Page:
    return ctx or Page(venue, instrument)


class AggTrade(msgspec.Struct):
    """One aggregate trade: `/api/v3/aggTrades` (USD-M `/fapi/v1/aggTrades`) and the `aggTrade` event."""

    a: Int64        # aggregate trade id: the row's trade_id and seq
    p: float        # price, quote per base (decimal text on the wire)
    q: float        # quantity, base units (decimal text)
    T: Int64        # trade time: epoch ms, or µs when asked with X-MBX-TIME-UNIT: MICROSECOND
    m: Any          # true: the buyer was the maker, so the taker SOLD (true/false only)


class HistoricalTrade(msgspec.Struct):
    """One trade of `/api/v3/trades` and `historicalTrades` (and of the dump files)."""

    id: Int64           # trade id: trade_id and seq
    price: float        # quote per base (decimal text)
    qty: float          # base units (decimal text)
    quoteQty: float     # quote units traded: the row's amount
    time: Int64         # epoch ms (µs when asked)
    isBuyerMaker: Any   # true: the taker SOLD (true/false only)


class Kline(msgspec.Struct, array_like=True):
    """One `/api/v3/klines` row: a 12-element array (only the first 9 are read)."""

    open_time: Int64    # epoch ms (µs when asked): the bar's ts
    open: float         # decimal text, as the four prices
    high: float
    low: float
    close: float
    volume: float       # base units
    close_time: Int64   # open_time + interval - 1 ms (or - 1 µs): tells the kline's interval
    quote_volume: float  # quote units: the row's amount
    trades: Int64       # number of trades
    labels: ClassVar[dict[str, str]] = {"open_time": "open time", "close_time": "close time",
                                        "quote_volume": "quote volume", "trades": "number of trades"}


class PriceKline(msgspec.Struct, array_like=True):
    """One USD-M `markPriceKlines` / `indexPriceKlines` row: a kline whose volumes are "Ignore"."""

    open_time: Int64    # epoch ms: the bar's ts
    open: float         # decimal text, as the four prices
    high: float
    low: float
    close: float
    ignore: Any         # "Ignore" in the docs (their example sends "0 ")
    close_time: Int64   # open_time + interval - 1 ms
    labels: ClassVar[dict[str, str]] = Kline.labels


AGG_TRADE_PAGES = typed_pages(AggTrade)  # an aggTrades answer's body reader


AGG_TRADE_RULES = (is_finite("p"), is_finite("q"), is_epoch("T"), is_flag("m"), is_positive("p", "price"),
                   is_positive("q", "quantity"),
                   Rule("amount", lambda c: np.isfinite(c["amount"]),
                        "{what} price x quantity is {value}: the numbers are out of range"))
TRADE_RULES = (is_finite("price"), is_finite("qty"), is_finite("quoteQty"), is_not_negative("quoteQty"),
               is_epoch("time"), is_flag("isBuyerMaker"), is_positive("price"), is_positive("qty", "quantity"))


def agg_trade_columns(records: list[AggTrade], what: str, ctx: Page, body: Any = None) -> dict[str, list]:
    """aggTrades (REST, and USD-M's `aggTrade` stream event) as checked columns, amount = p x q."""
    cols = columns(records, ("a", "p", "q", "T", "m"))
    cols["amount"] = list(map(mul, cols["p"], cols["q"]))
    check(cols, AGG_TRADE_RULES, what, ctx, body)
    return cols


def parse_agg_trades(body: Any, instrument: str, ctx: Page | None = None, venue: str = VENUE) -> pl.DataFrame:
    """`/api/v3/aggTrades` (USD-M: `/fapi/v1/aggTrades`) records → trades frame (trade_id = seq = `a`)."""
    ctx = _ctx(instrument, ctx, venue)
    cols = agg_trade_columns(page_of(AggTrade, body, "aggTrade", ctx), "aggTrade #{i} (a={a})", ctx, body)
    return frame_of(TRADES_SCHEMA, venue, instrument, cols["T"], trade_id=list(map(str, cols["a"])), price=cols["p"],
                    quantity=cols["q"], amount=cols["amount"], side=["sell" if s else "buy" for s in cols["m"]],
                    seq=cols["a"])


def parse_trades(body: Any, instrument: str, ctx: Page | None = None, venue: str = VENUE) -> pl.DataFrame:
    """`/api/v3/trades` / `historicalTrades` records → trades frame (amount = quoteQty, seq = id)."""
    ctx = _ctx(instrument, ctx, venue)
    cols = columns(page_of(HistoricalTrade, body, "trade", ctx), HistoricalTrade.__struct_fields__)
    check(cols, TRADE_RULES, "trade #{i} (id={id})", ctx, body)
    return frame_of(TRADES_SCHEMA, venue, instrument, cols["time"], trade_id=list(map(str, cols["id"])),
                    price=cols["price"], quantity=cols["qty"], amount=cols["quoteQty"],
                    side=["sell" if s else "buy" for s in cols["isBuyerMaker"]], seq=cols["id"])


def kline_rules(interval_ms: int, full: bool) -> tuple[Rule, ...]:
    """What every kline keeps, in the order a breach is told: its times, its span (the interval), finite
    numbers, then a bar that can be true (volumes only on full klines)."""
    span = Rule("span", lambda c: (c["span"] >= interval_ms * 1000 - 1000) & (c["span"] < interval_ms * 1000),
                lambda what, r: f"{what} spans {(r['span'] + 1) / 1e6:g} s (close time - open time), not "
                                f"{interval_ms / 1000:g} s: a kline of another interval")
    volumes = (is_finite("volume"), is_finite("quote_volume", "quote volume"),
               is_not_negative("quote_volume", "quote volume"), is_not_negative("trades", "number of trades"))
    return (is_epoch("open_time", "open time"), is_epoch("close_time", "close time"), span,
            *(is_finite(name) for name in ("open", "high", "low", "close")), *(volumes if full else ()),
            *bar_rules("ts", "volume" if full else None, minute=interval_ms % 60_000 == 0))


def _kline_name(i: int, kline: dict) -> str:
    """kline #i, and its minute once its open time is one."""
    t = kline["open_time"]
    if t and not EPOCH_MS_OR_US[0] <= t < EPOCH_MS_OR_US[1]:
        return f"kline #{i}"
    return f"kline #{i} ({from_us(int(kline['ts'])).strftime('%Y-%m-%d %H:%M')})"


def parse_klines(body: Any, instrument: str, ctx: Page | None = None, interval_ms: int = 60_000,
                 venue: str = VENUE, kind: type = Kline) -> pl.DataFrame:
    """`/api/v3/klines` rows (`Kline`; `PriceKline`: prices only) → bars frame (volume = base, amount =
    quote volume); every kline must span `interval_ms` (closeTime = openTime + interval - 1 ms, or
    - 1 µs)."""
    ctx = _ctx(instrument, ctx, venue)
    if isinstance(body, list):
        short = next((i for i, row in enumerate(body) if not isinstance(row, list) or len(row) < 12), None)
        if short is not None:
            raise ctx.error(f"kline #{short} is not a 12-element array: {str(body[short])[:160]}")
    records = page_of(kind, body, "kline", ctx)
    full = kind is Kline
    cols = columns(records, ("open_time", "open", "high", "low", "close", "close_time",
                             *(("volume", "quote_volume", "trades") if full else ())))
    if not full:
        cols.update(volume=[0.0] * len(records), quote_volume=[0.0] * len(records), trades=[0] * len(records))
    opens, closes = (np.fromiter(cols[name], np.int64, len(records)) for name in ("open_time", "close_time"))
    cols["ts"] = np.where(opens >= 100_000_000_000_000, opens, opens * 1000)
    cols["span"] = np.where(closes >= 100_000_000_000_000, closes, closes * 1000) - cols["ts"]
    check(cols, kline_rules(interval_ms, full), _kline_name, ctx, body, kind)
    return frame_of(BARS_SCHEMA, venue, instrument, cols["open_time"], open=cols["open"], high=cols["high"],
                    low=cols["low"], close=cols["close"], volume=cols["volume"], amount=cols["quote_volume"],
                    trades=cols["trades"])


def parse_depth(body: Any, instrument: str, received: datetime | None, ctx: Page | None = None,
                venue: str = VENUE, stamp: str | None = None) -> pl.DataFrame:
    """`/api/v3/depth` → books frame. Spot depth carries no time: `ts` = `received` (when it
    arrived); `stamp` names the field holding the book's time instead (USD-M: `T`)."""
    ctx = _ctx(instrument, ctx, venue)
    update_id = integer(field(body, "lastUpdateId", "depth", ctx), "depth lastUpdateId", ctx)
    ts_us = epoch_us(field(body, stamp, "depth", ctx), f"depth {stamp}", ctx) if stamp else to_us(received)
    bids, asks = (book_levels(field(body, side, "depth", ctx), side, ctx, what="depth", shape="[price, qty] pair",
                              price="price", size="qty") for side in ("bids", "asks"))
    return book_frame(venue, instrument, ts_us, update_id, bids, asks)


def price_or_null(value: Any, what: str, ctx: Page) -> float | None:
    """A quoted price; 0 (no trade, an empty side) is null, a negative one an error."""
    price = not_negative(number(value, what, ctx), what, ctx)
    return price or None


def size_field(body: Any, key: str, what: str, ctx: Page) -> float:
    """A quantity or value field that is a number >= 0."""
    return not_negative(number(field(body, key, what, ctx), f"{what} {key}", ctx), f"{what} {key}", ctx)


def best_quote(body: Any, price_key: str, size_key: str, what: str,
               ctx: Page) -> tuple[float | None, float | None]:
    """(price, size) of a best bid or ask; both null where the side is empty (price 0)."""
    price = price_or_null(field(body, price_key, what, ctx), f"{what} {price_key}", ctx)
    size = size_field(body, size_key, what, ctx)
    return (price, size) if price is not None else (None, None)


def parse_ticker_24hr(body: Any, instrument: str, ctx: Page | None = None,
                      venue: str = VENUE) -> pl.DataFrame:
    """Spot `/api/v3/ticker/24hr?symbol=` → one tickers row (ts = closeTime; mark, index, funding null)."""
    ctx = _ctx(instrument, ctx, venue)
    what = "24hr ticker"
    if not isinstance(body, dict):
        raise ctx.error(f"{what}: expected a JSON object, got {type(body).__name__} {str(body)[:120]!r}")
    ts = epoch_us(field(body, "closeTime", what, ctx), f"{what} closeTime", ctx)
    last = price_or_null(field(body, "lastPrice", what, ctx), f"{what} lastPrice", ctx)
    bid, bid_size = best_quote(body, "bidPrice", "bidQty", what, ctx)
    ask, ask_size = best_quote(body, "askPrice", "askQty", what, ctx)
    cols = columns_of("tickers")
    cols.add(ts, last, bid, bid_size, ask, ask_size, size_field(body, "volume", what, ctx),
             size_field(body, "quoteVolume", what, ctx), None, None, None)
    return cols.frame(venue, instrument)


def ban_until(message: str) -> datetime | None:
    match = _BANNED_UNTIL.search(message or "")
    return from_us(epoch_to_us(int(match.group(1)))) if match else None


# --------------------------------------------------------------------------------------------
# The client
# --------------------------------------------------------------------------------------------

class BinanceClient(ApiClient):
    """Binance spot market data. `time_unit="MICROSECOND"` asks for microsecond timestamps."""

    api_name = "Binance"
    name = VENUE
    ERRORS = ERRORS
    LIMITS = LIMITS
    DATASETS: ClassVar[dict[str, str]] = {"trades": HISTORY, "bars_1m": HISTORY, "books": SNAPSHOT,
                                          "tickers": SNAPSHOT}
    # the venue's paths and limits (BinanceFuturesClient: USD-M's)
    AGG_TRADES = "/api/v3/aggTrades"
    HISTORICAL_TRADES = "/api/v3/historicalTrades"
    KLINES = "/api/v3/klines"
    DEPTH = "/api/v3/depth"
    TICKER_24HR = "/api/v3/ticker/24hr"
    DEPTH_LIMITS: ClassVar[tuple[int, ...]] = DEPTH_LIMITS
    KLINE_LIMIT = 1000  # the most klines one request answers

    def __init__(self, base_url: str = DEFAULT_BASE_URL, *, weight_limit: int | None = None,
                 weight_window_s: float | None = None, weight_headroom: float | None = None,
                 time_unit: str | None = None, page_limit: int = 1000, headers: dict[str, str] | None = None,
                 **kwargs):
        headers = dict(headers or {})
        if time_unit:
            if time_unit.upper() not in ("MILLISECOND", "MICROSECOND"):
                raise ValueError("time_unit: MILLISECOND or MICROSECOND")
            headers["X-MBX-TIME-UNIT"] = time_unit.upper()
        super().__init__(base_url, headers=headers, weight_per_window=weight_limit, weight_window_s=weight_window_s,
                         weight_headroom=weight_headroom, **kwargs)
        if not 1 <= page_limit <= 1000:
            raise ValueError("page_limit: 1..1000")
        self.page_limit = page_limit
        self.dropped = DropCounts()

    def figures(self) -> dict[str, Any]:
        return {**super().figures(), **self.dropped.figures()}

    # ---- what Binance's answers mean ---------------------------------------------------------

    def error_fields(self, payload: Any) -> tuple[Any, str] | None:
        if isinstance(payload, dict) and "code" in payload and "msg" in payload:
            return payload["code"], str(payload["msg"])
        return None

    def ban_until(self, message: str) -> datetime | None:
        return ban_until(message)

    def make_error(self, category, *, status, code, message, page):
        if category == "permission" and message.lstrip().startswith("<"):
            return SourcePermissionError(self.name, status, WAF, request=page.request)
        if category == "banned":
            error = super().make_error(category, status=status, code=code, message=message, page=page)
            error.source = self.name
            return error
        return super().make_error(category, status=status, code=code, message=message, page=page)

    def depth_weight(self, limit: int) -> int:
        return depth_weight(limit)

    def kline_weight(self, limit: int) -> int | None:
        """A klines request's weight (None: `LIMITS.weights`; spot's does not depend on the limit)."""
        return None

    async def _get(self, path: str, params: dict[str, Any], *, instrument: str, day, weight: int | None = None,
                   time_unit: str | None = None):
        page = Page(self.name, instrument, day, describe_request("GET", path, params))
        extra: dict[str, Any] = {"_weight": weight} if weight is not None else {}
        if time_unit:
            extra["headers"] = {"X-MBX-TIME-UNIT": time_unit}
        if path == self.AGG_TRADES:  # decoded straight into AggTrade records
            extra["decode"] = AGG_TRADE_PAGES
        return await self.call("GET", path, page=page, params=params, **extra), page

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
                body, page = await self._get(self.AGG_TRADES, params, instrument=instrument,
                                             day=day_of(cursor))
                frame = parse_agg_trades(body, instrument, page, self.name)
                frames.append(frame)
                if frame.height >= self.page_limit:
                    from_id = int(frame["seq"].max()) + 1
                cursor = window_end
            else:
                params = {"symbol": instrument, "fromId": from_id, "limit": self.page_limit}
                day = day_of(frames[-1]["ts"].max()) if frames[-1].height else day_of(start)
                body, page = await self._get(self.AGG_TRADES, params, instrument=instrument, day=day)
                frame = parse_agg_trades(body, instrument, page, self.name)
                if frame.height == 0:
                    break
                first = int(frame["seq"].min())
                if first < from_id:
                    raise page.error(f"aggTrades page for fromId={from_id} starts at a={first}")
                frames.append(frame)
                if frame.height < self.page_limit or to_us(frame["ts"].max()) >= end_us:
                    break
                from_id = int(frame["seq"].max()) + 1
        return finish_trades(frames, start, end, self.dropped.of(instrument), paged="forward")

    async def agg_trades_by_id(self, instrument: str, first_id: int, last_id: int, *, day: date | None = None,
                               time_unit: str | None = None) -> pl.DataFrame:
        """Aggregate trades with first_id <= a <= last_id (`aggTrades?fromId=`); `day` names the
        slice in errors."""
        return await self._by_id(self.AGG_TRADES, parse_agg_trades, instrument, first_id, last_id, day,
                                 time_unit)

    async def trades_by_id(self, instrument: str, first_id: int, last_id: int, *, day: date | None = None,
                           time_unit: str | None = None) -> pl.DataFrame:
        """Individual trades with first_id <= id <= last_id (`historicalTrades?fromId=`)."""
        return await self._by_id(self.HISTORICAL_TRADES, parse_trades, instrument, first_id, last_id, day,
                                 time_unit)

    async def _by_id(self, path: str, parse, instrument: str, first_id: int, last_id: int, day: date | None,
                     time_unit: str | None) -> pl.DataFrame:
        frames: list[pl.DataFrame] = []
        from_id = first_id
        while from_id <= last_id:
            params = {"symbol": instrument, "fromId": from_id, "limit": min(self.page_limit, last_id - from_id + 1)}
            body, page = await self._get(path, params, instrument=instrument, day=day, time_unit=time_unit)
            frame = parse(body, instrument, page, self.name)
            if frame.height == 0:
                break
            if int(frame["seq"].min()) < from_id:
                raise page.error(f"{path.rsplit('/', 1)[-1]} page for fromId={from_id} starts at id "
                                 f"{int(frame['seq'].min())}")
            frames.append(frame)
            from_id = int(frame["seq"].max()) + 1
        frame = finish_trades(frames, drops=self.dropped.of(instrument))
        inside = frame.filter(pl.col("seq").is_between(first_id, last_id))
        self.dropped.of(instrument)["past_window_edge"] += frame.height - inside.height
        return inside

    # ---- book -------------------------------------------------------------------------------

    async def book_snapshot(self, instrument: str, depth: int = 100) -> pl.DataFrame:
        """`depth` (limit rounded up to one of `DEPTH_LIMITS`, then cut to `depth`). Spot's `ts` is
        the time the response was received: Binance's spot depth has no timestamp."""
        limit = next((x for x in self.DEPTH_LIMITS if x >= depth), self.DEPTH_LIMITS[-1])
        body, page = await self._get(self.DEPTH, {"symbol": instrument, "limit": limit},
                                     instrument=instrument, day=day_of(datetime.now().astimezone()),
                                     weight=self.depth_weight(limit))
        return self._parse_book(body, instrument, page).filter(pl.col("level") < depth)

    async def depth_body(self, instrument: str, limit: int = 1000) -> dict:
        """The `depth` answer as sent (lastUpdateId, bids/asks as the venue's strings): what a live
        book starts from (sources/binance/stream.py DepthSync), exact strings kept."""
        limit = next((x for x in self.DEPTH_LIMITS if x >= limit), self.DEPTH_LIMITS[-1])
        body, page = await self._get(self.DEPTH, {"symbol": instrument, "limit": limit}, instrument=instrument,
                                     day=day_of(datetime.now().astimezone()), weight=self.depth_weight(limit))
        integer(field(body, "lastUpdateId", "depth", page), "depth lastUpdateId", page)
        for side in ("bids", "asks"):
            if not isinstance(field(body, side, "depth", page), list):
                raise page.error(f"depth {side} is not a list")
        return body

    def _parse_book(self, body: Any, instrument: str, page: Page) -> pl.DataFrame:
        return parse_depth(body, instrument, datetime.now().astimezone(), page, self.name)

    # ---- tickers ----------------------------------------------------------------------------

    async def tickers(self, instrument: str) -> pl.DataFrame:
        """`/api/v3/ticker/24hr?symbol=`: last, best bid/ask and the rolling 24 hours' volumes
        (ts = closeTime, see the module doc)."""
        body, page = await self._get(self.TICKER_24HR, {"symbol": instrument}, instrument=instrument,
                                     day=day_of(datetime.now().astimezone()))
        return parse_ticker_24hr(body, instrument, page, self.name)

    # ---- bars -------------------------------------------------------------------------------

    async def bars_1m(self, instrument: str, start: datetime, end: datetime) -> pl.DataFrame:
        start, end = as_utc(start), as_utc(end)
        frames = await self._kline_pages(self.KLINES, {"symbol": instrument}, instrument, start, end)
        return finish_bars(frames, start, end, self.dropped.of(instrument))

    async def _kline_pages(self, path: str, params: dict[str, Any], instrument: str, start: datetime,
                           end: datetime) -> list[pl.DataFrame]:
        """The 1-minute klines of `path` (`params` name the instrument) opening in [start, end),
        paged forward by `startTime` = last open + 1 ms, as bars frames (every kline checked)."""
        frames: list[pl.DataFrame] = []
        limit = min(self.page_limit, self.KLINE_LIMIT)
        cursor_ms, end_ms = ceil_ms(start), ceil_ms(end)
        while cursor_ms < end_ms:
            query = {**params, "interval": "1m", "startTime": cursor_ms, "endTime": end_ms - 1,
                     "limit": limit}
            body, page = await self._get(path, query, instrument=instrument,
                                         day=day_of(from_us(cursor_ms * 1000)),
                                         weight=self.kline_weight(limit))
            frame = parse_klines(body, instrument, page, venue=self.name)
            if frame.height == 0:
                break
            frames.append(frame)
            last_ms = to_us(frame["ts"].max()) // 1000
            if frame.height < limit or last_ms + 1 <= cursor_ms:
                break
            cursor_ms = last_ms + 1
        return frames


__all__ = ["ERRORS", "LIMITS", "BinanceClient", "ban_until", "depth_weight", "parse_agg_trades",
           "parse_depth", "parse_klines", "parse_ticker_24hr", "parse_trades"]
