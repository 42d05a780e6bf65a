"""A-share minute bars from CSV drops into TimescaleDB: the table, the monthly loads
from the landing area, the monthly K-line, daily moving averages and the coverage picture."""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta

import dagster as dg

from marketdata_assets.core import calendars, settings
from marketdata_assets.core.charts import Candle, candlestick_svg, svg_markdown_image
from marketdata_assets.core.markdown import table
from marketdata_assets.defs._common.config import RunConfig
from marketdata_assets.defs._common.figures import add_own, as_run
from marketdata_assets.defs.equities.partitions import minute_bar_months
from marketdata_assets.ingest.minute_bars import landing as landing_load
from marketdata_assets.ingest.minute_bars.daily import daily_ma_frame, ensure_daily_ma_table, replace_daily_ma
from marketdata_assets.orchestration import pools
from marketdata_assets.quality.minute_bars import coverage
from marketdata_assets.resources import TimescaleResource
from marketdata_assets.sources.registry import minute_files
from marketdata_assets.stores.timescale import bootstrap as store
from marketdata_assets.stores.timescale import kline, ledger
from marketdata_assets.stores.timescale.minute_table import PlainTableNotMigrated

GROUP = "equities"


# every monthly minute-bar asset: its group, the months, and one run for a backfill of many
MONTHLY = {
    "group_name": GROUP,
    "partitions_def": minute_bar_months,
    "backfill_policy": dg.BackfillPolicy.single_run(),
}


@dg.asset(group_name=GROUP, pool=pools.TIMESCALEDB, kinds={"timescaledb"})
def bar_store(context: dg.AssetExecutionContext, timescale: TimescaleResource) -> dg.MaterializeResult:
    """The market database with the TimescaleDB extension, the stock_1min_qfq hypertable and its index
    (stores/timescale/bootstrap.py; every writer of minute bars does the same first); its capabilities decide
    the load and aggregate paths (COPY vs INSERT, continuous aggregate vs table)."""
    bootstrap = bootstrap_store(context, timescale)
    capabilities = timescale.capabilities
    context.log.info(
        f"TimescaleDB {capabilities.extension_version} ({capabilities.license} license) "
        f"on {capabilities.server_version}"
    )
    return dg.MaterializeResult(
        metadata={
            **{key: str(value) for key, value in capabilities.as_metadata().items()},
            **bootstrap.as_metadata(),
            "seconds": bootstrap.seconds,
        }
    )


def bootstrap_store(context: dg.AssetExecutionContext, timescale: TimescaleResource) -> store.StoreBootstrap:
    """store.bootstrap on the resource, its events logged (a degraded store as a warning)."""
    with _plain_table_failure(), timescale.connection() as conn:
        bootstrap = store.bootstrap(conn, migrate_max_rows=settings.minute_bars_migrate_max_rows())
    report_bootstrap(context, timescale, bootstrap)
    return bootstrap


def report_bootstrap(
    context: dg.AssetExecutionContext, timescale: TimescaleResource, bootstrap: store.StoreBootstrap
) -> None:
    for line in bootstrap.events():
        context.log.info(line)
    if bootstrap.degraded:
        context.log.warning(bootstrap.degraded)
    if bootstrap.extension_created:
        timescale.refresh_capabilities()


@contextmanager
def _plain_table_failure() -> Iterator[None]:
    """A plain table too big to migrate implicitly fails the step once, with the command that migrates it."""
    try:
        yield
    except PlainTableNotMigrated as error:
        raise dg.Failure(description=str(error), allow_retries=False) from None


def partition_months(context: dg.AssetExecutionContext) -> list[date]:
    """The Beijing-time months of the run's partition key or range."""
    window = context.partition_time_window
    months, month = [], date(window.start.year, window.start.month, 1)
    end = date(window.end.year, window.end.month, 1)
    while month < end:
        months.append(month)
        month = calendars.next_month(month)
    return months


class MinuteBarLoadConfig(RunConfig):
    force: bool = False
    """Reload files already loaded with the same content (`marketdata load-minute-bars --force`)."""
    workers: int = 4
    """Files loaded in parallel, largest first by size class and in path order within one, each on its own
    connection (1 on single-session servers). On 2 cores 4 measured best: parsing overlaps the COPYs."""
    profiles_file: str = ""
    """A JSON file of extra column profiles (see sources/minute_csv/profiles.py), on top of the built-in
    ones."""


@dg.asset(
    **MONTHLY,
    deps=[bar_store],
    pool=pools.TIMESCALEDB,
    kinds={"timescaledb", "polars"},
)
def stock_1min_qfq(
    context: dg.AssetExecutionContext, config: MinuteBarLoadConfig, timescale: TimescaleResource
) -> dg.MaterializeResult:
    """1-minute forward-adjusted A-share bars from the CSV landing area, one row per code and minute
    (Beijing wall-clock time). Each (file, month) loads once per content; re-loading replaces; a file
    that can't be loaded is quarantined with its reason and the others load. Rejected rows or
    quarantined files make the materialization `partial` (how many, which files, where they are)."""
    capabilities = timescale.capabilities
    with _plain_table_failure():  # the load bootstraps the store first, whoever launched this run
        report = landing_load.load_landing(
            timescale.connection,
            settings.minute_bars_landing_dir(),
            partition_months(context),
            quarantine_root=settings.quarantine_dir("minute_bars"),
            use_copy=capabilities.copy_from_stdin,
            workers=1 if capabilities.single_session else max(1, config.workers),
            force=config.force,
            profiles=minute_files().profiles(config.profiles_file or None),
            run_id=context.run.run_id,
            migrate_max_rows=settings.minute_bars_migrate_max_rows(),
            log=context.log.info,
        )
    report_bootstrap(context, timescale, report.bootstrap)
    for key in context.partition_keys:  # each month's own rows and files; the run's as run_*
        own = report.of_month(date.fromisoformat(key))
        add_own(
            context,
            key,
            {**own, "rows_loaded": dg.MetadataValue.int(own["rows_loaded"])},
            len(context.partition_keys),
        )
    metadata = as_run(report.metadata(), OWN)
    metadata["run_rows_loaded"] = dg.MetadataValue.int(metadata["run_rows_loaded"])
    metadata["rejected_by_reason"] = dg.MetadataValue.json(metadata["rejected_by_reason"])
    metadata["files"] = dg.MetadataValue.md(report.files_table()) if report.files else "none"
    if report.quarantined:
        metadata["quarantined"] = dg.MetadataValue.json(report.quarantined)
        context.log.warning(
            "quarantined: " + "; ".join(f"{q['file']}: {q['reason']}" for q in report.quarantined)
        )
    if report.released:
        metadata["released"] = dg.MetadataValue.json(report.released)
    partial = report.partial()
    if partial:  # input not loaded: the run's line says [partial] with it, not [ok]
        metadata["partial"] = partial
    return dg.MaterializeResult(metadata=metadata)


OWN = ("rows_loaded", "files_loaded", "files_skipped")  # a month's own in its partition; the run's as run_*
RUN_COUNTS = (
    "rows_deleted",
    "rows_inserted",
    "rows_in_window",
    "months",
    "seconds",
)  # a K-line refresh's: the run's


class MonthlyKlineConfig(RunConfig):
    force_backfill: bool = False
    """Refresh everything from 2000-01-01 to now (`marketdata aggregate --force-backfill`)."""
    recreate: bool = False
    """Drop and recreate stock_monthly_kline when its definition changed (DROP ... CASCADE). Never
    implicit."""
    chart_codes: int = 4
    """Codes drawn as monthly candlesticks in the metadata (the most traded in the window)."""


@dg.asset(
    **MONTHLY,
    deps=[stock_1min_qfq],
    pool=pools.TIMESCALEDB,
    kinds={"timescaledb"},
    # monthly_kline_after_close (schedules.py) refreshes the last three months at 17:30 on weekdays.
    freshness_policy=dg.FreshnessPolicy.cron(
        deadline_cron="30 18 * * 1-5",
        timezone="Asia/Shanghai",
        lower_bound_delta=timedelta(hours=1, minutes=30),
    ),
)
def stock_monthly_kline(
    context: dg.AssetExecutionContext, config: MonthlyKlineConfig, timescale: TimescaleResource
) -> dg.MaterializeResult:
    """Monthly K-line per code: a TimescaleDB continuous aggregate where the TSL features
    exist, otherwise a table refreshed per month with the same SQL; cleaning in its WHERE."""
    months = partition_months(context)
    end = calendars.next_month(months[-1])
    bootstrap = bootstrap_store(context, timescale)
    with timescale.connection() as conn:
        try:
            with ledger.ddl_lock(conn):
                ensured = kline.ensure_monthly_kline(conn, recreate=config.recreate)
        except kline.KlineDefinitionChanged as error:
            raise dg.Failure(description=str(error)) from None
        if ensured.created or config.force_backfill:
            context.log.info(
                f"{'new ' if ensured.created else ''}{kline.KLINE} ({ensured.path}): full backfill"
            )
            refreshed = kline.force_backfill(conn)
        else:
            refreshed = kline.refresh_window(conn, months[0], end)
        context.log.info(
            f"refreshed {kline.KLINE} [{refreshed.window_start:%Y-%m}, {refreshed.window_end:%Y-%m}) "
            f"on the {refreshed.path} path in {refreshed.seconds} s"
        )
        chart = _kline_chart(conn, months[0], end, config.chart_codes)
        by_month = kline.rows_by_month(conn, months[0], end)
    for month in months:  # each month its own rows; the refresh's counts are the run's
        add_own(
            context, f"{month:%Y-%m-%d}", {"rows": dg.MetadataValue.int(by_month.get(month, 0))}, len(months)
        )
    metadata = as_run(
        {
            key: (dg.MetadataValue.json(value) if isinstance(value, dict) else value)
            for key, value in refreshed.as_metadata().items()
            if value is not None
        },
        RUN_COUNTS,
    )
    metadata["created"] = ensured.created
    metadata["aggregation"] = kline.aggregation_path(timescale.capabilities.license)
    if bootstrap.degraded:
        metadata["degraded"] = bootstrap.degraded
    if chart:
        metadata["monthly_candles"] = dg.MetadataValue.md(chart)
    return dg.MaterializeResult(metadata=metadata)


def _kline_chart(conn, start: date, end: date, codes: int) -> str:
    """Candlesticks of the most traded codes of the window, for the twelve months up to its end."""
    top = [
        row[0]
        for row in conn.execute(
            f"SELECT code FROM {kline.KLINE} WHERE month >= %s AND month < %s "
            "GROUP BY code ORDER BY sum(amount) DESC NULLS LAST, code LIMIT %s",
            (start, end, codes),
        ).fetchall()
    ]
    sections = []
    for code in top:
        rows = conn.execute(
            f"SELECT month, open, high, low, close, name FROM {kline.KLINE} WHERE code = %s AND month < %s "
            "AND month >= %s::date - interval '11 months' ORDER BY month",
            (code, end, end),
        ).fetchall()
        candles = [
            Candle(m.date() if hasattr(m, "date") else m, o, h, lo, c)
            for m, o, h, lo, c, _ in rows
            if None not in (o, h, lo, c)
        ]
        name = rows[-1][5] if rows else ""
        sections.append(
            svg_markdown_image(candlestick_svg(f"{code} {name or ''}", candles), f"{code} monthly K-line")
        )
    return "\n\n".join(sections)


@dg.asset(
    **MONTHLY,
    deps=[stock_1min_qfq],
    pool=pools.TIMESCALEDB,
    kinds={"timescaledb", "polars"},
)
def stock_daily_ma(context: dg.AssetExecutionContext, timescale: TimescaleResource) -> dg.MaterializeResult:
    """Daily bars per code with MA5/MA10/MA20 of the close (clean minute bars -> daily bars ->
    moving averages), computed with enough history before the month."""
    months = partition_months(context)
    end = calendars.next_month(months[-1])
    with timescale.connection() as conn:
        with ledger.ddl_lock(conn):
            ensure_daily_ma_table(conn)
        frame = daily_ma_frame(conn, months[0], end)
        written = replace_daily_ma(conn, frame, months[0], end)
    return dg.MaterializeResult(
        metadata={
            "days": frame["date"].n_unique() if frame.height else 0,
            "codes": frame["code"].n_unique() if frame.height else 0,
            "rows": written,
            "rows_with_ma20": int(frame["ma20"].is_not_null().sum()) if frame.height else 0,
            "preview": dg.MetadataValue.md(table(frame.columns, frame.tail(10).iter_rows()))
            if frame.height
            else "empty",
        }
    )


class CoverageConfig(RunConfig):
    worst: int = coverage.WORST
    """Incomplete codes drawn one row each (worst first); all the others form one band."""


@dg.asset(
    **MONTHLY,
    deps=[stock_1min_qfq],
    pool=pools.TIMESCALEDB,
    kinds={"timescaledb"},
)
def bars_coverage(
    context: dg.AssetExecutionContext, config: CoverageConfig, timescale: TimescaleResource
) -> dg.MaterializeResult:
    """Code x trading day completeness of each month's minute bars as a heat map (the worst codes, then
    one band for all others) with the percentages behind it. Monthly like stock_1min_qfq: a month's
    picture changes only when that month loads, so a run redraws only its own months."""
    with timescale.connection() as conn:
        maps = [
            coverage.month_coverage(conn, month, worst=config.worst) for month in partition_months(context)
        ]
    return dg.MaterializeResult(
        metadata={
            "heat_map": dg.MetadataValue.md("\n\n".join(m.markdown() for m in maps)),
            "codes": max(m.codes for m in maps),
            "incomplete_codes": max(m.codes - m.complete_codes for m in maps),
            "overall_percent": round(100 * min(m.overall for m in maps), 3),
            "coverage": dg.MetadataValue.json([m.as_json() for m in maps]),
        }
    )
