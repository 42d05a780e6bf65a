"""Deribit tickers, funding, open interest, liquidations and option chains: the documented bodies, and
every dataset over the replay equal to the truth recomputed from its tapes and derived series."""

from __future__ import annotations

import asyncio
import copy
import math
from datetime import datetime, timedelta

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from marketdata_assets.core.http import SourceDataError, SourceRequestError
from marketdata_assets.datasets.frames import (
    FUNDING_SCHEMA,
    LIQUIDATIONS_SCHEMA,
    OPEN_INTEREST_SCHEMA,
    OPTION_CHAIN_SCHEMA,
    TICKERS_SCHEMA,
)
from marketdata_assets.replay.crypto import CryptoReplayServer, ReplayConfig, derived
from marketdata_assets.replay.crypto import deribit as replay
from marketdata_assets.replay.crypto.tape import MINUTE_US
from marketdata_assets.sources.deribit import DeribitClient
from marketdata_assets.sources.deribit.rest import (
    parse_funding,
    parse_liquidations,
    parse_open_interest,
    parse_option_chain,
    parse_ticker,
)
from marketdata_assets.sources.interface import SNAPSHOT
from marketdata_assets.sources.venues import serves
from tests.support.reference import known
from tests.support.ticks_common import DAY, END, FAST, START, UTC, crypto_replay, run

PERPETUALS = ["BTC-PERPETUAL", "ETH-PERPETUAL", "BTC_USDC-PERPETUAL"]
NOW = datetime(2025, 1, 16, 10, 30, 15, 250000, tzinfo=UTC)
HOUR = timedelta(hours=1)


def us(value: datetime) -> int:
    return int(value.timestamp()) * 1_000_000 + value.microsecond


def client(server, **kwargs) -> DeribitClient:
    return DeribitClient(server.base_url, **{"retry": FAST, "requests_per_minute": 60_000, **kwargs})


def fetch(server, method: str, *args, **kwargs):
    async def go():
        async with client(server, **kwargs) as api:
            return await getattr(api, method)(*args), api.stats

    return run(go())


server, _clean = crypto_replay(ReplayConfig(seed=5, trades_per_day=2000, now=NOW.isoformat()))


# ---- parsers on the vendor's documented bodies -----------------------------------------------

TICKER_BODY = {
    "jsonrpc": "2.0",
    "id": 8106,
    "result": {
        "best_ask_amount": 53040,
        "best_ask_price": 36290,
        "best_bid_amount": 4600,
        "best_bid_price": 36289.5,
        "current_funding": 0,
        "estimated_delivery_price": 36297.02,
        "funding_8h": 0.00002203,
        "index_price": 36297.02,
        "instrument_name": "BTC-PERPETUAL",
        "interest_value": 1.7362511643080387,
        "last_price": 36289.5,
        "mark_price": 36288.31,
        "max_price": 36833.4,
        "min_price": 35744.73,
        "open_interest": 502231260,
        "settlement_price": 36169.49,
        "state": "open",
        "stats": {
            "high": 36824.5,
            "low": 35213.5,
            "price_change": 0.2362,
            "volume": 7831.26548117,
            "volume_usd": 282615600,
        },
        "timestamp": 1623059681955,
    },
}
TICKER_TS = datetime(2021, 6, 7, 9, 54, 41, 955000, tzinfo=UTC)


def test_the_documented_ticker_is_a_tickers_row_in_base_units():
    frame = parse_ticker(TICKER_BODY, "BTC-PERPETUAL")
    assert frame.schema == pl.Schema(TICKERS_SCHEMA)
    assert frame.rows() == [
        (
            TICKER_TS,
            "DERIBIT",
            "BTC-PERPETUAL",
            36289.5,
            36289.5,
            4600 / 36289.5,
            36290.0,
            53040 / 36290,
            7831.26548117,
            282615600.0,
            36288.31,
            36297.02,
            0.0,
        )
    ]
    # an empty side comes as price 0 with amount 0 (the get_order_book example), a spot ticker without funding
    body = copy.deepcopy(TICKER_BODY)
    body["result"].update(
        best_ask_price=0.0, best_ask_amount=0.0, best_bid_price=None, instrument_name="BTC_USDC"
    )
    for key in ("current_funding", "funding_8h", "open_interest"):
        del body["result"][key]
    del body["result"]["stats"]["volume_usd"]
    row = parse_ticker(body, "BTC_USDC").row(0, named=True)
    nulls = ("bid", "bid_size", "ask", "ask_size", "amount_24h", "funding_rate")
    assert [row[k] for k in nulls] == [None] * 6
    with pytest.raises(SourceDataError, match="ticker is for 'BTC_USDC', not BTC-PERPETUAL"):
        parse_ticker(body, "BTC-PERPETUAL")


def test_the_documented_ticker_open_interest_in_contracts_base_and_quote():
    frame = parse_open_interest(TICKER_BODY, "BTC-PERPETUAL", reference=known("DERIBIT", "BTC-PERPETUAL"))
    assert frame.schema == pl.Schema(OPEN_INTEREST_SCHEMA)
    # 502,231,260 USD of 10-USD contracts
    assert frame.rows() == [
        (TICKER_TS, "DERIBIT", "BTC-PERPETUAL", 50223126.0, 10.0, "quote", 502231260 / 36288.31, 502231260.0)
    ]
    linear = copy.deepcopy(TICKER_BODY)
    linear["result"].update(instrument_name="BTC_USDC-PERPETUAL", open_interest=487.25)
    assert parse_open_interest(
        linear, "BTC_USDC-PERPETUAL", reference=known("DERIBIT", "BTC_USDC-PERPETUAL")
    ).row(0)[3:] == (487250.0, 0.001, "base", 487.25, 487.25 * 36288.31)
    with pytest.raises(
        SourceDataError, match="SOL_USDC-PERPETUAL: the venue's reference data .* does not know"
    ):
        parse_open_interest(linear, "SOL_USDC-PERPETUAL")
    sol = {**linear, "result": {**linear["result"], "instrument_name": "SOL_USDC-PERPETUAL"}}
    sizes = known("DERIBIT", "BTC_USDC-PERPETUAL")._replace(
        instrument="SOL_USDC-PERPETUAL", base="SOL", contract_value=0.1
    )
    assert parse_open_interest(sol, "SOL_USDC-PERPETUAL", reference=sizes).row(0)[3] == 4872.5
    future = {**TICKER_BODY, "result": {**TICKER_BODY["result"], "instrument_name": "BTC-27DEC24"}}
    assert (
        parse_open_interest(future, "BTC-27DEC24", reference=known("DERIBIT", "BTC-27DEC24"))[
            "contract_size"
        ][0]
        == 10.0
    )


FUNDING_BODY = {
    "jsonrpc": "2.0",
    "id": 7617,
    "result": [
        {
            "timestamp": 1569891600000,
            "index_price": 8222.87,
            "prev_index_price": 8305.72,
            "interest_8h": -0.00009234260068476106,
            "interest_1h": -4.739622041017375e-7,
        },
        {
            "timestamp": 1569895200000,
            "index_price": 8286.49,
            "prev_index_price": 8222.87,
            "interest_8h": -0.00006720918180255509,
            "interest_1h": -2.8583510923267753e-7,
        },
        {
            "timestamp": 1569898800000,
            "index_price": 8431.97,
            "prev_index_price": 8286.49,
            "interest_8h": -0.00003544496169694662,
            "interest_1h": -0.000003815906848177951,
        },
        {
            "timestamp": 1569902400000,
            "index_price": 8422.36,
            "prev_index_price": 8431.97,
            "interest_8h": -0.00001404147515584998,
            "interest_1h": 8.312033064379086e-7,
        },
    ],
}


def test_the_documented_funding_history_is_hourly_interest_1h():
    frame = parse_funding(FUNDING_BODY, "BTC-PERPETUAL")
    assert frame.schema == pl.Schema(FUNDING_SCHEMA)
    first = datetime(2019, 10, 1, 1, tzinfo=UTC)
    assert frame.rows()[0] == (
        first,
        "DERIBIT",
        "BTC-PERPETUAL",
        -4.739622041017375e-7,
        1.0,
        -0.00009234260068476106,
        None,
        8222.87,
    )
    assert frame["ts"].to_list() == [first + k * HOUR for k in range(4)]
    bad = copy.deepcopy(FUNDING_BODY)
    bad["result"][2]["interest_1h"] = "n/a"
    with pytest.raises(SourceDataError, match=r"funding at 2019-10-01T03:00:00\+00:00 interest_1h is 'n/a'"):
        parse_funding(bad, "BTC-PERPETUAL")


# The documented public trade, flagged as the docs describe: "M" the maker side was under liquidation,
# "T" the taker side, "MT" both.
TRADES_BODY = {
    "jsonrpc": "2.0",
    "result": {
        "has_more": False,
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
            {
                "trade_seq": 30289434,
                "trade_id": "48079256",
                "timestamp": 1590484156351,
                "tick_direction": 1,
                "price": 8951.0,
                "mark_price": 8948.9,
                "instrument_name": "BTC-PERPETUAL",
                "index_price": 8955.88,
                "direction": "sell",
                "amount": 200,
                "liquidation": "MT",
            },
        ],
    },
}


def test_flagged_trades_are_one_liquidation_per_liquidated_side():
    frame, has_more = parse_liquidations(TRADES_BODY, "BTC-PERPETUAL")
    assert frame.schema == pl.Schema(LIQUIDATIONS_SCHEMA) and has_more is False
    t = datetime(2020, 5, 26, 9, 9, 16, 350000, tzinfo=UTC)
    t1 = t + timedelta(milliseconds=1)
    assert frame.rows() == [  # 48079255: a taker bought from a liquidated seller's resting order
        (t, "DERIBIT", "BTC-PERPETUAL", "48079255-M", "sell", 8950.5, 1500 / 8950.5, 1500.0, None),
        (t1, "DERIBIT", "BTC-PERPETUAL", "48079256-M", "buy", 8951.0, 200 / 8951.0, 200.0, None),
        (t1, "DERIBIT", "BTC-PERPETUAL", "48079256-T", "sell", 8951.0, 200 / 8951.0, 200.0, None),
    ]  # a trade: no order price
    bad = copy.deepcopy(TRADES_BODY)
    bad["result"]["trades"][1]["liquidation"] = "X"
    with pytest.raises(SourceDataError, match="trade 48079255 liquidation is 'X', not one of M, T, MT"):
        parse_liquidations(bad, "BTC-PERPETUAL")


# The documented book summary (its example lacks mark_iv, which every option's summary carries).
SUMMARY_BODY = {
    "jsonrpc": "2.0",
    "id": 3659,
    "result": [
        {
            "volume": 0.55,
            "underlying_price": 121.38,
            "underlying_index": "index_price",
            "quote_currency": "USD",
            "price_change": -26.7793594,
            "open_interest": 0.55,
            "mid_price": 0.2444,
            "mark_price": 80,
            "low": 0.34,
            "last": 0.34,
            "interest_rate": 0.207,
            "instrument_name": "ETH-22FEB19-140-P",
            "high": 0.34,
            "creation_timestamp": 1550227952163,
            "bid_price": 0.1488,
            "base_currency": "ETH",
            "ask_price": 0.34,
        }
    ],
}


def test_the_documented_book_summary_reads_strike_expiry_and_type_from_the_name():
    with pytest.raises(SourceDataError, match="option ETH-22FEB19-140-P lacks field 'mark_iv'") as error:
        parse_option_chain(SUMMARY_BODY, "ETH-OPTIONS")
    assert error.value.instrument == "ETH-OPTIONS"
    body = copy.deepcopy(SUMMARY_BODY)
    body["result"][0]["mark_iv"] = 79.92
    frame = parse_option_chain(body, "ETH-OPTIONS")
    assert frame.schema == pl.Schema(OPTION_CHAIN_SCHEMA)
    assert frame.rows() == [
        (
            datetime(2019, 2, 15, 10, 52, 32, 163000, tzinfo=UTC),
            "DERIBIT",
            "ETH-OPTIONS",
            "ETH-22FEB19-140-P",
            datetime(2019, 2, 22, 8, tzinfo=UTC),
            140.0,
            "put",
            121.38,
            "index_price",
            80.0,
            79.92,
            None,
            None,
            0.1488,
            0.34,
            0.55,
            0.55,
        )
    ]
    body["result"][0]["instrument_name"] = "ETH-22FOO19-140-P"
    with pytest.raises(SourceDataError, match="DERIBIT:ETH-22FOO19-140-P is not a DERIBIT instrument name"):
        parse_option_chain(body, "ETH-OPTIONS")
    body["result"][0]["instrument_name"] = "BTC-22FEB19-4000-C"
    with pytest.raises(SourceDataError, match="option BTC-22FEB19-4000-C is not an option of the ETH chain"):
        parse_option_chain(body, "ETH-OPTIONS")
    with pytest.raises(ValueError, match="ETH-PERPETUAL is not an option chain name"):
        parse_option_chain(body, "ETH-PERPETUAL")


def test_deribit_declares_its_datasets():
    assert DeribitClient.DATASETS["option_chain"] == serves("DERIBIT", "tickers", "BTC-PERPETUAL") == SNAPSHOT
    assert serves("DERIBIT", "funding", "BTC-PERPETUAL") == "history"
    assert serves("DERIBIT", "funding", "BTC-27DEC24") is None
    assert serves("DERIBIT", "open_interest", "BTC_USDC") is None


# ---- every dataset against the replay's truth ------------------------------------------------


def funding_truth(server, instrument: str, hours: list[datetime]) -> pl.DataFrame:
    market = server.market
    return pl.DataFrame(
        {
            "ts": hours,
            "venue": "DERIBIT",
            "instrument": instrument,
            "rate": [derived.funding_rate(market, "DERIBIT", instrument, us(t), 1) for t in hours],
            "interval_hours": 1.0,
            "rate_8h": [derived.funding_rate(market, "DERIBIT", instrument, us(t), 8) for t in hours],
            "mark_price": None,
            "index_price": [
                derived.index_bar(market, "DERIBIT", instrument, us(t) - MINUTE_US)[3] for t in hours
            ],
        },
        schema=FUNDING_SCHEMA,
    )


@pytest.mark.parametrize("instrument", PERPETUALS)
def test_funding_of_a_day_is_the_derived_hourly_series(server, instrument):
    frame, stats = fetch(server, "funding", instrument, START, END)
    assert frame.height == 24 and stats.requests == 1
    assert_frame_equal(
        frame, funding_truth(server, instrument, [START + k * HOUR for k in range(24)]), check_exact=True
    )
    query = server.requests("DERIBIT", instrument, "funding")[-1]["query"]
    assert (int(query["start_timestamp"]), int(query["end_timestamp"])) == (
        us(START) // 1000 - 1,
        us(END) // 1000 - 1,
    )


def test_funding_over_forty_days_asks_in_windows_without_loss_or_repeat(server):
    start = START - timedelta(days=39)
    frame, stats = fetch(server, "funding", "BTC-PERPETUAL", start, END)
    assert frame.height == 960 and frame["ts"].is_unique().all() and stats.requests == 2
    assert_frame_equal(
        frame,
        funding_truth(server, "BTC-PERPETUAL", [start + k * HOUR for k in range(960)]),
        check_exact=True,
    )
    # one answer is at most 744 rows, the newest: a client asking 40 days at once would lose the oldest
    answer = replay.funding_history(server.market, "BTC-PERPETUAL", us(start) // 1000 - 1, us(END) // 1000)
    assert len(answer) == 744 and answer[-1]["timestamp"] == us(END) // 1000


def test_funding_up_to_now_stops_at_the_last_hour(server):
    frame, _ = fetch(server, "funding", "ETH-PERPETUAL", NOW - timedelta(hours=5), NOW + timedelta(hours=5))
    hour = NOW.replace(minute=0, second=0, microsecond=0)
    assert frame["ts"].to_list() == [hour - k * HOUR for k in (4, 3, 2, 1, 0)]


@pytest.mark.parametrize("instrument", PERPETUALS)
def test_a_ticker_is_the_market_now(server, instrument):
    frame, _ = fetch(server, "tickers", instrument)
    ts = NOW.replace(microsecond=NOW.microsecond // 1000 * 1000)
    trades = pl.concat([server.truth_trades("DERIBIT", instrument, DAY + timedelta(days=d)) for d in (0, 1)])
    day = trades.filter(pl.col("ts").is_between(ts - timedelta(days=1), ts, closed="left"))
    book = server.last_book("DERIBIT", instrument)  # the book the ticker's best bid and ask came from
    bid, ask = (
        book.filter((pl.col("side") == side) & (pl.col("level") == 0)).row(0, named=True)
        for side in ("bid", "ask")
    )
    minute = us(ts) - us(ts) % MINUTE_US - MINUTE_US
    market = server.market
    truth = pl.DataFrame(
        [
            {
                "ts": ts,
                "venue": "DERIBIT",
                "instrument": instrument,
                "last": day["price"][-1],
                "bid": bid["price"],
                "bid_size": bid["quantity"],
                "ask": ask["price"],
                "ask_size": ask["quantity"],
                "volume_24h": round(sum(day["quantity"].to_list()), 8),
                "amount_24h": round(sum(day["amount"].to_list()), 2),
                "mark_price": derived.mark_bar(market, "DERIBIT", instrument, minute)[3],
                "index_price": derived.index_bar(market, "DERIBIT", instrument, minute)[3],
                "funding_rate": derived.funding_rate(market, "DERIBIT", instrument, us(ts), 1),
            }
        ],
        schema=TICKERS_SCHEMA,
    )
    assert_frame_equal(frame, truth, check_exact=True)
    assert day.height > 1000  # the 24 hours span two tapes


@pytest.mark.parametrize(
    "instrument, size, unit",
    [
        ("BTC-PERPETUAL", 10.0, "quote"),
        ("ETH-PERPETUAL", 1.0, "quote"),
        ("BTC_USDC-PERPETUAL", 0.001, "base"),
    ],
)
def test_open_interest_is_the_derived_contracts(server, instrument, size, unit):
    frame, stats = fetch(server, "open_interest", instrument)
    assert stats.requests == 2 and frame.schema == pl.Schema(
        OPEN_INTEREST_SCHEMA
    )  # the size looked up, the ticker
    contracts = derived.open_interest(server.market, "DERIBIT", instrument, us(NOW))
    amount = round(contracts * size, 8)  # Deribit's open_interest is in amount units
    minute = us(NOW) - us(NOW) % MINUTE_US - MINUTE_US
    mark = derived.mark_bar(server.market, "DERIBIT", instrument, minute)[3]
    base, quote = (amount / mark, amount) if unit == "quote" else (amount, amount * mark)
    assert frame.rows() == [(NOW, "DERIBIT", instrument, round(amount / size, 8), size, unit, base, quote)]
    assert frame["contracts"][0] == contracts


def liquidation_truth(server, instrument: str) -> pl.DataFrame:
    rows = []
    for trade in server.truth_trades("DERIBIT", instrument, DAY).iter_rows(named=True):
        flag = replay.liquidation_flag(5, instrument, trade["seq"])
        for who in flag or "":
            side = trade["side"] if who == "T" else {"buy": "sell", "sell": "buy"}[trade["side"]]
            rows.append(
                (
                    trade["ts"],
                    "DERIBIT",
                    instrument,
                    f"{trade['trade_id']}-{who}",
                    side,
                    trade["price"],
                    trade["quantity"],
                    trade["amount"],
                    None,
                )
            )
    return pl.DataFrame(rows, schema=LIQUIDATIONS_SCHEMA, orient="row").sort("ts", "liquidation_id")


@pytest.mark.parametrize("instrument", ["BTC-PERPETUAL", "ETH-PERPETUAL"])
def test_liquidations_of_a_day_are_the_flagged_trades(server, instrument):
    frame, stats = fetch(server, "liquidations", instrument, START, END, page_limit=200)
    truth = liquidation_truth(server, instrument)
    assert_frame_equal(frame, truth, check_exact=True)
    assert 5 < frame.height < 60 and frame["liquidation_id"].is_unique().all() and stats.requests >= 10
    # the flags the replay sends are derived.is_liquidation's trades, and all three kinds occur
    flags = {replay.liquidation_flag(5, instrument, seq) for seq in range(100_000_000, 100_010_000)}
    assert flags == {None, "M", "T", "MT"}


@pytest.mark.parametrize("currency, step", [("BTC", 1000), ("ETH", 50)])
def test_an_option_chain_is_every_option_with_its_name_read(server, currency, step):
    frame, stats = fetch(server, "option_chain", f"{currency}-OPTIONS")
    summaries = replay.option_chain(server.market, currency)
    assert stats.requests == 1 and frame.height == len(summaries) > 80
    assert server.requests("DERIBIT", f"{currency}-OPTIONS", "option_chain")[-1]["query"] == {
        "currency": currency,
        "kind": "option",
    }
    rows = {r["option"]: r for r in frame.iter_rows(named=True)}
    expiries = set()
    for s in summaries:
        row = rows[s["instrument_name"]]
        _, code, strike, kind = s["instrument_name"].split("-")
        expiry = datetime.strptime(code, "%d%b%y").replace(hour=8, tzinfo=UTC)
        expiries.add(expiry)
        assert (row["ts"], row["instrument"], row["expiry"], row["strike"], row["option_type"]) == (
            NOW,
            f"{currency}-OPTIONS",
            expiry,
            float(strike),
            {"C": "call", "P": "put"}[kind],
        )
        same = (
            "underlying_price",
            "underlying_index",
            "mark_price",
            "mark_iv",
            "bid_price",
            "ask_price",
            "open_interest",
        )
        assert [row[k] for k in (*same, "volume_24h", "bid_iv", "ask_iv")] == [
            *(s[k] for k in same),
            s["volume"],
            None,
            None,
        ]
        assert row["mark_iv"] > 0 and float(strike) % step == 0 and expiry > NOW
        assert row["ask_price"] > row["mark_price"] >= (row["bid_price"] or 0)
    # weeklies on Fridays at 08:00 and the months' last Fridays
    assert all(e.weekday() == 4 for e in expiries) and len(expiries) == 5
    assert max(expiries) == datetime(2025, 2, 28, 8, tzinfo=UTC)
    # Black-76 in coin units: call - put = (F - K) / F for each strike and expiry
    for name, row in rows.items():
        if name.endswith("-C"):
            put = rows[name[:-1] + "P"]
            parity = (row["underlying_price"] - row["strike"]) / row["underlying_price"]
            assert math.isclose(row["mark_price"] - put["mark_price"], parity, abs_tol=2e-8), name


# ---- errors --------------------------------------------------------------------------------


def test_unknown_instruments_and_chains(server):
    with pytest.raises(SourceRequestError, match="instrument not found") as error:
        fetch(server, "tickers", "BTC-NOPE")
    assert error.value.code == -32602 and error.value.instrument == "BTC-NOPE"
    with pytest.raises(SourceRequestError, match=r"must be one of BTC, ETH, .*param=currency") as error:
        fetch(server, "option_chain", "XYZ-OPTIONS")
    assert error.value.instrument == "XYZ-OPTIONS"
    assert "get_book_summary_by_currency?currency=XYZ" in str(error.value)
    before = len(server.requests("DERIBIT"))
    with pytest.raises(ValueError, match="BTC-PERPETUAL is not an option chain name"):
        fetch(server, "option_chain", "BTC-PERPETUAL")
    with pytest.raises(ValueError, match="XYZ_USDC-PERPETUAL: the venue's reference data .* does not know"):
        fetch(server, "open_interest", "XYZ_USDC-PERPETUAL")
    assert (
        len(server.requests("DERIBIT")) == before + 1
    )  # one reference lookup, refused before asking the ticker
    assert fetch(server, "option_chain", "USDC-OPTIONS")[0].height == 0  # a currency without a replayed chain


CALLS = {
    "tickers": ("tickers", "ETH-PERPETUAL"),
    "open_interest": ("tickers", "ETH-PERPETUAL"),
    "funding": ("funding", "ETH-PERPETUAL", START, END),
    "option_chain": ("option_chain", "ETH-OPTIONS"),
    "liquidations": ("trades", "ETH-PERPETUAL", START, START + 6 * HOUR),
}


@pytest.mark.parametrize("fault, status", [("rate_limit", 429), ("rate_limit", 400), ("server_error", 502)])
@pytest.mark.parametrize("dataset", ["tickers", "funding", "option_chain"])
def test_10028_and_5xx_are_retried(server, dataset, fault, status):
    endpoint, instrument, *window = CALLS[dataset]
    server.add_fault(
        kind=fault,
        venue="DERIBIT",
        instrument=instrument,
        endpoint=endpoint,
        status=status,
        times=2,
        retry_after=None,
    )
    frame, stats = fetch(server, dataset, instrument, *window)
    assert frame.height > 0 and stats.retries == 2
    assert (stats.rate_limited, stats.server_errors) == ((2, 0) if fault == "rate_limit" else (0, 2))


@pytest.mark.parametrize(
    "kind, message",
    [
        ("malformed_json", "malformed JSON"),
        ("missing_field", "lacks field"),
        ("bad_number", "is 'n/a', not a number"),
    ],
)
@pytest.mark.parametrize("dataset", list(CALLS))
def test_a_damaged_page_is_an_error_naming_the_instrument(server, dataset, kind, message):
    endpoint, instrument, *window = CALLS[dataset]
    server.add_fault(kind=kind, venue="DERIBIT", instrument=instrument, endpoint=endpoint, times=1)
    with pytest.raises(SourceDataError, match=message) as error:
        fetch(server, dataset, instrument, *window)
    assert error.value.instrument == instrument and error.value.source == "DERIBIT"
    assert f"={instrument.split('-')[0] if dataset == 'option_chain' else instrument}" in str(error.value)


def test_requests_beyond_the_per_second_limit_are_refused_with_10028_and_retried():
    with CryptoReplayServer(
        ReplayConfig(seed=5, trades_per_day=200, now=NOW.isoformat(), deribit_requests_per_s=2)
    ) as limited:

        async def go():
            async with client(limited) as api:
                frames = await asyncio.gather(*(api.tickers(i) for i in PERPETUALS + ["BTC-PERPETUAL"]))
                return frames, api.stats

        frames, stats = run(go())
        refused = [r for r in limited.requests("DERIBIT") if r["status"] == 429]
        assert all(f.height == 1 for f in frames) and len(frames) == 4
        assert stats.rate_limited == len(refused) == limited.state()["limit_refusals"]["DERIBIT"] >= 1
        limited.reset()
        assert (
            limited.state()["limit_refusals"]["DERIBIT"] == 0 and limited.venues["DERIBIT"].refilled is None
        )
