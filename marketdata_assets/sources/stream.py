"""What a venue's public WebSocket stream is to the live collector: one shape for every venue.

The streaming twin of `sources/interface.py`: a venue module declares a `StreamProtocol`, three smaller
interfaces in one: `StreamDeclaration` (URLs, channels, limits, request frames), `StreamParsing` (one decode
per frame, its messages, trades and books) and `StreamReference` (REST book snapshots, contract sizes from the
instrument provider); `ingest/live/collect/collector.py` runs any of them. What each declaration says,
message ids, raw frames: docs/live-capture.md, "The venue stream protocol" and "The collector".
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple, Protocol

import msgspec
import orjson
import polars as pl

from marketdata_assets.core.http import Page, SourceError
from marketdata_assets.datasets.frames import (
    AGG_TRADES_SPEC,
    BARS_SPEC,
    BOOKS_SPEC,
    FUNDING_SPEC,
    LIQUIDATIONS_SPEC,
    MARK_FUNDING_SPEC,
    OPEN_INTEREST_SPEC,
    TICKERS_SPEC,
    TRADES_SPEC,
)
from marketdata_assets.datasets.instrument_service import InstrumentService
from marketdata_assets.datasets.instruments import Instrument, LookupFailed
from marketdata_assets.datasets.normalized import Trade
from marketdata_assets.datasets.order_book import OrderBook
from marketdata_assets.datasets.trade_tape import ENCODE
from marketdata_assets.datasets.wire import book_frame

# The messages' datasets: the declared datasets' names (datasets.frames), and `mark_price`, whose messages
# are stored merged with the funding ones (MARK_FUNDING).
TRADES, BOOKS, TICKERS, BARS_1M = TRADES_SPEC.name, BOOKS_SPEC.name, TICKERS_SPEC.name, BARS_SPEC.name
FUNDING, LIQUIDATIONS, OPEN_INTEREST = FUNDING_SPEC.name, LIQUIDATIONS_SPEC.name, OPEN_INTEREST_SPEC.name
MARK_PRICE = "mark_price"
AGG_TRADES = AGG_TRADES_SPEC.name  # aggregate trades, where the venue streams them beside its individual ones
LIVE_DATASETS = (
    TRADES,
    BOOKS,
    TICKERS,
    BARS_1M,
    FUNDING,
    MARK_PRICE,
    LIQUIDATIONS,
    OPEN_INTEREST,
    AGG_TRADES,
)
DEFAULT_DATASETS = (TRADES, BOOKS, TICKERS)  # a venue's protocol collects these unless told otherwise
# collected only when named, even where "every dataset the venue has" is asked (`marketdata collect`):
# Binance spot's aggTrade repeats its trade stream's fills, aggregated
OPT_IN_DATASETS = (AGG_TRADES,)
MARK_FUNDING = (
    MARK_FUNDING_SPEC.name
)  # the stored dataset of the mark_price and funding messages (merged by time)
BOOK_TOPS = "{}@book_top"  # where the collector lands its own top-N book snapshots (`book_top_channel`)
# what a venue's frame reading raises on a frame it refuses (counted `malformed_<dataset>` / `bad_frame`)
MALFORMED = (SourceError, KeyError, TypeError, ValueError, IndexError, AttributeError)


class LiveMessage(NamedTuple):
    """One normalized message for JetStream: its dataset (the subject's), instrument, `Nats-Msg-Id`,
    the JSON payload, and the venue's event time in ms (None: the venue sends none; the lag
    histogram leaves it out)."""

    dataset: str
    instrument: str
    msg_id: str
    payload: bytes
    event_ms: int | None


def live_message(
    dataset: str, venue: str, instrument: str, key: Any, event_ms: int | None, recv_ns: int, **fields: Any
) -> LiveMessage:
    """A non-trade message: id `<dataset>.<venue>.<instrument>.<key>`, payload `{venue, instrument,
    **fields, ts_ms (the event time), recv_ns}`."""
    payload = {"venue": venue, "instrument": instrument, **fields, "ts_ms": event_ms, "recv_ns": recv_ns}
    return LiveMessage(
        dataset, instrument, f"{dataset}.{venue}.{instrument}.{key}", json_bytes(payload), event_ms
    )


def record_message(
    dataset: str, venue: str, instrument: str, key: Any, event_ms: int | None, recv_ns: int, record: tuple
) -> LiveMessage:
    """The message of a normalized record (datasets/normalized.py): id `<dataset>.<venue>.<instrument>.<key>`,
    payload `{venue, instrument, **record, ts_ms (the event time), recv_ns}`."""
    return live_message(dataset, venue, instrument, key, event_ms, recv_ns, **record._asdict())


_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")


def venue_number(value: Any) -> Any:
    """A number the venue sent, for a record: its text kept (an orjson Fragment: written as the venue
    spelled it) when it is a JSON number's text, None for null or "", else the number; ValueError
    for what is not a number."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        if not _JSON_NUMBER.fullmatch(value):
            raise ValueError(f"{value!r} is not a number")
        return orjson.Fragment(value.encode())
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{value!r} is not a number")  # noqa: TRY004  ValueError is the contract
    return value


def best_level(
    price: Any, size: Any, sized: Callable[[float, float], float] | None = None
) -> tuple[Any, Any]:
    """A ticker's best (price, size): (None, None) for an empty side (no price, or 0); the size as the
    venue sent it (base units already), or `sized(price, size)` in base units (contracts, USD amounts)."""
    if price is None or price == "" or float(price) == 0:
        return None, None
    if size is None or size == "":
        return venue_number(price), None
    return venue_number(price), venue_number(size) if sized is None else sized(float(price), float(size))


def read_trade_frames(
    protocol: StreamProtocol, frames: list[Frame], recvs: list[int], bad: list[tuple[Frame, Exception]]
) -> list[Trade]:
    """The trades of trade frames (in order, each received at its `recvs` time) as message records,
    through `protocol.trades`, the one parse; a frame it refuses goes to `bad` with the error. A
    protocol's `read_trades` is this, or a faster reading of the same records (Binance's)."""
    records: list[Trade] = []
    for frame, recv_ns in zip(frames, recvs, strict=True):
        try:
            records += protocol.trades(frame, recv_ns)
        except MALFORMED as error:
            bad.append((frame, error))
    return records


def trade_messages(trades: list[Trade]) -> list[LiveMessage]:
    """A frame's trades as messages, one a trade: id `<venue>.<instrument>.<trade id>`, payload a
    `Trade` (the collector publishes them in batches: datasets/trade_tape.py `trade_batch`)."""
    return [
        LiveMessage(TRADES, t.instrument, f"{t.venue}.{t.instrument}.{t.trade_id}", ENCODE(t), t.event_ms)
        for t in trades
    ]


def json_bytes(value: Any) -> bytes:
    """Compact JSON as bytes, a message's payload: orjson (~0.3 µs for a trade, json's ~4 µs), copied to
    its own size, because the bytes orjson returns keep its 4 KB working buffer (tracemalloc: 4,097 B
    for a 223-byte payload; a full publish buffer of 200,000 messages held ~850 MB instead of ~60)."""
    return bytes(memoryview(orjson.dumps(value)))


def enabled(datasets, supported: tuple[str, ...]) -> tuple[str, ...]:
    """The datasets a protocol collects: `datasets` (None: those of `DEFAULT_DATASETS` it supports), in
    its order; ValueError on a name it does not support."""
    if datasets is None:  # the defaults a venue has (a venue without tickers collects the others)
        return tuple(d for d in supported if d in DEFAULT_DATASETS)
    chosen = tuple(datasets)
    unknown = [d for d in chosen if d not in supported]
    if unknown:
        raise ValueError(f"datasets {unknown} not collected live here (supported: {', '.join(supported)})")
    return tuple(d for d in supported if d in chosen)


@dataclass(frozen=True)
class StreamLimits:
    """A venue's documented limits on one IP's connections (each protocol says where they come from)."""

    max_channels: int  # channels (streams) per connection
    control_per_s: int  # control messages we send per second per connection (kept below the venue's)
    connections_per_window: int  # connection attempts per IP in `window_s`
    window_s: float = 300.0
    lifetime_s: float | None = None  # the venue cuts a connection after this long (Binance: 24 h)
    url_channels: int = 0  # channels named in the connection URL; the rest are subscribed by messages
    subscribe_batch: int = 100  # channels per subscribe message
    control_per_hour: int | None = None  # control messages per hour per connection (OKX: 480), None: no cap
    control_per_ip: bool = False  # `control_per_s` counts every connection's together (Deribit's credits)
    max_connections: int | None = None  # open connections per IP at most (Deribit: 32, HTTP included)


@dataclass(frozen=True)
class Keepalive:
    """A text frame sent when the connection has been quiet for `every_s` (OKX: "ping", answered
    "pong"; the venue closes a connection silent for 30 s)."""

    text: str
    every_s: float


class Frame(msgspec.Struct, gc=False):
    """What a decoded frame is (a Struct: built in C, one a frame; never in a reference cycle, so not
    tracked by the garbage collector). `kind`: event (data of a channel) |
    ack (a request accepted) | error (refused) | control (heartbeat, pong, ...: landed, nothing to do but
    maybe `reply`) |
    notice (the venue will close this connection soon: OKX's service-upgrade notice; the collector
    opens the next one first) | unknown. `channel` is the landing channel (None: the control channel)."""

    kind: str
    channel: str | None = None
    dataset: str | None = None  # BOOKS (kept by `BookSync`), another dataset (its `messages`), None: unknown
    instrument: str | None = None
    data: Any = None
    request_id: Any = None
    error: str | None = (
        None  # the venue's whole error object, as JSON text (code, message, data: what was refused)
    )
    code: str | None = None  # the venue's error code (counted by code; a rate-limit code backs off longer)
    reply: str | None = None  # a text to send back at once (Deribit's answer to test_request)


class BookSync(Protocol):
    """One instrument's book kept by the venue's rules.

    `on_frame(data)` answers: "buffered" (waiting for a snapshot), "snapshot" (the book was
    (re)built from a snapshot in the stream), "applied", "old" (a repeat, ignored), "gap" (a
    sequence break) or "mismatch" (a wrong checksum): on the last two the book is dropped and
    `needs_snapshot` set until the next snapshot (one gap, however many events come meanwhile);
    `gap_details()` says what broke. Venues whose snapshots come from REST also have
    `on_snapshot_body(body)`: "synced" | "stale" | "gap"."""

    book: OrderBook
    needs_snapshot: bool

    def on_frame(self, data: Any) -> str: ...

    def gap_details(self) -> dict: ...


class SnapshotSource(Protocol):
    """Where a REST book snapshot comes from; `fetch` answers the decoded body."""

    async def fetch(self, instrument: str, limit: int) -> dict: ...

    async def aclose(self) -> None: ...


class RestSnapshots:
    """A `SnapshotSource` from a venue's REST client and its book method (the body as sent): Binance's
    `depth_body` (a book's start and resync), OKX's `books_body` and Deribit's `order_book_body` (the
    gap-hour repair)."""

    def __init__(self, client, book_body: Callable[[str, int], Awaitable[dict]]):
        self.client, self.book_body = client, book_body

    async def fetch(self, instrument: str, limit: int) -> dict:
        return await self.book_body(instrument, limit)

    async def aclose(self) -> None:
        await self.client.aclose()


class StreamDeclaration(Protocol):
    """What a venue declares of its stream: its URLs, channels, limits and request frames (the collector's
    connections and subscriptions read only this)."""

    venue: str
    ws_url: str
    supported: tuple[str, ...]  # the datasets it can collect
    datasets: tuple[str, ...]  # those it collects (`enabled`)
    limits: StreamLimits
    keepalive: Keepalive | None
    rest_snapshots: bool  # True: books start from a REST snapshot (`snapshot_source`); False: from the stream
    stale_s: float  # the stale deadline to use: above the longest silence of a healthy connection
    live_source: str  # the ingest_log source of its live loads (`<VENUE>_LIVE`)
    data_prefix: str | None  # how a data frame begins (None: unknown, any frame may be shed when late)
    trade_marks: tuple[str, ...]  # what a trade frame holds near its start: shed after books and tops
    default_instruments: tuple[str, ...]  # collected when none are named (two majors)
    trade_channel_format: str  # an instrument's trade channel, `{}` the instrument as channels spell it
    book_channel_format: str  # the start of an instrument's book channels (depth / interval follow)
    lower_channels: bool  # channels spell instruments in lower case (Binance)
    landed: dict[str, tuple[str, ...]]  # stored dataset -> the landing channels its rows are read from
    # (`{}`: the instrument; none: a channel of every instrument's events); BOOKS: `BOOK_TOPS`
    shared_carries: dict[str, Callable[[str], bool]]  # a shared channel -> which instruments it carries

    def channels(self, instruments: list[str], depth_speed_ms: int) -> list[str]: ...

    def url(self, base: str, channels: list[str]) -> str: ...  # the URL naming `channels` (maybe none)

    def endpoint(
        self, channel: str
    ) -> str: ...  # "" unless the venue serves a channel elsewhere (OKX candles)

    def endpoint_url(self, base: str, endpoint: str) -> str: ...  # the base URL of an endpoint ("": `base`)

    def subscribe_messages(self, channels: list[str], first_id: int) -> list[tuple[int, str]]: ...

    def unsubscribe_messages(self, channels: list[str], first_id: int) -> list[tuple[int, str]]: ...

    def opening_messages(self, first_id: int) -> list[tuple[int, str]]: ...

    def resubscribe_messages(self, channel: str, first_id: int) -> list[tuple[int, str]]: ...

    def with_id(self, text: str, request_id: int) -> str: ...

    def snapshot_channel(
        self, instrument: str
    ) -> str: ...  # where REST snapshots land: `<instrument>@depth_snapshot`


class StreamParsing(Protocol):
    """How a venue's frames are read: one decode per frame, then its messages, trades, book and rows (the
    collector's processor, the landing reader and the hourly loads read only this)."""

    def decode(self, text: str) -> Frame: ...

    def new_book(self, instrument: str) -> BookSync: ...

    def messages(self, frame: Frame, recv_ns: int) -> list[LiveMessage]:
        """The normalized messages of an event frame (not a book's: those go to `BookSync`), maybe
        none (a kline not closed yet); KeyError/TypeError/ValueError on a malformed one."""

    def trades(self, frame: Frame, recv_ns: int = 0) -> list[Trade]:
        """The trades of a trade channel's event frame received at `recv_ns`, sized as the venue's REST
        parser sizes them (the one parse the messages, the landing reader and so the hourly loads share);
        SourceDataError (or KeyError/TypeError/ValueError) on a malformed one."""

    def read_trades(
        self, frames: list[Frame], recvs: list[int], bad: list[tuple[Frame, Exception]]
    ) -> list[Trade]:
        """The trades of one instrument's trade frames as message records (`read_trade_frames`: the
        same records as `trades`, each with its frame's receive time); refused frames into `bad`."""

    def book_time_ms(self, data: Any) -> int | None:
        """The venue's event time (ms) of a book event's data, if it says one."""

    def book_rows(self, payload: dict, instrument: str) -> list[dict]:
        """The stored rows (books table, `ts` epoch µs) of one of the collector's top-N snapshots,
        through the venue's REST book parser (its units)."""


class StreamReference(Protocol):
    """What a venue's stream needs from REST and the instrument provider: book snapshots, and the contract
    sizes of what it reads, point in time."""

    instrument_service: Any  # what sizes its contracts (datasets.instrument_service; None: sizes need none)

    def snapshot_source(self, rest_url: str) -> SnapshotSource | None: ...

    def repair_source(self, rest_url: str) -> SnapshotSource:
        """REST book snapshots as sent, landed raw at the hour boundary after an hour with a book gap."""

    def check(self, dataset: str, instrument: str) -> None:
        """Raise (naming the instrument) if the venue's rows of `dataset` cannot be made for it (a
        contract value or size its reference data does not know): the load of its slice fails at once."""

    def size_at(self, when: Any) -> None:
        """Contract sizes by the master's versions valid at `when` (a datetime; None: the latest): a landed
        frame re-read later is sized as when it was received."""

    def reference_ready(self, instruments: list[str]) -> int:
        """The contract sizes of `instruments` known before their first frame (one listing request per kind,
        not a lookup each); returns the versions learned."""


class StreamProtocol(StreamDeclaration, StreamParsing, StreamReference, Protocol):
    """A venue's stream, as the collector needs it: what it declares, how it parses, and what it needs
    from REST and the instrument provider (see the module doc)."""


class StreamBase:
    """What most venues' streams share, so a new venue declares only what is its own: its URL, limits,
    channel names, subscribe frames, `decode`, `trades`, `messages` and book rules (`new_book`; by
    default books come in the stream, chained by ids: `ChainedBookSync`, rebuilt by subscribing
    again). Defaults: JSON requests with an `id`, one URL for every channel, no opening messages, no
    keepalive of our own, no REST book snapshots or repair, books stored in base units as kept."""

    venue: str
    ws_url: str
    live_source: str
    supported: tuple[str, ...]
    data_prefix: str | None = None
    trade_marks: tuple[str, ...] = ()  # what a trade frame holds near its start (shed after books and tops)
    default_instruments: tuple[str, ...] = ()
    trade_channel_format = "{}@trades"
    book_channel_format = "{}@book"
    lower_channels = False
    landed: ClassVar[dict[str, tuple[str, ...]]] = {}
    shared_carries: ClassVar[dict[str, Callable[[str], bool]]] = {}
    limits = StreamLimits(max_channels=100, control_per_s=1, connections_per_window=10, window_s=60.0)
    keepalive: Keepalive | None = None
    instrument_service: Any = None  # a venue sized by its reference data: the service it was handed
    rest_snapshots = False
    stale_s = 10.0

    def __init__(self, datasets=None):
        self.datasets = enabled(datasets, self.supported)
        self.warnings: dict[str, int] = {}

    def url(self, base: str, channels: list[str]) -> str:
        return base

    def endpoint(self, channel: str) -> str:
        return ""

    def endpoint_url(self, base: str, endpoint: str) -> str:
        return base

    def opening_messages(self, first_id: int) -> list[tuple[int, str]]:
        return []

    def resubscribe_messages(self, channel: str, first_id: int) -> list[tuple[int, str]]:
        return self.subscribe_messages([channel], first_id)

    def with_id(self, text: str, request_id: int) -> str:
        return json_text({**json.loads(text), "id": request_id})

    def new_book(self, instrument: str) -> BookSync:
        return ChainedBookSync(instrument)

    def read_trades(
        self, frames: list[Frame], recvs: list[int], bad: list[tuple[Frame, Exception]]
    ) -> list[Trade]:
        return read_trade_frames(self, frames, recvs, bad)

    def snapshot_source(self, rest_url: str | None) -> None:
        return None

    def repair_source(self, rest_url: str) -> None:
        return None

    def book_time_ms(self, data: Any) -> int | None:
        ts = data.get("ts") if isinstance(data, dict) else None
        return int(ts) if ts is not None else None

    def snapshot_channel(self, instrument: str) -> str:
        return f"{instrument}@depth_snapshot"

    def book_rows(self, payload: dict, instrument: str) -> list[dict]:
        """The kept book's levels as they are (base units), at the book's time."""
        bids, asks = ([(float(p), float(q)) for p, q, *_ in payload[side]] for side in ("bids", "asks"))
        return frame_rows(
            book_frame(self.venue, instrument, book_ms(payload) * 1000, payload["update_id"], bids, asks)
        )

    def check(self, dataset: str, instrument: str) -> None:
        return None

    def size_at(self, when: Any) -> None:
        """Sizes by the reference data valid at `when` (a venue whose sizes need none: nothing)."""
        return

    def reference_ready(self, instruments: list[str]) -> int:
        """The reference data of `instruments` known before their first frame (a venue whose sizes need none:
        nothing); returns the versions learned."""
        return 0


class SizedStream(StreamBase):
    """A stream whose sizes come from the venue's reference data, point in time: the instrument service
    (the process's; None: one of its own), the versions valid at `size_at`'s time, and what each
    instrument's frames are sized by (`sized`), forgotten when the service learns versions or that time
    moves."""

    def __init__(self, datasets=None, instrument_service: InstrumentService | None = None):
        super().__init__(datasets)
        self.instrument_service = instrument_service or InstrumentService()
        self._as_of = None  # sizes by the versions valid then (`size_at`); None: the latest
        self.sized: dict[str, Any] = {}  # instrument -> what its frames are sized by, as of `_as_of`

    def contracts(self, instruments: list[str]) -> list[str]:
        """Those of `instruments` whose sizes need the reference data (default: all)."""
        return instruments

    def reference_ready(self, instruments: list[str]) -> int:
        """The sizes of `instruments` known before their first frame: the venue's listings for those the
        service never saw, not a lookup each; returns the versions learned (a listing that fails: they are
        looked up one by one later)."""
        learned = self.instrument_service.ready(self.venue, self.contracts(instruments))
        if learned:
            self.sized.clear()
        return learned

    def size_at(self, when: Any) -> None:
        """Size by the master's versions valid at `when` (None: the latest): a landing hour re-read later."""
        if when != self._as_of:
            self._as_of = when
            self.sized.clear()

    def version(self, instrument: str) -> Instrument | None:
        """The service's version of `instrument` valid at the hour read (None: the venue has none)."""
        return self.instrument_service.at(self.venue, instrument, self._as_of)

    def sizing(self, instrument: str, make: Callable[[Instrument | None], Any]) -> Any:
        """What `instrument`'s frames are sized by: `make` of its version, kept once made (a None is asked
        again by a later frame); a SourceDataError naming the instrument where its version cannot be had
        or read (a failed lookup too: asked again later)."""
        known = self.sized.get(instrument)
        if known is None:
            try:
                known = make(self.version(instrument))
            except (ValueError, SourceError, LookupFailed) as error:
                prefix = f"{self.venue} {instrument}: "
                raise Page(self.venue, instrument).error(str(error).removeprefix(prefix)) from None
            if known is not None:
                self.sized[instrument] = known
        return known


BOOK_TOP = "book_top"  # the landing channel kind of the collector's own top-N book snapshots


def book_ms(payload: dict) -> int:
    """A top-N snapshot's time: its book's last update's exchange time, else when it was taken."""
    ms = payload.get("event_ms")
    return int(ms) if ms is not None else int(payload["recv_ns"]) // 1_000_000


def frame_rows(frame) -> list[dict]:
    """A REST parser's frame as stored rows without venue and instrument, `ts` as epoch µs."""
    return frame.drop("venue", "instrument").with_columns(pl.col("ts").dt.epoch("us")).to_dicts()


def book_top_channel(protocol: StreamProtocol, instrument: str) -> str:
    """Where the collector lands its top-N snapshots of a book: `<instrument>@book_top`, the instrument
    spelled as the venue's channels spell it (beside `<instrument>@depth_snapshot`)."""
    return f"{protocol.snapshot_channel(instrument).rpartition('@')[0]}@{BOOK_TOP}"


def shared_channels(protocol: StreamProtocol) -> set[str]:
    """The channels carrying every instrument's events (`landed` entries naming no instrument: OKX
    `SWAP@liquidation-orders`, Binance USD-M `!forceOrder@arr`): one collector of a split carries them."""
    return {channel for channels in protocol.landed.values() for channel in channels if "{}" not in channel}


def plan_connections(channels: list[str], max_channels: int, endpoint=None) -> list[list[str]]:
    """Channels split over connections, at most `max_channels` each (in order, no repeats); with
    `endpoint(channel)`, channels of different endpoints never share a connection (OKX serves its
    candles on /ws/v5/business, the rest on /ws/v5/public)."""
    unique = list(dict.fromkeys(channels))
    groups: dict[str, list[str]] = {}
    for channel in unique:
        groups.setdefault(endpoint(channel) if endpoint else "", []).append(channel)
    return [
        group[i : i + max_channels] for group in groups.values() for i in range(0, len(group), max_channels)
    ] or [[]]


class ChainedBookSync:
    """A book whose snapshots come in the stream (after a subscribe) and whose every update names
    the id of the one before it (OKX `prevSeqId`/`seqId`, Deribit `prev_change_id`/`change_id`).

    - A snapshot (re)builds the book; from an overlapping connection, one not newer than the book
      is "old".
    - An update applies when its previous id is the book's id (its own id may equal it: no change;
      or be lower: the venue reset its sequence); one whose id is not newer than the book's is a
      repeat ("old"); anything else is a "gap": the book is dropped until the next snapshot, and
      the updates meanwhile are "buffered" (ignored: the snapshot has them).
    A venue adds its checks (OKX's checksum) through `drop`."""

    def __init__(self, instrument: str):
        self.instrument = instrument
        self.book = OrderBook()
        self.needs_snapshot = True
        self.last_gap: dict = {}

    def on_snapshot(self, update_id: int, bids, asks) -> str:
        if not self.needs_snapshot and update_id <= self.book.update_id:
            return "old"
        self.book.reset(update_id, bids, asks)
        self.needs_snapshot = False
        return "snapshot"

    def on_update(self, prev_id: int, update_id: int, bids, asks) -> str:
        if self.needs_snapshot:
            return "buffered"
        current = self.book.update_id
        if prev_id == current:
            self.book.apply(update_id, bids, asks)
            return "applied"
        if update_id <= current:
            return "old"
        self.drop(expected_prev=current, got_prev=prev_id, got=update_id)
        return "gap"

    def drop(self, **details) -> None:
        self.last_gap = details
        self.needs_snapshot = True
        self.book = OrderBook()

    def gap_details(self) -> dict:
        return dict(self.last_gap)


def json_text(value: Any) -> str:
    """Compact JSON, as every subscribe frame is sent."""
    return json.dumps(value, separators=(",", ":"))
