"""The day partitions every ClickHouse domain shares, and their keys.

Crypto from the venues' REST APIs (defs/crypto) is UTC day x venue (`crypto_venues`, the declared venues):
the venue's configured instruments are loaded inside the run, so the partition count does not grow with
the universe (4 venues x 10 years = 14,600 per asset, under Dagster's ~100,000). The Binance archives and
dump files (defs/archives) are day x venue too, with their own instruments (`slice_keys`' `universe`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import date

import dagster as dg

from marketdata_assets.core.naming import parse_partition_key
from marketdata_assets.datasets.slices import SliceKey, slices_of
from marketdata_assets.sources.config import CRYPTO_SOURCES, load_sources_config

WEEKENDS = ["0 0 * * 6", "0 0 * * 0"]  # excluded from the stock calendars

crypto_days = dg.DailyPartitionsDefinition(
    start_date=load_sources_config().crypto_history_start.isoformat(), timezone="UTC"
)


crypto_venues = dg.StaticPartitionsDefinition(sorted(CRYPTO_SOURCES))


def crypto_key(day: date | str, instrument_or_venue: str) -> str:
    """The multi-partition key string of (day, instrument) or (day, venue): 'YYYY-MM-DD|VENUE:INSTRUMENT'
    or 'YYYY-MM-DD|VENUE'."""
    return f"{day if isinstance(day, str) else day.isoformat()}|{instrument_or_venue}"


def slice_keys(
    partition_keys,
    datasets,
    only: Collection[str] = (),
    universe: Mapping[str, Sequence[str]] | Callable[[str, date], Sequence[str]] | None = None,
) -> list[SliceKey]:
    """The slices of a run's partition keys for each dataset: a day x instrument key is one slice, a day x
    venue key one per instrument of the venue in `universe` (venue -> instruments, or a function of venue
    and day: the universe resolved that day; default: the sources config's explicit crypto instruments), or
    in `only` (VENUE:INSTRUMENT keys) when given."""
    if only:
        named: dict[str, list[str]] = {}
        for key in only:
            parsed = parse_partition_key(key)
            named.setdefault(parsed.venue, []).append(parsed.instrument)
        universe = named
    elif universe is None:
        universe = load_sources_config().crypto_instruments_by_venue()
    of_day = universe if callable(universe) else (lambda venue, day, listed=universe: listed.get(venue, ()))
    keys = []
    for partition in map(str, partition_keys):
        day, second = partition.split("|")
        keys += (
            [partition]
            if ":" in second
            else [f"{day}|{second}:{i}" for i in of_day(second, date.fromisoformat(day))]
        )
    return [key for partition in keys for dataset in datasets for key in slices_of([partition], dataset)]


def days_of(partition_keys) -> list[date]:
    """The days of a daily-partitioned run (or a day x venue / instrument one), in order."""
    return sorted({date.fromisoformat(str(key).split("|")[0]) for key in partition_keys})
