"""Demo mode: the vendors' replays served beside the project, so everything works offline.

`make run` (`python -m marketdata_assets.apps.demo run`) serves a replay for every source that is not
configured for real (MARKETDATA_DEMO=auto: no base URL or credentials of its own in the
environment; `on`: every source; `off`: none), points this process's environment at them,
starts the live collector against the WebSocket replays (apps/demo_live.py: `marketdata collect` of
Binance, OKX and Deribit as a child, stopped when `make run` ends), materializes the graph
(marketdata_assets.apps.main), then serves the UI with `dg dev` (the project's
own code location, `marketdata_assets`, whatever the mode: schedule and sensor states are kept per
location name) as a child that inherits that environment: schedules, sensors and the UI's Materialize
buttons reach the same replays for as long as the UI runs. The Prometheus exporter
(marketdata_assets.apps.exporter) runs in this process too.

`python -m marketdata_assets.apps.demo replays` serves the replays alone (docker/'s `demo` profile).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from marketdata_assets.core import process_tree, settings


@dataclass(frozen=True)
class ReplayedSource:
    """A source the demo can replay: which server answers it, and which variables mean "real"."""

    name: str
    server: str  # alpha | crypto | stocks | archive
    base_url_var: str
    real_if_set: tuple[str, ...] = ()  # besides the base URL (credentials)


SOURCES = (
    ReplayedSource("alpha_api", "alpha", "ALPHA_API_BASE_URL"),  # + ALPHA_API_USER_<NAME>, see is_real
    ReplayedSource("binance", "crypto", "BINANCE_BASE_URL"),
    ReplayedSource("binance_um", "crypto", "BINANCE_UM_BASE_URL"),
    ReplayedSource("okx", "crypto", "OKX_BASE_URL"),
    ReplayedSource("deribit", "crypto", "DERIBIT_BASE_URL"),
    ReplayedSource("tushare", "stocks", "TUSHARE_BASE_URL", ("TUSHARE_TOKEN",)),
    ReplayedSource("yahoo", "stocks", "YAHOO_BASE_URL"),
    ReplayedSource("binance_archive", "archive", "BINANCE_ARCHIVE_BASE_URL"),
)
REPLAY_TUSHARE_TOKEN = "replay-token"


def is_real(source: ReplayedSource, environ: dict[str, str]) -> bool:
    """Whether the user configured the source (before any default is applied)."""
    names = (source.base_url_var, *source.real_if_set)
    if source.name == "alpha_api":
        names += tuple(
            name for name in environ if name.startswith(("ALPHA_API_USER_", "ALPHA_API_PASSWORD_"))
        )
    return any(environ.get(name) for name in names)


def replayed_sources(environ: dict[str, str], mode: str) -> list[ReplayedSource]:
    """The sources to replay under MARKETDATA_DEMO=`mode` (auto | on | off)."""
    if mode not in ("auto", "on", "off"):
        raise ValueError(f"MARKETDATA_DEMO={mode!r}: expected auto, on or off")
    if mode == "off":
        return []
    return [s for s in SOURCES if mode == "on" or not is_real(s, environ)]


def alpha_months(today: date | None = None) -> tuple[str, int]:
    """(first month, months) the alpha replay creates alphas in: the last three complete New York
    months, which `make run` fetches, and the month in progress, which the daily schedule fetches."""
    today = today or datetime.now(ZoneInfo("America/New_York")).date()
    year, month = today.year, today.month - 3
    if month < 1:
        year, month = year - 1, month + 12
    return f"{year:04d}-{month:02d}", 4


@dataclass
class Replays:
    """Running replay servers and the variables that point at them."""

    sources: list[ReplayedSource]
    servers: dict[str, object] = field(default_factory=dict)
    environ: dict[str, str] = field(default_factory=dict)

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()
        self.servers.clear()

    def describe(self) -> str:
        if not self.sources:
            return "demo mode off: every source talks to its vendor"
        urls = {s.name: self.environ[s.base_url_var] for s in self.sources}
        real = [s.name for s in SOURCES if s not in self.sources]
        return (
            "demo mode: replays for "
            + ", ".join(f"{name} ({url})" for name, url in urls.items())
            + (f"; real vendors for {', '.join(real)}" if real else "")
        )


def serve(
    sources: list[ReplayedSource],
    host: str = "127.0.0.1",
    ports: dict[str, int] | None = None,
    advertise: str | None = None,
) -> Replays:
    """Start the servers the sources need (port 0: any free port) and set os.environ to them."""
    from marketdata_assets.replay.alpha_api import AlphaReplayServer, ReplayAccount, ReplayConfig
    from marketdata_assets.replay.binance_archive import BinanceArchiveReplayServer, demo_config
    from marketdata_assets.replay.crypto import CryptoReplayServer
    from marketdata_assets.replay.stocks import StocksReplayServer
    from marketdata_assets.sources.registry import account_api

    ports = ports or {}
    replays = Replays(sources)
    needed = {s.server for s in sources}
    if "alpha" in needed:
        accounts = [
            ReplayAccount.default(name, alphas=400)
            for name in account_api().account_names(settings.get("ALPHA_API_ACCOUNTS"))
        ]
        for account in accounts:
            user_var, password_var = account_api().credential_vars(account.name)
            replays.environ[user_var], replays.environ[password_var] = account.user, account.password
        start_month, months = alpha_months()
        replays.servers["alpha"] = AlphaReplayServer(
            ReplayConfig(seed=7, accounts=accounts, start_month=start_month, months=months),
            host=host,
            port=ports.get("alpha", 0),
        )
    if "crypto" in needed:
        replays.servers["crypto"] = CryptoReplayServer(host=host, port=ports.get("crypto", 0))
    if "archive" in needed:
        replays.servers["archive"] = BinanceArchiveReplayServer(
            demo_config(), host=host, port=ports.get("archive", 0)
        )
    if "stocks" in needed:
        replays.servers["stocks"] = StocksReplayServer(host=host, port=ports.get("stocks", 0))
        if any(s.name == "tushare" for s in sources):
            replays.environ["TUSHARE_TOKEN"] = REPLAY_TUSHARE_TOKEN
    for server in replays.servers.values():
        server.start()
    for source in sources:
        url = replays.servers[source.server].base_url
        if advertise:
            url = f"http://{advertise}:{url.rsplit(':', 1)[1]}"
        replays.environ[source.base_url_var] = url
    os.environ.update(replays.environ)
    return replays


def activate(mode: str | None = None, environ: dict[str, str] | None = None) -> Replays:
    """Demo mode for this process: replays for the sources `mode` selects, then the defaults applied."""
    environ = dict(os.environ if environ is None else environ)
    replays = serve(replayed_sources(environ, mode or environ.get("MARKETDATA_DEMO") or "auto"))
    settings.apply_defaults()
    return replays


LIVE_AFTER = "instrument master"  # the make-run step after which the collector starts


def run(host: str, port: int, serve_ui: bool = True) -> int:
    """make run: replays + exporter, materialize the graph, then the UI until Ctrl-C."""
    from marketdata_assets.apps import demo_live
    from marketdata_assets.apps import main as graph

    process_tree.guard()  # SIGTERM/SIGHUP as Ctrl-C; nothing it starts outlives it
    replays = activate()
    print(replays.describe(), flush=True)
    exporter = _start_exporter() if serve_ui else None
    started: list = []  # the live collector, once the master it resolves its universe from is stored

    def start_live(label: str | None) -> list[str]:
        if not serve_ui or started or label not in (LIVE_AFTER, None):  # make run: live data under the UI
            return []
        started.append(demo_live.start(replays))
        return [started[0].line]

    try:
        failed = graph.main(preamble=(replays.describe(),), after_step=start_live)
        if not serve_ui or failed in (
            graph.STORAGE_DOWN,
            graph.INTERRUPTED,
        ):  # no UI without storage, nor after ^C
            return failed
        for line in start_live(None):  # no master step ran: started now
            print(line, flush=True)
        mode = f"demo: {len(replays.sources)} sources replayed" if replays.sources else "live"
        print(
            f"Dagster UI on http://{host}:{port} ({mode}; Ctrl-C stops it, `make stack-down` the databases)",
            flush=True,
        )
        return serve_until_stopped(ui_command(host, port), _ui_environ())
    finally:
        for live in started:
            live.stop()
        if exporter is not None:
            exporter.stop()
        replays.stop()
        if killed := process_tree.stop_tree(grace_s=5):  # what any of them left behind
            print(f"make run: killed {len(killed)} process(es) that outlived Ctrl-C and SIGTERM", flush=True)


def ui_command(host: str, port: int) -> list[str]:
    """`dg dev` of this interpreter's environment, in the project directory: the location is named by
    pyproject's [tool.dg.project] (`dagster dev -w` is superseded, and a workspace naming the location
    otherwise made Dagster warn at every load of the definitions). Its services log warnings and errors:
    at INFO the daemon wrote a line per sensor tick (341 in 15 minutes), burying them; the runs' own logs
    are in the UI."""
    return [
        str(Path(sys.prefix) / "bin" / "dg"),
        "dev",
        "-h",
        host,
        "-p",
        str(port),
        "--log-level",
        "warning",
        "--code-server-log-level",
        "warning",
    ]


def _ui_environ() -> dict[str, str]:
    """This process's environment (the replays' URLs), with this interpreter's venv as the active one, so
    `dg` finds the project's .venv active. The project .env only fills in unset variables
    (settings.dotenv)."""
    return {**os.environ, "VIRTUAL_ENV": sys.prefix}


def _start_exporter():
    try:
        from marketdata_assets.apps.exporter import start_exporter
    except ImportError:
        return None
    try:
        exporter = start_exporter(settings.get("METRICS_HOST"), int(settings.get("METRICS_PORT")))
    except OSError as error:  # the port is taken (another make run): the UI still works
        print(f"metrics exporter not started: {error}", flush=True)
        return None
    print(f"metrics on {exporter.url}/metrics (and /health, /status)", flush=True)
    return exporter


def serve_until_stopped(command: list[str], env: dict[str, str]) -> int:
    """Run `command` (the UI) in the project directory until it ends, or Ctrl-C, SIGTERM or SIGHUP
    (process_tree.guard) stop it and every process under it, its webserver, daemon and code servers
    included, within seconds. The signals are caught again first: the graph's runs left SIGTERM as they
    found SIGINT, which a shell's background job ignores, and what is caught here is not ignored by the UI."""
    process_tree.stop_signals()
    child = subprocess.Popen(command, cwd=settings.PROJECT_ROOT, env=env)
    try:
        return child.wait() or 0
    except KeyboardInterrupt:
        process_tree.stop_tree(first=[child.pid])
        return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m marketdata_assets.apps.demo", description=__doc__.split("\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="what `make run` does: replays, materialize, UI")
    run_parser.add_argument("--host", default="127.0.0.1")
    run_parser.add_argument("--port", type=int, default=3000)
    run_parser.add_argument("--no-ui", action="store_true", help="materialize only (make materialize)")
    replay_parser = commands.add_parser(
        "replays", help="serve every replay until SIGTERM (docker's demo profile)"
    )
    replay_parser.add_argument("--host", default="127.0.0.1")
    replay_parser.add_argument("--advertise", help="host name the printed URLs use (default: --host)")
    for name, default in (("alpha", 8701), ("crypto", 8702), ("stocks", 8703), ("archive", 8704)):
        replay_parser.add_argument(f"--{name}-port", type=int, default=default)
    args = parser.parse_args(argv)
    if args.command == "run":
        return run(args.host, args.port, serve_ui=not args.no_ui)
    replays = serve(
        list(SOURCES),
        args.host,
        {
            "alpha": args.alpha_port,
            "crypto": args.crypto_port,
            "stocks": args.stocks_port,
            "archive": args.archive_port,
        },
        advertise=args.advertise,
    )
    for name, value in sorted(replays.environ.items()):
        print(f"{name}={value}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    replays.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
