"""Prints the image's runtime requirements: pyproject.toml's [project] dependencies, one per line,
less the ones no container ever imports. docker/Dockerfile installs these in a layer of their own
(rebuilt only when pyproject.toml changes), then the project itself with --no-deps.

A dependency added to pyproject.toml is thus in the image without touching this file; only the
names below are left out. tests/test_compose.py loads the definitions and imports the containers'
entry points with these packages blocked, so a change that starts using one fails there.

    python docker/requirements.py [path/to/pyproject.toml]
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10 (the image has 3.11)
    import tomli as tomllib

NOT_IN_IMAGE = {
    # The embedded ClickHouse engine (CLICKHOUSE_DSN=chdb:///path), ~530 MB with the pandas it
    # pulls in. The containers use the clickhouse service over HTTP (CLICKHOUSE_DSN=http://...).
    "chdb": "embedded ClickHouse only; the containers use the ClickHouse server over HTTP",
    # The `dg` developer CLI (scaffolding, dg check/list/dev) and dagster-dg-core and
    # dagster-cloud-cli with it. The containers run dagster code-server, dagster-webserver and
    # dagster-daemon; dg.load_from_defs_folder (the definitions) is in dagster itself.
    "dagster-dg-cli": "developer CLI; no container runs `dg`",
}


def canonical(name: str) -> str:
    """PEP 503 normalized distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    if not match:
        raise ValueError(f"not a requirement: {requirement!r}")
    return canonical(match.group(1))


def runtime_requirements(pyproject: Path) -> list[str]:
    dependencies = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    skipped = {canonical(name) for name in NOT_IN_IMAGE}
    return [dep for dep in dependencies if requirement_name(dep) not in skipped]


def main(argv: list[str]) -> int:
    pyproject = Path(argv[0]) if argv else Path(__file__).resolve().parent.parent / "pyproject.toml"
    for requirement in runtime_requirements(pyproject):
        print(requirement)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
