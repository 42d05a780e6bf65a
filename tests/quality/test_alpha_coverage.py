"""The alphas coverage engine on a hand-made landing area and real MongoDB collections: what the
latest listing names is expected, unplaceable alphas count as missing, unlisted files do not."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from marketdata_assets.datasets.alpha_files import land_alpha, listing_path
from marketdata_assets.quality import alpha_coverage as cov
from marketdata_assets.quality.alpha_coverage import AccountMonth, coverage


def alpha(alpha_id: str, alpha_type: str = "REGULAR") -> dict:
    return {"id": alpha_id, "type": alpha_type, "dateCreated": "2025-07-04T10:00:00-04:00"}


@pytest.mark.parametrize("lookup_limit", [500, 0], ids=["by-month-then-id", "every-id-once"])
def test_listing_unplaceable_and_unlisted_files(tmp_path, mongo, mongo_db_name, monkeypatch, lookup_limit):
    monkeypatch.setattr(cov, "LOOKUP_LIMIT", lookup_limit)
    regular, super_ = mongo.client[mongo_db_name]["regular"], mongo.client[mongo_db_name]["super"]
    for a in (alpha("Reg0001"), alpha("Reg0002"), alpha("Sup0001", "SUPER"), alpha("Gone001")):
        land_alpha(tmp_path, "main", a, fsync=False)
    path = listing_path(tmp_path, "2025-07", "main")
    path.parent.mkdir(parents=True)  # listed: two REGULAR (one never landed), one SUPER, one unplaceable
    path.write_text(
        json.dumps(
            {"listed": 5, "unplaceable": 1, "ids": {"REGULAR": ["Reg0001", "Reg0003"], "SUPER": ["Sup0001"]}}
        )
    )
    in_july = {"_dates": {"dateCreated": datetime(2025, 7, 4, 14, tzinfo=UTC)}}
    regular.insert_many([{"_id": "Reg0001", **in_july}, {"_id": "Gone001"}])
    super_.insert_one({"_id": "Sup0001"})

    grid = coverage(
        tmp_path, ["2025-06", "2025-07"], ["main", "research"], {"REGULAR": regular, "SUPER": super_}
    )
    cell = grid.cells[AccountMonth("main", "2025-07")]
    assert (cell.expected, cell.stored, cell.unplaceable, cell.not_listed) == (4, 2, 1, 2)
    assert cell.missing == ["Reg0003"] and cell.share == 0.5 and cell.listed
    assert set(grid.cells) == {AccountMonth("main", "2025-07")} and grid.overall == 0.5
    assert grid.accounts == ["main", "research"]
    assert "| main | 2025-07 | 4 | 2 | 1 | Reg0003 |" in grid.markdown()
