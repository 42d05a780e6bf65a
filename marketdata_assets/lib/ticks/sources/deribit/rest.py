"""Deribit v2 public market data (JSON-RPC over HTTP GET `/api/v2/public/<method>`).

Formats: `{jsonrpc, id, result, usIn, usOut, usDiff, testnet}`; usIn/usOut in microseconds, trade
timestamps in milliseconds; numbers are JSON numbers.

- `get_last_trades_by_instrument_and_time` (start_timestamp, end_timestamp — both inclusive —,
  count ≤ 1000, sorting=asc) → `result: {trades: [{trade_seq, trade_id ("ETH-284830839" for ETH,
  digits for BTC), timestamp, tick_direction, direction, price, amount, mark_price, index_price,
  instrument_name, ...}], has_more}`. Paging: while `has_more`, the next page starts AT the last
  timestamp seen (it may hold more trades of that millisecond) and the trades of that millisecond
  already seen are dropped by trade_id (counted as `duplicates`). A page made entirely of one millisecond cannot move the
  start: the client then pages by `trade_seq` (`get_last_trades_by_instrument?start_seq=`).
  By sequence range (the trade-id refill, lib.ticks.continuity): `trades_by_seq` pages
  `get_last_trades_by_instrument?start_seq=&end_seq=` (trade_seq: "the sequence number of the
  trade within instrument").
- `get_order_book` → `result: {timestamp, change_id, bids: [[price, amount]], asks, stats, ...}`.
- `get_tradingview_chart_data` (resolution=1) → parallel arrays `ticks, open, high, low, close,
  volume (base), cost (quote)`, `status` "ok" | "no_data" (any other is an error); trades = null.

A time in seconds, a price or amount that is not positive, a bar that cannot be true are errors
naming the instrument and request; rows dropped are counted by reason in `dropped` (`figures()`).

Amounts: inverse contracts (BTC-PERPETUAL, ETH-PERPETUAL, BTC-27DEC24: no "_" in the currency and
no strike) trade in USD: quantity = amount / price (base units), amount = the USD amount. Linear
ones (BTC_USDC-PERPETUAL) and options trade in base units: quantity = amount, amount = price * amount.

Limits (`LIMITS`): public methods cost credits that refill at about 20 requests a second: 1200 a
minute. Errors (`ERRORS`, read from `{"error": {"code", "message", "data": {reason, param}}}`):
10028 too_many_requests (HTTP 429, or 400) is waited out and retried like a 429; 10040 ("retry")
and 13888 (timed_out) are retried; 13009/13021 (unauthorized/forbidden) → SourcePermissionError;
any other code → SourceRequestError with code, message and `data.reason`/`data.param`.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any, ClassVar

import polars as pl

from marketdata_assets.lib.http import (
    ApiClient,
    ErrorTable,
    Limits,
    Page,
    SourceNotFound,
    SourcePermissionError,
    SourceRequestError,
    describe_request,
)
from marketdata_assets.lib.ticks.contracts import contract_of
from marketdata_assets.lib.ticks.frames import (
    BarColumns,
    DropCounts,
    TradeColumns,
    as_utc,
    book_frame,
    book_levels,
    ceil_ms,
    check_bar,
    day_of,
    epoch_us,
    field,
    finish_bars,
    finish_trades,
    floor_ms,
    from_us,
    integer,
    not_negative,
    note_conversion,
    number,
    positive,
    to_us,
)
from marketdata_assets.lib.ticks.sources import HISTORY, SNAPSHOT

VENUE = "DERIBIT"
DEFAULT_BASE_URL = "https://www.deribit.com"
LIMITS = Limits(requests_per_minute=1200, max_concurrency=8)
ERRORS = ErrorTable(exact={
    "10028": "rate_limited",  # too_many_requests (HTTP 429, or 400)
    "10040": "retry",  # "retry": the request cannot be processed now and should be retried
    "13888": "retry",  # timed_out
    "13028": "retry",  # temporarily_unavailable
    "11094": "retry",  # internal_server_error
    "10066": "rate_limited",  # too_many_concurrent_requests
    "10020": "not_found",  # invalid_or_unsupported_instrument
    "13009": "permission",  # unauthorized
    "13021": "permission",  # forbidden
})
BOOK_DEPTHS = (1, 5, 10, 20, 50, 100, 1000, 10000)
CHART_WINDOW = timedelta(minutes=1000)


def is_inverse(instrument: str) -> bool:
    """BTC-PERPETUAL / BTC-27DEC24 (USD amounts) vs BTC_USDC-PERPETUAL and options (base amounts);
    ValueError for a name of no Deribit shape (lib.ticks.contracts)."""
    return contract_of(VENUE, instrument).inverse


INVERSE_CONVERSION = "quantity USD amount -> coin (amount / price)"


def base_and_quote(instrument_inverse: bool, price: float, amount: float) -> tuple[float, float]:
    if instrument_inverse:
        return amount / price, amount
    return amount, price * amount


# --------------------------------------------------------------------------------------------
# Parsers
# --------------------------------------------------------------------------------------------

def _result(body: Any, ctx: Page) -> Any:
    if not isinstance(body, dict):
        raise ctx.error(f"expected a JSON-RPC object, got {type(body).__name__} {str(body)[:120]!r}")
    if "error" in body:
        raise ctx.error(f"JSON-RPC error where a result was expected: {str(body['error'])[:200]}")
    return field(body, "result", "JSON-RPC response", ctx)


def parse_trades(body: Any, instrument: str, ctx: Page | None = None) -> tuple[pl.DataFrame, bool]:
    """A get_last_trades_by_instrument[_and_time] response → (trades frame, has_more)."""
    ctx = ctx or Page(VENUE, instrument)
    result = _result(body, ctx)
    trades = field(result, "trades", "result", ctx)
    has_more = field(result, "has_more", "result", ctx)
    if not isinstance(trades, list):
        raise ctx.error(f"result.trades is {type(trades).__name__}, not an array")
    if not isinstance(has_more, bool):
        raise ctx.error(f"result.has_more is {has_more!r}, not true/false")
    inverse = is_inverse(instrument)
    if inverse and trades:
        note_conversion(instrument, INVERSE_CONVERSION)
    cols = TradeColumns()
    for i, record in enumerate(trades):
        what = f"trade #{i}"
        trade_id = field(record, "trade_id", what, ctx)
        if not isinstance(trade_id, str) or not trade_id:
            raise ctx.error(f"{what} trade_id is {trade_id!r}, not a string id")
        what = f"trade {trade_id}"
        inst = record.get("instrument_name", instrument)
        if inst != instrument:
            raise ctx.error(f"{what} is for {inst!r}, not {instrument}")
        seq = integer(field(record, "trade_seq", what, ctx), f"{what} trade_seq", ctx)
        ts = epoch_us(field(record, "timestamp", what, ctx), f"{what} timestamp", ctx)
        price = positive(number(field(record, "price", what, ctx), f"{what} price", ctx), what, ctx)
        amount = positive(number(field(record, "amount", what, ctx), f"{what} amount", ctx), what, ctx, "amount")
        direction = field(record, "direction", what, ctx)
        if direction not in ("buy", "sell"):
            raise ctx.error(f"{what} direction is {direction!r}, not buy/sell")
        quantity, quote = base_and_quote(inverse, price, amount)
        cols.add(ts, trade_id, price, quantity, quote, direction, seq)
    return cols.frame(VENUE, instrument), has_more


def parse_order_book(body: Any, instrument: str, ctx: Page | None = None) -> pl.DataFrame:
    """get_order_book → books frame (ts = result.timestamp, update_id = change_id)."""
    ctx = ctx or Page(VENUE, instrument)
    result = _result(body, ctx)
    ts = epoch_us(field(result, "timestamp", "order book", ctx), "order book timestamp", ctx)
    change_id = field(result, "change_id", "order book", ctx)
    update_id = integer(change_id, "order book change_id", ctx) if change_id is not None else None
    inverse = is_inverse(instrument)
    bids, asks = (book_levels(field(result, side, "order book", ctx), side, ctx, what="order book",
                              shape="[price, amount] pair", price="price", size="amount",
                              base=lambda price, amount: base_and_quote(inverse, price, amount)[0])
                  for side in ("bids", "asks"))
    return book_frame(VENUE, instrument, ts, update_id, bids, asks)


def parse_chart(body: Any, instrument: str, ctx: Page | None = None) -> pl.DataFrame:
    """get_tradingview_chart_data → bars frame (volume = base, amount = cost)."""
    ctx = ctx or Page(VENUE, instrument)
    result = _result(body, ctx)
    status = field(result, "status", "chart", ctx)
    if status == "no_data":
        return BarColumns().frame(VENUE, instrument)
    if status != "ok":
        raise ctx.error(f"chart status is {status!r}, not \"ok\" or \"no_data\"")
    keys = ("ticks", "open", "high", "low", "close", "volume", "cost")
    arrays = [field(result, key, "chart", ctx) for key in keys]
    for key, array in zip(keys, arrays):
        if not isinstance(array, list):
            raise ctx.error(f"chart {key} is {type(array).__name__}, not an array")
    lengths = {len(a) for a in arrays}
    if len(lengths) != 1:
        raise ctx.error(f"chart arrays differ in length: {dict(zip(keys, map(len, arrays)))}")
    cols = BarColumns()
    for i, tick in enumerate(arrays[0]):
        ts = epoch_us(tick, f"chart ticks[{i}]", ctx)
        what = f"bar {from_us(ts).strftime('%Y-%m-%d %H:%M:%S')}"
        o, h, lo, c, v, cost = (number(arrays[k][i], f"{what} {keys[k]}", ctx) for k in range(1, 7))
        check_bar(what, ctx, ts, o, h, lo, c, v)
        not_negative(cost, f"{what} cost", ctx)
        cols.add(ts, o, h, lo, c, v, cost, None)
    return cols.frame(VENUE, instrument)


# --------------------------------------------------------------------------------------------
# The client
# --------------------------------------------------------------------------------------------

class DeribitClient(ApiClient):
    """Deribit public API (limits and errors: `LIMITS`, `ERRORS`)."""

    api_name = "Deribit"
    name = VENUE
    ERRORS = ERRORS
    LIMITS = LIMITS
    DATASETS: ClassVar[dict[str, str]] = {"trades": HISTORY, "bars_1m": HISTORY, "books": SNAPSHOT}

    def __init__(self, base_url: str = DEFAULT_BASE_URL, *, page_size: int = 1000, **kwargs):
        super().__init__(base_url, **kwargs)
        if not 1 <= page_size <= 1000:
            raise ValueError("page_size: 1..1000")
        self.page_size = page_size
        self.dropped = DropCounts()

    def figures(self) -> dict[str, Any]:
        return {**super().figures(), **self.dropped.figures()}

    # ---- what Deribit's answers mean --------------------------------------------------------

    def error_fields(self, payload: Any) -> tuple[Any, str] | None:
        error = payload.get("error") if isinstance(payload, dict) else None
        if not isinstance(error, dict):
            return None
        data = error.get("data") or {}
        extra = ", ".join(f"{k}={v}" for k, v in data.items()) if isinstance(data, dict) else str(data)
        return error.get("code"), f"{error.get('message')}" + (f" ({extra})" if extra else "")

    def make_error(self, kind, *, status, code, message, page):
        """The errors name the venue (DERIBIT), as its data errors do."""
        if kind in ("permission", "unauthorized"):
            detail = f"code {code}: {message}" if code is not None else message
            return SourcePermissionError(VENUE, status, detail, request=page.request)
        if kind in ("rejected", "not_found"):
            cls = SourceNotFound if kind == "not_found" else SourceRequestError
            return cls(VENUE, page.instrument, status, code, message, request=page.request)
        return super().make_error(kind, status=status, code=code, message=message, page=page)

    async def _public(self, method: str, params: dict[str, Any], *, instrument: str,
                      day: date | None) -> tuple[Any, Page]:
        path = f"/api/v2/public/{method}"
        page = Page(VENUE, instrument, day, describe_request("GET", path, params))
        return await self.call("GET", path, page=page, params=params), page

    # ---- trades, book, bars -----------------------------------------------------------------

    async def trades(self, instrument: str, start: datetime, end: datetime) -> pl.DataFrame:
        start, end = as_utc(start), as_utc(end)
        if end <= start:
            return finish_trades([])
        end_ms = ceil_ms(end) - 1  # inclusive on the venue
        cursor = floor_ms(start)
        frames: list[pl.DataFrame] = []
        while True:
            params = {"instrument_name": instrument, "start_timestamp": cursor, "end_timestamp": end_ms,
                      "count": self.page_size, "sorting": "asc"}
            body, ctx = await self._public("get_last_trades_by_instrument_and_time", params, instrument=instrument,
                                           day=day_of(from_us(cursor * 1000)))
            page, has_more = parse_trades(body, instrument, ctx)
            frames.append(page)  # the trades of the millisecond `cursor` seen again: dropped (and counted) at the end
            if not has_more or page.height == 0:
                break
            last_ms = to_us(page["ts"].max()) // 1000
            if last_ms <= cursor:
                # One millisecond fills the page: moving the start cannot progress, page by sequence.
                frames.extend(await self._trades_by_seq(instrument, int(page["seq"].max()) + 1, end_ms,
                                                        day_of(from_us(cursor * 1000))))
                break
            cursor = last_ms
        return finish_trades(frames, start, end, self.dropped.of(instrument), paged="forward")

    async def trades_by_seq(self, instrument: str, first_seq: int, last_seq: int, *,
                            day: date | None = None) -> pl.DataFrame:
        """Trades with first_seq <= trade_seq <= last_seq; `day` names the slice in errors."""
        frames = await self._trades_by_seq(instrument, first_seq, None, day, last_seq)
        frame = finish_trades(frames, drops=self.dropped.of(instrument))
        inside = frame.filter(pl.col("seq").is_between(first_seq, last_seq))
        self.dropped.of(instrument)["past_window_edge"] += frame.height - inside.height
        return inside

    async def _trades_by_seq(self, instrument: str, start_seq: int, end_ms: int | None,
                             day: date | None, end_seq: int | None = None) -> list[pl.DataFrame]:
        """Pages from `start_seq` until one passes `end_ms` (or reaches `end_seq`, asked as end_seq)."""
        frames = []
        while True:
            params = {"instrument_name": instrument, "start_seq": start_seq, "count": self.page_size,
                      "sorting": "asc"}
            if end_seq is not None:
                params.update(end_seq=end_seq, count=max(1, min(self.page_size, end_seq - start_seq + 1)))
            body, ctx = await self._public("get_last_trades_by_instrument", params, instrument=instrument, day=day)
            page, has_more = parse_trades(body, instrument, ctx)
            if page.height:
                day = day_of(page["ts"].max())
            frames.append(page)
            if page.height == 0 or not has_more or (end_ms is not None and to_us(page["ts"].max()) // 1000 > end_ms):
                return frames
            next_seq = int(page["seq"].max()) + 1
            if next_seq <= start_seq:
                raise ctx.error(f"trades by sequence from {start_seq} did not advance")
            if end_seq is not None and next_seq > end_seq:
                return frames
            start_seq = next_seq

    async def book_snapshot(self, instrument: str, depth: int = 20) -> pl.DataFrame:
        venue_depth = next((d for d in BOOK_DEPTHS if d >= depth), BOOK_DEPTHS[-1])
        body, ctx = await self._public("get_order_book", {"instrument_name": instrument, "depth": venue_depth},
                                       instrument=instrument, day=day_of(datetime.now().astimezone()))
        return parse_order_book(body, instrument, ctx).filter(pl.col("level") < depth)

    async def bars_1m(self, instrument: str, start: datetime, end: datetime) -> pl.DataFrame:
        start, end = as_utc(start), as_utc(end)
        frames: list[pl.DataFrame] = []
        cursor = start
        while cursor < end:
            window_end = min(cursor + CHART_WINDOW, end)
            params = {"instrument_name": instrument, "start_timestamp": ceil_ms(cursor),
                      "end_timestamp": ceil_ms(window_end) - 1, "resolution": "1"}
            body, ctx = await self._public("get_tradingview_chart_data", params, instrument=instrument,
                                           day=day_of(cursor))
            frames.append(parse_chart(body, instrument, ctx))
            cursor = window_end
        return finish_bars(frames, start, end, self.dropped.of(instrument))


__all__ = ["ERRORS", "LIMITS", "DeribitClient", "is_inverse", "parse_chart", "parse_order_book", "parse_trades"]
