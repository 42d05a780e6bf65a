"""The first load of a dataset into a fresh embedded ClickHouse, killed (SIGKILL, a process of the
test's own on a data directory of its own) in the middle of the store's bootstrap or of the first
write; the same load run again ends with exactly the slice's rows, once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from marketdata_assets.stores.clickhouse import tables as ct

REPO = Path(__file__).resolve().parents[3]

# The first load as every ticks writer does it: bootstrap (ensure_tables), then the slice. With
# `pause` set, the process stops after that many DDL statements or after the first inserted batch
# (committed, the pointer not flipped yet) and waits there to be killed.
FIRST_LOAD = textwrap.dedent("""
    import json, sys, clickhouse_connect
    sys.path.insert(0, {tests!r})
    from marketdata_assets.stores.clickhouse import tables as ct, writer as w
    from stores.clickhouse.test_writer import make_trades, DAY
    client = clickhouse_connect.get_client(dsn={dsn!r})
    pause, at = {pause!r}
    done = {{"ddl": 0, "batch": 0}}

    def hooked(name, real):
        def call(*args, **kwargs):
            result = real(*args, **kwargs)
            done[name] += 1
            if pause == name and done[name] == at:
                print("PAUSED", name, done[name], flush=True)
                sys.stdin.readline()
            return result
        return call

    client.command = hooked("ddl", client.command)
    client.insert_arrow = hooked("batch", client.insert_arrow)
    ct.ensure_tables(client, "ticks")
    w.write_slice(client, "ticks", "trades", make_trades(5000, seed=2), "BINANCE", "BTCUSDT", DAY, "run-1",
                  method="arrow", batch_rows=1000)
    back = ct.read_range(client, "ticks", "trades", "BINANCE", "BTCUSDT", DAY, "2024-03-02")
    print("STATE", json.dumps({{"visible": back.height, "distinct": back["trade_id"].n_unique(),
                               "equal": back.equals(make_trades(5000, seed=2)),
                               "active_loads": int(client.command("SELECT count() FROM \
ticks.active_loads"))}}),
          flush=True)
""")


def first_load(dsn: str, pause) -> subprocess.Popen:
    script = FIRST_LOAD.format(tests=str(REPO / "tests"), dsn=dsn, pause=pause)
    return subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize(
    "pause",
    [("ddl", len(ct.ddl_statements("ticks")) // 2), ("batch", 1)],
    ids=["mid-bootstrap", "mid-first-write"],
)
def test_a_first_load_killed_then_run_again_gives_exactly_the_slice(tmp_path, pause):
    dsn = f"chdb://{tmp_path / 'fresh'}"
    killed = first_load(dsn, pause)
    try:
        line = killed.stdout.readline()
        assert line.startswith("PAUSED"), killed.stderr.read()
    finally:
        killed.send_signal(signal.SIGKILL)
        killed.wait(30)
    assert killed.returncode == -signal.SIGKILL
    again = first_load(dsn, (None, 0))
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err[-3000:]
    state = json.loads(out.split("STATE ", 1)[1].splitlines()[0])
    assert state == {"visible": 5000, "distinct": 5000, "equal": True, "active_loads": 1}
