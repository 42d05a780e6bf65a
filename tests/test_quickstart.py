"""docs/quickstart.md, run: its shell blocks in order, as a user would type them (one test per step,
sharing the user's machine; step 5's four commands as its one block, then the stores read once), against
the vendors' replays started as a separate process and configured as if they were the vendors (their addresses
in the copy of the sources file; no MARKETDATA_DEMO, no --demo), with the user's own Postgres that
lets them in with a password only (Dagster's storage and TimescaleDB on it). Then the stores hold
exactly what the replays served for the chosen instruments and days, and the schedules the page
turns on run in the instance that `dagster dev -w workspace.yaml` uses.

What the test changes in the page, and nothing else (each text must be in the page, so an edit of
the page that drops one fails here instead of going untested):
- `make install dotenv` is not run (the suite runs in the installed venv, which it must not touch);
- the env file's servers and secrets are the test's: the private Postgres (host `localhost`, its port,
  the password), the embedded ClickHouse under the test's state dir, the suite's MongoDB (no users),
  the replays' Tushare token and alpha account;
- the dates and months are recent ones the replays serve (1-2 days, one month), the `universes:`
  block gets 2 crypto instruments and 2 A-share codes, and every `base_url` of the copied file is
  the replay's;
- the test's shell has its own HOME, MARKETDATA_STATE_DIR and alpha database names (test isolation).
Blocks after `<!-- not run by the test ... -->` are not run (`dagster dev` serves until Ctrl-C).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest
import yaml

from marketdata_assets.core import calendars, settings
from tests.conftest import free_port, worker_name
from tests.test_project_cli import plain_environment

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "quickstart.md"
BIN = Path(sys.executable).parent
USER, PASSWORD = "quant", "user-set-Quickstart-24"
CRYPTO = {"BINANCE": ["BTCUSDT"], "OKX": ["BTC-USDT"]}
A_SHARES = ["600000.SH", "000001.SZ"]
SKIP = "<!-- not run by the test"


def blocks(text: str) -> list[tuple[str, str, bool]]:
    """(language, body, run?) of each fenced block, in order."""
    found = []
    for match in re.finditer(r"(<!--[^\n]*-->\n)?```(\w+)\n(.*?)```", text, re.DOTALL):
        found.append((match.group(2), match.group(3), not (match.group(1) or "").startswith(SKIP)))
    return found


def substituted(body: str, substitutions: dict[str, str]) -> str:
    for old, new in substitutions.items():
        body = body.replace(old, new)
    return body


def days() -> dict[str, object]:
    """Recent days the replays serve: the last closed UTC day, the last SSE session, a closed NY month."""
    today = datetime.now(ZoneInfo("UTC")).date()
    a_share = calendars.trading_days("SSE", today - timedelta(days=20), today - timedelta(days=1))[-1]
    first_of_month = datetime.now(ZoneInfo("America/New_York")).date().replace(day=1)
    return {
        "crypto": [today - timedelta(days=1)],
        "a_share": a_share,
        "month": (first_of_month - timedelta(days=1)).strftime("%Y-%m"),
    }


@pytest.fixture(scope="module")
def replays():
    """Every vendor replay in its own process (as docker's demo profile serves them): NAME=value lines."""
    ports = {name: free_port() for name in ("alpha", "crypto", "stocks", "archive")}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "marketdata_assets.apps.demo",
            "replays",
            *[arg for name, port in ports.items() for arg in (f"--{name}-port", str(port))],
        ],
        cwd=REPO,
        env={**plain_environment(), "ALPHA_API_ACCOUNTS": "main"},
        stdout=subprocess.PIPE,
        text=True,
    )
    values: dict[str, str] = {}
    try:
        while "YAHOO_BASE_URL" not in values:  # the last of the sorted lines
            line = process.stdout.readline()
            assert line, "the replays process ended before printing its addresses"
            name, _, value = line.strip().partition("=")
            values[name] = value
        yield values
    finally:
        process.terminate()
        process.wait(timeout=30)


def substitutions(server, replay: dict[str, str], home: Path, when: dict) -> dict[str, str]:
    crypto_days, a_share, month = when["crypto"], when["a_share"], when["month"]
    return {
        "make install dotenv ": "true ",
        "pg.internal": "localhost",
        "PORT=5432": f"PORT={server.port}",
        "'pg-password'": f"'{PASSWORD}'",
        "CLICKHOUSE_DSN=https://clickhouse.internal:8443": f"CLICKHOUSE_DSN=chdb://{home}/state/clickhouse",
        "CLICKHOUSE_PASSWORD='ch-password'": "CLICKHOUSE_PASSWORD=''",
        "'mongodb://mongo.internal:27017/?replicaSet=rs0'": f"'{settings.get('MONGODB_URI')}'",
        "MONGODB_USERNAME=quant MONGODB_PASSWORD='mongo-password'":  # the stack's server and its user
        (
            f"MONGODB_USERNAME={settings.get('MONGODB_USERNAME')} "
            f"MONGODB_PASSWORD='{settings.get('MONGODB_PASSWORD')}'"
        ),
        "'your-tushare-token'": f"'{replay['TUSHARE_TOKEN']}'",
        "ALPHA_API_BASE_URL=https://api.worldquantbrain.com": (
            f"ALPHA_API_BASE_URL={replay['ALPHA_API_BASE_URL']}"
        ),
        "'you@example.com'": f"'{replay['ALPHA_API_USER_MAIN']}'",
        "'alpha-password'": f"'{replay['ALPHA_API_PASSWORD_MAIN']}'",
        "--start-date 2026-08-01 --end-date 2026-11-22": (
            f"--start-date {crypto_days[0]} --end-date {crypto_days[-1]}"
        ),
        "--start-date 2026-08-03 --end-date 2026-11-20": f"--start-date {a_share} --end-date {a_share}",
        "--start-month 2026-08 --end-month 2026-10": f"--start-month {month} --end-month {month}",
    }


def edit_the_copy(path: Path, universes_block: str, replay: dict[str, str], when: dict) -> None:
    """What the user does in their copy (the page's `universes:` block, with the test's instruments and
    days), and the vendors' addresses: the replays'."""
    data = yaml.safe_load(path.read_text())
    edit = yaml.safe_load(universes_block)["universes"]
    edit["crypto"].update(history_start=str(when["crypto"][0]), instruments=CRYPTO)
    edit["a_shares"].update(history_start=str(when["a_share"]), symbols=A_SHARES)
    for name, section in edit.items():
        data["universes"][name].update(section)
    for entry in [*data["sources"].values(), data["binance_archives"]]:
        entry["base_url"] = replay[entry["base_url_env"]]
    path.write_text(yaml.safe_dump(data, sort_keys=False))


class Page:
    """The page's steps, run one test at a time (a new terminal each: the venv active, the env file
    sourced), in order; what each printed, and which blocks ran."""

    def __init__(
        self, env: dict[str, str], subs: dict[str, str], replay: dict[str, str], when: dict, port: int
    ):
        self.env, self.subs, self.replay, self.when, self.port = env, subs, replay, when, port
        self.text = DOC.read_text()
        missing = [old for old in subs if old not in self.text]
        assert not missing, f"docs/quickstart.md no longer has {missing}: update the test's substitutions"
        self.ran: list[tuple[int, int]] = []  # (step, block) run
        self.outputs: dict[int, list[str]] = {}
        self.done = 1  # step 1 (make install) is the suite's own venv

    def steps(self) -> dict[int, list[tuple[str, str, bool]]]:
        """{step number: its fenced blocks} from the page's `## N. ...` sections."""
        found = {}
        for section in re.split(r"\n## ", self.text)[1:]:
            number = re.match(r"(\d+)\. ", section)
            if number:
                found[int(number.group(1))] = blocks(section)
        return found

    def run(self, step: int) -> str:
        """Run step `step`'s shell blocks, after the steps before it; its yaml block is the user's edit of
        the copy."""
        assert self.done >= step - 1, f"step {step - 1} did not run (an earlier test failed)"
        printed = []
        for index, (language, body, run) in enumerate(self.steps()[step]):
            if language == "yaml" and "universes:" in body:
                edit_the_copy(
                    Path(self.env["HOME"]) / "marketdata" / "sources.yaml", body, self.replay, self.when
                )
            if language != "bash" or not run:
                continue
            printed.append(self.shell(body))
            self.ran.append((step, index))
        self.outputs.setdefault(step, []).extend(printed)
        self.done = max(self.done, step)
        return "\n".join(printed)

    def shell(self, body: str) -> str:
        script = (
            "set -euo pipefail\n[ ! -f ~/marketdata/env.sh ] || source "
            f"~/marketdata/env.sh\n{substituted(body, self.subs)}"
        )
        done = subprocess.run(
            ["bash", "-c", script],
            check=False,
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, f"{body}\n---\n{(done.stdout + done.stderr)[-4000:]}"
        assert PASSWORD not in done.stdout + done.stderr
        return done.stdout + done.stderr

    def stored(self) -> dict:
        """What the stores hold, read as the user's shell would (the env file's variables)."""
        user_env = {**self.env, **exported(Path(self.env["HOME"]))}
        probe = subprocess.run(
            [sys.executable, "-c", PROBE],
            check=False,
            cwd=REPO,
            env=user_env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert probe.returncode == 0, probe.stderr[-3000:]
        return json.loads(probe.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def page(replays, tmp_path_factory):
    """The user's machine: a Postgres that lets them in with a password only, a home of their own."""
    import pymongo

    from tests.support.private_postgres import PrivatePostgres

    server = PrivatePostgres(Path(tempfile.mkdtemp(prefix="marketdata-private-pg-"))).init()
    server.password_only(USER, PASSWORD, "dagster", "marketdata")
    when, home = days(), tmp_path_factory.mktemp("quickstart") / "home"
    home.mkdir()
    env = {
        **plain_environment(),
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "NO_COLOR": "1",
        "HOME": str(home),
        "MARKETDATA_STATE_DIR": str(home / "state"),
        "ALPHA_DB_REGULAR": worker_name("qs_regular"),
        "ALPHA_DB_SUPER": worker_name("qs_super"),
    }
    assert not {"MARKETDATA_DEMO", "DAGSTER_HOME"} & set(env)
    try:
        yield Page(env, substitutions(server, replays, home, when), replays, when, server.port)
    finally:
        server.close()
        mongo = pymongo.MongoClient(settings.get("MONGODB_URI"), **settings.mongo_auth())
        for name in (env["ALPHA_DB_REGULAR"], env["ALPHA_DB_SUPER"]):
            mongo.drop_database(name)


def only(counts: dict[str, int], venues: tuple[str, ...]) -> dict[str, int]:
    return {key: value for key, value in counts.items() if key.split(":", 1)[0] in venues}


def test_steps_2_to_4_point_every_tool_at_the_users_servers(page):
    for step in (2, 3, 4):
        page.run(step)
    assert "TUSHARE_TOKEN=***" in "".join(page.outputs[4])  # step 4 masks the secret


def test_step_5_the_backfills_and_alpha_commands_store_what_the_vendors_served(page):
    """The crypto and A-share backfills and the alphas' fetch and import (step 5's block, its commands one
    after the other in one terminal): the stores then hold what each vendor served, read once."""
    page.run(5)
    stored, expected = page.stored(), truth(page.when)
    # the crypto backfill: what the venues served
    assert stored["trades_v"] == expected["trades_v"]
    assert only(stored["bars_1m_v"], tuple(CRYPTO)) == only(expected["bars_1m_v"], tuple(CRYPTO))
    # the A-share backfill: what Tushare served
    assert only(stored["bars_1m_v"], ("SSE", "SZSE")) == only(expected["bars_1m_v"], ("SSE", "SZSE"))
    assert stored["daily_bars_v"] == expected["daily_bars_v"]
    # the alphas, fetched and imported
    assert stored["alphas"] == expected["alphas"]
    # Dagster's storage is the user's server (password only): the runs are there
    with psycopg.connect(
        host="127.0.0.1", port=page.port, user=USER, password=PASSWORD, dbname="dagster", connect_timeout=5
    ) as conn:
        runs = conn.execute("SELECT count(*) FROM runs WHERE status = 'SUCCESS'").fetchone()[0]
    assert (
        runs >= len(page.when["crypto"]) + 1 + 1 + 1
    )  # a run per crypto day, A-shares, alpha fetch and import


def test_step_6_turns_on_the_daily_use_schedules_of_those_feeds_only(page):
    out = page.run(6)
    listed = {
        line.removeprefix("running: ") for line in out.splitlines() if line.startswith("running: ")
    }  # what `marketdata schedules` printed, read back from the storage
    assert {
        "crypto_ticks_daily",
        "crypto_ticks_catch_up",
        "crypto_snapshots_every_15_minutes",
        "a_share_after_close",
        "a_share_catch_up",
        "alpha_fetch_daily",
        "alpha_monthly_catchup",
        "crypto_instruments_from_config",
    } <= listed
    assert not {"yahoo_after_close", "binance_archives_daily"} & listed  # only the feeds the page turned on
    assert "\x1b[" not in out and " - dagster" not in out  # its own lines only: no code server's coloured log


def test_every_command_of_the_page_was_run(page):
    expected = {
        (step, index)
        for step, found in page.steps().items()
        if step > 1
        for index, (language, _, run) in enumerate(found)
        if language == "bash" and run
    }
    assert set(page.ran) == expected, (
        "a step's shell block was added to docs/quickstart.md but no test runs it"
    )


PROBE = """
import json, sys
from datetime import date
from marketdata_assets.core import settings
from marketdata_assets.resources import ClickHouseResource
import pymongo
clickhouse = ClickHouseResource(dsn=settings.clickhouse_dsn(), database=settings.get("CLICKHOUSE_DATABASE"))
counts = {}
with clickhouse.get_client() as client:
    for view in ("trades_v", "bars_1m_v", "daily_bars_v"):
        rows = client.query(f"SELECT venue, instrument, toString(toDate(ts)), \
count() FROM `{clickhouse.database}`.{view} "
                            "GROUP BY venue, instrument, toDate(ts)").result_rows
        counts[view] = {f"{v}:{i} {d}": n for v, i, d, n in rows}
clickhouse.close()
mongo = pymongo.MongoClient(settings.get("MONGODB_URI"), **settings.mongo_auth())
counts["alphas"] = sorted(d["_id"] for db in (settings.get("ALPHA_DB_REGULAR"), \
settings.get("ALPHA_DB_SUPER"))
                          for d in mongo[db][settings.get("ALPHA_COLLECTION")].find({}, {"_id": 1}))
print(json.dumps(counts))
"""


def truth(when: dict) -> dict:
    """What the replays served for the chosen instruments and days, recomputed from their seeds."""
    from marketdata_assets.apps.demo import alpha_months
    from marketdata_assets.replay import alpha_api
    from marketdata_assets.replay.crypto import CryptoReplayServer
    from marketdata_assets.replay.tushare import ashare_minutes

    alphas = alpha_api.ReplayConfig(
        seed=7,
        accounts=[alpha_api.ReplayAccount.default("main", alphas=400)],
        start_month=alpha_months()[0],
        months=alpha_months()[1],
    )  # as apps/demo.py
    with (
        CryptoReplayServer() as crypto,
        alpha_api.AlphaReplayServer(alphas) as alpha,
    ):  # the replays process's
        keys = [(venue, i, d) for venue, names in CRYPTO.items() for i in names for d in when["crypto"]]
        minutes = {
            f"{'SSE' if c.endswith('.SH') else 'SZSE'}:{c} {when['a_share']}": len(
                ashare_minutes(7, c, when["a_share"])
            )
            for c in A_SHARES
        }
        return {
            "trades_v": {f"{v}:{i} {d}": crypto.truth_trades(v, i, d).height for v, i, d in keys},
            "bars_1m_v": {
                **{f"{v}:{i} {d}": crypto.truth_bars(v, i, d).height for v, i, d in keys},
                **minutes,
            },
            "daily_bars_v": dict.fromkeys(minutes, 1),
            "alphas": sorted(alpha.truth("main", when["month"])),
        }


def exported(home: Path) -> dict[str, str]:
    """The variables the user's env file exports (as a new shell that sources it has them)."""
    done = subprocess.run(
        ["bash", "-c", "source ~/marketdata/env.sh && env -0"],
        env={"HOME": str(home), "PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(
        item.split("=", 1)
        for item in done.stdout.split("\0")
        if "=" in item and not item.startswith(("PATH=", "HOME=", "PWD=", "SHLVL=", "_=", "OLDPWD="))
    )


def test_a_first_backfill_of_months_is_split_into_runs_that_fit_the_deadline():
    """Three months of crypto are 92 runs of one UTC day x every venue (its configured instruments inside);
    60 A-share trading days are 3 runs of 20 (docs/quickstart.md step 5)."""
    from marketdata_assets.apps.cli.operate import BACKFILL, backfill_runs

    crypto_days = [str(date(2026, 8, 1) + timedelta(days=i)) for i in range(92)]
    runs = backfill_runs("crypto", crypto_days, BACKFILL["crypto"].days_per_run)
    assert len(runs) == 92 and {partitions for _, _, partitions in runs} == {4}  # a day x the 4 venues
    assert runs[0][1] == {
        "dagster/asset_partition_range_start": "2026-08-01|BINANCE",
        "dagster/asset_partition_range_end": "2026-08-01|OKX",
    }
    share_days = [f"2026-08-{d:02d}" for d in range(1, 32)] + [f"2026-09-{d:02d}" for d in range(1, 30)]
    runs = backfill_runs("a_shares", share_days, BACKFILL["a_shares"].days_per_run)
    assert [partitions for _, _, partitions in runs] == [20, 20, 20]
    assert runs[-1][1]["dagster/asset_partition_range_end"] == "2026-09-29"


def test_a_base_url_written_into_the_copy_is_not_hidden_by_generated_defaults(tmp_path, monkeypatch):
    """Step 3's proxy or mirror: the `*_BASE_URL` variables have no default of their own, so neither
    apply_defaults (every `marketdata` command, scripts/with-env) nor the generated .env (dagster dev)
    sets one that would win over the base_url the user wrote into their copy."""
    from dotenv import dotenv_values

    from marketdata_assets.sources.config import load_sources_config

    for name in [s.name for s in settings.SETTINGS if s.name.endswith("_BASE_URL")]:
        monkeypatch.delenv(name, raising=False)
    data = yaml.safe_load((REPO / "marketdata_assets" / "sources" / "data_providers.yaml").read_text())
    data["sources"]["binance"]["base_url"] = "https://binance-mirror.internal"
    data["binance_archives"]["base_url"] = "https://vision-mirror.internal"
    copy = tmp_path / "sources.yaml"
    copy.write_text(yaml.safe_dump(data))
    dotenv = settings.write_dotenv(tmp_path / ".env")
    for environ in (settings.apply_defaults(dict(os.environ)), {**os.environ, **dotenv_values(dotenv)}):
        config = load_sources_config(copy, environ=environ)
        assert config.sources["binance"].base_url == "https://binance-mirror.internal"
        assert config.binance_archives.base_url == "https://vision-mirror.internal"
        assert config.sources["okx"].base_url == "https://www.okx.com"  # the file's, as shipped
    monkeypatch.setenv("BINANCE_BASE_URL", "http://127.0.0.1:9")  # a variable set wins over the file
    assert load_sources_config(copy).sources["binance"].base_url == "http://127.0.0.1:9"
