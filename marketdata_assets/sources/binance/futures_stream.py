"""Binance USD-M futures WebSocket market streams (venue BINANCE_UM): the protocol as documented, its
book's sync rule, as a `StreamProtocol` (spot's, sources/binance/stream.py, with USD-M's differences).

Follows developers.binance.com, derivatives/usds-margined-futures, "Websocket Market Streams" and the
stream pages (check them before changing). Frames, limits, the `pu` chain and ids:
docs/live-capture.md, "Binance USD-M futures (venue BINANCE_UM)".
"""

from __future__ import annotations

from collections import deque
from typing import Any, ClassVar

import msgspec

from marketdata_assets.datasets.normalized import Funding, Liquidation, MarkPrice, Trade
from marketdata_assets.datasets.order_book import OrderBook
from marketdata_assets.sources.binance.futures_client import BinanceFuturesClient
from marketdata_assets.sources.binance.records import UsdmDepthEvent, UsdmDepthFrame, defer_sides
from marketdata_assets.sources.binance.stream import (
    BUFFER_TAIL,
    LIMITS,
    SUBSCRIBE_BATCH,
    URL_STREAMS,
    BinanceSpotStream,
    book_ticker_message,
    kline_message,
    rest_depth,
)
from marketdata_assets.sources.binance.stream import (
    agg_trade_event as spot_agg_trade_event,
)
from marketdata_assets.sources.stream import (
    BARS_1M,
    BOOK_TOPS,
    BOOKS,
    FUNDING,
    LIQUIDATIONS,
    MARK_FUNDING,
    MARK_PRICE,
    TICKERS,
    TRADES,
    Frame,
    LiveMessage,
    RestSnapshots,
    StreamLimits,
    read_trade_frames,
    record_message,
    venue_number,
)

VENUE = "BINANCE_UM"
ALL_LIQUIDATIONS = "!forceOrder@arr"  # the all-market liquidation stream
ALL_MARKET = {"markPrice": MARK_PRICE, "forceOrder": LIQUIDATIONS}  # all-market stream kind -> dataset
WS_URL = "wss://fstream.binance.com"
INCOMING_PER_S = 10


def agg_trade_event(data: Any, instrument: str, recv_ns: int = 0) -> list[Trade]:
    """An `aggTrade` event: USD-M's trades (spot's reading, `stream.agg_trade_event`: trade_id = seq =
    `a`)."""
    return spot_agg_trade_event(data, instrument, VENUE, recv_ns)


def force_order_message(data: dict, instrument: str, recv_ns: int) -> list[LiveMessage]:
    """A `forceOrder` event: id `<T>.<S>` (the venue gives none), at the order's time `T`; price the
    average fill price `ap` and quantity the filled `z` (the order's `p` and `q` while nothing filled);
    order_price the order's own price `p` (as the archives' liquidationSnapshot `price`)."""
    order = data["o"]
    ts, side = int(order["T"]), str(order["S"])
    if side not in ("BUY", "SELL"):
        raise ValueError(f"liquidation side {side!r}")
    filled = float(order.get("z") or 0) > 0 and float(order.get("ap") or 0) > 0
    price, quantity = (order["ap"], order["z"]) if filled else (order["p"], order["q"])
    record = Liquidation(
        f"{ts}.{side}",
        side.lower(),
        venue_number(price),
        venue_number(quantity),
        float(price) * float(quantity),
        venue_number(order["p"]),
    )
    return [record_message(LIQUIDATIONS, VENUE, instrument, f"{ts}.{side}", ts, recv_ns, record)]


class UsdmDepthSync:
    """One USD-M book from a REST snapshot and `depthUpdate` events chained by `pu` (module doc).
    Answers as spot's `DepthSync`: "buffered", "applied", "old", "gap"; snapshots "synced" | "stale" |
    "gap"."""

    def __init__(self, instrument: str, buffer_limit: int = BUFFER_TAIL):
        self.instrument = instrument
        self.book = OrderBook()
        self.buffer: deque[tuple[int, int, int, list, list]] = deque(maxlen=buffer_limit)
        self.needs_snapshot = True
        self.chained = False  # an event was applied since the snapshot: the next must name it in `pu`
        self.last_gap: dict = {}

    def on_event(self, first: int, last: int, prev: int, bids: list, asks: list) -> str:
        if self.needs_snapshot:
            self.buffer.append((first, last, prev, bids, asks))
            return "buffered"
        current = self.book.update_id
        if last < current:  # documented: drop any event where u < lastUpdateId (u == it is the first one)
            return "old"
        # documented: the first event has U <= lastUpdateId <= u (or names it in pu), each next one pu == u
        broken = prev != current if self.chained else (prev != current and first > current)
        if broken:
            self.last_gap = {"expected_prev": current, "got_prev": prev, "got_first": first}
            self.needs_snapshot, self.chained, self.book = True, False, OrderBook()
            self.buffer.clear()
            self.buffer.append((first, last, prev, bids, asks))
            return "gap"
        defer_sides(self.book, last, bids, asks)
        self.chained = True
        return "applied"

    def on_snapshot(self, last_update_id: int, bids: list, asks: list) -> str:
        if self.buffer and self.buffer[0][0] > last_update_id and self.buffer[0][2] != last_update_id:
            return "stale"  # older than the first buffered event: no event can follow it (documented)
        self.book.reset(last_update_id, bids, asks)
        self.needs_snapshot, self.chained = False, False
        pending = list(self.buffer)
        self.buffer.clear()
        for k, event in enumerate(pending):
            if self.on_event(*event) == "gap":
                self.buffer.extend(pending[k + 1 :])
                return "gap"
        return "synced"

    def on_frame(self, data: Any) -> str:
        if data.__class__ is UsdmDepthEvent:
            return self.on_event(data.U, data.u, data.pu, data.b, data.a)
        return self.on_event(int(data["U"]), int(data["u"]), int(data["pu"]), data["b"], data["a"])

    def on_snapshot_body(self, body: dict) -> str:
        return self.on_snapshot(int(body["lastUpdateId"]), body["bids"], body["asks"])

    def gap_details(self) -> dict:
        return dict(self.last_gap)


class BinanceUsdmStream(BinanceSpotStream):
    """Binance USD-M futures as a `StreamProtocol`: spot's protocol over USD-M's URL, limits and streams."""

    venue = VENUE
    ws_url = WS_URL
    live_source = "BINANCE_UM_LIVE"
    trade_channel_format = "{}@aggTrade"
    landed: ClassVar[dict] = {
        TICKERS: ("{}@bookTicker",),
        BARS_1M: ("{}@kline_1m",),
        LIQUIDATIONS: (ALL_LIQUIDATIONS, "{}@forceOrder"),
        MARK_FUNDING: ("{}@markPrice@1s", "!markPrice@arr@1s", "!markPrice@arr"),
        BOOKS: (BOOK_TOPS,),
    }
    limits = StreamLimits(
        max_channels=1024,
        control_per_s=INCOMING_PER_S - 2,  # room for a ping and a pong
        connections_per_window=LIMITS.connections_per_5min,
        lifetime_s=86_400.0,
        url_channels=URL_STREAMS,
        subscribe_batch=SUBSCRIBE_BATCH,
    )
    KINDS: ClassVar[dict] = {
        "aggTrade": (TRADES, "aggTrade", agg_trade_event),
        "depth": (BOOKS, None, None),
        "bookTicker": (TICKERS, "bookTicker", lambda d, i, r: book_ticker_message(d, i, r, VENUE)),
        "kline_1m": (BARS_1M, "kline_1m", lambda d, i, r: kline_message(d, i, r, VENUE)),
        "markPrice": (MARK_PRICE, "markPrice@1s", None),
        "funding": (FUNDING, "markPrice@1s", None),
        "forceOrder": (LIQUIDATIONS, "forceOrder", force_order_message),
    }
    TYPED: ClassVar[dict] = {"depth": msgspec.json.Decoder(UsdmDepthFrame)}  # the others read as decoded JSON

    def channels(self, instruments: list[str], depth_speed_ms: int) -> list[str]:
        """Per instrument as spot's (markPrice once for mark and funding); liquidations from the
        all-market `!forceOrder@arr` (every symbol's, one channel: the per-symbol stream misses none
        of it and a universe would need a channel per symbol)."""
        out = [
            c
            for c in dict.fromkeys(super().channels(instruments, depth_speed_ms))
            if not c.endswith("@forceOrder")
        ]
        return out + [ALL_LIQUIDATIONS] if LIQUIDATIONS in self.datasets and instruments else out

    def decode(self, text: str) -> Frame:
        """Spot's reading, and the all-market streams (`!markPrice@arr[@1s]`: an array of every symbol's
        markPriceUpdate; `!forceOrder@arr`: one symbol's forceOrder a push), whose instrument is each
        event's own `s` (the frame's: "")."""
        frame = super().decode(text)
        if frame.kind == "event" and frame.channel.startswith("!"):
            kind = frame.channel[1:].split("@", 1)[0]
            return Frame("event", frame.channel, ALL_MARKET.get(kind), "", frame.data)
        return frame

    def read_trades(
        self, frames: list[Frame], recvs: list[int], bad: list[tuple[Frame, Exception]]
    ) -> list[Trade]:
        """Frame by frame through `trades` (`aggTrade` events: spot's straight reading is of `trade` ones)."""
        return read_trade_frames(self, frames, recvs, bad)

    def messages(self, frame, recv_ns: int) -> list[LiveMessage]:
        if frame.channel.startswith("!"):
            if frame.dataset == MARK_PRICE:
                return [
                    m
                    for event in frame.data
                    for m in self.mark_price_messages(event, str(event["s"]), recv_ns)
                ]
            return force_order_message(frame.data, str(frame.data["o"]["s"]), recv_ns)
        if frame.dataset == MARK_PRICE:
            return self.mark_price_messages(frame.data, frame.instrument, recv_ns)
        return super().messages(frame, recv_ns)

    def mark_price_messages(self, data: dict, instrument: str, recv_ns: int) -> list[LiveMessage]:
        """A `markPriceUpdate`: mark_price (mark `p`, index `i`) and funding (`r`, for the settlement at
        `T`), as enabled; a delivery contract's `r` and `T` are "" (no funding): no funding message."""
        event_ms, out = int(data["E"]), []
        if MARK_PRICE in self.datasets:
            out.append(
                record_message(
                    MARK_PRICE,
                    VENUE,
                    instrument,
                    event_ms,
                    event_ms,
                    recv_ns,
                    MarkPrice(venue_number(data["p"]), venue_number(data.get("i"))),  # `i`: added later,
                )
            )
        if FUNDING in self.datasets and data.get("r") not in (None, ""):
            funding = Funding(venue_number(data["r"]), int(data["T"]) if data.get("T") else None)
            out.append(record_message(FUNDING, VENUE, instrument, event_ms, event_ms, recv_ns, funding))
        return out

    def new_book(self, instrument: str) -> UsdmDepthSync:
        return UsdmDepthSync(instrument)

    def snapshot_source(self, rest_url: str) -> RestSnapshots:
        return rest_depth(rest_url, BinanceFuturesClient)

    def repair_source(self, rest_url: str) -> RestSnapshots:
        """`/fapi/v1/depth` (spot's repair would ask /api/v3/depth, which knows no USD-M symbol)."""
        return rest_depth(rest_url, BinanceFuturesClient)
