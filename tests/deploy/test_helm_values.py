"""deploy/helm/: the Dagster chart's values, checked offline with jsonschema against our strict schema of
them (deploy/helm/values.schema.json: the chart's key names and types for the chart version that equals
pyproject's dagster pin, additionalProperties false everywhere, Kubernetes sub-objects checked against
kubernetes-validate's strict definitions), and against what the rest of the deployment says: the
instance's run queue and pools (instance/dagster.yaml), the ConfigMap and Secret every Dagster container
reads, the external Postgres the ConfigMap names, the image the overlay deploys.

The chart's own values.schema.json could not be used (docs/deploy.md, "What was validated"); nothing
here renders the chart (no helm in any reachable registry).
"""

from __future__ import annotations

import copy
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.deploy import manifests as m

# Free-form maps of the schema (Kubernetes annotations and labels, dagster.yaml fragments, the
# partial Container/Job specs the run launcher merges): every other object forbids unknown keys.
OPEN_OBJECTS = {
    "annotations",
    "nodeSelector",
    "labels",
    "additionalInstanceConfig",
    "postgresqlParams",
    "containerConfig",
    "podSpecConfig",
    "podTemplateSpecMetadata",
    "jobSpecConfig",
    "jobMetadata",
}
INSTANCE = yaml.safe_load((m.REPO / "instance" / "dagster.yaml").read_text())


def errors(values: dict) -> list[str]:
    return [f"{error.json_path}: {error.message[:160]}" for error in m.values_validator().iter_errors(values)]


def _strictness_gaps(schema, path: str = "$") -> list[str]:
    gaps = []
    if isinstance(schema, dict):
        name = path.rsplit(".", 1)[-1]
        if (
            schema.get("type") == "object"
            and "properties" in schema
            and name not in OPEN_OBJECTS
            and schema.get("additionalProperties") is not False
        ):
            gaps.append(path)
        for key, sub in schema.items():
            if key in ("properties", "$defs"):
                gaps += [
                    gap for prop, value in sub.items() for gap in _strictness_gaps(value, f"{path}.{prop}")
                ]
            elif isinstance(sub, (dict, list)):
                gaps += _strictness_gaps(sub, path)
    elif isinstance(schema, list):
        gaps += [gap for sub in schema for gap in _strictness_gaps(sub, path)]
    return gaps


def test_schema_is_for_the_pinned_dagster_chart_and_kubernetes_version():
    schema = m.values_schema()
    assert schema["x-dagster-chart-version"] == m.dagster_pin(), (
        f"values.schema.json describes chart {schema['x-dagster-chart-version']}, pyproject pins dagster "
        f"{m.dagster_pin()}: check the chart's values of that version and update both"
    )
    assert schema["x-kubernetes-version"] == m.KUBERNETES_VERSION
    assert m.dagster_pin() in m.VALUES.read_text(), (
        "dagster-values.yaml: the install command names another chart version"
    )


def test_schema_forbids_unknown_keys_in_every_object():
    assert not _strictness_gaps(m.values_schema()), (
        "objects of values.schema.json without additionalProperties false"
    )


def test_values_match_the_schema():
    assert not errors(m.values())


def _set(values: dict, path: str, value) -> dict:
    values = copy.deepcopy(values)
    *parents, last = path.split(".")
    node = values
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if value == "_DELETE":
        del node[last]
    else:
        node[last] = value
    return values


@pytest.mark.parametrize(
    ("path", "value", "why"),
    [
        ("dagsterWebserver.replicaCunt", 2, "unknown key (typo)"),
        (
            "dagsterDaemon.runCoordinator.config.queuedRunCoordinator.maxConcurentRuns",
            8,
            "unknown nested key",
        ),
        ("postgresql.postgresqlPassword", "hunter2", "a literal password (the Secret holds it)"),
        ("dagsterWebserver.replicaCount", "2", "wrong type"),
        ("dagsterDaemon.runCoordinator.config.queuedRunCoordinator.maxConcurrentRuns", 2.5, "wrong type"),
        ("dagsterWebserver.image.pullPolicy", "Sometimes", "broken value"),
        ("runLauncher.type", "DefaultRunLauncher", "broken value"),
        (
            "generatePostgresqlPasswordSecret",
            True,
            "the chart would write a password into a Secret of its own",
        ),
        ("dagster-user-deployments.deployments.0.name", "Marketdata_Assets", "not a DNS label"),
        (
            "runLauncher.config.k8sRunLauncher.runK8sConfig.containerConfig.resources.requestz",
            {"cpu": "1"},
            "unknown key in a Kubernetes object",
        ),
        (
            "dagster-user-deployments.deployments.0.volumeMounts.0.mountPath",
            7,
            "wrong type in a Kubernetes object",
        ),
        ("dagsterDaemon.runCoordinator", "_DELETE", "required value missing"),
        (
            "dagster-user-deployments.deployments.0.replicaCount",
            2,
            "not a key of the chart's user deployments (its template runs one replica each)",
        ),
    ],
)
def test_a_broken_value_an_unknown_key_or_a_wrong_type_fails(path, value, why):
    assert errors(_set(m.values(), path, value)), f"{why}: {path}={value!r} passed the schema"


def test_the_run_queue_reproduces_the_instance_limits():
    queued = m.values()["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    ours = {limit["key"]: limit for limit in queued["tagConcurrencyLimits"]}
    for limit in INSTANCE["concurrency"]["runs"]["tag_concurrency_limits"]:
        assert limit["key"] in ours, (
            f"tag concurrency limit {limit['key']} of instance/dagster.yaml is not in the values"
        )
        assert ours[limit["key"]]["limit"] < queued["maxConcurrentRuns"], (
            f"{limit['key']}: its limit would take every run slot"
        )
    assert queued["blockOpConcurrencyLimitedRuns"]["enabled"], "runs blocked on a pool would hold run pods"
    pools = m.values()["additionalInstanceConfig"]["concurrency"]["pools"]
    assert pools == INSTANCE["concurrency"]["pools"], "pool defaults differ from instance/dagster.yaml"


def test_run_retries_and_monitoring_follow_the_instance():
    daemon = m.values()["dagsterDaemon"]
    retries = INSTANCE["run_retries"]
    assert daemon["runRetries"] == {
        "enabled": retries["enabled"],
        "maxRetries": retries["max_retries"],
        "retryOnAssetOrOpFailure": retries["retry_on_asset_or_op_failure"],
    }
    assert daemon["runMonitoring"]["enabled"] == INSTANCE["run_monitoring"]["enabled"]
    assert m.values()["telemetry"]["enabled"] == INSTANCE["telemetry"]["enabled"]
    assert m.values()["additionalInstanceConfig"]["freshness"] == INSTANCE["freshness"]


def test_every_dagster_container_reads_the_settings_configmap_and_secret():
    values = m.values()
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    readers = {
        "webserver": values["dagsterWebserver"],
        "daemon": values["dagsterDaemon"],
        "run pods": launcher,
    }
    readers |= {f"user code {d['name']}": d for d in values["dagster-user-deployments"]["deployments"]}
    for who, config in readers.items():
        assert {"name": m.CONFIGMAP} in config.get("envConfigMaps", []), (
            f"{who}: no envConfigMaps {m.CONFIGMAP}"
        )
        assert {"name": m.SECRET} in config.get("envSecrets", []), f"{who}: no envSecrets {m.SECRET}"
    assert launcher["runK8sConfig"]["containerConfig"]["resources"]["requests"], "run pods request nothing"


def test_user_code_and_run_pods_mount_the_state_volume_and_the_sources_file():
    docs = m.rendered(m.OVERLAY)
    env = m.configmap_data(docs)
    state_dir, sources = env["MARKETDATA_STATE_DIR"], Path(env["TICKS_PROVIDERS_CONFIG"])
    claims = set(m.objects(docs, "PersistentVolumeClaim"))
    values = m.values()
    for who, config in {
        "run pods": values["runLauncher"]["config"]["k8sRunLauncher"],
        **{d["name"]: d for d in values["dagster-user-deployments"]["deployments"]},
    }.items():
        volumes = {
            v["name"]: v.get("persistentVolumeClaim", {}).get("claimName") or v["configMap"]["name"]
            for v in config["volumes"]
        }
        mounts = {mount["mountPath"]: volumes[mount["name"]] for mount in config["volumeMounts"]}
        assert mounts.get(state_dir) in claims, (
            f"{who}: {state_dir} is not a claim of the manifests ({mounts})"
        )
        configmap = mounts.get(str(sources.parent))
        assert configmap and sources.name in m.configmap_data(docs, configmap), (
            f"{who}: TICKS_PROVIDERS_CONFIG {sources} is not a file of a mounted ConfigMap ({mounts})"
        )


def test_every_dagster_pod_runs_as_the_kustomize_pods_do():
    """The webserver, the daemon, the user code and every run pod: the image's user, and `fsGroup` so the
    shared state volume is writable by it (as deploy/k8s's collectors, consumer and exporter set)."""
    kustomize = {
        obj["spec"]["template"]["spec"]["securityContext"]["fsGroup"]
        for obj in m.objects(m.rendered(m.OVERLAY), "Deployment").values()
        if "securityContext" in obj["spec"]["template"]["spec"]
    }
    values = m.values()
    pods = {
        "webserver": values["dagsterWebserver"]["podSecurityContext"],
        "daemon": values["dagsterDaemon"]["podSecurityContext"],
        "run pods": values["runLauncher"]["config"]["k8sRunLauncher"]["runK8sConfig"]["podSpecConfig"][
            "securityContext"
        ],
    }
    pods |= {d["name"]: d["podSecurityContext"] for d in values["dagster-user-deployments"]["deployments"]}
    for who, context in pods.items():
        assert {context.get("fsGroup")} == kustomize and context.get("runAsUser") == 1000, f"{who}: {context}"


def test_postgres_storage_is_the_one_the_configmap_names_and_the_password_a_secret():
    values, env = m.values(), m.configmap_data(m.rendered(m.OVERLAY))
    postgresql = values["postgresql"]
    assert postgresql["enabled"] is False, "the chart's bundled Postgres"
    assert (
        postgresql["postgresqlHost"],
        str(postgresql["service"]["port"]),
        postgresql["postgresqlUsername"],
        postgresql["postgresqlDatabase"],
    ) == (env["DAGSTER_PG_HOST"], env["DAGSTER_PG_PORT"], env["DAGSTER_PG_USER"], env["DAGSTER_PG_DB"])
    assert values["global"]["postgresqlSecretName"], "no Secret for the storage password"
    assert values["global"]["dagsterHome"] == env["DAGSTER_HOME"]


def test_the_image_is_the_one_the_overlay_deploys():
    images = yaml.safe_load((m.OVERLAY / "kustomization.yaml").read_text())["images"]
    ours = [image for image in images if image["name"] == m.IMAGE]
    assert ours, f"the overlay does not map {m.IMAGE}"
    values = m.values()
    for who, image in {
        "webserver": values["dagsterWebserver"]["image"],
        "daemon": values["dagsterDaemon"]["image"],
        **{d["name"]: d["image"] for d in values["dagster-user-deployments"]["deployments"]},
    }.items():
        assert (image["repository"], image["tag"]) == (ours[0]["newName"], ours[0]["newTag"]), (
            f"{who}: {image}"
        )


def test_user_code_serves_the_project_definitions():
    (deployment,) = m.values()["dagster-user-deployments"]["deployments"]
    args = deployment["codeServerArgs"]
    assert args[args.index("-m") + 1] == "marketdata_assets.definitions"


def test_the_schema_check_itself_rejects_an_invalid_schema():
    broken = m.values_schema() | {"type": "no-such-type"}
    with pytest.raises(jsonschema.SchemaError):
        m.values_validator(broken)
