"""Deribit v2 public market data (JSON-RPC over HTTP GET `/api/v2/public/<method>`).

Answers are `{jsonrpc, id, result, usIn, usOut, usDiff, testnet}` (usIn/usOut in microseconds). What a
page's `result` holds is declared once below (`TradePage`, `Chart`, `FundingRow`, `BookSummary`: one
comment per field). Deribit's numbers are JSON numbers: a page of exactly the declared types is
converted in C and its rules checked on its columns; any other page (a number sent as text, a field
missing, a rule broken) is read record by record, which names the first record, field and value at
fault, and reads what the record readers allow.

- Trades (`get_last_trades_by_instrument_and_time`: start_timestamp and end_timestamp both inclusive,
  count <= 1000, sorting=asc). Paging: while `has_more`, the next page starts AT the last timestamp
  seen (it may hold more trades of that millisecond) and the trades of that millisecond already seen
  are dropped by trade_id (counted as `duplicates`). A page made entirely of one millisecond cannot
  move the start: the client then pages by `trade_seq` (`get_last_trades_by_instrument?start_seq=`),
  as `trades_by_seq` does for the trade-id refill (quality.continuity: `&end_seq=`).
- Liquidations: the trades' `liquidation` flags over the trades' paging; a row per liquidated side,
  "<trade_id>-M|T", side = that order's (T: the taker's direction; M: the opposite).
- Bars: `get_tradingview_chart_data` (resolution=1), in `CHART_WINDOW`s; trades = null.
- Funding: `get_funding_rate_history`, hourly, perpetuals only. At most about a month an answer,
  start_timestamp exclusive [inferred]: asked in `FUNDING_WINDOW`s as (start - 1 ms, end - 1 ms].
- Option chains: `get_book_summary_by_currency?currency=BTC&kind=option` ("BTC-OPTIONS"); strike,
  expiry (08:00 UTC) and type from the name. No bid_iv / ask_iv there (only in a ticker per
  option): null.
- `get_order_book` → `result: {timestamp, change_id, bids: [[price, amount]], asks, stats, ...}`.
- `ticker` → `result: {timestamp, last_price, best_bid_price/_amount, best_ask_price/_amount (null,
  or 0 and 0, for an empty side), mark_price, index_price, current_funding, funding_8h, open_interest,
  stats: {volume (24h, base), volume_usd}}`. tickers: funding_rate = current_funding (the rate now),
  amount_24h = volume_usd (for USDC contracts taken as the quote amount [inferred]). open_interest
  (USD for inverse contracts, base coin for linear ones) / get_instruments `contract_size`
  (`CONTRACT_SIZES`, `contract_sizes=`) = contracts; base and quote via mark_price. No OI history.

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

Over 500 lines: everything about one source in one module (parsers of its endpoints + the client).
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from typing import Any, ClassVar

import msgspec
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
from marketdata_assets.datasets.declared import Int64, columns, epoch_ok, fits, stamped
from marketdata_assets.datasets.declared import epoch_us as epoch_us_of
from marketdata_assets.datasets.frames import (
    BARS_SCHEMA,
    FUNDING_SCHEMA,
    OPTION_CHAIN_SCHEMA,
    TRADES_SCHEMA,
    as_utc,
    ceil_ms,
    day_of,
    floor_ms,
    from_us,
    to_us,
)
from marketdata_assets.datasets.wire import (
    BarColumns,
    DropCounts,
    Trade,
    TradeColumns,
    book_frame,
    book_levels,
    check_bar,
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
    """One trade of `get_last_trades_by_instrument[_and_time]` (the `trades` channel's are read by
    `trade_of`: the stream keeps the venue's number text)."""

    trade_id: str       # unique: digits for BTC ("320450001"), prefixed for ETH ("ETH-284830839"): trade_id
    trade_seq: Int64    # the trade's sequence number within its instrument: seq (paging by sequence)
    timestamp: Int64    # epoch ms
    price: float        # quote per base (USD per coin); options: the settlement coin per option
    amount: float       # inverse contracts: USD; linear ones and options: base units (`base_and_quote`)
    direction: str      # the taker's side: "buy" | "sell"
    instrument_name: str | msgspec.UnsetType = msgspec.UNSET  # must be the instrument asked for
    liquidation: str | None = None  # absent, or "M" | "T" | "MT": the maker's, the taker's, both liquidated


class TradePage(msgspec.Struct):
    """`result` of get_last_trades_by_instrument[_and_time]."""

    trades: list[DeribitTrade]  # oldest first (sorting=asc)
    has_more: bool              # more trades in the window asked: page on


class Chart(msgspec.Struct):
    """`result` of get_tradingview_chart_data: one bar per position of the parallel arrays."""

    status: str           # "ok"; "no_data": no bars; any other is an error
    ticks: list[Int64]    # bar open times, epoch ms on the minute
    open: list[float]     # quote per base, as the three prices
    high: list[float]
    low: list[float]
    close: list[float]
    volume: list[float]   # base units
    cost: list[float]     # quote units: the bar's amount


class FundingRow(msgspec.Struct):
    """One row of `get_funding_rate_history` (`result` is an array of them; prev_index_price unread)."""

    timestamp: Int64        # epoch ms, on the hour: the row's ts
    interest_1h: float      # the funding of the hour that ends there: rate (interval_hours 1)
    interest_8h: float      # the same over 8 hours: rate_8h
    index_price: float | None = None  # USD per coin then (absent or null: unknown)


class BookSummary(msgspec.Struct):
    """One option of `get_book_summary_by_currency?kind=option` (`result` is an array of them)."""

    instrument_name: str        # "BTC-27DEC24-60000-C": strike, expiry and type (`contract`): option
    creation_timestamp: Int64   # epoch ms of the summary: the row's ts
    underlying_price: float     # the underlying's price (USD per coin), positive
    underlying_index: str       # what it follows: "index_price" or the future's name ("BTC-27DEC24")
    mark_price: float           # the settlement coin per option (BTC options: BTC)
    mark_iv: float              # implied volatility of the mark, percent, positive
    open_interest: float        # contracts (base units)
    bid_price: float | None = None  # coin per option; null without a bid
    ask_price: float | None = None  # null without an ask
    volume: float | None = None     # 24 h, base units: volume_24h


_DIRECTIONS = frozenset({"buy", "sell"})
_OPTION_TYPES = {"C": "call", "P": "put"}
_FLAGS = frozenset({None, *LIQUIDATION_SIDES})
# The fields a page's rules and rows read, as columns.
_TRADE_COLUMNS = {"timestamp": pl.Int64, "trade_id": pl.Utf8, "price": pl.Float64, "amount": pl.Float64,
                  "direction": pl.Utf8, "trade_seq": pl.Int64}
_FUNDING_COLUMNS = {"timestamp": pl.Int64, "interest_1h": pl.Float64, "interest_8h": pl.Float64,
                    "index_price": pl.Float64}
_SUMMARY_COLUMNS = {"creation_timestamp": pl.Int64, "instrument_name": pl.Utf8, "underlying_index": pl.Utf8,
                    **dict.fromkeys(("underlying_price", "mark_price", "mark_iv", "bid_price", "ask_price",
                                     "open_interest", "volume"), pl.Float64)}


def _passes(page: pl.DataFrame, rules: pl.Expr) -> bool:
    """Every row of `page` keeps `rules` (a null is a rule not kept)."""
    return page.select(rules.fill_null(False).all()).item()


# --------------------------------------------------------------------------------------------
# Parsers: each page's rules on its columns, else record by record (the words of each error)
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


def trade_of(record: Any, instrument: str, inverse: bool, what: str, ctx: Page) -> tuple[Trade, str | None]:
    """One trade `{trade_id, trade_seq, timestamp, price, amount, direction, liquidation?}` (REST pages
    and the `trades.<instrument>.<interval>` channel), sized (`base_and_quote`), and its liquidation flag."""
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
    flag = record.get("liquidation")
    if flag is not None and flag not in LIQUIDATION_SIDES:
        raise ctx.error(f"{what} liquidation is {flag!r}, not one of {', '.join(LIQUIDATION_SIDES)}")
    quantity, quote = base_and_quote(inverse, price, amount)
    return Trade(ts, trade_id, price, quantity, quote, direction, seq, ts // 1000), flag


def parse_trade_page(body: Any, instrument: str, ctx: Page | None = None
                     ) -> tuple[pl.DataFrame, bool, dict[str, str]]:
    """A trades response (`TradePage`) → (trades frame, has_more, {trade_id: liquidation flag} of the
    flagged ones)."""
    ctx = ctx or Page(VENUE, instrument)
    result = _result(body, ctx)
    page = fits(TradePage, result)
    frame = None if page is None else _trades_frame(page.trades, instrument)
    if frame is None:
        return _trade_page_by_record(result, instrument, ctx)
    return frame, page.has_more, {t.trade_id: t.liquidation for t in page.trades if t.liquidation is not None}


def _trades_frame(trades: list[DeribitTrade], instrument: str) -> pl.DataFrame | None:
    """The page's trades sized (`base_and_quote`), or None if one breaks a rule: an id, the instrument
    asked for, epoch ms, a finite positive price and amount, a direction, a known liquidation flag."""
    inverse = is_inverse(instrument)
    if inverse and trades:
        note_conversion(instrument, INVERSE_CONVERSION)
    if not ({t.instrument_name for t in trades} <= {instrument, msgspec.UNSET}
            and {t.direction for t in trades} <= _DIRECTIONS and {t.liquidation for t in trades} <= _FLAGS):
        return None
    page = pl.DataFrame(columns(trades, _TRADE_COLUMNS), schema=_TRADE_COLUMNS)
    price, amount = pl.col("price"), pl.col("amount")
    if not _passes(page, (pl.col("trade_id").str.len_bytes() > 0) & epoch_ok("timestamp") & price.is_finite()
                   & amount.is_finite() & (price > 0) & (amount > 0)):
        return None
    quantity, quote = (amount / price, amount) if inverse else (amount, price * amount)
    page = page.select(epoch_us_of("timestamp").alias("ts"), "trade_id", "price", quantity=quantity,
                       amount=quote, side="direction", seq="trade_seq")
    return stamped(page, VENUE, instrument, TRADES_SCHEMA)


def _trade_page_by_record(result: Any, instrument: str, ctx: Page
                          ) -> tuple[pl.DataFrame, bool, dict[str, str]]:
    """`parse_trade_page` trade by trade (`trade_of`): the first thing wrong, in its words."""
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
    flags: dict[str, str] = {}
    for i, record in enumerate(trades):
        trade, flag = trade_of(record, instrument, inverse, f"trade #{i}", ctx)
        if flag is not None:
            flags[trade.trade_id] = flag
        cols.add(*trade[:7])
    return cols.frame(VENUE, instrument), has_more, flags


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
    value = record.get(key)
    return None if value is None else number(value, f"{what} {key}", ctx)


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


def parse_funding(body: Any, instrument: str, ctx: Page | None = None) -> pl.DataFrame:
    """get_funding_rate_history (`FundingRow`s) → funding rows (rate = interest_1h over 1 hour)."""
    ctx = ctx or Page(VENUE, instrument)
    result = _result(body, ctx)
    rows = fits(list[FundingRow], result)
    frame = None if rows is None else _funding_frame(rows, instrument)
    return _funding_by_row(result, instrument, ctx) if frame is None else frame


def _funding_frame(rows: list[FundingRow], instrument: str) -> pl.DataFrame | None:
    """The page's funding rows, or None if one breaks a rule: epoch ms, finite rates, an index price
    that is null or positive."""
    page = pl.DataFrame(columns(rows, _FUNDING_COLUMNS), schema=_FUNDING_COLUMNS)
    rates, index = pl.col("interest_1h", "interest_8h"), pl.col("index_price")
    if not _passes(page, epoch_ok("timestamp") & pl.all_horizontal(rates.is_finite())
                   & (index.is_null() | (index.is_finite() & (index > 0)))):
        return None
    return stamped(page.select(epoch_us_of("timestamp").alias("ts"), "index_price", rate="interest_1h",
                               interval_hours=pl.lit(1.0), rate_8h="interest_8h", mark_price=pl.lit(None)),
                   VENUE, instrument, FUNDING_SCHEMA)


def _funding_by_row(result: Any, instrument: str, ctx: Page) -> pl.DataFrame:
    """`parse_funding` row by row: the first thing wrong, in its words."""
    if not isinstance(result, list):
        raise ctx.error(f"funding history result is {type(result).__name__}, not an array")
    cols = columns_of("funding")
    for i, record in enumerate(result):
        what = f"funding row #{i}"
        ts = epoch_us(field(record, "timestamp", what, ctx), f"{what} timestamp", ctx)
        what = f"funding at {from_us(ts).isoformat()}"
        rate = number(field(record, "interest_1h", what, ctx), f"{what} interest_1h", ctx)
        rate_8h = number(field(record, "interest_8h", what, ctx), f"{what} interest_8h", ctx)
        index = _optional(record, "index_price", what, ctx)
        if index is not None:
            positive(index, what, ctx, "index_price")
        cols.add(ts, rate, 1.0, rate_8h, None, index)
    return cols.frame(VENUE, instrument)


def parse_option_chain(body: Any, instrument: str, ctx: Page | None = None) -> pl.DataFrame:
    """get_book_summary_by_currency (kind=option: `BookSummary`s) → the chain's option_chain rows
    (`instrument`: "BTC-OPTIONS"); an option name that does not parse is an error naming it."""
    ctx = ctx or Page(VENUE, instrument)
    currency = chain_currency(instrument)
    result = _result(body, ctx)
    rows = fits(list[BookSummary], result)
    frame = None if rows is None else _chain_frame(rows, currency, instrument)
    frame = _chain_by_option(result, currency, instrument, ctx) if frame is None else frame
    return finish("option_chain", [frame])


def _chain_option(name: str, currency: str) -> Contract | None:
    """The option `name` stands for, if it is one of the `currency` chain (USDC options settle in
    their quote), else None."""
    try:
        named = contract(name)
    except ValueError:
        return None
    settles = named.quote if "_" in name.split("-")[0] else named.base
    return named if named.contract_type == "option" and settles == currency else None


def _chain_frame(rows: list[BookSummary], currency: str, instrument: str) -> pl.DataFrame | None:
    """The chain's rows, or None if one breaks a rule: an option of the chain, epoch ms, an index
    name, finite numbers, a positive underlying price and mark_iv, the others not negative."""
    named = [_chain_option(r.instrument_name, currency) for r in rows]
    if any(n is None for n in named):
        return None
    page = pl.DataFrame(columns(rows, _SUMMARY_COLUMNS), schema=_SUMMARY_COLUMNS)
    sizes, underlying, mark_iv = (pl.col("mark_price", "bid_price", "ask_price", "open_interest", "volume"),
                                  pl.col("underlying_price"), pl.col("mark_iv"))
    if not _passes(page, epoch_ok("creation_timestamp") & (pl.col("underlying_index").str.len_bytes() > 0)
                   & underlying.is_finite() & mark_iv.is_finite() & (underlying > 0) & (mark_iv > 0)
                   & pl.all_horizontal((sizes.is_finite() & (sizes >= 0)).fill_null(True))):
        return None
    page = page.with_columns(epoch_us_of("creation_timestamp").alias("ts"),
                             pl.Series("expiry", [to_us(n.expires_at) for n in named], pl.Int64),
                             pl.Series("strike", [n.strike for n in named], pl.Float64),
                             pl.Series("option_type", [_OPTION_TYPES[n.option_type] for n in named], pl.Utf8),
                             bid_iv=pl.lit(None), ask_iv=pl.lit(None))
    return stamped(page.rename({"instrument_name": "option", "volume": "volume_24h"}), VENUE, instrument,
                   OPTION_CHAIN_SCHEMA)


def _chain_by_option(result: Any, currency: str, instrument: str, ctx: Page) -> pl.DataFrame:
    """`parse_option_chain` option by option: the first thing wrong, in its words."""
    if not isinstance(result, list):
        raise ctx.error(f"book summary result is {type(result).__name__}, not an array")
    cols = columns_of("option_chain")
    for i, record in enumerate(result):
        name = field(record, "instrument_name", f"book summary #{i}", ctx)
        try:
            named = contract(name) if isinstance(name, str) else None
        except ValueError as error:
            raise ctx.error(f"book summary #{i}: {error}") from None
        if named is None or named.contract_type != "option":
            raise ctx.error(f"book summary #{i} {name!r} is not an option name (like BTC-27DEC24-60000-C)")
        what = f"option {name}"
        settles = named.quote if "_" in name.split("-")[0] else named.base
        if settles != currency:
            raise ctx.error(f"{what} is not an option of the {currency} chain")
        ts = epoch_us(field(record, "creation_timestamp", what, ctx), f"{what} creation_timestamp", ctx)
        underlying = number(field(record, "underlying_price", what, ctx), f"{what} underlying_price", ctx)
        index = field(record, "underlying_index", what, ctx)
        if not isinstance(index, str) or not index:
            raise ctx.error(f"{what} underlying_index is {index!r}, not a name")
        mark = number(field(record, "mark_price", what, ctx), f"{what} mark_price", ctx)
        mark_iv = number(field(record, "mark_iv", what, ctx), f"{what} mark_iv", ctx)
        bid, ask, volume = (_optional(record, key, what, ctx) for key in ("bid_price", "ask_price", "volume"))
        open_interest = number(field(record, "open_interest", what, ctx), f"{what} open_interest", ctx)
        for key, value in (("mark_price", mark), ("bid_price", bid), ("ask_price", ask), ("volume", volume),
                           ("open_interest", open_interest)):
            if value is not None:
                not_negative(value, f"{what} {key}", ctx)
        positive(underlying, what, ctx, "underlying_price")
        positive(mark_iv, what, ctx, "mark_iv")
        option_type = "call" if named.option_type == "C" else "put"
        cols.add(ts, name, to_us(named.expires_at), named.strike, option_type, underlying, index, mark,
                 mark_iv, None, None, bid, ask, open_interest, volume)
    return cols.frame(VENUE, instrument)


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
    """get_tradingview_chart_data (`Chart`) → bars frame (volume = base, amount = cost)."""
    ctx = ctx or Page(VENUE, instrument)
    result = _result(body, ctx)
    chart = fits(Chart, result)  # "no_data" and any other status: `_chart_by_bar` answers or words it
    frame = None if chart is None or chart.status != "ok" else _chart_frame(chart, instrument)
    return _chart_by_bar(result, instrument, ctx) if frame is None else frame


def _chart_frame(chart: Chart, instrument: str) -> pl.DataFrame | None:
    """The chart's bars, or None if its arrays differ in length or a bar breaks a rule: epoch ms on a
    minute, finite, a bar that can be true (datasets.wire.check_bar), volume and cost not negative."""
    names = Chart.__struct_fields__[1:]  # ticks, open, high, low, close, volume, cost
    if len({len(getattr(chart, name)) for name in names}) != 1:
        return None
    page = pl.DataFrame({name: getattr(chart, name) for name in names},
                        schema={name: pl.Int64 if name == "ticks" else pl.Float64 for name in names})
    o, h, lo, c = pl.col("open"), pl.col("high"), pl.col("low"), pl.col("close")
    if not _passes(page, epoch_ok("ticks") & (epoch_us_of("ticks") % 60_000_000 == 0) & (lo > 0)
                   & pl.all_horizontal(pl.col(names[1:]).is_finite()) & (pl.min_horizontal(o, c) >= lo)
                   & (pl.max_horizontal(o, c) <= h) & (pl.col("volume") >= 0) & (pl.col("cost") >= 0)):
        return None
    return stamped(page.with_columns(epoch_us_of("ticks").alias("ts"), pl.col("cost").alias("amount"),
                                     trades=pl.lit(None, pl.Int64)), VENUE, instrument, BARS_SCHEMA)


def _chart_by_bar(result: Any, instrument: str, ctx: Page) -> pl.DataFrame:
    """`parse_chart` bar by bar: the first thing wrong, in its words."""
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
