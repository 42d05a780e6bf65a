"""`make run`'s live capture: the collector against the local WebSocket replays, no credentials.

When the demo replays the crypto venues (Binance, OKX, Deribit all on the crypto replay), this starts
their WebSocket replays on that same market (replay/crypto: binance_ws, okx_ws, deribit_ws, in this
process) and `marketdata collect --consume --share-clickhouse` as a child process: every venue's
frames land in hourly files (`settings.live_landing_dir()`), trades go to the NATS stream and from
it into ClickHouse `trades_live` within seconds, and the `live` group's sensor loads each landing
hour when it closes. `--share-clickhouse`: with an embedded ClickHouse (one process's at a
time) the child opens it for each INSERT only and the graph's runs open it in between; the stack's
ClickHouse server (the default) needs no sharing.

Why a child process: the collector is the same long-running command a machine runs in production
(`marketdata collect`), with its own endpoints; it is stopped (SIGTERM, its clean shutdown: files
closed, the outbox drained) when `make run` ends. Nothing starts when a crypto venue talks to its
real vendor (the collector would then open real WebSocket connections nobody asked for).
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from marketdata_assets.core import settings

LIVE_VENUES = ("binance", "okx", "deribit")  # the demo's replayed sources the collector needs
# A clean stop is bounded by the collector's last publish attempts and the consumer's ack confirmations
# (ack_wait, 30 s) when NATS is slow: more than that is a hang, killed (the next start recovers its files).
STOP_WAIT_S = 90


@dataclass
class DemoLive:
    """The WebSocket replays and the collector process of `make run` (`stop()` ends both)."""

    replays: list = field(default_factory=list)
    process: subprocess.Popen | None = None
    line: str = ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_WAIT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        for replay in self.replays:
            replay.stop()
        self.replays.clear()


def command(
    urls: dict[str, str], rest_url: str, instruments: list[str], extra: tuple[str, ...] = ()
) -> list[str]:
    """`marketdata collect` of every venue against the replays (the make-run collector): each venue's
    universe, resolved by the collector from the instrument master on its schedule, within what the
    replays serve."""
    return [
        str(Path(sys.prefix) / "bin" / "marketdata"),
        "collect",
        "--consume",
        "--share-clickhouse",
        *(arg for venue in urls for arg in ("--venue", venue.lower())),
        *(
            arg for venue, url in urls.items() for arg in ("--url", f"{venue}={url},{rest_url}")
        ),  # one REST replay
        "--within",
        ",".join(instruments),
        "--max-wait-s",
        "2",
        "--batch-size",
        "5000",
        *extra,
    ]


def start(replays, extra: tuple[str, ...] = ()) -> DemoLive:
    """The replays and the collector, if the demo replays every crypto venue (`replays`: apps.demo.Replays;
    `extra`: more `marketdata collect` options, for tests); else an empty DemoLive whose `line` says why
    nothing runs."""
    from marketdata_assets.replay.crypto.binance_ws import BinanceWsReplay
    from marketdata_assets.replay.crypto.deribit_ws import DeribitWsReplay
    from marketdata_assets.replay.crypto.okx_ws import OkxWsReplay
    from marketdata_assets.replay.crypto.ws_server import WsConfig

    replayed = {s.name for s in replays.sources}
    live = DemoLive()
    if "crypto" not in replays.servers or not set(LIVE_VENUES) <= replayed:
        live.line = "live collector: not started (a crypto venue talks to its real vendor)"
        return live
    rest = replays.servers["crypto"]
    config = WsConfig(trade_ids_file=settings.state_dir() / "replay" / "live_trade_ids.json")  # a restart
    for replay_class in (BinanceWsReplay, OkxWsReplay, DeribitWsReplay):  # never sends a trade id again
        live.replays.append(replay_class(config, rest=rest).start())
    return _launch(live, rest, extra)


def line(
    instruments: list[str], said: list[str], unreplayed: list[str], uncollected: list[str], venues: list[str]
) -> str:
    """The make-run collector's line: what it collects and how its universe came about (`said`: what the
    resolution said; the master unreadable: the explicit list stands in, said first), what of the universe
    the replays do not serve, and each universe venue not collected with the command that collects it."""
    from marketdata_assets.apps.universes import EXPLICIT_ONLY

    every = float(settings.get("COLLECTOR_RESOLVE_S"))
    resolved = f"the universe resolved today, again every {every:g} s" if every > 0 else "the universe today"
    explicit = [text for text in said if text.endswith(EXPLICIT_ONLY)]  # the master could not be read
    return (
        f"live collector: {', '.join(instruments)} ("
        + "; ".join([*(explicit or [resolved]), *(text for text in said if text not in explicit)])
        + (f"; not replayed: {', '.join(unreplayed)}" if unreplayed else "")
        + "".join(
            f"; {venue} not collected: make run collects {', '.join(venues)} "
            f"(`marketdata collect --venue {venue.lower()}` collects it)"
            for venue in uncollected
        )
        + ") from the WebSocket "
        f"replays -> {settings.live_landing_dir()}, NATS {settings.get('NATS_URL')}, trades_live"
    )


def _launch(live: DemoLive, rest, extra: tuple[str, ...]) -> DemoLive:
    from marketdata_assets.apps.universes import universe_today
    from marketdata_assets.sources.config import load_sources_config

    venues = {replay.venue: replay for replay in live.replays}
    fallback: list[str] = []
    universe = universe_today(
        [venue.lower() for venue in venues], refresh_from=rest.base_url, say=fallback.append
    )
    instruments = [
        f"{venue}:{name}"
        for venue, replay in venues.items()
        for name in universe.get(venue, [])
        if name in replay.instruments
    ]
    unreplayed = sorted(
        f"{venue}:{name}"
        for venue in venues
        for name in universe.get(venue, [])
        if name not in venues[venue].instruments
    )
    replayed = [f"{venue}:{name}" for venue, replay in venues.items() for name in replay.instruments]
    argv = command({venue: replay.url for venue, replay in venues.items()}, rest.base_url, replayed, extra)
    try:
        live.process = subprocess.Popen(argv, cwd=settings.PROJECT_ROOT, stdin=subprocess.DEVNULL)
    except OSError as error:
        live.line = f"live collector: not started ({error})"
        return live
    uncollected = [v for v in load_sources_config().crypto_rules() if v not in venues]
    live.line = line(instruments, fallback, unreplayed, uncollected, list(venues))
    return live
