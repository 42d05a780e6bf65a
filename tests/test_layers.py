"""The layer rules of .importlinter hold, and they catch an import that runs back up.

`make test` also runs lint-imports before the suite; these tests keep the rules honest: a contract
file that no longer matches the package, or one too loose to catch an upward import, fails here.
The package's prose says what a requirement is, not where it came from: no issue numbers, no
references to the design documents (docs/ may map the code to them).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT_IMPORTS), str(root / ".importlinter"), "--no-cache"],
        cwd=root,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        timeout=120,
        check=False,
    )


def test_the_package_keeps_its_layer_contracts():
    result = lint(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "broken" not in result.stdout.lower().replace("0 broken", "")


@pytest.mark.parametrize(
    "module, upward_import, contract",
    [
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
        (
            "stores/timescale/kline.py",
            "from marketdata_assets.stores.clickhouse import tables",
            "Stores don't import",
        ),
        (
            "defs/equities/checks.py",
            "from marketdata_assets.defs.alphas import partitions",
            "domains don't import",
        ),
        (
            "defs/archives/dumps.py",
            "from marketdata_assets.defs.crypto import assets",
            "domains don't import",
        ),
        (
            "defs/_common/runs.py",
            "from marketdata_assets.defs.crypto import partitions",
            "domains don't import",
        ),
        ("defs/equities/checks.py", "from marketdata_assets.apps import cli", "Layers"),
        ("resources/mongo.py", "from marketdata_assets.apps import cli", "Layers"),
        ("core/identifiers.py", "from marketdata_assets.core import naming", "No import cycles"),
        (
            "ingest/live/collect/collector.py",
            "from marketdata_assets.sources.okx import stream",
            "Sources come from the registry",
        ),
        (
            "defs/equities/stocks.py",
            "from marketdata_assets.sources.tushare import feeds",
            "Sources come from the registry",
        ),
        (
            "resources/alphas.py",
            "from marketdata_assets.sources.alpha_api import AlphaApi",
            "Sources come from the registry",
        ),
        (
            "ingest/minute_bars/loader.py",
            "from marketdata_assets.sources.minute_csv import reader",
            "Sources come from the registry",
        ),
    ],
)
def test_an_import_that_runs_back_up_breaks_a_contract(tmp_path, module, upward_import, contract):
    shutil.copytree(
        REPO / "marketdata_assets",
        tmp_path / "marketdata_assets",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    shutil.copy(REPO / ".importlinter", tmp_path / ".importlinter")
    target = tmp_path / "marketdata_assets" / module
    target.write_text(target.read_text() + f"\n{upward_import}  # deliberate\n")
    result = lint(tmp_path)
    assert result.returncode != 0, result.stdout
    broken = [line for line in result.stdout.splitlines() if line.endswith("BROKEN")]
    assert any(contract in line for line in broken), result.stdout


# "issue #12", "issues 3", "(#22)", "seed 004", "seeds 001, 004", "seed-002", "the seed's", "the seeds' ",
# "seeds/", "seed script"; a random seed (`--seed 7`, `seed * 3`, "from the seed") is not one.
PROVENANCE = re.compile(
    r"\bissues? #?\d|(?<![-\w])seeds?[ -]\d|\bseed's|\bseeds' |\bseeds/|\bseed scripts?\b|\(#\d",
    re.IGNORECASE,
)


@pytest.mark.parametrize(
    "line, provenance",
    [
        ("(issue #28's per-partition check)", True),
        ("issue 4", True),
        ("renamed after the first release (#22)", True),
        ("(seed 004)", True),
        ("Seed 000 step 1", True),
        ("seeds 003, 001 and 004", True),
        ("A seed-002 switch", True),
        ("the seed's examples", True),
        ("the seeds' command lines", True),
        ("../shared/seeds/", True),
        ("the seed script it replaces", True),
        ("`python -m marketdata_assets.replay.stocks --port 8766 --seed 7`", False),
        ("n = (seed * 3 + 1)", False),
        ("generated deterministically from the seed (ids", False),
        ("\"aggTrade #3 p is 'abc'\"", False),
        ("binance-public-data #259", False),
        ("ReplayConfig(seed=3)", False),
        ("the issued load ids", False),
    ],
)
def test_the_provenance_pattern(line, provenance):
    assert bool(PROVENANCE.search(line)) is provenance


def package_lines(pattern: re.Pattern) -> list[str]:
    """The package's lines that match `pattern`, as `path:line: text`."""
    return [
        f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        for path in sorted((REPO / "marketdata_assets").rglob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if pattern.search(line)
    ]


def test_package_code_names_no_issue_and_no_design_document():
    found = package_lines(PROVENANCE)
    assert not found, "say what the requirement is, not its issue or design document:\n" + "\n".join(found)


WAIT_FOR = re.compile(r"\basyncio\.wait_for\(|\bfrom asyncio import .*\bwait_for\b")


def test_package_code_never_waits_with_asyncio_wait_for():
    """On Python 3.11 `asyncio.wait_for` takes a cancel that lands as its awaitable ends for that end
    (CPython gh-86296): a collector's stop once waited forever on a reconnect that swallowed it.
    `async with asyncio.timeout(...)` keeps the cancel."""
    assert WAIT_FOR.search("await asyncio.wait_for(event.wait(), 5)") and WAIT_FOR.search(
        "from asyncio import wait_for"
    )
    assert not WAIT_FOR.search("self.writer.wait_for(alpha_type, ids)")
    found = package_lines(WAIT_FOR)
    assert not found, "use `async with asyncio.timeout(...)`:\n" + "\n".join(found)


CONTRACT_NAME = re.compile(r"-SWAP$|PERPETUAL$|-\d{6}$|-\d{1,2}[A-Z]{3}\d{2}$|-[CP]$")


def contract_tables(source: str) -> list[str]:
    """The dict literals of `source` that map contract names to numbers (a size table typed into code)."""
    import ast

    found = []
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Dict)
            and node.keys
            and all(
                isinstance(k, ast.Constant) and isinstance(k.value, str) and CONTRACT_NAME.search(k.value)
                for k in node.keys
            )
            and all(isinstance(v, (ast.Constant, ast.Tuple)) for v in node.values)
        ):
            found.append(f"line {node.lineno}: {', '.join(k.value for k in node.keys)[:80]}")
    return found


def test_no_contract_size_table_in_package_code():
    """Contract values and sizes come from the venues' reference data (the instrument master), never from a
    table typed into code; the replays are the venues and keep their own."""
    assert contract_tables('SIZES = {"BTC-PERPETUAL": 10.0, "ETH-PERPETUAL": 1.0}')
    assert contract_tables('V = {"BTC-USDT-SWAP": (0.01, False)}')
    assert not contract_tables('CHANNEL = {"trades": 1}')
    found = [
        f"{path.relative_to(REPO)} {table}"
        for path in sorted((REPO / "marketdata_assets").rglob("*.py"))
        if "replay" not in path.parts
        for table in contract_tables(path.read_text(encoding="utf-8"))
    ]
    assert not found, "a contract-size table in package code (use the instrument master):\n" + "\n".join(
        found
    )
