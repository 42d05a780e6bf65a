"""The README's sample of `make run`'s output, taken from a real run and checked against the code.

Every `make run` / `make materialize` writes what it printed to ``$MARKETDATA_STATE_DIR/make-run.txt``
(:func:`record`); ``python -m marketdata_assets.apps.readme paste`` puts that transcript into the README
between its markers. :func:`parse_step` reads a step line back into a launch Outcome, so a test can
render it again with the code's own format and add the figures up against the summary line.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from marketdata_assets.core import settings
from marketdata_assets.core.files import atomic_write_bytes

BEGIN, END = "<!-- make-run-output:begin -->", "<!-- make-run-output:end -->"
README = settings.PROJECT_ROOT / "README.md"
STEP = re.compile(
    r"^\[(?P<status>ok|partial|checks failed|FAILED)\] (?P<label>.+?): (?P<assets>\d+) assets?(?:, "
    r"(?P<partitions>\d+) partitions?)?, (?P<rows>[\d,]+) rows(?: \((?P<unchanged>[\d,]+) unchanged\))?(?:, "
    r"(?P<files>[\d,]+) files written)?(?:, (?P<passed>\d+)/(?P<checks>\d+) checks passed(?: "
    r"\((?P<warned>\d+) warnings?\))?)?, (?P<seconds>\d+\.\d) s(?P<rest>.*?)  \(run (?P<run>[0-9a-f]{8})\)$"
)
SUMMARY = re.compile(r"^make run: (?P<text>.*?), (?P<seconds>\d+\.\d) s$")


def transcript_path() -> Path:
    return settings.state_dir() / "make-run.txt"


def record(lines: list[str]) -> Path:
    """Keep what a run printed (replaced at once: a reader never sees half of it)."""
    path = transcript_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, ("\n".join(lines) + "\n").encode())
    return path


def sample_block(text: str) -> list[str]:
    """The lines between the README's markers (inside its code fence)."""
    if BEGIN not in text or END not in text:
        raise ValueError(f"the README has no {BEGIN} ... {END} block")
    block = text.split(BEGIN, 1)[1].split(END, 1)[0].strip().splitlines()
    return [line for line in block if not line.startswith("```")]


def paste(readme: Path = README, transcript: Path | None = None) -> int:
    """Replace the README's sample with the last run's transcript. Returns the number of lines pasted."""
    lines = (transcript or transcript_path()).read_text().strip().splitlines()
    text = readme.read_text()
    sample_block(text)  # the markers are there
    before, rest = text.split(BEGIN, 1)
    after = rest.split(END, 1)[1]
    atomic_write_bytes(
        readme, (before + BEGIN + "\n```\n" + "\n".join(lines) + "\n```\n" + END + after).encode()
    )
    return len(lines)


def _listed(rest: str, name: str) -> list[str]:
    found = re.search(rf"; {name}: (.*?)(?=; [a-zA-Z ]+: |$)", rest)
    return found.group(1).split(", ") if found else []


def parse_step(line: str):
    """A printed step line back into an Outcome (apps.launch), or None when it is no step line."""
    from marketdata_assets.apps.launch import Outcome

    found = STEP.match(line)
    if found is None:
        return None
    fields, rest = found.groupdict(), found.group("rest")
    warnings = _listed(rest, "warnings")
    warnings += [
        f"(more {i})" for i in range(int(fields["warned"] or 0) - len(warnings))
    ]  # the line shows 10
    outcome = Outcome(
        label=fields["label"],
        success=fields["status"] != "FAILED",
        run_id=fields["run"],
        seconds=float(fields["seconds"]),
        assets=["asset"] * int(fields["assets"]),
        partitions=["partition"] * int(fields["partitions"] or 0),
        rows=int(fields["rows"].replace(",", "")),
        files=int((fields["files"] or "0").replace(",", "")),
        unchanged=int((fields["unchanged"] or "0").replace(",", "")),
        checks_passed=int(fields["passed"] or 0),
        checks=int(fields["checks"] or 0),
        failed_partitions=_listed(rest, "failed partitions"),
        failed_checks=_listed(rest, "failed checks"),
        warnings=warnings,
    )
    outcome.degraded.extend(re.findall(r"; DEGRADED: (.*?)(?=; [a-zA-Z ]+: |$)", rest))
    # an asset's own words: up to the next of the line's sections, as one text
    for name in ("partial", "covered"):
        said = re.search(
            (
                rf"; {name}: (.*?)(?=; (?:covered|failed partitions|failed "
                r"checks|warnings|DEGRADED): |$)"
            ),
            rest,
        )
        if said:
            getattr(outcome, name).append(said.group(1))
    return outcome


def main(argv: list[str]) -> int:
    if argv != ["paste"]:
        print(
            (
                "usage: python -m marketdata_assets.apps.readme paste   (the last make run's output into "
                "README.md)"
            ),
            file=sys.stderr,
        )
        return 2
    count = paste()
    print(f"README.md: {count} lines of {transcript_path()} pasted")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
