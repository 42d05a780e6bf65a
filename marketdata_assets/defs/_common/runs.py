"""Run requests the schedules and sensors of several domains build alike: the tags of a run over a
range of day x instrument partitions, an op's run config, and which partitions the instance knows as
missing or failed (materialization status; in-progress ones are left alone)."""

from collections.abc import Sequence
from datetime import date
from zoneinfo import ZoneInfo

import dagster as dg

from marketdata_assets.defs._common.partitions import crypto_key
from marketdata_assets.orchestration.sensing import range_tags

UTC = ZoneInfo("UTC")
RETRY_FAILED = {"retry_failed": True}


def day_range_tags(first_day: date, last_day: date, first: str, last: str) -> dict[str, str]:
    """One run over days first_day..last_day x instruments first..last (day|instrument keys)."""
    return range_tags(crypto_key(first_day, first), crypto_key(last_day, last))


def op_config(op_name: str, config: dict) -> dict:
    return {"ops": {op_name: {"config": config}}}


def bad(status) -> bool:
    """Missing (never materialized) or failed."""
    return status is None or status == dg.AssetPartitionStatus.FAILED


def statuses(instance, assets: Sequence[str], keys: list[str], partitions_def) -> list[dict]:
    """Each asset's status by partition key (an empty dict when the instance has no status cache yet:
    everything is missing)."""
    out = []
    for asset in assets:
        found = instance.get_status_by_partition(dg.AssetKey(asset), keys, partitions_def) if keys else {}
        out.append(found or {})
    return out


def todo(keys: list[str], found: list[dict]) -> list[str]:
    """The keys missing or failed in any asset and in progress in none."""
    return [k for k in keys if any(bad(s.get(k)) for s in found)
            and not any(s.get(k) == dg.AssetPartitionStatus.IN_PROGRESS for s in found)]
