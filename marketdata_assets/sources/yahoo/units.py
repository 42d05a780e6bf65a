"""What a Yahoo listing's prices mean: the minor currency units Yahoo quotes some markets in (GBp pence,
ZAc cents, ...), the markets where the unit depends on `meta.currency`, and how a price converts to the
major unit (float32 noise snapped, the minor unit divided out)."""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np

MAX_DENOISE_DECIMALS = 6
EXACT_BELOW = 1e9  # prices the columns snap and divide exactly as `major_unit` does (`major_units`)

# Yahoo's minor-unit currency codes → (ISO currency, units per major unit)
MINOR_UNITS: dict[str, tuple[str, int]] = {
    "GBp": ("GBP", 100),
    "GBX": ("GBP", 100),
    "ZAc": ("ZAR", 100),
    "ZAC": ("ZAR", 100),
    "ILA": ("ILS", 100),
    "KWF": ("KWD", 1000),
}
# Where Yahoo quotes (some) instruments in a minor unit: the unit of a bar there depends on
# `meta.currency`, so an answer without a currency it knows is not read (symbol suffix, exchangeName).
MINOR_UNIT_SUFFIXES = {
    ".L": "London",
    ".IL": "London",
    ".JO": "Johannesburg",
    ".TA": "Tel Aviv",
    ".KW": "Kuwait",
}
MINOR_UNIT_EXCHANGES = {
    "LSE": "London",
    "IOB": "London",
    "JNB": "Johannesburg",
    "TLV": "Tel Aviv",
    "KUW": "Kuwait",
}


def _float32(x: float) -> float:
    return struct.unpack("<f", struct.pack("<f", x))[0]


def denoise_float32(x: float) -> tuple[float, int | None]:
    """(value, decimals): the shortest decimal with <= 6 places that float32 stores as `x`, when
    `x` is exactly a float32 value; else (x, None) unchanged."""
    if not math.isfinite(x) or abs(x) >= 3.0e38:
        return x, None
    f = _float32(x)
    if f != x:
        return x, None  # not a float32 value: a genuine float64, keep it
    for decimals in range(MAX_DENOISE_DECIMALS + 1):
        candidate = round(x, decimals)
        if _float32(candidate) == f:
            return candidate, decimals
    return x, None


def normalize_currency(currency: str | None) -> tuple[str | None, int]:
    """("GBP", 100) for "GBp"; (currency, 1) for a major-unit currency."""
    if currency in MINOR_UNITS:
        return MINOR_UNITS[currency]
    return currency, 1


def minor_unit_market(instrument: str, exchange: Any) -> str | None:
    """The market's name where Yahoo may quote `instrument` in a minor unit (pence, cents, agorot,
    fils), None elsewhere."""
    suffix = instrument[instrument.rfind(".") :].upper() if "." in instrument else ""
    return MINOR_UNIT_SUFFIXES.get(suffix) or MINOR_UNIT_EXCHANGES.get(str(exchange or "").upper())


def known_currency(currency: Any) -> bool:
    """A currency code the units can be read from: a minor-unit code, or an ISO 4217 code."""
    return isinstance(currency, str) and (
        currency in MINOR_UNITS or (len(currency) == 3 and currency.isalpha() and currency.isupper())
    )


def major_units(prices: np.ndarray, divisor: int) -> tuple[np.ndarray, np.ndarray]:
    """`major_unit` of finite prices below `EXACT_BELOW`: (the prices in the major unit, snapped or
    not), the same doubles. A float32 value has 24 significant bits, so price × 10**d (d <= 6) and
    its rounding `whole` are exact, whole / 10**d is the double round(price, d) gives, and
    round(that / divisor, d + log10(divisor)) is whole / 10**(d + log10(divisor)) while whole < 2**50.
    (numpy, not Polars: Polars divides by a constant as a product with its inverse, a different double.)"""
    f32, shift = prices.astype(np.float32), round(math.log10(divisor))
    left = f32.astype(np.float64) == prices  # float32 values, not snapped yet
    major, clean = prices / divisor, prices.copy()
    for decimals in range(MAX_DENOISE_DECIMALS + 1):
        whole = np.rint(prices * 10.0**decimals)
        candidate = whole / 10.0**decimals
        fits = left & (candidate.astype(np.float32) == f32)
        clean[fits], major[fits] = candidate[fits], whole[fits] / 10.0 ** (decimals + shift)
        left &= ~fits
    return major, clean != prices


def major_unit(price: float, divisor: int) -> tuple[float, bool]:
    """`price` snapped from float32 noise and divided into the major unit; True if it was snapped."""
    value, decimals = denoise_float32(price)
    snapped = value != price
    if divisor != 1:
        value = value / divisor
        if decimals is not None:  # exact decimal shift, no binary noise left over
            value = round(value, decimals + round(math.log10(divisor)))
    return value, snapped


__all__ = ["EXACT_BELOW", "denoise_float32", "known_currency", "minor_unit_market", "normalize_currency"]
