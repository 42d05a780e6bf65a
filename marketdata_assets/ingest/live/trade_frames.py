"""The trades in a live landing frame, per venue (ingest/live/load.py reads the files with these).

`LiveVenue`: a venue's trade channel <-> instrument, the ingest_log source of its live loads
(`BINANCE_LIVE`, `BINANCE_UM_LIVE`, `OKX_LIVE`, `DERIBIT_LIVE`: each joins its venue's trade-id sequence in
quality/continuity.py) and its frame parser (frame -> trade rows `(ts_us, trade_id, price, quantity,
amount, side, seq)`, or the reason the frame is discarded: `not_a_trade`, `other_instrument`,
`bad_frame`).

- Binance spot: the `trade` event `{e, E, s, t, p, q, T, m, M}` of a combined-stream wrapper
  `{"stream", "data"}` (a raw-stream frame without the wrapper too), read by `parse_trade` as the
  dump files are: trade_id = seq = `t`, ts = `T` (milliseconds on the wire: scaled by magnitude like
  every Binance time), price `p`, quantity `q`, amount = price x quantity (the event has no quote
  quantity, as aggTrades has none), side from `m` (the buyer was the maker: the taker sold).
- Binance USD-M (`BINANCE_UM`): the `aggTrade` event `{e, E, s, a, p, q, f, l, T, m}` (USD-M streams
  no individual trades), through the REST parser of aggTrades (`parse_agg_trades`): trade_id = seq
  = `a`, the ids `/fapi/v1/aggTrades?fromId=` answers, so the refill fills what the stream missed.
- OKX `trades` push `{arg: {channel, instId}, data: [...]}` and Deribit's `trades.<instrument>.<interval>`
  notification (`params.data: [...]`): the same trade objects as the REST answers, so they go through
  the REST parsers (sources/okx/rest.py `parse_history_trades`, sources/deribit/rest.py
  `parse_trade_page`): sizes in contracts and inverse amounts come out exactly as the REST loads
  store them.

Why a module of its own: what a frame means is venue knowledge the loader (files, slices, the
engine) does not need to hold, and the loader stays one concern.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import polars as pl

from marketdata_assets.core.http import SourceDataError
from marketdata_assets.sources.binance.rest import parse_agg_trades
from marketdata_assets.sources.deribit.rest import parse_trade_page
from marketdata_assets.sources.okx.rest import parse_history_trades

SOURCE = "BINANCE_LIVE"  # the ingest_log source of Binance's live loads (quality.continuity: individual trade ids)
VENUE = "BINANCE"


class BadTrade(ValueError):
    """A trade event with a missing or wrong field (counted as `bad_frame`)."""



def _ms_to_us(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise BadTrade(f"{name} is {value!r}, not an epoch time")
    return value * 1000 if value < 10**14 else value  # milliseconds (or microseconds if asked for)


def _positive(value: Any, name: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise BadTrade(f"{name} is {value!r}, not a number") from None
    if not number > 0 or number == float("inf"):
        raise BadTrade(f"{name} is {value!r}, not a positive number")
    return number


def parse_trade(data: dict) -> tuple:
    """(ts_us, trade_id, price, quantity, amount, side, seq) of a `trade` event; BadTrade if malformed."""
    trade_id = data.get("t")
    if isinstance(trade_id, bool) or not isinstance(trade_id, int) or trade_id < 0:
        raise BadTrade(f"t is {trade_id!r}, not a trade id")
    price, quantity = _positive(data.get("p"), "p"), _positive(data.get("q"), "q")
    maker = data.get("m")
    if not isinstance(maker, bool):
        raise BadTrade(f"m is {maker!r}, not true/false")
    return (_ms_to_us(data.get("T"), "T"), str(trade_id), price, quantity, price * quantity,
            "sell" if maker else "buy", trade_id)


def _binance_event(frame: Any, instrument: str, event: str) -> dict | str:
    """The `event` of `instrument` in a Binance frame (combined-stream wrapper or raw), or why not."""
    data = frame.get("data") if isinstance(frame, dict) and "stream" in frame else frame
    if not isinstance(data, dict) or data.get("e") != event:
        return "not_a_trade"
    if str(data.get("s", "")).upper() != instrument:
        return "other_instrument"
    return data


def binance_trades(frame: Any, instrument: str) -> list[tuple] | str:
    """The trade of a Binance `trade` frame (combined-stream wrapper or raw), or why it is discarded."""
    data = _binance_event(frame, instrument, "trade")
    if isinstance(data, str):
        return data
    try:
        return [parse_trade(data)]
    except BadTrade:
        return "bad_frame"


def binance_um_trades(frame: Any, instrument: str) -> list[tuple] | str:
    """The aggregate trade of a USD-M `aggTrade` frame (combined-stream wrapper or raw), through the
    REST parser of aggTrades, or why it is discarded."""
    data = _binance_event(frame, instrument, "aggTrade")
    if isinstance(data, str):
        return data
    try:
        return _rows(parse_agg_trades([data], instrument, venue="BINANCE_UM"))
    except (SourceDataError, ValueError, TypeError):
        return "bad_frame"


def _rows(parsed: pl.DataFrame) -> list[tuple]:
    """A REST parser's trades frame as (ts_us, trade_id, price, quantity, amount, side, seq) tuples."""
    return list(parsed.select(pl.col("ts").dt.epoch("us"), "trade_id", "price", "quantity", "amount", "side",
                              "seq").iter_rows())


def okx_trades(frame: Any, instrument: str) -> list[tuple] | str:
    """The trades of an OKX `trades` push `{arg: {channel, instId}, data: [...]}`, through the REST parser."""
    arg = frame.get("arg") if isinstance(frame, dict) else None
    if not isinstance(arg, dict) or arg.get("channel") != "trades" or "data" not in frame:
        return "not_a_trade"
    if arg.get("instId") != instrument:
        return "other_instrument"
    try:
        return _rows(parse_history_trades({"code": "0", "data": frame["data"]}, instrument))
    except (SourceDataError, ValueError, TypeError):
        return "bad_frame"


def deribit_trades(frame: Any, instrument: str) -> list[tuple] | str:
    """The trades of a Deribit `trades.<instrument>.<interval>` notification, through the REST parser."""
    params = frame.get("params") if isinstance(frame, dict) and frame.get("method") == "subscription" else None
    channel = str(params.get("channel", "")) if isinstance(params, dict) else ""
    if not channel.startswith("trades."):
        return "not_a_trade"
    if channel.partition(".")[2].rpartition(".")[0] != instrument:
        return "other_instrument"
    try:
        return _rows(parse_trade_page({"result": {"trades": params.get("data"), "has_more": False}}, instrument)[0])
    except (SourceDataError, ValueError, TypeError):
        return "bad_frame"


@dataclass(frozen=True)
class LiveVenue:
    """A venue's live trades as the loader reads them: landing channel <-> instrument, the ingest_log
    source of its loads, and the frame parser (frame -> trade rows, or the reason it is discarded)."""

    venue: str
    source: str
    channel_format: str  # the trade channel of an instrument
    channel_kind: Callable[[str], str | None]  # channel -> its instrument if it is a trade channel
    trades: Callable[[Any, str], list[tuple] | str]
    book_format: str  # the start of an instrument's book channel names (its depth/interval follows)
    upper: bool = False  # instruments upper-cased in keys, lower-cased in channels (Binance)

    def is_book_channel(self, channel: str, instrument: str) -> bool:
        start = self.book_format.format(instrument.lower() if self.upper else instrument)
        return channel.startswith(start) and not channel.endswith("_snapshot")

    def trade_channel(self, instrument: str) -> str:
        return self.channel_format.format(instrument.lower() if self.upper else instrument)

    def instrument_of_channel(self, channel: str) -> str | None:
        name = self.channel_kind(channel)
        return (name.upper() if self.upper else name) if name else None


def _at_kind(kind: str) -> Callable[[str], str | None]:
    def instrument(channel: str) -> str | None:
        name, _, found = channel.rpartition("@")
        return name if found == kind and name else None
    return instrument


def _deribit_instrument(channel: str) -> str | None:
    kind, _, rest = channel.partition(".")
    name = rest.rpartition(".")[0]
    return name if kind == "trades" and name else None


LIVE_VENUES = {
    "BINANCE": LiveVenue("BINANCE", SOURCE, "{}@trade", _at_kind("trade"), binance_trades, "{}@depth", upper=True),
    "BINANCE_UM": LiveVenue("BINANCE_UM", "BINANCE_UM_LIVE", "{}@aggTrade", _at_kind("aggTrade"), binance_um_trades,
                            "{}@depth", upper=True),
    "OKX": LiveVenue("OKX", "OKX_LIVE", "{}@trades", _at_kind("trades"), okx_trades, "{}@books"),
    "DERIBIT": LiveVenue("DERIBIT", "DERIBIT_LIVE", "trades.{}.100ms", _deribit_instrument, deribit_trades,
                         "book.{}."),
}
LIVE_SOURCES = {v.source: v.venue for v in LIVE_VENUES.values()}

