"""A sources file of a test's own universes (the shipped file otherwise): which instruments are expected
from which day (read/expected.py), set for the test through TICKS_PROVIDERS_CONFIG."""

from __future__ import annotations

from datetime import date

import yaml

from marketdata_assets.sources.config import CONFIG_ENV, DEFAULT_CONFIG


def use_universes(
    tmp_path, monkeypatch, start: date, crypto: dict[str, list[str]], a_shares: list[str]
) -> None:
    """The shipped sources file with explicit universes only: `crypto` (venue -> instruments) and the
    A-share codes `a_shares`, both from `start`."""
    data = yaml.safe_load(DEFAULT_CONFIG.read_text(encoding="utf-8"))
    data["universes"]["crypto"].update(history_start=str(start), rules={}, instruments=crypto)
    data["universes"]["a_shares"].update(history_start=str(start), symbols=a_shares)
    (tmp_path / "sources.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    monkeypatch.setenv(CONFIG_ENV, str(tmp_path / "sources.yaml"))
