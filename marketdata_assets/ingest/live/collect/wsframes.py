"""WebSocket frames (RFC 6455 §5.2) cut from the bytes a read of the socket brought: the run of whole,
unmasked, single-frame text messages from a position (nearly every frame a venue sends), decoded;
where the run stops, the frame that ends it (any other frame, for the protocol) or the end of what is
whole. `cut_texts` is compiled (`_wsframes.pyx`, core/compiled.py) with this as its original."""

from __future__ import annotations

from marketdata_assets.core.compiled import pick


def cut_texts(buf: bytes, pos: int) -> tuple[list[str], int, int, bool]:
    """(texts, stop, end, bad): the messages of the unmasked text frames with FIN from `pos` on; `stop`
    where the run ends; `end` the end of the frame at `stop` if it is whole (-1: it is not, or nothing is
    left); `bad` True when that frame is such a text frame whose payload is not UTF-8."""
    texts = []
    while True:
        start, end = frame_span(buf, pos)
        if end < 0:
            return texts, pos, -1, False
        if buf[pos] != 0x81 or buf[pos + 1] >= 0x80:
            return texts, pos, end, False
        try:
            texts.append(buf[start:end].decode())
        except UnicodeDecodeError:
            return texts, pos, end, True
        pos = end


def frame_span(buf: bytes, pos: int) -> tuple[int, int]:
    """(where the payload starts, where the frame ends) of the frame at `pos` if it is whole in `buf`,
    else (-1, -1)."""
    size = len(buf)
    if size - pos < 2:
        return -1, -1
    length, start = buf[pos + 1] & 0x7F, pos + 2
    if length == 126:
        length, start = int.from_bytes(buf[start : start + 2]), start + 2
    elif length == 127:
        length, start = int.from_bytes(buf[start : start + 8]), start + 8
    end = start + length + (4 if buf[pos + 1] & 0x80 else 0)
    return (start, end) if end <= size else (-1, -1)


def frame_end(buf: bytes, pos: int) -> int:
    """The end of the frame at `pos` if it is whole in `buf`, else -1."""
    return frame_span(buf, pos)[1]


cut_texts_py = cut_texts
cut_texts = pick("marketdata_assets.ingest.live.collect._wsframes", "cut_texts", cut_texts_py)

__all__ = ["cut_texts", "cut_texts_py", "frame_end"]
