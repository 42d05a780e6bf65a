"""Issue #28 on the ticks side, against the real embedded ClickHouse: an epoch-zero row in a venue's
trade body (served over loopback HTTP in the venue's own format) is dropped and counted as
`implausible_time` through the engine, its neighbours are written; the writer refuses a frame that
still holds an implausible time; the per-partition check `timestamps_inside_day` fails on a row
planted outside its partition's window and passes on clean data."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest

from marketdata_assets.datasets.frames import spec_for
from marketdata_assets.datasets.normalized import Trade, trades_frame
from marketdata_assets.datasets.slices import Feed, Job, SliceKey
from marketdata_assets.ingest.engine import Engine
from marketdata_assets.quality.slices import TIMESTAMPS_INSIDE_DAY, count, slice_scope
from marketdata_assets.sources.okx import OkxClient
from marketdata_assets.sources.venues import venue_feed
from marketdata_assets.stores.clickhouse import tables as ct
from marketdata_assets.stores.clickhouse import writer
from tests.support.scripted_server import Reply, ScriptedServer
from tests.support.ticks_common import FAST

DAY = date(2025, 1, 15)
NOON_MS = int(datetime(2025, 1, 15, 12, tzinfo=UTC).timestamp() * 1000)


def okx_trade(trade_id: str, ts_ms: int) -> dict:
    """One record of OKX v5 /market/history-trades as the venue sends it."""
    return {
        "instId": "BTC-USDT",
        "side": "buy",
        "sz": "0.01",
        "px": "94350.1",
        "source": "0",
        "tradeId": trade_id,
        "ts": str(ts_ms),
    }


def okx_body(*trades: dict) -> bytes:
    return json.dumps({"code": "0", "msg": "", "data": list(trades)}).encode()


@pytest.fixture
def store(clickhouse):
    with clickhouse.get_client() as client:
        ct.ensure_tables(client, clickhouse.database)
    return clickhouse


def query(store, sql: str, **params) -> list[tuple]:
    with store.get_client() as client:
        return [
            tuple(r)
            for r in client.query(sql.replace("{db}", f"`{store.database}`"), parameters=params).result_rows
        ]


def test_an_epoch_zero_row_in_a_trade_body_is_dropped_and_counted_and_its_neighbours_written(store):
    # newest first, as OKX pages: two trades of the day, then one stamped 0 (1970-01-01 00:00:00 UTC)
    body = okx_body(
        okx_trade("242720722", NOON_MS + 2_000),
        okx_trade("242720721", NOON_MS + 1_000),
        okx_trade("242720720", 0),
    )
    with ScriptedServer() as srv:
        srv.replies.extend([Reply(200, body), *[Reply(200, okx_body())] * 3])
        feed = venue_feed(
            "OKX",
            lambda: OkxClient(srv.url, retry=FAST),
            [SliceKey("trades", "OKX", "BTC-USDT", DAY)],
            workers=1,
            attempts=1,
        )
        report = Engine(store.get_client, store.database, "epoch-zero").run([[feed]])
    (outcome,) = report.outcomes.values()
    assert (outcome.status, outcome.rows) == ("ok", 2)  # the day's two trades are written
    assert outcome.dropped == {"implausible_time": 1}  # the 1970 row is counted, with its reason
    assert report.sources["OKX"]["dropped_implausible_time"] == 1
    assert (
        report.sources["OKX"]["dropped_past_window_edge"]
        == 0
        == report.sources["OKX"]["dropped_outside_window"]
    )
    metadata = report.metadata("trades")
    assert metadata["rows_dropped"] == 1 and metadata["dropped_by_reason"] == {"implausible_time": 1}
    assert query(
        store, "SELECT instrument, outcome, rows, dropped FROM {db}.ingest_log WHERE run_id = 'epoch-zero'"
    ) == [("BTC-USDT", "ok", 2, {"implausible_time": 1})]
    assert query(store, "SELECT trade_id, toUnixTimestamp64Milli(ts) FROM {db}.trades_v ORDER BY ts") == [
        ("242720721", NOON_MS + 1_000),
        ("242720722", NOON_MS + 2_000),
    ]


def test_a_fetch_that_bypasses_the_parsers_window_has_its_implausible_rows_counted_by_the_engine(store):
    """Any fetched frame (a snapshot, a source without a window cut): the engine drops and counts
    the rows of implausible times on the slice of their instrument instead of losing them unnamed."""

    async def fetch(client, job):
        frame = trades(DAY, 1, 2)
        return pl.concat(
            [
                frame,
                frame.head(1).with_columns(ts=pl.lit(datetime(1970, 1, 1, tzinfo=UTC)), trade_id=pl.lit("0")),
            ]
        )

    keys = (SliceKey("trades", "BINANCE", "BTCUSDT", DAY),)
    report = Engine(store.get_client, store.database, "bypass").run(
        [[Feed("X", [Job(keys)], fetch, attempts=1)]]
    )
    (outcome,) = report.outcomes.values()
    assert (outcome.status, outcome.rows, outcome.dropped) == ("ok", 2, {"implausible_time": 1})
    assert query(store, "SELECT rows, dropped FROM {db}.ingest_log WHERE run_id = 'bypass'") == [
        (2, {"implausible_time": 1})
    ]


def trades(day: date, *hours: float) -> pl.DataFrame:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    stamps = [int((start + timedelta(hours=hour)).timestamp()) * 1_000_000 for hour in hours]
    return trades_frame(
        [
            Trade("BINANCE", "BTCUSDT", str(100 + i), 94_350.0, 0.01, 943.5, "buy", 100 + i, ts, 0, 0)
            for i, ts in enumerate(stamps)
        ]
    )


def test_the_writer_refuses_a_frame_holding_an_implausible_time_naming_the_column_and_values(store):
    future = date(2062, 1, 5)  # a typed year: the day itself is implausible, so is every row of it
    with store.get_client() as client, pytest.raises(ValueError) as error:
        writer.write_slice(
            client, store.database, "trades", trades(future, 9.5, 10), "BINANCE", "BTCUSDT", future, "typo"
        )
    assert (
        "trades of BINANCE:BTCUSDT on 2062-01-05: column 'ts' has 2 implausible timestamp(s) "
        "(2062-01-05T09:30:00+00:00, 2062-01-05T10:00:00+00:00); first at row 0: implausible time: "
        "'2062-01-05 09:30:00+00:00' is after now + 10 min ("
    ) in str(error.value)
    assert query(store, "SELECT count() FROM {db}.trades") == [(0,)]  # nothing written
    with (
        store.get_client() as client,
        pytest.raises(ValueError, match="is before BINANCE's earliest plausible day"),
    ):
        writer.write_slice(
            client,
            store.database,
            "trades",
            trades(date(1970, 1, 1), 0),
            "BINANCE",
            "BTCUSDT",
            date(1970, 1, 1),
            "epoch",
        )


def window_check(store, key: SliceKey):
    with store.get_client() as client:
        return count(
            client,
            store.database,
            TIMESTAMPS_INSIDE_DAY["trades"],
            slice_scope(store.database, "trades", [key]),
        )[f"{DAY}|BINANCE:BTCUSDT"]


def test_the_partition_window_check_fails_on_a_row_planted_outside_its_partition(store, monkeypatch):
    key = SliceKey("trades", "BINANCE", "BTCUSDT", DAY)
    with store.get_client() as client:
        writer.write_slice(
            client, store.database, "trades", trades(DAY, 1, 2, 3), "BINANCE", "BTCUSDT", DAY, "clean"
        )
    clean = window_check(store, key)
    assert (clean.violations, clean.rows_checked) == (0, 3)  # clean data passes

    # an old load's row of 2062 in the day's active load (what a writer before the rule could leave)
    ((load_id,),) = query(
        store,
        "SELECT load_id FROM {db}.active_loads WHERE dataset = {code:String} "
        "AND instrument = 'BTCUSDT' AND day = {day:Date}",
        code=spec_for("trades").code,
        day=DAY,
    )
    query(
        store,
        "INSERT INTO {db}.trades SELECT * REPLACE (toDateTime64('2062-01-15 01:00:00', 6, 'UTC') AS ts, "
        "'999' AS trade_id) FROM {db}.trades WHERE load_id = {load:UInt64} LIMIT 1",
        load=load_id,
    )
    planted = window_check(store, key)
    assert (planted.violations, planted.rows_checked) == (1, 4)
    row = dict(zip(planted.sample_columns, planted.sample[0]))
    assert (row["ts"].replace(tzinfo=None), row["crosses"]) == (datetime(2062, 1, 15, 1), "outside its day")

    # the day inside its window, but the venue's window moved past it (configuration): every row crosses
    monkeypatch.setenv("TIMESTAMP_EARLIEST", "BINANCE=2025-01-16")
    moved = window_check(store, key)
    assert moved.violations == 4
    assert sorted(dict(zip(moved.sample_columns, r))["crosses"] for r in moved.sample) == [
        "before its venue earliest plausible day"
    ] * 3 + ["outside its day"]
