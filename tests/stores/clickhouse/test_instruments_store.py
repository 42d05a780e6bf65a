"""The stored master (stores/clickhouse/instruments.py): versions appended, read back as they were,
storing twice keeps one, `as_of` reads what was valid then; the volume snapshots beside it
(stores/clickhouse/volumes.py): a snapshot stored twice keeps one row each, a resolution reads the ones
its days use."""

from __future__ import annotations

from datetime import timedelta

from marketdata_assets.datasets.instruments import Master, changes
from marketdata_assets.datasets.universe import UniverseRule, resolve
from marketdata_assets.datasets.volumes import Volume
from marketdata_assets.ingest.instruments import stored_volumes
from marketdata_assets.stores.clickhouse.instruments import (
    ensure_instruments_table,
    read_versions,
    store_versions,
)
from marketdata_assets.stores.clickhouse.volumes import ensure_volumes_table, snapshot_times, store_volumes
from tests.datasets.test_instruments import T0, swap


def test_versions_are_stored_into_a_database_without_the_table(clickhouse):
    """A collector stores its looked-up versions before anything made the master (make run's first minute)."""
    learned = changes({}, [swap()], T0)
    with clickhouse.get_client() as client:
        client.command(f"CREATE DATABASE IF NOT EXISTS `{clickhouse.database}`")
        assert not client.command(f"EXISTS TABLE `{clickhouse.database}`.instruments")
        assert store_versions(client, clickhouse.database, learned) == 1
        assert read_versions(client, clickhouse.database, "OKX") == learned


def test_versions_round_trip_once_each(clickhouse):
    first = changes(
        {},
        [
            swap(),
            swap(
                "BTC-USD-241227-90000-C",
                1.0,
                type="option",
                contract_multiplier=0.01,
                strike=90000.0,
                option_type="call",
                expires=None,
                tick_size=None,
            ),
        ],
        T0,
    )
    later = T0 + timedelta(days=2)
    second = changes(
        Master(first).current(), [swap(value=0.001)], later
    )  # a new ctVal; the option left the listing
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


def test_volume_snapshots_round_trip_once_each_and_a_resolution_reads_what_its_days_use(clickhouse):
    master = Master(changes({}, [swap(), swap("ETH-USDT-SWAP", 0.1, base="ETH")], T0))
    first, second = T0 + timedelta(minutes=10), T0 + timedelta(days=2, minutes=10)
    rows = [
        Volume("OKX", "BTC-USDT-SWAP", first, 9.0, "USDT"),
        Volume("OKX", "ETH-USDT-SWAP", first, 1.0, "USDT"),
        Volume("OKX", "BTC-USDT-SWAP", second, 1.0, "USDT"),
        Volume("OKX", "ETH-USDT-SWAP", second, 9.5, "USDT"),
        Volume("DERIBIT", "BTC-PERPETUAL", second, 5.0, "USD"),
    ]
    rules = {
        "OKX": UniverseRule("OKX", types=("perpetual",), top=1),
        "BINANCE": UniverseRule("BINANCE", types=("spot",)),
    }
    with clickhouse.get_client() as client:
        ensure_volumes_table(client, clickhouse.database)
        ensure_volumes_table(client, clickhouse.database)  # idempotent
        assert store_volumes(client, clickhouse.database, rows) == 5
        store_volumes(client, clickhouse.database, rows[:2])  # a retried refresh
        assert snapshot_times(client, clickhouse.database, ["OKX", "DERIBIT"]) == {
            "OKX": [first, second],
            "DERIBIT": [second],
        }
        days = [(T0 + timedelta(days=k)).date() for k in range(4)]
        volumes = stored_volumes(client, clickhouse.database, rules, days[:2])  # both days use the first
        later = stored_volumes(client, clickhouse.database, rules, days)
    assert set(volumes.rows) == {("OKX", first)} and set(later.rows) == {("OKX", first), ("OKX", second)}
    assert sorted(later.rows[("OKX", first)].values()) == sorted(rows[:2])  # once each, as stored
    rule = rules["OKX"]
    assert [resolve(master, rule, day, later) for day in days] == [["BTC-USDT-SWAP"]] * 2 + [
        ["ETH-USDT-SWAP"]
    ] * 2
