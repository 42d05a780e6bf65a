"""A WebSocket handshake refused for rate (HTTP 429, or Binance's 418: the IP banned until a time)
is counted, marked in the landing control channel, and the next attempt waits at least what the
venue asked (Retry-After; without one, the backoff's cap), against the replay's `refuse_handshake`
fault (replay/crypto/ws_server.py). Also the header's two spellings (seconds, an HTTP date)."""

from __future__ import annotations

import asyncio
import email.utils
import time

import pytest
from websockets.datastructures import Headers
from websockets.exceptions import InvalidStatus
from websockets.http11 import Response

from marketdata_assets.ingest.live.collect.connection import handshake_refusal
from marketdata_assets.replay.crypto.binance_ws import WsConfig
from marketdata_assets.stores.landing import LandingWriter, closed_files, read_file
from tests.support.live import collecting, config_for, replays

WAIT_S = 15


def refused(status: int, retry_after: str | None) -> InvalidStatus:
    headers = Headers({"Retry-After": retry_after} if retry_after is not None else {})
    return InvalidStatus(Response(status, "refused", headers))


def test_retry_after_in_seconds_or_as_a_date():
    assert handshake_refusal(refused(429, "7")) == (429, 7.0)
    assert handshake_refusal(refused(418, None)) == (418, None)
    when = email.utils.formatdate(time.time() + 60, usegmt=True)
    status, wait_s = handshake_refusal(refused(418, when))
    assert status == 418 and 55 < wait_s <= 61
    assert handshake_refusal(refused(503, "7")) is None and handshake_refusal(OSError("refused")) is None


@pytest.mark.parametrize(("status", "retry_after_s", "least_wait_s"), [(429, 1, 1.0), (418, None, 0.8)])
def test_a_refused_handshake_waits_what_the_venue_says(status, retry_after_s, least_wait_s, tmp_path):
    stack, rest, ws = replays(WsConfig(tick_s=0.02))
    with stack:
        ws.add_fault(kind="refuse_handshake", status=status, retry_after_s=retry_after_s)

        async def scenario():
            # the backoff alone would retry within 0.05 s; its cap (the wait without Retry-After) is 0.8 s
            config = config_for(ws, rest, backoff_base_s=0.05, backoff_cap_s=0.8)
            async with collecting(config, LandingWriter(tmp_path, "BINANCE")) as (c, _):
                await c.stats.wait_until(lambda s: s.connects == 1 and s.snapshots == 2, WAIT_S)
            return c.stats

        stats = asyncio.run(scenario())
    assert (
        stats.handshake_refusals == {status: 1}
        and stats.connect_failures == 1
        and len(ws.refused_handshakes) == 1
    )
    control = [r for path in closed_files(tmp_path, "BINANCE", "_control") for r in read_file(path)]
    (mark,) = [r for r in control if r.get("m") == "handshake_refused"]
    assert mark["x"]["status"] == status and mark["x"]["retry_after_s"] == retry_after_s
    connect = min(
        r["t"]
        for path in closed_files(tmp_path, "BINANCE", "btcusdt@trade")
        for r in read_file(path)
        if r.get("m") == "connect"
    )
    assert (connect - mark["t"]) / 1e9 >= least_wait_s * 0.999
