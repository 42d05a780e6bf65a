"""Write pytest's assertion-rewritten bytecode of the test modules once, before the suite's workers start.

These machines set PYTHONDONTWRITEBYTECODE, so pytest keeps no rewritten module and each xdist worker
rewrote all ~160 test modules itself at the start of the run: 7 s of CPU per worker, three workers on
two cores. Pytest reads its cache even when it may not write it, and the cache is hash-checked (valid
in any clone), so writing it here, in parallel, is enough. A pytest whose internals moved makes this a
no-op that says so: the suite then rewrites in each worker, as before.

Run as `python -m tests.support.rewrite_cache` from the repository root (`make test` does).
"""

from __future__ import annotations

import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def rewritten(folder: Path) -> list[Path]:
    """What pytest rewrites here: test modules, conftest files and the `pytest_plugins` fixtures."""
    return sorted(
        path
        for path in folder.rglob("*.py")
        if path.name.startswith("test_") or path.name == "conftest.py" or path.parent.name == "fixtures"
    )


def write(path: Path) -> bool:
    """Rewrite `path` into pytest's cache unless an up-to-date copy is there; True when written."""
    from _pytest.assertion.rewrite import PYC_TAIL, _read_pyc, _rewrite_test, _write_pyc, get_cache_dir

    cache = get_cache_dir(path)
    pyc = cache / (path.name[:-3] + PYC_TAIL)
    if _read_pyc(path, pyc) is not None:
        return False
    cache.mkdir(exist_ok=True)
    source_hash, code = _rewrite_test(path, None)
    return _write_pyc(_Trace(), code, source_hash, pyc)


class _Trace:
    """The part of pytest's AssertionState that `_write_pyc` uses (a message when it cannot write)."""

    def trace(self, message: str) -> None:
        print(f"rewrite cache: {message}", file=sys.stderr)


def main() -> int:
    paths = rewritten(ROOT / "tests")
    try:
        with ProcessPoolExecutor() as pool:
            written = sum(pool.map(write, paths, chunksize=8))
    except (ImportError, TypeError, AttributeError) as error:  # pytest's private API moved
        print(f"rewrite cache: not written ({error!r}); each worker rewrites the tests itself")
        return 0
    if written:
        print(f"rewrite cache: {written} of {len(paths)} test modules rewritten for the workers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
