"""The batch side of live capture: closed landing hours of Binance trades loaded into ClickHouse by
the `live_trades` asset (ingest/live/hourly/load.py, defs/live), against the embedded ClickHouse and real
zstd landing files written by the landing writer (a `.part` left open, markers, an overlap of two
connections, a crash's torn line recovered). Nothing is mocked; no test sleeps.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import dagster as dg
import polars as pl
import pytest
import zstandard

from marketdata_assets.ingest.live.hourly.load import hour_slices, hours_of_day
from marketdata_assets.sources.binance.stream import trade_event
from marketdata_assets.stores.clickhouse import tables as ct
from marketdata_assets.stores.landing import LandingWriter, recover
from marketdata_assets.stores.landing.writer import PART, frame_line

INSTRUMENT, KEY, CHANNEL = "BTCUSDT", "BINANCE:BTCUSDT", "btcusdt@trade"
DAY = (datetime.now(UTC) - timedelta(days=1)).date()  # yesterday: every hour of it is closed and plausible
LAG_MS = 2  # receive time - event time of every landed trade


def at(hour: int, second: float = 0.0) -> datetime:
    return datetime(DAY.year, DAY.month, DAY.day, tzinfo=UTC) + timedelta(hours=hour, seconds=second)


def pkey(hour: int) -> str:
    return f"{at(hour):%Y-%m-%d-%H}:00|{KEY}"


def trade(tid: int, moment: datetime, instrument: str = INSTRUMENT) -> tuple[str, int, tuple]:
    """(frame text as the combined stream sends it, receive ns, the expected stored row)."""
    ms = int(moment.timestamp() * 1000)
    price, qty, maker = f"{40_000 + tid * 0.37:.2f}", f"{0.001 * (tid % 17 + 1):.5f}", tid % 3 == 0
    data = {
        "e": "trade",
        "E": ms + 3,
        "s": instrument,
        "t": tid,
        "p": price,
        "q": qty,
        "T": ms,
        "m": maker,
        "M": True,
    }
    text = json.dumps({"stream": f"{instrument.lower()}@trade", "data": data}, separators=(",", ":"))
    row = (
        datetime.fromtimestamp(ms / 1000, UTC),
        str(tid),
        float(price),
        float(qty),
        float(price) * float(qty),
        "sell" if maker else "buy",
        tid,
    )
    return text, (ms + 3 + LAG_MS) * 1_000_000, row


def land(writer: LandingWriter, conn: str, ids, hour: int, offset_s: float = 0.0) -> dict[int, tuple]:
    """Trades `ids` of `hour` (one a second from `offset_s`), landed by connection `conn`."""
    rows = {}
    for tid in ids:
        text, recv_ns, row = trade(tid, at(hour, offset_s + tid))
        writer.frame(CHANNEL, conn, text, recv_ns)
        rows[tid] = row
    return rows


STORED = ("ts", "trade_id", "price", "quantity", "amount", "side", "seq")


def stored(clickhouse) -> list[tuple]:
    with clickhouse.get_client() as client:
        frame = ct.read_range(
            client, clickhouse.database, "trades", "BINANCE", INSTRUMENT, DAY, DAY + timedelta(days=1)
        )
    return [tuple(r) for r in frame.select(*STORED).rows()]


def active_load(clickhouse) -> int:
    with clickhouse.get_client() as client:
        loads = ct.loaded_days(client, clickhouse.database, "trades", "BINANCE")
    return next(r for r in loads.rows(named=True) if r["instrument"] == INSTRUMENT and r["day"] == DAY)[
        "load_id"
    ]


@pytest.fixture
def instance():
    with dg.DagsterInstance.ephemeral() as inst:
        yield inst


def materialize(instance, clickhouse, key: str, checks: bool = True, **config) -> dg.ExecuteInProcessResult:
    """A run of live_trades of the hour of `key` ('YYYY-MM-DD-HH:00|VENUE:INSTRUMENT'), that instrument."""
    from marketdata_assets.defs.live.assets import live_trades
    from marketdata_assets.defs.live.checks import live_checks

    hour, instrument = key.split("|")
    assets = [live_trades, *(live_checks if checks else [])]
    result = dg.materialize(
        assets,
        resources={"clickhouse": clickhouse},
        instance=instance,
        partition_key=hour,
        raise_on_error=False,
        run_config={"ops": {"live_trades": {"config": {"instruments": [instrument], **config}}}},
    )
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    return result


def metadata(result) -> dict:
    (event,) = result.get_asset_materialization_events()
    return {k: v.value for k, v in event.materialization.metadata.items()}


def observation(instance, key: str) -> dict:
    """The latest observation of the hour of `key` ('YYYY-MM-DD-HH:00|VENUE:INSTRUMENT')."""
    records = instance.fetch_observations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("live_trades"), asset_partitions=[key.split("|")[0]]),
        limit=1,
    ).records
    return {k: v.value for k, v in records[0].asset_observation.metadata.items()}


def checks_passed(result) -> dict[str, bool]:
    return {
        e.asset_check_key.name: e.passed
        for e in (
            ev.event_specific_data
            for ev in result.all_events
            if ev.event_type_value == "ASSET_CHECK_EVALUATION"
        )
    }


def test_an_hour_loads_every_trade_once_and_counts_what_it_discards(root, instance, store):
    writer = LandingWriter(root, "BINANCE")
    writer.marker(CHANNEL, "c1", "connect", int(at(10).timestamp() * 1e9))
    expected = land(writer, "c1", range(1, 51), 10)
    writer.marker(CHANNEL, "c2", "connect", int(at(10, 40).timestamp() * 1e9))
    expected |= land(writer, "c2", range(41, 61), 10)  # make before break: 41..50 landed by both connections
    writer.marker(CHANNEL, "c1", "disconnect", int(at(10, 61).timestamp() * 1e9), reason="rollover")
    writer.marker(CHANNEL, "c2", "overflow", int(at(10, 62).timestamp() * 1e9), dropped=0)
    recv = int(at(10, 63).timestamp() * 1e9)
    writer.frame(CHANNEL, "c2", '{"result":null,"id":1}', recv)  # an ack: not a trade
    writer.frame(
        CHANNEL, "c2", '{"stream":"btcusdt@trade","data":{"e":"trade","s":"BTC', recv + 1
    )  # cut: not JSON
    writer.frame(CHANNEL, "c2", trade(999, at(10, 64), "ETHUSDT")[0], recv + 2)  # another instrument's
    writer._write(
        CHANNEL, b'{"t":5,"c":"c2","d":"{\\"stre\n', recv + 3, None
    )  # a damaged line: counted, not fatal
    writer.close()
    later = LandingWriter(root, "BINANCE")  # a restart within the hour: a second segment, still open
    land(later, "c3", range(61, 71), 10)
    later.flush()
    assert len(list(root.rglob(f"*{PART}"))) == 1

    result = materialize(instance, store, pkey(10))
    assert stored(store) == [expected[tid] for tid in range(1, 61)]  # the .part is not read
    figures = metadata(result)
    assert (figures["rows"], figures["frames"], figures["trades"]) == (60, 73, 60)
    assert figures["discarded_by_reason"] == {
        "bad_frame": 1,
        "bad_line": 1,
        "duplicates": 10,
        "not_a_trade": 1,
        "other_instrument": 1,
    }
    assert figures["markers"] == {"connect": 2, "disconnect": 1, "overflow": 1}
    assert (figures["disconnects"], figures["overflows"], figures["gaps"]) == (1, 1, 0)
    assert figures["lag_p50_ms"] == figures["lag_p95_ms"] == LAG_MS
    assert figures["dropped_by_reason"] == figures["discarded_by_reason"]  # ingest_log's, the slice's
    seen = observation(instance, pkey(10))
    assert (seen["frames"], seen["trades"], seen["discarded"], seen["connects"]) == (73, 60, 14, 2)
    assert checks_passed(result) == {
        "no_duplicate_trade_ids": True,
        "timestamps_inside_day": True,
        "prices_positive": True,
        "trade_ids_continuous": True,
        "live_matches_hourly": True,
    }  # no trades_live here: no live path ran

    later.close()  # the second segment closes: the hour's next load reads it too
    materialize(instance, store, pkey(10))
    assert [r[1] for r in stored(store)] == [str(tid) for tid in range(1, 71)]


def test_a_reload_is_idempotent_and_a_later_hour_extends_the_day(root, instance, store):
    with LandingWriter(root, "BINANCE") as writer:
        expected = land(writer, "c1", range(1, 31), 10)
    materialize(instance, store, pkey(10), checks=False)
    first_rows, first_load = stored(store), active_load(store)
    materialize(instance, store, pkey(10), checks=False)
    assert (
        stored(store) == first_rows == [expected[t] for t in range(1, 31)] and active_load(store) > first_load
    )

    with LandingWriter(root, "BINANCE") as writer:
        expected |= land(writer, "c1", range(31, 51), 11)
    result = materialize(instance, store, pkey(11), checks=False)
    assert stored(store) == [expected[t] for t in range(1, 51)]
    figures = metadata(result)  # the hour's own figures; the run rewrote the day so far (run_rows)
    assert (figures["trades"], figures["rows"], figures["run_rows"], figures["run_partitions"]) == (
        20,
        20,
        50,
        1,
    )
    materialize(
        instance, store, pkey(10), checks=False
    )  # an earlier hour again: the whole day so far, no less
    assert stored(store) == [expected[t] for t in range(1, 51)]


def test_a_crashed_hour_is_loaded_from_its_complete_lines(root, instance, store):
    writer = LandingWriter(root, "BINANCE")
    expected = land(writer, "c1", range(1, 21), 9)
    writer.flush()
    (part,) = root.rglob(f"*{PART}")
    torn = frame_line(trade(21, at(9, 21))[1], "c1", trade(21, at(9, 21))[0])[:-40]
    with open(part, "ab") as handle:  # the crash: a last line half written
        handle.write(zstandard.ZstdCompressor().compress(torn))
    writer.files.clear()  # the process dies: its handle dropped, never closed
    (recovered,) = recover(root)
    assert recovered.torn_dropped == 1

    result = materialize(instance, store, pkey(9))
    assert stored(store) == [expected[t] for t in range(1, 21)]
    figures = metadata(result)
    assert (figures["recovered_files"], figures["torn_lines"], figures["markers"]) == (1, 1, {"crash": 1})


def test_the_sensor_requests_an_hour_exactly_when_its_file_closes(root, instance):
    from marketdata_assets.defs.live.sensors import live_landing_hours

    with LandingWriter(root, "BINANCE") as writer:
        land(writer, "c1", range(1, 11), 10)
    open_writer = LandingWriter(root, "BINANCE")
    land(open_writer, "c1", range(11, 21), 11)
    open_writer.flush()
    (root / "BINANCE" / "_control").mkdir()  # not a trade channel: never requested

    fresh = dg.DagsterInstance.ephemeral()
    first = live_landing_hours(dg.build_sensor_context(instance=fresh))
    assert [
        (r.partition_key, r.run_config["ops"]["live_trades"]["config"]["instruments"])
        for r in first.run_requests
    ] == [(pkey(10).split("|")[0], [KEY])]
    again = live_landing_hours(dg.build_sensor_context(instance=instance, cursor=first.cursor))
    assert again.run_requests == []

    open_writer.close()
    closed = live_landing_hours(dg.build_sensor_context(instance=instance, cursor=again.cursor))
    assert [r.partition_key for r in closed.run_requests] == [pkey(11).split("|")[0]]
    assert (
        live_landing_hours(dg.build_sensor_context(instance=instance, cursor=closed.cursor)).run_requests
        == []
    )


def test_the_first_hour_of_a_day_completes_the_day_before(root, instance, store):
    with LandingWriter(root, "BINANCE") as landing:
        late, recv_ns, late_row = trade(1, at(0) - timedelta(milliseconds=1))  # 23:59:59.999 the day before
        landing.frame(CHANNEL, "c1", late, recv_ns + 40_000_000)  # received 00:00:00.042: in the 00Z file
        expected = land(landing, "c1", range(2, 6), 0)
    result = materialize(instance, store, pkey(0), workers=2)  # both days' slices read the 00Z file at once
    assert stored(store) == [expected[t] for t in range(2, 6)]
    with store.get_client() as client:
        before = ct.read_range(
            client, store.database, "trades", "BINANCE", INSTRUMENT, DAY - timedelta(days=1), DAY
        )
    assert [tuple(r) for r in before.select(*STORED).rows()] == [late_row]
    assert (metadata(result)["frames"], metadata(result)["slices_ok"]) == (5, 2)  # the 00Z file counted once
    assert hour_slices(f"{DAY:%Y-%m-%d}T00Z") == [DAY - timedelta(days=1), DAY]
    assert hour_slices(f"{DAY:%Y-%m-%d}T13Z") == [DAY]
    hours = hours_of_day(DAY)
    assert (len(hours), hours[0], hours[-1]) == (
        26,
        f"{DAY - timedelta(days=1):%Y-%m-%d}T23Z",
        f"{DAY + timedelta(days=1):%Y-%m-%d}T00Z",
    )


def test_a_trade_event_is_parsed_as_the_rest_parsers_do():
    text, _, row = trade(7, at(3, 1.5))
    (parsed,) = trade_event(json.loads(text)["data"], INSTRUMENT)
    stored = ("ts_us", "trade_id", "price", "quantity", "amount", "side", "seq")
    assert tuple(getattr(parsed, name) for name in stored) == (int(row[0].timestamp() * 1_000_000), *row[1:])
    assert row[0].microsecond == 500_000 and row[5] == "buy"  # T in ms -> µs; m false: the taker bought


def test_what_a_refill_added_survives_the_next_hourly_load(root, instance, store):
    from marketdata_assets.ingest.live.hourly.trade_frames import LIVE_VENUES

    SOURCE = LIVE_VENUES["BINANCE"].source
    from marketdata_assets.stores.clickhouse import writer

    with LandingWriter(root, "BINANCE") as landing:
        expected = land(landing, "c1", [t for t in range(1, 31) if t not in (15, 16, 17)], 10)
    result = materialize(instance, store, pkey(10))
    assert checks_passed(result)["trade_ids_continuous"] is False
    # the refill's write, as quality.continuity._write does it: the stored rows plus the fetched ids,
    # one new load logged under the slice's own source
    holes = {t: trade(t, at(10, t))[2] for t in (15, 16, 17)}
    expected |= holes
    columns = ["ts", "trade_id", "price", "quantity", "amount", "side", "seq"]
    frame = pl.DataFrame([expected[t] for t in range(1, 31)], schema=columns, orient="row").with_columns(
        pl.col("ts").dt.cast_time_unit("us"), venue=pl.lit("BINANCE"), instrument=pl.lit(INSTRUMENT)
    )
    with store.get_client() as client:
        written = writer.write_slice(
            client, store.database, "trades", frame, "BINANCE", INSTRUMENT, DAY, "refill"
        )
        now = datetime.now(UTC)
        writer.log_ingest(
            client,
            store.database,
            [
                {
                    "run_id": "refill",
                    "source": SOURCE,
                    "dataset": "trades",
                    "venue": "BINANCE",
                    "instrument": INSTRUMENT,
                    "day": DAY,
                    "rows": 30,
                    "outcome": "ok",
                    "load_id": written.load_id,
                    "started_at": now,
                    "finished_at": now,
                }
            ],
        )

    with LandingWriter(root, "BINANCE") as landing:
        expected |= land(landing, "c1", range(31, 41), 11)
    result = materialize(instance, store, pkey(11))
    assert stored(store) == [expected[t] for t in range(1, 41)]
    assert metadata(result)["kept_from_store"] == 3
    assert checks_passed(result)["trade_ids_continuous"] is True


def test_one_run_loads_an_hour_of_several_instruments(root, store):
    from marketdata_assets.defs.live.assets import live_trades
    from marketdata_assets.defs.live.sensors import live_landing_hours

    with LandingWriter(root, "BINANCE") as landing:
        for k, instrument in enumerate(("BTCUSDT", "ETHUSDT")):
            for tid in range(1, 6):
                text, recv_ns, _ = trade(tid, at(10, tid + k), instrument)
                landing.frame(f"{instrument.lower()}@trade", "c1", text, recv_ns)
    with dg.DagsterInstance.ephemeral() as instance:
        first = live_landing_hours(dg.build_sensor_context(instance=instance))
        (request,) = first.run_requests  # the hour, both instruments named
        assert request.partition_key == pkey(10).split("|")[0]
        both = ["BINANCE:BTCUSDT", "BINANCE:ETHUSDT"]
        assert request.run_config == {
            "ops": {
                "live_trades": {"config": {"instruments": both}},
                # their first captured hour of the day: the refill of their ids before capture runs with it
                "live_trade_id_refill": {"config": {"instruments": both, "before_capture": True}},
            }
        }
        result = dg.materialize(
            [live_trades],
            resources={"clickhouse": store},
            instance=instance,
            partition_key=request.partition_key,
            run_config={"ops": {"live_trades": request.run_config["ops"]["live_trades"]}},
        )
        events = result.get_asset_materialization_events()
        assert result.success and [e.partition for e in events] == [request.partition_key]
        seen = observation(instance, pkey(10))
        assert "| BINANCE:BTCUSDT | " in seen["instruments"] and "| BINANCE:ETHUSDT | " in seen["instruments"]
        figures = {k: v.value for k, v in events[0].materialization.metadata.items()}
        assert (figures["slices_ok"], figures["trades"]) == (2, 10)
    with store.get_client() as client:
        for instrument in ("BTCUSDT", "ETHUSDT"):
            rows = ct.read_range(
                client, store.database, "trades", "BINANCE", instrument, DAY, DAY + timedelta(days=1)
            )
            assert rows["trade_id"].to_list() == [str(t) for t in range(1, 6)]


# ---- OKX and Deribit hours, reconciliation against the REST refill ---------------------------------

VENUE_CHANNELS = {
    "BINANCE_UM": ("BTCUSDT", "btcusdt@aggTrade", "btcusdt@depth@100ms"),
    "OKX": ("BTC-USDT", "BTC-USDT@trades", "BTC-USDT@books"),
    "DERIBIT": ("BTC-PERPETUAL", "trades.BTC-PERPETUAL.100ms", "book.BTC-PERPETUAL.100ms"),
}


@pytest.fixture(scope="module")
def rest_replay():
    from marketdata_assets.replay.crypto import CryptoReplayServer, ReplayConfig

    with CryptoReplayServer(ReplayConfig(seed=21, trades_per_day=2000)) as server:
        yield server


def tape(server, venue: str, hour: int) -> pl.DataFrame:
    """The replay's trades of `venue` in `hour` of DAY, as its REST API serves them (what a venue's
    stream carried)."""
    import asyncio

    from tests.support.ticks_dagster import crypto_resources

    async def fetch():
        async with crypto_resources(server.base_url)[venue.lower()].make_client() as api:
            return await api.trades(VENUE_CHANNELS[venue][0], at(hour), at(hour + 1))

    return asyncio.run(fetch()).sort("seq")


def venue_frame(venue: str, row: dict) -> str:
    """A trade as the venue's WebSocket pushes it (USD-M `aggTrade` in a combined-stream wrapper, OKX
    `trades`, Deribit `trades.<i>.100ms`)."""
    instrument, channel, _ = VENUE_CHANNELS[venue]
    ms = int(row["ts"].timestamp() * 1000)
    if venue == "BINANCE_UM":
        data = {
            "e": "aggTrade",
            "E": ms,
            "s": instrument,
            "a": row["seq"],
            "p": repr(row["price"]),
            "q": repr(row["quantity"]),
            "f": row["seq"] * 3,
            "l": row["seq"] * 3 + 2,
            "T": ms,
            "m": row["side"] == "sell",
        }
        return json.dumps({"stream": channel, "data": data})
    if venue == "OKX":
        data = {
            "instId": instrument,
            "tradeId": row["trade_id"],
            "px": repr(row["price"]),
            "sz": repr(row["quantity"]),
            "side": row["side"],
            "ts": str(ms),
            "count": "1",
        }
        return json.dumps({"arg": {"channel": "trades", "instId": instrument}, "data": [data]})
    data = {
        "trade_seq": row["seq"],
        "trade_id": row["trade_id"],
        "timestamp": ms,
        "tick_direction": 0,
        "price": row["price"],
        "amount": row["amount"],
        "direction": row["side"],
        "instrument_name": instrument,
    }
    return json.dumps(
        {"jsonrpc": "2.0", "method": "subscription", "params": {"channel": channel, "data": [data]}}
    )


def land_tape(root, venue: str, rows: pl.DataFrame) -> None:
    with LandingWriter(root, venue) as writer:
        for row in rows.iter_rows(named=True):
            writer.frame(
                VENUE_CHANNELS[venue][1],
                "c1",
                venue_frame(venue, row),
                int(row["ts"].timestamp() * 1e9) + LAG_MS * 1_000_000,
            )


def venue_key(venue: str, hour: int) -> str:
    return f"{at(hour):%Y-%m-%d-%H}:00|{venue}:{VENUE_CHANNELS[venue][0]}"


def venue_rows(store, venue: str) -> pl.DataFrame:
    with store.get_client() as client:
        return ct.read_range(
            client, store.database, "trades", venue, VENUE_CHANNELS[venue][0], DAY, DAY + timedelta(days=1)
        ).sort("seq")


@pytest.mark.parametrize("venue", ["BINANCE_UM", "OKX", "DERIBIT"])
def test_a_usdm_okx_or_deribit_hour_is_loaded_as_the_rest_parsers_store_it(root, store, rest_replay, venue):
    expected = tape(rest_replay, venue, 10)
    land_tape(root, venue, expected)
    with dg.DagsterInstance.ephemeral() as instance:
        result = materialize(instance, store, venue_key(venue, 10))
    got = venue_rows(store, venue).select(*STORED)
    assert got.height == expected.height > 20
    assert (
        got.to_dicts() == expected.select(*STORED).to_dicts()
    )  # ids, times, sizes (inverse: USD -> coin) as REST
    figures = metadata(result)
    assert (figures["trades"], figures["live_trades_from_landing"], figures["trades_from_refill"]) == (
        expected.height,
        expected.height,
        0,
    )
    assert figures["lag_p50_ms"] == LAG_MS and figures["coverage_loaded"] >= 1
    assert "data:image/svg+xml;base64," in figures["coverage"]
    assert checks_passed(result) == {
        "no_duplicate_trade_ids": True,
        "timestamps_inside_day": True,
        "prices_positive": True,
        "trade_ids_continuous": True,
        "live_matches_hourly": True,
    }  # no trades_live here: no live path ran


def test_reconciliation_counts_what_the_rest_refill_added_and_lists_book_gaps(root, store, rest_replay):
    from marketdata_assets.defs.live.assets import live_trades
    from marketdata_assets.defs.live.continuity import live_trade_id_refill
    from marketdata_assets.stores.clickhouse.live import reconciliation
    from tests.support.ticks_dagster import crypto_resources

    complete = tape(rest_replay, "OKX", 10)
    missed = complete["seq"].to_list()[10:17]  # the live path missed 7 trades (a span)
    land_tape(root, "OKX", complete.filter(~pl.col("seq").is_in(missed)))
    with LandingWriter(root, "OKX") as writer:  # a book gap in the hour, as the collector marks it
        writer.marker(
            VENUE_CHANNELS["OKX"][2],
            "c1",
            "gap",
            int(at(10, 600).timestamp() * 1e9),
            cause="checksum",
            seq=42,
        )
    key = venue_key("OKX", 10)
    with dg.DagsterInstance.ephemeral() as instance:
        loaded = materialize(instance, store, key)
        assert checks_passed(loaded)["trade_ids_continuous"] is False
        before = metadata(loaded)
        assert (before["live_trades_from_landing"], before["trades_from_refill"]) == (complete.height - 7, 0)
        assert [(g["cause"], g["seq"], g["channel"]) for g in before["book_gaps"]] == [
            ("checksum", 42, "BTC-USDT@books")
        ]

        hours = [
            key.split("|")[0],
            venue_key("OKX", 11).split("|")[0],
        ]  # hours 10 and 11: one run, each its own
        refilled = dg.materialize(
            [live_trades, live_trade_id_refill],
            selection=[dg.AssetKey("live_trade_id_refill")],
            resources={"clickhouse": store, **crypto_resources(rest_replay.base_url)},
            instance=instance,
            tags={
                "dagster/asset_partition_range_start": hours[0],
                "dagster/asset_partition_range_end": hours[1],
            },
            run_config={"ops": {"live_trade_id_refill": {"config": {"instruments": [key.split("|")[1]]}}}},
        )
        assert refilled.success
        after = {
            e.partition: {k: v.value for k, v in e.materialization.metadata.items()}
            for e in refilled.get_asset_materialization_events()
        }
        assert [(after[h]["live_trades_from_landing"], after[h]["trades_from_refill"]) for h in hours] == [
            (complete.height - 7, 7),
            (0, 0),
        ]
        assert {
            (m["run_trades_added"], m["run_trades_from_refill"], m["run_partitions"]) for m in after.values()
        } == {(7, 7, 2)}
        assert venue_rows(store, "OKX").select(*STORED).to_dicts() == complete.select(*STORED).to_dicts()

        again = materialize(
            instance, store, key
        )  # the hour loaded again: the refill's trades stay, counted as such
        assert (metadata(again)["kept_from_store"], metadata(again)["trades_from_refill"]) == (7, 7)
        assert checks_passed(again)["trade_ids_continuous"] is True
    with store.get_client() as client:
        recorded = reconciliation(client, store.database, "OKX", "BTC-USDT", at(10), at(11))
    assert recorded == {at(10): (complete.height - 7, 7, 1)}


def store_rest_day_end(store, rows: pl.DataFrame) -> None:
    """The day before DAY as a REST load (source OKX: the tradeId sequence the live loads join) ending
    with `rows`, so DAY's first id is compared with its last."""
    from marketdata_assets.stores.clickhouse import writer

    day = DAY - timedelta(days=1)
    frame = rows.with_columns(venue=pl.lit("OKX"), instrument=pl.lit("BTC-USDT"))
    with store.get_client() as client:
        written = writer.write_slice(client, store.database, "trades", frame, "OKX", "BTC-USDT", day, "rest")
        now = datetime.now(UTC)
        writer.log_ingest(
            client,
            store.database,
            [
                {
                    "run_id": "rest",
                    "source": "OKX",
                    "dataset": "trades",
                    "venue": "OKX",
                    "instrument": "BTC-USDT",
                    "day": day,
                    "rows": frame.height,
                    "outcome": "ok",
                    "load_id": written.load_id,
                    "started_at": now,
                    "finished_at": now,
                }
            ],
        )


def trade_id_verdict(result) -> dg.AssetCheckEvaluation:
    (found,) = [
        e.event_specific_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
        and e.event_specific_data.asset_check_key.name == "trade_ids_continuous"
    ]
    return found


def test_a_first_hour_with_ids_before_capture_passes_and_its_sensor_run_refills_them(
    root, store, rest_replay
):
    from marketdata_assets.defs.live.assets import live_trades
    from marketdata_assets.defs.live.checks import live_checks
    from marketdata_assets.defs.live.continuity import live_trade_id_refill
    from marketdata_assets.defs.live.sensors import live_landing_hours
    from tests.support.ticks_dagster import crypto_resources

    store_rest_day_end(store, tape(rest_replay, "OKX", -1))  # the day before: 23:00-24:00 of it
    captured = tape(rest_replay, "OKX", 10)  # the collector started at 10:00: hours 0-9 never landed
    with LandingWriter(root, "OKX") as writer:
        writer.marker(VENUE_CHANNELS["OKX"][1], "c1", "connect", int(at(10, 5).timestamp() * 1e9))
    land_tape(root, "OKX", captured)
    before = pl.concat([tape(rest_replay, "OKX", h) for h in range(10)])
    assert before.height > 100
    assets = [live_trades, live_trade_id_refill, *live_checks]
    resources = {"clickhouse": store, **crypto_resources(rest_replay.base_url)}
    with dg.DagsterInstance.ephemeral() as instance:
        (request,) = live_landing_hours(dg.build_sensor_context(instance=instance)).run_requests
        assert request.run_config["ops"]["live_trade_id_refill"]["config"]["before_capture"] is True

        def run(selection, run_config):  # the sensor's hour, as its run or a part of it
            return dg.materialize(
                assets,
                selection=selection,
                resources=resources,
                instance=instance,
                partition_key=request.partition_key,
                run_config=run_config,
            )

        ops = request.run_config["ops"]
        # the hour's load alone first: what its check says before the refill
        loaded = run([dg.AssetKey("live_trades")], {"ops": {"live_trades": ops["live_trades"]}})
        verdict = trade_id_verdict(loaded)
        first = captured["seq"].min()
        assert verdict.passed, verdict.description
        assert (
            f"OKX:BTC-USDT: {before.height:,} tradeId id(s) before capture (from {at(10):%H:%M} UTC) "
            f"not stored: {before['seq'].min()}-{first - 1}"
        ) in verdict.description
        assert verdict.metadata["refill_command"].value.startswith(
            f"dg launch --assets live_trade_id_refill --partition {request.partition_key} "
        )

        whole_run = run(request.asset_selection, request.run_config)  # the load, checks, refill
        assert whole_run.success
        refill = {
            k: v.value
            for e in whole_run.get_asset_materialization_events()
            if e.asset_key == dg.AssetKey("live_trade_id_refill")
            for k, v in e.materialization.metadata.items()
        }
        assert (refill["run_trades_added"], refill["run_ids_still_missing"]) == (before.height, 0)
        assert refill["run_holes"] == "the ids before capture only"
        whole = pl.concat([before, captured]).select(*STORED).to_dicts()
        assert venue_rows(store, "OKX").select(*STORED).to_dicts() == whole

        # a second refill: nothing missing, nothing asked, nothing added
        again = run(
            [dg.AssetKey("live_trade_id_refill")],
            {"ops": {"live_trade_id_refill": ops["live_trade_id_refill"]}},
        )
        metadata = {
            k: v.value
            for k, v in again.get_asset_materialization_events()[0].materialization.metadata.items()
        }
        assert (metadata["run_trades_added"], metadata["run_requests"]) == (0, 0)
        assert venue_rows(store, "OKX").height == len(whole)
        reloaded = dg.materialize(
            assets,
            selection=[dg.AssetKey("live_trades")],
            resources=resources,
            instance=instance,
            partition_key=request.partition_key,
            run_config={"ops": {"live_trades": request.run_config["ops"]["live_trades"]}},
        )
        assert checks_passed(reloaded)["trade_ids_continuous"] is True
        assert "before capture" not in (trade_id_verdict(reloaded).description or "")


def test_the_sensor_requests_every_venues_closed_hours(root):
    from marketdata_assets.defs.live.sensors import live_landing_hours

    for venue, (instrument, channel, book) in VENUE_CHANNELS.items():
        with LandingWriter(root, venue) as writer:
            row = {
                "ts": at(10, 5),
                "trade_id": "7",
                "price": 100.0,
                "quantity": 1.0,
                "amount": 100.0,
                "side": "buy",
                "seq": 7,
            }
            writer.frame(channel, "c1", venue_frame(venue, row), int(at(10, 5).timestamp() * 1e9))
            writer.frame(
                book, "c1", "{}", int(at(10, 5).timestamp() * 1e9)
            )  # a book channel: never requested
    with LandingWriter(root, "BINANCE") as writer:
        land(writer, "c1", range(1, 3), 10)
    with dg.DagsterInstance.ephemeral() as instance:
        result = live_landing_hours(dg.build_sensor_context(instance=instance))
    (request,) = result.run_requests  # one run: the hour, its four venues' instruments
    assert request.partition_key == pkey(10).split("|")[0]
    assert request.run_config["ops"]["live_trades"]["config"]["instruments"] == [
        "BINANCE:BTCUSDT",
        "BINANCE_UM:BTCUSDT",
        "DERIBIT:BTC-PERPETUAL",
        "OKX:BTC-USDT",
    ]


def test_the_live_hours_start_where_the_setting_says(monkeypatch):
    from marketdata_assets.defs.live.partitions import live_start

    assert live_start() == "2026-11-01-00:00"  # the default: this project's capture began then
    monkeypatch.setenv("LIVE_PARTITIONS_START", "2025-03-04")
    assert live_start() == "2025-03-04-00:00"
    with pytest.raises(ValueError, match="LIVE_PARTITIONS_START='2025-03-04-07:00'"):
        live_start("2025-03-04-07:00")
