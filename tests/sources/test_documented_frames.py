"""Conformance: every channel the collector subscribes, and the acks, errors, heartbeats and notices, as
the venues' own documentation prints them, read by each venue's protocol into what we store. The
frames are the documented examples verbatim (numbers as printed), from:
- Binance spot: binance-spot-api-docs, web-socket-streams.md (and its "Live subscribing" section);
- Binance USD-M: developers.binance.com, derivatives/usds-margined-futures/websocket-market-streams;
- OKX: www.okx.com/docs-v5/en, "WebSocket" / "Public channel" / "Order book channel";
- Deribit: docs.deribit.com, "subscriptions" (trades, book, ticker), public/subscribe, heartbeats, errors.
Where a documented example names an instrument we do not size (OKX IOST-USDT-SWAP), the test says so.
"""

from __future__ import annotations

import json
import math

import pytest

from marketdata_assets.sources.registry import stream_protocol
from marketdata_assets.sources.stream import MALFORMED
from tests.support.reference import documented

BINANCE = {
    "trade": '{"stream":"bnbbtc@trade","data":{"e": "trade","E": 1672515782136,"s": "BNBBTC","t": 12345,'
    '"p": "0.001","q": "100","T": 1672515782136,"m": true,"M": true}}',
    # "Aggregate Trade Streams" (`<symbol>@aggTrade`, the opt-in agg_trades): the page's payload, in its
    # stream's frame
    "aggTrade": (
        '{"stream":"bnbbtc@aggTrade","data":{"e": "aggTrade","E": 1672515782136,"s": "BNBBTC","a": 12345,'
        '"p": "0.001","q": "100","f": 100,"l": 105,"T": 1672515782136,"m": true,"M": true}}'
    ),
    "bookTicker": '{"stream":"bnbusdt@bookTicker","data":{"u":400900217,"s":"BNBUSDT","b":"25.35190000",'
    '"B":"31.21000000","a":"25.36520000","A":"40.66000000"}}',
    "kline": '{"stream":"bnbbtc@kline_1m","data":{"e": "kline","E": 1672515782136,"s": "BNBBTC","k": {'
    '"t": 1672515780000,"T": 1672515839999,"s": "BNBBTC","i": "1m","f": 100,"L": 200,"o": "0.0010",'
    '"c": "0.0020","h": "0.0025","l": "0.0015","v": "1000","n": 100,"x": true,"q": "1.0000","V": "500",'
    '"Q": "0.500","B": "123456"}}}',
    "depthUpdate": (
        '{"stream":"bnbbtc@depth@100ms","data":{"e": "depthUpdate","E": 1672515782136,"s": "BNBBTC",'
        '"U": 157,"u": 160,"b": [["0.0024","10"]],"a": [["0.0026","100"]]}}'
    ),
    "ack": '{"result": null,"id": 1}',
    "error": '{"code": 2, "msg": "Invalid request: property name must be a string", "id": 3}',
}
USDM = {
    "aggTrade": (
        '{"stream":"btcusdt@aggTrade","data":{"e": "aggTrade","E": 123456789,"s": "BTCUSDT","a": 5933014,'
        '"p": "0.001","q": "100","f": 100,"l": 105,"T": 1591677567872,"m": true}}'
    ),
    "markPrice": (
        '{"stream":"btcusdt@markPrice@1s","data":{"e": "markPriceUpdate","E": 1562305380000,"s": "BTCUSDT",'
        '"p": "11794.15000000","i": "11784.62659091","P": "11784.25641265","r": "0.00038167",'
        '"T": 1562306400000}}'
    ),
    "markPriceArr": '{"stream":"!markPrice@arr@1s","data":[{"e": "markPriceUpdate","E": 1562305380000,'
    '"s": "BTCUSDT","p": "11185.87786614","i": "11784.62659091","P": "11784.25641265",'
    '"r": "0.00030000","T": 1562306400000}]}',
    "forceOrderArr": (
        '{"stream":"!forceOrder@arr","data":{"e":"forceOrder","E":1568014460893,"o":{"s":"BTCUSDT",'
        '"S":"SELL","o":"LIMIT","f":"IOC","q":"0.014","p":"9910","ap":"9910","X":"FILLED","l":"0.014",'
        '"z":"0.014","T":1568014460893}}}'
    ),
    # "Liquidation Order Streams" (`<symbol>@forceOrder`): the page's response example, in its stream's frame
    "forceOrder": (
        '{"stream":"btcusdt@forceOrder","data":{"e":"forceOrder","E":1568014460893,"o":{"s":"BTCUSDT",'
        '"S":"SELL","o":"LIMIT","f":"IOC","q":"0.014","p":"9910","ap":"9910","X":"FILLED","l":"0.014",'
        '"z":"0.014","T":1568014460893}}}'
    ),
    "bookTicker": '{"stream":"bnbusdt@bookTicker","data":{"e":"bookTicker","u":400900217,"E": 1568014460893,'
    '"T": 1568014460891,"s":"BNBUSDT","b":"25.35190000","B":"31.21000000","a":"25.36520000",'
    '"A":"40.66000000"}}',
    "depthUpdate": '{"stream":"btcusdt@depth@100ms","data":{"e": "depthUpdate","E": 123456789,"T": 123456788,'
    '"s": "BTCUSDT","U": 157,"u": 160,"pu": 149,"b": [["0.0024","10"]],"a": [["0.0026","100"]]}}',
}
OKX = {
    "trades": '{"arg": {"channel": "trades","instId": "BTC-USDT"},"data": [{"instId": "BTC-USDT",'
    '"tradeId": "130639474","px": "42219.9","sz": "0.12060306","side": "buy","ts": "1630048897897",'
    '"count": "3","source": "0","seqId": 1234}]}',
    "tickers": (
        '{"arg":{"channel":"tickers","instId":"BTC-USDT"},"data":[{"instType":"SPOT","instId":"BTC-USDT",'
        '"last":"9999.99","lastSz":"0.1","askPx":"9999.99","askSz":"11","bidPx":"8888.88","bidSz":"5",'
        '"open24h":"9000","high24h":"10000","low24h":"8888.88","volCcy24h":"2222","vol24h":"2222",'
        '"sodUtc0":"2222","sodUtc8":"2222","ts":"1597026383085"}]}'
    ),
    # the docs' example is a candle1D stamped 1597026383085: adapted to a minute (a 1-minute bar opens on one)
    "candle": (
        '{"arg":{"channel":"candle1m","instId":"BTC-USDT"},"data":[["1597026360000","8533.02","8553.74",'
        '"8527.17","8548.26","45247","529.5858061","5.29","1"]]}'
    ),
    "funding": '{"arg":{"channel":"funding-rate","instId":"BTC-USD-SWAP"},"data":[{"formulaType":"noRate",'
    '"fundingRate":"0.0001875391284828","fundingTime":"1700726400000","impactValue":"",'
    '"instId":"BTC-USD-SWAP","instType":"SWAP","interestRate":"","method":"current_period",'
    '"maxFundingRate":"0.00375","minFundingRate":"-0.00375","nextFundingRate":"",'
    '"nextFundingTime":"1700755200000","premium":"0.0001233824646391","settFundingRate":'
    '"0.0001699688181869","settState":"settled","ts":"1700724675402"}]}',
    "mark": '{"arg":{"channel":"mark-price","instId":"BTC-USDT-SWAP"},"data":[{"instType":"SWAP",'
    '"instId":"BTC-USDT-SWAP","markPx":"42310.6","ts":"1630049139746"}]}',
    "open_interest": (
        '{"arg":{"channel":"open-interest","instId":"BTC-USDT-SWAP"},"data":[{"instId":"BTC-USDT-SWAP",'
        '"instType":"SWAP","oi":"5000","oiCcy":"50","oiUsd":"50000","ts":"1597026383085"}]}'
    ),
    "liquidations": (
        '{"arg":{"channel":"liquidation-orders","instType":"SWAP"},"data":[{"details":[{"bkLoss":"0",'
        '"bkPx":"42000.5","ccy":"","posSide":"short","side":"buy","sz":"13","ts":"1692266434010"}],'
        '"instFamily":"BTC-USDT","instId":"BTC-USDT-SWAP","instType":"SWAP","uly":"BTC-USDT"}]}'
    ),
    # the docs print this snapshot shortened, with checksum -855196043 of the full book: 0 (absent) here
    "books": '{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"snapshot","data":[{"asks":'
    '[["8476.98","415","0","13"],["8477","7","0","2"]],"bids":[["8476.97","256","0","12"],'
    '["8475.55","101","0","1"]],"ts":"1597026383085","checksum":0,"prevSeqId":-1,"seqId":123456}]}',
    "subscribed": '{"event":"subscribe","arg":{"channel":"tickers","instId":"BTC-USDT"},"connId":"accb8e21"}',
    "error": (
        '{"event":"error","code":"60012","msg":"Invalid request: {\\"op\\": \\"subscribe\\", \\"argss\\":[{ '
        '\\"channel\\" : \\"tickers\\", \\"instId\\" : \\"BTC-USDT\\"}]}","connId":"a4d3ae55"}'
    ),
    "notice": (
        '{"event":"notice","code":"64008","msg":"The connection will soon be closed for a service upgrade. '
        'Please reconnect.","connId":"a4d3ae55"}'
    ),
}
DERIBIT = {
    "trades": '{"params":{"data":[{"trade_seq":30289442,"trade_id":"48079269","timestamp":1590484512188,'
    '"tick_direction":2,"price":8950,"mark_price":8948.9,"instrument_name":"BTC-PERPETUAL",'
    '"index_price":8955.88,"direction":"sell","amount":10}],"channel":"trades.BTC-PERPETUAL.100ms"},'
    '"method":"subscription","jsonrpc":"2.0"}',
    "book": (
        '{"params":{"data":{"type":"snapshot","timestamp":1554373962454,"instrument_name":"BTC-PERPETUAL",'
        '"change_id":297217,"bids":[["new",5042.34,30],["new",5041.94,20]],"asks":[["new",5042.64,40],'
        '["new",5043.3,40]]},"channel":"book.BTC-PERPETUAL.100ms"},"method":"subscription","jsonrpc":"2.0"}'
    ),
    "book_change": '{"params":{"data":{"type":"change","timestamp":1554373911330,"prev_change_id":297217,'
    '"instrument_name":"BTC-PERPETUAL","change_id":297218,"bids":[["delete",5041.94,0],'
    '["delete",5042.34,0]],"asks":[]},"channel":"book.BTC-PERPETUAL.100ms"},"method":"subscription",'
    '"jsonrpc":"2.0"}',
    "ticker": (
        '{"params":{"data":{"timestamp":1623060194301,"stats":{"volume_usd":284061480,'
        '"volume":7871.02139035,"price_change":0.7229,"low":35213.5,"high":36381},"state":"open",'
        '"settlement_price":36474.3,"open_interest":502097590,"min_price":35898.37,"max_price":36991.72,'
        '"mark_price":36446.51,"last_price":36457.5,"interest_value":1.7362511643080387,'
        '"instrument_name":"BTC-PERPETUAL","index_price":36441.64,"funding_8h":0.0000211,'
        '"estimated_delivery_price":36441.64,"current_funding":0,"best_bid_price":36442.5,'
        '"best_bid_amount":5000,"best_ask_price":36443,"best_ask_amount":100},'
        '"channel":"ticker.BTC-PERPETUAL.100ms"},"method":"subscription","jsonrpc":"2.0"}'
    ),
    "test_request": '{"jsonrpc":"2.0","method":"heartbeat","params":{"type":"test_request"}}',
    "subscribed": '{"jsonrpc":"2.0","id":3600,"result":["trades.BTC-PERPETUAL.100ms"]}',
    "invalid_params": '{"jsonrpc":"2.0","error":{"message":"Invalid params","data":{"reason":"wrong format",'
    '"param":"nonce"},"code":-32602},"testnet":false,"usIn":1535037392434763,'
    '"usOut":1535037392448119,"usDiff":13356}',
    "rate_limited": (
        '{"jsonrpc":"2.0","id":9,"error":{"message":"too_many_requests","code":10028},"testnet":false}'
    ),
}


def payloads(venue: str, text: str, datasets="all") -> list[dict]:
    protocol = documented(stream_protocol(venue, datasets))  # sizes: the venues' documented reference data
    return [json.loads(m.payload) for m in protocol.messages(protocol.decode(text), 1)]


def test_binance_spot_documented_frames():
    spot = stream_protocol("BINANCE", "all")
    (trade,) = spot.trades(spot.decode(BINANCE["trade"]))
    assert (trade.trade_id, trade.price, trade.quantity, trade.side, trade.ts_us) == (
        "12345",
        0.001,
        100.0,
        "sell",
        1672515782136_000,
    )  # m true: the buyer made, the taker sold
    (ticker,) = payloads("BINANCE", BINANCE["bookTicker"])
    assert (ticker["bid"], ticker["bid_size"], ticker["ask"], ticker["ts_ms"]) == (
        25.3519,
        31.21,
        25.3652,
        None,
    )
    (bar,) = payloads("BINANCE", BINANCE["kline"])
    assert (bar["open_ms"], bar["close"], bar["volume"], bar["amount"], bar["trades"]) == (
        1672515780000,
        0.002,
        1000,
        1.0,
        100,
    )
    depth = spot.decode(BINANCE["depthUpdate"])
    assert (depth.dataset, depth.instrument) == ("books", "BNBBTC")
    sync = spot.new_book("BNBBTC")
    assert (
        sync.on_frame(depth.data) == "buffered" and sync.on_snapshot(158, [["0.0024", "1"]], []) == "synced"
    )
    assert sync.book.top(1)[0] == [("0.0024", "10")]
    again = spot.decode(
        BINANCE["depthUpdate"]
    )  # the stream known: read into its declared record (DepthEvent)
    assert type(again.data).__name__ == "DepthEvent" and again.instrument == "BNBBTC"
    assert spot.book_time_ms(again.data) == spot.book_time_ms(depth.data) == 1672515782136
    typed = spot.new_book("BNBBTC")
    assert (
        typed.on_frame(again.data) == "buffered" and typed.on_snapshot(158, [["0.0024", "1"]], []) == "synced"
    )
    assert typed.book.top(1) == sync.book.top(1) and typed.book.update_id == sync.book.update_id == 160
    assert spot.decode(BINANCE["ack"]).kind == "ack"
    error = spot.decode(BINANCE["error"])
    assert (error.kind, error.request_id, error.code, json.loads(error.error)["msg"]) == (
        "error",
        3,
        "2",
        "Invalid request: property name must be a string",
    )


def test_binance_spot_aggregate_trades_are_opt_in_and_the_archives_rows():
    """Spot's `aggTrade` is the agg_trades dataset, collected only when named (not by default, nor by
    `marketdata collect`'s every-dataset default); its row is the one the data.binance.vision aggTrades
    archive gives the same aggregate (trade_id = seq = `a`, ts = `T`, amount = p x q, side from `m`), and
    the message keeps the first and last individual trade ids `f`, `l`."""
    import polars as pl

    from marketdata_assets.apps.live import venue_protocol
    from marketdata_assets.ingest.live.hourly.dataset_rows import MAPPERS
    from marketdata_assets.sources.binance_vision.dumps import LAYOUTS, normalize

    assert (
        "agg_trades" not in stream_protocol("BINANCE").datasets
        and "agg_trades" not in venue_protocol("BINANCE").datasets
    )
    spot = stream_protocol("BINANCE", ["agg_trades"])
    assert spot.channels(["BNBBTC"], 100) == ["bnbbtc@aggTrade"]
    (message,) = spot.messages(spot.decode(BINANCE["aggTrade"]), 1)
    assert (message.dataset, message.instrument, message.msg_id, message.event_ms) == (
        "agg_trades",
        "BNBBTC",
        "agg_trades.BINANCE.BNBBTC.12345",
        1672515782136,
    )
    payload = json.loads(message.payload)
    assert (
        payload["trade_id"],
        payload["seq"],
        payload["price"],
        payload["quantity"],
        payload["amount"],
        payload["side"],
        payload["ts_us"],
        payload["first_trade_id"],
        payload["last_trade_id"],
    ) == ("12345", 12345, 0.001, 100.0, 0.1, "sell", 1672515782136_000, 100, 105)  # m true: the taker sold
    archived = pl.DataFrame(
        {
            "agg_trade_id": [12345],
            "price": [0.001],
            "quantity": [100.0],
            "first_trade_id": [100],
            "last_trade_id": [105],
            "transact_time": [1672515782136],
            "is_buyer_maker": [True],
            "is_best_match": ["True"],
        }
    )
    (want,) = normalize(archived, LAYOUTS[("aggTrades", "spot")], "BNBBTC").to_dicts()
    (row,) = MAPPERS["agg_trades"](payload, spot, "BNBBTC")
    assert row["ts"] == 1672515782136_000 and want["ts"].timestamp() == 1672515782.136
    assert {k: row[k] for k in ("trade_id", "price", "quantity", "amount", "side", "seq")} == {
        k: want[k] for k in ("trade_id", "price", "quantity", "amount", "side", "seq")
    }


def test_binance_usdm_documented_frames():
    um = stream_protocol("BINANCE_UM", "all")
    (trade,) = um.trades(um.decode(USDM["aggTrade"]))
    assert (trade.trade_id, trade.seq, trade.amount, trade.event_ms) == ("5933014", 5933014, 0.1, 123456789)
    mark, funding = payloads("BINANCE_UM", USDM["markPrice"])
    assert (mark["mark_price"], mark["index_price"], funding["funding_rate"], funding["next_funding_ms"]) == (
        11794.15,
        11784.62659091,
        0.00038167,
        1562306400000,
    )
    assert [p["instrument"] for p in payloads("BINANCE_UM", USDM["markPriceArr"])] == ["BTCUSDT", "BTCUSDT"]
    (liquidation,) = payloads("BINANCE_UM", USDM["forceOrderArr"])
    assert (
        liquidation["instrument"],
        liquidation["side"],
        liquidation["price"],
        liquidation["quantity"],
        liquidation["ts_ms"],
        liquidation["order_price"],
    ) == ("BTCUSDT", "sell", 9910, 0.014, 1568014460893, 9910)
    assert payloads("BINANCE_UM", USDM["forceOrder"]) == [liquidation]  # the symbol's stream: the same record
    # the example fills at its order's price; one that filled better keeps both: price `ap`, order_price `p`
    (better,) = payloads("BINANCE_UM", USDM["forceOrder"].replace('"ap":"9910"', '"ap":"9925.5"'))
    assert (better["price"], better["order_price"], better["amount"]) == (9925.5, 9910, 9925.5 * 0.014)
    (unfilled,) = payloads(
        "BINANCE_UM", USDM["forceOrder"].replace('"ap":"9910"', '"ap":"0"').replace('"z":"0.014"', '"z":"0"')
    )  # nothing filled: the order's price and quantity, as the archives
    assert (unfilled["price"], unfilled["order_price"], unfilled["quantity"]) == (9910, 9910, 0.014)
    (ticker,) = payloads("BINANCE_UM", USDM["bookTicker"])
    assert (ticker["bid"], ticker["ask_size"], ticker["ts_ms"]) == (25.3519, 40.66, 1568014460893)
    sync = um.new_book("BTCUSDT")
    first = um.decode(USDM["depthUpdate"])
    sync.on_frame(first.data)
    assert (
        sync.on_snapshot(158, [], []) == "synced" and sync.book.update_id == 160
    )  # U <= lastUpdateId + 1 <= u
    again = um.decode(USDM["depthUpdate"])  # the stream known: read into its declared record (UsdmDepthEvent)
    assert (
        type(again.data).__name__ == "UsdmDepthEvent"
        and um.book_time_ms(again.data) == um.book_time_ms(first.data) == 123456789
    )
    typed = um.new_book("BTCUSDT")
    typed.on_frame(again.data)
    assert typed.on_snapshot(158, [], []) == "synced" and typed.book.top(5) == sync.book.top(5)


def test_okx_documented_frames():
    okx = documented(stream_protocol("OKX", "all"))
    (trade,) = okx.trades(okx.decode(OKX["trades"]))
    assert (trade.trade_id, trade.price, trade.quantity, trade.side, trade.seq) == (
        "130639474",
        42219.9,
        0.12060306,
        "buy",
        130639474,
    )
    (ticker,) = payloads("OKX", OKX["tickers"])
    assert (ticker["bid"], ticker["bid_size"], ticker["ask"], ticker["ask_size"], ticker["last"]) == (
        8888.88,
        5,
        9999.99,
        11,
        9999.99,
    )
    (bar,) = payloads("OKX", OKX["candle"])
    assert (bar["open"], bar["close"], bar["volume"], bar["amount"]) == (8533.02, 8548.26, 45247.0, 5.29)
    (funding,) = payloads("OKX", OKX["funding"])
    assert (funding["funding_rate"], funding["next_funding_ms"], funding["ts_ms"]) == (
        0.0001875391284828,
        1700726400000,
        1700724675402,
    )  # the rate for the settlement at fundingTime
    (mark,) = payloads("OKX", OKX["mark"])
    assert (mark["mark_price"], mark["index_price"]) == (42310.6, None)
    (oi,) = payloads("OKX", OKX["open_interest"])
    assert (oi["contracts"], oi["contract_size"], oi["size_unit"], oi["base"], oi["quote"]) == (
        5000.0,
        0.01,
        "base",
        50.0,
        50000.0,
    )
    (liquidation,) = payloads("OKX", OKX["liquidations"])
    assert (liquidation["instrument"], liquidation["side"], liquidation["quantity"]) == (
        "BTC-USDT-SWAP",
        "buy",
        0.13,
    )
    assert math.isclose(liquidation["amount"], 42000.5 * 0.13)
    books = okx.decode(OKX["books"])
    sync = okx.new_book("BTC-USDT")
    assert sync.on_frame(books.data) == "snapshot" and sync.book.top(1) == (
        [("8476.97", "256")],
        [("8476.98", "415")],
    )
    assert okx.decode(OKX["subscribed"]).kind == "ack"
    error = okx.decode(OKX["error"])
    assert (error.kind, error.code, json.loads(error.error)["connId"]) == ("error", "60012", "a4d3ae55")
    assert okx.decode(OKX["notice"]).kind == "notice"
    assert okx.decode("pong").kind == "control"


def test_deribit_documented_frames():
    deribit = documented(stream_protocol("DERIBIT", "all"))
    (trade,) = deribit.trades(deribit.decode(DERIBIT["trades"]))
    assert (trade.trade_id, trade.seq, trade.price, trade.quantity, trade.amount, trade.side) == (
        "48079269",
        30289442,
        8950.0,
        10 / 8950,
        10.0,
        "sell",
    )  # inverse: the USD amount and its BTC
    sync = deribit.new_book("BTC-PERPETUAL")
    assert sync.on_frame(deribit.decode(DERIBIT["book"]).data) == "snapshot"
    assert sync.on_frame(deribit.decode(DERIBIT["book_change"]).data) == "applied"
    assert sync.book.top(5) == ([], [("5042.64", "40"), ("5043.3", "40")])
    ticker, mark, funding, oi = payloads("DERIBIT", DERIBIT["ticker"])
    assert (ticker["bid"], ticker["bid_size"], ticker["funding_rate"]) == (36442.5, 5000 / 36442.5, 0)
    assert (
        mark["mark_price"],
        mark["index_price"],
        funding["funding_rate"],
        funding["next_funding_ms"],
        funding["funding_rate_8h"],
    ) == (36446.51, 36441.64, 0, None, 0.0000211)  # current_funding, funding_8h
    assert (oi["contracts"], oi["contract_size"], oi["size_unit"], oi["quote"]) == (
        50209759.0,
        10.0,
        "quote",
        502097590.0,
    )
    beat = deribit.decode(DERIBIT["test_request"])
    assert beat.kind == "control" and json.loads(beat.reply)["method"] == "public/test"
    assert deribit.decode(DERIBIT["subscribed"]).kind == "ack"
    refused = deribit.decode(DERIBIT["invalid_params"])
    assert (refused.code, json.loads(refused.error)["data"]) == (
        "-32602",
        {"reason": "wrong format", "param": "nonce"},
    )
    assert deribit.decode(DERIBIT["rate_limited"]).code == "10028"


@pytest.mark.parametrize(
    ("venue", "text"),
    [
        ("OKX", OKX["trades"].replace('"px": "42219.9"', '"px": "-1"')),
        ("DERIBIT", DERIBIT["trades"].replace('"direction":"sell"', '"direction":"sideways"')),
        ("BINANCE_UM", USDM["aggTrade"].replace('"m": true', '"m": "yes"')),
    ],
)
def test_a_documented_frame_with_a_wrong_field_is_refused_naming_it(venue, text):
    protocol = documented(stream_protocol(venue, "all"))
    with pytest.raises(MALFORMED) as refused:
        protocol.trades(protocol.decode(text))
    assert venue in str(refused.value)


def _without(text: str, *fields: str) -> str:
    """A documented frame as sent before the venue added `fields` (removed wherever they sit)."""

    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in fields}
        return [strip(v) for v in value] if isinstance(value, list) else value

    return json.dumps(strip(json.loads(text)))


# venue, documented frame, the fields the venue added later, what each stored record must hold then
OLDER_FRAMES = [
    # OKX open-interest: `oiUsd` came later (real 2021 pushes carry oi, oiCcy and ts only)
    ("OKX", OKX["open_interest"], ("oiUsd",), {"open_interest": {"contracts": 5000.0, "quote": None}}),
    # Binance USD-M markPriceUpdate: the index price `i` and the estimated settle price `P` came later
    (
        "BINANCE_UM",
        USDM["markPrice"],
        ("i", "P"),
        {
            "mark_price": {"mark_price": 11794.15, "index_price": None},
            "funding": {"funding_rate": 0.00038167},
        },
    ),
    # Deribit ticker: funding_8h, interest_value, estimated_delivery_price and last_price are not in older
    # (and not in every instrument's) notifications
    (
        "DERIBIT",
        DERIBIT["ticker"],
        ("funding_8h", "interest_value", "estimated_delivery_price", "last_price"),
        {"tickers": {"bid": 36442.5, "last": None}, "funding": {"funding_rate": 0, "funding_rate_8h": None}},
    ),
]


@pytest.mark.parametrize("venue, text, added, expected", OLDER_FRAMES, ids=[f[0] for f in OLDER_FRAMES])
def test_an_older_frame_lacking_a_later_added_field_is_kept_with_it_null(venue, text, added, expected):
    protocol = documented(stream_protocol(venue, "all"))
    older = _without(text, *added)
    assert all(f'"{name}"' not in older for name in added)
    messages = {m.dataset: json.loads(m.payload) for m in protocol.messages(protocol.decode(older), 1)}
    for dataset, fields in expected.items():
        assert {k: messages[dataset][k] for k in fields} == fields, dataset
