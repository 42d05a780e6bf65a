"""Partitions of the live domain: UTC hour x instrument (`live_instruments`, BINANCE:INSTRUMENT keys
added by the landing sensor from the trade channels it finds).

Why hour x instrument (not hours with every instrument inside): the collector closes one file per
channel (instrument) and hour, so the sensor requests exactly the (hour, instrument) that closed; the
trades checks and trade-id continuity judge one instrument's slice; and the UI's grid shows which
instrument missed which hour. The hours start at `LIVE_START` (this project's live capture began in
November 2026: earlier hours have no landing files), and include the running hour (`end_offset=1`: a
collector stopped cleanly mid-hour closes that hour's file, which is loadable at once). Dagster
counts hours x instruments: ~8,800 a year per instrument (its ~100,000-partition comfort limit is
a decade of 1 instrument or a year of 11): move LIVE_START forward as the years pass.
"""

from datetime import timedelta

import dagster as dg

LIVE_START = "2026-11-01-00:00"
LIVE_INSTRUMENTS = "live_instruments"

live_hours = dg.HourlyPartitionsDefinition(start_date=LIVE_START, timezone="UTC", end_offset=1)
live_instruments = dg.DynamicPartitionsDefinition(name=LIVE_INSTRUMENTS)
live_partitions = dg.MultiPartitionsDefinition({"hour": live_hours, "instrument": live_instruments})

# Freshness: an hour's files close at the hour (and the sensor loads them within a minute or so),
# so the latest load is never much more than an hour old while the collector runs.
FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=2), warn_window=timedelta(minutes=75))


def live_key(hour: str, instrument: str) -> str:
    """The multi-partition key of (Dagster hour key 'YYYY-MM-DD-HH:MM', 'VENUE:INSTRUMENT')."""
    return f"{hour}|{instrument}"


def landing_hour(hour: str) -> str:
    """A Dagster hour key as the landing files name it: '2026-11-23-17:00' -> '2026-11-23T17Z'."""
    return f"{hour[:10]}T{hour[11:13]}Z"


def partition_hour(landing: str) -> str:
    """A landing hour as Dagster's hour key: '2026-11-23T17Z' -> '2026-11-23-17:00'."""
    return f"{landing[:10]}-{landing[11:13]}:00"
