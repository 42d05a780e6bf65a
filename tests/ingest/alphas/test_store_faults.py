"""MongoDB dying mid-import (issue 15 item 1): a FaultProxy in front of the stack's MongoDB-wire
server is killed while the import writes; the import must fail within seconds naming the store,
the address and a hint, and a re-run against the real server must end exactly where an
uninterrupted import ends (nothing lost, nothing twice)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from urllib.parse import urlsplit

import pytest

from marketdata_assets.core import settings
from marketdata_assets.core.errors import StoreUnavailable
from marketdata_assets.ingest.alphas.importer import import_files
from marketdata_assets.replay.alpha_factory import make_alpha
from marketdata_assets.resources import MongoResource
from marketdata_assets.stores.mongo.alphas import ledger_entries
from tests.support.fault_proxy import FaultProxy

from .test_importer import assert_same_as_a_clean_import, drop

FILES = 200  # the kill waits in the import's progress callback: 2 batches of 50 are left for it to fail on
KILL_AFTER = 100  # documents stored before the proxy dies


@pytest.mark.parametrize("replacing", [False, True], ids=["inserts", "transactions"])
def test_mongodb_dying_mid_import_fails_fast_and_a_rerun_ends_exact(dbs, mongo, tmp_path, replacing):
    """`inserts`: a first import (batches of new alphas, no transaction). `transactions`: every
    alpha is stored already and changed, so each batch replaces documents in a transaction (the
    driver's with_transaction would retry a transaction for up to 120 s)."""
    landing = tmp_path / "landing"
    files = [
        drop(landing, f"{seed:05d}.json", make_alpha(seed, "SUPER" if seed % 5 == 0 else "REGULAR"))
        for seed in range(FILES)
    ]
    regular, super_ = dbs
    if replacing:  # stored already; the files below change every alpha
        import_files(files, db_regular=regular, db_super=super_)
        files = [
            drop(
                landing,
                f"{seed:05d}.json",
                {**make_alpha(seed, "SUPER" if seed % 5 == 0 else "REGULAR"), "name": f"renamed {seed}"},
            )
            for seed in range(FILES)
        ]
    uri = urlsplit(settings.get("MONGODB_URI"))
    with FaultProxy(uri.hostname, uri.port) as proxy:
        resource = MongoResource(uri=f"mongodb://{proxy.address}/?directConnection=true")
        client = resource.client
        stored_enough, killed, outcome = threading.Event(), threading.Event(), {}

        def progress(stats) -> None:  # after each bulk write, in the importing thread
            if stats.inserted + stats.merged >= KILL_AFTER and not stored_enough.is_set():
                stored_enough.set()
                killed.wait(10)  # the import goes on once the server is dead: it is mid-way for sure

        def run() -> None:
            try:
                outcome["stats"] = import_files(
                    files,
                    db_regular=client[regular.name],
                    db_super=client[super_.name],
                    mode="overwrite" if replacing else "incremental",
                    batch_size=50,
                    on_progress=progress,
                )
            except BaseException as error:  # noqa: BLE001 - the test inspects it
                outcome["error"] = error
            finally:
                outcome["ended"] = time.monotonic()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        assert stored_enough.wait(60), f"the import did not store {KILL_AFTER} documents: {outcome}"
        proxy.kill()
        killed_at = time.monotonic()
        killed.set()
        thread.join(60)
        resource.close()
    assert not thread.is_alive(), "the import still hangs 60 s after MongoDB died"
    assert "stats" not in outcome, "the import ended before the proxy was killed: use more files"
    error = outcome["error"]
    elapsed = outcome["ended"] - killed_at
    assert isinstance(error, StoreUnavailable), f"{type(error).__name__}: {error}"
    print(f"failed {elapsed:.2f} s after the kill: {error}")
    assert elapsed < 15, f"the import failed {elapsed:.1f} s after MongoDB died"
    message = str(error)
    assert message.startswith(f"MongoDB at {proxy.address} is not reachable: "), message
    assert "make stack-up" in message and "run the import again" in message, message
    assert (error.store, error.address) == ("MongoDB", proxy.address)

    # a re-run against the real server ends exactly where an uninterrupted import ends
    rerun = import_files(
        files, db_regular=regular, db_super=super_, mode="overwrite" if replacing else "incremental"
    )
    assert rerun.quarantined == []
    per_file = Counter(e["file"] for e in ledger_entries(regular) if e["documents"])
    assert set(per_file) == {name for name, _ in files}
    if not replacing:  # incremental: each file ledgered exactly once (the re-run skipped the stored ones)
        assert max(per_file.values()) == 1 and rerun.files_skipped >= KILL_AFTER
    assert_same_as_a_clean_import(mongo, (regular, super_), files)
