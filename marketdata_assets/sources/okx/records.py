"""The records of OKX's paged endpoints as declared (msgspec Structs in the docs' names, a comment a
field) and the rules each keeps (datasets.declared): what rest.py's parsers read and check a page with.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec
import numpy as np

from marketdata_assets.datasets.declared import (
    Digits,
    Finite,
    Positive,
    Rule,
    Text,
    bar_rules,
    each,
    is_array,
    is_epoch,
    is_not_negative,
    reads,
    where,
)
from marketdata_assets.datasets.wire import integer, number


class HistoryTrade(msgspec.Struct):
    """One trade of `/api/v5/market/history-trades` (and of the `trades` channel's push). OKX sends every
    value as text: its numbers are read from it (`records_of`, not strict)."""

    instId: str  # the instrument: the page's own
    tradeId: Text  # decimal digits (text): trade_id, and seq as a number
    px: Positive  # price, quote per base
    sz: Positive  # size: base units (spot), contracts (SWAP/FUTURES: x ctVal)
    side: Literal["buy", "sell"]  # the taker's side
    ts: Digits  # trade time, epoch ms


class Candle(msgspec.Struct, array_like=True):
    """One `history-candles` row (and `candle1m` push)."""

    ts: str  # open time, epoch ms (digit text): the bar's ts
    o: float  # open, high, low, close (decimal text)
    h: float
    l: float
    c: float
    vol: float  # volume: base units (spot), contracts (SWAP/FUTURES)
    volCcy: float  # volume: quote units (spot), base units (SWAP/FUTURES): the derivatives' volume
    volCcyQuote: float  # quote units: the row's amount (a row may lack it: volCcy, or volCcy x c)
    confirm: str = "1"  # "1": closed; "0": still forming (dropped and counted)


class PriceCandle(msgspec.Struct, array_like=True):
    """One `history-mark-price-candles` / `history-index-candles` row."""

    ts: str  # open time, epoch ms (digit text)
    o: float  # open, high, low, close (decimal text)
    h: float
    l: float
    c: float
    confirm: str = "1"  # as a candle's


class FundingSettlement(msgspec.Struct):
    """One settlement of `/api/v5/public/funding-rate-history` (perpetuals)."""

    instId: str  # the perpetual: the page's own
    fundingTime: Digits  # settlement time, epoch ms
    realizedRate: Finite  # the rate settled: the row's rate (fundingRate, the predicted one, is not read)


class OpenInterestRow(msgspec.Struct, array_like=True):
    """One `/api/v5/rubik/stat/contracts/open-interest-history` row."""

    ts: str  # epoch ms (digit text)
    oi: float  # contracts
    oiCcy: float  # base units (the coin): the row's base
    oiUsd: float  # USD: the row's quote


class LiquidationDetail(msgspec.Struct):
    """One liquidation of a `liquidation-orders` record (and of the channel's push), of our contract."""

    side: Literal["buy", "sell"]  # the liquidation order's side: "sell" closes a long
    posSide: str  # the position's side: long | short | net (in the id only)
    bkPx: Positive  # bankruptcy price (the price the order traded with the liquidation account at)
    sz: Positive  # contracts (x ctVal)
    ts: Digits  # epoch ms


class DetailTime(msgspec.Struct):
    """What every liquidation detail keeps, of our contract or another (the paging runs over all)."""

    ts: Digits  # epoch ms


class LiquidationOrders(msgspec.Struct):
    """One record of `/api/v5/public/liquidation-orders`: one contract's filled liquidations."""

    details: list[Any]  # `DetailTime`s, `LiquidationDetail`s where the contract is ours (read apart)
    instId: str = ""  # the contract; none: the family's perpetual (instType SWAP)
    instType: str = ""  # SWAP | FUTURES
    instFamily: str = ""  # "BTC-USDT" for BTC-USDT-SWAP (uly: its older name)
    uly: str = ""


SIDE = each("side", ("buy", "sell").__contains__, "{what} side is {value!r}, not buy/sell")
CANDLE_READERS = {
    "ts": integer,
    **dict.fromkeys("ohlc", number),
    "vol": number,
    "volCcy": number,
    "volCcyQuote": number,
    "confirm": None,
}
PRICE_CANDLE_READERS = {"ts": integer, **dict.fromkeys("ohlc", number), "confirm": None}
CANDLE_OPTIONAL = {"volCcyQuote": "", "confirm": "1"}  # a row may end before them (confirm: closed)
OPEN_INTEREST_READERS = {"ts": integer, "oi": number, "oiCcy": number, "oiUsd": number}
PRICES = ("open", "high", "low", "close")


def of(instrument: str) -> Rule:
    """The record's instId is the page's instrument."""
    return each(
        "instId",
        (instrument,).__contains__,
        lambda what, r: f"{what} is for {r['instId']!r}, not {instrument}",
    )


def text(value: Any) -> bool:
    return isinstance(value, str) and value != ""


def trade_rules(instrument: str) -> tuple[Rule, ...]:
    """What every trade keeps besides its types, in the order a breach is told: its instrument, epoch ms;
    an id of digits is read as seq (digits int() does not read fail as int() does)."""
    return (
        of(instrument),
        is_epoch("ts"),
        Rule("tradeId", _decimal, lambda what, r: str(int(r["tradeId"]))),
    )


def _decimal(cols: dict) -> Any:
    """An id of digits is of decimal digits ("²" is a digit int() does not read): one pass for a page of
    them."""
    ids = cols["tradeId"]
    if set(map(type, ids)) == {str} and "".join(ids).isdecimal():
        return True
    return np.fromiter(
        (not (isinstance(t, str) and t.isdigit()) or t.isdecimal() for t in ids), bool, len(ids)
    )


def _candle_rules(kind: type, least: int, shown: int) -> tuple[Rule, ...]:
    """What every candle row keeps, in the order a breach is told: its shape and time (the row named by
    its position until then, by its time after), a confirm flag; a closed one (not "0") finite prices
    and volumes, a bar that can be true (datasets.wire.check_bar), a quote volume not negative."""
    head = (
        is_array(least, kind.__struct_fields__, shown),
        reads("ts", integer),
        is_epoch("ts"),
        each("confirm", ("0", "1").__contains__, '{what} confirm is {value!r}, not "0" or "1"'),
    )
    prices = tuple(reads(raw, number, name) for raw, name in zip("ohlc", PRICES, strict=True))
    if kind is PriceCandle:
        return head + where("closed", prices + bar_rules("ts_us", None))
    volumes = (
        reads("vol", number),
        reads("volCcy", number),
        is_not_negative("volCcy"),
        *where("quoted", (reads("volCcyQuote", number),)),
    )
    return head + where(
        "closed",
        prices + volumes + bar_rules("ts_us", "vol") + where("quoted", (is_not_negative("volCcyQuote"),)),
    )


CANDLE_RULES, PRICE_CANDLE_RULES = _candle_rules(Candle, 7, 160), _candle_rules(PriceCandle, 5, 120)
OPEN_INTEREST_RULES = (
    is_array(4, OpenInterestRow.__struct_fields__, 120),
    reads("ts", integer),
    is_epoch("ts"),
    *(rule for name in ("oi", "oiCcy", "oiUsd") for rule in (reads(name, number), is_not_negative(name))),
)
