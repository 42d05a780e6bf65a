"""`marketdata collect` and `marketdata consume`: the live collector and the NATS -> ClickHouse consumer
as long-running commands (docs/live-capture.md). Dagster-free: they run apps.live in
this process until SIGINT/SIGTERM and print their counters as JSON when they stop.

Options come from the command line, else the environment (the settings table: COLLECTOR_METRICS_*,
NATS_URL, CLICKHOUSE_DSN / CLICKHOUSE_DATABASE), else each venue's universe resolved today
(its rule over the stored instrument master, with the sources config's explicit instruments).
Older deployments' names are honoured as aliases: `SYMBOLS` (a comma list of instruments, `VENUE:NAME` for a
venue's own, a bare name for Binance's, or for the only venue enabled), `ENABLE_BINANCE` /
`ENABLE_BINANCE_UM` / `ENABLE_OKX` / `ENABLE_DERIBIT` (every enabled venue runs in this one process, one
collector each, sharing the NATS connection, the sinks and the endpoints), `clickhouse_direct_write` and
`redis_cache` (either spelling, upper or lower case). `redis_cache` keeps the latest state in Redis
(REDIS_URL), one cache for every venue.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import signal
from pathlib import Path

import click

from marketdata_assets.core import settings
from marketdata_assets.core.identifiers import instrument_key
from marketdata_assets.sources.registry import SOURCES, STREAMS, live_switches

VENUES = tuple(venue.lower() for venue in STREAMS)  # every venue with a live stream (the registry's)
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"", "0", "false", "no", "off"}


def upper_case(venue: str) -> bool:
    """Whether a venue's instrument names are upper-cased (its channels spell them in lower case: Binance)."""
    return STREAMS[venue.upper()].lower_channels


SWITCHES = {s.name: s.default for s in live_switches()}  # ENABLE_<VENUE> -> its declared default


def env_flag(name: str) -> bool:
    """An on/off switch (ENABLE_<VENUE>, CLICKHOUSE_DIRECT_WRITE, REDIS_CACHE): NAME or name in the
    environment, else its default (a venue's from its declaration, the others' from the settings table)."""
    raw = os.environ.get(name.lower())
    if raw in (None, ""):
        raw = os.environ.get(name) or SWITCHES.get(name) or settings.get(name)
    value = raw.strip().lower()
    if value not in _TRUE | _FALSE:
        raise click.BadParameter(f"{name}={value!r}: expected true/false (1/0, yes/no, on/off)")
    return value in _TRUE


def split_instruments(listed: str, venues: list[str]) -> dict[str, list[str]]:
    """A comma list of `VENUE:NAME` / bare names -> venue -> names (a bare name is the only chosen
    venue's, else Binance's; Binance's are upper-cased, the others kept as the venue spells them)."""
    out: dict[str, list[str]] = {}
    for item in (part.strip() for part in listed.split(",")):
        if not item:
            continue
        venue, _, name = item.rpartition(":") if ":" in item else ("", "", item)
        venue = venue.upper() or (venues[0].upper() if len(venues) == 1 else "BINANCE")
        if venue.lower() not in VENUES:
            raise click.BadParameter(f"{item!r}: the venue {venue} is not one of {', '.join(VENUES)}")
        name = name.upper() if upper_case(venue) else name
        try:
            instrument_key(name)  # before any connection: a stream name, a file name, a partition key
        except ValueError as error:
            raise click.BadParameter(f"{item!r}: {error}") from None
        out.setdefault(venue, []).append(name)
    return out


def default_instruments(venues: list[str], service=None) -> dict[str, list[str]]:
    """SYMBOLS, else each venue's universe today: its rule resolved from the stored instrument master (the
    process's `service`), with the sources config's explicit instruments (an empty or unreachable master:
    those alone, said)."""
    listed = settings.get("SYMBOLS")
    if listed.strip():
        return split_instruments(listed, venues)
    from marketdata_assets.apps.universes import universe_today

    return universe_today(venues, say=lambda text: click.echo(f"collect: {text}", err=True), service=service)


def chosen_venues(venues: tuple[str, ...]) -> list[str]:
    """--venue, else the ENABLE_* switches."""
    chosen = list(dict.fromkeys(v.lower() for v in venues)) or [
        v for v in VENUES if env_flag(f"ENABLE_{v.upper()}")
    ]
    if not chosen:
        raise click.UsageError(
            f"no venue enabled: set {' / '.join(f'ENABLE_{v.upper()}' for v in VENUES)}=true or pass --venue"
        )
    return chosen


def parse_port(value: str | None) -> int | None:
    text = (value if value is not None else settings.get("COLLECTOR_METRICS_PORT")).strip().lower()
    if text in ("off", "none", "no"):
        return None
    if not text.isdigit():
        raise click.BadParameter(f"COLLECTOR_METRICS_PORT={text!r}: a port number, 0 (a free one) or off")
    return int(text)


def _run(options) -> None:
    from marketdata_assets.apps.live import run_live
    from marketdata_assets.ingest.live.collect.collector import run_streaming

    async def main() -> dict:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)

        def ready(info: dict) -> None:
            what = "collecting" if options.collect else "consuming"
            where = f"; endpoints {info['url']} (/metrics /health /status)" if "url" in info else ""
            names = "; ".join(_named(v) for v in options.venues) or "md.trades"
            click.echo(f"{what}: {names}{where}", err=True)

        return await run_live(options, stop, ready)

    click.echo(json.dumps(run_streaming(main()), default=str))


def _named(venue) -> str:
    """A venue's collector as its start line says it: its instruments (a count beyond ten), its part."""
    names = (
        ",".join(venue.instruments)
        if len(venue.instruments) <= 10
        else f"{len(venue.instruments):,} instruments"
    )
    part = f" (part {venue.part} of its universe)" if venue.part.count > 1 else ""
    again = f", resolved again every {venue.resolve_every_s:g} s" if venue.resolve is not None else ""
    return f"{venue.venue} {names}{part}{again}"


def _consumer_config(durable: str, batch_size: int, max_wait_s: float, stream: str, prefix: str):
    from marketdata_assets.ingest.live.consume.consumer import ConsumerConfig

    return ConsumerConfig(
        stream=stream,
        subject_filter=f"{prefix}.trades.>",
        durable=durable,
        batch_size=batch_size,
        max_wait_s=max_wait_s,
    )


def _common(function):
    """The options `collect` and `consume` share."""
    for decorator in reversed(
        (
            click.option("--nats-url", default=None, help="NATS with JetStream (default NATS_URL)."),
            click.option("--stream", default="MARKETDATA", show_default=True, help="JetStream stream."),
            click.option(
                "--stream-max-mb",
                type=int,
                default=1024,
                show_default=True,
                help="The stream's size limit (reserved on the server's JetStream storage), MiB.",
            ),
            click.option(
                "--subject-prefix",
                default="md",
                show_default=True,
                help="Subjects <prefix>.trades.<venue>.<instrument>.",
            ),
            click.option(
                "--clickhouse-dsn",
                default=None,
                help="Default CLICKHOUSE_DSN (empty: the local stack's "
                "engine server, http://127.0.0.1:<STACK_CLICKHOUSE_PORT>).",
            ),
            click.option("--database", default=None, help="Default CLICKHOUSE_DATABASE."),
            click.option(
                "--durable",
                default="trades-clickhouse",
                show_default=True,
                help="The consumer's durable name.",
            ),
            click.option(
                "--batch-size",
                type=int,
                default=1000,
                show_default=True,
                help="Consumer: messages per INSERT at most.",
            ),
            click.option(
                "--max-wait-s",
                type=float,
                default=0.25,
                show_default=True,
                help="Consumer: seconds a batch waits to fill.",
            ),
            click.option(
                "--share-clickhouse",
                is_flag=True,
                help="With an embedded ClickHouse (a chdb:// CLICKHOUSE_DSN, one process's at a time): open "
                "it for each INSERT only, so other processes (Dagster runs) can open it in between; with a "
                "ClickHouse server (the stack's, the default) it changes nothing.",
            ),
        )
    ):
        function = decorator(function)
    return function


def _url_options(function):
    """Each live venue's named WebSocket and REST URL options (its declaration's `url_options`)."""
    for venue in reversed(STREAMS):
        ws, rest = SOURCES[venue].url_options
        for name, what in (
            (rest, "REST base: book snapshots, gap-hour repair (default: the sources config's)"),
            (ws, "WebSocket base (default: the venue's own; a replay's in tests)"),
        ):
            function = click.option(
                f"--{name.replace('_', '-')}", name, default=None, help=f"{venue}'s {what}."
            )(function)
    return function


@click.command("collect")
@click.option(
    "--instruments",
    default=None,
    help="Comma list of VENUE:NAME (a bare name: the only venue's, else "
    "Binance's; default SYMBOLS, else each venue's universe resolved today).",
)
@click.option(
    "--within",
    default=None,
    help="Comma list of VENUE:NAME: a universe resolved from the instrument master (and each resolution "
    "again) is kept within these, the instruments a source serves (the demo's WebSocket replays).",
)
@click.option(
    "--venue",
    "venues",
    multiple=True,
    type=click.Choice(VENUES, case_sensitive=False),
    help="Venues to collect, one collector each in this process (default: the ENABLE_* switches).",
)
@_url_options
@click.option(
    "--url",
    "urls",
    multiple=True,
    metavar="VENUE=WS_URL[,REST_URL]",
    help="A venue's WebSocket (and REST) "
    "base, for any venue (default: the venue's own; a replay's in tests).",
)
@click.option(
    "--datasets",
    default=None,
    help="Comma list of the datasets to collect, where each venue has them "
    "(default: every one it has: trades, books, tickers, bars_1m, funding, mark_price, liquidations, "
    "open_interest).",
)
@click.option(
    "--landing-dir", type=click.Path(path_type=Path), default=None, help="Default <state dir>/landing/live."
)
@click.option(
    "--no-nats",
    is_flag=True,
    help="Publish nothing to NATS (land raw; with --direct-write, write ClickHouse).",
)
@click.option(
    "--direct-write/--no-direct-write",
    default=None,
    help="Also write trades to ClickHouse trades_live "
    "(default CLICKHOUSE_DIRECT_WRITE / clickhouse_direct_write).",
)
@click.option(
    "--redis-cache/--no-redis-cache",
    default=None,
    help="Keep the last trade and top of book per instrument in Redis at REDIS_URL (default REDIS_CACHE).",
)
@click.option("--consume", is_flag=True, help="Run the NATS -> ClickHouse consumer in this process too.")
@click.option("--metrics-host", default=None, help="Default COLLECTOR_METRICS_HOST.")
@click.option(
    "--metrics-port", default=None, help="Default COLLECTOR_METRICS_PORT (0: a free one; off: none)."
)
@click.option(
    "--stale-s",
    type=float,
    default=None,
    help="A silent socket is dropped after this (default: the venue's: 10 s, Deribit 15 s).",
)
@click.option(
    "--part",
    default=None,
    metavar="K/N",
    help="Collect part K of N of each venue's universe (every "
    "instrument in exactly one part; default COLLECTOR_PART; empty: all of it).",
)
@click.option(
    "--resolve-every-s",
    type=float,
    default=None,
    help="A universe resolved from the instrument master is "
    "resolved again this often and applied without a restart (default COLLECTOR_RESOLVE_S; 0: never).",
)
@_common
def collect(
    instruments,
    within,
    venues,
    datasets,
    landing_dir,
    no_nats,
    direct_write,
    redis_cache,
    consume,
    metrics_host,
    metrics_port,
    stale_s,
    part,
    resolve_every_s,
    **common,
) -> None:
    """The live collector (Binance spot and USD-M, OKX, Deribit; trades, books and the other datasets each
    venue streams): raw landing, JetStream, optional sinks."""
    chosen = chosen_venues(venues)
    use_redis = redis_cache if redis_cache is not None else env_flag("REDIS_CACHE")
    options = _options(
        common,
        collect=True,
        consume=consume,
        no_nats=no_nats,
        direct_write=env_flag("CLICKHOUSE_DIRECT_WRITE") if direct_write is None else direct_write,
    )
    if consume and no_nats:
        raise click.UsageError("--consume reads NATS: it cannot go with --no-nats")
    for listed_names in (instruments, within):  # names checked before anything connects
        if listed_names:
            split_instruments(listed_names, chosen)
    from marketdata_assets.apps.universes import process_instruments

    # the process's one instrument service: the universe resolved from it, the collectors sized by it
    options.instrument_service = service = process_instruments()
    listed = instruments or settings.get("SYMBOLS").strip()
    names = split_instruments(instruments, chosen) if instruments else default_instruments(chosen, service)
    bound = split_instruments(within, chosen) if within else None
    names = _within(names, bound)
    common["urls"] = venue_urls(common.pop("urls", ()))
    options.venues = [_venue(v.upper(), names.get(v.upper(), []), common, stale_s) for v in chosen]
    _share(options.venues, part, resolve_every_s, resolved=not listed, within=bound, service=service)
    options.datasets = chosen_datasets(datasets, [v.venue for v in options.venues])
    empty = [v.venue for v in options.venues if not v.instruments]
    if empty:
        raise click.UsageError(
            f"no instruments for {', '.join(empty)}: name them in --instruments / SYMBOLS "
            "(VENUE:NAME) or in the sources config"
        )
    options.landing_dir = landing_dir or settings.live_landing_dir()
    options.metrics_host = metrics_host or settings.get("COLLECTOR_METRICS_HOST")
    options.metrics_port = parse_port(metrics_port)
    options.redis_url = settings.get("REDIS_URL") if use_redis else None
    _run(options)


def _within(names: dict[str, list[str]], bound: dict[str, list[str]] | None) -> dict[str, list[str]]:
    """`names` (venue -> instruments) kept within `bound` (None: all of them)."""
    if bound is None:
        return names
    return {venue: [n for n in listed if n in bound.get(venue, ())] for venue, listed in names.items()}


def _share(
    venues: list,
    part: str | None,
    every_s: float | None,
    resolved: bool,
    within: dict | None = None,
    service=None,
) -> None:
    """Each venue's part of its universe (`--part`, COLLECTOR_PART) and, for a universe resolved from the
    instrument master (no --instruments, no SYMBOLS), its resolution again every `every_s`
    (COLLECTOR_RESOLVE_S), kept `within` (venue -> instruments; None: all)."""
    from marketdata_assets.apps.universes import universe_today
    from marketdata_assets.ingest.live.collect.parts import Part

    try:
        share = Part.parse(part if part is not None else settings.get("COLLECTOR_PART"))
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--part") from error
    every_s = every_s if every_s is not None else float(settings.get("COLLECTOR_RESOLVE_S"))
    for venue in venues:
        venue.part = share
        if resolved and every_s > 0:
            venue.resolve = functools.partial(
                lambda name: _within(
                    universe_today([name.lower()], strict=True, service=service), within
                ).get(name, []),
                venue.venue,
            )
            venue.resolve_every_s = every_s


def chosen_datasets(listed: str | None, venues: list[str]) -> tuple[str, ...] | None:
    """`--datasets` checked against what the chosen venues stream (None: every dataset each has); a
    venue left with none of them is refused, naming what it has."""
    if listed is None:
        return None
    from marketdata_assets.apps.live import venue_protocol

    wanted = tuple(dict.fromkeys(d.strip() for d in listed.split(",") if d.strip()))
    has = {venue: venue_protocol(venue).supported for venue in venues}
    unknown = [d for d in wanted if not any(d in supported for supported in has.values())]
    if unknown or not wanted:
        every = sorted({d for supported in has.values() for d in supported})
        raise click.BadParameter(
            f"{', '.join(unknown) or 'none named'}: the chosen venues stream {', '.join(every)}",
            param_hint="--datasets",
        )
    for venue, supported in has.items():
        if not set(wanted) & set(supported):
            raise click.BadParameter(
                f"{venue} streams none of {', '.join(wanted)} (it has {', '.join(supported)})",
                param_hint="--datasets",
            )
    return wanted


def venue_urls(given: tuple[str, ...]) -> dict[str, tuple[str, str | None]]:
    """`--url VENUE=WS_URL[,REST_URL]` options -> venue -> (ws, rest or None); a venue with no live stream is
    refused."""
    out = {}
    for item in given:
        venue, found, urls = item.partition("=")
        if not found or venue.upper() not in STREAMS or not urls:
            raise click.BadParameter(
                f"{item!r}: expected VENUE=WS_URL[,REST_URL], VENUE one of {', '.join(VENUES)}",
                param_hint="--url",
            )
        ws, _, rest = urls.partition(",")
        out[venue.upper()] = (ws, rest or None)
    return out


def _venue(venue: str, instruments: list[str], options: dict, stale_s: float | None):
    """One venue's collector options, its WebSocket and REST URLs from the command's `options` (`--url`,
    else the venue's named options)."""
    from marketdata_assets.apps.collector import rest_base
    from marketdata_assets.apps.live import VenueOptions

    named_ws, named_rest = (options.get(name) for name in SOURCES[venue].url_options)
    ws, rest = options.get("urls", {}).get(venue, (named_ws, named_rest))
    return VenueOptions(
        venue, instruments, ws or named_ws or "", rest_base(venue, rest or named_rest), stale_s
    )


@click.command("consume")
@_common
def consume(**common) -> None:
    """The NATS -> ClickHouse consumer alone: JetStream trades into trades_live, acked after each INSERT."""
    _run(_options(common, collect=False, consume=True, no_nats=False, direct_write=False))


def _options(common: dict, *, collect: bool, consume: bool, no_nats: bool, direct_write: bool):
    from marketdata_assets.apps.live import LiveOptions

    return LiveOptions(
        nats_url=None if no_nats else common["nats_url"] or settings.get("NATS_URL"),
        stream=common["stream"],
        stream_max_bytes=common["stream_max_mb"] << 20,
        stream_replicas=settings.nats_stream_replicas(),
        subject_prefix=common["subject_prefix"],
        collect=collect,
        consume=consume,
        direct_write=direct_write,
        clickhouse_dsn=common["clickhouse_dsn"] or settings.clickhouse_dsn(),
        database=common["database"] or settings.get("CLICKHOUSE_DATABASE"),
        share_clickhouse=common["share_clickhouse"],
        consumer=_consumer_config(
            common["durable"],
            common["batch_size"],
            common["max_wait_s"],
            common["stream"],
            common["subject_prefix"],
        ),
    )


COMMANDS = [collect, consume]
