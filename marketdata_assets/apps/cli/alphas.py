"""The alphas' three steps as `marketdata` subcommands: fetch-alphas (1_fetch_all_alpha_main_async.py),
package-alphas (2_alpha_files_packaging_and_decomposition.py), import-alphas (3_mongo_import_v4.py)."""

from __future__ import annotations

from datetime import datetime

import click
import dagster as dg

from marketdata_assets.apps.cli.session import (
    MONTH,
    Session,
    assets_named,
    finish,
    months_between,
    run_range,
    selection,
)
from marketdata_assets.core import settings

IMPORT_MODES = ["incremental", "overwrite", "rebuild", "time_range", "smart_merge"]


@click.command(
    "fetch-alphas", short_help="Alphas -> landing files (replaces 1_fetch_all_alpha_main_async.py)."
)
@click.option(
    "--start-month", type=MONTH, help="First month of dateCreated (New York); default: last complete month."
)
@click.option("--end-month", type=MONTH, help="Last month (default: the start month).")
@click.option(
    "--account", "accounts", multiple=True, help="Account name (repeatable); default: every account."
)
@click.pass_context
def fetch_alphas(ctx, start_month, end_month, accounts) -> None:
    """Replaces 1_fetch_all_alpha_main_async.py: every alpha of the months, one file per
    alpha in the landing area (one run per month x account, as the daily schedule launches them)."""
    session: Session = ctx.obj
    defs = session.definitions()
    from marketdata_assets.defs.alphas.partitions import alpha_accounts

    known = alpha_accounts.get_partition_keys()
    unknown = sorted(set(accounts) - set(known))
    if unknown:
        raise click.BadParameter(
            f"unknown accounts {unknown}; ALPHA_API_ACCOUNTS has {known}", param_hint="--account"
        )
    for month in months_between(start_month, end_month, "America/New_York"):
        for account in accounts or known:
            session.run(
                f"alpha files {month[:7]} {account}",
                assets_named(defs, "alpha_files"),
                partition_key=dg.MultiPartitionKey({"month": month, "account": account}),
            )
    finish(ctx)


def landing_inventory() -> dict[str, set[tuple[str, str]]]:
    """(month, account) pairs holding landing files ("files") and dropped packages ("dropped")."""
    from marketdata_assets.ingest.alphas.landing import dropped_packages, package_account, package_month

    landing = settings.alpha_landing_dir()
    files = {
        (d.parent.name, d.name)
        for d in (landing / "alphas").glob("*/*/*")
        if d.is_dir() and next(d.glob("*.json"), None) is not None
    }
    dropped = {(package_month(p) or "?", package_account(p) or "?") for p in dropped_packages(landing)}
    return {"files": files, "dropped": dropped}


def _package_months(start_month, end_month, found: dict) -> list[str]:
    """The months asked, else every month with landing files or dropped packages."""
    if start_month:
        return months_between(start_month, end_month, "America/New_York")
    held = sorted(m for pairs in found.values() for m, _ in pairs if m != "?")
    if not held:
        landing = settings.alpha_landing_dir()
        raise click.UsageError(
            f"nothing to package or decompose: no alpha files under {landing / 'alphas'} and no "
            f"packages dropped under {landing / 'packages'}"
        )
    first, last = (datetime.strptime(m, "%Y-%m") for m in (held[0], held[-1]))
    return months_between(first, last, "America/New_York")


def _check_accounts(accounts: tuple[str, ...], months: list[str], found: dict) -> None:
    from marketdata_assets.datasets.alpha_files import check_account

    for account in accounts:
        try:
            check_account(account)
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint="--account") from None
    present = {a for pairs in found.values() for m, a in pairs if f"{m}-01" in months}
    unknown = sorted(set(accounts) - present)
    if unknown:
        raise click.BadParameter(
            f"no alpha files or dropped packages of {unknown} in {months[0][:7]}.."
            f"{months[-1][:7]}; accounts there: {sorted(present) or 'none'}",
            param_hint="--account",
        )


@click.command(
    "package-alphas",
    short_help="Packages <-> landing files (replaces 2_alpha_files_packaging_and_decomposition.py).",
)
@click.option(
    "--start-month",
    type=MONTH,
    help="First month of dateCreated (New York); default: every month with "
    "landing files or dropped packages.",
)
@click.option("--end-month", type=MONTH, help="Last month (default: the start month).")
@click.option(
    "--account",
    "accounts",
    multiple=True,
    help="Only this account's packages (repeatable); default: every account (run_all_users).",
)
@click.option(
    "--only",
    type=click.Choice(["decompose", "package"]),
    help="decompose: packages dropped under "
    "<landing>/packages back into landing files (verified first; a corrupt one is quarantined); package: "
    "the landing files into one .jsonl.gz + manifest per type, month and account under ALPHA_PACKAGES_DIR. "
    "Default: decompose, then package.",
)
@click.pass_context
def package_alphas(ctx, start_month, end_month, accounts, only) -> None:
    """Replaces 2_alpha_files_packaging_and_decomposition.py: dropped monthly packages
    decomposed into landing files, then the landing files packaged per type, month and account (a
    range run each: alpha_package_drops, alpha_packages). A step with nothing to do says so."""
    session: Session = ctx.obj
    found = landing_inventory()
    months = _package_months(start_month, end_month, found)
    _check_accounts(accounts, months, found)
    config = {"config": {"accounts": list(accounts)}}
    span = f"{months[0][:7]}..{months[-1][:7]}" + (f" ({', '.join(accounts)})" if accounts else "")
    steps = [
        ("decompose", "dropped", "alpha_package_drops", "decompose alpha packages", "no packages dropped"),
        ("package", "files", "alpha_packages", "package alphas", "no alpha files"),
    ]
    work = {
        step: any(f"{m}-01" in months and (not accounts or a in accounts) for m, a in found[held])
        for step, held, *_ in steps
        if only in (None, step)
    }
    if any(work.values()):
        session.instance()  # a storage that does not answer is the one line said
    for step, held, asset, label, none in steps:
        if step not in work:
            continue
        if not work[step]:
            click.echo(f"{label} {span}: {none} in these months, nothing to do", err=True)
            continue
        run_range(
            session,
            f"{label} {span}",
            selection(session.definitions(), asset),
            months,
            {"ops": {asset: config}},
        )
    finish(ctx)


@click.command("import-alphas", short_help="Landing files -> MongoDB (replaces 3_mongo_import_v4.py).")
@click.option(
    "--import-mode",
    type=click.Choice(IMPORT_MODES),
    default="incremental",
    show_default=True,
    help="incremental: skip files already imported unchanged; overwrite: deep-merge every file; rebuild: "
    "replace whole documents; time_range: alphas modified in [--start, --end); smart_merge: alphas "
    "modified after the newest stored.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Documents per bulk write.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    help="Accepted as the replaced script's; the import pipelines "
    "reading and writing itself (one reader, one writer), so it has no effect.",
)
@click.option("--start-month", type=MONTH, help="First month (New York); default: last complete month.")
@click.option("--end-month", type=MONTH, help="Last month (default: the start month).")
@click.option("--start", help="time_range: first dateModified, ISO 8601 with an offset.")
@click.option("--end", help="time_range: end (exclusive) of dateModified.")
@click.pass_context
def import_alphas(ctx, import_mode, batch_size, workers, start_month, end_month, start, end) -> None:
    """Replaces 3_mongo_import_v4.py: the months' landing files deep-merged into MongoDB
    (one range run), with the collection checks."""
    session: Session = ctx.obj
    if workers:
        click.echo("--workers: no effect (the import overlaps reading and writing in one pipeline)", err=True)
    months = months_between(start_month, end_month, "America/New_York")
    config = {
        "mode": import_mode,
        "batch_size": batch_size,
        **({"start": start, "end": end} if start else {}),
    }
    run_range(
        session,
        f"import alphas {months[0][:7]}..{months[-1][:7]} ({import_mode})",
        selection(session.definitions(), "regular_alphas", "super_alphas"),
        months,
        {"ops": {"alpha_documents": {"config": config}}},
        per_key=2,
    )
    finish(ctx)


COMMANDS = [fetch_alphas, package_alphas, import_alphas]
