"""The live tests' `store` (the other fixtures of the live tests: tests/fixtures/live.py)."""

import pytest


@pytest.fixture
def store(clickhouse):
    """The test database's ClickHouse resource with every table made."""
    from marketdata_assets.stores.clickhouse import tables

    with clickhouse.get_client() as client:
        tables.ensure_tables(client, clickhouse.database)
    return clickhouse
