"""The trade-id refill's asset and its report (quality.continuity.refill) as the asset's result, shared by
the refill assets of the domains whose trades it repairs (crypto, live)."""

from collections.abc import Callable

import dagster as dg

from marketdata_assets.datasets.slices import SliceKey
from marketdata_assets.defs._common.figures import add_own, as_run
from marketdata_assets.orchestration import pools
from marketdata_assets.quality.continuity import RefillReport


def refill_asset(group: str, partitions_def, trades: str, venue_keys):
    """The decorator of a trade-id refill asset: the ids missing from `trades`' slices, fetched by id from
    the venues (their resource keys `venue_keys`) in the venues' pool, one run per backfill."""
    return dg.asset(
        group_name=group,
        partitions_def=partitions_def,
        deps=[trades],
        pool=pools.CRYPTO_VENUES,
        backfill_policy=dg.BackfillPolicy.single_run(),
        kinds={"clickhouse", "polars"},
        required_resource_keys={"clickhouse", *venue_keys},
    )


def refill_result(asset: str, report: RefillReport, max_failed: int) -> dg.MaterializeResult:
    """The refill's metadata as the MaterializeResult, or the step's failure when more than
    `max_failed` slices could not be refilled (the others are written)."""
    metadata = _metadata(report)
    if len(report.failures()) > max_failed:
        errors = "; ".join(o.error[:300] for o in report.failures()[:3])
        raise dg.Failure(
            description=f"{asset}: {report.summary()}: {errors}", metadata=metadata, allow_retries=False
        )
    return dg.MaterializeResult(metadata=metadata)


def refill_by_partition(
    context, asset: str, report: RefillReport, max_failed: int, partition_of: Callable[[SliceKey], str]
) -> dg.MaterializeResult:
    """`refill_result` of a multi-partition run: each partition's materialization carries the refill of its
    own slices (`partition_of`: a slice's partition key; none: 0 checked), the run's figures are `run_*`."""
    result = refill_result(asset, report, max_failed)
    keys = [str(key) for key in context.partition_keys]
    for key in keys:
        mine = RefillReport([o for o in report.outcomes if partition_of(o.found.key) == key])
        add_own(context, key, _metadata(mine), len(keys))
    return dg.MaterializeResult(metadata=as_run(result.metadata or {}))


def _metadata(report: RefillReport) -> dict:
    metadata = report.metadata()
    metadata["slices"] = dg.MetadataValue.md(metadata["slices"])
    return metadata
