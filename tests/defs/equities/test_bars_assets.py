"""The bars domain as Dagster runs it: landing files -> stock_1min_qfq -> monthly K-line and daily MAs,
against the native TimescaleDB (a database of its own), with the sensor and the checks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import date, datetime
from pathlib import Path

import dagster as dg
import polars as pl
import psycopg
import pytest

from marketdata_assets.core import calendars, settings
from marketdata_assets.replay import minute_csv as fx
from tests.conftest import recreate_database, worker_name

DB = worker_name("marketdata_bars_test")
RANGE = {
    "dagster/asset_partition_range_start": "2026-01-01",
    "dagster/asset_partition_range_end": "2026-03-01",
}
DAYS = calendars.trading_days("SSE", date(2026, 1, 1), date(2026, 3, 31))  # every trading day of Jan..Mar
FILES = [
    ("600000.SH", "cn_minute", {"bom": True}),
    ("000001.SZ", "cn_minute", {"encoding": "gbk"}),
    ("688981.SH", "tushare", {}),
]
NAMED = [
    ("600000.SH", "cn_minute", {"bom": True}),
    ("000001.SZ", "cn_minute", {"encoding": "gbk"}),
    ("688981.SH", "cn_minute", {}),
]  # layouts with a name column: check E passes


@pytest.fixture
def bars_env(tmp_path, monkeypatch):
    recreate_database(DB, extension=True)
    landing = tmp_path / "landing"
    landing.mkdir()
    monkeypatch.setenv("TIMESCALE_DB", DB)
    monkeypatch.setenv("MINUTE_BARS_LANDING_DIR", str(landing))
    monkeypatch.setenv("MARKETDATA_STATE_DIR", str(tmp_path / "state"))
    return landing


def write_files(landing: Path, files=FILES, seed: int = 0) -> pl.DataFrame:
    """Landing files in several layouts; returns the rows they must load (names filled where the layout has
    none)."""
    truths = []
    for i, (code, layout, options) in enumerate(files):
        truth = fx.make_bars(code, DAYS, seed=seed + i, base_price=10 + 5 * i)
        fx.write_text(landing / f"{code}.csv", fx.render(truth, layout), **options)
        truths.append(fx.expected(truth, layout))
    return pl.concat(truths).sort("code", "time")


def definitions():
    from marketdata_assets.definitions import defs

    return defs()


def materialize(keys: list[str], config: dict | None = None, tags: dict | None = RANGE, with_checks=False):
    with dg.DagsterInstance.ephemeral() as instance:
        d = definitions()
        assets = [a for a in d.assets if any(k.to_user_string() in keys for k in a.keys)]
        checks = list(d.asset_checks) if with_checks else []
        return dg.materialize(
            assets + checks,
            resources=d.resources,
            tags=tags,
            raise_on_error=False,
            instance=instance,
            run_config={"ops": {k: {"config": v} for k, v in (config or {}).items()}},
        )


def by_month(result) -> dict[str, dict]:
    """stock_1min_qfq's materialization of each month partition of the run, by partition key."""
    return {
        e.partition: {k: v.value for k, v in e.materialization.metadata.items()}
        for e in result.get_asset_materialization_events()
        if e.asset_key.to_user_string() == "stock_1min_qfq"
    }


def connect(**options) -> psycopg.Connection:
    return psycopg.connect(
        host="127.0.0.1",
        port=settings.get("TIMESCALE_PORT"),
        user="postgres",
        password=settings.get("TIMESCALE_PASSWORD"),
        dbname=DB,
        **options,
    )


def stored(query: str, params=()) -> list[tuple]:
    with connect() as conn:
        return conn.execute(query, params).fetchall()


def stored_minutes() -> pl.DataFrame:
    rows = stored(
        "SELECT time, code, name, open, high, low, close, volume, amount FROM stock_1min_qfq ORDER BY code, "
        "time"
    )
    return pl.DataFrame(rows, schema=fx.MINUTE_SCHEMA, orient="row")


def metadata(result, key: str, partition: str | None = None) -> dict:
    (event,) = [
        e
        for e in result.get_asset_materialization_events()
        if e.asset_key.to_user_string() == key and partition in (None, e.partition)
    ][:1]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def test_load_files_of_every_layout_then_skip_then_force_then_a_changed_file_replaces_one_month(bars_env):
    truth = write_files(bars_env)
    (bars_env / "unknown_layout.csv").write_text("foo,bar\n1,2\n")
    assert materialize(["bar_store"], tags=None).success

    first = materialize(["stock_1min_qfq"])
    assert first.success
    meta = metadata(first, "stock_1min_qfq")
    assert (meta["run_files_loaded"], meta["files_quarantined"], meta["run_rows_loaded"]) == (
        3,
        1,
        truth.height,
    )
    per_month = dict(truth.group_by(pl.col("time").dt.strftime("%Y-%m-01")).len().iter_rows())
    assert len(per_month) == 3 and {
        key: (m["month"], m["files_loaded"], m["rows_loaded"], m["run_partitions"])
        for key, m in by_month(first).items()
    } == {
        key: (key[:7], 3, rows, 3) for key, rows in per_month.items()
    }  # each month its own rows, the run's beside
    assert stored_minutes().equals(truth)
    quarantined = Path(os.environ["MARKETDATA_STATE_DIR"]) / "quarantine" / "minute_bars"
    assert "header not recognized" in (quarantined / "unknown_layout.csv.reason.txt").read_text()
    assert not (bars_env / "unknown_layout.csv").exists()
    assert meta["partial"] == (
        f"1 file quarantined, not loaded at all: unknown_layout.csv (moved to {quarantined} "
        "with their reasons)"
    )  # the run's line: [partial], not [ok]

    again = metadata(materialize(["stock_1min_qfq"]), "stock_1min_qfq")
    assert (again["run_files_loaded"], again["run_files_skipped"], again["run_rows_loaded"]) == (0, 3, 0)
    assert (again["files_loaded"], again["files_skipped"], again["rows_loaded"]) == (0, 3, 0)  # a month's own
    assert "partial" not in again  # nothing rejected: [ok]

    forced = metadata(
        materialize(["stock_1min_qfq"], {"stock_1min_qfq": {"force": True, "workers": 1}}), "stock_1min_qfq"
    )
    assert forced["run_files_loaded"] == 3 and forced["rows_replaced"] == truth.height
    assert stored_minutes().equals(truth)  # replaced, never duplicated
    assert stored("SELECT count(*), sum(rows_loaded) FROM etl_metadata") == [
        (9, truth.height)
    ]  # 3 files x 3 months

    # a changed file replaces its rows, and one month loads alone
    changed = fx.make_bars("600000.SH", DAYS, seed=99, base_price=50)
    fx.write_text(bars_env / "600000.SH.csv", fx.render(changed, "cn_minute"), bom=True)

    feb = materialize(["stock_1min_qfq"], tags={"dagster/partition": "2026-02-01"})
    assert metadata(feb, "stock_1min_qfq")["run_files_loaded"] == 1  # only the changed file, only February
    rows = stored(
        "SELECT date_trunc('month', time)::date, round(avg(close)) FROM stock_1min_qfq "
        "WHERE code = '600000.SH' GROUP BY 1 ORDER BY 1"
    )
    assert [r[0] for r in rows] == [date(2026, 1, 1), date(2026, 2, 1), date(2026, 3, 1)]
    assert rows[1][1] >= 40 and rows[0][1] < 20  # February replaced by the new content, January untouched
    assert stored("SELECT count(*) FROM stock_1min_qfq WHERE code = '600000.SH'")[0][0] == changed.height


def test_rejected_lines_go_to_a_reject_file_and_the_rest_loads(bars_env):
    truth = fx.make_bars("600000.SH", DAYS[:3], seed=1)
    text = fx.render(truth, "tushare").splitlines()
    text[5] = text[5].replace(text[5].split(",")[2], "12.3abc")  # garbage number on physical line 6
    text[-1] = text[-1][: len(text[-1]) // 2]  # truncated last line
    (bars_env / "dirty.csv").write_text("\n".join(text))
    materialize(["bar_store"], tags=None)
    result = materialize(["stock_1min_qfq"], tags={"dagster/partition": "2026-01-01"})
    meta = metadata(result, "stock_1min_qfq")
    assert (meta["rows_loaded"], meta["rows_rejected"]) == (truth.height - 2, 2)
    rejects = (
        Path(os.environ["MARKETDATA_STATE_DIR"])
        / "quarantine"
        / "minute_bars"
        / "rejects"
        / "dirty.csv.rejects.csv"
    ).read_text()
    assert "\n6," in rejects and f"\n{len(text)}," in rejects


def test_kline_daily_ma_and_checks_and_the_same_kline_on_the_tsl_server(bars_env, pglite_server, monkeypatch):
    """The K-line, daily MAs and checks on the native server; then the same files on PGlite (TimescaleDB
    with the TSL features): the capability probe picks INSERT ... unnest and a real continuous
    aggregate, and the K-line equals the native server's table."""
    truth = write_files(bars_env, files=NAMED)
    materialize(["bar_store"], tags=None)
    result = materialize(["stock_1min_qfq", "stock_monthly_kline", "stock_daily_ma"], with_checks=True)
    assert result.success
    assert all(e.passed for e in result.get_asset_check_evaluations())
    # seed 004's A-E once, and the five per-month checks once per month of the range run
    partitions = sorted(
        (e.check_name, e.partition) for e in result.get_asset_check_evaluations() if e.partition
    )
    assert partitions == sorted(
        (name, month)
        for name in (
            "complete_minutes",
            "every_code_has_a_kline_row",
            "no_unit_stretch",
            "no_unit_stretch",
            "times_inside_window",
        )
        for month in ("2026-01-01", "2026-02-01", "2026-03-01")
    )
    assert len(result.get_asset_check_evaluations()) == 5 + 15

    kline = stored(
        "SELECT month::date, code, open, high, low, close, volume FROM stock_monthly_kline ORDER BY code, "
        "month"
    )
    clean = truth.filter(
        (pl.col("volume") >= 0)
        & (pl.col("amount") >= 0)
        & (pl.col("high") >= pl.max_horizontal("open", "close"))
        & (pl.col("low") <= pl.min_horizontal("open", "close"))
    )
    expected = (
        clean.sort("time")
        .group_by(pl.col("time").dt.truncate("1mo").dt.date().alias("month"), "code")
        .agg(
            pl.col("open").first(),
            pl.col("high").max(),
            pl.col("low").min(),
            pl.col("close").last(),
            pl.col("volume").sum(),
        )
        .sort("code", "month")
    )
    assert kline == [tuple(r) for r in expected.iter_rows()]
    kmeta = metadata(result, "stock_monthly_kline")
    assert kmeta["path"] == "table" and kmeta["created"] is True
    assert kmeta["monthly_candles"].count("data:image/svg+xml;base64,") == 3

    ma = stored("SELECT date, close, ma5, ma20 FROM stock_daily_ma WHERE code = '600000.SH' ORDER BY date")
    closes = [r[1] for r in ma]
    assert len(ma) == len(DAYS) and ma[3][2] is None and ma[19][3] is not None
    assert ma[4][2] == pytest.approx(sum(closes[0:5]) / 5) and ma[30][3] == pytest.approx(
        sum(closes[11:31]) / 20
    )

    # One month refreshes only its own window.
    refreshed = materialize(["stock_monthly_kline"], tags={"dagster/partition": "2026-02-01"})
    rmeta = metadata(refreshed, "stock_monthly_kline")
    assert (rmeta["action"], rmeta["window_start"], rmeta["window_end"], rmeta["run_rows_in_window"]) == (
        "refresh_window",
        "2026-02-01 00:00:00",
        "2026-03-01 00:00:00",
        3,
    )
    assert rmeta["rows"] == 3 and [
        metadata(result, "stock_monthly_kline", month)["rows"]  # each month its own rows
        for month in ("2026-01-01", "2026-02-01", "2026-03-01")
    ] == [3, 3, 3]

    # The same files on the TSL server, the K-line compared with the native server's table.
    query = (
        "SELECT month, code, name, open, high, low, close, volume, amount FROM stock_monthly_kline ORDER BY "
        "code, month"
    )
    native = stored(query)

    for name, value in {
        "TIMESCALE_PORT": pglite_server["port"],
        "TIMESCALE_DB": "postgres",
        "TIMESCALE_SSLMODE": "disable",
        "TIMESCALE_POOL_SIZE": 1,
    }.items():
        monkeypatch.setenv(name, str(value))

    def pglite() -> psycopg.Connection:
        return psycopg.connect(
            host="127.0.0.1",
            port=pglite_server["port"],
            user="postgres",
            password=settings.get("TIMESCALE_PASSWORD"),
            dbname="postgres",
            sslmode="disable",
            autocommit=True,
        )

    try:
        assert materialize(["bar_store"], tags=None).success
        result = materialize(["stock_1min_qfq", "stock_monthly_kline"], with_checks=True)
        assert result.success and all(e.passed for e in result.get_asset_check_evaluations())
        assert metadata(result, "stock_1min_qfq")["write_path"] == "INSERT ... SELECT FROM unnest"
        kmeta = metadata(result, "stock_monthly_kline")
        assert kmeta["path"] == "continuous_aggregate" and kmeta["watermark"] == "2026-04-01 00:00:00"
        with pglite() as conn:
            tsl = conn.execute(query).fetchall()
            kind = conn.execute(
                "SELECT count(*) FROM timescaledb_information.continuous_aggregates "
                "WHERE view_name = 'stock_monthly_kline'"
            ).fetchone()[0]
    finally:  # the PGlite server is shared by the session: leave its public schema as found
        with pglite() as conn:
            conn.execute("DROP MATERIALIZED VIEW IF EXISTS stock_monthly_kline CASCADE")
            for table in (
                "stock_1min_qfq",
                "etl_metadata",
                "minute_bar_landing_files",
            ):  # one per DROP: hypertable
                conn.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
    assert kind == 1 and len(native) == 9
    # Identical rows; sums of float8 may differ in the last bits with the order of addition
    # (parallel workers on the native server), so volume and amount compare to 1e-12 relative.
    assert [r[:7] for r in tsl] == [r[:7] for r in native]
    assert [r[7:] for r in tsl] == [pytest.approx(r[7:], rel=1e-12) for r in native]


def test_blocking_check_fails_on_missing_names(bars_env):
    write_files(bars_env, files=[("300750.SZ", "tushare", {})])  # this layout has no name column
    materialize(["bar_store"], tags=None)
    result = materialize(["stock_1min_qfq", "stock_monthly_kline"], with_checks=True)
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert (
        not evaluations["E_missing_name"].passed
        and evaluations["E_missing_name"].metadata["rows_found"].value == 3
    )
    assert evaluations["B_negative_volume_or_amount"].passed


def ranges(result) -> list[tuple[str, str]]:
    return [
        (r.tags["dagster/asset_partition_range_start"], r.tags["dagster/asset_partition_range_end"])
        for r in result.run_requests
    ]


def test_sensor_requests_months_of_new_and_changed_files(bars_env):
    from marketdata_assets.defs.equities.sensors import minute_bar_files

    with dg.DagsterInstance.ephemeral() as instance:
        context = dg.build_sensor_context(instance=instance)
        assert minute_bar_files(context).run_requests == []
        write_files(bars_env, files=FILES[:1])
        first = minute_bar_files(dg.build_sensor_context(instance=instance, cursor=context.cursor))
        assert ranges(first) == [("2026-01-01", "2026-03-01")]  # one range run, not one run per month
        second = minute_bar_files(dg.build_sensor_context(instance=instance, cursor=first.cursor))
        assert second.run_requests == []
        later = fx.make_bars("600000.SH", fx.trading_days(date(2026, 5, 1), 2), seed=5)
        path = bars_env / "600000.SH.csv"
        fx.write_text(path, fx.render(later, "cn_minute"))
        os.utime(path, ns=(time.time_ns(), json.loads(first.cursor)["mtime_ns"] + 1))
        third = minute_bar_files(dg.build_sensor_context(instance=instance, cursor=second.cursor))
        assert ranges(third) == [("2026-05-01", "2026-05-01")]


def test_sensor_leaves_out_months_a_later_run_loaded(bars_env):
    """What `make run` leaves: files loaded by a run that started after they were written. A sensor
    starting from scratch requests nothing for them, and only the month a newer file changed."""
    from marketdata_assets.defs.equities.sensors import minute_bar_files

    write_files(bars_env, files=FILES[:1])
    with dg.DagsterInstance.ephemeral() as instance:
        d = definitions()
        assets = [
            a
            for a in d.assets
            if dg.AssetKey("stock_1min_qfq") in a.keys or dg.AssetKey("bar_store") in a.keys
        ]
        assert dg.materialize(assets, instance=instance, resources=d.resources, tags=RANGE).success
        fresh = minute_bar_files(dg.build_sensor_context(instance=instance))
        assert fresh.run_requests == [] and json.loads(fresh.cursor)["mtime_ns"] > 0
        changed = fx.make_bars("600000.SH", fx.trading_days(date(2026, 2, 2), 2), seed=9)
        fx.write_text(bars_env / "600000.SH.feb.csv", fx.render(changed, "cn_minute"))
        again = minute_bar_files(dg.build_sensor_context(instance=instance, cursor=fresh.cursor))
        assert ranges(again) == [("2026-02-01", "2026-02-01")]


KILL_SCRIPT = """
import sys
from marketdata_assets.core import settings
from marketdata_assets.core import calendars
settings.apply_defaults()
from tests.defs.equities.test_bars_assets import materialize
materialize(["stock_1min_qfq"], {"stock_1min_qfq": {"force": True, "workers": 1}})
"""


def test_killed_load_then_rerun_gives_exactly_the_uninterrupted_rows(bars_env):
    big = [(f"{600000 + i}.SH", "tushare", {}) for i in range(6)]  # one at a time: a second or more of COPYs
    truth = write_files(bars_env, files=big)
    materialize(["bar_store"], tags=None)
    proc = subprocess.Popen(
        [sys.executable, "-c", KILL_SCRIPT],
        env=os.environ.copy(),
        cwd=Path(__file__).parents[3],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    # one session polls (autocommit: each query sees the activity anew): a connection a poll cost a server
    # backend and a password exchange (~25 ms, ~6 ms of it this process's CPU) each time while the child
    # started
    with connect(autocommit=True) as watcher:
        copying = "SELECT 1 FROM pg_stat_activity WHERE datname = %s AND query ILIKE 'COPY%%'"
        while not watcher.execute(copying, (DB,)).fetchall():
            assert time.monotonic() < deadline and proc.poll() is None, "the load never reached COPY"
            time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = stored("SELECT count(*) FROM stock_1min_qfq")[0][0]
    assert partial < truth.height  # killed mid-way: some files (or none) committed, not all
    assert materialize(["stock_1min_qfq"]).success
    assert stored_minutes().equals(truth)


def test_month_checks_fail_specifically_and_the_coverage_asset_draws_the_month(bars_env):
    """Issue #13 in the UI's terms, on January 2026: a hole and a suspended day (ERROR), an index file
    without amount (no K-line row: ERROR naming `amount >= 0`, while A-E stay green), a x100 stretch
    that reverts (WARN); the run itself succeeds (none of them blocks) and bars_coverage draws it."""
    jan = [d for d in DAYS if d.month == 1]
    complete = fx.make_bars("600000.SH", jan, seed=1)
    holed = fx.make_bars("000001.SZ", jan, seed=2).filter(
        ~((pl.col("time") >= datetime(2026, 1, 7, 10, 1)) & (pl.col("time") <= datetime(2026, 1, 7, 10, 3)))
        & (pl.col("time").dt.date() != date(2026, 1, 20))
    )
    index = fx.make_bars("000001.SH", jan, seed=3, base_price=3200.0)
    stretch = fx.make_bars("688981.SH", jan, seed=4).with_columns(
        pl.when(pl.col("time").is_between(datetime(2026, 1, 12, 13, 1), datetime(2026, 1, 13, 11, 30)))
        .then(pl.col(c) * 100)
        .otherwise(pl.col(c))
        .alias(c)
        for c in ("open", "high", "low", "close")
    )
    for frame, name, layout in (
        (complete, "600000.SH.csv", "cn_minute"),
        (holed, "000001.SZ.csv", "cn_minute"),
        (index, "000001.XSHG.csv", "symbol_dt"),
        (stretch, "688981.SH.csv", "cn_minute"),
    ):
        fx.write_text(bars_env / name, fx.render(frame, layout))
    materialize(["bar_store"], tags=None)
    result = materialize(
        ["stock_1min_qfq", "stock_monthly_kline", "bars_coverage"],
        with_checks=True,
        tags={"dagster/partition": "2026-01-01"},
    )
    assert result.success
    found = {(e.asset_key.to_user_string(), e.check_name): e for e in result.get_asset_check_evaluations()}
    assert all(
        found[("stock_monthly_kline", f"{k}")].passed
        for k in (
            "A_extreme_monthly_gain",
            "B_negative_volume_or_amount",
            "C_price_logic",
            "D_volume_without_amount",
            "E_missing_name",
        )
    )

    complete_minutes = found[("stock_1min_qfq", "complete_minutes")]
    assert (complete_minutes.passed, complete_minutes.severity, complete_minutes.partition) == (
        False,
        dg.AssetCheckSeverity.ERROR,
        "2026-01-01",
    )
    assert (
        "1 code-day(s) with 3 missing minute(s): 000001.SZ 2026-01-07 3 missing (10:01-10:03)"
        in complete_minutes.description
    )
    assert (
        "1 suspended code-day(s) (no bar on a trading day): 000001.SZ 01-20" in complete_minutes.description
    )
    assert complete_minutes.metadata["missing_minutes"].value == 3

    coverage_check = found[("stock_monthly_kline", "every_code_has_a_kline_row")]
    assert (coverage_check.passed, coverage_check.severity) == (False, dg.AssetCheckSeverity.ERROR)
    assert (
        "000001.SH: every row removed by the cleaning WHERE: `amount >= 0` fails for 4,800 of 4,800 rows "
        "(4,800 with amount NULL: no amount column in the file?)" in coverage_check.description
    )

    units_check = found[("stock_1min_qfq", "no_unit_stretch")]
    assert (units_check.passed, units_check.severity) == (False, dg.AssetCheckSeverity.WARN)
    assert "688981.SH 2026-01-12 13:01 .. 2026-01-13 11:30 (240 bars at x" in units_check.description
    assert found[("stock_monthly_kline", "no_unit_stretch")].passed

    meta = metadata(result, "bars_coverage")
    assert meta["heat_map"].startswith("![2026-01 coverage](data:image/svg+xml;base64,")
    assert "| 000001.SZ | 94.94 | 1 | 1 | 0 |" in meta["heat_map"]  # (18 + 237 / 240 + 0) / 20 days
    assert "| all other 3 codes | 100.00 |" in meta["heat_map"]
    assert (meta["codes"], meta["incomplete_codes"]) == (4, 1)
    (month,) = meta["coverage"]
    assert month["rows"]["000001.SZ"][month["days"].index("2026-01-20")] == 0.0


def test_the_monthly_kline_is_due_after_its_schedule_and_the_minute_bars_have_no_deadline():
    from datetime import timedelta

    d = definitions()
    graph = d.resolve_asset_graph()
    policy = graph.get(dg.AssetKey("stock_monthly_kline")).freshness_policy
    schedule = next(s for s in d.schedules if s.name == "monthly_kline_after_close")
    assert isinstance(policy, dg.FreshnessPolicy) and policy.timezone == schedule.execution_timezone
    run_at, deadline = schedule.cron_schedule.split(), policy.deadline_cron.split()
    assert deadline[2:] == run_at[2:]  # the same days
    run_minute, deadline_minute = (
        int(run_at[1]) * 60 + int(run_at[0]),
        int(deadline[1]) * 60 + int(deadline[0]),
    )
    window = policy.lower_bound_delta
    assert (
        deadline_minute - window // timedelta(minutes=1) < run_minute < deadline_minute
    )  # the run is in the window
    # loaded when the vendor's files land (the sensor): a cron deadline would go red on every exchange holiday
    assert graph.get(dg.AssetKey("stock_1min_qfq")).freshness_policy is None


@pytest.mark.parametrize("asset", ["stock_1min_qfq", "stock_monthly_kline"])
def test_a_bars_asset_run_alone_on_a_fresh_database_bootstraps_the_store_first(bars_env, asset):
    """What a sensor's, a schedule's or the UI's run of one asset does on a database bar_store never
    ran on (no extension): the hypertable, as the asset graph makes it, and the metadata says so."""
    truth = write_files(bars_env, files=FILES[:1])
    recreate_database(DB)  # createdb: no extension
    result = materialize([asset])
    assert result.success
    meta = metadata(result, asset)
    assert stored("SELECT extname FROM pg_extension WHERE extname = 'timescaledb'") == [("timescaledb",)]
    assert stored("SELECT hypertable_name FROM timescaledb_information.hypertables") == [("stock_1min_qfq",)]
    assert stored("SELECT indexname FROM pg_indexes WHERE tablename = 'stock_1min_qfq'") == [
        ("stock_1min_qfq_code_time",)
    ]
    assert "degraded" not in meta
    if asset == "stock_1min_qfq":
        assert (meta["store_mode"], meta["extension_created"], meta["run_rows_loaded"]) == (
            "hypertable",
            True,
            truth.height,
        )
    else:
        assert meta["aggregation"].startswith("table refreshed per month with time_bucket and first/last")


def test_a_month_past_the_library_s_calendar_is_a_provisional_warn_and_drawn_so(bars_env, monkeypatch):
    """complete_minutes in Dagster when exchange-calendars' XSHG ends inside the month (as it ends on
    2026-12-31 for 2027's months; simulated on 2026-01-15, as no 2027 month can be judged before it
    starts): complete bars give a WARN naming the library version and the provisional days, and
    bars_coverage lists those days."""
    from importlib.metadata import version

    known = calendars._known_until
    monkeypatch.setattr(
        calendars,
        "_known_until",
        lambda cal: min(known(cal), date(2026, 1, 15)) if cal.name == "XSHG" else known(cal),
    )
    jan = [d for d in DAYS if d.month == 1]
    for i, code in enumerate(("600000.SH", "000001.SZ")):
        fx.write_text(bars_env / f"{code}.csv", fx.render(fx.make_bars(code, jan, seed=i), "cn_minute"))
    materialize(["bar_store"], tags=None)
    result = materialize(
        ["stock_1min_qfq", "bars_coverage"], with_checks=True, tags={"dagster/partition": "2026-01-01"}
    )
    assert result.success
    found = {
        e.check_name: e
        for e in result.get_asset_check_evaluations()
        if e.asset_key.to_user_string() == "stock_1min_qfq"
    }
    grid = found["complete_minutes"]
    later = [d for d in jan if d > date(2026, 1, 15)]
    assert (grid.passed, grid.severity, grid.partition) == (False, dg.AssetCheckSeverity.WARN, "2026-01-01")
    assert grid.description.startswith(
        f"provisional: exchange-calendars {version('exchange-calendars')} knows XSHG "
        "sessions only until 2026-01-15"
    )
    assert (
        f"Days judged provisionally: {', '.join(f'{d:%m-%d}' for d in later)}. 2026-01: 2 codes x {len(jan)} "
        "trading days"
        in grid.description
        and grid.description.endswith(": complete")
    )
    assert grid.metadata["provisional_days"].value == [str(d) for d in later]
    assert found["no_unit_stretch"].passed
    (drawn,) = metadata(result, "bars_coverage")["coverage"]
    assert drawn["provisional_days"] == [str(d) for d in later] and drawn["overall_percent"] == 100
