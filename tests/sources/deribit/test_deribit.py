"""Deribit v2 client: JSON-RPC bodies, USD amounts of inverse contracts, has_more paging, 10028 limits."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from marketdata_assets.core.http import SourceDataError, SourcePermissionError, SourceRequestError
from marketdata_assets.datasets.frames import BARS_SCHEMA, BOOKS_SCHEMA, TRADES_SCHEMA
from marketdata_assets.replay.crypto import ReplayConfig
from marketdata_assets.sources.deribit import DeribitClient
from marketdata_assets.sources.deribit.rest import parse_chart, parse_order_book, parse_trades
from marketdata_assets.sources.venues import venue_client
from tests.support.scripted_server import Reply, ScriptedServer
from tests.support.ticks_common import DAY, END, FAST, START, UTC, crypto_replay, run


def client(server, **kwargs) -> DeribitClient:
    return DeribitClient(server.base_url, **{"retry": FAST, "requests_per_minute": 60_000, **kwargs})


# a run of 300 trades in one millisecond: longer than a page of 200
server, _clean = crypto_replay(ReplayConfig(seed=9, trades_per_day=2500, burst_share=0.2, burst_run=300))


# ---- parsers on the vendor's exact bodies ---------------------------------------------------

TRADES_BODY = {
    "jsonrpc": "2.0",
    "result": {
        "trades": [
            {
                "trade_seq": 30289432,
                "trade_id": "48079254",
                "timestamp": 1590484156350,
                "tick_direction": 0,
                "price": 8950.0,
                "mark_price": 8948.9,
                "instrument_name": "BTC-PERPETUAL",
                "index_price": 8955.88,
                "direction": "sell",
                "amount": 10.0,
            },
            {
                "trade_seq": 30289433,
                "trade_id": "48079255",
                "timestamp": 1590484156350,
                "tick_direction": 1,
                "price": 8950.5,
                "mark_price": 8948.9,
                "instrument_name": "BTC-PERPETUAL",
                "index_price": 8955.88,
                "direction": "buy",
                "amount": 1500,
                "liquidation": "M",
            },
        ],
        "has_more": True,
    },
    "usIn": 1590484156350497,
    "usOut": 1590484156352040,
    "usDiff": 1543,
    "testnet": False,
}


def test_trades_of_an_inverse_perpetual_are_usd_amounts():
    frame, has_more = parse_trades(TRADES_BODY, "BTC-PERPETUAL")
    assert has_more is True and frame.schema == pl.Schema(TRADES_SCHEMA)
    assert frame.row(0, named=True) == dict.fromkeys(TRADES_SCHEMA) | {  # a column not named: null
        "ts": datetime(2020, 5, 26, 9, 9, 16, 350000, tzinfo=UTC),
        "venue": "DERIBIT",
        "instrument": "BTC-PERPETUAL",
        "trade_id": "48079254",
        "price": 8950.0,
        "quantity": 10.0 / 8950.0,
        "amount": 10.0,
        "side": "sell",
        "seq": 30289432,
    }
    assert frame["quantity"][1] == 1500 / 8950.5 and frame["amount"][1] == 1500.0


def test_eth_trade_ids_carry_a_prefix_and_linear_amounts_are_base_units():
    eth = {
        **TRADES_BODY,
        "result": {
            "has_more": False,
            "trades": [
                {
                    **TRADES_BODY["result"]["trades"][0],
                    "trade_id": "ETH-284830839",
                    "instrument_name": "ETH-PERPETUAL",
                    "price": 3000.05,
                    "amount": 7.0,
                }
            ],
        },
    }
    frame, has_more = parse_trades(eth, "ETH-PERPETUAL")
    assert (frame["trade_id"][0], has_more, frame["quantity"][0]) == ("ETH-284830839", False, 7.0 / 3000.05)
    linear = {
        **TRADES_BODY,
        "result": {
            "has_more": False,
            "trades": [
                {
                    **TRADES_BODY["result"]["trades"][0],
                    "instrument_name": "BTC_USDC-PERPETUAL",
                    "amount": 0.25,
                }
            ],
        },
    }
    frame, _ = parse_trades(linear, "BTC_USDC-PERPETUAL")
    assert (frame["quantity"][0], frame["amount"][0]) == (0.25, 0.25 * 8950.0)


def test_order_book_numeric_levels_and_change_id():
    body = {
        "jsonrpc": "2.0",
        "id": 8772,
        "result": {
            "timestamp": 1550757626706,
            "stats": {"volume": 93.35589552, "price_change": 0.6913, "low": 3940.75, "high": 3976.25},
            "state": "open",
            "settlement_price": 3925.85,
            "open_interest": 45.27600333464605,
            "min_price": 3932.22,
            "max_price": 3971.74,
            "mark_price": 3931.97,
            "last_price": 3955.75,
            "instrument_name": "BTC-PERPETUAL",
            "index_price": 3910.46,
            "funding_8h": 0.00455263,
            "current_funding": 0.00500063,
            "change_id": 474988,
            "bids": [[3955.75, 30.0], [3940.75, 102020.0]],
            "best_bid_price": 3955.75,
            "best_bid_amount": 30.0,
            "best_ask_price": 0.0,
            "best_ask_amount": 0.0,
            "asks": [],
        },
        "usIn": 1550757626706614,
        "usOut": 1550757626707000,
        "usDiff": 386,
        "testnet": False,
    }
    frame = parse_order_book(body, "BTC-PERPETUAL")
    assert frame.schema == pl.Schema(BOOKS_SCHEMA)
    ts = datetime(2019, 2, 21, 14, 0, 26, 706000, tzinfo=UTC)
    assert frame.rows() == [
        (ts, "DERIBIT", "BTC-PERPETUAL", "bid", 0, 3955.75, 30.0 / 3955.75, 474988),
        (ts, "DERIBIT", "BTC-PERPETUAL", "bid", 1, 3940.75, 102020.0 / 3940.75, 474988),
    ]


def test_tradingview_chart_arrays():
    body = {
        "jsonrpc": "2.0",
        "id": 833,
        "result": {
            "volume": [19.007942601, 20.095877981],
            "cost": [19000.0, 23400.0],
            "ticks": [1554373800000, 1554373860000],
            "status": "ok",
            "open": [4963.42, 4986.29],
            "low": [4728.94, 4726.6],
            "high": [5185.45, 5250.87],
            "close": [5052.95, 5013.41],
        },
        "usIn": 1554373946307,
        "usOut": 1554373946310,
        "usDiff": 3,
        "testnet": False,
    }
    frame = parse_chart(body, "BTC-PERPETUAL")
    assert frame.schema == pl.Schema(BARS_SCHEMA)
    assert frame.row(1) == (
        datetime(2019, 4, 4, 10, 31, tzinfo=UTC),
        "DERIBIT",
        "BTC-PERPETUAL",
        4986.29,
        5250.87,
        4726.6,
        5013.41,
        20.095877981,
        23400.0,
        None,
    )
    empty = {
        "jsonrpc": "2.0",
        "result": {
            "status": "no_data",
            "ticks": [],
            "open": [],
            "high": [],
            "low": [],
            "close": [],
            "volume": [],
            "cost": [],
        },
    }
    assert parse_chart(empty, "BTC-PERPETUAL").height == 0
    body["result"]["close"] = body["result"]["close"][:1]
    with pytest.raises(SourceDataError, match="differ in length"):
        parse_chart(body, "BTC-PERPETUAL")


BOOK_BODY = json.dumps(
    {
        "jsonrpc": "2.0",
        "result": {
            "timestamp": 1550757626706,
            "change_id": 7,
            "bids": [[3955.75, 30.0]],
            "asks": [[3956.0, 40.0]],
        },
    }
).encode()


# ---- paging and data against the replay's ground truth ---------------------------------------


@pytest.mark.parametrize("instrument", ["BTC-PERPETUAL", "ETH-PERPETUAL", "BTC_USDC-PERPETUAL"])
def test_a_day_of_trades_pages_by_time_and_sequence_without_loss_or_duplicates(server, instrument):
    async def go():
        async with venue_client(
            "DERIBIT", server.base_url, retry=FAST, requests_per_minute=60_000, page_limit=200
        ) as api:
            return await api.trades(instrument, START, END)

    trades = run(go())
    assert_frame_equal(trades, server.truth_trades("DERIBIT", instrument, DAY), check_exact=True)
    assert trades.height == 2500 and trades["trade_id"].n_unique() == 2500
    # the 300-trade millisecond cannot be passed by moving start_timestamp: trade_seq paging took over
    assert server.requests("DERIBIT", instrument, "trades")[-1]["path"].endswith(
        "get_last_trades_by_instrument"
    )


def test_bars_and_book(server):
    async def go():
        async with client(server) as api:
            return (
                await api.bars_1m("BTC-PERPETUAL", START, END),
                await api.book_snapshot("BTC-PERPETUAL", 15),
            )

    bars, book = run(go())
    assert_frame_equal(bars, server.truth_bars("DERIBIT", "BTC-PERPETUAL", DAY), check_exact=True)
    assert bars.height == 1440 and len(server.requests("DERIBIT", "BTC-PERPETUAL", "bars")) == 2
    truth = server.last_book("DERIBIT", "BTC-PERPETUAL").filter(pl.col("level") < 15)
    assert_frame_equal(book, truth, check_exact=True)
    assert server.requests("DERIBIT", "BTC-PERPETUAL", "book")[-1]["query"]["depth"] == "20"


@pytest.mark.parametrize("status", [429, 400])
def test_10028_too_many_requests_is_retried(server, status):
    server.add_fault(
        kind="rate_limit",
        venue="DERIBIT",
        instrument="ETH-PERPETUAL",
        status=status,
        times=2,
        retry_after=None,
    )

    async def go():
        async with client(server) as api:
            return await api.book_snapshot("ETH-PERPETUAL", 5), api.stats

    book, stats = run(go())
    assert book.height == 10 and stats.rate_limited == 2


def test_other_rpc_errors_are_clear(server):
    async def go(instrument):
        async with client(server) as api:
            await api.book_snapshot(instrument, 5)

    with pytest.raises(SourceRequestError, match="Invalid params.*instrument not found") as error:
        run(go("BTC-NOPE"))
    assert error.value.code == -32602 and error.value.status == 400 and "get_order_book" in str(error.value)
    assert str(error.value).startswith(
        "DERIBIT BTC-NOPE: HTTP 400, code -32602: Invalid params (reason=instrument "
        "not found, param=instrument_name)"
    )
    assert (
        error.value.instrument == "BTC-NOPE" and len(server.requests("DERIBIT", "BTC-NOPE")) == 1
    )  # not retried
    server.add_fault(kind="unauthorized", venue="DERIBIT", times=1)
    with pytest.raises(SourcePermissionError, match="13009"):
        run(go("BTC-PERPETUAL"))


def test_a_permission_code_stops_the_endpoint_without_another_request(server):
    server.add_fault(kind="unauthorized", venue="DERIBIT", instrument="ETH-PERPETUAL", times=1)
    before = len(server.requests("DERIBIT", "ETH-PERPETUAL", "book"))

    async def go():
        async with client(server) as api:
            errors = []
            for _ in range(2):
                with pytest.raises(SourcePermissionError) as error:
                    await api.book_snapshot("ETH-PERPETUAL", 5)
                errors.append(error.value)
            return errors

    first, second = run(go())
    assert second is first and first.status == 400
    assert str(first).startswith("DERIBIT refused access (HTTP 400): code 13009: unauthorized")
    assert len(server.requests("DERIBIT", "ETH-PERPETUAL", "book")) == before + 1


def test_a_rejected_parameter_names_reason_and_param(server):
    server.add_fault(
        kind="vendor_error", venue="DERIBIT", instrument="ETH-PERPETUAL", endpoint="book", times=1
    )

    async def go():
        async with client(server) as api:
            await api.book_snapshot("ETH-PERPETUAL", 5)

    with pytest.raises(
        SourceRequestError, match=r"Invalid params \(reason=wrong format, param=instrument_name\)"
    ) as error:
        run(go())
    assert error.value.code == -32602 and error.value.instrument == "ETH-PERPETUAL"


def test_the_retry_code_is_retried():
    with ScriptedServer() as scripted:
        scripted.replies.append(Reply(400, b'{"jsonrpc":"2.0","error":{"message":"retry","code":10040}}'))
        scripted.replies.append(Reply(200, BOOK_BODY))

        async def go():
            async with DeribitClient(scripted.url, retry=FAST, requests_per_minute=60_000) as api:
                return await api.book_snapshot("BTC-PERPETUAL", 1), api.stats

        book, stats = run(go())
    assert book.height == 2 and stats.retries == 1 and stats.rate_limited == 0 and len(scripted.requests) == 2


def test_5xx_html_from_the_proxy_is_retried(server):
    server.add_fault(kind="server_error", venue="DERIBIT", status=502, times=2)

    async def go():
        async with client(server) as api:
            return await api.book_snapshot("BTC-PERPETUAL", 1), api.stats

    book, stats = run(go())
    assert book.height == 2 and stats.server_errors == 2


@pytest.mark.parametrize(
    "kind, message",
    [
        ("malformed_json", "malformed JSON"),
        ("missing_field", "lacks field 'price'"),
        ("bad_number", "not a number"),
    ],
)
def test_a_damaged_page_fails_only_its_instrument(server, kind, message):
    server.add_fault(
        kind=kind, venue="DERIBIT", instrument="ETH-PERPETUAL", endpoint="trades", after=1, times=1
    )
    window = (START + timedelta(hours=2), START + timedelta(hours=14))

    async def go():
        async with client(server, page_limit=100) as api:
            return await asyncio.gather(
                api.trades("ETH-PERPETUAL", *window),
                api.trades("BTC-PERPETUAL", *window),
                return_exceptions=True,
            )

    eth, btc = run(go())
    assert isinstance(eth, SourceDataError), eth
    assert message in str(eth) and eth.instrument == "ETH-PERPETUAL" and eth.day == DAY
    assert "get_last_trades_by_instrument_and_time?instrument_name=ETH-PERPETUAL" in str(eth)
    truth = server.truth_trades("DERIBIT", "BTC-PERPETUAL", DAY).filter(
        pl.col("ts").is_between(*window, closed="left")
    )
    assert_frame_equal(btc, truth, check_exact=True)


def test_latency_beyond_the_timeout_is_retried(server):
    server.add_fault(kind="latency", venue="DERIBIT", instrument="ETH-PERPETUAL", latency_s=0.4, times=1)

    async def go():
        async with client(server, timeout_s=0.2) as api:
            return await api.book_snapshot("ETH-PERPETUAL", 1), api.stats

    book, stats = run(go())
    assert book.height == 2 and stats.transport_errors == 1 and stats.retries == 1


def test_trades_by_seq_run_from_the_tape_into_what_the_websocket_replay_sent():
    """A span of trade_seqs from the replay's tape (traded before now) into those its WebSocket replay sent
    (the tape played on from now): one span, every seq once, as the live trade-id refill asks for it."""
    from marketdata_assets.replay.crypto import CryptoReplayServer
    from marketdata_assets.replay.crypto.live_book import LiveInstrument

    with CryptoReplayServer(ReplayConfig(seed=4, instruments={"DERIBIT": ["BTC-PERPETUAL"]})) as replay:
        live = LiveInstrument(replay.market, "BTC-PERPETUAL", seed=4, venue="DERIBIT")
        sent = [seq for seq, *_ in live.tape_trades(5)]  # sent now: the tape's own times for them are ahead

        async def go():
            async with venue_client(
                "DERIBIT", replay.base_url, retry=FAST, requests_per_minute=60_000
            ) as api:
                return await api.trades_by_seq("BTC-PERPETUAL", sent[0] - 10, sent[-1], day=DAY)

        trades = run(go())
    assert trades["seq"].to_list() == list(range(sent[0] - 10, sent[-1] + 1))
