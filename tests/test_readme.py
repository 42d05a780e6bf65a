"""The README and docs/ say what the code does: its two commands exist and CI calls the test one, every
setting is documented, the layout tree is the package, the sample of `make run` is a real run of today's
plan in the code's own format with figures that add up, the table of contents lists every section, and
every relative link (and its anchor) leads somewhere."""

from __future__ import annotations

import re
from pathlib import Path

import dagster as dg
import pytest

from marketdata_assets.apps import readme
from marketdata_assets.apps.launch import summary
from marketdata_assets.core.settings import SETTINGS

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text()
DATE = re.compile(r"\d{4}-\d{2}(-\d{2})?")


def test_every_environment_variable_is_documented():
    reference = (REPO / "docs" / "configuration.md").read_text()
    missing = [s.name for s in SETTINGS if f"`{s.name}`" not in reference]
    assert not missing, f"docs/configuration.md lacks {missing}"
    assert "(docs/configuration.md)" in README


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

    guide = (REPO / "docs" / "datasets.md").read_text()
    start, end = "<!-- datasets-table -->\n", "\n<!-- /datasets-table -->"
    shown = guide[guide.index(start) + len(start) : guide.index(end)]
    assert shown == datasets_table(), (
        "docs/datasets.md's datasets table is stale: paste sources.registry.datasets_table()"
    )


def test_the_table_of_how_far_back_each_api_serves_is_the_declarations():
    from marketdata_assets.sources.registry import reach_table

    guide = (REPO / "docs" / "quickstart.md").read_text()
    start, end = "<!-- reach-table -->\n", "\n<!-- /reach-table -->"
    shown = guide[guide.index(start) + len(start) : guide.index(end)]
    assert shown == reach_table(), (
        "docs/quickstart.md's reach table is stale: paste sources.registry.reach_table()"
    )


def test_the_layout_tree_matches_the_package():
    """Every package of marketdata_assets is in README's Layout tree, and every folder or file the
    tree names exists (a move that forgets the README fails here)."""
    import re

    section = README[README.index("## Layout") :]
    tree = section[section.index("```") + 3 :]
    tree = tree[: tree.index("```")]
    package = REPO / "marketdata_assets"
    top = sorted(p.name for p in package.iterdir() if (p / "__init__.py").exists())
    missing = [name for name in top if f"{name}/" not in tree]
    assert not missing, f"README's Layout tree lacks {missing}"
    named = set(re.findall(r"\b([a-z_]+)/", tree)) - {
        "marketdata_assets",
        "docs",
        "bench",
        "tests",
        "scripts",
        "docker",
        "deploy",
    }
    folders = {p.name for p in package.rglob("*") if p.is_dir() and (p / "__init__.py").exists()}
    assert not named - folders, (
        f"README's Layout tree names folders that don't exist: {sorted(named - folders)}"
    )
    files = set(re.findall(r"\b([a-z_]+\.py)\b", tree))
    present = {p.name for p in package.rglob("*.py")}
    assert not files - present, (
        f"README's Layout tree names files that don't exist: {sorted(files - present)}"
    )


def sample() -> list[str]:
    return readme.sample_block((REPO / "README.md").read_text())


def test_every_step_line_is_the_codes_own_rendering_and_the_summary_adds_up():
    lines = sample()
    steps = [readme.parse_step(line) for line in lines if line.startswith("[")]
    assert steps and None not in steps, [
        line for line in lines if line.startswith("[") and not readme.parse_step(line)
    ]
    for line, outcome in zip([line for line in lines if line.startswith("[")], steps):
        assert outcome.line() == line
    (last,) = [line for line in lines if line.startswith("make run: ")]
    found = readme.SUMMARY.match(last)
    assert found, last
    expected = readme.SUMMARY.match(f"make run: {summary(steps)}")
    assert found.group("text") == expected.group("text")
    # the summary adds the unrounded seconds: within half a tenth per step of the printed ones
    assert abs(float(found.group("seconds")) - float(expected.group("seconds"))) <= 0.05 * len(steps) + 0.05


def test_the_sample_runs_the_steps_the_code_plans_in_order(tmp_path, monkeypatch):
    from marketdata_assets.apps.main import plan
    from marketdata_assets.definitions import defs

    monkeypatch.setenv("MINUTE_BARS_LANDING_DIR", str(tmp_path / "minute_bars"))
    monkeypatch.setenv("BINANCE_DUMPS_LANDING_DIR", str(tmp_path / "dumps"))
    with dg.DagsterInstance.ephemeral() as instance:
        planned = [label for label, *_ in plan(defs(), instance)]
    shown = [readme.parse_step(line).label for line in sample() if line.startswith("[")]
    assert steps_of(shown) == steps_of(planned)


def steps_of(labels: list[str]) -> list[str]:
    """The labels without their dates and alpha accounts (the README's run had the default account, the
    tests' environment has more), repeats of one step (a month or an account each) counted once."""
    steps = [re.sub(r"^(alpha files <date>) \S+$", r"\1", DATE.sub("<date>", label)) for label in labels]
    return [step for i, step in enumerate(steps) if i == 0 or step != steps[i - 1]]


def test_a_step_line_that_was_edited_by_hand_does_not_parse_back():
    line = next(line for line in sample() if line.startswith("[ok]"))
    assert readme.parse_step(line.replace(" rows,", " rowz,")) is None
    edited = re.sub(
        r"(\d[\d,]*) rows", lambda m: f"{int(m.group(1).replace(',', '')) + 1:,} rows", line, count=1
    )
    assert readme.parse_step(edited).line() == edited  # a changed figure parses, but no longer adds up:
    steps = [readme.parse_step(edited if x == line else x) for x in sample() if x.startswith("[")]
    (last,) = [x for x in sample() if x.startswith("make run: ")]
    assert readme.SUMMARY.match(last).group("text") != readme.SUMMARY.match(
        f"make run: {summary(steps)}"
    ).group("text")


def test_paste_replaces_only_the_block(tmp_path):
    page = tmp_path / "README.md"
    page.write_text(f"intro\n{readme.BEGIN}\n```\nold\n```\n{readme.END}\noutro\n")
    transcript = tmp_path / "make-run.txt"
    transcript.write_text("demo mode: replays\n[ok] x: 1 asset, 0 rows, 0.1 s  (run 0123abcd)\n")
    assert readme.paste(page, transcript) == 2
    text = page.read_text()
    assert text.startswith("intro\n") and text.endswith(f"{readme.END}\noutro\n")
    assert readme.sample_block(text) == [
        "demo mode: replays",
        "[ok] x: 1 asset, 0 rows, 0.1 s  (run 0123abcd)",
    ]
    with pytest.raises(ValueError, match="no <!-- make-run-output:begin -->"):
        readme.sample_block("no markers")


def anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def headings(path: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.DOTALL)
    return [line.lstrip("#").strip() for line in text.splitlines() if re.match(r"#{1,6} ", line)]


def test_the_table_of_contents_lists_every_section_with_a_working_anchor():
    text = (REPO / "README.md").read_text()
    contents = text.split("## Contents", 1)[1].split("\n## ", 1)[0]
    listed = re.findall(r"- \[(.+?)\]\(#(.+?)\)", contents)
    sections = [h for h in headings(REPO / "README.md") if h not in ("Contents",)][1:]  # after the title
    assert [anchor for _, anchor in listed] == [globals()["anchor"](h) for h in sections]


def test_every_relative_link_in_the_readme_and_docs_leads_somewhere():
    broken = []
    for page in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        text = re.sub(r"```.*?```", "", page.read_text(), flags=re.DOTALL)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, fragment = target.partition("#")
            where = (page.parent / path).resolve() if path else page
            if not where.exists():
                broken.append(f"{page.name}: {target} (no such file)")
            elif fragment and where.suffix == ".md" and fragment not in {anchor(h) for h in headings(where)}:
                broken.append(f"{page.name}: {target} (no such heading)")
    assert not broken, "\n".join(broken)
