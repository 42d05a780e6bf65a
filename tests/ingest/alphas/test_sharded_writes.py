"""The importer's writes are fit for a sharded cluster (docs/deploy.md, "MongoDB"): every upsert and delete
filter names the shard key ``id`` (deploy/mongodb/shard-alphas.js), every inserted document holds it, and
every write waits for a majority. Seen on the wire: the driver's command monitoring records what the
importer sends to the real MongoDB-wire server, through the five modes, the transaction path, the late
merge of an alpha found stored after all, and (on a private server answering as a standalone mongod:
transactions refused) the plain ReplaceOne path, and the one-by-one ``replace_one`` after a document the
driver refuses. The transaction and plain paths end with the same documents.

What this cannot show: mongos itself refusing a filter without the shard key (no mongos here)."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pymongo
import pytest
from pymongo import monitoring

from marketdata_assets.core import settings
from marketdata_assets.ingest.alphas.importer import import_files
from marketdata_assets.stores.mongo.alphas import SHARD_KEY, collection_digest, ensure_alpha_indexes
from tests.ingest.alphas.test_importer import alpha, drop
from tests.support.private_mongo import PrivateMongo

WRITES = ("insert", "update", "delete", "commitTransaction")


class Recorder(monitoring.CommandListener):
    """Every write command the client starts: (command name, the command as sent)."""

    def __init__(self):
        self.commands: list[tuple[str, dict]] = []

    def started(self, event):
        if event.command_name in WRITES:
            self.commands.append((event.command_name, dict(event.command)))

    def succeeded(self, event):
        pass

    def failed(self, event):
        pass


def import_everything(client: pymongo.MongoClient, root: Path, names: tuple[str, str]):
    """The five modes over the same alphas (regular and super), and an alpha found stored after all."""
    dbs = tuple(client[name] for name in names)
    ensure_alpha_indexes(dbs[0], dbs[1], "alphas")

    def run(files, mode="incremental", **kw):
        return import_files(files, db_regular=dbs[0], db_super=dbs[1], mode=mode, **kw)

    v1 = [
        alpha("AAAAAAA", legacy="old", settings={"region": "USA"}),
        alpha("BBBBBBB", modified="2025-07-10T09:00:00-04:00", settings={"region": "EUR"}),
        alpha("SSSSSSS", type="SUPER", settings={"region": "USA"}),
    ]
    v2 = [
        alpha("AAAAAAA", modified="2025-08-02T12:00:00-04:00", settings={"region": "ASI"}),
        alpha("BBBBBBB", modified="2025-07-11T09:00:00-04:00", settings={"region": "CHN"}),
        alpha("SSSSSSS", type="SUPER", modified="2025-08-05T12:00:00-04:00", settings={"region": "JPN"}),
    ]
    first = [drop(root, f"v1/{a['id']}.json", a) for a in v1]
    second = [drop(root, f"v2/{a['id']}.json", a) for a in v2]
    counts = [run(first).inserted, run(second, mode="overwrite").merged, run(first, mode="rebuild").replaced]
    window = (datetime(2025, 8, 1, tzinfo=UTC), datetime(2025, 9, 1, tzinfo=UTC))
    counts.append(run(second, mode="time_range", time_range=window).merged)
    newer = alpha("BBBBBBB", modified="2025-08-09T00:00:00-04:00", settings={"region": "KOR"})
    counts.append(run([drop(root, "v3/BBBBBBB.json", newer)], mode="smart_merge").merged)
    # a file the ledger has never seen, of an alpha stored already: inserted unread, then merged late
    again = alpha("AAAAAAA", modified="2025-08-10T00:00:00-04:00", extra={"late": True})
    late = run([drop(root, "elsewhere/AAAAAAA.json", again)])
    counts.append((late.inserted, late.merged))
    return dbs, counts


def check_writes(commands: list[tuple[str, dict]]) -> dict[str, int]:
    """Every filter names the shard key, every alpha inserted holds it, every write waits for a majority;
    how many statements of each kind were seen."""
    seen = {"upserts": 0, "deletes": 0, "inserts": 0, "commits": 0}
    for name, command in commands:
        in_transaction = command.get("autocommit") is False
        if name == "commitTransaction" or not in_transaction:
            assert command.get("writeConcern") == {"w": "majority"}, (name, command.get("writeConcern"))
        else:  # a statement of a transaction: the commit carries the write concern
            assert "writeConcern" not in command, command
        seen["commits"] += name == "commitTransaction"
        target = command.get(name)
        if target != "alphas":
            continue
        for update in command.get("updates", ()):
            assert {key: update["q"].get(key) for key in SHARD_KEY} == {"id": update["q"]["_id"]}, update["q"]
            seen["upserts"] += bool(update.get("upsert"))
        for delete in command.get("deletes", ()):
            assert {key: delete["q"].get(key) for key in SHARD_KEY} == {"id": delete["q"]["_id"]}, delete["q"]
            seen["deletes"] += 1
        for document in command.get("documents", ()):
            assert document["id"] == document["_id"]
            seen["inserts"] += 1
    return seen


@pytest.fixture
def recorded(mongo):
    """A client of the stack's server that records its writes (MONGODB_URI as configured: no ``w``)."""
    recorder = Recorder()
    client = pymongo.MongoClient(
        settings.get("MONGODB_URI"), **settings.mongo_auth(), event_listeners=[recorder]
    )
    names = (f"test_shard_r_{id(recorder):x}", f"test_shard_s_{id(recorder):x}")
    yield client, recorder, names
    for name in names:
        client.drop_database(name)
    client.close()


@pytest.fixture
def standalone_like():
    """A private server that refuses transactions as a standalone mongod does (IllegalOperation on the
    transaction's first statement, a delete: its own fail point), so the importer writes plainly."""
    server = PrivateMongo(
        Path(tempfile.mkdtemp(prefix="marketdata-private-mongo-")), args=("--enable-test-commands",)
    )
    try:
        server.start()
        with server.client() as admin:
            admin.admin.command(
                {
                    "configureFailPoint": "failCommand",
                    "mode": "alwaysOn",
                    "data": {"failCommands": ["delete"], "errorCode": 20},
                }
            )
        yield server
    finally:
        server.close()


def test_every_write_names_the_shard_key_and_waits_for_a_majority(recorded, standalone_like, tmp_path):
    client, recorder, names = recorded
    assert "w" not in client.write_concern.document  # the majority comes from the importer, not the URI
    dbs, counts = import_everything(client, tmp_path / "stack", names)
    assert counts == [3, 3, 3, 2, 1, (0, 1)]
    seen = check_writes(recorder.commands)
    # transactions (rebuild, time_range): the replaced alphas deleted by shard key and inserted; the alphas
    # of files the ledger has not seen (overwrite, smart_merge, the late one) inserted, then upserted
    assert seen["deletes"] >= 3 and seen["commits"] >= 3 and seen["upserts"] >= 3 and seen["inserts"] >= 9, (
        seen
    )

    plain = Recorder()
    with standalone_like.client(event_listeners=[plain]) as other:
        plain_dbs, plain_counts = import_everything(other, tmp_path / "plain", names)
        plain_seen = check_writes(plain.commands)
        assert plain_counts == counts
        # no transaction committed: every replaced alpha went through an upsert naming the shard key
        assert plain_seen["commits"] == 0 and plain_seen["deletes"] >= 1 and plain_seen["upserts"] >= 9, (
            plain_seen
        )
        for got, want in zip(plain_dbs, dbs):  # the same documents, whichever path wrote them
            assert got["alphas"].count_documents({}) == want["alphas"].count_documents({}) > 0
            assert collection_digest(got["alphas"]) == collection_digest(want["alphas"])


def test_the_one_by_one_path_names_the_shard_key_too(recorded, tmp_path, monkeypatch):
    """A batch the driver refuses (a document over the server's 48 MB message size) is written one
    document at a time: its replaced alphas by ``replace_one``, with the shard key in the filter."""
    from marketdata_assets.ingest.alphas import importer
    from tests.ingest.alphas.test_bad_input import big, case_alpha, land_month

    client, recorder, names = recorded
    monkeypatch.setattr(importer, "MAX_DOCUMENT_BYTES", 1 << 30)  # let the driver be the one refusing
    dbs = tuple(client[name] for name in names)
    ensure_alpha_indexes(dbs[0], dbs[1], "alphas")
    landing = tmp_path / "landing"
    first = import_files(
        land_month(landing, [case_alpha(n) for n in (1, 2)]), db_regular=dbs[0], db_super=dbs[1]
    )
    assert first.inserted == 2
    recorder.commands.clear()
    changed = [case_alpha(1, name="changed"), case_alpha(2, name="changed"), big(3, 49 * 1024 * 1024)]
    stats = import_files(land_month(landing, changed), db_regular=dbs[0], db_super=dbs[1], mode="overwrite")
    assert (stats.merged, [q["file"].rpartition("/")[2] for q in stats.quarantined]) == (2, ["Case003.json"])
    singles = [c for name, c in recorder.commands if name == "update" and "autocommit" not in c]
    assert len(singles) == 2 and all(len(c["updates"]) == 1 for c in singles)  # replace_one, one by one
    check_writes(recorder.commands)
    assert {d["name"] for d in dbs[0]["alphas"].find({}, {"name": 1})} == {"changed"}
