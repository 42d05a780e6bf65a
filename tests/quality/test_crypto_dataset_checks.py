"""The checks of the rest of the crypto data model against the embedded ClickHouse: a funding rate
past its venue's cap, negative open interest, a mark price far from its index, an option whose IV
is not positive or whose name disagrees with its strike/expiry/type, a liquidation id twice and a
crossed ticker are each found and named; plausible data passes. Plus the frame contract of the new
datasets (their words and nulls) and what each venue serves."""

from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest

from marketdata_assets.datasets.frames import spec_for
from marketdata_assets.datasets.slices import SliceKey
from marketdata_assets.datasets.wire import columns_of
from marketdata_assets.quality.slices import (
    FUNDING_INSIDE_CAP,
    MARK_NEAR_INDEX,
    NO_DUPLICATE_LIQUIDATION_IDS,
    OPEN_INTEREST_NOT_NEGATIVE,
    OPTIONS_SANE,
    TICKER_NOT_CROSSED,
    count,
    funding_caps,
    latest_scope,
    slice_scope,
    with_params,
)
from marketdata_assets.sources.interface import HISTORY, SNAPSHOT
from marketdata_assets.sources.venues import serves
from marketdata_assets.stores.clickhouse import writer

DAY = date(2025, 1, 15)
MIDNIGHT = datetime(2025, 1, 15, tzinfo=UTC)


def us(moment: datetime) -> int:
    return int(moment.timestamp()) * 1_000_000


def frame(dataset: str, venue: str, instrument: str, rows: list[tuple]) -> pl.DataFrame:
    cols = columns_of(dataset)
    for row in rows:
        cols.add(*row)
    return cols.frame(venue, instrument)


def write(store, dataset: str, data: pl.DataFrame, venue: str, instrument: str) -> SliceKey:
    with store.get_client() as client:
        writer.write_slice(client, store.database, dataset, data, venue, instrument, DAY, "test")
    return SliceKey(dataset, venue, instrument, DAY)


def check(store, rule, keys: list[SliceKey], caps: dict | None = None) -> dict:
    with store.get_client() as client:
        return count(
            client,
            store.database,
            rule,
            with_params(slice_scope(store.database, rule.dataset, keys), **funding_caps(caps or {})),
        )


def test_a_funding_rate_past_its_venues_cap_is_named_and_venues_without_a_cap_are_not_checked(store):
    hours = [MIDNIGHT + timedelta(hours=h) for h in (0, 8, 16)]
    ok = write(
        store,
        "funding",
        frame("funding", "OKX", "BTC-USDT-SWAP", [(us(t), 0.0001, 8.0, 0.0001, None, None) for t in hours]),
        "OKX",
        "BTC-USDT-SWAP",
    )
    # Binance at 16:00: 0.5% a period against a 0.3% cap
    bad = write(
        store,
        "funding",
        frame(
            "funding",
            "BINANCE_UM",
            "BTCUSDT",
            [(us(t), r, 8.0, r, 95_000.0, None) for t, r in zip(hours, (0.0001, -0.0002, 0.005))],
        ),
        "BINANCE_UM",
        "BTCUSDT",
    )
    # Deribit's hourly rate: checked as its 8-hour figure
    deribit = write(
        store,
        "funding",
        frame(
            "funding",
            "DERIBIT",
            "BTC-PERPETUAL",
            [(us(MIDNIGHT + timedelta(hours=h)), 0.00001, 1.0, 0.00008, None, 95_000.0) for h in range(24)],
        ),
        "DERIBIT",
        "BTC-PERPETUAL",
    )
    caps = {"OKX": 0.00375, "BINANCE_UM": 0.003}
    results = check(store, FUNDING_INSIDE_CAP, [ok, bad, deribit], caps=caps)
    flagged = results[f"{DAY}|BINANCE_UM:BTCUSDT"]
    assert flagged.violations == 1 and flagged.rows_checked == 3
    row = dict(zip(flagged.sample_columns, flagged.sample[0]))
    assert row["rate"] == 0.005 and row["cap"] == 0.003 and row["ts"].hour == 16
    assert results[f"{DAY}|OKX:BTC-USDT-SWAP"].violations == 0
    assert results[f"{DAY}|DERIBIT:BTC-PERPETUAL"].violations == 0  # no cap configured: not checked
    strict = check(store, FUNDING_INSIDE_CAP, [deribit], caps={"DERIBIT": 0.00005})
    assert strict[f"{DAY}|DERIBIT:BTC-PERPETUAL"].violations == 24  # 0.008% > 0.005% an 8-hour period


def test_negative_open_interest_fails_and_a_plausible_history_passes(store):
    stamps = [MIDNIGHT + timedelta(minutes=5 * i) for i in range(12)]
    good = write(
        store,
        "open_interest",
        frame(
            "open_interest",
            "OKX",
            "BTC-USDT-SWAP",
            [
                (us(t), 1000.0 + i, 0.01, "base", 10.0 + i / 100, (10.0 + i / 100) * 95_000)
                for i, t in enumerate(stamps)
            ],
        ),
        "OKX",
        "BTC-USDT-SWAP",
    )
    bad = write(
        store,
        "open_interest",
        frame(
            "open_interest",
            "BINANCE_UM",
            "BTCUSDT",
            [
                (us(t), -5.0 if i == 3 else 80_000.0, 1.0, "base", -5.0 if i == 3 else 80_000.0, 8e9)
                for i, t in enumerate(stamps)
            ],
        ),
        "BINANCE_UM",
        "BTCUSDT",
    )
    results = check(store, OPEN_INTEREST_NOT_NEGATIVE, [good, bad])
    assert results[f"{DAY}|OKX:BTC-USDT-SWAP"].violations == 0
    assert results[f"{DAY}|BINANCE_UM:BTCUSDT"].violations == 1
    assert results[f"{DAY}|BINANCE_UM:BTCUSDT"].sample[0][3] == -5.0  # venue, instrument, ts, contracts


def test_a_mark_price_far_from_its_index_is_named_with_its_premium(store):
    minutes = [MIDNIGHT + timedelta(minutes=i) for i in range(30)]
    index = [95_000.0 + i for i in range(30)]
    mark = [p * (1.0004 if i != 17 else 1.05) for i, p in enumerate(index)]  # 5% off at 00:17
    write(
        store,
        "index_bars_1m",
        frame("index_bars_1m", "OKX", "BTC-USDT-SWAP", [(us(t), p, p, p, p) for t, p in zip(minutes, index)]),
        "OKX",
        "BTC-USDT-SWAP",
    )
    key = write(
        store,
        "mark_bars_1m",
        frame("mark_bars_1m", "OKX", "BTC-USDT-SWAP", [(us(t), p, p, p, p) for t, p in zip(minutes, mark)]),
        "OKX",
        "BTC-USDT-SWAP",
    )
    result = check(store, MARK_NEAR_INDEX, [key])[f"{DAY}|OKX:BTC-USDT-SWAP"]
    assert result.violations == 1 and result.rows_checked == 30
    row = dict(zip(result.sample_columns, result.sample[0]))
    assert row["ts"].minute == 17 and row["premium"] == pytest.approx(0.05)


def test_duplicate_liquidation_ids_are_found(store):
    rows = [
        (us(MIDNIGHT + timedelta(minutes=i)), f"liq-{i}", "sell", 95_000.0, 0.1, 9_500.0, None)
        for i in range(5)
    ]
    key = write(
        store,
        "liquidations",
        frame("liquidations", "DERIBIT", "BTC-PERPETUAL", rows),
        "DERIBIT",
        "BTC-PERPETUAL",
    )
    assert check(store, NO_DUPLICATE_LIQUIDATION_IDS, [key])[f"{DAY}|DERIBIT:BTC-PERPETUAL"].violations == 0
    # a frame that repeats one (a parser that did not drop a page overlap), written as given
    write(
        store,
        "liquidations",
        frame("liquidations", "DERIBIT", "BTC-PERPETUAL", rows + rows[2:3]),
        "DERIBIT",
        "BTC-PERPETUAL",
    )
    result = check(store, NO_DUPLICATE_LIQUIDATION_IDS, [key])[f"{DAY}|DERIBIT:BTC-PERPETUAL"]
    assert result.violations == 1 and result.rows_checked == 6
    assert dict(zip(result.sample_columns, result.sample[0]))["liquidation_id"] == "liq-2"


def test_options_with_a_bad_iv_or_a_name_that_disagrees_are_named(store):
    expiry = us(datetime(2025, 3, 28, 8, tzinfo=UTC))
    at = us(MIDNIGHT + timedelta(hours=9))

    def option(name, strike, kind, iv, bid_iv=None):
        return (
            at,
            name,
            expiry,
            strike,
            kind,
            95_000.0,
            "btc_usd",
            0.05,
            iv,
            bid_iv,
            None,
            0.049,
            0.051,
            12.0,
            None,
        )

    chain = frame(
        "option_chain",
        "DERIBIT",
        "BTC-OPTIONS",
        [
            option("BTC-28MAR25-100000-C", 100_000.0, "call", 55.2, 54.0),
            option("BTC-28MAR25-90000-P", 90_000.0, "put", 0.0),  # IV 0: not a quote
            option("BTC-28MAR25-80000-P", 85_000.0, "put", 61.0),  # the name says 80000
            option("BTC-28MAR25-70000-P", 70_000.0, "call", 64.0),  # the name says a put
        ],
    )
    with store.get_client() as client:
        writer.write_slice(
            client, store.database, "option_chain", chain, "DERIBIT", "BTC-OPTIONS", DAY, "test"
        )
        result = count(
            client,
            store.database,
            OPTIONS_SANE,
            latest_scope(store.database, "option_chain", ["DERIBIT:BTC-OPTIONS"]),
        )["DERIBIT:BTC-OPTIONS"]
    assert result.violations == 3 and result.rows_checked == 4
    named = {dict(zip(result.sample_columns, row))["option"] for row in result.sample}
    assert named == {"BTC-28MAR25-90000-P", "BTC-28MAR25-80000-P", "BTC-28MAR25-70000-P"}


def test_a_crossed_ticker_fails_and_one_sided_tickers_pass(store):
    at = us(MIDNIGHT + timedelta(hours=3))
    good = frame(
        "tickers",
        "OKX",
        "BTC-USDT",
        [(at, 95_000.0, 94_999.9, 1.2, 95_000.1, 0.8, 1234.5, 1.2e8, None, None, None)],
    )
    one_sided = frame(
        "tickers", "OKX", "ETH-USDT", [(at, 3_300.0, None, None, 3_300.1, 2.0, 99.0, None, None, None, None)]
    )
    crossed = frame(
        "tickers",
        "BINANCE",
        "BTCUSDT",
        [(at, 95_000.0, 95_001.0, 1.0, 95_000.5, 1.0, 10.0, 9.5e5, None, None, None)],
    )
    with store.get_client() as client:
        for data, venue, instrument in (
            (good, "OKX", "BTC-USDT"),
            (one_sided, "OKX", "ETH-USDT"),
            (crossed, "BINANCE", "BTCUSDT"),
        ):
            writer.write_slice(client, store.database, "tickers", data, venue, instrument, DAY, "test")
        results = count(
            client,
            store.database,
            TICKER_NOT_CROSSED,
            latest_scope(store.database, "tickers", ["OKX:BTC-USDT", "OKX:ETH-USDT", "BINANCE:BTCUSDT"]),
        )
    assert {key: r.violations for key, r in results.items()} == {
        "OKX:BTC-USDT": 0,
        "OKX:ETH-USDT": 0,
        "BINANCE:BTCUSDT": 1,
    }


def test_the_frame_contract_holds_the_new_datasets_to_their_words():
    with pytest.raises(ValueError, match="option_type 'C', expected one of"):
        writer.validate_frame(
            frame(
                "option_chain",
                "DERIBIT",
                "BTC-OPTIONS",
                [
                    (
                        us(MIDNIGHT),
                        "BTC-28MAR25-100000-C",
                        us(MIDNIGHT),
                        1.0,
                        "C",
                        1.0,
                        "btc_usd",
                        0.1,
                        50.0,
                        None,
                        None,
                        None,
                        None,
                        1.0,
                        None,
                    )
                ],
            ),
            "option_chain",
            "DERIBIT",
            "BTC-OPTIONS",
            DAY,
        )
    with pytest.raises(ValueError, match="size_unit 'contracts'"):
        writer.validate_frame(
            frame(
                "open_interest", "OKX", "BTC-USDT-SWAP", [(us(MIDNIGHT), 1.0, 0.01, "contracts", 0.01, 950.0)]
            ),
            "open_interest",
            "OKX",
            "BTC-USDT-SWAP",
            DAY,
        )
    with pytest.raises(ValueError, match="null"):
        writer.validate_frame(
            frame("funding", "OKX", "BTC-USDT-SWAP", [(us(MIDNIGHT), None, 8.0, 0.0, None, None)]),
            "funding",
            "OKX",
            "BTC-USDT-SWAP",
            DAY,
        )
    assert spec_for("funding").key == "ts" and spec_for("option_chain").key is None
    assert dict(spec_for("tickers").columns)["bid"].startswith("Nullable(Float64)")


def test_what_each_venue_serves_follows_its_declarations_and_the_contract_kind():
    assert serves("OKX", "funding", "BTC-USDT-SWAP") == HISTORY
    assert serves("OKX", "funding", "BTC-USDT") is None  # a spot pair has no funding: no slice, no failure
    assert serves("DERIBIT", "open_interest", "BTC-PERPETUAL") == SNAPSHOT  # no history at Deribit
    assert serves("BINANCE_UM", "open_interest", "BTCUSDT") == HISTORY
    assert serves("BINANCE", "funding", "BTCUSDT") is None  # spot venue
    assert serves("BINANCE", "tickers", "BTCUSDT") == SNAPSHOT
    assert serves("DERIBIT", "option_chain", "BTC-OPTIONS") == SNAPSHOT
    assert serves("BINANCE_UM", "liquidations", "BTCUSDT") is None  # no REST history at Binance
    # how far back a venue's history goes (its client's REACH): an older day has no slice there
    now = datetime(2026, 1, 31, 6, tzinfo=UTC)
    assert serves("BINANCE_UM", "trades", "BTCUSDT", date(2026, 1, 30), now) == HISTORY  # starts 30 h back
    assert serves("BINANCE_UM", "trades", "BTCUSDT", date(2026, 1, 29), now) is None  # 54 h: aggTrades has 48
    assert serves("BINANCE_UM", "open_interest", "BTCUSDT", date(2026, 1, 2), now) == HISTORY
    assert serves("BINANCE_UM", "open_interest", "BTCUSDT", date(2026, 1, 1), now) is None  # 30 days
    # 1,440 rows of 5 m
    assert serves("OKX", "open_interest", "BTC-USDT-SWAP", date(2026, 1, 25), now) is None
    assert serves("OKX", "funding", "BTC-USDT-SWAP", date(2025, 11, 15), now) == HISTORY  # 3 months
    assert serves("DERIBIT", "funding", "BTC-PERPETUAL", date(2020, 1, 1), now) == HISTORY  # no limit known
