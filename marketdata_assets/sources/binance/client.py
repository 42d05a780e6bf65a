"""The Binance spot REST client, `BinanceClient`: its endpoints, the paging of trades and klines, the
request weights (`LIMITS`, `depth_weight`), the error table (`ERRORS`) and bans (`ban_until`); USD-M's
`futures_client.BinanceFuturesClient` builds on it. docs/ticks.md ("Binance spot REST") has the paging, the
trade-id refill, weights and bans."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from typing import Any, ClassVar

import polars as pl

from marketdata_assets.core.http import (
    ApiClient,
    ErrorTable,
    Limits,
    Page,
    SourcePermissionError,
    describe_request,
)
from marketdata_assets.datasets.frames import as_utc, ceil_ms, day_of, epoch_to_us, floor_ms, from_us, to_us
from marketdata_assets.datasets.instruments import Instrument
from marketdata_assets.datasets.volumes import Volume
from marketdata_assets.datasets.wire import DropCounts, finish_bars, finish_trades, record_of
from marketdata_assets.sources.binance import reference
from marketdata_assets.sources.binance.records import AGG_TRADE_PAGES, DepthSnapshot
from marketdata_assets.sources.binance.rest import (
    VENUE,
    parse_agg_trades,
    parse_depth,
    parse_klines,
    parse_ticker_24hr,
    parse_trades,
)
from marketdata_assets.sources.interface import VENUE_BASICS

DEFAULT_BASE_URL = "https://api.binance.com"
MAX_WINDOW = timedelta(hours=1)
DEPTH_LIMITS = (5, 10, 20, 50, 100, 500, 1000, 5000)

LIMITS = Limits(
    requests_per_minute=1200,
    max_concurrency=4,
    weight_per_window=6000,
    weight_window_s=60.0,
    weight_headroom=0.9,
    weight_header="X-MBX-USED-WEIGHT-1M",
    weights={
        "/api/v3/aggTrades": 4,
        "/api/v3/trades": 25,
        "/api/v3/historicalTrades": 25,
        "/api/v3/klines": 2,
        "/api/v3/ticker/24hr": 2,
        "/api/v3/exchangeInfo": 20,
    },
    # depth: depth_weight(limit)
)
ERRORS = ErrorTable(
    broad=(("banned until", "banned"),),
    exact={
        "-1003": "rate_limited",
        "-1121": "not_found",
        "-1100": "rejected",
        "-1102": "rejected",
        # DISCONNECTED, SERVER_BUSY, TIMEOUT, overloaded: "please try again"
        "-1001": "retry",
        "-1004": "retry",
        "-1007": "retry",
        "-1008": "retry",
    },
    status={418: "banned"},
)
WAF = (
    "an HTML page instead of JSON: Binance's web application firewall (WAF) blocked the request; check the "
    "request rate and pattern, and the IP/region; not retried"
)

_BANNED_UNTIL = re.compile(r"banned until (\d{10,17})", re.IGNORECASE)


def depth_weight(limit: int) -> int:
    if limit <= 100:
        return 5
    if limit <= 500:
        return 25
    if limit <= 1000:
        return 50
    return 250


def ban_until(message: str) -> datetime | None:
    match = _BANNED_UNTIL.search(message or "")
    return from_us(epoch_to_us(int(match.group(1)))) if match else None


class BinanceClient(ApiClient):
    """Binance spot market data. `time_unit="MICROSECOND"` asks for microsecond timestamps."""

    api_name = "Binance"
    name = VENUE
    ERRORS = ERRORS
    LIMITS = LIMITS
    DATASETS: ClassVar[dict[str, str]] = dict(VENUE_BASICS)
    # the venue's paths and limits (BinanceFuturesClient: USD-M's)
    AGG_TRADES = "/api/v3/aggTrades"
    HISTORICAL_TRADES = "/api/v3/historicalTrades"
    KLINES = "/api/v3/klines"
    DEPTH = "/api/v3/depth"
    EXCHANGE_INFO = reference.SPOT_PATH
    TICKER_24HR = "/api/v3/ticker/24hr"
    DEPTH_LIMITS: ClassVar[tuple[int, ...]] = DEPTH_LIMITS
    KLINE_LIMIT = 1000  # the most klines one request answers

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        weight_limit: int | None = None,
        weight_window_s: float | None = None,
        weight_headroom: float | None = None,
        time_unit: str | None = None,
        page_limit: int = 1000,
        headers: dict[str, str] | None = None,
        **kwargs,
    ):
        headers = dict(headers or {})
        if time_unit:
            if time_unit.upper() not in ("MILLISECOND", "MICROSECOND"):
                raise ValueError("time_unit: MILLISECOND or MICROSECOND")
            headers["X-MBX-TIME-UNIT"] = time_unit.upper()
        super().__init__(
            base_url,
            headers=headers,
            weight_per_window=weight_limit,
            weight_window_s=weight_window_s,
            weight_headroom=weight_headroom,
            **kwargs,
        )
        if not 1 <= page_limit <= 1000:
            raise ValueError("page_limit: 1..1000")
        self.page_limit = page_limit
        self.dropped = DropCounts()
        self.quotes: dict[str, str] = {}  # symbol -> its quote asset, from the last `listing`

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

    async def _get(
        self,
        path: str,
        params: dict[str, Any],
        *,
        instrument: str,
        day,
        weight: int | None = None,
        time_unit: str | None = None,
    ):
        page = Page(self.name, instrument, day, describe_request("GET", path, params))
        extra: dict[str, Any] = {"_weight": weight} if weight is not None else {}
        if time_unit:
            extra["headers"] = {"X-MBX-TIME-UNIT": time_unit}
        if path == self.AGG_TRADES:  # decoded straight into AggTrade records
            extra["decode"] = AGG_TRADE_PAGES
        return await self.call("GET", path, page=page, params=params, **extra), page

    # ---- the instrument master (reference.py) -----------------------------------------------

    async def listing(self) -> list[Instrument]:
        """Every symbol exchangeInfo lists now (a delisted one is absent: the archive's listing has it)."""
        body, page = await self._get(self.EXCHANGE_INFO, {}, instrument="exchangeInfo", day=None)
        listed = reference.instruments_of(self.name, body, page)
        self.quotes = {item.instrument: item.quote for item in listed}  # the volumes' units
        return listed

    async def volumes(self, taken: datetime) -> list[Volume]:
        """Every symbol's 24 h volume in its quote asset, stamped `taken`: one `ticker/24hr` without a symbol
        (weight 80 spot, 40 USD-M); each symbol's quote asset from exchangeInfo (`listing`, asked first if
        this client has not listed yet)."""
        if not self.quotes:
            await self.listing()
        body, page = await self._get(
            self.TICKER_24HR,
            {},
            instrument="ticker/24hr",
            day=None,
            weight=reference.ALL_TICKERS_WEIGHT[self.name],
        )
        return reference.volumes_of(self.name, body, taken, page, self.quotes)

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
                params = {
                    "symbol": instrument,
                    "startTime": floor_ms(cursor),
                    "endTime": ceil_ms(window_end) - 1,
                    "limit": self.page_limit,
                }
                body, page = await self._get(
                    self.AGG_TRADES, params, instrument=instrument, day=day_of(cursor)
                )
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

    async def agg_trades_by_id(
        self,
        instrument: str,
        first_id: int,
        last_id: int,
        *,
        day: date | None = None,
        time_unit: str | None = None,
    ) -> pl.DataFrame:
        """Aggregate trades with first_id <= a <= last_id (`aggTrades?fromId=`); `day` names the
        slice in errors."""
        return await self._by_id(
            self.AGG_TRADES, parse_agg_trades, instrument, first_id, last_id, day, time_unit
        )

    async def trades_by_id(
        self,
        instrument: str,
        first_id: int,
        last_id: int,
        *,
        day: date | None = None,
        time_unit: str | None = None,
    ) -> pl.DataFrame:
        """Individual trades with first_id <= id <= last_id (`historicalTrades?fromId=`)."""
        return await self._by_id(
            self.HISTORICAL_TRADES, parse_trades, instrument, first_id, last_id, day, time_unit
        )

    async def _by_id(
        self,
        path: str,
        parse,
        instrument: str,
        first_id: int,
        last_id: int,
        day: date | None,
        time_unit: str | None,
    ) -> pl.DataFrame:
        frames: list[pl.DataFrame] = []
        from_id = first_id
        while from_id <= last_id:
            params = {
                "symbol": instrument,
                "fromId": from_id,
                "limit": min(self.page_limit, last_id - from_id + 1),
            }
            body, page = await self._get(path, params, instrument=instrument, day=day, time_unit=time_unit)
            frame = parse(body, instrument, page, self.name)
            if frame.height == 0:
                break
            if int(frame["seq"].min()) < from_id:
                raise page.error(
                    f"{path.rsplit('/', 1)[-1]} page for fromId={from_id} starts at id "
                    f"{int(frame['seq'].min())}"
                )
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
        body, page = await self._get(
            self.DEPTH,
            {"symbol": instrument, "limit": limit},
            instrument=instrument,
            day=day_of(datetime.now().astimezone()),
            weight=self.depth_weight(limit),
        )
        return self._parse_book(body, instrument, page).filter(pl.col("level") < depth)

    async def depth_body(self, instrument: str, limit: int = 1000) -> dict:
        """The `depth` answer as sent (lastUpdateId, bids/asks as the venue's strings): what a live
        book starts from (sources/binance/stream.py DepthSync), exact strings kept."""
        limit = next((x for x in self.DEPTH_LIMITS if x >= limit), self.DEPTH_LIMITS[-1])
        body, page = await self._get(
            self.DEPTH,
            {"symbol": instrument, "limit": limit},
            instrument=instrument,
            day=day_of(datetime.now().astimezone()),
            weight=self.depth_weight(limit),
        )
        record_of(DepthSnapshot, body, "depth", page)  # its update id and sides as declared
        return body

    def _parse_book(self, body: Any, instrument: str, page: Page) -> pl.DataFrame:
        return parse_depth(body, instrument, datetime.now().astimezone(), page, self.name)

    # ---- tickers ----------------------------------------------------------------------------

    async def tickers(self, instrument: str) -> pl.DataFrame:
        """`/api/v3/ticker/24hr?symbol=`: last, best bid/ask and the rolling 24 hours' volumes
        (ts = closeTime, see the module doc)."""
        body, page = await self._get(
            self.TICKER_24HR,
            {"symbol": instrument},
            instrument=instrument,
            day=day_of(datetime.now().astimezone()),
        )
        return parse_ticker_24hr(body, instrument, page, self.name)

    # ---- bars -------------------------------------------------------------------------------

    async def bars_1m(self, instrument: str, start: datetime, end: datetime) -> pl.DataFrame:
        start, end = as_utc(start), as_utc(end)
        frames = await self._kline_pages(self.KLINES, {"symbol": instrument}, instrument, start, end)
        return finish_bars(frames, start, end, self.dropped.of(instrument))

    async def _kline_pages(
        self, path: str, params: dict[str, Any], instrument: str, start: datetime, end: datetime
    ) -> list[pl.DataFrame]:
        """The 1-minute klines of `path` (`params` name the instrument) opening in [start, end),
        paged forward by `startTime` = last open + 1 ms, as bars frames (every kline checked)."""
        frames: list[pl.DataFrame] = []
        limit = min(self.page_limit, self.KLINE_LIMIT)
        cursor_ms, end_ms = ceil_ms(start), ceil_ms(end)
        while cursor_ms < end_ms:
            query = {
                **params,
                "interval": "1m",
                "startTime": cursor_ms,
                "endTime": end_ms - 1,
                "limit": limit,
            }
            body, page = await self._get(
                path,
                query,
                instrument=instrument,
                day=day_of(from_us(cursor_ms * 1000)),
                weight=self.kline_weight(limit),
            )
            frame = parse_klines(body, instrument, page, venue=self.name)
            if frame.height == 0:
                break
            frames.append(frame)
            last_ms = to_us(frame["ts"].max()) // 1000
            if frame.height < limit or last_ms + 1 <= cursor_ms:
                break
            cursor_ms = last_ms + 1
        return frames


__all__ = ["ERRORS", "LIMITS", "BinanceClient", "ban_until", "depth_weight"]
