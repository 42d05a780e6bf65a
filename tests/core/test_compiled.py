"""core/compiled.py: `MARKETDATA_COMPILED` picks a compiled twin or its original (auto: the compiled one when
built, else the original with a warning naming it; 1: the compiled one or an ImportError that says how to
build it; 0: the original), and a value it does not know is refused."""

from __future__ import annotations

import logging

import pytest

from marketdata_assets.core import compiled

BUILT = "marketdata_assets.ingest.live.collect._wsframes"


def original(buf, pos):
    return "original"


@pytest.mark.parametrize("value", ["auto", "1", ""])
def test_a_built_twin_is_taken_unless_told_not_to(monkeypatch, value):
    monkeypatch.setenv("MARKETDATA_COMPILED", value)
    assert compiled.pick(BUILT, "cut_texts", original) is not original
    assert compiled.active[f"{BUILT}.cut_texts"] is True


def test_zero_takes_the_original(monkeypatch):
    monkeypatch.setenv("MARKETDATA_COMPILED", "0")
    assert compiled.pick(BUILT, "cut_texts", original) is original
    assert compiled.active[f"{BUILT}.cut_texts"] is False


def test_a_twin_not_built_falls_back_with_a_warning_or_fails_when_required(monkeypatch, caplog):
    missing = "marketdata_assets.ingest.live.collect._not_built"
    monkeypatch.setenv("MARKETDATA_COMPILED", "auto")
    with caplog.at_level(logging.WARNING, logger="marketdata_assets.core.compiled"):
        assert compiled.pick(missing, "cut", original) is original
    assert "_not_built is not built: cut runs in pure Python (run `make install`" in caplog.text
    monkeypatch.setenv("MARKETDATA_COMPILED", "1")
    with pytest.raises(
        ImportError, match="MARKETDATA_COMPILED=1 but .*_not_built is not built.*make install"
    ):
        compiled.pick(missing, "cut", original)


def test_an_unknown_value_is_refused(monkeypatch):
    monkeypatch.setenv("MARKETDATA_COMPILED", "yes")
    with pytest.raises(ValueError, match="MARKETDATA_COMPILED='yes': expected one of auto, 1, 0"):
        compiled.mode()
