"""A README recipe followed on a copy of the package (tests/test_new_venue_recipe.py,
tests/test_new_stock_feed_recipe.py): the copy, what the recipe changed in it, and one fresh interpreter
over it with its own state dir and embedded ClickHouse."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def package_copy(tmp: Path) -> Path:
    """A copy of the package and the code location's project file under `tmp`/tree; returns the tree. The
    copy keeps the package's bytecode caches (Python recompiles each file a recipe changes or adds: their
    timestamps no longer match)."""
    tree = tmp / "tree"
    shutil.copytree(REPO / "marketdata_assets", tree / "marketdata_assets")
    shutil.copy(REPO / "pyproject.toml", tree / "pyproject.toml")
    return tree


def sources_of(tree: Path) -> dict[str, str]:
    """Every source and config file of the copy's package -> a digest of its text."""
    package = tree / "marketdata_assets"
    return {
        str(path.relative_to(package)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(package.rglob("*"))
        if path.suffix in (".py", ".yaml") and "__pycache__" not in path.parts
    }


def touched(before: dict[str, str], tree: Path) -> list[str]:
    """The package's files a recipe added, changed or removed since `before` (`sources_of`)."""
    after = sources_of(tree)
    return sorted(name for name in set(before) | set(after) if before.get(name) != after.get(name))


def replace_once(path: Path, old: str, new: str) -> None:
    """`old` (which must be in the file) replaced by `new`, once."""
    text = path.read_text()
    assert old in text, f"{path.name}: {old!r} not found"
    path.write_text(text.replace(old, new, 1))


def run_fresh(tmp: Path, tree: Path, script: str, database: str, timeout: float = 420) -> tuple[list, str]:
    """`script` run by a fresh interpreter on the copy (`cwd` the tree; state dir and embedded ClickHouse
    under `tmp`, `database` the default one); (the JSON lines it printed, the end of its stderr)."""
    env = {
        key: value for key, value in os.environ.items() if key not in ("TICKS_PROVIDERS_CONFIG", "SYMBOLS")
    }
    env.update(
        PYTHONPATH=str(tree),
        MARKETDATA_STATE_DIR=str(tmp / "state"),
        CLICKHOUSE_DSN=f"chdb://{tmp / 'ch'}",
        CLICKHOUSE_DATABASE=database,
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        check=False,
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )  # a hang guard
    assert done.returncode == 0, done.stderr[-3000:]
    printed = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return printed, done.stderr[-3000:]
