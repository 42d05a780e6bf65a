"""The one Dagster adapter of the data checks: `asset_checks` turns `Check` declarations
(quality/checks.py; declared in quality/slice_checks.py, quality/minute_bars/checks.py,
quality/alpha_checks.py) into asset checks, partitioned like the assets they guard so a run checks
exactly what it loaded.

- A partitioned check records one Passed/Failed evaluation per partition of the run, a range run
  too (a returned AssetCheckResult would carry no partition when the run has several), linked to
  the partition's latest materialization; an unpartitioned one yields its AssetCheckResult.
- The store a check reads is opened from its resource (`clickhouse`, `timescale`, `alpha_store`)
  once per step; a verdict's plain metadata becomes Dagster's: `Markdown` renders as Markdown,
  lists and dicts as JSON, None is left out.
- Each declaration is its own step, or with `step=` the declarations run together in one step on
  one connection (the K-line's validations: five steps would each pay a process start for a
  sub-second query), which runs just the checks selected.

Partitioned asset checks are a preview feature of Dagster 1.13 (checked: context.partition_keys is
the run's keys, single partitions and ranges; an evaluation yielded with its partition is recorded on
that partition); their PreviewWarning is kept from printing on every load.
"""

import contextlib
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import dagster as dg

# the type of the public AssetCheckEvaluation's target_materialization_data, not exported by `dagster`
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData as Target,
)

from marketdata_assets.core.markdown import Markdown
from marketdata_assets.quality.checks import (
    ALPHA_STORE,
    CLICKHOUSE,
    TIMESCALE,
    AlphaStore,
    Check,
    ClickHouse,
    Verdict,
)
from marketdata_assets.stores.mongo.documents import COLLECTIONS


@contextlib.contextmanager
def _clickhouse(resource) -> Iterator[ClickHouse]:
    with resource.get_client() as client:
        yield ClickHouse(client, resource.database)


@contextlib.contextmanager
def _alpha_store(resource) -> Iterator[AlphaStore]:
    yield AlphaStore(
        resource.databases()[0],
        {alpha_type: resource.collection_of(alpha_type) for alpha_type in COLLECTIONS},
    )


# store -> how its resource opens what the judges read (TimescaleDB: a pooled psycopg connection)
STORES = {
    CLICKHOUSE: _clickhouse,
    TIMESCALE: lambda resource: resource.connection(),
    ALPHA_STORE: _alpha_store,
}


def metadata(verdict: Verdict) -> dict[str, Any]:
    """The verdict's plain metadata as Dagster's."""

    def value(item: Any) -> Any:
        if isinstance(item, Markdown):
            return dg.MetadataValue.md(str(item))
        return dg.MetadataValue.json(item) if isinstance(item, (list, dict)) else item

    return {key: value(item) for key, item in verdict.metadata.items() if item is not None}


def _targets(instance: dg.DagsterInstance, asset_key: dg.AssetKey, keys: list[str]) -> dict[str, Target]:
    """The latest materialization of each partition (what its evaluation checked, as Dagster records
    for a one-partition AssetCheckResult): two queries for the whole range."""
    ids = instance.get_latest_storage_id_by_partition(
        asset_key, dg.DagsterEventType.ASSET_MATERIALIZATION, set(keys)
    )
    records = (
        instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=asset_key, storage_ids=list(ids.values())), limit=len(ids)
        ).records
        if ids
        else []
    )
    return {
        r.partition_key: Target(storage_id=r.storage_id, run_id=r.run_id, timestamp=r.timestamp)
        for r in records
    }


def _evaluations(check: Check, verdicts: Mapping[str, Verdict], targets: Mapping[str, Target]) -> Iterator:
    for key, verdict in verdicts.items():
        yield dg.AssetCheckEvaluation(
            asset_key=dg.AssetKey(check.asset),
            check_name=check.name,
            passed=verdict.passed,
            metadata=metadata(verdict),
            target_materialization_data=targets.get(key),
            severity=dg.AssetCheckSeverity(verdict.severity),
            description=verdict.description,
            blocking=check.blocking,
            partition=key,
        )


def _run(context: dg.AssetCheckExecutionContext, checks: Sequence[Check]) -> Iterator:
    """The selected checks' verdicts, on one store connection; then the step's (empty) outputs."""
    selected = {(key.asset_key.to_user_string(), key.name) for key in context.selected_asset_check_keys}
    checks = [check for check in checks if (check.asset, check.name) in selected]
    partitioned = checks[0].partitioned_by is not None
    partitions = [str(key) for key in context.partition_keys] if partitioned else None
    targets: dict[str, dict[str, Target]] = {}
    with STORES[checks[0].store](getattr(context.resources, checks[0].store)) as store:
        for check in checks:
            verdicts = check.run(store, partitions)
            if not partitioned:
                verdict = verdicts[None]
                yield dg.AssetCheckResult(
                    asset_key=check.asset,
                    check_name=check.name,
                    passed=verdict.passed,
                    metadata=metadata(verdict),
                    description=verdict.description,
                    severity=dg.AssetCheckSeverity(verdict.severity),
                )
                continue
            if check.asset not in targets:
                targets[check.asset] = _targets(context.instance, dg.AssetKey(check.asset), partitions)
            yield from _evaluations(check, verdicts, targets[check.asset])
    if partitioned:
        for output in context.op_execution_context.selected_output_names:
            yield dg.Output(None, output_name=output)


def _definition(checks: Sequence[Check], partitions_def, step: str | None, pool: str | None):
    stores = {check.store for check in checks}
    if len(stores) != 1 or any(
        (check.partitioned_by is None) != (partitions_def is None) for check in checks
    ):
        raise ValueError(
            f"checks {[c.name for c in checks]}: one step reads one store ({sorted(stores)}) and is "
            f"partitioned like its checks' assets (partitions_def {partitions_def})"
        )
    specs = [
        dg.AssetCheckSpec(
            check.name,
            asset=check.asset,
            description=check.description,
            blocking=check.blocking,
            partitions_def=partitions_def,
        )
        for check in checks
    ]

    @dg.multi_asset_check(
        specs=specs,
        name=step or specs[0].get_python_identifier(),
        can_subset=step is not None,
        required_resource_keys=stores,
        pool=pool,
    )
    def run_checks(context: dg.AssetCheckExecutionContext) -> Iterator:
        yield from _run(context, checks)

    return run_checks


def asset_checks(
    checks: Sequence[Check],
    partitions_def: dg.PartitionsDefinition | None = None,
    *,
    step: str | None = None,
    pool: str | None = None,
) -> list[dg.AssetChecksDefinition]:
    """The declarations as asset checks partitioned by `partitions_def` (their assets' partitioning;
    None for assets without partitions): one step each, or with `step` one step of that name."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        if step is not None:
            return [_definition(checks, partitions_def, step, pool)]
        return [_definition([check], partitions_def, None, pool) for check in checks]
