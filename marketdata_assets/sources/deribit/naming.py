"""What a Deribit instrument name stands for, for the parsers, the client and the stream alike: futures,
perpetuals and options (`contract`, `is_inverse`), option chain names; how its sizes convert: units.py."""

from __future__ import annotations

import re
from typing import Any

from marketdata_assets.core.contracts import Contract, bad_name, ddmmmyy, option_strike

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


__all__ = ["chain_currency", "contract", "is_inverse"]
