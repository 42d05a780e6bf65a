"""Binance's REST wire formats, declared: the records as sent (msgspec Structs, spot and USD-M, a comment
per field) and the rules and readers their pages keep, one place for the parsers (`rest`, `futures`) and the
streams to read them from."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, ClassVar, Literal

import msgspec
import numpy as np
import polars as pl

from marketdata_assets.core.compiled import pick
from marketdata_assets.core.http import Page
from marketdata_assets.datasets.declared import (
    Amount,
    Count,
    Digits,
    Finite,
    Int64,
    Positive,
    Rule,
    Text,
    bar_rules,
    check,
    columns,
    is_epoch,
    is_flag,
    typed_pages,
)
from marketdata_assets.datasets.frames import EPOCH_MS_OR_US, EPOCH_US_FROM
from marketdata_assets.datasets.normalized import Trade
from marketdata_assets.datasets.wire import book_frame, book_levels, epoch_us


class AggTrade(msgspec.Struct):
    """One aggregate trade: `/api/v3/aggTrades` (USD-M `/fapi/v1/aggTrades`) and the `aggTrade` event."""

    a: Int64  # aggregate trade id: the row's trade_id and seq
    p: Positive  # price, quote per base (decimal text on the wire)
    q: Positive  # quantity, base units (decimal text)
    T: Int64  # trade time: epoch ms, or µs when asked with X-MBX-TIME-UNIT: MICROSECOND
    m: Any  # true: the buyer was the maker, so the taker SOLD (true/false only)


TradeId = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]  # a trade id the tables' Int64 holds


class TradeEvent(msgspec.Struct, gc=False):
    """A spot `trade` stream event, decoded lax (its price and quantity are decimal text): the one reading
    of the event (`events_to_trades` makes its `Trade`)."""

    t: TradeId  # trade id: trade_id and seq
    p: Positive  # price, quote per base
    q: Positive  # quantity, base units
    T: Int64  # trade time, epoch ms (µs on a connection that asked for them)
    m: Any  # true: the buyer was the maker, so the taker SOLD (true/false only)
    E: Any = None  # event time, epoch ms (absent, or not an integer: the trade's time)


class TradeFrame(msgspec.Struct, gc=False):
    """A combined-stream frame of a `trade` stream, decoded in one pass."""

    stream: str  # `<symbol>@trade`
    data: TradeEvent  # the event


Level = tuple[str, str]  # one book level: [price, quantity] as decimal text (quantity 0: the level is gone)


class DepthEvent(msgspec.Struct, gc=False):
    """A spot `depthUpdate` event (`<symbol>@depth` / `@depth@100ms`) in the types its documentation gives
    (any other spelling is read as decoded JSON: `DepthSync.on_frame`)."""

    e: str  # event type: "depthUpdate"
    E: Int64  # event time, epoch ms
    s: str  # symbol
    U: Int64  # first update id in the event
    u: Int64  # final update id in the event
    b: msgspec.Raw  # bids to set, list[Level], each the absolute quantity at its price (read by `levels`)
    a: msgspec.Raw  # asks to set, the same


LEVELS = msgspec.json.Decoder(list[Level])  # a side's levels, read once the book takes them


def levels(side: Any) -> list:
    """A side's levels: read from its text (`DepthEvent`: only a book that takes them pays for it, not a
    book waiting for its snapshot, whose older events are dropped unread); another spelling than
    [price, quantity] text pairs is read as plain JSON, for the book to judge; a list stays itself."""
    if side.__class__ is not msgspec.Raw:
        return side
    try:
        return LEVELS.decode(side)
    except msgspec.ValidationError:
        return msgspec.json.decode(side)


def defer_sides(book, update_id: int, bids: Any, asks: Any) -> None:
    """A diff's sides (their JSON text as sent, or lists) deferred into `book` (`OrderBook.defer`) as
    `levels` reads them: the book's one entry for Binance's diffs, compiled (`_fast.pyx`: [price, quantity]
    text pairs read straight into the book's noted levels) with this as its original."""
    book.defer(update_id, levels(bids), levels(asks))


class DepthFrame(msgspec.Struct, gc=False):
    """A combined-stream frame of a `depth` stream, decoded in one pass (its sides kept as their text until a
    book takes them: `levels`)."""

    stream: str  # `<symbol>@depth@100ms`
    data: DepthEvent  # the event


class UsdmDepthEvent(msgspec.Struct, gc=False):
    """A USD-M `depthUpdate` event: spot's, with the transaction time and the previous event's final id."""

    e: str  # event type: "depthUpdate"
    E: Int64  # event time, epoch ms
    T: Int64  # transaction time, epoch ms
    s: str  # symbol
    U: Int64  # first update id in the event
    u: Int64  # final update id in the event
    pu: Int64  # final update id of the previous event (`u` of the one before: the chain)
    b: msgspec.Raw  # bids to set, list[Level], each the absolute quantity at its price (read by `levels`)
    a: msgspec.Raw  # asks to set, the same


class UsdmDepthFrame(msgspec.Struct, gc=False):
    """A combined-stream frame of a USD-M `depth` stream, decoded in one pass."""

    stream: str  # `<symbol>@depth@100ms`
    data: UsdmDepthEvent  # the event


class HistoricalTrade(msgspec.Struct):
    """One trade of `/api/v3/trades` and `historicalTrades` (and of the dump files)."""

    id: Int64  # trade id: trade_id and seq
    price: Positive  # quote per base (decimal text)
    qty: Positive  # base units (decimal text)
    quoteQty: Amount  # quote units traded: the row's amount
    time: Int64  # epoch ms (µs when asked)
    isBuyerMaker: Any  # true: the taker SOLD (true/false only)


class Kline(msgspec.Struct, array_like=True):
    """One `/api/v3/klines` row: a 12-element array (only the first 9 are read)."""

    open_time: Int64  # epoch ms (µs when asked): the bar's ts
    open: Positive  # decimal text, as the four prices
    high: Positive
    low: Positive
    close: Positive
    volume: Amount  # base units
    close_time: Int64  # open_time + interval - 1 ms (or - 1 µs): tells the kline's interval
    quote_volume: Amount  # quote units: the row's amount
    trades: Count  # number of trades
    labels: ClassVar[dict[str, str]] = {
        "open_time": "open time",
        "close_time": "close time",
        "quote_volume": "quote volume",
        "trades": "number of trades",
    }


class PriceKline(msgspec.Struct, array_like=True):
    """One USD-M `markPriceKlines` / `indexPriceKlines` row: a kline whose volumes are "Ignore"."""

    open_time: Int64  # epoch ms: the bar's ts
    open: Positive  # decimal text, as the four prices
    high: Positive
    low: Positive
    close: Positive
    ignore: Any  # "Ignore" in the docs (their example sends "0 ")
    close_time: Int64  # open_time + interval - 1 ms
    labels: ClassVar[dict[str, str]] = Kline.labels


AGG_TRADE_PAGES = typed_pages(AggTrade)  # an aggTrades answer's body reader


AGG_TRADE_RULES = (  # besides the types
    is_epoch("T"),
    is_flag("m"),
    Rule(
        "amount",
        lambda c: np.isfinite(c["amount"]),
        "{what} price x quantity is {value}: the numbers are out of range",
    ),
)
HISTORICAL_TRADE_RULES = (is_epoch("time"), is_flag("isBuyerMaker"))  # besides the types
_INFINITY = float("inf")  # p x q of two finite numbers: finite, or this


def agg_to_trades(
    records: list[AggTrade],
    venue: str,
    instrument: str,
    what: str,
    page: Page,
    body: Any = None,
    event_ms: int = 0,
    recv_ns: int = 0,
) -> list[Trade]:
    """`AggTrade`s as `Trade`s, checked as they are read: trade_id = seq = `a`, ts = `T` (ms or µs), amount
    = p x q, side from `m` (the buyer was the maker: the taker sold), event time `event_ms` (0: the trade's).
    The first record that breaks AGG_TRADE_RULES is a SourceDataError naming it (`what`: a template over
    {i} and its fields, "aggTrade #{i} (a={a})"; `body`: the records as sent)."""
    (low, high), trades = EPOCH_MS_OR_US, []
    for r in records:
        t, maker, amount = r.T, r.m, r.p * r.q
        if maker.__class__ is not bool or not (low <= t < high or t == 0) or amount == _INFINITY:
            cols = columns(records, ("a", "p", "q", "T", "m"))
            cols["amount"] = [a.p * a.q for a in records]
            check(cols, AGG_TRADE_RULES, what, page, body)
        ts = t if t >= EPOCH_US_FROM else t * 1000
        side = "sell" if maker else "buy"
        trades.append(
            Trade(
                venue, instrument, str(r.a), r.p, r.q, amount, side, r.a, ts, event_ms or ts // 1000, recv_ns
            )
        )
    return trades


def historical_to_trades(
    records: list[HistoricalTrade], venue: str, instrument: str, what: str, page: Page, body: Any = None
) -> list[Trade]:
    """`HistoricalTrade`s as `Trade`s, checked as they are read: trade_id = seq = `id`, ts = `time` (ms or
    µs), amount = quoteQty, side from isBuyerMaker; the first that breaks HISTORICAL_TRADE_RULES is a
    SourceDataError naming it (as `agg_to_trades`)."""
    (low, high), trades = EPOCH_MS_OR_US, []
    for r in records:
        t, maker = r.time, r.isBuyerMaker
        if maker.__class__ is not bool or not (low <= t < high or t == 0):
            check(
                columns(records, HistoricalTrade.__struct_fields__), HISTORICAL_TRADE_RULES, what, page, body
            )
        ts = t if t >= EPOCH_US_FROM else t * 1000
        side = "sell" if maker else "buy"
        trades.append(
            Trade(venue, instrument, str(r.id), r.price, r.qty, r.quoteQty, side, r.id, ts, ts // 1000, 0)
        )
    return trades


TRADE_EVENT_RULES = (is_flag("m"), is_epoch("T"))  # besides the types (events_to_trades keeps them too)
_INT64_END = 2**63  # an event time past the tables' Int64 is no event time (the trade's is taken)


def events_to_trades(
    venue: str, instruments: Sequence[str], events: list[TradeEvent], recvs: list[int]
) -> list[Trade | None]:
    """`TradeEvent`s (of `instruments`: one each, or one for all) as `Trade`s, in order; None for an event
    whose `m` is no true/false or whose `T` is no epoch (`trade_event` tells which)."""
    records: list[Trade | None] = []
    one, (low, high) = (instruments[0] if len(instruments) == 1 else None), EPOCH_MS_OR_US
    for k, (event, recv_ns) in enumerate(zip(events, recvs, strict=True)):
        ts, maker, event_ms = event.T, event.m, event.E
        if maker.__class__ is not bool or not (low <= ts < high or ts == 0):
            records.append(None)
            continue
        ts_us = ts if ts >= EPOCH_US_FROM else ts * 1000
        if event_ms.__class__ is not int or not -_INT64_END <= event_ms < _INT64_END:
            event_ms = ts_us // 1000
        price, qty, trade_id = event.p, event.q, event.t
        records.append(
            Trade(
                venue,
                one or instruments[k],
                str(trade_id),
                price,
                qty,
                price * qty,
                "sell" if maker else "buy",
                trade_id,
                ts_us,
                event_ms,
                recv_ns,
            )
        )
    return records


events_to_trades_py, defer_sides_py = events_to_trades, defer_sides
events_to_trades = pick("marketdata_assets.sources.binance._fast", "events_to_trades", events_to_trades_py)
defer_sides = pick("marketdata_assets.sources.binance._fast", "defer_sides", defer_sides_py)


def kline_rules(interval_ms: int, full: bool) -> tuple[Rule, ...]:
    """What every kline keeps besides its types, in the order a breach is told: its times, its span (the
    interval), then a bar that can be true."""
    span = Rule(
        "span",
        lambda c: (c["span"] >= interval_ms * 1000 - 1000) & (c["span"] < interval_ms * 1000),
        lambda what, r: (
            f"{what} spans {(r['span'] + 1) / 1e6:g} s (close time - open time), not "
            f"{interval_ms / 1000:g} s: a kline of another interval"
        ),
    )
    return (
        is_epoch("open_time", "open time"),
        is_epoch("close_time", "close time"),
        span,
        *bar_rules("ts", "volume" if full else None, minute=interval_ms % 60_000 == 0),
    )


class FundingRate(msgspec.Struct):
    """A `fundingRate` record (its numbers text, read from it)."""

    fundingTime: Int64  # when the rate was settled, epoch ms
    fundingRate: Finite  # the rate settled ("0.00010000")
    markPrice: Amount | Literal[""] | None = None  # absent or "" in old records (and 0): null


class FundingInfo(msgspec.Struct):
    """A `fundingInfo` record (only instruments whose cap, floor or interval was adjusted)."""

    symbol: Text  # the instrument
    fundingIntervalHours: Positive | None = None  # hours between fundings; absent: FUNDING_HOURS


class OpenInterestHist(msgspec.Struct):
    """An `openInterestHist` row."""

    timestamp: Int64 | Digits  # the period's time, epoch ms (digit text in the docs' example)
    sumOpenInterest: Amount  # base units (contract size 1), text
    sumOpenInterestValue: Amount  # quote units, text


class DepthSnapshot(msgspec.Struct):
    """A `/api/v3/depth` answer: the book to a depth, with the update id a live book syncs from."""

    lastUpdateId: Int64  # the last update in the book: update_id (a live book's sync point)
    bids: list[Any]  # [price, qty] decimal-text pairs, best first (read by `book_levels`)
    asks: list[Any]  # the same, best first

    def to_book(self, venue: str, instrument: str, ts_us: int, page: Page) -> pl.DataFrame:
        """The books frame of the snapshot stamped `ts_us` (spot depth carries no time)."""
        bids, asks = (
            book_levels(
                levels, side, page, what="depth", shape="[price, qty] pair", price="price", size="qty"
            )
            for side, levels in (("bids", self.bids), ("asks", self.asks))
        )
        return book_frame(venue, instrument, ts_us, self.lastUpdateId, bids, asks)


class UsdmDepthSnapshot(DepthSnapshot):
    """A USD-M `/fapi/v1/depth` answer: spot's, with its transaction time (E, the output time, unread)."""

    T: Int64  # transaction time, epoch ms: the book's ts


class BookTicker(msgspec.Struct):
    """A USD-M `/fapi/v1/ticker/bookTicker?symbol=` answer: the best bid and ask."""

    bidPrice: Amount  # best bid, quote per base ("0": no bid, null)
    bidQty: Amount  # its quantity, base units
    askPrice: Amount  # best ask ("0": no ask, null)
    askQty: Amount  # its quantity
    time: Int64  # transaction time, epoch ms

    def best(self) -> tuple[float | None, float | None, float | None, float | None]:
        """(bid, bid size, ask, ask size); a side without a price (0) null with its size."""
        return (*_quote(self.bidPrice, self.bidQty), *_quote(self.askPrice, self.askQty))


def _quote(price: float, size: float) -> tuple[float | None, float | None]:
    return (price, size) if price else (None, None)


class Ticker24hr(msgspec.Struct):
    """A `/fapi/v1/ticker/24hr?symbol=` answer (USD-M): the rolling 24 hours to closeTime."""

    lastPrice: Amount  # last trade's price, quote per base ("0": no trade, null)
    volume: Amount  # base units traded in the 24 hours
    quoteVolume: Amount  # quote units traded
    closeTime: Int64  # the window's end, epoch ms: the row's ts


class SpotTicker24hr(Ticker24hr):
    """A spot `/api/v3/ticker/24hr?symbol=` answer (type FULL): USD-M's with the best bid and ask."""

    bidPrice: Amount  # best bid, quote per base ("0": no bid, null)
    bidQty: Amount  # its quantity, base units
    askPrice: Amount  # best ask ("0": no ask, null)
    askQty: Amount  # its quantity

    def to_row(self, page: Page) -> tuple:
        """The tickers row's values but venue and instrument (ts = closeTime; mark, index, funding null)."""
        bid, bid_size = _quote(self.bidPrice, self.bidQty)
        ask, ask_size = _quote(self.askPrice, self.askQty)
        ts = epoch_us(self.closeTime, "24hr ticker closeTime", page)
        last = self.lastPrice or None
        return ts, last, bid, bid_size, ask, ask_size, self.volume, self.quoteVolume, None, None, None


class PremiumIndex(msgspec.Struct):
    """A USD-M `/fapi/v1/premiumIndex?symbol=` answer: mark, index and funding."""

    markPrice: Amount  # mark price, quote per base (0: null)
    indexPrice: Amount  # index price (0: null)
    lastFundingRate: Finite | Literal[""]  # the current funding rate; "": none (a dated future)
    time: Int64  # epoch ms
