"""The check before a command opens Dagster's instance (`storage_reachable`): it asks the Postgres the
instance keeps its runs in, and only that: a user's own instance (SQLite, say) is not held up by a
Postgres it never uses (nor does the command reach for one at the default port)."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

from marketdata_assets.orchestration.runs import storage_reachable, stores_in_postgres

REPO = Path(__file__).resolve().parents[2]


def _closed_port() -> int:
    with socket.socket() as probe:  # bound, never listening: a connect is refused at once
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_only_an_instance_that_stores_in_postgres_is_checked_against_it(tmp_path, monkeypatch):
    project, sqlite, modules = tmp_path / "project", tmp_path / "sqlite", tmp_path / "modules"
    for home in (project, sqlite, modules):
        home.mkdir()
    shutil.copy(REPO / "instance" / "dagster.yaml", project / "dagster.yaml")
    (sqlite / "dagster.yaml").write_text("{}\n")
    (modules / "dagster.yaml").write_text(
        "run_storage:\n  module: dagster_postgres.run_storage\n  class: PostgresRunStorage\n"
    )
    assert stores_in_postgres(str(project)) and stores_in_postgres(str(modules))
    assert not stores_in_postgres(str(sqlite))
    monkeypatch.setenv("DAGSTER_PG_HOST", "127.0.0.1")
    monkeypatch.setenv("DAGSTER_PG_PORT", str(_closed_port()))
    monkeypatch.setenv("DAGSTER_HOME", str(sqlite))
    assert storage_reachable(timeout_s=1) is None
    monkeypatch.setenv("DAGSTER_HOME", str(project))
    said = storage_reachable(timeout_s=1)
    assert said is not None and "Dagster" in str(said)
