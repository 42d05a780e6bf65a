"""A universe is a rule: per venue, which instruments of its point-in-time master belong to it (types,
quote, settlement or base currencies, statuses, include and exclude lists), resolved per day from what
was listed that day, so history has no survivorship bias and a new listing joins without an edit.
The sources file declares the rules (`universes.crypto.rules`); `resolve` applies one to a day.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from marketdata_assets.datasets.instruments import TYPES, Instrument, Master


@dataclass(frozen=True)
class Rule:
    """Which instruments of one venue belong to the universe; an empty selector does not select."""

    venue: str
    types: tuple[str, ...] = ()        # spot | perpetual | future | option (empty: every type)
    quotes: tuple[str, ...] = ()       # quote currencies (USDT, ...)
    settles: tuple[str, ...] = ()      # settlement currencies (USDT for linear swaps, BTC for inverse)
    bases: tuple[str, ...] = ()        # base currencies (BTC and ETH options)
    statuses: tuple[str, ...] = ()     # the status that day (live, suspended, ...; empty: any but ended)
    include: tuple[str, ...] = ()      # always in, on the days the venue listed them
    exclude: tuple[str, ...] = ()      # never in
    explicit: tuple[str, ...] = field(default=())  # the sources file's explicit list: in on every day

    def __post_init__(self):
        unknown = sorted(set(self.types) - set(TYPES))
        if unknown:
            raise ValueError(f"universe rule of {self.venue}: type(s) {', '.join(unknown)} are not one of "
                             f"{', '.join(TYPES)}")

    @property
    def selects(self) -> bool:
        """The rule selects by reference data (not only an explicit list)."""
        return bool(self.types or self.quotes or self.settles or self.bases or self.statuses or self.include)

    def admits(self, item: Instrument) -> bool:
        if item.instrument in self.exclude:
            return False
        if item.instrument in self.include:
            return True
        return bool(self.types or self.quotes or self.settles or self.bases or self.statuses) and all((
            not self.types or item.type in self.types, not self.quotes or item.quote in self.quotes,
            not self.settles or item.settle in self.settles, not self.bases or item.base in self.bases,
            not self.statuses or item.status in self.statuses))


def resolve(master: Master, rule: Rule, day: date) -> list[str]:
    """The instruments of `rule`'s venue in the universe on `day`: the explicit list, and what the rule
    admits of what the venue listed that day (as described that day), sorted."""
    chosen = {name for name in rule.explicit if name not in rule.exclude}
    if rule.selects:
        chosen |= {item.instrument for item in master.listed_on(rule.venue, day) if rule.admits(item)}
    return sorted(chosen)


def explain(master: Master, rule: Rule, day: date) -> dict[str, int]:
    """How `resolve` came to its answer on `day`, as counts: listed, admitted by the rule, explicit, in all."""
    listed = master.listed_on(rule.venue, day) if rule.selects else []
    admitted = [i for i in listed if rule.admits(i)]
    return {"listed": len(listed), "by rule": len(admitted), "explicit": len(rule.explicit),
            "in the universe": len(resolve(master, rule, day))}


__all__ = ["Rule", "explain", "resolve"]
