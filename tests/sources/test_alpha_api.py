"""The alpha API client against the replay server over real HTTP (loopback, no mocks).

One replay server serves the module (its data is deterministic); each test sets the faults and
limits it needs and gets them reset afterwards. Ground truth is the server's own index.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import logging
import math
import re
import subprocess
import sys
from datetime import datetime
from zoneinfo import ZoneInfo

import httpx
import pytest

from marketdata_assets.core.http import RetryPolicy
from marketdata_assets.replay.alpha_api import (
    LIST_PATH,
    AlphaReplayServer,
    Faults,
    ReplayAccount,
    ReplayConfig,
    parse_filters,
)
from marketdata_assets.replay.alpha_factory import make_alpha as ALPHA_FACTORY
from marketdata_assets.sources.alpha_api import (
    AlphaAccount,
    AlphaApi,
    AlphaApiClient,
    AlphaAuthError,
    AlphaConfigError,
    InvalidResponseError,
    PersonaRequired,
    accounts_from_env,
    date_created_filter,
    list_path,
    month_window,
    rewrite_next,
)
from tests.support.scripted_server import Reply, ScriptedServer

NY = ZoneInfo("America/New_York")
FAST = RetryPolicy(max_retries=4, backoff_base_s=0.01, backoff_max_s=0.05)
PASSWORDS = {"main": "Main-pw!4f7a9c", "research": "Research-pw!91be3", "locked": "Locked-pw!c0ffee"}
ACCOUNTS = [
    ReplayAccount("main", "quant.main@example.com", PASSWORDS["main"], alphas=330),
    ReplayAccount("research", "quant.research@example.com", PASSWORDS["research"], alphas=150),
    ReplayAccount("locked", "quant.locked@example.com", PASSWORDS["locked"], alphas=5, persona=True),
]
CLIENT_ACCOUNTS = {a.name: AlphaAccount(a.name, a.user, a.password) for a in ACCOUNTS}
MONTH = "2024-11"  # holds the autumn DST change: both 01:30s of Nov 3


@pytest.fixture(scope="module")
def replay():
    config = ReplayConfig(
        seed=11,
        accounts=[dataclasses.replace(a) for a in ACCOUNTS],
        start_month="2024-10",
        months=3,
        super_share=0.25,
    )
    with AlphaReplayServer(config, alpha_factory=ALPHA_FACTORY) as server:
        yield server


@pytest.fixture
def server(replay):
    """The module's server, with default faults, limits, sessions and persona flags after each test."""
    limits = (replay.config.max_offset, replay.config.max_limit)
    yield replay
    replay.set_faults(reset_counters=True, **dataclasses.asdict(Faults()))
    replay.config.max_offset, replay.config.max_limit = limits
    replay.expire_sessions()
    replay.persona_required = {a.name for a in ACCOUNTS if a.persona}
    replay.auth_counts.clear()
    replay.counters.clear()
    replay.log.clear()


def client(server, name="main", **kwargs) -> AlphaApiClient:
    kwargs = {"retry": FAST, "requests_per_minute": 60_000, "max_concurrency": 4, "timeout_s": 5, **kwargs}
    return AlphaApiClient(server.base_url, CLIENT_ACCOUNTS[name], **kwargs)


def fetch(server, name="main", month=MONTH, **kwargs):
    async def go():
        async with client(server, name, **kwargs) as api:
            return await api.fetch_month(month)

    return asyncio.run(go())


def list_requests(server):
    return [e for e in server.requests_to(LIST_PATH)]


# ---------------------------------------------------------------------------------------------
# Pure functions: the vendor's query conventions
# ---------------------------------------------------------------------------------------------


def test_month_windows_are_new_york_months_with_their_offsets():
    start, end = month_window("2024-11")
    assert (start.isoformat(), end.isoformat()) == ("2024-11-01T00:00:00-04:00", "2024-12-01T00:00:00-05:00")
    start, end = month_window("2024-12")
    assert end.isoformat() == "2025-01-01T00:00:00-05:00"
    assert month_window("2024-12-01") == (start, end)  # a Dagster monthly partition key
    with pytest.raises(AlphaConfigError):
        month_window("2024-13")


def test_date_filter_is_half_open_in_the_brain_key_convention():
    start, end = month_window("2024-03")
    assert (
        date_created_filter(start, end)
        == "dateCreated%3E=2024-03-01T00:00:00-05:00&dateCreated%3C2024-04-01T00:00:00-04:00"
    )
    assert list_path(start, end, alpha_type="SUPER", limit=100, offset=200) == (
        "/users/self/alphas?limit=100&offset=200&order=dateCreated&type=SUPER"
        "&dateCreated%3E=2024-03-01T00:00:00-05:00&dateCreated%3C2024-04-01T00:00:00-04:00"
    )
    # what the server reads from it: >= start, < end
    _, filters = parse_filters(date_created_filter(start, end))
    assert [(f, op) for f, op, _ in filters] == [("dateCreated", ">="), ("dateCreated", "<")]


@pytest.mark.parametrize(
    "next_url, base, expected",
    [
        (
            "http://api.worldquantbrain.com:443/users/self/alphas?limit=100&offset=100",
            "https://api.worldquantbrain.com",
            "https://api.worldquantbrain.com/users/self/alphas?limit=100&offset=100",
        ),
        (
            "http://127.0.0.1:443/users/self/alphas?dateCreated%3C2024-04-01T00%3A00%3A00-04%3A00=&offset=20",
            "http://127.0.0.1:8765/",
            "http://127.0.0.1:8765/users/self/alphas?dateCreated%3C2024-04-01T00%3A00%3A00-04%3A00=&offset=20",
        ),
        (
            "http://h:443/users/self/alphas?offset=5",
            "https://gw.example/brain",
            "https://gw.example/brain/users/self/alphas?offset=5",
        ),
        (
            "http://h:443/brain/users/self/alphas?offset=5",
            "https://gw.example/brain",
            "https://gw.example/brain/users/self/alphas?offset=5",
        ),
    ],
)
def test_next_links_keep_path_and_query_on_the_configured_base(next_url, base, expected):
    assert rewrite_next(next_url, base) == expected


def test_accounts_come_from_env_and_never_show_the_password():
    env = {
        "ALPHA_API_USER_MAIN": "u1@example.com",
        "ALPHA_API_PASSWORD_MAIN": "pw-one-XYZ",
        "ALPHA_API_USER_TEAM_B": "u2@example.com",
        "ALPHA_API_PASSWORD_TEAM_B": "pw-two-XYZ",
    }
    main, team = accounts_from_env("main, team-b", env)
    assert (main.user, main.password, team.name, team.password) == (
        "u1@example.com",
        "pw-one-XYZ",
        "team-b",
        "pw-two-XYZ",
    )
    for text in (repr(main), str(main), repr([main, team])):
        assert "pw-one-XYZ" not in text and "pw-two-XYZ" not in text
    with pytest.raises(AlphaConfigError) as error:
        accounts_from_env(["other"], {"ALPHA_API_USER_OTHER": "x", "ALPHA_API_PASSWORD_MAIN": "pw-one-XYZ"})
    assert "ALPHA_API_PASSWORD_OTHER" in str(error.value) and "pw-one" not in str(error.value)


# ---------------------------------------------------------------------------------------------
# The replay server speaks the vendor's dialect
# ---------------------------------------------------------------------------------------------


def test_replay_filters_pagination_and_limits(server):
    main = CLIENT_ACCOUNTS["main"]
    with httpx.Client(base_url=server.base_url) as http:
        assert http.get(LIST_PATH + "?limit=5").status_code == 401
        login = http.post("/authentication", auth=(main.user, main.password))
        assert (
            login.status_code == 201 and login.json()["token"]["expiry"] == 14400.0 and "t" in login.cookies
        )
        start, end = month_window(MONTH)
        page = http.get(list_path(start, end, alpha_type=None, limit=7)).json()
        assert page["count"] == len(server.truth("main", MONTH)) and page["previous"] is None
        assert [a["id"] for a in page["results"]] == server.truth("main", MONTH)[:7]
        assert page["next"].startswith("http://127.0.0.1:443/users/self/alphas?")  # the vendor's quirk
        second = http.get(rewrite_next(page["next"], server.base_url)).json()
        assert [a["id"] for a in second["results"]] == server.truth("main", MONTH)[7:14]
        assert second["previous"].startswith("http://127.0.0.1:443/") and "offset" not in second["previous"]
        # <= and != and the %1F "or" list
        last = server.alpha(server.truth("main", MONTH)[-1])["dateCreated"]
        inclusive = http.get(
            f"{LIST_PATH}?limit=1&dateCreated%3C={last}&dateCreated%3E={start.isoformat()}"
        ).json()
        assert inclusive["count"] == len(server.truth("main", MONTH))
        supers = http.get(f"{LIST_PATH}?limit=1&type!=REGULAR&{date_created_filter(start, end)}").json()
        assert supers["count"] == len(server.truth("main", MONTH, "SUPER"))
        statuses = http.get(f"{LIST_PATH}?limit=100&status=UNSUBMITTED%1FACTIVE").json()
        assert {a["status"] for a in statuses["results"]} <= {"UNSUBMITTED", "ACTIVE"}
        newest = http.get(f"{LIST_PATH}?limit=1&order=-dateCreated").json()["results"][0]["id"]
        assert newest == server.truth("main")[-1]
        # limit clamped to 100; offset + limit beyond the maximum is a 400
        assert len(http.get(f"{LIST_PATH}?limit=500").json()["results"]) == 100
        server.config.max_offset = 50
        too_deep = http.get(f"{LIST_PATH}?limit=10&offset=45")
        assert too_deep.status_code == 400 and "50" in too_deep.json()["detail"]
        assert http.get("/authentication").status_code == 200
        server.expire_sessions("main")
        assert http.get("/authentication").status_code == 401


def test_replay_data_is_deterministic_and_has_the_boundary_alphas(server):
    again = AlphaReplayServer(
        dataclasses.replace(server.config, accounts=[dataclasses.replace(a) for a in ACCOUNTS]),
        alpha_factory=ALPHA_FACTORY,
    )
    try:
        assert again.truth("main") == server.truth("main")
        assert again.alpha(server.truth("main")[0]) == server.alpha(server.truth("main")[0])
    finally:
        again.httpd.server_close()
    created = [server.alpha(i)["dateCreated"] for i in server.truth("main")]
    assert "2024-11-03T01:30:00-04:00" in created and "2024-11-03T01:30:00-05:00" in created
    assert "2024-10-31T23:59:59-04:00" in created and "2024-11-01T00:00:00-04:00" in created
    assert "2024-12-01T00:00:00-05:00" in created
    ids = [i for name in server.accounts for i in server.truth(name)]
    assert len(ids) == len(set(ids)) and all(7 <= len(i) <= 8 for i in ids)


# ---------------------------------------------------------------------------------------------
# The client
# ---------------------------------------------------------------------------------------------


def test_authenticates_with_basic_and_keeps_the_session_cookie(server):
    async def go():
        async with client(server) as api:
            body = await api.authenticate()
            alive = await api.check_session()
            server.expire_sessions("main")
            after = await api.check_session()
            return body, alive, after, api.http.headers.get("Cookie")

    body, alive, after, cookie = asyncio.run(go())
    assert body["user"]["id"] == server.authors["main"] and alive is True and after is False
    assert cookie.startswith("t=") and server.auth_counts == {"main": 1}


def test_fetch_month_follows_rewritten_next_links_and_matches_the_truth(server):
    result = fetch(server, page_limit=7)
    truth = server.truth("main", MONTH)
    assert result.ids == truth  # ordered by dateCreated, id; nothing lost, nothing twice
    counts = {t: len(server.truth("main", MONTH, t)) for t in ("REGULAR", "SUPER")}
    assert result.stats.alphas_by_type == counts
    assert result.stats.pages == sum(math.ceil(n / 7) for n in counts.values())
    assert result.stats.duplicates_dropped == result.stats.count_mismatches == result.stats.windows_split == 0
    requests = list_requests(server)
    assert len(requests) == result.stats.pages and all(e["status"] == 200 for e in requests)
    assert any("offset=7" in e["path"] for e in requests)  # next links reached this server
    assert (result.start, result.end) == ("2024-11-01T00:00:00-04:00", "2024-12-01T00:00:00-05:00")


def test_new_york_month_boundaries(server):
    october, november = fetch(server, month="2024-10"), fetch(server, month="2024-11")
    assert october.ids == server.truth("main", "2024-10") and november.ids == server.truth("main", "2024-11")
    assert not set(october.ids) & set(november.ids)
    oct_created = {a["dateCreated"] for a in october.alphas}
    nov_created = {a["dateCreated"] for a in november.alphas}
    # 23:59:59 and 23:30 on Oct 31 in New York are November in UTC, but October here
    assert {"2024-10-31T23:59:59-04:00", "2024-10-31T23:30:00-04:00"} <= oct_created
    assert {
        "2024-11-01T00:00:00-04:00",
        "2024-11-03T01:30:00-04:00",
        "2024-11-03T01:30:00-05:00",
    } <= nov_created
    for result, month in ((october, 10), (november, 11)):
        assert all(
            datetime.fromisoformat(a["dateCreated"]).astimezone(NY).month == month for a in result.alphas
        )


def test_months_above_the_offset_limit_are_split_into_windows_without_loss_or_duplicates(server):
    server.config.max_offset = 30  # the real API: 10,000
    result = fetch(server, page_limit=10, max_window_results=30)
    assert len(server.truth("main", MONTH, "REGULAR")) > 60  # needs at least two levels of splitting
    assert result.ids == server.truth("main", MONTH)
    assert result.stats.windows_split >= 3 and result.stats.duplicates_dropped == 0
    assert result.stats.count_mismatches == 0
    assert all(e["status"] == 200 for e in list_requests(server))  # never asked past the limit
    # the same-second burst sits exactly on the first split point (the month's middle): half-open
    start, end = month_window(MONTH)
    middle = start.timestamp() + (end.timestamp() - start.timestamp()) // 2
    at_middle = [
        i
        for i in server.truth("main", MONTH)
        if datetime.fromisoformat(server.alpha(i)["dateCreated"]).timestamp() == middle
    ]
    assert len(at_middle) == 3 and set(at_middle) <= set(result.ids)


def test_a_server_limit_lower_than_configured_is_learned_from_its_400(server):
    server.config.max_offset = 40

    async def go():
        async with client(server, page_limit=10) as api:  # configured for 10,000
            return await api.fetch_month(MONTH), api.max_window_results

    result, learned = asyncio.run(go())
    assert result.ids == server.truth("main", MONTH)
    assert learned == 40 and result.stats.windows_split >= 1
    assert any(e["status"] == 400 for e in list_requests(server))


def test_expired_session_is_renewed_once_per_request(server):
    # one request at a time: the fault ends a session after 3 data requests, so with 4 in flight the
    # 4th request sent with a fresh session could meet its end too (a 401 right after re-authenticating,
    # rightly an error) whenever the machine's timing let 4 go out at once
    server.set_faults(expire_session_after=3)
    result = fetch(server, page_limit=10, max_concurrency=1)
    assert result.ids == server.truth("main", MONTH)
    assert result.stats.reauths >= 2 and server.auth_counts["main"] == 1 + result.stats.reauths


def test_a_401_right_after_reauthenticating_is_an_error(server):
    server.set_faults(expire_session_after=0)
    with pytest.raises(AlphaAuthError) as error:
        fetch(server, types=("REGULAR",))
    assert "'main'" in str(error.value) and "still HTTP 401" in str(error.value)
    assert server.auth_counts["main"] == 2 and len(list_requests(server)) == 2


def test_persona_check_stops_at_once_naming_the_account_and_location(server):
    async def go():
        async with client(server, "locked") as api:
            with pytest.raises(PersonaRequired) as first:
                await api.fetch_month(MONTH)
            requests_after_first = len(server.log)
            with pytest.raises(PersonaRequired):
                await api.fetch_month("2024-10")  # no new request: the account is blocked
            return first.value, requests_after_first

    error, requests_after_first = asyncio.run(go())
    assert error.account == "locked" and "'locked'" in str(error)
    assert error.location.startswith(server.base_url + "/authentication/persona?inquiry=inq_")
    assert error.location in str(error) and "Not retried" in str(error)
    assert len(server.requests_to("/authentication", "POST")) == 1 and len(server.log) == requests_after_first
    assert list_requests(server) == []


def test_persona_on_a_normal_request_is_not_retried(server):
    seen = []

    def on_alpha(alpha):
        if not seen:
            httpx.post(server.base_url + "/_replay/persona", json={"account": "main"}).raise_for_status()
        seen.append(alpha["id"])

    async def go():
        async with client(server, page_limit=10, types=("REGULAR",)) as api:
            await api.fetch_month(MONTH, on_alpha)

    with pytest.raises(PersonaRequired) as error:
        asyncio.run(go())
    assert error.value.account == "main" and len(seen) == 10
    assert server.auth_counts["main"] == 1  # no re-authentication after the persona 401
    assert [e["status"] for e in list_requests(server)] == [200, 401]


@pytest.mark.parametrize(
    "retry_after, body, status",
    [("0.4", "throttled", 429), ("1", "concurrent", 429), (None, "concurrent", 400)],
)
def test_rate_limits_honor_retry_after_float_strings(server, retry_after, body, status):
    server.set_faults(
        rate_limit_every=2, retry_after=retry_after, rate_limit_body=body, rate_limit_status=status
    )
    result = fetch(server, page_limit=50, types=("REGULAR",))
    assert result.ids == server.truth("main", MONTH, "REGULAR")
    requests = list_requests(server)
    limited = [i for i, e in enumerate(requests) if e["status"] == status]
    assert limited and result.stats.rate_limited_429 == len(limited) == server.counters["rate_limited"]
    if retry_after:
        for i in limited:
            assert requests[i + 1]["t"] - requests[i]["t"] >= float(retry_after) - 0.02


@pytest.mark.parametrize(
    "fault, counter",
    [
        ("server_error_every", "server_errors_5xx"),
        ("truncate_every", "invalid_bodies"),
        ("disconnect_every", "transport_errors"),
    ],
)
def test_transient_faults_are_retried(server, fault, counter):
    server.set_faults(**{fault: 3})
    result = fetch(server, page_limit=10)
    assert result.ids == server.truth("main", MONTH)
    assert getattr(result.stats, counter) >= 2 and result.stats.retries >= getattr(result.stats, counter)


def test_a_body_truncated_on_every_attempt_fails_naming_the_url(server):
    server.set_faults(truncate_every=1)
    with pytest.raises(InvalidResponseError) as error:
        fetch(server, types=("SUPER",))
    message = str(error.value)
    assert f"GET {server.base_url}/users/self/alphas?" in message and "type=SUPER" in message
    assert "5 attempts" in message and len(list_requests(server)) == 5


def test_accounts_are_isolated(server):
    async def go():
        async with AlphaApi(
            server.base_url, list(CLIENT_ACCOUNTS.values()), retry=FAST, requests_per_minute=60_000
        ) as api:
            return await asyncio.gather(api.fetch_month("main", MONTH), api.fetch_month("research", MONTH))

    main, research = asyncio.run(go())
    assert main.ids == server.truth("main", MONTH) and research.ids == server.truth("research", MONTH)
    assert research.ids and not set(main.ids) & set(research.ids)
    assert {a["author"] for a in main.alphas} == {server.authors["main"]}
    assert {a["author"] for a in research.alphas} == {server.authors["research"]} != {server.authors["main"]}


def test_callback_receives_every_alpha_once(server):
    got = []

    async def on_alpha(alpha):
        got.append(alpha["id"])

    async def go():
        async with client(server, page_limit=25) as api:
            return await api.fetch_month(MONTH, on_alpha)

    result = asyncio.run(go())
    assert result.alphas == [] and sorted(got) == sorted(server.truth("main", MONTH))
    assert result.stats.alphas == len(got)


def test_no_password_in_logs_errors_or_reprs(server, caplog):
    caplog.set_level(logging.DEBUG)
    secrets = list(PASSWORDS.values()) + [
        base64.b64encode(f"{a.user}:{a.password}".encode()).decode() for a in ACCOUNTS
    ]
    texts = []
    wrong = AlphaAccount("main", CLIENT_ACCOUNTS["main"].user, "Wrong-pw!123456")
    secrets.append("Wrong-pw!123456")

    async def go():
        async with AlphaApiClient(server.base_url, wrong, retry=FAST) as api:
            with pytest.raises(AlphaAuthError) as rejected:
                await api.fetch_month(MONTH)
            texts.extend(
                [str(rejected.value), repr(rejected.value), repr(api), str(api.account), repr(api.account)]
            )
        server.set_faults(expire_session_after=2)
        async with AlphaApi(
            server.base_url, list(CLIENT_ACCOUNTS.values()), retry=FAST, requests_per_minute=60_000
        ) as api:
            await api.fetch_month("main", MONTH)
            with pytest.raises(PersonaRequired) as persona:
                await api.fetch_month("locked", MONTH)
            texts.extend(
                [
                    str(persona.value),
                    repr(persona.value),
                    repr(api),
                    repr(api.client("main")),
                    repr(api.accounts),
                    str(api.accounts),
                ]
            )

    asyncio.run(go())
    assert "ALPHA_API_PASSWORD_MAIN" in texts[0]  # the rejection says where the password comes from
    texts.append(caplog.text)
    texts.extend(str(r.args) for r in caplog.records)
    for text in texts:
        for secret in secrets:
            assert secret not in text


def test_cli_serves_the_configured_accounts(tmp_path):
    config = tmp_path / "replay.json"
    config.write_text(
        json.dumps(
            {
                "accounts": [{"name": "alpha_one"}, {"name": "beta"}, {"name": "gamma"}],
                "faults": {"retry_after": "0.5"},
                "start_month": "2025-01",
                "months": 2,
            }
        )
    )
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "marketdata_assets.replay.alpha_api",
            "--port",
            "0",
            "--config",
            str(config),
            "--seed",
            "3",
            "--alphas",
            "40",
            "--persona-account",
            "gamma",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={"PATH": "/usr/bin:/bin", "ALPHA_API_PASSWORD_BETA": "beta-from-env"},
    )
    try:
        line = process.stdout.readline()
        assert "alpha_one (40 alphas)" in line and "beta (40 alphas)" in line, process.stderr.read()
        base_url = re.search(r"http://127\.0\.0\.1:\d+", line).group(0)
        with httpx.Client(base_url=base_url) as http:
            assert (
                http.post(
                    "/authentication", auth=("alpha_one@replay.invalid", "replay-alpha_one")
                ).status_code
                == 201
            )
            assert (
                http.post("/authentication", auth=("beta@replay.invalid", "beta-from-env")).status_code == 201
            )
            assert http.get(LIST_PATH + "?limit=100").json()["count"] == 40
            assert http.get("/_replay/state").json()["faults"]["retry_after"] == "0.5"
            persona = http.post("/authentication", auth=("gamma@replay.invalid", "replay-gamma"))
            assert persona.status_code == 401 and persona.headers["WWW-Authenticate"] == "persona"
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert process.returncode == 0


def test_a_month_in_small_pages_is_every_alpha_once(server):
    """A month of 100+ alphas in 10-alpha pages: every alpha once, a list request a page (how long it takes is
    not asserted: a timed test fails on a busy machine)."""
    before = len(list_requests(server))
    alphas = fetch(server, page_limit=10).alphas
    truth = server.truth("main", MONTH)
    assert len(truth) > 100 and sorted(a["id"] for a in alphas) == sorted(truth)
    assert len(list_requests(server)) - before >= -(-len(truth) // 10)


def test_a_next_link_that_loops_is_an_error_not_a_hang():
    page = {
        "count": 3,
        "next": "http://vendor.example:443/users/self/alphas?limit=1&offset=1",
        "previous": None,
        "results": [{"id": "abcdefg", "type": "REGULAR", "dateCreated": "2024-11-05T10:00:00-05:00"}],
    }
    with ScriptedServer() as scripted:
        scripted.replies.extend(
            [
                Reply(
                    201,
                    b'{"user":{"id":"XX1"},"token":{"expiry":14400.0}}',
                    {"Set-Cookie": "t=tok; Path=/; Secure; HttpOnly"},
                ),
                Reply(200, json.dumps(page).encode()),
                Reply(200, json.dumps(page).encode()),
            ]
        )

        async def go():
            async with AlphaApiClient(
                scripted.url, CLIENT_ACCOUNTS["main"], retry=FAST, types=("REGULAR",)
            ) as api:
                await api.fetch_month("2024-11")

        with pytest.raises(InvalidResponseError) as error:
            asyncio.run(go())
    assert "already listed" in str(
        error.value
    ) and f"{scripted.url}/users/self/alphas?limit=1&offset=1" in str(error.value)
    assert [path.split("?")[0] for _, _, path in scripted.requests] == ["/authentication"] + [LIST_PATH] * 2


def test_persona_location_may_be_absolute():
    with ScriptedServer() as scripted:
        scripted.replies.append(
            Reply(
                401,
                b'{"detail":"persona"}',
                {"WWW-Authenticate": "persona", "Location": "https://platform.example/verify?inquiry=inq_1"},
            )
        )

        async def go():
            async with AlphaApiClient(scripted.url, CLIENT_ACCOUNTS["research"], retry=FAST) as api:
                await api.authenticate()

        with pytest.raises(PersonaRequired) as error:
            asyncio.run(go())
    assert error.value.location == "https://platform.example/verify?inquiry=inq_1"
    assert "'research'" in str(error.value) and len(scripted.requests) == 1
