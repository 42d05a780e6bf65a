"""The frame queue's items and the processor's two passes over a batch of them, the loops every frame goes
through (processing.py): `frame_items` makes a read's texts items; `sort_frames` decodes each frame once
and says where it lands and what it is; `hand_on` gives each to the part it concerns, a trade frame kept
for its instrument's batch on the spot.
Compiled (`_batches.pyx`, core/compiled.py) with these as the originals, which give the same results."""

from __future__ import annotations

from collections.abc import Callable

from marketdata_assets.core.compiled import pick
from marketdata_assets.sources.stream import TRADES
from marketdata_assets.stores.landing import BAD_CHANNEL, CONTROL_CHANNEL

DATA = "data"  # a parsed frame that is an event and asks for no reply
MARKER = "marker"
FRAME = "frame"


def frame_items(texts: list[str], conn: str, recv_ns: int) -> list[tuple]:
    """The frame queue's items for the texts of one read off a connection's socket: (FRAME, conn,
    recv_ns, text) each. The compiled one makes them as the cycle collector would leave them after its
    first look (a tuple of strings and ints is untracked): a backlog of queued frames is not scanned."""
    return [(FRAME, conn, recv_ns, text) for text in texts]


def sort_frames(
    batch: list[tuple],
    decode: Callable,
    marker_channels: Callable,
    bad: Callable[[str], None],
    landed: list[tuple],
    parsed: list[tuple],
    reader=None,
) -> bool:
    """Each item of `batch` into `landed` (a frame as (channel, conn, text, recv_ns), a marker as (None,
    conn, recv_ns, marker, its channels)) and, but for a frame that is no JSON (`bad`), into `parsed`
    ((DATA or its kind, conn, recv_ns, the decoded frame or the marker)); True if a marker is among them.
    `reader`: the venue's compiled reader of its trade and book frames (sources/_reader.pyx; the compiled
    loop's: here every frame is decoded)."""
    marked = False
    for kind, conn, recv_ns, payload in batch:
        if kind == MARKER:
            marked = True
            landed.append((None, conn, recv_ns, payload, marker_channels(conn, recv_ns, payload[0])))
            parsed.append((kind, conn, recv_ns, payload))
            continue
        try:
            frame = decode(payload)
        except ValueError:
            bad("not_json")
            landed.append((BAD_CHANNEL, conn, payload, recv_ns))
            continue
        landed.append((frame.channel or CONTROL_CHANNEL, conn, payload, recv_ns))
        parsed.append((DATA if frame.kind == "event" and frame.reply is None else kind, conn, recv_ns, frame))
    return marked


def hand_on(parsed: list[tuple], processor, reader=None) -> None:
    """`parsed` in order to the processor's parts: a trade frame of an instrument with a batch open is
    added to its tape here (nearly every frame), any other event to `_on_event`, markers and other frames to
    theirs. The trade batches are looked up again after a marker (a drop seals them). `reader`: as
    `sort_frames`'."""
    publisher, connections = processor.publisher, processor.connections
    on_event, on_marker, on_frame = processor._on_event, processor._on_marker, processor._on_frame
    pending = publisher.trade_frames
    for kind, conn_id, recv_ns, item in parsed:
        if kind is DATA:
            if item.dataset == TRADES:
                tape = pending.get(item.instrument)
                if tape is not None:
                    conn = connections.get(conn_id)
                    if conn is not None and conn.unseen:
                        conn.saw(item.channel)
                    tape.add(item, recv_ns)
                    continue
            on_event(conn_id, recv_ns, item)
        elif kind == MARKER:
            on_marker(conn_id, item)
            pending = publisher.trade_frames
        else:
            on_frame(conn_id, recv_ns, item)


sort_frames_py, hand_on_py, frame_items_py = sort_frames, hand_on, frame_items
frame_items = pick("marketdata_assets.ingest.live.collect._batches", "frame_items", frame_items_py)
sort_frames = pick("marketdata_assets.ingest.live.collect._batches", "sort_frames", sort_frames_py)
hand_on = pick("marketdata_assets.ingest.live.collect._batches", "hand_on", hand_on_py)

__all__ = [
    "DATA",
    "FRAME",
    "MARKER",
    "frame_items",
    "frame_items_py",
    "hand_on",
    "hand_on_py",
    "sort_frames",
    "sort_frames_py",
]
