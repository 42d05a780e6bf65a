"""The collector's parts on their own, without a venue or a server: where a batch's markers land
(batch_landing.py), the requests and their ids (slots.py `Requests`), the slots' channels changing
(slots.py `ConnectionSlots`), the trade batches' seal (publishing.py `Publisher`)."""

from __future__ import annotations

import asyncio
import dataclasses
import json

import pytest

from marketdata_assets.ingest.live.collect.batch_landing import OVERFLOW_MARK_EVERY_NS, BatchLanding
from marketdata_assets.ingest.live.collect.collector import CollectorConfig
from marketdata_assets.ingest.live.collect.connection import Connection, FrameQueue, Pacer, cancel_until_done
from marketdata_assets.ingest.live.collect.publishing import Publisher
from marketdata_assets.ingest.live.collect.slots import ConnectionSlots, Setup, fill_slots
from marketdata_assets.ingest.live.stats import Stats
from marketdata_assets.sources.binance.stream import BinanceSpotStream
from marketdata_assets.stores.landing import CONTROL_CHANNEL, LandingWriter, closed_files, read_file

T0 = 1_767_225_600_000_000_000  # 2026-01-01 00:00 UTC, in ns


def markers(root, channel: str) -> list[dict]:
    return [r for path in closed_files(root, "BINANCE", channel) for r in read_file(path) if "m" in r]


def test_overflow_markers_land_in_the_control_channel_each_and_in_the_channels_once_a_second(tmp_path):
    """A connection of 300 channels, 50 overflow markers within 0.25 s, then one 1.2 s after the first:
    the control channel holds all 51 (their counts add up to every drop), each channel 2; a connect
    marker goes into every channel, as before."""
    channels = [f"s{k}usdt@trade" for k in range(300)]
    writer, stats = LandingWriter(tmp_path, "BINANCE"), Stats()
    landing = BatchLanding(writer, stats, {"c1": channels})
    at = [T0 + k * 5_000_000 for k in range(50)] + [T0 + OVERFLOW_MARK_EVERY_NS + 200_000_000]
    entries = [(None, "c1", T0, ("connect", {}), landing.marker_channels("c1", T0, "connect"))]
    entries += [
        (
            None,
            "c1",
            t,
            ("overflow", {"dropped": 2, "cause": "lag"}),
            landing.marker_channels("c1", t, "overflow"),
        )
        for t in at
    ]
    landing.land(entries)
    landing.forget("c1")  # a new connection with the same id starts afresh
    assert landing.marker_channels("c1", at[-1] + 1, "overflow") == [*channels, CONTROL_CHANNEL]
    writer.close()
    control = [r for r in markers(tmp_path, CONTROL_CHANNEL) if r["m"] == "overflow"]
    assert len(control) == 51 and sum(r["x"]["dropped"] for r in control) == 102
    for channel in (channels[0], channels[-1]):
        kinds = [r["m"] for r in markers(tmp_path, channel)]
        assert kinds == ["connect", "overflow", "overflow"]
    assert landing.marker_channels("gone", T0, "overflow") == [CONTROL_CHANNEL]  # no channels known


def slots_of(tmp_path, **config) -> tuple[ConnectionSlots, Connection]:
    """Slots of Binance spot with one slot of three channels on a connection never opened (its
    requests queue until it would be)."""
    config = CollectorConfig(["BTCUSDT"], "ws://127.0.0.1:9", **config)
    stats, queue = Stats(), FrameQueue(100)
    slots = ConnectionSlots(
        Setup(BinanceSpotStream(), config, LandingWriter(tmp_path, "BINANCE"), stats), queue
    )
    slot = ["a@trade", "b@trade", "c@trade"]
    conn = Connection("c1", "ws://127.0.0.1:9", slot, [], queue, stats, stale_s=5, pacer=Pacer(5))
    slots.slots, slots.connections["c1"], slots.conn_streams["c1"] = [slot], conn, list(slot)
    return slots, conn


def test_requests_take_ids_in_order_and_an_ack_settles_them(tmp_path):
    async def scenario():
        slots, conn = slots_of(tmp_path)
        slots.slot_tasks = [asyncio.create_task(asyncio.sleep(3600))]
        await slots.unsubscribe(["b@trade"])
        ((request_id, text),) = conn.subscriptions
        assert json.loads(text) == {"method": "UNSUBSCRIBE", "params": ["b@trade"], "id": request_id}
        assert slots.requests.pending == {request_id: "c1"} and slots.slots == [["a@trade", "c@trade"]]
        assert slots.conn_streams["c1"] == ["a@trade", "c@trade"]
        slots.requests.on_ack(request_id)
        assert slots.requests.pending == {} and slots.stats.acks == 1
        nxt = slots.requests.make(lambda first: [(first, "x"), (first + 1, "y")])
        assert [i for i, _ in nxt] == [request_id + 1, request_id + 2] and not slots.requests.pending
        await slots.unsubscribe(["a@trade", "c@trade"])  # the slot left empty: retired, its connection closed
        return slots, conn

    slots, conn = asyncio.run(scenario())
    assert (
        slots.slots == []
        and slots.slot_tasks == []
        and conn.reason == "unsubscribed"
        and not slots.connections
    )
    assert slots.stats.unsubscribed == 3


def test_new_channels_fill_a_slot_with_room_and_the_rest_get_new_slots(tmp_path):
    async def scenario():
        slots, conn = slots_of(tmp_path, max_streams=4)
        slots.subscribe_more(["d@trade", "e@trade", "f@trade", "g@trade", "h@trade", "i@trade"])
        new_tasks = slots.slot_tasks[:]
        await cancel_until_done(new_tasks)  # they would connect: not here
        return slots, conn

    slots, conn = asyncio.run(scenario())
    assert slots.slots == [
        ["a@trade", "b@trade", "c@trade", "d@trade"],
        ["e@trade", "f@trade", "g@trade", "h@trade"],
        ["i@trade"],
    ]
    ((request_id, text),) = conn.subscriptions
    assert json.loads(text)["params"] == ["d@trade"] and slots.requests.pending[request_id] == "c1"
    assert slots.conn_streams["c1"] == ["a@trade", "b@trade", "c@trade", "d@trade"]
    assert slots.stats.subscribed_later == 6


def test_a_plan_beyond_the_venues_connections_names_the_remedy(tmp_path):
    async def scenario():
        slots, _ = slots_of(tmp_path, max_streams=2)
        slots.limits = dataclasses.replace(slots.limits, max_connections=3)
        assert slots.plan([f"{k}@trade" for k in range(4)]) == [
            ["0@trade", "1@trade"],
            ["2@trade", "3@trade"],
        ]
        with pytest.raises(
            ValueError, match="5 channels need 4 connections, above the venue's 3 per IP"
        ) as refused:
            slots.plan([f"{k}@trade" for k in range(5)])
        return str(refused.value)

    assert "--part K/N" in asyncio.run(scenario())


def test_a_dense_instrument_seals_at_the_next_tick_a_sparse_one_after_its_ticks(tmp_path):
    """Publisher alone (no sink, no cache: what it seals is read and counted): 20 frames seal at the
    first tick, 1 frame waits `trade_batch_max_s` of ticks."""
    protocol = BinanceSpotStream()

    def trade(name: str, k: int) -> str:
        return json.dumps(
            {
                "stream": f"{name.lower()}@trade",
                "data": {
                    "e": "trade",
                    "E": 1672515782136,
                    "s": name,
                    "t": k,
                    "p": "1.5",
                    "q": "2",
                    "T": 1672515782136,
                    "m": True,
                },
            }
        )

    async def scenario():
        config = CollectorConfig(
            ["BTCUSDT", "ETHUSDT"], "ws://unused", trade_batch_s=0.05, trade_batch_max_s=0.2
        )
        publisher = Publisher(protocol, config, Stats(), None, None)
        for k in range(20):
            publisher.add_trade(protocol.decode(trade("BTCUSDT", k)), T0 + k, "c1")
        publisher.add_trade(protocol.decode(trade("ETHUSDT", 1)), T0, "c1")
        publisher.sealing.cancel()
        publisher._seal_due()
        after_one = (publisher.stats.trades, sorted(publisher.trade_frames))
        for _ in range(publisher.max_ticks - 1):
            publisher.sealing.cancel()
            publisher._seal_due()
        return after_one, publisher

    (trades, waiting), publisher = asyncio.run(scenario())
    assert (trades, waiting) == (20, ["ETHUSDT"])
    assert publisher.stats.trades == 21 and not publisher.trade_frames and publisher.sealing is None


def test_fill_slots_gives_each_slot_with_room_the_channels_of_its_endpoint_in_order():
    def endpoint_of(channel: str) -> str:  # a1, a2: endpoint A; b1: B; ...
        return channel[0].upper()

    slots = [["a0", "a9"], ["b0"], []]  # full at 3: the first has room for one, the second for two
    filled, rest = fill_slots(slots, ["a1", "b1", "a2", "c1", "b2", "a3"], 3, endpoint_of)
    assert filled == [(0, ["a1"]), (1, ["b1", "b2"])]  # an empty slot's endpoint is "": it takes none
    assert rest == ["a2", "c1", "a3"] and slots == [["a0", "a9"], ["b0"], []]  # the slots are the caller's
    assert fill_slots(slots, [], 3, endpoint_of) == ([], [])
