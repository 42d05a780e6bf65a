"""Trade-id continuity: the check names the instrument, day and missing id ranges of a slice with holes
(inside the day and at midnight) and passes on complete slices; the refill fetches exactly the missing
ranges from the venue replays over real HTTP and completes the slices (a second run sends no request).
Slices are loaded the way the assets load them (the ingest engine: REST pages, or a dump file with
lines removed), on the real embedded ClickHouse."""

from __future__ import annotations

from datetime import date, timedelta

import dagster as dg
import httpx
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from marketdata_assets.core.http import SourceRequestError
from marketdata_assets.datasets.frames import day_window
from marketdata_assets.datasets.slices import Feed, Job, SliceKey
from marketdata_assets.defs._common.partitions import crypto_key
from marketdata_assets.defs.archives.checks import archive_checks
from marketdata_assets.defs.crypto.continuity import trade_id_refill
from marketdata_assets.ingest.dumps import dump_feed
from marketdata_assets.ingest.engine import Engine
from marketdata_assets.quality.continuity import IdHole, find_holes, spans
from marketdata_assets.quality.slice_checks import TRADE_IDS_CONTINUOUS as CHECK
from marketdata_assets.replay.binance_dumps import generate_trades, write_dump
from marketdata_assets.replay.crypto import ReplayConfig
from marketdata_assets.sources.binance import BinanceClient
from marketdata_assets.stores.clickhouse import tables as ct
from marketdata_assets.stores.clickhouse import writer
from tests.support.ticks_common import FAST, crypto_replay, run
from tests.support.ticks_dagster import (
    DAY,
    RANGE_END,
    RANGE_START,
    UNUSED,
    crypto_resources,
    stock_resources,
    ticks_definitions,
    view_rows,
)

PER_DAY = 2000  # REST tape trades per instrument-day
DUMP_TRADES = 3000  # individual trades per dump day
DUMP_SEED = 7
INSTRUMENTS = ["BINANCE:BTCUSDT", "BINANCE:ETHUSDT", "OKX:BTC-USDT", "DERIBIT:BTC-PERPETUAL"]
TRADES_KEY = dg.AssetKey("crypto_trades")


server, _clean = crypto_replay(
    ReplayConfig(
        seed=21,
        trades_per_day=PER_DAY,
        dump_trades_per_day=DUMP_TRADES,
        dump_seed_by_instrument={"ETHUSDT": DUMP_SEED},
    )
)


@pytest.fixture
def store(server, clickhouse):
    server.clear_faults()
    server.reset()
    with clickhouse.get_client() as client:
        ct.ensure_tables(client, clickhouse.database)
    return clickhouse


@pytest.fixture
def instance():
    with dg.DagsterInstance.ephemeral() as inst:
        yield inst


def materialize(
    instance, server, store, selection, key: str, config: dict | None = None
) -> dg.ExecuteInProcessResult:
    """A run of the day x venue partition of `key` ('YYYY-MM-DD|VENUE:INSTRUMENT')."""
    resources = {**stock_resources(UNUSED), **crypto_resources(server.base_url), "clickhouse": store}
    partition = key.split(":")[0]
    return dg.materialize(
        [*ticks_definitions(), *archive_checks, trade_id_refill],
        resources=resources,
        instance=instance,
        selection=selection,
        tags={RANGE_START: partition, RANGE_END: partition},
        run_config={"ops": config or {}},
        raise_on_error=False,
    )


def check(instance, server, store, key: str) -> dg.AssetCheckEvaluation:
    """The trade_ids_continuous evaluation of crypto_trades' venue-day of `key` (a checks-only run)."""
    result = materialize(
        instance, server, store, dg.AssetSelection.checks(dg.AssetCheckKey(TRADES_KEY, CHECK)), key
    )
    assert result.success
    (evaluation,) = [e for e in result.get_asset_check_evaluations() if e.check_name == CHECK]
    assert evaluation.partition == key.split(":")[0]
    return evaluation


def refill_run(instance, server, store, key: str) -> dict:
    """trade_id_refill of the instrument of `key` alone."""
    config = {"trade_id_refill": {"config": {"instruments": [key.split("|")[1]]}}}
    result = materialize(instance, server, store, [dg.AssetKey("trade_id_refill")], key, config)
    assert result.success
    (event,) = result.get_asset_materialization_events()
    return {k: v.value for k, v in event.materialization.metadata.items()}


def refill_days_venues(instance, server, store, key: str, last: str) -> dict[str, dict]:
    """trade_id_refill of the instrument of `key` alone, in one run over the partitions from its day x venue
    to `last`: each partition's metadata."""
    config = {"trade_id_refill": {"config": {"instruments": [key.split("|")[1]]}}}
    resources = {**stock_resources(UNUSED), **crypto_resources(server.base_url), "clickhouse": store}
    result = dg.materialize(
        [*ticks_definitions(), *archive_checks, trade_id_refill],
        resources=resources,
        instance=instance,
        selection=[dg.AssetKey("trade_id_refill")],
        run_config={"ops": config},
        tags={RANGE_START: key.split(":")[0], RANGE_END: last},
        raise_on_error=False,
    )
    assert result.success
    return {
        e.partition: {k: v.value for k, v in e.materialization.metadata.items()}
        for e in result.get_asset_materialization_events()
    }


def without(frame: pl.DataFrame, holes) -> pl.DataFrame:
    keep = pl.lit(True)
    for lo, hi in holes:
        keep &= ~pl.col("seq").is_between(lo, hi)
    return frame.filter(keep)


def load_rest(store, server, venue: str, instrument: str, day: date, holes=()) -> None:
    """The day as the crypto_ticks asset loads it (the engine, the venue's REST pages), minus the
    trades whose ids are in `holes`: what a load that lost pages stores."""

    async def fetch(api, job):
        start, end = day_window(day)
        return without(await api.trades(instrument, start, end), holes)

    feed = Feed(
        venue,
        [Job((SliceKey("trades", venue, instrument, day),))],
        fetch,
        crypto_resources(server.base_url)[venue.lower()].make_client,
    )
    report = Engine(store.get_client, store.database, "load").run([[feed]])
    assert not report.failures(), report.failures_table()


def load_dump(store, tmp_path, instrument: str, day: date, holes=()) -> pl.DataFrame:
    """A data.binance.vision trades file with the lines of `holes` removed, loaded by the dump feed
    (the binance_dump_trades asset's path). Returns the complete file's trades."""
    complete = generate_trades(instrument, day, DUMP_TRADES, seed=DUMP_SEED)
    write_dump(tmp_path / f"{instrument}-trades-{day}.csv", without(complete, holes))
    key = SliceKey("trades", "BINANCE", instrument, day)
    feed = dump_feed(tmp_path, [key], engine_reads_files=True, database=store.database, run_id="dump")
    report = Engine(store.get_client, store.database, "dump").run([[feed]])
    assert not report.failures(), report.failures_table()
    return complete


def stored(store, venue: str, instrument: str, day: date) -> pl.DataFrame:
    return view_rows(store, "trades", venue, instrument, day).sort("seq")


def requests(server, path: str) -> list[dict]:
    return [r for r in server.requests() if r["path"] == path]


# ---- the check ------------------------------------------------------------------------------


def test_a_complete_slice_passes_and_one_with_holes_fails_naming_instrument_day_and_ranges(
    server, store, instance
):
    load_rest(store, server, "BINANCE", "BTCUSDT", DAY)
    first = int(server.truth_trades("BINANCE", "ETHUSDT", DAY)["seq"][0])
    load_rest(
        store,
        server,
        "BINANCE",
        "ETHUSDT",
        DAY,
        holes=[(first + 100, first + 149), (first + 700, first + 700)],
    )

    day = check(instance, server, store, crypto_key(DAY, "BINANCE:BTCUSDT"))  # the day of BINANCE: both
    assert not day.passed and day.metadata["instruments_failed"].value == 1
    assert day.description == (
        f"1 of 3 instrument(s) failed (BINANCE:ETHUSDT): BINANCE:ETHUSDT 2025-01-15: "
        f"51 aggTrade id(s) missing in 2 range(s): {first + 100}-{first + 149}, {first + 700}"
    )
    assert "| BINANCE:BTCUSDT | passed |" in day.metadata["by_instrument"].value
    assert "| BINANCE:ETHUSDT | FAILED |" in day.metadata["by_instrument"].value
    assert day.metadata["missing_ids"].value == 51 and day.metadata["hole_ranges"].value == 2
    assert (
        day.metadata["rows_checked"].value == 2 * PER_DAY - 51
        and day.metadata["id_sequence"].value == "aggTrade"
    )
    assert f"| {first + 100} | {first + 149} | 50 | inside the day |" in day.metadata["holes"].value


def test_first_ranges_shown_repeated_ids_hide_no_hole_and_unknown_sources_are_not_checked(store):
    day, first = DAY, 5_000_000
    frame = generate_trades("SOLUSDT", day, 400, seed=1).with_columns(
        (pl.col("seq") - pl.col("seq").min() + first).alias("seq")
    )
    holed = without(frame, [(first + 10 * k, first + 10 * k) for k in range(1, 31)])  # 30 one-id holes
    repeated = frame.filter(pl.col("seq") != first + 5)  # one id missing ...
    repeated = pl.concat(
        [repeated, repeated.filter(pl.col("seq") == first + 6).with_columns(pl.lit("dup").alias("trade_id"))]
    )  # ... and one repeated: same count
    with store.get_client() as client:
        for instrument, rows, provider in (
            ("SOLUSDT", holed, "BINANCE"),
            ("XRPUSDT", repeated, "BINANCE"),
            ("BNBUSDT", frame, ""),
        ):
            data = rows.with_columns(pl.lit(instrument).alias("instrument"))
            result = writer.write_slice(
                client, store.database, "trades", data, "BINANCE", instrument, day, "t"
            )
            if provider:  # what the engine logs for a load; BNBUSDT's load has no log row
                writer.log_ingest(
                    client,
                    store.database,
                    [
                        {
                            "run_id": "t",
                            "source": provider,
                            "dataset": "trades",
                            "venue": "BINANCE",
                            "instrument": instrument,
                            "day": day,
                            "outcome": "ok",
                            "load_id": result.load_id,
                            "started_at": day_window(day)[0],
                            "finished_at": day_window(day)[0],
                        }
                    ],
                )
        found = find_holes(
            client,
            store.database,
            [SliceKey("trades", "BINANCE", i, day) for i in ("SOLUSDT", "XRPUSDT", "BNBUSDT", "ADAUSDT")],
            max_ranges=3,
        )
    sol, xrp, bnb = (found[crypto_key(day, f"BINANCE:{i}")] for i in ("SOLUSDT", "XRPUSDT", "BNBUSDT"))
    assert (sol.missing, sol.ranges, [str(h) for h in sol.holes]) == (
        30,
        30,
        [str(first + 10), str(first + 20), str(first + 30)],
    )
    assert sol.summary().endswith(f"{first + 10}, {first + 20}, {first + 30} and 27 more range(s)")
    assert xrp.rows == 400 and (xrp.missing, [str(h) for h in xrp.holes]) == (1, [str(first + 5)])
    assert bnb.sequence is None and bnb.passed and "no ingest_log row names the source" in bnb.summary()
    assert crypto_key(day, "BINANCE:ADAUSDT") not in found  # no active load


def test_spans_fetch_holes_less_than_a_page_apart_at_once():
    holes = [
        IdHole("OKX", "BTC-USDT", DAY, lo, hi) for lo, hi in ((500, 520), (100, 110), (150, 160), (900, 900))
    ]
    assert spans(holes, 100) == [(100, 160), (500, 520), (900, 900)]
    assert spans(holes, 1000) == [(100, 900)]


# ---- the refill -----------------------------------------------------------------------------


def test_refill_fetches_exactly_the_missing_agg_ids_and_a_second_run_fetches_nothing(server, store, instance):
    truth = server.truth_trades("BINANCE", "ETHUSDT", DAY)
    first = int(truth["seq"][0])
    load_rest(
        store,
        server,
        "BINANCE",
        "ETHUSDT",
        DAY,
        holes=[(first + 100, first + 149), (first + 1500, first + 1800)],
    )
    key = crypto_key(DAY, "BINANCE:ETHUSDT")
    server.reset()

    runs = refill_days_venues(
        instance, server, store, key, crypto_key(DAY, "BINANCE_UM")
    )  # BINANCE_UM: no slice
    pages = requests(server, "/api/v3/aggTrades")
    assert [(r["query"]["fromId"], r["query"]["limit"]) for r in pages] == [
        (str(first + 100), "50"),
        (str(first + 1500), "301"),
    ]  # the two holes, nothing else
    assert len(server.requests()) == 2
    done, other = runs[crypto_key(DAY, "BINANCE")], runs[crypto_key(DAY, "BINANCE_UM")]
    assert (done["ids_missing_before"], done["trades_added"], done["ids_still_missing"]) == (351, 351, 0)
    assert (other["slices_checked"], other["trades_added"], other["run_trades_added"]) == (
        0,
        0,
        351,
    )  # each its own
    assert done["run_partitions"] == other["run_partitions"] == 2
    after = stored(store, "BINANCE", "ETHUSDT", DAY)
    assert after.height == truth.height == PER_DAY and after["trade_id"].is_unique().all()
    assert_frame_equal(after, truth.sort("seq"))
    assert check(instance, server, store, key).passed

    server.reset()
    again = refill_run(instance, server, store, key)
    assert server.requests() == [] and again["requests"] == 0 and again["trades_added"] == 0
    assert stored(store, "BINANCE", "ETHUSDT", DAY).height == PER_DAY


def test_a_dump_with_lines_removed_is_refilled_from_historical_trades_in_microseconds(
    server, store, instance, tmp_path
):
    first = int(generate_trades("ETHUSDT", DAY, 1, seed=DUMP_SEED)["seq"][0])
    complete = load_dump(
        store, tmp_path, "ETHUSDT", DAY, holes=[(first + 1, first + 1), (first + 1200, first + 2450)]
    )
    key = crypto_key(DAY, "BINANCE:ETHUSDT")
    evaluation = check(instance, server, store, key)
    assert not evaluation.passed and evaluation.metadata["id_sequence"].value == "trade"
    assert evaluation.description.endswith(
        f"BINANCE:ETHUSDT 2025-01-15: 1,252 trade id(s) missing in 2 range(s): "
        f"{first + 1}, {first + 1200}-{first + 2450}"
    )
    server.reset()

    done = refill_run(instance, server, store, key)
    pages = requests(server, "/api/v3/historicalTrades")
    assert [(r["query"]["fromId"], r["query"]["limit"]) for r in pages] == [
        (str(first + 1), "1"),
        (str(first + 1200), "1000"),
        (str(first + 2200), "251"),
    ]
    assert server.state()["weight_used"] == 25 * 3  # historicalTrades weighs 25 a request
    assert done["trades_added"] == 1252
    after = stored(store, "BINANCE", "ETHUSDT", DAY)
    assert_frame_equal(after, complete)  # the file's microsecond times, quoteQty as amount: the same rows
    assert check(instance, server, store, key).passed
    server.reset()
    assert refill_run(instance, server, store, key)["requests"] == 0 and server.requests() == []


def test_a_hole_across_midnight_is_refilled_into_both_days(server, store, instance):
    before = DAY - timedelta(days=1)
    last_before = int(server.truth_trades("BINANCE", "BTCUSDT", before)["seq"][-1])
    first = last_before + 1
    load_rest(store, server, "BINANCE", "BTCUSDT", before, holes=[(last_before - 29, last_before)])
    load_rest(store, server, "BINANCE", "BTCUSDT", DAY, holes=[(first, first + 19)])
    key = crypto_key(DAY, "BINANCE:BTCUSDT")

    assert check(
        instance, server, store, crypto_key(before, "BINANCE:BTCUSDT")
    ).passed  # its day before is not stored
    evaluation = check(instance, server, store, key)
    assert not evaluation.passed
    assert evaluation.description.endswith(
        f"BINANCE:BTCUSDT 2025-01-15: 50 aggTrade id(s) missing in 1 range(s): "
        f"{last_before - 29}-{first + 19} (at midnight)"
    )
    assert evaluation.metadata["previous_day_last_id"].value == str(last_before - 30)
    server.reset()

    done = refill_run(instance, server, store, key)
    assert [r["query"]["fromId"] for r in requests(server, "/api/v3/aggTrades")] == [str(last_before - 29)]
    assert done["trades_added"] == 50 and done["ids_still_missing"] == 0
    for day in (before, DAY):
        assert_frame_equal(
            stored(store, "BINANCE", "BTCUSDT", day),
            server.truth_trades("BINANCE", "BTCUSDT", day).sort("seq"),
        )
    assert check(instance, server, store, key).passed


def test_days_of_different_id_sequences_are_not_compared_across_midnight(server, store, tmp_path):
    before = DAY - timedelta(days=1)
    load_dump(store, tmp_path, "ETHUSDT", before)  # individual trade ids
    load_rest(store, server, "BINANCE", "ETHUSDT", DAY)  # aggregate ids
    with store.get_client() as client:
        found = find_holes(client, store.database, [SliceKey("trades", "BINANCE", "ETHUSDT", DAY)])
    ids = found[crypto_key(DAY, "BINANCE:ETHUSDT")]
    assert ids.passed and ids.sequence.name == "aggTrade" and ids.previous_last_id is None


def test_okx_and_deribit_holes_are_refilled_by_id(server, store, instance):
    holes = {}
    for venue, instrument in (("OKX", "BTC-USDT"), ("DERIBIT", "BTC-PERPETUAL")):
        first = int(server.truth_trades(venue, instrument, DAY)["seq"][0])
        holes[venue] = [(first + 10, first + 260), (first + 1990, first + 1990)]
        load_rest(store, server, venue, instrument, DAY, holes=holes[venue])
    server.reset()
    for venue, instrument in (("OKX", "BTC-USDT"), ("DERIBIT", "BTC-PERPETUAL")):
        done = refill_run(instance, server, store, crypto_key(DAY, f"{venue}:{instrument}"))
        assert done["trades_added"] == 252 and done["ids_still_missing"] == 0
        after = stored(store, venue, instrument, DAY)
        truth = server.truth_trades(venue, instrument, DAY).sort("seq")
        assert_frame_equal(after, truth, check_exact=False, rel_tol=1e-12)
    okx = requests(server, "/api/v5/market/history-trades")
    (_, hi), (single, _) = holes["OKX"]
    assert [(r["query"]["type"], r["query"]["after"]) for r in okx] == [
        ("1", str(hi + 1)),
        ("1", str(hi - 99)),
        ("1", str(hi - 199)),
        ("1", str(single + 1)),
    ]
    deribit = requests(server, "/api/v2/public/get_last_trades_by_instrument")
    assert [(r["query"]["start_seq"], r["query"]["end_seq"]) for r in deribit] == [
        (str(lo), str(hi)) for lo, hi in holes["DERIBIT"]
    ]
    server.reset()
    assert refill_run(instance, server, store, crypto_key(DAY, "OKX:BTC-USDT"))["requests"] == 0


# ---- the venue: historicalTrades and the client's id paging ---------------------------------


def test_historical_trades_replay_answers_the_dump_ids_in_the_venues_format_and_errors(server):
    server.reset()
    day = generate_trades("ETHUSDT", DAY, DUMP_TRADES, seed=DUMP_SEED)
    first = int(day["seq"][0])
    base = f"{server.base_url}/api/v3/historicalTrades"
    body = httpx.get(base, params={"symbol": "ETHUSDT", "fromId": first + 2998, "limit": 3}).json()
    assert body[0] == {
        "id": first + 2998,
        "price": f"{day['price'][2998]:.8f}",
        "qty": f"{day['quantity'][2998]:.8f}",
        "quoteQty": f"{day['amount'][2998]:.8f}",
        "time": day["ts"].dt.epoch("ms")[2998],
        "isBuyerMaker": day["side"][2998] == "sell",
        "isBestMatch": True,
    }
    next_day = int(generate_trades("ETHUSDT", DAY + timedelta(days=1), 1, seed=DUMP_SEED)["seq"][0])
    assert [t["id"] for t in body] == [
        first + 2998,
        first + 2999,
        next_day,
    ]  # ids the files do not have: skipped
    answer = httpx.get(base, params={"symbol": "ETHUSDT", "fromId": "12e3"})
    assert (answer.status_code, answer.json()["code"]) == (400, -1100)
    answer = httpx.get(base, params={"symbol": "NOPE", "fromId": first})
    assert (answer.status_code, answer.json()) == (400, {"code": -1121, "msg": "Invalid symbol."})
    assert len(httpx.get(base, params={"symbol": "ETHUSDT", "fromId": first, "limit": 5000}).json()) == 1000
    assert server.state()["weight_used"] == 4 * 25


def test_the_client_pages_ids_and_drops_what_lies_past_the_range(server):
    day = generate_trades("ETHUSDT", DAY, DUMP_TRADES, seed=DUMP_SEED)
    first = int(day["seq"][0])

    async def fetch():
        async with BinanceClient(
            server.base_url, retry=FAST, requests_per_minute=60_000, page_limit=100
        ) as api:
            frame = await api.trades_by_id(
                "ETHUSDT", first + 50, first + 300, day=DAY, time_unit="MICROSECOND"
            )
            with pytest.raises(SourceRequestError, match="Invalid symbol"):
                await api.trades_by_id("NOPE", 1, 2)
            return frame, api.stats.requests

    frame, sent = run(fetch())
    assert sent == 3 + 1 and frame["seq"].to_list() == list(range(first + 50, first + 301))
    assert_frame_equal(frame, day.slice(50, 251))


def test_a_refill_on_a_store_nobody_bootstrapped_creates_the_tables_before_anything(clickhouse):
    """trade_id_refill writes slices: run alone on a fresh database it bootstraps the store first,
    like every other writer, instead of failing on a missing table."""
    from marketdata_assets.quality.continuity import refill

    report = refill(
        clickhouse.get_client,
        clickhouse.database,
        "run-fresh",
        [SliceKey("trades", "BINANCE", "BTCUSDT", date(2024, 3, 1))],
        {},
    )
    assert report.failures() == []
    with clickhouse.get_client() as client:
        assert client.command(f"EXISTS TABLE `{clickhouse.database}`.`{ct.LOADS}`") == 1
        assert client.command(f"EXISTS TABLE `{clickhouse.database}`.trades") == 1
