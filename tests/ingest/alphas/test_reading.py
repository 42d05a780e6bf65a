"""The importer's fast reading of canonical alpha files gives what the strict parser gives (alpha,
problem and notes) for canonical files and for every kind of file it must leave to the strict
parser; the cheaper plausibility judge and month agree with datasets.alpha_files. No server."""

from __future__ import annotations

from datetime import datetime

import pytest

from marketdata_assets.datasets.alpha_files import (
    canonical_file_bytes,
    implausible_created,
    month_of,
    parse_alpha_file,
    to_utc,
)
from marketdata_assets.ingest.alphas.reading import (
    PlausibleCreated,
    canonical_alpha,
    month_of_valid,
    parse_alpha,
)
from marketdata_assets.replay.alpha_factory import NY, make_alpha

ALPHA = make_alpha(3, "REGULAR", datetime(2025, 7, 15, 10, tzinfo=NY))
CANONICAL = [
    ALPHA,
    {**ALPHA, "margin": 5.4e-05, "big": 2**63 - 1, "neg": -0.0, "huge": 1e300},  # Python's float text
    {**ALPHA, "name": 'é中😀 \x00\x1f\x7f\u2028 "quoted" \\ back', "é": 1, "😀": {"a.b": [{}]}},
]
NOT_CANONICAL = {
    "duplicate key, same value": b'{"id":"Abc1234","id":"Abc1234"}\n',
    "duplicate key, different values": b'{"id":"Abc1234","id":"Xyz1234"}\n',
    "BOM": b"\xef\xbb\xbf" + canonical_file_bytes(ALPHA),
    "no newline": canonical_file_bytes(ALPHA)[:-1],
    "spaces": b'{"id": "Abc1234"}\n',
    "unsorted keys": b'{"type":"REGULAR","id":"Abc1234"}\n',
    "integer beyond 64 bits": b'{"id":"Abc1234","n":18446744073709551616}\n',
    "lone surrogate": b'{"id":"Abc1234","s":"\\ud800"}\n',
    "NaN": b'{"id":"Abc1234","n":NaN}\n',
    "overflowing float": b'{"id":"Abc1234","n":1e400}\n',
    "minus zero integer": b'{"id":"Abc1234","n":-0}\n',
    "array": b"[1,2]\n",
    "truncated": canonical_file_bytes(ALPHA)[:100],
    "empty": b"",
    "invalid UTF-8": b'{"id":"Abc\xff1234"}\n',
}


@pytest.mark.parametrize("alpha", CANONICAL, ids=["alpha", "floats and integers", "unicode keys"])
def test_canonical_files_are_read_fast_and_as_the_strict_parser_reads_them(alpha):
    data = canonical_file_bytes(alpha)
    assert canonical_alpha(data) == alpha
    assert parse_alpha(data) == parse_alpha_file(data) == (alpha, None, [])


@pytest.mark.parametrize("data", NOT_CANONICAL.values(), ids=NOT_CANONICAL.keys())
def test_any_other_file_is_left_to_the_strict_parser(data):
    assert canonical_alpha(data) is None
    assert parse_alpha(data) == parse_alpha_file(data)


@pytest.mark.parametrize(
    "created",
    [
        "2025-07-31T23:30:00-04:00",
        "2025-08-01T03:30:00Z",
        "2062-07-15T10:00:00-04:00",
        "1970-01-01T00:00:00Z",
    ],
)
def test_plausibility_and_month_agree_with_alpha_files(created):
    judge = PlausibleCreated()
    problem = implausible_created(to_utc(created), created)
    assert judge(to_utc(created), created) == problem
    if problem is None:
        assert month_of_valid(created) == month_of(created)
