"""Concurrency pools: one per database and one per external source (the pool names are stored in the
Dagster instance: they stay as they are).

Assets name their pool (`@dg.asset(pool=pools.MONGODB)`); dagster.yaml gives unconfigured pools
one slot, and `python -m marketdata_assets.orchestration.pools apply` (run by `make run`) sets the limits
below on the instance.
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
        ALPHA_API: 1,
        TUSHARE: 1,
        YAHOO: 1,
        CRYPTO_VENUES: 1,
    }


def apply(instance) -> dict[str, int]:
    limits = pool_limits()
    for pool, limit in limits.items():
        instance.event_log_storage.set_concurrency_slots(pool, limit)
    return limits


STORAGE_DOWN_EXIT = 3  # as the marketdata command's (apps/launch.py)


def main(argv: list[str]) -> int:
    """`python -m marketdata_assets.orchestration.pools apply`: the limits set on the instance; a storage
    that does not answer is one line naming its host:port and exit 3 (not Dagster's retries)."""
    if argv != ["apply"]:
        print("usage: python -m marketdata_assets.orchestration.pools apply", file=sys.stderr)
        return 2
    import dagster as dg

    from marketdata_assets.core.errors import StoreUnavailable
    from marketdata_assets.orchestration.runs import storage_reachable

    error = storage_reachable()
    if error is not None:
        error = StoreUnavailable(
            error.store,
            error.address,
            error.reason,
            "Start it with `make stack-up` (or set "
            "DAGSTER_PG_HOST/DAGSTER_PG_PORT to a running server), then apply again.",
        )
        print(f"FAILED: {error}", file=sys.stderr)
        return STORAGE_DOWN_EXIT
    with dg.DagsterInstance.get() as instance:
        applied = apply(instance)
    print("pool limits: " + ", ".join(f"{pool}={limit}" for pool, limit in applied.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
