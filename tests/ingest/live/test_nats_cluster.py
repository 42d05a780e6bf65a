"""A NATS cluster that loses nothing: three real nats-servers (JetStream, the stream at three replicas),
`marketdata collect` given all three, two consumers on the one durable. The node leading the stream (and
the durable, and serving the collector) is SIGKILLed mid-stream: trades_live and the hourly load still
hold every trade the replay sent, each once."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import threading
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import orjson

from marketdata_assets.ingest.live.consume.consumer import ConsumerConfig, TradesConsumer
from marketdata_assets.replay.crypto.binance_ws import WsConfig
from marketdata_assets.stores.clickhouse import live
from marketdata_assets.stores.clickhouse import tables as ct
from marketdata_assets.stores.jetstream import JetStreamStore, StreamSpec
from tests.apps.cli.test_collect_cli import cli_env, get, start, stop
from tests.conftest import free_port
from tests.support.live import INSTRUMENTS, replays

WAIT_S = 45
SPEC = StreamSpec(
    max_bytes=64 << 20, replicas=3
)  # what `collect --stream-max-mb 64` with NATS_STREAM_REPLICAS=3 asks
CONSUMER = ConsumerConfig(
    batch_size=200, max_wait_s=0.05, idle_poll_s=0.5, ack_wait_s=5.0, retry_base_s=0.05, retry_cap_s=0.5
)  # the durable `trades-clickhouse`; a lost delivery comes back in 5 s


class Cluster:
    """Three `nats-server -js` nodes routed to each other on loopback (free ports, store dirs under
    `root`)."""

    NAMES = ("n1", "n2", "n3")

    def __init__(self, root: Path):
        ports: set[int] = set()
        while len(ports) < 3 * len(self.NAMES):  # clients', routes', monitoring's: nine distinct ports
            ports.add(free_port())
        free = iter(ports)
        self.client_port, self.route_port, self.http_port = (
            {name: next(free) for name in self.NAMES} for _ in "crh"
        )
        self.root, self.procs = root, {}
        self.url = ",".join(f"nats://127.0.0.1:{self.client_port[n]}" for n in self.NAMES)

    def config(self, name: str) -> Path:
        routes = ", ".join(f"nats-route://127.0.0.1:{self.route_port[n]}" for n in self.NAMES if n != name)
        path = self.root / f"{name}.conf"
        path.write_text(
            f"server_name: {name}\nlisten: 127.0.0.1:{self.client_port[name]}\n"
            f"http: 127.0.0.1:{self.http_port[name]}\n"
            f'jetstream {{ store_dir: "{self.root / name}" }}\n'
            f"cluster {{ name: md-test, listen: 127.0.0.1:{self.route_port[name]}, routes: [{routes}] }}\n"
        )
        return path

    def start(self) -> None:
        for name in self.NAMES:
            log = open(self.root / f"{name}.log", "wb")  # noqa: SIM115  (the server's; read on a failure)
            self.procs[name] = subprocess.Popen(
                ["nats-server", "-c", str(self.config(name))], stdout=log, stderr=log
            )
            log.close()

    def serving(self, client: str) -> str | None:
        """The node the client named `client` is connected to (its /connz), if any."""
        for name, port in self.http_port.items():
            if self.procs[name].poll() is None:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/connz", timeout=5) as answer:
                    if any(c.get("name") == client for c in json.load(answer).get("connections") or []):
                        return name
        return None

    def kill(self, name: str) -> int:
        self.procs[name].kill()
        return self.procs[name].wait(WAIT_S)

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


class Table:
    """The test's ClickHouse client, shared by both consumers and the test's reads (one at a time)."""

    def __init__(self, client, database: str):
        self.client, self.database, self.lock = client, database, threading.Lock()

    def insert(self, rows) -> int:
        with self.lock:
            return live.insert_live_trades(self.client, self.database, rows)

    def query(self, sql: str) -> list[tuple]:
        with self.lock:
            return self.client.query(sql.format(t=f"`{self.database}`.{live.TRADES_LIVE}")).result_rows


async def until(condition, what: str, timeout_s: float = WAIT_S):
    """Poll an async `condition` until it returns something true; its value."""
    deadline, error = time.monotonic() + timeout_s, None
    while True:
        try:
            if value := await condition():
                return value
        except Exception as failed:  # noqa: BLE001  (a request the cluster timed out while electing a leader)
            error = failed
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s} s (last error: {error!r})"
        await asyncio.sleep(0.25)


async def stream_ready(store: JetStreamStore):
    """The stream made (once the cluster has a meta leader) with its leader and two current replicas."""

    async def made():
        await asyncio.wait_for(store.ensure_stream(SPEC), 5)
        info = await store.js.stream_info(SPEC.name)
        peers = info.cluster.replicas or []
        return info if info.cluster.leader and len(peers) == 2 and all(p.current for p in peers) else None

    return await until(made, "a replicated stream")


async def status(url: str, condition, what: str) -> dict:
    """The collector's /status once `condition(status)` holds (polled from a thread: the loop runs the
    consumers)."""

    async def check():
        current = json.loads((await asyncio.to_thread(get, f"{url}/status"))[1])
        return current if condition(current) else None

    return await until(check, what)


def sent_ids(ws, before: dict) -> set[tuple[str, str]]:
    """(instrument, trade id) of every trade the replay sent since it was resumed (ids are contiguous)."""
    out = set()
    for name in INSTRUMENTS:
        first, last = ws.trade_ids(name)
        lo = first if before[name] is None else before[name] + 1
        out |= {(name, str(t)) for t in range(lo, (last or lo - 1) + 1)}
    return out


async def collect_through_a_kill(
    cluster: Cluster, admin: JetStreamStore, ws, rest, root: Path, tmp_path: Path
) -> dict:
    """`marketdata collect` publishing to the three nodes; the stream's leader killed mid-stream, the
    market going on until the collector has published well past the kill; then every trade sent."""
    env = cli_env(tmp_path, NATS_STREAM_REPLICAS="3")
    args = (
        "collect",
        "--venue",
        "binance",
        "--instruments",
        ",".join(INSTRUMENTS),
        "--datasets",
        "trades",
        "--ws-url",
        ws.url,
        "--rest-url",
        rest.base_url,
        "--landing-dir",
        str(root),
        "--nats-url",
        cluster.url,
        "--stream-max-mb",
        "64",
        "--metrics-port",
        "0",
    )
    proc, url = await asyncio.to_thread(start, env, *args)
    try:
        await status(url, lambda s: s["connections"] == 1, "the collector subscribed")
        home = await until(
            lambda: asyncio.to_thread(cluster.serving, "marketdata-collect"), "the collector's node"
        )
        await lead_on(admin, home)
        before = {name: ws.trade_ids(name)[1] for name in INSTRUMENTS}
        ws.resume()
        at_kill = await status(url, lambda s: s["collector"]["published"] >= 300, "300 trades published")
        leader = (
            await admin.js.stream_info(SPEC.name)
        ).cluster.leader  # `home`, unless a re-election moved it
        durable_leader = (await admin.js.consumer_info(SPEC.name, CONSUMER.durable)).cluster.leader
        exit_code = cluster.kill(leader)
        published = at_kill["collector"]["published"]
        await status(
            url, lambda s: s["collector"]["published"] >= published + 500, "500 more published after the kill"
        )
        ws.pause()
        sent = sent_ids(ws, before)

        def drained(s) -> bool:
            sent.update(sent_ids(ws, before))  # a tick in flight at the pause
            c = s["collector"]
            return c["trades"] == len(sent) and c["published"] + c["duplicates"] == c["trades"]

        await status(url, drained, "every trade sent published")
        counters = await asyncio.to_thread(stop, proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)
    new_leader = await until(lambda: _leader(admin, leader), "a new stream leader")
    return {
        "counters": counters["collector"],
        "sent": sent,
        "killed": leader,
        "exit_code": exit_code,
        "new_leader": new_leader,
        "published_at_kill": published,
        "collector_node": home,
        "durable_leader": durable_leader,
    }


async def lead_on(admin: JetStreamStore, node: str) -> None:
    """Step the stream's and the durable's leaders down until `node` leads both (2.9's stepdown cannot
    name the successor): killing the stream's leader then takes the collector's server and the
    durable's leader with it."""
    groups = (
        (f"STREAM.LEADER.STEPDOWN.{SPEC.name}", lambda: admin.js.stream_info(SPEC.name)),
        (
            f"CONSUMER.LEADER.STEPDOWN.{SPEC.name}.{CONSUMER.durable}",
            lambda: admin.js.consumer_info(SPEC.name, CONSUMER.durable),
        ),
    )
    for subject, info in groups:

        async def there(subject=subject, info=info) -> bool:
            leader = (await info()).cluster.leader
            if leader and leader != node:
                await admin.nc.request(f"$JS.API.{subject}", b"", timeout=2)
            return leader == node

        await until(there, f"{node} leading {subject}")


async def _leader(admin: JetStreamStore, not_this: str) -> str | None:
    leader = (await admin.js.stream_info(SPEC.name)).cluster.leader
    return leader if leader and leader != not_this else None


async def consumed(admin: JetStreamStore, table: Table, expected: int) -> None:
    """Wait until trades_live holds `expected` distinct trades and the durable has nothing left to
    deliver or awaiting its ack."""

    async def done() -> bool:
        (rows,) = await asyncio.to_thread(table.query, "SELECT count() FROM {t} FINAL")
        info = await admin.js.consumer_info(SPEC.name, CONSUMER.durable)
        return rows[0] == expected and info.num_pending == info.num_ack_pending == 0

    await until(done, f"{expected} trades in trades_live, nothing pending")


async def stream_held(admin: JetStreamStore) -> list[tuple[str, str]]:
    """(instrument, trade id) of every trade in the stream's messages, read one by one from its leader
    (no consumer: an ephemeral one may be placed on the dead node)."""
    state, held = (await admin.js.stream_info(SPEC.name)).state, []
    for seq in range(state.first_seq, state.last_seq + 1):
        message = await admin.js.get_msg(SPEC.name, seq)
        held += [(t["instrument"], str(t["trade_id"])) for t in orjson.loads(message.data)]
    return held


async def subscribed(consumer: TradesConsumer) -> bool:
    """Bound to the durable (a request the cluster may time out while it places the durable: asked again)."""
    await consumer.subscribe()
    return True


async def scenario(cluster: Cluster, ws, rest, root: Path, tmp_path: Path, table: Table) -> dict:
    async with JetStreamStore(cluster.url, name="test-admin", ack_timeout_s=10) as admin:
        await stream_ready(admin)
        stores = [
            await JetStreamStore(cluster.url, name=f"consumer-{i}", ack_timeout_s=10).connect()
            for i in (1, 2)
        ]
        consumers = [TradesConsumer(CONSUMER, store, table.insert) for store in stores]
        for consumer in consumers:  # the one durable: created by the first, bound to by the second
            await until(lambda consumer=consumer: subscribed(consumer), "the consumer subscribed")
        halt = asyncio.Event()
        tasks = [asyncio.create_task(consumer.run(halt)) for consumer in consumers]
        try:
            run = await collect_through_a_kill(cluster, admin, ws, rest, root, tmp_path)
            await consumed(admin, table, len(run["sent"]))
        finally:
            halt.set()
            await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), WAIT_S)
            for store in stores:
                await store.close()
        info = await admin.js.stream_info(SPEC.name)
        run["replicas"], run["durables"] = info.config.num_replicas, info.state.consumer_count
        run["in_stream"] = await until(lambda: stream_held(admin), "the stream read")
    run["consumers"] = [consumer.counters() for consumer in consumers]
    return run


def hourly_load(clickhouse, ws, sent: set[tuple[str, str]]) -> tuple[set[tuple[str, str]], dict]:
    """`live_trades` and its checks over every (hour, instrument) the sent trades fall in, from the
    landing files; (the trades the load stored, the checks' verdicts by partition)."""
    from marketdata_assets.defs.live.assets import live_trades
    from marketdata_assets.defs.live.checks import live_checks

    moments = {
        name: [ws.instruments[name].emitted[int(t)][0] for n, t in sent if n == name] for name in INSTRUMENTS
    }
    hours: dict[
        str, list[str]
    ] = {}  # each hour's instruments, loaded together: the hour's checks judge them all
    for name, ms in moments.items():
        for hour in {f"{datetime.fromtimestamp(m / 1000, UTC):%Y-%m-%d-%H}:00" for m in ms}:
            hours.setdefault(hour, []).append(f"BINANCE:{name}")
    verdicts, stored = {}, set()
    with dg.DagsterInstance.ephemeral() as instance:  # in memory: no commit per event
        for hour, names in sorted(hours.items()):
            result = dg.materialize(
                [live_trades, *live_checks],
                resources={"clickhouse": clickhouse},
                instance=instance,
                partition_key=hour,
                raise_on_error=False,
                run_config={"ops": {"live_trades": {"config": {"instruments": sorted(names)}}}},
            )
            assert result.success, [e.message for e in result.all_events if e.is_failure]
            verdicts[hour] = {
                e.event_specific_data.asset_check_key.name: e.event_specific_data.passed
                for e in result.all_events
                if e.event_type_value == "ASSET_CHECK_EVALUATION"
            }
    with clickhouse.get_client() as client:
        for name, ms in moments.items():
            day = datetime.fromtimestamp(min(ms) / 1000, UTC).date()
            frame = ct.read_range(
                client, clickhouse.database, "trades", "BINANCE", name, day, day + timedelta(days=2)
            )
            stored |= {(name, t) for t in frame["trade_id"].to_list()}
    return stored, verdicts


def test_a_killed_stream_leader_loses_and_duplicates_no_trade(root, tmp_path, clickhouse):
    cluster = Cluster(tmp_path)
    stack, rest, ws = replays(WsConfig(tick_s=0.02))
    with stack, contextlib.ExitStack() as cleanup:
        ws.pause()  # the market moves once the collector is subscribed: "sent" is what it was sent
        cleanup.callback(cluster.close)
        cluster.start()
        with clickhouse.get_client() as client:
            live.ensure_live_tables(client, clickhouse.database)
            table = Table(client, clickhouse.database)
            run = asyncio.run(scenario(cluster, ws, rest, root, tmp_path, table))
            ((rows, distinct, final),) = table.query(
                "SELECT count(), uniqExact(instrument, trade_id), (SELECT count() FROM {t} FINAL) FROM {t}"
            )
            in_live = {(i, t) for i, t in table.query("SELECT instrument, trade_id FROM {t} FINAL")}
        loaded, verdicts = hourly_load(clickhouse, ws, run["sent"])
    sent, counters, consumers = run["sent"], run["counters"], run["consumers"]
    print(
        f"killed {run['killed']} (collector's node {run['collector_node']}, durable's leader "
        f"{run['durable_leader']}; stream leader after: {run['new_leader']}) "
        f"at {run['published_at_kill']} published; "
        f"sent {len(sent)}; collector failures {counters['publish_failures']} "
        f"duplicates {counters['duplicates']}; "
        f"consumers {[(c['acked'], c['redelivered']) for c in consumers]}; trades_live rows {rows}"
    )
    assert run["exit_code"] == -9 and run["new_leader"] != run["killed"] and run["replicas"] == 3
    assert len(sent) >= 800 and counters["publish_dropped"] == 0
    assert sorted(run["in_stream"]) == sorted(sent)  # the stream holds each trade once, none missing
    assert run["durables"] == 1 and all(c["acked"] > 0 for c in consumers)  # two consumers shared the durable
    assert final == distinct == len(sent) and in_live == sent  # trades_live: every trade, once
    assert loaded == sent  # the hourly load of the landing: the same trades
    assert verdicts and all(all(v.values()) for v in verdicts.values()), (
        verdicts
    )  # live_matches_hourly among them
    assert all("live_matches_hourly" in v for v in verdicts.values())
