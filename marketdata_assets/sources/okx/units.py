"""How an OKX instrument's sizes convert: a derivative's sizes are in contracts, each worth ctVal x ctMult of
the venue's reference data (the master's `Instrument`, reference.py reads it); a spot pair's are base units.
"""

from __future__ import annotations

from operator import mul

from marketdata_assets.datasets.instruments import Instrument
from marketdata_assets.sources.okx.naming import is_derivative


class ContractSizer:
    """sz (and candle vol) → base quantity and quote amount for an instrument: a contract by its reference
    data's one sizing (`Instrument.sized`; `reference`: the master's version of it), a spot pair as base
    units. ValueError for a contract whose reference data is not known: its sizes cannot be read."""

    def __init__(self, instrument: str, reference: Instrument | None = None):
        self.instrument = instrument
        self.derivative = is_derivative(instrument)
        self.value, self.inverse, self.reference = 1.0, False, reference
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
        return self.reference.base_and_quote(price, size)  # type: ignore[union-attr]

    def sized(self, prices: list[float], sizes: list[float]) -> tuple[list[float], list[float]]:
        """`base_and_quote` of a page's columns: (quantities in base units, amounts in quote units)."""
        if not self.derivative:
            return sizes, list(map(mul, prices, sizes))
        return self.reference.sized(prices, sizes)  # type: ignore[union-attr]


__all__ = ["ContractSizer"]
