"""The alphas domain's coverage picture: account x month, how much of what the API listed is in MongoDB.

What a month should hold is the id list of its latest complete fetch (`alpha_files.read_listing`; the
alphas that could not be placed count as never stored), or the landed files of a month that was
never fetched (it arrived as a package). A cell is the share of those ids stored in their type's
collection: a quarantined alpha, a file not imported yet or a lost document lowers it. Files the
latest listing no longer names (an alpha deleted upstream, or one whose dateCreated moved to another
month) are counted apart: they are not missing data.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from marketdata_assets.core.charts import heatmap_svg, svg_markdown_image
from marketdata_assets.core.markdown import table
from marketdata_assets.datasets.alpha_files import month_alpha_files, read_listing
from marketdata_assets.sources.registry import account_api
from marketdata_assets.stores.mongo.documents import DATES_FIELD

SAMPLE = 5  # missing alpha ids named per cell
LOOKUP_LIMIT = 500  # ids outside their month looked up by `_id`; more: every `_id` is read once


class AccountMonth(NamedTuple):
    account: str
    month: str  # YYYY-MM, New York time of dateCreated


@dataclass
class Cell:
    expected: int = 0  # ids listed (+ unplaceable alphas), or files landed where never fetched
    stored: int = 0
    listed: bool = False  # False: no complete fetch of this month is on record
    unplaceable: int = 0
    not_listed: int = 0  # landed files the latest listing no longer names
    missing: list[str] = field(default_factory=list)  # expected, not stored (first SAMPLE ids)

    @property
    def share(self) -> float | None:
        return self.stored / self.expected if self.expected else None


@dataclass
class AlphaCoverage:
    months: list[str]
    accounts: list[str]
    cells: dict[AccountMonth, Cell]

    @property
    def overall(self) -> float:
        expected = sum(c.expected for c in self.cells.values())
        return sum(c.stored for c in self.cells.values()) / expected if expected else 1.0

    def incomplete(self) -> list[tuple[AccountMonth, Cell]]:
        return [
            (key, cell)
            for key, cell in sorted(self.cells.items())
            if cell.share is not None and cell.share < 1
        ]

    def svg(self) -> str:
        title = (
            f"alphas stored / listed by the API, {self.months[0]}..{self.months[-1]}: "
            f"{100 * self.overall:.2f}%"
        )
        values = [
            [
                self.cells[AccountMonth(a, m)].share if AccountMonth(a, m) in self.cells else None
                for m in self.months
            ]
            for a in self.accounts
        ]
        return heatmap_svg(title, self.accounts, [m[2:] for m in self.months], values, cell=22)

    def markdown(self) -> str:
        """The heat map, then every incomplete cell with its counts and the first missing ids."""
        rows = [
            (
                key.account,
                key.month,
                cell.expected if cell.listed else f"{cell.expected} (files; never fetched)",
                cell.stored,
                cell.unplaceable,
                ", ".join(cell.missing),
            )
            for key, cell in self.incomplete()
        ]
        parts = [svg_markdown_image(self.svg(), "alphas coverage heat map")]
        if rows:
            parts.append(
                table(["account", "month", "expected", "stored", "unplaceable", "first missing"], rows)
            )
        return "\n\n".join(parts)


class _StoredIds:
    """Which ids a type's collection holds, asked month by month: the month's documents by the
    dateCreated index (fast), then the few ids found elsewhere by `_id`; when many are left (a month
    not imported yet), every `_id` of the collection once (`$in` on SecantusDB: ~1.7 ms an id)."""

    def __init__(self, collection):
        self.collection, self.everything = collection, None
        self.of_month: dict[str, set[str]] = {}  # each month read once, whatever the accounts asking

    def among(self, ids: set[str], month: str) -> set[str]:
        if self.everything is not None:
            return ids & self.everything
        if month not in self.of_month:
            start, end = account_api().month_window(month)
            self.of_month[month] = {
                doc["_id"]
                for doc in self.collection.find(
                    {f"{DATES_FIELD}.dateCreated": {"$gte": start, "$lt": end}}, {"_id": 1}
                )
            }
        found = ids & self.of_month[month]
        rest = sorted(ids - found)
        if len(rest) > LOOKUP_LIMIT:
            self.everything = {doc["_id"] for doc in self.collection.find({}, {"_id": 1})}
            return ids & self.everything
        if rest:
            found.update(doc["_id"] for doc in self.collection.find({"_id": {"$in": rest}}, {"_id": 1}))
        return found


def coverage(
    landing_root: Path, months: list[str], accounts: Iterable[str], collections: Mapping[str, object]
) -> AlphaCoverage:
    """The grid of `months` (YYYY-MM) for `accounts` plus any account with files. `collections`:
    alpha type -> its pymongo collection; alphas of other types are not counted (the import
    quarantines them)."""
    cells: dict[AccountMonth, Cell] = {}
    lookups = {alpha_type: _StoredIds(collection) for alpha_type, collection in collections.items()}
    for month in months:
        landed: dict[str, dict[str, set[str]]] = defaultdict(
            lambda: defaultdict(set)
        )  # account -> type -> ids
        for name, _ in month_alpha_files(landing_root, month):
            if name.count("/") != 4:  # a link in place of a directory: the import quarantines it
                continue
            _, alpha_type, _, account, file_name = name.split("/")
            if alpha_type in collections:
                landed[account][alpha_type].add(file_name[: -len(".json")])
        for account in sorted(set(accounts) | landed.keys()):
            listing = read_listing(landing_root, month, account)
            if listing is None and account not in landed:
                continue
            cell = cells[AccountMonth(account, month)] = Cell(listed=listing is not None)
            if listing is not None:
                expected = {t: set(ids) for t, ids in listing["ids"].items() if t in collections}
                cell.unplaceable = int(listing.get("unplaceable", 0))
                cell.not_listed = sum(len(ids - expected.get(t, set())) for t, ids in landed[account].items())
            else:
                expected = landed[account]
            cell.expected = sum(map(len, expected.values())) + cell.unplaceable
            for alpha_type, ids in sorted(expected.items()):
                stored = lookups[alpha_type].among(set(ids), month)
                cell.stored += len(stored)
                cell.missing.extend(sorted(ids - stored)[: SAMPLE - len(cell.missing)])
    every_account = sorted(set(accounts) | {key.account for key in cells})
    return AlphaCoverage(months=months, accounts=every_account, cells=cells)
