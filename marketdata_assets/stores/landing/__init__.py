"""Raw landing of live frames: hourly files per venue and channel, zstd-compressed JSON lines.

Why a store: these files are where live data is kept first and for good (the batch layer loads
closed hours from them), and they know nothing of any venue: a frame is an opaque text with a
local receive time and a connection id. The collector (ingest/live) writes through `LandingWriter`;
the hourly loaders and the tests read through `read_file` / `closed_files`.

Layout under the landing root (settings.live_landing_dir()):
    <venue>/<channel>/<YYYY-MM-DD>T<HH>Z.<segment>.jsonl.zst       a closed file (never changes again)
    <venue>/<channel>/<YYYY-MM-DD>T<HH>Z.<segment>.jsonl.zst.json  its summary, written just before it
    <venue>/<channel>/<YYYY-MM-DD>T<HH>Z.<segment>.jsonl.zst.part  open, written now (or left by a crash)
`segment` tells apart two files of one hour (a restart within the hour opens a new one). A record
is one line: `{"t": receive ns, "c": connection id, "r": the frame}` for a frame that is a JSON
object on one line (nearly all: embedded as sent, byte for byte), `{"t", "c", "d": the frame text
as a JSON string}` for any other, `{"t", "c", "m": marker kind, "x": {details}}` for a marker
(connect, disconnect, subscribe, gap, resync, overflow). `record` reads a line back, a frame's text
as `d` either way. See writer.py for the write/close/recover protocol.
"""

from marketdata_assets.stores.landing.lines import BAD_CHANNEL
from marketdata_assets.stores.landing.reader import closed_files, read_file, read_lines, record
from marketdata_assets.stores.landing.writer import (
    CONTROL_CHANNEL,
    LandingWriter,
    Recovered,
    hour_key,
    recover,
)

__all__ = [
    "BAD_CHANNEL",
    "CONTROL_CHANNEL",
    "LandingWriter",
    "Recovered",
    "closed_files",
    "hour_key",
    "read_file",
    "read_lines",
    "record",
    "recover",
]
