"""What the ticks tests share: `store`, the test's ClickHouse database with the tick tables in it."""

import pytest


@pytest.fixture
def store(clickhouse):
    from marketdata_assets.stores.clickhouse import tables as ct

    with clickhouse.get_client() as client:
        ct.ensure_tables(client, clickhouse.database)
    return clickhouse
