"""The records of OKX's paged endpoints as declared (msgspec Structs in the docs' names, a comment a
field, each field's type saying what its value must be; OKX sends every value as text, its numbers read
from it) and the rules a type cannot say (the page's instrument, an epoch, a bar's shape): what rest.py's
parsers read (`records_of`) and check a page with."""

from __future__ import annotations

from typing import Any, Literal

import msgspec
import numpy as np

from marketdata_assets.core.http import Page
from marketdata_assets.datasets.declared import (
    Amount,
    Digits,
    Finite,
    Int64,
    Positive,
    Rule,
    Text,
    bar_rules,
    check,
    columns,
    each,
    integers,
    is_epoch,
    records_of,
    where,
)
from marketdata_assets.datasets.frames import epoch_to_us
from marketdata_assets.datasets.normalized import Trade
from marketdata_assets.sources.okx.units import ContractSizer

VENUE = "OKX"


class Envelope(msgspec.Struct):
    """Every v5 answer: `{"code": "0", "msg": "", "data": [...]}` (other codes: `envelope_data`)."""

    data: Any  # the endpoint's records, an array (`HistoryTrade`s, `Candle`s, a `Book`, a `Ticker`, ...)


class Book(msgspec.Struct):
    """The one record of `/api/v5/market/books`."""

    ts: Int64 | Digits  # the book's time, epoch ms (text)
    bids: list[Any]  # [px, sz, "0", numOrders] arrays, best first (read by `book_levels`; sz: contracts)
    asks: list[Any]  # the same, best first
    seqId: Int64 | str | None = None  # the book's sequence number, an integer: update_id (absent or "": none)


class Ticker(msgspec.Struct):
    """A ticker: the one record of `/api/v5/market/ticker?instId=`, and each record of `/market/tickers`."""

    instId: Any  # the instrument: the one asked for
    ts: Int64 | Digits  # the ticker's time, epoch ms (text)
    last: Amount | Literal[""]  # last traded price ("" or "0": no trade yet, null)
    bidPx: Positive | Literal[""]  # best bid ("": an empty side)
    bidSz: Amount | Literal[""]  # its size: base units (spot), contracts (SWAP/FUTURES)
    askPx: Positive | Literal[""]  # best ask
    askSz: Amount | Literal[""]  # its size
    vol24h: Amount  # 24 h volume: base units (spot), contracts (SWAP/FUTURES)
    volCcy24h: Amount  # 24 h volume: quote units (spot), base units (SWAP/FUTURES), coin (OPTION)
    instType: str = ""  # SPOT | SWAP | FUTURES | OPTION


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
    """One `history-candles` row (and `candle1m` push), every value text (read as numbers)."""

    ts: Digits  # open time, epoch ms: the bar's ts
    o: Positive  # open, high, low, close
    h: Positive
    l: Positive
    c: Positive
    vol: Amount  # volume: base units (spot), contracts (SWAP/FUTURES)
    volCcy: Amount  # volume: quote units (spot), base units (SWAP/FUTURES): the derivatives' volume
    volCcyQuote: Amount | Literal[""] = ""  # quote units: the row's amount ("" or none: volCcy, or x c)
    confirm: Literal["0", "1"] = "1"  # "1": closed; "0": still forming (dropped and counted)


class PriceCandle(msgspec.Struct, array_like=True):
    """One `history-mark-price-candles` / `history-index-candles` row."""

    ts: Digits  # open time, epoch ms
    o: Positive  # open, high, low, close
    h: Positive
    l: Positive
    c: Positive
    confirm: Literal["0", "1"] = "1"  # as a candle's


class FundingSettlement(msgspec.Struct):
    """One settlement of `/api/v5/public/funding-rate-history` (perpetuals)."""

    instId: str  # the perpetual: the page's own
    fundingTime: Digits  # settlement time, epoch ms
    realizedRate: Finite  # the rate settled: the row's rate (fundingRate, the predicted one, is not read)


class OpenInterestRow(msgspec.Struct, array_like=True):
    """One `/api/v5/rubik/stat/contracts/open-interest-history` row (and the open-interest push's)."""

    ts: Digits  # epoch ms
    oi: Amount  # contracts
    oiCcy: Amount  # base units (the coin): the row's base
    oiUsd: Amount | None = None  # USD: the row's quote (added later: older pushes lack it, null)


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
    an id of digits is read as seq (digits int() does not read fail as int() does), so it must fit seq's
    Int64 (the ids count up by one and are paged by: one past it cannot be a seq, nor stood for by None)."""
    return (
        of(instrument),
        is_epoch("ts"),
        Rule("tradeId", _decimal, lambda what, r: str(int(r["tradeId"]))),
        Rule("tradeId", _fits_int64, "{what} tradeId is {value!r}, past the 64-bit integers seq holds"),
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


_INT64_DIGITS = len(str(2**63 - 1))


def _fits_int64(cols: dict) -> Any:
    """An id of decimal digits is at most 2^63 - 1 (one of other characters is for `_decimal`, or no seq)."""
    ids = cols["tradeId"]
    if max(map(len, ids), default=0) < _INT64_DIGITS:
        return True
    return np.fromiter(
        (not t.isdecimal() or len(t) < _INT64_DIGITS or int(t) < 2**63 for t in ids), bool, len(ids)
    )


def to_trades(
    data: list, instrument: str, sizer: ContractSizer, ctx: Page, number: str = "trade #{i}", recv_ns: int = 0
) -> list[Trade]:
    """Trades (`HistoryTrade`: history-trades, and the `trades` channel's push) as checked `Trade`s of
    `instrument` received at `recv_ns`, sized by `sizer`: trade_id = tradeId, seq = int(tradeId) (None
    for an id that is not digits), ts = ts (ms), its event time its own. A record that does not fit, or
    breaks `trade_rules`, is a SourceDataError naming it (by its id, else `number`)."""

    def named(i: int, record: Any) -> str:
        trade_id = record.get("tradeId") if isinstance(record, dict) else None
        return f"trade {trade_id}" if text(trade_id) else number.format(i=i)

    records = records_of(HistoryTrade, data, named, ctx)
    cols = columns(records, HistoryTrade.__struct_fields__)
    cols["ts"] = integers(cols["ts"])
    check(cols, trade_rules(instrument), named, ctx)
    quantity, amount = sizer.sized(cols["px"], cols["sz"])
    stamps = map(epoch_to_us, cols["ts"])
    return [
        Trade(VENUE, instrument, i, px, q, a, side, int(i) if i.isdigit() else None, us, us // 1000, recv_ns)
        for i, px, q, a, side, us in zip(cols["tradeId"], cols["px"], quantity, amount, cols["side"], stamps)
    ]


def _candle_rules(volume: str | None) -> tuple[Rule, ...]:
    """What every candle row keeps besides its types: epoch ms; a closed one (not "0") a bar that can be
    true (on a minute, low <= open/close <= high: datasets.wire.check_bar)."""
    return (is_epoch("ts"), *where("closed", bar_rules("ts_us", volume)))


CANDLE_RULES, PRICE_CANDLE_RULES = _candle_rules("vol"), _candle_rules(None)
OPEN_INTEREST_RULES = (is_epoch("ts"),)
