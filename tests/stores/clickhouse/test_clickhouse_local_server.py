"""The local stack's ClickHouse engine server (stores/clickhouse/local_server.py): clickhouse-connect's HTTP
client against it as against a ClickHouse server, and every kind of local process sharing it at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

import clickhouse_connect
import httpx
import pyarrow as pa
import pytest

from marketdata_assets.core import settings
from marketdata_assets.read import Reader
from marketdata_assets.stores.clickhouse import connection
from marketdata_assets.stores.clickhouse import live as live_store
from marketdata_assets.stores.clickhouse import tables as ct
from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[3]

DATABASE = "shared"
# The server takes CLICKHOUSE_USER/CLICKHOUSE_PASSWORD of its environment: this process's (scripts/with-env
# exports the stack's generated password), which the clients below present.
LOGIN = {"username": settings.get("CLICKHOUSE_USER"), "password": settings.get("CLICKHOUSE_PASSWORD")}
BASIC = (LOGIN["username"], LOGIN["password"])


class Served(NamedTuple):
    dsn: str
    data_dir: Path
    pid: int


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The server on a data directory of its own, a result held whole bounded at 16 MB."""
    data_dir = tmp_path_factory.mktemp("local_ch") / "clickhouse"
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "marketdata_assets.stores.clickhouse.local_server",
            "--data-dir",
            str(data_dir),
            "--port",
            str(port),
            "--max-whole-result-mb",
            "16",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    dsn = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"{dsn}/ping", timeout=1).text == "Ok.\n":
                break
        except httpx.TransportError:
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail(f"the engine server did not start: {proc.stdout.read()}")
    client, _ = connection.open_client(dsn, DATABASE)
    ct.ensure_tables(client, DATABASE)
    live_store.ensure_live_tables(client, DATABASE)
    client.close()
    yield Served(dsn, data_dir, proc.pid)
    proc.terminate()
    assert proc.wait(20) == 0


def test_no_one_gets_in_without_the_user_and_password_as_clickhouse_says_it(server):
    """Every way ClickHouse's HTTP interface takes credentials works with the right ones; none, a wrong
    password or another user get ClickHouse's 401 and code 516; /ping needs none (as ClickHouse's)."""
    dsn = server.dsn
    user, password = LOGIN["username"], LOGIN["password"]
    ways = {
        "basic": {"auth": BASIC},
        "headers": {"headers": {"X-ClickHouse-User": user, "X-ClickHouse-Key": password}},
        "parameters": {"params": {"user": user, "password": password}},
    }
    for way, login in ways.items():
        answer = httpx.post(f"{dsn}/", content=b"SELECT 1", **login)
        assert (answer.status_code, answer.text) == (200, "1\n"), way
    wrong = [
        {},
        {"auth": (user, password + "x")},
        {"auth": ("admin", password)},
        {"headers": {"X-ClickHouse-User": user, "X-ClickHouse-Key": ""}},
        {"params": {"password": "nope"}},
        {"headers": {"Authorization": "Basic !!not-base64"}},
    ]
    for login in wrong:
        answer = httpx.post(f"{dsn}/", content=b"CREATE DATABASE intruder", **login)
        assert answer.status_code == 401 and answer.headers["X-ClickHouse-Exception-Code"] == "516", login
        assert (
            "Authentication failed: password is incorrect, or there is no user with such name. "
            "(AUTHENTICATION_FAILED)"
            in answer.text
            and answer.headers["WWW-Authenticate"].startswith("Basic")
        )
        assert password not in answer.text
    assert httpx.get(f"{dsn}/queue").status_code == 401
    assert httpx.get(f"{dsn}/ping").text == "Ok.\n"
    assert (
        httpx.post(
            f"{dsn}/", content=b"SELECT count() FROM system.databases WHERE name = 'intruder'", auth=BASIC
        ).text
        == "0\n"
    )


def test_the_client_api_works_against_it_as_against_a_server(server):
    dsn = server.dsn
    for compress in (False, "lz4", "zstd"):  # our loopback clients send plain bodies; others compress
        client = clickhouse_connect.get_client(dsn=dsn, database=DATABASE, compress=compress, **LOGIN)
        client.command(
            "CREATE TABLE IF NOT EXISTS api (k LowCardinality(String), ts DateTime64(3, 'UTC'), "
            "v Nullable(Float64)) ENGINE = MergeTree ORDER BY ts"
        )
        client.command("TRUNCATE TABLE api")
        client.insert("api", [["a", datetime(2024, 3, 1, tzinfo=UTC), None]], column_names=["k", "ts", "v"])
        client.insert_arrow(
            "api",
            pa.table(
                {
                    "k": ["b"] * 500,
                    "v": [2.0] * 500,
                    "ts": pa.array([datetime(2024, 3, 2)] * 500, pa.timestamp("ms", "UTC")),
                }
            ),
        )
        assert client.query("SELECT k, count(), sum(v) FROM api GROUP BY k ORDER BY k").result_rows == [
            ("a", 1, None),
            ("b", 500, 1000.0),
        ]
        assert client.query("SELECT {s:String}", parameters={"s": "it's"}).result_rows == [("it's",)]
        assert client.query("SELECT %(s)s", parameters={"s": "it's"}).result_rows == [("it's",)]
        assert client.query(
            "SELECT value FROM system.settings WHERE name = 'max_threads'", settings={"max_threads": 3}
        ).result_rows == [("3",)]
        assert client.query_arrow("SELECT k, ts FROM api ORDER BY ts LIMIT 1").to_pylist() == [
            {"k": "a", "ts": datetime(2024, 3, 1, tzinfo=UTC)}
        ]
        with pytest.raises(clickhouse_connect.driver.exceptions.DatabaseError, match="nope"):
            client.query("SELECT * FROM nope")
        client.close()
    raw = httpx.post(
        f"{dsn}/",
        params={"database": DATABASE},
        auth=BASIC,  # an INSERT with its data in one body
        content=b'INSERT INTO api (k, ts) FORMAT JSONEachRow\n{"k": "c", "ts": "2024-03-03 00:00:00"}\n',
    )
    assert raw.status_code == 200 and json.loads(raw.headers["X-ClickHouse-Summary"])["written_rows"] == "1"
    refused = httpx.post(f"{dsn}/", params={"bad name": "1"}, content=b"SELECT 1", auth=BASIC)
    assert refused.status_code == 400 and "invalid setting name 'bad name'" in refused.text


def test_an_embedded_client_is_told_who_holds_the_directory(server):
    data_dir = server.data_dir
    with pytest.raises(connection.EmbeddedLockTimeout, match="local_server"):
        connection.open_client(f"chdb://{data_dir}", DATABASE, lock_timeout_s=0.3)


def test_a_holder_is_named_on_one_short_line_whatever_its_command_line_holds():
    """A `python -c` script of many lines holding the directory: the wait line and the CLI's FAILED line stay
    one line (the script's newlines folded, the command cut at 160 characters)."""
    lines = [
        "import time",
        *(f"x{i} = {i}" for i in range(60)),
        "print('ready', flush=True)",
        "time.sleep(60)",
    ]
    script = "\n".join(lines) + "\n"
    holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"  # running its script (not still starting)
        described = connection.process_description(str(holder.pid))
        line = connection.wait_line(Path("/state/clickhouse"), str(holder.pid), 900)
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    assert described.startswith(f"pid {holder.pid} ({Path(sys.executable).name} -c import time x0 = 0 x1 = 1")
    assert described.endswith("…)") and len(described) <= len(f"pid {holder.pid} ()") + 160
    assert "\n" not in line and described in line
    assert connection.process_description("999999999") == "pid 999999999"  # gone: its pid alone


# Every process waits at this barrier until all six are ready, then works: they work at the same time
# whatever their start-up took (Dagster's import takes seconds on a loaded machine). A run says it is
# finished in `finished`, the notebook each of its reads in `read`; the consumer and the second reader
# work until all four runs have finished and the notebook has read MIN_OPS times (and MIN_OPS times
# themselves): through every run's work and those reads whatever they take, not for a fixed time.
MIN_OPS = 5
BARRIER = """
import pathlib, time
ready, finished, read = pathlib.Path("{ready}"), pathlib.Path("{finished}"), pathlib.Path("{read}")
(ready / "{role}").touch()
deadline = time.time() + 120
while len(list(ready.iterdir())) < 6 and time.time() < deadline:
    time.sleep(0.02)

def working(started, ops):  # the consumer's and the second reader's loop
    going = len(list(finished.iterdir())) < 4 or len(list(read.iterdir())) < {min_ops} or ops < {min_ops}
    return going and time.time() - started < 300
"""

RUN = """
import dagster as dg, polars as pl, json, sys, time
from datetime import date, datetime, timedelta, timezone
from marketdata_assets.datasets import frames
from marketdata_assets.resources.clickhouse import ClickHouseResource
from marketdata_assets.stores.clickhouse import writer, tables
instrument, day = sys.argv[1], date(2024, 3, 1)
times = []

@dg.asset
def slices(clickhouse: ClickHouseResource):
    start = datetime(2024, 3, 1, tzinfo=timezone.utc)
    with clickhouse.get_client() as client:
        for rep in range(6):
            t = time.monotonic()
            n = 2000
            frame = pl.DataFrame({{"ts": [start + timedelta(seconds=i * 40) for i in range(n)], \
"venue": ["BINANCE"] * n,
                "instrument": [instrument] * n, "trade_id": [str(i) for i in range(n)], \
"price": [1.0 + rep] * n,
                "quantity": [0.5] * n, "amount": [0.5 + rep / 2] * n, "side": ["buy"] * n, \
"seq": [i for i in range(n)]}}).pipe(frames.as_schema, frames.TRADES_SCHEMA)
            writer.write_slices(client, "{db}", "trades", frame, "BINANCE", day, f"run-{{rep}}")
            got = tables.read_range(client, "{db}", "trades", "BINANCE", instrument, day, \
day + timedelta(days=1))
            assert got.height == n and got["price"].max() == 1.0 + rep, got.height
            times.append((t, time.monotonic()))

{barrier}
started = time.time()
try:
    result = dg.materialize([slices], resources={{"clickhouse": ClickHouseResource(dsn="{dsn}", \
database="{db}")}})
finally:
    ended = time.time()  # before it says so: the others see it finished after this
    (finished / instrument).touch()
assert result.success
print(json.dumps({{"role": "run " + instrument, "ops": len(times), "start": started, "end": ended,
                  "slowest": max(b - a for a, b in times)}}))
"""

CONSUMER = """
import json, time
from datetime import datetime, timezone
from marketdata_assets.stores.clickhouse import connection, live
client, _ = connection.open_client("{dsn}", "{db}")
{barrier}
started, ops, slowest = time.time(), 0, 0.0
while working(started, ops):
    t = time.monotonic()
    now = datetime.now(timezone.utc)
    values = {{"ts": now, "venue": "BINANCE", "instrument": "LIVEUSDT", "price": 1.0, "quantity": 2.0, \
"amount": 2.0, "side": "buy", "event_ts": now, "recv_ts": now}}
    rows = [tuple({{**values, "trade_id": f"{{ops}}-{{i}}"}}.get(c) for c in live.LIVE_COLUMNS) \
for i in range(50)]
    live.insert_live_trades(client, "{db}", rows)
    slowest, ops = max(slowest, time.monotonic() - t), ops + 1
    time.sleep(0.05)
print(json.dumps({{"role": "consumer", "ops": ops, "start": started, "end": time.time(), \
"slowest": slowest}}))
"""

READER = """
import json, time
from marketdata_assets.read import Reader
{barrier}
started, ops, slowest = time.time(), 0, 0.0
with Reader(clickhouse_dsn="{dsn}", clickhouse_database="{db}") as reader:
    while working(started, ops):
        t = time.monotonic()
        reader.catalog()  # the trades may not be written yet: a read of an unstored instrument is an error
        slowest, ops = max(slowest, time.monotonic() - t), ops + 1
        time.sleep(0.05)
print(json.dumps({{"role": "second reader", "ops": ops, "start": started, "end": time.time(), \
"slowest": slowest}}))
"""


def test_a_notebook_reader_four_runs_the_consumer_and_a_second_reader_all_make_progress(server, tmp_path):
    """What one embedded engine could not do (one process at a time, the others waiting up to the lock
    timeout): every process works at once (from a common start), and the server admits statements in
    arrival order."""
    dsn = server.dsn
    before = httpx.get(f"{dsn}/queue", auth=BASIC).json()
    names = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT")

    ready, finished, read = tmp_path / "ready", tmp_path / "finished", tmp_path / "read"
    for folder in (ready, finished, read):
        folder.mkdir()

    def barrier(role: str) -> str:
        return BARRIER.format(ready=ready, finished=finished, read=read, role=role, min_ops=MIN_OPS)

    with Reader(clickhouse_dsn=dsn, clickhouse_database=DATABASE) as notebook:  # held open throughout
        notebook.catalog()
        scripts = [RUN.format(dsn=dsn, db=DATABASE, barrier=barrier(name)) for name in names] + [
            CONSUMER.format(dsn=dsn, db=DATABASE, barrier=barrier("consumer")),
            READER.format(dsn=dsn, db=DATABASE, barrier=barrier("reader")),
        ]
        args = [[i] for i in names] + [[], []]
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", textwrap.dedent(s), *a],
                cwd=REPO,
                text=True,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for s, a in zip(scripts, args)
        ]
        during = 0
        while any(p.poll() is None for p in procs):
            assert notebook.catalog() is not None
            during += 1
            (read / str(during)).touch()
            time.sleep(0.2)
        outcomes = [p.communicate(timeout=60) for p in procs]
        for proc, (out, err) in zip(procs, outcomes):
            assert proc.returncode == 0 and "EmbeddedLockTimeout" not in err, err[-3000:]
        reports = [json.loads(out.strip().splitlines()[-1]) for out, _ in outcomes]
        final = notebook.trades("BINANCE", "SOLUSDT", start="2024-03-01", end="2024-03-02")
    assert final.height == 2000 and during >= MIN_OPS
    assert [r["ops"] for r in reports[:4]] == [6] * 4 and min(r["ops"] for r in reports[4:]) >= MIN_OPS
    assert len(list(ready.iterdir())) == 6  # all at once: each started its work once all six were ready
    assert len(list(finished.iterdir())) == 4
    assert max(r["start"] for r in reports) < min(r["end"] for r in reports), reports
    # the consumer and the second reader worked until every run had finished its work
    assert max(r["end"] for r in reports[:4]) < min(r["end"] for r in reports[4:]), reports
    queue = httpx.get(f"{dsn}/queue", auth=BASIC).json()
    assert queue["out_of_order"] == 0 and queue["admitted"] == queue["arrived"] > before["arrived"] + 200, (
        queue
    )
    client, _ = connection.open_client(dsn, DATABASE)
    assert live_store.live_count(client, DATABASE, "BINANCE")[0] == 50 * reports[4]["ops"]
    client.close()


def test_a_slot_handed_to_a_waiter_counts_as_admitted_before_a_later_arrival():
    """Two statements leave at once: the first hands its slot to the waiter, the second frees one, which a
    statement that arrived meanwhile takes before the waiter resumes. The waiter was admitted first (at the
    hand-over): in arrival order, not one out of order."""
    import asyncio

    from marketdata_assets.stores.clickhouse.local_server import Admission

    async def scenario() -> dict:
        admission = Admission(2)
        await admission.enter()
        await admission.enter()
        waiter = asyncio.create_task(admission.enter())
        await asyncio.sleep(0)  # it waits
        later = asyncio.create_task(admission.enter())  # scheduled before the waiter's wake-up
        admission.leave()  # hands the slot to the waiter
        admission.leave()  # frees one: the later arrival takes it at once
        await asyncio.gather(waiter, later)
        return admission.report()

    report = asyncio.run(scenario())
    assert report["arrived"] == report["admitted"] == 4 and report["out_of_order"] == 0, report
    assert report["running"] == 2 and report["waiting"] == 0


def test_a_read_streams_in_blocks_in_every_format_the_clients_ask_and_equals_the_whole(server):
    """300,000 rows leave as several engine blocks: Native and TabSeparated blocks as they come, Arrow
    streams spliced, the Arrow file framed batch by batch; each equals the rows. A format with a header of its
    own (CSVWithNames), an empty result (an Arrow schema, no rows) and an error before the first block are
    answered whole, as before."""
    dsn = server.dsn
    sql = (
        "SELECT number AS id, toFloat64(number) / 4 AS price, toString(number % 7) AS tag FROM "
        "numbers(300000)"
    )
    client = clickhouse_connect.get_client(dsn=dsn, compress=False, **LOGIN)
    expected = {
        "id": list(range(300_000)),
        "price": [n / 4 for n in range(300_000)],
        "tag": [str(n % 7) for n in range(300_000)],
    }
    try:
        assert client.query(sql).result_columns[0] == list(range(300_000))  # Native
        assert client.query_arrow(sql).to_pydict() == expected  # the Arrow file format
        with client.query_arrow_stream(sql) as stream:  # ArrowStream
            assert pa.Table.from_batches(list(stream)).to_pydict() == expected
        tsv = httpx.post(f"{dsn}/", content=f"{sql} FORMAT TabSeparated".encode(), auth=BASIC, timeout=60)
        assert tsv.text.splitlines()[299_999] == "299999\t74999.75\t0" and tsv.text.count("\n") == 300_000
        csv = httpx.post(f"{dsn}/", content=f"{sql} FORMAT CSVWithNames".encode(), auth=BASIC, timeout=60)
        assert csv.text.count('"id","price","tag"') == 1 and csv.text.count("\n") == 300_001
        empty = client.query_arrow("SELECT number AS id FROM numbers(10) WHERE id > 10")
        assert empty.num_rows == 0 and empty.schema.names == ["id"]
        with pytest.raises(clickhouse_connect.driver.exceptions.DatabaseError, match="Code: 395"):
            client.query("SELECT throwIf(number = 3) FROM numbers(10)")
    finally:
        client.close()


def _cpu_s(pid: int) -> float:
    """The process's CPU seconds so far (user + system, /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _idle_after(server: Served, seconds: float = 20.0) -> dict:
    """Once nothing runs (`/queue`), the server's CPU over the next second: an abandoned statement that
    ran on would keep a core busy."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        report = httpx.get(f"{server.dsn}/queue", auth=BASIC, timeout=5).json()
        if report["running"] == 0:
            break
        time.sleep(0.1)
    before = _cpu_s(server.pid)
    time.sleep(1.0)
    return {**report, "cpu_s_after": _cpu_s(server.pid) - before}


ENDLESS = "SELECT number, sipHash64(number) FROM system.numbers"
HEAVY = "SELECT count() FROM numbers(100000000000) WHERE NOT ignore(sipHash64(number))"


def test_a_read_whose_client_goes_away_is_killed_and_its_slot_freed(server):
    """An endless streamed read dropped after its first bytes, and an aggregation held whole (JSON) whose
    client gives up waiting: each is killed when its client goes, its slot freed, and the server idles
    (as ClickHouse does for clickhouse-connect, which asks it with
    `cancel_http_readonly_queries_on_client_close`). A client may ask for the read to run on."""
    for fmt in ("TabSeparated", "ArrowStream"):
        with httpx.stream(
            "POST", f"{server.dsn}/", content=f"{ENDLESS} FORMAT {fmt}", auth=BASIC, timeout=30
        ) as response:
            assert response.status_code == 200
            assert next(response.iter_raw())  # the first bytes came; then the client goes
        idle = _idle_after(server)
        assert idle["running"] == 0 and idle["cpu_s_after"] < 0.3, (fmt, idle)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{server.dsn}/", content=f"{HEAVY} FORMAT JSON", auth=BASIC, timeout=1.5)
    idle = _idle_after(server)
    assert idle["running"] == 0 and idle["cpu_s_after"] < 0.3, idle
    kept = {"cancel_http_readonly_queries_on_client_close": "0", "max_execution_time": "2"}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{server.dsn}/", params=kept, content=HEAVY, auth=BASIC, timeout=0.5)
    time.sleep(0.5)
    report = httpx.get(f"{server.dsn}/queue", auth=BASIC, timeout=5).json()
    assert report["running"] == 1, report  # runs on, to its own bound (2 s)
    assert _idle_after(server)["running"] == 0


def test_a_format_clause_is_read_past_comments_and_settings_never_spliced(server):
    """`FORMAT JSON` followed by a comment or a SETTINGS clause is one JSON document, `CSVWithNames` one
    header, over many engine blocks; `default_format` is the format of a read that names none (streamed
    when it is a streamed one); a result held whole past the server's bound is refused with the
    streamed formats to ask for instead."""
    sql = "SELECT number AS id FROM numbers(200000)"

    def ask(text: str, **params) -> httpx.Response:
        return httpx.post(f"{server.dsn}/", content=text.encode(), params=params, auth=BASIC, timeout=60)

    for tail in (
        "FORMAT JSON -- the rows",
        "FORMAT JSON SETTINGS max_block_size = 1000",
        "FORMAT JSON /* x */;",
    ):
        document = json.loads(ask(f"{sql} {tail}").text)
        assert document["rows"] == 200_000 and document["data"][-1] == {"id": 199999}, tail
    csv = ask(f"{sql} SETTINGS max_block_size = 1000 FORMAT CSVWithNames # header once").text
    assert csv.count('"id"') == 1 and csv.count("\n") == 200_001
    lines = ask(sql, default_format="JSONEachRow", max_block_size="1000").text.splitlines()
    assert len(lines) == 200_000 and json.loads(lines[-1]) == {"id": 199999}
    refused = ask("SELECT number, toString(number) FROM numbers(3000000) FORMAT JSON")
    assert refused.status_code == 500 and refused.headers["X-ClickHouse-Exception-Code"] == "396"
    assert "--max-whole-result-mb" in refused.text and "JSONEachRow" in refused.text
    streamed = ask("SELECT number, toString(number) FROM numbers(3000000) FORMAT JSONEachRow")
    assert streamed.status_code == 200 and streamed.text.count("\n") == 3_000_000
    bad = ask(sql, default_format="JSON; DROP")
    assert bad.status_code == 400 and "default_format" in bad.text
