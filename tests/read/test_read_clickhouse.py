"""The read API on the ClickHouse datasets (the real embedded engine), on data the ingest engine loaded
from the crypto replay: reads return exactly the rows the checks count (and the venues served);
a re-load that supersedes a slice reads as the new rows by default and as the old ones `as_of` a
time before it; compaction makes that old state unreadable with an error naming the slice; a store
whose history is gone gets it back from `loads` and `ingest_log`; bad names are refused before any
SQL; an empty range is an empty frame of the dataset's schema; a lock held by another process is
named."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import time
import warnings
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from marketdata_assets.datasets.frames import day_window, spec_for
from marketdata_assets.datasets.slices import SliceKey
from marketdata_assets.quality.slices import PRICES_POSITIVE, TIMESTAMPS_INSIDE_DAY, count, slice_scope
from marketdata_assets.read import CompactedAway, EmbeddedLockTimeout, MissingDays, Reader, conventions
from marketdata_assets.read.clickhouse import ID_SEQUENCE
from marketdata_assets.read.conventions import ADJUSTMENT, LABEL
from marketdata_assets.replay.crypto import CryptoReplayServer, ReplayConfig
from marketdata_assets.sources.config import load_sources_config
from marketdata_assets.sources.venues import venue_client
from marketdata_assets.stores.clickhouse import history
from marketdata_assets.stores.clickhouse import tables as ct
from tests.read.conftest import DAY, FAST, ingest

START, END = day_window(DAY)
PAIRS = ["BTCUSDT", "ETHUSDT"]


def fetched(base_url: str, venue: str, dataset: str, instrument: str) -> pl.DataFrame:
    """What the venue's client returns for DAY from the same replay, in the table's order."""

    async def go():
        async with venue_client(venue, base_url, retry=FAST, requests_per_minute=60_000) as api:
            return await getattr(api, dataset)(instrument, START, END)

    return asyncio.run(go()).sort(list(spec_for(dataset).order_by))


@pytest.fixture
def first_load(store):
    """Trades of two Binance pairs and bars of one, funding of a USD-M perpetual, for DAY (seed 2);
    returns what the replay served."""
    with CryptoReplayServer(ReplayConfig(seed=2, trades_per_day=400)) as server:
        ingest(store, server.base_url, "BINANCE", "trades", PAIRS)
        ingest(store, server.base_url, "BINANCE", "bars_1m", ["BTCUSDT"])
        ingest(store, server.base_url, "BINANCE_UM", "funding", ["BTCUSDT"])
        served = {
            (d, v, i): fetched(server.base_url, v, d, i)
            for d, v, i in [("trades", "BINANCE", p) for p in PAIRS]
            + [("bars_1m", "BINANCE", "BTCUSDT"), ("funding", "BINANCE_UM", "BTCUSDT")]
        }
    return served


def test_a_read_returns_exactly_the_rows_the_checks_count_and_the_venue_served(store, reader, first_load):
    for (dataset, venue, instrument), served in first_load.items():
        got = reader.dataset(dataset, venue, instrument, START, END)
        stated = (
            {"label": LABEL, "adjustment": ADJUSTMENT}
            if spec_for(dataset).bars
            else {"id_sequence": ID_SEQUENCE}
            if dataset == "trades"
            else {}
        )
        assert got.schema == pl.Schema(
            spec_for(dataset).schema | stated
        )  # bars say their convention, trades their ids
        if spec_for(dataset).bars:
            assert got["label"].unique().to_list() == ["start"] and got["adjustment"].unique().to_list() == [
                "none"
            ]
        if dataset == "trades":  # Binance's REST trades: aggregate ids
            assert got["id_sequence"].unique().to_list() == ["aggTrade"]
        assert_frame_equal(got.drop(*stated), served.select(got.drop(*stated).columns))
        with store.get_client() as client:
            rule = PRICES_POSITIVE.get(dataset) or TIMESTAMPS_INSIDE_DAY[dataset]
            key = f"{DAY}|{venue}:{instrument}"
            scope = slice_scope(store.database, dataset, [SliceKey(dataset, venue, instrument, DAY)])
            checked = count(client, store.database, rule, scope)[key]
        assert checked.rows_checked == got.height > 0
    both = reader.trades("BINANCE", PAIRS, START, END)
    assert both.height == sum(first_load[("trades", "BINANCE", p)].height for p in PAIRS)
    assert both["instrument"].unique().sort().to_list() == PAIRS
    # a part of the day: the same rows as filtering the whole day; a projection keeps the key order (no id
    # read: no id sequence to state)
    noon = START + timedelta(hours=12)
    part = reader.trades("BINANCE", "btcusdt", noon, noon + timedelta(hours=3), columns=["price", "ts"])
    whole = first_load[("trades", "BINANCE", "BTCUSDT")]
    assert_frame_equal(
        part,
        whole.filter(pl.col("ts").is_between(noon, noon + timedelta(hours=3), closed="left")).select(
            "price", "ts"
        ),
    )


def test_days_with_nothing_stored_warn_naming_them_and_bars_read_in_another_label_and_zone(
    reader, first_load
):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the loaded day: no warning
        reader.trades("BINANCE", PAIRS, START, END)
    with pytest.warns(MissingDays) as warned:
        wide = reader.trades("BINANCE", PAIRS, START - timedelta(days=2), END + timedelta(days=1))
    assert wide.height == reader.trades("BINANCE", PAIRS, START, END).height
    before, after = DAY - timedelta(days=2), DAY + timedelta(days=1)
    assert warned[0].message.missing == {p: [before, before + timedelta(days=1), after] for p in PAIRS}
    assert f"BTCUSDT {before}..{before + timedelta(days=1)}, {after}" in str(warned[0].message)
    assert warned[0].filename == __file__  # the warning names the caller's line, not the read package's
    with pytest.warns(MissingDays) as every:  # None: the instruments stored in the range
        reader.funding("BINANCE_UM", None, START, END + timedelta(days=1))
    assert every[0].message.missing == {"BTCUSDT": [after]}
    served = first_load[("bars_1m", "BINANCE", "BTCUSDT")]
    shanghai = reader.bars(
        "BINANCE", "BTCUSDT", "2025-01-15T08:01", "2025-01-15T09:01", label="end", tz="Asia/Shanghai"
    )  # 00:00-01:00 UTC, stamped by the bar's end
    assert shanghai.height == 60 and shanghai["label"].unique().to_list() == ["end"]
    assert shanghai["ts"].dtype == pl.Datetime("us", "Asia/Shanghai")
    assert_frame_equal(
        shanghai.select("ts", "close").with_columns(pl.col("ts").dt.convert_time_zone("UTC")),
        served.head(60).select(pl.col("ts") + timedelta(minutes=1), "close"),
    )
    with pytest.raises(ValueError, match="bar datasets only"):
        reader.trades("BINANCE", "BTCUSDT", START, END, label="end")
    with pytest.raises(ValueError, match="trading day"):
        conventions.shift(spec_for("daily_bars").bars, "end")


def test_a_reload_reads_as_the_new_rows_and_as_of_before_it_as_the_old_then_compaction_ends_that(
    store, reader, first_load
):
    before_any = datetime.now(UTC) - timedelta(hours=1)
    old = reader.trades("BINANCE", PAIRS, START, END)
    between = datetime.now(UTC)
    time.sleep(0.01)
    with CryptoReplayServer(ReplayConfig(seed=3, trades_per_day=500)) as server:
        ingest(store, server.base_url, "BINANCE", "trades", ["BTCUSDT"], run_id="run-2")
        new_btc = fetched(server.base_url, "BINANCE", "trades", "BTCUSDT")
    latest = reader.trades("BINANCE", PAIRS, START, END)
    eth = first_load[("trades", "BINANCE", "ETHUSDT")]
    assert_frame_equal(
        latest.drop("id_sequence"), pl.concat([new_btc, eth])
    )  # the re-load's rows, the other pair untouched
    assert not new_btc.equals(first_load[("trades", "BINANCE", "BTCUSDT")])
    with store.get_client() as client:  # the checks count the re-load's rows, as the read shows them
        counted = count(
            client,
            store.database,
            PRICES_POSITIVE["trades"],
            slice_scope(store.database, "trades", [SliceKey("trades", "BINANCE", p, DAY) for p in PAIRS]),
        )
    assert {k: r.rows_checked for k, r in counted.items()} == {
        f"{DAY}|BINANCE:{p}": latest.filter(pl.col("instrument") == p).height for p in PAIRS
    }
    assert_frame_equal(reader.trades("BINANCE", PAIRS, START, END, as_of=between), old)
    assert_frame_equal(reader.trades("BINANCE", PAIRS, START, END, as_of=datetime.now(UTC)), latest)
    empty = reader.trades("BINANCE", PAIRS, START, END, as_of=before_any)
    assert empty.height == 0 and empty.schema == pl.Schema(
        spec_for("trades").schema | {"id_sequence": ID_SEQUENCE}
    )
    flips = reader.loads("trades", "BINANCE", "BTCUSDT")
    assert flips["rows"].to_list() == [500, 400] and flips["active"].to_list() == [True, False]
    assert flips["run_id"].to_list() == ["run-2", "run-1"] and flips["source"].to_list() == ["BINANCE"] * 2
    assert flips["id_sequence"].to_list() == ["aggTrade"] * 2

    with store.get_client() as client:
        ct.compact_store(client, store.database, datasets=["trades"])
    with pytest.raises(CompactedAway) as error:
        reader.trades("BINANCE", PAIRS, START, END, as_of=between)
    message = str(error.value)
    assert f"BINANCE:BTCUSDT {DAY}" in message and "400 rows, 0 left" in message and "compaction" in message
    assert "ETHUSDT" not in message  # its load at that time is still the active one
    assert_frame_equal(
        reader.trades("BINANCE", "ETHUSDT", START, END, as_of=between).drop("id_sequence"), eth
    )
    assert_frame_equal(reader.trades("BINANCE", PAIRS, START, END), latest)  # the latest is never compacted


def test_a_store_without_history_gets_it_back_from_loads_and_the_ingest_log(store, first_load):
    between = datetime.now(UTC)
    time.sleep(0.01)
    with CryptoReplayServer(ReplayConfig(seed=3, trades_per_day=300)) as server:
        ingest(store, server.base_url, "BINANCE", "trades", ["BTCUSDT"], run_id="run-2")
    db = store.database
    with store.get_client() as client:
        client.command(f"DROP VIEW `{db}`.{history.LOAD_HISTORY_MV}")
        client.command(f"DROP TABLE `{db}`.{history.LOAD_HISTORY}")
        client.command(f"OPTIMIZE TABLE `{db}`.loads FINAL")  # the merge forgets the superseded flip
        assert (
            client.command(
                f"SELECT count() FROM `{db}`.loads WHERE instrument = 'BTCUSDT' AND dataset = 'trades'"
            )
            == 1
        )
        ct.ensure_tables(client, db)
        recorded = dict(
            client.query(
                f"SELECT recorded, count() FROM `{db}`.{history.LOAD_HISTORY} GROUP BY recorded"
            ).result_rows
        )
        assert recorded == {"loads": 4, "ingest_log": 1}  # the superseded BTCUSDT load: from the ingest log
        assert (
            ct.ensure_tables(client, db)
            and client.command(f"SELECT count() FROM `{db}`.{history.LOAD_HISTORY}") == 5
        )  # backfilled once
        with Reader(clickhouse_client=client, clickhouse_database=db) as reader:
            old = reader.trades("BINANCE", "BTCUSDT", START, END, as_of=between)
        assert_frame_equal(old.drop("id_sequence"), first_load[("trades", "BINANCE", "BTCUSDT")])
        # gone again: an as_of read rebuilds it the same way (a store no writer has touched since)
        client.command(f"DROP VIEW `{db}`.{history.LOAD_HISTORY_MV}")
        client.command(f"DROP TABLE `{db}`.{history.LOAD_HISTORY}")
        with Reader(clickhouse_client=client, clickhouse_database=db) as reader:
            assert_frame_equal(reader.trades("BINANCE", "BTCUSDT", START, END, as_of=between), old)


def test_bad_and_unstored_names_are_refused_and_an_empty_range_is_an_empty_frame_of_the_schema(
    reader, first_load
):
    for call, words in [
        (lambda: reader.trades("BINANCE", "BTC'; DROP TABLE trades --", START, END), "invalid instrument"),
        (lambda: reader.trades("BIN ANCE", "BTCUSDT", START, END), "invalid venue"),
        (lambda: reader.dataset("quotes", "BINANCE", "BTCUSDT", START, END), "unknown dataset"),
        (
            lambda: reader.trades("BINANCE", "BTCUSDT", START, END, columns=["price", "px"]),
            "no column(s) ['px']",
        ),
        (lambda: reader.trades("BINANCE", "BTCUSDT", END, START), "is not after start"),
        (lambda: reader.trades("BINANCE", [], START, END), "no instrument given"),
        (lambda: reader.trades("BINANCE", "BTCUSDT", "15/01/2025", END), "not an ISO date"),
        # a typo, or a name nothing is stored under: an error naming the closest stored names, not an empty
        # frame
        (
            lambda: reader.trades("BINANCX", "BTCUSDT", START, END),
            "no trades of venue 'BINANCX' stored (closest: BINANCE",
        ),
        (
            lambda: reader.trades("BINANCE", "BTCUSDX", START, END),
            "no trades of BINANCE:BTCUSDX stored (closest: BTCUSDT)",
        ),
        (lambda: reader.dataset("books", "BINANCE", "BTCUSDT", START, END), "venues with books: none yet"),
        (
            lambda: reader.dataset("trade", "BINANCE", "BTCUSDT", START, END),
            "unknown dataset 'trade' (closest: trades",
        ),
    ]:
        with pytest.raises(ValueError) as error:
            call()
        assert words in str(error.value)
    with pytest.warns(MissingDays, match="BTCUSDT 2025-02-01"):  # stored, not that range: empty, and said so
        empty = reader.dataset("trades", "BINANCE", "BTCUSDT", "2025-02-01", "2025-02-02")
    assert empty.height == 0 and empty.schema == pl.Schema(
        spec_for("trades").schema | {"id_sequence": ID_SEQUENCE}
    )
    other = Reader(clickhouse_client=reader.clickhouse(), clickhouse_database="nothing_here")
    with pytest.raises(LookupError, match="no table trades in the ClickHouse database nothing_here"):
        other.trades("BINANCE", "BTCUSDT", START, END)


def test_a_reader_names_the_process_holding_the_embedded_engine(tmp_path):
    data_dir = tmp_path / "ch"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
        import time
        from pathlib import Path
        from marketdata_assets.stores.clickhouse.connection import acquire_directory
        acquire_directory(Path("{data_dir}"), 5)
        print("ready", flush=True)
        time.sleep(60)
    """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        with (
            Reader(clickhouse_dsn=f"chdb://{data_dir}", lock_timeout_s=0.5) as reader,
            pytest.raises(EmbeddedLockTimeout) as error,
        ):
            reader.trades("BINANCE", "BTCUSDT", START, END)
        message = str(error.value)
        assert (
            f"pid {holder.pid} (" in message and "acquire_directory" in message and str(data_dir) in message
        )
        assert "Parquet export" in message
    finally:
        holder.kill()
        holder.wait()


def test_the_catalog_and_marketdata_status_show_each_instruments_days_gaps_and_failures(
    store, reader, monkeypatch
):
    """Per dataset x venue x instrument: the days stored, the days missing (the universe's days from its
    history_start to yesterday with nothing stored), the days whose latest attempt failed; `marketdata
    status` prints it (filters, gaps only)."""
    from click.testing import CliRunner

    from marketdata_assets.apps.cli import cli
    from marketdata_assets.stores.clickhouse import writer
    from tests.stores.clickhouse.test_writer import make_trades

    with store.get_client() as client:
        for instrument, days in (("BTCUSDT", (DAY, DAY + timedelta(days=2))), ("ETHUSDT", (DAY,))):
            for day in days:
                writer.write_slice(
                    client,
                    store.database,
                    "trades",
                    make_trades(10, day, instrument),
                    "BINANCE",
                    instrument,
                    day,
                    "catalog",
                )
        writer.log_ingest(
            client,
            store.database,
            [
                {
                    "run_id": "catalog",
                    "source": "BINANCE",
                    "dataset": "trades",
                    "venue": "BINANCE",
                    "instrument": "ETHUSDT",
                    "day": DAY + timedelta(days=1),
                    "outcome": "failed",
                    "error": "HTTP 500",
                    "started_at": day_window(DAY)[0],
                    "finished_at": day_window(DAY)[0],
                }
            ],
        )
    rows = {
        r["instrument"]: r
        for r in reader.catalog()
        .filter((pl.col("dataset") == "trades") & (pl.col("venue") == "BINANCE"))
        .iter_rows(named=True)
    }
    btc, eth = rows["BTCUSDT"], rows["ETHUSDT"]
    # both are in the shipped sources file's BINANCE universe: every day from its history_start is expected
    expected = (datetime.now(UTC).date() - load_sources_config().crypto_history_start).days
    assert (
        btc["first_day"],
        btc["last_day"],
        btc["days"],
        btc["missing_days"],
        btc["rows"],
        btc["failed_days"],
    ) == (DAY, DAY + timedelta(days=2), 2, expected - 2, 20, 0)
    assert (eth["days"], eth["missing_days"], eth["failed_days"]) == (1, expected - 1, 1)
    assert (btc["sources"], eth["sources"]) == ("unknown 2", "unknown 1")  # written without an ingest_log row

    monkeypatch.setenv("CLICKHOUSE_DSN", store.dsn)
    monkeypatch.setenv("CLICKHOUSE_DATABASE", store.database)
    out = CliRunner().invoke(cli, ["status", "--dataset", "trades", "--venue", "binance", "--gaps-only"])
    assert out.exit_code == 0, out.output
    lines = out.stdout.splitlines()
    assert lines[0].split() == [
        "dataset",
        "venue",
        "instrument",
        "first",
        "last",
        "days",
        "missing",
        "failed",
        "rows",
        "last",
        "load",
        "lag",
        "sources",
    ]
    assert [line.split()[:8] for line in lines[1:]] == [
        [
            "trades",
            "BINANCE",
            "BTCUSDT",
            str(DAY),
            str(DAY + timedelta(days=2)),
            "2",
            f"{expected - 2:,}",
            "0",
        ],
        ["trades", "BINANCE", "ETHUSDT", str(DAY), str(DAY), "1", f"{expected - 1:,}", "1"],
        ["trades", "BINANCE", "SOLUSDT", "0", f"{expected:,}", "0", "0"],  # in the universe, nothing stored
    ]

    for option, typo, closest in (("--venue", "BINANCX", "BINANCE"), ("--dataset", "trade", "trades")):
        wrong = CliRunner().invoke(cli, ["status", option, typo])
        assert wrong.exit_code == 2 and f"closest: {closest}" in wrong.output, wrong.output


def test_todays_live_trades_are_read_marked_and_listed_with_their_lag(store, reader):
    """Trades of the open hours are in trades_live only: a default read warns that they are there, a read
    with live=True returns them after the history, marked path 'live', with the live stream's id sequence;
    the catalog lists the live table with its lag."""
    from marketdata_assets.read.gaps import LiveRowsNotRead
    from marketdata_assets.stores.clickhouse.live import ensure_live_tables, insert_live_trades, trade_rows

    now = datetime.now(UTC).replace(microsecond=0)
    today = now.date()
    messages = [
        {
            "venue": "BINANCE",
            "instrument": "SOLUSDT",
            "trade_id": str(900 + k),
            "price": 150.5,
            "quantity": 2.0,
            "amount": 301.0,
            "side": "buy",
            "seq": 900 + k,
            "event_ms": 0,
            "ts_us": int((now - timedelta(minutes=k)).timestamp() * 1e6),
            "recv_ns": int(now.timestamp() * 1e9),
        }
        for k in range(3)
    ]
    with store.get_client() as client:
        ensure_live_tables(client, store.database)
        insert_live_trades(client, store.database, trade_rows(json.dumps(messages).encode()))
    with pytest.warns(LiveRowsNotRead, match="3 live BINANCE trade"):
        assert reader.trades("BINANCE", "SOLUSDT", today, today + timedelta(days=1)).height == 0
    both = reader.trades("BINANCE", "SOLUSDT", today, today + timedelta(days=1), live=True)
    assert both["path"].to_list() == ["live"] * 3 and both["trade_id"].to_list() == [
        "902",
        "901",
        "900",
    ]  # by time
    assert both["ts"].is_sorted() and set(both["id_sequence"].to_list()) == {"trade"}
    assert both["amount"].to_list() == [301.0] * 3  # the same units as the loaded trades
    with pytest.raises(ValueError, match="live=True reads trades"):
        reader.funding("BINANCE_UM", None, today, today + timedelta(days=1), live=True)
    live_rows = reader.catalog().filter(pl.col("dataset") == "trades_live").row(0, named=True)
    assert (live_rows["venue"], live_rows["instrument"], live_rows["rows"], live_rows["sources"]) == (
        "BINANCE",
        "SOLUSDT",
        3,
        "BINANCE_LIVE",
    )
    assert 0 <= live_rows["lag_s"] < 600


def test_status_of_a_store_nothing_was_loaded_into_is_an_empty_table(store, monkeypatch):
    """A fresh store (its database not made yet, or made without the load tables): `status` lists nothing
    and exits 0, not the engine's UNKNOWN_DATABASE."""
    from click.testing import CliRunner

    from marketdata_assets.apps.cli import cli

    monkeypatch.setenv("CLICKHOUSE_DSN", store.dsn)
    for database in (f"{store.database}_never_made", store.database):
        if database == store.database:  # made, its tables not: dropped here
            with store.get_client() as client:
                for table in ("loads", "ingest_log"):
                    client.command(f"DROP TABLE IF EXISTS `{database}`.{table}")
        monkeypatch.setenv("CLICKHOUSE_DATABASE", database)
        out = CliRunner().invoke(cli, ["status"], catch_exceptions=False)
        assert out.exit_code == 0, out.output
        assert "DB::Exception" not in out.output and "0 instrument-dataset(s)" in out.output, out.output
