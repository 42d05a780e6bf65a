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
    options = LiveOptions(venues=[VenueOptions("BINANCE", ["BTCUSDT"], NOWHERE_WS, NOWHERE_REST),
                                  VenueOptions("OKX", ["BTC-USDT"], NOWHERE_WS, NOWHERE_REST)], landing_dir=tmp_path)

    async def scenario():
        stop = asyncio.Event()
        with pytest.raises(CollectorFailed, match="OKX collector stopped: its slot task failed with NotADirectoryError"):
            await asyncio.wait_for(run_live(options, stop), 20)
        return stop.is_set(), [t.get_coro().__qualname__ for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    stopped, pending = asyncio.run(scenario())
    assert stopped and pending == []
