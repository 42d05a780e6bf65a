"""An alpha file's content as the importer reads it, the common case taken fast.

Landed files are canonical JSON (sorted keys, compact, UTF-8, one newline: datasets/alpha_files.py).
orjson parses such a file in a third of the strict parser's time; when encoding the parsed object
again gives the file's bytes back, the text had no duplicate key, no BOM and nothing a parser could
read two ways, so it is the alpha the strict parser would give, with no notes. Any other file takes
the strict parser (parse_alpha_file), which finds and words its problems. The plausible window of
dateCreated is read from the settings once per import instead of once per alpha.
"""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from marketdata_assets.core import plausibility
from marketdata_assets.datasets.alpha_files import (
    API_TZ,
    PLAUSIBILITY_VENUE,
    canonical_json,
    implausible_created,
    parse_alpha_file,
    parse_api_datetime,
)

_CANONICAL_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE


def canonical_alpha(data: bytes) -> dict | None:
    """The alpha of a file holding canonical JSON of an object and one newline (None: not so).
    orjson writes small floats differently from Python (0.000054, Python 5.4e-05): on a mismatch
    Python's canonical encoder decides."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if type(value) is not dict:
        return None
    if orjson.dumps(value, option=_CANONICAL_OPTIONS) == data or canonical_json(value) + b"\n" == data:
        return value
    return None


def parse_alpha(data: bytes) -> tuple[dict | None, str | None, list[str]]:
    """As datasets.alpha_files.parse_alpha_file: (alpha, None, notes) or (None, reason, notes)."""
    alpha = canonical_alpha(data)
    if alpha is not None:
        return alpha, None, []
    return parse_alpha_file(data)


class PlausibleCreated:
    """implausible_created with the window's settings read once: a dateCreated inside the window
    (its upper end from the clock at every call, as a fresh window has it) passes at once; any other
    is judged, and worded, by implausible_created itself."""

    def __init__(self) -> None:
        window = plausibility.window(PLAUSIBILITY_VENUE)
        self.earliest, self.tolerance = window.earliest, window.tolerance

    def __call__(self, created: datetime, text: str) -> str | None:
        if self.earliest <= created <= datetime.now(UTC) + self.tolerance:
            return None
        return implausible_created(created, text)


def month_of_valid(date_created_iso: str) -> str:
    """datasets.alpha_files.month_of of a dateCreated already found plausible (validate_alpha):
    'YYYY-MM' in America/New_York, without judging it a second time."""
    created = parse_api_datetime(date_created_iso).astimezone(API_TZ)
    return f"{created.year:04d}-{created.month:02d}"
