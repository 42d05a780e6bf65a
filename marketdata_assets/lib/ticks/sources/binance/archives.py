"""data.binance.vision archives: daily and monthly `.zip` + `.zip.CHECKSUM`, fetched, verified, loaded.

Layout (binance/binance-public-data's README; the daily files: its issue #124)::

    <base>/data/spot/daily/trades/BTCUSDT/BTCUSDT-trades-2025-01-15.zip
    <base>/data/spot/monthly/aggTrades/BTCUSDT/BTCUSDT-aggTrades-2025-01.zip
    <base>/data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2025-01-15.zip
    <base>/data/futures/um/daily/trades/BTCUSDT/BTCUSDT-trades-2025-01-15.zip     (USD-M futures)

each with `<name>.CHECKSUM` beside it: `sha256sum`'s line, `<64 hex digits>  <name>`. A file that is
not published (yet, or ever) answers 404 (S3's NoSuchKey behind CloudFront). Binance replaces
archives after publication (the README's "Updates" list; issues #367 and #413: a day re-uploaded
with its missing hours), which `recheck` finds.

An archive's way (`ArchiveRun`, one job of the ingest engine per archive):

1. its CHECKSUM is read; a 404 is `ArchiveMissing`: that archive's slices fail as "missing", the
   other archives go on;
2. the zip streams into a work directory, hashed as it arrives (hashlib); a digest other than the
   published one is `ChecksumMismatch` naming the file and both digests: nothing of it is loaded;
3. the dump reader reads it (`DumpReader`: strict, streamed in batches, the spot/futures layouts);
   a daily archive's rows must all be of its day, a monthly one's of its month, cut into daily
   slices; the engine writes each slice into its dataset (`dataset_of`: trades -> `trades`,
   aggTrades -> `agg_trades`, 1m klines -> `bars_1m`, other intervals -> `klines_<interval>`; venue
   BINANCE for spot, BINANCE_UM for USD-M), replacing it atomically with the load pointer;
4. `ArchiveRun.record` writes the verified archive into `dump_archives` (DDL and reads here): url,
   digests, size, the slices it wrote and their load ids, rows, first/last id, when.

Liquidations (Binance has no REST history of them): USD-M `liquidationSnapshot` archives, daily
only, e.g. `.../futures/um/daily/liquidationSnapshot/BTCUSDT/BTCUSDT-liquidationSnapshot-2024-03-31.zip`,
into `liquidations` (venue BINANCE_UM). They stop after 2024-03-31 (binance-public-data #337; "no
longer provided", #361) and were later taken off the site (#420): such a day is a 404, "missing",
nothing is invented. Binance documents neither the files nor their columns; readers of the real
files (dev.binance.vision thread 22392, public loaders) give: a header `time,side,order_type,
time_in_force,original_quantity,price,average_price,order_status,last_fill_quantity,
accumulated_fill_quantity`, `time` in ms, side BUY|SELL (the liquidation order's), base-unit
quantities, and every line written twice (#259, #337). The columns are the `forceOrder` stream's
(at most one liquidation per symbol and second; `time` its trade time [inferred]). A row becomes:
side lower-cased; quantity = accumulated_fill_quantity (what filled; = original_quantity on every
row reported); price = average_price (the fills' average), the order's price if that is 0; amount =
price * quantity; liquidation_id = `<ts µs>-<side>-<quantity>-<price>` in plain shortest decimals
(no id in the files; unique with one row per second [inferred]); `dump_archives` first/last id: ts
µs. A line repeated verbatim is dropped as `duplicates` (an occurrence number would store each
liquidation twice); one id on lines that differ fails the file; a row that filled nothing is
dropped as `not_filled` (none reported [inferred]); a header-only file is a day without
liquidations [inferred]. COIN-M files hold contracts (100 USD for BTC, else 10 USD), not base
units: not loaded.

`recheck` reads the published CHECKSUM of every recorded archive again and reloads those whose
digest changed (the old and new digests recorded); `reconcile` compares a monthly archive, day by
day (rows, first and last id, distinct ids), with the daily slices stored, fills the days no daily
archive loaded and, only when asked, replaces mismatched days (see docs/ticks.md for why not by
default).
"""

from __future__ import annotations

import asyncio
import calendar
import hashlib
import re
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import httpx
import polars as pl

from marketdata_assets.lib import metrics
from marketdata_assets.lib.http import (
    ApiClient,
    Limits,
    Page,
    RetryPolicy,
    SourceDataError,
    SourceNotFound,
    _tallies,  # the client's and the slice's counters (what ApiClient's own requests count on)
    backoff_delay,
    parse_retry_after,
)
from marketdata_assets.lib.identifiers import clickhouse_database, sql_identifier
from marketdata_assets.lib.ticks.clickhouse_tables import LOADS, ensure_tables
from marketdata_assets.lib.ticks.config import ARCHIVE_MARKETS, ArchiveSettings
from marketdata_assets.lib.ticks.engine import Engine, Feed, IngestReport, Job, SliceKey
from marketdata_assets.lib.ticks.frames import BARS_SCHEMA, KLINES, LC, spec_for
from marketdata_assets.lib.ticks.sources.binance.dumps import LIQUIDATION_FAMILY, DumpReader

SOURCE = "BINANCE_ARCHIVE"          # the ingest_log provider of archive loads
API_NAME = "data.binance.vision"
ARCHIVES = "dump_archives"          # the table of verified archives
MARKET_PATHS = {"spot": "spot", "um": "futures/um"}
VENUE_MARKETS = {venue: market for market, venue in ARCHIVE_MARKETS.items()}
UTC = timezone.utc
_CHECKSUM = re.compile(r"([0-9a-fA-F]{64}) [ *]?(\S+)")


def dataset_of(family: str, interval: str = "") -> str:
    """The dataset an archive family (and kline interval) is loaded into."""
    if family == "trades":
        return "trades"
    if family == "aggTrades":
        return "agg_trades"
    if family == "klines" and interval == "1m":
        return "bars_1m"
    if family == "klines" and interval in KLINES:
        return KLINES[interval].name
    if family == LIQUIDATION_FAMILY and not interval:
        return "liquidations"
    raise ValueError(f"no dataset for {family} {interval}".strip())


_KINDS = {dataset_of(f, i): (f, i) for f, i in [("trades", ""), ("aggTrades", ""), ("klines", "1m"),
                                                 *(("klines", i) for i in KLINES), (LIQUIDATION_FAMILY, "")]}
FAMILY_MARKETS = {LIQUIDATION_FAMILY: ("um",)}   # families published for some markets only
DAILY_ONLY = {LIQUIDATION_FAMILY}                # families without monthly archives


def archived(key: SliceKey) -> bool:
    """Whether data.binance.vision publishes archives of the slice's kind for its market (no
    liquidations for spot): the other slices are not asked for."""
    family, _ = _KINDS[key.dataset]
    return VENUE_MARKETS.get(key.venue) in FAMILY_MARKETS.get(family, MARKET_PATHS)


def month_days(first: date) -> list[date]:
    return [first.replace(day=d) for d in range(1, calendar.monthrange(first.year, first.month)[1] + 1)]


@dataclass(frozen=True, order=True)
class ArchiveKey:
    """One archive: `day` is its day, or its month's first day for a monthly one."""

    market: str        # spot | um
    family: str        # trades | aggTrades | klines | liquidationSnapshot
    interval: str      # klines: 1m, 1h, ...; '' otherwise
    instrument: str
    period: str        # daily | monthly
    day: date

    @classmethod
    def of_slice(cls, key: SliceKey, period: str = "daily") -> ArchiveKey:
        """The archive of a slice (the daily one, or its month's)."""
        family, interval = _KINDS[key.dataset]
        day = key.day if period == "daily" else key.day.replace(day=1)
        return cls(VENUE_MARKETS[key.venue], family, interval, key.instrument, period, day)

    @property
    def name(self) -> str:
        when = self.day.isoformat() if self.period == "daily" else f"{self.day:%Y-%m}"
        return f"{self.instrument}-{self.interval or self.family}-{when}.zip"

    @property
    def path(self) -> str:
        """The URL path under the base URL."""
        interval = f"{self.interval}/" if self.family == "klines" else ""
        return (f"/data/{MARKET_PATHS[self.market]}/{self.period}/{self.family}/{self.instrument}/{interval}"
                f"{self.name}")

    @property
    def venue(self) -> str:
        return ARCHIVE_MARKETS[self.market]

    @property
    def dataset(self) -> str:
        return dataset_of(self.family, self.interval)

    def days(self) -> list[date]:
        return [self.day] if self.period == "daily" else month_days(self.day)

    def slices(self, days: Iterable[date] | None = None) -> tuple[SliceKey, ...]:
        return tuple(SliceKey(self.dataset, self.venue, self.instrument, d) for d in (self.days() if days is None
                                                                                     else days))

    def __str__(self) -> str:
        return self.path


def daily_jobs(keys: Iterable[SliceKey]) -> dict[ArchiveKey, list[date]]:
    """The daily archive of each slice, with the day it writes."""
    return {ArchiveKey.of_slice(key): [key.day] for key in keys}


def parse_checksum(text: str, name: str) -> str:
    """The lower-case hex digest of a `.CHECKSUM` file's text for the archive `name`."""
    match = _CHECKSUM.fullmatch(text.strip())
    if not match:
        raise ValueError(f"{name}.CHECKSUM is not '<sha256 hex>  <file name>': {text.strip()[:160]!r}")
    if match[2] != name:
        raise ValueError(f"{name}.CHECKSUM is the checksum of {match[2]!r}, not of {name!r}")
    return match[1].lower()


class ArchiveMissing(SourceNotFound):
    """The archive (or its CHECKSUM) is not published: 404. Not retried."""

    def __init__(self, key: ArchiveKey, url: str, detail: str):
        super().__init__(API_NAME, key.instrument, 404, "NoSuchKey", detail, request=f"GET {url}")
        self.key = key
        self.args = (f"missing: {key.name} is not published ({url} answers HTTP 404 {detail}); nothing loaded",)


class ChecksumMismatch(SourceDataError):
    """The downloaded archive's SHA-256 is not the published one: nothing of it is loaded."""

    def __init__(self, key: ArchiveKey, url: str, expected: str, actual: str, size: int):
        super().__init__(key.instrument, key.day, f"{key.name}: SHA-256 mismatch: expected {expected} (published in "
                         f"{key.name}.CHECKSUM), got {actual} ({size:,} bytes from {url}); nothing loaded",
                         source=API_NAME)
        self.key, self.expected, self.actual = key, expected, actual


def _s3_code(body: str) -> str:
    found = re.search(r"<Code>([^<]{1,64})</Code>", body)
    return found[1] if found else body.strip()[:80]


# --------------------------------------------------------------------------------------------
# The client: checksums through ApiClient's one path, archives streamed to disk and hashed
# --------------------------------------------------------------------------------------------

class ArchiveClient(ApiClient):
    api_name = API_NAME
    metrics_source = "binance_archive"
    LIMITS = Limits(requests_per_minute=600, max_concurrency=4)
    CHUNK = 1 << 20

    def __init__(self, base_url: str = "https://data.binance.vision", **kwargs):
        super().__init__(base_url, **kwargs)

    @classmethod
    def from_settings(cls, settings: ArchiveSettings, **overrides) -> ArchiveClient:
        base_url = overrides.pop("base_url", None) or settings.base_url
        options = {"max_concurrency": settings.workers, "timeout_s": settings.timeout_s,
                   "retry": RetryPolicy(max_retries=settings.max_retries), **overrides}
        return cls(base_url, **options)

    def url(self, key: ArchiveKey, suffix: str = "") -> str:
        return f"{self.base_url}{key.path}{suffix}"

    async def published(self, key: ArchiveKey) -> str:
        """The digest in the archive's CHECKSUM; ArchiveMissing on a 404 (429/5xx retried)."""
        page = Page(API_NAME, key.instrument, key.day, f"GET {self.url(key, '.CHECKSUM')}")
        response = await self.request("GET", key.path + ".CHECKSUM")
        if response.status_code == 404:
            raise ArchiveMissing(key, self.url(key, ".CHECKSUM"), _s3_code(response.text))
        if response.status_code != 200:
            kind = self.ERRORS.classify(response.status_code, None, response.text[:200])
            raise self.make_error(kind, status=response.status_code, code=None, message=response.text[:200], page=page)
        try:
            return parse_checksum(response.text, key.name)
        except ValueError as error:
            raise page.error(str(error)) from None

    async def download(self, key: ArchiveKey, dest: Path) -> tuple[str, int]:
        """Stream the archive into `dest`, hashing it as it arrives: (sha256 hex, bytes). 429/418
        (Retry-After), 5xx and broken or cut transfers are retried with backoff like `call()`; a
        404 is ArchiveMissing; another status the error the source's table makes of it."""
        attempt = 0
        page = Page(API_NAME, key.instrument, key.day, f"GET {self.url(key)}")
        while True:
            status, body, failure, retry_after = None, "", "", None
            await self.bucket.acquire(1.0)
            async with self.semaphore:
                for stats in _tallies(self.stats):
                    stats.requests += 1
                started = time.monotonic()
                try:
                    async with self.http.stream("GET", key.path) as response:
                        status = response.status_code
                        if status == 200:
                            digest, size = await self._save(response, dest)
                            self._count(status, started)
                            return digest, size
                        body = (await response.aread()).decode("utf-8", "replace")[:300]
                        retry_after = parse_retry_after(response.headers.get("Retry-After"))
                except (httpx.TimeoutException, httpx.TransportError) as error:
                    failure = f"{type(error).__name__}: {error}"
                    metrics.http_transport_error(self.metrics_source)
                    for stats in _tallies(self.stats):
                        stats.transport_errors += 1
            if status is not None:
                self._count(status, started)
            if status == 404:
                raise ArchiveMissing(key, self.url(key), _s3_code(body))
            kind = "retry" if failure else self.ERRORS.classify(status, None, body)
            if kind not in ("retry", "rate_limited"):
                raise self.make_error(kind, status=status, code=None, message=body, page=page)
            failure = failure or f"HTTP {status}: {body[:200]}"
            if attempt >= self.retry.max_retries:
                raise self.exhausted("retry", method="GET", path=key.path, status=status, failure=failure,
                                     attempts=attempt + 1, page=page)
            for stats in _tallies(self.stats):
                stats.retries += 1
                stats.rate_limited += kind == "rate_limited"
                stats.server_errors += status is not None and status >= 500
            metrics.http_retry(self.metrics_source)
            attempt += 1
            await asyncio.sleep(retry_after if kind == "rate_limited" and retry_after is not None else
                                backoff_delay(attempt, self.retry.backoff_base_s, self.retry.backoff_max_s, self.rng))

    async def _save(self, response: httpx.Response, dest: Path) -> tuple[str, int]:
        """The body into `dest` as it arrives, hashed on the way (both off the event loop, so the
        other downloads go on): (sha256 hex, bytes)."""
        digest, size = hashlib.sha256(), 0

        def absorb(out, chunk: bytes) -> None:
            digest.update(chunk)
            out.write(chunk)

        out = await asyncio.to_thread(open, dest, "wb")
        try:
            async for chunk in response.aiter_bytes(self.CHUNK):
                await asyncio.to_thread(absorb, out, chunk)
                size += len(chunk)
        finally:
            out.close()
        return digest.hexdigest(), size

    def _count(self, status: int, started: float) -> None:
        latency = time.monotonic() - started
        metrics.http_response(self.metrics_source, status, latency)
        for stats in _tallies(self.stats):
            stats.latency_s.append(latency)


@dataclass(frozen=True)
class Verified:
    """A downloaded archive whose SHA-256 is the published one."""

    key: ArchiveKey
    url: str
    path: Path
    sha256: str
    size: int


async def fetch_verified(api: ArchiveClient, key: ArchiveKey, workdir: Path) -> Verified:
    """The archive downloaded into `workdir` and verified against its CHECKSUM (ArchiveMissing,
    ChecksumMismatch: the file is removed, nothing is kept)."""
    expected = await api.published(key)
    dest = workdir / key.path.lstrip("/")  # the vendor's layout: the reader tells spot from futures by it too
    dest.parent.mkdir(parents=True, exist_ok=True)
    actual, size = await api.download(key, dest)
    if actual != expected:
        dest.unlink(missing_ok=True)
        raise ChecksumMismatch(key, api.url(key), expected, actual, size)
    return Verified(key, api.url(key), dest, actual, size)


# --------------------------------------------------------------------------------------------
# Reading: the dump reader, per-day figures, the days to load
# --------------------------------------------------------------------------------------------

@dataclass
class DayFigures:
    """What a day holds: rows, first and last id (a trade's or aggregate trade's id; a kline's open
    time in epoch µs) and distinct ids."""

    rows: int = 0
    first_id: int | None = None
    last_id: int | None = None
    ids: int = 0

    def add(self, rows: int, first: int, last: int, ids: int) -> None:
        self.rows += rows
        self.ids += ids
        self.first_id = first if self.first_id is None else min(self.first_id, first)
        self.last_id = last if self.last_id is None else max(self.last_id, last)

    def text(self) -> str:
        return f"{self.rows:,} rows, ids {self.first_id}..{self.last_id} ({self.ids:,} distinct)" if self.rows \
            else "no rows"

    def same(self, other: DayFigures) -> bool:
        return (self.rows, self.first_id, self.last_id, self.ids) == (other.rows, other.first_id, other.last_id,
                                                                      other.ids)


def _id(dataset: str) -> tuple[pl.Expr, pl.Expr]:
    """(the id whose first and last a day's figures hold, what its distinct ids count)."""
    if dataset == "liquidations":
        return pl.col("ts").dt.epoch("us"), pl.col("liquidation_id")
    ident = pl.col("ts").dt.epoch("us") if spec_for(dataset).schema is BARS_SCHEMA else pl.col("seq")
    return ident, ident


def read_archive(path: Path, key: ArchiveKey, keep: Collection[date] = ()) -> tuple[pl.DataFrame, dict]:
    """The archive's rows of the days `keep` (a frame of its dataset) and every day's figures
    ({day: DayFigures}), read in batches by the dump reader. A row outside the archive's day (or
    month) or an archive without rows (but of liquidations) is a SourceDataError naming the file."""
    reader = DumpReader(path, market=key.market, instrument=key.instrument, family=key.family, day=key.day,
                        venue=key.venue)
    allowed, keep = set(key.days()), sorted(set(keep))
    kept: list[pl.DataFrame] = []
    figures: dict[date, DayFigures] = {}
    (ids, distinct_ids), day = _id(key.dataset), pl.col("ts").dt.date()
    for batch in reader.batches():
        for when, rows, first, last, distinct in batch.group_by(day.alias("day")).agg(
                pl.len(), ids.min().alias("first"), ids.max().alias("last"),
                distinct_ids.n_unique().alias("n")).iter_rows():
            if when not in allowed:
                raise SourceDataError(key.instrument, key.day, f"{key.name}: {rows} row(s) on {when}, outside the "
                                      f"archive's {'day' if key.period == 'daily' else 'month'}", source=API_NAME)
            figures.setdefault(when, DayFigures()).add(rows, first, last, distinct)
        if keep:
            kept.append(batch.filter(day.is_in(keep)))
    if not figures and key.dataset != "liquidations":  # a day without liquidations can be
        raise SourceDataError(key.instrument, key.day, f"{key.name}: the archive holds no rows; not loaded over a "
                              "stored day (a venue's day is never empty)", source=API_NAME)
    schema = spec_for(key.dataset).schema
    return (pl.concat(kept, how="vertical") if kept else pl.DataFrame(schema=schema)), dict(sorted(figures.items()))


# --------------------------------------------------------------------------------------------
# One run's archives through the ingest engine
# --------------------------------------------------------------------------------------------

@dataclass
class Loaded:
    """An archive the run read: how it was verified and what it held."""

    verified: Verified
    figures: dict
    days: list[date]          # the slices it wrote


class ArchiveRun:
    """The engine feed of a run's archives (one job per archive: the slices of the days it writes)
    and, after `Engine.run`, their record. `verified` archives (downloaded before, by the
    reconcile) are read from disk instead of downloaded again."""

    def __init__(self, make_client: Callable[[], ArchiveClient], workdir: Path, *, workers: int = 2,
                 attempts: int = 2, verified: dict[ArchiveKey, Verified] | None = None):
        self.make_client, self.workdir, self.workers, self.attempts = make_client, Path(workdir), workers, attempts
        self.verified = dict(verified or {})
        self.loaded: dict[ArchiveKey, Loaded] = {}

    def feed(self, jobs: dict[ArchiveKey, list[date]]) -> Feed:
        return Feed(SOURCE, [Job(key.slices(days), key) for key, days in sorted(jobs.items()) if days], self._fetch,
                    self.make_client, workers=self.workers, attempts=self.attempts)

    async def _fetch(self, api: ArchiveClient, job: Job) -> pl.DataFrame:
        key: ArchiveKey = job.args
        verified = self.verified.pop(key, None) or await fetch_verified(api, key, self.workdir)
        try:
            frame, figures = await asyncio.to_thread(read_archive, verified.path, key, [k.day for k in job.keys])
        finally:
            verified.path.unlink(missing_ok=True)  # its rows are in memory (or it failed): not kept
        self.loaded[key] = Loaded(verified, figures, [k.day for k in job.keys])
        return frame

    def record(self, client, database: str, report: IngestReport, run_id: str, *, status: str = "loaded",
               previous: dict[ArchiveKey, str] | None = None, notes: dict[ArchiveKey, str] | None = None) -> list[dict]:
        """Each archive whose slices all loaded, into `dump_archives`; returns the rows written."""
        rows = []
        for key, loaded in sorted(self.loaded.items()):
            outcomes = [report.outcomes.get(s) for s in key.slices(loaded.days)]
            if not all(o is not None and o.status == "ok" for o in outcomes):
                continue
            rows.append(archive_row(loaded.verified, loaded.figures, run_id, status=status, days=loaded.days,
                                    load_ids=[o.load_id for o in outcomes], previous=(previous or {}).get(key, ""),
                                    note=(notes or {}).get(key, "")))
        insert_archives(client, database, rows)
        return rows


def archive_row(verified: Verified, figures: dict, run_id: str, *, status: str, days: list[date],
                load_ids: list[int], previous: str = "", note: str = "") -> dict:
    key = verified.key
    firsts = [f.first_id for f in figures.values() if f.first_id is not None]
    lasts = [f.last_id for f in figures.values() if f.last_id is not None]
    return {"market": key.market, "family": key.family, "interval": key.interval, "instrument": key.instrument,
            "period": key.period, "day": key.day, "dataset": key.dataset, "venue": key.venue, "url": verified.url,
            "sha256": verified.sha256, "published_sha256": verified.sha256, "previous_sha256": previous,
            "size": verified.size, "days": list(days), "load_ids": list(load_ids),
            "rows": sum(f.rows for f in figures.values()), "first_id": min(firsts, default=0),
            "last_id": max(lasts, default=0), "id_count": sum(f.ids for f in figures.values()), "status": status,
            "note": note, "run_id": run_id, "verified_at": datetime.now(UTC)}


# --------------------------------------------------------------------------------------------
# The record: `dump_archives`
# --------------------------------------------------------------------------------------------

ARCHIVE_COLUMNS = ("market", "family", "interval", "instrument", "period", "day", "dataset", "venue", "url", "sha256",
                   "published_sha256", "previous_sha256", "size", "days", "load_ids", "rows", "first_id", "last_id",
                   "id_count", "status", "note", "run_id", "verified_at")
_IDENTITY = "market, family, interval, instrument, period, day"



def archive_table_ddl(database: str) -> str:
    """Every verification of an archive, appended (the history of its digests): the latest row of an
    archive is its state. `status`: loaded (its slices written) | reconciled (a monthly archive
    compared with the daily slices)."""
    return f"""CREATE TABLE IF NOT EXISTS {clickhouse_database(database)}.{ARCHIVES} (
    `market` {LC},
    `family` {LC},
    `interval` {LC},
    `instrument` {LC},
    `period` {LC},
    `day` Date,
    `dataset` {LC},
    `venue` {LC},
    `url` String,
    `sha256` String,
    `published_sha256` String,
    `previous_sha256` String DEFAULT '',
    `size` UInt64,
    `days` Array(Date),
    `load_ids` Array(UInt64),
    `rows` UInt64,
    `first_id` Int64,
    `last_id` Int64,
    `id_count` UInt64,
    `status` {LC},
    `note` String DEFAULT '',
    `run_id` String,
    `verified_at` DateTime64(3, 'UTC')
) ENGINE = MergeTree
ORDER BY ({_IDENTITY}, verified_at)"""


def ensure_archive_table(client, database: str) -> None:
    client.command(f"CREATE DATABASE IF NOT EXISTS {clickhouse_database(database)}")
    client.command(archive_table_ddl(database))


def insert_archives(client, database: str, rows: list[dict]) -> None:
    ensure_archive_table(client, database)
    if rows:
        client.insert(ARCHIVES, [[r[c] for c in ARCHIVE_COLUMNS] for r in rows], column_names=list(ARCHIVE_COLUMNS),
                      database=database)


@dataclass(frozen=True)
class ArchiveRecord:
    key: ArchiveKey
    published_sha256: str
    days: tuple[date, ...]
    status: str
    rows: int
    verified_at: datetime


def latest_archives(client, database: str, *, statuses: Collection[str] = ("loaded", "reconciled"),
                    period: str | None = None) -> list[ArchiveRecord]:
    """The latest record of every archive (of `period`) whose latest status is one of `statuses`."""
    where, params = ["status IN {statuses:Array(String)}"], {"statuses": list(statuses)}
    if period is not None:
        where.append("period = {period:String}")
        params["period"] = period
    rows = client.query(
        f"SELECT {_IDENTITY}, published_sha256, days, status, rows, verified_at FROM (SELECT * FROM "
        f"{clickhouse_database(database)}.{ARCHIVES} ORDER BY verified_at DESC LIMIT 1 BY {_IDENTITY}) "
        f"WHERE {' AND '.join(where)} ORDER BY {_IDENTITY}", parameters=params).result_rows
    return [ArchiveRecord(ArchiveKey(*r[:6]), r[6], tuple(r[7]), r[8], int(r[9]), r[10]) for r in rows]


def stored_figures(client, database: str, dataset: str, venue: str, instrument: str,
                   days: list[date]) -> dict[date, DayFigures]:
    """The figures of the active slices of `days` ({day: DayFigures}; a day without an active load
    is left out, one whose load is empty has zero rows)."""
    spec = spec_for(dataset)
    db, table = clickhouse_database(database), f"`{sql_identifier(spec.table, 'table')}`"
    by_ts = spec.schema is BARS_SCHEMA or dataset == "liquidations"
    ident = "toInt64(toUnixTimestamp64Micro(ts))" if by_ts else "seq"
    distinct = "liquidation_id" if dataset == "liquidations" else ident
    params = {"kind": spec.code, "venue": venue, "instrument": instrument, "days": list(days)}
    active = {r[0]: int(r[1]) for r in client.query(
        f"SELECT day, load_id FROM {db}.{LOADS} FINAL WHERE kind = {{kind:String}} AND venue = {{venue:String}} "
        "AND instrument = {instrument:String} AND day IN {days:Array(Date)}", parameters=params).result_rows}
    out = {day: DayFigures() for day in active}
    if active:
        for day, rows, first, last, ids in client.query(
                f"SELECT day, count(), min({ident}), max({ident}), uniqExact({distinct}) FROM {db}.{table} "
                "WHERE venue = {venue:String} AND instrument = {instrument:String} AND day IN {days:Array(Date)} "
                "AND load_id IN {ids:Array(UInt64)} GROUP BY day",
                parameters={**params, "ids": list(active.values())}).result_rows:
            out[day].add(int(rows), int(first or 0), int(last or 0), int(ids))
    return out


# --------------------------------------------------------------------------------------------
# The re-check: published digests read again, replaced archives reloaded
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Change:
    key: ArchiveKey
    old: str
    new: str
    days: tuple[date, ...]

    def text(self) -> str:
        return f"{self.key.name}: {self.old} -> {self.new}"


@dataclass
class RecheckResult:
    checked: int = 0
    changed: list[Change] = field(default_factory=list)
    withdrawn: list[str] = field(default_factory=list)    # recorded archives that answer 404 now
    errors: list[str] = field(default_factory=list)       # CHECKSUMs that could not be read
    report: IngestReport = field(default_factory=IngestReport)
    recorded: list[dict] = field(default_factory=list)
    reconciled: ReconcileResult | None = None


async def _gather(items, fn, workers: int) -> list:
    """fn(item) for every item, `workers` at once; an exception is returned in its place."""
    gate = asyncio.Semaphore(max(1, workers))

    async def one(item):
        async with gate:
            try:
                return await fn(item)
            except Exception as error:  # noqa: BLE001 - reported per item
                return error

    return await asyncio.gather(*(one(item) for item in items))


async def find_changes(make_client: Callable[[], ArchiveClient], records: list[ArchiveRecord], workers: int,
                       result: RecheckResult) -> None:
    async with make_client() as api:
        found = await _gather(records, lambda r: api.published(r.key), workers)
    result.checked = len(records)
    for record, published in zip(records, found):
        if isinstance(published, ArchiveMissing):
            result.withdrawn.append(f"{record.key.name}: {published}")
        elif isinstance(published, Exception):
            result.errors.append(f"{record.key.name}: {published}")
        elif published != record.published_sha256:
            result.changed.append(Change(record.key, record.published_sha256, published, record.days))


def recheck(make_client: Callable[[], ArchiveClient], engine: Engine, workdir: Path, *, workers: int = 2,
            attempts: int = 2) -> RecheckResult:
    """Read the published CHECKSUM of every recorded archive again; reload the daily archives whose
    digest changed (their slices replaced at once by the load pointer) and reconcile the changed
    monthly ones again; record each with its previous digest."""
    result = RecheckResult()
    with engine.connect() as client:
        ensure_tables(client, engine.database)  # reloads write slices: the store is bootstrapped first
        ensure_archive_table(client, engine.database)
        records = latest_archives(client, engine.database)
    asyncio.run(find_changes(make_client, records, workers, result))
    daily = {c.key: list(c.days) for c in result.changed if c.key.period == "daily"}
    previous = {c.key: c.old for c in result.changed}
    if daily:
        run = ArchiveRun(make_client, workdir, workers=workers, attempts=attempts)
        result.report = engine.run([[run.feed(daily)]])
        with engine.connect() as client:
            result.recorded = run.record(client, engine.database, result.report, engine.run_id, previous=previous,
                                         notes={k: f"replaced: {previous[k]} -> {v.verified.sha256}"
                                                for k, v in run.loaded.items()})
    monthly = {c.key: c.days for c in result.changed if c.key.period == "monthly"}
    if monthly:  # compared again, and the days it had filled loaded again from its new version
        result.reconciled = reconcile(make_client, engine, workdir, sorted(monthly), workers=workers,
                                      previous=previous, reload=monthly)
    return result


# --------------------------------------------------------------------------------------------
# Reconciling a monthly archive with the daily slices
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DayComparison:
    key: ArchiveKey           # the monthly archive
    day: date
    expected: DayFigures      # the monthly archive's
    actual: DayFigures | None  # the stored slice's before the run (None: no daily slice stored)
    loaded: bool = False      # the run wrote the day from the monthly archive

    @property
    def status(self) -> str:
        """match | mismatch | no daily slice, or what loading the day made of it: filled | replaced | reloaded."""
        if self.actual is None:
            return "filled" if self.loaded else "no daily slice"
        if self.expected.same(self.actual):
            return "reloaded" if self.loaded else "match"
        return "replaced" if self.loaded else "mismatch"

    def row(self) -> list:
        return [f"{self.key.venue}:{self.key.instrument}", self.key.dataset, str(self.day), self.status,
                self.expected.text(), self.actual.text() if self.actual is not None else "-"]


@dataclass
class ReconcileResult:
    comparisons: list[DayComparison] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)      # monthly archives not published (yet)
    failed: list[str] = field(default_factory=list)       # not verified / not readable
    loaded_days: dict = field(default_factory=dict)       # archive -> days written from it
    report: IngestReport = field(default_factory=IngestReport)
    recorded: list[dict] = field(default_factory=list)

    @property
    def mismatches(self) -> list[DayComparison]:
        return [c for c in self.comparisons if c.status == "mismatch"]

    def summary(self) -> str:
        status = [c.status for c in self.comparisons]
        counts = ", ".join(f"{status.count(s)} {s}" for s in ("match", "mismatch", "no daily slice", "filled",
                                                              "replaced", "reloaded") if s in status)
        return (f"{len({c.key for c in self.comparisons})} monthly archive(s), days: {counts or 'none'}; "
                f"{len(self.missing)} not published, {len(self.failed)} failed")


def monthly_keys(settings: ArchiveSettings, months: Iterable[date], instruments: Collection[str] = ()
                 ) -> list[ArchiveKey]:
    """The monthly archives of every configured kind and instrument (or of `instruments`, VENUE:SYMBOL)
    for `months` (any day of each); none of the daily-only families (liquidationSnapshot)."""
    return sorted({ArchiveKey(VENUE_MARKETS[key.venue], family, interval, key.instrument, "monthly",
                              month.replace(day=1))
                   for month in months for key in settings.instrument_keys()
                   if not instruments or key.partition_key in instruments
                   for family, interval in settings.kinds() if family not in DAILY_ONLY})


def months_to_reconcile(client, database: str, settings: ArchiveSettings, today: date,
                        months_back: int = 3) -> list[ArchiveKey]:
    """Monthly archives of the configured kinds and instruments for the last `months_back` complete
    months (from the config's start date) that have daily archives recorded and no reconciled
    monthly record yet."""
    first = today.replace(day=1)
    months = []
    for _ in range(months_back):
        first = (first - timedelta(days=1)).replace(day=1)
        if first >= settings.start_date.replace(day=1):
            months.append(first)
    ensure_archive_table(client, database)
    done = {r.key for r in latest_archives(client, database, statuses=("reconciled",), period="monthly")}
    daily = {replace(r.key, period="monthly", day=r.key.day.replace(day=1))
             for r in latest_archives(client, database, period="daily")}
    return [k for k in monthly_keys(settings, months) if k in daily and k not in done]


def reconcile(make_client: Callable[[], ArchiveClient], engine: Engine, workdir: Path, months: list[ArchiveKey], *,
              workers: int = 2, fill_missing: bool = True, replace_mismatched: bool = False,
              previous: dict[ArchiveKey, str] | None = None,
              reload: dict[ArchiveKey, Collection[date]] | None = None) -> ReconcileResult:
    """Fetch and verify the monthly archives, compare each day with the stored daily slice, load the
    days without a daily slice (`fill_missing`), the mismatched ones (`replace_mismatched`) and the
    `reload` ones from them, and record every verified monthly archive (status `reconciled`; its
    `days`: every day it has loaded, these and earlier runs')."""
    result = ReconcileResult()

    async def download() -> list:
        async with make_client() as api:
            return await _gather(months, lambda key: fetch_verified(api, key, workdir), workers)

    verified: dict[ArchiveKey, Verified] = {}
    for key, got in zip(months, asyncio.run(download()) if months else []):
        if isinstance(got, ArchiveMissing):
            result.missing.append(str(got))
        elif isinstance(got, Exception):
            result.failed.append(f"{key.name}: {got}")
        else:
            verified[key] = got
    figures: dict[ArchiveKey, dict] = {}
    jobs: dict[ArchiveKey, list[date]] = {}
    with engine.connect() as client:
        ensure_tables(client, engine.database)  # filled days are written as slices
        ensure_archive_table(client, engine.database)
        for key, archive in verified.items():
            try:
                _, figures[key] = read_archive(archive.path, key)
            except SourceDataError as error:
                result.failed.append(str(error))
                archive.path.unlink(missing_ok=True)
                continue
            stored = stored_figures(client, engine.database, key.dataset, key.venue, key.instrument, key.days())
            for day, expected in figures[key].items():
                result.comparisons.append(DayComparison(key, day, expected, stored.get(day)))
            again = set((reload or {}).get(key, ()))
            jobs[key] = [c.day for c in result.comparisons if c.key == key and (
                (c.status == "no daily slice" and fill_missing) or (c.status == "mismatch" and replace_mismatched)
                or c.day in again)]
        earlier = {r.key: r.days for r in latest_archives(client, engine.database, period="monthly")}
    run = ArchiveRun(make_client, workdir, workers=workers, verified={k: verified[k] for k in jobs if jobs[k]})
    if any(jobs.values()):
        result.report = engine.run([[run.feed(jobs)]])
    written_days = {(k, o.key.day) for k in jobs for o in (result.report.outcomes.get(s) for s in k.slices(jobs[k]))
                    if o is not None and o.status == "ok"}
    result.comparisons = [replace(c, loaded=True) if (c.key, c.day) in written_days else c for c in result.comparisons]
    result.loaded_days = {k.name: sorted(d for key, d in written_days if key == k) for k in jobs if jobs[k]}
    with engine.connect() as client:
        rows = []
        for key, found in figures.items():
            outcomes = [result.report.outcomes.get(s) for s in key.slices(jobs[key])]
            written = [o for o in outcomes if o is not None and o.status == "ok"]
            mine = [c for c in result.comparisons if c.key == key]
            note = ", ".join(f"{sum(c.status == s for c in mine)} {s}" for s in (
                "match", "mismatch", "filled", "replaced", "reloaded") if any(c.status == s for c in mine)) + "".join(
                f"; {c.day} {c.status}: monthly {c.expected.text()}, daily {c.actual.text()}"
                for c in mine if c.status in ("mismatch", "replaced"))
            days = sorted({o.key.day for o in written} | set(earlier.get(key, ())))
            rows.append(archive_row(verified[key], found, engine.run_id, status="reconciled", days=days,
                                    load_ids=[o.load_id for o in written],
                                    previous=(previous or {}).get(key, ""), note=note[:2000]))
            verified[key].path.unlink(missing_ok=True)
        insert_archives(client, engine.database, rows)
        result.recorded = rows
    return result
