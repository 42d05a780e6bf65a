"""The local stack's ClickHouse engine server SIGKILLed in the middle of a load (started by scripts/stack on
a state directory of this test's own): the run stops within seconds with one line naming the server;
after the stack starts the server again every slice acknowledged before is stored whole, none is half
active, and the same load run again gives exactly what an uninterrupted one gives."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from datetime import date, timedelta

import httpx
import polars as pl
import pytest

from marketdata_assets.core import settings
from marketdata_assets.core.errors import StoreUnavailable
from marketdata_assets.datasets.slices import Feed, Job, SliceKey
from marketdata_assets.ingest.engine import Engine
from marketdata_assets.resources import ClickHouseResource
from marketdata_assets.stores.clickhouse import tables as ct
from tests.conftest import free_port
from tests.ingest.test_engine import trades
from tests.test_stack import stack

DAY = date(2025, 1, 15)
INSTRUMENTS = [f"I{n:02d}" for n in range(8)]
BIG = INSTRUMENTS[3]  # its insert is in flight when the server dies


def visible(resource: ClickHouseResource, instrument: str) -> pl.DataFrame:
    with resource.get_client() as client:
        return ct.read_range(
            client, resource.database, "trades", "BINANCE", instrument, DAY, DAY + timedelta(days=1)
        )


def test_a_load_outlives_its_engine_server_killed_mid_insert(tmp_path):
    port = free_port()
    env = {"CLICKHOUSE_DSN": "", "STACK_CLICKHOUSE_PORT": str(port)}
    assert "started" in stack(tmp_path, "up", "clickhouse", **env).stdout
    resource = ClickHouseResource(dsn=f"http://127.0.0.1:{port}", database="death", connect_timeout_s=2)
    frames = {i: trades(i, n=(600_000 if i == BIG else 40 + n)) for n, i in enumerate(INSTRUMENTS)}
    jobs = [Job((SliceKey("trades", "BINANCE", i, DAY),)) for i in INSTRUMENTS]
    killed: dict[str, float] = {}

    def kill_mid_insert() -> None:
        """Once the slices before BIG are stored, SIGKILL the server while a statement (BIG's insert) runs."""
        deadline = time.monotonic() + 60
        probe = ClickHouseResource(dsn=resource.dsn, database=resource.database)  # the run's client is busy
        while not all(visible(probe, i).height for i in INSTRUMENTS[:3]) and time.monotonic() < deadline:
            time.sleep(0.02)
        probe.close()
        login = (settings.get("CLICKHOUSE_USER"), settings.get("CLICKHOUSE_PASSWORD"))
        while (
            httpx.get(f"{resource.dsn}/queue", auth=login).json()["running"] == 0
            and time.monotonic() < deadline
        ):
            time.sleep(0.005)
        os.kill(int((tmp_path / "run" / "clickhouse.pid").read_text()), signal.SIGKILL)
        killed["at"] = time.monotonic()

    async def fetch(api, job):
        instrument = job.keys[0].instrument
        if instrument == INSTRUMENTS[INSTRUMENTS.index(BIG) + 1]:  # BIG's write has been handed over
            await asyncio.to_thread(kill_mid_insert)
        return frames[instrument]

    try:
        with resource.get_client() as client:  # as the ingest assets do before their engine runs
            ct.ensure_tables(client, resource.database)
        with pytest.raises(StoreUnavailable) as stopped:
            Engine(resource.get_client, resource.database, "run-1").run([[Feed("X", jobs, fetch, workers=1)]])
        took = time.monotonic() - killed["at"]
        message = str(stopped.value)
        print(f"stopped {took:.2f} s after the kill: {message}")
        assert took < 10 and "\n" not in message
        assert (
            message.startswith(f"ClickHouse at 127.0.0.1:{port} is not reachable: ")
            and "went away" in message
        )

        restarted = stack(tmp_path, "up", "clickhouse", **env).stdout  # what the next command's `make` does
        assert "started" in restarted, restarted
        after = {i: visible(resource, i) for i in INSTRUMENTS}
        assert all(
            after[i].equals(frames[i]) for i in INSTRUMENTS[:3]
        )  # acknowledged before the kill: stored
        assert all(
            after[i].is_empty() or after[i].equals(frames[i]) for i in INSTRUMENTS
        )  # nothing half active
        assert not [i for i in INSTRUMENTS[5:] if not after[i].is_empty()]  # never fetched: never written

        async def plain(api, job):
            return frames[job.keys[0].instrument]

        report = Engine(resource.get_client, resource.database, "run-2").run(
            [[Feed("X", jobs, plain, workers=1)]]
        )
        assert {o.status for o in report.outcomes.values()} == {"ok"}
        assert all(visible(resource, i).equals(frames[i]) for i in INSTRUMENTS)
    finally:
        resource.close()
        stack(tmp_path, "down", "clickhouse", **env)
