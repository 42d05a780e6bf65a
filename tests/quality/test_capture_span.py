"""The ids before a live capture began, judged apart from the captured span (quality/continuity.py
`with_capture`, quality/slice_checks.py `by_hour`), and the refill's choice of them. No server, no
process."""

from __future__ import annotations

from datetime import UTC, date, datetime

from marketdata_assets.quality.checks import Verdict
from marketdata_assets.quality.continuity import IdHole, SliceIds, _only_before_capture, with_capture
from marketdata_assets.quality.slice_checks import _ids_verdict, _with_notes
from marketdata_assets.sources.registry import id_sequence

DAY = date(2026, 11, 27)
BEGAN = datetime(2026, 11, 27, 13, 15, 2, tzinfo=UTC)
KEY = f"{DAY}|OKX:BTC-USDT"


def ids(*holes: IdHole, ranges: int | None = None, unlisted: int = 0) -> SliceIds:
    """An OKX live slice (first stored id 11,149) with `holes` found by find_holes."""
    return SliceIds(
        "OKX",
        "BTC-USDT",
        DAY,
        7,
        "OKX_LIVE",
        id_sequence("OKX", "OKX_LIVE", "trades"),
        rows=5_000,
        first_id=11_149,
        last_id=16_200,
        previous_last_id=1_000,
        missing=sum(h.missing for h in holes) + unlisted,
        ranges=len(holes) if ranges is None else ranges,
        holes=holes,
    )


MIDNIGHT = IdHole("OKX", "BTC-USDT", DAY, 1_001, 11_148, at_midnight=True)  # 00:00 -> 13:15
INSIDE = IdHole("OKX", "BTC-USDT", DAY, 12_000, 12_009)  # the capture lost 10 ids


def captured(found: SliceIds) -> SliceIds:
    return with_capture({KEY: found}, {found.key: (11_149, BEGAN)})[KEY]


def test_ids_before_capture_are_said_not_failed():
    found = captured(ids(MIDNIGHT))
    verdict = _ids_verdict(KEY, found)
    assert verdict.passed
    assert verdict.description == (
        "OKX:BTC-USDT 2026-11-27: 5,000 trades, tradeId ids 11149-16200 complete since capture began; "
        "10,148 tradeId id(s) before capture (from 13:15 UTC) not stored: 1001-11148"
    )
    assert (verdict.metadata["missing_ids"], verdict.metadata["missing_before_capture"]) == (0, 10_148)
    assert verdict.metadata["captured_from"] == "2026-11-27 13:15:02 UTC, id 11149"
    assert "| 1001 | 11148 | 10,148 | before capture |" in verdict.metadata["holes"]


def test_without_a_capture_start_the_same_hole_fails_as_before():
    verdict = _ids_verdict(KEY, ids(MIDNIGHT))
    assert not verdict.passed and verdict.severity == "ERROR"
    assert verdict.description == (
        "OKX:BTC-USDT 2026-11-27: 10,148 tradeId id(s) missing in 1 range(s): 1001-11148 (at midnight)"
    )


def test_a_hole_inside_the_capture_still_fails_and_the_span_before_is_said_beside_it():
    verdict = _ids_verdict(KEY, captured(ids(MIDNIGHT, INSIDE)))
    assert not verdict.passed
    assert verdict.description == (
        "OKX:BTC-USDT 2026-11-27: 10 tradeId id(s) missing in 1 range(s): 12000-12009; "
        "10,148 tradeId id(s) before capture (from 13:15 UTC) not stored: 1001-11148"
    )
    assert verdict.metadata["missing_ids"] == 10


def test_ranges_not_listed_are_not_assumed_before_capture():
    found = captured(ids(MIDNIGHT, ranges=3, unlisted=20))  # find_holes listed 1 of 3 ranges
    assert (found.passed, found.missing_in_capture, found.missing_before_capture) == (False, 20, 10_148)


def test_a_capture_that_began_the_day_before_makes_the_midnight_hole_a_loss():
    found = with_capture({KEY: ids(MIDNIGHT)}, {ids().key: (900, datetime(2026, 11, 26, 23, 40, tzinfo=UTC))})
    assert not found[KEY].passed and found[KEY].before_capture == ()


def refill_command(hour: str, instruments: list[str]) -> str:
    return f"refill {hour} {','.join(instruments)}"


def test_the_hour_says_each_instruments_span_before_capture_and_names_the_refill_command():
    other = f"{DAY}|DERIBIT:BTC-PERPETUAL"
    verdicts = {KEY: _ids_verdict(KEY, captured(ids(MIDNIGHT))), other: Verdict(True, "complete", {})}
    hour = "2026-11-27-14:00"
    combined = Verdict(True, f"{hour}: 2 instrument(s) passed", {"instruments": 2})
    verdict = _with_notes(hour, combined, verdicts, [other, KEY], refill_command)
    note = "OKX:BTC-USDT: 10,148 tradeId id(s) before capture (from 13:15 UTC) not stored: 1001-11148"
    command = "refill 2026-11-27-14:00 OKX:BTC-USDT"
    assert verdict.passed and verdict.metadata["before_capture"] == note
    assert verdict.metadata["refill_command"] == command
    assert verdict.description == f"{hour}: 2 instrument(s) passed; {note}; refill: {command}"
    complete = _with_notes(hour, combined, {other: verdicts[other]}, [other], refill_command)
    assert complete == combined  # nothing missing: nothing said, no command


def test_the_capture_refill_fetches_only_the_ids_before_capture():
    found = _only_before_capture(captured(ids(MIDNIGHT, INSIDE)))
    assert (found.holes, found.missing, found.ranges) == ((MIDNIGHT,), 10_148, 1)
    untouched = _only_before_capture(ids(MIDNIGHT, INSIDE))  # no capture start: nothing of it
    assert (untouched.holes, untouched.missing) == ((), 0)
