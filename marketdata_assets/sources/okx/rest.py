"""OKX v5 public market data, the parsers: answers of trades, books, 1-minute candles, tickers,
funding, open interest, liquidations, mark and index price candles -> checked columns or a frame.

Answers are `{"code": "0", "msg": "", "data": [...]}` (any other code: client.py's `ERRORS`), newest
first, every value a string. A page of the paged endpoints' records (records.py: `HistoryTrade`,
`Candle`, ...) is converted and checked in C by their types (`records_of`: a breach names the record,
field and value) and the rules a type cannot say run on its columns. Sizes in contracts become base units
(`ContractSizer`, units.py). What the answers do not say: docs/crypto-datasets.md, "OKX v5 REST
as read".
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from itertools import compress
from operator import mul
from typing import Any

import numpy as np
import polars as pl

from marketdata_assets.core.http import Page, SourceDataError
from marketdata_assets.datasets.declared import (
    Rule,
    check,
    columns,
    frame_of,
    integers,
    is_epoch,
    record_epoch,
    records_of,
)
from marketdata_assets.datasets.frames import (
    BARS_SCHEMA,
    LIQUIDATIONS_SCHEMA,
    OPEN_INTEREST_SCHEMA,
    epoch_to_us,
    from_us,
    spec_for,
)
from marketdata_assets.datasets.instruments import Instrument
from marketdata_assets.datasets.normalized import trades_frame
from marketdata_assets.datasets.wire import (
    book_frame,
    book_levels,
    columns_of,
    epoch_us,
    integer,
    note_conversion,
    record_of,
)
from marketdata_assets.sources.okx.records import (
    CANDLE_RULES,
    OPEN_INTEREST_RULES,
    PRICE_CANDLE_RULES,
    PRICES,
    VENUE,
    Book,
    Candle,
    DetailTime,
    Envelope,
    FundingSettlement,
    LiquidationDetail,
    LiquidationOrders,
    OpenInterestRow,
    PriceCandle,
    Ticker,
    of,
    to_trades,
)
from marketdata_assets.sources.okx.units import ContractSizer

FUNDING_INTERVAL_HOURS = (
    8.0  # OKX's usual and longest interval (a lone settlement's: docs/crypto-datasets.md)
)


def _check(
    cols: dict,
    rules: Sequence[Rule],
    name,
    ctx: Page,
    drops: Counter | None = None,
    reason: str = "",
    dropped: Sequence[bool] = (),
) -> None:
    """`check`, counting in `drops[reason]` the `dropped` records before the first that breaks a rule
    (every one if none does), as a reader going record by record had counted them when it raised."""
    broke: list[int] = []
    try:
        check(cols, rules, lambda i, r: broke.append(i) or name(i, r), ctx)
    finally:
        _count(drops, reason, dropped[: broke[0]] if broke else dropped)


def _count(drops: Counter | None, reason: str, dropped: Sequence[bool]) -> None:
    """`drops[reason]` += the records `dropped` (none counted without a counter)."""
    n = sum(dropped)
    if n and drops is not None:
        drops[reason] += n


def _iso(ms_or_us: int) -> str:
    return from_us(epoch_to_us(int(ms_or_us))).isoformat()


def _timed(
    key: str, label: str, unnamed: Callable[[int], str], shown: Callable[[int], str] = _iso, at: int = 0
) -> Callable[[int, Any], str]:
    """A record's name by its time (`label` and its `key`'s epoch ms, `shown`) once that is epoch digits
    (as sent or read; a row's time at position `at`), else `unnamed(i)`."""

    def named(i: int, record: Any) -> str:
        t = record_epoch(record, key, at)
        return unnamed(i) if t is None else f"{label} {shown(t)}"

    return named


def _minute(ms_or_us: int) -> str:
    return from_us(epoch_to_us(int(ms_or_us))).strftime("%Y-%m-%d %H:%M:%S")


# --------------------------------------------------------------------------------------------
# Parsers
# --------------------------------------------------------------------------------------------


def envelope_data(body: Any, ctx: Page) -> list:
    """The `data` array of an envelope (a bare list is accepted too)."""
    if isinstance(body, list):
        return body
    if not isinstance(body, dict):
        raise ctx.error(
            f"expected the {{code, msg, data}} envelope, got {type(body).__name__} {str(body)[:120]!r}"
        )
    code = body.get("code")
    if code != "0":
        raise ctx.error(f'envelope code {code!r} (msg {body.get("msg")!r}) where "0" was expected')
    data = record_of(Envelope, body, "envelope", ctx).data
    if not isinstance(data, list):
        raise ctx.error(f"envelope data is {type(data).__name__}, not an array")
    return data


def _sizer(instrument: str, reference: Instrument | None, ctx: Page, note: bool = True) -> ContractSizer:
    try:
        sizer = ContractSizer(instrument, reference)
    except ValueError as error:
        raise ctx.error(str(error).removeprefix(f"{VENUE} {instrument}: ")) from None
    if sizer.derivative and note:
        note_conversion(
            instrument,
            "size contracts -> "
            + (
                f"coin (x ctVal x ctMult {sizer.value:g} USD / price)"
                if sizer.inverse
                else f"base (x ctVal x ctMult {sizer.value:g})"
            ),
        )
    return sizer


def parse_history_trades(
    body: Any, instrument: str, ctx: Page | None = None, reference: Instrument | None = None
) -> pl.DataFrame:
    """history-trades envelope → trades frame (`to_trades`)."""
    ctx = ctx or Page(VENUE, instrument)
    sizer = _sizer(instrument, reference, ctx)
    return trades_frame(to_trades(envelope_data(body, ctx), instrument, sizer, ctx))


def parse_books(
    body: Any, instrument: str, ctx: Page | None = None, reference: Instrument | None = None
) -> pl.DataFrame:
    """books envelope → books frame (ts from the book's `ts`; update_id = seqId when present)."""
    ctx = ctx or Page(VENUE, instrument)
    sizer = _sizer(instrument, reference, ctx)
    data = envelope_data(body, ctx)
    if not data:
        raise ctx.error("books: empty data array")
    book = record_of(Book, data[0], "book", ctx)
    ts = epoch_us(int(book.ts), "book ts", ctx)
    update_id = integer(book.seqId, "book seqId", ctx) if book.seqId not in (None, "") else None
    bids, asks = (
        book_levels(
            levels,
            side,
            ctx,
            what="books",
            shape='[px, sz, "0", numOrders] array',
            price="px",
            size="sz",
            base=lambda price, size: sizer.base_and_quote(price, size)[0],
        )
        for side, levels in (("bids", book.bids), ("asks", book.asks))
    )
    return book_frame(VENUE, instrument, ts, update_id, bids, asks)


def candles(
    kind: type,
    data: list,
    ctx: Page,
    label: str = "candle",
    number: str = "candle #{i}",
    drops: Counter | None = None,
) -> dict[str, list]:
    """Candle rows (`Candle`, `PriceCandle`) as checked columns of the closed ones: ts_us, open, high,
    low, close (candles: also volume = vol, vol_ccy, quote = volCcyQuote and whether the row has it);
    the rows still forming are counted in `drops["unconfirmed"]`."""
    named = _timed("ts", label, lambda i: number.format(i=i), _minute)
    cols = columns(records_of(kind, data, named, ctx), kind.__struct_fields__)
    cols["ts"] = integers(cols["ts"])
    cols["ts_us"] = list(map(epoch_to_us, cols["ts"]))
    cols.update(zip(PRICES, (cols[raw] for raw in "ohlc"), strict=True))
    cols["closed"] = np.array([confirm != "0" for confirm in cols["confirm"]], bool)
    names = ["ts_us", *PRICES]
    if kind is Candle:
        cols["quoted"] = [quote != "" for quote in cols["volCcyQuote"]]
        names += ["vol", "volCcy", "volCcyQuote", "quoted"]
    rules = CANDLE_RULES if kind is Candle else PRICE_CANDLE_RULES
    _check(cols, rules, named, ctx, drops, "unconfirmed", [c == "0" for c in cols["confirm"]])
    return {name: list(compress(cols[name], cols["closed"])) for name in names}


def candle_bars(
    data: list,
    sizer: ContractSizer,
    ctx: Page,
    number: str = "candle #{i}",
    drops: Counter | None = None,
) -> dict[str, list]:
    """Closed candles (history-candles, and the candle1m push) as bars: ts_us, open, high, low, close,
    volume in base units (vol: spot; volCcy: contracts), amount in quote units (volCcyQuote; without
    it volCcy (spot) or volCcy x close)."""
    cols = candles(Candle, data, ctx, number=number, drops=drops)
    if sizer.derivative:
        volume, fallback = cols["volCcy"], list(map(mul, cols["volCcy"], cols["close"]))
    else:
        volume, fallback = cols["vol"], cols["volCcy"]
    amount = [
        q if quoted else f for q, quoted, f in zip(cols["volCcyQuote"], cols["quoted"], fallback, strict=True)
    ]
    return {
        **{k: cols[k] for k in ("ts_us", "open", "high", "low", "close")},
        "volume": volume,
        "amount": amount,
    }


def candle(row: Any, sizer: ContractSizer, what: str, ctx: Page) -> tuple | None:
    """One candle row, named `what` until its time is read: (ts µs, o, h, l, c, volume, amount), None
    while unconfirmed (`candle_bars` of one)."""
    return next(zip(*candle_bars([row], sizer, ctx, what).values()), None)


def parse_candles(
    body: Any,
    instrument: str,
    ctx: Page | None = None,
    reference: Instrument | None = None,
    drops: Counter | None = None,
) -> pl.DataFrame:
    """candles / history-candles envelope → bars frame of the confirmed bars (`candle_bars`), any order
    in, the unconfirmed ones counted in `drops["unconfirmed"]`."""
    ctx = ctx or Page(VENUE, instrument)
    sizer = _sizer(instrument, reference, ctx)
    bars = candle_bars(envelope_data(body, ctx), sizer, ctx, drops=drops)
    return frame_of(BARS_SCHEMA, VENUE, instrument, bars.pop("ts_us"), **bars)  # no trade count


def parse_price_candles(
    body: Any,
    instrument: str,
    ctx: Page | None = None,
    drops: Counter | None = None,
    dataset: str = "mark_bars_1m",
) -> pl.DataFrame:
    """history-mark-price-candles / history-index-candles envelope (`PriceCandle`s) → a price bars frame
    (`dataset`: mark_bars_1m | index_bars_1m); unconfirmed bars counted in `drops["unconfirmed"]`."""
    ctx = ctx or Page(VENUE, instrument)
    price = dataset.split("_")[0]
    cols = candles(
        PriceCandle, envelope_data(body, ctx), ctx, f"{price} candle", f"{price} candle #{{i}}", drops
    )
    return frame_of(spec_for(dataset).schema, VENUE, instrument, cols.pop("ts_us"), **cols)


def parse_ticker(
    body: Any, instrument: str, ctx: Page | None = None, reference: Instrument | None = None
) -> pl.DataFrame:
    """ticker envelope → tickers frame: one row stamped with the ticker's `ts` (volumes:
    docs/crypto-datasets.md; mark, index and funding rate null)."""
    ctx = ctx or Page(VENUE, instrument)
    sizer = _sizer(instrument, reference, ctx)
    data = envelope_data(body, ctx)
    if not data:
        raise ctx.error("ticker: empty data array")
    ticker = record_of(Ticker, data[0], "ticker", ctx)
    if ticker.instId != instrument:
        raise ctx.error(f"the ticker is for {ticker.instId!r}, not {instrument}")
    ts = epoch_us(int(ticker.ts), "ticker ts", ctx)
    prices = {key: getattr(ticker, key) or None for key in ("last", "bidPx", "askPx")}  # "": none
    sizes = {}
    for side in ("bid", "ask"):
        value, price = getattr(ticker, f"{side}Sz"), prices[f"{side}Px"]
        sizes[side] = None if value == "" or price is None else sizer.base_and_quote(price, value)[0]
    vol, vol_ccy = ticker.vol24h, ticker.volCcy24h
    if not sizer.derivative:  # vol24h base, volCcy24h quote
        volume, amount = vol, vol_ccy
    else:  # vol24h contracts, volCcy24h base; inverse contracts are USD: the quote amount
        volume, amount = vol_ccy, (vol * sizer.value if sizer.inverse else None)
    cols = columns_of("tickers")
    cols.add(
        ts,
        prices["last"],
        prices["bidPx"],
        sizes["bid"],
        prices["askPx"],
        sizes["ask"],
        volume,
        amount,
        None,
        None,
        None,
    )
    return cols.frame(VENUE, instrument)


def funding_rows(body: Any, instrument: str, ctx: Page) -> list[tuple[int, float]]:
    """funding-rate-history envelope (`FundingSettlement`s) → [(fundingTime µs, realizedRate)] as sent."""
    named = _timed("fundingTime", "funding at", lambda i: f"funding record #{i}")
    data = envelope_data(body, ctx)
    cols = columns(records_of(FundingSettlement, data, named, ctx), FundingSettlement.__struct_fields__)
    cols["fundingTime"] = integers(cols["fundingTime"])
    check(cols, (of(instrument), is_epoch("fundingTime")), named, ctx)
    return list(zip(map(epoch_to_us, cols["fundingTime"]), cols["realizedRate"], strict=True))


def funding_frame(
    rows: list[tuple[int, float]], instrument: str, ctx: Page | None = None, drops: Counter | None = None
) -> pl.DataFrame:
    """Settlements (fundingTime µs, realizedRate), in any order → funding frame, oldest first:
    interval_hours = the spacing to the previous settlement (the oldest takes its successor's, a
    lone one `FUNDING_INTERVAL_HOURS`); one time sent twice is counted as a duplicate, with
    different rates it is an error, and so is a spacing longer than 8 hours (a settlement missing)."""
    ctx = ctx or Page(VENUE, instrument)
    rates: dict[int, float] = {}
    for ts, rate in rows:
        if ts in rates:
            if rates[ts] != rate:
                raise ctx.error(
                    f"funding at {from_us(ts).isoformat()} comes twice: rates {rates[ts]} and {rate}"
                )
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
            raise ctx.error(
                f"funding at {from_us(ts).isoformat()} comes {hours:g} hours after the previous "
                "one: no OKX interval is longer than 8 hours (a settlement missing?)"
            )
        rate = rates[ts]
        cols.add(ts, rate, hours, rate * 8 / hours, None, None)
    return cols.frame(VENUE, instrument)


def parse_funding_history(body: Any, instrument: str, ctx: Page | None = None) -> pl.DataFrame:
    """One funding-rate-history answer → funding frame (intervals from the spacing inside it)."""
    ctx = ctx or Page(VENUE, instrument)
    return funding_frame(funding_rows(body, instrument, ctx), instrument, ctx)


def open_interests(rows: list, sizer: ContractSizer, ctx: Page) -> dict[str, list]:
    """Open interest rows (`OpenInterestRow`: REST, and the open-interest push's fields) as checked
    columns: ts (µs), contracts, contract_size, size_unit, base, quote."""
    named = _timed("ts", "open interest at", lambda i: f"open interest #{i}")
    cols = columns(records_of(OpenInterestRow, rows, named, ctx), OpenInterestRow.__struct_fields__)
    cols["ts"] = integers(cols["ts"])
    check(cols, OPEN_INTEREST_RULES, named, ctx)
    n = len(rows)
    return {
        "ts": list(map(epoch_to_us, cols["ts"])),
        "contracts": cols["oi"],
        "contract_size": [sizer.value] * n,
        "size_unit": ["quote" if sizer.inverse else "base"] * n,
        "base": cols["oiCcy"],
        "quote": cols["oiUsd"],
    }


def open_interest(ts: Any, oi: Any, oi_ccy: Any, oi_usd: Any, sizer: ContractSizer, ctx: Page) -> tuple:
    """One open interest: (ts µs, contracts, contract size, its unit, base, quote) (`open_interests` of
    one)."""
    return next(zip(*open_interests([[ts, oi, oi_ccy, oi_usd]], sizer, ctx).values()))


def parse_open_interest_history(
    body: Any, instrument: str, ctx: Page | None = None, reference: Instrument | None = None
) -> pl.DataFrame:
    """open-interest-history envelope → open_interest frame: contracts = oi, base = oiCcy, quote = oiUsd."""
    ctx = ctx or Page(VENUE, instrument)
    sizer = _sizer(instrument, reference, ctx, note=False)
    if not sizer.derivative:
        raise ctx.error("open interest exists for contracts only")
    cols = open_interests(envelope_data(body, ctx), sizer, ctx)
    return frame_of(OPEN_INTEREST_SCHEMA, VENUE, instrument, cols.pop("ts"), **cols)


def liquidation_details(
    details: list,
    sizer: ContractSizer,
    ctx: Page,
    name: Callable[[int], str],
    ours: Sequence[bool] | None = None,
    drops: Counter | None = None,
) -> dict[str, list]:
    """Liquidation details (`LiquidationDetail`: liquidation-orders, and the channel's push) as checked
    columns of those `ours` (all by default; the others only timed, and counted in
    `drops["other_instrument"]`): ts (µs), key `<ts>-<side>-<posSide>-<sz>-<bkPx>` as sent (OKX gives no
    id), side, price, quantity (base), amount; and "times": every detail's ms. `name(i)`: a detail
    until its time is read."""
    others = [False] * len(details) if ours is None else [not o for o in ours]
    named = _timed("ts", "liquidation at", name)
    times = integers(columns(records_of(DetailTime, details, named, ctx), ("ts",))["ts"])
    check({"ts": times}, (is_epoch("ts"),), lambda i, r: named(i, details[i]), ctx)
    at = [i for i, other in enumerate(others) if not other]
    try:
        mine = records_of(LiquidationDetail, [details[i] for i in at], lambda k, r: named(at[k], r), ctx)
    except SourceDataError as error:  # the other contracts' details before it were counted, as read
        _count(drops, "other_instrument", others[: at[error.record]] if error.record is not None else ())
        raise
    _count(drops, "other_instrument", others)
    price = [detail.bkPx for detail in mine]
    quantity = sizer.sized(price, [detail.sz for detail in mine])[0]
    sent = [details[i] for i in at]
    return {
        "ts": [epoch_to_us(times[i]) for i in at],
        "key": [f"{d['ts']}-{d['side']}-{d['posSide']}-{d['sz']}-{d['bkPx']}" for d in sent],
        "side": [detail.side for detail in mine],
        "price": price,
        "quantity": quantity,
        "amount": list(map(mul, price, quantity)),
        "times": [epoch_to_us(t) // 1000 for t in times],
    }


def liquidation_detail(
    detail: Any, sizer: ContractSizer, ctx: Page
) -> tuple[int, str, str, float, float, float]:
    """One liquidation detail (the channel's push): (ts µs, key, side, price, base, quote)
    (`liquidation_details` of one)."""
    cols = liquidation_details([detail], sizer, ctx, lambda i: "liquidation")
    return next(zip(*list(cols.values())[:6]))


def liquidation_answer(
    body: Any, instrument: str, ctx: Page, reference: Instrument | None, drops: Counter | None
) -> tuple[pl.DataFrame, list[int]]:
    """(liquidations frame of `instrument`, the ms time of every detail in the answer: the paging
    cursor runs over all of them). A record names its contract (`instId`, else its family's perpetual);
    a detail before a broken record is told first, as a reader going record by record told it."""
    sizer = _sizer(instrument, reference, ctx)
    data = envelope_data(body, ctx)
    contracts = [_contract(record) for record in data]
    try:
        records_of(LiquidationOrders, data, lambda i, r: f"liquidation record #{i}", ctx)
        if None in contracts:
            raise _unnamed(data, contracts.index(None), ctx)
    except SourceDataError as error:
        _liquidation_page(data[: error.record], contracts, instrument, sizer, ctx, drops)
        raise
    return _liquidation_page(data, contracts, instrument, sizer, ctx, drops)


def _unnamed(data: list, i: int, ctx: Page) -> SourceDataError:
    """Record i names no contract: the error, at its position (`record`)."""
    record = data[i]
    kind, family = record.get("instType"), record.get("instFamily") or record.get("uly")
    error = ctx.error(f"liquidation record #{i} names no instId (instType {kind!r}, instFamily {family!r})")
    error.record = i
    return error


def _contract(record: Any) -> Any:
    """A liquidation-orders record's contract: its instId, else its family's perpetual; None: neither."""
    if not isinstance(record, dict):
        return None
    family = record.get("instFamily") or record.get("uly")
    return record.get("instId") or (f"{family}-SWAP" if record.get("instType") == "SWAP" and family else None)


def _liquidation_page(
    data: list, contracts: list, instrument: str, sizer: ContractSizer, ctx: Page, drops: Counter | None
) -> tuple[pl.DataFrame, list[int]]:
    """`liquidation_answer` of records that keep their rules: our contract's details as a frame, the n-th
    repeat of a key within the page "#n"."""
    details = [detail for record in data for detail in record["details"]]
    names = [
        f"{inst} liquidation #{j}"
        for record, inst in zip(data, contracts)
        for j in range(len(record["details"]))
    ]
    ours = [inst == instrument for record, inst in zip(data, contracts) for _ in record["details"]]
    cols = liquidation_details(details, sizer, ctx, names.__getitem__, ours, drops)
    ids, seen = [], Counter()
    for key in cols["key"]:
        ids.append(f"{key}#{seen[key]}" if seen[key] else key)
        seen[key] += 1
    frame = frame_of(
        LIQUIDATIONS_SCHEMA,
        VENUE,
        instrument,
        cols["ts"],
        liquidation_id=ids,
        side=cols["side"],
        price=cols["price"],
        quantity=cols["quantity"],
        amount=cols["amount"],
    )
    return frame, cols["times"]


def parse_liquidations(
    body: Any,
    instrument: str,
    ctx: Page | None = None,
    reference: Instrument | None = None,
    drops: Counter | None = None,
) -> pl.DataFrame:
    """liquidation-orders envelope → liquidations frame of `instrument` (other instruments' details
    counted in `drops["other_instrument"]`)."""
    return liquidation_answer(body, instrument, ctx or Page(VENUE, instrument), reference, drops)[0]


__all__ = [
    "funding_frame",
    "parse_books",
    "parse_candles",
    "parse_funding_history",
    "parse_history_trades",
    "parse_liquidations",
    "parse_open_interest_history",
    "parse_price_candles",
    "parse_ticker",
]
