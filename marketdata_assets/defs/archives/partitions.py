"""Partitions of the Binance dump files: the crypto UTC days x their own instrument dimension
`binance_dump_instruments`, filled by the dump-file sensor, so a REST venue's partitions never list
instruments only dumps have, and the other way round."""

import dagster as dg

from marketdata_assets.defs._common.partitions import crypto_days

DUMP_INSTRUMENTS = "binance_dump_instruments"

binance_dump_instruments = dg.DynamicPartitionsDefinition(name=DUMP_INSTRUMENTS)
binance_dump_partitions = dg.MultiPartitionsDefinition({"day": crypto_days, "instrument": binance_dump_instruments})
