"""The peer collector's own venv (bench/live_capture_peer.py runs in it): cryptofeed 2.4.1 with its
redis extra (`redis` client, `hiredis`).

A venv of its own because cryptofeed pins its own websockets/aiohttp/uvloop ranges and must not
change the project's venv. 2.4.1 is the newest cryptofeed that installs on Python 3.11: 2.5.0
requires Python >= 3.12 and 3.0.x >= 3.13 (pip refuses them here). PyPI has no 2.4.1 wheel for
cp311: pip builds it from the sdist (a C compiler and the Python headers are needed once; pip's
wheel cache serves later installs). Verified with websockets 17.4, aiohttp 3.14.5, redis 8.1.0.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CRYPTOFEED = "2.4.1"
REQUIREMENT = f"cryptofeed[redis]=={CRYPTOFEED}"
CHECK = "import importlib.metadata as m, cryptofeed, redis; print(m.version('cryptofeed'))"


def working(python: Path) -> bool:
    """The venv's python runs and has the pinned cryptofeed and the redis client."""
    if not python.exists():
        return False
    done = subprocess.run([str(python), "-c", CHECK], capture_output=True, text=True, check=False)
    return done.returncode == 0 and done.stdout.strip() == CRYPTOFEED


def ensure_peer_python(root: Path) -> Path:
    """The python of the peer venv at `root` (e.g. `<state dir>/bench-peer-venv`), created or
    repaired (pinned install) when it is missing or not working; reused as is otherwise."""
    python = root / "bin" / "python"
    if working(python):
        return python
    if not python.exists():
        # the base interpreter's venv module (from inside the project's venv too: venv uses the base)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(root)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", REQUIREMENT], check=True)
    if not working(python):
        raise RuntimeError(f"the peer venv at {root} does not import cryptofeed {CRYPTOFEED} and redis")
    return python
