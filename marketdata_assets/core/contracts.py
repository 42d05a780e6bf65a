"""What a crypto instrument is, read from the venue's own name of it: spot pair, perpetual, dated future
or option, with its base and quote currencies, expiry, strike and option type.

Instrument names stay the venues' own (core.naming); this reads them. The shapes, as each venue
documents its instrument names:

| venue | spot | perpetual | future | option |
|---|---|---|---|---|
| DERIBIT | `BTC_USDC` | `BTC-PERPETUAL` (inverse, USD), `BTC_USDC-PERPETUAL` (linear) | `BTC-27DEC24` | `BTC-27DEC24-60000-C`, `XRP_USDC-30JUN23-0d625-C` (`d`: the decimal point) |
| OKX | `BTC-USDT` | `BTC-USDT-SWAP`, `BTC-USD-SWAP` | `BTC-USD-250328` (YYMMDD) | `BTC-USD-250328-100000-C` |
| BINANCE | `BTCUSDT` | — | — | — |
| BINANCE_UM | — | `BTCUSDT` | `BTCUSDT_250328` | — |
| BINANCE_CM | — | `BTCUSD_PERP` | `BTCUSD_250328` | — |

Deribit's and OKX's dated instruments expire at 08:00 UTC of the expiry day (`Contract.expires_at`).
A Binance symbol's base and quote are split at the longest known quote asset (`QUOTES`). A name
that fits none of these is a `ValueError` naming venue and instrument.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timezone
from typing import Literal, NamedTuple

ContractType = Literal["spot", "perpetual", "future", "option"]
QUOTES = ("USDT", "USDC", "FDUSD", "BUSD", "TUSD", "USD", "BTC", "ETH", "BNB", "EUR", "TRY", "BRL", "JPY")
EXPIRY_TIME = time(8, 0, tzinfo=timezone.utc)
_MONTHS = {m: i for i, m in enumerate(("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV",
                                       "DEC"), start=1)}
_DERIBIT_DAY = re.compile(r"^(\d{1,2})([A-Z]{3})(\d{2})$")
_YYMMDD = re.compile(r"^\d{6}$")
_STRIKE = re.compile(r"^\d+(?:[.d]\d+)?$")


class Contract(NamedTuple):
    venue: str
    instrument: str
    contract_type: ContractType
    base: str
    quote: str  # the quote (for inverse contracts: the currency the size is counted in, USD)
    expiry: date | None = None
    strike: float | None = None
    option_type: Literal["C", "P"] | None = None
    inverse: bool = False  # sized in USD, settled in the base coin

    @property
    def expires_at(self) -> datetime | None:
        return datetime.combine(self.expiry, EXPIRY_TIME) if self.expiry else None


def _bad(venue: str, instrument: str, why: str) -> ValueError:
    return ValueError(f"{venue}:{instrument} is not a {venue} instrument name: {why}")


def _deribit_expiry(venue: str, instrument: str, text: str) -> date:
    match = _DERIBIT_DAY.match(text)
    if not match or match.group(2) not in _MONTHS:
        raise _bad(venue, instrument, f"expiry {text!r} is not like 27DEC24")
    try:
        return date(2000 + int(match.group(3)), _MONTHS[match.group(2)], int(match.group(1)))
    except ValueError:
        raise _bad(venue, instrument, f"expiry {text!r} is not a date") from None


def _yymmdd(venue: str, instrument: str, text: str) -> date:
    try:
        if not _YYMMDD.match(text):
            raise ValueError
        return date(2000 + int(text[:2]), int(text[2:4]), int(text[4:]))
    except ValueError:
        raise _bad(venue, instrument, f"expiry {text!r} is not YYMMDD") from None


def _option(venue: str, instrument: str, strike: str, option_type: str) -> tuple[float, Literal["C", "P"]]:
    if not _STRIKE.match(strike):
        raise _bad(venue, instrument, f"strike {strike!r} is not a number")
    if option_type not in ("C", "P"):
        raise _bad(venue, instrument, f"option type {option_type!r} is not C or P")
    return float(strike.replace("d", ".")), option_type  # type: ignore[return-value]


def _deribit(instrument: str) -> Contract:
    venue, parts = "DERIBIT", instrument.split("-")
    base, _, quote = parts[0].partition("_")
    linear = bool(quote)
    quote = quote or "USD"
    if len(parts) == 1:
        if not linear:
            raise _bad(venue, instrument, "a spot pair is BASE_QUOTE")
        return Contract(venue, instrument, "spot", base, quote)
    if len(parts) == 2 and parts[1] == "PERPETUAL":
        return Contract(venue, instrument, "perpetual", base, quote, inverse=not linear)
    expiry = _deribit_expiry(venue, instrument, parts[1])
    if len(parts) == 2:
        return Contract(venue, instrument, "future", base, quote, expiry, inverse=not linear)
    if len(parts) == 4:
        strike, option_type = _option(venue, instrument, parts[2], parts[3])
        return Contract(venue, instrument, "option", base, quote, expiry, strike, option_type)
    raise _bad(venue, instrument, "expected BASE[_QUOTE]-PERPETUAL, -DDMMMYY or -DDMMMYY-STRIKE-C|P")


def _okx(instrument: str) -> Contract:
    venue, parts = "OKX", instrument.split("-")
    if len(parts) < 2:
        raise _bad(venue, instrument, "expected BASE-QUOTE[-SWAP|-YYMMDD[-STRIKE-C|P]]")
    base, quote = parts[0], parts[1]
    inverse = quote == "USD"
    if len(parts) == 2:
        return Contract(venue, instrument, "spot", base, quote)
    if len(parts) == 3 and parts[2] == "SWAP":
        return Contract(venue, instrument, "perpetual", base, quote, inverse=inverse)
    expiry = _yymmdd(venue, instrument, parts[2])
    if len(parts) == 3:
        return Contract(venue, instrument, "future", base, quote, expiry, inverse=inverse)
    if len(parts) == 5:
        strike, option_type = _option(venue, instrument, parts[3], parts[4])
        return Contract(venue, instrument, "option", base, quote, expiry, strike, option_type)
    raise _bad(venue, instrument, "expected BASE-QUOTE[-SWAP|-YYMMDD[-STRIKE-C|P]]")


def _split_pair(venue: str, instrument: str, pair: str) -> tuple[str, str]:
    for quote in sorted(QUOTES, key=len, reverse=True):
        if pair.endswith(quote) and len(pair) > len(quote):
            return pair[: -len(quote)], quote
    raise _bad(venue, instrument, f"no known quote asset ends {pair!r} (one of {', '.join(QUOTES)})")


def _binance(venue: str, instrument: str) -> Contract:
    pair, _, suffix = instrument.partition("_")
    base, quote = _split_pair(venue, instrument, pair)
    if venue == "BINANCE":
        if suffix:
            raise _bad(venue, instrument, "a spot symbol has no '_'")
        return Contract(venue, instrument, "spot", base, quote)
    inverse = venue == "BINANCE_CM"
    if suffix in ("", "PERP") and (suffix == "PERP") == inverse:
        return Contract(venue, instrument, "perpetual", base, quote, inverse=inverse)
    if suffix:
        return Contract(venue, instrument, "future", base, quote, _yymmdd(venue, instrument, suffix), inverse=inverse)
    raise _bad(venue, instrument, "a COIN-M perpetual is BASEUSD_PERP")


def contract_of(venue: str, instrument: str) -> Contract:
    """The contract an instrument name of DERIBIT, OKX or BINANCE[_UM|_CM] stands for (see the module's table)."""
    if venue == "DERIBIT":
        return _deribit(instrument)
    if venue == "OKX":
        return _okx(instrument)
    if venue in ("BINANCE", "BINANCE_UM", "BINANCE_CM"):
        return _binance(venue, instrument)
    raise ValueError(f"{venue}:{instrument}: no contract naming known for venue {venue!r}")
