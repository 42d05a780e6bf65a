"""Binance USD-M futures REST parsers (venue BINANCE_UM): funding, funding intervals, open interest, mark
and index price bars and tickers (trades, bars and books are spot's, `rest`); the records are declared in
`records`, the client is `futures_client.BinanceFuturesClient`. What each endpoint answers, weighs and
reaches: docs/crypto-datasets.md, "Binance USD-M REST"."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import polars as pl

from marketdata_assets.core.http import Page
from marketdata_assets.datasets.declared import (
    check,
    columns,
    frame_of,
    integers,
    is_epoch,
    record_epoch,
    records_of,
)
from marketdata_assets.datasets.frames import (
    FUNDING_SCHEMA,
    OPEN_INTEREST_SCHEMA,
    PRICE_BARS_SCHEMA,
    epoch_to_us,
    from_us,
)
from marketdata_assets.datasets.wire import columns_of, epoch_us, record_of
from marketdata_assets.sources.binance.records import (
    BookTicker,
    FundingInfo,
    FundingRate,
    OpenInterestHist,
    PremiumIndex,
    PriceKline,
    Ticker24hr,
)
from marketdata_assets.sources.binance.rest import parse_klines

VENUE = "BINANCE_UM"
FUNDING_HOURS = 8.0  # an instrument fundingInfo does not list


def _ctx(instrument: str | None, ctx: Page | None) -> Page:
    return ctx or Page(VENUE, instrument)


def _json(body: Any, kind: type, what: str, ctx: Page) -> Any:
    if not isinstance(body, kind):
        raise ctx.error(
            f"{what}: expected a JSON {'array' if kind is list else 'object'}, got "
            f"{type(body).__name__} {str(body)[:120]!r}"
        )
    return body


def _dated(name: str, key: str) -> Callable[[int, Any], str]:
    """Record i's name, with its minute once its `key` is an epoch (as sent, or read)."""

    def named(i: int, record: Any) -> str:
        t = record_epoch(record, key)
        return f"{name} #{i}" if t is None else f"{name} #{i} ({from_us(epoch_to_us(t)):%Y-%m-%d %H:%M})"

    return named


def _timed_columns(kind: type, body: list, key: str, named: Callable[[int, Any], str], ctx: Page) -> dict:
    """`body`'s `kind` records as columns, their `key` epoch ms (or µs) read as µs."""
    cols = columns(records_of(kind, body, named, ctx), kind.__struct_fields__)
    cols[key] = integers(cols[key])
    check(cols, (is_epoch(key),), named, ctx)
    cols[key] = [epoch_to_us(t) for t in cols[key]]
    return cols


def parse_funding(
    body: Any, instrument: str, interval_hours: float = FUNDING_HOURS, ctx: Page | None = None
) -> pl.DataFrame:
    """`/fapi/v1/fundingRate` records → funding frame (rate settled at fundingTime for the
    `interval_hours` before it; mark_price null where markPrice is absent or "")."""
    ctx = _ctx(instrument, ctx)
    body = _json(body, list, "fundingRate", ctx)
    cols = _timed_columns(FundingRate, body, "fundingTime", _dated("funding", "fundingTime"), ctx)
    rate = cols["fundingRate"]
    return frame_of(
        FUNDING_SCHEMA,
        VENUE,
        instrument,
        cols["fundingTime"],
        rate=rate,
        index_price=[None] * len(rate),
        interval_hours=[interval_hours] * len(rate),
        rate_8h=[r * 8 / interval_hours for r in rate],
        mark_price=[price or None for price in cols["markPrice"]],  # "", absent or 0: none
    )


def parse_funding_info(body: Any, ctx: Page | None = None) -> dict[str, float]:
    """`/fapi/v1/fundingInfo` → instrument -> fundingIntervalHours (instruments without one are left out)."""
    ctx = _ctx(None, ctx)

    def named(i: int, record: Any) -> str:
        symbol = record.get("symbol") if isinstance(record, dict) else None
        return f"fundingInfo {symbol}" if isinstance(symbol, str) and symbol else f"fundingInfo #{i}"

    infos = records_of(FundingInfo, _json(body, list, "fundingInfo", ctx), named, ctx)
    cols = columns(infos, FundingInfo.__struct_fields__)
    return {
        str(symbol): hours
        for symbol, hours in zip(cols["symbol"], cols["fundingIntervalHours"], strict=True)
        if hours is not None
    }


def parse_open_interest(body: Any, instrument: str, ctx: Page | None = None) -> pl.DataFrame:
    """`/futures/data/openInterestHist` rows → open_interest frame: one contract = 1 base unit, so
    contracts = base = sumOpenInterest; quote = sumOpenInterestValue."""
    ctx = _ctx(instrument, ctx)
    body = _json(body, list, "openInterestHist", ctx)
    cols = _timed_columns(OpenInterestHist, body, "timestamp", _dated("open interest", "timestamp"), ctx)
    base, n = cols["sumOpenInterest"], len(cols["timestamp"])
    return frame_of(
        OPEN_INTEREST_SCHEMA,
        VENUE,
        instrument,
        cols["timestamp"],
        contracts=base,
        contract_size=[1.0] * n,
        size_unit=["base"] * n,
        base=base,
        quote=cols["sumOpenInterestValue"],
    )


def parse_price_klines(body: Any, instrument: str, ctx: Page | None = None) -> pl.DataFrame:
    """`markPriceKlines` / `indexPriceKlines` 1-minute arrays → price bars (open, high, low, close)."""
    return parse_klines(body, instrument, ctx, venue=VENUE, kind=PriceKline).select(list(PRICE_BARS_SCHEMA))


def parse_ticker(
    book: Any,
    premium: Any,
    stats: Any,
    instrument: str,
    pages: tuple[Page | None, Page | None, Page | None] = (None, None, None),
) -> pl.DataFrame:
    """`ticker/bookTicker`, `premiumIndex` and `ticker/24hr` of one instrument → one tickers row
    (ts = the latest of their times)."""
    book_ctx, premium_ctx, stats_ctx = (_ctx(instrument, page) for page in pages)
    book = record_of(BookTicker, _json(book, dict, "bookTicker", book_ctx), "bookTicker", book_ctx)
    premium = record_of(
        PremiumIndex, _json(premium, dict, "premiumIndex", premium_ctx), "premiumIndex", premium_ctx
    )
    stats = record_of(Ticker24hr, _json(stats, dict, "24hr ticker", stats_ctx), "24hr ticker", stats_ctx)
    ts = max(
        epoch_us(book.time, "bookTicker time", book_ctx),
        epoch_us(premium.time, "premiumIndex time", premium_ctx),
        epoch_us(stats.closeTime, "24hr ticker closeTime", stats_ctx),
    )
    rate = premium.lastFundingRate
    cols = columns_of("tickers")
    cols.add(
        ts,
        stats.lastPrice or None,
        *book.best(),
        stats.volume,
        stats.quoteVolume,
        premium.markPrice or None,
        premium.indexPrice or None,
        None if rate == "" else rate,
    )
    return cols.frame(VENUE, instrument)


__all__ = ["parse_funding", "parse_funding_info", "parse_open_interest", "parse_price_klines", "parse_ticker"]
