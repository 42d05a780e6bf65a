"""Deribit v2 public market data (JSON-RPC over HTTP GET `/api/v2/public/<method>`): the parsers of
its answers and the client. What an answer's `result` holds is declared below (`DeribitTrade`, `Chart`,
`FundingRow`, `BookSummary`: one comment per field), what each record keeps as datasets.declared rules
(`trade_rules`, `FUNDING_RULES`, `chain_rules`, `CHART_RULES`): a page of exactly the declared types is
converted in C, any other (a number sent as text, a field missing) read field by field by
datasets.wire's readers; a breach names the record, field and value. Rows dropped are counted by
reason in `dropped` (`figures()`). The methods, paging, amounts, limits and errors:
docs/crypto-datasets.md, "Deribit REST".

Over 500 lines: everything about one source in one module (parsers of its endpoints + the client).
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from typing import Any, ClassVar

import msgspec
import numpy as np
import polars as pl

from marketdata_assets.core.contracts import Contract, bad_name, ddmmmyy, option_strike
from marketdata_assets.core.http import (
    ApiClient,
    ErrorTable,
    Limits,
    Page,
    SourceNotFound,
    SourcePermissionError,
    SourceRequestError,
    describe_request,
)
from marketdata_assets.datasets.declared import (
    UNREAD,
    Finite,
    Int64,
    Rule,
    bar_rules,
    check,
    columns,
    each,
    fits,
    frame_of,
    is_epoch,
    is_not_negative,
    is_positive,
    or_null,
    reads,
    wire_columns,
)
from marketdata_assets.datasets.frames import (
    BARS_SCHEMA,
    EPOCH_MS_OR_US,
    FUNDING_SCHEMA,
    OPTION_CHAIN_SCHEMA,
    TRADES_SCHEMA,
    as_utc,
    ceil_ms,
    day_of,
    epoch_to_us,
    floor_ms,
    from_us,
    to_us,
)
from marketdata_assets.datasets.wire import (
    DropCounts,
    book_frame,
    book_levels,
    columns_of,
    epoch_us,
    field,
    finish,
    finish_bars,
    finish_trades,
    integer,
    not_negative,
    note_conversion,
    number,
    positive,
)
from marketdata_assets.sources.interface import HISTORY, SNAPSHOT

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
FUNDING_WINDOW = timedelta(days=30)  # 720 hourly rows: under the ~744 one call answers [inferred]
# get_instruments `contract_size`: USD for inverse futures and perpetuals, the base coin for linear ones
# (BTC_USDC-PERPETUAL: 0.001 as get_instrument answers it); a dated inverse future: its perpetual's.
CONTRACT_SIZES: dict[str, float] = {"BTC-PERPETUAL": 10.0, "ETH-PERPETUAL": 1.0, "BTC_USDC-PERPETUAL": 0.001}
LIQUIDATION_SIDES = ("M", "T", "MT")
_CHAIN = re.compile(r"^([A-Z0-9]+)-OPTIONS$")


def contract(instrument: str) -> Contract:
    """What a Deribit instrument name stands for (core/contracts.py has the shapes); ValueError for another."""
    venue, parts = "DERIBIT", instrument.split("-")
    base, _, quote = parts[0].partition("_")
    linear = bool(quote)
    quote = quote or "USD"
    if len(parts) == 1:
        if not linear:
            raise bad_name(venue, instrument, "a spot pair is BASE_QUOTE")
        return Contract(venue, instrument, "spot", base, quote)
    if len(parts) == 2 and parts[1] == "PERPETUAL":
        return Contract(venue, instrument, "perpetual", base, quote, inverse=not linear)
    expiry = ddmmmyy(venue, instrument, parts[1])
    if len(parts) == 2:
        return Contract(venue, instrument, "future", base, quote, expiry, inverse=not linear)
    if len(parts) == 4:
        strike, option_type = option_strike(venue, instrument, parts[2], parts[3])
        return Contract(venue, instrument, "option", base, quote, expiry, strike, option_type)
    raise bad_name(venue, instrument, "expected BASE[_QUOTE]-PERPETUAL, -DDMMMYY or -DDMMMYY-STRIKE-C|P")


def is_inverse(instrument: str) -> bool:
    """BTC-PERPETUAL / BTC-27DEC24 (USD amounts) vs BTC_USDC-PERPETUAL and options (base amounts);
    ValueError for a name of no Deribit shape (core.contracts)."""
    return contract(instrument).inverse


INVERSE_CONVERSION = "quantity USD amount -> coin (amount / price)"


def base_and_quote(instrument_inverse: bool, price: float, amount: float) -> tuple[float, float]:
    if instrument_inverse:
        return amount / price, amount
    return amount, price * amount


def contract_size(instrument: str, extra: dict[str, float] | None = None) -> float | None:
    """The contract size of a future or perpetual (`CONTRACT_SIZES`, then `extra`); None if unknown."""
    table = {**CONTRACT_SIZES, **(extra or {})}
    if instrument in table:
        return table[instrument]
    named = contract(instrument)
    if named.contract_type == "future" and named.inverse:
        return table.get(f"{named.base}-PERPETUAL")
    return None


def chain_currency(instrument: str) -> str:
    """The currency of an option chain name ("BTC-OPTIONS" -> "BTC"); ValueError for another name."""
    match = _CHAIN.match(instrument)
    if not match:
        raise ValueError(f"{VENUE}:{instrument} is not an option chain name: expected <CURRENCY>-OPTIONS "
                         "(BTC-OPTIONS: every BTC option)")
    return match.group(1)


# --------------------------------------------------------------------------------------------
# What is inside `result` (the fields read; the rest are ignored)
# --------------------------------------------------------------------------------------------

class DeribitTrade(msgspec.Struct):
    """One trade of `get_last_trades_by_instrument[_and_time]` and of the `trades` channel."""

    trade_id: str       # unique: digits for BTC ("320450001"), prefixed for ETH ("ETH-284830839"): trade_id
    trade_seq: Int64    # the trade's sequence number within its instrument: seq (paging by sequence)
    timestamp: Int64    # epoch ms
    price: Finite       # quote per base (USD per coin); options: the settlement coin per option
    amount: Finite      # inverse contracts: USD; linear ones and options: base units (`base_and_quote`)
    direction: str      # the taker's side: "buy" | "sell"
    instrument_name: str | msgspec.UnsetType = msgspec.UNSET  # must be the instrument asked for
    liquidation: str | None = None  # absent, or "M" | "T" | "MT": the maker's, the taker's, both liquidated


class Chart(msgspec.Struct):
    """`result` of get_tradingview_chart_data: one bar per position of the parallel arrays."""

    status: str           # "ok"; "no_data": no bars; any other is an error
    ticks: list[Int64]    # bar open times, epoch ms on the minute
    open: list[Finite]    # quote per base, as the three prices
    high: list[Finite]
    low: list[Finite]
    close: list[Finite]
    volume: list[Finite]  # base units
    cost: list[Finite]    # quote units: the bar's amount


class FundingRow(msgspec.Struct):
    """One row of `get_funding_rate_history` (`result` is an array of them; prev_index_price unread)."""

    timestamp: Int64        # epoch ms, on the hour: the row's ts
    interest_1h: Finite     # the funding of the hour that ends there: rate (interval_hours 1)
    interest_8h: Finite     # the same over 8 hours: rate_8h
    index_price: Finite | None = None  # USD per coin then (absent or null: unknown)


class BookSummary(msgspec.Struct):
    """One option of `get_book_summary_by_currency?kind=option` (`result` is an array of them)."""

    instrument_name: str        # "BTC-27DEC24-60000-C": strike, expiry and type (`contract`): option
    creation_timestamp: Int64   # epoch ms of the summary: the row's ts
    underlying_price: Finite    # the underlying's price (USD per coin), positive
    underlying_index: str       # what it follows: "index_price" or the future's name ("BTC-27DEC24")
    mark_price: Finite          # the settlement coin per option (BTC options: BTC)
    mark_iv: Finite             # implied volatility of the mark, percent, positive
    open_interest: Finite       # contracts (base units)
    bid_price: Finite | None = None  # coin per option; null without a bid
    ask_price: Finite | None = None  # null without an ask
    volume: Finite | None = None     # 24 h, base units: volume_24h


_OPTION_TYPES = {"C": "call", "P": "put"}


def _number_or_null(value: Any, what: str, page: Page) -> float | None:
    """A number the venue may send as null (datasets.wire.number otherwise)."""
    return None if value is None else number(value, what, page)


def _text(value: Any) -> bool:
    return isinstance(value, str) and value != ""


def _time(record: dict, column: str) -> datetime | None:
    """The record's time once its `column` reads as epoch ms / µs (0: epoch zero), else None."""
    t = record[column]
    if column in record.get(UNREAD, ()) or not (t == 0 or EPOCH_MS_OR_US[0] <= t < EPOCH_MS_OR_US[1]):
        return None
    return from_us(epoch_to_us(t))


def _read(records: list, kind: type, readers: dict, ctx: Page, optional: dict | None = None) -> dict:
    """The page's columns: of its declared `kind` where it is one (converted in C), else read field by
    field (`wire_columns`: a number sent as text, a field missing), for the `reads` rules to tell."""
    typed = fits(list[kind], records)
    return columns(typed, readers) if typed is not None else wire_columns(records, readers, ctx, optional)


def _us(times: list[int]) -> np.ndarray:
    stamps = np.fromiter(times, np.int64, len(times))
    return np.where(stamps >= 100_000_000_000_000, stamps, stamps * 1000)


# --------------------------------------------------------------------------------------------
# Parsers: each page's rules declared, checked on its columns (the words of each error)
# --------------------------------------------------------------------------------------------

def _result(body: Any, ctx: Page) -> Any:
    if not isinstance(body, dict):
        raise ctx.error(f"expected a JSON-RPC object, got {type(body).__name__} {str(body)[:120]!r}")
    if "error" in body:
        raise ctx.error(f"JSON-RPC error where a result was expected: {str(body['error'])[:200]}")
    return field(body, "result", "JSON-RPC response", ctx)


def parse_trades(body: Any, instrument: str, ctx: Page | None = None) -> tuple[pl.DataFrame, bool]:
    """A get_last_trades_by_instrument[_and_time] response → (trades frame, has_more)."""
    frame, has_more, _ = parse_trade_page(body, instrument, ctx)
    return frame, has_more


_TRADE_READERS = {"trade_id": None, "instrument_name": None, "trade_seq": integer, "timestamp": integer,
                  "price": number, "amount": number, "direction": None, "liquidation": None}


def trade_rules(instrument: str) -> tuple[Rule, ...]:
    """What every trade keeps, in the order a breach is told: an id, the instrument asked for, a
    sequence number, epoch ms, a positive price and amount, a direction, a known liquidation flag."""
    return (reads("trade_id"), each("trade_id", _text, "{what} trade_id is {value!r}, not a string id"),
            each("instrument_name", (msgspec.UNSET, instrument).__contains__,
                 lambda what, r: f"{what} is for {r['instrument_name']!r}, not {instrument}"),
            reads("trade_seq", integer), reads("timestamp", integer), is_epoch("timestamp"),
            reads("price", number), is_positive("price"), reads("amount", number), is_positive("amount"),
            reads("direction"),
            each("direction", ("buy", "sell").__contains__, "{what} direction is {value!r}, not buy/sell"),
            each("liquidation", (None, *LIQUIDATION_SIDES).__contains__,
                 f"{{what}} liquidation is {{value!r}}, not one of {', '.join(LIQUIDATION_SIDES)}"))


def _trade_name(i: int, trade: dict) -> str:
    """trade #i, and its id once it has one."""
    return f"trade {trade['trade_id']}" if _text(trade["trade_id"]) else f"trade #{i}"


def trade_columns(trades: list, instrument: str, inverse: bool, ctx: Page) -> dict[str, Any]:
    """Trades (REST pages, the `trades` channel) as checked columns, sized (`base_and_quote`: quantity,
    quote)."""
    optional = {"instrument_name": msgspec.UNSET, "liquidation": None}
    cols = _read(trades, DeribitTrade, _TRADE_READERS, ctx, optional)
    check(cols, trade_rules(instrument), _trade_name, ctx)
    price, amount = cols["price"], cols["amount"]
    cols["quantity"], cols["quote"] = (([a / p for p, a in zip(price, amount)], amount) if inverse
                                       else (amount, [p * a for p, a in zip(price, amount)]))
    return cols


def parse_trade_page(body: Any, instrument: str, ctx: Page | None = None
                     ) -> tuple[pl.DataFrame, bool, dict[str, str]]:
    """A trades response (`result`: {trades: `DeribitTrade`s oldest first, has_more: more in the window
    asked, page on}) → (trades frame, has_more, {trade_id: liquidation flag} of the flagged ones)."""
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
    cols = trade_columns(trades, instrument, inverse, ctx)
    frame = frame_of(TRADES_SCHEMA, VENUE, instrument, cols["timestamp"], trade_id=list(cols["trade_id"]),
                     price=cols["price"], quantity=cols["quantity"], amount=cols["quote"],
                     side=list(cols["direction"]), seq=cols["trade_seq"])
    flags = {t: flag for t, flag in zip(cols["trade_id"], cols["liquidation"]) if flag is not None}
    return frame, has_more, flags


def liquidations_of(trades: pl.DataFrame, flags: dict[str, str], instrument: str) -> pl.DataFrame:
    """The liquidations frame of the flagged trades: one row per liquidated side ("MT": two)."""
    cols = columns_of("liquidations")
    if flags:
        flagged = trades.filter(pl.col("trade_id").is_in(list(flags)))
        for ts, trade_id, price, quantity, amount, side in flagged.select(
                "ts", "trade_id", "price", "quantity", "amount", "side").iter_rows():
            for who in flags[trade_id]:  # T: the taker's order; M: the resting one, on the other side
                order_side = side if who == "T" else ("sell" if side == "buy" else "buy")
                cols.add(to_us(ts), f"{trade_id}-{who}", order_side, price, quantity, amount)
    return cols.frame(VENUE, instrument)


def parse_liquidations(body: Any, instrument: str, ctx: Page | None = None) -> tuple[pl.DataFrame, bool]:
    """A trades response → (liquidations frame of its flagged trades, has_more)."""
    trades, has_more, flags = parse_trade_page(body, instrument, ctx)
    return liquidations_of(trades, flags, instrument), has_more


def _optional(record: dict, key: str, what: str, ctx: Page) -> float | None:
    """A number the venue may leave out or send as null."""
    return _number_or_null(record.get(key), f"{what} {key}", ctx)


def _ticker_result(body: Any, instrument: str, ctx: Page) -> dict:
    result = _result(body, ctx)
    if not isinstance(result, dict):
        raise ctx.error(f"ticker result is {type(result).__name__}, not an object")
    inst = result.get("instrument_name", instrument)
    if inst != instrument:
        raise ctx.error(f"ticker is for {inst!r}, not {instrument}")
    return result


def parse_ticker(body: Any, instrument: str, ctx: Page | None = None) -> pl.DataFrame:
    """public/ticker → one tickers row (sizes in base units, funding_rate = current_funding)."""
    ctx = ctx or Page(VENUE, instrument)
    result = _ticker_result(body, instrument, ctx)
    ts = epoch_us(field(result, "timestamp", "ticker", ctx), "ticker timestamp", ctx)
    stats = field(result, "stats", "ticker", ctx)
    volume = not_negative(number(field(stats, "volume", "ticker stats", ctx), "ticker stats volume", ctx),
                          "ticker stats volume", ctx)
    amount = _optional(stats, "volume_usd", "ticker stats", ctx)
    inverse = is_inverse(instrument)
    best = []
    for side in ("bid", "ask"):
        price = _optional(result, f"best_{side}_price", "ticker", ctx)
        size = _optional(result, f"best_{side}_amount", "ticker", ctx)
        if not price:  # null, or 0 with amount 0: nothing on that side
            best += [None, None]
            continue
        positive(price, "ticker", ctx, f"best_{side}_price")
        best += [price, None if size is None else base_and_quote(inverse, price, size)[0]]
    cols = columns_of("tickers")
    cols.add(ts, _optional(result, "last_price", "ticker", ctx), *best, volume,
             None if amount is None else not_negative(amount, "ticker stats volume_usd", ctx),
             _optional(result, "mark_price", "ticker", ctx), _optional(result, "index_price", "ticker", ctx),
             _optional(result, "current_funding", "ticker", ctx))
    return cols.frame(VENUE, instrument)


def declared_size(instrument: str, contract_sizes: dict[str, float] | None = None) -> float:
    size = contract_size(instrument, contract_sizes)
    if size is None:
        raise ValueError(f"{VENUE} {instrument}: no contract size declared (get_instruments contract_size); "
                         f"pass contract_sizes={{'{instrument}': size}}")
    return size


def parse_open_interest(body: Any, instrument: str, ctx: Page | None = None,
                        contract_sizes: dict[str, float] | None = None) -> pl.DataFrame:
    """public/ticker → one open_interest row: open_interest (amount units) in contracts, base and quote."""
    ctx = ctx or Page(VENUE, instrument)
    size = declared_size(instrument, contract_sizes)
    cols = columns_of("open_interest")
    cols.add(*open_interest_of(_ticker_result(body, instrument, ctx), size, is_inverse(instrument), ctx))
    return cols.frame(VENUE, instrument)


def open_interest_of(ticker: Any, size: float, inverse: bool, ctx: Page) -> tuple:
    """A ticker's open interest (REST public/ticker, and the ticker channel's notification):
    (ts µs, contracts of `size`, size, its unit, base by the ticker's mark price, quote)."""
    ts = epoch_us(field(ticker, "timestamp", "ticker", ctx), "ticker timestamp", ctx)
    amount = not_negative(number(field(ticker, "open_interest", "ticker", ctx), "ticker open_interest", ctx),
                          "ticker open_interest", ctx)
    mark = number(field(ticker, "mark_price", "ticker", ctx), "ticker mark_price", ctx)
    positive(mark, "ticker", ctx, "mark_price")
    base, quote = base_and_quote(inverse, mark, amount)
    return ts, round(amount / size, 8), size, "quote" if inverse else "base", base, quote


_FUNDING_READERS = {"timestamp": integer, "interest_1h": number, "interest_8h": number,
                    "index_price": _number_or_null}
FUNDING_RULES = (reads("timestamp", integer), is_epoch("timestamp"), reads("interest_1h", number),
                 reads("interest_8h", number), reads("index_price", _number_or_null),
                 or_null(is_positive("index_price")))


def _funding_name(i: int, row: dict) -> str:
    """funding row #i, and its time once its timestamp is one."""
    t = _time(row, "timestamp")
    return f"funding row #{i}" if t is None else f"funding at {t.isoformat()}"


def parse_funding(body: Any, instrument: str, ctx: Page | None = None) -> pl.DataFrame:
    """get_funding_rate_history (`FundingRow`s) → funding rows (rate = interest_1h over 1 hour)."""
    ctx = ctx or Page(VENUE, instrument)
    result = _result(body, ctx)
    if not isinstance(result, list):
        raise ctx.error(f"funding history result is {type(result).__name__}, not an array")
    cols = _read(result, FundingRow, _FUNDING_READERS, ctx, {"index_price": None})
    check(cols, FUNDING_RULES, _funding_name, ctx)
    n = len(result)
    return frame_of(FUNDING_SCHEMA, VENUE, instrument, cols["timestamp"], rate=cols["interest_1h"],
                    interval_hours=[1.0] * n, rate_8h=cols["interest_8h"], mark_price=[None] * n,
                    index_price=cols["index_price"])


_SUMMARY_READERS = {"instrument_name": None, "creation_timestamp": integer, "underlying_price": number,
                    "underlying_index": None, "mark_price": number, "mark_iv": number, "bid_price": _number_or_null,
                    "ask_price": _number_or_null, "volume": _number_or_null, "open_interest": number}


def chain_rules(currency: str) -> tuple[Rule, ...]:
    """What every option of the `currency` chain keeps, in the order a breach is told: an option name
    of the chain, epoch ms, an index name, finite numbers, the prices and sizes not negative, a
    positive underlying price and mark_iv."""
    sizes = ("mark_price", "bid_price", "ask_price", "volume", "open_interest")
    return (reads("instrument_name"), each("option", lambda n: not isinstance(n, ValueError), "{what}: {value}"),
            each("option", _is_option, lambda what, r: (
                f"{what} {r['instrument_name']!r} is not an option name (like BTC-27DEC24-60000-C)")),
            each("option", lambda n: _is_option(n) and _settles(n) == currency,
                 f"{{what}} is not an option of the {currency} chain"),
            reads("creation_timestamp", integer), is_epoch("creation_timestamp"),
            reads("underlying_price", number), reads("underlying_index"),
            each("underlying_index", _text, "{what} underlying_index is {value!r}, not a name"),
            *(reads(name, _SUMMARY_READERS[name]) for name in ("mark_price", "mark_iv", *sizes[1:])),
            *(or_null(is_not_negative(name)) for name in sizes),
            is_positive("underlying_price"), is_positive("mark_iv"))


def _named(name: Any) -> Contract | ValueError | None:
    """What an option name stands for (`contract`; its ValueError if none; None for a name not text)."""
    if not isinstance(name, str):
        return None
    try:
        return contract(name)
    except ValueError as error:
        return error


def _is_option(named: Any) -> bool:
    return isinstance(named, Contract) and named.contract_type == "option"


def _settles(option: Contract) -> str:
    """The currency an option settles in (USDC options: their quote) = its chain's."""
    return option.quote if "_" in option.instrument.split("-")[0] else option.base


def _option_name(i: int, summary: dict) -> str:
    """book summary #i, and its option's name once it is one."""
    return f"option {summary['instrument_name']}" if _is_option(summary["option"]) else f"book summary #{i}"


def parse_option_chain(body: Any, instrument: str, ctx: Page | None = None) -> pl.DataFrame:
    """get_book_summary_by_currency (kind=option: `BookSummary`s) → the chain's option_chain rows
    (`instrument`: "BTC-OPTIONS"); an option name that does not parse is an error naming it."""
    ctx = ctx or Page(VENUE, instrument)
    currency = chain_currency(instrument)
    result = _result(body, ctx)
    if not isinstance(result, list):
        raise ctx.error(f"book summary result is {type(result).__name__}, not an array")
    cols = _read(result, BookSummary, _SUMMARY_READERS, ctx, dict.fromkeys(("bid_price", "ask_price", "volume")))
    options = cols["option"] = np.fromiter(map(_named, cols["instrument_name"]), object, len(result))
    check(cols, chain_rules(currency), _option_name, ctx)
    n = len(result)
    frame = frame_of(OPTION_CHAIN_SCHEMA, VENUE, instrument, cols["creation_timestamp"],
                     option=list(cols["instrument_name"]), expiry=[to_us(o.expires_at) for o in options],
                     strike=[o.strike for o in options], option_type=[_OPTION_TYPES[o.option_type] for o in options],
                     underlying_price=cols["underlying_price"], underlying_index=list(cols["underlying_index"]),
                     mark_price=cols["mark_price"], mark_iv=cols["mark_iv"], bid_iv=[None] * n, ask_iv=[None] * n,
                     bid_price=cols["bid_price"], ask_price=cols["ask_price"], open_interest=cols["open_interest"],
                     volume_24h=cols["volume"])
    return finish("option_chain", [frame])


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


_CHART_KEYS = Chart.__struct_fields__[1:]  # ticks, open, high, low, close, volume, cost
CHART_RULES = (reads("ticks", integer, ""), is_epoch("ticks")._replace(
    says="{what} is {value}: neither epoch milliseconds nor microseconds (seconds? nanoseconds?)"),
    *(reads(name, number) for name in _CHART_KEYS[1:]), *bar_rules("ts"), is_not_negative("cost"))


def _bar_name(i: int, bar: dict) -> str:
    """chart ticks[i], and the bar's minute once its tick is a time."""
    t = _time(bar, "ticks")
    return f"chart ticks[{i}]" if t is None else f"bar {t.strftime('%Y-%m-%d %H:%M:%S')}"


def parse_chart(body: Any, instrument: str, ctx: Page | None = None) -> pl.DataFrame:
    """get_tradingview_chart_data (`Chart`) → bars frame (volume = base, amount = cost)."""
    ctx = ctx or Page(VENUE, instrument)
    cols = _chart_columns(_result(body, ctx), ctx)
    cols["ts"] = _us(cols["ticks"])
    check(cols, CHART_RULES, _bar_name, ctx)
    return frame_of(BARS_SCHEMA, VENUE, instrument, cols["ticks"], open=cols["open"], high=cols["high"],
                    low=cols["low"], close=cols["close"], volume=cols["volume"], amount=cols["cost"],
                    trades=[None] * len(cols["ticks"]))


def _chart_columns(result: Any, ctx: Page) -> dict[str, Any]:
    """A chart's bars as columns (none for status "no_data"): its arrays, all of one length."""
    status = field(result, "status", "chart", ctx)
    if status == "no_data":
        return {key: [] for key in _CHART_KEYS}
    if status != "ok":
        raise ctx.error(f"chart status is {status!r}, not \"ok\" or \"no_data\"")
    arrays = [field(result, key, "chart", ctx) for key in _CHART_KEYS]
    for key, array in zip(_CHART_KEYS, arrays):
        if not isinstance(array, list):
            raise ctx.error(f"chart {key} is {type(array).__name__}, not an array")
    if len({len(a) for a in arrays}) != 1:
        raise ctx.error(f"chart arrays differ in length: {dict(zip(_CHART_KEYS, map(len, arrays)))}")
    chart = fits(Chart, result)
    if chart is not None:
        return {key: getattr(chart, key) for key in _CHART_KEYS}
    readers = dict(zip(_CHART_KEYS, (integer, *[number] * 6)))
    return wire_columns([dict(zip(_CHART_KEYS, bar)) for bar in zip(*arrays)], readers, ctx)



# --------------------------------------------------------------------------------------------
# The client
# --------------------------------------------------------------------------------------------

class DeribitClient(ApiClient):
    """Deribit public API (limits and errors: `LIMITS`, `ERRORS`)."""

    api_name = "Deribit"
    name = VENUE
    ERRORS = ERRORS
    LIMITS = LIMITS
    DATASETS: ClassVar[dict[str, str]] = {
        "trades": HISTORY, "bars_1m": HISTORY, "books": SNAPSHOT, "tickers": SNAPSHOT, "funding": HISTORY,
        "open_interest": SNAPSHOT, "liquidations": HISTORY, "option_chain": SNAPSHOT}

    def __init__(self, base_url: str = DEFAULT_BASE_URL, *, page_size: int = 1000,
                 contract_sizes: dict[str, float] | None = None, **kwargs):
        super().__init__(base_url, **kwargs)
        if not 1 <= page_size <= 1000:
            raise ValueError("page_size: 1..1000")
        self.page_size = page_size
        self.contract_sizes = contract_sizes
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

    def make_error(self, category, *, status, code, message, page):
        """The errors name the venue (DERIBIT), as its data errors do."""
        if category in ("permission", "unauthorized"):
            detail = f"code {code}: {message}" if code is not None else message
            return SourcePermissionError(VENUE, status, detail, request=page.request)
        if category in ("rejected", "not_found"):
            cls = SourceNotFound if category == "not_found" else SourceRequestError
            return cls(VENUE, page.instrument, status, code, message, request=page.request)
        return super().make_error(category, status=status, code=code, message=message, page=page)

    async def _public(self, method: str, params: dict[str, Any], *, instrument: str,
                      day: date | None) -> tuple[Any, Page]:
        path = f"/api/v2/public/{method}"
        page = Page(VENUE, instrument, day, describe_request("GET", path, params))
        return await self.call("GET", path, page=page, params=params), page

    # ---- trades, book, bars -----------------------------------------------------------------

    async def trades(self, instrument: str, start: datetime, end: datetime) -> pl.DataFrame:
        start, end = as_utc(start), as_utc(end)
        pages = await self._trade_pages(instrument, start, end)
        frames = [page for page, _ in pages]
        return finish_trades(frames, start, end, self.dropped.of(instrument), paged="forward")

    async def liquidations(self, instrument: str, start: datetime, end: datetime) -> pl.DataFrame:
        """The liquidated sides of the trades of [start, end) (the trades' paging)."""
        start, end = as_utc(start), as_utc(end)
        pages = await self._trade_pages(instrument, start, end)
        return finish("liquidations", [liquidations_of(page, flags, instrument) for page, flags in pages],
                      start, end, self.dropped.of(instrument), paged="forward")

    async def _trade_pages(self, instrument: str, start: datetime, end: datetime
                           ) -> list[tuple[pl.DataFrame, dict[str, str]]]:
        """Every page of trades of [start, end) with its liquidation flags: by time, by sequence
        where one millisecond fills a page; the trades of a millisecond seen twice are in two pages."""
        if end <= start:
            return []
        end_ms = ceil_ms(end) - 1  # inclusive on the venue
        cursor = floor_ms(start)
        pages: list[tuple[pl.DataFrame, dict[str, str]]] = []
        while True:
            params = {"instrument_name": instrument, "start_timestamp": cursor, "end_timestamp": end_ms,
                      "count": self.page_size, "sorting": "asc"}
            body, ctx = await self._public("get_last_trades_by_instrument_and_time", params, instrument=instrument,
                                           day=day_of(from_us(cursor * 1000)))
            page, has_more, flags = parse_trade_page(body, instrument, ctx)
            pages.append((page, flags))  # the trades of the millisecond `cursor` seen again: dropped later
            if not has_more or page.height == 0:
                break
            last_ms = to_us(page["ts"].max()) // 1000
            if last_ms <= cursor:
                # One millisecond fills the page: moving the start cannot progress, page by sequence.
                pages.extend(await self._trades_by_seq(instrument, int(page["seq"].max()) + 1, end_ms,
                                                       day_of(from_us(cursor * 1000))))
                break
            cursor = last_ms
        return pages

    async def trades_by_seq(self, instrument: str, first_seq: int, last_seq: int, *,
                            day: date | None = None) -> pl.DataFrame:
        """Trades with first_seq <= trade_seq <= last_seq; `day` names the slice in errors."""
        pages = await self._trades_by_seq(instrument, first_seq, None, day, last_seq)
        frame = finish_trades([page for page, _ in pages], drops=self.dropped.of(instrument))
        inside = frame.filter(pl.col("seq").is_between(first_seq, last_seq))
        self.dropped.of(instrument)["past_window_edge"] += frame.height - inside.height
        return inside

    async def _trades_by_seq(self, instrument: str, start_seq: int, end_ms: int | None, day: date | None,
                             end_seq: int | None = None) -> list[tuple[pl.DataFrame, dict[str, str]]]:
        """Pages from `start_seq` until one passes `end_ms` (or reaches `end_seq`, asked as end_seq)."""
        pages = []
        while True:
            params = {"instrument_name": instrument, "start_seq": start_seq, "count": self.page_size,
                      "sorting": "asc"}
            if end_seq is not None:
                params.update(end_seq=end_seq, count=max(1, min(self.page_size, end_seq - start_seq + 1)))
            body, ctx = await self._public("get_last_trades_by_instrument", params, instrument=instrument, day=day)
            page, has_more, flags = parse_trade_page(body, instrument, ctx)
            if page.height:
                day = day_of(page["ts"].max())
            pages.append((page, flags))
            if page.height == 0 or not has_more or (end_ms is not None and to_us(page["ts"].max()) // 1000 > end_ms):
                return pages
            next_seq = int(page["seq"].max()) + 1
            if next_seq <= start_seq:
                raise ctx.error(f"trades by sequence from {start_seq} did not advance")
            if end_seq is not None and next_seq > end_seq:
                return pages
            start_seq = next_seq

    async def book_snapshot(self, instrument: str, depth: int = 20) -> pl.DataFrame:
        venue_depth = next((d for d in BOOK_DEPTHS if d >= depth), BOOK_DEPTHS[-1])
        body, ctx = await self._public("get_order_book", {"instrument_name": instrument, "depth": venue_depth},
                                       instrument=instrument, day=day_of(datetime.now().astimezone()))
        return parse_order_book(body, instrument, ctx).filter(pl.col("level") < depth)

    async def order_book_body(self, instrument: str, depth: int = 1000) -> dict:
        """The `public/get_order_book` answer as sent (the JSON-RPC envelope; `result.change_id`, bids
        and asks): the snapshot a live book's gap hour is repaired with (landed raw by the collector)."""
        venue_depth = next((d for d in BOOK_DEPTHS if d >= depth), BOOK_DEPTHS[-1])
        body, ctx = await self._public("get_order_book", {"instrument_name": instrument, "depth": venue_depth},
                                       instrument=instrument, day=day_of(datetime.now().astimezone()))
        result = _result(body, ctx)
        if not isinstance(result, dict) or not isinstance(result.get("change_id"), int) or \
                not all(isinstance(result.get(side), list) for side in ("bids", "asks")):
            raise ctx.error("get_order_book: no result with change_id, bids and asks")
        return body

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

    # ---- tickers, open interest, funding, option chains --------------------------------------

    async def _ticker(self, instrument: str) -> tuple[Any, Page]:
        return await self._public("ticker", {"instrument_name": instrument}, instrument=instrument,
                                  day=day_of(datetime.now().astimezone()))

    async def tickers(self, instrument: str) -> pl.DataFrame:
        body, ctx = await self._ticker(instrument)
        return parse_ticker(body, instrument, ctx)

    async def open_interest(self, instrument: str) -> pl.DataFrame:
        declared_size(instrument, self.contract_sizes)  # an unknown size fails before asking
        body, ctx = await self._ticker(instrument)
        return parse_open_interest(body, instrument, ctx, self.contract_sizes)

    async def funding(self, instrument: str, start: datetime, end: datetime) -> pl.DataFrame:
        """Hourly funding of [start, end), in windows of `FUNDING_WINDOW`."""
        start, end = as_utc(start), as_utc(end)
        frames, cursor = [], start
        while cursor < end:
            window_end = min(cursor + FUNDING_WINDOW, end)
            # start_timestamp exclusive [inferred], end_timestamp inclusive: the rows of [cursor, window_end)
            params = {"instrument_name": instrument, "start_timestamp": ceil_ms(cursor) - 1,
                      "end_timestamp": ceil_ms(window_end) - 1}
            body, ctx = await self._public("get_funding_rate_history", params, instrument=instrument,
                                           day=day_of(cursor))
            frames.append(parse_funding(body, instrument, ctx))
            cursor = window_end
        return finish("funding", frames, start, end, self.dropped.of(instrument))

    async def option_chain(self, instrument: str) -> pl.DataFrame:
        """Every option of the chain `instrument` ("BTC-OPTIONS") now, one book-summary request."""
        params = {"currency": chain_currency(instrument), "kind": "option"}
        body, ctx = await self._public("get_book_summary_by_currency", params, instrument=instrument,
                                       day=day_of(datetime.now().astimezone()))
        return parse_option_chain(body, instrument, ctx)


__all__ = ["CONTRACT_SIZES", "ERRORS", "LIMITS", "DeribitClient", "chain_currency", "contract_size",
           "is_inverse", "liquidations_of", "parse_chart", "parse_funding", "parse_liquidations",
           "parse_open_interest", "parse_option_chain", "parse_order_book", "parse_ticker",
           "parse_trade_page", "parse_trades"]
