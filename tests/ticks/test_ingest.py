"""ProviderRun (defs/ticks/ingest.py): independent keys, retries after the others, batches split to
find a bad key, a stop error skips the rest, progress lines; request figures per key over real HTTP."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest

from marketdata_assets.defs.ticks import ingest
from marketdata_assets.lib.http import RetryPolicy
from marketdata_assets.lib.http import SourceBanned, SourceDataError, SourceRequestError
from marketdata_assets.lib.ticks.sources import venue_client
from marketdata_assets.replay.crypto import CryptoReplayServer, ReplayConfig

UTC = timezone.utc


def run(coro):
    return asyncio.run(coro)


def test_each_key_is_independent_and_a_failed_one_is_retried_after_the_others():
    calls: list[str] = []
    flaky = {"B": 1}  # B fails once, then works

    async def fetch(batch):
        (key,) = batch
        calls.append(key)
        await asyncio.sleep(0)
        if key == "BAD":
            raise SourceDataError(key, "2025-01-15", "price is 'abc', not a number", source="X", request="GET /x")
        if flaky.get(key):
            flaky[key] -= 1
            raise RuntimeError("connection reset")
        return {key: key.lower()}

    messages: list[str] = []
    outcomes = run(ingest.ProviderRun("X", workers=1, attempts=2, log=messages.append).run(
        ["A", "B", "BAD", "C"], fetch))
    assert calls == ["A", "B", "BAD", "C", "B", "BAD"]  # retries go after the keys not tried yet
    assert {k: o.status for k, o in outcomes.items()} == {"A": "fetched", "B": "fetched", "BAD": "failed",
                                                          "C": "fetched"}
    assert outcomes["B"].value == "b" and outcomes["B"].attempts == 2
    assert outcomes["BAD"].error == "X BAD 2025-01-15: price is 'abc', not a number (GET /x)"
    assert any("attempt 1 of 2; retried after the others" in m for m in messages)
    assert messages[-1].startswith("X: 4/4 symbols done (3 fetched, 1 failed, 0 skipped)")


def test_a_rejected_request_is_not_retried_and_a_stop_error_skips_everything_left():
    calls: list[str] = []

    async def fetch(batch):
        (key,) = batch
        calls.append(key)
        if key == "UNKNOWN":
            raise SourceRequestError("X", key, 400, -1121, "Invalid symbol.")
        if key == "C":
            raise SourceBanned("X", "HTTP 418: IP banned until 1700000000000")
        return {key: 1}

    provider = ingest.ProviderRun("X", workers=1, attempts=3)
    outcomes = run(provider.run(["UNKNOWN", "B", "C", "D", "E"], fetch))
    assert calls == ["UNKNOWN", "B", "C"]  # nothing after the ban
    assert [outcomes[k].status for k in ("UNKNOWN", "B", "C", "D", "E")] == [
        "failed", "fetched", "failed", "skipped", "skipped"]
    assert "banned this IP" in outcomes["C"].error
    assert outcomes["E"].error.startswith("not attempted: X stopped: X banned this IP")


def test_a_failing_batch_is_split_so_one_bad_key_fails_alone():
    async def fetch(batch):
        if "BAD" in batch:
            raise ValueError(f"answer for {','.join(batch)}: a row of BAD has no close")
        return {key: len(batch) for key in batch}

    outcomes = run(ingest.ProviderRun("X", workers=2, attempts=1).run(["A", "B", "BAD", "C", "D"], fetch,
                                                                        batch_size=4))
    assert {k: (o.status, o.value) for k, o in outcomes.items()} == {
        "A": ("fetched", 1), "B": ("fetched", 1), "BAD": ("failed", None), "C": ("fetched", 1), "D": ("fetched", 1)}


def test_a_write_error_fails_its_key_only():
    async def fetch(batch):
        return {batch[0]: batch[0]}

    async def write(outcome):
        if outcome.key == "B":
            raise RuntimeError("ClickHouse holds a different row count")
        outcome.status = "ok"

    outcomes = run(ingest.ProviderRun("X", workers=2).run(["A", "B"], fetch, on_fetched=write))
    assert outcomes["A"].status == "ok" and outcomes["B"].status == "failed"
    assert outcomes["B"].error == "B: write failed: ClickHouse holds a different row count"


def test_request_figures_are_counted_per_key_over_real_http():
    with CryptoReplayServer(ReplayConfig(seed=2, trades_per_day=400)) as server:
        server.add_fault(kind="rate_limit", venue="OKX", instrument="ETH-USDT", times=2, retry_after="0.01")
        server.add_fault(kind="server_error", venue="OKX", instrument="BTC-USDT", times=1)
        start = datetime(2025, 1, 15, tzinfo=UTC)

        async def main():
            async with venue_client("OKX", server.base_url, requests_per_minute=60_000, max_concurrency=4,
                                     retry=RetryPolicy(max_retries=3, backoff_base_s=0.01)) as api:
                ingest.count_requests(api)

                async def fetch(batch):
                    return {batch[0]: await api.trades(batch[0], start, start + timedelta(days=1))}

                outcomes = await ingest.ProviderRun("OKX", workers=2).run(["BTC-USDT", "ETH-USDT"], fetch)
                return outcomes, api.stats

        outcomes, totals = run(main())
    eth, btc = outcomes["ETH-USDT"].stats, outcomes["BTC-USDT"].stats
    assert (eth.rate_limited, eth.server_errors, eth.retries) == (2, 0, 2)
    assert (btc.rate_limited, btc.server_errors, btc.retries) == (0, 1, 1)
    assert eth.requests + btc.requests == totals.requests == len(server.requests(venue="OKX"))
    assert eth.percentile_ms(0.5) > 0 and len(eth.latency_s) == eth.requests
    row = ingest.log_row("run", "OKX", "trades", "OKX", "ETH-USDT", start.date(), outcomes["ETH-USDT"], status="ok",
                         rows=400)
    assert (row["requests"], row["retries"], row["rate_limited"], row["outcome"]) == (eth.requests, 2, 2, "ok")


def test_summaries():
    assert ingest.success_line(148, 150) == "Successful: 148/150"
    markdown = ingest.failures_table([("bars 600010.SH 2025-06-05", "failed", "close is 'abc'", 2)])
    assert markdown.splitlines()[2] == "| bars 600010.SH 2025-06-05 | failed | close is 'abc' | 2 |"
    with pytest.raises(ValueError):
        ingest.ProviderRun("X", workers=0)
