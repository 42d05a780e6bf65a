"""Binance USD-M futures REST (`https://fapi.binance.com`, venue BINANCE_UM): spot's trades, bars and
books (`rest.BinanceClient`) over `/fapi/v1`, and tickers, funding, open interest, mark and index price
bars. What each endpoint answers, weighs and reaches: docs/crypto-datasets.md, "Binance USD-M REST"."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any, ClassVar

import msgspec
import polars as pl

from marketdata_assets.core.http import Limits, Page, SourceDataError
from marketdata_assets.datasets.declared import UNREAD, frame_of, read_records
from marketdata_assets.datasets.frames import (
    FUNDING_SCHEMA,
    OPEN_INTEREST_SCHEMA,
    PRICE_BARS_SCHEMA,
    as_utc,
    ceil_ms,
    day_of,
    from_us,
    to_us,
)
from marketdata_assets.datasets.wire import columns_of, epoch_us, field, finish, not_negative, number
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


def _json(body: Any, kind: type, what: str, ctx: Page) -> Any:
    if not isinstance(body, kind):
        raise ctx.error(f"{what}: expected a JSON {'array' if kind is list else 'object'}, got "
                        f"{type(body).__name__} {str(body)[:120]!r}")
    return body


def _hours(value: Any, what: str, ctx: Page) -> float | None:
    hours = None if value is None else number(value, what, ctx)
    if hours is not None and hours <= 0:
        raise ctx.error(f"{what} is {hours}, not positive")
    return hours


class FundingRate(msgspec.Struct):
    """A `fundingRate` record as sent (`read_records`: UNSET a field it must have, `reads` its readers)."""
    fundingTime: Any = msgspec.UNSET  # when the rate was settled, epoch ms
    fundingRate: Any = msgspec.UNSET  # the rate settled, text ("0.00010000")
    markPrice: Any = None             # text; absent or "" in old records: null
    reads: ClassVar[dict] = {"fundingTime": epoch_us, "fundingRate": number, "markPrice": lambda value, what, ctx: (
        None if value in (None, "") else price_or_null(value, what, ctx))}


class FundingInfo(msgspec.Struct):
    """A `fundingInfo` record (only instruments whose cap, floor or interval was adjusted)."""
    symbol: Any = msgspec.UNSET       # the instrument
    fundingIntervalHours: Any = None  # hours between fundings, above 0; absent: FUNDING_HOURS
    reads: ClassVar[dict] = {"fundingIntervalHours": _hours}


class OpenInterestHist(msgspec.Struct):
    """An `openInterestHist` row."""
    timestamp: Any = msgspec.UNSET             # the period's time, epoch ms (a string in the docs' example)
    sumOpenInterest: Any = msgspec.UNSET       # base units (contract size 1), text
    sumOpenInterestValue: Any = msgspec.UNSET  # quote units, text
    reads: ClassVar[dict] = {"timestamp": epoch_us, **dict.fromkeys(("sumOpenInterest", "sumOpenInterestValue"), (
        lambda value, what, ctx: not_negative(number(value, what, ctx), what, ctx)))}


def _dated(name: str, key: str) -> Callable[[int, dict], str]:  # record i's name, its minute once read
    return lambda i, r: (f"{name} #{i} ({from_us(r[key]):%Y-%m-%d %H:%M})" if key not in r[UNREAD]
                         else f"{name} #{i}")


def parse_funding(body: Any, instrument: str, interval_hours: float = FUNDING_HOURS,
                  ctx: Page | None = None) -> pl.DataFrame:
    """`/fapi/v1/fundingRate` records → funding frame (rate settled at fundingTime for the
    `interval_hours` before it; mark_price null where markPrice is absent or "")."""
    ctx = _ctx(instrument, ctx)
    cols = read_records(FundingRate, _json(body, list, "fundingRate", ctx), _dated("funding", "fundingTime"), ctx)
    rate = cols["fundingRate"]
    return frame_of(FUNDING_SCHEMA, VENUE, instrument, cols["fundingTime"], rate=rate, index_price=[None] * len(rate),
                    interval_hours=[interval_hours] * len(rate), rate_8h=[r * 8 / interval_hours for r in rate],
                    mark_price=cols["markPrice"])


def parse_funding_info(body: Any, ctx: Page | None = None) -> dict[str, float]:
    """`/fapi/v1/fundingInfo` → instrument -> fundingIntervalHours (instruments without one are left out)."""
    ctx = _ctx(None, ctx)
    cols = read_records(FundingInfo, _json(body, list, "fundingInfo", ctx), lambda i, r: (
        f"fundingInfo #{i}" if "symbol" in r[UNREAD] else f"fundingInfo {r['symbol']}"), ctx)
    return {str(symbol): hours for symbol, hours in zip(cols["symbol"], cols["fundingIntervalHours"], strict=True)
            if hours is not None}


def parse_open_interest(body: Any, instrument: str, ctx: Page | None = None) -> pl.DataFrame:
    """`/futures/data/openInterestHist` rows → open_interest frame: one contract = 1 base unit, so
    contracts = base = sumOpenInterest; quote = sumOpenInterestValue."""
    ctx = _ctx(instrument, ctx)
    cols = read_records(OpenInterestHist, _json(body, list, "openInterestHist", ctx),
                        _dated("open interest", "timestamp"), ctx)
    base, n = cols["sumOpenInterest"], len(cols["timestamp"])
    return frame_of(OPEN_INTEREST_SCHEMA, VENUE, instrument, cols["timestamp"], contracts=base,
                    contract_size=[1.0] * n, size_unit=["base"] * n, base=base, quote=cols["sumOpenInterestValue"])


def parse_price_klines(body: Any, instrument: str, ctx: Page | None = None) -> pl.DataFrame:
    """`markPriceKlines` / `indexPriceKlines` 1-minute arrays → price bars (open, high, low, close)."""
    return parse_klines(body, instrument, ctx, venue=VENUE, kind=PriceKline).select(list(PRICE_BARS_SCHEMA))


def parse_ticker(book: Any, premium: Any, stats: Any, instrument: str,
                 pages: tuple[Page | None, Page | None, Page | None] = (None, None, None)) -> pl.DataFrame:
    """`ticker/bookTicker`, `premiumIndex` and `ticker/24hr` of one instrument → one tickers row
    (ts = the latest of their times)."""
    book_ctx, premium_ctx, stats_ctx = (_ctx(instrument, page) for page in pages)
    book = _json(book, dict, "bookTicker", book_ctx)
    premium = _json(premium, dict, "premiumIndex", premium_ctx)
    stats = _json(stats, dict, "24hr ticker", stats_ctx)
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
