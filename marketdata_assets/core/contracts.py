"""What a crypto instrument is, read from the venue's own name of it: spot pair, perpetual, dated future
or option, with its base and quote currencies, expiry, strike and option type.

The `Contract` and the readers every venue's naming shares (expiries, strikes, quote assets); each
venue reads its own names in its package, so a new venue changes nothing here. An instrument the master
knows is described by its record (`Instrument.contract`): a name is read only for one it never saw. The
venues' shapes, expiry time and quote split: docs/crypto-datasets.md, "What an instrument is".
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, date, datetime, time
from typing import Literal, NamedTuple

ContractType = Literal["spot", "perpetual", "future", "option"]
EXPIRY_TIME = time(8, 0, tzinfo=UTC)
_MONTHS = {
    m: i
    for i, m in enumerate(
        ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), start=1
    )
}
_DERIBIT_DAY = re.compile(r"^(\d{1,2})([A-Z]{3})(\d{2})$")
_YYMMDD = re.compile(r"^\d{6}$")
_STRIKE = re.compile(r"^\d+(?:[.d]\d+)?$")


class Contract(NamedTuple):
    venue: str
    instrument: str
    contract_type: ContractType
    base: str
    quote: str  # the quote (inverse contracts: the currency the size is counted in, USD; "": not in the name)
    expiry: date | None = None
    strike: float | None = None
    option_type: Literal["C", "P"] | None = None
    inverse: bool = False  # sized in USD, settled in the base coin

    @property
    def expires_at(self) -> datetime | None:
        return datetime.combine(self.expiry, EXPIRY_TIME) if self.expiry else None


def bad_name(venue: str, instrument: str, why: str) -> ValueError:
    return ValueError(f"{venue}:{instrument} is not a {venue} instrument name: {why}")


def ddmmmyy(venue: str, instrument: str, text: str) -> date:
    match = _DERIBIT_DAY.match(text)
    if not match or match.group(2) not in _MONTHS:
        raise bad_name(venue, instrument, f"expiry {text!r} is not like 27DEC24")
    try:
        return date(2000 + int(match.group(3)), _MONTHS[match.group(2)], int(match.group(1)))
    except ValueError:
        raise bad_name(venue, instrument, f"expiry {text!r} is not a date") from None


def yymmdd(venue: str, instrument: str, text: str) -> date:
    try:
        if not _YYMMDD.match(text):
            raise ValueError
        return date(2000 + int(text[:2]), int(text[2:4]), int(text[4:]))
    except ValueError:
        raise bad_name(venue, instrument, f"expiry {text!r} is not YYMMDD") from None


def option_strike(
    venue: str, instrument: str, strike: str, option_type: str
) -> tuple[float, Literal["C", "P"]]:
    if not _STRIKE.match(strike):
        raise bad_name(venue, instrument, f"strike {strike!r} is not a number")
    if option_type not in ("C", "P"):
        raise bad_name(venue, instrument, f"option type {option_type!r} is not C or P")
    return float(strike.replace("d", ".")), option_type  # type: ignore[return-value]


def split_pair(venue: str, instrument: str, pair: str, quotes: Iterable[str]) -> tuple[str, str]:
    """(base, quote) of a pair written BASEQUOTE, by the quote assets the venue lists (`quotes`: the
    longest that ends it); none given: (pair, ""), the quote not in the name; ValueError if none ends it."""
    quotes = sorted(set(quotes), key=len, reverse=True)
    if not quotes:
        return pair, ""
    for quote in quotes:
        if pair.endswith(quote) and len(pair) > len(quote):
            return pair[: -len(quote)], quote
    raise bad_name(venue, instrument, f"no quote asset the venue lists ends {pair!r}")
