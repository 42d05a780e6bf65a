"""The shared HTTP policy against a real local server: Retry-After, 5xx backoff, timeouts, give-up."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from marketdata_assets.core.http import ApiClient, ApiError, RetryPolicy, TokenBucket, parse_retry_after
from marketdata_assets.resources import HttpApiResource
from tests.scripted_server import Reply, ScriptedServer

FAST = RetryPolicy(max_retries=3, backoff_base_s=0.01, backoff_max_s=0.05)


def run(coro):
    return asyncio.run(coro)


@pytest.mark.parametrize("header, seconds", [("7", 7.0), ("5.0", 5.0), ("0.25", 0.25), ("-3", 0.0),
                                             (None, None), ("soon", None), ("nan", None)])
def test_parse_retry_after(header, seconds):
    assert parse_retry_after(header) == seconds


def test_parse_retry_after_http_date():
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:05 GMT", now=1445412480.0) == pytest.approx(5.0)


def test_429_waits_for_float_retry_after_then_succeeds():
    with ScriptedServer() as server:
        server.replies.extend([Reply(429, b'{"detail":"CONCURRENT_SIMULATION_LIMIT_EXCEEDED"}',
                                     {"Retry-After": "0.3"}), Reply(200, b'{"ok":true}')])

        async def go():
            async with ApiClient(server.url, retry=FAST) as api:
                response = await api.request("GET", "/alphas")
                return response, api.stats

        response, stats = run(go())
    assert response.json() == {"ok": True}
    (t1, _, _), (t2, _, _) = server.requests
    assert t2 - t1 >= 0.3
    assert (stats.requests, stats.retries, stats.rate_limited) == (2, 1, 1)


def test_5xx_retried_with_backoff_and_4xx_returned_to_caller():
    with ScriptedServer() as server:
        server.replies.extend([Reply(503, b"upstream"), Reply(502, b"bad gateway"), Reply(404, b'{"detail":"x"}')])

        async def go():
            async with ApiClient(server.url, retry=FAST, rng=random.Random(1)) as api:
                return await api.request("GET", "/missing"), api.stats

        response, stats = run(go())
    assert response.status_code == 404
    assert (stats.requests, stats.retries, stats.server_errors) == (3, 2, 2)


def test_gives_up_with_a_message_naming_the_request():
    with ScriptedServer() as server:
        server.replies.extend([Reply(500, b"boom")] * 4)

        async def go():
            async with ApiClient(server.url, retry=FAST) as api:
                api.api_name = "Alpha API"
                await api.request("GET", "/users/self/alphas")

        with pytest.raises(ApiError) as error:
            run(go())
    assert "Alpha API GET /users/self/alphas" in str(error.value) and "after 4 attempts" in str(error.value)
    assert "boom" in str(error.value) and error.value.status == 500


def test_timeouts_are_retried():
    with ScriptedServer() as server:
        server.replies.extend([Reply(200, b"{}", delay_s=1.0), Reply(200, b'{"n":2}')])

        async def go():
            async with ApiClient(server.url, retry=FAST, timeout_s=0.3) as api:
                return (await api.request("GET", "/x")).json(), api.stats

        body, stats = run(go())
    assert body == {"n": 2} and stats.transport_errors == 1


def test_retry_after_beyond_the_allowed_wait_fails_clearly():
    with ScriptedServer() as server:
        server.replies.append(Reply(418, b'{"code":-1003,"msg":"Way too much request weight used; IP banned"}',
                                    {"Retry-After": "7200"}))

        async def go():
            async with ApiClient(server.url, retry=FAST) as api:
                await api.request("GET", "/api/v3/trades")

        with pytest.raises(ApiError) as error:
            run(go())
    assert error.value.status == 418 and "7200 s" in str(error.value) and "IP banned" in str(error.value)


def test_token_bucket_paces_requests_on_a_fake_clock():
    now = [0.0]
    slept = []

    async def fake_sleep(seconds):
        slept.append(seconds)
        now[0] += seconds

    async def go():
        bucket = TokenBucket(120, burst=2, clock=lambda: now[0])  # 2 per second
        original, asyncio.sleep = asyncio.sleep, fake_sleep
        try:
            for _ in range(6):
                await bucket.acquire()
        finally:
            asyncio.sleep = original

    run(go())
    # two from the burst, then one every 0.5 s
    assert now[0] == pytest.approx(2.0)
    assert slept == pytest.approx([0.5] * 4)


def test_token_bucket_penalty_blocks_everyone():
    now = [10.0]
    bucket = TokenBucket(60, burst=5, clock=lambda: now[0])
    bucket.penalize(3.0)
    assert bucket.tokens == pytest.approx(-3.0)


def test_resource_builds_a_client_with_its_policy():
    resource = HttpApiResource(base_url="http://127.0.0.1:9/api/", requests_per_minute=200, max_concurrency=3,
                               max_retries=2, backoff_base_s=0.1)

    async def go():
        async with resource.make_client() as api:
            return api.base_url, api.retry, api.bucket.rate, api.semaphore._value

    base_url, retry, rate, slots = run(go())
    assert base_url == "http://127.0.0.1:9/api" and retry.max_retries == 2 and retry.backoff_base_s == 0.1
    assert rate == pytest.approx(200 / 60) and slots == 3


def test_error_table_classifies_fragments_codes_and_statuses_in_that_order():
    from marketdata_assets.core.http import ErrorTable

    table = ErrorTable(broad=(("banned until", "banned"), ("每天", "quota", "40203")),
                       exact={"-1003": "rate_limited", "Not Found": "not_found"}, status={418: "banned"})
    assert table.classify(429, -1003, "Way too much request weight used; IP banned until 1") == "banned"
    assert table.classify(429, -1003, "Too much request weight used") == "rate_limited"
    assert table.classify(200, 40203, "抱歉，您每天最多访问该接口") == "quota"
    assert table.classify(200, -2001, "参数错误: 每天") == "rejected"  # a scoped fragment of another code
    assert table.classify(404, "not found", "") == "not_found"  # codes match case-insensitively
    assert table.classify(418, None, "") == "banned"
    assert [table.classify(s, None, "") for s in (401, 403, 404, 429, 503, 400)] == [
        "permission", "permission", "not_found", "rate_limited", "retry", "rejected"]


def test_a_body_dripped_a_byte_at_a_time_is_cut_off_by_the_deadline():
    """httpx's timeout is per read: a small page sent a byte every 0.1 s never trips it. The client's
    deadline for the whole answer does, the request is retried, then fails naming the deadline."""
    import socket
    import threading

    stop = threading.Event()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.2)
    served = []

    def serve():
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            served.append(time.monotonic())
            body = b'{"data": "' + b"x" * 200 + b'"}'
            try:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                             + str(len(body)).encode() + b"\r\n\r\n")
                for byte in body:
                    if stop.is_set():
                        break
                    conn.sendall(bytes([byte]))
                    time.sleep(0.1)
            except OSError:
                pass
            finally:
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"

    async def go():
        async with ApiClient(url, timeout_s=1.0, deadline_s=0.5,
                             retry=RetryPolicy(max_retries=1, backoff_base_s=0.01)) as api:
            return await api.call("GET", "/page"), api.stats

    started = time.monotonic()
    try:
        with pytest.raises(ApiError, match="no complete answer within the 0.5 s deadline") as error:
            asyncio.run(go())
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()
    assert time.monotonic() - started < 5  # two attempts of 0.5 s, not 20 s of dripping each
    assert len(served) == 2 and "gave up after 2 attempts" in str(error.value)
