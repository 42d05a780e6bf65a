"""The layer rules of .importlinter hold, and they catch an import that runs back up.

`make test` also runs lint-imports before the suite; these tests keep the rules honest: a contract
file that no longer matches the package, or one too loose to catch an upward import, fails here.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT_IMPORTS), str(root / ".importlinter"), "--no-cache"], cwd=root,
                          capture_output=True, text=True, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
                          timeout=120)


def test_the_package_keeps_its_layer_contracts():
    result = lint(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "broken" not in result.stdout.lower().replace("0 broken", "")


@pytest.mark.parametrize("module, upward_import, contract", [
    ("core/markdown.py", "from marketdata_assets.defs.crypto import partitions", "Layers"),
    ("core/markdown.py", "from marketdata_assets.datasets import frames", "Layers"),
    ("core/charts.py", "import dagster", "nothing imports Dagster"),
    ("stores/clickhouse/writer.py", "import dagster", "nothing imports Dagster"),
    ("sources/okx/rest.py", "from marketdata_assets.stores.clickhouse import writer", "Layers"),
    ("sources/okx/rest.py", "from marketdata_assets.ingest import engine", "Layers"),
    # quality and ingest are siblings: neither imports the other
    ("quality/checks.py", "from marketdata_assets.ingest import engine", "Layers"),
    ("ingest/engine.py", "from marketdata_assets.quality import checks", "Layers"),
    ("stores/mongo/documents.py", "from marketdata_assets.sources import alpha_api", "Layers"),
    ("sources/okx/rest.py", "from marketdata_assets.sources.binance import rest", "Sources don't import"),
    ("stores/timescale/kline.py", "from marketdata_assets.stores.clickhouse import tables", "Stores don't import"),
    ("defs/equities/checks.py", "from marketdata_assets.defs.alphas import partitions", "domains don't import"),
    ("defs/archives/dumps.py", "from marketdata_assets.defs.crypto import assets", "domains don't import"),
    ("defs/_common/runs.py", "from marketdata_assets.defs.crypto import partitions", "domains don't import"),
    ("defs/equities/checks.py", "from marketdata_assets.apps import cli", "Layers"),
    ("resources/mongo.py", "from marketdata_assets.apps import cli", "Layers"),
    ("core/identifiers.py", "from marketdata_assets.core import naming", "No import cycles"),
    ("ingest/live/collector.py", "from marketdata_assets.sources.okx import stream", "Venues come from the registry"),
])
def test_an_import_that_runs_back_up_breaks_a_contract(tmp_path, module, upward_import, contract):
    shutil.copytree(REPO / "marketdata_assets", tmp_path / "marketdata_assets",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / ".importlinter", tmp_path / ".importlinter")
    target = tmp_path / "marketdata_assets" / module
    target.write_text(target.read_text() + f"\n{upward_import}  # deliberate\n")
    result = lint(tmp_path)
    assert result.returncode != 0, result.stdout
    broken = [line for line in result.stdout.splitlines() if line.endswith("BROKEN")]
    assert any(contract in line for line in broken), result.stdout
