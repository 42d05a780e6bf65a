"""The rows of the live datasets other than trades, per venue: which landing channels carry a dataset
(`CHANNELS`), and how a venue's normalized message (the protocol's own `decode` + `messages`,
sources/stream.py `LiveMessage` payloads) becomes a row of the dataset's stored frame
(datasets/frames.py), with the units the REST loads of the same dataset store.

| dataset | stored as (table) | Binance spot | Binance USD-M | OKX | Deribit |
|---|---|---|---|---|---|
| tickers | tickers | `@bookTicker` | `@bookTicker` | `tickers` | `ticker.<i>.100ms` |
| bars_1m | bars_1m (closed bars) | `@kline_1m` | `@kline_1m` | `candle1m` | - |
| liquidations | liquidations | - | `@forceOrder` | `SWAP@liquidation-orders` | - |
| open_interest | open_interest | - | - | `open-interest` | `ticker.<i>.100ms` |
| mark_funding | mark_funding | - | `@markPrice@1s` | `mark-price`, `funding-rate` | `ticker.<i>.100ms` |
| books | book_snapshots | `@book_top` | `@book_top` | `@book_top` | `@book_top` |

- tickers: best bid/ask (and last where sent); sizes in base units as the REST tickers (OKX contracts
  x ctVal, `sources/okx/rest.py` `ContractSizer`; Deribit inverse USD amounts / price). No live
  ticker carries 24h volume: volume_24h and amount_24h are null. Binance spot's bookTicker has no
  event time: `ts` is the receive time (its id, the book update id `u`, still dedupes it). Deribit's
  ticker also gives mark, index and funding rate, filled as its REST ticker fills them.
- bars_1m: the closed bar only. Binance: volume `v`, amount = quote volume `q`, trades `n` (the REST
  klines' columns); OKX: through the REST parser (`parse_candles`: derivatives' volume in base units).
- liquidations: OKX through the REST parser (`parse_liquidations`: the same liquidation_id
  `<ts>-<side>-<posSide>-<sz>-<bkPx>`, base quantity); Binance USD-M `forceOrder`: liquidation_id
  `<T>.<S>` (the message key: the venue sends no id), price = the average fill price `ap`, quantity =
  the filled quantity `z` (the order's price `p` and quantity `q` where nothing filled yet).
- open_interest: OKX through the REST parser (`parse_open_interest_history`: contracts `oi`, base
  `oiCcy`, quote `oiUsd`, ctVal); Deribit through its REST parser (`parse_open_interest`: the
  amount in contracts of `CONTRACT_SIZES`, base and quote by the same ticker's mark price). Binance
  USD-M: no open-interest stream is collected (REST only).
- books: the collector's own top-N snapshots (`<instrument>@book_top`, landed beside the raw frames
  each `book_snapshot_s` a book moved: its synced book, the one it publishes on `md.books.>`), not a
  venue's frames; each through the venue's REST book parser (units as the REST snapshots: OKX
  contracts x ctVal, Deribit inverse USD / price), `ts` the book's last update's exchange time, one
  snapshot per update id.
- mark_funding: samples, not settlements (never `funding_rates`): the mark_price message gives
  mark and index, the funding message the current rate and the settlement it is for (Binance `T`,
  OKX `fundingTime`; Deribit none); one row per (instrument, ts), the two merged where both exist.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import polars as pl

from marketdata_assets.sources.binance.rest import parse_depth
from marketdata_assets.sources.deribit.rest import (
    base_and_quote,
    contract_size,
    is_inverse,
    parse_open_interest,
    parse_order_book,
)
from marketdata_assets.sources.okx.rest import (
    ContractSizer,
    parse_books,
    parse_candles,
    parse_liquidations,
    parse_open_interest_history,
)
from marketdata_assets.sources.okx.stream import is_swap
from marketdata_assets.sources.registry import stream_protocol
from marketdata_assets.sources.stream import (
    BARS_1M,
    BOOK_TOP,
    BOOKS,
    FUNDING,
    LIQUIDATIONS,
    MARK_PRICE,
    OPEN_INTEREST,
    TICKERS,
    LiveMessage,
)

MARK_FUNDING = "mark_funding"
LIVE_DATASET_NAMES = (TICKERS, BARS_1M, LIQUIDATIONS, OPEN_INTEREST, MARK_FUNDING, BOOKS)
SOURCES = {venue: f"{venue}_LIVE" for venue in ("BINANCE", "BINANCE_UM", "OKX", "DERIBIT")}


def protocol(venue: str):
    """The venue's stream protocol with every dataset it supports enabled (a landed frame gives all
    its messages; each load keeps its dataset's)."""
    return stream_protocol(venue, "all")


def _num(value: Any) -> float | None:
    return None if value is None or value == "" else float(value)


def _us(ms: Any) -> int | None:
    return None if ms is None or ms == "" else int(ms) * 1000


def _ts(payload: dict) -> int:
    """The event time in µs, else (Binance spot's bookTicker) the receive time."""
    return _us(payload["ts_ms"]) if payload.get("ts_ms") is not None else int(payload["recv_ns"]) // 1000


def _one(frame) -> dict:
    """The one row of a REST parser's frame, `ts` as epoch µs (what the loader builds frames from)."""
    (row,) = frame.drop("venue", "instrument").with_columns(frame["ts"].dt.epoch("us")).rows(named=True)
    return row


Row = dict[str, Any]
Mapper = Callable[[dict, dict[str, dict], Any, str], list[Row]]  # payload, the frame's payloads by dataset, context, instrument


def _sizes(payload: dict, size_of: Callable[[float, float], float]) -> Row:
    out: Row = {}
    for side in ("bid", "ask"):
        price, size = _num(payload.get(f"{side}_price")), _num(payload.get(f"{side}_size"))
        out[side] = price or None
        out[f"{side}_size"] = None if not price or size is None else size_of(price, size)
    return out


def _ticker(payload: dict, sizes: Row, others: dict[str, dict] | None = None) -> Row:
    mark, funding = (others or {}).get(MARK_PRICE, {}), (others or {}).get(FUNDING, {})
    return {"ts": _ts(payload), "last": _num(payload.get("last_price")), **sizes, "volume_24h": None,
            "amount_24h": None, "mark_price": _num(mark.get("mark_price")), "index_price": _num(mark.get("index_price")),
            "funding_rate": _num(funding.get("funding_rate"))}


def binance_ticker(payload, others, context, instrument) -> list[Row]:
    return [_ticker(payload, _sizes(payload, lambda price, size: size))]


def okx_ticker(payload, others, sizer: ContractSizer, instrument) -> list[Row]:
    return [_ticker(payload, _sizes(payload, lambda price, size: sizer.base_and_quote(price, size)[0]))]


def deribit_ticker(payload, others, inverse: bool, instrument) -> list[Row]:
    return [_ticker(payload, _sizes(payload, lambda price, size: base_and_quote(inverse, price, size)[0]), others)]


def binance_bar(payload, others, context, instrument) -> list[Row]:
    return [{"ts": _us(payload["open_ms"]), "open": float(payload["open"]), "high": float(payload["high"]),
             "low": float(payload["low"]), "close": float(payload["close"]), "volume": float(payload["volume"]),
             "amount": float(payload["quote_volume"]), "trades": int(payload["trade_count"])}]


def okx_bar(payload, others, context, instrument) -> list[Row]:
    candle = [str(payload["open_ms"]), payload["open"], payload["high"], payload["low"], payload["close"],
              payload["volume"], payload["volume_ccy"], payload["quote_volume"], "1"]
    return [_one(parse_candles({"code": "0", "data": [candle]}, instrument))]


def binance_liquidation(payload, others, context, instrument) -> list[Row]:
    filled = _num(payload["filled_quantity"]) or 0.0
    price = (_num(payload["average_price"]) or 0.0) if filled else 0.0
    price, quantity = (price, filled) if price > 0 else (float(payload["price"]), float(payload["quantity"]))
    side = str(payload["side"])
    if side not in ("buy", "sell"):
        raise ValueError(f"liquidation side {side!r}")
    return [{"ts": _us(payload["order_ms"]), "liquidation_id": f"{payload['order_ms']}.{side.upper()}", "side": side,
             "price": price, "quantity": quantity, "amount": price * quantity}]


def okx_liquidation(payload, others, context, instrument) -> list[Row]:
    detail = {"side": payload["side"], "posSide": payload["position_side"], "bkPx": payload["price"],
              "sz": payload["quantity"], "bkLoss": payload.get("bankruptcy_loss"), "ts": str(payload["ts_ms"])}
    return [_one(parse_liquidations({"code": "0", "data": [{"instId": instrument, "details": [detail]}]}, instrument))]


def okx_open_interest(payload, others, context, instrument) -> list[Row]:
    row = [str(payload["ts_ms"]), payload["open_interest"], payload["open_interest_ccy"], payload["open_interest_usd"]]
    return [_one(parse_open_interest_history({"code": "0", "data": [row]}, instrument))]


def deribit_open_interest(payload, others, context, instrument) -> list[Row]:
    """Through the REST parser, with the mark price of the same ticker notification."""
    mark = others.get(MARK_PRICE, {}).get("mark_price")
    result = {"timestamp": payload["ts_ms"], "open_interest": float(payload["open_interest"]),
              "mark_price": None if mark is None else float(mark), "instrument_name": instrument}
    return [_one(parse_open_interest({"result": result}, instrument))]


def mark_row(payload, others, context, instrument) -> list[Row]:
    return [{"ts": _ts(payload), "mark_price": _num(payload.get("mark_price")),
             "index_price": _num(payload.get("index_price")), "funding_rate": None, "next_funding_time": None}]


def funding_row(payload, others, context, instrument) -> list[Row]:
    """The current rate and the settlement it is for (Binance `next_funding_ms`; OKX `funding_ms`)."""
    settles = payload.get("funding_ms", payload.get("next_funding_ms"))
    return [{"ts": _ts(payload), "mark_price": None, "index_price": None,
             "funding_rate": _num(payload.get("funding_rate")), "next_funding_time": _us(settles)}]


def own_messages(record: dict, venue: str) -> list[LiveMessage]:
    """The message of a record the collector landed itself (a `@book_top` snapshot: its payload as it
    was published, id `books.<venue>.<instrument>.<update id>`). ValueError/KeyError/TypeError: not one."""
    payload = json.loads(record["d"])
    instrument, update_id = str(payload["instrument"]), int(payload["update_id"])
    return [LiveMessage(BOOKS, instrument, f"{BOOKS}.{venue}.{instrument}.{update_id}", record["d"].encode(),
                        int(payload["event_ms"]) if payload.get("event_ms") is not None else None)]


def _book_ms(payload: dict) -> int:
    """The snapshot's time: its book's last update's exchange time, else when it was taken."""
    ms = payload.get("event_ms")
    return int(ms) if ms is not None else int(payload["recv_ns"]) // 1_000_000


def _book_rows(frame: pl.DataFrame) -> list[Row]:
    return frame.drop("venue", "instrument").with_columns(pl.col("ts").dt.epoch("us")).to_dicts()


def binance_book(payload, others, venue: str, instrument) -> list[Row]:
    body = {"lastUpdateId": payload["update_id"], "bids": payload["bids"], "asks": payload["asks"],
            "T": _book_ms(payload)}
    return _book_rows(parse_depth(body, instrument, None, venue=venue, stamp="T"))


def okx_book(payload, others, context, instrument) -> list[Row]:
    book = {"ts": str(_book_ms(payload)), "seqId": payload["update_id"],
            "bids": [[p, q, "0", "1"] for p, q, *_ in payload["bids"]],
            "asks": [[p, q, "0", "1"] for p, q, *_ in payload["asks"]]}
    return _book_rows(parse_books({"code": "0", "msg": "", "data": [book]}, instrument))


def deribit_book(payload, others, context, instrument) -> list[Row]:
    result = {"timestamp": _book_ms(payload), "change_id": payload["update_id"],
              "bids": [[float(p), float(q)] for p, q, *_ in payload["bids"]],
              "asks": [[float(p), float(q)] for p, q, *_ in payload["asks"]]}
    return _book_rows(parse_order_book({"jsonrpc": "2.0", "result": result}, instrument))


@dataclass(frozen=True)
class VenueDataset:
    """One venue's live `dataset`: its landing channels for an instrument (`{}`: the instrument as the
    channel spells it; no `{}`: one channel carries every instrument's), the protocol messages that
    make its rows (protocol dataset -> Mapper), and the context a mapper needs, made once a slice
    (`prepare(instrument)`: OKX's contract value, Deribit's inverse flag; a ValueError fails the slice)."""

    venue: str
    channels: tuple[str, ...]
    mappers: dict[str, Mapper]
    prepare: Callable[[str], Any] = lambda instrument: None
    lower: bool = False  # instruments upper-cased in keys, lower-cased in channels (Binance)
    carries: Callable[[str], bool] = lambda instrument: True  # which instruments a shared channel holds
    own_records: bool = False  # the channels hold the collector's own records (`own_messages`), not frames

    def channel_names(self, instrument: str) -> list[str]:
        name = instrument.lower() if self.lower else instrument
        return [c.format(name) for c in self.channels]

    def instrument_of(self, channel: str) -> str | None:
        """The instrument a channel is of (None: not this dataset's channel, or one of every instrument)."""
        for pattern in self.channels:
            head, found, tail = pattern.partition("{}")
            if found and channel.startswith(head) and channel.endswith(tail) and len(channel) > len(head) + len(tail):
                name = channel[len(head):len(channel) - len(tail)]
                return name.upper() if self.lower else name
        return None

    def shared_channels(self) -> list[str]:
        """Channels carrying every instrument's events (OKX `SWAP@liquidation-orders`)."""
        return [c for c in self.channels if "{}" not in c]


def _okx_sizer(instrument: str) -> ContractSizer:
    return ContractSizer(instrument)


def _deribit_size(instrument: str) -> float:
    """The contract size the REST open interest uses (`CONTRACT_SIZES`); ValueError if unknown."""
    size = contract_size(instrument)
    if size is None:
        raise ValueError(f"DERIBIT {instrument}: no contract size declared (sources/deribit/rest.py CONTRACT_SIZES): "
                         "its open interest cannot be counted in contracts")
    return size


_BINANCE_TICKERS = {TICKERS: binance_ticker}
_BINANCE_BARS = {BARS_1M: binance_bar}
_MARK_FUNDING = {MARK_PRICE: mark_row, FUNDING: funding_row}
_BOOK_TOP = (f"{{}}@{BOOK_TOP}",)  # sources/stream.py `book_top_channel`: where the collector lands them

# dataset -> venue -> VenueDataset
CHANNELS: dict[str, dict[str, VenueDataset]] = {
    TICKERS: {
        "BINANCE": VenueDataset("BINANCE", ("{}@bookTicker",), _BINANCE_TICKERS, lower=True),
        "BINANCE_UM": VenueDataset("BINANCE_UM", ("{}@bookTicker",), _BINANCE_TICKERS, lower=True),
        "OKX": VenueDataset("OKX", ("{}@tickers",), {TICKERS: okx_ticker}, _okx_sizer),
        "DERIBIT": VenueDataset("DERIBIT", ("ticker.{}.100ms",), {TICKERS: deribit_ticker}, is_inverse),
    },
    BARS_1M: {
        "BINANCE": VenueDataset("BINANCE", ("{}@kline_1m",), _BINANCE_BARS, lower=True),
        "BINANCE_UM": VenueDataset("BINANCE_UM", ("{}@kline_1m",), _BINANCE_BARS, lower=True),
        "OKX": VenueDataset("OKX", ("{}@candle1m",), {BARS_1M: okx_bar}, _okx_sizer),
    },
    LIQUIDATIONS: {
        "BINANCE_UM": VenueDataset("BINANCE_UM", ("!forceOrder@arr", "{}@forceOrder"),
                                   {LIQUIDATIONS: binance_liquidation}, lower=True),
        "OKX": VenueDataset("OKX", ("SWAP@liquidation-orders",), {LIQUIDATIONS: okx_liquidation}, _okx_sizer,
                            carries=is_swap),
    },
    OPEN_INTEREST: {
        "OKX": VenueDataset("OKX", ("{}@open-interest",), {OPEN_INTEREST: okx_open_interest}, _okx_sizer),
        "DERIBIT": VenueDataset("DERIBIT", ("ticker.{}.100ms",), {OPEN_INTEREST: deribit_open_interest},
                                _deribit_size),
    },
    BOOKS: {
        "BINANCE": VenueDataset("BINANCE", _BOOK_TOP, {BOOKS: binance_book}, lambda i: "BINANCE", lower=True,
                                own_records=True),
        "BINANCE_UM": VenueDataset("BINANCE_UM", _BOOK_TOP, {BOOKS: binance_book}, lambda i: "BINANCE_UM",
                                   lower=True, own_records=True),
        "OKX": VenueDataset("OKX", _BOOK_TOP, {BOOKS: okx_book}, own_records=True),
        "DERIBIT": VenueDataset("DERIBIT", _BOOK_TOP, {BOOKS: deribit_book}, own_records=True),
    },
    MARK_FUNDING: {
        "BINANCE_UM": VenueDataset("BINANCE_UM", ("{}@markPrice@1s", "!markPrice@arr@1s", "!markPrice@arr"),
                                   _MARK_FUNDING, lower=True),
        "OKX": VenueDataset("OKX", ("{}@mark-price", "{}@funding-rate"), _MARK_FUNDING),
        "DERIBIT": VenueDataset("DERIBIT", ("ticker.{}.100ms",), _MARK_FUNDING),
    },
}


def frame_payloads(messages: list[LiveMessage]) -> dict[str, dict]:
    """A frame's message payloads by protocol dataset (the first of each: what a mapper may look up)."""
    out: dict[str, dict] = {}
    for message in messages:
        out.setdefault(message.dataset, json.loads(message.payload))
    return out
