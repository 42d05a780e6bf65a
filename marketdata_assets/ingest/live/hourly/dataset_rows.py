"""The rows of the live datasets other than trades: which landing channels carry a dataset and how a
normalized message becomes a row of its stored frame (datasets/frames.py). Venue-neutral: each venue's
stream protocol declares where it lands each dataset (`landed`, `shared_carries`) and builds the
messages once, already in the stored units (datasets/normalized.py: sizes in base units, amounts in
quote units, by the venue's REST parsing code), so a row is its message's record as it is. The
venues' declarations, read from the registry, give `CHANNELS`:

- tickers: best bid/ask (and last, mark, index and funding where the venue's ticker has them); no live
  ticker carries 24h volume: volume_24h and amount_24h are null. A ticker with no event time (Binance
  spot's bookTicker) is stamped with the receive time (its id, the book update id, still dedupes it).
- bars_1m: the closed bar only; liquidations, open_interest: the record's fields at its time.
- mark_funding: samples, not settlements (never `funding_rates`): the mark_price message gives mark
  and index, the funding message the current rate, the settlement it is for and the 8-hour rate where
  the venue sends one (Deribit); one row per
  (instrument, ts), the two merged where both exist.
- agg_trades (opt-in: Binance spot's `aggTrade`): the aggregate trade in the archives' aggTrades
  convention (trade_id = seq = the aggregate id, ts the trade time), into the same `agg_trades` table.
- books: the collector's own top-N snapshots (`<instrument>@book_top`, landed beside the raw frames),
  each through the venue's `book_rows` (its REST book parser: its units), `ts` the book's last
  update's exchange time, one snapshot per update id.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from marketdata_assets.datasets.frames import spec_for
from marketdata_assets.datasets.normalized import (
    AggregateTrade,
    Bar,
    Liquidation,
    MarkPrice,
    OpenInterest,
    Ticker,
)
from marketdata_assets.ingest.live.hourly.trade_frames import referenced
from marketdata_assets.sources.registry import STREAMS
from marketdata_assets.sources.stream import (
    AGG_TRADES,
    BARS_1M,
    BOOKS,
    FUNDING,
    LIQUIDATIONS,
    MARK_FUNDING,
    MARK_PRICE,
    OPEN_INTEREST,
    TICKERS,
    LiveMessage,
)

LIVE_DATASET_NAMES = (TICKERS, BARS_1M, LIQUIDATIONS, OPEN_INTEREST, MARK_FUNDING, BOOKS, AGG_TRADES)
MESSAGES_OF = {
    MARK_FUNDING: (MARK_PRICE, FUNDING)
}  # a stored dataset -> the messages of its rows (else its own)


def protocol(venue: str, service=None):
    """The venue's stream protocol with every dataset it supports enabled (a landed frame gives all
    its messages; each load keeps its dataset's), sized by `service` (the run's instrument service)."""
    return referenced(venue, service)


def _us(ms: Any) -> int | None:
    return None if ms is None or ms == "" else int(ms) * 1000


def _ts(payload: dict) -> int:
    """The event time in µs, else (Binance spot's bookTicker) the receive time."""
    return _us(payload["ts_ms"]) if payload.get("ts_ms") is not None else int(payload["recv_ns"]) // 1000


Row = dict[str, Any]
Mapper = Callable[[dict, Any, str], list[Row]]  # payload, the venue's protocol, instrument


def record_rows(dataset: str, record: type, ts: Callable[[dict], int]) -> Mapper:
    """How a message of a normalized `record` (datasets/normalized.py) becomes a row of `dataset`'s frame:
    `ts` of the payload, then each of the frame's columns the record's field of that name, null where the
    record has none (a live ticker's 24h volume, the other message's half of a mark_funding row)."""
    columns = dict.fromkeys(c for c in spec_for(dataset).schema if c not in ("ts", "venue", "instrument"))
    held = [c for c in columns if c in record._fields]

    def rows(payload, protocol, instrument) -> list[Row]:
        return [{"ts": ts(payload), **columns, **{c: payload[c] for c in held}}]  # the schema's order

    return rows


def funding_row(payload, protocol, instrument) -> list[Row]:
    return [
        {
            "ts": _ts(payload),
            "mark_price": None,
            "index_price": None,
            "funding_rate": payload["funding_rate"],
            "next_funding_time": _us(payload["next_funding_ms"]),
            "funding_rate_8h": payload["funding_rate_8h"],
        }
    ]


def book_rows(payload, protocol, instrument) -> list[Row]:
    return protocol.book_rows(payload, instrument)


MAPPERS: dict[str, Mapper] = {
    TICKERS: record_rows(TICKERS, Ticker, _ts),
    BARS_1M: record_rows(BARS_1M, Bar, lambda payload: _us(payload["open_ms"])),
    LIQUIDATIONS: record_rows(LIQUIDATIONS, Liquidation, _ts),
    OPEN_INTEREST: record_rows(OPEN_INTEREST, OpenInterest, _ts),
    MARK_PRICE: record_rows(MARK_FUNDING, MarkPrice, _ts),
    FUNDING: funding_row,  # its `next_funding_ms` is the row's next_funding_time in µs
    BOOKS: book_rows,
    AGG_TRADES: record_rows(AGG_TRADES, AggregateTrade, lambda payload: int(payload["ts_us"])),
}


def own_messages(record: dict, venue: str) -> list[LiveMessage]:
    """The message of a record the collector landed itself (a `@book_top` snapshot: its payload as it
    was published, id `books.<venue>.<instrument>.<update id>`). ValueError/KeyError/TypeError: not one."""
    payload = json.loads(record["d"])
    instrument, update_id = str(payload["instrument"]), int(payload["update_id"])
    return [
        LiveMessage(
            BOOKS,
            instrument,
            f"{BOOKS}.{venue}.{instrument}.{update_id}",
            record["d"].encode(),
            int(payload["event_ms"]) if payload.get("event_ms") is not None else None,
        )
    ]


@dataclass(frozen=True)
class VenueDataset:
    """One venue's live `dataset` (from its protocol's `landed`): its landing channels for an instrument
    (`{}`: the instrument as the channel spells it; no `{}`: one channel carries every instrument's),
    the messages that make its rows (message dataset -> Mapper), and the venue's protocol (its
    `check(dataset, instrument)` fails a slice it cannot size; books: its `book_rows`)."""

    venue: str
    dataset: str
    channels: tuple[str, ...]
    mappers: dict[str, Mapper]
    protocol: Any
    lower: bool = False  # instruments upper-cased in keys, lower-cased in channels (Binance)
    shared: dict[str, Callable[[str], bool]] | None = None  # a shared channel -> which instruments it carries
    own_records: bool = False  # the channels hold the collector's own records (`own_messages`), not frames

    def prepare(self, instrument: str, protocol: Any = None) -> None:
        """Fail at once (naming it) if `protocol` (the reader's; None: its own) cannot size `instrument`."""
        (protocol or self.protocol).check(self.dataset, instrument)

    def carries(self, instrument: str) -> bool:
        """Whether this dataset's shared channels hold `instrument`'s events."""
        return all(carried(instrument) for carried in (self.shared or {}).values())

    def channel_names(self, instrument: str) -> list[str]:
        name = instrument.lower() if self.lower else instrument
        return [c.format(name) for c in self.channels]

    def instrument_of(self, channel: str) -> str | None:
        """The instrument a channel is of (None: not this dataset's channel, or one of every instrument)."""
        for pattern in self.channels:
            head, found, tail = pattern.partition("{}")
            if (
                found
                and channel.startswith(head)
                and channel.endswith(tail)
                and len(channel) > len(head) + len(tail)
            ):
                name = channel[len(head) : len(channel) - len(tail)]
                return name.upper() if self.lower else name
        return None

    def shared_channels(self) -> list[str]:
        """Channels carrying every instrument's events (OKX `SWAP@liquidation-orders`)."""
        return [c for c in self.channels if "{}" not in c]


def venue_datasets(venue: str) -> dict[str, VenueDataset]:
    """What a venue's stream protocol declares it lands of each stored live dataset."""
    proto = protocol(venue)
    out = {}
    for dataset, channels in proto.landed.items():
        messages = MESSAGES_OF.get(dataset, (dataset,))
        shared = {c: proto.shared_carries[c] for c in channels if c in proto.shared_carries}
        out[dataset] = VenueDataset(
            venue,
            dataset,
            tuple(channels),
            {m: MAPPERS[m] for m in messages},
            proto,
            proto.lower_channels,
            shared,
            own_records=dataset == BOOKS,
        )
    return out


SOURCES = {venue: cls.live_source for venue, cls in STREAMS.items()}  # each venue's live ingest_log source
# dataset -> venue -> VenueDataset
CHANNELS: dict[str, dict[str, VenueDataset]] = {}
for _venue in STREAMS:
    for _dataset, _spec in venue_datasets(_venue).items():
        CHANNELS.setdefault(_dataset, {})[_venue] = _spec
