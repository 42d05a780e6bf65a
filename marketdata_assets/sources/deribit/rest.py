"""Deribit v2 public market data (JSON-RPC over HTTP GET `/api/v2/public/<method>`): the parsers of
its answers, which client.py asks for. What an answer's `result` holds and what each record keeps are
declared in records.py (`DeribitTrade`, `Chart`, `FundingRow`, `BookSummary`, by their fields' types;
`trade_rules`, `FUNDING_RULES`, `chain_rules`, `CHART_RULES`): a page is converted and checked in C by
the types (`records_of`), then by the rules; a breach names the record, field and value. Rows dropped
are counted by reason in the client's `dropped` (`figures()`). The methods, paging, amounts, limits and
errors: docs/crypto-datasets.md, "Deribit REST".
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
import numpy as np
import polars as pl

from marketdata_assets.core.http import Page
from marketdata_assets.datasets.declared import check, columns, epochs_to_us, frame_of, records_of
from marketdata_assets.datasets.frames import (
    BARS_SCHEMA,
    EPOCH_MS_OR_US,
    FUNDING_SCHEMA,
    OPTION_CHAIN_SCHEMA,
    epoch_to_us,
    from_us,
    to_us,
)
from marketdata_assets.datasets.instruments import Instrument
from marketdata_assets.datasets.normalized import trades_frame
from marketdata_assets.datasets.wire import columns_of, finish, note_conversion, record_of
from marketdata_assets.sources.deribit.naming import (
    VENUE,
    chain_currency,
    is_inverse,
    is_option,
    option_named,
)
from marketdata_assets.sources.deribit.records import (
    CHART_KEYS,
    CHART_RULES,
    FUNDING_RULES,
    BookSummary,
    Chart,
    ChartStatus,
    FundingRow,
    OrderBook,
    RpcResponse,
    Ticker,
    TickerOpenInterest,
    TradesPage,
    chain_rules,
    to_trades,
    trade_records,
)
from marketdata_assets.sources.deribit.units import INVERSE_CONVERSION, size_of

_OPTION_TYPES = {"C": "call", "P": "put"}


def _time(record: Any, column: str) -> datetime | None:
    """The record's time once its `column` reads as epoch ms / µs (0: epoch zero), else None."""
    t = record.get(column) if isinstance(record, dict) else None
    if isinstance(t, bool) or not isinstance(t, int | np.integer):
        return None
    if not (t == 0 or EPOCH_MS_OR_US[0] <= t < EPOCH_MS_OR_US[1]):
        return None
    return from_us(epoch_to_us(t))


# --------------------------------------------------------------------------------------------
# Parsers: each page's rules declared, checked on its columns (the words of each error)
# --------------------------------------------------------------------------------------------


def rpc_result(body: Any, ctx: Page) -> Any:
    if not isinstance(body, dict):
        raise ctx.error(f"expected a JSON-RPC object, got {type(body).__name__} {str(body)[:120]!r}")
    if "error" in body:
        raise ctx.error(f"JSON-RPC error where a result was expected: {str(body['error'])[:200]}")
    return record_of(RpcResponse, body, "JSON-RPC response", ctx).result


def parse_trades(body: Any, instrument: str, ctx: Page | None = None) -> tuple[pl.DataFrame, bool]:
    """A get_last_trades_by_instrument[_and_time] response → (trades frame, has_more)."""
    frame, has_more, _ = parse_trade_page(body, instrument, ctx)
    return frame, has_more


def parse_trade_page(
    body: Any, instrument: str, ctx: Page | None = None
) -> tuple[pl.DataFrame, bool, dict[str, str]]:
    """A trades response (`result`: {trades: `DeribitTrade`s oldest first, has_more: more in the window
    asked, page on}) → (trades frame, has_more, {trade_id: liquidation flag} of the flagged ones)."""
    ctx = ctx or Page(VENUE, instrument)
    page = record_of(TradesPage, rpc_result(body, ctx), "result", ctx).checked(ctx)
    trades, has_more = page.trades, page.has_more
    inverse = is_inverse(instrument)
    if inverse and trades:
        note_conversion(instrument, INVERSE_CONVERSION)
    records = trade_records(trades, instrument, ctx)
    flags = {r.trade_id: r.liquidation for r in records if r.liquidation is not None}
    return trades_frame(to_trades(records, instrument, inverse)), has_more, flags


def liquidations_of(trades: pl.DataFrame, flags: dict[str, str], instrument: str) -> pl.DataFrame:
    """The liquidations frame of the flagged trades: one row per liquidated side ("MT": two)."""
    cols = columns_of("liquidations")
    if flags:
        flagged = trades.filter(pl.col("trade_id").is_in(list(flags)))
        for ts, trade_id, price, quantity, amount, side in flagged.select(
            "ts", "trade_id", "price", "quantity", "amount", "side"
        ).iter_rows():
            for who in flags[trade_id]:  # T: the taker's order; M: the resting one, on the other side
                order_side = side if who == "T" else ("sell" if side == "buy" else "buy")
                cols.add(
                    to_us(ts), f"{trade_id}-{who}", order_side, price, quantity, amount, None
                )  # no order price
    return cols.frame(VENUE, instrument)


def parse_liquidations(body: Any, instrument: str, ctx: Page | None = None) -> tuple[pl.DataFrame, bool]:
    """A trades response → (liquidations frame of its flagged trades, has_more)."""
    trades, has_more, flags = parse_trade_page(body, instrument, ctx)
    return liquidations_of(trades, flags, instrument), has_more


def _ticker(body: Any, instrument: str, ctx: Page, kind: type) -> Any:
    """A public/ticker `result` as a `kind` record (`Ticker`, `TickerOpenInterest`) of `instrument`."""
    result = rpc_result(body, ctx)
    if not isinstance(result, dict):
        raise ctx.error(f"ticker result is {type(result).__name__}, not an object")
    ticker = record_of(kind, result, "ticker", ctx)
    if ticker.instrument_name not in (msgspec.UNSET, instrument):
        raise ctx.error(f"ticker is for {ticker.instrument_name!r}, not {instrument}")
    return ticker


def parse_ticker(body: Any, instrument: str, ctx: Page | None = None) -> pl.DataFrame:
    """public/ticker (`Ticker`) → one tickers row (sizes in base units, funding_rate = current_funding)."""
    ctx = ctx or Page(VENUE, instrument)
    cols = columns_of("tickers")
    cols.add(*_ticker(body, instrument, ctx, Ticker).to_row(is_inverse(instrument), ctx))
    return cols.frame(VENUE, instrument)


def parse_open_interest(
    body: Any, instrument: str, ctx: Page | None = None, reference: Instrument | None = None
) -> pl.DataFrame:
    """public/ticker (`TickerOpenInterest`) → one open_interest row: open_interest (amount units) in
    contracts, base and quote."""
    ctx = ctx or Page(VENUE, instrument)
    try:
        size = size_of(instrument, reference)
    except ValueError as error:
        raise ctx.error(str(error).removeprefix(f"{VENUE} {instrument}: ")) from None
    cols = columns_of("open_interest")
    ticker = _ticker(body, instrument, ctx, TickerOpenInterest)
    cols.add(*ticker.to_row(size, is_inverse(instrument), ctx))
    return cols.frame(VENUE, instrument)


def open_interest_of(ticker: Any, size: float, inverse: bool, ctx: Page) -> tuple:
    """A ticker's open interest (REST public/ticker, and the ticker channel's notification):
    (ts µs, contracts of `size`, size, its unit, base by the ticker's mark price, quote)."""
    return record_of(TickerOpenInterest, ticker, "ticker", ctx).to_row(size, inverse, ctx)


def _funding_name(i: int, row: Any) -> str:
    """funding row #i, and its time once its timestamp is one."""
    t = _time(row, "timestamp")
    return f"funding row #{i}" if t is None else f"funding at {t.isoformat()}"


def parse_funding(body: Any, instrument: str, ctx: Page | None = None) -> pl.DataFrame:
    """get_funding_rate_history (`FundingRow`s) → funding rows (rate = interest_1h over 1 hour)."""
    ctx = ctx or Page(VENUE, instrument)
    result = rpc_result(body, ctx)
    if not isinstance(result, list):
        raise ctx.error(f"funding history result is {type(result).__name__}, not an array")
    cols = columns(records_of(FundingRow, result, _funding_name, ctx), FundingRow.__struct_fields__)
    check(cols, FUNDING_RULES, _funding_name, ctx)
    n = len(result)
    return frame_of(
        FUNDING_SCHEMA,
        VENUE,
        instrument,
        cols["timestamp"],
        rate=cols["interest_1h"],
        interval_hours=[1.0] * n,
        rate_8h=cols["interest_8h"],
        mark_price=[None] * n,
        index_price=cols["index_price"],
    )


def _option_name(i: int, summary: Any) -> str:
    """book summary #i, and its option's name once it is one."""
    name = summary.get("instrument_name") if isinstance(summary, dict) else None
    return (
        f"option {name}" if isinstance(name, str) and is_option(option_named(name)) else f"book summary #{i}"
    )


def parse_option_chain(body: Any, instrument: str, ctx: Page | None = None) -> pl.DataFrame:
    """get_book_summary_by_currency (kind=option: `BookSummary`s) → the chain's option_chain rows
    (`instrument`: "BTC-OPTIONS"); an option name that does not parse is an error naming it."""
    ctx = ctx or Page(VENUE, instrument)
    currency = chain_currency(instrument)
    result = rpc_result(body, ctx)
    if not isinstance(result, list):
        raise ctx.error(f"book summary result is {type(result).__name__}, not an array")
    cols = columns(records_of(BookSummary, result, _option_name, ctx), BookSummary.__struct_fields__)
    options = cols["option"] = np.fromiter(map(option_named, cols["instrument_name"]), object, len(result))
    check(cols, chain_rules(currency), _option_name, ctx)
    n = len(result)
    frame = frame_of(
        OPTION_CHAIN_SCHEMA,
        VENUE,
        instrument,
        cols["creation_timestamp"],
        option=list(cols["instrument_name"]),
        expiry=[to_us(o.expires_at) for o in options],
        strike=[o.strike for o in options],
        option_type=[_OPTION_TYPES[o.option_type] for o in options],
        underlying_price=cols["underlying_price"],
        underlying_index=list(cols["underlying_index"]),
        mark_price=cols["mark_price"],
        mark_iv=cols["mark_iv"],
        bid_iv=[None] * n,
        ask_iv=[None] * n,
        bid_price=cols["bid_price"],
        ask_price=cols["ask_price"],
        open_interest=cols["open_interest"],
        volume_24h=cols["volume"],
    )
    return finish("option_chain", [frame])


def parse_order_book(body: Any, instrument: str, ctx: Page | None = None) -> pl.DataFrame:
    """get_order_book (`OrderBook`) → books frame (ts = result.timestamp, update_id = change_id)."""
    ctx = ctx or Page(VENUE, instrument)
    return record_of(OrderBook, rpc_result(body, ctx), "order book", ctx).to_book(
        instrument, is_inverse(instrument), ctx
    )


def _bar_name(i: int, bar: Any) -> str:
    """chart ticks[i], and the bar's minute once its tick is a time."""
    t = _time(bar, "ticks")
    return f"chart ticks[{i}]" if t is None else f"bar {t.strftime('%Y-%m-%d %H:%M:%S')}"


def parse_chart(body: Any, instrument: str, ctx: Page | None = None) -> pl.DataFrame:
    """get_tradingview_chart_data (`Chart`) → bars frame (volume = base, amount = cost)."""
    ctx = ctx or Page(VENUE, instrument)
    cols = _chart_columns(rpc_result(body, ctx), ctx)
    cols["ts"] = epochs_to_us(cols["ticks"])
    check(cols, CHART_RULES, _bar_name, ctx)
    return frame_of(BARS_SCHEMA, VENUE, instrument, cols["ticks"], **cols, amount=cols["cost"])  # no count


def _chart_columns(result: Any, ctx: Page) -> dict[str, Any]:
    """A chart's bars as columns (none for status "no_data"): its arrays, all of one length."""
    status = record_of(ChartStatus, result, "chart", ctx).status
    if status == "no_data":
        return {key: [] for key in CHART_KEYS}
    if status != "ok":
        raise ctx.error(f'chart status is {status!r}, not "ok" or "no_data"')
    chart = record_of(Chart, result, "chart", ctx)
    arrays = {key: getattr(chart, key) for key in CHART_KEYS}
    if len(set(map(len, arrays.values()))) != 1:
        raise ctx.error(f"chart arrays differ in length: {dict(zip(CHART_KEYS, map(len, arrays.values())))}")
    return arrays


__all__ = [
    "liquidations_of",
    "parse_chart",
    "parse_funding",
    "parse_liquidations",
    "parse_open_interest",
    "parse_option_chain",
    "parse_order_book",
    "parse_ticker",
    "parse_trade_page",
    "parse_trades",
]
