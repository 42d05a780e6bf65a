"""`marketdata collect` and `marketdata consume`: the live collector and the NATS -> ClickHouse consumer
as long-running commands (issue #23; docs/live-capture.md). Dagster-free: they run apps.live in
this process until SIGINT/SIGTERM and print their counters as JSON when they stop.

Options come from the command line, else the environment (the settings table: COLLECTOR_METRICS_*,
NATS_URL, CLICKHOUSE_DSN / CLICKHOUSE_DATABASE), else the sources config (its Binance instruments).
Seed 002's names are honoured as aliases: `SYMBOLS` (a comma list of instruments),
`ENABLE_BINANCE` / `ENABLE_OKX` / `ENABLE_DERIBIT`, `clickhouse_direct_write` and `redis_cache`
(either spelling, upper or lower case). This command runs Binance spot only: OKX and Deribit have
collectors (`python -m marketdata_assets.apps.collector --venue OKX|DERIBIT`) but not yet the sinks,
consumer and endpoints of this process, so enabling them here stops the command with a message
saying so rather than running without them. `redis_cache` keeps the latest state in Redis (REDIS_URL).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path

import click

from marketdata_assets.core import settings

VENUES = ("binance", "okx", "deribit")
NOT_BUILT = {"okx": "OKX", "deribit": "Deribit"}
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"", "0", "false", "no", "off"}


def env_flag(name: str) -> bool:
    """A seed-002 switch: NAME or name in the environment, else the setting's default."""
    raw = os.environ.get(name.lower())
    value = (raw if raw not in (None, "") else settings.get(name)).strip().lower()
    if value not in _TRUE | _FALSE:
        raise click.BadParameter(f"{name}={value!r}: expected true/false (1/0, yes/no, on/off)")
    return value in _TRUE


def default_instruments() -> list[str]:
    """SYMBOLS (seed 002), else the sources config's Binance instruments."""
    listed = settings.get("SYMBOLS")
    if listed.strip():
        return [name.strip().upper() for name in listed.split(",") if name.strip()]
    from marketdata_assets.sources.config import load_sources_config

    return [key.instrument for key in load_sources_config().crypto_instruments if key.venue == "BINANCE"]


def chosen_venues(venues: tuple[str, ...]) -> list[str]:
    """--venue, else the ENABLE_* switches; refuses the venues not built yet."""
    chosen = list(dict.fromkeys(v.lower() for v in venues)) or [v for v in VENUES if env_flag(f"ENABLE_{v.upper()}")]
    missing = [NOT_BUILT[v] for v in chosen if v in NOT_BUILT]
    if missing:
        raise click.UsageError(f"`marketdata collect` runs Binance spot only so far (issue #23); collect {' and '.join(missing)} "
                               "with `python -m marketdata_assets.apps.collector --venue ...` (landing files and "
                               "JetStream, no endpoints yet); leave ENABLE_OKX / ENABLE_DERIBIT off here")
    if not chosen:
        raise click.UsageError("no venue enabled: set ENABLE_BINANCE=true or pass --venue binance")
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

    async def main() -> dict:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)

        def ready(info: dict) -> None:
            what = "collecting" if options.collect else "consuming"
            where = f"; endpoints {info['url']} (/metrics /health /status)" if "url" in info else ""
            click.echo(f"{what}: {', '.join(options.instruments) or 'md.trades'}{where}", err=True)
        return await run_live(options, stop, ready)
    click.echo(json.dumps(asyncio.run(main()), default=str))


def _consumer_config(durable: str, batch_size: int, max_wait_s: float, stream: str, prefix: str):
    from marketdata_assets.ingest.live.consumer import ConsumerConfig

    return ConsumerConfig(stream=stream, subject_filter=f"{prefix}.trades.>", durable=durable, batch_size=batch_size,
                          max_wait_s=max_wait_s)


def _common(function):
    """The options `collect` and `consume` share."""
    for decorator in reversed((
        click.option("--nats-url", default=None, help="NATS with JetStream (default NATS_URL)."),
        click.option("--stream", default="MARKETDATA", show_default=True, help="JetStream stream."),
        click.option("--subject-prefix", default="md", show_default=True, help="Subjects <prefix>.trades.<venue>.<instrument>."),
        click.option("--clickhouse-dsn", default=None, help="Default CLICKHOUSE_DSN (empty: the embedded engine)."),
        click.option("--database", default=None, help="Default CLICKHOUSE_DATABASE."),
        click.option("--durable", default="trades-clickhouse", show_default=True, help="The consumer's durable name."),
        click.option("--batch-size", type=int, default=1000, show_default=True, help="Consumer: messages per INSERT at most."),
        click.option("--max-wait-s", type=float, default=0.25, show_default=True, help="Consumer: seconds a batch waits to fill."),
    )):
        function = decorator(function)
    return function


@click.command("collect")
@click.option("--instruments", default=None, help="Comma list (default SYMBOLS, else the sources config's Binance ones).")
@click.option("--venue", "venues", multiple=True, type=click.Choice(VENUES, case_sensitive=False),
              help="Venues to collect (default: the ENABLE_* switches).")
@click.option("--ws-url", default=None, help="WebSocket base (default Binance's; a replay's in tests).")
@click.option("--rest-url", default=None, help="REST base for book snapshots (default BINANCE_BASE_URL).")
@click.option("--landing-dir", type=click.Path(path_type=Path), default=None, help="Default <state dir>/landing/live.")
@click.option("--no-nats", is_flag=True, help="Publish nothing to NATS (land raw; with --direct-write, write ClickHouse).")
@click.option("--direct-write/--no-direct-write", default=None, help="Also write trades to ClickHouse trades_live "
              "(default CLICKHOUSE_DIRECT_WRITE / clickhouse_direct_write).")
@click.option("--redis-cache/--no-redis-cache", default=None, help="Keep the last trade and top of book per "
              "instrument in Redis at REDIS_URL (default REDIS_CACHE).")
@click.option("--consume", is_flag=True, help="Run the NATS -> ClickHouse consumer in this process too.")
@click.option("--metrics-host", default=None, help="Default COLLECTOR_METRICS_HOST.")
@click.option("--metrics-port", default=None, help="Default COLLECTOR_METRICS_PORT (0: a free one; off: none).")
@click.option("--stale-s", type=float, default=10.0, show_default=True, help="A silent socket is dropped after this.")
@_common
def collect(instruments, venues, ws_url, rest_url, landing_dir, no_nats, direct_write, redis_cache, consume,
            metrics_host, metrics_port, stale_s, **common) -> None:
    """The live collector (Binance spot trades and books): raw landing, JetStream, optional sinks."""
    chosen_venues(venues)
    use_redis = redis_cache if redis_cache is not None else env_flag("REDIS_CACHE")
    options = _options(common, collect=True, consume=consume, no_nats=no_nats,
                       direct_write=env_flag("CLICKHOUSE_DIRECT_WRITE") if direct_write is None else direct_write)
    if consume and no_nats:
        raise click.UsageError("--consume reads NATS: it cannot go with --no-nats")
    from marketdata_assets.sources.binance.stream import WS_URL

    options.instruments = [i.strip().upper() for i in instruments.split(",") if i.strip()] if instruments \
        else default_instruments()
    options.ws_url, options.rest_url = ws_url or WS_URL, rest_url or settings.get("BINANCE_BASE_URL")
    options.landing_dir = landing_dir or settings.live_landing_dir()
    options.metrics_host = metrics_host or settings.get("COLLECTOR_METRICS_HOST")
    options.metrics_port, options.stale_s = parse_port(metrics_port), stale_s
    options.redis_url = settings.get("REDIS_URL") if use_redis else None
    _run(options)


@click.command("consume")
@_common
def consume(**common) -> None:
    """The NATS -> ClickHouse consumer alone: JetStream trades into trades_live, acked after each INSERT."""
    _run(_options(common, collect=False, consume=True, no_nats=False, direct_write=False))


def _options(common: dict, *, collect: bool, consume: bool, no_nats: bool, direct_write: bool):
    from marketdata_assets.apps.live import LiveOptions

    return LiveOptions(
        nats_url=None if no_nats else common["nats_url"] or settings.get("NATS_URL"), stream=common["stream"],
        subject_prefix=common["subject_prefix"], collect=collect, consume=consume, direct_write=direct_write,
        clickhouse_dsn=common["clickhouse_dsn"] or settings.clickhouse_dsn(),
        database=common["database"] or settings.get("CLICKHOUSE_DATABASE"),
        consumer=_consumer_config(common["durable"], common["batch_size"], common["max_wait_s"], common["stream"],
                                  common["subject_prefix"]))


COMMANDS = [collect, consume]
