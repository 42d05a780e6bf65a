"""The Binance USD-M futures REST client, `BinanceFuturesClient` (`https://fapi.binance.com`, venue
BINANCE_UM): spot's client over `/fapi/v1` with USD-M's paths, weights (`LIMITS`) and reach (`USD_M_REACH`),
and tickers, funding, open interest, mark and index price bars. What each endpoint answers, weighs and
reaches: docs/crypto-datasets.md, "Binance USD-M REST"."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import polars as pl

from marketdata_assets.core.http import Page, SourceDataError
from marketdata_assets.datasets.frames import PRICE_BARS_SCHEMA, as_utc, ceil_ms, day_of, from_us, to_us
from marketdata_assets.datasets.wire import finish
from marketdata_assets.sources.binance.client import ERRORS, BinanceClient
from marketdata_assets.sources.binance.client import LIMITS as SPOT_LIMITS
from marketdata_assets.sources.binance.futures import (
    FUNDING_HOURS,
    VENUE,
    parse_funding,
    parse_funding_info,
    parse_open_interest,
    parse_ticker,
)
from marketdata_assets.sources.binance.naming import pair_of
from marketdata_assets.sources.binance.rest import parse_depth
from marketdata_assets.sources.interface import HISTORY, VENUE_BASICS, Reach, span_text

DEFAULT_BASE_URL = "https://fapi.binance.com"
DEPTH_LIMITS = (5, 10, 20, 50, 100, 500, 1000)
TRADES_REACH = timedelta(hours=48)
OPEN_INTEREST_REACH = timedelta(days=30)
DOCS = "https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api/"
USD_M_REACH: dict[str, Reach] = {  # what the docs say, and where older days come from
    "trades": Reach(
        TRADES_REACH,
        "data.binance.vision archives (market um): individual trades into `trades`, "
        "aggregate trades into `agg_trades`",
        DOCS + "Compressed-Aggregate-Trades-List",
        ("binance_archive_trades", "binance_archive_agg_trades"),
    ),
    "open_interest": Reach(
        OPEN_INTEREST_REACH,
        "nowhere in this project (data.binance.vision's um `metrics` files hold it: not loaded)",
        DOCS + "Open-Interest-Statistics",
    ),
}
OI_PERIOD, OI_PERIOD_MS = "5m", 300_000

LIMITS = dataclasses.replace(  # spot's request limit and weight header, its own weights
    SPOT_LIMITS,
    weight_per_window=2400,
    # klines, mark/index klines and depth: by limit (kline_weight, depth_weight). fundingRate has no
    # weight of its own in the docs (a request limit instead): counted as 1 [inferred].
    weights={
        "/fapi/v1/aggTrades": 20,
        "/fapi/v1/historicalTrades": 200,
        "/fapi/v1/ticker/24hr": 1,
        "/fapi/v1/ticker/bookTicker": 2,
        "/fapi/v1/premiumIndex": 1,
        "/fapi/v1/fundingRate": 1,
        "/fapi/v1/fundingInfo": 0,
        "/futures/data/openInterestHist": 0,
        "/fapi/v1/exchangeInfo": 1,
    },
    # fundingRate and fundingInfo share 500 requests / 5 min; openInterestHist has 1000 / 5 min
    endpoint_limits={"/fapi/v1/funding": (500, 300.0), "/futures/data/openInterestHist": (1000, 300.0)},
)


class BinanceFuturesClient(BinanceClient):
    """Binance USD-M futures market data (venue BINANCE_UM). `clock` (default: the wall clock, UTC)
    is what `trades_reach` / `open_interest_reach` count back from; None turns a reach off."""

    api_name = "Binance USD-M"
    metrics_source = "binance"
    name = VENUE
    ERRORS = ERRORS
    LIMITS = LIMITS
    DATASETS: ClassVar[dict[str, str]] = {
        **VENUE_BASICS,
        "funding": HISTORY,
        "open_interest": HISTORY,
        "mark_bars_1m": HISTORY,
        "index_bars_1m": HISTORY,
    }
    REACH: ClassVar[dict[str, Reach]] = USD_M_REACH
    AGG_TRADES = "/fapi/v1/aggTrades"
    HISTORICAL_TRADES = "/fapi/v1/historicalTrades"
    KLINES = "/fapi/v1/klines"
    DEPTH = "/fapi/v1/depth"
    EXCHANGE_INFO = "/fapi/v1/exchangeInfo"
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

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        trades_reach: timedelta | None = TRADES_REACH,
        open_interest_reach: timedelta | None = OPEN_INTEREST_REACH,
        clock: Callable[[], datetime] | None = None,
        **kwargs,
    ):
        if kwargs.get("time_unit"):
            raise ValueError("time_unit: USD-M answers milliseconds (X-MBX-TIME-UNIT is a spot header)")
        super().__init__(base_url, **kwargs)
        self.trades_reach, self.open_interest_reach = trades_reach, open_interest_reach
        self.clock = clock or (lambda: datetime.now(UTC))
        self._intervals: dict[str, float] | None = None
        self._intervals_lock = asyncio.Lock()

    def depth_weight(self, limit: int) -> int:
        return 2 if limit <= 50 else 5 if limit <= 100 else 10 if limit <= 500 else 20

    def kline_weight(self, limit: int) -> int:
        return 1 if limit < 100 else 2 if limit < 500 else 5 if limit <= 1000 else 10

    def _parse_book(self, body: Any, instrument: str, page: Page) -> pl.DataFrame:
        return parse_depth(body, instrument, None, page, self.name, stamp="T")

    def _within_reach(
        self, instrument: str, start: datetime, reach: timedelta | None, what: str, path: str
    ) -> None:
        """A window starting before the venue's history does is refused: no partial day is stored."""
        if reach is None:
            return
        oldest = as_utc(self.clock()) - reach
        if start < oldest:
            raise SourceDataError(
                instrument,
                day_of(start),
                f"Binance USD-M serves {what} of the last {span_text(reach)} only ({path}); the window "
                f"starts {start.isoformat()}, before {oldest.isoformat(timespec='seconds')}: not fetched",
                source=self.name,
            )

    # ---- trades, tickers ----------------------------------------------------------------------

    async def trades(self, instrument: str, start: datetime, end: datetime) -> pl.DataFrame:
        """Aggregate trades with start <= ts < end (spot's paging); only within `trades_reach`."""
        self._within_reach(instrument, as_utc(start), self.trades_reach, "aggregate trades", self.AGG_TRADES)
        return await super().trades(instrument, start, end)

    async def tickers(self, instrument: str) -> pl.DataFrame:
        """bookTicker + premiumIndex + 24hr ticker (3 requests, weight 4) → one tickers row."""
        day = day_of(datetime.now(UTC))
        paths = (self.BOOK_TICKER, self.PREMIUM_INDEX, self.TICKER_24HR)
        answers = await asyncio.gather(
            *(self._get(path, {"symbol": instrument}, instrument=instrument, day=day) for path in paths)
        )
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
            body, page = await self._get(
                self.FUNDING_RATE, params, instrument=instrument, day=day_of(from_us(cursor_ms * 1000))
            )
            frame = parse_funding(body, instrument, hours, page)
            if frame.height == 0:
                break
            first_ms = to_us(frame["ts"].min()) // 1000
            if first_ms < cursor_ms:
                raise page.error(
                    f"fundingRate page for startTime={cursor_ms} starts earlier, at fundingTime={first_ms}"
                )
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
        self._within_reach(
            instrument, start, self.open_interest_reach, "open interest history", self.OPEN_INTEREST_HIST
        )
        frames: list[pl.DataFrame] = []
        limit = min(self.page_limit, 500)
        cursor_ms, end_ms = ceil_ms(start), ceil_ms(end)
        while cursor_ms < end_ms:
            window_end = min(end_ms, cursor_ms + limit * OI_PERIOD_MS)
            params = {
                "symbol": instrument,
                "period": OI_PERIOD,
                "startTime": cursor_ms,
                "endTime": window_end - 1,
                "limit": limit,
            }
            body, page = await self._get(
                self.OPEN_INTEREST_HIST, params, instrument=instrument, day=day_of(from_us(cursor_ms * 1000))
            )
            frames.append(parse_open_interest(body, instrument, page))
            cursor_ms = window_end
        return finish("open_interest", frames, start, end, self.dropped.of(instrument))

    # ---- mark and index price bars ----------------------------------------------------------------

    async def mark_bars_1m(self, instrument: str, start: datetime, end: datetime) -> pl.DataFrame:
        return await self._price_bars(
            "mark_bars_1m", self.MARK_KLINES, {"symbol": instrument}, instrument, start, end
        )

    async def index_bars_1m(self, instrument: str, start: datetime, end: datetime) -> pl.DataFrame:
        return await self._price_bars(
            "index_bars_1m", self.INDEX_KLINES, {"pair": pair_of(instrument)}, instrument, start, end
        )

    async def _price_bars(
        self, dataset: str, path: str, params: dict[str, Any], instrument: str, start: datetime, end: datetime
    ) -> pl.DataFrame:
        start, end = as_utc(start), as_utc(end)
        frames = await self._kline_pages(path, params, instrument, start, end)
        return finish(
            dataset,
            [frame.select(list(PRICE_BARS_SCHEMA)) for frame in frames],
            start,
            end,
            self.dropped.of(instrument),
        )


__all__ = ["LIMITS", "BinanceFuturesClient"]
