"""Every listed A-share code, from Tushare's `stock_basic`, kept in a file per Beijing day.

`stock_basic` (https://tushare.pro/document/2?doc_id=25) answers the usual `{code, msg, data:
{fields, items}}` for `params {list_status, exchange, ts_code, market, is_hs}`: `list_status` L
(listed, the default), D (delisted), P (listing suspended), G (approved, not trading yet); at most
6000 rows an answer (the whole market fits today, ~5,400 codes); 2000 points; 50 calls a minute.
Tushare's own advice: ask once a day and keep the answer. So `listed_today` asks once per Beijing
day and writes the answer to `<cache_dir>/tushare_stock_basic_<status>_<YYYY-MM-DD>.json` (atomic:
temp file, fsync, rename); every later call of the same Beijing day reads the file and makes no
request. A file that can't be read is asked again and replaced; files of older days are pruned
(the newest `KEEP_DAYS` stay, for a look at what was listed when).

Rows of another `list_status` than asked (the API filters them; a proxy or a change might not) are
dropped and counted, as are repeated codes; a code that is not an A-share code is a
`TushareResponseError` naming it.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from marketdata_assets.core.files import atomic_write_bytes
from marketdata_assets.core.naming import a_share_code, a_share_venue
from marketdata_assets.datasets.instruments import Instrument
from marketdata_assets.sources.tushare.errors import PROVIDER, TushareResponseError
from marketdata_assets.sources.tushare.records import Table

log = logging.getLogger(__name__)

API = "stock_basic"
STOCK_BASIC_FIELDS = (
    "ts_code",
    "symbol",
    "name",
    "exchange",
    "market",
    "list_status",
    "list_date",
    "delist_date",
)
STOCK_BASIC_REQUIRED = ("ts_code", "name", "list_status", "list_date")
STOCK_BASIC_ROW_LIMIT = 6000
EXCHANGES = ("SSE", "SZSE", "BSE")  # a full answer is asked again one exchange at a time
LIST_STATUSES = ("L", "D", "P", "G")
KEEP_DAYS = 7
CHINA = ZoneInfo("Asia/Shanghai")


@dataclass(frozen=True)
class ListedInstrument:
    """One row of `stock_basic`: the code in Tushare's spelling, its name, exchange and dates."""

    code: str
    name: str
    exchange: str
    market: str
    list_status: str
    list_date: str  # YYYYMMDD
    delist_date: str | None = None


@dataclass
class Listing:
    """What `stock_basic` listed on a Beijing day, and whether it came from the day's file."""

    day: date
    list_status: str
    instruments: list[ListedInstrument]
    cached: bool = False
    dropped: dict[str, int] = field(default_factory=dict)  # other status / repeated rows

    @property
    def codes(self) -> list[str]:
        return [i.code for i in self.instruments]

    @property
    def said(self) -> str:
        """What the codes are, as a run's metadata says it."""
        where = "read from the day's file" if self.cached else "asked today"
        status = f"stock_basic list_status {self.list_status}"
        return f"{len(self.codes):,} codes Tushare lists ({status}, {self.day}, {where})"


def parse_stock_basic(table: Table, list_status: str = "L") -> tuple[list[ListedInstrument], dict[str, int]]:
    """A `stock_basic` table -> its instruments of `list_status`, by code; (instruments, dropped counts)."""
    index = {name: table.fields.index(name) for name in table.fields}
    missing = [name for name in STOCK_BASIC_REQUIRED if name not in index]
    if missing:
        raise TushareResponseError(
            None, None, f"{API}: the response has no field {missing} (fields: {table.fields})"
        )

    def value(row: list, name: str) -> Any:
        return row[index[name]] if name in index else None

    found: dict[str, ListedInstrument] = {}
    dropped = {"other_status": 0, "repeated": 0}
    for row in table.items:
        raw = value(row, "ts_code")
        try:
            code = a_share_code(raw)
        except ValueError as error:
            raise TushareResponseError(str(raw), None, f"{API}: {error}") from None
        if str(value(row, "list_status") or "").strip().upper() != list_status:
            dropped["other_status"] += 1
            continue
        if code in found:
            dropped["repeated"] += 1
            continue
        found[code] = ListedInstrument(
            code,
            str(value(row, "name") or ""),
            str(value(row, "exchange") or ""),
            str(value(row, "market") or ""),
            list_status,
            str(value(row, "list_date") or ""),
            value(row, "delist_date") or None,
        )
    return [found[code] for code in sorted(found)], dropped


STATUSES = {"L": "live", "D": "delisted", "P": "suspended", "G": "preopen"}


def _beijing(day: str | None, hour: int, minute: int) -> datetime | None:
    """A YYYYMMDD day's time in Beijing, as an aware datetime (None: no day)."""
    text = str(day or "").strip()
    return (
        datetime.strptime(text, "%Y%m%d").replace(hour=hour, minute=minute, tzinfo=CHINA)
        if len(text) == 8
        else None
    )


def instrument_of(row: ListedInstrument) -> Instrument:
    """One `stock_basic` row as the master's `Instrument`: a share on its exchange (SSE, SZSE, BSE), listed
    at the open of its list_date, ended after the close of its delist_date; sizes in shares (lots of 100)."""
    return Instrument(
        a_share_venue(row.code),
        row.code,
        "equity",
        row.code,
        "CNY",
        "CNY",
        False,
        1.0,
        1.0,
        "share",
        0.01,
        100.0,
        100.0,
        _beijing(row.list_date, 9, 30),
        _beijing(row.delist_date, 15, 0),
        STATUSES.get(row.list_status, row.list_status.lower()),
    )


def beijing_today(now: datetime | None = None) -> date:
    return (now or datetime.now(CHINA)).astimezone(CHINA).date()


def cache_path(cache_dir: str | os.PathLike, day: date, list_status: str = "L") -> Path:
    return Path(cache_dir) / f"tushare_{API}_{list_status}_{day.isoformat()}.json"


def read_cached(cache_dir: str | os.PathLike, day: date, list_status: str = "L") -> Listing | None:
    """The day's listing from its file; None when there is none or it can't be read (then asked again)."""
    path = cache_path(cache_dir, day, list_status)
    try:
        data = json.loads(path.read_bytes())
        rows = [ListedInstrument(**row) for row in data["instruments"]]
        if data["day"] != day.isoformat() or data["list_status"] != list_status or len(rows) != data["count"]:
            raise ValueError("its day, status or count disagrees with its name or rows")
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as error:
        log.warning(
            "%s %s: the cached listing %s can't be read (%s): asking again", PROVIDER, API, path, error
        )
        return None
    return Listing(day, list_status, rows, cached=True, dropped=data.get("dropped", {}))


def write_cached(cache_dir: str | os.PathLike, listing: Listing) -> Path:
    """The listing into its day's file, atomically; older days beyond `KEEP_DAYS` are removed."""
    path = cache_path(cache_dir, listing.day, listing.list_status)
    payload = {
        "source": "TUSHARE",
        "api": API,
        "list_status": listing.list_status,
        "day": listing.day.isoformat(),
        "fetched_at": datetime.now(CHINA).isoformat(timespec="seconds"),
        "count": len(listing.instruments),
        "dropped": listing.dropped,
        "instruments": [i.__dict__ for i in listing.instruments],
    }
    atomic_write_bytes(path, json.dumps(payload, ensure_ascii=False, indent=0).encode())
    older = sorted(path.parent.glob(f"tushare_{API}_{listing.list_status}_*.json"))[:-KEEP_DAYS]
    for stale in older:
        stale.unlink(missing_ok=True)
    return path


async def listed_today(
    make_client: Callable, cache_dir: str | os.PathLike, *, list_status: str = "L", today: date | None = None
) -> Listing:
    """Today's (Beijing) listing of `list_status`: the day's file, else ONE client (its rate limits
    and error table) asks `stock_basic` and the answer is written to the day's file."""
    if list_status not in LIST_STATUSES:
        raise ValueError(f"list_status {list_status!r}: one of {', '.join(LIST_STATUSES)}")
    day = today or beijing_today()
    cached = read_cached(cache_dir, day, list_status)
    if cached is not None:
        return cached
    async with make_client() as client:
        instruments, dropped = await client.listed_instruments(list_status)
    listing = Listing(day, list_status, instruments, dropped=dropped)
    write_cached(cache_dir, listing)
    log.info(
        "%s %s: %d codes with list_status %s on %s (written to %s)",
        PROVIDER,
        API,
        len(instruments),
        list_status,
        day,
        cache_path(cache_dir, day, list_status),
    )
    return listing
