"""Partitions of the crypto domain: UTC day x venue (the venue's configured instruments inside the run),
the instruments alone (snapshots; `crypto_instruments`, a dynamic dimension filled from the sources
config by the crypto_instruments_from_config sensor), and the option chains (DERIBIT:BTC-OPTIONS:
every BTC option; snapshots taken now)."""

from datetime import timedelta

import dagster as dg

from marketdata_assets.defs._common.partitions import crypto_days, crypto_venues
from marketdata_assets.sources.config import load_sources_config

CRYPTO_INSTRUMENTS = "crypto_instruments"

crypto_instruments = dg.DynamicPartitionsDefinition(name=CRYPTO_INSTRUMENTS)
crypto_partitions = dg.MultiPartitionsDefinition({"day": crypto_days, "venue": crypto_venues})
option_chains = dg.StaticPartitionsDefinition(
    [key.partition_key for key in load_sources_config().option_chains]
)

# Freshness (shown in the UI, evaluated by the daemon with `freshness: enabled` in dagster.yaml):
# crypto days close at 00:00 UTC; crypto_ticks_daily runs at 00:30.
FRESHNESS = dg.FreshnessPolicy.cron(deadline_cron="0 2 * * *", lower_bound_delta=timedelta(hours=24))
