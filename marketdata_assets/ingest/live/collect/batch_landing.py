"""The processor's batches into the landing files (in a worker thread): runs of frames at once, each
marker into the channels it concerns, every landed frame counted.

A connection's markers go into every channel it carries (each channel's file tells its own story), but
its `overflow` markers, one a batch while the processor is behind, into the control channel every time
and into its channels at most once a second (docs/live-capture.md, "Raw landing").
"""

from __future__ import annotations

from marketdata_assets.ingest.live.collect.shedding import OVERFLOW
from marketdata_assets.ingest.live.stats import Stats
from marketdata_assets.stores.landing import CONTROL_CHANNEL, LandingWriter

OVERFLOW_MARK_EVERY_NS = 1_000_000_000  # a connection's channels get at most one `overflow` marker a second


class BatchLanding:
    """Lands a collector's batches with `writer`; `conn_streams` (the connections' channels, the
    slots' dict) says where a connection's markers go."""

    def __init__(self, writer: LandingWriter, stats: Stats, conn_streams: dict[str, list[str]]):
        self.writer, self.stats, self.conn_streams = writer, stats, conn_streams
        self.overflow_marked: dict[str, int] = {}  # conn -> when its channels last got an `overflow` marker

    def forget(self, conn_id: str) -> None:
        """A connection ended (its disconnect marker landed)."""
        self.overflow_marked.pop(conn_id, None)

    def marker_channels(self, conn_id: str, recv_ns: int, kind: str) -> list[str]:
        """Where a connection's marker lands: every channel it carries (each channel's file tells its
        own story), or the control channel. An `overflow` marker, one a batch while the processor is
        behind, lands in the control channel every time (its counts are the whole record of the drops)
        and in the connection's channels at most once a second: written into each of ~1,000 channels
        of a connection, the markers cost more than the frames they stand for, and the collector would
        never catch up (docs/live-capture.md)."""
        channels = self.conn_streams.get(conn_id)
        if not channels:
            return [CONTROL_CHANNEL]
        if kind != OVERFLOW:
            return channels
        if recv_ns < self.overflow_marked.get(conn_id, 0) + OVERFLOW_MARK_EVERY_NS:
            return [CONTROL_CHANNEL]
        self.overflow_marked[conn_id] = recv_ns
        return [*channels, CONTROL_CHANNEL]

    def land(self, landed: list[tuple]) -> None:
        """The batch into the landing files in order: runs of frames at once, markers one by one."""
        frames = []
        for entry in landed:
            if entry[0] is not None:
                frames.append(entry)
                continue
            if frames:
                self.land_frames(frames)
                frames = []
            _, conn, recv_ns, (kind, details), channels = entry
            for channel in channels:
                self.writer.marker(channel, conn, kind, recv_ns, **details)
        if frames:
            self.land_frames(frames)

    def land_frames(self, frames: list[tuple[str, str, str, int]]) -> None:
        self.writer.frames(frames)
        stats = self.stats
        stats.frames += len(frames)
        stats.last_frame_ns = max(stats.last_frame_ns, frames[-1][3])


__all__ = ["OVERFLOW_MARK_EVERY_NS", "BatchLanding"]
