"""Binance's instrument master: spot `GET /api/v3/exchangeInfo` and USD-M `GET /fapi/v1/exchangeInfo` read
into the master's `Instrument`s (status, tick and lot sizes from the filters; USD-M listing and delivery).
Sizes on Binance are base units: a USD-M contract is one unit of its base. A delisted symbol is absent
from both: the archive's listing (sources/binance_vision) remembers it. The 24 h volumes universe rules
rank by: `GET /api/v3/ticker/24hr` and `GET /fapi/v1/ticker/24hr` without a symbol (every symbol's
`quoteVolume`, "Total trade volume (in quote asset)"; weight 80 spot, 40 USD-M).
https://developers.binance.com/docs/binance-spot-api-docs/rest-api/general-endpoints#exchange-information
https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api/Exchange-Information
https://developers.binance.com/docs/binance-spot-api-docs/rest-api/market-data-endpoints#24hr-ticker-price-change-statistics
https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api/24hr-Ticker-Price-Change-Statistics
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from marketdata_assets.core.http import Page
from marketdata_assets.datasets.declared import Amount, Finite, page_of
from marketdata_assets.datasets.frames import from_us
from marketdata_assets.datasets.instruments import Instrument
from marketdata_assets.datasets.volumes import Volume
from marketdata_assets.sources.binance.naming import contract

SPOT_PATH, USDM_PATH = "/api/v3/exchangeInfo", "/fapi/v1/exchangeInfo"
ALL_TICKERS_WEIGHT = {"BINANCE": 80, "BINANCE_UM": 40}  # ticker/24hr without a symbol
STATUSES = {
    "TRADING": "live",
    "BREAK": "suspended",
    "HALT": "suspended",
    "AUCTION_MATCH": "preopen",
    "PRE_TRADING": "preopen",
    "POST_TRADING": "suspended",
    "END_OF_DAY": "suspended",
    "PENDING_TRADING": "preopen",
    "SETTLING": "suspended",
    "CLOSE": "delisted",
    "DELIVERING": "suspended",
    "DELIVERED": "expired",
}
OPEN_ENDED_YEAR = 2090  # a perpetual's deliveryDate is 4133404800000 (2100-12-25): none


class Filter(msgspec.Struct):
    """One entry of a symbol's `filters` (only the ones the master keeps are read)."""

    filterType: str  # PRICE_FILTER | LOT_SIZE | NOTIONAL | ...
    tickSize: str | None = None  # PRICE_FILTER: price increment
    stepSize: str | None = None  # LOT_SIZE: quantity increment (base units)
    minQty: str | None = None  # LOT_SIZE: the smallest quantity


class BinanceSymbol(msgspec.Struct):
    """One `symbols` entry of spot or USD-M exchangeInfo."""

    symbol: str  # BTCUSDT; USD-M dated: BTCUSDT_250328
    status: str  # TRADING | BREAK | HALT | ... (spot); TRADING | SETTLING | ... (USD-M)
    baseAsset: str  # BTC
    quoteAsset: str  # USDT
    filters: list[Filter] = []  # PRICE_FILTER, LOT_SIZE, ...
    contractType: str = ""  # USD-M: PERPETUAL | CURRENT_QUARTER | NEXT_QUARTER | ...
    deliveryDate: int | None = None  # USD-M: delivery time, epoch ms (perpetuals: 2100)
    onboardDate: int | None = None  # USD-M: listing time, epoch ms
    marginAsset: str = ""  # USD-M: the settlement asset
    pair: str = ""  # USD-M: the underlying pair (BTCUSDT)


def _filter(symbol: BinanceSymbol, kind: str, name: str) -> float | None:
    for item in symbol.filters:
        value = getattr(item, name)
        if item.filterType == kind and value not in (None, ""):
            return float(value)
    return None


def _time(ms: int | None):
    stamp = from_us(ms * 1000) if ms else None
    return stamp if stamp is None or stamp.year < OPEN_ENDED_YEAR else None


def instrument_of(venue: str, row: BinanceSymbol) -> Instrument:
    """One symbol as the master's `Instrument` (venue BINANCE: spot; BINANCE_UM: USD-M, linear)."""
    spot = venue == "BINANCE"
    kind = (
        "spot"
        if spot
        else ("perpetual" if row.contractType in ("PERPETUAL", "TRADIFI_PERPETUAL") else "future")
    )
    step = _filter(row, "LOT_SIZE", "stepSize")
    return Instrument(
        venue,
        row.symbol,
        kind,
        row.baseAsset,
        row.quoteAsset,
        row.marginAsset or row.quoteAsset,
        False,
        1.0,
        1.0,
        row.baseAsset,
        _filter(row, "PRICE_FILTER", "tickSize"),
        step,
        _filter(row, "LOT_SIZE", "minQty"),
        _time(row.onboardDate),
        _time(row.deliveryDate),
        STATUSES.get(row.status, row.status.lower()),
        underlying=row.pair or None,
    )


def instruments_of(venue: str, body: Any, page: Page) -> list[Instrument]:
    """An exchangeInfo answer's `symbols` as Instruments; a SourceDataError names what does not fit."""
    if not isinstance(body, dict) or not isinstance(body.get("symbols"), list):
        raise page.error(f"exchangeInfo: expected an object with a symbols array, got {str(body)[:120]!r}")
    return [instrument_of(venue, row) for row in page_of(BinanceSymbol, body["symbols"], "symbol", page)]


class Ticker24h(msgspec.Struct):
    """One entry of spot or USD-M `ticker/24hr` without a symbol (FULL or MINI; only what the volumes use)."""

    symbol: str  # BTCUSDT
    quoteVolume: Amount  # the rolling 24 hours' traded volume in the quote asset (text on the wire)
    lastPrice: Finite = 0.0  # the last trade's price
    closeTime: int = 0  # the end of the rolling 24 hours, epoch ms


def volumes_of(
    venue: str, body: Any, taken: datetime, page: Page, quotes: dict[str, str] | None = None
) -> list[Volume]:
    """A `ticker/24hr` answer (every symbol) as `Volume`s in each symbol's quote asset: `quotes` (symbol ->
    its quote asset, from exchangeInfo), else the symbol split by the quote assets those hold (the unit ""
    where none ends it); a SourceDataError names what does not fit."""
    quotes = quotes or {}
    listed = set(quotes.values())
    out = []
    for row in page_of(Ticker24h, body, "ticker", page):
        try:
            unit = quotes.get(row.symbol) or contract(venue, row.symbol, listed).quote
        except ValueError:
            unit = ""
        out.append(Volume(venue, row.symbol, taken, row.quoteVolume, unit))
    return out


__all__ = [
    "ALL_TICKERS_WEIGHT",
    "SPOT_PATH",
    "USDM_PATH",
    "BinanceSymbol",
    "Ticker24h",
    "instrument_of",
    "instruments_of",
    "volumes_of",
]
