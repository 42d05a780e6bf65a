"""What the sources config file (data_providers.yaml) may hold: every key, declared once.

The tree `SCHEMA` (`Section`s of `Option`s, sources/interface.py) is what sources/config.py
validates the file with: a key not declared here is an error, a value is checked against its
declaration and the error says the declaration's `rule()`, with the key's path and the file. The
same tree is the file's reference (`reference()`, a section of docs/configuration.md written by
apps/configuration.py), so the two cannot drift. A source's own keys are declared in its package
(`Source.options`); the keys every source entry has are `COMMON` here.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from marketdata_assets.core.markdown import prose, table
from marketdata_assets.sources.binance_vision.archive_settings import (
    ARCHIVE_FAMILIES,
    ARCHIVE_INTERVALS,
    ARCHIVE_MARKETS,
)
from marketdata_assets.sources.interface import Option, Source
from marketdata_assets.sources.registry import SOURCES

SECTION, OLD_SECTION = (
    "sources",
    "providers",
)  # the file's top-level key of the sources: its name, its former one
DECLARED: dict[str, Source] = {s.config: s for s in SOURCES.values() if s.config}  # entry -> its declaration
# Sources a file written before they existed may leave out: the vendor's defaults.
OPTIONAL_SOURCES = {
    "binance_um": {"base_url": "https://fapi.binance.com", "base_url_env": "BINANCE_UM_BASE_URL"}
}


@dataclass(frozen=True)
class Section:
    """A mapping of the file: its keys, each an `Option` or a nested `Section`."""

    description: str
    keys: Mapping[str, Option | Section]
    required: bool = False


COMMON: dict[str, Option] = {
    "base_url": Option(None, "url", required=True, description="The vendor's public host."),
    "base_url_env": Option(
        "<ENTRY>_BASE_URL",
        "text",
        description=(
            "The variable that, when set and not empty, replaces base_url (tests and `make run` point it at "
            "the replays)."
        ),
    ),
    "requests_per_minute": Option(
        600.0,
        description=("Token bucket shared by every request of the run (one client per source and run)."),
    ),
    "max_concurrency": Option(4, "integer", minimum=1, description="Requests in flight at once."),
    "workers": Option(
        4,
        "integer",
        minimum=1,
        description=(
            "Instruments (or instrument-days) processed at once (`marketdata ingest --workers` overrides it)."
        ),
    ),
    "timeout_s": Option(30.0, description="Seconds per request."),
    "max_retries": Option(
        5,
        "integer",
        minimum=0,
        description=(
            "Retries of 429/418 (after Retry-After), 5xx and timeouts; a ban or a permission error stops the "
            "source for the rest of the run."
        ),
    ),
    "backoff_base_s": Option(
        0.5,
        inclusive=True,
        description=("First backoff step in seconds, doubled per retry, with full jitter."),
    ),
}


def _entry(name: str, source: Source) -> Section:
    what = f"{source.name}: {', '.join(sorted(source.datasets))}"
    return Section(what, {**COMMON, **source.options}, required=name not in OPTIONAL_SOURCES)


def _universe(start: str, what: str) -> dict[str, Option]:
    return {
        "history_start": Option(start, "date", description="The first day partition."),
        "symbols": Option([], "list", nullable=True, description=f"{what} (duplicates dropped)."),
        "symbols_file": Option(
            None,
            "text",
            nullable=True,
            description=("A file listing more, one a line (`#` starts a comment), relative to this file."),
        ),
    }


FUNDING_CAP = Option(None, maximum=1.0, description="|funding rate| cap of a venue, as an 8-hour rate.")
CRYPTO = {
    "history_start": Option("2022-01-01", "date", description="The first day partition."),
    "book_depth": Option(20, "integer", minimum=1, description="Book levels per side of a snapshot."),
    "instruments": Option(
        {},
        "mapping",
        description=(
            "VENUE: [instrument, ...] for the venues "
            + ", ".join(s.name for s in DECLARED.values() if s.venue_api)
            + "; each checked against its venue. The partitions VENUE:INSTRUMENT of `crypto_instruments`."
        ),
    ),
    "rules": Option(
        {},
        "mapping",
        description=(
            "VENUE: {types, quotes, settles, bases, statuses, include, exclude, top}: the venue's universe "
            "as a rule over its point-in-time instrument master (the `instrument_master` asset), resolved "
            "per day from what was listed that day (`top: 20`: only the 20 the selectors admit with the "
            "largest 24 h volume in the snapshot taken before the day ended; `statuses` in the master's "
            "words or the venue's own, as TRADING); with the explicit `instruments` (in on the days the "
            "master has them listed; one it never saw: every day). docs/instruments.md."
        ),
    ),
    "option_chains": Option(
        {},
        "mapping",
        description=(
            "DERIBIT: [BTC, ETH, ...]: the option chains snapshotted (partitions DERIBIT:BTC-OPTIONS, ...)."
        ),
    ),
    "funding_caps": Option(
        {},
        "mapping",
        description=(
            "VENUE: cap, each "
            + FUNDING_CAP.rule()
            + ": the funding_inside_cap check's |rate| cap as an 8-hour "
            "rate."
        ),
    ),
}
ARCHIVES = {
    "base_url": Option("https://data.binance.vision", "url", description="The archives' host."),
    "base_url_env": Option(
        "BINANCE_ARCHIVE_BASE_URL", "text", description="The variable that replaces base_url."
    ),
    "start_date": Option("2025-01-01", "date", description="The first day partition."),
    "markets": Option(
        ["spot"],
        "list",
        choices=tuple(ARCHIVE_MARKETS),
        description=(
            "spot -> venue BINANCE, um (USD-M futures) -> BINANCE_UM (COIN-M archives are not loaded)."
        ),
    ),
    "families": Option(
        ["trades"],
        "list",
        choices=ARCHIVE_FAMILIES,
        description=(
            "trades -> trades, aggTrades -> agg_trades, klines -> bars_1m and klines_<interval>, "
            "liquidationSnapshot -> liquidations (USD-M, published about 2023-06 to 2024-03)."
        ),
    ),
    "intervals": Option(
        ["1m"],
        "list",
        choices=ARCHIVE_INTERVALS,
        description=("With klines: the daily files' intervals (3d, 1w and 1mo are published monthly only)."),
    ),
    "instruments": Option(
        None, "list", required=True, description="Binance instruments, each in every market."
    ),
    "workers": Option(2, "integer", minimum=1, description="Archives downloaded at once."),
    "timeout_s": Option(60.0, description="Seconds per read of a download."),
    "max_retries": Option(5, "integer", minimum=0, description="Retries of 429, 5xx and broken transfers."),
}
DEFAULT_ARCHIVES = {"instruments": ["BTCUSDT"]}  # no section: spot trades of BTCUSDT from 2025-01-01

SCHEMA = Section(
    "The sources config file.",
    {
        SECTION: Section(
            f"An entry per declared source (`{OLD_SECTION}:`, its former name, is read too; not both).",
            {name: _entry(name, source) for name, source in DECLARED.items()},
            required=True,
        ),
        "universes": Section(
            "What is fetched: the instruments and how far back.",
            {
                "a_shares": Section(
                    "Tushare A-share bars (absent: none).",
                    {
                        **_universe(
                            "2024-01-01", "A-share codes in any spelling (sh600000, 600000.XSHG -> 600000.SH)"
                        ),
                        "rules": Option(
                            {},
                            "mapping",
                            description=(
                                "SSE | SZSE | BSE: {types, statuses, include, exclude}: the exchange's "
                                "codes as a rule over the point-in-time instrument master (Tushare "
                                "stock_basic, listed and delisted: the `instrument_master` asset with "
                                "TUSHARE_TOKEN set), resolved per China day from what was listed that day; "
                                "with the explicit `symbols` (in on the days they were listed). "
                                "docs/instruments.md."
                            ),
                        ),
                    },
                ),
                "yahoo": Section(
                    "Yahoo chart v8 1-minute bars (absent: none).",
                    _universe("2025-01-01", "Yahoo's names (AAPL, VOD.L)"),
                ),
                "crypto": Section("The crypto venues (absent: none).", CRYPTO),
            },
            required=True,
        ),
        "catch_up_days": Option(
            7,
            "integer",
            minimum=1,
            description=(
                "The catch-up schedules look back this many days for partitions that are missing or failed."
            ),
        ),
        "binance_archives": Section(
            "data.binance.vision daily and monthly archives, verified by SHA-256 (absent: "
            "spot trades of BTCUSDT from 2025-01-01).",
            ARCHIVES,
        ),
    },
)


def options(section: Section = SCHEMA, prefix: str = "") -> Iterator[tuple[str, Option]]:
    """Every declared key as (path, Option), depth first: ('sources.binance.weight_per_minute', ...)."""
    for key, value in section.keys.items():
        path = f"{prefix}{key}"
        if isinstance(value, Section):
            yield from options(value, f"{path}.")
        else:
            yield path, value


def shown(value: Any, option: Option | None = None) -> str:
    """A default as the reference shows it."""
    if option is not None and option.required:
        return "required"
    if value is None:
        return "null" if option is not None and option.nullable else "*(none)*"
    if isinstance(value, list | tuple):
        return f"`[{', '.join(map(str, value))}]`"
    if isinstance(value, dict):
        return "`{}`" if not value else f"`{value}`"
    if isinstance(value, float) and value.is_integer():
        return f"`{int(value)}`"
    return f"`{value}`"


def _rows(section: Section, prefix: str) -> Iterator[tuple[str, str, str, str]]:
    for key, value in section.keys.items():
        path = f"{prefix}{key}"
        if isinstance(value, Section):
            yield (
                f"`{path}`",
                "a mapping",
                "required" if value.required else "*(absent)*",
                prose(value.description),
            )
            yield from _rows(value, f"{path}.")
        else:
            yield f"`{path}`", value.rule(), shown(value.default, value), prose(value.description)


def reference() -> str:
    """The file's keys as Markdown: the source entries, the keys every entry has, each source's own keys,
    then every other key (path, valid values, default, meaning)."""
    columns = ["key", "valid values", "default", "meaning"]
    sources = SCHEMA.keys[SECTION]
    entries = table(
        ["entry", "source", "venues", "datasets", "in the file", "its own keys"],
        (
            (
                f"`{name}`",
                s.name,
                ", ".join(s.venues) or "any Yahoo lists",
                ", ".join(sorted(s.datasets)),
                "required"
                if sources.keys[name].required
                else "optional (absent: "
                + ", ".join(f"{k} {v}" for k, v in OPTIONAL_SOURCES[name].items())
                + ")",
                ", ".join(f"`{k}`" for k in s.options) or "-",
            )
            for name, s in DECLARED.items()
        ),
    )
    common = table(
        columns,
        (
            (f"`{SECTION}.<entry>.{key}`", o.rule(), shown(o.default, o), prose(o.description))
            for key, o in COMMON.items()
        ),
    )
    own = table(
        columns,
        (
            (f"`{SECTION}.{name}.{key}`", o.rule(), shown(o.default, o), prose(o.description))
            for name, s in DECLARED.items()
            for key, o in s.options.items()
        ),
    )
    rest = Section("", {k: v for k, v in SCHEMA.keys.items() if k != SECTION})
    return "\n\n".join(
        [
            f"### `{SECTION}`: an entry per source\n\n{prose(sources.description)} The sources without an "
            "entry read files (their landing directories are environment variables) or the alpha API (its "
            "variables ALPHA_API_*).\n\n" + entries,
            (
                "### Keys of every entry\n\n`<ENTRY>` in a default is the entry's name, "
                f"upper-cased.\n\n{common}"
            ),
            f"### Keys of one source\n\nDeclared with the source (`Source.options` in its package).\n\n{own}",
            f"### Universes, catch-up and archives\n\n{table(columns, _rows(rest, ''))}",
        ]
    )
