"""The stored master (stores/clickhouse/instruments.py): versions appended, read back as they were,
storing twice keeps one, `as_of` reads what was valid then."""

from __future__ import annotations

from datetime import timedelta

from marketdata_assets.datasets.instruments import Master, changes
from marketdata_assets.stores.clickhouse.instruments import (
    ensure_instruments_table,
    read_versions,
    store_versions,
)
from tests.datasets.test_instruments import T0, swap


def test_versions_round_trip_once_each(clickhouse):
    first = changes({}, [swap(), swap("BTC-USD-241227-90000-C", 1.0, type="option", contract_multiplier=0.01,
                                      strike=90000.0, option_type="call", expires=None, tick_size=None)], T0)
    later = T0 + timedelta(days=2)
    second = changes(Master(first).current(), [swap(value=0.001)], later)  # a new ctVal; the option left the listing
    with clickhouse.get_client() as client:
        ensure_instruments_table(client, clickhouse.database)
        ensure_instruments_table(client, clickhouse.database)  # idempotent
        assert store_versions(client, clickhouse.database, [*first, *second]) == 4
        store_versions(client, clickhouse.database, first)  # a retried run
        stored = read_versions(client, clickhouse.database, "OKX")
        assert sorted(stored) == sorted([*first, *second])
        master = Master(stored)
        assert master.at("OKX", "BTC-USDT-SWAP", T0).contract_value == 0.01
        assert master.at("OKX", "BTC-USDT-SWAP", later).contract_value == 0.001
        assert master.at("OKX", "BTC-USD-241227-90000-C").status == "gone"
        then = Master(read_versions(client, clickhouse.database, "OKX", as_of=later - timedelta(seconds=1)))
        assert then.at("OKX", "BTC-USDT-SWAP").contract_value == 0.01  # the master as it was
        assert read_versions(client, clickhouse.database, "DERIBIT") == []
