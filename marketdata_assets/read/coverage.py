"""The catalog's rows of the stores other than ClickHouse, in the ClickHouse catalog's columns
(:data:`SCHEMA`, null where a column does not apply), and the stored names a read checks its own against.

- ``minute_bars`` (TimescaleDB ``stock_1min_qfq``): one row per code, venue its exchange (SSE, SZSE,
  BSE by the code's suffix); days are Beijing days with a bar, missing_days the exchange's trading days
  between the first and the last with none (null beyond the calendar's reach).
- ``kline_monthly`` (``stock_monthly_kline``): one row per code; first_day / last_day the first days of
  its first and last month, rows its months; the day counts do not apply (null).
- ``alphas`` (MongoDB): one row per alpha type (venue: REGULAR, SUPER) and region (instrument: the
  ``region`` a read filters by); days are the UTC days an alpha was created on, rows the alphas.

Each is one aggregate on the server (GROUP BY / $group): the rows never travel. No ledger here says
when a code or a region was last loaded, which source wrote it or which day failed: last_loaded_at,
sources and failed_days are null on these rows (the loaders' own ledgers are per file).
"""

from __future__ import annotations

import bisect
import difflib
from collections.abc import Iterable
from datetime import date

import polars as pl
import psycopg
from psycopg import sql

from marketdata_assets.core import calendars
from marketdata_assets.core.naming import A_SHARE_VENUE_BY_SUFFIX
from marketdata_assets.datasets.frames import DATASETS
from marketdata_assets.stores.clickhouse.live import TRADES_LIVE
from marketdata_assets.stores.mongo.documents import DATES_FIELD
from marketdata_assets.stores.timescale.kline import KLINE, MINUTE_TABLE

MINUTE_BARS = "minute_bars"
KLINE_MONTHLY = "kline_monthly"
ALPHAS = "alphas"
NAMES = (*DATASETS, TRADES_LIVE, MINUTE_BARS, KLINE_MONTHLY, ALPHAS)  # every dataset the catalog can list

SCHEMA = pl.Schema(
    {
        "dataset": pl.String,
        "venue": pl.String,
        "instrument": pl.String,
        "first_day": pl.Date,
        "last_day": pl.Date,
        "days": pl.UInt64,
        "days_with_rows": pl.UInt64,
        "missing_days": pl.UInt32,
        "missing_reasons": pl.String,
        "rows": pl.UInt64,
        "last_loaded_at": pl.Datetime("ms", "UTC"),
        "failed_days": pl.UInt64,
        "sources": pl.String,
        "lag_s": pl.Float64,
    }
)


def closest(name: str, names: Iterable[str], cutoff: float = 0.6) -> str:
    """' (closest: A, B)' of the names most like `name`, or ''."""
    found = difflib.get_close_matches(name, sorted(set(names) - {name}), n=3, cutoff=cutoff)
    return f" (closest: {', '.join(found)})" if found else ""


def of_schema(rows: list[dict]) -> pl.DataFrame:
    """Catalog rows (dicts of some of the columns) as a frame of :data:`SCHEMA`, the rest null."""
    return pl.DataFrame([{c: row.get(c) for c in SCHEMA} for row in rows], schema=SCHEMA, orient="row")


def has_table(conn: psycopg.Connection, table: str) -> bool:
    return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()[0]


def _trading_days(first: date, last: date) -> list[date] | None:
    try:
        return calendars.trading_days("SSE", first, last)  # the three exchanges keep one calendar
    except calendars.OutOfCalendar:
        return None


def minute_coverage(conn: psycopg.Connection) -> pl.DataFrame:
    """Per code what ``stock_1min_qfq`` holds (none without the table)."""
    if not has_table(conn, MINUTE_TABLE):
        return of_schema([])
    query = sql.SQL(
        "SELECT code, min(time)::date, max(time)::date, count(DISTINCT time::date), count(*) "
        "FROM {} GROUP BY code ORDER BY code"
    ).format(sql.Identifier(MINUTE_TABLE))
    found = conn.execute(query).fetchall()
    if not found:
        return of_schema([])
    calendar = _trading_days(min(r[1] for r in found), max(r[2] for r in found))
    rows = []
    for code, first, last, days, count in found:
        expected = (
            None
            if calendar is None
            else (bisect.bisect_right(calendar, last) - bisect.bisect_left(calendar, first))
        )
        rows.append(
            {
                "dataset": MINUTE_BARS,
                "venue": A_SHARE_VENUE_BY_SUFFIX.get(code[-2:]),
                "instrument": code,
                "first_day": first,
                "last_day": last,
                "days": days,
                "days_with_rows": days,
                "rows": count,
                "missing_days": None if expected is None else max(expected - days, 0),
            }
        )
    return of_schema(rows)


def kline_coverage(conn: psycopg.Connection) -> pl.DataFrame:
    """Per code the months ``stock_monthly_kline`` holds (none without it)."""
    if not has_table(conn, KLINE):
        return of_schema([])
    query = sql.SQL(
        "SELECT code, min(month)::date, max(month)::date, count(*) FROM {} GROUP BY code ORDER BY code"
    ).format(sql.Identifier(KLINE))
    return of_schema(
        [
            {
                "dataset": KLINE_MONTHLY,
                "venue": A_SHARE_VENUE_BY_SUFFIX.get(code[-2:]),
                "instrument": code,
                "first_day": first,
                "last_day": last,
                "rows": months,
            }
            for code, first, last, months in conn.execute(query).fetchall()
        ]
    )


def timescale_coverage(conn: psycopg.Connection) -> pl.DataFrame:
    return pl.concat([minute_coverage(conn), kline_coverage(conn)])


# the alphas per region: by (region, UTC day created) on the server, then by region
_ALPHA_PIPELINE = [
    {
        "$group": {
            "_id": {
                "region": "$settings.region",
                "day": {"$dateToString": {"format": "%Y-%m-%d", "date": f"${DATES_FIELD}.dateCreated"}},
            },
            "n": {"$sum": 1},
        }
    },
    {
        "$group": {
            "_id": "$_id.region",
            "first": {"$min": "$_id.day"},
            "last": {"$max": "$_id.day"},
            "days": {"$sum": {"$cond": [{"$eq": [{"$type": "$_id.day"}, "string"]}, 1, 0]}},
            "rows": {"$sum": "$n"},
        }
    },
]


def alpha_coverage(collections: dict) -> pl.DataFrame:
    """Per alpha type (``collections``: type -> pymongo collection) and region what the store holds."""
    rows = []
    for kind, collection in collections.items():
        for doc in collection.aggregate(_ALPHA_PIPELINE):
            days = [
                date.fromisoformat(d) if isinstance(d, str) else None for d in (doc["first"], doc["last"])
            ]
            rows.append(
                {
                    "dataset": ALPHAS,
                    "venue": kind,
                    "instrument": doc["_id"],
                    "first_day": days[0],
                    "last_day": days[1],
                    "days": doc["days"],
                    "days_with_rows": doc["days"],
                    "rows": doc["rows"],
                }
            )
    return of_schema(sorted(rows, key=lambda r: (r["venue"], r["instrument"] or "")))


def stored_codes(conn: psycopg.Connection, table: str, codes: list[str]) -> set[str]:
    """Those of `codes` with a row in `table` (one index probe each)."""
    query = sql.SQL(
        "SELECT c FROM unnest(%s::text[]) AS c WHERE EXISTS (SELECT 1 FROM {} WHERE code = c)"
    ).format(sql.Identifier(table))
    return {row[0] for row in conn.execute(query, (codes,)).fetchall()}


def all_codes(conn: psycopg.Connection, table: str) -> list[str]:
    """Every code with a row in `table`, by skipping through its (code, time) index: one probe per code,
    not a scan of the rows."""
    query = sql.SQL(
        "WITH RECURSIVE c AS (SELECT min(code) AS code FROM {t} UNION ALL "
        "SELECT (SELECT min(code) FROM {t} WHERE code > c.code) FROM c WHERE c.code IS NOT NULL) "
        "SELECT code FROM c WHERE code IS NOT NULL"
    ).format(t=sql.Identifier(table))
    return [row[0] for row in conn.execute(query).fetchall()]


def require_codes(conn: psycopg.Connection, table: str, what: str, codes: list[str] | None) -> None:
    """A code with no row in `table` is a ValueError naming the closest stored codes (a typo reads as an
    error, not as an empty frame)."""
    if not codes:
        return
    missing = sorted(set(codes) - stored_codes(conn, table, codes))
    if missing:
        stored = all_codes(conn, table)
        raise ValueError(
            f"no {what} of {missing[0]} stored{closest(missing[0], stored)}"
            f"{f' (nor of {len(missing) - 1} other code(s) asked)' if len(missing) > 1 else ''}; "
            f"{len(stored):,} code(s) have {what} (read.Reader().catalog() lists them)"
        )
