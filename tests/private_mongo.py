"""A MongoDB-wire server (SecantusDB) of one test alone, for tests that leave a transaction open.

A transaction whose client died stays open on the server until its lifetime runs out, and while it
lives the server blocks what conflicts with it (listing and dropping databases time out): such tests
must never run against the shared server. `PrivateMongo` starts the real `secantusd-py` daemon on a
free port in a temp directory and removes both at `close()`. The daemon has no flag for the
transaction lifetime (SecantusDB's `SecantusDBServer(transaction_lifetime_seconds=)`, 60 s by
default, like mongod's transactionLifetimeLimitSeconds): `transaction_lifetime_s` starts the same
daemon entry point with that default changed, so a test can wait one out in seconds.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pymongo

from tests.conftest import free_port

DAEMON = Path(sys.executable).parent / "secantusd-py"
# The daemon's own entry point (secantus.cli.main), with the server's transaction lifetime changed
# first: argv[1] is the lifetime in seconds, the rest are the daemon's flags.
_WITH_LIFETIME = """
import sys
from secantus import server
server.SecantusDBServer.__init__.__kwdefaults__["transaction_lifetime_seconds"] = float(sys.argv[1])
from secantus.cli import main
sys.exit(main(sys.argv[2:]))
"""


class PrivateMongo:
    def __init__(self, transaction_lifetime_s: float | None = None):
        self.transaction_lifetime_s = transaction_lifetime_s
        self.root = Path(tempfile.mkdtemp(prefix="marketdata-private-mongo-"))
        self.port = free_port()
        self.uri = f"mongodb://127.0.0.1:{self.port}/?directConnection=true"
        self.process: subprocess.Popen | None = None

    def start(self, timeout_s: float = 60) -> PrivateMongo:
        flags = ["--host", "127.0.0.1", "--port", str(self.port), "--storage-path", str(self.root / "data"),
                 "--log-level", "ERROR"]
        command = ([str(DAEMON)] if self.transaction_lifetime_s is None
                   else [sys.executable, "-c", _WITH_LIFETIME, str(self.transaction_lifetime_s)])
        with open(self.root / "server.log", "ab") as log:  # the child keeps its own descriptor
            self.process = subprocess.Popen(command + flags, stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.monotonic() + timeout_s
        with pymongo.MongoClient(self.uri, serverSelectionTimeoutMS=1000) as client:
            while True:
                try:
                    client.admin.command("ping")
                    return self
                except pymongo.errors.ConnectionFailure:
                    assert self.process.poll() is None, f"secantusd-py exited: {self.log()}"
                    assert time.monotonic() < deadline, f"secantusd-py did not answer in {timeout_s} s"
                    time.sleep(0.2)

    def client(self, **options) -> pymongo.MongoClient:
        return pymongo.MongoClient(self.uri, **{"serverSelectionTimeoutMS": 5000, **options})

    def log(self) -> str:
        path = self.root / "server.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def close(self) -> None:
        self.kill()
        shutil.rmtree(self.root, ignore_errors=True)
