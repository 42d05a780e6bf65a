"""A venue's universe split over collectors (ingest/live/collect/parts.py) and the requests a universe change
sends: every instrument in exactly one part, the shared channels in the first only; the unsubscribe
requests as each venue documents them, and its documented answers read as acknowledgements; the
pacer's hourly cap (OKX: 480 requests an hour a connection). Logic only: no process, no socket."""

from __future__ import annotations

import asyncio
import json

import pytest

from marketdata_assets.ingest.live.collect.collector import CollectorConfig, LiveCollector
from marketdata_assets.ingest.live.collect.connection import Pacer
from marketdata_assets.ingest.live.collect.parts import Part
from marketdata_assets.sources.binance.futures_stream import BinanceUsdmStream
from marketdata_assets.sources.binance.stream import BinanceSpotStream
from marketdata_assets.sources.deribit.stream import DeribitStream
from marketdata_assets.sources.okx.stream import OkxStream
from marketdata_assets.stores.landing import LandingWriter

NAMES = [f"COIN{k}-USDT-SWAP" for k in range(4000)]


def test_every_instrument_is_in_exactly_one_part_and_the_parts_are_even():
    for count in (1, 2, 3, 4, 7):
        parts = [Part(k, count) for k in range(count)]
        shares = [part.take(NAMES) for part in parts]
        assert sorted(name for share in shares for name in share) == sorted(NAMES)
        assert all(len(share) > len(NAMES) / count * 0.85 for share in shares), [len(s) for s in shares]
        assert [part.shared for part in parts] == [True] + [False] * (count - 1)
    assert Part(1, 4).take(NAMES) == [n for n in NAMES if Part(1, 4).owns(n)]  # order kept


@pytest.mark.parametrize(
    "text, part", [("", Part()), (None, Part()), ("1/1", Part()), ("2/4", Part(1, 4)), (" 3/3 ", Part(2, 3))]
)
def test_a_part_is_spelled_k_of_n(text, part):
    assert Part.parse(text) == part
    assert str(part) == (text or "1/1").strip()


@pytest.mark.parametrize("text", ["0/2", "3/2", "1", "a/b", "1/0", "-1/2"])
def test_a_wrong_part_is_refused_naming_it(text):
    with pytest.raises(ValueError, match=text):
        Part.parse(text)


@pytest.mark.parametrize(
    "protocol, instruments, shared",
    [
        (
            OkxStream,
            ["BTC-USDT-SWAP", "ETH-USDT-SWAP", "BTC-USDT", "SOL-USDT-SWAP", "ETH-USD-SWAP"],
            "SWAP@liquidation-orders",
        ),
        (BinanceUsdmStream, ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT"], "!forceOrder@arr"),
    ],
)
def test_the_shared_channels_go_to_the_first_part_only(tmp_path, protocol, instruments, shared):
    every = protocol().supported  # liquidations among them
    whole = protocol(datasets=every).channels(instruments, 100)
    assert shared in whole
    parts = [
        LiveCollector(
            protocol(datasets=every),
            CollectorConfig(instruments, "ws://unused", "http://unused", part=Part(k, 2)),
            LandingWriter(tmp_path, protocol.venue),
        ).streams()
        for k in range(2)
    ]
    assert shared in parts[0] and shared not in parts[1]
    assert sorted(parts[0] + parts[1]) == sorted(whole)  # each channel collected once, none lost


# The venues' documented unsubscribe requests and answers (Binance "Live Subscribing/Unsubscribing to
# streams"; OKX v5 "WebSocket / Unsubscribe"; Deribit "public/unsubscribe"), ids as the examples give them.
DOCUMENTED = {
    "BINANCE": (
        BinanceSpotStream,
        ["btcusdt@depth"],
        312,
        {"method": "UNSUBSCRIBE", "params": ["btcusdt@depth"], "id": 312},
        '{"result": null, "id": 312}',
    ),
    "OKX": (
        OkxStream,
        ["BTC-USDT@tickers"],
        1512,
        {"id": "1512", "op": "unsubscribe", "args": [{"channel": "tickers", "instId": "BTC-USDT"}]},
        (
            '{"id": "1512", "event": "unsubscribe", "arg": {"channel": "tickers", "instId": "BTC-USDT"}, '
            '"connId": "d0b44253"}'
        ),
    ),
    "DERIBIT": (
        DeribitStream,
        ["deribit_price_index.btc_usd"],
        8691,
        {
            "jsonrpc": "2.0",
            "id": 8691,
            "method": "public/unsubscribe",
            "params": {"channels": ["deribit_price_index.btc_usd"]},
        },
        '{"jsonrpc": "2.0", "id": 8691, "result": ["deribit_price_index.btc_usd"]}',
    ),
}


@pytest.mark.parametrize("venue", list(DOCUMENTED))
def test_unsubscribe_requests_are_the_documented_ones_and_their_answers_acks(venue):
    protocol, channels, request_id, request, answer = DOCUMENTED[venue]
    [(sent_id, text)] = protocol().unsubscribe_messages(channels, request_id)
    assert sent_id == request_id and json.loads(text) == request
    frame = protocol().decode(answer)
    assert frame.kind == "ack" and frame.request_id == request_id


def test_the_pacer_keeps_an_hourly_cap():
    async def sends(pacer: Pacer, wanted: int) -> int:
        sent = 0
        for _ in range(wanted):
            try:
                await asyncio.wait_for(pacer.wait(), 0.05)
            except TimeoutError:
                break
            sent += 1
        return sent

    assert asyncio.run(sends(Pacer(100, per_hour=3), 5)) == 3  # the fourth waits an hour
    assert asyncio.run(sends(Pacer(100), 5)) == 5
