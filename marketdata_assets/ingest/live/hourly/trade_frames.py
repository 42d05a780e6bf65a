"""The trades in a live landing frame, for every live venue (hourly/load.py reads the files with these).

`LiveVenue`: a venue's stream protocol (sources/registry.py `STREAMS`, declared in the venue's package)
as the loader needs it: trade channel <-> instrument, the ingest_log source of its live loads (each
joins its venue's trade-id sequence in quality/continuity.py) and the frame -> trades reading, which
is the protocol's own `decode` + `trades`: the parse that built the frame's JetStream messages, so
the hourly loads and `trades_live` hold the same rows (sizes in base units, amounts in quote units).
A frame is discarded with its reason when it is `not_a_trade`, of an `other_instrument`, or a
`bad_frame` (not JSON, or a trade the venue's parser refuses).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from marketdata_assets.datasets.instrument_service import InstrumentService
from marketdata_assets.datasets.normalized import Trade
from marketdata_assets.ingest.instruments import instrument_service
from marketdata_assets.ingest.live.hourly.landing_hours import file_hour, parse_hour
from marketdata_assets.sources.registry import STREAMS, stream_protocol
from marketdata_assets.sources.stream import MALFORMED, TRADES

VENUE = "BINANCE"  # the venue of a call that names none (Binance spot, the first live venue)


@dataclass(frozen=True)
class LiveVenue:
    """A venue's live trades as the loader reads them (see the module doc)."""

    venue: str
    protocol: Any  # its StreamProtocol, every dataset enabled

    @property
    def source(self) -> str:
        return self.protocol.live_source

    def _spelled(self, instrument: str) -> str:
        return instrument.lower() if self.protocol.lower_channels else instrument

    def trade_channel(self, instrument: str) -> str:
        return self.protocol.trade_channel_format.format(self._spelled(instrument))

    def is_book_channel(self, channel: str, instrument: str) -> bool:
        start = self.protocol.book_channel_format.format(self._spelled(instrument))
        return channel.startswith(start) and not channel.endswith("_snapshot")

    def instrument_of_channel(self, channel: str) -> str | None:
        """The instrument of a trade channel (`btcusdt@trade` -> BTCUSDT); None for another channel."""
        head, _, tail = self.protocol.trade_channel_format.partition("{}")
        if not (channel.startswith(head) and channel.endswith(tail) and len(channel) > len(head) + len(tail)):
            return None
        name = channel[len(head) : len(channel) - len(tail)]
        return name.upper() if self.protocol.lower_channels else name

    def trades(self, text: str, instrument: str, recv_ns: int = 0) -> list[Trade] | str:
        """The trades of a landed frame's text (received at `recv_ns`), or why it is discarded."""
        try:
            frame = self.protocol.decode(text)
        except ValueError:
            return "bad_frame"
        if frame.kind != "event" or frame.dataset != TRADES:
            return "not_a_trade"
        if frame.instrument != instrument:
            return "other_instrument"
        try:
            return self.protocol.trades(frame, recv_ns)
        except MALFORMED:
            return "bad_frame"


def referenced(venue: str, service: InstrumentService | None = None):
    """The venue's stream protocol with every dataset enabled, its contract sizes from `service` (the run's;
    None: one asking the venue at the sources config's REST base, at its first lookup)."""
    return stream_protocol(venue, "all", service or instrument_service(None, ()))


def sized_at_hour(protocol, path) -> None:
    """Size the landing file's frames by the reference data valid at its hour's start."""
    protocol.size_at(parse_hour(file_hour(path)) if path is not None else None)


LIVE_VENUES = {venue: LiveVenue(venue, stream_protocol(venue, "all")) for venue in STREAMS}  # names, channels
LIVE_SOURCES = {v.source: v.venue for v in LIVE_VENUES.values()}
