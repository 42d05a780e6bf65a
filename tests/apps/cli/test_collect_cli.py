"""`marketdata collect` / `consume` as processes, against the Binance WebSocket + REST replays (run in
this test's process), the stack's real nats-server and an embedded ClickHouse of the subprocess's own
(one process per chDB directory: the rows are counted by another short process afterwards).

Covers the collector's endpoints too: /metrics on the exporter's conventions, /status's counters,
/health going 503 when the market goes silent. Waits poll the process's /status (its counters),
with a deadline; nothing waits a fixed time."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from marketdata_assets.replay.crypto import CryptoReplayServer, ReplayConfig
from marketdata_assets.replay.crypto.binance_ws import BinanceWsReplay, WsConfig
from marketdata_assets.replay.crypto.deribit_ws import DeribitWsReplay
from marketdata_assets.replay.crypto.okx_ws import OkxWsReplay
from marketdata_assets.stores.jetstream import JetStreamStore
from tests.support.live import INSTRUMENTS, replays, stream_trades

MARKETDATA = Path(sys.executable).parent / "marketdata"
REPO = Path(__file__).resolve().parents[3]
WAIT_S = 40


def cli_env(tmp_path: Path, **extra: str) -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in (
            "PROMETHEUS_MULTIPROC_DIR",
            "SYMBOLS",
            "ENABLE_OKX",
            "ENABLE_DERIBIT",
            "REDIS_CACHE",
            "redis_cache",
        )
    }
    return {
        **env,
        "PYTHONPATH": str(REPO),
        "CLICKHOUSE_DSN": f"chdb://{tmp_path / 'ch'}",
        "CLICKHOUSE_DATABASE": "live_test",
        **extra,
    }


def start(env: dict, *args: str) -> tuple[subprocess.Popen, str | None]:
    """The command running, and its endpoints' URL (from its ready line on stderr)."""
    proc = subprocess.Popen(
        [str(MARKETDATA), *args],
        env=env,
        cwd=str(REPO),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = proc.stderr.readline()
    if not line:
        proc.wait(30)
        raise AssertionError(f"no ready line; exit {proc.returncode}: {proc.stderr.read()[-3000:]}")
    found = re.search(r"endpoints (http://\S+)", line)
    proc.ready_line = line  # what the command said first (in a failure's message)
    return proc, found.group(1) if found else None


def stop(proc: subprocess.Popen) -> dict:
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def wait_status(url: str, condition, what: str) -> dict:
    deadline = time.monotonic() + WAIT_S
    while True:
        status = json.loads(get(f"{url}/status")[1])
        if condition(status):
            return status
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached in {WAIT_S} s: {status}")
        time.sleep(0.1)


def count_rows(env: dict) -> tuple[int, int, int]:
    """(distinct trades, rows, distinct trade ids per instrument summed) of trades_live, read by another
    process."""
    code = (
        "import sys, json; from marketdata_assets.stores.clickhouse.connection import open_client\n"
        "c, _ = open_client(sys.argv[1], 'live_test')\n"
        "print(json.dumps([int(c.command('SELECT count() FROM live_test.trades_live FINAL')),\n"
        "  int(c.command('SELECT count() FROM live_test.trades_live')),\n"
        "  int(c.command('SELECT uniqExact(instrument, trade_id) FROM live_test.trades_live'))]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, env["CLICKHOUSE_DSN"]],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return tuple(json.loads(done.stdout.strip().splitlines()[-1]))


def metric(text: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(f"{name}{{{want}}} ") or (not labels and line.startswith(f"{name} ")):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name}{{{want}}} not in /metrics")


def sensor_observation(url: str) -> dict:
    """The metadata of the live_collector_status sensor's observation, the sensor pointed at `url`."""
    import dagster as dg

    from marketdata_assets.defs.live import health

    port = url.rsplit(":", 1)[1]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("COLLECTOR_METRICS_HOST", "127.0.0.1")
        patch.setenv("COLLECTOR_METRICS_PORT", port)
        result = health.live_collector_status(dg.build_sensor_context())
    assert isinstance(result, dg.SensorResult), result
    (event,) = result.asset_events
    assert event.asset_key == dg.AssetKey("live_trades")
    return event.metadata


def test_collect_with_consume_serves_metrics_and_fills_trades_live(tmp_path, nats_url, stream_spec):
    prefix = stream_spec.subjects[0].split(".")[0]
    env = cli_env(tmp_path, ENABLE_BINANCE="true", SYMBOLS=",".join(INSTRUMENTS))
    stack, rest, ws = replays(WsConfig(tick_s=0.02))
    with stack:
        proc, url = start(
            env,
            "collect",
            "--consume",
            "--ws-url",
            ws.url,
            "--rest-url",
            rest.base_url,
            "--landing-dir",
            str(tmp_path / "landing"),
            "--nats-url",
            nats_url,
            "--stream",
            stream_spec.name,
            "--stream-max-mb",
            "64",
            "--subject-prefix",
            prefix,
            "--durable",
            "ch",
            "--metrics-port",
            "0",
            "--max-wait-s",
            "0.05",
        )
        try:
            assert url, f"no endpoints URL on the ready line {proc.ready_line!r}"
            status = wait_status(
                url,
                lambda s: (
                    s["collector"]["published"] >= 100
                    and s["consumer"]["acked"] >= 100
                    and s["collector"]["snapshots"] == 2
                ),
                "100 trades through NATS into ClickHouse",
            )
            assert status["healthy"] and status["connections"] == 1
            assert get(f"{url}/health") == (200, "ok\n")
            observed = sensor_observation(url)  # the UI's view of the open hour (defs/live/health.py)
            assert observed["healthy"].value is True and observed["collector_url"].value == f"{url}/status"
            assert observed["live_trades"].value >= status["collector"]["trades"] >= 100
            assert observed["live_consumer_acked"].value >= status["consumer"]["acked"]
            assert observed["live_gaps"].value == 0 and observed["live_connections"].value == 1
            assert "| BINANCE | ok | 1 |" in observed["collector_status"].value
            code, text = get(f"{url}/metrics")
            assert code == 200
            assert metric(text, "marketdata_live_frames_total", venue="BINANCE", channel="trade") > 0
            assert metric(text, "marketdata_live_frames_total", venue="BINANCE", channel="depth") > 0
            assert metric(text, "marketdata_live_messages_total", venue="BINANCE", dataset="trades") >= 100
            assert metric(text, "marketdata_live_published_total", venue="BINANCE") >= 100
            assert metric(text, "marketdata_live_lag_seconds_count", venue="BINANCE") >= 100
            assert metric(text, "marketdata_live_queue_depth", venue="BINANCE") >= 0
            assert metric(text, "marketdata_live_consumer_acked_total") >= 100
            assert metric(text, "marketdata_live_gaps_total", venue="BINANCE") == 0
        finally:
            counters = stop(proc)
    published, consumer = counters["collector"]["published"], counters["consumer"]
    assert consumer["insert_failures"] == 0 and consumer["inserted"] == consumer["acked"]

    async def on_the_server():
        async with JetStreamStore(nats_url) as store:
            info = await store.js.consumer_info(stream_spec.name, "ch")
            every = await store.message_count(stream_spec.name, f"{prefix}.>")
            batches = await store.message_count(stream_spec.name, f"{prefix}.trades.>")
            held = len(await stream_trades(store, stream_spec.name, f"{prefix}.trades.>"))
            books = await store.message_count(stream_spec.name, f"{prefix}.books.>")
            await store.delete_stream(stream_spec.name)
            return info, every, batches, held, books

    info, every, batches, held, books = asyncio.run(on_the_server())
    # a stop waits for the batch JetStream is storing: what the server holds is what was counted, every
    # dataset's messages (Binance spot's tickers and bars too: collect takes every dataset by default;
    # trades in batches, a message per instrument and 50 ms)
    assert every - batches - books + held == published and books == counters["collector"]["book_snapshots"]
    assert (
        held == counters["collector"]["messages"]["trades"]
        and counters["collector"]["messages"]["tickers"] > 0
    )
    assert batches < held
    # what the consumer had fetched when stopped was stored and acked; the rest waits for the next start:
    # never delivered (pending), or delivered to a fetch the stop cut short (awaiting its ack, redelivered
    # after ack_wait). Nothing is lost: the two add up to what was not acked.
    assert info.num_pending + info.num_ack_pending == batches - consumer["acked_messages"]
    assert count_rows(env)[0] == consumer["acked"]  # every acked trade is in, once


def test_direct_write_without_nats_lands_every_trade_once(tmp_path):
    env = cli_env(tmp_path, clickhouse_direct_write="true")
    stack, rest, ws = replays(WsConfig(tick_s=0.02))
    with stack:
        proc, url = start(
            env,
            "collect",
            "--instruments",
            ",".join(INSTRUMENTS),
            "--no-nats",
            "--ws-url",
            ws.url,
            "--rest-url",
            rest.base_url,
            "--landing-dir",
            str(tmp_path / "landing"),
            "--metrics-port",
            "0",
            "--stale-s",
            "1",
        )
        try:
            wait_status(url, lambda s: s["collector"]["published"] >= 100, "100 trades written to ClickHouse")
            ws.pause()  # the market goes silent: the collector is not healthy any more
            deadline = time.monotonic() + WAIT_S
            while (health := get(f"{url}/health"))[0] == 200 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert health[0] == 503 and (
                "stale" in health[1] or "no frame" in health[1] or "no open" in health[1]
            )
        finally:
            counters = stop(proc)
    trades = counters["collector"]["trades"]
    assert counters["collector"]["published"] == trades and counters["collector"]["publish_dropped"] == 0
    distinct, _, unique = count_rows(env)
    assert distinct == unique == trades


MULTI = {"BINANCE": "BTCUSDT", "OKX": "BTC-USDT", "DERIBIT": "BTC-PERPETUAL"}


@pytest.fixture
def cli_stream(nats_url, stream_spec):
    """The test's stream (the command creates it, `--stream-max-mb 64`), deleted afterwards whatever
    happened: a stream reserves its size on the shared server's JetStream storage (4 GB)."""
    yield stream_spec
    asyncio.run(_delete_stream(nats_url, stream_spec.name))


def multi_venue_replays():
    """One replayed market, each venue's WebSocket replay on it, all paused (resumed once subscribed)."""
    stack = contextlib.ExitStack()
    rest = stack.enter_context(
        CryptoReplayServer(ReplayConfig(seed=7, instruments={v: [i] for v, i in MULTI.items()}))
    )
    ws = {
        venue: stack.enter_context(cls(WsConfig(tick_s=0.02), rest=rest))
        for venue, cls in (("BINANCE", BinanceWsReplay), ("OKX", OkxWsReplay), ("DERIBIT", DeribitWsReplay))
    }
    for replay in ws.values():
        replay.pause()
    return stack, rest, ws


def stored_ids(env: dict) -> dict[str, tuple[int, int, int, int]]:
    """venue -> (rows FINAL, distinct ids, first id, last id) of trades_live, read by another process."""
    code = (
        "import sys, json; from marketdata_assets.stores.clickhouse.connection import open_client\n"
        "c, _ = open_client(sys.argv[1], 'live_test')\n"
        "rows = c.query('SELECT venue, count(), uniqExact(trade_id), min(toUInt64(trade_id)), "
        "max(toUInt64(trade_id)) FROM live_test.trades_live FINAL GROUP BY venue').result_rows\n"
        "print(json.dumps({r[0]: [int(x) for x in r[1:]] for r in rows}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, env["CLICKHOUSE_DSN"]],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return {k: tuple(v) for k, v in json.loads(done.stdout.strip().splitlines()[-1]).items()}


def test_collect_runs_every_enabled_venue_into_one_stream_and_trades_live(tmp_path, nats_url, cli_stream):
    """Binance, OKX and Deribit in one `marketdata collect --consume` (ENABLE_* switches, SYMBOLS with
    venues): /status and /metrics per venue, and every trade the replays sent once subscribed is in
    trades_live exactly once, per venue (0 lost, 0 duplicated)."""
    stream_spec = cli_stream
    prefix = stream_spec.subjects[0].split(".")[0]
    env = cli_env(
        tmp_path,
        ENABLE_BINANCE="true",
        ENABLE_OKX="true",
        ENABLE_DERIBIT="true",
        SYMBOLS=",".join(f"{v}:{i}" for v, i in MULTI.items()),
    )
    stack, rest, ws = multi_venue_replays()
    with stack:
        proc, url = start(
            env,
            "collect",
            "--consume",
            "--datasets",
            "trades,books",  # one connection a venue
            "--ws-url",
            ws["BINANCE"].url,
            "--rest-url",
            rest.base_url,
            "--okx-ws-url",
            ws["OKX"].url,
            "--deribit-ws-url",
            ws["DERIBIT"].url,
            "--landing-dir",
            str(tmp_path / "landing"),
            "--nats-url",
            nats_url,
            "--stream",
            stream_spec.name,
            "--stream-max-mb",
            "64",
            "--subject-prefix",
            prefix,
            "--durable",
            "ch",
            "--metrics-port",
            "0",
            "--max-wait-s",
            "0.05",
        )
        try:
            subscribed = {
                "BINANCE": 0,
                "OKX": 2,
                "DERIBIT": 2,
            }  # acks: OKX one per channel; Deribit heartbeat + subscribe
            wait_status(
                url,
                lambda s: all(
                    s["venues"][v]["connections"] == 1 and s["venues"][v]["collector"]["acks"] >= n
                    for v, n in subscribed.items()
                ),
                "every venue connected and subscribed",
            )
            before = {v: ws[v].trade_ids(i)[1] for v, i in MULTI.items()}  # None: no trade moved yet
            for replay in ws.values():
                replay.resume()
            wait_status(
                url,
                lambda s: (
                    all(s["venues"][v]["collector"]["trades"] >= 50 for v in MULTI)
                    and s["venues"]["BINANCE"]["collector"]["snapshots"] >= 1
                ),
                "50 trades of every venue",
            )
            before = {
                v: ws[v].trade_ids(i)[0] - 1 if before[v] is None else before[v] for v, i in MULTI.items()
            }
            for replay in ws.values():
                replay.pause()
            last = {v: ws[v].trade_ids(i)[1] for v, i in MULTI.items()}

            def drained(s) -> bool:
                last.update({v: ws[v].trade_ids(i)[1] for v, i in MULTI.items()})  # a tick in flight at pause
                published = s["collector"]["published"]  # every dataset's messages; the consumer takes trades
                return (
                    published == sum(s["collector"]["messages"].values())
                    and s["collector"]["trades"] == s["consumer"]["acked"]
                    and all(s["venues"][v]["collector"]["trades"] >= last[v] - before[v] for v in MULTI)
                )

            status = wait_status(url, drained, "every trade published and consumed")
            assert set(status["venues"]) == set(MULTI) and status["connections"] == 3
            assert all(
                set(status["venues"][v]["collector"]["messages"]) == {"trades"} for v in MULTI
            )  # --datasets
            text = get(f"{url}/metrics")[1]
            for venue in MULTI:
                assert metric(text, "marketdata_live_messages_total", venue=venue, dataset="trades") >= 50
                assert metric(text, "marketdata_live_connections", venue=venue) == 1
                assert metric(text, "marketdata_live_gaps_total", venue=venue) == 0
        finally:
            counters = stop(proc)
    assert set(counters["venues"]) == set(MULTI)
    assert counters["consumer"]["insert_failures"] == 0
    stored = stored_ids(env)
    for venue in MULTI:
        rows, distinct, first, last_id = stored[venue]
        assert last_id == last[venue], venue  # nothing lost at the end
        assert first <= before[venue] + 1, venue  # every trade sent after the subscription is there
        assert rows == distinct == last_id - first + 1, venue  # contiguous, each id once


async def _delete_stream(nats_url: str, name: str) -> None:
    async with JetStreamStore(nats_url) as store:
        await store.delete_stream(name)


# Another process using the embedded ClickHouse while the collector writes it (a process may open one chDB
# data directory only, and this test's worker has the session's open): it opens the directory between
# the collector's INSERTs until every venue is in trades_live, and prints what it saw.
OTHER_USER = """
import json, sys, time
from marketdata_assets.stores.clickhouse.connection import open_client, release_directory
dsn, wanted, deadline, venues = sys.argv[1], set(sys.argv[2:]), time.monotonic() + 60, {}
while set(venues) != wanted and time.monotonic() < deadline:
    client, locked = open_client(dsn, "live_test", lock_timeout_s=30)
    try:
        if client.command("EXISTS TABLE live_test.trades_live"):
            venues = dict(client.query("SELECT venue, count() FROM live_test.trades_live FINAL GROUP BY \
venue").result_rows)
    finally:
        client.close()
        release_directory(locked)
    time.sleep(0.5)  # the collector's next INSERTs: it opens the directory for each only
print(json.dumps(venues))
"""


def other_clickhouse_user(env: dict, collector: subprocess.Popen) -> dict:
    reader = subprocess.run(
        [sys.executable, "-c", OTHER_USER, env["CLICKHOUSE_DSN"], *MULTI],
        env=env,
        cwd=str(REPO),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert collector.poll() is None, "the collector exited"
    assert reader.returncode == 0, reader.stderr[-3000:]
    return json.loads(reader.stdout.strip().splitlines()[-1])


def test_make_runs_collector_fills_landing_nats_and_trades_live_beside_other_clickhouse_users(
    tmp_path, monkeypatch, nats_url, cli_stream
):
    """apps/demo_live.py as `make run` starts it: the three venues' WebSocket replays on the crypto
    replay and `marketdata collect --consume --share-clickhouse`; while it runs, another process (here:
    this test) opens the embedded ClickHouse between its INSERTs and sees every venue in trades_live;
    it stops cleanly (exit 0, the landing files closed)."""
    from marketdata_assets.apps.demo import SOURCES, Replays
    from marketdata_assets.apps.demo_live import LIVE_VENUES
    from marketdata_assets.apps.demo_live import start as start_live

    stream_spec = cli_stream
    env = cli_env(tmp_path)
    for name in ("CLICKHOUSE_DSN", "CLICKHOUSE_DATABASE", "PYTHONPATH"):
        monkeypatch.setenv(name, env[name])
    for name in ("SYMBOLS", "ENABLE_OKX", "ENABLE_DERIBIT"):
        monkeypatch.delenv(name, raising=False)
    prefix = stream_spec.subjects[0].split(".")[0]
    landing_dir = tmp_path / "landing"
    with CryptoReplayServer(
        ReplayConfig(
            seed=9, instruments={"BINANCE": ["BTCUSDT"], "OKX": ["BTC-USDT"], "DERIBIT": ["BTC-PERPETUAL"]}
        )
    ) as rest:
        replays = Replays([s for s in SOURCES if s.name in LIVE_VENUES], servers={"crypto": rest})
        live = start_live(
            replays,
            (
                "--landing-dir",
                str(landing_dir),
                "--nats-url",
                nats_url,
                "--stream",
                stream_spec.name,
                "--stream-max-mb",
                "64",
                "--subject-prefix",
                prefix,
                "--durable",
                "demo",
                "--metrics-port",
                "off",
                "--max-wait-s",
                "0.2",
            ),
        )
        try:
            # (how the universe was resolved depends on this test process: its own embedded ClickHouse)
            assert live.process is not None and live.line.startswith(
                "live collector: BINANCE:BTCUSDT, OKX:BTC-USDT, DERIBIT:BTC-PERPETUAL ("
            ), live.line
            assert (
                "; BINANCE_UM not collected: make run collects BINANCE, OKX, DERIBIT (`marketdata collect "
                "--venue binance_um` collects it)) from the WebSocket replays -> "
            ) in live.line
            venues = other_clickhouse_user(env, live.process)
            assert set(venues) == set(MULTI), venues
        finally:
            process = live.process
            live.stop()
    assert process.returncode == 0
    others = {
        "BINANCE": {"btcusdt@bookTicker", "btcusdt@kline_1m"},
        "OKX": {"BTC-USDT@tickers", "BTC-USDT@candle1m"},
        "DERIBIT": {"ticker.BTC-PERPETUAL.100ms"},
    }  # collect takes every dataset a venue has: tickers, bars
    for venue in MULTI:
        channels = {
            path.parent.name for path in (landing_dir / venue).rglob("*.jsonl.zst")
        }  # closed at the stop
        assert others[venue] <= channels, (venue, channels)


def test_every_venues_collector_stops_within_5_s_of_sigint_with_its_files_closed(tmp_path):
    """The collector process of each venue (`python -m marketdata_assets.apps.collector`, no NATS), capturing
    from its replay, gets SIGINT: it exits 0 within 5 s, its landing files closed (no `.part` left) and
    its counters printed."""
    from marketdata_assets.replay.crypto.binance_um_ws import BinanceUmWsReplay

    venues = {
        "BINANCE": ("BTCUSDT", BinanceWsReplay),
        "BINANCE_UM": ("BTCUSDT", BinanceUmWsReplay),
        "OKX": ("BTC-USDT-SWAP", OkxWsReplay),
        "DERIBIT": ("BTC-PERPETUAL", DeribitWsReplay),
    }
    with contextlib.ExitStack() as stack:
        rest = stack.enter_context(
            CryptoReplayServer(ReplayConfig(seed=7, instruments={v: [i] for v, (i, _) in venues.items()}))
        )
        procs = {}
        for venue, (instrument, cls) in venues.items():
            ws = stack.enter_context(cls(WsConfig(tick_s=0.02), rest=rest))
            procs[venue] = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "marketdata_assets.apps.collector",
                    "--venue",
                    venue,
                    "--instruments",
                    instrument,
                    "--ws-url",
                    ws.url,
                    "--rest-url",
                    rest.base_url,
                    "--no-nats",
                    "--landing-dir",
                    str(tmp_path / venue),
                ],
                env=cli_env(tmp_path),
                cwd=str(REPO),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        deadline = time.monotonic() + WAIT_S
        while not all(
            list((tmp_path / v).rglob("*@*/*.part")) for v in venues
        ):  # every venue is landing frames
            assert time.monotonic() < deadline and all(p.poll() is None for p in procs.values()), {
                v: p.poll() for v, p in procs.items()
            }
            time.sleep(0.1)
        sent = time.monotonic()
        for proc in procs.values():
            proc.send_signal(signal.SIGINT)
        took = {}
        for venue, proc in procs.items():
            out, err = proc.communicate(timeout=30)
            took[venue] = time.monotonic() - sent
            assert proc.returncode == 0, (venue, err[-2000:])
            assert json.loads(out.strip().splitlines()[-1])["frames"] > 0, venue
    assert all(seconds < 5.0 for seconds in took.values()), took
    assert not list(tmp_path.rglob("*.part")), "a landing file left open"
    assert all(list((tmp_path / v).rglob("*.jsonl.zst")) for v in venues)


@pytest.mark.parametrize("listed", ["BINANCE:../../x", "OKX:BTC-USDT/../..", "DERIBIT:", "BINANCE:BTC USDT"])
def test_an_instrument_that_is_no_name_is_refused_before_any_connection(listed):
    """`--instruments` names become stream names, landing file names and partition keys: one that is no
    instrument name is a usage error naming it (exit 2), before anything connects."""
    from click.testing import CliRunner

    from marketdata_assets.apps.cli import cli

    result = CliRunner().invoke(
        cli, ["collect", "--instruments", listed, "--no-nats", "--ws-url", "ws://127.0.0.1:9"]
    )
    assert result.exit_code == 2, result.output
    assert repr(listed) in result.output and "invalid instrument" in result.output, result.output
