"""Issue #28 for alphas: a dateCreated that can't be true (a 2062 typo, an epoch-zero stamp) places
no alpha in any month: month placement, validation, landing and packaging all refuse it, naming it
(the import's quarantine of such a file is a case of test_bad_input.py)."""

from __future__ import annotations

from datetime import datetime

import pytest

from marketdata_assets.core import plausibility
from marketdata_assets.datasets.alpha_files import land_alpha, month_of
from marketdata_assets.ingest.alphas.packages import PackageError, _check_alpha
from marketdata_assets.replay.alpha_factory import NY, make_alpha
from marketdata_assets.stores.mongo.documents import validate_alpha

TYPO = "2062-07-15T10:00:00-04:00"


def alpha(created: str) -> dict:
    return {
        **make_alpha(7, "REGULAR", datetime(2025, 7, 15, 10, tzinfo=NY)),
        "id": "Typo001",
        "dateCreated": created,
    }


def test_month_placement_refuses_an_implausible_date_created_and_keeps_plausible_ones():
    assert month_of("2025-07-31T23:30:00-04:00") == "2025-07"
    with pytest.raises(
        plausibility.ImplausibleTime, match=rf"dateCreated: implausible time: '{TYPO}' is after now"
    ):
        month_of(TYPO)
    with pytest.raises(ValueError, match="is before ALPHA_API's earliest plausible day 2016-01-01"):
        month_of("1970-01-01T00:00:00Z")


def test_validation_names_it_and_landing_and_packaging_refuse_it(tmp_path):
    assert validate_alpha(alpha("2025-07-15T10:00:00-04:00")) == []
    (problem,) = validate_alpha(alpha(TYPO))
    assert problem.startswith(f"dateCreated: implausible time: '{TYPO}' is after now + 10 min (")
    with pytest.raises(ValueError, match="implausible time"):  # land_month quarantines it as unplaceable
        land_alpha(tmp_path, "main", alpha(TYPO))
    assert not list(tmp_path.rglob("*.json"))
    with pytest.raises(PackageError, match=rf"invalid alpha: dateCreated: implausible time: '{TYPO}'"):
        _check_alpha(alpha(TYPO), "REGULAR/2062-07/main.jsonl.gz line 1", "REGULAR", "2062-07", "Typo001")
