"""OKX v5 public WebSocket: the protocol as documented, the book's rules, as a `StreamProtocol`.

What the venue documents (OKX API v5, "WebSocket" and "Order book channel"; check before changing):
- `wss://ws.okx.com:8443/ws/v5/public`. Subscribe with `{"id": "<n>", "op": "subscribe", "args":
  [{"channel": "trades", "instId": ..}, {"channel": "books", "instId": ..}]}`; each arg is
  answered `{"id", "event": "subscribe", "arg": {..}, "connId"}`, a refusal `{"id", "event":
  "error", "code": "60018", "msg": .., "connId"}`; `unsubscribe` likewise.
- Limits: 3 connection requests a second per IP; 480 subscribe/unsubscribe/login requests an hour
  per connection; a request's args at most 64 KB. We pace at 1 request a second, 50 args a request,
  and keep at most 480 channels on a connection. No forced daily cut is documented.
- Keepalive: a connection with no traffic for 30 s is closed; the client sends the text "ping"
  when it has received nothing for N < 30 s (we: 20 s) and gets "pong".
- Pushes: `{"arg": {"channel", "instId"}, "data": [..]}`; trades `[{instId, tradeId, px, sz, side
  (the taker's), ts, count}]`; books (`books`, 400 levels) `{"arg", "action": "snapshot" | "update",
  "data": [{asks, bids: [[px, sz, "0", numOrders]], ts, checksum, prevSeqId, seqId}]}`: a size "0"
  removes the level. The first push after a subscribe is the snapshot (prevSeqId -1); each update's
  prevSeqId is the seqId before it; an update with no change has seqId = prevSeqId; after a
  sequence reset seqId may be below prevSeqId (still continuous).
- Checksum: CRC32 of the top 25 levels, bid and ask interleaved (`bidPx:bidSz:askPx:askSz:..`,
  the side with more levels continuing alone), the price and size strings exactly as sent, as a
  signed 32-bit integer. OKX announced (May 2026) that from 23 June 2026 the field stays but is
  always 0 and seqId/prevSeqId is the check: a 0 is therefore not checked; any other value is.
- A sequence break or a wrong checksum: unsubscribe and subscribe the book again (a fresh snapshot).

Trades go to JetStream as `OKX.<instId>.<tradeId>` (OKX's trade ids count per instrument).
"""

from __future__ import annotations

import json
import zlib
from typing import Any

from marketdata_assets.sources.stream import (
    BOOKS,
    TRADES,
    ChainedBookSync,
    Frame,
    Keepalive,
    StreamLimits,
    json_text,
)

VENUE = "OKX"
WS_URL = "wss://ws.okx.com:8443/ws/v5/public"
CHECKSUM_LEVELS = 25
CHANNEL_DATASET = {"trades": TRADES, "books": BOOKS}


def channel_name(instrument: str, channel: str) -> str:
    """The landing channel of an OKX channel of an instrument: `<instId>@<channel>`."""
    return f"{instrument}@{channel}"


def split_channel(name: str) -> dict[str, str]:
    instrument, _, channel = name.rpartition("@")
    return {"channel": channel, "instId": instrument}


def checksum(bids: list, asks: list, depth: int = CHECKSUM_LEVELS) -> int:
    """OKX's book checksum of the best `depth` levels of each side (best first, raw strings)."""
    parts: list[str] = []
    for k in range(depth):
        for side in (bids, asks):
            if k < len(side):
                parts.extend((str(side[k][0]), str(side[k][1])))
    value = zlib.crc32(":".join(parts).encode())
    return value - (1 << 32) if value >= 1 << 31 else value


class OkxBookSync(ChainedBookSync):
    """An OKX `books` channel: seqId/prevSeqId continuity and the checksum after every push."""

    def on_frame(self, frame: dict) -> str:
        (data,) = frame["data"]
        seq, prev = int(data["seqId"]), int(data["prevSeqId"])
        if frame.get("action") == "snapshot":
            outcome = self.on_snapshot(seq, data["bids"], data["asks"])
        else:
            outcome = self.on_update(prev, seq, data["bids"], data["asks"])
        expected = int(data.get("checksum") or 0)
        if outcome in ("snapshot", "applied") and expected != 0:
            got = checksum(*self.book.top(CHECKSUM_LEVELS))
            if got != expected:
                self.drop(seq=seq, expected_checksum=expected, got_checksum=got)
                return "mismatch"
        return outcome


class OkxStream:
    """OKX public trades and books as a `StreamProtocol` (sources/stream.py)."""

    venue = VENUE
    ws_url = WS_URL
    limits = StreamLimits(max_channels=480, control_per_s=1, connections_per_window=3, window_s=1.0,
                          lifetime_s=None, url_channels=0, subscribe_batch=50)
    keepalive = Keepalive("ping", 20.0)
    rest_snapshots = False
    stale_s = 10.0  # a quiet book is kept talking by our pings (at stale_s / 2)

    def channels(self, instruments: list[str], depth_speed_ms: int) -> list[str]:
        return [channel_name(name, kind) for name in instruments for kind in ("trades", "books")]

    def url(self, base: str, channels: list[str]) -> str:
        return base

    def _request(self, op: str, channels: list[str], request_id: int) -> str:
        return json_text({"id": str(request_id), "op": op, "args": [split_channel(c) for c in channels]})

    def subscribe_messages(self, channels: list[str], first_id: int) -> list[tuple[int, str]]:
        step = self.limits.subscribe_batch
        return [(first_id + k, self._request("subscribe", channels[i:i + step], first_id + k))
                for k, i in enumerate(range(0, len(channels), step))]

    def opening_messages(self, first_id: int) -> list[tuple[int, str]]:
        return []

    def resubscribe_messages(self, channel: str, first_id: int) -> list[tuple[int, str]]:
        return [(first_id, self._request("unsubscribe", [channel], first_id)),
                (first_id + 1, self._request("subscribe", [channel], first_id + 1))]

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
        if event == "error":
            return Frame("error", request_id=request_id, error=f"{frame.get('code')}: {frame.get('msg')}")
        if event in ("subscribe", "unsubscribe"):
            return Frame("ack", request_id=request_id, data=frame.get("arg"))
        arg = frame.get("arg")
        if isinstance(arg, dict) and "data" in frame:
            instrument, kind = str(arg.get("instId")), str(arg.get("channel"))
            return Frame("event", channel_name(instrument, kind), CHANNEL_DATASET.get(kind), instrument,
                         frame if kind == "books" else frame["data"])
        return Frame("control" if event else "unknown")

    def new_book(self, instrument: str) -> OkxBookSync:
        return OkxBookSync(instrument)

    def trade_records(self, data: Any, instrument: str, recv_ns: int) -> list[tuple[str, bytes, int]]:
        """(Nats-Msg-Id, payload, ts ms) per trade of a push; KeyError/TypeError on a malformed one."""
        out = []
        for trade in data:
            ts = int(trade["ts"])
            payload = {"venue": VENUE, "instrument": instrument, "trade_id": str(trade["tradeId"]),
                       "price": str(trade["px"]), "quantity": str(trade["sz"]), "side": str(trade["side"]),
                       "ts_ms": ts, "event_ms": ts, "recv_ns": recv_ns}
            out.append((f"{VENUE}.{instrument}.{trade['tradeId']}", json.dumps(payload, separators=(",", ":")).encode(), ts))
        return out

    def snapshot_source(self, rest_url: str | None) -> None:
        return None

    def snapshot_channel(self, instrument: str) -> str:
        return channel_name(instrument, "books")
