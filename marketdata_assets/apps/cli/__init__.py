"""`marketdata`: the project's command lines, as Dagster materializations of the same assets.

Each subcommand keeps the options of the script it replaces and launches the assets in this process against
the Dagster instance (DAGSTER_HOME), so its runs, metadata and checks are in the UI like any
other. A progress bar follows the run's events; the exit code is 1 when a run fails, with the
failing partitions named. `--demo` serves the vendors' replays (as `make run` does).

session.py: what the subcommands share; alphas.py: the alphas' three steps (fetch-alphas,
package-alphas, import-alphas); equities.py: bars and the monthly K-line (ingest, load-minute-bars,
aggregate); operate.py: a first backfill split into runs that fit the deadline, and the daily schedules
(backfill, schedules; docs/quickstart.md); exports.py: the Parquet export, dated snapshots too (export);
live.py: the live collector and the NATS -> ClickHouse consumer
(collect, consume; docs/live-capture.md). docs/cli.md lists every subcommand with the script it replaces.
"""

from __future__ import annotations

import atexit
import gc
import logging
import sys

import click

from marketdata_assets.apps.cli import alphas, equities, exports, instruments, live, operate
from marketdata_assets.apps.cli.session import Session


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--demo", is_flag=True, help="Serve the vendors' replays in this process and use them (as `make run`)."
)
@click.option(
    "--verbose",
    is_flag=True,
    help="Show Dagster's warnings and full tracebacks instead of one line per failure.",
)
@click.pass_context
def cli(ctx: click.Context, demo: bool, verbose: bool) -> None:
    """Market-data commands, launched as Dagster materializations (they show in the UI)."""
    if verbose:
        logging.basicConfig(level=logging.WARNING)
    ctx.obj = Session(demo, verbose)


for command in (
    *alphas.COMMANDS,
    *equities.COMMANDS,
    *operate.COMMANDS,
    *exports.COMMANDS,
    *live.COMMANDS,
    *instruments.COMMANDS,
):
    cli.add_command(command)
cli.add_command(operate.status, name="catalog")  # read.catalog()'s name for the same table


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
        click.echo(
            f"FAILED: {type(error).__name__}: {' '.join(str(error).split())} (--verbose shows the traceback)",
            err=True,
        )
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
