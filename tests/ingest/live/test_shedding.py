"""The lag bound sheds a venue's late data frames and never its control frames: each venue's documented
acknowledgements, refusals, notices and heartbeats stay in the batch (a refusal is retried, a Deribit
test_request answered), however late; its data frames are dropped and counted under one `overflow`
marker per connection; books go before trades, which are shed only past a longer bound, and a full
queue still takes a quarter more trades. Each frame is the venue's documented example, the way its
protocol decodes it."""

from __future__ import annotations

import asyncio

import pytest

from marketdata_assets.ingest.live.collect.shedding import OVERFLOW, shed
from marketdata_assets.sources.registry import stream_protocol

# venue -> (data frames, control frames), from the venues' documentation
FRAMES = {
    "BINANCE": (  # web-socket-streams.md: a combined stream's event; "Live Subscribing/Unsubscribing" replies
        [
            (
                '{"stream":"btcusdt@trade","data":{"e":"trade","E":1672515782136,"s":"BTCUSDT","t":12345,"p":"0.001",'
                '"q":"100","T":1672515782136,"m":true,"M":true}}'
            )
        ],
        [
            '{"result":null,"id":1}',
            '{"error":{"code":2,"msg":"Invalid request: unknown variant `SUBSCRIBER`"},"id":1}',
        ],
    ),
    "BINANCE_UM": (
        [
            (
                '{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","E":123456789,"s":"BTCUSDT","a":5933014,'
                '"p":"0.001","q":"100","f":100,"l":105,"T":123456785,"m":true}}'
            )
        ],
        ['{"result":null,"id":1}', '{"error":{"code":0,"msg":"Unknown property"},"id":5}'],
    ),
    "OKX": (  # docs-v5 WebSocket: a push; subscribe, error and notice events
        [
            (
                '{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","tradeId":"130639474",'
                '"px":"42219.9","sz":"0.12060306","side":"buy","ts":"1630048897897","count":"3"}]}'
            )
        ],
        [
            '{"event":"subscribe","arg":{"channel":"tickers","instId":"LTC-USDT"},"connId":"accb8e21"}',
            '{"event":"error","code":"60012","msg":"Invalid request","connId":"a4d3ae55"}',
            (
                '{"event":"notice","code":"64008","msg":"The connection will soon be closed for a service '
                'upgrade. Please reconnect.","connId":"a4d3ae55"}'
            ),
        ],
    ),
    "DERIBIT": (  # api v2: a subscription notification; a heartbeat's test_request; a reply
        [
            (
                '{"jsonrpc":"2.0","method":"subscription","params":{"channel":"trades.BTC-PERPETUAL.100ms","data":'
                '[{"trade_seq":30289432,"trade_id":"48079254","timestamp":1590484156350,"tick_direction":0,'
                '"price":8950.0,"instrument_name":"BTC-PERPETUAL","index_price":8955.88,"direction":"sell",'
                '"amount":10.0}]}}'
            )
        ],
        [
            '{"jsonrpc":"2.0","method":"heartbeat","params":{"type":"test_request"}}',
            '{"jsonrpc":"2.0","id":42,"result":["trades.BTC-PERPETUAL.100ms"]}',
            '{"jsonrpc":"2.0","id":8163,"error":{"message":"Invalid params","code":-32602}}',
        ],
    ),
}


@pytest.mark.parametrize("venue", list(FRAMES))
def test_late_data_frames_are_shed_and_control_frames_kept(venue):
    protocol = stream_protocol(venue, "all")
    data, control = FRAMES[venue]
    assert all(protocol.decode(text).kind == "event" for text in data)  # the protocol reads them as data
    assert all(protocol.decode(text).kind != "event" for text in control if "test_request" not in text)
    late, fresh, cutoff = 1_000, 5_000, 2_000
    batch = [("frame", "c1", late, text) for text in data + control + data] + [
        ("frame", "c1", fresh, data[0])
    ]
    kept, dropped = shed(batch, cutoff, 10_000, protocol.data_prefix)
    assert dropped == 2 * len(data)
    assert kept[0][0] == "marker" and kept[0][3][0] == OVERFLOW and kept[0][3][1]["dropped"] == 2 * len(data)
    assert [item[3] for item in kept[1:]] == [*control, data[0]]  # in order, the fresh data frame too
    everything, _ = shed(batch, cutoff, 10_000)  # a venue that declares no data prefix: any late frame goes
    assert [item[0] for item in everything] == ["marker", "frame"]


# venue -> a book frame of its documentation (what a snapshot rebuilds; shed first)
BOOK_FRAMES = {
    "BINANCE": '{"stream":"bnbbtc@depth@100ms","data":{"e":"depthUpdate","E":1672515782136,"s":"BNBBTC",'
    '"U":157,"u":160,"b":[["0.0024","10"]],"a":[["0.0026","100"]]}}',
    "BINANCE_UM": '{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":123456789,"T":123456788,'
    '"s":"BTCUSDT","U":157,"u":160,"pu":149,"b":[["0.0024","10"]],"a":[["0.0026","100"]]}}',
    "OKX": '{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"update","data":[{"asks":'
    '[["8476.98","415","0","13"]],"bids":[["8476.97","256","0","12"]],"ts":"1597026383085","checksum":-855196043,"prevSeqId":123,'
    '"seqId":124}]}',
    "DERIBIT": '{"jsonrpc":"2.0","method":"subscription","params":{"channel":"book.BTC-PERPETUAL.100ms",'
    '"data":{"type":"change","timestamp":1554373911330,"prev_change_id":297217,"instrument_name":"BTC-PERPETUAL",'
    '"change_id":297218,"bids":[["new",5042.34,30]],"asks":[]}}}',
}


@pytest.mark.parametrize("venue", list(FRAMES))
def test_books_are_shed_before_trades_which_go_only_past_the_longer_bound(venue):
    protocol = stream_protocol(venue, "all")
    trade, book = FRAMES[venue][0][0], BOOK_FRAMES[venue]
    assert protocol.decode(book).kind == "event"
    older, late, fresh = 500, 1_000, 5_000  # trade bound 800 < late < lag bound 2,000
    batch = [
        ("frame", "c1", older, trade),
        ("frame", "c1", older, book),
        ("frame", "c1", late, book),
        ("frame", "c1", late, trade),
        ("frame", "c1", fresh, book),
    ]
    kept, dropped = shed(batch, 2_000, 10_000, protocol.data_prefix, protocol.trade_marks, 800)
    assert dropped == 3  # the older trade and both late books
    marker = kept[0][3][1]
    assert kept[0][3][0] == OVERFLOW and (marker["dropped"], marker["trades"]) == (3, 1)
    assert [(item[2], item[3]) for item in kept[1:]] == [(late, trade), (fresh, book)]


def test_a_full_queue_takes_a_quarter_more_trades_and_drops_books_first():
    from marketdata_assets.ingest.live.collect.connection import Connection, FrameQueue, Pacer
    from marketdata_assets.ingest.live.stats import Stats

    protocol = stream_protocol("BINANCE", "all")
    trade, book = FRAMES["BINANCE"][0][0], BOOK_FRAMES["BINANCE"]

    async def scenario() -> tuple[list, list, Stats]:
        queue, stats = FrameQueue(8), Stats()
        conn = Connection(
            "c1",
            "ws://x",
            ["btcusdt@trade"],
            [],
            queue,
            stats,
            stale_s=10,
            pacer=Pacer(5),
            trade_marks=protocol.trade_marks,
        )
        conn._on_texts([book] * 8, 1)  # full
        conn._on_texts([book, trade, book, trade, trade, trade], 2)
        full = list(queue.items)
        await queue.take(len(full))  # the processor catches up
        conn._on_texts([trade], 3)
        return full, list(queue.items), stats

    full, after, stats = asyncio.run(scenario())
    # past the bound the books are dropped and the trades queued, up to a quarter more; then trades drop too
    assert [item[3] for item in full] == [book] * 8 + [trade] * 2 and stats.overflow_frames == 4
    # the next frame with room: one marker first, with every drop and the trades among them (their gap)
    assert after[0][0] == "marker" and after[0][3] == (
        "overflow",
        {"dropped": 4, "cause": "full", "trades": 2},
    )
    assert after[1][3] == trade and len(after) == 2
