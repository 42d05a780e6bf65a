"""What the read tests share: a `reader` on the ticks tests' `store`, an engine run that loads from a
crypto replay; the alpha tests' `dbs` and the bar tests' `minute_store` (a TimescaleDB schema of the
test's own) are used here too (all three from tests/fixtures/, provided by tests/conftest.py)."""

from __future__ import annotations

from datetime import date

import pytest

from marketdata_assets.core.http import RetryPolicy
from marketdata_assets.datasets.slices import SliceKey
from marketdata_assets.ingest.engine import Engine
from marketdata_assets.read import Reader
from marketdata_assets.sources.venues import venue_client, venue_feed

DAY = date(2025, 1, 15)
FAST = RetryPolicy(max_retries=3, backoff_base_s=0.01, backoff_max_s=0.05)


@pytest.fixture
def reader(store):
    with (
        store.get_client() as client,
        Reader(clickhouse_client=client, clickhouse_database=store.database) as r,
    ):
        yield r


def ingest(
    target, base_url: str, venue: str, dataset: str, instruments, day: date = DAY, run_id: str = "run-1"
):
    """One engine run loading `dataset` of `instruments` for `day` from the replay at `base_url` into
    `target` (a ClickHouseResource)."""

    def client():
        return venue_client(venue, base_url, requests_per_minute=60_000, max_concurrency=4, retry=FAST)

    keys = [SliceKey(dataset, venue, i, day) for i in instruments]
    report = Engine(target.get_client, target.database, run_id).run(
        [[venue_feed(venue, client, keys, workers=2, attempts=1)]]
    )
    assert not report.failures(), report.failures_table()
    return keys
