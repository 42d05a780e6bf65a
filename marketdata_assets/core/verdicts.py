"""The verdict of a load, one vocabulary for a partition and a run: ok, partial (some of it stored, the
rest named with why), not loadable from this source (nothing stored: where its data comes from is named)
or failed. The partition's materialization (or the run's failure naming it), the run's tag, the console
line and the command's exit code all say it (docs/ticks.md, "One verdict per partition")."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

OK, PARTIAL, NOT_LOADABLE, FAILED = "ok", "partial", "not loadable", "failed"
ORDER = (OK, PARTIAL, NOT_LOADABLE, FAILED)  # from best to worst
RUN_TAG = "marketdata/verdict"  # a successful run's verdict: ok | partial
EXIT_CODES = {OK: 0, PARTIAL: 4, NOT_LOADABLE: 1, FAILED: 1}  # the `marketdata` command's (docs/cli.md)


@dataclass(frozen=True)
class Verdict:
    """What a partition's load came to: `reason` names what is not stored and why, `loads_from` where the
    slices this source cannot load come from."""

    status: str = OK
    reason: str = ""
    loads_from: str = ""

    @property
    def stored(self) -> bool:
        """Whether something of it is stored (ok, partial): the partition is materialized."""
        return self.status in (OK, PARTIAL)

    def text(self) -> str:
        """The reason with where the rest comes from, in one sentence (no '; ': a console line's
        separator)."""
        return self.reason + (f". Loads from: {self.loads_from}" if self.loads_from else "")


def judge(stored: int, not_loadable: str = "", failed: str = "", loads_from: str = "") -> Verdict:
    """A partition's verdict from its slices: `stored` how many are stored (loaded now or held from an
    earlier or more faithful load), `not_loadable` / `failed` what this source could not load / what failed
    ('' when none). A partition with no slice at all had nothing to store: ok."""
    missing = ", ".join(text for text in (failed, not_loadable) if text)
    where = loads_from if not_loadable else ""
    if not missing:
        return Verdict(OK)
    if stored:
        return Verdict(PARTIAL, missing, where)
    return Verdict(FAILED if failed else NOT_LOADABLE, missing, where)


def worst(statuses: Iterable[str]) -> str:
    """The worst of `statuses` (ok when none): a run's verdict from its partitions'."""
    return max(statuses, key=ORDER.index, default=OK)
