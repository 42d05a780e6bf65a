"""bench/live_capture_universe.py end to end in its short mode (200 instruments forced over two
connections, one of them subscribing 250 streams in 3 messages), against the stack's nats-server with
a stream and subject prefix of this test's own; and the sender's enforcement of Binance's WebSocket
limits, which the bench's figures rest on. No throughput figure is judged here (exit status 1, a
missed ratio, is allowed), only that every stream was subscribed within the limits and both clients
counted frames."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import websockets

from bench.live_capture_roles import universe_plan
from bench.live_sender import universe_names

REPO = Path(__file__).resolve().parents[2]


def test_universe_run_subscribes_every_stream_within_the_limits(tmp_path):
    results = tmp_path / "live_capture_universe.json"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "live_capture",
            "--universe",
            "200",
            "--max-streams",
            "350",
            "--baseline",
            "0",
            "--skip",
            "memory",
            "--short",
            "--prefix",
            f"t{uuid.uuid4().hex[:10]}",
            "--results",
            str(results),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode in (0, 1), done.stderr[-3000:]
    report = json.loads(results.read_text())
    limits = report["limits"]["200"]
    assert (limits["streams"], limits["connections"], limits["subscribe_messages"]) == (400, 2, [3, 0])
    runs = report["throughput"]["200"]["runs"]
    for role in ("bare", "collector"):
        run = runs[role][0]
        sender = run["sender"]
        assert sender["refusals"] == {"rate": 0, "streams": 0}, sender
        assert sender["max_control_per_s"] <= 5
        assert [(s["streams"], s["url_streams"], s["acks"]) for s in sender["sessions"]] == [
            (350, 100, 3),
            (50, 50, 0),
        ]
        assert sender["streams"] == 400  # every stream of both connections, acknowledged
        assert run["frames"] > 0 and run["frames_per_cpu_s"] > 0
    collector = runs["collector"][0]
    assert not collector["shutdown_hung"], collector["stuck_tasks"]
    assert collector["acks"] == 3 and collector["connects"] == 2 and collector["books"] == 200
    assert collector["trades"] > 0 and collector["landed_bytes"] > 0
    assert "200 instruments, 400 streams over 2 connections" in done.stdout


def test_the_plan_spreads_a_universe_over_connections_as_the_collector_does():
    plans = universe_plan(universe_names(2000))
    assert [len(p) for p in plans] == [1024, 1024, 1024, 928]
    assert plans[0][:2] == ["btcusdt@trade", "btcusdt@depth@100ms"]
    assert len({s for p in plans for s in p}) == 4000


async def answers_of(ws, count: int) -> list[dict]:
    """The next `count` messages of a connection that are no stream's frames (acks, errors)."""
    out = []
    async with asyncio.timeout(10):
        async for text in ws:
            if not text.startswith('{"stream"'):
                out.append(json.loads(text))
                if len(out) == count:
                    break
    return out


async def past_the_limits(port: int) -> tuple[list, int | None, list, int]:
    """Six SUBSCRIBEs at once on one connection (its answers, its close code), 1,024 streams then a
    1,025th on another (their answers), a URL naming 1,025 streams (its handshake's status)."""
    streams = [s for plan in universe_plan(universe_names(600)) for s in plan]
    base = f"ws://127.0.0.1:{port}/stream?streams="
    async with websockets.connect(base + "/".join(streams[:10]), max_size=None) as ws:
        for k in range(6):
            await ws.send(json.dumps({"method": "SUBSCRIBE", "params": [streams[10 + k]], "id": k}))
        with contextlib.suppress(websockets.exceptions.ConnectionClosed):
            await answers_of(ws, 6)
        fast, code = ws, ws.close_code
    async with websockets.connect(base + "/".join(streams[:1000]), max_size=None) as ws:
        for k, params in enumerate((streams[1000:1024], streams[1024:1025])):
            await ws.send(json.dumps({"method": "SUBSCRIBE", "params": params, "id": 100 + k}))
        over = await answers_of(ws, 2)
    try:
        async with websockets.connect(base + "/".join(streams[:1025]), max_size=None):
            status = 101
    except websockets.exceptions.InvalidStatus as refused:
        status = refused.response.status_code
    return fast, code, over, status


def test_the_sender_enforces_binances_websocket_limits():
    """More than 5 incoming messages within a second: the connection closed (1008) after 5 acks; a
    SUBSCRIBE past 1,024 streams: refused with Binance's error, the 1,024 kept; a URL naming 1,025:
    no handshake. The report counts the refusals and the most messages any connection sent in a second."""
    sender = subprocess.Popen(
        [sys.executable, "-m", "bench.live_sender", "--universe", "600", "--rate", "200"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        port = json.loads(sender.stdout.readline())["port"]
        fast, code, over, status = asyncio.run(past_the_limits(port))
    finally:
        report = json.loads(sender.communicate(timeout=10)[0].strip().splitlines()[-1])
    assert code == 1008 and fast.close_reason == "Too many requests"
    assert over == [
        {"result": None, "id": 100},
        {"error": {"code": 4, "msg": "Too many subscriptions"}, "id": 101},
    ]
    assert status == 400
    assert report["refusals"] == {"rate": 1, "streams": 2}
    first, second = report["sessions"]
    assert (first["acks"], first["control_messages"], first["closed_for"]) == (5, 6, "rate")
    assert first["max_control_per_s"] == 6
    assert (second["streams"], second["acks"], second["errors"], second["closed_for"]) == (1024, 1, 1, None)
    assert report["max_control_per_s"] == 6
