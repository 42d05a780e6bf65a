"""Binance USD-M futures REST (`https://fapi.binance.com`, venue BINANCE_UM): trades, bars and books
with spot's paging and parsers (`rest.BinanceClient`) over the `/fapi/v1` paths, and tickers,
funding, open interest, mark and index price bars. From the USD-M docs (weights as of 2026):

- `aggTrades` (weight 20): spot's records without `M`, ms; "only trade histories within the past 48
  hours (counted from now) can be queried" (one year until May 2026): an older day is refused
  (`trades_reach`), not fetched in part; it comes from data.binance.vision (`archives`).
- `klines`, `markPriceKlines` (symbol), `indexPriceKlines` (pair: the symbol before any `_`): limit
  <= 1500, weight 1/2/5/10 for limits < 100/500, <= 1000, more; mark/index klines carry "0" volumes
  and the "number of basic data": only their prices are kept. `depth` (weight 2/5/10/20 for limits
  <= 50/100/500/1000) adds `E` and `T` to spot's: the book's `ts` is `T` (transaction time).
- tickers, 3 requests (none has every column): `ticker/bookTicker` (weight 2: bid/ask, sizes,
  time), `premiumIndex` (1: markPrice, indexPrice, lastFundingRate, time), `ticker/24hr` (1:
  lastPrice, volume (base), quoteVolume, closeTime); `ts` = the latest of the three times.
  funding_rate = lastFundingRate, the period in progress [inferred: "the latest funding rate"].
- `fundingRate` (startTime/endTime inclusive, limit <= 1000, ascending, the first `limit` from
  startTime): paged forward from the last fundingTime + 1 ms; markPrice absent or "" in old rows ->
  null. `fundingInfo` (weight 0; 500 requests / 5 min shared with fundingRate) lists only instruments
  whose cap, floor or fundingIntervalHours were adjusted: asked once per client, else 8 hours;
  rate_8h = rate * 8 / interval_hours. Today's interval labels every row [inferred: no history of
  interval changes is published].
- `/futures/data/openInterestHist` (period=5m, limit <= 500, weight 0, 1000 requests / 5 min):
  "only the data of the latest 1 month" (30 days in older docs): a window starting over
  `open_interest_reach` (30 days) ago is refused. sumOpenInterest is base units (contract size 1),
  sumOpenInterestValue quote; the doc example's timestamp is a string. Which rows a range holding
  more than `limit` answers is undocumented: each request spans at most `limit` periods.
- Errors as spot (-1121, 429 / -1003 + Retry-After, 418 ban); 2400 weight a minute.

No liquidations: `allForceOrders` answers "The endpoint has been out of maintenance" since 2021 and
left the docs; USD-M `liquidationSnapshot` dump files stopped in 2024.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any, ClassVar

import polars as pl

from marketdata_assets.core.http import Limits, Page, SourceDataError
from marketdata_assets.datasets.frames import PRICE_BARS_SCHEMA, as_utc, ceil_ms, day_of, from_us, to_us
from marketdata_assets.datasets.wire import columns_of, epoch_us, field, finish, number
from marketdata_assets.sources.binance.rest import (
    ERRORS,
    BinanceClient,
    PriceKline,
    best_quote,
    parse_depth,
    parse_klines,
    price_or_null,
    size_field,
)
from marketdata_assets.sources.interface import HISTORY, SNAPSHOT, Reach, span_text

VENUE = "BINANCE_UM"
DEFAULT_BASE_URL = "https://fapi.binance.com"
DEPTH_LIMITS = (5, 10, 20, 50, 100, 500, 1000)
FUNDING_HOURS = 8.0  # an instrument fundingInfo does not list
TRADES_REACH = timedelta(hours=48)
OPEN_INTEREST_REACH = timedelta(days=30)
DOCS = "https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api/"
USD_M_REACH: dict[str, Reach] = {  # what the docs say, and where older days come from
    "trades": Reach(TRADES_REACH, "data.binance.vision archives (market um): individual trades into `trades`, "
                                  "aggregate trades into `agg_trades`", DOCS + "Compressed-Aggregate-Trades-List",
                    ("binance_archive_trades", "binance_archive_agg_trades")),
    "open_interest": Reach(OPEN_INTEREST_REACH, "nowhere in this project (data.binance.vision's um `metrics` "
                                                "files hold it: not loaded)", DOCS + "Open-Interest-Statistics"),
}
OI_PERIOD, OI_PERIOD_MS = "5m", 300_000

LIMITS = Limits(
    requests_per_minute=1200, max_concurrency=4,
    weight_per_window=2400, weight_window_s=60.0, weight_headroom=0.9, weight_header="X-MBX-USED-WEIGHT-1M",
    # klines, mark/index klines and depth: by limit (kline_weight, depth_weight). fundingRate has no
    # weight of its own in the docs (a request limit instead): counted as 1 [inferred].
    weights={"/fapi/v1/aggTrades": 20, "/fapi/v1/historicalTrades": 200, "/fapi/v1/ticker/24hr": 1,
             "/fapi/v1/ticker/bookTicker": 2, "/fapi/v1/premiumIndex": 1, "/fapi/v1/fundingRate": 1,
             "/fapi/v1/fundingInfo": 0, "/futures/data/openInterestHist": 0},
    # fundingRate and fundingInfo share 500 requests / 5 min; openInterestHist has 1000 / 5 min
    endpoint_limits={"/fapi/v1/funding": (500, 300.0), "/futures/data/openInterestHist": (1000, 300.0)},
)


def pair_of(instrument: str) -> str:
    """The pair `indexPriceKlines` asks for: BTCUSDT for BTCUSDT and BTCUSDT_250328."""
    return instrument.partition("_")[0]


# --------------------------------------------------------------------------------------------
# Parsers (pure: a decoded JSON body in, a normalized frame out)
# --------------------------------------------------------------------------------------------

def _ctx(instrument: str | None, ctx: Page | None) -> Page:
    return ctx or Page(VENUE, instrument)


def _array(body: Any, what: str, ctx: Page) -> list:
    if not isinstance(body, list):
        raise ctx.error(f"{what}: expected a JSON array, got {type(body).__name__} {str(body)[:120]!r}")
    return body


def _object(body: Any, what: str, ctx: Page) -> dict:
    if not isinstance(body, dict):
        raise ctx.error(f"{what}: expected a JSON object, got {type(body).__name__} {str(body)[:120]!r}")
    return body


def parse_funding(body: Any, instrument: str, interval_hours: float = FUNDING_HOURS,
                  ctx: Page | None = None) -> pl.DataFrame:
    """`/fapi/v1/fundingRate` records → funding frame (rate settled at fundingTime for the
    `interval_hours` before it; mark_price null where markPrice is absent or "")."""
    ctx = _ctx(instrument, ctx)
    cols = columns_of("funding")
    for i, record in enumerate(_array(body, "fundingRate", ctx)):
        what = f"funding #{i}"
        ts = epoch_us(field(record, "fundingTime", what, ctx), f"{what} fundingTime", ctx)
        what = f"{what} ({from_us(ts):%Y-%m-%d %H:%M})"
        rate = number(field(record, "fundingRate", what, ctx), f"{what} fundingRate", ctx)
        mark = record.get("markPrice")
        mark = None if mark in (None, "") else price_or_null(mark, f"{what} markPrice", ctx)
        cols.add(ts, rate, interval_hours, rate * 8 / interval_hours, mark, None)
    return cols.frame(VENUE, instrument)


def parse_funding_info(body: Any, ctx: Page | None = None) -> dict[str, float]:
    """`/fapi/v1/fundingInfo` → instrument -> fundingIntervalHours (instruments without one are left out)."""
    ctx = _ctx(None, ctx)
    intervals: dict[str, float] = {}
    for i, record in enumerate(_array(body, "fundingInfo", ctx)):
        instrument = field(record, "symbol", f"fundingInfo #{i}", ctx)
        hours = record.get("fundingIntervalHours")
        if hours is None:
            continue
        hours = number(hours, f"fundingInfo {instrument} fundingIntervalHours", ctx)
        if hours <= 0:
            raise ctx.error(f"fundingInfo {instrument} fundingIntervalHours is {hours}, not positive")
        intervals[str(instrument)] = hours
    return intervals


def parse_open_interest(body: Any, instrument: str, ctx: Page | None = None) -> pl.DataFrame:
    """`/futures/data/openInterestHist` rows → open_interest frame: one contract = 1 base unit, so
    contracts = base = sumOpenInterest; quote = sumOpenInterestValue."""
    ctx = _ctx(instrument, ctx)
    cols = columns_of("open_interest")
    for i, record in enumerate(_array(body, "openInterestHist", ctx)):
        what = f"open interest #{i}"
        ts = epoch_us(field(record, "timestamp", what, ctx), f"{what} timestamp", ctx)
        what = f"{what} ({from_us(ts):%Y-%m-%d %H:%M})"
        base = size_field(record, "sumOpenInterest", what, ctx)
        cols.add(ts, base, 1.0, "base", base, size_field(record, "sumOpenInterestValue", what, ctx))
    return cols.frame(VENUE, instrument)


def parse_price_klines(body: Any, instrument: str, ctx: Page | None = None) -> pl.DataFrame:
    """`markPriceKlines` / `indexPriceKlines` 1-minute arrays → price bars (open, high, low, close)."""
    return parse_klines(body, instrument, ctx, venue=VENUE, kind=PriceKline).select(list(PRICE_BARS_SCHEMA))


def parse_ticker(book: Any, premium: Any, stats: Any, instrument: str,
                 pages: tuple[Page | None, Page | None, Page | None] = (None, None, None)) -> pl.DataFrame:
    """`ticker/bookTicker`, `premiumIndex` and `ticker/24hr` of one instrument → one tickers row
    (ts = the latest of their times)."""
    book_ctx, premium_ctx, stats_ctx = (_ctx(instrument, page) for page in pages)
    book = _object(book, "bookTicker", book_ctx)
    premium = _object(premium, "premiumIndex", premium_ctx)
    stats = _object(stats, "24hr ticker", stats_ctx)
    bid, bid_size = best_quote(book, "bidPrice", "bidQty", "bookTicker", book_ctx)
    ask, ask_size = best_quote(book, "askPrice", "askQty", "bookTicker", book_ctx)
    mark, index = (price_or_null(field(premium, key, "premiumIndex", premium_ctx), f"premiumIndex {key}",
                                 premium_ctx) for key in ("markPrice", "indexPrice"))
    rate = field(premium, "lastFundingRate", "premiumIndex", premium_ctx)
    rate = None if rate == "" else number(rate, "premiumIndex lastFundingRate", premium_ctx)
    last = price_or_null(field(stats, "lastPrice", "24hr ticker", stats_ctx), "24hr ticker lastPrice",
                         stats_ctx)
    ts = max(epoch_us(field(body, key, what, ctx), f"{what} {key}", ctx) for body, key, what, ctx in (
        (book, "time", "bookTicker", book_ctx), (premium, "time", "premiumIndex", premium_ctx),
        (stats, "closeTime", "24hr ticker", stats_ctx)))
    cols = columns_of("tickers")
    cols.add(ts, last, bid, bid_size, ask, ask_size, size_field(stats, "volume", "24hr ticker", stats_ctx),
             size_field(stats, "quoteVolume", "24hr ticker", stats_ctx), mark, index, rate)
    return cols.frame(VENUE, instrument)


# --------------------------------------------------------------------------------------------
# The client
# --------------------------------------------------------------------------------------------

class BinanceFuturesClient(BinanceClient):
    """Binance USD-M futures market data (venue BINANCE_UM). `clock` (default: the wall clock, UTC)
    is what `trades_reach` / `open_interest_reach` count back from; None turns a reach off."""

    api_name = "Binance USD-M"
    metrics_source = "binance"
    name = VENUE
    ERRORS = ERRORS
    LIMITS = LIMITS
    DATASETS: ClassVar[dict[str, str]] = {
        "trades": HISTORY, "bars_1m": HISTORY, "books": SNAPSHOT, "tickers": SNAPSHOT, "funding": HISTORY,
        "open_interest": HISTORY, "mark_bars_1m": HISTORY, "index_bars_1m": HISTORY}
    REACH: ClassVar[dict[str, Reach]] = USD_M_REACH
    AGG_TRADES = "/fapi/v1/aggTrades"
    HISTORICAL_TRADES = "/fapi/v1/historicalTrades"
    KLINES = "/fapi/v1/klines"
    DEPTH = "/fapi/v1/depth"
    TICKER_24HR = "/fapi/v1/ticker/24hr"
    BOOK_TICKER = "/fapi/v1/ticker/bookTicker"
    PREMIUM_INDEX = "/fapi/v1/premiumIndex"
    FUNDING_RATE = "/fapi/v1/fundingRate"
    FUNDING_INFO = "/fapi/v1/fundingInfo"
    OPEN_INTEREST_HIST = "/futures/data/openInterestHist"
    MARK_KLINES = "/fapi/v1/markPriceKlines"
    INDEX_KLINES = "/fapi/v1/indexPriceKlines"
    DEPTH_LIMITS: ClassVar[tuple[int, ...]] = DEPTH_LIMITS
    KLINE_LIMIT = 1500

    def __init__(self, base_url: str = DEFAULT_BASE_URL, *, trades_reach: timedelta | None = TRADES_REACH,
                 open_interest_reach: timedelta | None = OPEN_INTEREST_REACH,
                 clock: Callable[[], datetime] | None = None, **kwargs):
        if kwargs.get("time_unit"):
            raise ValueError("time_unit: USD-M answers milliseconds (X-MBX-TIME-UNIT is a spot header)")
        super().__init__(base_url, **kwargs)
        self.trades_reach, self.open_interest_reach = trades_reach, open_interest_reach
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self._intervals: dict[str, float] | None = None
        self._intervals_lock = asyncio.Lock()

    def depth_weight(self, limit: int) -> int:
        return 2 if limit <= 50 else 5 if limit <= 100 else 10 if limit <= 500 else 20

    def kline_weight(self, limit: int) -> int:
        return 1 if limit < 100 else 2 if limit < 500 else 5 if limit <= 1000 else 10

    def _parse_book(self, body: Any, instrument: str, page: Page) -> pl.DataFrame:
        return parse_depth(body, instrument, None, page, self.name, stamp="T")

    def _within_reach(self, instrument: str, start: datetime, reach: timedelta | None, what: str,
                      path: str) -> None:
        """A window starting before the venue's history does is refused: no partial day is stored."""
        if reach is None:
            return
        oldest = as_utc(self.clock()) - reach
        if start < oldest:
            raise SourceDataError(
                instrument, day_of(start),
                f"Binance USD-M serves {what} of the last {span_text(reach)} only ({path}); the window starts "
                f"{start.isoformat()}, before {oldest.isoformat(timespec='seconds')}: not fetched",
                source=self.name)

    # ---- trades, tickers ----------------------------------------------------------------------

    async def trades(self, instrument: str, start: datetime, end: datetime) -> pl.DataFrame:
        """Aggregate trades with start <= ts < end (spot's paging); only within `trades_reach`."""
        self._within_reach(instrument, as_utc(start), self.trades_reach, "aggregate trades", self.AGG_TRADES)
        return await super().trades(instrument, start, end)

    async def tickers(self, instrument: str) -> pl.DataFrame:
        """bookTicker + premiumIndex + 24hr ticker (3 requests, weight 4) → one tickers row."""
        day = day_of(datetime.now(timezone.utc))
        paths = (self.BOOK_TICKER, self.PREMIUM_INDEX, self.TICKER_24HR)
        answers = await asyncio.gather(*(self._get(path, {"symbol": instrument}, instrument=instrument,
                                                   day=day) for path in paths))
        (book, book_page), (premium, premium_page), (stats, stats_page) = answers
        return parse_ticker(book, premium, stats, instrument, (book_page, premium_page, stats_page))

    # ---- funding ------------------------------------------------------------------------------

    async def funding_interval(self, instrument: str) -> float:
        """The instrument's funding interval in hours: `fundingInfo` (asked once per client), else 8."""
        async with self._intervals_lock:
            if self._intervals is None:
                body, page = await self._get(self.FUNDING_INFO, {}, instrument=instrument, day=None)
                self._intervals = parse_funding_info(body, page)
        return self._intervals.get(instrument, FUNDING_HOURS)

    async def funding(self, instrument: str, start: datetime, end: datetime) -> pl.DataFrame:
        """Funding settled in [start, end), paged forward (startTime = last fundingTime + 1 ms)."""
        start, end = as_utc(start), as_utc(end)
        hours = await self.funding_interval(instrument)
        frames: list[pl.DataFrame] = []
        limit = min(self.page_limit, 1000)
        cursor_ms, end_ms = ceil_ms(start), ceil_ms(end)
        while cursor_ms < end_ms:
            params = {"symbol": instrument, "startTime": cursor_ms, "endTime": end_ms - 1, "limit": limit}
            body, page = await self._get(self.FUNDING_RATE, params, instrument=instrument,
                                         day=day_of(from_us(cursor_ms * 1000)))
            frame = parse_funding(body, instrument, hours, page)
            if frame.height == 0:
                break
            first_ms = to_us(frame["ts"].min()) // 1000
            if first_ms < cursor_ms:
                raise page.error(f"fundingRate page for startTime={cursor_ms} starts earlier, at "
                                 f"fundingTime={first_ms}")
            frames.append(frame)
            if frame.height < limit:
                break
            cursor_ms = to_us(frame["ts"].max()) // 1000 + 1
        return finish("funding", frames, start, end, self.dropped.of(instrument), paged="forward")

    # ---- open interest --------------------------------------------------------------------------

    async def open_interest(self, instrument: str, start: datetime, end: datetime) -> pl.DataFrame:
        """5-minute open interest in [start, end), windows of at most `limit` periods; only within
        `open_interest_reach`."""
        start, end = as_utc(start), as_utc(end)
        self._within_reach(instrument, start, self.open_interest_reach, "open interest history",
                           self.OPEN_INTEREST_HIST)
        frames: list[pl.DataFrame] = []
        limit = min(self.page_limit, 500)
        cursor_ms, end_ms = ceil_ms(start), ceil_ms(end)
        while cursor_ms < end_ms:
            window_end = min(end_ms, cursor_ms + limit * OI_PERIOD_MS)
            params = {"symbol": instrument, "period": OI_PERIOD, "startTime": cursor_ms,
                      "endTime": window_end - 1, "limit": limit}
            body, page = await self._get(self.OPEN_INTEREST_HIST, params, instrument=instrument,
                                         day=day_of(from_us(cursor_ms * 1000)))
            frames.append(parse_open_interest(body, instrument, page))
            cursor_ms = window_end
        return finish("open_interest", frames, start, end, self.dropped.of(instrument))

    # ---- mark and index price bars ----------------------------------------------------------------

    async def mark_bars_1m(self, instrument: str, start: datetime, end: datetime) -> pl.DataFrame:
        return await self._price_bars("mark_bars_1m", self.MARK_KLINES, {"symbol": instrument}, instrument,
                                      start, end)

    async def index_bars_1m(self, instrument: str, start: datetime, end: datetime) -> pl.DataFrame:
        return await self._price_bars("index_bars_1m", self.INDEX_KLINES, {"pair": pair_of(instrument)},
                                      instrument, start, end)

    async def _price_bars(self, dataset: str, path: str, params: dict[str, Any], instrument: str,
                          start: datetime, end: datetime) -> pl.DataFrame:
        start, end = as_utc(start), as_utc(end)
        frames = await self._kline_pages(path, params, instrument, start, end)
        return finish(dataset, [frame.select(list(PRICE_BARS_SCHEMA)) for frame in frames], start, end,
                      self.dropped.of(instrument))


__all__ = ["LIMITS", "BinanceFuturesClient", "pair_of", "parse_funding", "parse_funding_info",
           "parse_open_interest", "parse_price_klines", "parse_ticker"]
