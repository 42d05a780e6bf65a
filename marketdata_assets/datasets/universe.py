"""A universe is a rule: per venue, which instruments of its point-in-time master belong to it (types,
quote, settlement or base currencies, statuses, include and exclude lists, and optionally only the top N
by the venue's 24 h volume), resolved per day from what was listed that day, so history has no
survivorship bias and a new listing joins without an edit. The sources file declares the rules
(`universes.crypto.rules`); `resolve` applies one to a day, the volume snapshots passed in (no I/O here).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import NamedTuple

from marketdata_assets.datasets.instruments import STATUSES, TYPES, Instrument, Master
from marketdata_assets.datasets.volumes import Snapshot, Volumes


@dataclass(frozen=True)
class UniverseRule:
    """Which instruments of one venue belong to the universe; an empty selector does not select."""

    venue: str
    types: tuple[str, ...] = ()  # spot | perpetual | future | option (empty: every type)
    quotes: tuple[str, ...] = ()  # quote currencies (USDT, ...)
    settles: tuple[str, ...] = ()  # settlement currencies (USDT for linear swaps, BTC for inverse)
    bases: tuple[str, ...] = ()  # base currencies (BTC and ETH options)
    statuses: tuple[str, ...] = ()  # the status that day (live, suspended, ...; empty: any but ended)
    include: tuple[str, ...] = ()  # always in, on the days the venue listed them
    exclude: tuple[str, ...] = ()  # never in
    explicit: tuple[str, ...] = field(default=())  # the sources file's explicit list: in on its listed days
    top: int | None = None  # only the N the selectors admit with the largest 24 h volume

    def __post_init__(self):
        for name, words, known in (("type", self.types, TYPES), ("status", self.statuses, STATUSES)):
            unknown = sorted(set(words) - set(known))
            if unknown:
                raise ValueError(
                    f"universe rule of {self.venue}: {name}(s) {', '.join(unknown)} are not one of "
                    f"{', '.join(known)}"
                )
        if self.top is not None and (
            isinstance(self.top, bool) or not isinstance(self.top, int) or self.top < 1
        ):
            raise ValueError(f"universe rule of {self.venue}: top is {self.top!r}, not a whole number >= 1")

    @property
    def text(self) -> str:
        """The rule as the sources file gives it ("types spot; quotes USDT; top 20"), or "no rule"."""
        parts = [
            f"{name} {', '.join(getattr(self, name))}"
            for name in ("types", "quotes", "settles", "bases", "statuses", "include", "exclude")
            if getattr(self, name)
        ] + ([f"top {self.top}"] if self.top is not None else [])
        return "; ".join(parts) if self.selects else "no rule"

    @property
    def selects(self) -> bool:
        """The rule selects by reference data (not only an explicit list)."""
        return bool(self.types or self.quotes or self.settles or self.bases or self.statuses or self.include)

    def admits(self, item: Instrument) -> bool:
        if item.instrument in self.exclude:
            return False
        if item.instrument in self.include:
            return True
        return self.selected(item)

    def selected(self, item: Instrument) -> bool:
        """The selectors (not include or exclude) admit it."""
        return bool(self.types or self.quotes or self.settles or self.bases or self.statuses) and all(
            (
                not self.types or item.type in self.types,
                not self.quotes or item.quote in self.quotes,
                not self.settles or item.settle in self.settles,
                not self.bases or item.base in self.bases,
                not self.statuses or item.status in self.statuses,
            )
        )


@dataclass(frozen=True)
class Cut:
    """How a day's top N was made: from which snapshot, and how many instruments it ranked and kept."""

    top: int
    snapshot: Snapshot | None  # None: the venue has no volume snapshot (none is taken by volume)
    admitted: int  # the selectors admitted that day (before the cut)
    ranked: int  # of them with a volume in the snapshot
    kept: int  # after the cut
    units: tuple[str, ...]  # the currencies the ranked volumes count (more than one: not comparable)

    @property
    def text(self) -> str:
        """ "top 20 by 24 h volume as of 2026-11-25 00:10 UTC", with a look-ahead or no snapshot said."""
        if self.snapshot is None:
            return (
                f"top {self.top} by 24 h volume: no volume snapshot (refresh the instrument master: "
                "`marketdata instruments`), none taken by volume"
            )
        text = f"top {self.top} by 24 h volume as of {self.snapshot.taken:%Y-%m-%d %H:%M} UTC"
        if self.snapshot.look_ahead:
            text += " — after the day: look-ahead"
        if len(self.units) > 1:
            text += f" (volumes in {', '.join(self.units)}: not comparable)"
        return text


def top_cut(
    rule: UniverseRule, selected: list[Instrument], snapshot: Snapshot | None
) -> tuple[list[str], Cut]:
    """The `rule.top` instruments of `selected` with the largest volume in `snapshot` (ties: by name); one
    without a volume there is not ranked. No snapshot: none."""
    volumes = snapshot.volumes if snapshot is not None else {}
    ranked = sorted(
        (item.instrument for item in selected if item.instrument in volumes),
        key=lambda name: (-volumes[name].quote_volume, name),
    )
    kept = ranked[: rule.top]
    units = tuple(sorted({volumes[name].unit for name in ranked}))
    return kept, Cut(rule.top or 0, snapshot, len(selected), len(ranked), len(kept), units)


class Day(NamedTuple):
    """One venue's universe on one day, and how it came about."""

    names: list[str]  # in the universe, sorted
    listed: list[Instrument]  # what the venue listed that day, as described that day
    admitted: list[Instrument]  # of them, what the rule admitted (before a top-N cut)
    cut: Cut | None  # the top-N cut, if the rule has one
    by_rule: list[str]  # in by the rule (selectors, include; after the cut)
    explicit: list[str]  # in by the explicit list (listed that day, or unknown to the master)
    not_listed: list[str]  # explicit instruments the master knows and that were not listed that day
    look_ahead: list[str]  # in only because today's listing stands in for a day before first sight


def resolution(master: Master, rule: UniverseRule, day: date, volumes: Volumes | None = None) -> Day:
    """The universe of `rule`'s venue on `day`: the explicit instruments listed that day (one the master has
    never seen: in, it cannot tell) and what the rule admits of what the venue listed that day (as
    described that day; with `top`, the N the selectors admit with the largest 24 h volume in the snapshot
    `day` uses, and the included ones)."""
    listed = master.listed_on(rule.venue, day)
    on_day = {item.instrument for item in listed}
    admitted = [item for item in listed if rule.admits(item)] if rule.selects else []
    cut = None
    if rule.top is None:
        by_rule = {item.instrument for item in admitted}
    else:
        snapshot = volumes.for_day(rule.venue, day) if volumes is not None else None
        kept, cut = top_cut(rule, [item for item in admitted if rule.selected(item)], snapshot)
        by_rule = set(kept) | {item.instrument for item in admitted if item.instrument in rule.include}
    wanted = [name for name in dict.fromkeys(rule.explicit) if name not in rule.exclude]
    known = [name for name in wanted if master.history(rule.venue, name)]
    explicit = [name for name in wanted if name in on_day or name not in known]
    names = sorted(by_rule | set(explicit))
    return Day(
        names,
        listed,
        admitted,
        cut,
        sorted(by_rule),
        sorted(explicit),
        sorted(name for name in known if name not in on_day),
        master.look_ahead(rule.venue, day, names),
    )


def resolve(master: Master, rule: UniverseRule, day: date, volumes: Volumes | None = None) -> list[str]:
    """The instruments of `rule`'s venue in the universe on `day` (`resolution`), sorted."""
    return resolution(master, rule, day, volumes).names


def explain(
    master: Master, rule: UniverseRule, day: date, volumes: Volumes | None = None
) -> dict[str, int | str]:
    """How `resolve` came to its answer on `day`: listed, in by the rule, in by the explicit list, in all
    (an instrument in by both counts in each); with `top`, the count before and after the cut and which
    snapshot it used (`Cut.text`); the instruments standing in by today's listing (look-ahead)."""
    found = resolution(master, rule, day, volumes)
    out: dict[str, int | str] = {
        "listed": len(found.listed),
        "by rule": len(found.by_rule),
        "explicit": len(found.explicit),
        "in the universe": len(found.names),
    }
    if found.not_listed:
        out["explicit not listed"] = len(found.not_listed)
    if found.look_ahead:
        out["look-ahead"] = len(found.look_ahead)
    if found.cut is not None:
        out.update(
            {
                "before the cut": found.cut.admitted,
                "with a volume": found.cut.ranked,
                "after the cut": found.cut.kept,
                "top": found.cut.text,
            }
        )
    return out


__all__ = ["Cut", "Day", "UniverseRule", "explain", "resolution", "resolve", "top_cut"]
