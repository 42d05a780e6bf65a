"""Binance's combined-stream frames (`{"stream":"<name>","data":{...}}`) whose stream has a declared
record: its name read ahead, its frame decoded in one pass, the `Frame` the collector reads. Compiled
(`_fast.pyx`, core/compiled.py) with this as its original, which gives the same frames."""

from __future__ import annotations

import msgspec

from marketdata_assets.core.compiled import pick
from marketdata_assets.sources.stream import Frame

HEAD = '{"stream":"'


def typed_event(text: str, typed_frames: dict) -> Frame | None:
    """The event frame of a stream in `typed_frames` (name -> (decode, instrument, dataset, stream, record)),
    or None: another stream, or a frame its record does not fit (read as any JSON then). The name read
    ahead is a guess, so the stream decoded must be that one."""
    if not text.startswith(HEAD):
        return None
    end = text.find('"', 11)
    typed = typed_frames.get(text[11:end]) if end >= 0 else None
    if typed is None:
        return None
    try:
        frame = typed[0](text)
    except msgspec.MsgspecError:
        return None
    if frame.stream != typed[3]:
        return None
    return Frame("event", typed[3], typed[2], typed[1], frame.data)


typed_event_py = typed_event
typed_event = pick("marketdata_assets.sources.binance._fast", "typed_event", typed_event_py)
# the compiled reader of trade and depth diff frames (sources/_reader.pyx) ahead of any decoding; it has no
# original: without it every frame is decoded, and read to the same records and books
BinanceFrames = pick("marketdata_assets.sources.binance._fast", "BinanceFrames", None)

__all__ = ["BinanceFrames", "typed_event", "typed_event_py"]
