"""The live datasets other than trades (tickers, bars_1m, liquidations, open_interest, mark_funding, books:
ingest/live/hourly/dataset_load.py, defs/live/datasets.py) loaded from real landing files (the landing
writer) through the ingest engine into the embedded ClickHouse: per venue that lands a dataset, the
stored rows equal the frames' values; the same event from two connections counts once as a
duplicate, acks, torn frames and open bars are counted by reason; a re-load leaves the same rows
under one active load; funding samples never reach `funding_rates`; one Dagster materialization
with the checks, and the sensor requesting each asset's hour when its files close. Nothing mocked,
no sleeps.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import dagster as dg
import polars as pl
import pytest

from marketdata_assets.datasets.slices import SliceKey
from marketdata_assets.ingest.engine import Engine
from marketdata_assets.ingest.live.hourly.dataset_load import LiveDatasetLoad
from marketdata_assets.stores.clickhouse import tables as ct
from marketdata_assets.stores.landing import LandingWriter
from tests.support.reference import ReferenceServer

DAY = (datetime.now(UTC) - timedelta(days=1)).date()  # yesterday: every hour closed and plausible
HOUR = 10
T0 = datetime(DAY.year, DAY.month, DAY.day, HOUR, tzinfo=UTC)
MS = int(T0.timestamp() * 1000)


@pytest.fixture(scope="module")
def reference_server():
    with ReferenceServer() as server:
        yield server


@pytest.fixture(autouse=True)
def venues_reference(reference_server, monkeypatch):
    """The venues' REST bases (where contract sizes are looked up) at the documented reference data."""
    monkeypatch.setenv("OKX_BASE_URL", reference_server.url)
    monkeypatch.setenv("DERIBIT_BASE_URL", reference_server.url)
    return reference_server


def ts(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def binance(channel: str, data: dict) -> str:
    return json.dumps({"stream": channel, "data": data})


def okx(channel: str, inst: str, data: list, by_type: bool = False) -> str:
    return json.dumps({"arg": {"channel": channel, "instType" if by_type else "instId": inst}, "data": data})


def deribit(channel: str, data: dict) -> str:
    return json.dumps(
        {"jsonrpc": "2.0", "method": "subscription", "params": {"channel": channel, "data": data}}
    )


def deribit_ticker(k: int) -> dict:
    return {
        "timestamp": MS + k * 1000,
        "instrument_name": "BTC-PERPETUAL",
        "best_bid_price": 40000.5 + k,
        "best_bid_amount": 1000.0,
        "best_ask_price": 40001.0 + k,
        "best_ask_amount": 2000.0,
        "last_price": 40000.5,
        "mark_price": 40000.0 + k,
        "index_price": 39990.0,
        "open_interest": 500000.0,
        "current_funding": 0.0001 * k,
        "funding_8h": 0.0008 * k,
        "stats": {"volume": 10.0},
    }


def book_top(
    venue: str, instrument: str, bids: list, asks: list, update_id: int = 1234, ms: int = MS + 20
) -> str:
    """A top-N snapshot as the collector lands it (`<instrument>@book_top`, its published payload)."""
    return json.dumps(
        {
            "venue": venue,
            "instrument": instrument,
            "update_id": update_id,
            "depth": 2,
            "bids": bids,
            "asks": asks,
            "event_ms": ms,
            "recv_ns": (ms + 3) * 10**6,
        }
    )


def book_rows(
    asks: list[tuple[float, float]], bids: list[tuple[float, float]], ms: int = MS + 20
) -> list[dict]:
    """The stored rows of a snapshot, in the table's order (side `ask` before `bid`, by level)."""
    return [
        {"ts": ts(ms), "side": side, "level": level, "price": price, "quantity": quantity, "update_id": 1234}
        for side, levels in (("ask", asks), ("bid", bids))
        for level, (price, quantity) in enumerate(levels)
    ]


# (venue, dataset) -> (instrument, [(channel, frame text)], the expected stored rows (dicts of columns))
def cases() -> dict[tuple[str, str], tuple[str, list[tuple[str, str]], list[dict]]]:
    um_kline = {
        "e": "kline",
        "E": MS + 60_001,
        "s": "BTCUSDT",
        "k": {
            "t": MS,
            "T": MS + 59_999,
            "s": "BTCUSDT",
            "i": "1m",
            "o": "100.5",
            "c": "101",
            "h": "102",
            "l": "99.5",
            "v": "12.5",
            "n": 42,
            "x": True,
            "q": "1262.5",
            "V": "6",
            "Q": "600",
            "B": "0",
        },
    }
    open_kline = {**um_kline, "k": {**um_kline["k"], "x": False, "c": "100.7"}}
    mark = {
        "e": "markPriceUpdate",
        "E": MS + 1000,
        "s": "BTCUSDT",
        "p": "40001.5",
        "i": "40000.25",
        "P": "40002",
        "r": "0.00010000",
        "T": MS + 6 * 3600_000,
    }
    force = {
        "e": "forceOrder",
        "E": MS + 2001,
        "o": {
            "s": "BTCUSDT",
            "S": "SELL",
            "o": "LIMIT",
            "f": "IOC",
            "q": "0.014",
            "p": "39000",
            "ap": "39010.5",
            "X": "FILLED",
            "l": "0.014",
            "z": "0.014",
            "T": MS + 2000,
        },
    }
    book = {
        "e": "bookTicker",
        "u": 777,
        "E": MS + 5,
        "T": MS + 4,
        "s": "BTCUSDT",
        "b": "40000.1",
        "B": "1.5",
        "a": "40000.2",
        "A": "2.25",
    }
    liquidation = {
        "instId": "BTC-USDT-SWAP",
        "instFamily": "BTC-USDT",
        "details": [
            {
                "side": "sell",
                "posSide": "long",
                "bkPx": "39000.5",
                "sz": "3",
                "bkLoss": "0",
                "ccy": "",
                "ts": str(MS + 3000),
            }
        ],
    }
    other = {
        "instId": "ETH-USDT-SWAP",
        "details": [
            {
                "side": "buy",
                "posSide": "short",
                "bkPx": "2000",
                "sz": "1",
                "bkLoss": "0",
                "ts": str(MS + 3000),
            }
        ],
    }
    agg = {
        "e": "aggTrade",
        "E": MS + 31,
        "s": "BTCUSDT",
        "a": 5001,
        "p": "40000.5",
        "q": "0.25",
        "f": 9001,
        "l": 9003,
        "T": MS + 30,
        "m": False,
        "M": True,
    }
    return {
        ("BINANCE", "agg_trades"): (
            "BTCUSDT",
            [("btcusdt@aggTrade", binance("btcusdt@aggTrade", agg))],  # opt-in
            [
                {
                    "ts": ts(MS + 30),
                    "trade_id": "5001",
                    "price": 40000.5,
                    "quantity": 0.25,
                    "amount": 40000.5 * 0.25,
                    "side": "buy",
                    "seq": 5001,
                }
            ],
        ),  # the archives' way
        ("BINANCE", "tickers"): (
            "BTCUSDT",
            [
                (
                    "btcusdt@bookTicker",
                    binance(
                        "btcusdt@bookTicker",
                        {"u": 900, "s": "BTCUSDT", "b": "40000.1", "B": "0.5", "a": "40000.3", "A": "0.75"},
                    ),
                )
            ],
            [
                {
                    "bid": 40000.1,
                    "bid_size": 0.5,
                    "ask": 40000.3,
                    "ask_size": 0.75,
                    "last": None,
                    "volume_24h": None,
                }
            ],
        ),
        ("BINANCE_UM", "tickers"): (
            "BTCUSDT",
            [("btcusdt@bookTicker", binance("btcusdt@bookTicker", book))],
            [{"ts": ts(MS + 5), "bid": 40000.1, "bid_size": 1.5, "ask": 40000.2, "ask_size": 2.25}],
        ),
        ("BINANCE_UM", "bars_1m"): (
            "BTCUSDT",
            [
                ("btcusdt@kline_1m", binance("btcusdt@kline_1m", open_kline)),
                ("btcusdt@kline_1m", binance("btcusdt@kline_1m", um_kline)),
            ],
            [
                {
                    "ts": ts(MS),
                    "open": 100.5,
                    "high": 102.0,
                    "low": 99.5,
                    "close": 101.0,
                    "volume": 12.5,
                    "amount": 1262.5,
                    "trades": 42,
                }
            ],
        ),
        ("BINANCE_UM", "mark_funding"): (
            "BTCUSDT",
            [("btcusdt@markPrice@1s", binance("btcusdt@markPrice@1s", mark))],
            [
                {
                    "ts": ts(MS + 1000),
                    "mark_price": 40001.5,
                    "index_price": 40000.25,
                    "funding_rate": 0.0001,
                    "next_funding_time": ts(MS + 6 * 3600_000),
                    "funding_rate_8h": None,
                }
            ],
        ),
        ("BINANCE_UM", "liquidations"): (
            "BTCUSDT",
            [  # the all-market stream: every symbol's, one a push
                ("!forceOrder@arr", binance("!forceOrder@arr", force)),
                (
                    "!forceOrder@arr",
                    binance("!forceOrder@arr", {**force, "o": {**force["o"], "s": "ETHUSDT"}}),
                ),
            ],
            [
                {
                    "ts": ts(MS + 2000),
                    "liquidation_id": f"{MS + 2000}.SELL",
                    "side": "sell",
                    "price": 39010.5,
                    "quantity": 0.014,
                    "amount": 39010.5 * 0.014,
                    "order_price": 39000.0,
                }
            ],
        ),  # `ap`, and the order's `p`
        ("OKX", "tickers"): (
            "BTC-USDT-SWAP",
            [
                (
                    "BTC-USDT-SWAP@tickers",
                    okx(
                        "tickers",
                        "BTC-USDT-SWAP",
                        [
                            {
                                "instId": "BTC-USDT-SWAP",
                                "last": "40000.5",
                                "lastSz": "2",
                                "bidPx": "40000.4",
                                "bidSz": "10",
                                "askPx": "40000.6",
                                "askSz": "20",
                                "ts": str(MS + 7),
                            }
                        ],
                    ),
                )
            ],
            [
                {
                    "ts": ts(MS + 7),
                    "last": 40000.5,
                    "bid": 40000.4,
                    "bid_size": 0.1,
                    "ask": 40000.6,
                    "ask_size": 0.2,
                }
            ],
        ),
        ("OKX", "bars_1m"): (
            "BTC-USDT-SWAP",
            [
                (
                    "BTC-USDT-SWAP@candle1m",
                    okx(
                        "candle1m",
                        "BTC-USDT-SWAP",
                        [[str(MS), "100", "103", "99", "102", "500", "5", "510", "1"]],
                    ),
                )
            ],
            [
                {
                    "ts": ts(MS),
                    "open": 100.0,
                    "high": 103.0,
                    "low": 99.0,
                    "close": 102.0,
                    "volume": 5.0,
                    "amount": 510.0,
                }
            ],
        ),
        ("OKX", "open_interest"): (
            "BTC-USDT-SWAP",
            [
                (
                    "BTC-USDT-SWAP@open-interest",
                    okx(
                        "open-interest",
                        "BTC-USDT-SWAP",
                        [
                            {
                                "instId": "BTC-USDT-SWAP",
                                "instType": "SWAP",
                                "oi": "5000",
                                "oiCcy": "50",
                                "oiUsd": "2000000",
                                "ts": str(MS + 9),
                            }
                        ],
                    ),
                )
            ],
            [
                {
                    "ts": ts(MS + 9),
                    "contracts": 5000.0,
                    "contract_size": 0.01,
                    "size_unit": "base",
                    "base": 50.0,
                    "quote": 2000000.0,
                }
            ],
        ),
        ("OKX", "mark_funding"): (
            "BTC-USDT-SWAP",
            [
                (
                    "BTC-USDT-SWAP@mark-price",
                    okx(
                        "mark-price",
                        "BTC-USDT-SWAP",
                        [
                            {
                                "instId": "BTC-USDT-SWAP",
                                "instType": "SWAP",
                                "markPx": "40002.5",
                                "ts": str(MS + 11),
                            }
                        ],
                    ),
                ),
                (
                    "BTC-USDT-SWAP@funding-rate",
                    okx(
                        "funding-rate",
                        "BTC-USDT-SWAP",
                        [
                            {
                                "instId": "BTC-USDT-SWAP",
                                "fundingRate": "0.0002",
                                "nextFundingRate": "",
                                "fundingTime": str(MS + 6 * 3600_000),
                                "nextFundingTime": str(MS + 14 * 3600_000),
                                "ts": str(MS + 12),
                            }
                        ],
                    ),
                ),
            ],
            [
                {"ts": ts(MS + 11), "mark_price": 40002.5, "index_price": None, "funding_rate": None},
                {
                    "ts": ts(MS + 12),
                    "mark_price": None,
                    "funding_rate": 0.0002,
                    "next_funding_time": ts(MS + 6 * 3600_000),
                },
            ],
        ),
        ("OKX", "liquidations"): (
            "BTC-USDT-SWAP",
            [
                (
                    "SWAP@liquidation-orders",
                    okx("liquidation-orders", "SWAP", [liquidation, other], by_type=True),
                )
            ],
            [
                {
                    "ts": ts(MS + 3000),
                    "liquidation_id": f"{MS + 3000}-sell-long-3-39000.5",
                    "side": "sell",
                    "price": 39000.5,
                    "quantity": 0.03,
                    "amount": 39000.5 * 0.03,
                    "order_price": None,
                }
            ],
        ),
        ("DERIBIT", "tickers"): (
            "BTC-PERPETUAL",
            [("ticker.BTC-PERPETUAL.100ms", deribit("ticker.BTC-PERPETUAL.100ms", deribit_ticker(1)))],
            [
                {
                    "ts": ts(MS + 1000),
                    "last": 40000.5,
                    "bid": 40001.5,
                    "bid_size": 1000.0 / 40001.5,
                    "ask": 40002.0,
                    "ask_size": 2000.0 / 40002.0,
                    "mark_price": 40001.0,
                    "index_price": 39990.0,
                    "funding_rate": 0.0001,
                }
            ],
        ),
        ("DERIBIT", "open_interest"): (
            "BTC-PERPETUAL",
            [("ticker.BTC-PERPETUAL.100ms", deribit("ticker.BTC-PERPETUAL.100ms", deribit_ticker(1)))],
            [
                {
                    "ts": ts(MS + 1000),
                    "contracts": 50000.0,
                    "contract_size": 10.0,
                    "size_unit": "quote",
                    "base": 500000.0 / 40001.0,
                    "quote": 500000.0,
                }
            ],
        ),
        ("BINANCE", "books"): (
            "BTCUSDT",
            [
                (
                    "btcusdt@book_top",
                    book_top(
                        "BINANCE",
                        "BTCUSDT",
                        [["40000.10", "1.5"], ["40000.00", "2"]],
                        [["40000.20", "0.5"], ["40000.30", "3"]],
                    ),
                )
            ],
            book_rows([(40000.2, 0.5), (40000.3, 3.0)], [(40000.1, 1.5), (40000.0, 2.0)]),
        ),
        ("OKX", "books"): (
            "BTC-USDT-SWAP",
            [
                (
                    "BTC-USDT-SWAP@book_top",
                    book_top(  # contracts of 0.01 BTC
                        "OKX",
                        "BTC-USDT-SWAP",
                        [["40000.1", "10"], ["40000", "25"]],
                        [["40000.2", "5"], ["40000.5", "100"]],
                    ),
                )
            ],
            book_rows([(40000.2, 0.05), (40000.5, 1.0)], [(40000.1, 0.1), (40000.0, 0.25)]),
        ),
        ("DERIBIT", "books"): (
            "BTC-PERPETUAL",
            [
                (
                    "BTC-PERPETUAL@book_top",
                    book_top(  # USD amounts
                        "DERIBIT",
                        "BTC-PERPETUAL",
                        [["40000.5", "1000"], ["40000", "2000"]],
                        [["40001", "4000"]],
                    ),
                )
            ],
            book_rows([(40001.0, 4000 / 40001)], [(40000.5, 1000 / 40000.5), (40000.0, 2000 / 40000)]),
        ),
        ("DERIBIT", "mark_funding"): (
            "BTC-PERPETUAL",
            [("ticker.BTC-PERPETUAL.100ms", deribit("ticker.BTC-PERPETUAL.100ms", deribit_ticker(2)))],
            [
                {
                    "ts": ts(MS + 2000),
                    "mark_price": 40002.0,
                    "index_price": 39990.0,
                    "funding_rate": 0.0002,
                    "next_funding_time": None,
                    "funding_rate_8h": 0.0016,
                }
            ],
        ),  # current_funding, funding_8h
    }


def land(root, venue: str, frames: list[tuple[str, str]], noise: bool = True, hour: int = 0) -> None:
    """Each frame landed by connection c1, then again by c2 (an overlap: duplicates), plus an ack and
    a torn frame on the first channel; a minute into the hour `hour` hours after T0's."""
    with LandingWriter(root, venue) as writer:
        recv = int(T0.timestamp() * 1e9) + (60 + 3600 * hour) * 10**9
        for k, conn in enumerate(("c1", "c2")):
            writer.marker(frames[0][0], conn, "connect", recv + k)
            for i, (channel, text) in enumerate(frames):
                writer.frame(channel, conn, text, recv + 10**6 * (i + 1) + k)
        if noise:
            writer.frame(frames[0][0], "c2", '{"result":null,"id":1}', recv + 10**9)
            writer.frame(frames[0][0], "c2", frames[0][1][:25], recv + 10**9 + 1)


def run(store, dataset: str, venue: str, instrument: str, root, run_id: str = "run-1"):
    key = SliceKey(dataset, venue, instrument, DAY)
    load = LiveDatasetLoad(root, [key])
    report = Engine(store.get_client, store.database, run_id).run([load.feeds()])
    return report, load.figures[(venue, instrument)][T0.strftime("%Y-%m-%dT%HZ")]


def stored(store, dataset: str, venue: str, instrument: str) -> list[dict]:
    with store.get_client() as client:
        frame = ct.read_range(
            client, store.database, dataset, venue, instrument, DAY, DAY + timedelta(days=1)
        )
    return frame.rows(named=True)


def assert_rows(rows: list[dict], expected: list[dict]) -> None:
    assert len(rows) == len(expected), rows
    for row, want in zip(rows, expected, strict=True):
        for column, value in want.items():
            got = row[column]
            assert got == pytest.approx(value) if isinstance(value, float) else got == value, (column, row)


@pytest.mark.parametrize(("venue", "dataset"), sorted(cases()))
def test_a_landed_hour_is_stored_as_the_frames_say(root, store, venue, dataset):
    instrument, frames, expected = cases()[(venue, dataset)]
    land(root, venue, frames)
    report, figures = run(store, dataset, venue, instrument, root)
    assert report.failures() == [], report.failures_table()
    rows = stored(store, dataset, venue, instrument)
    assert_rows(rows, expected)
    assert all(r["venue"] == venue and r["instrument"] == instrument for r in rows)
    # every event twice (two connections): the second copies are duplicates; the ack and the torn frame
    # counted
    messages = (
        1
        if dataset == "books"
        else len(expected)
        * (2 if (venue, dataset) in {("BINANCE_UM", "mark_funding"), ("DERIBIT", "mark_funding")} else 1)
    )
    discarded = dict(figures.discarded)
    assert discarded.pop("duplicates") == messages
    if dataset == "books":  # the collector's own records: an ack there is no snapshot either
        assert discarded.pop("bad_frame") == 2
    else:
        assert discarded.pop("not_an_event") == 1 and discarded.pop("bad_frame") == 1
    if dataset == "bars_1m" and venue == "BINANCE_UM":
        assert discarded.pop("unconfirmed") == 2  # the open bar's update, from each connection
    if (
        dataset == "liquidations"
    ):  # ETH's in the shared channel (OKX: a detail; Binance: a push), each connection
        assert discarded.pop("other_instrument") == 2
    assert discarded == {}
    assert figures.markers["connect"] == 2 and figures.trades == (
        len(expected) if dataset == "books" else messages
    )


def test_a_reload_is_idempotent_and_samples_never_reach_funding_rates(root, store):
    instrument, frames, expected = cases()[("DERIBIT", "mark_funding")]
    land(root, "DERIBIT", frames)
    run(store, "mark_funding", "DERIBIT", instrument, root, "run-1")
    first = stored(store, "mark_funding", "DERIBIT", instrument)
    run(store, "mark_funding", "DERIBIT", instrument, root, "run-2")
    assert stored(store, "mark_funding", "DERIBIT", instrument) == first
    assert_rows(first, expected)
    with store.get_client() as client:
        loads = ct.loaded_days(client, store.database, "mark_funding", "DERIBIT", instrument)
        assert loads.height == 1 and loads["run_id"].to_list() == ["run-2"]
        assert ct.loaded_days(client, store.database, "funding", "DERIBIT").height == 0
        assert client.query(f"SELECT count() FROM `{store.database}`.funding_rates").result_rows[0][0] == 0


def test_one_id_with_different_values_fails_the_slice(root, store):
    instrument, frames, _ = cases()[("OKX", "open_interest")]
    land(
        root,
        "OKX",
        [*frames, (frames[0][0], frames[0][1].replace('"oi": "5000"', '"oi": "5001"'))],
        noise=False,
    )
    report, _ = run(store, "open_interest", "OKX", instrument, root)
    (failure,) = report.failures()
    assert "different values" in failure.error


def test_live_mark_funding_materializes_an_hour_with_its_checks(root, store):
    from marketdata_assets.defs.live.checks import live_dataset_checks
    from marketdata_assets.defs.live.datasets import live_dataset_assets

    instrument, frames, expected = cases()[("BINANCE_UM", "mark_funding")]
    land(root, "BINANCE_UM", frames)
    hour = f"{T0:%Y-%m-%d-%H}:00"  # the instrument found from the hour's closed files (no config)
    asset = next(a for a in live_dataset_assets if a.key == dg.AssetKey("live_mark_funding"))
    checks = [
        c
        for c in live_dataset_checks
        if dg.AssetKey("live_mark_funding") in {k.asset_key for k in c.check_keys}
    ]
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(
            [asset, *checks],
            resources={"clickhouse": store},
            instance=instance,
            partition_key=hour,
            raise_on_error=False,
        )
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    (event,) = result.get_asset_materialization_events()
    metadata = {k: v.value for k, v in event.materialization.metadata.items()}
    assert (metadata["rows"], metadata["messages"], metadata["frames"]) == (1, 2, 4)
    assert metadata["discarded_by_reason"] == {"bad_frame": 1, "duplicates": 2, "not_an_event": 1}
    passed = {
        e.event_specific_data.asset_check_key.name: e.event_specific_data.passed
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }
    assert passed == {"timestamps_inside_day": True}
    assert_rows(stored(store, "mark_funding", "BINANCE_UM", instrument), expected)


def test_each_hour_of_a_multi_hour_run_carries_its_own_figures_and_the_run_its_own_as_run_figures(
    root, store
):
    """A run over hours 10 and 11 of `live_tickers`: each hour's materialization has its own rows (its share
    of the day slice stored), messages and frames; the run's totals are `run_*`; the console counts the
    run's rows once."""
    from marketdata_assets.apps.launch import launch
    from marketdata_assets.defs.live.datasets import live_dataset_assets

    def ticker(u: int, ms: int) -> tuple[str, str]:
        return "btcusdt@bookTicker", binance(
            "btcusdt@bookTicker",
            {
                "e": "bookTicker",
                "u": u,
                "E": ms,
                "T": ms - 1,
                "s": "BTCUSDT",
                "b": "40000.1",
                "B": "1.5",
                "a": "40000.2",
                "A": "2.25",
            },
        )

    land(root, "BINANCE_UM", [ticker(777, MS + 5)])
    land(root, "BINANCE_UM", [ticker(778 + k, MS + 3600_000 + 5 + k) for k in range(3)], noise=False, hour=1)
    asset = next(a for a in live_dataset_assets if a.key == dg.AssetKey("live_tickers"))
    hours = [f"{T0 + timedelta(hours=k):%Y-%m-%d-%H}:00" for k in (0, 1)]
    with dg.DagsterInstance.ephemeral() as instance:
        outcome = launch(
            "live tickers",
            [asset],
            instance=instance,
            resources={"clickhouse": store},
            tags={
                "dagster/asset_partition_range_start": hours[0],
                "dagster/asset_partition_range_end": hours[1],
            },
        )
        assert outcome.success, outcome.errors
        records = instance.fetch_materializations(dg.AssetKey("live_tickers"), limit=10).records
    own = {
        r.partition_key: {k: v.value for k, v in r.asset_materialization.metadata.items()} for r in records
    }
    assert [(own[h]["rows"], own[h]["messages"], own[h]["frames"]) for h in hours] == [(1, 1, 4), (3, 3, 6)]
    assert {
        (m["run_rows"], m["run_messages"], m["run_frames"], m["run_partitions"]) for m in own.values()
    } == {(4, 4, 10, 2)}
    assert outcome.rows == 4  # the run's rows, once
    assert len(stored(store, "tickers", "BINANCE_UM", "BTCUSDT")) == 4


def test_the_sensor_requests_each_assets_hour_when_its_files_close(root):
    from marketdata_assets.defs.live.sensors import live_landing_hours

    _, deribit_frames, _ = cases()[("DERIBIT", "tickers")]
    land(root, "DERIBIT", deribit_frames, noise=False)
    land(root, "OKX", cases()[("OKX", "liquidations")][1], noise=False)
    land(root, "OKX", cases()[("OKX", "bars_1m")][1], noise=False)
    with dg.DagsterInstance.ephemeral() as instance:
        first = live_landing_hours(dg.build_sensor_context(instance=instance))
        hour = f"{T0:%Y-%m-%d-%H}:00"

        def requested(result) -> list:
            return sorted(
                (
                    r.asset_selection[0].to_user_string(),
                    r.partition_key,
                    *r.run_config["ops"][r.asset_selection[0].to_user_string()]["config"]["instruments"],
                )
                for r in result.run_requests
            )

        assert requested(first) == sorted(
            [
                ("live_tickers", hour, "DERIBIT:BTC-PERPETUAL"),  # one ticker channel feeds three assets
                ("live_open_interest", hour, "DERIBIT:BTC-PERPETUAL"),
                ("live_mark_funding", hour, "DERIBIT:BTC-PERPETUAL"),
                ("live_bars_1m", hour, "OKX:BTC-USDT-SWAP"),
                ("live_liquidations", hour, "OKX:BTC-USDT-SWAP"),  # the shared channel, for the swap found
            ]
        )
        assert all(len(r.asset_selection) == 1 for r in first.run_requests)
        open_writer = LandingWriter(root, "DERIBIT")  # the next hour, still open: nothing to load yet
        open_writer.frame(
            "ticker.BTC-PERPETUAL.100ms",
            "c1",
            deribit_frames[0][1],
            int((T0 + timedelta(hours=1)).timestamp() * 1e9),
        )
        open_writer.flush()
        again = live_landing_hours(dg.build_sensor_context(instance=instance, cursor=first.cursor))
        assert again.run_requests == []
        open_writer.close()
        closed = live_landing_hours(dg.build_sensor_context(instance=instance, cursor=again.cursor))
        later = f"{T0 + timedelta(hours=1):%Y-%m-%d-%H}:00"
        assert requested(closed) == [
            ("live_mark_funding", later, "DERIBIT:BTC-PERPETUAL"),
            ("live_open_interest", later, "DERIBIT:BTC-PERPETUAL"),
            ("live_tickers", later, "DERIBIT:BTC-PERPETUAL"),
        ]


def test_a_store_of_before_gets_a_nullable_volume_24h(store):
    """tickers.volume_24h was NOT NULL before the live tickers (which carry no 24h volume):
    ensure_tables modifies it once in a store created then."""
    database = f"{store.database}_before_live_tickers"
    with store.get_client() as client:
        client.command(f"DROP DATABASE IF EXISTS `{database}`")
        client.command(f"CREATE DATABASE `{database}`")
        old = ct.ddl_statements(database)[[s.name for s in ct.DATASETS.values()].index("tickers")]
        client.command(
            old.replace(
                "`volume_24h` Nullable(Float64) CODEC(ZSTD(1))", "`volume_24h` Float64 CODEC(ZSTD(1))"
            )
        )

        def volume_type() -> str:
            return client.query(
                "SELECT type FROM system.columns WHERE database = {d:String} AND table = 'tickers' "
                "AND name = 'volume_24h'",
                parameters={"d": database},
            ).result_rows[0][0]

        assert volume_type() == "Float64"
        try:
            ct.ensure_tables(client, database)
            assert volume_type() == "Nullable(Float64)"
            ct.ensure_tables(client, database)  # once: nothing left to modify
            assert volume_type() == "Nullable(Float64)"
        finally:
            client.command(f"DROP DATABASE IF EXISTS `{database}`")


def test_live_trades_of_an_hour_loads_the_instruments_with_trade_files_and_draws_their_coverage(root, store):
    """An hour's run without `instruments` loads the instruments with a closed trade file of the hour (here
    BINANCE:BTCUSDT; BINANCE_UM's aggTrade stream landed nothing): one instrument x 48 hours drawn."""
    from marketdata_assets.defs.live.assets import live_trades

    trade = {
        "e": "trade",
        "E": MS + 3,
        "s": "BTCUSDT",
        "t": 1,
        "p": "40000",
        "q": "0.5",
        "T": MS,
        "m": False,
        "M": True,
    }
    land(root, "BINANCE", [("btcusdt@trade", binance("btcusdt@trade", trade))], noise=False)
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(
            [live_trades],
            resources={"clickhouse": store},
            instance=instance,
            partition_key=f"{T0:%Y-%m-%d-%H}:00",
            raise_on_error=False,
        )
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    (event,) = result.get_asset_materialization_events()
    metadata = {k: v.value for k, v in event.materialization.metadata.items()}
    assert (metadata["slices_ok"], metadata["coverage_missing"], metadata["coverage_loaded"]) == (1, 47, 1)


def test_a_bar_the_rest_parser_refuses_is_a_bad_frame(root):
    """OKX bars go through the REST parser: a bar it refuses (high below low) is counted, not stored."""
    from marketdata_assets.ingest.live.hourly.dataset_load import read_day

    good = [str(MS), "100", "103", "99", "102", "500", "5", "510", "1"]
    bad = [str(MS + 60_000), "100", "98", "99", "102", "500", "5", "510", "1"]
    channel = "BTC-USDT-SWAP@candle1m"
    land(
        root,
        "OKX",
        [
            (channel, okx("candle1m", "BTC-USDT-SWAP", [good])),
            (channel, okx("candle1m", "BTC-USDT-SWAP", [bad])),
        ],
        noise=False,
    )
    figures: dict = {}
    frame = read_day(root, SliceKey("bars_1m", "OKX", "BTC-USDT-SWAP", DAY), figures)
    assert frame["ts"].to_list() == [ts(MS)]
    (hour,) = figures.values()
    assert dict(hour.discarded) == {"bad_frame": 2, "duplicates": 1}


def test_the_collectors_books_are_stored_as_the_venue_had_them_and_pass_their_checks(root, store):
    """The real collector against the Binance replays lands its top-N snapshots (`@book_top`, no NATS);
    `live_books` (with its checks) stores the hour: the snapshot at the book's last update id equals
    the replay's true book level for level, every snapshot once; a second run leaves the same rows."""
    import asyncio

    from marketdata_assets.defs.live.checks import live_dataset_checks
    from marketdata_assets.defs.live.datasets import live_dataset_assets
    from marketdata_assets.replay.crypto.binance_ws import WsConfig
    from tests.support.live import collecting, config_for, replays

    stack, rest, ws = replays(WsConfig(tick_s=0.02))
    with stack:

        async def scenario() -> int:
            config = config_for(ws, rest, book_snapshot_s=0.1, book_depth=5)
            async with collecting(config, LandingWriter(root, "BINANCE")) as (c, _):
                await c.stats.wait_until(lambda s: s.book_tops_landed >= 10, 20)
                ws.pause()
                await c.stats.wait_until(
                    lambda s: (
                        c.books.by_instrument["BTCUSDT"].book.update_id == ws.truth_book("BTCUSDT")[0]
                        and c.books.snapshot_ids.get("BTCUSDT") == ws.truth_book("BTCUSDT")[0]
                    ),
                    20,
                )
                return c.stats.book_tops_landed

        landed = asyncio.run(scenario())
        truth_id, bids, asks = ws.truth_book("BTCUSDT")
    hours = sorted({path.name.split(".")[0] for path in root.rglob("btcusdt@book_top/*.jsonl.zst")})
    asset = next(a for a in live_dataset_assets if a.key == dg.AssetKey("live_books"))
    checks = [
        c for c in live_dataset_checks if dg.AssetKey("live_books") in {k.asset_key for k in c.check_keys}
    ]
    assert len(checks) == 3
    counts, first_day = [], datetime.strptime(hours[0][:10], "%Y-%m-%d").date()
    with dg.DagsterInstance.ephemeral() as instance:
        for _ in range(2):
            for hour in hours:  # 2026-11-24T04Z -> 2026-11-24-04:00
                result = dg.materialize(
                    [asset, *checks],
                    resources={"clickhouse": store},
                    instance=instance,
                    partition_key=f"{hour[:10]}-{hour[11:13]}:00",
                    raise_on_error=False,
                    run_config={"ops": {"live_books": {"config": {"instruments": ["BINANCE:BTCUSDT"]}}}},
                )
                assert result.success, [e.message for e in result.all_events if e.is_failure]
                assert all(e.passed for e in result.get_asset_check_evaluations())
            with store.get_client() as client:  # the active loads' rows (the load pointer)
                frame = ct.read_range(
                    client,
                    store.database,
                    "books",
                    "BINANCE",
                    "BTCUSDT",
                    first_day,
                    first_day + timedelta(days=2),
                )
            counts.append((frame.height, frame["update_id"].n_unique()))
    rows = frame.filter(pl.col("update_id") == truth_id).rows(named=True)
    top = {
        side: [
            (float(p), float(q))
            for p, q in sorted(levels.items(), key=lambda kv: float(kv[0]), reverse=side == "bid")[:5]
        ]
        for side, levels in (("bid", bids), ("ask", asks))
    }
    assert {
        side: [(r["price"], r["quantity"]) for r in rows if r["side"] == side] for side in ("bid", "ask")
    } == top
    assert counts[0] == counts[1] and counts[0][0] == 10 * counts[0][1] and 5 <= counts[0][1] <= landed
