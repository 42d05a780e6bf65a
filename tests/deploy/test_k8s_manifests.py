"""deploy/k8s/: the kustomize manifests, rendered with `kustomize build` (base and the production
overlay) and every rendered object validated with kubernetes-validate (strict: unknown keys fail)
against Kubernetes KUBERNETES_VERSION; then what tests/test_compose.py checks for docker/compose.yaml:
every setting of the settings table reaches the containers of our image (the ConfigMap, or the Secret's
documented keys), no secret value is in a manifest, one collector per venue group switched on by its
ENABLE_* variable, NATS JetStream as a three-server cluster whose config `nats-server -t` accepts, the
MongoDB replica set the URI names. Broken manifests (an unknown key, a wrong type, a broken value, a
kustomization naming a missing file, a NATS config with an unknown field) must fail.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from pathlib import Path, PurePosixPath
from urllib.parse import parse_qs, urlsplit
from xml.etree import ElementTree

import kubernetes_validate
import pytest

from bench import capacity
from marketdata_assets.core.settings import MORE_VARIABLES, SETTINGS
from marketdata_assets.sources.config import load_sources_config
from tests.deploy import manifests as m

KUSTOMIZATIONS = {"base": m.BASE, "production": m.OVERLAY}
SECRETS = {s.name for s in SETTINGS if s.secret}
# The live collector's settings (apps/cli/live.py, apps/collector.py): set on each collector Deployment.
LIVE = {s.name for s in SETTINGS if {"apps/cli/live.py", "apps/collector.py"} & set(s.read_by)}
# stack_only settings no deployment needs: the local stack's PGlite port.
NOT_DEPLOYED = {s.name for s in SETTINGS if s.stack_only} - LIVE
VENUE_GROUPS = ("BINANCE", "BINANCE_UM", "OKX", "DERIBIT")
ACCOUNT_VAR = re.compile(r"ALPHA_API_(USER|PASSWORD)_[A-Z0-9_]+$")


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_every_rendered_object_is_valid_kubernetes(name):
    docs = m.rendered(KUSTOMIZATIONS[name])
    assert len(docs) >= 15, f"{name}: only {len(docs)} objects rendered"
    failures = []
    for doc in docs:
        try:
            m.validate(doc)
        except (kubernetes_validate.ValidationError, kubernetes_validate.SchemaNotFoundError) as error:
            failures.append(f"{doc['kind']}/{doc['metadata']['name']}: {str(error).splitlines()[0]}")
    assert not failures, "\n".join(failures)


def _deployment(name: str = "collector-binance") -> dict:
    return copy.deepcopy(m.objects(m.rendered(m.OVERLAY), "Deployment")[name])


def _container(obj: dict) -> dict:
    return m.pod_spec(obj)["containers"][0]


@pytest.mark.parametrize(
    ("why", "change"),
    [
        ("unknown key", lambda d: _container(d).update(envFromm=[])),
        ("unknown key in the pod spec", lambda d: m.pod_spec(d).update(restartPolicyy="Always")),
        ("wrong type", lambda d: d["spec"].update(replicas="one")),
        ("wrong type of a port", lambda d: _container(d)["ports"][0].update(containerPort="metrics")),
        ("broken value: a list where an object goes", lambda d: _container(d).update(resources=["cpu"])),
        ("required value missing", lambda d: _container(d).pop("name")),
    ],
)
def test_the_validator_rejects_a_broken_object(why, change):
    broken = _deployment()
    change(broken)
    with pytest.raises(kubernetes_validate.ValidationError):
        m.validate(broken)


def test_kustomize_fails_on_a_broken_kustomization(tmp_path):
    shutil.copytree(m.BASE, tmp_path / "base")
    kustomization = tmp_path / "base" / "kustomization.yaml"
    kustomization.write_text(
        kustomization.read_text().replace("  - exporter.yaml", "  - exporter-missing.yaml")
    )
    assert m.kustomize(tmp_path / "base").returncode != 0, (
        "kustomize rendered a kustomization naming a missing file"
    )
    (tmp_path / "base" / "kustomization.yaml").write_text("resources: [nats.yaml]\nbogusField: 1\n")
    assert m.kustomize(tmp_path / "base").returncode != 0, "kustomize accepted an unknown field"


def test_every_setting_reaches_the_containers_of_our_image():
    env = m.configmap_data(m.rendered(m.OVERLAY))
    documented_secrets = set(m.read_env_file(m.DEPLOY / "k8s" / "secrets.env.example"))
    needed = {s.name for s in SETTINGS} - NOT_DEPLOYED - LIVE
    missing = sorted(name for name in needed - SECRETS if name not in env)
    assert not missing, f"{m.CONFIGMAP}: settings not wired: {missing}"
    assert SECRETS <= documented_secrets, f"secrets.env.example lacks {sorted(SECRETS - documented_secrets)}"
    unknown = sorted(name for name in set(env) - {s.name for s in SETTINGS + MORE_VARIABLES})
    assert not unknown, f"{m.CONFIGMAP}: {unknown} are no settings"
    extra = sorted(n for n in documented_secrets - SECRETS if not ACCOUNT_VAR.match(n))
    assert not extra, f"secrets.env.example: {extra} are no secret settings"
    for name in documented_secrets:
        assert m.read_env_file(m.DEPLOY / "k8s" / "secrets.env.example")[name] == "", (
            f"secrets.env.example: {name} has a value"
        )
    for workload, container in m.our_containers(m.rendered(m.OVERLAY)):
        sources = container.get("envFrom", [])
        assert {"configMapRef": {"name": m.CONFIGMAP}} in sources, f"{workload}: no envFrom {m.CONFIGMAP}"
        assert {"secretRef": {"name": m.SECRET}} in sources, f"{workload}: no envFrom {m.SECRET}"


def test_every_container_of_our_image_reads_the_sources_file_from_its_configmap():
    """The universe changes by editing deploy/k8s/base/data_providers.yaml and applying: no image rebuild."""
    docs = m.rendered(m.OVERLAY)
    path = PurePosixPath(m.configmap_data(docs)["TICKS_PROVIDERS_CONFIG"])
    text = m.configmap_data(docs, "marketdata-sources")[path.name]
    config = load_sources_config(m.REPO / "deploy" / "k8s" / "base" / path.name)
    assert config.crypto_instruments and text == (m.REPO / "deploy" / "k8s" / "base" / path.name).read_text()
    workloads = m.workloads(docs)
    for workload, container in m.our_containers(docs):
        volumes = {v["name"]: v for v in m.pod_spec(workloads[workload])["volumes"]}
        mount = next(
            (v for v in container.get("volumeMounts", []) if v["mountPath"] == str(path.parent)), None
        )
        assert mount and volumes[mount["name"]].get("configMap", {}).get("name") == "marketdata-sources", (
            f"{workload}: {path.parent} is not the ConfigMap marketdata-sources"
        )


def _model(overrides: dict | None = None) -> capacity.Plan:
    return capacity.plan(
        capacity.fit_run_cost(json.loads(capacity.RUNS_FILE.read_text())), overrides=overrides
    )


def test_the_overlay_holds_what_the_capacity_model_generates():
    generated = capacity.kustomize_files(_model(), "deploy/k8s/overlays/production")
    for name, text in generated.items():
        assert (m.OVERLAY / name).read_text() == text, (
            f"{name} is not the model's answer: run `python -m bench capacity --emit-kustomize "
            "deploy/k8s/overlays/production`"
        )


def test_the_live_consumers_are_as_many_as_the_capacity_model_asks():
    consumer = m.workloads(m.rendered(m.OVERLAY))["live-consumer"]
    assert consumer["spec"]["replicas"] == _model().units("consumer at the peak") == 2


def test_the_clickhouse_cluster_has_the_models_shards_of_two_replicas():
    xml = m.configmap_data(m.rendered(m.OVERLAY), "clickhouse-remote-servers")["remote_servers.xml"]
    cluster = ElementTree.fromstring(xml).find("remote_servers/desk")
    shards = cluster.findall("shard")
    assert len(shards) == capacity.shards(_model()) == 3
    hosts = [replica.findtext("host") for shard in shards for replica in shard.findall("replica")]
    assert [len(shard.findall("replica")) for shard in shards] == [2] * 3 and len(set(hosts)) == 6


def test_a_venue_group_the_model_gives_two_collectors_is_refused_by_the_generator():
    busy = _model({"frame_cost_s": 40e-6})  # the collector's cost before this year's work
    assert busy.units("binance collector CPU") > 1
    with pytest.raises(SystemExit, match="BINANCE"):
        capacity.kustomize_files(busy, "overlay")


def test_the_collectors_are_as_many_as_the_capacity_model_asks():
    """One collector per venue group: the model's collectors at the full universe's peak (each at most
    half a core busy at the measured CPU a frame), and Deribit's, whose universe line has no trades."""
    model = _model()
    collectors = [
        obj
        for obj in m.workloads(m.rendered(m.OVERLAY)).values()
        if obj["metadata"]["labels"].get("app.kubernetes.io/name") == "collector"
    ]
    assert sum(obj["spec"].get("replicas", 1) for obj in collectors) == model.units("collector CPU") + 1


def test_no_secret_value_is_in_any_manifest():
    docs = m.rendered(m.OVERLAY)
    env = m.configmap_data(docs)
    assert not [name for name in env if name in SECRETS or name.endswith(("_PASSWORD", "_TOKEN"))], (
        f"{m.CONFIGMAP} holds a secret"
    )
    assert not m.objects(docs, "Secret"), "a Secret object (with its values) is in the manifests"
    for name, obj in m.workloads(docs).items():
        for container in m.pod_spec(obj)["containers"]:
            for var in container.get("env", []):
                if var["name"] in SECRETS or var["name"].endswith(("PASSWORD", "_TOKEN")):
                    assert "value" not in var and "secretKeyRef" in var.get("valueFrom", {}), (
                        f"{name}: {var['name']} is not read from a Secret"
                    )


def test_one_collector_per_venue_group_switched_on_by_its_enable_variable():
    shared = m.configmap_data(m.rendered(m.OVERLAY))
    collectors = {
        obj["metadata"]["labels"]["marketdata/venue-group"]: obj
        for obj in m.objects(m.rendered(m.OVERLAY), "Deployment").values()
        if obj["metadata"]["labels"].get("app.kubernetes.io/name") == "collector"
    }
    assert sorted(collectors) == sorted(VENUE_GROUPS)
    for group, obj in collectors.items():
        container = _container(obj)
        env = {var["name"]: var.get("value") for var in container["env"]}
        missing = sorted(LIVE - set(env) - set(shared))
        assert not missing, f"collector {group}: live settings not set: {missing}"
        assert {"configMapRef": {"name": m.CONFIGMAP}} in container["envFrom"], (
            f"collector {group}: no NATS_URL"
        )
        switched_on = [venue for venue in VENUE_GROUPS if env[f"ENABLE_{venue}"] == "true"]
        assert switched_on == [group], f"collector {group}: ENABLE_* switch on {switched_on}"
        command = container["command"]
        assert command[:2] == ["marketdata", "collect"], f"collector {group}: runs {command}"
        assert container["readinessProbe"]["httpGet"]["path"] == "/health", (
            f"collector {group}: no health probe"
        )
        assert obj["spec"]["replicas"] == 1 and obj["spec"]["strategy"]["type"] == "Recreate", (
            f"collector {group}: two copies would land every frame twice"
        )
        if "ports" in container:
            assert container["ports"][0]["containerPort"] == int(env["COLLECTOR_METRICS_PORT"])
            assert env["COLLECTOR_METRICS_HOST"] == "0.0.0.0", (
                "endpoints on loopback: probes cannot reach them"
            )


def _nats_conf() -> str:
    return m.configmap_data(m.rendered(m.OVERLAY), "nats-config")["nats.conf"]


def test_nats_is_a_three_server_jetstream_cluster_with_routes_to_every_server():
    docs = m.rendered(m.OVERLAY)
    nats = m.objects(docs, "StatefulSet")["nats"]
    replicas, headless = nats["spec"]["replicas"], m.objects(docs, "Service")[nats["spec"]["serviceName"]]
    assert replicas == 3
    assert headless["spec"]["clusterIP"] == "None" and headless["spec"]["publishNotReadyAddresses"]
    assert headless["spec"]["selector"].items() <= nats["spec"]["template"]["metadata"]["labels"].items()
    conf = _nats_conf()
    routes = set(re.findall(r"nats://([\w.-]+):(\d+)", conf.split("routes:")[1].split("]")[0]))
    wanted = {(f"nats-{i}.{headless['metadata']['name']}", "6222") for i in range(replicas)}
    assert routes == wanted, f"nats.conf routes {sorted(routes)}, the StatefulSet's pods are {sorted(wanted)}"
    assert re.search(r"^jetstream\s*\{[^}]*store_dir:\s*/data/", conf, re.MULTILINE), (
        "no JetStream store on /data"
    )
    mounts = {mount["mountPath"] for mount in _container(nats)["volumeMounts"]}
    assert "/data" in mounts and nats["spec"]["volumeClaimTemplates"], "JetStream's store is not on a volume"
    client = m.objects(docs, "Service")["nats"]
    url = urlsplit(m.configmap_data(docs)["NATS_URL"])
    assert (url.hostname, url.port) == ("nats", client["spec"]["ports"][0]["port"]), (
        "NATS_URL is not the Service"
    )


def _nats_server() -> str:
    path = shutil.which("nats-server") or (
        "/usr/sbin/nats-server" if Path("/usr/sbin/nats-server").exists() else None
    )
    assert path, "nats-server is not installed (Debian's package; `make stack-up` installs it)"
    return path


def _nats_check(conf: str, tmp_path: Path) -> subprocess.CompletedProcess:
    path = tmp_path / "nats.conf"
    path.write_text(conf)
    return subprocess.run(
        [_nats_server(), "-c", str(path), "-t"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"SERVER_NAME": "nats-0", "NATS_TOKEN": "t0ken", "PATH": "/usr/bin:/bin"},
    )


def test_nats_server_accepts_the_config_and_rejects_a_broken_one(tmp_path):
    done = _nats_check(_nats_conf(), tmp_path)
    assert done.returncode == 0, f"nats-server -t: {done.stderr}"
    assert _nats_check(_nats_conf() + "\njetstreem { store_dir: /x }\n", tmp_path).returncode != 0, (
        "unknown field"
    )
    assert _nats_check(_nats_conf().replace("port: 6222", "port: sixty"), tmp_path).returncode != 0, (
        "wrong type"
    )


def test_mongodb_is_the_replica_set_the_uri_names_with_majority_writes():
    docs = m.rendered(m.OVERLAY)
    mongodb = m.objects(docs, "StatefulSet")["mongodb"]
    service = mongodb["spec"]["serviceName"]
    members = {f"mongodb-{i}.{service}:27017" for i in range(mongodb["spec"]["replicas"])}
    assert len(members) == 3
    uri = urlsplit(m.configmap_data(docs)["MONGODB_URI"])
    query = parse_qs(uri.query)
    assert set(uri.netloc.split(",")) == members, (
        f"MONGODB_URI names {uri.netloc}, the members are {sorted(members)}"
    )
    assert query.get("w") == ["majority"], "MONGODB_URI: writes are not acknowledged by a majority"
    script = " ".join(
        m.objects(docs, "Job")["mongodb-rs-init"]["spec"]["template"]["spec"]["containers"][0]["command"]
    )
    replica_set = query["replicaSet"][0]
    assert f"_id: '{replica_set}'" in script and set(re.findall(r"host: '([^']+)'", script)) == members, (
        "mongodb-rs-init does not initiate the set the URI names"
    )
    args = " ".join(_container(mongodb)["args"])
    assert f"--replSet {replica_set}" in args and "--keyFile" in args
    keyfile = [v for v in m.pod_spec(mongodb)["volumes"] if "secret" in v]
    assert keyfile and keyfile[0]["secret"]["defaultMode"] == 0o400, (
        "the keyfile is not a private Secret volume"
    )


def test_the_deploy_page_counts_the_objects_the_overlay_renders():
    page = (m.REPO / "docs" / "deploy.md").read_text()
    said = int(re.search(r"every rendered object \((\d+) in the overlay", page).group(1))
    assert said == len(m.rendered(m.OVERLAY))
