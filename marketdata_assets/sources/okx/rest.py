"""OKX v5 public market data: trades, books, 1-minute candles, tickers, funding, open interest,
liquidations, mark and index price candles.

Answers are `{"code": "0", "msg": "", "data": [...]}` (any other code: `ERRORS`), newest first, every
value a string. The records of the paged endpoints are declared below (`HistoryTrade`, `Candle`, ...)
with the rules each keeps: a page is converted in C (or, where it does not fit, read value by value)
and its rules run on its columns, a breach told as datasets.wire's readers tell it. Sizes in contracts
become base units (`ContractSizer`). What the answers do not say, the paging, the limits and errors:
docs/crypto-datasets.md, "OKX v5 REST as read". Over 500 lines: everything about one source in one
module, as the house rule asks.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from itertools import compress
from operator import mul, truediv
from typing import Any, ClassVar

import msgspec
import numpy as np
import polars as pl

from marketdata_assets.core.contracts import Contract, bad_name, option_strike, yymmdd
from marketdata_assets.core.http import ApiClient, ErrorTable, Limits, Page, SourceDataError, describe_request
from marketdata_assets.datasets.declared import (
    RECORD,
    Rule,
    bar_rules,
    check,
    each,
    frame_of,
    is_array,
    is_epoch,
    is_not_negative,
    is_positive,
    keeps,
    lax_columns,
    reads,
    where,
)
from marketdata_assets.datasets.frames import (
    BARS_SCHEMA,
    LIQUIDATIONS_SCHEMA,
    OPEN_INTEREST_SCHEMA,
    TRADES_SCHEMA,
    as_utc,
    ceil_ms,
    day_of,
    epoch_to_us,
    from_us,
    spec_for,
    to_us,
)
from marketdata_assets.datasets.wire import (
    DropCounts,
    Trade,
    book_frame,
    book_levels,
    columns_of,
    epoch_us,
    field,
    finish,
    finish_bars,
    finish_trades,
    integer,
    not_negative,
    note_conversion,
    number,
    positive,
)
from marketdata_assets.sources.interface import HISTORY, SNAPSHOT, Reach

VENUE = "OKX"
DEFAULT_BASE_URL = "https://www.okx.com"
DOCS = "https://www.okx.com/docs-v5/en/"
NOWHERE = "nowhere in this project"
MAX_BOOK_DEPTH = 400

TICKER = "/api/v5/market/ticker"
FUNDING_HISTORY = "/api/v5/public/funding-rate-history"
OPEN_INTEREST_HISTORY = "/api/v5/rubik/stat/contracts/open-interest-history"
LIQUIDATION_ORDERS = "/api/v5/public/liquidation-orders"
HISTORY_CANDLES = "/api/v5/market/history-candles"
MARK_CANDLES = "/api/v5/market/history-mark-price-candles"
INDEX_CANDLES = "/api/v5/market/history-index-candles"
FUNDING_INTERVAL_HOURS = 8.0  # OKX's usual and longest interval (a lone settlement's: docs/crypto-datasets.md)

LIMITS = Limits(requests_per_minute=600, max_concurrency=8, endpoint_limits={
    "/api/v5/market/history-trades": (20, 2.0), "/api/v5/market/books": (40, 2.0), HISTORY_CANDLES: (20, 2.0),
    TICKER: (20, 2.0), FUNDING_HISTORY: (10, 2.0), OPEN_INTEREST_HISTORY: (10, 2.0),
    LIQUIDATION_ORDERS: (20, 2.0), MARK_CANDLES: (20, 2.0), INDEX_CANDLES: (10, 2.0)})
ERRORS = ErrorTable(exact={
    "50011": "rate_limited",  # "Too Many Requests" (HTTP 429, or 200)
    "50001": "retry",  # service temporarily unavailable
    "50004": "retry",  # endpoint request timeout
    "50013": "retry",  # systems are busy
    "50026": "retry",  # system error, try again later
    "51001": "not_found",  # instrument ID does not exist
})

# instId -> (contract value, inverse?) for derivatives; linear ctVal in base units, inverse in USD.
CONTRACT_VALUES: dict[str, tuple[float, bool]] = {
    "BTC-USDT-SWAP": (0.01, False), "ETH-USDT-SWAP": (0.1, False), "SOL-USDT-SWAP": (1.0, False),
    "BTC-USD-SWAP": (100.0, True), "ETH-USD-SWAP": (10.0, True),
}


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
    """sz (and candle vol) → base quantity and quote amount for an instrument."""

    def __init__(self, instrument: str, contract_values: dict[str, tuple[float, bool]] | None = None):
        self.instrument = instrument
        self.derivative = is_derivative(instrument)
        self.value, self.inverse = (1.0, False)
        if self.derivative:
            table = {**CONTRACT_VALUES, **(contract_values or {})}
            if instrument not in table:
                raise ValueError(f"OKX {instrument}: sizes are in contracts and the contract value is unknown; "
                                 f"pass contract_values={{'{instrument}': (ctVal, inverse)}}")
            self.value, self.inverse = table[instrument]

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


# --------------------------------------------------------------------------------------------
# The records of the paged endpoints (the docs' names) and the rules each keeps
# --------------------------------------------------------------------------------------------

class HistoryTrade(msgspec.Struct):
    """One trade of `/api/v5/market/history-trades` (and of the `trades` channel's push)."""

    instId: str     # the instrument: the page's own
    tradeId: str    # decimal digits (text): trade_id, and seq as a number
    px: float       # price, quote per base (decimal text)
    sz: float       # size (decimal text): base units (spot), contracts (SWAP/FUTURES: x ctVal)
    side: str       # the taker's side: buy | sell
    ts: str         # trade time, epoch ms (digit text)


class Candle(msgspec.Struct, array_like=True):
    """One `history-candles` row (and `candle1m` push)."""

    ts: str             # open time, epoch ms (digit text): the bar's ts
    o: float            # open, high, low, close (decimal text)
    h: float
    l: float
    c: float
    vol: float          # volume: base units (spot), contracts (SWAP/FUTURES)
    volCcy: float       # volume: quote units (spot), base units (SWAP/FUTURES): the derivatives' volume
    volCcyQuote: float  # quote units: the row's amount (a row may lack it: volCcy, or volCcy x c)
    confirm: str = "1"  # "1": closed; "0": still forming (dropped and counted)


class PriceCandle(msgspec.Struct, array_like=True):
    """One `history-mark-price-candles` / `history-index-candles` row."""

    ts: str             # open time, epoch ms (digit text)
    o: float            # open, high, low, close (decimal text)
    h: float
    l: float
    c: float
    confirm: str = "1"  # as a candle's


class FundingSettlement(msgspec.Struct):
    """One settlement of `/api/v5/public/funding-rate-history` (perpetuals)."""

    instId: str          # the perpetual: the page's own
    fundingTime: str     # settlement time, epoch ms (digit text)
    realizedRate: float  # the rate settled: the row's rate (fundingRate, the predicted one, is not read)


class OpenInterestRow(msgspec.Struct, array_like=True):
    """One `/api/v5/rubik/stat/contracts/open-interest-history` row."""

    ts: str       # epoch ms (digit text)
    oi: float     # contracts
    oiCcy: float  # base units (the coin): the row's base
    oiUsd: float  # USD: the row's quote


class LiquidationDetail(msgspec.Struct):
    """One liquidation of a `liquidation-orders` record (and of the channel's push)."""

    side: str     # the liquidation order's side: "sell" closes a long
    posSide: str  # the position's side: long | short | net (in the id only)
    bkPx: float   # bankruptcy price (the price the order traded with the liquidation account at), text
    sz: float     # contracts (decimal text; x ctVal)
    ts: str       # epoch ms (digit text)


class LiquidationOrders(msgspec.Struct):
    """One record of `/api/v5/public/liquidation-orders`: one contract's filled liquidations."""

    details: list[LiquidationDetail]
    instId: str = ""      # the contract; none: the family's perpetual (instType SWAP)
    instType: str = ""    # SWAP | FUTURES
    instFamily: str = ""  # "BTC-USDT" for BTC-USDT-SWAP (uly: its older name)
    uly: str = ""


SIDE = each("side", ("buy", "sell").__contains__, "{what} side is {value!r}, not buy/sell")
_TRADE = {"tradeId": None, "instId": None, "px": number, "sz": number, "ts": integer, "side": None}
_CANDLE = {"ts": integer, **dict.fromkeys("ohlc", number), "vol": number, "volCcy": number, "volCcyQuote": number,
           "confirm": None}
_PRICE_CANDLE = {"ts": integer, **dict.fromkeys("ohlc", number), "confirm": None}
_CANDLE_OPTIONAL = {"volCcyQuote": "", "confirm": "1"}  # a row may end before them (confirm: closed)
_FUNDING = {"instId": None, "fundingTime": integer, "realizedRate": number}
_OPEN_INTEREST = {"ts": integer, "oi": number, "oiCcy": number, "oiUsd": number}
_DETAIL = {"ts": integer, "side": None, "posSide": None, "bkPx": number, "sz": number}
_PRICES = ("open", "high", "low", "close")


def _of(instrument: str) -> Rule:
    """The record's instId is the page's instrument."""
    return each("instId", (instrument,).__contains__, lambda what, r: f"{what} is for {r['instId']!r}, not {instrument}")


def _text(value: Any) -> bool:
    return isinstance(value, str) and value != ""


def _trade_rules(instrument: str) -> tuple[Rule, ...]:
    """What every trade keeps, in the order a breach is told: a string id (the trade named by its
    position until then, by its id after), its instrument, price, size, time, side; an id of digits
    is read as seq (digits int() does not read fail as int() does)."""
    return (reads("tradeId"), each("tradeId", _text, "{what} tradeId is {value!r}, not a string id"),
            reads("instId"), _of(instrument), reads("px", number), is_positive("px", "price"), reads("sz", number),
            is_positive("sz", "size"), reads("ts", integer), is_epoch("ts"), reads("side"), SIDE,
            Rule("tradeId", _decimal, lambda what, r: str(int(r["tradeId"]))))


def _decimal(cols: dict) -> Any:
    """An id of digits is of decimal digits ("²" is a digit int() does not read): one pass for a page of them."""
    ids = cols["tradeId"]
    if set(map(type, ids)) == {str} and "".join(ids).isdecimal():
        return True
    return np.fromiter((not (isinstance(t, str) and t.isdigit()) or t.isdecimal() for t in ids), bool, len(ids))


def _candle_rules(kind: type, least: int, shown: int) -> tuple[Rule, ...]:
    """What every candle row keeps, in the order a breach is told: its shape and time (the row named by
    its position until then, by its time after), a confirm flag; a closed one (not "0") finite prices
    and volumes, a bar that can be true (datasets.wire.check_bar), a quote volume not negative."""
    head = (is_array(least, kind.__struct_fields__, shown), reads("ts", integer), is_epoch("ts"),
            each("confirm", ("0", "1").__contains__, '{what} confirm is {value!r}, not "0" or "1"'))
    prices = tuple(reads(raw, number, name) for raw, name in zip("ohlc", _PRICES, strict=True))
    if kind is PriceCandle:
        return head + where("closed", prices + bar_rules("ts_us", None))
    volumes = (reads("vol", number), reads("volCcy", number), is_not_negative("volCcy"),
               *where("quoted", (reads("volCcyQuote", number),)))
    return head + where("closed", prices + volumes + bar_rules("ts_us", "vol")
                        + where("quoted", (is_not_negative("volCcyQuote"),)))


CANDLE_RULES, PRICE_CANDLE_RULES = _candle_rules(Candle, 7, 160), _candle_rules(PriceCandle, 5, 120)
OPEN_INTEREST_RULES = (is_array(4, OpenInterestRow.__struct_fields__, 120), reads("ts", integer), is_epoch("ts"),
                       *(rule for name in ("oi", "oiCcy", "oiUsd") for rule in (reads(name, number),
                                                                                 is_not_negative(name))))
LIQUIDATION_RECORD_RULES = (
    reads("details"), each("details", lambda d: isinstance(d, list),
                           lambda what, r: f"{what} details is {type(r['details']).__name__}, not an array"),
    Rule("named", lambda c: c["named"], lambda what, r: (
        f"{what} names no instId (instType {r['record'].get('instType')!r}, "
        f"instFamily {r['record'].get('instFamily') or r['record'].get('uly')!r})")))
LIQUIDATION_RULES = (reads("ts", integer), is_epoch("ts"), *where("ours", (
    reads("side"), SIDE, reads("posSide"), reads("bkPx"), reads("sz"), reads("bkPx", number),
    is_positive("bkPx"), reads("sz", number), is_positive("sz"))))


def _names(cols: dict, rules: Sequence[Rule], named: Callable[[dict], str], unnamed: Callable[[int], str]):
    """A broken record's name: `named(record)` once it keeps `rules` (its id, its time), else `unnamed(i)`."""
    kept = keeps(cols, rules)
    return lambda i, r: named(r) if kept[i] else unnamed(i)


def _check(cols: dict, rules: Sequence[Rule], name, ctx: Page, drops: Counter | None = None, reason: str = "",
           dropped: Sequence[bool] = ()) -> None:
    """`check`, counting in `drops[reason]` the `dropped` records before the first that breaks a rule
    (every one if none does), as a reader going record by record had counted them when it raised."""
    broke: list[int] = []
    try:
        check(cols, rules, lambda i, r: broke.append(i) or name(i, r), ctx)
    finally:
        n = sum(dropped[:broke[0]] if broke else dropped)
        if n and drops is not None:
            drops[reason] += n


def _in_c(cols: dict, fit: bool, kind: type, time: str, *names: str) -> list[list[float]]:
    """The columns `names` as the page reader read them: a page that fit its declaration (`fit`), its
    `time` field plain digits, was read in C, where "-0" is 0.0 (not float()'s -0.0)."""
    position = {name: k for k, name in enumerate(kind.__struct_fields__)} if kind.__struct_config__.array_like else {}
    joined = "".join(record[position.get(time, time)] for record in cols[RECORD]) if fit else ""
    if not (joined.isascii() and joined.isdigit()):
        return [cols[name] for name in names]
    return [[0.0 if v == 0 and record[position.get(name, name)] == "-0" else v
             for v, record in zip(cols[name], cols[RECORD], strict=True)] for name in names]


def _iso(ms_or_us: int) -> str:
    return from_us(epoch_to_us(int(ms_or_us))).isoformat()


# --------------------------------------------------------------------------------------------
# Parsers
# --------------------------------------------------------------------------------------------

def _data(body: Any, ctx: Page) -> list:
    """The `data` array of an envelope (a bare list is accepted too)."""
    if isinstance(body, list):
        return body
    if not isinstance(body, dict):
        raise ctx.error(f"expected the {{code, msg, data}} envelope, got {type(body).__name__} {str(body)[:120]!r}")
    code = body.get("code")
    if code != "0":
        raise ctx.error(f"envelope code {code!r} (msg {body.get('msg')!r}) where \"0\" was expected")
    data = field(body, "data", "envelope", ctx)
    if not isinstance(data, list):
        raise ctx.error(f"envelope data is {type(data).__name__}, not an array")
    return data


def _sizer(instrument: str, contract_values, ctx: Page, note: bool = True) -> ContractSizer:
    try:
        sizer = ContractSizer(instrument, contract_values)
    except ValueError as error:
        raise ctx.error(str(error)) from None
    if sizer.derivative and note:
        note_conversion(instrument, "size contracts -> " + (f"coin (x ctVal {sizer.value:g} USD / price)" if sizer.inverse
                                                             else f"base (x ctVal {sizer.value:g})"))
    return sizer


def history_trades(data: list, instrument: str, sizer: ContractSizer, ctx: Page,
                   number: str = "trade #{i}") -> dict[str, list]:
    """Trades (`HistoryTrade`: history-trades, and the `trades` channel's push) as checked columns, sized
    by `sizer`: ts (µs), trade_id = tradeId, price, quantity, amount, side, seq = int(tradeId)."""
    cols, _ = lax_columns(HistoryTrade, data, _TRADE, ctx)
    check(cols, _trade_rules(instrument),
          lambda i, r: f"trade {r['tradeId']}" if _text(r["tradeId"]) else number.format(i=i), ctx)
    ids = list(cols["tradeId"])
    quantity, amount = sizer.sized(cols["px"], cols["sz"])
    return {"ts": list(map(epoch_to_us, cols["ts"])), "trade_id": ids, "price": cols["px"], "quantity": quantity,
            "amount": amount, "side": list(cols["side"]), "seq": [int(t) if t.isdigit() else None for t in ids]}


def trades_of(cols: dict[str, list]) -> list[Trade]:
    """`history_trades` columns as Trades (event time: the trade's)."""
    return [Trade(*row, row[0] // 1000) for row in zip(*cols.values(), strict=True)]


def history_trade(record: Any, instrument: str, sizer: ContractSizer, what: str, ctx: Page) -> Trade:
    """One trade, named `what` until its id is read (`history_trades` of one)."""
    return trades_of(history_trades([record], instrument, sizer, ctx, what))[0]


def parse_history_trades(body: Any, instrument: str, ctx: Page | None = None,
                         contract_values: dict[str, tuple[float, bool]] | None = None) -> pl.DataFrame:
    """history-trades envelope → trades frame (`history_trades`)."""
    ctx = ctx or Page(VENUE, instrument)
    sizer = _sizer(instrument, contract_values, ctx)
    cols = history_trades(_data(body, ctx), instrument, sizer, ctx)
    return frame_of(TRADES_SCHEMA, VENUE, instrument, cols.pop("ts"),
                    **{**cols, "seq": pl.Series(cols["seq"], dtype=pl.Int64)})


def parse_books(body: Any, instrument: str, ctx: Page | None = None,
                contract_values: dict[str, tuple[float, bool]] | None = None) -> pl.DataFrame:
    """books envelope → books frame (ts from the book's `ts`; update_id = seqId when present)."""
    ctx = ctx or Page(VENUE, instrument)
    sizer = _sizer(instrument, contract_values, ctx)
    data = _data(body, ctx)
    if not data:
        raise ctx.error("books: empty data array")
    book = data[0]
    ts = epoch_us(field(book, "ts", "book", ctx), "book ts", ctx)
    seq = book.get("seqId") if isinstance(book, dict) else None
    update_id = integer(seq, "book seqId", ctx) if seq not in (None, "") else None
    bids, asks = (book_levels(field(book, side, "book", ctx), side, ctx, what="books",
                              shape='[px, sz, "0", numOrders] array', price="px", size="sz",
                              base=lambda price, size: sizer.base_and_quote(price, size)[0])
                  for side in ("bids", "asks"))
    return book_frame(VENUE, instrument, ts, update_id, bids, asks)


def candles(kind: type, data: list, ctx: Page, label: str = "candle", number: str = "candle #{i}",
            drops: Counter | None = None, page: bool = False) -> dict[str, list]:
    """Candle rows (`Candle`, `PriceCandle`) as checked columns of the closed ones: ts_us, open, high,
    low, close (candles: also volume = vol, vol_ccy, quote = volCcyQuote and whether the row has it);
    the rows still forming are counted in `drops["unconfirmed"]`. `page`: volumes as a page is read."""
    cols, fit = lax_columns(kind, data, _CANDLE if kind is Candle else _PRICE_CANDLE, ctx, _CANDLE_OPTIONAL)
    cols["ts_us"] = list(map(epoch_to_us, cols["ts"]))
    cols.update(zip(_PRICES, (cols[raw] for raw in "ohlc"), strict=True))
    cols["closed"] = np.array([confirm != "0" for confirm in cols["confirm"]], bool)
    names = ["ts_us", *_PRICES]
    if kind is Candle:
        cols["quoted"] = np.array([isinstance(r, list) and len(r) > 7 and r[7] != "" for r in cols[RECORD]], bool)
        names += ["vol", "volCcy", "volCcyQuote", "quoted"]
    rules = CANDLE_RULES if kind is Candle else PRICE_CANDLE_RULES
    named = _names(cols, rules[:3], lambda r: f"{label} {from_us(r['ts_us']).strftime('%Y-%m-%d %H:%M:%S')}",
                   lambda i: number.format(i=i))
    _check(cols, rules, named, ctx, drops, "unconfirmed", [c == "0" for c in cols["confirm"]])
    if page and kind is Candle:
        cols["vol"], cols["volCcy"], cols["volCcyQuote"] = _in_c(cols, fit, kind, "ts", "vol", "volCcy", "volCcyQuote")
    return {name: list(compress(cols[name], cols["closed"])) for name in names}


def candle_bars(data: list, sizer: ContractSizer, ctx: Page, number: str = "candle #{i}",
                drops: Counter | None = None, page: bool = False) -> dict[str, list]:
    """Closed candles (history-candles, and the candle1m push) as bars: ts_us, open, high, low, close,
    volume in base units (vol: spot; volCcy: contracts), amount in quote units (volCcyQuote; without
    it volCcy (spot) or volCcy x close)."""
    cols = candles(Candle, data, ctx, number=number, drops=drops, page=page)
    if sizer.derivative:
        volume, fallback = cols["volCcy"], list(map(mul, cols["volCcy"], cols["close"]))
    else:
        volume, fallback = cols["vol"], cols["volCcy"]
    amount = [q if quoted else f for q, quoted, f in zip(cols["volCcyQuote"], cols["quoted"], fallback, strict=True)]
    return {**{k: cols[k] for k in ("ts_us", "open", "high", "low", "close")}, "volume": volume, "amount": amount}


def candle(row: Any, sizer: ContractSizer, what: str, ctx: Page) -> tuple | None:
    """One candle row, named `what` until its time is read: (ts µs, o, h, l, c, volume, amount), None
    while unconfirmed (`candle_bars` of one)."""
    return next(zip(*candle_bars([row], sizer, ctx, what).values()), None)


def parse_candles(body: Any, instrument: str, ctx: Page | None = None,
                  contract_values: dict[str, tuple[float, bool]] | None = None,
                  drops: Counter | None = None) -> pl.DataFrame:
    """candles / history-candles envelope → bars frame of the confirmed bars (`candle_bars`), any order
    in, the unconfirmed ones counted in `drops["unconfirmed"]`."""
    ctx = ctx or Page(VENUE, instrument)
    sizer = _sizer(instrument, contract_values, ctx)
    bars = candle_bars(_data(body, ctx), sizer, ctx, drops=drops, page=True)
    return frame_of(BARS_SCHEMA, VENUE, instrument, bars.pop("ts_us"), **bars, trades=[None] * len(bars["open"]))


def parse_price_candles(body: Any, instrument: str, ctx: Page | None = None, drops: Counter | None = None,
                        dataset: str = "mark_bars_1m") -> pl.DataFrame:
    """history-mark-price-candles / history-index-candles envelope (`PriceCandle`s) → a price bars frame
    (`dataset`: mark_bars_1m | index_bars_1m); unconfirmed bars counted in `drops["unconfirmed"]`."""
    ctx = ctx or Page(VENUE, instrument)
    price = dataset.split("_")[0]
    cols = candles(PriceCandle, _data(body, ctx), ctx, f"{price} candle", f"{price} candle #{{i}}", drops)
    return frame_of(spec_for(dataset).schema, VENUE, instrument, cols.pop("ts_us"), **cols)
def _optional(record: dict, key: str, what: str, ctx: Page) -> float | None:
    """A number that OKX sends as "" when there is none (no trade yet, an empty book side)."""
    value = field(record, key, what, ctx)
    return None if value == "" else number(value, f"{what} {key}", ctx)


def parse_ticker(body: Any, instrument: str, ctx: Page | None = None,
                 contract_values: dict[str, tuple[float, bool]] | None = None) -> pl.DataFrame:
    """ticker envelope → tickers frame: one row stamped with the ticker's `ts` (volumes:
    docs/crypto-datasets.md; mark, index and funding rate null)."""
    ctx = ctx or Page(VENUE, instrument)
    sizer = _sizer(instrument, contract_values, ctx)
    data = _data(body, ctx)
    if not data:
        raise ctx.error("ticker: empty data array")
    what = "ticker"
    record = data[0]
    inst = field(record, "instId", what, ctx)
    if inst != instrument:
        raise ctx.error(f"the ticker is for {inst!r}, not {instrument}")
    ts = epoch_us(field(record, "ts", what, ctx), "ticker ts", ctx)
    prices = {}
    for key in ("last", "bidPx", "askPx"):
        value = _optional(record, key, what, ctx)
        prices[key] = positive(value, what, ctx, key) if value is not None else None
    sizes = {}
    for side in ("bid", "ask"):
        value = _optional(record, f"{side}Sz", what, ctx)
        price = prices[f"{side}Px"]
        if value is not None:
            not_negative(value, f"{what} {side}Sz", ctx)
        sizes[side] = None if value is None or price is None else sizer.base_and_quote(price, value)[0]
    vol, vol_ccy = (not_negative(number(field(record, key, what, ctx), f"{what} {key}", ctx), f"{what} {key}",
                                 ctx) for key in ("vol24h", "volCcy24h"))
    if not sizer.derivative:  # vol24h base, volCcy24h quote
        volume, amount = vol, vol_ccy
    else:  # vol24h contracts, volCcy24h base; inverse contracts are USD: the quote amount
        volume, amount = vol_ccy, (vol * sizer.value if sizer.inverse else None)
    cols = columns_of("tickers")
    cols.add(ts, prices["last"], prices["bidPx"], sizes["bid"], prices["askPx"], sizes["ask"], volume, amount,
             None, None, None)
    return cols.frame(VENUE, instrument)



def _funding_rows(body: Any, instrument: str, ctx: Page) -> list[tuple[int, float]]:
    """funding-rate-history envelope (`FundingSettlement`s) → [(fundingTime µs, realizedRate)] as sent."""
    data = _data(body, ctx)
    cols, fit = lax_columns(FundingSettlement, data, _FUNDING, ctx)
    rules = (reads("instId"), _of(instrument), reads("fundingTime", integer), is_epoch("fundingTime"),
             reads("realizedRate", number))
    check(cols, rules, _names(cols, rules[:4], lambda r: f"funding at {_iso(r['fundingTime'])}",
                              lambda i: f"funding record #{i}"), ctx)
    return list(zip(map(epoch_to_us, cols["fundingTime"]),
                    *_in_c(cols, fit, FundingSettlement, "fundingTime", "realizedRate"), strict=True))


def funding_frame(rows: list[tuple[int, float]], instrument: str, ctx: Page | None = None,
                  drops: Counter | None = None) -> pl.DataFrame:
    """Settlements (fundingTime µs, realizedRate), in any order → funding frame, oldest first:
    interval_hours = the spacing to the previous settlement (the oldest takes its successor's, a
    lone one `FUNDING_INTERVAL_HOURS`); one time sent twice is counted as a duplicate, with
    different rates it is an error, and so is a spacing longer than 8 hours (a settlement missing)."""
    ctx = ctx or Page(VENUE, instrument)
    rates: dict[int, float] = {}
    for ts, rate in rows:
        if ts in rates:
            if rates[ts] != rate:
                raise ctx.error(f"funding at {from_us(ts).isoformat()} comes twice: rates {rates[ts]} and "
                                f"{rate}")
            if drops is not None:
                drops["duplicates"] += 1
        rates[ts] = rate
    times = sorted(rates)
    cols = columns_of("funding")
    for k, ts in enumerate(times):
        if k:
            spacing = ts - times[k - 1]
        else:
            spacing = times[1] - ts if len(times) > 1 else int(FUNDING_INTERVAL_HOURS * 3_600_000_000)
        hours = spacing / 3_600_000_000
        if hours > FUNDING_INTERVAL_HOURS:
            raise ctx.error(f"funding at {from_us(ts).isoformat()} comes {hours:g} hours after the previous "
                            "one: no OKX interval is longer than 8 hours (a settlement missing?)")
        rate = rates[ts]
        cols.add(ts, rate, hours, rate * 8 / hours, None, None)
    return cols.frame(VENUE, instrument)


def parse_funding_history(body: Any, instrument: str, ctx: Page | None = None) -> pl.DataFrame:
    """One funding-rate-history answer → funding frame (intervals from the spacing inside it)."""
    ctx = ctx or Page(VENUE, instrument)
    return funding_frame(_funding_rows(body, instrument, ctx), instrument, ctx)



def open_interests(rows: list, sizer: ContractSizer, ctx: Page, page: bool = False) -> dict[str, list]:
    """Open interest rows (`OpenInterestRow`: REST, and the open-interest push's fields) as checked
    columns: ts (µs), contracts, contract_size, size_unit, base, quote (`page`: as a page is read)."""
    cols, fit = lax_columns(OpenInterestRow, rows, _OPEN_INTEREST, ctx)
    shaped = keeps(cols, OPEN_INTEREST_RULES[:1])
    check(cols, OPEN_INTEREST_RULES, _names(cols, OPEN_INTEREST_RULES[:3], lambda r: f"open interest at {_iso(r['ts'])}",
                                            lambda i: "open interest" if shaped[i] else f"open interest #{i}"), ctx)
    contracts, base, quote = _in_c(cols, fit and page, OpenInterestRow, "ts", "oi", "oiCcy", "oiUsd")
    n = len(rows)
    return {"ts": list(map(epoch_to_us, cols["ts"])), "contracts": contracts, "contract_size": [sizer.value] * n,
            "size_unit": ["quote" if sizer.inverse else "base"] * n, "base": base, "quote": quote}


def open_interest(ts: Any, oi: Any, oi_ccy: Any, oi_usd: Any, sizer: ContractSizer, ctx: Page) -> tuple:
    """One open interest: (ts µs, contracts, contract size, its unit, base, quote) (`open_interests` of one)."""
    return next(zip(*open_interests([[ts, oi, oi_ccy, oi_usd]], sizer, ctx).values()))


def parse_open_interest_history(body: Any, instrument: str, ctx: Page | None = None,
                                contract_values: dict[str, tuple[float, bool]] | None = None) -> pl.DataFrame:
    """open-interest-history envelope → open_interest frame: contracts = oi, base = oiCcy, quote = oiUsd."""
    ctx = ctx or Page(VENUE, instrument)
    sizer = _sizer(instrument, contract_values, ctx, note=False)
    if not sizer.derivative:
        raise ctx.error("open interest exists for contracts only")
    cols = open_interests(_data(body, ctx), sizer, ctx, page=True)
    return frame_of(OPEN_INTEREST_SCHEMA, VENUE, instrument, cols.pop("ts"), **cols)


def liquidation_details(details: list, sizer: ContractSizer, ctx: Page, name: Callable[[int], str],
                        ours: Sequence[bool] | None = None, drops: Counter | None = None) -> dict[str, list]:
    """Liquidation details (`LiquidationDetail`: liquidation-orders, and the channel's push) as checked
    columns of those `ours` (all by default; the others only timed, and counted in
    `drops["other_instrument"]`): ts (µs), key `<ts>-<side>-<posSide>-<sz>-<bkPx>` as sent (OKX gives no
    id), side, price, quantity (base), amount; and "times": every detail's ms. `name(i)`: a detail
    until its time is read."""
    cols, _ = lax_columns(LiquidationDetail, details, _DETAIL, ctx)
    cols["ours"] = np.ones(len(details), bool) if ours is None else np.array(ours, bool)
    named = _names(cols, LIQUIDATION_RULES[:2], lambda r: f"liquidation at {_iso(r['ts'])}", name)
    _check(cols, LIQUIDATION_RULES, named, ctx, drops, "other_instrument", [not o for o in cols["ours"]])
    mine = list(compress(details, cols["ours"]))
    price = list(compress(cols["bkPx"], cols["ours"]))
    quantity = sizer.sized(price, list(compress(cols["sz"], cols["ours"])))[0]
    return {"ts": [epoch_to_us(t) for t in compress(cols["ts"], cols["ours"])],
            "key": [f"{d['ts']}-{d['side']}-{d['posSide']}-{d['sz']}-{d['bkPx']}" for d in mine],
            "side": [d["side"] for d in mine], "price": price, "quantity": quantity,
            "amount": list(map(mul, price, quantity)), "times": [epoch_to_us(t) // 1000 for t in cols["ts"]]}


def liquidation_detail(detail: Any, sizer: ContractSizer, ctx: Page) -> tuple[int, str, str, float, float, float]:
    """One liquidation detail (the channel's push): (ts µs, key, side, price, base, quote)
    (`liquidation_details` of one)."""
    cols = liquidation_details([detail], sizer, ctx, lambda i: "liquidation")
    return next(zip(*list(cols.values())[:6]))


def _liquidations(body: Any, instrument: str, ctx: Page, contract_values, drops: Counter | None
                  ) -> tuple[pl.DataFrame, list[int]]:
    """(liquidations frame of `instrument`, the ms time of every detail in the answer: the paging
    cursor runs over all of them). A record names its contract (`instId`, else its family's perpetual);
    a detail before a broken record is told first, as a reader going record by record told it."""
    sizer = _sizer(instrument, contract_values, ctx)
    data = _data(body, ctx)
    records, _ = lax_columns(LiquidationOrders, data, {"details": None}, ctx)
    contracts = [_contract(record) for record in data]
    records["named"] = np.array([inst is not None for inst in contracts], bool)
    broke: list[int] = []
    try:
        check(records, LIQUIDATION_RECORD_RULES, lambda i, r: broke.append(i) or f"liquidation record #{i}", ctx)
    except SourceDataError:
        _liquidation_page(data[:broke[0]], contracts, instrument, sizer, ctx, drops)
        raise
    return _liquidation_page(data, contracts, instrument, sizer, ctx, drops)


def _contract(record: Any) -> Any:
    """A liquidation-orders record's contract: its instId, else its family's perpetual; None: neither."""
    if not isinstance(record, dict):
        return None
    family = record.get("instFamily") or record.get("uly")
    return record.get("instId") or (f"{family}-SWAP" if record.get("instType") == "SWAP" and family else None)


def _liquidation_page(data: list, contracts: list, instrument: str, sizer: ContractSizer, ctx: Page,
                      drops: Counter | None) -> tuple[pl.DataFrame, list[int]]:
    """`_liquidations` of records that keep their rules: our contract's details as a frame, the n-th
    repeat of a key within the page "#n"."""
    details = [detail for record in data for detail in record["details"]]
    names = [f"{inst} liquidation #{j}" for record, inst in zip(data, contracts) for j in range(len(record["details"]))]
    ours = [inst == instrument for record, inst in zip(data, contracts) for _ in record["details"]]
    cols = liquidation_details(details, sizer, ctx, names.__getitem__, ours, drops)
    ids, seen = [], Counter()
    for key in cols["key"]:
        ids.append(f"{key}#{seen[key]}" if seen[key] else key)
        seen[key] += 1
    frame = frame_of(LIQUIDATIONS_SCHEMA, VENUE, instrument, cols["ts"], liquidation_id=ids, side=cols["side"],
                     price=cols["price"], quantity=cols["quantity"], amount=cols["amount"])
    return frame, cols["times"]


def parse_liquidations(body: Any, instrument: str, ctx: Page | None = None,
                       contract_values: dict[str, tuple[float, bool]] | None = None,
                       drops: Counter | None = None) -> pl.DataFrame:
    """liquidation-orders envelope → liquidations frame of `instrument` (other instruments' details
    counted in `drops["other_instrument"]`)."""
    return _liquidations(body, instrument, ctx or Page(VENUE, instrument), contract_values, drops)[0]


# --------------------------------------------------------------------------------------------
# The client
# --------------------------------------------------------------------------------------------

class OkxClient(ApiClient):
    """OKX v5 public market data (limits and errors: `LIMITS`, `ERRORS`)."""

    api_name = "OKX"
    name = VENUE
    ERRORS = ERRORS
    LIMITS = LIMITS
    DATASETS: ClassVar[dict[str, str]] = {
        "trades": HISTORY, "bars_1m": HISTORY, "books": SNAPSHOT, "tickers": SNAPSHOT, "funding": HISTORY,
        "open_interest": HISTORY, "liquidations": HISTORY, "mark_bars_1m": HISTORY, "index_bars_1m": HISTORY}
    # how far back OKX's history goes (documented): history-trades "from the last 3 months",
    # funding-rate-history "the last 3 months", rubik open interest "the latest 1,440 data entries"
    # (5 days of 5-minute rows)
    REACH: ClassVar[dict[str, Reach]] = {
        "trades": Reach(timedelta(days=90), NOWHERE, DOCS + "#order-book-trading-market-data-get-trades-history"),
        "funding": Reach(timedelta(days=90), NOWHERE, DOCS + "#public-data-rest-api-get-funding-rate-history"),
        "open_interest": Reach(timedelta(minutes=5 * 1440), NOWHERE,
                               DOCS + "#trading-statistics-rest-api-get-contract-open-interest-history")}

    def __init__(self, base_url: str = DEFAULT_BASE_URL, *, page_limit: int = 100,
                 contract_values: dict[str, tuple[float, bool]] | None = None, **kwargs):
        super().__init__(base_url, **kwargs)
        if not 1 <= page_limit <= 100:
            raise ValueError("page_limit: 1..100")
        self.page_limit = page_limit
        self.contract_values = contract_values
        self.dropped = DropCounts()

    def figures(self) -> dict[str, Any]:
        return {**super().figures(), **self.dropped.figures()}

    # ---- what OKX's answers mean ------------------------------------------------------------

    def error_fields(self, payload: Any) -> tuple[Any, str] | None:
        if not isinstance(payload, dict) or "code" not in payload or payload["code"] == "0":
            return None
        message = payload.get("msg") or payload.get("error_message") or payload.get("detail") or ""
        return payload["code"], str(message)

    def make_error(self, category, *, status, code, message, page):
        if status == 404 and code is not None and not isinstance(code, str):  # OKX's codes are strings
            message = f"unknown path or endpoint ({message})"
        return super().make_error(category, status=status, code=code, message=message, page=page)

    async def _get(self, path: str, params: dict[str, Any], *, instrument: str,
                   day: date | None) -> tuple[Any, Page]:
        page = Page(VENUE, instrument, day, describe_request("GET", path, params))
        return await self.call("GET", path, page=page, params=params), page

    # ---- trades, book, bars -----------------------------------------------------------------

    async def trades(self, instrument: str, start: datetime, end: datetime) -> pl.DataFrame:
        start, end = as_utc(start), as_utc(end)
        if end <= start:
            return finish_trades([])
        start_us = to_us(start)
        params: dict[str, Any] = {"instId": instrument, "type": "2", "after": str(ceil_ms(end)),
                                  "limit": str(self.page_limit)}
        frames: list[pl.DataFrame] = []
        day = day_of(from_us(to_us(end) - 1))  # the first page holds the newest trades
        while True:
            body, ctx = await self._get("/api/v5/market/history-trades", params, instrument=instrument, day=day)
            page = parse_history_trades(body, instrument, ctx, self.contract_values)
            if page.height == 0:
                break
            frames.append(page)
            oldest = to_us(page["ts"].min())
            smallest = page["seq"].min()
            if smallest is None or page["seq"].null_count():
                raise ctx.error("history-trades page has non-numeric tradeIds: cannot page by tradeId")
            if oldest < start_us:  # a short page is not trusted to mean "no more": only an empty one is
                break
            if params.get("type") == "1" and int(smallest) >= int(params["after"]):
                raise ctx.error(f"history-trades page for after={params['after']} did not go back in tradeId")
            day = day_of(from_us(oldest))
            params = {"instId": instrument, "type": "1", "after": str(smallest), "limit": str(self.page_limit)}
        return finish_trades(frames, start, end, self.dropped.of(instrument), paged="backward")

    async def trades_by_id(self, instrument: str, first_id: int, last_id: int, *,
                           day: date | None = None) -> pl.DataFrame:
        """Trades with first_id <= tradeId <= last_id (history-trades, `type=1`, paging back by
        `after`); `day` names the slice in errors."""
        frames: list[pl.DataFrame] = []
        after = last_id + 1
        while after > first_id:
            params = {"instId": instrument, "type": "1", "after": str(after),
                      "limit": str(min(self.page_limit, after - first_id))}
            body, ctx = await self._get("/api/v5/market/history-trades", params, instrument=instrument, day=day)
            page = parse_history_trades(body, instrument, ctx, self.contract_values)
            if page.height == 0:
                break
            smallest = page["seq"].min()
            if smallest is None or page["seq"].null_count():
                raise ctx.error("history-trades page has non-numeric tradeIds: cannot page by tradeId")
            if int(smallest) >= after:
                raise ctx.error(f"history-trades page for after={after} did not go back in tradeId")
            frames.append(page)
            after = int(smallest)
        frame = finish_trades(frames, drops=self.dropped.of(instrument))
        inside = frame.filter(pl.col("seq").is_between(first_id, last_id))
        self.dropped.of(instrument)["past_window_edge"] += frame.height - inside.height
        return inside

    async def book_snapshot(self, instrument: str, depth: int = 20) -> pl.DataFrame:
        if not 1 <= depth <= MAX_BOOK_DEPTH:
            raise ValueError(f"OKX books depth: 1..{MAX_BOOK_DEPTH}")
        body, ctx = await self._get("/api/v5/market/books", {"instId": instrument, "sz": str(depth)},
                                    instrument=instrument, day=day_of(datetime.now().astimezone()))
        return parse_books(body, instrument, ctx, self.contract_values).filter(pl.col("level") < depth)

    async def books_body(self, instrument: str, depth: int = MAX_BOOK_DEPTH) -> dict:
        """The `/api/v5/market/books` answer as sent (the envelope, levels as the venue's strings): the
        snapshot a live book's gap hour is repaired with (landed raw by the collector)."""
        depth = max(1, min(depth, MAX_BOOK_DEPTH))
        body, ctx = await self._get("/api/v5/market/books", {"instId": instrument, "sz": str(depth)},
                                    instrument=instrument, day=day_of(datetime.now().astimezone()))
        data = _data(body, ctx)
        if not data or not isinstance(data[0], dict) or not all(isinstance(data[0].get(s), list) for s in ("bids", "asks")):
            raise ctx.error("books: no data[0] with bids and asks lists")
        return body

    async def _candle_pages(self, path: str, inst_id: str, instrument: str, start: datetime, end: datetime,
                            parse) -> list[pl.DataFrame]:
        """1-minute candles of `path` (history-candles, its mark and index price kin) opening in
        [start, end) and a little before, newest first: `after` = the oldest candle held, until a
        page opens at or before `start` or is empty. `parse(body, ctx)` makes a page's frame."""
        start_us = to_us(as_utc(start))
        after = ceil_ms(as_utc(end))
        frames: list[pl.DataFrame] = []
        while after * 1000 > start_us:
            params = {"instId": inst_id, "bar": "1m", "after": str(after), "limit": str(self.page_limit)}
            body, ctx = await self._get(path, params, instrument=instrument,
                                        day=day_of(from_us(after * 1000 - 1)))
            data = body.get("data") if isinstance(body, dict) else body
            page = parse(body, ctx)
            if not data:
                break
            frames.append(page)
            oldest_ms = min(integer(row[0], "candle ts", ctx) for row in data)
            if oldest_ms >= after:
                raise ctx.error(f"{path.rsplit('/', 1)[-1]} page for after={after} did not go back in time")
            after = oldest_ms
        return frames

    async def bars_1m(self, instrument: str, start: datetime, end: datetime) -> pl.DataFrame:
        drops = self.dropped.of(instrument)
        frames = await self._candle_pages(
            HISTORY_CANDLES, instrument, instrument, start, end,
            lambda body, ctx: parse_candles(body, instrument, ctx, self.contract_values, drops))
        return finish_bars(frames, start, end, drops, paged="backward")

    async def mark_bars_1m(self, instrument: str, start: datetime, end: datetime) -> pl.DataFrame:
        """Mark price 1-minute bars of a contract (history-mark-price-candles)."""
        drops = self.dropped.of(instrument)
        frames = await self._candle_pages(
            MARK_CANDLES, instrument, instrument, start, end,
            lambda body, ctx: parse_price_candles(body, instrument, ctx, drops, "mark_bars_1m"))
        return finish("mark_bars_1m", frames, start, end, drops, paged="backward")

    async def index_bars_1m(self, instrument: str, start: datetime, end: datetime) -> pl.DataFrame:
        """1-minute bars of the contract's index (history-index-candles of `underlying(instrument)`,
        "BTC-USDT" for BTC-USDT-SWAP), stored under the contract's name."""
        index = underlying(instrument)
        note_conversion(instrument, f"index {index}")
        drops = self.dropped.of(instrument)
        frames = await self._candle_pages(
            INDEX_CANDLES, index, instrument, start, end,
            lambda body, ctx: parse_price_candles(body, instrument, ctx, drops, "index_bars_1m"))
        return finish("index_bars_1m", frames, start, end, drops, paged="backward")

    # ---- tickers, funding, open interest, liquidations -------------------------------------

    async def tickers(self, instrument: str) -> pl.DataFrame:
        """The ticker now (one row stamped with OKX's `ts`)."""
        body, ctx = await self._get(TICKER, {"instId": instrument}, instrument=instrument,
                                    day=day_of(datetime.now().astimezone()))
        return parse_ticker(body, instrument, ctx, self.contract_values)

    async def funding(self, instrument: str, start: datetime, end: datetime) -> pl.DataFrame:
        """Funding settled in [start, end) (funding-rate-history, newest first, `after` = the oldest
        fundingTime held), paged on to one settlement before `start` for its interval."""
        start, end = as_utc(start), as_utc(end)
        drops = self.dropped.of(instrument)
        if end <= start:
            return finish("funding", [])
        start_us, after = to_us(start), ceil_ms(end)
        rows: list[tuple[int, float]] = []
        ctx = Page(VENUE, instrument, day_of(start))
        while True:
            params = {"instId": instrument, "after": str(after), "limit": str(self.page_limit)}
            body, ctx = await self._get(FUNDING_HISTORY, params, instrument=instrument,
                                        day=day_of(from_us(after * 1000 - 1)))
            page = _funding_rows(body, instrument, ctx)
            if not page:
                break
            rows.extend(page)
            oldest = min(ts for ts, _ in page)
            if oldest < start_us:  # the settlement before the window is held: its spacing is known
                break
            if oldest // 1000 >= after:
                raise ctx.error(f"funding-rate-history page for after={after} did not go back in time")
            after = oldest // 1000
        frame = funding_frame(rows, instrument, ctx, drops)
        return finish("funding", [frame], start, end, drops, paged="backward")

    async def open_interest(self, instrument: str, start: datetime, end: datetime) -> pl.DataFrame:
        """Open interest every 5 minutes in [start, end) (rubik open-interest-history, period=5m,
        newest first, `end` = the oldest ts held, `begin` = just before `start`)."""
        start, end = as_utc(start), as_utc(end)
        drops = self.dropped.of(instrument)
        start_ms, end_ms = ceil_ms(start), ceil_ms(end)
        frames: list[pl.DataFrame] = []
        while end_ms > start_ms:
            params = {"instId": instrument, "period": "5m", "begin": str(start_ms - 1), "end": str(end_ms),
                      "limit": str(self.page_limit)}
            body, ctx = await self._get(OPEN_INTEREST_HISTORY, params, instrument=instrument,
                                        day=day_of(from_us(end_ms * 1000 - 1)))
            page = parse_open_interest_history(body, instrument, ctx, self.contract_values)
            if page.height == 0:
                break
            frames.append(page)
            oldest_ms = to_us(page["ts"].min()) // 1000
            if oldest_ms >= end_ms:
                raise ctx.error(f"open-interest-history page for end={end_ms} did not go back in time")
            end_ms = oldest_ms
        return finish("open_interest", frames, start, end, drops, paged="backward")

    async def liquidations(self, instrument: str, start: datetime, end: datetime) -> pl.DataFrame:
        """Liquidations of a SWAP or FUTURES contract in [start, end) (liquidation-orders of its
        instrument family, state=filled, newest first; a full page is followed by `after` = its
        oldest ms + 1, a short one by `after` = its oldest ms)."""
        start, end = as_utc(start), as_utc(end)
        named = contract(instrument)
        inst_type = {"perpetual": "SWAP", "future": "FUTURES"}.get(named.contract_type)
        if inst_type is None:
            raise ValueError(f"OKX {instrument}: liquidations exist for SWAP and FUTURES only")
        drops = self.dropped.of(instrument)
        start_us, after = to_us(start), ceil_ms(end)
        frames: list[pl.DataFrame] = []
        while after * 1000 > start_us:
            params = {"instType": inst_type, "instFamily": f"{named.base}-{named.quote}",
                      "state": "filled", "after": str(after), "limit": str(self.page_limit)}
            body, ctx = await self._get(LIQUIDATION_ORDERS, params, instrument=instrument,
                                        day=day_of(from_us(after * 1000 - 1)))
            page, times = _liquidations(body, instrument, ctx, self.contract_values, drops)
            if not times:
                break
            frames.append(page)
            oldest = min(times)
            if len(times) < self.page_limit:
                after = oldest
            elif oldest + 1 < after:  # the page may have cut its oldest millisecond: ask for it again
                after = oldest + 1
            else:
                raise ctx.error(f"liquidation-orders page for after={after} holds {len(times)} liquidations "
                                "of one millisecond: more than a page of them cannot be paged by time")
        return finish("liquidations", frames, start, end, drops, paged="backward")

__all__ = ["CONTRACT_VALUES", "ERRORS", "LIMITS", "ContractSizer", "OkxClient", "funding_frame",
           "parse_books", "parse_candles", "parse_funding_history", "parse_history_trades",
           "parse_liquidations", "parse_open_interest_history", "parse_price_candles", "parse_ticker",
           "underlying"]
