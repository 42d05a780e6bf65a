"""The compiled frame cutter (`_wsframes.pyx`) against its pure-Python original (wsframes.py): the same
texts, stops, frame ends and UTF-8 verdicts on RFC 6455's own examples (§5.7) and on random streams of
every frame kind and length encoding, cut at every kind of boundary."""

from __future__ import annotations

import gc
import importlib
import random
import sys

import pytest

from marketdata_assets.core import compiled
from marketdata_assets.ingest.live.collect.batches import frame_items_py
from marketdata_assets.ingest.live.collect.wsframes import cut_texts_py, frame_end


def _compiled_cut():
    try:
        return importlib.import_module("marketdata_assets.ingest.live.collect._wsframes").cut_texts
    except ImportError:
        if compiled.mode() == "0":
            pytest.skip("MARKETDATA_COMPILED=0 and the compiled cutter is not built")
        raise


def frame(payload: bytes, opcode: int = 1, fin: bool = True, mask: bytes | None = None) -> bytes:
    head = bytes([(0x80 if fin else 0) | opcode])
    flag, n = (0x80 if mask else 0), len(payload)
    if n < 126:
        head += bytes([flag | n])
    elif n < 1 << 16:
        head += bytes([flag | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([flag | 127]) + n.to_bytes(8, "big")
    if mask:
        payload = bytes(b ^ mask[k % 4] for k, b in enumerate(payload))
        head += mask
    return head + payload


# RFC 6455 §5.7, byte for byte
RFC_EXAMPLES = [
    bytes([0x81, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F]),  # a single-frame unmasked text message "Hello"
    bytes([0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58]),  # the same, masked
    bytes([0x01, 0x03, 0x48, 0x65, 0x6C]) + bytes([0x80, 0x02, 0x6C, 0x6F]),  # "Hel" + "lo", fragmented
    bytes([0x89, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F]),  # an unmasked ping
    bytes([0x8A, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58]),  # a masked pong
    bytes([0x82, 0x7E, 0x01, 0x00]) + bytes(256),  # 256 bytes of binary, one unmasked frame
    bytes([0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0]) + bytes(65536),  # 64 KiB of binary, one unmasked frame
]


def walk(cut, buf: bytes) -> list:
    """Everything a cutter says of `buf`, driven as the client drives it (a frame it stops at passed over)."""
    pos, said = 0, []
    while True:
        texts, pos, end, bad = cut(buf, pos)
        said.append((texts, pos, end, bad))
        if end < 0:
            return said
        assert end == frame_end(buf, pos)
        pos = end


def random_frame(rng: random.Random) -> bytes:
    kind = rng.randrange(9)
    n = rng.choice((0, 1, 5, 125, 126, 127, 300, 65535, 65536, 70000)) if kind == 0 else rng.randrange(0, 200)
    if kind <= 3:  # text, ASCII or not, nearly every frame a venue sends
        text = "".join(rng.choice('ab{}":,0123456789é€𝄞') for _ in range(n))
        return frame(text.encode())
    if kind == 4:
        return frame(b"\xff\xfe" + bytes(n) if rng.random() < 0.5 else "é".encode()[:1])  # not UTF-8
    if kind == 5:
        return frame(b"x" * n, mask=bytes(rng.randrange(256) for _ in range(4)))
    if kind == 6:
        return frame(b"p" * min(n, 125), opcode=rng.choice((8, 9, 10)))
    if kind == 7:
        return frame(b"part", fin=False) + frame(b"ial", opcode=0)
    return frame(bytes(n), opcode=2)


@pytest.mark.parametrize("example", range(len(RFC_EXAMPLES)))
def test_the_rfc_examples_whole_and_cut_anywhere(example):
    cut, buf = _compiled_cut(), RFC_EXAMPLES[example] + RFC_EXAMPLES[0]
    for size in {*range(12), len(buf) - 1, len(buf)}:
        assert walk(cut, buf[:size]) == walk(cut_texts_py, buf[:size])
    said = walk(cut, buf)
    if example == 0:
        assert said == [(["Hello", "Hello"], 14, -1, False)]
    else:  # the frame that is not a single unmasked text is left to the protocol, the text after it cut
        assert said[0][0] == [] and said[0][2] > 0 and said[-1][0] == ["Hello"]


def test_random_streams_cut_at_random_places():
    cut, rng = _compiled_cut(), random.Random(85)
    for _ in range(400):
        buf = b"".join(random_frame(rng) for _ in range(rng.randrange(1, 12)))
        for size in (len(buf), rng.randrange(len(buf) + 1), rng.randrange(len(buf) + 1)):
            assert walk(cut, buf[:size]) == walk(cut_texts_py, buf[:size]), buf[:size][:200]


def test_lengths_that_cannot_have_come_wait_for_more():
    """A 64-bit length past what came (up to 2**64 - 1, which the RFC forbids) is a frame not whole yet."""
    cut = _compiled_cut()
    for length in (1 << 16, 1 << 40, (1 << 63) + 5, (1 << 64) - 1):
        buf = bytes([0x81, 0x7F]) + length.to_bytes(8, "big") + b"abc"
        assert cut(buf, 0) == cut_texts_py(buf, 0) == ([], 0, -1, False)


def test_a_reads_queue_items_are_the_originals_left_out_of_the_cycle_collector():
    """The texts cut from a read become the frame queue's items (batches.frame_items): the compiled ones
    equal the original's, and none of them is tracked by the cycle collector (a tuple of strings and
    an int holds no cycle: CPython untracks such a tuple at its first collection; a backlog of queued
    frames was scanned again at every one)."""
    try:
        made = importlib.import_module("marketdata_assets.ingest.live.collect._batches").frame_items
    except ImportError:
        if compiled.mode() == "0":
            pytest.skip("MARKETDATA_COMPILED=0 and the compiled batches are not built")
        raise
    texts, _, _, _ = cut_texts_py(b"".join(frame(t.encode()) for t in ("a", '{"e":1}', "é" * 300)), 0)
    for read in (texts, [], ["x"] * 1000):
        items = made(read, "conn-7", 1_700_000_000_123_456_789)
        assert items == frame_items_py(read, "conn-7", 1_700_000_000_123_456_789)
        assert [type(item) for item in items] == [tuple] * len(read)
        assert not any(gc.is_tracked(item) for item in items)
        assert all(sys.getrefcount(item) == 3 for item in items)  # the list's, `item`'s and the call's
