"""Reading closed landing files back: the records of a file, and the closed files of a channel.

Only closed files are read here (a `.part` is a writer's, or a crash's until `recover` closes it),
and never through a symbolic link: a link is not listed, and opening one is refused.
The hourly loaders of the batch layer and the tests read through these.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import zstandard

from marketdata_assets.core.landing_files import LinkRefused, open_binary, scan
from marketdata_assets.stores.landing.writer import PART, SUFFIX


def _chunk(reader, path: Path) -> bytes:
    try:
        return reader.read(1 << 16)
    except zstandard.ZstdError as error:
        raise ValueError(
            f"{path}: damaged zstd stream ({error}): move the file aside to load the rest"
        ) from None


def read_lines(path: Path) -> Iterator[bytes]:
    """The record lines of a closed file, in order (each without its newline); ValueError naming the file
    if its zstd stream is damaged (the lines before are yielded)."""
    with open_binary(path) as handle:  # never through a symbolic link (LinkRefused)
        reader = zstandard.ZstdDecompressor().stream_reader(handle, read_across_frames=True)
        rest = b""
        while chunk := _chunk(reader, path):
            pieces = (rest + chunk).split(b"\n")
            rest = pieces.pop()
            yield from pieces
    if rest:
        raise ValueError(f"{path}: the last record has no newline: not a closed landing file")


# a frame's line with the frame as sent: its receive time, connection (a JSON string) and the frame
_AS_SENT = re.compile(rb'\{"t":(\d+),"c":("(?:[^"\\]|\\.)*"),"r":(\{.*\})\}\Z', re.DOTALL)


def record(line: bytes) -> dict:
    """A record line decoded (ValueError if it is not JSON): a frame's `d` is its text as received,
    whether the line holds it as a JSON string (`d`) or as sent (`r`, sliced out byte for byte)."""
    sent = _AS_SENT.match(line)
    if sent is None:
        return json.loads(line)
    return {"t": int(sent[1]), "c": json.loads(sent[2]), "d": sent[3].decode()}


def read_file(path: Path) -> list[dict]:
    """The records of a closed file, decoded (`d` stays the frame's text as received); the whole file
    is read (its zstd checksums checked) before a line is decoded, so damage is an error naming it."""
    if path.name.endswith(PART):
        raise ValueError(f"{path} is still open (or left by a crash: recover() closes it)")
    return [record(line) for line in list(read_lines(path))]


def closed_files(root: Path, venue: str, channel: str, hour: str | None = None) -> list[Path]:
    """The closed files of a channel (of one hour, `2026-11-23T17Z`, if given), oldest first. A
    symbolic link is not one (nor is a channel or venue directory that is a link entered): only
    the collector writes here, and no landing area is read through a link (core/landing_files.py)."""
    directory = Path(root) / venue / channel
    try:
        names = scan(directory, root).files
    except LinkRefused:
        return []
    prefix = f"{hour}." if hour else ""
    paths = [directory / name for name in names if name.endswith(SUFFIX) and name.startswith(prefix)]
    return sorted(paths, key=lambda p: (p.name.split(".", 1)[0], int(p.name.split(".")[1])))
