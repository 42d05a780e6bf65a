"""The seeds' commands of issue #24 item 6 through `marketdata`, against the real stores and the stocks
replay (served by this test, configured as the vendors would be: no --demo): `ingest --symbols ALL`
is every code Tushare lists (asked once a Beijing day), `ingest --source yahoo`, `--max-workers`
reaching the run config, `load-minute-bars --aggregate --force-backfill` in one run, and
`package-alphas` (seed 000 step 2) round-tripping the landing files through packages. Usage errors are
parsed in this process (test_cli proves a real process's exit 2); every run is a real process."""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import psycopg
import pytest
import yaml

from marketdata_assets.core import calendars, settings
from marketdata_assets.datasets.alpha_files import iter_alpha_files, land_alpha
from marketdata_assets.replay import a_share_listing
from marketdata_assets.replay import minute_csv as fx
from marketdata_assets.replay.alpha_factory import NY, make_alphas
from marketdata_assets.replay.stock_market import StocksReplayConfig
from marketdata_assets.replay.stocks import StocksReplayServer
from marketdata_assets.sources.config import config_path
from tests.apps.cli.test_cli import CLI_TIMESCALE_DB, cli_env, in_process, marketdata  # noqa: F401 - cli_env is a fixture

DAY = "2025-06-05"  # a Thursday, a Shanghai session
LISTED = 18  # the 16 codes of the shipped sources config, and 2 of the synthetic ones


@pytest.fixture(scope="module")
def replay():
    with StocksReplayServer(StocksReplayConfig(tushare_listed=LISTED)) as server:
        yield server


@pytest.fixture(scope="module")
def vendors(cli_env, replay, tmp_path_factory):  # noqa: F811 - the fixture imported above
    """The environment with Tushare and Yahoo at the replay, and a sources config whose limits let a
    test's few dozen requests go at once (the shipped 200 a minute would take ~10 s)."""
    raw = yaml.safe_load(config_path().read_text())
    for entry in ("tushare", "yahoo"):
        raw["sources"][entry].update(requests_per_minute=60_000, max_concurrency=8)
    path = tmp_path_factory.mktemp("sources") / "data_providers.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True))
    return {
        **cli_env,
        "TUSHARE_BASE_URL": replay.base_url,
        "YAHOO_BASE_URL": replay.base_url,
        "TUSHARE_TOKEN": "replay-token",
        "TICKS_PROVIDERS_CONFIG": str(path),
    }


def latest_run(env: dict) -> dg.DagsterRun:
    os.environ.update({k: env[k] for k in ("DAGSTER_HOME", "DAGSTER_PG_DB")})
    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs(dg.RunsFilter(tags={"marketdata/launched_by": "marketdata CLI"}), limit=1)
        return runs[0]


def materialization(env: dict, run: dg.DagsterRun, asset: str) -> dict:
    os.environ.update({k: env[k] for k in ("DAGSTER_HOME", "DAGSTER_PG_DB")})
    with dg.DagsterInstance.get() as instance:
        records = instance.fetch_materializations(dg.AssetKey(asset), limit=1).records
        assert records and records[0].run_id == run.run_id, (
            f"{asset} was not materialized by run {run.run_id}"
        )
        return {k: v.value for k, v in records[0].asset_materialization.metadata.items()}


def stk_mins_codes(server: StocksReplayServer) -> set[str]:
    return {code for e in server.requests_for("tushare") if e["api"] == "stk_mins" for code in e["symbols"]}


def test_ingest_symbols_all_is_every_listed_code_asked_once_a_day(vendors, replay, monkeypatch):
    monkeypatch.setattr(os, "environ", dict(os.environ))
    replay.reset_counters()
    command = ["ingest", "--symbols", "ALL", "--start-date", DAY, "--end-date", DAY, "--max-workers", "3"]
    result = marketdata(vendors, *command)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"[ok] A-share bars {DAY}..{DAY} (every listed code): 2 assets, 1 partition" in result.stdout
    at = a_share_listing.FIELDS.index("list_status")
    listed = {row[0] for row in replay.tushare.listing() if row[at] == "L"}
    assert len(listed) == LISTED and stk_mins_codes(replay) == listed  # every listed code, nothing else
    assert {a_share_listing.DELISTED, a_share_listing.SUSPENDED}.isdisjoint(stk_mins_codes(replay))
    assert [e["api"] for e in replay.requests_for("tushare")].count("stock_basic") == 1
    run = latest_run(vendors)
    assert run.run_config["ops"]["a_share_bars"]["config"] == {"instruments": ["ALL"], "workers": 3}
    said = materialization(vendors, run, "a_share_bars_1m")["universe"]
    assert (
        said.startswith(f"{LISTED} codes Tushare lists (stock_basic list_status L, ")
        and "asked today" in said
    )
    beijing = datetime.now(timezone(timedelta(hours=8))).date()  # the day's file, which the next run reads
    kept = json.loads(
        (
            Path(vendors["MARKETDATA_STATE_DIR"]) / "listings" / f"tushare_stock_basic_L_{beijing}.json"
        ).read_bytes()
    )  # (test_tushare_listing: a second call of the day makes no request)
    assert kept["count"] == LISTED and {i["code"] for i in kept["instruments"]} == listed


def last_session(*venues: str) -> date:
    day = datetime.now(UTC).date() - timedelta(days=1)
    while not all(calendars.is_trading_day(venue, day) for venue in venues):
        day -= timedelta(days=1)
    return day


def test_ingest_from_yahoo(vendors, replay, monkeypatch):
    monkeypatch.setattr(os, "environ", dict(os.environ))
    day = last_session("NMS", "LSE").isoformat()  # Yahoo keeps about 30 days of 1-minute bars
    replay.reset_counters()
    result = marketdata(
        vendors,
        "ingest",
        "--provider",
        "yahoo",
        "--symbols",
        "AAPL,VOD.L",
        "--start-date",
        day,
        "--end-date",
        day,
        "--workers",
        "2",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"[ok] Yahoo bars {day}..{day} (2): 1 asset, 1 partition" in result.stdout
    assert {s for e in replay.requests_for("yahoo") for s in e["symbols"]} == {"AAPL", "VOD.L"}
    assert not replay.requests_for("tushare")
    run = latest_run(vendors)
    assert run.run_config["ops"]["yahoo_bars_1m"]["config"] == {
        "instruments": ["AAPL", "VOD.L"],
        "workers": 2,
    }
    assert materialization(vendors, run, "yahoo_bars_1m")["rows"] > 0


def test_bad_values_are_usage_errors_naming_them(vendors, monkeypatch):
    cases = [
        (["ingest", "--source", "yahoo", "--symbols", "ALL"], "ALL: Yahoo publishes no listing"),
        (
            ["ingest", "--symbols", "ALL", "600000.SH"],
            "ALL stands alone (every listed code), not with ['600000.SH']",
        ),
        (["ingest", "--symbols", "60000X"], "'60000X': invalid A-share code"),
        (["ingest", "--source", "bloomberg"], "'bloomberg' is not one of 'tushare', 'yahoo'"),
        (
            ["load-minute-bars", "--force-backfill"],
            "--force-backfill recomputes the monthly K-line: add --aggregate",
        ),
        (
            ["package-alphas", "--start-month", "2025-06", "--account", "bad/name"],
            "invalid account 'bad/name'",
        ),
    ]
    for args, said in cases:
        if args[0] == "ingest":
            args = [*args, "--start-date", DAY, "--end-date", DAY]
        result = in_process(monkeypatch, vendors, *args)
        assert result.exit_code == 2 and said in result.stderr, (args, result.stderr)


def test_load_minute_bars_aggregate_force_backfill_is_one_run(vendors, tmp_path, monkeypatch):
    monkeypatch.setattr(os, "environ", dict(os.environ))
    days = [
        d for d in fx.trading_days(date(2025, 3, 3), 25) if d.month == 3
    ]  # a whole month: complete_minutes
    for i, code in enumerate(("600000.SH", "000001.SZ")):
        fx.write_text(
            tmp_path / f"{code}.csv", fx.render(fx.make_bars(code, days, seed=i), "cn_minute"), bom=True
        )
    result = marketdata(
        vendors,
        "load-minute-bars",
        "--data-dir",
        str(tmp_path),
        "--max-workers",
        "1",
        "--aggregate",
        "--force-backfill",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[ok] minute bars 2025-03..2025-03 + full K-line backfill: 2 assets, 1 partition" in result.stdout
    run = latest_run(vendors)
    assert run.run_config["ops"] == {
        "stock_1min_qfq": {"config": {"force": False, "workers": 1}},
        "stock_monthly_kline": {"config": {"force_backfill": True}},
    }
    kline = materialization(vendors, run, "stock_monthly_kline")
    assert kline["action"] == "force_backfill" and kline["window_start"].startswith("2000-01-01")
    with psycopg.connect(
        host=settings.get("TIMESCALE_HOST"),
        port=settings.get("TIMESCALE_PORT"),
        user=settings.get("TIMESCALE_USER"),
        password=settings.get("TIMESCALE_PASSWORD"),
        dbname=CLI_TIMESCALE_DB,
    ) as conn:
        months = conn.execute("SELECT code, month::date FROM stock_monthly_kline ORDER BY code").fetchall()
    assert months == [("000001.SZ", date(2025, 3, 1)), ("600000.SH", date(2025, 3, 1))]


def land(root: Path, account: str, count: int, first_seed: int) -> None:
    created = datetime(2025, 6, 10, 12, tzinfo=NY)
    for alpha in make_alphas(count, first_seed=first_seed, date_created=created, author=account):
        land_alpha(root, account, alpha, fsync=False)
    for alpha in make_alphas(2, "SUPER", first_seed=first_seed, date_created=created, author=account):
        land_alpha(root, account, alpha, fsync=False)


def test_package_alphas_round_trips_the_landing_files_through_packages(vendors, tmp_path, monkeypatch):
    landing, packages = tmp_path / "landing", tmp_path / "packages"
    env = {**vendors, "ALPHA_LANDING_DIR": str(landing), "ALPHA_PACKAGES_DIR": str(packages)}
    land(landing, "main", 12, 0)
    land(landing, "research", 5, 100)
    result = marketdata(env, "package-alphas", "--account", "main")  # the months: those with files
    assert result.returncode == 0, result.stdout + result.stderr
    assert (
        "decompose alpha packages 2025-06..2025-06 (main): no packages dropped in these months"
        in result.stderr
    )
    assert "[ok] package alphas 2025-06..2025-06 (main): 1 asset, 1 partition" in result.stdout
    built = sorted(p.relative_to(packages).as_posix() for p in packages.rglob("*.*"))
    assert built == [
        "REGULAR/2025-06/main.jsonl.gz",
        "REGULAR/2025-06/main.manifest.json",
        "SUPER/2025-06/main.jsonl.gz",
        "SUPER/2025-06/main.manifest.json",
    ]  # not research's

    fresh = tmp_path / "fresh"  # another machine's landing area that only receives the packages
    shutil.copytree(packages, fresh / "packages")
    restored = marketdata({**env, "ALPHA_LANDING_DIR": str(fresh)}, "package-alphas", "--only", "decompose")
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert "[ok] decompose alpha packages 2025-06..2025-06: 1 asset, 1 partition" in restored.stdout
    originals = {
        p.relative_to(landing): p.read_bytes() for p in iter_alpha_files(landing, None, None, "main")
    }
    assert {p.relative_to(fresh): p.read_bytes() for p in iter_alpha_files(fresh)} == originals

    nothing = in_process(
        monkeypatch, env, "package-alphas", "--start-month", "2025-06", "--account", "nobody"
    )
    assert (
        nothing.exit_code == 2
        and "no alpha files or dropped packages of ['nobody'] in 2025-06..2025-06" in nothing.stderr
        and "accounts there: ['main', 'research']" in nothing.stderr
    )
    empty = in_process(monkeypatch, {**env, "ALPHA_LANDING_DIR": str(tmp_path / "none")}, "package-alphas")
    assert empty.exit_code == 2 and "nothing to package or decompose" in empty.stderr
