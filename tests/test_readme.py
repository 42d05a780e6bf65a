"""The README stays true: its two commands exist, CI calls its test command, every setting is documented."""

from pathlib import Path

from marketdata_assets.core.settings import SETTINGS

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text()


def test_every_environment_variable_is_documented():
    """The README links the generated reference (docs/configuration.md, which lists every variable:
    tests/test_configuration_doc.py), or lists them itself."""
    if "docs/configuration.md" in README:
        return
    missing = [s.name for s in SETTINGS if f"`{s.name}`" not in README]
    assert not missing, f"README's configuration table lacks {missing}"


def test_ci_runs_the_readme_test_command():
    assert "make test" in README and "make run" in README
    assert "make test" in (REPO / ".ci" / "run").read_text()
    makefile = (REPO / "Makefile").read_text()
    assert "\ntest:" in makefile and "\nrun:" in makefile


def test_docker_compose_uses_the_same_variable_names():
    compose = (REPO / "docker" / "compose.yaml").read_text()
    missing = [s.name for s in SETTINGS if s.name not in compose and not s.stack_only]
    assert not missing, f"docker/compose.yaml does not set {missing}"


def test_the_table_of_what_each_source_serves_is_the_declarations():
    from marketdata_assets.sources.registry import datasets_table

    start, end = "<!-- datasets-table -->\n", "\n<!-- /datasets-table -->"
    shown = README[README.index(start) + len(start):README.index(end)]
    assert shown == datasets_table(), ("README's datasets table is stale: paste "
                                       "sources.registry.datasets_table()")


def test_the_layout_tree_matches_the_package():
    """Every package of marketdata_assets is in README's Layout tree, and every folder or file the
    tree names exists (a move that forgets the README fails here)."""
    import re

    section = README[README.index("## Layout"):]
    tree = section[section.index("```") + 3:]
    tree = tree[:tree.index("```")]
    package = REPO / "marketdata_assets"
    top = sorted(p.name for p in package.iterdir() if (p / "__init__.py").exists())
    missing = [name for name in top if f"{name}/" not in tree]
    assert not missing, f"README's Layout tree lacks {missing}"
    named = set(re.findall(r"\b([a-z_]+)/", tree)) - {"marketdata_assets", "docs", "bench", "tests", "scripts",
                                                       "docker"}
    folders = {p.name for p in package.rglob("*") if p.is_dir() and (p / "__init__.py").exists()}
    assert not named - folders, f"README's Layout tree names folders that don't exist: {sorted(named - folders)}"
    files = set(re.findall(r"\b([a-z_]+\.py)\b", tree))
    present = {p.name for p in package.rglob("*.py")}
    assert not files - present, f"README's Layout tree names files that don't exist: {sorted(files - present)}"
