"""The trade-id refill's report (quality.continuity.refill) as an asset's result, shared by the
refill assets of the domains whose trades it repairs (crypto, live)."""

import dagster as dg

from marketdata_assets.quality.continuity import RefillReport


def refill_result(asset: str, report: RefillReport, max_failed: int) -> dg.MaterializeResult:
    """The refill's metadata as the MaterializeResult, or the step's failure when more than
    `max_failed` slices could not be refilled (the others are written)."""
    metadata = report.metadata()
    metadata["slices"] = dg.MetadataValue.md(metadata["slices"])
    if len(report.failures()) > max_failed:
        errors = "; ".join(o.error[:300] for o in report.failures()[:3])
        raise dg.Failure(description=f"{asset}: {report.summary()}: {errors}", metadata=metadata, allow_retries=False)
    return dg.MaterializeResult(metadata=metadata)
