"""The asset-check shell every ClickHouse domain shares (the rules and their SQL: quality/slices.py),
partitioned like the checked assets so a run checks exactly what it loaded. A run, a range run too,
records one Passed/Failed evaluation per partition (`record`); `evaluate` counts a rule's violations
with one ClickHouse query per measure for the whole range, grouped by partition.

Partitioned asset checks are a preview feature of Dagster 1.13 (checked: context.partition_keys is
the run's keys, single partitions and ranges; an evaluation yielded with its partition is recorded on
that partition); `preview()` keeps its warning from printing on every load.
"""

import contextlib
import warnings
from collections.abc import Callable, Iterator, Mapping

import dagster as dg

# the type of the public AssetCheckEvaluation's target_materialization_data, not exported by `dagster`
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData as Target,
)

from marketdata_assets.core.markdown import table
from marketdata_assets.defs._common.partitions import slice_keys
from marketdata_assets.quality.slices import (
    BARS_CONSISTENT,
    NO_DUPLICATE_TRADE_IDS,
    ON_THE_MINUTE_GRID,
    PRICES_POSITIVE,
    TIMESTAMPS_INSIDE_DAY,
    UNIT_STEP_REVERTS,
    Rule,
    RuleResult,
    Scope,
    count,
    slice_scope,
)
from marketdata_assets.resources import ClickHouseResource

TRADE_RULES = (NO_DUPLICATE_TRADE_IDS, TIMESTAMPS_INSIDE_DAY["trades"], PRICES_POSITIVE["trades"])
BAR_RULES = (BARS_CONSISTENT["bars_1m"], TIMESTAMPS_INSIDE_DAY["bars_1m"], ON_THE_MINUTE_GRID,
             UNIT_STEP_REVERTS["bars_1m"])
CRYPTO_BAR_RULES = (*BAR_RULES, PRICES_POSITIVE["bars_1m"])


@contextlib.contextmanager
def preview() -> Iterator[None]:
    """Partitioned asset checks are built inside this (their PreviewWarning silenced)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        yield


def _targets(instance: dg.DagsterInstance, asset_key: dg.AssetKey, keys: list[str]) -> dict[str, Target]:
    """The latest materialization of each partition (what its evaluation checked, as Dagster records
    for a one-partition AssetCheckResult): two queries for the whole range."""
    ids = instance.get_latest_storage_id_by_partition(asset_key, dg.DagsterEventType.ASSET_MATERIALIZATION,
                                                      set(keys))
    records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=asset_key, storage_ids=list(
        ids.values())), limit=len(ids)).records if ids else []
    return {r.partition_key: Target(storage_id=r.storage_id, run_id=r.run_id, timestamp=r.timestamp)
            for r in records}


def record(context: dg.AssetCheckExecutionContext, outcomes: Mapping[str, tuple[bool, dict, str]],
           severity: str = "ERROR", severities: Mapping[str, str] | None = None) -> Iterator:
    """The check's (empty) output, then one evaluation per partition of the run (a range run too):
    `outcomes[partition key]` = (passed, metadata, description), with `severity` (or the partition's
    own in `severities`). A returned AssetCheckResult would carry no partition when the run has several."""
    (spec,) = context.check_specs
    keys = [str(k) for k in context.partition_keys]
    targets = _targets(context.instance, spec.asset_key, keys)
    yield dg.Output(None)
    for key in keys:
        passed, metadata, description = outcomes[key]
        yield dg.AssetCheckEvaluation(asset_key=spec.asset_key, check_name=spec.name,
                                      passed=passed, metadata=metadata,
                                      target_materialization_data=targets.get(key),
                                      severity=dg.AssetCheckSeverity((severities or {}).get(key, severity)),
                                      description=description,
                                      blocking=spec.blocking, partition=key)


def evaluate(context: dg.AssetCheckExecutionContext, clickhouse: ClickHouseResource, rule: Rule, scope: Scope,
             checked: Callable[[str], str] = str, provisional: Mapping[str, str] | None = None) -> Iterator:
    """`record` of the rule's violations in each partition's loads, with a sample in the metadata.
    A partition in `provisional` (key -> what to upgrade) was judged on a provisional calendar:
    it is a WARN saying so, whatever was found."""
    provisional = provisional or {}
    keys = [str(k) for k in context.partition_keys]
    with clickhouse.get_client() as client:
        results = count(client, clickhouse.database, rule, scope)
    outcomes = {}
    for key in keys:
        result = results.get(key, RuleResult())
        metadata = {"violations": result.violations, "rows_checked": result.rows_checked,
                    "checked": checked(key), "rule": rule.description}
        if result.sample:
            metadata["sample"] = dg.MetadataValue.md(table(result.sample_columns, result.sample))
        outcomes[key] = (result.violations == 0, metadata, rule.description)
        if key in provisional:
            metadata["calendar"] = provisional[key]
            outcomes[key] = (False, metadata, f"{provisional[key]}. {rule.description}")
    yield from record(context, outcomes, rule.severity, {key: "WARN" for key in provisional})


def slice_check(asset: str, rule: Rule, partitions_def) -> dg.AssetChecksDefinition:
    """A rule over the slices of the run's day x instrument partitions."""

    @dg.asset_check(asset=asset, name=rule.name, description=rule.description, partitions_def=partitions_def)
    def check(context: dg.AssetCheckExecutionContext, clickhouse: ClickHouseResource) -> Iterator:
        slices = slice_keys(context.partition_keys, [rule.dataset])
        yield from evaluate(context, clickhouse, rule, slice_scope(clickhouse.database, rule.dataset, slices))

    return check
