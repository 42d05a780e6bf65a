"""Reads of the alpha store (MongoDB) into Polars: one row per alpha, the fields a quant
filters and ranks by, flattened.

The filter is pushed to the server: the type picks the database (REGULAR / SUPER, as the importer
routes them), the time range is on the parsed UTC dates (``_dates.dateCreated`` or
``_dates.dateModified``, both indexed), ``region`` / ``status`` on their indexed fields, and only the
projected fields travel. Dates come from the ``_dates`` sidecar (UTC), not the New York strings.

No ``as_of``: an import deep-merges each alpha into its stored document in place (stores.mongo.merge),
so earlier versions are not kept anywhere.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

import polars as pl

from marketdata_assets.read.coverage import closest
from marketdata_assets.stores.mongo.documents import COLLECTIONS, DATE_FIELDS, DATES_FIELD

UTC_US = pl.Datetime("us", "UTC")
STATS = ("sharpe", "fitness", "returns", "turnover", "drawdown", "margin", "longCount", "shortCount")
# column -> (dotted path in the document, dtype)
COLUMNS: dict[str, tuple[str, pl.DataType]] = {
    **{name: (name, pl.String) for name in ("id", "type", "author", "status", "stage", "grade")},
    **{name: (f"{DATES_FIELD}.{name}", UTC_US) for name in DATE_FIELDS},
    **{
        name: (f"settings.{name}", dtype)
        for name, dtype in (
            ("region", pl.String),
            ("universe", pl.String),
            ("delay", pl.Int64),
            ("decay", pl.Int64),
            ("neutralization", pl.String),
        )
    },
    "code": ("regular.code", pl.String),
    **{name: (f"is.{name}", pl.Int64 if name.endswith("Count") else pl.Float64) for name in STATS},
}
SCHEMA = {name: dtype for name, (_, dtype) in COLUMNS.items()}
DATE_KEYS = ("dateCreated", "dateModified")


def _get(doc: dict, path: str):
    value = doc
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _scalar(value):
    """Nested values (objects, arrays) of an extra field as JSON text: one dtype per column."""
    return json.dumps(value, default=str, sort_keys=True) if isinstance(value, (dict, list)) else value


def query_of(
    start: datetime | None, end: datetime | None, by: str, region: str | None, status: str | None
) -> dict:
    if by not in DATE_KEYS:
        raise ValueError(f"by must be one of {DATE_KEYS}, got {by!r}")
    query: dict = {}
    if start is not None or end is not None:
        bounds = {}
        if start is not None:
            bounds["$gte"] = start
        if end is not None:
            bounds["$lt"] = end
        query[f"{DATES_FIELD}.{by}"] = bounds
    for key, value in (("settings.region", region), ("status", status)):
        if value is not None:
            if not isinstance(value, str):
                raise ValueError(f"{key} must be a string, got {type(value).__name__}")
            query[key] = value
    return query


def _require_region(region: str, collections: list) -> None:
    """A region no alpha of these collections has is a ValueError naming the closest stored regions."""
    stored = {r for c in collections for r in c.distinct("settings.region") if isinstance(r, str)}
    if region not in stored:
        raise ValueError(
            f"no alphas of region {region!r} stored{closest(region, stored)}; regions stored: "
            f"{', '.join(sorted(stored)) or 'none yet'} (read.Reader().catalog() lists them)"
        )


def alphas(
    collections: dict,
    alpha_type: str | None,
    start: datetime | None,
    end: datetime | None,
    *,
    by: str = "dateCreated",
    region: str | None = None,
    status: str | None = None,
    fields: Sequence[str] = (),
) -> pl.DataFrame:
    """Alphas of ``alpha_type`` (REGULAR, SUPER, None: both) whose ``by`` date lies in ``[start, end)``
    (None: open), optionally of one region / status; ``collections`` maps each type to its pymongo
    collection. Columns: :data:`SCHEMA` plus one per extra dotted ``fields`` path. Ordered by ``by``, id."""
    types = list(COLLECTIONS) if alpha_type is None else [str(alpha_type).upper()]
    unknown = [t for t in types if t not in COLLECTIONS]
    if unknown:
        raise ValueError(
            f"unknown alpha type {alpha_type!r}{closest(unknown[0], COLLECTIONS)}: one of "
            f"{list(COLLECTIONS)} (or None: both)"
        )
    extra = [f for f in dict.fromkeys(fields) if f not in COLUMNS]
    bad = [f for f in extra if not isinstance(f, str) or not f or f.startswith(("$", "_")) or "\x00" in f]
    if bad:
        raise ValueError(f"invalid field path(s) {bad}: dotted names of the alpha's fields")
    query = query_of(start, end, by, region, status)
    if region is not None:
        _require_region(region, [collections[t] for t in types])
    projection = {path: 1 for path, _ in COLUMNS.values()} | dict.fromkeys(extra, 1) | {"_id": 0}
    rows = [doc for t in types for doc in collections[t].find(query, projection)]
    data = {name: [_get(doc, path) for doc in rows] for name, (path, _) in COLUMNS.items()}
    frame = pl.DataFrame(data, schema=SCHEMA)
    if extra:
        frame = frame.with_columns(
            pl.Series(f, [_scalar(_get(doc, f)) for doc in rows], strict=False) for f in extra
        )
    return frame.sort([by, "id"], nulls_last=True)
