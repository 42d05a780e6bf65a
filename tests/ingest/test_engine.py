"""The ingest engine (ingest/engine.py) on the real embedded ClickHouse: independent slices, retries
after the others, batches split to find a bad instrument, a stop error skips the rest, a slice that
does not validate fails alone, the ingest log and the retry options; request figures per slice over
real HTTP (a replay)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, date, datetime, timedelta

import pytest

from marketdata_assets.core.http import RetryPolicy, SourceBanned, SourceDataError, SourceRequestError
from marketdata_assets.datasets.frames import to_us
from marketdata_assets.datasets.normalized import Trade, trades_frame
from marketdata_assets.datasets.slices import Feed, Job, SliceKey
from marketdata_assets.ingest.engine import Engine, IngestReport, day_blocks, plan
from marketdata_assets.replay.crypto import CryptoReplayServer, ReplayConfig
from marketdata_assets.sources.venues import venue_client, venue_feed

DAY = date(2025, 1, 15)


def trades(instrument: str, day: date = DAY, n: int = 3, venue: str = "BINANCE"):
    start = to_us(datetime(day.year, day.month, day.day, 12, tzinfo=UTC))
    return trades_frame(
        [
            Trade(
                venue, instrument, f"{instrument}-{i}", 100.0 + i, 1.0, 100.0 + i, "buy", i, start + i, 0, 0
            )
            for i in range(n)
        ]
    )


def keys(*instruments: str, day: date = DAY) -> list[SliceKey]:
    return [SliceKey("trades", "BINANCE", i, day) for i in instruments]


def run_feed(clickhouse, feed: Feed, messages: list | None = None, run_id: str = "run-1") -> IngestReport:
    engine = Engine(
        clickhouse.get_client,
        clickhouse.database,
        run_id,
        log=(messages.append if messages is not None else None),
    )
    return engine.run([[feed]])


def ingest_log(clickhouse) -> dict:
    with clickhouse.get_client() as client:
        rows = client.query(
            f"SELECT instrument, outcome, rows, error, requests FROM `{clickhouse.database}`.ingest_log "
            "ORDER BY finished_at"
        ).result_rows
    return {r[0]: r[1:] for r in rows}


def test_each_slice_is_independent_and_a_failed_one_is_retried_after_the_others(store):
    calls: list[str] = []
    flaky = {"BBB": 1}  # fails once, then works

    async def fetch(api, job):
        (key,) = job.keys
        calls.append(key.instrument)
        await asyncio.sleep(0)
        if key.instrument == "BAD":
            raise SourceDataError(
                key.instrument, key.day, "price is 'abc', not a number", source="X", request="GET /x"
            )
        if flaky.get(key.instrument):
            flaky[key.instrument] -= 1
            raise RuntimeError("connection reset")
        return trades(key.instrument)

    messages: list[str] = []
    feed = Feed("X", [Job((k,)) for k in keys("AAA", "BBB", "BAD", "CCC")], fetch, workers=1, attempts=2)
    report = run_feed(store, feed, messages)
    assert calls == ["AAA", "BBB", "BAD", "CCC", "BBB", "BAD"]  # retries go after the slices not tried yet
    outcome = {k.instrument: o for k, o in report.outcomes.items()}
    assert {i: o.status for i, o in outcome.items()} == {
        "AAA": "ok",
        "BBB": "ok",
        "BAD": "failed",
        "CCC": "ok",
    }
    assert outcome["BBB"].attempts == 2 and outcome["BBB"].rows == 3
    assert outcome["BAD"].error == "X BAD 2025-01-15: price is 'abc', not a number (GET /x)"
    assert any("attempt 1 of 2; retried after the others" in m for m in messages)
    assert messages[-1] == "X: 4/4 slices settled (3 ok, 1 failed, 0 skipped), 9 rows written"
    assert any(m.startswith("X: 1/4 slices settled") for m in messages)  # the first settled, at once
    assert report.summary("trades") == "Successful: 3/4"
    log = ingest_log(store)
    assert log["BAD"][:2] == ("failed", 0) and log["AAA"][:2] == ("ok", 3)
    assert (
        "| BINANCE:BAD 2025-01-15 trades | failed | X BAD 2025-01-15: price is 'abc'"
        in report.failures_table()
    )


def test_a_rejected_request_is_not_retried_and_a_stop_error_skips_everything_left(store):
    calls: list[str] = []

    async def fetch(api, job):
        (key,) = job.keys
        calls.append(key.instrument)
        if key.instrument == "UNKNOWN":
            raise SourceRequestError("X", key.instrument, 400, -1121, "Invalid symbol.")
        if key.instrument == "CCC":
            raise SourceBanned("X", "HTTP 418: IP banned until 1700000000000")
        return trades(key.instrument)

    feed = Feed(
        "X", [Job((k,)) for k in keys("UNKNOWN", "BBB", "CCC", "DDD", "EEE")], fetch, workers=1, attempts=3
    )
    report = run_feed(store, feed)
    assert calls == ["UNKNOWN", "BBB", "CCC"]  # nothing after the ban
    outcome = {k.instrument: o for k, o in report.outcomes.items()}
    assert [outcome[i].status for i in ("UNKNOWN", "BBB", "CCC", "DDD", "EEE")] == [
        "failed",
        "ok",
        "failed",
        "skipped",
        "skipped",
    ]
    assert "banned this IP" in outcome["CCC"].error
    assert outcome["EEE"].error.startswith("not attempted: X trades stopped: X banned this IP")
    assert ingest_log(store)["EEE"][0] == "skipped"


def test_a_failing_batch_is_split_so_one_bad_instrument_fails_alone(store):
    asked: list[tuple[str, ...]] = []

    async def fetch(api, job):
        instruments = tuple(dict.fromkeys(k.instrument for k in job.keys))
        asked.append(instruments)
        if "BAD" in instruments:
            raise ValueError(f"answer for {','.join(instruments)}: a row of BAD has no close")
        import polars as pl

        return pl.concat([trades(i) for i in instruments])

    batch = Job(tuple(keys("AAA", "BBB", "BAD", "CCC")))
    report = run_feed(store, Feed("X", [batch, Job(tuple(keys("DDD")))], fetch, workers=2, attempts=1))
    assert asked[0] == ("AAA", "BBB", "BAD", "CCC") and sorted(asked[2:]) == [
        ("AAA",),
        ("BAD",),
        ("BBB",),
        ("CCC",),
    ]
    assert {k.instrument: (o.status, o.rows) for k, o in report.outcomes.items()} == {
        "AAA": ("ok", 3),
        "BBB": ("ok", 3),
        "BAD": ("failed", 0),
        "CCC": ("ok", 3),
        "DDD": ("ok", 3),
    }


def test_a_frame_that_does_not_validate_fails_its_slice_only_and_a_day_group_is_one_flip(store):
    async def fetch(api, job):
        import polars as pl

        frames = [trades(k.instrument) for k in job.keys]
        frames[1] = frames[1].with_columns(pl.lit(float("nan")).alias("price"))  # BBB is damaged
        return pl.concat(frames)

    feed = Feed("X", [Job(tuple(keys("AAA", "BBB", "CCC")))], fetch, by_day=True)
    report = run_feed(store, feed)
    outcome = {k.instrument: o for k, o in report.outcomes.items()}
    assert (outcome["AAA"].status, outcome["BBB"].status, outcome["CCC"].status) == ("ok", "failed", "ok")
    assert "column 'price' is NaN/inf" in outcome["BBB"].error
    with store.get_client() as client:
        loads = client.query(f"SELECT instrument, run_id FROM `{store.database}`.active_loads").result_rows
    assert sorted(loads) == [("AAA", "run-1"), ("CCC", "run-1")]


def test_retry_options_plan_only_what_did_not_load(store):
    async def fetch(api, job):
        (key,) = job.keys
        if key.instrument == "BAD":
            raise ValueError("no")
        return trades(key.instrument)

    first = run_feed(
        store, Feed("X", [Job((k,)) for k in keys("AAA", "BAD")], fetch, attempts=1), run_id="first"
    )
    assert first.summary() == "Successful: 1/2"
    report = IngestReport()
    with store.get_client() as client:
        assert plan(
            client, store.database, "X", keys("AAA", "BAD", "NEW"), retry_failed=True, report=report
        ) == keys("BAD", "NEW")
        assert plan(
            client, store.database, "X", keys("AAA", "BAD", "NEW"), retry_failed_from_run="first"
        ) == keys("BAD")
    assert report.left_out == {"trades": 1}


def test_day_blocks_bound_the_rows_in_memory():
    days = [DAY + timedelta(days=i) for i in range(45)]
    assert [len(b) for b in day_blocks(days, 20, 150, 241)] == [20, 20, 5]
    assert [len(b) for b in day_blocks(days[:3], 20, 5000, 241)] == [
        1,
        1,
        1,
    ]  # the whole market: a day at a time


def test_request_figures_are_counted_per_slice_over_real_http(store):
    with CryptoReplayServer(ReplayConfig(seed=2, trades_per_day=400)) as server:
        server.add_fault(kind="rate_limit", venue="OKX", instrument="ETH-USDT", times=2, retry_after="0.01")
        server.add_fault(kind="server_error", venue="OKX", instrument="BTC-USDT", times=1)

        def client():
            return venue_client(
                "OKX",
                server.base_url,
                requests_per_minute=60_000,
                max_concurrency=4,
                retry=RetryPolicy(max_retries=3, backoff_base_s=0.01),
            )

        slices = [SliceKey("trades", "OKX", i, DAY) for i in ("BTC-USDT", "ETH-USDT")]
        report = run_feed(store, venue_feed("OKX", client, slices, workers=2, attempts=2))
        sent = len(server.requests(venue="OKX"))
    eth, btc = (report.outcomes[k].stats for k in reversed(slices))
    assert (eth.rate_limited, eth.server_errors, eth.retries) == (2, 0, 2)
    assert (btc.rate_limited, btc.server_errors, btc.retries) == (0, 1, 1)
    assert eth.requests + btc.requests == report.sources["OKX"]["requests"] == sent
    assert eth.percentile_ms(0.5) > 0 and len(eth.latency_s) == eth.requests
    log = ingest_log(store)
    assert log["ETH-USDT"][0] == "ok" and log["ETH-USDT"][1] == 400 and log["ETH-USDT"][3] == eth.requests
    meta = report.metadata("trades")
    assert meta["summary"] == "Successful: 2/2" and meta["rows"] == 800 and meta["rate_limited_429"] == 2


def test_a_feed_needs_workers():
    with pytest.raises(ValueError, match="workers"):
        Feed("X", [], fetch=None, workers=0)


def test_an_empty_dump_never_wipes_a_stored_day(store, tmp_path):
    """A 0-byte CSV or a header-only zip of a day already loaded fails its slice; the day stays."""
    import zipfile

    from marketdata_assets.ingest.dumps import dump_feed
    from marketdata_assets.replay.binance_dumps import generate_trades, write_dump

    day = date(2024, 6, 3)
    keys = [SliceKey("trades", "BINANCE", "BTCUSDT", day), SliceKey("trades", "BINANCE", "ETHUSDT", day)]
    for i, key in enumerate(keys):
        write_dump(
            tmp_path / f"{key.instrument}-trades-{day}.csv", generate_trades(key.instrument, day, 300, seed=i)
        )

    def load(run_id: str) -> IngestReport:
        return run_feed(
            store,
            dump_feed(tmp_path, keys, engine_reads_files=True, database=store.database, run_id=run_id),
            run_id=run_id,
        )

    assert load("full").summary() == "Successful: 2/2"
    (tmp_path / f"BTCUSDT-trades-{day}.csv").write_bytes(b"")
    (tmp_path / f"ETHUSDT-trades-{day}.csv").unlink()
    with zipfile.ZipFile(tmp_path / f"ETHUSDT-trades-{day}.zip", "w") as archive:
        archive.writestr(f"ETHUSDT-trades-{day}.csv", "id,price,qty,quote_qty,time,is_buyer_maker\n")
    report = load("empty")
    assert report.summary() == "Successful: 0/2"
    assert all("the dump holds no rows" in o.error for o in report.outcomes.values())
    with store.get_client() as client:
        counts = dict(
            client.query(
                f"SELECT instrument, count() FROM `{store.database}`.trades_v GROUP BY instrument"
            ).result_rows
        )
    assert counts == {"BTCUSDT": 300, "ETHUSDT": 300}


def test_the_run_deadline_cuts_off_a_fetch_that_never_ends_and_skips_the_rest(store):
    """A source that holds a fetch forever (a slow drip the per-request deadline can't see, a client
    stuck waiting for its pool): the run's deadline fails that slice and skips the ones not started,
    so the run ends and gives its pool back."""
    never = asyncio.Event()
    calls: list[str] = []

    async def fetch(api, job):
        (key,) = job.keys
        calls.append(key.instrument)
        if key.instrument == "HANGS":
            await never.wait()
        return trades(key.instrument)

    feed = Feed("X", [Job((k,)) for k in keys("AAA", "HANGS", "CCC", "DDD")], fetch, workers=1, attempts=2)
    engine = Engine(store.get_client, store.database, "run-deadline", deadline_s=2)
    started = time.monotonic()
    report = engine.run([[feed]])
    assert time.monotonic() - started < 30  # without the deadline: never
    assert calls == ["AAA", "HANGS"]  # nothing is started after the deadline
    outcome = {k.instrument: o for k, o in report.outcomes.items()}
    assert [outcome[i].status for i in ("AAA", "HANGS", "CCC", "DDD")] == [
        "ok",
        "failed",
        "skipped",
        "skipped",
    ]
    assert "the run's deadline of 2 s passed during a fetch" in outcome["HANGS"].error
    assert outcome["DDD"].error.startswith(
        "not attempted: X trades stopped: the run's deadline of 2 s passed"
    )
    assert ingest_log(store)["DDD"][0] == "skipped"
