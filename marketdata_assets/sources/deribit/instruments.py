"""What a Deribit instrument name stands for and how its sizes convert, for the parsers, the client and the
stream alike: futures, perpetuals and options (`contract`), inverse USD amounts (`base_and_quote`), the
contract size of the venue's reference data (`size_of`), option chain names."""

from __future__ import annotations

import re
from typing import Any

from marketdata_assets.core.contracts import Contract, bad_name, ddmmmyy, option_strike
from marketdata_assets.datasets.instruments import Instrument

VENUE = "DERIBIT"
_CHAIN = re.compile(r"^([A-Z0-9]+)-OPTIONS$")


def contract(instrument: str) -> Contract:
    """What a Deribit instrument name stands for (core/contracts.py has the shapes); ValueError for
    another."""
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


def size_of(instrument: str, reference: Instrument | None) -> float:
    """The contract size of get_instruments (`reference`: the master's version of the instrument): USD for
    inverse futures and perpetuals, the coin for linear ones and options; ValueError if the venue's
    reference data does not know it."""
    if reference is None:
        raise ValueError(
            f"{VENUE} {instrument}: the venue's reference data (public/get_instruments) does not "
            "know its contract size"
        )
    return reference.size


def chain_currency(instrument: str) -> str:
    """The currency of an option chain name ("BTC-OPTIONS" -> "BTC"); ValueError for another name."""
    match = _CHAIN.match(instrument)
    if not match:
        raise ValueError(
            f"{VENUE}:{instrument} is not an option chain name: expected <CURRENCY>-OPTIONS "
            "(BTC-OPTIONS: every BTC option)"
        )
    return match.group(1)


def option_named(name: Any) -> Contract | ValueError | None:
    """What an option name stands for (`contract`; its ValueError if none; None for a name not text)."""
    if not isinstance(name, str):
        return None
    try:
        return contract(name)
    except ValueError as error:
        return error


def is_option(named: Any) -> bool:
    return isinstance(named, Contract) and named.contract_type == "option"


def settles_in(option: Contract) -> str:
    """The currency an option settles in (USDC options: their quote) = its chain's."""
    return option.quote if "_" in option.instrument.split("-")[0] else option.base


__all__ = ["chain_currency", "is_inverse", "size_of"]
