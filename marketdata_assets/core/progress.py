"""Progress of long work inside this process: the work says how much of its known total is done, in its
unit (the ingest engine: slices settled of a feed's slices; an import or a load: files; the export:
partitions), whoever shows it listens (the CLI's bar). Nothing listens in a Dagster run process: the
work's own log lines carry the same counts there."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

Listener = Callable[[str, int, int, str], None]  # (what: a key per piece of work, done, total, unit)

_listeners: list[Listener] = []
_lock = threading.Lock()


def report(what: str, done: int, total: int, unit: str = "slices") -> None:
    """`done` of `total` `unit` of the work `what` (one key per piece: a feed's slices, an import's files)."""
    with _lock:
        listeners = list(_listeners)
    for listener in listeners:
        listener(what, done, total, unit)


@contextmanager
def listening(listener: Listener) -> Iterator[None]:
    """`listener` hears every report made inside the block (from any thread of this process)."""
    with _lock:
        _listeners.append(listener)
    try:
        yield
    finally:
        with _lock:
            _listeners.remove(listener)


def eta_text(done: int, total: int, elapsed_s: float) -> str:
    """'ETA 3 min' (or '40 s') from the rate so far; '' before the first piece is done or after the last."""
    if done <= 0 or done >= total or elapsed_s <= 0:
        return ""
    left_s = (total - done) * elapsed_s / done
    return f"ETA {left_s / 60:.0f} min" if left_s >= 90 else f"ETA {left_s:.0f} s"
