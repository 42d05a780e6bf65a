"""The archive site's listing (S3 ListObjects, as the site's own index pages read it: `prefix`, `delimiter`
"/", `marker`, 1,000 keys a page): the symbols a market has daily trade files for, delisted ones included,
and the first and last day of one symbol's files. What exchangeInfo does not say (a spot symbol's listing
time, a delisted symbol), the instrument master learns here, so history holds what traded each day.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import date, timedelta
from typing import NamedTuple

from marketdata_assets.core.http import Page
from marketdata_assets.sources.binance_vision.archives import API_NAME, MARKET_PATHS, ArchiveClient

PUBLIC = "https://data.binance.vision"  # the download host; its listing is the bucket's:
BUCKET = "https://s3-ap-northeast-1.amazonaws.com/data.binance.vision"
NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
DAY = re.compile(r"-(\d{4}-\d{2}-\d{2})\.zip$")
DAY_PREFIX = re.compile(r"-(\d{4}-\d{2}-\d{2})\.")  # a day's files rolled up at "."
# S3 answers thousands of ListObjects a second per prefix: a refresh asks one per symbol whose listing day it
# does not know, not at the archive downloads' pace
LIMITS = {"requests_per_minute": 6_000, "max_concurrency": 16}
STEP = timedelta(days=450)  # a page of 1,000 keys holds ~500 days (a zip and its CHECKSUM a day)


class Listing(NamedTuple):
    folders: list[str]  # CommonPrefixes (a symbol's folder: data/spot/daily/trades/BTCUSDT/)
    keys: list[str]  # the files
    next_marker: str | None  # where the next page starts (None: the last page)


def parse(text: str, page: Page) -> Listing:
    """One ListBucketResult page; a SourceDataError naming the request for anything else."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as error:
        raise page.error(f"listing: not XML ({error})") from None
    if root.tag != f"{NS}ListBucketResult":
        raise page.error(f"listing: expected ListBucketResult, got {root.tag}")
    folders = [p.findtext(f"{NS}Prefix") or "" for p in root.findall(f"{NS}CommonPrefixes")]
    keys = [c.findtext(f"{NS}Key") or "" for c in root.findall(f"{NS}Contents")]
    truncated = (root.findtext(f"{NS}IsTruncated") or "false") == "true"
    marker = root.findtext(f"{NS}NextMarker") or (keys or folders or [None])[-1]
    return Listing(folders, keys, marker if truncated else None)


async def page_of(
    api: ArchiveClient, prefix: str, marker: str = "", max_keys: int = 1000, delimiter: str = "/"
) -> Listing:
    base = BUCKET if api.base_url.rstrip("/") == PUBLIC else api.base_url.rstrip("/")
    params = {"prefix": prefix, "delimiter": delimiter, "marker": marker, "max-keys": str(max_keys)}
    page = Page(API_NAME, prefix, None, f"GET {base}/?prefix={prefix}&marker={marker}")
    response = await api.request("GET", f"{base}/", params=params)
    if response.status_code != 200:
        raise page.error(f"listing answered HTTP {response.status_code}: {response.text[:200]}")
    return parse(response.text, page)


def folder(market: str) -> str:
    return f"data/{MARKET_PATHS[market]}/daily/trades/"


async def symbols(api: ArchiveClient, market: str) -> list[str]:
    """Every symbol with daily trade files in `market` (spot | um), delisted ones included."""
    out, marker = [], ""
    while True:
        listing = await page_of(api, folder(market), marker)
        out += [f.rstrip("/").rsplit("/", 1)[-1] for f in listing.folders]
        if listing.next_marker is None:
            return out
        marker = listing.next_marker


async def first_day(api: ArchiveClient, market: str, symbol: str) -> date | None:
    """The day of `symbol`'s first daily trade file (None: none yet): one request, its keys rolled up at
    "." (`SYMBOL-trades-2017-08-17.` for the zip and its CHECKSUM), so the answer is a name, not a file."""
    first = await page_of(api, f"{folder(market)}{symbol}/", max_keys=1, delimiter=".")
    found = [m for name in first.folders + first.keys if (m := DAY_PREFIX.search(name))]
    return date.fromisoformat(found[0].group(1)) if found else None


async def first_and_last_day(
    api: ArchiveClient, market: str, symbol: str, today: date
) -> tuple[date, date] | None:
    """The first and last day of `symbol`'s daily trade files (None: none): the first page's first file, and
    the last page's last, found stepping back from `today` a page's worth of days at a time."""
    prefix, start = f"{folder(market)}{symbol}/", await first_day(api, market, symbol)
    if start is None:
        return None
    since = today
    while since > start:
        since -= STEP
        listing = await page_of(api, prefix, f"{prefix}{symbol}-trades-{max(since, start).isoformat()}")
        found = [date.fromisoformat(m.group(1)) for k in listing.keys if (m := DAY.search(k))]
        if found:
            return start, max(found)
    return start, start


__all__ = ["first_and_last_day", "first_day", "parse", "symbols"]
