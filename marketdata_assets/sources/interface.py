"""What a source is to the rest of the project, one shape for all of them.

Every source package declares each source it holds as a `Source` (sources/registry.py lists them):
its name (as the ingest log, the metrics and the pools call it), the venues whose data it gives, the
datasets it serves and how (HISTORY: the rows of a time window; SNAPSHOT: the state now, added to
today's slice; FILES: files dropped or downloaded, read whole), its client class (whose `ERRORS` and
`LIMITS` are the source's error and limit tables), its entry in data_providers.yaml, how far back a
history reaches and where older days come from (`Reach`), and the config keys of its own
(`Option`). Crypto venues' clients also answer `VenueClient`: one async method per dataset,
`fetch(client, dataset, instrument, start, end)` the one way to call them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any, ClassVar, Protocol, runtime_checkable

import polars as pl

from marketdata_assets.core.http import ApiClient, RequestStats
from marketdata_assets.datasets.instrument_service import InstrumentService
from marketdata_assets.datasets.instruments import Instrument
from marketdata_assets.datasets.wire import DropCounts

HISTORY, SNAPSHOT, FILES = "history", "snapshot", "files"
# what every crypto venue's client serves: trades and minute bars back in time, books and tickers as of now
VENUE_BASICS = {"trades": HISTORY, "bars_1m": HISTORY, "books": SNAPSHOT, "tickers": SNAPSHOT}


class SizedVenueClient(ApiClient):
    """A venue client whose sizes come from the venue's reference data: the process's instrument service
    (None: one of its own) holds the versions, `lookup` asks the venue for one; `dropped` counts what each
    instrument's fetches dropped, by reason; `page_limit` records a page (at most the venue's `PAGE_MAX`)."""

    BASE_URL: ClassVar[str]  # the venue's public REST host (the default base URL)
    PAGE_MAX: ClassVar[int]  # the most records a page may hold, as the venue documents it

    def __init__(
        self,
        base_url: str | None = None,
        *,
        page_limit: int | None = None,
        instrument_service: InstrumentService | None = None,
        **kwargs,  # ApiClient's
    ):
        super().__init__(self.BASE_URL if base_url is None else base_url, **kwargs)
        self.page_limit = self.PAGE_MAX if page_limit is None else page_limit
        if not 1 <= self.page_limit <= self.PAGE_MAX:
            raise ValueError(f"page_limit: 1..{self.PAGE_MAX}")
        self.instrument_service = instrument_service or InstrumentService()
        self.dropped = DropCounts()

    async def lookup(self, instrument: str) -> list[Instrument]:
        raise NotImplementedError

    async def reference(self, instrument: str, when: datetime | None = None) -> Instrument | None:
        """The master's version of `instrument` valid at `when` (None: now), looked up at the venue once if
        never seen (at most one lookup every service interval); None if the venue does not know it."""
        return await self.instrument_service.resolve(self.name, instrument, when, self.lookup)


@runtime_checkable
class VenueClient(Protocol):
    """What every crypto venue client offers (Binance spot and USD-M, OKX, Deribit)."""

    name: str  # the venue: BINANCE | BINANCE_UM | OKX | DERIBIT
    stats: RequestStats
    DATASETS: ClassVar[dict[str, str]]  # dataset -> HISTORY | SNAPSHOT

    async def trades(self, instrument: str, start: datetime, end: datetime) -> pl.DataFrame:
        """All trades with start <= ts < end, each once, ordered by (ts, seq)."""

    async def book_snapshot(self, instrument: str, depth: int) -> pl.DataFrame:
        """The current book, `depth` levels a side (level 0 = best)."""

    async def bars_1m(self, instrument: str, start: datetime, end: datetime) -> pl.DataFrame:
        """1-minute bars opening in [start, end)."""

    async def aclose(self) -> None: ...


async def fetch(
    client: VenueClient, dataset: str, instrument: str, start: datetime, end: datetime
) -> pl.DataFrame:
    """The rows of `dataset` for `instrument` in [start, end): the client's method of that name."""
    return await getattr(client, dataset)(instrument, start, end)


@dataclass(frozen=True)
class Option:
    """A key of data_providers.yaml: its default, what a valid value is and what it does. A source
    declares its own keys with it (`Source.options`); sources/config_schema.py declares the others.
    sources/config.py validates the file with these declarations (an error names the file, the key's
    path and `rule()`), and docs/configuration.md lists them (apps/configuration.py)."""

    default: Any
    kind: str = "number"  # number | integer | text | url | date | list | mapping (see rule())
    minimum: float = 0  # number: > minimum (>= with inclusive); integer: >= minimum
    maximum: float | None = None
    nullable: bool = False  # null is a value (e.g. "no horizon")
    description: str = ""
    inclusive: bool = False
    required: bool = False  # no default: the key must be there
    choices: tuple[str, ...] = ()  # list: the values its items may take

    def rule(self) -> str:
        """What a valid value is, as errors and the reference say it: 'an integer >= 1'."""
        if self.kind == "number":
            rule = f"a number {'>=' if self.inclusive else '>'} {self.minimum:g}"
            rule += f" and <= {self.maximum:g}" if self.maximum is not None else ""
        elif self.kind == "integer":
            rule = f"an integer >= {int(self.minimum)}"
        else:
            rule = {
                "text": "a non-empty string",
                "url": "an http(s):// URL",
                "date": "a date YYYY-MM-DD",
                "mapping": "a mapping",
            }.get(self.kind, "a list")
            if self.choices:
                rule = f"a non-empty list of {', '.join(self.choices)}"
        return f"null or {rule}" if self.nullable else rule


@dataclass(frozen=True)
class Reach:
    """How far back (from now) a source's API serves a HISTORY dataset, as the vendor's docs say (`doc`),
    and where the days older than that come from: `older_from` says it (or "nowhere in this project"),
    `assets` names this project's assets that load them. A day starting before now - `span` has no
    slice at the source (sources.venues `serves`); runs count such slices and say where to look."""

    span: timedelta
    older_from: str
    doc: str  # the vendor's page stating the limit
    assets: tuple[str, ...] = ()  # the assets loading older days (none: nowhere in this project)

    @property
    def text(self) -> str:
        """The span as people say it: '48 hours', '30 days'."""
        return span_text(self.span)


def span_text(span: timedelta) -> str:
    hours = span.total_seconds() / 3600
    return f"{hours:g} hours" if hours <= 72 else f"{hours / 24:g} days"


@dataclass(frozen=True)
class IdSequence:
    """Sequential trade ids of one venue, as some sources load them (quality/continuity.py checks and
    refills them): declared by the venue, since what an id means is venue knowledge."""

    name: str
    venue: str
    sources: tuple[str, ...]  # the ingest_log sources whose loads hold these ids
    fetch: str  # the venue client's method: (instrument, first, last, *, day[, time_unit]) -> trades
    page: int  # ids one request returns at most: holes closer than this are fetched as one span
    time_units: bool  # the fetch takes time_unit= (asked as precise as the slice's stored times)
    what: str
    dataset: str = "trades"  # the dataset (table) whose `seq` column holds these ids


@dataclass(frozen=True)
class StockDays:
    """A stock feed's day partitions and when they are loaded, as plain values (defs/equities makes its
    partitions, schedules and freshness policy of them): weekdays of `days_zone`, the first from
    `history_start`; on weekdays at `loaded_at` in the exchange's `zone` (after the close) the day is
    loaded, by `fresh_by` it is due, at `catch_up_at` the recent days missing or failed are retried."""

    days_zone: str  # the zone of a partition's calendar day (Asia/Shanghai; UTC)
    zone: str  # the exchange's clock: the schedules' and the freshness policy's zone
    loaded_at: time  # a closed day is loaded then (and counts as closed for the catch-up)
    fresh_by: time  # the day's materialization is due then
    history_start: Callable[[Any], date]  # the sources config -> the first day partition
    catch_up_at: time = time(20)  # daily, every day


@dataclass(frozen=True)
class StockFeed:
    """What the equities assets, checks and schedules ask of a stock-bar source (its feeds.py), besides
    its client. Its Dagster names come from `prefix`: an asset `<prefix>_<dataset>` per dataset of the
    source, their step (`<prefix>_bars` when several), `<prefix>_bars_job`, `<prefix>_after_close`,
    `<prefix>_catch_up`; its resource and pool are the source's config entry."""

    feeds: Callable[..., list]  # (client factory, slice keys, *, workers, attempts) -> a block's Feeds
    session_bar_opens: Callable[[str, date], list[datetime]]  # the bar opens (UTC) a full day has on a venue
    block_days: int  # the days of slices planned together (one request's span at most)
    bars_a_day: int  # bars a full day has at most (a block's rows per instrument and day)
    listing: Callable[..., Any] | None = None  # (client factory, cache dir) -> today's (`codes`, `said`)
    credential_error: type[Exception] | None = None  # raised when its credential (`token`) is missing
    _: KW_ONLY
    prefix: str  # a_share, yahoo
    universe: str  # its run keys' and daily-use metadata's name (a_shares, yahoo)
    what: str  # the feed, as the daily-use list says it
    label: str  # the feed in a run's one line (`marketdata ingest`'s "[ok] A-share bars ...")
    vendor: str  # who serves it (Tushare, Yahoo), as messages name it
    days: StockDays
    assets: Mapping[str, str]  # dataset -> its asset's description
    instruments: Callable[[Any], Sequence[str]]  # the sources config -> the configured universe
    normalize: Callable[[str], str]  # an instrument as a run config spells it -> its name; ValueError
    slice_venue: Callable[[str], str] = lambda instrument: ""  # its slices' venue ("": the answer names it)
    rules: Callable[[Any], Mapping[str, Any]] | None = None  # the sources config -> venue -> UniverseRule
    loads: str = "Loads each day after its close."  # why its after-close schedule is turned on

    def asset(self, dataset: str) -> str:
        return f"{self.prefix}_{dataset}"


@dataclass(frozen=True)
class MinuteFiles:
    """What the minute-bar load and its sensor ask of a file source (its reader and vendor profiles)."""

    profiles: Callable[..., list]  # (extra profiles: a file, mappings or None) -> built-in and extra profiles
    fingerprint: Callable[..., str]  # profiles -> what tells a change of them (kept with a quarantined file)
    open: Callable[..., Any]  # (path, profiles, **options) -> the file's reader: `batches()`, `time_range()`
    time_range: Callable[..., Any]  # path -> its bars' time range (`months`), read without loading it
    write_rejects: Callable[..., Any]  # (rejected rows, path) -> the rejects file beside the source file
    rejected_days_schema: Any  # the schema of a file's rejected (instrument, day)s
    file_error: type[Exception]  # a file it cannot read: named, with its line where known


class MonthFetcher(Protocol):
    """An account API's fetch of one (account, month): every record handed to `on_alpha` as it
    arrives; the result's `stats` say what the fetch did (`as_metadata()`)."""

    async def fetch_month(
        self, account: str, month: str, *, on_alpha: Any = None, keep: bool = True
    ) -> Any: ...


@dataclass(frozen=True)
class AccountApi:
    """What the alpha assets ask of an API read per account (the alpha API), besides its client."""

    api: Callable[..., Any]  # (base url, accounts, **client options) -> the API over those accounts
    account_names: Callable[[str], list[str]]  # the accounts setting's text -> the names, checked
    accounts: Callable[[list[str]], list]  # names -> each account's credentials, from the environment
    credential_vars: Callable[[str], tuple[str, str]]  # an account -> its user and password variables
    month_window: Callable[[str], tuple[datetime, datetime]]  # "YYYY-MM" -> [start, end) in `timezone`
    timezone: tzinfo  # the zone its months and dates are in
    refusals: tuple[type[Exception], ...]  # failures no retry helps (credentials, configuration)


@dataclass(frozen=True)
class Source:
    """One source, declared once in its package."""

    name: str  # BINANCE, TUSHARE, BINANCE_DUMPS, ALPHA_API, ...
    venues: tuple[str, ...]  # the markets whose data it gives
    datasets: Mapping[str, str]  # dataset -> HISTORY | SNAPSHOT | FILES
    client: type | None = None  # its ApiClient subclass (None: files on disk)
    config: str | None = None  # its entry in data_providers.yaml
    reach: Mapping[str, Reach] = field(default_factory=dict)  # how far back a HISTORY goes
    venue_api: bool = False  # its client answers VenueClient (a crypto venue)
    options: Mapping[str, Option] = field(default_factory=dict)  # its own config keys
    stream: type | None = None  # its live WebSocket protocol (sources/stream.py StreamProtocol)
    id_sequences: tuple[IdSequence, ...] = ()  # what its trade ids are, where they count one by one
    contract: Callable[..., Any] | None = None  # a name the master never saw -> core.contracts.Contract
    statuses: Mapping[str, str] = field(default_factory=dict)  # its instrument status words -> the master's
    sized: bool = False  # its contracts are sized by its reference data: its client and stream take the
    # process's instrument service (`instrument_service=`) and its client is that venue's provider
    collect_by_default: bool = False  # `marketdata collect` runs it unless ENABLE_<NAME> says otherwise
    url_options: tuple[str, str] = ("", "")  # `marketdata collect`'s named WebSocket and REST URL options
    feed: StockFeed | None = None  # a stock-bar source: how the equities assets plan and check its slices
    accounts: AccountApi | None = None  # an API read per account: how the alpha assets reach it
    files: MinuteFiles | None = None  # minute-bar files dropped by vendors: how the minute load reads them

    @property
    def errors(self) -> Any:
        """The source's error table (`core.http.ErrorTable`), None for files on disk."""
        return getattr(self.client, "ERRORS", None)

    @property
    def limits(self) -> Any:
        """The source's default limits (`core.http.Limits`), None for files on disk."""
        return getattr(self.client, "LIMITS", None)


def venue_source(
    name: str,
    client: type,
    config: str,
    options: Mapping[str, Option] | None = None,
    stream: type | None = None,
    id_sequences: tuple[IdSequence, ...] = (),
    contract: Callable[[str], Any] | None = None,
    statuses: Mapping[str, str] | None = None,
    sized: bool = False,
    collect_by_default: bool = False,
    url_options: tuple[str, str] | None = None,
) -> Source:
    """The declaration of a crypto venue whose client names its datasets and reach itself (and, if it
    is collected live, its stream protocol; what its trade ids are; how its instrument names read). A live
    venue's URL options are `<config>_ws_url` / `<config>_rest_url` unless `url_options` names others."""
    return Source(
        name,
        (name,),
        dict(client.DATASETS),
        client,
        config,
        dict(getattr(client, "REACH", {})),
        venue_api=True,
        options=dict(options or {}),
        stream=stream,
        id_sequences=id_sequences,
        contract=contract,
        statuses=dict(statuses or {}),
        sized=sized,
        collect_by_default=collect_by_default,
        url_options=(url_options or (f"{config}_ws_url", f"{config}_rest_url")) if stream else ("", ""),
    )
