"""MongoDB beyond one member, checked statically (no mongod can run here; the tests' MongoDB-wire
server has no replication or sharding): docker/compose.mongodb-rs.yaml over compose.yaml makes rs0 a
three-member replica set with one shared keyfile, initiated with every member, the Dagster services
naming all members with w=majority; deploy/mongodb/shard-alphas.js shards the alpha collections the
settings name on a key that MongoDB accepts beside the importer's unique index.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pymongo
import pytest
import yaml

from marketdata_assets.core import settings
from marketdata_assets.stores.mongo.alphas import ALPHA_INDEXES, SHARD_KEY, by_ids
from tests.deploy import manifests as m

DOCKER = m.REPO / "docker"
BASE = yaml.safe_load((DOCKER / "compose.yaml").read_text())["services"]
OVERRIDE = yaml.safe_load((DOCKER / "compose.mongodb-rs.yaml").read_text())
DAGSTER_SERVICES = ("code-location", "webserver", "daemon", "metrics")
MEMBERS = ("mongodb", "mongodb-1", "mongodb-2")
SHARD_SCRIPT = (m.DEPLOY / "mongodb" / "shard-alphas.js").read_text()


def merged(service: str) -> dict:
    """Compose's merge of the override into the base for the keys checked here: mappings (environment,
    depends_on) merge, command/entrypoint/healthcheck.test replace, volumes merge by target."""
    base, over = BASE.get(service, {}), OVERRIDE["services"].get(service, {})
    result = {**base, **over}
    for key in ("environment", "depends_on"):
        if isinstance(base.get(key), dict) or isinstance(over.get(key), dict):
            result[key] = {**(base.get(key) or {}), **(over.get(key) or {})}
    if "healthcheck" in base or "healthcheck" in over:
        result["healthcheck"] = {**base.get("healthcheck", {}), **over.get("healthcheck", {})}
    volumes = {str(v).split(":")[1]: v for v in base.get("volumes", []) if isinstance(v, str)}
    volumes |= {str(v).split(":")[1]: v for v in over.get("volumes", []) if isinstance(v, str)}
    result["volumes"] = list(volumes.values())
    return result


def flag(command: list[str], name: str) -> str | None:
    return command[command.index(name) + 1] if name in command else None


def test_three_members_of_one_replica_set_sharing_one_keyfile():
    replica_sets, keyfiles = set(), set()
    for member in MEMBERS:
        service = merged(member)
        command = [str(part) for part in service["command"]]
        replica_sets.add(flag(command, "--replSet"))
        keyfile = flag(command, "--keyFile")
        keyfiles.add(keyfile)
        mounts = {v.split(":")[1]: v.split(":")[0] for v in service["volumes"]}
        source = [src for target, src in mounts.items() if keyfile.startswith(target + "/")]
        assert source == ["mongodb-keyfile"], f"{member}: the keyfile {keyfile} is not on the shared volume"
        assert service["depends_on"]["mongodb-keyfile"]["condition"] == "service_completed_successfully"
        data = [src for target, src in mounts.items() if target == "/data/db"]
        assert data, f"{member}: no data volume"
    assert len(replica_sets) == 1 and None not in replica_sets, replica_sets
    assert len(keyfiles) == 1
    data_volumes = {
        src
        for member in MEMBERS
        for src, target in (v.split(":")[:2] for v in merged(member)["volumes"])
        if target == "/data/db"
    }
    assert len(data_volumes) == 3, f"members share a data volume: {data_volumes}"
    assert OVERRIDE["services"]["mongodb-keyfile"]["restart"] == "no"


def test_only_the_first_member_creates_the_root_user():
    assert merged("mongodb")["environment"].get("MONGO_INITDB_ROOT_PASSWORD"), "mongodb: no root user"
    for member in MEMBERS[1:]:
        env = merged(member).get("environment") or {}
        assert not [k for k in env if k.startswith("MONGO_INITDB")], (
            f"{member}: a second root user, created before the member joins the set"
        )


def test_the_health_check_initiates_the_set_with_every_member():
    check = " ".join(merged("mongodb")["healthcheck"]["test"])
    replica_set = flag([str(p) for p in merged("mongodb")["command"]], "--replSet")
    assert f"_id: '{replica_set}'" in check and "rs.initiate" in check
    assert set(re.findall(r"host: '([^']+)'", check)) == {f"{member}:27017" for member in MEMBERS}
    assert "isWritablePrimary" in check, "healthy before it is PRIMARY"
    assert "NotYetInitialized" in check, "rs.initiate is not guarded (it would fail on every later check)"


@pytest.mark.parametrize("service", DAGSTER_SERVICES)
def test_the_dagster_services_name_every_member_and_majority_writes(service):
    uri = urlsplit(merged(service)["environment"]["MONGODB_URI"])
    query = parse_qs(uri.query)
    assert set(uri.netloc.split(",")) == {f"{member}:27017" for member in MEMBERS}, uri.netloc
    assert query.get("replicaSet") == ["rs0"] and query.get("w") == ["majority"], uri.query
    single = urlsplit(BASE[service]["environment"]["MONGODB_URI"])
    assert parse_qs(single.query).get("w") == ["majority"], f"compose.yaml: {service} without w=majority"


def test_majority_is_a_write_concern_the_driver_accepts():
    # The URI options parse into the client's write concern, which transactions inherit.
    client = pymongo.MongoClient(BASE["code-location"]["environment"]["MONGODB_URI"], connect=False)
    try:
        assert client.write_concern.document == {"w": "majority"}
    finally:
        client.close()


def _sharded() -> tuple[list[str], dict, str]:
    namespaces = re.search(r"const NAMESPACES = \[([^\]]*)\]", SHARD_SCRIPT)[1]
    key = re.search(r"const SHARD_KEY = (\{[^}]*\})", SHARD_SCRIPT)[1]
    unique = re.search(r"sh\.shardCollection\(ns, SHARD_KEY, (\w+)\)", SHARD_SCRIPT)[1]
    return re.findall(r'"([^"]+)"', namespaces), yaml.safe_load(key), unique


def test_the_shard_script_shards_the_collections_the_settings_name():
    namespaces, _, _ = _sharded()
    defaults = {s.name: s.default for s in settings.SETTINGS}
    wanted = {
        f"{defaults['ALPHA_DB_REGULAR']}.{defaults['ALPHA_COLLECTION']}",
        f"{defaults['ALPHA_DB_SUPER']}.{defaults['ALPHA_COLLECTION']}",
    }
    assert set(namespaces) == wanted


def test_the_shard_key_prefixes_every_unique_index_of_the_importer():
    """MongoDB refuses a unique index on a sharded collection unless the shard key prefixes it."""
    _, key, unique = _sharded()
    shard_fields = list(key)
    assert "hashed" not in key.values(), "a hashed shard key cannot back a unique index"
    for index in ALPHA_INDEXES:
        spec = index.document
        if spec.get("unique"):
            fields = list(spec["key"])
            assert fields[: len(shard_fields)] == shard_fields, (
                f"unique index {spec['name']} {fields} is not prefixed by the shard key {shard_fields}"
            )
            assert unique == "true", "the shard key backs a unique index: shardCollection(..., unique=true)"


def test_the_importer_names_the_scripts_shard_key_in_its_filters():
    """mongos refuses an upsert whose filter lacks the full shard key: the importer's filters (by_ids) name
    the script's key, next to ``_id``."""
    _, key, _ = _sharded()
    assert tuple(key) == SHARD_KEY
    assert by_ids("AAAAAAA") == {"_id": "AAAAAAA", **dict.fromkeys(key, "AAAAAAA")}
    assert by_ids(["A", "B"]) == {"_id": {"$in": ["A", "B"]}, **{name: {"$in": ["A", "B"]} for name in key}}
