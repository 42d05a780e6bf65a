"""The shared HTTP policy against a real local server: Retry-After, 5xx backoff, timeouts, give-up."""

from __future__ import annotations

import asyncio
import random
import threading
import time

import pytest

from marketdata_assets.core.http import (
    ApiClient,
    ApiError,
    ErrorTable,
    Limits,
    RetryPolicy,
    SourceBanned,
    TokenBucket,
    WindowGate,
    parse_retry_after,
)
from marketdata_assets.resources import HttpApiResource
from tests.support.scripted_server import Reply, ScriptedServer

FAST = RetryPolicy(max_retries=3, backoff_base_s=0.01, backoff_max_s=0.05)


def run(coro):
    return asyncio.run(coro)


@pytest.mark.parametrize(
    "header, seconds",
    [("7", 7.0), ("5.0", 5.0), ("0.25", 0.25), ("-3", 0.0), (None, None), ("soon", None), ("nan", None)],
)
def test_parse_retry_after(header, seconds):
    assert parse_retry_after(header) == seconds


def test_parse_retry_after_http_date():
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:05 GMT", now=1445412480.0) == pytest.approx(5.0)


def test_429_waits_for_float_retry_after_then_succeeds():
    with ScriptedServer() as server:
        server.replies.extend(
            [
                Reply(429, b'{"detail":"CONCURRENT_SIMULATION_LIMIT_EXCEEDED"}', {"Retry-After": "0.3"}),
                Reply(200, b'{"ok":true}'),
            ]
        )

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
        server.replies.extend(
            [Reply(503, b"upstream"), Reply(502, b"bad gateway"), Reply(404, b'{"detail":"x"}')]
        )

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
        server.replies.append(
            Reply(
                418,
                b'{"code":-1003,"msg":"Way too much request weight used; IP banned"}',
                {"Retry-After": "7200"},
            )
        )

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


@pytest.mark.parametrize(
    "per_minute, window_s, requests, over_s",
    [(200, 60.0, 200, 60.0), (1200, 1.0, 20, 1.0), (0.5, 60.0, 1, 120.0), (90, 0.5, 1, 2 / 3)],
)
def test_a_rate_is_a_limit_over_any_window(per_minute, window_s, requests, over_s):
    gate = WindowGate.for_rate(per_minute, window_s)
    assert (gate.requests, gate.window_s) == (requests, pytest.approx(over_s))


# ---- pauses and limits against a server's own count -------------------------------------------

RETRY_AFTER = 1.0


def _held_slots(slots: int, status: int, body: bytes, retry_after: str) -> tuple[list[Reply], list[float]]:
    """The first `slots` answers: all wait until `slots` requests are at the server (the client has
    none left on the wire), then one gets `status` with Retry-After; the others are answered 0.2 s
    after it left. Returns the replies and the list that gets the time the refusal went out."""
    together, refused, went_out = threading.Barrier(slots), threading.Event(), []

    def refuse():
        together.wait(5)
        time.sleep(0.2)  # a client that took tokens while waiting for a slot has them by now
        went_out.append(time.monotonic())  # before the first byte: the client cannot see it earlier

    def hold():
        together.wait(5)
        refused.wait(5)
        time.sleep(0.2)

    first = Reply(
        status,
        body,
        {"Content-Type": "application/json", "Retry-After": retry_after},
        before=refuse,
        after=refused.set,
    )
    return [first, *(Reply(200, b'{"ok":true}', before=hold) for _ in range(slots - 1))], went_out


@pytest.mark.parametrize("status, workers, slots", [(429, 8, 4), (418, 12, 6)])
def test_no_request_reaches_the_server_inside_a_retry_after(status, workers, slots):
    """Whatever waits for a slot when the 429/418 comes back waits out its Retry-After: the server
    sees nothing between sending it and Retry-After later (it held every slot's request when it
    answered, so none was on the wire)."""
    with ScriptedServer() as server:
        replies, went_out = _held_slots(slots, status, b'{"detail":"slow down"}', str(RETRY_AFTER))
        server.replies.extend(
            [*replies, *(Reply(200, b'{"ok":true}', delay_s=0.01) for _ in range(3 * workers))]
        )

        async def worker(api, n):
            return [await api.call("GET", f"/w{n}/{k}") for k in range(3)]

        async def go():
            async with ApiClient(
                server.url, retry=FAST, requests_per_minute=6000, max_concurrency=slots
            ) as api:
                return await asyncio.gather(*(worker(api, n) for n in range(workers))), api.stats

        answers, stats = run(go())
    assert all(answer == {"ok": True} for batch in answers for answer in batch)
    assert (stats.requests, stats.rate_limited) == (3 * workers + 1, 1)
    refused = went_out[0]
    arrivals = sorted(t for t, _, _ in server.requests)
    inside = [round(t - refused, 3) for t in arrivals if refused < t < refused + RETRY_AFTER - 0.01]
    assert inside == [], f"requests reached the server {inside} s after the {status} was sent"
    assert sum(t > refused for t in arrivals) == 3 * workers + 1 - slots  # everything else came after


def test_a_ban_ends_the_pause_of_every_waiting_request():
    """A 429 (Retry-After: 20) pauses everyone; a 418 ban from a request still in flight then fails
    every paused or queued request at once, with the ban, the 429's retry too (not after 20 s), and
    nothing more reaches the server."""

    class Banning(ApiClient):
        ERRORS = ErrorTable(status={418: "banned"})

    together, refused, banned = threading.Barrier(4), threading.Event(), threading.Event()
    ok = b'{"ok":true}'
    with ScriptedServer() as server:
        server.replies.extend(
            [
                Reply(
                    429,
                    b'{"detail":"slow down"}',
                    {"Retry-After": "20"},
                    before=lambda: together.wait(5),
                    after=refused.set,
                ),
                Reply(
                    418,
                    b'{"msg":"IP banned"}',
                    before=lambda: (together.wait(5), refused.wait(5), time.sleep(0.3)),
                    after=banned.set,
                ),
                *[Reply(200, ok, before=lambda: (together.wait(5), banned.wait(5)))] * 2,
            ]
        )

        async def worker(api, n):
            return [await api.call("GET", f"/w{n}/{k}") for k in range(3)]

        async def go():
            async with Banning(server.url, retry=FAST, requests_per_minute=6000, max_concurrency=4) as api:
                started = time.monotonic()
                outcomes = await asyncio.gather(*(worker(api, n) for n in range(8)), return_exceptions=True)
                return outcomes, time.monotonic() - started

        outcomes, elapsed = run(go())
    assert all(isinstance(outcome, SourceBanned) for outcome in outcomes), outcomes
    assert elapsed < 5 and len(server.requests) == 4


def test_a_pause_that_begins_after_the_checks_holds_the_request_at_the_wire():
    """A 429 read by another task between this request's checks and its first byte (its connect,
    say): the request is held back at the wire and sent once the pause is over, counted once."""
    with ScriptedServer() as server:
        server.replies.append(Reply(200, b'{"ok":true}'))

        async def go():
            async with ApiClient(server.url, retry=FAST) as api:
                real, paused = api.http.request, []

                def pause_then_send(*args, **kwargs):
                    if not paused:
                        paused.append(time.monotonic())
                        api.pause_for(0.5)
                    return real(*args, **kwargs)

                api.http.request = pause_then_send
                return await api.call("GET", "/x"), paused[0], api.stats

        answer, paused, stats = run(go())
    assert answer == {"ok": True} and stats.requests == 1 and len(server.requests) == 1
    assert server.requests[0][0] - paused >= 0.5 - 0.01


def test_a_refusal_pauses_everyone_as_soon_as_its_headers_arrive():
    async def go():
        async with ApiClient("http://127.0.0.1:9") as api:
            trace = api._at_the_wire(None)
            paused = []
            for status, retry_after in (
                (200, b"5"),
                (503, b"5"),
                (429, b"soon"),
                (418, b"7200"),
                (429, b"2"),
            ):
                await trace(
                    "http11.receive_response_headers.complete",
                    {"return_value": (b"HTTP/1.1", status, b"", [(b"Retry-After", retry_after)])},
                )
                paused.append(api.pause_until)
            return paused

    paused = run(go())
    assert paused[:4] == [0.0] * 4  # only a 429/418 with a usable Retry-After pauses
    assert paused[4] - time.time() == pytest.approx(2.0, abs=0.5)


def test_a_rolling_limit_holds_in_every_window_the_server_sees():
    """At most 20 requests in any second; 30 asked at once, 4 in flight, answers taking 0-30 ms:
    the server's count in its busiest sliding second is at most 20 (a bucket's burst on top of a
    second's refill let 24 through)."""

    class TwentyPerSecond(ApiClient):
        LIMITS = Limits(requests_per_minute=1200, rate_window_s=1.0, max_concurrency=4)

    total, rng = 30, random.Random(7)
    with ScriptedServer() as server:
        server.replies.extend(Reply(200, b'{"ok":true}', delay_s=rng.uniform(0, 0.03)) for _ in range(total))

        async def go():
            async with TwentyPerSecond(server.url, retry=FAST) as api:
                return await asyncio.gather(*(api.call("GET", f"/r{n}") for n in range(total)))

        assert run(go()) == [{"ok": True}] * total
    arrivals = sorted(t for t, _, _ in server.requests)
    busiest = max(sum(start <= t <= start + 1.0 for t in arrivals) for start in arrivals)
    assert len(arrivals) == total and busiest <= 20


def test_resource_builds_a_client_with_its_policy():
    resource = HttpApiResource(
        base_url="http://127.0.0.1:9/api/",
        requests_per_minute=200,
        max_concurrency=3,
        max_retries=2,
        backoff_base_s=0.1,
    )

    async def go():
        async with resource.make_client() as api:
            return api.base_url, api.retry, api.bucket.rate, api.semaphore._value

    base_url, retry, rate, slots = run(go())
    assert base_url == "http://127.0.0.1:9/api" and retry.max_retries == 2 and retry.backoff_base_s == 0.1
    assert rate == pytest.approx(200 / 60) and slots == 3


def test_error_table_classifies_fragments_codes_and_statuses_in_that_order():
    from marketdata_assets.core.http import ErrorTable

    table = ErrorTable(
        broad=(("banned until", "banned"), ("每天", "quota", "40203")),
        exact={"-1003": "rate_limited", "Not Found": "not_found"},
        status={418: "banned"},
    )
    assert table.classify(429, -1003, "Way too much request weight used; IP banned until 1") == "banned"
    assert table.classify(429, -1003, "Too much request weight used") == "rate_limited"
    assert table.classify(200, 40203, "抱歉，您每天最多访问该接口") == "quota"
    assert table.classify(200, -2001, "参数错误: 每天") == "rejected"  # a scoped fragment of another code
    assert table.classify(404, "not found", "") == "not_found"  # codes match case-insensitively
    assert table.classify(418, None, "") == "banned"
    assert [table.classify(s, None, "") for s in (401, 403, 404, 429, 503, 400)] == [
        "permission",
        "permission",
        "not_found",
        "rate_limited",
        "retry",
        "rejected",
    ]


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
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                    + str(len(body)).encode()
                    + b"\r\n\r\n"
                )
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
        async with ApiClient(
            url, timeout_s=1.0, deadline_s=0.5, retry=RetryPolicy(max_retries=1, backoff_base_s=0.01)
        ) as api:
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


def test_every_client_shares_one_verifying_tls_context():
    """The CA bundle is read once a process, not once a client, and verification stays what httpx's is."""
    import ssl

    from marketdata_assets.core.http import tls_context

    async def contexts():
        clients = [ApiClient("https://example.invalid"), ApiClient("https://example.invalid/other")]
        try:
            return [client._http._transport._pool._ssl_context for client in clients]
        finally:
            for client in clients:
                await client.aclose()

    first, second = run(contexts())
    assert first is second is tls_context()
    assert first.verify_mode == ssl.CERT_REQUIRED and first.check_hostname
    assert first.cert_store_stats()["x509_ca"] > 50  # certifi's CAs (or SSL_CERT_FILE's), loaded
