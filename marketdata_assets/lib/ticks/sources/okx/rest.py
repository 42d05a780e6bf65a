"""OKX v5 public market data: history trades, order books, 1-minute history candles.

Formats: the envelope is `{"code": "0", "msg": "", "data": [...]}` and every value is a string,
`ts` included (milliseconds).

- `/api/v5/market/history-trades` → `data: [{instId, side, sz, px, tradeId, ts}]`, newest first;
  `side` is the taker's. Paging: the first page asks `type=2&after=<end ms>` (trades strictly before
  `end`), every later page `type=1&after=<smallest tradeId so far>` (by trade id, so trades sharing
  a millisecond across a page boundary are neither lost nor repeated) until a page reaches
  before `start`. seq = tradeId (numeric, increasing per instrument). By id range (the trade-id
  refill, lib.ticks.continuity): `trades_by_id` asks `type=1&after=<last_id + 1>` and pages back by
  the smallest tradeId seen until it passes `first_id` (trade ids count up by one per instrument:
  the `trades` channel's aggregation says so, "tradeId = 123 and count = 3 ... aggregates the
  trades of tradeId = 123, 122, and 121"); history-trades holds the last 3 months.
- `/api/v5/market/books?sz=N` → `data: [{asks: [[px, sz, "0", numOrders]], bids: [...], ts}]`
  (a `seqId` is read when present: update_id).
- `/api/v5/market/history-candles?bar=1m` → `data: [[ts, o, h, l, c, vol, volCcy, volCcyQuote,
  confirm]]`, newest first; unconfirmed bars (`confirm` "0") are dropped and counted; trades = null.
  A candle carries no interval: one not opening on a minute is an error (a 1H body on minute
  boundaries cannot be told from a sparse 1m one).

A time in seconds, a price or size that is not positive, a bar that cannot be true are errors
naming the instrument and request; rows dropped are counted by reason in `dropped` (`figures()`).

Quantities are base units: spot `sz` already is; for SWAP/FUTURES `sz` counts contracts, so
quantity = sz * ctVal (linear, ctVal in base) or sz * ctVal / px (inverse, ctVal in USD);
`CONTRACT_VALUES` holds the common ones, `contract_values=` adds others.

Limits (`LIMITS`): 20 requests / 2 s per endpoint and IP, so 600 a minute over all of them.
Errors (`ERRORS`; any envelope code but "0" is an error): code 50011 is a rate limit whether it
comes with HTTP 429 or 200 (waited out and retried, like any 429); "busy/unavailable" codes are
retried; 401 is a SourcePermissionError; 51001 (unknown instrument) a SourceNotFound; a 404 with a
NUMERIC code is an unknown path; any other code a SourceRequestError (not retried).
"""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime
from typing import Any, ClassVar

import polars as pl

from marketdata_assets.lib.http import ApiClient, ErrorTable, Limits, Page, describe_request
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
    from_us,
    integer,
    not_negative,
    note_conversion,
    number,
    positive,
    to_us,
)
from marketdata_assets.lib.ticks.sources import HISTORY, SNAPSHOT

VENUE = "OKX"
DEFAULT_BASE_URL = "https://www.okx.com"
MAX_BOOK_DEPTH = 400

LIMITS = Limits(requests_per_minute=600, max_concurrency=8)
ERRORS = ErrorTable(exact={
    "50011": "rate_limited",  # "Too Many Requests" (HTTP 429, or 200)
    "50001": "retry",  # service temporarily unavailable
    "50004": "retry",  # endpoint request timeout
    "50013": "retry",  # systems are busy
    "50026": "retry",  # system error, try again later
    "51001": "not_found",  # instrument ID does not exist
})

# instId -> (contract value, inverse?) for derivatives; linear ctVal in base units, inverse in USD.
CONTRACT_VALUES: dict[str, tuple[float, bool]] = {
    "BTC-USDT-SWAP": (0.01, False), "ETH-USDT-SWAP": (0.1, False), "SOL-USDT-SWAP": (1.0, False),
    "BTC-USD-SWAP": (100.0, True), "ETH-USD-SWAP": (10.0, True),
}


def is_derivative(instrument: str) -> bool:
    """BTC-USDT is spot; BTC-USDT-SWAP, BTC-USD-250328 and options are contracts; ValueError for a
    name of no OKX shape (lib.ticks.contracts)."""
    return contract_of(VENUE, instrument).kind != "spot"


class ContractSizer:
    """sz (and candle vol) → base quantity and quote amount for an instrument."""

    def __init__(self, instrument: str, contract_values: dict[str, tuple[float, bool]] | None = None):
        self.instrument = instrument
        self.derivative = is_derivative(instrument)
        self.value, self.inverse = (1.0, False)
        if self.derivative:
            table = {**CONTRACT_VALUES, **(contract_values or {})}
            if instrument not in table:
                raise ValueError(f"OKX {instrument}: sizes are in contracts and the contract value is unknown; "
                                 f"pass contract_values={{'{instrument}': (ctVal, inverse)}}")
            self.value, self.inverse = table[instrument]

    def base_and_quote(self, price: float, size: float) -> tuple[float, float]:
        if not self.derivative:
            return size, price * size
        if self.inverse:
            quote = size * self.value
            return quote / price, quote
        base = size * self.value
        return base, price * base


# --------------------------------------------------------------------------------------------
# Parsers
# --------------------------------------------------------------------------------------------

def _data(body: Any, ctx: Page) -> list:
    """The `data` array of an envelope (a bare list is accepted too)."""
    if isinstance(body, list):
        return body
    if not isinstance(body, dict):
        raise ctx.error(f"expected the {{code, msg, data}} envelope, got {type(body).__name__} {str(body)[:120]!r}")
    code = body.get("code")
    if code != "0":
        raise ctx.error(f"envelope code {code!r} (msg {body.get('msg')!r}) where \"0\" was expected")
    data = field(body, "data", "envelope", ctx)
    if not isinstance(data, list):
        raise ctx.error(f"envelope data is {type(data).__name__}, not an array")
    return data


def _sizer(instrument: str, contract_values, ctx: Page) -> ContractSizer:
    try:
        sizer = ContractSizer(instrument, contract_values)
    except ValueError as error:
        raise ctx.error(str(error)) from None
    if sizer.derivative:
        note_conversion(instrument, "size contracts -> " + (f"coin (x ctVal {sizer.value:g} USD / price)" if sizer.inverse
                                                             else f"base (x ctVal {sizer.value:g})"))
    return sizer


def parse_history_trades(body: Any, instrument: str, ctx: Page | None = None,
                         contract_values: dict[str, tuple[float, bool]] | None = None) -> pl.DataFrame:
    """history-trades (or trades) envelope → trades frame; trade_id = tradeId, seq = int(tradeId)."""
    ctx = ctx or Page(VENUE, instrument)
    sizer = _sizer(instrument, contract_values, ctx)
    cols = TradeColumns()
    for i, record in enumerate(_data(body, ctx)):
        what = f"trade #{i}"
        trade_id = field(record, "tradeId", what, ctx)
        if not isinstance(trade_id, str) or not trade_id:
            raise ctx.error(f"{what} tradeId is {trade_id!r}, not a string id")
        what = f"trade {trade_id}"
        inst = field(record, "instId", what, ctx)
        if inst != instrument:
            raise ctx.error(f"{what} is for {inst!r}, not {instrument}")
        price = positive(number(field(record, "px", what, ctx), f"{what} px", ctx), what, ctx)
        size = positive(number(field(record, "sz", what, ctx), f"{what} sz", ctx), what, ctx, "size")
        ts = epoch_us(field(record, "ts", what, ctx), f"{what} ts", ctx)
        side = field(record, "side", what, ctx)
        if side not in ("buy", "sell"):
            raise ctx.error(f"{what} side is {side!r}, not buy/sell")
        quantity, amount = sizer.base_and_quote(price, size)
        seq = int(trade_id) if trade_id.isdigit() else None
        cols.add(ts, trade_id, price, quantity, amount, side, seq)
    return cols.frame(VENUE, instrument)


def parse_books(body: Any, instrument: str, ctx: Page | None = None,
                contract_values: dict[str, tuple[float, bool]] | None = None) -> pl.DataFrame:
    """books envelope → books frame (ts from the book's `ts`; update_id = seqId when present)."""
    ctx = ctx or Page(VENUE, instrument)
    sizer = _sizer(instrument, contract_values, ctx)
    data = _data(body, ctx)
    if not data:
        raise ctx.error("books: empty data array")
    book = data[0]
    ts = epoch_us(field(book, "ts", "book", ctx), "book ts", ctx)
    seq = book.get("seqId") if isinstance(book, dict) else None
    update_id = integer(seq, "book seqId", ctx) if seq not in (None, "") else None
    bids, asks = (book_levels(field(book, side, "book", ctx), side, ctx, what="books",
                              shape='[px, sz, "0", numOrders] array', price="px", size="sz",
                              base=lambda price, size: sizer.base_and_quote(price, size)[0])
                  for side in ("bids", "asks"))
    return book_frame(VENUE, instrument, ts, update_id, bids, asks)


def parse_candles(body: Any, instrument: str, ctx: Page | None = None,
                  contract_values: dict[str, tuple[float, bool]] | None = None,
                  drops: Counter | None = None) -> pl.DataFrame:
    """candles / history-candles envelope → bars frame (confirmed bars only, any order in; the
    unconfirmed ones counted in `drops["unconfirmed"]`)."""
    ctx = ctx or Page(VENUE, instrument)
    sizer = _sizer(instrument, contract_values, ctx)
    cols = BarColumns()
    for i, row in enumerate(_data(body, ctx)):
        if not isinstance(row, list) or len(row) < 7:
            raise ctx.error(f"candle #{i} is not a [ts, o, h, l, c, vol, volCcy, volCcyQuote, confirm] array: "
                            f"{str(row)[:160]}")
        ts = epoch_us(row[0], f"candle #{i} ts", ctx)
        what = f"candle {from_us(ts).strftime('%Y-%m-%d %H:%M:%S')}"
        confirm = row[8] if len(row) >= 9 else "1"
        if confirm not in ("0", "1"):
            raise ctx.error(f"{what} confirm is {confirm!r}, not \"0\" or \"1\"")
        if confirm == "0":  # the bar is still forming
            if drops is not None:
                drops["unconfirmed"] += 1
            continue
        o, h, lo, c = (number(row[k], f"{what} {name}", ctx) for k, name in
                       ((1, "open"), (2, "high"), (3, "low"), (4, "close")))
        vol = number(row[5], f"{what} vol", ctx)
        vol_ccy = not_negative(number(row[6], f"{what} volCcy", ctx), f"{what} volCcy", ctx)
        quote = number(row[7], f"{what} volCcyQuote", ctx) if len(row) >= 8 and row[7] != "" else None
        check_bar(what, ctx, ts, o, h, lo, c, vol)
        if quote is not None:
            not_negative(quote, f"{what} volCcyQuote", ctx)
        if not sizer.derivative:
            volume, amount = vol, (quote if quote is not None else vol_ccy)
        else:  # vol in contracts, volCcy in base
            volume = vol_ccy
            amount = quote if quote is not None else vol_ccy * c
        cols.add(ts, o, h, lo, c, volume, amount, None)
    return cols.frame(VENUE, instrument)


# --------------------------------------------------------------------------------------------
# The client
# --------------------------------------------------------------------------------------------

class OkxClient(ApiClient):
    """OKX v5 public market data (limits and errors: `LIMITS`, `ERRORS`)."""

    api_name = "OKX"
    name = VENUE
    ERRORS = ERRORS
    LIMITS = LIMITS
    DATASETS: ClassVar[dict[str, str]] = {"trades": HISTORY, "bars_1m": HISTORY, "books": SNAPSHOT}

    def __init__(self, base_url: str = DEFAULT_BASE_URL, *, page_limit: int = 100,
                 contract_values: dict[str, tuple[float, bool]] | None = None, **kwargs):
        super().__init__(base_url, **kwargs)
        if not 1 <= page_limit <= 100:
            raise ValueError("page_limit: 1..100")
        self.page_limit = page_limit
        self.contract_values = contract_values
        self.dropped = DropCounts()

    def figures(self) -> dict[str, Any]:
        return {**super().figures(), **self.dropped.figures()}

    # ---- what OKX's answers mean ------------------------------------------------------------

    def error_fields(self, payload: Any) -> tuple[Any, str] | None:
        if not isinstance(payload, dict) or "code" not in payload or payload["code"] == "0":
            return None
        message = payload.get("msg") or payload.get("error_message") or payload.get("detail") or ""
        return payload["code"], str(message)

    def make_error(self, kind, *, status, code, message, page):
        if status == 404 and code is not None and not isinstance(code, str):  # OKX's codes are strings
            message = f"unknown path or endpoint ({message})"
        return super().make_error(kind, status=status, code=code, message=message, page=page)

    async def _get(self, path: str, params: dict[str, Any], *, instrument: str,
                   day: date | None) -> tuple[Any, Page]:
        page = Page(VENUE, instrument, day, describe_request("GET", path, params))
        return await self.call("GET", path, page=page, params=params), page

    # ---- trades, book, bars -----------------------------------------------------------------

    async def trades(self, instrument: str, start: datetime, end: datetime) -> pl.DataFrame:
        start, end = as_utc(start), as_utc(end)
        if end <= start:
            return finish_trades([])
        start_us = to_us(start)
        params: dict[str, Any] = {"instId": instrument, "type": "2", "after": str(ceil_ms(end)),
                                  "limit": str(self.page_limit)}
        frames: list[pl.DataFrame] = []
        day = day_of(from_us(to_us(end) - 1))  # the first page holds the newest trades
        while True:
            body, ctx = await self._get("/api/v5/market/history-trades", params, instrument=instrument, day=day)
            page = parse_history_trades(body, instrument, ctx, self.contract_values)
            if page.height == 0:
                break
            frames.append(page)
            oldest = to_us(page["ts"].min())
            smallest = page["seq"].min()
            if smallest is None or page["seq"].null_count():
                raise ctx.error("history-trades page has non-numeric tradeIds: cannot page by tradeId")
            if oldest < start_us:  # a short page is not trusted to mean "no more": only an empty one is
                break
            if params.get("type") == "1" and int(smallest) >= int(params["after"]):
                raise ctx.error(f"history-trades page for after={params['after']} did not go back in tradeId")
            day = day_of(from_us(oldest))
            params = {"instId": instrument, "type": "1", "after": str(smallest), "limit": str(self.page_limit)}
        return finish_trades(frames, start, end, self.dropped.of(instrument), paged="backward")

    async def trades_by_id(self, instrument: str, first_id: int, last_id: int, *,
                           day: date | None = None) -> pl.DataFrame:
        """Trades with first_id <= tradeId <= last_id (history-trades, `type=1`, paging back by
        `after`); `day` names the slice in errors."""
        frames: list[pl.DataFrame] = []
        after = last_id + 1
        while after > first_id:
            params = {"instId": instrument, "type": "1", "after": str(after),
                      "limit": str(min(self.page_limit, after - first_id))}
            body, ctx = await self._get("/api/v5/market/history-trades", params, instrument=instrument, day=day)
            page = parse_history_trades(body, instrument, ctx, self.contract_values)
            if page.height == 0:
                break
            smallest = page["seq"].min()
            if smallest is None or page["seq"].null_count():
                raise ctx.error("history-trades page has non-numeric tradeIds: cannot page by tradeId")
            if int(smallest) >= after:
                raise ctx.error(f"history-trades page for after={after} did not go back in tradeId")
            frames.append(page)
            after = int(smallest)
        frame = finish_trades(frames, drops=self.dropped.of(instrument))
        inside = frame.filter(pl.col("seq").is_between(first_id, last_id))
        self.dropped.of(instrument)["past_window_edge"] += frame.height - inside.height
        return inside

    async def book_snapshot(self, instrument: str, depth: int = 20) -> pl.DataFrame:
        if not 1 <= depth <= MAX_BOOK_DEPTH:
            raise ValueError(f"OKX books depth: 1..{MAX_BOOK_DEPTH}")
        body, ctx = await self._get("/api/v5/market/books", {"instId": instrument, "sz": str(depth)},
                                    instrument=instrument, day=day_of(datetime.now().astimezone()))
        return parse_books(body, instrument, ctx, self.contract_values).filter(pl.col("level") < depth)

    async def bars_1m(self, instrument: str, start: datetime, end: datetime) -> pl.DataFrame:
        start, end = as_utc(start), as_utc(end)
        start_us = to_us(start)
        after = ceil_ms(end)
        frames: list[pl.DataFrame] = []
        while after * 1000 > start_us:
            params = {"instId": instrument, "bar": "1m", "after": str(after), "limit": str(self.page_limit)}
            body, ctx = await self._get("/api/v5/market/history-candles", params, instrument=instrument,
                                        day=day_of(from_us(after * 1000 - 1)))
            data = body.get("data") if isinstance(body, dict) else body
            page = parse_candles(body, instrument, ctx, self.contract_values, self.dropped.of(instrument))
            if not data:
                break
            frames.append(page)
            oldest_ms = min(integer(row[0], "candle ts", ctx) for row in data)
            if oldest_ms >= after:
                raise ctx.error(f"history-candles page for after={after} did not go back in time")
            after = oldest_ms
        return finish_bars(frames, start, end, self.dropped.of(instrument), paged="backward")


__all__ = ["CONTRACT_VALUES", "ERRORS", "LIMITS", "ContractSizer", "OkxClient", "parse_books", "parse_candles",
           "parse_history_trades"]
