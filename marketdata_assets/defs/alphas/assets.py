"""Alphas: API -> landing files -> MongoDB (deep merge) -> monthly packages.

    alpha_files (month x account) ─┐
    alpha_package_drops (month) ───┼─> regular_alphas, super_alphas (month) ─> alpha_packages (month)
    alpha_store ───────────────────┘

Months are New York months of dateCreated (the API's time zone), as in the landing layout.
"""

import asyncio
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import dagster as dg
from pydantic import Field

from marketdata_assets.core import settings
from marketdata_assets.core.charts import bar_chart_svg, svg_markdown_image
from marketdata_assets.core.markdown import table
from marketdata_assets.datasets.alpha_files import (
    API_TZ,
    iter_alpha_files,
    month_alpha_files,
    parse_alpha_path,
    parse_api_datetime,
)
from marketdata_assets.defs._common.config import RunConfig
from marketdata_assets.defs._common.figures import as_run
from marketdata_assets.defs.alphas.partitions import (
    ALL_ACCOUNTS_OF_MONTH,
    alpha_months,
    alpha_months_by_account,
    month_of_key,
)
from marketdata_assets.ingest.alphas.import_lock import PartitionBusy, partition_lock
from marketdata_assets.ingest.alphas.importer import ImportStats, import_files
from marketdata_assets.ingest.alphas.landing import decompose_dropped, land_month
from marketdata_assets.ingest.alphas.packages import PackageError, build_package
from marketdata_assets.orchestration import pools
from marketdata_assets.resources import AlphaApiResource, AlphaStoreResource
from marketdata_assets.sources.registry import account_api
from marketdata_assets.stores.mongo.alphas import ImportBlocked, ensure_alpha_indexes
from marketdata_assets.stores.mongo.documents import DATES_FIELD

GROUP = "alphas"
# Where each alpha type is imported; other types are quarantined by the import ("unsupported type").
IMPORTED_TYPES = {"regular_alphas": "REGULAR", "super_alphas": "SUPER"}


def partition_months(context: dg.AssetExecutionContext) -> list[str]:
    """'YYYY-MM' of every month of the run's partition (or range)."""
    return [month_of_key(key) for key in context.partition_keys]


@dg.asset(group_name=GROUP, pool=pools.MONGODB, kinds={"mongodb"})
def alpha_store(context: dg.AssetExecutionContext, alpha_store: AlphaStoreResource) -> dg.MaterializeResult:
    """The MongoDB databases and collections that hold REGULAR and SUPER alphas, their indexes
    (id, type, dateCreated, dateModified, status, region) and the import ledger."""
    started = time.monotonic()
    db_regular, db_super = alpha_store.databases()
    ensure_alpha_indexes(db_regular, db_super, alpha_store.collection)
    collections = {}
    for database in (db_regular, db_super):
        collection = database[alpha_store.collection]
        collections[f"{database.name}.{alpha_store.collection}"] = {
            "indexes": sorted(collection.index_information()),
            "documents": collection.estimated_document_count(),
        }
    context.log.info(f"alpha collections ready: {', '.join(collections)}")
    return dg.MaterializeResult(
        metadata={
            "server_version": alpha_store.mongo.server_version(),
            "collections": dg.MetadataValue.json(collections),
            "documents": sum(c["documents"] for c in collections.values()),
            "seconds": round(time.monotonic() - started, 3),
        }
    )


@dg.asset(
    group_name=GROUP,
    partitions_def=alpha_months_by_account,
    pool=pools.ALPHA_API,
    kinds={"api", "json"},
    backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=1),
    # alpha_fetch_daily runs at 06:30 New York: today's files by 09:00
    freshness_policy=dg.FreshnessPolicy.cron(
        deadline_cron="0 9 * * *", lower_bound_delta=timedelta(hours=3), timezone="America/New_York"
    ),
    retry_policy=dg.RetryPolicy(
        max_retries=2, delay=30, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.FULL
    ),
)
def alpha_files(context: dg.AssetExecutionContext, alpha_api: AlphaApiResource) -> dg.MaterializeResult:
    """Every alpha an account created in the month, as its own JSON file in the landing area:
    ``<landing>/alphas/<TYPE>/<YYYY-MM>/<account>/<id>.json``, written atomically; a re-fetch
    rewrites only the alphas whose content changed."""
    keys = context.partition_key.keys_by_dimension
    month, account = month_of_key(keys["month"]), keys["account"]
    landing, quarantine_root = settings.alpha_landing_dir(), settings.quarantine_dir("alphas")

    def progress(landed) -> None:
        context.log.info(
            f"{account} {month}: {landed.fetched:,} alphas fetched, {landed.written:,} files written"
        )

    async def fetch():
        async with alpha_api.api() as api:
            return await land_month(api, account, month, landing, quarantine_root, on_progress=progress)

    try:
        landed = asyncio.run(fetch())
    except account_api().refusals as error:  # credentials or the persona check: retrying won't help
        raise dg.Failure(description=str(error), allow_retries=False) from None
    for item in landed.quarantined:
        context.log.warning(f"quarantined: {item['reason']} -> {item['file']}")
    fetch_stats = landed.fetch.as_metadata() if landed.fetch else {}
    context.log.info(
        f"{account} {month}: {landed.fetched:,} alphas, {landed.written:,} written, "
        f"{landed.unchanged:,} unchanged, {len(landed.quarantined)} quarantined in {landed.seconds} s"
    )
    metadata = {
        **{k: v for k, v in landed.as_metadata().items() if k != "alphas_by_type"},
        "alphas_by_type": dg.MetadataValue.json(dict(landed.by_type)),
        "requests": fetch_stats.get("requests", 0),
        "retries": fetch_stats.get("retries", 0),
        "rate_limited_429": fetch_stats.get("rate_limited_429", 0),
        "server_errors_5xx": fetch_stats.get("server_errors_5xx", 0),
        "reauthentications": fetch_stats.get("reauths", 0),
        "pages": fetch_stats.get("pages", 0),
        "windows_split": fetch_stats.get("windows_split", 0),
        "landing_dir": str(landing / "alphas"),
    }
    if landed.quarantined:
        metadata["quarantined"] = dg.MetadataValue.json(landed.quarantined)
    return dg.MaterializeResult(metadata=metadata)


class AlphaPackagesConfig(RunConfig):
    """Which accounts' packages are built (one per account, type and month)."""

    accounts: list[str] = Field(default_factory=list)
    """Only these accounts' packages (default: every account)."""


@dg.asset(
    group_name=GROUP,
    partitions_def=alpha_months,
    backfill_policy=dg.BackfillPolicy.single_run(),
    kinds={"json"},
)
def alpha_package_drops(
    context: dg.AssetExecutionContext, config: AlphaPackagesConfig
) -> dg.MaterializeResult:
    """Monthly packages dropped into ``<landing>/packages/`` (``*.jsonl.gz`` + manifest), decomposed
    back into landing files after their count and sha256 are verified. A corrupt package is
    quarantined whole, with its reason; nothing of it lands."""
    landing, quarantine_root = settings.alpha_landing_dir(), settings.quarantine_dir("alphas")
    months = partition_months(context)
    results = decompose_dropped(landing, set(months), quarantine_root, set(config.accounts) or None)
    for result in results:
        log = context.log.warning if result.outcome == "quarantined" else context.log.info
        log(
            f"{result.outcome} {result.package}: "
            f"{result.reason or f'{result.count:,} alphas, {result.written:,} files written'}"
        )
    for key in context.partition_keys:  # each month's own packages; the run's as run_*
        context.add_asset_metadata(
            _drop_figures([r for r in results if r.month == month_of_key(key)]), partition_key=key
        )
    run = _drop_figures(results)
    metadata = {
        "months": f"{months[0]}..{months[-1]}",
        **{f"run_{name}": value for name, value in run.items() if name in DROP_COUNTS},
        "run_partitions": len(months),
    }
    quarantined = [r for r in results if r.outcome == "quarantined"]
    if quarantined:
        metadata["quarantined"] = dg.MetadataValue.json(
            [{"package": r.package, "reason": r.reason} for r in quarantined]
        )
    return dg.MaterializeResult(metadata=metadata)


DROP_COUNTS = ("packages_decomposed", "packages_quarantined", "files_written", "files_unchanged")


def _drop_figures(results: list) -> dict:
    """Dropped packages' figures (a month's, or the run's): decomposed, quarantined, files written and
    unchanged, and their table."""
    figures = {
        "packages_decomposed": sum(r.outcome == "decomposed" for r in results),
        "packages_quarantined": sum(r.outcome == "quarantined" for r in results),
        "files_written": sum(r.written for r in results),
        "files_unchanged": sum(r.unchanged for r in results),
    }
    if results:
        figures["packages"] = dg.MetadataValue.md(
            table(
                ["package", "month", "outcome", "alphas", "written", "unchanged", "reason"],
                ([r.package, r.month, r.outcome, r.count, r.written, r.unchanged, r.reason] for r in results),
            )
        )
    return figures


class AlphaImportConfig(RunConfig):
    """How the import runs: its mode, time window, bulk-write size, array merge keys and accounts."""

    mode: Literal["incremental", "overwrite", "rebuild", "time_range", "smart_merge"] = Field(
        default="incremental",
        description=(
            "incremental: skip files already imported with the same sha256; overwrite: every file, deep "
            "merge; rebuild: replace whole documents; time_range: only alphas whose dateModified is in "
            "[start, end); smart_merge: only alphas modified after the newest dateModified stored."
        ),
    )
    start: str = Field(default="", description="time_range: first dateModified, ISO 8601 with an offset.")
    end: str = Field(
        default="", description="time_range: end (exclusive) of dateModified, ISO 8601 with an offset."
    )
    batch_size: int = Field(default=1000, ge=1, description="Documents per bulk write.")
    array_keys: dict[str, str] = Field(
        default_factory=dict,
        description="Extra keys for merging arrays of objects, by field name (path.to.array -> "
        "key), on top of checks -> name and classifications -> id.",
    )
    accounts: list[str] = Field(
        default_factory=list, description="Only these accounts' files (default: all)."
    )

    def time_range(self) -> "tuple[datetime, datetime] | None":
        if self.mode != "time_range":
            return None
        if not (self.start and self.end):
            raise dg.Failure(
                description="import mode time_range needs `start` and `end` (ISO 8601 with an offset)",
                allow_retries=False,
            )
        try:
            return parse_api_datetime(self.start), parse_api_datetime(self.end)
        except ValueError as error:
            raise dg.Failure(description=f"time_range: {error}", allow_retries=False) from None


def _import_files(
    landing: Path,
    alpha_type: str | None,
    months: list[str],
    accounts: list[str],
    exclude_types: tuple[str, ...] = (),
) -> list[tuple[str, Path]]:
    return [
        named
        for month in months
        for named in month_alpha_files(
            landing, month, alpha_type=alpha_type, exclude_types=exclude_types, accounts=accounts
        )
    ]


def _created_chart(collection, months: list[str], alpha_type: str) -> str:
    """Alphas stored per New York day of dateCreated (per month for a range of months)."""
    month_window = account_api().month_window
    (start, _), (_, end) = month_window(months[0]), month_window(months[-1])
    counts: Counter = Counter()
    by_day = len(months) == 1
    for doc in collection.find(
        {f"{DATES_FIELD}.dateCreated": {"$gte": start, "$lt": end}},
        {f"{DATES_FIELD}.dateCreated": 1, "_id": 0},
    ):
        created = doc[DATES_FIELD]["dateCreated"].replace(tzinfo=UTC).astimezone(API_TZ)
        counts[f"{created:%m-%d}" if by_day else f"{created:%Y-%m}"] += 1
    if by_day:
        labels, day = [], start
        while day < end:
            labels.append(f"{day:%m-%d}")
            day += timedelta(days=1)
    else:
        labels = list(months)
    title = f"{alpha_type} alphas by {'day' if by_day else 'month'} created ({months[0]}"
    title += ")" if by_day else f"..{months[-1]})"
    return svg_markdown_image(
        bar_chart_svg(title, [(label, counts.get(label, 0)) for label in labels]), title
    )


MONTH_COUNTS = (
    "inserted",
    "merged",
    "replaced",
    "unchanged",
)  # ImportStats' counts of alphas, also per month


def _month_metadata(stats: ImportStats, month: str, files: int, months: int) -> dict:
    """One month partition's own figures (its alphas inserted, merged, replaced, unchanged; the files of
    the month read), and its run's as `run_*` (`run_partitions` tells the console the figures are the
    month's own: apps/launch.py)."""
    counts = stats.by_month.get(month, {})
    mine = {count: counts.get(count, 0) for count in MONTH_COUNTS}
    return {
        "month": month,
        **mine,
        "documents_written": mine["inserted"] + mine["merged"] + mine["replaced"],
        "records_unchanged": mine["unchanged"] + counts.get("skipped", 0),  # and the files the ledger knew
        "files": files,
        **as_run(stats.as_metadata()),
        "run_partitions": months,
    }


def _import_metadata(stats: ImportStats, months: list[str], collection, alpha_type: str) -> dict:
    """What the import did to the collection (its documents, the chart, quarantined and flagged files);
    each month's own figures are added per partition (_month_metadata)."""
    metadata = {
        "months": f"{months[0]}..{months[-1]}",
        "documents_per_second": round((stats.inserted + stats.merged + stats.replaced) / stats.seconds)
        if stats.seconds
        else None,
        "documents_in_collection": collection.estimated_document_count(),
        "alphas_created": dg.MetadataValue.md(_created_chart(collection, months, alpha_type)),
    }
    if stats.quarantined:
        metadata["quarantined"] = dg.MetadataValue.md(
            table(["file", "reason"], ([q["file"], q["reason"]] for q in stats.quarantined))
        )
    if (
        stats.flagged
    ):  # imported, but something about the file was unusual (a BOM, a key twice with one value)
        metadata["flagged"] = dg.MetadataValue.md(
            table(["file", "flag"], ([f["file"], f["flag"]] for f in stats.flagged))
        )
    return metadata


def _locked_import(context, asset_name: str, alpha_type: str, months, store: str, run) -> ImportStats:
    """`run(after_crash)` under the partition lock of (store, type, months): a dead holder's months are
    imported knowing it crashed; a live holder or a blocked import fails the run, not to be retried."""
    try:
        with partition_lock(
            settings.state_dir() / "locks" / "alphas",
            store,
            alpha_type,
            months,
            holder=f"Dagster run {context.run.run_id} ({asset_name})",
        ) as died:
            for line in died:
                context.log.warning(
                    f"{line}: this import writes every batch in a transaction and waits out "
                    "any transaction it left open"
                )
            return run(bool(died))
    except (PartitionBusy, ImportBlocked) as error:  # retrying at once would meet the same
        raise dg.Failure(description=str(error), allow_retries=False) from None


def _log_outcome(context, asset_name: str, stats: ImportStats) -> None:
    for item in stats.quarantined:
        context.log.warning(f"quarantined {item['file']}: {item['reason']}")
    for item in stats.flagged:
        context.log.warning(f"flagged {item['file']}: {item['flag']}")
    context.log.info(
        f"{asset_name}: {stats.inserted:,} inserted, {stats.merged:,} merged, {stats.replaced:,} "
        f"replaced, {stats.unchanged:,} unchanged, {stats.files_skipped:,} files skipped, "
        f"{len(stats.quarantined)} quarantined, {len(stats.flagged)} flagged in {stats.seconds} s"
    )


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            name,
            group_name=GROUP,
            kinds={"mongodb"},
            description=f"{alpha_type} alphas in MongoDB, one document per alpha (_id = id), deep-merged "
            "from the landing files; a ledger of imported files next to them.",
            deps=[
                dg.AssetDep(alpha_files, partition_mapping=ALL_ACCOUNTS_OF_MONTH),
                alpha_package_drops,
                alpha_store,
            ],
        )
        for name, alpha_type in IMPORTED_TYPES.items()
    ],
    partitions_def=alpha_months,
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool=pools.MONGODB,
)
def alpha_documents(
    context: dg.AssetExecutionContext, config: AlphaImportConfig, alpha_store: AlphaStoreResource
):
    """Import the month's landing files (deep merge, five modes, resumable via the ledger)."""
    months = partition_months(context)
    landing, quarantine_root = settings.alpha_landing_dir(), settings.quarantine_dir("alphas")
    time_range = config.time_range()
    db_regular, db_super = alpha_store.databases()
    ensure_alpha_indexes(db_regular, db_super, alpha_store.collection)
    array_keys = config.array_keys or None
    for asset_name, alpha_type in IMPORTED_TYPES.items():
        # Files under other type directories go with the REGULAR import, which quarantines them
        # ("unsupported type") unless their content is a supported alpha that was misfiled.
        if alpha_type == "REGULAR":
            files = _import_files(landing, None, months, config.accounts, exclude_types=("SUPER",))
        else:
            files = _import_files(landing, alpha_type, months, config.accounts)
        total, last = len(files), [time.monotonic()]
        context.log.info(f"{asset_name} {months[0]}..{months[-1]}: {total:,} files, mode {config.mode}")

        def progress(stats: ImportStats, asset_name=asset_name, total=total, last=last) -> None:
            if time.monotonic() - last[0] >= 5:
                last[0] = time.monotonic()
                context.log.info(
                    f"{asset_name}: {stats.files_seen:,}/{total:,} files, {stats.inserted:,} inserted, "
                    f"{stats.merged:,} merged, {stats.replaced:,} replaced, {stats.unchanged:,} unchanged"
                )

        collection = (db_regular if alpha_type == "REGULAR" else db_super)[alpha_store.collection]
        stats = _locked_import(
            context,
            asset_name,
            alpha_type,
            months,
            f"{collection.database.name}.{collection.name}",
            lambda after_crash, files=files, progress=progress: import_files(
                files,
                db_regular=db_regular,
                db_super=db_super,
                collection=alpha_store.collection,
                mode=config.mode,
                time_range=time_range,
                batch_size=config.batch_size,
                array_keys=array_keys,
                quarantine_root=quarantine_root,
                landing_root=landing,
                run_id=context.run.run_id,
                on_progress=progress,
                after_crash=after_crash,
                on_wait=context.log.warning,
            ),
        )
        _log_outcome(context, asset_name, stats)
        files_of = Counter(
            name.split("/")[2] for name, _ in files
        )  # alphas/<TYPE>/<YYYY-MM>/<account>/<id>.json
        for key in context.partition_keys:
            context.add_asset_metadata(
                _month_metadata(stats, month_of_key(key), files_of[month_of_key(key)], len(months)),
                asset_key=asset_name,
                partition_key=key,
            )
        yield dg.MaterializeResult(
            asset_key=asset_name, metadata=_import_metadata(stats, months, collection, alpha_type)
        )


@dg.asset(
    group_name=GROUP,
    partitions_def=alpha_months,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[dg.AssetKey(name) for name in IMPORTED_TYPES],
    kinds={"json"},
)
def alpha_packages(context: dg.AssetExecutionContext, config: AlphaPackagesConfig) -> dg.MaterializeResult:
    """One package per (type, month, account): the month's landing files as canonical JSON Lines,
    gzip, sorted by id, with a manifest (count, sha256). Built after the import, so files the import
    quarantined are not packaged; an unchanged month keeps its package bytes."""
    landing, package_root = settings.alpha_landing_dir(), settings.alpha_packages_dir()
    rows, failures = [], []
    for month in partition_months(context):
        groups: dict[tuple[str, str], list[Path]] = {}
        for path in iter_alpha_files(landing, None, month):
            alpha_type, _, account, _ = parse_alpha_path(path)
            if config.accounts and account not in config.accounts:
                continue
            groups.setdefault((alpha_type, account), []).append(path)
        for (alpha_type, account), paths in sorted(groups.items()):
            try:
                _package, manifest = build_package(paths, package_root)
            except PackageError as error:
                failures.append({"type": alpha_type, "month": month, "account": account, "error": str(error)})
                context.log.error(f"package {alpha_type} {month} {account}: {error}")
                continue
            rows.append(
                [
                    alpha_type,
                    month,
                    account,
                    manifest["count"],
                    manifest["package_bytes"],
                    manifest["sha256_package"][:12],
                    manifest["created_at"],
                ]
            )
    for key in context.partition_keys:  # each month's own packages; the run's as run_*
        context.add_asset_metadata(
            _package_figures([r for r in rows if r[1] == month_of_key(key)]), partition_key=key
        )
    run = _package_figures(rows)
    metadata = {
        **as_run({name: value for name, value in run.items() if name != "manifests"}),
        "run_partitions": len(context.partition_keys),
        "package_dir": str(package_root),
    }
    if failures:
        raise dg.Failure(
            description=f"{len(failures)} package(s) could not be built: "
            + "; ".join(f["error"] for f in failures[:3]),
            metadata={**metadata, "failures": dg.MetadataValue.json(failures)},
        )
    return dg.MaterializeResult(metadata=metadata)


def _package_figures(rows: list[list]) -> dict:
    """Built packages' figures (a month's, or the run's): packages, alphas, bytes and their manifests."""
    return {
        "packages": len(rows),
        "alphas_packaged": sum(r[3] for r in rows),
        "package_bytes": sum(r[4] for r in rows),
        "manifests": dg.MetadataValue.md(
            table(["type", "month", "account", "alphas", "bytes", "sha256", "built"], rows)
        )
        if rows
        else "none",
    }
