"""What Deribit's answers hold, declared once for the parsers (rest.py) and the `trades` channel: the records
of a `result` (one comment per field), each field's type saying what its value must be (`records_of` tells
a breach by it), and the rules on a record's values that a type cannot say (the instrument asked for, an
epoch, an option of the chain, a bar's shape)."""

from __future__ import annotations

from typing import Any, Literal

import msgspec
import polars as pl

from marketdata_assets.core.http import Page
from marketdata_assets.datasets.declared import (
    Amount,
    Finite,
    Int64,
    Positive,
    Rule,
    Text,
    bar_rules,
    check,
    columns,
    each,
    is_epoch,
    records_of,
)
from marketdata_assets.datasets.frames import epoch_to_us
from marketdata_assets.datasets.normalized import Trade
from marketdata_assets.datasets.wire import book_frame, book_levels, epoch_us, positive, record_of
from marketdata_assets.sources.deribit.naming import VENUE, is_option, settles_in
from marketdata_assets.sources.deribit.units import base_and_quote

# --------------------------------------------------------------------------------------------
# The JSON-RPC answer, and what is inside its `result` (the fields read; the rest are ignored)
# --------------------------------------------------------------------------------------------


class RpcResponse(msgspec.Struct):
    """A JSON-RPC 2.0 answer of `/api/v2/public/<method>` (an `error` one is told before: rest.rpc_result)."""

    result: Any  # the method's answer: one of the records below, or an array of them (read by method)


class TradesPage(msgspec.Struct):
    """`result` of get_last_trades_by_instrument[_and_time]."""

    trades: Any  # an array of `DeribitTrade`s, oldest first (read by `trade_records`)
    has_more: Any  # true: more trades in the window asked, page on (true/false only)

    def checked(self, page: Page) -> TradesPage:
        """The page, its trades an array and has_more true/false (a lax "false" is not)."""
        if not isinstance(self.trades, list):
            raise page.error(f"result.trades is {type(self.trades).__name__}, not an array")
        if not isinstance(self.has_more, bool):
            raise page.error(f"result.has_more is {self.has_more!r}, not true/false")
        return self


class TickerStats(msgspec.Struct):
    """`stats` of a ticker: the last 24 hours."""

    volume: Amount  # base units traded: volume_24h
    volume_usd: Amount | None = None  # USD traded: amount_24h (absent or null: unknown)


class Ticker(msgspec.Struct):
    """`result` of public/ticker (and the `ticker.<instrument>` channel's data), as a tickers row reads it."""

    timestamp: Int64  # epoch ms: the row's ts
    stats: Any  # the last 24 hours: `TickerStats` (read apart, as "ticker stats")
    instrument_name: Any = msgspec.UNSET  # must be the instrument asked for (absent: it is)
    best_bid_price: Finite | None = None  # quote per base; null, or 0 with amount 0: no bid
    best_bid_amount: Finite | None = None  # its amount: USD (inverse contracts), else base units
    best_ask_price: Finite | None = None  # the same for the best ask
    best_ask_amount: Finite | None = None
    last_price: Finite | None = None  # the last trade's price (null: none)
    mark_price: Finite | None = None  # mark price (null: none)
    index_price: Finite | None = None  # the underlying index price
    current_funding: Finite | None = None  # the current funding rate (perpetuals; absent: null)

    def to_row(self, inverse: bool, page: Page) -> tuple:
        """The tickers row's values but venue and instrument: sizes in base units (`base_and_quote`)."""
        ts = epoch_us(self.timestamp, "ticker timestamp", page)
        stats = record_of(TickerStats, self.stats, "ticker stats", page)
        best = []
        for side, price, size in (
            ("bid", self.best_bid_price, self.best_bid_amount),
            ("ask", self.best_ask_price, self.best_ask_amount),
        ):
            if not price:  # null, or 0 with amount 0: nothing on that side
                best += [None, None]
                continue
            positive(price, "ticker", page, f"best_{side}_price")
            best += [price, None if size is None else base_and_quote(inverse, price, size)[0]]
        return (
            ts,
            self.last_price,
            *best,
            stats.volume,
            stats.volume_usd,
            self.mark_price,
            self.index_price,
            self.current_funding,
        )


class TickerOpenInterest(msgspec.Struct):
    """What the open_interest row reads of a ticker (public/ticker, and the ticker channel's data)."""

    timestamp: Int64  # epoch ms: the row's ts
    open_interest: Amount  # in the amount's units: USD (inverse contracts), else base units
    mark_price: Positive  # quote per base: base (inverse) or quote from the amount
    instrument_name: Any = msgspec.UNSET  # must be the instrument asked for (absent: it is)

    def to_row(self, size: float, inverse: bool, page: Page) -> tuple:
        """(ts µs, contracts of `size`, size, its unit, base by the mark price, quote)."""
        ts = epoch_us(self.timestamp, "ticker timestamp", page)
        amount = self.open_interest
        base, quote = base_and_quote(inverse, self.mark_price, amount)
        return ts, round(amount / size, 8), size, "quote" if inverse else "base", base, quote


class OrderBook(msgspec.Struct):
    """`result` of get_order_book."""

    timestamp: Int64  # epoch ms: the book's ts
    change_id: Int64 | None  # the book's update id: update_id (null: none)
    bids: list[Any]  # [price, amount] pairs, best first (read by `book_levels`; amount as in a trade)
    asks: list[Any]  # the same, best first

    def to_book(self, instrument: str, inverse: bool, page: Page) -> pl.DataFrame:
        """The books frame, amounts as base quantities (`base_and_quote`)."""
        ts = epoch_us(self.timestamp, "order book timestamp", page)
        bids, asks = (
            book_levels(
                levels,
                side,
                page,
                what="order book",
                shape="[price, amount] pair",
                price="price",
                size="amount",
                base=lambda price, amount: base_and_quote(inverse, price, amount)[0],
            )
            for side, levels in (("bids", self.bids), ("asks", self.asks))
        )
        return book_frame(VENUE, instrument, ts, self.change_id, bids, asks)


class DeribitTrade(msgspec.Struct):
    """One trade of `get_last_trades_by_instrument[_and_time]` and of the `trades` channel."""

    trade_id: Text  # unique: digits for BTC ("320450001"), prefixed for ETH ("ETH-284830839"): trade_id
    trade_seq: Int64  # the trade's sequence number within its instrument: seq (paging by sequence)
    timestamp: Int64  # epoch ms
    price: Positive  # quote per base (USD per coin); options: the settlement coin per option
    amount: Positive  # inverse contracts: USD; linear ones and options: base units (`base_and_quote`)
    direction: Literal["buy", "sell"]  # the taker's side
    instrument_name: str | msgspec.UnsetType = msgspec.UNSET  # must be the instrument asked for
    liquidation: Literal["M", "T", "MT"] | None = None  # absent, or the maker's, the taker's, both liquidated


def trade_records(data: list, instrument: str, ctx: Page) -> list[DeribitTrade]:
    """Trades (REST pages, the `trades` channel) read and checked (`trade_rules`): a SourceDataError names the
    first that does not fit or breaks a rule."""
    records = records_of(DeribitTrade, data, _trade_name, ctx)
    check(columns(records, DeribitTrade.__struct_fields__), trade_rules(instrument), _trade_name, ctx)
    return records


def to_trades(records: list[DeribitTrade], instrument: str, inverse: bool, recv_ns: int = 0) -> list[Trade]:
    """Read trades as `Trade`s of `instrument` received at `recv_ns`, their event time their own: an inverse
    contract's `amount` (USD) is the quote amount and amount / price the base quantity; another's is the
    base quantity and price x amount the quote amount."""
    trades = []
    for r in records:
        price, amount, ts = r.price, r.amount, epoch_to_us(r.timestamp)
        base, quote = (amount / price, amount) if inverse else (amount, price * amount)
        side, seq = r.direction, r.trade_seq
        trades.append(
            Trade(VENUE, instrument, r.trade_id, price, base, quote, side, seq, ts, ts // 1000, recv_ns)
        )
    return trades


def _trade_name(i: int, trade: Any) -> str:
    """trade #i, and its id once it has one."""
    trade_id = trade.get("trade_id") if isinstance(trade, dict) else None
    return f"trade {trade_id}" if is_text(trade_id) else f"trade #{i}"


class ChartStatus(msgspec.Struct):
    """What a `get_tradingview_chart_data` result says first: whether it holds bars."""

    status: Any  # "ok": the bars follow (`Chart`); "no_data": none; any other is an error


class Chart(ChartStatus):
    """`result` of get_tradingview_chart_data: one bar per position of the parallel arrays."""

    ticks: list[Int64]  # bar open times, epoch ms on the minute
    open: list[Positive]  # quote per base, as the three prices
    high: list[Positive]
    low: list[Positive]
    close: list[Positive]
    volume: list[Amount]  # base units
    cost: list[Amount]  # quote units: the bar's amount


class FundingRow(msgspec.Struct):
    """One row of `get_funding_rate_history` (`result` is an array of them; prev_index_price unread)."""

    timestamp: Int64  # epoch ms, on the hour: the row's ts
    interest_1h: Finite  # the funding of the hour that ends there: rate (interval_hours 1)
    interest_8h: Finite  # the same over 8 hours: rate_8h
    index_price: Positive | None = None  # USD per coin then (absent or null: unknown)


class BookSummary(msgspec.Struct):
    """One option of `get_book_summary_by_currency?kind=option` (`result` is an array of them)."""

    instrument_name: str  # "BTC-27DEC24-60000-C": strike, expiry and type (`contract`): option
    creation_timestamp: Int64  # epoch ms of the summary: the row's ts
    underlying_price: Positive  # the underlying's price (USD per coin)
    underlying_index: Text  # what it follows: "index_price" or the future's name ("BTC-27DEC24")
    mark_price: Amount  # the settlement coin per option (BTC options: BTC)
    mark_iv: Positive  # implied volatility of the mark, percent
    open_interest: Amount  # contracts (base units)
    bid_price: Amount | None = None  # coin per option; null without a bid
    ask_price: Amount | None = None  # null without an ask
    volume: Amount | None = None  # 24 h, base units: volume_24h


def is_text(value: object) -> bool:
    return isinstance(value, str) and value != ""


def trade_rules(instrument: str) -> tuple[Rule, ...]:
    """What every trade keeps besides its types: the instrument asked for, epoch ms."""
    return (
        each(
            "instrument_name",
            (msgspec.UNSET, instrument).__contains__,
            lambda what, r: f"{what} is for {r['instrument_name']!r}, not {instrument}",
        ),
        is_epoch("timestamp"),
    )


FUNDING_RULES = (is_epoch("timestamp"),)


def chain_rules(currency: str) -> tuple[Rule, ...]:
    """What every option of the `currency` chain keeps besides its types: an option name of the chain,
    epoch ms."""
    return (
        each("option", lambda n: not isinstance(n, ValueError), "{what}: {value}"),
        each(
            "option",
            is_option,
            lambda what, r: (
                f"{what} {r['instrument_name']!r} is not an option name (like BTC-27DEC24-60000-C)"
            ),
        ),
        each(
            "option",
            lambda n: is_option(n) and settles_in(n) == currency,
            f"{{what}} is not an option of the {currency} chain",
        ),
        is_epoch("creation_timestamp"),
    )


CHART_KEYS = Chart.__struct_fields__[1:]  # ticks, open, high, low, close, volume, cost
CHART_RULES = (
    is_epoch("ticks")._replace(
        says="{what} is {value}: neither epoch milliseconds nor microseconds (seconds? nanoseconds?)"
    ),
    *bar_rules("ts"),
)
