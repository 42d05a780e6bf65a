"""`marketdata collect`'s process (apps/live.py `run_live`) when one venue's collector fails."""

from __future__ import annotations

import asyncio

import pytest

from marketdata_assets.apps.live import LiveOptions, VenueOptions, run_live
from marketdata_assets.ingest.live.collect.collector import CollectorFailed

NOWHERE_WS, NOWHERE_REST = "ws://127.0.0.1:9", "http://127.0.0.1:9"  # nothing listens: the venues reconnect


def test_one_failed_venue_stops_the_others_cleanly_then_the_error_goes_up(tmp_path):
    """OKX's landing folder cannot be made (a file is in its place): its collector fails at its first
    marker. The Binance collector beside it is stopped through the shared stop, not left running
    unsupervised while the process goes down (before: its tasks were still pending)."""
    (tmp_path / "OKX").write_text("not a folder")
    options = LiveOptions(
        venues=[
            VenueOptions("BINANCE", ["BTCUSDT"], NOWHERE_WS, NOWHERE_REST),
            VenueOptions("OKX", ["BTC-USDT"], NOWHERE_WS, NOWHERE_REST),
        ],
        landing_dir=tmp_path,
    )

    async def scenario():
        stop = asyncio.Event()
        running = asyncio.ensure_future(run_live(options, stop))
        await asyncio.wait({running}, timeout=20)
        assert running.done(), f"not stopped within 20 s; the tasks, where each waits: {_where_tasks_wait()}"
        with pytest.raises(
            CollectorFailed, match="OKX collector stopped: its slot task failed with NotADirectoryError"
        ):
            running.result()
        return stop.is_set(), [
            t.get_coro().__qualname__ for t in asyncio.all_tasks() if t is not asyncio.current_task()
        ]

    stopped, pending = asyncio.run(scenario())
    assert stopped and pending == []


def _where_tasks_wait() -> list[str]:
    """Each other task's chain of awaits, outermost first (`Task.get_stack` gives only the outermost)."""
    chains = []
    for task in asyncio.all_tasks():
        if task is asyncio.current_task():
            continue
        links, coro = [], task.get_coro()
        while coro is not None and getattr(coro, "cr_frame", None) is not None:
            links.append(f"{coro.cr_code.co_name}:{coro.cr_frame.f_lineno}")
            coro = coro.cr_await
        chains.append(" > ".join(links) + (f" > {coro!r}" if coro is not None else ""))
    return chains


def test_a_collector_on_a_fresh_store_stores_what_it_looked_up_exactly_once(
    tmp_path, clickhouse, monkeypatch
):
    """`marketdata collect` where `instrument_master` never ran (no `instruments` table): the process's one
    instrument service asks OKX's listing of swaps before the first frame (not a lookup each), sizes the
    trades by it, and stores what it learned once at the stop, the table made by the service. A second run
    starts from the stored master and asks the venue nothing."""
    from marketdata_assets.replay.crypto import CryptoReplayServer, ReplayConfig
    from marketdata_assets.replay.crypto.okx_ws import OkxWsReplay
    from marketdata_assets.replay.crypto.ws_server import WsConfig

    monkeypatch.setenv("CLICKHOUSE_DSN", clickhouse.dsn)
    monkeypatch.setenv("CLICKHOUSE_DATABASE", clickhouse.database)
    swap = "BTC-USDT-SWAP"
    with (
        CryptoReplayServer(ReplayConfig(seed=5, instruments={"OKX": [swap]})) as rest,
        OkxWsReplay(WsConfig(tick_s=0.02, trades_per_tick=4), rest=rest) as ws,
    ):

        def collect() -> dict:
            options = LiveOptions(
                venues=[VenueOptions("OKX", [swap], ws.url, rest.base_url)],
                datasets=("trades",),
                landing_dir=tmp_path,
            )

            async def scenario():
                stop = asyncio.Event()
                running = asyncio.ensure_future(run_live(options, stop))
                for _ in range(200):  # until trades were sized and published (10 s at most)
                    await asyncio.sleep(0.05)
                    if running.done():
                        break
                    if rest.requests("OKX", endpoint="reference") and tmp_path.joinpath("OKX").exists():
                        await asyncio.sleep(0.5)
                        break
                stop.set()
                return await running

            return asyncio.run(scenario())

        counters = collect()
        asked = len(rest.requests("OKX", endpoint="reference"))
        with clickhouse.get_client() as client:
            rows = client.query(
                f"SELECT instrument, valid_from, count() FROM `{clickhouse.database}`.instruments "
                "GROUP BY instrument, valid_from"
            ).result_rows
        again = collect()
        asked_again = len(rest.requests("OKX", endpoint="reference")) - asked
        with clickhouse.get_client() as client:
            (total,) = client.query(f"SELECT count() FROM `{clickhouse.database}`.instruments").result_rows[0]
    assert counters["venues"]["OKX"]["trades"] > 0 and not counters["venues"]["OKX"]["bad_frames"]
    assert asked == 1  # one listing of the swaps, before the first frame
    assert swap in {name for name, _, _ in rows} and {n for _, _, n in rows} == {1}  # each version once
    assert again["venues"]["OKX"]["trades"] > 0 and asked_again == 0  # the stored master sized them
    assert total == len(rows)  # nothing stored twice
