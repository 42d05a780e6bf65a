"""`marketdata universe`: each venue's universe on a day, resolved from the point-in-time instrument master
by the sources file's rules (what was listed that day, as it was described that day; a top N by the 24 h
volume snapshot that day used, said, a look-ahead flagged), what came by the rule and what by the explicit
list, what joined and left since the day before, and (`--list`) every instrument with its contract size.
`marketdata instruments`: the master refreshed now (the `instrument_master` asset, as a run)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import click

from marketdata_assets.apps.cli.session import finish, selection

DAY = click.DateTime(formats=["%Y-%m-%d"])
REFRESH = "marketdata instruments"  # the command that refreshes the master


def _rows(master, found, venue: str, day: date) -> list[tuple[str, ...]]:
    out = []
    for name in found.names:
        ways = (("rule", found.by_rule), ("explicit", found.explicit))
        by = "+".join(way for way, names in ways if name in names)
        item = master.at(venue, name, datetime.combine(day, datetime.max.time(), UTC))
        if item is None:
            out.append((name, by, "-", "-", "not in the master", "listed: unknown"))
            continue
        size = f"{item.size:g} {item.contract_unit}" if item.type not in ("spot", "equity") else "-"
        listed = master.listing(venue, name)
        life = f"listed {listed:%Y-%m-%d}" if listed is not None else "listed: unknown"
        ahead = " (look-ahead)" if name in found.look_ahead else ""
        out.append((name, by, item.type, size, item.status, life + ahead))
    return out


def _line(rule, day: date, found, before) -> str:
    """One venue's day: in all, by the rule, by the explicit list, the cut, joined and left."""
    joined, left = sorted(set(found.names) - set(before)), sorted(set(before) - set(found.names))
    both = len(set(found.by_rule) & set(found.explicit))
    cut = found.cut
    by_rule = (
        f"rule ({rule.text}): {len(found.by_rule):,} of {len(found.listed):,} listed that day"
        + (f"; {cut.text}: {cut.kept:,} of {cut.admitted:,} ({cut.ranked:,} with a volume)" if cut else "")
        if rule.selects
        else f"no rule ({len(found.listed):,} listed that day)"
    )
    explicit = f"explicit: {len(found.explicit):,}" + (f" ({both:,} also by the rule)" if both else "")
    if found.not_listed:
        explicit += f", {len(found.not_listed):,} not listed that day ({', '.join(found.not_listed[:10])})"
    return (
        f"{rule.venue} {day}: {len(found.names):,} in the universe; {by_rule}; {explicit}; "
        f"joined {len(joined):,}{': ' + ', '.join(joined[:10]) if joined else ''}"
        f"{' ...' if len(joined) > 10 else ''}; left {len(left):,}"
        f"{': ' + ', '.join(left[:10]) if left else ''}{' ...' if len(left) > 10 else ''}"
    )


@click.command("universe")
@click.option("--venue", help="Only this venue (BINANCE, BINANCE_UM, OKX, DERIBIT; SSE, SZSE, BSE).")
@click.option(
    "--as-of", "as_of", type=DAY, help="The day (UTC) the universe is resolved for (default: today)."
)
@click.option(
    "--list",
    "listed",
    is_flag=True,
    help="Every instrument: by rule or explicit, its type, size and status that day.",
)
def universe(venue, as_of, listed) -> None:
    """Each venue's universe on a day from its rule and explicit list (sources file `universes.crypto`,
    `universes.a_shares`), resolved from the stored instrument master (`instrument_master` asset)."""
    from marketdata_assets.datasets.universe import resolution
    from marketdata_assets.ingest.instruments import REFRESH_HINT, stored_master, stored_volumes
    from marketdata_assets.read import Reader
    from marketdata_assets.sources.config import load_sources_config

    today = datetime.now(UTC).date()
    day = as_of.date() if as_of else today
    if day > today:
        raise click.BadParameter(
            f"{day} has not happened yet (today is {today} UTC): no listing of it is known",
            param_hint="--as-of",
        )
    rules = load_sources_config().universe_rules()
    if venue:
        if venue.upper() not in rules:
            raise click.UsageError(
                f"no universe of {venue!r}: the sources file has {', '.join(sorted(rules))}"
            )
        rules = {venue.upper(): rules[venue.upper()]}
    with Reader() as reader:
        master = stored_master(reader.clickhouse(), reader.database)
        volumes = stored_volumes(reader.clickhouse(), reader.database, rules, [day, day - timedelta(days=1)])
    if not master.current():
        click.echo(f"the instrument master is empty: refresh it first (`{REFRESH}`)", err=True)
    for name, rule in sorted(rules.items()):
        found = resolution(master, rule, day, volumes)
        click.echo(_line(rule, day, found, resolution(master, rule, day - timedelta(days=1), volumes).names))
        if found.look_ahead:
            seen = min(master.first_seen(name, i) for i in found.look_ahead)
            click.echo(
                f"  look-ahead: {len(found.look_ahead):,} instrument(s) with no listing time, in by the "
                f"listing first seen {seen:%Y-%m-%d} ({', '.join(found.look_ahead[:5])}"
                f"{' ...' if len(found.look_ahead) > 5 else ''}); {REFRESH_HINT}"
            )
        if listed:
            for row in _rows(master, found, name, day):
                click.echo("  " + "  ".join(row))


@click.command("instruments")
@click.option(
    "--venue",
    "venues",
    multiple=True,
    help="Only this venue (BINANCE, BINANCE_UM, OKX, DERIBIT, TUSHARE); repeat for more. Default: all.",
)
@click.pass_context
def instruments(ctx, venues) -> None:
    """Refresh the instrument master now (the `instrument_master` asset): every venue's listing, the listing
    and delisting days the archive site gives, and the 24 h volumes; a run in the UI."""
    session = ctx.obj
    config = {"ops": {"instrument_master": {"config": {"venues": [v.upper() for v in venues]}}}}
    label = "instrument master" + (f" {', '.join(v.upper() for v in venues)}" if venues else "")
    session.run(label, selection(session.definitions(), "instrument_master"), run_config=config)
    finish(ctx)


COMMANDS = [universe, instruments]
