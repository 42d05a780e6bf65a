"""OKX v5 public WebSocket: the protocol as documented, the book's rules, as a `StreamProtocol`.

Follows OKX API v5, "WebSocket", "Order book channel" and "Public Data / Market Data WebSocket"
(check them before changing): trades, books (seqId chain, CRC32 checksum), tickers, 1-minute candles
(business endpoint), funding, mark price, open interest, liquidations. Frames, limits and ids:
docs/live-capture.md, "OKX (public WebSocket v5)".
"""

from __future__ import annotations

import json
import zlib
from typing import ClassVar

from marketdata_assets.core.http import Page
from marketdata_assets.datasets.instrument_service import InstrumentService
from marketdata_assets.datasets.normalized import (
    Bar,
    Funding,
    Liquidation,
    MarkPrice,
    OpenInterest,
    Ticker,
    Trade,
)
from marketdata_assets.sources.okx.client import OkxClient
from marketdata_assets.sources.okx.naming import is_derivative
from marketdata_assets.sources.okx.records import to_trades
from marketdata_assets.sources.okx.rest import (
    candle_bars,
    liquidation_details,
    open_interest,
    parse_books,
)
from marketdata_assets.sources.okx.units import ContractSizer
from marketdata_assets.sources.stream import (
    BARS_1M,
    BOOK_TOPS,
    BOOKS,
    FUNDING,
    LIQUIDATIONS,
    MARK_FUNDING,
    MARK_PRICE,
    OPEN_INTEREST,
    TICKERS,
    TRADES,
    ChainedBookSync,
    Frame,
    Keepalive,
    LiveMessage,
    RestSnapshots,
    SizedStream,
    StreamLimits,
    best_level,
    book_ms,
    frame_rows,
    json_text,
    record_message,
    trade_messages,
    venue_number,
)

VENUE = "OKX"
WS_URL = "wss://ws.okx.com/ws/v5/public"  # port 443: 8443 was reported retired for WebSockets on 2026-10-31
SERVICE_UPGRADE = (
    "64008"  # `{"event": "notice", "code": "64008"}`: this connection closes in ~30 s (an upgrade)
)
PUBLIC_PATH, BUSINESS_PATH = "/ws/v5/public", "/ws/v5/business"
CHECKSUM_LEVELS = 25
# channel -> dataset, in the order a connection subscribes them
CHANNEL_DATASET = {
    "trades": TRADES,
    "books": BOOKS,
    "tickers": TICKERS,
    "candle1m": BARS_1M,
    "funding-rate": FUNDING,
    "mark-price": MARK_PRICE,
    "open-interest": OPEN_INTEREST,
    "liquidation-orders": LIQUIDATIONS,
}
SWAP_ONLY, CONTRACTS_ONLY = {"funding-rate"}, {"mark-price", "open-interest"}
BY_TYPE = {"liquidation-orders"}  # subscribed by instType, not instId
BUSINESS = {"candle1m"}


def channel_name(instrument: str, channel: str) -> str:
    """The landing channel of an OKX channel of an instrument (or an instType): `<instId>@<channel>`."""
    return f"{instrument}@{channel}"


def split_channel(name: str) -> dict[str, str]:
    instrument, _, channel = name.rpartition("@")
    return {"channel": channel, "instType" if channel in BY_TYPE else "instId": instrument}


def is_swap(instrument: str) -> bool:
    return instrument.endswith("-SWAP")


def is_contract(instrument: str) -> bool:
    """A SWAP or a FUTURES (`BTC-USD-250328`); spot pairs have two parts."""
    return is_swap(instrument) or len(instrument.split("-")) == 3


def ticker_messages(data: list, instrument: str, recv_ns: int, sizer: ContractSizer) -> list[LiveMessage]:
    """Best bid/ask, sizes in base units (contracts x ctVal), and the last price."""

    def base(price: float, size: float) -> float:
        return sizer.base_and_quote(price, size)[0]

    return [
        record_message(
            TICKERS,
            VENUE,
            instrument,
            int(t["ts"]),
            int(t["ts"]),
            recv_ns,
            Ticker(
                *best_level(t["bidPx"], t["bidSz"], base),
                *best_level(t["askPx"], t["askSz"], base),
                last=venue_number(t.get("last")),
            ),
        )
        for t in data
    ]


def candle_messages(data: list, instrument: str, recv_ns: int, sizer: ContractSizer) -> list[LiveMessage]:
    """Closed bars (confirm "1") of a candle1m push, read as the REST pages are (`candle_bars`: volume in
    base units); the open bar's pushes: none."""
    bars = candle_bars(data, sizer, Page(VENUE, instrument))
    return [
        record_message(
            BARS_1M,
            VENUE,
            instrument,
            ts // 1000,
            ts // 1000 + 60_000,
            recv_ns,
            Bar(ts // 1000, *values, None),
        )
        for ts, *values in zip(*bars.values(), strict=True)
    ]


def funding_messages(
    data: list, instrument: str, recv_ns: int, warnings: dict | None = None
) -> list[LiveMessage]:
    """Each `funding-rate` entry: the current rate for the settlement at `fundingTime`. The fields OKX
    does not always send are optional: a missing `fundingRate` is null and counted
    (`warnings["funding_rate_missing"]`), never 0; a missing `fundingTime` null. Event time `ts`,
    else `fundingTime`."""
    out = []
    for f in data:
        ts = int(f.get("ts") or f["fundingTime"])
        rate = f.get("fundingRate")
        if rate in (None, "") and warnings is not None:
            warnings["funding_rate_missing"] = warnings.get("funding_rate_missing", 0) + 1
        funding = Funding(venue_number(rate), int(f["fundingTime"]) if f.get("fundingTime") else None)
        out.append(record_message(FUNDING, VENUE, instrument, ts, ts, recv_ns, funding))
    return out


def mark_price_messages(data: list, instrument: str, recv_ns: int, sizer=None) -> list[LiveMessage]:
    return [
        record_message(
            MARK_PRICE,
            VENUE,
            instrument,
            int(m["ts"]),
            int(m["ts"]),
            recv_ns,
            MarkPrice(venue_number(m["markPx"]), None),
        )
        for m in data
    ]


def open_interest_messages(
    data: list, instrument: str, recv_ns: int, sizer: ContractSizer
) -> list[LiveMessage]:
    """Each through the REST parser's `open_interest`: contracts, ctVal, base (`oiCcy`) and quote
    (`oiUsd`)."""
    out, ctx = [], Page(VENUE, instrument)
    for o in data:
        ts, *values = open_interest(o["ts"], o["oi"], o["oiCcy"], o.get("oiUsd"), sizer, ctx)
        out.append(
            record_message(
                OPEN_INTEREST, VENUE, instrument, ts // 1000, ts // 1000, recv_ns, OpenInterest(*values)
            )
        )
    return out


MESSAGES = {
    "tickers": ticker_messages,
    "candle1m": candle_messages,
    "mark-price": mark_price_messages,
    "open-interest": open_interest_messages,
}


def checksum(bids: list, asks: list, depth: int = CHECKSUM_LEVELS) -> int:
    """OKX's book checksum of the best `depth` levels of each side (best first, raw strings)."""
    parts: list[str] = []
    for k in range(depth):
        for side in (bids, asks):
            if k < len(side):
                parts.extend((str(side[k][0]), str(side[k][1])))
    value = zlib.crc32(":".join(parts).encode())
    return value - (1 << 32) if value >= 1 << 31 else value


def _optional_id(value) -> int | None:
    """A sequence id the push may leave out (None or "": absent)."""
    return None if value is None or value == "" else int(value)


class OkxBookSync(ChainedBookSync):
    """An OKX `books` channel: seqId/prevSeqId continuity and the checksum after every push."""

    def on_frame(self, frame: dict) -> str:
        """A push with `seqId`/`prevSeqId` is chained; one without them (the older format) is checked by
        its checksum alone, its `ts` standing for the update id."""
        (data,) = frame["data"]
        seq, prev = _optional_id(data.get("seqId")), _optional_id(data.get("prevSeqId"))
        if frame.get("action") == "snapshot":
            outcome = self.on_snapshot(int(data["ts"]) if seq is None else seq, data["bids"], data["asks"])
        elif seq is None or prev is None:
            if self.needs_snapshot:
                return "buffered"
            self.book.apply(
                max(int(data["ts"]), self.book.update_id) if seq is None else seq, data["bids"], data["asks"]
            )
            outcome = "applied"
        else:
            outcome = self.on_update(prev, seq, data["bids"], data["asks"])
        expected = int(data.get("checksum") or 0)
        if outcome in ("snapshot", "applied") and expected != 0:
            got = checksum(*self.book.top(CHECKSUM_LEVELS))
            if got != expected:
                self.drop(seq=seq, expected_checksum=expected, got_checksum=got)
                return "mismatch"
        return outcome


class OkxStream(SizedStream):
    """OKX's public (and business: candles) channels as a `StreamProtocol` (sources/stream.py)."""

    venue = VENUE
    ws_url = WS_URL
    limits = StreamLimits(
        max_channels=480,
        control_per_s=1,
        connections_per_window=3,
        window_s=1.0,
        lifetime_s=None,
        url_channels=0,
        subscribe_batch=50,
        control_per_hour=480,
    )
    keepalive = Keepalive("ping", 20.0)
    rest_snapshots = False
    stale_s = 10.0  # a quiet book is kept talking by our pings (at stale_s / 2)

    live_source = "OKX_LIVE"
    data_prefix = '{"arg":'  # a push; subscribe acks, errors and notices are {"event":...}
    trade_marks = ('"channel":"trades',)  # {"arg":{"channel":"trades",...} (and trades-all)
    default_instruments = ("BTC-USDT", "ETH-USDT")
    trade_channel_format, book_channel_format, lower_channels = "{}@trades", "{}@books", False
    landed: ClassVar[dict] = {
        TICKERS: ("{}@tickers",),
        BARS_1M: ("{}@candle1m",),
        LIQUIDATIONS: ("SWAP@liquidation-orders",),
        OPEN_INTEREST: ("{}@open-interest",),
        MARK_FUNDING: ("{}@mark-price", "{}@funding-rate"),
        BOOKS: (BOOK_TOPS,),
    }
    shared_carries: ClassVar[dict] = {"SWAP@liquidation-orders": is_swap}  # every perpetual's

    def __init__(self, datasets=None, instrument_service: InstrumentService | None = None):
        self.supported = tuple(CHANNEL_DATASET.values())
        # `warnings`: fields the venue left out, filled with null (the stats); `sized`: ContractSizers
        super().__init__(datasets, instrument_service)

    def contracts(self, instruments: list[str]) -> list[str]:
        """The contracts (a listing request per instrument type, an option's per family): spot pairs,
        BASE-QUOTE, need no contract value."""
        return [name for name in instruments if name.count("-") != 1]

    def channels(self, instruments: list[str], depth_speed_ms: int) -> list[str]:
        kinds = [kind for kind, dataset in CHANNEL_DATASET.items() if dataset in self.datasets]
        out = [
            channel_name(name, kind)
            for name in instruments
            for kind in kinds
            if kind not in BY_TYPE
            and (kind not in SWAP_ONLY or is_swap(name))
            and (kind not in CONTRACTS_ONLY or is_contract(name))
        ]
        if "liquidation-orders" in kinds and any(is_swap(name) for name in instruments):
            out.append(channel_name("SWAP", "liquidation-orders"))
        return out

    def endpoint(self, channel: str) -> str:
        return "business" if channel.rpartition("@")[2] in BUSINESS else ""

    def endpoint_url(self, base: str, endpoint: str) -> str:
        return base.replace(PUBLIC_PATH, BUSINESS_PATH) if endpoint == "business" else base

    def _request(self, op: str, channels: list[str], request_id: int) -> str:
        return json_text({"id": str(request_id), "op": op, "args": [split_channel(c) for c in channels]})

    def subscribe_messages(
        self, channels: list[str], first_id: int, op: str = "subscribe"
    ) -> list[tuple[int, str]]:
        step = self.limits.subscribe_batch
        return [
            (first_id + k, self._request(op, channels[i : i + step], first_id + k))
            for k, i in enumerate(range(0, len(channels), step))
        ]

    def unsubscribe_messages(self, channels: list[str], first_id: int) -> list[tuple[int, str]]:
        return self.subscribe_messages(channels, first_id, "unsubscribe")

    def resubscribe_messages(self, channel: str, first_id: int) -> list[tuple[int, str]]:
        return [
            (first_id, self._request("unsubscribe", [channel], first_id)),
            (first_id + 1, self._request("subscribe", [channel], first_id + 1)),
        ]

    def with_id(self, text: str, request_id: int) -> str:
        return json_text({**json.loads(text), "id": str(request_id)})

    def decode(self, text: str) -> Frame:
        if text == "pong":
            return Frame("control")
        frame = json.loads(text)
        if not isinstance(frame, dict):
            return Frame("unknown")
        request_id = frame.get("id")
        request_id = int(request_id) if isinstance(request_id, str) and request_id.isdigit() else request_id
        event = frame.get("event")
        if event == "error":  # the venue's whole error object: code, msg, connId
            return Frame("error", request_id=request_id, error=json_text(frame), code=str(frame.get("code")))
        if event in ("subscribe", "unsubscribe"):
            return Frame("ack", request_id=request_id, data=frame.get("arg"))
        if event == "notice" and str(frame.get("code")) == SERVICE_UPGRADE:
            return Frame("notice", error=f"{frame.get('code')}: {frame.get('msg')}")
        arg = frame.get("arg")
        if isinstance(arg, dict) and "data" in frame:
            instrument, kind = str(arg.get("instId") or arg.get("instType")), str(arg.get("channel"))
            return Frame(
                "event",
                channel_name(instrument, kind),
                CHANNEL_DATASET.get(kind),
                instrument,
                frame if kind == "books" else frame["data"],
            )
        return Frame("control" if event else "unknown")

    def new_book(self, instrument: str) -> OkxBookSync:
        return OkxBookSync(instrument)

    def messages(self, frame: Frame, recv_ns: int) -> list[LiveMessage]:
        kind = frame.channel.rpartition("@")[2]
        if kind == "trades":
            return trade_messages(self.trades(frame, recv_ns))
        if kind == "funding-rate":
            return funding_messages(frame.data, frame.instrument, recv_ns, self.warnings)
        if kind == "liquidation-orders":
            return self.liquidation_messages(frame.data, recv_ns)
        if kind == "mark-price":  # a price: no size to read, so never refused for want of a contract value
            return mark_price_messages(frame.data, frame.instrument, recv_ns)
        return MESSAGES[kind](frame.data, frame.instrument, recv_ns, self.sizer(frame.instrument))

    def liquidation_messages(self, data: list, recv_ns: int) -> list[LiveMessage]:
        """Each detail of each contract's entry, under the contract's instId, read as the REST pages are
        (`liquidation_details`: base quantity, OKX's id-less key)."""
        out = []
        for entry in data:
            instrument = str(entry["instId"])
            sizer, ctx = self.sizer(instrument), Page(VENUE, instrument)
            details = entry["details"]
            cols = liquidation_details(details, sizer, ctx, lambda i: "liquidation")
            for detail, ts, key, side, _, base, amount in zip(details, *list(cols.values())[:6], strict=True):
                record = Liquidation(key, side, venue_number(detail["bkPx"]), base, amount)
                out.append(record_message(LIQUIDATIONS, VENUE, instrument, key, ts // 1000, recv_ns, record))
        return out

    def trades(self, frame: Frame, recv_ns: int = 0) -> list[Trade]:
        """A `trades` push read as the REST pages are (`to_trades`), sizes in base units (x ctVal)."""
        instrument, ctx = frame.instrument, Page(VENUE, frame.instrument)
        if not isinstance(frame.data, list):
            raise ctx.error(f"trades push data is {type(frame.data).__name__}, not an array")
        sizer = self.sizer(instrument)
        return to_trades(frame.data, instrument, sizer, ctx, recv_ns=recv_ns)

    def sizer(self, instrument: str) -> ContractSizer:
        """The instrument's contract sizing by the service (kept: one lookup a frame is enough);
        SourceDataError if the venue does not know its contract value (or the lookup failed: asked again by a
        later frame)."""
        return self.sizing(instrument, lambda known: ContractSizer(instrument, known))

    def version(self, instrument: str):
        """The service's version of a contract valid at the hour read (None for spot)."""
        return super().version(instrument) if is_derivative(instrument) else None

    def book_time_ms(self, frame: object) -> int | None:
        """A books push's `ts` (its one data entry)."""
        data = frame.get("data") if isinstance(frame, dict) else None
        ts = data[0].get("ts") if isinstance(data, list) and data and isinstance(data[0], dict) else None
        return int(ts) if ts is not None else None

    def repair_source(self, rest_url: str) -> RestSnapshots:
        """`/api/v5/market/books` (400 levels at most), the body as sent. OKX's REST books carry no
        seqId, only `ts`: the snapshot is the book at that time."""
        client = OkxClient(rest_url)
        return RestSnapshots(client, client.books_body)

    def book_rows(self, payload: dict, instrument: str) -> list[dict]:
        """Through the REST books parser: sizes in base units (contracts x ctVal)."""
        book = {
            "ts": str(book_ms(payload)),
            "seqId": payload["update_id"],
            "bids": [[p, q, "0", "1"] for p, q, *_ in payload["bids"]],
            "asks": [[p, q, "0", "1"] for p, q, *_ in payload["asks"]],
        }
        known = self.version(instrument)
        return frame_rows(parse_books({"code": "0", "msg": "", "data": [book]}, instrument, reference=known))

    def check(self, dataset: str, instrument: str) -> None:
        """Sizes need the contract value of a contract (SourceDataError if undeclared)."""
        if dataset != MARK_FUNDING:
            self.sizer(instrument)
