"""OKX tickers, funding, open interest, liquidations, mark and index bars: the docs' bodies, each
dataset over a replayed day against the truth recomputed from the tape and replay/crypto/derived.py,
faults, and the per-endpoint request limits (core.http `endpoint_limits`)."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import datetime, timedelta

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from marketdata_assets.core.http import ApiClient, SourceDataError, SourceNotFound, WindowGate
from marketdata_assets.datasets.frames import UTC_US, spec_for
from marketdata_assets.datasets.wire import FetchNotes, noting
from marketdata_assets.replay.crypto import CryptoReplayServer, ReplayConfig, derived
from marketdata_assets.replay.crypto.okx import fmt_plain
from marketdata_assets.replay.crypto.tape import DAY_US, MINUTE_US, base_and_quote, day_us, instrument_spec
from marketdata_assets.sources.interface import HISTORY, SNAPSHOT
from marketdata_assets.sources.okx import OkxClient
from marketdata_assets.sources.okx.naming import underlying
from marketdata_assets.sources.okx.rest import (
    parse_funding_history,
    parse_liquidations,
    parse_open_interest_history,
    parse_price_candles,
    parse_ticker,
)
from marketdata_assets.sources.venues import serves
from tests.support.reference import documented_service, known
from tests.support.scripted_server import Reply, ScriptedServer
from tests.support.ticks_common import DAY, END, FAST, START, UTC, crypto_replay, run

SEED = 7
SWAP, ETH_SWAP = "BTC-USDT-SWAP", "ETH-USDT-SWAP"
NOW = "2025-01-16T00:00:00Z"  # DAY has ended and lies in the replay's last day of liquidations


def client(base_url: str, **kwargs) -> OkxClient:
    options = {"retry": FAST, "requests_per_minute": 60_000, "endpoint_limits": {}}  # gates: their own test
    return OkxClient(base_url, **{**options, **kwargs})


def _config() -> ReplayConfig:
    config = ReplayConfig(
        seed=SEED, trades_per_day=2000, now=NOW, trades_per_day_by_instrument={SWAP: 12_000}
    )  # ~120 liquidations a day
    config.instruments["OKX"] = ["BTC-USDT", "ETH-USDT", SWAP, ETH_SWAP]
    return config


server, _clean = crypto_replay(_config())


def frame(dataset: str, rows: list[tuple], instrument: str) -> pl.DataFrame:
    """The normalized frame of `rows` (the schema's columns but venue and instrument; times µs)."""
    schema = spec_for(dataset).schema
    data: dict = {"venue": ["OKX"] * len(rows), "instrument": [instrument] * len(rows)}
    for k, name in enumerate(n for n in schema if n not in ("venue", "instrument")):
        values = [row[k] for row in rows]
        data[name] = (
            pl.Series(values, dtype=pl.Int64).cast(UTC_US)
            if schema[name] == UTC_US
            else pl.Series(values, dtype=schema[name])
        )
    return pl.DataFrame(data).select(list(schema))


# ---- truth recomputed from the tape and derived.py -------------------------------------------


def truth_funding(server, instrument: str) -> pl.DataFrame:
    rows = []
    for t in derived.settlements(day_us(DAY), day_us(DAY) + DAY_US - 1, 8):
        rate = derived.funding_rate(server.market, "OKX", instrument, t, 8)
        rows.append((t, rate, 8.0, rate, None, None))
    return frame("funding", rows, instrument)


def truth_open_interest(server, instrument: str) -> pl.DataFrame:
    ct = instrument_spec("OKX", instrument).ct_val
    rows = []
    for ts in range(day_us(DAY), day_us(DAY) + DAY_US, 5 * MINUTE_US):
        contracts = derived.open_interest(server.market, "OKX", instrument, ts)
        mark = derived.mark_bar(server.market, "OKX", instrument, ts - MINUTE_US)[3]
        rows.append((ts, contracts, ct, "base", contracts * ct, contracts * ct * mark))
    return frame("open_interest", rows, instrument)


def truth_liquidations(server, instrument: str) -> pl.DataFrame:
    tape = server.market.tape("OKX", instrument, DAY)
    rows, repeats = [], Counter()
    for i in reversed(range(tape.n)):  # newest first, as the pages number repeats
        if not derived.is_liquidation(SEED, "OKX", instrument, tape.first_id + i):
            continue
        side, pos = ("buy", "short") if tape.buy[i] else ("sell", "long")
        key = f"{tape.ts[i] // 1000}-{side}-{pos}-{fmt_plain(tape.size[i])}-{fmt_plain(tape.price[i])}"
        lid = f"{key}#{repeats[key]}" if repeats[key] else key
        repeats[key] += 1
        base = base_and_quote(tape.spec, tape.price[i], tape.size[i])[0]
        rows.append((tape.ts[i], lid, side, tape.price[i], base, tape.price[i] * base, None))
    truth = frame("liquidations", rows, instrument)
    return truth.sort(["ts", "liquidation_id"])


def truth_price_bars(server, kind: str, instrument: str) -> pl.DataFrame:
    minutes = range(day_us(DAY), day_us(DAY) + DAY_US, MINUTE_US)
    if kind == "mark":
        rows = [(m, *derived.mark_bar(server.market, "OKX", instrument, m)) for m in minutes]
    else:  # the index of BTC-USDT: computed on the perpetual's tape
        rows = [(m, *derived.index_bar(server.market, "OKX", SWAP, m)) for m in minutes]
    return frame(f"{kind}_bars_1m", rows, instrument)


# ---- parsers on the docs' example bodies ------------------------------------------------------

TICKER_DOC = {
    "code": "0",
    "msg": "",
    "data": [
        {
            "instType": "SWAP",
            "instId": "BTC-USD-SWAP",
            "last": "9999.99",
            "lastSz": "0.1",
            "askPx": "9999.99",
            "askSz": "11",
            "bidPx": "8888.88",
            "bidSz": "5",
            "open24h": "9000",
            "high24h": "10000",
            "low24h": "8888.88",
            "volCcy24h": "2222",
            "vol24h": "2222",
            "sodUtc0": "2222",
            "sodUtc8": "2222",
            "ts": "1597026383085",
        }
    ],
}
DOC_TS = datetime(2020, 8, 10, 2, 26, 23, 85000, tzinfo=UTC)


def test_ticker_docs_example_inverse_swap_and_spot():
    row = parse_ticker(TICKER_DOC, "BTC-USD-SWAP", reference=known("OKX", "BTC-USD-SWAP")).row(0, named=True)
    # contracts of 100 USD: sizes in coin at their own price, volCcy24h is coin, vol24h * 100 the USD amount
    assert row == {
        "ts": DOC_TS,
        "venue": "OKX",
        "instrument": "BTC-USD-SWAP",
        "last": 9999.99,
        "bid": 8888.88,
        "bid_size": 500 / 8888.88,
        "ask": 9999.99,
        "ask_size": 1100 / 9999.99,
        "volume_24h": 2222.0,
        "amount_24h": 222200.0,
        "mark_price": None,
        "index_price": None,
        "funding_rate": None,
    }
    spot = {**TICKER_DOC["data"][0], "instType": "SPOT", "instId": "BTC-USDT"}  # the tickers channel's
    row = parse_ticker({**TICKER_DOC, "data": [spot]}, "BTC-USDT").row(0, named=True)
    assert (row["bid_size"], row["ask_size"], row["volume_24h"], row["amount_24h"]) == (5, 11, 2222, 2222)
    linear = {**TICKER_DOC["data"][0], "instId": SWAP}  # linear: no quote volume
    row = parse_ticker({**TICKER_DOC, "data": [linear]}, SWAP, reference=known("OKX", SWAP)).row(
        0, named=True
    )
    assert (row["bid_size"], row["volume_24h"], row["amount_24h"]) == (0.05, 2222.0, None)
    empty = {**spot, "bidPx": "", "bidSz": "", "last": ""}  # no trade yet, an empty side
    row = parse_ticker({**TICKER_DOC, "data": [empty]}, "BTC-USDT").row(0, named=True)
    assert (row["last"], row["bid"], row["bid_size"], row["ask"]) == (None, None, None, 9999.99)
    with pytest.raises(SourceDataError, match="the ticker is for 'BTC-USDT', not ETH-USDT"):
        parse_ticker({**TICKER_DOC, "data": [spot]}, "ETH-USDT")


FUNDING_DOC = {
    "code": "0",
    "msg": "",
    "data": [
        {
            "formulaType": "noRate",
            "fundingRate": "0.0000746604960499",
            "fundingTime": "1703059200000",
            "instId": "BTC-USD-SWAP",
            "instType": "SWAP",
            "method": "next_period",
            "realizedRate": "0.0000746572360545",
        },
        {
            "formulaType": "noRate",
            "fundingRate": "0.000227985782722",
            "fundingTime": "1703030400000",
            "instId": "BTC-USD-SWAP",
            "instType": "SWAP",
            "method": "next_period",
            "realizedRate": "0.0002279755647389",
        },
    ],
}


def test_funding_docs_example_realized_rate_and_interval_from_spacing():
    rows = parse_funding_history(FUNDING_DOC, "BTC-USD-SWAP").rows()
    assert rows == [
        (
            datetime(2023, 12, 20, 0, tzinfo=UTC),
            "OKX",
            "BTC-USD-SWAP",
            0.0002279755647389,
            8.0,
            0.0002279755647389,
            None,
            None,
        ),
        (
            datetime(2023, 12, 20, 8, tzinfo=UTC),
            "OKX",
            "BTC-USD-SWAP",
            0.0000746572360545,
            8.0,
            0.0000746572360545,
            None,
            None,
        ),
    ]
    four = [{**FUNDING_DOC["data"][0], "fundingTime": str(1703059200000 + k * 4 * 3_600_000)} for k in (1, 2)]
    frame4 = parse_funding_history({**FUNDING_DOC, "data": [*four, *FUNDING_DOC["data"]]}, "BTC-USD-SWAP")
    assert frame4["interval_hours"].to_list() == [8.0, 8.0, 4.0, 4.0]  # switched to 4-hourly settlements
    assert frame4["rate_8h"][3] == pytest.approx(0.0000746572360545 * 2)
    with pytest.raises(SourceDataError, match="16 hours after the previous one"):
        parse_funding_history({**FUNDING_DOC, "data": [four[1], FUNDING_DOC["data"][1]]}, "BTC-USD-SWAP")
    with pytest.raises(SourceDataError, match="lacks field 'realizedRate'"):
        bare = {"instId": "BTC-USD-SWAP", "fundingTime": "1703059200000"}
        parse_funding_history({**FUNDING_DOC, "data": [bare]}, "BTC-USD-SWAP")


def test_open_interest_docs_example_ts_oi_oiccy_oiusd():
    body = {
        "code": "0",
        "msg": "",
        "data": [
            ["1701417600000", "731377.57500501", "111", "8888888"],
            ["1701417500000", "731377.57500501", "111", "8888888"],
        ],
    }
    frame_ = parse_open_interest_history(body, SWAP, reference=known("OKX", SWAP))
    assert frame_.rows()[0] == (
        datetime(2023, 12, 1, 8, tzinfo=UTC),
        "OKX",
        SWAP,
        731377.57500501,
        0.01,
        "base",
        111.0,
        8888888.0,
    )
    assert parse_open_interest_history(body, "BTC-USD-SWAP", reference=known("OKX", "BTC-USD-SWAP"))[
        "size_unit"
    ].to_list() == ["quote", "quote"]
    with pytest.raises(SourceDataError, match="not a \\[ts, oi, oiCcy, oiUsd\\] array"):
        parse_open_interest_history(
            {**body, "data": [["1701417600000", "1"]]}, SWAP, reference=known("OKX", SWAP)
        )


# the liquidation-orders channel's example, as the REST answer has it
LIQUIDATION_DOC = {
    "code": "0",
    "msg": "",
    "data": [
        {
            "details": [
                {
                    "bkLoss": "0",
                    "bkPx": "0.007831",
                    "ccy": "",
                    "posSide": "short",
                    "side": "buy",
                    "sz": "13",
                    "ts": "1692266434010",
                }
            ],
            "instFamily": "IOST-USDT",
            "instId": "IOST-USDT-SWAP",
            "instType": "SWAP",
            "totalLoss": "0",
            "uly": "IOST-USDT",
        }
    ],
}


def test_liquidations_docs_example_bankruptcy_price_and_contracts():
    values = known("OKX", SWAP)._replace(
        instrument="IOST-USDT-SWAP", base="IOST", contract_unit="IOST", contract_value=1000.0
    )  # ctVal 1000 IOST, as OKX lists it
    row = parse_liquidations(LIQUIDATION_DOC, "IOST-USDT-SWAP", reference=values).row(0, named=True)
    assert row == {
        "ts": datetime(2023, 8, 17, 10, 0, 34, 10000, tzinfo=UTC),
        "venue": "OKX",
        "instrument": "IOST-USDT-SWAP",
        "liquidation_id": "1692266434010-buy-short-13-0.007831",
        "side": "buy",
        "price": 0.007831,
        "quantity": 13000.0,
        "amount": 0.007831 * 13000.0,
        "order_price": None,
    }  # OKX sends the bankruptcy price only
    group = LIQUIDATION_DOC["data"][0]
    twice = {**group, "details": group["details"] * 2}  # the same detail twice: told apart by "#1"
    no_id = {key: value for key, value in twice.items() if key != "instId"}  # a SWAP family's perpetual
    future = {**group, "instId": "IOST-USDT-250328", "instType": "FUTURES"}
    drops = Counter()
    frame_ = parse_liquidations(
        {**LIQUIDATION_DOC, "data": [no_id, future]}, "IOST-USDT-SWAP", reference=values, drops=drops
    )
    assert frame_["liquidation_id"].to_list() == [
        "1692266434010-buy-short-13-0.007831",
        "1692266434010-buy-short-13-0.007831#1",
    ]
    assert drops == {"other_instrument": 1}
    with pytest.raises(SourceDataError, match="names no instId"):
        parse_liquidations(
            {**LIQUIDATION_DOC, "data": [{**future, "instId": ""}]}, "IOST-USDT-SWAP", reference=values
        )


def test_mark_and_index_candles_docs_shape_unconfirmed_dropped():
    # the docs' example shape [ts, o, h, l, c, confirm]; its times (not on a minute) moved to minute opens
    body = {
        "code": "0",
        "msg": "",
        "data": [
            ["1597026420000", "3.721", "3.743", "3.677", "3.708", "0"],
            ["1597026360000", "3.731", "3.799", "3.494", "3.72", "1"],
        ],
    }
    drops = Counter()
    frame_ = parse_price_candles(body, SWAP, drops=drops, dataset="index_bars_1m")
    minute = datetime(2020, 8, 10, 2, 26, tzinfo=UTC)
    assert frame_.rows() == [(minute, "OKX", SWAP, 3.731, 3.799, 3.494, 3.72)]
    assert drops == {"unconfirmed": 1} and frame_.schema == pl.Schema(spec_for("index_bars_1m").schema)
    body["data"][1][0] = "1597026383085"  # the documented example's own time
    with pytest.raises(SourceDataError, match="mark candle 2020-08-10 02:26:23 opens at .* not on a minute"):
        parse_price_candles(body, SWAP)


def test_datasets_and_the_contracts_they_apply_to():
    assert serves("OKX", "tickers", "BTC-USDT") == SNAPSHOT and serves("OKX", "funding", "BTC-USDT") is None
    assert serves("OKX", "funding", SWAP) == HISTORY and serves("OKX", "funding", "BTC-USD-250328") is None
    for dataset in ("open_interest", "liquidations", "mark_bars_1m", "index_bars_1m"):
        assert serves("OKX", dataset, "BTC-USD-250328") == HISTORY
        assert serves("OKX", dataset, "BTC-USDT") is None
    assert (underlying(SWAP), underlying("BTC-USD-250328"), underlying("ETH-USD-SWAP")) == (
        "BTC-USDT",
        "BTC-USD",
        "ETH-USD",
    )


# ---- each dataset over a replayed day ---------------------------------------------------------


def test_tickers_are_the_last_trade_the_top_of_the_book_and_the_last_day(server):
    async def go():
        async with client(server.base_url) as api:
            return {
                inst: (await api.tickers(inst), server.last_book("OKX", inst)) for inst in ("BTC-USDT", SWAP)
            }

    for inst, (ticker, book) in run(go()).items():
        tape = server.market.tape("OKX", inst, DAY)  # NOW is the end of DAY: the last 24 hours are DAY
        volume = amount = 0.0
        for i in range(tape.n):
            base, quote = base_and_quote(tape.spec, tape.price[i], tape.size[i])
            volume += base if inst == SWAP else tape.size[i]
            amount += quote
        top = {
            side: book.filter((pl.col("side") == side) & (pl.col("level") == 0)).row(0, named=True)
            for side in ("bid", "ask")
        }
        bid, ask = top["bid"], top["ask"]
        expected = frame(
            "tickers",
            [
                (
                    day_us(DAY) + DAY_US,
                    tape.price[-1],
                    bid["price"],
                    bid["quantity"],
                    ask["price"],
                    ask["quantity"],
                    volume,
                    None if inst == SWAP else amount,
                    None,
                    None,
                    None,
                )
            ],
            inst,
        )
        assert_frame_equal(ticker, expected, check_exact=True)


@pytest.mark.parametrize("instrument", [SWAP, ETH_SWAP])
def test_a_day_of_funding_is_the_derived_settlements(server, instrument):
    async def go():
        async with client(server.base_url, page_limit=2) as api:
            return await api.funding(instrument, START, END), api.dropped.of(instrument)

    funding, drops = run(go())
    assert_frame_equal(funding, truth_funding(server, instrument), check_exact=True)
    queries = [r["query"] for r in server.requests("OKX", instrument, "funding")][-2:]
    # 2 a page: 00:00 and 08:00 need the one before it (16:00 the day before) for its interval
    assert [q["after"] for q in queries] == [
        str(int(END.timestamp() * 1000)),
        str(int((START + timedelta(hours=8)).timestamp() * 1000)),
    ]
    assert drops == {"past_window_edge": 1}


def test_a_day_of_open_interest_every_5_minutes(server):
    async def go():
        async with client(server.base_url, page_limit=50) as api:
            return await api.open_interest(SWAP, START, END)

    oi = run(go())
    assert_frame_equal(oi, truth_open_interest(server, SWAP), check_exact=True)
    assert oi.height == 288 and len(server.requests("OKX", SWAP, "open_interest")) >= 6


def test_a_day_of_liquidations_pages_by_time_without_loss_or_duplicates(server):
    async def go():
        async with client(server.base_url, page_limit=20) as api:
            return await api.liquidations(SWAP, START, END), api.dropped.of(SWAP)

    liquidations, drops = run(go())
    truth = truth_liquidations(server, SWAP)
    assert truth.height > 60  # several pages of 20
    assert_frame_equal(liquidations, truth, check_exact=True)
    queries = [r["query"] for r in server.requests("OKX", SWAP, "liquidations")]
    assert {(q["instType"], q["instFamily"], q["state"]) for q in queries} == {("SWAP", "BTC-USDT", "filled")}
    assert drops["duplicates"] >= len(queries) - 2  # each full page's oldest millisecond asked again


def test_liquidations_sharing_a_millisecond_across_a_page_boundary_are_kept():
    ms = int(START.timestamp() * 1000) + 3_600_000

    def page(*sizes_at: tuple[str, int]) -> Reply:
        details = [
            {
                "bkLoss": "0",
                "bkPx": "60000",
                "ccy": "",
                "posSide": "long",
                "side": "sell",
                "sz": sz,
                "ts": str(t),
            }
            for sz, t in sizes_at
        ]
        data = (
            [
                {
                    "details": details,
                    "instFamily": "BTC-USDT",
                    "instId": SWAP,
                    "instType": "SWAP",
                    "totalLoss": "0",
                    "uly": "BTC-USDT",
                }
            ]
            if details
            else []
        )
        return Reply(200, json.dumps({"code": "0", "msg": "", "data": data}).encode())

    with ScriptedServer() as scripted:
        scripted.replies.extend(
            [
                page(("1", ms + 2), ("2", ms + 1), ("3", ms)),  # full: may cut the ms
                page(("3", ms), ("4", ms), ("5", ms - 5)),  # ms again, whole
                page(("6", ms - 7)),
                page(),
            ]
        )  # short: the next asks before its oldest

        async def go():
            async with client(
                scripted.url, page_limit=3, instrument_service=documented_service()
            ) as api:  # sizes known: no lookup
                return await api.liquidations(SWAP, START, END), api.dropped.of(SWAP)

        liquidations, drops = run(go())
        asked = [path.split("after=")[1].split("&")[0] for _, _, path in scripted.requests]
    assert asked == [str(int(END.timestamp() * 1000)), str(ms + 1), str(ms - 4), str(ms - 7)]
    assert liquidations["quantity"].to_list() == pytest.approx([0.06, 0.05, 0.03, 0.04, 0.02, 0.01])
    assert drops == {"duplicates": 1}


def test_a_day_of_mark_and_index_bars(server):
    notes = FetchNotes()

    async def go():
        async with client(server.base_url) as api:
            with noting(notes):
                return await api.mark_bars_1m(SWAP, START, END), await api.index_bars_1m(SWAP, START, END)

    mark, index = run(go())
    assert_frame_equal(mark, truth_price_bars(server, "mark", SWAP), check_exact=True)
    assert_frame_equal(index, truth_price_bars(server, "index", SWAP), check_exact=True)
    assert mark.height == index.height == 1440
    assert (mark["close"] / index["close"] - 1).abs().max() < 0.001  # mark stays close to index
    asked = {r["query"]["instId"] for r in server.requests("OKX", endpoint="index_bars")}
    assert asked == {"BTC-USDT"} and "index BTC-USDT" in notes.conversions[SWAP]


# ---- faults ------------------------------------------------------------------------------------

HOURS = (START + timedelta(hours=20), END)
FETCH = {
    "funding": lambda api: api.funding(SWAP, START, END),
    "open_interest": lambda api: api.open_interest(SWAP, *HOURS),
    "liquidations": lambda api: api.liquidations(SWAP, *HOURS),
    "mark_bars": lambda api: api.mark_bars_1m(SWAP, *HOURS),
    "index_bars": lambda api: api.index_bars_1m(SWAP, *HOURS),
    "tickers": lambda api: api.tickers(SWAP),
}


@pytest.mark.parametrize("endpoint", sorted(FETCH))
def test_429_and_5xx_are_retried(server, endpoint):
    server.add_fault(kind="rate_limit", venue="OKX", endpoint=endpoint, times=1, retry_after="0.01")
    server.add_fault(kind="server_error", venue="OKX", endpoint=endpoint, after=1, times=1)

    async def go():
        async with client(server.base_url) as api:
            return await FETCH[endpoint](api), api.stats

    result, stats = run(go())
    assert result.height > 0 and (stats.rate_limited, stats.server_errors, stats.retries) == (1, 1, 2)


@pytest.mark.parametrize("endpoint", sorted(FETCH))
@pytest.mark.parametrize(
    "kind, message",
    [
        ("malformed_json", "malformed JSON"),
        ("missing_field", "lacks field|not a"),
        ("bad_number", "not a number"),
    ],
)
def test_a_damaged_page_is_a_data_error_naming_the_instrument(server, endpoint, kind, message):
    server.add_fault(kind=kind, venue="OKX", endpoint=endpoint, times=1)

    async def go():
        async with client(server.base_url) as api:
            await FETCH[endpoint](api)

    with pytest.raises(SourceDataError, match=message) as error:
        run(go())
    assert error.value.instrument == SWAP and error.value.source == "OKX"


@pytest.mark.parametrize("endpoint", sorted(FETCH))
def test_an_unknown_instrument_is_51001(server, endpoint):
    api_calls = {
        "funding": "funding",
        "open_interest": "open_interest",
        "liquidations": "liquidations",
        "mark_bars": "mark_bars_1m",
        "index_bars": "index_bars_1m",
    }

    async def unknown():
        async with client(server.base_url) as api:
            if endpoint == "tickers":
                return await api.tickers("NOPE-USDT-SWAP")
            return await getattr(api, api_calls[endpoint])("NOPE-USDT-SWAP", START, END)

    with pytest.raises(SourceNotFound, match="51001") as error:
        run(unknown())
    assert error.value.instrument == "NOPE-USDT-SWAP" and error.value.code == "51001"


# ---- the per-endpoint limits ---------------------------------------------------------------------


def test_window_gate_frees_a_place_a_window_after_its_answer_came_back():
    clock = [100.0]

    async def go():
        gate = WindowGate(3, 2.0, clock=lambda: clock[0])
        for _ in range(3):
            await gate.acquire()
        waiting = asyncio.ensure_future(gate.acquire())
        await asyncio.sleep(0)
        assert not waiting.done()  # three in flight: a fourth waits for an answer, however long it takes
        clock[0] = 105.0
        await gate.release()  # the first answer at 105: its place is free from 107
        await asyncio.sleep(0)
        assert not waiting.done()
        await gate.release()
        await gate.release()
        clock[0] = 107.0
        await asyncio.wait_for(waiting, 1)  # woken by the timeout of its wait, not by a release
        assert gate.in_flight == 1 and not gate.done  # the three places freed at 107

    run(go())


def test_the_longest_prefix_names_the_gate():
    async def go():
        limits = {"/a": (1, 1.0), "/a/b": (2, 1.0)}
        async with (
            ApiClient("http://127.0.0.1:9", endpoint_limits=limits) as api,
            ApiClient("http://127.0.0.1:9") as plain,
            OkxClient() as okx,
        ):
            gate = api._gate("/a/b/c")
            assert gate.requests == 2 and api._gate("/a/b") is gate and api._gate("/a/x").requests == 1
            assert api._gate("/x") is None and plain._gate("/a") is None
            funding = okx._gate("/api/v5/public/funding-rate-history")
            assert (funding.requests, funding.window_s) == (10, pytest.approx(2.1))

    run(go())


def test_the_limiter_keeps_a_burst_inside_okx_requests_per_2s():
    config = ReplayConfig(seed=SEED, trades_per_day=200, now=NOW, okx_requests_per_2s=10)
    with CryptoReplayServer(config) as srv:

        async def burst(**kwargs):
            async with OkxClient(srv.base_url, retry=FAST, requests_per_minute=60_000, **kwargs) as api:
                return await asyncio.gather(
                    *(api.funding(SWAP, START, END) for _ in range(25)), return_exceptions=True
                )

        within = run(burst())  # OKX's own limit for funding-rate-history: 10 requests / 2 s
        assert srv.state()["limit_refusals"]["OKX"] == 0 and len(srv.requests("OKX", SWAP, "funding")) == 25
        assert all(isinstance(f, pl.DataFrame) and f.height == 3 for f in within)
        srv.reset()
        run(burst(endpoint_limits={}))  # without the gate the same burst is refused
        assert srv.state()["limit_refusals"]["OKX"] > 0
