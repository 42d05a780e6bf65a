"""`marketdata backfill`, `marketdata schedules` and `marketdata status`: putting the graph on real data
and seeing what it holds (docs/quickstart.md).

**backfill** loads a history range as runs that each finish inside a run's deadline (RunDeadline,
180 minutes), launched in this process one after the other like the other `marketdata` commands (they
show in the UI with their checks). One run over the whole range would not: three months of Binance
BTCUSDT alone are ~1,500 aggregate-trade pages a day at weight 4 of 5,400 a minute, ~100 minutes, five
busy instruments over 8 hours; the deadline then skips the rest. So a crypto run is one UTC day of every
configured instrument (the schedule's unit: ~10 minutes for five busy instruments) and an A-share run 20
trading days of the universe (one `stk_mins` request per code: ~5,450 requests at Tushare's 200 a minute, ~27
minutes for the whole market). Dagster's own backfill (the UI's "Launch backfill") splits crypto the same way,
one run per day, but puts an A-share range in ONE run (its single-run backfill policy): the command
is the way that fits both. Slices the source already loaded are skipped (`retry_failed`), so the same
command run again resumes where an interrupted one stopped; `--refetch` fetches them again. Slices a
more faithful source holds (a verified archive, a dump file: each dataset's `fidelity`) are not fetched
and each run's line says so (`covered: ... covered by BINANCE_ARCHIVE`); `--replace` loads over them.

**schedules** starts (or `--stop`s) the schedules and sensors of the feeds named that are marked for
daily use (their `daily_use` metadata, defs/_common/runs.py: what docs/configuration.md lists), in the
code location the UI serves (`marketdata_assets`, from workspace.yaml: `dagster schedule start -m ...`
would start them for another location name, which that daemon never ticks), and lists what runs.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

import click
import dagster as dg

from marketdata_assets.apps.cli.session import DAY, days_between, finish, selection
from marketdata_assets.core import settings

SHOWN_MISSING = 20  # instrument-datasets `status` names the missing days of


@dataclass(frozen=True)
class Domain:
    """What a backfill of a domain materializes, and how many days one run takes; `partitions`: the module
    and names of its day partitions and (day x venue domains) its venue partitions."""

    assets: tuple[str, ...]
    op: str
    days_per_run: int
    unit: str
    partitions: tuple[str, str, str | None]


def _archive_assets() -> tuple[str, ...]:
    from marketdata_assets.defs.archives.archives import ARCHIVE_ASSETS

    return tuple(ARCHIVE_ASSETS.values())


BACKFILL = {
    "crypto": Domain(
        (
            "crypto_trades",
            "crypto_bars_1m",
            "crypto_funding",
            "crypto_open_interest",
            "crypto_liquidations",
            "crypto_mark_bars_1m",
            "crypto_index_bars_1m",
        ),
        "crypto_ticks",
        1,
        "UTC day x every venue (its configured instruments inside)",
        ("marketdata_assets.defs._common.partitions", "crypto_days", "crypto_venues"),
    ),
    "archives": Domain(
        (),
        "binance_archives",
        1,
        "UTC day x archive venue (its archive instruments inside)",
        ("marketdata_assets.defs.archives.archives", "binance_archive_days", "binance_archive_venues"),
    ),
    "a_shares": Domain(
        ("a_share_bars_1m", "a_share_daily_bars"),
        "a_share_bars",
        20,
        "trading days x the configured universe",
        ("marketdata_assets.defs.equities.partitions", "a_share_days", None),
    ),
    "yahoo": Domain(
        ("yahoo_bars_1m",),
        "yahoo_bars_1m",
        30,
        "days x the configured universe",
        ("marketdata_assets.defs.equities.partitions", "yahoo_days", None),
    ),
}


def _partitions(domain: str) -> tuple:
    """(day partitions, venue partitions or None) of a domain."""
    import importlib

    module, days, venues = BACKFILL[domain].partitions
    found = importlib.import_module(module)
    return getattr(found, days), (getattr(found, venues) if venues else None)


def _first_day_key(domain: str) -> str:
    """Where the sources config sets the domain's first day partition: 'universes.crypto.history_start in
    data_providers.yaml'."""
    from marketdata_assets.sources.config import config_path

    key = "binance_archives.start_date" if domain == "archives" else f"universes.{domain}.history_start"
    return f"{key} in {config_path().name}"


def domain_assets(domain: str) -> tuple[str, ...]:
    return BACKFILL[domain].assets or _archive_assets()


def backfill_runs(domain: str, days: list[str], days_per_run: int) -> list[tuple[str, dict, int]]:
    """(label, run tags, partitions) of each run: `days_per_run` days at a time; a day x venue domain (crypto,
    archives): those days x every venue (each venue's configured instruments inside the run)."""
    from marketdata_assets.defs._common.runs import day_range_tags
    from marketdata_assets.orchestration.sensing import range_tags

    blocks = [days[i : i + days_per_run] for i in range(0, len(days), days_per_run)]
    venue_partitions = _partitions(domain)[1]
    if venue_partitions is None:
        return [(f"{domain} {b[0]}..{b[-1]}", range_tags(b[0], b[-1]), len(b)) for b in blocks]
    venues = venue_partitions.get_partition_keys()
    return [
        (
            f"{domain} {b[0]}" + (f"..{b[-1]}" if len(b) > 1 else "") + f" x {len(venues)} venues",
            day_range_tags(b[0], b[-1], venues[0], venues[-1]),
            len(b) * len(venues),
        )
        for b in blocks
    ]


def backfill_config(domain: str, *, refetch: bool = False, replace: bool = False) -> dict:
    """The run config of every run of a backfill: only the slices the source has not loaded (all of them:
    `refetch`), never over a slice a more faithful source holds (unless `replace`)."""
    from marketdata_assets.defs._common.runs import op_config

    return op_config(BACKFILL[domain].op, {"retry_failed": not refetch, "replace": replace})


def retry_note(refetch: bool) -> str:
    """What the same backfill run again does (Session.finish says it after a failure)."""
    return f"{'without --refetch, ' * refetch}it fetches only the slices not loaded yet"


@click.command("backfill")
@click.argument("domain", type=click.Choice(sorted(BACKFILL)))
@click.option("--start-date", type=DAY, required=True, help="First day (crypto: UTC; A-shares: China).")
@click.option("--end-date", type=DAY, required=True, help="Last day.")
@click.option(
    "--days-per-run",
    type=click.IntRange(min=1),
    help="Days one run loads (default: crypto and archives 1, "
    "a_shares 20, yahoo 30: each run inside the 180-minute deadline).",
)
@click.option(
    "--refetch",
    is_flag=True,
    help="Fetch slices this source already loaded again (default: only what it "
    "has not loaded yet, so the same command run again resumes).",
)
@click.option(
    "--replace",
    is_flag=True,
    help="Load over slices a more faithful source holds (a verified archive, a "
    "dump file); default: they are not fetched, and each run's line says `covered by <source>`.",
)
@click.pass_context
def backfill(ctx, domain, start_date, end_date, days_per_run, refetch, replace) -> None:
    """A first load of history: the domain's days from the sources config's universe, split into runs
    that each fit the run deadline, one after the other (each shows in the UI). `archives`: the Binance
    days data.binance.vision publishes (older than the venues' REST reach), verified before they load."""
    session = ctx.obj
    spec = BACKFILL[domain]
    defs = session.definitions()
    if end_date < start_date:
        raise click.BadParameter("the end date is before the start date")
    days = days_between(_partitions(domain)[0], start_date, end_date, domain, _first_day_key(domain))
    runs = backfill_runs(domain, days, days_per_run or spec.days_per_run)
    session.instance()  # a storage that does not answer is the one line said
    click.echo(
        f"backfill {domain} {days[0]}..{days[-1]}: {len(runs)} run{'s' * (len(runs) != 1)} of at most "
        f"{days_per_run or spec.days_per_run} {spec.unit}",
        err=True,
    )
    names = domain_assets(domain)
    assets = selection(defs, *names)
    config = backfill_config(domain, refetch=refetch, replace=replace)
    session.retry_note = retry_note(refetch)
    for label, tags, partitions in runs:
        session.run(label, assets, tags=tags, run_config=config, expected=partitions * len(names))
    finish(ctx)


def switch(instance, repo, name: str, stop: bool) -> None:
    """Start or stop one schedule or sensor of the remote repository."""
    is_schedule = repo.has_schedule(name)
    instigator = repo.get_schedule(name) if is_schedule else repo.get_sensor(name)
    if not stop:
        (instance.start_schedule if is_schedule else instance.start_sensor)(instigator)
        return
    origin, selector = instigator.get_remote_origin_id(), instigator.selector_id
    (instance.stop_schedule if is_schedule else instance.stop_sensor)(origin, selector, instigator)


def running(instance, repo) -> list[str]:
    """The schedules and sensors running in the instance (defaults included)."""
    names = []
    for instigator in [*repo.get_schedules(), *repo.get_sensors()]:
        state = instance.get_instigator_state(instigator.get_remote_origin_id(), instigator.selector_id)
        if instigator.get_current_instigator_state(state).is_running:
            names.append(instigator.name)
    return names


def daily_use(defs: dg.Definitions, feeds) -> list[str]:
    """The schedules and sensors marked for daily use of `feeds` (their `daily_use` metadata)."""
    from marketdata_assets.defs._common.runs import DAILY_USE

    return [
        i.name
        for i in [*(defs.schedules or []), *(defs.sensors or [])]
        if (i.metadata or {}).get(DAILY_USE) is not None and _text(i.metadata[DAILY_USE]) in feeds
    ]


def _text(value) -> str:
    return str(getattr(value, "value", value))


@click.command("schedules")
@click.argument("feeds", nargs=-1)
@click.option("--stop", is_flag=True, help="Stop them instead.")
@click.pass_context
def schedules(ctx, feeds, stop) -> None:
    """Start the schedules and sensors to turn on for daily use of FEEDS (crypto, a_shares, yahoo,
    binance_archives, minute_bars, alphas, parquet_export: docs/configuration.md, "Daily use"), for the
    code location the UI serves (its daemon ticks them); then list what runs."""
    from dagster._cli.workspace.cli_target import (
        get_code_location_from_workspace,
        get_remote_repository_from_code_location,
        get_workspace_from_cli_opts,
    )
    from dagster_shared.cli import WorkspaceOpts

    from marketdata_assets.defs._common.runs import FEEDS

    unknown = sorted(set(feeds) - set(FEEDS))
    if unknown:
        raise click.BadParameter(
            f"unknown feeds {unknown}; the feeds are {', '.join(FEEDS)}", param_hint="FEEDS"
        )
    names = daily_use(ctx.obj.definitions(), set(feeds))
    instance = ctx.obj.instance()
    workspace = WorkspaceOpts(workspace=[str(settings.PROJECT_ROOT / "workspace.yaml")])
    # the code server it starts logs at WARNING: its INFO lines (with colour codes) are not this command's
    # output
    with get_workspace_from_cli_opts(instance, dg.__version__, workspace, log_level="WARNING") as context:
        repo = get_remote_repository_from_code_location(get_code_location_from_workspace(context, None), None)
        for name in names:
            switch(instance, repo, name, stop)
        for name in running(instance, repo):
            click.echo(f"running: {name}")
    finish(ctx)


@click.command("status")
@click.option(
    "--dataset",
    help="Only this dataset (trades, bars_1m, funding, ..., trades_live, minute_bars, "
    "kline_monthly, alphas).",
)
@click.option(
    "--venue", help="Only this venue (BINANCE, OKX, ..., SSE, SZSE, BSE; the alpha type: REGULAR, SUPER)."
)
@click.option("--gaps-only", is_flag=True, help="Only instruments with missing or failed days.")
def status(dataset, venue, gaps_only) -> None:
    """Per dataset x venue x instrument what the stores hold (read.catalog()): first and last day, days
    loaded, days missing (expected by the instrument's universe from history_start to yesterday, each
    named with its reason and the command that loads it; instruments expected with nothing stored
    included), failed days (the latest attempt did not succeed), rows, the latest
    load, the sources of the loads (and their days) of the ClickHouse datasets; the live table `trades_live`
    with its lag; the A-share minute bars and monthly K-line (TimescaleDB) per exchange and code; the alphas
    (MongoDB) per type and region. A blank cell does not apply to that store (docs/cli.md)."""
    from marketdata_assets.read import Reader
    from marketdata_assets.read.coverage import NAMES

    with Reader() as reader:
        frame = reader.catalog(
            required=("ClickHouse",)
        )  # the others' absence is said, theirs fails the command
    for option, column, value, known in (
        ("--dataset", "dataset", dataset, NAMES),
        ("--venue", "venue", venue and venue.upper(), ()),
    ):
        if value:
            _known(option, value, frame[column].drop_nulls().unique().to_list(), known)
            frame = frame.filter(frame[column] == value)
    if gaps_only:
        frame = frame.filter(
            (frame["missing_days"].fill_null(0) > 0) | (frame["failed_days"].fill_null(0) > 0)
        )
    _print_status(frame)


def _cell(value, spec: str = "") -> str:
    """A status cell: `value` formatted, blank when null (the column does not apply to its store)."""
    return "" if value is None else format(value, spec)


def _print_status(frame) -> None:
    header = (
        "dataset",
        "venue",
        "instrument",
        "first",
        "last",
        "days",
        "missing",
        "failed",
        "rows",
        "last load",
        "lag",
        "sources",
    )
    rows = [
        (
            r["dataset"],
            _cell(r["venue"]),
            _cell(r["instrument"]),
            _cell(r["first_day"]),
            _cell(r["last_day"]),
            _cell(r["days"], ","),
            _cell(r["missing_days"], ","),
            _cell(r["failed_days"], ","),
            _cell(r["rows"], ","),
            _cell(r["last_loaded_at"], "%Y-%m-%d %H:%M"),
            "" if r["lag_s"] is None else f"{r['lag_s']:,.0f} s",
            r["sources"] or "",
        )
        for r in frame.iter_rows(named=True)
    ]
    widths = (
        [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
        if rows
        else map(len, header)
    )
    for line in (header, *rows):
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip())
    gaps = frame.filter(
        (frame["missing_days"].fill_null(0) > 0) | (frame["failed_days"].fill_null(0) > 0)
    ).height
    _print_missing(frame)
    click.echo(
        f"{frame.height:,} instrument-dataset(s) of {frame['venue'].n_unique()} venue(s); {gaps:,} with "
        "missing or failed days. Missing: the days expected (in the venue's universe that day, from the "
        "sources file's history_start, trading days, up to yesterday) with nothing stored, each with its "
        "reason and the command that loads it (above); an instrument no universe names counts the days "
        "between its first and last; trades_live's rows reach `trades` with their hour's load; "
        "a blank cell does not apply to its store (minute bars, K-line, alphas: docs/cli.md)",
        err=True,
    )


def _print_missing(frame) -> None:
    """One line per instrument-dataset with missing days (the first SHOWN_MISSING): the days, their reason
    and the command that loads them."""
    rows = frame.filter(frame["missing_reasons"].is_not_null())
    for r in rows.head(SHOWN_MISSING).iter_rows(named=True):
        click.echo(f"missing {r['dataset']} {r['venue']}:{r['instrument']}: {r['missing_reasons']}", err=True)
    if rows.height > SHOWN_MISSING:
        click.echo(
            f"missing: {rows.height - SHOWN_MISSING:,} more instrument-dataset(s) (--dataset, --venue "
            "narrow the list)",
            err=True,
        )


def _known(option: str, value: str, stored: list[str], known=()) -> None:
    """A filter naming nothing stored exits 2 naming the closest stored (or `known`) names (a typo is not an
    empty table)."""
    if value not in stored:
        found = difflib.get_close_matches(
            value, sorted((set(stored) | set(known)) - {value}), n=3, cutoff=0.5
        )
        what = "has nothing stored" if value in known else "is not stored"
        raise click.BadParameter(
            f"{value!r} {what}{' (closest: ' + ', '.join(found) + ')' if found else ''}; "
            f"stored: {', '.join(sorted(stored)) or 'nothing yet'}",
            param_hint=option,
        )


COMMANDS = [backfill, schedules, status]
