"""Helpers for running the ticks assets in tests (also imported by the killed-run subprocess)."""

from __future__ import annotations

from datetime import date

import dagster as dg
import polars as pl

from marketdata_assets.resources import ClickHouseResource
from marketdata_assets.resources.sources import CryptoVenueResource, TushareResource, YahooResource
from marketdata_assets.stores.clickhouse import tables as ct

DAY = date(2025, 1, 15)  # the crypto replay day (a Wednesday)
STOCK_DAY = date(2025, 6, 5)  # a Thursday
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"
UNUSED = "http://127.0.0.1:9"  # nothing listens there
FAST = {"requests_per_minute": 60_000, "max_concurrency": 8, "max_retries": 3, "backoff_base_s": 0.01}


def crypto_resources(base_url: str, workers: int = 4) -> dict:
    return {
        venue.lower(): CryptoVenueResource(venue=venue, base_url=base_url, workers=workers, **FAST)
        for venue in ("BINANCE", "BINANCE_UM", "OKX", "DERIBIT")
    }


def stock_resources(base_url: str, workers: int = 8) -> dict:
    return {
        "tushare": TushareResource(base_url=base_url, token="test-token", workers=workers, **FAST),
        "yahoo": YahooResource(base_url=base_url, workers=workers, max_days_back=None, **FAST),
    }


def ticks_definitions():
    from marketdata_assets.defs.archives.checks import dump_checks
    from marketdata_assets.defs.archives.dumps import binance_dumps
    from marketdata_assets.defs.crypto.assets import crypto_option_chains, crypto_snapshots, crypto_ticks
    from marketdata_assets.defs.crypto.checks import crypto_checks
    from marketdata_assets.defs.crypto.factors import crypto_factors
    from marketdata_assets.defs.equities.checks import equities_checks
    from marketdata_assets.defs.equities.stocks import a_share_bars, yahoo_bars_1m
    from marketdata_assets.defs.upkeep.store import tick_store

    return [
        tick_store,
        crypto_ticks,
        crypto_snapshots,
        crypto_option_chains,
        crypto_factors,
        binance_dumps,
        a_share_bars,
        yahoo_bars_1m,
        *crypto_checks,
        *dump_checks,
        *equities_checks,
    ]


def materialize(
    instance,
    resources: dict,
    selection,
    *,
    partition_key: str | None = None,
    tags: dict | None = None,
    config: dict | None = None,
) -> dg.ExecuteInProcessResult:
    """Materialize `selection` (asset keys; their checks come along) of the ticks assets."""
    run_config = {"ops": {op: {"config": values} for op, values in (config or {}).items()}}
    # every asset's resources must be there, also for assets not selected: unreachable placeholders
    resources = {**crypto_resources(UNUSED), **stock_resources(UNUSED), **resources}
    return dg.materialize(
        ticks_definitions(),
        resources=resources,
        instance=instance,
        selection=selection,
        partition_key=partition_key,
        tags=tags,
        run_config=run_config,
        raise_on_error=False,
    )


def day_range(day: date, first: str, last: str) -> dict:
    return {RANGE_START: f"{day}|{first}", RANGE_END: f"{day}|{last}"}


def crypto_day(day: date, instruments: list[str], op: str = "crypto_ticks") -> dict:
    """materialize()'s tags and config of one day of the crypto venues, just these VENUE:INSTRUMENTs."""
    venues = sorted({key.split(":")[0] for key in instruments})
    return {"tags": day_range(day, venues[0], venues[-1]), "config": {op: {"instruments": instruments}}}


def metadata(result: dg.ExecuteInProcessResult, key: str) -> dict:
    events = [e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == key]
    assert events, f"no materialization of {key}"
    return {k: v.value for k, v in events[0].materialization.metadata.items()}


def summed(result: dg.ExecuteInProcessResult, key: str, field: str) -> int:
    """A figure of `key`'s materializations summed over the run's partitions (each carries its own)."""
    return sum(
        e.materialization.metadata[field].value
        for e in result.get_asset_materialization_events()
        if e.asset_key.to_user_string() == key
    )


def failure(result: dg.ExecuteInProcessResult) -> tuple[str, dict]:
    """(description, metadata) of the step failure of a failed run."""
    (event,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"][:1]
    data = event.step_failure_data.user_failure_data
    return data.description or "", {k: v.value for k, v in data.metadata.items()}


def log_messages(instance, result) -> list[str]:
    return [entry.user_message for entry in instance.all_logs(result.run_id)]


def view_rows(
    clickhouse: ClickHouseResource, kind: str, venue: str, instrument: str, day: date
) -> pl.DataFrame:
    with clickhouse.get_client() as client:
        return ct.read_range(
            client, clickhouse.database, kind, venue, instrument, day, date.fromordinal(day.toordinal() + 1)
        )


def query(clickhouse: ClickHouseResource, sql: str, **parameters) -> list[tuple]:
    with clickhouse.get_client() as client:
        return client.query(
            sql.replace("{db}", f"`{clickhouse.database}`"), parameters=parameters
        ).result_rows
