"""What the source tests share: the replay day and its UTC window, fast retries, a coroutine runner,
one way to serve a module its crypto replay, and reads in a loop around an action (compaction must
keep reads exact while it runs)."""

import asyncio
import threading
import time
from datetime import UTC, date, datetime, timedelta

import pytest

from marketdata_assets.core.http import RetryPolicy
from marketdata_assets.replay.crypto import CryptoReplayServer, ReplayConfig

DAY = date(2025, 1, 15)
START = datetime(2025, 1, 15, tzinfo=UTC)
END = START + timedelta(days=1)
FAST = RetryPolicy(max_retries=3, backoff_base_s=0.01, backoff_max_s=0.05)


def run(coro):
    return asyncio.run(coro)


def crypto_replay(config: ReplayConfig):
    """(server, clean) fixtures for a test module: one replay server for the module, and an autouse
    fixture clearing its faults around every test. `server, _clean = crypto_replay(ReplayConfig(...))`."""

    @pytest.fixture(scope="module")
    def server():
        with CryptoReplayServer(config) as srv:
            yield srv

    @pytest.fixture(autouse=True)
    def clean(server):
        server.clear_faults()
        yield
        server.clear_faults()

    return server, clean


def reads_around(open_client, check, action):
    """Run `action()` while another thread calls `check(client)` in a loop on its own client (True:
    the read saw what it should). Waits on events, not sleeps: a first read finishes before the
    action starts and a read started after it finishes before the loop stops.
    Returns (action's result, number of reads overlapping the action, start times of wrong reads)."""
    spans, wrong, stop, first, after, ended = (
        [],
        [],
        threading.Event(),
        threading.Event(),
        threading.Event(),
        [],
    )

    def loop():
        with open_client() as client:
            while not stop.is_set():
                started = time.monotonic()
                if not check(client):
                    wrong.append(started)
                spans.append((started, time.monotonic()))
                first.set()
                if ended and started > ended[0]:
                    after.set()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        assert first.wait(60), "no read finished before the action"
        begun = time.monotonic()
        result = action()
        ended.append(time.monotonic())
        assert after.wait(60), "no read finished after the action"
    finally:
        stop.set()
        thread.join(60)
    return result, sum(1 for s, e in spans if s < ended[0] and e > begun), wrong
