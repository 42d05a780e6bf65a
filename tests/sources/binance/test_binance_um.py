"""Binance USD-M futures client (BINANCE_UM) and spot tickers: vendor bodies, every dataset over a
replayed day against the truth recomputed from the tapes and derived series, paging, limits, faults."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import httpx
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from marketdata_assets.core.http import SourceBanned, SourceDataError, SourceRequestError
from marketdata_assets.datasets.frames import (
    FUNDING_SCHEMA,
    OPEN_INTEREST_SCHEMA,
    PRICE_BARS_SCHEMA,
    TICKERS_SCHEMA,
    to_us,
)
from marketdata_assets.replay.crypto import CryptoReplayServer, ReplayConfig, derived
from marketdata_assets.replay.crypto.tape import DAY_US, MINUTE_US
from marketdata_assets.sources.binance import BinanceClient, BinanceFuturesClient, parse_ticker_24hr
from marketdata_assets.sources.binance.futures import (
    parse_funding,
    parse_funding_info,
    parse_open_interest,
    parse_price_klines,
    parse_ticker,
)
from marketdata_assets.sources.binance.rest import parse_depth
from marketdata_assets.sources.interface import VenueClient
from marketdata_assets.sources.venues import serves, venue_client
from tests.support.ticks_common import DAY, END, FAST, START, UTC, crypto_replay, run

UM = "BINANCE_UM"
NOW = datetime(2025, 1, 16, 6, tzinfo=UTC)  # the replay's clock: DAY lies inside the 48 h aggTrades reach
NOW_US = to_us(NOW)


def client(server: CryptoReplayServer, **kwargs) -> BinanceFuturesClient:
    return BinanceFuturesClient(
        server.base_url, **{"retry": FAST, "requests_per_minute": 60_000, "clock": lambda: NOW, **kwargs}
    )


server, _clean = crypto_replay(ReplayConfig(seed=17, trades_per_day=2000, now=NOW.isoformat()))


# ---- the truth, recomputed from the tapes and derived series (as the wire's 8 decimals carry it) ----


def wire(value: float) -> float:
    return float(f"{value:.8f}")


def truth_funding(server, instrument: str, start: datetime, end: datetime, hours: float) -> pl.DataFrame:
    rows = []
    for t in derived.settlements(to_us(start), to_us(end) - 1, hours):
        rate = wire(derived.funding_rate(server.market, UM, instrument, t, hours))
        mark = wire(derived.mark_bar(server.market, UM, instrument, t - MINUTE_US)[3])
        rows.append((t, UM, instrument, rate, float(hours), rate * 8 / hours, mark, None))
    return frame(rows, FUNDING_SCHEMA)


def truth_open_interest(server, instrument: str, start: datetime, end: datetime) -> pl.DataFrame:
    rows = []
    for t in range(to_us(start), to_us(end), 5 * MINUTE_US):
        contracts = derived.open_interest(server.market, UM, instrument, t)
        mark = derived.mark_bar(server.market, UM, instrument, t - MINUTE_US)[3]
        rows.append((t, UM, instrument, contracts, 1.0, "base", contracts, wire(contracts * mark)))
    return frame(rows, OPEN_INTEREST_SCHEMA)


def truth_price_bars(server, bar, instrument: str) -> pl.DataFrame:
    return frame(
        [
            (m, UM, instrument, *bar(server.market, UM, instrument, m))
            for m in range(to_us(START), to_us(END), MINUTE_US)
        ],
        PRICE_BARS_SCHEMA,
    )


def truth_day_stats(server, venue: str, instrument: str) -> tuple[float, float, float]:
    """(last price, base volume, quote volume) of the 24 hours before the replay's now."""
    rows = server.market.rows_between(venue, instrument, NOW_US - DAY_US, NOW_US - 1)
    last = rows[-1][0].price[rows[-1][1]]
    sizes = [tape.size[i] for tape, i in rows]
    return last, wire(sum(sizes)), wire(sum(tape.price[i] * tape.size[i] for tape, i in rows))


def frame(rows: list[tuple], schema: dict) -> pl.DataFrame:
    names = list(schema)
    data = {name: [row[k] for row in rows] for k, name in enumerate(names)}
    data["ts"] = pl.Series(data["ts"], dtype=pl.Int64).cast(schema["ts"])
    return pl.DataFrame(data, schema=schema)


# ---- parsers on the vendor's documented bodies ------------------------------------------------


def test_funding_rate_history_body_and_missing_mark_prices():
    body = [
        {
            "symbol": "BTCUSDT",
            "fundingRate": "-0.03750000",
            "fundingTime": 1570608000000,
            "markPrice": "34287.54619963",
            "rateType": "Regular",
        },
        {"symbol": "BTCUSDT", "fundingRate": "0.00010000", "fundingTime": 1570636800000},  # old rows
        {"symbol": "BTCUSDT", "fundingRate": "0.00010000", "fundingTime": 1570665600000, "markPrice": ""},
    ]
    got = parse_funding(body, "BTCUSDT", 4.0)
    assert got.schema == pl.Schema(FUNDING_SCHEMA)
    assert got.row(0) == (
        datetime(2019, 10, 9, 8, tzinfo=UTC),
        UM,
        "BTCUSDT",
        -0.0375,
        4.0,
        -0.075,
        34287.54619963,
        None,
    )
    assert got["mark_price"].to_list()[1:] == [None, None] and got["interval_hours"].to_list() == [4.0] * 3
    with pytest.raises(SourceDataError, match="funding #0 .* fundingRate is 'x', not a number"):
        parse_funding([{**body[0], "fundingRate": "x"}], "BTCUSDT")


def test_funding_info_lists_adjusted_symbols_only():
    body = [
        {
            "symbol": "BLZUSDT",
            "adjustedFundingRateCap": "0.02500000",
            "adjustedFundingRateFloor": "-0.02500000",
            "fundingIntervalHours": 8,
            "disclaimer": False,
        },
        {"symbol": "CAPONLYUSDT", "adjustedFundingRateCap": "0.03", "adjustedFundingRateFloor": "-0.03"},
        {"symbol": "FASTUSDT", "fundingIntervalHours": 1},
    ]
    assert parse_funding_info(body) == {"BLZUSDT": 8.0, "FASTUSDT": 1.0}
    with pytest.raises(SourceDataError, match="fundingInfo X fundingIntervalHours is 0, not positive"):
        parse_funding_info([{"symbol": "X", "fundingIntervalHours": 0}])


def test_open_interest_statistics_body_with_string_timestamps():
    body = [
        {
            "symbol": "BTCUSDT",
            "sumOpenInterest": "20403.12345678",
            "sumOpenInterestValue": "176196512.12345678",
            "CMCCirculatingSupply": "165880.538",
            "timestamp": "1583127900000",
        },
        {
            "symbol": "BTCUSDT",
            "sumOpenInterest": "20401.36700000",
            "sumOpenInterestValue": "149940752.14464448",
            "CMCCirculatingSupply": "165900.14853",
            "timestamp": 1583128200000,
        },
    ]
    got = parse_open_interest(body, "BTCUSDT")
    assert got.schema == pl.Schema(OPEN_INTEREST_SCHEMA)
    assert got.rows() == [
        (
            datetime(2020, 3, 2, 5, 45, tzinfo=UTC),
            UM,
            "BTCUSDT",
            20403.12345678,
            1.0,
            "base",
            20403.12345678,
            176196512.12345678,
        ),
        (
            datetime(2020, 3, 2, 5, 50, tzinfo=UTC),
            UM,
            "BTCUSDT",
            20401.367,
            1.0,
            "base",
            20401.367,
            149940752.14464448,
        ),
    ]


def test_mark_price_klines_body_keeps_the_prices():
    body = [
        [
            1591256400000,
            "9653.69440000",
            "9653.69640000",
            "9651.38600000",
            "9651.55200000",
            "0 ",
            1591256459999,
            "0",
            60,
            "0",
            "0",
            "0",
        ]
    ]
    got = parse_price_klines(body, "BTCUSDT")
    assert got.schema == pl.Schema(PRICE_BARS_SCHEMA)
    assert got.rows() == [
        (datetime(2020, 6, 4, 7, 40, tzinfo=UTC), UM, "BTCUSDT", 9653.6944, 9653.6964, 9651.386, 9651.552)
    ]
    with pytest.raises(SourceDataError, match="not 60 s: a kline of another interval"):  # 5 minutes
        parse_price_klines([[*body[0][:6], 1591256699999, *body[0][7:]]], "BTCUSDT")


def test_futures_depth_is_stamped_with_its_transaction_time():
    body = {
        "lastUpdateId": 1027024,
        "E": 1589436922972,
        "T": 1589436922959,
        "bids": [["4.00000000", "431.00000000"]],
        "asks": [["4.00000200", "12.00000000"]],
    }
    got = parse_depth(body, "BTCUSDT", None, venue=UM, stamp="T")
    stamp = datetime(2020, 5, 14, 6, 15, 22, 959000, tzinfo=UTC)
    assert got.rows() == [
        (stamp, UM, "BTCUSDT", "bid", 0, 4.0, 431.0, 1027024),
        (stamp, UM, "BTCUSDT", "ask", 0, 4.000002, 12.0, 1027024),
    ]


BOOK_TICKER = {
    "symbol": "BTCUSDT",
    "bidPrice": "4.00000000",
    "bidQty": "431.00000000",
    "askPrice": "4.00000200",
    "askQty": "9.00000000",
    "time": 1589437530011,
}
PREMIUM_INDEX = {
    "symbol": "BTCUSDT",
    "markPrice": "11793.63104562",
    "indexPrice": "11781.80495970",
    "estimatedSettlePrice": "11781.16138815",
    "lastFundingRate": "0.00038246",
    "interestRate": "0.00010000",
    "nextFundingTime": 1597392000000,
    "time": 1597370495002,
}
TICKER_24HR = {
    "symbol": "BTCUSDT",
    "priceChange": "-94.99999800",
    "priceChangePercent": "-95.960",
    "weightedAvgPrice": "0.29628482",
    "lastPrice": "4.00000200",
    "lastQty": "200.00000000",
    "openPrice": "99.00000000",
    "highPrice": "100.00000000",
    "lowPrice": "0.10000000",
    "volume": "8913.30000000",
    "quoteVolume": "15.30000000",
    "openTime": 1499783499040,
    "closeTime": 1499869899040,
    "firstId": 28385,
    "lastId": 28460,
    "count": 76,
}


def test_futures_ticker_joins_book_ticker_premium_index_and_24hr():
    got = parse_ticker(BOOK_TICKER, PREMIUM_INDEX, TICKER_24HR, "BTCUSDT")
    assert got.schema == pl.Schema(TICKERS_SCHEMA)
    assert got.row(0) == (
        datetime(2020, 8, 14, 2, 1, 35, 2000, tzinfo=UTC),
        UM,
        "BTCUSDT",
        4.000002,
        4.0,
        431.0,
        4.000002,
        9.0,
        8913.3,
        15.3,
        11793.63104562,
        11781.8049597,
        0.00038246,
    )
    delivery = parse_ticker(
        BOOK_TICKER, {**PREMIUM_INDEX, "lastFundingRate": ""}, TICKER_24HR, "BTCUSDT_250328"
    )
    assert delivery["funding_rate"].to_list() == [None]  # [inferred] dated futures have no funding
    with pytest.raises(SourceDataError, match="premiumIndex lacks field 'markPrice'"):
        parse_ticker(
            BOOK_TICKER, {k: v for k, v in PREMIUM_INDEX.items() if k != "markPrice"}, TICKER_24HR, "BTCUSDT"
        )


def test_spot_24hr_ticker_body():
    body = {
        **{k: v for k, v in TICKER_24HR.items() if k != "symbol"},
        "symbol": "BNBBTC",
        "prevClosePrice": "0.10002000",
        "bidPrice": "4.00000000",
        "bidQty": "100.00000000",
        "askPrice": "4.00000200",
        "askQty": "100.00000000",
    }
    got = parse_ticker_24hr(body, "BNBBTC")
    assert got.schema == pl.Schema(TICKERS_SCHEMA)
    assert got.row(0) == (
        datetime(2017, 7, 12, 14, 31, 39, 40000, tzinfo=UTC),
        "BINANCE",
        "BNBBTC",
        4.000002,
        4.0,
        100.0,
        4.000002,
        100.0,
        8913.3,
        15.3,
        None,
        None,
        None,
    )
    empty = parse_ticker_24hr(
        {**body, "lastPrice": "0.00000000", "askPrice": "0.00000000", "askQty": "0.0"}, "BNBBTC"
    )
    assert empty.select("last", "ask", "ask_size").row(0) == (None, None, None)


# ---- every dataset over a replayed day ---------------------------------------------------------


def test_the_client_is_the_venue_client_of_binance_um(server):
    async def go():
        async with venue_client("binance_um", server.base_url) as api:
            return isinstance(api, VenueClient), api.name, isinstance(api, BinanceFuturesClient)

    assert run(go()) == (True, UM, True)
    assert serves(UM, "funding", "BTCUSDT") == "history" and serves(UM, "funding", "BTCUSDT_250328") is None
    assert serves(UM, "tickers", "BTCUSDT") == serves("BINANCE", "tickers", "BTCUSDT") == "snapshot"
    assert serves(UM, "liquidations", "BTCUSDT") is None  # no REST history any more


def test_trades_bars_and_book_equal_the_replay_truth(server):
    async def go():
        async with client(server, page_limit=200) as api:
            trades = await api.trades("BTCUSDT", START, END)
            bars = await api.bars_1m("BTCUSDT", START, END)
            return trades, bars, await api.book_snapshot("ETHUSDT", 10)

    server.reset()
    trades, bars, book = run(go())
    assert_frame_equal(trades, server.truth_trades(UM, "BTCUSDT", DAY), check_exact=True)
    assert trades.height == 2000 and trades["venue"].unique().to_list() == [UM]
    assert_frame_equal(bars, server.truth_bars(UM, "BTCUSDT", DAY), check_exact=True)
    assert bars.height == 1440
    assert_frame_equal(book, server.last_book(UM, "ETHUSDT").filter(pl.col("level") < 10), check_exact=True)
    queries = [r["query"] for r in server.requests(UM, "BTCUSDT", "trades")]
    assert any("fromId" in q for q in queries)
    assert all(int(q["endTime"]) - int(q["startTime"]) < 3_600_000 for q in queries if "startTime" in q)
    assert all(r["path"].startswith("/fapi/v1/") for r in server.requests(UM))


def test_funding_pages_forward_across_pages(server):
    start, end = START - timedelta(days=4), END  # 15 settlements, pages of 4

    async def go():
        async with client(server, page_limit=4) as api:
            return await api.funding("BTCUSDT", start, end)

    server.reset()
    got = run(go())
    assert_frame_equal(got, truth_funding(server, "BTCUSDT", start, end, 8), check_exact=True)
    assert got.height == 15 and got["ts"].is_unique().all()
    pages = [r["query"] for r in server.requests(UM, "BTCUSDT", "funding")]
    assert [int(q["startTime"]) for q in pages] == [to_us(start) // 1000] + [
        to_us(got["ts"][k]) // 1000 + 1 for k in (3, 7, 11)
    ]
    assert all(q["endTime"] == str(to_us(end) // 1000 - 1) and q["limit"] == "4" for q in pages)


def test_funding_info_interval_is_asked_once_and_used(server):
    async def go():
        async with client(server) as api:
            return await asyncio.gather(*(api.funding(s, START, END) for s in ("ETHUSDT", "BTCUSDT")))

    server.reset()
    eth, btc = run(go())
    assert_frame_equal(eth, truth_funding(server, "ETHUSDT", START, END, 4), check_exact=True)
    assert eth.height == 6 and eth["interval_hours"].unique().to_list() == [4.0]
    assert eth["rate_8h"].to_list() == [rate * 2 for rate in eth["rate"].to_list()]
    assert_frame_equal(btc, truth_funding(server, "BTCUSDT", START, END, 8), check_exact=True)
    assert len(server.requests(UM, endpoint="funding_info")) == 1


def test_open_interest_of_a_day_and_the_30_day_reach(server):
    recent = datetime(2024, 12, 18, tzinfo=UTC)  # NOW - 29 days 6 hours
    old = recent - timedelta(days=1)  # starts 30 days 6 hours before NOW

    async def go():
        async with client(server) as api:
            day = await api.open_interest("BTCUSDT", START, END)
            edge = await api.open_interest("ETHUSDT", recent, recent + timedelta(days=1))
            sent = len(server.requests(UM, endpoint="open_interest"))
            with pytest.raises(SourceDataError) as refused:
                await api.open_interest("ETHUSDT", old, recent)
            assert len(server.requests(UM, endpoint="open_interest")) == sent  # nothing asked
        async with client(server, open_interest_reach=None) as blind:
            partial = await blind.open_interest("ETHUSDT", old, recent)
        return day, edge, refused.value, partial

    server.reset()
    day, edge, refused, partial = run(go())
    assert_frame_equal(day, truth_open_interest(server, "BTCUSDT", START, END), check_exact=True)
    assert day.height == 288
    assert_frame_equal(
        edge, truth_open_interest(server, "ETHUSDT", recent, recent + timedelta(days=1)), check_exact=True
    )
    assert refused.instrument == "ETHUSDT" and refused.day == old.date() and refused.source == UM
    assert "last 30 days" in str(refused) and "/futures/data/openInterestHist" in str(refused)
    # what the check prevents: the venue answers only the part of the day it still has
    assert 0 < partial.height < 288 and partial["ts"].min() >= NOW - timedelta(days=30)
    assert {r["query"]["period"] for r in server.requests(UM, endpoint="open_interest")} == {"5m"}


def test_trades_older_than_48_hours_are_refused(server):
    async def go():
        async with client(server) as api:
            await api.trades("BTCUSDT", START - timedelta(days=1), START)

    server.reset()
    with pytest.raises(SourceDataError, match="aggregate trades of the last 48 hours only") as error:
        run(go())
    assert error.value.instrument == "BTCUSDT" and server.requests(UM) == []


def test_mark_and_index_price_bars_equal_the_derived_series(server):
    async def go():
        async with client(server) as api:
            mark = await api.mark_bars_1m("ETHUSDT", START, END)
            return mark, await api.index_bars_1m("ETHUSDT", START, END)

    server.reset()
    mark, index = run(go())
    assert_frame_equal(mark, truth_price_bars(server, derived.mark_bar, "ETHUSDT"), check_exact=True)
    assert_frame_equal(index, truth_price_bars(server, derived.index_bar, "ETHUSDT"), check_exact=True)
    assert mark.height == index.height == 1440 and not mark.equals(index)
    assert [r["query"].get("pair") for r in server.requests(UM, endpoint="index_bars")] == ["ETHUSDT"] * 2
    assert [r["query"].get("symbol") for r in server.requests(UM, endpoint="mark_bars")] == ["ETHUSDT"] * 2


def test_futures_ticker_in_three_requests(server):
    async def go():
        async with client(server) as api:
            return await api.tickers("BTCUSDT")

    server.reset()
    got = run(go())
    book = server.last_book(UM, "BTCUSDT").filter(pl.col("level") == 0)
    bid, ask = (book.filter(pl.col("side") == side).row(0, named=True) for side in ("bid", "ask"))
    last, volume, amount = truth_day_stats(server, UM, "BTCUSDT")
    minute = NOW_US - MINUTE_US
    settled = derived.settlements(NOW_US - 8 * 3_600_000_000, NOW_US, 8)[-1]
    assert got.rows() == [
        (
            NOW,
            UM,
            "BTCUSDT",
            last,
            bid["price"],
            bid["quantity"],
            ask["price"],
            ask["quantity"],
            volume,
            amount,
            derived.mark_bar(server.market, UM, "BTCUSDT", minute)[3],
            derived.index_bar(server.market, UM, "BTCUSDT", minute)[3],
            derived.funding_rate(server.market, UM, "BTCUSDT", settled, 8),
        )
    ]
    assert sorted(r["path"] for r in server.requests(UM)) == [
        "/fapi/v1/premiumIndex",
        "/fapi/v1/ticker/24hr",
        "/fapi/v1/ticker/bookTicker",
    ]


def test_spot_ticker_equals_the_replays_book_and_last_day(server):
    async def go():
        async with BinanceClient(server.base_url, retry=FAST, requests_per_minute=60_000) as api:
            return await api.tickers("SOLUSDT")

    got = run(go())
    book = server.last_book("BINANCE", "SOLUSDT")
    bid, ask = (book.filter(pl.col("side") == side).row(0, named=True) for side in ("bid", "ask"))
    last, volume, amount = truth_day_stats(server, "BINANCE", "SOLUSDT")
    assert got.rows() == [
        (
            NOW,
            "BINANCE",
            "SOLUSDT",
            last,
            bid["price"],
            bid["quantity"],
            ask["price"],
            ask["quantity"],
            volume,
            amount,
            None,
            None,
            None,
        )
    ]


# ---- limits and faults -----------------------------------------------------------------------------


def test_past_the_weight_limit_the_venue_answers_429_and_the_client_waits():
    config = ReplayConfig(
        seed=3,
        trades_per_day=400,
        binance_um_weight_limit=50,
        binance_weight_limit=10,
        weight_window_s=1.0,
        now=NOW.isoformat(),
    )
    with CryptoReplayServer(config) as srv:

        async def go():
            async with client(srv, weight_limit=100_000) as api:  # no local gate: the venue says stop
                return await api.trades("ETHUSDT", START, START + timedelta(hours=6)), api.stats

        trades, stats = run(go())
        assert stats.rate_limited >= 1 and srv.venues[UM].limit_refusals == stats.rate_limited
        assert_frame_equal(
            trades,
            srv.truth_trades(UM, "ETHUSDT", DAY).filter(pl.col("ts") < START + timedelta(hours=6)),
            check_exact=True,
        )
        with httpx.Client(base_url=srv.base_url) as http:
            # weight 10 (USD-M, limit 1500) and 2 (spot): one window of 1 s holds at least half of each run
            answers = [
                http.get(path, params={"symbol": "ETHUSDT", "interval": "1m", "limit": 1500})
                for path in ["/fapi/v1/klines"] * 13 + ["/api/v3/klines"] * 12
            ]
        um, spot = answers[:13], answers[13:]
        refused = next(a for a in um if a.status_code == 429)
        assert refused.json()["code"] == -1003 and "current limit is 50" in refused.json()["msg"]
        assert "Retry-After" in refused.headers and "X-MBX-USED-WEIGHT-1M" in refused.headers
        assert any(a.status_code == 429 for a in spot)  # spot counts its own weight, 2 a klines request
        assert srv.state()["limit_refusals"]["BINANCE"] >= 1


def test_a_ban_stops_every_dataset(server):
    server.add_fault(kind="ban", venue=UM, endpoint="funding", retry_after="600")

    async def go():
        async with client(server) as api:
            with pytest.raises(SourceBanned) as banned:
                await api.funding("BTCUSDT", START, END)
            sent = len(server.requests(UM))
            with pytest.raises(SourceBanned):
                await api.open_interest("BTCUSDT", START, END)
            return banned.value, sent, len(server.requests(UM))

    server.reset()
    banned, sent, after = run(go())
    assert banned.until is not None and "/fapi/v1/fundingRate" in str(banned) and after == sent


def test_5xx_is_retried(server):
    server.add_fault(
        kind="server_error", venue=UM, instrument="ETHUSDT", endpoint="open_interest", times=2, status=502
    )

    async def go():
        async with client(server) as api:
            return await api.open_interest("ETHUSDT", START, END), api.stats

    got, stats = run(go())
    assert_frame_equal(got, truth_open_interest(server, "ETHUSDT", START, END), check_exact=True)
    assert stats.server_errors == 2 and stats.retries == 2


@pytest.mark.parametrize(
    "kind, endpoint, dataset, message",
    [
        ("missing_field", "funding", "funding", "lacks field 'fundingRate'"),
        ("bad_number", "open_interest", "open_interest", "sumOpenInterest is '6O123.45', not a number"),
        ("malformed_json", "mark_bars", "mark_bars_1m", "malformed JSON"),
        ("bad_number", "index_bars", "index_bars_1m", "close is '6O123.45', not a number"),
        ("bad_number", "trades", "trades", "p is '6O123.45', not a number"),
        ("missing_field", "tickers", "tickers", "lacks field"),
    ],
)
def test_a_damaged_page_is_a_data_error_naming_the_instrument(server, kind, endpoint, dataset, message):
    server.add_fault(kind=kind, venue=UM, instrument="ETHUSDT", endpoint=endpoint, times=1)

    async def go():
        async with client(server) as api:
            method = getattr(api, dataset)
            args = () if dataset == "tickers" else (START, START + timedelta(hours=2))
            return await asyncio.gather(
                method("ETHUSDT", *args), method("BTCUSDT", *args), return_exceptions=True
            )

    eth, btc = run(go())
    assert isinstance(eth, SourceDataError), eth
    assert message in str(eth) and eth.instrument == "ETHUSDT" and eth.source == UM
    assert "symbol=ETHUSDT" in eth.request or "pair=ETHUSDT" in eth.request
    assert isinstance(btc, pl.DataFrame) and btc.height > 0


def test_unknown_symbol_is_a_request_error(server):
    async def go():
        async with client(server) as api:
            results = []
            for call in (api.funding("NOPEUSDT", START, END), api.index_bars_1m("NOPEUSDT", START, END)):
                with pytest.raises(SourceRequestError, match="Invalid symbol") as error:
                    await call
                results.append(error.value)
            return results

    for error in run(go()):
        assert error.code == -1121 and error.instrument == "NOPEUSDT"
