"""A batch of frames into their channels' open files as landing records, the loop every landed frame
goes through (`LandingWriter.frames` calls it under its lock): compiled (`_lines.pyx`, core/compiled.py)
with this as its original, which gives the same records."""

from __future__ import annotations

from operator import itemgetter

import orjson

from marketdata_assets.core.compiled import pick

HOUR_NS = 3_600_000_000_000
BAD_CHANNEL = "_bad"  # the collector's channel of frames that are not JSON: always written as strings


def add_frames(writer, frames: list[tuple[str, str, str, int]]) -> None:
    """`frames` (channel, conn, text, recv_ns) as records of `writer`'s files (`LandingWriter.frames`)."""
    conns: dict[str, bytes] = {}  # a connection's id as JSON
    last_ns = last_conn = head = None
    files, flush_lines, file_for = writer.files, writer.flush_lines, writer._file
    writer.landed.update(map(itemgetter(0), frames))  # counted in C
    for channel, conn, text, recv_ns in frames:
        if recv_ns != last_ns or conn != last_conn:  # the frames of one read share both: one head for all
            last_ns, last_conn = recv_ns, conn
            conn_json = conns.get(conn) or conns.setdefault(conn, orjson.dumps(conn))
            head = b'{"t":%d,"c":%b,' % (recv_ns, conn_json)
        f = files.get(channel)
        if f is None or not 0 <= recv_ns - f.hour_start_ns < HOUR_NS:  # `takes`, inline
            f = file_for(channel, recv_ns)
        if text[:1] == "{" and text[-1:] == "}" and "\n" not in text and channel != BAD_CHANNEL:  # nearly all
            f.buffer.append(b'%b"r":%b}\n' % (head, text.encode()))
        else:
            f.buffer.append(b'%b"d":%b}\n' % (head, orjson.dumps(text)))
        f.times.append(recv_ns)
        if len(f.buffer) >= flush_lines:
            f.flush()


add_frames_py = add_frames
add_frames = pick("marketdata_assets.stores.landing._lines", "add_frames", add_frames_py)

__all__ = ["BAD_CHANNEL", "HOUR_NS", "add_frames", "add_frames_py"]
