"""A slice never downgrades silently (datasets.frames `Dataset.fidelity`, ingest.engine `plan`): a day of
Binance BTCUSDT trades loaded from a dump file, then from its verified archive, is not replaced by a REST
backfill of aggregate trades (the run's console line and the asset's metadata say it was covered by the
archive) unless the backfill asks to (`--replace`: run config `replace`); a dump or a live load after
the archive is covered alike. A read of trades states which id sequence each slice holds. Against the
archive replay and the crypto replay over real HTTP, the real embedded ClickHouse, an ephemeral Dagster
instance."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import dagster as dg
import polars as pl
import pytest

from marketdata_assets.apps.cli.operate import backfill_config
from marketdata_assets.apps.launch import launch
from marketdata_assets.datasets.frames import day_window
from marketdata_assets.datasets.slices import SliceKey
from marketdata_assets.ingest import archives as ia
from marketdata_assets.ingest.dumps import dump_feed
from marketdata_assets.ingest.engine import Engine, IngestReport, plan
from marketdata_assets.read import Reader
from marketdata_assets.replay.binance_archive import ArchiveReplayConfig, BinanceArchiveReplayServer
from marketdata_assets.replay.binance_dumps import generate_trades, write_dump
from marketdata_assets.replay.crypto import ReplayConfig
from marketdata_assets.sources.binance_vision import archives, dumps
from marketdata_assets.sources.registry import STREAMS
from tests.support.ticks_common import crypto_replay
from tests.support.ticks_dagster import (
    UNUSED,
    crypto_day,
    crypto_resources,
    stock_resources,
    ticks_definitions,
)

DAY = date(2025, 1, 2)  # make run's dump and archive day
NEXT = DAY + timedelta(days=1)
SPOT = SliceKey("trades", "BINANCE", "BTCUSDT", DAY)
USD_M = SliceKey("trades", "BINANCE_UM", "BTCUSDT", DAY)

server, _clean = crypto_replay(ReplayConfig(seed=2, trades_per_day=300))


@pytest.fixture(scope="module")
def archive_replay():
    with BinanceArchiveReplayServer(
        ArchiveReplayConfig(seed=3, trades_per_day=500, published_until=NEXT)
    ) as replay:
        yield replay


def engine_load(store, feed, run_id: str, report: IngestReport | None = None) -> IngestReport:
    report = report or IngestReport()
    report.merge(Engine(store.get_client, store.database, run_id).run([[feed]]))
    assert not report.failures(), report.failures_table()
    return report


def planned(store, source: str, keys, **options) -> tuple[list, IngestReport]:
    report = IngestReport()
    with store.get_client() as client:
        return plan(client, store.database, source, keys, report=report, **options), report


def load_files(store, archive_replay, tmp_path, keys, days=(DAY,)) -> None:
    """The dump file of Binance BTCUSDT's DAY, then the verified archives of `keys` on `days`."""
    write_dump(
        tmp_path / "landing" / f"BTCUSDT-trades-{DAY}.csv", generate_trades("BTCUSDT", DAY, 2000, seed=1)
    )
    engine_load(
        store,
        dump_feed(
            tmp_path / "landing", [SPOT], engine_reads_files=True, database=store.database, run_id="dump"
        ),
        "dump",
    )
    slices = [SliceKey(k.dataset, k.venue, k.instrument, day) for k in keys for day in days]
    kept, _ = planned(store, archives.SOURCE, slices)  # the archive outranks the dump: it loads
    run = ia.ArchiveRun(lambda: archives.ArchiveClient(archive_replay.base_url), tmp_path / "work")
    engine_load(store, run.feed(archives.daily_jobs(kept)), "archive")


def backfill(store, server, instance, *, replace: bool):
    """A REST backfill of DAY for Binance BTCUSDT as `marketdata backfill crypto [--replace]` runs it."""
    day = crypto_day(DAY, ["BINANCE:BTCUSDT"])
    config = backfill_config("crypto", replace=replace)
    config["ops"]["crypto_ticks"]["config"].update(day["config"]["crypto_ticks"])
    return launch(
        f"crypto {DAY}",
        ticks_definitions(),
        instance=instance,
        selection=[dg.AssetKey("crypto_trades")],
        resources={**crypto_resources(server.base_url), **stock_resources(UNUSED), "clickhouse": store},
        tags=day["tags"],
        run_config=config,
    )


def loads(store) -> pl.DataFrame:
    with (
        store.get_client() as client,
        Reader(clickhouse_client=client, clickhouse_database=store.database) as reader,
    ):
        return reader.loads("trades", "BINANCE", "BTCUSDT", DAY, NEXT)


def test_a_rest_backfill_leaves_the_archives_slice_saying_so_and_replace_loads_over_it(
    store, server, archive_replay, tmp_path
):
    load_files(store, archive_replay, tmp_path, [SPOT])
    assert loads(store).select("source", "id_sequence", "active").rows() == [
        ("BINANCE_ARCHIVE", "trade", True),
        ("BINANCE_DUMPS", "trade", False),
    ]
    with dg.DagsterInstance.ephemeral() as instance:
        covered = backfill(store, server, instance, replace=False)
        assert covered.success and covered.state == "ok"
        assert covered.covered == ["crypto_trades: 1 slice covered by BINANCE_ARCHIVE"]
        assert "; covered: crypto_trades: 1 slice covered by BINANCE_ARCHIVE" in covered.line()
        (event,) = instance.all_logs(covered.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
        metadata = {
            k: v.value for k, v in event.dagster_event.event_specific_data.materialization.metadata.items()
        }
        assert (metadata["slices_covered"], metadata["covered_by"], metadata["rows"]) == (
            1,
            {"BINANCE_ARCHIVE": 1},
            0,
        )
        assert not server.requests("BINANCE", endpoint="trades")  # covered: not even fetched
        assert loads(store).select("source", "active").rows() == [
            ("BINANCE_ARCHIVE", True),
            ("BINANCE_DUMPS", False),
        ]

        replaced = backfill(store, server, instance, replace=True)
        assert (
            replaced.success
            and replaced.rows == 300
            and not replaced.covered
            and "covered" not in replaced.line()
        )
    assert loads(store).select("source", "id_sequence", "active").rows() == [
        ("BINANCE", "aggTrade", True),
        ("BINANCE_ARCHIVE", "trade", False),
        ("BINANCE_DUMPS", "trade", False),
    ]

    # the next day from its archive: one read of both days says which ids each day's rows are
    run = ia.ArchiveRun(lambda: archives.ArchiveClient(archive_replay.base_url), tmp_path / "work")
    engine_load(store, run.feed(archives.daily_jobs([replace(SPOT, day=NEXT)])), "archive")
    with (
        store.get_client() as client,
        Reader(clickhouse_client=client, clickhouse_database=store.database) as reader,
    ):
        both = reader.trades("BINANCE", "BTCUSDT", day_window(DAY)[0], day_window(NEXT)[1])
        prices = reader.trades(
            "BINANCE", "BTCUSDT", day_window(DAY)[0], day_window(NEXT)[1], columns=["ts", "price"]
        )
    by_day = both.group_by(pl.col("ts").dt.date().alias("day"), "id_sequence").len().sort("day").rows()
    assert by_day == [(DAY, "aggTrade", 300), (NEXT, "trade", 500)]
    assert prices.columns == ["ts", "price"]  # no id read: nothing to state


def test_a_dump_or_a_live_load_after_the_archive_is_covered_and_counted_by_source(
    store, archive_replay, tmp_path
):
    load_files(store, archive_replay, tmp_path, [SPOT, USD_M])
    kept, report = planned(
        store, dumps.SOURCE, [SPOT], retry_failed=True
    )  # the dump loaded it: left out first
    assert kept == [] and report.left_out == {"trades": 1} and not report.covered
    kept, report = planned(store, dumps.SOURCE, [SPOT])  # a dump file dropped again
    assert kept == [] and report.covered == {"trades": {"BINANCE_ARCHIVE": 1}}
    assert report.metadata("trades")["covered_by"] == {"BINANCE_ARCHIVE": 1}
    live = STREAMS["BINANCE_UM"].live_source  # USD-M's live aggTrade stream: aggregate ids, below the archive
    kept, report = planned(store, live, [USD_M, replace(USD_M, day=NEXT)])
    assert (
        kept == [replace(USD_M, day=NEXT)]
        and report.covered_text("trades") == "1 slice covered by BINANCE_ARCHIVE"
    )
    assert planned(store, live, [USD_M], replace=True)[0] == [USD_M]
    assert planned(store, archives.SOURCE, [SPOT, USD_M])[0] == [SPOT, USD_M]  # an archive reloads its own
