"""Binance spot REST (`/api/v3`) parsers: aggregate trades, trades, 1-minute klines, depth snapshots and
tickers, each answer to checked columns or a frame (USD-M's `futures` reuses them); the wire records and the
rules their pages keep are declared in `records`, the paging, limits and errors in `client.BinanceClient`.
docs/ticks.md ("Binance spot REST") has what the declarations do not say: time units, paging, the trade-id
refill, weights and bans.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import polars as pl

from marketdata_assets.core.http import Page
from marketdata_assets.datasets.declared import check, columns, epochs_to_us, frame_of, page_of
from marketdata_assets.datasets.frames import BARS_SCHEMA, EPOCH_MS_OR_US, from_us, to_us
from marketdata_assets.datasets.normalized import trades_frame
from marketdata_assets.datasets.wire import columns_of, epoch_us, record_of
from marketdata_assets.sources.binance.records import (
    AggTrade,
    DepthSnapshot,
    HistoricalTrade,
    Kline,
    SpotTicker24hr,
    UsdmDepthSnapshot,
    agg_to_trades,
    historical_to_trades,
    kline_rules,
)

VENUE = "BINANCE"


def _ctx(instrument: str, ctx: Page | None, venue: str = VENUE) -> Page:
    return ctx or Page(venue, instrument)


def _with_id(what: str, key: str):
    """Record i's name, with its id as sent where it has one ("aggTrade #1 (a=101)")."""

    def named(i: int, record: Any) -> str:
        return (
            f"{what} #{i} ({key}={record[key]})"
            if isinstance(record, dict) and key in record
            else f"{what} #{i}"
        )

    return named


def parse_agg_trades(body: Any, instrument: str, ctx: Page | None = None, venue: str = VENUE) -> pl.DataFrame:
    """`/api/v3/aggTrades` (USD-M: `/fapi/v1/aggTrades`) records → trades frame (`agg_to_trades`)."""
    ctx = _ctx(instrument, ctx, venue)
    records = page_of(AggTrade, body, "aggTrade", ctx, _with_id("aggTrade", "a"))
    return trades_frame(agg_to_trades(records, venue, instrument, "aggTrade #{i} (a={a})", ctx, body))


def parse_trades(body: Any, instrument: str, ctx: Page | None = None, venue: str = VENUE) -> pl.DataFrame:
    """`/api/v3/trades` / `historicalTrades` records → trades frame (`historical_to_trades`)."""
    ctx = _ctx(instrument, ctx, venue)
    records = page_of(HistoricalTrade, body, "trade", ctx, _with_id("trade", "id"))
    return trades_frame(historical_to_trades(records, venue, instrument, "trade #{i} (id={id})", ctx, body))


def _kline_name(i: int, kline: dict) -> str:
    """kline #i, and its minute once its open time is one."""
    t = kline["open_time"]
    if t and not EPOCH_MS_OR_US[0] <= t < EPOCH_MS_OR_US[1]:
        return f"kline #{i}"
    return f"kline #{i} ({from_us(int(kline['ts'])).strftime('%Y-%m-%d %H:%M')})"


def parse_klines(
    body: Any,
    instrument: str,
    ctx: Page | None = None,
    interval_ms: int = 60_000,
    venue: str = VENUE,
    kind: type = Kline,
) -> pl.DataFrame:
    """`/api/v3/klines` rows (`Kline`; `PriceKline`: prices only) → bars frame (volume = base, amount =
    quote volume); every kline must span `interval_ms` (closeTime = openTime + interval - 1 ms, or
    - 1 µs)."""
    ctx = _ctx(instrument, ctx, venue)
    if isinstance(body, list):
        short = next((i for i, row in enumerate(body) if not isinstance(row, list) or len(row) < 12), None)
        if short is not None:
            raise ctx.error(f"kline #{short} is not a 12-element array: {str(body[short])[:160]}")
    records = page_of(kind, body, "kline", ctx)
    full = kind is Kline
    cols = columns(
        records,
        (
            "open_time",
            "open",
            "high",
            "low",
            "close",
            "close_time",
            *(("volume", "quote_volume", "trades") if full else ()),
        ),
    )
    if not full:
        cols.update(volume=[0.0] * len(records), quote_volume=[0.0] * len(records), trades=[0] * len(records))
    cols["ts"] = epochs_to_us(cols["open_time"])
    cols["span"] = epochs_to_us(cols["close_time"]) - cols["ts"]
    check(cols, kline_rules(interval_ms, full), _kline_name, ctx, body, kind)
    return frame_of(BARS_SCHEMA, venue, instrument, cols["open_time"], **cols, amount=cols["quote_volume"])


def parse_depth(
    body: Any,
    instrument: str,
    received: datetime | None,
    ctx: Page | None = None,
    venue: str = VENUE,
    stamp: str | None = None,
) -> pl.DataFrame:
    """`/api/v3/depth` (`DepthSnapshot`) → books frame. Spot depth carries no time: `ts` = `received` (when
    it arrived); `stamp` "T": USD-M's (`UsdmDepthSnapshot`), stamped with its transaction time."""
    ctx = _ctx(instrument, ctx, venue)
    depth = record_of(UsdmDepthSnapshot if stamp else DepthSnapshot, body, "depth", ctx)
    ts_us = epoch_us(depth.T, "depth T", ctx) if stamp else to_us(received)
    return depth.to_book(venue, instrument, ts_us, ctx)


def parse_ticker_24hr(
    body: Any, instrument: str, ctx: Page | None = None, venue: str = VENUE
) -> pl.DataFrame:
    """Spot `/api/v3/ticker/24hr?symbol=` (`SpotTicker24hr`) → one tickers row."""
    ctx = _ctx(instrument, ctx, venue)
    what = "24hr ticker"
    if not isinstance(body, dict):
        raise ctx.error(f"{what}: expected a JSON object, got {type(body).__name__} {str(body)[:120]!r}")
    cols = columns_of("tickers")
    cols.add(*record_of(SpotTicker24hr, body, what, ctx).to_row(ctx))
    return cols.frame(venue, instrument)


__all__ = ["parse_agg_trades", "parse_depth", "parse_klines", "parse_ticker_24hr", "parse_trades"]
