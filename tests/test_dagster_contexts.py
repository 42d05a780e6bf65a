"""Every schedule context the code builds is exited (`with dg.build_schedule_context(...) as context:`).

Reading `.instance` of a schedule context opens an instance of its own (from the given one's ref),
and only the context's exit closes it. Left to the garbage collector, that close runs at a random
later moment and resets Dagster's defs-state context variable to the storage of an instance disposed
since: a later, unrelated `defs()` fails with "Attempted to resolve undefined DagsterInstance weakref"
(one CI run in several). The first test shows the mechanism on Dagster itself (and fails once Dagster
stops doing it); the others keep the code free of it.
"""

from __future__ import annotations

import ast
import contextvars
import gc
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.storage.defs_state import base

REPO = Path(__file__).resolve().parent.parent
OPENS_AN_INSTANCE = "build_schedule_context"


def _storage_after_collection() -> object:
    with dg.instance_for_test() as outer:
        context = dg.build_schedule_context(
            instance=outer, scheduled_execution_time=datetime(2025, 1, 1, tzinfo=UTC)
        )
        assert context.instance is not outer  # an instance of its own, from the ref
    assert base._current_storage.get() is None  # the outer instance exited: no storage
    del context
    gc.collect()  # the context left open is collected: its instance closes now
    return base._current_storage.get()


def test_a_schedule_context_left_open_puts_back_a_disposed_instances_storage():
    # in a context variable copy of its own: the stale value does not reach the other tests
    stale = contextvars.copy_context().run(_storage_after_collection)
    assert stale is not None and stale._instance_weakref() is None, (
        "Dagster no longer restores a disposed instance's defs-state storage when a schedule context "
        "left open is collected: test_dagster_contexts and tests/conftest.clear_stale_defs_state may go"
    )


def unexited_calls(path: Path, root: Path = REPO) -> list[str]:
    """`file:line` of each build_schedule_context(...) call that is not the context of a with item."""
    tree = ast.parse(path.read_text(), filename=str(path))
    exited = {
        id(item.context_expr)
        for node in ast.walk(tree)
        if isinstance(node, ast.With | ast.AsyncWith)
        for item in node.items
    }
    lines = sorted(
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and id(node) not in exited
        and getattr(node.func, "attr", getattr(node.func, "id", None)) == OPENS_AN_INSTANCE
    )
    return [f"{path.relative_to(root)}:{line}" for line in lines]


@pytest.mark.parametrize("folder", ["marketdata_assets", "tests", "bench", "scripts"])
def test_every_schedule_context_is_built_in_a_with_statement(folder):
    unexited = [
        hit
        for path in sorted((REPO / folder).rglob("*.py"))
        if path != Path(__file__).resolve()
        for hit in unexited_calls(path)
    ]  # not the demonstration above
    assert not unexited, f"{OPENS_AN_INSTANCE}(...) outside `with ... as context:` at {unexited}"


def test_the_scan_finds_a_context_built_outside_a_with(tmp_path):
    (tmp_path / "example.py").write_text(
        "import dagster as dg\n"
        "with dg.build_schedule_context() as ok, open('x'):\n    pass\n"
        "bad = schedule(dg.build_schedule_context(instance=i))\n"
        "worse = build_schedule_context()\n"
    )
    assert unexited_calls(tmp_path / "example.py", tmp_path) == ["example.py:4", "example.py:5"]
