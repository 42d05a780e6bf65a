"""Book-gap repair (ingest/live/collect/collector.py `_repair_forever`):
an hour in which a book had a gap gets
a REST snapshot at the next hour boundary, landed raw in `<instrument>@depth_snapshot` after a
`repair` marker naming the hour, per venue (Binance `/api/v3/depth`, OKX `/api/v5/market/books`,
Deribit `public/get_order_book`) against the REST replay serving the WebSocket replay's true books.
"The hour" is `repair_period_s`, 1 s here. Where the snapshot carries the book's update id
(Binance lastUpdateId, Deribit change_id), the book is rebuilt from the landing files alone (the
snapshot, then the landed diffs after it) and equals the replay's truth at rest."""

from __future__ import annotations

import asyncio
import contextlib
import json
from decimal import Decimal

import pytest

from marketdata_assets.datasets.order_book import OrderBook
from marketdata_assets.ingest.live.collect.collector import CollectorConfig
from marketdata_assets.replay.crypto import CryptoReplayServer, ReplayConfig
from marketdata_assets.replay.crypto.binance_ws import BinanceWsReplay, WsConfig
from marketdata_assets.replay.crypto.deribit_ws import DeribitWsReplay
from marketdata_assets.replay.crypto.okx_ws import OkxWsReplay
from marketdata_assets.sources.binance.stream import BinanceSpotStream
from marketdata_assets.sources.deribit.stream import DeribitStream, levels
from marketdata_assets.sources.okx.stream import OkxStream
from marketdata_assets.stores.landing import LandingWriter, closed_files, read_file
from tests.support.live import collecting

WAIT_S = 15
PERIOD_S = 1.0
VENUES = {  # replay, protocol, instruments, book channel, snapshot channel
    "BINANCE": (
        BinanceWsReplay,
        BinanceSpotStream,
        ["BTCUSDT", "ETHUSDT"],
        "{}@depth@100ms",
        "{}@depth_snapshot",
    ),
    "OKX": (OkxWsReplay, OkxStream, ["BTC-USDT", "ETH-USDT"], "{}@books", "{}@depth_snapshot"),
    "DERIBIT": (
        DeribitWsReplay,
        DeribitStream,
        ["BTC-PERPETUAL", "ETH-PERPETUAL"],
        "book.{}.100ms",
        "{}@depth_snapshot",
    ),
}


def channel(venue: str, which: int, instrument: str) -> str:
    name = instrument.lower() if venue == "BINANCE" else instrument
    return VENUES[venue][which].format(name)


def records(root, venue: str, name: str) -> list[dict]:
    return [r for path in closed_files(root, venue, name) for r in read_file(path)]


def value(side: dict[str, str]) -> dict[Decimal, Decimal]:
    return {Decimal(p): Decimal(q) for p, q in side.items()}


def rebuilt(venue: str, snapshot: dict, diffs: list[dict]) -> OrderBook:
    """The book from a landed REST snapshot and the landed diffs after it (by update id)."""
    book = OrderBook()
    if venue == "BINANCE":
        book.reset(snapshot["lastUpdateId"], snapshot["bids"], snapshot["asks"])
        for event in (json.loads(r["d"])["data"] for r in diffs):
            if event["u"] > book.update_id:
                book.apply(event["u"], event["b"], event["a"])
        return book
    result = snapshot["result"]
    book.reset(
        result["change_id"],
        [(str(p), str(q)) for p, q in result["bids"]],
        [(str(p), str(q)) for p, q in result["asks"]],
    )
    for data in (json.loads(r["d"])["params"]["data"] for r in diffs):
        if data["change_id"] <= book.update_id:
            continue
        if data["type"] == "change":
            book.apply(data["change_id"], levels(data["bids"]), levels(data["asks"]))
        else:  # the stream's own snapshot (a resubscription's first notification: may come after REST's)
            book.reset(data["change_id"], levels(data["bids"]), levels(data["asks"]))
    return book


@pytest.mark.parametrize("venue", list(VENUES))
def test_an_hour_with_a_book_gap_gets_a_rest_snapshot_at_its_end(venue, tmp_path):
    replay_class, protocol_class, instruments, _, _ = VENUES[venue]
    broken = instruments[0]
    with contextlib.ExitStack() as stack:
        rest = stack.enter_context(
            CryptoReplayServer(ReplayConfig(seed=7, instruments={venue: list(instruments)}))
        )
        ws = stack.enter_context(replay_class(WsConfig(tick_s=0.02), rest=rest))

        async def scenario():
            config = CollectorConfig(
                list(instruments),
                ws.url,
                rest.base_url,
                backoff_base_s=0.05,
                stale_s=5.0,
                repair_period_s=PERIOD_S,
                repair_depth=100,
            )
            async with collecting(config, LandingWriter(tmp_path, venue), protocol=protocol_class()) as (
                c,
                _,
            ):
                # the break once the books are subscribed (on a busy machine a fault armed before could fire
                # first)
                await c.stats.wait_until(lambda s: s.snapshots == len(instruments), WAIT_S)
                ws.add_fault(kind="skip_sequence", instrument=broken, after=0)
                await c.stats.wait_until(lambda s: s.gaps == 1 and s.repair_snapshots == 1, WAIT_S)
                ws.pause()  # at rest: the rebuilt book must end at the truth

                def caught_up(stats) -> bool:
                    return all(
                        not c.books.by_instrument[n].needs_snapshot
                        and c.books.by_instrument[n].book.update_id == ws.truth_book(n)[0]
                        for n in instruments
                    )

                await c.stats.wait_until(caught_up, WAIT_S)
                truth = ws.truth_book(broken)
                repairs_at_rest = c.stats.repair_snapshots
            return c.stats, truth, repairs_at_rest

        stats, truth, repairs_at_rest = asyncio.run(scenario())
    assert stats.gaps == 1 and stats.repair_failures == 0 and repairs_at_rest == 1
    gap = next(r for r in records(tmp_path, venue, channel(venue, 3, broken)) if r.get("m") == "gap")
    landed = records(tmp_path, venue, channel(venue, 4, broken))
    marker, frame = landed[-2], landed[-1]
    assert marker["m"] == "repair" and marker["x"]["book_channel"] == channel(venue, 3, broken)
    gap_period = int(gap["t"] / 1e9 // PERIOD_S)
    assert (
        len(marker["x"]["hours"]) == 1 and int(frame["t"] / 1e9 // PERIOD_S) > gap_period
    )  # the next "hour"
    assert not [
        r for r in records(tmp_path, venue, channel(venue, 4, instruments[1])) if r.get("m") == "repair"
    ]
    snapshot = json.loads(frame["d"])
    if venue == "OKX":  # the venue's envelope; its REST books carry no seqId, only ts
        (book,) = snapshot["data"]
        assert snapshot["code"] == "0" and set(book) == {"asks", "bids", "ts"}
        assert all(
            len(level) == 4 and all(isinstance(x, str) for x in level)
            for level in book["bids"] + book["asks"]
        )
        assert Decimal(book["bids"][0][0]) < Decimal(book["asks"][0][0])
        return
    update_id, bids, asks = truth
    book = rebuilt(
        venue, snapshot, [r for r in records(tmp_path, venue, channel(venue, 3, broken)) if "d" in r]
    )
    assert book.update_id == update_id
    best_bids, best_asks = book.top(100)
    true_book = OrderBook()
    true_book.reset(0, bids.items(), asks.items())
    want_bids, want_asks = true_book.top(100)
    # the snapshot held the best 100 levels: compare the levels it covers
    assert value(dict(best_bids[:50])) == value(dict(want_bids[:50]))
    assert value(dict(best_asks[:50])) == value(dict(want_asks[:50]))
