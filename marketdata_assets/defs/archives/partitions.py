"""Partitions of the Binance dump files: the crypto UTC days x venue (BINANCE: the spot dumps), the
instruments inside the run (those with a file of the day in the landing area), like the REST venues'."""

import dagster as dg

from marketdata_assets.defs._common.partitions import crypto_days
from marketdata_assets.sources.binance_vision.dumps import VENUE

binance_dump_venues = dg.StaticPartitionsDefinition([VENUE])
binance_dump_partitions = dg.MultiPartitionsDefinition({"day": crypto_days, "venue": binance_dump_venues})
