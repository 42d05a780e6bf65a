"""`marketdata collect`'s process (apps/live.py `run_live`) when one venue's collector fails."""

from __future__ import annotations

import asyncio

import pytest

from marketdata_assets.apps.live import LiveOptions, VenueOptions, run_live
from marketdata_assets.ingest.live.collector import CollectorFailed

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
