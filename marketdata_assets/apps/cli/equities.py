"""Bars and the monthly K-line as `marketdata` subcommands: ingest (data.ingestion.run: Tushare or Yahoo bars
into ClickHouse), load-minute-bars (etl/scripts/run_etl.py, with load_data.main's --aggregate
--force-backfill) and aggregate (load_data/aggregate.py: the monthly K-line)."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import click

from marketdata_assets.apps.cli.session import (
    DAY,
    MONTH,
    Session,
    days_between,
    finish,
    months_between,
    run_range,
    selection,
)
from marketdata_assets.core import settings
from marketdata_assets.core.verdicts import EXIT_CODES, NOT_LOADABLE
from marketdata_assets.sources.registry import STOCK_FEEDS

ALL = "ALL"
FEEDS = [name.lower() for name in STOCK_FEEDS]  # `ingest --provider` (the registry's stock feeds)


def _workers(minimum: int, default: int, what: str, show_default: bool = False):
    """`--workers` (and `--max-workers`, the replaced script's name for it): `what` it counts."""
    return click.option(
        "--workers",
        "--max-workers",
        "workers",
        type=click.IntRange(min=minimum),
        default=default,
        show_default=show_default,
        help=f"{what} --max-workers is the replaced script's name for it.",
    )


def _instruments(source: str, items: list[str]) -> list[str]:
    """The codes of --symbols (spaces or commas): [] for the sources config's universe, [ALL] for
    every listed code (Tushare), else each checked; a bad one is a usage error naming it."""
    feed = STOCK_FEEDS[source.upper()]
    codes = [c for item in items for c in item.replace(",", " ").split()]
    if ALL in (c.upper() for c in codes):
        if len(codes) > 1:
            raise click.BadParameter(
                f"ALL stands alone (every listed code), not with {[c for c in codes if c.upper() != ALL]}",
                param_hint="--symbols",
            )
        if feed.listing is None:
            raise click.BadParameter(
                f"ALL: {feed.vendor} publishes no listing to take every code from (and ALL may be a ticker "
                "there); name the instruments, or leave --symbols out for the sources config's "
                f"{feed.vendor} universe",
                param_hint="--symbols",
            )
        return [ALL]
    for code in codes:
        try:
            feed.normalize(code)
        except ValueError as error:
            raise click.BadParameter(f"{code!r}: {error}", param_hint="--symbols") from None
    return codes


def _universe_label(instruments: list[str]) -> str:
    if instruments == [ALL]:
        return "every listed code"
    return f"{len(instruments)}" if instruments else "the sources config's universe"


@click.command(
    "ingest",
    context_settings={"allow_extra_args": True},
    short_help="Tushare or Yahoo bars -> ClickHouse (replaces data.ingestion.run).",
)
@click.option(
    "--symbols",
    multiple=True,
    help="Instruments: `--symbols 000001.SZ 600000.SH` (spaces), or "
    "commas. ALL (tushare): every code Tushare lists today (stock_basic list_status L, ~5,400; asked once a "
    "Beijing day and kept under <state dir>/listings). Default: the sources config's universe.",
)
@click.option(
    "--source",
    "--provider",
    "source",
    type=click.Choice(FEEDS, case_sensitive=False),
    default="tushare",
    show_default=True,
    help="Whom to ask: "
    + "; ".join(f"{name.lower()}: {feed.what}" for name, feed in STOCK_FEEDS.items())
    + ".",
)
@click.option(
    "--start-date", type=DAY, required=True, help="First day (a China day for tushare, a UTC day for yahoo)."
)
@click.option("--end-date", type=DAY, required=True, help="Last day.")
@click.option(
    "--providers-config",
    "sources_config",
    type=click.Path(exists=True, dir_okay=False),
    help="data_providers.yaml (rate limits, workers, universe); default: TICKS_PROVIDERS_CONFIG or the "
    "shipped one.",
)
@_workers(0, 0, "Fetches at once, within the source's rate limits; 0: the providers config's.")
@click.pass_context
def ingest(ctx, symbols, source, start_date, end_date, sources_config, workers) -> None:
    """Replaces `python -m data.ingestion.run`: 1-minute bars of the days (and daily bars from
    Tushare) into ClickHouse, one range run within the source's rate limits, with its checks."""
    session: Session = ctx.obj
    if sources_config:
        os.environ["TICKS_PROVIDERS_CONFIG"] = os.path.abspath(sources_config)
    extra = [arg for arg in ctx.args if arg.startswith("-")]
    if extra:
        raise click.UsageError(f"unexpected arguments {extra}")
    source = source.lower()
    instruments = _instruments(source, [*symbols, *ctx.args])
    from marketdata_assets.defs.equities.partitions import STOCK_DAYS
    from marketdata_assets.defs.equities.stocks import step_name, stock_assets

    name = source.upper()
    names = tuple(stock_assets(name).values())
    days = days_between(STOCK_DAYS[name], start_date, end_date)
    run_range(
        session,
        f"{STOCK_FEEDS[name].label} {days[0]}..{days[-1]} ({_universe_label(instruments)})",
        selection(session.definitions(), *names),
        days,
        {"ops": {step_name(name): {"config": {"instruments": instruments, "workers": workers}}}},
        per_key=len(names),
    )
    finish(ctx)


@click.command(
    "load-minute-bars",
    short_help="CSV minute bars -> TimescaleDB [+ --aggregate: the monthly K-line] (replaces run_etl.py).",
)
@click.option(
    "--data-dir",
    type=click.Path(exists=True, file_okay=False),
    help="The CSV directory; default: MINUTE_BARS_LANDING_DIR.",
)
@click.option("--force", is_flag=True, help="Reload files already loaded with the same content.")
@_workers(1, 4, "Files loaded at once.", show_default=True)
@click.option(
    "--start-month", type=MONTH, help="First month (Beijing); default: every month the files cover."
)
@click.option("--end-month", type=MONTH, help="Last month (default: the start month).")
@click.option("--aggregate", is_flag=True, help="Then refresh the monthly K-line of those months.")
@click.option(
    "--force-backfill",
    is_flag=True,
    help="With --aggregate: recompute the K-line's whole history "
    "(2000-01 to now) after the load, in the same run.",
)
@click.pass_context
def load_minute_bars(
    ctx, data_dir, force, workers, start_month, end_month, aggregate, force_backfill
) -> None:
    """Replaces etl/scripts/run_etl.py: the files' 1-minute bars into stock_1min_qfq (one range
    run); with --aggregate [--force-backfill], load_data.main --aggregate [--force-backfill] too."""
    session: Session = ctx.obj
    if force_backfill and not aggregate:
        raise click.UsageError(
            "--force-backfill recomputes the monthly K-line: add --aggregate "
            "(--aggregate --force-backfill), or run `marketdata aggregate --force-backfill`"
        )
    if data_dir:
        os.environ["MINUTE_BARS_LANDING_DIR"] = os.path.abspath(data_dir)
    months = months_between(start_month, end_month, "Asia/Shanghai") if start_month else _file_months()
    if not months:
        _nothing_to_load(settings.minute_bars_landing_dir())
    names = ["stock_1min_qfq", *(["stock_monthly_kline"] if aggregate else [])]
    ops = {"stock_1min_qfq": {"config": {"force": force, "workers": workers}}}
    if aggregate:
        ops["stock_monthly_kline"] = {"config": {"force_backfill": force_backfill}}
    label = f"minute bars {months[0][:7]}..{months[-1][:7]}" + (
        " + full K-line backfill" if force_backfill else ""
    )
    run_range(
        session, label, selection(session.definitions(), *names), months, {"ops": ops}, per_key=len(names)
    )
    finish(ctx)


def _nothing_to_load(root) -> None:
    """No month to load: no CSV file in the landing area is a usage error (exit 2, the wrong folder?);
    files none of which holds a row the load keeps (each said above) is a load of nothing (exit 1)."""
    from marketdata_assets.ingest.minute_bars.landing import not_csv_line
    from marketdata_assets.ingest.minute_bars.loader import landing_listing

    listing = landing_listing(Path(root))
    if listing.others:
        click.echo(not_csv_line([p.relative_to(root).as_posix() for p in listing.others]), err=True)
    if not listing.files:
        raise click.UsageError(f"no CSV file (.csv, .csv.gz) under {root}")
    click.echo(
        f"FAILED: nothing to load: {len(listing.files)} CSV file(s) under {root}, none with a row the load "
        "keeps (each said above)",
        err=True,
    )
    raise click.exceptions.Exit(EXIT_CODES[NOT_LOADABLE])


def _file_months() -> list[str]:
    from marketdata_assets.ingest.minute_bars.loader import landing_files
    from marketdata_assets.sources.registry import minute_files

    files = minute_files()

    months = set()
    for path in landing_files(settings.minute_bars_landing_dir()):
        try:
            months.update(files.time_range(path).months)
        except files.file_error as error:  # the load quarantines it
            click.echo(f"unreadable: {error}", err=True)
    if not months:
        return []
    first, last = min(months), max(months)
    return months_between(
        datetime.strptime(first, "%Y-%m"), datetime.strptime(last, "%Y-%m"), "Asia/Shanghai"
    )


@click.command("aggregate", short_help="The monthly K-line (replaces load_data/aggregate.py).")
@click.option("--force-backfill", is_flag=True, help="Recompute the whole history (2000-01 to now).")
@click.option("--start-month", type=MONTH, help="First month (Beijing); default: last complete month.")
@click.option("--end-month", type=MONTH, help="Last month (default: the start month).")
@click.pass_context
def aggregate(ctx, force_backfill, start_month, end_month) -> None:
    """Replaces load_data/aggregate.py: the monthly K-line of the months, with
    validation queries A-E."""
    session: Session = ctx.obj
    months = months_between(start_month, end_month, "Asia/Shanghai")
    run_range(
        session,
        f"monthly K-line {months[0][:7]}..{months[-1][:7]}",
        selection(session.definitions(), "stock_monthly_kline"),
        months,
        {"ops": {"stock_monthly_kline": {"config": {"force_backfill": force_backfill}}}},
    )
    finish(ctx)


COMMANDS = [ingest, load_minute_bars, aggregate]
