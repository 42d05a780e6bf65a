"""`marketdata`: the seeds' command lines, as Dagster materializations of the same assets.

Each subcommand mirrors a seed script's options and launches the assets in this process against
the Dagster instance (DAGSTER_HOME), so its runs, metadata and checks are in the UI like any
other. A progress bar follows the run's events; the exit code is 1 when a run fails, with the
failing partitions named. `--demo` serves the vendors' replays (as `make run` does).
"""

from __future__ import annotations

import atexit
import gc
import logging
import os
import sys
from contextlib import ExitStack
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import click
import dagster as dg

from marketdata_assets.core import settings
from marketdata_assets.orchestration.sensing import range_tags

MONTH = click.DateTime(formats=["%Y-%m"])
DAY = click.DateTime(formats=["%Y-%m-%d"])


class Session:
    """The instance, the definitions and the launches of one command."""

    def __init__(self, demo: bool, verbose: bool = False):
        self.stack = ExitStack()
        self.verbose = verbose
        if demo:
            from marketdata_assets.apps.demo import activate

            replays = activate("on")
            self.stack.callback(replays.stop)
            click.echo(replays.describe(), err=True)
        settings.apply_defaults()
        self.outcomes = []
        self._instance: dg.DagsterInstance | None = None

    def definitions(self) -> dg.Definitions:
        from marketdata_assets.definitions import defs

        return defs()

    def instance(self) -> dg.DagsterInstance:
        """The Dagster instance, opened at the first run: a stopped storage is one line and exit 3; runs
        found dead are failed and their pool slots freed first (marketdata_assets.orchestration.runs)."""
        if self._instance is None:
            from marketdata_assets.apps.launch import STORAGE_DOWN_EXIT, storage_watch
            from marketdata_assets.core.sweep import swept_line
            from marketdata_assets.orchestration.runs import storage_reachable, sweep

            error = None if self.verbose else storage_reachable()
            if error is not None:
                click.echo(f"FAILED: {error}", err=True)
                self.stack.close()
                raise click.exceptions.Exit(STORAGE_DOWN_EXIT)
            self.stack.enter_context(storage_watch(enabled=not self.verbose))
            self._instance = self.stack.enter_context(dg.DagsterInstance.get())
            line = swept_line(*sweep(self._instance))
            if line:
                click.echo(line, err=True)
        return self._instance

    def run(self, label: str, assets: list, *, tags: dict | None = None, partition_key=None, run_config=None,
            expected: int = 1) -> None:
        from marketdata_assets.apps.launch import Interrupted, launch

        defs = self.definitions()
        instance = self.instance()
        with click.progressbar(length=max(expected, 1), label=label, file=sys.stderr, show_pos=True) as bar:
            seen = set()

            def on_event(what: str, event) -> None:
                if what == "materialization":
                    key = (event.asset_key, event.partition)
                    if key not in seen and len(seen) < expected:
                        seen.add(key)
                        bar.update(1)

            try:
                outcome = launch(label, assets, instance=instance, resources=defs.resources or {}, tags={
                    "marketdata/launched_by": "marketdata CLI", **(tags or {})}, partition_key=partition_key,
                    run_config=run_config, on_event=on_event, verbose=self.verbose)
            except Interrupted as interrupted:
                click.echo(f"\n{interrupted}", err=True)
                self.stack.close()
                raise click.exceptions.Exit(130) from None
        click.echo(outcome.line())
        self.outcomes.append(outcome)

    def finish(self) -> int:
        from marketdata_assets.apps.launch import summary

        self.stack.close()
        if len(self.outcomes) > 1:
            click.echo(summary(self.outcomes))
        failed = [o for o in self.outcomes if not o.success]
        for outcome in failed:
            fallback = (f"FAILED: {outcome.label}: partitions {', '.join(outcome.partitions) or '-'}; "
                        f"see run {outcome.run_id} in the UI")
            for line in outcome.error_lines() or [fallback]:
                click.echo(line, err=True)
        return 1 if failed else 0


def _assets(defs: dg.Definitions, *names: str) -> list:
    """The assets holding `names`, with their checks."""
    from marketdata_assets.apps.main import checks_of

    keys = {dg.AssetKey(name) for name in names}
    chosen = [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition) and keys & set(a.keys)]
    return chosen + checks_of(defs, chosen)


def _upstream(defs: dg.Definitions, assets: list) -> list:
    """Source stand-ins for what `assets` depend on outside themselves (not rematerialized)."""
    inside = {key for a in assets if isinstance(a, dg.AssetsDefinition) for key in a.keys}
    deps = {dep for a in assets if isinstance(a, dg.AssetsDefinition) for dep in a.dependency_keys} - inside
    return [a.to_source_asset(key) for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)
            for key in a.keys if key in deps]


def _months(start: datetime | None, end: datetime | None, tz: str) -> list[str]:
    """Month partition keys from start to end (default: the last complete month in `tz`)."""
    if start is None:
        first_of_this = datetime.now(ZoneInfo(tz)).date().replace(day=1)
        start = end = datetime.combine(first_of_this - timedelta(days=1), datetime.min.time())
    end = end or start
    if end < start:
        raise click.BadParameter("the end month is before the start month")
    keys, month = [], date(start.year, start.month, 1)
    while month <= date(end.year, end.month, 1):
        keys.append(f"{month:%Y-%m-%d}")
        month = date(month.year + month.month // 12, month.month % 12 + 1, 1)
    return keys


def _days(partitions_def, start: datetime, end: datetime) -> list[str]:
    keys = [k for k in partitions_def.get_partition_keys() if f"{start:%Y-%m-%d}" <= k <= f"{end:%Y-%m-%d}"]
    if not keys:
        raise click.BadParameter(f"no partition between {start:%Y-%m-%d} and {end:%Y-%m-%d} (weekdays only)")
    return keys


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--demo", is_flag=True, help="Serve the vendors' replays in this process and use them (as `make run`).")
@click.option("--verbose", is_flag=True, help="Show Dagster's warnings and full tracebacks instead of one line "
              "per failure.")
@click.pass_context
def cli(ctx: click.Context, demo: bool, verbose: bool) -> None:
    """The seeds' commands, launched as Dagster materializations (they show in the UI)."""
    if verbose:
        logging.basicConfig(level=logging.WARNING)
    ctx.obj = Session(demo, verbose)


def _finish(ctx: click.Context) -> None:
    ctx.exit(ctx.obj.finish())


@cli.command("fetch-alphas")
@click.option("--start-month", type=MONTH, help="First month of dateCreated (New York); default: last complete month.")
@click.option("--end-month", type=MONTH, help="Last month (default: the start month).")
@click.option("--account", "accounts", multiple=True, help="Account name (repeatable); default: every account.")
@click.pass_context
def fetch_alphas(ctx, start_month, end_month, accounts) -> None:
    """Seed 000's fetch: every alpha of the months, one file per alpha in the landing area (one run
    per month x account, as the daily schedule launches them)."""
    session: Session = ctx.obj
    defs = session.definitions()
    from marketdata_assets.defs.alphas.partitions import alpha_accounts

    known = alpha_accounts.get_partition_keys()
    unknown = sorted(set(accounts) - set(known))
    if unknown:
        raise click.BadParameter(f"unknown accounts {unknown}; ALPHA_API_ACCOUNTS has {known}", param_hint="--account")
    for month in _months(start_month, end_month, "America/New_York"):
        for account in accounts or known:
            session.run(f"alpha files {month[:7]} {account}", _assets(defs, "alpha_files"),
                        partition_key=dg.MultiPartitionKey({"month": month, "account": account}))
    _finish(ctx)


@cli.command("import-alphas")
@click.option("--import-mode", type=click.Choice(["incremental", "overwrite", "rebuild", "time_range", "smart_merge"]),
              default="incremental", show_default=True, help="Seed 000's IMPORT_MODE.")
@click.option("--batch-size", type=click.IntRange(min=1), default=1000, show_default=True, help="Documents per bulk write.")
@click.option("--workers", type=click.IntRange(min=1), help="Accepted for the seed's scripts; the import pipelines "
              "reading and writing itself (one reader, one writer), so it has no effect.")
@click.option("--start-month", type=MONTH, help="First month (New York); default: last complete month.")
@click.option("--end-month", type=MONTH, help="Last month (default: the start month).")
@click.option("--start", help="time_range: first dateModified, ISO 8601 with an offset.")
@click.option("--end", help="time_range: end (exclusive) of dateModified.")
@click.pass_context
def import_alphas(ctx, import_mode, batch_size, workers, start_month, end_month, start, end) -> None:
    """Seed 000's import: the months' landing files deep-merged into MongoDB (one range run), with
    the collection checks."""
    session: Session = ctx.obj
    if workers:
        click.echo("--workers: no effect (the import overlaps reading and writing in one pipeline)", err=True)
    defs = session.definitions()
    months = _months(start_month, end_month, "America/New_York")
    assets = _assets(defs, "regular_alphas", "super_alphas")
    config = {"mode": import_mode, "batch_size": batch_size, **({"start": start, "end": end} if start else {})}
    session.run(f"import alphas {months[0][:7]}..{months[-1][:7]} ({import_mode})", assets + _upstream(defs, assets),
                tags=range_tags(months[0], months[-1]), run_config={"ops": {"alpha_documents": {"config": config}}},
                expected=2 * len(months))
    _finish(ctx)


@cli.command("ingest", context_settings={"allow_extra_args": True})
@click.option("--symbols", multiple=True, default=["ALL"], show_default=True,
              help="ALL, or A-share codes: `--symbols 000001.SZ 600000.SH` as in the seed, or commas.")
@click.option("--start-date", type=DAY, required=True, help="First China trading day.")
@click.option("--end-date", type=DAY, required=True, help="Last day.")
@click.option("--providers-config", "sources_config", type=click.Path(exists=True, dir_okay=False),
              help="data_providers.yaml (rate limits, workers, universe); default: TICKS_PROVIDERS_CONFIG or the "
              "shipped one.")
@click.option("--workers", type=click.IntRange(min=0), default=0, help="Fetches at once; 0: the config's.")
@click.pass_context
def ingest(ctx, symbols, start_date, end_date, sources_config, workers) -> None:
    """Seed 003's ingestion: A-share 1-minute and daily bars of the days (one range run), from
    Tushare within its rate limits, into ClickHouse."""
    session: Session = ctx.obj
    if sources_config:
        os.environ["TICKS_PROVIDERS_CONFIG"] = os.path.abspath(sources_config)
    extra = [arg for arg in ctx.args if arg.startswith("-")]
    if extra:
        raise click.UsageError(f"unexpected arguments {extra}")
    codes = [c for item in (*symbols, *ctx.args) for c in item.replace(",", " ").split()]
    instruments = [] if [c.upper() for c in codes] == ["ALL"] else codes
    from marketdata_assets.defs.equities.partitions import a_share_days

    defs = session.definitions()
    days = _days(a_share_days, start_date, end_date)
    assets = _assets(defs, "a_share_bars_1m", "a_share_daily_bars")
    session.run(f"A-share bars {days[0]}..{days[-1]} ({'all codes' if not instruments else len(instruments)})",
                assets + _upstream(defs, assets), tags=range_tags(days[0], days[-1]), expected=2 * len(days),
                run_config={"ops": {"a_share_bars": {"config": {"instruments": instruments, "workers": workers}}}})
    _finish(ctx)


@cli.command("load-minute-bars")
@click.option("--data-dir", type=click.Path(exists=True, file_okay=False), help="The CSV directory (seed 001's "
              "data dir); default: MINUTE_BARS_LANDING_DIR.")
@click.option("--force", is_flag=True, help="Reload files already loaded with the same content.")
@click.option("--workers", type=click.IntRange(min=1), default=4, show_default=True, help="Files loaded at once.")
@click.option("--start-month", type=MONTH, help="First month (Beijing); default: every month the files cover.")
@click.option("--end-month", type=MONTH, help="Last month (default: the start month).")
@click.option("--aggregate", is_flag=True, help="Then refresh the monthly K-line of those months (seed 004).")
@click.pass_context
def load_minute_bars(ctx, data_dir, force, workers, start_month, end_month, aggregate) -> None:
    """Seed 001's CSV ETL: the files' 1-minute bars into stock_1min_qfq (one range run)."""
    session: Session = ctx.obj
    if data_dir:
        os.environ["MINUTE_BARS_LANDING_DIR"] = os.path.abspath(data_dir)
    months = _months(start_month, end_month, "Asia/Shanghai") if start_month else _file_months()
    if not months:
        raise click.UsageError(f"no readable CSV file under {settings.minute_bars_landing_dir()}")
    defs = session.definitions()
    names = ["stock_1min_qfq", *(["stock_monthly_kline"] if aggregate else [])]
    assets = _assets(defs, *names)
    session.run(f"minute bars {months[0][:7]}..{months[-1][:7]}", assets + _upstream(defs, assets),
                tags=range_tags(months[0], months[-1]), expected=len(names) * len(months),
                run_config={"ops": {"stock_1min_qfq": {"config": {"force": force, "workers": workers}}}})
    _finish(ctx)


def _file_months() -> list[str]:
    from marketdata_assets.ingest.minute_bars.loader import landing_files
    from marketdata_assets.sources.minute_csv.reader import CsvFileError, file_time_range

    months = set()
    for path in landing_files(settings.minute_bars_landing_dir()):
        try:
            months.update(file_time_range(path).months)
        except CsvFileError as error:  # the load quarantines it
            click.echo(f"unreadable: {error}", err=True)
    if not months:
        return []
    first, last = min(months), max(months)
    return _months(datetime.strptime(first, "%Y-%m"), datetime.strptime(last, "%Y-%m"), "Asia/Shanghai")


@cli.command("aggregate")
@click.option("--force-backfill", is_flag=True, help="Recompute the whole history (seed 004's --force-backfill).")
@click.option("--start-month", type=MONTH, help="First month (Beijing); default: last complete month.")
@click.option("--end-month", type=MONTH, help="Last month (default: the start month).")
@click.pass_context
def aggregate(ctx, force_backfill, start_month, end_month) -> None:
    """Seed 004's aggregation: the monthly K-line of the months, with validation queries A-E."""
    session: Session = ctx.obj
    defs = session.definitions()
    months = _months(start_month, end_month, "Asia/Shanghai")
    assets = _assets(defs, "stock_monthly_kline")
    session.run(f"monthly K-line {months[0][:7]}..{months[-1][:7]}", assets + _upstream(defs, assets),
                tags=range_tags(months[0], months[-1]), expected=len(months),
                run_config={"ops": {"stock_monthly_kline": {"config": {"force_backfill": force_backfill}}}})
    _finish(ctx)


def main() -> None:
    """The command; an unexpected error is one line unless --verbose (then its traceback)."""
    # Dagster, Polars and chDB leave millions of objects: the interpreter's last collection took ~3 s
    # after a run (a Ctrl-C'd command seemed to hang). Everything is closed by then: skip it.
    atexit.register(gc.freeze)
    try:
        code = cli(prog_name="marketdata", standalone_mode=False)  # an Exit's code, or the command's None
    except click.Abort:
        click.echo("Aborted!", err=True)
        sys.exit(130)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    except Exception as error:
        if "--verbose" in sys.argv[1:]:
            raise
        click.echo(f"FAILED: {type(error).__name__}: {' '.join(str(error).split())} (--verbose shows the "
                   "traceback)", err=True)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
