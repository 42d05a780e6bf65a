"""Top-N book snapshots (ingest/live/collect/collector.py `_publish_book_snapshots`): every synced book is
published at a cadence to `md.books.<venue>.<instrument>` on the stack's real nats-server, its
levels equal to the replay's true book's best N, `Nats-Msg-Id` = `<venue>.<instrument>.<update id>`
(a repeat is deduplicated by the server); a book awaiting its resync publishes nothing (counted).
Waits are on the collector's counters."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

import pytest

from marketdata_assets.ingest.live.collect.collector import CollectorConfig, LiveCollector
from marketdata_assets.replay.crypto.binance_ws import WsConfig
from marketdata_assets.sources.binance.stream import BinanceSpotStream
from marketdata_assets.stores.jetstream import JetStreamStore
from marketdata_assets.stores.landing import LandingWriter
from tests.ingest.live import test_venues
from tests.support.live import INSTRUMENTS, collecting
from tests.support.live import config_for as binance_config
from tests.support.live import replays as binance_replays

WAIT_S = 15
DEPTH = 5


def best(levels, depth: int, reverse: bool) -> list[tuple[Decimal, Decimal]]:
    return sorted(((Decimal(p), Decimal(q)) for p, q in levels), reverse=reverse)[:depth]


def venue_setup(venue: str):
    """(replay stack, ws replay, collector config overrides' base, protocol, instruments)."""
    if venue == "BINANCE":
        stack, rest, ws = binance_replays(WsConfig(tick_s=0.02))
        return stack, ws, lambda **o: binance_config(ws, rest, **o), BinanceSpotStream(), list(INSTRUMENTS)
    stack, ws = test_venues.replays(venue)
    protocol = test_venues.VENUES[venue][1]()
    return (
        stack,
        ws,
        lambda **o: test_venues.config_for(venue, ws, **o),
        protocol,
        list(test_venues.VENUES[venue][2]),
    )


async def last_snapshot(store: JetStreamStore, stream: str, subject: str):
    message = await store.js.get_last_msg(stream, subject)
    return json.loads(message.data), message.headers["Nats-Msg-Id"]


@pytest.mark.parametrize("venue", ["BINANCE", "OKX", "DERIBIT"])
def test_top_n_snapshots_equal_the_true_book(venue, tmp_path, nats_url, stream_spec):
    stack, ws, config_of, protocol, instruments = venue_setup(venue)
    prefix = stream_spec.subjects[0].split(".")[0]
    with stack:

        async def scenario():
            config = config_of(subject_prefix=prefix, book_depth=DEPTH, book_snapshot_s=0.05)
            async with collecting(
                config, LandingWriter(tmp_path, venue), nats_url, stream_spec, protocol=protocol
            ) as (c, store):
                await c.stats.wait_until(lambda s: s.book_snapshots >= 2 * len(instruments), WAIT_S)
                ws.pause()  # the market stands still: the next snapshot of each book is final

                def published_last(stats) -> bool:
                    return all(
                        c.books.snapshot_ids.get(name) == ws.truth_book(name)[0] for name in instruments
                    )

                await c.stats.wait_until(published_last, WAIT_S)
                got = {
                    name: await last_snapshot(store, stream_spec.name, f"{prefix}.books.{venue}.{name}")
                    for name in instruments
                }
                truth = {name: ws.truth_book(name) for name in instruments}
                ws.resume()
            return c.stats, got, truth

        stats, got, truth = asyncio.run(scenario())
    for name in instruments:
        update_id, bids, asks = truth[name]
        snapshot, msg_id = got[name]
        assert msg_id == f"{venue}.{name}.{update_id}" and snapshot["update_id"] == update_id
        assert snapshot["venue"] == venue and snapshot["instrument"] == name and snapshot["depth"] == DEPTH
        assert best(snapshot["bids"], DEPTH, True) == best(bids.items(), DEPTH, True)
        assert best(snapshot["asks"], DEPTH, False) == best(asks.items(), DEPTH, False)
        assert len(snapshot["bids"]) == len(snapshot["asks"]) == DEPTH
        assert all(isinstance(p, str) and isinstance(q, str) for p, q in snapshot["bids"] + snapshot["asks"])
        assert isinstance(snapshot["event_ms"], int) and snapshot["recv_ns"] > 0
    assert stats.book_snapshot_failures == 0


def test_a_book_awaiting_resync_publishes_nothing_and_a_repeat_is_deduplicated(
    tmp_path, nats_url, stream_spec
):
    prefix = stream_spec.subjects[0].split(".")[0]
    config = CollectorConfig(
        list(INSTRUMENTS), "ws://127.0.0.1:9", "http://127.0.0.1:9", subject_prefix=prefix, book_depth=2
    )

    async def scenario():
        async with JetStreamStore(nats_url) as store:
            await store.ensure_stream(stream_spec)
            collector = LiveCollector(BinanceSpotStream(), config, LandingWriter(tmp_path, "BINANCE"), store)
            await collector.books.publish_book_snapshots()  # no book synced yet: nothing, each skip counted
            skipped = collector.stats.book_snapshots_skipped
            sync = collector.books.by_instrument[INSTRUMENTS[0]]
            sync.on_snapshot_body(
                {
                    "lastUpdateId": 7,
                    "bids": [["10.0", "1"], ["9.5", "2"], ["9.0", "3"]],
                    "asks": [["11.0", "1"]],
                }
            )
            await collector.books.publish_book_snapshots()
            await collector.books.publish_book_snapshots()  # unchanged: not sent again
            collector.books.snapshot_ids.clear()  # a restarted collector: sent again, the server drops it
            await collector.books.publish_book_snapshots()
            held = await store.message_count(stream_spec.name, f"{prefix}.books.>")
            last = await last_snapshot(store, stream_spec.name, f"{prefix}.books.BINANCE.{INSTRUMENTS[0]}")
            await store.delete_stream(stream_spec.name)
            collector.writer.close()
            await collector.books.rest.aclose()
            return collector.stats, skipped, held, last

    stats, skipped, held, (snapshot, msg_id) = asyncio.run(scenario())
    assert (
        skipped == len(INSTRUMENTS) and stats.book_snapshots_skipped == len(INSTRUMENTS) + 3
    )  # the other book
    assert stats.book_snapshots == held == 1 and stats.book_snapshot_repeats == 1
    assert msg_id == f"BINANCE.{INSTRUMENTS[0]}.7"
    assert snapshot["bids"] == [["10.0", "1"], ["9.5", "2"]] and snapshot["asks"] == [["11.0", "1"]]
