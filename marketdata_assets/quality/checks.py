"""The one shape of a data check, Dagster-free: a `Check` declares what it guards (asset, name,
description, blocking), which store it reads and how its asset is partitioned, and judges the
partitions of a run into `Verdict`s; `defs/_common/checks.py` turns a list of them into asset checks
that record one evaluation per partition.

    Check("prices_positive", "crypto_trades", "Every trade price is positive.", CLICKHOUSE,
          judge=lambda store, partitions: {key: Verdict(...) for key in partitions},
          partitioned_by=DAY_INSTRUMENT)

A judge gets the store (`ClickHouse`, a psycopg connection for TIMESCALE, `AlphaStore`) and the run's
partition keys (None for an asset without partitions, whose one verdict is keyed None), and returns a
verdict for each key; it may judge a whole range at once (the slice rules: a few queries whatever
the number of partitions). A verdict's metadata holds plain values: numbers and text, lists and
dicts (shown as JSON), `core.markdown.Markdown` (tables: values at full precision); None is left out.

Where the declarations live: quality/slice_checks.py (ClickHouse datasets: the SQL rules of
quality/slices.py and trade-id continuity), quality/minute_bars/checks.py (TimescaleDB: the K-line's
validations A-E, completeness, K-line coverage, time window, units), quality/alpha_checks.py (MongoDB).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from marketdata_assets.core.markdown import table

ERROR, WARN = "ERROR", "WARN"

# The stores a check reads, named like the resource that connects to each.
CLICKHOUSE, TIMESCALE, ALPHA_STORE = "clickhouse", "timescale", "alpha_store"

# How the guarded asset is partitioned: the shape of the keys a judge gets (None: not partitioned).
DAY_INSTRUMENT = "day|instrument"  # 'YYYY-MM-DD|VENUE:INSTRUMENT'
DAY_VENUE = "day|venue"  # 'YYYY-MM-DD|VENUE': the venue's instruments inside (crypto REST)
DAY = "day"  # 'YYYY-MM-DD'
INSTRUMENT = "instrument"  # 'VENUE:INSTRUMENT' (an option chain: 'DERIBIT:BTC-OPTIONS')
MONTH = "month"  # 'YYYY-MM-01'
HOUR = "hour"  # 'YYYY-MM-DD-HH:MM' (Dagster's hourly keys: the live hours, instruments inside)


class ClickHouse(NamedTuple):
    """A ClickHouse check's store: a clickhouse-connect client and the database of the tick tables."""

    client: Any
    database: str


class AlphaStore(NamedTuple):
    """An alpha check's store: the regular database (it holds the import ledger) and each alpha
    type's collection."""

    ledger: Any
    collections: Mapping[str, Any]


class Finding(Protocol):
    """What a quality module reports (minute_bars' MonthCompleteness, UnitCheck, MonthWindow, ...)."""

    passed: bool
    severity: str | None  # None when passed

    def description(self) -> str: ...

    def metadata(self) -> dict: ...


@dataclass(frozen=True)
class Verdict:
    passed: bool
    description: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    severity: str = ERROR  # of a failure: ERROR, or WARN (something to look at, not proof of a bad load)

    @classmethod
    def of(cls, finding: Finding) -> Verdict:
        """A finding's verdict; a passed finding has no severity of its own and is recorded as a WARN
        check (as the minute-bar checks always were)."""
        return cls(finding.passed, finding.description(), finding.metadata(), finding.severity or WARN)


Judge = Callable[[Any, Sequence[str] | None], Mapping[str | None, Verdict]]


@dataclass(frozen=True)
class Check:
    name: str
    asset: str  # the asset key it guards ('crypto_trades')
    description: str
    store: str  # CLICKHOUSE, TIMESCALE or ALPHA_STORE
    judge: Judge = field(repr=False)
    partitioned_by: str | None = (
        None  # DAY_INSTRUMENT, DAY_VENUE, DAY, INSTRUMENT, MONTH, HOUR; None: the asset is not partitioned
    )
    blocking: bool = False  # a failed ERROR stops the assets downstream in the same run

    def run(self, store: Any, partitions: Sequence[str] | None = None) -> dict[str | None, Verdict]:
        """A verdict for each partition key (for None on an asset without partitions)."""
        if (partitions is None) != (self.partitioned_by is None):
            raise ValueError(
                f"check {self.name} of {self.asset}: partitioned by {self.partitioned_by}, "
                f"asked for {partitions!r}"
            )
        keys = [None] if partitions is None else [str(key) for key in partitions]
        found = self.judge(store, None if partitions is None else keys)
        missing = [key for key in keys if key not in found]
        if missing:
            raise ValueError(f"check {self.name} of {self.asset} judged no verdict for {missing[:5]}")
        return {key: found[key] for key in keys}


def whole(judge: Callable[[Any], Verdict]) -> Judge:
    """The judge of an asset without partitions, from a function of the store."""
    return lambda store, partitions: {None: judge(store)}


def each_partition(judge: Callable[[Any, str], Verdict]) -> Judge:
    """A judge that looks at the partitions one by one, from a function of the store and a key."""
    return lambda store, partitions: {key: judge(store, key) for key in partitions}


# ---- one verdict of many instruments' (a day x venue, an hour) ---------------------------------------


def _table_cell(verdict: Verdict) -> tuple:
    meta = verdict.metadata
    return (
        "passed" if verdict.passed else "FAILED",
        meta.get("violations", ""),
        meta.get("rows_checked", ""),
        "" if verdict.passed else (verdict.description or "")[:160],
    )


def _combined(verdicts: Iterable[Verdict]) -> dict:
    """The instruments' metadata in one: numbers summed, a value all of them share kept."""
    values: dict[str, list] = {}
    for verdict in verdicts:
        for name, value in verdict.metadata.items():
            values.setdefault(name, []).append(value)
    out = {}
    for name, found in values.items():
        if all(isinstance(v, int) and not isinstance(v, bool) for v in found):
            out[name] = sum(found)
        elif all(isinstance(v, str) and v == found[0] for v in found):
            out[name] = found[0]
    return out


def instruments_verdict(key: str, verdicts: Mapping[str, Verdict]) -> Verdict:
    """One verdict of a partition holding several instruments (a day x venue, an hour) from theirs
    ('<...>|VENUE:INSTRUMENT' key -> verdict): passed when all passed; numbers summed; a table of every
    instrument; the first failure's details and description."""
    failed = [(k, v) for k, v in verdicts.items() if not v.passed]
    rows = [(k.split("|")[1], *_table_cell(v)) for k, v in sorted(verdicts.items())]
    metadata = {
        **_combined(verdicts.values()),
        "checked": key,
        "instruments": len(verdicts),
        "instruments_failed": len(failed),
        "by_instrument": table(["instrument", "verdict", "violations", "rows checked", "why"], rows),
    }
    if not failed:
        return Verdict(True, f"{key}: {len(verdicts)} instrument(s) passed", metadata)
    first = failed[0][1]
    metadata = {**{k: v for k, v in first.metadata.items() if k not in metadata}, **metadata}
    names = ", ".join(k.split("|")[1] for k, _ in failed[:5]) + (" ..." if len(failed) > 5 else "")
    severity = ERROR if any(v.severity == ERROR for _, v in failed) else WARN
    return Verdict(
        False,
        f"{len(failed)} of {len(verdicts)} instrument(s) failed ({names}): {first.description or 'failed'}",
        metadata,
        severity,
    )
