"""Every live dataset of every venue (Binance spot and USD-M, OKX, Deribit) through the venue-neutral
collector, against the WebSocket replays (their new channels in the venues' frame formats) and the
stack's real nats-server: each enabled dataset arrives on `md.<dataset>.<venue>.<instrument>` with its
payload fields and message id, a republish of what was stored is deduplicated, live bars and mark
prices equal the REST replays', USD-M's book follows its `pu` rule (a skipped sequence is one gap and
one REST resync), and a bad frame of each new channel is counted by reason while the rest flows on.
Waits are on the collector's counters."""

from __future__ import annotations

import contextlib
import json

import pytest

from marketdata_assets.ingest.live.collect.collector import CollectorConfig
from marketdata_assets.replay.crypto import CryptoReplayServer, ReplayConfig
from marketdata_assets.replay.crypto.binance_um_ws import BinanceUmWsReplay
from marketdata_assets.replay.crypto.binance_ws import BinanceWsReplay
from marketdata_assets.replay.crypto.deribit_ws import DeribitWsReplay
from marketdata_assets.replay.crypto.live_book import fmt8
from marketdata_assets.replay.crypto.okx_ws import OkxWsReplay
from marketdata_assets.replay.crypto.ws_server import WsConfig
from marketdata_assets.sources.binance.futures_stream import BinanceUsdmStream
from marketdata_assets.sources.binance.stream import BinanceSpotStream
from marketdata_assets.sources.deribit.stream import DeribitStream
from marketdata_assets.sources.okx.stream import OkxStream
from marketdata_assets.sources.registry import stream_protocol
from marketdata_assets.sources.stream import LIVE_DATASETS
from marketdata_assets.stores.landing import LandingWriter, closed_files, read_file
from tests.support.live import books_match_at_rest, collecting, stream_trades
from tests.support.reference import asking

WAIT_S = 25
# venue -> (replay, protocol, instruments, datasets published (books are kept, not published), bad-frame
# channels: (the replay's channel kind, the dataset whose frames it carries))
VENUES = {
    "BINANCE": (
        BinanceWsReplay,
        BinanceSpotStream,
        ["BTCUSDT"],
        ("trades", "tickers", "bars_1m", "agg_trades"),
        [("bookTicker", "tickers"), ("kline_1m", "bars_1m"), ("aggTrade", "agg_trades")],
    ),
    "BINANCE_UM": (
        BinanceUmWsReplay,
        BinanceUsdmStream,
        ["BTCUSDT", "ETHUSDT"],
        ("trades", "tickers", "bars_1m", "mark_price", "funding", "liquidations"),
        [
            ("bookTicker", "tickers"),
            ("kline_1m", "bars_1m"),
            ("markPrice", "mark_price"),
            ("forceOrder", "liquidations"),
        ],
    ),
    "OKX": (
        OkxWsReplay,
        OkxStream,
        ["BTC-USDT", "BTC-USDT-SWAP"],
        ("trades", "tickers", "bars_1m", "funding", "mark_price", "open_interest", "liquidations"),
        [
            ("tickers", "tickers"),
            ("candle1m", "bars_1m"),
            ("funding-rate", "funding"),
            ("mark-price", "mark_price"),
            ("open-interest", "open_interest"),
            ("liquidation-orders", "liquidations"),
        ],
    ),
    "DERIBIT": (
        DeribitWsReplay,
        DeribitStream,
        ["BTC-PERPETUAL"],
        ("trades", "tickers", "mark_price", "funding", "open_interest"),
        [("ticker", "tickers")],
    ),
}
# each message's normalized record (datasets/normalized.py; trades: sources/stream.py trade_messages)
FIELDS = {
    "trades": ("trade_id", "price", "quantity", "amount", "side"),
    "tickers": ("bid", "bid_size", "ask", "ask_size"),
    "bars_1m": ("open_ms", "open", "high", "low", "close", "volume", "amount"),
    "funding": ("funding_rate",),
    "mark_price": ("mark_price", "index_price"),
    "liquidations": ("liquidation_id", "side", "price", "quantity"),
    "open_interest": ("contracts", "contract_size", "size_unit", "base", "quote"),
    "agg_trades": (
        "trade_id",
        "price",
        "quantity",
        "amount",
        "side",
        "seq",
        "first_trade_id",
        "last_trade_id",
    ),
}


def replays(venue: str, ws_config: WsConfig, seed: int = 7):
    replay_class, _, instruments, _, _ = VENUES[venue]
    stack = contextlib.ExitStack()
    rest = stack.enter_context(
        CryptoReplayServer(ReplayConfig(seed=seed, instruments={venue: list(instruments)}))
    )
    ws = stack.enter_context(replay_class(ws_config, rest=rest))
    return stack, rest, ws


def run(venue: str, body, tmp_path, nats_url=None, spec=None, config: WsConfig | None = None, faults=()):
    """`body(collector, store, ws, rest)` against a collector of `venue` with every live dataset enabled."""
    import asyncio

    stack, rest, ws = replays(venue, config or WsConfig(tick_s=0.02, trades_per_tick=4, derived_every_s=0.5))
    for fault in faults:
        ws.add_fault(**fault)

    async def scenario():
        supported = VENUES[venue][1]().supported
        # contract sizes: the venue's reference data (its REST replay)
        protocol = stream_protocol(
            venue, [d for d in LIVE_DATASETS if d in supported], asking(venue, rest.base_url)
        )
        prefix = {"subject_prefix": spec.subjects[0].split(".")[0]} if spec is not None else {}
        config = CollectorConfig(
            list(VENUES[venue][2]),
            ws.url,
            rest.base_url if protocol.rest_snapshots else None,
            **{"backoff_base_s": 0.05, "stale_s": 10.0, **prefix},
        )
        async with collecting(config, LandingWriter(tmp_path, venue), nats_url, spec, protocol=protocol) as (
            c,
            store,
        ):
            result = await body(c, store, ws, rest)
        return c.stats, result

    with stack:
        return asyncio.run(scenario())


def prefix_of(spec) -> str:
    return spec.subjects[0].split(".")[0]


@pytest.mark.parametrize("venue", list(VENUES))
def test_every_dataset_arrives_on_its_subject_and_a_republish_is_deduplicated(
    venue, tmp_path, nats_url, stream_spec
):
    expected = VENUES[venue][3]
    prefix = prefix_of(stream_spec)

    async def body(c, store, ws, rest):
        await c.stats.wait_until(
            lambda s: all(s.messages.get(d, 0) >= 1 for d in expected) and s.published >= 20, WAIT_S
        )
        ws.pause()
        await ws.delivered(
            WAIT_S
        )  # every frame the replay sent was read (one in flight came after `held` before)
        await c.stats.wait_until(
            lambda s: (
                c.queue.unfinished <= 0
                and not c.publisher.trade_frames
                and not c.publisher.outbox
                and s.published + s.duplicates == s.parsed
            ),
            WAIT_S,
        )
        last = {}
        for dataset in expected:
            for instrument in c.config.instruments:
                with contextlib.suppress(
                    Exception
                ):  # not every instrument has every dataset (OKX spot: no funding)
                    last[dataset, instrument] = await store.js.get_last_msg(
                        stream_spec.name, f"{prefix}.{dataset}.{venue}.{instrument}"
                    )

        async def held_messages() -> int:  # the datasets' records: every subject's count in one reading of
            # the stream (the collector still publishes its top-N book snapshots, which are left out: three
            # readings let one come between them), trades counted in their batches (a message per instrument)
            info = await store.js.stream_info(stream_spec.name, subjects_filter=f"{prefix}.>")
            counts = {
                subject: n
                for subject, n in (info.state.subjects or {}).items()
                if subject.split(".")[1] not in ("books", "trades")
            }
            return sum(counts.values()) + len(
                await stream_trades(store, stream_spec.name, f"{prefix}.trades.>")
            )

        held = await held_messages()
        again = await store.publish([(m.subject, m.headers["Nats-Msg-Id"], m.data) for m in last.values()])
        return last, held, again, await held_messages(), rest

    stats, (last, held, again, after, rest) = run(venue, body, tmp_path, nats_url, stream_spec)
    assert stats.bad_frames == {} and stats.gaps == 0
    assert {dataset for dataset, _ in last} == set(expected)
    for (dataset, instrument), message in last.items():
        payload = json.loads(message.data)
        payload = payload[-1] if dataset == "trades" else payload  # a batch: its newest trade
        assert payload["venue"] == venue and payload["instrument"] == instrument
        assert all(
            payload.get(f) is not None for f in FIELDS[dataset] if not (f == "index_price" and venue == "OKX")
        )
        msg_id = message.headers["Nats-Msg-Id"]
        assert msg_id.startswith(
            f"{venue}.{instrument}." if dataset == "trades" else f"{dataset}.{venue}.{instrument}."
        )
    assert held == stats.published and after == held  # the republish stored nothing new
    assert again.stored == 0 and again.duplicates == len(last)
    if venue in ("BINANCE", "BINANCE_UM"):  # a live closed bar is the REST replay's bar of that minute
        bar = json.loads(last["bars_1m", "BTCUSDT"].data)
        (rest_bar,) = rest.market.bars_between(venue, "BTCUSDT", bar["open_ms"] * 1000, bar["open_ms"] * 1000)
        assert (bar["open"], bar["close"], bar["volume"]) == tuple(
            float(fmt8(rest_bar[k])) for k in (1, 4, 5)
        )


def test_usdm_book_follows_pu_and_a_skipped_sequence_is_one_gap_and_one_rest_resync(tmp_path):
    """The replay's U is not the previous u + 1 (USD-M's): only the pu rule keeps the book without
    false gaps; a lost event (its successor's pu names it) is one gap and one REST resync."""

    async def body(c, store, ws, rest):
        await c.stats.wait_until(lambda s: s.snapshots == 2 and s.messages.get("tickers", 0) > 20, WAIT_S)
        assert c.stats.gaps == 0
        ws.add_fault(kind="skip_sequence", instrument="BTCUSDT", after=ws.updates["BTCUSDT"] + 5)
        await c.stats.wait_until(lambda s: s.gaps == 1 and s.snapshots == 3, WAIT_S)
        await books_match_at_rest(c, ws, ["BTCUSDT", "ETHUSDT"], WAIT_S)

    stats, _ = run("BINANCE_UM", body, tmp_path)
    assert stats.gaps == 1 and stats.snapshots == 3 and stats.resubscribes == 0
    marks = [
        r
        for path in closed_files(tmp_path, "BINANCE_UM", "btcusdt@depth@100ms")
        for r in read_file(path)
        if r.get("m") in ("gap", "snapshot", "resync")
    ]
    assert [r["m"] for r in marks] == ["snapshot", "gap", "resync"]
    gap = marks[1]["x"]
    assert (
        gap["cause"] == "sequence" and gap["got_prev"] == gap["expected_prev"] + 1
    )  # pu named an event never sent
    assert not [
        r
        for path in closed_files(tmp_path, "BINANCE_UM", "ethusdt@depth@100ms")
        for r in read_file(path)
        if r.get("m") == "gap"
    ]


@pytest.mark.parametrize("venue", list(VENUES))
def test_a_bad_frame_of_each_new_channel_is_counted_and_the_rest_flows_on(venue, tmp_path):
    bad = VENUES[venue][4]
    faults = [{"kind": "bad_frame", "channel": channel} for channel, _ in bad]
    reasons = {f"malformed_{dataset}" for _, dataset in bad}

    async def body(c, store, ws, rest):
        await c.stats.wait_until(lambda s: reasons <= set(s.bad_frames), WAIT_S)
        seen = dict(c.stats.channel_frames)
        trades = c.stats.trades
        await c.stats.wait_until(
            lambda s: (
                s.trades > trades + 50
                and all(s.channel_frames.get(ch, 0) > n for ch, n in seen.items() if not ch.startswith("_"))
            ),
            WAIT_S,
        )

    stats, _ = run(venue, body, tmp_path, faults=faults)
    assert stats.bad_frames == {reason: 1 for reason in reasons}  # each counted once, by its reason
    assert stats.gaps == 0
