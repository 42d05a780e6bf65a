import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import date
from pathlib import Path

import dagster as dg

from marketdata_assets import pools, settings
from marketdata_assets.defs.bars.partitions import minute_bar_months
from marketdata_assets.lib.bars import kline, loader
from marketdata_assets.lib.bars.csv_profiles import load_profiles
from marketdata_assets.lib.bars.daily import daily_ma_frame, ensure_daily_ma_table, replace_daily_ma
from marketdata_assets.lib.bars.minute_csv import CsvFileError
from marketdata_assets.lib.charts import Candle, candlestick_svg, svg_markdown_image
from marketdata_assets.lib.files import quarantine
from marketdata_assets.lib.markdown import table
from marketdata_assets.resources import TimescaleResource


@dg.asset(group_name="bars", pool=pools.TIMESCALEDB, kinds={"timescaledb"})
def bar_store(context: dg.AssetExecutionContext, timescale: TimescaleResource) -> dg.MaterializeResult:
    """The market database with the TimescaleDB extension; its capabilities decide the load and
    aggregate paths (COPY vs INSERT, continuous aggregate vs table)."""
    started = time.monotonic()
    timescale.ensure_extension()
    capabilities = timescale.capabilities
    with timescale.connection() as conn, loader.ddl_lock(conn):
        kline.ensure_minute_table(conn)
        loader.ensure_loader_tables(conn)
    context.log.info(f"TimescaleDB {capabilities.extension_version} ({capabilities.license} license) "
                     f"on {capabilities.server_version}")
    return dg.MaterializeResult(metadata={
        **{key: str(value) for key, value in capabilities.as_metadata().items()},
        "seconds": round(time.monotonic() - started, 3),
    })


def partition_months(context: dg.AssetExecutionContext) -> list[date]:
    """The Beijing-time months of the run's partition key or range."""
    window = context.partition_time_window
    months, month = [], date(window.start.year, window.start.month, 1)
    end = date(window.end.year, window.end.month, 1)
    while month < end:
        months.append(month)
        month = loader.next_month(month)
    return months


class MinuteBarLoadConfig(dg.Config):
    force: bool = False
    """Reload files already loaded with the same content (seed 001's --force)."""
    workers: int = 4
    """Files loaded in parallel, largest first, each on its own connection (1 on single-session servers).
    On 2 cores, 4 measured best (1.24x psql \\copy; 3: 1.18x, 2: 1.15x): parsing overlaps the COPYs."""
    profiles_file: str = ""
    """A JSON file of extra column profiles (see lib/bars/csv_profiles.py), on top of the built-in ones."""


@dg.asset(group_name="bars", partitions_def=minute_bar_months, backfill_policy=dg.BackfillPolicy.single_run(),
          deps=[bar_store], pool=pools.TIMESCALEDB, kinds={"timescaledb", "polars"})
def stock_1min_qfq(context: dg.AssetExecutionContext, config: MinuteBarLoadConfig,
                   timescale: TimescaleResource) -> dg.MaterializeResult:
    """1-minute forward-adjusted A-share bars from the CSV landing area, one row per code and minute
    (Beijing wall-clock time). Each (file, month) loads once per content; re-loading replaces."""
    started = time.monotonic()
    months = partition_months(context)
    root = settings.minute_bars_landing_dir()
    quarantine_root = settings.quarantine_dir("minute_bars")
    profiles = load_profiles(config.profiles_file or None)
    capabilities = timescale.capabilities
    with timescale.connection() as conn:
        with loader.ddl_lock(conn):
            kline.ensure_minute_table(conn)
            loader.ensure_loader_tables(conn)
        indexed, stale = loader.landing_index(conn, root)

    wanted = set(months)
    # Files indexed as they are now: only those with rows in the run's months. New or changed files:
    # all, their months are learnt in the worker (small files parsed once for both).
    work = [(root / rel, rel, None, sorted(wanted & set(file_months)))
            for rel, (file_months, error) in indexed.items() if not error and wanted & set(file_months)]
    work += [(path, rel, stat, None) for path, rel, stat in stale]
    work.sort(key=lambda item: item[0].stat().st_size, reverse=True)  # largest first
    workers = 1 if capabilities.single_session else max(1, config.workers)
    context.log.info(f"{len(work)} files to look at for {months[0]:%Y-%m}..{months[-1]:%Y-%m} ({len(stale)} new or "
                     f"changed); {'binary COPY' if capabilities.copy_from_stdin else 'INSERT ... unnest'}, "
                     f"{workers} workers")
    quarantined = []

    def load(path: Path, rel: str, stat, file_months) -> loader.FileLoad | None:
        parsed = None
        with timescale.connection() as conn:
            if file_months is None:
                try:
                    first, last, all_months, parsed = loader.file_span(path, profiles)
                except CsvFileError as error:  # the whole file can't be read: out of the landing area
                    loader.record_index(conn, rel, stat, None, None, [], str(error))
                    quarantine(path, str(error), quarantine_root, relative_to=root)
                    quarantined.append({"file": rel, "reason": str(error)})
                    context.log.warning(f"quarantined {rel}: {error}")
                    return None
                loader.record_index(conn, rel, stat, first, last, all_months, None)
                file_months = sorted(wanted & set(all_months))
                if not file_months:
                    return None
            sha = loader.file_sha256(path)
            todo = loader.months_to_load(conn, rel, sha, file_months, config.force)
            conn.commit()
            if not todo:
                return loader.FileLoad(file=rel, size_bytes=path.stat().st_size,
                                       months=[f"{m:%Y-%m}" for m in file_months], outcome="skipped")
            return loader.load_file(conn, path, rel, todo, sha256=sha, use_copy=capabilities.copy_from_stdin,
                                    run_id=context.run.run_id, reject_dir=quarantine_root / "rejects",
                                    profiles=profiles, parsed=parsed)

    results: list[loader.FileLoad] = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(load, *item): item for item in work}
        for done, future in enumerate(as_completed(futures), start=1):
            _, rel, _, _ = futures[future]
            try:
                outcome = future.result()
            except CsvFileError as error:  # found mid-file (e.g. undecodable bytes): nothing of it was kept
                outcome = loader.FileLoad(file=rel, size_bytes=0, outcome="failed", error=str(error))
            if outcome is None:
                continue
            results.append(outcome)
            rate = f", {outcome.rows / outcome.seconds:,.0f} rows/s" if outcome.seconds else ""
            context.log.info(f"[{done}/{len(work)}] {outcome.outcome} {rel}: {outcome.rows:,} rows, "
                             f"{outcome.rejects} rejected{rate}")

    failed = [r for r in results if r.outcome == "failed"]
    loaded = [r for r in results if r.outcome == "loaded"]
    rows = sum(r.rows for r in loaded)
    seconds = round(time.monotonic() - started, 3)
    metadata = {
        "months": f"{months[0]:%Y-%m}..{months[-1]:%Y-%m}",
        "write_path": "binary COPY" if capabilities.copy_from_stdin else "INSERT ... SELECT FROM unnest",
        "files_considered": len(results),
        "files_loaded": len(loaded),
        "files_skipped": sum(r.outcome == "skipped" for r in results),
        "files_failed": len(failed),
        "files_quarantined": len(quarantined),
        "rows_loaded": dg.MetadataValue.int(rows),
        "rows_replaced": sum(r.rows_deleted for r in loaded),
        "rows_rejected": sum(r.rejects for r in results),
        "duplicates_dropped": sum(r.duplicates_dropped for r in loaded),
        "rows_per_second": round(rows / seconds) if seconds else None,
        "seconds": seconds,
        "files": dg.MetadataValue.md(_file_table(results)) if results else "none",
    }
    if quarantined:
        metadata["quarantined"] = dg.MetadataValue.json(quarantined)
    if failed:
        metadata["failed"] = dg.MetadataValue.json([{"file": r.file, "error": r.error} for r in failed])
        context.log.error("failed files: " + "; ".join(f"{r.file}: {r.error}" for r in failed))
    return dg.MaterializeResult(metadata=metadata)


def _file_table(results: list[loader.FileLoad]) -> str:
    return table(["file", "months", "outcome", "rows", "replaced", "rejected", "duplicates", "seconds", "note"],
                 ([r.file, " ".join(r.months), r.outcome, r.rows, r.rows_deleted, r.rejects, r.duplicates_dropped,
                   r.seconds, r.rejects_file or r.error] for r in sorted(results, key=lambda r: r.file)))


class MonthlyKlineConfig(dg.Config):
    force_backfill: bool = False
    """Refresh everything from 2000-01-01 to now (seed 004's --force-backfill)."""
    recreate: bool = False
    """Drop and recreate stock_monthly_kline when its definition changed (DROP ... CASCADE). Never implicit."""
    chart_codes: int = 4
    """Codes drawn as monthly candlesticks in the metadata (the most traded in the window)."""


@dg.asset(group_name="bars", partitions_def=minute_bar_months, backfill_policy=dg.BackfillPolicy.single_run(),
          deps=[stock_1min_qfq], pool=pools.TIMESCALEDB, kinds={"timescaledb"})
def stock_monthly_kline(context: dg.AssetExecutionContext, config: MonthlyKlineConfig,
                        timescale: TimescaleResource) -> dg.MaterializeResult:
    """Monthly K-line per code (seed 004): a TimescaleDB continuous aggregate where the TSL features
    exist, otherwise a table refreshed per month with the same SQL; cleaning in its WHERE."""
    months = partition_months(context)
    end = loader.next_month(months[-1])
    with timescale.connection() as conn:
        try:
            with loader.ddl_lock(conn):
                ensured = kline.ensure_monthly_kline(conn, recreate=config.recreate)
        except kline.KlineDefinitionChanged as error:
            raise dg.Failure(description=str(error)) from None
        if ensured.created or config.force_backfill:
            context.log.info(f"{'new ' if ensured.created else ''}{kline.KLINE} ({ensured.path}): full backfill")
            refreshed = kline.force_backfill(conn)
        else:
            refreshed = kline.refresh_window(conn, months[0], end)
        context.log.info(f"refreshed {kline.KLINE} [{refreshed.window_start:%Y-%m}, {refreshed.window_end:%Y-%m}) "
                         f"on the {refreshed.path} path in {refreshed.seconds} s")
        chart = _kline_chart(conn, months[0], end, config.chart_codes)
    metadata = {key: (dg.MetadataValue.json(value) if isinstance(value, dict) else value)
                for key, value in refreshed.as_metadata().items() if value is not None}
    metadata["created"] = ensured.created
    if chart:
        metadata["monthly_candles"] = dg.MetadataValue.md(chart)
    return dg.MaterializeResult(metadata=metadata)


def _kline_chart(conn, start: date, end: date, codes: int) -> str:
    """Candlesticks of the most traded codes of the window, for the twelve months up to its end."""
    top = [row[0] for row in conn.execute(
        f"SELECT code FROM {kline.KLINE} WHERE month >= %s AND month < %s "
        "GROUP BY code ORDER BY sum(amount) DESC NULLS LAST, code LIMIT %s", (start, end, codes)).fetchall()]
    sections = []
    for code in top:
        rows = conn.execute(
            f"SELECT month, open, high, low, close, name FROM {kline.KLINE} WHERE code = %s AND month < %s "
            "AND month >= %s::date - interval '11 months' ORDER BY month", (code, end, end)).fetchall()
        candles = [Candle(m.date() if hasattr(m, "date") else m, o, h, lo, c) for m, o, h, lo, c, _ in rows
                   if None not in (o, h, lo, c)]
        name = rows[-1][5] if rows else ""
        sections.append(svg_markdown_image(candlestick_svg(f"{code} {name or ''}", candles), f"{code} monthly K-line"))
    return "\n\n".join(sections)


@dg.asset(group_name="bars", partitions_def=minute_bar_months, backfill_policy=dg.BackfillPolicy.single_run(),
          deps=[stock_1min_qfq], pool=pools.TIMESCALEDB, kinds={"timescaledb", "polars"})
def stock_daily_ma(context: dg.AssetExecutionContext, timescale: TimescaleResource) -> dg.MaterializeResult:
    """Daily bars per code with MA5/MA10/MA20 of the close (seed 001's handler example: clean minute
    bars -> daily bars -> moving averages), computed with enough history before the month."""
    months = partition_months(context)
    end = loader.next_month(months[-1])
    with timescale.connection() as conn:
        with loader.ddl_lock(conn):
            ensure_daily_ma_table(conn)
        frame = daily_ma_frame(conn, months[0], end)
        written = replace_daily_ma(conn, frame, months[0], end)
    return dg.MaterializeResult(metadata={
        "days": frame["date"].n_unique() if frame.height else 0,
        "codes": frame["code"].n_unique() if frame.height else 0,
        "rows": written,
        "rows_with_ma20": int(frame["ma20"].is_not_null().sum()) if frame.height else 0,
        "preview": dg.MetadataValue.md(table(frame.columns, frame.tail(10).iter_rows())) if frame.height else "empty",
    })
