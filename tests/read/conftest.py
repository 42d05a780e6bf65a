"""What the read tests share: `store` (the test's ClickHouse database with the tick tables), a
`reader` on it, a replay of the crypto venues and an engine run that loads from it, and a schema of
the test's own in the TimescaleDB test database (`minute_conn`)."""

from __future__ import annotations

import uuid
from datetime import date

import psycopg
import pytest
from psycopg import sql

from marketdata_assets.core import settings
from marketdata_assets.core.http import RetryPolicy
from marketdata_assets.datasets.slices import SliceKey
from marketdata_assets.ingest.engine import Engine
from marketdata_assets.read import Reader
from marketdata_assets.sources.venues import venue_client, venue_feed
from tests.alphas.conftest import dbs  # noqa: F401  (the alpha databases, a fixture of the alpha tests)

DAY = date(2025, 1, 15)
FAST = RetryPolicy(max_retries=3, backoff_base_s=0.01, backoff_max_s=0.05)


@pytest.fixture
def store(clickhouse):
    from marketdata_assets.stores.clickhouse import tables as ct

    with clickhouse.get_client() as client:
        ct.ensure_tables(client, clickhouse.database)
    return clickhouse


@pytest.fixture
def reader(store):
    with store.get_client() as client, Reader(clickhouse_client=client, clickhouse_database=store.database) as r:
        yield r


def ingest(store, base_url: str, venue: str, dataset: str, instruments, day: date = DAY, run_id: str = "run-1"):
    """One engine run loading `dataset` of `instruments` for `day` from the replay at `base_url`."""
    def client():
        return venue_client(venue, base_url, requests_per_minute=60_000, max_concurrency=4, retry=FAST)

    keys = [SliceKey(dataset, venue, i, day) for i in instruments]
    report = Engine(store.get_client, store.database, run_id).run([[venue_feed(venue, client, keys, workers=2,
                                                                                  attempts=1)]])
    assert not report.failures(), report.failures_table()
    return keys


@pytest.fixture
def minute_conn(timescale_db):
    """A connection to the TimescaleDB test database whose search_path starts with a fresh schema
    holding the minute table, the loader's tables and the K-line (dropped afterwards)."""
    from marketdata_assets.stores.timescale import kline, ledger

    conn = psycopg.connect(host=settings.get("TIMESCALE_HOST"), port=settings.get("TIMESCALE_PORT"),
                           user=settings.get("TIMESCALE_USER"), password=settings.get("TIMESCALE_PASSWORD") or None,
                           dbname=timescale_db, connect_timeout=5)
    schema = f"read_{uuid.uuid4().hex[:10]}"
    conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    conn.execute(sql.SQL("SET search_path TO {}, public").format(sql.Identifier(schema)))
    conn.commit()
    kline.ensure_monthly_kline(conn)
    ledger.ensure_loader_tables(conn)
    conn.commit()
    try:
        yield conn
    finally:
        conn.rollback()
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
        conn.commit()
        conn.close()
