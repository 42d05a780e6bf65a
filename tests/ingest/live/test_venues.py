"""OKX and Deribit through the venue-neutral collector (ingest/live/collect/collector.py), against their
WebSocket replays (replay/crypto/okx_ws.py, deribit_ws.py) and the stack's real nats-server: books
equal the replay's truth, a wrong checksum or a sequence break is one gap and one resubscribe, a
disconnect or a stall is marked and resumed, trades reach `md.trades.<VENUE>.<instrument>` once each
with the venue-native id, the venues' keepalives hold. Waits are on the collector's counters."""

from __future__ import annotations

import asyncio
import contextlib
import json
import zlib

import pytest

from marketdata_assets.ingest.live.collect.collector import CollectorConfig
from marketdata_assets.replay.crypto import CryptoReplayServer, ReplayConfig
from marketdata_assets.replay.crypto.binance_ws import WsConfig
from marketdata_assets.replay.crypto.deribit_ws import DeribitWsReplay
from marketdata_assets.replay.crypto.okx_ws import OkxWsReplay
from marketdata_assets.sources.deribit.stream import DeribitStream
from marketdata_assets.sources.okx.stream import OkxStream
from marketdata_assets.sources.stream import BOOKS, TRADES
from marketdata_assets.stores.jetstream import JetStreamStore
from marketdata_assets.stores.landing import LandingWriter, closed_files, read_file
from tests.support.live import books_match_at_rest, collecting, stream_trades

WAIT_S = 15
VENUES = {
    "OKX": (OkxWsReplay, OkxStream, ["BTC-USDT", "ETH-USDT"], "{}@books", "{}@trades"),
    "DERIBIT": (
        DeribitWsReplay,
        DeribitStream,
        ["BTC-PERPETUAL", "ETH-PERPETUAL"],
        "book.{}.100ms",
        "trades.{}.100ms",
    ),
}


def replays(venue: str, ws_config: WsConfig | None = None, seed: int = 5):
    replay_class, _, instruments, _, _ = VENUES[venue]
    stack = contextlib.ExitStack()
    rest = stack.enter_context(
        CryptoReplayServer(ReplayConfig(seed=seed, instruments={venue: list(instruments)}))
    )
    ws = stack.enter_context(replay_class(ws_config or WsConfig(tick_s=0.02), rest=rest))
    return stack, ws


def config_for(venue: str, ws, **overrides) -> CollectorConfig:
    return CollectorConfig(
        list(VENUES[venue][2]),
        ws.url,
        **{"rest_url": None, "backoff_base_s": 0.05, "stale_s": 5.0, **overrides},
    )


def records(root, venue: str, channel: str) -> list[dict]:
    return [r for path in closed_files(root, venue, channel) for r in read_file(path)]


def book_channel(venue: str, instrument: str) -> str:
    return VENUES[venue][3].format(instrument)


async def books_at_rest(collector, ws, instruments: list[str]) -> None:
    await books_match_at_rest(collector, ws, instruments, WAIT_S)


def run(venue: str, ws, scenario_body, tmp_path, nats_url=None, spec=None, **overrides):
    """Run `scenario_body(collector, store)` against a collector of `venue`; its stats (and store result)."""

    async def scenario():
        prefix = {"subject_prefix": spec.subjects[0].split(".")[0]} if spec is not None else {}
        config = config_for(venue, ws, **prefix, **overrides)
        async with collecting(
            config,
            LandingWriter(tmp_path, venue),
            nats_url,
            spec,
            protocol=VENUES[venue][1](datasets=("trades", "books")),
        ) as (c, store):
            result = await scenario_body(c, store)
        return c.stats, result

    return asyncio.run(scenario())


@pytest.mark.parametrize("venue", list(VENUES))
def test_books_match_and_trades_are_published_with_venue_ids(venue, tmp_path, nats_url, stream_spec):
    stack, ws = replays(venue, WsConfig(tick_s=0.02, record=True))
    instruments = VENUES[venue][2]
    with stack:

        async def body(c, store):
            await c.stats.wait_until(lambda s: s.snapshots == 2 and s.published >= 100, WAIT_S)
            await books_at_rest(c, ws, instruments)
            ws.pause()
            await c.stats.wait_until(
                lambda s: not c.publisher.trade_frames and not c.publisher.outbox and s.published == s.trades,
                WAIT_S,
            )
            trades = (
                f"{stream_spec.subjects[0].split('.')[0]}.trades.>"  # the stream holds book snapshots too
            )
            first = await store.js.get_msg(stream_spec.name, 1, subject=trades, next=True)
            return await stream_trades(store, stream_spec.name, trades), first

        stats, (stored, first) = run(venue, ws, body, tmp_path, nats_url, stream_spec)
    assert stats.gaps == 0 and stats.bad_frames == {} and len(stored) == stats.published == stats.trades
    prefix = stream_spec.subjects[0].split(".")[0]
    batch = json.loads(
        first.data
    )  # one instrument's trades of 50 ms, the id made from the first, last and content
    assert first.subject == f"{prefix}.trades.{venue}.{batch[0]['instrument']}"
    assert {t["instrument"] for t in batch} == {batch[0]["instrument"]}
    assert first.headers["Nats-Msg-Id"] == (
        f"{venue}.{batch[0]['instrument']}.{batch[0]['trade_id']}~"
        f"{batch[-1]['trade_id']}.{len(batch)}.{zlib.crc32(first.data):08x}"
    )
    snapshot = [
        r for r in records(tmp_path, venue, book_channel(venue, instruments[0])) if r.get("m") == "snapshot"
    ]
    assert len(snapshot) == 1


def test_a_wrong_okx_checksum_is_one_gap_and_one_resubscribe(tmp_path):
    stack, ws = replays("OKX")
    with stack:
        ws.add_fault(kind="wrong_checksum", instrument="BTC-USDT", after=25)

        async def body(c, _):
            await c.stats.wait_until(lambda s: s.gaps == 1 and s.snapshots == 3, WAIT_S)
            await books_at_rest(c, ws, VENUES["OKX"][2])

        stats, _ = run("OKX", ws, body, tmp_path)
    assert stats.gaps == stats.checksum_mismatches == stats.resubscribes == 1 and stats.snapshots == 3
    marks = [
        r
        for r in records(tmp_path, "OKX", "BTC-USDT@books")
        if r.get("m") in ("gap", "resubscribe", "resync")
    ]
    assert [r["m"] for r in marks] == ["gap", "resubscribe", "resync"]
    assert marks[0]["x"]["cause"] == "checksum"
    assert marks[0]["x"]["got_checksum"] == marks[0]["x"]["expected_checksum"] - 1
    assert not [r for r in records(tmp_path, "OKX", "ETH-USDT@books") if r.get("m") == "gap"]


@pytest.mark.parametrize("venue", list(VENUES))
def test_a_sequence_break_is_one_gap_and_one_resubscribe(venue, tmp_path):
    stack, ws = replays(venue)
    instrument = VENUES[venue][2][0]
    with stack:
        ws.add_fault(kind="skip_sequence", instrument=instrument, after=25)

        async def body(c, _):
            await c.stats.wait_until(lambda s: s.gaps == 1 and s.snapshots == 3, WAIT_S)
            await books_at_rest(c, ws, VENUES[venue][2])  # right again after the resubscribe

        stats, _ = run(venue, ws, body, tmp_path)
    assert stats.gaps == stats.resubscribes == 1 and stats.checksum_mismatches == 0 and stats.snapshots == 3
    marks = [
        r
        for r in records(tmp_path, venue, book_channel(venue, instrument))
        if r.get("m") in ("snapshot", "gap", "resubscribe", "resync")
    ]
    assert [r["m"] for r in marks] == ["snapshot", "gap", "resubscribe", "resync"]
    gap = marks[1]["x"]
    assert gap["cause"] == "sequence" and gap["got_prev"] == gap["expected_prev"] + 1  # one update id missing


@pytest.mark.parametrize("venue", list(VENUES))
def test_a_disconnect_is_marked_and_resumed(venue, tmp_path):
    stack, ws = replays(venue)
    with stack:
        ws.add_fault(kind="disconnect", after=40)

        async def body(c, _):
            await c.stats.wait_until(
                lambda s: s.connects == 2 and s.snapshots == 4 and s.trades >= 200, WAIT_S
            )
            await books_at_rest(c, ws, VENUES[venue][2])

        stats, _ = run(venue, ws, body, tmp_path)
    assert stats.disconnects.get("dropped") == 1 and stats.gaps == 0
    kinds = [
        r["m"]
        for r in records(tmp_path, venue, book_channel(venue, VENUES[venue][2][1]))
        if r.get("m") not in (None, "subscribe")
    ]
    # the lost connection's book is dropped (a gap, cause disconnect) and rebuilt from the reconnect's fresh
    # snapshot
    assert kinds[:6] == ["connect", "snapshot", "disconnect", "gap", "connect", "resync"]
    gap = next(
        r for r in records(tmp_path, venue, book_channel(venue, VENUES[venue][2][1])) if r.get("m") == "gap"
    )
    assert gap["x"]["cause"] == "disconnect" and stats.book_resets == len(VENUES[venue][2])


@pytest.mark.parametrize("venue", list(VENUES))
def test_trades_over_overlapping_connections_are_stored_once(venue, tmp_path, nats_url, stream_spec):
    """Rollovers every 0.5 s: each successor carries data on every channel before its predecessor
    is closed, so overlaps deliver trades twice; the stream stores each once and the collector's
    counters agree with it exactly; the stream holds every trade (the overlap's twice, in each
    connection's batches: `trades_live`'s key keeps one). Counted after the collector stopped (its
    queue landed, its buffer published), when nothing is in flight."""
    stack, ws = replays(venue)
    prefix = stream_spec.subjects[0].split(".")[0]
    with stack:

        async def scenario():
            config = config_for(venue, ws, subject_prefix=prefix, rollover_s=0.5)
            protocol = VENUES[venue][1](datasets=(TRADES, BOOKS))  # the stream's messages: trades only
            async with collecting(
                config,
                LandingWriter(tmp_path, venue),
                nats_url,
                stream_spec,
                protocol=protocol,
                keep_stream=True,
            ) as (c, _):
                await c.stats.wait_until(lambda s: s.rollovers >= 2, WAIT_S)
            async with JetStreamStore(nats_url) as store:
                stored = await stream_trades(store, stream_spec.name, f"{prefix}.trades.>")
                await store.delete_stream(stream_spec.name)
            return c, stored

        c, stored = asyncio.run(scenario())
    stats, trades = c.stats, VENUES[venue][4]
    unique = {
        (name, json.dumps(t, sort_keys=True))
        for name in VENUES[venue][2]
        for r in records(tmp_path, venue, trades.format(name))
        if "d" in r
        for t in (json.loads(r["d"]).get("data") if venue == "OKX" else json.loads(r["d"])["params"]["data"])
    }
    assert (
        not c.publisher.outbox
        and stats.publish_dropped == 0
        and stats.published + stats.duplicates == stats.trades
    )
    assert stats.trades > len(unique)  # the overlaps delivered some trades twice (both landed raw)
    # the stream holds every trade the collector parsed, and the counters say so
    assert len(stored) == stats.published == stats.trades, (len(stored), stats.published, stats)
    assert {(t["instrument"], t["trade_id"]) for t in stored} == {
        (name, str(json.loads(t)["tradeId" if venue == "OKX" else "trade_id"])) for name, t in unique
    }
    assert stats.gaps == 0
    for channel in (VENUES[venue][3], trades):  # make before break, on every channel the connection carries
        for name in VENUES[venue][2]:
            assert_successor_delivered_first(records(tmp_path, venue, channel.format(name)))


def assert_successor_delivered_first(channel_records: list[dict]) -> None:
    """Each connection closed by a rollover was closed only after its successor delivered a frame on
    this channel (the landing's receive times)."""
    first_frame: dict[str, int] = {}
    for r in channel_records:
        if "d" in r:
            first_frame.setdefault(r["c"], r["t"])
    number = {conn: int(conn.rsplit("-", 1)[1]) for conn in {r["c"] for r in channel_records}}
    cuts = [r for r in channel_records if r.get("m") == "disconnect" and r["x"]["reason"] == "rollover"]
    assert cuts
    for cut in cuts:
        successors = [t for conn, t in first_frame.items() if number[conn] > number[cut["c"]]]
        assert successors and min(successors) <= cut["t"], (cut, first_frame)


@pytest.mark.parametrize("venue", list(VENUES))
def test_a_stall_is_detected_and_the_books_resubscribed(venue, tmp_path):
    stack, ws = replays(venue)
    with stack:
        ws.add_fault(kind="stall", after=30)

        async def body(c, _):
            await c.stats.wait_until(lambda s: s.stale == 1 and s.connects == 2 and s.snapshots == 4, WAIT_S)
            await books_at_rest(c, ws, VENUES[venue][2])

        stats, _ = run(venue, ws, body, tmp_path, stale_s=1.0)
    assert stats.disconnects.get("stale") == 1


@pytest.mark.parametrize("venue", list(VENUES))
def test_a_refused_subscribe_is_marked_and_retried(venue, tmp_path):
    stack, ws = replays(venue)
    with stack:
        ws.add_fault(kind="subscribe_error")  # the first subscribe request is refused

        async def body(c, _):
            await c.stats.wait_until(
                lambda s: s.subscribe_errors == 1 and s.snapshots == 2 and s.trades >= 50, WAIT_S
            )

        stats, _ = run(venue, ws, body, tmp_path)
    assert stats.subscribe_errors == 1 and stats.connects == 1
    assert [r.get("m") for r in records(tmp_path, venue, "_control") if "m" in r] == ["subscribe_error"]


@pytest.mark.parametrize("venue", list(VENUES))
def test_a_refused_resubscribe_is_retried(venue, tmp_path):
    """The book's resubscription after a break is refused once: sent again, the book comes back."""
    stack, ws = replays(venue)
    with stack:
        ws.add_fault(kind="skip_sequence", instrument=VENUES[venue][2][0], after=25)
        ws.add_fault(kind="subscribe_error", after=1)  # the first subscribe passes, the next is refused

        async def body(c, _):
            await c.stats.wait_until(
                lambda s: s.gaps == 1 and s.subscribe_errors == 1 and s.snapshots == 3, WAIT_S
            )
            await books_at_rest(c, ws, VENUES[venue][2])

        stats, _ = run(venue, ws, body, tmp_path)
    assert stats.resubscribes == 1 and stats.connects == 1


def test_okx_keepalive_holds_a_quiet_connection(tmp_path):
    """The market stands still: no data for longer than OKX's idle limit and our stale deadline, yet
    the "ping"s (at half the stale deadline) keep the connection, and their "pong"s keep it fresh.
    The margins (a pong within 0.8 s of its ping, a ping 1.2 s before the venue's idle close) hold on
    a loaded 2-core host, where 0.2 s did not."""
    stack, ws = replays("OKX", WsConfig(tick_s=0.02, idle_s=2.0))
    with stack:

        async def body(c, _):
            await c.stats.wait_until(lambda s: s.snapshots == 2, WAIT_S)
            ws.pause()
            await c.stats.wait_until(lambda s: s.pings >= 3 and ws.counts["pings"] >= 3, WAIT_S)

        stats, _ = run("OKX", ws, body, tmp_path, stale_s=1.6)
    assert stats.connects == 1 and stats.stale == 0 and ws.counts["idle_closes"] == 0
    assert set(stats.disconnects) <= {"stop"}


def test_okx_closes_a_quiet_connection_without_keepalive(tmp_path):
    stack, ws = replays("OKX", WsConfig(tick_s=0.02, idle_s=0.3))
    with stack:

        async def body(c, _):
            await c.stats.wait_until(lambda s: s.snapshots == 2, WAIT_S)
            ws.pause()
            await c.stats.wait_until(lambda s: s.disconnects.get("closed", 0) >= 1, WAIT_S)

        run("OKX", ws, body, tmp_path, keepalive_s=60.0)
    assert ws.counts["idle_closes"] >= 1


def test_deribit_test_requests_are_answered(tmp_path):
    stack, ws = replays("DERIBIT", WsConfig(tick_s=0.02, heartbeat_s=0.3))
    with stack:

        async def body(c, _):
            await c.stats.wait_until(lambda s: s.replies >= 5 and ws.counts["test_requests"] >= 6, WAIT_S)

        stats, _ = run("DERIBIT", ws, body, tmp_path)
    assert stats.connects == 1 and ws.counts["heartbeat_closes"] == 0 and set(stats.disconnects) <= {"stop"}


THIRD = {"OKX": "BTC-USDT-SWAP", "DERIBIT": "BTC_USDC-PERPETUAL"}


@pytest.mark.parametrize("venue", list(VENUES))
def test_a_re_resolved_universe_changes_the_subscriptions_without_a_restart(venue, tmp_path):
    """Three channels a connection: A and B's trades and books fill one and a half. The universe becomes
    B and C: A's channels are unsubscribed, C's take the room on the first connection (no new one);
    then C alone: B's book left alone on the second connection, which is closed (`unsubscribed`). The
    venue's replay holds exactly the channels of the universe, and the books match its truth."""
    a, b = VENUES[venue][2]
    c_name = THIRD[venue]
    stack = contextlib.ExitStack()
    rest = stack.enter_context(CryptoReplayServer(ReplayConfig(seed=5, instruments={venue: [a, b, c_name]})))
    ws = stack.enter_context(VENUES[venue][0](WsConfig(tick_s=0.02), rest=rest))
    channels = [VENUES[venue][k].format(name) for name in (a, b, c_name) for k in (4, 3)]

    def held():
        return sorted(s for client in ws.clients.values() for s in client.streams)

    with stack:

        async def body(c, _):
            await c.stats.wait_until(lambda s: s.snapshots == 2, WAIT_S)
            first = await c.set_instruments([b, c_name])
            await c.stats.wait_until(lambda s: s.snapshots == 3 and not c.conns.requests.pending, WAIT_S)
            await books_at_rest(c, ws, [b, c_name])
            middle = held(), c.stats.connects
            second = await c.set_instruments([c_name])
            await c.stats.wait_until(
                lambda s: s.disconnects.get("unsubscribed") == 1 and not c.conns.requests.pending, WAIT_S
            )
            await books_at_rest(c, ws, [c_name])
            return first, second, middle, held()

        # C's sizes from the venue's reference data (its REST replay): a swap's trades need its contract value
        stats, (first, second, middle, last) = run(
            venue, ws, body, tmp_path, max_streams=3, rest_url=rest.base_url
        )
    assert first == {"added": 1, "removed": 1, "subscribed": 2, "unsubscribed": 2}
    assert second == {"added": 0, "removed": 1, "subscribed": 0, "unsubscribed": 2}
    assert middle == (sorted(channels[2:]), 2)  # C's channels in the first connection's room: no third one
    assert last == sorted(channels[4:])
    assert stats.connects == 2 and stats.universe_changes == 2 and stats.subscribe_errors == 0
    assert stats.bad_frames == {} and stats.gaps == 0
    marks = [r["x"] for r in records(tmp_path, venue, "_control") if r.get("m") == "universe"]
    assert [m["instruments"] for m in marks] == [2, 1]
