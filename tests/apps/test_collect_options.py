"""`marketdata collect`'s venues and URLs (apps/cli/live.py -> apps/live.py -> the collectors): every
venue's gap-hour repair is armed with that venue's own REST base (a flag, else the sources config's
`<VENUE>_BASE_URL` variable, else its public host), Binance USD-M is a venue of `collect` like the
others (ENABLE_BINANCE_UM, `BINANCE_UM:` instruments upper-cased), and the armed repair fetches a real
book from the REST replay. The command's options are caught before the process would start its
network loop (`_run`); the collectors are built by apps.live exactly as `collect` builds them.
"""

from __future__ import annotations

import asyncio

import pytest
from click.testing import CliRunner

from marketdata_assets.apps import live as live_app
from marketdata_assets.apps.cli import live as cli
from marketdata_assets.replay.crypto import CryptoReplayServer, ReplayConfig
from marketdata_assets.replay.crypto.binance_ws import WsConfig
from marketdata_assets.replay.crypto.deribit_ws import DeribitWsReplay
from marketdata_assets.replay.crypto.okx_ws import OkxWsReplay
from marketdata_assets.sources.config import load_sources_config

VENUE_ENV = {
    "BINANCE": "BINANCE_BASE_URL",
    "BINANCE_UM": "BINANCE_UM_BASE_URL",
    "OKX": "OKX_BASE_URL",
    "DERIBIT": "DERIBIT_BASE_URL",
}


@pytest.fixture
def caught(monkeypatch):
    """The LiveOptions `collect` would run (its `_run` replaced by a catch), with no URL variable set."""
    for name in (*VENUE_ENV.values(), "SYMBOLS", "TICKS_PROVIDERS_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    seen = []
    monkeypatch.setattr(cli, "_run", seen.append)

    def invoke(*args: str, **env: str):
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        result = CliRunner().invoke(
            cli.collect, ["--no-nats", "--metrics-port", "off", *args], catch_exceptions=False
        )
        assert result.exit_code == 0, result.output
        return {v.venue: v for v in seen.pop().venues}

    return invoke


def test_every_venue_gets_its_own_rest_base_flag_then_variable_then_file(caught):
    venues = caught(
        "--venue",
        "binance",
        "--venue",
        "binance_um",
        "--venue",
        "okx",
        "--venue",
        "deribit",
        "--instruments",
        "BINANCE:btcusdt,BINANCE_UM:ethusdt,OKX:BTC-USDT,DERIBIT:BTC-PERPETUAL",
        "--okx-rest-url",
        "http://127.0.0.1:9/okx/",
        DERIBIT_BASE_URL="http://127.0.0.1:9/deribit",
    )
    assert venues["OKX"].rest_url == "http://127.0.0.1:9/okx"  # the flag
    assert venues["DERIBIT"].rest_url == "http://127.0.0.1:9/deribit"  # the variable
    hosts = {name: s.default_base_url for name, s in load_sources_config().sources.items()}
    assert venues["BINANCE"].rest_url == hosts["binance"] == "https://api.binance.com"  # the file's
    assert venues["BINANCE_UM"].rest_url == hosts["binance_um"] == "https://fapi.binance.com"
    assert venues["BINANCE"].instruments == ["BTCUSDT"] and venues["BINANCE_UM"].instruments == ["ETHUSDT"]


def test_enable_binance_um_switch_and_its_instruments(caught):
    venues = caught(ENABLE_BINANCE="false", ENABLE_BINANCE_UM="true", SYMBOLS="btcusdt,BINANCE_UM:solusdt")
    assert list(venues) == ["BINANCE_UM"] and venues["BINANCE_UM"].instruments == ["BTCUSDT", "SOLUSDT"]
    assert venues["BINANCE_UM"].rest_url == "https://fapi.binance.com"


@pytest.mark.parametrize(
    ("venue", "replay_class", "instrument"),
    [("OKX", OkxWsReplay, "BTC-USDT"), ("DERIBIT", DeribitWsReplay, "BTC-PERPETUAL")],
)
def test_collect_arms_the_gap_hour_repair_of_okx_and_deribit(
    caught, tmp_path, venue, replay_class, instrument
):
    """Their books start from the stream (no REST snapshot), yet an hour with a book gap needs a REST
    snapshot: the collector `collect` builds holds a repair source on the venue's REST base, and it
    answers with the venue's book."""
    with (
        CryptoReplayServer(ReplayConfig(seed=7, instruments={venue: [instrument]})) as rest,
        replay_class(WsConfig(tick_s=0.02), rest=rest) as ws,
    ):
        ws.pause()
        flag = "--okx-rest-url" if venue == "OKX" else "--deribit-rest-url"
        options = caught(
            "--venue", venue.lower(), "--instruments", f"{venue}:{instrument}", flag, rest.base_url
        )
        venue_options = options[venue]
        built = live_app._collector(live_app.LiveOptions(landing_dir=tmp_path), venue_options, None)
        collector = built.collector
        assert collector.books.rest is None and collector.books.repair is not None

        async def fetch():
            try:
                return await collector.books.repair.fetch(instrument, 20)
            finally:
                await collector.books.repair.aclose()

        body = asyncio.run(fetch())
    book = body["data"][0] if venue == "OKX" else body["result"]
    assert book["bids"] and book["asks"]
    assert float(book["bids"][0][0]) < float(book["asks"][0][0])


def test_the_status_sensor_skips_when_no_collector_answers(monkeypatch):
    """No collector on the configured port (none may run): a skipped tick naming the URL, no error;
    the port off: skipped too."""
    import socket

    import dagster as dg

    from marketdata_assets.defs.live import health

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("COLLECTOR_METRICS_HOST", "0.0.0.0")
    monkeypatch.setenv("COLLECTOR_METRICS_PORT", str(port))
    result = health.live_collector_status(dg.build_sensor_context())
    assert isinstance(result, dg.SkipReason) and f"http://127.0.0.1:{port}/status" in result.skip_message
    monkeypatch.setenv("COLLECTOR_METRICS_PORT", "off")
    assert "off" in health.live_collector_status(dg.build_sensor_context()).skip_message


def test_collect_takes_every_dataset_each_venue_has_unless_told(monkeypatch, tmp_path):
    """Seed 002's collector streams its seven data types: by default each venue collects every dataset
    it has; `--datasets` narrows that, each venue taking the names it has."""
    seen = []
    monkeypatch.setattr(cli, "_run", seen.append)
    monkeypatch.delenv("SYMBOLS", raising=False)
    every = [
        "--venue",
        "binance",
        "--venue",
        "binance_um",
        "--venue",
        "okx",
        "--venue",
        "deribit",
        "--instruments",
        "BINANCE:btcusdt,BINANCE_UM:btcusdt,OKX:BTC-USDT,DERIBIT:BTC-PERPETUAL",
        "--no-nats",
        "--metrics-port",
        "off",
    ]

    def collected(*args: str) -> dict[str, tuple[str, ...]]:
        result = CliRunner().invoke(cli.collect, [*every, *args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        options = seen.pop()
        return {
            v.venue: live_app._collector(options, v, None).collector.protocol.datasets for v in options.venues
        }

    assert collected() == {
        "BINANCE": ("trades", "books", "tickers", "bars_1m"),
        "BINANCE_UM": ("trades", "books", "tickers", "bars_1m", "mark_price", "funding", "liquidations"),
        "OKX": (
            "trades",
            "books",
            "tickers",
            "bars_1m",
            "funding",
            "mark_price",
            "open_interest",
            "liquidations",
        ),
        "DERIBIT": ("trades", "books", "tickers", "mark_price", "funding", "open_interest"),
    }
    assert collected("--datasets", "funding,trades") == {
        "BINANCE": ("trades",),
        "BINANCE_UM": ("trades", "funding"),
        "OKX": ("trades", "funding"),
        "DERIBIT": ("trades", "funding"),
    }
    # Binance spot's aggregate trades: opt-in (not in every-dataset default above), collected when named
    assert collected("--datasets", "trades,agg_trades")["BINANCE"] == ("trades", "agg_trades")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--venue", "okx", "--datasets", "trades,quotes"], "quotes: the chosen venues stream"),
        (
            ["--venue", "binance", "--datasets", "funding"],
            "funding: the chosen venues stream agg_trades, bars_1m, books, tickers, trades",
        ),
        (
            ["--venue", "binance", "--venue", "okx", "--datasets", "funding"],
            "BINANCE streams none of funding (it has trades",
        ),
        (["--venue", "okx", "--datasets", " , "], "none named"),
    ],
)
def test_collect_refuses_datasets_no_chosen_venue_streams(monkeypatch, args, message):
    monkeypatch.setattr(cli, "_run", lambda options: pytest.fail("ran despite bad --datasets"))
    monkeypatch.setenv("SYMBOLS", "BINANCE:BTCUSDT,OKX:BTC-USDT")
    result = CliRunner().invoke(cli.collect, [*args, "--no-nats", "--metrics-port", "off"])
    assert result.exit_code == 2 and message in result.output and "--datasets" in result.output, result.output


def test_a_part_and_the_re_resolution_of_a_rule_universe(caught, monkeypatch):
    """`--part 2/3` reaches every venue's collector; a universe named by the user (--instruments, SYMBOLS)
    is fixed, one resolved from the instrument master is resolved again (COLLECTOR_RESOLVE_S)."""
    from marketdata_assets.ingest.live.collect.parts import Part

    named = caught("--venue", "okx", "--instruments", "OKX:BTC-USDT", "--part", "2/3")
    assert named["OKX"].part == Part(1, 3) and named["OKX"].resolve is None
    monkeypatch.setattr(
        cli, "default_instruments", lambda venues, service=None: {"OKX": ["BTC-USDT", "ETH-USDT"]}
    )
    resolved = caught("--venue", "okx", COLLECTOR_PART="1/2", COLLECTOR_RESOLVE_S="120")
    assert resolved["OKX"].part == Part(0, 2) and resolved["OKX"].resolve_every_s == 120
    assert resolved["OKX"].resolve is not None
    assert caught("--venue", "okx", "--resolve-every-s", "0")["OKX"].resolve is None  # 0: never
    result = CliRunner().invoke(cli.collect, ["--no-nats", "--venue", "okx", "--part", "3/2"])
    assert result.exit_code == 2 and "3/2" in result.output


def test_a_re_resolution_applies_each_universe_and_keeps_the_last_on_failure(tmp_path):
    """The venue's universe every `resolve_every_s`: a resolution that fails, or finds nothing, keeps what
    is collected (counted in `universe_failures`); the next one applies."""
    from marketdata_assets.ingest.live.collect.collector import CollectorConfig, LiveCollector
    from marketdata_assets.sources.okx.stream import OkxStream
    from marketdata_assets.stores.landing import LandingWriter

    answers = [RuntimeError("the master's store is away"), [], ["ETH-USDT", "SOL-USDT"]]

    def resolve():
        answer = answers.pop(0) if answers else ["ETH-USDT", "SOL-USDT"]
        if isinstance(answer, Exception):
            raise answer
        return answer

    venue = live_app.VenueOptions("OKX", ["BTC-USDT"], resolve=resolve, resolve_every_s=0.01)
    collector = LiveCollector(
        OkxStream(), CollectorConfig(["BTC-USDT"], "ws://unused"), LandingWriter(tmp_path, "OKX")
    )

    async def scenario():
        task = asyncio.create_task(live_app._resolve_forever(venue, collector))
        await collector.stats.wait_until(lambda s: collector.instruments != ["BTC-USDT"], 5)
        task.cancel()

    asyncio.run(scenario())
    assert collector.stats.universe_failures == 2 and collector.instruments == ["ETH-USDT", "SOL-USDT"]
    assert sorted(collector.books.by_instrument) == ["ETH-USDT", "SOL-USDT"]


def test_a_universe_within_what_a_source_serves_is_resolved_again_within_it(caught, monkeypatch):
    """`--within` (make run: the WebSocket replays' instruments): the universe resolved from the master, at
    the start and at each resolution again, kept to those."""
    universe = {"OKX": ["BTC-USDT", "ETH-USDT", "SOL-USDT"]}
    monkeypatch.setattr(cli, "default_instruments", lambda venues, service=None: universe)
    monkeypatch.setattr(
        "marketdata_assets.apps.universes.universe_today", lambda venues, strict, service=None: universe
    )
    within = caught("--venue", "okx", "--within", "OKX:BTC-USDT,OKX:SOL-USDT", COLLECTOR_RESOLVE_S="60")
    assert within["OKX"].instruments == ["BTC-USDT", "SOL-USDT"] and within["OKX"].resolve_every_s == 60
    universe["OKX"].remove("SOL-USDT")  # delisted since: the next resolution drops it
    assert within["OKX"].resolve() == ["BTC-USDT"]
