"""Deribit API v2 over WebSocket (JSON-RPC 2.0): the protocol as documented, the book's rules, as a
`StreamProtocol`.

Follows docs.deribit.com ("public/subscribe", "public/set_heartbeat", "public/test", the `book`,
`trades` and `ticker` channels; check them before changing). Frames, heartbeat, limits and ids:
docs/live-capture.md, "Deribit (API v2, JSON-RPC over WebSocket)".
"""

from __future__ import annotations

import json
from typing import ClassVar

from marketdata_assets.core.http import Page, SourceError
from marketdata_assets.datasets.instrument_service import InstrumentService
from marketdata_assets.datasets.instruments import LookupFailed
from marketdata_assets.datasets.normalized import Funding, MarkPrice, OpenInterest, Ticker, Trade
from marketdata_assets.sources.deribit.client import DeribitClient
from marketdata_assets.sources.deribit.naming import is_inverse
from marketdata_assets.sources.deribit.records import to_trades, trade_records
from marketdata_assets.sources.deribit.rest import open_interest_of, parse_order_book
from marketdata_assets.sources.deribit.units import base_and_quote, size_of
from marketdata_assets.sources.stream import (
    BOOK_TOPS,
    BOOKS,
    FUNDING,
    MARK_FUNDING,
    MARK_PRICE,
    OPEN_INTEREST,
    TICKERS,
    TRADES,
    ChainedBookSync,
    Frame,
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

VENUE = "DERIBIT"
WS_URL = "wss://www.deribit.com/ws/api/v2"
HEARTBEAT_S = 10  # the shortest interval Deribit allows
CHANNEL_DATASET = {"trades": TRADES, "book": BOOKS, "ticker": TICKERS}
TICKER_DATASETS = (TICKERS, MARK_PRICE, FUNDING, OPEN_INTEREST)  # what one `ticker` notification feeds


def ticker_messages(
    data: dict, instrument: str, recv_ns: int, datasets: tuple[str, ...], inverse: bool, size: float | None
) -> list[LiveMessage]:
    """The enabled datasets of one `ticker` notification, each keyed by its `timestamp`: tickers (sizes in
    base units: an inverse contract's USD amounts / price; with mark, index and the current funding),
    mark_price, funding (perpetuals: `current_funding` and the 8-hour `funding_8h`, continuous: no
    settlement time) and
    open_interest (through the REST parser's `open_interest_of`: contracts of `size`)."""
    ts = int(data["timestamp"])
    out = []
    if TICKERS in datasets:

        def base(price: float, amount: float) -> float:
            return base_and_quote(inverse, price, amount)[0]

        ticker = Ticker(
            *best_level(data["best_bid_price"], data["best_bid_amount"], base),
            *best_level(data["best_ask_price"], data["best_ask_amount"], base),
            venue_number(data.get("last_price")),
            venue_number(data.get("mark_price")),
            venue_number(data.get("index_price")),
            venue_number(data.get("current_funding")),
        )
        out.append(record_message(TICKERS, VENUE, instrument, ts, ts, recv_ns, ticker))
    if MARK_PRICE in datasets:
        mark = MarkPrice(venue_number(data["mark_price"]), venue_number(data["index_price"]))
        out.append(record_message(MARK_PRICE, VENUE, instrument, ts, ts, recv_ns, mark))
    if FUNDING in datasets and "current_funding" in data:
        out.append(
            record_message(
                FUNDING,
                VENUE,
                instrument,
                ts,
                ts,
                recv_ns,
                Funding(venue_number(data["current_funding"]), None, venue_number(data.get("funding_8h"))),
            )
        )
    if OPEN_INTEREST in datasets and size is not None:
        _, *values = open_interest_of(data, size, inverse, Page(VENUE, instrument))
        out.append(record_message(OPEN_INTEREST, VENUE, instrument, ts, ts, recv_ns, OpenInterest(*values)))
    return out


def rpc(request_id: int, method: str, params: dict) -> str:
    return json_text({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})


def levels(entries: list) -> list[tuple[str, str]]:
    """[action, price, amount] entries as (price, size) strings, "0" for a delete; a grouped book's
    [price, amount] pairs as they are."""
    return [
        (str(e[0]), str(e[1])) if len(e) == 2 else (str(e[1]), "0" if e[0] == "delete" else str(e[2]))
        for e in entries
    ]


class DeribitBookSync(ChainedBookSync):
    """A Deribit book channel: `book.<instrument>.<interval>` (a snapshot, then changes chained by
    change_id / prev_change_id), or the grouped `book.<instrument>.<group>.<depth>.<interval>`, whose
    every notification is the whole top `depth` (no type, no prev_change_id): each replaces the book."""

    def on_frame(self, data: dict) -> str:
        change_id = int(data["change_id"])
        bids, asks = levels(data["bids"]), levels(data["asks"])
        kind = data.get("type")
        if kind is None:  # grouped: a full book each time
            first = self.needs_snapshot
            if not first and change_id < self.book.update_id:
                return "old"
            self.book.reset(change_id, bids, asks)
            self.needs_snapshot = False
            return "snapshot" if first else "applied"
        if kind == "snapshot":
            return self.on_snapshot(change_id, bids, asks)
        return self.on_update(int(data["prev_change_id"]), change_id, bids, asks)


class DeribitStream(SizedStream):
    """Deribit public trades, books and tickers as a `StreamProtocol` (sources/stream.py)."""

    venue = VENUE
    ws_url = WS_URL
    # public/subscribe: ~3.3 requests a second sustained (3,000 credits each of 30,000), per IP, every
    # connection's together; 32 connections per IP, HTTP requests included (docs.deribit.com, "Rate Limits",
    # "public/subscribe", "Connection Management"); no cap on channels a connection is documented
    limits = StreamLimits(
        max_channels=500,
        control_per_s=3,
        connections_per_window=10,
        window_s=60.0,
        lifetime_s=None,
        url_channels=0,
        subscribe_batch=100,
        control_per_ip=True,
        max_connections=30,
    )
    keepalive = None  # the server's heartbeat (set at the start), answered in `decode`
    rest_snapshots = False
    stale_s = 15.0  # the heartbeat (10 s) is the least a quiet connection carries

    live_source = "DERIBIT_LIVE"
    data_prefix = (
        '{"jsonrpc":"2.0","method":"subscription"'  # a notification; replies carry an id, heartbeats
    )
    trade_marks = ('"channel":"trades.',)  # {...,"params":{"channel":"trades.BTC-PERPETUAL.100ms",...}
    # (test_request, to be answered) are method "heartbeat"
    default_instruments = ("BTC-PERPETUAL", "ETH-PERPETUAL")
    trade_channel_format, book_channel_format, lower_channels = "trades.{}.100ms", "book.{}.", False
    landed: ClassVar[dict] = {
        TICKERS: ("ticker.{}.100ms",),
        OPEN_INTEREST: ("ticker.{}.100ms",),
        MARK_FUNDING: ("ticker.{}.100ms",),
        BOOKS: (BOOK_TOPS,),
    }
    shared_carries: ClassVar[dict] = {}

    def __init__(
        self,
        heartbeat_s: int = HEARTBEAT_S,
        datasets=None,
        instrument_service: InstrumentService | None = None,
    ):
        self.heartbeat_s = heartbeat_s
        self._inverse: dict[str, bool] = {}
        self.supported = (TRADES, BOOKS, *TICKER_DATASETS)
        # `warnings`: what could not be made, counted (the collector's stats); `sized`: (inverse, size)
        super().__init__(datasets, instrument_service)

    def channels(self, instruments: list[str], depth_speed_ms: int) -> list[str]:
        """Trades and tickers at 100 ms (the trade channel the hourly load reads, `trade_channel_format`;
        Deribit's `raw` channels need an authorized connection), the book at `depth_speed_ms` (0: raw)."""
        interval = "raw" if depth_speed_ms == 0 else f"{depth_speed_ms}ms"
        kinds = [
            (kind, every)
            for kind, dataset, every in (("trades", TRADES, "100ms"), ("book", BOOKS, interval))
            if dataset in self.datasets
        ]
        if any(d in self.datasets for d in TICKER_DATASETS):
            kinds.append(("ticker", "100ms"))
        return [f"{kind}.{name}.{every}" for name in instruments for kind, every in kinds]

    def subscribe_messages(
        self, channels: list[str], first_id: int, method: str = "public/subscribe"
    ) -> list[tuple[int, str]]:
        step = self.limits.subscribe_batch
        return [
            (first_id + k, rpc(first_id + k, method, {"channels": channels[i : i + step]}))
            for k, i in enumerate(range(0, len(channels), step))
        ]

    def unsubscribe_messages(self, channels: list[str], first_id: int) -> list[tuple[int, str]]:
        return self.subscribe_messages(channels, first_id, "public/unsubscribe")

    def opening_messages(self, first_id: int) -> list[tuple[int, str]]:
        return [(first_id, rpc(first_id, "public/set_heartbeat", {"interval": self.heartbeat_s}))]

    def resubscribe_messages(self, channel: str, first_id: int) -> list[tuple[int, str]]:
        return [
            (first_id, rpc(first_id, "public/unsubscribe", {"channels": [channel]})),
            (first_id + 1, rpc(first_id + 1, "public/subscribe", {"channels": [channel]})),
        ]

    def decode(self, text: str) -> Frame:
        frame = json.loads(
            text, parse_float=str
        )  # prices and amounts kept as the venue wrote them (0.00000255,
        # not Python's 2.55e-06): the book keys, the messages and the landing agree with the venue's text
        if not isinstance(frame, dict):
            return Frame("unknown")
        method, params = frame.get("method"), frame.get("params")
        if method == "subscription" and isinstance(params, dict):
            channel = str(
                params.get("channel")
            )  # <kind>.<instrument>.<interval>, or book.<instrument>.<group>.<depth>.<interval>
            parts = channel.split(".")
            instrument = parts[1] if len(parts) >= 3 else ""
            return Frame("event", channel, CHANNEL_DATASET.get(parts[0]), instrument, params.get("data"))
        if method == "heartbeat":
            test = isinstance(params, dict) and params.get("type") == "test_request"
            return Frame("control", reply=rpc(0, "public/test", {}) if test else None)
        if (
            "error" in frame
        ):  # the whole JSON-RPC error: code, message and `data` (e.g. the param -32602 refused)
            error = frame["error"]
            code = str(error.get("code")) if isinstance(error, dict) else None
            return Frame("error", request_id=frame.get("id"), error=json_text(error), code=code)
        if "result" in frame:
            return Frame("ack", request_id=frame.get("id"), data=frame["result"])
        return Frame("unknown")

    def new_book(self, instrument: str) -> DeribitBookSync:
        return DeribitBookSync(instrument)

    def messages(self, frame: Frame, recv_ns: int) -> list[LiveMessage]:
        if frame.dataset == TICKERS:
            inverse, size = self.contract(frame.instrument)
            if size is None and OPEN_INTEREST in self.datasets and frame.instrument:  # counted, not silent
                self.warnings["open_interest_no_contract_size"] = (
                    self.warnings.get("open_interest_no_contract_size", 0) + 1
                )
            return ticker_messages(frame.data, frame.instrument, recv_ns, self.datasets, inverse, size)
        return trade_messages(self.trades(frame, recv_ns))

    def trades(self, frame: Frame, recv_ns: int = 0) -> list[Trade]:
        """A `trades.<instrument>.<interval>` notification read and checked as the REST pages are
        (`trade_records`, `to_trades`): inverse contracts' USD amounts as base quantity and quote amount."""
        instrument, ctx = frame.instrument, Page(VENUE, frame.instrument)
        if not isinstance(frame.data, list):
            raise ctx.error(f"trades notification data is {type(frame.data).__name__}, not an array")
        inverse = self.inverse(instrument)
        return to_trades(trade_records(frame.data, instrument, ctx), instrument, inverse, recv_ns)

    def inverse(self, instrument: str) -> bool:
        """Amounts in USD (inverse), read from the name (trades need no size); SourceDataError for a name of
        no Deribit shape."""
        known = self._inverse.get(instrument)
        if known is None:
            try:
                known = self._inverse[instrument] = is_inverse(instrument)
            except ValueError as error:
                raise Page(VENUE, instrument).error(str(error)) from None
        return known

    def contract(self, instrument: str) -> tuple[bool, float | None]:
        """(inverse, contract size or None where the venue's reference data does not know it: no open
        interest) of an instrument, kept once known; SourceDataError for a name of no Deribit shape."""
        return self.inverse(instrument), self.sizing(instrument, lambda found: found.size if found else None)

    def book_time_ms(self, data: object) -> int | None:
        """A book notification's `timestamp`."""
        return (
            int(data["timestamp"]) if isinstance(data, dict) and data.get("timestamp") is not None else None
        )

    def repair_source(self, rest_url: str) -> RestSnapshots:
        """`public/get_order_book` (with its `change_id`), the body as sent."""
        client = DeribitClient(rest_url)
        return RestSnapshots(client, client.order_book_body)

    def book_rows(self, payload: dict, instrument: str) -> list[dict]:
        """Through the REST order book parser: an inverse contract's USD amounts as base units."""
        result = {
            "timestamp": book_ms(payload),
            "change_id": payload["update_id"],
            "bids": [[float(p), float(q)] for p, q, *_ in payload["bids"]],
            "asks": [[float(p), float(q)] for p, q, *_ in payload["asks"]],
        }
        return frame_rows(parse_order_book({"jsonrpc": "2.0", "result": result}, instrument))

    def check(self, dataset: str, instrument: str) -> None:
        """Open interest is counted in contracts: the size must be declared (SourceDataError if not)."""
        if dataset == OPEN_INTEREST:
            try:
                size_of(instrument, self.instrument_service.at(VENUE, instrument, self._as_of))
            except (ValueError, SourceError, LookupFailed) as error:
                raise Page(VENUE, instrument).error(str(error)) from None
