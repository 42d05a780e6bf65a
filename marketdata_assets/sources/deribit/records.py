"""What Deribit's answers hold, declared once for the parsers (rest.py) and the `trades` channel: the records
of a `result` (one comment per field), each field's type saying what its value must be (`records_of` tells
a breach by it), and the rules on a record's values that a type cannot say (the instrument asked for, an
epoch, an option of the chain, a bar's shape)."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

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
from marketdata_assets.sources.deribit.naming import VENUE, is_option, settles_in

# --------------------------------------------------------------------------------------------
# What is inside `result` (the fields read; the rest are ignored)
# --------------------------------------------------------------------------------------------


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


class Chart(msgspec.Struct):
    """`result` of get_tradingview_chart_data: one bar per position of the parallel arrays."""

    status: str  # "ok"; "no_data": no bars; any other is an error
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
