"""A real alpha importer process for fault tests (tests/ingest/alphas/test_import_faults.py): an import under
its partition locks, paused right before it commits its n-th transaction (every statement of it
sent) so the test can SIGKILL it there; kept free of Dagster so the process starts fast. And a
private SecantusDB whose transactions live a few seconds, so a test can wait one out."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from unittest import mock
from zoneinfo import ZoneInfo

from pymongo import MongoClient

from marketdata_assets.ingest.alphas.import_lock import partition_lock
from marketdata_assets.ingest.alphas.importer import import_files
from marketdata_assets.replay.alpha_factory import make_alpha
from marketdata_assets.stores.mongo.alphas import ensure_alpha_indexes
from tests.ingest.alphas.test_importer import drop
from tests.support import private_mongo
from tests.support.private_mongo import PrivateMongo

REPO = Path(__file__).resolve().parents[2]
MONTH = "2025-07"
ALPHAS = 250  # one in five SUPER
BATCH = 25
NAMES = ("faults_r", "faults_s")  # the databases on the private server
# The daemon's own entry point (secantus.cli.main) with the server's transaction lifetime changed:
# `secantusd-py` has no flag for SecantusDBServer(transaction_lifetime_seconds=), 60 s by default.
_LAUNCHER = """#!{python}
import sys
from secantus import server
server.SecantusDBServer.__init__.__kwdefaults__["transaction_lifetime_seconds"] = {lifetime_s}
from secantus.cli import main
sys.exit(main())
"""


class ShortLivedMongo(PrivateMongo):
    """A private server (tests/support/private_mongo.py) whose transactions live `lifetime_s`."""

    def __init__(self, root: Path, lifetime_s: float):
        super().__init__(root)
        self.lifetime_s = lifetime_s

    def start(self, timeout_s: float = 60) -> ShortLivedMongo:
        launcher = self.root / "secantusd-py"
        launcher.write_text(_LAUNCHER.format(python=sys.executable, lifetime_s=float(self.lifetime_s)))
        launcher.chmod(0o755)
        with mock.patch.object(private_mongo, "SERVER", launcher):
            return super().start(timeout_s)


def landing_files(root: Path, version: int) -> list[tuple[str, Path]]:
    """The alphas' files as the landing area has them at `version`: 1; 2, each changed (name
    'v2 ...'), under the same names (the ledger's); 3, as many new alphas first, then those of 2.
    In a directory of each version."""
    start = datetime(2025, 7, 1, 9, tzinfo=ZoneInfo("America/New_York"))
    seeds = list(range(ALPHAS, 2 * ALPHAS)) + list(range(ALPHAS)) if version == 3 else range(ALPHAS)
    files = []
    for seed in seeds:
        overrides = {"name": f"v2 {seed}"} if version > 1 else None
        alpha = make_alpha(
            seed,
            "SUPER" if seed % 5 == 0 else "REGULAR",
            start + timedelta(minutes=seed),
            overrides=overrides,
        )
        files.append(drop(root / f"v{version}", f"{seed:04d}.json", alpha))
    return files


def shas(files: list[tuple[str, Path]]) -> set[str]:
    return {hashlib.sha256(path.read_bytes()).hexdigest() for _, path in files}


def locked_import(
    uri: str,
    names: tuple[str, str],
    root: Path,
    version: int,
    lock_dir: Path,
    mode: str = "overwrite",
    batch_size: int = BATCH,
    **kw,
):
    """What an alpha import does: hold the partitions (REGULAR and SUPER of the month), learn from
    the lock whether an importer of them died, import."""
    with MongoClient(uri, socketTimeoutMS=60_000) as client:  # a write the server holds fails the test
        regular, super_ = client[names[0]], client[names[1]]
        ensure_alpha_indexes(regular, super_, "alphas")
        with (
            partition_lock(lock_dir, f"{names[0]}.alphas", "REGULAR", [MONTH], holder="test importer") as a,
            partition_lock(lock_dir, f"{names[1]}.alphas", "SUPER", [MONTH], holder="test importer") as b,
        ):
            return import_files(
                landing_files(root, version),
                db_regular=regular,
                db_super=super_,
                mode=mode,
                batch_size=batch_size,
                after_crash=bool(a or b),
                **kw,
            ), a + b


# The importer process: pauses forever when it is about to commit its `argv[1]`-th transaction
# (every statement of it sent: documents and ledger entries), says so, and waits to be killed.
# argv[2:]: server, databases, landing root, lock directory, version, mode, batch size.
CHILD = """
import sys, threading
from pathlib import Path
from pymongo import monitoring
from tests.support.killable_import import locked_import

class PauseBeforeCommit(monitoring.CommandListener):
    commits = 0
    def started(self, event):
        if event.command_name == "commitTransaction":
            self.commits += 1
            if self.commits == int(sys.argv[1]):
                print("paused before commit", flush=True)
                threading.Event().wait()
    def succeeded(self, event): pass
    def failed(self, event): pass

monitoring.register(PauseBeforeCommit())
locked_import(sys.argv[2], (sys.argv[3], sys.argv[4]), Path(sys.argv[5]), int(sys.argv[7]), Path(sys.argv[6]),
              sys.argv[8], int(sys.argv[9]))
print("ended", flush=True)
"""


def start_paused_importer(
    server: PrivateMongo,
    root: Path,
    lock_dir: Path,
    commit: int,
    version: int = 2,
    mode: str = "overwrite",
    batch_size: int = BATCH,
) -> subprocess.Popen:
    """An import of `version` in its own process, once it waits before committing transaction `commit`."""
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            CHILD,
            str(commit),
            server.uri,
            *NAMES,
            str(root),
            str(lock_dir),
            str(version),
            mode,
            str(batch_size),
        ],
        cwd=REPO,
        env=os.environ.copy(),
        stdout=subprocess.PIPE,
        text=True,
    )
    line = child.stdout.readline()  # returns at the event (or at the child's end, then fails)
    assert line.strip() == "paused before commit", f"the importer ended first: {line!r}, rc {child.wait()}"
    return child


def sigkill(child: subprocess.Popen) -> float:
    child.send_signal(signal.SIGKILL)
    child.wait()
    return time.monotonic()
