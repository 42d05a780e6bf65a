"""OKX's instrument master: `GET /api/v5/public/instruments` (instType SPOT, SWAP, FUTURES, OPTION; an
option's family by `instFamily`) read into the master's `Instrument`s: contract value and multiplier,
linear or inverse, tick and lot sizes, listing and expiry, state. Fields as documented:
https://www.okx.com/docs-v5/en/#public-data-rest-api-get-instruments
The 24 h volumes universe rules rank by: `GET /api/v5/market/tickers` (per instType; 20 requests / 2 s):
https://www.okx.com/docs-v5/en/#order-book-trading-market-data-get-tickers (`volumes_of` says the measure).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from marketdata_assets.core.http import Page
from marketdata_assets.datasets.declared import page_of
from marketdata_assets.datasets.frames import from_us
from marketdata_assets.datasets.instruments import Instrument
from marketdata_assets.datasets.volumes import Volume
from marketdata_assets.sources.okx.naming import contract
from marketdata_assets.sources.okx.records import Ticker

VENUE = "OKX"
PATH = "/api/v5/public/instruments"
UNDERLYING_PATH = "/api/v5/public/underlying"
TICKERS_PATH = "/api/v5/market/tickers"
INST_TYPES = ("SPOT", "SWAP", "FUTURES", "OPTION")
TYPES = {"SPOT": "spot", "SWAP": "perpetual", "FUTURES": "future", "OPTION": "option"}
INST_TYPE_OF = {kind: inst_type for inst_type, kind in TYPES.items()}
STATES = {"live": "live", "suspend": "suspended", "preopen": "preopen", "test": "test", "expired": "expired"}
OPTION_TYPES = {"C": "call", "P": "put"}


class OkxInstrument(msgspec.Struct):
    """One instrument of `/api/v5/public/instruments` (every value text; "" where it does not apply)."""

    instType: str  # SPOT | MARGIN | SWAP | FUTURES | OPTION
    instId: str  # BTC-USDT, BTC-USDT-SWAP, BTC-USD-250328, BTC-USD-250328-60000-C
    uly: str = ""  # the index it derives from (BTC-USD); "" for spot
    instFamily: str = ""  # the family (BTC-USD); "" for spot
    baseCcy: str = ""  # spot's base currency ("" for contracts)
    quoteCcy: str = ""  # spot's quote currency ("" for contracts)
    settleCcy: str = ""  # the settlement currency of a contract (BTC for inverse, USDT for linear)
    ctVal: str = ""  # contract value, in ctValCcy
    ctMult: str = ""  # contract multiplier: a contract is ctVal x ctMult ctValCcy
    ctValCcy: str = ""  # the currency ctVal counts (the coin for linear and options, USD for inverse)
    ctType: str = ""  # linear | inverse (SWAP and FUTURES)
    optType: str = ""  # C | P (options)
    stk: str = ""  # strike (options)
    listTime: str = ""  # listing time, epoch ms
    expTime: str = ""  # expiry or delisting time, epoch ms ("" when none is set)
    tickSz: str = ""  # price increment
    lotSz: str = ""  # size increment (contracts for derivatives, base for spot)
    minSz: str = ""  # minimum order size, in the same unit
    state: str = ""  # live | suspend | preopen | test


def _number(text: str, default: float | None = None) -> float | None:
    return float(text) if text not in ("", None) else default


def _time(text: str):
    return (
        from_us(int(text) * 1000)
        if text not in ("", None) and str(text).isdigit() and int(text) > 0
        else None
    )


def instrument_of(row: OkxInstrument) -> Instrument:
    """One documented record as the master's `Instrument`."""
    kind = TYPES.get(row.instType)
    if kind is None:
        raise ValueError(
            f"{VENUE}:{row.instId}: instType {row.instType!r} is not one of {', '.join(INST_TYPES)}"
        )
    family = row.instFamily or row.uly
    if kind == "spot":
        base, quote = row.baseCcy, row.quoteCcy
        value, multiplier, unit, settle, inverse = 1.0, 1.0, base, quote, False
    else:
        base, _, quote = family.partition("-")
        inverse = row.ctType == "inverse"
        value, multiplier = _number(row.ctVal, 1.0), _number(row.ctMult, 1.0)
        unit, settle = (
            row.ctValCcy or (quote if inverse else base),
            row.settleCcy or (base if inverse else quote),
        )
    return Instrument(
        VENUE,
        row.instId,
        kind,
        base,
        quote,
        settle,
        inverse,
        value,
        multiplier,
        unit,
        _number(row.tickSz),
        _number(row.lotSz),
        _number(row.minSz),
        _time(row.listTime),
        _time(row.expTime),
        STATES.get(row.state, row.state or "live"),
        _number(row.stk),
        OPTION_TYPES.get(row.optType),
        family or None,
    )


def instruments_of(data: Any, page: Page) -> list[Instrument]:
    """An answer's `data` array (records of any instType) as Instruments; a SourceDataError names what
    does not fit; a record of a type the master does not keep (MARGIN) is left out."""
    rows = page_of(OkxInstrument, data, "instrument", page)
    out = []
    for row in rows:
        if row.instType in TYPES:
            try:
                out.append(instrument_of(row))
            except ValueError as error:
                raise page.error(str(error)) from None
    return out


def lookup_params(instrument: str, inst_type: str, family: str) -> dict[str, str]:
    """The query of one instrument: its instType and instId (an option: its family too, as OKX requires)."""
    params = {"instType": inst_type, "instId": instrument}
    if inst_type == "OPTION":
        params["instFamily"] = family
    return params


def listing_requests(instruments: list[str]) -> list[tuple[dict[str, str], list[str]]]:
    """The listings that hold `instruments` (contracts), each with its instruments: one per type, an option's
    per family (a name of no shape OKX's naming reads: in none; its first frame asks for it alone)."""
    out: dict[tuple[str, ...], tuple[dict[str, str], list[str]]] = {}
    for name in instruments:
        try:
            named = contract(name)
        except ValueError:
            continue
        inst_type = INST_TYPE_OF[named.contract_type]
        params = {
            "instType": inst_type,
            **({"instFamily": f"{named.base}-{named.quote}"} if inst_type == "OPTION" else {}),
        }
        out.setdefault(tuple(params.values()), (params, []))[1].append(name)
    return list(out.values())


def volumes_of(pages: list[tuple[Any, Page]], taken: datetime) -> list[Volume]:
    """`tickers` answers (each one's `data` and page, of any instType) as `Volume`s, one comparable measure
    per type. SPOT: `volCcy24h`, in the quote currency. SWAP and FUTURES: `volCcy24h` is the base coin (OKX:
    "If it is a derivatives contract, the value is the number of base currency"), so volCcy24h x last, in
    the family's quote (USDT for linear, USD for inverse). OPTION: volCcy24h x last is the premium traded,
    in the coin; x the family's perpetual's last price (BTC-USD-SWAP in the same answers) it is USD, else
    it stays in the coin."""
    rows = [(row, row.last or 0.0) for data, page in pages for row in page_of(Ticker, data, "ticker", page)]
    last = {row.instId: price for row, price in rows}
    out = []
    for row, price in rows:
        parts = row.instId.split("-")
        volume, unit = row.volCcy24h, parts[1] if len(parts) > 1 else ""
        if row.instType in ("SWAP", "FUTURES"):
            volume = row.volCcy24h * price
        elif row.instType == "OPTION":
            premium, coin_price = row.volCcy24h * price, last.get(f"{parts[0]}-{parts[1]}-SWAP")
            volume, unit = (premium * coin_price, "USD") if coin_price else (premium, parts[0])
        out.append(Volume(VENUE, row.instId, taken, volume, unit))
    return out


__all__ = [
    "INST_TYPES",
    "PATH",
    "TICKERS_PATH",
    "OkxInstrument",
    "instrument_of",
    "instruments_of",
    "lookup_params",
    "volumes_of",
]
