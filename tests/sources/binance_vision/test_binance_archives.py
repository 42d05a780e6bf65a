"""data.binance.vision archives (sources/binance_vision/archives.py, defs/ticks/archives.py) against
the archive replay over real HTTP and the embedded ClickHouse: a good archive loads and its
checksum is recorded, a corrupt one fails naming both digests and loads nothing, a missing day is
reported missing while the others load, a replaced archive is found by the re-check and its slice
reloaded, a monthly archive is reconciled with the daily slices, and the dump landing moves the
files it does not load aside with their reason."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, date
from pathlib import Path

import dagster as dg
import httpx
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from marketdata_assets.core.http import RetryPolicy
from marketdata_assets.datasets.slices import SliceKey
from marketdata_assets.ingest import archives as ia
from marketdata_assets.ingest.engine import Engine
from marketdata_assets.replay.binance_archive import ArchiveReplayConfig, BinanceArchiveReplayServer
from marketdata_assets.replay.binance_dumps import generate_trades, write_dump
from marketdata_assets.sources.binance_vision import archives as a
from marketdata_assets.sources.config import SourcesConfigError, parse_sources_config
from marketdata_assets.stores.clickhouse import tables as ct

DAY = date(2025, 1, 15)
DEC = date(2024, 12, 1)
TRADES_ARCHIVE = "data/spot/daily/trades/BTCUSDT/BTCUSDT-trades-2025-01-15.zip"


@pytest.fixture
def replay():
    config = ArchiveReplayConfig(
        seed=3,
        trades_per_day=300,
        published_until=date(2025, 1, 20),
        corrupt={"data/spot/daily/trades/ETHUSDT/ETHUSDT-trades-2025-01-15.zip"},
        missing={"data/spot/daily/trades/BTCUSDT/BTCUSDT-trades-2025-01-16.zip"},
        truncated={"data/spot/daily/trades/BTCUSDT/BTCUSDT-trades-2024-12-10.zip": 6},
    )
    with BinanceArchiveReplayServer(config) as server:
        yield server


def client_of(replay):
    return lambda: a.ArchiveClient(replay.base_url)


def load(store, replay, tmp_path, slices, run_id="run-1"):
    """The daily archives of `slices` through the engine, recorded: (report, recorded rows)."""
    run = ia.ArchiveRun(client_of(replay), tmp_path / "work", workers=2)
    report = Engine(store.get_client, store.database, run_id).run([[run.feed(a.daily_jobs(slices))]])
    with store.get_client() as client:
        return report, run.record(client, store.database, report, run_id)


def rows(store, sql: str, **params) -> list[tuple]:
    with store.get_client() as client:
        return client.query(sql.replace("{db}", f"`{store.database}`"), parameters=params).result_rows


def view(store, dataset: str, venue: str, instrument: str, day: date = DAY) -> pl.DataFrame:
    with store.get_client() as client:
        return ct.read_range(
            client, store.database, dataset, venue, instrument, day, date.fromordinal(day.toordinal() + 1)
        )


def served_sha256(replay, path: str) -> str:
    return hashlib.sha256(httpx.get(f"{replay.base_url}/{path}").content).hexdigest()


def test_the_paths_names_and_checksum_lines_are_data_binance_visions():
    key = a.ArchiveKey.of_slice(SliceKey("klines_1h", "BINANCE_UM", "BTCUSDT", DAY))
    assert key.path == "/data/futures/um/daily/klines/BTCUSDT/1h/BTCUSDT-1h-2025-01-15.zip"
    monthly = a.ArchiveKey.of_slice(SliceKey("agg_trades", "BINANCE", "BTCUSDT", DAY), "monthly")
    assert monthly.path == "/data/spot/monthly/aggTrades/BTCUSDT/BTCUSDT-aggTrades-2025-01.zip"
    assert len(monthly.slices()) == 31 and monthly.slices()[0] == SliceKey(
        "agg_trades", "BINANCE", "BTCUSDT", date(2025, 1, 1)
    )
    digest = "21eeac04a76a7a35b10467e5e752fb2f8cff77cdeb57df6b50a23ce8d69bb190"
    assert a.parse_checksum(f"{digest.upper()}  BTCUSDT-1m-2024-01.zip\n", "BTCUSDT-1m-2024-01.zip") == digest
    with pytest.raises(ValueError, match="is the checksum of 'ETHUSDT-1m-2024-01.zip'"):
        a.parse_checksum(f"{digest}  ETHUSDT-1m-2024-01.zip", "BTCUSDT-1m-2024-01.zip")
    with pytest.raises(ValueError, match="not '<sha256 hex>  <file name>'"):
        a.parse_checksum("<html>503</html>", "BTCUSDT-1m-2024-01.zip")


def test_a_good_archive_loads_into_its_dataset_and_its_checksum_is_recorded(store, replay, tmp_path):
    slices = [
        SliceKey("trades", "BINANCE", "BTCUSDT", DAY),
        SliceKey("agg_trades", "BINANCE", "BTCUSDT", DAY),
        SliceKey("klines_1h", "BINANCE", "BTCUSDT", DAY),
        SliceKey("bars_1m", "BINANCE_UM", "BTCUSDT", DAY),
    ]
    report, recorded = load(store, replay, tmp_path, slices)
    assert report.summary() == "Successful: 4/4", report.failures_table()
    assert_frame_equal(
        view(store, "trades", "BINANCE", "BTCUSDT"), replay.truth(TRADES_ARCHIVE).sort("ts", "trade_id")
    )
    agg = view(store, "agg_trades", "BINANCE", "BTCUSDT")  # aggregate trades apart from the individual ones
    truth = replay.truth("data/spot/daily/aggTrades/BTCUSDT/BTCUSDT-aggTrades-2025-01-15.zip")
    assert agg.height == truth.height < 300 and agg["seq"].to_list() == truth["seq"].to_list()
    assert_frame_equal(
        view(store, "klines_1h", "BINANCE", "BTCUSDT"),
        replay.truth("data/spot/daily/klines/BTCUSDT/1h/BTCUSDT-1h-2025-01-15.zip"),
    )
    um = view(store, "bars_1m", "BINANCE_UM", "BTCUSDT")
    assert um.height > 100 and um["venue"].unique().to_list() == ["BINANCE_UM"]
    assert view(store, "bars_1m", "BINANCE", "BTCUSDT").height == 0

    by_path = {r["url"].split("/", 3)[3]: r for r in recorded}
    record = by_path[TRADES_ARCHIVE]
    assert record["sha256"] == record["published_sha256"] == served_sha256(replay, TRADES_ARCHIVE)
    assert (record["rows"], record["status"], record["days"]) == (300, "loaded", [DAY])
    first, last = replay.truth(TRADES_ARCHIVE)["seq"].min(), replay.truth(TRADES_ARCHIVE)["seq"].max()
    assert (record["first_id"], record["last_id"], record["id_count"]) == (first, last, 300)
    active = rows(
        store, "SELECT load_id FROM {db}.active_loads WHERE dataset = 'trades' AND venue = 'BINANCE'"
    )
    assert record["load_ids"] == [active[0][0]]
    with store.get_client() as client:
        stored = ia.latest_archives(client, store.database)
    assert {(r.key.path.lstrip("/"), r.published_sha256) for r in stored} == {
        (p, served_sha256(replay, p)) for p in by_path
    }
    assert not list((tmp_path / "work").rglob("*.zip"))  # read, then removed


def test_a_corrupt_archive_fails_naming_the_file_and_both_digests_and_loads_nothing(store, replay, tmp_path):
    path = "data/spot/daily/trades/ETHUSDT/ETHUSDT-trades-2025-01-15.zip"
    published = httpx.get(f"{replay.base_url}/{path}.CHECKSUM").text.split()[0]
    report, recorded = load(
        store,
        replay,
        tmp_path,
        [SliceKey("trades", "BINANCE", "ETHUSDT", DAY), SliceKey("trades", "BINANCE", "BTCUSDT", DAY)],
    )
    outcome = report.outcomes[SliceKey("trades", "BINANCE", "ETHUSDT", DAY)]
    assert outcome.status == "failed" and outcome.attempts == 2  # downloaded again once: still corrupt
    assert (
        f"ETHUSDT-trades-2025-01-15.zip: SHA-256 mismatch: expected {published} (published in "
        f"ETHUSDT-trades-2025-01-15.zip.CHECKSUM), got {served_sha256(replay, path)}"
    ) in outcome.error
    assert "nothing loaded" in outcome.error
    assert view(store, "trades", "BINANCE", "ETHUSDT").height == 0
    assert rows(store, "SELECT count() FROM {db}.loads WHERE instrument = 'ETHUSDT'") == [(0,)]
    assert [r["instrument"] for r in recorded] == ["BTCUSDT"]  # the good one beside it loaded
    assert not list((tmp_path / "work").rglob("*.zip"))


def test_a_missing_day_is_reported_missing_and_the_other_days_load(store, replay, tmp_path):
    days = [date(2025, 1, 14), date(2025, 1, 15), date(2025, 1, 16)]
    report, recorded = load(
        store, replay, tmp_path, [SliceKey("trades", "BINANCE", "BTCUSDT", d) for d in days]
    )
    missing = report.outcomes[SliceKey("trades", "BINANCE", "BTCUSDT", date(2025, 1, 16))]
    assert missing.status == "failed" and missing.attempts == 1  # a 404 is not asked again
    assert (
        missing.error.startswith("missing: BTCUSDT-trades-2025-01-16.zip is not published (")
        and "HTTP 404 NoSuchKey" in missing.error
    )
    assert [o.status for k, o in sorted(report.outcomes.items()) if k.day != date(2025, 1, 16)] == [
        "ok",
        "ok",
    ]
    assert sorted(r["day"] for r in recorded) == days[:2]
    assert [s for p, s in replay.requests("2025-01-16.zip")] == []  # the zip itself was never asked for
    assert replay.requests("2025-01-16.zip.CHECKSUM")[0][1] == 404


def test_a_throttled_or_cut_download_is_retried_and_hashed_whole(store, replay, tmp_path):
    replay.config.slow_down[TRADES_ARCHIVE] = 2
    replay.config.cut[TRADES_ARCHIVE] = 1
    run = ia.ArchiveRun(
        lambda: a.ArchiveClient(replay.base_url, retry=RetryPolicy(max_retries=3, backoff_base_s=0.01)),
        tmp_path / "work",
    )
    report = Engine(store.get_client, store.database, "r").run(
        [[run.feed(a.daily_jobs([SliceKey("trades", "BINANCE", "BTCUSDT", DAY)]))]]
    )
    (outcome,) = report.outcomes.values()
    assert (outcome.status, outcome.rows, outcome.attempts) == ("ok", 300, 1)
    assert (outcome.stats.requests, outcome.stats.retries, outcome.stats.server_errors) == (5, 3, 2)
    assert [status for _, status in replay.requests("BTCUSDT-trades-2025-01-15.zip")] == [503, 503, 200, 200]
    assert run.loaded[a.ArchiveKey.of_slice(outcome.key)].verified.sha256 == served_sha256(
        replay, TRADES_ARCHIVE
    )


def test_a_replaced_archive_is_found_by_the_recheck_and_its_slice_reloaded(store, replay, tmp_path):
    slices = [SliceKey("trades", "BINANCE", "BTCUSDT", DAY), SliceKey("klines_1h", "BINANCE", "BTCUSDT", DAY)]
    load(store, replay, tmp_path, slices)
    old = served_sha256(replay, TRADES_ARCHIVE)
    assert replay.replace(TRADES_ARCHIVE) == 1  # Binance re-publishes the day: other rows, another digest
    new = served_sha256(replay, TRADES_ARCHIVE)
    engine = Engine(store.get_client, store.database, "recheck-1")
    result = ia.recheck(client_of(replay), engine, tmp_path / "work")
    assert result.checked == 2 and [(c.key.path, c.old, c.new) for c in result.changed] == [
        ("/" + TRADES_ARCHIVE, old, new)
    ]
    assert result.report.summary() == "Successful: 1/1"
    stored = view(store, "trades", "BINANCE", "BTCUSDT")
    assert stored.height == 307 and stored["trade_id"].n_unique() == 307  # the new rows only, no duplicates
    assert_frame_equal(stored, replay.truth(TRADES_ARCHIVE).sort("ts", "trade_id"))
    latest = rows(
        store,
        "SELECT sha256, previous_sha256, note FROM {db}.dump_archives WHERE family = 'trades' "
        "ORDER BY verified_at DESC LIMIT 1",
    )[0]
    assert latest[:2] == (new, old) and latest[2] == f"replaced: {old} -> {new}"
    again = ia.recheck(
        client_of(replay), Engine(store.get_client, store.database, "recheck-2"), tmp_path / "work"
    )
    assert (again.checked, again.changed) == (2, [])


def test_a_monthly_archive_is_reconciled_with_the_daily_slices(store, replay, tmp_path):
    days = [
        date(2024, 12, 9),
        date(2024, 12, 10),
        date(2024, 12, 11),
    ]  # the 10th: a daily archive cut at 06:00
    load(store, replay, tmp_path, [SliceKey("trades", "BINANCE", "BTCUSDT", d) for d in days])
    month = a.ArchiveKey("spot", "trades", "", "BTCUSDT", "monthly", DEC)
    engine = Engine(store.get_client, store.database, "reconcile-1")
    first = ia.reconcile(client_of(replay), engine, tmp_path / "work", [month], fill_missing=False)
    status = {c.day: c.status for c in first.comparisons}
    assert len(status) == 31 and [status[d] for d in days] == ["match", "mismatch", "match"]
    assert sum(s == "no daily slice" for s in status.values()) == 28 and first.report.outcomes == {}
    (bad,) = first.mismatches
    stored = view(store, "trades", "BINANCE", "BTCUSDT", days[1])
    assert bad.row()[:4] == ["BINANCE:BTCUSDT", "trades", "2024-12-10", "mismatch"]
    assert bad.expected.rows == 300 and bad.actual.rows == stored.height < 300
    assert bad.actual.last_id == stored["seq"].max() < bad.expected.last_id
    note = rows(store, "SELECT status, note FROM {db}.dump_archives WHERE period = 'monthly'")[0]
    assert (
        note[0] == "reconciled"
        and f"2024-12-10 mismatch: monthly {bad.expected.text()}, daily {bad.actual.text()}" in note[1]
    )

    second = ia.reconcile(
        client_of(replay),
        Engine(store.get_client, store.database, "reconcile-2"),
        tmp_path / "work",
        [month],
        replace_mismatched=True,
    )
    assert second.report.summary() == "Successful: 29/29" and len(second.loaded_days[month.name]) == 29
    assert (
        second.summary()
        == "1 monthly archive(s), days: 2 match, 28 filled, 1 replaced; 0 not published, 0 failed"
    )
    assert second.mismatches == []
    after = {
        c.day: c.status
        for c in ia.reconcile(
            client_of(replay),
            Engine(store.get_client, store.database, "reconcile-3"),
            tmp_path / "work",
            [month],
        ).comparisons
    }
    assert set(after.values()) == {"match"}
    assert rows(
        store,
        "SELECT count(), uniqExact(trade_id) FROM {db}.trades_v WHERE toDate(ts) >= '2024-12-01' "
        "AND toDate(ts) <= '2024-12-31'",
    ) == [(31 * 300, 31 * 300)]

    # Binance re-publishes the month: the re-check reloads the 29 days it filled, the daily ones now differ
    replay.replace("data/spot/monthly/trades/BTCUSDT/BTCUSDT-trades-2024-12.zip")
    result = ia.recheck(
        client_of(replay), Engine(store.get_client, store.database, "recheck"), tmp_path / "work"
    )
    assert [c.key for c in result.changed] == [month]
    assert result.reconciled.report.summary() == "Successful: 29/29"
    assert sorted(c.day for c in result.reconciled.mismatches) == [days[0], days[2]]
    assert rows(store, "SELECT count() FROM {db}.trades_v WHERE toDate(ts) = '2024-12-20'") == [(307,)]


def test_a_monthly_archive_not_published_yet_is_listed_not_failed(store, replay, tmp_path):
    january = a.ArchiveKey(
        "spot", "trades", "", "BTCUSDT", "monthly", date(2025, 1, 1)
    )  # published_until 01-20
    result = ia.reconcile(
        client_of(replay), Engine(store.get_client, store.database, "r"), tmp_path / "work", [january]
    )
    assert (
        result.comparisons == []
        and result.failed == []
        and "BTCUSDT-trades-2025-01.zip is not published" in result.missing[0]
    )


def test_the_months_to_reconcile_are_the_complete_ones_with_daily_archives(store, replay, tmp_path):
    settings = parse_sources_config(
        {
            "sources": _sources(),
            "universes": {},
            "binance_archives": {
                "start_date": "2024-11-01",
                "instruments": ["BTCUSDT"],
                "families": ["trades"],
            },
        },
        Path("x.yaml"),
        {},
    )
    load(store, replay, tmp_path, [SliceKey("trades", "BINANCE", "BTCUSDT", date(2024, 12, 9))])
    with store.get_client() as client:
        assert ia.months_to_reconcile(
            client, store.database, settings.binance_archives, date(2025, 1, 20)
        ) == [a.ArchiveKey("spot", "trades", "", "BTCUSDT", "monthly", DEC)]
    ia.reconcile(
        client_of(replay),
        Engine(store.get_client, store.database, "r"),
        tmp_path / "work",
        [a.ArchiveKey("spot", "trades", "", "BTCUSDT", "monthly", DEC)],
        fill_missing=False,
    )
    with store.get_client() as client:
        assert (
            ia.months_to_reconcile(client, store.database, settings.binance_archives, date(2025, 1, 20)) == []
        )


def _sources() -> dict:
    return {
        name: {"base_url": "https://example.com"}
        for name in ("tushare", "yahoo", "binance", "okx", "deribit")
    }


@pytest.mark.parametrize(
    "section, message",
    [
        ({"instruments": ["BTCUSDT"], "markets": ["cm"]}, "binance_archives.markets: unknown ['cm']"),
        ({"instruments": ["BTCUSDT"], "families": ["klines"], "intervals": ["1w"]}, "published monthly only"),
        ({"instruments": ["btc-usdt"]}, "binance_archives.instruments"),
        ({"instruments": ["BTCUSDT"], "workers": 0}, "binance_archives.workers: expected an integer >= 1"),
        (
            {"instruments": ["BTCUSDT"], "typo": 1},
            "binance_archives.typo: unknown key; allowed in binance_archives: ",
        ),
    ],
)
def test_the_config_section_is_validated(section, message):
    with pytest.raises(SourcesConfigError, match=re.escape(message)):
        parse_sources_config(
            {"sources": _sources(), "universes": {}, "binance_archives": section}, Path("x.yaml"), {}
        )


def test_the_base_url_comes_from_its_variable():
    settings = parse_sources_config(
        {"sources": _sources(), "universes": {}},
        Path("x.yaml"),
        {"BINANCE_ARCHIVE_BASE_URL": "http://127.0.0.1:8704/"},
    ).binance_archives
    assert (settings.base_url, settings.default_base_url) == (
        "http://127.0.0.1:8704",
        "https://data.binance.vision",
    )
    assert settings.files() == (("trades", ""),) and [str(k) for k in settings.instrument_keys()] == [
        "BINANCE:BTCUSDT"
    ]


# --------------------------------------------------------------------------------------------
# Dagster: the asset, the re-check, the schedules, the dump landing's files moved aside
# --------------------------------------------------------------------------------------------


def test_the_assets_load_a_partition_and_the_recheck_reloads_what_changed(
    store, replay, tmp_path, monkeypatch
):
    from marketdata_assets.defs.archives import archives as defs
    from marketdata_assets.defs.upkeep.store import tick_store

    monkeypatch.setenv("BINANCE_ARCHIVE_BASE_URL", replay.base_url)
    monkeypatch.setenv("MARKETDATA_STATE_DIR", str(tmp_path))
    assets = [tick_store, defs.binance_archives, defs.binance_archive_recheck, defs.binance_archive_reconcile]
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            assets,
            resources={"clickhouse": store},
            instance=instance,
            selection=list(defs.ARCHIVE_ASSETS.values()),
            partition_key=f"{DAY}|BINANCE",
            run_config={"ops": {"binance_archives": {"config": {"instruments": ["BINANCE:BTCUSDT"]}}}},
        )
        assert result.success
        events = {
            e.asset_key.to_user_string(): e.materialization.metadata
            for e in result.get_asset_materialization_events()
        }
        assert set(events) == set(defs.ARCHIVE_ASSETS.values())
        assert events["binance_archive_trades"]["rows"].value == 300
        assert served_sha256(replay, TRADES_ARCHIVE) in events["binance_archive_trades"]["archives"].value
        replay.replace(TRADES_ARCHIVE)
        recheck = dg.materialize(
            assets, resources={"clickhouse": store}, instance=instance, selection=["binance_archive_recheck"]
        )
        assert recheck.success
        (event,) = recheck.get_asset_materialization_events()
        meta = event.materialization.metadata
        assert meta["changed"].value == 1 and served_sha256(replay, TRADES_ARCHIVE) in meta["changes"].value
        # January's monthly archive appears: it holds the 15th as first published, the daily one was replaced
        replay.config.published_until = date(2025, 2, 3)
        reconciled = dg.materialize(
            assets,
            resources={"clickhouse": store},
            instance=instance,
            selection=["binance_archive_reconcile"],
            run_config={
                "ops": {
                    "binance_archive_reconcile": {
                        "config": {
                            "months": ["2025-01"],
                            "instruments": ["BINANCE:BTCUSDT"],
                            "fill_missing": False,
                        }
                    }
                }
            },
        )
        assert reconciled.success
        (check,) = reconciled.get_asset_check_evaluations()
        assert check.check_name == "monthly_matches_daily" and not check.passed
        mismatches = check.metadata["mismatches"].value
        assert (
            mismatches.count("| mismatch |") == 1
            and "| BINANCE:BTCUSDT | trades | 2025-01-15 | mismatch | 300 rows" in mismatches
            and "| 307 rows" in mismatches
        )
        assert check.metadata["days_compared"].value == len(defs.ARCHIVE_ASSETS) * 31
    assert view(store, "trades", "BINANCE", "BTCUSDT").height == 307
    assert not list((tmp_path / "tmp").iterdir())  # the work directories are gone

    with dg.build_schedule_context(scheduled_execution_time=pd_time("2025-01-16")) as context:
        schedule = defs.binance_archives_daily(context)
    assert schedule.tags == {
        "dagster/asset_partition_range_start": "2025-01-14|BINANCE",
        "dagster/asset_partition_range_end": "2025-01-15|BINANCE_UM",
    }


def pd_time(day: str):
    from datetime import datetime

    return datetime.fromisoformat(day).replace(hour=4, tzinfo=UTC)


def test_an_unsupported_dropped_file_is_moved_aside_with_its_reason(tmp_path, monkeypatch):
    from marketdata_assets.defs.archives.sensors import binance_dump_files

    landing = tmp_path / "landing"
    monkeypatch.setenv("BINANCE_DUMPS_LANDING_DIR", str(landing))
    good = write_dump(landing / f"BTCUSDT-trades-{DAY}.csv", generate_trades("BTCUSDT", DAY, 50, seed=1))
    agg = landing / "drops" / f"BTCUSDT-aggTrades-{DAY}.zip"
    agg.parent.mkdir(parents=True)
    agg.write_bytes(b"PK")
    (agg.parent / (agg.name + ".CHECKSUM")).write_text(f"{'0' * 64}  {agg.name}\n")
    hourly = landing / f"BTCUSDT-1h-{DAY}.zip"
    hourly.write_bytes(b"PK")
    partial = landing / f"BTCUSDT-aggTrades-{DAY}.zip.part"  # a copy in progress: left alone
    partial.write_bytes(b"P")
    with dg.DagsterInstance.ephemeral() as instance:
        first = binance_dump_files(dg.build_sensor_context(instance=instance))
        assert [r.asset_selection for r in first.run_requests] == [[dg.AssetKey("binance_dump_trades")]]
        moved = landing / "ignored" / "drops" / agg.name
        assert (
            moved.read_bytes() == b"PK"
            and not agg.exists()
            and (moved.parent / (agg.name + ".CHECKSUM")).exists()
        )
        reason = (moved.parent / (agg.name + ".reason.txt")).read_text()
        assert (
            "reason: a daily aggTrades dump: this domain loads daily spot trades and 1m klines; the "
            "binance_archives assets load it from data.binance.vision"
            in reason
            and f"source: {agg}" in reason
        )
        assert "a daily 1h dump" in (landing / "ignored" / (hourly.name + ".reason.txt")).read_text()
        assert good.exists() and partial.exists()
        again = binance_dump_files(dg.build_sensor_context(instance=instance, cursor=first.cursor))
        assert again.run_requests == [] and sorted(
            p.name for p in (landing / "ignored").rglob("*.zip")
        ) == sorted([agg.name, hourly.name])  # moved once, never looked at again


def test_an_archive_whose_checksum_matches_can_still_miss_ids_and_the_check_names_them(store, tmp_path):
    from marketdata_assets.quality.continuity import find_holes

    agg = "data/spot/daily/aggTrades/BTCUSDT/BTCUSDT-aggTrades-2025-01-15.zip"
    config = ArchiveReplayConfig(
        seed=3, trades_per_day=300, published_until=date(2025, 1, 20), holed={agg: 7}
    )
    with BinanceArchiveReplayServer(config) as replay:
        slices = [
            SliceKey("agg_trades", "BINANCE", "BTCUSDT", DAY),
            SliceKey("trades", "BINANCE", "BTCUSDT", DAY),
        ]
        report, recorded = load(store, replay, tmp_path, slices)
        truth = replay.truth(agg)
    assert report.summary() == "Successful: 2/2" and all(
        r["sha256"] == r["published_sha256"] for r in recorded
    )
    with store.get_client() as client:
        (held,) = find_holes(client, store.database, slices[:1], dataset="agg_trades").values()
        (whole,) = find_holes(client, store.database, slices[1:]).values()
        with pytest.raises(ValueError, match="dataset 'klines_1h' has no sequential ids"):
            find_holes(client, store.database, slices[:1], dataset="klines_1h")
    ids = truth["seq"].to_list()
    gap = next(i for i in range(1, len(ids)) if ids[i] != ids[i - 1] + 1)
    assert (
        held.sequence.name == "aggTrade"
        and not held.passed
        and held.missing == 7 == ids[gap] - ids[gap - 1] - 1
    )
    assert [(h.first_missing, h.last_missing) for h in held.holes] == [(ids[gap - 1] + 1, ids[gap] - 1)]
    assert whole.sequence.name == "trade" and whole.passed and whole.rows == 300


def test_a_symbols_first_day_is_one_listing_rolled_up_at_the_dot():
    """S3 rolls keys up to the first delimiter after the prefix: with "." a symbol's folder lists one
    CommonPrefix a day (its zip and CHECKSUM together), so its first day is a name, not a file to describe."""
    import asyncio

    from marketdata_assets.sources.binance_vision import listing

    config = ArchiveReplayConfig(trades_per_day=20, published_until=date(2025, 3, 19), reference_seed=3)
    with BinanceArchiveReplayServer(config) as server:
        prefix = "data/spot/daily/trades/BTCUSDT/"
        page = listing.parse(
            server.listing({"prefix": prefix, "delimiter": ".", "max-keys": "2"}).body.decode(),
            a.Page(a.API_NAME, prefix, None, "listing"),
        )
        assert page.folders == [f"{prefix}BTCUSDT-trades-2017-01-01.", f"{prefix}BTCUSDT-trades-2017-01-02."]
        assert page.keys == [] and page.next_marker == f"{prefix}BTCUSDT-trades-2017-01-02."

        async def first(symbol: str):
            async with a.ArchiveClient(server.base_url) as api:
                return await listing.first_day(api, "spot", symbol), await listing.first_day(
                    api, "spot", "NOSUCH"
                )

        assert asyncio.run(first("BTCUSDT")) == (date(2017, 1, 1), None)
