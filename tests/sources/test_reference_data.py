"""Each venue's reference endpoint, read from its own documented examples (tests/fixtures/reference/,
README there): the master's fields, the arithmetic of sizes, and the one lookup an instrument never
seen costs, live and in history; its 24 h tickers as the volumes universe rules rank by."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import pytest

from marketdata_assets.core.http import Page, SourceDataError
from marketdata_assets.sources.binance import reference as binance
from marketdata_assets.sources.deribit import reference as deribit
from marketdata_assets.sources.deribit.client import DeribitClient
from marketdata_assets.sources.okx import reference as okx
from marketdata_assets.sources.okx.client import OkxClient
from marketdata_assets.sources.registry import stream_protocol
from tests.support.reference import FIXTURES, ReferenceServer, asking, deribit_records, okx_records


def utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def by_name(items) -> dict:
    return {item.instrument: item for item in items}


def test_okx_documented_instruments_of_every_type():
    docs = json.loads((FIXTURES / "okx_instruments.json").read_text())
    (spot,) = okx.instruments_of(docs["data"], Page("OKX", "instruments"))
    assert (
        spot.instrument,
        spot.type,
        spot.base,
        spot.quote,
        spot.tick_size,
        spot.lot_size,
        spot.min_size,
        spot.listed,
        spot.status,
        spot.size,
    ) == ("BTC-USDT", "spot", "BTC", "USDT", 0.1, 0.00000001, 0.00001, utc(1606468572000), "live", 1.0)
    items = by_name(okx.instruments_of(okx_records(), Page("OKX", "instruments")))
    inverse, linear = items["BTC-USD-SWAP"], items["BTC-USDT-SWAP"]
    assert (inverse.type, inverse.inverse, inverse.size, inverse.contract_unit, inverse.settle) == (
        "perpetual",
        True,
        100.0,
        "USD",
        "BTC",
    )
    assert (linear.inverse, linear.size, linear.contract_unit, linear.settle) == (False, 0.01, "BTC", "USDT")
    future = items["BTC-USD-241220"]
    assert (future.type, future.expires, future.underlying) == ("future", utc(1734681600000), "BTC-USD")
    option = items["BTC-USD-241217-92000-C"]  # ctVal 1 x ctMult 0.01 BTC
    assert (
        option.type,
        option.contract_value,
        option.contract_multiplier,
        option.size,
        option.strike,
        option.option_type,
        option.expires,
    ) == ("option", 1.0, 0.01, 0.01, 92000.0, "call", utc(1734422400000))
    assert "BTC-USDT" not in by_name(
        okx.instruments_of(
            json.loads((FIXTURES / "okx_instruments_margin_nautilus_trader.json").read_text())["data"],
            Page("OKX", "instruments"),
        )
    )  # MARGIN is not an instrument of its own


def test_deribit_documented_instruments():
    items = by_name(deribit.instruments_of(deribit_records(), Page("DERIBIT", "instruments")))
    perpetual, future, option = items["BTC-PERPETUAL"], items["BTC-29SEP23"], items["BTC-27DEC24-100000-C"]
    assert (
        perpetual.type,
        perpetual.inverse,
        perpetual.size,
        perpetual.contract_unit,
        perpetual.expires,
    ) == ("perpetual", True, 10.0, "USD", None)  # expiration_timestamp 32503708800000: none
    assert (future.type, future.expires, future.tick_size, future.min_size) == (
        "future",
        utc(1695974400000),
        2.5,
        10,
    )
    assert (
        option.type,
        option.inverse,
        option.size,
        option.contract_unit,
        option.strike,
        option.option_type,
    ) == ("option", False, 1.0, "BTC", 100000.0, "call")
    assert "BTC-COMBO-1" not in items  # combos are not kept
    assert items["BTC_USDC-PERPETUAL"].inverse is False and items["BTC_USDC-PERPETUAL"].size == 0.001


def test_binance_documented_exchange_info():
    (spot,) = binance.instruments_of(
        "BINANCE",
        json.loads((FIXTURES / "binance_spot_exchange_info.json").read_text()),
        Page("BINANCE", "exchangeInfo"),
    )
    assert (spot.instrument, spot.base, spot.quote, spot.status, spot.tick_size) == (
        "ETHBTC",
        "ETH",
        "BTC",
        "live",
        None,
    )  # the docs' filters: []
    (perp,) = binance.instruments_of(
        "BINANCE_UM",
        json.loads((FIXTURES / "binance_um_exchange_info.json").read_text()),
        Page("BINANCE_UM", "exchangeInfo"),
    )
    assert (
        perp.type,
        perp.listed,
        perp.expires,
        perp.tick_size,
        perp.lot_size,
        perp.min_size,
        perp.size,
    ) == ("perpetual", utc(1598252400000), None, 0.0001, 1.0, 1.0, 1.0)


def test_the_documented_24h_tickers_read_as_quote_volumes():
    taken = utc(1700000000000)
    spot = binance.volumes_of(
        "BINANCE",
        json.loads((FIXTURES / "binance_spot_ticker_24hr.json").read_text()),
        taken,
        Page("BINANCE", "ticker/24hr"),
        {"BNBBTC": "BTC"},  # the quote asset exchangeInfo gives the symbol
    )
    mini = binance.volumes_of(
        "BINANCE",
        json.loads((FIXTURES / "binance_spot_ticker_24hr_mini.json").read_text()),
        taken,
        Page("BINANCE", "ticker/24hr"),
    )
    assert [(v.instrument, v.quote_volume, v.unit, v.taken) for v in spot] == [("BNBBTC", 15.3, "BTC", taken)]
    assert [(v.instrument, v.quote_volume) for v in mini] == [("BNBBTC", 15.3), ("LTCBTC", 0.77)]
    (um,) = binance.volumes_of(
        "BINANCE_UM",
        json.loads((FIXTURES / "binance_um_ticker_24hr.json").read_text()),
        taken,
        Page("BINANCE_UM", "ticker/24hr"),
        {"ETHUSDT": "USDT"},  # a symbol exchangeInfo listed: BTCUSDT split by the quotes it holds
    )
    assert (um.venue, um.instrument, um.quote_volume, um.unit) == ("BINANCE_UM", "BTCUSDT", 15.3, "USDT")
    okx_docs = json.loads((FIXTURES / "okx_tickers.json").read_text())["data"]
    swaps = okx.volumes_of([(okx_docs, Page("OKX", "tickers"))], taken)  # volCcy24h is base: x last
    assert [(v.instrument, v.unit) for v in swaps] == [("LTC-USD-SWAP", "USD"), ("BTC-USD-SWAP", "USD")]
    assert [v.quote_volume for v in swaps] == pytest.approx([2222 * 9999.99] * 2)
    option = {
        **okx_docs[0],
        "instType": "OPTION",
        "instId": "BTC-USD-241217-92000-C",
        "last": "0.05",
        "volCcy24h": "3",
    }
    priced = {
        v.instrument: v
        for v in okx.volumes_of([(okx_docs, Page("OKX", "tickers")), ([option], Page("OKX", "o"))], taken)
    }["BTC-USD-241217-92000-C"]
    assert (priced.quote_volume, priced.unit) == (
        pytest.approx(3 * 0.05 * 9999.99),
        "USD",
    )  # x BTC-USD-SWAP's last
    (alone,) = okx.volumes_of(
        [([{**option, "instType": "SPOT", "instId": "BTC-USDT"}], Page("OKX", "t"))], taken
    )
    assert (alone.quote_volume, alone.unit) == (3.0, "USDT")  # spot's volCcy24h is the quote already
    result = json.loads((FIXTURES / "deribit_get_book_summary_by_currency.json").read_text())["result"]
    summaries = deribit.volumes_of(result, taken, Page("DERIBIT", "BTC future"))
    assert [(v.instrument, v.quote_volume, v.unit) for v in summaries] == [
        ("BTC-22FEB19", 0.0, "USD"),
        ("BTC-PERPETUAL", 22440.0, "USD"),
    ]
    no_usd = {**result[1], "volume_usd": None}
    assert (
        deribit.volumes_of([no_usd], taken, Page("DERIBIT", "x"))[0].quote_volume == 6.24 * 3595
    )  # volume x last
    with pytest.raises(SourceDataError, match="quoteVolume"):
        binance.volumes_of(
            "BINANCE", [{"symbol": "BTCUSDT", "quoteVolume": "-1"}], taken, Page("BINANCE", "t")
        )


TRADES = (
    '{"arg":{"channel":"trades","instId":"%s"},"data":[{"instId":"%s","tradeId":"130639474","px":"%s",'
    '"sz":"3","side":"buy","ts":"1630048897897","count":"3","source":"0","seqId":1234}]}'
)


@pytest.mark.parametrize(
    "instrument, price, base, quote",
    [
        ("BTC-USD-SWAP", "50000", 3 * 100 / 50000, 300.0),  # inverse: 3 x 100 USD
        ("BTC-USD-241220", "40000", 3 * 100 / 40000, 300.0),  # an inverse future
        ("BTC-USD-241217-92000-C", "0.05", 3 * 0.01, 0.05 * 0.03),  # an option: ctVal 1 x ctMult 0.01 BTC
    ],
)
def test_a_live_frame_of_an_instrument_never_seen_costs_one_lookup(instrument, price, base, quote):
    with ReferenceServer() as server:
        protocol = stream_protocol("OKX", "all", asking("OKX", server.url))
        for _ in range(3):
            (trade,) = protocol.trades(protocol.decode(TRADES % (instrument, instrument, price)))
            assert trade.quantity == pytest.approx(base) and trade.amount == pytest.approx(quote)
        assert server.asked == {okx.PATH: 1}


def test_what_the_venue_does_not_know_is_refused_and_a_mark_price_needs_no_size():
    with ReferenceServer() as server:
        protocol = stream_protocol("OKX", "all", asking("OKX", server.url))
        with pytest.raises(
            SourceDataError, match="OKX UNI-USD-SWAP: sizes are in contracts and the venue's reference"
        ):
            protocol.trades(protocol.decode(TRADES % ("UNI-USD-SWAP", "UNI-USD-SWAP", "5")))
        mark = (
            '{"arg":{"channel":"mark-price","instId":"UNI-USD-SWAP"},"data":[{"instType":"SWAP",'
            '"instId":"UNI-USD-SWAP","markPx":"5.1","ts":"1630049139746"}]}'
        )
        (message,) = protocol.messages(protocol.decode(mark), 1)
        assert json.loads(message.payload)["mark_price"] == 5.1
        assert server.asked == {okx.PATH: 1}  # the unknown one asked once, the mark price never


def test_deribit_option_open_interest_is_sized_by_the_venue():
    ticker = (
        '{"jsonrpc":"2.0","method":"subscription","params":{"channel":"ticker.BTC-27DEC24-100000-C.100ms",'
        '"data":{"timestamp":1623060194301,"instrument_name":"BTC-27DEC24-100000-C","open_interest":89.5,'
        '"mark_price":0.05,"index_price":36441.64,"best_bid_price":0.045,"best_bid_amount":1,'
        '"best_ask_price":0.055,"best_ask_amount":2}}}'
    )
    with ReferenceServer() as server:
        protocol = stream_protocol("DERIBIT", "all", asking("DERIBIT", server.url))
        datasets = {m.dataset: json.loads(m.payload) for m in protocol.messages(protocol.decode(ticker), 1)}
        oi = datasets["open_interest"]
        assert (oi["contracts"], oi["contract_size"], oi["size_unit"], oi["base"]) == (
            89.5,
            1.0,
            "base",
            89.5,
        )
        assert protocol.warnings.get("open_interest_no_contract_size", 0) == 0
        assert server.asked == {"/api/v2/public/get_instrument": 1}


def test_history_clients_look_an_instrument_up_once():
    async def go(url: str):
        async with OkxClient(url) as api_okx, DeribitClient(url) as api_deribit:
            first = await api_okx.reference("BTC-USD-241220")
            again = await api_okx.reference("BTC-USD-241220")
            unknown = await api_okx.reference("NOPE-USD-SWAP")
            spot = await api_okx.reference("BTC-USDT")
            option = await api_deribit.reference("BTC-27DEC24-100000-C")
            return first, again, unknown, spot, option

    with ReferenceServer() as server:
        first, again, unknown, spot, option = asyncio.run(go(server.url))
        assert (
            first == again and first.size == 100.0 and unknown is None and spot is None and option.size == 1.0
        )
        assert server.asked == {
            okx.PATH: 2,
            "/api/v2/public/get_instrument": 1,
        }  # the future, the unknown; none for spot


def test_tushare_stock_basic_rows_are_shares_listed_and_delisted():
    from marketdata_assets.sources.tushare.listing import ListedInstrument, instrument_of

    live = instrument_of(ListedInstrument("600000.SH", "浦发银行", "SSE", "主板", "L", "19991110"))
    gone = instrument_of(
        ListedInstrument("600087.SH", "退市长油", "SSE", "主板", "D", "19970611", "20140605")
    )
    assert (live.venue, live.type, live.quote, live.lot_size, live.status, live.expires) == (
        "SSE",
        "equity",
        "CNY",
        100.0,
        "live",
        None,
    )
    assert live.listed == datetime(1999, 11, 10, 1, 30, tzinfo=UTC)  # 09:30 Beijing
    assert (gone.status, gone.expires) == ("delisted", datetime(2014, 6, 5, 7, 0, tzinfo=UTC))


def test_a_collectors_instruments_are_sized_by_a_listing_per_type_before_their_first_frame():
    names = ["BTC-USD-SWAP", "BTC-USDT-SWAP", "BTC-USD-241220", "BTC-USD-241217-92000-C", "NOPE-USD-SWAP"]
    with ReferenceServer() as server:
        protocol = stream_protocol("OKX", "all", asking("OKX", server.url))
        assert protocol.reference_ready(names) > 0
        assert server.asked == {okx.PATH: 3}  # SWAP, FUTURES, the BTC-USD options: not a lookup each
        (trade,) = protocol.trades(protocol.decode(TRADES % ("BTC-USD-241220", "BTC-USD-241220", "40000")))
        assert trade.quantity == pytest.approx(3 * 100 / 40000)
        with pytest.raises(SourceDataError, match="NOPE-USD-SWAP"):  # not listed: unknown, not asked again
            protocol.trades(protocol.decode(TRADES % ("NOPE-USD-SWAP", "NOPE-USD-SWAP", "1")))
        assert server.asked == {okx.PATH: 3}
