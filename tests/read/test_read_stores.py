"""The read API on TimescaleDB (minute bars loaded by the minute-bar loader from replayed CSV files,
the monthly K-line refreshed from them) and MongoDB (alphas imported by the importer): the rows
read are the rows stored, codes and times are normalized, and `as_of` is refused saying why."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from marketdata_assets.ingest.alphas.importer import import_files
from marketdata_assets.ingest.minute_bars.loader import file_sha256, load_file
from marketdata_assets.read import AsOfUnsupported, MissingDays, Reader
from marketdata_assets.read.conventions import ADJUSTMENT, LABEL
from marketdata_assets.read.coverage import SCHEMA
from marketdata_assets.read.timescale import BEIJING, MINUTE_BARS_SCHEMA
from marketdata_assets.replay.alpha_factory import make_alpha
from marketdata_assets.replay.minute_csv import expected, make_bars, render, trading_days, write_text
from marketdata_assets.replay.tushare import ashare_minutes
from marketdata_assets.sources.minute_csv.reader import MINUTE_SCHEMA
from marketdata_assets.sources.tushare.parse import parse_stk_mins
from marketdata_assets.sources.tushare.records import STK_MINS_FIELDS
from marketdata_assets.stores.clickhouse import writer
from marketdata_assets.stores.timescale import kline

DAYS = trading_days(date(2025, 1, 2), 3)
CODES = ["600000.SH", "000001.SZ"]
STATED_MINUTES = {
    **MINUTE_BARS_SCHEMA,
    "time": pl.Datetime("us", "Asia/Shanghai"),
    "label": LABEL,
    "adjustment": ADJUSTMENT,
}


@pytest.fixture
def minute_reader(minute_store, tmp_path):
    """Two codes x three January days loaded from one CSV file; the K-line refreshed for January."""
    truth = pl.concat([make_bars(code, DAYS, seed=i) for i, code in enumerate(CODES)])
    path = write_text(tmp_path / "bars.csv", render(truth, "cn_minute"))
    load_file(
        minute_store,
        path,
        "bars.csv",
        [date(2025, 1, 1)],
        sha256=file_sha256(path),
        use_copy=True,
        run_id="test",
        reject_dir=tmp_path / "rejects",
    )
    kline.refresh_window(minute_store, date(2025, 1, 1), date(2025, 2, 1))
    with Reader(timescale_conn=minute_store) as reader:
        yield reader, expected(truth, "cn_minute").sort("code", "time")


def test_minute_bars_read_as_loaded_with_codes_normalized_times_in_beijing_and_their_convention_stated(
    minute_reader,
):
    reader, truth = minute_reader
    with pytest.warns(MissingDays) as warned:  # the range runs past the file's three days
        got = reader.minute_bars(["SH600000", "000001"], DAYS[0], DAYS[-1] + (DAYS[1] - DAYS[0]) * 10)
    later = trading_days(DAYS[-1] + timedelta(days=1), 3)[0]
    assert (
        later in warned[0].message.missing["600000.SH"]
        and DAYS[0] not in warned[0].message.missing["600000.SH"]
    )
    assert "600000.SH" in str(warned[0].message) and "nothing stored" in str(warned[0].message)
    assert got.schema == pl.Schema(STATED_MINUTES)
    assert got["label"].unique().to_list() == ["end"] and got["adjustment"].unique().to_list() == ["qfq"]
    assert_frame_equal(
        got.drop("label", "adjustment"),
        truth.with_columns(pl.col("time").dt.replace_time_zone("Asia/Shanghai")),
    )
    # an aware end is converted to Beijing wall-clock: 03:30 UTC = 11:30 in Beijing
    morning = reader.minute_bars(
        "600000.SH", DAYS[1], datetime(DAYS[1].year, DAYS[1].month, DAYS[1].day, 3, 30, tzinfo=UTC)
    )
    assert morning.height == 119 and morning["time"].max().strftime("%H:%M") == "11:29"
    assert reader.minute_bars(None, DAYS[0], DAYS[1])["code"].unique().sort().to_list() == sorted(CODES)
    with pytest.warns(MissingDays):
        empty = reader.minute_bars("600000.SH", "2024-01-02", "2024-01-03")
    assert empty.height == 0 and empty.schema == pl.Schema(STATED_MINUTES)
    with pytest.raises(ValueError, match="A-share"):
        reader.minute_bars("600000.XX'; --", DAYS[0], DAYS[1])
    with pytest.raises(ValueError, match="IANA"):
        reader.minute_bars("600000.SH", DAYS[0], DAYS[1], tz="Beijing")


def test_the_monthly_kline_reads_as_refreshed_and_as_of_is_refused_saying_why(minute_reader):
    reader, truth = minute_reader
    got = reader.kline(CODES, "2025-01-01", "2025-02-01")
    first = truth.filter(pl.col("code") == "600000.SH")
    row = got.filter(pl.col("code") == "600000.SH").row(0, named=True)
    assert got.height == 2 and row["month"] == datetime(2025, 1, 1, tzinfo=BEIJING)
    assert (row["label"], row["adjustment"]) == ("start", "qfq")
    assert row["open"] == first["open"][0] and row["close"] == first["close"][-1]
    assert row["high"] == first["high"].max() and row["volume"] == pytest.approx(first["volume"].sum())
    in_utc = reader.kline(CODES, "2024-12-31T16:00", "2025-01-31T16:00", tz="UTC")  # naive bounds: UTC too
    assert in_utc["month"][0] == datetime(2024, 12, 31, 16, tzinfo=UTC) and in_utc.height == 2
    for call in (
        lambda: reader.kline(CODES, "2025-01-01", "2025-02-01", as_of="2025-01-10"),
        lambda: reader.minute_bars(CODES, DAYS[0], DAYS[1], as_of=datetime.now(UTC)),
    ):
        with pytest.raises(AsOfUnsupported, match="keep(s)? no earlier values"):
            call()


def test_both_a_share_minute_stores_read_in_one_convention_join_bar_for_bar(store, minute_store, tmp_path):
    """The same minutes through both paths: Tushare stk_mins (end-stamped, Beijing) parsed into ClickHouse
    bars_1m (start-stamped, UTC), and a CSV drop of the same rows loaded into stock_1min_qfq (end-stamped,
    Beijing). Read as label="start", tz="UTC", every bar of one store meets its twin in the other."""
    rows = [row for day in DAYS[:2] for row in ashare_minutes(5, "600000.SH", day, auction_bar=False)]
    answer = {
        "code": 0,
        "msg": "",
        "data": {"fields": list(STK_MINS_FIELDS), "items": [list(r) for r in rows]},
    }
    parsed = parse_stk_mins(answer, instrument="600000.SH").frame
    with store.get_client() as client:
        for day in DAYS[:2]:
            one = parsed.filter(pl.col("ts").dt.convert_time_zone("Asia/Shanghai").dt.date() == day)
            writer.write_slice(client, store.database, "bars_1m", one, "SSE", "600000.SH", day, "join-test")
    csv = pl.DataFrame(
        [
            (datetime.fromisoformat(t), code, "浦发银行", o, h, lo, c, v, a)
            for code, t, o, c, h, lo, v, a in rows
        ],
        schema=MINUTE_SCHEMA,
        orient="row",
    )
    path = write_text(tmp_path / "join.csv", render(csv, "cn_minute"))
    load_file(
        minute_store,
        path,
        "join.csv",
        [date(2025, 1, 1)],
        sha256=file_sha256(path),
        use_copy=True,
        run_id="join-test",
        reject_dir=tmp_path / "rejects",
    )
    with (
        store.get_client() as client,
        Reader(
            clickhouse_client=client, clickhouse_database=store.database, timescale_conn=minute_store
        ) as reader,
    ):
        start, end = datetime(2025, 1, 2, 1, 30), datetime(2025, 1, 3, 7, 0)  # UTC: both days' sessions
        clickhouse = reader.bars("SSE", "600000.SH", start, end)
        timescale = reader.minute_bars("600000.SH", start, end, label="start", tz="UTC")
        with pytest.raises(pl.exceptions.SchemaError):  # as stored the stamps cannot be joined by mistake
            clickhouse.join(reader.minute_bars("600000.SH", DAYS[0], DAYS[1]), left_on="ts", right_on="time")
    assert clickhouse.height == timescale.height == 480
    joined = clickhouse.join(timescale, left_on=["instrument", "ts"], right_on=["code", "time"], how="full")
    assert joined.height == 480 and joined["ts"].null_count() == joined["time"].null_count() == 0
    for column in ("open", "high", "low", "close", "volume", "amount"):
        assert (joined[column] - joined[f"{column}_right"]).abs().max() < 1e-9, column
    assert clickhouse["ts"].min() == datetime(2025, 1, 2, 1, 30, tzinfo=UTC)  # 09:30-09:31 Beijing
    assert set(zip(joined["adjustment"], joined["adjustment_right"])) == {
        ("none", "qfq")
    }  # stated, not hidden


def test_alphas_are_read_by_date_region_and_type_with_dates_in_utc(mongo, dbs, tmp_path, monkeypatch):
    new_york = ZoneInfo("America/New_York")
    made = [
        make_alpha(
            i,
            "SUPER" if i % 4 == 0 else "REGULAR",
            date_created=datetime(2025, 7, 1 + i, 10, tzinfo=new_york),
            region=("USA", "CHN")[i % 2],
        )
        for i in range(12)
    ]
    files = []
    for alpha in made:
        path = tmp_path / f"{alpha['id']}.json"
        path.write_text(json.dumps(alpha))
        files.append((path.name, path))
    import_files(files, db_regular=dbs[0], db_super=dbs[1])
    monkeypatch.setenv("ALPHA_DB_REGULAR", dbs[0].name)
    monkeypatch.setenv("ALPHA_DB_SUPER", dbs[1].name)
    with Reader(mongo_client=mongo.client) as reader:
        usa = reader.alphas("REGULAR", "2025-07-03", "2025-07-10", region="USA")
        every = reader.alphas(fields=["settings.instrumentType", "is.checks"])
        with pytest.raises(AsOfUnsupported, match="deep-merges"):
            reader.alphas(as_of="2025-07-05")
        with pytest.raises(ValueError, match="unknown alpha type"):
            reader.alphas("ATOM")
    want = [
        a["id"]
        for a in made
        if a["type"] == "REGULAR"
        and a["settings"]["region"] == "USA"
        and datetime(2025, 7, 3, tzinfo=UTC)
        <= datetime.fromisoformat(a["dateCreated"])
        < datetime(2025, 7, 10, tzinfo=UTC)
    ]
    assert usa["id"].to_list() == want and len(want) >= 2
    assert usa["dateCreated"].dtype == pl.Datetime("us", "UTC")
    assert usa["dateCreated"][0] == datetime.fromisoformat(
        next(a for a in made if a["id"] == want[0])["dateCreated"]
    )
    assert sorted(every["id"].to_list()) == sorted(a["id"] for a in made)
    assert every.filter(pl.col("type") == "SUPER").height == 3
    sharpe = {a["id"]: a["is"]["sharpe"] for a in made}
    assert dict(zip(every["id"], every["sharpe"])) == sharpe
    assert every["is.checks"].dtype == pl.String and json.loads(every["is.checks"][0])


def test_the_catalog_lists_every_store_and_a_name_nothing_is_stored_for_is_refused_naming_the_closest(
    store, minute_store, minute_reader, mongo, dbs, tmp_path, monkeypatch
):
    """Minute bars and K-line per code, alphas per type and region, next to the ClickHouse datasets; a store
    that cannot be reached warns naming it and the others are listed; a typo'd code, alpha type, region or
    `marketdata status` filter is an error naming the closest stored name."""
    from click.testing import CliRunner

    from marketdata_assets.apps.cli import cli
    from marketdata_assets.read import StoreNotRead

    _, truth = minute_reader
    made = [
        make_alpha(i, kind, date_created=datetime(2025, 7, day, 10, tzinfo=UTC), region=region)
        for i, (kind, region, day) in enumerate(
            [
                ("REGULAR", "USA", 1),
                ("REGULAR", "USA", 1),
                ("REGULAR", "USA", 3),
                ("REGULAR", "CHN", 2),
                ("SUPER", "CHN", 2),
            ]
        )
    ]
    files = []
    for alpha in made:
        (tmp_path / f"{alpha['id']}.json").write_text(json.dumps(alpha))
        files.append((f"{alpha['id']}.json", tmp_path / f"{alpha['id']}.json"))
    import_files(files, db_regular=dbs[0], db_super=dbs[1])
    monkeypatch.setenv("ALPHA_DB_REGULAR", dbs[0].name)
    monkeypatch.setenv("ALPHA_DB_SUPER", dbs[1].name)
    with (
        store.get_client() as client,
        Reader(
            clickhouse_client=client,
            clickhouse_database=store.database,
            timescale_conn=minute_store,
            mongo_client=mongo.client,
        ) as reader,
    ):
        frame = reader.catalog()
        for call, closest in (
            (lambda: reader.minute_bars("600001.SH", DAYS[0], DAYS[1]), "600000.SH"),
            (lambda: reader.kline(["000001.SZ", "000002.SZ"], "2025-01-01", "2025-02-01"), "000001.SZ"),
            (lambda: reader.alphas("REGULR"), "REGULAR"),
            (lambda: reader.alphas(region="USB"), "USA"),
        ):
            with pytest.raises(ValueError, match=f"closest: {closest}"):
                call()
    rows = {(r["dataset"], r["venue"], r["instrument"]): r for r in frame.iter_rows(named=True)}
    per_code = dict(truth.group_by("code").len().iter_rows())
    for code, venue in (("600000.SH", "SSE"), ("000001.SZ", "SZSE")):
        bars, kline_row = rows[("minute_bars", venue, code)], rows[("kline_monthly", venue, code)]
        assert (bars["first_day"], bars["last_day"], bars["days"], bars["missing_days"], bars["rows"]) == (
            DAYS[0],
            DAYS[-1],
            3,
            0,
            per_code[code],
        )
        assert (kline_row["first_day"], kline_row["rows"], kline_row["days"]) == (date(2025, 1, 1), 1, None)
    regular = rows[("alphas", "REGULAR", "USA")]
    assert (regular["first_day"], regular["last_day"], regular["days"], regular["rows"]) == (
        date(2025, 7, 1),
        date(2025, 7, 3),
        2,
        3,
    )
    assert rows[("alphas", "SUPER", "CHN")]["rows"] == rows[("alphas", "REGULAR", "CHN")]["rows"] == 1
    assert frame.schema == SCHEMA  # the ClickHouse datasets' columns, for every store

    monkeypatch.setenv("CLICKHOUSE_DSN", store.dsn)
    monkeypatch.setenv("CLICKHOUSE_DATABASE", store.database)
    monkeypatch.setenv("TIMESCALE_PORT", "1")  # nothing listens there: refused at once
    with (
        pytest.warns(StoreNotRead, match="TimescaleDB") as warned,
        Reader(mongo_client=mongo.client) as reader,
    ):
        partial = reader.catalog()
    assert [w.message.store for w in warned] == ["TimescaleDB"]
    assert set(partial["dataset"]) >= {"alphas"} and "minute_bars" not in set(partial["dataset"])

    schema = minute_store.execute("SELECT current_schema()").fetchone()[0]
    monkeypatch.setenv("TIMESCALE_PORT", str(minute_store.info.port))
    monkeypatch.setenv("TIMESCALE_DB", minute_store.info.dbname)
    monkeypatch.setenv(
        "PGOPTIONS", f"-c search_path={schema},public"
    )  # the CLI's connection sees the test's tables
    out = CliRunner().invoke(cli, ["status", "--dataset", "minute_bars"])
    assert out.exit_code == 0, out.output
    assert [line.split()[:6] for line in out.stdout.splitlines()[1:]] == [
        ["minute_bars", "SZSE", "000001.SZ", str(DAYS[0]), str(DAYS[-1]), "3"],
        ["minute_bars", "SSE", "600000.SH", str(DAYS[0]), str(DAYS[-1]), "3"],
    ]
    for option, typo, closest in (
        ("--dataset", "minute_bar", "minute_bars"),
        ("--venue", "REGULR", "REGULAR"),
    ):
        wrong = CliRunner().invoke(cli, ["status", option, typo])
        assert wrong.exit_code == 2 and f"closest: {closest}" in wrong.output, wrong.output
