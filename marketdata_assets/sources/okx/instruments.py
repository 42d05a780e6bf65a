"""What an OKX instrument name stands for (`contract`, `underlying`) and how its sizes convert: a
derivative's sizes are in contracts, each worth ctVal x ctMult of the venue's reference data (the
master's `Instrument`, reference.py reads it; `ContractSizer`).
"""

from __future__ import annotations

from operator import mul, truediv

from marketdata_assets.core.contracts import Contract, bad_name, option_strike, yymmdd
from marketdata_assets.datasets.instruments import Instrument


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


class ContractSizer:
    """sz (and candle vol) → base quantity and quote amount for an instrument, by its reference data
    (`reference`: the master's version of it; a spot pair needs none). ValueError for a contract whose
    reference data is not known: its sizes cannot be read."""

    def __init__(self, instrument: str, reference: Instrument | None = None):
        self.instrument = instrument
        self.derivative = is_derivative(instrument)
        self.value, self.inverse = (1.0, False)
        if self.derivative:
            if reference is None:
                raise ValueError(
                    f"OKX {instrument}: sizes are in contracts and the venue's reference data "
                    f"(GET /api/v5/public/instruments) does not know its contract value"
                )
            self.value, self.inverse = reference.size, reference.inverse

    def base_and_quote(self, price: float, size: float) -> tuple[float, float]:
        if not self.derivative:
            return size, price * size
        if self.inverse:
            quote = size * self.value
            return quote / price, quote
        base = size * self.value
        return base, price * base

    def sized(self, prices: list[float], sizes: list[float]) -> tuple[list[float], list[float]]:
        """`base_and_quote` of a page's columns: (quantities in base units, amounts in quote units)."""
        if not self.derivative:
            return sizes, list(map(mul, prices, sizes))
        contracts = [size * self.value for size in sizes]  # quote units (inverse) or base units (linear)
        if self.inverse:
            return list(map(truediv, contracts, prices)), contracts
        return contracts, list(map(mul, prices, contracts))


__all__ = ["ContractSizer", "underlying"]
