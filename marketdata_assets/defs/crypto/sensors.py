"""The crypto instruments from the sources config, as partitions."""

import dagster as dg

from marketdata_assets.defs.crypto.partitions import CRYPTO_INSTRUMENTS, crypto_instruments
from marketdata_assets.sources.config import load_sources_config


@dg.sensor(minimum_interval_seconds=300, default_status=dg.DefaultSensorStatus.RUNNING)
def crypto_instruments_from_config(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
    """Adds the sources config's crypto instruments to the `crypto_instruments` partitions (new
    ones get their recent days from the catch-up schedule)."""
    wanted = load_sources_config().crypto_partition_keys()
    existing = set(context.instance.get_dynamic_partitions(CRYPTO_INSTRUMENTS))
    new = [key for key in wanted if key not in existing]
    if not new:
        return dg.SkipReason(f"all {len(wanted)} configured instruments are partitions")
    context.log.info(f"adding crypto instruments {new}")
    return dg.SensorResult(dynamic_partitions_requests=[crypto_instruments.build_add_request(new)])
