"""Writing raw frames to hourly landing files, closing them, and recovering what a crash left.

The protocol, so that a reader never sees half a file and a crash loses only unflushed frames:
- A file is opened as `<name>.part` (exclusively created, `flock`ed while open: the lock tells a
  live writer's file from a crash's leftover, in this process or another).
- Every line is a whole record ending in a newline. `flush` (every `flush_lines` records and at least
  every `flush_interval_s`, driven by `tick`) compresses the lines since the last flush into one zstd
  frame and hands it to the OS: a killed process loses at most what came after the last flush, and
  everything before it decodes (zstd frames concatenate). One compressor serves every file of a writer:
  a zstd stream kept open per file held ~0.6 MB of context each, 3.8 GB at 2,000 instruments' 6,000
  channels (bench live_capture --universe); a file now holds only its lines since the last flush.
- When the hour of a file ends (the first record of a later hour on that channel, or `tick` at a
  time past the hour), the file is flushed; the next `tick` (each second) fsyncs it (many at once: one
  syncfs for all), writes its summary
  (`<name>.json`: lines, frames, markers by kind, first/last receive time) and renames `<name>.part`
  to `<name>`, outside the writer's lock: the frames of the new hour never wait on the old files'
  fsyncs (a universe's thousands of channels turn the hour in the same second).
- In an hour's last 30 s, `tick` makes each open channel's next-hour file ahead (`<name>.part.ready`,
  empty, locked), so the turn itself creates none; its first record renames it `.part`, and one no record
  came to is removed when its hour ends (or at a stop, or by `recover` after a crash).
- `recover` closes the `.part` files no live writer holds: it decodes what it can, keeps the
  complete lines, drops a torn last line (and any line that is not JSON), counts both, appends a
  `crash` marker saying so, and writes the closed file and its summary as above.

Receive times are nanoseconds on the local clock (time.time_ns); the hour of a record is the UTC
hour of its receive time. One writer serves one venue; a process may run several (other venues)
on the same root. Thread-safe: one lock per writer.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import orjson
import zstandard

from marketdata_assets.core.files import fsync_directory, sync_filesystem
from marketdata_assets.core.landing_files import LinkRefused, open_binary, walk
from marketdata_assets.stores.landing.lines import HOUR_NS, add_frames

SUFFIX = ".jsonl.zst"
PART = ".part"
READY = ".ready"  # `<name>.part.ready`: a file made ahead for the next hour, empty until its first record
AHEAD_S = 30  # in an hour's last seconds, `tick` makes the next hour's file of each channel open in it
SUMMARY = ".json"
SYNC_TOGETHER = 16  # files closed at once from which one syncfs replaces their fsyncs (`close_files`)
RECOVER_TOGETHER = 512  # crashed files recovered (and held locked) at a time
_COMPONENT = re.compile(
    r"^[A-Za-z0-9@._=!-]{1,120}$"
)  # `!`: Binance's all-market streams (`!forceOrder@arr`)


def hour_key(ns: int) -> str:
    """The UTC hour of a receive time, as file names carry it: `2026-11-23T17Z`."""
    return datetime.fromtimestamp(ns // 1_000_000_000, UTC).strftime("%Y-%m-%dT%HZ")


def checked_component(name: str, what: str) -> str:
    """A venue or channel name as a path component: letters, digits, `@._=!-` only, never `.`/`..`."""
    if not _COMPONENT.match(name) or name in (".", ".."):
        raise ValueError(f"{what} {name!r} cannot name a landing folder: use letters, digits and @._=!- only")
    return name


FRAME_LINE = (
    b'{"t":%d,"c":%b,"d":%b}\n'  # a frame's record: receive time, connection, the frame as a JSON string
)
CONTROL_CHANNEL = "_control"  # the collector's channel of acks, errors, heartbeats, frames of no channel


LEVEL = 3  # zstd level of the landing files


def _compressor(level: int) -> zstandard.ZstdCompressor:
    """The landing's zstd compressor: each frame carries its checksum (a damaged file is an error naming
    it)."""
    return zstandard.ZstdCompressor(level=level, write_checksum=True)


def frame_line(recv_ns: int, conn: str, text: str) -> bytes:
    """A frame's record (orjson writes the JSON strings: json.dumps cost a microsecond a frame)."""
    return FRAME_LINE % (recv_ns, orjson.dumps(conn), orjson.dumps(text))


def marker_line(recv_ns: int, conn: str, kind: str, details: dict) -> bytes:
    return (
        f'{{"t":{recv_ns},"c":{json.dumps(conn)},"m":{json.dumps(kind)},'
        f'"x":{json.dumps(details, separators=(",", ":"), default=str)}}}\n'
    ).encode()


@dataclass
class Summary:
    """What a closed file holds (written beside it as `<name>.json`)."""

    venue: str
    channel: str
    hour: str
    lines: int = 0
    frames: int = 0
    markers: dict[str, int] = field(default_factory=dict)
    first_ns: int | None = None
    last_ns: int | None = None
    recovered: bool = False
    torn_dropped: int = 0  # a last line cut by the crash
    bad_dropped: int = 0  # other lines of a recovered file that were not JSON

    def as_dict(self) -> dict:
        """Its fields as the summary file holds them (`asdict` deep-copies: a fifth of a file's close)."""
        return {**vars(self), "markers": dict(self.markers)}

    def count(self, recv_ns: int, marker: str | None, lines: int = 1, last_ns: int | None = None) -> None:
        """`lines` records received from `recv_ns` to `last_ns` (default: the same time): frames, or
        markers of kind `marker`."""
        last_ns = recv_ns if last_ns is None else last_ns
        self.lines += lines
        if marker is None:
            self.frames += lines
        else:
            self.markers[marker] = self.markers.get(marker, 0) + lines
        self.first_ns = recv_ns if self.first_ns is None else min(self.first_ns, recv_ns)
        self.last_ns = last_ns if self.last_ns is None else max(self.last_ns, last_ns)


def closed_name(part: Path) -> Path:
    return part.with_name(part.name.removesuffix(PART))


def _summary_written(final: Path, summary: Summary) -> tuple[Path, Path]:
    """(the summary's temporary file, written; its name beside `final`)."""
    side = final.with_name(final.name + SUMMARY)
    tmp = side.with_name(side.name + ".tmp")
    tmp.write_text(json.dumps(summary.as_dict(), sort_keys=True))
    return tmp, side


def _publish(source: Path, final: Path, summary: Summary) -> Path:
    """Write the summary, then rename `source` to the closed name `final` (a reader that sees the
    closed file finds its summary); both made durable."""
    tmp, side = _summary_written(final, summary)
    os.replace(tmp, side)
    os.replace(source, final)
    fsync_directory(final.parent)
    return final


def _publish_all(
    moves: list[tuple[Path, Path, Summary, Path | None]], root: Path, unsynced=None
) -> list[Path]:
    """`_publish` of many `(source, final, summary, removed)` at once: the summaries written, the sources
    and summaries made durable by one syncfs (where there is none, `unsynced()` fsyncs the sources),
    each summary and source renamed into place and `removed` (if any) unlinked, then one more syncfs for
    the renames (or each directory's fsync)."""
    staged = [
        (source, final, *_summary_written(final, summary), removed)
        for source, final, summary, removed in moves
    ]
    if not sync_filesystem(root) and unsynced is not None:
        unsynced()
    for source, final, tmp, side, removed in staged:
        os.replace(tmp, side)
        os.replace(source, final)
        if removed is not None:
            removed.unlink()
    if not sync_filesystem(root):
        for directory in {final.parent for _, final, _, _, _ in staged}:
            fsync_directory(directory)
    return [final for _, final, _, _, _ in staged]


def close_files(files: list[_OpenFile], root: Path) -> list[Path]:
    """Flushed files closed as `_OpenFile.close` closes one; from `SYNC_TOGETHER` files on (an hour's turn
    or a stop at a universe: thousands) their data and summaries made durable by one syncfs, renamed,
    then one more syncfs for the renames, in place of two fsyncs a file (each where there is no
    syncfs). Each lock is released after its file's rename, as one file's close does."""
    if len(files) < SYNC_TOGETHER:
        return [f.close() for f in files]
    moves = [(f.part, closed_name(f.part), f.summary, None) for f in files]
    finals = _publish_all(moves, root, lambda: [os.fsync(f.handle.fileno()) for f in files])
    for f in files:
        f.handle.close()
    return finals


class _OpenFile:
    """One `.part` file being written: its lines since the last flush, its lock and its running summary.
    A frame costs its record's bytes and two list appends: its count and times reach the summary at the
    next flush."""

    def __init__(
        self,
        directory: Path,
        summary: Summary,
        segment: int,
        compressor: zstandard.ZstdCompressor,
        ahead: bool = False,
    ):
        directory.mkdir(parents=True, exist_ok=True)
        self.summary, self.compressor = summary, compressor
        self.buffer: list[bytes] = []  # whole records not yet flushed, as the file holds them (UTF-8)
        self.times: list[int] = []  # receive times of the frames in `buffer`, not yet in the summary
        self.hour_start_ns = segment // HOUR_NS * HOUR_NS  # the receive times this file takes: its hour
        for attempt in range(100):
            self.part = directory / f"{summary.hour}.{segment + attempt}{SUFFIX}{PART}"
            if ahead and self.part.exists():
                continue
            try:
                # unbuffered: a flush is one write to the OS (4,000 files a second at a universe)
                self.handle = open(self._ready if ahead else self.part, "xb", buffering=0)  # noqa: SIM115
                break
            except FileExistsError:
                continue
        else:
            raise FileExistsError(f"no free segment name for {directory / summary.hour}")
        fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)

    @property
    def _ready(self) -> Path:
        return self.part.with_name(self.part.name + READY)

    def begin(self) -> bool:
        """A file made ahead takes its `.part` name at its first record (a link: never over another file).
        False if that name was taken meanwhile (the file is discarded)."""
        try:
            os.link(self._ready, self.part)
        except FileExistsError:
            self.discard()
            return False
        os.unlink(self._ready)
        return True

    def discard(self) -> None:
        """A file made ahead that no record came to: removed."""
        self._ready.unlink(missing_ok=True)
        self.handle.close()

    def takes(self, recv_ns: int) -> bool:
        return 0 <= recv_ns - self.hour_start_ns < HOUR_NS

    def write(self, data: bytes, recv_ns: int, marker: str | None) -> None:
        """One whole record (a marker's when `marker` names its kind), kept for the next flush."""
        self.buffer.append(data)
        if marker is None:
            self.times.append(recv_ns)
        else:
            self.summary.count(recv_ns, marker)

    def flush(self) -> None:
        """The records since the last flush as one zstd frame (with its checksum), handed to the OS; their
        frames counted in the summary."""
        times = self.times
        if times:
            self.summary.count(min(times), None, len(times), max(times))
            self.times = []
        if self.buffer:
            data = memoryview(self.compressor.compress(b"".join(self.buffer)))
            while data:  # a raw write may take less than all
                data = data[self.handle.write(data) :]
            self.buffer = []

    def close(self) -> Path:
        """Flushed (by its writer, under its lock: the compressor is shared), made durable, its summary
        written and renamed to its closed name."""
        os.fsync(self.handle.fileno())
        final = _publish(self.part, closed_name(self.part), self.summary)
        self.handle.close()  # releases the lock after the rename: recovery never sees it unlocked
        return final


class LandingWriter:
    """Hourly landing files of one venue, one open file per channel (see the module doc)."""

    def __init__(
        self,
        root: Path,
        venue: str,
        *,
        level: int = LEVEL,
        flush_lines: int = 1000,
        flush_interval_s: float = 1.0,
    ):
        self.root, self.venue = Path(root), checked_component(venue, "venue")
        self.level, self.flush_lines, self.flush_interval_ns = level, flush_lines, int(flush_interval_s * 1e9)
        self.compressor = _compressor(level)  # every file's (used under the lock)
        self.files: dict[str, _OpenFile] = {}
        self.ending: list[_OpenFile] = []  # flushed files whose hour ended: the next `tick` closes them
        self.made_ahead: dict[str, _OpenFile] = {}  # channel -> its file of the next hour (`_make_ahead`)
        self.closed: list[Path] = []
        self.landed: Counter[str] = Counter()  # channel -> frames landed by `frames` (what was received)
        self.lock = threading.Lock()
        self.last_flush_ns = time.time_ns()

    def recover_partials(self) -> list[Recovered]:
        """Close the partial files of this venue left by a crash (`recover`)."""
        return recover(self.root / self.venue)

    def frame(self, channel: str, conn: str, text: str, recv_ns: int) -> None:
        """One frame as received (`text` exactly as it came off the socket)."""
        self._write(channel, frame_line(recv_ns, conn, text), recv_ns, None)

    def frames(self, frames: list[tuple[str, str, str, int]]) -> None:
        """Many (channel, conn, text, recv_ns) frames at once, in order within each channel, under one lock
        (the collector lands its batches so): each line goes straight to its channel's open file, a frame of
        another hour to that hour's file. A frame that is a JSON object on one line (its shape; that it is
        JSON, the caller's word: a frame it decoded, any channel but `BAD_CHANNEL`) is written as sent
        (`r`), any other as a JSON string (`d`); `record` reads either back as its text. `landed` counts
        them by channel."""
        with self.lock:
            add_frames(self, frames)

    def _close_all(self, ended: list[_OpenFile]) -> list[Path]:
        """Close flushed files (`close_files`: fsync, summary, rename), outside the writer's lock when
        called from `tick`: at an hour's turn a universe's thousands of files close while frames go
        on landing in the next hour's."""
        paths = close_files(ended, self.root)
        with self.lock:
            self.closed.extend(paths)
        return paths

    def _file(self, channel: str, recv_ns: int) -> _OpenFile:
        """The open file of a channel for a receive time: a file of another hour is flushed and left to
        the next `tick` to close (closing it here would hold every frame of the batch behind its fsyncs)."""
        current = self.files.get(channel)
        if current is not None and not current.takes(recv_ns):
            self._end(channel)
            current = None
        if current is None:
            made = self.made_ahead.pop(channel, None)
            if made is not None and not made.takes(recv_ns):
                self.made_ahead[channel] = made  # another hour's (a clock stepped back): kept for it
            elif made is not None and made.begin():
                current = self.files[channel] = made
        if current is None:
            directory = self.root / self.venue / checked_component(channel, "channel")
            current = self.files[channel] = _OpenFile(
                directory, Summary(self.venue, channel, hour_key(recv_ns)), recv_ns, self.compressor
            )
        return current

    def _end(self, channel: str) -> None:
        """The channel's open file, its hour ended (or the writer stopping): flushed and left for the next
        `tick` (or `close`) to close. Under the lock."""
        f = self.files.pop(channel)
        f.flush()
        self.ending.append(f)

    def _make_ahead(self, now_ns: int) -> int:
        """In an hour's last `AHEAD_S`, the next hour's file of each channel open in it, made (outside the
        lock) so that the hour's turn opens none: at a universe that is thousands of file creations, the
        frames waiting on them. A file made ahead that its hour ends without is removed. Returns how
        many were made; creating them stops at the first OSError (too many open files: the turn creates
        the rest as before)."""
        next_ns = (now_ns // HOUR_NS + 1) * HOUR_NS
        with self.lock:
            stale = [c for c, f in self.made_ahead.items() if f.hour_start_ns < now_ns // HOUR_NS * HOUR_NS]
            dropped = [self.made_ahead.pop(c) for c in stale]
            wanted = (
                [c for c, f in self.files.items() if f.hour_start_ns < next_ns and c not in self.made_ahead]
                if next_ns - now_ns <= AHEAD_S * 1_000_000_000
                else []
            )
        for f in dropped:
            f.discard()
        made = {}
        try:
            for channel in wanted:
                directory = self.root / self.venue / channel
                summary = Summary(self.venue, channel, hour_key(next_ns))
                made[channel] = _OpenFile(directory, summary, next_ns, self.compressor, ahead=True)
        except OSError:
            pass
        with self.lock:
            for channel, f in made.items():
                open_now = self.files.get(channel)
                if channel in self.made_ahead or open_now is None or open_now.takes(next_ns):
                    f.discard()  # the channel turned (or closed) meanwhile
                else:
                    self.made_ahead[channel] = f
        return len(made)

    def marker(self, channel: str, conn: str, kind: str, recv_ns: int | None = None, **details) -> None:
        """A marker record in a channel's stream: connect, disconnect, subscribe, gap, resync, overflow."""
        recv_ns = time.time_ns() if recv_ns is None else recv_ns
        self._write(channel, marker_line(recv_ns, conn, kind, details), recv_ns, kind)

    def _write(self, channel: str, line: bytes, recv_ns: int, marker: str | None) -> None:
        """One record into the channel's file of its hour; flushed every `flush_lines`."""
        with self.lock:
            current = self._file(channel, recv_ns)
            current.write(line, recv_ns, marker)
            if len(current.buffer) >= self.flush_lines:
                current.flush()

    def tick(self, now_ns: int | None = None, unlanded_ns: int | None = None) -> list[Path]:
        """Flush every file if `flush_interval_s` has passed; close the files whose hour ended (a later
        hour's frame came, or `now_ns` is past it), off the lock. `unlanded_ns`: the receive time of the
        oldest frame its caller read and has not landed yet (a collector behind); a file stays open until
        that is past its hour too, so a backlog crossing the hour lands in its hour's file instead of
        reopening one per channel at every tick. Returns the files closed by this call."""
        now_ns = time.time_ns() if now_ns is None else now_ns
        turn_ns = now_ns if unlanded_ns is None else min(now_ns, unlanded_ns)
        with self.lock:
            for channel in [c for c, f in self.files.items() if turn_ns >= f.hour_start_ns + HOUR_NS]:
                self._end(channel)
            ending, self.ending = self.ending, []
            if now_ns - self.last_flush_ns >= self.flush_interval_ns:
                for f in self.files.values():
                    f.flush()
                self.last_flush_ns = now_ns
        closed = self._close_all(ending)
        self._make_ahead(now_ns)
        return closed

    def flush(self) -> None:
        with self.lock:
            for f in self.files.values():
                f.flush()

    def close(self) -> list[Path]:
        """Close every file (a clean stop: the hour's file is complete as far as it goes)."""
        with self.lock:
            for channel in list(self.files):
                self._end(channel)
            ending, self.ending = self.ending, []
            unused, self.made_ahead = list(self.made_ahead.values()), {}
        for f in unused:
            f.discard()
        return self._close_all(ending)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --------------------------------------------------------------------------------------------
# Recovery
# --------------------------------------------------------------------------------------------


@dataclass
class Recovered:
    path: Path  # the closed file
    lines: int  # complete records kept (the crash marker not counted)
    torn_dropped: int
    bad_dropped: int


def _decodable(path: Path) -> bytes:
    """Everything a possibly truncated stream of zstd frames decodes to."""
    out = bytearray()
    with open_binary(path) as handle:  # never through a symbolic link (LinkRefused)
        reader = zstandard.ZstdDecompressor().stream_reader(handle, read_across_frames=True)
        with contextlib.suppress(zstandard.ZstdError):
            while chunk := reader.read(1 << 16):
                out += chunk
    return bytes(out)


def _kept_lines(data: bytes, summary: Summary) -> list[bytes]:
    """The complete JSON records of a salvaged stream; the torn and bad ones counted in `summary`."""
    pieces = data.split(b"\n")
    if pieces[-1]:
        summary.torn_dropped += 1
    kept = []
    for piece in pieces[:-1]:
        try:
            record = json.loads(piece)
            recv_ns = int(record["t"])
        except (ValueError, KeyError, TypeError):
            summary.bad_dropped += 1
            continue
        summary.count(recv_ns, record.get("m"))
        kept.append(piece + b"\n")
    return kept


def _salvage(part: Path, sync: bool = True) -> tuple[Path, Path, Summary, int]:
    """A crashed `.part`'s complete lines and a `crash` marker, written beside it as `<final>.recovering`
    (fsynced when `sync`): (that file, its closed name, its summary, the lines kept)."""
    final = closed_name(part)
    summary = Summary(part.parent.parent.name, part.parent.name, final.name.split(".", 1)[0], recovered=True)
    lines = _kept_lines(_decodable(part), summary)
    kept = summary.lines
    crash_ns = summary.last_ns if summary.last_ns is not None else time.time_ns()
    lines.append(
        marker_line(
            crash_ns,
            "",
            "crash",
            {"lines": kept, "torn_dropped": summary.torn_dropped, "bad_dropped": summary.bad_dropped},
        )
    )
    summary.count(crash_ns, "crash")
    rewritten = final.with_name(final.name + ".recovering")
    with open(rewritten, "wb") as out:
        with _compressor(LEVEL).stream_writer(out, closefd=False) as stream:
            for line in lines:
                stream.write(line)
        out.flush()
        if sync:
            os.fsync(out.fileno())
    return rewritten, final, summary, kept


def _recover_one(part: Path) -> Recovered:
    """Salvage a crashed `.part` into its closed file (written beside it, then renamed into place;
    the `.part` removed last, so a second recoverer finds nothing to do)."""
    rewritten, final, summary, kept = _salvage(part)
    path = _publish(rewritten, final, summary)
    part.unlink()
    fsync_directory(part.parent)
    return Recovered(path, kept, summary.torn_dropped, summary.bad_dropped)


def _recover_together(parts: list[Path], root: Path) -> list[Recovered]:
    """`_recover_one` of many (a crash at a universe leaves thousands) through `_publish_all`: one syncfs
    before the renames and one after, in place of three fsyncs a file (4,000 files: 5.4-6.9 s -> 2.1-2.2
    s, docs/live-capture.md). Fewer than `SYNC_TOGETHER`, or no syncfs: one at a time."""
    if len(parts) < SYNC_TOGETHER or not sync_filesystem(root):
        return [_recover_one(part) for part in parts]
    salvaged = [(part, *_salvage(part, sync=False)) for part in parts]
    finals = _publish_all([(rewritten, final, s, part) for part, rewritten, final, s, _ in salvaged], root)
    return [
        Recovered(path, kept, s.torn_dropped, s.bad_dropped)
        for path, (_, _, _, s, kept) in zip(finals, salvaged, strict=True)
    ]


def _remove_made_ahead(root: Path) -> None:
    """The files a crashed writer made ahead for an hour (`.part.ready`, empty): removed; a live writer's
    (locked) kept."""
    for ready in walk(root, keep=lambda name: name.endswith(SUFFIX + PART + READY)).files:
        try:
            handle = open_binary(ready)
        except (FileNotFoundError, LinkRefused):
            continue
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            ready.unlink(missing_ok=True)


def recover(root: Path) -> list[Recovered]:
    """Close every `.part` file under `root` that no live writer holds (see the module doc), many at a
    time (`_recover_together`, each locked until it is done); remove the files a crashed writer made
    ahead."""
    _remove_made_ahead(root)
    results: list[Recovered] = []
    with contextlib.ExitStack() as held:
        parts = []
        for part in walk(
            root, keep=lambda name: name.endswith(SUFFIX + PART)
        ).files:  # a link is no .part of ours
            try:
                handle = open_binary(part)
            except (FileNotFoundError, LinkRefused):  # closed meanwhile by its writer; a link is never read
                continue
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue  # a live writer's open file
            held.enter_context(handle)
            if part.exists():
                parts.append(part)
            if len(parts) >= RECOVER_TOGETHER:
                results += _recover_together(parts, root)
                parts = []
                held.close()
        results += _recover_together(parts, root)
    return results
