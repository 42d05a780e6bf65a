"""OKX v5 public market data: trades, books, 1-minute candles, tickers, funding, open interest,
liquidations, mark and index price candles.

Answers are `{"code": "0", "msg": "", "data": [...]}` (any other code: `ERRORS`), newest first,
every value a string (times: epoch ms); `after=<t>` asks for records older than t. The records of
the paged endpoints are declared below (`HistoryTrade`, `Candle`, `PriceCandle`,
`FundingSettlement`, `OpenInterestRow`, `LiquidationOrders`); a page is converted in C and its rules
run on its columns (C builtins over the lists: min, max, count, set; a page holds at most 100
records, where a Polars expression's fixed cost is more than the old record-by-record reading); a
page that does not convert or breaks a rule is read record by record (`history_trade`, `candle`,
`open_interest`, `liquidation_detail`: the stream's readers too), which words the error as before.
OKX's integers (ts, tradeId) are declared as the digit text they are and read on the column:
msgspec's lax int would also take "1.0" and "1e3", which `integer` refuses.

What the records do not say:
- history-trades: `side` is the taker's; seq = tradeId (trade ids count up by one per instrument:
  the `trades` channel's aggregation says so, "tradeId = 123 and count = 3 ... aggregates the
  trades of tradeId = 123, 122, and 121"), so pages go by id: the first asks `type=2&after=<end
  ms>` (trades strictly before `end`), every later one `type=1&after=<smallest tradeId so far>`
  (trades sharing a millisecond across a page boundary are neither lost nor repeated) until a page
  reaches before `start`. `trades_by_id` (the trade-id refill, quality.continuity) asks
  `type=1&after=<last_id + 1>` and pages back likewise past `first_id`; the last 3 months only.
- `/api/v5/market/books?sz=N` → `data: [{asks: [[px, sz, "0", numOrders]], bids: [...], ts}]`
  (a `seqId` is read when present: update_id).
- candles: a bar still forming (`confirm` "0") is dropped and counted; trades = null. A candle
  carries no interval: one not opening on a minute is an error (a 1H body on minute boundaries
  cannot be told from a sparse 1m one). Mark-price and index candles are paged like them (one
  function for the three); the index is asked by its own id, the contract's underlying ("BTC-USDT"
  for BTC-USDT-SWAP and its futures), and stored under the contract's name (noted as conversion
  "index BTC-USDT").
- `/api/v5/market/ticker?instId=` (`tickers`) → `data: [{last, lastSz, askPx, askSz, bidPx, bidSz,
  open24h, high24h, low24h, volCcy24h, vol24h, ts}]`. `vol24h` is base units for SPOT and contracts
  for derivatives; `volCcy24h` is quote units for SPOT and base units for derivatives. So
  volume_24h = vol24h (spot) or volCcy24h (derivatives), and amount_24h = volCcy24h (spot),
  vol24h * ctVal (inverse: contracts are USD) or null (linear: OKX gives no quote volume).
  Bid and ask sizes go through the contract value. The ticker has no mark, index or funding
  rate: those columns are null. An empty string (no trade, an empty side) is null.
- funding-rate-history: `after`/`before` by fundingTime, limit ≤ 400 (100 in older docs: 100 is
  asked), the last 3 months. The interval is not in the answer (the docs: look at the spacing of
  funding times; 8h, or 6/4/2/1h on some perpetuals), so interval_hours = the spacing to the
  previous settlement: paging goes on until a settlement before `start` is held. The oldest
  settlement OKX answers takes its successor's spacing, a lone one 8h [inferred]; a spacing over
  8h (a settlement missing) is an error. rate_8h = rate * 8 / interval_hours; mark_price and
  index_price are null.
- open-interest-history (period=5m): `end`: records earlier than it, `begin`: newer than it,
  limit ≤ 100. contract_size = ctVal in base ("base", linear) or USD ("quote", inverse). The docs:
  "can retrieve the latest 1,440 data entries", and 5-minute data starts in February 2024: with
  period=5m that is about the last 5 days [inferred]; older days come back empty. The docs' own
  example is not self-consistent (oiCcy is not oi * ctVal), so the columns are not checked against
  each other.
- `/api/v5/public/liquidation-orders` is no longer in the docs (the WebSocket `liquidation-orders`
  channel, same record shape, is). From the older docs and SDKs [inferred]: `instType=SWAP|FUTURES`,
  `instFamily` (= `uly`, "BTC-USDT" for BTC-USDT-SWAP), `state=filled`, `after`/`before` by ts (ms),
  limit ≤ 100 (taken to count details); the last day only ("in the last day"; some SDKs copy "7
  days"). Only our instrument's details are kept (the others counted as `other_instrument`);
  amount = price * base. OKX gives no id: liquidation_id = "<ts>-<side>-<posSide>-<sz>-<bkPx>" from
  the strings as sent, "#n" appended to the n-th repeat of the same within a page. Paging by time:
  after a full page `after=<its oldest ts + 1>` (the page may have cut that millisecond; its
  repeats are dropped as duplicates), after a short one `after=<its oldest ts>`; a full page of one
  millisecond cannot be paged past (an error).

A time in seconds, a price or size that is not positive, a bar that cannot be true are errors
naming the instrument and request; rows dropped are counted by reason in `dropped` (`figures()`).

Quantities are base units: spot `sz` already is; for SWAP/FUTURES `sz` counts contracts, so
quantity = sz * ctVal (linear, ctVal in base) or sz * ctVal / px (inverse, ctVal in USD)
(`ContractSizer`); `CONTRACT_VALUES` holds the common ones, `contract_values=` adds others.

Limits (`LIMITS`): per endpoint and IP, per 2 seconds: 20 history-trades, history-candles,
ticker, history-mark-price-candles; 40 books; 10 funding-rate-history and open-interest-history
(per IP and instrument: held per endpoint here, stricter); 10 history-index-candles; 20
liquidation-orders (older docs: 40 [inferred]). `endpoint_limits={}` turns the gates off.
Errors (`ERRORS`; any envelope code but "0" is an error): code 50011 is a rate limit whether it
comes with HTTP 429 or 200 (waited out and retried, like any 429); "busy/unavailable" codes are
retried; 401 is a SourcePermissionError; 51001 (unknown instrument) a SourceNotFound; a 404 with a
NUMERIC code is an unknown path; any other code a SourceRequestError (not retried).

Over 500 lines: everything about one source in one module (parsers of nine endpoints + the
client), as the house rule asks.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timedelta
from itertools import compress
from operator import le, mul, truediv
from typing import Any, ClassVar

import msgspec
import polars as pl

from marketdata_assets.core.contracts import Contract, bad_name, option_strike, yymmdd
from marketdata_assets.core.http import ApiClient, ErrorTable, Limits, Page, describe_request
from marketdata_assets.datasets.declared import all_finite, all_positive, columns, epochs_ok, fits, frame_of
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
    BarColumns,
    DropCounts,
    Trade,
    TradeColumns,
    book_frame,
    book_levels,
    check_bar,
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
FUNDING_INTERVAL_HOURS = 8.0  # OKX's usual and longest interval (a lone settlement's: the module docstring)

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
# The records of the paged endpoints (the docs' names), converted in C
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
    """One `history-candles` row (and `candle1m` push): `[ts, o, h, l, c, vol, volCcy, volCcyQuote,
    confirm]`."""

    ts: str             # open time, epoch ms (digit text): the bar's ts
    open: float         # decimal text, as the four prices
    high: float
    low: float
    close: float
    vol: float          # volume: base units (spot), contracts (SWAP/FUTURES)
    volCcy: float       # volume: quote units (spot), base units (SWAP/FUTURES): the derivatives' volume
    volCcyQuote: float  # quote units: the row's amount (a row without it is read by `candle`)
    confirm: str = "1"  # "1": closed; "0": still forming (dropped and counted)


class PriceCandle(msgspec.Struct, array_like=True):
    """One `history-mark-price-candles` / `history-index-candles` row: `[ts, o, h, l, c, confirm]`."""

    ts: str             # open time, epoch ms (digit text)
    open: float         # decimal text, as the four prices
    high: float
    low: float
    close: float
    confirm: str = "1"  # as a candle's


class FundingSettlement(msgspec.Struct):
    """One settlement of `/api/v5/public/funding-rate-history` (perpetuals)."""

    instId: str          # the perpetual: the page's own
    fundingTime: str     # settlement time, epoch ms (digit text)
    realizedRate: float  # the rate settled: the row's rate (fundingRate, the predicted one, is not read)


class OpenInterestRow(msgspec.Struct, array_like=True):
    """One `/api/v5/rubik/stat/contracts/open-interest-history` row: `[ts, oi, oiCcy, oiUsd]`."""

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


def _integers(texts: list[str]) -> list[int] | None:
    """OKX's integers (digit text) as ints; None if one is not plain digits or does not fit Int64."""
    joined = "".join(texts)
    if texts and ("" in texts or not (joined.isascii() and joined.isdigit())):
        return None
    values = list(map(int, texts))
    return None if values and max(values) >= 2**63 else values


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


def history_trade(record: Any, instrument: str, sizer: ContractSizer, what: str, ctx: Page) -> Trade:
    """One trade `{instId, tradeId, px, sz, side, ts}` (history-trades, and the `trades` channel's
    push), sized by `sizer`: trade_id = tradeId, seq = int(tradeId)."""
    trade_id = field(record, "tradeId", what, ctx)
    if not isinstance(trade_id, str) or not trade_id:
        raise ctx.error(f"{what} tradeId is {trade_id!r}, not a string id")
    what = f"trade {trade_id}"
    inst = field(record, "instId", what, ctx)
    if inst != instrument:
        raise ctx.error(f"{what} is for {inst!r}, not {instrument}")
    price = positive(number(field(record, "px", what, ctx), f"{what} px", ctx), what, ctx)
    size = positive(number(field(record, "sz", what, ctx), f"{what} sz", ctx), what, ctx, "size")
    ts = epoch_us(field(record, "ts", what, ctx), f"{what} ts", ctx)
    side = field(record, "side", what, ctx)
    if side not in ("buy", "sell"):
        raise ctx.error(f"{what} side is {side!r}, not buy/sell")
    quantity, amount = sizer.base_and_quote(price, size)
    return Trade(ts, trade_id, price, quantity, amount, side, int(trade_id) if trade_id.isdigit() else None,
                 ts // 1000)


def parse_history_trades(body: Any, instrument: str, ctx: Page | None = None,
                         contract_values: dict[str, tuple[float, bool]] | None = None) -> pl.DataFrame:
    """history-trades envelope → trades frame (`HistoryTrade`s; the page's rules on its columns, else
    trade by trade: `history_trade`)."""
    ctx = ctx or Page(VENUE, instrument)
    sizer = _sizer(instrument, contract_values, ctx)
    data = _data(body, ctx)
    page = _trades_page(data, instrument, sizer)
    if page is not None:
        return page
    cols = TradeColumns()
    for i, record in enumerate(data):
        cols.add(*history_trade(record, instrument, sizer, f"trade #{i}", ctx)[:7])
    return cols.frame(VENUE, instrument)


def _trades_page(data: list, instrument: str, sizer: ContractSizer) -> pl.DataFrame | None:
    """The trades frame of a page whose trades all keep `history_trade`'s rules (numeric trade ids);
    None if one does not."""
    records = fits(list[HistoryTrade], data, strict=False)
    if records is None:
        return None
    cols = columns(records, ("instId", "tradeId", "px", "sz", "side", "ts"))
    ts, seq = _integers(cols["ts"]), _integers(cols["tradeId"])
    if (ts is None or seq is None or cols["instId"].count(instrument) < len(records)
            or not set(cols["side"]) <= {"buy", "sell"} or not all_positive(cols["px"], cols["sz"])
            or not epochs_ok(ts)):
        return None
    quantity, amount = sizer.sized(cols["px"], cols["sz"])
    return frame_of(TRADES_SCHEMA, VENUE, instrument, ts, trade_id=cols["tradeId"], price=cols["px"],
                    quantity=quantity, amount=amount, side=cols["side"], seq=seq)


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


def parse_candles(body: Any, instrument: str, ctx: Page | None = None,
                  contract_values: dict[str, tuple[float, bool]] | None = None,
                  drops: Counter | None = None) -> pl.DataFrame:
    """candles / history-candles envelope (`Candle`s) → bars frame: confirmed bars only, any order in,
    the unconfirmed ones counted in `drops["unconfirmed"]` (rules on the page's columns, else candle by
    candle: `candle`). Volume in base units: vol (spot), volCcy (contracts); amount = volCcyQuote."""
    ctx = ctx or Page(VENUE, instrument)
    sizer = _sizer(instrument, contract_values, ctx)
    data = _data(body, ctx)
    page = _candles_page(Candle, data, drops)
    if page is not None:
        volume = page["volCcy" if sizer.derivative else "vol"]  # base units
        return frame_of(BARS_SCHEMA, VENUE, instrument, page["ts"], open=page["open"], high=page["high"],
                        low=page["low"], close=page["close"], volume=volume, amount=page["volCcyQuote"],
                        trades=[None] * len(volume))
    cols = BarColumns()
    for i, row in enumerate(data):
        bar = candle(row, sizer, f"candle #{i}", ctx)
        if bar is None:  # the bar is still forming
            if drops is not None:
                drops["unconfirmed"] += 1
            continue
        cols.add(*bar, None)
    return cols.frame(VENUE, instrument)


def _candles_page(kind: type, data: list, drops: Counter | None) -> dict[str, list] | None:
    """The confirmed candles (`Candle`, `PriceCandle`) of a page whose candles all keep the rules of
    `candle` / `parse_price_candles` (an unconfirmed one: its time and confirm) as columns, the
    unconfirmed counted; None if one does not."""
    records = fits(list[kind], data, strict=False)
    if records is None:
        return None
    cols = columns(records, kind.__struct_fields__)
    times, confirms = _integers(cols["ts"]), cols["confirm"]
    if times is None or not epochs_ok(times) or not set(confirms) <= {"0", "1"}:
        return None
    cols["ts"] = times
    unconfirmed = confirms.count("0")
    if unconfirmed:
        cols = {name: list(compress(values, [c == "1" for c in confirms])) for name, values in cols.items()}
    if not _bars_ok(cols):
        return None
    if unconfirmed and drops is not None:
        drops["unconfirmed"] += unconfirmed
    return cols


def _bars_ok(cols: dict[str, list]) -> bool:
    """Every bar of the columns one `check_bar` takes (opening on a minute, finite, low > 0, low <=
    open/close <= high), its volumes finite and not negative."""
    o, h, lo, c = cols["open"], cols["high"], cols["low"], cols["close"]
    volumes = [cols[name] for name in ("vol", "volCcy", "volCcyQuote") if name in cols]
    return (all_finite(o, h, c) and all_positive(lo) and all_finite(*volumes, low=0) and all(map(le, lo, o))
            and all(map(le, lo, c)) and all(map(le, o, h)) and all(map(le, c, h))
            and not any(epoch_to_us(t) % 60_000_000 for t in cols["ts"]))


CANDLE_FIELDS = ("ts", "o", "h", "l", "c", "vol", "volCcy", "volCcyQuote", "confirm")  # candles, candle1m pushes
PRICE_CANDLE_FIELDS = ("ts", "o", "h", "l", "c", "confirm")  # mark-price and index candles


def _candle_head(row: Any, what: str, fields: tuple[str, ...], required: int, label: str, ctx: Page,
                 shown: int) -> tuple[int, str, bool]:
    """(ts µs, `label` named by the candle's time, confirmed) of a candle array of `fields` (at least
    `required` of them; the last, confirm, "1" when absent)."""
    if not isinstance(row, list) or len(row) < required:
        raise ctx.error(f"{what} is not a [{', '.join(fields)}] array: {str(row)[:shown]}")
    ts = epoch_us(row[0], f"{what} ts", ctx)
    named = f"{label} {from_us(ts).strftime('%Y-%m-%d %H:%M:%S')}"
    confirm = row[len(fields) - 1] if len(row) >= len(fields) else "1"
    if confirm not in ("0", "1"):
        raise ctx.error(f"{named} confirm is {confirm!r}, not \"0\" or \"1\"")
    return ts, named, confirm == "1"


def candle(row: Any, sizer: ContractSizer, what: str, ctx: Page) -> tuple | None:
    """One candle `[ts, o, h, l, c, vol, volCcy, volCcyQuote, confirm]` (REST, and the candle1m push):
    (ts µs, o, h, l, c, volume in base units, amount in quote units), None while unconfirmed."""
    ts, what, confirmed = _candle_head(row, what, CANDLE_FIELDS, 7, "candle", ctx, shown=160)
    if not confirmed:
        return None
    o, h, lo, c = (number(row[k], f"{what} {name}", ctx) for k, name in
                   ((1, "open"), (2, "high"), (3, "low"), (4, "close")))
    vol = number(row[5], f"{what} vol", ctx)
    vol_ccy = not_negative(number(row[6], f"{what} volCcy", ctx), f"{what} volCcy", ctx)
    quote = number(row[7], f"{what} volCcyQuote", ctx) if len(row) >= 8 and row[7] != "" else None
    check_bar(what, ctx, ts, o, h, lo, c, vol)
    if quote is not None:
        not_negative(quote, f"{what} volCcyQuote", ctx)
    if not sizer.derivative:
        return ts, o, h, lo, c, vol, (quote if quote is not None else vol_ccy)
    return ts, o, h, lo, c, vol_ccy, (quote if quote is not None else vol_ccy * c)  # vol in contracts, volCcy in base


def _optional(record: dict, key: str, what: str, ctx: Page) -> float | None:
    """A number that OKX sends as "" when there is none (no trade yet, an empty book side)."""
    value = field(record, key, what, ctx)
    return None if value == "" else number(value, f"{what} {key}", ctx)


def parse_ticker(body: Any, instrument: str, ctx: Page | None = None,
                 contract_values: dict[str, tuple[float, bool]] | None = None) -> pl.DataFrame:
    """ticker envelope → tickers frame: one row stamped with the ticker's `ts` (volumes: the module
    docstring; mark, index and funding rate null)."""
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
    """funding-rate-history envelope → [(fundingTime µs, realizedRate)] as sent (`_funding_page`, else
    record by record)."""
    data = _data(body, ctx)
    page = _funding_page(data, instrument)
    if page is not None:
        return page
    rows = []
    for i, record in enumerate(data):
        what = f"funding record #{i}"
        inst = field(record, "instId", what, ctx)
        if inst != instrument:
            raise ctx.error(f"{what} is for {inst!r}, not {instrument}")
        ts = epoch_us(field(record, "fundingTime", what, ctx), f"{what} fundingTime", ctx)
        what = f"funding at {from_us(ts).isoformat()}"
        rows.append((ts, number(field(record, "realizedRate", what, ctx), f"{what} realizedRate", ctx)))
    return rows


def _funding_page(data: list, instrument: str) -> list[tuple[int, float]] | None:
    """The (fundingTime µs, realizedRate) of a page of `FundingSettlement`s that keep the rules of
    `_funding_rows`; None if one does not."""
    records = fits(list[FundingSettlement], data, strict=False)
    if records is None:
        return None
    cols = columns(records, ("instId", "fundingTime", "realizedRate"))
    times = _integers(cols["fundingTime"])
    if (times is None or cols["instId"].count(instrument) < len(records) or not epochs_ok(times)
            or not all_finite(cols["realizedRate"])):
        return None
    return list(zip(map(epoch_to_us, times), cols["realizedRate"], strict=True))


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


def parse_open_interest_history(body: Any, instrument: str, ctx: Page | None = None,
                                contract_values: dict[str, tuple[float, bool]] | None = None) -> pl.DataFrame:
    """open-interest-history envelope (`OpenInterestRow`s) → open_interest frame: contracts = oi, base =
    oiCcy, quote = oiUsd (the page's rules on its columns, else row by row: `open_interest`)."""
    ctx = ctx or Page(VENUE, instrument)
    sizer = _sizer(instrument, contract_values, ctx, note=False)
    if not sizer.derivative:
        raise ctx.error("open interest exists for contracts only")
    data = _data(body, ctx)
    page = _open_interest_page(data, instrument, sizer)
    if page is not None:
        return page
    cols = columns_of("open_interest")
    for i, row in enumerate(data):
        if not isinstance(row, list) or len(row) < 4:
            raise ctx.error(f"open interest #{i} is not a [ts, oi, oiCcy, oiUsd] array: {str(row)[:120]}")
        cols.add(*open_interest(*row[:4], sizer, ctx))
    return cols.frame(VENUE, instrument)


def _open_interest_page(data: list, instrument: str, sizer: ContractSizer) -> pl.DataFrame | None:
    """The open_interest frame of a page of `OpenInterestRow`s that keep `open_interest`'s rules; None if
    one does not."""
    records = fits(list[OpenInterestRow], data, strict=False)
    if records is None:
        return None
    cols = columns(records, ("ts", "oi", "oiCcy", "oiUsd"))
    ts = _integers(cols["ts"])
    if ts is None or not epochs_ok(ts) or not all_finite(cols["oi"], cols["oiCcy"], cols["oiUsd"], low=0):
        return None
    n = len(ts)
    return frame_of(OPEN_INTEREST_SCHEMA, VENUE, instrument, ts, contracts=cols["oi"], contract_size=[sizer.value] * n,
                    size_unit=["quote" if sizer.inverse else "base"] * n, base=cols["oiCcy"],
                    quote=cols["oiUsd"])


def open_interest(ts: Any, oi: Any, oi_ccy: Any, oi_usd: Any, sizer: ContractSizer, ctx: Page) -> tuple:
    """One open interest (REST `[ts, oi, oiCcy, oiUsd]`, and the open-interest push's fields):
    (ts µs, contracts, contract size, its unit, base, quote)."""
    ts_us = epoch_us(ts, "open interest ts", ctx)
    what = f"open interest at {from_us(ts_us).isoformat()}"
    values = (not_negative(number(value, f"{what} {name}", ctx), f"{what} {name}", ctx)
              for value, name in ((oi, "oi"), (oi_ccy, "oiCcy"), (oi_usd, "oiUsd")))
    contracts, coin, usd = values
    return ts_us, contracts, sizer.value, "quote" if sizer.inverse else "base", coin, usd


def _liquidations(body: Any, instrument: str, ctx: Page, contract_values, drops: Counter | None
                  ) -> tuple[pl.DataFrame, list[int]]:
    """(liquidations frame of `instrument`, the ms time of every detail in the answer: the paging
    cursor runs over all of them): the page's rules on its columns, else detail by detail."""
    sizer = _sizer(instrument, contract_values, ctx)
    data = _data(body, ctx)
    page = _liquidations_page(data, instrument, sizer)
    if page is not None:
        frame, times, others = page
        if others and drops is not None:
            drops["other_instrument"] += others
        return frame, times
    cols = columns_of("liquidations")
    times: list[int] = []
    repeats: Counter = Counter()
    for i, group in enumerate(data):
        what = f"liquidation record #{i}"
        details = field(group, "details", what, ctx)
        if not isinstance(details, list):
            raise ctx.error(f"{what} details is {type(details).__name__}, not an array")
        inst = group.get("instId") or ""
        if not inst:  # a family has one perpetual; a dated future must say which it is
            family = group.get("instFamily") or group.get("uly")
            if group.get("instType") != "SWAP" or not family:
                raise ctx.error(f"{what} names no instId (instType {group.get('instType')!r}, "
                                f"instFamily {family!r})")
            inst = f"{family}-SWAP"
        for j, detail in enumerate(details):
            raw_ts = field(detail, "ts", f"{inst} liquidation #{j}", ctx)
            ts = epoch_us(raw_ts, f"{inst} liquidation #{j} ts", ctx)
            times.append(ts // 1000)
            if inst != instrument:
                if drops is not None:
                    drops["other_instrument"] += 1
                continue
            _, key, side, price, base, amount = liquidation_detail(detail, sizer, ctx)
            repeat = repeats[key]
            repeats[key] += 1
            cols.add(ts, key if not repeat else f"{key}#{repeat}", side, price, base, amount)
    return cols.frame(VENUE, instrument), times


def _liquidations_page(data: list, instrument: str, sizer: ContractSizer
                       ) -> tuple[pl.DataFrame, list[int], int] | None:
    """(frame, the ms time of every detail, the other instruments' details) of a page whose records
    and details all keep the rules of `_liquidations` and `liquidation_detail`; None if one does not."""
    records = fits(list[LiquidationOrders], data, strict=False)
    if records is None:
        return None
    ours: list[bool] = []
    for record in records:
        family = record.instFamily or record.uly
        inst = record.instId or (f"{family}-SWAP" if record.instType == "SWAP" and family else None)
        if inst is None:
            return None
        ours.extend([inst == instrument] * len(record.details))
    details = [detail for record in records for detail in record.details]
    times = _integers([detail.ts for detail in details])
    if times is None or not epochs_ok(times):
        return None
    mine = list(compress(details, ours))
    sent = list(compress([detail for record in data for detail in record["details"]], ours))
    cols = columns(mine, ("side", "bkPx", "sz"))
    if not set(cols["side"]) <= {"buy", "sell"} or not all_positive(cols["bkPx"], cols["sz"]):
        return None
    ids, seen = [], Counter()
    for d in sent:
        key = f"{d['ts']}-{d['side']}-{d['posSide']}-{d['sz']}-{d['bkPx']}"
        ids.append(f"{key}#{seen[key]}" if seen[key] else key)
        seen[key] += 1
    quantity = sizer.sized(cols["bkPx"], cols["sz"])[0]
    frame = frame_of(LIQUIDATIONS_SCHEMA, VENUE, instrument, list(compress(times, ours)), liquidation_id=ids,
                     side=cols["side"], price=cols["bkPx"], quantity=quantity,
                     amount=list(map(mul, cols["bkPx"], quantity)))
    return frame, [epoch_to_us(t) // 1000 for t in times], len(ours) - len(mine)


def liquidation_detail(detail: Any, sizer: ContractSizer, ctx: Page) -> tuple[int, str, str, float, float, float]:
    """One detail `{side, posSide, bkPx, sz, ts}` of a liquidation-orders record (REST, and the channel's
    push): (ts µs, id `<ts>-<side>-<posSide>-<sz>-<bkPx>` (OKX gives none), side, price, base, quote)."""
    raw_ts = field(detail, "ts", "liquidation", ctx)
    ts = epoch_us(raw_ts, "liquidation ts", ctx)
    what = f"liquidation at {from_us(ts).isoformat()}"
    side = field(detail, "side", what, ctx)
    if side not in ("buy", "sell"):
        raise ctx.error(f"{what} side is {side!r}, not buy/sell")
    pos_side = field(detail, "posSide", what, ctx)
    raw_px, raw_sz = field(detail, "bkPx", what, ctx), field(detail, "sz", what, ctx)
    price = positive(number(raw_px, f"{what} bkPx", ctx), what, ctx, "bkPx")
    size = positive(number(raw_sz, f"{what} sz", ctx), what, ctx, "sz")
    base = sizer.base_and_quote(price, size)[0]
    return ts, f"{raw_ts}-{side}-{pos_side}-{raw_sz}-{raw_px}", side, price, base, price * base


def parse_liquidations(body: Any, instrument: str, ctx: Page | None = None,
                       contract_values: dict[str, tuple[float, bool]] | None = None,
                       drops: Counter | None = None) -> pl.DataFrame:
    """liquidation-orders envelope → liquidations frame of `instrument` (other instruments' details
    counted in `drops["other_instrument"]`)."""
    return _liquidations(body, instrument, ctx or Page(VENUE, instrument), contract_values, drops)[0]


def parse_price_candles(body: Any, instrument: str, ctx: Page | None = None, drops: Counter | None = None,
                        dataset: str = "mark_bars_1m") -> pl.DataFrame:
    """history-mark-price-candles / history-index-candles envelope (`PriceCandle`s) → a price bars frame
    (`dataset`: mark_bars_1m | index_bars_1m); unconfirmed bars counted in `drops["unconfirmed"]`."""
    ctx = ctx or Page(VENUE, instrument)
    data = _data(body, ctx)
    page = _candles_page(PriceCandle, data, drops)
    if page is not None:
        return frame_of(spec_for(dataset).schema, VENUE, instrument, page["ts"], open=page["open"], high=page["high"],
                        low=page["low"], close=page["close"])
    price = dataset.split("_")[0]
    cols = columns_of(dataset)
    for i, row in enumerate(data):
        ts, what, confirmed = _candle_head(row, f"{price} candle #{i}", PRICE_CANDLE_FIELDS, 5, f"{price} candle", ctx,
                                           shown=120)
        if not confirmed:
            if drops is not None:
                drops["unconfirmed"] += 1
            continue
        o, h, lo, c = (number(row[k], f"{what} {name}", ctx) for k, name in
                       ((1, "open"), (2, "high"), (3, "low"), (4, "close")))
        check_bar(what, ctx, ts, o, h, lo, c, 0.0)
        cols.add(ts, o, h, lo, c)
    return cols.frame(VENUE, instrument)


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
