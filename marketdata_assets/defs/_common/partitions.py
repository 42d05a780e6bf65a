"""The day x instrument partitions every ClickHouse domain shares, and their keys.

Crypto (REST venues, defs/crypto) and the Binance dump files (defs/archives) are UTC calendar day x
instrument: the same days (`crypto_days`, from the config's crypto history_start: instruments x days
stays under Dagster's ~100,000 partitions per asset, 8 instruments x 4 years = ~12,000), each with
its own instrument dimension (keys VENUE:INSTRUMENT, core.naming.partition_key: never `| , [ ]`).
"""

from __future__ import annotations

from datetime import date

import dagster as dg

from marketdata_assets.datasets.slices import SliceKey
from marketdata_assets.quality.slice_checks import slices_of
from marketdata_assets.sources.config import load_sources_config

WEEKENDS = ["0 0 * * 6", "0 0 * * 0"]  # excluded from the stock calendars

crypto_days = dg.DailyPartitionsDefinition(start_date=load_sources_config().crypto_history_start.isoformat(),
                                           timezone="UTC")


def crypto_key(day: date | str, instrument: str) -> str:
    """The multi-partition key string of (day, instrument): 'YYYY-MM-DD|VENUE:INSTRUMENT'."""
    return f"{day if isinstance(day, str) else day.isoformat()}|{instrument}"


def slice_keys(partition_keys, datasets) -> list[SliceKey]:
    """The slices of a run's day x instrument partition keys, for each dataset."""
    return [key for partition in partition_keys for dataset in datasets for key in slices_of([partition], dataset)]


def days_of(partition_keys) -> list[date]:
    """The days of a daily-partitioned run, in order."""
    return sorted({date.fromisoformat(str(key)) for key in partition_keys})
