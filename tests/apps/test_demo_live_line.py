"""The make-run collector's line says how its universe came about: resolved (and again on its schedule), or
the explicit list standing in because the master could not be read, and each universe venue not collected
with the command that collects it."""

from __future__ import annotations

from marketdata_assets.apps.demo_live import line
from marketdata_assets.apps.universes import EXPLICIT_ONLY


def test_the_line_says_the_explicit_list_stands_in_when_the_master_is_unreadable(monkeypatch):
    monkeypatch.setenv("COLLECTOR_RESOLVE_S", "3600")
    down = f"ClickHouse at 127.0.0.1:9 is not reachable: {EXPLICIT_ONLY}"
    text = line(["OKX:BTC-USDT"], [down], [], ["BINANCE_UM"], ["OKX"])
    assert text.startswith(
        f"live collector: OKX:BTC-USDT ({down}; BINANCE_UM not collected: make run collects OKX "
        "(`marketdata collect --venue binance_um` collects it)) from the WebSocket replays -> "
    )
    assert "resolved today" not in text
    resolved = line(
        ["OKX:BTC-USDT"], ["OKX 2026-11-28..2026-11-28 (1 day(s)): top 3 ..."], ["OKX:X"], [], ["OKX"]
    )
    assert resolved.startswith(
        "live collector: OKX:BTC-USDT (the universe resolved today, again every 3600 s; OKX "
        "2026-11-28..2026-11-28 (1 day(s)): top 3 ...; not replayed: OKX:X) from"
    )
