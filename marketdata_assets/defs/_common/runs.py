"""Run requests the schedules and sensors of several domains build alike: the tags of a run over a
range of day x instrument partitions, an op's run config, and which partitions the instance knows as
missing or failed (materialization status; in-progress ones are left alone)."""

from collections.abc import Sequence
from datetime import date
from zoneinfo import ZoneInfo

import dagster as dg

from marketdata_assets.defs._common.partitions import crypto_key
from marketdata_assets.orchestration.sensing import range_tags
from marketdata_assets.sources.registry import STOCK_FEEDS

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
    return [
        k
        for k in keys
        if any(bad(s.get(k)) for s in found)
        and not any(s.get(k) == dg.AssetPartitionStatus.IN_PROGRESS for s in found)
    ]


# ---- which stopped schedules and sensors to turn on ---------------------------------------------

DAILY_USE = "marketdata/daily_use"  # metadata: the feed a stopped schedule or sensor keeps current
DAILY_USE_WHY = "marketdata/daily_use_why"  # metadata: why it is needed for that feed
FEEDS = {
    "crypto": "the crypto venues' history and snapshots (`universes.crypto` of the sources config)",
    **{feed.universe: feed.what for feed in STOCK_FEEDS.values()},  # a_shares, yahoo: the stock feeds
    "binance_archives": "the data.binance.vision archives (`binance_archives` of the sources config)",
    "minute_bars": "A-share minute-bar CSV files and the monthly K-line (TimescaleDB)",
    "alphas": "the alpha API's alphas (ALPHA_API_ACCOUNTS and each account's credentials)",
    "parquet_export": (
        "a Parquet copy of the stores for research tools (MARKETDATA_EXPORT_DIR; DuckDB, Polars)"
    ),
}


def daily_use(feed: str, why: str) -> dict[str, str]:
    """Metadata of a schedule or sensor that starts stopped (it calls a vendor, or refreshes what one
    feeds) and is one to turn on for daily use of `feed` (docs/configuration.md lists them by feed)."""
    if feed not in FEEDS:
        raise ValueError(f"unknown feed {feed!r}; one of {', '.join(FEEDS)}")
    return {DAILY_USE: feed, DAILY_USE_WHY: why}


def daily_use_schedule(job, cron: str, feed: str, why: str, zone: str = "UTC", **kwargs):
    """The decorator of a schedule of `job` on `cron` in `zone` that starts stopped and is one to turn on
    for daily use of `feed`, `why` (`daily_use`); `kwargs` (name, ...) go to dg.schedule."""
    return dg.schedule(
        job=job, cron_schedule=cron, execution_timezone=zone, metadata=daily_use(feed, why), **kwargs
    )
