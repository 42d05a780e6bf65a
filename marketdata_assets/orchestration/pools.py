"""Concurrency pools: one per database and one per external source (the pool names are stored in the
Dagster instance: they stay as they are).

Assets name their pool (`@dg.asset(pool=pools.MONGODB)`); dagster.yaml gives unconfigured pools
one slot, and `python -m marketdata_assets.orchestration.pools apply` (run by `make run`) sets the limits below
on the instance.
"""

from __future__ import annotations

import sys

from marketdata_assets.core import settings

MONGODB = "mongodb"
TIMESCALEDB = "timescaledb"
CLICKHOUSE = "clickhouse"
ALPHA_API = "alpha_api"
TUSHARE = "tushare"
YAHOO = "yahoo"
# Binance, OKX and Deribit share one step per run (crypto_ticks, crypto_book_snapshots), each
# venue with its own client and limits inside it.
CRYPTO_VENUES = "crypto_venues"


def pool_limits() -> dict[str, int]:
    # An embedded ClickHouse (chDB) can be opened by one process at a time.
    clickhouse = 1 if settings.clickhouse_dsn().startswith("chdb:") else 4
    return {
        MONGODB: 2,
        TIMESCALEDB: 2,
        CLICKHOUSE: clickhouse,
        # One step per source across all runs: each client enforces the source's rate limit
        # for its own requests, so two concurrent steps would together exceed it.
        ALPHA_API: 1, TUSHARE: 1, YAHOO: 1, CRYPTO_VENUES: 1,
    }


def apply(instance) -> dict[str, int]:
    limits = pool_limits()
    for pool, limit in limits.items():
        instance.event_log_storage.set_concurrency_slots(pool, limit)
    return limits


if __name__ == "__main__":
    if sys.argv[1:] != ["apply"]:
        sys.exit("usage: python -m marketdata_assets.orchestration.pools apply")
    import dagster as dg

    with dg.DagsterInstance.get() as instance:
        applied = apply(instance)
    print("pool limits: " + ", ".join(f"{pool}={limit}" for pool, limit in applied.items()))
