"""`marketdata universe`: each venue's universe on a day, resolved from the point-in-time instrument master
by the sources file's rules (what was listed that day, as it was described that day; a top N by the 24 h
volume snapshot that day used, said, a look-ahead flagged), with counts, what joined and left since the day
before, and (`--list`) every instrument with its contract size."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import click

DAY = click.DateTime(formats=["%Y-%m-%d"])


def _rows(master, rule, day: date, volumes) -> list[tuple[str, ...]]:
    from marketdata_assets.datasets.universe import resolve

    out = []
    for name in resolve(master, rule, day, volumes):
        item = master.at(rule.venue, name, datetime.combine(day, datetime.max.time(), UTC))
        if item is None:
            out.append((name, "-", "-", "not in the master"))
        else:
            size = f"{item.size:g} {item.contract_unit}" if item.type not in ("spot", "equity") else "-"
            out.append((name, item.type, size, item.status))
    return out


@click.command("universe")
@click.option("--venue", help="Only this venue (BINANCE, BINANCE_UM, OKX, DERIBIT; SSE, SZSE, BSE).")
@click.option(
    "--as-of", "as_of", type=DAY, help="The day (UTC) the universe is resolved for (default: today)."
)
@click.option(
    "--list", "listed", is_flag=True, help="Every instrument: its type, contract size and status that day."
)
def universe(venue, as_of, listed) -> None:
    """Each venue's universe on a day from its rule and explicit list (sources file `universes.crypto`,
    `universes.a_shares`), resolved from the stored instrument master (`instrument_master` asset)."""
    from marketdata_assets.datasets.universe import explain, resolve
    from marketdata_assets.ingest.instruments import stored_master, stored_volumes
    from marketdata_assets.read import Reader
    from marketdata_assets.sources.config import load_sources_config

    day = (as_of or datetime.now(UTC)).date()
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
        click.echo(
            "the instrument master is empty: materialize `instrument_master` first "
            "(marketdata materialize instrument_master, or the UI)",
            err=True,
        )
    for name, rule in sorted(rules.items()):
        counts = explain(master, rule, day, volumes)
        today = set(resolve(master, rule, day, volumes))
        before = set(resolve(master, rule, day - timedelta(days=1), volumes))
        joined, left = sorted(today - before), sorted(before - today)
        cut = (
            (
                f"; {counts['top']}: {counts['after the cut']:,} of {counts['before the cut']:,} "
                f"({counts['with a volume']:,} with a volume)"
            )
            if "top" in counts
            else ""
        )
        click.echo(
            f"{name} {day}: {counts['in the universe']:,} in the universe ({counts['by rule']:,} of "
            f"{counts['listed']:,} listed that day by the rule, {counts['explicit']:,} explicit{cut}); "
            f"joined {len(joined):,}{': ' + ', '.join(joined[:10]) if joined else ''}"
            f"{' ...' if len(joined) > 10 else ''}; left {len(left):,}"
            f"{': ' + ', '.join(left[:10]) if left else ''}{' ...' if len(left) > 10 else ''}"
        )
        if listed:
            for row in _rows(master, rule, day, volumes):
                click.echo("  " + "  ".join(row))


COMMANDS = [universe]
