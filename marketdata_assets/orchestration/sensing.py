"""What the landing-area sensors share: don't request a partition some run already loaded.

A sensor sees files change (its cursor: the largest (mtime_ns, path) looked at). A partition the
changed files touch needs a run unless a run that *started after the newest of those changes*
materialized it: that run read the landing area with the files in it (how `make run`, a backfill
or a `marketdata` command that loaded them leaves things). Decided from Dagster's own records, so
it holds whoever launched the run.
"""

from __future__ import annotations

from collections.abc import Mapping

import dagster as dg

PAGE = 1000


def partitions_to_request(
    instance: dg.DagsterInstance, asset_key: dg.AssetKey, newest_change_ns: Mapping[str, int]
) -> list[str]:
    """The partitions of `newest_change_ns` (partition key -> newest change, ns since the epoch)
    that no run started after that change has materialized, in key order."""
    if not newest_change_ns:
        return []
    oldest_s = min(newest_change_ns.values()) / 1e9
    started_by_run: dict[str, float | None] = {}
    loaded: set[str] = set()
    cursor = None
    while True:
        page = instance.fetch_materializations(
            dg.AssetRecordsFilter(
                asset_key=asset_key, asset_partitions=sorted(newest_change_ns), after_timestamp=oldest_s
            ),
            limit=PAGE,
            cursor=cursor,
        )
        for record in page.records:
            partition = record.partition_key
            if partition is None or partition in loaded:
                continue
            if record.run_id not in started_by_run:
                run = instance.get_run_record_by_id(record.run_id)
                started_by_run[record.run_id] = run.start_time if run else None
            started = started_by_run[record.run_id]
            if started is not None and started * 1e9 > newest_change_ns[partition]:
                loaded.add(partition)
        if not page.has_more:
            break
        cursor = page.cursor
    return sorted(key for key in newest_change_ns if key not in loaded)


def newest_by_partition(changes) -> dict[str, int]:
    """(partition key, mtime_ns) pairs -> the newest mtime per partition."""
    newest: dict[str, int] = {}
    for key, mtime_ns in changes:
        newest[key] = max(mtime_ns, newest.get(key, 0))
    return newest


def contiguous(keys: list[str], all_keys: list[str]) -> list[tuple[str, str]]:
    """`keys` as (first, last) runs of consecutive partitions of `all_keys` (for range runs)."""
    position = {key: i for i, key in enumerate(all_keys)}
    runs: list[list[str]] = []
    for key in sorted(keys, key=position.__getitem__):
        if runs and position[key] == position[runs[-1][-1]] + 1:
            runs[-1].append(key)
        else:
            runs.append([key])
    return [(run[0], run[-1]) for run in runs]


# The tags of a single-run backfill over a partition range (Dagster reads them; spelled once here).
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


def range_tags(first: str, last: str) -> dict[str, str]:
    """Tags that make one run cover the partitions `first`..`last`."""
    return {RANGE_START: first, RANGE_END: last}
