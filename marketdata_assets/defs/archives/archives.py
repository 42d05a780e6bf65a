"""Binance archives from data.binance.vision, fetched and verified before they load
(sources.binance_vision.archives): the assets, their partitions, the re-check, the monthly
reconcile and their schedules, all here.

Group `archives`; each step holds the `clickhouse` pool. Assets, partitions and schedules:
docs/ticks.md, "Binance archives from data.binance.vision".
"""

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from pathlib import Path

import dagster as dg

from marketdata_assets.core import settings
from marketdata_assets.core.markdown import table
from marketdata_assets.defs._common.history import count_held, history_materializations
from marketdata_assets.defs._common.ingest import (
    TICK_STORE,
    IngestConfig,
    RunDeadline,
    engine,
    materialize,
    planned,
    slice_assets,
    tick_spec,
)
from marketdata_assets.defs._common.partitions import crypto_key, slice_keys
from marketdata_assets.defs._common.runs import UTC, daily_use_schedule, day_range_tags
from marketdata_assets.ingest import archives
from marketdata_assets.ingest.archives import ArchiveRun
from marketdata_assets.ingest.engine import IngestReport
from marketdata_assets.orchestration import pools
from marketdata_assets.resources import ClickHouseResource
from marketdata_assets.sources.binance_vision.archives import (
    SOURCE,
    ArchiveClient,
    archived,
    daily_jobs,
    dataset_of,
)
from marketdata_assets.sources.config import load_sources_config

GROUP = "archives"
ARCHIVES = load_sources_config().binance_archives  # the kinds and instruments: assets and partitions
ARCHIVE_ASSETS = {dataset_of(f, i): f"binance_archive_{dataset_of(f, i)}" for f, i in ARCHIVES.files()}
UNIVERSE: dict[str, list[str]] = {}  # venue -> its archive instruments (the config's binance_archives)
for _key in ARCHIVES.instrument_keys():
    UNIVERSE.setdefault(_key.venue, []).append(_key.instrument)
VENUES = sorted(UNIVERSE)

# UTC day x venue (BINANCE, BINANCE_UM): the venue's archive instruments are loaded inside the run
binance_archive_days = dg.DailyPartitionsDefinition(
    start_date=ARCHIVES.start_date.isoformat(), timezone="UTC"
)
binance_archive_venues = dg.StaticPartitionsDefinition(VENUES)
binance_archive_partitions = dg.MultiPartitionsDefinition(
    {"day": binance_archive_days, "venue": binance_archive_venues}
)


class ArchiveIngestConfig(IngestConfig):
    instruments: list[str] = []  # noqa: RUF012 - pydantic copies the default
    """Only these instruments (VENUE:INSTRUMENT) of the run's venues; empty: every archive instrument."""


def _client():
    """Makes the run's client: the config read when the run starts (its base URL variable too)."""
    config = load_sources_config().binance_archives
    return lambda: ArchiveClient.from_settings(config)


@contextmanager
def _workdir() -> Iterator[Path]:
    """Where a run's archives are downloaded: the state dir (a monthly archive can be gigabytes), removed
    after."""
    root = settings.state_dir() / "tmp"
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="binance-archives-", dir=root) as path:
        yield Path(path)


def _recorded(rows: list[dict]) -> dg.MetadataValue:
    return dg.MetadataValue.md(
        table(
            ["archive", "sha256", "bytes", "rows", "ids", "status", "note"],
            (
                (
                    Path(r["url"]).name,
                    r["sha256"],
                    r["size"],
                    r["rows"],
                    f"{r['first_id']}..{r['last_id']}",
                    r["status"],
                    r["note"][:200],
                )
                for r in rows
            ),
            limit=200,
        )
    )


def _lines(items: list[str]) -> dg.MetadataValue:
    return dg.MetadataValue.md("\n".join(f"- {item}" for item in items) or "none")


def _fail_on(asset: str, problems: list[str], metadata: dict) -> None:
    if problems:
        raise dg.Failure(
            f"{asset}: {len(problems)} archive(s) not verified or not loaded: "
            + "; ".join(p[:300] for p in problems[:3]),
            metadata=metadata,
            allow_retries=False,
        )


def _venues(dataset: str) -> str:
    if dataset == "liquidations":
        return (
            "venue BINANCE_UM only: USD-M liquidationSnapshot files, published up to 2024-03-31 and "
            "since taken off the site (a later day fails as missing)"
        )
    return "venues BINANCE, BINANCE_UM"


def _specs() -> list[dg.AssetSpec]:
    return [
        tick_spec(
            asset,
            GROUP,
            f"data.binance.vision daily archives of {dataset} (SHA-256 verified against the "
            f"published CHECKSUM), in ClickHouse `{dataset}` ({_venues(dataset)}).",
            skippable=True,
        )
        for dataset, asset in ARCHIVE_ASSETS.items()
    ]


@slice_assets("binance_archives", _specs(), binance_archive_partitions, pools.CLICKHOUSE)
def binance_archives(
    context: dg.AssetExecutionContext, config: ArchiveIngestConfig, clickhouse: ClickHouseResource
):
    """Fetch, verify and load the daily archives of the run's (day, venue) partitions: every archive
    instrument of the venue, each its own slice; the crypto history partitions they fill (crypto_trades,
    crypto_bars_1m of the same day x venue) are reported materialized with what they hold now."""
    assets = {d: a for d, a in ARCHIVE_ASSETS.items() if dg.AssetKey(a) in context.selected_asset_keys}
    report = IngestReport()
    wanted = slice_keys(context.partition_keys, assets, config.instruments, UNIVERSE)
    if skipped := [k for k in wanted if not archived(k)]:  # no spot liquidations
        context.log.info(
            f"{len(skipped)} slice(s) of datasets data.binance.vision does not publish for their "
            f"market (e.g. {skipped[0]}): not asked for"
        )
    keys = planned(clickhouse, config, SOURCE, [k for k in wanted if archived(k)], report)
    with _workdir() as workdir:
        run = ArchiveRun(
            _client(), workdir, workers=config.workers or ARCHIVES.workers, attempts=config.attempts
        )
        report.merge(engine(context, clickhouse, config).run([[run.feed(daily_jobs(keys))]]))
        with clickhouse.get_client() as client:
            recorded = run.record(client, clickhouse.database, report, context.run.run_id)
    count_held(clickhouse, report)
    # the crypto partitions these slices fill (same tables): materialized as a crypto run would judge them
    filled = list(history_materializations(clickhouse, context.partition_keys, assets, SOURCE))
    clickhouse.close()
    yield from filled
    archives = {
        dataset: {"archives": _recorded([r for r in recorded if r["dataset"] == dataset])}
        for dataset in assets
    }
    yield from materialize(
        context,
        report,
        assets,
        config.max_failed,
        archives,
        partition_of=lambda key: crypto_key(key.day, key.venue),
    )


@dg.asset(group_name=GROUP, deps=[TICK_STORE], pool=pools.CLICKHOUSE, kinds={"clickhouse"})
def binance_archive_recheck(
    context: dg.AssetExecutionContext, config: RunDeadline, clickhouse: ClickHouseResource
) -> dg.MaterializeResult:
    """The published CHECKSUM of every recorded archive read again (Binance replaces archives after
    publication); the changed ones downloaded, verified and their slices reloaded (the load pointer
    swaps each at once), recorded with the old and new digests."""
    with _workdir() as workdir:
        result = archives.recheck(
            _client(), engine(context, clickhouse, config), workdir, workers=ARCHIVES.workers
        )
    clickhouse.close()
    context.log.info(
        f"re-check: {result.checked} archives, {len(result.changed)} changed, reload "
        f"{result.report.summary()}"
    )
    changes = [[c.key.path, c.old, c.new] for c in result.changed]
    metadata = {
        "archives_checked": result.checked,
        "changed": len(changes),
        "changes": dg.MetadataValue.md(
            table(["archive", "old sha256", "new sha256"], changes) if changes else "none"
        ),
        "withdrawn": _lines(result.withdrawn),
        "reloaded": _recorded(result.recorded),
        "reload_summary": result.report.summary(),
    }
    again = result.reconciled
    if again is not None:
        metadata["monthly_reconciled"] = again.summary()
    problems = (
        [o.error for o in result.report.failures()]
        + result.errors
        + (again.failed + [o.error for o in again.report.failures()] if again is not None else [])
    )
    _fail_on("binance_archive_recheck", problems, metadata)
    return dg.MaterializeResult(metadata=metadata)


class ReconcileConfig(RunDeadline):
    months: list[str] = []  # noqa: RUF012 - pydantic copies the default
    """Months (YYYY-MM) to reconcile for every configured archive file and instrument; empty: the last
    complete months with daily archives recorded and no reconciled monthly archive yet."""
    instruments: list[str] = []  # noqa: RUF012
    """With `months`: only these instruments (BINANCE:BTCUSDT, BINANCE_UM:ETHUSDT, ...); empty: every one."""
    months_back: int = 3
    """How many complete months back the default looks."""
    fill_missing: bool = True
    """Load the days no daily slice holds (a daily archive missing) from the monthly archive."""
    replace_mismatched: bool = False
    """Replace the daily slices that differ from the monthly archive with its rows."""


@dg.asset(
    group_name=GROUP,
    deps=[TICK_STORE],
    pool=pools.CLICKHOUSE,
    kinds={"clickhouse"},
    check_specs=[
        dg.AssetCheckSpec(
            "monthly_matches_daily",
            asset="binance_archive_reconcile",
            description="Each day of a monthly archive has the rows and ids of the daily slice stored.",
        )
    ],
)
def binance_archive_reconcile(
    context: dg.AssetExecutionContext, config: ReconcileConfig, clickhouse: ClickHouseResource
) -> dg.MaterializeResult:
    """Monthly archives, once published, compared day by day (rows, first and last id, distinct ids)
    with the daily slices stored; days without a daily slice filled from them; mismatches named."""
    with clickhouse.get_client() as client:
        months = archives.monthly_keys(
            ARCHIVES, [date.fromisoformat(f"{m}-01") for m in config.months], config.instruments
        ) or archives.months_to_reconcile(
            client, clickhouse.database, ARCHIVES, datetime.now(UTC).date(), config.months_back
        )
    with _workdir() as workdir:
        result = archives.reconcile(
            _client(),
            engine(context, clickhouse, config),
            workdir,
            months,
            workers=ARCHIVES.workers,
            fill_missing=config.fill_missing,
            replace_mismatched=config.replace_mismatched,
        )
    clickhouse.close()
    context.log.info(f"reconcile: {result.summary()}")
    columns = ["instrument", "dataset", "day", "status", "monthly archive", "daily slice"]
    shown = [c.row() for c in result.comparisons if c.status != "match"]
    mismatches = [c.row() for c in result.mismatches]
    check = dg.AssetCheckResult(
        passed=not mismatches,
        check_name="monthly_matches_daily",
        metadata={
            "mismatches": dg.MetadataValue.md(table(columns, mismatches) if mismatches else "none"),
            "days_compared": len(result.comparisons),
        },
    )
    metadata = {
        "summary": result.summary(),
        "months": _lines([k.path for k in months]),
        "differences": dg.MetadataValue.md(table(columns, shown, limit=200) if shown else "none"),
        "not_published": _lines(result.missing),
        "failed": _lines(result.failed),
        "recorded": _recorded(result.recorded),
        "load_summary": result.report.summary(),
    }
    _fail_on(
        "binance_archive_reconcile", result.failed + [o.error for o in result.report.failures()], metadata
    )
    return dg.MaterializeResult(check_results=[check], metadata=metadata)


binance_archives_job = dg.define_asset_job(
    "binance_archives_job", selection=dg.AssetSelection.assets(*ARCHIVE_ASSETS.values())
)
binance_archive_upkeep_job = dg.define_asset_job(
    "binance_archive_upkeep_job",
    selection=dg.AssetSelection.assets(binance_archive_recheck, binance_archive_reconcile),
)


@daily_use_schedule(
    binance_archives_job,
    "0 4 * * *",
    "binance_archives",
    "Loads yesterday's archives (published the next day) and retries the day before.",
)
def binance_archives_daily(context: dg.ScheduleEvaluationContext):
    """The last two UTC days for every archive venue and instrument, in one run: yesterday's archives
    (published the next day) and the slices of the day before that did not load (`retry_failed`)."""
    last = context.scheduled_execution_time.astimezone(UTC).date() - timedelta(days=1)
    first = max(last - timedelta(days=1), ARCHIVES.start_date)
    return dg.RunRequest(
        run_key=f"binance-archives:{last}",
        tags=day_range_tags(first, last, VENUES[0], VENUES[-1]),
        run_config={"ops": {"binance_archives": {"config": {"retry_failed": True}}}},
    )


@daily_use_schedule(
    binance_archive_upkeep_job,
    "30 5 * * *",
    "binance_archives",
    "Re-checks the published checksums and reconciles the daily slices with the monthly archives.",
)
def binance_archive_upkeep_daily(context: dg.ScheduleEvaluationContext):
    """Re-check every recorded archive's published CHECKSUM, then reconcile the monthly archives."""
    return dg.RunRequest(run_key=f"binance-archive-upkeep:{context.scheduled_execution_time:%Y-%m-%d}")
