"""What Deribit's answers hold, declared once for the parsers (rest.py) and the `trades` channel: the records
of a `result` (one comment per field), the datasets.declared rules each keeps, and the readers of a page
that is not of exactly the declared types."""

from __future__ import annotations

from typing import Any

import msgspec

from marketdata_assets.core.http import Page
from marketdata_assets.datasets.declared import (
    Finite,
    Int64,
    Rule,
    bar_rules,
    each,
    is_epoch,
    is_not_negative,
    is_positive,
    or_null,
    reads,
)
from marketdata_assets.datasets.wire import integer, number
from marketdata_assets.sources.deribit.instruments import is_option, settles_in

LIQUIDATION_SIDES = ("M", "T", "MT")


# --------------------------------------------------------------------------------------------
# What is inside `result` (the fields read; the rest are ignored)
# --------------------------------------------------------------------------------------------


class DeribitTrade(msgspec.Struct):
    """One trade of `get_last_trades_by_instrument[_and_time]` and of the `trades` channel."""

    trade_id: str  # unique: digits for BTC ("320450001"), prefixed for ETH ("ETH-284830839"): trade_id
    trade_seq: Int64  # the trade's sequence number within its instrument: seq (paging by sequence)
    timestamp: Int64  # epoch ms
    price: Finite  # quote per base (USD per coin); options: the settlement coin per option
    amount: Finite  # inverse contracts: USD; linear ones and options: base units (`base_and_quote`)
    direction: str  # the taker's side: "buy" | "sell"
    instrument_name: str | msgspec.UnsetType = msgspec.UNSET  # must be the instrument asked for
    liquidation: str | None = None  # absent, or "M" | "T" | "MT": the maker's, the taker's, both liquidated


class Chart(msgspec.Struct):
    """`result` of get_tradingview_chart_data: one bar per position of the parallel arrays."""

    status: str  # "ok"; "no_data": no bars; any other is an error
    ticks: list[Int64]  # bar open times, epoch ms on the minute
    open: list[Finite]  # quote per base, as the three prices
    high: list[Finite]
    low: list[Finite]
    close: list[Finite]
    volume: list[Finite]  # base units
    cost: list[Finite]  # quote units: the bar's amount


class FundingRow(msgspec.Struct):
    """One row of `get_funding_rate_history` (`result` is an array of them; prev_index_price unread)."""

    timestamp: Int64  # epoch ms, on the hour: the row's ts
    interest_1h: Finite  # the funding of the hour that ends there: rate (interval_hours 1)
    interest_8h: Finite  # the same over 8 hours: rate_8h
    index_price: Finite | None = None  # USD per coin then (absent or null: unknown)


class BookSummary(msgspec.Struct):
    """One option of `get_book_summary_by_currency?kind=option` (`result` is an array of them)."""

    instrument_name: str  # "BTC-27DEC24-60000-C": strike, expiry and type (`contract`): option
    creation_timestamp: Int64  # epoch ms of the summary: the row's ts
    underlying_price: Finite  # the underlying's price (USD per coin), positive
    underlying_index: str  # what it follows: "index_price" or the future's name ("BTC-27DEC24")
    mark_price: Finite  # the settlement coin per option (BTC options: BTC)
    mark_iv: Finite  # implied volatility of the mark, percent, positive
    open_interest: Finite  # contracts (base units)
    bid_price: Finite | None = None  # coin per option; null without a bid
    ask_price: Finite | None = None  # null without an ask
    volume: Finite | None = None  # 24 h, base units: volume_24h


def number_or_null(value: Any, what: str, page: Page) -> float | None:
    """A number the venue may send as null (datasets.wire.number otherwise)."""
    return None if value is None else number(value, what, page)


def is_text(value: Any) -> bool:
    return isinstance(value, str) and value != ""


TRADE_READERS = {
    "trade_id": None,
    "instrument_name": None,
    "trade_seq": integer,
    "timestamp": integer,
    "price": number,
    "amount": number,
    "direction": None,
    "liquidation": None,
}


def trade_rules(instrument: str) -> tuple[Rule, ...]:
    """What every trade keeps, in the order a breach is told: an id, the instrument asked for, a
    sequence number, epoch ms, a positive price and amount, a direction, a known liquidation flag."""
    return (
        reads("trade_id"),
        each("trade_id", is_text, "{what} trade_id is {value!r}, not a string id"),
        each(
            "instrument_name",
            (msgspec.UNSET, instrument).__contains__,
            lambda what, r: f"{what} is for {r['instrument_name']!r}, not {instrument}",
        ),
        reads("trade_seq", integer),
        reads("timestamp", integer),
        is_epoch("timestamp"),
        reads("price", number),
        is_positive("price"),
        reads("amount", number),
        is_positive("amount"),
        reads("direction"),
        each("direction", ("buy", "sell").__contains__, "{what} direction is {value!r}, not buy/sell"),
        each(
            "liquidation",
            (None, *LIQUIDATION_SIDES).__contains__,
            f"{{what}} liquidation is {{value!r}}, not one of {', '.join(LIQUIDATION_SIDES)}",
        ),
    )


FUNDING_READERS = {
    "timestamp": integer,
    "interest_1h": number,
    "interest_8h": number,
    "index_price": number_or_null,
}
FUNDING_RULES = (
    reads("timestamp", integer),
    is_epoch("timestamp"),
    reads("interest_1h", number),
    reads("interest_8h", number),
    reads("index_price", number_or_null),
    or_null(is_positive("index_price")),
)


SUMMARY_READERS = {
    "instrument_name": None,
    "creation_timestamp": integer,
    "underlying_price": number,
    "underlying_index": None,
    "mark_price": number,
    "mark_iv": number,
    "bid_price": number_or_null,
    "ask_price": number_or_null,
    "volume": number_or_null,
    "open_interest": number,
}


def chain_rules(currency: str) -> tuple[Rule, ...]:
    """What every option of the `currency` chain keeps, in the order a breach is told: an option name
    of the chain, epoch ms, an index name, finite numbers, the prices and sizes not negative, a
    positive underlying price and mark_iv."""
    sizes = ("mark_price", "bid_price", "ask_price", "volume", "open_interest")
    return (
        reads("instrument_name"),
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
        reads("creation_timestamp", integer),
        is_epoch("creation_timestamp"),
        reads("underlying_price", number),
        reads("underlying_index"),
        each("underlying_index", is_text, "{what} underlying_index is {value!r}, not a name"),
        *(reads(name, SUMMARY_READERS[name]) for name in ("mark_price", "mark_iv", *sizes[1:])),
        *(or_null(is_not_negative(name)) for name in sizes),
        is_positive("underlying_price"),
        is_positive("mark_iv"),
    )


CHART_KEYS = Chart.__struct_fields__[1:]  # ticks, open, high, low, close, volume, cost
CHART_RULES = (
    reads("ticks", integer, ""),
    is_epoch("ticks")._replace(
        says="{what} is {value}: neither epoch milliseconds nor microseconds (seconds? nanoseconds?)"
    ),
    *(reads(name, number) for name in CHART_KEYS[1:]),
    *bar_rules("ts"),
    is_not_negative("cost"),
)
