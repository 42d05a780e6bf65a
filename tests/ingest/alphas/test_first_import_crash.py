"""The first alpha import into fresh databases, the MongoDB-wire server (a private SecantusDB) killed
with SIGKILL half-way, restarted on the same storage, and the same import run again as the asset runs
it (indexes first, then the files): every alpha stored once, the ledger complete, the indexes there,
the documents identical to an uninterrupted import's."""

from __future__ import annotations

import threading

import pymongo

from marketdata_assets.ingest.alphas.importer import import_files
from marketdata_assets.replay.alpha_factory import make_alpha
from marketdata_assets.resources import MongoResource
from marketdata_assets.stores.mongo.alphas import ALPHA_INDEXES, ensure_alpha_indexes, ledger_entries
from tests.support.private_mongo import private_mongo  # noqa: F401 - the fixture

from .test_importer import assert_same_as_a_clean_import, drop

FILES = 200  # the server dies in the import's progress callback: 4 batches of 25 are left to fail on
KILL_AFTER = 100  # documents stored before the server dies


def first_import(client: pymongo.MongoClient, files, on_progress=None):
    """What the alpha_documents asset does on a store nobody bootstrapped: indexes, then the import."""
    regular, super_ = client["fresh_regular"], client["fresh_super"]
    ensure_alpha_indexes(regular, super_, "alphas")
    return import_files(files, db_regular=regular, db_super=super_, batch_size=25, on_progress=on_progress)


def test_the_server_killed_during_the_first_import_then_the_rerun_stores_every_alpha_once(
    private_mongo,  # noqa: F811
    tmp_path,
):
    landing = tmp_path / "landing"
    files = [
        drop(landing, f"{seed:04d}.json", make_alpha(seed, "SUPER" if seed % 5 == 0 else "REGULAR"))
        for seed in range(FILES)
    ]
    killed, outcome = threading.Event(), {}

    def progress(stats) -> None:  # after a bulk write, in the importing thread: the server dies now
        if stats.inserted >= KILL_AFTER and not killed.is_set():
            private_mongo.kill()
            killed.set()

    def run() -> None:
        with private_mongo.client() as client:
            try:
                outcome["stats"] = first_import(client, files, progress)
            except Exception as error:  # noqa: BLE001 - the test inspects it
                outcome["error"] = error

    worker = threading.Thread(target=run)
    worker.start()
    worker.join(timeout=120)
    assert not worker.is_alive(), "the import hung after the server died"
    assert killed.is_set() and "error" in outcome, outcome

    private_mongo.start()
    with private_mongo.client() as client:
        stored_before = client["fresh_regular"]["alphas"].count_documents({}) + client["fresh_super"][
            "alphas"
        ].count_documents({})
        print(f"server killed after {stored_before} of {FILES} alphas were stored")
        assert 0 < stored_before < FILES
        stats = first_import(client, files)
        regular, super_ = client["fresh_regular"], client["fresh_super"]
        assert stats.files_skipped + stats.files_imported == FILES and not stats.quarantined
        assert regular["alphas"].count_documents({}) + super_["alphas"].count_documents({}) == FILES
        assert len({entry["file"] for entry in ledger_entries(regular)}) == FILES
        wanted = {index.document["name"] for index in ALPHA_INDEXES}
        for db in (regular, super_):
            assert wanted <= set(db["alphas"].index_information())
    resource = MongoResource(uri=private_mongo.uri)
    try:
        assert_same_as_a_clean_import(
            resource, (resource.client["fresh_regular"], resource.client["fresh_super"]), files
        )
    finally:
        resource.close()
