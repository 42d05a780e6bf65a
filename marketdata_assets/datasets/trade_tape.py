"""One instrument's trades between two seals of the collector: the frames that carried them, read into
`Trade` records at once when the batch is sealed, and written as one message (`trade_batch`: a JSON array,
an id made from its content). Compiled (`_tape.pyx`, core/compiled.py) with this as its original: there a
venue's documented trade frame is read straight into a C record when it is sorted (sources/_reader.pyx), and
the message written from those records, with no Python object a trade."""

from __future__ import annotations

import bisect
from collections.abc import Callable

import msgspec
from zlib_ng.zlib_ng import crc32

from marketdata_assets.core.compiled import pick
from marketdata_assets.datasets.normalized import Trade

ENCODE = msgspec.json.Encoder().encode  # its bytes are their own size (orjson's keep a 4 KB buffer)


def trade_batch(venue: str, instrument: str, records: list[Trade]) -> tuple[str, bytes]:
    """(msg id, payload) of one instrument's trade records sent as one message: the payload a JSON
    array of `Trade`s; the id `<venue>.<instrument>.<first trade id>~<last trade id>.<count>.
    <crc32 of the payload>`, made from the content, so the same batch published again is stored once
    (a trade two connections delivered may be in two batches: `trades_live`'s key keeps it once)."""
    payload = ENCODE(records)
    first, last = records[0].trade_id, records[-1].trade_id
    return f"{venue}.{instrument}.{first}~{last}.{len(records)}.{crc32(payload):08x}", payload


class TradeTape:
    """The trade frames of `instrument` since its last seal, each with its receive time; `read_trades`
    (the venue's `read_trades(frames, recvs, bad)`) reads them at the seal. `conn_id`: the connection of
    the first; `tick`: the sealing tick it came in (the publisher's)."""

    def __init__(self, venue: str, instrument: str, conn_id: str, tick: int, read_trades: Callable):
        self.venue, self.instrument, self.conn_id, self.tick = venue, instrument, conn_id, tick
        self.read_trades = read_trades
        self.frames: list = []
        self.recvs: list[int] = []
        self.records: list[Trade] = []
        self.first_channel: str | None = None  # the first frame's channel and receive time
        self.first_recv = 0

    def __len__(self) -> int:
        return len(self.frames)

    def add(self, frame, recv_ns: int) -> None:
        if not self.frames:
            self.first_channel, self.first_recv = frame.channel, recv_ns
        self.frames.append(frame)
        self.recvs.append(recv_ns)

    def read(self, bad: list) -> int:
        """The frames read into their records (a frame the venue refuses into `bad`, with its error);
        how many."""
        self.records = self.read_trades(self.frames, self.recvs, bad)
        return len(self.records)

    @property
    def first_seq(self) -> int | None:
        return self.records[0].seq if self.records else None

    @property
    def last_seq(self) -> int | None:
        return self.records[-1].seq if self.records else None

    def lags(self, buckets: list[int], bounds: tuple[float, ...]) -> float:
        """Each record's lag (receive time - the venue's event time, s) counted in its bucket of `bounds`
        (`bisect_left`); their sum."""
        find, total = bisect.bisect_left, 0.0
        for record in self.records:
            lag_s = record.recv_ns / 1e9 - record.event_ms / 1e3
            buckets[find(bounds, lag_s)] += 1
            total += lag_s
        return total

    def batch(self, start: int, stop: int) -> tuple[str, bytes]:
        """`trade_batch` of the records `start` to `stop`."""
        return trade_batch(self.venue, self.instrument, self.records[start:stop])


TradeTape_py = TradeTape
TradeTape = pick("marketdata_assets.datasets._tape", "TradeTape", TradeTape_py)

__all__ = ["ENCODE", "TradeTape", "TradeTape_py", "trade_batch"]
