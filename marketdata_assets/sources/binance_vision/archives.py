"""data.binance.vision archives: daily and monthly `.zip` + `.zip.CHECKSUM`, fetched, verified, loaded.

The source side of an archive: its name and URL (`ArchiveKey`), the published CHECKSUM (a 404 is
`ArchiveMissing`), the zip hashed as it streams in (another digest: `ChecksumMismatch`, nothing loaded),
its rows cut into daily slices of their dataset (`read_archive`, `dataset_of`); ingest/archives.py runs,
records, re-checks and reconciles. Layout, liquidation files: docs/crypto-datasets.md, "Binance archives".
"""

from __future__ import annotations

import asyncio
import calendar
import hashlib
import re
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import httpx
import polars as pl

from marketdata_assets.core.http import (
    ApiClient,
    Limits,
    Page,
    RetryPolicy,
    SourceDataError,
    SourceNotFound,
)
from marketdata_assets.datasets.frames import BARS_SCHEMA, KLINE_SPECS, spec_for
from marketdata_assets.datasets.slices import SliceKey
from marketdata_assets.sources.binance_vision.archive_settings import ARCHIVE_MARKETS, ArchiveSettings
from marketdata_assets.sources.binance_vision.dumps import LIQUIDATION_FAMILY, DumpReader

SOURCE = "BINANCE_ARCHIVE"  # the ingest_log provider of archive loads
API_NAME = "data.binance.vision"
MARKET_PATHS = {"spot": "spot", "um": "futures/um"}
VENUE_MARKETS = {venue: market for market, venue in ARCHIVE_MARKETS.items()}
_CHECKSUM = re.compile(r"([0-9a-fA-F]{64}) [ *]?(\S+)")


def dataset_of(family: str, interval: str = "") -> str:
    """The dataset an archive family (and kline interval) is loaded into."""
    if family == "trades":
        return "trades"
    if family == "aggTrades":
        return "agg_trades"
    if family == "klines" and interval == "1m":
        return "bars_1m"
    if family == "klines" and interval in KLINE_SPECS:
        return KLINE_SPECS[interval].name
    if family == LIQUIDATION_FAMILY and not interval:
        return "liquidations"
    raise ValueError(f"no dataset for {family} {interval}".strip())


ARCHIVED_DATASETS = {
    dataset_of(f, i): (f, i)
    for f, i in [
        ("trades", ""),
        ("aggTrades", ""),
        ("klines", "1m"),
        *(("klines", i) for i in KLINE_SPECS),
        (LIQUIDATION_FAMILY, ""),
    ]
}
FAMILY_MARKETS = {LIQUIDATION_FAMILY: ("um",)}  # families published for some markets only
DAILY_ONLY = {LIQUIDATION_FAMILY}  # families without monthly archives


def archived(key: SliceKey) -> bool:
    """Whether data.binance.vision publishes archives of the slice's dataset for its market (no
    liquidations for spot): the other slices are not asked for."""
    family, _ = ARCHIVED_DATASETS[key.dataset]
    return VENUE_MARKETS.get(key.venue) in FAMILY_MARKETS.get(family, MARKET_PATHS)


def month_days(first: date) -> list[date]:
    return [first.replace(day=d) for d in range(1, calendar.monthrange(first.year, first.month)[1] + 1)]


@dataclass(frozen=True, order=True)
class ArchiveKey:
    """One archive: `day` is its day, or its month's first day for a monthly one."""

    market: str  # spot | um
    family: str  # trades | aggTrades | klines | liquidationSnapshot
    interval: str  # klines: 1m, 1h, ...; '' otherwise
    instrument: str
    period: str  # daily | monthly
    day: date

    @classmethod
    def of_slice(cls, key: SliceKey, period: str = "daily") -> ArchiveKey:
        """The archive of a slice (the daily one, or its month's)."""
        family, interval = ARCHIVED_DATASETS[key.dataset]
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
        return (
            f"/data/{MARKET_PATHS[self.market]}/{self.period}/{self.family}/{self.instrument}/{interval}"
            f"{self.name}"
        )

    @property
    def venue(self) -> str:
        return ARCHIVE_MARKETS[self.market]

    @property
    def dataset(self) -> str:
        return dataset_of(self.family, self.interval)

    def days(self) -> list[date]:
        return [self.day] if self.period == "daily" else month_days(self.day)

    def slices(self, days: Iterable[date] | None = None) -> tuple[SliceKey, ...]:
        return tuple(
            SliceKey(self.dataset, self.venue, self.instrument, d)
            for d in (self.days() if days is None else days)
        )

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
        self.args = (
            f"missing: {key.name} is not published ({url} answers HTTP 404 {detail}); nothing loaded",
        )


class ChecksumMismatch(SourceDataError):
    """The downloaded archive's SHA-256 is not the published one: nothing of it is loaded."""

    def __init__(self, key: ArchiveKey, url: str, expected: str, actual: str, size: int):
        super().__init__(
            key.instrument,
            key.day,
            f"{key.name}: SHA-256 mismatch: expected {expected} (published in "
            f"{key.name}.CHECKSUM), got {actual} ({size:,} bytes from {url}); nothing loaded",
            source=API_NAME,
        )
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
        options = {
            "max_concurrency": settings.workers,
            "timeout_s": settings.timeout_s,
            "retry": RetryPolicy(max_retries=settings.max_retries),
            **overrides,
        }
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
            category = self.ERRORS.classify(response.status_code, None, response.text[:200])
            raise self.make_error(
                category, status=response.status_code, code=None, message=response.text[:200], page=page
            )
        try:
            return parse_checksum(response.text, key.name)
        except ValueError as error:
            raise page.error(str(error)) from None

    async def download(self, key: ArchiveKey, dest: Path) -> tuple[str, int]:
        """Stream the archive into `dest`, hashing it as it arrives: (sha256 hex, bytes), through
        ApiClient's one path (429/418 Retry-After, 5xx and broken or cut transfers retried with
        backoff, the whole file again); a 404 is ArchiveMissing; another status the error the
        source's table makes of it."""
        page = Page(API_NAME, key.instrument, key.day, f"GET {self.url(key)}")
        saved: list[tuple[str, int]] = []

        async def consume(response: httpx.Response) -> None:
            saved.append(await self._save(response, dest))

        response = await self.stream("GET", key.path, consume, page=page)
        if response.status_code == 404:
            raise ArchiveMissing(key, self.url(key), _s3_code(response.text))
        if response.status_code != 200:
            category = self.ERRORS.classify(response.status_code, None, response.text[:300])
            raise self.make_error(
                category, status=response.status_code, code=None, message=response.text[:300], page=page
            )
        return saved[-1]

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
        return (
            f"{self.rows:,} rows, ids {self.first_id}..{self.last_id} ({self.ids:,} distinct)"
            if self.rows
            else "no rows"
        )

    def same(self, other: DayFigures) -> bool:
        return (self.rows, self.first_id, self.last_id, self.ids) == (
            other.rows,
            other.first_id,
            other.last_id,
            other.ids,
        )


def _id(dataset: str) -> tuple[pl.Expr, pl.Expr]:
    """(the id whose first and last a day's figures hold, what its distinct ids count)."""
    if dataset == "liquidations":
        return pl.col("ts").dt.epoch("us"), pl.col("liquidation_id")
    ident = pl.col("ts").dt.epoch("us") if spec_for(dataset).schema is BARS_SCHEMA else pl.col("seq")
    return ident, ident


class ArchiveReader:
    """An archive's rows of the days `keep`, read from its zip in batches as they are asked for, and,
    once read through, every day's figures ({day: DayFigures}). A row outside the archive's day (or
    month) or an archive without rows (but of liquidations) is a SourceDataError naming the file."""

    def __init__(self, path: Path, key: ArchiveKey, keep: Collection[date] = ()):
        self.path, self.key, self.keep = path, key, sorted(set(keep))
        self.figures: dict[date, DayFigures] = {}

    def batches(self) -> Iterator[pl.DataFrame]:
        key = self.key
        reader = DumpReader(
            self.path,
            market=key.market,
            instrument=key.instrument,
            family=key.family,
            day=key.day,
            venue=key.venue,
        )
        allowed, figures = set(key.days()), {}
        whole = allowed <= set(self.keep)  # every day kept (a daily archive's): no filtering copy
        (ids, distinct_ids), day = _id(key.dataset), pl.col("ts").dt.date()
        for batch in reader.batches():
            for when, rows, first, last, distinct in (
                batch.group_by(day.alias("day"))
                .agg(pl.len(), ids.min().alias("first"), ids.max().alias("last"), distinct_ids.n_unique())
                .iter_rows()
            ):
                if when not in allowed:
                    raise SourceDataError(
                        key.instrument,
                        key.day,
                        f"{key.name}: {rows} row(s) on {when}, outside the "
                        f"archive's {'day' if key.period == 'daily' else 'month'}",
                        source=API_NAME,
                    )
                figures.setdefault(when, DayFigures()).add(rows, first, last, distinct)
            if not self.keep:  # figures only (the reconcile's comparison)
                continue
            kept = batch if whole else batch.filter(day.is_in(self.keep))
            if kept.height:
                yield kept
        if not figures and key.dataset != "liquidations":  # a day without liquidations can be
            raise SourceDataError(
                key.instrument,
                key.day,
                f"{key.name}: the archive holds no rows; not loaded over a "
                "stored day (a venue's day is never empty)",
                source=API_NAME,
            )
        self.figures = dict(sorted(figures.items()))


def read_archive(path: Path, key: ArchiveKey, keep: Collection[date] = ()) -> tuple[pl.DataFrame, dict]:
    """The archive's rows of the days `keep` as one frame, and every day's figures (`ArchiveReader`)."""
    reader = ArchiveReader(path, key, keep)
    kept = list(reader.batches())
    schema = spec_for(key.dataset).schema
    frame = pl.concat(kept, how="vertical") if kept else pl.DataFrame(schema=schema)
    return frame, reader.figures
