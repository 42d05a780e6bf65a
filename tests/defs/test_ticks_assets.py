"""The ticks assets as Dagster runs them: replay servers for the five sources, the real embedded
ClickHouse (a database per test: an emptied store of an earlier test where there is one,
tests/support/store_pool.py), an ephemeral Dagster instance. Rows are compared with the replay's
ground truth through the read views; faults are injected into the replays."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from marketdata_assets.datasets import frames
from marketdata_assets.defs.crypto.partitions import crypto_partitions
from marketdata_assets.orchestration.sensing import RANGE_END, RANGE_START
from marketdata_assets.replay.binance_dumps import generate_trades, write_dump
from marketdata_assets.replay.crypto import CryptoReplayServer, ReplayConfig
from marketdata_assets.replay.stock_market import StocksReplayConfig
from marketdata_assets.replay.stocks import StocksReplayServer
from marketdata_assets.sources.binance_vision.dumps import read_dump
from marketdata_assets.stores.clickhouse import tables as ct
from marketdata_assets.stores.clickhouse import writer
from tests.support.ticks_dagster import (
    DAY,
    STOCK_DAY,
    crypto_day,
    crypto_resources,
    day_range,
    failure,
    log_messages,
    materialize,
    metadata,
    query,
    stock_resources,
    summed,
    ticks_definitions,
    view_rows,
)

REPO = Path(__file__).resolve().parents[2]
CRYPTO = [
    "BINANCE:BTCUSDT",
    "BINANCE:ETHUSDT",
    "OKX:BTC-USDT",
    "OKX:BTC-USDT-SWAP",
    "DERIBIT:BTC-PERPETUAL",
    "DERIBIT:BTC_USDC-PERPETUAL",
]
BOTH = ["crypto_trades", "crypto_bars_1m"]

pytestmark = pytest.mark.usefixtures("okx_trades_of_any_day")  # OKX trades of 2025-01-15


@pytest.fixture(scope="module")
def crypto_server():
    with CryptoReplayServer(ReplayConfig(seed=5, trades_per_day=1500)) as server:
        yield server


@pytest.fixture(scope="module")
def stock_server():
    with StocksReplayServer(StocksReplayConfig(seed=7, yahoo_days_back=None)) as server:
        yield server


@pytest.fixture
def instance():
    # in memory: its event log is Dagster's SQL storage on an in-memory SQLite, without a file's commits
    with dg.DagsterInstance.ephemeral() as inst:
        inst.add_dynamic_partitions("crypto_instruments", CRYPTO)
        yield inst


@pytest.fixture
def persistent_instance():
    # a temporary SQLite instance: schedule contexts only take persistent instances. Its files on the RAM disk
    # where there is one: its event log commits every event (an asset's twice: the run's file and the index),
    # each commit a sync on a disk (~2 s of CPU and ~3 s of wall over the three tests that use it)
    ram = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    with (
        tempfile.TemporaryDirectory(dir=ram, ignore_cleanup_errors=True) as home,
        dg.instance_for_test(temp_dir=home) as inst,
    ):
        inst.add_dynamic_partitions("crypto_instruments", CRYPTO)
        yield inst


@pytest.fixture
def crypto(crypto_server, store):
    crypto_server.clear_faults()
    crypto_server.reset()
    yield {**crypto_resources(crypto_server.base_url), "clickhouse": store}
    crypto_server.clear_faults()


@pytest.fixture
def stocks(stock_server, store):
    stock_server.clear_faults()
    stock_server.reset_counters()
    yield {**stock_resources(stock_server.base_url), "clickhouse": store}
    stock_server.clear_faults()


def ingest_log(clickhouse, where: str = "1", **params) -> list[dict]:
    columns = [
        "run_id",
        "source",
        "dataset",
        "venue",
        "instrument",
        "day",
        "rows",
        "requests",
        "retries",
        "rate_limited",
        "outcome",
        "error",
        "load_id",
    ]
    rows = query(
        clickhouse,
        f"SELECT {', '.join(columns)} FROM {{db}}.ingest_log WHERE {where} "
        "ORDER BY source, dataset, instrument, day, finished_at",
        **params,
    )
    return [dict(zip(columns, row)) for row in rows]


def assert_same_rows(actual: pl.DataFrame, expected: pl.DataFrame, sort: list[str]) -> None:
    """The same rows; a stored column `expected` lacks (its maker has nothing for it) must be null."""
    lacking = [pl.lit(None, t).alias(c) for c, t in actual.schema.items() if c not in expected.columns]
    expected = expected.with_columns(lacking).select(actual.columns) if lacking else expected
    assert_frame_equal(actual.sort(sort), expected.sort(sort), check_exact=False, rel_tol=1e-9)


# --------------------------------------------------------------------------------------------
# Crypto
# --------------------------------------------------------------------------------------------


def test_crypto_day_loads_every_instrument_once_and_a_rerun_replaces(crypto_server, crypto, instance):
    clickhouse = crypto["clickhouse"]
    first = materialize(instance, crypto, BOTH, **crypto_day(DAY, CRYPTO))
    assert first.success
    meta = metadata(first, "crypto_trades")
    assert meta["run_summary"] == "Successful: 6/6" and meta["slices_failed"] == 0
    (binance,) = [
        e.materialization.metadata
        for e in first.get_asset_materialization_events()
        if e.asset_key.to_user_string() == "crypto_trades" and e.partition.endswith("|BINANCE")
    ]
    # each venue-day's own first trade (the events of a run's partitions come in no set order: BINANCE_UM's
    # has none)
    assert summed(first, "crypto_trades", "requests") > 6 and binance["first_ts"].value.startswith(str(DAY))
    assert "BINANCE" in meta["sources"]
    assert (
        summed(first, "crypto_bars_1m", "rows") == metadata(first, "crypto_bars_1m")["run_rows"] == 6 * 1440
    )
    for key in CRYPTO:
        venue, instrument = key.split(":")
        truth = crypto_server.truth_trades(venue, instrument, DAY)
        assert_same_rows(view_rows(clickhouse, "trades", venue, instrument, DAY), truth, ["ts", "trade_id"])
        assert_same_rows(
            view_rows(clickhouse, "bars_1m", venue, instrument, DAY),
            crypto_server.truth_bars(venue, instrument, DAY),
            ["ts"],
        )
    checks = first.get_asset_check_evaluations()  # per venue-day of the range: 10 checks x 4 venues
    # USD-M's configured instruments (none in this run) have no trades that old in REST, nor stored: a warning
    past = f"{DAY}|BINANCE_UM"
    assert len(checks) == 40 and {(c.check_name, c.partition) for c in checks if not c.passed} == {
        ("within_rest_reach", past)
    }
    assert {c.partition for c in checks} == {
        f"{DAY}|{venue}" for venue in ("BINANCE", "BINANCE_UM", "DERIBIT", "OKX")
    }
    okx = next(c for c in checks if c.partition == f"{DAY}|OKX" and c.check_name == "no_duplicate_trade_ids")
    assert (
        "| OKX:BTC-USDT-SWAP | passed | 0 | 1,500 |" in okx.metadata["by_instrument"].value
    )  # each instrument

    logged = ingest_log(clickhouse)
    assert (
        len(logged) == 12
        and {r["outcome"] for r in logged} == {"ok"}
        and {r["run_id"] for r in logged} == {first.run_id}
    )
    btc = next(r for r in logged if r["instrument"] == "BTCUSDT" and r["dataset"] == "trades")
    assert (btc["source"], btc["venue"], btc["day"], btc["rows"]) == ("BINANCE", "BINANCE", DAY, 1500)
    assert btc["requests"] >= 2 and btc["load_id"] > 0

    again = materialize(instance, crypto, ["crypto_trades"], **crypto_day(DAY, CRYPTO))
    assert again.success
    counts = query(
        clickhouse, "SELECT instrument, count(), uniqExact(trade_id) FROM {db}.trades_v GROUP BY instrument"
    )
    assert sorted(c[1:] for c in counts) == [(1500, 1500)] * 6  # replaced, never duplicated
    with clickhouse.get_client() as client:
        assert ct.garbage_rows(client, clickhouse.database, "trades") == 6 * 1500  # the first run's, unread


def test_429_and_5xx_are_retried_and_counted(crypto_server, crypto, instance):
    crypto_server.add_fault(
        kind="rate_limit", venue="BINANCE", endpoint="trades", every=2, times=3, retry_after="0.05"
    )
    crypto_server.add_fault(kind="server_error", venue="OKX", every=3, times=3, status=503)
    result = materialize(instance, crypto, ["crypto_trades"], **crypto_day(DAY, CRYPTO[:4]))
    assert result.success
    assert summed(result, "crypto_trades", "rate_limited_429") == 3  # each partition's own slices' figures
    assert (
        summed(result, "crypto_trades", "server_errors_5xx") == 3
        and summed(result, "crypto_trades", "retries") >= 6
    )
    for key in CRYPTO[:4]:
        venue, instrument = key.split(":")
        assert view_rows(crypto["clickhouse"], "trades", venue, instrument, DAY).height == 1500
    logged = ingest_log(crypto["clickhouse"], "source = 'BINANCE'")
    assert sum(r["rate_limited"] for r in logged) == 3 and all(r["outcome"] == "ok" for r in logged)


def test_malformed_page_fails_its_slice_the_others_are_written_and_retry_failed_loads_it(
    crypto_server, crypto, instance
):
    crypto_server.add_fault(kind="malformed_json", venue="OKX", instrument="BTC-USDT-SWAP", endpoint="trades")
    crypto_server.add_fault(kind="bad_number", venue="DERIBIT", instrument="BTC-PERPETUAL", endpoint="bars")
    result = materialize(instance, crypto, BOTH, **crypto_day(DAY, CRYPTO))
    assert not result.success
    description, meta = failure(result)
    assert "2 slice(s) not loaded" in description and meta["crypto_trades_summary"] == "Successful: 5/6"
    assert meta["crypto_bars_1m_summary"] == "Successful: 5/6"
    assert "OKX:BTC-USDT-SWAP 2025-01-15 trades" in meta["failures"]
    assert "malformed JSON" in meta["failures"] and "GET /api/v5/market/history-trades" in meta["failures"]
    assert "DERIBIT BTC-PERPETUAL 2025-01-15" in meta["failures"] and "not a number" in meta["failures"]
    clickhouse = crypto["clickhouse"]
    assert view_rows(clickhouse, "trades", "OKX", "BTC-USDT-SWAP", DAY).height == 0
    assert view_rows(clickhouse, "trades", "OKX", "BTC-USDT", DAY).height == 1500  # written anyway
    assert view_rows(clickhouse, "bars_1m", "DERIBIT", "BTC-PERPETUAL", DAY).height == 0
    failed = ingest_log(clickhouse, "outcome = 'failed'")
    assert {(r["instrument"], r["dataset"]) for r in failed} == {
        ("BTC-USDT-SWAP", "trades"),
        ("BTC-PERPETUAL", "bars"),
    }
    assert all(r["run_id"] == result.run_id and "2025-01-15" in r["error"] for r in failed)
    statuses = instance.get_status_by_partition(
        dg.AssetKey("crypto_trades"), [f"{DAY}|OKX"], crypto_partitions
    )
    assert statuses[f"{DAY}|OKX"] == dg.AssetPartitionStatus.FAILED  # the day is not complete

    crypto_server.clear_faults()
    crypto_server.reset()
    retry = materialize(
        instance,
        crypto,
        BOTH,
        tags=crypto_day(DAY, CRYPTO)["tags"],
        config={"crypto_ticks": {"retry_failed": True, "instruments": CRYPTO}},
    )
    assert retry.success
    asked = {(r["venue"], r["instrument"], r["endpoint"]) for r in crypto_server.requests()}
    assert asked == {
        ("OKX", "BTC-USDT-SWAP", "trades"),
        ("DERIBIT", "BTC-PERPETUAL", "bars"),
    }  # only those two
    assert_same_rows(
        view_rows(clickhouse, "trades", "OKX", "BTC-USDT-SWAP", DAY),
        crypto_server.truth_trades("OKX", "BTC-USDT-SWAP", DAY),
        ["ts", "trade_id"],
    )


def test_a_ban_stops_binance_for_the_run_and_the_other_venues_finish(crypto_server, crypto, instance):
    crypto["binance"] = crypto_resources(crypto_server.base_url, workers=1)["binance"]  # one slice at a time
    crypto_server.add_fault(kind="ban", venue="BINANCE", after=1)
    result = materialize(instance, crypto, BOTH, **crypto_day(DAY, CRYPTO))
    assert not result.success
    _, meta = failure(result)
    assert (
        "banned this IP" in meta["failures"] and "not attempted: BINANCE trades stopped" in meta["failures"]
    )
    assert meta["crypto_trades_summary"] == "Successful: 4/6"
    assert len(crypto_server.requests(venue="BINANCE")) == 2  # the first page and the ban: nothing after
    clickhouse = crypto["clickhouse"]
    for key in CRYPTO[2:]:
        venue, instrument = key.split(":")
        assert view_rows(clickhouse, "trades", venue, instrument, DAY).height == 1500
        assert view_rows(clickhouse, "bars_1m", venue, instrument, DAY).height == 1440
    assert any(
        "BINANCE trades: STOPPED, no further requests in this run" in m
        for m in log_messages(instance, result)
    )


def test_book_snapshots_add_up_in_their_day(crypto_server, crypto, instance):
    tags = {"dagster/asset_partition_range_start": CRYPTO[0], "dagster/asset_partition_range_end": CRYPTO[-1]}
    first = materialize(
        instance, crypto, ["crypto_book_snapshots"], tags=tags, config={"crypto_snapshots": {"depth": 5}}
    )
    assert first.success and metadata(first, "crypto_book_snapshots")["run_summary"] == "Successful: 6/6"
    second = materialize(
        instance, crypto, ["crypto_book_snapshots"], tags=tags, config={"crypto_snapshots": {"depth": 5}}
    )
    assert second.success and all(c.passed for c in second.get_asset_check_evaluations())
    today = datetime.now(UTC).date()
    rows = view_rows(crypto["clickhouse"], "books", "OKX", "BTC-USDT", today)
    assert rows.height == 2 * 2 * 5 and rows["ts"].n_unique() == 2  # two snapshots x two sides x 5 levels
    latest = crypto_server.last_book("OKX", "BTC-USDT")
    assert_same_rows(
        rows.filter(pl.col("ts") == rows["ts"].max()).drop("ts"),
        latest.filter(pl.col("level") < 5).drop("ts"),
        ["side", "level"],
    )


def test_checks_fail_on_bad_rows_in_the_active_loads(crypto, instance):
    clickhouse, db = crypto["clickhouse"], crypto["clickhouse"].database
    start = datetime(DAY.year, DAY.month, DAY.day, tzinfo=UTC)
    trades = pl.DataFrame(
        {
            "ts": [start + timedelta(minutes=i) for i in range(4)],
            "venue": "BINANCE",
            "instrument": "BTCUSDT",
            "trade_id": ["1", "2", "2", "3"],
            "price": [100.0, 101.0, -5.0, 102.0],
            "quantity": 1.0,
            "amount": 100.0,
            "side": "buy",
            "seq": [1, 2, 2, 3],
        },
    ).pipe(frames.as_schema, frames.TRADES_SCHEMA)
    bars = pl.DataFrame(
        {
            "ts": [start, start + timedelta(minutes=1)],
            "venue": "BINANCE",
            "instrument": "BTCUSDT",
            "open": [100.0, 101.0],
            "high": [99.0, 102.0],
            "low": [98.0, 100.0],
            "close": [99.5, 101.5],
            "volume": 1.0,
            "amount": 100.0,
            "trades": [1, 1],
        },
        schema=frames.BARS_SCHEMA,
    )
    with clickhouse.get_client() as client:
        ct.ensure_tables(client, db)
        writer.write_slice(client, db, "trades", trades, "BINANCE", "BTCUSDT", DAY, "test")
        writer.write_slice(client, db, "bars_1m", bars, "BINANCE", "BTCUSDT", DAY, "test")
        # a row outside its day cannot come through the writer: insert it and flip the pointer by hand
        client.command(
            f"INSERT INTO `{db}`.bars_1m (ts, venue, instrument, open, high, low, close, volume, amount, "
            "trades, day, load_id) VALUES ('2025-01-16 00:00:00', 'OKX', 'BTC-USDT', 1, 2, 1, 2, 1, 1, 1, "
            "'2025-01-15', 77)"
        )
        client.command(
            f"INSERT INTO `{db}`.loads (dataset, venue, instrument, day, load_id, rows, run_id) VALUES "
            "('bars', 'OKX', 'BTC-USDT', '2025-01-15', 77, 1, 'test')"
        )
    checks = dg.AssetSelection.checks_for_assets("crypto_trades", "crypto_bars_1m")
    result = materialize(instance, crypto, checks, tags=day_range(DAY, "BINANCE", "OKX"))
    evaluations = result.get_asset_check_evaluations()
    by_name = {(e.asset_key.to_user_string(), e.check_name, e.partition): e for e in evaluations}
    assert not result.get_asset_materialization_events()  # only the checks ran
    assert len(by_name) == len(evaluations) == 40  # 10 checks x 4 venue-days, each on its own partition
    btc, okx = f"{DAY}|BINANCE", f"{DAY}|OKX"
    duplicates = by_name[("crypto_trades", "no_duplicate_trade_ids", btc)]
    assert not duplicates.passed and duplicates.metadata["violations"].value == 1
    assert duplicates.metadata["instruments_failed"].value == 1 and "BTCUSDT" in duplicates.description
    assert "| BINANCE:BTCUSDT | FAILED | 1 | 4 |" in duplicates.metadata["by_instrument"].value
    assert "| BINANCE | BTCUSDT | 2025-01-15 | 2 | 2 |" in duplicates.metadata["sample"].value
    assert not by_name[("crypto_trades", "prices_positive", btc)].passed
    assert by_name[("crypto_bars_1m", "bar_high_low_consistent", btc)].metadata["violations"].value == 1
    outside = by_name[("crypto_bars_1m", "timestamps_inside_day", okx)]
    assert not outside.passed and "OKX" in outside.metadata["sample"].value
    failed = {key for key, e in by_name.items() if not e.passed}
    assert failed == {
        ("crypto_trades", "no_duplicate_trade_ids", btc),
        ("crypto_trades", "prices_positive", btc),
        ("crypto_bars_1m", "bar_high_low_consistent", btc),
        ("crypto_bars_1m", "timestamps_inside_day", okx),
        ("crypto_trades", "within_rest_reach", f"{DAY}|BINANCE_UM"),
    }  # a WARN: USD-M trades that old


KILLED_RUN = """
import json
import dagster as dg
import polars as pl
from marketdata_assets.core import settings
settings.apply_defaults()
from marketdata_assets.resources import ClickHouseResource
from tests.support.ticks_dagster import DAY, crypto_day, crypto_resources, materialize
clickhouse = ClickHouseResource(dsn={dsn!r}, database="ticks")

def state():
    with clickhouse.get_client() as client:
        rows = client.query("SELECT instrument, count(), uniqExact(trade_id) FROM ticks.trades_v GROUP BY \
instrument")
        return {{r[0]: [r[1], r[2]] for r in rows.result_rows}}

if {rerun!r}:
    print("BEFORE", json.dumps(state()), flush=True)
    clickhouse.close()
resources = {{**crypto_resources({base_url!r}, workers=1), "clickhouse": clickhouse}}
with dg.DagsterInstance.ephemeral() as instance:
    result = materialize(instance, resources, ["crypto_trades"], **crypto_day(DAY, {keys!r}))
print("RUN", result.success, flush=True)
if {rerun!r}:
    print("AFTER", json.dumps(state()), flush=True)
    with clickhouse.get_client() as client:
        pl.from_arrow(client.query_arrow("SELECT * FROM ticks.trades_v")).write_parquet({out!r})
"""


def test_a_killed_run_then_a_rerun_leaves_exactly_the_uninterrupted_rows(tmp_path):
    """SIGKILL a crypto run (its own chDB directory) after its first slice was written and while the
    next is being fetched; a re-run gives exactly the replay's rows, each once."""
    keys = ["BINANCE:BTCUSDT", "BINANCE:ETHUSDT", "BINANCE:SOLUSDT"]
    per_day = 4000  # 4 pages of 1,000 a slice, each page 50 ms late: a slice takes 200 ms or more
    options = {"dsn": f"chdb://{tmp_path / 'ch'}", "keys": keys, "out": str(tmp_path / "final.parquet")}
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with CryptoReplayServer(ReplayConfig(seed=9, trades_per_day=per_day)) as server:
        server.add_fault(kind="latency", latency_s=0.05)
        killed = KILLED_RUN.format(base_url=server.base_url, rerun=False, **options)
        proc = subprocess.Popen(
            [sys.executable, "-c", killed],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + 120
        seen = []
        for line in proc.stdout:
            seen.append(line)
            if "slices settled (1 ok" in line:  # the first slice written (reported at once)
                break
            assert time.monotonic() < deadline, "the run never wrote a slice"
        # into the next slice's pages: a second instrument asked for (one slice at a time)
        while len({r["instrument"] for r in server.requests(venue="BINANCE")}) < 2:
            assert time.monotonic() < deadline and proc.poll() is None, "the run never fetched a second slice"
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL, "".join(seen[-20:])

        server.clear_faults()
        rerun = subprocess.run(
            [sys.executable, "-c", KILLED_RUN.format(base_url=server.base_url, rerun=True, **options)],
            check=False,
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        out = rerun.stdout
        assert "RUN True" in out, out[-2000:] + rerun.stderr[-3000:]
        truth = pl.concat([server.truth_trades("BINANCE", key.split(":")[1], DAY) for key in keys])
    before = json.loads(out.split("BEFORE ", 1)[1].splitlines()[0])
    after = json.loads(out.split("AFTER ", 1)[1].splitlines()[0])
    assert 1 <= len(before) < 3 and all(
        count == [per_day, per_day] for count in before.values()
    )  # whole slices only
    assert after == {key.split(":")[1]: [per_day, per_day] for key in keys}
    assert_same_rows(pl.read_parquet(tmp_path / "final.parquet"), truth, ["instrument", "ts", "trade_id"])


# --------------------------------------------------------------------------------------------
# Stocks
# --------------------------------------------------------------------------------------------

A_SHARES = [f"{600000 + i}.SH" for i in range(75)] + [f"{i:06d}.SZ" for i in range(1, 76)]


def test_a_share_universe_one_bad_symbol_fails_alone_and_a_follow_up_loads_only_it(
    stock_server, stocks, persistent_instance
):
    instance = persistent_instance  # a schedule context below
    bad = "600010.SH"
    stock_server.add_fault("non_numeric", symbols=[bad], api="stk_mins", field="close")
    config = {"a_share_bars": {"instruments": A_SHARES, "attempts": 2}}
    result = materialize(
        instance,
        stocks,
        ["a_share_bars_1m", "a_share_daily_bars"],
        partition_key=str(STOCK_DAY),
        config=config,
    )
    assert not result.success
    description, meta = failure(result)
    assert meta["a_share_bars_1m_summary"] == "Successful: 149/150"
    assert meta["a_share_daily_bars_summary"] == "Successful: 150/150"
    assert f"SSE:{bad} 2025-06-05 bars_1m" in meta["failures"] and "close" in meta["failures"]
    assert f"retry_failed_from_run: {result.run_id}" in description
    assert len(stock_server.requests_for("tushare", bad)) >= 2 + 1  # tried twice (+ its daily batch)
    messages = log_messages(instance, result)
    assert any("TUSHARE: 150/150 slices settled (149 ok, 1 failed, 0 skipped)" in m for m in messages)
    assert any(f"wrote bars_1m SSE {STOCK_DAY}: 74 instruments" in m for m in messages)
    assert any(f"wrote bars_1m SZSE {STOCK_DAY}: 75 instruments" in m for m in messages)

    clickhouse = stocks["clickhouse"]
    counts = dict(query(clickhouse, "SELECT instrument, count() FROM {db}.bars_1m_v GROUP BY instrument"))
    assert len(counts) == 149 and set(counts.values()) == {241} and bad not in counts
    first = view_rows(clickhouse, "bars_1m", "SSE", "600000.SH", STOCK_DAY)
    truth = stock_server.tushare.minutes("600000.SH", STOCK_DAY)
    assert first["ts"][0] == datetime(2025, 6, 5, 1, 29, tzinfo=UTC) and first["close"][0] == float(
        truth[0][3]
    )
    daily = query(
        clickhouse, "SELECT instrument, volume, close FROM {db}.daily_bars_v WHERE instrument = '600000.SH'"
    )
    expected = stock_server.tushare.daily("600000.SH", STOCK_DAY)
    assert daily == [("600000.SH", pytest.approx(expected[9] * 100), expected[5])]  # lots -> shares

    # the catch-up sees the failed day (and the never-loaded days before it)
    from marketdata_assets.defs.equities.partitions import a_share_days
    from marketdata_assets.defs.equities.schedules import SHANGHAI, stock_catch_up

    with dg.build_schedule_context(
        instance=instance, scheduled_execution_time=datetime(2025, 6, 5, 20, 0, tzinfo=SHANGHAI)
    ) as context:
        requests = stock_catch_up(
            context,
            a_share_days,
            ["a_share_bars_1m", "a_share_daily_bars"],
            "a_share_bars",
            dtime(15, 30),
            SHANGHAI,
            "a_shares",
            days=3,
        )
    assert [r.partition_key for r in requests] == ["2025-06-03", "2025-06-04", "2025-06-05"]
    assert requests[-1].run_config == {"ops": {"a_share_bars": {"config": {"retry_failed": True}}}}

    stock_server.clear_faults()
    stock_server.reset_counters()
    follow_up = materialize(
        instance,
        stocks,
        ["a_share_bars_1m", "a_share_daily_bars"],
        partition_key=str(STOCK_DAY),
        config={"a_share_bars": {"instruments": A_SHARES, "retry_failed_from_run": result.run_id}},
    )
    assert follow_up.success
    assert {tuple(r["symbols"]) for r in stock_server.requests_for("tushare")} == {(bad,)}
    assert metadata(follow_up, "a_share_bars_1m")["summary"] == "Successful: 1/1"
    assert metadata(follow_up, "a_share_daily_bars")["left_out_by_retry_options"] == 150
    counts = dict(query(clickhouse, "SELECT instrument, count() FROM {db}.bars_1m_v GROUP BY instrument"))
    assert len(counts) == 150 and set(counts.values()) == {241}
    requests = stock_catch_up(
        context,
        a_share_days,
        ["a_share_bars_1m", "a_share_daily_bars"],
        "a_share_bars",
        dtime(15, 30),
        SHANGHAI,
        "a_shares",
        days=3,
    )
    assert [r.partition_key for r in requests] == ["2025-06-03", "2025-06-04"]


def test_tushare_permission_error_stops_minutes_and_daily_bars_go_on(stock_server, stocks, instance):
    stock_server.add_fault("tushare_permission", api="stk_mins")
    result = materialize(
        instance,
        stocks,
        ["a_share_bars_1m", "a_share_daily_bars"],
        partition_key=str(STOCK_DAY),
        config={"a_share_bars": {"instruments": A_SHARES[:40], "workers": 4}},
    )
    assert not result.success
    _, meta = failure(result)
    assert (
        meta["a_share_bars_1m_summary"] == "Successful: 0/40"
        and meta["a_share_daily_bars_summary"] == "Successful: 40/40"
    )
    assert (
        "no permission for 'stk_mins'" in meta["failures"]
        and "not attempted: TUSHARE bars_1m stopped" in meta["failures"]
    )
    assert (
        len([r for r in stock_server.requests_for("tushare") if r["api"] == "stk_mins"]) <= 4
    )  # not hammered
    assert query(stocks["clickhouse"], "SELECT count() FROM {db}.daily_bars_v") == [(40,)]


def test_yahoo_day_in_major_units_a_delisted_symbol_tolerated_and_a_rerun_replaces(
    stock_server, stocks, instance
):
    stock_server.add_fault("not_found", symbols=["GONE.L"])
    config = {"yahoo_bars_1m": {"instruments": ["AAPL", "VOD.L", "SAP.DE", "GONE.L"], "max_failed": 1}}
    for _ in range(2):
        result = materialize(instance, stocks, ["yahoo_bars_1m"], partition_key=str(STOCK_DAY), config=config)
        assert result.success
        meta = metadata(result, "yahoo_bars_1m")
        assert meta["summary"] == "Successful: 3/4" and meta["venues"] == "GER, LSE, NMS"
    clickhouse = stocks["clickhouse"]
    counts = dict(
        query(clickhouse, "SELECT concat(venue, ':', instrument), count() FROM {db}.bars_1m_v GROUP BY 1")
    )
    raw = {
        s: [r for r in stock_server.yahoo.rows(s, STOCK_DAY) if r[6] == "ok"]
        for s in ("AAPL", "VOD.L", "SAP.DE")
    }
    assert counts == {
        "NMS:AAPL": len(raw["AAPL"]),
        "LSE:VOD.L": len(raw["VOD.L"]),
        "GER:SAP.DE": len(raw["SAP.DE"]),
    }
    vod = view_rows(clickhouse, "bars_1m", "LSE", "VOD.L", STOCK_DAY)
    assert vod["close"][0] == pytest.approx(raw["VOD.L"][0][4] / 100)  # pence -> pounds
    gone = ingest_log(clickhouse, "instrument = 'GONE.L'")
    assert len(gone) == 2 and all(r["outcome"] == "failed" and "delisted" in r["error"] for r in gone)
    assert all(c.passed for c in result.get_asset_check_evaluations())


def test_a_share_rules_resolve_each_day_from_the_master_a_listing_and_a_delisting(
    stock_server, stocks, instance, monkeypatch, tmp_path
):
    """`universes.a_shares.rules` over the master's shares (as Tushare stock_basic lists them): a code listed
    on the second day has no slice the day before, one delisted on the first day has its last day and none
    after; `marketdata universe --venue SSE` shows both."""
    import yaml
    from click.testing import CliRunner

    from marketdata_assets.apps.cli import cli
    from marketdata_assets.datasets.instruments import changes
    from marketdata_assets.ingest.instruments import stored_master
    from marketdata_assets.sources.config import CONFIG_ENV, DEFAULT_CONFIG
    from marketdata_assets.sources.tushare.listing import ListedInstrument, instrument_of
    from marketdata_assets.stores.clickhouse.instruments import store_versions

    first, second = STOCK_DAY - timedelta(days=1), STOCK_DAY
    listed = [
        ListedInstrument("600100.SH", "新股", "SSE", "主板", "L", f"{second:%Y%m%d}"),
        ListedInstrument("600101.SH", "退市", "SSE", "主板", "D", "20100104", f"{first:%Y%m%d}"),
        ListedInstrument("600102.SH", "老股", "SSE", "主板", "L", "20100104"),
    ]
    clickhouse = stocks["clickhouse"]
    with clickhouse.get_client() as client:
        stored_master(client, clickhouse.database)  # the table made
        store_versions(
            client,
            clickhouse.database,
            changes({}, [instrument_of(i) for i in listed], datetime(2025, 6, 1, tzinfo=UTC)),
        )
    sources = yaml.safe_load(DEFAULT_CONFIG.read_text(encoding="utf-8"))
    sources["universes"]["a_shares"] = {
        "history_start": "2024-01-01",
        "rules": {"SSE": {"types": ["equity"]}},
    }
    (tmp_path / "sources.yaml").write_text(yaml.safe_dump(sources, allow_unicode=True), encoding="utf-8")
    monkeypatch.setenv(CONFIG_ENV, str(tmp_path / "sources.yaml"))
    result = materialize(
        instance, stocks, ["a_share_daily_bars"], tags={RANGE_START: str(first), RANGE_END: str(second)}
    )
    assert result.success
    assert sorted((r["instrument"], r["day"]) for r in ingest_log(clickhouse, "dataset = 'daily'")) == [
        ("600100.SH", second),
        ("600101.SH", first),
        ("600102.SH", first),
        ("600102.SH", second),
    ]
    assert "2-2 codes a day, universes.a_shares.rules" in metadata(result, "a_share_daily_bars")["universe"]

    monkeypatch.setenv("CLICKHOUSE_DSN", clickhouse.dsn)
    monkeypatch.setenv("CLICKHOUSE_DATABASE", clickhouse.database)
    shown = CliRunner().invoke(cli, ["universe", "--venue", "SSE", "--as-of", str(second), "--list"])
    assert shown.exit_code == 0, shown.output
    assert (
        f"SSE {second}: 2 in the universe; rule (types equity): 2 of 2 listed that day; explicit: 0; "
        "joined 1: 600100.SH; left 1: 600101.SH"
    ) in shown.output
    assert "600100.SH  rule  equity  -  live" in shown.output


def test_a_holiday_writes_nothing_and_materializes(stock_server, stocks, instance):
    stock_server.configure(holidays=["2025-06-06"])
    try:
        result = materialize(
            instance,
            stocks,
            ["a_share_bars_1m"],
            partition_key="2025-06-06",
            config={"a_share_bars": {"instruments": A_SHARES[:10]}},
        )
    finally:
        stock_server.configure(holidays=[])
    assert result.success and metadata(result, "a_share_bars_1m")["rows"] == 0
    assert query(stocks["clickhouse"], "SELECT count() FROM {db}.loads") == [(0,)]
    assert {r["error"] for r in ingest_log(stocks["clickhouse"])} == {
        "not a trading day (no bars for any instrument)"
    }


# --------------------------------------------------------------------------------------------
# Binance dump files and the sensors
# --------------------------------------------------------------------------------------------


def test_dump_sensor_requests_the_days_of_new_files_and_a_run_loads_every_file_of_the_day(
    tmp_path, monkeypatch, store
):
    clickhouse = store
    from marketdata_assets.defs.archives.sensors import binance_dump_files

    landing = tmp_path / "landing"
    monkeypatch.setenv("BINANCE_DUMPS_LANDING_DIR", str(landing))
    truth = {}
    for symbol, ext in (("BTCUSDT", "csv"), ("ETHUSDT", "zip"), ("BNBUSDT", "csv")):
        truth[symbol] = generate_trades(symbol, DAY, 3000, seed=len(symbol))
        write_dump(
            landing / "data" / "spot" / "daily" / "trades" / symbol / f"{symbol}-trades-{DAY}.{ext}",
            truth[symbol],
        )
    broken = landing / f"XRPUSDT-trades-{DAY}.csv"
    broken.write_text("1,0.5,10,5,1736899200000000,True,True\n2,abc,10,5,1736899200000001,False,True\n")
    (landing / "README.txt").write_text("not a dump")

    with dg.DagsterInstance.ephemeral() as instance:
        first = binance_dump_files(dg.build_sensor_context(instance=instance))
        (request,) = first.run_requests  # the day of the four files, one run
        assert request.tags == day_range(DAY, "BINANCE", "BINANCE")
        assert request.asset_selection == [dg.AssetKey("binance_dump_trades")]
        assert (
            binance_dump_files(dg.build_sensor_context(instance=instance, cursor=first.cursor)).run_requests
            == []
        )

        result = materialize(instance, {"clickhouse": clickhouse}, request.asset_selection, tags=request.tags)
        assert not result.success  # the broken file
        _, meta = failure(result)
        assert meta["binance_dump_trades_summary"] == "Successful: 3/4"
        assert str(broken) in meta["failures"] and "does not load" in meta["failures"]
        for symbol, frame in truth.items():
            assert_same_rows(
                view_rows(clickhouse, "trades", "BINANCE", symbol, DAY), frame, ["ts", "trade_id"]
            )
        assert view_rows(clickhouse, "trades", "BINANCE", "XRPUSDT", DAY).height == 0
        paths = {r["instrument"]: r for r in ingest_log(clickhouse, "source = 'BINANCE_DUMPS'")}
        assert paths["BTCUSDT"]["rows"] == 3000 and paths["XRPUSDT"]["outcome"] == "failed"

        # a fixed file with an OLD modification time is still seen (the cursor is not the clock)
        write_dump(broken, generate_trades("XRPUSDT", DAY, 100, seed=3))
        cursor = json.loads(first.cursor)
        os.utime(broken, ns=(time.time_ns(), cursor["mtime_ns"] + 1))
        later = binance_dump_files(dg.build_sensor_context(instance=instance, cursor=first.cursor))
        assert [r.tags for r in later.run_requests] == [day_range(DAY, "BINANCE", "BINANCE")]
        fixed = materialize(
            instance,
            {"clickhouse": clickhouse},
            later.run_requests[0].asset_selection,
            tags=later.run_requests[0].tags,
        )
        assert fixed.success and all(c.passed for c in fixed.get_asset_check_evaluations())
        assert_same_rows(
            view_rows(clickhouse, "trades", "BINANCE", "XRPUSDT", DAY), read_dump(broken), ["ts", "trade_id"]
        )

        # a sensor starting from scratch (as after `make run`) leaves out a day a run started after its
        # files' changes loaded (the fixed run: every file of the day)
        fresh = binance_dump_files(dg.build_sensor_context(instance=instance))
        assert fresh.run_requests == []


def test_instruments_from_config_sensor_adds_the_missing_ones():
    from marketdata_assets.defs.crypto.sensors import crypto_instruments_from_config
    from marketdata_assets.sources.config import load_sources_config

    wanted = load_sources_config().crypto_partition_keys()
    with dg.DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions("crypto_instruments", wanted[:2])
        result = crypto_instruments_from_config(dg.build_sensor_context(instance=instance))
        assert result.dynamic_partitions_requests[0].partition_keys == wanted[2:]
        instance.add_dynamic_partitions("crypto_instruments", wanted[2:])
        assert isinstance(
            crypto_instruments_from_config(dg.build_sensor_context(instance=instance)), dg.SkipReason
        )


# --------------------------------------------------------------------------------------------
# Schedules
# --------------------------------------------------------------------------------------------


def test_after_close_schedules_request_the_day_in_the_venues_time_zone(persistent_instance):
    from marketdata_assets.defs.crypto import schedules as crypto_schedules
    from marketdata_assets.defs.equities import schedules as equity_schedules

    instance = persistent_instance  # schedule contexts below

    def run(schedule, when: datetime):
        with dg.build_schedule_context(instance=instance, scheduled_execution_time=when) as context:
            return schedule(context)

    crypto = run(crypto_schedules.crypto_ticks_daily, datetime(2025, 1, 16, 0, 30, tzinfo=UTC))
    assert crypto.tags == day_range(DAY, "BINANCE", "OKX") and crypto.run_key == "crypto:2025-01-15"
    shanghai = run(
        equity_schedules.a_share_after_close, datetime(2025, 6, 5, 15, 30, tzinfo=ZoneInfo("Asia/Shanghai"))
    )
    assert shanghai.partition_key == "2025-06-05"
    new_york = run(
        equity_schedules.yahoo_after_close, datetime(2025, 6, 5, 17, 30, tzinfo=ZoneInfo("America/New_York"))
    )
    assert new_york.partition_key == "2025-06-05"  # 21:30 UTC: the same UTC day
    books = run(crypto_schedules.crypto_snapshots_every_15_minutes, datetime(2025, 1, 16, 9, 15, tzinfo=UTC))
    assert books.tags == {RANGE_START: CRYPTO[0], RANGE_END: CRYPTO[-1]}
    graph = [a for a in ticks_definitions() if isinstance(a, dg.AssetsDefinition)]
    assert {
        key.to_user_string() for key in crypto_schedules.crypto_snapshots_job.selection.resolve(graph)
    } == {"crypto_book_snapshots", "crypto_tickers", "crypto_open_interest_snapshots"}
    chains = run(crypto_schedules.crypto_option_chains_hourly, datetime(2025, 1, 16, 9, 5, tzinfo=UTC))
    assert chains.tags == {RANGE_START: "DERIBIT:BTC-OPTIONS", RANGE_END: "DERIBIT:ETH-OPTIONS"}
    assert chains.run_key == "option_chains:2025-01-16T09"


def test_crypto_catch_up_retries_a_failed_instrument_alone_from_the_ingest_log(
    crypto_server, crypto, persistent_instance
):
    """One run over the last days x every venue with retry_failed: the ingest log, not a partition per
    instrument, says what to fetch (a failed instrument, days never loaded), and nothing loaded twice."""
    from marketdata_assets.defs.crypto.schedules import crypto_catch_up_requests

    instance = persistent_instance  # a schedule context below
    keys = CRYPTO[:3]  # BINANCE:BTCUSDT, BINANCE:ETHUSDT, OKX:BTC-USDT
    day2, day3 = DAY + timedelta(days=1), DAY + timedelta(days=2)
    assert materialize(instance, crypto, ["crypto_trades"], **crypto_day(day3, keys)).success
    crypto_server.add_fault(kind="server_error", venue="BINANCE", instrument="ETHUSDT", status=500)
    assert not materialize(instance, crypto, ["crypto_trades"], **crypto_day(day2, keys)).success
    crypto_server.clear_faults()
    with dg.build_schedule_context(
        instance=instance, scheduled_execution_time=datetime(2025, 1, 18, 3, tzinfo=UTC)
    ) as context:
        (request,) = crypto_catch_up_requests(context, days=3)
    assert request.tags == {RANGE_START: f"{DAY}|BINANCE", RANGE_END: f"{day3}|OKX"}
    assert request.run_config == {"ops": {"crypto_ticks": {"config": {"retry_failed": True}}}}
    before = {(r["instrument"], r["day"]) for r in ingest_log(crypto["clickhouse"], "outcome = 'ok'")}
    assert len(before) == 5  # day3's three, day2's two
    config = {"crypto_ticks": {**request.run_config["ops"]["crypto_ticks"]["config"], "instruments": keys}}
    assert materialize(instance, crypto, ["crypto_trades"], tags=request.tags, config=config).success
    ok = Counter((r["instrument"], r["day"]) for r in ingest_log(crypto["clickhouse"], "outcome = 'ok'"))
    # the failed instrument alone on its day, the day never loaded; nothing loaded twice
    assert set(ok) - before == {("ETHUSDT", day2)} | {(k.split(":")[1], DAY) for k in keys}
    assert set(ok.values()) == {1}


def test_instrument_blocks_cover_exactly_the_affected_instruments():
    from marketdata_assets.core.ranges import instrument_blocks

    order = ["A", "B", "C", "D", "E"]
    assert instrument_blocks(order, {"A", "B", "D"}) == [("A", "B"), ("D", "D")]
    assert instrument_blocks(order, {"E"}) == [("E", "E")] and instrument_blocks(order, set()) == []


# --------------------------------------------------------------------------------------------
# Resources from the sources config and the environment
# --------------------------------------------------------------------------------------------


def test_source_resources_take_urls_and_the_token_from_the_environment(
    stock_server, store, instance, monkeypatch
):
    clickhouse = store
    from marketdata_assets.resources.sources import source_resources
    from marketdata_assets.sources.tushare import TushareTokenError

    monkeypatch.delenv("TUSHARE_TOKEN", raising=False)
    monkeypatch.delenv("OKX_BASE_URL", raising=False)  # `make test` sets every variable to its default
    with pytest.raises(TushareTokenError, match="TUSHARE_TOKEN is not set"):
        source_resources()["tushare"].make_client()
    secret = "s3cret-token-value"
    monkeypatch.setenv("TUSHARE_TOKEN", secret)
    monkeypatch.setenv("TUSHARE_BASE_URL", stock_server.base_url)
    resources = source_resources()
    assert resources["tushare"].requests_per_minute == 200 and resources["binance"].weight_per_minute == 6000
    assert resources["okx"].base_url == "https://www.okx.com"  # its variable is not set
    assert secret not in repr(resources) and isinstance(resources["tushare"].token, dg.EnvVar)
    stock_server.configure(tushare_tokens=[secret])  # any other token gets 40101
    try:
        result = materialize(
            instance,
            {**resources, "clickhouse": clickhouse},
            ["a_share_daily_bars"],
            partition_key=str(STOCK_DAY),
            config={"a_share_bars": {"instruments": ["600000.SH"]}},
        )
    finally:
        stock_server.configure(tushare_tokens=None)
    assert result.success and metadata(result, "a_share_daily_bars")["summary"] == "Successful: 1/1"
    assert not any(secret in (m or "") for m in log_messages(instance, result))


def test_tushare_null_data_fails_its_code_day_and_keeps_the_stored_slice(stock_server, stocks, instance):
    """`code 0` with `data: null` is no answer, not "no bars": the code-day fails with the reason, its
    stored bars stay, the other codes are re-written."""
    codes = ["600000.SH", "600036.SH", "000001.SZ"]
    config = {"a_share_bars": {"instruments": codes}}
    assert materialize(
        instance, stocks, ["a_share_bars_1m"], partition_key=str(STOCK_DAY), config=config
    ).success
    before = view_rows(stocks["clickhouse"], "bars_1m", "SSE", "600036.SH", STOCK_DAY)
    assert before.height == 241
    stock_server.add_fault("null_data", symbols=["600036.SH"], api="stk_mins")
    result = materialize(instance, stocks, ["a_share_bars_1m"], partition_key=str(STOCK_DAY), config=config)
    assert not result.success
    _, meta = failure(result)
    assert meta["a_share_bars_1m_summary"] == "Successful: 2/3"
    assert "SSE:600036.SH 2025-06-05 bars_1m" in meta["failures"] and "`data` is null" in meta["failures"]
    assert_frame_equal(view_rows(stocks["clickhouse"], "bars_1m", "SSE", "600036.SH", STOCK_DAY), before)
    assert view_rows(stocks["clickhouse"], "bars_1m", "SZSE", "000001.SZ", STOCK_DAY).height == 241


def test_a_day_after_the_library_s_calendar_is_a_provisional_warn(
    stock_server, stocks, instance, monkeypatch
):
    """A partition the installed exchange-calendars does not know (as when XSHG ends on 2026-12-31 and
    the day is in 2027; simulated by ending XSHG the day before STOCK_DAY, since Dagster has no 2027
    partition yet): the bars load, minutes_complete judges them on the provisional grid and reports
    a WARN naming the library version to upgrade and the day, not a pass and not an error."""
    from importlib.metadata import version

    from marketdata_assets.core import calendars

    known = calendars._known_until
    monkeypatch.setattr(
        calendars,
        "_known_until",
        lambda cal: min(known(cal), STOCK_DAY - timedelta(days=1)) if cal.name == "XSHG" else known(cal),
    )
    result = materialize(
        instance,
        stocks,
        ["a_share_bars_1m"],
        partition_key=str(STOCK_DAY),
        config={"a_share_bars": {"instruments": A_SHARES[:3] + A_SHARES[-2:]}},
    )
    assert result.success and metadata(result, "a_share_bars_1m")["rows"] == 5 * 241
    checks = {
        e.check_name: e
        for e in result.get_asset_check_evaluations()
        if e.asset_key.to_user_string() == "a_share_bars_1m"
    }
    grid = checks["minutes_complete"]
    assert (grid.passed, grid.severity, grid.partition) == (False, dg.AssetCheckSeverity.WARN, str(STOCK_DAY))
    assert grid.description.startswith(
        f"provisional: exchange-calendars {version('exchange-calendars')} knows XSHG sessions only until "
        f"{STOCK_DAY - timedelta(days=1)}; later days are judged as weekdays minus "
    )
    assert f"({STOCK_DAY} judged provisionally)" in grid.description
    assert (
        grid.metadata["violations"].value == 0
        and "Upgrade exchange-calendars" in grid.metadata["calendar"].value
    )
    assert all(
        c.passed for name, c in checks.items() if name != "minutes_complete"
    )  # the other rules as ever
