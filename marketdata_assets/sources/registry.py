"""Every source, by name: the declarations of the source packages in one table (sources/interface.py
says what a declaration holds). A new source is a package with its declaration, and one line here."""

from __future__ import annotations

from urllib.parse import urlparse

from marketdata_assets.core.markdown import table
from marketdata_assets.core.settings import LIVE_GROUP, Setting
from marketdata_assets.sources import (
    alpha_api,
    binance,
    binance_vision,
    deribit,
    minute_csv,
    okx,
    tushare,
    yahoo,
)
from marketdata_assets.sources.interface import AccountApi, IdSequence, MinuteFiles, Source, StockFeed

SOURCES: dict[str, Source] = {
    s.name: s
    for s in (
        binance.SPOT,
        binance.USD_M,
        okx.OKX,
        deribit.DERIBIT,  # crypto venues (VenueClient)
        tushare.TUSHARE,
        yahoo.YAHOO,  # stock feeds
        binance_vision.DUMPS,
        binance_vision.ARCHIVES,
        minute_csv.MINUTE_CSV,  # files
        alpha_api.ALPHA_API,  # the alpha API
    )
}

STREAMS: dict[str, type] = {s.name: s.stream for s in SOURCES.values() if s.stream is not None}  # live venues
STOCK_FEEDS: dict[str, StockFeed] = {s.name: s.feed for s in SOURCES.values() if s.feed is not None}

ID_SEQUENCES = tuple(
    seq for declared in SOURCES.values() for seq in declared.id_sequences
)  # each venue's own
_SEQUENCES = {(seq.dataset, seq.venue, source): seq for seq in ID_SEQUENCES for source in seq.sources}
SEQUENCED_DATASETS = tuple(sorted({seq.dataset for seq in ID_SEQUENCES}))  # trades, agg_trades


def live_switches() -> tuple[Setting, ...]:
    """Each live venue's ENABLE_<VENUE> switch of `marketdata collect`, its default the declaration's."""
    return tuple(
        Setting(
            f"ENABLE_{name}",
            "true" if SOURCES[name].collect_by_default else "false",
            f"Collect {name} in `marketdata collect` (`--venue` wins).",
            read_by=("apps/cli/live.py",),
            group=LIVE_GROUP,
        )
        for name in STREAMS
    )


def id_sequence(venue: str, source: str, dataset: str = "trades") -> IdSequence | None:
    """The sequence of ids a load of `source` holds for `venue` in `dataset`; None: not sequential,
    or unknown."""
    return _SEQUENCES.get((dataset, venue, source))


def same_ids(one: IdSequence | None, other: IdSequence | None) -> bool:
    """Whether two declarations are of one id sequence (a venue's and a file source's share of Binance's
    trade ids are declared apart)."""
    return (
        one is not None
        and other is not None
        and (one.venue, one.name, one.dataset) == (other.venue, other.name, other.dataset)
    )


def stream_protocol(venue: str, datasets=None, instrument_service=None):
    """The live stream protocol of `venue` collecting `datasets` (None: its defaults; "all": every
    dataset it supports), sized by `instrument_service` (a venue whose sizes need reference data; None: a
    service of its own); ValueError naming the live venues for another."""
    try:
        cls = STREAMS[venue.upper()]
    except KeyError:
        raise ValueError(f"no live stream of venue {venue!r}; one of {', '.join(STREAMS)}") from None
    datasets = cls().supported if datasets == "all" else datasets
    if SOURCES[venue.upper()].sized:
        return cls(datasets=datasets, instrument_service=instrument_service)
    return cls(datasets=datasets)


def stock_feed(name: str) -> StockFeed:
    """How the equities assets plan and check the slices of stock-bar source `name`; ValueError naming
    the stock feeds for another."""
    try:
        return STOCK_FEEDS[name.upper()]
    except KeyError:
        raise ValueError(f"no stock feed {name!r}; one of {', '.join(STOCK_FEEDS)}") from None


def account_api(name: str = "ALPHA_API") -> AccountApi:
    """How the alpha assets reach the API read per account `name`; ValueError for a source that is none."""
    declared = source(name).accounts
    if declared is None:
        raise ValueError(f"source {name!r} is not read per account")
    return declared


def minute_files(name: str = "MINUTE_CSV") -> MinuteFiles:
    """How the minute-bar load reads the files of source `name`; ValueError for a source of no files."""
    declared = source(name).files
    if declared is None:
        raise ValueError(f"source {name!r} has no minute-bar files")
    return declared


def status_words(venue: str) -> dict[str, str]:
    """The instrument status words of `venue`'s own reference data (upper case) -> the master's."""
    found = next((s.statuses for s in SOURCES.values() if venue in s.venues and s.statuses), {})
    return {word.upper(): status for word, status in found.items()}


def source(name: str) -> Source:
    """The declaration of `name` (case-insensitive)."""
    try:
        return SOURCES[name.upper()]
    except KeyError:
        raise ValueError(f"unknown source {name!r}; one of {', '.join(SOURCES)}") from None


def datasets_table(names: tuple[str, ...] | None = None) -> str:
    """What each source serves, as a Markdown table (dataset x source: history | snapshot | files | -)."""
    names = names or tuple(SOURCES)
    datasets = sorted({d for name in names for d in SOURCES[name].datasets})
    klines = [d for d in datasets if d.startswith("klines_")]  # one row for the archives' other intervals
    rows = [(d, *(SOURCES[n].datasets.get(d, "-") for n in names)) for d in datasets if d not in klines[1:]]
    return table(
        ["dataset", *names],
        ((f"klines_<interval> ({len(klines)})" if r[0] in klines else r[0], *r[1:]) for r in rows),
    )


def reach_table() -> str:
    """Every source x dataset whose API history is limited, as a Markdown table (docs/quickstart.md):
    how far back it serves, where older days come from and which assets load them, the vendor's page."""
    rows = []
    for name, declared in SOURCES.items():
        for dataset, reach in sorted(declared.reach.items()):
            assets = ", ".join(f"`{asset}`" for asset in reach.assets) or "-"
            rows.append(
                (
                    name,
                    dataset,
                    reach.text,
                    reach.older_from,
                    assets,
                    f"[{urlparse(reach.doc).netloc.removeprefix('www.')}]({reach.doc})",
                )
            )
    return table(
        ["source", "dataset", "the API serves the last", "older days come from", "loaded by", "says who"],
        rows,
    )
