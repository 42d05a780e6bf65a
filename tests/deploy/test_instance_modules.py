"""Every class the deployed Dagster instance loads - what the Helm chart renders into dagster.yaml for the
types deploy/helm/dagster-values.yaml chooses, any `module:` of its additionalInstanceConfig, and
instance/dagster.yaml's - imports from a distribution the image installs (docker/requirements.py's
runtime requirements and what they require), and is the configurable class the instance expects. The
daemon of the first Helm deployment could not import its K8sRunLauncher: dagster-k8s was in no
requirement."""

from __future__ import annotations

import importlib
import importlib.metadata as md
from functools import cache

import pytest
import yaml
from dagster._serdes import ConfigurableClass  # what an instance's `module:`/`class:` must name
from packaging.requirements import Requirement

from tests.deploy import manifests as m
from tests.test_compose import load_requirements_module

# What the pinned chart's templates (helm/dagster/templates/helpers/instance/*.tpl) render for each type the
# values may choose.
CHART = {
    ("runLauncher", "K8sRunLauncher"): ("dagster_k8s", "K8sRunLauncher"),
    ("runLauncher", "CeleryK8sRunLauncher"): ("dagster_celery_k8s", "CeleryK8sRunLauncher"),
    ("runCoordinator", "QueuedRunCoordinator"): ("dagster._core.run_coordinator", "QueuedRunCoordinator"),
    ("runCoordinator", "DefaultRunCoordinator"): ("dagster._core.run_coordinator", "DefaultRunCoordinator"),
    ("scheduler", "DagsterDaemonScheduler"): ("dagster._core.scheduler", "DagsterDaemonScheduler"),
    ("computeLogManager", "NoOpComputeLogManager"): (
        "dagster._core.storage.noop_compute_log_manager",
        "NoOpComputeLogManager",
    ),
}
# The chart's defaults for the sections our values leave out, and the storage it always renders.
CHART_DEFAULTS = {"scheduler": "DagsterDaemonScheduler", "computeLogManager": "NoOpComputeLogManager"}
REQUIREMENTS = load_requirements_module()  # docker/requirements.py: what the image installs
POSTGRES_STORAGE = ("dagster_postgres", "DagsterPostgresStorage")  # `storage: postgres:` of both files


def _modules_in(tree) -> list[tuple[str, str]]:
    if isinstance(tree, dict):
        found = [(tree["module"], tree["class"])] if "module" in tree and "class" in tree else []
        return found + [pair for value in tree.values() for pair in _modules_in(value)]
    return [pair for value in tree for pair in _modules_in(value)] if isinstance(tree, list) else []


def instance_classes() -> dict[str, tuple[str, str]]:
    values = yaml.safe_load(m.VALUES.read_text())
    instance = yaml.safe_load((m.REPO / "instance" / "dagster.yaml").read_text())
    chosen = {
        "runLauncher": values["runLauncher"]["type"],
        "runCoordinator": values["dagsterDaemon"]["runCoordinator"]["type"],
        **{
            section: values.get(section, {}).get("type", default)
            for section, default in CHART_DEFAULTS.items()
        },
    }
    classes = {f"helm {section}: {kind}": CHART[(section, kind)] for section, kind in chosen.items()}
    classes |= {
        f"helm additionalInstanceConfig: {c}": (mod, c)
        for mod, c in _modules_in(values.get("additionalInstanceConfig", {}))
    }
    classes |= {f"instance/dagster.yaml: {c}": (mod, c) for mod, c in _modules_in(instance)}
    if "postgres" in instance.get("storage", {}):
        classes["instance/dagster.yaml storage: postgres"] = POSTGRES_STORAGE
    classes["helm storage: postgres"] = POSTGRES_STORAGE
    return classes


@cache
def image_distributions() -> frozenset[str]:
    """The image's runtime requirements and everything they require (installed metadata; extras not taken)."""
    todo = [Requirement(r).name for r in REQUIREMENTS.runtime_requirements(m.REPO / "pyproject.toml")]
    seen: set[str] = set()
    while todo:
        name = REQUIREMENTS.canonical(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = md.requires(name) or []
        except md.PackageNotFoundError:
            continue
        for text in requires:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return frozenset(seen)


CLASSES = instance_classes()


def test_the_deployment_names_the_kubernetes_run_launcher():
    assert CLASSES["helm runLauncher: K8sRunLauncher"] == ("dagster_k8s", "K8sRunLauncher")


@pytest.mark.parametrize("where", sorted(CLASSES))
def test_every_instance_class_imports_from_the_image(where):
    module, name = CLASSES[where]
    top = module.split(".")[0]
    owners = {REQUIREMENTS.canonical(d) for d in md.packages_distributions().get(top, [])}
    assert owners, f"{where}: no installed distribution provides {top} (add it to pyproject's dependencies)"
    assert owners & image_distributions(), (
        f"{where}: {module} comes from {sorted(owners)}, which the image does not install "
        f"(docker/requirements.py's runtime requirements)"
    )
    cls = getattr(importlib.import_module(module), name)
    assert isinstance(cls, type) and issubclass(cls, ConfigurableClass), (
        f"{where}: {module}.{name} is not a configurable class"
    )


def test_dagster_k8s_is_pinned_with_dagster():
    pins = {
        Requirement(r).name: str(Requirement(r).specifier)
        for r in REQUIREMENTS.runtime_requirements(m.REPO / "pyproject.toml")
    }
    assert pins["dagster-k8s"] == pins["dagster-postgres"], (
        "the dagster-* libraries share one release (0.x.y)"
    )
