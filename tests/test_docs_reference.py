"""The docs are reference: what they name in code exists. Every path, module, class, constant and call that
README.md, docs/*.md (not the journal nor docs/changes.md, which are history) and the sources file name in
backticks must be in the tree, so a rename or a deletion fails here until the docs follow. And the README's
pasted `make run` output is a real run's: its minute-bar step is run again and must print the same line."""

from __future__ import annotations

import re
from datetime import date, timedelta
from functools import cache
from pathlib import Path

import pytest

from marketdata_assets.core import settings
from tests.conftest import recreate_database, worker_name

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "marketdata_assets"
HISTORY = ("docs/journal/", "docs/changes.md")
SPAN = re.compile(r"`([^`\n]+)`")
WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
PATH = re.compile(r"^[\w.-]+(?:/[\w.-]+)*/?$")  # a/b/c.py, a/b/
FILE_SUFFIXES = (".py", ".md", ".yaml", ".yml", ".json", ".toml", ".sql", ".cfg", ".ini")
# where a path the docs give lives: the tree's folders, and the package's rooms named without the prefix
TREE = ("marketdata_assets", "tests", "bench", "scripts", "docs", "deploy", "docker", "instance", ".ci")
ROOMS = tuple(p.name for p in PACKAGE.iterdir() if p.is_dir() and not p.name.startswith("_"))
# named in the docs on purpose though not in the tree: what a recipe or a run makes, and other owners' names
NOT_OURS = {
    "sources/kraken/",  # README's new-venue recipe: the package it makes
    "replay/crypto/kraken.py",
    "sources/stooq/",  # README's new-stock-feed recipe
    "replay/stooq.py",
    "docker/landing/",  # made by `docker compose up` (bind mount)
    "helm/dagster/values.schema.json",  # Dagster's Helm chart (deploy.md)
    "RunCoordinator",  # the Dagster Helm chart's values and Dagster's own event and class names
    "QueuedRunCoordinatorConfig",
    "TagConcurrencyLimit",
    "RunLauncher",
    "K8sRunLauncherConfig",
    "RunK8sConfig",
    "UserDeployment",
    "ASSET_FAILED_TO_MATERIALIZE",
    "ArrowTable",  # chDB's output format
    "BTCUSD_250328",  # a Binance COIN-M instrument, an example name
    "increase()",  # PromQL's (docs/metrics.md; its rate() is also a word of ours)
}
MODULE = re.compile(r"^marketdata_assets(?:\.\w+)+$")
CAMEL = re.compile(r"^_?[A-Z][a-z0-9]+(?:[A-Z][a-z0-9]*)+$")  # LiveCollector, HourlyLoad
CONSTANT = re.compile(r"^_?[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+$")  # RESOURCE_TYPES, ENABLE_OKX
CALL = re.compile(r"^(?:[a-z_]\w*\.)*([a-z_]\w*)\(\)$")  # name(), module.name()


def documents() -> list[Path]:
    docs = [ROOT / "README.md", PACKAGE / "sources" / "data_providers.yaml"]
    docs += sorted(p for p in (ROOT / "docs").rglob("*.md"))
    return [p for p in docs if not str(p.relative_to(ROOT)).startswith(HISTORY)]


@cache
def code_words() -> frozenset[str]:
    """Every identifier and string word of the tree's code (the package, tests, bench, scripts, deploy)."""
    words: set[str] = set()
    for folder in ("marketdata_assets", "tests", "bench", "scripts", "deploy", "docker", "instance", ".ci"):
        for path in (ROOT / folder).rglob("*"):
            if path.is_file() and path.suffix in (
                "",
                ".py",
                ".pyx",
                ".pxd",
                ".yaml",
                ".yml",
                ".sh",
                ".toml",
                ".env",
                ".example",
            ):
                words.update(WORD.findall(path.read_text(encoding="utf-8", errors="replace")))
    words.update(WORD.findall((ROOT / "Makefile").read_text(encoding="utf-8")))
    words.update(WORD.findall((ROOT / "pyproject.toml").read_text(encoding="utf-8")))
    return frozenset(words)


def path_exists(text: str) -> bool:
    """A repo path, or one relative to the package (docs name `ingest/live/...`) or to docs/."""
    return any((base / text).exists() for base in (ROOT, PACKAGE, ROOT / "docs"))


@cache
def words_of(path: Path) -> frozenset[str]:
    """The identifiers of one file (read once however many spans name it)."""
    return frozenset(WORD.findall(path.read_text(encoding="utf-8")))


def name_in_file(span: str) -> bool:
    """`core/charts.heatmap_svg`: a module given as a path, then a name it defines."""
    module, _, name = span.rpartition(".")
    return bool(module) and any(
        (base / f"{module}.py").is_file() and name in words_of(base / f"{module}.py")
        for base in (ROOT, PACKAGE)
    )


def module_exists(dotted: str) -> bool:
    """A module, or a name defined in one (`marketdata_assets.x.y.NAME`)."""
    parts = dotted.split(".")
    for cut in range(len(parts), 1, -1):
        base = ROOT.joinpath(*parts[:cut])
        found = base.with_suffix(".py") if base.with_suffix(".py").exists() else base / "__init__.py"
        if found.exists():
            rest = parts[cut:]
            return not rest or rest[0] in words_of(found)
    return False


def missing(span: str, words: frozenset[str]) -> bool:
    """Whether `span` names code that is nowhere (False for what is no code name: prose, SQL, flags)."""
    if span in NOT_OURS or " " in span or any(c in span for c in "<>*{}[]=$:,"):
        return False
    if MODULE.match(span):
        return not module_exists(span)
    if "/" in span and PATH.match(span):
        ours = span.split("/", 1)[0] in TREE + ROOMS and not span.startswith("bench/results/")  # a run's
        return ours and not path_exists(span) and not name_in_file(span)
    if "/" in span or "." in span.rstrip("()").split(".")[-1]:
        return False
    call = CALL.match(span)
    if call:
        return call.group(1) not in words
    if CAMEL.match(span) or CONSTANT.match(span):
        return span not in words
    return False


def stale_names(text: str, words: frozenset[str]) -> list[tuple[int, str]]:
    return [
        (number, span)
        for number, line in enumerate(text.splitlines(), 1)
        for span in SPAN.findall(line)
        if missing(span.strip(), words)
    ]


def test_a_name_the_code_no_longer_has_is_found_in_a_doc():
    words = frozenset({"LiveCollector", "ENABLE_OKX", "venue_client"})
    sample = (
        "The `LiveCollector` reads `ENABLE_OKX`; `venue_client()` builds it.\n"
        "Gone: `OldCollector`, `CONTRACT_VALUES`, `seed_master()`, `ingest/live/binance_spot.py`,\n"
        "`marketdata_assets.ingest.live.nothing`; prose, flags and SQL are no names: `--ws-url`, `SELECT 1`."
        "\nPaths without a suffix and a module's name: `scripts/stack`, `scripts/gone`,"
        " `core/charts.heatmap_svg`, `core/charts.gone_svg`, `ingest/live/collect`, `ingest/live/collector`."
    )
    assert stale_names(sample, words) == [
        (2, "OldCollector"),
        (2, "CONTRACT_VALUES"),
        (2, "seed_master()"),
        (2, "ingest/live/binance_spot.py"),
        (3, "marketdata_assets.ingest.live.nothing"),
        (4, "scripts/gone"),
        (4, "core/charts.gone_svg"),
        (4, "ingest/live/collector"),
    ]


@pytest.mark.parametrize("doc", documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_code_name_a_doc_gives_exists(doc: Path):
    stale = stale_names(doc.read_text(encoding="utf-8"), code_words())
    assert not stale, f"{doc.relative_to(ROOT)} names what the code no longer has: " + "; ".join(
        f"line {number}: `{span}`" for number, span in stale
    )


# The README's sample of `make run` (apps/readme.py pastes it; tests/test_readme.py checks that its lines
# are the code's rendering, in the planned order, and add up): its minute-bar step is run again here for
# real, on the sample's own months, and must print the same line but for the seconds and the run id. The
# replay's minute files are deterministic for given months, so a sample whose rows or checks differ from
# what a run stores and says (the README once showed 295 rows where a fresh run stores 71,051) fails here.
TIMING = re.compile(r", \d+\.\d s(?=;|  \(run )|  \(run [0-9a-f]{8}\)$")


def readme_step(prefix: str) -> str:
    from marketdata_assets.apps import readme

    (line,) = [
        line for line in readme.sample_block((ROOT / "README.md").read_text()) if line.startswith(prefix)
    ]
    return line


def test_the_readmes_minute_bar_step_is_what_a_run_of_its_months_prints(tmp_path, monkeypatch):
    import dagster as dg

    from marketdata_assets.apps import main
    from marketdata_assets.apps.launch import launch
    from marketdata_assets.definitions import defs as load_defs

    shown = readme_step("[ok] minute bars ")
    first, last = re.search(r"minute bars (\d{4}-\d{2})\.\.(\d{4}-\d{2}):", shown).groups()
    end = date.fromisoformat(f"{last}-01")
    months = main.last_complete_months(3, (end + timedelta(days=31)).replace(day=1))  # the 3 up to `last`
    assert f"{months[0]:%Y-%m}..{months[-1]:%Y-%m}" == f"{first}..{last}"
    monkeypatch.setattr(main, "last_complete_months", lambda n, today=None: months)
    # a database of this test alone on the stack's TimescaleDB (a fresh store, as make run's first run has)
    database = worker_name("readme_minute_bars")
    recreate_database(database, extension=True)
    for name in ("TIMESCALE_USER", "TIMESCALE_PASSWORD"):  # the stack's, before the state dir moves
        monkeypatch.setenv(name, settings.get(name))
    monkeypatch.setenv("TIMESCALE_DB", database)
    monkeypatch.setenv("MINUTE_BARS_LANDING_DIR", str(tmp_path / "minute_bars"))
    monkeypatch.setenv("MARKETDATA_STATE_DIR", str(tmp_path / "state"))  # its quarantine, its run's files
    defs = load_defs()
    (step,) = [s for s in main.plan(defs) if s[0].startswith("minute bars ")]
    label, assets, tags, partition_key = step
    with dg.DagsterInstance.ephemeral() as instance:
        outcome = launch(
            label,
            assets,
            instance=instance,
            resources=defs.resources or {},
            tags=tags,
            partition_key=partition_key,
        )
    assert TIMING.sub("", outcome.line()) == TIMING.sub("", shown), (
        "README's `make run` sample is not what a run prints now: paste a fresh run's "
        "(python -m marketdata_assets.apps.readme paste)"
    )
