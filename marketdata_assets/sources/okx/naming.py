"""What an OKX instrument name stands for (`contract`, `is_derivative`, `underlying`): read only where no
record of the master is at hand (its channels, a lookup's query); how its sizes convert: units.py."""

from __future__ import annotations

from marketdata_assets.core.contracts import Contract, bad_name, option_strike, yymmdd


def contract(instrument: str) -> Contract:
    """What an OKX instrument name stands for (core/contracts.py has the shapes); ValueError for another."""
    venue, parts = "OKX", instrument.split("-")
    if len(parts) < 2:
        raise bad_name(venue, instrument, "expected BASE-QUOTE[-SWAP|-YYMMDD[-STRIKE-C|P]]")
    base, quote = parts[0], parts[1]
    inverse = quote == "USD"
    if len(parts) == 2:
        return Contract(venue, instrument, "spot", base, quote)
    if len(parts) == 3 and parts[2] == "SWAP":
        return Contract(venue, instrument, "perpetual", base, quote, inverse=inverse)
    expiry = yymmdd(venue, instrument, parts[2])
    if len(parts) == 3:
        return Contract(venue, instrument, "future", base, quote, expiry, inverse=inverse)
    if len(parts) == 5:
        strike, option_type = option_strike(venue, instrument, parts[3], parts[4])
        return Contract(venue, instrument, "option", base, quote, expiry, strike, option_type)
    raise bad_name(venue, instrument, "expected BASE-QUOTE[-SWAP|-YYMMDD[-STRIKE-C|P]]")


def is_derivative(instrument: str) -> bool:
    """BTC-USDT is spot; BTC-USDT-SWAP, BTC-USD-250328 and options are contracts; ValueError for a
    name of no OKX shape (core.contracts)."""
    return contract(instrument).contract_type != "spot"


def underlying(instrument: str) -> str:
    """The index (= `uly`, the instrument family) of a contract: "BTC-USDT" for BTC-USDT-SWAP and
    BTC-USDT-250328, "BTC-USD" for BTC-USD-SWAP; a spot pair's is itself."""
    named = contract(instrument)
    return f"{named.base}-{named.quote}"


__all__ = ["contract", "is_derivative", "underlying"]
