"""The ingest assets' shell, shared by every ClickHouse domain: run options (deadline, retry of
failed slices, attempts, workers), the engine of a run, the planned slices, and the engine's report
as one materialization per asset or partition with its verdict (core.verdicts), or the step's failure
naming what did not load.

`TICK_STORE` is the ClickHouse store asset's key (defs/upkeep/store.py): the ingest assets depend on
it by key, so no domain imports another.
"""

import re
from collections import Counter
from collections.abc import Callable, Generator, Iterator
from typing import Any

import dagster as dg

from marketdata_assets.core.verdicts import OK, PARTIAL, RUN_TAG, Verdict, worst
from marketdata_assets.datasets.instrument_service import InstrumentService
from marketdata_assets.datasets.slices import SliceKey
from marketdata_assets.defs._common.config import RunConfig
from marketdata_assets.ingest.engine import Engine, IngestReport, plan
from marketdata_assets.ingest.instruments import ClickHouseMaster, instrument_service
from marketdata_assets.resources import ClickHouseResource
from marketdata_assets.stores.clickhouse import tables as ct

TICK_STORE = dg.AssetKey("tick_store")
# the innermost exception a slice's error names ("... gave up after 6 attempts; last: ConnectError: All
# connection attempts failed (GET ...)"): its type and message
ROOT_ERROR = re.compile(r"\b([A-Z]\w*(?:Error|Exception|Timeout)): ([^;(]+)")
UNREACHABLE = {"ConnectError", "ConnectTimeout"}  # httpx's: the host did not answer at all


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


def tick_spec(asset: str, group: str, description: str, kinds=("clickhouse",), **kwargs) -> dg.AssetSpec:
    """An asset of slices in the tick store (on which it depends, by key); `kwargs` go to dg.AssetSpec."""
    return dg.AssetSpec(
        asset, deps=[TICK_STORE], group_name=group, kinds=set(kinds), description=description, **kwargs
    )


def slice_assets(name: str, specs: list[dg.AssetSpec], partitions_def, pool: str, **kwargs):
    """The decorator of an ingest multi-asset: its partitions' slices loaded in one run per backfill, its
    assets selectable alone (unless `can_subset=False`); `kwargs` go to dg.multi_asset."""
    return dg.multi_asset(
        name=name,
        specs=specs,
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool=pool,
        **{"can_subset": True, **kwargs},
    )


def run_instruments(clickhouse: ClickHouseResource, venues=None) -> InstrumentService:
    """The run's instrument service: the stored master of `venues` (None: all), what its clients, streams and
    loads look up asked of the venues and stored back by its `keep` (its table made if missing)."""
    return instrument_service(ClickHouseMaster(clickhouse.get_client, clickhouse.database), venues)


def engine(context, clickhouse: ClickHouseResource, config: RunDeadline) -> Engine:
    return Engine(
        clickhouse.get_client,
        clickhouse.database,
        context.run.run_id,
        log=context.log.info,
        deadline_s=config.deadline_minutes * 60 or None,
    )


def planned(
    clickhouse: ClickHouseResource, config: IngestConfig, source: str, keys, report: IngestReport
) -> list:
    with clickhouse.get_client() as client:
        ct.ensure_tables(client, clickhouse.database)
        return plan(
            client,
            clickhouse.database,
            source,
            keys,
            retry_failed=config.retry_failed,
            retry_failed_from_run=config.retry_failed_from_run,
            replace=config.replace,
            report=report,
        )


def materialize(
    context,
    report: IngestReport,
    assets: dict[str, str],
    max_failed: int,
    extra: dict[str, dict] | None = None,
    partition_of: Callable[[SliceKey], str] | None = None,
    partition_extra: Callable[[str, IngestReport], dict] | None = None,
    loads_from: Callable[[list[SliceKey]], str] | None = None,
) -> Iterator:
    """The report as one materialization per asset (dataset -> asset, with `extra[dataset]` (charts,
    counts) added to its metadata), or the step's failure.

    With `partition_of` (a slice's partition key) each partition of the run carries its own metadata
    (its slices' rows, outcomes, instruments, its `verdict` (core.verdicts); `partition_extra(dataset, its
    report)` added) and the run's figures under `run_*`. A partition something is stored of (ok, partial)
    is materialized; one nothing is stored of (not loadable from this source: `loads_from(its keys)` says
    where it comes from; failed) is not, and once the others are materialized the step fails naming each
    with its verdict: Dagster shows it failed, the others materialized. A run where every partition is
    stored carries its verdict in the run tag `marketdata/verdict` (ok | partial)."""
    metadata = {
        dataset: {**_metadata(report, dataset), **(extra or {}).get(dataset, {})} for dataset in assets
    }
    for dataset, asset in assets.items():
        covered = report.covered_text(dataset)
        context.log.info(
            f"{asset}: {report.summary(dataset)}, {metadata[dataset]['rows'].value:,} rows"
            + (f"; {covered} (not fetched: run config `replace` loads over them)" if covered else "")
        )
    _fail_when_too_many(context, report, assets, max_failed)
    partitions = (
        {str(key): key for key in context.partition_keys} if partition_of and _partitioned(context) else {}
    )
    verdicts: dict[str, Verdict] = {}  # "<asset> <partition>" -> its verdict
    for dataset, asset in assets.items():
        if not partitions:
            yield dg.MaterializeResult(asset_key=asset, metadata=metadata[dataset])
            continue
        mine = yield from _by_partition(
            context,
            report,
            (dataset, asset),
            partitions,
            partition_of,
            partition_extra,
            loads_from,
            _run_figures(metadata[dataset], len(partitions)),
        )
        verdicts.update({f"{asset} {partition}": verdict for partition, verdict in mine.items()})
    if verdicts:
        _fail_unstored(context, verdicts)


def _fail_unstored(context, verdicts: dict[str, Verdict]) -> None:
    """The step's failure naming each partition nothing is stored of, with its verdict; else the run's
    verdict in its tag."""
    unstored = {where: v for where, v in verdicts.items() if not v.stored}
    if not unstored:
        instance, run_id = context.instance, context.run.run_id
        run = instance.get_run_by_id(run_id)
        said = run.tags.get(RUN_TAG, OK) if run is not None else OK  # another step of the run said it first
        instance.add_run_tags(run_id, {RUN_TAG: worst([said, *(v.status for v in verdicts.values())])})
        return
    named = sorted(unstored.items())
    more = f" (+{len(named) - 3}, see the failure's metadata)" if len(named) > 3 else ""
    raise dg.Failure(
        description=f"{len(unstored)} partition(s) not stored (the others are): "
        + "; ".join(f"{where}: {v.status}: {v.text()}" for where, v in named[:3])
        + more,
        metadata={"not_stored": dg.MetadataValue.json({w: f"{v.status}: {v.text()}" for w, v in named})},
        allow_retries=False,
    )


def _partitioned(context) -> bool:
    return context.has_partition_key or context.has_partition_key_range


def _fail_when_too_many(context, report: IngestReport, assets: dict[str, str], max_failed: int) -> None:
    failures = report.failures()
    if len(failures) <= max_failed:
        return
    first = "; ".join(o.error[:300] for o in failures[:3])
    more = f" (and {len(failures) - 3} more, see the failures table)" if len(failures) > 3 else ""
    summaries = ", ".join(f"{asset} {report.summary(dataset)}" for dataset, asset in assets.items())
    raise dg.Failure(
        description=f"{', '.join(assets.values())}: {len(failures)} slice(s) not loaded ({summaries}); the "
        f"others are written; rerun with retry_failed_from_run: {context.run.run_id} to load only "
        f"those. {first}{more}",
        metadata={
            "cause": root_cause(failures),
            "rows": sum(o.rows for o in report.outcomes.values() if o.status == "ok"),  # stored by this run
            **{f"{asset}_summary": report.summary(dataset) for dataset, asset in assets.items()},
            "failures": dg.MetadataValue.md(report.failures_table()),
            "sources": dg.MetadataValue.md(report.sources_table()),
        },
        allow_retries=False,
    )


def root_cause(failures: list) -> str:
    """The failed slices' commonest innermost error, one short line for the console (the description keeps
    each): 'ConnectError: All connection attempts failed (vendor unreachable: BINANCE, OKX; 35 of 35
    failed slices)'."""
    causes: Counter = Counter()
    venues: dict[str, set] = {}
    for failure in failures:
        found = ROOT_ERROR.findall(failure.error)
        cause = (
            ": ".join(found[-1]).strip() if found else (failure.error.splitlines() or ["unknown error"])[0]
        )
        causes[cause] += 1
        venues.setdefault(cause, set()).add(failure.key.venue)
    cause, count = causes.most_common(1)[0]
    where = ", ".join(sorted(v for v in venues[cause] if v))
    unreachable = f"vendor unreachable: {where}; " if cause.split(":")[0] in UNREACHABLE else ""
    return f"{cause[:200]} ({unreachable}{count} of {len(failures)} failed slices)"


def _run_figures(metadata: dict, partitions: int) -> dict:
    """What a partition's materialization says of its run: the run's summary, rows and partitions, and
    the run-wide extras (charts); `run_partitions` also tells the console (apps/launch.py) that `rows`
    is the partition's own."""
    mine = {key: value for key, value in metadata.items() if key in RUN_WIDE}
    return {
        **mine,
        "run_summary": metadata["summary"],
        "run_rows": dg.MetadataValue.int(metadata["rows"].value),
        "run_partitions": dg.MetadataValue.int(partitions),
    }


RUN_WIDE = (
    "chart",
    "sources",
    "source_figures",
    "archives",
    "universe",
)  # a run's figures, not a partition's


def _by_partition(
    context,
    report: IngestReport,
    named: tuple[str, str],
    partitions: dict,
    partition_of: Callable[[SliceKey], str],
    partition_extra,
    loads_from,
    run: dict,
) -> Generator[Any, None, dict[str, Verdict]]:
    """Each partition's own metadata and verdict (returned); materialized through the output when every
    partition is stored, else per partition (those nothing is stored of: not materialized)."""
    dataset, asset = named
    slices: dict[str, list[SliceKey]] = {key: [] for key in partitions}
    for key in report.slice_keys():
        if key.dataset == dataset and partition_of(key) in slices:
            slices[partition_of(key)].append(key)
    own, verdicts = {}, {}
    for partition, keys in slices.items():
        part = report.part(keys)
        verdicts[partition] = part.verdict(loads_from)
        own[partition] = {
            **_metadata(part, dataset),
            **(partition_extra(dataset, part) if partition_extra else {}),
            **verdict_metadata(verdicts[partition], part.rows_stored()),
            **run,
        }
    if all(v.stored for v in verdicts.values()):
        for partition, metadata in own.items():
            context.add_asset_metadata(metadata, asset_key=asset, partition_key=partition)
        yield dg.MaterializeResult(asset_key=asset)
        return verdicts
    for partition, metadata in own.items():
        if verdicts[partition].stored:
            tags = partition_tags(partitions[partition])
            yield dg.AssetMaterialization(asset_key=asset, partition=partition, tags=tags, metadata=metadata)
        else:
            context.log.warning(
                f"{asset} {partition}: {verdicts[partition].status}, nothing stored "
                f"({verdicts[partition].text()}): the partition is not materialized"
            )
    return verdicts


def verdict_metadata(verdict: Verdict, rows_stored: int) -> dict:
    """A partition's `verdict`, `rows_stored` (what it holds now, whichever load stored it) and, when
    partial, `partial` (what is missing, and where it comes from: read by the console line)."""
    return {
        "verdict": dg.MetadataValue.text(verdict.status),
        "rows_stored": dg.MetadataValue.int(rows_stored),
        **({"partial": dg.MetadataValue.text(verdict.text())} if verdict.status == PARTIAL else {}),
    }


def partition_tags(partition) -> dict[str, str]:
    """The per-dimension tags Dagster puts on an output's materialization of a multi-partition key
    (`dagster/partition/day`, `dagster/partition/venue`), so the UI's dimension views see a reported
    event alike."""
    dimensions = getattr(partition, "keys_by_dimension", {})
    return {f"dagster/partition/{dimension}": value for dimension, value in dimensions.items()}


def _metadata(report: IngestReport, dataset: str) -> dict:
    """The report's metadata of `dataset`; `covered` (read by the console line, apps/launch.py) only
    when a more faithful source's slices were left as they are."""
    plain = report.metadata(dataset)
    covered = report.covered_text(dataset)
    return {
        **plain,
        **({"covered": dg.MetadataValue.text(covered)} if covered else {}),
        "covered_by": dg.MetadataValue.json(plain["covered_by"]),
        "rows": dg.MetadataValue.int(plain["rows"]),
        "slices": dg.MetadataValue.md(plain["slices"]),
        "rows_dropped": dg.MetadataValue.int(plain["rows_dropped"]),
        "dropped_by_reason": dg.MetadataValue.json(plain["dropped_by_reason"]),
        "conversions": dg.MetadataValue.md(plain["conversions"]),
        "sources": dg.MetadataValue.md(plain["sources"]),
        "source_figures": dg.MetadataValue.json(report.sources),
    }
