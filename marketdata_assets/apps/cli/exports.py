"""`marketdata export`: the Parquet export (marketdata_assets.read.export) run here through the read API,
no Dagster run (like `status`): the days' ClickHouse datasets and minute bars, the whole monthly K-line
and alphas; `--dated` keeps a dated snapshot instead (docs/read.md, "The Parquet export")."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import click

from marketdata_assets.apps.cli.session import DAY, work_bar


def export_root(ctx, param, root: Path | None) -> Path | None:
    """--root: an existing writable directory, or a new one inside an existing writable directory other than
    the filesystem's root (`/nonexistent` is a typo, not a place to create an export)."""
    if root is None:
        return None
    path = root.expanduser().absolute()
    if path.is_dir():
        if not os.access(path, os.W_OK | os.X_OK):
            raise click.BadParameter(f"{path} is not writable", param_hint="--root")
        return path
    parent = path.parent
    if not parent.is_dir():
        raise click.BadParameter(
            f"{path} does not exist, nor does its parent {parent}: name an existing directory or a new one "
            "inside an existing directory",
            param_hint="--root",
        )
    if parent == Path(path.anchor):
        raise click.BadParameter(
            f"{path} does not exist: not creating a directory at the filesystem root; name an existing "
            "directory or a new one inside one",
            param_hint="--root",
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise click.BadParameter(f"{path} cannot be created: {parent} is not writable", param_hint="--root")
    return path


@click.command("export")
@click.option(
    "--dataset",
    "datasets",
    multiple=True,
    metavar="NAME",
    help="Only this dataset (repeatable): a ClickHouse dataset (trades, bars_1m, ...), minute_bars, "
    "kline_monthly or alphas. Default: all of them.",
)
@click.option("--start-date", type=DAY, help="First day of the daily datasets (default: yesterday, UTC).")
@click.option("--end-date", type=DAY, help="Last day (default: the start date).")
@click.option(
    "--dated",
    "--snapshot",
    "dated",
    is_flag=True,
    help="Write a dated snapshot under "
    "<export dir>/snapshots/<today, UTC>/ instead of the export in place; a snapshot is never rewritten "
    "(a file of it that would change is refused, exit 1).",
)
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    callback=export_root,
    help="The export directory, existing or new inside an existing one (default: MARKETDATA_EXPORT_DIR, "
    "<state dir>/export).",
)
def export(datasets, start_date, end_date, dated, root) -> None:
    """Export the stores as Hive-partitioned Parquet: the days' ClickHouse datasets and A-share minute
    bars, the monthly K-line and the alphas (whole); unchanged partitions are skipped."""
    from marketdata_assets.core import settings
    from marketdata_assets.read import Reader
    from marketdata_assets.read import export as parquet

    try:
        names = parquet.wanted_datasets(datasets) if datasets else None
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--dataset") from None
    if end_date is not None and start_date is None:
        raise click.BadParameter("--end-date needs --start-date", param_hint="--end-date")
    days = parquet.default_days()
    if start_date is not None:
        end_date = end_date or start_date
        if end_date < start_date:
            raise click.BadParameter("the end date is before the start date", param_hint="--end-date")
        days = [start_date.date() + timedelta(days=i) for i in range((end_date - start_date).days + 1)]
    try:
        with Reader() as reader, work_bar("export"):
            if dated:
                report = parquet.snapshot(reader, names, days, root=root)
            else:
                report = parquet.export_days(reader, root or settings.export_dir(), days, datasets=names)
    except parquet.SnapshotConflict as error:
        raise click.ClickException(str(error)) from None
    click.echo(report.summary())


COMMANDS = [export]
