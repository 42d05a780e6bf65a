"""Binance liquidations from data.binance.vision's USD-M `liquidationSnapshot` archives
(sources/binance_vision/archives.py, dumps.py; replay/binance_archive.py): the reader on the
files' real layout (a header, every line twice, ms times), a replayed day loaded end to end into
`liquidations` and recorded, a checksum mismatch refused, a damaged line failing its archive
with the file named, a day taken off the site reported missing."""

from __future__ import annotations

import hashlib
import io
import zipfile
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from marketdata_assets.core.http import SourceDataError
from marketdata_assets.datasets.frames import LIQUIDATIONS_SCHEMA
from marketdata_assets.datasets.slices import SliceKey
from marketdata_assets.datasets.wire import FetchNotes, noting
from marketdata_assets.ingest import archives as ia
from marketdata_assets.ingest.engine import Engine
from marketdata_assets.replay.binance_archive import ArchiveReplayConfig, BinanceArchiveReplayServer
from marketdata_assets.sources.binance_vision import archives as a
from marketdata_assets.sources.binance_vision.archive_settings import ArchiveSettings
from marketdata_assets.sources.binance_vision.dumps import DumpReader, parse_dump_name, read_dump
from marketdata_assets.stores.clickhouse import tables as ct

DAY = date(2024, 3, 31)  # the last USD-M day published
NAME = "BTCUSDT-liquidationSnapshot-2024-03-31"
PATH = f"data/futures/um/daily/liquidationSnapshot/BTCUSDT/{NAME}.zip"
SLICE = SliceKey("liquidations", "BINANCE_UM", "BTCUSDT", DAY)
HEADER = (
    "time,side,order_type,time_in_force,original_quantity,price,average_price,order_status,"
    "last_fill_quantity,accumulated_fill_quantity"
)
# The real files' layout (docs/crypto-datasets.md, "Liquidation snapshot files"): a header, ms, BUY/SELL,
# every line twice.
SAMPLE = f"""{HEADER}
1711843200123,SELL,LIMIT,IOC,0.014,69660.2,70010.5,FILLED,0.014,0.014
1711843200123,SELL,LIMIT,IOC,0.014,69660.2,70010.5,FILLED,0.014,0.014
1711843260500,BUY,LIMIT,IOC,1.5,71254.6,70900,FILLED,0.5,1.5
1711843260500,BUY,LIMIT,IOC,1.5,71254.6,70900,FILLED,0.5,1.5
1711843261000,BUY,LIMIT,IOC,0.00001,71300,0,EXPIRED,0,0
1711929599999,SELL,LIMIT,IOC,20,3350.1,3366.9,FILLED,20,20
"""


def utc_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def zipped(path: Path, text: str) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(path.with_suffix(".csv").name, text)
    return path


# --------------------------------------------------------------------------------------------
# The family, its paths and the reader on the files' layout
# --------------------------------------------------------------------------------------------


def test_the_family_its_dataset_and_its_paths():
    assert a.dataset_of("liquidationSnapshot") == "liquidations"
    key = a.ArchiveKey.of_slice(SLICE)
    assert (key.market, key.family, key.interval) == ("um", "liquidationSnapshot", "")
    assert key.name == NAME + ".zip" and key.path == "/" + PATH and key.slices() == (SLICE,)
    assert parse_dump_name(f"{NAME}.zip")[:2] == ("BTCUSDT", "liquidationSnapshot")
    assert a.archived(SLICE) and not a.archived(SliceKey("liquidations", "BINANCE", "BTCUSDT", DAY))
    assert a.archived(SliceKey("trades", "BINANCE", "BTCUSDT", DAY))
    base = "https://data.binance.vision"
    settings = ArchiveSettings(
        base, base, "X", date(2024, 1, 1), ("spot", "um"), ("trades", "liquidationSnapshot"), (), ("BTCUSDT",)
    )
    assert {k.family for k in ia.monthly_keys(settings, [DAY])} == {"trades"}  # published daily only


def test_the_reader_reads_the_real_layout_once_per_liquidation(tmp_path):
    path = zipped(tmp_path / f"{NAME}.zip", SAMPLE)
    reader = DumpReader(path, market="um", family="liquidationSnapshot", day=DAY, venue="BINANCE_UM")
    with noting(notes := FetchNotes()):
        frame = pl.concat(list(reader.batches(batch_bytes=150)))  # lines repeated across batches too
    expected = pl.DataFrame(
        {
            "ts": [utc_ms(1711843200123), utc_ms(1711843260500), utc_ms(1711929599999)],
            "venue": ["BINANCE_UM"] * 3,
            "instrument": ["BTCUSDT"] * 3,
            "liquidation_id": [
                "1711843200123000-sell-0.014-70010.5",
                "1711843260500000-buy-1.5-70900",
                "1711929599999000-sell-20-3366.9",
            ],
            "side": ["sell", "buy", "sell"],
            "price": [70010.5, 70900.0, 3366.9],
            "quantity": [0.014, 1.5, 20.0],
            "amount": [70010.5 * 0.014, 70900.0 * 1.5, 3366.9 * 20.0],
            "order_price": [69660.2, 71254.6, 3350.1],
        },
        schema=LIQUIDATIONS_SCHEMA,
    )  # the order's own price
    assert_frame_equal(frame, expected)
    assert reader.dropped == {"duplicates": 2, "not_filled": 1}
    assert notes.dropped_on == {("BTCUSDT", DAY): {"duplicates": 2, "not_filled": 1}}
    # a price of 0 (no fills averaged) takes the order's price; a file without a header reads the same
    headless = tmp_path / "x" / f"{NAME}.csv"
    headless.parent.mkdir()
    headless.write_text("1711843200123,BUY,LIMIT,IOC,2,71000,0,FILLED,2,2\n")
    row = read_dump(headless, market="um", venue="BINANCE_UM").row(0, named=True)
    assert (row["price"], row["quantity"], row["amount"], row["liquidation_id"], row["order_price"]) == (
        71000.0,
        2.0,
        142000.0,
        "1711843200123000-buy-2-71000",
        71000.0,
    )


@pytest.mark.parametrize(
    "text, message",
    [
        (SAMPLE.replace("FILLED,20,20", "FILLED,20"), "have no accumulated_fill_quantity"),
        (SAMPLE.replace(",SELL,LIMIT,IOC,20", ",LONG,LIMIT,IOC,20"), "the side is not BUY or SELL"),
        (SAMPLE.replace("FILLED,20,20", "FILLED,20,21"), "accumulated_fill_quantity is not between 0 and"),
        (SAMPLE.replace("IOC,20,3350.1", "IOC,20,-1"), "the price is not positive"),
        (SAMPLE.replace("time,side", "time,symbol,side"), "is not the layout time,side,order_type"),
        (
            SAMPLE.replace(
                "70900,FILLED,0.5,1.5", "70900,EXPIRED,0.5,1.5", 1
            ),  # not the doubled line any more
            "liquidation 1711843260500000-buy-1.5-70900 on two different lines",
        ),
    ],
)
def test_a_malformed_line_fails_the_file_naming_it(tmp_path, text, message):
    path = zipped(tmp_path / f"{NAME}.zip", text)
    with pytest.raises(SourceDataError, match="BTCUSDT") as error:
        read_dump(path, market="um", family="liquidationSnapshot", day=DAY, venue="BINANCE_UM")
    assert f"{NAME}.zip: " in str(error.value) and message in str(error.value)


def test_a_header_only_file_is_a_day_without_liquidations(tmp_path):
    path = zipped(tmp_path / f"{NAME}.zip", HEADER + "\n")
    frame, figures = a.read_archive(path, a.ArchiveKey.of_slice(SLICE), [DAY])
    assert frame.height == 0 and frame.schema == pl.Schema(LIQUIDATIONS_SCHEMA) and figures == {}


# --------------------------------------------------------------------------------------------
# Through the replay and the engine
# --------------------------------------------------------------------------------------------


@pytest.fixture
def replay():
    config = ArchiveReplayConfig(
        seed=5,
        trades_per_day=400,
        published_until=date(2024, 4, 3),
        corrupt={PATH.replace("2024-03-31", "2024-03-30")},
        malformed={PATH.replace("2024-03-31", "2024-03-29"): 7},
        missing={PATH.replace("2024-03-31", "2024-04-01")},
    )
    with BinanceArchiveReplayServer(config) as server:
        yield server


def load(store, replay, tmp_path, days, run_id="run-1"):
    run = ia.ArchiveRun(lambda: a.ArchiveClient(replay.base_url), tmp_path / "work", workers=2)
    keys = [SliceKey("liquidations", "BINANCE_UM", "BTCUSDT", d) for d in days]
    report = Engine(store.get_client, store.database, run_id).run([[run.feed(a.daily_jobs(keys))]])
    with store.get_client() as client:
        return report, run.record(client, store.database, report, run_id)


def stored(store, day: date = DAY) -> pl.DataFrame:
    with store.get_client() as client:
        return ct.read_range(
            client,
            store.database,
            "liquidations",
            "BINANCE_UM",
            "BTCUSDT",
            day,
            date.fromordinal(day.toordinal() + 1),
        )


def test_a_replayed_day_loads_into_liquidations_and_is_recorded(store, replay, tmp_path):
    body = zipfile.ZipFile(io.BytesIO(httpx.get(f"{replay.base_url}/{PATH}").content)).read(f"{NAME}.csv")
    lines = body.decode().splitlines()
    assert lines[0] == HEADER and lines[1] == lines[2] and len(lines) % 2 == 1  # as Binance writes them
    report, recorded = load(store, replay, tmp_path, [DAY])
    outcome = report.outcomes[SLICE]
    truth = replay.truth(PATH)
    assert outcome.status == "ok", outcome.error
    assert 10 < truth.height == outcome.rows == (len(lines) - 1) // 2
    assert dict(outcome.dropped) == {"duplicates": truth.height}
    assert_frame_equal(stored(store), truth.sort("ts", "liquidation_id"))
    assert set(truth["side"]) == {"buy", "sell"}
    (record,) = recorded
    published = httpx.get(f"{replay.base_url}/{PATH}.CHECKSUM").text
    assert published == f"{record['sha256']}  {NAME}.zip\n" and record["published_sha256"] == record["sha256"]
    assert (record["dataset"], record["venue"], record["family"], record["interval"]) == (
        "liquidations",
        "BINANCE_UM",
        "liquidationSnapshot",
        "",
    )
    first, last = (int(truth["ts"].dt.epoch("us").min()), int(truth["ts"].dt.epoch("us").max()))
    assert (record["rows"], record["first_id"], record["last_id"], record["id_count"]) == (
        truth.height,
        first,
        last,
        truth.height,
    )
    with store.get_client() as client:
        figures = ia.stored_figures(client, store.database, "liquidations", "BINANCE_UM", "BTCUSDT", [DAY])
    assert (figures[DAY].rows, figures[DAY].first_id, figures[DAY].last_id, figures[DAY].ids) == (
        truth.height,
        first,
        last,
        truth.height,
    )
    assert not list((tmp_path / "work").rglob("*.zip"))


def test_a_bad_checksum_a_damaged_line_and_a_withdrawn_day_fail_their_archive_only(store, replay, tmp_path):
    days = [date(2024, 3, 29), date(2024, 3, 30), DAY, date(2024, 4, 1)]
    report, recorded = load(store, replay, tmp_path, days)
    outcome = {k.day: o for k, o in report.outcomes.items()}
    corrupt = PATH.replace("2024-03-31", "2024-03-30")
    published = httpx.get(f"{replay.base_url}/{corrupt}.CHECKSUM").text.split()[0]
    served = hashlib.sha256(httpx.get(f"{replay.base_url}/{corrupt}").content).hexdigest()
    assert (
        outcome[days[1]].status == "failed"
        and (
            f"BTCUSDT-liquidationSnapshot-2024-03-30.zip: SHA-256 mismatch: expected {published} (published "
            f"in BTCUSDT-liquidationSnapshot-2024-03-30.zip.CHECKSUM), got {served}"
        )
        in outcome[days[1]].error
    )
    damaged = outcome[days[0]]
    assert (
        damaged.status == "failed"
        and "BTCUSDT-liquidationSnapshot-2024-03-29.zip: " in damaged.error
        and "have no accumulated_fill_quantity" in damaged.error
    )
    assert outcome[days[3]].status == "failed" and outcome[days[3]].error.startswith(
        "missing: BTCUSDT-liquidationSnapshot-2024-04-01.zip is not published"
    )
    assert outcome[DAY].status == "ok" and [r["day"] for r in recorded] == [DAY]
    assert [stored(store, d).height for d in days[:2]] == [0, 0] and stored(store).height == outcome[DAY].rows
    assert httpx.get(f"{replay.base_url}/{PATH.replace('futures/um', 'spot')}").status_code == 404


# --------------------------------------------------------------------------------------------
# Dagster: binance_archive_liquidations, from the config's families
# --------------------------------------------------------------------------------------------


def test_the_liquidations_asset_loads_a_usd_m_partition_and_asks_nothing_for_spot(
    store, replay, tmp_path, monkeypatch
):
    import importlib

    import dagster as dg
    import yaml

    from marketdata_assets.defs.archives import archives as defs
    from marketdata_assets.defs.upkeep.store import tick_store
    from marketdata_assets.sources.config import CONFIG_ENV, DEFAULT_CONFIG

    data = yaml.safe_load(DEFAULT_CONFIG.read_text(encoding="utf-8"))
    data["binance_archives"].update(
        start_date="2024-03-01", families=["trades", "liquidationSnapshot"], instruments=["BTCUSDT"]
    )
    (tmp_path / "sources.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    monkeypatch.setenv(CONFIG_ENV, str(tmp_path / "sources.yaml"))
    monkeypatch.setenv("BINANCE_ARCHIVE_BASE_URL", replay.base_url)
    monkeypatch.setenv("MARKETDATA_STATE_DIR", str(tmp_path))
    try:
        mine = importlib.reload(defs)  # the assets of this config
        assert mine.ARCHIVE_ASSETS == {
            "trades": "binance_archive_trades",
            "liquidations": "binance_archive_liquidations",
        }
        with dg.DagsterInstance.ephemeral() as instance:  # in memory: no commit per event
            for partition in (f"{DAY}|BINANCE_UM", f"{DAY}|BINANCE"):  # BTCUSDT of each: the config's one
                result = dg.materialize(
                    [tick_store, mine.binance_archives],
                    resources={"clickhouse": store},
                    instance=instance,
                    selection=["binance_archive_liquidations"],
                    partition_key=partition,
                )
                assert result.success
                (event,) = result.get_asset_materialization_events()
                assert event.asset_key == dg.AssetKey("binance_archive_liquidations")
                metadata = event.materialization.metadata
                if partition.endswith("BINANCE_UM"):
                    assert metadata["rows"].value == replay.truth(PATH).height > 10
                    assert_frame_equal(stored(store), replay.truth(PATH).sort("ts", "liquidation_id"))
                    assert f"{NAME}.zip" in metadata["archives"].value
                else:
                    assert metadata["rows"].value == 0
        assert [p for p, _ in replay.requests()] == [f"/{PATH}.CHECKSUM", f"/{PATH}"]  # none for spot
    finally:
        monkeypatch.undo()
        importlib.reload(defs)
