"""How a Deribit instrument's sizes convert: inverse contracts' amounts are USD (`base_and_quote`), linear
ones and options the coin; a contract's size is the venue's reference data (`size_of`)."""

from __future__ import annotations

from marketdata_assets.datasets.instruments import Instrument
from marketdata_assets.sources.deribit.naming import VENUE

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


__all__ = ["INVERSE_CONVERSION", "base_and_quote", "size_of"]
