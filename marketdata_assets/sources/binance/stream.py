"""Binance spot WebSocket market streams: the protocol as documented, and the book's sync rules.

Follows binance-spot-api-docs, web-socket-streams.md (check it before changing): `BinanceSpotStream`
and its local book, `DepthSync`; frames are kept raw, read only as far as the book and the messages
need. Frames, limits, sync rules and ids: docs/live-capture.md, "Binance spot".
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass
from typing import Any, ClassVar

import msgspec
import orjson

from marketdata_assets.core.http import Page
from marketdata_assets.datasets.declared import check, one_of, records_of
from marketdata_assets.datasets.normalized import AggregateTrade, Bar, Ticker, Trade
from marketdata_assets.datasets.order_book import OrderBook
from marketdata_assets.sources.binance.client import BinanceClient
from marketdata_assets.sources.binance.combined import BinanceFrames, typed_event
from marketdata_assets.sources.binance.records import (
    TRADE_EVENT_RULES,
    AggTrade,
    DepthEvent,
    DepthFrame,
    TradeEvent,
    TradeFrame,
    agg_to_trades,
    defer_sides,
    events_to_trades,
)
from marketdata_assets.sources.binance.rest import parse_depth
from marketdata_assets.sources.stream import (
    AGG_TRADES,
    BARS_1M,
    BOOK_TOPS,
    BOOKS,
    TICKERS,
    TRADES,
    Frame,
    LiveMessage,
    RestSnapshots,
    best_level,
    book_ms,
    enabled,
    frame_rows,
    read_trade_frames,
    record_message,
    trade_messages,
    venue_number,
)
from marketdata_assets.sources.stream import StreamLimits as ChannelLimits

VENUE = "BINANCE"
WS_URL = "wss://stream.binance.com:9443"


@dataclass(frozen=True)
class StreamLimits:
    max_streams: int = 1024  # streams per connection
    control_per_s: int = 5  # incoming messages per second per connection (ping, pong, JSON control)
    connections_per_5min: int = 300  # connection attempts per IP
    lifetime_s: float = 86_400.0  # a connection is cut at 24 h
    ping_interval_s: float = 20.0  # the server's pings
    pong_timeout_s: float = 60.0  # its patience for our pong


LIMITS = StreamLimits()
SUBSCRIBE_BATCH = 100  # streams per SUBSCRIBE message (Binance documents no cap; small frames, quick acks)
URL_STREAMS = 100  # streams named in the connection URL; the rest are subscribed by messages


def trade_stream(instrument: str) -> str:
    return f"{instrument.lower()}@trade"


def depth_stream(instrument: str, speed_ms: int = 100) -> str:
    return f"{instrument.lower()}@depth@{speed_ms}ms" if speed_ms != 1000 else f"{instrument.lower()}@depth"


def stream_kind(stream: str) -> tuple[str, str]:
    """(instrument as the REST API spells it, kind: trade | depth | ...) of a stream name."""
    instrument, _, rest = stream.partition("@")
    return instrument.upper(), rest.split("@", 1)[0]


def plan_connections(streams: list[str], max_streams: int = LIMITS.max_streams) -> list[list[str]]:
    """Streams split over connections, at most `max_streams` each (in order, no repeats)."""
    unique = list(dict.fromkeys(streams))
    return [unique[i : i + max_streams] for i in range(0, len(unique), max_streams)] or [[]]


def combined_url(base: str, named: list[str]) -> str:
    """The combined-stream URL naming `named` streams (the others: `subscribe_messages`)."""
    return f"{base.rstrip('/')}/stream" + (f"?streams={'/'.join(named)}" if named else "")


def subscribe_messages(streams: list[str], first_id: int, method: str = "SUBSCRIBE") -> list[tuple[int, str]]:
    """(id, text) of the control messages subscribing `streams`, `SUBSCRIBE_BATCH` at a time."""
    out = []
    for k, start in enumerate(range(0, len(streams), SUBSCRIBE_BATCH)):
        message_id = first_id + k
        out.append(
            (
                message_id,
                json.dumps(
                    {"method": method, "params": streams[start : start + SUBSCRIBE_BATCH], "id": message_id},
                    separators=(",", ":"),
                ),
            )
        )
    return out


@dataclass
class Classified:
    """What a decoded frame is by its shape: an event of a stream, an ack, an error, or something else."""

    kind: str  # event | ack | error | unknown
    stream: str | None = None
    data: Any = None
    request_id: Any = None
    error: str | None = None
    code: str | None = None


def classify(frame: Any) -> Classified:
    """A decoded combined-stream frame, by shape (no model object)."""
    if isinstance(frame, dict):
        if "stream" in frame and "data" in frame:
            return Classified("event", str(frame["stream"]), frame["data"])
        if "error" in frame or ("code" in frame and "msg" in frame):  # the whole error object is kept
            body = frame.get("error", frame)
            code = str(body.get("code")) if isinstance(body, dict) else None
            return Classified(
                "error", request_id=frame.get("id"), error=json.dumps(body, separators=(",", ":")), code=code
            )
        if "result" in frame and "id" in frame:
            return Classified("ack", request_id=frame["id"], data=frame["result"])
    return Classified("unknown")


def trade_event(data: Any, instrument: str, venue: str = VENUE, recv_ns: int = 0) -> list[Trade]:
    """The trade of a `trade` event `{e, E, s, t, p, q, T, m}` (`TradeEvent`, or the decoded JSON of a frame
    not decoded as one, read into one): trade_id = seq = `t`, ts = `T` (ms, or µs if asked for), amount =
    price x quantity (the event has no quote quantity), side from `m` (the buyer was the maker: the taker
    sold), event time `E` (else the trade's). What does not read is a SourceDataError naming it."""
    page = Page(venue, instrument)
    event = data if data.__class__ is TradeEvent else records_of(TradeEvent, [data], _trade_name, page)[0]
    (trade,) = events_to_trades(venue, (instrument,), [event], [recv_ns])
    if trade is None:  # the rules it broke, told as the REST pages' are
        check({"m": [event.m], "T": [event.T]}, TRADE_EVENT_RULES, f"trade {event.t}", page)
    return [trade]


def _trade_name(i: int, data: Any) -> str:
    trade_id = data.get("t") if isinstance(data, dict) else None
    return f"trade {trade_id}" if type(trade_id) is int else "trade event"


def agg_trade_event(data: Any, instrument: str, venue: str = VENUE, recv_ns: int = 0) -> list[Trade]:
    """An `aggTrade` event read and checked as the REST aggTrades pages are (`AggTrade`, `agg_to_trades`):
    trade_id = seq = `a`, ts = `T`, amount = p x q, side from `m`; event time `E` (else the trade's)."""
    page = Page(venue, instrument)
    t = one_of(AggTrade, data, "aggTrade event", page)
    event_ms = data.get("E")
    event_ms = event_ms if isinstance(event_ms, int) else 0
    return agg_to_trades([t], venue, instrument, "aggTrade event (a={a})", page, [data], event_ms, recv_ns)


def agg_trade_message(data: Any, instrument: str, recv_ns: int, venue: str = VENUE) -> list[LiveMessage]:
    """A spot `aggTrade` event as the opt-in agg_trades dataset (the archives' aggTrades convention:
    trade_id = seq = the aggregate id `a`, ts = `T`), with the first and last individual trade ids `f`,
    `l`; id the aggregate id, at the event time `E`."""
    (trade,) = agg_trade_event(data, instrument, venue)
    first, last = data.get("f"), data.get("l")
    record = AggregateTrade(
        trade.ts_us,
        trade.trade_id,
        trade.price,
        trade.quantity,
        trade.amount,
        trade.side,
        trade.seq,
        first if type(first) is int else None,
        last if type(last) is int else None,
    )
    return [record_message(AGG_TRADES, venue, instrument, trade.seq, trade.event_ms, recv_ns, record)]


def book_ticker_message(data: dict, instrument: str, recv_ns: int, venue: str = VENUE) -> list[LiveMessage]:
    """A `bookTicker` event: the best bid and ask (base units), id the book's update id `u` (spot sends
    no event time: None; USD-M's `E`)."""
    event_ms = int(data["E"]) if "E" in data else None
    ticker = Ticker(*best_level(data["b"], data["B"]), *best_level(data["a"], data["A"]))
    return [record_message(TICKERS, venue, instrument, int(data["u"]), event_ms, recv_ns, ticker)]


def kline_message(data: dict, instrument: str, recv_ns: int, venue: str = VENUE) -> list[LiveMessage]:
    """A `kline` event: the bar when it has closed (`x` true), id its open time; nothing while open.
    Volume `v` (base), amount = quote volume `q`, trades `n`, as the REST klines' columns."""
    bar = data["k"]
    if not isinstance(bar["x"], bool):
        raise TypeError("kline x is not a boolean")
    if not bar["x"]:
        return []
    open_ms = int(bar["t"])
    record = Bar(open_ms, *(venue_number(bar[k]) for k in ("o", "h", "l", "c", "v", "q")), int(bar["n"]))
    return [record_message(BARS_1M, venue, instrument, open_ms, int(data["E"]), recv_ns, record)]


BUFFER_TAIL = 50  # events a book waiting for its snapshot keeps, the newest (a stale snapshot is taken again)


class DepthSync:
    """One instrument's book kept from a REST snapshot and `depthUpdate` events (see the module doc).

    `on_event` answers what became of an event: "buffered" (no snapshot yet), "applied", "old"
    (u <= the book's update id), or "gap" (the book is dropped: take a fresh snapshot). `on_snapshot`
    answers "synced" or "stale" (older than the first buffered event: take another). A gap stays
    one gap until the next snapshot (`needs_snapshot`), however many events arrive meanwhile.
    Waiting for its snapshot it keeps the last `BUFFER_TAIL` events only: the snapshot, taken when its
    request goes out, is newer than the tail's oldest event (at 100 ms, 5 s back), so the older ones
    would be dropped as old anyway; a book queued minutes for the REST budget holds a few KB, not minutes
    of decoded diffs for the cycle collector to scan (docs/live-capture.md, "The universe run")."""

    def __init__(self, instrument: str, buffer_limit: int = BUFFER_TAIL):
        self.instrument = instrument
        self.book = OrderBook()
        self.buffer: deque[tuple[int, int, list, list]] = deque(maxlen=buffer_limit)
        self.needs_snapshot = True
        self.last_gap: tuple[int, int] | None = None  # (expected U, got U) of the last gap

    def on_event(self, first: int, last: int, bids: list, asks: list) -> str:
        if self.needs_snapshot:
            self.buffer.append((first, last, bids, asks))
            return "buffered"
        current = self.book.update_id
        if last <= current:
            return "old"
        if first > current + 1:
            self._drop(current + 1, first)
            self.buffer.append((first, last, bids, asks))
            return "gap"
        defer_sides(self.book, last, bids, asks)
        return "applied"

    def on_snapshot(self, last_update_id: int, bids: list, asks: list) -> str:
        if self.buffer and last_update_id + 1 < self.buffer[0][0]:
            return "stale"
        self.book.reset(last_update_id, bids, asks)
        self.needs_snapshot = False
        pending = list(self.buffer)
        self.buffer.clear()
        for k, (first, last, b, a) in enumerate(pending):
            if self.on_event(first, last, b, a) == "gap":
                self.buffer.extend(pending[k + 1 :])
                return "gap"
        return "synced"

    def on_frame(self, data: Any) -> str:
        """`on_event` of a `depthUpdate` (a `DepthEvent`, or decoded JSON): the collector's entry point."""
        if data.__class__ is DepthEvent:  # nearly always: `on_event`'s common case here
            book = self.book
            if not self.needs_snapshot and data.U <= book.update_id + 1 < data.u + 1:
                defer_sides(book, data.u, data.b, data.a)
                return "applied"
            return self.on_event(data.U, data.u, data.b, data.a)
        return self.on_event(int(data["U"]), int(data["u"]), data["b"], data["a"])

    def on_snapshot_body(self, body: dict) -> str:
        """`on_snapshot` of a decoded REST `/api/v3/depth` answer."""
        return self.on_snapshot(int(body["lastUpdateId"]), body["bids"], body["asks"])

    def gap_details(self) -> dict:
        expected, got = self.last_gap or (None, None)
        return {"expected_first": expected, "got_first": got}

    def _drop(self, expected: int, got: int) -> None:
        self.last_gap = (expected, got)
        self.needs_snapshot = True
        self.book = OrderBook()
        self.buffer.clear()


def rest_depth(rest_url: str, client_class=BinanceClient) -> RestSnapshots:
    """REST depth snapshots for `DepthSync`; USD-M's through `BinanceFuturesClient` (`/fapi/v1/depth`)."""
    client = client_class(rest_url)
    return RestSnapshots(client, client.depth_body)


class BinanceSpotStream:
    """Binance spot as a `StreamProtocol` (sources/stream.py): the functions above, declared."""

    venue = VENUE
    ws_url = WS_URL
    # 3 of Binance's 5 incoming messages a second: room for our WebSocket ping and a pong in the same second
    limits = ChannelLimits(
        max_channels=LIMITS.max_streams,
        control_per_s=LIMITS.control_per_s - 2,
        connections_per_window=LIMITS.connections_per_5min,
        lifetime_s=LIMITS.lifetime_s,
        url_channels=URL_STREAMS,
        subscribe_batch=SUBSCRIBE_BATCH,
    )
    keepalive = None  # the server pings; the WebSocket library answers
    instrument_service = None  # sizes in base units: no reference data needed
    rest_snapshots = True
    stale_s = 10.0  # data every 100 ms; the server pings every 20 s
    live_source = "BINANCE_LIVE"
    data_prefix = '{"stream":'  # a combined stream's event; acks and errors are {"result"/"error",...,"id"}
    trade_marks = ('@trade"', '@aggTrade"')  # {"stream":"btcusdt@trade","data":...}
    default_instruments = ("BTCUSDT", "ETHUSDT")
    trade_channel_format, book_channel_format, lower_channels = "{}@trade", "{}@depth", True
    landed: ClassVar[dict] = {
        TICKERS: ("{}@bookTicker",),
        BARS_1M: ("{}@kline_1m",),
        BOOKS: (BOOK_TOPS,),
        AGG_TRADES: ("{}@aggTrade",),
    }
    shared_carries: ClassVar[dict] = {}
    # stream kind -> (dataset, the stream's name after the instrument, its messages); agg_trades is opt-in
    KINDS: ClassVar[dict] = {
        "trade": (TRADES, "trade", trade_event),
        "depth": (BOOKS, None, None),
        "bookTicker": (TICKERS, "bookTicker", book_ticker_message),
        "kline_1m": (BARS_1M, "kline_1m", kline_message),
        "aggTrade": (AGG_TRADES, "aggTrade", agg_trade_message),
    }
    TYPED: ClassVar[dict] = {
        "trade": msgspec.json.Decoder(TradeFrame, strict=False),  # stream kind -> its frames' decoder
        "depth": msgspec.json.Decoder(DepthFrame),
    }

    def __init__(self, datasets=None):
        self.supported = tuple(dict.fromkeys(d for d, _, _ in self.KINDS.values()))
        self.datasets = enabled(datasets, self.supported)
        self.streams_seen: dict[str, tuple[str, str | None, Any]] = {}  # stream name -> `_stream_of`
        # stream name -> (its frames' decoder, instrument, dataset, the name, its record), for streams whose
        # frames are declared (the name kept is the one every frame of it carries on: the landing's and the
        # books' tables, thousands of streams at a universe, find their key by identity, not by its
        # characters); only ever added to: the compiled reader remembers the entries it found by their
        # names' bytes
        self.typed_frames: dict[str, tuple[Any, str, str | None, str, type]] = {}
        # the compiled reader of those streams' trade and diff frames (None: every frame is decoded)
        self.frame_reader = BinanceFrames(self.typed_frames, DepthSync) if BinanceFrames is not None else None

    def channels(self, instruments: list[str], depth_speed_ms: int) -> list[str]:
        kinds = [kind for kind, (dataset, _, _) in self.KINDS.items() if dataset in self.datasets]
        return [
            depth_stream(name, depth_speed_ms) if kind == "depth" else f"{name.lower()}@{self.KINDS[kind][1]}"
            for name in instruments
            for kind in kinds
        ]

    def url(self, base: str, channels: list[str]) -> str:
        return combined_url(base, channels)

    def endpoint(self, channel: str) -> str:
        return ""

    def endpoint_url(self, base: str, endpoint: str) -> str:
        return base

    def subscribe_messages(self, channels: list[str], first_id: int) -> list[tuple[int, str]]:
        return subscribe_messages(channels, first_id) if channels else []

    def unsubscribe_messages(self, channels: list[str], first_id: int) -> list[tuple[int, str]]:
        return subscribe_messages(channels, first_id, "UNSUBSCRIBE") if channels else []

    def opening_messages(self, first_id: int) -> list[tuple[int, str]]:
        return []

    def resubscribe_messages(self, channel: str, first_id: int) -> list[tuple[int, str]]:
        return []  # books resync from REST

    def with_id(self, text: str, request_id: int) -> str:
        return json.dumps({**json.loads(text), "id": request_id}, separators=(",", ":"))

    def decode(self, text: str) -> Frame:
        frame = typed_event(text, self.typed_frames)  # a stream whose frames have a declared record
        if frame is not None:
            return frame
        # another stream, shape or types: any frame (orjson.JSONDecodeError is a ValueError, as json's)
        value = orjson.loads(text)
        if type(value) is dict and "stream" in value and "data" in value:  # a stream's event: the common case
            stream = str(value["stream"])
            known = self.streams_seen.get(stream) or self._stream_of(stream)
            return Frame("event", stream, known[1], known[0], value["data"])
        frame = classify(value)
        return Frame(
            frame.kind, request_id=frame.request_id, error=frame.error, data=frame.data, code=frame.code
        )

    def _stream_of(self, stream: str) -> tuple[str, str | None, Any]:
        """(instrument, dataset, reading) of a stream name, kept in `streams_seen` (a frame's look-up is
        one dict get); its frames' decoder into `typed_frames` if its kind has one."""
        instrument, kind = stream_kind(stream)
        dataset, _, reading = self.KINDS.get(kind, (None, None, None))
        known = self.streams_seen[stream] = (instrument, dataset, reading)
        if kind in self.TYPED:
            decoder = self.TYPED[kind]
            self.typed_frames[stream] = (decoder.decode, instrument, dataset, stream, decoder.type)
        return known

    def messages(self, frame: Frame, recv_ns: int) -> list[LiveMessage]:
        if frame.dataset == TRADES:
            return trade_messages(self.trades(frame, recv_ns))
        return self._reading(frame.channel)(frame.data, frame.instrument, recv_ns)

    def trades(self, frame: Frame, recv_ns: int = 0) -> list[Trade]:
        return self._reading(frame.channel)(frame.data, frame.instrument, recv_ns=recv_ns)

    def read_trades(
        self, frames: list[Frame], recvs: list[int], bad: list[tuple[Frame, Exception]]
    ) -> list[Trade]:
        """`trades` of many frames, in order (the collector's hot path): events decoded in their documented
        types read at once by `events_to_trades` (no other record between); a batch with another event, and an
        event it refuses, read by `trades` one frame at a time (a frame the checked reading refuses goes to
        `bad` with its error)."""
        try:
            records = events_to_trades(
                self.venue, [f.instrument for f in frames], [f.data for f in frames], recvs
            )
        except AttributeError:  # decoded JSON (no `p`): a frame not in the documented types
            return read_trade_frames(self, frames, recvs, bad)
        if None not in records:
            return records
        out: list[Trade] = []
        for frame, recv_ns, record in zip(frames, recvs, records, strict=True):
            if record is None:
                out += read_trade_frames(self, [frame], [recv_ns], bad)
            else:
                out.append(record)
        return out

    def _reading(self, stream: str):
        known = self.streams_seen.get(stream) or self._stream_of(stream)
        if known[2] is None:
            raise KeyError(f"no reading of stream {stream!r}")
        return known[2]

    def new_book(self, instrument: str) -> DepthSync:
        return DepthSync(instrument)

    def book_time_ms(self, data: Any) -> int | None:
        """A `depthUpdate`'s event time `E` (decoded JSON, or a declared depth event: spot's or USD-M's)."""
        if isinstance(data, dict):
            return int(data["E"]) if data.get("E") is not None else None
        return data.E

    def snapshot_source(self, rest_url: str) -> RestSnapshots:
        return rest_depth(rest_url)

    def repair_source(self, rest_url: str) -> RestSnapshots:
        return rest_depth(rest_url)

    def snapshot_channel(self, instrument: str) -> str:
        return f"{instrument.lower()}@depth_snapshot"

    def book_rows(self, payload: dict, instrument: str) -> list[dict]:
        """Through the REST depth parser (base units), stamped with the book's time."""
        body = {
            "lastUpdateId": payload["update_id"],
            "bids": payload["bids"],
            "asks": payload["asks"],
            "T": book_ms(payload),
        }
        return frame_rows(parse_depth(body, instrument, None, venue=self.venue, stamp="T"))

    def size_at(self, when) -> None:
        """Binance's sizes are in base units: nothing to size."""
        return

    def reference_ready(self, instruments: list[str]) -> int:
        """Binance's sizes are in base units: nothing to look up."""
        return 0

    def check(self, dataset: str, instrument: str) -> None:
        return None
