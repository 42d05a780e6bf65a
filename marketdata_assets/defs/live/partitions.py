"""Partitions of the live domain: UTC hours, the instruments inside the run (those with a closed landing
file of the hour for the asset's dataset, or the run's `instruments`).

Why hours with the instruments inside (not hour x instrument): ten years of hours are 87,673 partitions,
under Dagster's ~100,000 per asset whatever the universe (hour x instrument was 8,766 a year per
instrument). The collector closes one file per channel (instrument) and hour; the sensor requests the
hour with the instruments whose files closed; each instrument's day slice is still loaded, counted and
checked on its own (the run's metadata and each check's `by_instrument` table show them). The hours start
at LIVE_PARTITIONS_START (a day, UTC: when your live capture began; earlier hours have no landing files),
and include the running hour (`end_offset=1`: a collector stopped cleanly mid-hour closes that hour's
file, which is loadable at once).
"""

from datetime import date, timedelta

import dagster as dg

from marketdata_assets.core import settings


def live_start(value: str | None = None) -> str:
    """The first hour key of the live partitions from LIVE_PARTITIONS_START (`YYYY-MM-DD`), or a ValueError
    naming the setting."""
    text = (value if value is not None else settings.get("LIVE_PARTITIONS_START")).strip()
    try:
        return f"{date.fromisoformat(text).isoformat()}-00:00"
    except ValueError:
        raise ValueError(f"LIVE_PARTITIONS_START={text!r}: expected a day, YYYY-MM-DD (UTC)") from None


LIVE_START = live_start()

live_hours = dg.HourlyPartitionsDefinition(start_date=LIVE_START, timezone="UTC", end_offset=1)
live_partitions = live_hours

# Freshness: an hour's files close at the hour (and the sensor loads them within a minute or so),
# so the latest load is never much more than an hour old while the collector runs.
FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=2), warn_window=timedelta(minutes=75))


def landing_hour(hour: str) -> str:
    """A Dagster hour key as the landing files name it: '2026-11-23-17:00' -> '2026-11-23T17Z'."""
    return f"{hour[:10]}T{hour[11:13]}Z"


def partition_hour(landing: str) -> str:
    """A landing hour as Dagster's hour key: '2026-11-23T17Z' -> '2026-11-23-17:00'."""
    return f"{landing[:10]}-{landing[11:13]}:00"
