"""What a run's forkserver imports once, before it forks a process per step (definitions.EXECUTOR): the
code location with every defs/ module, imported as quietly as the location's own load imports them, and
the instance's Postgres storage. Each step then starts from them instead of importing them again."""

import importlib
import warnings
from pathlib import Path

import dagster as dg
import dagster_postgres  # noqa: F401 (the instance's storage, instance/dagster.yaml)

import marketdata_assets.definitions

DEFS = Path(marketdata_assets.definitions.__file__).parent / "defs"
MODULES = sorted(
    ".".join(("marketdata_assets", "defs", *path.relative_to(DEFS).with_suffix("").parts))
    for path in DEFS.rglob("*.py")
    if path.name != "__init__.py"
)  # what defs() imports

with warnings.catch_warnings():  # Dagster's beta and preview notes, which the location's load keeps quiet
    for category in (dg.BetaWarning, dg.PreviewWarning):
        warnings.simplefilter("ignore", category)
    for name in MODULES:
        importlib.import_module(name)
