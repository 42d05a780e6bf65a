"""The ingest assets' shell, shared by every ClickHouse domain: run options (deadline, retry of
failed slices, attempts, workers), the engine of a run, the planned slices, and the engine's report
as one MaterializeResult per asset (or the step's failure naming what did not load).

`TICK_STORE` is the ClickHouse store asset's key (defs/upkeep/store.py): the ingest assets depend on
it by key, so no domain imports another.
"""

from collections.abc import Iterator

import dagster as dg

from marketdata_assets.defs._common.config import RunConfig
from marketdata_assets.ingest.engine import Engine, IngestReport, plan
from marketdata_assets.resources import ClickHouseResource
from marketdata_assets.stores.clickhouse import tables as ct

TICK_STORE = dg.AssetKey("tick_store")


class RunDeadline(RunConfig):
    deadline_minutes: float = 180
    """The whole run's deadline: then a fetch still going fails and the rest is skipped (retry_failed
    picks them up), so a run never holds a source's pool forever; 0: none."""


class IngestConfig(RunDeadline):
    retry_failed: bool = False
    """Only slices whose latest ingest_log attempt did not succeed (failed, skipped, never tried)."""
    retry_failed_from_run: str = ""
    """Only slices that failed or were skipped in this run id."""
    replace: bool = False
    """Load over slices a more faithful source holds (each dataset's `fidelity`: a verified archive, then a
    dump file, then the venues' APIs and streams); off: such a slice is not fetched and is counted as
    covered by that source (`covered` in the asset's metadata and on the run's console line)."""
    attempts: int = 2
    """Fetch attempts per slice (on top of the HTTP retries of 429/5xx/timeouts)."""
    max_failed: int = 0
    """The step fails when more slices than this failed (after writing the others)."""
    workers: int = 0
    """Fetches at once; 0: the source's `workers` from the providers config."""


def engine(context, clickhouse: ClickHouseResource, config: RunDeadline) -> Engine:
    return Engine(clickhouse.get_client, clickhouse.database, context.run.run_id, log=context.log.info,
                  deadline_s=config.deadline_minutes * 60 or None)


def planned(clickhouse: ClickHouseResource, config: IngestConfig, source: str, keys, report: IngestReport) -> list:
    with clickhouse.get_client() as client:
        ct.ensure_tables(client, clickhouse.database)
        return plan(client, clickhouse.database, source, keys, retry_failed=config.retry_failed,
                    retry_failed_from_run=config.retry_failed_from_run, replace=config.replace, report=report)


def materialize(context, report: IngestReport, assets: dict[str, str], max_failed: int,
                extra: dict[str, dict] | None = None) -> Iterator:
    """The report as one MaterializeResult per asset (dataset -> asset, with `extra[dataset]` (charts,
    counts) added to its metadata), or the step's failure."""
    metadata = {dataset: {**_metadata(report, dataset), **(extra or {}).get(dataset, {})}
                for dataset in assets}
    for dataset, asset in assets.items():
        covered = report.covered_text(dataset)
        context.log.info(f"{asset}: {report.summary(dataset)}, {metadata[dataset]['rows'].value:,} rows"
                         + (f"; {covered} (not fetched: run config `replace` loads over them)" if covered else ""))
    failures = report.failures()
    if len(failures) > max_failed:
        first = "; ".join(o.error[:300] for o in failures[:3])
        more = f" (and {len(failures) - 3} more, see the failures table)" if len(failures) > 3 else ""
        summaries = ", ".join(f"{asset} {report.summary(dataset)}" for dataset, asset in assets.items())
        raise dg.Failure(
            description=f"{', '.join(assets.values())}: {len(failures)} slice(s) not loaded ({summaries}); the "
                        f"others are written; rerun with retry_failed_from_run: {context.run.run_id} to load only "
                        f"those. {first}{more}",
            metadata={**{f"{asset}_summary": report.summary(dataset) for dataset, asset in assets.items()},
                      "failures": dg.MetadataValue.md(report.failures_table()),
                      "sources": dg.MetadataValue.md(report.sources_table())},
            allow_retries=False)
    for dataset, asset in assets.items():
        yield dg.MaterializeResult(asset_key=asset, metadata=metadata[dataset])


def _metadata(report: IngestReport, dataset: str) -> dict:
    """The report's metadata of `dataset`; `covered` (read by the console line, apps/launch.py) only
    when a more faithful source's slices were left as they are."""
    plain = report.metadata(dataset)
    covered = report.covered_text(dataset)
    return {**plain, **({"covered": dg.MetadataValue.text(covered)} if covered else {}),
            "covered_by": dg.MetadataValue.json(plain["covered_by"]),
            "rows": dg.MetadataValue.int(plain["rows"]), "slices": dg.MetadataValue.md(plain["slices"]),
            "rows_dropped": dg.MetadataValue.int(plain["rows_dropped"]),
            "dropped_by_reason": dg.MetadataValue.json(plain["dropped_by_reason"]),
            "conversions": dg.MetadataValue.md(plain["conversions"]),
            "sources": dg.MetadataValue.md(plain["sources"]), "source_figures": dg.MetadataValue.json(report.sources)}
