"""Instrument naming across venues: one key, (venue, instrument), everywhere (frames, ClickHouse, partitions).

A venue is our upper-case code of a market (``BINANCE_UM``, ``SSE``), an instrument the venue's own
spelling (``BTC-USDT-SWAP``, ``600000.SH``); ``VENUE:INSTRUMENT`` is the display form and partition
key, and every A-share spelling maps to one code (:data:`EXCHANGE_BY_PREFIX`). The rules, the
accepted spellings and the prefix table: docs/ticks.md, "Naming: venues, instruments, A-share codes".
"""

from __future__ import annotations

import re
from typing import NamedTuple

from marketdata_assets.core.identifiers import instrument_key, matching

A_SHARE_VENUE_BY_SUFFIX = {"SH": "SSE", "SZ": "SZSE", "BJ": "BSE"}
A_SHARE_VENUES = tuple(A_SHARE_VENUE_BY_SUFFIX.values())  # the one list: SSE, SZSE, BSE
A_SHARE_EXCHANGES = {venue: exchange for exchange, venue in A_SHARE_VENUE_BY_SUFFIX.items()}
VENUE_ALIASES = {
    "SH": "SSE",
    "SS": "SSE",
    "XSHG": "SSE",
    "SHSE": "SSE",
    "SZ": "SZSE",
    "XSHE": "SZSE",
    "BJ": "BSE",
    "BJSE": "BSE",
    "XBSE": "BSE",
}

_VENUE = re.compile(r"^[A-Z][A-Z0-9_]{1,23}$")
# The shape of an instrument's name per venue, where the venue has one.
_INSTRUMENT_SHAPE = {
    "BINANCE": re.compile(r"^[A-Z0-9]+$"),
    "BINANCE_UM": re.compile(r"^[A-Z0-9]+(_[0-9]{6})?$"),
    "BINANCE_CM": re.compile(r"^[A-Z0-9]+_(PERP|[0-9]{6})$"),
    "OKX": re.compile(r"^[A-Z0-9]+-[A-Z0-9]+(-[A-Z0-9]+)*$"),
    "DERIBIT": re.compile(r"^[A-Z0-9_]+-[A-Z0-9]+(-[A-Z0-9.]+)*$"),
}
# Every spelling of an A-share exchange in circulation -> its suffix (SH | SZ | BJ).
EXCHANGE_ALIASES = {
    "SH": "SH",
    "SS": "SH",
    "XSHG": "SH",
    "SSE": "SH",
    "SHSE": "SH",
    "SZ": "SZ",
    "XSHE": "SZ",
    "SZSE": "SZ",
    "BJ": "BJ",
    "BSE": "BJ",
    "BJSE": "BJ",
    "XBSE": "BJ",
}
# The exchange of a bare 6-digit code by its leading digits; the longest matching prefix wins.
EXCHANGE_BY_PREFIX = {
    "92": "BJ",
    "4": "BJ",
    "8": "BJ",
    "6": "SH",
    "9": "SH",
    "5": "SH",
    "0": "SZ",
    "2": "SZ",
    "3": "SZ",
    "15": "SZ",
    "16": "SZ",
}
_PREFIX_LENGTHS = sorted({len(prefix) for prefix in EXCHANGE_BY_PREFIX}, reverse=True)
_CODE_SUFFIX = re.compile(r"^(\d{6})\.([A-Z]{2,4})$")
_PREFIX_CODE = re.compile(r"^(SHSE|SZSE|BJSE|SH|SZ|BJ)[.:]?(\d{6})$")
_BARE_CODE = re.compile(r"^\d{6}$")
_FORBIDDEN_IN_KEYS = ("|", ",", "[", "]", "...", ":")


class InstrumentKey(NamedTuple):
    """(venue, instrument): ``venue, instrument = parse_instrument("BINANCE:BTCUSDT")``."""

    venue: str
    instrument: str

    def __str__(self) -> str:
        return f"{self.venue}:{self.instrument}"

    @property
    def partition_key(self) -> str:
        return partition_key(self.venue, self.instrument)


def exchange_by_prefix(code: str) -> str | None:
    """'SH' | 'SZ' | 'BJ' for a bare 6-digit A-share code, None when its digits don't tell."""
    if not isinstance(code, str) or not _BARE_CODE.match(code):
        return None
    for length in _PREFIX_LENGTHS:
        if exchange := EXCHANGE_BY_PREFIX.get(code[:length]):
            return exchange
    return None


def infer_exchange(code: str) -> str:
    """'SH' | 'SZ' | 'BJ' for a bare 6-digit A-share code (see the module docstring)."""
    exchange = exchange_by_prefix(matching(code, _BARE_CODE, "A-share code", "6 digits"))
    if exchange is None:
        raise ValueError(
            f"cannot infer the exchange of A-share code {code!r} (Shanghai and Shenzhen both use "
            f"{code[:2]}xxxx codes): add .SH, .SZ or .BJ"
        )
    return exchange


def a_share_code(code: str) -> str:
    """Any common spelling of an A-share code -> ``600000.SH`` form (see the module docstring).

    >>> a_share_code("sh600000"), a_share_code("000001.XSHE"), a_share_code("830799")
    ('600000.SH', '000001.SZ', '830799.BJ')
    """
    if not isinstance(code, str):
        raise ValueError(f"invalid A-share code {code!r}: expected a string such as 600000.SH")  # noqa: TRY004  ValueError is the contract
    text = code.strip().upper()
    if match := _CODE_SUFFIX.match(text):
        digits, suffix = match.groups()
        exchange = EXCHANGE_ALIASES.get(suffix)
        if exchange is None:
            raise ValueError(
                f"invalid A-share code {code!r}: unknown exchange suffix .{suffix} "
                "(expected SH, SZ, BJ, SS, XSHG, XSHE)"
            )
        return f"{digits}.{exchange}"
    if match := _PREFIX_CODE.match(text):
        exchange, digits = match.groups()
        return f"{digits}.{EXCHANGE_ALIASES[exchange]}"
    if _BARE_CODE.match(text):
        return f"{text}.{infer_exchange(text)}"
    raise ValueError(
        f"invalid A-share code {code!r}: expected forms like 600000.SH, sh600000, 000001.XSHE or 600000"
    )


def a_share_venue(code: str) -> str:
    """The venue (SSE, SZSE, BSE) of an A-share code in any accepted spelling."""
    return A_SHARE_VENUE_BY_SUFFIX[a_share_code(code)[-2:]]


def is_a_share_venue(venue: str) -> bool:
    return venue in A_SHARE_EXCHANGES


def normalize_venue(venue: str) -> str:
    """Upper-case venue code with exchange aliases resolved (SH -> SSE, XSHE -> SZSE, BJ -> BSE)."""
    if not isinstance(venue, str):
        raise ValueError(f"invalid venue {venue!r}: expected a code such as BINANCE, OKX or SSE")  # noqa: TRY004  ValueError is the contract
    text = venue.strip().upper()
    text = VENUE_ALIASES.get(text, text)
    if not _VENUE.match(text):
        raise ValueError(
            f"invalid venue {venue!r}: expected an upper-case code such as BINANCE, OKX or SSE "
            "(letters, digits, '_')"
        )
    return text


def normalize_instrument(venue: str, instrument: str) -> InstrumentKey:
    """Validate and normalize one (venue, instrument) pair: the only spelling stored anywhere."""
    venue = normalize_venue(venue)
    if is_a_share_venue(venue):
        if isinstance(instrument, str) and _BARE_CODE.match(instrument.strip()):
            # the venue is the exchange: SSE:000001 is the SSE Composite index, not 000001.SZ
            instrument = f"{instrument.strip()}.{A_SHARE_EXCHANGES[venue]}"
        code = a_share_code(instrument)
        if A_SHARE_VENUE_BY_SUFFIX[code[-2:]] != venue:
            raise ValueError(
                f"A-share {instrument!r} ({code}) is listed on {A_SHARE_VENUE_BY_SUFFIX[code[-2:]]}, not "
                f"{venue}"
            )
        return InstrumentKey(venue, code)
    if not isinstance(instrument, str):
        raise ValueError(f"invalid instrument {instrument!r} on {venue}: expected the venue's name of it")  # noqa: TRY004  ValueError is the contract
    name = instrument.strip().upper()
    try:
        instrument_key(name)
    except ValueError:
        raise ValueError(
            f"invalid instrument {instrument!r} on {venue}: expected the venue's name of it "
            "(letters, digits, '.', '_', '-'; at most 64)"
        ) from None
    if "..." in name:
        raise ValueError(f"invalid instrument {instrument!r} on {venue}: '...' is not allowed")
    pattern = _INSTRUMENT_SHAPE.get(venue)
    if pattern is not None and not pattern.match(name):
        examples = {
            "BINANCE": "BTCUSDT",
            "BINANCE_UM": "BTCUSDT or BTCUSDT_240628",
            "BINANCE_CM": "BTCUSD_PERP",
            "OKX": "BTC-USDT or BTC-USDT-SWAP",
            "DERIBIT": "BTC-PERPETUAL or BTC-28JUN24-60000-C",
        }[venue]
        raise ValueError(
            f"instrument {instrument!r} does not look like an instrument of {venue} "
            f"(expected e.g. {examples})"
        )
    return InstrumentKey(venue, name)


def parse_instrument(text: str) -> InstrumentKey:
    """``"BINANCE:BTCUSDT"`` -> ``InstrumentKey("BINANCE", "BTCUSDT")``; an A-share code alone
    (``600000.SH``, ``sh600000``, ``000001.XSHE``) gets its exchange's venue."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"invalid instrument {text!r}: expected VENUE:INSTRUMENT such as BINANCE:BTCUSDT")
    text = text.strip()
    if ":" in text:
        venue, _, instrument = text.partition(":")
        return normalize_instrument(venue, instrument)
    try:
        code = a_share_code(text)
    except ValueError:
        raise ValueError(
            f"invalid instrument {text!r}: expected VENUE:INSTRUMENT such as BINANCE:BTCUSDT or "
            "an A-share code such as 600000.SH"
        ) from None
    return InstrumentKey(A_SHARE_VENUE_BY_SUFFIX[code[-2:]], code)


def partition_key(venue: str, instrument: str) -> str:
    """Dagster dynamic-partition key of one instrument: ``VENUE:INSTRUMENT`` (normalized).
    Contains none of ``| , [ ]`` or ``...``; :func:`parse_partition_key` reverses it."""
    key = normalize_instrument(venue, instrument)
    text = f"{key.venue}:{key.instrument}"
    if any(bad in key.venue or bad in key.instrument for bad in _FORBIDDEN_IN_KEYS):  # pragma: no cover
        raise ValueError(f"instrument {text!r} cannot be a partition key")
    return text


def parse_partition_key(key: str) -> InstrumentKey:
    """Inverse of :func:`partition_key`."""
    if not isinstance(key, str) or key.count(":") != 1:
        raise ValueError(f"invalid instrument partition key {key!r}: expected VENUE:INSTRUMENT")
    venue, instrument = key.split(":")
    parsed = normalize_instrument(venue, instrument)
    if f"{parsed.venue}:{parsed.instrument}" != key:
        raise ValueError(
            f"instrument partition key {key!r} is not normalized: expected {parsed.venue}:{parsed.instrument}"
        )
    return parsed
