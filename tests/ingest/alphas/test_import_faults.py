"""A merge import killed inside a transaction, on a MongoDB-wire server of the test's own (a dead
importer's transaction blocks the server it lives on: never the shared one).

A real importer process (the import code under its partition lock) stops right before it commits
a transaction, on a command-monitoring event, and is SIGKILLed there: the server keeps its
uncommitted writes until the transaction's lifetime runs out. The re-run started at once must wait
that out (one line saying so) and then end equal to an uninterrupted import; past the wait it fails
naming the server and the remedy; a second importer of a running partition refuses. A reader
polls the ledger and the documents in one snapshot the whole time: the ledger never claims a file
whose document is not committed.
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path

import dagster as dg
import pytest
from pymongo import MongoClient
from pymongo.read_concern import ReadConcern

from marketdata_assets.defs.alphas.assets import (
    alpha_documents,
    alpha_files,
    alpha_package_drops,
    alpha_store,
)
from marketdata_assets.ingest.alphas.import_lock import PartitionBusy, partition_lock
from marketdata_assets.ingest.alphas.importer import import_files
from marketdata_assets.resources import AlphaStoreResource
from marketdata_assets.stores.mongo.alphas import (
    LEDGER,
    ImportBlocked,
    collection_digest,
    ensure_alpha_indexes,
    transaction_lifetime,
)
from tests.support.killable_import import (
    ALPHAS,
    BATCH,
    MONTH,
    NAMES,
    ShortLivedMongo,
    landing_files,
    locked_import,
    shas,
    sigkill,
    start_paused_importer,
)
from tests.support.private_mongo import PrivateMongo

LIFETIME_S = 8.0  # the private server's transaction lifetime in the wait-out test


class SnapshotReader(threading.Thread):
    """Reads the ledger and the documents in one snapshot (a read-only transaction), over and over:
    the alphas whose v2 file the ledger claims must be exactly those stored with v2's content, and
    every alpha of a ledgered v1 file must be stored."""

    def __init__(self, client: MongoClient, v2_shas: set[str]):
        super().__init__(daemon=True, name="snapshot-reader")
        self.client, self.stop, self.snapshots, self.violations = client, threading.Event(), 0, []
        self.v2_shas = v2_shas
        self.taken = threading.Condition()

    def run(self) -> None:
        while not self.stop.is_set():
            with (
                self.client.start_session() as session,
                session.start_transaction(read_concern=ReadConcern("snapshot")),
            ):
                claimed = {1: set(), 2: set()}
                for doc in self.client[NAMES[0]][LEDGER].find(
                    {}, {"files.sha256": 1, "files.alpha_id": 1, "files.documents": 1}, session=session
                ):
                    files = doc["files"]
                    for sha, alpha_id, documents in zip(
                        files["sha256"], files["alpha_id"], files["documents"]
                    ):
                        if documents:
                            claimed[2 if sha in self.v2_shas else 1].add(alpha_id)
                stored = {
                    doc["_id"]: doc.get("name")
                    for name in NAMES
                    for doc in self.client[name]["alphas"].find({}, {"name": 1}, session=session)
                }
            stored_v2 = {i for i, name in stored.items() if (name or "").startswith("v2")}
            if claimed[2] != stored_v2 or not claimed[1] <= set(stored):
                self.violations.append(
                    f"v2 claimed, not stored as v2: {sorted(claimed[2] - stored_v2)[:5]}; "
                    f"stored as v2, not claimed: {sorted(stored_v2 - claimed[2])[:5]}; "
                    f"v1 claimed, not stored: {sorted(claimed[1] - set(stored))[:5]}"
                )
            with self.taken:
                self.snapshots += 1
                self.taken.notify_all()
            self.stop.wait(0.05)  # leaves the machine's cores to the import (2 cores, shared)

    def wait_for_next(self, timeout_s: float = 60) -> None:
        """Until a snapshot taken wholly after this call has been checked."""
        with self.taken:
            target = self.snapshots + 2
            assert self.taken.wait_for(lambda: self.snapshots >= target or not self.is_alive(), timeout_s)
        assert self.is_alive(), "the reader died"

    def finish(self) -> int:
        self.stop.set()
        self.join(60)
        assert not self.violations, self.violations[:3]
        return self.snapshots


def assert_same_as_an_uninterrupted_import(client: MongoClient, root: Path, last: int = 2) -> tuple[int, str]:
    """The databases hold what v1, then a merge of version `last`, uninterrupted, give: (documents,
    digests)."""
    clean = client["clean_r"], client["clean_s"]
    ensure_alpha_indexes(*clean, "alphas")
    import_files(landing_files(root, 1), db_regular=clean[0], db_super=clean[1], batch_size=BATCH)
    import_files(
        landing_files(root, last), db_regular=clean[0], db_super=clean[1], mode="overwrite", batch_size=BATCH
    )
    digests, documents = [], 0
    for got, want in zip((client[n] for n in NAMES), clean):
        documents += got["alphas"].count_documents({})
        assert got["alphas"].count_documents({}) == want["alphas"].count_documents({}) > 0
        digests.append(collection_digest(got["alphas"]))
        assert digests[-1] == collection_digest(want["alphas"])
    return documents, "/".join(d[:12] for d in digests)


def private_root() -> Path:
    return Path(tempfile.mkdtemp(prefix="marketdata-private-mongo-"))


@pytest.fixture
def short_lived():
    """A private server whose transactions live LIFETIME_S."""
    server = ShortLivedMongo(private_root(), LIFETIME_S).start()
    yield server
    server.close()


@pytest.fixture
def stock_server():
    """A private `secantusd-py` as it comes: transactions live 60 s."""
    server = PrivateMongo(private_root()).start()
    yield server
    server.close()


def test_a_killed_merge_import_is_waited_out_then_the_rerun_equals_an_uninterrupted_one(
    short_lived, tmp_path
):
    root, locks = tmp_path / "landing", tmp_path / "locks"
    client = short_lived.client()
    locked_import(short_lived.uri, NAMES, root, 1, locks, mode="incremental")
    reader = SnapshotReader(client, shas(landing_files(root, 2)))
    reader.start()
    child = start_paused_importer(short_lived, root, locks, commit=2)
    reader.wait_for_next()  # a batch committed, the second one's writes uncommitted on the server
    killed = sigkill(child)
    reader.wait_for_next()
    lines: list[str] = []
    stats, died = locked_import(short_lived.uri, NAMES, root, 2, locks, on_wait=lines.append)
    ended = time.monotonic()
    reader.wait_for_next()
    snapshots = reader.finish()

    assert len(died) == 2 and all(
        "did not end (running)" in line and f"pid {child.pid}" in line for line in died
    )
    assert len(lines) == 1, lines
    assert f"127.0.0.1:{short_lived.port}" in lines[0] and "killed import" in lines[0]
    assert "Waiting up to 65 s" in lines[0] and "does not report" in lines[0]  # SecantusDB: MongoDB's 60 s
    assert 0 < stats.seconds_waiting_for_conflicts < LIFETIME_S + 5
    documents, digest = assert_same_as_an_uninterrupted_import(client, root)
    print(
        f"re-run ended {ended - killed:.1f} s after the SIGKILL, waited "
        f"{stats.seconds_waiting_for_conflicts:.1f} s (server lifetime {LIFETIME_S} s); {stats.merged} "
        f"merged, {stats.unchanged} unchanged; {documents} documents, digest {digest}; {snapshots} "
        "snapshots agreed"
    )


def test_past_the_wait_the_import_fails_naming_the_server_and_the_remedy(stock_server, tmp_path):
    root, locks = tmp_path / "landing", tmp_path / "locks"
    client = stock_server.client()
    seconds, source = transaction_lifetime(client)
    assert seconds == 60.0 and source.startswith("MongoDB's default") and "does not report" in source
    locked_import(stock_server.uri, NAMES, root, 1, locks, mode="incremental")
    sigkill(start_paused_importer(stock_server, root, locks, commit=1))  # lives 60 s on this server
    started = time.monotonic()
    with pytest.raises(ImportBlocked) as error:
        locked_import(stock_server.uri, NAMES, root, 2, locks, conflict_wait_s=2, on_wait=lambda line: None)
    assert time.monotonic() - started < 30
    message = str(error.value)
    assert f"MongoDB at 127.0.0.1:{stock_server.port}" in message and "still conflicts" in message
    assert "killAllSessions" in message and "run the import again" in message
    # the remedy works: the dead transaction ended, the import goes through without waiting
    client.admin.command("killAllSessions", [])
    stats, died = locked_import(stock_server.uri, NAMES, root, 2, locks)
    assert died and all(
        "did not end (failed)" in line for line in died
    )  # the blocked run: it may hold one too
    assert stats.seconds_waiting_for_conflicts == 0
    assert_same_as_an_uninterrupted_import(client, root)


def test_a_second_importer_of_a_running_partition_refuses_naming_it_and_the_holder(
    stock_server, tmp_path, monkeypatch
):
    root, state = tmp_path / "landing", tmp_path / "state"
    locks = state / "locks" / "alphas"
    locked_import(stock_server.uri, NAMES, root, 1, locks, mode="incremental")
    child = start_paused_importer(stock_server, root, locks, commit=1)
    try:
        with pytest.raises(PartitionBusy) as error:
            locked_import(stock_server.uri, NAMES, root, 2, locks)
        message = str(error.value)
        assert f"alpha import of REGULAR {MONTH} of {NAMES[0]}.alphas is already running" in message
        assert f"test importer (pid {child.pid} on " in message
        with partition_lock(
            locks, f"{NAMES[0]}.alphas", "REGULAR", ["2025-08"]
        ) as died:  # another month: free
            assert died == []
        # the Dagster asset takes the same lock: its run fails with that message, without retries
        monkeypatch.setenv("MARKETDATA_STATE_DIR", str(state))
        monkeypatch.setenv("ALPHA_LANDING_DIR", str(tmp_path / "empty"))
        result, _ = import_month(stock_server)
        assert not result.success
        (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
        assert f"REGULAR {MONTH} of {NAMES[0]}.alphas is already running" in str(
            failure.step_failure_data.error
        )
    finally:
        sigkill(child)
    # its holder dead, the asset takes the partition, told that an import of it did not end
    result, messages = import_month(stock_server)
    assert result.success
    assert any(
        f"REGULAR {MONTH} of {NAMES[0]}.alphas: test importer (pid {child.pid}" in m
        and "did not end (running): this import writes every batch in a transaction" in m
        for m in messages
    )


def import_month(server: PrivateMongo) -> tuple[dg.ExecuteInProcessResult, list[str]]:
    """The import asset for MONTH against `server`: (the result, its log messages)."""
    store = AlphaStoreResource(uri=server.uri, db_name_regular=NAMES[0], db_name_super=NAMES[1])
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(
            [
                alpha_documents,
                alpha_files.to_source_asset(),
                alpha_package_drops.to_source_asset(),
                alpha_store.to_source_asset(),
            ],
            resources={"alpha_store": store},
            partition_key=f"{MONTH}-01",
            raise_on_error=False,
            instance=instance,
        )
        return result, [entry.user_message for entry in instance.all_logs(result.run_id)]


def test_a_rerun_whose_first_batch_holds_only_alphas_the_dead_transaction_inserted(short_lived, tmp_path):
    """New alphas and changed ones arrive together. The killed import's second batch (200: the last
    100 new REGULAR alphas, 100 changed) died uncommitted; the re-run skips what was committed and,
    starting with batches of 100 again, first inserts those 100 new alphas alone: written plainly,
    SecantusDB would hold that insert for as long as the dead transaction lives (and end it only when a
    transaction comes by). After a crash every batch goes through a transaction: waited out."""
    root, locks = tmp_path / "landing", tmp_path / "locks"
    locked_import(short_lived.uri, NAMES, root, 1, locks, mode="incremental")
    sigkill(
        start_paused_importer(
            short_lived, root, locks, commit=1, version=3, mode="incremental", batch_size=200
        )
    )
    lines: list[str] = []
    stats, died = locked_import(
        short_lived.uri, NAMES, root, 3, locks, mode="incremental", batch_size=200, on_wait=lines.append
    )
    assert died and len(lines) == 1 and stats.seconds_waiting_for_conflicts > 0
    assert stats.files_skipped >= 100
    documents, digest = assert_same_as_an_uninterrupted_import(short_lived.client(), root, last=3)
    assert documents == 2 * ALPHAS
    print(
        f"waited {stats.seconds_waiting_for_conflicts:.1f} s; {stats.inserted} inserted, {stats.merged} "
        f"merged, {stats.files_skipped} files skipped; {documents} documents, digest {digest}"
    )
