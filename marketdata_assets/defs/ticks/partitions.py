"""Partitions of the ticks domain.

- Crypto (Binance, OKX, Deribit REST): UTC calendar day x instrument. The instrument is the
  dynamic dimension `crypto_instruments` with keys VENUE:INSTRUMENT (core.naming
  .partition_key: never `| , [ ]`), added from the sources config by the
  crypto_instruments_from_config sensor. The Binance dump files have the same days and their own
  dimension `binance_dump_instruments`, filled by the dump-file sensor, so a REST venue's
  partitions never list instruments only dumps have, and the other way round.
  Days start at the config's crypto history_start: instruments x days stays under Dagster's
  ~100,000 partitions per asset (8 instruments x 4 years = ~12,000).
- A-shares (Tushare): China calendar days (Asia/Shanghai), weekdays only (holidays run and find no
  bars: the day is recorded as not a trading day). The universe (~5,000 codes) is processed inside
  the run, never a partition dimension (1.25M keys a year). `end_offset=1`: today's partition
  exists, so the 15:30 schedule can load the day that just closed.
- Yahoo: UTC calendar days, weekdays. Every exchange of the universe holds its regular session
  inside one UTC day (the Americas, Europe, Africa, the Middle East), and a UTC day is the unit the
  tick tables write (one slice per instrument and UTC day), so a partition is exactly one slice per
  symbol. `end_offset=1` for the same reason as A-shares (the schedule runs at 17:30 New York, in
  the same UTC day).
"""

from __future__ import annotations

from datetime import date, timedelta

import dagster as dg

from marketdata_assets.core.naming import parse_partition_key
from marketdata_assets.datasets.slices import SliceKey
from marketdata_assets.resources.sources import load_sources_config

CRYPTO_INSTRUMENTS = "crypto_instruments"
DUMP_INSTRUMENTS = "binance_dump_instruments"
WEEKENDS = ["0 0 * * 6", "0 0 * * 0"]  # excluded from the stock calendars

_config = load_sources_config()

crypto_instruments = dg.DynamicPartitionsDefinition(name=CRYPTO_INSTRUMENTS)
crypto_days = dg.DailyPartitionsDefinition(start_date=_config.crypto_history_start.isoformat(), timezone="UTC")
crypto_partitions = dg.MultiPartitionsDefinition({"day": crypto_days, "instrument": crypto_instruments})
# Option chains (DERIBIT:BTC-OPTIONS: every BTC option): the config's chains, snapshots taken now.
option_chains = dg.StaticPartitionsDefinition([key.partition_key for key in _config.option_chains])
binance_dump_instruments = dg.DynamicPartitionsDefinition(name=DUMP_INSTRUMENTS)
binance_dump_partitions = dg.MultiPartitionsDefinition({"day": crypto_days, "instrument": binance_dump_instruments})

a_share_days = dg.DailyPartitionsDefinition(start_date=_config.a_share_history_start.isoformat(),
                                            timezone="Asia/Shanghai", end_offset=1, exclusions=WEEKENDS)
yahoo_days = dg.DailyPartitionsDefinition(start_date=_config.yahoo_history_start.isoformat(), timezone="UTC",
                                          end_offset=1, exclusions=WEEKENDS)


def crypto_key(day: date | str, instrument: str) -> str:
    """The multi-partition key string of (day, instrument): 'YYYY-MM-DD|VENUE:INSTRUMENT'."""
    return f"{day if isinstance(day, str) else day.isoformat()}|{instrument}"


def slice_keys(partition_keys, datasets) -> list[SliceKey]:
    """The slices of a run's day x instrument partition keys, for each dataset."""
    out = []
    for key in partition_keys:
        dims = key.keys_by_dimension if hasattr(key, "keys_by_dimension") else dict(
            zip(("day", "instrument"), str(key).split("|")))
        instrument = parse_partition_key(dims["instrument"])
        out += [SliceKey(dataset, instrument.venue, instrument.instrument, date.fromisoformat(dims["day"]))
                for dataset in datasets]
    return out


def days_of(partition_keys) -> list[date]:
    """The days of a daily-partitioned run, in order."""
    return sorted({date.fromisoformat(str(key)) for key in partition_keys})


# Freshness (shown in the UI, evaluated by the daemon with `freshness: enabled` in dagster.yaml): each
# dataset with a cadence is materialized by its deadline, after its schedule's run (schedules.py).
FRESHNESS = {
    # crypto days close at 00:00 UTC; crypto_ticks_daily runs at 00:30
    "crypto": dg.FreshnessPolicy.cron(deadline_cron="0 2 * * *", lower_bound_delta=timedelta(hours=24)),
    # the session ends 15:00 Beijing; a_share_after_close runs at 15:30 on weekdays
    "a_share": dg.FreshnessPolicy.cron(deadline_cron="0 18 * * 1-5", lower_bound_delta=timedelta(hours=4),
                                       timezone="Asia/Shanghai"),
    # the regular session ends 16:00 New York; yahoo_after_close runs at 17:30 on weekdays
    "yahoo": dg.FreshnessPolicy.cron(deadline_cron="0 20 * * 1-5", lower_bound_delta=timedelta(hours=4),
                                     timezone="America/New_York"),
}
