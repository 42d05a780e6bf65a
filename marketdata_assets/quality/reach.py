"""Slices older than their venue's REST history reaches (sources.venues `beyond_reach`: the source's
declared `Reach`): a run cannot fetch them. `unreached` tells which of them nothing stored covers (no
active load of any source: the archives, or a load of when the day was in reach, would cover it) and
says where older days come from (`loads_from`: with the command that loads them); crypto_ticks judges
each partition by it (its verdict: core.verdicts), and the WARN check `within_rest_reach` judges each day
x venue partition by it (its configured instruments).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from marketdata_assets.datasets.slices import SliceKey
from marketdata_assets.quality.checks import CLICKHOUSE, DAY_VENUE, WARN, Check, ClickHouse, Verdict
from marketdata_assets.quality.slice_checks import stored_day_keys
from marketdata_assets.sources.config import load_sources_config
from marketdata_assets.sources.interface import HISTORY
from marketdata_assets.sources.venues import VENUES, beyond_reach, client_class, older_from, reach_of, serves

REACH_CHECK = "within_rest_reach"
REACH_DESCRIPTION = (
    "Every slice of the day x venue (its configured instruments) lies within the venue's REST history, or is "
    "stored from elsewhere (the archives, a load of when it was in reach); the others are named with where "
    "their days come from (sources' declared reach). A WARN: data REST cannot serve, not a bad load."
)
SHOWN = 5  # slices named in a description; the metadata lists up to 50
STORED_BEYOND_REACH = "stored, past the venue's REST history"  # a held slice's why
NOT_STORED_BEYOND_REACH = "past the venue's REST history, not fetched and not stored"  # a not fetched one's
ARCHIVE_COMMAND = "marketdata backfill archives --start-date {first} --end-date {last}"


def name(key: SliceKey) -> str:
    return f"{key.venue}:{key.instrument} {key.day}"


@dataclass(frozen=True)
class Unreached:
    """Slices past their venue's REST history (`beyond`), and those of them nothing stored covers
    (`missing`)."""

    beyond: tuple[SliceKey, ...] = ()
    missing: tuple[SliceKey, ...] = ()

    def of(self, keys: Sequence[SliceKey]) -> Unreached:
        """The part of this about `keys`."""
        wanted = set(keys)
        return Unreached(
            tuple(k for k in self.beyond if k in wanted), tuple(k for k in self.missing if k in wanted)
        )

    def text(self) -> str:
        """What is missing and where it comes from, in one sentence (no '; ': a console line's separator):
        '2 slice(s) past the venue's REST history, not fetched and not stored: BINANCE_UM:BTCUSDT
        2026-08-01, ... Older days: BINANCE_UM trades (REST: 48 hours): ...'."""
        names = sorted(name(k) for k in self.missing)
        more = f" (+{len(names) - SHOWN})" if len(names) > SHOWN else ""
        return (
            f"{len(names)} slice(s) past the venue's REST history, not fetched and not stored: "
            f"{', '.join(names[:SHOWN])}{more}. Older days: {older_from(self.missing)}"
        )

    def metadata(self) -> dict:
        return {
            "beyond_rest_reach": len(self.beyond),
            "not_stored": len(self.missing),
            "slices_not_stored": sorted(name(k) for k in self.missing)[:50] or None,
            "older_days_from": older_from(self.beyond) or None,
        }


def loads_from(keys: Sequence[SliceKey]) -> str:
    """Where the days of `keys` past their venue's REST history come from (sources' declared reach), and the
    command that loads them when it is the Binance archives: 'BINANCE_UM trades (REST: 48 hours): ...
    (assets binance_archive_trades, ...): `marketdata backfill archives --start-date D --end-date D`'."""
    where = older_from(keys)
    archived = [
        k
        for k in keys
        if (reach := reach_of(k.venue, k.dataset))
        and any(a.startswith("binance_archive_") for a in reach.assets)
    ]
    if not archived:
        return where
    days = sorted(k.day for k in archived)
    return f"{where}: `{ARCHIVE_COMMAND.format(first=days[0], last=days[-1])}`"


def unreached(store: ClickHouse, keys: Sequence[SliceKey], now: datetime | None = None) -> Unreached:
    """Which of `keys` (slices of datasets their venues serve as HISTORY) are past the REST history,
    and which of those have no active load: one query per dataset with such slices."""
    beyond = beyond_reach(keys, now)
    stored: set[str] = set()
    for dataset in sorted({k.dataset for k in beyond}):
        mine = [k for k in beyond if k.dataset == dataset]
        found = stored_day_keys(
            store, dataset, sorted({str(k.day) for k in mine}), sorted({k.venue for k in mine})
        )
        stored |= {f"{dataset}|{key}" for keys_of_day in found.values() for key in keys_of_day}
    missing = [k for k in beyond if f"{k.dataset}|{k.day}|{k.venue}:{k.instrument}" not in stored]
    return Unreached(tuple(beyond), tuple(missing))


def _verdict(key: str, found: Unreached) -> Verdict:
    metadata = {"checked": key, **found.metadata()}
    if found.missing:
        return Verdict(False, f"{key}: {found.text()}", metadata, WARN)
    held = f" ({len(found.beyond)} older, stored from elsewhere)" if found.beyond else ""
    return Verdict(
        True, f"{key}: every slice within the venue's REST history or stored{held}", metadata, WARN
    )


def reach_check(asset: str, dataset: str, instruments: Callable[[], Mapping[str, Sequence[str]]]) -> Check:
    """`within_rest_reach` of a day x venue asset of `dataset`: each partition's slices (the venue's
    configured instruments whose contract has the dataset) past the REST history and not stored."""

    def judge(store: ClickHouse, partitions: list[str]) -> dict[str, Verdict]:
        configured = instruments()
        keys: dict[str, list[SliceKey]] = {}
        for key in partitions:
            day, venue = key.split("|")
            keys[key] = [
                SliceKey(dataset, venue, i, date.fromisoformat(day))
                for i in configured.get(venue, ())
                if serves(venue, dataset, i) == HISTORY
            ]
        found = unreached(store, [k for ks in keys.values() for k in ks])
        return {key: _verdict(key, found.of(ks)) for key, ks in keys.items()}

    return Check(REACH_CHECK, asset, REACH_DESCRIPTION, CLICKHOUSE, judge, DAY_VENUE)


# the datasets some venue's REST history limits, each on its crypto_ticks asset (crypto_<dataset>)
REACH_DATASETS = sorted(
    {dataset for venue in VENUES for dataset in getattr(client_class(venue), "REACH", {})}
)
CRYPTO_REACH_CHECKS = [
    reach_check(f"crypto_{dataset}", dataset, lambda: load_sources_config().crypto_instruments_by_venue())
    for dataset in REACH_DATASETS
]
