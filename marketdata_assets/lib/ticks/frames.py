"""Normalized tick frames (Polars): the one contract every venue adapter produces and every writer reads.

- trades: ``ts`` Datetime("us", "UTC"), ``venue``, ``instrument``, ``trade_id`` Utf8, ``price``,
  ``quantity``, ``amount`` (quote value) Float64, ``side`` Utf8 ("buy" | "sell", the taker's side),
  ``seq`` Int64 (nullable: a venue sequence number when there is one).
- book snapshots: ``ts``, ``venue``, ``instrument``, ``side`` ("bid" | "ask"), ``level`` Int32
  (0 = best), ``price``, ``quantity`` Float64, ``update_id`` Int64 (nullable).
- 1-minute bars: ``ts`` (bar open, UTC), ``venue``, ``instrument``, ``open``, ``high``, ``low``,
  ``close``, ``volume``, ``amount`` Float64, ``trades`` Int64 (nullable).
- daily bars (a vendor's own daily bars, e.g. Tushare ``daily``): ``ts`` = 00:00 UTC of the
  trading day (the exchange's date), ``venue``, ``instrument``, ``open``, ``high``, ``low``,
  ``close``, ``pre_close`` (nullable), ``volume``, ``amount`` Float64.

``venue`` / ``instrument`` follow lib.ticks.instruments (e.g. BINANCE / BTCUSDT, SSE / 600000.SH).
Only the columns listed in ``NULLABLE`` may hold nulls.
"""

from __future__ import annotations

import polars as pl

UTC_US = pl.Datetime("us", "UTC")

TRADES_SCHEMA: dict[str, pl.DataType] = {
    "ts": UTC_US,
    "venue": pl.Utf8,
    "instrument": pl.Utf8,
    "trade_id": pl.Utf8,
    "price": pl.Float64,
    "quantity": pl.Float64,
    "amount": pl.Float64,
    "side": pl.Utf8,
    "seq": pl.Int64,
}

BOOKS_SCHEMA: dict[str, pl.DataType] = {
    "ts": UTC_US,
    "venue": pl.Utf8,
    "instrument": pl.Utf8,
    "side": pl.Utf8,
    "level": pl.Int32,
    "price": pl.Float64,
    "quantity": pl.Float64,
    "update_id": pl.Int64,
}

# What every bar starts with (1-minute and daily alike).
_OHLC: dict[str, pl.DataType] = {
    "ts": UTC_US,
    "venue": pl.Utf8,
    "instrument": pl.Utf8,
    "open": pl.Float64,
    "high": pl.Float64,
    "low": pl.Float64,
    "close": pl.Float64,
}

BARS_SCHEMA: dict[str, pl.DataType] = {**_OHLC, "volume": pl.Float64, "amount": pl.Float64, "trades": pl.Int64}

DAILY_BARS_SCHEMA: dict[str, pl.DataType] = {**_OHLC, "pre_close": pl.Float64, "volume": pl.Float64,
                                             "amount": pl.Float64}

# Columns that may be null; every other column must be fully populated.
NULLABLE: dict[str, frozenset[str]] = {
    "trades": frozenset({"seq"}),
    "books": frozenset({"update_id"}),
    "bars": frozenset({"trades"}),
    "daily": frozenset({"pre_close"}),
}

TRADE_SIDES = ("buy", "sell")
BOOK_SIDES = ("bid", "ask")


def empty_trades() -> pl.DataFrame:
    return pl.DataFrame(schema=TRADES_SCHEMA)


def empty_books() -> pl.DataFrame:
    return pl.DataFrame(schema=BOOKS_SCHEMA)


def empty_bars() -> pl.DataFrame:
    return pl.DataFrame(schema=BARS_SCHEMA)


def empty_daily_bars() -> pl.DataFrame:
    return pl.DataFrame(schema=DAILY_BARS_SCHEMA)
