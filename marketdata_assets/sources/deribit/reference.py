"""Deribit's instrument master: `public/get_instruments` (per currency and kind, active and expired) and
`public/get_instrument` read into the master's `Instrument`s: contract size, inverse ("reversed") or
linear, tick size, minimum amount, creation and expiration, strike. Fields as documented:
https://docs.deribit.com/#public-get_instruments
The 24 h volumes universe rules rank by: `public/get_book_summary_by_currency` per currency and kind
(`volumes_of` says the measure; the general public-method credits, no limit of its own):
https://docs.deribit.com/#public-get_book_summary_by_currency
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from marketdata_assets.core.http import Page
from marketdata_assets.datasets.declared import Amount, page_of
from marketdata_assets.datasets.frames import from_us
from marketdata_assets.datasets.instruments import Instrument
from marketdata_assets.datasets.volumes import Volume

VENUE = "DERIBIT"
LIST_METHOD, ONE_METHOD = "public/get_instruments", "public/get_instrument"
SUMMARY_METHOD = "public/get_book_summary_by_currency"
KINDS = ("future", "option", "spot")
CURRENCIES = ("BTC", "ETH", "USDC", "USDT", "EURR")  # get_book_summary_by_currency's `currency` values
OPEN_ENDED_YEAR = 2900  # a perpetual's expiration_timestamp is 32503708800000 (year 3000): none
UNKNOWN_INSTRUMENT = (10020, -32602)  # invalid_or_unsupported_instrument; invalid params (no such name)


class DeribitInstrument(msgspec.Struct):
    """One instrument of `public/get_instruments` / `public/get_instrument` (`result`)."""

    instrument_name: str  # BTC-PERPETUAL, BTC-27DEC24, BTC-27DEC24-60000-C, BTC_USDC
    kind: str  # future | option | spot | future_combo | option_combo
    base_currency: str  # BTC
    counter_currency: str = ""  # USD (inverse), USDC (linear)
    quote_currency: str = ""  # the currency prices are quoted in (an option's: the coin, or USDC)
    settlement_currency: str = ""  # BTC (inverse), USDC (linear); spot: absent
    instrument_type: str = ""  # reversed (inverse: amounts in USD) | linear
    contract_size: float = 1.0  # what one contract is: USD (inverse) or the coin (linear, options)
    tick_size: float | None = None  # price increment
    min_trade_amount: float | None = None  # the smallest amount, in the amount unit
    creation_timestamp: int | None = None  # listing time, epoch ms
    expiration_timestamp: int | None = None  # expiry, epoch ms (perpetuals: year 3000)
    is_active: bool = True  # false once expired (expired=true listings)
    settlement_period: str = ""  # perpetual | day | week | month
    option_type: str | None = None  # call | put
    strike: float | None = None  # options
    price_index: str = ""  # the index it follows: btc_usd


def _time(ms: int | None) -> datetime | None:
    stamp = from_us(ms * 1000) if ms else None
    return stamp if stamp is None or stamp.year < OPEN_ENDED_YEAR else None


def instrument_of(row: DeribitInstrument) -> Instrument:
    """One documented record as the master's `Instrument` (a combo is not kept: ValueError)."""
    if row.kind not in KINDS:
        raise ValueError(f"{VENUE}:{row.instrument_name}: kind {row.kind!r} is not kept (combos)")
    kind = {"future": "perpetual" if row.settlement_period == "perpetual" else "future"}.get(
        row.kind, row.kind
    )
    inverse = row.instrument_type == "reversed" and row.kind == "future"
    quote = row.counter_currency or row.quote_currency
    unit = quote if inverse else row.base_currency
    expires = _time(row.expiration_timestamp)
    status = "live" if row.is_active else "expired"
    return Instrument(
        VENUE,
        row.instrument_name,
        kind,
        row.base_currency,
        quote,
        row.settlement_currency or quote,
        inverse,
        float(row.contract_size),
        1.0,
        unit,
        row.tick_size,
        row.min_trade_amount,
        row.min_trade_amount,
        _time(row.creation_timestamp),
        expires,
        status,
        row.strike,
        row.option_type,
        row.price_index or None,
    )


def instruments_of(result: Any, page: Page) -> list[Instrument]:
    """A `result` array (or one record) as Instruments; combos are left out; a SourceDataError names what
    does not fit."""
    rows = page_of(DeribitInstrument, result if isinstance(result, list) else [result], "instrument", page)
    return [instrument_of(row) for row in rows if row.kind in KINDS]


class BookVolume(msgspec.Struct):
    """One instrument of `get_book_summary_by_currency` (`result`), of any kind: what the volumes use
    (records.BookSummary reads an option chain's fields of the same answer)."""

    instrument_name: str  # BTC-PERPETUAL, BTC-27DEC24, BTC-27DEC24-60000-C, BTC_USDC
    volume: Amount = 0.0  # "The total 24h traded volume (in base currency)"
    volume_usd: Amount | None = None  # "Volume in USD"
    volume_notional: Amount | None = None  # "Volume in quote currency (futures and spots only)"
    quote_currency: str = ""  # the currency prices are quoted in
    last: Amount | None = None  # the latest trade's price, null without trades
    mark_price: Amount | None = None  # the instrument's mark price


def volumes_of(result: Any, taken: datetime, page: Page) -> list[Volume]:
    """A `result` array as `Volume`s: `volume_usd` (USD) where given, else `volume_notional` (the quote),
    else `volume` (base) x the last price (or the mark price), in the quote currency."""
    out = []
    for row in page_of(BookVolume, result, "book summary", page):
        if row.volume_usd is not None:
            volume, unit = row.volume_usd, "USD"
        elif row.volume_notional is not None:
            volume, unit = row.volume_notional, row.quote_currency
        else:
            volume, unit = row.volume * (row.last or row.mark_price or 0.0), row.quote_currency
        out.append(Volume(VENUE, row.instrument_name, taken, volume, unit))
    return out


__all__ = [
    "CURRENCIES",
    "KINDS",
    "BookVolume",
    "DeribitInstrument",
    "instrument_of",
    "instruments_of",
    "volumes_of",
]
