"""The compiled landing loop (`_lines.pyx`) against its pure-Python original (lines.py): the same
frames through two writers give the same files, line for line, and the same summaries: JSON objects
embedded, every other text (a newline in it, not an object, the `_bad` channel, non-ASCII) a string,
hours crossed, connections changing within a batch, files flushed by their line bound."""

from __future__ import annotations

import importlib
import json
import random

import pytest

from marketdata_assets.core import compiled
from marketdata_assets.stores.landing import LandingWriter, read_lines
from marketdata_assets.stores.landing.lines import HOUR_NS, add_frames_py

T0 = 1_764_388_800 * 10**9 + HOUR_NS - 2_000_000_000  # two seconds before an hour turns
TEXTS = [
    '{"stream":"btcusdt@trade","data":{"e":"trade","p":"95000.10"}}',
    '{"a":"line\nbreak"}',  # an object with a newline: a string
    '["not", "an", "object"]',
    "pong",
    "",
    "{",
    "}",
    '{"é":"€ 𝄞"}',
    '{"x": 1}  ',  # ends in spaces: not `}` last
]


def _compiled():
    try:
        return importlib.import_module("marketdata_assets.stores.landing._lines").add_frames
    except ImportError:
        if compiled.mode() == "0":
            pytest.skip("MARKETDATA_COMPILED=0 and the compiled landing loop is not built")
        raise


def batches(seed: int) -> list[list[tuple[str, str, str, int]]]:
    rng, now, out = random.Random(seed), T0, []
    for _ in range(60):
        batch = []
        for _ in range(rng.randrange(1, 120)):
            now += rng.choice((0, 0, 0, 1, 7_000_000, 150_000_000))
            channel = rng.choice(("btcusdt@trade", "ethusdt@depth@100ms", "_bad", "_control"))
            batch.append((channel, rng.choice(("c1", "c1", 'c"2')), rng.choice(TEXTS), now))
        out.append(batch)
    return out


def landed(tmp_path, name: str, add, seed: int) -> tuple[dict, dict]:
    """Every file the writer left: a landing file's lines, a summary's fields."""
    root = tmp_path / name
    writer = LandingWriter(root, "BINANCE", flush_lines=37)
    for batch in batches(seed):
        with writer.lock:
            add(writer, batch)
    writer.close()
    seen = {
        str(path.relative_to(root)): list(read_lines(path))
        if path.suffix == ".zst"
        else json.loads(path.read_text())
        for path in sorted(root.rglob("*.*"))
        if path.is_file()
    }
    return seen, dict(writer.landed)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_same_records_and_counts_either_way(tmp_path, seed):
    compiled_files, compiled_counts = landed(tmp_path, "compiled", _compiled(), seed)
    original_files, original_counts = landed(tmp_path, "original", add_frames_py, seed)
    assert compiled_files == original_files and compiled_counts == original_counts
    assert len(compiled_files) >= 6  # both hours of several channels
    lines = [line for records in compiled_files.values() if isinstance(records, list) for line in records]
    assert any(b'"r":{' in line for line in lines) and any(b'"d":"' in line for line in lines)


def test_a_batch_that_fails_midway_counts_what_the_original_counts(tmp_path):
    """A file that cannot be opened stops the batch with the error, either way; the counts of what was
    received stay the original's (every frame of the batch, as it counts them before landing any)."""
    batch = batches(4)[0] + [("ethusdt@depth@100ms", "c1", TEXTS[0], T0 + 10 * HOUR_NS)] + batches(5)[0]
    counts = []
    for name, add in (("compiled", _compiled()), ("original", add_frames_py)):
        writer = LandingWriter(tmp_path / name, "BINANCE", flush_lines=37)
        opened = writer._file

        def refuse(channel, recv_ns, opened=opened):
            if recv_ns >= T0 + 10 * HOUR_NS:
                raise OSError(f"no room for {channel}")
            return opened(channel, recv_ns)

        writer._file = refuse
        with pytest.raises(OSError, match="no room for ethusdt@depth@100ms"), writer.lock:
            add(writer, batch)
        counts.append(dict(writer.landed))
    assert counts[0] == counts[1] and sum(counts[0].values()) == len(batch)
