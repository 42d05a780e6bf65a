"""Compiled twins of hot functions: Cython modules built by `make install` beside their pure-Python
originals, which give identical results (tests hold the two to it). `MARKETDATA_COMPILED` picks:
`auto` the compiled one when built, else the original with one warning naming it; `1` the compiled one
or an ImportError; `0` the originals (the suite runs either way: docs/live-capture.md)."""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

MODES = ("auto", "1", "0")
active: dict[str, bool] = {}  # "module.name" -> compiled (True) or the original (False), as picked


def mode() -> str:
    value = os.environ.get("MARKETDATA_COMPILED", "auto").strip().lower() or "auto"
    if value not in MODES:
        raise ValueError(f"MARKETDATA_COMPILED={value!r}: expected one of {', '.join(MODES)}")
    return value


def pick(module: str, name: str, original: Callable[..., Any] | type) -> Any:
    """`module.name` when it is built and wanted (`mode`), else `original`."""
    wanted = mode()
    if wanted == "0":
        active[f"{module}.{name}"] = False
        return original
    try:
        found = getattr(importlib.import_module(module), name)
    except ImportError as error:
        if wanted == "1":
            raise ImportError(
                f"MARKETDATA_COMPILED=1 but {module} is not built ({error}): run `make install`"
            ) from error
        log.warning("%s is not built: %s runs in pure Python (run `make install` to build it)", module, name)
        active[f"{module}.{name}"] = False
        return original
    active[f"{module}.{name}"] = True
    return found


__all__ = ["MODES", "active", "mode", "pick"]
