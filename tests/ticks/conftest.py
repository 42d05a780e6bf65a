"""What the ticks tests share: `store`, the test's ClickHouse database with the tick tables in it."""

import pytest


@pytest.fixture
def store(clickhouse):
    from marketdata_assets.stores.clickhouse import tables as ct

    with clickhouse.get_client() as client:
        ct.ensure_tables(client, clickhouse.database)
    return clickhouse


@pytest.fixture
def okx_trades_of_any_day(monkeypatch):
    """OKX's REST serves trades of the last 3 months only (its declared Reach) and the replay serves any
    day: tests about other things on a fixed past day lift that limit (the reach itself is tested in
    tests/ticks/test_crypto_dataset_assets.py)."""
    from marketdata_assets.sources.okx.rest import OkxClient

    monkeypatch.setattr(OkxClient, "REACH", {k: v for k, v in OkxClient.REACH.items() if k != "trades"})
