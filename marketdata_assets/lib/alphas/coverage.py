"""The alphas domain's coverage picture: account x month, how much of what the API listed reached MongoDB.

Three counts per (account, month): the alphas the API listed (the latest fetch of that partition;
unknown for a month never fetched, e.g. one that arrived as a package), the alpha files landed, and
those landed alphas stored in the type's collection. A cell is stored / max(listed, landed): an alpha
quarantined at landing (it could not be placed) or a file not imported yet both lower it. Documents
stored without a landed file are counted apart (a file deleted after its import).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from marketdata_assets.lib.alphas.api import month_window
from marketdata_assets.lib.alphas.documents import DATES_FIELD
from marketdata_assets.lib.alphas.files import month_alpha_files
from marketdata_assets.lib.charts import heatmap_svg, svg_markdown_image
from marketdata_assets.lib.markdown import table

SAMPLE = 5  # missing alpha ids named per cell


class AccountMonth(NamedTuple):
    account: str
    month: str  # YYYY-MM, New York time of dateCreated


@dataclass
class Cell:
    listed: int | None = None  # alphas the API listed at the latest fetch; None: never fetched
    landed: int = 0
    stored: int = 0
    missing: list[str] = field(default_factory=list)  # landed but not stored (first SAMPLE ids)

    @property
    def expected(self) -> int:
        return max(self.listed or 0, self.landed)

    @property
    def share(self) -> float | None:
        return min(1.0, self.stored / self.expected) if self.expected else None


@dataclass
class AlphaCoverage:
    months: list[str]
    accounts: list[str]
    cells: dict[AccountMonth, Cell]
    stored_without_file: dict[str, int]  # month -> documents whose file is not in the landing area

    @property
    def overall(self) -> float:
        expected = sum(c.expected for c in self.cells.values())
        return min(1.0, sum(c.stored for c in self.cells.values()) / expected) if expected else 1.0

    def incomplete(self) -> list[tuple[AccountMonth, Cell]]:
        return [(key, cell) for key, cell in sorted(self.cells.items()) if cell.share is not None and cell.share < 1]

    def svg(self) -> str:
        title = f"alphas stored / listed by the API, {self.months[0]}..{self.months[-1]}: {100 * self.overall:.2f}%"
        values = [[self.cells[AccountMonth(a, m)].share if AccountMonth(a, m) in self.cells else None
                   for m in self.months] for a in self.accounts]
        return heatmap_svg(title, self.accounts, [m[2:] for m in self.months], values, cell=22)

    def markdown(self) -> str:
        """The heat map, then every incomplete cell with its counts and the first missing ids."""
        rows = [(key.account, key.month, "?" if cell.listed is None else cell.listed, cell.landed, cell.stored,
                 ", ".join(cell.missing)) for key, cell in self.incomplete()]
        parts = [svg_markdown_image(self.svg(), "alphas coverage heat map")]
        if rows:
            parts.append(table(["account", "month", "API listed", "files landed", "stored", "first missing"], rows))
        return "\n\n".join(parts)


def coverage(landing_root: Path, months: list[str], accounts: Iterable[str],
             listed: Mapping[AccountMonth, int], collections: Mapping[str, object]) -> AlphaCoverage:
    """Compare the landing area and the stored documents of `months` (YYYY-MM) with the API's counts.
    `collections`: alpha type -> its pymongo collection; landed files of other types are not counted
    (the import quarantines them)."""
    cells: dict[AccountMonth, Cell] = {}
    for key, count in listed.items():
        if key.month in months:
            cells[key] = Cell(listed=count)
    stored_without_file: dict[str, int] = {}
    for month in months:
        landed: dict[str, dict[str, str]] = defaultdict(dict)  # type -> id -> account
        for name, _ in month_alpha_files(landing_root, month):
            _, alpha_type, _, account, file_name = name.split("/")
            if alpha_type in collections:
                landed[alpha_type][file_name[: -len(".json")]] = account
        start, end = month_window(month)
        extra = 0
        for alpha_type, collection in collections.items():
            stored = {doc["_id"] for doc in collection.find({f"{DATES_FIELD}.dateCreated": {"$gte": start, "$lt": end}},
                                                            {"_id": 1})}
            files = landed.get(alpha_type, {})
            extra += len(stored - files.keys())
            for alpha_id, account in sorted(files.items()):
                cell = cells.setdefault(AccountMonth(account, month), Cell())
                cell.landed += 1
                if alpha_id in stored:
                    cell.stored += 1
                elif len(cell.missing) < SAMPLE:
                    cell.missing.append(alpha_id)
        if extra:
            stored_without_file[month] = extra
    every_account = sorted(set(accounts) | {key.account for key in cells})
    return AlphaCoverage(months=months, accounts=every_account, cells=cells, stored_without_file=stored_without_file)
