"""A MongoDB-wire server (SecantusDB) of one test's own, for tests that kill or restart the server.

The stack's server is shared by every test worker: a test that crashes a server does it to one of
these instead: `secantusd-py` on a free port over a storage directory of its own; `kill()` is a
crash (SIGKILL), `start()` again on the same storage.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pymongo
import pytest

from marketdata_assets.core import settings
from tests.conftest import free_port

SERVER = Path(sys.executable).parent / "secantusd-py"


class PrivateMongo:
    def __init__(self, root: Path, args: tuple[str, ...] = ()):
        self.root, self.args = root, args  # args: more server options (e.g. --enable-test-commands)
        self.storage = root / "storage"
        self.logfile = root / "server.log"
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    def client(self, **options) -> pymongo.MongoClient:
        return pymongo.MongoClient(
            self.uri, **{"serverSelectionTimeoutMS": 3000, "connectTimeoutMS": 3000, **options}
        )

    def start(self, timeout_s: float = 60) -> PrivateMongo:
        self.storage.mkdir(parents=True, exist_ok=True)
        with open(self.logfile, "a") as log:
            self.process = subprocess.Popen(
                [
                    str(SERVER),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--storage-path",
                    str(self.storage),
                    "--log-level",
                    "WARNING",
                    *self.args,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout_s
        with self.client(serverSelectionTimeoutMS=500) as probe:
            while True:
                try:
                    probe.admin.command("ping")
                    self._provision(probe)
                    return self
                except pymongo.errors.PyMongoError:
                    if self.process.poll() is not None or time.monotonic() > deadline:
                        self.kill()  # never leave a server behind
                        raise RuntimeError(
                            f"secantusd-py did not come up on port {self.port}:\n"
                            f"{self.logfile.read_text()[-3000:]}"
                        ) from None
                    time.sleep(0.1)

    @staticmethod
    def _provision(client: pymongo.MongoClient) -> None:
        """The stack's user (MONGODB_USERNAME/PASSWORD), so the project's clients, which present it, get in
        (this server runs without `--auth`, but refuses a user it does not know)."""
        user = settings.get("MONGODB_USERNAME")
        if user and not client.admin.command("usersInfo", user)["users"]:
            client.admin.command("createUser", user, pwd=settings.get("MONGODB_PASSWORD"), roles=["root"])

    def kill(self) -> None:
        """What a crash or a power cut looks like to the clients."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(30)

    def close(self) -> None:
        """The server and its storage gone. A crash stop: the storage is removed right after, so a clean
        shutdown keeps nothing (and SIGTERM took ~2 s to end a server no client was connected to)."""
        self.kill()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def private_mongo():
    """A SecantusDB server of this test alone, which the test may kill and restart."""
    server = PrivateMongo(Path(tempfile.mkdtemp(prefix="marketdata-private-mongo-")))
    try:
        yield server.start()
    finally:
        server.close()
